/* ft_index.c: the FT indexes in memory. The registry of indexes, each index's document
 * table (key <-> dense uint32 id, freed ids reused), its TAG posting lists and NUMERIC
 * columns, and the step that re-reads one hash and brings every attribute (and, through
 * ft_build.c's queue, every vector) in line with it: the hooks that the dispatcher calls on
 * each key change land here. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/server.h"
#include "query/ft.h"

#define SHOW(s, len) (int)((len) > 64 ? 64 : (len)), (s)

static struct {
    ft_index **ix;
    int n, cap;
} reg;

/* ---- ft_map: bytes -> uint32 --------------------------------------------------------------- */

struct ft_map_slot {
    char *key; /* NULL: empty */
    uint32_t klen, val;
    uint64_t h;
};

static uint64_t map_hash(const char *k, size_t n)
{
    return hash_bytes(k, n, 0x9e3779b97f4a7c15ull);
}

static struct ft_map_slot *map_find(const ft_map *m, const char *k, size_t n)
{
    if (!m->cap)
        return NULL;
    uint64_t h = map_hash(k, n);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct ft_map_slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->h == h && s->klen == n && memcmp(s->key, k, n) == 0)
            return s;
    }
}

static void map_place(ft_map *m, struct ft_map_slot s)
{
    size_t i = s.h & (m->cap - 1);
    while (m->slots[i].key)
        i = (i + 1) & (m->cap - 1);
    m->slots[i] = s;
}

/* Inserts k (absent) with val; returns the map's copy of k, which lives until deleted. */
static const char *map_put(ft_map *m, const char *k, size_t n, uint32_t val)
{
    if ((m->n + 1) * 2 > m->cap) {
        ft_map old = *m;
        m->cap = old.cap ? old.cap * 2 : 64;
        m->slots = xcalloc(m->cap, sizeof *m->slots);
        for (size_t i = 0; i < old.cap; i++)
            if (old.slots[i].key)
                map_place(m, old.slots[i]);
        xfree(old.slots);
    }
    struct ft_map_slot s = {xmemdup(k, n), (uint32_t)n, val, map_hash(k, n)};
    map_place(m, s);
    m->n++;
    return s.key;
}

/* Deletes the slot (backward shift: no tombstones). */
static void map_del(ft_map *m, struct ft_map_slot *s)
{
    size_t mask = m->cap - 1, i = (size_t)(s - m->slots), j = i;
    xfree(s->key);
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].key)
            break;
        size_t home = m->slots[j].h & mask;
        /* move j back to i unless its home lies cyclically in (i, j] */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->n--;
}

static void map_free(ft_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        xfree(m->slots[i].key);
    xfree(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- bitmaps and columns --------------------------------------------------------------- */

static inline void bit_set(uint64_t *b, uint32_t i) { b[i >> 6] |= 1ull << (i & 63); }
static inline void bit_clr(uint64_t *b, uint32_t i) { b[i >> 6] &= ~(1ull << (i & 63)); }
static inline int bit_get(const uint64_t *b, uint32_t i) { return (int)(b[i >> 6] >> (i & 63) & 1); }

static void *grow_col(void *p, size_t elem, uint32_t old, uint32_t cap)
{
    p = xrealloc(p, elem * cap);
    memset((char *)p + elem * old, 0, elem * (cap - old));
    return p;
}

static uint64_t *grow_bits(uint64_t *b, uint32_t old, uint32_t cap)
{
    return grow_col(b, 8, (old + 63) / 64, (cap + 63) / 64);
}

/* Makes every column hold ids below cap. */
static void grow(ft_index *ix, uint32_t need)
{
    if (need <= ix->cap)
        return;
    uint32_t old = ix->cap, cap = old ? old : 64;
    while (cap < need)
        cap *= 2;
    ix->key = grow_col(ix->key, sizeof *ix->key, old, cap);
    ix->klen = grow_col(ix->klen, sizeof *ix->klen, old, cap);
    ix->live = grow_bits(ix->live, old, cap);
    ix->seen = grow_bits(ix->seen, old, cap);
    for (int s = 0; s < ix->def.ntags; s++) {
        ix->tags[s].doc = grow_col(ix->tags[s].doc, sizeof(char *), old, cap);
        ix->tags[s].doclen = grow_col(ix->tags[s].doclen, sizeof(uint32_t), old, cap);
    }
    for (int s = 0; s < ix->def.nnums; s++) {
        ix->nums[s] = xrealloc(ix->nums[s], sizeof(double) * cap);
        for (uint32_t i = old; i < cap; i++)
            ix->nums[s][i] = NAN;
    }
    for (int s = 0; s < ix->def.nvecs; s++) {
        ix->vecs[s].has = grow_bits(ix->vecs[s].has, old, cap);
        ix->vecs[s].crc = grow_col(ix->vecs[s].crc, sizeof(uint32_t), old, cap);
    }
    ix->cap = cap;
}

/* ---- the document table ------------------------------------------------------------------ */

static uint32_t id_alloc(ft_index *ix)
{
    if (ix->nfree)
        return ix->free_ids[--ix->nfree];
    grow(ix, ix->bound + 1);
    return ix->bound++;
}

static void id_free(ft_index *ix, uint32_t id)
{
    if (ix->nfree == ix->capfree) {
        ix->capfree = ix->capfree ? ix->capfree * 2 : 64;
        ix->free_ids = xrealloc(ix->free_ids, sizeof *ix->free_ids * ix->capfree);
    }
    ix->free_ids[ix->nfree++] = id;
}

int ft__doc_put(ft_index *ix, uint32_t id, const char *key, size_t klen)
{
    if (map_find(&ix->keys, key, klen) || (id < ix->bound && ix->key[id]))
        return -1;
    grow(ix, id + 1);
    if (id >= ix->bound)
        ix->bound = id + 1;
    ix->key[id] = map_put(&ix->keys, key, klen, id);
    ix->klen[id] = (uint32_t)klen;
    ix->ndocs++;
    return 0;
}

/* After a snapshot load: every id below bound without a key goes to the free list. */
static void collect_free(ft_index *ix)
{
    ix->nfree = 0;
    for (uint32_t id = ix->bound; id-- > 0;)
        if (!ix->key[id])
            id_free(ix, id);
}

const char *ft_doc_key(const ft_index *ix, uint32_t id, size_t *klen)
{
    if (id >= ix->bound || !ix->key[id])
        return NULL;
    *klen = ix->klen[id];
    return ix->key[id];
}

int64_t ft_doc_id(const ft_index *ix, const char *key, size_t klen)
{
    struct ft_map_slot *s = map_find(&ix->keys, key, klen);
    return s ? (int64_t)s->val : -1;
}

/* ---- TAG posting lists ------------------------------------------------------------------- */

struct ft_posting {
    uint32_t *ids;
    uint32_t n, cap;
};

/* Position of id in the sorted list (or where it would go). */
static uint32_t post_find(const struct ft_posting *p, uint32_t id)
{
    uint32_t lo = 0, hi = p->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (p->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void post_add(struct ft_posting *p, uint32_t id)
{
    uint32_t at = post_find(p, id);
    if (at < p->n && p->ids[at] == id)
        return;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 4;
        p->ids = xrealloc(p->ids, sizeof *p->ids * p->cap);
    }
    memmove(p->ids + at + 1, p->ids + at, sizeof *p->ids * (p->n - at));
    p->ids[at] = id;
    p->n++;
}

static void post_del(struct ft_posting *p, uint32_t id)
{
    uint32_t at = post_find(p, id);
    if (at == p->n || p->ids[at] != id)
        return;
    memmove(p->ids + at, p->ids + at + 1, sizeof *p->ids * (p->n - at - 1));
    p->n--;
}

/* Normalises one tag value: trimmed, ASCII lower case unless the field is case-sensitive.
 * Appends it to out (no NUL); returns its length. */
static size_t tag_norm(const ft_field *f, const char *s, size_t len, buf *out)
{
    while (len && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    buf_reserve(out, len + 1);
    for (size_t i = 0; i < len; i++)
        out->data[out->len + i] = (f->flags & FTFL_CASESENSITIVE) ? s[i]
                                  : (char)tolower((unsigned char)s[i]);
    out->len += len;
    return len;
}

/* A document's raw TAG value split on the separator into "v1\0v2\0..." (empty values
 * dropped). */
static void tag_split(const ft_field *f, const char *s, size_t len, buf *out)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != f->sep)
            continue;
        if (tag_norm(f, s + start, i - start, out))
            buf_appendc(out, '\0');
        start = i + 1;
    }
}

static void tag_list_op(ft_tags *tg, const char *v, size_t n, uint32_t id, int add)
{
    struct ft_map_slot *s = map_find(&tg->values, v, n);
    if (!add) {
        if (!s)
            return;
        struct ft_posting *p = &tg->lists[s->val];
        post_del(p, id);
        if (p->n == 0) {
            if (tg->nfree == tg->capfree) {
                tg->capfree = tg->capfree ? tg->capfree * 2 : 16;
                tg->free_lists = xrealloc(tg->free_lists, sizeof(uint32_t) * tg->capfree);
            }
            tg->free_lists[tg->nfree++] = s->val;
            map_del(&tg->values, s);
        }
        return;
    }
    if (!s) {
        uint32_t li;
        if (tg->nfree) {
            li = tg->free_lists[--tg->nfree];
        } else {
            if (tg->nlists == tg->caplists) {
                tg->caplists = tg->caplists ? tg->caplists * 2 : 16;
                tg->lists = xrealloc(tg->lists, sizeof *tg->lists * tg->caplists);
            }
            li = tg->nlists++;
            memset(&tg->lists[li], 0, sizeof tg->lists[li]);
        }
        map_put(&tg->values, v, n, li);
        s = map_find(&tg->values, v, n);
    }
    post_add(&tg->lists[s->val], id);
}

static void tag_doc_op(ft_tags *tg, uint32_t id, int add)
{
    const char *p = tg->doc[id], *end = p + tg->doclen[id];
    while (p && p < end) {
        size_t n = strlen(p);
        tag_list_op(tg, p, n, id, add);
        p += n + 1;
    }
}

/* Gives document id the values vals (len bytes, split form; len 0: none). */
static void tag_set(ft_tags *tg, uint32_t id, const char *vals, size_t len)
{
    if (tg->doclen[id] == len && (len == 0 || memcmp(tg->doc[id], vals, len) == 0))
        return;
    tag_doc_op(tg, id, 0);
    xfree(tg->doc[id]);
    tg->doc[id] = len ? xmemdup(vals, len) : NULL;
    tg->doclen[id] = (uint32_t)len;
    tag_doc_op(tg, id, 1);
}

size_t ft__tag_bytes(const ft_index *ix)
{
    size_t n = 0;
    for (int s = 0; s < ix->def.ntags; s++) {
        const ft_tags *tg = &ix->tags[s];
        n += tg->values.cap * sizeof(struct ft_map_slot) + tg->caplists * sizeof *tg->lists;
        for (uint32_t l = 0; l < tg->nlists; l++)
            n += tg->lists[l].cap * sizeof(uint32_t);
        for (uint32_t id = 0; id < ix->bound; id++)
            n += tg->doclen[id];
    }
    return n;
}

void ft_tag_match(ft_index *ix, const ft_field *f, const char *val, size_t len, uint64_t *bits)
{
    buf b;
    buf_init(&b);
    size_t n = tag_norm(f, val, len, &b);
    struct ft_map_slot *s = map_find(&ix->tags[f->slot].values, b.data ? b.data : "", n);
    buf_free(&b);
    if (!s)
        return;
    const struct ft_posting *p = &ix->tags[f->slot].lists[s->val];
    for (uint32_t i = 0; i < p->n; i++)
        bit_set(bits, p->ids[i]);
}

/* ---- NUMERIC columns ---------------------------------------------------------------------- */

void ft_num_match(ft_index *ix, const ft_field *f, double lo, double hi, int lo_excl,
                  int hi_excl, uint64_t *bits)
{
    const double *v = ix->nums[f->slot];
    for (uint32_t id = 0; id < ix->bound; id++) {
        double x = v[id];
        if (x != x || x < lo || x > hi || (lo_excl && x == lo) || (hi_excl && x == hi))
            continue;
        bit_set(bits, id);
    }
}

double ft_num_value(const ft_index *ix, const ft_field *f, uint32_t id)
{
    return id < ix->bound ? ix->nums[f->slot][id] : NAN;
}

const ft_vecf *ft_vec(const ft_index *ix, const ft_field *f)
{
    return &ix->vecs[f->slot];
}

/* ---- indexing one document ---------------------------------------------------------------- */

/* Why a document cannot be indexed (into err); 0 if it can. */
static int check_vector(const ft_field *f, const char *v, size_t len, char *err, size_t errlen)
{
    if (len != (size_t)f->vp.dim * 4) {
        snprintf(err, errlen, "Could not add vector with blob size %zu (expected size %zu)",
                 len, (size_t)f->vp.dim * 4);
        return -1;
    }
    double norm = 0;
    for (uint32_t i = 0; i < f->vp.dim; i++) {
        float x;
        memcpy(&x, v + 4 * (size_t)i, 4);
        if (!isfinite(x)) {
            snprintf(err, errlen, "vector field '%s' holds a value that is not finite", f->name);
            return -1;
        }
        norm += (double)x * x;
    }
    if (f->vp.metric == VEC_COSINE && norm == 0) {
        snprintf(err, errlen, "vector field '%s' is a zero vector (COSINE needs a direction)",
                 f->name);
        return -1;
    }
    return 0;
}

static void record_failure(ft_index *ix, const char *key, size_t klen, const char *msg)
{
    ix->failures++;
    snprintf(ix->last_error, sizeof ix->last_error, "%s", msg);
    xfree(ix->last_error_key);
    ix->last_error_key = xmemdup(key, klen);
}

/* The values of a document being indexed, read from its hash. */
typedef struct docvals {
    buf tags;        /* every TAG field's split values, one after another */
    size_t *tagoff;  /* per TAG slot: [start, end) in tags */
    double *nums;
    const char **vec; /* per VECTOR slot: the blob, NULL when absent */
} docvals;

/* Reads and checks the schema fields of hash o. -1 with err when the document fails. */
static int read_doc(ft_index *ix, store_txn *t, const store_obj *o, docvals *d, char *err,
                    size_t errlen)
{
    for (int s = 0; s < ix->def.ntags; s++)
        d->tagoff[2 * s] = d->tagoff[2 * s + 1] = 0;
    for (int s = 0; s < ix->def.nnums; s++)
        d->nums[s] = NAN;
    for (int s = 0; s < ix->def.nvecs; s++)
        d->vec[s] = NULL;
    for (int i = 0; i < ix->def.nfields; i++) {
        const ft_field *f = &ix->def.fields[i];
        if (f->type == FTF_TEXT || (f->flags & FTFL_NOINDEX))
            continue;
        const char *v;
        size_t vlen;
        int present = store_hash_get(t, o, f->name, strlen(f->name), &v, &vlen) == 0;
        if (f->type == FTF_TAG) {
            d->tagoff[2 * f->slot] = d->tags.len;
            if (present)
                tag_split(f, v, vlen, &d->tags);
            d->tagoff[2 * f->slot + 1] = d->tags.len;
        } else if (f->type == FTF_NUMERIC) {
            if (present && str_to_double(v, vlen, &d->nums[f->slot], 1) != 0) {
                snprintf(err, errlen, "Invalid numeric value: '%.*s' in field '%s'",
                         SHOW(v, vlen), f->name);
                return -1;
            }
        } else if (f->type == FTF_VECTOR) {
            if (present && check_vector(f, v, vlen, err, errlen))
                return -1;
            if (present)
                d->vec[f->slot] = v;
        }
    }
    return 0;
}

static void apply_doc(ft_index *ix, uint32_t id, const docvals *d)
{
    for (int s = 0; s < ix->def.ntags; s++)
        tag_set(&ix->tags[s], id, d->tags.data + d->tagoff[2 * s],
                d->tagoff[2 * s + 1] - d->tagoff[2 * s]);
    for (int s = 0; s < ix->def.nnums; s++)
        ix->nums[s][id] = d->nums[s];
    for (int i = 0; i < ix->def.nfields; i++) {
        const ft_field *f = &ix->def.fields[i];
        if (f->type != FTF_VECTOR || (f->flags & FTFL_NOINDEX))
            continue;
        ft_vecf *vf = &ix->vecs[f->slot];
        const char *v = d->vec[f->slot];
        if (v) {
            uint32_t crc = crc32c(0, v, (size_t)f->vp.dim * 4);
            if (bit_get(vf->has, id) && vf->crc[id] == crc)
                continue;
            bit_set(vf->has, id);
            vf->crc[id] = crc;
            ft__vop_submit(ix, VOP_ADD, f->slot, id, v);
        } else if (bit_get(vf->has, id)) {
            bit_clr(vf->has, id);
            ft__vop_submit(ix, VOP_DEL, f->slot, id, NULL);
        }
    }
    if (!bit_get(ix->live, id)) {
        bit_set(ix->live, id);
        ix->nlive++;
    }
    bit_set(ix->seen, id);
}

void ft__doc_remove(ft_index *ix, uint32_t id)
{
    for (int s = 0; s < ix->def.ntags; s++)
        tag_set(&ix->tags[s], id, NULL, 0);
    for (int s = 0; s < ix->def.nnums; s++)
        ix->nums[s][id] = NAN;
    for (int s = 0; s < ix->def.nvecs; s++)
        if (bit_get(ix->vecs[s].has, id)) {
            bit_clr(ix->vecs[s].has, id);
            ft__vop_submit(ix, VOP_DEL, s, id, NULL);
        }
    if (bit_get(ix->live, id)) {
        bit_clr(ix->live, id);
        ix->nlive--;
    }
    bit_clr(ix->seen, id);
    map_del(&ix->keys, map_find(&ix->keys, ix->key[id], ix->klen[id]));
    ix->key[id] = NULL;
    ix->klen[id] = 0;
    ix->ndocs--;
    id_free(ix, id);
    ix->dirty++;
}

static void remove_key(ft_index *ix, const char *key, size_t klen)
{
    struct ft_map_slot *s = map_find(&ix->keys, key, klen);
    if (s)
        ft__doc_remove(ix, s->val);
}

void ft__doc_index(ft_index *ix, store_txn *t, const char *key, size_t klen, const store_obj *o)
{
    if (!o || o->type != STORE_HASH) {
        remove_key(ix, key, klen);
        return;
    }
    docvals d;
    size_t tagoff[2 * FT_SCHEMA_MAX];
    double nums[FT_SCHEMA_MAX];
    const char *vec[FT_SCHEMA_MAX];
    char err[160];
    buf_init(&d.tags);
    d.tagoff = tagoff;
    d.nums = nums;
    d.vec = vec;
    if (read_doc(ix, t, o, &d, err, sizeof err)) {
        remove_key(ix, key, klen);
        record_failure(ix, key, klen, err);
    } else {
        struct ft_map_slot *s = map_find(&ix->keys, key, klen);
        uint32_t id;
        if (s) {
            id = s->val;
        } else {
            id = id_alloc(ix);
            ix->key[id] = map_put(&ix->keys, key, klen, id);
            ix->klen[id] = (uint32_t)klen;
            ix->ndocs++;
            ix->dirty++;
        }
        apply_doc(ix, id, &d);
    }
    buf_free(&d.tags);
}

int ft__prefix_match(const ft_index *ix, const char *key, size_t klen)
{
    if (ix->def.nprefixes == 0)
        return 1;
    for (int i = 0; i < ix->def.nprefixes; i++) {
        size_t n = ix->def.prefix_lens[i];
        if (n <= klen && memcmp(ix->def.prefixes[i], key, n) == 0)
            return 1;
    }
    return 0;
}

/* ---- the hooks ------------------------------------------------------------------------------ */

void ft_key_changed(int db, const char *key, size_t klen)
{
    store_txn *t = NULL;
    store_obj o;
    int found = -1; /* looked up once, for the first index that wants it */
    for (int i = 0; i < reg.n; i++) {
        ft_index *ix = reg.ix[i];
        if (ix->def.db != db || !ft__prefix_match(ix, key, klen))
            continue;
        if (found < 0) {
            if (store_txn_read(srv.store, &t) != 0)
                return;
            found = store_lookup(t, db, key, klen, clock_ms(), &o) == 0;
        }
        ft__doc_index(ix, t, key, klen, found ? &o : NULL);
    }
}

void ft_key_gone(int db, const char *key, size_t klen)
{
    for (int i = 0; i < reg.n; i++)
        if (reg.ix[i]->def.db == db)
            remove_key(reg.ix[i], key, klen);
}

/* Replaces an index by an empty one of the same definition (its database was emptied). */
static void reset(int i)
{
    ft_index *old = reg.ix[i];
    buf rec;
    buf_init(&rec);
    ft_def_encode(&old->def, &rec);
    ft_def def;
    char err[256];
    ft_index *ix = NULL;
    if (ft_def_decode(old->def.name, strlen(old->def.name), rec.data, rec.len, &def, err,
                      sizeof err) == 0)
        ix = ft__index_new(&def, err, sizeof err);
    buf_free(&rec);
    if (!ix) { /* cannot happen: the definition made an index before */
        log_warn("FT index '%s' could not be emptied: %s", old->def.name, err);
        return;
    }
    ix->dirty = 1;
    reg.ix[i] = ix;
    old->dropped = 1;
    ft__release(old);
}

void ft_flushed(int db)
{
    for (int i = 0; i < reg.n; i++)
        if (db < 0 || reg.ix[i]->def.db == db)
            reset(i);
}

/* ---- creating, finding, dropping ------------------------------------------------------------ */

ft_index *ft__index_new(ft_def *def, char *err, size_t errlen)
{
    ft_index *ix = xcalloc(1, sizeof *ix);
    ix->def = *def;
    memset(def, 0, sizeof *def);
    buf rec;
    buf_init(&rec);
    ft_def_encode(&ix->def, &rec);
    ix->def_crc = crc32c(0, rec.data, rec.len);
    buf_free(&rec);
    ix->tags = xcalloc((size_t)ix->def.ntags + 1, sizeof *ix->tags);
    ix->nums = xcalloc((size_t)ix->def.nnums + 1, sizeof *ix->nums);
    ix->vecs = xcalloc((size_t)ix->def.nvecs + 1, sizeof *ix->vecs);
    snprintf(ix->last_error, sizeof ix->last_error, "N/A");
    pthread_mutex_init(&ix->q.lock, NULL);
    buf_init(&ix->q.data);
    buf_init(&ix->scan_pos);
    grow(ix, 64);
    for (int i = 0; i < ix->def.nfields; i++) {
        const ft_field *f = &ix->def.fields[i];
        if (f->type == FTF_VECTOR &&
            vec_create(&f->vp, &ix->vecs[f->slot].vx, err, errlen) != 0) {
            ix->jobs = 0;
            ix->dropped = 1;
            ft__release(ix);
            return NULL;
        }
    }
    return ix;
}

static void index_free(ft_index *ix)
{
    for (int s = 0; s < ix->def.ntags; s++) {
        ft_tags *tg = &ix->tags[s];
        for (uint32_t i = 0; i < ix->cap; i++)
            xfree(tg->doc[i]);
        for (uint32_t l = 0; l < tg->nlists; l++)
            xfree(tg->lists[l].ids);
        map_free(&tg->values);
        xfree(tg->lists);
        xfree(tg->free_lists);
        xfree(tg->doc);
        xfree(tg->doclen);
    }
    for (int s = 0; s < ix->def.nnums; s++)
        xfree(ix->nums[s]);
    for (int s = 0; s < ix->def.nvecs; s++) {
        if (ix->vecs[s].vx)
            vec_free(ix->vecs[s].vx);
        xfree(ix->vecs[s].has);
        xfree(ix->vecs[s].crc);
        ft__bulk_free(ix->vecs[s].bulk);
    }
    xfree(ix->tags);
    xfree(ix->nums);
    xfree(ix->vecs);
    map_free(&ix->keys);
    xfree(ix->key);
    xfree(ix->klen);
    xfree(ix->free_ids);
    xfree(ix->live);
    xfree(ix->seen);
    xfree(ix->last_error_key);
    xfree(ix->q.ops);
    buf_free(&ix->q.data);
    buf_free(&ix->scan_pos);
    pthread_mutex_destroy(&ix->q.lock);
    ft_def_free(&ix->def);
    xfree(ix);
}

void ft__release(ft_index *ix)
{
    if (!ix->dropped)
        return;
    atomic_store(&ix->q.stop, 1); /* its worker drops what is queued and ends */
    if (ix->jobs == 0)
        index_free(ix);
}

void ft__register(ft_index *ix)
{
    if (reg.n == reg.cap) {
        reg.cap = reg.cap ? reg.cap * 2 : 8;
        reg.ix = xrealloc(reg.ix, sizeof *reg.ix * (size_t)reg.cap);
    }
    reg.ix[reg.n++] = ix;
}

ft_index **ft__all(int *n)
{
    *n = reg.n;
    return reg.ix;
}

int ft_create(ft_def *def, int scan, char *err, size_t errlen)
{
    if (ft_lookup(def->name, strlen(def->name))) {
        snprintf(err, errlen, "Index already exists");
        ft_def_free(def);
        return ERR_EXISTS;
    }
    ft_index *ix = ft__index_new(def, err, errlen);
    if (!ix)
        return ERR_INVAL;
    ft__register(ix);
    if (scan)
        ft__scan_start(ix);
    return 0;
}

ft_index *ft_lookup(const char *name, size_t len)
{
    for (int i = 0; i < reg.n; i++)
        if (strlen(reg.ix[i]->def.name) == len && memcmp(reg.ix[i]->def.name, name, len) == 0)
            return reg.ix[i];
    return NULL;
}

int ft_count(void)
{
    return reg.n;
}

ft_index *ft_at(int i)
{
    return reg.ix[i];
}

const ft_def *ft_index_def(const ft_index *ix)
{
    return &ix->def;
}

void ft_drop(ft_index *ix, buf *keys, uint32_t *nkeys)
{
    int i = 0;
    while (reg.ix[i] != ix)
        i++;
    memmove(reg.ix + i, reg.ix + i + 1, sizeof *reg.ix * (size_t)(reg.n - i - 1));
    reg.n--;
    if (keys) {
        *nkeys = 0;
        for (uint32_t id = 0; id < ix->bound; id++)
            if (ix->key[id]) {
                buf_append(keys, &ix->klen[id], 4);
                buf_append(keys, ix->key[id], ix->klen[id]);
                ++*nkeys;
            }
    }
    buf path;
    buf_init(&path);
    ft_snapshot_path(srv.cfg.dir, ix->def.name, &path);
    unlink(path.data);
    buf_free(&path);
    ix->dropped = 1;
    ft__release(ix);
}

/* Empties the registry at shutdown (after the workers are joined). */
void ft__free_all(void)
{
    for (int i = 0; i < reg.n; i++) {
        reg.ix[i]->dropped = 1;
        ft__release(reg.ix[i]);
    }
    xfree(reg.ix);
    memset(&reg, 0, sizeof reg);
}

/* ---- what searches read --------------------------------------------------------------------- */

uint32_t ft_id_bound(const ft_index *ix)
{
    return ix->bound;
}

size_t ft_bitmap_words(const ft_index *ix)
{
    return (ix->bound + 63) / 64;
}

const uint64_t *ft_live(const ft_index *ix)
{
    return ix->live;
}

int ft_all_live(const ft_index *ix)
{
    return ix->nlive == ix->ndocs;
}

uint32_t ft_num_docs(const ft_index *ix)
{
    return ix->nlive;
}

void ft_count_use(ft_index *ix)
{
    ix->uses++;
}

/* ---- snapshots (ft.h SNAPSHOT FORMAT) -------------------------------------------------------- */

#define SNAP_MAGIC "QVFI"
#define SNAP_VERSION 1

static void put32(buf *b, uint32_t v)
{
    buf_append(b, &v, 4);
}

void ft__snapshot_capture(ft_index *ix, buf *out)
{
    size_t start = out->len;
    buf_append(out, SNAP_MAGIC, 4);
    put32(out, SNAP_VERSION);
    put32(out, ix->def_crc);
    put32(out, (uint32_t)ix->def.nvecs);
    put32(out, ix->bound);
    put32(out, ix->ndocs);
    for (uint32_t id = 0; id < ix->bound; id++) {
        if (!ix->key[id])
            continue;
        put32(out, id);
        put32(out, ix->klen[id]);
        buf_append(out, ix->key[id], ix->klen[id]);
        for (int s = 0; s < ix->def.nvecs; s++) {
            buf_appendc(out, (char)bit_get(ix->vecs[s].has, id));
            put32(out, ix->vecs[s].crc[id]);
        }
    }
    for (int s = 0; s < ix->def.nvecs; s++) {
        size_t at = out->len;
        uint64_t n = 0;
        buf_append(out, &n, 8);
        vec_save(ix->vecs[s].vx, out);
        n = out->len - at - 8;
        memcpy(out->data + at, &n, 8);
    }
    put32(out, crc32c(0, out->data + start, out->len - start));
}

typedef struct snap_rd {
    const char *p;
    size_t len, pos;
} snap_rd;

static int rd32(snap_rd *r, uint32_t *v)
{
    if (r->len - r->pos < 4)
        return -1;
    memcpy(v, r->p + r->pos, 4);
    r->pos += 4;
    return 0;
}

/* The vector field of slot s. */
static const ft_field *vec_field(const ft_index *ix, int s)
{
    for (int i = 0; i < ix->def.nfields; i++)
        if (ix->def.fields[i].type == FTF_VECTOR && ix->def.fields[i].slot == s)
            return &ix->def.fields[i];
    return NULL;
}

static int load_docs(ft_index *ix, snap_rd *r, uint32_t bound, uint32_t n)
{
    grow(ix, bound);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id, klen;
        if (rd32(r, &id) || rd32(r, &klen) || id >= bound || klen > r->len - r->pos ||
            ft__doc_put(ix, id, r->p + r->pos, klen))
            return -1;
        r->pos += klen;
        for (int s = 0; s < ix->def.nvecs; s++) {
            if (r->len - r->pos < 5 || (unsigned char)r->p[r->pos] > 1)
                return -1;
            if (r->p[r->pos])
                bit_set(ix->vecs[s].has, id);
            memcpy(&ix->vecs[s].crc[id], r->p + r->pos + 1, 4);
            r->pos += 5;
        }
    }
    ix->bound = bound;
    return 0;
}

/* Loads vector slot s and checks it against the definition and the table. */
static int load_vectors(ft_index *ix, snap_rd *r, int s, char *err, size_t errlen)
{
    uint64_t n;
    if (r->len - r->pos < 8)
        return -1;
    memcpy(&n, r->p + r->pos, 8);
    r->pos += 8;
    if (n > r->len - r->pos)
        return -1;
    vec_index *vx;
    if (vec_load(r->p + r->pos, (size_t)n, &vx, err, errlen) != 0)
        return -1;
    r->pos += (size_t)n;
    vec_free(ix->vecs[s].vx);
    ix->vecs[s].vx = vx;
    const vec_params *got = vec_get_params(vx), *want = &vec_field(ix, s)->vp;
    if (got->kind != want->kind || got->metric != want->metric || got->dim != want->dim) {
        snprintf(err, errlen, "vector parameters differ from the definition");
        return -1;
    }
    size_t has = 0;
    for (uint32_t id = 0; id < ix->bound; id++)
        if (bit_get(ix->vecs[s].has, id)) {
            if (!vec_contains(vx, id)) {
                snprintf(err, errlen, "the vector index lacks document %u", id);
                return -1;
            }
            has++;
        }
    if (has != vec_count(vx)) {
        snprintf(err, errlen, "the vector index holds %zu vectors, the table %zu",
                 vec_count(vx), has);
        return -1;
    }
    return 0;
}

int ft__snapshot_load(ft_index *ix, const char *p, size_t len, char *err, size_t errlen)
{
    snap_rd r = {p, len, 0};
    uint32_t ver, dcrc, nv, bound, n, crc;
    snprintf(err, errlen, "malformed");
    if (len < 28 || memcmp(p, SNAP_MAGIC, 4) != 0)
        return ERR_CORRUPT;
    memcpy(&crc, p + len - 4, 4);
    if (crc != crc32c(0, p, len - 4)) {
        snprintf(err, errlen, "checksum mismatch");
        return ERR_CORRUPT;
    }
    r.len = len - 4;
    r.pos = 4;
    rd32(&r, &ver);
    rd32(&r, &dcrc);
    rd32(&r, &nv);
    rd32(&r, &bound);
    rd32(&r, &n);
    if (ver != SNAP_VERSION || dcrc != ix->def_crc || nv != (uint32_t)ix->def.nvecs) {
        snprintf(err, errlen, "of another version or definition");
        return ERR_CORRUPT;
    }
    /* bound is bounded by the document count, and the count by the bytes (a document
     * takes at least 8 + 5 v), so that a forged file cannot make the columns huge (an
     * index that lost more than 63 of every 64 documents rebuilds). */
    if (n > (r.len - r.pos) / (8 + 5 * (uint64_t)nv) || n > bound ||
        (uint64_t)bound > 64 * ((uint64_t)n + 1024) || load_docs(ix, &r, bound, n))
        return ERR_CORRUPT;
    for (int s = 0; s < ix->def.nvecs; s++)
        if (load_vectors(ix, &r, s, err, errlen))
            return ERR_CORRUPT;
    if (r.pos != r.len)
        return ERR_CORRUPT;
    collect_free(ix);
    return 0;
}
