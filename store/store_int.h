/* store_int.h: internals shared by the files of store/ (never included from outside). */
#ifndef QUIVER_STORE_INT_H
#define QUIVER_STORE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "store.h"

#define LONG_PREFIX 480 /* bytes of a long key or field kept before its digest */

struct store_txn {
    store *st;
    MDB_txn *txn;
    int write;
};

/* The decoded catalog (see store.h CATALOG): each kind sorted by name (bytewise, as LMDB
 * orders the records). */
typedef struct store__catalog {
    store_entity *entities;
    int nentities, capentities;
    store_view *views;
    int nviews, capviews;
    store_service *services;
    int nservices, capservices;
    uint32_t next_view_id; /* the next id to hand out (ids are never reused) */
} store__catalog;

/* A list of view ids (the views created in this pass; the column families to drop after
 * the commit). */
typedef struct store__ids {
    uint32_t *ids;
    int n, cap;
} store__ids;

struct store {
    MDB_env *env;
    MDB_dbi meta, keys, lkeys, fields, lfields, expires, catalog, online;
    size_t map_size;
    size_t max_map_size; /* 0 = no cap */
    int durability;
    unsigned psize;

    store_txn rd, wr; /* the pass's read snapshot and write transaction */
    int rd_open, rd_reset, wr_open;
    int pass_err;          /* first error that poisoned the write transaction */
    size_t pass_bytes;     /* bytes announced by writers this pass */
    int hold;              /* inside a transaction (EXEC): no mid-pass commit */
    int backed;            /* the whole map has disk blocks (posix_fallocate succeeded) */

    uint64_t counts[STORE_DBS][2]; /* keys, keys with expiry (as of the open txn) */
    int counts_dirty;
    uint64_t next_hash_id;

    uint64_t offset; /* replication offset: bytes of the log so far */
    int log_db;      /* database the log last SELECTed */
    store_log_fn log_fn;
    void *log_ctx;
    uint64_t committed_offset; /* the log position of the last commit */
    int committed_db;
    char replid[41];
    store_commit_fn commit_fn;
    void *commit_ctx;
    atomic_int snaps; /* open snapshots: the map must not move under their readers */
    int expiry_paused; /* store_pause_expiry */
    store_expired_fn expired_fn;
    void *expired_ctx;

    /* everysec syncing */
    pthread_t sync_thread;
    int sync_started;
    pthread_mutex_t sync_mu;
    pthread_mutex_t map_mu; /* a remap must not run under the sync thread's env_sync */
    pthread_cond_t sync_cv;
    int sync_stop;
    atomic_int sync_pending;
    atomic_uint_fast64_t syncs, last_sync_ms;
    uint64_t commits, failed_commits;

    /* the feature store */
    store_hist *hist;
    store_hbatch *hbatch;   /* the pass's history rows, written at commit */
    uint64_t journal_pass;  /* the pass number the journal of online writes is at */
    store__catalog cat;
    store__ids created;     /* views created since the last commit */
    store__ids drops;       /* column families to drop after the next commit */
    store_fs_stats fs_stats;
    pthread_mutex_t hist_mu; /* a history write and the setting of hist_err, against the
                                sync thread's log sync */
    int hist_err;           /* the error that stopped history writes (0: none), see env.c */
    char hist_why[256];     /* what it said, for the client */
    int64_t hist_probe_ms;  /* when the history was last probed while stopped */
    store_online_fn online_fn; /* the online-row hook (store.h) */
    void *online_ctx;
};

/* A key or field as LMDB stores it: which database and the encoded bytes. */
typedef struct store__ref {
    MDB_dbi dbi;
    int is_long;
    size_t len;
    unsigned char buf[512];
} store__ref;

void store__key_ref(const store *st, int db, const char *key, size_t klen, store__ref *r);
void store__field_ref(const store *st, uint64_t id, const char *f, size_t flen, store__ref *r);
/* A decoded key record (see store.h for the layout). */
typedef struct rec {
    store_obj obj;
    const char *fullkey; /* long keys only */
    size_t fklen;
} rec;

int store__decode(const MDB_val *v, rec *r);
/* Removes a key record that exists, with its expiry entry and hash fields. */
int store__delete_rec(store_txn *t, int db, const store__ref *ref, const rec *r);
void store__put_be64(unsigned char *p, uint64_t v);
uint64_t store__get_be64(const unsigned char *p);
int store__map_rc(int rc); /* LMDB rc -> ERR_* */
int store__fail(store_txn *t, int rc); /* poisons the pass on a write error; returns ERR_* */
/* Splits an "lfields" value (u32 length, field, value). ERR_CORRUPT if malformed. */
int store__long_field(const MDB_val *v, const char **field, size_t *flen, const char **val,
                      size_t *vlen);
/* Deletes every field of hash id. */
int store__hash_clear(store_txn *t, uint64_t id);
uint64_t store__new_hash_id(store *st);
void store__count(store *st, int db, int dkeys, int dexpires);

/* The catalog (catalog.c). load replaces st->cat by LMDB's committed records (keeping
 * next_view_id at least where it was); free empties it. ERR_CORRUPT names the bad record. */
int store__catalog_load(store *st, char *err, size_t errlen);
void store__catalog_free(store__catalog *cat);
/* Room for one more id (ERR_NOMEM), taken before the change that needs it; add then
 * cannot fail. */
int store__ids_reserve(store__ids *l);
/* Decodes one catalog record (LMDB key and value) into c, after the ones it holds (records
 * come in key order, so the arrays stay sorted); ERR_CORRUPT, c unchanged, if it fails any
 * check. encode appends the record of c's i-th entry of kind 'e', 'v' or 's' to out: a
 * decoded record encodes back to the very bytes it came from (the fuzz test checks it). */
int store__catalog_decode(store__catalog *c, const MDB_val *k, const MDB_val *v);
void store__catalog_encode(const store__catalog *c, char kind, int i, buf *out);
void store__ids_add(store__ids *l, uint32_t id);
/* Pass support for the history batch (history.c). mark sets a save point before a put,
 * rollback takes the batch back to it, unmark drops it: a push whose online write fails
 * leaves the batch as it was. A tracked batch also keeps a delete of every row it put,
 * across writes, until forget (after LMDB committed); unwrite empties the batch and writes
 * those deletes (the pass failed after some of its rows reached RocksDB: they go again).
 * A row that overwrote an identical history key is deleted, not restored. */
void store__hbatch_mark(store_hbatch *b);
void store__hbatch_rollback(store_hbatch *b);
void store__hbatch_unmark(store_hbatch *b);
int store__hbatch_track(store_hbatch *b);
void store__hbatch_forget(store_hbatch *b);
int store__hbatch_unwrite(store_hist *h, store_hbatch *b);
/* Writes an empty batch: RocksDB's stored background error, or 0 once it takes writes. */
int store__hist_ping(store_hist *h);
/* The journal of online writes (history.c; store.h, HISTORY JOURNAL). store__hbatch_journal
 * notes that the row last put in b also went online in pass `pass`; each history write of
 * the pass then carries the journal record so far. journaled: a write carried it since the
 * last reset (the LMDB commit records the pass). store__hist_journal calls fn for every
 * row of the stored record when its pass is after `after`, and sets *pass to the record's
 * pass (0: none); ERR_CORRUPT for a damaged record, or a RocksDB error. */
typedef void (*store__journal_fn)(void *ctx, uint32_t view, const char *ekey, size_t elen,
                                  int64_t event_us, int64_t created_us, const char *row,
                                  size_t rowlen);
void store__hbatch_journal(store_hbatch *b, uint32_t view, uint64_t pass);
int store__hbatch_journaled(const store_hbatch *b);
void store__hbatch_journal_reset(store_hbatch *b);
int store__hist_journal(store_hist *h, uint64_t after, store__journal_fn fn, void *ctx,
                        uint64_t *pass);
/* Syncs the history's write-ahead log (history.c; the everysec thread calls it). */
int store__hist_sync(store_hist *h);
/* 0 when history writes work, else the error that stopped them (env.c, HISTORY FAILURES
 * in store.h). */
int store__hist_stopped(store *st);
/* Deletes every online row of a view (online.c). */
int store__online_clear(store_txn *t, uint32_t view);
/* Tells the online-row hook, if any, that the pass committed or failed (online.c). */
void store__online_notify(store *st, int kind);

#endif
