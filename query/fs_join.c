/* fs_join.c: FS.JOIN, the point-in-time join of request rows (entity keys and a time) with
 * the feature views' history. Everything is validated on the loop thread first, and what
 * the join needs from the catalog is copied (catalog pointers die with the pass). Then, per
 * view, the request rows are sorted by (stored entity key, time descending) and each
 * entity's history is walked once with one cursor: seek at the entity's latest requested
 * time, step to older rows as the requested times go down, or seek again when the rows
 * stepped over so far say that the next time is further away than a seek costs.
 * Each distinct matched history row is decoded once and its requested values encoded once;
 * the reply is then assembled in the caller's row order by copying those encodings.
 * Small joins (and any join inside EXEC) run inline; big ones park the client and run on a
 * worker thread, which streams the reply back to the loop in chunks with backpressure.
 * A big join's rows are also dealt out by key hash to a few threads (parts), each walking
 * its own entities with its own cursor; the cursors are opened together on the loop thread,
 * so every part reads the same snapshot of history. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "query/fs.h"
#include "query/query_int.h"

#define JOIN_INLINE_ROWS 2000                /* fewer request rows: answered on the loop */
#define JOIN_CHUNK (256 * 1024)              /* reply bytes handed to the loop at a time */
#define JOIN_MAX_UNSENT (4 * 1024 * 1024)    /* the worker waits while more is unsent */
#define JOIN_SEEK_COST 8                     /* a seek costs about this many steps */
#define JOIN_DENSITY_MIN 4                   /* steps seen before their density is trusted */
#define JOIN_CANCEL_EVERY 1024               /* rows between looks at the cancel flag */
#define JOIN_PARTS_MAX 4                     /* threads walking one big join's views */
#define JOIN_PART_ROWS 2000                  /* at least this many rows a thread */
#define NO_MATCH UINT32_MAX

/* One request row of one view, as sorted for the walk. */
typedef struct jsort {
    uint64_t pfx;  /* the key's first 8 bytes, big-endian, zero-padded */
    int64_t t;     /* requested time (us) */
    uint32_t row;  /* the caller's row index */
    uint32_t len;  /* the key's length */
} jsort;

/* One requested view, copied out of the catalog. */
typedef struct jview {
    char *name;
    uint32_t id;
    int64_t ttl_us, oldest_us; /* oldest_us: now - retention, or INT64_MIN */
    int nfields;
    store_ftype *schema;
    int nslots;              /* requested features of this view */
    int *slot_field;         /* their field indexes */
    store_field *slot_def;   /* their definitions (names not kept) */
    store_hcur **curs;       /* one history cursor per part */
    buf keys;                /* every row's stored entity key, back to back */
    size_t *koff;            /* row r's key starts at koff[r] and ends at koff[r + 1] */
    uint32_t *match;         /* per row: its matched history row, or NO_MATCH */
    buf enc;                 /* the matched rows' requested values, encoded, slot by slot */
    size_t *ends;            /* end offset in enc of (matched row m, slot s): m * nslots + s */
    size_t nmatched, ends_cap;
} jview;

typedef struct join {
    int resp, withmeta;
    int nparts;              /* threads walking each view */
    size_t nrows;
    int64_t *ts;
    int nviews;
    jview *views;
    int nfeatures;
    int *fview, *fslot;      /* feature k is slot fslot[k] of view fview[k] */
    buf missing;             /* each feature's NOT_FOUND encoding, back to back */
    size_t *mends;
    char err[256];           /* a failed walk's error reply */
    int64_t start_us, walk_us; /* when it began; how long the walk took (monotonic) */
    /* the streaming side (worker joins only) */
    client *c;               /* loop thread only; NULL once the client is gone */
    atomic_int cancelled;
    pthread_mutex_t lock;
    pthread_cond_t drained;
    size_t posted, sent, appended; /* reply bytes: handed over, written out, appended */
} join;

/* ---- building the job on the loop thread ---------------------------------------------- */

static void view_copy(jview *v, const store_view *sv, int64_t now_us)
{
    v->name = xstrdup(sv->name);
    v->id = sv->id;
    v->ttl_us = sv->ttl_us;
    v->oldest_us = sv->retention_us > 0 ? now_us - sv->retention_us : INT64_MIN;
    v->nfields = sv->nfields;
    v->schema = xmalloc(sizeof *v->schema * (size_t)sv->nfields);
    memcpy(v->schema, sv->schema, sizeof *v->schema * (size_t)sv->nfields);
    buf_init(&v->keys);
    buf_init(&v->enc);
}

static void join_free(join *j)
{
    for (int i = 0; i < j->nviews; i++) {
        jview *v = &j->views[i];
        for (int k = 0; k < j->nparts; k++)
            if (v->curs && v->curs[k])
                store_hcur_free(v->curs[k]);
        xfree(v->curs);
        xfree(v->name);
        xfree(v->schema);
        xfree(v->slot_field);
        xfree(v->slot_def);
        buf_free(&v->keys);
        xfree(v->koff);
        xfree(v->match);
        buf_free(&v->enc);
        xfree(v->ends);
    }
    xfree(j->views);
    xfree(j->ts);
    xfree(j->fview);
    xfree(j->fslot);
    buf_free(&j->missing);
    xfree(j->mends);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->drained);
    xfree(j);
}

/* The features' slots in their views, and each feature's NOT_FOUND encoding. */
static void join_features(join *j, const fs_request *rq)
{
    j->nfeatures = rq->nfeatures;
    j->fview = xmalloc(sizeof *j->fview * (size_t)rq->nfeatures);
    j->fslot = xmalloc(sizeof *j->fslot * (size_t)rq->nfeatures);
    j->mends = xmalloc(sizeof *j->mends * (size_t)rq->nfeatures);
    for (int v = 0; v < j->nviews; v++) {
        j->views[v].slot_field = xmalloc(sizeof(int) * (size_t)rq->nfeatures);
        j->views[v].slot_def = xmalloc(sizeof(store_field) * (size_t)rq->nfeatures);
    }
    client sc;
    scratch_init(&sc, j->resp, &j->missing);
    store_fvalue null = {.is_null = 1};
    for (int k = 0; k < rq->nfeatures; k++) {
        jview *v = &j->views[rq->features[k].view];
        const store_field *f = &rq->views[rq->features[k].view]->fields[rq->features[k].field];
        j->fview[k] = rq->features[k].view;
        j->fslot[k] = v->nslots;
        v->slot_field[v->nslots] = rq->features[k].field;
        v->slot_def[v->nslots] = *f;
        v->slot_def[v->nslots].name = NULL;
        if (j->withmeta)
            fs_reply_meta(&sc, &v->slot_def[v->nslots], NULL, 0, FS_NOT_FOUND);
        else
            fs_reply_value(&sc, &v->slot_def[v->nslots], &null);
        j->mends[k] = sc.obuf.len;
        v->nslots++;
    }
    scratch_done(&sc, &j->missing);
}

static join *join_new(const fs_request *rq, size_t nrows, int withmeta, int resp, int nparts)
{
    join *j = xcalloc(1, sizeof *j);
    j->nparts = nparts;
    int64_t now_us = clock_us();
    j->start_us = clock_mono_us();
    j->resp = resp;
    j->withmeta = withmeta;
    j->nrows = nrows;
    j->ts = xmalloc(sizeof *j->ts * (nrows ? nrows : 1));
    j->nviews = rq->nviews;
    j->views = xcalloc((size_t)rq->nviews, sizeof *j->views);
    for (int v = 0; v < rq->nviews; v++) {
        view_copy(&j->views[v], rq->views[v], now_us);
        j->views[v].curs = xcalloc((size_t)nparts, sizeof(store_hcur *));
        j->views[v].koff = xmalloc(sizeof(size_t) * (nrows + 1));
        j->views[v].koff[0] = 0;
        j->views[v].match = xmalloc(sizeof(uint32_t) * (nrows ? nrows : 1));
    }
    join_features(j, rq);
    atomic_init(&j->cancelled, 0);
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->drained, NULL);
    return j;
}

/* Parses request row r (its values at argv[at..]): every view's stored key and the time.
 * On bad input replies an error naming the row and returns -1. */
static int join_row(client *c, join *j, const fs_request *rq, size_t r, int at, buf *tmp)
{
    char err[256];
    const char *parts[STORE_EKEY_MAX / 2]; /* each part takes at least 2 bytes of a key */
    size_t lens[STORE_EKEY_MAX / 2];
    for (int v = 0; v < j->nviews; v++) {
        const store_view *sv = rq->views[v];
        jview *jv = &j->views[v];
        if (sv->nentities > STORE_EKEY_MAX / 2) {
            reply_errorf(c, "view '%s' has too many entities to join", sv->name);
            return -1;
        }
        for (int e = 0; e < sv->nentities; e++) {
            parts[e] = c->argv[at + rq->view_ent[v][e]];
            lens[e] = c->argl[at + rq->view_ent[v][e]];
        }
        if (store_ekey_build(sv, parts, lens, tmp, err, sizeof err) != 0) {
            reply_errorf(c, "ROWS row %zu: %s", r + 1, err);
            return -1;
        }
        buf_append(&jv->keys, tmp->data, tmp->len);
        jv->koff[r + 1] = jv->keys.len;
    }
    int ti = at + rq->nentities;
    if (store_parse_ts(c->argv[ti], c->argl[ti], &j->ts[r], err, sizeof err) != 0) {
        reply_errorf(c, "ROWS row %zu: %s", r + 1, err);
        return -1;
    }
    return 0;
}

/* Opens the history cursors (one per view and part), after the pass's pending pushes are
 * written (so the join reads them). Replies on error. */
static int join_open(client *c, join *j)
{
    store_hist *h;
    int rc = store_history(srv.store, &h);
    if (rc) {
        reply_store_error(c, rc);
        return -1;
    }
    for (int v = 0; v < j->nviews; v++) {
        for (int i = 0; i < j->nparts; i++) {
            if ((rc = store_hcur_new(h, j->views[v].id, &j->views[v].curs[i])) != 0) {
                reply_store_error(c, rc);
                return -1;
            }
        }
    }
    return 0;
}

/* ---- the walk (worker or loop thread) -------------------------------------------------- */

/* One thread's share of a view's rows: those whose key hashes to it, so that each entity is
 * walked by one part, with the part's own cursor. Matches are numbered within the part
 * until merge_parts() puts the parts together. */
typedef struct jpart {
    join *j;
    jview *v;
    store_hcur *cur;
    jsort *order; /* the part's rows, sorted by walk_part */
    size_t n;
    store_fvalue *vals; /* decode scratch */
    buf enc;
    size_t *ends;
    size_t nmatched, ends_cap;
    uint64_t steps;     /* steps taken over finished runs of this part's walk ... */
    double span_us;     /* ... and the event time they covered (walk_pos) */
    int rc;
} jpart;

static const char *row_key(const jview *v, uint32_t row, size_t *len)
{
    *len = v->koff[row + 1] - v->koff[row];
    return v->keys.data + v->koff[row];
}

static int jsort_cmp(const void *a, const void *b, void *arg)
{
    const jsort *x = a, *y = b;
    const jview *v = arg;
    if (x->len != y->len) /* the history's order: key length first (history keys) */
        return x->len < y->len ? -1 : 1;
    if (x->pfx != y->pfx)
        return x->pfx < y->pfx ? -1 : 1;
    if (x->len > 8) {
        size_t n;
        int d = memcmp(row_key(v, x->row, &n) + 8, row_key(v, y->row, &n) + 8, x->len - 8);
        if (d)
            return d;
    }
    if (x->t != y->t)
        return x->t > y->t ? -1 : 1; /* latest time first */
    return x->row < y->row ? -1 : x->row > y->row;
}

static int same_key(const jview *v, const jsort *x, const jsort *y)
{
    size_t n;
    return x->len == y->len && x->pfx == y->pfx &&
           (x->len <= 8 ||
            memcmp(row_key(v, x->row, &n) + 8, row_key(v, y->row, &n) + 8, x->len - 8) == 0);
}

static jsort sort_entry(const join *j, const jview *v, uint32_t r)
{
    size_t len;
    const char *k = row_key(v, r, &len);
    uint64_t pfx = 0;
    for (size_t i = 0; i < 8; i++)
        pfx = pfx << 8 | (i < len ? (unsigned char)k[i] : 0);
    return (jsort){.pfx = pfx, .t = j->ts[r], .row = r, .len = (uint32_t)len};
}

static int part_of(const jview *v, uint32_t r, int nparts)
{
    size_t len;
    const char *k = row_key(v, r, &len);
    return nparts == 1 ? 0 : (int)(hash_bytes(k, len, 0) % (uint64_t)nparts);
}

/* Deals the rows out to the parts (order holds them all, grouped by part). */
static void split_rows(join *j, jview *v, jsort *order, jpart *parts)
{
    size_t at[JOIN_PARTS_MAX] = {0};
    for (int i = 0; i < j->nparts; i++)
        parts[i] = (jpart){.j = j, .v = v, .cur = v->curs[i],
                           .vals = xcalloc((size_t)v->nfields, sizeof(store_fvalue))};
    for (size_t r = 0; r < j->nrows; r++)
        parts[part_of(v, (uint32_t)r, j->nparts)].n++;
    for (int i = 1; i < j->nparts; i++)
        at[i] = at[i - 1] + parts[i - 1].n;
    for (int i = 0; i < j->nparts; i++)
        parts[i].order = order + at[i];
    for (size_t r = 0; r < j->nrows; r++)
        order[at[part_of(v, (uint32_t)r, j->nparts)]++] = sort_entry(j, v, (uint32_t)r);
}

/* Where the cursor stands within the current entity, and how dense its rows have been: a
 * run is a seek and the steps after it, covering event times landed_us down to event_us. */
typedef struct walk_pos {
    int positioned;
    int64_t event_us, created_us;
    int64_t landed_us;  /* where the run's seek landed */
    uint64_t run_steps; /* steps of the run so far */
    uint64_t ent_steps; /* steps of the entity's finished runs ... */
    double ent_span_us; /* ... and the event time they covered */
} walk_pos;

/* Ends the current run (before a seek): its steps count for the entity and the part. */
static void end_run(jpart *p, walk_pos *w)
{
    double span = (double)w->landed_us - (double)w->event_us;
    w->ent_steps += w->run_steps;
    w->ent_span_us += span;
    p->steps += w->run_steps;
    p->span_us += span;
    w->run_steps = 0;
    w->positioned = 0;
}

/* Moves to the next entity: nothing of the last one's position is kept. */
static void new_entity(jpart *p, walk_pos *w)
{
    if (w->positioned)
        end_run(p, w);
    *w = (walk_pos){0};
}

/* How many steps toward time t to try before seeking instead. With the rows' density
 * known (the entity's, else the part's), none when t looks further than a seek costs;
 * else, and when the guess is wrong, at most twice a seek's cost is spent stepping. */
static int step_budget(const jpart *p, const walk_pos *w, int64_t t)
{
    double steps = (double)(w->ent_steps + w->run_steps);
    double span = w->ent_span_us + ((double)w->landed_us - (double)w->event_us);
    if (steps < JOIN_DENSITY_MIN) {
        steps = (double)p->steps;
        span = p->span_us;
    }
    if (steps >= JOIN_DENSITY_MIN &&
        ((double)w->event_us - (double)t) * steps > JOIN_SEEK_COST * span)
        return 0;
    return 2 * JOIN_SEEK_COST;
}

static void read_pos(const jpart *p, walk_pos *w)
{
    const char *e, *row;
    size_t elen, rowlen;
    store_hcur_row(p->cur, &e, &elen, &w->event_us, &w->created_us, &row, &rowlen);
}

/* Puts the cursor on the entity's newest row with event <= t: steps down from where it is,
 * or seeks. ERR_NOTFOUND when there is none (nor for any earlier time). */
static int position_at(jpart *p, const char *key, size_t len, int64_t t, walk_pos *w)
{
    int budget = w->positioned && w->event_us > t ? step_budget(p, w, t) : 0;
    for (int steps = 0; w->positioned && w->event_us > t; steps++) {
        if (steps == budget) {
            end_run(p, w);
            break;
        }
        int rc = store_hcur_next(p->cur);
        if (rc)
            return rc;
        read_pos(p, w);
        w->run_steps++;
    }
    if (!w->positioned) {
        int rc = store_hcur_seek(p->cur, key, len, t);
        if (rc)
            return rc;
        w->positioned = 1;
        read_pos(p, w);
        w->landed_us = w->event_us;
    }
    return 0;
}

/* The oldest event time that can answer time t: TTL (inclusive) and retention. */
static int64_t window_start(const jview *v, int64_t t)
{
    int64_t lo = INT64_MIN;
    if (v->ttl_us > 0)
        lo = t < INT64_MIN + v->ttl_us ? INT64_MIN : t - v->ttl_us;
    return lo > v->oldest_us ? lo : v->oldest_us;
}

/* Decodes the row under the cursor and encodes its requested values as a new match. */
static int encode_match(jpart *p, client *sc)
{
    const jview *v = p->v;
    const char *e, *row;
    size_t elen, rowlen;
    int64_t event_us, created_us;
    store_hcur_row(p->cur, &e, &elen, &event_us, &created_us, &row, &rowlen);
    int rc = store_row_decode(v->schema, v->nfields, row, rowlen, p->vals);
    if (rc)
        return rc;
    if ((p->nmatched + 1) * (size_t)v->nslots > p->ends_cap) {
        p->ends_cap = p->ends_cap ? p->ends_cap * 2 : (size_t)v->nslots * 64;
        p->ends = xrealloc(p->ends, sizeof *p->ends * p->ends_cap);
    }
    size_t *ends = p->ends + p->nmatched * (size_t)v->nslots;
    for (int s = 0; s < v->nslots; s++) {
        const store_fvalue *fv = &p->vals[v->slot_field[s]];
        if (p->j->withmeta)
            fs_reply_meta(sc, &v->slot_def[s], fv, event_us,
                          fv->is_null ? FS_NULL_VALUE : FS_PRESENT);
        else
            fs_reply_value(sc, &v->slot_def[s], fv);
        ends[s] = sc->obuf.len;
    }
    p->nmatched++;
    return 0;
}

/* Sorts the part's rows and answers each (v->match, numbered within the part). p->rc: 0,
 * ERR_AGAIN when cancelled, or a storage error. */
static void walk_part(jpart *p)
{
    jview *v = p->v;
    qsort_r(p->order, p->n, sizeof *p->order, jsort_cmp, v);
    client sc;
    scratch_init(&sc, p->j->resp, &p->enc);
    walk_pos w = {0};
    int exhausted = 0, rc = 0;
    uint32_t last = NO_MATCH; /* the entity's last match */
    walk_pos at_last = {0};
    for (size_t i = 0; i < p->n && rc == 0; i++) {
        const jsort *s = &p->order[i];
        if (i % JOIN_CANCEL_EVERY == 0 && atomic_load(&p->j->cancelled)) {
            rc = ERR_AGAIN;
            break;
        }
        if (i == 0 || !same_key(v, &p->order[i - 1], s)) {
            new_entity(p, &w);
            exhausted = 0;
            last = NO_MATCH;
        }
        v->match[s->row] = NO_MATCH;
        if (exhausted)
            continue;
        size_t len;
        const char *key = row_key(v, s->row, &len);
        int prc = position_at(p, key, len, s->t, &w);
        if (prc == ERR_NOTFOUND) {
            exhausted = 1;
            continue;
        }
        if (prc) {
            rc = prc;
            break;
        }
        if (w.event_us < window_start(v, s->t))
            continue;
        if (last == NO_MATCH || w.event_us != at_last.event_us ||
            w.created_us != at_last.created_us) {
            if ((rc = encode_match(p, &sc)) != 0)
                break;
            last = (uint32_t)(p->nmatched - 1);
            at_last = w;
        }
        v->match[s->row] = last;
    }
    scratch_done(&sc, &p->enc);
    p->rc = rc;
}

static void *walk_thread(void *arg)
{
    walk_part(arg);
    return NULL;
}

/* Puts the parts' matches together in v (renumbering them) and frees the parts; returns
 * the first part's error. */
static int merge_parts(jview *v, jpart *parts, int nparts)
{
    int rc = 0;
    size_t ns = (size_t)v->nslots;
    for (int i = 0; i < nparts; i++) {
        jpart *p = &parts[i];
        if (!rc)
            rc = p->rc;
        if (i == 0) { /* the first part's buffers become the view's */
            v->enc = p->enc;
            v->ends = p->ends;
            v->nmatched = p->nmatched;
            v->ends_cap = p->ends_cap;
            xfree(p->vals);
            continue;
        }
        for (size_t k = 0; k < p->n; k++)
            if (v->match[p->order[k].row] != NO_MATCH)
                v->match[p->order[k].row] += (uint32_t)v->nmatched;
        size_t need = (v->nmatched + p->nmatched) * ns, off = v->enc.len;
        if (need > v->ends_cap) {
            v->ends_cap = need;
            v->ends = xrealloc(v->ends, sizeof *v->ends * need);
        }
        for (size_t k = 0; k < p->nmatched * ns; k++)
            v->ends[v->nmatched * ns + k] = p->ends[k] + off;
        buf_append(&v->enc, p->enc.data, p->enc.len);
        v->nmatched += p->nmatched;
        buf_free(&p->enc);
        xfree(p->ends);
        xfree(p->vals);
    }
    return rc;
}

/* Answers every row for one view, its parts walked by as many threads. */
static int walk_view(join *j, jview *v, jsort *order)
{
    jpart parts[JOIN_PARTS_MAX];
    pthread_t threads[JOIN_PARTS_MAX];
    int started[JOIN_PARTS_MAX] = {0};
    split_rows(j, v, order, parts);
    for (int i = 1; i < j->nparts; i++)
        started[i] = pthread_create(&threads[i], NULL, walk_thread, &parts[i]) == 0;
    walk_part(&parts[0]);
    for (int i = 1; i < j->nparts; i++) {
        if (started[i])
            pthread_join(threads[i], NULL);
        else
            walk_part(&parts[i]); /* no thread to be had: do it here */
    }
    int rc = merge_parts(v, parts, j->nparts);
    for (int i = 0; i < j->nparts; i++) {
        store_hcur_free(v->curs[i]);
        v->curs[i] = NULL;
    }
    return rc;
}

static int join_walk(join *j)
{
    jsort *order = xmalloc(sizeof *order * (j->nrows ? j->nrows : 1));
    int rc = 0;
    for (int v = 0; v < j->nviews && rc == 0; v++) {
        if ((rc = walk_view(j, &j->views[v], order)) == ERR_CORRUPT)
            snprintf(j->err, sizeof j->err, "a history row of view '%s' is corrupt",
                     j->views[v].name);
    }
    xfree(order);
    if (rc && rc != ERR_AGAIN && rc != ERR_CORRUPT)
        snprintf(j->err, sizeof j->err, "storage error: %s", err_str(rc));
    return rc;
}

/* ---- the reply ------------------------------------------------------------------------ */

/* Hands a full buffer of reply bytes on (to the client, or to the loop), emptying it;
 * nonzero = stop early. Called once more with last = 1 in any case. */
typedef int (*join_sink)(join *j, buf *out, int last);

/* Appends row r's reply: one array, its values in feature order. */
static void emit_row(const join *j, size_t r, const char *hdr, size_t hlen, buf *out)
{
    buf_append(out, hdr, hlen);
    for (int k = 0; k < j->nfeatures; k++) {
        const jview *v = &j->views[j->fview[k]];
        uint32_t m = v->match[r];
        if (m == NO_MATCH) {
            size_t start = k ? j->mends[k - 1] : 0;
            buf_append(out, j->missing.data + start, j->mends[k] - start);
            continue;
        }
        size_t at = (size_t)m * (size_t)v->nslots + (size_t)j->fslot[k];
        size_t start = at ? v->ends[at - 1] : 0;
        buf_append(out, v->enc.data + start, v->ends[at] - start);
    }
}

static void join_emit(join *j, join_sink sink)
{
    client sc;
    buf out, hdr;
    buf_init(&out);
    buf_init(&hdr);
    scratch_init(&sc, j->resp, &hdr);
    reply_array(&sc, j->nfeatures);
    scratch_done(&sc, &hdr);
    scratch_init(&sc, j->resp, &out);
    reply_array(&sc, (long)j->nrows);
    scratch_done(&sc, &out);
    for (size_t r = 0; r < j->nrows; r++) {
        emit_row(j, r, hdr.data, hdr.len, &out);
        if (out.len >= JOIN_CHUNK && r + 1 < j->nrows && sink(j, &out, 0))
            break;
    }
    sink(j, &out, 1);
    buf_free(&out);
    buf_free(&hdr);
}

/* ---- streaming from a worker ---------------------------------------------------------- */

typedef struct join_chunk {
    join *j;
    buf bytes;
    int last;
} join_chunk;

static void on_sent(void *arg, size_t pending)
{
    join *j = arg;
    pthread_mutex_lock(&j->lock);
    /* pending may include replies from before the join: then this undercounts, until the
     * output drains to zero and the count is exact */
    size_t sent = j->appended - (pending < j->appended ? pending : j->appended);
    if (sent > j->sent)
        j->sent = sent;
    pthread_cond_signal(&j->drained);
    pthread_mutex_unlock(&j->lock);
}

static void on_closed(void *arg)
{
    join *j = arg;
    j->c = NULL;
    pthread_mutex_lock(&j->lock);
    atomic_store(&j->cancelled, 1);
    pthread_cond_signal(&j->drained);
    pthread_mutex_unlock(&j->lock);
}

static const client_park_ops join_park_ops = {.sent = on_sent, .closed = on_closed};

/* On the loop: appends a chunk; after the last one, frees the join and resumes the client.
 * The worker touches nothing of j after posting the last chunk. */
static void on_chunk(void *arg)
{
    join_chunk *ch = arg;
    join *j = ch->j;
    client *c = j->c;
    if (c) {
        pthread_mutex_lock(&j->lock);
        j->appended += ch->bytes.len;
        pthread_mutex_unlock(&j->lock);
        client_output_append(c, &ch->bytes);
    }
    buf_free(&ch->bytes);
    if (ch->last) {
        size_t matched = 0;
        for (int v = 0; v < j->nviews; v++)
            matched += j->views[v].nmatched;
        log_msg(LOG_VERBOSE, "FS.JOIN of %zu rows, %d views: %lld ms, history walked after "
                "%lld ms (%zu distinct history rows matched)%s", j->nrows,
                j->nviews, (long long)(clock_mono_us() - j->start_us) / 1000,
                (long long)j->walk_us / 1000, matched, c ? "" : "; its client left");
        join_free(j);
        if (c)
            client_unpark(c);
    }
    xfree(ch);
}

static void post_chunk(join *j, buf *out, int last)
{
    join_chunk *ch = xmalloc(sizeof *ch);
    ch->j = j;
    ch->bytes = *out;
    ch->last = last;
    buf_init(out);
    server_post(on_chunk, ch);
}

/* Worker sink: waits while the client has much unsent, then posts. */
static int post_sink(join *j, buf *out, int last)
{
    pthread_mutex_lock(&j->lock);
    while (!atomic_load(&j->cancelled) && j->posted - j->sent > JOIN_MAX_UNSENT)
        pthread_cond_wait(&j->drained, &j->lock);
    int stop = atomic_load(&j->cancelled);
    j->posted += out->len;
    pthread_mutex_unlock(&j->lock);
    if (stop)
        buf_free(out); /* nobody to send it to */
    if (stop && !last)
        return 1;
    post_chunk(j, out, last);
    return 0;
}

static void join_work(void *arg)
{
    join *j = arg;
    int rc = join_walk(j);
    j->walk_us = clock_mono_us() - j->start_us;
    if (rc == 0) {
        join_emit(j, post_sink); /* posts a last chunk, even when cancelled */
        return;
    }
    buf out;
    buf_init(&out);
    if (rc != ERR_AGAIN) {
        client sc;
        scratch_init(&sc, j->resp, &out);
        reply_error(&sc, j->err);
        scratch_done(&sc, &out);
    }
    post_chunk(j, &out, 1);
}

/* ---- the command ---------------------------------------------------------------------- */

static int inline_sink(join *j, buf *out, int last)
{
    (void)last;
    client_output_append(j->c, out);
    return 0;
}

static void join_inline(client *c, join *j)
{
    j->c = c;
    if (join_walk(j) != 0)
        reply_error(c, j->err);
    else
        join_emit(j, inline_sink);
    join_free(j);
}

/* "ROWS <n> <row>... [WITHMETA]" at argv[i]: checks the shape; *n and *withmeta out. */
static int parse_rows_shape(client *c, const fs_request *rq, int i, size_t *n, int *withmeta)
{
    int64_t count;
    if (i >= c->argc || !arg_is(c, i, "ROWS")) {
        reply_error(c, "syntax error: expected ROWS <n> after the features");
        return -1;
    }
    if (i + 1 >= c->argc || str_to_i64(c->argv[i + 1], c->argl[i + 1], &count) != 0 ||
        count < 0) {
        reply_error(c, "ROWS count must be a non-negative integer");
        return -1;
    }
    int64_t per = rq->nentities + 1, rest = c->argc - (i + 2);
    *withmeta = count <= rest / per && rest == count * per + 1 &&
                arg_is(c, c->argc - 1, "WITHMETA");
    if (!*withmeta && (count > rest / per || rest != count * per)) {
        buf names;
        buf_init(&names);
        for (int e = 0; e < rq->nentities; e++)
            buf_printf(&names, "%s, ", rq->entities[e]);
        reply_errorf(c, "ROWS %lld needs %lld values per row (%.*sts), then optionally "
                     "WITHMETA: got %lld arguments after the count", (long long)count,
                     (long long)per, (int)names.len, names.data, (long long)rest);
        buf_free(&names);
        return -1;
    }
    *n = (size_t)count;
    return 0;
}

/* How many threads walk a join of n rows: one for an inline join, more for big ones, as
 * many as there are rows enough and processors. */
static int join_parts(size_t n)
{
    if (n < JOIN_INLINE_ROWS)
        return 1;
    size_t parts = n / JOIN_PART_ROWS;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus > 0 && parts > (size_t)cpus)
        parts = (size_t)cpus;
    return parts < 1 ? 1 : parts > JOIN_PARTS_MAX ? JOIN_PARTS_MAX : (int)parts;
}

void cmd_fs_join(client *c)
{
    fs_request rq;
    memset(&rq, 0, sizeof rq);
    int i;
    size_t n;
    int withmeta;
    if (fs_parse_features(c, 1, &rq, &i) != 0)
        return;
    if (parse_rows_shape(c, &rq, i, &n, &withmeta) != 0) {
        fs_request_free(&rq);
        return;
    }
    join *j = join_new(&rq, n, withmeta, c->resp, join_parts(n));
    buf tmp;
    buf_init(&tmp);
    int per = rq.nentities + 1, bad = 0;
    for (size_t r = 0; r < n && !bad; r++)
        bad = join_row(c, j, &rq, r, i + 2 + (int)r * per, &tmp);
    buf_free(&tmp);
    fs_request_free(&rq);
    if (bad || join_open(c, j) != 0) {
        join_free(j);
        return;
    }
    if (n < JOIN_INLINE_ROWS || client_park(c, &join_park_ops, j) != 0) {
        join_inline(c, j);
        return;
    }
    j->c = c;
    server_spawn(join_work, j);
}
