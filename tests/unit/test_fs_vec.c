/* test_fs_vec.c: unit tests for what keeps FS.KNN's vector indexes in step with the online
 * rows: the store's online-row hook (store/online.c: PUT for pushes and materialized rows
 * that replace, nothing for older ones, DROP with a view, COMMIT, ABORT after a failed pass)
 * and its iterator over a view's rows; and the indexes themselves (query/fs_vec.c): built
 * at init from the rows, following replaces and NULL vectors with slots reused, dropped
 * with the view, and after a failed pass answering from the committed rows only. Each test
 * owns a fresh data directory under /tmp. */
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

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "query/fs_vec.h"
#include "store/store.h"

#define S(lit) lit, sizeof(lit) - 1 /* a string literal and its length */
#define OK(expr) assert_int_equal((expr), 0)
#define NOW 1000000 /* ms */
#define MIB ((size_t)1 << 20)
#define MAXEV 64

/* What the recording hook saw. */
typedef struct event {
    int kind;
    uint32_t view;
    char key[16];
    int64_t event_us;
} event;

typedef struct fx {
    char dir[64];
    store_config cfg;
    store *st;
    char err[256];
    event ev[MAXEV];
    int nev;
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
    fs_vec_reset(); /* before the store it hooks goes */
    store_close(f->st);
    f->st = NULL;
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

/* Plants an expiry entry whose key record is gone, so that an expire cycle fails with
 * ERR_CORRUPT and poisons its pass (as a storage failure would). */
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

/* A view "v" of entity "e": emb VECTOR 2 (index as given), n INT64. */
static const store_view *make_view(fx *f, const char *name, int vindex)
{
    store_field fields[2] = {
        {.name = "emb", .type = {FT_VECTOR, 2}, .vindex = vindex},
        {.name = "n", .type = {FT_INT64, 0}},
    };
    char *ents[] = {"e"};
    store_view spec = {.name = (char *)name, .nentities = 1, .entities = ents, .online = 1,
                       .nfields = 2, .fields = fields};
    store_txn *t = wr(f);
    if (!store_entity_get(f->st, S("e")))
        OK(store_entity_create(t, S("e"), STORE_KEY_STRING, NULL, 0, f->err, sizeof f->err));
    OK(store_view_create(t, &spec, f->err, sizeof f->err));
    return store_view_get(f->st, name, strlen(name));
}

static const store_view *get_view(fx *f, const char *name)
{
    return store_view_get(f->st, name, strlen(name));
}

/* The stored key of a one-entity view: u16 be length, bytes. */
static size_t ekey(const char *k, char *out)
{
    size_t n = strlen(k);
    out[0] = 0;
    out[1] = (char)n;
    memcpy(out + 2, k, n);
    return n + 2;
}

/* Pushes (key, event) with emb = (x, y) (has_vec 0: NULL) and n; returns replaced. */
static int push(fx *f, const char *view, const char *key, int64_t event, int has_vec, float x,
                float y, int64_t n)
{
    const store_view *v = get_view(f, view);
    float vec[2] = {x, y};
    store_fvalue vals[2] = {{.is_null = !has_vec, .bytes = (const char *)vec, .len = 8},
                            {.i = n}};
    buf row;
    buf_init(&row);
    store_row_encode(v->schema, v->nfields, vals, &row);
    char k[32];
    size_t klen = ekey(key, k);
    int replaced;
    OK(store_fs_push(wr(f), v, k, klen, event, 1, row.data, row.len, 1, 1, &replaced));
    buf_free(&row);
    return replaced;
}

/* The nearest key to (x, y) through the view's index ("" when none), and its distance. */
static const char *nearest(fx *f, const char *view, float x, float y, float *dist, size_t *count)
{
    static char key[32];
    const store_view *v = get_view(f, view);
    fs_vec_view *vv;
    OK(fs_vec_view_get(rd(f), v, &vv, f->err, sizeof f->err));
    vec_index *ix = fs_vec_index(vv, 0);
    assert_non_null(ix);
    *count = vec_count(ix);
    float q[2] = {x, y};
    vec_hit hit;
    size_t n;
    OK(vec_knn(ix, q, 1, 0, NULL, &hit, &n));
    if (n == 0)
        return "";
    const char *k;
    size_t klen;
    OK(fs_vec_key(vv, hit.id, &k, &klen));
    snprintf(key, sizeof key, "%.*s", (int)(klen - 2), k + 2);
    *dist = hit.dist;
    return key;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/test_fs_vec.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->cfg = (store_config){.dir = f->dir, .map_size = 16 * MIB, .durability = DURABILITY_NO};
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
    if (f->st)
        fx_close(f);
    nftw(f->dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- the hook ---- */

static void record(void *ctx, const store_online_event *e)
{
    fx *f = ctx;
    assert_true(f->nev < MAXEV);
    event *r = &f->ev[f->nev++];
    r->kind = e->kind;
    r->view = e->view_id;
    r->event_us = e->event_us;
    r->key[0] = '\0';
    if (e->kind == STORE_ONLINE_PUT) {
        assert_non_null(e->t);
        assert_int_equal(e->view->id, e->view_id);
        snprintf(r->key, sizeof r->key, "%.*s", (int)e->elen - 2, e->ekey + 2);
        /* the row the hook sees is the one now stored, readable through t */
        int64_t ev, cr;
        const char *row;
        size_t len;
        OK(store_online_get(e->t, e->view, e->ekey, e->elen, &ev, &cr, &row, &len));
        assert_int_equal(ev, e->event_us);
        assert_int_equal(len, e->rowlen);
        assert_memory_equal(row, e->row, len);
    } else if (e->kind == STORE_ONLINE_DROP) {
        assert_non_null(e->t);
        assert_null(e->view);
        assert_null(e->ekey);
    } else {
        assert_null(e->t);
    }
}

static void expect(fx *f, int i, int kind, uint32_t view, const char *key, int64_t event_us)
{
    assert_true(i < f->nev);
    assert_int_equal(f->ev[i].kind, kind);
    assert_int_equal(f->ev[i].view, view);
    assert_string_equal(f->ev[i].key, key);
    assert_int_equal(f->ev[i].event_us, event_us);
}

static void test_hook_events(void **state)
{
    fx *f = *state;
    plant_broken_expiry(f);
    uint32_t id = make_view(f, "v", STORE_VINDEX_FLAT)->id;
    end(f);
    store_set_online_hook(f->st, record, f);
    assert_int_equal(push(f, "v", "a", 100, 1, 1, 2, 1), 1);
    assert_int_equal(push(f, "v", "a", 50, 1, 1, 2, 1), 0); /* older: no event */
    assert_int_equal(push(f, "v", "b", 100, 0, 0, 0, 1), 1);
    end(f);
    assert_int_equal(f->nev, 3);
    expect(f, 0, STORE_ONLINE_PUT, id, "a", 100);
    expect(f, 1, STORE_ONLINE_PUT, id, "b", 100);
    expect(f, 2, STORE_ONLINE_COMMIT, 0, "", 0);

    /* store_online_put (FS.MATERIALIZE's write) reports too, when it replaces */
    f->nev = 0;
    const store_view *v = get_view(f, "v");
    char k[8];
    size_t klen = ekey("c", k);
    int replaced;
    OK(store_online_put(wr(f), v, k, klen, 70, 1, "", 0, &replaced));
    assert_int_equal(replaced, 1);
    OK(store_online_put(wr(f), v, k, klen, 60, 1, "", 0, &replaced));
    assert_int_equal(replaced, 0);
    /* a failed pass: ABORT, and nothing of it stays */
    poison(f);
    assert_int_equal(store_txn_end(f->st), ERR_CORRUPT);
    assert_int_equal(f->nev, 2);
    expect(f, 0, STORE_ONLINE_PUT, id, "c", 70);
    expect(f, 1, STORE_ONLINE_ABORT, 0, "", 0);

    /* a view drop */
    f->nev = 0;
    OK(store_view_drop(wr(f), S("v"), f->err, sizeof f->err));
    end(f);
    assert_int_equal(f->nev, 2);
    expect(f, 0, STORE_ONLINE_DROP, id, "", 0);
    expect(f, 1, STORE_ONLINE_COMMIT, 0, "", 0);
    store_set_online_hook(f->st, NULL, NULL);
}

static void test_online_iter(void **state)
{
    fx *f = *state;
    make_view(f, "v1", STORE_VINDEX_FLAT);
    make_view(f, "v2", STORE_VINDEX_FLAT);
    make_view(f, "v3", STORE_VINDEX_FLAT);
    push(f, "v2", "b", 10, 1, 1, 1, 2);
    push(f, "v2", "a", 20, 0, 0, 0, 1);
    push(f, "v1", "z", 30, 1, 1, 1, 9);
    push(f, "v3", "y", 30, 1, 1, 1, 9);
    for (int pass = 0; pass < 2; pass++) { /* the pass's own writes, then committed */
        store_oiter *it;
        const char *k, *row;
        size_t klen, rowlen;
        int64_t ev, cr;
        OK(store_online_iter(rd(f), get_view(f, "v2"), &it));
        OK(store_oiter_next(it, &k, &klen, &ev, &cr, &row, &rowlen));
        assert_int_equal(klen, 3);
        assert_memory_equal(k, "\0\1a", 3);
        assert_int_equal(ev, 20);
        assert_int_equal(cr, 1);
        store_fvalue vals[2];
        const store_view *v = get_view(f, "v2");
        OK(store_row_decode(v->schema, v->nfields, row, rowlen, vals));
        assert_true(vals[0].is_null);
        assert_int_equal(vals[1].i, 1);
        OK(store_oiter_next(it, &k, &klen, &ev, &cr, &row, &rowlen));
        assert_memory_equal(k, "\0\1b", 3);
        assert_int_equal(store_oiter_next(it, &k, &klen, &ev, &cr, &row, &rowlen),
                         ERR_NOTFOUND);
        assert_int_equal(store_oiter_next(it, &k, &klen, &ev, &cr, &row, &rowlen),
                         ERR_NOTFOUND);
        store_oiter_free(it);
        end(f);
    }
    make_view(f, "v4", STORE_VINDEX_FLAT);
    store_oiter *it;
    const char *k, *row;
    size_t klen, rowlen;
    int64_t ev, cr;
    OK(store_online_iter(rd(f), get_view(f, "v4"), &it));
    assert_int_equal(store_oiter_next(it, &k, &klen, &ev, &cr, &row, &rowlen), ERR_NOTFOUND);
    store_oiter_free(it);
    end(f);
}

/* ---- the indexes ---- */

static void test_index_follows_rows(void **state)
{
    fx *f = *state;
    float d;
    size_t count;
    make_view(f, "v", STORE_VINDEX_FLAT);
    push(f, "v", "a", 10, 1, 0, 0, 1);
    push(f, "v", "b", 10, 1, 10, 10, 1);
    end(f);
    fs_vec_init(f->st); /* built from the rows */
    assert_string_equal(nearest(f, "v", 1, 1, &d, &count), "a");
    assert_int_equal(count, 2);
    assert_true(d == 2.0f);
    /* a newer row replaces a's vector; an older one does not */
    push(f, "v", "a", 20, 1, 100, 100, 1);
    push(f, "v", "b", 5, 1, 0, 0, 1);
    end(f);
    assert_string_equal(nearest(f, "v", 1, 1, &d, &count), "b");
    /* a NULL vector leaves the index and frees the slot, which the next entity takes */
    fs_vec_view *vv;
    OK(fs_vec_view_get(rd(f), get_view(f, "v"), &vv, f->err, sizeof f->err));
    assert_int_equal(fs_vec_slots(vv), 2);
    push(f, "v", "b", 30, 0, 0, 0, 1);
    end(f);
    assert_string_equal(nearest(f, "v", 1, 1, &d, &count), "a");
    assert_int_equal(count, 1);
    push(f, "v", "c", 30, 1, 2, 2, 1);
    end(f);
    assert_string_equal(nearest(f, "v", 1, 1, &d, &count), "c");
    assert_int_equal(count, 2);
    OK(fs_vec_view_get(rd(f), get_view(f, "v"), &vv, f->err, sizeof f->err));
    assert_int_equal(fs_vec_slots(vv), 2); /* b's slot reused */
    end(f);
    /* a view created later gets its index at its first push */
    make_view(f, "w", STORE_VINDEX_FLAT);
    push(f, "w", "x", 1, 1, 5, 5, 1);
    end(f);
    assert_string_equal(nearest(f, "w", 0, 0, &d, &count), "x");
    /* INDEX NONE: no index */
    make_view(f, "none", STORE_VINDEX_NONE);
    push(f, "none", "x", 1, 1, 5, 5, 1);
    OK(fs_vec_view_get(rd(f), get_view(f, "none"), &vv, f->err, sizeof f->err));
    assert_null(fs_vec_index(vv, 0));
    end(f);
    /* a dropped view's index goes; the name again is a new, empty view */
    OK(store_view_drop(wr(f), S("w"), f->err, sizeof f->err));
    end(f);
    make_view(f, "w", STORE_VINDEX_FLAT);
    end(f);
    assert_string_equal(nearest(f, "w", 0, 0, &d, &count), "");
    assert_int_equal(count, 0);
    end(f);
}

static void test_failed_pass_rebuilds(void **state)
{
    fx *f = *state;
    float d;
    size_t count;
    plant_broken_expiry(f);
    make_view(f, "v", STORE_VINDEX_FLAT);
    push(f, "v", "a", 10, 1, 0, 0, 1);
    push(f, "v", "b", 10, 1, 10, 10, 1);
    end(f);
    fs_vec_init(f->st);
    /* a pass moves b next to the query, is read (the index sees it), then fails */
    push(f, "v", "b", 20, 1, 1, 1, 1);
    push(f, "v", "c", 20, 1, 1, 1, 1);
    assert_string_equal(nearest(f, "v", 1, 1, &d, &count), "b");
    assert_int_equal(count, 3);
    poison(f);
    assert_int_equal(store_txn_end(f->st), ERR_CORRUPT);
    assert_string_equal(nearest(f, "v", 1, 1, &d, &count), "a");
    assert_int_equal(count, 2);
    end(f);
    /* an index built mid-pass through the write transaction is thrown away as well */
    make_view(f, "w", STORE_VINDEX_FLAT);
    end(f);
    push(f, "w", "x", 1, 1, 0, 0, 1);
    end(f);
    fs_vec_reset();
    push(f, "w", "y", 1, 1, 1, 1, 1); /* unhooked: nothing follows it */
    fs_vec_init(f->st);               /* builds w through the pass, y included */
    assert_string_equal(nearest(f, "w", 1, 1, &d, &count), "y");
    poison(f);
    assert_int_equal(store_txn_end(f->st), ERR_CORRUPT);
    assert_string_equal(nearest(f, "w", 1, 1, &d, &count), "x");
    assert_int_equal(count, 1);
    end(f);
    /* a view drop that fails: the view and its vectors are back */
    OK(store_view_drop(wr(f), S("v"), f->err, sizeof f->err));
    poison(f);
    assert_int_equal(store_txn_end(f->st), ERR_CORRUPT);
    assert_string_equal(nearest(f, "v", 1, 1, &d, &count), "a");
    assert_int_equal(count, 2);
    end(f);
    /* and the next pass works on */
    push(f, "v", "d", 30, 1, 1, 1, 1);
    end(f);
    assert_string_equal(nearest(f, "v", 1, 1, &d, &count), "d");
    end(f);
}

int main(void)
{
    log_set_level(LOG_WARNING + 1); /* failed passes log on purpose */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hook_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_online_iter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_follows_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_pass_rebuilds, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
