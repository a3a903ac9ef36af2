/* ft_bulk.c: HNSW fields built in bulk on the GPU (issue 5). When the GPU is on and a scan
 * (FT.CREATE over existing hashes, or a rebuild at start) is about to fill an empty HNSW
 * field over a database of at least gpu-build-min-vectors keys, the field is armed: its
 * vector changes still go through the index's FIFO in order (ft_build.c), but the worker
 * gathers them here instead of inserting them (an ADD stores or replaces the id's vector, a
 * DEL removes it: exactly the set the changes would leave in the index). The scan's end
 * queues a VOP_BUILD behind them; when the worker reaches it, it makes a new, private HNSW
 * index from the gathered vectors: each one's kNN list from the device (vec_gpu_knn_graph),
 * pruned into the graph on the CPU's threads (vec_hnsw_build). The changes queued behind the
 * marker (writes made during the build) then go, still in order, to that new index, and
 * once the queue is empty the loop swaps it in for the field's empty one (ft__bulk_finish),
 * so nothing is lost or reordered and the loop never waits: until the swap, searches read
 * the field's empty index, which nobody writes (what is indexed so far: nothing), and the
 * new index is touched only by the worker until it is swapped in.
 *
 * K. Each list has min(EF_CONSTRUCTION, VEC_GPU_MAX_K - 1, n - 1) entries: the candidates an
 * insertion would have weighed (its search keeps EF_CONSTRUCTION), but exact. Upper levels
 * (n/M nodes and fewer) take exact CPU lists (vec_hnsw_build's default): they are small.
 *
 * FALLBACK. On a device error (out of memory, CUDA), a failed build, or no memory to gather,
 * the gathered vectors are inserted into the live index one by one, as a CPU build does,
 * logged and counted (gpu_graph_fallbacks); fewer gathered vectors than the threshold are
 * inserted the same way without counting.
 *
 * THREADS. ft__bulk_arm, ft__bulk_mark and ft__bulk_finish run on the loop, and only while
 * no worker runs or at its posted end; the rest runs on the index's build worker (one at a
 * time per index), the only thread that touches a bulk's contents. The counters are
 * atomics. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/server.h"
#include "query/ft.h"

#define NONE UINT32_MAX

enum { BULK_GATHER = 0, BULK_BUILT = 1, BULK_DIRECT = 2 };

typedef struct ft_bulk {
    int state;    /* BULK_*: gathering; built (changes go to built); inserting into vx */
    int marked;   /* loop: the VOP_BUILD is queued */
    uint64_t min; /* gpu-build-min-vectors when armed */
    uint32_t dim;
    uint32_t *row;   /* per id: its row, NONE if not gathered */
    uint32_t nrow;   /* entries of row */
    uint32_t *ids;   /* per row: the id */
    float *vecs;     /* rows x dim */
    uint32_t n, cap; /* rows gathered, room */
    vec_index *built;
} ft_bulk;

static struct {
    atomic_uint_fast64_t builds, fallbacks, build_us;
} st;

/* ---- the loop's side ---- */

void ft__bulk_arm(ft_index *ix)
{
    index_gpu_info g;
    index_gpu_get(&g);
    long long min = srv.cfg.gpu_build_min_vectors;
    if (!g.enabled || (long long)store_dbsize(srv.store, ix->def.db) < min)
        return;
    for (int s = 0; s < ix->def.nvecs; s++) {
        ft_vecf *vf = &ix->vecs[s];
        const vec_params *p = vec_get_params(vf->vx);
        if (vf->bulk || p->kind != VEC_HNSW || vec_count(vf->vx) != 0)
            continue;
        vf->bulk = xcalloc(1, sizeof *vf->bulk);
        vf->bulk->min = (uint64_t)min;
        vf->bulk->dim = p->dim;
    }
}

void ft__bulk_mark(ft_index *ix)
{
    for (int s = 0; s < ix->def.nvecs; s++) {
        ft_bulk *b = ix->vecs[s].bulk;
        if (b && !b->marked) {
            b->marked = 1;
            ft__vop_submit(ix, VOP_BUILD, s, 0, NULL);
        }
    }
}

static void gather_release(ft_bulk *b)
{
    xfree(b->row);
    xfree(b->ids);
    xfree(b->vecs);
    b->row = b->ids = NULL;
    b->vecs = NULL;
    b->n = b->cap = b->nrow = 0;
}

void ft__bulk_free(ft_bulk *b)
{
    if (!b)
        return;
    gather_release(b);
    if (b->built)
        vec_free(b->built);
    xfree(b);
}

void ft__bulk_finish(ft_index *ix)
{
    for (int s = 0; s < ix->def.nvecs; s++) {
        ft_vecf *vf = &ix->vecs[s];
        if (!vf->bulk || vf->bulk->state == BULK_GATHER)
            continue;
        if (vf->bulk->built) {
            vec_free(vf->vx); /* empty: only the worker wrote the field meanwhile, to built */
            vf->vx = vf->bulk->built;
            vf->bulk->built = NULL;
        }
        ft__bulk_free(vf->bulk);
        vf->bulk = NULL;
    }
}

void ft_bulk_info(buf *b)
{
    buf_printf(
        b, "gpu_graph_builds:%llu\r\ngpu_graph_build_ms:%.3f\r\ngpu_graph_fallbacks:%llu\r\n",
        (unsigned long long)atomic_load(&st.builds), (double)atomic_load(&st.build_us) / 1000.0,
        (unsigned long long)atomic_load(&st.fallbacks));
}

/* ---- the worker's side ---- */

int ft__bulk_ended(const ft_index *ix)
{
    for (int s = 0; s < ix->def.nvecs; s++)
        if (ix->vecs[s].bulk && ix->vecs[s].bulk->state != BULK_GATHER)
            return 1;
    return 0;
}

/* Room for id in the row map and one more row; 0, or ERR_NOMEM (nothing changed). */
static int gather_room(ft_bulk *b, uint32_t id)
{
    if (id >= b->nrow) {
        uint32_t n = b->nrow ? b->nrow : 1024;
        while (n <= id)
            n *= 2;
        uint32_t *r = try_realloc(b->row, (size_t)n * sizeof *r);
        if (!r)
            return ERR_NOMEM;
        for (uint32_t i = b->nrow; i < n; i++)
            r[i] = NONE;
        b->row = r;
        b->nrow = n;
    }
    if (b->n < b->cap)
        return 0;
    uint32_t cap = b->cap ? b->cap * 2 : 1024;
    uint32_t *ids = try_realloc(b->ids, (size_t)cap * sizeof *ids);
    if (ids)
        b->ids = ids;
    float *v = ids ? try_realloc(b->vecs, (size_t)cap * b->dim * sizeof *v) : NULL;
    if (!v)
        return ERR_NOMEM;
    b->vecs = v;
    b->cap = cap;
    return 0;
}

static int gather_add(ft_bulk *b, uint32_t id, const float *v)
{
    if (id < b->nrow && b->row[id] != NONE) {
        memcpy(b->vecs + (size_t)b->row[id] * b->dim, v, b->dim * sizeof *v);
        return 0;
    }
    if (gather_room(b, id))
        return ERR_NOMEM;
    b->row[id] = b->n;
    b->ids[b->n] = id;
    memcpy(b->vecs + (size_t)b->n * b->dim, v, b->dim * sizeof *v);
    b->n++;
    return 0;
}

/* Removes id's row: the last row takes its place. */
static void gather_del(ft_bulk *b, uint32_t id)
{
    if (id >= b->nrow || b->row[id] == NONE)
        return;
    uint32_t r = b->row[id], last = b->n - 1;
    if (r != last) {
        b->ids[r] = b->ids[last];
        b->row[b->ids[r]] = r;
        memcpy(b->vecs + (size_t)r * b->dim, b->vecs + (size_t)last * b->dim,
               b->dim * sizeof(float));
    }
    b->row[id] = NONE;
    b->n--;
}

/* The gathered vectors, built from the device's kNN lists into a new index like vx;
 * ERR_AGAIN when the index went away meanwhile (the prune is not worth doing). */
static int build_on_gpu(ft_index *ix, vec_index *vx, const ft_bulk *b, vec_index **out, char *err,
                        size_t errlen)
{
    const vec_params *p = vec_get_params(vx);
    uint32_t k = p->ef_construction;
    if (k > VEC_GPU_MAX_K - 1)
        k = VEC_GPU_MAX_K - 1;
    if (k > b->n - 1)
        k = b->n - 1;
    uint32_t *knn = try_malloc((size_t)b->n * k * sizeof *knn);
    if (!knn) {
        snprintf(err, errlen, "out of memory for the kNN lists");
        return ERR_NOMEM;
    }
    vec_index *nx = NULL;
    int rc = vec_gpu_knn_graph(p->metric, b->vecs, b->n, p->dim, k, knn, err, errlen);
    if (!rc && atomic_load(&ix->q.stop))
        rc = ERR_AGAIN;
    if (!rc)
        rc = vec_create(p, &nx, err, errlen);
    if (!rc)
        rc = vec_hnsw_build(nx, b->ids, b->vecs, b->n, knn, k, NULL, NULL, 0, err, errlen);
    xfree(knn);
    if (rc && nx) {
        vec_free(nx);
        nx = NULL;
    }
    *out = nx;
    return rc;
}

/* The CPU's way: every gathered vector inserted into the live index, then the field's
 * changes go there directly. */
static void insert_all(ft_index *ix, vec_index *vx, ft_bulk *b)
{
    for (uint32_t i = 0; i < b->n && !atomic_load(&ix->q.stop); i++) {
        int rc = vec_add(vx, b->ids[i], b->vecs + (size_t)i * b->dim);
        if (rc)
            atomic_fetch_add(&ix->q.failed, 1);
    }
    gather_release(b);
    b->state = BULK_DIRECT;
}

static void fall_back(ft_index *ix, vec_index *vx, ft_bulk *b, const char *why)
{
    atomic_fetch_add(&st.fallbacks, 1);
    log_warn("FT index '%s': GPU graph build of %u vectors failed (%s): building on the CPU",
             ix->def.name, b->n, why);
    insert_all(ix, vx, b);
}

static void build(ft_index *ix, vec_index *vx, ft_bulk *b)
{
    if (atomic_load(&ix->q.stop))
        return;
    if (b->n < b->min || b->n < 2) {
        insert_all(ix, vx, b);
        return;
    }
    char err[256] = "";
    int64_t t0 = clock_mono_us();
    int rc = build_on_gpu(ix, vx, b, &b->built, err, sizeof err);
    if (rc == ERR_AGAIN) /* dropped: the worker ends; index_free frees b */
        return;
    if (rc) {
        fall_back(ix, vx, b, err);
        return;
    }
    int64_t us = clock_mono_us() - t0;
    atomic_fetch_add(&st.builds, 1);
    atomic_fetch_add(&st.build_us, (uint64_t)us);
    log_info("FT index '%s': %u vectors built into HNSW on the GPU in %.1f ms", ix->def.name, b->n,
             (double)us / 1000.0);
    gather_release(b);
    b->state = BULK_BUILT;
}

vec_index *ft__bulk_target(ft_index *ix, int op, int slot, uint32_t id, const float *v)
{
    vec_index *vx = ix->vecs[slot].vx;
    ft_bulk *b = ix->vecs[slot].bulk;
    if (!b || b->state == BULK_DIRECT)
        return vx;
    if (b->state == BULK_BUILT)
        return b->built;
    if (op == VOP_BUILD) {
        build(ix, vx, b);
        return NULL;
    }
    if (op == VOP_DEL) {
        gather_del(b, id);
        return NULL;
    }
    if (gather_add(b, id, v) == 0)
        return NULL;
    fall_back(ix, vx, b, "out of memory gathering the vectors");
    return vx; /* this ADD too */
}
