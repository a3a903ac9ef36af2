/* multi.c: transactions. MULTI queues commands (copied, since the query buffer moves on),
 * EXEC runs them back to back inside the same loop pass, so no other client's command can
 * come between them, and WATCH makes EXEC fail when a watched key was touched: every write
 * reports the keys it changed through watch_touch_key(). As in Redis 7, a key that was alive
 * when WATCHed and has expired by EXEC counts as changed too (checked at EXEC, from the
 * expiry time seen at WATCH), while the deletion of an expired key touches nobody. */
#include <string.h>

#include "core/alloc.h"
#include "core/util.h"
#include "query/acl.h"
#include "query/query_int.h"

struct queued {
    const command *cmd;
    int argc;
    char **argv;
    size_t *argl;
};

struct watched {
    int db;
    char *key;
    size_t klen;
    int64_t expire_ms; /* the key's expiry when WATCHed; 0: none, or no live key */
    client *c;
    struct watched *next;        /* in the bucket */
    struct watched *next_of_cli; /* in the client's list */
};

#define WATCH_BUCKETS 4096
static struct watched *buckets[WATCH_BUCKETS];
static size_t nwatched;

static struct query_state *state(client *c)
{
    if (!c->qs)
        c->qs = xcalloc(1, sizeof *c->qs);
    return c->qs;
}

static size_t bucket(int db, const char *key, size_t klen)
{
    return hash_bytes(key, klen, (uint64_t)db) % WATCH_BUCKETS;
}

void multi_queue(client *c, const command *cmd)
{
    struct query_state *qs = state(c);
    if (qs->nqueued == qs->cap) {
        qs->cap = qs->cap ? qs->cap * 2 : 8;
        qs->queue = xrealloc(qs->queue, sizeof *qs->queue * (size_t)qs->cap);
    }
    struct queued *q = &qs->queue[qs->nqueued++];
    q->cmd = cmd;
    qs->queued_flags |= cmd->flags;
    q->argc = c->argc;
    q->argv = xmalloc(sizeof *q->argv * (size_t)c->argc);
    q->argl = xmalloc(sizeof *q->argl * (size_t)c->argc);
    for (int i = 0; i < c->argc; i++) {
        q->argv[i] = xmemdup(c->argv[i], c->argl[i]);
        q->argl[i] = c->argl[i];
    }
    reply_simple(c, "QUEUED");
}

void multi_release(client *c)
{
    struct query_state *qs = c->qs;
    c->flags &= ~(CLIENT_MULTI | CLIENT_DIRTY_EXEC);
    if (!qs)
        return;
    for (int i = 0; i < qs->nqueued; i++) {
        for (int j = 0; j < qs->queue[i].argc; j++)
            xfree(qs->queue[i].argv[j]);
        xfree(qs->queue[i].argv);
        xfree(qs->queue[i].argl);
    }
    xfree(qs->queue);
    qs->queue = NULL;
    qs->nqueued = qs->cap = 0;
    qs->queued_flags = 0;
}

void cmd_multi(client *c)
{
    if (c->flags & CLIENT_MULTI) {
        reply_error(c, "ERR MULTI calls can not be nested");
        return;
    }
    c->flags |= CLIENT_MULTI;
    reply_ok(c);
}

void cmd_discard(client *c)
{
    if (!(c->flags & CLIENT_MULTI)) {
        reply_error(c, "ERR DISCARD without MULTI");
        return;
    }
    multi_release(c);
    watch_release(c);
    reply_ok(c);
}

/* MULTI and EXEC around a transaction's writes in the replication log. */
static void log_marker(client *c, int wanted, const char *word)
{
    if (!wanted)
        return;
    const char *argv[1] = {word};
    size_t lens[1] = {strlen(word)};
    store_log(srv.store, c->db, 1, argv, lens);
}

void cmd_exec(client *c)
{
    if (!(c->flags & CLIENT_MULTI)) {
        reply_error(c, "ERR EXEC without MULTI");
        return;
    }
    if (c->flags & CLIENT_DIRTY_EXEC) {
        reply_error(c, "EXECABORT Transaction discarded because of previous errors.");
        multi_release(c);
        watch_release(c);
        return;
    }
    int64_t now = clock_ms();
    for (struct watched *w = c->qs ? c->qs->watching : NULL; w; w = w->next_of_cli)
        if (w->expire_ms && w->expire_ms <= now)
            c->flags |= CLIENT_DIRTY_CAS;
    if (c->flags & CLIENT_DIRTY_CAS) {
        reply_null_array(c);
        multi_release(c);
        watch_release(c);
        return;
    }
    watch_release(c);
    struct query_state *qs = c->qs;
    int n = qs ? qs->nqueued : 0;
    c->flags &= ~CLIENT_MULTI; /* the queued commands run as ordinary calls */
    reply_array(c, n);
    int argc = c->argc;
    const char **argv = c->argv;
    size_t *argl = c->argl;
    /* Room for everything the transaction could write, made before it starts, so that no
     * growth commits half of it. */
    size_t hint = 0;
    int writes = 0;
    for (int i = 0; i < n; i++) {
        writes += (qs->queue[i].cmd->flags & CMD_WRITE) != 0;
        for (int j = 0; j < qs->queue[i].argc; j++)
            hint += qs->queue[i].argl[j];
    }
    store_txn_hold(srv.store, hint, 1);
    log_marker(c, writes > 1, "MULTI"); /* replicas apply the writes together too */
    for (int i = 0; i < n && c->state != CONN_CLOSED; i++) {
        struct queued *q = &qs->queue[i];
        c->argc = q->argc;
        c->argv = (const char **)q->argv;
        c->argl = q->argl;
        const char *denied = acl_denied_in_exec(c, q->cmd); /* rules changed since MULTI */
        if (denied)
            reply_error(c, denied);
        else
            call(c, q->cmd);
    }
    log_marker(c, writes > 1, "EXEC");
    store_txn_hold(srv.store, 0, 0);
    c->argc = argc;
    c->argv = argv;
    c->argl = argl;
    multi_release(c);
}

void cmd_watch(client *c)
{
    if (c->flags & CLIENT_MULTI) {
        reply_error(c, "ERR WATCH inside MULTI is not allowed");
        return;
    }
    store_txn *t;
    if (read_txn(c, &t))
        return;
    struct query_state *qs = state(c);
    int64_t now = clock_ms();
    for (int i = 1; i < c->argc; i++) {
        size_t b = bucket(c->db, c->argv[i], c->argl[i]);
        struct watched *w;
        for (w = buckets[b]; w; w = w->next)
            if (w->c == c && w->db == c->db && w->klen == c->argl[i] &&
                memcmp(w->key, c->argv[i], w->klen) == 0)
                break;
        if (w)
            continue;
        w = xcalloc(1, sizeof *w);
        w->db = c->db;
        w->key = xmemdup(c->argv[i], c->argl[i]);
        w->klen = c->argl[i];
        store_obj o;
        if (store_lookup(t, c->db, w->key, w->klen, now, &o) == 0)
            w->expire_ms = o.expire_ms;
        w->c = c;
        w->next = buckets[b];
        buckets[b] = w;
        w->next_of_cli = qs->watching;
        qs->watching = w;
        nwatched++;
    }
    reply_ok(c);
}

void watch_release(client *c)
{
    struct query_state *qs = c->qs;
    if (!qs)
        return;
    for (struct watched *w = qs->watching, *next; w; w = next) {
        next = w->next_of_cli;
        struct watched **pp = &buckets[bucket(w->db, w->key, w->klen)];
        while (*pp != w)
            pp = &(*pp)->next;
        *pp = w->next;
        xfree(w->key);
        xfree(w);
        nwatched--;
    }
    qs->watching = NULL;
    c->flags &= ~CLIENT_DIRTY_CAS;
}

void cmd_unwatch(client *c)
{
    watch_release(c);
    reply_ok(c);
}

void watch_touch_key(int db, const char *key, size_t klen)
{
    if (!nwatched)
        return;
    for (struct watched *w = buckets[bucket(db, key, klen)]; w; w = w->next)
        if (w->db == db && w->klen == klen && memcmp(w->key, key, klen) == 0)
            w->c->flags |= CLIENT_DIRTY_CAS;
}

void watch_touch_db(store_txn *t, int db)
{
    if (!nwatched)
        return;
    int64_t now = clock_ms();
    for (size_t b = 0; b < WATCH_BUCKETS; b++) {
        for (struct watched *w = buckets[b]; w; w = w->next) {
            store_obj o;
            if ((db < 0 || w->db == db) && store_lookup(t, w->db, w->key, w->klen, now, &o) == 0)
                w->c->flags |= CLIENT_DIRTY_CAS;
        }
    }
}
