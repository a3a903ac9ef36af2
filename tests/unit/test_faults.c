/* test_faults.c: allocation failure at every allocation site of store/ and index/ that goes
 * through the wrapper (core/alloc.h). Each operation is swept: it runs with the n-th
 * allocation failing, for n = 0, 1, 2, ... until it runs without meeting the failure. After
 * each failed attempt the test asserts that the operation returned ERR_NOMEM, that no block
 * allocated through the wrapper is left over (alloc_live), and that the state it may change
 * reads back byte for byte as before (the whole store: keys, hashes, catalog, online rows,
 * history; an index: its snapshot); the last attempt must succeed and give the oracle's
 * answer. Reads are checked the same way. Allocations made inside LMDB, RocksDB and FAISS
 * are not ours to fail: those libraries are outside the wrapper. The sweeps print how many
 * failures they injected. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp, nftw */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"
#include "index/index.h"
#include "store/store.h"

#define S(lit) lit, sizeof(lit) - 1
#define OK(expr) assert_int_equal((expr), 0)
#define NOW 1000000 /* ms */
#define MIB ((size_t)1 << 20)

static long injected; /* failures injected by every sweep so far */

/* ---- the sweep ---------------------------------------------------------------------------- */

/* One operation under test. run returns its code; state appends what the operation may
 * change, as bytes. fresh (optional) builds the state before each attempt and drop frees
 * it after: then "nothing leaked" is checked once drop has run, since what the operation
 * keeps in the structure (a searcher in a pool) is freed with it. */
typedef struct op {
    const char *name;
    int (*run)(void *ctx);
    void (*state)(void *ctx, buf *out);
    void (*fresh)(void *ctx);
    void (*drop)(void *ctx);
} op;

static void same_state(const op *o, long n, const buf *before, const buf *after)
{
    if (before->len != after->len || memcmp(before->data, after->data, before->len) != 0)
        fail_msg("%s: allocation %ld failed: the state changed", o->name, n);
}

/* Sweeps o; returns the number of failures injected. */
static long sweep(const op *o, void *ctx)
{
    buf before, after;
    buf_init(&before);
    buf_init(&after);
    buf_reserve(&before, 64); /* later growth moves a block, and the count stays */
    buf_reserve(&after, 64);
    for (long n = 0;; n++) {
        long base = alloc_live();
        if (o->fresh)
            o->fresh(ctx);
        before.len = 0;
        o->state(ctx, &before);
        long live = alloc_live();
        alloc_fail_after(n);
        int rc = o->run(ctx);
        int fired = alloc_fail_after(-1) < 0;
        if (!fired) {
            if (rc)
                fail_msg("%s: %s with no injected failure", o->name, err_str(rc));
            if (o->drop)
                o->drop(ctx);
            buf_free(&before);
            buf_free(&after);
            printf("  %-34s %3ld injected failures\n", o->name, n);
            injected += n;
            return n;
        }
        if (rc != ERR_NOMEM)
            fail_msg("%s: allocation %ld failed: got %s, want ERR_NOMEM", o->name, n,
                     rc ? err_str(rc) : "success");
        if (!o->fresh && alloc_live() != live)
            fail_msg("%s: allocation %ld failed: %ld blocks left over", o->name, n,
                     alloc_live() - live);
        after.len = 0;
        o->state(ctx, &after);
        same_state(o, n, &before, &after);
        if (o->drop) {
            o->drop(ctx);
            if (alloc_live() != base)
                fail_msg("%s: allocation %ld failed: %ld blocks leaked", o->name, n,
                         alloc_live() - base);
        }
    }
}

/* An operation checks its answer with injection paused, so the check meets no failure. */
static long pause_faults(void)
{
    return alloc_fail_after(-1);
}

static void resume_faults(long countdown)
{
    alloc_fail_after(countdown);
}

static void no_state(void *ctx, buf *out)
{
    (void)ctx, (void)out;
}

/* Appends a length-prefixed field to a state dump. */
static void put(buf *out, const void *p, size_t n)
{
    uint64_t len = n;
    buf_append(out, &len, sizeof len);
    buf_append(out, p, n);
}

static void put_i64(buf *out, int64_t v)
{
    buf_append(out, &v, sizeof v);
}

/* ---- the store fixture -------------------------------------------------------------------- */

typedef struct fx {
    char dir[64];
    store *st;
    char err[256];
    buf key, row, got;
    const store_view *dv, *cv;
    store_field fields[3];
    store_feature_ref refs[2];
    store_view spec;
    char long_key[600];
} fx;

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

static store_hist *hist(fx *f)
{
    store_hist *h;
    OK(store_history(f->st, &h));
    return h;
}

/* Encodes a row of the test schema: a = n, b = "s<n>", vec = NULL. */
static void row(fx *f, int64_t n)
{
    store_ftype schema[3] = {{FT_INT64, 0}, {FT_STRING, 0}, {FT_VECTOR, 3}};
    char s[32];
    int len = snprintf(s, sizeof s, "s%lld", (long long)n);
    store_fvalue vals[3] = {{.i = n}, {.bytes = s, .len = (size_t)len}, {.is_null = 1}};
    f->row.len = 0;
    OK(store_row_encode(schema, 3, vals, &f->row));
}

static void ekey(fx *f, const store_view *v, const char *arg)
{
    OK(store_ekey_parse(v, arg, strlen(arg), &f->key, f->err, sizeof f->err));
}

static void push(fx *f, const store_view *v, const char *k, int64_t ev, int64_t a)
{
    ekey(f, v, k);
    row(f, a);
    OK(store_fs_push(wr(f), v, f->key.data, f->key.len, ev, ev + 1, f->row.data, f->row.len, 1,
                     1, NULL));
}

/* Keys, a hash, a long key, the catalog (entities driver and city, views dv and cv, service
 * svc) and pushes on both views, committed. */
static void fill(fx *f)
{
    store_txn *t = wr(f);
    OK(store_set_string(t, 0, S("str"), S("hello"), 0, NOW));
    OK(store_set_string(t, 0, S("ttl"), S("short-lived"), NOW + 5000, NOW));
    memset(f->long_key, 'L', sizeof f->long_key);
    OK(store_set_string(t, 0, f->long_key, sizeof f->long_key, S("long"), 0, NOW));
    for (int i = 0; i < 5; i++) {
        char fl[8];
        int n = snprintf(fl, sizeof fl, "f%d", i);
        int added;
        OK(store_hash_set(t, 0, S("h"), fl, (size_t)n, S("value"), NOW, &added));
    }
    OK(store_entity_create(t, S("driver"), STORE_KEY_INT64, S("a driver"), f->err,
                           sizeof f->err));
    OK(store_entity_create(t, S("city"), STORE_KEY_STRING, NULL, 0, f->err, sizeof f->err));
    f->fields[0] = (store_field){.name = "a", .type = {FT_INT64, 0}};
    f->fields[1] = (store_field){.name = "b", .type = {FT_STRING, 0}};
    f->fields[2] = (store_field){.name = "vec", .type = {FT_VECTOR, 3},
                                 .vindex = STORE_VINDEX_HNSW};
    f->spec = (store_view){.name = "dv", .nentities = 1, .entities = (char *[]){"driver"},
                           .online = 1, .nfields = 3, .fields = f->fields};
    OK(store_view_create(t, &f->spec, f->err, sizeof f->err));
    static char *two[] = {"city", "driver"};
    f->spec.name = "cv";
    f->spec.nentities = 2;
    f->spec.entities = two;
    OK(store_view_create(t, &f->spec, f->err, sizeof f->err));
    f->refs[0] = (store_feature_ref){"dv", "a"};
    f->refs[1] = (store_feature_ref){"cv", NULL};
    OK(store_service_create(t, S("svc"), 2, f->refs, f->err, sizeof f->err));
    f->dv = store_view_get(f->st, S("dv"));
    f->cv = store_view_get(f->st, S("cv"));
    for (int i = 1; i <= 4; i++) {
        char k[16];
        snprintf(k, sizeof k, "%d", i);
        push(f, f->dv, k, 1000 * i, i);
        push(f, f->dv, k, 1000 * i + 500, 10 * i);
    }
    push(f, f->cv, "paris:7", 3000, 70);
    end(f);
    f->spec.name = "nv"; /* the view the create sweep makes */
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/test_faults.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    store_config cfg = {.dir = f->dir, .map_size = 16 * MIB, .durability = DURABILITY_NO};
    buf_init(&f->key);
    buf_init(&f->row);
    buf_init(&f->got);
    if (store_open(&cfg, &f->st, f->err, sizeof f->err))
        return -1;
    fill(f);
    *state = f;
    return 0;
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fx *f = *state;
    alloc_fail_after(-1);
    store_close(f->st);
    buf_free(&f->key);
    buf_free(&f->row);
    buf_free(&f->got);
    nftw(f->dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- the store's whole state, read back ---------------------------------------------------- */

static void dump_keys(fx *f, buf *out)
{
    store_txn *t = rd(f);
    store_iter *it;
    const char *k;
    size_t klen;
    store_obj o;
    OK(store_iter_keys(t, 0, NULL, 0, NOW, &it));
    while (store_iter_next(it, &k, &klen, &o) == 0) {
        put(out, k, klen);
        put_i64(out, o.type);
        put_i64(out, o.expire_ms);
        if (o.type == STORE_STRING) {
            put(out, o.val, o.len);
            continue;
        }
        store_iter *fi;
        const char *fl, *v;
        size_t fln, vl;
        OK(store_iter_fields(t, &o, NULL, 0, &fi));
        while (store_iter_next_field(fi, &fl, &fln, &v, &vl) == 0) {
            put(out, fl, fln);
            put(out, v, vl);
        }
        store_iter_free(fi);
    }
    store_iter_free(it);
    for (int db = 0; db < 2; db++) {
        put_i64(out, (int64_t)store_dbsize(f->st, db));
        put_i64(out, (int64_t)store_expires(f->st, db));
    }
}

static void dump_catalog(fx *f, buf *out)
{
    for (int i = 0; i < store_entity_count(f->st); i++) {
        const store_entity *e = store_entity_at(f->st, i);
        put(out, e->name, strlen(e->name));
        put_i64(out, e->key_type);
        put(out, e->description, strlen(e->description));
    }
    for (int i = 0; i < store_view_count(f->st); i++) {
        const store_view *v = store_view_at(f->st, i);
        put(out, v->name, strlen(v->name));
        put_i64(out, v->id);
        put_i64(out, v->nentities);
        put_i64(out, v->nfields);
        for (int j = 0; j < v->nfields; j++)
            put(out, v->fields[j].name, strlen(v->fields[j].name));
    }
    for (int i = 0; i < store_service_count(f->st); i++) {
        const store_service *s = store_service_at(f->st, i);
        put(out, s->name, strlen(s->name));
        put_i64(out, s->n);
    }
    uint32_t ids[16];
    int n = store_hist_views(hist(f), ids, 16);
    for (int i = 0; i < n; i++)
        put_i64(out, ids[i]);
}

static void dump_view(fx *f, const store_view *v, buf *out)
{
    store_oiter *it;
    const char *k, *r;
    size_t kl, rl;
    int64_t ev, cr;
    OK(store_online_iter(rd(f), v, &it));
    while (store_oiter_next(it, &k, &kl, &ev, &cr, &r, &rl) == 0) {
        put(out, k, kl);
        put_i64(out, ev);
        put_i64(out, cr);
        put(out, r, rl);
    }
    store_oiter_free(it);
    store_hcur *c;
    OK(store_hcur_new(hist(f), v->id, &c));
    for (int rc = store_hcur_next_entity(c); rc == 0; rc = store_hcur_next_entity(c)) {
        do {
            store_hcur_row(c, &k, &kl, &ev, &cr, &r, &rl);
            put(out, k, kl);
            put_i64(out, ev);
            put_i64(out, cr);
            put(out, r, rl);
        } while (store_hcur_next(c) == 0);
    }
    store_hcur_free(c);
}

static void store_state(void *ctx, buf *out)
{
    fx *f = ctx;
    dump_keys(f, out);
    dump_catalog(f, out);
    for (int i = 0; i < store_view_count(f->st); i++)
        dump_view(f, store_view_at(f->st, i), out);
}

/* Ends the pass an operation ran in: it must commit (a failed allocation never poisons). */
static int ended(fx *f, int rc)
{
    OK(store_txn_end(f->st));
    return rc;
}

/* ---- keyspace ------------------------------------------------------------------------------ */

static int op_set(void *ctx)
{
    fx *f = ctx;
    return ended(f, store_set_string(wr(f), 0, S("new"), S("value"), 0, NOW));
}

static int op_set_long(void *ctx)
{
    fx *f = ctx;
    f->long_key[0] = 'M';
    int rc = store_set_string(wr(f), 0, f->long_key, sizeof f->long_key, S("v"), 0, NOW);
    f->long_key[0] = 'L';
    return ended(f, rc);
}

static int op_hset(void *ctx)
{
    fx *f = ctx;
    int added;
    return ended(f, store_hash_set(wr(f), 0, S("h"), S("f9"), S("nine"), NOW, &added));
}

static int op_hdel(void *ctx)
{
    fx *f = ctx;
    int removed;
    return ended(f, store_hash_del(wr(f), 0, S("h"), S("f0"), NOW, &removed));
}

static int op_expire(void *ctx)
{
    fx *f = ctx;
    return ended(f, store_set_expire(wr(f), 0, S("str"), NOW + 60000, NOW));
}

static int op_expire_long(void *ctx)
{
    fx *f = ctx;
    return ended(f, store_set_expire(wr(f), 0, f->long_key, sizeof f->long_key, NOW + 5000, NOW));
}

static int op_persist(void *ctx)
{
    fx *f = ctx;
    return ended(f, store_set_expire(wr(f), 0, S("ttl"), 0, NOW));
}

static int op_del(void *ctx)
{
    fx *f = ctx;
    int deleted;
    return ended(f, store_delete(wr(f), 0, S("str"), NOW, &deleted));
}

/* The expire cycle deletes the long key (its copy is allocated). */
static int op_expire_cycle(void *ctx)
{
    fx *f = ctx;
    int more;
    return ended(f, store_expire_cycle(wr(f), NOW + 10000, 100, &more));
}

/* Reads: what they return is compared with what the same read gave before the sweep. */
static int read_keys(fx *f, buf *out)
{
    store_txn *t = rd(f);
    store_iter *it;
    const char *k;
    size_t klen;
    store_obj o;
    int rc = store_iter_keys(t, 0, NULL, 0, NOW, &it);
    if (rc)
        return rc;
    while ((rc = store_iter_next(it, &k, &klen, &o)) == 0)
        put(out, k, klen);
    store_iter_free(it);
    return rc == ERR_NOTFOUND ? 0 : rc;
}

static int read_fields(fx *f, buf *out)
{
    store_txn *t = rd(f);
    store_obj o;
    store_iter *it;
    const char *fl, *v;
    size_t fln, vl;
    OK(store_lookup(t, 0, S("h"), NOW, &o));
    int rc = store_iter_fields(t, &o, NULL, 0, &it);
    if (rc)
        return rc;
    while ((rc = store_iter_next_field(it, &fl, &fln, &v, &vl)) == 0) {
        put(out, fl, fln);
        put(out, v, vl);
    }
    store_iter_free(it);
    return rc == ERR_NOTFOUND ? 0 : rc;
}

static int read_get(fx *f, buf *out)
{
    store_txn *t = rd(f);
    store_obj o;
    const char *v;
    size_t vl;
    int rc = store_lookup(t, 0, S("str"), NOW, &o);
    if (!rc)
        put(out, o.val, o.len);
    if (!rc && (rc = store_lookup(t, 0, S("h"), NOW, &o)) == 0 &&
        (rc = store_hash_get(t, &o, S("f3"), &v, &vl)) == 0)
        put(out, v, vl);
    return rc;
}

/* A read op: run fills got and compares it with want (taken before the sweep). */
typedef struct read_ctx {
    fx *f;
    int (*read)(fx *f, buf *out);
    buf want;
} read_ctx;

static int op_read(void *ctx)
{
    read_ctx *r = ctx;
    buf got;
    buf_init(&got);
    int rc = r->read(r->f, &got);
    long cd = pause_faults();
    if (!rc && (got.len != r->want.len || memcmp(got.data, r->want.data, got.len) != 0))
        fail_msg("a read gave another answer than the oracle");
    buf_free(&got);
    resume_faults(cd);
    return rc;
}

static void read_state(void *ctx, buf *out)
{
    store_state(((read_ctx *)ctx)->f, out);
}

static void sweep_read(fx *f, const char *name, int (*read)(fx *f, buf *out))
{
    read_ctx r = {.f = f, .read = read};
    buf_init(&r.want);
    OK(read(f, &r.want));
    assert_true(r.want.len > 0);
    op o = {name, op_read, read_state, NULL, NULL};
    sweep(&o, &r);
    buf_free(&r.want);
}

static void test_keyspace(void **state)
{
    fx *f = *state;
    printf("keyspace:\n");
    sweep_read(f, "GET/HGET", read_get);
    sweep_read(f, "key iteration (SCAN)", read_keys);
    sweep_read(f, "field iteration (HGETALL)", read_fields);
    static const op ops[] = {
        {"SET", op_set, store_state, NULL, NULL},
        {"SET of a long key", op_set_long, store_state, NULL, NULL},
        {"HSET", op_hset, store_state, NULL, NULL},
        {"HDEL", op_hdel, store_state, NULL, NULL},
        {"EXPIRE", op_expire, store_state, NULL, NULL},
        {"EXPIRE of a long key", op_expire_long, store_state, NULL, NULL},
        {"PERSIST", op_persist, store_state, NULL, NULL},
        {"DEL", op_del, store_state, NULL, NULL},
        {"expire cycle", op_expire_cycle, store_state, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        sweep(&ops[i], f);
    store_obj o;
    assert_int_equal(store_lookup(rd(f), 0, S("str"), NOW, &o), ERR_NOTFOUND);
    assert_int_equal(store_lookup(rd(f), 0, f->long_key, sizeof f->long_key, NOW, &o),
                     ERR_NOTFOUND); /* the cycle deleted it */
    OK(store_lookup(rd(f), 0, S("ttl"), NOW + 10000, &o)); /* persisted */
    assert_int_equal(store_dbsize(f->st, 0), 4); /* new, M-long, h, ttl */
}

/* ---- the catalog --------------------------------------------------------------------------- */

static int op_entity_create(void *ctx)
{
    fx *f = ctx;
    return ended(f, store_entity_create(wr(f), S("zone"), STORE_KEY_STRING, S("zones"),
                                        f->err, sizeof f->err));
}

static int op_view_create(void *ctx)
{
    fx *f = ctx;
    return ended(f, store_view_create(wr(f), &f->spec, f->err, sizeof f->err));
}

static int op_service_create(void *ctx)
{
    fx *f = ctx;
    store_feature_ref refs[] = {{"nv", "b"}, {"dv", NULL}};
    return ended(f, store_service_create(wr(f), S("svc2"), 2, refs, f->err, sizeof f->err));
}

static int op_service_drop(void *ctx)
{
    fx *f = ctx;
    return ended(f, store_service_drop(wr(f), S("svc2"), f->err, sizeof f->err));
}

static int op_view_drop(void *ctx)
{
    fx *f = ctx;
    return ended(f, store_view_drop(wr(f), S("nv"), f->err, sizeof f->err));
}

static int op_entity_drop(void *ctx)
{
    fx *f = ctx;
    return ended(f, store_entity_drop(wr(f), S("zone"), f->err, sizeof f->err));
}

static void test_catalog(void **state)
{
    fx *f = *state;
    printf("catalog:\n");
    static const op ops[] = {
        {"entity create", op_entity_create, store_state, NULL, NULL},
        {"view create", op_view_create, store_state, NULL, NULL},
        {"service create", op_service_create, store_state, NULL, NULL},
        {"service drop", op_service_drop, store_state, NULL, NULL},
        {"view drop", op_view_drop, store_state, NULL, NULL},
        {"entity drop", op_entity_drop, store_state, NULL, NULL},
    };
    for (int i = 0; i < 3; i++) {
        sweep(&ops[i], f);
        if (i == 1) { /* the view is there, with its column family, after a reopen too */
            const store_view *v = store_view_get(f->st, S("nv"));
            assert_non_null(v);
            assert_int_equal(store_hist_set_retention(hist(f), v->id, 0), 0);
        }
    }
    assert_non_null(store_service_get(f->st, S("svc2")));
    for (int i = 3; i < 6; i++)
        sweep(&ops[i], f);
    assert_null(store_entity_get(f->st, S("zone")));
    assert_null(store_view_get(f->st, S("nv")));
    assert_int_equal(store_view_count(f->st), 2);
    assert_int_equal(store_hist_views(hist(f), NULL, 0), 2);
}

/* ---- FS.PUSH, history and online rows ------------------------------------------------------ */

/* A long entity key: the batch's key buffer grows. */
static int op_push(void *ctx)
{
    fx *f = ctx;
    char k[128];
    memset(k, 'y', 100);
    strcpy(k + 100, ":9");
    ekey(f, f->cv, k);
    row(f, 99);
    return ended(f, store_fs_push(wr(f), f->cv, f->key.data, f->key.len, 9000, 9001,
                                  f->row.data, f->row.len, 1, 1, NULL));
}

static int op_push_offline(void *ctx)
{
    fx *f = ctx;
    ekey(f, f->dv, "3");
    row(f, 33);
    return ended(f, store_fs_push(wr(f), f->dv, f->key.data, f->key.len, 500, 501, f->row.data,
                                  f->row.len, 0, 1, NULL));
}

static int op_online_put(void *ctx)
{
    fx *f = ctx;
    ekey(f, f->dv, "8");
    row(f, 88);
    return ended(f, store_online_put(wr(f), f->dv, f->key.data, f->key.len, 8000, 8001,
                                     f->row.data, f->row.len, NULL));
}

static int read_asof(fx *f, buf *out)
{
    int64_t ev, cr;
    buf r;
    buf_init(&r);
    ekey(f, f->dv, "2");
    int rc = store_hist_asof(hist(f), f->dv->id, f->key.data, f->key.len, 2200, INT64_MIN, &ev,
                             &cr, &r);
    if (!rc) {
        put_i64(out, ev);
        put(out, r.data, r.len);
    }
    buf_free(&r);
    return rc;
}

static int read_range(fx *f, buf *out)
{
    store_hiter *it;
    int64_t ev, cr;
    const char *r;
    size_t rl;
    ekey(f, f->dv, "3");
    int rc = store_hist_range(hist(f), f->dv->id, f->key.data, f->key.len, 0, 10000, 1, &it);
    while (!rc && (rc = store_hiter_next(it, &ev, &cr, &r, &rl)) == 0) {
        put_i64(out, ev);
        put(out, r, rl);
    }
    store_hiter_free(it);
    return rc == ERR_NOTFOUND ? 0 : rc;
}

/* A join's walk: seek an entity as of a time, step through its rows, then the others. */
static int read_cursor(fx *f, buf *out)
{
    store_hcur *c;
    const char *k, *r;
    size_t kl, rl;
    int64_t ev, cr;
    ekey(f, f->dv, "2");
    int rc = store_hcur_new(hist(f), f->dv->id, &c);
    if (rc)
        return rc;
    if ((rc = store_hcur_seek(c, f->key.data, f->key.len, 2600)) == 0) {
        do {
            store_hcur_row(c, &k, &kl, &ev, &cr, &r, &rl);
            put(out, k, kl);
            put_i64(out, ev);
        } while ((rc = store_hcur_next(c)) == 0);
        rc = rc == ERR_NOTFOUND ? 0 : rc;
    }
    while (!rc && (rc = store_hcur_next_entity(c)) == 0) {
        store_hcur_row(c, &k, &kl, &ev, &cr, &r, &rl);
        put(out, k, kl);
        put_i64(out, ev);
    }
    store_hcur_free(c);
    return rc == ERR_NOTFOUND ? 0 : rc;
}

static int read_online(fx *f, buf *out)
{
    store_oiter *it;
    const char *k, *r;
    size_t kl, rl;
    int64_t ev, cr;
    ekey(f, f->dv, "4");
    int rc = store_online_get(rd(f), f->dv, f->key.data, f->key.len, &ev, &cr, &r, &rl);
    if (!rc)
        put(out, r, rl);
    if (!rc)
        rc = store_online_iter(rd(f), f->dv, &it);
    while (!rc && (rc = store_oiter_next(it, &k, &kl, &ev, &cr, &r, &rl)) == 0)
        put(out, k, kl);
    if (rc == ERR_NOTFOUND) {
        store_oiter_free(it);
        rc = 0;
    }
    return rc;
}

/* A batch on the bare history handle filled for five views (its view list grows past four),
 * written, and read back. Views 100..104 are column families of this test's own. */
#define BATCH_VIEWS 5

static int op_batch(void *ctx)
{
    fx *f = ctx;
    store_hist *h = hist(f);
    store_hbatch *b = store_hbatch_new();
    if (!b)
        return ERR_NOMEM;
    int rc = 0;
    for (uint32_t v = 0; v < BATCH_VIEWS && !rc; v++)
        rc = store_hbatch_put(b, h, 100 + v, S("an entity of some length, past the key buffer's "
                                                 "first 64 bytes"), 5, 6, S("row"));
    long cd = pause_faults();
    if (!rc) {
        assert_int_equal(store_hbatch_count(b), BATCH_VIEWS);
        OK(store_hist_write(h, b, 0, f->err, sizeof f->err));
    }
    store_hbatch_free(b);
    resume_faults(cd);
    return rc;
}

static void batch_state(void *ctx, buf *out)
{
    fx *f = ctx;
    for (uint32_t v = 0; v < BATCH_VIEWS; v++) {
        store_hcur *c;
        OK(store_hcur_new(hist(f), 100 + v, &c));
        put_i64(out, store_hcur_next_entity(c));
        store_hcur_free(c);
    }
}

/* store_open over the fixture's data (closed meanwhile): every allocation of opening the
 * environment, the history, the catalog and the batch. */
static int op_open(void *ctx)
{
    fx *f = ctx;
    store_config cfg = {.dir = f->dir, .map_size = 16 * MIB, .durability = DURABILITY_NO};
    store *st;
    int rc = store_open(&cfg, &st, f->err, sizeof f->err);
    if (rc)
        return rc;
    long cd = pause_faults();
    assert_int_equal(store_view_count(st), 2);
    store_close(st);
    resume_faults(cd);
    return 0;
}

static void test_feature_store(void **state)
{
    fx *f = *state;
    printf("feature store:\n");
    sweep_read(f, "history as-of", read_asof);
    sweep_read(f, "history range", read_range);
    sweep_read(f, "history cursor", read_cursor);
    sweep_read(f, "online rows", read_online);
    static const op ops[] = {
        {"FS.PUSH (online and history)", op_push, store_state, NULL, NULL},
        {"FS.PUSH (history only)", op_push_offline, store_state, NULL, NULL},
        {"online row put (MATERIALIZE)", op_online_put, store_state, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        sweep(&ops[i], f);
    for (uint32_t v = 0; v < BATCH_VIEWS; v++)
        OK(store_hist_create_view(hist(f), 100 + v, 0));
    op batch = {"history batch of five views", op_batch, batch_state, NULL, NULL};
    sweep(&batch, f);
    buf got;
    buf_init(&got);
    OK(read_asof(f, &got)); /* the pushes landed once each */
    uint64_t n;
    OK(store_online_count(rd(f), f->dv, &n));
    assert_int_equal(n, 5);
    OK(store_online_count(rd(f), f->cv, &n));
    assert_int_equal(n, 2);
    buf_free(&got);
}

/* ---- values and entity keys ---------------------------------------------------------------- */

static int op_row_encode(void *ctx)
{
    fx *f = ctx;
    store_ftype schema[2] = {{FT_STRING, 0}, {FT_VECTOR, 4}};
    float v[4] = {1, 2, 3, 4};
    store_fvalue vals[2] = {{.bytes = "some text", .len = 9}, {.bytes = (char *)v, .len = 16}};
    buf out;
    buf_init(&out);
    int rc = store_row_encode(schema, 2, vals, &out);
    long cd = pause_faults();
    store_fvalue back[2];
    if (!rc) {
        OK(store_row_decode(schema, 2, out.data, out.len, back));
        assert_int_equal(back[0].len, 9);
        assert_memory_equal(back[1].bytes, v, 16);
    } else {
        assert_int_equal(out.len, 0);
    }
    buf_free(&out);
    (void)f;
    resume_faults(cd);
    return rc;
}

static int op_ekey(void *ctx)
{
    fx *f = ctx;
    buf out;
    buf_init(&out);
    int rc = store_ekey_parse(f->cv, S("a\\:b:42"), &out, f->err, sizeof f->err);
    const char *parts[] = {"a:b", "42"};
    size_t lens[] = {3, 2};
    buf built;
    buf_init(&built);
    if (!rc)
        rc = store_ekey_build(f->cv, parts, lens, &built, f->err, sizeof f->err);
    if (!rc) {
        assert_int_equal(out.len, built.len);
        assert_memory_equal(out.data, built.data, out.len);
    }
    buf_free(&out);
    buf_free(&built);
    return rc;
}

static void test_open(void **state)
{
    fx *f = *state;
    printf("open:\n");
    buf before, after;
    buf_init(&before);
    buf_init(&after);
    store_state(f, &before);
    store_close(f->st);
    f->st = NULL;
    op o = {"store open (LMDB, history, catalog)", op_open, no_state, NULL, NULL};
    sweep(&o, f);
    store_config cfg = {.dir = f->dir, .map_size = 16 * MIB, .durability = DURABILITY_NO};
    OK(store_open(&cfg, &f->st, f->err, sizeof f->err));
    f->dv = store_view_get(f->st, S("dv"));
    store_state(f, &after);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.data, after.data, before.len);
    buf_free(&before);
    buf_free(&after);
}

static void test_values(void **state)
{
    fx *f = *state;
    printf("values:\n");
    op enc = {"row encode and decode", op_row_encode, no_state, NULL, NULL};
    op ek = {"entity key parse and build", op_ekey, no_state, NULL, NULL};
    sweep(&enc, f);
    sweep(&ek, f);
}

/* ---- vector indexes ------------------------------------------------------------------------ */

#define DIM 8

typedef struct ix_ctx {
    vec_params p;
    uint32_t n;      /* vectors the fresh index holds: ids 0..n-1 */
    float *data;     /* n + 1 vectors */
    vec_index *ix;
    buf snap;        /* a fresh index's snapshot (load's input and save's oracle) */
    vec_hit want[64];
    size_t nwant;
    vec_hit *rwant;
    size_t nrwant;
    int filter;      /* 0 none, 1 keep even ids, 2 an id list */
    uint32_t ids[40];
} ix_ctx;

static float *vec_at(ix_ctx *c, uint32_t i)
{
    return c->data + (size_t)i * DIM;
}

static void ix_fresh(void *ctx)
{
    ix_ctx *c = ctx;
    char err[256];
    int rc = vec_create(&c->p, &c->ix, err, sizeof err);
    if (rc)
        fail_msg("vec_create: %s (%s)", err_str(rc), err);
    for (uint32_t i = 0; i < c->n; i++)
        OK(vec_add(c->ix, i, vec_at(c, i)));
}

static void ix_drop(void *ctx)
{
    ix_ctx *c = ctx;
    vec_free(c->ix);
    c->ix = NULL;
}

static void ix_state(void *ctx, buf *out)
{
    ix_ctx *c = ctx;
    if (c->ix)
        OK(vec_save(c->ix, out));
}

static int keep_even(void *ctx, uint32_t id)
{
    (void)ctx;
    return id % 2 == 0;
}

static vec_filter ix_filter(ix_ctx *c)
{
    if (c->filter == 1)
        return (vec_filter){.keep = keep_even};
    if (c->filter == 2)
        return (vec_filter){.ids = c->ids, .nids = sizeof c->ids / sizeof *c->ids};
    return (vec_filter){0};
}

static int op_knn(void *ctx)
{
    ix_ctx *c = ctx;
    vec_hit got[64];
    size_t n;
    vec_filter f = ix_filter(c);
    int rc = vec_knn(c->ix, vec_at(c, c->n), 10, 0, &f, got, &n);
    if (!rc && (n != c->nwant || memcmp(got, c->want, n * sizeof *got) != 0))
        fail_msg("k-NN (filter %d) gave another answer than before the sweep", c->filter);
    return rc;
}

static int op_range(void *ctx)
{
    ix_ctx *c = ctx;
    vec_hit *got;
    size_t n;
    vec_filter f = ix_filter(c);
    int rc = vec_range(c->ix, vec_at(c, c->n), 1.5f, 0, &f, 1000, &got, &n);
    if (!rc && (n != c->nrwant || memcmp(got, c->rwant, n * sizeof *got) != 0))
        fail_msg("range (filter %d) gave another answer than before the sweep", c->filter);
    xfree(got);
    return rc;
}

static int op_add(void *ctx)
{
    ix_ctx *c = ctx;
    return vec_add(c->ix, c->n, vec_at(c, c->n));
}

static int op_replace(void *ctx)
{
    ix_ctx *c = ctx;
    return vec_add(c->ix, 7, vec_at(c, c->n));
}

static int op_delete(void *ctx)
{
    ix_ctx *c = ctx;
    return vec_delete(c->ix, 7);
}

static int op_save(void *ctx)
{
    ix_ctx *c = ctx;
    buf out;
    buf_init(&out);
    int rc = vec_save(c->ix, &out);
    if (!rc && (out.len != c->snap.len || memcmp(out.data, c->snap.data, out.len) != 0))
        fail_msg("a snapshot differs from the oracle's");
    if (rc)
        assert_int_equal(out.len, 0);
    buf_free(&out);
    return rc;
}

static int op_create(void *ctx)
{
    ix_ctx *c = ctx;
    vec_index *ix;
    char err[256];
    int rc = vec_create(&c->p, &ix, err, sizeof err);
    if (!rc)
        vec_free(ix);
    return rc;
}

static int op_load(void *ctx)
{
    ix_ctx *c = ctx;
    vec_index *ix;
    char err[256];
    int rc = vec_load(c->snap.data, c->snap.len, &ix, err, sizeof err);
    if (rc)
        return rc;
    long cd = pause_faults();
    buf again;
    buf_init(&again);
    OK(vec_save(ix, &again));
    if (again.len != c->snap.len || memcmp(again.data, c->snap.data, again.len) != 0)
        fail_msg("a loaded index saves other bytes");
    buf_free(&again);
    vec_free(ix);
    resume_faults(cd);
    return 0;
}

/* The answers before the sweep, from a fresh index. */
static void ix_oracle(ix_ctx *c)
{
    ix_fresh(c);
    vec_filter f = ix_filter(c);
    OK(vec_knn(c->ix, vec_at(c, c->n), 10, 0, &f, c->want, &c->nwant));
    xfree(c->rwant);
    OK(vec_range(c->ix, vec_at(c, c->n), 1.5f, 0, &f, 1000, &c->rwant, &c->nrwant));
    assert_true(c->nwant == 10 && c->nrwant > 0);
    ix_drop(c);
}

/* Every operation of index.h on a fresh index of kind, each attempt on a new build. */
static void sweep_index(const vec_params *p, uint32_t n)
{
    ix_ctx c = {.p = *p, .n = n};
    c.data = xmalloc(((size_t)n + 1) * DIM * sizeof(float));
    uint64_t s = 42;
    for (size_t i = 0; i < ((size_t)n + 1) * DIM; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        c.data[i] = (float)((s >> 40) % 1000) / 1000.0f;
    }
    for (uint32_t i = 0; i < sizeof c.ids / sizeof *c.ids; i++)
        c.ids[i] = 3 * i;
    buf_init(&c.snap);
    ix_fresh(&c);
    OK(vec_save(c.ix, &c.snap));
    ix_drop(&c);
    static const char *what[] = {"", " (filtered)", " (id list)"};
    for (c.filter = 0; c.filter < 3; c.filter++) {
        char kn[64], rn[64];
        snprintf(kn, sizeof kn, "k-NN%s", what[c.filter]);
        snprintf(rn, sizeof rn, "range%s", what[c.filter]);
        ix_oracle(&c);
        op knn = {kn, op_knn, ix_state, ix_fresh, ix_drop};
        op range = {rn, op_range, ix_state, ix_fresh, ix_drop};
        sweep(&knn, &c);
        sweep(&range, &c);
    }
    const op ops[] = {
        {"add", op_add, ix_state, ix_fresh, ix_drop},
        {"add replacing a vector", op_replace, ix_state, ix_fresh, ix_drop},
        {"delete", op_delete, ix_state, ix_fresh, ix_drop},
        {"save", op_save, ix_state, ix_fresh, ix_drop},
        {"load", op_load, no_state, NULL, NULL},
        {"create", op_create, no_state, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        sweep(&ops[i], &c);
    xfree(c.rwant);
    buf_free(&c.snap);
    xfree(c.data);
}

static void test_flat(void **state)
{
    (void)state;
    printf("FLAT:\n");
    vec_params p = {.kind = VEC_FLAT, .metric = VEC_L2, .dim = DIM};
    sweep_index(&p, 256); /* full: the add grows the block and the map */
}

static void test_hnsw(void **state)
{
    (void)state;
    printf("HNSW:\n");
    vec_params p = {.kind = VEC_HNSW, .metric = VEC_COSINE, .dim = DIM, .m = 8,
                    .ef_construction = 40};
    sweep_index(&p, 256); /* full: the add takes a new chunk of records */
}

static void test_ivf(void **state)
{
    (void)state;
    printf("IVF (trained):\n");
    vec_params p = {.kind = VEC_IVF, .metric = VEC_L2, .dim = DIM, .ef_runtime = 4,
                    .factory = "IVF4,Flat"};
    sweep_index(&p, 1024); /* the add grows the generation table */
    printf("IVF (before training):\n");
    sweep_index(&p, 256);
}

/* The add that trains the IVF: the 1000th vector. */
static void test_ivf_training(void **state)
{
    (void)state;
    printf("IVF training:\n");
    ix_ctx c = {.p = {.kind = VEC_IVF, .metric = VEC_L2, .dim = DIM, .ef_runtime = 4,
                      .factory = "IVF4,Flat"},
                .n = 999};
    c.data = xmalloc(1000 * DIM * sizeof(float));
    for (size_t i = 0; i < 1000 * DIM; i++)
        c.data[i] = (float)((i * 7919) % 1000) / 1000.0f;
    op add = {"add that trains", op_add, ix_state, ix_fresh, ix_drop};
    sweep(&add, &c);
    xfree(c.data);
}

static void test_total(void **state)
{
    (void)state;
    printf("%ld failures injected in all\n", injected);
    assert_true(injected > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keyspace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feature_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open, setup, teardown),
        cmocka_unit_test(test_flat),
        cmocka_unit_test(test_hnsw),
        cmocka_unit_test(test_ivf),
        cmocka_unit_test(test_ivf_training),
        cmocka_unit_test(test_total),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
