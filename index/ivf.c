/* ivf.c: the IVF kind, FAISS inverted-file indexes (IVF<n>,Flat / PQ<m> / SQ<b>, optionally
 * behind PCA or OPQ) through index/faiss_shim.h. An IVF must be trained before it takes
 * vectors, so until enough have arrived (faiss_shim_train_size: 39 per cluster, at least
 * 1000) they are kept aside in a FLAT and searched exactly; the add that reaches that count
 * trains on everything kept and moves it into FAISS, or fails and changes nothing. The
 * index's EF_RUNTIME is FAISS's nprobe (and vec_knn's ef overrides it per query).
 *
 * LABELS. FAISS stores each vector with a 64-bit label: our id in the low 32 bits and the
 * id's generation in bits 32..62. gens[id] holds the current generation and a LIVE bit; a
 * delete clears the bit and a replacing add bumps the generation, so the old entry becomes
 * stale at once: every search passes FAISS a selector that accepts only live labels of the
 * current generation (and the caller's filter), checked before any distance. Stale entries
 * are removed in one pass over the lists when they pass an eighth of all entries, which
 * gives their memory back; deletes cost O(1) amortised instead of a pass each.
 *
 * FILTERS. FAISS checks the filter before computing a distance, so an id list keeping a
 * share s of the vectors is searched with nprobe / s lists (all of them when it is small),
 * about the cost of an unfiltered search; whenever fewer than min(k, live, ids) hits come
 * back, the search runs again with four times the probes, up to all lists. So a filter
 * still returns k results when k match.
 *
 * SNAPSHOT PAYLOAD, version 1 (inside index.c's envelope; little-endian):
 *   offset  size  meaning
 *   0       4     payload version (1)
 *   4       4     state: 0 untrained, 1 trained
 *   state 0:
 *   8       8     L, then L bytes: the kept FLAT's own payload (layout at the top of flat.c)
 *   state 1:
 *   8       8     G, the length of the generation table
 *   16      4 G   gens[0..G): bits 0..30 the id's generation (0: never added), bit 31 LIVE
 *   16+4G   8     L, then L bytes: the FAISS index as faiss::write_index writes it
 * Nothing may follow. Load checks the table (a live id has a generation), that FAISS holds
 * exactly one entry of each live id's generation, and that the FAISS index is a supported
 * kind of this dim and metric; COSINE vectors are stored normalised. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "index/faiss_shim.h"
#include "index/index_int.h"

#define IVF_VERSION 1
#define LIVE 0x80000000u
#define GEN_MASK 0x7fffffffu
#define MIN_STALE 64            /* stale entries tolerated whatever the size */
#define MAX_ID ((1u << 30) - 1) /* ids index the generation table: ERR_LIMIT past this */

typedef struct ivf {
    vec_index base;
    uint32_t dim;
    int ip;          /* FAISS metric: inner product (IP, COSINE), else squared L2 */
    faiss_shim *fs;  /* untrained until train_at vectors exist */
    vec_index *kept; /* the FLAT of vectors before training; NULL once trained */
    size_t train_at; /* the count that trains */
    uint32_t *gens;  /* id -> generation | LIVE, gens_cap entries */
    size_t gens_cap;
    size_t live, stale; /* FAISS entries: current ones, and ones awaiting removal */
} ivf;

#define IV(ix) ((ivf *)(ix))

static int64_t label_of(uint32_t id, uint32_t gen)
{
    return (int64_t)((uint64_t)gen << 32 | id);
}

static uint32_t id_of(int64_t label)
{
    return (uint32_t)label;
}

/* Whether FAISS's entry label is current (live, of the id's latest generation). */
static int current(const ivf *x, int64_t label)
{
    uint32_t id = id_of(label);
    return id < x->gens_cap && x->gens[id] == ((uint32_t)(label >> 32) | LIVE);
}

static int is_stale(void *ctx, int64_t label)
{
    return !current(ctx, label);
}

/* ---- the filter FAISS applies during the scan ---- */

typedef struct scan_filter {
    const ivf *x;
    const vec_filter *f; /* NULL: current entries only */
} scan_filter;

static int in_ids(const vec_filter *f, uint32_t id)
{
    size_t lo = 0, hi = f->nids;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < f->nids && f->ids[lo] == id;
}

static int scan_keep(void *ctx, int64_t label)
{
    const scan_filter *s = ctx;
    if (!current(s->x, label))
        return 0;
    const vec_filter *f = s->f;
    uint32_t id = id_of(label);
    return !f || ((!f->ids || in_ids(f, id)) && (!f->keep || f->keep(f->ctx, id)));
}

/* ---- stale entries ---- */

/* Removes every stale entry from FAISS. */
static int purge(ivf *x)
{
    size_t removed;
    int rc = faiss_shim_remove(x->fs, is_stale, x, &removed, NULL, 0);
    if (rc)
        return rc;
    x->stale = faiss_shim_ntotal(x->fs) - x->live;
    return 0;
}

static void maybe_purge(ivf *x)
{
    if (x->stale > MIN_STALE && x->stale > (x->live + x->stale) / 8)
        purge(x); /* a failure leaves the stale entries filtered out, to retry later */
}

/* Makes gens cover id. */
static int gens_reserve(ivf *x, uint32_t id)
{
    if (id < x->gens_cap)
        return 0;
    if (id > MAX_ID)
        return ERR_LIMIT;
    size_t cap = x->gens_cap ? x->gens_cap : 1024;
    while (cap <= id)
        cap *= 2;
    uint32_t *g = try_realloc(x->gens, cap * sizeof *g);
    if (!g)
        return ERR_NOMEM;
    memset(g + x->gens_cap, 0, (cap - x->gens_cap) * sizeof *g);
    x->gens = g;
    x->gens_cap = cap;
    return 0;
}

/* ---- training ---- */

/* The kept vectors as arrays (from the FLAT's payload), with (id, v) added or replacing. */
static int kept_vectors(ivf *x, uint32_t id, const float *v, float **vecs, int64_t **labels,
                        size_t *n)
{
    buf b;
    buf_init(&b);
    int rc = x->kept->ops->save(x->kept, &b);
    vec_reader r = {b.data, b.len, 0};
    vec__get_u32(&r); /* flat.c's payload version */
    size_t count = rc ? 0 : vec__get_u64(&r);
    const char *ids = vec__get_bytes(&r, count * sizeof(uint32_t));
    const char *src = vec__get_bytes(&r, count * x->dim * sizeof(float));
    float *vs = try_malloc((count + 1) * x->dim * sizeof(float));
    int64_t *ls = try_malloc((count + 1) * sizeof(int64_t));
    if (!rc && (r.bad || !vs || !ls))
        rc = r.bad ? ERR_CORRUPT : ERR_NOMEM;
    if (rc) {
        xfree(vs);
        xfree(ls);
        buf_free(&b);
        return rc;
    }
    memcpy(vs, src, count * x->dim * sizeof(float));
    size_t at = count;
    for (size_t i = 0; i < count; i++) {
        uint32_t kid;
        memcpy(&kid, ids + i * sizeof kid, sizeof kid);
        ls[i] = label_of(kid, 1);
        if (kid == id)
            at = i;
    }
    memcpy(vs + at * x->dim, v, x->dim * sizeof(float));
    ls[at] = label_of(id, 1);
    *vecs = vs;
    *labels = ls;
    *n = count + (at == count);
    buf_free(&b);
    return 0;
}

/* Trains FAISS on the kept vectors plus (id, v) and moves them all in; on failure nothing
 * changes (a fresh untrained FAISS index replaces the one that failed). */
static int train(ivf *x, uint32_t id, const float *v)
{
    float *vecs;
    int64_t *labels;
    size_t n;
    int rc = kept_vectors(x, id, v, &vecs, &labels, &n);
    if (rc)
        return rc;
    uint32_t top = 0;
    for (size_t i = 0; i < n; i++)
        top = id_of(labels[i]) > top ? id_of(labels[i]) : top;
    rc = gens_reserve(x, top);
    if (!rc)
        rc = faiss_shim_train(x->fs, n, vecs, NULL, 0);
    if (!rc)
        rc = faiss_shim_add(x->fs, n, vecs, labels, NULL, 0);
    if (rc) {
        faiss_shim *fresh;
        if (faiss_shim_create(x->base.params.factory, x->dim, x->ip, &fresh, NULL, 0) == 0) {
            faiss_shim_free(x->fs);
            x->fs = fresh;
        }
    } else {
        for (size_t i = 0; i < n; i++)
            x->gens[id_of(labels[i])] = 1 | LIVE;
        x->live = n;
        x->stale = 0;
        vec_free(x->kept);
        x->kept = NULL;
    }
    xfree(vecs);
    xfree(labels);
    return rc;
}

/* ---- the vtable ---- */

static void ivf_destroy(vec_index *ix)
{
    ivf *x = IV(ix);
    faiss_shim_free(x->fs);
    vec_free(x->kept);
    xfree(x->gens);
    xfree(x);
}

static int ivf_add(vec_index *ix, uint32_t id, const float *v)
{
    ivf *x = IV(ix);
    if (id > MAX_ID)
        return ERR_LIMIT;
    if (x->kept) {
        size_t after = vec_count(x->kept) + !vec_contains(x->kept, id);
        return after >= x->train_at ? train(x, id, v) : vec_add(x->kept, id, v);
    }
    int rc = gens_reserve(x, id);
    if (rc)
        return rc;
    uint32_t old = x->gens[id], gen = (old & GEN_MASK) + 1;
    if (gen > GEN_MASK) { /* generations of this id ran out: drop its old entries first */
        x->gens[id] = old & GEN_MASK;
        if ((rc = purge(x)) != 0) {
            x->gens[id] = old;
            return rc;
        }
        gen = 1;
    }
    int64_t label = label_of(id, gen);
    rc = faiss_shim_add(x->fs, 1, v, &label, NULL, 0);
    if (rc) {
        x->gens[id] = old;
        return rc;
    }
    x->gens[id] = gen | LIVE;
    if (old & LIVE)
        x->stale++;
    else
        x->live++;
    maybe_purge(x);
    return 0;
}

static int ivf_del(vec_index *ix, uint32_t id)
{
    ivf *x = IV(ix);
    if (x->kept)
        return vec_delete(x->kept, id);
    if (id >= x->gens_cap || !(x->gens[id] & LIVE))
        return ERR_NOTFOUND;
    x->gens[id] &= GEN_MASK;
    x->live--;
    x->stale++;
    maybe_purge(x);
    return 0;
}

static int ivf_contains(const vec_index *ix, uint32_t id)
{
    const ivf *x = IV(ix);
    if (x->kept)
        return vec_contains(x->kept, id);
    return id < x->gens_cap && (x->gens[id] & LIVE);
}

static size_t ivf_count(const vec_index *ix)
{
    const ivf *x = IV(ix);
    return x->kept ? vec_count(x->kept) : x->live;
}

static size_t ivf_memory(const vec_index *ix)
{
    const ivf *x = IV(ix);
    return sizeof *x + x->gens_cap * sizeof *x->gens + faiss_shim_memory(x->fs) +
           (x->kept ? vec_memory(x->kept) : 0);
}

/* The number of lists to probe first. With an id list that keeps a share s of the vectors,
 * nprobe / s lists: the selector is checked before any distance, so that costs about the
 * distances of an unfiltered search while it reaches as many passing vectors; and all of
 * them when the ids are too few for nprobe lists to hold 2k of them. */
static size_t first_nprobe(const ivf *x, uint32_t k, uint32_t ef, const vec_filter *f)
{
    size_t nlist = faiss_shim_nlist(x->fs);
    double nprobe = ef ? ef : 1;
    if (f && f->ids) {
        double nids = f->nids ? (double)f->nids : 1;
        if (nids < (double)x->live)
            nprobe = ceil(nprobe * (double)x->live / nids);
        if (nids * nprobe < 2.0 * k * nlist)
            nprobe = (double)nlist;
    }
    return nprobe < (double)nlist ? (size_t)nprobe : nlist;
}

/* FAISS's result slots as hits, nearest first (ties by id); returns how many. */
static size_t to_hits(const ivf *x, const float *dist, const int64_t *labels, size_t k,
                      vec_hit *out)
{
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
        if (labels[i] < 0)
            continue;
        float d = x->ip ? vec__dist_from_dot(dist[i]) : dist[i];
        out[n++] = (vec_hit){id_of(labels[i]), d};
    }
    qsort(out, n, sizeof *out, vec__hit_cmp);
    return n;
}

static int ivf_knn(vec_index *ix, const float *q, uint32_t k, uint32_t ef, const vec_filter *f,
                   vec_hit *out, size_t *n)
{
    ivf *x = IV(ix);
    if (x->kept)
        return vec_knn(x->kept, q, k, 0, f, out, n);
    size_t want = k < x->live ? k : x->live, nlist = faiss_shim_nlist(x->fs);
    if (f && f->ids && f->nids < want)
        want = f->nids;
    float *dist = try_malloc((size_t)k * sizeof *dist);
    int64_t *labels = try_malloc((size_t)k * sizeof *labels);
    int rc = dist && labels ? 0 : ERR_NOMEM;
    scan_filter sf = {x, f};
    for (size_t nprobe = first_nprobe(x, k, ef, f); !rc; nprobe *= 4) {
        rc = faiss_shim_search(x->fs, q, k, nprobe, scan_keep, &sf, dist, labels, NULL, 0);
        if (!rc)
            *n = to_hits(x, dist, labels, k, out);
        if (rc || *n >= want || nprobe >= nlist)
            break;
    }
    xfree(dist);
    xfree(labels);
    return rc;
}

static int ivf_range(vec_index *ix, const float *q, float radius, double epsilon,
                     const vec_filter *f, size_t max, vec_hit **out, size_t *n)
{
    ivf *x = IV(ix);
    if (x->kept)
        return vec_range(x->kept, q, radius, epsilon, f, max, out, n);
    /* FAISS keeps dist < r (L2) or dot > r (IP); we keep dist <= radius. */
    float r = x->ip ? nextafterf(1.0f - radius, -INFINITY) : nextafterf(radius, INFINITY);
    float *dist;
    int64_t *labels;
    size_t found;
    scan_filter sf = {x, f};
    int rc = faiss_shim_range(x->fs, q, r, x->base.params.ef_runtime, scan_keep, &sf, &dist,
                              &labels, &found, NULL, 0);
    vec_hit *hits = rc ? NULL : try_malloc((found ? found : 1) * sizeof *hits);
    if (!rc && !hits)
        rc = ERR_NOMEM;
    if (!rc) {
        found = to_hits(x, dist, labels, found, hits);
        *n = found < max ? found : max;
        *out = hits;
    }
    free(dist);
    free(labels);
    return rc;
}

/* ---- snapshots ---- */

static int append_bytes(void *ctx, const void *p, size_t n)
{
    return buf_try_append(ctx, p, n);
}

/* Appends a u64 length placeholder, then what fill writes; sets the length. */
static int put_sized(buf *out, int (*fill)(ivf *x, buf *out), ivf *x)
{
    size_t at = out->len;
    vec__put_u64(out, 0);
    int rc = fill(x, out);
    uint64_t len = out->len - at - 8;
    for (int i = 0; i < 8; i++)
        out->data[at + i] = (char)(len >> (8 * i));
    return rc;
}

static int fill_kept(ivf *x, buf *out)
{
    return x->kept->ops->save(x->kept, out);
}

static int fill_faiss(ivf *x, buf *out)
{
    return faiss_shim_serialize(x->fs, append_bytes, out, NULL, 0);
}

static int ivf_save(vec_index *ix, buf *out)
{
    ivf *x = IV(ix);
    size_t g = x->gens_cap;
    while (g && !x->gens[g - 1])
        g--;
    /* the fixed fields and the table fit before any is written; the fills reserve theirs */
    if (buf_try_reserve(out, 8 + 8 + g * sizeof *x->gens + 8))
        return ERR_NOMEM;
    vec__put_u32(out, IVF_VERSION);
    vec__put_u32(out, x->kept ? 0 : 1);
    if (x->kept)
        return put_sized(out, fill_kept, x);
    vec__put_u64(out, g);
    buf_append(out, x->gens, g * sizeof *x->gens);
    return put_sized(out, fill_faiss, x);
}

static int corrupt(char *err, size_t errlen, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "IVF snapshot: %s", what);
    return ERR_CORRUPT;
}

/* Counts FAISS's current entries, each id once: a second entry for a live id of its
 * generation would be returned twice by a search. */
typedef struct entry_count {
    const ivf *x;
    uint64_t *seen; /* bitmap over the generation table */
    size_t current, repeated;
} entry_count;

static void count_entry(void *ctx, int64_t label)
{
    entry_count *c = ctx;
    if (!current(c->x, label))
        return;
    uint32_t id = id_of(label);
    uint64_t bit = UINT64_C(1) << (id % 64);
    c->repeated += (c->seen[id / 64] & bit) != 0;
    c->seen[id / 64] |= bit;
    c->current++;
}

/* The number of current entries in fs, or SIZE_MAX if an id has two. */
static size_t current_entries(const ivf *x, const faiss_shim *fs)
{
    entry_count c = {x, xcalloc(x->gens_cap / 64 + 1, sizeof(uint64_t)), 0, 0};
    faiss_shim_each_label(fs, count_entry, &c);
    xfree(c.seen);
    return c.repeated ? SIZE_MAX : c.current;
}

static int load_trained(ivf *x, vec_reader *r, char *err, size_t errlen)
{
    uint64_t g = vec__get_u64(r);
    if (r->bad || g > r->left / sizeof(uint32_t) || g > (uint64_t)MAX_ID + 1)
        return corrupt(err, errlen, "generation table truncated or too long");
    if (g && gens_reserve(x, (uint32_t)(g - 1)))
        return ERR_NOMEM;
    const char *table = vec__get_bytes(r, g * sizeof(uint32_t));
    if (g)
        memcpy(x->gens, table, g * sizeof(uint32_t));
    size_t live = 0;
    for (size_t i = 0; i < g; i++) {
        if ((x->gens[i] & LIVE) && !(x->gens[i] & GEN_MASK))
            return corrupt(err, errlen, "a live id without a generation");
        live += (x->gens[i] & LIVE) != 0;
    }
    uint64_t len = vec__get_u64(r);
    const char *p = vec__get_bytes(r, len);
    if (r->bad || r->left)
        return corrupt(err, errlen, "FAISS index length disagrees");
    faiss_shim *fs;
    char why[200];
    int rc = faiss_shim_deserialize(p, len, x->dim, x->ip, &fs, why, sizeof why);
    if (rc)
        return rc == ERR_NOMEM ? rc : corrupt(err, errlen, why);
    if (current_entries(x, fs) != live) {
        faiss_shim_free(fs);
        return corrupt(err, errlen, "FAISS's entries disagree with the live ids");
    }
    faiss_shim_free(x->fs);
    x->fs = fs;
    x->live = live;
    x->stale = faiss_shim_ntotal(fs) - live;
    vec_free(x->kept);
    x->kept = NULL;
    return 0;
}

static int ivf_load(vec_index *ix, const char *p, size_t len, char *err, size_t errlen)
{
    ivf *x = IV(ix);
    vec_reader r = {p, len, 0};
    uint32_t version = vec__get_u32(&r);
    uint32_t state = vec__get_u32(&r);
    if (r.bad || version != IVF_VERSION || state > 1)
        return corrupt(err, errlen, r.bad ? "truncated" : "unknown version or state");
    if (state == 1)
        return load_trained(x, &r, err, errlen);
    uint64_t klen = vec__get_u64(&r);
    const char *kp = vec__get_bytes(&r, klen);
    if (r.bad || r.left)
        return corrupt(err, errlen, "kept vectors' length disagrees");
    return x->kept->ops->load(x->kept, kp, klen, err, errlen);
}

static const vec_ops ivf_ops = {
    .destroy = ivf_destroy,
    .add = ivf_add,
    .del = ivf_del,
    .contains = ivf_contains,
    .count = ivf_count,
    .memory = ivf_memory,
    .knn = ivf_knn,
    .range = ivf_range,
    .save = ivf_save,
    .load = ivf_load,
};

int vec__ivf_create(const vec_params *p, vec_index **out, char *err, size_t errlen)
{
    if (!p->factory || !*p->factory) {
        if (err && errlen)
            snprintf(err, errlen, "IVF needs a FAISS index factory string (e.g. IVF1024,PQ32)");
        return ERR_INVAL;
    }
    ivf *x = try_calloc(1, sizeof *x);
    if (!x)
        return ERR_NOMEM;
    x->base.ops = &ivf_ops;
    x->dim = p->dim;
    x->ip = p->metric != VEC_L2;
    int rc = faiss_shim_create(p->factory, p->dim, x->ip, &x->fs, err, errlen);
    /* COSINE vectors arrive normalised: the FLAT treats them as IP, as FAISS does. */
    vec_params fp = {.kind = VEC_FLAT, .metric = x->ip ? VEC_IP : VEC_L2, .dim = p->dim};
    if (!rc)
        rc = vec_create(&fp, &x->kept, err, errlen);
    if (rc) {
        faiss_shim_free(x->fs);
        xfree(x);
        return rc;
    }
    x->train_at = faiss_shim_train_size(x->fs);
    *out = &x->base;
    return 0;
}
