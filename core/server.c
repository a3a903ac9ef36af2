/* server.c: bringing the server up and down, and the loop. A pass is one round of libevent
 * dispatch followed by server_pass_end(): commit (and, with `durability always`, fsync) the
 * pass's writes, then send the replies. The cron timer runs the active expiry cycle, idle
 * and output-limit checks, at `hz` times a second. */
#include "server.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "query/query.h"
#include "wire/wire.h"

server srv;

#define EXPIRE_BUDGET_US 1000 /* active expiry may use this much of each cron tick */

static void net_config_from(const config *cfg, net_config *nc)
{
    memset(nc, 0, sizeof *nc);
    nc->bind = cfg->bind;
    nc->port = cfg->port;
    nc->backlog = cfg->tcp_backlog;
    nc->maxclients = cfg->maxclients;
    nc->protected_mode = cfg->protected_mode;
    nc->password = cfg->requirepass;
    nc->max_bulk = cfg->proto_max_bulk_len;
    nc->obuf_hard = cfg->obuf_hard;
    nc->obuf_soft = cfg->obuf_soft;
    nc->obuf_soft_secs = cfg->obuf_soft_secs;
    nc->timeout_secs = cfg->timeout;
}

static void schedule_cron(void)
{
    struct timeval tv = {0, 1000000 / srv.cfg.hz};
    event_add(srv.cron, &tv);
}

void server_apply_config(void)
{
    net_config nc;
    net_config_from(&srv.cfg, &nc);
    net_reconfigure(&nc);
    store_set_durability(srv.store, srv.cfg.durability);
    log_set_level(srv.cfg.loglevel);
    schedule_cron();
}

/* Deletes expired keys in small transactions-within-the-pass until the time budget is
 * spent, so that a million keys expiring at once cannot stall clients. */
static void active_expire(void)
{
    int64_t start = clock_mono_us(), now = clock_ms();
    store_txn *t;
    /* Look before writing: an idle server with TTLs must not commit empty passes. */
    if (store_txn_read(srv.store, &t) != 0 || !store_expire_due(t, now))
        return;
    int more = 1;
    while (more && clock_mono_us() - start < EXPIRE_BUDGET_US) {
        if (store_txn_write(srv.store, 0, &t) != 0)
            return;
        if (store_expire_cycle(t, now, 64, &more) != 0)
            return;
    }
}

static void sample_ops(void)
{
    server_stats *st = &srv.stats;
    int64_t now = clock_mono_us();
    uint64_t commands = net_get_stats()->commands;
    if (st->ops_last_us && now > st->ops_last_us) {
        st->ops_sample[st->ops_next] =
            (commands - st->ops_last_commands) * 1000000 / (uint64_t)(now - st->ops_last_us);
        st->ops_next = (st->ops_next + 1) % OPS_SAMPLES;
    }
    st->ops_last_us = now;
    st->ops_last_commands = commands;
}

uint64_t server_ops_per_sec(void)
{
    uint64_t sum = 0;
    for (int i = 0; i < OPS_SAMPLES; i++)
        sum += srv.stats.ops_sample[i];
    return sum / OPS_SAMPLES;
}

static void on_cron(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    sample_ops();
    active_expire();
    net_cron(clock_ms());
    schedule_cron();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    log_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    srv.shutdown = 1;
}

static void server_pass_end(void)
{
    int rc = store_txn_end(srv.store);
    if (rc) {
        srv.stats.failed_passes++;
        log_warn("a pass could not commit (%s): its writers are disconnected", err_str(rc));
    }
    net_pass_end(rc == 0);
}

static void make_run_id(char *out)
{
    FILE *f = fopen("/dev/urandom", "rb");
    unsigned char r[20] = {0};
    if (f) {
        if (fread(r, 1, sizeof r, f) != sizeof r)
            memset(r, 0, sizeof r);
        fclose(f);
    }
    if (!f || !r[0]) {
        uint64_t h = hash_bytes(&srv, sizeof srv, (uint64_t)clock_us() ^ (uint64_t)getpid());
        memcpy(r, &h, sizeof h);
    }
    for (int i = 0; i < 20; i++)
        sprintf(out + 2 * i, "%02x", r[i]);
}

int server_start(char *err, size_t errlen)
{
    srv.start_ms = clock_ms();
    make_run_id(srv.run_id);
    log_set_level(srv.cfg.loglevel);
    if (srv.cfg.logfile && *srv.cfg.logfile && log_set_file(srv.cfg.logfile) != 0) {
        snprintf(err, errlen, "cannot open log file '%s'", srv.cfg.logfile);
        return ERR_IO;
    }
    signal(SIGPIPE, SIG_IGN);
    store_config sc = {.dir = srv.cfg.dir, .map_size = (size_t)srv.cfg.lmdb_map_size,
                       .durability = srv.cfg.durability};
    int rc = store_open(&sc, &srv.store, err, errlen);
    if (rc)
        return rc;
    query_init();
    srv.base = event_base_new();
    net_config nc;
    net_config_from(&srv.cfg, &nc);
    if ((rc = net_start(srv.base, &nc, query_dispatch, query_release, err, errlen)) != 0) {
        store_close(srv.store);
        return rc;
    }
    srv.cron = event_new(srv.base, -1, 0, on_cron, NULL);
    schedule_cron();
    srv.sigterm = evsignal_new(srv.base, SIGTERM, on_signal, NULL);
    srv.sigint = evsignal_new(srv.base, SIGINT, on_signal, NULL);
    event_add(srv.sigterm, NULL);
    event_add(srv.sigint, NULL);
    if (srv.cfg.pidfile && *srv.cfg.pidfile) {
        FILE *f = fopen(srv.cfg.pidfile, "w");
        if (f) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
    }
    log_info("Quiver %s ready: port %d, bind %s, data in %s, durability %s", QUIVER_VERSION,
             srv.cfg.port, srv.cfg.bind, srv.cfg.dir,
             srv.cfg.durability == DURABILITY_ALWAYS ? "always"
             : srv.cfg.durability == DURABILITY_EVERYSEC ? "everysec" : "no");
    return 0;
}

int server_run(void)
{
    while (!srv.shutdown) {
        event_base_loop(srv.base, EVLOOP_ONCE);
        server_pass_end();
    }
    log_info("shutting down: syncing data to disk");
    net_stop();
    store_close(srv.store);
    if (srv.cfg.pidfile && *srv.cfg.pidfile)
        unlink(srv.cfg.pidfile);
    event_free(srv.cron);
    event_free(srv.sigterm);
    event_free(srv.sigint);
    event_base_free(srv.base);
    log_info("bye");
    config_free(&srv.cfg);
    return srv.exit_code;
}
