/* test_hnsw_bulk.c: unit tests for HNSW bulk builds from kNN lists (vec_knn_graph,
 * vec_hnsw_build; index/knn_graph.c, index/hnsw_bulk.c): the exact kNN lists against brute
 * force (ties by smaller row, padding, COSINE, threads); a graph built from them reaches the
 * recall@10 of an incremental build at the same M and ef (0.01 slack) on a 10,000-vector
 * slice of fashion-mnist-784 and on random data, L2 and COSINE; it stays an ordinary index
 * (deletes, adds, snapshot round trip); tight clusters whose kNN lists never leave them are
 * still reachable; the upper levels' lists come from the caller's function when given (its
 * error returned with the index left empty, bad rows from it left out); bad input is
 * refused with nothing changed. No timing asserts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/skip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"
#include "index/index.h"

#define K 10
#define M 16
#define EFC 100
#define KNN 64 /* kNN list length given to the bulk build */

typedef struct set {
    uint32_t n, dim, nq;
    float *base, *query;
} set;

static set fm, rnd;

static const char *data_dir(void)
{
    const char *d = getenv("QUIVER_SHARED_DATA");
    return d && *d ? d : "../shared/data";
}

/* The first `want` records of a texmex .bvecs file as floats; NULL if unreadable. */
static float *read_bvecs(const char *rel, uint32_t want, uint32_t *dim)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/vectors/%s", data_dir(), rel);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "test_hnsw_bulk: cannot open %s (QUIVER_SHARED_DATA)\n", path);
        return NULL;
    }
    int32_t d = 0;
    float *out = NULL;
    unsigned char *rec = NULL;
    if (fread(&d, 4, 1, f) == 1 && d > 0 && d <= 4096) {
        out = xmalloc((size_t)want * d * sizeof(float));
        rec = xmalloc(d);
        rewind(f);
        for (uint32_t i = 0; i < want && out; i++) {
            int32_t h;
            if (fread(&h, 4, 1, f) != 1 || h != d || fread(rec, 1, d, f) != (size_t)d) {
                xfree(out);
                out = NULL;
                break;
            }
            for (int32_t j = 0; j < d; j++)
                out[(size_t)i * d + j] = rec[j];
        }
    }
    xfree(rec);
    fclose(f);
    *dim = (uint32_t)d;
    return out;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * 0x1p-53) * 2.0f - 1.0f;
}

static int setup(void **state)
{
    (void)state;
    uint32_t qd;
    fm.n = 10000;
    fm.nq = 200;
    fm.base = read_bvecs("fashion-mnist-784-euclidean/fmnist_train_base.bvecs", fm.n, &fm.dim);
    fm.query = read_bvecs("fashion-mnist-784-euclidean/fmnist_test_query.bvecs", fm.nq, &qd);
    if (!fm.base || !fm.query || qd != fm.dim)
        return -1;
    rnd.n = 5000;
    rnd.nq = 200;
    rnd.dim = 24;
    rnd.base = xmalloc((size_t)rnd.n * rnd.dim * sizeof(float));
    rnd.query = xmalloc((size_t)rnd.nq * rnd.dim * sizeof(float));
    for (size_t i = 0; i < (size_t)rnd.n * rnd.dim; i++)
        rnd.base[i] = frand();
    for (size_t i = 0; i < (size_t)rnd.nq * rnd.dim; i++)
        rnd.query[i] = frand();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    xfree(fm.base);
    xfree(fm.query);
    xfree(rnd.base);
    xfree(rnd.query);
    return 0;
}

static const float *row(const set *s, uint32_t i)
{
    return s->base + (size_t)i * s->dim;
}

static vec_index *make(int kind, int metric, uint32_t dim)
{
    vec_params p = {.kind = kind, .metric = metric, .dim = dim, .m = M, .ef_construction = EFC};
    vec_index *ix = NULL;
    char err[128];
    assert_int_equal(vec_create(&p, &ix, err, sizeof err), 0);
    return ix;
}

/* An HNSW index of rows [0, n) under ids id0 + row, built from exact kNN lists. */
static vec_index *bulk_built(const set *s, uint32_t n, int metric, uint32_t knn_k, uint32_t id0)
{
    uint32_t *knn = xmalloc((size_t)n * knn_k * sizeof(uint32_t));
    uint32_t *ids = xmalloc((size_t)n * sizeof(uint32_t));
    assert_int_equal(vec_knn_graph(metric, s->base, n, s->dim, knn_k, 0, knn), 0);
    for (uint32_t i = 0; i < n; i++)
        ids[i] = id0 + i;
    vec_index *ix = make(VEC_HNSW, metric, s->dim);
    char err[128] = "";
    int rc = vec_hnsw_build(ix, ids, s->base, n, knn, knn_k, NULL, NULL, 0, err, sizeof err);
    if (rc)
        fail_msg("vec_hnsw_build: %d %s", rc, err);
    assert_int_equal(vec_count(ix), n);
    xfree(knn);
    xfree(ids);
    return ix;
}

static vec_index *incremental(const set *s, uint32_t n, int metric)
{
    vec_index *ix = make(VEC_HNSW, metric, s->dim);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(vec_add(ix, i, row(s, i)), 0);
    return ix;
}

/* recall@10 of ix at ef on the set's queries against the exact index ex; a hit at the
 * 10th exact distance counts (ties). */
static double recall(vec_index *ix, vec_index *ex, const set *s, uint32_t ef)
{
    size_t hits = 0;
    for (uint32_t q = 0; q < s->nq; q++) {
        const float *qv = s->query + (size_t)q * s->dim;
        vec_hit got[K], want[K];
        size_t ng = 0, nw = 0;
        assert_int_equal(vec_knn(ix, qv, K, ef, NULL, got, &ng), 0);
        assert_int_equal(vec_knn(ex, qv, K, 0, NULL, want, &nw), 0);
        assert_int_equal(ng, K);
        assert_int_equal(nw, K);
        for (size_t i = 0; i < ng; i++) {
            int hit = got[i].dist <= want[K - 1].dist * (1 + 1e-6f) + 1e-7f;
            for (size_t j = 0; j < nw && !hit; j++)
                hit = got[i].id == want[j].id;
            hits += hit;
        }
    }
    return (double)hits / ((double)s->nq * K);
}

static vec_index *exact(const set *s, uint32_t n, int metric, const char *live)
{
    vec_index *ix = make(VEC_FLAT, metric, s->dim);
    for (uint32_t i = 0; i < n; i++)
        if (!live || live[i])
            assert_int_equal(vec_add(ix, i, row(s, i)), 0);
    return ix;
}

/* ---- exact kNN lists ---- */

static double dist_of(int metric, const float *a, const float *b, uint32_t dim)
{
    double s = 0, na = 0, nb = 0;
    for (uint32_t i = 0; i < dim; i++) {
        s += metric == VEC_L2 ? ((double)a[i] - b[i]) * ((double)a[i] - b[i]) : (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    if (metric == VEC_L2)
        return s;
    return metric == VEC_IP ? 1 - s : 1 - s / sqrt(na * nb);
}

static void test_knn_graph_exact(void **state)
{
    (void)state;
    /* 300 rows of 8 dims on a coarse grid: many exact ties, broken by smaller row */
    uint32_t n = 300, dim = 8, k = 12;
    float *v = xmalloc((size_t)n * dim * sizeof(float));
    for (size_t i = 0; i < (size_t)n * dim; i++)
        v[i] = (float)(int)(frand() * 2.5f) + (i % dim == 0 ? 3.0f : 0.0f);
    uint32_t *out = xmalloc((size_t)n * k * sizeof(uint32_t));
    int metrics[3] = {VEC_L2, VEC_IP, VEC_COSINE};
    for (int mi = 0; mi < 3; mi++) {
        for (uint32_t threads = 1; threads <= 3; threads += 2) {
            assert_int_equal(vec_knn_graph(metrics[mi], v, n, dim, k, threads, out), 0);
            for (uint32_t i = 0; i < n; i++) {
                const uint32_t *o = out + (size_t)i * k;
                /* the k-th distance bounds every row left out; order by (distance, row) */
                for (uint32_t j = 0; j < k; j++) {
                    assert_true(o[j] < n && o[j] != i);
                    double d = dist_of(metrics[mi], v + (size_t)i * dim, v + (size_t)o[j] * dim, dim);
                    if (j) {
                        double dp = dist_of(metrics[mi], v + (size_t)i * dim,
                                            v + (size_t)o[j - 1] * dim, dim);
                        assert_true(dp <= d + 1e-5);
                        if (metrics[mi] != VEC_COSINE && fabs(dp - d) < 1e-9) /* exact */
                            assert_true(o[j - 1] < o[j]);
                    }
                }
                double dk = dist_of(metrics[mi], v + (size_t)i * dim, v + (size_t)o[k - 1] * dim, dim);
                for (uint32_t r = 0; r < n; r++) {
                    int in = r == i;
                    for (uint32_t j = 0; j < k && !in; j++)
                        in = o[j] == r;
                    if (!in)
                        assert_true(dist_of(metrics[mi], v + (size_t)i * dim, v + (size_t)r * dim,
                                            dim) >= dk - 1e-5);
                }
            }
        }
    }
    /* fewer than k others: padding */
    assert_int_equal(vec_knn_graph(VEC_L2, v, 3, dim, 4, 0, out), 0);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(out[i * 4 + 2], UINT32_MAX);
        assert_int_equal(out[i * 4 + 3], UINT32_MAX);
        assert_true(out[i * 4] != i && out[i * 4 + 1] != i && out[i * 4] != out[i * 4 + 1]);
    }
    /* errors */
    assert_int_equal(vec_knn_graph(VEC_L2, v, n, dim, 0, 0, out), ERR_INVAL);
    assert_int_equal(vec_knn_graph(9, v, n, dim, k, 0, out), ERR_INVAL);
    assert_int_equal(vec_knn_graph(VEC_L2, v, n, 0, k, 0, out), ERR_INVAL);
    memset(v, 0, dim * sizeof(float));
    assert_int_equal(vec_knn_graph(VEC_COSINE, v, n, dim, k, 0, out), ERR_INVAL);
    v[5] = NAN;
    assert_int_equal(vec_knn_graph(VEC_L2, v, n, dim, k, 0, out), ERR_INVAL);
    xfree(v);
    xfree(out);
}

/* ---- recall: bulk against incremental ---- */

static void compare(const set *s, int metric, const char *name)
{
    vec_index *ex = exact(s, s->n, metric, NULL);
    vec_index *inc = incremental(s, s->n, metric);
    vec_index *blk = bulk_built(s, s->n, metric, KNN, 0);
    uint32_t efs[2] = {10, 50};
    for (int e = 0; e < 2; e++) {
        double ri = recall(inc, ex, s, efs[e]), rb = recall(blk, ex, s, efs[e]);
        print_message("%s metric %d M %d ef %u: recall@10 incremental %.4f, bulk (kNN %d) %.4f\n",
                      name, metric, M, efs[e], ri, KNN, rb);
        assert_true(rb >= ri - 0.01);
    }
    vec_free(ex);
    vec_free(inc);
    vec_free(blk);
}

static void test_recall_fmnist(void **state)
{
    (void)state;
    compare(&fm, VEC_L2, "fashion-mnist 10k");
    compare(&fm, VEC_COSINE, "fashion-mnist 10k");
}

static void test_recall_random(void **state)
{
    (void)state;
    compare(&rnd, VEC_L2, "random 5k x 24");
    compare(&rnd, VEC_COSINE, "random 5k x 24");
}

/* ---- an ordinary index afterwards ---- */

static void same_answers(vec_index *a, vec_index *b, const set *s)
{
    for (uint32_t q = 0; q < 50; q++) {
        vec_hit x[K], y[K];
        size_t nx = 0, ny = 0;
        const float *qv = s->query + (size_t)q * s->dim;
        assert_int_equal(vec_knn(a, qv, K, 0, NULL, x, &nx), 0);
        assert_int_equal(vec_knn(b, qv, K, 0, NULL, y, &ny), 0);
        assert_int_equal(nx, ny);
        for (size_t i = 0; i < nx; i++) {
            assert_int_equal(x[i].id, y[i].id);
            assert_true(x[i].dist == y[i].dist);
        }
    }
}

static void test_delete_add_save(void **state)
{
    (void)state;
    set *s = &rnd;
    uint32_t n = 4000; /* rows n.. are added afterwards */
    vec_index *blk = bulk_built(s, n, VEC_L2, 32, 0);
    char *live = xcalloc(s->n, 1);
    memset(live, 1, n);
    for (uint32_t i = 0; i < n; i += 3) {
        assert_int_equal(vec_delete(blk, i), 0);
        live[i] = 0;
    }
    for (uint32_t i = n; i < s->n; i++) {
        assert_int_equal(vec_add(blk, i, row(s, i)), 0);
        live[i] = 1;
    }
    assert_int_equal(vec_delete(blk, 0), ERR_NOTFOUND);
    size_t nlive = 0;
    for (uint32_t i = 0; i < s->n; i++)
        nlive += live[i];
    assert_int_equal(vec_count(blk), nlive);
    vec_index *ex = exact(s, s->n, VEC_L2, live);
    double r = recall(blk, ex, s, 50);
    print_message("bulk-built, a third deleted, 1000 added: recall@10 at ef 50 %.4f\n", r);
    assert_true(r >= 0.9);
    /* a deleted vector is never returned; a live one finds itself */
    for (uint32_t i = 0; i < s->n; i += 97) {
        vec_hit h[1];
        size_t nh = 0;
        assert_int_equal(vec_knn(blk, row(s, i), 1, 50, NULL, h, &nh), 0);
        assert_int_equal(nh, 1);
        assert_true(live[h[0].id]);
        if (live[i])
            assert_int_equal(h[0].id, i);
    }
    buf b = {0};
    assert_int_equal(vec_save(blk, &b), 0);
    vec_index *back = NULL;
    char err[128];
    assert_int_equal(vec_load(b.data, b.len, &back, err, sizeof err), 0);
    assert_int_equal(vec_count(back), nlive);
    same_answers(blk, back, s);
    buf_free(&b);
    vec_free(back);
    vec_free(ex);
    vec_free(blk);
    xfree(live);
}

/* 100 tight clusters of 8, far apart, and kNN lists of 4: no list leaves its cluster, so
 * only the reachability pass links most clusters in. A search with ef = n visits every node
 * reachable from where it lands on level 0: each vector must find itself. */
static void test_clusters_reachable(void **state)
{
    (void)state;
    set c = {.n = 800, .dim = 16, .nq = 0};
    c.base = xmalloc((size_t)c.n * c.dim * sizeof(float));
    for (uint32_t i = 0; i < c.n; i++)
        for (uint32_t j = 0; j < c.dim; j++)
            c.base[(size_t)i * c.dim + j] =
                (j == (i / 8) % c.dim ? 1000.0f * (float)(i / 8 + 1) : 0) + 0.01f * frand();
    vec_index *ix = bulk_built(&c, c.n, VEC_L2, 4, 0);
    for (uint32_t i = 0; i < c.n; i++) {
        vec_hit h[1];
        size_t nh = 0;
        assert_int_equal(vec_knn(ix, row(&c, i), 1, c.n, NULL, h, &nh), 0);
        assert_int_equal(nh, 1);
        assert_int_equal(h[0].id, i);
    }
    vec_free(ix);
    xfree(c.base);
}

/* ---- the upper levels' kNN lists: through the caller's function ---- */

typedef struct upper_ctx {
    int calls, fail, garbage;
} upper_ctx;

/* Counts its calls; fails with ERR_GPU, or writes rows out of range and self rows, or gives
 * the exact lists. */
static int upper_fn(void *ctx, int metric, const float *vecs, uint32_t n, uint32_t dim,
                    uint32_t k, uint32_t *out)
{
    upper_ctx *c = ctx;
    c->calls++;
    if (c->fail)
        return ERR_GPU;
    int rc = vec_knn_graph(metric, vecs, n, dim, k, 1, out);
    for (uint32_t i = 0; c->garbage && i < n; i++) {
        out[(size_t)i * k] = i;     /* itself */
        out[(size_t)i * k + 1] = n; /* out of range */
    }
    return rc;
}

static void test_upper_levels(void **state)
{
    (void)state;
    set *s = &rnd;
    uint32_t n = 3000, k = 32;
    uint32_t *knn = xmalloc((size_t)n * k * sizeof(uint32_t));
    uint32_t *ids = xmalloc((size_t)n * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++)
        ids[i] = i;
    assert_int_equal(vec_knn_graph(VEC_L2, s->base, n, s->dim, k, 0, knn), 0);
    char err[128] = "";
    /* a failing source: its error, the index left empty and usable */
    upper_ctx c = {0, 1, 0};
    vec_index *ix = make(VEC_HNSW, VEC_L2, s->dim);
    assert_int_equal(vec_hnsw_build(ix, ids, s->base, n, knn, k, upper_fn, &c, 0, err, sizeof err),
                     ERR_GPU);
    assert_int_equal(c.calls, 1);
    assert_int_equal(vec_count(ix), 0);
    assert_false(vec_contains(ix, 5));
    /* rows out of range or the node itself are left out, the rest builds */
    c = (upper_ctx){0, 0, 1};
    assert_int_equal(vec_hnsw_build(ix, ids, s->base, n, knn, k, upper_fn, &c, 0, err, sizeof err), 0);
    assert_true(c.calls >= 1); /* 3000 nodes: about 190 reach level 1 */
    assert_int_equal(vec_count(ix), n);
    vec_index *ex = exact(s, n, VEC_L2, NULL);
    double r = recall(ix, ex, s, 50);
    print_message("upper levels from a function (%d levels): recall@10 at ef 50 %.4f\n", c.calls, r);
    assert_true(r >= 0.95);
    vec_free(ex);
    vec_free(ix);
    xfree(knn);
    xfree(ids);
}

/* ---- bad input: refused, nothing changed ---- */

static void test_errors(void **state)
{
    (void)state;
    uint32_t n = 50, dim = rnd.dim, k = 6;
    uint32_t ids[50], knn[50 * 6];
    for (uint32_t i = 0; i < n; i++)
        ids[i] = 1000 + i;
    assert_int_equal(vec_knn_graph(VEC_L2, rnd.base, n, dim, k, 1, knn), 0);
    vec_index *ix = make(VEC_HNSW, VEC_L2, dim);
    char err[128] = "";
    float *v = xmalloc((size_t)n * dim * sizeof(float));
    memcpy(v, rnd.base, (size_t)n * dim * sizeof(float));

    ids[7] = ids[3];
    assert_int_equal(vec_hnsw_build(ix, ids, v, n, knn, k, NULL, NULL, 0, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "repeated id"));
    ids[7] = 1007;
    ids[9] = 1u << 30;
    assert_int_equal(vec_hnsw_build(ix, ids, v, n, knn, k, NULL, NULL, 0, err, sizeof err), ERR_LIMIT);
    ids[9] = 1009;
    knn[5 * k + 2] = 5; /* itself */
    assert_int_equal(vec_hnsw_build(ix, ids, v, n, knn, k, NULL, NULL, 0, err, sizeof err), ERR_INVAL);
    knn[5 * k + 2] = n; /* out of range */
    assert_int_equal(vec_hnsw_build(ix, ids, v, n, knn, k, NULL, NULL, 0, err, sizeof err), ERR_INVAL);
    knn[5 * k + 2] = UINT32_MAX; /* padding is fine */
    v[3 * dim + 1] = INFINITY;
    assert_int_equal(vec_hnsw_build(ix, ids, v, n, knn, k, NULL, NULL, 0, err, sizeof err), ERR_INVAL);
    assert_int_equal(vec_count(ix), 0);
    v[3 * dim + 1] = 0.5f;

    vec_index *cos = make(VEC_HNSW, VEC_COSINE, dim);
    float *z = xmalloc((size_t)n * dim * sizeof(float));
    memcpy(z, v, (size_t)n * dim * sizeof(float));
    memset(z + 8 * dim, 0, dim * sizeof(float));
    assert_int_equal(vec_hnsw_build(cos, ids, z, n, knn, k, NULL, NULL, 0, err, sizeof err), ERR_INVAL);
    assert_int_equal(vec_count(cos), 0);
    xfree(z);
    vec_free(cos);

    vec_index *flat = make(VEC_FLAT, VEC_L2, dim);
    assert_int_equal(vec_hnsw_build(flat, ids, v, n, knn, k, NULL, NULL, 0, err, sizeof err), ERR_INVAL);
    vec_free(flat);

    /* after the refusals the same index builds, and a second build is refused */
    assert_int_equal(vec_hnsw_build(ix, ids, v, n, knn, k, NULL, NULL, 0, err, sizeof err), 0);
    assert_int_equal(vec_count(ix), n);
    assert_int_equal(vec_hnsw_build(ix, ids, v, n, knn, k, NULL, NULL, 0, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "not empty"));
    assert_int_equal(vec_count(ix), n);
    assert_true(vec_contains(ix, 1000) && vec_contains(ix, 1049) && !vec_contains(ix, 0));
    /* nothing given: an empty index stays empty and usable */
    vec_index *e = make(VEC_HNSW, VEC_L2, dim);
    assert_int_equal(vec_hnsw_build(e, NULL, NULL, 0, NULL, 0, NULL, NULL, 0, err, sizeof err), 0);
    assert_int_equal(vec_add(e, 1, v), 0);
    vec_free(e);
    xfree(v);
    vec_free(ix);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_knn_graph_exact),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_clusters_reachable),
        cmocka_unit_test(test_upper_levels),
        cmocka_unit_test(test_delete_add_save),
        cmocka_unit_test(test_recall_random),
        cmocka_unit_test(test_recall_fmnist),
    };
    if (getenv("TEST_FILTER")) /* one test by name (make tsan runs test_upper_levels) */
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    size_t n = skip_tests(tests, sizeof tests / sizeof tests[0]);
    return _cmocka_run_group_tests("test_hnsw_bulk", tests, n, setup, teardown);
}
