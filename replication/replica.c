/* replica.c: the replica's side. A hiredis async link on the loop's libevent does the
 * handshake (AUTH, REPLCONF, PSYNC), or with tls-replication the link does it itself over
 * wire/tls.h (hiredis here has no TLS); then the socket is read here, through TLS or not:
 * the snapshot's frames are loaded into <dir>/sync.tmp beside the live data (which keeps
 * answering reads) and swapped in, and the stream's commands are applied by the master
 * client through the normal command path, the offset following the leader's bytes. */
#include "replication/repl_int.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "query/fs_vec.h"
#include "query/ft.h"
#include "wire/tls.h"

#define READ_BYTES (256 * 1024)

#define HANDSHAKE_MAX 4 /* AUTH, REPLCONF listening-port, REPLCONF capa, PSYNC */

typedef struct replica_link {
    redisAsyncContext *ac; /* during a plain handshake */
    int fd;                /* ours after a plain handshake; from the start with TLS */
    tls_conn *tls;         /* tls-replication: the session on fd */
    int connecting;        /* TLS: the TCP connect is in progress */
    const char *sent[HANDSHAKE_MAX]; /* TLS: the handshake's commands, for their replies */
    int nsent, nanswered;
    struct event *ev;
    buf in;
    buf out; /* for the leader, not yet written: the TLS handshake, ACKs */
    size_t pos;
    int frames_phase; /* reading a snapshot */
    int swap_ready;   /* the snapshot is whole on disk: swap it in when no job runs */
    store_loader *ld;
    int file_fd;
    char file_name[256];
    uint64_t snap_offset, frames;
    int32_t snap_db;
    char snap_replid[41];
    int snap_has_data; /* a RECORDS frame of keys or the feature store came */
    resp_parser parser;
    client master; /* runs the stream's commands */
    int64_t last_ack_ms;
} replica_link;

static void sync_dir(char *out, size_t n)
{
    snprintf(out, n, "%s/sync.tmp", srv.cfg.dir);
}

void repl_new_id(char *out)
{
    unsigned char r[20];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, r, sizeof r) : -1;
    if (fd >= 0)
        close(fd);
    if (got != (ssize_t)sizeof r) {
        uint64_t h = hash_bytes(srv.run_id, 40, (uint64_t)clock_us());
        for (int i = 0; i < 20; i++)
            r[i] = (unsigned char)(h >> (8 * (i % 8))) ^ (unsigned char)i;
    }
    for (int i = 0; i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* ---- the link's life ------------------------------------------------------------------- */

static void link_free(replica_link *l)
{
    if (l->ev)
        event_free(l->ev);
    tls_conn_free(l->tls);
    if (l->fd >= 0)
        close(l->fd);
    if (l->ld)
        store_load_end(l->ld, 0);
    if (l->file_fd >= 0)
        close(l->file_fd);
    buf_free(&l->in);
    buf_free(&l->out);
    resp_parser_free(&l->parser);
    buf_free(&l->master.obuf);
    xfree(l->master.argv);
    xfree(l->master.argl);
    query_release(&l->master);
    xfree(l);
}

void link_fail(const char *why)
{
    repl *r = srv.repl;
    replica_link *l = r->link;
    if (!l)
        return;
    log_warn("replication: link to %s:%d lost: %s", r->master_host, r->master_port, why);
    snprintf(r->link_error, sizeof r->link_error, "%s", why);
    if (l->ac) {
        l->ac->data = NULL;
        redisAsyncFree(l->ac); /* its callbacks see data NULL and do nothing */
    }
    if (l->frames_phase) {
        char dir[4200];
        sync_dir(dir, sizeof dir);
        if (l->ld)
            store_load_end(l->ld, 0);
        l->ld = NULL;
        repl_rmtree(dir);
    }
    link_free(l);
    r->link = NULL;
    r->link_state = LINK_NONE;
    r->loading = 0;
    r->link_down_since_ms = clock_ms();
    r->next_connect_ms = clock_ms() + 1000;
    if (r->failover_state == FAILOVER_IN_PROGRESS)
        failover_abort("the link to the failover target failed");
}

int link_stream_db(void)
{
    repl *r = srv.repl;
    return r->link && r->link_state == LINK_CONNECTED ? r->link->master.db : -1;
}

void link_stop(void)
{
    if (srv.repl->link)
        link_fail("replication stopped");
    srv.repl->link_error[0] = '\0';
}

/* ---- the bytes: the one place where TLS and plain links differ --------------------------- */

/* Writes what l->out holds as far as the socket takes it now; the rest waits for the next
 * call (TLS must be given the same bytes again). A broken link is left to the reader to
 * notice. */
static void flush_out(replica_link *l)
{
    size_t done = 0;
    while (done < l->out.len) {
        size_t put = 0;
        if (l->tls) {
            int wants;
            if (tls_write(l->tls, l->out.data + done, l->out.len - done, &put, &wants) != 0)
                break;
        } else {
            ssize_t w = write(l->fd, l->out.data + done, l->out.len - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            put = (size_t)w;
        }
        done += put;
    }
    if (done > 0) {
        memmove(l->out.data, l->out.data + done, l->out.len - done);
        l->out.len -= done;
    }
}

/* Reads what the leader sent into l->in: 1 when bytes came, 0 when none yet, -1 after
 * dropping the link (closed, or a TLS error). */
static int link_recv(replica_link *l)
{
    int got_any = 0;
    do {
        buf_reserve(&l->in, READ_BYTES);
        size_t got = 0;
        if (l->tls) {
            int wants;
            int rc = tls_read(l->tls, l->in.data + l->in.len, READ_BYTES, &got, &wants);
            if (rc == ERR_AGAIN)
                break;
            if (rc != 0) {
                char why[300];
                const char *reason = tls_read_error(l->tls);
                snprintf(why, sizeof why, "the leader closed the TLS connection%s%s",
                         *reason ? ": " : "", reason);
                link_fail(why);
                return -1;
            }
        } else {
            ssize_t n = read(l->fd, l->in.data + l->in.len, READ_BYTES);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (n <= 0) {
                link_fail(n == 0 ? "the leader closed the connection" : strerror(errno));
                return -1;
            }
            got = (size_t)n;
        }
        l->in.len += got;
        got_any = 1;
    } while (l->tls && tls_pending(l->tls)); /* OpenSSL may hold bytes the socket does not show */
    if (got_any)
        srv.repl->last_io_ms = clock_ms();
    return got_any;
}

/* Appends a command as a RESP array of bulk strings. */
static void append_command(buf *b, int argc, const char **argv)
{
    char head[32];
    buf_append(b, head, (size_t)snprintf(head, sizeof head, "*%d\r\n", argc));
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]);
        buf_append(b, head, (size_t)snprintf(head, sizeof head, "$%zu\r\n", n));
        buf_append(b, argv[i], n);
        buf_append(b, "\r\n", 2);
    }
}

static void send_ack(replica_link *l)
{
    if (l->out.len == 0) { /* else an ACK still waits: the next one says the same, later */
        char num[24];
        num[i64_to_str(num, (long long)store_offset(srv.store))] = '\0';
        const char *argv[] = {"REPLCONF", "ACK", num};
        append_command(&l->out, 3, argv);
    }
    flush_out(l);
    l->last_ack_ms = clock_ms();
}

/* ---- the stream ------------------------------------------------------------------------ */

static void apply_command(replica_link *l, const char *base)
{
    client *m = &l->master;
    resp_parser *p = &l->parser;
    if (p->argc > m->argv_cap) {
        m->argv_cap = p->argc;
        m->argv = xrealloc(m->argv, sizeof *m->argv * (size_t)p->argc);
        m->argl = xrealloc(m->argl, sizeof *m->argl * (size_t)p->argc);
    }
    m->argc = p->argc;
    for (int i = 0; i < p->argc; i++) {
        m->argv[i] = base + p->argv_off[i];
        m->argl[i] = p->argv_len[i];
    }
    const command *cmd = command_lookup(m->argv[0], m->argl[0]);
    if (!cmd || (cmd->arity > 0 && m->argc != cmd->arity) || m->argc < -cmd->arity) {
        log_warn("replication: the leader sent an unknown command '%.*s': skipped",
                 (int)(m->argl[0] > 64 ? 64 : m->argl[0]), m->argv[0]);
        return;
    }
    store_pause_expiry(srv.store, 1); /* the leader's view of what has expired */
    call(m, cmd);
    store_pause_expiry(srv.store, 0);
    if (m->obuf.len > 4 && m->obuf.data[0] == '-')
        log_warn("replication: applying '%s' failed: %.*s", cmd->name,
                 (int)(m->obuf.len > 200 ? 200 : m->obuf.len - 2), m->obuf.data);
    m->obuf.len = 0;
}

static const resp_limits stream_limits = {RESP_DEFAULT_MAX_INLINE, RESP_DEFAULT_MAX_BULK,
                                          RESP_DEFAULT_MAX_ARGS, (size_t)RESP_DEFAULT_MAX_BULK * 2,
                                          0};

static int parsed_is(const replica_link *l, const char *at, const char *word)
{
    size_t n = strlen(word);
    return l->parser.argc == 1 && l->parser.argv_len[0] == n &&
           strncasecmp(at + l->parser.argv_off[0], word, n) == 0;
}

/* Parses the command at l->pos (consumed: its size). RESP_NEED_MORE, RESP_OK, or -1 after
 * dropping the link. */
static int parse_at(replica_link *l, size_t pos, size_t *consumed)
{
    resp_parser_reset(&l->parser);
    int rc = resp_parse(&l->parser, l->in.data + pos, l->in.len - pos, &stream_limits, consumed);
    if (rc == RESP_OK || rc == RESP_NEED_MORE)
        return rc;
    link_fail(l->parser.err ? l->parser.err : "protocol error in the stream");
    return -1;
}

/* A transaction (MULTI ... EXEC) is applied only once all of it has arrived, in one pass,
 * held together as EXEC holds it on the leader. *end: the offset in l->in after EXEC. */
static int find_exec(replica_link *l, size_t from, size_t *end)
{
    size_t pos = from, consumed;
    int rc;
    while ((rc = parse_at(l, pos, &consumed)) == RESP_OK) {
        int is_exec = parsed_is(l, l->in.data + pos, "exec");
        pos += consumed;
        if (is_exec) {
            *end = pos;
            return RESP_OK;
        }
    }
    return rc;
}

/* Applies the commands in l->in[from, end), skipping EXEC. */
static void apply_range(replica_link *l, size_t from, size_t end)
{
    size_t consumed;
    while (from < end && parse_at(l, from, &consumed) == RESP_OK) {
        const char *at = l->in.data + from;
        if (l->parser.argc > 0 && !parsed_is(l, at, "exec"))
            apply_command(l, at);
        from += consumed;
    }
}

static int apply_stream(replica_link *l)
{
    repl *r = srv.repl;
    while (l->pos < l->in.len) {
        size_t consumed;
        int rc = parse_at(l, l->pos, &consumed);
        if (rc != RESP_OK)
            return rc < 0 ? -1 : 0;
        const char *at = l->in.data + l->pos;
        uint64_t before = store_offset(srv.store); /* commands log themselves: ignored */
        if (parsed_is(l, at, "multi")) {
            size_t end;
            if ((rc = find_exec(l, l->pos + consumed, &end)) != RESP_OK)
                return rc < 0 ? -1 : 0; /* the rest of it has not arrived yet */
            store_txn_hold(srv.store, end - l->pos, 1);
            apply_range(l, l->pos + consumed, end);
            store_txn_hold(srv.store, 0, 0);
            consumed = end - l->pos;
        } else if (l->parser.argc > 0) {
            apply_command(l, at);
        }
        buf_append(&r->pending, at, consumed);
        l->pos += consumed;
        store_set_log_position(srv.store, before + consumed, l->master.db);
    }
    return 0;
}

/* ---- the snapshot ---------------------------------------------------------------------- */

static int file_chunk(replica_link *l, const char *name, size_t nlen, const char *p, size_t n)
{
    if (nlen == 0 || nlen >= sizeof l->file_name || memchr(name, '/', nlen) ||
        memchr(name, '\0', nlen) || name[0] == '.')
        return -1;
    if (l->file_fd < 0 || strlen(l->file_name) != nlen || memcmp(l->file_name, name, nlen)) {
        if (l->file_fd >= 0 && (fsync(l->file_fd) != 0 || close(l->file_fd) != 0))
            return l->file_fd = -1, -1;
        memcpy(l->file_name, name, nlen);
        l->file_name[nlen] = '\0';
        char path[4600];
        sync_dir(path, sizeof path);
        size_t len = strlen(path);
        snprintf(path + len, sizeof path - len, "/history/%s", l->file_name);
        l->file_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (l->file_fd < 0)
            return -1;
    }
    while (n > 0) {
        ssize_t w = write(l->file_fd, p, n);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int load_records(replica_link *l, const char *db, const char *p, size_t n)
{
    const char *k, *v;
    size_t kl, vl;
    int rc;
    while ((rc = frame_record(&p, &n, &k, &kl, &v, &vl)) == 0)
        if (store_load_put(l->ld, db, k, kl, v, vl) != 0)
            return -1;
    return rc == 1 ? 0 : -1;
}

static int begin_load(replica_link *l, const char *p, size_t n)
{
    uint32_t ver;
    uint64_t used;
    if (n != 64)
        return -1;
    memcpy(&ver, p, 4);
    memcpy(&l->snap_offset, p + 4, 8);
    memcpy(&used, p + 12, 8);
    memcpy(l->snap_replid, p + 20, 40);
    l->snap_replid[40] = '\0';
    memcpy(&l->snap_db, p + 60, 4);
    if (ver != FRAME_VERSION || l->snap_db < -1 || l->snap_db >= STORE_DBS)
        return -1;
    char dir[4200], hist[4300], err[512];
    sync_dir(dir, sizeof dir);
    repl_rmtree(dir);
    snprintf(hist, sizeof hist, "%s/history", dir);
    if (mkdir(dir, 0755) != 0 || mkdir(hist, 0755) != 0)
        return -1;
    size_t map = used * 2 + ((size_t)256 << 20);
    if (map < (size_t)srv.cfg.lmdb_map_size)
        map = (size_t)srv.cfg.lmdb_map_size;
    if (store_load_begin(dir, map, &l->ld, err, sizeof err) != 0) {
        log_warn("replication: %s", err);
        return -1;
    }
    return 0;
}

/* Writes READY; from here a crash finishes the swap at the next start. */
static int mark_ready(const char *dir)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/READY", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        rc |= fsync(dfd);
        close(dfd);
    }
    return rc;
}

/* Moves sync.tmp's data in place of dir's (sync.tmp/READY exists). Idempotent. */
static int finish_swap(const char *dir)
{
    char tmp[4200], a[4400], b[4400];
    snprintf(tmp, sizeof tmp, "%s/sync.tmp", dir);
    snprintf(a, sizeof a, "%s/data.mdb", tmp);
    snprintf(b, sizeof b, "%s/data.mdb", dir);
    if (access(a, F_OK) == 0 && rename(a, b) != 0)
        return -1;
    snprintf(a, sizeof a, "%s/history", tmp);
    snprintf(b, sizeof b, "%s/history", dir);
    if (access(a, F_OK) == 0) {
        repl_rmtree(b);
        if (rename(a, b) != 0)
            return -1;
    }
    snprintf(b, sizeof b, "%s/lock.mdb", dir);
    unlink(b);
    snprintf(b, sizeof b, "%s/vectors", dir);
    repl_rmtree(b); /* FT indexes are rebuilt from the new hashes */
    repl_rmtree(tmp);
    return 0;
}

void repl_recover_dir(const char *dir)
{
    char tmp[4200], ready[4300];
    snprintf(tmp, sizeof tmp, "%s/sync.tmp", dir);
    snprintf(ready, sizeof ready, "%s/READY", tmp);
    if (access(ready, F_OK) == 0) {
        log_info("replication: finishing the full sync a restart interrupted");
        if (finish_swap(dir) != 0)
            log_warn("replication: cannot finish the interrupted full sync: %s", strerror(errno));
    } else if (access(tmp, F_OK) == 0) {
        repl_rmtree(tmp); /* an unfinished transfer */
    }
}

void repl_attach_store(void);

/* The snapshot is whole: everything synced, then READY. */
static int seal_snapshot(replica_link *l)
{
    char dir[4200];
    sync_dir(dir, sizeof dir);
    if (l->file_fd >= 0) {
        int rc = fsync(l->file_fd);
        close(l->file_fd);
        l->file_fd = -1;
        if (rc)
            return -1;
    }
    int rc = store_load_end(l->ld, 1);
    l->ld = NULL;
    return rc || mark_ready(dir) != 0 ? -1 : 0;
}

/* Swaps the sealed snapshot in for the live data. */
static void swap_in(replica_link *l)
{
    char err[1024];
    ft_stop();
    ft_shutdown();
    fs_vec_reset();
    store_close(srv.store);
    srv.store = NULL;
    if (finish_swap(srv.cfg.dir) != 0)
        log_warn("replication: moving the new data in: %s", strerror(errno));
    store_config sc = {.dir = srv.cfg.dir,
                       .map_size = (size_t)srv.cfg.lmdb_map_size,
                       .durability = srv.cfg.durability};
    if (store_open(&sc, &srv.store, err, sizeof err) != 0) {
        log_warn("replication: cannot open the data of the full sync: %s", err);
        abort(); /* nothing to serve from: a restart starts over */
    }
    query_attach_store();
    repl_attach_store();
    leader_drop_all(); /* replicas of ours hold the data just replaced: they start over */
    store_set_replid(srv.store, l->snap_replid);
    store_set_log_position(srv.store, l->snap_offset, l->snap_db);
    ft_start();
}

#define SYNC_REFUSED (-2)

/* 1 when this server holds data: some key, or a stream it applied or wrote. */
static int holds_data(void)
{
    if (store_offset(srv.store) > 0)
        return 1;
    for (int db = 0; db < STORE_DBS; db++)
        if (store_dbsize(srv.store, db) > 0)
            return 1;
    return 0;
}

/* replica-protect-data, once the snapshot is whole: an empty one (no record outside
 * "meta": no keys, no feature store) from a leader whose replid is neither of ours (a
 * history this server never followed) would wipe our data: a pod that lost its volume and
 * came back as the leader. SYNC_REFUSED after dropping the link, the reason in INFO. */
static int protect_data(replica_link *l)
{
    repl *r = srv.repl;
    if (!srv.cfg.replica_protect_data || l->snap_has_data ||
        memcmp(l->snap_replid, r->replid, 40) == 0 ||
        memcmp(l->snap_replid, r->replid2, 40) == 0 || !holds_data())
        return 0;
    snprintf(r->sync_refused, sizeof r->sync_refused,
             "empty leader %s never followed: this replica keeps its data "
             "(replica-protect-data yes)",
             l->snap_replid);
    char why[300];
    snprintf(why, sizeof why, "full sync refused: %s", r->sync_refused);
    link_fail(why);
    return SYNC_REFUSED;
}

static int frame_step(replica_link *l, int type, const char *name, size_t nlen, const char *p,
                      size_t n)
{
    if ((type == FRAME_HEADER) != (l->ld == NULL && l->frames == 0))
        return -1; /* HEADER first, and once */
    l->frames++;
    switch (type) {
    case FRAME_HEADER:
        return nlen == 4 && memcmp(name, FRAME_MAGIC, 4) == 0 ? begin_load(l, p, n) : -1;
    case FRAME_RECORDS: {
        char db[32];
        if (nlen == 0 || nlen >= sizeof db)
            return -1;
        l->snap_has_data |= nlen != 4 || memcmp(name, "meta", 4) != 0;
        memcpy(db, name, nlen);
        db[nlen] = '\0';
        return load_records(l, db, p, n);
    }
    case FRAME_FILE:
        return file_chunk(l, name, nlen, p, n);
    default:
        break;
    }
    uint64_t off, count;
    if (n != 16)
        return -1;
    memcpy(&off, p, 8);
    memcpy(&count, p + 8, 8);
    if (off != l->snap_offset || count != l->frames - 1)
        return -1;
    if (protect_data(l) != 0)
        return SYNC_REFUSED;
    if (seal_snapshot(l) != 0)
        return -1;
    l->swap_ready = 1;
    return 0;
}

/* Swaps the sealed snapshot in, once no worker job can be reading the store; the stream
 * waits meanwhile. -1 when it must wait. */
static int try_swap(replica_link *l)
{
    repl *r = srv.repl;
    if (server_jobs_busy()) {
        /* From here no command may start a job on the data about to go (-LOADING), and
         * our replicas' snapshots, which could read it for as long as they are slow, end. */
        if (!r->loading)
            leader_drop_all();
        r->loading = 1;
        return -1;
    }
    swap_in(l);
    l->swap_ready = 0;
    r->loading = 0;
    memcpy(r->replid, l->snap_replid, sizeof r->replid);
    r->second_offset = 0;
    backlog_free(&r->bl);
    backlog_init(&r->bl, (size_t)srv.cfg.repl_backlog_size, l->snap_offset);
    r->pending.len = 0;
    r->log_end = l->snap_offset;
    l->master.db = l->snap_db >= 0 ? l->snap_db : 0;
    l->frames_phase = 0;
    r->link_state = LINK_CONNECTED;
    log_info("replication: full sync done at offset %llu (%llu frames)",
             (unsigned long long)l->snap_offset, (unsigned long long)l->frames);
    return 0;
}

static int read_frames(replica_link *l)
{
    while (l->frames_phase && !l->swap_ready && l->pos < l->in.len) {
        int type;
        const char *name, *payload;
        size_t nlen, plen, size;
        int rc = frame_get(l->in.data + l->pos, l->in.len - l->pos, &type, &name, &nlen, &payload,
                           &plen, &size);
        if (rc == 1)
            return 0;
        if (rc < 0 || (rc = frame_step(l, type, name, nlen, payload, plen)) != 0) {
            if (rc != SYNC_REFUSED) /* else the link is gone already */
                link_fail("the snapshot from the leader is damaged or cannot be stored");
            return -1;
        }
        l->pos += size;
    }
    return 0;
}

static void consume(replica_link *l)
{
    if (read_frames(l) != 0)
        return;
    if (l->swap_ready && try_swap(l) != 0)
        return; /* the cron tries again */
    if (!l->frames_phase && apply_stream(l) != 0)
        return;
    if (l->pos > 0) { /* the parser's positions are relative: moving bytes is fine */
        memmove(l->in.data, l->in.data + l->pos, l->in.len - l->pos);
        l->in.len -= l->pos;
        l->pos = 0;
    }
}

static void on_link_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    replica_link *l = arg;
    if (link_recv(l) <= 0)
        return;
    uint64_t before = store_offset(srv.store);
    consume(l);
    /* ACK what was applied at once, so that WAIT and lag need not wait for the cron */
    if (srv.repl->link == l && srv.repl->link_state == LINK_CONNECTED &&
        store_offset(srv.store) != before)
        send_ack(l);
}

/* ---- the handshake --------------------------------------------------------------------- */

/* Watches the link's socket for what, calling cb (replacing what it watched before). */
static void watch(replica_link *l, short what, event_callback_fn cb)
{
    if (l->ev)
        event_free(l->ev);
    l->ev = event_new(srv.base, l->fd, what | EV_PERSIST, cb, l);
    event_add(l->ev, NULL);
}

/* Takes the socket and the bytes hiredis read past the PSYNC reply. */
static int take_socket(replica_link *l)
{
    redisContext *c = &l->ac->c;
    l->fd = dup(c->fd);
    if (l->fd < 0)
        return -1;
    redisReader *rd = c->reader;
    buf_append(&l->in, rd->buf + rd->pos, rd->len - rd->pos);
    rd->pos = rd->len; /* hiredis must not parse the stream as replies */
    l->ac->data = NULL;
    redisAsyncDisconnect(l->ac);
    l->ac = NULL;
    evutil_make_socket_nonblocking(l->fd);
    return 0;
}

/* From the PSYNC reply on, the link reads frames and the stream. */
static void start_stream(replica_link *l)
{
    /* A quiet leader sends nothing: keepalives tell a dead link (a leader's host gone
     * without closing) from an idle one, within about 10 + 3 x 2 seconds. */
    int on = 1, idle = 10, intvl = 2, cnt = 3;
    setsockopt(l->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(l->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(l->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(l->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    watch(l, EV_READ, on_link_read);
}

/* The leader's +FULLRESYNC or +CONTINUE (status: the line without '+'). -1 after dropping
 * the link. */
static int psync_accepted(replica_link *l, const char *status)
{
    repl *r = srv.repl;
    if (strncmp(status, "FULLRESYNC ", 11) == 0) {
        l->frames_phase = 1;
        r->link_state = LINK_TRANSFER;
        log_info("replication: %s", status);
        if (r->failover_state == FAILOVER_IN_PROGRESS)
            failover_done(); /* FORCE: the target did not have all of ours */
    } else if (strncmp(status, "CONTINUE", 8) == 0) {
        const char *id = status + 8 + (status[8] == ' ');
        if (strlen(id) == 40 && memcmp(id, r->replid, 40) != 0) {
            /* the leader was promoted since: its history continues ours */
            memcpy(r->replid2, r->replid, sizeof r->replid);
            r->second_offset = store_offset(srv.store);
            memcpy(r->replid, id, 40);
            store_set_replid(srv.store, r->replid);
        }
        r->link_state = LINK_CONNECTED;
        log_info("replication: partial resync from offset %llu",
                 (unsigned long long)store_offset(srv.store) + 1);
        if (r->failover_state == FAILOVER_IN_PROGRESS)
            failover_done();
    } else {
        link_fail("unexpected reply to PSYNC");
        return -1;
    }
    r->link_error[0] = r->sync_refused[0] = '\0';
    return 0;
}

static void on_psync(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    replica_link *l = ac->data;
    redisReply *rep = reply;
    if (!l)
        return;
    if (!rep || rep->type != REDIS_REPLY_STATUS) {
        char why[300];
        snprintf(why, sizeof why, "PSYNC refused: %s",
                 rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "no reply");
        link_fail(why);
        return;
    }
    if (psync_accepted(l, rep->str) != 0)
        return;
    if (take_socket(l) != 0) {
        link_fail("cannot take the link's socket");
        return;
    }
    start_stream(l);
    consume(l);
}

static void on_handshake_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *rep = reply;
    if (!ac->data || !rep || rep->type != REDIS_REPLY_ERROR)
        return;
    char why[300];
    snprintf(why, sizeof why, "%s refused: %s", (const char *)priv, rep->str);
    link_fail(why);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (!ac->data)
        return;
    if (status != REDIS_OK) {
        srv.repl->link->ac = NULL; /* hiredis frees it after this callback */
        link_fail(ac->errstr);
        return;
    }
    srv.repl->link_state = LINK_HANDSHAKE;
    srv.repl->last_io_ms = clock_ms();
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    if (!ac->data)
        return;
    srv.repl->link->ac = NULL; /* hiredis frees it after this callback */
    link_fail(ac->errstr[0] ? ac->errstr : "the leader closed the connection");
}

/* One command of the handshake, for hiredis or for the TLS link. */
typedef struct {
    const char *name; /* in "... refused" errors */
    int argc;
    const char *argv[4];
} handshake_cmd;

/* The handshake's commands, in order, into c (the last is PSYNC); their arguments point
 * into port and off. Returns how many. */
static int handshake_commands(handshake_cmd *c, char port[12], char off[24])
{
    int n = 0;
    const char *user = srv.cfg.masteruser, *pass = srv.cfg.masterauth;
    if (pass && *pass && user && *user)
        c[n++] = (handshake_cmd){"AUTH", 3, {"AUTH", user, pass}};
    else if (pass && *pass)
        c[n++] = (handshake_cmd){"AUTH", 2, {"AUTH", pass}};
    snprintf(port, 12, "%d", srv.cfg.port);
    c[n++] = (handshake_cmd){"REPLCONF listening-port", 3, {"REPLCONF", "listening-port", port}};
    c[n++] = (handshake_cmd){"REPLCONF capa", 3, {"REPLCONF", "capa", "psync2"}};
    /* Our own id and offset: a leader whose history this is (or continues) resumes it.
     * With no stream yet there is nothing to resume: "? -1" asks for a full sync, which the
     * leader does not count as a failed partial one. FAILOVER tells the target to take over. */
    uint64_t at = store_offset(srv.store);
    int failover = srv.repl->failover_state == FAILOVER_IN_PROGRESS;
    snprintf(off, 24, "%llu", (unsigned long long)at + 1);
    if (at == 0 && !failover)
        c[n++] = (handshake_cmd){"PSYNC", 3, {"PSYNC", "?", "-1"}};
    else
        c[n++] = (handshake_cmd){"PSYNC", failover ? 4 : 3,
                                 {"PSYNC", srv.repl->replid, off, "FAILOVER"}};
    return n;
}

/* The plain link: hiredis does the handshake, then take_socket(). */
static void start_plain(replica_link *l)
{
    repl *r = srv.repl;
    l->ac = redisAsyncConnect(r->master_host, r->master_port);
    if (!l->ac || l->ac->err) {
        char why[300];
        snprintf(why, sizeof why, "cannot connect: %s", l->ac ? l->ac->errstr : "no memory");
        if (l->ac)
            redisAsyncFree(l->ac);
        l->ac = NULL;
        link_fail(why);
        return;
    }
    l->ac->data = l;
    redisLibeventAttach(l->ac, srv.base);
    redisAsyncSetConnectCallback(l->ac, on_connect);
    redisAsyncSetDisconnectCallback(l->ac, on_disconnect);
    handshake_cmd c[HANDSHAKE_MAX];
    char port[12], off[24];
    int n = handshake_commands(c, port, off);
    for (int i = 0; i < n; i++)
        redisAsyncCommandArgv(l->ac, i == n - 1 ? on_psync : on_handshake_reply,
                              (void *)c[i].name, c[i].argc, c[i].argv, NULL);
}

/* ---- the TLS handshake: hiredis here has no TLS, so the link does it itself ------------ */

/* The client context, built at the first TLS link (its options are fixed after start). */
static tls_ctx *client_tls(char *err, size_t errlen)
{
    static tls_ctx *ctx;
    const config *cfg = &srv.cfg;
    int own = cfg->tls_client_cert_file && *cfg->tls_client_cert_file;
    tls_config tc = {.cert_file = own ? cfg->tls_client_cert_file : cfg->tls_cert_file,
                     .key_file = own ? cfg->tls_client_key_file : cfg->tls_key_file,
                     .ca_cert_file = cfg->tls_ca_cert_file,
                     .ca_cert_dir = cfg->tls_ca_cert_dir,
                     .protocols = cfg->tls_protocols};
    if (!ctx && tls_client_ctx_new(&tc, &ctx, err, errlen) != 0)
        ctx = NULL;
    return ctx;
}

/* A non-blocking TCP connect to host:port: the socket, or -1 with why. */
static int connect_to(const char *host, int port, char *why, size_t n)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    char ps[12];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc != 0) {
        snprintf(why, n, "cannot connect: %s", gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        snprintf(why, n, "cannot connect: %s", strerror(errno));
    freeaddrinfo(ai);
    return fd;
}

/* Reads the handshake's replies in l->in (simple strings, or errors). 1 once PSYNC's came
 * and the stream started, 0 while some are missing, -1 after dropping the link. */
static int read_replies(replica_link *l)
{
    char *line = NULL;
    while (l->nanswered < l->nsent) {
        line = l->in.data + l->pos;
        char *eol = l->pos < l->in.len ? memmem(line, l->in.len - l->pos, "\r\n", 2) : NULL;
        if (!eol && l->in.len - l->pos > 4096) {
            link_fail("the leader's reply to the handshake is too long");
            return -1;
        }
        if (!eol)
            return 0;
        *eol = '\0';
        l->pos = (size_t)(eol + 2 - l->in.data);
        const char *name = l->sent[l->nanswered++];
        if (line[0] != '+') {
            char why[300];
            snprintf(why, sizeof why, "%s refused: %s", name, line + (line[0] == '-'));
            link_fail(why);
            return -1;
        }
    }
    if (psync_accepted(l, line + 1) != 0)
        return -1;
    start_stream(l);
    consume(l);
    return 1;
}

static void on_tls_handshake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    replica_link *l = arg;
    if (l->connecting) {
        int e = 0;
        socklen_t len = sizeof e;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
            e = errno;
        if (e) {
            char why[300];
            snprintf(why, sizeof why, "cannot connect: %s", strerror(e));
            link_fail(why);
            return;
        }
        l->connecting = 0;
    }
    if (!tls_conn_ready(l->tls)) {
        char err[400];
        int wants = 0;
        int rc = tls_connect(l->tls, &wants, err, sizeof err);
        if (rc == ERR_AGAIN) {
            watch(l, wants == TLS_WANT_WRITE ? EV_WRITE : EV_READ, on_tls_handshake);
            return;
        }
        if (rc != 0) {
            link_fail(err);
            return;
        }
        srv.repl->link_state = LINK_HANDSHAKE;
        srv.repl->last_io_ms = clock_ms();
    }
    flush_out(l);
    if (link_recv(l) < 0 || read_replies(l) != 0)
        return;
    watch(l, l->out.len ? EV_READ | EV_WRITE : EV_READ, on_tls_handshake);
}

/* The TLS link: connect, TLS handshake, then the commands, pipelined. */
static void start_tls(replica_link *l)
{
    repl *r = srv.repl;
    char why[500];
    tls_ctx *ctx = client_tls(why, sizeof why);
    if (!ctx || (l->fd = connect_to(r->master_host, r->master_port, why, sizeof why)) < 0) {
        link_fail(why);
        return;
    }
    if (tls_client_conn_new(ctx, l->fd, r->master_host, &l->tls) != 0) {
        link_fail("cannot start a TLS session");
        return;
    }
    handshake_cmd c[HANDSHAKE_MAX];
    char port[12], off[24];
    l->nsent = handshake_commands(c, port, off);
    for (int i = 0; i < l->nsent; i++) {
        append_command(&l->out, c[i].argc, c[i].argv);
        l->sent[i] = c[i].name;
    }
    l->connecting = 1;
    watch(l, EV_WRITE, on_tls_handshake);
}

void link_start(void)
{
    repl *r = srv.repl;
    replica_link *l = xcalloc(1, sizeof *l);
    l->fd = l->file_fd = -1;
    buf_init(&l->in);
    buf_init(&l->out);
    resp_parser_init(&l->parser);
    l->master.state = CONN_OPEN;
    l->master.fd = -1;
    l->master.resp = 2;
    l->master.authenticated = 1;
    l->master.flags = CLIENT_MASTER;
    int db = store_log_db(srv.store);
    l->master.db = db >= 0 ? db : 0;
    buf_init(&l->master.obuf);
    snprintf(l->master.addr, sizeof l->master.addr, "%s:%d", r->master_host, r->master_port);
    r->link = l;
    r->link_state = LINK_CONNECTING;
    r->link_start_ms = clock_ms();
    if (srv.cfg.tls_replication)
        start_tls(l);
    else
        start_plain(l);
}

/* repl-timeout: a leader that sent nothing (not even its PINGs) for that long, or a link
 * stuck connecting or in the handshake, is dropped; 1 when it was. */
static int link_timed_out(int64_t now)
{
    repl *r = srv.repl;
    int64_t heard = r->last_io_ms > r->link_start_ms ? r->last_io_ms : r->link_start_ms;
    if (now - heard <= (int64_t)srv.cfg.repl_timeout * 1000)
        return 0;
    char why[128];
    snprintf(why, sizeof why, "timeout: nothing from the leader for %lld seconds",
             (long long)(now - heard) / 1000);
    link_fail(why);
    return 1;
}

void link_cron(void)
{
    repl *r = srv.repl;
    if (!r->master_host)
        return;
    int64_t now = clock_ms();
    if (!r->link && now >= r->next_connect_ms) {
        link_start();
        return;
    }
    replica_link *l = r->link;
    if (l && link_timed_out(now))
        return;
    if (l && l->swap_ready)
        consume(l);
    else if (l && r->link_state == LINK_CONNECTED && now - l->last_ack_ms >= 1000)
        send_ack(l);
}
