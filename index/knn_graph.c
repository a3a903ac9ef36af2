/* knn_graph.c: the exact kNN lists of a set of vectors on the CPU (vec_knn_graph, index.h),
 * the source an HNSW bulk build (hnsw.c, vec_hnsw_build) prunes into its graph when no GPU
 * computes them (index/gpu/, gpu_knn_graph: the same contract), and vec__parallel, the
 * pthread "for" loop both run their work on.
 *
 * HOW. Threads take blocks of QBLOCK queries; a block walks the rows in slabs of RBLOCK
 * (a slab stays in cache while each query of the block compares with it, four rows per
 * kernel call: the _x4 kernels share the query's loads) and keeps, per query, a max-heap of
 * the k best (distance, row) pairs, so ties order by the smaller row as on the GPU. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "index/index_int.h"

#define QBLOCK 8          /* queries a worker takes at once */
#define RBLOCK 512        /* rows compared with a query block before the next slab */
#define MAX_THREADS 256
#define NONE UINT32_MAX

/* ---- the parallel loop ---- */

typedef struct par {
    int (*fn)(void *ctx, uint32_t worker, uint32_t lo, uint32_t hi);
    void *ctx;
    uint32_t n, grain;
    atomic_uint next;
    atomic_int rc;
} par;

typedef struct par_worker {
    par *p;
    uint32_t id;
} par_worker;

static void *par_main(void *arg)
{
    par_worker *w = arg;
    par *p = w->p;
    while (!atomic_load(&p->rc)) {
        uint32_t lo = atomic_fetch_add(&p->next, p->grain);
        if (lo >= p->n)
            break;
        uint32_t hi = p->n - lo > p->grain ? lo + p->grain : p->n;
        int rc = p->fn(p->ctx, w->id, lo, hi);
        if (rc) {
            int zero = 0;
            atomic_compare_exchange_strong(&p->rc, &zero, rc);
        }
    }
    return NULL;
}

uint32_t vec__threads(uint32_t want)
{
    if (!want) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        want = cpus > 0 ? (uint32_t)cpus : 1;
    }
    return want < MAX_THREADS ? want : MAX_THREADS;
}

int vec__parallel(uint32_t threads, uint32_t n, uint32_t grain,
                  int (*fn)(void *ctx, uint32_t worker, uint32_t lo, uint32_t hi), void *ctx)
{
    par p = {.fn = fn, .ctx = ctx, .n = n, .grain = grain ? grain : 1};
    atomic_init(&p.next, 0);
    atomic_init(&p.rc, 0);
    threads = vec__threads(threads);
    pthread_t th[MAX_THREADS];
    par_worker w[MAX_THREADS];
    uint32_t started = 0;
    /* workers 1.. on new threads, worker 0 on this one; a thread that cannot start only
     * leaves more for the others */
    for (uint32_t t = 1; t < threads; t++) {
        w[started + 1] = (par_worker){&p, started + 1};
        if (pthread_create(&th[started], NULL, par_main, &w[started + 1]) == 0)
            started++;
    }
    w[0] = (par_worker){&p, 0};
    par_main(&w[0]);
    for (uint32_t t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    return atomic_load(&p.rc);
}

/* ---- exact kNN lists ---- */

typedef struct cand {
    float d;
    uint32_t row;
} cand;

/* a worse than b: farther, or as far with a larger row */
static inline int worse(cand a, cand b)
{
    return a.d > b.d || (a.d == b.d && a.row > b.row);
}

/* A max-heap (the worst on top) of at most k candidates. */
static void heap_offer(cand *hp, uint32_t *n, uint32_t k, cand c)
{
    uint32_t i;
    if (*n < k) {
        i = (*n)++;
        while (i) {
            uint32_t p = (i - 1) / 2;
            if (!worse(c, hp[p]))
                break;
            hp[i] = hp[p];
            i = p;
        }
        hp[i] = c;
        return;
    }
    if (!worse(hp[0], c))
        return;
    i = 0;
    for (;;) {
        uint32_t l = 2 * i + 1;
        if (l >= k)
            break;
        if (l + 1 < k && worse(hp[l + 1], hp[l]))
            l++;
        if (!worse(hp[l], c))
            break;
        hp[i] = hp[l];
        i = l;
    }
    hp[i] = c;
}

static int cand_cmp(const void *a, const void *b)
{
    cand x = *(const cand *)a, y = *(const cand *)b;
    return worse(x, y) - worse(y, x);
}

typedef struct knn_job {
    const vec_kern *kern;
    int metric;
    const float *vecs;
    uint32_t n, dim, k;
    uint32_t *out;
    cand *heaps; /* per worker: QBLOCK heaps of k */
} knn_job;

/* Compares query q with rows [r0, r1), four at a time, into its heap. */
static void scan_slab(const knn_job *j, uint32_t q, uint32_t r0, uint32_t r1, cand *hp,
                      uint32_t *nh)
{
    const float *qv = j->vecs + (size_t)q * j->dim;
    for (uint32_t r = r0; r < r1; r += 4) {
        const float *v[4];
        float d[4];
        for (uint32_t i = 0; i < 4; i++)
            v[i] = j->vecs + (size_t)(r + i < r1 ? r + i : r) * j->dim;
        if (j->metric == VEC_L2) {
            j->kern->l2sq_x4(qv, v, j->dim, d);
        } else {
            j->kern->dot_x4(qv, v, j->dim, d);
            for (uint32_t i = 0; i < 4; i++)
                d[i] = vec__dist_from_dot(d[i]);
        }
        for (uint32_t i = 0; i < 4 && r + i < r1; i++)
            if (r + i != q)
                heap_offer(hp, nh, j->k, (cand){d[i], r + i});
    }
}

static int knn_block(void *ctx, uint32_t worker, uint32_t lo, uint32_t hi)
{
    const knn_job *j = ctx;
    cand *heaps = j->heaps + (size_t)worker * QBLOCK * j->k;
    uint32_t nh[QBLOCK] = {0};
    for (uint32_t r0 = 0; r0 < j->n; r0 += RBLOCK) {
        uint32_t r1 = j->n - r0 > RBLOCK ? r0 + RBLOCK : j->n;
        for (uint32_t q = lo; q < hi; q++)
            scan_slab(j, q, r0, r1, heaps + (size_t)(q - lo) * j->k, &nh[q - lo]);
    }
    for (uint32_t q = lo; q < hi; q++) {
        cand *hp = heaps + (size_t)(q - lo) * j->k;
        uint32_t *o = j->out + (size_t)q * j->k;
        qsort(hp, nh[q - lo], sizeof(cand), cand_cmp);
        for (uint32_t i = 0; i < j->k; i++)
            o[i] = i < nh[q - lo] ? hp[i].row : NONE;
    }
    return 0;
}

/* For COSINE a normalised copy of the vectors in *copy (xfree it); checks every value.
 * ERR_INVAL (not finite, COSINE zero), ERR_NOMEM. */
static int knn_input(int metric, const float *vecs, uint32_t n, uint32_t dim, float **copy)
{
    *copy = NULL;
    for (size_t i = 0; i < (size_t)n * dim; i++)
        if (!isfinite(vecs[i]))
            return ERR_INVAL;
    if (metric != VEC_COSINE)
        return 0;
    float *c = try_malloc((size_t)n * dim * sizeof(float));
    if (!c)
        return ERR_NOMEM;
    memcpy(c, vecs, (size_t)n * dim * sizeof(float));
    for (uint32_t i = 0; i < n; i++) {
        if (vec_normalize(c + (size_t)i * dim, dim)) {
            xfree(c);
            return ERR_INVAL;
        }
    }
    *copy = c;
    return 0;
}

int vec_knn_graph(int metric, const float *vecs, uint32_t n, uint32_t dim, uint32_t k,
                  uint32_t threads, uint32_t *out)
{
    if (metric < VEC_L2 || metric > VEC_COSINE || !dim || dim > VEC_MAX_DIM || !k ||
        k > VEC_MAX_K || (n && (!vecs || !out)))
        return ERR_INVAL;
    float *copy;
    int rc = knn_input(metric, vecs, n, dim, &copy);
    if (rc)
        return rc;
    threads = vec__threads(threads);
    knn_job j = {vec__kern(), metric, copy ? copy : vecs, n, dim, k, out, NULL};
    j.heaps = try_malloc((size_t)threads * QBLOCK * k * sizeof(cand));
    if (!j.heaps) {
        xfree(copy);
        return ERR_NOMEM;
    }
    rc = vec__parallel(threads, n, QBLOCK, knn_block, &j);
    xfree(j.heaps);
    xfree(copy);
    return rc;
}
