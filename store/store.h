/* store.h: durable storage. Today: the Redis keyspace in one LMDB environment, the single
 * write path with group commit and durability, the replication-log hook, and the feature
 * store: its catalog and online rows in the same LMDB environment, its offline history in
 * RocksDB (<dir>/history), both committed by that one write path.
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
 * STORAGE FULL. The map grows by doubling, up to max_map_size when one is set; an existing
 * data file larger than the cap keeps its size. Once the map can grow no more (the cap, or
 * a disk too full to back it), store_txn_write refuses with ERR_FULL, before anything is
 * written, a write whose announced bytes (twice the hint, plus 1 MiB of headroom) do not
 * fit in the map's free room (never-used pages plus LMDB's free list). A write that
 * announces nothing (a delete, an expiry, FLUSHDB) needs only 256 KiB, so deleting still
 * works on a full map and frees room for later writes.
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
 *           key "aux" 0 ns 0 key -> the owner's bytes (see AUX RECORDS)
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
 * A hash id is never reused while the hash lives; new ids start past the largest in use.
 *
 * The feature store (enums: see PERSISTED ENUMS and the STORE_KEY_, STORE_METRIC_ and
 * STORE_VINDEX_ values below). A name is u8 length then its bytes. Every catalog record
 * starts with u8 version (1) and ends with u32 CRC32C of all the bytes before it.
 *  "catalog" key "#view_id" -> u32 next view id (>= 1), u32 CRC32C of it      8 bytes
 *           key 'e' name (entity):
 *             0   u8   version      1   u8   key type      2   u32  description length
 *             6   description bytes, then the CRC32C
 *           key 'v' name (view):
 *             0   u8   version      1   u32  view id       5   i64  created, ms
 *             13  i64  ttl_us       21  i64  retention_us  29  u8   online (0/1)
 *             30  u16  entity count n, then n x (name, u8 key type)
 *             .   u16  field count m, then m x (name, u8 FT_ type, u32 VECTOR dim,
 *                      u8 metric, u8 vector index, u32 M, u32 EF_CONSTRUCTION; the last
 *                      five 0 unless VECTOR), then the CRC32C
 *           key 's' name (service):
 *             0   u8   version      1   u32  feature count n
 *             5   n x (view name, field name or a single 0 byte = every field), CRC32C
 *  "online" key: u32 be view id, entity key -> i64 event_us, i64 created_us, row */
#ifndef QUIVER_STORE_H
#define QUIVER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

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
    size_t max_map_size; /* the map never grows past this (0 = no cap); see STORAGE FULL */
    size_t hist_cache_bytes; /* the history's block cache (0 = store_hist_open's default) */
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
/* Brackets a multi-command transaction (EXEC): on = 1 first makes room for hint_bytes
 * (growing, and so committing what the pass had, now), then no write commits mid-pass
 * until on = 0, so that the transaction's commands commit together or not at all. */
void store_txn_hold(store *st, size_t hint_bytes, int on);
/* 1 if the pass has an open write transaction (someone wrote). */
int store_txn_dirty(const store *st);

/* The replication log: appends a command executed against db; returns its end offset. */
uint64_t store_log(store *st, int db, int argc, const char *const *argv, const size_t *lens);
uint64_t store_offset(const store *st);

/* REPLICATION STATE. Every commit also writes meta key "repl" (52 bytes: the 40-char
 * replication id, u64 offset, i32 database the log last SELECTed or -1), the log position
 * its data corresponds to, so that a restart keeps its place in the stream; store_open()
 * starts the log there. A pass that fails to commit rewinds the offset to the last commit.
 * The commit hook hears each commit (ok = 1, the offset committed; also a mid-pass commit)
 * and each failed pass (ok = 0, the offset rewound to): what was logged since the last
 * commit is then undone. */
typedef void (*store_commit_fn)(void *ctx, int ok, uint64_t offset);
void store_set_commit_hook(store *st, store_commit_fn fn, void *ctx);
/* The persisted replication id (41 bytes with NUL; "" when none was ever set). */
const char *store_replid(const store *st);
/* Sets the replication id written by the following commits. */
void store_set_replid(store *st, const char *replid);
/* Moves the log to offset with db as its last SELECTed database (-1: the next logged
 * command SELECTs): a replica follows its leader's offsets, a leader re-SELECTs for a new
 * replica. */
void store_set_log_position(store *st, uint64_t offset, int db);
int store_log_db(const store *st);

/* SNAPSHOTS for a replica's full sync (snap.c). store_snap_begin, on the loop thread
 * between passes (nothing uncommitted; ERR_AGAIN otherwise), opens a read transaction and
 * writes a RocksDB checkpoint of the history to ckpt_dir, both of the same committed state.
 * The snapshot may then be read on any one thread: store_snap_next walks every record of
 * every LMDB named database (in store_snap_dbs order, keys ascending) and returns
 * ERR_NOTFOUND at the end; pointers live until the next call. While a snapshot is open the
 * map does not grow unless it must (a write then fails with ERR_FULL rather than remap
 * under the reader). store_snap_end closes it (any thread). */
typedef struct store_snap store_snap;
int store_snap_begin(store *st, const char *ckpt_dir, store_snap **out, char *err,
                     size_t errlen);
int store_snap_next(store_snap *s, const char **db, const void **key, size_t *klen,
                    const void **val, size_t *vlen);
size_t store_snap_used_bytes(const store_snap *s);
void store_snap_end(store_snap *s);
/* The loader of a snapshot into a fresh directory (a replica's sync.tmp): store_load_put
 * takes each LMDB record in the order store_snap_next gave them (ERR_CORRUPT for an
 * unknown db name or a key out of order); store_load_end commits and syncs everything
 * (commit = 0 abandons it). Any one thread. */
typedef struct store_loader store_loader;
int store_load_begin(const char *dir, size_t map_size, store_loader **out, char *err,
                     size_t errlen);
int store_load_put(store_loader *l, const char *db, const void *key, size_t klen,
                   const void *val, size_t vlen);
int store_load_end(store_loader *l, int commit);

/* While paused, lookups and writes count no key as expired, whatever now_ms they are
 * given: a replica applies its leader's writes to the keys as the leader saw them (the
 * leader's DELs expire them), not as its own clock would. */
void store_pause_expiry(store *st, int paused);

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
/* 1 if some key's expiry is <= now_ms (a read: lets the cron skip an empty write). */
int store_expire_due(store_txn *t, int64_t now_ms);
/* Deletes up to max keys whose expiry is <= now_ms; *more = 1 if due keys remain. */
int store_expire_cycle(store_txn *t, int64_t now_ms, int max, int *more);

uint64_t store_dbsize(const store *st, int db);
uint64_t store_expires(const store *st, int db);

/* AUX RECORDS (aux.c): small records another module persists through this write path (FT
 * index definitions): in "meta" under the key "aux" NUL ns NUL key, where ns is 1 to 32
 * bytes without NUL (the owner's namespace) and key 1 to 400 bytes; the value's format is
 * the owner's (its header documents it). put and del need the pass's write transaction;
 * next returns the first record of ns after `after` (NULL: the first) in key order, and
 * ERR_NOTFOUND past the last. Pointers live as lookups' do (see READS). Errors: ERR_INVAL
 * (bounds, or a read transaction), ERR_NOTFOUND, and the storage errors. */
int store_aux_put(store_txn *t, const char *ns, const char *key, size_t klen, const void *val,
                  size_t vlen);
int store_aux_get(store_txn *t, const char *ns, const char *key, size_t klen, const char **val,
                  size_t *vlen);
int store_aux_del(store_txn *t, const char *ns, const char *key, size_t klen);
int store_aux_next(store_txn *t, const char *ns, const char *after, size_t alen,
                   const char **key, size_t *klen, const char **val, size_t *vlen);

/* Figures for INFO persistence and memory. */
typedef struct store_stats {
    size_t map_size, used_bytes;
    uint64_t commits, syncs, last_sync_ms, failed_commits;
    int durability;
} store_stats;
void store_get_stats(const store *st, store_stats *out);

/* ==== FEATURE STORE PIECES ================================================================
 * Typed feature values (parsing client strings, ISO-8601 and epoch timestamps) with their
 * persisted row format (values.c), and the offline history in RocksDB (history.c). These
 * stand alone (a test drives a history handle without a store); the store ties them
 * together with its catalog and online rows under THE FEATURE STORE below.
 *
 * THREADING. Values and rows are plain data (any thread). A history handle may be used from
 * several threads at once (RocksDB is thread-safe); a batch or iterator by one at a time.
 *
 * ERRORS. ERR_INVAL (bad client input: detail in the caller's buffer, naming the value),
 * ERR_CORRUPT (stored bytes fail their checks), ERR_NOTFOUND, ERR_IO / ERR_BACKEND
 * (RocksDB's error text, converted once in history.c), ERR_NOMEM, ERR_RANGE.
 *
 * TIME. Every timestamp is int64 microseconds since the Unix epoch (UTC). Clients give
 * integer milliseconds, or ISO-8601 ("2021-04-12T10:59:42.123456Z", "2021-04-12 10:59:42",
 * "+02:00" offsets, up to 9 fraction digits, truncated to microseconds).
 *
 * PERSISTED ENUMS (never renumbered): FT_INT32 1, FT_INT64 2, FT_FLOAT32 3, FT_FLOAT64 4,
 * FT_BOOL 5, FT_STRING 6, FT_BYTES 7, FT_TIMESTAMP 8, FT_VECTOR 9.
 *
 * ROW FORMAT (version 1): the values of one row in schema order.
 *   0   u8   version (1)
 *   1   u16  field count n (little-endian)
 *   3   ceil(n/8) bytes: null bitmap, bit i set = field i is NULL
 *   .   the non-NULL values in order:
 *         INT32/FLOAT32 4 bytes, INT64/FLOAT64/TIMESTAMP 8 bytes (little-endian), BOOL 1,
 *         STRING/BYTES: varint length (LEB128) then bytes,
 *         VECTOR: dim float32 (dim from the schema)
 *   end  u32 CRC32C of all preceding bytes
 *
 * HISTORY KEYS (RocksDB, one column family per view, named "v<view id>"):
 *   u16 be entity key length, entity key bytes, u64 be ~(event_us ^ 2^63),
 *   u64 be ~(created_us ^ 2^63)
 * so an entity's rows sort newest event first, ties newest created first, and one Seek to
 * (entity, t, newest created) lands on the row that was current at time t. The value is a
 * row. A compaction filter drops rows whose event time is older than the view's retention.
 */
enum {
    FT_INT32 = 1, FT_INT64 = 2, FT_FLOAT32 = 3, FT_FLOAT64 = 4, FT_BOOL = 5,
    FT_STRING = 6, FT_BYTES = 7, FT_TIMESTAMP = 8, FT_VECTOR = 9,
};

#define FT_MAX_VECTOR_DIM 65536
#define FT_MAX_FIELDS 4096

typedef struct store_ftype {
    int type;     /* FT_* */
    uint32_t dim; /* VECTOR only */
} store_ftype;

/* One value. Pointers (str, vec) borrow from whatever was parsed or decoded. */
typedef struct store_fvalue {
    int is_null;
    int64_t i;         /* INT32, INT64, BOOL (0/1), TIMESTAMP (us) */
    double f;          /* FLOAT32, FLOAT64 */
    const char *bytes; /* STRING, BYTES: the bytes; VECTOR: dim little-endian float32 */
    size_t len;
} store_fvalue;

/* "INT64" -> FT_INT64 (case-insensitive); 0 if unknown. And back (upper case). */
int store_ftype_parse(const char *name, size_t len);
const char *store_ftype_name(int type);

/* Parses a timestamp as described under TIME. ERR_INVAL with detail. */
int store_parse_ts(const char *s, size_t len, int64_t *us, char *err, size_t errlen);
/* Formats us as ISO-8601 UTC with microseconds ("2021-04-12T10:59:42.123456Z"). buf >= 32. */
size_t store_format_ts(int64_t us, char *buf);

/* Parses a client's bytes as a value of type t: integers strictly (INT32 range checked),
 * floats finite, BOOL as 1/0/true/false, TIMESTAMP as store_parse_ts, VECTOR as exactly dim*4
 * raw bytes. STRING/BYTES/VECTOR borrow s. ERR_INVAL: err names what was wrong. */
int store_parse_value(const store_ftype *t, const char *s, size_t len, store_fvalue *out, char *err,
                   size_t errlen);

/* Row codec (see ROW FORMAT). encode appends to out and trusts its input (values parsed by
 * store_parse_value, n <= FT_MAX_FIELDS); ERR_NOMEM leaves out as it was. decode fills
 * vals[0..n) borrowing from p (valid while p is) and returns ERR_CORRUPT on any
 * inconsistency: version, count, lengths, CRC, trailing bytes, set padding bits in the
 * bitmap, a BOOL other than 0/1, a non-finite float, a non-minimal varint. It never reads out of bounds, and decode-then-encode gives back the
 * same bytes. A string of digits is always milliseconds ("2021" is 2021 ms, not a year). */
int store_row_encode(const store_ftype *schema, int n, const store_fvalue *vals, buf *out);
int store_row_decode(const store_ftype *schema, int n, const char *p, size_t len, store_fvalue *vals);

/* ---- offline history (RocksDB) ---------------------------------------------------- */

typedef struct store_hist store_hist;
typedef struct store_hbatch store_hbatch;
typedef struct store_hiter store_hiter;

/* Opens (creating) the RocksDB database in dir with every existing view column family.
 * cache_bytes: the block cache that every view's reads share (uncompressed blocks; 0 = 64
 * MiB). A join reads every block of its entities, so history that fits is read from memory
 * instead of decompressed again for each join. */
int store_hist_open(const char *dir, size_t cache_bytes, store_hist **out, char *err,
                    size_t errlen);
void store_hist_close(store_hist *h);
/* Creates the view's column family (ERR_EXISTS if there). retention_us 0 = keep forever;
 * can be changed later with store_hist_set_retention (takes effect at compactions).
 * Retention is not persisted here: after store_hist_open every view keeps everything until
 * the catalog (its owner) sets it again. Negative retention: ERR_INVAL. RocksDB's error
 * text for these calls goes to the log. */
int store_hist_create_view(store_hist *h, uint32_t view, int64_t retention_us);
int store_hist_set_retention(store_hist *h, uint32_t view, int64_t retention_us);
/* Drops the view's column family and all its rows. ERR_NOTFOUND. */
int store_hist_drop_view(store_hist *h, uint32_t view);

/* Writes are batched; a batch is applied atomically, or not at all: a batch naming a view
 * dropped since its put is refused whole (ERR_NOTFOUND). sync = fsync the RocksDB WAL
 * first. A written batch is emptied for reuse; a refused one keeps its rows. A batch must
 * not outlive the handle it was filled from; put on an unknown view is ERR_NOTFOUND and an
 * entity key over 65535 bytes ERR_INVAL. Ascending ranges are the exact reverse of
 * descending ones (oldest event, then oldest created, first). */
store_hbatch *store_hbatch_new(void);
void store_hbatch_free(store_hbatch *b);
size_t store_hbatch_count(const store_hbatch *b);
int store_hbatch_put(store_hbatch *b, store_hist *h, uint32_t view, const char *entity, size_t elen,
                  int64_t event_us, int64_t created_us, const char *row, size_t rowlen);
int store_hist_write(store_hist *h, store_hbatch *b, int sync, char *err, size_t errlen);

/* The row current at time t for entity: largest event_us <= t, ties by largest created_us,
 * ignoring rows with event_us < min_event_us (TTL windows; INT64_MIN = none). The row bytes
 * are copied into row (cleared first). ERR_NOTFOUND when none qualifies. */
int store_hist_asof(store_hist *h, uint32_t view, const char *entity, size_t elen, int64_t t,
                    int64_t min_event_us, int64_t *event_us, int64_t *created_us, buf *row);

/* An entity's rows with from <= event_us <= to, newest first (or oldest first with asc).
 * store_hiter_next returns ERR_NOTFOUND at the end; pointers live until the next call. */
int store_hist_range(store_hist *h, uint32_t view, const char *entity, size_t elen,
                     int64_t from, int64_t to, int asc, store_hiter **out);
int store_hiter_next(store_hiter *it, int64_t *event_us, int64_t *created_us, const char **row,
                  size_t *rowlen);
void store_hiter_free(store_hiter *it);

/* Writes a consistent copy of the whole history (hard links where it can) into dir, which
 * must not exist, for a replica's full sync. ERR_IO, ERR_BACKEND with err filled. */
int store_hist_checkpoint(store_hist *h, const char *dir, char *err, size_t errlen);

/* Forces a compaction of the view (retention applies), for tests and operators. */
int store_hist_compact(store_hist *h, uint32_t view);

/* A cursor over one view's history for scans and joins, reading one consistent snapshot
 * taken at store_hcur_new (later writes are invisible to it). Usable from any one thread at
 * a time; the view may be dropped meanwhile (the cursor keeps reading its snapshot). */
typedef struct store_hcur store_hcur;
int store_hcur_new(store_hist *h, uint32_t view, store_hcur **out); /* ERR_NOTFOUND */
void store_hcur_free(store_hcur *c);
/* Positions on entity's newest row with event_us <= t (ties: newest created).
 * ERR_NOTFOUND when the entity has no such row (the cursor is then unpositioned);
 * ERR_INVAL for an entity over 65535 bytes. */
int store_hcur_seek(store_hcur *c, const char *entity, size_t elen, int64_t t);
/* Steps to the next older row of the same entity; ERR_NOTFOUND past its oldest (the entity
 * stays the current one for store_hcur_next_entity). */
int store_hcur_next(store_hcur *c);
/* Positions on the newest row of the first entity after the current one (the first
 * entity of the view when unpositioned). ERR_NOTFOUND past the last entity. */
int store_hcur_next_entity(store_hcur *c);
/* The row under a positioned cursor; pointers live until the cursor moves. */
void store_hcur_row(const store_hcur *c, const char **entity, size_t *elen, int64_t *event_us,
                    int64_t *created_us, const char **row, size_t *rowlen);
/* The ids of the views that have a column family (for reconciling with the catalog):
 * fills up to max ids, returns how many exist. */
int store_hist_views(store_hist *h, uint32_t *ids, int max);

/* ==== THE FEATURE STORE: CATALOG, ONLINE ROWS, THE WRITE PATH =============================
 * The store owns the catalog and the history handle: store_open() opens the RocksDB
 * history in <dir>/history, loads the catalog from LMDB, gives every view its retention,
 * and drops column families that no catalog view owns (left by a crash between a create and
 * its commit, or between a drop's commit and its column family drop).
 *
 * CATALOG. Entities, views and services live in LMDB (dbi "catalog") and, decoded, in
 * memory: the getters below return pointers into that copy, valid until the next catalog
 * change or store_txn_end() (a failed commit reloads the catalog from LMDB, which undoes the
 * pass's changes). Copy what must live longer (a worker thread copies what it reads).
 * Changes are made inside the pass's write transaction, like every write. View ids are
 * never reused (a counter in the catalog), so a dropped view's rows never reappear under a
 * new one. Names are 1 to 255 bytes of printable ASCII without spaces or ':' (field names
 * too). Errors: ERR_EXISTS, ERR_NOTFOUND (naming what is missing in err), ERR_INVAL (err
 * names the argument), ERR_PERM (dropping what another object uses: err says which),
 * ERR_NOMEM (no memory for the record: nothing changed), ERR_LIMIT (view ids exhausted), and
 * the storage errors. A change in a poisoned pass returns the pass's error.
 *
 * ENTITY KEYS. A view keyed by entities (e1..en) stores an entity key as the n values, each
 * as u16 be length then bytes (at most STORE_EKEY_MAX bytes in all). Clients write one
 * argument with the values joined by ':' in ENTITIES order; a ':' or '\' inside a value is
 * written "\:" or "\\". An INT64 entity's value must be a canonical integer ("42", "-7").
 *
 * ONLINE ROWS (LMDB dbi "online"): key u32 be view id, stored entity key; value i64 event_us,
 * i64 created_us, row. A row is replaced when the new (event_us, created_us) is >= the
 * stored one (an equal pair replaces, as the same history key is overwritten). The online
 * functions refuse a stored entity key of 0 or over STORE_EKEY_MAX bytes (ERR_INVAL).
 *
 * THE WRITE PATH. store_fs_push() appends to the pass's history batch and writes the online
 * row in the pass's LMDB transaction. At commit the history batch is written first (synced
 * under `durability always`), then LMDB commits, then dropped views' column families go. A
 * crash between the two commits would leave history rows whose online row was not updated
 * (their pushes were never acknowledged): each history write carries the HISTORY JOURNAL of
 * its pass, and store_open() writes the rows of a journal newer than LMDB's last committed
 * pass onto their online rows, so such a push is applied to both (its pass's other LMDB
 * writes are not). A read of history in the middle of a pass first writes the pass's
 * pending batch (store_history()), so a client reads its own pushes. A pass that fails
 * (rather than crashes) after rows of it reached RocksDB (a mid-pass read, or an LMDB
 * commit that failed after the history write) deletes them again, with its journal, so
 * history keeps only committed pushes (a row that had overwritten an identical history key
 * is deleted, not restored; if RocksDB refuses the deletes too, the rows stay and a warning
 * is logged).
 *
 * HISTORY JOURNAL (RocksDB default column family, key "journal"; replaced by every history
 * write of a pass that pushed a row to both history and online):
 *    0   4   magic "QVHJ"          4   u8   version (1)        5   u64 be pass number
 *    13  ... per such row: u32 be view id, u32 be history key length, the history key
 *    end-4   u32 be CRC32C of every byte before it
 * LMDB meta key "hpass" holds the u64 be pass number of the last journal whose LMDB commit
 * happened (written by that commit). Pass numbers only grow (the next one is past both). */

#define STORE_EKEY_MAX 500
#define STORE_NAME_MAX 255

enum { STORE_KEY_STRING = 1, STORE_KEY_INT64 = 2 };                /* persisted */
enum { STORE_METRIC_L2 = 1, STORE_METRIC_IP = 2, STORE_METRIC_COSINE = 3 };       /* persisted */
enum { STORE_VINDEX_NONE = 0, STORE_VINDEX_HNSW = 1, STORE_VINDEX_FLAT = 2 };    /* persisted */

typedef struct store_entity {
    char *name;
    int key_type; /* STORE_KEY_* */
    char *description; /* "" when none */
    size_t description_len; /* it may hold NUL bytes */
} store_entity;

typedef struct store_field {
    char *name;
    store_ftype type;
    /* VECTOR only (defaults: L2, HNSW, 16, 200) */
    int metric, vindex;
    uint32_t m, ef_construction;
} store_field;

typedef struct store_view {
    char *name;
    uint32_t id;
    int nentities;
    char **entities;   /* entity names, in ENTITIES order */
    int *key_types;    /* their STORE_KEY_* */
    int64_t ttl_us;    /* 0 = no limit */
    int64_t retention_us; /* 0 = forever */
    int online;
    int nfields;
    store_field *fields;
    store_ftype *schema; /* the fields' types, for store_row_encode/decode */
    int64_t created_ms;
} store_view;

/* One feature of a service: a view's field, or every field of the view (field NULL). */
typedef struct store_feature_ref {
    char *view;
    char *field;
} store_feature_ref;

typedef struct store_service {
    char *name;
    int n;
    store_feature_ref *features;
} store_service;

int store_entity_create(store_txn *t, const char *name, size_t len, int key_type,
                        const char *desc, size_t dlen, char *err, size_t errlen);
/* ERR_PERM while a view uses the entity. */
int store_entity_drop(store_txn *t, const char *name, size_t len, char *err, size_t errlen);
/* spec->name, entities, ttl_us, retention_us, online, nfields and fields are read (id,
 * key_types, schema and created_ms are filled by the store). Checks: 1 to STORE_EKEY_MAX/2
 * entities that exist and are distinct, 1 to FT_MAX_FIELDS fields with distinct names and
 * known types, ttl and retention >= 0; a VECTOR field has dim 1 to FT_MAX_VECTOR_DIM, a
 * known metric and vindex, M 2 to 1024 and EF_CONSTRUCTION 1 to 100000, where metric, M
 * and EF_CONSTRUCTION 0 take the defaults (vindex is kept as given: 0 is NONE). The view's
 * column family is created at once (and dropped again if the pass fails). */
int store_view_create(store_txn *t, const store_view *spec, char *err, size_t errlen);
/* Removes the view, its online rows and (after the commit) its history. ERR_PERM while a
 * service uses it. */
int store_view_drop(store_txn *t, const char *name, size_t len, char *err, size_t errlen);
/* Every feature must exist (a view, and a field of it unless field is NULL). */
int store_service_create(store_txn *t, const char *name, size_t len, int n,
                         const store_feature_ref *features, char *err, size_t errlen);
int store_service_drop(store_txn *t, const char *name, size_t len, char *err, size_t errlen);

/* Lookups and listings (in name order) of the in-memory catalog; NULL when absent. */
const store_entity *store_entity_get(const store *st, const char *name, size_t len);
const store_view *store_view_get(const store *st, const char *name, size_t len);
const store_service *store_service_get(const store *st, const char *name, size_t len);
int store_entity_count(const store *st);
const store_entity *store_entity_at(const store *st, int i);
int store_view_count(const store *st);
const store_view *store_view_at(const store *st, int i);
int store_service_count(const store *st);
const store_service *store_service_at(const store *st, int i);
/* The index of a field of v by name, or -1. */
int store_view_field(const store_view *v, const char *name, size_t len);

/* Entity keys (see ENTITY KEYS). build: from v->nentities separate values; parse: from a
 * client's composite argument. Both replace out's contents; ERR_INVAL with err naming the
 * bad value (wrong count of parts, not an INT64, too long). format: back to the client form
 * (appended to out). */
int store_ekey_build(const store_view *v, const char *const *parts, const size_t *lens, buf *out,
                     char *err, size_t errlen);
int store_ekey_parse(const store_view *v, const char *arg, size_t len, buf *out, char *err,
                     size_t errlen);
void store_ekey_format(const char *ekey, size_t elen, buf *out);

/* FS.PUSH's writes: the row (already encoded with v->schema) goes to the pass's history
 * batch when to_offline, and replaces the online row (see ONLINE ROWS) when to_online and
 * v->online. *online_replaced (may be NULL) tells whether it did. t must be the pass's write
 * transaction; an ekey of 0 or over STORE_EKEY_MAX bytes is ERR_INVAL. */
int store_fs_push(store_txn *t, const store_view *v, const char *ekey, size_t elen,
                  int64_t event_us, int64_t created_us, const char *row, size_t rowlen,
                  int to_online, int to_offline, int *online_replaced);
/* The online row of (v, ekey); ERR_NOTFOUND. row borrows from LMDB (see READS above). */
int store_online_get(store_txn *t, const store_view *v, const char *ekey, size_t elen,
                     int64_t *event_us, int64_t *created_us, const char **row, size_t *rowlen);
/* Replaces the online row if (event_us, created_us) is >= the stored one (MATERIALIZE). */
int store_online_put(store_txn *t, const store_view *v, const char *ekey, size_t elen,
                     int64_t event_us, int64_t created_us, const char *row, size_t rowlen,
                     int *replaced);
/* Number of online rows of v (a count of the view's key range). */
int store_online_count(store_txn *t, const store_view *v, uint64_t *n);

/* The online rows of v in stored entity-key order, for rebuilding what follows them (the
 * vector indexes of FS.KNN). The iterator lives within t and the pass; what next returns
 * lives until the next call. next gives ERR_NOTFOUND past the last row and ERR_CORRUPT for
 * a stored value too short to hold its times. */
typedef struct store_oiter store_oiter;
int store_online_iter(store_txn *t, const store_view *v, store_oiter **out);
int store_oiter_next(store_oiter *it, const char **ekey, size_t *elen, int64_t *event_us,
                     int64_t *created_us, const char **row, size_t *rowlen);
void store_oiter_free(store_oiter *it);

/* The online-row hook: lets the owner of state derived from the online rows (FS.KNN's
 * vector indexes) follow them. One hook per store; it runs on the loop thread, inside the
 * write path, and must not write through the store:
 *   STORE_ONLINE_PUT     after (view, ekey)'s row was written (added or replaced) in t, by
 *                        store_fs_push or store_online_put; row is the new row (ROW FORMAT).
 *   STORE_ONLINE_DROP    after every online row of view_id was deleted in t (the view is
 *                        being dropped); view, ekey and row are NULL.
 *   STORE_ONLINE_COMMIT  after the pass's writes so far committed (also a mid-pass commit
 *                        made to grow the map).
 *   STORE_ONLINE_ABORT   after a pass failed to commit: every PUT and DROP since the last
 *                        COMMIT was undone, and the catalog reloaded.
 * t (PUT and DROP: the pass's write transaction, which the hook may read through) and
 * everything the event points to are valid only during the call; COMMIT and ABORT carry
 * no t, view or row. */
enum { STORE_ONLINE_PUT = 1, STORE_ONLINE_DROP, STORE_ONLINE_COMMIT, STORE_ONLINE_ABORT };
typedef struct store_online_event {
    int kind; /* STORE_ONLINE_* */
    store_txn *t;
    uint32_t view_id;
    const store_view *view;
    const char *ekey, *row;
    size_t elen, rowlen;
    int64_t event_us, created_us;
} store_online_event;
typedef void (*store_online_fn)(void *ctx, const store_online_event *e);
void store_set_online_hook(store *st, store_online_fn fn, void *ctx);

/* The history handle, after writing the pass's pending history batch (so reads see this
 * pass's pushes). On a write failure the pass is poisoned and the error returned (*out is
 * set either way; in a pass already poisoned nothing is written). */
int store_history(store *st, store_hist **out);

/* HISTORY FAILURES. When RocksDB fails a write (an I/O error: disk full, a file past
 * RLIMIT_FSIZE), the pass fails as any failed commit does, and RocksDB stops taking writes
 * (its background-error mode, which only a restart clears: RocksDB 7.8's C API has no
 * Resume). From then on store_fs_push refuses every push that writes history with that
 * error (ERR_IO or ERR_BACKEND) before changing anything, and store_history_error gives the
 * text for the client; pushes TO ONLINE, the keyspace and every read go on. An empty write
 * probes RocksDB at most once a second: if it is taken, pushes are accepted again.
 * store_history_error returns NULL while history writes work. */
const char *store_history_error(store *st);

/* Figures for INFO featurestore. */
typedef struct store_fs_stats {
    uint64_t pushes, history_batches, history_rows, history_write_errors;
} store_fs_stats;
void store_get_fs_stats(const store *st, store_fs_stats *out);


#endif
