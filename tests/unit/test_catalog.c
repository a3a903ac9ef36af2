/* test_catalog.c: unit tests for the feature store's catalog, entity keys, online rows and
 * the two-engine write path (store/catalog.c, store/online.c, env.c): create, get, list and
 * drop of entities, views and services with their validation; persistence across reopen; a
 * failed pass rolling the catalog, the online rows and the history back (and its new column
 * families gone); view ids never reused; the online replace rules and TO ONLINE/OFFLINE;
 * entity keys with escapes; reading a pass's own pushes mid-pass; a crash between the
 * history write and the LMDB commit (the journal replayed); orphan column families;
 * failed allocations. Each test owns a fresh data directory under /tmp. */
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
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"

#define S(lit) lit, sizeof(lit) - 1 /* a string literal and its length */
#define OK(expr) assert_int_equal((expr), 0)
#define NOW 1000000 /* ms */
#define MIB ((size_t)1 << 20)

typedef struct fx {
    char dir[64];
    store_config cfg;
    store *st;
    char err[256];
    buf key, row;
} fx;

static void fx_open(fx *f)
{
    char err[256] = "";
    int rc = store_open(&f->cfg, &f->st, err, sizeof err);
    if (rc)
        fail_msg("store_open: %s (%s)", err_str(rc), err);
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

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/test_catalog.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->cfg = (store_config){.dir = f->dir, .map_size = 16 * MIB, .durability = DURABILITY_NO};
    buf_init(&f->key);
    buf_init(&f->row);
    fx_open(f);
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
    if (f->st)
        fx_close(f);
    buf_free(&f->key);
    buf_free(&f->row);
    nftw(f->dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
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

static store_hist *hist(fx *f)
{
    store_hist *h;
    OK(store_history(f->st, &h));
    return h;
}

/* 1 if the history has a column family for view id. */
static int has_cf(fx *f, uint32_t id)
{
    uint32_t ids[64];
    int n = store_hist_views(hist(f), ids, 64);
    assert_true(n <= 64);
    for (int i = 0; i < n; i++)
        if (ids[i] == id)
            return 1;
    return 0;
}

/* Asserts a call failed with code and that err mentions want. */
static void expect_err(fx *f, int rc, int code, const char *want)
{
    assert_int_equal(rc, code);
    if (!strstr(f->err, want))
        fail_msg("error '%s' does not mention '%s'", f->err, want);
}

static void entity(fx *f, const char *name, int key_type)
{
    OK(store_entity_create(wr(f), name, strlen(name), key_type, S("about"), f->err,
                           sizeof f->err));
}

/* Fields of the test views: a INT64, b STRING, and a VECTOR 3 with default parameters. */
static store_field test_fields[] = {
    {.name = "a", .type = {FT_INT64, 0}},
    {.name = "b", .type = {FT_STRING, 0}},
    {.name = "vec", .type = {FT_VECTOR, 3}, .vindex = STORE_VINDEX_HNSW},
};

static int view_try(fx *f, const char *name, int nent, const char **ents, int online,
                    store_field *fields, int nfields)
{
    store_view spec = {.name = (char *)name, .nentities = nent, .entities = (char **)ents,
                       .ttl_us = 5000000, .retention_us = 7000000, .online = online,
                       .nfields = nfields, .fields = fields};
    f->err[0] = '\0';
    return store_view_create(wr(f), &spec, f->err, sizeof f->err);
}

static const store_view *view(fx *f, const char *name, int nent, const char **ents, int online)
{
    int rc = view_try(f, name, nent, ents, online, test_fields, 3);
    if (rc)
        fail_msg("store_view_create %s: %s (%s)", name, err_str(rc), f->err);
    const store_view *v = store_view_get(f->st, name, strlen(name));
    assert_non_null(v);
    return v;
}

/* The standard catalog: entities driver (INT64), city (STRING); views dv (driver) and
 * cv (city, driver); service svc (dv:a, cv:*). */
static void std_catalog(fx *f)
{
    entity(f, "driver", STORE_KEY_INT64);
    entity(f, "city", STORE_KEY_STRING);
    view(f, "dv", 1, (const char *[]){"driver"}, 1);
    view(f, "cv", 2, (const char *[]){"city", "driver"}, 1);
    store_feature_ref refs[] = {{"dv", "a"}, {"cv", NULL}};
    OK(store_service_create(wr(f), S("svc"), 2, refs, f->err, sizeof f->err));
}

/* Encodes a row of the test schema: a = n, b = NULL, vec = NULL. */
static buf *row(fx *f, int64_t n)
{
    store_ftype schema[3] = {{FT_INT64, 0}, {FT_STRING, 0}, {FT_VECTOR, 3}};
    store_fvalue vals[3] = {{.i = n}, {.is_null = 1}, {.is_null = 1}};
    f->row.len = 0;
    store_row_encode(schema, 3, vals, &f->row);
    return &f->row;
}

/* The a value of an encoded test row. */
static int64_t row_a(const char *p, size_t len)
{
    store_ftype schema[3] = {{FT_INT64, 0}, {FT_STRING, 0}, {FT_VECTOR, 3}};
    store_fvalue vals[3];
    OK(store_row_decode(schema, 3, p, len, vals));
    return vals[0].i;
}

static const buf *key(fx *f, const store_view *v, const char *arg)
{
    int rc = store_ekey_parse(v, arg, strlen(arg), &f->key, f->err, sizeof f->err);
    if (rc)
        fail_msg("store_ekey_parse %s: %s", arg, f->err);
    return &f->key;
}

static int push(fx *f, const store_view *v, const char *k, int64_t ev, int64_t cr, int64_t a,
                int to_online, int to_offline)
{
    key(f, v, k);
    row(f, a);
    int replaced = -1;
    OK(store_fs_push(wr(f), v, f->key.data, f->key.len, ev, cr, f->row.data, f->row.len,
                     to_online, to_offline, &replaced));
    return replaced;
}

/* The online row's a value (or -1 when there is none) and its times. */
static int64_t online_a(fx *f, const store_view *v, const char *k, int64_t *ev, int64_t *cr)
{
    const char *p;
    size_t len;
    int64_t e, c;
    key(f, v, k);
    int rc = store_online_get(rd(f), v, f->key.data, f->key.len, &e, &c, &p, &len);
    if (rc == ERR_NOTFOUND)
        return -1;
    OK(rc);
    if (ev)
        *ev = e;
    if (cr)
        *cr = c;
    return row_a(p, len);
}

/* The history's a value at time t (-1 when no row qualifies). */
static int64_t hist_a(fx *f, uint32_t view_id, const store_view *v, const char *k, int64_t t)
{
    int64_t ev, cr;
    buf r;
    buf_init(&r);
    key(f, v, k);
    int rc = store_hist_asof(hist(f), view_id, f->key.data, f->key.len, t, INT64_MIN, &ev, &cr,
                             &r);
    int64_t a = rc == 0 ? row_a(r.data, r.len) : -1;
    assert_true(rc == 0 || rc == ERR_NOTFOUND);
    buf_free(&r);
    return a;
}

/* Poisons the pass the way a storage failure would: an expiry entry whose key record was
 * removed behind the store's back makes the expire cycle fail with ERR_CORRUPT. The data
 * directory gets that broken expiry at setup time (close, edit, open). */
static void plant_broken_expiry(fx *f)
{
    OK(store_set_string(wr(f), 0, S("gone"), S("v"), NOW + 1, NOW));
    end(f);
    fx_close(f);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    OK(mdb_env_create(&env));
    OK(mdb_env_set_maxdbs(env, 16));
    OK(mdb_env_open(env, f->dir, 0, 0644));
    OK(mdb_txn_begin(env, NULL, 0, &txn));
    OK(mdb_dbi_open(txn, "keys", 0, &dbi));
    MDB_val k = {5, "\0gone"};
    OK(mdb_del(txn, dbi, &k, NULL));
    OK(mdb_txn_commit(txn));
    mdb_env_close(env);
    fx_open(f);
}

static void poison(fx *f)
{
    int more;
    assert_int_equal(store_expire_cycle(wr(f), NOW + 1, 10, &more), ERR_CORRUPT);
}

/* ---- entities ---- */

static void test_entities(void **state)
{
    fx *f = *state;
    store_txn *t = wr(f);
    char *e = f->err;
    size_t el = sizeof f->err;
    OK(store_entity_create(t, S("driver"), STORE_KEY_INT64, S("a driver"), e, el));
    OK(store_entity_create(t, S("city"), STORE_KEY_STRING, NULL, 0, e, el));
    expect_err(f, store_entity_create(t, S("city"), STORE_KEY_STRING, NULL, 0, e, el),
               ERR_EXISTS, "entity 'city' already exists");
    expect_err(f, store_entity_create(t, S("a:b"), STORE_KEY_STRING, NULL, 0, e, el), ERR_INVAL,
               "invalid entity name");
    expect_err(f, store_entity_create(t, S("a b"), STORE_KEY_STRING, NULL, 0, e, el), ERR_INVAL,
               "invalid entity name");
    expect_err(f, store_entity_create(t, "", 0, STORE_KEY_STRING, NULL, 0, e, el), ERR_INVAL,
               "invalid entity name");
    char big[STORE_NAME_MAX + 1];
    memset(big, 'x', sizeof big);
    expect_err(f, store_entity_create(t, big, sizeof big, STORE_KEY_STRING, NULL, 0, e, el),
               ERR_INVAL, "invalid entity name");
    OK(store_entity_create(t, big, STORE_NAME_MAX, STORE_KEY_STRING, NULL, 0, e, el));
    expect_err(f, store_entity_create(t, S("zone"), 3, NULL, 0, e, el), ERR_INVAL, "TYPE");

    assert_int_equal(store_entity_count(f->st), 3);
    assert_string_equal(store_entity_at(f->st, 0)->name, "city"); /* name order */
    assert_string_equal(store_entity_at(f->st, 1)->name, "driver");
    assert_int_equal(strlen(store_entity_at(f->st, 2)->name), STORE_NAME_MAX);
    assert_null(store_entity_at(f->st, 3));
    const store_entity *d = store_entity_get(f->st, S("driver"));
    assert_non_null(d);
    assert_int_equal(d->key_type, STORE_KEY_INT64);
    assert_string_equal(d->description, "a driver");
    assert_string_equal(store_entity_get(f->st, S("city"))->description, "");
    assert_null(store_entity_get(f->st, S("drive")));
    assert_null(store_entity_get(f->st, S("driverx")));

    view(f, "dv", 1, (const char *[]){"driver"}, 1);
    expect_err(f, store_entity_drop(wr(f), S("driver"), e, el), ERR_PERM,
               "entity 'driver' is used by view 'dv'");
    expect_err(f, store_entity_drop(wr(f), S("nope"), e, el), ERR_NOTFOUND, "'nope'");
    OK(store_entity_drop(wr(f), S("city"), e, el));
    assert_null(store_entity_get(f->st, S("city")));
    assert_int_equal(store_entity_count(f->st), 2);
    end(f);
    fx_reopen(f);
    assert_int_equal(store_entity_count(f->st), 2);
    assert_null(store_entity_get(f->st, S("city")));
    assert_string_equal(store_entity_get(f->st, S("driver"))->description, "a driver");
}

/* ---- views ---- */

static void test_views(void **state)
{
    fx *f = *state;
    entity(f, "driver", STORE_KEY_INT64);
    entity(f, "city", STORE_KEY_STRING);
    const store_view *v = view(f, "cv", 2, (const char *[]){"city", "driver"}, 1);
    uint32_t id = v->id;
    assert_true(id >= 1);
    assert_string_equal(v->name, "cv");
    assert_int_equal(v->nentities, 2);
    assert_string_equal(v->entities[0], "city");
    assert_string_equal(v->entities[1], "driver");
    assert_int_equal(v->key_types[0], STORE_KEY_STRING);
    assert_int_equal(v->key_types[1], STORE_KEY_INT64);
    assert_int_equal(v->ttl_us, 5000000);
    assert_int_equal(v->retention_us, 7000000);
    assert_int_equal(v->online, 1);
    assert_int_equal(v->nfields, 3);
    assert_string_equal(v->fields[2].name, "vec");
    assert_int_equal(v->schema[0].type, FT_INT64);
    assert_int_equal(v->schema[2].type, FT_VECTOR);
    assert_int_equal(v->schema[2].dim, 3);
    assert_int_equal(v->fields[2].metric, STORE_METRIC_L2); /* defaults */
    assert_int_equal(v->fields[2].vindex, STORE_VINDEX_HNSW);
    assert_int_equal(v->fields[2].m, 16);
    assert_int_equal(v->fields[2].ef_construction, 200);
    assert_int_equal(v->fields[0].metric, 0);
    assert_true(v->created_ms > 0);
    assert_int_equal(store_view_field(v, S("b")), 1);
    assert_int_equal(store_view_field(v, S("c")), -1);
    assert_true(has_cf(f, id));

    const store_view *w = view(f, "av", 1, (const char *[]){"driver"}, 0);
    assert_true(w->id > id);
    assert_int_equal(store_view_count(f->st), 2);
    assert_string_equal(store_view_at(f->st, 0)->name, "av");
    assert_string_equal(store_view_at(f->st, 1)->name, "cv");
    assert_null(store_view_at(f->st, 2));
    assert_null(store_view_get(f->st, S("c")));
    end(f);
}

static void test_view_validation(void **state)
{
    fx *f = *state;
    entity(f, "driver", STORE_KEY_INT64);
    end(f);
    const char *d1[] = {"driver"};
    expect_err(f, view_try(f, "v", 1, (const char *[]){"drvier"}, 1, test_fields, 3), ERR_INVAL,
               "unknown entity 'drvier' in ENTITIES");
    expect_err(f, view_try(f, "v", 2, (const char *[]){"driver", "driver"}, 1, test_fields, 3),
               ERR_INVAL, "duplicate entity 'driver' in ENTITIES");
    expect_err(f, view_try(f, "v", 0, d1, 1, test_fields, 3), ERR_INVAL, "ENTITIES");
    expect_err(f, view_try(f, "v:x", 1, d1, 1, test_fields, 3), ERR_INVAL, "invalid view name");
    expect_err(f, view_try(f, "v", 1, d1, 1, test_fields, 0), ERR_INVAL, "SCHEMA");
    store_field dup[] = {{.name = "conv_rate", .type = {FT_FLOAT64, 0}},
                         {.name = "x", .type = {FT_INT32, 0}},
                         {.name = "conv_rate", .type = {FT_INT32, 0}}};
    expect_err(f, view_try(f, "v", 1, d1, 1, dup, 3), ERR_INVAL,
               "duplicate field 'conv_rate' in SCHEMA");
    store_field badname[] = {{.name = "a b", .type = {FT_INT32, 0}}};
    expect_err(f, view_try(f, "v", 1, d1, 1, badname, 1), ERR_INVAL, "invalid field name");
    store_field badtype[] = {{.name = "a", .type = {10, 0}}};
    expect_err(f, view_try(f, "v", 1, d1, 1, badtype, 1), ERR_INVAL, "type for field 'a'");
    store_field nodim[] = {{.name = "e", .type = {FT_VECTOR, 0}}};
    expect_err(f, view_try(f, "v", 1, d1, 1, nodim, 1), ERR_INVAL, "VECTOR field 'e'");
    store_field badmetric[] = {{.name = "e", .type = {FT_VECTOR, 4}, .metric = 9}};
    expect_err(f, view_try(f, "v", 1, d1, 1, badmetric, 1), ERR_INVAL, "VECTOR field 'e'");
    store_view neg = {.name = "v", .nentities = 1, .entities = (char **)d1, .ttl_us = -1,
                      .nfields = 3, .fields = test_fields};
    expect_err(f, store_view_create(wr(f), &neg, f->err, sizeof f->err), ERR_INVAL, "TTL");
    neg.ttl_us = 0;
    neg.retention_us = -5;
    expect_err(f, store_view_create(wr(f), &neg, f->err, sizeof f->err), ERR_INVAL,
               "RETENTION");
    assert_int_equal(store_view_count(f->st), 0); /* nothing changed */
    assert_int_equal(store_hist_views(hist(f), NULL, 0), 0);

    store_field *many = calloc(FT_MAX_FIELDS + 1, sizeof *many);
    char (*names)[8] = calloc(FT_MAX_FIELDS + 1, 8);
    for (int i = 0; i <= FT_MAX_FIELDS; i++) {
        snprintf(names[i], 8, "f%d", i);
        many[i] = (store_field){.name = names[i], .type = {FT_INT32, 0}};
    }
    int rc = view_try(f, "big", 1, d1, 1, many, FT_MAX_FIELDS + 1);
    int said_schema = strstr(f->err, "SCHEMA") != NULL;
    int ok = view_try(f, "big", 1, d1, 1, many, FT_MAX_FIELDS);
    free(many);
    free(names);
    assert_int_equal(rc, ERR_INVAL);
    assert_true(said_schema);
    OK(ok);
    view(f, "v", 1, d1, 1);
    expect_err(f, view_try(f, "v", 1, d1, 1, test_fields, 3), ERR_EXISTS,
               "view 'v' already exists");
    end(f);
    fx_reopen(f);
    assert_int_equal(store_view_get(f->st, S("big"))->nfields, FT_MAX_FIELDS);
}

static void test_services(void **state)
{
    fx *f = *state;
    std_catalog(f);
    char *e = f->err;
    size_t el = sizeof f->err;
    const store_service *s = store_service_get(f->st, S("svc"));
    assert_non_null(s);
    assert_int_equal(s->n, 2);
    assert_string_equal(s->features[0].view, "dv");
    assert_string_equal(s->features[0].field, "a");
    assert_string_equal(s->features[1].view, "cv");
    assert_null(s->features[1].field);

    store_feature_ref bad_view[] = {{"dv", "a"}, {"xv", "a"}};
    expect_err(f, store_service_create(wr(f), S("s2"), 2, bad_view, e, el), ERR_INVAL,
               "unknown view 'xv' in FEATURES");
    store_feature_ref bad_field[] = {{"dv", "zz"}};
    expect_err(f, store_service_create(wr(f), S("s2"), 1, bad_field, e, el), ERR_INVAL,
               "unknown field 'zz' of view 'dv'");
    expect_err(f, store_service_create(wr(f), S("s2"), 0, bad_field, e, el), ERR_INVAL,
               "FEATURES");
    store_feature_ref one[] = {{"cv", "b"}};
    expect_err(f, store_service_create(wr(f), S("svc"), 1, one, e, el), ERR_EXISTS,
               "service 'svc' already exists");
    expect_err(f, store_service_create(wr(f), S("s:2"), 1, one, e, el), ERR_INVAL,
               "invalid service name");
    OK(store_service_create(wr(f), S("early"), 1, one, e, el));
    assert_int_equal(store_service_count(f->st), 2);
    assert_string_equal(store_service_at(f->st, 0)->name, "early");
    assert_string_equal(store_service_at(f->st, 1)->name, "svc");

    expect_err(f, store_view_drop(wr(f), S("dv"), e, el), ERR_PERM,
               "view 'dv' is used by service 'svc'");
    OK(store_service_drop(wr(f), S("svc"), e, el));
    expect_err(f, store_service_drop(wr(f), S("svc"), e, el), ERR_NOTFOUND, "'svc'");
    OK(store_view_drop(wr(f), S("dv"), e, el));
    expect_err(f, store_view_drop(wr(f), S("dv"), e, el), ERR_NOTFOUND, "unknown view 'dv'");
    expect_err(f, store_view_drop(wr(f), S("cv"), e, el), ERR_PERM, "service 'early'");
    assert_null(store_service_get(f->st, S("svc")));
    end(f);
    fx_reopen(f);
    assert_int_equal(store_service_count(f->st), 1);
    assert_null(store_view_get(f->st, S("dv")));
    assert_string_equal(store_service_get(f->st, S("early"))->features[0].field, "b");
}

static void test_persistence(void **state)
{
    fx *f = *state;
    std_catalog(f);
    uint32_t dv = store_view_get(f->st, S("dv"))->id;
    uint32_t cv = store_view_get(f->st, S("cv"))->id;
    end(f);
    fx_reopen(f);
    assert_int_equal(store_entity_count(f->st), 2);
    assert_int_equal(store_view_count(f->st), 2);
    assert_int_equal(store_service_count(f->st), 1);
    const store_view *v = store_view_get(f->st, S("cv"));
    assert_int_equal(v->id, cv);
    assert_int_equal(store_view_get(f->st, S("dv"))->id, dv);
    assert_int_equal(v->key_types[1], STORE_KEY_INT64);
    assert_int_equal(v->retention_us, 7000000);
    assert_int_equal(v->fields[2].type.dim, 3);
    assert_int_equal(v->fields[2].ef_construction, 200);
    assert_true(has_cf(f, dv) && has_cf(f, cv));
    store_feature_ref *s = store_service_get(f->st, S("svc"))->features;
    assert_string_equal(s[1].view, "cv");
    assert_null(s[1].field);
}

/* A record whose bytes were changed behind the store's back fails its CRC at open. */
static void test_corrupt_record(void **state)
{
    fx *f = *state;
    entity(f, "driver", STORE_KEY_INT64);
    end(f);
    fx_close(f);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {7, "edriver"}, v;
    OK(mdb_env_create(&env));
    OK(mdb_env_set_maxdbs(env, 16));
    OK(mdb_env_open(env, f->dir, 0, 0644));
    OK(mdb_txn_begin(env, NULL, 0, &txn));
    OK(mdb_dbi_open(txn, "catalog", 0, &dbi));
    OK(mdb_get(txn, dbi, &k, &v));
    char copy[64];
    assert_true(v.mv_size <= sizeof copy);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[1] = STORE_KEY_STRING; /* the CRC no longer matches */
    v.mv_data = copy;
    OK(mdb_put(txn, dbi, &k, &v, 0));
    OK(mdb_txn_commit(txn));
    mdb_env_close(env);
    char err[256] = "";
    assert_int_equal(store_open(&f->cfg, &f->st, err, sizeof err), ERR_CORRUPT);
    assert_non_null(strstr(err, "edriver"));
    f->st = NULL;
}

/* ---- failed passes ---- */

static void test_failed_pass_rolls_back(void **state)
{
    fx *f = *state;
    plant_broken_expiry(f);
    std_catalog(f);
    const store_view *dv = store_view_get(f->st, S("dv"));
    uint32_t dv_id = dv->id;
    push(f, dv, "7", 100, 1, 70, 1, 1);
    end(f);

    /* one pass: a new entity, a new view with a push, a service dropped, a view dropped,
     * the old view pushed to; then the pass fails */
    entity(f, "zone", STORE_KEY_STRING);
    const store_view *nv = view(f, "nv", 1, (const char *[]){"zone"}, 1);
    uint32_t nv_id = nv->id;
    assert_true(has_cf(f, nv_id)); /* created at once (no pushes yet for has_cf to write) */
    push(f, nv, "z1", 100, 1, 5, 1, 1);
    dv = store_view_get(f->st, S("dv"));
    push(f, dv, "7", 200, 1, 71, 1, 1);
    push(f, dv, "8", 200, 1, 80, 1, 1);
    OK(store_service_drop(wr(f), S("svc"), f->err, sizeof f->err));
    OK(store_view_drop(wr(f), S("dv"), f->err, sizeof f->err));
    poison(f);
    assert_int_equal(store_txn_end(f->st), ERR_CORRUPT);

    assert_null(store_entity_get(f->st, S("zone")));
    assert_null(store_view_get(f->st, S("nv")));
    assert_non_null(store_service_get(f->st, S("svc")));
    dv = store_view_get(f->st, S("dv"));
    assert_non_null(dv);
    assert_int_equal(dv->id, dv_id);
    assert_false(has_cf(f, nv_id)); /* the new view's history went */
    assert_true(has_cf(f, dv_id));  /* the drop never happened */
    assert_int_equal(online_a(f, dv, "7", NULL, NULL), 70);
    assert_int_equal(online_a(f, dv, "8", NULL, NULL), -1);
    assert_int_equal(hist_a(f, dv_id, dv, "7", 1000), 70); /* the batch was discarded */
    end(f);

    /* the same after a reopen, and the next pass works; the failed view's id stays used */
    fx_reopen(f);
    assert_null(store_view_get(f->st, S("nv")));
    assert_false(has_cf(f, nv_id));
    entity(f, "zone", STORE_KEY_STRING);
    nv = view(f, "nv", 1, (const char *[]){"zone"}, 1);
    assert_true(nv->id > dv_id);
    dv = store_view_get(f->st, S("dv"));
    push(f, dv, "7", 300, 1, 72, 1, 1);
    end(f);
    assert_int_equal(online_a(f, store_view_get(f->st, S("dv")), "7", NULL, NULL), 72);
    end(f);
    store_fs_stats fs;
    store_get_fs_stats(f->st, &fs);
    assert_int_equal(fs.history_batches, 1); /* since the reopen */
    assert_int_equal(fs.history_rows, 1);
}

/* Rows a pass wrote to the history before it failed (a read of history mid-pass writes the
 * pending batch) are deleted again: the history holds only pushes that were committed. */
static void test_failed_pass_unwrites_history(void **state)
{
    fx *f = *state;
    plant_broken_expiry(f);
    std_catalog(f);
    const store_view *dv = store_view_get(f->st, S("dv"));
    push(f, dv, "7", 100, 1, 70, 1, 1);
    end(f);
    dv = store_view_get(f->st, S("dv"));
    push(f, dv, "7", 200, 1, 71, 1, 1);
    push(f, dv, "9", 200, 1, 90, 1, 1);
    assert_int_equal(hist_a(f, dv->id, dv, "7", 1000), 71); /* written mid-pass */
    push(f, dv, "8", 300, 1, 80, 1, 1);                     /* still in the batch */
    poison(f);
    assert_int_equal(store_txn_end(f->st), ERR_CORRUPT);
    dv = store_view_get(f->st, S("dv"));
    assert_int_equal(hist_a(f, dv->id, dv, "7", 1000), 70);
    assert_int_equal(hist_a(f, dv->id, dv, "9", 1000), -1);
    assert_int_equal(hist_a(f, dv->id, dv, "8", 1000), -1);
    assert_int_equal(online_a(f, dv, "7", NULL, NULL), 70);
    end(f);
    push(f, dv, "9", 400, 1, 91, 1, 1); /* the next pass works, and is not undone later */
    end(f);
    poison(f); /* the broken expiry is still there: this pass fails too */
    assert_int_equal(store_txn_end(f->st), ERR_CORRUPT);
    dv = store_view_get(f->st, S("dv"));
    assert_int_equal(hist_a(f, dv->id, dv, "9", 1000), 91);
    end(f);
}

/* A history write that fails fails its pass: at the commit (LMDB does not commit after
 * it) or mid-pass in store_history (the pass is poisoned). The failure is made by dropping
 * a column family behind the store's back, so the batch names a view that is gone. */
static void test_history_write_failure(void **state)
{
    fx *f = *state;
    std_catalog(f);
    end(f);
    const store_view *dv = store_view_get(f->st, S("dv"));
    uint32_t dv_id = dv->id, cv_id = store_view_get(f->st, S("cv"))->id;
    store_hist *h = hist(f);
    push(f, dv, "1", 100, 1, 10, 1, 1);
    entity(f, "zone", STORE_KEY_STRING);
    OK(store_hist_drop_view(h, dv_id));
    assert_int_equal(store_txn_end(f->st), ERR_NOTFOUND);
    assert_null(store_entity_get(f->st, S("zone")));
    dv = store_view_get(f->st, S("dv"));
    assert_int_equal(online_a(f, dv, "1", NULL, NULL), -1);
    end(f);
    store_fs_stats fs;
    store_stats ss;
    store_get_fs_stats(f->st, &fs);
    store_get_stats(f->st, &ss);
    assert_int_equal(fs.history_write_errors, 1);
    assert_int_equal(fs.history_batches, 0);
    assert_int_equal(ss.failed_commits, 1);

    const store_view *cv = store_view_get(f->st, S("cv"));
    push(f, cv, "a:1", 100, 1, 20, 1, 1);
    OK(store_hist_drop_view(h, cv_id));
    store_hist *got = NULL;
    assert_int_equal(store_history(f->st, &got), ERR_NOTFOUND);
    assert_ptr_equal(got, h);
    store_txn *t;
    assert_int_equal(store_txn_write(f->st, 0, &t), ERR_NOTFOUND); /* poisoned */
    assert_int_equal(store_txn_end(f->st), ERR_NOTFOUND);
    assert_int_equal(online_a(f, store_view_get(f->st, S("cv")), "a:1", NULL, NULL), -1);
    end(f);

    /* the views lost their history behind the store's back: a reopen gives them new ones */
    fx_reopen(f);
    assert_true(has_cf(f, dv_id) && has_cf(f, cv_id));
    dv = store_view_get(f->st, S("dv"));
    push(f, dv, "1", 100, 1, 11, 1, 1);
    end(f);
    dv = store_view_get(f->st, S("dv"));
    assert_int_equal(online_a(f, dv, "1", NULL, NULL), 11);
    assert_int_equal(hist_a(f, dv_id, dv, "1", 100), 11);
    end(f);
}

/* A view created and dropped in a failed pass, and ids after failures: never reused. */
static void test_ids_never_reused(void **state)
{
    fx *f = *state;
    plant_broken_expiry(f);
    entity(f, "driver", STORE_KEY_INT64);
    const char *d1[] = {"driver"};
    uint32_t a = view(f, "a", 1, d1, 1)->id;
    end(f);
    OK(store_view_drop(wr(f), S("a"), f->err, sizeof f->err));
    end(f);
    assert_false(has_cf(f, a));
    uint32_t b = view(f, "a", 1, d1, 1)->id;
    assert_true(b > a);
    end(f);
    uint32_t c = view(f, "c", 1, d1, 1)->id; /* created in a pass that fails */
    assert_true(c > b);
    poison(f);
    assert_int_equal(store_txn_end(f->st), ERR_CORRUPT);
    uint32_t d = view(f, "d", 1, d1, 1)->id;
    assert_true(d > c);
    end(f);
    fx_reopen(f);
    OK(store_view_drop(wr(f), S("d"), f->err, sizeof f->err));
    end(f);
    fx_reopen(f);
    assert_true(view(f, "e", 1, d1, 1)->id > d);
    end(f);
}

/* ---- online rows and pushes ---- */

static void test_drop_removes_rows(void **state)
{
    fx *f = *state;
    std_catalog(f);
    OK(store_service_drop(wr(f), S("svc"), f->err, sizeof f->err));
    const store_view *dv = store_view_get(f->st, S("dv"));
    const store_view *cv = store_view_get(f->st, S("cv"));
    uint32_t dv_id = dv->id;
    push(f, dv, "1", 100, 1, 10, 1, 1);
    push(f, dv, "2", 100, 1, 20, 1, 1);
    push(f, cv, "paris:1", 100, 1, 30, 1, 1);
    end(f);
    uint64_t n;
    OK(store_online_count(rd(f), dv, &n));
    assert_int_equal(n, 2);
    OK(store_online_count(rd(f), cv, &n));
    assert_int_equal(n, 1);
    assert_int_equal(hist_a(f, dv_id, dv, "1", 100), 10);
    end(f);

    OK(store_view_drop(wr(f), S("dv"), f->err, sizeof f->err));
    assert_true(has_cf(f, dv_id)); /* the history goes after the commit */
    end(f);
    assert_false(has_cf(f, dv_id));
    dv = view(f, "dv", 1, (const char *[]){"driver"}, 1);
    assert_true(dv->id != dv_id);
    OK(store_online_count(rd(f), dv, &n));
    assert_int_equal(n, 0);
    assert_int_equal(online_a(f, dv, "1", NULL, NULL), -1);
    assert_int_equal(hist_a(f, dv->id, dv, "1", 100), -1);
    cv = store_view_get(f->st, S("cv"));
    assert_int_equal(online_a(f, cv, "paris:1", NULL, NULL), 30); /* the neighbour stays */
    end(f);
}

static void test_online_replace_rules(void **state)
{
    fx *f = *state;
    std_catalog(f);
    const store_view *dv = store_view_get(f->st, S("dv"));
    int64_t ev, cr;
    assert_int_equal(push(f, dv, "1", 100, 10, 1, 1, 1), 1);
    assert_int_equal(push(f, dv, "1", 99, 50, 2, 1, 1), 0);  /* older event */
    assert_int_equal(push(f, dv, "1", 100, 9, 3, 1, 1), 0);  /* same event, older created */
    assert_int_equal(online_a(f, dv, "1", &ev, &cr), 1);
    assert_int_equal(ev, 100);
    assert_int_equal(cr, 10);
    assert_int_equal(push(f, dv, "1", 100, 10, 4, 1, 1), 1); /* the same pair replaces */
    assert_int_equal(online_a(f, dv, "1", NULL, NULL), 4);
    assert_int_equal(push(f, dv, "1", 100, 11, 5, 1, 1), 1); /* newer created */
    assert_int_equal(push(f, dv, "1", 101, 0, 6, 1, 1), 1);  /* newer event */
    assert_int_equal(online_a(f, dv, "1", &ev, &cr), 6);
    assert_int_equal(ev, 101);
    assert_int_equal(cr, 0);
    end(f);
    assert_int_equal(online_a(f, dv, "1", NULL, NULL), 6);
    assert_int_equal(hist_a(f, dv->id, dv, "1", 100), 5); /* every push is history */
    assert_int_equal(hist_a(f, dv->id, dv, "1", 99), 2);
    end(f);

    /* store_online_put follows the same rule (MATERIALIZE) */
    int replaced = -1;
    key(f, dv, "1");
    row(f, 7);
    OK(store_online_put(wr(f), dv, f->key.data, f->key.len, 101, -1, f->row.data, f->row.len,
                        &replaced));
    assert_int_equal(replaced, 0);
    OK(store_online_put(wr(f), dv, f->key.data, f->key.len, 101, 0, f->row.data, f->row.len,
                        &replaced));
    assert_int_equal(replaced, 1);
    end(f);
    assert_int_equal(online_a(f, dv, "1", NULL, NULL), 7);
    end(f);
}

static void test_push_targets(void **state)
{
    fx *f = *state;
    std_catalog(f);
    const store_view *dv = store_view_get(f->st, S("dv"));
    assert_int_equal(push(f, dv, "1", 100, 1, 10, 1, 0), 1); /* TO ONLINE */
    assert_int_equal(push(f, dv, "2", 100, 1, 20, 0, 1), 0); /* TO OFFLINE */
    const store_view *off = view(f, "off", 1, (const char *[]){"driver"}, 0);
    assert_int_equal(push(f, off, "3", 100, 1, 30, 1, 1), 0); /* an offline-only view */
    end(f);
    dv = store_view_get(f->st, S("dv"));
    off = store_view_get(f->st, S("off"));
    assert_int_equal(online_a(f, dv, "1", NULL, NULL), 10);
    assert_int_equal(hist_a(f, dv->id, dv, "1", 100), -1);
    assert_int_equal(online_a(f, dv, "2", NULL, NULL), -1);
    assert_int_equal(hist_a(f, dv->id, dv, "2", 100), 20);
    assert_int_equal(online_a(f, off, "3", NULL, NULL), -1);
    assert_int_equal(hist_a(f, off->id, off, "3", 100), 30);
    end(f);

    /* bad keys are refused before anything is written */
    row(f, 1);
    assert_int_equal(store_fs_push(wr(f), dv, "", 0, 1, 1, f->row.data, f->row.len, 1, 1, NULL),
                     ERR_INVAL);
    char big[STORE_EKEY_MAX + 1] = {0};
    assert_int_equal(store_fs_push(wr(f), dv, big, sizeof big, 1, 1, f->row.data, f->row.len,
                                   1, 1, NULL), ERR_INVAL);
    store_fs_stats fs;
    store_get_fs_stats(f->st, &fs);
    assert_int_equal(fs.pushes, 3);
    end(f);
}

static void test_history_mid_pass(void **state)
{
    fx *f = *state;
    std_catalog(f);
    end(f);
    const store_view *dv = store_view_get(f->st, S("dv"));
    push(f, dv, "1", 100, 1, 10, 1, 1);
    assert_int_equal(hist_a(f, dv->id, dv, "1", 100), 10); /* before the pass commits */
    push(f, dv, "1", 200, 1, 11, 1, 1);
    assert_int_equal(hist_a(f, dv->id, dv, "1", 300), 11);
    store_fs_stats fs;
    store_get_fs_stats(f->st, &fs);
    assert_int_equal(fs.history_batches, 2);
    end(f);
    store_get_fs_stats(f->st, &fs);
    assert_int_equal(fs.history_batches, 2); /* nothing left for the commit */
    assert_int_equal(fs.history_rows, 2);
    assert_int_equal(fs.pushes, 2);
    assert_int_equal(fs.history_write_errors, 0);
}

/* Writing under `durability always` syncs the history too; the rows survive a reopen. */
static void test_durable_push(void **state)
{
    fx *f = *state;
    OK(store_set_durability(f->st, DURABILITY_ALWAYS));
    std_catalog(f);
    const store_view *cv = store_view_get(f->st, S("cv"));
    uint32_t id = cv->id;
    push(f, cv, "a\\:b:5", 100, 1, 10, 1, 1);
    end(f);
    fx_reopen(f);
    cv = store_view_get(f->st, S("cv"));
    assert_int_equal(online_a(f, cv, "a\\:b:5", NULL, NULL), 10);
    assert_int_equal(hist_a(f, id, cv, "a\\:b:5", 100), 10);
    end(f);
}

static const char *self_path; /* this program, run again as the crashing child */

/* The child of test_crash_between_engines (a fresh process: TSan allows no threads after a
 * fork of a threaded one): pushes, writes the pass's history mid-pass, and exits without
 * the LMDB commit, as a SIGKILL would. */
static int crash_child(const char *dir)
{
    fx f = {.cfg = {.dir = dir, .map_size = 16 * MIB, .durability = DURABILITY_NO}};
    strcpy(f.dir, dir);
    buf_init(&f.key);
    buf_init(&f.row);
    fx_open(&f);
    const store_view *dv = store_view_get(f.st, S("dv"));
    push(&f, dv, "1", 200, 1, 41, 1, 1);
    push(&f, dv, "1", 150, 1, 40, 1, 1); /* older: online keeps 41 */
    push(&f, dv, "2", 200, 1, 50, 0, 1);
    push(&f, dv, "3", 200, 1, 60, 1, 1);
    entity(&f, "zone", STORE_KEY_STRING);
    store_hist *h;
    _exit(store_history(f.st, &h) == 0 ? 0 : 1);
}

/* A crash after a pass wrote its history (here mid-pass, through store_history) but before
 * LMDB committed: the next open writes the journaled rows that also went online onto the
 * online rows (as the pushes would have), leaves TO OFFLINE rows to history alone, and
 * does not apply the pass's other LMDB writes. */
static void test_crash_between_engines(void **state)
{
    fx *f = *state;
    std_catalog(f);
    const store_view *dv = store_view_get(f->st, S("dv"));
    uint32_t id = dv->id;
    push(f, dv, "1", 100, 1, 10, 1, 1);
    end(f);
    fx_close(f);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        execl(self_path, self_path, "--crash-child", f->dir, (char *)NULL);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fx_open(f);
    dv = store_view_get(f->st, S("dv"));
    int64_t ev;
    assert_int_equal(online_a(f, dv, "1", &ev, NULL), 41);
    assert_int_equal(ev, 200);
    assert_int_equal(online_a(f, dv, "2", NULL, NULL), -1);
    assert_int_equal(online_a(f, dv, "3", NULL, NULL), 60);
    assert_int_equal(hist_a(f, id, dv, "1", 1000), 41);
    assert_int_equal(hist_a(f, id, dv, "2", 1000), 50);
    assert_null(store_entity_get(f->st, S("zone")));
    end(f);
    /* committed passes after the replay: a later reopen keeps their rows */
    push(f, dv, "1", 300, 1, 42, 1, 1);
    end(f);
    fx_reopen(f);
    dv = store_view_get(f->st, S("dv"));
    assert_int_equal(online_a(f, dv, "1", NULL, NULL), 42);
    assert_int_equal(online_a(f, dv, "3", NULL, NULL), 60);
    end(f);
}

/* A view's retention applies to its history from its creation, and again after a reopen
 * (the history does not keep it: the store sets it at open). */
static void test_retention(void **state)
{
    fx *f = *state;
    std_catalog(f); /* retention 7 s */
    int64_t now = clock_us(), hour = 3600 * INT64_C(1000000), old = now - hour;
    int64_t ahead = now + hour; /* inside the window however slowly this runs (valgrind) */
    const store_view *dv = store_view_get(f->st, S("dv"));
    uint32_t id = dv->id;
    push(f, dv, "1", old, 1, 1, 0, 1);
    push(f, dv, "2", ahead, 1, 2, 0, 1);
    end(f);
    OK(store_hist_compact(hist(f), id));
    assert_int_equal(hist_a(f, id, dv, "1", now), -1);
    assert_int_equal(hist_a(f, id, dv, "2", ahead), 2);
    end(f);
    fx_reopen(f);
    dv = store_view_get(f->st, S("dv"));
    push(f, dv, "3", old, 1, 3, 0, 1);
    end(f);
    OK(store_hist_compact(hist(f), id));
    assert_int_equal(hist_a(f, id, dv, "3", now), -1);
    assert_int_equal(hist_a(f, id, dv, "2", ahead), 2);
    end(f);
}

/* ---- orphan column families ---- */

static void test_orphan_cf(void **state)
{
    fx *f = *state;
    std_catalog(f);
    uint32_t dv = store_view_get(f->st, S("dv"))->id;
    uint32_t next = store_view_get(f->st, S("cv"))->id + 1; /* the id the store hands out next */
    end(f);
    fx_close(f);
    char path[128];
    snprintf(path, sizeof path, "%s/history", f->dir);
    store_hist *h;
    char err[256];
    OK(store_hist_open(path, 0, &h, err, sizeof err));
    OK(store_hist_create_view(h, 999, 0));
    store_hist_close(h);
    fx_open(f);
    assert_false(has_cf(f, 999));
    assert_true(has_cf(f, dv));

    /* a column family already there for the next view id is an orphan too: replaced */
    const store_view *d = store_view_get(f->st, S("dv"));
    OK(store_hist_create_view(hist(f), 1000, 0));
    OK(store_hist_create_view(hist(f), next, 0));
    store_hbatch *b = store_hbatch_new();
    key(f, d, "5");
    OK(store_hbatch_put(b, hist(f), next, f->key.data, f->key.len, 1, 1, S("old")));
    OK(store_hist_write(hist(f), b, 0, err, sizeof err));
    store_hbatch_free(b);
    const store_view *v = view(f, "fresh", 1, (const char *[]){"driver"}, 1);
    assert_int_equal(v->id, next);
    assert_int_equal(hist_a(f, next, v, "5", 1), -1); /* the orphan's rows are gone */
    end(f);
    fx_reopen(f);
    assert_false(has_cf(f, 1000));
    assert_true(has_cf(f, next));
}

/* ---- failed allocations ---- */

static void test_alloc_failure(void **state)
{
    fx *f = *state;
    std_catalog(f);
    end(f);
    int nviews = store_hist_views(hist(f), NULL, 0);
    alloc_fail_after(0);
    assert_int_equal(store_entity_create(wr(f), S("zone"), STORE_KEY_STRING, NULL, 0, f->err,
                                         sizeof f->err), ERR_NOMEM);
    alloc_fail_after(0);
    assert_int_equal(view_try(f, "nv", 1, (const char *[]){"driver"}, 1, test_fields, 3),
                     ERR_NOMEM);
    store_feature_ref one[] = {{"dv", "a"}};
    alloc_fail_after(0);
    assert_int_equal(store_service_create(wr(f), S("s2"), 1, one, f->err, sizeof f->err),
                     ERR_NOMEM);
    alloc_fail_after(-1);
    assert_int_equal(store_entity_count(f->st), 2);
    assert_int_equal(store_view_count(f->st), 2);
    assert_int_equal(store_service_count(f->st), 1);
    assert_int_equal(store_hist_views(hist(f), NULL, 0), nviews);
    end(f); /* the pass is not poisoned */
    OK(store_entity_create(wr(f), S("zone"), STORE_KEY_STRING, NULL, 0, f->err, sizeof f->err));
    end(f);
}

/* ---- entity keys ---- */

static void expect_parse(fx *f, const store_view *v, const char *arg, const char *want,
                         size_t wlen)
{
    key(f, v, arg);
    assert_int_equal(f->key.len, wlen);
    assert_memory_equal(f->key.data, want, wlen);
    buf out;
    buf_init(&out);
    buf_append(&out, "x", 1); /* format appends */
    store_ekey_format(f->key.data, f->key.len, &out);
    assert_int_equal(out.len, 1 + strlen(arg));
    assert_memory_equal(out.data + 1, arg, strlen(arg));
    buf_free(&out);
}

static void expect_bad_key(fx *f, const store_view *v, const char *arg, size_t len,
                           const char *want)
{
    f->err[0] = '\0';
    f->key.len = 0;
    expect_err(f, store_ekey_parse(v, arg, len, &f->key, f->err, sizeof f->err), ERR_INVAL,
               want);
}

static void test_ekeys(void **state)
{
    fx *f = *state;
    std_catalog(f);
    const store_view *dv = store_view_get(f->st, S("dv"));
    const store_view *cv = store_view_get(f->st, S("cv"));
    expect_parse(f, dv, "42", S("\0\00242"));
    expect_parse(f, dv, "-7", S("\0\002-7"));
    expect_parse(f, cv, "paris:42", S("\0\005paris\0\00242"));
    expect_parse(f, cv, "a\\:b:1", S("\0\003a:b\0\0011"));
    expect_parse(f, cv, "a\\\\:1", S("\0\002a\\\0\0011"));
    expect_parse(f, cv, "\\:\\\\\\::0", S("\0\003:\\:\0\0010"));
    expect_parse(f, cv, ":0", S("\0\0\0\0010")); /* an empty string value */

    expect_bad_key(f, dv, S("abc"), "entity 'driver' needs an INT64 value, got 'abc'");
    expect_bad_key(f, dv, S("042"), "INT64");
    expect_bad_key(f, dv, S("+4"), "INT64");
    expect_bad_key(f, dv, S("99999999999999999999"), "INT64");
    expect_bad_key(f, dv, "", 0, "INT64");
    expect_bad_key(f, dv, S("1:2"), "has 2 parts, view 'dv' needs 1");
    expect_bad_key(f, cv, S("paris"), "has 1 part, view 'cv' needs 2");
    expect_bad_key(f, cv, S("a:b:1"), "has 3 parts");
    expect_bad_key(f, cv, S("paris:1\\"), "bad escape");
    expect_bad_key(f, cv, S("pa\\ris:1"), "bad escape");
    char big[STORE_EKEY_MAX + 8];
    memset(big, 'x', sizeof big);
    memcpy(big + 496, ":1", 2); /* 2 + 496 + 2 + 1: one byte over */
    expect_bad_key(f, cv, big, 498, "longer than 500 bytes");
    memset(big, 'x', sizeof big);
    memcpy(big + 495, ":1", 2); /* exactly at the limit */
    OK(store_ekey_parse(cv, big, 497, &f->key, f->err, sizeof f->err));
    assert_int_equal(f->key.len, STORE_EKEY_MAX);
    memset(big, 'x', sizeof big);
    big[497] = ':'; /* an empty last part whose length bytes overflow */
    expect_bad_key(f, cv, big, 498, "longer than 500 bytes");

    const char *parts[] = {"pa:ris", "12"};
    size_t lens[] = {6, 2};
    OK(store_ekey_build(cv, parts, lens, &f->key, f->err, sizeof f->err));
    assert_int_equal(f->key.len, 12);
    assert_memory_equal(f->key.data, "\0\006pa:ris\0\00212", 12);
    buf out;
    buf_init(&out);
    store_ekey_format(f->key.data, f->key.len, &out);
    assert_int_equal(out.len, 10);
    assert_memory_equal(out.data, "pa\\:ris:12", 10);
    buf_free(&out);
    const char *bad[] = {"paris", "x1"};
    size_t blens[] = {5, 2};
    f->err[0] = '\0';
    expect_err(f, store_ekey_build(cv, bad, blens, &f->key, f->err, sizeof f->err), ERR_INVAL,
               "got 'x1'");
    const char *longp[] = {big, "1"};
    size_t llens[] = {497, 1};
    expect_err(f, store_ekey_build(cv, longp, llens, &f->key, f->err, sizeof f->err), ERR_INVAL,
               "longer than 500");
    end(f);
}

/* ---- history cursor on the store's views ---- */

static void test_cursor_on_store(void **state)
{
    fx *f = *state;
    std_catalog(f);
    const store_view *cv = store_view_get(f->st, S("cv"));
    push(f, cv, "b:1", 100, 1, 1, 1, 1);
    push(f, cv, "a:1", 50, 1, 2, 1, 1);
    push(f, cv, "a:1", 60, 1, 3, 1, 1);
    end(f);
    store_hcur *c;
    OK(store_hcur_new(hist(f), cv->id, &c));
    const char *e, *r;
    size_t elen, rlen;
    int64_t ev, cr;
    OK(store_hcur_next_entity(c));
    store_hcur_row(c, &e, &elen, &ev, &cr, &r, &rlen);
    buf out;
    buf_init(&out);
    store_ekey_format(e, elen, &out);
    assert_int_equal(out.len, 3);
    assert_memory_equal(out.data, "a:1", 3);
    assert_int_equal(ev, 60);
    assert_int_equal(row_a(r, rlen), 3);
    buf_free(&out);
    store_hcur_free(c);
    end(f);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(int argc, char **argv)
{
    log_set_level(LOG_WARNING + 1); /* failed passes and orphans log on purpose */
    self_path = argv[0];
    if (argc == 3 && strcmp(argv[1], "--crash-child") == 0)
        return crash_child(argv[2]);
    const struct CMUnitTest tests[] = {
        T(test_entities),
        T(test_views),
        T(test_view_validation),
        T(test_services),
        T(test_persistence),
        T(test_corrupt_record),
        T(test_failed_pass_rolls_back),
        T(test_failed_pass_unwrites_history),
        T(test_history_write_failure),
        T(test_ids_never_reused),
        T(test_drop_removes_rows),
        T(test_online_replace_rules),
        T(test_push_targets),
        T(test_history_mid_pass),
        T(test_durable_push),
        T(test_crash_between_engines),
        T(test_retention),
        T(test_orphan_cf),
        T(test_alloc_failure),
        T(test_ekeys),
        T(test_cursor_on_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
