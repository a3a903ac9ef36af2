/* fs_vec.c: the per-view vector indexes of FS.KNN (fs_vec.h). A view's entry holds one
 * vec_index per HNSW or FLAT field and the slot table: slot -> stored entity key, and an
 * open-addressing hash (linear probing, backward-shift deletion) from key to slot. A slot
 * is taken when an entity first has a vector in one of the view's indexes and freed (for
 * reuse) when it has none. The store's online-row hook keeps the entries in step: a PUT
 * replaces the row's vectors, a DROP frees the view's entry, and an ABORT frees the
 * entries of the views written since the last COMMIT, which are then built again from
 * LMDB at their next use (a PUT or an FS.KNN). */
#include "query/fs_vec.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

typedef struct vfield {
    int field; /* index in the view's schema */
    vec_index *ix;
} vfield;

struct fs_vec_view {
    uint32_t id;  /* the view's id */
    int dirty;    /* written since the last commit */
    int broken;   /* its last build failed: built again at the next FS.KNN */
    int nidx;
    vfield *idx;
    /* slots */
    char **keys;      /* slot -> key (NULL: free) */
    uint32_t *klens;
    uint32_t nslots, capslots;
    uint32_t *freel;  /* free slots below nslots */
    uint32_t nfree, capfree;
    /* key -> slot + 1 (0: empty), hcap a power of two, at most half full */
    uint32_t *hash;
    size_t hcap, hused;
};

/* Every view's entry (the views of one server are few: a list is enough). */
static struct {
    store *st;
    fs_vec_view **views;
    int n, cap;
} fv;

/* ---- the slot table ------------------------------------------------------------------- */

static size_t key_hash(const char *k, size_t n)
{
    return (size_t)hash_bytes(k, n, 0x5eed);
}

/* The hash position of key, or of the empty bucket where it would go. */
static size_t hash_find(const fs_vec_view *vv, const char *k, size_t n)
{
    size_t mask = vv->hcap - 1, i = key_hash(k, n) & mask;
    for (; vv->hash[i]; i = (i + 1) & mask) {
        uint32_t s = vv->hash[i] - 1;
        if (vv->klens[s] == n && memcmp(vv->keys[s], k, n) == 0)
            break;
    }
    return i;
}

static void hash_grow(fs_vec_view *vv)
{
    uint32_t *old = vv->hash;
    size_t oldcap = vv->hcap;
    vv->hcap = oldcap ? oldcap * 2 : 64;
    vv->hash = xcalloc(vv->hcap, sizeof *vv->hash);
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i])
            continue;
        uint32_t s = old[i] - 1;
        vv->hash[hash_find(vv, vv->keys[s], vv->klens[s])] = old[i];
    }
    xfree(old);
}

/* Removes bucket i, shifting back the entries of its probe run. */
static void hash_remove(fs_vec_view *vv, size_t i)
{
    size_t mask = vv->hcap - 1;
    vv->hash[i] = 0;
    vv->hused--;
    for (size_t j = (i + 1) & mask; vv->hash[j]; j = (j + 1) & mask) {
        uint32_t s = vv->hash[j] - 1;
        size_t home = key_hash(vv->keys[s], vv->klens[s]) & mask;
        /* the entry at j may move to the hole at i if its home is not in (i, j] */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            vv->hash[i] = vv->hash[j];
            vv->hash[j] = 0;
            i = j;
        }
    }
}

/* The slot of key, or UINT32_MAX. */
static uint32_t slot_find(const fs_vec_view *vv, const char *k, size_t n)
{
    if (!vv->hcap)
        return UINT32_MAX;
    uint32_t e = vv->hash[hash_find(vv, k, n)];
    return e ? e - 1 : UINT32_MAX;
}

/* The slot of key, taking a free one when it has none. */
static uint32_t slot_take(fs_vec_view *vv, const char *k, size_t n)
{
    uint32_t s = slot_find(vv, k, n);
    if (s != UINT32_MAX)
        return s;
    if (2 * (vv->hused + 1) > vv->hcap)
        hash_grow(vv);
    if (vv->nfree) {
        s = vv->freel[--vv->nfree];
    } else {
        if (vv->nslots == vv->capslots) {
            vv->capslots = vv->capslots ? vv->capslots * 2 : 64;
            vv->keys = xrealloc(vv->keys, vv->capslots * sizeof *vv->keys);
            vv->klens = xrealloc(vv->klens, vv->capslots * sizeof *vv->klens);
        }
        s = vv->nslots++;
    }
    vv->keys[s] = xmemdup(k, n);
    vv->klens[s] = (uint32_t)n;
    vv->hash[hash_find(vv, k, n)] = s + 1;
    vv->hused++;
    return s;
}

static void slot_free(fs_vec_view *vv, uint32_t s)
{
    hash_remove(vv, hash_find(vv, vv->keys[s], vv->klens[s]));
    xfree(vv->keys[s]);
    vv->keys[s] = NULL;
    if (vv->nfree == vv->capfree) {
        vv->capfree = vv->capfree ? vv->capfree * 2 : 64;
        vv->freel = xrealloc(vv->freel, vv->capfree * sizeof *vv->freel);
    }
    vv->freel[vv->nfree++] = s;
}

/* ---- entries --------------------------------------------------------------------------- */

static void view_free(fs_vec_view *vv)
{
    for (int i = 0; i < vv->nidx; i++)
        vec_free(vv->idx[i].ix);
    xfree(vv->idx);
    for (uint32_t s = 0; s < vv->nslots; s++)
        xfree(vv->keys[s]);
    xfree(vv->keys);
    xfree(vv->klens);
    xfree(vv->freel);
    xfree(vv->hash);
    xfree(vv);
}

static int view_pos(uint32_t id)
{
    for (int i = 0; i < fv.n; i++)
        if (fv.views[i]->id == id)
            return i;
    return -1;
}

static void view_forget(uint32_t id)
{
    int i = view_pos(id);
    if (i < 0)
        return;
    view_free(fv.views[i]);
    fv.views[i] = fv.views[--fv.n];
}

static void view_add(fs_vec_view *vv)
{
    if (fv.n == fv.cap) {
        fv.cap = fv.cap ? fv.cap * 2 : 8;
        fv.views = xrealloc(fv.views, (size_t)fv.cap * sizeof *fv.views);
    }
    fv.views[fv.n++] = vv;
}

int fs_vec_metric(int store_metric)
{
    return store_metric == STORE_METRIC_IP       ? VEC_IP
           : store_metric == STORE_METRIC_COSINE ? VEC_COSINE
                                                 : VEC_L2;
}

int fs_vec_from_value(const store_field *f, const store_fvalue *val, float *out)
{
    if (val->is_null || val->len != (size_t)f->type.dim * sizeof(float))
        return ERR_INVAL;
    memcpy(out, val->bytes, val->len); /* little-endian float32, as the host's */
    for (uint32_t i = 0; i < f->type.dim; i++)
        if (!isfinite(out[i]))
            return ERR_INVAL;
    return f->metric == STORE_METRIC_COSINE ? vec_normalize(out, f->type.dim) : 0;
}

/* Puts the row's vectors in vv's indexes (ekey's slot freed when it has none left).
 * vals is the decoded row; scratch has room for the largest dim. ERR_NOMEM, ERR_LIMIT. */
static int apply_row(fs_vec_view *vv, const store_view *v, const char *ekey, size_t elen,
                     const store_fvalue *vals, float *scratch)
{
    uint32_t s = slot_take(vv, ekey, elen);
    int held = 0, rc = 0;
    for (int i = 0; i < vv->nidx && !rc; i++) {
        const store_field *f = &v->fields[vv->idx[i].field];
        vec_index *ix = vv->idx[i].ix;
        if (fs_vec_from_value(f, &vals[vv->idx[i].field], scratch) == 0) {
            rc = vec_add(ix, s, scratch);
            held += rc == 0;
        } else if (vec_contains(ix, s)) {
            rc = vec_delete(ix, s);
        }
    }
    for (int i = 0; i < vv->nidx && !held; i++)
        held = vec_contains(vv->idx[i].ix, s);
    if (!held)
        slot_free(vv, s);
    return rc;
}

static uint32_t max_dim(const store_view *v)
{
    uint32_t d = 1;
    for (int k = 0; k < v->nfields; k++)
        if (v->fields[k].type.type == FT_VECTOR && v->fields[k].type.dim > d)
            d = v->fields[k].type.dim;
    return d;
}

/* A view's entry with an empty index per HNSW or FLAT field. */
static int view_new(const store_view *v, fs_vec_view **out, char *err, size_t errlen)
{
    fs_vec_view *vv = xcalloc(1, sizeof *vv);
    vv->id = v->id;
    vv->idx = xcalloc((size_t)v->nfields, sizeof *vv->idx);
    int rc = 0;
    for (int k = 0; k < v->nfields && !rc; k++) {
        const store_field *f = &v->fields[k];
        if (f->type.type != FT_VECTOR || f->vindex == STORE_VINDEX_NONE)
            continue;
        vec_params p = {
            .kind = f->vindex == STORE_VINDEX_HNSW ? VEC_HNSW : VEC_FLAT,
            .metric = fs_vec_metric(f->metric),
            .dim = f->type.dim,
            .m = f->m,
            .ef_construction = f->ef_construction,
        };
        rc = vec_create(&p, &vv->idx[vv->nidx].ix, err, errlen);
        if (rc == 0)
            vv->idx[vv->nidx++].field = k;
    }
    if (rc) {
        view_free(vv);
        return rc;
    }
    *out = vv;
    return 0;
}

/* Builds v's entry from its online rows in t. */
static int view_build(store_txn *t, const store_view *v, fs_vec_view **out, char *err,
                      size_t errlen)
{
    fs_vec_view *vv;
    int rc = view_new(v, &vv, err, errlen);
    if (rc)
        return rc;
    store_oiter *it = NULL;
    store_fvalue *vals = xcalloc((size_t)v->nfields, sizeof *vals);
    float *scratch = xmalloc(max_dim(v) * sizeof *scratch);
    if (vv->nidx && (rc = store_online_iter(t, v, &it)) == 0) {
        const char *ekey, *row;
        size_t elen, rowlen;
        int64_t ev, cr;
        while ((rc = store_oiter_next(it, &ekey, &elen, &ev, &cr, &row, &rowlen)) == 0) {
            if ((rc = store_row_decode(v->schema, v->nfields, row, rowlen, vals)) != 0 ||
                (rc = apply_row(vv, v, ekey, elen, vals, scratch)) != 0)
                break;
        }
        rc = rc == ERR_NOTFOUND ? 0 : rc;
    }
    store_oiter_free(it);
    xfree(vals);
    xfree(scratch);
    if (rc) {
        snprintf(err, errlen, "building the vector indexes of view '%s': %s", v->name,
                 err_str(rc));
        view_free(vv);
        return rc;
    }
    *out = vv;
    return 0;
}

int fs_vec_view_get(store_txn *t, const store_view *v, fs_vec_view **out, char *err,
                    size_t errlen)
{
    int i = view_pos(v->id);
    if (i >= 0 && !fv.views[i]->broken) {
        *out = fv.views[i];
        return 0;
    }
    view_forget(v->id);
    fs_vec_view *vv;
    int64_t start = clock_mono_us();
    int rc = view_build(t, v, &vv, err, errlen);
    if (rc)
        return rc;
    /* built through the pass's write transaction, it holds writes a failure would undo */
    vv->dirty = !fv.st || store_txn_dirty(fv.st);
    view_add(vv);
    if (vv->hused > 10000)
        log_info("fs: vector indexes of view '%s' built: %zu entities in %lld ms", v->name,
                 vv->hused, (long long)(clock_mono_us() - start) / 1000);
    *out = vv;
    return 0;
}

vec_index *fs_vec_index(const fs_vec_view *vv, int field)
{
    for (int i = 0; i < vv->nidx; i++)
        if (vv->idx[i].field == field)
            return vv->idx[i].ix;
    return NULL;
}

int fs_vec_key(const fs_vec_view *vv, uint32_t id, const char **ekey, size_t *elen)
{
    if (id >= vv->nslots || !vv->keys[id])
        return ERR_NOTFOUND;
    *ekey = vv->keys[id];
    *elen = vv->klens[id];
    return 0;
}

uint32_t fs_vec_slots(const fs_vec_view *vv)
{
    return vv->nslots;
}

/* ---- following the online rows ---------------------------------------------------------- */

/* A PUT: the row's vectors replace the entity's. A view without an entry is built now
 * (from t, which holds this row); one whose build failed waits for FS.KNN. */
static void on_put(const store_online_event *e)
{
    const store_view *v = e->view;
    char err[256];
    int i = view_pos(v->id);
    if (i < 0) {
        fs_vec_view *vv;
        int rc = view_build(e->t, v, &vv, err, sizeof err);
        if (rc) {
            log_warn("fs: %s", err);
            vv = xcalloc(1, sizeof *vv);
            vv->id = v->id;
            vv->broken = 1;
        }
        vv->dirty = 1;
        view_add(vv);
        return;
    }
    fs_vec_view *vv = fv.views[i];
    vv->dirty = 1;
    if (vv->broken || vv->nidx == 0)
        return;
    store_fvalue *vals = xcalloc((size_t)v->nfields, sizeof *vals);
    float *scratch = xmalloc(max_dim(v) * sizeof *scratch);
    int rc = store_row_decode(v->schema, v->nfields, e->row, e->rowlen, vals);
    if (rc == 0)
        rc = apply_row(vv, v, e->ekey, e->elen, vals, scratch);
    xfree(vals);
    xfree(scratch);
    if (rc) { /* the index may be half-changed: build it again at the next FS.KNN */
        log_warn("fs: vector index of view '%s' could not take a row: %s", v->name,
                 err_str(rc));
        vv->broken = 1;
    }
}

static void on_online(void *ctx, const store_online_event *e)
{
    (void)ctx;
    switch (e->kind) {
    case STORE_ONLINE_PUT:
        on_put(e);
        break;
    case STORE_ONLINE_DROP:
        view_forget(e->view_id);
        break;
    case STORE_ONLINE_COMMIT:
        for (int i = 0; i < fv.n; i++)
            fv.views[i]->dirty = 0;
        break;
    case STORE_ONLINE_ABORT: /* undone writes: rebuild from the committed rows */
        for (int i = fv.n - 1; i >= 0; i--)
            if (fv.views[i]->dirty)
                view_forget(fv.views[i]->id);
        break;
    }
}

void fs_vec_reset(void)
{
    if (fv.st)
        store_set_online_hook(fv.st, NULL, NULL);
    while (fv.n)
        view_forget(fv.views[0]->id);
    xfree(fv.views);
    memset(&fv, 0, sizeof fv);
}

void fs_vec_init(store *st)
{
    fs_vec_reset();
    fv.st = st;
    store_set_online_hook(st, on_online, NULL);
    store_txn *t;
    if (store_view_count(st) == 0 || store_txn_read(st, &t) != 0)
        return;
    for (int i = 0; i < store_view_count(st); i++) {
        const store_view *v = store_view_at(st, i);
        fs_vec_view *vv;
        char err[256];
        if (v->online && fs_vec_view_get(t, v, &vv, err, sizeof err) != 0)
            log_warn("fs: %s (tried again at the next FS.KNN)", err);
    }
}
