/* ann_bench.c: our HNSW beside hnswlib and FAISS's IndexHNSWFlat, single-threaded, with the
 * same M and EF_CONSTRUCTION, on the shared data sets (bigann10k, fashion-mnist-784): build
 * time, memory per vector, and recall@10 against QPS at several ef, printed as a table, then
 * each engine's QPS at recall 0.95 and 0.99 (interpolated between the measured ef) and a
 * PNG plot when gnuplot is installed.
 *
 * Knobs (environment): ANN_SETS (bigann10k,fmnist), ANN_ENGINES (quiver,hnswlib,faiss),
 * ANN_M (16), ANN_EFC (200), ANN_EF (a comma list), ANN_QUERIES (queries used, fmnist's
 * default 1000 of 10000), ANN_REPEAT (rounds of queries, the best counts: 3), ANN_DATA
 * (the vectors folder, ../shared/data/vectors), ANN_OUT (where the plot goes,
 * build/bench-ann).
 *
 * Memory is the growth of the heap (mallinfo2) across a build, the same measure for all
 * three; ours also reports vec_memory(). Recall@10 counts a returned id whose distance ties
 * the 10th true distance as a hit. */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/ann/ann_adapters.h"
#include "core/alloc.h"
#include "core/err.h"
#include "index/index.h"

#define K 10
#define MAX_EF 32
#define MAX_ENGINES 3

typedef struct dataset {
    const char *name;
    uint32_t n, dim, nq, gtk;
    float *base, *query;
    int32_t *gt;
} dataset;

typedef struct engine {
    const char *name;
    void *(*build)(const float *base, size_t n, int dim, int m, int efc);
    void (*search)(void *ix, const float *q, int k, int ef, uint32_t *out);
    void (*destroy)(void *ix);
} engine;

typedef struct result {
    double build_s, bytes_per_vec, own_bytes_per_vec;
    double recall[MAX_EF], qps[MAX_EF];
} result;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t heap_used(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* Reads a texmex file (elem 'f' float, 'b' uint8, 'i' int32) as rows of dim values,
 * converted to float (or kept as int32 for 'i'); at most maxrows rows. */
static void *read_vecs(const char *path, char elem, uint32_t maxrows, uint32_t *rows, uint32_t *dim)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "ann_bench: cannot open %s\n", path);
        exit(1);
    }
    int32_t d;
    if (fread(&d, 4, 1, f) != 1 || d <= 0 || d > VEC_MAX_DIM) {
        fprintf(stderr, "ann_bench: bad header in %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t esz = elem == 'b' ? 1 : 4, rec = 4 + (size_t)d * esz;
    uint32_t n = (uint32_t)(size / rec);
    if (maxrows && n > maxrows)
        n = maxrows;
    char *row = xmalloc(rec);
    void *out = xmalloc((size_t)n * d * 4);
    for (uint32_t i = 0; i < n; i++) {
        if (fread(row, rec, 1, f) != 1) {
            fprintf(stderr, "ann_bench: short read in %s\n", path);
            exit(1);
        }
        for (int32_t j = 0; j < d; j++) {
            size_t o = (size_t)i * d + j;
            if (elem == 'b')
                ((float *)out)[o] = (unsigned char)row[4 + j];
            else
                memcpy((char *)out + o * 4, row + 4 + j * 4, 4);
        }
    }
    xfree(row);
    fclose(f);
    *rows = n;
    *dim = (uint32_t)d;
    return out;
}

static void load_set(dataset *ds, const char *dir, const char *name, uint32_t maxq)
{
    char b[1024], q[1024], g[1024];
    char elem;
    if (strcmp(name, "fmnist") == 0) {
        snprintf(b, sizeof b, "%s/fashion-mnist-784-euclidean/fmnist_train_base.bvecs", dir);
        snprintf(q, sizeof q, "%s/fashion-mnist-784-euclidean/fmnist_test_query.bvecs", dir);
        snprintf(g, sizeof g, "%s/fashion-mnist-784-euclidean/fmnist_groundtruth_l2_k100.ivecs",
                 dir);
        elem = 'b';
    } else if (strcmp(name, "bigann10k") == 0) {
        snprintf(b, sizeof b, "%s/bigann10k/bigann10k_base.fvecs", dir);
        snprintf(q, sizeof q, "%s/bigann10k/bigann10k_query.fvecs", dir);
        snprintf(g, sizeof g, "%s/bigann10k/bigann10k_groundtruth.ivecs", dir);
        elem = 'f';
    } else {
        fprintf(stderr, "ann_bench: unknown set %s (bigann10k, fmnist)\n", name);
        exit(2);
    }
    uint32_t qd, gq;
    ds->name = name;
    ds->base = read_vecs(b, elem, 0, &ds->n, &ds->dim);
    ds->query = read_vecs(q, elem, maxq, &ds->nq, &qd);
    ds->gt = read_vecs(g, 'i', maxq, &gq, &ds->gtk);
    if (qd != ds->dim || gq != ds->nq || ds->gtk < K) {
        fprintf(stderr, "ann_bench: %s: files disagree\n", name);
        exit(1);
    }
}

static double l2_exact(const float *a, const float *b, uint32_t dim)
{
    double s = 0;
    for (uint32_t i = 0; i < dim; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s;
}

static double recall_at_k(const dataset *ds, const uint32_t *ids)
{
    size_t hits = 0;
    for (uint32_t q = 0; q < ds->nq; q++) {
        const float *qv = ds->query + (size_t)q * ds->dim;
        const int32_t *gt = ds->gt + (size_t)q * ds->gtk;
        double kth = l2_exact(qv, ds->base + (size_t)gt[K - 1] * ds->dim, ds->dim);
        for (int i = 0; i < K; i++) {
            uint32_t id = ids[(size_t)q * K + i];
            if (id >= ds->n)
                continue;
            int hit = 0;
            for (int j = 0; j < K && !hit; j++)
                hit = (uint32_t)gt[j] == id;
            if (hit || l2_exact(qv, ds->base + (size_t)id * ds->dim, ds->dim) <= kth)
                hits++;
        }
    }
    return (double)hits / ((double)ds->nq * K);
}

/* ---- our HNSW behind the engine interface ---- */

static void *ours_build(const float *base, size_t n, int dim, int m, int efc)
{
    vec_params p = {.kind = VEC_HNSW,
                    .metric = VEC_L2,
                    .dim = (uint32_t)dim,
                    .m = (uint32_t)m,
                    .ef_construction = (uint32_t)efc,
                    .initial_cap = (uint32_t)n};
    vec_index *ix;
    char err[256] = "";
    if (vec_create(&p, &ix, err, sizeof err)) {
        fprintf(stderr, "quiver: %s\n", err);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = vec_add(ix, (uint32_t)i, base + i * dim);
        if (rc) {
            fprintf(stderr, "quiver: add: %s\n", err_str(rc));
            vec_free(ix);
            return NULL;
        }
    }
    return ix;
}

static void ours_search(void *ix, const float *q, int k, int ef, uint32_t *out)
{
    vec_hit hits[K];
    size_t n = 0;
    vec_knn(ix, q, (uint32_t)k, (uint32_t)ef, NULL, hits, &n);
    for (int i = 0; i < k; i++)
        out[i] = (size_t)i < n ? hits[i].id : UINT32_MAX;
}

static void ours_free(void *ix)
{
    vec_free(ix);
}

static const engine engines[MAX_ENGINES] = {
    {"quiver", ours_build, ours_search, ours_free},
    {"hnswlib", ann_hnswlib_build, ann_hnswlib_search, ann_hnswlib_free},
    {"faiss", ann_faiss_build, ann_faiss_search, ann_faiss_free},
};

/* ---- the run ---- */

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (s && *s && n < max) {
        out[n++] = atoi(s);
        s = strchr(s, ',');
        s = s ? s + 1 : NULL;
    }
    return n;
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

/* Builds ix for e, measuring time and heap growth. */
static void *build_engine(const engine *e, const dataset *ds, int m, int efc, result *r)
{
    malloc_trim(0);
    size_t before = heap_used();
    double t0 = now();
    void *ix = e->build(ds->base, ds->n, (int)ds->dim, m, efc);
    if (!ix)
        return NULL;
    r->build_s = now() - t0;
    r->bytes_per_vec = (double)(heap_used() - before) / ds->n;
    r->own_bytes_per_vec = e->build == ours_build ? (double)vec_memory(ix) / ds->n : 0;
    return ix;
}

/* One timed pass of every query at ef (repeated until 0.3 s pass, for small sets); keeps
 * the best QPS seen and the recall. */
static void measure(const engine *e, void *ix, const dataset *ds, int ef, uint32_t *ids,
                    double *qps, double *recall)
{
    size_t done = 0;
    double t = now(), el;
    do {
        for (uint32_t q = 0; q < ds->nq; q++)
            e->search(ix, ds->query + (size_t)q * ds->dim, K, ef, ids + (size_t)q * K);
        done += ds->nq;
    } while ((el = now() - t) < 0.3);
    if (done / el > *qps)
        *qps = done / el;
    *recall = recall_at_k(ds, ids);
}

/* QPS at recall target, interpolated in log QPS between the ef around it; 0 if never. */
static double qps_at(const result *r, int nef, double target)
{
    for (int i = 0; i < nef; i++) {
        if (r->recall[i] < target)
            continue;
        if (i == 0 || r->recall[i - 1] >= r->recall[i])
            return r->qps[i];
        double f = (target - r->recall[i - 1]) / (r->recall[i] - r->recall[i - 1]);
        return exp(log(r->qps[i - 1]) + f * (log(r->qps[i]) - log(r->qps[i - 1])));
    }
    return 0;
}

static void plot(const char *out, const dataset *ds, const engine *const *es, const result *rs,
                 int ne, const int *efs, int nef)
{
    if (system("command -v gnuplot >/dev/null 2>&1") != 0)
        return;
    char path[1024], cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", out);
    if (system(cmd) != 0)
        return;
    snprintf(path, sizeof path, "%s/%s.gp", out, ds->name);
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "set terminal png size 900,600 noenhanced\nset output '%s/%s.png'\n", out, ds->name);
    fprintf(f, "set title '%s: recall@10 vs QPS, single thread'\nset logscale y\n", ds->name);
    fprintf(f, "set xlabel 'recall@10'\nset ylabel 'queries per second'\nset key top right\n");
    fprintf(f, "plot");
    for (int e = 0; e < ne; e++)
        fprintf(f, "%s '-' with linespoints title '%s'", e ? "," : "", es[e]->name);
    fprintf(f, "\n");
    for (int e = 0; e < ne; e++) {
        for (int i = 0; i < nef; i++)
            fprintf(f, "%.4f %.1f # ef %d\n", rs[e].recall[i], rs[e].qps[i], efs[i]);
        fprintf(f, "e\n");
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "gnuplot '%s' && echo 'plot: %s/%s.png'", path, out, ds->name);
    if (system(cmd) != 0)
        fprintf(stderr, "ann_bench: gnuplot failed\n");
}

static void bench_set(const char *dir, const char *name, const char *engines_csv, int m, int efc,
                      const int *efs, int nef, const char *out)
{
    dataset ds;
    uint32_t maxq = (uint32_t)atoi(env_or("ANN_QUERIES", strcmp(name, "fmnist") ? "0" : "1000"));
    load_set(&ds, dir, name, maxq);
    printf("\n== %s: %u x %u, %u queries, M %d, EF_CONSTRUCTION %d, k %d, kernels %s\n", name, ds.n,
           ds.dim, ds.nq, m, efc, K, vec_kernels());
    const engine *es[MAX_ENGINES];
    result rs[MAX_ENGINES];
    int ne = 0;
    void *ixs[MAX_ENGINES];
    for (int i = 0; i < MAX_ENGINES; i++) {
        if (!strstr(engines_csv, engines[i].name))
            continue;
        memset(&rs[ne], 0, sizeof rs[ne]);
        if ((ixs[ne] = build_engine(&engines[i], &ds, m, efc, &rs[ne])) != NULL)
            es[ne++] = &engines[i];
    }
    /* engines take turns at each ef, and the best of ANN_REPEAT rounds counts: the
     * machine's other load then weighs on all of them alike */
    int reps = atoi(env_or("ANN_REPEAT", "3"));
    uint32_t *ids = xmalloc((size_t)ds.nq * K * sizeof(uint32_t));
    for (int rep = 0; rep < (reps > 0 ? reps : 1); rep++)
        for (int i = 0; i < nef; i++)
            for (int e = 0; e < ne; e++)
                measure(es[e], ixs[e], &ds, efs[i], ids, &rs[e].qps[i], &rs[e].recall[i]);
    xfree(ids);
    for (int e = 0; e < ne; e++)
        es[e]->destroy(ixs[e]);
    printf("%-8s %9s %11s", "engine", "build s", "bytes/vec");
    for (int i = 0; i < nef; i++)
        printf("  ef=%-4d rec/QPS  ", efs[i]);
    printf("\n");
    for (int e = 0; e < ne; e++) {
        printf("%-8s %9.2f %11.0f", es[e]->name, rs[e].build_s, rs[e].bytes_per_vec);
        for (int i = 0; i < nef; i++)
            printf("  %.4f/%-9.0f", rs[e].recall[i], rs[e].qps[i]);
        printf("\n");
    }
    for (int e = 0; e < ne; e++)
        if (rs[e].own_bytes_per_vec)
            printf("(%s: vec_memory() %.0f bytes/vector)\n", es[e]->name, rs[e].own_bytes_per_vec);
    const double targets[2] = {0.95, 0.99};
    for (int t = 0; t < 2; t++) {
        printf("QPS at recall@10 %.2f:", targets[t]);
        double base = 0;
        for (int e = 0; e < ne; e++)
            if (strcmp(es[e]->name, "hnswlib") == 0)
                base = qps_at(&rs[e], nef, targets[t]);
        for (int e = 0; e < ne; e++) {
            double v = qps_at(&rs[e], nef, targets[t]);
            if (!v)
                printf("  %s n/a", es[e]->name);
            else if (base)
                printf("  %s %.0f (%.2fx hnswlib)", es[e]->name, v, v / base);
            else
                printf("  %s %.0f", es[e]->name, v);
        }
        printf("\n");
    }
    fflush(stdout);
    plot(out, &ds, es, rs, ne, efs, nef);
    xfree(ds.base);
    xfree(ds.query);
    xfree(ds.gt);
}

int main(void)
{
    const char *dir = env_or("ANN_DATA", "../shared/data/vectors");
    const char *sets = env_or("ANN_SETS", "bigann10k,fmnist");
    const char *eng = env_or("ANN_ENGINES", "quiver,hnswlib,faiss");
    const char *out = env_or("ANN_OUT", "build/bench-ann");
    int m = atoi(env_or("ANN_M", "16")), efc = atoi(env_or("ANN_EFC", "200"));
    int efs[MAX_EF];
    int nef = parse_list(env_or("ANN_EF", "10,16,24,32,48,64,96,128,256"), efs, MAX_EF);
    if (m < 2 || efc < 1 || nef < 1) {
        fprintf(stderr, "ann_bench: ANN_M >= 2, ANN_EFC >= 1 and ANN_EF needed\n");
        return 2;
    }
    char *list = xstrdup(sets);
    for (char *save = NULL, *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save))
        bench_set(dir, s, eng, m, efc, efs, nef, out);
    xfree(list);
    return 0;
}
