/* gpu_mirror.c: a FLAT index's copy in device memory (index.h, "a FLAT index's copy in
 * device memory"), searched through the CUDA library's table (vec__gpu(), gpu_probe.c).
 *
 * Two locks. `chg` guards the changed-id set and the failure state: vec_add and vec_delete
 * take it for a moment (under the index's write lock) to note an id. `lock` is the
 * searcher's: it covers the device index and the set of ids it holds, and is held across
 * the device calls, which therefore never stall a writer. The order is lock, then the
 * index's rwlock, then chg; writers take the rwlock then chg, so no cycle exists.
 *
 * A sync swaps the noted ids out under chg, then, a chunk at a time under the index's
 * shared lock, copies each id's vector from the FLAT storage (an add: the device replaces
 * a held id's row) or, when the FLAT no longer holds it, notes a delete of a held id. A
 * change made while the sync runs is noted again and applied by the next one. The first
 * sync copies every id below the FLAT's id bound the same way (ids, not slots: a FLAT
 * delete moves another id's slot, never its id). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "index/index_int.h"

_Static_assert(VEC_GPU_MAX_K == GPU_MAX_K, "index.h's copy of GPU_MAX_K");
_Static_assert(VEC_GPU_MAX_BATCH == GPU_MAX_BATCH, "index.h's copy of GPU_MAX_BATCH");

#define CHUNK_BYTES (8u << 20) /* vector bytes copied per hold of the index's lock */

typedef struct idset {
    uint64_t *bits;
    size_t words;
    uint32_t *ids; /* the set's members, in the order they came */
    size_t n, cap;
} idset;

struct vec_gpu_mirror {
    pthread_mutex_t lock; /* the searcher's: g, held, the device calls */
    gpu_index *g;
    idset held;           /* ids the device holds (only bits used) */
    pthread_mutex_t chg;  /* noted, recording, failed, reason, bytes */
    idset noted;          /* ids changed since the last sync */
    int recording;        /* the first sync has begun: changes matter from then on */
    int failed;
    char reason[256];
    uint64_t bytes;
};

/* ---- id sets ---- */

static int set_has(const idset *s, uint32_t id)
{
    return id / 64 < s->words && (s->bits[id / 64] >> (id % 64) & 1);
}

static void set_bit(idset *s, uint32_t id, int on)
{
    if (id / 64 >= s->words) {
        if (!on)
            return;
        size_t words = s->words ? s->words : 16;
        while (words <= id / 64)
            words *= 2;
        s->bits = xrealloc(s->bits, words * sizeof *s->bits);
        memset(s->bits + s->words, 0, (words - s->words) * sizeof *s->bits);
        s->words = words;
    }
    if (on)
        s->bits[id / 64] |= 1ull << (id % 64);
    else
        s->bits[id / 64] &= ~(1ull << (id % 64));
}

/* Adds id (once) to the set and its list. */
static void set_note(idset *s, uint32_t id)
{
    if (set_has(s, id))
        return;
    set_bit(s, id, 1);
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->ids = xrealloc(s->ids, s->cap * sizeof *s->ids);
    }
    s->ids[s->n++] = id;
}

static void set_free(idset *s)
{
    xfree(s->bits);
    xfree(s->ids);
    memset(s, 0, sizeof *s);
}

/* ---- failure ---- */

/* Marks m failed with the library's error: frees the device index, keeps the reason.
 * Returns ERR_GPU. Under m->lock. */
static int fail_locked(struct vec_gpu_mirror *m, const char *what, int rc, char *err,
                       size_t errlen)
{
    const vec__gpu_api *api = vec__gpu();
    char reason[sizeof m->reason];
    snprintf(reason, sizeof reason, "%s: %s%s%s", what, api->strerror(rc),
             m->g ? ": " : "", m->g ? api->index_error(m->g) : "");
    api->index_free(m->g);
    m->g = NULL;
    set_free(&m->held);
    pthread_mutex_lock(&m->chg);
    m->failed = 1;
    m->bytes = 0;
    memcpy(m->reason, reason, sizeof reason);
    set_free(&m->noted);
    pthread_mutex_unlock(&m->chg);
    if (err && errlen)
        snprintf(err, errlen, "%s", reason);
    return ERR_GPU;
}

/* ---- the index side ---- */

void vec__gpu_changed(struct vec_gpu_mirror *m, uint32_t id)
{
    pthread_mutex_lock(&m->chg);
    if (m->recording && !m->failed)
        set_note(&m->noted, id);
    pthread_mutex_unlock(&m->chg);
}

void vec__gpu_free(struct vec_gpu_mirror *m)
{
    if (!m)
        return;
    if (m->g)
        vec__gpu()->index_free(m->g);
    set_free(&m->held);
    set_free(&m->noted);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->chg);
    xfree(m);
}

int vec_gpu_attach(vec_index *ix)
{
    if (!vec__gpu())
        return ERR_GPU;
    if (ix->params.kind != VEC_FLAT)
        return ERR_INVAL;
    pthread_rwlock_wrlock(&ix->lock);
    if (!ix->gpu) {
        struct vec_gpu_mirror *m = xcalloc(1, sizeof *m);
        pthread_mutex_init(&m->lock, NULL);
        pthread_mutex_init(&m->chg, NULL);
        ix->gpu = m;
    }
    pthread_rwlock_unlock(&ix->lock);
    return 0;
}

void vec_gpu_get_stats(vec_index *ix, vec_gpu_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_rwlock_rdlock(&ix->lock);
    struct vec_gpu_mirror *m = ix->params.kind == VEC_FLAT ? ix->gpu : NULL;
    pthread_rwlock_unlock(&ix->lock);
    if (!m)
        return;
    pthread_mutex_lock(&m->chg);
    out->state = m->failed ? VEC_GPU_FAILED : VEC_GPU_OK;
    out->device_bytes = m->bytes;
    memcpy(out->reason, m->reason, sizeof out->reason);
    pthread_mutex_unlock(&m->chg);
}

/* ---- syncing ---- */

/* Applies ids[0..n): each one's vector from the FLAT index goes to the device, or, when
 * the FLAT lacks it, a held id is deleted. Under m->lock. */
static int apply_ids(vec_index *ix, struct vec_gpu_mirror *m, const uint32_t *ids, size_t n,
                     char *err, size_t errlen)
{
    const vec__gpu_api *api = vec__gpu();
    uint32_t dim = ix->params.dim;
    size_t per = CHUNK_BYTES / (dim * sizeof(float)) + 1;
    float *vecs = xmalloc(per * dim * sizeof *vecs);
    uint32_t *add = xmalloc(per * sizeof *add), *del = xmalloc(per * sizeof *del);
    int rc = 0;
    for (size_t at = 0; at < n && !rc; at += per) {
        size_t end = at + per < n ? at + per : n, nadd = 0, ndel = 0;
        pthread_rwlock_rdlock(&ix->lock);
        for (size_t i = at; i < end; i++) {
            if (vec__flat_get(ix, ids[i], vecs + nadd * dim) == 0)
                add[nadd++] = ids[i];
            else if (set_has(&m->held, ids[i]))
                del[ndel++] = ids[i];
        }
        pthread_rwlock_unlock(&ix->lock);
        if (ndel && (rc = api->index_delete(m->g, del, ndel)) != GPU_OK)
            rc = fail_locked(m, "gpu_index_delete", rc, err, errlen);
        else if (nadd && (rc = api->index_add(m->g, add, vecs, nadd, dim)) != GPU_OK)
            rc = fail_locked(m, "gpu_index_add", rc, err, errlen);
        for (size_t i = 0; !rc && i < ndel; i++)
            set_bit(&m->held, del[i], 0);
        for (size_t i = 0; !rc && i < nadd; i++)
            set_bit(&m->held, add[i], 1);
    }
    xfree(vecs);
    xfree(add);
    xfree(del);
    return rc;
}

/* The first sync: a device index, then every id of the FLAT index. Under m->lock. */
static int copy_all(vec_index *ix, struct vec_gpu_mirror *m, char *err, size_t errlen)
{
    const vec__gpu_api *api = vec__gpu();
    char detail[200] = "";
    int metric = ix->params.metric == VEC_COSINE ? GPU_METRIC_IP : ix->params.metric;
    int rc = api->index_create(0, ix->params.dim, metric, &m->g, detail, sizeof detail);
    if (rc != GPU_OK) {
        m->g = NULL;
        char what[256];
        snprintf(what, sizeof what, "gpu_index_create (%s)", detail);
        return fail_locked(m, what, rc, err, errlen);
    }
    pthread_rwlock_rdlock(&ix->lock);
    uint64_t bound = vec__flat_id_bound(ix), count = ix->ops->count(ix);
    pthread_mutex_lock(&m->chg);
    m->recording = 1; /* from here on every change is noted: the copy may miss it */
    pthread_mutex_unlock(&m->chg);
    pthread_rwlock_unlock(&ix->lock);
    if (count && (rc = api->index_reserve(m->g, count)) != GPU_OK)
        return fail_locked(m, "gpu_index_reserve", rc, err, errlen);
    uint32_t span = 1u << 16;
    uint32_t *ids = xmalloc(span * sizeof *ids);
    for (uint64_t lo = 0; lo < bound && !rc; lo += span) {
        size_t n = 0;
        for (uint64_t id = lo; id < bound && id < lo + span; id++)
            ids[n++] = (uint32_t)id;
        rc = apply_ids(ix, m, ids, n, err, errlen);
    }
    xfree(ids);
    return rc;
}

/* Brings the device up to date with the FLAT index. Under m->lock. */
static int sync_locked(vec_index *ix, struct vec_gpu_mirror *m, char *err, size_t errlen)
{
    if (!m->g)
        return copy_all(ix, m, err, errlen);
    pthread_mutex_lock(&m->chg);
    idset todo = m->noted;
    memset(&m->noted, 0, sizeof m->noted);
    pthread_mutex_unlock(&m->chg);
    int rc = apply_ids(ix, m, todo.ids, todo.n, err, errlen);
    set_free(&todo);
    return rc;
}

/* ---- searching ---- */

/* The queries as the device gets them: checked, normalised for COSINE. NULL after
 * ERR_INVAL or ERR_NOMEM in *rc. */
static float *prepare_queries(const vec_index *ix, const float *queries, uint32_t nq, int *rc)
{
    uint32_t dim = ix->params.dim;
    size_t n = (size_t)nq * dim;
    float *q = try_malloc(n * sizeof *q);
    if (!q) {
        *rc = ERR_NOMEM;
        return NULL;
    }
    memcpy(q, queries, n * sizeof *q);
    for (size_t i = 0; i < n; i++)
        if (!__builtin_isfinite(q[i]))
            *rc = ERR_INVAL;
    for (uint32_t i = 0; !*rc && ix->params.metric == VEC_COSINE && i < nq; i++)
        if (vec_normalize(q + (size_t)i * dim, dim))
            *rc = ERR_INVAL;
    if (*rc) {
        xfree(q);
        return NULL;
    }
    return q;
}

/* Runs the search on the synced device index; results into out/counts. Under m->lock. */
static int search_locked(vec_index *ix, struct vec_gpu_mirror *m, const float *q, uint32_t nq,
                         uint32_t k, vec_hit *out, uint32_t *counts, char *err, size_t errlen)
{
    const vec__gpu_api *api = vec__gpu();
    size_t n = (size_t)nq * k;
    int64_t *ids = try_malloc(n * sizeof *ids);
    float *dists = try_malloc(n * sizeof *dists);
    int rc = ids && dists ? 0 : ERR_NOMEM;
    int g = rc ? GPU_OK : api->index_search(m->g, q, nq, ix->params.dim, k, 0, ids, dists);
    if (g == GPU_ERR_OOM || g == GPU_ERR_CUDA) {
        rc = fail_locked(m, "gpu_index_search", g, err, errlen);
    } else if (g != GPU_OK) { /* the arguments: the device is still in step */
        snprintf(err, errlen, "gpu_index_search: %s", api->index_error(m->g));
        rc = ERR_INVAL;
    }
    for (uint32_t i = 0; rc == 0 && i < nq; i++) {
        uint32_t c = 0;
        for (uint32_t j = 0; j < k && ids[(size_t)i * k + j] >= 0; j++, c++)
            out[(size_t)i * k + j] = (vec_hit){(uint32_t)ids[(size_t)i * k + j],
                                               dists[(size_t)i * k + j]};
        counts[i] = c;
    }
    xfree(ids);
    xfree(dists);
    return rc;
}

int vec_gpu_knn(vec_index *ix, const float *queries, uint32_t nq, uint32_t k, vec_hit *out,
                uint32_t *counts, double *kernel_ms, double *select_ms, char *err,
                size_t errlen)
{
    *kernel_ms = *select_ms = 0;
    if (k == 0 || k > VEC_GPU_MAX_K || nq == 0 || nq > VEC_GPU_MAX_BATCH)
        return ERR_INVAL;
    pthread_rwlock_rdlock(&ix->lock);
    struct vec_gpu_mirror *m = ix->params.kind == VEC_FLAT ? ix->gpu : NULL;
    pthread_rwlock_unlock(&ix->lock);
    if (!m)
        return ERR_NOTFOUND;
    int rc = 0;
    float *q = prepare_queries(ix, queries, nq, &rc);
    if (!q)
        return rc;
    pthread_mutex_lock(&m->lock);
    pthread_mutex_lock(&m->chg);
    int failed = m->failed;
    if (failed && err && errlen)
        snprintf(err, errlen, "%s", m->reason);
    pthread_mutex_unlock(&m->chg);
    rc = failed ? ERR_GPU : sync_locked(ix, m, err, errlen);
    if (rc == 0)
        rc = search_locked(ix, m, q, nq, k, out, counts, err, errlen);
    if (rc == 0) {
        vec__gpu()->index_last_times(m->g, kernel_ms, select_ms);
        uint64_t bytes = vec__gpu()->index_device_bytes(m->g);
        pthread_mutex_lock(&m->chg);
        m->bytes = bytes;
        pthread_mutex_unlock(&m->chg);
    }
    pthread_mutex_unlock(&m->lock);
    xfree(q);
    return rc;
}
