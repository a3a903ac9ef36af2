/* store.h: durable storage. Today: the Redis keyspace in one LMDB environment, the single
 * write path with group commit and durability, and the replication-log hook.
 *
 * THE WRITE PATH. Every write (a client command, an expiry, later a replicated command) goes
 * through one sequence, driven by the event loop:
 *   1. store_txn_write() hands out the write transaction of the current loop pass, opening it
 *      on first use. Every write of the pass shares it (group commit).
 *   2. The keyspace functions below apply changes inside it.
 *   3. store_log() appends the command to the replication log, giving it the next offset.
 *   4. store_txn_end() runs once per pass, before any reply of the pass is sent: it commits,
 *      and with `durability always` the commit is on disk before it returns. With `everysec`
 *      a background thread syncs at most a second later; with `no` the OS decides.
 * If the pass cannot commit (disk full, I/O error, a map that cannot grow), store_txn_end()
 * returns the error and the pass's open transaction is dropped: the caller must not
 * acknowledge the pass's writes (the server closes the connections that wrote). A large
 * write may have committed the pass's earlier writes mid-pass to grow the map first; those
 * are kept, but were never acknowledged either.
 *
 * READS use store_txn_read(): the pass's write transaction if one is open (a client sees its
 * own writes), else a read-only snapshot renewed once per pass. Pointers returned by any
 * lookup live until the next write of the pass, the next store_txn_write() (which may grow
 * and remap the map), or store_txn_end(), whichever comes first: copy what a handler needs
 * across a write.
 *
 * THREADS. A store belongs to the event-loop thread: every function here except
 * store_offset() must be called from it. The everysec sync thread is internal.
 *
 * ERRORS. ERR_NOTFOUND (no such key, or it has expired), ERR_WRONGTYPE, ERR_FULL (the map
 * could not grow), ERR_IO (fsync or write failed), ERR_CORRUPT (a record fails its checks or
 * the data directory is of another format), ERR_BACKEND (any other LMDB failure), ERR_EXISTS
 * (two long keys collide on their digest: astronomically unlikely, refused rather than mixed).
 *
 * ON-DISK FORMAT (LMDB named databases; integers little-endian unless noted "be").
 * Enum values are persisted and never change: STORE_STRING = 1, STORE_HASH = 2.
 *
 *  "meta"   key "format"   -> "QVKS" u32 version(1)                        8 bytes
 *           key "counts"   -> 16 x (u64 keys, u64 keys_with_expiry)      256 bytes
 *  "keys"   key: u8 db, key bytes                (1 + len <= STORE_SHORT_MAX)
 *  "lkeys"  key: u8 db, first 480 key bytes, u64 be digest                 489 bytes
 *           value (both):
 *             0   u8   type
 *             1   u8   flags: 1 = has expiry, 2 = full key follows (lkeys only)
 *             2   i64  expire time, ms since epoch              (if flags & 1)
 *             .   u32  key length, then the key                 (if flags & 2)
 *             .   string: the value bytes to the end
 *                 hash:   u64 id, u64 field count
 *  "fields" key: u64 be hash id, field bytes     (8 + len <= STORE_SHORT_MAX) -> value bytes
 *  "lfields" key: u64 be id, first 480 field bytes, u64 be digest
 *            -> u32 field length, field, value bytes
 *  "expires" key: u8 db, u64 be expire ms, u8 1 if long key, stored key -> empty
 * A hash id is never reused while the hash lives; new ids start past the largest in use. */
#ifndef QUIVER_STORE_H
#define QUIVER_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_DBS 16
#define STORE_SHORT_MAX 500 /* longest stored key kept verbatim; longer ones are digested */

enum { STORE_NONE = 0, STORE_STRING = 1, STORE_HASH = 2 };
enum { DURABILITY_NO = 0, DURABILITY_EVERYSEC = 1, DURABILITY_ALWAYS = 2 };

typedef struct store store;
typedef struct store_txn store_txn;
typedef struct store_iter store_iter;

typedef struct store_config {
    const char *dir;  /* created if missing */
    size_t map_size;  /* initial LMDB map size in bytes; grown by doubling as needed */
    int durability;   /* DURABILITY_* */
} store_config;

/* A key's metadata and, for strings, its value (pointer valid until store_txn_end()). */
typedef struct store_obj {
    int type;          /* STORE_STRING or STORE_HASH */
    int64_t expire_ms; /* 0 when the key does not expire */
    const char *val;   /* string bytes */
    size_t len;        /* string length, or number of hash fields */
    uint64_t id;       /* hash id */
} store_obj;

/* Called for every key the store deletes because it expired (lazily inside a write, or by
 * store_expire_cycle), so the caller can log a DEL for replicas and touch WATCHers. */
typedef void (*store_expired_fn)(void *ctx, int db, const char *key, size_t klen);
/* The replication hook: sees every logged command with its end offset. */
typedef void (*store_log_fn)(void *ctx, uint64_t offset, int db, int argc,
                             const char *const *argv, const size_t *lens);

/* Opens or creates the environment in cfg->dir. Errors: ERR_IO (detail in err),
 * ERR_CORRUPT (not a Quiver data directory of a known version), ERR_BACKEND. */
int store_open(const store_config *cfg, store **out, char *err, size_t errlen);
/* Ends any pass (committing it), syncs to disk, closes. */
void store_close(store *st);
int store_set_durability(store *st, int durability);
void store_set_expired_hook(store *st, store_expired_fn fn, void *ctx);
void store_set_log_hook(store *st, store_log_fn fn, void *ctx);

/* Pass transactions: see the file comment. hint_bytes is how much the caller is about to
 * write (0 if small); the store uses it to grow the map ahead of a large write. */
int store_txn_read(store *st, store_txn **out);
int store_txn_write(store *st, size_t hint_bytes, store_txn **out);
int store_txn_end(store *st);
/* 1 if the pass has an open write transaction (someone wrote). */
int store_txn_dirty(const store *st);

/* The replication log: appends a command executed against db; returns its end offset. */
uint64_t store_log(store *st, int db, int argc, const char *const *argv, const size_t *lens);
uint64_t store_offset(const store *st);

/* Keyspace. now_ms decides expiry: a key whose expire time is <= now_ms does not exist. */
int store_lookup(store_txn *t, int db, const char *key, size_t klen, int64_t now_ms,
                 store_obj *out);
/* Replaces whatever key is there by a string; expire_ms 0 = no expiry. */
int store_set_string(store_txn *t, int db, const char *key, size_t klen, const char *val,
                     size_t vlen, int64_t expire_ms, int64_t now_ms);
/* Deletes a key of any type; *deleted = 0 when it did not exist (or had expired). */
int store_delete(store_txn *t, int db, const char *key, size_t klen, int64_t now_ms,
                 int *deleted);
/* Sets (expire_ms > 0) or removes (0) a key's expiry. ERR_NOTFOUND if no key. */
int store_set_expire(store_txn *t, int db, const char *key, size_t klen, int64_t expire_ms,
                     int64_t now_ms);
/* Moves src to dst (replacing dst), keeping value, type and expiry. ERR_NOTFOUND. */
int store_rename(store_txn *t, int db, const char *src, size_t slen, const char *dst,
                 size_t dlen, int64_t now_ms);

/* Hashes. store_hash_get takes the hash's store_obj from store_lookup. */
int store_hash_get(store_txn *t, const store_obj *h, const char *field, size_t flen,
                   const char **val, size_t *vlen);
/* Creates the hash if missing; ERR_WRONGTYPE on a string. *added = 1 for a new field. */
int store_hash_set(store_txn *t, int db, const char *key, size_t klen, const char *field,
                   size_t flen, const char *val, size_t vlen, int64_t now_ms, int *added);
/* Removes a field; the hash goes when its last field does. *removed = 0 if absent. */
int store_hash_del(store_txn *t, int db, const char *key, size_t klen, const char *field,
                   size_t flen, int64_t now_ms, int *removed);

/* Iteration in stored order (short keys first, then digested long ones). An iterator
 * lives within one pass. `from` is an opaque position from store_iter_pos (NULL = start).
 * store_iter_next returns ERR_NOTFOUND at the end; expired keys are skipped. */
int store_iter_keys(store_txn *t, int db, const char *from, size_t flen, int64_t now_ms,
                    store_iter **out);
int store_iter_next(store_iter *it, const char **key, size_t *klen, store_obj *obj);
int store_iter_fields(store_txn *t, const store_obj *h, const char *from, size_t flen,
                      store_iter **out);
int store_iter_next_field(store_iter *it, const char **field, size_t *flen, const char **val,
                          size_t *vlen);
/* The position just after the last returned item (copy it: valid until the next call). */
void store_iter_pos(const store_iter *it, const char **pos, size_t *len);
void store_iter_free(store_iter *it);

/* Deletes every key of db, or of all databases when db < 0. */
int store_flush(store_txn *t, int db);
/* Deletes up to max keys whose expiry is <= now_ms; *more = 1 if due keys remain. */
int store_expire_cycle(store_txn *t, int64_t now_ms, int max, int *more);

uint64_t store_dbsize(const store *st, int db);
uint64_t store_expires(const store *st, int db);

/* Figures for INFO persistence and memory. */
typedef struct store_stats {
    size_t map_size, used_bytes;
    uint64_t commits, syncs, last_sync_ms, failed_commits;
    int durability;
} store_stats;
void store_get_stats(const store *st, store_stats *out);

#endif
