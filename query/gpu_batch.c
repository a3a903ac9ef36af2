/* gpu_batch.c: the dynamic batcher of GPU KNN searches (gpu_batch.h). Each vector index
 * with queries waiting or running has a lane: the pending queries in arrival order, a
 * libevent timer for the batch window, and the batch now on the device (at most one). A
 * lane exists only while it has queries, and holds its ft_index meanwhile. A batch is a
 * run: its queries leave the pending list, a worker searches them together through the
 * index's device mirror (or, after a device error, one by one with vec_knn), and the loop
 * then answers each query through its done callback into a scratch client, hands the
 * bytes to the parked client and resumes it. A client that leaves while its query waits
 * takes the query out of the lane at once; one that leaves while its query runs is
 * forgotten, and the answer is dropped when the run comes back.
 *
 * A parked client is a waiter: its commands in the order sent, one slot each, the parked
 * query first. While it waits, the commands it pipelined after it are offered to the
 * waiter (wire.h, PARKED CLIENTS); queries that will join a batch too are taken, up to
 * `gpu-batch-max` slots, and each slot's reply waits for those before it, since lanes
 * answer in any order. The client resumes once every slot's reply is out. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "query/gpu_batch.h"
#include "query/query_int.h"

/* One of a waiter's commands: a query in a lane, or a reply already complete. */
typedef struct gb_slot {
    struct gb_waiter *w;
    struct gb_query *q; /* while its query waits or runs */
    int done;           /* out is its whole reply */
    buf out;
    struct gb_slot *next;
} gb_slot;

/* A client parked on its queries. */
typedef struct gb_waiter {
    client *c;
    gpu_batch_next_fn next;
    gb_slot *head, *tail; /* oldest first; the head is never done (it would be sent) */
    size_t nslots;
    gb_slot *taking; /* the slot of the command being dispatched after offer() took it */
} gb_waiter;

typedef struct gb_query {
    gb_slot *slot; /* NULL once its client left */
    struct gb_lane *lane;
    gpu_batch_done_fn done;
    void *arg;
    uint32_t k;
    int running;           /* in the run on the device */
    struct gb_query *next; /* the lane's pending list */
    vec_hit *hits;         /* the answer, written by the worker */
    size_t n;
    int rc;
    float q[]; /* the lane's dim floats */
} gb_query;

typedef struct gb_run {
    struct gb_lane *lane;
    gb_query **q;
    size_t n;
    uint32_t k; /* the largest k of its queries */
    int rc;     /* the device search's */
    char err[256];
    double kernel_ms, select_ms;
} gb_run;

typedef struct gb_lane {
    ft_index *ix;
    vec_index *vx;
    uint32_t dim;
    gb_query *head, *tail; /* pending, oldest first */
    size_t npending;
    struct event *timer; /* the window, armed when the first pending query comes */
    int due;             /* the window has passed: launch when the device is free */
    gb_run *run;
    struct gb_lane *next;
} gb_lane;

static struct {
    gb_lane *lanes;
    uint64_t batches, queries, fallbacks, errors, pipelined;
    double kernel_ms, select_ms;
    char last_error[256];
} gb;

int gpu_batch_on(void)
{
    index_gpu_info g;
    index_gpu_get(&g);
    return g.enabled;
}

/* ---- lanes ---- */

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void run_done(void *arg);

static gb_lane *lane_get(ft_index *ix, vec_index *vx)
{
    for (gb_lane *l = gb.lanes; l; l = l->next)
        if (l->vx == vx)
            return l;
    gb_lane *l = xcalloc(1, sizeof *l);
    l->ix = ix;
    l->vx = vx;
    l->dim = vec_get_params(vx)->dim;
    l->timer = event_new(srv.base, -1, 0, on_timer, l);
    l->next = gb.lanes;
    gb.lanes = l;
    ix->jobs++; /* freed only after this lane (ft.h, jobs) */
    return l;
}

/* Frees the lane once it has no query left. */
static void lane_maybe_free(gb_lane *l)
{
    if (l->npending || l->run)
        return;
    gb_lane **p = &gb.lanes;
    while (*p != l)
        p = &(*p)->next;
    *p = l->next;
    event_free(l->timer);
    ft_index *ix = l->ix;
    xfree(l);
    ix->jobs--;
    ft__release(ix);
}

static void unlink_pending(gb_lane *l, gb_query *q)
{
    gb_query **p = &l->head, *prev = NULL;
    while (*p != q)
        prev = *p, p = &(*p)->next;
    *p = q->next;
    if (l->tail == q)
        l->tail = prev;
    l->npending--;
}

static void query_free(gb_query *q)
{
    xfree(q->hits);
    xfree(q);
}

/* ---- running a batch ---- */

/* Worker: the whole batch on the device, else each query on the CPU. */
static void run_work(void *arg)
{
    gb_run *r = arg;
    gb_lane *l = r->lane;
    float *qs = xmalloc(r->n * l->dim * sizeof *qs);
    vec_hit *hits = xmalloc(r->n * r->k * sizeof *hits);
    uint32_t *counts = xmalloc(r->n * sizeof *counts);
    for (size_t i = 0; i < r->n; i++)
        memcpy(qs + i * l->dim, r->q[i]->q, l->dim * sizeof *qs);
    r->rc = vec_gpu_knn(l->vx, qs, (uint32_t)r->n, r->k, hits, counts, &r->kernel_ms,
                        &r->select_ms, r->err, sizeof r->err);
    for (size_t i = 0; i < r->n; i++) {
        gb_query *q = r->q[i];
        q->hits = xmalloc((q->k + 1) * sizeof *q->hits);
        if (r->rc == 0) {
            q->n = counts[i] < q->k ? counts[i] : q->k;
            memcpy(q->hits, hits + i * r->k, q->n * sizeof *q->hits);
        } else {
            q->rc = vec_knn(l->vx, q->q, q->k, 0, NULL, q->hits, &q->n);
        }
    }
    xfree(qs);
    xfree(hits);
    xfree(counts);
    server_post(run_done, r);
}

/* ---- waiters ---- */

static gb_slot *slot_add(gb_waiter *w)
{
    gb_slot *s = xcalloc(1, sizeof *s);
    s->w = w;
    buf_init(&s->out);
    if (w->tail)
        w->tail->next = s;
    else
        w->head = s;
    w->tail = s;
    w->nslots++;
    return s;
}

/* Sends the replies complete at the front, in order; resumes the client when none is
 * left (w is then freed). */
static void waiter_flush(gb_waiter *w)
{
    client *c = w->c;
    while (w->head && w->head->done) {
        gb_slot *s = w->head;
        w->head = s->next;
        w->nslots--;
        client_output_append(c, &s->out);
        buf_free(&s->out);
        xfree(s);
    }
    if (w->head)
        return;
    xfree(w);
    client_unpark(c); /* may run c's next commands, which may submit to this lane */
}

/* Loop: answers one query of a finished run (or drops it: its client left). */
static void deliver(gb_query *q)
{
    gb_slot *s = q->slot;
    if (!s) {
        q->done(q->arg, NULL, NULL, 0, 0);
        return;
    }
    client *c = s->w->c;
    client sc;
    scratch_init(&sc, c->resp, &s->out);
    q->done(q->arg, &sc, q->hits, q->n, q->rc);
    scratch_done(&sc, &s->out);
    c->errors += sc.errors;
    s->q = NULL;
    s->done = 1;
    waiter_flush(s->w);
}

static void launch(gb_lane *l);

/* Launches the pending queries when the batch is full or its window has passed; never
 * while a run is on the device (its end calls this again). */
static void maybe_launch(gb_lane *l)
{
    if (!l->run && l->npending &&
        (l->due || l->npending >= (size_t)srv.cfg.gpu_batch_max))
        launch(l);
}

static void launch(gb_lane *l)
{
    gb_run *r = xcalloc(1, sizeof *r);
    r->lane = l;
    r->n = l->npending < (size_t)srv.cfg.gpu_batch_max ? l->npending
                                                      : (size_t)srv.cfg.gpu_batch_max;
    r->q = xmalloc(r->n * sizeof *r->q);
    for (size_t i = 0; i < r->n; i++) {
        gb_query *q = l->head;
        unlink_pending(l, q);
        q->running = 1;
        r->q[i] = q;
        r->k = q->k > r->k ? q->k : r->k;
    }
    l->run = r;
    l->due = l->npending > 0; /* what did not fit has waited its window already */
    server_spawn(run_work, r);
}

/* Loop: a run came back. */
static void run_done(void *arg)
{
    gb_run *r = arg;
    gb_lane *l = r->lane;
    gb.batches++;
    gb.queries += r->n;
    gb.kernel_ms += r->kernel_ms;
    gb.select_ms += r->select_ms;
    if (r->rc) {
        gb.fallbacks += r->n;
        if (r->rc == ERR_GPU) {
            gb.errors++;
            snprintf(gb.last_error, sizeof gb.last_error, "%s", r->err);
        }
    }
    for (size_t i = 0; i < r->n; i++) {
        deliver(r->q[i]);
        query_free(r->q[i]);
    }
    xfree(r->q);
    xfree(r);
    l->run = NULL;
    maybe_launch(l);
    lane_maybe_free(l);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gb_lane *l = arg;
    l->due = 1;
    maybe_launch(l);
}

/* ---- parking ---- */

/* The client of a query left. A pending query goes at once; a running one is dropped
 * when its run comes back. */
static void query_forget(gb_query *q)
{
    q->slot = NULL;
    if (q->running)
        return;
    gb_lane *l = q->lane;
    unlink_pending(l, q);
    q->done(q->arg, NULL, NULL, 0, 0);
    query_free(q);
    lane_maybe_free(l);
}

static void on_closed(void *arg)
{
    gb_waiter *w = arg;
    for (gb_slot *s = w->head, *next; s; s = next) {
        next = s->next;
        if (s->q)
            query_forget(s->q);
        buf_free(&s->out);
        xfree(s);
    }
    xfree(w);
}

/* The client's next command, pipelined behind its queries: taken when it will join a
 * batch too (gpu_batch_submit then fills the slot made for it here). */
static int on_offer(void *arg, client *c)
{
    gb_waiter *w = arg;
    if (w->nslots >= (size_t)srv.cfg.gpu_batch_max || !w->next(c))
        return 0;
    w->taking = slot_add(w);
    return 1;
}

/* What the taken command replied at once: all of its reply unless it submitted a query
 * (it could not after all: an ACL refusal, say). A slot behind the head: nothing to send
 * yet. */
static void on_taken(void *arg, buf *b)
{
    gb_waiter *w = arg;
    gb_slot *s = w->taking;
    w->taking = NULL;
    buf_append(&s->out, b->data, b->len);
    buf_free(b);
    s->done = !s->q;
    gb.pipelined += !s->done;
}

static const client_park_ops park_ops = {
    .closed = on_closed, .offer = on_offer, .taken = on_taken};

/* The slot of c's query: a new waiter's first, or the one made for the command offered
 * to c's waiter. NULL when c cannot wait (parked by something else, or closing). */
static gb_slot *slot_for(client *c, gpu_batch_next_fn next)
{
    if ((c->flags & CLIENT_PARKED) && c->park_ops == &park_ops) {
        gb_slot *s = ((gb_waiter *)c->park_arg)->taking;
        return s && !s->q ? s : NULL;
    }
    gb_waiter *w = xcalloc(1, sizeof *w);
    if (client_park(c, &park_ops, w) != 0) {
        xfree(w);
        return NULL;
    }
    w->c = c;
    w->next = next;
    return slot_add(w);
}

int gpu_batch_takes(vec_index *vx, uint32_t k)
{
    if (!gpu_batch_on() || k > VEC_GPU_MAX_K || vec_get_params(vx)->kind != VEC_FLAT ||
        (long long)vec_count(vx) < srv.cfg.gpu_min_vectors || vec_gpu_attach(vx) != 0)
        return 0;
    vec_gpu_stats st;
    vec_gpu_get_stats(vx, &st);
    return st.state == VEC_GPU_OK;
}

int gpu_batch_submit(client *c, ft_index *ix, vec_index *vx, const float *q, uint32_t k,
                     gpu_batch_next_fn next, gpu_batch_done_fn done, void *arg)
{
    gb_slot *s;
    if (!gpu_batch_takes(vx, k) || !(s = slot_for(c, next)))
        return -1;
    uint32_t dim = vec_get_params(vx)->dim;
    gb_query *g = xcalloc(1, sizeof *g + dim * sizeof(float));
    gb_lane *l = lane_get(ix, vx);
    s->q = g;
    g->slot = s;
    g->lane = l;
    g->done = done;
    g->arg = arg;
    g->k = k;
    memcpy(g->q, q, dim * sizeof(float));
    if (l->tail)
        l->tail->next = g;
    else
        l->head = g;
    l->tail = g;
    if (l->npending++ == 0) {
        l->due = 0;
        struct timeval tv = {srv.cfg.gpu_batch_window_us / 1000000,
                             srv.cfg.gpu_batch_window_us % 1000000};
        event_add(l->timer, &tv); /* 0: the next loop pass */
    }
    maybe_launch(l);
    return 0;
}

/* ---- INFO ---- */

void gpu_batch_info(buf *b)
{
    int mirrors = 0;
    uint64_t bytes = 0;
    for (int i = 0; i < ft_count(); i++) {
        const ft_def *def = ft_index_def(ft_at(i));
        for (int f = 0; f < def->nfields; f++) {
            if (def->fields[f].type != FTF_VECTOR)
                continue;
            vec_gpu_stats st;
            vec_gpu_get_stats(ft_vec(ft_at(i), &def->fields[f])->vx, &st);
            mirrors += st.state == VEC_GPU_OK;
            bytes += st.device_bytes;
        }
    }
    char last[sizeof gb.last_error];
    snprintf(last, sizeof last, "%s", gb.last_error);
    for (char *p = last; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    buf_printf(b, "gpu_indexes:%d\r\ngpu_memory_used:%llu\r\ngpu_batches:%llu\r\n"
                  "gpu_queries:%llu\r\ngpu_mean_batch_size:%.2f\r\ngpu_kernel_ms:%.3f\r\n"
                  "gpu_select_ms:%.3f\r\ngpu_fallbacks:%llu\r\ngpu_errors:%llu\r\n"
                  "gpu_last_error:%s\r\ngpu_pipelined_queries:%llu\r\n",
               mirrors, (unsigned long long)bytes, (unsigned long long)gb.batches,
               (unsigned long long)gb.queries,
               gb.batches ? (double)gb.queries / (double)gb.batches : 0.0, gb.kernel_ms,
               gb.select_ms, (unsigned long long)gb.fallbacks, (unsigned long long)gb.errors,
               last, (unsigned long long)gb.pipelined);
}
