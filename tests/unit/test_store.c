/* test_store.c: unit tests for the storage module (store/): open/close/reopen and the format
 * check, strings, long keys and digests, map growth, expiry (lazy and the active cycle),
 * hashes, delete/rename, resumable iteration, flush, pass transactions, the replication log's
 * offsets and the durability setting. Each test owns a fresh data directory under /tmp and
 * passes explicit now_ms values, so expiry is deterministic. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp, nftw */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "store/store.h"

#define S(lit) lit, sizeof(lit) - 1 /* a string literal and its length, NULs included */
#define OK(expr) assert_int_equal((expr), 0)
#define NOW 1000000 /* the "current time" of most tests, in ms */
#define MIB ((size_t)1 << 20)

/* Keys (with their db) as the expired hook reported them, or as an iteration returned them. */
typedef struct keylist {
    int n;
    int db[200];
    char *key[200];
    size_t len[200];
} keylist;

static void keylist_add(keylist *l, int db, const char *key, size_t klen)
{
    assert_true(l->n < 200);
    l->db[l->n] = db;
    l->key[l->n] = malloc(klen ? klen : 1);
    memcpy(l->key[l->n], key, klen);
    l->len[l->n++] = klen;
}

/* How many times (db, key) is in the list. */
static int keylist_count(const keylist *l, int db, const char *key, size_t klen)
{
    int n = 0;
    for (int i = 0; i < l->n; i++)
        n += l->db[i] == db && l->len[i] == klen && memcmp(l->key[i], key, klen) == 0;
    return n;
}

static void keylist_free(keylist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->key[i]);
    l->n = 0;
}

typedef struct fx {
    char dir[64];
    store_config cfg;
    store *st;
    keylist exp;                  /* what the expired hook reported */
    int log_calls, log_db, log_argc; /* what the log hook saw last */
    uint64_t log_offset;
    void *scratch[8]; /* test buffers, freed at teardown even when a test fails */
    int nscratch;
} fx;

static void on_expired(void *ctx, int db, const char *key, size_t klen)
{
    keylist_add(ctx, db, key, klen);
}

static void on_log(void *ctx, uint64_t offset, int db, int argc, const char *const *argv,
                   const size_t *lens)
{
    (void)argv;
    (void)lens;
    fx *f = ctx;
    f->log_calls++;
    f->log_offset = offset;
    f->log_db = db;
    f->log_argc = argc;
}

static void fx_open(fx *f)
{
    char err[256] = "";
    int rc = store_open(&f->cfg, &f->st, err, sizeof err);
    if (rc)
        fail_msg("store_open: %s (%s)", err_str(rc), err);
    store_set_expired_hook(f->st, on_expired, &f->exp);
    store_set_log_hook(f->st, on_log, f);
}

static void fx_close(fx *f)
{
    store_close(f->st);
    f->st = NULL;
}

static void fx_reopen(fx *f)
{
    fx_close(f);
    fx_open(f);
}

static int fx_setup_sized(void **state, size_t map_size)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/test_store.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->cfg = (store_config){.dir = f->dir, .map_size = map_size, .durability = DURABILITY_NO};
    fx_open(f);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return fx_setup_sized(state, 16 * MIB);
}

static int setup_small_map(void **state)
{
    return fx_setup_sized(state, MIB);
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fx *f = *state;
    if (f->st)
        fx_close(f);
    keylist_free(&f->exp);
    for (int i = 0; i < f->nscratch; i++)
        free(f->scratch[i]);
    nftw(f->dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* A test buffer of n bytes, owned by the fixture. */
static char *scratch(fx *f, size_t n)
{
    assert_true(f->nscratch < 8);
    return f->scratch[f->nscratch++] = malloc(n);
}

/* A key of n bytes: fill bytes, the byte at `at` replaced by mark (at >= n: none). */
static char *long_key(fx *f, size_t n, char fill, size_t at, char mark)
{
    char *k = scratch(f, n);
    memset(k, fill, n);
    if (at < n)
        k[at] = mark;
    return k;
}

static store_txn *wr(fx *f)
{
    store_txn *t;
    OK(store_txn_write(f->st, 0, &t));
    return t;
}

static store_txn *rd(fx *f)
{
    store_txn *t;
    OK(store_txn_read(f->st, &t));
    return t;
}

static void end(fx *f)
{
    OK(store_txn_end(f->st));
}

static void counts(fx *f, int db, uint64_t keys, uint64_t expires)
{
    assert_int_equal(store_dbsize(f->st, db), keys);
    assert_int_equal(store_expires(f->st, db), expires);
}

static void set(store_txn *t, int db, const char *k, size_t kl, const char *v, size_t vl,
                int64_t exp)
{
    OK(store_set_string(t, db, k, kl, v, vl, exp, NOW));
}

static store_obj lookup(store_txn *t, int db, const char *k, size_t kl, int64_t now)
{
    store_obj o;
    OK(store_lookup(t, db, k, kl, now, &o));
    return o;
}

static void expect_str(store_txn *t, int db, const char *k, size_t kl, int64_t now,
                       const char *v, size_t vl)
{
    store_obj o = lookup(t, db, k, kl, now);
    assert_int_equal(o.type, STORE_STRING);
    assert_int_equal(o.len, vl);
    if (vl)
        assert_memory_equal(o.val, v, vl);
}

static void expect_missing(store_txn *t, int db, const char *k, size_t kl, int64_t now)
{
    store_obj o;
    assert_int_equal(store_lookup(t, db, k, kl, now, &o), ERR_NOTFOUND);
}

static void del(store_txn *t, int db, const char *k, size_t kl, int want_deleted)
{
    int deleted = -1;
    OK(store_delete(t, db, k, kl, NOW, &deleted));
    assert_int_equal(deleted, want_deleted);
}

static void hset(store_txn *t, int db, const char *k, size_t kl, const char *f, size_t fl,
                 const char *v, size_t vl, int want_added)
{
    int added = -1;
    OK(store_hash_set(t, db, k, kl, f, fl, v, vl, NOW, &added));
    assert_int_equal(added, want_added);
}

static void hdel(store_txn *t, int db, const char *k, size_t kl, const char *f, size_t fl,
                 int want_removed)
{
    int removed = -1;
    OK(store_hash_del(t, db, k, kl, f, fl, NOW, &removed));
    assert_int_equal(removed, want_removed);
}

/* Checks a field's value; v NULL: the field must be absent. */
static void expect_field(store_txn *t, const store_obj *h, const char *f, size_t fl,
                         const char *v, size_t vl)
{
    const char *got;
    size_t glen;
    assert_int_equal(store_hash_get(t, h, f, fl, &got, &glen), v ? 0 : ERR_NOTFOUND);
    assert_true(!v || (glen == vl && memcmp(got, v, vl) == 0));
}

/* Number of fields stored under a hash id (0 for a dead hash whose fields were dropped). */
static int count_fields(store_txn *t, uint64_t id)
{
    store_obj h = {.type = STORE_HASH, .id = id};
    store_iter *it;
    const char *f, *v;
    size_t fl, vl;
    int n = 0, rc;
    OK(store_iter_fields(t, &h, NULL, 0, &it));
    while ((rc = store_iter_next_field(it, &f, &fl, &v, &vl)) == 0)
        n++;
    assert_int_equal(rc, ERR_NOTFOUND);
    store_iter_free(it);
    return n;
}

/* Runs one expiry cycle; returns how many keys it reported to the hook. */
static int cycle(fx *f, store_txn *t, int64_t now, int max, int want_more)
{
    int before = f->exp.n, more = -1;
    OK(store_expire_cycle(t, now, max, &more));
    assert_int_equal(more, want_more);
    return f->exp.n - before;
}

/* Opens the data dir with liblmdb directly and puts (val != NULL) or deletes a record. */
static void raw_edit(const char *dir, const char *dbname, const void *key, size_t klen,
                     const void *val, size_t vlen)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    OK(mdb_env_create(&env));
    OK(mdb_env_set_maxdbs(env, 16));
    OK(mdb_env_open(env, dir, 0, 0644));
    OK(mdb_txn_begin(env, NULL, 0, &txn));
    OK(mdb_dbi_open(txn, dbname, 0, &dbi));
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    OK(val ? mdb_put(txn, dbi, &k, &v, 0) : mdb_del(txn, dbi, &k, NULL));
    OK(mdb_txn_commit(txn));
    mdb_env_close(env);
}

/* ---- open / close / reopen ---- */

static void test_reopen_keeps_data_and_counts(void **state)
{
    fx *f = *state;
    store_txn *t = wr(f);
    set(t, 0, S("a"), S("1"), 0);
    set(t, 0, S("b"), S("2"), NOW + 5000);
    set(t, 3, S("c"), S("3"), 0);
    hset(t, 3, S("h"), S("f1"), S("v1"), 1);
    hset(t, 3, S("h"), S("f2"), S("v2"), 1);
    uint64_t old_id = lookup(t, 3, S("h"), NOW).id;
    end(f);
    fx_reopen(f);

    counts(f, 0, 2, 1);
    counts(f, 3, 2, 0);
    t = rd(f);
    expect_str(t, 0, S("a"), NOW, S("1"));
    assert_int_equal(lookup(t, 0, S("b"), NOW).expire_ms, NOW + 5000);
    expect_str(t, 3, S("c"), NOW, S("3"));
    store_obj h = lookup(t, 3, S("h"), NOW);
    assert_int_equal(h.type, STORE_HASH);
    assert_int_equal(h.len, 2);
    expect_field(t, &h, S("f2"), S("v2"));
    end(f);

    /* A hash made after reopening gets a fresh id: it sees none of the old hash's fields. */
    t = wr(f);
    hset(t, 4, S("h2"), S("x"), S("y"), 1);
    store_obj h2 = lookup(t, 4, S("h2"), NOW);
    assert_int_not_equal(h2.id, old_id);
    assert_int_equal(count_fields(t, h2.id), 1);
    end(f);

    /* A missing data directory is created, parents included. */
    char dir[128];
    snprintf(dir, sizeof dir, "%s/a/b", f->dir);
    store_config cfg = {.dir = dir, .map_size = MIB, .durability = DURABILITY_NO};
    store *st;
    char err[256];
    OK(store_open(&cfg, &st, err, sizeof err));
    store_close(st);
    OK(access(dir, F_OK));
}

static void test_wrong_format_is_corrupt(void **state)
{
    fx *f = *state;
    fx_close(f);
    static const char *const bad[] = {"XXXX\1\0\0\0", "QVKS\2\0\0\0", "QVKS\1\0\0"};
    static const size_t lens[] = {8, 8, 7};
    for (int i = 0; i < 3; i++) {
        raw_edit(f->dir, "meta", "format", 6, bad[i], lens[i]);
        store *st = NULL;
        char err[256] = "";
        assert_int_equal(store_open(&f->cfg, &st, err, sizeof err), ERR_CORRUPT);
        assert_null(st);
        assert_true(strlen(err) > 0);
    }
    raw_edit(f->dir, "meta", "format", 6, "QVKS\1\0\0\0", 8); /* the right one opens again */
    fx_open(f);
}

/* ---- strings ---- */

static void test_strings(void **state)
{
    fx *f = *state;
    store_txn *t = wr(f);
    set(t, 0, S("k"), S("v"), 0);
    set(t, 0, S("empty"), S(""), 0);
    set(t, 0, S("bin\0key"), S("a\0b\0\0c"), 0);
    expect_str(t, 0, S("k"), NOW, S("v"));
    expect_str(t, 0, S("empty"), NOW, S(""));
    expect_str(t, 0, S("bin\0key"), NOW, S("a\0b\0\0c"));
    expect_missing(t, 0, S("bin"), NOW);
    expect_missing(t, 0, S(""), NOW);
    set(t, 0, S(""), S("empty key"), 0);
    expect_str(t, 0, S(""), NOW, S("empty key"));
    end(f);

    t = wr(f);
    set(t, 0, S("k"), S("a much longer value than before"), 0);
    end(f);
    t = wr(f);
    expect_str(t, 0, S("k"), NOW, S("a much longer value than before"));
    set(t, 0, S("k"), S("s"), 0);
    expect_str(t, 0, S("k"), NOW, S("s"));
    counts(f, 0, 4, 0);
    for (int db = 0; db < STORE_DBS; db++) { /* sixteen databases, each its own "same" */
        char v[8];
        snprintf(v, sizeof v, "db%d", db);
        set(t, db, S("same"), v, strlen(v), 0);
    }
    end(f);
    fx_reopen(f);
    t = rd(f);
    for (int db = 0; db < STORE_DBS; db++) {
        char v[8];
        snprintf(v, sizeof v, "db%d", db);
        expect_str(t, db, S("same"), NOW, v, strlen(v));
        counts(f, db, db == 0 ? 5 : 1, 0);
    }
    expect_str(t, 0, S("k"), NOW, S("s"));
    expect_missing(t, 1, S("k"), NOW);
    end(f);
}

/* SET overwrites a record through the cursor that found it (store_set_string): every size
 * change (in place, larger, smaller, into and out of overflow pages), with the expiry
 * changing too, leaves that value and its neighbours whole, short keys and long alike. */
static void test_overwrite_in_place(void **state)
{
    fx *f = *state;
    static const size_t sizes[] = {8, 8, 200, 3, 9000, 9000, 20000, 5, 0, 4000, 16};
    char *v = malloc(20000), lk[700];
    assert_non_null(v);
    memset(lk, 'L', sizeof lk);
    store_txn *t = wr(f);
    set(t, 0, S("a"), S("before"), 0);
    set(t, 0, S("c"), S("after"), 0);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        memset(v, 'a' + (int)i, sizes[i]);
        int64_t exp = i % 3 == 1 ? NOW + 1000 : 0;
        set(t, 0, S("b"), v, sizes[i], exp);
        set(t, 0, lk, sizeof lk, v, sizes[i], exp);
        expect_str(t, 0, S("b"), NOW, v, sizes[i]);
        expect_str(t, 0, lk, sizeof lk, NOW, v, sizes[i]);
        assert_int_equal(lookup(t, 0, S("b"), NOW).expire_ms, exp);
        counts(f, 0, 4, exp ? 2 : 0);
        if (i % 2) { /* the next write starts a new transaction */
            end(f);
            t = wr(f);
        }
    }
    end(f);
    fx_reopen(f);
    t = rd(f);
    expect_str(t, 0, S("a"), NOW, S("before"));
    expect_str(t, 0, S("c"), NOW, S("after"));
    expect_str(t, 0, S("b"), NOW, v, 16);
    expect_str(t, 0, lk, sizeof lk, NOW, v, 16);
    counts(f, 0, 4, 2); /* the last write (i = 10) gave both an expiry */
    end(f);
    free(v);
}

static void test_long_keys(void **state)
{
    fx *f = *state;
    char *a = long_key(f, 5000, 'x', 4000, 'A'), *b = long_key(f, 5000, 'x', 4000, 'B');
    char *c = long_key(f, 600, 'x', 9999, 0); /* the same first 480 bytes as a and b */
    char *edge = long_key(f, STORE_SHORT_MAX, 'y', 9999, 0); /* 499 kept whole, 500 digested */
    store_txn *t = wr(f);
    set(t, 0, a, 5000, S("A"), 0);
    set(t, 0, b, 5000, S("B"), 0);
    set(t, 0, c, 600, S("C"), 0);
    set(t, 0, edge, STORE_SHORT_MAX - 1, S("short"), 0);
    set(t, 0, edge, STORE_SHORT_MAX, S("long"), 0);
    end(f);
    fx_reopen(f);
    t = wr(f);
    expect_str(t, 0, a, 5000, NOW, S("A"));
    expect_str(t, 0, b, 5000, NOW, S("B"));
    expect_str(t, 0, c, 600, NOW, S("C"));
    expect_str(t, 0, edge, STORE_SHORT_MAX - 1, NOW, S("short"));
    expect_str(t, 0, edge, STORE_SHORT_MAX, NOW, S("long"));
    expect_missing(t, 0, a, 4999, NOW);
    counts(f, 0, 5, 0);
    del(t, 0, a, 5000, 1);
    expect_missing(t, 0, a, 5000, NOW);
    expect_str(t, 0, b, 5000, NOW, S("B"));
    set(t, 0, b, 5000, S("B2"), 0);
    expect_str(t, 0, b, 5000, NOW, S("B2"));
    counts(f, 0, 4, 0);
    end(f);
}

static void fill_value(char *v, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (char)(i * 31 + seed);
}

/* Starting from a 1 MiB map, 50 MiB of 10 MiB values (one per pass, then two in one pass),
 * each announced through hint_bytes, must fit by growing the map. */
static void test_big_values_grow_map(void **state)
{
    fx *f = *state;
    size_t n = 10 * MIB;
    char *v = scratch(f, n), *w = scratch(f, n), key[8];
    store_txn *t;
    for (unsigned i = 0; i < 5; i++) {
        OK(store_txn_write(f->st, n, &t));
        snprintf(key, sizeof key, "big%u", i);
        fill_value(v, n, i);
        OK(store_set_string(t, 0, key, strlen(key), v, n, 0, NOW));
        if (i != 3)
            end(f);
    }
    store_stats stats;
    store_get_stats(f->st, &stats);
    assert_true(stats.map_size >= 50 * MIB);
    assert_int_equal(stats.failed_commits, 0);

    fx_reopen(f);
    t = rd(f);
    for (unsigned i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "big%u", i);
        fill_value(w, n, i);
        expect_str(t, 0, key, strlen(key), NOW, w, n);
    }
    end(f);
    counts(f, 0, 5, 0);
}

/* A big write whose size was not announced may fail its pass with ERR_FULL, but the store
 * must grow then, so that retrying the pass succeeds. */
static void test_unannounced_big_write_grows_after_full(void **state)
{
    fx *f = *state;
    size_t n = 10 * MIB;
    char *v = scratch(f, n);
    fill_value(v, n, 7);
    int tries = 0, rc = -1;
    while (rc != 0 && tries++ < 10) {
        rc = store_set_string(wr(f), 0, S("big"), v, n, 0, NOW);
        assert_true(rc == 0 || rc == ERR_FULL);
        rc = store_txn_end(f->st);
        assert_true(rc == 0 || rc == ERR_FULL);
    }
    OK(rc);
    expect_str(rd(f), 0, S("big"), NOW, v, n);
    end(f);
}

/* ---- expiry ---- */

static void test_expiry_lookup_set_expire_persist(void **state)
{
    fx *f = *state;
    store_txn *t = wr(f);
    set(t, 0, S("k"), S("v"), NOW + 1000);
    set(t, 0, S("p"), S("v"), 0);
    counts(f, 0, 2, 1);
    assert_int_equal(lookup(t, 0, S("k"), NOW + 999).expire_ms, NOW + 1000);
    expect_missing(t, 0, S("k"), NOW + 1000);
    expect_missing(t, 0, S("k"), NOW + 5000);
    assert_int_equal(store_set_expire(t, 0, S("nope"), NOW + 10, NOW), ERR_NOTFOUND);
    OK(store_set_expire(t, 0, S("p"), NOW + 2000, NOW));
    counts(f, 0, 2, 2);
    assert_int_equal(lookup(t, 0, S("p"), NOW).expire_ms, NOW + 2000);
    OK(store_set_expire(t, 0, S("p"), NOW + 3000, NOW)); /* moved */
    counts(f, 0, 2, 2);
    OK(store_set_expire(t, 0, S("k"), 0, NOW)); /* persisted */
    counts(f, 0, 2, 1);
    end(f);

    t = wr(f);
    assert_int_equal(lookup(t, 0, S("k"), NOW + 1000000).expire_ms, 0);
    expect_str(t, 0, S("p"), NOW + 2999, S("v"));
    expect_missing(t, 0, S("p"), NOW + 3000);
    /* set_expire on an expired key: not found, and the key is dropped and reported. */
    assert_int_equal(store_set_expire(t, 0, S("p"), 0, NOW + 3000), ERR_NOTFOUND);
    assert_int_equal(keylist_count(&f->exp, 0, S("p")), 1);
    counts(f, 0, 1, 0);
    /* No stale index entry is left behind by the move or the persist. */
    assert_int_equal(cycle(f, t, NOW + 100000000, 100, 0), 0);
    end(f);
}

static void test_set_string_expiry_accounting(void **state)
{
    fx *f = *state;
    store_txn *t = wr(f);
    set(t, 2, S("k"), S("v"), NOW + 100);
    counts(f, 2, 1, 1);
    set(t, 2, S("k"), S("v2"), NOW + 200); /* another expiry */
    counts(f, 2, 1, 1);
    set(t, 2, S("k"), S("v3"), NOW + 200); /* the same expiry */
    counts(f, 2, 1, 1);
    set(t, 2, S("k"), S("v4"), 0); /* none */
    counts(f, 2, 1, 0);
    end(f);
    fx_reopen(f);
    counts(f, 2, 1, 0);
    t = wr(f);
    expect_str(t, 2, S("k"), NOW + 100000, S("v4"));
    assert_int_equal(cycle(f, t, NOW + 100000, 100, 0), 0); /* no stale index entry */
    end(f);
}

static void test_write_on_expired_key(void **state)
{
    fx *f = *state;
    char *lk = long_key(f, 700, 'e', 9999, 0);
    store_txn *t = wr(f);
    set(t, 1, S("s"), S("old"), NOW + 10);
    set(t, 1, lk, 700, S("old"), NOW + 10);
    set(t, 1, S("h"), S("string first"), NOW + 10);
    hset(t, 1, S("oldhash"), S("f"), S("v"), 1);
    OK(store_set_expire(t, 1, S("oldhash"), NOW + 10, NOW));
    uint64_t old_id = lookup(t, 1, S("oldhash"), NOW).id;
    end(f);

    int64_t later = NOW + 10;
    int added = 0;
    t = wr(f);
    OK(store_set_string(t, 1, S("s"), S("new"), 0, later));
    OK(store_set_string(t, 1, lk, 700, S("new"), 0, later));
    OK(store_hash_set(t, 1, S("h"), S("f"), S("v"), later, &added));
    assert_int_equal(added, 1);
    OK(store_hash_set(t, 1, S("oldhash"), S("g"), S("w"), later, &added));
    assert_int_equal(added, 1);
    assert_int_equal(f->exp.n, 4);
    assert_int_equal(keylist_count(&f->exp, 1, S("s")), 1);
    assert_int_equal(keylist_count(&f->exp, 1, lk, 700), 1);
    assert_int_equal(keylist_count(&f->exp, 1, S("h")), 1);
    assert_int_equal(keylist_count(&f->exp, 1, S("oldhash")), 1);
    expect_str(t, 1, S("s"), later, S("new"));
    assert_int_equal(lookup(t, 1, S("s"), later).expire_ms, 0);
    expect_str(t, 1, lk, 700, later, S("new"));
    store_obj h = lookup(t, 1, S("h"), later);
    assert_int_equal(h.type, STORE_HASH);
    assert_int_equal(h.len, 1);
    assert_int_equal(h.expire_ms, 0);
    store_obj oh = lookup(t, 1, S("oldhash"), later);
    assert_int_equal(oh.len, 1); /* the expired hash's field "f" did not come back */
    assert_int_equal(count_fields(t, oh.id), 1);
    assert_int_equal(count_fields(t, old_id), oh.id == old_id ? 1 : 0);
    expect_field(t, &oh, S("f"), NULL, 0);
    counts(f, 1, 4, 0);
    end(f);
}

static void test_expire_cycle(void **state)
{
    fx *f = *state;
    char *lk = long_key(f, 3000, 'L', 2000, '!');
    store_txn *t = wr(f);
    set(t, 0, S("due0"), S("v"), NOW + 10);
    set(t, 0, S("later0"), S("v"), NOW + 1000);
    set(t, 0, S("forever"), S("v"), 0);
    set(t, 5, S("due5"), S("v"), NOW);
    set(t, 5, lk, 3000, S("v"), NOW + 20);
    hset(t, 15, S("dueh"), S("f"), S("v"), 1);
    OK(store_set_expire(t, 15, S("dueh"), NOW + 30, NOW));
    hset(t, 15, S("dueh"), S("g"), S("v"), 1); /* a field write keeps the hash's expiry */
    assert_int_equal(lookup(t, 15, S("dueh"), NOW).expire_ms, NOW + 30);
    uint64_t hid = lookup(t, 15, S("dueh"), NOW).id;
    end(f);

    t = rd(f);
    assert_int_equal(store_expire_due(t, NOW - 1), 0); /* nothing due yet */
    assert_int_equal(store_expire_due(t, NOW), 1);     /* due5, exactly at its time */
    end(f);

    t = wr(f);
    assert_int_equal(cycle(f, t, NOW + 9, 100, 0), 1); /* only due5 */
    assert_int_equal(keylist_count(&f->exp, 5, S("due5")), 1);
    assert_int_equal(cycle(f, t, NOW + 500, 100, 0), 3);
    assert_int_equal(keylist_count(&f->exp, 0, S("due0")), 1);
    assert_int_equal(keylist_count(&f->exp, 5, lk, 3000), 1);
    assert_int_equal(keylist_count(&f->exp, 15, S("dueh")), 1);
    assert_int_equal(count_fields(t, hid), 0);
    end(f); /* fails if dropping the only hash's fields poisoned the pass */

    counts(f, 0, 2, 1);
    counts(f, 5, 0, 0);
    counts(f, 15, 0, 0);
    t = rd(f);
    assert_int_equal(store_expire_due(t, NOW + 999), 0); /* later0 is due only at +1000 */
    assert_int_equal(store_expire_due(t, NOW + 1000), 1);
    expect_str(t, 0, S("later0"), NOW + 500, S("v"));
    expect_str(t, 0, S("forever"), NOW + 500, S("v"));
    expect_missing(t, 0, S("due0"), 0); /* deleted, not just hidden */
    expect_missing(t, 5, lk, 3000, 0);
    end(f);
}

static void test_expire_cycle_max_and_more(void **state)
{
    fx *f = *state;
    store_txn *t = wr(f);
    set(t, 0, S("a"), S("v"), NOW + 1);
    set(t, 0, S("b"), S("v"), NOW + 2);
    set(t, 0, S("c"), S("v"), NOW + 3);
    set(t, 7, S("d"), S("v"), NOW + 1);
    set(t, 7, S("e"), S("v"), NOW + 2);
    set(t, 7, S("notyet"), S("v"), NOW + 100);
    end(f);

    t = wr(f);
    assert_int_equal(cycle(f, t, NOW + 50, 2, 1), 2);
    assert_int_equal(cycle(f, t, NOW + 50, 2, 1), 2);
    assert_int_equal(cycle(f, t, NOW + 50, 1, 0), 1); /* the last due key: none remain */
    assert_int_equal(cycle(f, t, NOW + 50, 10, 0), 0);
    assert_int_equal(cycle(f, t, NOW + 100, 0, 1), 0); /* max 0 still reports `more` */
    end(f);
    const char *names[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(keylist_count(&f->exp, i < 3 ? 0 : 7, names[i], 1), 1);
    counts(f, 0, 0, 0);
    counts(f, 7, 1, 1);
}

/* ---- hashes ---- */

static void test_hashes(void **state)
{
    fx *f = *state;
    char *lf1 = long_key(f, 5000, 'f', 3000, '1'), *lf2 = long_key(f, 5000, 'f', 3000, '2');
    store_txn *t = wr(f);
    hset(t, 0, S("h"), S("a"), S("1"), 1);
    hset(t, 0, S("h"), S("b"), S("2"), 1);
    hset(t, 0, S("h"), S("a"), S("one"), 0);
    hset(t, 0, S("h"), S(""), S(""), 1);
    hset(t, 0, S("h"), lf1, 5000, S("L1"), 1);
    hset(t, 0, S("h"), lf2, 5000, S("L2"), 1);
    hset(t, 0, S("h"), lf2, 5000, S("L2b"), 0);
    end(f);
    fx_reopen(f);

    t = wr(f);
    store_obj h = lookup(t, 0, S("h"), NOW);
    assert_int_equal(h.type, STORE_HASH);
    assert_int_equal(h.len, 5);
    expect_field(t, &h, S("a"), S("one"));
    expect_field(t, &h, S("b"), S("2"));
    expect_field(t, &h, S(""), S(""));
    expect_field(t, &h, lf1, 5000, S("L1"));
    expect_field(t, &h, lf2, 5000, S("L2b"));
    expect_field(t, &h, S("zz"), NULL, 0);
    expect_field(t, &h, lf1, 4999, NULL, 0);
    assert_int_equal(count_fields(t, h.id), 5);

    /* WRONGTYPE both ways. */
    set(t, 0, S("s"), S("str"), 0);
    int added = -1, removed = -1;
    const char *v;
    size_t vl;
    assert_int_equal(store_hash_set(t, 0, S("s"), S("a"), S("1"), NOW, &added), ERR_WRONGTYPE);
    assert_int_equal(store_hash_del(t, 0, S("s"), S("a"), NOW, &removed), ERR_WRONGTYPE);
    store_obj s = lookup(t, 0, S("s"), NOW);
    assert_int_equal(store_hash_get(t, &s, S("a"), &v, &vl), ERR_WRONGTYPE);
    expect_str(t, 0, S("s"), NOW, S("str"));

    /* Deleting fields; the last one takes the key with it. */
    hdel(t, 0, S("nohash"), S("a"), 0);
    hdel(t, 0, S("h"), S("zz"), 0);
    hdel(t, 0, S("h"), S("a"), 1);
    hdel(t, 0, S("h"), S("a"), 0);
    hdel(t, 0, S("h"), S("b"), 1);
    hdel(t, 0, S("h"), S(""), 1);
    hdel(t, 0, S("h"), lf1, 5000, 1);
    assert_int_equal(lookup(t, 0, S("h"), NOW).len, 1);
    counts(f, 0, 2, 0);
    hdel(t, 0, S("h"), lf2, 5000, 1);
    expect_missing(t, 0, S("h"), NOW);
    counts(f, 0, 1, 0);
    assert_int_equal(count_fields(t, h.id), 0);

    char *lk = long_key(f, 2000, 'k', 1999, '!'); /* a hash under a long (digested) key */
    hset(t, 0, lk, 2000, S("a"), S("1"), 1);
    hset(t, 0, lk, 2000, S("b"), S("2"), 1);
    assert_int_equal(lookup(t, 0, lk, 2000, NOW).len, 2);
    hdel(t, 0, lk, 2000, S("a"), 1);
    hdel(t, 0, lk, 2000, S("b"), 1);
    expect_missing(t, 0, lk, 2000, NOW);
    counts(f, 0, 1, 0);
    end(f);
}

/* Replacing or deleting a hash drops its fields, including when it is the only hash. */
static void test_hash_replaced_or_deleted(void **state)
{
    fx *f = *state;
    char *lf = long_key(f, 800, 'q', 9999, 0);
    store_txn *t = wr(f);
    hset(t, 0, S("h"), S("a"), S("1"), 1);
    hset(t, 0, S("h"), S("b"), S("2"), 1);
    hset(t, 0, S("h"), lf, 800, S("3"), 1);
    end(f);

    t = wr(f);
    store_obj old = lookup(t, 0, S("h"), NOW);
    set(t, 0, S("h"), S("now a string"), 0);
    assert_int_equal(count_fields(t, old.id), 0);
    expect_field(t, &old, S("a"), NULL, 0);
    del(t, 0, S("h"), 1);
    hset(t, 0, S("h"), S("c"), S("4"), 1);
    end(f); /* fails if emptying the fields table poisoned the pass */
    fx_reopen(f);
    t = wr(f);
    store_obj h = lookup(t, 0, S("h"), NOW);
    assert_int_equal(h.len, 1);
    assert_int_equal(count_fields(t, h.id), 1);
    expect_field(t, &h, S("a"), NULL, 0);
    expect_field(t, &h, lf, 800, NULL, 0);

    hset(t, 0, S("h"), S("d"), S("5"), 1); /* two fields, the only hash: DEL drops both */
    del(t, 0, S("h"), 1);
    assert_int_equal(count_fields(t, h.id), 0);
    counts(f, 0, 0, 0);
    end(f);
}

/* ---- delete / rename ---- */

static void test_delete_and_rename(void **state)
{
    fx *f = *state;
    char *lk = long_key(f, 1000, 'r', 900, '#');
    store_txn *t = wr(f);
    set(t, 0, S("s"), S("sv"), NOW + 500);
    hset(t, 0, S("h"), S("f"), S("hv"), 1);
    hset(t, 0, S("h"), S("g"), S("hw"), 1);
    hset(t, 0, S("victim"), S("x"), S("1"), 1);
    hset(t, 0, S("victim"), S("y"), S("2"), 1);
    set(t, 0, S("d"), S("dv"), 0);
    end(f);

    t = wr(f);
    del(t, 0, S("d"), 1);
    del(t, 0, S("d"), 0);
    assert_int_equal(store_rename(t, 0, S("missing"), S("x"), NOW), ERR_NOTFOUND);

    /* A string with expiry, through a long name and back. */
    OK(store_rename(t, 0, S("s"), lk, 1000, NOW));
    expect_missing(t, 0, S("s"), NOW);
    assert_int_equal(lookup(t, 0, lk, 1000, NOW).expire_ms, NOW + 500);
    OK(store_rename(t, 0, lk, 1000, S("s2"), NOW));
    expect_missing(t, 0, lk, 1000, NOW);
    expect_str(t, 0, S("s2"), NOW, S("sv"));
    assert_int_equal(lookup(t, 0, S("s2"), NOW).expire_ms, NOW + 500);
    counts(f, 0, 3, 1);

    /* A hash onto an existing hash: the victim's fields go, the mover's stay. */
    store_obj h = lookup(t, 0, S("h"), NOW), victim = lookup(t, 0, S("victim"), NOW);
    OK(store_rename(t, 0, S("h"), S("victim"), NOW));
    expect_missing(t, 0, S("h"), NOW);
    store_obj moved = lookup(t, 0, S("victim"), NOW);
    assert_int_equal(moved.type, STORE_HASH);
    assert_int_equal(moved.len, 2);
    expect_field(t, &moved, S("f"), S("hv"));
    expect_field(t, &moved, S("g"), S("hw"));
    expect_field(t, &moved, S("x"), NULL, 0);
    assert_int_equal(count_fields(t, victim.id), 0);
    assert_int_equal(count_fields(t, h.id), 2);
    counts(f, 0, 2, 1);

    /* Onto itself: nothing changes. */
    OK(store_rename(t, 0, S("s2"), S("s2"), NOW));
    expect_str(t, 0, S("s2"), NOW, S("sv"));
    assert_int_equal(lookup(t, 0, S("s2"), NOW).expire_ms, NOW + 500);
    counts(f, 0, 2, 1);

    /* A string with expiry onto the (only) hash: replaced, counts follow. */
    OK(store_rename(t, 0, S("s2"), S("victim"), NOW));
    expect_str(t, 0, S("victim"), NOW, S("sv"));
    assert_int_equal(count_fields(t, h.id), 0);
    counts(f, 0, 1, 1);
    /* An expired source is not found (and is reported). */
    assert_int_equal(store_rename(t, 0, S("victim"), S("z"), NOW + 500), ERR_NOTFOUND);
    assert_int_equal(keylist_count(&f->exp, 0, S("victim")), 1);
    counts(f, 0, 0, 0);
    /* The expiry index followed the renames: nothing stale for the cycle to trip on. */
    assert_int_equal(cycle(f, t, NOW + 100000, 100, 0), 0);
    end(f);
}

/* ---- iteration ---- */

/* One chunk of up to n keys (or fields of hash hkey) from the saved position, in a pass of
 * its own; returns 0 at the end. Nothing may come back twice. */
static int scan_chunk(fx *f, int db, const char *hkey, char *pos, size_t *plen, int n,
                      int64_t now, keylist *s)
{
    store_txn *t = rd(f);
    store_iter *it;
    if (hkey) {
        store_obj h = lookup(t, db, hkey, strlen(hkey), now);
        OK(store_iter_fields(t, &h, *plen ? pos : NULL, *plen, &it));
    } else {
        OK(store_iter_keys(t, db, *plen ? pos : NULL, *plen, now, &it));
    }
    int rc = 0;
    for (int got = 0; got < n; got++) {
        const char *k, *v;
        size_t kl, vl;
        rc = hkey ? store_iter_next_field(it, &k, &kl, &v, &vl)
                  : store_iter_next(it, &k, &kl, NULL);
        if (rc)
            break;
        assert_int_equal(keylist_count(s, db, k, kl), 0);
        keylist_add(s, db, k, kl);
    }
    assert_true(rc == 0 || rc == ERR_NOTFOUND);
    const char *p;
    store_iter_pos(it, &p, plen);
    assert_true(*plen <= 600);
    memcpy(pos, p, *plen);
    store_iter_free(it);
    end(f);
    return rc == 0;
}

static void test_iter_keys_in_order(void **state)
{
    fx *f = *state;
    char *l1 = long_key(f, 600, 'm', 590, '1'), *l2 = long_key(f, 600, 'm', 590, '2');
    store_txn *t = wr(f);
    set(t, 4, S("b"), S(""), 0);
    set(t, 4, S("a"), S(""), 0);
    set(t, 4, l1, 600, S(""), 0);
    set(t, 4, S("c"), S(""), NOW + 10);
    hset(t, 4, S("h"), S("f"), S("v"), 1);
    set(t, 4, l2, 600, S(""), NOW + 10);
    set(t, 3, S("other"), S(""), 0);
    set(t, 5, S("other"), S(""), 0);
    end(f);
    keylist s = {0};
    char pos[600];
    size_t plen = 0;
    while (scan_chunk(f, 4, NULL, pos, &plen, 1, NOW, &s)) /* one key per pass */
        ;
    assert_int_equal(s.n, 6); /* short keys in order, then the long ones */
    assert_memory_equal(s.key[0], "a", 1);
    assert_memory_equal(s.key[1], "b", 1);
    assert_memory_equal(s.key[2], "c", 1);
    assert_memory_equal(s.key[3], "h", 1);
    assert_int_equal(keylist_count(&s, 4, l1, 600) + keylist_count(&s, 4, l2, 600), 2);
    keylist_free(&s);
    plen = 0; /* after c and l2 expire */
    while (scan_chunk(f, 4, NULL, pos, &plen, 100, NOW + 10, &s))
        ;
    assert_int_equal(s.n, 4);
    assert_int_equal(keylist_count(&s, 4, S("c")) + keylist_count(&s, 4, l2, 600), 0);
    keylist_free(&s);
}

/* Keys (or fields) present throughout a resumed scan come back exactly once, whatever is
 * inserted or deleted between chunks. */
static void churn_scan(fx *f, const char *hkey)
{
    char name[16], *longs[3];
    for (int i = 0; i < 3; i++) /* a shared 480-byte prefix */
        longs[i] = long_key(f, 700, 'z', 600, (char)('0' + i));
    store_txn *t = wr(f);
    size_t hl = hkey ? strlen(hkey) : 0;
    for (int i = 0; i < 63; i++) {
        char *k = name;
        size_t kl = i < 60 ? (size_t)snprintf(name, sizeof name, "s%03d", i * 2) : 700;
        if (i >= 60)
            k = longs[i - 60];
        if (hkey)
            hset(t, 6, hkey, hl, k, kl, S("v"), 1);
        else
            set(t, 6, k, kl, S("v"), 0);
    }
    end(f);
    keylist s = {0};
    char pos[600];
    size_t plen = 0;
    int chunk = 0, more = 1;
    while (more) {
        more = scan_chunk(f, 6, hkey, pos, &plen, 7, NOW, &s);
        t = wr(f); /* churn: odd-numbered names before and after the position come and go */
        for (int j = 0; j < 3; j++) {
            int r, add = (chunk * 37 + j * 53) % 120 | 1, gone = (chunk * 11 + j * 29) % 120 | 1;
            size_t kl = (size_t)snprintf(name, sizeof name, "s%03d", add);
            if (hkey)
                OK(store_hash_set(t, 6, hkey, hl, name, kl, S("c"), NOW, &r));
            else
                set(t, 6, name, kl, S("c"), 0);
            kl = (size_t)snprintf(name, sizeof name, "s%03d", gone);
            if (hkey)
                OK(store_hash_del(t, 6, hkey, hl, name, kl, NOW, &r));
            else
                OK(store_delete(t, 6, name, kl, NOW, &r));
        }
        end(f);
        chunk++;
    }
    for (int i = 0; i < 60; i++) {
        snprintf(name, sizeof name, "s%03d", i * 2);
        assert_int_equal(keylist_count(&s, 6, name, strlen(name)), 1);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(keylist_count(&s, 6, longs[i], 700), 1);
    assert_true(chunk >= 9);
    keylist_free(&s);
}

static void test_iter_keys_resumable(void **state)
{
    churn_scan(*state, NULL);
}

static void test_iter_fields_resumable(void **state)
{
    churn_scan(*state, "hash");
}

/* ---- flush ---- */

static void test_flush(void **state)
{
    fx *f = *state;
    char *lk = long_key(f, 900, 'k', 9999, 0);
    store_txn *t = wr(f);
    for (int db = 1; db <= 2; db++) {
        set(t, db, S("s"), S("v"), NOW + 100);
        hset(t, db, S("h"), S("f"), S("v"), 1);
        hset(t, db, S("h"), S("g"), S("v"), 1);
    }
    set(t, 1, lk, 900, S("v"), 0);
    uint64_t h1 = lookup(t, 1, S("h"), NOW).id, h2 = lookup(t, 2, S("h"), NOW).id;
    end(f);

    t = wr(f);
    OK(store_flush(t, 1));
    expect_missing(t, 1, S("s"), NOW);
    expect_missing(t, 1, lk, 900, NOW);
    expect_missing(t, 1, S("h"), NOW);
    assert_int_equal(count_fields(t, h1), 0);
    assert_int_equal(count_fields(t, h2), 2);
    expect_str(t, 2, S("s"), NOW, S("v"));
    end(f);
    counts(f, 1, 0, 0);
    counts(f, 2, 2, 1);

    t = wr(f); /* db 1's expiry entry went with it: the cycle reports only db 2's key */
    set(t, 1, S("later"), S("v"), NOW + 5000); /* so that the cycle walks db 1 too */
    assert_int_equal(cycle(f, t, NOW + 100, 100, 0), 1);
    assert_int_equal(keylist_count(&f->exp, 2, S("s")), 1);
    set(t, 9, S("x"), S("v"), NOW + 100);
    end(f);

    t = wr(f);
    OK(store_flush(t, -1));
    end(f);
    fx_reopen(f);
    for (int db = 0; db < STORE_DBS; db++)
        counts(f, db, 0, 0);
    t = rd(f);
    expect_missing(t, 2, S("h"), NOW);
    expect_missing(t, 9, S("x"), NOW);
    assert_int_equal(count_fields(t, h2), 0);
    end(f);
}

/* ---- pass transactions ---- */

static void test_pass_transactions(void **state)
{
    fx *f = *state;
    assert_int_equal(store_txn_dirty(f->st), 0);
    expect_missing(rd(f), 0, S("k"), NOW);
    store_txn *t = wr(f);
    assert_int_equal(store_txn_dirty(f->st), 1);
    set(t, 0, S("k"), S("v"), 0);
    assert_ptr_equal(wr(f), t); /* one write transaction per pass */
    expect_str(rd(f), 0, S("k"), NOW, S("v")); /* a pass sees its own writes */
    end(f);
    assert_int_equal(store_txn_dirty(f->st), 0);
    expect_str(rd(f), 0, S("k"), NOW, S("v")); /* and the next pass's snapshot has them */
    end(f);
    end(f); /* an empty pass is fine */
    store_stats stats;
    store_get_stats(f->st, &stats);
    assert_int_equal(stats.commits, 1);
    assert_int_equal(stats.failed_commits, 0);
}

/* A pass whose write transaction fails keeps nothing: here an expiry entry whose key record
 * was removed behind the store's back makes the cycle fail with ERR_CORRUPT. */
static void test_poisoned_pass_keeps_nothing(void **state)
{
    fx *f = *state;
    store_txn *t = wr(f);
    set(t, 0, S("gone"), S("v"), NOW + 1);
    set(t, 0, S("kept"), S("v"), 0);
    end(f);
    fx_close(f);
    raw_edit(f->dir, "keys", "\0gone", 5, NULL, 0);
    fx_open(f);

    t = wr(f);
    set(t, 0, S("new"), S("v"), 0);
    del(t, 0, S("kept"), 1);
    counts(f, 0, 2, 1);
    int more;
    assert_int_equal(store_expire_cycle(t, NOW + 1, 10, &more), ERR_CORRUPT);
    assert_int_equal(store_txn_write(f->st, 0, &t), ERR_CORRUPT);
    assert_int_equal(store_txn_end(f->st), ERR_CORRUPT);

    t = rd(f);
    expect_missing(t, 0, S("new"), NOW);
    expect_str(t, 0, S("kept"), NOW, S("v"));
    counts(f, 0, 2, 1); /* the counters are back to the committed state */
    end(f);
    store_stats stats;
    store_get_stats(f->st, &stats);
    assert_int_equal(stats.failed_commits, 1);
    set(wr(f), 0, S("after"), S("v"), 0); /* the next pass writes again */
    end(f);
    expect_str(rd(f), 0, S("after"), NOW, S("v"));
    end(f);
}

/* ---- replication log ---- */

static void test_log_offsets(void **state)
{
    fx *f = *state;
    const char *set_argv[] = {"SET", "k", "v"};
    const size_t set_lens[] = {3, 1, 1};
    const uint64_t sel0 = strlen("*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n");
    const uint64_t sel12 = strlen("*2\r\n$6\r\nSELECT\r\n$2\r\n12\r\n");
    const uint64_t setkv = strlen("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
    assert_int_equal(store_offset(f->st), 0);
    assert_int_equal(store_log(f->st, 0, 3, set_argv, set_lens), sel0 + setkv);
    assert_int_equal(f->log_calls, 1);
    assert_int_equal(f->log_offset, sel0 + setkv);
    assert_int_equal(f->log_db, 0);
    assert_int_equal(f->log_argc, 3);
    /* The same database again: no SELECT. */
    assert_int_equal(store_log(f->st, 0, 3, set_argv, set_lens), sel0 + 2 * setkv);
    assert_int_equal(store_offset(f->st), sel0 + 2 * setkv);

    char *big = scratch(f, 12345);
    memset(big, 0, 12345);
    const char *hset_argv[] = {"HSET", "key", "field", big};
    const size_t hset_lens[] = {4, 3, 5, 12345};
    uint64_t want = sel0 + 2 * setkv + sel12 +
                    strlen("*4\r\n$4\r\nHSET\r\n$3\r\nkey\r\n$5\r\nfield\r\n$12345\r\n") + 12345 + 2;
    assert_int_equal(store_log(f->st, 12, 4, hset_argv, hset_lens), want);
    assert_int_equal(f->log_db, 12);
    assert_int_equal(f->log_offset, want);
    assert_int_equal(store_log(f->st, 0, 3, set_argv, set_lens), want + sel0 + setkv);
    assert_int_equal(f->log_calls, 4);
}

/* ---- durability ---- */

static void test_durability(void **state)
{
    fx *f = *state;
    store_stats stats;
    assert_int_equal(store_set_durability(f->st, 3), ERR_INVAL);
    assert_int_equal(store_set_durability(f->st, -1), ERR_INVAL);
    store_get_stats(f->st, &stats);
    assert_int_equal(stats.durability, DURABILITY_NO);

    OK(store_set_durability(f->st, DURABILITY_ALWAYS));
    store_get_stats(f->st, &stats);
    assert_int_equal(stats.durability, DURABILITY_ALWAYS);
    uint64_t syncs = stats.syncs;
    set(wr(f), 0, S("a"), S("v"), 0);
    end(f);
    store_get_stats(f->st, &stats);
    assert_int_equal(stats.syncs, syncs + 1); /* synced inside the commit */

    OK(store_set_durability(f->st, DURABILITY_EVERYSEC));
    syncs = stats.syncs;
    set(wr(f), 0, S("b"), S("v"), 0);
    end(f);
    for (int i = 0; i < 50; i++) { /* the background sync comes within about a second */
        store_get_stats(f->st, &stats);
        if (stats.syncs > syncs)
            break;
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    assert_true(stats.syncs > syncs);
    assert_int_equal(stats.durability, DURABILITY_EVERYSEC);

    OK(store_set_durability(f->st, DURABILITY_NO));
    store_get_stats(f->st, &stats);
    assert_int_equal(stats.durability, DURABILITY_NO);
    fx_reopen(f);
    expect_str(rd(f), 0, S("b"), NOW, S("v"));
    end(f);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define T_SMALL(name) cmocka_unit_test_setup_teardown(name, setup_small_map, teardown)

int main(void)
{
    log_set_level(LOG_WARNING + 1); /* the poisoned-pass tests log on purpose */
    const struct CMUnitTest tests[] = {
        T(test_reopen_keeps_data_and_counts),
        T(test_wrong_format_is_corrupt),
        T(test_strings),
        T(test_overwrite_in_place),
        T(test_long_keys),
        T_SMALL(test_big_values_grow_map),
        T_SMALL(test_unannounced_big_write_grows_after_full),
        T(test_expiry_lookup_set_expire_persist),
        T(test_set_string_expiry_accounting),
        T(test_write_on_expired_key),
        T(test_expire_cycle),
        T(test_expire_cycle_max_and_more),
        T(test_hashes),
        T(test_hash_replaced_or_deleted),
        T(test_delete_and_rename),
        T(test_iter_keys_in_order),
        T(test_iter_keys_resumable),
        T(test_iter_fields_resumable),
        T(test_flush),
        T(test_pass_transactions),
        T(test_poisoned_pass_keeps_nothing),
        T(test_log_offsets),
        T(test_durability),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
