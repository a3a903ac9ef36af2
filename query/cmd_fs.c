/* cmd_fs.c: the feature store commands (FS.*) but FS.JOIN (fs_join.c). The catalog
 * (entities, views, services), FS.PUSH, the online reads FS.GET and FS.MGET, the history
 * reads FS.ASOF and FS.HISTORY, FS.MATERIALIZE and FS.VIEW.COMPACT. Semantics are DESIGN.md's
 * "Feature store"; storage is store.h's feature store. Every handler checks all of its
 * arguments before it writes anything, and catalog pointers are looked up again after the
 * write transaction is opened rather than kept across it. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/err.h"
#include "query/fs.h"

#define SHOWN 128 /* at most this much of a client's argument is repeated in an error */
#define ARG(c, i) (int)((c)->argl[i] > SHOWN ? SHOWN : (c)->argl[i]), (c)->argv[i]
#define US_PER_S 1000000

/* ---- argument helpers ---------------------------------------------------------------- */

static const store_view *view_arg(client *c, int i)
{
    const store_view *v = store_view_get(srv.store, c->argv[i], c->argl[i]);
    if (!v)
        reply_errorf(c, "unknown feature view '%.*s'", ARG(c, i));
    return v;
}

/* A command's arguments and the buffer a parse writes its error into. The parsers below
 * are pure (FS.VIEW.CREATE's and FS.PUSH's are fuzzed): the handlers reply the error. */
typedef struct fs_args {
    int argc;
    const char **argv;
    const size_t *lens;
    char *err;
    size_t errlen;
} fs_args;

#define AARG(a, i) (int)((a)->lens[i] > SHOWN ? SHOWN : (a)->lens[i]), (a)->argv[i]

static int args_fail(fs_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int args_fail(fs_args *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->err, a->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int args_is(const fs_args *a, int i, const char *word)
{
    size_t n = strlen(word);
    return a->lens[i] == n && strncasecmp(a->argv[i], word, n) == 0;
}

static int args_bad(fs_args *a, int i)
{
    return args_fail(a, "unknown or misplaced argument '%.*s'", AARG(a, i));
}

/* The value after the option word at argv[i] must exist. */
static int args_has_value(fs_args *a, int i)
{
    if (i + 1 < a->argc)
        return 0;
    return args_fail(a, "%.*s needs a value", AARG(a, i));
}

/* An integer count after the word at argv[i], with min <= n <= max. */
static int args_count(fs_args *a, int i, int64_t min, int64_t max, int64_t *n)
{
    if (args_has_value(a, i))
        return -1;
    if (str_to_i64(a->argv[i + 1], a->lens[i + 1], n) != 0 || *n < min)
        return args_fail(a, "%.*s count '%.*s' is not an integer >= %lld", AARG(a, i),
                         AARG(a, i + 1), (long long)min);
    if (*n > max)
        return args_fail(a, "%.*s count %lld but only %lld arguments follow", AARG(a, i),
                         (long long)*n, (long long)max);
    return 0;
}

/* Seconds after the option word at argv[i] (TTL, RETENTION), >= 0, into microseconds. */
static int args_seconds(fs_args *a, int i, int64_t *us)
{
    int64_t s;
    if (args_has_value(a, i))
        return -1;
    if (str_to_i64(a->argv[i + 1], a->lens[i + 1], &s) != 0 || s < 0 || s > INT64_MAX / US_PER_S)
        return args_fail(a, "%.*s '%.*s' is not a number of seconds >= 0", AARG(a, i),
                         AARG(a, i + 1));
    *us = s * US_PER_S;
    return 0;
}

/* A name argument as a C string; a NUL inside it is refused (the catalog checks the rest). */
static char *args_name(fs_args *a, int i, const char *what)
{
    if (memchr(a->argv[i], '\0', a->lens[i])) {
        args_fail(a, "%s name '%.*s' contains a NUL byte", what, AARG(a, i));
        return NULL;
    }
    return xmemdup(a->argv[i], a->lens[i]);
}

/* The client's arguments, for a helper that replies what the pure one wrote. */
#define CLIENT_ARGS(c, err) {(c)->argc, (c)->argv, (c)->argl, (err), sizeof(err)}

static int replied(client *c, int rc, const char *err)
{
    if (rc)
        reply_error(c, err);
    return rc;
}

static int bad_arg(client *c, int i)
{
    char err[512];
    fs_args a = CLIENT_ARGS(c, err);
    return replied(c, args_bad(&a, i), err);
}

static int has_value(client *c, int i)
{
    char err[512];
    fs_args a = CLIENT_ARGS(c, err);
    return replied(c, args_has_value(&a, i), err);
}

static int count_arg(client *c, int i, int64_t min, int64_t max, int64_t *n)
{
    char err[512];
    fs_args a = CLIENT_ARGS(c, err);
    return replied(c, args_count(&a, i, min, max, n), err);
}

/* The catalog's detail for client errors, the generic text for storage failures. */
static void reply_catalog_error(client *c, int rc, const char *err)
{
    if ((rc == ERR_INVAL || rc == ERR_EXISTS || rc == ERR_NOTFOUND || rc == ERR_PERM) && *err)
        reply_error(c, err);
    else
        reply_store_error(c, rc);
}

/* The optional WITHMETA that ends a read. 1 present, 0 absent, -1 replied an error. */
static int withmeta_tail(client *c, int i)
{
    if (i == c->argc)
        return 0;
    if (i == c->argc - 1 && arg_is(c, i, "WITHMETA"))
        return 1;
    return bad_arg(c, i);
}

static int64_t floor_ms(int64_t us)
{
    return us / 1000 - (us % 1000 < 0);
}

/* ---- entities -------------------------------------------------------------------------- */

/* FS.ENTITY.CREATE <entity> [TYPE STRING|INT64] [DESCRIPTION <text>] */
void cmd_fs_entity_create(client *c)
{
    int key_type = STORE_KEY_STRING;
    const char *desc = "";
    size_t dlen = 0;
    for (int i = 2; i < c->argc; i += 2) {
        if (has_value(c, i))
            return;
        if (arg_is(c, i, "TYPE") && arg_is(c, i + 1, "STRING")) {
            key_type = STORE_KEY_STRING;
        } else if (arg_is(c, i, "TYPE") && arg_is(c, i + 1, "INT64")) {
            key_type = STORE_KEY_INT64;
        } else if (arg_is(c, i, "TYPE")) {
            reply_errorf(c, "TYPE '%.*s' is not STRING or INT64", ARG(c, i + 1));
            return;
        } else if (arg_is(c, i, "DESCRIPTION")) {
            desc = c->argv[i + 1];
            dlen = c->argl[i + 1];
        } else {
            bad_arg(c, i);
            return;
        }
    }
    store_txn *t;
    char err[256] = "";
    if (write_txn(c, 0, &t))
        return;
    int rc = store_entity_create(t, c->argv[1], c->argl[1], key_type, desc, dlen, err, sizeof err);
    if (rc) {
        reply_catalog_error(c, rc, err);
        return;
    }
    command_dirty();
    reply_ok(c);
}

void cmd_fs_entity_list(client *c)
{
    int n = store_entity_count(srv.store);
    reply_array(c, n);
    for (int i = 0; i < n; i++)
        reply_bulk_cstr(c, store_entity_at(srv.store, i)->name);
}

/* The drops share a shape: check the name exists, then drop it in the pass. */
typedef int (*drop_fn)(store_txn *t, const char *name, size_t len, char *err, size_t errlen);

static void catalog_drop(client *c, const void *found, const char *what, drop_fn drop)
{
    if (!found) {
        reply_errorf(c, "unknown %s '%.*s'", what, ARG(c, 1));
        return;
    }
    store_txn *t;
    char err[256] = "";
    if (write_txn(c, 0, &t))
        return;
    int rc = drop(t, c->argv[1], c->argl[1], err, sizeof err);
    if (rc) {
        reply_catalog_error(c, rc, err);
        return;
    }
    command_dirty();
    reply_ok(c);
}

void cmd_fs_entity_drop(client *c)
{
    catalog_drop(c, store_entity_get(srv.store, c->argv[1], c->argl[1]), "entity",
                 store_entity_drop);
}

/* ---- views ----------------------------------------------------------------------------- */

void fs_view_spec_free(store_view *spec)
{
    xfree(spec->name);
    for (int i = 0; i < spec->nentities; i++)
        xfree(spec->entities[i]);
    xfree(spec->entities);
    for (int i = 0; i < spec->nfields; i++)
        xfree(spec->fields[i].name);
    xfree(spec->fields);
}

static int parse_entities(fs_args *a, int i, store_view *spec)
{
    int64_t n;
    if (spec->entities)
        return args_fail(a, "ENTITIES given twice");
    if (args_count(a, i, 1, a->argc - i - 2, &n))
        return -1;
    spec->entities = xcalloc((size_t)n, sizeof *spec->entities);
    for (int k = 0; k < n; k++) {
        if (!(spec->entities[k] = args_name(a, i + 2 + k, "entity")))
            return -1;
        spec->nentities++;
    }
    return 0;
}

/* One of nwords words after the option word at argv[i]; *out gets its value. */
static int parse_word(fs_args *a, int i, const char *const *words, int nwords, const int *vals,
                      int *out)
{
    if (args_has_value(a, i))
        return -1;
    for (int k = 0; k < nwords; k++)
        if (args_is(a, i + 1, words[k])) {
            *out = vals[k];
            return 0;
        }
    buf b;
    buf_init(&b);
    for (int k = 0; k < nwords; k++)
        buf_printf(&b, "%s%s", k ? "|" : "", words[k]);
    args_fail(a, "%.*s '%.*s' is not one of %.*s", AARG(a, i), AARG(a, i + 1), (int)b.len,
              b.data);
    buf_free(&b);
    return -1;
}

static int uint_option(fs_args *a, int i, int64_t min, int64_t max, uint32_t *out)
{
    int64_t n;
    if (args_has_value(a, i))
        return -1;
    if (str_to_i64(a->argv[i + 1], a->lens[i + 1], &n) != 0 || n < min || n > max)
        return args_fail(a, "%.*s '%.*s' is not an integer from %lld to %lld", AARG(a, i),
                         AARG(a, i + 1), (long long)min, (long long)max);
    *out = (uint32_t)n;
    return 0;
}

/* VECTOR <dim> [METRIC L2|IP|COSINE] [INDEX HNSW|FLAT|NONE] [M m] [EF_CONSTRUCTION n]
 * with argv[i] the word VECTOR; returns the index past it, or -1. */
static int parse_vector(fs_args *a, int i, store_field *f)
{
    static const char *metrics[] = {"L2", "IP", "COSINE"}, *indexes[] = {"HNSW", "FLAT", "NONE"};
    static const int metric_vals[] = {STORE_METRIC_L2, STORE_METRIC_IP, STORE_METRIC_COSINE};
    static const int index_vals[] = {STORE_VINDEX_HNSW, STORE_VINDEX_FLAT, STORE_VINDEX_NONE};
    if (uint_option(a, i, 1, FT_MAX_VECTOR_DIM, &f->type.dim))
        return -1;
    f->metric = STORE_METRIC_L2;
    f->vindex = STORE_VINDEX_HNSW;
    f->m = 16;
    f->ef_construction = 200;
    for (i += 2; i < a->argc; i += 2) {
        int rc;
        if (args_is(a, i, "METRIC"))
            rc = parse_word(a, i, metrics, 3, metric_vals, &f->metric);
        else if (args_is(a, i, "INDEX"))
            rc = parse_word(a, i, indexes, 3, index_vals, &f->vindex);
        else if (args_is(a, i, "M"))
            rc = uint_option(a, i, 2, 512, &f->m);
        else if (args_is(a, i, "EF_CONSTRUCTION"))
            rc = uint_option(a, i, 1, 4096, &f->ef_construction);
        else
            break;
        if (rc)
            return -1;
    }
    return i;
}

/* SCHEMA's "<field> <type> ..." from argv[i] to the end. */
static int parse_schema(fs_args *a, int i, store_view *spec)
{
    if (i >= a->argc)
        return args_fail(a, "SCHEMA needs at least one field and its type");
    spec->fields = xcalloc((size_t)(a->argc - i + 1) / 2, sizeof *spec->fields);
    while (i < a->argc) {
        store_field *f = &spec->fields[spec->nfields];
        if (!(f->name = args_name(a, i, "field")))
            return -1;
        spec->nfields++;
        if (i + 1 >= a->argc)
            return args_fail(a, "field '%.*s' needs a type", AARG(a, i));
        f->type.type = store_ftype_parse(a->argv[i + 1], a->lens[i + 1]);
        if (!f->type.type)
            return args_fail(a, "unknown type '%.*s' for field '%.*s'", AARG(a, i + 1),
                             AARG(a, i));
        if (f->type.type != FT_VECTOR)
            i += 2;
        else if ((i = parse_vector(a, i + 1, f)) < 0)
            return -1;
    }
    return 0;
}

int fs_view_spec_parse(int argc, const char **argv, const size_t *lens, store_view *spec,
                       char *err, size_t errlen)
{
    static const char *yesno[] = {"YES", "NO"};
    static const int yesno_vals[] = {1, 0};
    fs_args args = {argc, argv, lens, err, errlen}, *a = &args;
    memset(spec, 0, sizeof *spec);
    if (!(spec->name = args_name(a, 1, "view")))
        return -1;
    spec->online = 1;
    int i = 2;
    while (i < a->argc && !args_is(a, i, "SCHEMA")) {
        int rc;
        if (args_is(a, i, "ENTITIES")) {
            if (parse_entities(a, i, spec))
                return -1;
            i += 2 + spec->nentities;
            continue;
        }
        if (args_is(a, i, "TTL"))
            rc = args_seconds(a, i, &spec->ttl_us);
        else if (args_is(a, i, "RETENTION"))
            rc = args_seconds(a, i, &spec->retention_us);
        else if (args_is(a, i, "ONLINE"))
            rc = parse_word(a, i, yesno, 2, yesno_vals, &spec->online);
        else
            rc = args_bad(a, i);
        if (rc)
            return -1;
        i += 2;
    }
    if (!spec->entities)
        return args_fail(a, "missing ENTITIES <n> <entity> ...");
    if (i >= a->argc)
        return args_fail(a, "missing SCHEMA <field> <type> ...");
    return parse_schema(a, i + 1, spec);
}

void cmd_fs_view_create(client *c)
{
    store_view spec;
    char err[512] = "";
    if (fs_view_spec_parse(c->argc, c->argv, c->argl, &spec, err, sizeof err) == 0) {
        store_txn *t;
        if (write_txn(c, 0, &t) == 0) {
            int rc = store_view_create(t, &spec, err, sizeof err);
            if (rc) {
                reply_catalog_error(c, rc, err);
            } else {
                command_dirty();
                reply_ok(c);
            }
        }
    } else {
        reply_error(c, err);
    }
    fs_view_spec_free(&spec);
}

void cmd_fs_view_list(client *c)
{
    int n = store_view_count(srv.store);
    reply_array(c, n);
    for (int i = 0; i < n; i++)
        reply_bulk_cstr(c, store_view_at(srv.store, i)->name);
}

/* A field's type as FS.VIEW.CREATE takes it ("VECTOR 4 METRIC L2 INDEX HNSW M 16 ..."). */
static void reply_field_type(client *c, const store_field *f)
{
    static const char *metrics[] = {"?", "L2", "IP", "COSINE"};
    static const char *indexes[] = {"NONE", "HNSW", "FLAT"};
    if (f->type.type != FT_VECTOR) {
        reply_bulk_cstr(c, store_ftype_name(f->type.type));
        return;
    }
    buf b;
    buf_init(&b);
    buf_printf(&b, "VECTOR %u METRIC %s INDEX %s M %u EF_CONSTRUCTION %u", f->type.dim,
               metrics[f->metric >= 1 && f->metric <= 3 ? f->metric : 0],
               indexes[f->vindex >= 0 && f->vindex <= 2 ? f->vindex : 0], f->m,
               f->ef_construction);
    reply_bulk(c, b.data, b.len);
    buf_free(&b);
}

/* FS.VIEW.INFO <view>: a map of the view's definition and its number of online rows. */
void cmd_fs_view_info(client *c)
{
    store_txn *t;
    uint64_t rows;
    const store_view *v = view_arg(c, 1);
    if (!v || read_txn(c, &t))
        return;
    int rc = store_online_count(t, v, &rows);
    if (rc) {
        reply_store_error(c, rc);
        return;
    }
    reply_map(c, 9);
    reply_bulk_cstr(c, "name");
    reply_bulk_cstr(c, v->name);
    reply_bulk_cstr(c, "id");
    reply_int(c, v->id);
    reply_bulk_cstr(c, "entities");
    reply_array(c, v->nentities);
    for (int i = 0; i < v->nentities; i++)
        reply_bulk_cstr(c, v->entities[i]);
    reply_bulk_cstr(c, "ttl");
    reply_int(c, v->ttl_us / US_PER_S);
    reply_bulk_cstr(c, "retention");
    reply_int(c, v->retention_us / US_PER_S);
    reply_bulk_cstr(c, "online");
    reply_bool(c, v->online);
    reply_bulk_cstr(c, "created");
    reply_int(c, v->created_ms);
    reply_bulk_cstr(c, "online_rows");
    reply_int(c, (long long)rows);
    reply_bulk_cstr(c, "schema");
    reply_array(c, v->nfields);
    for (int i = 0; i < v->nfields; i++) {
        reply_array(c, 2);
        reply_bulk_cstr(c, v->fields[i].name);
        reply_field_type(c, &v->fields[i]);
    }
}

void cmd_fs_view_drop(client *c)
{
    catalog_drop(c, store_view_get(srv.store, c->argv[1], c->argl[1]), "feature view",
                 store_view_drop);
}

/* FS.VIEW.COMPACT <view>: compacts the view's history now, so that retention applies. */
void cmd_fs_view_compact(client *c)
{
    store_hist *h;
    const store_view *v = view_arg(c, 1);
    if (!v)
        return;
    int rc = store_history(srv.store, &h);
    if (rc == 0)
        rc = store_hist_compact(h, v->id);
    rc ? reply_store_error(c, rc) : reply_ok(c);
}

/* ---- services -------------------------------------------------------------------------- */

/* FS.SERVICE.CREATE <service> FEATURES <n> <view>:<field>|<view>:* ... */
void cmd_fs_service_create(client *c)
{
    fs_request rq;
    int next;
    if (!arg_is(c, 2, "FEATURES")) {
        reply_error(c, "missing FEATURES <n> <view>:<field> ...");
        return;
    }
    if (fs_parse_features(c, 2, &rq, &next)) /* checks every feature exists */
        return;
    fs_request_free(&rq);
    if (next != c->argc) {
        bad_arg(c, next);
        return;
    }
    int n = c->argc - 4;
    store_feature_ref *refs = xcalloc((size_t)n, sizeof *refs);
    for (int k = 0; k < n; k++) {
        const char *a = c->argv[4 + k], *colon = memchr(a, ':', c->argl[4 + k]);
        refs[k].view = xmemdup(a, (size_t)(colon - a));
        if (!(c->argl[4 + k] == (size_t)(colon - a) + 2 && colon[1] == '*'))
            refs[k].field = xmemdup(colon + 1, c->argl[4 + k] - (size_t)(colon - a) - 1);
    }
    store_txn *t;
    char err[256] = "";
    if (write_txn(c, 0, &t) == 0) {
        int rc = store_service_create(t, c->argv[1], c->argl[1], n, refs, err, sizeof err);
        if (rc) {
            reply_catalog_error(c, rc, err);
        } else {
            command_dirty();
            reply_ok(c);
        }
    }
    for (int k = 0; k < n; k++) {
        xfree(refs[k].view);
        xfree(refs[k].field);
    }
    xfree(refs);
}

void cmd_fs_service_list(client *c)
{
    int n = store_service_count(srv.store);
    reply_array(c, n);
    for (int i = 0; i < n; i++)
        reply_bulk_cstr(c, store_service_at(srv.store, i)->name);
}

/* FS.SERVICE.INFO <service>: its name and features ("view:field" or "view:*"). */
void cmd_fs_service_info(client *c)
{
    const store_service *s = store_service_get(srv.store, c->argv[1], c->argl[1]);
    if (!s) {
        reply_errorf(c, "unknown feature service '%.*s'", ARG(c, 1));
        return;
    }
    reply_map(c, 2);
    reply_bulk_cstr(c, "name");
    reply_bulk_cstr(c, s->name);
    reply_bulk_cstr(c, "features");
    reply_array(c, s->n);
    buf b;
    buf_init(&b);
    for (int k = 0; k < s->n; k++) {
        b.len = 0;
        buf_printf(&b, "%s:%s", s->features[k].view,
                   s->features[k].field ? s->features[k].field : "*");
        reply_bulk(c, b.data, b.len);
    }
    buf_free(&b);
}

void cmd_fs_service_drop(client *c)
{
    catalog_drop(c, store_service_get(srv.store, c->argv[1], c->argl[1]), "feature service",
                 store_service_drop);
}

/* ---- FS.PUSH --------------------------------------------------------------------------- */

typedef struct push_args {
    int64_t event_us, created_us;
    int created_given, to_online, to_offline;
    int fields; /* index of the first field name */
} push_args;

/* [CREATED <ts>] [TO ONLINE|OFFLINE|BOTH] FIELDS ... from argv[4]. */
static int parse_push_options(client *c, const store_view *v, push_args *a)
{
    a->to_online = a->to_offline = 1;
    int i = 4;
    for (; i < c->argc && !arg_is(c, i, "FIELDS"); i += 2) {
        if (has_value(c, i))
            return -1;
        if (arg_is(c, i, "CREATED")) {
            if (fs_arg_ts(c, i + 1, "CREATED", &a->created_us))
                return -1;
            a->created_given = 1;
        } else if (arg_is(c, i, "TO")) {
            a->to_online = !arg_is(c, i + 1, "OFFLINE");
            a->to_offline = !arg_is(c, i + 1, "ONLINE");
            if (!arg_is(c, i + 1, "ONLINE") && !arg_is(c, i + 1, "OFFLINE") &&
                !arg_is(c, i + 1, "BOTH")) {
                reply_errorf(c, "TO '%.*s' is not ONLINE, OFFLINE or BOTH", ARG(c, i + 1));
                return -1;
            }
        } else {
            return bad_arg(c, i);
        }
    }
    if (i >= c->argc) {
        reply_error(c, "missing FIELDS <field> <value> ...");
        return -1;
    }
    a->fields = i + 1;
    if (a->fields == c->argc || (c->argc - a->fields) % 2) {
        reply_error(c, "FIELDS needs <field> <value> pairs");
        return -1;
    }
    if (!a->to_offline && !v->online) {
        reply_errorf(c, "feature view '%s' has ONLINE NO: nothing to write TO ONLINE", v->name);
        return -1;
    }
    return 0;
}

int fs_push_row(const store_view *v, int n, const char **argv, const size_t *lens, buf *row,
                char *err, size_t errlen)
{
    store_fvalue *vals = xcalloc((size_t)v->nfields, sizeof *vals);
    char *seen = xcalloc((size_t)v->nfields, 1);
    fs_args a = {n, argv, lens, err, errlen};
    int rc = -1;
    for (int k = 0; k < v->nfields; k++)
        vals[k].is_null = 1;
    for (int i = 0; i + 1 < n; i += 2) {
        int k = store_view_field(v, argv[i], lens[i]);
        char why[256];
        if (k < 0) {
            args_fail(&a, "unknown field '%.*s' of feature view '%s'", AARG(&a, i), v->name);
            goto done;
        }
        if (seen[k]) {
            args_fail(&a, "duplicate field '%.*s' in FIELDS", AARG(&a, i));
            goto done;
        }
        seen[k] = 1;
        if (store_parse_value(&v->schema[k], argv[i + 1], lens[i + 1], &vals[k], why,
                              sizeof why)) {
            args_fail(&a, "field '%s': %s", v->fields[k].name, why);
            goto done;
        }
    }
    if (store_row_encode(v->schema, v->nfields, vals, row)) {
        args_fail(&a, "out of memory");
        goto done;
    }
    rc = 0;
done:
    xfree(seen);
    xfree(vals);
    return rc;
}

/* Logs the push with the CREATED the server chose, so that a replica stores the same row. */
static void propagate_push(client *c, int64_t created_us)
{
    int argc = c->argc + 2;
    const char **argv = xmalloc((size_t)argc * sizeof *argv);
    size_t *lens = xmalloc((size_t)argc * sizeof *lens);
    char ts[40];
    for (int i = 0; i < 4; i++) {
        argv[i] = c->argv[i];
        lens[i] = c->argl[i];
    }
    argv[4] = "CREATED";
    lens[4] = 7;
    argv[5] = ts;
    lens[5] = store_format_ts(created_us, ts);
    for (int i = 4; i < c->argc; i++) {
        argv[i + 2] = c->argv[i];
        lens[i + 2] = c->argl[i];
    }
    propagate(c, argc, argv, lens);
    xfree(argv);
    xfree(lens);
}

/* FS.PUSH <view> <entity_key> <event_ts> [CREATED <ts>] [TO ONLINE|OFFLINE|BOTH]
 *         FIELDS <f> <v> ...: replies 1 when the online row was replaced, else 0. */
void cmd_fs_push(client *c)
{
    push_args a = {0};
    buf key, row;
    buf_init(&key);
    buf_init(&row);
    const store_view *v = view_arg(c, 1);
    if (!v || fs_arg_key(c, v, 2, &key) || fs_arg_ts(c, 3, "event_ts", &a.event_us) ||
        parse_push_options(c, v, &a))
        goto done;
    char err[512];
    if (fs_push_row(v, c->argc - a.fields, c->argv + a.fields, c->argl + a.fields, &row, err,
                    sizeof err)) {
        reply_error(c, err);
        goto done;
    }
    if (!a.created_given)
        a.created_us = clock_us();
    store_txn *t;
    if (write_txn(c, key.len + row.len, &t))
        goto done;
    v = store_view_get(srv.store, c->argv[1], c->argl[1]);
    int replaced = 0;
    int rc = store_fs_push(t, v, key.data, key.len, a.event_us, a.created_us, row.data, row.len,
                           a.to_online, a.to_offline, &replaced);
    const char *why = rc == ERR_IO || rc == ERR_BACKEND ? store_history_error(srv.store) : NULL;
    if (rc) {
        if (why)
            reply_error(c, why);
        else
            reply_store_error(c, rc);
        goto done;
    }
    command_dirty();
    if (!a.created_given)
        propagate_push(c, a.created_us);
    reply_int(c, replaced);
done:
    buf_free(&key);
    buf_free(&row);
}

/* ---- online reads ---------------------------------------------------------------------- */

/* A served value's status: no row, a row older than the view's TTL at now, or its value. */
static int value_status(const store_view *v, const store_fvalue *val, int64_t event_us,
                        int64_t now_us)
{
    if (!val)
        return FS_NOT_FOUND;
    int64_t age;
    if (v->ttl_us > 0 && (__builtin_sub_overflow(now_us, event_us, &age) ? now_us > event_us
                                                                          : age > v->ttl_us))
        return FS_OUTSIDE_MAX_AGE;
    return val->is_null ? FS_NULL_VALUE : FS_PRESENT;
}

static void reply_feature(client *c, const store_field *f, const store_fvalue *val,
                          int64_t event_us, int status, int withmeta)
{
    if (withmeta)
        fs_reply_meta(c, f, val, event_us, status);
    else
        fs_reply_value(c, f, status == FS_PRESENT ? val : NULL);
}

/* One view's row for a request: found or not, its event time and decoded values. */
typedef struct view_row {
    int found;
    int64_t event_us;
    store_fvalue *vals;
} view_row;

/* Reads and decodes the online row of (v, key) into r. 0, or a storage error. */
static int online_row(store_txn *t, const store_view *v, const buf *key, view_row *r)
{
    const char *row;
    size_t len;
    int64_t created;
    int rc = store_online_get(t, v, key->data, key->len, &r->event_us, &created, &row, &len);
    r->found = rc == 0;
    if (rc == ERR_NOTFOUND)
        return 0;
    return rc ? rc : store_row_decode(v->schema, v->nfields, row, len, r->vals);
}

/* The values of one request row in feature order; t_us is the time TTL is measured from. */
static void reply_request_row(client *c, const fs_request *rq, const view_row *rows,
                              int64_t t_us, int withmeta)
{
    reply_array(c, rq->nfeatures);
    for (int k = 0; k < rq->nfeatures; k++) {
        const fs_feature *f = &rq->features[k];
        const store_view *v = rq->views[f->view];
        const view_row *r = &rows[f->view];
        const store_fvalue *val = r->found ? &r->vals[f->field] : NULL;
        reply_feature(c, &v->fields[f->field], val, r->event_us,
                      value_status(v, val, r->event_us, t_us), withmeta);
    }
}

static view_row *view_rows_new(const fs_request *rq)
{
    view_row *rows = xcalloc((size_t)rq->nviews, sizeof *rows);
    for (int i = 0; i < rq->nviews; i++)
        rows[i].vals = xcalloc((size_t)rq->views[i]->nfields, sizeof *rows[i].vals);
    return rows;
}

static void view_rows_free(const fs_request *rq, view_row *rows)
{
    for (int i = 0; i < rq->nviews; i++)
        xfree(rows[i].vals);
    xfree(rows);
}

/* FS.GET <view> <entity_key> [FEATURES <n> <f>...] [WITHMETA] */
void cmd_fs_get(client *c)
{
    fs_request rq = {0};
    buf key;
    buf_init(&key);
    int next, withmeta;
    store_txn *t;
    const store_view *v = view_arg(c, 1);
    if (!v || fs_arg_key(c, v, 2, &key))
        goto done;
    if (fs_parse_view_features(c, v, 3, &rq, &next))
        goto done;
    if ((withmeta = withmeta_tail(c, next)) < 0 || read_txn(c, &t))
        goto done;
    view_row *rows = view_rows_new(&rq);
    int rc = online_row(t, v, &key, &rows[0]);
    if (rc)
        reply_store_error(c, rc);
    else
        reply_request_row(c, &rq, rows, clock_us(), withmeta);
    view_rows_free(&rq, rows);
done:
    fs_request_free(&rq);
    buf_free(&key);
}

/* Checks every entity key of an FS.MGET request (rows of nentities values from argv[i]). */
static int check_rows(client *c, const fs_request *rq, int i, int64_t n, buf *key)
{
    for (int64_t r = 0; r < n; r++, i += rq->nentities)
        for (int v = 0; v < rq->nviews; v++)
            if (fs_row_key(c, rq, v, c->argv + i, c->argl + i, key))
                return -1;
    return 0;
}

/* "ROWS <n> <value>... [WITHMETA]" at argv[i]: n rows of rq->nentities values each. */
static int parse_rows(client *c, const fs_request *rq, int i, int64_t *n, int *withmeta)
{
    if (i >= c->argc || !arg_is(c, i, "ROWS"))
        return i < c->argc ? bad_arg(c, i) : (reply_error(c, "missing ROWS <n> ..."), -1);
    if (count_arg(c, i, 0, c->argc - i - 2, n))
        return -1;
    int64_t want = *n * rq->nentities, have = c->argc - i - 2;
    *withmeta = have == want + 1 && arg_is(c, c->argc - 1, "WITHMETA");
    if (have - *withmeta != want) {
        buf names;
        buf_init(&names);
        for (int e = 0; e < rq->nentities; e++)
            buf_printf(&names, "%s%s", e ? ", " : "", rq->entities[e]);
        reply_errorf(c, "ROWS %lld needs %lld values (one per entity: %.*s) per row, got %lld",
                     (long long)*n, (long long)want, (int)names.len, names.data,
                     (long long)(have - *withmeta));
        buf_free(&names);
        return -1;
    }
    return 0;
}

/* FS.MGET <service> | FEATURES <n> <view>:<field>... ROWS <n> <entity_key>... [WITHMETA] */
void cmd_fs_mget(client *c)
{
    fs_request rq;
    buf key;
    buf_init(&key);
    int next, withmeta = 0;
    int64_t n;
    store_txn *t;
    if (fs_parse_features(c, 1, &rq, &next))
        goto out;
    int first = next + 2;
    if (parse_rows(c, &rq, next, &n, &withmeta) || check_rows(c, &rq, first, n, &key) ||
        read_txn(c, &t))
        goto done;
    view_row *rows = view_rows_new(&rq);
    int64_t now = clock_us();
    reply_array(c, (long)n);
    for (int64_t r = 0; r < n; r++) {
        const char *const *vals = c->argv + first + r * rq.nentities;
        const size_t *lens = c->argl + first + r * rq.nentities;
        int rc = 0;
        for (int v = 0; v < rq.nviews && !rc; v++) {
            fs_row_key(c, &rq, v, vals, lens, &key); /* checked above */
            rc = online_row(t, rq.views[v], &key, &rows[v]);
        }
        if (rc) /* a stored row fails its checks: this row's answer is the error */
            reply_errorf(c, "storage error: %s", err_str(rc));
        else
            reply_request_row(c, &rq, rows, now, withmeta);
    }
    view_rows_free(&rq, rows);
done:
    fs_request_free(&rq);
out:
    buf_free(&key);
}

/* ---- history reads --------------------------------------------------------------------- */

/* The oldest event every read sees: now - RETENTION. Older rows are gone at the next
 * compaction; reads ignore them already, so that answers never depend on when it runs. */
static int64_t oldest_retained(const store_view *v)
{
    return v->retention_us > 0 ? clock_us() - v->retention_us : INT64_MIN;
}

/* The oldest event that can answer a point-in-time read at t: t - TTL (inclusive), and
 * never older than what is retained. */
static int64_t window_start(const store_view *v, int64_t t)
{
    int64_t lo = INT64_MIN;
    if (v->ttl_us > 0 && t >= INT64_MIN + v->ttl_us)
        lo = t - v->ttl_us;
    int64_t oldest = oldest_retained(v);
    return lo > oldest ? lo : oldest;
}

/* FS.ASOF <view> <entity_key> <ts> [FEATURES <n> <f>...] [WITHMETA]: the values current at
 * ts (largest event <= ts, ties by largest created, within the window above), as FS.JOIN
 * answers one row: NOT_FOUND when no row qualifies. */
void cmd_fs_asof(client *c)
{
    fs_request rq = {0};
    buf key, row;
    buf_init(&key);
    buf_init(&row);
    int64_t ts, created;
    int next, withmeta;
    store_hist *h;
    const store_view *v = view_arg(c, 1);
    if (!v || fs_arg_key(c, v, 2, &key) || fs_arg_ts(c, 3, "ts", &ts) ||
        fs_parse_view_features(c, v, 4, &rq, &next) || (withmeta = withmeta_tail(c, next)) < 0)
        goto done;
    view_row *rows = view_rows_new(&rq);
    int rc = store_history(srv.store, &h);
    if (rc == 0) {
        rc = store_hist_asof(h, v->id, key.data, key.len, ts, window_start(v, ts),
                             &rows[0].event_us, &created, &row);
        rows[0].found = rc == 0;
        if (rc == 0)
            rc = store_row_decode(v->schema, v->nfields, row.data, row.len, rows[0].vals);
        else if (rc == ERR_NOTFOUND)
            rc = 0;
    }
    if (rc)
        reply_store_error(c, rc);
    else
        reply_request_row(c, &rq, rows, ts, withmeta);
    view_rows_free(&rq, rows);
done:
    fs_request_free(&rq);
    buf_free(&key);
    buf_free(&row);
}

typedef struct history_args {
    int64_t from, to, count;
    int desc;
} history_args;

/* [FROM <ts>] [TO <ts>] [COUNT <n>] [DESC] from argv[3]. */
static int parse_history_options(client *c, history_args *a)
{
    a->from = INT64_MIN;
    a->to = INT64_MAX;
    a->count = -1;
    for (int i = 3; i < c->argc; i++) {
        if (arg_is(c, i, "DESC")) {
            a->desc = 1;
            continue;
        }
        if (!arg_is(c, i, "FROM") && !arg_is(c, i, "TO") && !arg_is(c, i, "COUNT"))
            return bad_arg(c, i);
        if (has_value(c, i))
            return -1;
        if (arg_is(c, i, "COUNT")) {
            if (str_to_i64(c->argv[i + 1], c->argl[i + 1], &a->count) != 0 || a->count < 0) {
                reply_errorf(c, "COUNT '%.*s' is not an integer >= 0", ARG(c, i + 1));
                return -1;
            }
        } else if (fs_arg_ts(c, i + 1, arg_is(c, i, "FROM") ? "FROM" : "TO",
                             arg_is(c, i, "FROM") ? &a->from : &a->to)) {
            return -1;
        }
        i++;
    }
    return 0;
}

static void reply_history_row(client *c, const store_view *v, store_fvalue *vals,
                              int64_t event_us, int64_t created_us, const char *row, size_t len)
{
    int rc = store_row_decode(v->schema, v->nfields, row, len, vals);
    if (rc) { /* a stored row fails its checks: this row's answer is the error */
        reply_errorf(c, "storage error: %s", err_str(rc));
        return;
    }
    reply_array(c, 3);
    reply_int(c, floor_ms(event_us));
    reply_int(c, floor_ms(created_us));
    reply_array(c, v->nfields);
    for (int k = 0; k < v->nfields; k++)
        fs_reply_value(c, &v->fields[k], &vals[k]);
}

/* FS.HISTORY <view> <entity_key> [FROM <ts>] [TO <ts>] [COUNT <n>] [DESC]: the retained rows
 * with FROM <= event <= TO, oldest first (newest first with DESC), as
 * [event_ts_ms, created_ts_ms, [values in schema order]]. */
void cmd_fs_history(client *c)
{
    history_args a = {0};
    buf key;
    buf_init(&key);
    store_hist *h;
    store_hiter *it;
    const store_view *v = view_arg(c, 1);
    if (!v || fs_arg_key(c, v, 2, &key) || parse_history_options(c, &a))
        goto done;
    if (a.from < oldest_retained(v))
        a.from = oldest_retained(v);
    int rc = store_history(srv.store, &h);
    if (rc == 0)
        rc = store_hist_range(h, v->id, key.data, key.len, a.from, a.to, !a.desc, &it);
    if (rc) {
        reply_store_error(c, rc);
        goto done;
    }
    store_fvalue *vals = xcalloc((size_t)v->nfields, sizeof *vals);
    size_t handle = reply_deferred(c);
    long n = 0;
    int64_t event, created;
    const char *row;
    size_t len;
    while ((a.count < 0 || n < a.count) &&
           store_hiter_next(it, &event, &created, &row, &len) == 0) {
        reply_history_row(c, v, vals, event, created, row, len);
        n++;
    }
    reply_set_array(c, handle, n);
    xfree(vals);
    store_hiter_free(it);
done:
    buf_free(&key);
}

/* ---- FS.MATERIALIZE -------------------------------------------------------------------- */

/* Positions cur on its current entity's newest row with start <= event <= end.
 * 1 found, 0 none (cur stays on the entity), or a storage error. */
static int window_row(store_hcur *cur, buf *ent, int64_t start, int64_t end)
{
    const char *e, *row;
    size_t elen, rowlen;
    int64_t event, created;
    store_hcur_row(cur, &e, &elen, &event, &created, &row, &rowlen);
    if (event <= end)
        return event >= start;
    ent->len = 0;
    buf_append(ent, e, elen); /* the cursor's copy dies when it moves */
    int rc = store_hcur_seek(cur, ent->data, ent->len, end);
    if (rc == 0) {
        store_hcur_row(cur, &e, &elen, &event, &created, &row, &rowlen);
        return event >= start;
    }
    if (rc != ERR_NOTFOUND)
        return rc;
    /* every row of the entity is after end: back onto it, to step past it next */
    rc = store_hcur_seek(cur, ent->data, ent->len, INT64_MAX);
    return rc ? rc : 0;
}

/* 1 when the online row of (v, ekey) is at least as new as (event_us, created_us): then
 * it already is this history row or a newer one, and is left alone. */
static int online_has(store_txn *t, const store_view *v, const char *ekey, size_t elen,
                      int64_t event_us, int64_t created_us)
{
    int64_t ev, cr;
    const char *row;
    size_t len;
    if (store_online_get(t, v, ekey, elen, &ev, &cr, &row, &len) != 0)
        return 0;
    return ev > event_us || (ev == event_us && cr >= created_us);
}

/* Writes each entity's newest row of [start, end] online where the online row is older;
 * *written counts them. */
static int materialize(store_txn *t, const store_view *v, store_hcur *cur, int64_t start,
                       int64_t end, long long *written)
{
    buf ent;
    buf_init(&ent);
    int rc;
    while ((rc = store_hcur_next_entity(cur)) == 0) {
        int found = window_row(cur, &ent, start, end);
        if (found < 0) {
            rc = found;
            break;
        }
        if (!found)
            continue;
        const char *e, *row;
        size_t elen, rowlen;
        int64_t event, created;
        int replaced;
        store_hcur_row(cur, &e, &elen, &event, &created, &row, &rowlen);
        if (online_has(t, v, e, elen, event, created))
            continue;
        if ((rc = store_online_put(t, v, e, elen, event, created, row, rowlen, &replaced)))
            break;
        *written += replaced;
    }
    buf_free(&ent);
    return rc == ERR_NOTFOUND ? 0 : rc;
}

/* FS.MATERIALIZE <view> <start_ts> <end_ts>: rebuilds online rows from history; replies
 * how many online rows it wrote. */
void cmd_fs_materialize(client *c)
{
    int64_t start, end;
    store_hist *h;
    store_hcur *cur = NULL;
    store_txn *t;
    const store_view *v = view_arg(c, 1);
    if (!v || fs_arg_ts(c, 2, "start_ts", &start) || fs_arg_ts(c, 3, "end_ts", &end))
        return;
    if (!v->online) {
        reply_errorf(c, "feature view '%s' has ONLINE NO: nothing to materialize", v->name);
        return;
    }
    if (start > end) {
        reply_error(c, "start_ts is after end_ts");
        return;
    }
    if (start < oldest_retained(v))
        start = oldest_retained(v);
    int rc = store_history(srv.store, &h);
    if (rc == 0)
        rc = store_hcur_new(h, v->id, &cur);
    if (rc || write_txn(c, 0, &t)) {
        if (rc)
            reply_store_error(c, rc);
        goto done;
    }
    v = store_view_get(srv.store, c->argv[1], c->argl[1]);
    long long written = 0;
    rc = materialize(t, v, cur, start, end, &written);
    if (written)
        command_dirty();
    rc ? reply_store_error(c, rc) : reply_int(c, written);
done:
    if (cur)
        store_hcur_free(cur);
}
