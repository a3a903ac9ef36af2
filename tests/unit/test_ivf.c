/* test_ivf.c: unit tests for the IVF kind (index/ivf.c) and the FAISS shim under it
 * (index/faiss_shim.cpp), on bigann10k with a FLAT as the exact oracle: recall@10 of
 * IVF64,Flat against the ground truth, IVF64,PQ16 trained and answering, exact answers
 * before training, deletes and replacing adds never answered, filters by id list and by
 * predicate still returning k, range queries, IP and COSINE distances, snapshots of both
 * states round-tripped and corruptions refused, bad factory strings refused with FAISS's
 * text, and a failed training that changes nothing.
 * The data set is read from $QUIVER_DATA (default ../shared/data). */
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
#include "index/faiss_shim.h"
#include "index/index.h"

#define OK(expr) assert_int_equal((expr), 0)
#define K 10

/* libfaiss 1.7.3's index_factory leaks the coarse quantizer it has built when the code part
 * then throws (e.g. "IVF16,PQ7" on dim 128): FAISS's leak, not ours, reported by
 * LeakSanitizer when the bad factory strings below are tried. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:parse_coarse_quantizer\n";
}

/* ---- the data set ---- */

static float *base, *query;
static int32_t *gt;
static uint32_t dim, nbase, nquery, kgt;

static void *read_vecs(const char *name, uint32_t *d, uint32_t *count)
{
    const char *root = getenv("QUIVER_DATA") ? getenv("QUIVER_DATA") : "../shared/data";
    char path[512];
    snprintf(path, sizeof path, "%s/vectors/bigann10k/%s", root, name);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot open %s (set QUIVER_DATA to the shared data folder)", path);
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    int32_t d0;
    assert_int_equal(fread(&d0, 4, 1, fp), 1);
    uint32_t n = (uint32_t)(size / (4 * ((long)d0 + 1)));
    char *out = xmalloc((size_t)n * d0 * 4);
    fseek(fp, 0, SEEK_SET);
    for (uint32_t i = 0; i < n; i++) {
        int32_t di;
        assert_int_equal(fread(&di, 4, 1, fp), 1);
        assert_int_equal(di, d0);
        assert_int_equal(fread(out + (size_t)i * d0 * 4, 4, (size_t)d0, fp), (size_t)d0);
    }
    fclose(fp);
    *d = (uint32_t)d0;
    *count = n;
    return out;
}

static int load_data(void **state)
{
    (void)state;
    uint32_t d2, n2;
    base = read_vecs("bigann10k_base.fvecs", &dim, &nbase);
    query = read_vecs("bigann10k_query.fvecs", &d2, &nquery);
    gt = read_vecs("bigann10k_groundtruth.ivecs", &kgt, &n2);
    return d2 != dim || n2 != nquery || kgt < K;
}

static int free_data(void **state)
{
    (void)state;
    xfree(base);
    xfree(query);
    xfree(gt);
    return 0;
}

static const float *vec(uint32_t i)
{
    return base + (size_t)i * dim;
}

/* ---- helpers ---- */

static vec_index *make_ex(const char *factory, int metric, uint32_t d, uint32_t nprobe)
{
    vec_params p = {
        .kind = VEC_IVF, .metric = metric, .dim = d, .ef_runtime = nprobe, .factory = factory};
    vec_index *ix = NULL;
    char err[256] = "";
    int rc = vec_create(&p, &ix, err, sizeof err);
    if (rc)
        fail_msg("vec_create(%s): %s (%s)", factory, err_str(rc), err);
    return ix;
}

static vec_index *make(const char *factory, uint32_t nprobe)
{
    return make_ex(factory, VEC_L2, dim, nprobe);
}

static vec_index *make_flat(int metric, uint32_t d)
{
    vec_params p = {.kind = VEC_FLAT, .metric = metric, .dim = d};
    vec_index *ix = NULL;
    OK(vec_create(&p, &ix, NULL, 0));
    return ix;
}

/* Adds base vectors [from, to) under their row numbers. */
static void add_range(vec_index *ix, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to; i++)
        OK(vec_add(ix, i, vec(i)));
}

/* Whether every query gets the FLAT's exact answer: at each rank the same distance (within
 * rounding), and the same id unless the distance is a tie. */
static void assert_same_as(vec_index *ix, vec_index *flat, const vec_filter *f, uint32_t k)
{
    vec_hit *a = xmalloc(k * sizeof *a), *b = xmalloc(k * sizeof *b);
    for (uint32_t q = 0; q < nquery; q++) {
        size_t na, nb;
        OK(vec_knn(ix, query + (size_t)q * dim, k, 0, f, a, &na));
        OK(vec_knn(flat, query + (size_t)q * dim, k, 0, f, b, &nb));
        assert_int_equal(na, nb);
        for (size_t i = 0; i < na; i++) {
            float tol = 1e-5f * fabsf(b[i].dist) + 1e-4f;
            if (fabsf(a[i].dist - b[i].dist) > tol)
                fail_msg("query %u rank %zu: id %u dist %g, exact id %u dist %g", q, i, a[i].id,
                         a[i].dist, b[i].id, b[i].dist);
            int tie = (i + 1 < na && fabsf(b[i + 1].dist - b[i].dist) <= tol) ||
                      (i > 0 && fabsf(b[i - 1].dist - b[i].dist) <= tol);
            if (!tie)
                assert_int_equal(a[i].id, b[i].id);
        }
    }
    xfree(a);
    xfree(b);
}

/* Recall@K against the ground truth, counting a hit whose exact distance ties the K-th. */
static double recall(vec_index *ix, uint32_t nprobe)
{
    size_t hits = 0;
    for (uint32_t q = 0; q < nquery; q++) {
        const float *qv = query + (size_t)q * dim;
        vec_hit h[K];
        size_t n;
        OK(vec_knn(ix, qv, K, nprobe, NULL, h, &n));
        assert_int_equal(n, K);
        float kth = vec_l2sq(qv, vec((uint32_t)gt[(size_t)q * kgt + K - 1]), dim);
        for (size_t i = 0; i < n; i++) {
            int found = vec_l2sq(qv, vec(h[i].id), dim) <= kth;
            for (size_t j = 0; j < K && !found; j++)
                found = h[i].id == (uint32_t)gt[(size_t)q * kgt + j];
            hits += found;
            if (i)
                assert_true(h[i - 1].dist <= h[i].dist);
        }
    }
    return (double)hits / ((double)nquery * K);
}

/* ---- tests ---- */

static void test_ivf_flat_recall(void **state)
{
    (void)state;
    vec_index *ix = make("IVF64,Flat", 0);
    add_range(ix, 0, nbase);
    assert_int_equal(vec_count(ix), nbase);
    double r16 = recall(ix, 16), r64 = recall(ix, 64);
    print_message("IVF64,Flat recall@10: %.3f at nprobe 16, %.3f at 64\n", r16, r64);
    assert_true(r16 >= 0.9);
    assert_true(r64 >= 0.99); /* every list probed: exact, ties aside */
    /* Every list probed, IVF,Flat is the FLAT. */
    vec_index *flat = make_flat(VEC_L2, dim);
    add_range(flat, 0, nbase);
    vec_index *all = make("IVF64,Flat", 64);
    add_range(all, 0, nbase);
    assert_same_as(all, flat, NULL, K);
    vec_free(all);
    vec_free(flat);
    vec_free(ix);
}

static void test_ivf_pq(void **state)
{
    (void)state;
    vec_index *ix = make("IVF64,PQ16", 16);
    vec_index *flat = make_flat(VEC_L2, dim);
    add_range(ix, 0, nbase);
    add_range(flat, 0, nbase);
    assert_int_equal(vec_count(ix), nbase);
    double r = recall(ix, 16);
    print_message("IVF64,PQ16 recall@10: %.3f at nprobe 16\n", r);
    assert_true(r >= 0.3); /* 16 bytes a vector instead of 512 */
    /* Each query is a base vector: its own id comes first or nearly. */
    size_t self = 0;
    for (uint32_t q = 0; q < nquery; q++) {
        vec_hit h[K];
        size_t n;
        OK(vec_knn(ix, query + (size_t)q * dim, K, 0, NULL, h, &n));
        for (size_t i = 0; i < n; i++)
            self += h[i].id == q;
    }
    assert_true(self >= nquery * 9 / 10);
    assert_true(vec_memory(ix) < vec_memory(flat) / 4);
    vec_free(flat);
    vec_free(ix);
}

static void test_before_training_exact(void **state)
{
    (void)state;
    vec_index *ix = make("IVF64,Flat", 1), *flat = make_flat(VEC_L2, dim);
    add_range(ix, 0, 2000); /* fewer than 39 * 64 */
    add_range(flat, 0, 2000);
    OK(vec_delete(ix, 7));
    OK(vec_delete(flat, 7));
    assert_int_equal(vec_delete(ix, 7), ERR_NOTFOUND);
    assert_int_equal(vec_count(ix), 1999);
    assert_same_as(ix, flat, NULL, K);
    vec_hit *out;
    size_t n;
    OK(vec_range(ix, query, 60000, 0, NULL, 100, &out, &n));
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++)
        assert_true(out[i].dist <= 60000);
    xfree(out);
    /* Training keeps everything (ids, deletes) and, all lists probed, the same answers. */
    vec_index *all = make("IVF64,Flat", 64);
    add_range(all, 0, 2000);
    OK(vec_delete(all, 7));
    add_range(all, 2000, 3000);
    add_range(flat, 2000, 3000);
    assert_false(vec_contains(all, 7));
    assert_int_equal(vec_count(all), 2999);
    assert_same_as(all, flat, NULL, K);
    vec_free(all);
    vec_free(flat);
    vec_free(ix);
}

static void test_deletes_and_replaces(void **state)
{
    (void)state;
    vec_index *ix = make("IVF32,Flat", 32), *flat = make_flat(VEC_L2, dim);
    add_range(ix, 0, nbase);
    add_range(flat, 0, nbase);
    size_t full = vec_memory(ix);
    /* Delete 30% (every id with id % 10 < 3, queries included), then check. */
    for (uint32_t i = 0; i < nbase; i++)
        if (i % 10 < 3) {
            OK(vec_delete(ix, i));
            OK(vec_delete(flat, i));
        }
    assert_int_equal(vec_count(ix), nbase - nbase * 3 / 10);
    assert_false(vec_contains(ix, 0));
    assert_true(vec_contains(ix, 3));
    assert_int_equal(vec_delete(ix, 0), ERR_NOTFOUND);
    assert_int_equal(vec_delete(ix, nbase + 5), ERR_NOTFOUND);
    assert_true(vec_memory(ix) < full * 9 / 10); /* the entries left FAISS */
    assert_same_as(ix, flat, NULL, K);
    /* Replace: id 5 now holds vector 0's values; id 1 is back with vector 2's. */
    OK(vec_add(ix, 5, vec(0)));
    OK(vec_add(flat, 5, vec(0)));
    OK(vec_add(ix, 1, vec(2)));
    OK(vec_add(flat, 1, vec(2)));
    assert_same_as(ix, flat, NULL, K);
    vec_hit h[K];
    size_t n;
    OK(vec_knn(ix, vec(5), K, 0, NULL, h, &n));
    for (size_t i = 0; i < n; i++)
        assert_true(h[i].id != 5 || h[i].dist > 0); /* its old vector is gone */
    /* Many replaces of one id: one live entry, old ones purged as they pile up. */
    for (int i = 0; i < 300; i++)
        OK(vec_add(ix, 9, vec((uint32_t)(i % 50 + 100))));
    OK(vec_add(flat, 9, vec(149)));
    assert_same_as(ix, flat, NULL, K);
    assert_int_equal(vec_count(ix), vec_count(flat));
    vec_free(flat);
    vec_free(ix);
}

static int keep_odd(void *ctx, uint32_t id)
{
    (void)ctx;
    return id & 1;
}

static void test_filters(void **state)
{
    (void)state;
    vec_index *ix = make("IVF64,Flat", 2), *flat = make_flat(VEC_L2, dim);
    add_range(ix, 0, nbase);
    add_range(flat, 0, nbase);
    /* 10% of the ids, and 0.1%: still K hits, all passing; the selective one exact. */
    uint32_t *ids = xmalloc(nbase * sizeof *ids);
    size_t nids = 0;
    for (uint32_t i = 0; i < nbase; i += 10)
        ids[nids++] = i;
    vec_filter tenth = {.ids = ids, .nids = nids};
    size_t good = 0, total = 0;
    for (uint32_t q = 0; q < nquery; q++) {
        vec_hit a[K], b[K];
        size_t na, nb;
        OK(vec_knn(ix, query + (size_t)q * dim, K, 0, &tenth, a, &na));
        OK(vec_knn(flat, query + (size_t)q * dim, K, 0, &tenth, b, &nb));
        assert_int_equal(na, K);
        for (size_t i = 0; i < na; i++) {
            assert_int_equal(a[i].id % 10, 0);
            for (size_t j = 0; j < nb; j++)
                good += a[i].id == b[j].id;
        }
        total += nb;
    }
    print_message("IVF64,Flat nprobe 2, a 10%% id filter: recall@10 %.3f\n", (double)good / total);
    assert_true((double)good / total >= 0.9);
    vec_filter thin = {.ids = ids, .nids = nids / 100};
    assert_same_as(ix, flat, &thin, K);
    /* A predicate, and both at once. */
    vec_filter odd = {.keep = keep_odd};
    for (uint32_t q = 0; q < nquery; q++) {
        vec_hit a[K];
        size_t na;
        OK(vec_knn(ix, query + (size_t)q * dim, K, 0, &odd, a, &na));
        assert_int_equal(na, K);
        for (size_t i = 0; i < na; i++)
            assert_int_equal(a[i].id & 1, 1);
    }
    for (size_t i = 0; i < nids; i++)
        ids[i] = (uint32_t)(2 * i + 1); /* odd, so the predicate keeps them all */
    vec_filter both = {.keep = keep_odd, .ids = ids, .nids = 5};
    vec_hit a[K];
    size_t na;
    OK(vec_knn(ix, query, K, 0, &both, a, &na));
    assert_int_equal(na, 5);
    xfree(ids);
    vec_free(flat);
    vec_free(ix);
}

static void test_range(void **state)
{
    (void)state;
    vec_index *ix = make("IVF16,Flat", 16), *flat = make_flat(VEC_L2, dim);
    add_range(ix, 0, 5000);
    add_range(flat, 0, 5000);
    for (uint32_t q = 0; q < 20; q++) {
        vec_hit *a, *b;
        size_t na, nb;
        const float *qv = query + (size_t)q * dim;
        OK(vec_range(ix, qv, 70000, 0, NULL, 1000, &a, &na));
        OK(vec_range(flat, qv, 70000, 0, NULL, 1000, &b, &nb));
        assert_int_equal(na, nb);
        for (size_t i = 0; i < na; i++)
            assert_int_equal(a[i].id, b[i].id);
        xfree(a);
        xfree(b);
        /* An exact distance as the radius is inside it. */
        vec_hit h[K];
        size_t n;
        OK(vec_knn(flat, qv, K, 0, NULL, h, &n));
        OK(vec_range(ix, qv, h[K - 1].dist, 0, NULL, 3, &a, &na));
        assert_int_equal(na, 3);
        assert_int_equal(a[0].id, h[0].id);
        xfree(a);
    }
    vec_free(flat);
    vec_free(ix);
}

static void test_ip_and_cosine(void **state)
{
    (void)state;
    const int metrics[] = {VEC_IP, VEC_COSINE};
    for (int m = 0; m < 2; m++) {
        vec_index *ix = make_ex("IVF16,Flat", metrics[m], dim, 16);
        vec_index *flat = make_flat(metrics[m], dim);
        /* Scaled down so that dot products stay near 1 for IP. */
        float *v = xmalloc(dim * sizeof *v);
        for (uint32_t i = 0; i < 3000; i++) {
            for (uint32_t j = 0; j < dim; j++)
                v[j] = vec(i)[j] / 512.0f;
            OK(vec_add(ix, i, v));
            OK(vec_add(flat, i, v));
        }
        xfree(v);
        assert_same_as(ix, flat, NULL, K);
        vec_free(flat);
        vec_free(ix);
    }
    vec_index *ix = make_ex("IVF16,Flat", VEC_COSINE, 4, 16);
    float zero[4] = {0};
    assert_int_equal(vec_add(ix, 1, zero), ERR_INVAL);
    vec_free(ix);
}

/* Saves ix, loads it back, and checks the copy answers as ix does. */
static vec_index *round_trip(vec_index *ix)
{
    buf b;
    buf_init(&b);
    OK(vec_save(ix, &b));
    vec_index *back = NULL;
    char err[256] = "";
    int rc = vec_load(b.data, b.len, &back, err, sizeof err);
    if (rc)
        fail_msg("vec_load: %s (%s)", err_str(rc), err);
    assert_int_equal(vec_count(back), vec_count(ix));
    assert_same_as(back, ix, NULL, K);
    /* Every flipped byte or cut is refused (the CRC), never a crash. */
    for (size_t at = 0; at < b.len; at += b.len / 7 + 1) {
        vec_index *bad = NULL;
        b.data[at] ^= 0x40;
        assert_int_equal(vec_load(b.data, b.len, &bad, err, sizeof err), ERR_CORRUPT);
        b.data[at] ^= 0x40;
        assert_int_equal(vec_load(b.data, at, &bad, err, sizeof err), ERR_CORRUPT);
        assert_null(bad);
    }
    buf_free(&b);
    return back;
}

static void test_snapshots(void **state)
{
    (void)state;
    vec_index *ix = make("IVF64,SQ8", 8);
    add_range(ix, 0, 1000);
    OK(vec_delete(ix, 3));
    vec_index *back = round_trip(ix); /* kept, untrained */
    add_range(back, 1000, nbase);     /* trains after the load */
    add_range(ix, 1000, nbase);
    assert_same_as(back, ix, NULL, K);
    vec_free(back);
    for (uint32_t i = 0; i < 100; i++)
        OK(vec_delete(ix, i * 7));
    OK(vec_add(ix, 14, vec(20)));
    back = round_trip(ix); /* trained, with deletes and a replace */
    assert_false(vec_contains(back, 7));
    assert_true(vec_contains(back, 14));
    /* The generations came back: replacing after the load still hides the old entry. */
    OK(vec_add(back, 14, vec(21)));
    OK(vec_add(ix, 14, vec(21)));
    assert_same_as(back, ix, NULL, K);
    vec_free(back);
    vec_free(ix);
}

static void test_bad_factories(void **state)
{
    (void)state;
    const struct {
        const char *factory, *says;
    } bad[] = {
        {"bogus", "could not parse"},
        {"HNSW32", "not a supported IVF index"},
        {"IVF16,PQ8x4fs", "not a supported IVF index"},
        {"IVF16,RQ2x8", "not a supported IVF index"},
        {"IVF16,PQ7", "multiple of the number of subquantizers"},
        {"IVF16_HNSW8,PQ7", "multiple of the number of subquantizers"},
        {"IVF0,Flat", "numbers must be 1 to"},
        {"IVF16,PQ0", "numbers must be 1 to"}, /* FAISS would divide by zero: SIGFPE */
        {"IVF16,PQ8x17", "numbers must be 1 to"},
        {"IVF2000000,Flat", "numbers must be 1 to"},
        {"", "factory string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vec_params p = {.kind = VEC_IVF, .metric = VEC_L2, .dim = 128, .factory = bad[i].factory};
        vec_index *ix = NULL;
        char err[512] = "";
        assert_int_equal(vec_create(&p, &ix, err, sizeof err), ERR_INVAL);
        assert_null(ix);
        if (!strstr(err, bad[i].says))
            fail_msg("%s: '%s' does not say '%s'", bad[i].factory, err, bad[i].says);
    }
    vec_params p = {.kind = VEC_IVF, .metric = VEC_L2, .dim = 128};
    vec_index *ix = NULL;
    assert_int_equal(vec_create(&p, &ix, NULL, 0), ERR_INVAL);
    /* The shim's refusals, and FAISS's, come back as codes with the text. */
    faiss_shim *s;
    char err[256];
    float x[32] = {0}, d[1];
    int64_t l[1];
    OK(faiss_shim_create("OPQ4,IVF4,Flat", 8, 0, &s, err, sizeof err));
    assert_int_equal(faiss_shim_search(s, x, 1, 1, NULL, NULL, d, l, err, sizeof err), ERR_BACKEND);
    assert_non_null(strstr(err, "is_trained")); /* the untrained transform */
    faiss_shim_free(s);
    OK(faiss_shim_create("IVF4,Flat", 8, 0, &s, err, sizeof err));
    assert_int_equal(faiss_shim_train(s, 1, x, err, sizeof err), ERR_BACKEND);
    assert_non_null(strstr(err, "Number of training points (1)"));
    assert_false(faiss_shim_is_trained(s));
    assert_int_equal(faiss_shim_search(s, x, 0, 1, NULL, NULL, d, l, err, sizeof err), ERR_INVAL);
    OK(faiss_shim_train(s, 4, x, err, sizeof err));
    assert_int_equal(faiss_shim_train(s, 4, x, err, sizeof err), ERR_INVAL);
    assert_string_equal(err, "index is already trained");
    faiss_shim *t = s;
    assert_int_equal(faiss_shim_deserialize("junk", 4, 8, 0, &t, err, sizeof err), ERR_CORRUPT);
    assert_null(t);
    faiss_shim_free(s);
}

static void test_failed_training_changes_nothing(void **state)
{
    (void)state;
    vec_index *ix = make("IVF16,Flat", 16), *flat = make_flat(VEC_L2, dim);
    add_range(ix, 0, 999);
    add_range(flat, 0, 999);
    size_t mem = vec_memory(ix);
    for (long fail_at = 0; fail_at < 2; fail_at++) {
        alloc_fail_after(fail_at); /* the 1000th vector trains: its arrays fail */
        assert_int_equal(vec_add(ix, 999, vec(999)), ERR_NOMEM);
        alloc_fail_after(-1);
        assert_int_equal(vec_count(ix), 999);
        assert_false(vec_contains(ix, 999));
        assert_int_equal(vec_memory(ix), mem);
    }
    assert_same_as(ix, flat, NULL, K);
    add_range(ix, 999, 1500);
    add_range(flat, 999, 1500);
    assert_true(vec_memory(ix) != mem);
    assert_same_as(ix, flat, NULL, K);
    float v[4] = {1, 2, 3, 4};
    vec_index *small = make_ex("IVF4,Flat", VEC_L2, 4, 4);
    assert_int_equal(vec_add(small, 1u << 30, v), ERR_LIMIT);
    vec_free(small);
    vec_free(flat);
    vec_free(ix);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ivf_flat_recall),
        cmocka_unit_test(test_ivf_pq),
        cmocka_unit_test(test_before_training_exact),
        cmocka_unit_test(test_deletes_and_replaces),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_ip_and_cosine),
        cmocka_unit_test(test_snapshots),
        cmocka_unit_test(test_bad_factories),
        cmocka_unit_test(test_failed_training_changes_nothing),
    };
    size_t n = skip_tests(tests, sizeof tests / sizeof tests[0]);
    return _cmocka_run_group_tests("test_ivf", tests, n, load_data, free_data);
}
