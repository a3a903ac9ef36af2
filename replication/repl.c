/* repl.c: replication's place in the server: start and stop, the hooks into the store's
 * write path, the cron, and the commands an operator uses (REPLICAOF, ROLE) and INFO
 * replication. The leader's work is in leader.c, the replica's in replica.c. */
#include "replication/repl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"

void repl_attach_store(void)
{
    store_set_log_hook(srv.store, leader_log, srv.repl);
    store_set_commit_hook(srv.store, leader_commit, srv.repl);
}

/* "host port" (the replicaof option) into the module; 0 or -1. */
static int set_master(const char *host, size_t hlen, const char *port, size_t plen)
{
    int64_t p;
    if (hlen == 0 || hlen > 255 || str_to_i64(port, plen, &p) || p <= 0 || p > 65535)
        return -1;
    repl *r = srv.repl;
    xfree(r->master_host);
    r->master_host = xmalloc(hlen + 1);
    memcpy(r->master_host, host, hlen);
    r->master_host[hlen] = '\0';
    r->master_port = (int)p;
    r->next_connect_ms = 0;
    r->link_down_since_ms = clock_ms();
    return 0;
}

void repl_set_master(const char *host, int port)
{
    char num[12];
    snprintf(num, sizeof num, "%d", port);
    set_master(host, strlen(host), num, strlen(num));
}

void repl_start(void)
{
    repl *r = xcalloc(1, sizeof *r);
    srv.repl = r;
    const char *id = store_replid(srv.store);
    if (strlen(id) == 40) {
        memcpy(r->replid, id, 41);
    } else {
        repl_new_id(r->replid);
        store_set_replid(srv.store, r->replid);
    }
    memset(r->replid2, '0', 40);
    buf_init(&r->pending);
    backlog_init(&r->bl, (size_t)srv.cfg.repl_backlog_size, store_offset(srv.store));
    r->log_end = store_offset(srv.store);
    repl_attach_store();
    const char *conf = srv.cfg.replicaof;
    const char *sp = conf ? strchr(conf, ' ') : NULL;
    if (conf && *conf && (!sp || set_master(conf, (size_t)(sp - conf), sp + 1, strlen(sp + 1))))
        log_warn("replication: cannot use replicaof '%s': want \"host port\"", conf);
}

void repl_stop(void)
{
    repl *r = srv.repl;
    if (!r)
        return;
    link_stop();
    xfree(r->failover_host);
    backlog_free(&r->bl);
    buf_free(&r->pending);
    xfree(r->master_host);
    xfree(r);
    srv.repl = NULL;
}

void repl_cron(void)
{
    failover_cron();
    leader_cron();
    link_cron();
}

void repl_pass_end(int ok)
{
    if (ok)
        leader_flush(); /* what no commit carried (a replica's non-writing commands) */
    else
        srv.repl->pending.len = 0;
    if (!ok && repl_is_replica() && srv.repl->link) /* the applied stream was undone */
        link_fail("a pass applying the stream failed to commit: resuming from the last commit");
    leader_start_snapshots();
}

int repl_is_replica(void)
{
    return srv.repl && srv.repl->master_host != NULL;
}

const char *repl_write_denied(const client *c)
{
    if (c->flags & CLIENT_MASTER)
        return NULL;
    if (repl_is_replica())
        return "READONLY You can't write against a read only replica.";
    if (srv.repl->failover_state != FAILOVER_NONE) /* Redis pauses them; we refuse */
        return "TRYAGAIN Writes are paused while a FAILOVER is in progress.";
    if (srv.cfg.min_replicas_to_write > 0 &&
        leader_good_replicas(srv.cfg.min_replicas_max_lag) < srv.cfg.min_replicas_to_write)
        return "NOREPLICAS Not enough good replicas to write.";
    return NULL;
}

/* ---- REPLICAOF and ROLE ------------------------------------------------------------------ */

void repl_promote(void)
{
    repl *r = srv.repl;
    link_stop();
    xfree(r->master_host);
    r->master_host = NULL;
    r->link_state = LINK_NONE;
    uint64_t off = store_offset(srv.store);
    memcpy(r->replid2, r->replid, sizeof r->replid);
    r->second_offset = off;
    repl_new_id(r->replid);
    store_set_replid(srv.store, r->replid);
    store_set_log_position(srv.store, off, -1);
    r->log_end = off;
    log_info("replication: now a leader, replid %s (was %s up to offset %llu)", r->replid,
             r->replid2, (unsigned long long)off);
}

void cmd_replicaof(client *c)
{
    repl *r = srv.repl;
    if (r->failover_state != FAILOVER_NONE) {
        reply_error(c, "ERR REPLICAOF not allowed while failing over.");
        return;
    }
    if (arg_is(c, 1, "no") && arg_is(c, 2, "one")) {
        if (repl_is_replica())
            repl_promote();
        reply_ok(c);
        return;
    }
    int64_t port;
    if (str_to_i64(c->argv[2], c->argl[2], &port) || port <= 0 || port > 65535) {
        reply_error(c, "Invalid master port");
        return;
    }
    if (r->master_host && r->master_port == port && strlen(r->master_host) == c->argl[1] &&
        memcmp(r->master_host, c->argv[1], c->argl[1]) == 0) {
        reply_simple(c, "OK Already connected to specified master");
        return;
    }
    leader_drop_all(); /* our replicas follow another history now: they start over */
    link_stop();
    set_master(c->argv[1], c->argl[1], c->argv[2], c->argl[2]);
    log_info("replication: following %s:%d", r->master_host, r->master_port);
    reply_simple(c, "OK");
}

static const char *link_state_name(int s)
{
    switch (s) {
    case LINK_CONNECTING:
        return "connecting";
    case LINK_HANDSHAKE:
        return "handshake";
    case LINK_TRANSFER:
        return "sync";
    case LINK_CONNECTED:
        return "connected";
    default:
        return "connect";
    }
}

static const char *replica_state_name(int s)
{
    return s == REPLICA_ONLINE ? "online" : s == REPLICA_SENDING ? "send_bulk" : "wait_bgsave";
}

/* "ip" of an "ip:port" address. */
void repl_addr_host(const char *addr, char *out, size_t n)
{
    const char *colon = strrchr(addr, ':');
    size_t len = colon ? (size_t)(colon - addr) : strlen(addr);
    snprintf(out, n, "%.*s", (int)len, addr);
}

void cmd_role(client *c)
{
    repl *r = srv.repl;
    if (repl_is_replica()) {
        reply_array(c, 5);
        reply_bulk_cstr(c, "slave");
        reply_bulk_cstr(c, r->master_host);
        reply_int(c, r->master_port);
        reply_bulk_cstr(c, link_state_name(r->link_state));
        reply_int(c, r->link_state == LINK_CONNECTED ? (long long)store_offset(srv.store) : -1);
        return;
    }
    int n = 0;
    for (replica *rp = r->replicas; rp; rp = rp->next)
        n++;
    reply_array(c, 3);
    reply_bulk_cstr(c, "master");
    reply_int(c, (long long)store_offset(srv.store));
    reply_array(c, n);
    for (replica *rp = r->replicas; rp; rp = rp->next) {
        char host[64];
        repl_addr_host(rp->c->addr, host, sizeof host);
        reply_array(c, 3);
        reply_bulk_cstr(c, host);
        reply_bulk_int(c, rp->port);
        reply_bulk_int(c, (long long)rp->ack);
    }
}

static const char *failover_state_name(int s)
{
    return s == FAILOVER_WAIT_SYNC    ? "waiting-for-sync"
           : s == FAILOVER_IN_PROGRESS ? "failover-in-progress"
                                       : "no-failover";
}

int repl_loading(void)
{
    return srv.repl && srv.repl->loading;
}

void repl_info(buf *b)
{
    repl *r = srv.repl;
    int64_t now = clock_ms();
    buf_printf(b, "# Replication\r\nrole:%s\r\n", repl_is_replica() ? "slave" : "master");
    if (repl_is_replica()) {
        int up = r->link_state == LINK_CONNECTED;
        buf_printf(b,
                   "master_host:%s\r\nmaster_port:%d\r\nmaster_link_status:%s\r\n"
                   "master_last_io_seconds_ago:%lld\r\nmaster_sync_in_progress:%d\r\n"
                   "slave_read_repl_offset:%llu\r\nslave_repl_offset:%llu\r\n",
                   r->master_host, r->master_port, up ? "up" : "down",
                   r->last_io_ms ? (long long)(now - r->last_io_ms) / 1000 : -1LL,
                   r->link_state == LINK_TRANSFER, (unsigned long long)store_offset(srv.store),
                   (unsigned long long)store_offset(srv.store));
        if (!up)
            buf_printf(b, "master_link_down_since_seconds:%lld\r\n",
                       (long long)(now - r->link_down_since_ms) / 1000);
        if (r->link_error[0])
            buf_printf(b, "master_link_error:%s\r\n", r->link_error);
        if (r->sync_refused[0])
            buf_printf(b, "master_sync_refused:%s\r\n", r->sync_refused);
        buf_printf(b, "slave_priority:100\r\nslave_read_only:1\r\nreplica_announced:1\r\n");
    }
    int n = 0;
    for (replica *rp = r->replicas; rp; rp = rp->next)
        n++;
    buf_printf(b, "connected_slaves:%d\r\n", n);
    n = 0;
    for (replica *rp = r->replicas; rp; rp = rp->next) {
        char host[64];
        repl_addr_host(rp->c->addr, host, sizeof host);
        buf_printf(b, "slave%d:ip=%s,port=%d,state=%s,offset=%llu,lag=%lld\r\n", n++, host,
                   rp->port, replica_state_name(rp->state), (unsigned long long)rp->ack,
                   (long long)(now - rp->ack_ms) / 1000);
    }
    buf_printf(b,
               "master_failover_state:%s\r\nmaster_replid:%s\r\nmaster_replid2:%s\r\n"
               "master_repl_offset:%llu\r\nsecond_repl_offset:%lld\r\n"
               "repl_backlog_active:1\r\nrepl_backlog_size:%zu\r\n"
               "repl_backlog_first_byte_offset:%llu\r\nrepl_backlog_histlen:%zu\r\n",
               failover_state_name(r->failover_state), r->replid, r->replid2,
               (unsigned long long)store_offset(srv.store),
               r->second_offset ? (long long)r->second_offset + 1 : -1LL, r->bl.size,
               (unsigned long long)(r->bl.end - r->bl.len + 1), r->bl.len);
}

void repl_info_stats(buf *b)
{
    repl *r = srv.repl;
    buf_printf(b, "sync_full:%llu\r\nsync_partial_ok:%llu\r\nsync_partial_err:%llu\r\n",
               (unsigned long long)r->sync_full, (unsigned long long)r->sync_partial_ok,
               (unsigned long long)r->sync_partial_err);
}
