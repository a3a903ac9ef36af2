/* history.c: the offline feature history, kept in RocksDB through its C API. One database
 * holds one column family per view ("v<view id>"), whose keys are laid out as store.h's
 * HISTORY KEYS so that an entity's rows sort newest event first (ties newest created first):
 * an as-of lookup is one Seek, and a range is one bounded iterator. A small table maps view
 * ids to column family handles, each with its retention, which a compaction filter reads to
 * drop rows older than now - retention. RocksDB's `char **errptr` convention is converted to
 * Quiver's error codes in one place, rdb_error().
 *
 * Threads: RocksDB calls are thread-safe; the view table is guarded by a rwlock (write side
 * only for create and drop). A view's column family handle is reference-counted, so a view
 * dropped while another thread reads it (or an iterator is open on it) stays valid until the
 * last user lets go. A view's compaction filter (and the small struct it reads) is freed only
 * at close, because a background compaction of a dropped column family may still run it. */
#include "store_int.h"

#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#define HIST_ENTITY_MAX 65535u        /* u16 length prefix */
#define HIST_KEY_TAIL 16u             /* two u64 be times */
#define HIST_WRITE_BUFFER (16u << 20) /* per column family memtable */
#define HIST_BLOCK_CACHE (64u << 20)  /* shared by every column family, by default */
/* Data blocks (before compression) four times RocksDB's default: a join's seeks move
 * forward through the keys, and one that lands in the block already under the iterator
 * skips the index search and the cache lookup (15% less join time than 4 KiB, measured). */
#define HIST_BLOCK_SIZE (16u << 10)
#define HIST_SIGN (UINT64_C(1) << 63)
#define HIST_MANIFEST_PREALLOC (64u << 10)

/* ---- key encoding (store.h, HISTORY KEYS) ------------------------------------------- */

/* Big-endian integers of n bytes: keys sort as their numbers do. */
static void put_be(char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (char)(v & 0xff);
}

static uint64_t get_be(const char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | (unsigned char)p[i];
    return v;
}

#define put_be64(p, v) put_be(p, v, 8)
#define get_be64(p) get_be(p, 8)
#define put_be32(p, v) put_be(p, v, 4)
#define get_be32(p) ((uint32_t)get_be(p, 4))

/* ~(t ^ 2^63): signed order becomes unsigned order, then reversed (newest first). */
static uint64_t time_enc(int64_t t)
{
    return ~((uint64_t)t ^ HIST_SIGN);
}

static int64_t time_dec(uint64_t u)
{
    uint64_t v = ~u ^ HIST_SIGN;
    int64_t t;
    memcpy(&t, &v, sizeof t);
    return t;
}

/* Replaces b's contents by the key (entity, event_us, created_us). elen <= HIST_ENTITY_MAX.
 * ERR_NOMEM (b emptied). Room is made for key_upper_bound's extra byte too. */
static int key_encode(buf *b, const char *entity, size_t elen, int64_t event_us,
                      int64_t created_us)
{
    char tail[HIST_KEY_TAIL];
    b->len = 0;
    if (buf_try_reserve(b, 2 + elen + HIST_KEY_TAIL + 1))
        return ERR_NOMEM;
    buf_appendc(b, (char)(elen >> 8));
    buf_appendc(b, (char)(elen & 0xff));
    buf_append(b, entity, elen);
    put_be64(tail, time_enc(event_us));
    put_be64(tail + 8, time_enc(created_us));
    buf_append(b, tail, sizeof tail);
    return 0;
}

/* The exclusive upper bound just past every key of entity with event_us >= min_event_us. */
static int key_upper_bound(buf *b, const char *entity, size_t elen, int64_t min_event_us)
{
    if (key_encode(b, entity, elen, min_event_us, INT64_MIN))
        return ERR_NOMEM;
    buf_appendc(b, '\0');
    return 0;
}

/* Splits a stored key; ERR_CORRUPT if its length does not add up. */
static int key_decode(const char *k, size_t klen, const char **entity, size_t *elen,
                      int64_t *event_us, int64_t *created_us)
{
    if (klen < 2 + HIST_KEY_TAIL)
        return ERR_CORRUPT;
    size_t n = ((size_t)(unsigned char)k[0] << 8) | (unsigned char)k[1];
    if (klen != 2 + n + HIST_KEY_TAIL)
        return ERR_CORRUPT;
    *entity = k + 2;
    *elen = n;
    *event_us = time_dec(get_be64(k + 2 + n));
    *created_us = time_dec(get_be64(k + 2 + n + 8));
    return 0;
}

/* ---- RocksDB errors: the one conversion ------------------------------------------------ */

/* Converts and frees a RocksDB error string (NULL = success). The text goes into err when
 * the caller gave a buffer, else to the log. */
static int rdb_error(char *msg, const char *what, char *err, size_t errlen)
{
    if (!msg)
        return 0;
    int code = ERR_BACKEND;
    if (strncmp(msg, "IO error", 8) == 0)
        code = ERR_IO;
    else if (strncmp(msg, "Corruption", 10) == 0)
        code = ERR_CORRUPT;
    if (err && errlen)
        snprintf(err, errlen, "history: %s: %s", what, msg);
    else
        log_warn("history: %s: %s", what, msg);
    rocksdb_free(msg);
    return code;
}

/* ---- the view table ---------------------------------------------------------------------- */

typedef struct hview {
    uint32_t id;
    int dropped;                  /* under store_hist.lock */
    _Atomic int64_t retention_us; /* 0 = keep forever; read by the compaction filter */
    atomic_int refs;              /* the table's reference + readers; 0 frees cf */
    rocksdb_column_family_handle_t *cf;
    rocksdb_compactionfilter_t *filter; /* state = this struct; destroyed at close */
} hview;

struct store_hist {
    rocksdb_t *db;
    rocksdb_options_t *dbopts; /* database options, also the default column family's */
    rocksdb_cache_t *cache;
    rocksdb_block_based_table_options_t *table;
    rocksdb_writeoptions_t *wsync, *wnosync;
    pthread_rwlock_t lock; /* guards views, nviews, cap and every hview.dropped */
    hview **views;         /* live and dropped views (dropped ones kept until close) */
    size_t nviews, cap;
    rocksdb_column_family_handle_t **others; /* "default" and unknown column families */
    size_t nothers;
};

struct store_hbatch {
    rocksdb_writebatch_t *wb;
    rocksdb_writebatch_t *undo; /* tracked batches: a delete of every row put since the
                                   last store__hbatch_forget (NULL when untracked), with a
                                   save point after the rows of each write */
    int written;                /* writes since the last store__hbatch_forget */
    buf key;
    hview **views; /* the views the batch writes to, each once (they outlive the batch) */
    size_t nviews, cap;
    buf journal;   /* the journal record so far (store.h, HISTORY JOURNAL), without CRC */
    int journal_dirty, journal_written; /* entries not yet in a write; a write carried it */
};

struct store_hiter {
    hview *v;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    buf lo, hi; /* iterator bounds: they must outlive it */
    int asc, started, done;
};

static unsigned char retention_filter(void *state, int level, const char *key, size_t klen,
                                      const char *val, size_t vlen, char **new_val,
                                      size_t *new_vlen, unsigned char *changed)
{
    (void)level, (void)val, (void)vlen, (void)new_val, (void)new_vlen, (void)changed;
    hview *v = state;
    int64_t keep = atomic_load_explicit(&v->retention_us, memory_order_relaxed);
    const char *e;
    size_t elen;
    int64_t event_us, created_us;
    if (keep <= 0 || key_decode(key, klen, &e, &elen, &event_us, &created_us) != 0)
        return 0;
    return event_us < clock_us() - keep;
}

static const char *retention_filter_name(void *state)
{
    (void)state;
    return "quiver.retention";
}

static void retention_filter_destroy(void *state)
{
    (void)state; /* the hview is freed by store_hist_close */
}

/* A view with its compaction filter; NULL when out of memory. */
static hview *view_new(uint32_t id, int64_t retention_us)
{
    hview *v = try_calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->id = id;
    atomic_init(&v->retention_us, retention_us);
    atomic_init(&v->refs, 1);
    v->filter = rocksdb_compactionfilter_create(v, retention_filter_destroy, retention_filter,
                                                retention_filter_name);
    return v;
}

/* Frees a view whose column family handle is gone (or never was), after the database. */
static void view_free(hview *v)
{
    rocksdb_compactionfilter_destroy(v->filter);
    xfree(v);
}

static void view_name(uint32_t id, char name[16])
{
    snprintf(name, 16, "v%u", (unsigned)id);
}

/* "v<decimal u32>" -> 1 and *id; anything else 0. */
static int view_parse_name(const char *name, uint32_t *id)
{
    size_t n = strlen(name);
    int64_t v;
    if (n < 2 || name[0] != 'v' || name[1] < '0' || name[1] > '9')
        return 0;
    if (str_to_i64(name + 1, n - 1, &v) != 0 || v < 0 || v > (int64_t)UINT32_MAX)
        return 0;
    *id = (uint32_t)v;
    return 1;
}

/* Column family options for one view; the caller destroys them once the family is open. */
static rocksdb_options_t *view_options(store_hist *h, hview *v)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_write_buffer_size(o, HIST_WRITE_BUFFER);
    rocksdb_options_set_compression(o, rocksdb_lz4_compression);
    rocksdb_options_set_block_based_table_factory(o, h->table);
    rocksdb_options_set_compaction_filter(o, v->filter);
    return o;
}

static hview *find_live_locked(store_hist *h, uint32_t id)
{
    for (size_t i = 0; i < h->nviews; i++)
        if (h->views[i]->id == id && !h->views[i]->dropped)
            return h->views[i];
    return NULL;
}

/* Room for one more view in the table, before a column family is made for it. */
static int reserve_view_locked(store_hist *h)
{
    if (h->nviews < h->cap)
        return 0;
    size_t cap = h->cap ? h->cap * 2 : 8;
    hview **views = try_realloc(h->views, cap * sizeof *views);
    if (!views)
        return ERR_NOMEM;
    h->views = views;
    h->cap = cap;
    return 0;
}

static void add_view_locked(store_hist *h, hview *v)
{
    h->views[h->nviews++] = v;
}

/* Takes a reference on a live view (NULL if there is none); view_put releases it. */
static hview *view_get(store_hist *h, uint32_t id)
{
    pthread_rwlock_rdlock(&h->lock);
    hview *v = find_live_locked(h, id);
    if (v)
        atomic_fetch_add(&v->refs, 1);
    pthread_rwlock_unlock(&h->lock);
    return v;
}

static void view_put(hview *v)
{
    if (atomic_fetch_sub(&v->refs, 1) == 1) {
        rocksdb_column_family_handle_destroy(v->cf);
        v->cf = NULL;
    }
}

/* ---- open and close ------------------------------------------------------------------ */

/* Frees whatever of h exists: handles first, then the database, then what it referenced. */
static void hist_free(store_hist *h)
{
    for (size_t i = 0; i < h->nviews; i++) {
        hview *v = h->views[i];
        if (v->cf && atomic_load(&v->refs) > 1)
            log_warn("history: view %u closed with %d open users", (unsigned)v->id,
                     atomic_load(&v->refs) - 1);
        if (v->cf)
            rocksdb_column_family_handle_destroy(v->cf);
        v->cf = NULL;
    }
    for (size_t i = 0; i < h->nothers; i++)
        rocksdb_column_family_handle_destroy(h->others[i]);
    if (h->db)
        rocksdb_close(h->db);
    for (size_t i = 0; i < h->nviews; i++)
        view_free(h->views[i]);
    xfree(h->views);
    xfree(h->others);
    if (h->wsync)
        rocksdb_writeoptions_destroy(h->wsync);
    if (h->wnosync)
        rocksdb_writeoptions_destroy(h->wnosync);
    if (h->dbopts)
        rocksdb_options_destroy(h->dbopts);
    if (h->table)
        rocksdb_block_based_options_destroy(h->table);
    if (h->cache)
        rocksdb_cache_destroy(h->cache);
    pthread_rwlock_destroy(&h->lock);
    xfree(h);
}

int store_hist_open(const char *dir, size_t cache_bytes, store_hist **out, char *err,
                    size_t errlen)
{
    char **names = NULL, *msg = NULL;
    size_t nnames = 0;
    const char **cfnames = NULL;
    const rocksdb_options_t **cfopts = NULL;
    rocksdb_column_family_handle_t **handles = NULL;
    hview **slot = NULL; /* per column family: its view, or NULL */
    int rc = 0;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    store_hist *h = try_calloc(1, sizeof *h);
    if (!h) {
        if (err && errlen)
            snprintf(err, errlen, "history: out of memory");
        return ERR_NOMEM;
    }
    pthread_rwlockattr_t attr; /* writers first: a drop must not wait out a stream of writes */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&h->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    h->cache = rocksdb_cache_create_lru(cache_bytes ? cache_bytes : HIST_BLOCK_CACHE);
    h->table = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(h->table, h->cache);
    rocksdb_block_based_options_set_block_size(h->table, HIST_BLOCK_SIZE);
    h->dbopts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(h->dbopts, 1);
    rocksdb_options_set_create_missing_column_families(h->dbopts, 1);
    rocksdb_options_set_keep_log_file_num(h->dbopts, 4);
    /* RocksDB reserves 4 MiB for a new MANIFEST by default: on a small disk that is space
     * the keyspace (which shares the data directory) cannot have. */
    rocksdb_options_set_manifest_preallocation_size(h->dbopts, HIST_MANIFEST_PREALLOC);
    rocksdb_options_set_write_buffer_size(h->dbopts, HIST_WRITE_BUFFER);
    rocksdb_options_set_compression(h->dbopts, rocksdb_lz4_compression);
    rocksdb_options_set_block_based_table_factory(h->dbopts, h->table);
    h->wsync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(h->wsync, 1);
    h->wnosync = rocksdb_writeoptions_create();

    /* A database that exists lists its column families; a new one has only "default". */
    char current[4096];
    if ((size_t)snprintf(current, sizeof current, "%s/CURRENT", dir) >= sizeof current) {
        if (err && errlen)
            snprintf(err, errlen, "history: directory name too long");
        rc = ERR_INVAL;
        goto fail;
    }
    if (access(current, F_OK) == 0) {
        names = rocksdb_list_column_families(h->dbopts, dir, &nnames, &msg);
        if ((rc = rdb_error(msg, "listing column families", err, errlen)) != 0)
            goto fail;
    }
    size_t ncf = names ? nnames : 1;
    cfnames = try_calloc(ncf, sizeof *cfnames);
    cfopts = try_calloc(ncf, sizeof *cfopts);
    handles = try_calloc(ncf, sizeof *handles);
    slot = try_calloc(ncf, sizeof *slot);
    h->others = try_calloc(ncf, sizeof *h->others);
    if (!cfnames || !cfopts || !handles || !slot || !h->others) {
        rc = ERR_NOMEM;
        goto fail;
    }
    for (size_t i = 0; i < ncf; i++) {
        uint32_t id;
        cfnames[i] = names ? names[i] : "default";
        cfopts[i] = h->dbopts;
        if (view_parse_name(cfnames[i], &id)) {
            /* Retention is not persisted here: 0 until the caller sets it again. */
            if ((rc = reserve_view_locked(h)) != 0 || !(slot[i] = view_new(id, 0))) {
                rc = ERR_NOMEM;
                break;
            }
            add_view_locked(h, slot[i]);
            cfopts[i] = view_options(h, slot[i]);
        } else if (strcmp(cfnames[i], "default") != 0) {
            log_warn("history: %s: unknown column family \"%s\" kept as is", dir, cfnames[i]);
        }
    }
    if (rc == 0)
        h->db = rocksdb_open_column_families(h->dbopts, dir, (int)ncf, cfnames, cfopts,
                                             handles, &msg);
    for (size_t i = 0; i < ncf; i++)
        if (cfopts[i] != h->dbopts)
            rocksdb_options_destroy((rocksdb_options_t *)cfopts[i]);
    if (rc == 0 && (rc = rdb_error(msg, "open", err, errlen)) != 0)
        h->db = NULL;
    if (rc)
        goto fail;
    for (size_t i = 0; i < ncf; i++) {
        if (slot[i])
            slot[i]->cf = handles[i];
        else
            h->others[h->nothers++] = handles[i];
    }
    *out = h;
    goto done;

fail:
    if (err && errlen && !err[0])
        snprintf(err, errlen, "history: cannot open %s: %s", dir, err_str(rc));
    hist_free(h);
done:
    if (names)
        rocksdb_list_column_families_destroy(names, nnames);
    xfree(cfnames);
    xfree(cfopts);
    xfree(handles);
    xfree(slot);
    return rc;
}

void store_hist_close(store_hist *h)
{
    if (h)
        hist_free(h);
}

/* ---- views ----------------------------------------------------------------------------- */

int store_hist_create_view(store_hist *h, uint32_t view, int64_t retention_us)
{
    char name[16], *msg = NULL;
    if (retention_us < 0)
        return ERR_INVAL;
    view_name(view, name);
    pthread_rwlock_wrlock(&h->lock);
    if (find_live_locked(h, view)) {
        pthread_rwlock_unlock(&h->lock);
        return ERR_EXISTS;
    }
    hview *v = reserve_view_locked(h) ? NULL : view_new(view, retention_us);
    if (!v) {
        pthread_rwlock_unlock(&h->lock);
        return ERR_NOMEM;
    }
    rocksdb_options_t *o = view_options(h, v);
    v->cf = rocksdb_create_column_family(h->db, o, name, &msg);
    rocksdb_options_destroy(o);
    int rc = rdb_error(msg, "creating a view's column family", NULL, 0);
    if (rc == 0)
        add_view_locked(h, v);
    pthread_rwlock_unlock(&h->lock);
    if (rc != 0)
        view_free(v); /* no column family was made: nothing can run its filter */
    return rc;
}

int store_hist_set_retention(store_hist *h, uint32_t view, int64_t retention_us)
{
    if (retention_us < 0)
        return ERR_INVAL;
    pthread_rwlock_rdlock(&h->lock);
    hview *v = find_live_locked(h, view);
    if (v)
        atomic_store(&v->retention_us, retention_us);
    pthread_rwlock_unlock(&h->lock);
    return v ? 0 : ERR_NOTFOUND;
}

int store_hist_drop_view(store_hist *h, uint32_t view)
{
    char *msg = NULL;
    pthread_rwlock_wrlock(&h->lock);
    hview *v = find_live_locked(h, view);
    if (!v) {
        pthread_rwlock_unlock(&h->lock);
        return ERR_NOTFOUND;
    }
    rocksdb_drop_column_family(h->db, v->cf, &msg);
    int rc = rdb_error(msg, "dropping a view's column family", NULL, 0);
    if (rc == 0)
        v->dropped = 1;
    pthread_rwlock_unlock(&h->lock);
    if (rc == 0)
        view_put(v); /* the table's reference; the handle goes with the last user */
    return rc;
}

int store__hist_sync(store_hist *h)
{
    char *msg = NULL;
    rocksdb_flush_wal(h->db, 1, &msg);
    return rdb_error(msg, "syncing the log", NULL, 0);
}

int store_hist_compact(store_hist *h, uint32_t view)
{
    hview *v = view_get(h, view);
    if (!v)
        return ERR_NOTFOUND;
    rocksdb_compact_range_cf(h->db, v->cf, NULL, 0, NULL, 0);
    view_put(v);
    return 0;
}

/* ---- writes -------------------------------------------------------------------------------- */

store_hbatch *store_hbatch_new(void)
{
    store_hbatch *b = try_calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->wb = rocksdb_writebatch_create();
    buf_init(&b->key);
    buf_init(&b->journal);
    return b;
}

void store_hbatch_free(store_hbatch *b)
{
    if (!b)
        return;
    rocksdb_writebatch_destroy(b->wb);
    if (b->undo)
        rocksdb_writebatch_destroy(b->undo);
    buf_free(&b->key);
    buf_free(&b->journal);
    xfree(b->views);
    xfree(b);
}

size_t store_hbatch_count(const store_hbatch *b)
{
    return (size_t)rocksdb_writebatch_count(b->wb);
}

int store_hbatch_put(store_hbatch *b, store_hist *h, uint32_t view, const char *entity, size_t elen,
                     int64_t event_us, int64_t created_us, const char *row, size_t rowlen)
{
    if (elen > HIST_ENTITY_MAX)
        return ERR_INVAL;
    hview *v = view_get(h, view);
    if (!v)
        return ERR_NOTFOUND;
    /* every allocation of ours before the row goes in: a refused put leaves the batch as
     * it was (RocksDB's own allocations in the batch are outside the wrapper) */
    size_t i = 0;
    while (i < b->nviews && b->views[i] != v)
        i++;
    int rc = 0;
    if (i == b->nviews && b->nviews == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        hview **views = try_realloc(b->views, cap * sizeof *views);
        if (views) {
            b->views = views;
            b->cap = cap;
        } else {
            rc = ERR_NOMEM;
        }
    }
    if (rc == 0)
        rc = key_encode(&b->key, entity, elen, event_us, created_us);
    if (rc == 0) {
        rocksdb_writebatch_put_cf(b->wb, v->cf, b->key.data, b->key.len, row, rowlen);
        if (b->undo)
            rocksdb_writebatch_delete_cf(b->undo, v->cf, b->key.data, b->key.len);
        if (i == b->nviews)
            b->views[b->nviews++] = v;
    }
    view_put(v);
    return rc;
}

void store__hbatch_mark(store_hbatch *b)
{
    rocksdb_writebatch_set_save_point(b->wb);
    if (b->undo)
        rocksdb_writebatch_set_save_point(b->undo);
}

void store__hbatch_rollback(store_hbatch *b)
{
    char *msg = NULL;
    rocksdb_writebatch_rollback_to_save_point(b->wb, &msg);
    rdb_error(msg, "undoing a batch's last put", NULL, 0); /* none set: nothing to undo */
    if (b->undo) {
        rocksdb_writebatch_rollback_to_save_point(b->undo, &msg);
        rdb_error(msg, "undoing a batch's last put", NULL, 0);
    }
}

void store__hbatch_unmark(store_hbatch *b)
{
    char *msg = NULL;
    rocksdb_writebatch_pop_save_point(b->wb, &msg);
    rdb_error(msg, "releasing a batch's save point", NULL, 0);
    if (b->undo) {
        rocksdb_writebatch_pop_save_point(b->undo, &msg);
        rdb_error(msg, "releasing a batch's save point", NULL, 0);
    }
}

int store__hbatch_track(store_hbatch *b)
{
    b->undo = rocksdb_writebatch_create();
    return b->undo ? 0 : ERR_NOMEM;
}

void store__hbatch_forget(store_hbatch *b)
{
    rocksdb_writebatch_clear(b->undo); /* its save points too */
    b->written = 0;
}

#define JOURNAL_KEY "journal" /* store.h, HISTORY JOURNAL */

int store__hbatch_unwrite(store_hist *h, store_hbatch *b)
{
    rocksdb_writebatch_clear(b->wb);
    b->nviews = 0;
    int rc = 0;
    if (b->written) {
        char *msg = NULL;
        /* the rows put after the last write never reached RocksDB: their deletes go */
        rocksdb_writebatch_rollback_to_save_point(b->undo, &msg);
        rdb_error(msg, "undoing a batch's unwritten rows", NULL, 0);
        if (b->journal_written) /* it names the pass's rows: none of them stays */
            rocksdb_writebatch_delete(b->undo, JOURNAL_KEY, strlen(JOURNAL_KEY));
        rocksdb_write(h->db, h->wsync, b->undo, &msg);
        rc = rdb_error(msg, "undoing a failed pass's rows", NULL, 0);
    }
    store__hbatch_forget(b);
    return rc;
}

int store__hist_ping(store_hist *h)
{
    char *msg = NULL;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_write(h->db, h->wnosync, wb, &msg);
    rocksdb_writebatch_destroy(wb);
    return rdb_error(msg, "probe", NULL, 0);
}

/* ---- the journal of online writes (store.h, HISTORY JOURNAL) --------------------------- */

#define JOURNAL_MAGIC "QVHJ"
#define JOURNAL_VERSION 1
#define JOURNAL_HEAD 13 /* magic, version, pass */

void store__hbatch_journal(store_hbatch *b, uint32_t view, uint64_t pass)
{
    char n[8];
    if (b->journal.len == 0) {
        buf_append(&b->journal, JOURNAL_MAGIC, 4);
        buf_appendc(&b->journal, JOURNAL_VERSION);
        put_be64(n, pass);
        buf_append(&b->journal, n, 8);
    }
    put_be32(n, view);
    put_be32(n + 4, (uint32_t)b->key.len);
    buf_append(&b->journal, n, 8);
    buf_append(&b->journal, b->key.data, b->key.len);
    b->journal_dirty = 1;
}

int store__hbatch_journaled(const store_hbatch *b)
{
    return b->journal_written;
}

void store__hbatch_journal_reset(store_hbatch *b)
{
    b->journal.len = 0;
    b->journal_dirty = b->journal_written = 0;
}

/* Adds the whole record so far to the batch (the default column family): each write of a
 * pass replaces it with a longer one. */
static void journal_put(store_hbatch *b)
{
    char crc[4];
    put_be32(crc, crc32c(0, b->journal.data, b->journal.len));
    buf_append(&b->journal, crc, 4);
    rocksdb_writebatch_put(b->wb, JOURNAL_KEY, strlen(JOURNAL_KEY), b->journal.data,
                           b->journal.len);
    b->journal.len -= 4;
}

/* Hands fn one journal entry's row; an entry whose view or row is gone is skipped. */
static int journal_entry(store_hist *h, rocksdb_readoptions_t *ro, uint32_t view,
                         const char *key, size_t klen, store__journal_fn fn, void *ctx)
{
    const char *entity;
    size_t elen, rowlen;
    int64_t event_us, created_us;
    if (key_decode(key, klen, &entity, &elen, &event_us, &created_us) != 0)
        return ERR_CORRUPT;
    hview *v = view_get(h, view);
    if (!v)
        return 0;
    char *msg = NULL;
    char *row = rocksdb_get_cf(h->db, ro, v->cf, key, klen, &rowlen, &msg);
    view_put(v);
    int rc = rdb_error(msg, "reading a journaled row", NULL, 0);
    if (rc == 0 && row)
        fn(ctx, view, entity, elen, event_us, created_us, row, rowlen);
    rocksdb_free(row);
    return rc;
}

int store__hist_journal(store_hist *h, uint64_t after, store__journal_fn fn, void *ctx,
                        uint64_t *pass)
{
    char *msg = NULL;
    size_t n;
    *pass = 0;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *rec = rocksdb_get(h->db, ro, JOURNAL_KEY, strlen(JOURNAL_KEY), &n, &msg);
    int rc = rdb_error(msg, "reading the journal", NULL, 0);
    if (rc == 0 && rec &&
        (n < JOURNAL_HEAD + 4 || memcmp(rec, JOURNAL_MAGIC, 4) != 0 ||
         rec[4] != JOURNAL_VERSION || crc32c(0, rec, n - 4) != get_be32(rec + n - 4)))
        rc = ERR_CORRUPT;
    if (rc == 0 && rec)
        *pass = get_be64(rec + 5);
    for (size_t off = JOURNAL_HEAD; rc == 0 && rec && *pass > after && off < n - 4;) {
        if (n - 4 - off < 8 || get_be32(rec + off + 4) > n - 4 - off - 8) {
            rc = ERR_CORRUPT;
            break;
        }
        uint32_t view = get_be32(rec + off), klen = get_be32(rec + off + 4);
        rc = journal_entry(h, ro, view, rec + off + 8, klen, fn, ctx);
        off += 8 + klen;
    }
    if (rc == ERR_CORRUPT)
        log_warn("history: the journal record is damaged");
    rocksdb_free(rec);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

/* RocksDB 7.8 is not atomic about a batch that names a dropped column family: it applies
 * the entries before that one to the memtables, then fails with "Invalid column family".
 * So the write holds the table's read lock (no drop can start) and refuses a batch whose
 * views are not all live, before RocksDB sees it. */
int store_hist_write(store_hist *h, store_hbatch *b, int sync, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = 0;
    pthread_rwlock_rdlock(&h->lock);
    for (size_t i = 0; i < b->nviews; i++) {
        if (b->views[i]->dropped) {
            if (err && errlen)
                snprintf(err, errlen, "history: write: view %u was dropped",
                         (unsigned)b->views[i]->id);
            rc = ERR_NOTFOUND;
            break;
        }
    }
    if (rc == 0 && b->journal_dirty)
        journal_put(b);
    if (rc == 0) {
        rocksdb_write(h->db, sync ? h->wsync : h->wnosync, b->wb, &msg);
        rc = rdb_error(msg, "write", err, errlen);
    }
    pthread_rwlock_unlock(&h->lock);
    if (rc == 0) { /* written: the batch can be reused */
        rocksdb_writebatch_clear(b->wb);
        b->nviews = 0;
        if (b->undo) {
            rocksdb_writebatch_set_save_point(b->undo);
            b->written++;
        }
        b->journal_written |= b->journal_dirty;
        b->journal_dirty = 0;
    }
    return rc;
}

/* ---- reads ----------------------------------------------------------------------------- */

int store_hist_asof(store_hist *h, uint32_t view, const char *entity, size_t elen, int64_t t,
                    int64_t min_event_us, int64_t *event_us, int64_t *created_us, buf *row)
{
    row->len = 0;
    if (elen > HIST_ENTITY_MAX)
        return ERR_INVAL;
    hview *v = view_get(h, view);
    if (!v)
        return ERR_NOTFOUND;
    if (t < min_event_us) {
        view_put(v);
        return ERR_NOTFOUND;
    }
    buf seek, upper;
    buf_init(&seek);
    buf_init(&upper);
    if (key_encode(&seek, entity, elen, t, INT64_MAX) ||
        key_upper_bound(&upper, entity, elen, min_event_us)) {
        buf_free(&seek);
        view_put(v);
        return ERR_NOMEM;
    }
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, upper.data, upper.len);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(h->db, ro, v->cf);
    rocksdb_iter_seek(it, seek.data, seek.len);

    int rc = ERR_NOTFOUND;
    if (rocksdb_iter_valid(it)) {
        size_t klen, vlen, n;
        const char *k = rocksdb_iter_key(it, &klen), *e;
        int64_t ev, cr;
        rc = key_decode(k, klen, &e, &n, &ev, &cr);
        if (rc == 0 && (n != elen || memcmp(e, entity, n) != 0 || ev > t || ev < min_event_us))
            rc = ERR_CORRUPT; /* the bounds make this impossible unless keys are bad */
        if (rc == 0) {
            const char *val = rocksdb_iter_value(it, &vlen);
            rc = buf_try_append(row, val, vlen);
        }
        if (rc == 0) {
            *event_us = ev;
            *created_us = cr;
        }
    } else {
        char *msg = NULL;
        rocksdb_iter_get_error(it, &msg);
        if (msg)
            rc = rdb_error(msg, "as-of read", NULL, 0);
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    buf_free(&seek);
    buf_free(&upper);
    view_put(v);
    return rc;
}

int store_hist_range(store_hist *h, uint32_t view, const char *entity, size_t elen, int64_t from,
                     int64_t to, int asc, store_hiter **out)
{
    *out = NULL;
    if (elen > HIST_ENTITY_MAX)
        return ERR_INVAL;
    hview *v = view_get(h, view);
    if (!v)
        return ERR_NOTFOUND;
    store_hiter *it = try_calloc(1, sizeof *it);
    if (!it) {
        view_put(v);
        return ERR_NOMEM;
    }
    it->asc = asc != 0;
    buf_init(&it->lo);
    buf_init(&it->hi);
    if (from > to) {
        view_put(v);
        it->done = 1;
        *out = it;
        return 0;
    }
    it->v = v;
    if (key_encode(&it->lo, entity, elen, to, INT64_MAX) || /* newest qualifying, inclusive */
        key_upper_bound(&it->hi, entity, elen, from)) {     /* just past the oldest, exclusive */
        store_hiter_free(it);
        return ERR_NOMEM;
    }
    it->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_lower_bound(it->ro, it->lo.data, it->lo.len);
    rocksdb_readoptions_set_iterate_upper_bound(it->ro, it->hi.data, it->hi.len);
    it->it = rocksdb_create_iterator_cf(h->db, it->ro, v->cf);
    if (it->asc) /* the oldest row: the last key before the upper bound */
        rocksdb_iter_seek_for_prev(it->it, it->hi.data, it->hi.len - 1);
    else
        rocksdb_iter_seek(it->it, it->lo.data, it->lo.len);
    *out = it;
    return 0;
}

int store_hiter_next(store_hiter *it, int64_t *event_us, int64_t *created_us, const char **row,
                     size_t *rowlen)
{
    if (it->done)
        return ERR_NOTFOUND;
    if (it->started) {
        if (it->asc)
            rocksdb_iter_prev(it->it);
        else
            rocksdb_iter_next(it->it);
    }
    it->started = 1;
    if (!rocksdb_iter_valid(it->it)) {
        char *msg = NULL;
        it->done = 1;
        rocksdb_iter_get_error(it->it, &msg);
        return msg ? rdb_error(msg, "history read", NULL, 0) : ERR_NOTFOUND;
    }
    size_t klen, elen;
    const char *k = rocksdb_iter_key(it->it, &klen), *e;
    int rc = key_decode(k, klen, &e, &elen, event_us, created_us);
    if (rc != 0) {
        it->done = 1;
        return rc;
    }
    *row = rocksdb_iter_value(it->it, rowlen);
    return 0;
}

void store_hiter_free(store_hiter *it)
{
    if (!it)
        return;
    if (it->it)
        rocksdb_iter_destroy(it->it);
    if (it->ro)
        rocksdb_readoptions_destroy(it->ro);
    if (it->v)
        view_put(it->v);
    buf_free(&it->lo);
    buf_free(&it->hi);
    xfree(it);
}

/* ---- cursors ----------------------------------------------------------------------------- */

/* A cursor reads its own snapshot through one iterator, created once and reused for every
 * entity: creating an iterator costs as much as a seek, and a join visits many entities in
 * key order, which is the order an iterator moves cheapest. The iterator is unbounded, so a
 * step past an entity's oldest row lands on the next entity's key: every move is checked
 * against the current entity (hcur_settle). */
struct store_hcur {
    store_hist *h;
    hview *v;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    buf ent; /* the current entity (valid when has_ent) */
    buf seek;
    int has_ent, positioned;
};

int store_hcur_new(store_hist *h, uint32_t view, store_hcur **out)
{
    *out = NULL;
    hview *v = view_get(h, view);
    if (!v)
        return ERR_NOTFOUND;
    store_hcur *c = try_calloc(1, sizeof *c);
    if (!c) {
        view_put(v);
        return ERR_NOMEM;
    }
    c->h = h;
    c->v = v;
    c->snap = rocksdb_create_snapshot(h->db);
    c->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(c->ro, c->snap);
    c->it = rocksdb_create_iterator_cf(h->db, c->ro, v->cf);
    buf_init(&c->ent);
    buf_init(&c->seek);
    *out = c;
    return 0;
}

void store_hcur_free(store_hcur *c)
{
    if (!c)
        return;
    rocksdb_iter_destroy(c->it);
    rocksdb_readoptions_destroy(c->ro);
    rocksdb_release_snapshot(c->h->db, c->snap);
    view_put(c->v);
    buf_free(&c->ent);
    buf_free(&c->seek);
    xfree(c);
}

/* 1 if entity is the cursor's current one. */
static int hcur_is(const store_hcur *c, const char *entity, size_t elen)
{
    return c->has_ent && c->ent.len == elen &&
           (elen == 0 || memcmp(c->ent.data, entity, elen) == 0);
}

/* RocksDB's error after a move that left the iterator invalid, or ERR_NOTFOUND. */
static int hcur_invalid(store_hcur *c)
{
    char *msg = NULL;
    rocksdb_iter_get_error(c->it, &msg);
    return msg ? rdb_error(msg, "history cursor", NULL, 0) : ERR_NOTFOUND;
}

/* After a move of c->it: positioned on a row of the current entity, or ERR_NOTFOUND (past
 * its rows, or RocksDB's error). A key that fails to decode is ERR_CORRUPT. */
static int hcur_settle(store_hcur *c)
{
    c->positioned = 0;
    if (!rocksdb_iter_valid(c->it))
        return hcur_invalid(c);
    size_t klen, elen;
    const char *k = rocksdb_iter_key(c->it, &klen), *e;
    int64_t ev, cr;
    int rc = key_decode(k, klen, &e, &elen, &ev, &cr);
    if (rc != 0)
        return rc;
    if (!hcur_is(c, e, elen))
        return ERR_NOTFOUND;
    c->positioned = 1;
    return 0;
}

int store_hcur_seek(store_hcur *c, const char *entity, size_t elen, int64_t t)
{
    c->positioned = 0;
    c->has_ent = 0;
    if (elen > HIST_ENTITY_MAX)
        return ERR_INVAL;
    if (entity != c->ent.data) {
        c->ent.len = 0;
        if (buf_try_append(&c->ent, entity, elen))
            return ERR_NOMEM;
    }
    if (key_encode(&c->seek, entity, elen, t, INT64_MAX))
        return ERR_NOMEM;
    c->has_ent = 1;
    rocksdb_iter_seek(c->it, c->seek.data, c->seek.len);
    int rc = hcur_settle(c);
    if (rc != 0)
        c->has_ent = 0; /* unpositioned: next_entity starts from the first entity */
    return rc;
}

int store_hcur_next(store_hcur *c)
{
    if (!c->positioned)
        return ERR_NOTFOUND;
    rocksdb_iter_next(c->it);
    return hcur_settle(c); /* past the oldest row: the entity stays current */
}

int store_hcur_next_entity(store_hcur *c)
{
    if (c->has_ent) {
        if (key_upper_bound(&c->seek, c->ent.data, c->ent.len, INT64_MIN))
            return ERR_NOMEM; /* the cursor stays where it was */
        rocksdb_iter_seek(c->it, c->seek.data, c->seek.len);
    } else {
        rocksdb_iter_seek_to_first(c->it);
    }
    c->has_ent = 0;
    c->positioned = 0;
    if (!rocksdb_iter_valid(c->it))
        return hcur_invalid(c);
    size_t klen, elen;
    const char *k = rocksdb_iter_key(c->it, &klen), *e;
    int64_t ev, cr;
    int rc = key_decode(k, klen, &e, &elen, &ev, &cr);
    if (rc != 0)
        return rc;
    c->ent.len = 0;
    if (buf_try_append(&c->ent, e, elen))
        return ERR_NOMEM; /* unpositioned (documented for errors) */
    c->has_ent = 1;
    c->positioned = 1; /* the first key of an entity is its newest row */
    return 0;
}

void store_hcur_row(const store_hcur *c, const char **entity, size_t *elen, int64_t *event_us,
                    int64_t *created_us, const char **row, size_t *rowlen)
{
    size_t klen;
    const char *k = rocksdb_iter_key(c->it, &klen);
    key_decode(k, klen, entity, elen, event_us, created_us); /* checked by hcur_settle */
    *row = rocksdb_iter_value(c->it, rowlen);
}

int store_hist_views(store_hist *h, uint32_t *ids, int max)
{
    int n = 0;
    pthread_rwlock_rdlock(&h->lock);
    for (size_t i = 0; i < h->nviews; i++) {
        if (h->views[i]->dropped)
            continue;
        if (n < max)
            ids[n] = h->views[i]->id;
        n++;
    }
    pthread_rwlock_unlock(&h->lock);
    return n;
}

int store_hist_checkpoint(store_hist *h, const char *dir, char *err, size_t errlen)
{
    char *msg = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(h->db, &msg);
    int rc = rdb_error(msg, "checkpoint", err, errlen);
    if (rc)
        return rc;
    /* 0: flush the memtables first, so the checkpoint needs no WAL replay to be whole */
    rocksdb_checkpoint_create(cp, dir, 0, &msg);
    rc = rdb_error(msg, "checkpoint", err, errlen);
    rocksdb_checkpoint_object_destroy(cp);
    return rc;
}
