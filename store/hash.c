/* hash.c: hash fields. A hash is a key record holding (id, field count); its fields are
 * records keyed by (id, field) in "fields", or digested in "lfields" when long, so that
 * RENAME moves a hash in O(1) and DEL removes its fields with one range walk. */
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"
#include "store_int.h"

void store__field_ref(const store *st, uint64_t id, const char *f, size_t flen, store__ref *r)
{
    store__put_be64(r->buf, id);
    if (8 + flen <= STORE_SHORT_MAX) {
        r->dbi = st->fields;
        r->is_long = 0;
        memcpy(r->buf + 8, f, flen);
        r->len = 8 + flen;
    } else {
        r->dbi = st->lfields;
        r->is_long = 1;
        memcpy(r->buf + 8, f, LONG_PREFIX);
        store__put_be64(r->buf + 8 + LONG_PREFIX, hash_bytes(f, flen, 0));
        r->len = 8 + LONG_PREFIX + 8;
    }
}

int store__long_field(const MDB_val *v, const char **field, size_t *flen, const char **val,
                      size_t *vlen)
{
    uint32_t n;
    if (v->mv_size < 4)
        return ERR_CORRUPT;
    memcpy(&n, v->mv_data, 4);
    if (v->mv_size - 4 < n)
        return ERR_CORRUPT;
    *field = (const char *)v->mv_data + 4;
    *flen = n;
    *val = *field + n;
    *vlen = v->mv_size - 4 - n;
    return 0;
}

/* Reads a field; for long fields checks the full name. */
static int field_get(store_txn *t, const store__ref *ref, const char *f, size_t flen,
                     const char **val, size_t *vlen)
{
    MDB_val k = {ref->len, (void *)ref->buf}, v;
    int rc = mdb_get(t->txn, ref->dbi, &k, &v);
    if (rc)
        return store__map_rc(rc);
    if (!ref->is_long) {
        *val = v.mv_data;
        *vlen = v.mv_size;
        return 0;
    }
    const char *name;
    size_t nlen;
    if ((rc = store__long_field(&v, &name, &nlen, val, vlen)) != 0)
        return rc;
    if (nlen != flen || memcmp(name, f, flen) != 0)
        return ERR_EXISTS;
    return 0;
}

int store_hash_get(store_txn *t, const store_obj *h, const char *field, size_t flen,
                   const char **val, size_t *vlen)
{
    if (h->type != STORE_HASH)
        return ERR_WRONGTYPE;
    store__ref ref;
    store__field_ref(t->st, h->id, field, flen, &ref);
    int rc = field_get(t, &ref, field, flen, val, vlen);
    return rc == ERR_EXISTS ? ERR_NOTFOUND : rc;
}

/* Writes the hash's key record with a new field count. */
static int put_count(store_txn *t, int db, const char *key, size_t klen, const store_obj *h,
                     uint64_t count)
{
    store__ref ref;
    store__key_ref(t->st, db, key, klen, &ref);
    size_t size = 2 + (h->expire_ms ? 8 : 0) + (ref.is_long ? 4 + klen : 0) + 16;
    MDB_val k = {ref.len, ref.buf}, v = {size, NULL};
    int rc = mdb_put(t->txn, ref.dbi, &k, &v, MDB_RESERVE);
    if (rc)
        return store__fail(t, rc);
    unsigned char *p = v.mv_data;
    p[0] = STORE_HASH;
    p[1] = (unsigned char)((h->expire_ms ? 1 : 0) | (ref.is_long ? 2 : 0));
    p += 2;
    if (h->expire_ms) {
        memcpy(p, &h->expire_ms, 8);
        p += 8;
    }
    if (ref.is_long) {
        uint32_t n = (uint32_t)klen;
        memcpy(p, &n, 4);
        memcpy(p + 4, key, klen);
        p += 4 + klen;
    }
    memcpy(p, &h->id, 8);
    memcpy(p + 8, &count, 8);
    return 0;
}

/* The hash at key for a write: an expired one is removed first (through a delete, which
 * reports it); a missing one is created empty when create is set. */
static int hash_for_write(store_txn *t, int db, const char *key, size_t klen, int64_t now,
                          int create, store_obj *h)
{
    int rc = store_lookup(t, db, key, klen, now, h);
    if (rc == ERR_NOTFOUND) {
        int deleted;
        if ((rc = store_delete(t, db, key, klen, now, &deleted)) != 0)
            return rc; /* drops an expired key, or a digest collision reports ERR_EXISTS */
        if (!create)
            return ERR_NOTFOUND;
        memset(h, 0, sizeof *h);
        h->type = STORE_HASH;
        h->id = t->st->next_hash_id++;
        store__count(t->st, db, 1, 0);
        return 0;
    }
    if (rc)
        return rc;
    return h->type == STORE_HASH ? 0 : ERR_WRONGTYPE;
}

int store_hash_set(store_txn *t, int db, const char *key, size_t klen, const char *field,
                   size_t flen, const char *val, size_t vlen, int64_t now_ms, int *added)
{
    store_obj h;
    int rc = hash_for_write(t, db, key, klen, now_ms, 1, &h);
    if (rc)
        return rc;
    store__ref ref;
    store__field_ref(t->st, h.id, field, flen, &ref);
    size_t size = (ref.is_long ? 4 + flen : 0) + vlen;
    MDB_val k = {ref.len, ref.buf}, v = {size, NULL};
    /* Try as a new field first: one B-tree descent in the common case. */
    rc = mdb_put(t->txn, ref.dbi, &k, &v, MDB_RESERVE | MDB_NOOVERWRITE);
    *added = rc == 0;
    if (rc == MDB_KEYEXIST) {
        if (ref.is_long) {
            const char *old;
            size_t olen;
            if ((rc = field_get(t, &ref, field, flen, &old, &olen)) != 0)
                return rc == ERR_NOTFOUND ? ERR_CORRUPT : rc;
        }
        v.mv_size = size;
        rc = mdb_put(t->txn, ref.dbi, &k, &v, MDB_RESERVE);
    }
    if (rc)
        return store__fail(t, rc);
    unsigned char *p = v.mv_data;
    if (ref.is_long) {
        uint32_t n = (uint32_t)flen;
        memcpy(p, &n, 4);
        memcpy(p + 4, field, flen);
        p += 4 + flen;
    }
    if (vlen)
        memcpy(p, val, vlen);
    if (*added || h.len == 0)
        return put_count(t, db, key, klen, &h, h.len + (uint64_t)*added);
    return 0;
}

int store_hash_del(store_txn *t, int db, const char *key, size_t klen, const char *field,
                   size_t flen, int64_t now_ms, int *removed)
{
    store_obj h;
    *removed = 0;
    int rc = hash_for_write(t, db, key, klen, now_ms, 0, &h);
    if (rc)
        return rc == ERR_NOTFOUND ? 0 : rc;
    store__ref ref;
    store__field_ref(t->st, h.id, field, flen, &ref);
    const char *old;
    size_t olen;
    rc = field_get(t, &ref, field, flen, &old, &olen);
    if (rc)
        return rc == ERR_NOTFOUND || rc == ERR_EXISTS ? 0 : rc;
    MDB_val k = {ref.len, ref.buf};
    if ((rc = mdb_del(t->txn, ref.dbi, &k, NULL)) != 0)
        return store__fail(t, rc);
    *removed = 1;
    if (h.len > 1)
        return put_count(t, db, key, klen, &h, h.len - 1);
    int deleted;
    return store_delete(t, db, key, klen, now_ms, &deleted);
}
