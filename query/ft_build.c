/* ft_build.c: how FT indexes come to be and are kept: the scan that indexes a database's
 * existing keys in slices from the cron, the FIFO of vector changes that a worker thread
 * drains while a scan runs (so that HNSW insertions never stall the loop; with the GPU on it
 * may gather a field's vectors for a bulk build instead, ft_bulk.c), snapshots
 * written in the background and at shutdown, and the start that loads definitions and
 * snapshots and reconciles them with the hashes. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/server.h"
#include "query/ft.h"

#define SLICE_US 20000                  /* scan time per cron tick */
#define START_SCAN_US 30000000          /* scan time per index at start, before clients */
#define PENDING_MAX ((size_t)64 << 20)  /* queued vector bytes before a scan waits */
#define SNAP_INTERVAL_MS 60000          /* snapshot a changed index at most this often */
#define SNAP_BUSY_CHANGES 10000         /* ... or sooner, when this many changes ... */
#define SNAP_BUSY_MS 10000              /* ... and this long have passed */

static struct {
    uint64_t snapshots, snapshot_failures, snapshot_loads, rebuilds;
    uint64_t failed_passes; /* the server's count, as last seen by the cron */
} stats;

/* ---- the vector queue and its worker --------------------------------------------------- */

static uint32_t slot_dim(const ft_index *ix, int slot)
{
    return vec_get_params(ix->vecs[slot].vx)->dim;
}

static void apply(ft_index *ix, int op, int slot, uint32_t id, const float *v)
{
    vec_index *vx = ft__bulk_target(ix, op, slot, id, v);
    if (!vx || op == VOP_BUILD)
        return;
    int rc = op == VOP_ADD ? vec_add(vx, id, v) : vec_delete(vx, id);
    if (rc && rc != ERR_NOTFOUND)
        atomic_fetch_add(&ix->q.failed, 1);
}

static void worker_done(void *arg)
{
    ft_index *ix = arg;
    ix->jobs--;
    ft__release(ix);
}

static void worker(void *arg);

/* The worker drained the queue and a bulk build ended: the loop swaps the built index in,
 * then a new worker drains what was queued meanwhile (the queue stayed "running", so every
 * change kept queueing behind the build). */
static void bulk_finish(void *arg)
{
    ft_index *ix = arg;
    ft__bulk_finish(ix);
    ft_vqueue *q = &ix->q;
    pthread_mutex_lock(&q->lock);
    int more = q->nops && !atomic_load(&q->stop);
    if (!more) {
        q->nops = 0;
        q->data.len = 0;
        q->running = 0;
    }
    pthread_mutex_unlock(&q->lock);
    if (more)
        server_spawn(worker, ix); /* the same job goes on */
    else
        worker_done(ix);
}

/* Drains the queue in batches (swapped out under the lock) until it is empty or the index
 * is going away; a bulk build that ended leaves the queue running for bulk_finish. */
static void worker(void *arg)
{
    ft_index *ix = arg;
    ft_vqueue *q = &ix->q;
    ft_vop *ops = NULL;
    size_t nops = 0, capops = 0;
    buf data;
    buf_init(&data);
    int finish = 0;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        if (atomic_load(&q->stop) || q->nops == 0) {
            finish = !atomic_load(&q->stop) && ft__bulk_ended(ix);
            if (!finish) {
                q->nops = 0;
                q->data.len = 0;
                q->running = 0;
            }
            pthread_mutex_unlock(&q->lock);
            break;
        }
        ft_vop *t = q->ops;
        q->ops = ops;
        ops = t;
        size_t tc = q->capops;
        q->capops = capops;
        capops = tc;
        nops = q->nops;
        q->nops = 0;
        buf tb = q->data;
        q->data = data;
        data = tb;
        q->data.len = 0;
        pthread_mutex_unlock(&q->lock);
        for (size_t i = 0; i < nops && !atomic_load(&q->stop); i++) {
            apply(ix, ops[i].op, ops[i].slot, ops[i].id,
                  ops[i].op == VOP_ADD ? (const float *)(data.data + ops[i].off) : NULL);
            atomic_fetch_add(&q->applied, 1);
        }
    }
    xfree(ops);
    buf_free(&data);
    server_post(finish ? bulk_finish : worker_done, ix);
}

void ft__vop_submit(ft_index *ix, int op, int slot, uint32_t id, const void *blob)
{
    ft_vqueue *q = &ix->q;
    size_t bytes = (size_t)slot_dim(ix, slot) * 4;
    int spawn = 0;
    pthread_mutex_lock(&q->lock);
    int queue = q->running || ix->vecs[slot].bulk ||
                (ix->scanning && !ix->sync_apply &&
                 vec_get_params(ix->vecs[slot].vx)->kind != VEC_FLAT);
    if (queue) {
        if (q->nops == q->capops) {
            q->capops = q->capops ? q->capops * 2 : 256;
            q->ops = xrealloc(q->ops, sizeof *q->ops * q->capops);
        }
        ft_vop *o = &q->ops[q->nops++];
        o->op = (uint8_t)op;
        o->slot = (uint8_t)slot;
        o->id = id;
        o->off = q->data.len;
        if (op == VOP_ADD)
            buf_append(&q->data, blob, bytes); /* offsets stay multiples of 4 */
        atomic_fetch_add(&q->enqueued, 1);
        if (!q->running) {
            q->running = 1;
            spawn = 1;
        }
    }
    pthread_mutex_unlock(&q->lock);
    if (spawn) {
        ix->jobs++;
        server_spawn(worker, ix);
    }
    ix->dirty++;
    if (queue)
        return;
    float *v = NULL;
    if (op == VOP_ADD) { /* blob may be unaligned (it points into LMDB) */
        v = xmalloc(bytes);
        memcpy(v, blob, bytes);
    }
    apply(ix, op, slot, id, v);
    xfree(v);
}

static size_t pending_bytes(ft_index *ix)
{
    pthread_mutex_lock(&ix->q.lock);
    size_t n = ix->q.data.len;
    pthread_mutex_unlock(&ix->q.lock);
    return n;
}

static int queue_busy(ft_index *ix)
{
    pthread_mutex_lock(&ix->q.lock);
    int busy = ix->q.running || ix->q.nops;
    pthread_mutex_unlock(&ix->q.lock);
    return busy;
}

static int indexing(ft_index *ix)
{
    return ix->scanning || queue_busy(ix);
}

/* ---- the scan -------------------------------------------------------------------------- */

void ft__scan_start(ft_index *ix)
{
    if (!queue_busy(ix))
        ft__bulk_arm(ix);
    memset(ix->seen, 0, (ix->cap + 63) / 64 * 8);
    ix->scanning = 1;
    ix->scan_started = 0;
    ix->scan_pos.len = 0;
    ix->scanned = 0;
    ix->build_start_us = clock_mono_us();
}

/* The scan has seen every key: documents that neither it nor a write saw are gone. */
static void scan_finish(ft_index *ix)
{
    ix->scanning = 0;
    for (uint32_t id = 0; id < ix->bound; id++)
        if (ix->key[id] && !(ix->seen[id >> 6] >> (id & 63) & 1))
            ft__doc_remove(ix, id);
    ft__bulk_mark(ix);
}

void ft__scan_slice(ft_index *ix, int64_t budget_us)
{
    int64_t t0 = clock_mono_us();
    store_txn *t;
    store_iter *it;
    if (!ix->scanning || store_txn_read(srv.store, &t) != 0 ||
        store_iter_keys(t, ix->def.db, ix->scan_started ? ix->scan_pos.data : NULL,
                        ix->scan_pos.len, clock_ms(), &it) != 0)
        return;
    int done = 0, rc;
    const char *key;
    size_t klen;
    store_obj o;
    while (clock_mono_us() - t0 < budget_us && pending_bytes(ix) < PENDING_MAX) {
        if ((rc = store_iter_next(it, &key, &klen, &o)) != 0) {
            done = rc == ERR_NOTFOUND;
            if (!done)
                log_warn("FT index '%s': scan stopped (%s), retrying", ix->def.name,
                         err_str(rc));
            break;
        }
        ix->scanned++;
        if (o.type == STORE_HASH && ft__prefix_match(ix, key, klen))
            ft__doc_index(ix, t, key, klen, &o);
    }
    if (!done) {
        const char *pos;
        size_t plen;
        store_iter_pos(it, &pos, &plen);
        ix->scan_pos.len = 0;
        buf_append(&ix->scan_pos, pos, plen);
        ix->scan_started = 1;
    }
    store_iter_free(it);
    if (done)
        scan_finish(ix);
}

void ft_build_now(ft_index *ix, int64_t budget_us)
{
    ix->sync_apply = 1;
    ft__scan_slice(ix, budget_us);
    ix->sync_apply = 0;
}

/* ---- snapshots ------------------------------------------------------------------------- */

typedef struct snap_job {
    ft_index *ix;
    buf path, data;
    uint64_t dirty; /* the index's changes the snapshot covers */
    int rc;
    char err[256];
} snap_job;

static void snap_free(snap_job *j)
{
    buf_free(&j->path);
    buf_free(&j->data);
    xfree(j);
}

static void snap_done(void *arg)
{
    snap_job *j = arg;
    ft_index *ix = j->ix;
    ix->jobs--;
    ix->snap_inflight = 0;
    if (j->rc == 0) {
        stats.snapshots++;
        ix->dirty -= j->dirty < ix->dirty ? j->dirty : ix->dirty;
        ix->last_snap_ms = ix->snap_base_ms = clock_ms();
    } else {
        stats.snapshot_failures++;
        ix->snap_base_ms = clock_ms(); /* try again after an interval */
        log_warn("FT index '%s': snapshot failed: %s", ix->def.name, j->err);
    }
    snap_free(j);
    ft__release(ix);
}

static void snap_write(void *arg)
{
    snap_job *j = arg;
    j->rc = ft_file_write(j->path.data, j->data.data, j->data.len, j->err, sizeof j->err);
    server_post(snap_done, j);
}

static snap_job *snap_capture(ft_index *ix)
{
    snap_job *j = xcalloc(1, sizeof *j);
    j->ix = ix;
    buf_init(&j->path);
    buf_init(&j->data);
    ft_snapshot_path(srv.cfg.dir, ix->def.name, &j->path);
    ft__snapshot_capture(ix, &j->data);
    j->dirty = ix->dirty;
    return j;
}

/* Takes the snapshot now (a copy in memory) and writes it on a worker. */
static void snap_start(ft_index *ix)
{
    snap_job *j = snap_capture(ix);
    ix->snap_inflight = 1;
    ix->snap_soon = 0;
    ix->jobs++;
    server_spawn(snap_write, j);
}

static int snap_due(ft_index *ix, int64_t now)
{
    if (!ix->dirty || ix->snap_inflight || indexing(ix))
        return 0;
    int64_t age = now - ix->snap_base_ms;
    return ix->snap_soon || age >= SNAP_INTERVAL_MS ||
           (ix->dirty >= SNAP_BUSY_CHANGES && age >= SNAP_BUSY_MS);
}

/* ---- the cron, start and shutdown ------------------------------------------------------ */

/* Loads ix's snapshot if there is a usable one. 0 when loaded. */
static int load_snapshot(ft_index *ix)
{
    buf path, data;
    buf_init(&path);
    buf_init(&data);
    ft_snapshot_path(srv.cfg.dir, ix->def.name, &path);
    char err[256];
    int rc = ft_file_read(path.data, &data);
    if (rc == 0 && (rc = ft__snapshot_load(ix, data.data, data.len, err, sizeof err)) != 0)
        log_warn("FT index '%s': snapshot %s refused (%s): rebuilding from the hashes",
                 ix->def.name, path.data, err);
    else if (rc == ERR_IO)
        log_warn("FT index '%s': cannot read %s: rebuilding", ix->def.name, path.data);
    buf_free(&path);
    buf_free(&data);
    return rc;
}

/* Makes the index of one stored definition: from its snapshot when it loads, else empty;
 * either way a reconciling scan follows. */
static void start_index(const char *name, size_t nlen, const char *rec, size_t rlen,
                        int64_t budget_us)
{
    char err[256];
    for (int attempt = 0; attempt < 2; attempt++) {
        ft_def def;
        if (ft_def_decode(name, nlen, rec, rlen, &def, err, sizeof err) != 0) {
            log_warn("%s: skipped", err);
            return;
        }
        ft_index *ix = ft__index_new(&def, err, sizeof err);
        if (!ix) {
            log_warn("FT index '%.*s' cannot be made: %s", (int)nlen, name, err);
            return;
        }
        int rc = attempt ? ERR_NOTFOUND : load_snapshot(ix);
        if (rc && rc != ERR_NOTFOUND && attempt == 0) { /* refused: start again, empty */
            ix->dropped = 1;
            ft__release(ix);
            continue;
        }
        if (rc == 0) {
            stats.snapshot_loads++;
            log_info("FT index '%s': %u documents from its snapshot, reconciling", ix->def.name,
                     ix->ndocs);
        } else {
            stats.rebuilds++;
        }
        ix->snap_base_ms = clock_ms();
        ft__register(ix);
        ft__scan_start(ix);
        /* Before any client: a snapshot's reconciliation only reads, so it ends here and
         * the index starts complete; a rebuild goes on from the cron once its queue of
         * vectors is full. */
        ft__scan_slice(ix, budget_us);
        return;
    }
}

/* Removes snapshot files (.qvi, .qvi.tmp) that belong to no index: dropped while a write
 * was in flight, or left by a crash mid-write. */
static void remove_orphans(void)
{
    buf dir, path;
    buf_init(&dir);
    buf_init(&path);
    buf_printf(&dir, "%s/vectors", srv.cfg.dir);
    buf_appendc(&dir, '\0');
    DIR *d = opendir(dir.data);
    struct dirent *e;
    int n;
    ft_index **all = ft__all(&n);
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        size_t len = strlen(e->d_name);
        int keep = !((len > 4 && !strcmp(e->d_name + len - 4, ".qvi")) ||
                     (len > 8 && !strcmp(e->d_name + len - 8, ".qvi.tmp")));
        for (int i = 0; i < n && !keep; i++) {
            path.len = 0;
            ft_snapshot_path(srv.cfg.dir, all[i]->def.name, &path);
            keep = strcmp(strrchr(path.data, '/') + 1, e->d_name) == 0;
        }
        if (!keep) {
            path.len = 0;
            buf_printf(&path, "%s/%s", dir.data, e->d_name);
            buf_appendc(&path, '\0');
            unlink(path.data);
        }
    }
    if (d)
        closedir(d);
    buf_free(&dir);
    buf_free(&path);
}

void ft_start(void)
{
    store_txn *t;
    if (store_txn_read(srv.store, &t) != 0)
        return;
    buf name, rec;
    buf_init(&name);
    buf_init(&rec);
    const char *key, *val;
    size_t klen, vlen;
    int first = 1;
    while (store_aux_next(t, FT_AUX_NS, first ? NULL : name.data, name.len, &key, &klen, &val,
                          &vlen) == 0) {
        first = 0;
        name.len = rec.len = 0;
        buf_append(&name, key, klen);
        buf_append(&rec, val, vlen);
        start_index(name.data, name.len, rec.data, rec.len, START_SCAN_US);
    }
    buf_free(&name);
    buf_free(&rec);
    remove_orphans();
}

/* After a failed pass: the registry made to match the definitions LMDB holds (an FT.CREATE
 * or FT.DROPINDEX of the pass was undone with it). */
static void sync_definitions(void)
{
    store_txn *t;
    if (store_txn_read(srv.store, &t) != 0)
        return;
    int n;
    ft_index **all = ft__all(&n);
    for (int i = n - 1; i >= 0; i--) {
        const char *name = all[i]->def.name, *v;
        size_t vlen;
        if (store_aux_get(t, FT_AUX_NS, name, strlen(name), &v, &vlen) != 0 ||
            crc32c(0, v, vlen) != all[i]->def_crc) {
            log_warn("FT index '%s' was not committed: dropped", name);
            ft_drop(all[i], NULL, NULL);
        }
    }
    buf name, rec;
    buf_init(&name);
    buf_init(&rec);
    const char *key, *val;
    size_t klen, vlen;
    int first = 1;
    while (store_aux_next(t, FT_AUX_NS, first ? NULL : name.data, name.len, &key, &klen, &val,
                          &vlen) == 0) {
        first = 0;
        name.len = rec.len = 0;
        buf_append(&name, key, klen);
        buf_append(&rec, val, vlen);
        if (!ft_lookup(name.data, name.len)) {
            log_warn("FT index '%.*s': its drop was not committed, restored", (int)name.len,
                     name.data);
            start_index(name.data, name.len, rec.data, rec.len, 0);
        }
    }
    buf_free(&name);
    buf_free(&rec);
}

void ft_cron(void)
{
    int rescan = srv.stats.failed_passes != stats.failed_passes;
    stats.failed_passes = srv.stats.failed_passes;
    if (rescan)
        sync_definitions();
    int n;
    ft_index **all = ft__all(&n);
    int64_t now = clock_ms();
    for (int i = 0; i < n; i++) {
        ft_index *ix = all[i];
        if (rescan) { /* a pass that did not commit changed the index: check it all again */
            log_warn("FT index '%s': a pass failed to commit, re-reading its hashes",
                     ix->def.name);
            ft__scan_start(ix);
        }
        if (ix->scanning)
            ft__scan_slice(ix, SLICE_US);
        if (ix->build_start_us && !indexing(ix)) { /* a build ended: keep it soon */
            ix->indexing_ms = (double)(clock_mono_us() - ix->build_start_us) / 1000.0;
            ix->build_start_us = 0;
            ix->snap_soon = 1;
        }
        if (snap_due(ix, now))
            snap_start(ix);
    }
}

void ft_stop(void)
{
    int n;
    ft_index **all = ft__all(&n);
    for (int i = 0; i < n; i++) {
        all[i]->incomplete = indexing(all[i]);
        atomic_store(&all[i]->q.stop, 1);
    }
}

void ft_shutdown(void)
{
    int n;
    ft_index **all = ft__all(&n);
    for (int i = 0; i < n; i++) {
        ft_index *ix = all[i];
        if (ix->incomplete || !ix->dirty)
            continue;
        snap_job *j = snap_capture(ix);
        if (ft_file_write(j->path.data, j->data.data, j->data.len, j->err, sizeof j->err))
            log_warn("FT index '%s': snapshot failed: %s", ix->def.name, j->err);
        snap_free(j);
    }
    ft__free_all();
}

/* ---- figures ------------------------------------------------------------------------------ */

void ft_get_stats(const ft_index *cix, ft_stats *out)
{
    ft_index *ix = (ft_index *)cix; /* the queue lock */
    memset(out, 0, sizeof *out);
    out->num_docs = ix->nlive;
    out->max_doc_id = ix->bound;
    out->failures = ix->failures + atomic_load(&ix->q.failed); /* vectors the index refused */
    out->indexing = indexing(ix);
    double scan = 1, queue = 1;
    if (ix->scanning) {
        uint64_t keys = store_dbsize(srv.store, ix->def.db);
        scan = keys ? (double)ix->scanned / (double)keys : 0;
        scan = scan > 0.99 ? 0.99 : scan;
    }
    uint64_t enq = atomic_load(&ix->q.enqueued), app = atomic_load(&ix->q.applied);
    if (enq > app)
        queue = (double)app / (double)enq;
    out->percent_indexed = out->indexing ? (scan < queue ? scan : queue) : 1;
    if (out->indexing && out->percent_indexed >= 1)
        out->percent_indexed = 0.99;
    for (int s = 0; s < ix->def.nvecs; s++) {
        out->vector_bytes += vec_memory(ix->vecs[s].vx);
        out->records += vec_count(ix->vecs[s].vx);
    }
    out->doc_table_bytes = (size_t)ix->cap * (sizeof(char *) + 4 + 1) + ix->keys.cap * 24;
    for (uint32_t id = 0; id < ix->bound; id++)
        out->doc_table_bytes += ix->klen[id];
    out->tag_bytes = ft__tag_bytes(ix);
    out->total_indexing_ms = ix->indexing_ms;
    out->uses = ix->uses;
    out->last_error = ix->last_error;
    out->last_error_key = ix->last_error_key ? ix->last_error_key : "N/A";
    out->last_snapshot_ms = ix->last_snap_ms;
}

void ft_info_section(buf *b)
{
    int n;
    ft_index **all = ft__all(&n);
    uint64_t docs = 0, failures = 0;
    size_t bytes = 0;
    int building = 0;
    for (int i = 0; i < n; i++) {
        ft_stats st;
        ft_get_stats(all[i], &st);
        docs += st.num_docs;
        failures += st.failures;
        bytes += st.vector_bytes;
        building += st.indexing;
    }
    buf_printf(b, "# Vector\r\nvector_indexes:%d\r\nvector_indexing:%d\r\nvector_documents:%llu\r\n"
                  "vector_memory_bytes:%zu\r\nvector_hash_indexing_failures:%llu\r\n"
                  "vector_snapshots_written:%llu\r\nvector_snapshot_failures:%llu\r\n"
                  "vector_snapshot_loads:%llu\r\nvector_rebuilds:%llu\r\nvector_kernels:%s\r\n",
               n, building, (unsigned long long)docs, bytes, (unsigned long long)failures,
               (unsigned long long)stats.snapshots, (unsigned long long)stats.snapshot_failures,
               (unsigned long long)stats.snapshot_loads, (unsigned long long)stats.rebuilds,
               vec_kernels());
}
