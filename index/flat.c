/* flat.c: the FLAT index, exact search by scanning every vector; the oracle the other kinds
 * are tested against. Vectors sit in one contiguous 64-byte-aligned block, slot after slot,
 * grown by doubling and halved when three quarters are free; a delete moves the last slot
 * into the hole, so the slots stay dense and memory comes back. An open-addressing hash
 * maps id -> slot. kNN scans four vectors per kernel call (the query's loads shared) into a
 * bounded max-heap of the k best; a filter's keep() is asked before any distance, and a
 * filter's id list is scanned alone instead of the whole block.
 *
 * SNAPSHOT PAYLOAD, version 1 (inside index.c's envelope; little-endian):
 *   offset      size        meaning
 *   0           4           payload version (1)
 *   4           8           N, the number of vectors
 *   12          4 N         the ids, in slot order (no id twice)
 *   12+4N       4 N dim     the vectors as float32, in slot order (all finite)
 * Nothing may follow. COSINE vectors are stored normalised, as they are held. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "index/index_int.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "flat.c copies float32 and uint32 arrays to snapshots as little-endian bytes"
#endif

#define FLAT_VERSION 1
#define MIN_CAP 16
#define NO_SLOT UINT32_MAX

typedef struct slot_ref {
    uint32_t id, slot; /* slot NO_SLOT: an empty cell */
} slot_ref;

typedef struct flat {
    vec_index base;
    uint32_t dim;
    size_t n, cap;  /* slots used, slots allocated */
    float *vecs;    /* cap * dim floats, 64-byte aligned */
    uint32_t *ids;  /* slot -> id */
    slot_ref *map;  /* id -> slot, map_cap cells (a power of two, or 0) */
    size_t map_cap; /* kept at most half full */
} flat;

#define FL(ix) ((flat *)(ix))
#define VEC(f, s) ((f)->vecs + (size_t)(s) * (f)->dim)

/* ---- the id -> slot map ---- */

static size_t cell_of(const flat *f, uint32_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 20) & (f->map_cap - 1);
}

/* The cell holding id, or the empty cell where it would go. */
static size_t map_find(const flat *f, uint32_t id)
{
    size_t c = cell_of(f, id);
    while (f->map[c].slot != NO_SLOT && f->map[c].id != id)
        c = (c + 1) & (f->map_cap - 1);
    return c;
}

static uint32_t slot_of(const flat *f, uint32_t id)
{
    if (!f->map_cap)
        return NO_SLOT;
    return f->map[map_find(f, id)].slot;
}

/* Rebuilds the map with cap cells from the slots (which hold no id twice). */
static int map_rebuild(flat *f, size_t cap)
{
    slot_ref *m = try_malloc(cap * sizeof *m);
    if (!m)
        return ERR_NOMEM;
    xfree(f->map);
    f->map = m;
    f->map_cap = cap;
    for (size_t c = 0; c < cap; c++)
        m[c].slot = NO_SLOT;
    for (size_t s = 0; s < f->n; s++)
        m[map_find(f, f->ids[s])] = (slot_ref){f->ids[s], (uint32_t)s};
    return 0;
}

/* Empties cell c, shifting later cells of its run back so every lookup still finds them. */
static void map_remove(flat *f, size_t c)
{
    size_t mask = f->map_cap - 1, hole = c;
    for (size_t j = (c + 1) & mask; f->map[j].slot != NO_SLOT; j = (j + 1) & mask) {
        size_t home = cell_of(f, f->map[j].id);
        /* j's entry may fill the hole when its home is not inside (hole, j]. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            f->map[hole] = f->map[j];
            hole = j;
        }
    }
    f->map[hole].slot = NO_SLOT;
}

/* ---- the block of vectors ---- */

/* Moves the slots into new arrays of cap slots (cap >= n). */
static int resize(flat *f, size_t cap)
{
    size_t bytes = cap * f->dim * sizeof(float);
    void *v = bytes / sizeof(float) / f->dim != cap ? NULL : try_aligned(64, bytes);
    uint32_t *ids = v ? try_malloc(cap * sizeof *ids) : NULL;
    if (!ids) {
        xfree(v);
        return ERR_NOMEM;
    }
    if (f->n) {
        memcpy(v, f->vecs, f->n * f->dim * sizeof(float));
        memcpy(ids, f->ids, f->n * sizeof *ids);
    }
    xfree(f->vecs);
    xfree(f->ids);
    f->vecs = v;
    f->ids = ids;
    f->cap = cap;
    return 0;
}

/* Room for one more vector, in the block and in the map. */
static int reserve_one(flat *f)
{
    if (f->n == f->cap) {
        size_t hint = f->base.params.initial_cap;
        size_t cap = f->cap ? 2 * f->cap : (hint > MIN_CAP && hint < 65536 ? hint : MIN_CAP);
        int rc = resize(f, cap);
        if (rc)
            return rc;
    }
    if (2 * (f->n + 1) > f->map_cap)
        return map_rebuild(f, f->map_cap ? 2 * f->map_cap : 2 * MIN_CAP);
    return 0;
}

static int flat_add(vec_index *ix, uint32_t id, const float *v)
{
    flat *f = FL(ix);
    uint32_t s = slot_of(f, id);
    if (s == NO_SLOT) {
        int rc = reserve_one(f);
        if (rc)
            return rc;
        s = (uint32_t)f->n++;
        f->ids[s] = id;
        f->map[map_find(f, id)] = (slot_ref){id, s};
    }
    memcpy(VEC(f, s), v, f->dim * sizeof(float));
    return 0;
}

static int flat_del(vec_index *ix, uint32_t id)
{
    flat *f = FL(ix);
    if (!f->map_cap)
        return ERR_NOTFOUND;
    size_t c = map_find(f, id);
    uint32_t s = f->map[c].slot;
    if (s == NO_SLOT)
        return ERR_NOTFOUND;
    map_remove(f, c);
    size_t last = --f->n;
    if (s != last) {
        memcpy(VEC(f, s), VEC(f, last), f->dim * sizeof(float));
        f->ids[s] = f->ids[last];
        f->map[map_find(f, f->ids[s])].slot = s;
    }
    /* Give memory back once three quarters are free; a failed shrink keeps the old. */
    if (f->cap > MIN_CAP && f->n <= f->cap / 4)
        (void)resize(f, f->cap / 2);
    if (f->map_cap > 2 * MIN_CAP && 8 * f->n < f->map_cap)
        (void)map_rebuild(f, f->map_cap / 2);
    return 0;
}

static int flat_contains(const vec_index *ix, uint32_t id)
{
    return slot_of(FL(ix), id) != NO_SLOT;
}

static size_t flat_count(const vec_index *ix)
{
    return FL(ix)->n;
}

static size_t flat_memory(const vec_index *ix)
{
    const flat *f = FL(ix);
    return sizeof *f + f->cap * (f->dim * sizeof(float) + sizeof(uint32_t)) +
           f->map_cap * sizeof(slot_ref);
}

/* ---- reads for the GPU mirror (index_int.h) ---- */

int vec__flat_get(const vec_index *ix, uint32_t id, float *out)
{
    const flat *f = FL(ix);
    uint32_t s = slot_of(f, id);
    if (s == NO_SLOT)
        return ERR_NOTFOUND;
    memcpy(out, VEC(f, s), f->dim * sizeof(float));
    return 0;
}

uint64_t vec__flat_id_bound(const vec_index *ix)
{
    const flat *f = FL(ix);
    uint64_t bound = 0;
    for (size_t s = 0; s < f->n; s++)
        if (f->ids[s] >= bound)
            bound = (uint64_t)f->ids[s] + 1;
    return bound;
}

/* ---- scans ---- */

#define BLOCK 64 /* slots gathered before their distances are taken */

/* A scan gathers the slots that pass the filter into blocks, takes their distances four
 * at a time, and hands each block of (slot, distance) to take. */
typedef struct scan {
    const flat *f;
    const float *q;
    const vec_kern *kern;
    int l2;
    void (*take)(void *ctx, const flat *f, const uint32_t *slot, const float *d, size_t m);
    void *ctx;
    uint32_t slot[BLOCK];
    size_t m;
} scan;

static void scan_flush(scan *sc)
{
    float d[BLOCK];
    const flat *f = sc->f;
    for (size_t j = 0; j < sc->m; j += 4) {
        const float *v[4];
        for (size_t i = 0; i < 4; i++)
            v[i] = VEC(f, sc->slot[j + i < sc->m ? j + i : j]);
        if (sc->l2)
            sc->kern->l2sq_x4(sc->q, v, f->dim, d + j);
        else
            sc->kern->dot_x4(sc->q, v, f->dim, d + j);
    }
    if (!sc->l2)
        for (size_t j = 0; j < sc->m; j++)
            d[j] = vec__dist_from_dot(d[j]);
    sc->take(sc->ctx, f, sc->slot, d, sc->m);
    sc->m = 0;
}

static inline void scan_push(scan *sc, uint32_t slot)
{
    sc->slot[sc->m++] = slot;
    if (sc->m == BLOCK)
        scan_flush(sc);
}

/* Every slot that passes f (NULL: every slot), to sc->take. */
static void scan_run(scan *sc, const vec_filter *f)
{
    const flat *fl = sc->f;
    if (f && f->ids) {
        for (size_t i = 0; i < f->nids; i++) {
            uint32_t s = slot_of(fl, f->ids[i]);
            if (s != NO_SLOT && (!f->keep || f->keep(f->ctx, f->ids[i])))
                scan_push(sc, s);
        }
    } else if (f) {
        for (size_t s = 0; s < fl->n; s++)
            if (f->keep(f->ctx, fl->ids[s]))
                scan_push(sc, (uint32_t)s);
    } else {
        for (size_t s = 0; s < fl->n; s++)
            scan_push(sc, (uint32_t)s);
    }
    if (sc->m)
        scan_flush(sc);
}

static void scan_init(scan *sc, const flat *f, const float *q,
                      void (*take)(void *, const flat *, const uint32_t *, const float *, size_t),
                      void *ctx)
{
    sc->f = f;
    sc->q = q;
    sc->kern = vec__kern();
    sc->l2 = f->base.params.metric == VEC_L2;
    sc->take = take;
    sc->ctx = ctx;
    sc->m = 0;
}

/* ---- kNN: a bounded max-heap of the k best, ordered by (dist, id) ---- */

typedef struct topk {
    vec_hit *h;
    size_t n, k;
} topk;

static int worse(const vec_hit *a, const vec_hit *b)
{
    return a->dist > b->dist || (a->dist == b->dist && a->id > b->id);
}

static void sift_down(topk *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->n && worse(&t->h[l], &t->h[m]))
            m = l;
        if (r < t->n && worse(&t->h[r], &t->h[m]))
            m = r;
        if (m == i)
            return;
        vec_hit x = t->h[i];
        t->h[i] = t->h[m];
        t->h[m] = x;
        i = m;
    }
}

static void topk_push(topk *t, vec_hit h)
{
    if (t->n < t->k) {
        size_t i = t->n++;
        while (i > 0 && worse(&h, &t->h[(i - 1) / 2])) {
            t->h[i] = t->h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        t->h[i] = h;
    } else if (worse(&t->h[0], &h)) {
        t->h[0] = h;
        sift_down(t, 0);
    }
}

static void topk_take(void *ctx, const flat *f, const uint32_t *slot, const float *d, size_t m)
{
    topk *t = ctx;
    for (size_t j = 0; j < m; j++)
        if (t->n < t->k || d[j] <= t->h[0].dist) /* cheap test first: most lose */
            topk_push(t, (vec_hit){f->ids[slot[j]], d[j]});
}

static int flat_knn(vec_index *ix, const float *q, uint32_t k, uint32_t ef, const vec_filter *f,
                    vec_hit *out, size_t *n)
{
    (void)ef;
    topk t = {out, 0, k};
    scan sc;
    scan_init(&sc, FL(ix), q, topk_take, &t);
    scan_run(&sc, f);
    qsort(out, t.n, sizeof *out, vec__hit_cmp);
    *n = t.n;
    return 0;
}

/* ---- range: every hit within the radius, sorted, cut at max ---- */

typedef struct within {
    float radius;
    vec_hit *h;
    size_t n, cap;
    int nomem;
} within;

static void within_take(void *ctx, const flat *f, const uint32_t *slot, const float *d, size_t m)
{
    within *w = ctx;
    for (size_t j = 0; j < m && !w->nomem; j++) {
        if (!(d[j] <= w->radius))
            continue;
        if (w->n == w->cap) {
            size_t cap = w->cap ? 2 * w->cap : 64;
            vec_hit *h = try_realloc(w->h, cap * sizeof *h);
            if (!h) {
                w->nomem = 1;
                return;
            }
            w->h = h;
            w->cap = cap;
        }
        w->h[w->n++] = (vec_hit){f->ids[slot[j]], d[j]};
    }
}

static int flat_range(vec_index *ix, const float *q, float radius, double epsilon,
                      const vec_filter *f, size_t max, vec_hit **out, size_t *n)
{
    (void)epsilon; /* exact: no approximation to bound */
    within w = {.radius = radius};
    scan sc;
    scan_init(&sc, FL(ix), q, within_take, &w);
    scan_run(&sc, f);
    if (w.nomem) {
        xfree(w.h);
        return ERR_NOMEM;
    }
    if (w.n > 1)
        qsort(w.h, w.n, sizeof *w.h, vec__hit_cmp);
    *out = w.h;
    *n = w.n < max ? w.n : max;
    return 0;
}

/* ---- snapshots (the payload table is at the top) ---- */

static int flat_save(vec_index *ix, buf *out)
{
    const flat *f = FL(ix);
    if (buf_try_reserve(out, 12 + f->n * (sizeof *f->ids + f->dim * sizeof(float))))
        return ERR_NOMEM; /* the appends below then fit */
    vec__put_u32(out, FLAT_VERSION);
    vec__put_u64(out, f->n);
    if (f->n) {
        buf_append(out, f->ids, f->n * sizeof *f->ids);
        buf_append(out, f->vecs, f->n * f->dim * sizeof(float));
    }
    return 0;
}

static int corrupt(char *err, size_t errlen, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "FLAT snapshot: %s", what);
    return ERR_CORRUPT;
}

static int flat_load(vec_index *ix, const char *p, size_t len, char *err, size_t errlen)
{
    flat *f = FL(ix);
    vec_reader r = {p, len, 0};
    uint32_t version = vec__get_u32(&r);
    uint64_t n = vec__get_u64(&r);
    if (r.bad || version != FLAT_VERSION)
        return corrupt(err, errlen, r.bad ? "truncated" : "unknown version");
    size_t per = sizeof(uint32_t) + (size_t)f->dim * sizeof(float);
    if (n > r.left / per || n * per != r.left)
        return corrupt(err, errlen, "length disagrees with the vector count");
    if (n && resize(f, n < MIN_CAP ? MIN_CAP : n))
        return ERR_NOMEM;
    if (!n)
        return 0;
    const char *ids = vec__get_bytes(&r, n * sizeof(uint32_t));
    const char *vecs = vec__get_bytes(&r, n * f->dim * sizeof(float));
    memcpy(f->ids, ids, n * sizeof(uint32_t));
    memcpy(f->vecs, vecs, n * f->dim * sizeof(float));
    f->n = n;
    for (size_t i = 0; i < n * f->dim; i++)
        if (!__builtin_isfinite(f->vecs[i]))
            return corrupt(err, errlen, "a vector holds NaN or infinity");
    size_t cap = 2 * MIN_CAP;
    while (cap < 2 * n)
        cap *= 2;
    if (map_rebuild(f, cap))
        return ERR_NOMEM;
    for (size_t s = 0; s < n; s++)
        if (slot_of(f, f->ids[s]) != s)
            return corrupt(err, errlen, "an id appears twice");
    return 0;
}

static void flat_destroy(vec_index *ix)
{
    flat *f = FL(ix);
    xfree(f->vecs);
    xfree(f->ids);
    xfree(f->map);
    xfree(f);
}

static const vec_ops flat_ops = {
    .destroy = flat_destroy,
    .add = flat_add,
    .del = flat_del,
    .contains = flat_contains,
    .count = flat_count,
    .memory = flat_memory,
    .knn = flat_knn,
    .range = flat_range,
    .save = flat_save,
    .load = flat_load,
};

int vec__flat_create(const vec_params *p, vec_index **out, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    flat *f = try_calloc(1, sizeof *f);
    if (!f)
        return ERR_NOMEM;
    f->base.ops = &flat_ops;
    f->base.params = *p; /* index.c sets it again; reserve_one reads initial_cap */
    f->dim = p->dim;
    *out = &f->base;
    return 0;
}
