/* dispatch.c: from a parsed command to its handler. Looks the name up in the table, checks
 * arity, authentication, ACL permissions, maxmemory and MULTI state, calls the handler,
 * keeps per-command statistics (calls, time, failures, latency histogram, slow log), and
 * after a write logs the command for replicas. Also the small helpers every handler uses to
 * parse arguments and to report storage errors. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/histogram.h"
#include "core/log.h"
#include "core/util.h"
#include "query/acl.h"
#include "query/fs_vec.h"
#include "query/ft.h"
#include "query/query_int.h"
#include "replication/repl.h"

const command commands[] = {
#define X(name, proc, arity, flags, fk, lk, ks, group, since, summary, syntax) \
    {name, proc, arity, flags, fk, lk, ks, group, since, summary, syntax},
#include "query/commands.def"
#undef X
};
const int ncommands = sizeof commands / sizeof commands[0];
command_stats cmdstats[sizeof commands / sizeof commands[0]];

/* Command lookup: an open-addressing table keyed by the lower-case name, at most a
 * quarter full. */
#define LOOKUP_SLOTS 512
static const command *lookup_table[LOOKUP_SLOTS];

/* What the command being called has done, for logging it afterwards. */
static struct call_state {
    int dirty;      /* changes made */
    int propagated; /* the handler logged a rewritten form itself */
    int64_t now_ms; /* wall clock at the start of the call: one time for all its checks */
    uint64_t errors; /* the client's error count when the call started (or, for EXEC, when
                        its last queued command ended: EXEC fails only by its own errors) */
} current;

static void on_expired(void *ctx, int db, const char *key, size_t klen)
{
    (void)ctx;
    srv.stats.expired_keys++;
    const char *argv[2] = {"DEL", key};
    size_t lens[2] = {3, klen};
    store_log(srv.store, db, 2, argv, lens);
    ft_key_gone(db, key, klen); /* FT indexes drop the document (no store reads here) */
    /* No watch_touch_key(): EXEC sees for itself that a WATCHed key expired (multi.c). */
}

void query_init(void)
{
    for (int i = 0; i < ncommands; i++) {
        size_t slot = hash_bytes(commands[i].name, strlen(commands[i].name), 0) % LOOKUP_SLOTS;
        while (lookup_table[slot])
            slot = (slot + 1) % LOOKUP_SLOTS;
        lookup_table[slot] = &commands[i];
    }
    query_attach_store();
}

void query_attach_store(void)
{
    store_set_expired_hook(srv.store, on_expired, NULL);
    fs_vec_init(srv.store);
}

const command *command_lookup(const char *name, size_t len)
{
    char low[32];
    /* A name with a NUL in it matches nothing (and would fool strncmp below). */
    if (len == 0 || len >= sizeof low || memchr(name, '\0', len))
        return NULL;
    for (size_t i = 0; i < len; i++) /* ASCII fold: libc tolower() costs a call a byte */
        low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] | 0x20 : name[i]);
    for (size_t slot = hash_bytes(low, len, 0) % LOOKUP_SLOTS; lookup_table[slot];
         slot = (slot + 1) % LOOKUP_SLOTS) {
        const command *cmd = lookup_table[slot];
        if (strncmp(cmd->name, low, len) == 0 && cmd->name[len] == '\0')
            return cmd;
    }
    return NULL;
}

static void reply_unknown(client *c)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "unknown command '%.*s', with args beginning with: ",
               (int)(c->argl[0] > 128 ? 128 : c->argl[0]), c->argv[0]);
    for (int i = 1; i < c->argc && b.len < 512; i++)
        buf_printf(&b, "'%.*s' ", (int)(c->argl[i] > 128 ? 128 : c->argl[i]), c->argv[i]);
    buf_appendc(&b, '\0');
    reply_error(c, b.data);
    buf_free(&b);
}

void cmdstats_reset(void)
{
    for (int i = 0; i < ncommands; i++) {
        xfree(cmdstats[i].latency);
        memset(&cmdstats[i], 0, sizeof cmdstats[i]);
    }
}

/* Counts one call of cmd that started at t0 and took dt us; it failed if it replied an
 * error. A command that parks its client is measured for its part on the loop thread (the
 * errors its worker sends later are not counted either). */
static void account(client *c, const command *cmd, int64_t t0, int64_t dt)
{
    command_stats *st = &cmdstats[cmd - commands];
    st->calls++;
    st->usec += (uint64_t)dt;
    if (c->errors != current.errors)
        st->failed++;
    if (srv.cfg.latency_tracking) {
        if (!st->latency)
            st->latency = xcalloc(1, sizeof *st->latency);
        hist_record(st->latency, (uint64_t)dt);
    }
    /* EXEC is not logged itself: its commands are, one by one (as Redis) */
    if (srv.cfg.slowlog_slower_than >= 0 && dt >= srv.cfg.slowlog_slower_than &&
        cmd->proc != cmd_exec)
        slowlog_push(c, cmd, t0, dt);
}

void call(client *c, const command *cmd)
{
    struct call_state outer = current; /* EXEC calls call() for each queued command */
    current.dirty = current.propagated = 0;
    current.errors = c->errors;
    c->last_cmd = cmd->name;
    int64_t t0 = clock_us(); /* wall clock, as Redis: one read serves expiry and timing */
    current.now_ms = t0 / 1000;
    cmd->proc(c);
    if (current.dirty && (cmd->proc == cmd_flushdb || cmd->proc == cmd_flushall))
        ft_flushed(cmd->proc == cmd_flushall ? -1 : c->db); /* FT indexes empty too */
    int64_t dt = clock_us() - t0;
    account(c, cmd, t0, dt > 0 ? dt : 0);
    if (current.dirty && !current.propagated && (cmd->flags & CMD_WRITE))
        store_log(srv.store, c->db, c->argc, c->argv, c->argl);
    if (store_txn_dirty(srv.store))
        client_wrote(c); /* it wrote, or read what others wrote in this pass */
    outer.errors = c->errors;
    current = outer;
}

int64_t call_now_ms(void)
{
    return current.now_ms;
}

/* Defined in multi.c: queues c's command inside MULTI. */
void multi_queue(client *c, const command *cmd);

/* Refuses cmd before it runs: inside MULTI that dooms the transaction, and a refused EXEC
 * discards it on the spot, with Redis's EXECABORT reply. */
static void reject(client *c, const command *cmd, const char *msg)
{
    if (c->flags & CLIENT_MULTI)
        c->flags |= CLIENT_DIRTY_EXEC;
    cmdstats[cmd - commands].rejected++;
    if (cmd->proc == cmd_exec) {
        multi_release(c);
        watch_release(c);
        reply_errorf(c, "EXECABORT Transaction discarded because of: %s", msg);
        return;
    }
    reply_error(c, msg);
}

/* Used memory as INFO reports it, read once per loop pass: mallinfo2() walks the heap's
 * arenas, too slow to do for every command of a pipeline. */
static size_t used_memory(void)
{
    static uint64_t pass = UINT64_MAX;
    static size_t used;
    if (net_pass() != pass) {
        pass = net_pass();
        used = alloc_used();
    }
    return used;
}

/* Redis's maxmemory rule (Quiver evicts nothing, so over the limit is out of memory):
 * commands that may grow memory (CMD_DENYOOM) are refused; inside MULTI every command but
 * EXEC, DISCARD, QUIT and RESET is, since queuing takes memory too; and EXEC is, when it
 * holds a CMD_DENYOOM command. */
static int oom_refuses(const client *c, const command *cmd)
{
    int deny = (cmd->flags & CMD_DENYOOM) ||
               (cmd->proc == cmd_exec && c->qs && (c->qs->queued_flags & CMD_DENYOOM));
    if ((c->flags & CLIENT_MULTI) && cmd->proc != cmd_exec && cmd->proc != cmd_discard &&
        cmd->proc != cmd_quit && cmd->proc != cmd_reset)
        deny = 1;
    return deny && used_memory() > (size_t)srv.cfg.maxmemory;
}

void query_dispatch(client *c)
{
    const command *cmd = command_lookup(c->argv[0], c->argl[0]);
    if (!cmd) {
        if (c->flags & CLIENT_MULTI)
            c->flags |= CLIENT_DIRTY_EXEC;
        reply_unknown(c);
        return;
    }
    if ((cmd->arity > 0 && c->argc != cmd->arity) || (c->argc < -cmd->arity)) {
        char msg[96];
        snprintf(msg, sizeof msg, "wrong number of arguments for '%s' command", cmd->name);
        reject(c, cmd, msg);
        return;
    }
    if (!c->authenticated && !(cmd->flags & CMD_NOAUTH)) {
        reject(c, cmd, "NOAUTH Authentication required.");
        return;
    }
    const char *denied = acl_denied(c, cmd);
    if (denied) {
        reject(c, cmd, denied);
        return;
    }
    const char *denied_write = (cmd->flags & CMD_WRITE) ? repl_write_denied(c) : NULL;
    if (denied_write) {
        reject(c, cmd, denied_write);
        return;
    }
    if (!(cmd->flags & CMD_LOADING) && repl_loading()) {
        reject(c, cmd, "LOADING Quiver is loading the dataset in memory");
        return;
    }
    if ((c->flags & CLIENT_MULTI) && (cmd->flags & CMD_NOTXN)) {
        reject(c, cmd, "Command not allowed inside a transaction");
        return;
    }
    if (srv.cfg.maxmemory && oom_refuses(c, cmd)) {
        reject(c, cmd, "OOM command not allowed when used memory > 'maxmemory'.");
        return;
    }
    if ((c->flags & CLIENT_MULTI) && !(cmd->flags & CMD_NOMULTI)) {
        multi_queue(c, cmd);
        return;
    }
    call(c, cmd);
}

void query_release(client *c)
{
    repl_client_gone(c);
    acl_client_release(c);
    if (!c->qs)
        return;
    multi_release(c);
    watch_release(c);
    xfree(c->qs);
    c->qs = NULL;
}

void key_changed(client *c, const char *key, size_t klen)
{
    current.dirty++;
    watch_touch_key(c->db, key, klen);
    ft_key_changed(c->db, key, klen); /* FT indexes re-read the hash */
}

void command_dirty(void)
{
    current.dirty++;
}

void propagate(client *c, int argc, const char *const *argv, const size_t *lens)
{
    current.propagated = 1;
    store_log(srv.store, c->db, argc, argv, lens);
}

int arg_is(const client *c, int i, const char *word)
{
    size_t n = strlen(word);
    return c->argl[i] == n && strncasecmp(c->argv[i], word, n) == 0;
}

int arg_i64(client *c, int i, int64_t *out)
{
    if (str_to_i64(c->argv[i], c->argl[i], out) == 0)
        return 0;
    reply_error(c, "value is not an integer or out of range");
    return -1;
}

int arg_double(client *c, int i, double *out)
{
    if (str_to_double(c->argv[i], c->argl[i], out, 1) == 0)
        return 0;
    reply_error(c, "value is not a valid float");
    return -1;
}

int parse_long_double(const char *s, size_t len, long double *out)
{
    char tmp[5 * 1024];
    if (len == 0 || len >= sizeof tmp || isspace((unsigned char)s[0]))
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *end;
    errno = 0;
    long double v = strtold(tmp, &end);
    if (end != tmp + len || isnan(v) || (errno == ERANGE && (isinf(v) || v == 0)))
        return -1;
    *out = v;
    return 0;
}

void reply_wrongtype(client *c)
{
    reply_error(c, "WRONGTYPE Operation against a key holding the wrong kind of value");
}

void reply_syntax_error(client *c)
{
    reply_error(c, "syntax error");
}

void reply_store_error(client *c, int rc)
{
    switch (rc) {
    case ERR_WRONGTYPE: reply_wrongtype(c); break;
    case ERR_FULL: reply_error(c, "storage is full: the LMDB map could not grow"); break;
    case ERR_NOMEM: reply_error(c, "out of memory"); break;
    case ERR_EXISTS:
        reply_error(c, "this key's digest collides with another long key; refused");
        break;
    default: reply_errorf(c, "storage error: %s", err_str(rc)); break;
    }
}

int read_txn(client *c, store_txn **t)
{
    int rc = store_txn_read(srv.store, t);
    if (rc) {
        reply_store_error(c, rc);
        return -1;
    }
    return 0;
}

int write_txn(client *c, size_t hint_bytes, store_txn **t)
{
    int rc = store_txn_write(srv.store, hint_bytes, t);
    if (rc) {
        reply_store_error(c, rc);
        return -1;
    }
    return 0;
}

int lookup_read(client *c, store_txn *t, const char *key, size_t klen, store_obj *o)
{
    int rc = store_lookup(t, c->db, key, klen, current.now_ms, o);
    if (rc == 0)
        srv.stats.keyspace_hits++;
    else if (rc == ERR_NOTFOUND)
        srv.stats.keyspace_misses++;
    return rc;
}

void scratch_init(client *sc, int resp, buf *out)
{
    memset(sc, 0, sizeof *sc);
    sc->state = CONN_OPEN;
    sc->resp = resp;
    sc->obuf = *out;
}

void scratch_done(client *sc, buf *out)
{
    *out = sc->obuf;
}
