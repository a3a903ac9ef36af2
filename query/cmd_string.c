/* cmd_string.c: the string commands (GET, SET and its options, counters, ranges, MGET,
 * MSET...). Relative expiry times are turned into absolute ones before they are logged, so
 * a replica that applies the command later expires the key at the same instant. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"
#include "query/query_int.h"

/* Looks key up as a string. 1 found, 0 absent, -1 replied an error (wrong type). */
static int get_string(client *c, store_txn *t, const char *key, size_t klen, store_obj *o)
{
    int rc = lookup_read(c, t, key, klen, o);
    if (rc == ERR_NOTFOUND)
        return 0;
    if (rc) {
        reply_store_error(c, rc);
        return -1;
    }
    if (o->type != STORE_STRING) {
        reply_wrongtype(c);
        return -1;
    }
    return 1;
}

/* Parses an expiry argument into an absolute ms time. unit is 1000 for seconds. Errors
 * reply "invalid expire time in '<cmd>' command". */
static int parse_expire(client *c, int i, int64_t unit, int absolute, int64_t now,
                        int allow_nonpositive, int64_t *out)
{
    int64_t v;
    if (arg_i64(c, i, &v) != 0)
        return -1;
    if ((!allow_nonpositive && v <= 0) || v > INT64_MAX / unit || v < INT64_MIN / unit ||
        (!absolute && v * unit > INT64_MAX - now)) {
        reply_errorf(c, "invalid expire time in '%s' command", c->last_cmd);
        return -1;
    }
    *out = v * unit + (absolute ? 0 : now);
    return 0;
}

static void log_set(client *c, const char *key, size_t klen, const char *val, size_t vlen,
                    int64_t expire_ms, int keepttl)
{
    char num[24];
    const char *argv[5] = {"SET", key, val, keepttl ? "KEEPTTL" : "PXAT", num};
    size_t lens[5] = {3, klen, vlen, keepttl ? 7 : 4, 0};
    lens[4] = i64_to_str(num, expire_ms);
    propagate(c, expire_ms && !keepttl ? 5 : keepttl ? 4 : 3, argv, lens);
}

void cmd_get(client *c)
{
    store_txn *t;
    store_obj o;
    if (read_txn(c, &t))
        return;
    int found = get_string(c, t, c->argv[1], c->argl[1], &o);
    if (found > 0)
        reply_bulk(c, o.val, o.len);
    else if (found == 0)
        reply_null(c);
}

/* SET and its relatives. flags: what the variant implies. */
enum {
    SET_NX = 1,
    SET_XX = 2,
    SET_GET = 4,
    SET_KEEPTTL = 8,
    SET_PERSIST = 16,
    SET_EX = 32,
    SET_PX = 64,
    SET_EXAT = 128,
    SET_PXAT = 256,
    SET_EXPIRE = SET_EX | SET_PX | SET_EXAT | SET_PXAT
};

/* Parses the options of SET (getex = 0) or GETEX (getex = 1) from argument 3 or 2, with
 * Redis's rules: an option may repeat, the last expiry wins, and the expiry's value is only
 * checked afterwards (parse_set_expire), so a syntax error comes first. *when is the index
 * of the expiry's value (0: none). -1 after replying a syntax error. */
static int parse_set_options(client *c, int getex, int *flags, int *when)
{
    *flags = 0;
    *when = 0;
    for (int i = getex ? 2 : 3; i < c->argc; i++) {
        int has_next = i + 1 < c->argc;
        int kind = arg_is(c, i, "EX")     ? SET_EX
                   : arg_is(c, i, "PX")   ? SET_PX
                   : arg_is(c, i, "EXAT") ? SET_EXAT
                   : arg_is(c, i, "PXAT") ? SET_PXAT
                                          : 0;
        if (!getex && arg_is(c, i, "NX") && !(*flags & SET_XX)) {
            *flags |= SET_NX;
        } else if (!getex && arg_is(c, i, "XX") && !(*flags & SET_NX)) {
            *flags |= SET_XX;
        } else if (!getex && arg_is(c, i, "GET")) {
            *flags |= SET_GET;
        } else if (!getex && arg_is(c, i, "KEEPTTL") && !(*flags & SET_EXPIRE)) {
            *flags |= SET_KEEPTTL;
        } else if (getex && arg_is(c, i, "PERSIST") && !(*flags & SET_EXPIRE)) {
            *flags |= SET_PERSIST;
        } else if (kind && has_next &&
                   !(*flags & (SET_KEEPTTL | SET_PERSIST | (SET_EXPIRE & ~kind)))) {
            *flags |= kind;
            *when = ++i;
        } else {
            reply_syntax_error(c);
            return -1;
        }
    }
    return 0;
}

/* The absolute expiry in ms named by the option before argument when. */
static int parse_set_expire(client *c, int when, int64_t now, int64_t *expire_ms)
{
    const char *opt = c->argv[when - 1];
    int64_t unit = (opt[0] == 'E' || opt[0] == 'e') ? 1000 : 1;
    return parse_expire(c, when, unit, c->argl[when - 1] == 4, now, 0, expire_ms);
}

static void do_set(client *c, const char *key, size_t klen, const char *val, size_t vlen,
                   int flags, int64_t expire_ms, int reply_int_style)
{
    store_txn *t;
    store_obj o;
    int64_t now = call_now_ms();
    if (write_txn(c, vlen, &t))
        return;
    /* A plain SET need not know what the key held (store_set_string looks for itself):
     * one B-tree search fewer per SET, on the leader and on every replica applying it. */
    int rc = ERR_NOTFOUND;
    if (flags & (SET_NX | SET_XX | SET_GET | SET_KEEPTTL))
        rc = store_lookup(t, c->db, key, klen, now, &o);
    if (rc && rc != ERR_NOTFOUND) {
        reply_store_error(c, rc);
        return;
    }
    int exists = rc == 0;
    if ((flags & SET_GET) && exists && o.type != STORE_STRING) {
        reply_wrongtype(c);
        return;
    }
    char *old = NULL;
    size_t oldlen = 0;
    if ((flags & SET_GET) && exists) {
        if (!(old = try_malloc(o.len))) {
            reply_store_error(c, ERR_NOMEM);
            return;
        }
        memcpy(old, o.val, o.len);
        oldlen = o.len;
    }
    int skip = ((flags & SET_NX) && exists) || ((flags & SET_XX) && !exists);
    if (!skip) {
        if ((flags & SET_KEEPTTL) && exists)
            expire_ms = o.expire_ms;
        rc = store_set_string(t, c->db, key, klen, val, vlen, expire_ms, now);
        if (rc) {
            reply_store_error(c, rc);
            xfree(old);
            return;
        }
        key_changed(c, key, klen);
        log_set(c, key, klen, val, vlen, expire_ms, (flags & SET_KEEPTTL) && expire_ms);
    }
    if (reply_int_style)
        reply_int(c, !skip);
    else if (flags & SET_GET)
        old ? reply_bulk(c, old, oldlen) : reply_null(c);
    else if (skip)
        reply_null(c);
    else
        reply_ok(c);
    xfree(old);
}

void cmd_set(client *c)
{
    int flags, when;
    int64_t expire_ms = 0;
    if (parse_set_options(c, 0, &flags, &when) ||
        (when && parse_set_expire(c, when, call_now_ms(), &expire_ms)))
        return;
    do_set(c, c->argv[1], c->argl[1], c->argv[2], c->argl[2], flags, expire_ms, 0);
}

void cmd_setnx(client *c)
{
    do_set(c, c->argv[1], c->argl[1], c->argv[2], c->argl[2], SET_NX, 0, 1);
}

static void setex(client *c, int64_t unit)
{
    int64_t expire_ms;
    if (parse_expire(c, 2, unit, 0, clock_ms(), 0, &expire_ms))
        return;
    do_set(c, c->argv[1], c->argl[1], c->argv[3], c->argl[3], 0, expire_ms, 0);
}

void cmd_setex(client *c)
{
    setex(c, 1000);
}

void cmd_psetex(client *c)
{
    setex(c, 1);
}

void cmd_getset(client *c)
{
    do_set(c, c->argv[1], c->argl[1], c->argv[2], c->argl[2], SET_GET, 0, 0);
}

void cmd_mget(client *c)
{
    store_txn *t;
    if (read_txn(c, &t))
        return;
    reply_array(c, c->argc - 1);
    for (int i = 1; i < c->argc; i++) {
        store_obj o;
        int rc = lookup_read(c, t, c->argv[i], c->argl[i], &o);
        if (rc == 0 && o.type == STORE_STRING)
            reply_bulk(c, o.val, o.len);
        else
            reply_null(c);
    }
}

static void mset(client *c, int nx)
{
    if (c->argc % 2 == 0) {
        reply_errorf(c, "wrong number of arguments for '%s' command", nx ? "msetnx" : "mset");
        return;
    }
    store_txn *t;
    size_t total = 0;
    for (int i = 2; i < c->argc; i += 2)
        total += c->argl[i];
    if (write_txn(c, total, &t))
        return;
    int64_t now = clock_ms();
    if (nx) {
        for (int i = 1; i < c->argc; i += 2) {
            store_obj o;
            int rc = store_lookup(t, c->db, c->argv[i], c->argl[i], now, &o);
            if (rc != ERR_NOTFOUND) {
                rc ? reply_store_error(c, rc) : reply_int(c, 0);
                return;
            }
        }
    }
    for (int i = 1; i < c->argc; i += 2) {
        int rc = store_set_string(t, c->db, c->argv[i], c->argl[i], c->argv[i + 1],
                                  c->argl[i + 1], 0, now);
        if (rc) {
            reply_store_error(c, rc); /* the pass is poisoned: nothing of it is kept */
            return;
        }
        key_changed(c, c->argv[i], c->argl[i]);
    }
    nx ? reply_int(c, 1) : reply_ok(c);
}

void cmd_mset(client *c)
{
    mset(c, 0);
}

void cmd_msetnx(client *c)
{
    mset(c, 1);
}

/* Reads the string at key for a read-modify-write. 1 found, 0 absent, -1 replied. */
static int rmw_string(client *c, store_txn **t, size_t hint, store_obj *o)
{
    if (write_txn(c, hint, t))
        return -1;
    return get_string(c, *t, c->argv[1], c->argl[1], o);
}

void cmd_getdel(client *c)
{
    store_txn *t;
    store_obj o;
    int found = rmw_string(c, &t, 0, &o);
    if (found <= 0) {
        if (found == 0)
            reply_null(c);
        return;
    }
    reply_bulk(c, o.val, o.len); /* copied out before the delete frees the pages */
    int deleted;
    int rc = store_delete(t, c->db, c->argv[1], c->argl[1], clock_ms(), &deleted);
    if (rc == 0)
        key_changed(c, c->argv[1], c->argl[1]);
    /* A failed delete poisons the pass: the client is disconnected, never misled. */
}

void cmd_getex(client *c)
{
    int flags, when;
    int64_t expire_ms = 0, now = clock_ms();
    if (parse_set_options(c, 1, &flags, &when))
        return;
    int persist = (flags & SET_PERSIST) != 0, has = flags != 0;
    store_txn *t;
    store_obj o;
    int found = has ? rmw_string(c, &t, 0, &o)
                    : (read_txn(c, &t) ? -1 : get_string(c, t, c->argv[1], c->argl[1], &o));
    if (found <= 0) {
        if (found == 0)
            reply_null(c);
        return;
    }
    /* As in Redis, the expiry is checked only once the key is known to be a string. */
    if (when && parse_set_expire(c, when, now, &expire_ms))
        return;
    reply_bulk(c, o.val, o.len);
    if (!has || (persist && !o.expire_ms))
        return;
    if (store_set_expire(t, c->db, c->argv[1], c->argl[1], persist ? 0 : expire_ms, now) != 0)
        return;
    key_changed(c, c->argv[1], c->argl[1]);
    char num[24];
    const char *argv[3] = {persist ? "PERSIST" : "PEXPIREAT", c->argv[1], num};
    size_t lens[3] = {persist ? 7 : 9, c->argl[1], i64_to_str(num, expire_ms)};
    propagate(c, persist ? 2 : 3, argv, lens);
}

static void incr_by(client *c, int64_t delta)
{
    store_txn *t;
    store_obj o;
    int found = rmw_string(c, &t, 0, &o);
    if (found < 0)
        return;
    int64_t v = 0;
    if (found && str_to_i64(o.val, o.len, &v) != 0) {
        reply_error(c, "value is not an integer or out of range");
        return;
    }
    if ((delta > 0 && v > INT64_MAX - delta) || (delta < 0 && v < INT64_MIN - delta)) {
        reply_error(c, "increment or decrement would overflow");
        return;
    }
    v += delta;
    char num[24];
    size_t n = i64_to_str(num, v);
    int rc = store_set_string(t, c->db, c->argv[1], c->argl[1], num, n,
                              found ? o.expire_ms : 0, clock_ms());
    if (rc) {
        reply_store_error(c, rc);
        return;
    }
    key_changed(c, c->argv[1], c->argl[1]);
    reply_int(c, v);
}

void cmd_incr(client *c)
{
    incr_by(c, 1);
}

void cmd_decr(client *c)
{
    incr_by(c, -1);
}

void cmd_incrby(client *c)
{
    int64_t d;
    if (arg_i64(c, 2, &d) == 0)
        incr_by(c, d);
}

void cmd_decrby(client *c)
{
    int64_t d;
    if (arg_i64(c, 2, &d) != 0)
        return;
    if (d == INT64_MIN) {
        reply_error(c, "decrement would overflow");
        return;
    }
    incr_by(c, -d);
}

void cmd_incrbyfloat(client *c)
{
    long double incr, v = 0;
    store_txn *t;
    store_obj o;
    int found = rmw_string(c, &t, 0, &o);
    if (found < 0)
        return;
    /* Redis's order: the type, then the value held, then the increment. */
    if ((found && parse_long_double(o.val, o.len, &v) != 0) ||
        parse_long_double(c->argv[2], c->argl[2], &incr) != 0) {
        reply_error(c, "value is not a valid float");
        return;
    }
    v += incr;
    if (isnan(v) || isinf(v)) {
        reply_error(c, "increment would produce NaN or Infinity");
        return;
    }
    char num[LDOUBLE_STR_MAX];
    size_t n = ldouble_to_str(num, v);
    int rc = store_set_string(t, c->db, c->argv[1], c->argl[1], num, n,
                              found ? o.expire_ms : 0, clock_ms());
    if (rc) {
        reply_store_error(c, rc);
        return;
    }
    key_changed(c, c->argv[1], c->argl[1]);
    log_set(c, c->argv[1], c->argl[1], num, n, found ? o.expire_ms : 0, 1);
    reply_bulk(c, num, n);
}

static int check_size(client *c, size_t total)
{
    if (total <= (size_t)srv.cfg.proto_max_bulk_len)
        return 0;
    reply_error(c, "string exceeds maximum allowed size (proto-max-bulk-len)");
    return -1;
}

/* Writes data at offset off of the string at argv[1] (found: whether it exists, o: its
 * value), zero-padding a gap, keeps its expiry, and replies the new length. */
static void splice(client *c, store_txn *t, int found, const store_obj *o, size_t off,
                   const char *data, size_t dlen)
{
    size_t oldlen = found ? o->len : 0;
    size_t total = off + dlen > oldlen ? off + dlen : oldlen;
    char *v = try_malloc(total);
    if (!v) {
        reply_store_error(c, ERR_NOMEM);
        return;
    }
    if (oldlen)
        memcpy(v, o->val, oldlen); /* o->val dies with the write below: copy first */
    if (off > oldlen)
        memset(v + oldlen, 0, off - oldlen);
    memcpy(v + off, data, dlen);
    int rc = store_set_string(t, c->db, c->argv[1], c->argl[1], v, total,
                              found ? o->expire_ms : 0, clock_ms());
    xfree(v);
    if (rc) {
        reply_store_error(c, rc);
        return;
    }
    key_changed(c, c->argv[1], c->argl[1]);
    reply_int(c, (long long)total);
}

void cmd_append(client *c)
{
    store_txn *t;
    store_obj o;
    int found = rmw_string(c, &t, c->argl[2], &o);
    if (found < 0)
        return;
    size_t oldlen = found ? o.len : 0;
    if (check_size(c, oldlen + c->argl[2]) == 0)
        splice(c, t, found, &o, oldlen, c->argv[2], c->argl[2]);
}

void cmd_strlen(client *c)
{
    store_txn *t;
    store_obj o;
    if (read_txn(c, &t))
        return;
    int found = get_string(c, t, c->argv[1], c->argl[1], &o);
    if (found >= 0)
        reply_int(c, found ? (long long)o.len : 0);
}

void cmd_getrange(client *c)
{
    int64_t start, end;
    if (arg_i64(c, 2, &start) || arg_i64(c, 3, &end))
        return;
    store_txn *t;
    store_obj o;
    if (read_txn(c, &t))
        return;
    int found = get_string(c, t, c->argv[1], c->argl[1], &o);
    if (found < 0)
        return;
    int64_t len = found ? (int64_t)o.len : 0;
    if (start < 0 && end < 0 && start > end) {
        reply_bulk(c, "", 0);
        return;
    }
    if (start < 0)
        start = len + start;
    if (end < 0)
        end = len + end;
    if (start < 0)
        start = 0;
    if (end < 0)
        end = 0;
    if (end >= len)
        end = len - 1;
    if (len == 0 || start > end)
        reply_bulk(c, "", 0);
    else
        reply_bulk(c, o.val + start, (size_t)(end - start + 1));
}

void cmd_setrange(client *c)
{
    int64_t off;
    if (arg_i64(c, 2, &off))
        return;
    if (off < 0) {
        reply_error(c, "offset is out of range");
        return;
    }
    store_txn *t;
    store_obj o;
    size_t end = (size_t)off + c->argl[3]; /* off < 2^63: no overflow */
    int fits = end <= (size_t)srv.cfg.proto_max_bulk_len;
    int found = rmw_string(c, &t, fits ? end : 0, &o);
    if (found < 0)
        return;
    size_t oldlen = found ? o.len : 0;
    if (c->argl[3] == 0) {
        reply_int(c, (long long)oldlen);
        return;
    }
    if (check_size(c, end))
        return;
    splice(c, t, found, &o, (size_t)off, c->argv[3], c->argl[3]);
}
