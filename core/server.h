/* server.h: the one server struct, made of per-module parts, and the loop that drives them.
 *
 * The event loop runs passes: libevent dispatches every ready event once (reads parse and
 * execute commands, timers run the cron), then server_pass_end() commits the pass's writes
 * through the store (group commit) and only then lets wire/ send the replies.
 *
 * HEAVY WORK runs off the loop: server_spawn() hands a job to a small pool of worker
 * threads, and a worker hands results back with server_post(), which runs a function on the
 * loop thread soon after (an eventfd watched by libevent wakes the loop). Posted functions
 * run in the order they were posted. At shutdown the loop first closes every client (jobs
 * notice and stop), then waits for the workers and runs what they posted, and only then
 * closes the store: a job may read the store's history until it returns.
 *
 * This is the only global mutable state of the program (`srv`). Modules below query/ never
 * touch it: store/ and wire/ take what they need as arguments. */
#ifndef QUIVER_SERVER_H
#define QUIVER_SERVER_H

#include <stdint.h>

#include "core/config.h"
#include "store/store.h"

#define QUIVER_VERSION "0.1.0"
#define QUIVER_REDIS_VERSION "7.2.0" /* what we report to clients that check */

struct event_base;
struct event;

#define OPS_SAMPLES 16

typedef struct server_stats {
    uint64_t expired_keys, keyspace_hits, keyspace_misses;
    uint64_t failed_passes;
    /* commands per second over the last OPS_SAMPLES cron ticks */
    uint64_t ops_sample[OPS_SAMPLES];
    int ops_next;
    uint64_t ops_last_commands;
    int64_t ops_last_us;
} server_stats;

typedef struct server {
    config cfg;
    struct event_base *base;
    struct event *cron, *sigterm, *sigint;
    struct server_jobs *jobs; /* the worker pool and the hand-off queue (server.c) */
    store *store;
    struct repl *repl; /* replication/repl_int.h */
    server_stats stats;
    int64_t start_ms;
    char run_id[41];
    int shutdown; /* set by SHUTDOWN or a signal: the loop exits after the pass */
    int exit_code;
} server;

extern server srv;

/* Starts everything from a loaded config; returns 0 or an ERR_* with err filled. */
int server_start(char *err, size_t errlen);
/* Runs passes until shutdown, then closes down with a final sync. */
int server_run(void);
/* Commands per second, averaged over the last few cron ticks (INFO's
 * instantaneous_ops_per_sec). */
uint64_t server_ops_per_sec(void);
/* Pushes run-time config changes (CONFIG SET) to the modules. */
void server_apply_config(void);

#define SERVER_WORKERS 4 /* worker threads, started as jobs need them */

/* Runs fn(arg) on a worker thread; jobs beyond SERVER_WORKERS wait in a queue (FIFO).
 * Loop thread only. Never fails (small internal allocations abort on OOM). */
void server_spawn(void (*fn)(void *), void *arg);
/* 1 while a job runs or waits for a worker (replication swaps the store only when none
 * does: jobs may read it). Loop thread. */
int server_jobs_busy(void);
/* Runs fn(arg) on the loop thread soon after, in posting order. Any thread, any time
 * between server_start() and the end of server_run(). */
void server_post(void (*fn)(void *), void *arg);

#endif
