/* ft.h: RediSearch-compatible indexes over hashes (FT.*), shared by the files of query/ that
 * build them (ft_def.c: definitions parsed, persisted and read back, snapshot files;
 * ft_index.c: the registry, the document table, TAG and NUMERIC attribute indexes, keeping
 * everything in step with writes, snapshot bytes; ft_build.c: scans, the build worker,
 * background snapshots, start and shutdown; ft_query.c: the query language; cmd_ft.c: the
 * commands) and by core/server.c (start, cron, shutdown).
 *
 * AN INDEX covers the hashes of one database whose key starts with one of its prefixes
 * (none: every key). Each such hash is a document with a dense uint32 id (a freed id is
 * reused), and its schema fields feed: a vector index per VECTOR field (index/index.h), a
 * posting list per tag value per TAG field, a value column per NUMERIC field. TEXT fields
 * are accepted and returned but not full-text searched. A document whose VECTOR blob has
 * the wrong size (or is not finite, or is a zero vector under COSINE) or whose NUMERIC
 * value is not a number is counted in hash_indexing_failures and not indexed, as RediSearch
 * does.
 *
 * KEEPING IN STEP. Every change to a key (HSET, HDEL, DEL, EXPIRE's expiry, RENAME, SET over
 * a hash, FLUSHDB, ...) reaches ft_key_changed() / ft_key_gone() / ft_flushed() from the
 * dispatcher, which re-read the hash and update each matching index at once. A pass that
 * fails to commit leaves the indexes ahead of the data: the next cron tick sees the
 * server's failed-pass count move, makes the set of indexes match the committed
 * definitions (an FT.CREATE or FT.DROPINDEX of that pass is undone) and re-reads every
 * index's hashes (a scan that also removes the documents it no longer finds).
 *
 * BUILDS. Creating an index over existing keys, and every start, scans the database in
 * slices from the cron (a position is kept between passes); vector additions of a scan go
 * to a FIFO that one worker thread (server_spawn) drains, while later writes queue behind
 * them, so the order of changes is kept. Small builds are finished inside FT.CREATE. While
 * an index builds, FT.INFO says indexing 1 and percent_indexed; searches see what is
 * indexed so far. With the GPU on, a scan that fills an empty HNSW field with at least
 * gpu-build-min-vectors vectors builds it in bulk instead (ft_bulk.c): the worker gathers
 * the queue's changes, builds a new index from kNN lists computed on the device, applies
 * the changes queued meanwhile to it, in order, and the loop swaps it in; until then
 * searches see the field empty.
 *
 * PERSISTENCE. Definitions are records in the store's AUX RECORDS (namespace "ft", key the
 * index name), written in the pass's transaction like every write. Vector indexes are
 * snapshotted to <dir>/vectors/<name>.qvi (see SNAPSHOT FORMAT) at shutdown and in the
 * background: soon after a build ends, then when changed, every minute at most (every ten
 * seconds past 10,000 changes). A background snapshot is a copy taken on the loop thread
 * (consistent with the document table; the loop pauses for the copy) that a worker writes. At start each index loads its snapshot if its checks pass, then reconciles it
 * with the hashes (a document whose vector blob's CRC32C matches the snapshot's keeps its
 * vector; others are re-added, vanished ones deleted); without a usable snapshot it is
 * rebuilt from the hashes. The scan runs before the server takes clients (up to 30 s an
 * index; a rebuild's vector insertions go on in the background). Until a reconciling scan
 * has seen a document it is not returned by searches.
 *
 * THREADS. Everything here runs on the loop thread, except the build worker, which takes
 * batches of changes from the queue under its lock and applies them with vec_add and
 * vec_delete (the vector index's own locking keeps searches safe: index.h THREADS), and the
 * snapshot writer, which owns the bytes it writes. An index is freed only when no job holds
 * it (jobs, dropped).
 *
 * DEFINITION RECORD (version 1; integers little-endian):
 *   0   u8   version (1)            1   u8   db
 *   2   u16  prefix count, then each: u16 length, bytes
 *   .   u16  field count, then each:
 *         u16 length, name; u16 length, alias; u8 type (FTF_*); u8 flags (FTFL_*);
 *         TAG: u8 separator;  TEXT: f64 weight;
 *         VECTOR: u8 kind (VEC_*), u8 metric (VEC_*), u32 dim, u32 M, u32 EF_CONSTRUCTION,
 *                 u32 EF_RUNTIME, f64 EPSILON, u32 INITIAL_CAP, u32 BLOCK_SIZE,
 *                 u16 length, FAISS factory string (IVF; length 0 for the others)
 *   end u32  CRC32C of every byte before it
 *
 * SNAPSHOT FORMAT (<dir>/vectors/<name>.qvi, version 1; written to .tmp, fsynced, renamed):
 *   0   4    magic "QVFI"              4   u32  version (1)
 *   8   u32  CRC32C of the index's definition record (a snapshot of another definition is
 *            ignored)
 *   12  u32  vector field count v      16  u32  id bound (every id below it)
 *   20  u32  document count n
 *   24  n x (u32 id, u32 key length, key, v x (u8 has vector, u32 CRC32C of its blob))
 *   .   v x (u64 length, the vector index as vec_save wrote it)
 *   end u32  CRC32C of every byte before it
 * A snapshot is refused whole (and the index rebuilt) on any failed check: magic, version,
 * definition, lengths, CRC, ids out of bound or repeated, keys repeated, vec_load's own
 * checks, parameters unlike the definition's, a "has" id the vector index lacks, or a
 * vector count unlike the number of "has" ids. */
#ifndef QUIVER_FT_H
#define QUIVER_FT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "index/index.h"
#include "store/store.h"

enum { FTF_TEXT = 1, FTF_TAG = 2, FTF_NUMERIC = 3, FTF_VECTOR = 4 };            /* persisted */
enum { FTFL_SORTABLE = 1, FTFL_NOINDEX = 2, FTFL_CASESENSITIVE = 4 };         /* persisted */

#define FT_NAME_MAX 200       /* index names: 1 to 200 bytes */
#define FT_SCHEMA_MAX 256
#define FT_MAX_PREFIXES 64
#define FT_AUX_NS "ft"

typedef struct ft_field {
    char *name;  /* the hash field (RediSearch's identifier) */
    char *alias; /* the attribute name queries use (AS); a copy of name when not given */
    int type;    /* FTF_* */
    int flags;   /* FTFL_* */
    char sep;    /* TAG separator */
    double weight;        /* TEXT */
    vec_params vp;        /* VECTOR (factory: owned, IVF only) */
    uint32_t block_size;  /* VECTOR FLAT: accepted and reported */
    int slot;    /* position among the fields of its type (tag, numeric or vector slot) */
} ft_field;

typedef struct ft_def {
    char *name;
    int db;
    int nprefixes;
    char **prefixes;
    size_t *prefix_lens;
    int nfields;
    ft_field *fields;
    int ntags, nnums, nvecs;
} ft_def;

/* A growable map from bytes to a uint32 (open addressing, linear probing). */
typedef struct ft_map {
    struct ft_map_slot *slots;
    size_t cap, n; /* cap: a power of two, or 0 */
} ft_map;

/* The posting lists of one TAG field: tag value -> sorted ids. */
typedef struct ft_tags {
    ft_map values;          /* normalised value -> index into lists */
    struct ft_posting *lists;
    uint32_t nlists, caplists;
    uint32_t *free_lists;   /* emptied lists, reused */
    uint32_t nfree, capfree;
    char **doc;             /* per id: the document's values, each NUL-terminated */
    uint32_t *doclen;       /* per id: bytes of doc[id] */
} ft_tags;

/* One VECTOR field of the index. */
typedef struct ft_vecf {
    vec_index *vx;
    uint64_t *has; /* bitmap: ids whose vector is (or is queued to be) in vx */
    uint32_t *crc; /* per id: CRC32C of the blob it came from */
    struct ft_bulk *bulk; /* a GPU bulk build of this field in progress (ft_bulk.c), or NULL */
} ft_vecf;

/* The vector changes waiting for the build worker, in order (ADD carries its floats). */
typedef struct ft_vop {
    uint8_t op;    /* VOP_ADD or VOP_DEL */
    uint8_t slot;  /* vector field slot */
    uint32_t id;
    size_t off;    /* ADD: offset of its floats in the queue's data */
} ft_vop;

typedef struct ft_vqueue {
    pthread_mutex_t lock;     /* guards ops, data and running */
    ft_vop *ops;
    size_t nops, capops;
    buf data;
    int running;              /* a worker is draining the queue */
    atomic_int stop;          /* the index is going away: drop what is queued */
    atomic_uint_fast64_t enqueued, applied, failed;
} ft_vqueue;

/* An index (loop thread, except q and the vector indexes: see THREADS). Ids below bound
 * have been handed out; a free id has key[id] == NULL and waits in free_ids. */
typedef struct ft_index {
    ft_def def;
    uint32_t def_crc;        /* CRC32C of the definition record */
    uint32_t cap, bound;     /* column capacity (ids), ids handed out */
    ft_map keys;             /* key -> id */
    const char **key;        /* per id: the map's copy of the key (NULL: free) */
    uint32_t *klen;
    uint32_t *free_ids, nfree, capfree;
    uint64_t *live;          /* bitmap: documents searches see */
    uint64_t *seen;          /* bitmap: documents the running scan saw (or a write touched) */
    uint32_t ndocs, nlive;   /* documents in the table, live ones */
    ft_tags *tags;           /* per TAG slot */
    double **nums;           /* per NUMERIC slot: value per id, NaN when none */
    ft_vecf *vecs;           /* per VECTOR slot */
    uint64_t failures;
    char last_error[160];
    char *last_error_key;
    /* the build: a scan of the database from scan_pos, and the worker's queue */
    int scanning, scan_started;
    buf scan_pos;
    uint64_t scanned;
    int sync_apply;          /* apply vector changes at once (inside FT.CREATE) */
    int64_t build_start_us;  /* a build runs since (0: none) */
    double indexing_ms;
    ft_vqueue q;
    int jobs;                /* worker and snapshot jobs holding this index */
    int dropped;             /* unregistered: freed when jobs reaches 0 */
    int incomplete;          /* shutdown stopped its build: no snapshot */
    /* snapshots */
    uint64_t dirty;          /* changes since the last snapshot was taken */
    int64_t snap_base_ms;    /* the last snapshot, or when the index came to be */
    int64_t last_snap_ms;    /* 0: none this run */
    int snap_soon;           /* a build just ended: snapshot it */
    int snap_inflight;
    uint64_t uses;
} ft_index;

/* ---- registry and definitions (ft_index.c, ft_def.c) ------------------------------------- */

/* Parses FT.CREATE's arguments after the index name into def (name and db set by the caller
 * afterwards). ERR_INVAL with err naming the argument. */
int ft_def_parse(int argc, const char **argv, const size_t *lens, ft_def *def, int *skip_scan,
                 char *err, size_t errlen);
void ft_def_free(ft_def *def);
/* The field whose alias (or, failing that, hash field name) is name; NULL if none. */
const ft_field *ft_def_field(const ft_def *def, const char *name, size_t len);

/* Creates the index from def (taken over, even on failure) and registers it. scan = 0 skips
 * the initial scan (SKIPINITIALSCAN, or a database known to be empty). ERR_EXISTS, or
 * vec_create's ERR_INVAL with err. Does not persist: the caller writes the record. */
int ft_create(ft_def *def, int scan, char *err, size_t errlen);
/* Runs the new index's scan for up to budget_us now (FT.CREATE: small builds finish
 * before the reply). */
void ft_build_now(ft_index *ix, int64_t budget_us);
ft_index *ft_lookup(const char *name, size_t len);
int ft_count(void);
ft_index *ft_at(int i); /* in creation order */
/* Unregisters the index, removes its snapshot file and frees it (once its jobs end). With
 * keys, its documents' keys are appended to keys (each a u32 length then the bytes). */
void ft_drop(ft_index *ix, buf *keys, uint32_t *nkeys);
const ft_def *ft_index_def(const ft_index *ix);

/* ---- keeping in step (ft_index.c) -------------------------------------------------------- */

void ft_key_changed(int db, const char *key, size_t klen);
void ft_key_gone(int db, const char *key, size_t klen); /* from inside the store: no reads */
void ft_flushed(int db);                                 /* db < 0: every database */

/* ---- what searches and FT.INFO read (ft_index.c) ---------------------------------------- */

/* Bitmaps have one bit per id below ft_id_bound(). */
uint32_t ft_id_bound(const ft_index *ix);
size_t ft_bitmap_words(const ft_index *ix);
/* The documents searches see (live: indexed and confirmed). */
const uint64_t *ft_live(const ft_index *ix);
/* 1 when every document of the table is live (no reconciling scan pending). */
int ft_all_live(const ft_index *ix);
uint32_t ft_num_docs(const ft_index *ix);
/* ORs into bits the documents with one of the tag values of TAG field f (normalised as
 * the field says). */
void ft_tag_match(ft_index *ix, const ft_field *f, const char *val, size_t len, uint64_t *bits);
/* ORs into bits the documents whose NUMERIC field f is within the bounds. */
void ft_num_match(ft_index *ix, const ft_field *f, double lo, double hi, int lo_excl,
                  int hi_excl, uint64_t *bits);
/* A document's NUMERIC value (NaN when it has none). */
double ft_num_value(const ft_index *ix, const ft_field *f, uint32_t id);
const ft_vecf *ft_vec(const ft_index *ix, const ft_field *f);
/* The key of a document (NULL for a free id), and the id of a key (-1 if none). */
const char *ft_doc_key(const ft_index *ix, uint32_t id, size_t *klen);
int64_t ft_doc_id(const ft_index *ix, const char *key, size_t klen);

typedef struct ft_stats {
    uint32_t num_docs, max_doc_id;
    uint64_t failures, records;
    int indexing;
    double percent_indexed;
    size_t vector_bytes, doc_table_bytes, tag_bytes;
    double total_indexing_ms;
    uint64_t uses;
    const char *last_error, *last_error_key; /* "N/A" when none */
    int64_t last_snapshot_ms; /* 0: none this run */
} ft_stats;
void ft_get_stats(const ft_index *ix, ft_stats *out);
void ft_count_use(ft_index *ix);

/* ---- lifetime (ft_index.c, called from core/server.c) ------------------------------------ */

/* Loads the definitions and snapshots and starts the reconciling scans. Logs what fails. */
void ft_start(void);
/* Scan slices, background snapshots. */
void ft_cron(void);
/* Shutdown: asks the build workers to stop (before the worker pool is joined). */
void ft_stop(void);
/* Shutdown: writes the snapshots of the indexes that changed, then frees everything. */
void ft_shutdown(void);
/* INFO vector. */
void ft_info_section(buf *b);

/* ---- persistence (ft_store.c) ------------------------------------------------------------ */

/* The definition record of def (appended to out). */
void ft_def_encode(const ft_def *def, buf *out);
/* ERR_CORRUPT with err naming what failed. */
int ft_def_decode(const char *name, size_t nlen, const char *p, size_t len, ft_def *def,
                  char *err, size_t errlen);
/* The snapshot path of index name under dir (appended to out, NUL-terminated). */
void ft_snapshot_path(const char *dir, const char *name, buf *out);
/* Writes bytes to path through path.tmp, fsync and rename; ERR_IO with err. Any thread. */
int ft_file_write(const char *path, const char *p, size_t len, char *err, size_t errlen);
int ft_file_read(const char *path, buf *out); /* ERR_NOTFOUND, ERR_IO */

/* ---- internals shared by ft_index.c and ft_build.c ---------------------------------------- */

enum { VOP_ADD = 1, VOP_DEL = 2, VOP_BUILD = 3 }; /* BUILD: a bulk build's gathering ends */

/* A new, empty, unregistered index over def (taken over). NULL with err when a vector index
 * cannot be made (vec_create's message). */
ft_index *ft__index_new(ft_def *def, char *err, size_t errlen);
/* For a dropped index (ix->dropped set): stops its worker and frees it now if no job holds
 * it, else when the last one ends (they call this again). No effect on a live index. */
void ft__release(ft_index *ix);
/* Indexes (or, when o is NULL or not a hash, removes) the document of key. Loop thread. */
void ft__doc_index(ft_index *ix, store_txn *t, const char *key, size_t klen,
                   const store_obj *o);
void ft__doc_remove(ft_index *ix, uint32_t id);
/* Puts key in the table under id (snapshot load): not live, no attributes. -1 if id or key
 * is taken. */
int ft__doc_put(ft_index *ix, uint32_t id, const char *key, size_t klen);
/* 1 if key is under one of ix's prefixes. */
int ft__prefix_match(const ft_index *ix, const char *key, size_t klen);
/* Hands a vector change to the index: applied at once, or queued behind the worker. blob
 * (ADD) is dim floats, any alignment. */
void ft__vop_submit(ft_index *ix, int op, int slot, uint32_t id, const void *blob);
/* Starts (or restarts) the scan that indexes the database's keys. */
void ft__scan_start(ft_index *ix);
/* Runs a scan slice for up to budget_us. */
void ft__scan_slice(ft_index *ix, int64_t budget_us);
/* Bytes held by the TAG posting lists and values (FT.INFO inverted_sz_mb). */
size_t ft__tag_bytes(const ft_index *ix);
/* The registry, for ft_build.c; and emptying it at shutdown (after the workers stop). */
ft_index **ft__all(int *n);
void ft__register(ft_index *ix);
void ft__free_all(void);
/* Captures a snapshot of ix (loop thread) into out. */
void ft__snapshot_capture(ft_index *ix, buf *out);
/* Loads a snapshot's bytes into the empty index ix. ERR_CORRUPT with err (ix is then left
 * partly filled: the caller discards it). */
int ft__snapshot_load(ft_index *ix, const char *p, size_t len, char *err, size_t errlen);

/* ---- GPU bulk builds of HNSW fields (ft_bulk.c) ------------------------------------------ */

/* Loop, as a scan starts with the queue idle: arms a bulk build of each empty HNSW field when
 * the GPU is on and the database holds at least gpu-build-min-vectors keys. */
void ft__bulk_arm(ft_index *ix);
/* Loop, as the scan ends: queues the VOP_BUILD of each armed field (once). */
void ft__bulk_mark(ft_index *ix);
/* Worker: where a queued change of slot goes: the index to apply it to, or NULL when the
 * bulk build took it (gathered it, or ran the build for a VOP_BUILD). */
vec_index *ft__bulk_target(ft_index *ix, int op, int slot, uint32_t id, const float *v);
/* Worker: 1 when a field's bulk build has ended and the loop must finish it. */
int ft__bulk_ended(const ft_index *ix);
/* Loop: swaps in the indexes bulk builds made and forgets the ended builds. */
void ft__bulk_finish(ft_index *ix);
/* Frees a field's bulk build (index_free). */
void ft__bulk_free(struct ft_bulk *b);
/* INFO's gpu_graph_* fields. */
void ft_bulk_info(buf *b);

/* ---- the query language (ft_query.c) ----------------------------------------------------- */

typedef struct ft_params {
    int n;
    const char **names, **vals;
    const size_t *nlens, *vlens;
} ft_params;

typedef struct ft_qnode ft_qnode;

typedef struct ft_query {
    ft_qnode *root;       /* the filter; never NULL (a match-all node for "*") */
    int root_is_all;      /* the filter is "*" alone */
    /* the KNN clause, when has_knn */
    int has_knn;
    uint32_t k, ef;       /* ef 0: the field's EF_RUNTIME */
    const ft_field *knn_field;
    float *knn_vec;       /* an aligned copy of the PARAMS value (dim floats) */
    char *score_name;     /* AS name, or "__<field>_score" */
    /* a VECTOR_RANGE with YIELD_DISTANCE_AS (at most one is reported) */
    ft_qnode *yield_node;
    char *yield_name;
} ft_query;

/* Parses a query string (RediSearch dialect 2) against ix's schema. ERR_INVAL with err. */
int ft_query_parse(ft_index *ix, const char *s, size_t len, const ft_params *params,
                   ft_query *q, char *err, size_t errlen);
void ft_query_free(ft_query *q);
/* FT.SEARCH's options (ft_search_opts_parse; the handler in cmd_ft.c runs the search). */
typedef struct ft_ret_field {
    const char *name, *as; /* requested identifier, and its reply name */
    size_t nlen, aslen;
} ft_ret_field;

typedef struct ft_num_filter {
    const ft_field *f;
    double lo, hi;
    int lo_excl, hi_excl;
} ft_num_filter;

typedef struct ft_search_opts {
    int nocontent, withscores;
    int nreturn; /* -1: every field */
    ft_ret_field *ret;
    const char *sortby;
    size_t sortlen;
    int desc;
    int64_t offset, num;
    ft_params params;
    int nfilters;
    ft_num_filter filters[8];
    int inkeys_at, ninkeys; /* INKEYS: argv[inkeys_at ..] */
} ft_search_opts;

/* Parses FT.SEARCH's options, argv[3] on (argv is the whole command), against ix's schema
 * into o, which borrows argv's strings; -1 with err (what the command replies). Free o
 * either way. */
int ft_search_opts_parse(const ft_index *ix, int argc, const char **argv, const size_t *lens,
                         ft_search_opts *o, char *err, size_t errlen);
void ft_search_opts_free(ft_search_opts *o);

/* Evaluates q's filter into bits (ft_bitmap_words(ix) words, zeroed by the caller).
 * ERR_INVAL / ERR_NOMEM with err (a VECTOR_RANGE that fails). */
int ft_query_eval(ft_index *ix, ft_query *q, uint64_t *bits, char *err, size_t errlen);
/* The distance that q's yield node found for id (after eval); 1 if found. */
int ft_query_yield(const ft_query *q, uint32_t id, float *dist);

#endif
