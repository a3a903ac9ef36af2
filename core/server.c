/* server.c: bringing the server up and down, and the loop. A pass is one round of libevent
 * dispatch followed by server_pass_end(): commit (and, with `durability always`, fsync) the
 * pass's writes, then send the replies. The cron timer runs the active expiry cycle, idle
 * and output-limit checks, at `hz` times a second. Also the worker pool for heavy jobs and
 * the queue on which workers post work back to the loop (an eventfd wakes it). */
#include "server.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "index/index.h"
#include "query/acl.h"
#include "query/ft.h"
#include "query/query.h"
#include "replication/repl.h"
#include "wire/http.h"
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
    nc->need_auth = acl_default_needs_auth();
    nc->max_bulk = cfg->proto_max_bulk_len;
    nc->obuf_hard = cfg->obuf_hard;
    nc->obuf_soft = cfg->obuf_soft;
    nc->obuf_soft_secs = cfg->obuf_soft_secs;
    nc->timeout_secs = cfg->timeout;
    nc->tls_port = cfg->tls_port;
    nc->tls = (tls_config){.cert_file = cfg->tls_cert_file, .key_file = cfg->tls_key_file,
                           .ca_cert_file = cfg->tls_ca_cert_file,
                           .ca_cert_dir = cfg->tls_ca_cert_dir,
                           .auth_clients = cfg->tls_auth_clients,
                           .protocols = cfg->tls_protocols};
}

static void schedule_cron(void)
{
    struct timeval tv = {0, 1000000 / srv.cfg.hz};
    event_add(srv.cron, &tv);
}

void server_apply_config(void)
{
    acl_set_requirepass(srv.cfg.requirepass);
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
    if (!repl_is_replica()) /* a replica's keys expire by its leader's DELs */
        active_expire();
    repl_cron();
    ft_cron(); /* FT index build slices and background snapshots */
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

/* ---- worker pool and hand-off queue ---------------------------------------------------- */

struct task {
    void (*fn)(void *);
    void *arg;
    struct task *next;
};

struct task_queue {
    struct task *head, *tail;
};

struct server_jobs {
    pthread_mutex_t lock;
    pthread_cond_t work;         /* signalled when a job is queued or the pool stops */
    struct task_queue jobs;      /* for the workers */
    struct task_queue posted;    /* for the loop */
    int efd;                     /* eventfd: posted work is waiting */
    struct event *ev;
    pthread_t threads[SERVER_WORKERS];
    int nthreads, idle, stopping;
};

static void queue_push(struct task_queue *q, void (*fn)(void *), void *arg)
{
    struct task *t = xmalloc(sizeof *t);
    t->fn = fn;
    t->arg = arg;
    t->next = NULL;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
}

/* Runs and frees every task of a list detached from its queue. */
static void run_tasks(struct task *t)
{
    while (t) {
        struct task *next = t->next;
        t->fn(t->arg);
        xfree(t);
        t = next;
    }
}

static void *worker_main(void *arg)
{
    struct server_jobs *j = arg;
    pthread_mutex_lock(&j->lock);
    for (;;) {
        while (!j->jobs.head && !j->stopping)
            pthread_cond_wait(&j->work, &j->lock);
        struct task *t = j->jobs.head;
        if (!t)
            break; /* stopping, and nothing left to run */
        j->jobs.head = t->next;
        if (!j->jobs.head)
            j->jobs.tail = NULL;
        j->idle--;
        pthread_mutex_unlock(&j->lock);
        t->fn(t->arg);
        xfree(t);
        pthread_mutex_lock(&j->lock);
        j->idle++;
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

void server_spawn(void (*fn)(void *), void *arg)
{
    struct server_jobs *j = srv.jobs;
    pthread_mutex_lock(&j->lock);
    queue_push(&j->jobs, fn, arg);
    if (j->idle == 0 && j->nthreads < SERVER_WORKERS &&
        pthread_create(&j->threads[j->nthreads], NULL, worker_main, j) == 0) {
        j->nthreads++;
        j->idle++;
    }
    pthread_cond_signal(&j->work);
    pthread_mutex_unlock(&j->lock);
}

int server_jobs_busy(void)
{
    struct server_jobs *j = srv.jobs;
    pthread_mutex_lock(&j->lock);
    int busy = j->jobs.head != NULL || j->idle < j->nthreads;
    pthread_mutex_unlock(&j->lock);
    return busy;
}

void server_post(void (*fn)(void *), void *arg)
{
    struct server_jobs *j = srv.jobs;
    pthread_mutex_lock(&j->lock);
    queue_push(&j->posted, fn, arg);
    pthread_mutex_unlock(&j->lock);
    uint64_t one = 1;
    while (write(j->efd, &one, sizeof one) < 0 && errno == EINTR)
        ; /* EAGAIN: the counter is already non-zero, the loop will wake anyway */
}

/* Takes everything posted so far (in order). */
static struct task *take_posted(struct server_jobs *j)
{
    pthread_mutex_lock(&j->lock);
    struct task *t = j->posted.head;
    j->posted.head = j->posted.tail = NULL;
    pthread_mutex_unlock(&j->lock);
    return t;
}

static void on_posted(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        log_warn("reading the hand-off eventfd: %s", strerror(errno));
    run_tasks(take_posted(arg));
}

static int jobs_start(char *err, size_t errlen)
{
    struct server_jobs *j = xcalloc(1, sizeof *j);
    j->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (j->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        xfree(j);
        return ERR_IO;
    }
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->work, NULL);
    j->ev = event_new(srv.base, j->efd, EV_READ | EV_PERSIST, on_posted, j);
    event_add(j->ev, NULL);
    srv.jobs = j;
    return 0;
}

/* After the clients are closed: lets the workers finish their jobs, running what they post
 * meanwhile and after (posted work may free what a job holds), then frees the pool. */
static void jobs_stop(void)
{
    struct server_jobs *j = srv.jobs;
    pthread_mutex_lock(&j->lock);
    j->stopping = 1;
    pthread_cond_broadcast(&j->work);
    pthread_mutex_unlock(&j->lock);
    for (int i = 0; i < j->nthreads; i++)
        pthread_join(j->threads[i], NULL);
    struct task *t;
    while ((t = take_posted(j)) != NULL) /* posted work may post more */
        run_tasks(t);
    event_free(j->ev);
    close(j->efd);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->work);
    xfree(j);
    srv.jobs = NULL;
}

static void server_pass_end(void)
{
    int rc = store_txn_end(srv.store);
    if (rc) {
        srv.stats.failed_passes++;
        log_warn("a pass could not commit (%s): its writers are disconnected", err_str(rc));
    }
    repl_pass_end(rc == 0);
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

/* The Prometheus endpoint (metrics-port), on the same addresses as the RESP port. */
static int metrics_start(char *err, size_t errlen)
{
    if (!srv.cfg.metrics_port)
        return 0;
    http_config hc = {.bind = srv.cfg.bind, .port = srv.cfg.metrics_port,
                      .backlog = srv.cfg.tcp_backlog, .path = "/metrics",
                      .content_type = "text/plain; version=0.0.4; charset=utf-8",
                      .render = metrics_render};
    return http_start(srv.base, &hc, err, errlen);
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
    signal(SIGXFSZ, SIG_IGN); /* a file past RLIMIT_FSIZE: the write fails with EFBIG instead */
    store_config sc = {.dir = srv.cfg.dir, .map_size = (size_t)srv.cfg.lmdb_map_size,
                       .max_map_size = (size_t)srv.cfg.lmdb_max_map_size,
                       .hist_cache_bytes = (size_t)srv.cfg.history_cache_size,
                       .durability = srv.cfg.durability};
    int rc = acl_init(srv.cfg.aclfile, srv.cfg.requirepass, err, errlen);
    if (rc || (rc = index_gpu_probe(srv.cfg.gpu, err, errlen)))
        return rc;
    repl_recover_dir(srv.cfg.dir);
    if ((rc = store_open(&sc, &srv.store, err, errlen)) != 0)
        return rc;
    query_init();
    repl_start();
    srv.base = event_base_new();
    if ((rc = jobs_start(err, errlen)) != 0) {
        store_close(srv.store);
        return rc;
    }
    ft_start(); /* FT indexes: definitions, snapshots, reconciling scans (may use workers) */
    net_config nc;
    net_config_from(&srv.cfg, &nc);
    if ((rc = net_start(srv.base, &nc, query_dispatch, query_release, err, errlen)) != 0 ||
        (rc = metrics_start(err, errlen)) != 0) {
        net_stop();
        jobs_stop();
        ft_shutdown();
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
    log_info("Quiver %s ready: port %d, tls-port %d, metrics-port %d, bind %s, data in %s, "
             "durability %s",
             QUIVER_VERSION, srv.cfg.port, srv.cfg.tls_port, srv.cfg.metrics_port, srv.cfg.bind,
             srv.cfg.dir,
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
    http_stop();
    net_stop(); /* closing the clients stops their jobs */
    repl_stop();
    ft_stop();  /* and FT index builds stop */
    jobs_stop();
    ft_shutdown(); /* FT vector snapshots written, indexes freed */
    store_close(srv.store);
    acl_shutdown();
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
