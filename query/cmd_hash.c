/* cmd_hash.c: the hash commands. A hash is what Feast's Redis online store writes (HSET of
 * a few fields per entity, HMGET to serve), so HSET/HGET/HMGET are on the hot path. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"
#include "query/query_int.h"

/* Looks key up as a hash. 1 found, 0 absent, -1 replied an error. */
static int get_hash(client *c, store_txn *t, store_obj *o)
{
    int rc = lookup_read(c, t, c->argv[1], c->argl[1], o);
    if (rc == ERR_NOTFOUND)
        return 0;
    if (rc) {
        reply_store_error(c, rc);
        return -1;
    }
    if (o->type != STORE_HASH) {
        reply_wrongtype(c);
        return -1;
    }
    return 1;
}

static int read_hash(client *c, store_txn **t, store_obj *o)
{
    if (read_txn(c, t))
        return -1;
    return get_hash(c, *t, o);
}

void cmd_hset(client *c)
{
    int hmset = arg_is(c, 0, "hmset");
    if (c->argc % 2 != 0) {
        reply_errorf(c, "wrong number of arguments for '%s' command", hmset ? "hmset" : "hset");
        return;
    }
    store_txn *t;
    size_t total = 0;
    for (int i = 3; i < c->argc; i += 2)
        total += c->argl[i];
    if (write_txn(c, total, &t))
        return;
    int64_t now = clock_ms();
    long long added = 0;
    for (int i = 2; i < c->argc; i += 2) {
        int a;
        int rc = store_hash_set(t, c->db, c->argv[1], c->argl[1], c->argv[i], c->argl[i],
                                c->argv[i + 1], c->argl[i + 1], now, &a);
        if (rc) {
            reply_store_error(c, rc); /* WRONGTYPE is found on the first field: no change */
            return;
        }
        added += a;
    }
    key_changed(c, c->argv[1], c->argl[1]);
    hmset ? reply_ok(c) : reply_int(c, added);
}

void cmd_hsetnx(client *c)
{
    store_txn *t;
    store_obj o;
    if (write_txn(c, c->argl[3], &t))
        return;
    int found = get_hash(c, t, &o);
    if (found < 0)
        return;
    const char *v;
    size_t vlen;
    if (found && store_hash_get(t, &o, c->argv[2], c->argl[2], &v, &vlen) == 0) {
        reply_int(c, 0);
        return;
    }
    int added;
    int rc = store_hash_set(t, c->db, c->argv[1], c->argl[1], c->argv[2], c->argl[2], c->argv[3],
                            c->argl[3], clock_ms(), &added);
    if (rc) {
        reply_store_error(c, rc);
        return;
    }
    key_changed(c, c->argv[1], c->argl[1]);
    reply_int(c, 1);
}

void cmd_hget(client *c)
{
    store_txn *t;
    store_obj o;
    int found = read_hash(c, &t, &o);
    if (found < 0)
        return;
    const char *v;
    size_t vlen;
    if (found && store_hash_get(t, &o, c->argv[2], c->argl[2], &v, &vlen) == 0)
        reply_bulk(c, v, vlen);
    else
        reply_null(c);
}

void cmd_hmget(client *c)
{
    store_txn *t;
    store_obj o;
    int found = read_hash(c, &t, &o);
    if (found < 0)
        return;
    reply_array(c, c->argc - 2);
    for (int i = 2; i < c->argc; i++) {
        const char *v;
        size_t vlen;
        if (found && store_hash_get(t, &o, c->argv[i], c->argl[i], &v, &vlen) == 0)
            reply_bulk(c, v, vlen);
        else
            reply_null(c);
    }
}

/* HGETALL, HKEYS, HVALS. */
static void hash_walk(client *c, int keys, int vals)
{
    store_txn *t;
    store_obj o;
    int found = read_hash(c, &t, &o);
    if (found <= 0) {
        if (found == 0)
            keys && vals ? reply_map(c, 0) : reply_array(c, 0);
        return;
    }
    store_iter *it;
    int rc = store_iter_fields(t, &o, NULL, 0, &it);
    if (rc) {
        reply_store_error(c, rc);
        return;
    }
    if (keys && vals)
        reply_map(c, (long)o.len);
    else
        reply_array(c, (long)o.len);
    const char *f, *v;
    size_t flen, vlen;
    long n = 0;
    while (n < (long)o.len && store_iter_next_field(it, &f, &flen, &v, &vlen) == 0) {
        if (keys)
            reply_bulk(c, f, flen);
        if (vals)
            reply_bulk(c, v, vlen);
        n++;
    }
    store_iter_free(it);
    for (; n < (long)o.len; n++) { /* a count that disagrees with the fields is corruption */
        if (keys)
            reply_null(c);
        if (vals)
            reply_null(c);
    }
}

void cmd_hgetall(client *c)
{
    hash_walk(c, 1, 1);
}

void cmd_hkeys(client *c)
{
    hash_walk(c, 1, 0);
}

void cmd_hvals(client *c)
{
    hash_walk(c, 0, 1);
}

void cmd_hdel(client *c)
{
    store_txn *t;
    store_obj o;
    if (write_txn(c, 0, &t))
        return;
    int found = get_hash(c, t, &o);
    if (found <= 0) {
        if (found == 0)
            reply_int(c, 0);
        return;
    }
    int64_t now = clock_ms();
    long long n = 0;
    for (int i = 2; i < c->argc; i++) {
        int removed;
        int rc = store_hash_del(t, c->db, c->argv[1], c->argl[1], c->argv[i], c->argl[i], now,
                                &removed);
        if (rc) {
            reply_store_error(c, rc);
            return;
        }
        n += removed;
    }
    if (n)
        key_changed(c, c->argv[1], c->argl[1]);
    reply_int(c, n);
}

void cmd_hexists(client *c)
{
    store_txn *t;
    store_obj o;
    int found = read_hash(c, &t, &o);
    if (found < 0)
        return;
    const char *v;
    size_t vlen;
    reply_int(c, found && store_hash_get(t, &o, c->argv[2], c->argl[2], &v, &vlen) == 0);
}

void cmd_hlen(client *c)
{
    store_txn *t;
    store_obj o;
    int found = read_hash(c, &t, &o);
    if (found >= 0)
        reply_int(c, found ? (long long)o.len : 0);
}

void cmd_hstrlen(client *c)
{
    store_txn *t;
    store_obj o;
    int found = read_hash(c, &t, &o);
    if (found < 0)
        return;
    const char *v;
    size_t vlen = 0;
    if (!found || store_hash_get(t, &o, c->argv[2], c->argl[2], &v, &vlen) != 0)
        vlen = 0;
    reply_int(c, (long long)vlen);
}

/* Reads a field for HINCRBY/HINCRBYFLOAT. 1 found (val set), 0 absent, -1 replied. */
static int field_for_update(client *c, store_txn **t, const char **v, size_t *vlen)
{
    store_obj o;
    if (write_txn(c, 0, t))
        return -1;
    int found = get_hash(c, *t, &o);
    if (found <= 0)
        return found;
    return store_hash_get(*t, &o, c->argv[2], c->argl[2], v, vlen) == 0;
}

static int set_field(client *c, store_txn *t, const char *v, size_t vlen)
{
    int added;
    int rc = store_hash_set(t, c->db, c->argv[1], c->argl[1], c->argv[2], c->argl[2], v, vlen,
                            clock_ms(), &added);
    if (rc) {
        reply_store_error(c, rc);
        return -1;
    }
    key_changed(c, c->argv[1], c->argl[1]);
    return 0;
}

void cmd_hincrby(client *c)
{
    int64_t delta, cur = 0;
    if (arg_i64(c, 3, &delta))
        return;
    store_txn *t;
    const char *v;
    size_t vlen;
    int found = field_for_update(c, &t, &v, &vlen);
    if (found < 0)
        return;
    if (found && str_to_i64(v, vlen, &cur) != 0) {
        reply_error(c, "hash value is not an integer");
        return;
    }
    if ((delta > 0 && cur > INT64_MAX - delta) || (delta < 0 && cur < INT64_MIN - delta)) {
        reply_error(c, "increment or decrement would overflow");
        return;
    }
    cur += delta;
    char num[24];
    if (set_field(c, t, num, i64_to_str(num, cur)) == 0)
        reply_int(c, cur);
}

void cmd_hincrbyfloat(client *c)
{
    long double incr, cur = 0;
    if (parse_long_double(c->argv[3], c->argl[3], &incr) != 0) {
        reply_error(c, "value is not a valid float");
        return;
    }
    if (isinf(incr)) {
        reply_error(c, "value is NaN or Infinity");
        return;
    }
    store_txn *t;
    const char *v;
    size_t vlen;
    int found = field_for_update(c, &t, &v, &vlen);
    if (found < 0)
        return;
    if (found && parse_long_double(v, vlen, &cur) != 0) {
        reply_error(c, "hash value is not a float");
        return;
    }
    long double r = cur + incr;
    if (isnan(r) || isinf(r)) {
        reply_error(c, "increment would produce NaN or Infinity");
        return;
    }
    char num[LDOUBLE_STR_MAX];
    size_t n = ldouble_to_str(num, r);
    if (set_field(c, t, num, n) != 0)
        return;
    const char *argv[4] = {"HSET", c->argv[1], c->argv[2], num};
    size_t lens[4] = {4, c->argl[1], c->argl[2], n};
    propagate(c, 4, argv, lens);
    reply_bulk(c, num, n);
}

void cmd_hscan(client *c)
{
    int64_t cursor, count = 10;
    const char *match = NULL;
    size_t mlen = 0;
    int novalues = 0;
    if (str_to_i64(c->argv[2], c->argl[2], &cursor) || cursor < 0) {
        reply_error(c, "invalid cursor");
        return;
    }
    /* As in Redis, a missing key answers an empty scan before the options are looked at. */
    store_txn *t;
    store_obj o;
    scan_items items;
    scan_items_init(&items);
    int found = read_hash(c, &t, &o);
    if (found <= 0) {
        if (found == 0)
            scan_reply(c, 0, &items);
        return;
    }
    for (int i = 3; i < c->argc; i++) {
        if (arg_is(c, i, "NOVALUES")) {
            novalues = 1;
        } else if (i + 1 < c->argc && arg_is(c, i, "MATCH")) {
            match = c->argv[++i];
            mlen = c->argl[i];
        } else if (i + 1 < c->argc && arg_is(c, i, "COUNT")) {
            if (arg_i64(c, ++i, &count))
                return;
            if (count < 1) {
                reply_syntax_error(c);
                return;
            }
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    buf pos;
    buf_init(&pos);
    if (cursor && cursor_load((uint64_t)cursor, c->db, c->argv[1], c->argl[1], &pos) != 0) {
        buf_free(&pos);
        reply_error(c, "invalid or expired cursor");
        return;
    }
    store_iter *it;
    int rc = store_iter_fields(t, &o, pos.data, pos.len, &it);
    buf_free(&pos);
    if (rc) {
        reply_error(c, "invalid cursor");
        return;
    }
    int64_t seen = 0;
    const char *f, *v;
    size_t flen, vlen;
    while (seen < count && (rc = store_iter_next_field(it, &f, &flen, &v, &vlen)) == 0) {
        seen++;
        if (match && !glob_match(match, mlen, f, flen, 0))
            continue;
        scan_items_add(&items, f, flen);
        if (!novalues)
            scan_items_add(&items, v, vlen);
    }
    uint64_t next = 0;
    if (seen == count && rc == 0) {
        const char *p;
        size_t plen;
        store_iter_pos(it, &p, &plen);
        next = cursor_save(c->db, c->argv[1], c->argl[1], p, plen);
    }
    store_iter_free(it);
    scan_reply(c, next, &items);
}
