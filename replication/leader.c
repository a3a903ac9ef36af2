/* leader.c: the leader's side. The log hooks turn each committed write into stream bytes
 * for the backlog and every online replica; PSYNC decides between a partial resync from
 * the backlog and a full sync, whose snapshot a worker encodes into the replica's output
 * while the stream it misses meanwhile is held for it. REPLCONF records what replicas say
 * about themselves. */
#include "replication/repl_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"

#define CHUNK_BYTES ((size_t)1 << 20) /* a worker hands output over in chunks this big */

/* ---- the stream ------------------------------------------------------------------------ */

static void resp_header(buf *b, char prefix, size_t n)
{
    char tmp[32];
    tmp[0] = prefix;
    size_t len = 1 + i64_to_str(tmp + 1, (long long)n);
    tmp[len++] = '\r';
    tmp[len++] = '\n';
    buf_append(b, tmp, len);
}

static void resp_command(buf *b, int argc, const char *const *argv, const size_t *lens)
{
    resp_header(b, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        resp_header(b, '$', lens[i]);
        buf_append(b, argv[i], lens[i]);
        buf_append(b, "\r\n", 2);
    }
}

void leader_log(void *ctx, uint64_t offset, int db, int argc, const char *const *argv,
                const size_t *lens)
{
    repl *r = ctx;
    if (repl_is_replica())
        return; /* a replica's stream is its leader's bytes, put there by replica.c */
    size_t before = r->pending.len;
    resp_command(&r->pending, argc, argv, lens);
    if (offset - r->log_end != r->pending.len - before) { /* the store SELECTed first */
        buf cmd;
        buf_init(&cmd);
        buf_append(&cmd, r->pending.data + before, r->pending.len - before);
        r->pending.len = before;
        char num[24];
        size_t n = i64_to_str(num, db);
        const char *sel[2] = {"SELECT", num};
        size_t sl[2] = {6, n};
        resp_command(&r->pending, 2, sel, sl);
        buf_append(&r->pending, cmd.data, cmd.len);
        buf_free(&cmd);
    }
    r->log_end = offset;
}

static size_t replica_limit(void)
{
    return (size_t)srv.cfg.obuf_replica[0];
}

static void replica_over_limit(replica *rp, size_t have)
{
    log_warn("replica %s closed: %zu bytes of stream waiting, over the replica output limit",
             rp->c->addr, have);
    client_close(rp->c);
}

void leader_flush(void)
{
    repl *r = srv.repl;
    if (r->pending.len == 0)
        return;
    backlog_append(&r->bl, r->pending.data, r->pending.len);
    /* closing a replica may free it (a parked one at once): next is read first */
    for (replica *rp = r->replicas, *next; rp; rp = next) {
        next = rp->next;
        if (rp->c->state == CONN_CLOSED)
            continue;
        if (rp->state == REPLICA_WAIT_SNAPSHOT)
            continue; /* its snapshot, taken after this commit, will hold these writes */
        if (rp->state == REPLICA_SENDING) {
            buf_append(&rp->held, r->pending.data, r->pending.len);
            if (replica_limit() && rp->held.len > replica_limit())
                replica_over_limit(rp, rp->held.len);
            continue;
        }
        client_output_write(rp->c, r->pending.data, r->pending.len);
        if (replica_limit() && client_obuf_pending(rp->c) > replica_limit())
            replica_over_limit(rp, client_obuf_pending(rp->c));
    }
    r->pending.len = 0;
}

void leader_commit(void *ctx, int ok, uint64_t offset)
{
    repl *r = ctx;
    if (ok) {
        leader_flush();
        return;
    }
    r->pending.len = 0; /* never committed: never sent */
    r->log_end = offset;
}

/* ---- replicas ---------------------------------------------------------------------------- */

replica *leader_find(const client *c)
{
    for (replica *rp = srv.repl->replicas; rp; rp = rp->next)
        if (rp->c == c)
            return rp;
    return NULL;
}

static replica *replica_add(client *c, int state)
{
    replica *rp = xcalloc(1, sizeof *rp);
    rp->c = c;
    rp->state = state;
    rp->ack_ms = clock_ms();
    buf_init(&rp->held);
    rp->next = srv.repl->replicas;
    srv.repl->replicas = rp;
    c->flags |= CLIENT_REPLICA;
    return rp;
}

static void replica_remove(replica *rp)
{
    for (replica **p = &srv.repl->replicas; *p; p = &(*p)->next) {
        if (*p == rp) {
            *p = rp->next;
            break;
        }
    }
    buf_free(&rp->held);
    xfree(rp);
}

/* ---- the snapshot job ------------------------------------------------------------------ */

typedef struct snap_job {
    store_snap *snap;
    char ckpt[4096];
    char replid[41];
    uint64_t offset;
    int32_t db;  /* the stream's database at offset, -1: it SELECTs next */
    replica *rp; /* loop thread only; NULL once the replica is gone */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t queued, unsent; /* posted but not delivered; delivered but not sent (mu) */
    int cancelled;         /* (mu) */
    int failed;
    uint64_t frames;
    buf out;
    buf spare; /* a delivered chunk's memory, for the next one (mu) */
} snap_job;

typedef struct chunk {
    snap_job *job;
    buf data;
} chunk;

static void job_deliver(void *arg)
{
    chunk *ch = arg;
    snap_job *j = ch->job;
    size_t n = ch->data.len;
    size_t unsent = 0;
    if (j->rp) {
        client_output_write(j->rp->c, ch->data.data, n);
        unsent = client_obuf_pending(j->rp->c);
    }
    pthread_mutex_lock(&j->mu);
    if (!j->spare.data) { /* memory already faulted in: the worker's next chunk reuses it */
        j->spare = ch->data;
        j->spare.len = 0;
        buf_init(&ch->data);
    }
    buf_free(&ch->data);
    xfree(ch);
    j->queued -= n;
    j->unsent = unsent;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void job_sent(void *arg, size_t pending)
{
    snap_job *j = arg;
    pthread_mutex_lock(&j->mu);
    j->unsent = pending;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void job_closed(void *arg)
{
    snap_job *j = arg;
    if (!j)
        return; /* closed before its snapshot began: repl_client_gone forgets it */
    pthread_mutex_lock(&j->mu);
    j->cancelled = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (j->rp)
        replica_remove(j->rp);
    j->rp = NULL;
}

static const client_park_ops snap_park_ops = {.sent = job_sent, .closed = job_closed};

/* Worker: hands the output over once a chunk is full (or at the end), then waits while
 * the replica has too much unsent. Returns -1 once cancelled. */
static int job_emit(snap_job *j, int last)
{
    if (j->out.len < CHUNK_BYTES && !(last && j->out.len))
        return 0;
    chunk *ch = xmalloc(sizeof *ch);
    ch->job = j;
    ch->data = j->out;
    pthread_mutex_lock(&j->mu);
    j->out = j->spare;
    buf_init(&j->spare);
    j->queued += ch->data.len;
    pthread_mutex_unlock(&j->mu);
    buf_reserve(&j->out, CHUNK_BYTES + REPL_FRAME_MAX + 4096); /* no regrowth per chunk */
    server_post(job_deliver, ch);
    pthread_mutex_lock(&j->mu);
    while (!j->cancelled && j->queued + j->unsent > REPL_SEND_WINDOW)
        pthread_cond_wait(&j->cv, &j->mu);
    int cancelled = j->cancelled;
    pthread_mutex_unlock(&j->mu);
    return cancelled ? -1 : 0;
}

static void job_frame(snap_job *j, int type, const char *name, size_t nlen, const void *p, size_t n)
{
    frame_put(&j->out, type, name, nlen, p, n);
    j->frames++;
}

/* The records go straight into the output, each RECORDS frame built in place. */
static int send_records(snap_job *j)
{
    const char *db, *cur = NULL; /* cur: the database of the open frame */
    const void *k, *v;
    size_t kl, vl, start = 0, plen = 0;
    int rc;
    while ((rc = store_snap_next(j->snap, &db, &k, &kl, &v, &vl)) == 0 || cur) {
        if (cur && (rc != 0 || db != cur || plen + kl + vl + 8 > REPL_FRAME_MAX)) {
            frame_finish(&j->out, start);
            j->frames++;
            cur = NULL;
            if (job_emit(j, 0) != 0)
                break;
        }
        if (rc != 0)
            break;
        if (kl + vl + 8 > REPL_FRAME_MAX) { /* LMDB values are smaller: a broken record */
            rc = ERR_CORRUPT;
            break;
        }
        if (!cur) {
            start = frame_begin(&j->out, FRAME_RECORDS, db, strlen(db));
            cur = db;
            plen = 0;
        }
        uint32_t n = (uint32_t)kl;
        buf_append(&j->out, &n, 4);
        buf_append(&j->out, k, kl);
        n = (uint32_t)vl;
        buf_append(&j->out, &n, 4);
        buf_append(&j->out, v, vl);
        plen += 8 + kl + vl;
    }
    return rc == ERR_NOTFOUND ? 0 : -1;
}

static int send_file(snap_job *j, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", j->ckpt, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char *tmp = xmalloc(CHUNK_BYTES);
    ssize_t n;
    int first = 1, rc = 0;
    while ((n = read(fd, tmp, CHUNK_BYTES)) > 0 || first) {
        if (n < 0)
            break;
        first = 0;
        job_frame(j, FRAME_FILE, name, strlen(name), tmp, (size_t)n);
        if ((rc = job_emit(j, 0)) != 0 || n == 0)
            break;
    }
    if (n < 0)
        rc = -1;
    xfree(tmp);
    close(fd);
    return rc;
}

static int send_checkpoint(snap_job *j)
{
    DIR *d = opendir(j->ckpt);
    if (!d)
        return -1;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            rc = send_file(j, e->d_name);
    closedir(d);
    return rc;
}

void repl_rmtree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char sub[4200];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
                repl_rmtree(sub);
            else
                unlink(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void job_finished(void *arg);

static void job_main(void *arg)
{
    snap_job *j = arg;
    unsigned char head[4 + 8 + 8 + 40 + 4];
    uint32_t ver = FRAME_VERSION;
    uint64_t used = store_snap_used_bytes(j->snap);
    memcpy(head, &ver, 4);
    memcpy(head + 4, &j->offset, 8);
    memcpy(head + 12, &used, 8);
    memcpy(head + 20, j->replid, 40);
    memcpy(head + 60, &j->db, 4);
    job_frame(j, FRAME_HEADER, FRAME_MAGIC, 4, head, sizeof head);
    int rc = send_records(j);
    if (rc == 0)
        rc = send_checkpoint(j);
    if (rc == 0) {
        unsigned char end[16];
        memcpy(end, &j->offset, 8);
        memcpy(end + 8, &j->frames, 8);
        job_frame(j, FRAME_END, "", 0, end, sizeof end);
        rc = job_emit(j, 1);
    }
    j->failed = rc != 0;
    store_snap_end(j->snap);
    j->snap = NULL;
    repl_rmtree(j->ckpt);
    server_post(job_finished, j);
}

static void job_free(snap_job *j)
{
    buf_free(&j->out);
    buf_free(&j->spare);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    xfree(j);
}

/* Loop: the snapshot is out (or failed); the held stream follows it and the replica is
 * online. Chunks posted before this one have been delivered (posting order). */
static void job_finished(void *arg)
{
    snap_job *j = arg;
    replica *rp = j->rp;
    if (rp) {
        rp->job = NULL;
        if (j->failed) {
            log_warn("replica %s: full sync failed while sending the snapshot", rp->c->addr);
            client_close(rp->c);
        } else {
            client_output_append(rp->c, &rp->held);
            rp->state = REPLICA_ONLINE;
            rp->ack_ms = clock_ms();
            log_info("replica %s: snapshot sent (%llu frames), now online", rp->c->addr,
                     (unsigned long long)j->frames);
            client_unpark(rp->c);
        }
    }
    job_free(j);
}

/* Between passes: each waiting replica gets its snapshot, at the current offset. */
void leader_start_snapshots(void)
{
    repl *r = srv.repl;
    for (replica *rp = r->replicas, *next; rp; rp = next) {
        next = rp->next;
        if (rp->state != REPLICA_WAIT_SNAPSHOT || rp->c->state == CONN_CLOSED)
            continue;
        if (repl_is_replica() && link_stream_db() < 0) {
            client_close(rp->c); /* our own link broke: where the stream stands is unknown */
            continue;
        }
        snap_job *j = xcalloc(1, sizeof *j);
        snprintf(j->ckpt, sizeof j->ckpt, "%s/repl-snapshot-%llu", srv.cfg.dir,
                 (unsigned long long)rp->c->id);
        repl_rmtree(j->ckpt);
        char err[512];
        store_snap *snap;
        int rc = store_snap_begin(srv.store, j->ckpt, &snap, err, sizeof err);
        if (rc) {
            log_warn("replica %s: cannot take a snapshot: %s", rp->c->addr, err);
            repl_rmtree(j->ckpt);
            xfree(j);
            client_close(rp->c);
            continue;
        }
        /* A leader's stream after the snapshot starts with a SELECT; a replica passes on
         * its leader's bytes, so it says which database they are on instead. */
        j->db = repl_is_replica() ? link_stream_db() : -1;
        if (!repl_is_replica())
            store_set_log_position(srv.store, store_offset(srv.store), -1);
        j->snap = snap;
        j->offset = store_offset(srv.store);
        memcpy(j->replid, r->replid, sizeof j->replid);
        pthread_mutex_init(&j->mu, NULL);
        pthread_cond_init(&j->cv, NULL);
        buf_init(&j->out);
        buf_init(&j->spare);
        j->rp = rp;
        rp->job = j;
        rp->state = REPLICA_SENDING;
        rp->c->park_arg = j;
        buf b;
        buf_init(&b);
        buf_printf(&b, "+FULLRESYNC %s %llu\r\n", r->replid, (unsigned long long)j->offset);
        client_output_append(rp->c, &b);
        log_info("replica %s: full sync at offset %llu", rp->c->addr,
                 (unsigned long long)j->offset);
        server_spawn(job_main, j);
    }
}

void leader_drop_all(void)
{
    for (replica *rp = srv.repl->replicas, *next; rp; rp = next) {
        next = rp->next;
        client_close(rp->c);
    }
}

void repl_client_gone(client *c)
{
    if (!srv.repl)
        return; /* shutdown */
    replica *rp = leader_find(c);
    if (!rp)
        return;
    if (rp->job)
        rp->job->rp = NULL; /* the job's closed callback already ran or cannot */
    replica_remove(rp);
}

/* ---- WAIT ------------------------------------------------------------------------------ */

static int acked(uint64_t offset)
{
    int n = 0;
    for (replica *rp = srv.repl->replicas; rp; rp = rp->next)
        n += rp->state == REPLICA_ONLINE && rp->ack >= offset;
    return n;
}

static void waiter_remove(waiter *w)
{
    for (waiter **p = &srv.repl->waiters; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    xfree(w);
}

/* Only marked: leader_check_waiters frees it, so that unparking one waiter (which runs
 * that client's next commands, which may close others) never frees the one it visits next. */
static void waiter_closed(void *arg)
{
    ((waiter *)arg)->c = NULL;
}

static const client_park_ops wait_park_ops = {.closed = waiter_closed};

void leader_check_waiters(void)
{
    int64_t now = clock_ms();
    for (waiter *w = srv.repl->waiters, *next; w; w = next) {
        next = w->next;
        client *c = w->c;
        if (!c) {
            waiter_remove(w);
            continue;
        }
        int n = acked(w->offset);
        if (n < w->need && (!w->deadline_ms || now < w->deadline_ms))
            continue;
        client scratch;
        memset(&scratch, 0, sizeof scratch);
        scratch.resp = c->resp;
        buf_init(&scratch.obuf);
        reply_int(&scratch, n);
        client_output_append(c, &scratch.obuf);
        waiter_remove(w);
        client_unpark(c);
    }
}

void cmd_wait(client *c)
{
    int64_t need, timeout;
    if (arg_i64(c, 1, &need) || arg_i64(c, 2, &timeout))
        return;
    if (timeout < 0) {
        reply_error(c, "ERR timeout is negative");
        return;
    }
    if (repl_is_replica()) {
        reply_error(c, "ERR WAIT cannot be used with replica instances. Please also note that "
                       "since Redis 4.0 if a replica is configured to be writable (which is "
                       "not the default) writes to replicas are just local and are not "
                       "propagated.");
        return;
    }
    uint64_t offset = store_offset(srv.store); /* this client's writes so far */
    int n = acked(offset);
    if (n >= need || (c->flags & CLIENT_MULTI) || client_park(c, &wait_park_ops, NULL) != 0) {
        reply_int(c, n);
        return;
    }
    waiter *w = xcalloc(1, sizeof *w);
    w->c = c;
    w->offset = offset;
    w->need = need > INT32_MAX ? INT32_MAX : (int)need;
    w->deadline_ms = timeout ? clock_ms() + timeout : 0;
    w->next = srv.repl->waiters;
    srv.repl->waiters = w;
    c->park_arg = w;
}

int leader_good_replicas(int max_lag)
{
    int n = 0;
    int64_t now = clock_ms();
    for (replica *rp = srv.repl->replicas; rp; rp = rp->next)
        n += rp->state == REPLICA_ONLINE && (now - rp->ack_ms) / 1000 <= max_lag;
    return n;
}

/* Every repl-ping-replica-period seconds a PING goes down the stream, a logged write like
 * any (it commits the offset), so that replicas can tell a quiet leader from a dead one.
 * Not during a failover: the target must catch up with an offset that stands still. */
static void ping_replicas(int64_t now)
{
    repl *r = srv.repl;
    store_txn *t;
    if (!r->replicas || repl_is_replica()) {
        r->last_ping_ms = now; /* the period counts from when a replica is there to hear */
        return;
    }
    if (r->failover_state != FAILOVER_NONE ||
        now - r->last_ping_ms < (int64_t)srv.cfg.repl_ping_replica_period * 1000 ||
        store_txn_write(srv.store, 0, &t) != 0)
        return;
    r->last_ping_ms = now;
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    int db = store_log_db(srv.store);
    store_log(srv.store, db >= 0 ? db : 0, 1, argv, lens); /* no SELECT for a PING */
}

/* repl-timeout: an online replica whose ACKs stopped, or one whose snapshot output has
 * not moved (it stopped reading), is dropped; it reconnects when it can. */
static void drop_silent_replica(replica *rp, int64_t now)
{
    int64_t limit = (int64_t)srv.cfg.repl_timeout * 1000;
    if (rp->state == REPLICA_SENDING) {
        size_t unsent = client_obuf_pending(rp->c);
        if (unsent != rp->unsent || unsent == 0) {
            rp->unsent = unsent;
            rp->unsent_ms = now;
        }
        if (now - rp->unsent_ms > limit) {
            log_warn("replica %s closed: the snapshot did not move for %d seconds (repl-timeout)",
                     rp->c->addr, srv.cfg.repl_timeout);
            client_close(rp->c);
        }
    } else if (rp->state == REPLICA_ONLINE && now - rp->ack_ms > limit) {
        log_warn("replica %s closed: no ACK for %d seconds (repl-timeout)", rp->c->addr,
                 srv.cfg.repl_timeout);
        client_close(rp->c);
    }
}

void leader_cron(void)
{
    int64_t now = clock_ms();
    leader_check_waiters();
    ping_replicas(now);
    for (replica *rp = srv.repl->replicas, *next; rp; rp = next) {
        next = rp->next;
        if (rp->c->state != CONN_CLOSED)
            drop_silent_replica(rp, now);
    }
    for (replica *rp = srv.repl->replicas, *next; rp; rp = next) {
        next = rp->next;
        if (rp->state == REPLICA_ONLINE && replica_limit() &&
            client_obuf_pending(rp->c) > replica_limit())
            replica_over_limit(rp, client_obuf_pending(rp->c));
    }
}

/* ---- commands -------------------------------------------------------------------------- */

void cmd_replconf(client *c)
{
    if ((c->argc - 1) % 2) {
        reply_syntax_error(c);
        return;
    }
    replica *rp = leader_find(c);
    for (int i = 1; i < c->argc; i += 2) {
        int64_t v;
        if (arg_is(c, i, "ack")) {
            if (rp && str_to_i64(c->argv[i + 1], c->argl[i + 1], &v) == 0 && v >= 0) {
                rp->ack = (uint64_t)v;
                rp->ack_ms = clock_ms();
                leader_check_waiters();
            }
            return; /* ACK has no reply */
        } else if (arg_is(c, i, "listening-port")) {
            if (str_to_i64(c->argv[i + 1], c->argl[i + 1], &v) || v < 0 || v > 65535) {
                reply_error(c, "value is not an integer or out of range");
                return;
            }
            c->repl_port = (int)v;
        } else if (!arg_is(c, i, "capa") && !arg_is(c, i, "ip-address") &&
                   !arg_is(c, i, "getack")) {
            reply_errorf(c, "Unrecognized REPLCONF option: %.*s", (int)c->argl[i], c->argv[i]);
            return;
        }
    }
    reply_ok(c);
}

/* PSYNC replid offset: offset is the first byte the replica lacks. */
static int can_continue(const repl *r, const char *id, size_t idlen, uint64_t from)
{
    if (idlen != 40)
        return 0;
    if (memcmp(id, r->replid, 40) == 0)
        return from <= r->bl.end && r->bl.end - from <= r->bl.len;
    return r->second_offset && memcmp(id, r->replid2, 40) == 0 && from <= r->second_offset &&
           r->bl.end - from <= r->bl.len;
}

void cmd_psync(client *c)
{
    repl *r = srv.repl;
    if (c->argc > 3 && arg_is(c, 3, "failover") && failover_take_over(c) != 0)
        return;
    if (repl_is_replica() && link_stream_db() < 0) {
        reply_error(c, "NOMASTERLINK Can't SYNC while not connected with my master");
        return;
    }
    if (leader_find(c) || (c->flags & CLIENT_MULTI)) {
        reply_error(c, "ERR PSYNC is not allowed here");
        return;
    }
    int64_t off;
    if (str_to_i64(c->argv[2], c->argl[2], &off) != 0) {
        reply_error(c, "value is not an integer or out of range");
        return;
    }
    /* Writes of this pass are not in the backlog yet: they follow through the replica's
     * output at commit, after what is copied here. */
    if (off >= 1 && can_continue(r, c->argv[1], c->argl[1], (uint64_t)off - 1)) {
        buf b;
        buf_init(&b);
        buf_printf(&b, "+CONTINUE %s\r\n", r->replid);
        backlog_copy(&r->bl, (uint64_t)off - 1, &b);
        replica *rp = replica_add(c, REPLICA_ONLINE);
        rp->port = c->repl_port;
        rp->ack = (uint64_t)off - 1;
        client_output_append(c, &b);
        r->sync_partial_ok++;
        log_info("replica %s: partial resync from offset %lld", c->addr, (long long)off);
        return;
    }
    if (!(c->argl[1] == 1 && c->argv[1][0] == '?'))
        r->sync_partial_err++;
    r->sync_full++;
    if (client_park(c, &snap_park_ops, NULL) != 0) {
        reply_error(c, "ERR PSYNC cannot run here");
        return;
    }
    replica *rp = replica_add(c, REPLICA_WAIT_SNAPSHOT);
    rp->port = c->repl_port;
}
