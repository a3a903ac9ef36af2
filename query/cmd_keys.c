/* cmd_keys.c: commands on keys of any type: DEL, EXISTS, TYPE, KEYS, SCAN (and the cursor
 * table that SCAN and HSCAN share), RENAME, the EXPIRE family and TTL family. */
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"
#include "query/query_int.h"

void cmd_del(client *c)
{
    store_txn *t;
    if (write_txn(c, 0, &t))
        return;
    int64_t now = clock_ms();
    long long n = 0;
    for (int i = 1; i < c->argc; i++) {
        int deleted;
        int rc = store_delete(t, c->db, c->argv[i], c->argl[i], now, &deleted);
        if (rc) {
            reply_store_error(c, rc);
            return;
        }
        if (deleted) {
            n++;
            key_changed(c, c->argv[i], c->argl[i]);
        }
    }
    reply_int(c, n);
}

void cmd_exists(client *c)
{
    store_txn *t;
    if (read_txn(c, &t))
        return;
    long long n = 0;
    for (int i = 1; i < c->argc; i++) {
        store_obj o;
        n += lookup_read(c, t, c->argv[i], c->argl[i], &o) == 0;
    }
    reply_int(c, n);
}

static const char *type_name(int type)
{
    return type == STORE_STRING ? "string" : type == STORE_HASH ? "hash" : "none";
}

void cmd_type(client *c)
{
    store_txn *t;
    store_obj o;
    if (read_txn(c, &t))
        return;
    int rc = lookup_read(c, t, c->argv[1], c->argl[1], &o);
    reply_simple(c, rc == 0 ? type_name(o.type) : "none");
}

void cmd_keys(client *c)
{
    store_txn *t;
    store_iter *it;
    if (read_txn(c, &t))
        return;
    int rc = store_iter_keys(t, c->db, NULL, 0, clock_ms(), &it);
    if (rc) {
        reply_store_error(c, rc);
        return;
    }
    int all = c->argl[1] == 1 && c->argv[1][0] == '*';
    size_t handle = reply_deferred(c);
    long n = 0;
    const char *key;
    size_t klen;
    while (store_iter_next(it, &key, &klen, NULL) == 0) {
        if (all || glob_match(c->argv[1], c->argl[1], key, klen, 0)) {
            reply_bulk(c, key, klen);
            n++;
        }
    }
    store_iter_free(it);
    reply_set_array(c, handle, n);
}

/* The cursor table: SCAN cursors are numbers, our positions are bytes, so a cursor names a
 * saved position. A ring of the most recent ones; an evicted or unknown cursor is refused. */
#define CURSORS 4096
static struct cursor {
    uint64_t id, owner; /* owner: hash of (db, key) the scan belongs to */
    char *pos;
    size_t plen;
} cursors[CURSORS];
static uint64_t cursor_next;

static uint64_t owner_of(int db, const char *key, size_t klen)
{
    return hash_bytes(key, klen, (uint64_t)db + 1);
}

uint64_t cursor_save(int db, const char *key, size_t klen, const char *pos, size_t plen)
{
    if (!cursor_next)
        cursor_next = (uint64_t)(clock_us() & 0xfffff) << 20 | 1;
    uint64_t id = cursor_next++;
    struct cursor *cu = &cursors[id % CURSORS];
    xfree(cu->pos);
    cu->id = id;
    cu->owner = owner_of(db, key, klen);
    cu->pos = xmemdup(pos, plen);
    cu->plen = plen;
    return id;
}

int cursor_load(uint64_t id, int db, const char *key, size_t klen, buf *pos)
{
    struct cursor *cu = &cursors[id % CURSORS];
    if (cu->id != id || !cu->pos || cu->owner != owner_of(db, key, klen))
        return ERR_NOTFOUND;
    buf_append(pos, cu->pos, cu->plen);
    return 0;
}

void scan_items_init(scan_items *it)
{
    buf_init(&it->data);
    it->n = 0;
}

void scan_items_add(scan_items *it, const char *p, size_t n)
{
    buf_append(&it->data, &n, sizeof n);
    buf_append(&it->data, p, n);
    it->n++;
}

void scan_reply(client *c, uint64_t cursor, scan_items *it)
{
    reply_array(c, 2);
    reply_bulk_int(c, (long long)cursor);
    reply_array(c, (long)it->n);
    for (size_t off = 0; off < it->data.len;) {
        size_t n;
        memcpy(&n, it->data.data + off, sizeof n);
        reply_bulk(c, it->data.data + off + sizeof n, n);
        off += sizeof n + n;
    }
    buf_free(&it->data);
}

void cmd_scan(client *c)
{
    int64_t cursor, count = 10;
    const char *match = NULL, *type = NULL;
    size_t mlen = 0, tlen = 0;
    if (str_to_i64(c->argv[1], c->argl[1], &cursor) || cursor < 0) {
        reply_error(c, "invalid cursor");
        return;
    }
    for (int i = 2; i < c->argc; i += 2) {
        if (i + 1 >= c->argc) {
            reply_syntax_error(c);
            return;
        }
        if (arg_is(c, i, "MATCH")) {
            match = c->argv[i + 1];
            mlen = c->argl[i + 1];
        } else if (arg_is(c, i, "COUNT")) {
            if (arg_i64(c, i + 1, &count))
                return;
            if (count < 1) {
                reply_syntax_error(c);
                return;
            }
        } else if (arg_is(c, i, "TYPE")) {
            type = c->argv[i + 1];
            tlen = c->argl[i + 1];
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    buf pos;
    buf_init(&pos);
    if (cursor && cursor_load((uint64_t)cursor, c->db, "", 0, &pos) != 0) {
        reply_error(c, "invalid or expired cursor");
        return;
    }
    store_txn *t;
    store_iter *it;
    if (read_txn(c, &t) || (store_iter_keys(t, c->db, pos.data, pos.len, clock_ms(), &it) &&
                            (reply_error(c, "invalid cursor"), 1))) {
        buf_free(&pos);
        return;
    }
    buf_free(&pos);
    scan_items items;
    scan_items_init(&items);
    int64_t seen = 0;
    const char *key;
    size_t klen;
    store_obj o;
    int rc = 0;
    while (seen < count && (rc = store_iter_next(it, &key, &klen, &o)) == 0) {
        seen++;
        if (match && !glob_match(match, mlen, key, klen, 0))
            continue;
        const char *tn = type_name(o.type);
        if (type && (tlen != strlen(tn) || strncasecmp(type, tn, tlen) != 0))
            continue;
        scan_items_add(&items, key, klen);
    }
    uint64_t next = 0;
    if (seen == count && rc == 0) {
        const char *p;
        size_t plen;
        store_iter_pos(it, &p, &plen);
        next = cursor_save(c->db, "", 0, p, plen);
    }
    store_iter_free(it);
    scan_reply(c, next, &items);
}

static void rename_key(client *c, int nx)
{
    store_txn *t;
    store_obj o;
    if (write_txn(c, 0, &t))
        return;
    int64_t now = clock_ms();
    int rc = store_lookup(t, c->db, c->argv[1], c->argl[1], now, &o);
    if (rc) {
        rc == ERR_NOTFOUND ? reply_error(c, "no such key") : reply_store_error(c, rc);
        return;
    }
    if (nx) {
        rc = store_lookup(t, c->db, c->argv[2], c->argl[2], now, &o);
        if (rc != ERR_NOTFOUND) {
            rc ? reply_store_error(c, rc) : reply_int(c, 0);
            return;
        }
    }
    rc = store_rename(t, c->db, c->argv[1], c->argl[1], c->argv[2], c->argl[2], now);
    if (rc) {
        reply_store_error(c, rc);
        return;
    }
    key_changed(c, c->argv[1], c->argl[1]);
    key_changed(c, c->argv[2], c->argl[2]);
    nx ? reply_int(c, 1) : reply_ok(c);
}

void cmd_rename(client *c)
{
    rename_key(c, 0);
}

void cmd_renamenx(client *c)
{
    rename_key(c, 1);
}

/* EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX|XX|GT|LT. */
static void expire_generic(client *c, int64_t unit, int absolute)
{
    int nx = 0, xx = 0, gt = 0, lt = 0;
    for (int i = 3; i < c->argc; i++) {
        if (arg_is(c, i, "NX"))
            nx = 1;
        else if (arg_is(c, i, "XX"))
            xx = 1;
        else if (arg_is(c, i, "GT"))
            gt = 1;
        else if (arg_is(c, i, "LT"))
            lt = 1;
        else {
            reply_errorf(c, "Unsupported option %.*s", (int)c->argl[i], c->argv[i]);
            return;
        }
    }
    if (nx && (xx || gt || lt)) {
        reply_error(c, "ERR NX and XX, GT or LT options at the same time are not compatible");
        return;
    }
    if (gt && lt) {
        reply_error(c, "ERR GT and LT options at the same time are not compatible");
        return;
    }
    int64_t v, now = clock_ms();
    if (arg_i64(c, 2, &v))
        return;
    if (v > INT64_MAX / unit || v < INT64_MIN / unit ||
        (!absolute && v > 0 && v * unit > INT64_MAX - now)) {
        reply_errorf(c, "invalid expire time in '%s' command", c->last_cmd);
        return;
    }
    int64_t when = v * unit + (absolute ? 0 : now);
    store_txn *t;
    store_obj o;
    if (write_txn(c, 0, &t))
        return;
    int rc = store_lookup(t, c->db, c->argv[1], c->argl[1], now, &o);
    if (rc) {
        rc == ERR_NOTFOUND ? reply_int(c, 0) : reply_store_error(c, rc);
        return;
    }
    /* No expiry counts as infinite for GT and LT. */
    if ((nx && o.expire_ms) || (xx && !o.expire_ms) ||
        (gt && (!o.expire_ms || when <= o.expire_ms)) || (lt && o.expire_ms && when >= o.expire_ms)) {
        reply_int(c, 0);
        return;
    }
    /* A time already past deletes the key, except on a replica applying its leader's
     * stream: there the leader saw the key live, and its DEL will follow (as Redis). */
    if (when <= now && !(c->flags & CLIENT_MASTER)) {
        int deleted;
        rc = store_delete(t, c->db, c->argv[1], c->argl[1], now, &deleted);
        if (rc) {
            reply_store_error(c, rc);
            return;
        }
        key_changed(c, c->argv[1], c->argl[1]);
        const char *argv[2] = {"DEL", c->argv[1]};
        size_t lens[2] = {3, c->argl[1]};
        propagate(c, 2, argv, lens);
        reply_int(c, 1);
        return;
    }
    if ((rc = store_set_expire(t, c->db, c->argv[1], c->argl[1], when, now)) != 0) {
        reply_store_error(c, rc);
        return;
    }
    key_changed(c, c->argv[1], c->argl[1]);
    char num[24];
    const char *argv[3] = {"PEXPIREAT", c->argv[1], num};
    size_t lens[3] = {9, c->argl[1], i64_to_str(num, when)};
    propagate(c, 3, argv, lens);
    reply_int(c, 1);
}

void cmd_expire(client *c)
{
    expire_generic(c, 1000, 0);
}

void cmd_pexpire(client *c)
{
    expire_generic(c, 1, 0);
}

void cmd_expireat(client *c)
{
    expire_generic(c, 1000, 1);
}

void cmd_pexpireat(client *c)
{
    expire_generic(c, 1, 1);
}

/* TTL family: what = 0 ttl s, 1 ttl ms, 2 expiry s, 3 expiry ms. */
static void ttl_generic(client *c, int what)
{
    store_txn *t;
    store_obj o;
    if (read_txn(c, &t))
        return;
    int64_t now = clock_ms();
    int rc = lookup_read(c, t, c->argv[1], c->argl[1], &o);
    if (rc) {
        rc == ERR_NOTFOUND ? reply_int(c, -2) : reply_store_error(c, rc);
        return;
    }
    if (!o.expire_ms) {
        reply_int(c, -1);
        return;
    }
    int64_t ttl = o.expire_ms - now;
    if (ttl < 0)
        ttl = 0;
    switch (what) {
    case 0: reply_int(c, (ttl + 500) / 1000); break;
    case 1: reply_int(c, ttl); break;
    case 2: reply_int(c, o.expire_ms / 1000); break;
    default: reply_int(c, o.expire_ms); break;
    }
}

void cmd_ttl(client *c)
{
    ttl_generic(c, 0);
}

void cmd_pttl(client *c)
{
    ttl_generic(c, 1);
}

void cmd_expiretime(client *c)
{
    ttl_generic(c, 2);
}

void cmd_pexpiretime(client *c)
{
    ttl_generic(c, 3);
}

void cmd_persist(client *c)
{
    store_txn *t;
    store_obj o;
    if (write_txn(c, 0, &t))
        return;
    int64_t now = clock_ms();
    int rc = store_lookup(t, c->db, c->argv[1], c->argl[1], now, &o);
    if (rc || !o.expire_ms) {
        rc && rc != ERR_NOTFOUND ? reply_store_error(c, rc) : reply_int(c, 0);
        return;
    }
    if ((rc = store_set_expire(t, c->db, c->argv[1], c->argl[1], 0, now)) != 0) {
        reply_store_error(c, rc);
        return;
    }
    key_changed(c, c->argv[1], c->argl[1]);
    reply_int(c, 1);
}
