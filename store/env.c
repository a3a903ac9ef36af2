/* env.c: the LMDB environment and the one write path around it: opening and checking the
 * data directory, the per-pass read snapshot and group-committed write transaction, the
 * durability policy (fsync per commit, a background sync every second, or none), growth of
 * the memory map before it fills, and the replication log's offsets. The feature store's
 * second engine joins the same path: the history (RocksDB) is opened and matched to the
 * catalog here, a commit writes the pass's history batch before LMDB commits and drops
 * the dropped views' column families after, and a failed pass undoes the catalog. */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#define MAP_MIN ((size_t)1 << 20)          /* the smallest cap */
#define MAP_HEADROOM ((size_t)1 << 20)     /* kept free beyond what writers announce */
#define DEL_HEADROOM ((size_t)256 << 10)   /* what a write that announces nothing may take */
#define HIST_PROBE_MS 1000                 /* history writes failing: probe at most this often */

#define FORMAT_MAGIC "QVKS"
#define FORMAT_VERSION 1u
#define REPL_REC_LEN 52 /* meta "repl": replid[40], u64 offset, i32 db */

int store__map_rc(int rc)
{
    switch (rc) {
    case 0: return 0;
    case MDB_NOTFOUND: return ERR_NOTFOUND;
    case MDB_MAP_FULL: return ERR_FULL;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH: return ERR_CORRUPT;
    case ENOSPC:
    case EIO: return ERR_IO;
    case ENOMEM: return ERR_NOMEM;
    default: return ERR_BACKEND;
    }
}

int store__fail(store_txn *t, int rc)
{
    int err = store__map_rc(rc);
    if (t->write && rc != MDB_NOTFOUND && !t->st->pass_err) {
        t->st->pass_err = err;
        log_warn("store: write transaction failed: %s", mdb_strerror(rc));
    }
    return err;
}

static int mkdirs(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return -1;
    memcpy(path, dir, n + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return (mkdir(path, 0755) != 0 && errno != EEXIST) ? -1 : 0;
}

static void counts_decode(store *st, const MDB_val *v)
{
    memset(st->counts, 0, sizeof st->counts);
    if (v->mv_size == sizeof st->counts)
        memcpy(st->counts, v->mv_data, sizeof st->counts);
}

/* Reloads the counters from the last committed state (after an abort). */
static void counts_reload(store *st)
{
    MDB_txn *txn;
    MDB_val k = {6, "counts"}, v;
    memset(st->counts, 0, sizeof st->counts);
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) != 0)
        return;
    if (mdb_get(txn, st->meta, &k, &v) == 0)
        counts_decode(st, &v);
    mdb_txn_abort(txn);
    st->counts_dirty = 0;
}

static uint64_t last_id(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t id = 0;
    if (mdb_cursor_open(txn, dbi, &c) != 0)
        return 0;
    if (mdb_cursor_get(c, &k, &v, MDB_LAST) == 0 && k.mv_size >= 8) {
        const unsigned char *p = k.mv_data;
        for (int i = 0; i < 8; i++)
            id = id << 8 | p[i];
    }
    mdb_cursor_close(c);
    return id;
}

/* The log position of the committed data (meta "repl", see store.h). */
static void repl_decode(store *st, const unsigned char *p)
{
    int32_t db;
    memcpy(st->replid, p, 40);
    st->replid[40] = '\0';
    memcpy(&st->offset, p + 40, 8);
    memcpy(&db, p + 48, 4);
    st->log_db = db >= 0 && db < STORE_DBS ? db : -1;
    st->committed_offset = st->offset;
    st->committed_db = st->log_db;
}

static int repl_put(store *st)
{
    unsigned char rec[REPL_REC_LEN] = {0};
    int32_t db = st->log_db;
    memcpy(rec, st->replid, strlen(st->replid));
    memcpy(rec + 40, &st->offset, 8);
    memcpy(rec + 48, &db, 4);
    MDB_val k = {4, "repl"}, v = {sizeof rec, rec};
    return mdb_put(st->wr.txn, st->meta, &k, &v, 0);
}

/* After a pass failed: what it logged never happened. */
static void log_rewind(store *st)
{
    st->offset = st->committed_offset;
    st->log_db = st->committed_db;
    if (st->commit_fn)
        st->commit_fn(st->commit_ctx, 0, st->offset);
}

/* Creates the named databases and checks (or writes) the format record. */
static int open_dbs(store *st, char *err, size_t errlen)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc)
        goto fail;
    struct { const char *name; MDB_dbi *dbi; } dbs[] = {
        {"meta", &st->meta}, {"keys", &st->keys}, {"lkeys", &st->lkeys},
        {"fields", &st->fields}, {"lfields", &st->lfields}, {"expires", &st->expires},
        {"catalog", &st->catalog}, {"online", &st->online},
    };
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++)
        if ((rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbs[i].dbi)) != 0)
            goto fail_txn;

    MDB_val k = {6, "format"}, v;
    unsigned char fmt[8];
    memcpy(fmt, FORMAT_MAGIC, 4);
    uint32_t ver = FORMAT_VERSION;
    memcpy(fmt + 4, &ver, 4);
    rc = mdb_get(txn, st->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        v.mv_size = sizeof fmt;
        v.mv_data = fmt;
        if ((rc = mdb_put(txn, st->meta, &k, &v, 0)) != 0)
            goto fail_txn;
    } else if (rc) {
        goto fail_txn;
    } else if (v.mv_size != sizeof fmt || memcmp(v.mv_data, fmt, sizeof fmt) != 0) {
        mdb_txn_abort(txn);
        snprintf(err, errlen, "data directory holds an unknown format (expected %s v%u)",
                 FORMAT_MAGIC, FORMAT_VERSION);
        return ERR_CORRUPT;
    }
    MDB_val ck = {6, "counts"};
    if (mdb_get(txn, st->meta, &ck, &v) == 0)
        counts_decode(st, &v);
    MDB_val rk = {4, "repl"};
    if (mdb_get(txn, st->meta, &rk, &v) == 0 && v.mv_size == REPL_REC_LEN)
        repl_decode(st, v.mv_data);
    uint64_t a = last_id(txn, st->fields), b = last_id(txn, st->lfields);
    st->next_hash_id = (a > b ? a : b) + 1;
    if ((rc = mdb_txn_commit(txn)) != 0)
        goto fail;
    return 0;
fail_txn:
    mdb_txn_abort(txn);
fail:
    snprintf(err, errlen, "LMDB: %s", mdb_strerror(rc));
    return store__map_rc(rc);
}

static int back_map(store *st, size_t size);

/* Gives every catalog view its column family and retention, and drops the column families
 * that no view owns (a crash between a view's creation and its commit, or between a drop's
 * commit and its column family's drop). */
static int reconcile_history(store *st, char *err, size_t errlen)
{
    int n = store_hist_views(st->hist, NULL, 0);
    uint32_t *ids = try_calloc((size_t)n + 1, sizeof *ids);
    if (!ids) {
        snprintf(err, errlen, "history: out of memory");
        return ERR_NOMEM;
    }
    n = store_hist_views(st->hist, ids, n);
    for (int i = 0; i < n; i++) {
        int owned = 0;
        for (int j = 0; j < st->cat.nviews && !owned; j++)
            owned = st->cat.views[j].id == ids[i];
        if (owned)
            continue;
        log_warn("store: dropping the history of view id %u, which no view owns",
                 (unsigned)ids[i]);
        if (store_hist_drop_view(st->hist, ids[i]) != 0) /* kept: only space is lost */
            log_warn("store: cannot drop the history of view id %u", (unsigned)ids[i]);
    }
    xfree(ids);
    int rc = 0;
    for (int j = 0; j < st->cat.nviews && !rc; j++) {
        const store_view *v = &st->cat.views[j];
        rc = store_hist_set_retention(st->hist, v->id, v->retention_us);
        if (rc == ERR_NOTFOUND) {
            log_warn("store: view '%s' had no history: created empty", v->name);
            rc = store_hist_create_view(st->hist, v->id, v->retention_us);
        }
    }
    if (rc)
        snprintf(err, errlen, "history: cannot match the views of the catalog: %s",
                 err_str(rc));
    return rc;
}

/* One journaled row: written onto its online row as the push did (if its view is still
 * online; a row older than the online one changes nothing). */
static void replay_row(void *ctx, uint32_t view, const char *ekey, size_t elen, int64_t event_us,
                       int64_t created_us, const char *row, size_t rowlen)
{
    store_txn *t = ctx;
    for (int i = 0; i < t->st->cat.nviews; i++) {
        const store_view *v = &t->st->cat.views[i];
        if (v->id == view && v->online)
            store_online_put(t, v, ekey, elen, event_us, created_us, row, rowlen, NULL);
    }
}

/* A crash after a pass wrote its history rows but before LMDB committed leaves rows whose
 * online rows were not written (their pushes were never acknowledged). The journal names
 * the pass's rows that went online too, and meta "hpass" the last pass LMDB committed: a
 * newer journal is replayed onto the online rows, so such a push is applied whole. */
static int replay_journal(store *st, char *err, size_t errlen)
{
    MDB_txn *txn;
    MDB_val k = {5, "hpass"}, v;
    uint64_t done = 0, pass;
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc) {
        snprintf(err, errlen, "LMDB: %s", mdb_strerror(rc));
        return store__map_rc(rc);
    }
    if (mdb_get(txn, st->meta, &k, &v) == 0 && v.mv_size == 8)
        done = store__get_be64(v.mv_data);
    store_txn t = {.st = st, .txn = txn, .write = 1};
    rc = store__hist_journal(st->hist, done, replay_row, &t, &pass);
    if (rc == 0 && pass > done) {
        unsigned char b[8];
        store__put_be64(b, pass);
        v = (MDB_val){8, b};
        log_warn("store: pass %llu wrote history but did not commit: its online rows replayed",
                 (unsigned long long)pass);
        rc = st->pass_err ? st->pass_err : store__map_rc(mdb_put(txn, st->meta, &k, &v, 0));
        if (rc == 0) {
            rc = store__map_rc(mdb_txn_commit(txn));
            txn = NULL;
        }
    }
    if (txn)
        mdb_txn_abort(txn);
    if (rc) {
        snprintf(err, errlen, "history: cannot replay the journal of online writes: %s",
                 err_str(rc));
        return rc;
    }
    st->journal_pass = (pass > done ? pass : done) + 1;
    return 0;
}

/* Opens the history in <dir>/history and loads the catalog. */
static int open_fs(store *st, const store_config *cfg, char *err, size_t errlen)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/history", cfg->dir) >= sizeof path) {
        snprintf(err, errlen, "data directory name too long");
        return ERR_INVAL;
    }
    int rc = store_hist_open(path, cfg->hist_cache_bytes, &st->hist, err, errlen);
    if (rc == 0)
        rc = store__catalog_load(st, err, errlen);
    if (rc == 0)
        rc = reconcile_history(st, err, errlen);
    if (rc == 0)
        rc = replay_journal(st, err, errlen);
    if (rc == 0 && (!(st->hbatch = store_hbatch_new()) || store__hbatch_track(st->hbatch))) {
        snprintf(err, errlen, "history: out of memory");
        rc = ERR_NOMEM;
    }
    return rc;
}

static void close_fs(store *st)
{
    store_hbatch_free(st->hbatch); /* before the handle it was filled from */
    st->hbatch = NULL;
    store_hist_close(st->hist);
    st->hist = NULL;
    store__catalog_free(&st->cat);
    xfree(st->created.ids);
    xfree(st->drops.ids);
    memset(&st->created, 0, sizeof st->created);
    memset(&st->drops, 0, sizeof st->drops);
}

/* Writes the pass's history batch (synced under `always`). */
static int write_history(store *st)
{
    size_t n = store_hbatch_count(st->hbatch);
    if (n == 0)
        return 0;
    char err[256] = "";
    pthread_mutex_lock(&st->hist_mu);
    int rc = store_hist_write(st->hist, st->hbatch, st->durability == DURABILITY_ALWAYS, err,
                              sizeof err);
    if (rc == ERR_IO || rc == ERR_BACKEND) { /* RocksDB itself failed, not a dropped view */
        st->hist_err = rc;
        st->hist_probe_ms = clock_ms();
        snprintf(st->hist_why, sizeof st->hist_why,
                 "history storage (RocksDB) failed, pushes to it are refused: %s",
                 err[0] ? err : err_str(rc));
    }
    pthread_mutex_unlock(&st->hist_mu);
    if (rc) {
        log_warn("store: %s", err[0] ? err : err_str(rc));
        st->fs_stats.history_write_errors++;
        return rc;
    }
    st->fs_stats.history_batches++;
    st->fs_stats.history_rows += n;
    return 0;
}

/* After a commit: the dropped views' column families go, the pass's new views stay, and
 * the online-row hook hears of it. */
static void fs_committed(store *st)
{
    store__hbatch_forget(st->hbatch);
    for (int i = 0; i < st->drops.n; i++) {
        int rc = store_hist_drop_view(st->hist, st->drops.ids[i]);
        if (rc && rc != ERR_NOTFOUND) /* the next open drops it */
            log_warn("store: cannot drop the history of view id %u: %s",
                     (unsigned)st->drops.ids[i], err_str(rc));
    }
    st->drops.n = 0;
    st->created.n = 0;
    store__hbatch_journal_reset(st->hbatch);
    st->journal_pass++;
    store__online_notify(st, STORE_ONLINE_COMMIT);
}

/* After a failed pass: its history rows, catalog changes and new column families go, and
 * the online-row hook hears that its changes since the last commit were undone. */
static void fs_failed(store *st)
{
    char err[256];
    /* rows this pass already wrote to RocksDB (a read of history mid-pass, or the commit's
     * own write before LMDB failed) go again, so history holds only committed pushes */
    if (store__hbatch_unwrite(st->hist, st->hbatch) != 0)
        log_warn("store: rows of a failed pass stay in the history: their pushes were "
                 "never acknowledged");
    int rc = store__catalog_load(st, err, sizeof err);
    if (rc == ERR_NOMEM) {
        /* the copy still holds the failed pass's changes: serving it would write through a
         * catalog that LMDB does not have; the data on disk is intact */
        log_warn("store: no memory to reload the catalog after a failed pass: aborting");
        abort();
    }
    if (rc)
        log_warn("store: cannot reload the catalog after a failed pass: %s", err);
    st->drops.n = 0;
    for (int i = 0; i < st->created.n; i++)
        store_hist_drop_view(st->hist, st->created.ids[i]);
    st->created.n = 0;
    store__hbatch_journal_reset(st->hbatch);
    st->journal_pass++;
    store__online_notify(st, STORE_ONLINE_ABORT);
}

/* Syncs the history's log unless a write failed: RocksDB 7.8 then asserts in a sync of
 * the log that failed (WritableFileWriter: "sync_without_flush_called_"); what that log
 * holds is no more than the writes that succeeded before. */
static int hist_sync(store *st)
{
    pthread_mutex_lock(&st->hist_mu);
    int rc = st->hist_err ? 0 : store__hist_sync(st->hist);
    pthread_mutex_unlock(&st->hist_mu);
    return rc;
}

static void *sync_main(void *arg)
{
    store *st = arg;
    pthread_mutex_lock(&st->sync_mu);
    while (!st->sync_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&st->sync_cv, &st->sync_mu, &ts);
        if (st->sync_stop || !atomic_exchange(&st->sync_pending, 0))
            continue;
        pthread_mutex_unlock(&st->sync_mu);
        /* history first: what LMDB has on disk never runs ahead of it by more than the
         * commits of this last moment */
        if (hist_sync(st) != 0)
            atomic_store(&st->sync_pending, 1);
        pthread_mutex_lock(&st->map_mu);
        int rc = mdb_env_sync(st->env, 1);
        pthread_mutex_unlock(&st->map_mu);
        if (rc) {
            log_warn("store: background fsync failed: %s", mdb_strerror(rc));
            atomic_store(&st->sync_pending, 1); /* try again next second */
        }
        atomic_fetch_add(&st->syncs, 1);
        atomic_store(&st->last_sync_ms, (uint64_t)clock_ms());
        pthread_mutex_lock(&st->sync_mu);
    }
    pthread_mutex_unlock(&st->sync_mu);
    return NULL;
}

int store_open(const store_config *cfg, store **out, char *err, size_t errlen)
{
    if (mkdirs(cfg->dir) != 0) {
        snprintf(err, errlen, "cannot create data directory '%s': %s", cfg->dir, strerror(errno));
        return ERR_IO;
    }
    store *st = try_calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return ERR_NOMEM;
    }
    st->map_size = cfg->map_size ? cfg->map_size : (size_t)1 << 30;
    if (cfg->max_map_size) { /* whole pages, at least 1 MiB, and the map starts within it */
        st->max_map_size = cfg->max_map_size & ~(size_t)4095;
        if (st->max_map_size < MAP_MIN)
            st->max_map_size = MAP_MIN;
        if (st->map_size > st->max_map_size)
            st->map_size = st->max_map_size;
    }
    st->log_db = -1;
    pthread_mutex_init(&st->sync_mu, NULL);
    pthread_mutex_init(&st->map_mu, NULL);
    pthread_mutex_init(&st->hist_mu, NULL);
    pthread_cond_init(&st->sync_cv, NULL);
    int rc = mdb_env_create(&st->env);
    if (!rc)
        rc = mdb_env_set_maxdbs(st->env, 16);
    if (!rc)
        rc = mdb_env_set_mapsize(st->env, st->map_size);
    /* WRITEMAP: a transaction writes its pages in the map itself, so a commit has no
     * page copies to pwrite (twice the throughput of pipelined writes). Live pages are
     * still never overwritten, so a crash mid-transaction leaves the last commit intact;
     * the file is sparse at the map's size. */
    if (!rc)
        rc = mdb_env_open(st->env, cfg->dir, MDB_NOTLS | MDB_NOSYNC | MDB_WRITEMAP, 0644);
    if (rc) {
        snprintf(err, errlen, "cannot open LMDB environment in '%s': %s", cfg->dir,
                 mdb_strerror(rc));
        goto fail;
    }
    MDB_envinfo info;
    mdb_env_info(st->env, &info);
    st->map_size = info.me_mapsize; /* an existing file may be larger than asked */
    MDB_stat ms;
    mdb_env_stat(st->env, &ms);
    st->psize = ms.ms_psize;
    st->backed = back_map(st, st->map_size) == 0; /* if not, writes retry it (ERR_FULL) */
    if ((rc = open_dbs(st, err, errlen)) != 0)
        goto fail_mapped;
    if ((rc = open_fs(st, cfg, err, errlen)) != 0)
        goto fail_mapped;
    store_set_durability(st, cfg->durability);
    if (pthread_create(&st->sync_thread, NULL, sync_main, st) == 0)
        st->sync_started = 1;
    *out = st;
    return 0;
fail:
    rc = store__map_rc(rc);
fail_mapped:
    close_fs(st);
    if (st->env)
        mdb_env_close(st->env);
    pthread_mutex_destroy(&st->sync_mu);
    pthread_mutex_destroy(&st->map_mu);
    pthread_mutex_destroy(&st->hist_mu);
    pthread_cond_destroy(&st->sync_cv);
    xfree(st);
    return rc;
}

void store_close(store *st)
{
    if (!st)
        return;
    store_txn_end(st);
    if (st->rd_open)
        mdb_txn_abort(st->rd.txn);
    if (st->sync_started) {
        pthread_mutex_lock(&st->sync_mu);
        st->sync_stop = 1;
        pthread_cond_signal(&st->sync_cv);
        pthread_mutex_unlock(&st->sync_mu);
        pthread_join(st->sync_thread, NULL);
    }
    hist_sync(st);
    close_fs(st);
    mdb_env_sync(st->env, 1);
    mdb_env_close(st->env);
    pthread_mutex_destroy(&st->sync_mu);
    pthread_mutex_destroy(&st->map_mu);
    pthread_mutex_destroy(&st->hist_mu);
    pthread_cond_destroy(&st->sync_cv);
    xfree(st);
}

int store_set_durability(store *st, int durability)
{
    if (durability < DURABILITY_NO || durability > DURABILITY_ALWAYS)
        return ERR_INVAL;
    /* `always` lets LMDB sync inside every commit, in the order that keeps the file intact
     * on power loss; the others commit to the page cache and sync later (or never). */
    int rc = mdb_env_set_flags(st->env, MDB_NOSYNC, durability != DURABILITY_ALWAYS);
    if (rc)
        return store__map_rc(rc);
    st->durability = durability;
    return 0;
}

void store_set_expired_hook(store *st, store_expired_fn fn, void *ctx)
{
    st->expired_fn = fn;
    st->expired_ctx = ctx;
}

void store_set_log_hook(store *st, store_log_fn fn, void *ctx)
{
    st->log_fn = fn;
    st->log_ctx = ctx;
}

static size_t used_bytes(store *st)
{
    MDB_envinfo info;
    mdb_env_info(st->env, &info);
    return (info.me_last_pgno + 1) * (size_t)st->psize;
}

/* Gives the first size bytes of the data file real disk blocks. With MDB_WRITEMAP the map
 * is written through directly, and a write to a page with no block behind it (a sparse
 * file on a full disk) is a SIGBUS, not an error: so no page is used before it is backed. */
static int back_map(store *st, size_t size)
{
    int fd;
    if (mdb_env_get_fd(st->env, &fd) != 0)
        return ERR_BACKEND;
    int rc = posix_fallocate(fd, 0, (off_t)size);
    if (rc) {
        log_warn("store: cannot reserve %zu MiB of disk for the data file: %s", size >> 20,
                 strerror(rc));
        return rc == ENOSPC ? ERR_FULL : ERR_IO;
    }
    return 0;
}

/* Doubles the map until need bytes fit in half of it, or up to the cap (ERR_FULL when it
 * is there already). Only between write transactions; the pass's read snapshot is
 * released first (LMDB remaps, and wants no live reader). */
static int grow_map(store *st, size_t need)
{
    if (atomic_load(&st->snaps) > 0)
        return ERR_AGAIN; /* a snapshot reads the map from another thread */
    size_t size = st->map_size;
    while (size / 2 < need)
        size *= 2;
    if (st->max_map_size && size > st->max_map_size)
        size = st->max_map_size > st->map_size ? st->max_map_size : st->map_size;
    if (size == st->map_size)
        return size / 2 < need ? ERR_FULL : 0;
    int rc = back_map(st, size); /* disk first: a failure leaves the map as it was */
    if (rc)
        return rc;
    if (st->rd_open && !st->rd_reset) {
        mdb_txn_reset(st->rd.txn);
        st->rd_reset = 1;
    }
    pthread_mutex_lock(&st->map_mu);
    rc = mdb_env_set_mapsize(st->env, size);
    if (rc && mdb_env_set_mapsize(st->env, st->map_size) != 0) {
        /* LMDB unmapped the old map and can map neither size: nothing can run on. */
        log_warn("store: cannot map the data file again after a failed growth: aborting");
        abort();
    }
    pthread_mutex_unlock(&st->map_mu);
    if (rc) {
        log_warn("store: cannot grow the map to %zu bytes: %s", size, mdb_strerror(rc));
        return store__map_rc(rc);
    }
    log_info("store: map grown to %zu MiB", size >> 20);
    st->map_size = size;
    return 0;
}

int store_txn_read(store *st, store_txn **out)
{
    if (st->wr_open) {
        *out = &st->wr;
        return 0;
    }
    int rc = 0;
    if (!st->rd_open) {
        rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &st->rd.txn);
        st->rd.st = st;
        st->rd_open = rc == 0;
    } else if (st->rd_reset) {
        rc = mdb_txn_renew(st->rd.txn);
        st->rd_reset = rc != 0;
    }
    if (rc)
        return store__map_rc(rc);
    *out = &st->rd;
    return 0;
}

static int commit(store *st)
{
    int rc = write_history(st);
    if (rc) {
        mdb_txn_abort(st->wr.txn);
        st->wr_open = 0;
        st->failed_commits++;
        counts_reload(st);
        fs_failed(st);
        log_rewind(st);
        return rc;
    }
    if (st->counts_dirty) {
        MDB_val k = {6, "counts"}, v = {sizeof st->counts, st->counts};
        rc = mdb_put(st->wr.txn, st->meta, &k, &v, 0);
    }
    if (!rc && store__hbatch_journaled(st->hbatch)) { /* its journal is now obsolete */
        unsigned char b[8];
        store__put_be64(b, st->journal_pass);
        MDB_val k = {5, "hpass"}, v = {8, b};
        rc = mdb_put(st->wr.txn, st->meta, &k, &v, 0);
    }
    if (!rc)
        rc = repl_put(st);
    if (rc)
        mdb_txn_abort(st->wr.txn);
    else
        rc = mdb_txn_commit(st->wr.txn);
    st->wr_open = 0;
    if (rc) {
        log_warn("store: commit failed: %s", mdb_strerror(rc));
        st->failed_commits++;
        counts_reload(st);
        fs_failed(st);
        log_rewind(st);
        return store__map_rc(rc);
    }
    fs_committed(st);
    st->committed_offset = st->offset;
    st->committed_db = st->log_db;
    if (st->commit_fn)
        st->commit_fn(st->commit_ctx, 1, st->offset);
    st->counts_dirty = 0;
    st->commits++;
    if (st->durability == DURABILITY_ALWAYS) {
        atomic_fetch_add(&st->syncs, 1);
        atomic_store(&st->last_sync_ms, (uint64_t)clock_ms());
    } else if (st->durability == DURABILITY_EVERYSEC) {
        atomic_store(&st->sync_pending, 1);
    }
    return 0;
}

/* Bytes of the pages in LMDB's free list, which later writes reuse. The free list is LMDB's
 * dbi 0; each record holds a page-number list whose first word is its count. */
static size_t free_bytes(store *st)
{
    MDB_txn *txn = st->wr_open ? st->wr.txn : NULL;
    MDB_cursor *c;
    MDB_val k, v;
    size_t pages = 0;
    if (!txn && mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    if (mdb_cursor_open(txn, 0, &c) == 0) {
        while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0) {
            size_t n = 0;
            if (v.mv_size >= sizeof n)
                memcpy(&n, v.mv_data, sizeof n);
            pages += n;
        }
        mdb_cursor_close(c);
    }
    if (!st->wr_open)
        mdb_txn_abort(txn);
    return pages * st->psize;
}

/* With the map at its cap: ERR_FULL unless the write fits in the room left (store.h,
 * STORAGE FULL). */
static int room_for(store *st, size_t hint_bytes)
{
    size_t want = 2 * (st->pass_bytes + hint_bytes) + (hint_bytes ? MAP_HEADROOM : DEL_HEADROOM);
    size_t used = used_bytes(st), room = used < st->map_size ? st->map_size - used : 0;
    if (want <= room)
        return 0;
    return want <= room + free_bytes(st) ? 0 : ERR_FULL;
}

int store_txn_write(store *st, size_t hint_bytes, store_txn **out)
{
    if (st->pass_err)
        return st->pass_err;
    if (!st->backed) {
        if (back_map(st, st->map_size) != 0)
            return ERR_FULL; /* writes are refused; reads go on */
        st->backed = 1;
    }
    /* Keep the map at most half full, counting what this pass has announced, so that a
     * put never meets MDB_MAP_FULL in practice. A large write mid-pass commits what the
     * pass has so far (nothing is acknowledged before store_txn_end) and grows first. */
    size_t need = used_bytes(st) + 2 * (st->pass_bytes + hint_bytes) + MAP_HEADROOM;
    int capped = st->max_map_size && st->map_size >= st->max_map_size;
    if (need > st->map_size / 2 && !capped && !(st->hold && st->wr_open)) {
        if (st->wr_open) {
            int rc = commit(st);
            if (rc)
                return st->pass_err = rc;
        }
        int rc = grow_map(st, need);
        capped = st->max_map_size && st->map_size >= st->max_map_size;
        if (rc && need > st->map_size && !capped)
            return rc;
    }
    if (capped) {
        int rc = room_for(st, hint_bytes);
        if (rc)
            return rc; /* nothing written: the pass goes on for others */
    }
    st->pass_bytes += hint_bytes;
    if (!st->wr_open) {
        int rc = mdb_txn_begin(st->env, NULL, 0, &st->wr.txn);
        if (rc)
            return store__map_rc(rc);
        st->wr.st = st;
        st->wr.write = 1;
        st->wr_open = 1;
    }
    *out = &st->wr;
    return 0;
}

void store_txn_hold(store *st, size_t hint_bytes, int on)
{
    if (on) {
        store_txn *t;
        store_txn_write(st, hint_bytes, &t); /* grows (committing) before, not during */
    }
    st->hold = on;
}

int store_txn_dirty(const store *st)
{
    return st->wr_open;
}

int store_txn_end(store *st)
{
    int err = st->pass_err;
    if (st->wr_open) {
        if (err) {
            mdb_txn_abort(st->wr.txn);
            st->wr_open = 0;
            st->failed_commits++;
            counts_reload(st);
            fs_failed(st);
            log_rewind(st);
        } else {
            err = commit(st);
        }
    }
    if (st->rd_open && !st->rd_reset) {
        mdb_txn_reset(st->rd.txn);
        st->rd_reset = 1;
    }
    /* After ERR_FULL, at least double: an aborted pass leaves used_bytes unchanged, and an
     * unannounced write would otherwise fail the same way on every retry. */
    size_t need = used_bytes(st) + st->pass_bytes;
    if (err == ERR_FULL && need < st->map_size)
        need = st->map_size;
    if (err == ERR_FULL || used_bytes(st) > st->map_size / 2)
        grow_map(st, need);
    st->pass_err = 0;
    st->pass_bytes = 0;
    return err;
}

static size_t resp_len_header(size_t n)
{
    size_t digits = 1;
    while (n >= 10) {
        n /= 10;
        digits++;
    }
    return 3 + digits; /* "*" or "$", digits, CRLF */
}

uint64_t store_log(store *st, int db, int argc, const char *const *argv, const size_t *lens)
{
    if (db != st->log_db) {
        char num[24];
        size_t n = i64_to_str(num, db);
        st->offset += resp_len_header(2) + resp_len_header(6) + 6 + 2 + resp_len_header(n) + n + 2;
        st->log_db = db;
    }
    st->offset += resp_len_header((size_t)argc);
    for (int i = 0; i < argc; i++)
        st->offset += resp_len_header(lens[i]) + lens[i] + 2;
    if (st->log_fn)
        st->log_fn(st->log_ctx, st->offset, db, argc, argv, lens);
    return st->offset;
}

uint64_t store_offset(const store *st)
{
    return st->offset;
}

void store_pause_expiry(store *st, int paused)
{
    st->expiry_paused = paused;
}

void store_set_commit_hook(store *st, store_commit_fn fn, void *ctx)
{
    st->commit_fn = fn;
    st->commit_ctx = ctx;
}

const char *store_replid(const store *st)
{
    return st->replid;
}

void store_set_replid(store *st, const char *replid)
{
    snprintf(st->replid, sizeof st->replid, "%s", replid);
}

void store_set_log_position(store *st, uint64_t offset, int db)
{
    st->offset = offset;
    st->log_db = db;
    if (!st->wr_open) { /* nothing pending: this is the committed position too */
        st->committed_offset = offset;
        st->committed_db = db;
    }
}

int store_log_db(const store *st)
{
    return st->log_db;
}

void store__count(store *st, int db, int dkeys, int dexpires)
{
    st->counts[db][0] += (uint64_t)(int64_t)dkeys;
    st->counts[db][1] += (uint64_t)(int64_t)dexpires;
    st->counts_dirty = 1;
}

uint64_t store_dbsize(const store *st, int db)
{
    return st->counts[db][0];
}

uint64_t store_expires(const store *st, int db)
{
    return st->counts[db][1];
}

void store_get_stats(const store *st, store_stats *out)
{
    out->map_size = st->map_size;
    out->used_bytes = used_bytes((store *)st);
    out->commits = st->commits;
    out->failed_commits = st->failed_commits;
    out->syncs = atomic_load(&st->syncs);
    out->last_sync_ms = atomic_load(&st->last_sync_ms);
    out->durability = st->durability;
}

int store_history(store *st, store_hist **out)
{
    *out = st->hist;
    if (st->pass_err)
        return 0; /* the pass's rows will be discarded: reads go on without them */
    int rc = write_history(st);
    if (rc)
        st->pass_err = rc;
    return rc;
}

int store__hist_stopped(store *st)
{
    if (!st->hist_err)
        return 0;
    int64_t now = clock_ms();
    if (now - st->hist_probe_ms < HIST_PROBE_MS)
        return st->hist_err;
    st->hist_probe_ms = now;
    pthread_mutex_lock(&st->hist_mu);
    if (store__hist_ping(st->hist) == 0)
        st->hist_err = 0;
    pthread_mutex_unlock(&st->hist_mu);
    if (!st->hist_err)
        log_info("store: history writes work again");
    return st->hist_err;
}

const char *store_history_error(store *st)
{
    return store__hist_stopped(st) ? st->hist_why : NULL;
}

void store_get_fs_stats(const store *st, store_fs_stats *out)
{
    *out = st->fs_stats;
}
