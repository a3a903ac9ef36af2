/* aux.c: small records that other modules persist through the store's one write path (FT
 * index definitions today). They live in LMDB's "meta" dbi under the key "aux", a NUL, the
 * caller's namespace, a NUL, then the caller's key, so they commit, sync and roll back with
 * the pass like every write, and never meet the store's own meta records. */
#include "store_int.h"

#include <string.h>

#include "core/err.h"

#define AUX_TAG "aux"
#define AUX_TAG_LEN 4 /* with its NUL */
#define AUX_NS_MAX 32
#define AUX_KEY_MAX 400

/* Builds the meta key of (ns, key) into out (room for AUX_TAG_LEN + AUX_NS_MAX + 1 +
 * AUX_KEY_MAX); returns its length, or 0 when ns or key is out of bounds. */
static size_t aux_key(const char *ns, const char *key, size_t klen, unsigned char *out)
{
    size_t nlen = strlen(ns);
    if (nlen == 0 || nlen > AUX_NS_MAX || klen > AUX_KEY_MAX)
        return 0;
    memcpy(out, AUX_TAG, AUX_TAG_LEN);
    memcpy(out + AUX_TAG_LEN, ns, nlen + 1);
    if (klen)
        memcpy(out + AUX_TAG_LEN + nlen + 1, key, klen);
    return AUX_TAG_LEN + nlen + 1 + klen;
}

int store_aux_put(store_txn *t, const char *ns, const char *key, size_t klen, const void *val,
                  size_t vlen)
{
    unsigned char kb[AUX_TAG_LEN + AUX_NS_MAX + 1 + AUX_KEY_MAX];
    size_t n = aux_key(ns, key, klen, kb);
    if (!n || klen == 0 || !t->write)
        return ERR_INVAL;
    if (t->st->pass_err)
        return t->st->pass_err;
    MDB_val k = {n, kb}, v = {vlen, (void *)val};
    int rc = mdb_put(t->txn, t->st->meta, &k, &v, 0);
    return rc ? store__fail(t, rc) : 0;
}

int store_aux_get(store_txn *t, const char *ns, const char *key, size_t klen, const char **val,
                  size_t *vlen)
{
    unsigned char kb[AUX_TAG_LEN + AUX_NS_MAX + 1 + AUX_KEY_MAX];
    size_t n = aux_key(ns, key, klen, kb);
    if (!n || klen == 0)
        return ERR_INVAL;
    MDB_val k = {n, kb}, v;
    int rc = mdb_get(t->txn, t->st->meta, &k, &v);
    if (rc)
        return store__map_rc(rc);
    *val = v.mv_data;
    *vlen = v.mv_size;
    return 0;
}

int store_aux_del(store_txn *t, const char *ns, const char *key, size_t klen)
{
    unsigned char kb[AUX_TAG_LEN + AUX_NS_MAX + 1 + AUX_KEY_MAX];
    size_t n = aux_key(ns, key, klen, kb);
    if (!n || klen == 0 || !t->write)
        return ERR_INVAL;
    if (t->st->pass_err)
        return t->st->pass_err;
    MDB_val k = {n, kb};
    int rc = mdb_del(t->txn, t->st->meta, &k, NULL);
    if (rc == MDB_NOTFOUND)
        return ERR_NOTFOUND;
    return rc ? store__fail(t, rc) : 0;
}

int store_aux_next(store_txn *t, const char *ns, const char *after, size_t alen,
                   const char **key, size_t *klen, const char **val, size_t *vlen)
{
    unsigned char kb[AUX_TAG_LEN + AUX_NS_MAX + 1 + AUX_KEY_MAX];
    size_t pre = aux_key(ns, NULL, 0, kb);
    size_t n = after ? aux_key(ns, after, alen, kb) : pre;
    if (!pre || !n)
        return ERR_INVAL;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, t->st->meta, &cur);
    if (rc)
        return store__map_rc(rc);
    MDB_val k = {n, kb}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    /* Skip the record equal to `after` itself (and the bare prefix, which is never put). */
    while (rc == 0 && k.mv_size == n && memcmp(k.mv_data, kb, n) == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    mdb_cursor_close(cur);
    if (rc)
        return store__map_rc(rc);
    if (k.mv_size <= pre || memcmp(k.mv_data, kb, pre) != 0)
        return ERR_NOTFOUND; /* past the namespace */
    *key = (const char *)k.mv_data + pre;
    *klen = k.mv_size - pre;
    *val = v.mv_data;
    *vlen = v.mv_size;
    return 0;
}
