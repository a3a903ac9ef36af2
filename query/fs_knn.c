/* fs_knn.c: FS.KNN, the nearest entities of a feature view by one of its VECTOR features.
 *
 *   FS.KNN <view> <vector_field> <k> <blob> [EF <n>] [FILTER <expr>] [RETURN <n> <f>...]
 *
 * The candidates are the view's online rows as FS.GET serves them: a row older than the
 * view's TTL counts as all NULL, and a row whose vector is NULL (or, for COSINE, zero) is no
 * candidate. FILTER keeps the rows for which the expression (query/fs_filter.h) is true.
 * The reply is up to k entries, nearest first: [entity_key, distance, [values...]], with
 * the key in its client form (parts joined by ':'), the distance as index/index.h reports
 * it (L2 squared, IP 1 - u.v, COSINE 1 - cos; a double in RESP3, a bulk string in RESP2),
 * and the values of the RETURN fields in their order, or, without RETURN, of every field
 * that is not a VECTOR, in schema order (RETURN 0 returns none).
 *
 * An HNSW or FLAT field is searched through its index (fs_vec.c), which asks the filter
 * (TTL and FILTER, on the row read from LMDB, once per id) about each candidate and still
 * returns min(k, matching) (index/index.h: HNSW completes a short walk exactly). EF is
 * HNSW's search breadth (the field's default if absent). An INDEX NONE field is answered
 * by an exact scan of the view's online rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "query/fs.h"
#include "query/fs_filter.h"
#include "query/fs_vec.h"

#define SHOWN 128 /* at most this much of a client's argument is repeated in an error */
#define ARG(c, i) (int)((c)->argl[i] > SHOWN ? SHOWN : (c)->argl[i]), (c)->argv[i]

typedef struct knn_args {
    const store_view *v;
    int field;
    uint32_t k, ef;
    fs_filter *filter;
    int nret;
    int *ret;  /* the fields to return */
    float *q;  /* the query, normalised for COSINE */
} knn_args;

/* One answer: its stored entity key (borrowed) and distance. */
typedef struct knn_hit {
    const char *key;
    size_t klen;
    float dist;
} knn_hit;

static void args_free(knn_args *a)
{
    fs_filter_free(a->filter);
    xfree(a->ret);
    xfree(a->q);
}

/* ---- arguments ------------------------------------------------------------------------- */

static int field_arg(client *c, knn_args *a)
{
    const store_view *v = a->v;
    a->field = store_view_field(v, c->argv[2], c->argl[2]);
    if (a->field < 0) {
        reply_errorf(c, "unknown field '%.*s' of feature view '%s'", ARG(c, 2), v->name);
        return -1;
    }
    const store_field *f = &v->fields[a->field];
    if (f->type.type != FT_VECTOR) {
        reply_errorf(c, "field '%s' of feature view '%s' is %s, not a VECTOR", f->name, v->name,
                     store_ftype_name(f->type.type));
        return -1;
    }
    return 0;
}

/* An integer from 1 to VEC_MAX_K at argv[i], named what. */
static int count_arg(client *c, int i, const char *what, uint32_t *out)
{
    int64_t n;
    if (str_to_i64(c->argv[i], c->argl[i], &n) != 0 || n < 1 || n > VEC_MAX_K) {
        reply_errorf(c, "%s '%.*s' is not an integer from 1 to %d", what, ARG(c, i), VEC_MAX_K);
        return -1;
    }
    *out = (uint32_t)n;
    return 0;
}

static int blob_arg(client *c, knn_args *a)
{
    const store_field *f = &a->v->fields[a->field];
    size_t want = (size_t)f->type.dim * sizeof(float);
    if (c->argl[4] != want) {
        reply_errorf(c, "query vector has %zu bytes: field '%s' is VECTOR %u, so it needs %zu "
                     "(%u little-endian float32)", c->argl[4], f->name, f->type.dim, want,
                     f->type.dim);
        return -1;
    }
    a->q = xmalloc(want);
    store_fvalue val = {.bytes = c->argv[4], .len = c->argl[4]};
    if (fs_vec_from_value(f, &val, a->q) != 0) {
        reply_errorf(c, "query vector for field '%s' %s", f->name,
                     f->metric == STORE_METRIC_COSINE
                         ? "must be finite and not zero (COSINE)"
                         : "must be finite");
        return -1;
    }
    return 0;
}

static int filter_arg(client *c, knn_args *a, int i)
{
    char err[300];
    if (fs_filter_parse(c->argv[i], c->argl[i], a->v, &a->filter, err, sizeof err) != 0) {
        reply_errorf(c, "FILTER: %s", err);
        return -1;
    }
    return 0;
}

/* "RETURN <n> <f>..." at argv[i]; *next is set past it. */
static int return_arg(client *c, knn_args *a, int i, int *next)
{
    int64_t n;
    if (i + 1 >= c->argc || str_to_i64(c->argv[i + 1], c->argl[i + 1], &n) != 0 || n < 0) {
        reply_error(c, "RETURN needs a count of fields >= 0");
        return -1;
    }
    if (n > c->argc - i - 2) {
        reply_errorf(c, "RETURN count %lld but only %d arguments follow", (long long)n,
                     c->argc - i - 2);
        return -1;
    }
    a->ret = xcalloc((size_t)n + 1, sizeof *a->ret);
    for (int k = 0; k < n; k++) {
        int f = store_view_field(a->v, c->argv[i + 2 + k], c->argl[i + 2 + k]);
        if (f < 0) {
            reply_errorf(c, "RETURN: unknown field '%.*s' of feature view '%s'",
                         ARG(c, i + 2 + k), a->v->name);
            return -1;
        }
        a->ret[a->nret++] = f;
    }
    *next = i + 2 + (int)n;
    return 0;
}

/* Every field but the VECTORs, in schema order. */
static void default_return(knn_args *a)
{
    a->ret = xcalloc((size_t)a->v->nfields, sizeof *a->ret);
    for (int k = 0; k < a->v->nfields; k++)
        if (a->v->fields[k].type.type != FT_VECTOR)
            a->ret[a->nret++] = k;
}

static int parse_options(client *c, knn_args *a)
{
    int seen_ef = 0, seen_filter = 0, seen_return = 0;
    for (int i = 5; i < c->argc;) {
        int *seen = arg_is(c, i, "EF") ? &seen_ef : arg_is(c, i, "FILTER") ? &seen_filter
                    : arg_is(c, i, "RETURN") ? &seen_return : NULL;
        if (!seen) {
            reply_errorf(c, "unknown or misplaced argument '%.*s' (options: EF, FILTER, "
                         "RETURN)", ARG(c, i));
            return -1;
        }
        if ((*seen)++) {
            reply_errorf(c, "%.*s given twice", ARG(c, i));
            return -1;
        }
        if (seen == &seen_return) {
            if (return_arg(c, a, i, &i))
                return -1;
            continue;
        }
        if (i + 1 >= c->argc) {
            reply_errorf(c, "%.*s needs a value", ARG(c, i));
            return -1;
        }
        if (seen == &seen_ef ? count_arg(c, i + 1, "EF", &a->ef) : filter_arg(c, a, i + 1))
            return -1;
        i += 2;
    }
    if (!seen_return)
        default_return(a);
    return 0;
}

static int parse_args(client *c, knn_args *a)
{
    a->v = store_view_get(srv.store, c->argv[1], c->argl[1]);
    if (!a->v) {
        reply_errorf(c, "unknown feature view '%.*s'", ARG(c, 1));
        return -1;
    }
    if (!a->v->online) {
        reply_errorf(c, "feature view '%s' has ONLINE NO: it has no online rows to search",
                     a->v->name);
        return -1;
    }
    if (field_arg(c, a) || count_arg(c, 3, "k", &a->k) || blob_arg(c, a))
        return -1;
    return parse_options(c, a);
}

/* ---- which rows are candidates --------------------------------------------------------- */

typedef struct knn_query {
    store_txn *t;
    const knn_args *a;
    const fs_vec_view *vv; /* NULL for a scan */
    int64_t now_us;
    store_fvalue *vals;    /* the decoded row */
    unsigned char *memo;   /* per id: 0 unknown, 1 rejected, 2 kept */
    int rc;                /* the first storage error met */
} knn_query;

/* 1 when a row of event time event_us is within the view's TTL at now. */
static int fresh(const store_view *v, int64_t event_us, int64_t now_us)
{
    int64_t age;
    if (v->ttl_us <= 0)
        return 1;
    if (__builtin_sub_overflow(now_us, event_us, &age))
        return now_us <= event_us;
    return age <= v->ttl_us;
}

/* 1 when the row passes TTL and FILTER (q->vals then holds it decoded), 0 when not, an
 * error when it cannot be decoded. */
static int row_passes(knn_query *q, int64_t event_us, const char *row, size_t rowlen)
{
    const store_view *v = q->a->v;
    if (!fresh(v, event_us, q->now_us))
        return 0;
    int rc = store_row_decode(v->schema, v->nfields, row, rowlen, q->vals);
    if (rc)
        return rc;
    return !q->a->filter || fs_filter_match(q->a->filter, q->vals);
}

/* The index's filter: looks up id's online row and tests it (once per id). */
static int keep(void *ctx, uint32_t id)
{
    knn_query *q = ctx;
    if (q->memo[id])
        return q->memo[id] == 2;
    const char *ekey, *row;
    size_t elen, rowlen;
    int64_t ev, cr;
    int ok = 0;
    if (fs_vec_key(q->vv, id, &ekey, &elen) == 0) {
        int rc = store_online_get(q->t, q->a->v, ekey, elen, &ev, &cr, &row, &rowlen);
        ok = rc == 0 ? row_passes(q, ev, row, rowlen) : rc;
        if (ok < 0) {
            q->rc = q->rc ? q->rc : ok;
            ok = 0;
        }
    }
    q->memo[id] = ok ? 2 : 1;
    return ok;
}

/* ---- searching --------------------------------------------------------------------------- */

/* Through the field's index; hits borrow their keys from vv. */
static int search_index(knn_query *q, vec_index *ix, knn_hit **hits, size_t *nhits)
{
    const knn_args *a = q->a;
    size_t count = vec_count(ix), room = a->k < count ? a->k : count;
    vec_hit *out = xmalloc((room + 1) * sizeof *out);
    int filtered = a->filter || a->v->ttl_us > 0;
    vec_filter f = {.keep = keep, .ctx = q};
    size_t n = 0;
    int rc = room ? vec_knn(ix, a->q, (uint32_t)room, a->ef, filtered ? &f : NULL, out, &n) : 0;
    if (rc == 0)
        rc = q->rc;
    *hits = xmalloc((n + 1) * sizeof **hits);
    *nhits = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        knn_hit *h = &(*hits)[*nhits];
        if (fs_vec_key(q->vv, out[i].id, &h->key, &h->klen) == 0) {
            h->dist = out[i].dist;
            (*nhits)++;
        }
    }
    xfree(out);
    return rc;
}

/* The exact scan keeps the k best in a max-heap on (distance, key); keys are copies. */
static int hit_after(const knn_hit *x, const knn_hit *y)
{
    if (x->dist != y->dist)
        return x->dist > y->dist;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    return c ? c > 0 : x->klen > y->klen;
}

static void heap_down(knn_hit *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, top = i;
        if (l < n && hit_after(&h[l], &h[top]))
            top = l;
        if (r < n && hit_after(&h[r], &h[top]))
            top = r;
        if (top == i)
            return;
        knn_hit t = h[i];
        h[i] = h[top];
        h[top] = t;
        i = top;
    }
}

static void heap_offer(knn_hit *h, size_t *n, size_t k, const knn_hit *x)
{
    if (*n == k && !hit_after(&h[0], x))
        return;
    knn_hit copy = {xmemdup(x->key, x->klen), x->klen, x->dist};
    if (*n == k) {
        xfree((char *)h[0].key);
        h[0] = copy;
        heap_down(h, *n, 0);
        return;
    }
    size_t i = (*n)++;
    h[i] = copy;
    while (i > 0 && hit_after(&h[i], &h[(i - 1) / 2])) {
        knn_hit t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static int cmp_hits(const void *x, const void *y)
{
    return hit_after(x, y) - hit_after(y, x);
}

/* Every online row of the view, exactly (INDEX NONE). */
static int search_scan(knn_query *q, knn_hit **hits, size_t *nhits)
{
    const knn_args *a = q->a;
    const store_field *f = &a->v->fields[a->field];
    int metric = fs_vec_metric(f->metric);
    size_t cap = a->k < 1024 ? a->k : 1024;
    knn_hit *h = xmalloc(cap * sizeof *h);
    size_t n = 0;
    float *x = xmalloc((size_t)f->type.dim * sizeof *x);
    store_oiter *it;
    int rc = store_online_iter(q->t, a->v, &it);
    const char *ekey, *row;
    size_t elen, rowlen;
    int64_t ev, cr;
    while (rc == 0 && (rc = store_oiter_next(it, &ekey, &elen, &ev, &cr, &row, &rowlen)) == 0) {
        int pass = row_passes(q, ev, row, rowlen);
        if (pass < 0) {
            rc = pass;
            break;
        }
        if (!pass || fs_vec_from_value(f, &q->vals[a->field], x) != 0)
            continue;
        knn_hit cand = {ekey, elen, vec_distance(metric, a->q, x, f->type.dim)};
        if (n == cap && cap < a->k) {
            cap = cap * 2 < a->k ? cap * 2 : a->k;
            h = xrealloc(h, cap * sizeof *h);
        }
        heap_offer(h, &n, a->k, &cand);
    }
    if (rc == 0 || rc == ERR_NOTFOUND) {
        rc = 0;
        qsort(h, n, sizeof *h, cmp_hits);
    }
    store_oiter_free(it);
    xfree(x);
    *hits = h;
    *nhits = n;
    return rc;
}

/* ---- the reply --------------------------------------------------------------------------- */

static void reply_hit(client *c, knn_query *q, const knn_hit *h, buf *key)
{
    const knn_args *a = q->a;
    const store_view *v = a->v;
    const char *row;
    size_t rowlen;
    int64_t ev, cr;
    int found = store_online_get(q->t, v, h->key, h->klen, &ev, &cr, &row, &rowlen) == 0 &&
                store_row_decode(v->schema, v->nfields, row, rowlen, q->vals) == 0;
    reply_array(c, 3);
    key->len = 0;
    store_ekey_format(h->key, h->klen, key);
    reply_bulk(c, key->data, key->len);
    reply_double(c, float_shortest(h->dist));
    reply_array(c, a->nret);
    for (int k = 0; k < a->nret; k++)
        fs_reply_value(c, &v->fields[a->ret[k]], found ? &q->vals[a->ret[k]] : NULL);
}

/* FS.KNN <view> <vector_field> <k> <blob> [EF <n>] [FILTER <expr>] [RETURN <n> <f>...] */
void cmd_fs_knn(client *c)
{
    knn_args a = {0};
    knn_query q = {.a = &a, .now_us = clock_us()};
    knn_hit *hits = NULL;
    size_t n = 0;
    int rc;
    char err[300] = "";
    if (parse_args(c, &a) || read_txn(c, &q.t))
        goto done;
    q.vals = xcalloc((size_t)a.v->nfields, sizeof *q.vals);
    const store_field *f = &a.v->fields[a.field];
    if (f->vindex == STORE_VINDEX_NONE) {
        rc = search_scan(&q, &hits, &n);
    } else {
        fs_vec_view *vv;
        rc = fs_vec_view_get(q.t, a.v, &vv, err, sizeof err);
        vec_index *ix = rc ? NULL : fs_vec_index(vv, a.field);
        if (ix) {
            q.vv = vv;
            q.memo = xcalloc((size_t)fs_vec_slots(vv) + 1, 1);
            rc = search_index(&q, ix, &hits, &n);
        } else if (rc == 0) { /* the view's entry lacks an index it should have */
            snprintf(err, sizeof err, "the vector index of field '%s' is missing", f->name);
            rc = ERR_NOTFOUND;
        }
    }
    if (rc) {
        if (*err)
            reply_errorf(c, "%s", err);
        else
            reply_store_error(c, rc);
        goto done;
    }
    buf key;
    buf_init(&key);
    reply_array(c, (long)n);
    for (size_t i = 0; i < n; i++)
        reply_hit(c, &q, &hits[i], &key);
    buf_free(&key);
done:
    if (hits && !q.vv)
        for (size_t i = 0; i < n; i++)
            xfree((char *)hits[i].key);
    xfree(hits);
    xfree(q.memo);
    xfree(q.vals);
    args_free(&a);
}
