/* kernels.c: a micro-benchmark of the distance kernels and the FLAT scan. For each kernel
 * level this CPU runs (scalar, avx2, avx512) and dims 128 and 784 it prints ns per distance
 * and GFLOP/s (L2: 3 flops an element, dot: 2) with the vectors in cache, for one pair at a
 * time and for the four-at-a-time form the scans use; then the queries per second of an
 * exact FLAT kNN (k 10) over random vectors, memory-bound, with the kernels in use.
 * Single-threaded, each figure the best of five runs; about ten seconds. Build and run:
 *   make build/release/bench/kernels && build/release/bench/kernels
 * QUIVER_SIMD=scalar|avx2 caps the FLAT part as it caps the server. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/alloc.h"
#include "index/index.h"
#include "index/index_int.h"

#define NVEC 32 /* vectors cycled through: 100 KB at dim 784, in L2 */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *random_vectors(size_t n, uint32_t dim)
{
    float *v = xmalloc(n * dim * sizeof *v);
    for (size_t i = 0; i < n * dim; i++)
        v[i] = (float)rand() / RAND_MAX;
    return v;
}

static volatile float sink;

/* The best of five 50 ms runs: the machine may be shared, the minimum is the kernel's. */
#define RUNS 5
#define RUN_S 0.05

/* ns per distance of one pair at a time. */
static double time_pair(float (*fn)(const float *, const float *, uint32_t), const float *q,
                        const float *v, uint32_t dim)
{
    double best = 1e30;
    float s = 0;
    for (int run = 0; run < RUNS; run++) {
        long reps = 0;
        double t0 = now(), t;
        do {
            for (int r = 0; r < 1000; r++)
                s += fn(q, v + (size_t)(r % NVEC) * dim, dim);
            reps += 1000;
        } while ((t = now() - t0) < RUN_S);
        if (t * 1e9 / reps < best)
            best = t * 1e9 / reps;
    }
    sink = s;
    return best;
}

/* ns per distance of the four-at-a-time form. */
static double time_x4(void (*fn)(const float *, const float *const[4], uint32_t, float[4]),
                      const float *q, const float *v, uint32_t dim)
{
    double best = 1e30;
    float s = 0, out[4];
    for (int run = 0; run < RUNS; run++) {
        long reps = 0;
        double t0 = now(), t;
        do {
            for (int r = 0; r < 1000; r++) {
                const float *b = v + (size_t)((r * 4) % NVEC) * dim;
                const float *p[4] = {b, b + dim, b + 2 * dim, b + 3 * dim};
                fn(q, p, dim, out);
                s += out[0] + out[3];
            }
            reps += 4000;
        } while ((t = now() - t0) < RUN_S);
        if (t * 1e9 / reps < best)
            best = t * 1e9 / reps;
    }
    sink = s;
    return best;
}

static void kernels_table(void)
{
    printf("%-8s %5s  %-8s %10s %9s\n", "kernels", "dim", "form", "ns/dist", "GFLOP/s");
    for (int level = VEC_KERN_SCALAR; level <= VEC_KERN_AVX512; level++) {
        const vec_kern *k = vec__kern_level(level);
        if (!k)
            continue;
        static const uint32_t dims[] = {128, 784};
        for (int d = 0; d < 2; d++) {
            uint32_t dim = dims[d];
            float *v = random_vectors(NVEC + 1, dim), *q = v + (size_t)NVEC * dim;
            double ns[4] = {time_pair(k->l2sq, q, v, dim), time_x4(k->l2sq_x4, q, v, dim),
                            time_pair(k->dot, q, v, dim), time_x4(k->dot_x4, q, v, dim)};
            static const char *form[4] = {"l2sq", "l2sq_x4", "dot", "dot_x4"};
            for (int f = 0; f < 4; f++)
                printf("%-8s %5u  %-8s %10.1f %9.1f\n", k->name, dim, form[f], ns[f],
                       (f < 2 ? 3.0 : 2.0) * dim / ns[f]);
            xfree(v);
        }
    }
}

/* One line of the FLAT table: queries for 1 s, with filter f (NULL: none) passing m. */
static void flat_line(vec_index *ix, const float *q, uint32_t dim, const vec_filter *f, size_t m,
                      const char *what)
{
    vec_hit hits[10];
    size_t got;
    double best = 1e30; /* seconds a query, the best of five runs */
    for (int run = 0; run < RUNS; run++) {
        int queries = 0;
        double t0 = now(), t;
        do {
            vec_knn(ix, q + (size_t)(queries % 16) * dim, 10, 0, f, hits, &got);
            queries++;
        } while ((t = now() - t0) < 4 * RUN_S);
        if (t / queries < best)
            best = t / queries;
    }
    printf("FLAT %-6s %-9s n %6zu dim %4u: %9.1f queries/s, %5.1f GB/s of vectors, %6.2f "
           "ns/dist\n",
           vec_kernels(), what, m, dim, 1 / best, (double)m * dim * 4 / best / 1e9,
           best * 1e9 / (double)m);
}

static void flat_scan(uint32_t n, uint32_t dim)
{
    vec_params p = {.kind = VEC_FLAT, .metric = VEC_L2, .dim = dim};
    vec_index *ix;
    char err[128];
    if (vec_create(&p, &ix, err, sizeof err)) {
        fprintf(stderr, "vec_create: %s\n", err);
        exit(1);
    }
    float *v = random_vectors(n, dim), *q = random_vectors(16, dim);
    for (uint32_t i = 0; i < n; i++)
        vec_add(ix, i, v + (size_t)i * dim);
    xfree(v);
    flat_line(ix, q, dim, NULL, n, "all");
    if (n >= 10000) { /* an id list of a random tenth: scattered reads */
        uint32_t *ids = xmalloc(n / 10 * sizeof *ids);
        size_t m = 0;
        for (uint32_t i = 0; i < n && m < n / 10; i++)
            if ((uint32_t)rand() % 10 == 0)
                ids[m++] = i;
        vec_filter f = {.ids = ids, .nids = m};
        flat_line(ix, q, dim, &f, m, "ids 10%");
        xfree(ids);
    }
    xfree(q);
    vec_free(ix);
}

int main(void)
{
    kernels_table();
    flat_scan(200, 128);
    flat_scan(100000, 128);
    flat_scan(20000, 784);
    return 0;
}
