/* test_repl.c: the replication backlog ring (wrapping, what it can and cannot give back),
 * the snapshot frame codec (round trip, incomplete input, every damaged byte refused), and
 * the store's side: the log position persisted with each commit and rewound by a failed
 * pass, a snapshot read out and loaded into another directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"

#include "replication/repl_int.h"

static void test_backlog_wraps_and_copies(void **state)
{
    (void)state;
    backlog b;
    backlog_init(&b, 16, 100); /* the stream is at offset 100 */
    buf out;
    buf_init(&out);
    assert_int_equal(backlog_copy(&b, 100, &out), 0); /* nothing missing */
    assert_int_equal(out.len, 0);
    assert_int_equal(backlog_copy(&b, 99, &out), -1); /* before the ring began */
    backlog_append(&b, "abcdefghij", 10);
    backlog_append(&b, "KLMNOPQRST", 10); /* wraps: keeps the last 16 bytes */
    assert_int_equal(b.end, 120);
    assert_int_equal(b.len, 16);
    assert_int_equal(backlog_copy(&b, 104, &out), 0);
    assert_int_equal(out.len, 16);
    assert_memory_equal(out.data, "efghijKLMNOPQRST", 16);
    out.len = 0;
    assert_int_equal(backlog_copy(&b, 117, &out), 0);
    assert_memory_equal(out.data, "RST", 3);
    assert_int_equal(backlog_copy(&b, 103, &out), -1); /* overwritten */
    assert_int_equal(backlog_copy(&b, 121, &out), -1); /* not yet written */
    backlog_append(&b, "0123456789abcdefXYZ", 19);     /* bigger than the ring */
    out.len = 0;
    assert_int_equal(backlog_copy(&b, b.end - 16, &out), 0);
    assert_memory_equal(out.data, "3456789abcdefXYZ", 16);
    buf_free(&out);
    backlog_free(&b);
}

static void test_frames_round_trip_and_damage(void **state)
{
    (void)state;
    buf f;
    buf_init(&f);
    frame_put(&f, FRAME_RECORDS, "keys", 4, "payload bytes", 13);
    int type;
    const char *name, *payload;
    size_t nlen, plen, size;
    assert_int_equal(frame_get(f.data, f.len, &type, &name, &nlen, &payload, &plen, &size), 0);
    assert_int_equal(type, FRAME_RECORDS);
    assert_int_equal(size, f.len);
    assert_memory_equal(name, "keys", 4);
    assert_int_equal(plen, 13);
    assert_memory_equal(payload, "payload bytes", 13);
    for (size_t n = 0; n < f.len; n++) /* every prefix: wait for more, never a frame */
        assert_int_not_equal(frame_get(f.data, n, &type, &name, &nlen, &payload, &plen, &size), 0);
    for (size_t i = 0; i < f.len; i++) { /* every flipped byte is refused or incomplete */
        f.data[i] ^= 0x40;
        assert_int_not_equal(frame_get(f.data, f.len, &type, &name, &nlen, &payload, &plen, &size),
                             0);
        f.data[i] ^= 0x40;
    }
    /* built in place after other bytes, as the snapshot worker does: the same frame */
    buf g;
    buf_init(&g);
    buf_append(&g, "before", 6);
    size_t start = frame_begin(&g, FRAME_RECORDS, "keys", 4);
    buf_append(&g, "payload ", 8);
    buf_append(&g, "bytes", 5);
    frame_finish(&g, start);
    assert_int_equal(start, 6);
    assert_int_equal(g.len - start, f.len);
    assert_memory_equal(g.data + start, f.data, f.len);
    buf_free(&g);
    buf_free(&f);
}

#define OK(expr) assert_int_equal((expr), 0)

static store *open_store(const char *dir)
{
    store_config cfg = {.dir = dir, .map_size = 8 << 20, .durability = DURABILITY_NO};
    char err[256];
    store *st;
    OK(store_open(&cfg, &st, err, sizeof err));
    return st;
}

static void set(store *st, int db, const char *k, const char *v)
{
    store_txn *t;
    OK(store_txn_write(st, 0, &t));
    OK(store_set_string(t, db, k, strlen(k), v, strlen(v), 0, 1000));
    const char *argv[3] = {"SET", k, v};
    size_t lens[3] = {3, strlen(k), strlen(v)};
    store_log(st, db, 3, argv, lens);
}

static void commit_seen(void *ctx, int ok, uint64_t offset)
{
    int64_t *last = ctx;
    *last = ok ? (int64_t)offset : -(int64_t)offset;
}

static void rmrf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_log_position_persists(void **state)
{
    (void)state;
    char dir[] = "/tmp/quiver-test-repl-XXXXXX";
    assert_non_null(mkdtemp(dir));
    store *st = open_store(dir);
    int64_t last = 0;
    store_set_commit_hook(st, commit_seen, &last);
    assert_string_equal(store_replid(st), "");
    store_set_replid(st, "0123456789012345678901234567890123456789");
    set(st, 3, "k", "v"); /* SELECT 3 (*2 $6 SELECT $1 3 = 23 bytes) + SET k v (27) */
    OK(store_txn_end(st));
    assert_int_equal(store_offset(st), 23 + 27);
    assert_int_equal(last, 50); /* the hook heard the commit */
    set(st, 3, "k2", "v");      /* same database: no SELECT (28 bytes) */
    store_close(st);            /* commits the pass */
    st = open_store(dir);
    assert_int_equal(store_offset(st), 78);
    assert_int_equal(store_log_db(st), 3);
    assert_string_equal(store_replid(st), "0123456789012345678901234567890123456789");
    store_close(st);
    rmrf(dir);
}

/* A snapshot read record by record and loaded elsewhere is the same data, and later
 * writes to the source are not in it. */
static void test_snapshot_loads_elsewhere(void **state)
{
    (void)state;
    char src[] = "/tmp/quiver-test-repl-XXXXXX", dst[] = "/tmp/quiver-test-repl-XXXXXX";
    assert_non_null(mkdtemp(src));
    assert_non_null(mkdtemp(dst));
    store *st = open_store(src);
    store_set_replid(st, "abcdefabcdefabcdefabcdefabcdefabcdefabcd");
    char k[16];
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof k, "key%d", i);
        set(st, i % 3, k, "value");
    }
    OK(store_txn_end(st));
    char ckpt[64], err[256];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", src);
    store_snap *snap;
    OK(store_snap_begin(st, ckpt, &snap, err, sizeof err));
    set(st, 0, "later", "x"); /* after the snapshot */
    OK(store_txn_end(st));
    store_loader *ld;
    OK(store_load_begin(dst, 8 << 20, &ld, err, sizeof err));
    const char *db;
    const void *key, *val;
    size_t kl, vl;
    int rc, n = 0;
    while ((rc = store_snap_next(snap, &db, &key, &kl, &val, &vl)) == 0) {
        OK(store_load_put(ld, db, key, kl, val, vl));
        n++;
    }
    assert_int_equal(rc, ERR_NOTFOUND);
    assert_true(n >= 500);
    assert_int_equal(store_load_put(ld, "nosuch", "k", 1, "v", 1), ERR_CORRUPT);
    assert_int_equal(store_load_put(ld, "keys", "\0", 1, "v", 1), ERR_CORRUPT); /* order */
    OK(store_load_end(ld, 1));
    store_snap_end(snap);
    store_close(st);
    store *copy = open_store(dst);
    store_txn *t;
    OK(store_txn_read(copy, &t));
    store_obj o;
    OK(store_lookup(t, 2, "key2", 4, 1000, &o));
    assert_int_equal(o.len, 5);
    assert_int_equal(store_lookup(t, 0, "later", 5, 1000, &o), ERR_NOTFOUND);
    assert_int_equal(store_dbsize(copy, 0) + store_dbsize(copy, 1) + store_dbsize(copy, 2), 500);
    assert_string_equal(store_replid(copy), "abcdefabcdefabcdefabcdefabcdefabcdefabcd");
    store_close(copy);
    rmrf(src);
    rmrf(dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backlog_wraps_and_copies),
        cmocka_unit_test(test_frames_round_trip_and_damage),
        cmocka_unit_test(test_log_position_persists),
        cmocka_unit_test(test_snapshot_loads_elsewhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
