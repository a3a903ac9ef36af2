/* test_history.c: unit tests for the offline history in store/history.c (RocksDB): views as
 * column families that persist across reopen and go with a drop, as-of lookups and range
 * iteration checked against a brute-force oracle on random histories (prefix-sharing and
 * NUL-holding entity keys, out-of-order inserts, ties on event time, negative and extreme
 * timestamps), batch atomicity, synced writes, retention through compaction, the error
 * paths, and cursors (seeks, steps and entity scans against the oracle, on a snapshot that
 * outlives a drop). Row values are opaque bytes here. Every test runs in its own temporary
 * directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/skip.h"

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/util.h"
#include "store/store.h"

#define S(lit) lit, sizeof(lit) - 1 /* a string literal and its length, NULs included */

typedef struct fixture {
    char dir[64];
    store_hist *h;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/quiver_test_history.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_hist_close(f->h);
    int rc = nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

static void hopen(fixture *f)
{
    char err[256] = "";
    int rc = store_hist_open(f->dir, 0, &f->h, err, sizeof err);
    if (rc != 0)
        fail_msg("store_hist_open: %d %s", rc, err);
    assert_non_null(f->h);
}

static void reopen(fixture *f)
{
    store_hist_close(f->h);
    f->h = NULL;
    hopen(f);
}

static void put1(store_hist *h, uint32_t view, const char *e, size_t elen, int64_t ev, int64_t cr,
                 const char *row, size_t rowlen, int sync)
{
    char err[256] = "";
    store_hbatch *b = store_hbatch_new();
    assert_int_equal(store_hbatch_put(b, h, view, e, elen, ev, cr, row, rowlen), 0);
    assert_int_equal(store_hbatch_count(b), 1);
    int rc = store_hist_write(h, b, sync, err, sizeof err);
    if (rc != 0)
        fail_msg("store_hist_write: %d %s", rc, err);
    store_hbatch_free(b);
}

/* asof returning the row as a NUL-terminated string (test rows are text), or NULL. */
static int asof_str(store_hist *h, uint32_t view, const char *e, size_t elen, int64_t t,
                    int64_t min, int64_t *ev, int64_t *cr, buf *row)
{
    int rc = store_hist_asof(h, view, e, elen, t, min, ev, cr, row);
    if (rc == 0)
        buf_appendc(row, '\0');
    return rc;
}

static size_t count_range(store_hist *h, uint32_t view, const char *e, size_t elen, int64_t from,
                          int64_t to)
{
    store_hiter *it;
    int64_t ev, cr;
    const char *row;
    size_t rowlen, n = 0;
    int rc;
    assert_int_equal(store_hist_range(h, view, e, elen, from, to, 0, &it), 0);
    while ((rc = store_hiter_next(it, &ev, &cr, &row, &rowlen)) == 0)
        n++;
    assert_int_equal(rc, ERR_NOTFOUND);
    store_hiter_free(it);
    return n;
}

/* ---- views ---- */

static void test_views_persist(void **state)
{
    fixture *f = *state;
    int64_t ev, cr;
    buf row;
    buf_init(&row);
    hopen(f);
    assert_int_equal(store_hist_create_view(f->h, 1, 0), 0);
    assert_int_equal(store_hist_create_view(f->h, 2, 1000), 0);
    assert_int_equal(store_hist_create_view(f->h, 4000000000u, 0), 0);
    assert_int_equal(store_hist_create_view(f->h, 1, 0), ERR_EXISTS);
    assert_int_equal(store_hist_create_view(f->h, 9, -1), ERR_INVAL);
    put1(f->h, 1, S("e"), 10, 1, S("one"), 0);
    put1(f->h, 2, S("e"), 10, 1, S("two"), 0);
    put1(f->h, 4000000000u, S("e"), 10, 1, S("big"), 0);

    reopen(f);
    assert_int_equal(store_hist_create_view(f->h, 1, 0), ERR_EXISTS);
    assert_int_equal(store_hist_create_view(f->h, 2, 0), ERR_EXISTS);
    assert_int_equal(store_hist_create_view(f->h, 4000000000u, 0), ERR_EXISTS);
    assert_int_equal(asof_str(f->h, 1, S("e"), 10, INT64_MIN, &ev, &cr, &row), 0);
    assert_string_equal(row.data, "one");
    assert_int_equal(asof_str(f->h, 2, S("e"), 10, INT64_MIN, &ev, &cr, &row), 0);
    assert_string_equal(row.data, "two");
    assert_int_equal(asof_str(f->h, 4000000000u, S("e"), 10, INT64_MIN, &ev, &cr, &row), 0);
    assert_string_equal(row.data, "big");

    assert_int_equal(store_hist_drop_view(f->h, 2), 0);
    assert_int_equal(store_hist_drop_view(f->h, 2), ERR_NOTFOUND);
    assert_int_equal(asof_str(f->h, 2, S("e"), 10, INT64_MIN, &ev, &cr, &row), ERR_NOTFOUND);
    reopen(f);
    assert_int_equal(store_hist_drop_view(f->h, 2), ERR_NOTFOUND);
    assert_int_equal(store_hist_create_view(f->h, 2, 0), 0); /* a new, empty view 2 */
    assert_int_equal(asof_str(f->h, 2, S("e"), 10, INT64_MIN, &ev, &cr, &row), ERR_NOTFOUND);
    assert_int_equal(count_range(f->h, 2, S("e"), INT64_MIN, INT64_MAX), 0);
    assert_int_equal(asof_str(f->h, 1, S("e"), 10, INT64_MIN, &ev, &cr, &row), 0);
    buf_free(&row);
}

static void test_drop_removes_rows(void **state)
{
    fixture *f = *state;
    int64_t ev, cr;
    buf row;
    buf_init(&row);
    hopen(f);
    assert_int_equal(store_hist_create_view(f->h, 3, 0), 0);
    for (int i = 0; i < 100; i++)
        put1(f->h, 3, S("k"), i, i, S("x"), 0);
    assert_int_equal(count_range(f->h, 3, S("k"), INT64_MIN, INT64_MAX), 100);
    assert_int_equal(store_hist_compact(f->h, 3), 0); /* some rows in SST files too */
    assert_int_equal(store_hist_drop_view(f->h, 3), 0);
    assert_int_equal(store_hist_create_view(f->h, 3, 0), 0);
    assert_int_equal(store_hist_asof(f->h, 3, S("k"), 1000, INT64_MIN, &ev, &cr, &row),
                     ERR_NOTFOUND);
    assert_int_equal(count_range(f->h, 3, S("k"), INT64_MIN, INT64_MAX), 0);
    buf_free(&row);
}

static void test_unknown_view(void **state)
{
    fixture *f = *state;
    int64_t ev, cr;
    buf row;
    store_hiter *it = (store_hiter *)1;
    buf_init(&row);
    hopen(f);
    store_hbatch *b = store_hbatch_new();
    assert_int_equal(store_hbatch_put(b, f->h, 5, S("e"), 1, 1, S("r")), ERR_NOTFOUND);
    assert_int_equal(store_hbatch_count(b), 0);
    store_hbatch_free(b);
    assert_int_equal(store_hist_asof(f->h, 5, S("e"), 1, INT64_MIN, &ev, &cr, &row), ERR_NOTFOUND);
    assert_int_equal(store_hist_range(f->h, 5, S("e"), 0, 1, 0, &it), ERR_NOTFOUND);
    assert_null(it);
    assert_int_equal(store_hist_set_retention(f->h, 5, 10), ERR_NOTFOUND);
    assert_int_equal(store_hist_compact(f->h, 5), ERR_NOTFOUND);
    assert_int_equal(store_hist_drop_view(f->h, 5), ERR_NOTFOUND);
    assert_int_equal(store_hist_create_view(f->h, 5, 0), 0);
    assert_int_equal(store_hist_set_retention(f->h, 5, -1), ERR_INVAL);
    buf_free(&row);
}

/* ---- the oracle ---- */

typedef struct orow {
    int ent;
    int64_t ev, cr;
    char val[40];
    size_t vlen;
} orow;

typedef struct oracle {
    orow *rows;
    size_t n;
} oracle;

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Entity keys: prefixes of each other, NUL bytes, empty, long and the longest allowed. */
#define NENT 14
static const char *ent_key[NENT];
static size_t ent_len[NENT];
static char *long_keys[2];

static void entities_init(void)
{
    static const struct {
        const char *s;
        size_t n;
    } fixed[] = {{S("a")},    {S("ab")}, {S("abc")},  {S("")},   {S("b")},    {S("a\0")},
                 {S("a\0b")}, {S("\0")}, {S("\0\0")}, {S("ba")}, {S("\xff")}, {S("\xff\xff")}};
    for (int i = 0; i < 12; i++) {
        ent_key[i] = fixed[i].s;
        ent_len[i] = fixed[i].n;
    }
    size_t lens[2] = {300, 65535};
    for (int i = 0; i < 2; i++) {
        long_keys[i] = malloc(lens[i]);
        assert_non_null(long_keys[i]);
        for (size_t j = 0; j < lens[i]; j++)
            long_keys[i][j] = (char)('a' + j % 3);
        ent_key[12 + i] = long_keys[i];
        ent_len[12 + i] = lens[i];
    }
}

static void entities_free(void)
{
    free(long_keys[0]);
    free(long_keys[1]);
}

static int64_t rnd_time(void)
{
    static const int64_t extremes[] = {INT64_MIN, INT64_MIN + 1, INT64_MAX, INT64_MAX - 1, -1, 0,
                                       1};
    if (rnd() % 20 == 0)
        return extremes[rnd() % 7];
    return ((int64_t)(rnd() % 13) - 6) * 1000 + (int64_t)(rnd() % 3); /* many ties */
}

/* Adds (or replaces: same entity, event and created) a row in the oracle. */
static orow *oracle_put(oracle *o, int ent, int64_t ev, int64_t cr, uint64_t serial)
{
    orow *r = NULL;
    for (size_t i = 0; i < o->n; i++)
        if (o->rows[i].ent == ent && o->rows[i].ev == ev && o->rows[i].cr == cr)
            r = &o->rows[i];
    if (!r) {
        o->rows = realloc(o->rows, (o->n + 1) * sizeof *o->rows);
        assert_non_null(o->rows);
        r = &o->rows[o->n++];
    }
    r->ent = ent;
    r->ev = ev;
    r->cr = cr;
    r->vlen = (size_t)snprintf(r->val, sizeof r->val, "row%llu", (unsigned long long)serial);
    r->val[r->vlen++] = '\0'; /* values hold a NUL byte too */
    r->val[r->vlen++] = (char)(serial & 0xff);
    return r;
}

static const orow *oracle_asof(const oracle *o, int ent, int64_t t, int64_t min)
{
    const orow *best = NULL;
    for (size_t i = 0; i < o->n; i++) {
        const orow *r = &o->rows[i];
        if (r->ent != ent || r->ev > t || r->ev < min)
            continue;
        if (!best || r->ev > best->ev || (r->ev == best->ev && r->cr > best->cr))
            best = r;
    }
    return best;
}

/* Fills the oracle with n random rows and writes them in shuffled order, in batches. */
static void random_history(store_hist *h, uint32_t view, oracle *o, size_t n)
{
    typedef struct pending {
        int ent;
        int64_t ev, cr;
        uint64_t serial;
    } pending;
    pending *p = calloc(n, sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        p[i].ent = (int)(rnd() % NENT);
        p[i].ev = rnd_time();
        p[i].cr = rnd() % 4 == 0 ? rnd_time() : (int64_t)(rnd() % 5);
        p[i].serial = i;
    }
    for (size_t i = n; i > 1; i--) { /* shuffle: out-of-order inserts */
        size_t j = rnd() % i;
        pending t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
    store_hbatch *b = store_hbatch_new();
    for (size_t i = 0; i < n; i++) {
        orow *r = oracle_put(o, p[i].ent, p[i].ev, p[i].cr, p[i].serial);
        assert_int_equal(store_hbatch_put(b, h, view, ent_key[r->ent], ent_len[r->ent], r->ev,
                                          r->cr, r->val, r->vlen),
                         0);
        if (rnd() % 16 == 0 || i == n - 1) {
            char err[256] = "";
            int rc = store_hist_write(h, b, (int)(rnd() % 2), err, sizeof err);
            if (rc != 0)
                fail_msg("write: %s", err);
            assert_int_equal(store_hbatch_count(b), 0);
        }
    }
    store_hbatch_free(b);
    free(p);
}

static size_t check_asof_one(store_hist *h, uint32_t view, const oracle *o, int ent, int64_t t,
                             int64_t min, buf *row)
{
    int64_t ev = 42, cr = 42;
    const orow *want = oracle_asof(o, ent, t, min);
    int rc = store_hist_asof(h, view, ent_key[ent], ent_len[ent], t, min, &ev, &cr, row);
    if (!want) {
        if (rc != ERR_NOTFOUND)
            fail_msg("asof(ent %d, t %lld, min %lld): rc %d, want NOTFOUND", ent, (long long)t,
                     (long long)min, rc);
        assert_int_equal(row->len, 0);
        return 0;
    }
    if (rc != 0 || ev != want->ev || cr != want->cr || row->len != want->vlen ||
        memcmp(row->data, want->val, want->vlen) != 0)
        fail_msg("asof(ent %d, t %lld, min %lld): rc %d ev %lld cr %lld, want ev %lld cr %lld", ent,
                 (long long)t, (long long)min, rc, (long long)ev, (long long)cr,
                 (long long)want->ev, (long long)want->cr);
    return 1;
}

/* Query times around every row (before, at, after) and at the ends; windows starting at
 * INT64_MIN, exactly at a row's event time (inclusive) and one past it. */
static size_t check_asof_all(store_hist *h, uint32_t view, const oracle *o)
{
    buf row;
    size_t found = 0, queries = 0;
    buf_init(&row);
    for (int ent = 0; ent < NENT; ent++) {
        int64_t ends[] = {INT64_MIN, INT64_MAX, -6001, -1, 0, 100000};
        for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
            found += check_asof_one(h, view, o, ent, ends[i], INT64_MIN, &row);
            queries++;
        }
    }
    for (size_t i = 0; i < o->n; i++) {
        const orow *r = &o->rows[i];
        int64_t ts[3] = {r->ev, r->ev, r->ev};
        if (r->ev > INT64_MIN)
            ts[0] = r->ev - 1;
        if (r->ev < INT64_MAX)
            ts[2] = r->ev + 1;
        for (int ent = r->ent, k = 0; k < 2; k++, ent = (int)(rnd() % NENT)) {
            for (int j = 0; j < 3; j++) {
                int64_t mins[4] = {INT64_MIN, r->ev, r->ev, rnd_time()};
                if (r->ev < INT64_MAX)
                    mins[2] = r->ev + 1;
                for (int m = 0; m < 4; m++) {
                    found += check_asof_one(h, view, o, ent, ts[j], mins[m], &row);
                    queries++;
                }
            }
        }
    }
    assert_true(found > queries / 4); /* the queries do hit rows */
    buf_free(&row);
    return queries;
}

static int orow_newer(const void *a, const void *b)
{
    const orow *x = a, *y = b;
    if (x->ev != y->ev)
        return x->ev > y->ev ? -1 : 1;
    if (x->cr != y->cr)
        return x->cr > y->cr ? -1 : 1;
    return 0;
}

static void check_range_one(store_hist *h, uint32_t view, const oracle *o, int ent, int64_t from,
                            int64_t to, int asc)
{
    orow *want = calloc(o->n + 1, sizeof *want);
    size_t nw = 0, got = 0;
    assert_non_null(want);
    for (size_t i = 0; i < o->n; i++)
        if (o->rows[i].ent == ent && o->rows[i].ev >= from && o->rows[i].ev <= to)
            want[nw++] = o->rows[i];
    qsort(want, nw, sizeof *want, orow_newer);

    store_hiter *it;
    int64_t ev, cr;
    const char *row;
    size_t rowlen;
    int rc;
    assert_int_equal(store_hist_range(h, view, ent_key[ent], ent_len[ent], from, to, asc, &it), 0);
    while ((rc = store_hiter_next(it, &ev, &cr, &row, &rowlen)) == 0) {
        if (got >= nw)
            fail_msg("range(ent %d, %lld..%lld, asc %d): too many rows", ent, (long long)from,
                     (long long)to, asc);
        const orow *w = &want[asc ? nw - 1 - got : got];
        if (ev != w->ev || cr != w->cr || rowlen != w->vlen || memcmp(row, w->val, rowlen) != 0)
            fail_msg("range(ent %d, %lld..%lld, asc %d): row %zu is ev %lld cr %lld, want "
                     "ev %lld cr %lld",
                     ent, (long long)from, (long long)to, asc, got, (long long)ev, (long long)cr,
                     (long long)w->ev, (long long)w->cr);
        got++;
    }
    assert_int_equal(rc, ERR_NOTFOUND);
    assert_int_equal(store_hiter_next(it, &ev, &cr, &row, &rowlen), ERR_NOTFOUND); /* stays */
    assert_int_equal(got, nw);
    store_hiter_free(it);
    free(want);
}

static void check_range_all(store_hist *h, uint32_t view, const oracle *o)
{
    for (int ent = 0; ent < NENT; ent++) {
        for (int asc = 0; asc < 2; asc++) {
            check_range_one(h, view, o, ent, INT64_MIN, INT64_MAX, asc);
            check_range_one(h, view, o, ent, 0, 0, asc);
            check_range_one(h, view, o, ent, 1, 0, asc); /* from > to: empty */
            for (int k = 0; k < 20; k++) {
                int64_t a = rnd_time(), b = rnd_time();
                if (o->n && k % 2) { /* bounds exactly on rows: inclusive */
                    a = o->rows[rnd() % o->n].ev;
                    b = o->rows[rnd() % o->n].ev;
                }
                check_range_one(h, view, o, ent, a < b ? a : b, a < b ? b : a, asc);
            }
        }
    }
}

static void test_asof_oracle(void **state)
{
    fixture *f = *state;
    oracle o = {0};
    hopen(f);
    entities_init();
    assert_int_equal(store_hist_create_view(f->h, 7, 0), 0);
    assert_int_equal(store_hist_create_view(f->h, 8, 0), 0); /* a neighbour view, other rows */
    oracle other = {0};
    random_history(f->h, 8, &other, 200);
    random_history(f->h, 7, &o, 600);
    size_t q = check_asof_all(f->h, 7, &o);
    assert_true(q > 5000);
    check_asof_all(f->h, 8, &other);
    reopen(f); /* from the WAL */
    check_asof_all(f->h, 7, &o);
    assert_int_equal(store_hist_compact(f->h, 7), 0); /* from SST files, retention 0 */
    check_asof_all(f->h, 7, &o);
    random_history(f->h, 7, &o, 300); /* new rows over compacted ones */
    check_asof_all(f->h, 7, &o);
    free(o.rows);
    free(other.rows);
    entities_free();
}

static void test_range_oracle(void **state)
{
    fixture *f = *state;
    oracle o = {0};
    hopen(f);
    entities_init();
    assert_int_equal(store_hist_create_view(f->h, 1, 0), 0);
    random_history(f->h, 1, &o, 500);
    check_range_all(f->h, 1, &o);
    assert_int_equal(store_hist_compact(f->h, 1), 0);
    random_history(f->h, 1, &o, 100);
    check_range_all(f->h, 1, &o);
    free(o.rows);
    entities_free();
}

static void test_asof_simple(void **state)
{
    fixture *f = *state;
    int64_t ev, cr;
    buf row;
    buf_init(&row);
    hopen(f);
    assert_int_equal(store_hist_create_view(f->h, 1, 0), 0);
    put1(f->h, 1, S("user"), 100, 5, S("a"), 0);
    put1(f->h, 1, S("user"), 100, 9, S("b"), 0); /* same event, later created: wins */
    put1(f->h, 1, S("user"), 100, 7, S("c"), 0);
    put1(f->h, 1, S("user"), 200, 1, S("d"), 0);
    put1(f->h, 1, S("use"), 150, 1, S("p"), 0); /* a prefix of "user" */
    put1(f->h, 1, S("user2"), 50, 1, S("q"), 0);
    assert_int_equal(asof_str(f->h, 1, S("user"), 99, INT64_MIN, &ev, &cr, &row), ERR_NOTFOUND);
    assert_int_equal(row.len, 0);
    assert_int_equal(asof_str(f->h, 1, S("user"), 100, INT64_MIN, &ev, &cr, &row), 0);
    assert_string_equal(row.data, "b");
    assert_true(ev == 100 && cr == 9);
    assert_int_equal(asof_str(f->h, 1, S("user"), 199, INT64_MIN, &ev, &cr, &row), 0);
    assert_string_equal(row.data, "b");
    assert_int_equal(asof_str(f->h, 1, S("user"), 200, INT64_MIN, &ev, &cr, &row), 0);
    assert_string_equal(row.data, "d");
    assert_int_equal(asof_str(f->h, 1, S("user"), INT64_MAX, 200, &ev, &cr, &row), 0);
    assert_string_equal(row.data, "d");
    assert_int_equal(asof_str(f->h, 1, S("user"), 199, 100, &ev, &cr, &row), 0); /* inclusive */
    assert_string_equal(row.data, "b");
    assert_int_equal(asof_str(f->h, 1, S("user"), 199, 101, &ev, &cr, &row), ERR_NOTFOUND);
    assert_int_equal(asof_str(f->h, 1, S("user"), 100, 200, &ev, &cr, &row), ERR_NOTFOUND);
    assert_int_equal(asof_str(f->h, 1, S("us"), INT64_MAX, INT64_MIN, &ev, &cr, &row),
                     ERR_NOTFOUND);
    assert_int_equal(asof_str(f->h, 1, S("use"), INT64_MAX, INT64_MIN, &ev, &cr, &row), 0);
    assert_string_equal(row.data, "p");
    buf_free(&row);
}

/* ---- batches, sync, retention, limits ---- */

static void test_batch_atomic(void **state)
{
    fixture *f = *state;
    char err[256] = "";
    int64_t ev, cr;
    buf row;
    buf_init(&row);
    hopen(f);
    assert_int_equal(store_hist_create_view(f->h, 1, 0), 0);
    assert_int_equal(store_hist_create_view(f->h, 2, 0), 0);
    store_hbatch *b = store_hbatch_new();
    assert_int_equal(store_hbatch_count(b), 0);
    for (int i = 0; i < 50; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "e%d", i);
        assert_int_equal(
            store_hbatch_put(b, f->h, 1 + (uint32_t)(i % 2), k, (size_t)n, i, 0, S("v")), 0);
    }
    assert_int_equal(store_hbatch_count(b), 50);
    /* Nothing is visible before the write. */
    assert_int_equal(store_hist_asof(f->h, 1, S("e0"), INT64_MAX, INT64_MIN, &ev, &cr, &row),
                     ERR_NOTFOUND);
    assert_int_equal(store_hist_write(f->h, b, 0, err, sizeof err), 0);
    assert_int_equal(store_hbatch_count(b), 0);
    for (int i = 0; i < 50; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "e%d", i);
        assert_int_equal(store_hist_asof(f->h, 1 + (uint32_t)(i % 2), k, (size_t)n, INT64_MAX,
                                         INT64_MIN, &ev, &cr, &row),
                         0);
        assert_true(ev == i);
    }

    /* A batch touching a view dropped before the write fails as a whole. */
    assert_int_equal(store_hbatch_put(b, f->h, 1, S("x"), 1, 1, S("v")), 0);
    assert_int_equal(store_hbatch_put(b, f->h, 2, S("x"), 1, 1, S("v")), 0);
    assert_int_equal(store_hist_drop_view(f->h, 2), 0);
    assert_int_equal(store_hist_create_view(f->h, 2, 0), 0); /* same id, another family */
    assert_int_equal(store_hist_write(f->h, b, 0, err, sizeof err), ERR_NOTFOUND);
    assert_non_null(strstr(err, "view 2"));
    assert_int_equal(store_hbatch_count(b), 2); /* kept on failure */
    assert_int_equal(store_hist_asof(f->h, 1, S("x"), INT64_MAX, INT64_MIN, &ev, &cr, &row),
                     ERR_NOTFOUND);
    assert_int_equal(store_hist_asof(f->h, 2, S("x"), INT64_MAX, INT64_MIN, &ev, &cr, &row),
                     ERR_NOTFOUND);
    store_hbatch_free(b);
    store_hbatch_free(NULL);
    buf_free(&row);
}

static void test_sync_write(void **state)
{
    fixture *f = *state;
    int64_t ev, cr;
    buf row;
    buf_init(&row);
    hopen(f);
    assert_int_equal(store_hist_create_view(f->h, 1, 0), 0);
    put1(f->h, 1, S("e"), -5, -7, S("neg"), 1);
    reopen(f);
    assert_int_equal(asof_str(f->h, 1, S("e"), -5, -5, &ev, &cr, &row), 0);
    assert_string_equal(row.data, "neg");
    assert_true(ev == -5 && cr == -7);
    buf_free(&row);
}

static void test_retention(void **state)
{
    fixture *f = *state;
    const int64_t hour = INT64_C(3600000000);
    int64_t now = clock_us();
    hopen(f);
    assert_int_equal(store_hist_create_view(f->h, 1, hour), 0);
    assert_int_equal(store_hist_create_view(f->h, 2, 1), 0);
    assert_int_equal(store_hist_create_view(f->h, 3, 0), 0);
    int64_t times[] = {INT64_MIN,      -1,  0,          now - 2 * hour, now - hour - 1000000,
                       now - hour / 2, now, now + hour, INT64_MAX};
    const int n = (int)(sizeof times / sizeof times[0]), kept1 = 4; /* the last 4 */
    for (uint32_t v = 1; v <= 3; v++)
        for (int i = 0; i < n; i++) {
            put1(f->h, v, S("e"), times[i], 0, S("r"), 0);
            put1(f->h, v, S("f"), times[i], 1, S("r"), 0);
        }
    assert_int_equal(store_hist_set_retention(f->h, 2, 0), 0); /* keep everything after all */

    for (uint32_t v = 1; v <= 3; v++)
        assert_int_equal(store_hist_compact(f->h, v), 0);
    assert_int_equal(count_range(f->h, 1, S("e"), INT64_MIN, INT64_MAX), kept1);
    assert_int_equal(count_range(f->h, 1, S("f"), INT64_MIN, INT64_MAX), kept1);
    assert_int_equal(count_range(f->h, 2, S("e"), INT64_MIN, INT64_MAX), n);
    assert_int_equal(count_range(f->h, 3, S("e"), INT64_MIN, INT64_MAX), n);

    /* Retention set later (and after a reopen, where it starts at 0) applies next time. */
    reopen(f);
    assert_int_equal(store_hist_compact(f->h, 3), 0);
    assert_int_equal(count_range(f->h, 3, S("e"), INT64_MIN, INT64_MAX), n);
    assert_int_equal(store_hist_set_retention(f->h, 3, hour), 0);
    assert_int_equal(store_hist_compact(f->h, 3), 0);
    assert_int_equal(count_range(f->h, 3, S("e"), INT64_MIN, INT64_MAX), kept1);
    assert_int_equal(count_range(f->h, 3, S("f"), INT64_MIN, INT64_MAX), kept1);
    assert_int_equal(count_range(f->h, 2, S("e"), INT64_MIN, INT64_MAX), n);
}

static void test_entity_limit(void **state)
{
    fixture *f = *state;
    int64_t ev, cr;
    buf row;
    store_hiter *it;
    buf_init(&row);
    hopen(f);
    assert_int_equal(store_hist_create_view(f->h, 1, 0), 0);
    char *k = malloc(65536);
    assert_non_null(k);
    memset(k, 'k', 65536);
    store_hbatch *b = store_hbatch_new();
    assert_int_equal(store_hbatch_put(b, f->h, 1, k, 65536, 1, 1, S("r")), ERR_INVAL);
    assert_int_equal(store_hbatch_count(b), 0);
    assert_int_equal(store_hbatch_put(b, f->h, 1, k, 65535, 1, 1, S("max")), 0);
    assert_int_equal(store_hist_write(f->h, b, 0, NULL, 0), 0);
    store_hbatch_free(b);
    assert_int_equal(store_hist_asof(f->h, 1, k, 65536, 5, INT64_MIN, &ev, &cr, &row), ERR_INVAL);
    assert_int_equal(store_hist_range(f->h, 1, k, 65536, 0, 5, 0, &it), ERR_INVAL);
    assert_int_equal(asof_str(f->h, 1, k, 65535, 5, INT64_MIN, &ev, &cr, &row), 0);
    assert_string_equal(row.data, "max");
    assert_int_equal(store_hist_asof(f->h, 1, k, 65534, 5, INT64_MIN, &ev, &cr, &row),
                     ERR_NOTFOUND);
    free(k);
    buf_free(&row);
}

static void test_open_regular_file(void **state)
{
    fixture *f = *state;
    char path[128], err[512] = "";
    store_hist *h = (store_hist *)1;
    snprintf(path, sizeof path, "%s/plain", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("not a database\n", fp);
    fclose(fp);
    int rc = store_hist_open(path, 0, &h, err, sizeof err);
    assert_true(rc == ERR_IO || rc == ERR_BACKEND);
    assert_null(h);
    assert_true(strlen(err) > 0);
    assert_non_null(strstr(err, "history"));

    /* A directory inside a missing one. */
    snprintf(path, sizeof path, "%s/missing/db", f->dir);
    err[0] = '\0';
    assert_int_not_equal(store_hist_open(path, 0, &h, err, sizeof err), 0);
    assert_null(h);
    assert_true(strlen(err) > 0);
    assert_int_not_equal(store_hist_open(path, 0, &h, NULL, 0), 0); /* no buffer: logged */
}

/* An open iterator keeps a dropped view's rows readable until it is freed. */
static void test_iterator_outlives_drop(void **state)
{
    fixture *f = *state;
    store_hiter *it;
    int64_t ev, cr;
    const char *row;
    size_t rowlen, n = 0;
    hopen(f);
    assert_int_equal(store_hist_create_view(f->h, 1, 0), 0);
    for (int i = 0; i < 10; i++)
        put1(f->h, 1, S("e"), i, 0, S("r"), 0);
    assert_int_equal(store_hist_range(f->h, 1, S("e"), 2, 7, 1, &it), 0);
    assert_int_equal(store_hiter_next(it, &ev, &cr, &row, &rowlen), 0);
    assert_true(ev == 2);
    assert_int_equal(store_hist_drop_view(f->h, 1), 0);
    assert_int_equal(store_hist_create_view(f->h, 1, 0), 0); /* a new view with the same id */
    int64_t last = ev;
    while (store_hiter_next(it, &ev, &cr, &row, &rowlen) == 0) {
        assert_true(ev == last + 1);
        last = ev;
        n++;
    }
    assert_int_equal(n, 5);
    store_hiter_free(it);
    assert_int_equal(count_range(f->h, 1, S("e"), INT64_MIN, INT64_MAX), 0);
}

/* Readers on one view while another thread creates, writes and drops other views. */
typedef struct reader_arg {
    store_hist *h;
    int errors;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    buf row;
    int64_t ev, cr;
    buf_init(&row);
    for (int i = 0; i < 2000; i++) {
        int rc = store_hist_asof(a->h, 1, S("e"), i % 100, INT64_MIN, &ev, &cr, &row);
        if (rc != 0 || ev != i % 100)
            a->errors++;
        rc = store_hist_asof(a->h, 2, S("e"), 5, INT64_MIN, &ev, &cr, &row);
        if (rc != 0 && rc != ERR_NOTFOUND)
            a->errors++;
    }
    buf_free(&row);
    return NULL;
}

static void test_threads(void **state)
{
    fixture *f = *state;
    pthread_t t[4];
    reader_arg a[4];
    hopen(f);
    assert_int_equal(store_hist_create_view(f->h, 1, 0), 0);
    for (int i = 0; i < 100; i++)
        put1(f->h, 1, S("e"), i, 0, S("r"), 0);
    for (int i = 0; i < 4; i++) {
        a[i].h = f->h;
        a[i].errors = 0;
        assert_int_equal(pthread_create(&t[i], NULL, reader, &a[i]), 0);
    }
    for (int i = 0; i < 20; i++) {
        assert_int_equal(store_hist_create_view(f->h, 2, 0), 0);
        put1(f->h, 2, S("e"), i, 0, S("r"), 0);
        assert_int_equal(store_hist_drop_view(f->h, 2), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].errors, 0);
    }
}

/* ---- cursors ---- */

/* Stored order of entity keys: u16 length first, then the bytes. */
static int ent_cmp(int a, int b)
{
    if (ent_len[a] != ent_len[b])
        return ent_len[a] < ent_len[b] ? -1 : 1;
    return memcmp(ent_key[a], ent_key[b], ent_len[a]);
}

static int ent_index(const char *e, size_t elen)
{
    for (int i = 0; i < NENT; i++)
        if (ent_len[i] == elen && memcmp(ent_key[i], e, elen) == 0)
            return i;
    fail_msg("cursor returned an unknown entity of %zu bytes", elen);
    return -1;
}

/* The oracle's rows of ent with event <= t, newest first; returns how many. */
static size_t oracle_older(const oracle *o, int ent, int64_t t, orow *out)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n; i++)
        if (o->rows[i].ent == ent && o->rows[i].ev <= t)
            out[n++] = o->rows[i];
    qsort(out, n, sizeof *out, orow_newer);
    return n;
}

/* From a positioned cursor, the rows it walks (this one and every older) match want. */
static void check_walk(store_hcur *c, int ent, const orow *want, size_t nw)
{
    const char *e, *row;
    size_t elen, rowlen, got = 0;
    int64_t ev, cr;
    int rc = 0;
    for (; rc == 0; rc = store_hcur_next(c), got++) {
        store_hcur_row(c, &e, &elen, &ev, &cr, &row, &rowlen);
        if (got >= nw)
            fail_msg("cursor walk of ent %d: too many rows", ent);
        assert_int_equal(ent_index(e, elen), ent);
        const orow *w = &want[got];
        if (ev != w->ev || cr != w->cr || rowlen != w->vlen || memcmp(row, w->val, rowlen) != 0)
            fail_msg("cursor walk of ent %d: row %zu is ev %lld cr %lld, want ev %lld cr %lld",
                     ent, got, (long long)ev, (long long)cr, (long long)w->ev, (long long)w->cr);
    }
    assert_int_equal(rc, ERR_NOTFOUND);
    assert_int_equal(store_hcur_next(c), ERR_NOTFOUND); /* stays past the oldest */
    assert_int_equal(got, nw);
}

static void check_cursor_seeks(store_hcur *c, const oracle *o)
{
    orow *want = calloc(o->n + 1, sizeof *want);
    assert_non_null(want);
    for (int ent = 0; ent < NENT; ent++) {
        int64_t ts[8] = {INT64_MIN, INT64_MAX, -1, 0, 1};
        for (int k = 5; k < 8; k++)
            ts[k] = o->n ? o->rows[rnd() % o->n].ev : rnd_time();
        for (int k = 0; k < 8; k++) {
            size_t nw = oracle_older(o, ent, ts[k], want);
            int rc = store_hcur_seek(c, ent_key[ent], ent_len[ent], ts[k]);
            if (nw == 0) {
                assert_int_equal(rc, ERR_NOTFOUND);
                assert_int_equal(store_hcur_next(c), ERR_NOTFOUND);
                continue;
            }
            assert_int_equal(rc, 0);
            check_walk(c, ent, want, nw);
        }
    }
    free(want);
}

/* next_entity from a new cursor visits every entity with rows, in stored order. */
static void check_cursor_scan(store_hcur *c, const oracle *o)
{
    orow *want = calloc(o->n + 1, sizeof *want);
    int seen[NENT] = {0}, prev = -1, rc;
    assert_non_null(want);
    while ((rc = store_hcur_next_entity(c)) == 0) {
        const char *e, *row;
        size_t elen, rowlen;
        int64_t ev, cr;
        store_hcur_row(c, &e, &elen, &ev, &cr, &row, &rowlen);
        int ent = ent_index(e, elen);
        assert_true(prev < 0 || ent_cmp(prev, ent) < 0);
        seen[ent] = 1;
        prev = ent;
        check_walk(c, ent, want, oracle_older(o, ent, INT64_MAX, want));
    }
    assert_int_equal(rc, ERR_NOTFOUND);
    for (int ent = 0; ent < NENT; ent++)
        assert_int_equal(seen[ent], oracle_older(o, ent, INT64_MAX, want) > 0);
    free(want);
}

static void test_cursor_oracle(void **state)
{
    fixture *f = *state;
    oracle o = {0}, other = {0};
    store_hcur *c;
    hopen(f);
    entities_init();
    assert_int_equal(store_hist_create_view(f->h, 3, 0), 0);
    assert_int_equal(store_hist_create_view(f->h, 2, 0), 0); /* neighbours: other rows */
    assert_int_equal(store_hist_create_view(f->h, 4, 0), 0);
    random_history(f->h, 2, &other, 100);
    random_history(f->h, 4, &other, 100);
    random_history(f->h, 3, &o, 400);
    assert_int_equal(store_hcur_new(f->h, 3, &c), 0);
    check_cursor_seeks(c, &o);
    store_hcur_free(c);
    assert_int_equal(store_hcur_new(f->h, 3, &c), 0);
    check_cursor_scan(c, &o);
    store_hcur_free(c);
    assert_int_equal(store_hist_compact(f->h, 3), 0); /* from SST files */
    assert_int_equal(store_hcur_new(f->h, 3, &c), 0);
    check_cursor_scan(c, &o);
    check_cursor_seeks(c, &o);
    store_hcur_free(c);
    free(o.rows);
    free(other.rows);
    entities_free();
}

/* A cursor reads the snapshot of its creation, also after its view is dropped. */
static void test_cursor_snapshot(void **state)
{
    fixture *f = *state;
    store_hcur *c;
    const char *e, *row;
    size_t elen, rowlen;
    int64_t ev, cr;
    hopen(f);
    assert_int_equal(store_hcur_new(f->h, 1, &c), ERR_NOTFOUND);
    assert_null(c);
    assert_int_equal(store_hist_create_view(f->h, 1, 0), 0);
    put1(f->h, 1, S("b"), 10, 0, S("b10"), 0);
    put1(f->h, 1, S("d"), 10, 0, S("d10"), 0);
    assert_int_equal(store_hcur_new(f->h, 1, &c), 0);
    put1(f->h, 1, S("b"), 20, 0, S("b20"), 0); /* after the snapshot: invisible */
    put1(f->h, 1, S("c"), 20, 0, S("c20"), 0);
    assert_int_equal(store_hist_drop_view(f->h, 1), 0);

    assert_int_equal(store_hcur_seek(c, S("b"), INT64_MAX), 0);
    store_hcur_row(c, &e, &elen, &ev, &cr, &row, &rowlen);
    assert_int_equal(ev, 10);
    assert_memory_equal(row, "b10", 3);
    assert_int_equal(store_hcur_next(c), ERR_NOTFOUND);
    assert_int_equal(store_hcur_next_entity(c), 0); /* "c" is not in the snapshot */
    store_hcur_row(c, &e, &elen, &ev, &cr, &row, &rowlen);
    assert_int_equal(elen, 1);
    assert_memory_equal(e, "d", 1);
    assert_int_equal(store_hcur_next_entity(c), ERR_NOTFOUND);
    /* a missed seek leaves the cursor unpositioned: next_entity starts over */
    assert_int_equal(store_hcur_seek(c, S("b"), 5), ERR_NOTFOUND);
    assert_int_equal(store_hcur_next(c), ERR_NOTFOUND);
    assert_int_equal(store_hcur_next_entity(c), 0);
    store_hcur_row(c, &e, &elen, &ev, &cr, &row, &rowlen);
    assert_memory_equal(e, "b", 1);
    /* a seek on an entity with no rows between two that have some */
    assert_int_equal(store_hcur_seek(c, S("c"), INT64_MAX), ERR_NOTFOUND);
    assert_int_equal(store_hcur_seek(c, S("d"), 9), ERR_NOTFOUND);
    assert_int_equal(store_hcur_seek(c, S("d"), 10), 0);
    static char huge[65536];
    assert_int_equal(store_hcur_seek(c, huge, sizeof huge, 0), ERR_INVAL);
    store_hcur_free(c);
}

static void test_hist_views(void **state)
{
    fixture *f = *state;
    uint32_t ids[4] = {0};
    hopen(f);
    assert_int_equal(store_hist_views(f->h, ids, 4), 0);
    assert_int_equal(store_hist_create_view(f->h, 7, 0), 0);
    assert_int_equal(store_hist_create_view(f->h, 3, 0), 0);
    assert_int_equal(store_hist_create_view(f->h, 9, 0), 0);
    assert_int_equal(store_hist_drop_view(f->h, 3), 0);
    assert_int_equal(store_hist_views(f->h, ids, 4), 2);
    assert_true((ids[0] == 7 && ids[1] == 9) || (ids[0] == 9 && ids[1] == 7));
    assert_int_equal(store_hist_views(f->h, ids, 1), 2); /* fills one, counts all */
    assert_int_equal(store_hist_views(f->h, NULL, 0), 2);
    reopen(f);
    ids[0] = ids[1] = 0;
    assert_int_equal(store_hist_views(f->h, ids, 4), 2);
    assert_true((ids[0] == 7 && ids[1] == 9) || (ids[0] == 9 && ids[1] == 7));
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_views_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_removes_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_asof_simple, setup, teardown),
        cmocka_unit_test_setup_teardown(test_asof_oracle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_oracle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entity_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_regular_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_outlives_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_oracle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hist_views, setup, teardown),
    };
    size_t n = skip_tests(tests, sizeof tests / sizeof tests[0]);
    return _cmocka_run_group_tests("test_history", tests, n, NULL, NULL);
}
