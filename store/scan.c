/* scan.c: everything that walks ranges of the keyspace: ordered iteration over a
 * database's keys or a hash's fields (resumable from an opaque position, which is how SCAN
 * cursors work), FLUSHDB/FLUSHALL, and the active expiry cycle over the time-ordered
 * "expires" index. */
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "store_int.h"

struct store_iter {
    store_txn *t;
    MDB_cursor *cur;
    MDB_dbi dbi[2];  /* short and long (digested) records */
    int phase;       /* index into dbi; 2 when done */
    int fields;      /* iterating hash fields rather than keys */
    int positioned;  /* cursor sits on the last returned record */
    int64_t now;
    unsigned char prefix[8];
    size_t plen;
    unsigned char pos[1 + 512]; /* phase byte, then the last returned stored key */
    size_t poslen;
};

static int iter_new(store_txn *t, MDB_dbi a, MDB_dbi b, const void *prefix, size_t plen,
                    const char *from, size_t flen, store_iter **out)
{
    if (flen > sizeof ((store_iter *)0)->pos || (flen && (unsigned char)from[0] > 1))
        return ERR_INVAL;
    store_iter *it = try_calloc(1, sizeof *it);
    if (!it)
        return ERR_NOMEM;
    it->t = t;
    it->dbi[0] = a;
    it->dbi[1] = b;
    memcpy(it->prefix, prefix, plen);
    it->plen = plen;
    if (flen) {
        memcpy(it->pos, from, flen);
        it->poslen = flen;
        it->phase = (unsigned char)from[0];
    }
    *out = it;
    return 0;
}

int store_iter_keys(store_txn *t, int db, const char *from, size_t flen, int64_t now_ms,
                    store_iter **out)
{
    unsigned char p = (unsigned char)db;
    int rc = iter_new(t, t->st->keys, t->st->lkeys, &p, 1, from, flen, out);
    if (!rc)
        (*out)->now = now_ms;
    return rc;
}

int store_iter_fields(store_txn *t, const store_obj *h, const char *from, size_t flen,
                      store_iter **out)
{
    unsigned char p[8];
    store__put_be64(p, h->id);
    int rc = iter_new(t, t->st->fields, t->st->lfields, p, 8, from, flen, out);
    if (!rc)
        (*out)->fields = 1;
    return rc;
}

/* Moves to the next stored record of the current range, across both databases. */
static int step(store_iter *it, MDB_val *k, MDB_val *v)
{
    while (it->phase < 2) {
        int rc;
        if (!it->cur) {
            if ((rc = mdb_cursor_open(it->t->txn, it->dbi[it->phase], &it->cur)) != 0)
                return store__map_rc(rc);
            int resume = it->poslen > 1 && it->pos[0] == it->phase;
            k->mv_data = resume ? it->pos + 1 : it->prefix;
            k->mv_size = resume ? it->poslen - 1 : it->plen;
            rc = mdb_cursor_get(it->cur, k, v, MDB_SET_RANGE);
            if (!rc && resume && k->mv_size == it->poslen - 1 &&
                memcmp(k->mv_data, it->pos + 1, k->mv_size) == 0)
                rc = mdb_cursor_get(it->cur, k, v, MDB_NEXT);
        } else {
            rc = mdb_cursor_get(it->cur, k, v, MDB_NEXT);
        }
        if (rc == 0 && k->mv_size >= it->plen && memcmp(k->mv_data, it->prefix, it->plen) == 0) {
            it->pos[0] = (unsigned char)it->phase;
            memcpy(it->pos + 1, k->mv_data, k->mv_size);
            it->poslen = 1 + k->mv_size;
            return 0;
        }
        if (rc && rc != MDB_NOTFOUND)
            return store__map_rc(rc);
        mdb_cursor_close(it->cur);
        it->cur = NULL;
        it->phase++;
    }
    return ERR_NOTFOUND;
}

int store_iter_next(store_iter *it, const char **key, size_t *klen, store_obj *obj)
{
    MDB_val k, v;
    rec r;
    int rc;
    while ((rc = step(it, &k, &v)) == 0) {
        if ((rc = store__decode(&v, &r)) != 0)
            return rc;
        if (r.obj.expire_ms && r.obj.expire_ms <= it->now)
            continue;
        if (it->phase == 0) {
            *key = (const char *)k.mv_data + 1;
            *klen = k.mv_size - 1;
        } else {
            *key = r.fullkey;
            *klen = r.fklen;
        }
        if (obj)
            *obj = r.obj;
        return 0;
    }
    return rc;
}

int store_iter_next_field(store_iter *it, const char **field, size_t *flen, const char **val,
                          size_t *vlen)
{
    MDB_val k, v;
    int rc = step(it, &k, &v);
    if (rc)
        return rc;
    if (it->phase == 0) {
        *field = (const char *)k.mv_data + 8;
        *flen = k.mv_size - 8;
        *val = v.mv_data;
        *vlen = v.mv_size;
        return 0;
    }
    return store__long_field(&v, field, flen, val, vlen);
}

void store_iter_pos(const store_iter *it, const char **pos, size_t *len)
{
    *pos = (const char *)it->pos;
    *len = it->poslen;
}

void store_iter_free(store_iter *it)
{
    if (!it)
        return;
    if (it->cur)
        mdb_cursor_close(it->cur);
    xfree(it);
}

/* Deletes every record of dbi whose key starts with prefix. Each delete re-seeks: after
 * mdb_cursor_del empties the whole table, MDB_GET_CURRENT fails with EINVAL. */
static int delete_range(store_txn *t, MDB_dbi dbi, const void *prefix, size_t plen)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, dbi, &c);
    if (rc)
        return store__fail(t, rc);
    MDB_val k = {plen, (void *)prefix}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0) {
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
        k.mv_size = plen;
        k.mv_data = (void *)prefix;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(c);
    return rc && rc != MDB_NOTFOUND ? store__fail(t, rc) : 0;
}

int store__hash_clear(store_txn *t, uint64_t id)
{
    unsigned char p[8];
    store__put_be64(p, id);
    int rc = delete_range(t, t->st->fields, p, 8);
    return rc ? rc : delete_range(t, t->st->lfields, p, 8);
}

int store_flush(store_txn *t, int db)
{
    store *st = t->st;
    int rc;
    if (db < 0) {
        MDB_dbi all[] = {st->keys, st->lkeys, st->fields, st->lfields, st->expires};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if ((rc = mdb_drop(t->txn, all[i], 0)) != 0)
                return store__fail(t, rc);
        memset(st->counts, 0, sizeof st->counts);
        st->counts_dirty = 1;
        return 0;
    }
    /* One database: hashes' fields first (found through the key records), then the rest. */
    store_iter *it;
    if ((rc = store_iter_keys(t, db, NULL, 0, INT64_MIN, &it)) != 0)
        return rc;
    const char *key;
    size_t klen;
    store_obj o;
    while ((rc = store_iter_next(it, &key, &klen, &o)) == 0)
        if (o.type == STORE_HASH && (rc = store__hash_clear(t, o.id)) != 0)
            break;
    store_iter_free(it);
    if (rc != ERR_NOTFOUND)
        return rc;
    unsigned char p = (unsigned char)db;
    if ((rc = delete_range(t, st->keys, &p, 1)) || (rc = delete_range(t, st->lkeys, &p, 1)) ||
        (rc = delete_range(t, st->expires, &p, 1)))
        return rc;
    st->counts[db][0] = st->counts[db][1] = 0;
    st->counts_dirty = 1;
    return 0;
}

/* Finds the key an "expires" entry names and deletes it, reporting it to the hook. */
static int expire_one(store_txn *t, const unsigned char *ek, size_t eklen)
{
    store *st = t->st;
    store__ref ref;
    ref.buf[0] = ek[0];
    ref.is_long = ek[9];
    ref.dbi = ref.is_long ? st->lkeys : st->keys;
    ref.len = 1 + (eklen - 10);
    memcpy(ref.buf + 1, ek + 10, eklen - 10);
    MDB_val k = {ref.len, ref.buf}, v;
    rec r;
    int rc = mdb_get(t->txn, ref.dbi, &k, &v);
    if (rc)
        return store__fail(t, rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc);
    if ((rc = store__decode(&v, &r)) != 0)
        return rc;
    char small[512];
    const char *key = ref.is_long ? r.fullkey : (const char *)ref.buf + 1;
    size_t klen = ref.is_long ? r.fklen : ref.len - 1;
    char *copy = klen <= sizeof small ? small : try_malloc(klen);
    if (!copy)
        return ERR_NOMEM; /* the key stays, due: the next cycle retries it */
    memcpy(copy, key, klen); /* the record goes away below */
    if ((rc = store__delete_rec(t, ek[0], &ref, &r)) == 0 && st->expired_fn)
        st->expired_fn(st->expired_ctx, ek[0], copy, klen);
    if (copy != small)
        xfree(copy);
    return rc;
}

int store_expire_due(store_txn *t, int64_t now_ms)
{
    store *st = t->st;
    MDB_cursor *c;
    if (mdb_cursor_open(t->txn, st->expires, &c) != 0)
        return 0;
    int due = 0;
    for (int db = 0; db < STORE_DBS && !due; db++) {
        if (!st->counts[db][1])
            continue;
        unsigned char first = (unsigned char)db;
        MDB_val k = {1, &first}, v;
        due = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) == 0 && k.mv_size > 10 &&
              ((unsigned char *)k.mv_data)[0] == db &&
              (int64_t)store__get_be64((unsigned char *)k.mv_data + 1) <= now_ms;
    }
    mdb_cursor_close(c);
    return due;
}

int store_expire_cycle(store_txn *t, int64_t now_ms, int max, int *more)
{
    store *st = t->st;
    *more = 0;
    for (int db = 0; db < STORE_DBS; db++) {
        if (!st->counts[db][1])
            continue;
        unsigned char first[1] = {(unsigned char)db};
        for (;; max--) {
            /* Re-seek each time: deleting invalidates cursors on other databases' pages. */
            MDB_cursor *c;
            int rc = mdb_cursor_open(t->txn, st->expires, &c);
            if (rc)
                return store__fail(t, rc);
            MDB_val k = {1, first}, v;
            rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
            unsigned char ek[1 + 8 + 1 + 512];
            size_t eklen = 0;
            if (rc == 0 && k.mv_size > 10 && ((unsigned char *)k.mv_data)[0] == db &&
                (int64_t)store__get_be64((unsigned char *)k.mv_data + 1) <= now_ms) {
                eklen = k.mv_size;
                memcpy(ek, k.mv_data, eklen);
            }
            mdb_cursor_close(c);
            if (rc && rc != MDB_NOTFOUND)
                return store__fail(t, rc);
            if (!eklen)
                break;
            if (max <= 0) { /* a due key is left over: only now is `more` known to be true */
                *more = 1;
                return 0;
            }
            if ((rc = expire_one(t, ek, eklen)) != 0)
                return rc;
        }
    }
    return 0;
}
