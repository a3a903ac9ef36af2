/* online.c: entity keys and the online rows. An entity key is a view's entity values, each
 * stored as a u16 big-endian length and the bytes, built from separate values or parsed
 * from a client's ':'-joined argument (with "\:" and "\\" escapes) and formatted back. The
 * online rows live in LMDB's dbi "online" under (u32 be view id, entity key): the newest
 * (event, created) pair of each entity wins. FS.PUSH's write (store_fs_push) feeds both the
 * pass's history batch and the online row; env.c commits the two. Every online write is
 * reported to the online-row hook (store.h), and an iterator walks a view's rows. */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"

#define ROW_META 16 /* i64 event_us, i64 created_us before the row */
#define SHOW(s, len) (int)((len) > 64 ? 64 : (len)), (s) /* a client's value in a message */

/* ---- entity keys ------------------------------------------------------------------------- */

/* Checks one unescaped value of v's entity i. */
static int check_part(const store_view *v, int i, const char *p, size_t len, char *err,
                      size_t errlen)
{
    int64_t n;
    if (v->key_types[i] == STORE_KEY_INT64 && str_to_i64(p, len, &n) != 0) {
        snprintf(err, errlen, "entity '%s' needs an INT64 value, got '%.*s'", v->entities[i],
                 SHOW(p, len));
        return ERR_INVAL;
    }
    return 0;
}

static int too_long(const store_view *v, char *err, size_t errlen)
{
    snprintf(err, errlen, "entity key of view '%s' is longer than %d bytes", v->name,
             STORE_EKEY_MAX);
    return ERR_INVAL;
}

static int no_memory(char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory for an entity key");
    return ERR_NOMEM;
}

int store_ekey_build(const store_view *v, const char *const *parts, const size_t *lens, buf *out,
                     char *err, size_t errlen)
{
    out->len = 0;
    if (buf_try_reserve(out, STORE_EKEY_MAX))
        return no_memory(err, errlen); /* every append below fits */
    for (int i = 0; i < v->nentities; i++) {
        if (out->len + 2 + lens[i] > STORE_EKEY_MAX)
            return too_long(v, err, errlen);
        int rc = check_part(v, i, parts[i], lens[i], err, errlen);
        if (rc)
            return rc;
        buf_appendc(out, (char)(lens[i] >> 8));
        buf_appendc(out, (char)(lens[i] & 0xff));
        buf_append(out, parts[i], lens[i]);
    }
    return 0;
}

/* Counts the parts of a client's key (unescaped ':' + 1); -1 on a bad escape. */
static int count_parts(const char *s, size_t len)
{
    int n = 1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\') {
            if (i + 1 == len || (s[i + 1] != ':' && s[i + 1] != '\\'))
                return -1;
            i++;
        } else if (s[i] == ':') {
            n++;
        }
    }
    return n;
}

int store_ekey_parse(const store_view *v, const char *arg, size_t len, buf *out, char *err,
                     size_t errlen)
{
    out->len = 0;
    int n = count_parts(arg, len);
    if (n < 0) {
        snprintf(err, errlen, "bad escape in entity key '%.*s': inside a value write '\\:' "
                 "for ':' and '\\\\' for '\\'", SHOW(arg, len));
        return ERR_INVAL;
    }
    if (n != v->nentities) {
        snprintf(err, errlen, "entity key '%.*s' has %d part%s, view '%s' needs %d (its "
                 "ENTITIES joined by ':')", SHOW(arg, len), n, n == 1 ? "" : "s", v->name,
                 v->nentities);
        return ERR_INVAL;
    }
    if (buf_try_reserve(out, STORE_EKEY_MAX + 2))
        return no_memory(err, errlen); /* every append below fits: longer keys stop early */
    size_t i = 0;
    for (int part = 0; part < n; part++) {
        size_t start = out->len;
        buf_appendc(out, 0);
        buf_appendc(out, 0);
        for (; i < len && arg[i] != ':'; i++) {
            if (out->len >= STORE_EKEY_MAX)
                return too_long(v, err, errlen);
            if (arg[i] == '\\')
                i++; /* count_parts checked the escape */
            buf_appendc(out, arg[i]);
        }
        i++; /* past the ':' */
        if (out->len > STORE_EKEY_MAX)
            return too_long(v, err, errlen);
        size_t plen = out->len - start - 2;
        out->data[start] = (char)(plen >> 8);
        out->data[start + 1] = (char)(plen & 0xff);
        int rc = check_part(v, part, out->data + start + 2, plen, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

void store_ekey_format(const char *ekey, size_t elen, buf *out)
{
    size_t i = 0;
    while (elen - i >= 2) {
        size_t n = ((size_t)(unsigned char)ekey[i] << 8) | (unsigned char)ekey[i + 1];
        i += 2;
        if (n > elen - i)
            n = elen - i; /* malformed: show what is there */
        if (i > 2)
            buf_appendc(out, ':');
        for (size_t j = 0; j < n; j++) {
            char c = ekey[i + j];
            if (c == ':' || c == '\\')
                buf_appendc(out, '\\');
            buf_appendc(out, c);
        }
        i += n;
    }
}

/* ---- online rows ------------------------------------------------------------------------- */

/* The LMDB key of (view, ekey) into k (room for 4 + STORE_EKEY_MAX bytes). */
static int online_key(uint32_t view, const char *ekey, size_t elen, unsigned char *k,
                      MDB_val *out)
{
    if (elen == 0 || elen > STORE_EKEY_MAX)
        return ERR_INVAL;
    k[0] = (unsigned char)(view >> 24);
    k[1] = (unsigned char)(view >> 16);
    k[2] = (unsigned char)(view >> 8);
    k[3] = (unsigned char)view;
    memcpy(k + 4, ekey, elen);
    *out = (MDB_val){4 + elen, k};
    return 0;
}

static int64_t get_i64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    int64_t s;
    memcpy(&s, &v, sizeof s);
    return s;
}

static void put_i64(unsigned char *p, int64_t s)
{
    uint64_t v = (uint64_t)s;
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

int store_online_get(store_txn *t, const store_view *v, const char *ekey, size_t elen,
                     int64_t *event_us, int64_t *created_us, const char **row, size_t *rowlen)
{
    unsigned char kb[4 + STORE_EKEY_MAX];
    MDB_val k, val;
    int rc = online_key(v->id, ekey, elen, kb, &k);
    if (rc)
        return rc;
    if ((rc = mdb_get(t->txn, t->st->online, &k, &val)) != 0)
        return store__map_rc(rc);
    if (val.mv_size < ROW_META)
        return ERR_CORRUPT;
    *event_us = get_i64(val.mv_data);
    *created_us = get_i64((const unsigned char *)val.mv_data + 8);
    *row = (const char *)val.mv_data + ROW_META;
    *rowlen = val.mv_size - ROW_META;
    return 0;
}

int store_online_put(store_txn *t, const store_view *v, const char *ekey, size_t elen,
                     int64_t event_us, int64_t created_us, const char *row, size_t rowlen,
                     int *replaced)
{
    unsigned char kb[4 + STORE_EKEY_MAX];
    MDB_val k, val;
    int64_t ev, cr;
    const char *old;
    size_t oldlen;
    if (replaced)
        *replaced = 0;
    if (!t->write)
        return ERR_INVAL;
    int rc = online_key(v->id, ekey, elen, kb, &k);
    if (rc)
        return rc;
    rc = store_online_get(t, v, ekey, elen, &ev, &cr, &old, &oldlen);
    if (rc && rc != ERR_NOTFOUND)
        return rc;
    if (rc == 0 && (event_us < ev || (event_us == ev && created_us < cr)))
        return 0; /* the stored row is newer */
    val.mv_size = ROW_META + rowlen;
    if ((rc = mdb_put(t->txn, t->st->online, &k, &val, MDB_RESERVE)) != 0)
        return store__fail(t, rc);
    put_i64(val.mv_data, event_us);
    put_i64((unsigned char *)val.mv_data + 8, created_us);
    if (rowlen)
        memcpy((char *)val.mv_data + ROW_META, row, rowlen);
    if (replaced)
        *replaced = 1;
    if (t->st->online_fn) {
        store_online_event e = {.kind = STORE_ONLINE_PUT, .t = t, .view_id = v->id, .view = v,
                                .ekey = ekey, .elen = elen, .row = row, .rowlen = rowlen,
                                .event_us = event_us, .created_us = created_us};
        t->st->online_fn(t->st->online_ctx, &e);
    }
    return 0;
}

/* Positions c on the view's first online row; 0, ERR_NOTFOUND past its range, or an error. */
static int range_first(MDB_cursor *c, uint32_t view, MDB_val *k, MDB_val *val)
{
    unsigned char kb[4];
    kb[0] = (unsigned char)(view >> 24);
    kb[1] = (unsigned char)(view >> 16);
    kb[2] = (unsigned char)(view >> 8);
    kb[3] = (unsigned char)view;
    *k = (MDB_val){4, kb};
    int rc = mdb_cursor_get(c, k, val, MDB_SET_RANGE);
    if (rc == 0 && (k->mv_size < 4 || memcmp(k->mv_data, kb, 4) != 0))
        rc = MDB_NOTFOUND;
    return rc;
}

static int in_view(const MDB_val *k, uint32_t view)
{
    const unsigned char *p = k->mv_data;
    return k->mv_size >= 4 &&
           ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]) == view;
}

int store_online_count(store_txn *t, const store_view *v, uint64_t *n)
{
    MDB_cursor *c;
    MDB_val k, val;
    *n = 0;
    int rc = mdb_cursor_open(t->txn, t->st->online, &c);
    if (rc)
        return store__map_rc(rc);
    for (rc = range_first(c, v->id, &k, &val); rc == 0 && in_view(&k, v->id);
         rc = mdb_cursor_get(c, &k, &val, MDB_NEXT))
        (*n)++;
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : store__map_rc(rc);
}

int store__online_clear(store_txn *t, uint32_t view)
{
    MDB_cursor *c;
    MDB_val k, val;
    int rc = mdb_cursor_open(t->txn, t->st->online, &c);
    if (rc)
        return store__fail(t, rc);
    /* re-seek after each delete: once the table empties, MDB_GET_CURRENT fails */
    while ((rc = range_first(c, view, &k, &val)) == 0)
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store__fail(t, rc);
    if (t->st->online_fn) {
        store_online_event e = {.kind = STORE_ONLINE_DROP, .t = t, .view_id = view};
        t->st->online_fn(t->st->online_ctx, &e);
    }
    return 0;
}

void store__online_notify(store *st, int kind)
{
    if (st->online_fn) {
        store_online_event e = {.kind = kind};
        st->online_fn(st->online_ctx, &e);
    }
}

void store_set_online_hook(store *st, store_online_fn fn, void *ctx)
{
    st->online_fn = fn;
    st->online_ctx = ctx;
}

struct store_oiter {
    MDB_cursor *c;
    uint32_t view;
    int started;
};

int store_online_iter(store_txn *t, const store_view *v, store_oiter **out)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->st->online, &c);
    if (rc)
        return store__map_rc(rc);
    store_oiter *it = try_calloc(1, sizeof *it);
    if (!it) {
        mdb_cursor_close(c);
        return ERR_NOMEM;
    }
    it->c = c;
    it->view = v->id;
    *out = it;
    return 0;
}

int store_oiter_next(store_oiter *it, const char **ekey, size_t *elen, int64_t *event_us,
                     int64_t *created_us, const char **row, size_t *rowlen)
{
    MDB_val k, val;
    int rc = it->started ? mdb_cursor_get(it->c, &k, &val, MDB_NEXT)
                         : range_first(it->c, it->view, &k, &val);
    it->started = 1;
    if (rc == 0 && !in_view(&k, it->view))
        rc = MDB_NOTFOUND;
    if (rc)
        return store__map_rc(rc);
    if (val.mv_size < ROW_META)
        return ERR_CORRUPT;
    *ekey = (const char *)k.mv_data + 4;
    *elen = k.mv_size - 4;
    *event_us = get_i64(val.mv_data);
    *created_us = get_i64((const unsigned char *)val.mv_data + 8);
    *row = (const char *)val.mv_data + ROW_META;
    *rowlen = val.mv_size - ROW_META;
    return 0;
}

void store_oiter_free(store_oiter *it)
{
    if (!it)
        return;
    mdb_cursor_close(it->c);
    xfree(it);
}

/* ---- FS.PUSH ------------------------------------------------------------------------------ */

int store_fs_push(store_txn *t, const store_view *v, const char *ekey, size_t elen,
                  int64_t event_us, int64_t created_us, const char *row, size_t rowlen,
                  int to_online, int to_offline, int *online_replaced)
{
    store *st = t->st;
    if (online_replaced)
        *online_replaced = 0;
    if (!t->write || elen == 0 || elen > STORE_EKEY_MAX)
        return ERR_INVAL;
    if (st->pass_err)
        return st->pass_err;
    int online = to_online && v->online, rc = 0;
    if (to_offline && (rc = store__hist_stopped(st)) != 0)
        return rc; /* refused before anything changed (store.h, HISTORY FAILURES) */
    if (to_offline && online)
        store__hbatch_mark(st->hbatch); /* a failed online write takes the row back out */
    if (to_offline)
        rc = store_hbatch_put(st->hbatch, st->hist, v->id, ekey, elen, event_us, created_us,
                              row, rowlen);
    if (rc == 0 && online) {
        rc = store_online_put(t, v, ekey, elen, event_us, created_us, row, rowlen,
                              online_replaced);
    }
    if (to_offline && online) {
        if (rc) {
            store__hbatch_rollback(st->hbatch);
        } else {
            store__hbatch_unmark(st->hbatch);
            /* a crash before LMDB commits: the journal has it replayed at start */
            store__hbatch_journal(st->hbatch, v->id, st->journal_pass);
        }
    }
    if (rc == 0)
        st->fs_stats.pushes++;
    return rc;
}
