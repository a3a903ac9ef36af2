/* fs_common.c: what the FS.* command files share (query/fs.h). Resolves a requested feature
 * list (a service, or FEATURES <view>:<field> ...) against the catalog of the current pass
 * into views, fields and the distinct entities a request row gives; turns arguments into
 * stored entity keys and timestamps, replying a clear error on bad input; and replies typed
 * values, with their event time and status for WITHMETA, in RESP2 or RESP3. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "query/fs.h"

#define SHOWN 128 /* at most this much of a client's argument is repeated in an error */
#define ARG(c, i) (int)((c)->argl[i] > SHOWN ? SHOWN : (c)->argl[i]), (c)->argv[i]

const char *fs_status_name(int status)
{
    static const char *names[] = {"PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE"};
    return status >= 0 && status < 4 ? names[status] : "UNKNOWN";
}

/* Room for item n of an array grown by doubling (8, 16, 32, ...). */
static void *grow(void *p, int n, size_t size)
{
    if (n == 0)
        return xrealloc(p, 8 * size);
    if (n >= 8 && (n & (n - 1)) == 0)
        return xrealloc(p, (size_t)n * 2 * size);
    return p;
}

/* The index of v in rq->views, adding it (and its new entities) when absent. */
static int request_view(fs_request *rq, const store_view *v)
{
    for (int i = 0; i < rq->nviews; i++)
        if (rq->views[i] == v)
            return i;
    int vi = rq->nviews;
    rq->views = grow(rq->views, vi, sizeof *rq->views);
    rq->view_ent = grow(rq->view_ent, vi, sizeof *rq->view_ent);
    rq->views[vi] = v;
    rq->view_ent[vi] = xmalloc((size_t)v->nentities * sizeof(int));
    rq->nviews++;
    for (int j = 0; j < v->nentities; j++) {
        int e = 0;
        while (e < rq->nentities && strcmp(rq->entities[e], v->entities[j]) != 0)
            e++;
        if (e == rq->nentities) {
            rq->entities = grow(rq->entities, e, sizeof *rq->entities);
            rq->entities[rq->nentities++] = v->entities[j];
        }
        rq->view_ent[vi][j] = e;
    }
    return vi;
}

static void request_add(fs_request *rq, const store_view *v, int field)
{
    int vi = request_view(rq, v);
    rq->features = grow(rq->features, rq->nfeatures, sizeof *rq->features);
    rq->features[rq->nfeatures++] = (fs_feature){vi, field};
}

/* Adds field (or every field when field is "*") of v. -1 after replying when unknown. */
static int add_field(client *c, fs_request *rq, const store_view *v, const char *f, size_t flen)
{
    if (flen == 1 && f[0] == '*') {
        for (int k = 0; k < v->nfields; k++)
            request_add(rq, v, k);
        return 0;
    }
    int k = store_view_field(v, f, flen);
    if (k < 0) {
        reply_errorf(c, "unknown field '%.*s' of feature view '%s'",
                     (int)(flen > SHOWN ? SHOWN : flen), f, v->name);
        return -1;
    }
    request_add(rq, v, k);
    return 0;
}

/* "FEATURES <n>" at argv[i]: n must be a positive integer with n arguments after it. */
static int features_count(client *c, int i, int *n)
{
    int64_t v;
    if (i + 1 >= c->argc || str_to_i64(c->argv[i + 1], c->argl[i + 1], &v) != 0 || v < 1) {
        reply_error(c, "FEATURES needs a positive count of features");
        return -1;
    }
    if (v > c->argc - i - 2) {
        reply_errorf(c, "FEATURES count %lld but only %d arguments follow", (long long)v,
                     c->argc - i - 2);
        return -1;
    }
    *n = (int)v;
    return 0;
}

/* One "<view>:<field>" or "<view>:*" argument. */
static int add_feature_arg(client *c, fs_request *rq, int i)
{
    const char *a = c->argv[i], *colon = memchr(a, ':', c->argl[i]);
    if (!colon) {
        reply_errorf(c, "feature '%.*s' is not <view>:<field> or <view>:*", ARG(c, i));
        return -1;
    }
    size_t vlen = (size_t)(colon - a);
    const store_view *v = store_view_get(srv.store, a, vlen);
    if (!v) {
        reply_errorf(c, "unknown feature view '%.*s'", (int)(vlen > SHOWN ? SHOWN : vlen), a);
        return -1;
    }
    return add_field(c, rq, v, colon + 1, c->argl[i] - vlen - 1);
}

static int add_service(client *c, fs_request *rq, int i)
{
    const store_service *s = store_service_get(srv.store, c->argv[i], c->argl[i]);
    if (!s) {
        reply_errorf(c, "unknown feature service '%.*s'", ARG(c, i));
        return -1;
    }
    for (int k = 0; k < s->n; k++) {
        const store_feature_ref *f = &s->features[k];
        const store_view *v = store_view_get(srv.store, f->view, strlen(f->view));
        if (!v) { /* the catalog refuses this; say so rather than crash */
            reply_errorf(c, "feature service '%s' names a missing view '%s'", s->name, f->view);
            return -1;
        }
        if (add_field(c, rq, v, f->field ? f->field : "*", f->field ? strlen(f->field) : 1))
            return -1;
    }
    return 0;
}

int fs_parse_features(client *c, int i, fs_request *rq, int *next)
{
    memset(rq, 0, sizeof *rq);
    if (i >= c->argc) {
        reply_error(c, "missing a feature service or FEATURES <n> <view>:<field> ...");
        return -1;
    }
    if (!arg_is(c, i, "FEATURES")) {
        if (add_service(c, rq, i))
            goto fail;
        *next = i + 1;
        return 0;
    }
    int n;
    if (features_count(c, i, &n))
        goto fail;
    for (int k = 0; k < n; k++)
        if (add_feature_arg(c, rq, i + 2 + k))
            goto fail;
    *next = i + 2 + n;
    return 0;
fail:
    fs_request_free(rq);
    return -1;
}

int fs_parse_view_features(client *c, const store_view *v, int i, fs_request *rq, int *next)
{
    memset(rq, 0, sizeof *rq);
    request_view(rq, v);
    if (i >= c->argc || !arg_is(c, i, "FEATURES")) {
        for (int k = 0; k < v->nfields; k++)
            request_add(rq, v, k);
        *next = i;
        return 0;
    }
    int n;
    if (features_count(c, i, &n))
        goto fail;
    for (int k = 0; k < n; k++)
        if (add_field(c, rq, v, c->argv[i + 2 + k], c->argl[i + 2 + k]))
            goto fail;
    *next = i + 2 + n;
    return 0;
fail:
    fs_request_free(rq);
    return -1;
}

void fs_request_free(fs_request *rq)
{
    for (int i = 0; i < rq->nviews; i++)
        xfree(rq->view_ent[i]);
    xfree(rq->view_ent);
    xfree(rq->views);
    xfree(rq->entities);
    xfree(rq->features);
    memset(rq, 0, sizeof *rq);
}

int fs_row_key(client *c, const fs_request *rq, int v, const char *const *vals,
               const size_t *lens, buf *out)
{
    const store_view *view = rq->views[v];
    const char *parts_small[8] = {0};
    size_t lens_small[8] = {0};
    int n = view->nentities;
    const char **parts = n <= 8 ? parts_small : xmalloc((size_t)n * sizeof *parts);
    size_t *plens = n <= 8 ? lens_small : xmalloc((size_t)n * sizeof *plens);
    for (int j = 0; j < n; j++) {
        parts[j] = vals[rq->view_ent[v][j]];
        plens[j] = lens[rq->view_ent[v][j]];
    }
    char err[256];
    int rc = store_ekey_build(view, parts, plens, out, err, sizeof err);
    if (n > 8) {
        xfree(parts);
        xfree(plens);
    }
    if (rc) {
        reply_error(c, err); /* names the entity and the value */
        return -1;
    }
    return 0;
}

int fs_arg_key(client *c, const store_view *v, int i, buf *out)
{
    char err[256];
    if (store_ekey_parse(v, c->argv[i], c->argl[i], out, err, sizeof err) == 0)
        return 0;
    reply_error(c, err); /* names the key, or the entity and the value */
    return -1;
}

int fs_arg_ts(client *c, int i, const char *what, int64_t *us)
{
    char err[256];
    if (store_parse_ts(c->argv[i], c->argl[i], us, err, sizeof err) == 0)
        return 0;
    reply_errorf(c, "%s: %s", what, err);
    return -1;
}

void fs_reply_value(client *c, const store_field *f, const store_fvalue *v)
{
    if (!v || v->is_null) {
        reply_null(c);
        return;
    }
    char ts[40];
    switch (f->type.type) {
    case FT_INT32:
    case FT_INT64:
    case FT_BOOL: reply_int(c, v->i); break;
    case FT_FLOAT32: reply_double(c, float_shortest((float)v->f)); break;
    case FT_FLOAT64: reply_double(c, v->f); break;
    case FT_TIMESTAMP: reply_bulk(c, ts, store_format_ts(v->i, ts)); break;
    default: reply_bulk(c, v->bytes, v->len); break; /* STRING, BYTES, VECTOR */
    }
}

void fs_reply_meta(client *c, const store_field *f, const store_fvalue *v, int64_t event_us,
                   int status)
{
    reply_array(c, 3);
    fs_reply_value(c, f, status == FS_PRESENT ? v : NULL);
    if (status == FS_NOT_FOUND) {
        reply_null(c);
    } else {
        int64_t ms = event_us / 1000 - (event_us % 1000 < 0); /* floor */
        reply_int(c, ms);
    }
    reply_bulk_cstr(c, fs_status_name(status));
}
