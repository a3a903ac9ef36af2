/* test_gpu.c: the tests of index/gpu/ against a CPU brute-force oracle (this file's own, in
 * double precision), on random data and on the shared data sets, with deletes, overwrites
 * and compaction in between, for L2, IP and COSINE, k in {1, 10, 100, 1024} and batches of
 * {1, 7, 256, 4096}; then every error the API names; then gpu_knn_graph's lists against
 * the same oracle (random rows with duplicates, k up to 1023, fewer rows than k, errors).
 * A plain C program (no cmocka) so it runs on a GPU machine without Quiver's libraries.
 * Where no device exists it prints "SKIP: no CUDA device (...)" and exits 0.
 *
 * A result passes when (per query) its ids are distinct, held and not deleted, each
 * reported distance is the true distance of its id, and the i-th distance equals the
 * oracle's i-th: so it is an exact top-k, ids allowed to differ only among ties (distances
 * within 1e-4 relative). Differing ids are counted and printed, never hidden.
 *
 * Run from the repository root (make gpu-test does). Data sets are read from
 * $QUIVER_GPU_DATA (default ../shared/data/vectors); a missing one is skipped with a line
 * saying so. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/gpu/gpu.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        checks++;                                                                             \
        if (!(cond)) {                                                                        \
            failures++;                                                                       \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                      \
            printf(__VA_ARGS__);                                                              \
            printf("\n");                                                                     \
        }                                                                                     \
    } while (0)

static const char *metric_name(int m)
{
    return m == GPU_METRIC_L2 ? "L2" : m == GPU_METRIC_IP ? "IP" : "COSINE";
}

/* ---- the data: vectors by id, which ids are live ---- */

typedef struct dataset {
    uint32_t n, dim;    /* ids 0..n */
    float *v;           /* n x dim */
    double *norm;       /* |v| per id */
    unsigned char *live;
    uint32_t *seen, stamp; /* seen[id] == stamp: id already in the result being checked */
} dataset;

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "test_gpu: out of host memory\n");
        exit(2);
    }
    return p;
}

static double norm_of(const float *v, uint32_t dim)
{
    double s = 0;
    for (uint32_t i = 0; i < dim; i++)
        s += (double)v[i] * v[i];
    return sqrt(s);
}

static void set_norms(dataset *d)
{
    for (uint32_t i = 0; i < d->n; i++)
        d->norm[i] = norm_of(d->v + (size_t)i * d->dim, d->dim);
}

static dataset dataset_new(uint32_t n, uint32_t dim)
{
    dataset d = {n, dim, xmalloc((size_t)n * dim * 4), xmalloc((size_t)n * 8), xmalloc(n),
                 xmalloc((size_t)n * 4), 0};
    memset(d.live, 0, n);
    memset(d.seen, 0, (size_t)n * 4);
    return d;
}

static void dataset_free(dataset *d)
{
    free(d->v);
    free(d->norm);
    free(d->live);
    free(d->seen);
}

static uint64_t rng = 88172645463325252ull;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static float rand_unit(void)
{
    return (float)(next_rand() % 2000001) / 1000000.0f - 1.0f;
}

/* ---- the oracle ---- */

typedef struct hit {
    double d;
    uint32_t id;
} hit;

/* The distance as gpu.h defines it, in double. */
static double true_distance(int metric, const float *q, double qnorm, const dataset *d, uint32_t id)
{
    const float *x = d->v + (size_t)id * d->dim;
    double s = 0;
    for (uint32_t i = 0; i < d->dim; i++)
        s += metric == GPU_METRIC_L2 ? ((double)q[i] - x[i]) * ((double)q[i] - x[i])
                                     : (double)q[i] * x[i];
    if (metric == GPU_METRIC_L2)
        return s;
    if (metric == GPU_METRIC_COSINE)
        s /= qnorm * d->norm[id];
    return 1.0 - s;
}

static int hit_cmp(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Moves the k smallest of h[0..n) to the front, in any order (quickselect). */
static void select_k(hit *h, size_t n, size_t k)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1 && k > lo && k < hi) {
        hit pivot = h[lo + (hi - lo) / 2];
        size_t i = lo, j = hi - 1;
        while (i <= j) {
            while (hit_cmp(&h[i], &pivot) < 0)
                i++;
            while (hit_cmp(&h[j], &pivot) > 0)
                j--;
            if (i <= j) {
                hit t = h[i];
                h[i++] = h[j];
                h[j] = t;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j + 1)
            hi = j + 1;
        else if (k >= i)
            lo = i;
        else
            break;
    }
}

typedef struct oracle_job {
    const dataset *d;
    int metric;
    const float *queries;
    uint32_t q0, q1, k;
    hit *out; /* nq x k; id UINT32_MAX past the live count */
} oracle_job;

static void *oracle_run(void *arg)
{
    oracle_job *j = arg;
    hit *all = xmalloc((size_t)j->d->n * sizeof *all);
    for (uint32_t q = j->q0; q < j->q1; q++) {
        const float *qv = j->queries + (size_t)q * j->d->dim;
        double qn = norm_of(qv, j->d->dim);
        size_t n = 0;
        for (uint32_t id = 0; id < j->d->n; id++)
            if (j->d->live[id])
                all[n++] = (hit){true_distance(j->metric, qv, qn, j->d, id), id};
        size_t k = j->k < n ? j->k : n;
        select_k(all, n, k);
        qsort(all, k, sizeof *all, hit_cmp);
        for (size_t i = 0; i < j->k; i++)
            j->out[(size_t)q * j->k + i] = i < k ? all[i] : (hit){INFINITY, UINT32_MAX};
    }
    free(all);
    return NULL;
}

/* The exact top-k of nq queries over the live ids, on up to 16 threads. */
static hit *oracle(const dataset *d, int metric, const float *queries, uint32_t nq, uint32_t k)
{
    enum { THREADS = 16 };
    hit *out = xmalloc((size_t)nq * k * sizeof *out);
    oracle_job jobs[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (oracle_job){d, metric, queries, (uint32_t)((uint64_t)nq * t / THREADS),
                               (uint32_t)((uint64_t)nq * (t + 1) / THREADS), k, out};
        pthread_create(&th[t], NULL, oracle_run, &jobs[t]);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    return out;
}

/* ---- comparing a GPU result with the oracle ---- */

static int close_enough(double a, double b, int metric)
{
    double scale = fmax(fabs(a), fabs(b));
    /* IP and COSINE distances near 0 are differences of near-equal numbers: an absolute floor. */
    double floor_ = metric == GPU_METRIC_L2 ? 1e-6 : 1e-5;
    return fabs(a - b) <= 1e-4 * scale + floor_;
}

/* Checks one query's k results; returns how many ids differ from the oracle's (ties). */
static int check_query(dataset *d, int metric, const float *qv, const hit *want,
                       const int64_t *ids, const float *dists, uint32_t k, const char *what)
{
    double qn = norm_of(qv, d->dim);
    int differ = 0;
    d->stamp++; /* a new query: no id seen yet */
    for (uint32_t i = 0; i < k; i++) {
        if (want[i].id == UINT32_MAX) {
            CHECK(ids[i] == -1 && isinf(dists[i]), "%s: rank %u: want none, got id %lld", what,
                  i, (long long)ids[i]);
            continue;
        }
        int64_t id = ids[i];
        if (id < 0 || id >= d->n || !d->live[id]) {
            CHECK(0, "%s: rank %u: id %lld is not held (want %u)", what, i, (long long)id,
                  want[i].id);
            return differ;
        }
        CHECK(d->seen[id] != d->stamp, "%s: id %lld twice (rank %u)", what, (long long)id, i);
        d->seen[id] = d->stamp;
        double truth = true_distance(metric, qv, qn, d, (uint32_t)id);
        CHECK(close_enough(dists[i], truth, metric), "%s: rank %u id %lld: reported %.9g, true %.9g",
              what, i, (long long)id, dists[i], truth);
        CHECK(close_enough(dists[i], want[i].d, metric),
              "%s: rank %u: distance %.9g (id %lld), oracle %.9g (id %u)", what, i, dists[i],
              (long long)id, want[i].d, want[i].id);
        differ += (uint32_t)id != want[i].id;
    }
    return differ;
}

/* Searches nq queries for k and checks each against the oracle's first k of kmax. */
static void check_search(gpu_index *g, dataset *d, int metric, const float *queries,
                         uint32_t nq, uint32_t k, const hit *want, uint32_t kmax, unsigned flags,
                         const char *label)
{
    int64_t *ids = xmalloc((size_t)nq * k * 8);
    float *dists = xmalloc((size_t)nq * k * 4);
    char what[160];
    snprintf(what, sizeof what, "%s %s nq=%u k=%u%s", label, metric_name(metric), nq, k,
             flags & GPU_SEARCH_TF32 ? " tf32" : "");
    int rc = gpu_index_search(g, queries, nq, d->dim, k, flags, ids, dists);
    CHECK(rc == GPU_OK, "%s: search: %s (%s)", what, gpu_strerror(rc), gpu_index_error(g));
    int differ = 0, before = failures;
    for (uint32_t q = 0; rc == GPU_OK && q < nq && failures - before < 5; q++)
        differ += check_query(d, metric, queries + (size_t)q * d->dim, want + (size_t)q * kmax,
                              ids + (size_t)q * k, dists + (size_t)q * k, k, what);
    double total, sel;
    gpu_index_last_times(g, &total, &sel);
    printf("%-8s %s: %s, %d ids differ among ties, %.3f ms (select %.3f)\n",
           failures == before ? "ok" : "FAILED", what, rc ? "error" : "checked", differ, total,
           sel);
    free(ids);
    free(dists);
}

/* Every k of {1, 10, 100, 1024} and batch of `batches` against one oracle of kmax = 1024. */
static void check_all(gpu_index *g, dataset *d, int metric, const float *queries,
                      const uint32_t *batches, int nbatches, const char *label)
{
    static const uint32_t ks[] = {1, 10, 100, 1024};
    uint32_t nq = batches[nbatches - 1];
    hit *want = oracle(d, metric, queries, nq, GPU_MAX_K);
    for (int b = 0; b < nbatches; b++)
        for (int i = 0; i < 4; i++)
            check_search(g, d, metric, queries, batches[b], ks[i], want, GPU_MAX_K, 0, label);
    check_search(g, d, metric, queries, batches[nbatches - 1], 10, want, GPU_MAX_K,
                 GPU_SEARCH_TF32, label);
    free(want);
}

/* ---- random data with deletes, overwrites and compaction ---- */

static int add_ids(gpu_index *g, dataset *d, const uint32_t *ids, uint32_t n)
{
    float *v = xmalloc((size_t)n * d->dim * 4);
    for (uint32_t i = 0; i < n; i++) {
        memcpy(v + (size_t)i * d->dim, d->v + (size_t)ids[i] * d->dim, (size_t)d->dim * 4);
        d->live[ids[i]] = 1;
    }
    int rc = gpu_index_add(g, ids, v, n, d->dim);
    free(v);
    return rc;
}

static void delete_share(gpu_index *g, dataset *d, uint32_t percent)
{
    uint32_t *ids = xmalloc((size_t)d->n * 4), n = 0;
    for (uint32_t id = 0; id < d->n; id++)
        if (d->live[id] && next_rand() % 100 < percent) {
            ids[n++] = id;
            d->live[id] = 0;
        }
    int rc = gpu_index_delete(g, ids, n);
    CHECK(rc == GPU_OK, "delete %u: %s (%s)", n, gpu_strerror(rc), gpu_index_error(g));
    printf("deleted %u: %llu live, %llu rows on the device\n", n,
           (unsigned long long)gpu_index_count(g), (unsigned long long)gpu_index_rows(g));
    free(ids);
}

/* Re-adds half the deleted ids with new vectors and overwrites some live ones. */
static void readd_and_overwrite(gpu_index *g, dataset *d)
{
    uint32_t *ids = xmalloc((size_t)d->n * 4), n = 0;
    for (uint32_t id = 0; id < d->n; id++) {
        int pick = d->live[id] ? next_rand() % 20 == 0 : next_rand() % 2 == 0;
        if (!pick)
            continue;
        for (uint32_t j = 0; j < d->dim; j++)
            d->v[(size_t)id * d->dim + j] = rand_unit();
        d->norm[id] = norm_of(d->v + (size_t)id * d->dim, d->dim);
        ids[n++] = id;
    }
    int rc = add_ids(g, d, ids, n);
    CHECK(rc == GPU_OK, "re-add %u: %s (%s)", n, gpu_strerror(rc), gpu_index_error(g));
    free(ids);
}

static void test_random(int metric)
{
    static const uint32_t batches[] = {1, 7, 256, 4096};
    dataset d = dataset_new(20000, 100);
    for (size_t i = 0; i < (size_t)d.n * d.dim; i++)
        d.v[i] = rand_unit();
    set_norms(&d);
    float *queries = xmalloc((size_t)4096 * d.dim * 4);
    for (size_t i = 0; i < (size_t)4096 * d.dim; i++)
        queries[i] = rand_unit();
    gpu_index *g;
    char err[256];
    int rc = gpu_index_create(0, d.dim, metric, &g, err, sizeof err);
    CHECK(rc == GPU_OK, "create: %s (%s)", gpu_strerror(rc), err);
    if (rc)
        goto out;
    uint32_t *ids = xmalloc((size_t)d.n * 4);
    for (uint32_t i = 0; i < d.n; i++)
        ids[i] = d.n - 1 - i; /* ids not in row order */
    /* Two adds, so that the second grows the device arrays. */
    CHECK(add_ids(g, &d, ids, 3000) == GPU_OK, "add: %s", gpu_index_error(g));
    CHECK(add_ids(g, &d, ids + 3000, d.n - 3000) == GPU_OK, "add: %s", gpu_index_error(g));
    free(ids);
    check_all(g, &d, metric, queries, batches, 4, "random");
    gpu_index_set_tile_rows(g, 3001); /* 7 tiles, the last one short */
    check_all(g, &d, metric, queries, batches, 3, "random tiles=3001");
    gpu_index_set_tile_rows(g, 0);
    delete_share(g, &d, 10); /* tombstones, no compaction */
    check_all(g, &d, metric, queries, batches, 4, "random -10%");
    delete_share(g, &d, 30); /* past a quarter dead: compaction */
    readd_and_overwrite(g, &d);
    check_all(g, &d, metric, queries, batches, 4, "random -30% +re-add");
    gpu_index_free(g);
out:
    free(queries);
    dataset_free(&d);
}

/* ---- the shared data sets ---- */

enum { FVECS, BVECS, IVECS }; /* texmex element types: float32, uint8, int32 */

/* Reads up to max records of a texmex file, every element converted to float. */
static float *read_vecs(const char *path, int type, uint32_t max, uint32_t *n, uint32_t *dim)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    int32_t d = 0;
    if (fread(&d, 4, 1, f) != 1 || d <= 0 || d > GPU_MAX_DIM) {
        fclose(f);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long records = ftell(f) / (4 + (long)d * (type == BVECS ? 1 : 4));
    fseek(f, 0, SEEK_SET);
    *n = (uint32_t)(records < (long)max ? records : (long)max);
    *dim = (uint32_t)d;
    float *v = xmalloc((size_t)*n * d * 4);
    unsigned char *row = xmalloc((size_t)d * 4);
    for (uint32_t i = 0; i < *n; i++) {
        int32_t rd;
        if (fread(&rd, 4, 1, f) != 1 || rd != d ||
            fread(row, type == BVECS ? 1 : 4, (size_t)d, f) != (size_t)d) {
            *n = i;
            break;
        }
        for (int32_t j = 0; j < d; j++) {
            float x;
            int32_t k;
            memcpy(&x, row + 4 * j, 4);
            memcpy(&k, row + 4 * j, 4);
            v[(size_t)i * d + j] = type == BVECS ? row[j] : type == IVECS ? (float)k : x;
        }
    }
    free(row);
    fclose(f);
    return v;
}

static const char *data_dir(void)
{
    const char *e = getenv("QUIVER_GPU_DATA");
    return e && *e ? e : "../shared/data/vectors";
}

/* Checks k = 100 distances against a ground-truth file of exact squared distances. */
static void check_gt_sqdist(gpu_index *g, const float *queries, uint32_t nq, uint32_t dim,
                            const char *path)
{
    uint32_t gn, gk;
    float *gt = read_vecs(path, IVECS, nq, &gn, &gk);
    if (!gt) {
        printf("SKIP ground truth: %s not found\n", path);
        return;
    }
    int64_t *ids = xmalloc((size_t)gn * 100 * 8);
    float *dists = xmalloc((size_t)gn * 100 * 4);
    int rc = gpu_index_search(g, queries, gn, dim, 100, 0, ids, dists);
    CHECK(rc == GPU_OK, "search: %s", gpu_index_error(g));
    int before = failures;
    for (uint32_t q = 0; rc == GPU_OK && q < gn && failures - before < 5; q++)
        for (uint32_t i = 0; i < 100 && i < gk; i++) {
            float want = gt[(size_t)q * gk + i];
            CHECK(close_enough(dists[(size_t)q * 100 + i], want, GPU_METRIC_L2),
                  "ground truth q %u rank %u: %.9g, want %.9g", q, i, dists[(size_t)q * 100 + i],
                  want);
        }
    printf("%-8s %u queries' top-100 squared distances against %s\n",
           failures == before ? "ok" : "FAILED", gn, path);
    free(ids);
    free(dists);
    free(gt);
}

static void test_dataset(const char *name, const char *base, const char *query, int type,
                         uint32_t max_queries, int metric, const char *gt_sqdist)
{
    char bpath[512], qpath[512], gpath[512];
    snprintf(bpath, sizeof bpath, "%s/%s/%s", data_dir(), name, base);
    snprintf(qpath, sizeof qpath, "%s/%s/%s", data_dir(), name, query);
    uint32_t n, dim, nq, qdim;
    float *bv = read_vecs(bpath, type, UINT32_MAX, &n, &dim);
    float *qv = read_vecs(qpath, type, max_queries, &nq, &qdim);
    if (!bv || !qv || qdim != dim || nq == 0) {
        printf("SKIP data set %s: %s or %s not found\n", name, bpath, qpath);
        free(bv);
        free(qv);
        return;
    }
    dataset d = {n, dim, bv, xmalloc((size_t)n * 8), xmalloc(n), xmalloc((size_t)n * 4), 0};
    set_norms(&d);
    memset(d.live, 1, n);
    memset(d.seen, 0, (size_t)n * 4);
    gpu_index *g;
    char err[256];
    int rc = gpu_index_create(0, dim, metric, &g, err, sizeof err);
    CHECK(rc == GPU_OK, "create: %s", err);
    uint32_t *ids = xmalloc((size_t)n * 4);
    for (uint32_t i = 0; i < n; i++)
        ids[i] = i;
    if (rc == GPU_OK && (rc = gpu_index_add(g, ids, bv, n, dim)) != GPU_OK)
        CHECK(0, "add %s: %s", name, gpu_index_error(g));
    uint32_t batches[] = {1, 7, nq};
    char label[64];
    snprintf(label, sizeof label, "%s", name);
    if (rc == GPU_OK) {
        check_all(g, &d, metric, qv, batches, nq > 7 ? 3 : 1, label);
        if (gt_sqdist) {
            snprintf(gpath, sizeof gpath, "%s/%s/%s", data_dir(), name, gt_sqdist);
            check_gt_sqdist(g, qv, nq, dim, gpath);
        }
    }
    gpu_index_free(g);
    free(ids);
    free(qv);
    dataset_free(&d);
}

/* ---- errors ---- */

/* Twice the rows the device could hold: refused, and the index still adds and answers. */
static void test_oom(void)
{
    enum { DIM = 4096 };
    gpu_index *g;
    char err[256];
    gpu_device_info info;
    gpu_device_query(0, &info, err, sizeof err);
    int rc = gpu_index_create(0, DIM, GPU_METRIC_L2, &g, err, sizeof err);
    CHECK(rc == GPU_OK, "create: %s", err);
    if (rc)
        return;
    rc = gpu_index_reserve(g, info.total_mem / (DIM * 4) * 2);
    CHECK(rc == GPU_ERR_OOM, "reserve past device memory: %s", gpu_strerror(rc));
    printf("out of memory says: %s\n", gpu_index_error(g));
    float *v = xmalloc(DIM * 4);
    for (int i = 0; i < DIM; i++)
        v[i] = (float)i;
    uint32_t id = 3;
    int64_t got = -1;
    float dist = -1;
    CHECK(gpu_index_add(g, &id, v, 1, DIM) == GPU_OK, "add after OOM: %s", gpu_index_error(g));
    rc = gpu_index_search(g, v, 1, DIM, 1, 0, &got, &dist);
    CHECK(rc == GPU_OK && got == 3 && dist == 0.0f, "search after OOM: %s, id %lld",
          gpu_strerror(rc), (long long)got);
    free(v);
    gpu_index_free(g);
}

static void test_errors(void)
{
    gpu_index *g;
    char err[256];
    CHECK(gpu_index_create(0, 0, GPU_METRIC_L2, &g, err, sizeof err) == GPU_ERR_DIM, "dim 0");
    CHECK(gpu_index_create(0, 8, 9, &g, err, sizeof err) == GPU_ERR_ARG, "metric 9");
    CHECK(gpu_index_create(1 << 20, 8, GPU_METRIC_L2, &g, err, sizeof err) == GPU_ERR_NO_DEVICE,
          "device 2^20: %s", err);
    int rc = gpu_index_create(0, 8, GPU_METRIC_COSINE, &g, err, sizeof err);
    CHECK(rc == GPU_OK, "create: %s", err);
    if (rc)
        return;
    float v[16] = {1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1}, zero[8] = {0};
    uint32_t ids[2] = {5, 9}, dup[2] = {3, 3}, absent = 77;
    int64_t out_ids[8];
    float out_d[8];
    CHECK(gpu_index_search(g, v, 1, 8, 4, 0, out_ids, out_d) == GPU_OK && out_ids[0] == -1 &&
              isinf(out_d[3]), "empty index: -1 / +inf");
    CHECK(gpu_index_add(g, ids, v, 2, 7) == GPU_ERR_DIM, "add of dim 7");
    CHECK(gpu_index_add(g, dup, v, 2, 8) == GPU_ERR_ARG, "same id twice");
    CHECK(gpu_index_add(g, ids, zero, 1, 8) == GPU_ERR_ARG, "COSINE zero vector");
    CHECK(gpu_index_count(g) == 0, "failed adds added nothing");
    CHECK(gpu_index_add(g, ids, v, 2, 8) == GPU_OK, "add: %s", gpu_index_error(g));
    CHECK(gpu_index_search(g, v, 1, 8, GPU_MAX_K + 1, 0, out_ids, out_d) == GPU_ERR_K, "k 1025");
    CHECK(gpu_index_search(g, v, 1, 8, 0, 0, out_ids, out_d) == GPU_ERR_K, "k 0");
    CHECK(gpu_index_search(g, v, 1, 9, 1, 0, out_ids, out_d) == GPU_ERR_DIM, "query dim 9");
    CHECK(gpu_index_search(g, v, 0, 8, 1, 0, out_ids, out_d) == GPU_ERR_ARG, "batch 0");
    CHECK(gpu_index_search(g, v, GPU_MAX_BATCH + 1, 8, 1, 0, out_ids, out_d) == GPU_ERR_ARG,
          "batch 4097");
    CHECK(gpu_index_search(g, zero, 1, 8, 1, 0, out_ids, out_d) == GPU_ERR_ARG, "zero query");
    CHECK(gpu_index_delete(g, &absent, 1) == GPU_ERR_NOTFOUND, "delete of an absent id");
    rc = gpu_index_search(g, v, 2, 8, 4, 0, out_ids, out_d);
    CHECK(rc == GPU_OK && out_ids[0] == 5 && out_ids[1] == 9 && out_ids[2] == -1 &&
              out_ids[4] == 9 && fabsf(out_d[0]) < 1e-6f,
          "search: %s, ids %lld %lld", gpu_strerror(rc), (long long)out_ids[0],
          (long long)out_ids[1]);
    CHECK(gpu_index_delete(g, ids, 1) == GPU_OK, "delete: %s", gpu_index_error(g));
    CHECK(gpu_index_count(g) == 1, "count after delete");
    gpu_index_free(g);
    test_oom();
    printf("errors checked\n");
}

/* ---- gpu_knn_graph ---- */

/* Row i's list against the oracle's k + 1 nearest of the rows (itself among them, or pushed
 * out by duplicates): distinct rows, never i, the j-th distance the oracle's j-th once i is
 * dropped. Returns how many rows differ (ties). */
static int check_graph_row(dataset *d, int metric, uint32_t i, const hit *want, const uint32_t *got,
                           uint32_t k, const char *what)
{
    const float *qv = d->v + (size_t)i * d->dim;
    double qn = norm_of(qv, d->dim);
    hit others[GPU_MAX_K];
    uint32_t n = 0;
    for (uint32_t j = 0; j <= k && n < k; j++)
        if (want[j].id != i)
            others[n++] = want[j];
    int differ = 0;
    d->stamp++;
    for (uint32_t j = 0; j < k; j++) {
        if (j >= n || others[j].id == UINT32_MAX) {
            CHECK(got[j] == UINT32_MAX, "%s: row %u rank %u: want none, got %u", what, i, j, got[j]);
            continue;
        }
        if (got[j] >= d->n || got[j] == i || d->seen[got[j]] == d->stamp) {
            CHECK(0, "%s: row %u rank %u: row %u is itself, repeated or out of range", what, i, j,
                  got[j]);
            return differ;
        }
        d->seen[got[j]] = d->stamp;
        double truth = true_distance(metric, qv, qn, d, got[j]);
        CHECK(close_enough(truth, others[j].d, metric), "%s: row %u rank %u: row %u at %.9g, oracle %.9g (row %u)",
              what, i, j, got[j], truth, others[j].d, others[j].id);
        differ += got[j] != others[j].id;
    }
    return differ;
}

static void check_graph(dataset *d, int metric, uint32_t k, const char *label)
{
    uint32_t *out = xmalloc((size_t)d->n * k * 4);
    char detail[256] = "", what[160];
    snprintf(what, sizeof what, "knn_graph %s %s n=%u k=%u", label, metric_name(metric), d->n, k);
    int rc = gpu_knn_graph(0, d->v, d->n, d->dim, metric, k, out, detail, sizeof detail);
    CHECK(rc == GPU_OK, "%s: %s (%s)", what, gpu_strerror(rc), detail);
    int before = failures, differ = 0;
    if (rc == GPU_OK) {
        hit *want = oracle(d, metric, d->v, d->n, k + 1);
        for (uint32_t i = 0; i < d->n && failures - before < 5; i++)
            differ += check_graph_row(d, metric, i, want + (size_t)i * (k + 1), out + (size_t)i * k,
                                      k, what);
        free(want);
    }
    printf("%-8s %s: %d ids differ among ties\n", failures == before ? "ok" : "FAILED", what,
           differ);
    free(out);
}

/* Random rows (two batches of queries), a tenth of them exact duplicates of others, so that
 * a row's own id ties with its twin's; then fewer rows than k; then the errors. */
static void test_knn_graph(void)
{
    static const uint32_t ks[] = {1, 16, 100, GPU_MAX_K - 1};
    dataset d = dataset_new(5000, 48);
    for (size_t i = 0; i < (size_t)d.n * d.dim; i++)
        d.v[i] = rand_unit();
    for (uint32_t i = 0; i < d.n; i += 10)
        memcpy(d.v + (size_t)i * d.dim, d.v + (size_t)(d.n - 1 - i) * d.dim, d.dim * 4);
    memset(d.live, 1, d.n);
    set_norms(&d);
    for (int m = GPU_METRIC_L2; m <= GPU_METRIC_COSINE; m++)
        for (int i = 0; i < 4; i++)
            check_graph(&d, m, ks[i], "random");
    uint32_t n = d.n;
    d.n = 5; /* fewer than k others: padding */
    check_graph(&d, GPU_METRIC_L2, 8, "small");
    d.n = n;
    uint32_t out[8];
    char detail[256];
    CHECK(gpu_knn_graph(0, d.v, 5, d.dim, GPU_METRIC_L2, 0, out, detail, sizeof detail) ==
              GPU_ERR_K, "knn_graph k 0");
    CHECK(gpu_knn_graph(0, d.v, 5, d.dim, GPU_METRIC_L2, GPU_MAX_K, out, detail, sizeof detail) ==
              GPU_ERR_K, "knn_graph k 1024");
    CHECK(gpu_knn_graph(0, d.v, 5, d.dim, 9, 1, out, detail, sizeof detail) == GPU_ERR_ARG,
          "knn_graph metric 9");
    memset(d.v + 2 * d.dim, 0, d.dim * 4);
    CHECK(gpu_knn_graph(0, d.v, 5, d.dim, GPU_METRIC_COSINE, 1, out, detail, sizeof detail) ==
              GPU_ERR_ARG, "knn_graph COSINE zero row");
    dataset_free(&d);
}

int main(void)
{
    gpu_device_info info;
    char detail[256];
    if (gpu_device_query(0, &info, detail, sizeof detail) != GPU_OK) {
        printf("SKIP: no CUDA device (%s)\n", detail);
        return 0;
    }
    printf("device: %s, %d SMs, %.1f GiB, peak %.0f GB/s\n", info.name, info.sm_count,
           info.total_mem / 1073741824.0, info.mem_bandwidth_gbs);
    test_errors();
    for (int m = GPU_METRIC_L2; m <= GPU_METRIC_COSINE; m++)
        test_random(m);
    test_dataset("bigann10k", "bigann10k_base.fvecs", "bigann10k_query.fvecs", FVECS, 100,
                 GPU_METRIC_L2, NULL);
    test_dataset("bigann10k", "bigann10k_base.fvecs", "bigann10k_query.fvecs", FVECS, 100,
                 GPU_METRIC_COSINE, NULL);
    test_dataset("fmnist1k", "fmnist1k_base.fvecs", "fmnist1k_query.fvecs", FVECS, 500,
                 GPU_METRIC_IP, NULL);
    test_dataset("fashion-mnist-784-euclidean", "fmnist_train_base.bvecs",
                 "fmnist_test_query.bvecs", BVECS, 256, GPU_METRIC_L2,
                 "fmnist_groundtruth_l2_k100_sqdist.ivecs");
    test_knn_graph();
    printf("test_gpu: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
