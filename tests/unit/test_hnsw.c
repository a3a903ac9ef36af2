/* test_hnsw.c: unit tests for the HNSW index (index/hnsw.c) through index.h, against exact
 * answers: recall@10 at the default EF_RUNTIME on fmnist1k and bigann10k (shared data),
 * deleting 30% and inserting as many again (recall kept, memory back within 10% of a fresh
 * build), 10% and 0.1% filters (Fashion-MNIST labels and id sets) returning k hits, range
 * search against brute force, IP and COSINE, snapshot round trips and corrupt snapshots,
 * and readers searching while a writer adds and deletes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/skip.h"

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

#define K 10

typedef struct set {
    uint32_t n, dim, nq, gtk;
    float *base, *query;
    int32_t *gt;
    int *labels; /* fmnist1k only */
} set;

static set fm, bg;

static const char *data_dir(void)
{
    const char *d = getenv("QUIVER_SHARED_DATA");
    return d && *d ? d : "../shared/data";
}

/* Reads a texmex .fvecs ('f') or .ivecs ('i') file whole. */
static void *read_vecs(const char *rel, uint32_t *rows, uint32_t *dim)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/vectors/%s", data_dir(), rel);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "test_hnsw: cannot open %s (QUIVER_SHARED_DATA)\n", path);
        return NULL;
    }
    int32_t d = 0;
    if (fread(&d, 4, 1, f) != 1 || d <= 0) {
        fclose(f);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    size_t rec = 4 + 4 * (size_t)d, n = (size_t)ftell(f) / rec;
    fseek(f, 0, SEEK_SET);
    char *out = xmalloc(n * d * 4);
    for (size_t i = 0; i < n; i++) {
        int32_t h;
        if (fread(&h, 4, 1, f) != 1 || h != d || fread(out + i * d * 4, 4, d, f) != (size_t)d) {
            fclose(f);
            xfree(out);
            return NULL;
        }
    }
    fclose(f);
    *rows = (uint32_t)n;
    *dim = (uint32_t)d;
    return out;
}

static int load_set(set *s, const char *base, const char *query, const char *gt)
{
    uint32_t qd, gq;
    s->base = read_vecs(base, &s->n, &s->dim);
    s->query = read_vecs(query, &s->nq, &qd);
    s->gt = read_vecs(gt, &gq, &s->gtk);
    return s->base && s->query && s->gt && qd == s->dim && gq == s->nq ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    if (load_set(&fm, "fmnist1k/fmnist1k_base.fvecs", "fmnist1k/fmnist1k_query.fvecs",
                 "fmnist1k/fmnist1k_groundtruth.ivecs") ||
        load_set(&bg, "bigann10k/bigann10k_base.fvecs", "bigann10k/bigann10k_query.fvecs",
                 "bigann10k/bigann10k_groundtruth.ivecs"))
        return -1;
    /* fmnist1k is the first 1,000 training images: their labels open the labels file */
    char path[1024];
    snprintf(path, sizeof path, "%s/vectors/fashion-mnist-784-euclidean/fmnist_train_labels.txt",
             data_dir());
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    fm.labels = xmalloc(fm.n * sizeof(int));
    for (uint32_t i = 0; i < fm.n; i++)
        if (fscanf(f, "%d", &fm.labels[i]) != 1)
            return fclose(f), -1;
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    set *all[2] = {&fm, &bg};
    for (int i = 0; i < 2; i++) {
        xfree(all[i]->base);
        xfree(all[i]->query);
        xfree(all[i]->gt);
        xfree(all[i]->labels);
    }
    return 0;
}

static const float *row(const set *s, uint32_t i)
{
    return s->base + (size_t)i * s->dim;
}

static const float *qrow(const set *s, uint32_t q)
{
    return s->query + (size_t)q * s->dim;
}

static double l2d(const float *a, const float *b, uint32_t dim)
{
    double s = 0;
    for (uint32_t i = 0; i < dim; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s;
}

static vec_index *make(int metric, uint32_t dim, uint32_t m, uint32_t efc)
{
    vec_params p = {.kind = VEC_HNSW, .metric = metric, .dim = dim, .m = m, .ef_construction = efc};
    vec_index *ix = NULL;
    char err[128];
    assert_int_equal(vec_create(&p, &ix, err, sizeof err), 0);
    return ix;
}

/* Adds rows [from, to) of s with ids id0 + row. */
static void add_rows(vec_index *ix, const set *s, uint32_t from, uint32_t to, uint32_t id0)
{
    for (uint32_t i = from; i < to; i++)
        assert_int_equal(vec_add(ix, id0 + i, row(s, i)), 0);
}

/* The exact top-k of q over the rows of s that pass keep (NULL: all) and are live (NULL:
 * all): row numbers into out, nearest first; returns how many. */
static uint32_t exact_knn(const set *s, const float *q, uint32_t k, int (*keep)(void *, uint32_t),
                          void *ctx, const char *live, uint32_t *out, double *dist)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        if ((keep && !keep(ctx, i)) || (live && !live[i]))
            continue;
        double d = l2d(q, row(s, i), s->dim);
        if (n == k && d >= dist[k - 1])
            continue;
        uint32_t j = n < k ? n++ : k - 1;
        while (j > 0 && dist[j - 1] > d) {
            dist[j] = dist[j - 1];
            out[j] = out[j - 1];
            j--;
        }
        dist[j] = d;
        out[j] = i;
    }
    return n;
}

/* Hits of got (ids mapped to rows by id - id0) among the exact top-k of q; a hit whose
 * distance ties the k-th exact distance counts. */
static uint32_t hits_vs(const set *s, const float *q, const vec_hit *got, size_t ngot,
                        const uint32_t *want, const double *wd, uint32_t nwant, uint32_t id0)
{
    uint32_t h = 0;
    for (size_t i = 0; i < ngot; i++) {
        uint32_t r = got[i].id - id0;
        int hit = 0;
        for (uint32_t j = 0; j < nwant && !hit; j++)
            hit = want[j] == r;
        if (hit || (nwant && l2d(q, row(s, r), s->dim) <= wd[nwant - 1]))
            h++;
    }
    return h;
}

/* recall@10 of ix (ids = rows) on the set's queries against the shared ground truth. */
static double recall_gt(vec_index *ix, const set *s, uint32_t ef)
{
    size_t hits = 0;
    for (uint32_t q = 0; q < s->nq; q++) {
        vec_hit out[K];
        size_t n = 0;
        assert_int_equal(vec_knn(ix, qrow(s, q), K, ef, NULL, out, &n), 0);
        assert_int_equal(n, K);
        for (size_t i = 1; i < n; i++)
            assert_true(out[i - 1].dist <= out[i].dist);
        uint32_t want[K];
        double wd[K];
        for (int i = 0; i < K; i++) {
            want[i] = (uint32_t)s->gt[(size_t)q * s->gtk + i];
            wd[i] = l2d(qrow(s, q), row(s, want[i]), s->dim);
        }
        hits += hits_vs(s, qrow(s, q), out, n, want, wd, K, 0);
    }
    return (double)hits / (s->nq * K);
}

/* ---- recall at the default EF_RUNTIME ---- */

static void test_recall_fmnist1k(void **state)
{
    (void)state;
    vec_index *ix = make(VEC_L2, fm.dim, 0, 0); /* defaults: M 16, EF_CONSTRUCTION 200 */
    add_rows(ix, &fm, 0, fm.n, 0);
    assert_int_equal(vec_count(ix), fm.n);
    assert_int_equal(vec_get_params(ix)->ef_runtime, 10);
    double r = recall_gt(ix, &fm, 0);
    print_message("fmnist1k recall@10 at default EF_RUNTIME: %.4f\n", r);
    assert_true(r >= 0.95);
    vec_free(ix);
}

static void test_recall_bigann10k(void **state)
{
    (void)state;
    vec_index *ix = make(VEC_L2, bg.dim, 0, 0);
    add_rows(ix, &bg, 0, bg.n, 0);
    double r = recall_gt(ix, &bg, 0);
    print_message("bigann10k recall@10 at default EF_RUNTIME: %.4f\n", r);
    assert_true(r >= 0.95);
    /* a query's nearest neighbour is itself (queries are base[0:100]), at distance 0 */
    vec_hit out[K];
    size_t n;
    assert_int_equal(vec_knn(ix, qrow(&bg, 5), K, 0, NULL, out, &n), 0);
    assert_int_equal(out[0].id, (uint32_t)bg.gt[5 * bg.gtk]);
    assert_true(out[0].dist == 0.0f);
    vec_free(ix);
}

/* ---- deletes ---- */

/* recall@10 of ix (ids = rows) against an exact scan of the live rows; every hit live. */
static double recall_live(vec_index *ix, const char *live)
{
    size_t hits = 0;
    for (uint32_t q = 0; q < bg.nq; q++) {
        vec_hit out[K];
        size_t n;
        uint32_t want[K];
        double wd[K];
        assert_int_equal(vec_knn(ix, qrow(&bg, q), K, 0, NULL, out, &n), 0);
        assert_int_equal(n, K);
        for (size_t i = 0; i < n; i++)
            assert_true(live[out[i].id] && vec_contains(ix, out[i].id));
        uint32_t nw = exact_knn(&bg, qrow(&bg, q), K, NULL, NULL, live, want, wd);
        hits += hits_vs(&bg, qrow(&bg, q), out, n, want, wd, nw, 0);
    }
    return (double)hits / (bg.nq * K);
}

static void test_delete_reinsert(void **state)
{
    (void)state;
    vec_index *fresh = make(VEC_L2, bg.dim, 0, 0);
    add_rows(fresh, &bg, 0, bg.n, 0);
    size_t fresh_mem = vec_memory(fresh);
    vec_free(fresh);

    vec_index *ix = make(VEC_L2, bg.dim, 0, 0);
    add_rows(ix, &bg, 0, bg.n, 0);
    /* delete 30%, chosen by a fixed shuffle; queries' own rows (0..99) included */
    char *live = xmalloc(bg.n);
    memset(live, 1, bg.n);
    uint64_t r = 12345;
    uint32_t ndel = 0;
    while (ndel < bg.n * 3 / 10) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t i = (uint32_t)(r >> 33) % bg.n;
        if (!live[i])
            continue;
        assert_int_equal(vec_delete(ix, i), 0);
        live[i] = 0;
        ndel++;
    }
    assert_int_equal(vec_count(ix), bg.n - ndel);
    for (uint32_t i = 0; i < bg.n; i++)
        if (!live[i]) {
            assert_int_equal(vec_delete(ix, i), ERR_NOTFOUND);
            assert_false(vec_contains(ix, i));
            break;
        }
    /* recall over what is left, against an exact scan of it, is what a fresh build of
     * just those rows gives (the deleted queries are no longer in the index, so both are
     * below the full set's); no deleted id comes back */
    double rec = recall_live(ix, live);
    vec_index *fresh_live = make(VEC_L2, bg.dim, 0, 0);
    for (uint32_t i = 0; i < bg.n; i++)
        if (live[i])
            assert_int_equal(vec_add(fresh_live, i, row(&bg, i)), 0);
    double rec_fresh = recall_live(fresh_live, live);
    vec_free(fresh_live);
    print_message("recall@10 after deleting 30%%: %.4f (a fresh build of the rest: %.4f)\n", rec,
                  rec_fresh);
    assert_true(rec >= rec_fresh - 0.01);
    /* the deleted rows come back under new ids: the same set as the fresh build */
    uint32_t *new_row = xmalloc(ndel * sizeof(uint32_t)), nnew = 0;
    for (uint32_t i = 0; i < bg.n; i++)
        if (!live[i]) {
            assert_int_equal(vec_add(ix, bg.n + nnew, row(&bg, i)), 0);
            new_row[nnew++] = i;
        }
    assert_int_equal(vec_count(ix), bg.n);
    size_t mem = vec_memory(ix);
    print_message("memory: fresh %zu, after churn %zu\n", fresh_mem, mem);
    assert_true(mem <= fresh_mem * 1.10);
    size_t hits = 0;
    for (uint32_t q = 0; q < bg.nq; q++) {
        vec_hit out[K];
        size_t n;
        uint32_t want[K];
        double wd[K];
        assert_int_equal(vec_knn(ix, qrow(&bg, q), K, 0, NULL, out, &n), 0);
        for (size_t i = 0; i < n; i++)
            out[i].id = out[i].id >= bg.n ? new_row[out[i].id - bg.n] : out[i].id;
        uint32_t nw = exact_knn(&bg, qrow(&bg, q), K, NULL, NULL, NULL, want, wd);
        hits += hits_vs(&bg, qrow(&bg, q), out, n, want, wd, nw, 0);
    }
    rec = (double)hits / (bg.nq * K);
    print_message("recall@10 after re-inserting: %.4f\n", rec);
    assert_true(rec >= 0.95);
    xfree(new_row);
    xfree(live);
    vec_free(ix);
}

static void test_delete_all_and_errors(void **state)
{
    (void)state;
    vec_index *ix = make(VEC_L2, bg.dim, 4, 20);
    add_rows(ix, &bg, 0, 300, 0);
    assert_int_equal(vec_delete(ix, 300), ERR_NOTFOUND);
    assert_int_equal(vec_add(ix, UINT32_MAX, row(&bg, 0)), ERR_LIMIT);
    /* replacing a vector keeps the count and answers with the new one */
    assert_int_equal(vec_add(ix, 7, row(&bg, 200)), 0);
    assert_int_equal(vec_count(ix), 300);
    vec_hit out[K];
    size_t n;
    assert_int_equal(vec_knn(ix, row(&bg, 200), 2, 50, NULL, out, &n), 0);
    assert_int_equal(n, 2);
    assert_true(out[0].dist == 0 && out[1].dist == 0);
    assert_true((out[0].id == 7 && out[1].id == 200) || (out[0].id == 200 && out[1].id == 7));
    for (uint32_t i = 0; i < 300; i++) {
        assert_int_equal(vec_delete(ix, i), 0);
        if (i % 37 == 0) { /* the graph keeps answering k as it shrinks */
            uint32_t left = 299 - i, want = left < K ? left : K;
            assert_int_equal(vec_knn(ix, qrow(&bg, 1), K, 0, NULL, out, &n), 0);
            assert_int_equal(n, want);
        }
    }
    assert_int_equal(vec_count(ix), 0);
    assert_int_equal(vec_knn(ix, qrow(&bg, 1), K, 0, NULL, out, &n), 0);
    assert_int_equal(n, 0);
    add_rows(ix, &bg, 0, 50, 0);
    assert_int_equal(vec_knn(ix, qrow(&bg, 1), K, 0, NULL, out, &n), 0);
    assert_int_equal(n, K);
    assert_int_equal(out[0].id, 1);
    vec_free(ix);

    vec_params p = {.kind = VEC_HNSW, .metric = VEC_L2, .dim = 4, .m = 1};
    char err[128] = "";
    assert_int_equal(vec_create(&p, &ix, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "M"));
}

/* ---- filters ---- */

typedef struct fctx {
    const set *s;
    int label;         /* fmnist label wanted, or -1 */
    uint32_t mod, rem; /* else id % mod == rem */
} fctx;

static int keep_fn(void *ctx, uint32_t id)
{
    const fctx *c = ctx;
    if (c->label >= 0)
        return c->s->labels[id] == c->label;
    return id % c->mod == c->rem;
}

/* recall@10 of filtered searches against an exact filtered scan; each must return
 * min(k, matching) hits, all passing. with_ids gives the passing ids too. */
static double filtered_recall(vec_index *ix, const set *s, fctx *c, int with_ids)
{
    uint32_t *ids = xmalloc(s->n * sizeof(uint32_t)), nids = 0;
    for (uint32_t i = 0; i < s->n; i++)
        if (keep_fn(c, i))
            ids[nids++] = i;
    vec_filter f = {keep_fn, c, with_ids ? ids : NULL, with_ids ? nids : 0};
    size_t hits = 0, total = 0;
    for (uint32_t q = 0; q < s->nq; q++) {
        vec_hit out[K];
        size_t n;
        uint32_t want[K];
        double wd[K];
        assert_int_equal(vec_knn(ix, qrow(s, q), K, 0, &f, out, &n), 0);
        uint32_t nw = exact_knn(s, qrow(s, q), K, keep_fn, c, NULL, want, wd);
        assert_int_equal(n, nw);
        for (size_t i = 0; i < n; i++)
            assert_true(keep_fn(c, out[i].id));
        hits += hits_vs(s, qrow(s, q), out, n, want, wd, nw, 0);
        total += nw;
    }
    xfree(ids);
    return (double)hits / total;
}

static void test_filter_fmnist_labels(void **state)
{
    (void)state;
    vec_index *ix = make(VEC_L2, fm.dim, 0, 0);
    add_rows(ix, &fm, 0, fm.n, 0);
    for (int label = 0; label < 10; label += 3) { /* each class is about 10% */
        fctx c = {&fm, label, 0, 0};
        double r1 = filtered_recall(ix, &fm, &c, 0), r2 = filtered_recall(ix, &fm, &c, 1);
        print_message("fmnist1k label %d: recall@10 %.4f (predicate), %.4f (ids)\n", label, r1, r2);
        assert_true(r1 >= 0.95 && r2 >= 0.95);
    }
    vec_free(ix);
}

static void test_filter_bigann(void **state)
{
    (void)state;
    vec_index *ix = make(VEC_L2, bg.dim, 0, 0);
    add_rows(ix, &bg, 0, bg.n, 0);
    /* 10% and 0.1% (10 of 10,000: k of them, all must come back), by predicate and by ids;
     * 50% by ids is walked, not scanned */
    fctx c10 = {&bg, -1, 10, 3}, c01 = {&bg, -1, 1000, 7}, c50 = {&bg, -1, 2, 1};
    double r[5] = {filtered_recall(ix, &bg, &c10, 0), filtered_recall(ix, &bg, &c10, 1),
                   filtered_recall(ix, &bg, &c01, 0), filtered_recall(ix, &bg, &c01, 1),
                   filtered_recall(ix, &bg, &c50, 1)};
    print_message("bigann10k filters: 10%% %.4f/%.4f, 0.1%% %.4f/%.4f, 50%% %.4f\n", r[0], r[1],
                  r[2], r[3], r[4]);
    for (int i = 0; i < 5; i++)
        assert_true(r[i] >= 0.95);
    /* an empty id list passes nothing */
    vec_filter none = {NULL, NULL, (const uint32_t[]){0}, 0};
    vec_hit out[K];
    size_t n = 99;
    assert_int_equal(vec_knn(ix, qrow(&bg, 0), K, 0, &none, out, &n), 0);
    assert_int_equal(n, 0);
    vec_free(ix);
}

/* ---- range ---- */

static void test_range(void **state)
{
    (void)state;
    vec_index *ix = make(VEC_L2, bg.dim, 0, 0);
    add_rows(ix, &bg, 0, bg.n, 0);
    size_t found = 0, want = 0;
    for (uint32_t q = 0; q < bg.nq; q += 4) {
        const float *qv = qrow(&bg, q);
        /* the radius of the 30th true neighbour */
        float radius = (float)l2d(qv, row(&bg, bg.gt[(size_t)q * bg.gtk + 29]), bg.dim);
        vec_hit *hits = NULL;
        size_t n = 0;
        assert_int_equal(vec_range(ix, qv, radius, 0, NULL, 1000, &hits, &n), 0);
        for (size_t i = 0; i < n; i++) {
            assert_true(hits[i].dist <= radius);
            assert_true(i == 0 || hits[i - 1].dist <= hits[i].dist);
            assert_true(i == 0 || hits[i - 1].id != hits[i].id);
        }
        for (uint32_t i = 0; i < bg.n; i++)
            want += vec_distance(VEC_L2, qv, row(&bg, i), bg.dim) <= radius;
        found += n;
        xfree(hits);
        /* at most max, the nearest ones */
        assert_int_equal(vec_range(ix, qv, radius, 0, NULL, 5, &hits, &n), 0);
        assert_int_equal(n, 5);
        assert_true(hits[0].dist == 0.0f); /* the query is a base row */
        xfree(hits);
        /* with a filter: only passing ids */
        fctx c = {&bg, -1, 2, 0};
        vec_filter f = {keep_fn, &c, NULL, 0};
        assert_int_equal(vec_range(ix, qv, radius, 0, &f, 1000, &hits, &n), 0);
        for (size_t i = 0; i < n; i++)
            assert_true(hits[i].id % 2 == 0 && hits[i].dist <= radius);
        xfree(hits);
    }
    print_message("range: %zu of %zu within the radius found\n", found, want);
    assert_true(found >= want * 0.95);
    vec_free(ix);
}

/* ---- IP and COSINE ---- */

static void test_ip_cosine(void **state)
{
    (void)state;
    int metrics[2] = {VEC_IP, VEC_COSINE};
    uint32_t n = 2000;
    for (int mi = 0; mi < 2; mi++) {
        vec_index *ix = make(metrics[mi], bg.dim, 0, 0);
        /* normalised copies, so that IP ranks as COSINE does and both have a true order */
        float *v = xmalloc((size_t)n * bg.dim * sizeof(float));
        memcpy(v, bg.base, (size_t)n * bg.dim * sizeof(float));
        for (uint32_t i = 0; i < n; i++) {
            assert_int_equal(vec_normalize(v + (size_t)i * bg.dim, bg.dim), 0);
            float *a = metrics[mi] == VEC_COSINE ? (float *)row(&bg, i) : v + (size_t)i * bg.dim;
            assert_int_equal(vec_add(ix, i, a), 0);
        }
        size_t hits = 0;
        for (uint32_t q = 0; q < 50; q++) {
            const float *qv = v + (size_t)(q * 7) * bg.dim;
            vec_hit out[K];
            size_t got;
            assert_int_equal(vec_knn(ix, qv, K, 0, NULL, out, &got), 0);
            assert_int_equal(got, K);
            float d[K];
            for (int j = 0; j < K; j++) /* the K-th best exact distance */
                d[j] = INFINITY;
            for (uint32_t i = 0; i < n; i++) {
                float x = vec_distance(VEC_IP, qv, v + (size_t)i * bg.dim, bg.dim);
                for (int j = 0; j < K; j++)
                    if (x < d[j]) {
                        memmove(d + j + 1, d + j, (K - 1 - j) * sizeof(float));
                        d[j] = x;
                        break;
                    }
            }
            for (int j = 0; j < K; j++) {
                float x = vec_distance(VEC_IP, qv, v + (size_t)out[j].id * bg.dim, bg.dim);
                assert_true(fabsf(x - out[j].dist) < 1e-4f);
                hits += x <= d[K - 1] + 1e-6f;
            }
        }
        print_message("metric %d: recall@10 %.4f\n", metrics[mi], (double)hits / (50 * K));
        assert_true(hits >= 0.95 * 50 * K);
        if (metrics[mi] == VEC_COSINE) {
            float zero[128] = {0};
            assert_int_equal(vec_add(ix, 5000, zero), ERR_INVAL);
        }
        xfree(v);
        vec_free(ix);
    }
}

/* ---- snapshots ---- */

static void same_answers(vec_index *a, vec_index *b, const set *s)
{
    for (uint32_t q = 0; q < s->nq; q++) {
        vec_hit x[K], y[K];
        size_t nx, ny;
        assert_int_equal(vec_knn(a, qrow(s, q), K, 0, NULL, x, &nx), 0);
        assert_int_equal(vec_knn(b, qrow(s, q), K, 0, NULL, y, &ny), 0);
        assert_int_equal(nx, ny);
        assert_memory_equal(x, y, nx * sizeof(vec_hit));
    }
}

static void test_save_load(void **state)
{
    (void)state;
    vec_index *ix = make(VEC_L2, fm.dim, 8, 100);
    add_rows(ix, &fm, 0, fm.n, 0);
    for (uint32_t i = 0; i < fm.n; i += 5) /* holes and one-way links in the snapshot */
        assert_int_equal(vec_delete(ix, i), 0);
    buf b;
    buf_init(&b);
    assert_int_equal(vec_save(ix, &b), 0);
    vec_index *back = NULL;
    char err[256] = "";
    assert_int_equal(vec_load(b.data, b.len, &back, err, sizeof err), 0);
    assert_int_equal(vec_count(back), vec_count(ix));
    assert_int_equal(vec_get_params(back)->m, 8);
    same_answers(ix, back, &fm);
    /* the loaded graph keeps working: the same changes on both give the same answers */
    for (uint32_t i = 0; i < fm.n; i += 5) {
        assert_int_equal(vec_add(ix, i, row(&fm, i)), 0);
        assert_int_equal(vec_add(back, i, row(&fm, i)), 0);
    }
    for (uint32_t i = 1; i < fm.n; i += 3) {
        assert_int_equal(vec_delete(ix, i), 0);
        assert_int_equal(vec_delete(back, i), 0);
    }
    same_answers(ix, back, &fm);
    vec_free(back);
    /* an empty index round-trips */
    vec_index *empty = make(VEC_IP, 3, 0, 0), *e2 = NULL;
    buf eb;
    buf_init(&eb);
    assert_int_equal(vec_save(empty, &eb), 0);
    assert_int_equal(vec_load(eb.data, eb.len, &e2, err, sizeof err), 0);
    assert_int_equal(vec_count(e2), 0);
    buf_free(&eb);
    vec_free(empty);
    vec_free(e2);
    /* any flipped byte or a cut is refused */
    for (size_t off = 0; off < b.len; off += b.len / 97 + 1) {
        b.data[off] ^= 0x20;
        back = NULL;
        assert_int_equal(vec_load(b.data, b.len, &back, err, sizeof err), ERR_CORRUPT);
        assert_null(back);
        b.data[off] ^= 0x20;
    }
    assert_int_equal(vec_load(b.data, b.len - 1, &back, err, sizeof err), ERR_CORRUPT);
    buf_free(&b);
    vec_free(ix);
}

/* The payload checks behind the checksum: a payload written by ops->save, altered at a
 * field, loaded by ops->load into an empty index. */
static int load_payload(const buf *p, uint32_t dim)
{
    vec_index *ix = make(VEC_L2, dim, 4, 20);
    char err[256] = "";
    int rc = ix->ops->load(ix, p->data, p->len, err, sizeof err);
    if (rc)
        assert_true(strstr(err, "HNSW snapshot") != NULL);
    vec_free(ix);
    return rc;
}

static void put32(buf *b, size_t off, uint32_t v)
{
    memcpy(b->data + off, &v, 4);
}

static void test_payload_checks(void **state)
{
    (void)state;
    const uint32_t dim = 4;
    vec_index *ix = make(VEC_L2, dim, 4, 20);
    float v[4];
    for (uint32_t i = 0; i < 40; i++) {
        for (uint32_t j = 0; j < dim; j++)
            v[j] = (float)((i * 7 + j * 3) % 11);
        assert_int_equal(vec_add(ix, i * 2, v), 0);
    }
    buf good;
    buf_init(&good);
    assert_int_equal(ix->ops->save(ix, &good), 0);
    assert_int_equal(load_payload(&good, dim), 0);
    /* header: version, count, entry, max level; first node at 24: id, level, vector, n0,
     * links */
    size_t node = 24, n0 = node + 8 + dim * 4, link = n0 + 4;
    uint32_t first_n0;
    memcpy(&first_n0, good.data + n0, 4);
    assert_true(first_n0 > 0);
    struct {
        size_t off;
        uint32_t val;
    } bad[] = {
        {0, 2},                 /* version */
        {4, 1000000},           /* count past the bytes */
        {8, 12345},             /* entry point absent */
        {12, 31},               /* max level not the entry's */
        {node, 2},              /* id repeated (node ids are even, 2 is another node's) */
        {node, 1u << 30},       /* id out of range */
        {node + 4, 40},         /* level out of range */
        {n0, 9},                /* more links than 2M */
        {link, 999},            /* link to an absent id */
        {link, 0},              /* link to itself (the first node is id 0) */
        {node + 8, 0x7fc00000}, /* NaN in the vector */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf b;
        buf_init(&b);
        buf_append(&b, good.data, good.len);
        uint32_t id0;
        memcpy(&id0, good.data + node, 4);
        assert_int_equal(id0, 0);
        put32(&b, bad[i].off, bad[i].val);
        assert_int_equal(load_payload(&b, dim), ERR_CORRUPT);
        buf_free(&b);
    }
    /* a repeated link, trailing bytes, a cut */
    if (first_n0 >= 2) {
        buf b;
        buf_init(&b);
        buf_append(&b, good.data, good.len);
        memcpy(b.data + link + 4, b.data + link, 4);
        assert_int_equal(load_payload(&b, dim), ERR_CORRUPT);
        buf_free(&b);
    }
    buf_appendc(&good, 0);
    assert_int_equal(load_payload(&good, dim), ERR_CORRUPT);
    good.len -= 2;
    assert_int_equal(load_payload(&good, dim), ERR_CORRUPT);
    buf_free(&good);
    vec_free(ix);
}

/* ---- readers beside a writer ---- */

typedef struct rd {
    vec_index *ix;
    int *stop;
    size_t searches, bad;
} rd;

static void *reader(void *arg)
{
    rd *r = arg;
    uint32_t q = 0;
    /* bounded: a reader-preferring rwlock could otherwise keep the writer out */
    while ((!__atomic_load_n(r->stop, __ATOMIC_SEQ_CST) || r->searches < 20) &&
           r->searches < 3000) {
        vec_hit out[K];
        size_t n = 0;
        const float *qv = qrow(&bg, q++ % bg.nq);
        if (vec_knn(r->ix, qv, K, 0, NULL, out, &n) || n != K)
            r->bad++;
        for (size_t i = 1; i < n; i++)
            if (out[i - 1].dist > out[i].dist || out[i].id >= 2 * bg.n)
                r->bad++;
        r->searches++;
    }
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    (void)state;
    const uint32_t base = 1500;
    vec_index *ix = make(VEC_L2, bg.dim, 8, 40);
    add_rows(ix, &bg, 0, base, 0);
    int stop = 0;
    rd rs[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        rs[i] = (rd){ix, &stop, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, reader, &rs[i]), 0);
    }
    /* the writer: adds new rows, deletes old ones, replaces some */
    for (uint32_t i = 0; i < 600; i++) {
        assert_int_equal(vec_add(ix, base + i, row(&bg, base + i)), 0);
        assert_int_equal(vec_delete(ix, i), 0);
        if (i % 10 == 0)
            assert_int_equal(vec_add(ix, base + i, row(&bg, i)), 0);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rs[i].bad, 0);
        total += rs[i].searches;
    }
    print_message("concurrent: %zu searches beside 1,260 writes\n", total);
    assert_int_equal(vec_count(ix), base);
    assert_true(vec_memory(ix) > 0);
    vec_free(ix);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recall_fmnist1k),
        cmocka_unit_test(test_recall_bigann10k),
        cmocka_unit_test(test_delete_reinsert),
        cmocka_unit_test(test_delete_all_and_errors),
        cmocka_unit_test(test_filter_fmnist_labels),
        cmocka_unit_test(test_filter_bigann),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_ip_cosine),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_payload_checks),
        cmocka_unit_test(test_concurrent_readers),
    };
    if (getenv("TEST_FILTER")) /* one test by name, while working on it */
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    size_t n = skip_tests(tests, sizeof tests / sizeof tests[0]);
    return _cmocka_run_group_tests("test_hnsw", tests, n, setup, teardown);
}
