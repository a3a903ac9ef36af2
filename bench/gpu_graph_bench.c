/* gpu_graph_bench.c: HNSW graph builds compared, for issue 5's "GPU graph build": kNN lists
 * on the GPU (gpu_knn_graph) pruned into our HNSW on the CPU (vec_hnsw_build), beside the
 * same prune of exact CPU kNN lists (vec_knn_graph), our incremental build (vec_add, one
 * writer: single-threaded) and hnswlib's (its addPoint on `threads` threads, where its header
 * was found at build time), all at the same M and EF_CONSTRUCTION; for each: build time and
 * recall@10 at several ef against an exact scan. Built by index/gpu/Makefile with nothing of
 * Quiver's but index/ and core/ (libc only) and the CUDA library, so it runs on a GPU machine
 * without our Debian libraries; where no device answers, the GPU rows say why and the rest
 * run (make bench-gpu-graph here: a small CPU run).
 *
 *   gpu_graph_bench [--set fmnist|random] [--rows N] [--dim D] [--queries Q] [--m 16]
 *       [--efc 200] [--knn 64] [--efs 10,50,100] [--threads T (0: all CPUs)]
 *       [--cpu-knn-rows N] [--incr-rows N] [--hnswlib-rows N] [--json FILE]
 *
 * A comparison whose size passes its --*-rows cap is not run, and a line says so; for the
 * incremental build, a cap below --rows builds only that many first rows and reports their
 * time (and rows/s) without a recall. Data: fashion-mnist-784's train vectors (60,000) and
 * test queries from $QUIVER_GPU_DATA, else ../shared/data/vectors, else data/gpu-vectors;
 * random: uniform [-1, 1) rows and queries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/err.h"
#include "index/gpu/gpu.h"
#include "index/index.h"
#include "index/index_int.h"
#ifdef HAVE_HNSWLIB
#include "bench/gpu_graph_hnswlib.h"
#endif

#define K 10
#define MAX_EFS 8

typedef struct opts {
    const char *set, *json;
    uint32_t rows, dim, queries, m, efc, knn, threads;
    uint32_t cpu_knn_rows, incr_rows, hnswlib_rows;
    uint32_t efs[MAX_EFS], nefs;
} opts;

typedef struct data {
    uint32_t n, dim, nq;
    float *base, *query;
    uint32_t *gt; /* nq x K exact ids */
    float *gtd;   /* nq x K exact distances */
} data;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "gpu_graph_bench: %s\n", what);
    exit(2);
}

/* ---- options and data ---- */

static void parse_efs(opts *o, const char *s)
{
    o->nefs = 0;
    for (char *end; *s && o->nefs < MAX_EFS; s = *end ? end + 1 : end) {
        o->efs[o->nefs++] = (uint32_t)strtoul(s, &end, 10);
        if (end == s)
            die("--efs: a comma-separated list of numbers");
    }
}

static opts parse(int argc, char **argv)
{
    opts o = {"fmnist", NULL, 60000, 128, 256, 16, 200, 64, 0, 200000, UINT32_MAX, UINT32_MAX,
              {10, 50, 100}, 3};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        uint32_t n = (uint32_t)strtoul(v, NULL, 10);
        if (!strcmp(a, "--set"))
            o.set = v;
        else if (!strcmp(a, "--json"))
            o.json = v;
        else if (!strcmp(a, "--efs"))
            parse_efs(&o, v);
        else if (!strcmp(a, "--rows"))
            o.rows = n;
        else if (!strcmp(a, "--dim"))
            o.dim = n;
        else if (!strcmp(a, "--queries"))
            o.queries = n;
        else if (!strcmp(a, "--m"))
            o.m = n;
        else if (!strcmp(a, "--efc"))
            o.efc = n;
        else if (!strcmp(a, "--knn"))
            o.knn = n;
        else if (!strcmp(a, "--threads"))
            o.threads = n;
        else if (!strcmp(a, "--cpu-knn-rows"))
            o.cpu_knn_rows = n;
        else if (!strcmp(a, "--incr-rows"))
            o.incr_rows = n;
        else if (!strcmp(a, "--hnswlib-rows"))
            o.hnswlib_rows = n;
        else
            die("unknown option (see the header of bench/gpu_graph_bench.c)");
    }
    if (!o.rows || !o.queries || !o.m || !o.knn || !o.nefs)
        die("--rows, --queries, --m, --knn and --efs must be positive");
    o.threads = vec__threads(o.threads);
    return o;
}

static const char *data_dir(void)
{
    const char *d = getenv("QUIVER_GPU_DATA");
    if (d && *d)
        return d;
    FILE *f = fopen("../shared/data/vectors/fashion-mnist-784-euclidean/fmnist_train_base.bvecs", "rb");
    if (f) {
        fclose(f);
        return "../shared/data/vectors";
    }
    return "data/gpu-vectors";
}

/* Up to *n records of a .bvecs file as floats; *n gets how many were read. */
static float *read_bvecs(const char *name, uint32_t *n, uint32_t *dim)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/fashion-mnist-784-euclidean/%s", data_dir(), name);
    FILE *f = fopen(path, "rb");
    int32_t d = 0;
    if (!f || fread(&d, 4, 1, f) != 1 || d <= 0 || d > 4096) {
        fprintf(stderr, "gpu_graph_bench: cannot read %s\n", path);
        exit(2);
    }
    rewind(f);
    float *out = xmalloc((size_t)*n * d * sizeof(float));
    unsigned char *rec = xmalloc(d);
    uint32_t got = 0;
    for (int32_t h; got < *n && fread(&h, 4, 1, f) == 1 && h == d &&
                    fread(rec, 1, d, f) == (size_t)d;
         got++)
        for (int32_t j = 0; j < d; j++)
            out[(size_t)got * d + j] = rec[j];
    xfree(rec);
    fclose(f);
    *n = got;
    *dim = (uint32_t)d;
    return out;
}

static float *random_rows(uint32_t n, uint32_t dim, uint64_t seed)
{
    float *v = xmalloc((size_t)n * dim * sizeof(float));
    for (size_t i = 0; i < (size_t)n * dim; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v[i] = (float)((seed >> 11) * 0x1p-53) * 2.0f - 1.0f;
    }
    return v;
}

/* ---- exact ground truth: a FLAT index, the queries on every thread ---- */

typedef struct gt_job {
    vec_index *flat;
    data *d;
} gt_job;

static int gt_part(void *ctx, uint32_t worker, uint32_t lo, uint32_t hi)
{
    (void)worker;
    gt_job *j = ctx;
    for (uint32_t q = lo; q < hi; q++) {
        vec_hit h[K];
        size_t n = 0;
        if (vec_knn(j->flat, j->d->query + (size_t)q * j->d->dim, K, 0, NULL, h, &n) || n != K)
            return -1;
        for (int i = 0; i < K; i++) {
            j->d->gt[q * K + i] = h[i].id;
            j->d->gtd[q * K + i] = h[i].dist;
        }
    }
    return 0;
}

static void ground_truth(data *d, uint32_t threads)
{
    vec_params p = {.kind = VEC_FLAT, .metric = VEC_L2, .dim = d->dim};
    vec_index *flat;
    char err[128];
    if (vec_create(&p, &flat, err, sizeof err))
        die(err);
    for (uint32_t i = 0; i < d->n; i++)
        if (vec_add(flat, i, d->base + (size_t)i * d->dim))
            die("FLAT add");
    d->gt = xmalloc((size_t)d->nq * K * sizeof(uint32_t));
    d->gtd = xmalloc((size_t)d->nq * K * sizeof(float));
    gt_job j = {flat, d};
    if (vec__parallel(threads, d->nq, 4, gt_part, &j))
        die("ground truth search");
    vec_free(flat);
}

/* recall@10 of one query's ids; an id at the 10th exact distance counts (ties). */
static uint32_t hits(const data *d, uint32_t q, const uint32_t *ids)
{
    uint32_t h = 0;
    const float *qv = d->query + (size_t)q * d->dim;
    for (int i = 0; i < K; i++) {
        if (ids[i] >= d->n)
            continue;
        int hit = vec_l2sq(qv, d->base + (size_t)ids[i] * d->dim, d->dim) <=
                  d->gtd[q * K + K - 1] * (1 + 1e-6f);
        for (int j = 0; j < K && !hit; j++)
            hit = ids[i] == d->gt[q * K + j];
        h += hit;
    }
    return h;
}

/* ---- results ---- */

typedef struct result {
    char name[64];
    uint32_t rows;
    double knn_s, prune_s, total_s; /* knn_s < 0: not a bulk build */
    double recall[MAX_EFS]; /* < 0: not measured */
} result;

static FILE *json;

static void report(const opts *o, const result *r)
{
    printf("%-24s rows %8u  ", r->name, r->rows);
    if (r->knn_s >= 0)
        printf("kNN %8.2f s + prune %7.2f s = ", r->knn_s, r->prune_s);
    else
        printf("%33s", "");
    printf("%8.2f s (%8.0f rows/s)  recall@10", r->total_s, r->rows / r->total_s);
    for (uint32_t i = 0; i < o->nefs; i++)
        if (r->recall[i] >= 0)
            printf("  ef %u: %.4f", o->efs[i], r->recall[i]);
        else
            printf("  ef %u: -", o->efs[i]);
    printf("\n");
    fflush(stdout);
    if (!json)
        return;
    fprintf(json, "{\"set\": \"%s\", \"n\": %u, \"dim\": %u, \"m\": %u, \"efc\": %u, \"knn\": %u, "
                  "\"threads\": %u, \"build\": \"%s\", \"rows\": %u, \"knn_s\": %.4f, "
                  "\"prune_s\": %.4f, \"total_s\": %.4f, \"recall10\": {",
            o->set, o->rows, o->dim, o->m, o->efc, o->knn, o->threads, r->name, r->rows, r->knn_s,
            r->prune_s, r->total_s);
    for (uint32_t i = 0, first = 1; i < o->nefs; i++)
        if (r->recall[i] >= 0) {
            fprintf(json, "%s\"%u\": %.5f", first ? "" : ", ", o->efs[i], r->recall[i]);
            first = 0;
        }
    fprintf(json, "}}\n");
    fflush(json);
}

static void skipped(const opts *o, const char *what, const char *why)
{
    printf("%-24s skipped: %s\n", what, why);
    if (json)
        fprintf(json, "{\"set\": \"%s\", \"n\": %u, \"build\": \"%s\", \"skipped\": \"%s\"}\n",
                o->set, o->rows, what, why);
}

static void recall_of_index(const opts *o, const data *d, vec_index *ix, result *r)
{
    for (uint32_t e = 0; e < o->nefs; e++) {
        size_t h = 0;
        for (uint32_t q = 0; q < d->nq; q++) {
            vec_hit out[K];
            uint32_t ids[K];
            size_t n = 0;
            if (vec_knn(ix, d->query + (size_t)q * d->dim, K, o->efs[e], NULL, out, &n))
                die("HNSW search");
            for (int i = 0; i < K; i++)
                ids[i] = (size_t)i < n ? out[i].id : UINT32_MAX;
            h += hits(d, q, ids);
        }
        r->recall[e] = (double)h / ((double)d->nq * K);
    }
}

static vec_index *hnsw_new(const opts *o, const data *d)
{
    vec_params p = {.kind = VEC_HNSW, .metric = VEC_L2, .dim = d->dim, .m = o->m,
                    .ef_construction = o->efc};
    vec_index *ix;
    char err[128];
    if (vec_create(&p, &ix, err, sizeof err))
        die(err);
    return ix;
}

/* ---- the builds ---- */

/* The upper levels' lists on the device too (vec_knn_fn). */
static int gpu_upper(void *ctx, int metric, const float *vecs, uint32_t n, uint32_t dim,
                     uint32_t k, uint32_t *out)
{
    (void)ctx;
    char detail[256];
    int rc = gpu_knn_graph(0, vecs, n, dim, metric, k, out, detail, sizeof detail);
    if (rc)
        fprintf(stderr, "gpu_graph_bench: upper levels: %s\n", detail);
    return rc ? ERR_GPU : 0;
}

/* The bulk build from lists (computed by the caller in knn_s seconds); the upper levels'
 * lists from `upper` (NULL: the CPU's), inside the prune time. */
static void bulk_from(const opts *o, const data *d, const char *name, const uint32_t *knn,
                      double knn_s, vec_knn_fn upper)
{
    result r = {.rows = d->n, .knn_s = knn_s};
    snprintf(r.name, sizeof r.name, "%s", name);
    uint32_t *ids = xmalloc((size_t)d->n * sizeof(uint32_t));
    for (uint32_t i = 0; i < d->n; i++)
        ids[i] = i;
    vec_index *ix = hnsw_new(o, d);
    char err[160];
    double t0 = now();
    if (vec_hnsw_build(ix, ids, d->base, d->n, knn, o->knn, upper, NULL, o->threads, err,
                       sizeof err))
        die(err);
    r.prune_s = now() - t0;
    r.total_s = r.knn_s + r.prune_s;
    recall_of_index(o, d, ix, &r);
    report(o, &r);
    vec_free(ix);
    xfree(ids);
}

static void bulk_gpu(const opts *o, const data *d, uint32_t *knn)
{
    gpu_device_info info;
    char detail[256];
    if (gpu_device_query(0, &info, detail, sizeof detail)) {
        skipped(o, "bulk, GPU kNN", detail);
        return;
    }
    printf("device: %s, %d SMs, %.1f GiB\n", info.name, info.sm_count, info.total_mem / 1073741824.0);
    double t0 = now();
    int rc = gpu_knn_graph(0, d->base, d->n, d->dim, GPU_METRIC_L2, o->knn, knn, detail,
                           sizeof detail);
    if (rc) {
        skipped(o, "bulk, GPU kNN", detail);
        return;
    }
    bulk_from(o, d, "bulk, GPU kNN", knn, now() - t0, gpu_upper);
}

static void bulk_cpu(const opts *o, const data *d, uint32_t *knn)
{
    if (d->n > o->cpu_knn_rows) {
        skipped(o, "bulk, CPU kNN", "rows above --cpu-knn-rows (exact lists cost n^2 distances)");
        return;
    }
    double t0 = now();
    if (vec_knn_graph(VEC_L2, d->base, d->n, d->dim, o->knn, o->threads, knn))
        die("vec_knn_graph");
    bulk_from(o, d, "bulk, CPU kNN", knn, now() - t0, NULL);
}

static void incremental(const opts *o, const data *d)
{
    uint32_t rows = d->n < o->incr_rows ? d->n : o->incr_rows;
    if (!rows) {
        skipped(o, "incremental (1 thread)", "--incr-rows 0");
        return;
    }
    result r = {.rows = rows, .knn_s = -1};
    snprintf(r.name, sizeof r.name, "incremental (1 thread)");
    vec_index *ix = hnsw_new(o, d);
    double t0 = now();
    for (uint32_t i = 0; i < rows; i++)
        if (vec_add(ix, i, d->base + (size_t)i * d->dim))
            die("vec_add");
    r.total_s = now() - t0;
    for (uint32_t e = 0; e < o->nefs; e++)
        r.recall[e] = -1;
    if (rows == d->n)
        recall_of_index(o, d, ix, &r);
    else
        printf("(incremental: only the first %u rows, --incr-rows: time only)\n", rows);
    report(o, &r);
    vec_free(ix);
}

static void hnswlib(const opts *o, const data *d)
{
#ifdef HAVE_HNSWLIB
    if (d->n > o->hnswlib_rows) {
        skipped(o, "hnswlib", "rows above --hnswlib-rows");
        return;
    }
    result r = {.rows = d->n, .knn_s = -1};
    snprintf(r.name, sizeof r.name, "hnswlib (%u threads)", o->threads);
    double t0 = now();
    void *ix = hl_build(d->base, d->n, (int)d->dim, (int)o->m, (int)o->efc, (int)o->threads);
    if (!ix) {
        skipped(o, "hnswlib", "build failed");
        return;
    }
    r.total_s = now() - t0;
    for (uint32_t e = 0; e < o->nefs; e++) {
        size_t h = 0;
        for (uint32_t q = 0; q < d->nq; q++) {
            uint32_t ids[K];
            hl_search(ix, d->query + (size_t)q * d->dim, K, (int)o->efs[e], ids);
            h += hits(d, q, ids);
        }
        r.recall[e] = (double)h / ((double)d->nq * K);
    }
    report(o, &r);
    hl_free(ix);
#else
    (void)o;
    (void)d;
    skipped(o, "hnswlib", "its header was not found at build time (HNSWLIB_INC)");
#endif
}

int main(int argc, char **argv)
{
    opts o = parse(argc, argv);
    data d = {0};
    if (!strcmp(o.set, "fmnist")) {
        d.n = o.rows;
        d.nq = o.queries;
        uint32_t qdim;
        d.base = read_bvecs("fmnist_train_base.bvecs", &d.n, &d.dim);
        d.query = read_bvecs("fmnist_test_query.bvecs", &d.nq, &qdim);
        if (qdim != d.dim || !d.n || !d.nq)
            die("fashion-mnist: no rows, or queries of another dimension");
    } else if (!strcmp(o.set, "random")) {
        d.n = o.rows;
        d.nq = o.queries;
        d.dim = o.dim;
        d.base = random_rows(d.n, d.dim, 0x9e3779b97f4a7c15ull);
        d.query = random_rows(d.nq, d.dim, 0x5eed5eed12345ull);
    } else {
        die("--set fmnist or random");
    }
    o.rows = d.n;
    o.dim = d.dim;
    if (o.json && !(json = fopen(o.json, "a")))
        die("cannot open --json file");
    printf("set %s: %u x %u, %u queries; M %u, EF_CONSTRUCTION %u, kNN lists of %u; %u threads; "
           "kernels %s\n", o.set, d.n, d.dim, d.nq, o.m, o.efc, o.knn, o.threads, vec_kernels());
    double t0 = now();
    ground_truth(&d, o.threads);
    printf("exact ground truth: %.2f s\n", now() - t0);
    uint32_t *knn = xmalloc((size_t)d.n * o.knn * sizeof(uint32_t));
    bulk_gpu(&o, &d, knn);
    bulk_cpu(&o, &d, knn);
    incremental(&o, &d);
    hnswlib(&o, &d);
    xfree(knn);
    xfree(d.base);
    xfree(d.query);
    xfree(d.gt);
    xfree(d.gtd);
    if (json)
        fclose(json);
    return 0;
}
