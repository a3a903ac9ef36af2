/* test_gpu_mirror.c: unit tests for the GPU side of index/ that need no GPU: the probe's
 * function table (index/gpu_probe.c) and the FLAT index's device mirror (index/gpu_mirror.c),
 * both over the CPU test double of the CUDA library (tests/gpu_fake/fake_gpu.c, loaded
 * through QUIVER_GPU_LIB as the server loads the real one). Checked: the fake itself is
 * exact (against FLAT and a brute-force kNN graph) and injects the faults it is asked to;
 * a mirror answers as FLAT's vec_knn does (L2, IP, COSINE; k 1, 10, 100, 1024; batches)
 * before and after adds, overwrites and deletes between searches; a device error marks it
 * failed with the reason, frees its device memory, and FLAT still answers; bad arguments
 * are refused without harm; nothing is attached while the GPU is off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "index/index.h"
#include "index/index_int.h"

#define OK(expr) assert_int_equal((expr), 0)
#define DIM 24

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static float rndf(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)((rng >> 20) & 0xffffff) / (1 << 23) - 1.0);
}

static void rnd_vec(float *v, uint32_t dim)
{
    for (uint32_t i = 0; i < dim; i++)
        v[i] = rndf();
}

static int setup(void **state)
{
    (void)state;
    setenv("QUIVER_GPU_LIB", FAKE_GPU_LIB, 1);
    unsetenv("QUIVER_FAKE_GPU_FAIL");
    unsetenv("QUIVER_FAKE_GPU_MEM");
    char err[300];
    OK(index_gpu_probe(INDEX_GPU_AUTO, err, sizeof err));
    return vec__gpu() ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    unsetenv("QUIVER_FAKE_GPU_FAIL");
    unsetenv("QUIVER_FAKE_GPU_MEM");
    return 0;
}

/* A FLAT index of n random vectors under ids 0..n-1. */
static vec_index *flat_of(int metric, uint32_t n)
{
    vec_params p = {.kind = VEC_FLAT, .metric = metric, .dim = DIM};
    vec_index *ix;
    char err[200];
    OK(vec_create(&p, &ix, err, sizeof err));
    float v[DIM];
    for (uint32_t id = 0; id < n; id++) {
        rnd_vec(v, DIM);
        OK(vec_add(ix, id, v));
    }
    return ix;
}

/* Two answers agree: same length, each distance within float rounding, and where the ids
 * differ the distances tie. */
static void assert_same(const vec_hit *got, size_t ngot, const vec_hit *want, size_t nwant)
{
    assert_int_equal(ngot, nwant);
    for (size_t i = 0; i < nwant; i++) {
        float tol = 1e-4f * fabsf(want[i].dist) + 1e-5f;
        if (fabsf(got[i].dist - want[i].dist) > tol)
            fail_msg("hit %zu: distance %.9g, FLAT says %.9g", i, got[i].dist, want[i].dist);
        if (got[i].id != want[i].id && (i + 1 >= nwant || fabsf(want[i + 1].dist - want[i].dist) > tol) &&
            (i == 0 || fabsf(want[i - 1].dist - want[i].dist) > tol))
            fail_msg("hit %zu: id %u, FLAT says %u (no tie)", i, got[i].id, want[i].id);
    }
}

/* nq random queries through the mirror, each checked against vec_knn. */
static void check_against_flat(vec_index *ix, uint32_t nq, uint32_t k)
{
    float *q = xmalloc((size_t)nq * DIM * sizeof *q);
    vec_hit *out = xmalloc((size_t)nq * k * sizeof *out), *want = xmalloc(k * sizeof *want);
    uint32_t *counts = xmalloc(nq * sizeof *counts);
    rnd_vec(q, nq * DIM);
    double kernel, select;
    char err[300] = "";
    int rc = vec_gpu_knn(ix, q, nq, k, out, counts, &kernel, &select, err, sizeof err);
    if (rc)
        fail_msg("vec_gpu_knn: %s (%s)", err_str(rc), err);
    assert_true(kernel >= 0 && select >= 0);
    for (uint32_t i = 0; i < nq; i++) {
        size_t n;
        OK(vec_knn(ix, q + (size_t)i * DIM, k, 0, NULL, want, &n));
        assert_same(out + (size_t)i * k, counts[i], want, n);
    }
    xfree(q), xfree(out), xfree(want), xfree(counts);
}

/* ---- the fake library ---- */

static void test_probe_table(void **state)
{
    (void)state;
    index_gpu_info g;
    index_gpu_get(&g);
    assert_true(g.enabled);
    assert_string_equal(g.device, "fake");
    assert_string_equal(g.library, FAKE_GPU_LIB);
    const vec__gpu_api *api = vec__gpu();
#define X(name) assert_non_null(api->name);
    VEC__GPU_FUNCS(X)
#undef X
}

static void test_fake_is_exact(void **state)
{
    (void)state;
    const vec__gpu_api *api = vec__gpu();
    static const int metrics[] = {VEC_L2, VEC_IP, VEC_COSINE};
    for (int m = 0; m < 3; m++) {
        vec_index *ix = flat_of(metrics[m], 700);
        gpu_index *g;
        char detail[200];
        OK(api->index_create(0, DIM, metrics[m], &g, detail, sizeof detail));
        float *all = xmalloc(700 * DIM * sizeof *all);
        uint32_t ids[700];
        for (uint32_t id = 0; id < 700; id++) {
            ids[id] = id;
            OK(vec__flat_get(ix, id, all + (size_t)id * DIM));
        }
        OK(api->index_add(g, ids, all, 700, DIM));
        assert_int_equal(api->index_count(g), 700);
        float q[DIM];
        int64_t out[50];
        float dists[50];
        vec_hit want[50], got[50];
        for (int t = 0; t < 20; t++) {
            rnd_vec(q, DIM);
            OK(api->index_search(g, q, 1, DIM, 50, 0, out, dists));
            size_t n;
            OK(vec_knn(ix, q, 50, 0, NULL, want, &n));
            for (int i = 0; i < 50; i++)
                got[i] = (vec_hit){(uint32_t)out[i], dists[i]};
            assert_same(got, 50, want, n);
        }
        /* past the vectors held: id -1, +inf */
        OK(api->index_delete(g, ids, 695));
        OK(api->index_search(g, q, 1, DIM, 10, 0, out, dists));
        assert_true(out[4] >= 695 && out[5] == -1 && isinf(dists[5]));
        api->index_free(g);
        xfree(all);
        vec_free(ix);
    }
}

static void test_fake_knn_graph(void **state)
{
    (void)state;
    void *lib = dlopen(FAKE_GPU_LIB, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(lib);
    int (*graph)(int, const float *, uint64_t, uint32_t, int, uint32_t, uint32_t *, char *,
                 size_t);
    *(void **)&graph = dlsym(lib, "gpu_knn_graph");
    assert_non_null(graph);
    enum { N = 300, K = 8 };
    float *v = xmalloc(N * DIM * sizeof *v);
    rnd_vec(v, N * DIM);
    memcpy(v + 7 * DIM, v + 3 * DIM, DIM * sizeof *v); /* a duplicate: distance 0, a tie */
    uint32_t *out = xmalloc(N * K * sizeof *out);
    char detail[200];
    OK(graph(0, v, N, DIM, GPU_METRIC_L2, K, out, detail, sizeof detail));
    for (uint32_t i = 0; i < N; i++) {
        /* brute force: the K nearest others by (distance, index) */
        float best[K];
        uint32_t bid[K];
        for (int j = 0; j < K; j++)
            best[j] = INFINITY, bid[j] = UINT32_MAX;
        for (uint32_t o = 0; o < N; o++) {
            if (o == i)
                continue;
            double s = 0;
            for (int d = 0; d < DIM; d++)
                s += ((double)v[i * DIM + d] - v[o * DIM + d]) * ((double)v[i * DIM + d] - v[o * DIM + d]);
            float dist = (float)s;
            int j = K;
            while (j > 0 && (dist < best[j - 1] || (dist == best[j - 1] && o < bid[j - 1])))
                j--;
            if (j == K)
                continue;
            memmove(best + j + 1, best + j, (K - j - 1) * sizeof *best);
            memmove(bid + j + 1, bid + j, (K - j - 1) * sizeof *bid);
            best[j] = dist, bid[j] = o;
        }
        for (int j = 0; j < K; j++)
            assert_int_equal(out[i * K + j], bid[j]);
    }
    assert_int_equal(out[3 * K], 7);
    assert_int_equal(out[7 * K], 3);
    /* fewer others than k: UINT32_MAX after them */
    OK(graph(0, v, 3, DIM, GPU_METRIC_IP, 4, out, detail, sizeof detail));
    assert_int_equal(out[2], UINT32_MAX);
    assert_int_equal(out[3], UINT32_MAX);
    assert_int_not_equal(out[1], UINT32_MAX);
    xfree(v);
    xfree(out);
    dlclose(lib);
}

static void test_fake_faults(void **state)
{
    (void)state;
    const vec__gpu_api *api = vec__gpu();
    gpu_index *g;
    char detail[200];
    OK(api->index_create(0, DIM, VEC_L2, &g, detail, sizeof detail));
    float v[2 * DIM], q[DIM];
    rnd_vec(v, 2 * DIM);
    rnd_vec(q, DIM);
    uint32_t ids[2] = {1, 2};
    int64_t out[2];
    float d[2];
    setenv("QUIVER_FAKE_GPU_FAIL", "search:cuda@2,add:oom@2", 1);
    OK(api->index_add(g, ids, v, 1, DIM));
    OK(api->index_search(g, q, 1, DIM, 2, 0, out, d));
    assert_int_equal(api->index_search(g, q, 1, DIM, 2, 0, out, d), GPU_ERR_CUDA);
    assert_non_null(strstr(api->index_error(g), "CUDA error"));
    assert_int_equal(api->index_add(g, ids + 1, v + DIM, 1, DIM), GPU_ERR_OOM);
    assert_int_equal(api->index_count(g), 1); /* nothing added */
    OK(api->index_search(g, q, 1, DIM, 2, 0, out, d));
    assert_int_equal(out[1], -1);
    setenv("QUIVER_FAKE_GPU_FAIL", "oom@1", 1); /* a new rule: the count starts again */
    assert_int_equal(api->index_search(g, q, 1, DIM, 2, 0, out, d), GPU_ERR_OOM);
    unsetenv("QUIVER_FAKE_GPU_FAIL");
    setenv("QUIVER_FAKE_GPU_MEM", "1000", 1);
    assert_int_equal(api->index_reserve(g, 100), GPU_ERR_OOM);
    unsetenv("QUIVER_FAKE_GPU_MEM");
    OK(api->index_reserve(g, 100));
    api->index_free(g);
}

/* ---- the mirror ---- */

static void test_mirror_matches_flat(void **state)
{
    (void)state;
    static const int metrics[] = {VEC_L2, VEC_IP, VEC_COSINE};
    for (int m = 0; m < 3; m++) {
        vec_index *ix = flat_of(metrics[m], 2000);
        OK(vec_gpu_attach(ix));
        OK(vec_gpu_attach(ix)); /* a second attach keeps the first */
        check_against_flat(ix, 16, 10);
        vec_gpu_stats st;
        vec_gpu_get_stats(ix, &st);
        assert_int_equal(st.state, VEC_GPU_OK);
        assert_true(st.device_bytes >= 2000 * DIM * sizeof(float));
        float v[DIM];
        for (int round = 0; round < 3; round++) {
            for (uint32_t i = 0; i < 150; i++) { /* overwrites */
                rnd_vec(v, DIM);
                OK(vec_add(ix, (uint32_t)((i * 7919 + round) % 2000), v));
            }
            for (uint32_t i = 0; i < 200; i++) /* deletes (some twice: NOTFOUND) */
                vec_delete(ix, (i * 104729 + round * 13) % 2000);
            for (uint32_t i = 0; i < 100; i++) { /* new ids, and deleted ones back */
                rnd_vec(v, DIM);
                OK(vec_add(ix, 2000 + round * 100 + i, v));
                OK(vec_add(ix, (i * 104729 + round * 13) % 2000, v));
            }
            check_against_flat(ix, 7, 1);
            check_against_flat(ix, 33, 100);
        }
        check_against_flat(ix, 2, 1024);
        vec_free(ix);
    }
}

static void test_mirror_small_and_empty(void **state)
{
    (void)state;
    vec_index *ix = flat_of(VEC_L2, 0);
    OK(vec_gpu_attach(ix));
    check_against_flat(ix, 3, 5); /* nothing held: no hits */
    float v[DIM];
    rnd_vec(v, DIM);
    OK(vec_add(ix, 5, v));
    check_against_flat(ix, 3, 5); /* one hit */
    OK(vec_delete(ix, 5));
    check_against_flat(ix, 3, 5);
    vec_free(ix);
}

/* A search's device error marks the mirror failed; FLAT goes on answering. */
static void failure_case(const char *rule, const char *reason, int searched_before)
{
    vec_index *ix = flat_of(VEC_COSINE, 500);
    OK(vec_gpu_attach(ix));
    if (searched_before)
        check_against_flat(ix, 4, 10);
    setenv(strstr(rule, "mem=") ? "QUIVER_FAKE_GPU_MEM" : "QUIVER_FAKE_GPU_FAIL",
           strstr(rule, "mem=") ? rule + 4 : rule, 1);
    float q[4 * DIM];
    rnd_vec(q, 4 * DIM);
    vec_hit out[40];
    uint32_t counts[4];
    double kernel, select;
    char err[300] = "";
    assert_int_equal(vec_gpu_knn(ix, q, 4, 10, out, counts, &kernel, &select, err, sizeof err),
                     ERR_GPU);
    assert_non_null(strstr(err, reason));
    vec_gpu_stats st;
    vec_gpu_get_stats(ix, &st);
    assert_int_equal(st.state, VEC_GPU_FAILED);
    assert_int_equal(st.device_bytes, 0);
    assert_non_null(strstr(st.reason, reason));
    teardown(NULL);
    /* failed for good, even once the device would work */
    err[0] = '\0';
    assert_int_equal(vec_gpu_knn(ix, q, 4, 10, out, counts, &kernel, &select, err, sizeof err),
                     ERR_GPU);
    assert_non_null(strstr(err, reason));
    OK(vec_add(ix, 9999, q)); /* writes go on, unnoted */
    size_t n;
    OK(vec_knn(ix, q, 10, 0, NULL, out, &n));
    assert_int_equal(n, 10);
    assert_int_equal(out[0].id, 9999);
    vec_free(ix);
}

static void test_mirror_failures(void **state)
{
    (void)state;
    failure_case("search:cuda@1", "gpu_index_search: CUDA error", 1);
    failure_case("search:oom@1", "gpu_index_search: out of device memory", 0);
    failure_case("add:cuda@1", "gpu_index_add: CUDA error", 0);
    failure_case("mem=4096", "gpu_index_reserve: out of device memory", 0);
}

static void test_mirror_bad_arguments(void **state)
{
    (void)state;
    vec_index *ix = flat_of(VEC_COSINE, 50);
    float q[2 * DIM];
    rnd_vec(q, 2 * DIM);
    vec_hit out[2 * 1025];
    uint32_t counts[2];
    double kernel, select;
    char err[300];
    assert_int_equal(vec_gpu_knn(ix, q, 1, 5, out, counts, &kernel, &select, err, sizeof err),
                     ERR_NOTFOUND); /* no mirror */
    OK(vec_gpu_attach(ix));
    assert_int_equal(vec_gpu_knn(ix, q, 1, 0, out, counts, &kernel, &select, err, sizeof err),
                     ERR_INVAL);
    assert_int_equal(vec_gpu_knn(ix, q, 1, 1025, out, counts, &kernel, &select, err,
                                 sizeof err), ERR_INVAL);
    assert_int_equal(vec_gpu_knn(ix, q, 0, 5, out, counts, &kernel, &select, err, sizeof err),
                     ERR_INVAL);
    memset(q + DIM, 0, DIM * sizeof *q); /* a zero COSINE query */
    assert_int_equal(vec_gpu_knn(ix, q, 2, 5, out, counts, &kernel, &select, err, sizeof err),
                     ERR_INVAL);
    q[DIM] = NAN;
    assert_int_equal(vec_gpu_knn(ix, q, 2, 5, out, counts, &kernel, &select, err, sizeof err),
                     ERR_INVAL);
    vec_gpu_stats st;
    vec_gpu_get_stats(ix, &st);
    assert_int_equal(st.state, VEC_GPU_OK); /* none of that hurt the mirror */
    check_against_flat(ix, 1, 5);
    vec_free(ix);
    vec_params hp = {.kind = VEC_HNSW, .metric = VEC_L2, .dim = DIM};
    OK(vec_create(&hp, &ix, err, sizeof err));
    assert_int_equal(vec_gpu_attach(ix), ERR_INVAL); /* FLAT only */
    vec_free(ix);
}

static void test_gpu_off(void **state)
{
    (void)state;
    char err[300];
    OK(index_gpu_probe(INDEX_GPU_NO, err, sizeof err));
    assert_null(vec__gpu());
    vec_index *ix = flat_of(VEC_L2, 10);
    assert_int_equal(vec_gpu_attach(ix), ERR_GPU);
    vec_free(ix);
    setenv("QUIVER_FAKE_GPU_FAIL", "nodevice", 1);
    OK(index_gpu_probe(INDEX_GPU_AUTO, err, sizeof err));
    assert_null(vec__gpu());
    assert_int_equal(index_gpu_probe(INDEX_GPU_YES, err, sizeof err), ERR_GPU);
    assert_non_null(strstr(err, "fake: no device"));
    unsetenv("QUIVER_FAKE_GPU_FAIL");
    OK(index_gpu_probe(INDEX_GPU_AUTO, err, sizeof err));
    assert_non_null(vec__gpu());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_table),
        cmocka_unit_test(test_fake_is_exact),
        cmocka_unit_test(test_fake_knn_graph),
        cmocka_unit_test_teardown(test_fake_faults, teardown),
        cmocka_unit_test(test_mirror_matches_flat),
        cmocka_unit_test(test_mirror_small_and_empty),
        cmocka_unit_test_teardown(test_mirror_failures, teardown),
        cmocka_unit_test(test_mirror_bad_arguments),
        cmocka_unit_test_teardown(test_gpu_off, teardown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
