/* failover.c: FAILOVER, Redis 6.2's coordinated hand-over from a leader to one of its
 * replicas. The leader refuses writes (WAIT_SYNC) until the target has acknowledged every
 * byte of the stream, then follows it (IN_PROGRESS) with PSYNC <replid> <offset> FAILOVER:
 * the target, seeing its own leader's replid, promotes itself (the old replid kept as
 * replid2 up to that offset) and answers +CONTINUE, and the old leader is its replica from
 * then on. A timeout (without FORCE), ABORT or a failed link puts the leader back as it was.
 * No write is acknowledged on the old leader once the failover started, and the target has
 * every one acknowledged before, so none is lost (FORCE gives that up after TIMEOUT). */
#include "replication/repl_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/log.h"

static void failover_clear(void)
{
    repl *r = srv.repl;
    r->failover_state = FAILOVER_NONE;
    xfree(r->failover_host);
    r->failover_host = NULL;
    r->failover_port = r->failover_force = 0;
    r->failover_end_ms = 0;
}

/* 1 when rp is the open replica at host:port (any open one when host is NULL). */
static int replica_at(const replica *rp, const char *host, int port)
{
    char ip[64];
    repl_addr_host(rp->c->addr, ip, sizeof ip);
    return rp->c->state != CONN_CLOSED &&
           (!host || (rp->port == port && strcasecmp(ip, host) == 0));
}

/* The online replica at host:port (any when host is NULL) that has acknowledged the whole
 * stream, or NULL. */
static replica *caught_up(const char *host, int port)
{
    uint64_t end = store_offset(srv.store);
    for (replica *rp = srv.repl->replicas; rp; rp = rp->next)
        if (replica_at(rp, host, port) && rp->state == REPLICA_ONLINE && rp->ack == end)
            return rp;
    return NULL;
}

/* The replica at host:port, whatever its state, or NULL. */
static replica *find_replica(const char *host, int port)
{
    for (replica *rp = srv.repl->replicas; rp; rp = rp->next)
        if (replica_at(rp, host, port))
            return rp;
    return NULL;
}

/* IN_PROGRESS: follow the target; the handshake's PSYNC carries FAILOVER. */
static void follow_target(void)
{
    repl *r = srv.repl;
    r->failover_state = FAILOVER_IN_PROGRESS;
    repl_set_master(r->failover_host, r->failover_port);
}

void failover_cron(void)
{
    repl *r = srv.repl;
    if (r->failover_state != FAILOVER_WAIT_SYNC)
        return;
    if (r->failover_end_ms && clock_ms() >= r->failover_end_ms) {
        if (!r->failover_force) {
            failover_abort("Replica never caught up before timeout");
            return;
        }
        log_warn("FAILOVER to %s:%d time out exceeded, failing over.", r->failover_host,
                 r->failover_port);
        follow_target();
        return;
    }
    replica *rp = caught_up(r->failover_host, r->failover_port);
    if (!rp || store_txn_dirty(srv.store)) /* an expiry of this pass is not sent yet */
        return;
    if (!r->failover_host) {
        char ip[64];
        repl_addr_host(rp->c->addr, ip, sizeof ip);
        r->failover_host = xstrdup(ip);
        r->failover_port = rp->port;
    }
    log_info("Failover target %s:%d is synced, failing over.", r->failover_host, r->failover_port);
    follow_target();
}

void failover_done(void)
{
    repl *r = srv.repl;
    log_info("Failover target %s:%d is now our master.", r->failover_host, r->failover_port);
    failover_clear();
    leader_drop_all(); /* our other replicas follow us again, now a replica: partial resync */
}

void failover_abort(const char *why)
{
    repl *r = srv.repl;
    int following = r->failover_state == FAILOVER_IN_PROGRESS;
    log_warn("FAILOVER to %s:%d aborted: %s", r->failover_host ? r->failover_host : "any replica",
             r->failover_port, why);
    failover_clear(); /* first: link_stop() below fails the link, which aborts again */
    if (!following)
        return;
    link_stop();
    xfree(r->master_host);
    r->master_host = NULL;
    r->link_state = LINK_NONE;
}

int failover_take_over(client *c)
{
    repl *r = srv.repl;
    if (c->argl[1] != 40 || memcmp(c->argv[1], r->replid, 40) != 0) {
        reply_error(c, "ERR PSYNC FAILOVER replid must match my replid.");
        return -1;
    }
    if (repl_is_replica()) {
        log_info("Failover request received for replid %s.", r->replid);
        repl_promote();
    }
    return 0;
}

/* FAILOVER's arguments (*to: the index of TO's host, 0 without TO). 0, or -1 with the
 * error sent. */
static int parse_failover(client *c, int *to, int64_t *port, int64_t *timeout, int *force)
{
    for (int j = 1; j < c->argc; j++) {
        if (arg_is(c, j, "timeout") && j + 1 < c->argc && *timeout == 0) {
            if (arg_i64(c, j + 1, timeout))
                return -1;
            if (*timeout <= 0) {
                reply_error(c, "ERR FAILOVER timeout must be greater than 0");
                return -1;
            }
            j++;
        } else if (arg_is(c, j, "to") && j + 2 < c->argc && !*to) {
            if (arg_i64(c, j + 2, port))
                return -1;
            *to = j + 1;
            j += 2;
        } else if (arg_is(c, j, "force") && !*force) {
            *force = 1;
        } else {
            reply_syntax_error(c);
            return -1;
        }
    }
    return 0;
}

/* Why FAILOVER cannot start now, as the error reply, or NULL. */
static const char *failover_denied(const char *host, int64_t port, int64_t timeout, int force)
{
    repl *r = srv.repl;
    if (r->failover_state != FAILOVER_NONE)
        return "ERR FAILOVER already in progress.";
    if (repl_is_replica())
        return "ERR FAILOVER is not valid when server is a replica.";
    if (!r->replicas)
        return "ERR FAILOVER requires connected replicas.";
    if (force && (!timeout || !host))
        return "ERR FAILOVER with force option requires both a timeout and target HOST and IP.";
    if (!host)
        return NULL;
    replica *rp = port > 0 && port <= 65535 ? find_replica(host, (int)port) : NULL;
    if (!rp)
        return "ERR FAILOVER target HOST and PORT is not a replica.";
    if (rp->state != REPLICA_ONLINE)
        return "ERR FAILOVER target replica is not online.";
    return NULL;
}

void cmd_failover(client *c)
{
    repl *r = srv.repl;
    if (c->argc == 2 && arg_is(c, 1, "abort")) {
        if (r->failover_state == FAILOVER_NONE) {
            reply_error(c, "ERR No failover in progress.");
            return;
        }
        failover_abort("Failover manually aborted");
        reply_ok(c);
        return;
    }
    int64_t port = 0, timeout = 0;
    int to = 0, force = 0;
    if (parse_failover(c, &to, &port, &timeout, &force) != 0)
        return;
    char name[256]; /* longer is no replica's address */
    snprintf(name, sizeof name, "%.*s", to ? (int)c->argl[to] : 0, to ? c->argv[to] : "");
    const char *host = to ? name : NULL;
    const char *denied = failover_denied(host, port, timeout, force);
    if (denied) {
        reply_error(c, denied);
        return;
    }
    if (host) {
        r->failover_host = xstrdup(host);
        r->failover_port = (int)port;
        log_info("FAILOVER requested to %s:%d.", host, (int)port);
    } else {
        log_info("FAILOVER requested to any replica.");
    }
    r->failover_end_ms = timeout ? clock_ms() + timeout : 0;
    r->failover_force = force;
    r->failover_state = FAILOVER_WAIT_SYNC;
    reply_ok(c);
}
