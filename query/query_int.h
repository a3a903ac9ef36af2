/* query_int.h: what the files of query/ share: the command descriptor and flags, the
 * handler prototypes (generated from commands.def), argument helpers that reply on error and
 * return -1 so that a handler stays flat, and the write-side bookkeeping. */
#ifndef QUIVER_QUERY_INT_H
#define QUIVER_QUERY_INT_H

#include <stdint.h>

#include "core/server.h"
#include "query/query.h"
#include "store/store.h"
#include "wire/wire.h"

enum {
    CMD_WRITE = 1 << 0,
    CMD_READONLY = 1 << 1,
    CMD_FAST = 1 << 2,
    CMD_ADMIN = 1 << 3,
    CMD_DENYOOM = 1 << 4,
    CMD_NOAUTH = 1 << 5,   /* allowed before authentication */
    CMD_NOMULTI = 1 << 6,  /* runs at once inside MULTI instead of being queued */
    CMD_LOADING = 1 << 7,
    CMD_STALE = 1 << 8,
    CMD_NOTXN = 1 << 9, /* refused inside MULTI (what Redis calls no-multi) */
};

typedef struct command {
    const char *name; /* lower case */
    void (*proc)(client *c);
    int arity;        /* argc including the name; negative: at least -arity */
    unsigned flags;
    int first_key, last_key, key_step;
    const char *group, *since, *summary;
    const char *syntax; /* arguments after the name, as the docs write them */
} command;

/* Per-command statistics, indexed like the table. */
typedef struct command_stats {
    uint64_t calls, usec, rejected, failed;
    struct histogram *latency; /* call durations in us; allocated at the first call */
} command_stats;

extern const command commands[];
extern command_stats cmdstats[];
extern const int ncommands;

const command *command_lookup(const char *name, size_t len);

/* Per-client state owned by query/. */
struct query_state {
    int nqueued, cap;
    struct queued *queue; /* MULTI queue */
    struct watched *watching;
    uint64_t scan_seq;
    unsigned queued_flags; /* the flags of the queued commands, or'ed (EXEC's OOM check) */
};

#define X(name, proc, arity, flags, fk, lk, ks, group, since, summary, syntax) \
    void proc(client *c);
#include "query/commands.def"
#undef X

/* Argument helpers: on a bad value they reply the Redis error and return -1. */
int arg_is(const client *c, int i, const char *word);
int arg_i64(client *c, int i, int64_t *out);
int arg_double(client *c, int i, double *out);
/* Parses exactly len bytes as a long double with Redis's rules for INCRBYFLOAT and
 * HINCRBYFLOAT: no leading space, "inf" allowed, NaN and overflow refused. 0 or -1. */
int parse_long_double(const char *s, size_t len, long double *out);
/* Replies the error for a store failure (WRONGTYPE, storage errors). */
void reply_store_error(client *c, int rc);
void reply_wrongtype(client *c);
void reply_syntax_error(client *c);

/* A client that only collects encoded bytes, for work whose reply is made away from its
 * client: the reply builders touch obuf, state and resp (wire.h, PARKED CLIENTS). out's
 * memory moves in; scratch_done moves it back. */
void scratch_init(client *sc, int resp, buf *out);
void scratch_done(client *sc, buf *out);

/* Transactions of the current pass; on failure they reply and return -1. */
int read_txn(client *c, store_txn **t);
int write_txn(client *c, size_t hint_bytes, store_txn **t);

/* After a successful change to key: counts the change (so the command is logged for
 * replicas) and touches WATCHers. */
void key_changed(client *c, const char *key, size_t klen);
/* Counts a change that is not about one key (FLUSHDB). */
void command_dirty(void);
/* Logs a rewritten command instead of the client's (for relative times and the like). */
void propagate(client *c, int argc, const char *const *argv, const size_t *lens);
/* Before db is emptied (db < 0: all of them): touches the WATCHed keys that exist in it,
 * looked up through t. */
void watch_touch_db(store_txn *t, int db);
void watch_touch_key(int db, const char *key, size_t klen);
void watch_release(client *c);
void multi_release(client *c);
/* Runs one command for real (used by the dispatcher and EXEC). */
void call(client *c, const command *cmd);
/* The wall clock (ms) read when the running command's call() began: its time for every
 * expiry check, and one clock read fewer per command. */
int64_t call_now_ms(void);
/* Lookup that counts keyspace hits and misses. */
int lookup_read(client *c, store_txn *t, const char *key, size_t klen, store_obj *o);

/* SCAN-family cursor table. */
uint64_t cursor_save(int db, const char *key, size_t klen, const char *pos, size_t plen);
int cursor_load(uint64_t id, int db, const char *key, size_t klen, buf *pos);

/* SCAN replies: the items are gathered first because the cursor precedes them. */
typedef struct scan_items {
    buf data; /* size_t length, bytes; repeated */
    size_t n;
} scan_items;
void scan_items_init(scan_items *it);
void scan_items_add(scan_items *it, const char *p, size_t n);
void scan_reply(client *c, uint64_t cursor, scan_items *it); /* frees the items */

/* Clears the statistics of every command (CONFIG RESETSTAT). */
void cmdstats_reset(void);
/* Slow log (slowlog.c): records c's current command, which started at start_us (wall
 * clock) and held the loop for dur_us. */
void slowlog_push(client *c, const command *cmd, int64_t start_us, int64_t dur_us);
/* Latency histograms (latency.c): the INFO latencystats section. */
void latency_info_section(buf *b);

/* COMMAND DOCS needs this. */
void docs_reply(client *c, const command *cmd);
/* Appends every INFO section (INFO EVERYTHING's text) to b; the metrics read it (metrics.c). */
void info_render_all(buf *b);

#endif
