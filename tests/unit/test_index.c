/* test_index.c: unit tests for the vector index entry points (index/index.c), the distance
 * kernels (index/distance*.c) and the FLAT index (index/flat.c): every kernel level this CPU
 * runs against a double-precision reference for dims 1..1100, unaligned, and exactly on
 * small integers; FLAT against the shared data sets' ground truth (bigann10k, fmnist1k) and
 * against a brute-force oracle after deletes and reinserts, under filters, for range
 * queries, for IP and COSINE; memory given back; snapshots round-tripped and every
 * corruption refused; bad parameters and vectors refused without a change.
 * The data sets are read from $QUIVER_DATA (default ../shared/data). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"
#include "index/index.h"
#include "index/index_int.h"

#define OK(expr) assert_int_equal((expr), 0)

/* ---- helpers: random numbers, data files, the oracle ---- */

static uint64_t rng = 88172645463325252ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static float rndf(void) /* uniform in [-1, 1) */
{
    return (float)((double)(rnd() & 0xffffff) / (1 << 23) - 1.0);
}

typedef struct dataset {
    float *base, *query;
    int32_t *gt;
    uint32_t dim, nbase, nquery, kgt;
} dataset;

/* Reads an .fvecs or .ivecs file (both 4-byte elements) into *out. */
static void *read_vecs(const char *name, uint32_t *dim, uint32_t *count)
{
    const char *root = getenv("QUIVER_DATA") ? getenv("QUIVER_DATA") : "../shared/data";
    char path[512];
    snprintf(path, sizeof path, "%s/vectors/%s", root, name);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot open %s (set QUIVER_DATA to the shared data folder)", path);
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    int32_t d;
    assert_int_equal(fread(&d, 4, 1, fp), 1);
    uint32_t n = (uint32_t)(size / (4 * ((long)d + 1)));
    char *out = xmalloc((size_t)n * d * 4);
    fseek(fp, 0, SEEK_SET);
    for (uint32_t i = 0; i < n; i++) {
        int32_t di;
        assert_int_equal(fread(&di, 4, 1, fp), 1);
        assert_int_equal(di, d);
        assert_int_equal(fread(out + (size_t)i * d * 4, 4, (size_t)d, fp), (size_t)d);
    }
    fclose(fp);
    *dim = (uint32_t)d;
    *count = n;
    return out;
}

static void load_dataset(dataset *ds, const char *dir)
{
    char name[256];
    uint32_t d2, n2;
    snprintf(name, sizeof name, "%s/%s_base.fvecs", dir, dir);
    ds->base = read_vecs(name, &ds->dim, &ds->nbase);
    snprintf(name, sizeof name, "%s/%s_query.fvecs", dir, dir);
    ds->query = read_vecs(name, &d2, &ds->nquery);
    assert_int_equal(d2, ds->dim);
    snprintf(name, sizeof name, "%s/%s_groundtruth.ivecs", dir, dir);
    ds->gt = read_vecs(name, &ds->kgt, &n2);
    assert_int_equal(n2, ds->nquery);
}

static void free_dataset(dataset *ds)
{
    xfree(ds->base);
    xfree(ds->query);
    xfree(ds->gt);
}

static double ref_l2(const float *a, const float *b, uint32_t dim)
{
    double s = 0;
    for (uint32_t i = 0; i < dim; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s;
}

static double ref_dot(const float *a, const float *b, uint32_t dim)
{
    double s = 0;
    for (uint32_t i = 0; i < dim; i++)
        s += (double)a[i] * b[i];
    return s;
}

static double ref_dist(int metric, const float *a, const float *b, uint32_t dim)
{
    return metric == VEC_L2 ? ref_l2(a, b, dim) : 1.0 - ref_dot(a, b, dim);
}

typedef struct ref_hit {
    double dist;
    uint32_t id;
} ref_hit;

static int ref_cmp(const void *a, const void *b)
{
    const ref_hit *x = a, *y = b;
    if (x->dist != y->dist)
        return x->dist < y->dist ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The oracle: vectors vec(i) under ids id[i], i < n, those passing keep (NULL: all). */
typedef struct oracle {
    const float *vecs; /* n vectors of dim, contiguous */
    const uint32_t *ids;
    size_t n;
    uint32_t dim;
    int metric;
    int (*keep)(void *ctx, uint32_t id);
} oracle;

/* All passing vectors sorted by exact distance to q; returns how many (*out xfree'd). */
static size_t oracle_sorted(const oracle *o, const float *q, ref_hit **out)
{
    ref_hit *h = xmalloc((o->n ? o->n : 1) * sizeof *h);
    size_t m = 0;
    for (size_t i = 0; i < o->n; i++) {
        if (o->keep && !o->keep(NULL, o->ids[i]))
            continue;
        h[m].dist = ref_dist(o->metric, q, o->vecs + i * o->dim, o->dim);
        h[m++].id = o->ids[i];
    }
    qsort(h, m, sizeof *h, ref_cmp);
    *out = h;
    return m;
}

static double oracle_dist_of(const oracle *o, const float *q, uint32_t id)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->ids[i] == id)
            return ref_dist(o->metric, q, o->vecs + i * o->dim, o->dim);
    fail_msg("id %u returned but not in the oracle", id);
    return 0;
}

/* Checks hits (n of them, asked k) against the oracle: min(k, matching) hits, nearest
 * first, no id twice, each reported distance close to the exact one, and each hit either
 * among the true top k or tied with the k-th (the ground truth's rule). */
static void check_exact(const oracle *o, const float *q, uint32_t k, const vec_hit *hits, size_t n)
{
    ref_hit *truth;
    size_t m = oracle_sorted(o, q, &truth);
    size_t want = m < k ? m : k;
    assert_int_equal(n, want);
    for (size_t i = 0; i < n; i++) {
        double exact = oracle_dist_of(o, q, hits[i].id);
        assert_true(fabs(hits[i].dist - exact) <= 1e-5 * fabs(exact) + 1e-4);
        if (i)
            assert_true(hits[i - 1].dist <= hits[i].dist);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(hits[j].id, hits[i].id);
        int found = exact <= truth[want - 1].dist;
        for (size_t j = 0; j < want && !found; j++)
            found = truth[j].id == hits[i].id;
        if (!found)
            fail_msg("hit %zu (id %u, dist %g) not in the true top %zu (k-th dist %g)", i,
                     hits[i].id, exact, want, truth[want - 1].dist);
    }
    xfree(truth);
}

static vec_index *make(int kind, int metric, uint32_t dim)
{
    vec_params p = {.kind = kind, .metric = metric, .dim = dim};
    vec_index *ix = NULL;
    char err[128] = "";
    int rc = vec_create(&p, &ix, err, sizeof err);
    if (rc)
        fail_msg("vec_create: %s (%s)", err_str(rc), err);
    return ix;
}

/* ---- kernels ---- */

#define KDIM 1100

/* Every kernel of every level against the double reference, dims 1..KDIM, unaligned. */
static void test_kernels_reference(void **state)
{
    (void)state;
    float *a = xmalloc((KDIM + 8) * sizeof *a), *b = xmalloc((KDIM + 8) * sizeof *b);
    for (int i = 0; i < KDIM + 8; i++) {
        a[i] = rndf() * 3;
        b[i] = rndf() * 3;
    }
    int levels = 0;
    for (int level = VEC_KERN_SCALAR; level <= VEC_KERN_AVX512; level++) {
        const vec_kern *k = vec__kern_level(level);
        if (!k)
            continue;
        levels++;
        for (uint32_t dim = 1; dim <= KDIM; dim++) {
            const float *x = a + dim % 4, *y = b + (dim / 4) % 3 + 1; /* unaligned */
            double l2 = ref_l2(x, y, dim), dp = ref_dot(x, y, dim), abs_dot = 0;
            for (uint32_t i = 0; i < dim; i++)
                abs_dot += fabs((double)x[i] * y[i]);
            /* A bound on float summation error in accumulators of dim/4 terms. */
            double tol = (dim / 4.0 + 16) * 1.2e-7;
            if (fabs(k->l2sq(x, y, dim) - l2) > tol * l2)
                fail_msg("%s l2sq dim %u: %g vs %g", k->name, dim, k->l2sq(x, y, dim), l2);
            if (fabs(k->dot(x, y, dim) - dp) > tol * abs_dot)
                fail_msg("%s dot dim %u: %g vs %g", k->name, dim, k->dot(x, y, dim), dp);
            const float *v[4] = {y, a + 3, b + 2, y};
            float o[4];
            k->l2sq_x4(x, v, dim, o);
            for (int j = 0; j < 4; j++) {
                double r = ref_l2(x, v[j], dim);
                if (fabs(o[j] - r) > tol * r)
                    fail_msg("%s l2sq_x4[%d] dim %u: %g vs %g", k->name, j, dim, o[j], r);
            }
            k->dot_x4(x, v, dim, o);
            for (int j = 0; j < 4; j++) {
                double r = ref_dot(x, v[j], dim), s = 0;
                for (uint32_t i = 0; i < dim; i++)
                    s += fabs((double)x[i] * v[j][i]);
                if (fabs(o[j] - r) > tol * s)
                    fail_msg("%s dot_x4[%d] dim %u: %g vs %g", k->name, j, dim, o[j], r);
            }
        }
    }
    assert_true(levels >= 1);
    xfree(a);
    xfree(b);
}

/* On small integers every sum is exact in float: any lost or doubled element shows. */
static void test_kernels_exact_integers(void **state)
{
    (void)state;
    float *a = xmalloc((KDIM + 4) * sizeof *a), *b = xmalloc((KDIM + 4) * sizeof *b);
    for (int i = 0; i < KDIM + 4; i++) {
        a[i] = (float)((int)(rnd() % 17) - 8);
        b[i] = (float)((int)(rnd() % 17) - 8);
    }
    for (int level = VEC_KERN_SCALAR; level <= VEC_KERN_AVX512; level++) {
        const vec_kern *k = vec__kern_level(level);
        if (!k)
            continue;
        for (uint32_t dim = 1; dim <= KDIM; dim++) {
            const float *x = a + 1, *y = b + dim % 4;
            const float *v[4] = {y, a + 2, b, x};
            float o[4];
            assert_true(k->l2sq(x, y, dim) == (float)ref_l2(x, y, dim));
            assert_true(k->dot(x, y, dim) == (float)ref_dot(x, y, dim));
            k->l2sq_x4(x, v, dim, o);
            for (int j = 0; j < 4; j++)
                assert_true(o[j] == (float)ref_l2(x, v[j], dim));
            k->dot_x4(x, v, dim, o);
            for (int j = 0; j < 4; j++)
                assert_true(o[j] == (float)ref_dot(x, v[j], dim));
        }
    }
    xfree(a);
    xfree(b);
}

/* The vectors end at the edge of an allocation: masked tails read nothing beyond (ASan). */
static void test_kernels_tail_edge(void **state)
{
    (void)state;
    for (uint32_t dim = 1; dim <= 40; dim++) {
        float *x = xmalloc(dim * sizeof *x), *y = xmalloc(dim * sizeof *y);
        for (uint32_t i = 0; i < dim; i++) {
            x[i] = (float)i;
            y[i] = (float)(2 * i);
        }
        for (int level = VEC_KERN_SCALAR; level <= VEC_KERN_AVX512; level++) {
            const vec_kern *k = vec__kern_level(level);
            if (!k)
                continue;
            assert_true(k->l2sq(x, y, dim) == (float)ref_l2(x, y, dim));
            assert_true(k->dot(x, y, dim) == (float)ref_dot(x, y, dim));
        }
        xfree(x);
        xfree(y);
    }
}

static void test_distance_api(void **state)
{
    (void)state;
    const char *name = vec_kernels();
    assert_true(!strcmp(name, "scalar") || !strcmp(name, "avx2") || !strcmp(name, "avx512"));
    if (!getenv("QUIVER_SIMD")) /* uncapped: the best level this CPU runs */
        assert_string_equal(name, vec__kern_level(VEC_KERN_AVX512) ? "avx512"
                                  : vec__kern_level(VEC_KERN_AVX2) ? "avx2"
                                                                   : "scalar");
    float a[3] = {1, 2, 2}, b[3] = {3, 0, 2};
    assert_true(vec_l2sq(a, b, 3) == 8.0f);
    assert_true(vec_dot(a, b, 3) == 7.0f);
    assert_true(vec_distance(VEC_L2, a, b, 3) == 8.0f);
    assert_true(vec_distance(VEC_IP, a, b, 3) == -6.0f);
    OK(vec_normalize(a, 3));
    assert_true(fabsf(a[0] - 1.0f / 3) < 1e-7f && fabsf(a[1] - 2.0f / 3) < 1e-7f);
    float z[2] = {0, 0};
    assert_int_equal(vec_normalize(z, 2), ERR_INVAL);
}

/* ---- FLAT against the shared ground truth ---- */

static void check_ground_truth(const char *dir, uint32_t k)
{
    dataset ds;
    load_dataset(&ds, dir);
    vec_index *ix = make(VEC_FLAT, VEC_L2, ds.dim);
    for (uint32_t i = 0; i < ds.nbase; i++)
        OK(vec_add(ix, i, ds.base + (size_t)i * ds.dim));
    assert_int_equal(vec_count(ix), ds.nbase);
    vec_hit *hits = xmalloc(k * sizeof *hits);
    for (uint32_t qi = 0; qi < ds.nquery; qi++) {
        const float *q = ds.query + (size_t)qi * ds.dim;
        const int32_t *gt = ds.gt + (size_t)qi * ds.kgt;
        size_t n;
        OK(vec_knn(ix, q, k, 0, NULL, hits, &n));
        assert_int_equal(n, k);
        double kth = ref_l2(q, ds.base + (size_t)gt[k - 1] * ds.dim, ds.dim);
        for (size_t i = 0; i < n; i++) {
            double d = ref_l2(q, ds.base + (size_t)hits[i].id * ds.dim, ds.dim);
            int hit = d == kth;
            for (uint32_t j = 0; j < k && !hit; j++)
                hit = (uint32_t)gt[j] == hits[i].id;
            if (!hit)
                fail_msg("%s query %u: id %u (dist %g) not in the top %u (k-th %g)", dir, qi,
                         hits[i].id, d, k, kth);
            assert_true(fabs(hits[i].dist - d) <= 1e-5 * d + 1e-3);
            if (i)
                assert_true(hits[i - 1].dist <= hits[i].dist);
        }
    }
    xfree(hits);
    vec_free(ix);
    free_dataset(&ds);
}

static void test_flat_bigann10k(void **state)
{
    (void)state;
    check_ground_truth("bigann10k", 10);
    check_ground_truth("bigann10k", 100);
}

static void test_flat_fmnist1k(void **state)
{
    (void)state;
    check_ground_truth("fmnist1k", 10);
    check_ground_truth("fmnist1k", 100);
}

/* ---- FLAT: deletes, reinserts, memory ---- */

/* An oracle over the index's current content, kept by the test beside it. */
typedef struct mirror {
    float *vecs;
    uint32_t *ids;
    size_t n;
    uint32_t dim;
    size_t cap; /* 0: the arrays are borrowed and never grow */
} mirror;

static void mirror_put(mirror *m, uint32_t id, const float *v)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->ids[i] == id) {
            memcpy(m->vecs + i * m->dim, v, m->dim * sizeof *v);
            return;
        }
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->vecs = xrealloc(m->vecs, m->cap * m->dim * sizeof(float));
        m->ids = xrealloc(m->ids, m->cap * sizeof(uint32_t));
    }
    memcpy(m->vecs + m->n * m->dim, v, m->dim * sizeof *v);
    m->ids[m->n++] = id;
}

static void mirror_del(mirror *m, uint32_t id)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->ids[i] == id) {
            m->n--;
            memmove(m->vecs + i * m->dim, m->vecs + m->n * m->dim, m->dim * sizeof(float));
            m->ids[i] = m->ids[m->n];
            return;
        }
    fail_msg("mirror_del: %u absent", id);
}

static void check_against(vec_index *ix, const mirror *m, int metric, const float *queries,
                          uint32_t nq, uint32_t k, const vec_filter *f)
{
    oracle o = {m->vecs, m->ids, m->n, m->dim, metric, f ? f->keep : NULL};
    vec_hit *hits = xmalloc(k * sizeof *hits);
    for (uint32_t qi = 0; qi < nq; qi++) {
        size_t n;
        OK(vec_knn(ix, queries + (size_t)qi * m->dim, k, 0, f, hits, &n));
        check_exact(&o, queries + (size_t)qi * m->dim, k, hits, n);
    }
    xfree(hits);
}

static void test_flat_delete_reinsert(void **state)
{
    (void)state;
    dataset ds;
    load_dataset(&ds, "bigann10k");
    uint32_t dim = ds.dim, n = ds.nbase;
    vec_index *ix = make(VEC_FLAT, VEC_L2, dim);
    mirror m = {.dim = dim};
    for (uint32_t i = 0; i < n; i++) {
        OK(vec_add(ix, i, ds.base + (size_t)i * dim));
        mirror_put(&m, i, ds.base + (size_t)i * dim);
    }
    size_t full = vec_memory(ix);
    for (uint32_t i = 0; i < n; i++)
        if (i % 10 < 3) {
            OK(vec_delete(ix, i));
            mirror_del(&m, i);
        }
    assert_int_equal(vec_count(ix), n - 3000);
    assert_int_equal(vec_delete(ix, 0), ERR_NOTFOUND);
    assert_int_equal(vec_delete(ix, 123456), ERR_NOTFOUND);
    assert_false(vec_contains(ix, 1));
    assert_true(vec_contains(ix, 3));
    check_against(ix, &m, VEC_L2, ds.query, 30, 10, NULL);
    /* The deleted vectors come back under new ids; one old id gets a new vector. */
    for (uint32_t i = 0; i < n; i++)
        if (i % 10 < 3) {
            OK(vec_add(ix, 20000 + i, ds.base + (size_t)i * dim));
            mirror_put(&m, 20000 + i, ds.base + (size_t)i * dim);
        }
    OK(vec_add(ix, 5, ds.base + 7 * dim));
    mirror_put(&m, 5, ds.base + 7 * dim);
    assert_int_equal(vec_count(ix), n);
    check_against(ix, &m, VEC_L2, ds.query, 30, 10, NULL);
    check_against(ix, &m, VEC_L2, ds.query, 5, 100, NULL);

    /* Memory: within 10% of a fresh build of the same set. */
    vec_index *fresh = make(VEC_FLAT, VEC_L2, dim);
    for (size_t i = 0; i < m.n; i++)
        OK(vec_add(fresh, m.ids[i], m.vecs + i * dim));
    assert_true(vec_memory(ix) <= vec_memory(fresh) * 11 / 10);
    assert_true(vec_memory(ix) <= full * 11 / 10);
    vec_free(fresh);

    /* Deleting nearly everything gives the memory back. */
    for (size_t i = m.n; i-- > 10;) {
        OK(vec_delete(ix, m.ids[i]));
        m.n--;
    }
    assert_int_equal(vec_count(ix), 10);
    assert_true(vec_memory(ix) < full / 100);
    check_against(ix, &m, VEC_L2, ds.query, 10, 20, NULL);
    while (m.n) {
        OK(vec_delete(ix, m.ids[--m.n]));
    }
    assert_int_equal(vec_count(ix), 0);
    vec_hit hits[4];
    size_t got = 9;
    OK(vec_knn(ix, ds.query, 4, 0, NULL, hits, &got));
    assert_int_equal(got, 0);
    vec_free(ix);
    xfree(m.vecs);
    xfree(m.ids);
    free_dataset(&ds);
}

/* ---- FLAT: filters ---- */

static int keep_tenth(void *ctx, uint32_t id)
{
    (void)ctx;
    return id % 10 == 3;
}

static int keep_odd(void *ctx, uint32_t id)
{
    (void)ctx;
    return id % 2 == 1;
}

static int keep_none(void *ctx, uint32_t id)
{
    (void)ctx;
    (void)id;
    return 0;
}

static void test_flat_filters(void **state)
{
    (void)state;
    dataset ds;
    load_dataset(&ds, "fmnist1k");
    uint32_t dim = ds.dim;
    vec_index *ix = make(VEC_FLAT, VEC_L2, dim);
    mirror m = {.dim = dim};
    for (uint32_t i = 0; i < ds.nbase; i++) {
        OK(vec_add(ix, i, ds.base + (size_t)i * dim));
        mirror_put(&m, i, ds.base + (size_t)i * dim);
    }
    /* A predicate keeping 10%. */
    vec_filter f = {.keep = keep_tenth};
    check_against(ix, &m, VEC_L2, ds.query, 50, 10, &f);
    check_against(ix, &m, VEC_L2, ds.query, 5, 150, &f); /* more asked than pass */

    /* An id list (0.5%, with absent ids in it): exactly its members come back. */
    uint32_t ids[7] = {7, 207, 407, 607, 807, 5000, 100000};
    mirror sub = {.dim = dim};
    for (int i = 0; i < 5; i++)
        mirror_put(&sub, ids[i], ds.base + (size_t)ids[i] * dim);
    vec_filter fl = {.ids = ids, .nids = 7};
    check_against(ix, &sub, VEC_L2, ds.query, 20, 3, &fl);
    check_against(ix, &sub, VEC_L2, ds.query, 20, 10, &fl);

    /* Both: the list and the predicate must agree. */
    fl.keep = keep_odd;
    check_against(ix, &sub, VEC_L2, ds.query, 5, 10, &fl);

    /* An empty list and a predicate refusing everything: no hits, no error. */
    vec_hit hits[10];
    size_t n = 99;
    vec_filter empty = {.ids = ids, .nids = 0};
    OK(vec_knn(ix, ds.query, 10, 0, &empty, hits, &n));
    assert_int_equal(n, 0);
    vec_filter none = {.keep = keep_none};
    OK(vec_knn(ix, ds.query, 10, 0, &none, hits, &n));
    assert_int_equal(n, 0);
    /* A filter with neither part filters nothing. */
    vec_filter all = {0};
    check_against(ix, &m, VEC_L2, ds.query, 5, 10, &all);

    vec_free(ix);
    xfree(m.vecs);
    xfree(m.ids);
    xfree(sub.vecs);
    xfree(sub.ids);
    free_dataset(&ds);
}

/* ---- FLAT: range ---- */

static void test_flat_range(void **state)
{
    (void)state;
    dataset ds;
    load_dataset(&ds, "bigann10k");
    uint32_t dim = ds.dim;
    vec_index *ix = make(VEC_FLAT, VEC_L2, dim);
    uint32_t *ids = xmalloc(ds.nbase * sizeof *ids);
    for (uint32_t i = 0; i < ds.nbase; i++) {
        OK(vec_add(ix, i, ds.base + (size_t)i * dim));
        ids[i] = i;
    }
    oracle o = {ds.base, ids, ds.nbase, dim, VEC_L2, NULL};
    for (uint32_t qi = 0; qi < 10; qi++) {
        const float *q = ds.query + (size_t)qi * dim;
        ref_hit *truth;
        size_t m = oracle_sorted(&o, q, &truth);
        assert_true(m > 50);
        /* bigann's distances are integers below 2^24: exact in float, so the radius is. */
        float radius = (float)truth[49].dist;
        size_t want = 0;
        while (want < m && truth[want].dist <= radius)
            want++;
        vec_hit *hits;
        size_t n;
        OK(vec_range(ix, q, radius, 0, NULL, 100000, &hits, &n));
        assert_int_equal(n, want);
        for (size_t i = 0; i < n; i++) {
            assert_true(hits[i].dist <= radius);
            assert_true(fabs(hits[i].dist - truth[i].dist) <= 1e-5 * truth[i].dist);
            if (i)
                assert_true(hits[i - 1].dist <= hits[i].dist);
        }
        xfree(hits);
        /* At most max, the nearest ones. */
        OK(vec_range(ix, q, radius, 0, NULL, 5, &hits, &n));
        assert_int_equal(n, 5);
        assert_true(hits[4].dist == (float)truth[4].dist);
        xfree(hits);
        /* With a filter: the oracle's filtered count. */
        vec_filter f = {.keep = keep_tenth};
        OK(vec_range(ix, q, radius, 0, &f, 100000, &hits, &n));
        size_t wantf = 0;
        for (size_t i = 0; i < want; i++)
            wantf += keep_tenth(NULL, truth[i].id);
        assert_int_equal(n, wantf);
        for (size_t i = 0; i < n; i++)
            assert_true(keep_tenth(NULL, hits[i].id));
        xfree(hits);
        /* Nothing within a negative radius. */
        OK(vec_range(ix, q, -1.0f, 0, NULL, 10, &hits, &n));
        assert_int_equal(n, 0);
        xfree(hits);
        xfree(truth);
    }
    vec_hit *hits;
    size_t n;
    assert_int_equal(vec_range(ix, ds.query, NAN, 0, NULL, 10, &hits, &n), ERR_INVAL);
    vec_free(ix);
    xfree(ids);
    free_dataset(&ds);
}

/* ---- IP and COSINE ---- */

static void test_metrics(void **state)
{
    (void)state;
    enum { DIM = 37, N = 300 };
    float *vecs = xmalloc(N * DIM * sizeof *vecs), *unit = xmalloc(N * DIM * sizeof *unit);
    uint32_t ids[N];
    for (int i = 0; i < N; i++) {
        ids[i] = (uint32_t)(3 * i + 1);
        for (int j = 0; j < DIM; j++)
            vecs[i * DIM + j] = rndf();
        memcpy(unit + i * DIM, vecs + i * DIM, DIM * sizeof(float));
        OK(vec_normalize(unit + i * DIM, DIM));
    }
    float queries[5 * DIM], uq[5 * DIM];
    for (int j = 0; j < 5 * DIM; j++)
        queries[j] = rndf() * 4;
    memcpy(uq, queries, sizeof uq);
    for (int i = 0; i < 5; i++)
        OK(vec_normalize(uq + i * DIM, DIM));

    vec_index *ip = make(VEC_FLAT, VEC_IP, DIM), *cos = make(VEC_FLAT, VEC_COSINE, DIM);
    for (int i = 0; i < N; i++) {
        OK(vec_add(ip, ids[i], vecs + i * DIM));
        OK(vec_add(cos, ids[i], vecs + i * DIM)); /* normalised on the way in */
    }
    /* IP: 1 - u.v on the raw vectors; COSINE: 1 - cos, i.e. IP of the normalised ones. */
    mirror raw = {vecs, ids, N, DIM, 0}, nrm = {unit, ids, N, DIM, 0};
    check_against(ip, &raw, VEC_IP, queries, 5, 10, NULL);
    check_against(cos, &nrm, VEC_COSINE, uq, 5, 10, NULL);
    for (int i = 0; i < 5; i++) { /* queries are normalised too */
        vec_hit a[10], b[10];
        size_t na, nb;
        OK(vec_knn(cos, queries + i * DIM, 10, 0, NULL, a, &na));
        OK(vec_knn(cos, uq + i * DIM, 10, 0, NULL, b, &nb));
        assert_int_equal(na, nb);
        for (size_t j = 0; j < na; j++)
            assert_true(a[j].id == b[j].id && fabsf(a[j].dist - b[j].dist) < 1e-6f);
    }

    /* Exact COSINE values: the same direction 0, orthogonal 1, opposite 2. */
    vec_index *c2 = make(VEC_FLAT, VEC_COSINE, 2);
    float e1[2] = {3, 0}, e2[2] = {0, 0.5f}, q[2] = {7, 0}, zero[2] = {0, 0};
    OK(vec_add(c2, 1, e1));
    OK(vec_add(c2, 2, e2));
    vec_hit hits[3];
    size_t n;
    OK(vec_knn(c2, q, 3, 0, NULL, hits, &n));
    assert_int_equal(n, 2);
    assert_int_equal(hits[0].id, 1);
    assert_true(fabsf(hits[0].dist) < 1e-6f);
    assert_true(fabsf(hits[1].dist - 1) < 1e-6f);
    q[0] = -1;
    OK(vec_knn(c2, q, 2, 0, NULL, hits, &n));
    assert_int_equal(hits[1].id, 1);
    assert_true(fabsf(hits[1].dist - 2) < 1e-6f);
    assert_int_equal(vec_add(c2, 3, zero), ERR_INVAL);
    assert_int_equal(vec_knn(c2, zero, 1, 0, NULL, hits, &n), ERR_INVAL);
    assert_int_equal(vec_count(c2), 2);
    /* IP keeps zero vectors: 1 - 0. */
    vec_index *i2 = make(VEC_FLAT, VEC_IP, 2);
    OK(vec_add(i2, 9, zero));
    OK(vec_knn(i2, e1, 1, 0, NULL, hits, &n));
    assert_true(n == 1 && hits[0].dist == 1.0f);
    vec_free(i2);
    vec_free(c2);
    vec_free(ip);
    vec_free(cos);
    xfree(vecs);
    xfree(unit);
}

/* ---- snapshots ---- */

static void same_answers(vec_index *a, vec_index *b, const float *queries, uint32_t nq, uint32_t k)
{
    uint32_t dim = vec_get_params(a)->dim;
    vec_hit *ha = xmalloc(k * sizeof *ha), *hb = xmalloc(k * sizeof *hb);
    for (uint32_t qi = 0; qi < nq; qi++) {
        size_t na, nb;
        OK(vec_knn(a, queries + (size_t)qi * dim, k, 0, NULL, ha, &na));
        OK(vec_knn(b, queries + (size_t)qi * dim, k, 0, NULL, hb, &nb));
        assert_int_equal(na, nb);
        for (size_t i = 0; i < na; i++) {
            assert_int_equal(ha[i].id, hb[i].id);
            assert_true(ha[i].dist == hb[i].dist);
        }
    }
    xfree(ha);
    xfree(hb);
}

static void test_snapshot_round_trip(void **state)
{
    (void)state;
    dataset ds;
    load_dataset(&ds, "bigann10k");
    vec_params p = {.kind = VEC_FLAT, .metric = VEC_L2, .dim = ds.dim, .ef_runtime = 33};
    vec_index *ix;
    char err[256] = "";
    OK(vec_create(&p, &ix, err, sizeof err));
    for (uint32_t i = 0; i < ds.nbase; i++)
        OK(vec_add(ix, 5 * i + 2, ds.base + (size_t)i * ds.dim));
    for (uint32_t i = 0; i < ds.nbase; i += 7)
        OK(vec_delete(ix, 5 * i + 2));
    buf b;
    buf_init(&b);
    buf_append(&b, "xyz", 3); /* vec_save appends */
    OK(vec_save(ix, &b));
    assert_memory_equal(b.data, "xyz", 3);
    vec_index *back;
    OK(vec_load(b.data + 3, b.len - 3, &back, err, sizeof err));
    assert_int_equal(vec_count(back), vec_count(ix));
    assert_int_equal(vec_get_params(back)->ef_runtime, 33);
    assert_int_equal(vec_get_params(back)->m, 16);
    assert_true(vec_get_params(back)->epsilon == 0.01);
    assert_true(vec_contains(back, 7) && !vec_contains(back, 2));
    same_answers(ix, back, ds.query, 20, 10);
    /* The loaded index works on: adds and deletes. */
    OK(vec_add(back, 2, ds.base));
    OK(vec_delete(back, 7));
    OK(vec_add(ix, 2, ds.base));
    OK(vec_delete(ix, 7));
    same_answers(ix, back, ds.query, 20, 10);
    buf_free(&b);
    vec_free(back);
    vec_free(ix);
    free_dataset(&ds);
}

static void snapshot_small(buf *b, int metric)
{
    vec_index *ix = make(VEC_FLAT, metric, 5);
    for (uint32_t i = 0; i < 6; i++) {
        float v[5] = {(float)i, 1, 2, (float)(i * i), -3};
        OK(vec_add(ix, 10 + i, v));
    }
    buf_init(b);
    OK(vec_save(ix, b));
    vec_free(ix);
}

/* Rewrites the CRC after a deliberate change, so the field checks are what refuses it. */
static void reseal(buf *b)
{
    uint32_t crc = crc32c(0, b->data, b->len - 4);
    for (int i = 0; i < 4; i++)
        b->data[b->len - 4 + i] = (char)(crc >> (8 * i));
}

static void expect_corrupt(const buf *b)
{
    vec_index *ix = NULL;
    char err[256] = "";
    int rc = vec_load(b->data, b->len, &ix, err, sizeof err);
    if (rc != ERR_CORRUPT)
        fail_msg("vec_load gave %s, wanted CORRUPT", rc ? err_str(rc) : "success");
    assert_true(err[0] != '\0');
    assert_null(ix);
}

static void test_snapshot_corrupt(void **state)
{
    (void)state;
    buf b;
    snapshot_small(&b, VEC_COSINE);
    vec_index *ix;
    char err[256];
    OK(vec_load(b.data, b.len, &ix, err, sizeof err));
    assert_int_equal(vec_count(ix), 6);
    assert_int_equal(vec_get_params(ix)->metric, VEC_COSINE);
    vec_free(ix);
    /* Every flipped bit, every truncation, a byte more. */
    for (size_t i = 0; i < b.len; i++)
        for (int bit = 0; bit < 8; bit++) {
            b.data[i] ^= (char)(1 << bit);
            expect_corrupt(&b);
            b.data[i] ^= (char)(1 << bit);
        }
    size_t len = b.len;
    for (b.len = 0; b.len < len; b.len++)
        expect_corrupt(&b);
    buf_appendc(&b, 0);
    expect_corrupt(&b);
    b.len = len;

    /* Fields that pass the CRC but are wrong (offsets from index.c's and flat.c's tables). */
    size_t payload = 56; /* no factory string */
    struct {
        size_t off;
        uint32_t value;
    } bad[] = {
        {4, 2},                          /* envelope version */
        {8, 0},                          /* kind */
        {8, 77},                         /* kind */
        {12, 9},                         /* metric */
        {16, 0},                         /* dim */
        {16, 6},                         /* dim disagreeing with the payload */
        {44, 3},                         /* factory length past the end */
        {48, 1},                         /* payload length */
        {payload, 2},                    /* FLAT version */
        {payload + 4, 7},                /* vector count */
        {payload + 4, 0},                /* vector count */
        {payload + 16, 10},              /* id 11 becomes a second 10 */
        {payload + 12 + 24, 0x7fc00000}, /* a NaN */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf c;
        buf_init(&c);
        buf_append(&c, b.data, b.len);
        for (int j = 0; j < 4; j++)
            c.data[bad[i].off + j] = (char)(bad[i].value >> (8 * j));
        reseal(&c);
        expect_corrupt(&c);
        buf_free(&c);
    }
    buf_free(&b);
    snapshot_small(&b, VEC_L2);
    OK(vec_load(b.data, b.len, &ix, err, sizeof err));
    vec_free(ix);
    buf_free(&b);
}

/* An empty index, and the envelope's parameters (a factory string included) come back. */
static void test_snapshot_empty_and_params(void **state)
{
    (void)state;
    vec_params p = {.kind = VEC_FLAT,
                    .metric = VEC_IP,
                    .dim = 300,
                    .m = 7,
                    .ef_construction = 99,
                    .epsilon = 0.5,
                    .initial_cap = 1000,
                    .factory = "IVF8,Flat"};
    vec_index *ix, *back;
    char err[256];
    OK(vec_create(&p, &ix, err, sizeof err));
    buf b;
    buf_init(&b);
    OK(vec_save(ix, &b));
    OK(vec_load(b.data, b.len, &back, err, sizeof err));
    const vec_params *q = vec_get_params(back);
    assert_int_equal(q->kind, VEC_FLAT);
    assert_int_equal(q->metric, VEC_IP);
    assert_int_equal(q->dim, 300);
    assert_int_equal(q->m, 7);
    assert_int_equal(q->ef_construction, 99);
    assert_int_equal(q->ef_runtime, 10);
    assert_true(q->epsilon == 0.5);
    assert_int_equal(q->initial_cap, 1000);
    assert_string_equal(q->factory, "IVF8,Flat");
    assert_true(q->factory != p.factory); /* the index's own copy */
    assert_int_equal(vec_count(back), 0);
    float v[300] = {1};
    vec_hit h[1];
    size_t n = 5;
    OK(vec_knn(back, v, 1, 0, NULL, h, &n));
    assert_int_equal(n, 0);
    OK(vec_add(back, 4, v));
    assert_int_equal(vec_count(back), 1);
    buf_free(&b);
    vec_free(back);
    vec_free(ix);
}

/* Equal distances come back by smaller id, whatever the order of insertion. */
static void test_ties_by_id(void **state)
{
    (void)state;
    vec_index *ix = make(VEC_FLAT, VEC_L2, 3);
    float same[3] = {1, 1, 1}, far[3] = {5, 5, 5};
    for (uint32_t id = 90; id >= 50; id--)
        OK(vec_add(ix, id, id % 2 ? same : far));
    vec_hit h[4];
    size_t n;
    OK(vec_knn(ix, same, 4, 0, NULL, h, &n));
    assert_int_equal(n, 4);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(h[i].id, 51 + 2 * i);
        assert_true(h[i].dist == 0);
    }
    vec_hit *r;
    OK(vec_range(ix, same, 0, 0, NULL, 3, &r, &n));
    assert_int_equal(n, 3);
    assert_true(r[0].id == 51 && r[1].id == 53 && r[2].id == 55);
    xfree(r);
    vec_free(ix);
}

/* ---- bad input, failed allocations, threads ---- */

static void test_bad_input(void **state)
{
    (void)state;
    vec_index *ix = NULL;
    char err[128];
    assert_int_equal(vec_create(NULL, &ix, err, sizeof err), ERR_INVAL);
    vec_params bad[] = {
        {.kind = VEC_FLAT, .metric = VEC_L2, .dim = 0},
        {.kind = VEC_FLAT, .metric = VEC_L2, .dim = VEC_MAX_DIM + 1},
        {.kind = VEC_FLAT, .metric = 0, .dim = 4},
        {.kind = VEC_FLAT, .metric = 4, .dim = 4},
        {.kind = 0, .metric = VEC_L2, .dim = 4},
        {.kind = 4, .metric = VEC_L2, .dim = 4},
        {.kind = VEC_FLAT, .metric = VEC_L2, .dim = 4, .epsilon = -1},
        {.kind = VEC_FLAT, .metric = VEC_L2, .dim = 4, .epsilon = NAN},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(vec_create(&bad[i], &ix, err, sizeof err), ERR_INVAL);
        assert_true(err[0] != '\0');
        assert_null(ix);
    }
    ix = make(VEC_FLAT, VEC_L2, 3);
    float v[3] = {1, 2, 3}, nan[3] = {1, NAN, 3}, inf[3] = {INFINITY, 0, 0};
    OK(vec_add(ix, 1, v));
    assert_int_equal(vec_add(ix, 2, nan), ERR_INVAL);
    assert_int_equal(vec_add(ix, 1, inf), ERR_INVAL);
    assert_int_equal(vec_count(ix), 1);
    vec_hit h[2];
    size_t n;
    assert_int_equal(vec_knn(ix, v, 0, 0, NULL, h, &n), ERR_INVAL);
    assert_int_equal(vec_knn(ix, v, VEC_MAX_K + 1, 0, NULL, h, &n), ERR_LIMIT);
    assert_int_equal(vec_knn(ix, nan, 1, 0, NULL, h, &n), ERR_INVAL);
    OK(vec_knn(ix, v, 2, 0, NULL, h, &n));
    assert_true(n == 1 && h[0].id == 1 && h[0].dist == 0);
    vec_free(ix);
}

static void test_failed_allocations(void **state)
{
    (void)state;
    vec_index *ix = make(VEC_FLAT, VEC_L2, 4);
    float v[4] = {1, 2, 3, 4};
    for (uint32_t i = 0; i < 16; i++)
        OK(vec_add(ix, i, v)); /* the first block is full */
    size_t mem = vec_memory(ix);
    for (long fail_at = 0; fail_at < 2; fail_at++) {
        alloc_fail_after(fail_at);
        assert_int_equal(vec_add(ix, 100, v), ERR_NOMEM);
        alloc_fail_after(-1);
        assert_int_equal(vec_count(ix), 16);
        assert_false(vec_contains(ix, 100));
    }
    assert_true(vec_memory(ix) >= mem);
    OK(vec_add(ix, 100, v));
    assert_int_equal(vec_count(ix), 17);
    vec_free(ix);
}

typedef struct race {
    vec_index *ix;
    const float *vecs;
    int stop;
} race;

static void *reader(void *arg)
{
    race *r = arg;
    vec_hit h[5];
    for (int i = 0; i < 300; i++) {
        size_t n;
        if (vec_knn(r->ix, r->vecs + (i % 50) * 16, 5, 0, NULL, h, &n) || n != 5)
            return (void *)1;
        for (size_t j = 1; j < n; j++)
            if (h[j - 1].dist > h[j].dist)
                return (void *)1;
    }
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    (void)state;
    float *vecs = xmalloc(200 * 16 * sizeof *vecs);
    for (int i = 0; i < 200 * 16; i++)
        vecs[i] = rndf();
    vec_index *ix = make(VEC_FLAT, VEC_L2, 16);
    for (uint32_t i = 0; i < 100; i++)
        OK(vec_add(ix, i, vecs + i * 16));
    race r = {ix, vecs, 0};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, reader, &r), 0);
    for (uint32_t round = 0; round < 20; round++)
        for (uint32_t i = 100; i < 200; i++) {
            OK(vec_add(ix, i, vecs + i * 16));
            OK(vec_delete(ix, i));
        }
    for (int i = 0; i < 3; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        assert_null(bad);
    }
    assert_int_equal(vec_count(ix), 100);
    vec_free(ix);
    xfree(vecs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_reference),
        cmocka_unit_test(test_kernels_exact_integers),
        cmocka_unit_test(test_kernels_tail_edge),
        cmocka_unit_test(test_distance_api),
        cmocka_unit_test(test_flat_bigann10k),
        cmocka_unit_test(test_flat_fmnist1k),
        cmocka_unit_test(test_flat_delete_reinsert),
        cmocka_unit_test(test_flat_filters),
        cmocka_unit_test(test_flat_range),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_snapshot_corrupt),
        cmocka_unit_test(test_snapshot_empty_and_params),
        cmocka_unit_test(test_ties_by_id),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_failed_allocations),
        cmocka_unit_test(test_concurrent_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
