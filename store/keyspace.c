/* keyspace.c: the Redis keyspace on LMDB: encoding of keys (long ones digested) and of key
 * records, strings, expiry and its time-ordered index, rename, flush, the expiry cycle and
 * ordered iteration. Hash fields live in hash.c; the record layouts are in store.h. */
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"
#include "store_int.h"

enum { F_EXPIRE = 1, F_FULLKEY = 2 };

void store__put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

uint64_t store__get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void store__key_ref(const store *st, int db, const char *key, size_t klen, store__ref *r)
{
    r->buf[0] = (unsigned char)db;
    if (1 + klen <= STORE_SHORT_MAX) {
        r->dbi = st->keys;
        r->is_long = 0;
        memcpy(r->buf + 1, key, klen);
        r->len = 1 + klen;
    } else {
        r->dbi = st->lkeys;
        r->is_long = 1;
        memcpy(r->buf + 1, key, LONG_PREFIX);
        store__put_be64(r->buf + 1 + LONG_PREFIX, hash_bytes(key, klen, 0));
        r->len = 1 + LONG_PREFIX + 8;
    }
}

int store__decode(const MDB_val *v, rec *r)
{
    const unsigned char *p = v->mv_data, *end = p + v->mv_size;
    if (v->mv_size < 2)
        return ERR_CORRUPT;
    memset(r, 0, sizeof *r);
    r->obj.type = p[0];
    int flags = p[1];
    p += 2;
    if (flags & F_EXPIRE) {
        if (end - p < 8)
            return ERR_CORRUPT;
        memcpy(&r->obj.expire_ms, p, 8);
        p += 8;
    }
    if (flags & F_FULLKEY) {
        uint32_t n;
        if (end - p < 4)
            return ERR_CORRUPT;
        memcpy(&n, p, 4);
        p += 4;
        if ((size_t)(end - p) < n)
            return ERR_CORRUPT;
        r->fullkey = (const char *)p;
        r->fklen = n;
        p += n;
    }
    if (r->obj.type == STORE_STRING) {
        r->obj.val = (const char *)p;
        r->obj.len = (size_t)(end - p);
    } else if (r->obj.type == STORE_HASH) {
        if (end - p != 16)
            return ERR_CORRUPT;
        memcpy(&r->obj.id, p, 8);
        uint64_t n;
        memcpy(&n, p + 8, 8);
        r->obj.len = (size_t)n;
    } else {
        return ERR_CORRUPT;
    }
    return 0;
}

/* Decodes the record v that LMDB found under ref. */
static int found_rec(const store__ref *ref, const char *key, size_t klen, const MDB_val *v,
                     rec *r)
{
    int rc = store__decode(v, r);
    if (rc)
        return rc;
    if (ref->is_long && (r->fklen != klen || memcmp(r->fullkey, key, klen) != 0))
        return ERR_EXISTS; /* another key with the same digest */
    return 0;
}

/* Reads the record of key without looking at expiry. */
static int get_rec(store_txn *t, const store__ref *ref, const char *key, size_t klen, rec *r)
{
    MDB_val k = {ref->len, (void *)ref->buf}, v;
    int rc = mdb_get(t->txn, ref->dbi, &k, &v);
    return rc ? store__map_rc(rc) : found_rec(ref, key, klen, &v, r);
}

/* get_rec through a cursor, left on the record when it is found (closed, *at NULL,
 * otherwise): put_rec overwrites it there without searching the tree again, as long as
 * nothing writes to ref's table in between. */
static int get_rec_at(store_txn *t, const store__ref *ref, const char *key, size_t klen, rec *r,
                      MDB_cursor **at)
{
    MDB_val k = {ref->len, (void *)ref->buf}, v;
    int rc = mdb_cursor_open(t->txn, ref->dbi, at);
    if (rc) {
        *at = NULL;
        return store__map_rc(rc);
    }
    rc = mdb_cursor_get(*at, &k, &v, MDB_SET_KEY);
    rc = rc ? store__map_rc(rc) : found_rec(ref, key, klen, &v, r);
    if (rc) {
        mdb_cursor_close(*at);
        *at = NULL;
    }
    return rc;
}

/* Writes a key record. payload is the string value, or the 16 hash bytes. at: NULL, or a
 * cursor on the key's record from get_rec_at (closed here). */
static int put_rec(store_txn *t, const store__ref *ref, const char *key, size_t klen, int type,
                   int64_t expire_ms, const void *payload, size_t plen, MDB_cursor *at)
{
    size_t size = 2 + (expire_ms ? 8 : 0) + (ref->is_long ? 4 + klen : 0) + plen;
    MDB_val k = {ref->len, (void *)ref->buf}, v = {size, NULL};
    int rc;
    if (at) {
        rc = mdb_cursor_put(at, &k, &v, MDB_CURRENT | MDB_RESERVE);
        mdb_cursor_close(at);
    } else {
        rc = mdb_put(t->txn, ref->dbi, &k, &v, MDB_RESERVE);
    }
    if (rc)
        return store__fail(t, rc);
    unsigned char *p = v.mv_data;
    p[0] = (unsigned char)type;
    p[1] = (unsigned char)((expire_ms ? F_EXPIRE : 0) | (ref->is_long ? F_FULLKEY : 0));
    p += 2;
    if (expire_ms) {
        memcpy(p, &expire_ms, 8);
        p += 8;
    }
    if (ref->is_long) {
        uint32_t n = (uint32_t)klen;
        memcpy(p, &n, 4);
        memcpy(p + 4, key, klen);
        p += 4 + klen;
    }
    if (plen)
        memcpy(p, payload, plen);
    return 0;
}

/* The expires index entry of a key: u8 db, u64 be ms, u8 long, stored key (without db). */
static int expire_index(store_txn *t, const store__ref *ref, int64_t ms, int add)
{
    unsigned char kb[1 + 8 + 1 + 512];
    kb[0] = ref->buf[0];
    store__put_be64(kb + 1, (uint64_t)ms);
    kb[9] = (unsigned char)ref->is_long;
    memcpy(kb + 10, ref->buf + 1, ref->len - 1);
    MDB_val k = {9 + ref->len, kb}, v = {0, NULL};
    int rc = add ? mdb_put(t->txn, t->st->expires, &k, &v, 0) : mdb_del(t->txn, t->st->expires, &k, NULL);
    if (rc && !(rc == MDB_NOTFOUND && !add))
        return store__fail(t, rc);
    return 0;
}

/* Removes a key record that exists, with its expiry entry and hash fields. */
int store__delete_rec(store_txn *t, int db, const store__ref *ref, const rec *r)
{
    int rc;
    if (r->obj.expire_ms && (rc = expire_index(t, ref, r->obj.expire_ms, 0)) != 0)
        return rc;
    if (r->obj.type == STORE_HASH && (rc = store__hash_clear(t, r->obj.id)) != 0)
        return rc;
    MDB_val k = {ref->len, (void *)ref->buf};
    if ((rc = mdb_del(t->txn, ref->dbi, &k, NULL)) != 0)
        return store__fail(t, rc);
    store__count(t->st, db, -1, r->obj.expire_ms ? -1 : 0);
    return 0;
}

/* Looks a key up for a write: an expired key is deleted first (and reported to the expired
 * hook), so that the caller sees it as absent. at: NULL, or where get_rec_at leaves its
 * cursor when the key is there (and NULL when not). */
static int wlookup(store_txn *t, int db, const char *key, size_t klen, int64_t now,
                   store__ref *ref, rec *r, MDB_cursor **at)
{
    store__key_ref(t->st, db, key, klen, ref);
    int rc = at ? get_rec_at(t, ref, key, klen, r, at) : get_rec(t, ref, key, klen, r);
    if (rc || !r->obj.expire_ms || r->obj.expire_ms > now || t->st->expiry_paused)
        return rc;
    if (at) {
        mdb_cursor_close(*at);
        *at = NULL;
    }
    if ((rc = store__delete_rec(t, db, ref, r)) != 0)
        return rc;
    if (t->st->expired_fn)
        t->st->expired_fn(t->st->expired_ctx, db, key, klen);
    return ERR_NOTFOUND;
}

int store_lookup(store_txn *t, int db, const char *key, size_t klen, int64_t now_ms,
                 store_obj *out)
{
    store__ref ref;
    rec r;
    store__key_ref(t->st, db, key, klen, &ref);
    int rc = get_rec(t, &ref, key, klen, &r);
    if (rc == ERR_EXISTS)
        return ERR_NOTFOUND;
    if (rc)
        return rc;
    if (r.obj.expire_ms && r.obj.expire_ms <= now_ms && !t->st->expiry_paused)
        return ERR_NOTFOUND;
    *out = r.obj;
    return 0;
}

int store_set_string(store_txn *t, int db, const char *key, size_t klen, const char *val,
                     size_t vlen, int64_t expire_ms, int64_t now_ms)
{
    store__ref ref;
    rec r;
    MDB_cursor *at; /* on the old record: overwriting it costs no second search */
    int rc = wlookup(t, db, key, klen, now_ms, &ref, &r, &at);
    if (rc == 0) {
        if (r.obj.type == STORE_HASH) { /* rare: put_rec searches again after the fields go */
            mdb_cursor_close(at);
            at = NULL;
            if ((rc = store__hash_clear(t, r.obj.id)) != 0)
                return rc;
        }
        if (r.obj.expire_ms != expire_ms) {
            if (r.obj.expire_ms && (rc = expire_index(t, &ref, r.obj.expire_ms, 0)) != 0)
                goto fail;
            store__count(t->st, db, 0, (expire_ms != 0) - (r.obj.expire_ms != 0));
        } else {
            expire_ms = r.obj.expire_ms ? expire_ms : 0;
        }
        if (r.obj.expire_ms == expire_ms)
            goto put; /* index entry unchanged */
    } else if (rc == ERR_NOTFOUND) {
        store__count(t->st, db, 1, expire_ms != 0);
    } else {
        return rc;
    }
    if (expire_ms && (rc = expire_index(t, &ref, expire_ms, 1)) != 0)
        goto fail;
put:
    return put_rec(t, &ref, key, klen, STORE_STRING, expire_ms, val, vlen, at);
fail:
    if (at)
        mdb_cursor_close(at);
    return rc;
}

int store_delete(store_txn *t, int db, const char *key, size_t klen, int64_t now_ms,
                 int *deleted)
{
    store__ref ref;
    rec r;
    *deleted = 0;
    int rc = wlookup(t, db, key, klen, now_ms, &ref, &r, NULL);
    if (rc)
        return rc == ERR_NOTFOUND ? 0 : rc;
    if ((rc = store__delete_rec(t, db, &ref, &r)) != 0)
        return rc;
    *deleted = 1;
    return 0;
}

/* Rewrites a record with a new expiry; the payload is copied out first because the new
 * record may be written over the old one's pages. */
static int rewrite_rec(store_txn *t, int db, const store__ref *ref, const char *key,
                       size_t klen, const rec *r, int64_t expire_ms)
{
    unsigned char hash[16];
    const void *payload = r->obj.val;
    size_t plen = r->obj.len;
    char *copy = NULL;
    if (r->obj.type == STORE_HASH) {
        uint64_t n = r->obj.len;
        memcpy(hash, &r->obj.id, 8);
        memcpy(hash + 8, &n, 8);
        payload = hash;
        plen = 16;
    } else if (plen) {
        if (!(copy = try_malloc(plen)))
            return ERR_NOMEM;
        memcpy(copy, r->obj.val, plen);
        payload = copy;
    }
    int rc = 0;
    if (r->obj.expire_ms != expire_ms) {
        if (r->obj.expire_ms)
            rc = expire_index(t, ref, r->obj.expire_ms, 0);
        if (!rc && expire_ms)
            rc = expire_index(t, ref, expire_ms, 1);
        if (!rc)
            store__count(t->st, db, 0, (expire_ms != 0) - (r->obj.expire_ms != 0));
    }
    if (!rc)
        rc = put_rec(t, ref, key, klen, r->obj.type, expire_ms, payload, plen, NULL);
    xfree(copy);
    return rc;
}

int store_set_expire(store_txn *t, int db, const char *key, size_t klen, int64_t expire_ms,
                     int64_t now_ms)
{
    store__ref ref;
    rec r;
    int rc = wlookup(t, db, key, klen, now_ms, &ref, &r, NULL);
    if (rc)
        return rc;
    if (r.obj.expire_ms == expire_ms)
        return 0;
    return rewrite_rec(t, db, &ref, key, klen, &r, expire_ms);
}

int store_rename(store_txn *t, int db, const char *src, size_t slen, const char *dst,
                 size_t dlen, int64_t now_ms)
{
    store__ref sref, dref;
    rec sr, dr;
    int rc = wlookup(t, db, src, slen, now_ms, &sref, &sr, NULL);
    if (rc)
        return rc;
    if (slen == dlen && memcmp(src, dst, slen) == 0)
        return 0;
    rc = wlookup(t, db, dst, dlen, now_ms, &dref, &dr, NULL);
    if (rc == 0)
        rc = store__delete_rec(t, db, &dref, &dr);
    else if (rc == ERR_NOTFOUND)
        rc = 0;
    if (rc)
        return rc;
    /* Re-read src: deleting dst may have moved pages under the old pointers. */
    if ((rc = get_rec(t, &sref, src, slen, &sr)) != 0)
        return rc;
    /* Write dst as src's twin (a hash keeps its id, so its fields stay put), then drop
     * src's record and index entry without touching the fields. */
    rec twin = sr;
    twin.obj.expire_ms = 0; /* so that rewrite_rec adds dst's index entry */
    if ((rc = rewrite_rec(t, db, &dref, dst, dlen, &twin, sr.obj.expire_ms)) != 0)
        return rc;
    if ((rc = get_rec(t, &sref, src, slen, &sr)) != 0)
        return rc;
    if (sr.obj.expire_ms && (rc = expire_index(t, &sref, sr.obj.expire_ms, 0)) != 0)
        return rc;
    MDB_val k = {sref.len, sref.buf};
    if ((rc = mdb_del(t->txn, sref.dbi, &k, NULL)) != 0)
        return store__fail(t, rc);
    /* dst gained a key (and maybe an expiry) in rewrite_rec's accounting; src lost one. */
    store__count(t->st, db, 0, sr.obj.expire_ms ? -1 : 0);
    return 0;
}
