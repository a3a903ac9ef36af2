/* snap.c: snapshots of the whole store for a replica's full sync, and their loading. A
 * snapshot is one LMDB read transaction and a RocksDB checkpoint taken together between two
 * passes, so both show the same commit; its records are read out on a worker thread (the
 * environment is opened MDB_NOTLS, so a read transaction may move between threads). The
 * loader writes those records, already in key order, into a fresh environment with
 * MDB_APPEND: the copy is compact whatever the leader's free pages. */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"

/* Every LMDB named database, in the order snapshots carry them. */
static const char *const snap_dbs[] = {"meta",    "keys",    "lkeys",   "fields",
                                       "lfields", "expires", "catalog", "online"};
#define NSNAP_DBS (int)(sizeof snap_dbs / sizeof snap_dbs[0])
/* The loader commits every 8 MiB: LMDB reuses a committed transaction's page buffers, so
 * small transactions keep reusing warm memory where 64 MiB ones malloc'd and faulted in
 * 16,384 pages (perf: a third less CPU for the loader). */
#define LOAD_COMMIT_BYTES ((size_t)8 << 20)

struct store_snap {
    store *st;
    MDB_txn *txn;
    MDB_cursor *cur;
    int db;      /* index into snap_dbs of the cursor */
    int started; /* the cursor has returned its first record */
    size_t used;
};

static MDB_dbi dbi_of(store *st, int i)
{
    MDB_dbi all[NSNAP_DBS] = {st->meta,    st->keys,    st->lkeys,   st->fields,
                              st->lfields, st->expires, st->catalog, st->online};
    return all[i];
}

int store_snap_begin(store *st, const char *ckpt_dir, store_snap **out, char *err, size_t errlen)
{
    if (st->wr_open) {
        snprintf(err, errlen, "a pass is open");
        return ERR_AGAIN;
    }
    store_snap *s = xcalloc(1, sizeof *s);
    s->st = st;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &s->txn);
    if (rc) {
        snprintf(err, errlen, "LMDB: %s", mdb_strerror(rc));
        xfree(s);
        return store__map_rc(rc);
    }
    if ((rc = store_hist_checkpoint(st->hist, ckpt_dir, err, errlen)) != 0) {
        mdb_txn_abort(s->txn);
        xfree(s);
        return rc;
    }
    MDB_envinfo info;
    mdb_env_info(st->env, &info);
    s->used = (info.me_last_pgno + 1) * (size_t)st->psize;
    atomic_fetch_add(&st->snaps, 1);
    *out = s;
    return 0;
}

size_t store_snap_used_bytes(const store_snap *s)
{
    return s->used;
}

int store_snap_next(store_snap *s, const char **db, const void **key, size_t *klen,
                    const void **val, size_t *vlen)
{
    MDB_val k, v;
    while (s->db < NSNAP_DBS) {
        int rc;
        if (!s->cur && (rc = mdb_cursor_open(s->txn, dbi_of(s->st, s->db), &s->cur)) != 0)
            return store__map_rc(rc);
        rc = mdb_cursor_get(s->cur, &k, &v, s->started ? MDB_NEXT : MDB_FIRST);
        s->started = 1;
        if (rc == 0) {
            *db = snap_dbs[s->db];
            *key = k.mv_data;
            *klen = k.mv_size;
            *val = v.mv_data;
            *vlen = v.mv_size;
            return 0;
        }
        if (rc != MDB_NOTFOUND)
            return store__map_rc(rc);
        mdb_cursor_close(s->cur);
        s->cur = NULL;
        s->started = 0;
        s->db++;
    }
    return ERR_NOTFOUND;
}

void store_snap_end(store_snap *s)
{
    if (!s)
        return;
    if (s->cur)
        mdb_cursor_close(s->cur);
    mdb_txn_abort(s->txn);
    atomic_fetch_sub(&s->st->snaps, 1);
    xfree(s);
}

/* ---- loading ----------------------------------------------------------------------------- */

struct store_loader {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbis[NSNAP_DBS];
    int opened[NSNAP_DBS];
    size_t pending; /* bytes put since the last commit */
};

int store_load_begin(const char *dir, size_t map_size, store_loader **out, char *err, size_t errlen)
{
    store_loader *l = xcalloc(1, sizeof *l);
    int rc = mdb_env_create(&l->env);
    if (!rc)
        rc = mdb_env_set_maxdbs(l->env, 16);
    if (!rc)
        rc = mdb_env_set_mapsize(l->env, map_size);
    /* No WRITEMAP: each commit writes its pages with pwritev, which fills the page cache
     * with whole pages; a write fault in a shared map first reads (zero-fills) every
     * new page, and that cost the loader half its time (perf: memset under filemap_fault).
     * A full disk is then an error of the commit, not a SIGBUS, so nothing is reserved. */
    if (!rc)
        rc = mdb_env_open(l->env, dir, MDB_NOTLS | MDB_NOSYNC, 0644);
    if (!rc)
        rc = mdb_txn_begin(l->env, NULL, 0, &l->txn);
    if (rc) {
        snprintf(err, errlen, "cannot create the LMDB environment in '%s': %s", dir,
                 mdb_strerror(rc));
        if (l->env)
            mdb_env_close(l->env);
        xfree(l);
        return store__map_rc(rc);
    }
    *out = l;
    return 0;
}

int store_load_put(store_loader *l, const char *db, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    int i = 0;
    while (i < NSNAP_DBS && strcmp(snap_dbs[i], db) != 0)
        i++;
    if (i == NSNAP_DBS || klen == 0)
        return ERR_CORRUPT;
    if (!l->txn)
        return ERR_IO; /* an intermediate commit failed */
    int rc;
    if (l->pending >= LOAD_COMMIT_BYTES) {
        if ((rc = mdb_txn_commit(l->txn)) != 0 || (rc = mdb_txn_begin(l->env, NULL, 0, &l->txn)))
            return l->txn = NULL, store__map_rc(rc);
        l->pending = 0;
    }
    if (!l->opened[i]) {
        if ((rc = mdb_dbi_open(l->txn, db, MDB_CREATE, &l->dbis[i])) != 0)
            return store__map_rc(rc);
        l->opened[i] = 1;
    }
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    rc = mdb_put(l->txn, l->dbis[i], &k, &v, MDB_APPEND);
    if (rc == MDB_KEYEXIST)
        return ERR_CORRUPT; /* out of order: not what a snapshot sends */
    l->pending += klen + vlen;
    return store__map_rc(rc);
}

int store_load_end(store_loader *l, int commit)
{
    int rc = 0;
    if (l->txn) {
        if (commit)
            rc = mdb_txn_commit(l->txn);
        else
            mdb_txn_abort(l->txn);
    } else if (commit) {
        rc = EIO; /* a failed intermediate commit */
    }
    if (!rc && commit)
        rc = mdb_env_sync(l->env, 1);
    mdb_env_close(l->env);
    xfree(l);
    return store__map_rc(rc);
}
