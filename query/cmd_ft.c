/* cmd_ft.c: the FT.* commands, RediSearch's dialect as redis-py, RedisVL and LangChain send
 * it: FT.CREATE, FT.SEARCH (filters, KNN and VECTOR_RANGE), FT.INFO, FT.DROPINDEX,
 * FT._LIST. Replies have the shapes RediSearch 2.8 gives: flat arrays in RESP2, maps in
 * RESP3 (the reply builders degrade maps to flat arrays for RESP2). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/err.h"
#include "query/ft.h"
#include "query/gpu_batch.h"
#include "query/query_int.h"

#define SHOW(s, len) (int)((len) > 64 ? 64 : (len)), (s)
#define CREATE_SYNC_KEYS 10000  /* FT.CREATE indexes a database this small before replying */
#define CREATE_BUDGET_US 200000 /* ... unless that takes longer (HNSW): the cron finishes */
#define LIMIT_MAX 1000000

static ft_index *index_or_reply(client *c, int i)
{
    ft_index *ix = ft_lookup(c->argv[i], c->argl[i]);
    if (!ix)
        reply_errorf(c, "%.*s: no such index (Unknown Index name)", SHOW(c->argv[i], c->argl[i]));
    return ix;
}

/* ---- FT.CREATE, FT.DROPINDEX, FT._LIST --------------------------------------------------- */

void cmd_ft_create(client *c)
{
    const char *name = c->argv[1];
    size_t nlen = c->argl[1];
    char err[256];
    if (nlen == 0 || nlen > FT_NAME_MAX || memchr(name, '\0', nlen)) {
        reply_errorf(c, "index name must be 1 to %d bytes without NUL", FT_NAME_MAX);
        return;
    }
    if (ft_lookup(name, nlen)) {
        reply_error(c, "Index already exists");
        return;
    }
    ft_def def;
    int skip;
    if (ft_def_parse(c->argc - 2, c->argv + 2, c->argl + 2, &def, &skip, err, sizeof err)) {
        reply_error(c, err);
        return;
    }
    def.name = xmemdup(name, nlen);
    def.db = c->db;
    buf rec;
    buf_init(&rec);
    ft_def_encode(&def, &rec);
    store_txn *t;
    if (write_txn(c, rec.len, &t)) {
        ft_def_free(&def);
        buf_free(&rec);
        return;
    }
    if (ft_create(&def, !skip, err, sizeof err)) { /* the vector parameters are checked */
        buf_free(&rec);
        reply_error(c, err);
        return;
    }
    ft_index *ix = ft_lookup(name, nlen);
    int rc = store_aux_put(t, FT_AUX_NS, name, nlen, rec.data, rec.len);
    buf_free(&rec);
    if (rc) {
        ft_drop(ix, NULL, NULL);
        reply_store_error(c, rc);
        return;
    }
    command_dirty();
    if (!skip && store_dbsize(srv.store, c->db) <= CREATE_SYNC_KEYS)
        ft_build_now(ix, CREATE_BUDGET_US);
    reply_ok(c);
}

/* Drops the index at argv[1]; with dd, deletes its documents too. */
static void drop_index(client *c, ft_index *ix, int dd)
{
    store_txn *t;
    if (write_txn(c, 0, &t))
        return;
    int rc = store_aux_del(t, FT_AUX_NS, c->argv[1], c->argl[1]);
    if (rc && rc != ERR_NOTFOUND) {
        reply_store_error(c, rc);
        return;
    }
    int db = ft_index_def(ix)->db;
    buf keys;
    uint32_t nkeys = 0;
    buf_init(&keys);
    ft_drop(ix, dd ? &keys : NULL, &nkeys);
    int64_t now = clock_ms();
    const char *p = keys.data;
    for (uint32_t i = 0; i < nkeys; i++) {
        uint32_t klen;
        memcpy(&klen, p, 4);
        const char *k = p + 4;
        p += 4 + klen;
        int deleted;
        if (store_delete(t, db, k, klen, now, &deleted) == 0 && deleted) {
            watch_touch_key(db, k, klen);
            ft_key_changed(db, k, klen);
        }
    }
    buf_free(&keys);
    command_dirty();
    reply_ok(c);
}

void cmd_ft_dropindex(client *c)
{
    ft_index *ix = index_or_reply(c, 1);
    if (!ix)
        return;
    int dd = c->argc == 3 && arg_is(c, 2, "DD");
    if (c->argc > 3 || (c->argc == 3 && !dd && !arg_is(c, 2, "KEEPDOCS"))) {
        reply_error(c, "FT.DROPINDEX takes the index name and optionally DD");
        return;
    }
    drop_index(c, ix, dd);
}

/* The older FT.DROP (what redis-py 4.3's dropindex() sends): deletes the documents unless
 * KEEPDOCS is given (redis-py sends an empty argument otherwise). */
void cmd_ft_drop(client *c)
{
    ft_index *ix = index_or_reply(c, 1);
    if (!ix)
        return;
    int keep = c->argc == 3 && arg_is(c, 2, "KEEPDOCS");
    if (c->argc > 3 || (c->argc == 3 && !keep && c->argl[2] != 0)) {
        reply_error(c, "FT.DROP takes the index name and optionally KEEPDOCS");
        return;
    }
    drop_index(c, ix, !keep);
}

void cmd_ft_list(client *c)
{
    reply_array(c, ft_count());
    for (int i = 0; i < ft_count(); i++)
        reply_bulk_cstr(c, ft_index_def(ft_at(i))->name);
}

/* ---- FT.INFO ------------------------------------------------------------------------------ */

static const char *metric_name(int m)
{
    return m == VEC_L2 ? "L2" : m == VEC_IP ? "IP" : "COSINE";
}

static const char *type_name(int t)
{
    return t == FTF_TEXT ? "TEXT" : t == FTF_TAG ? "TAG" : t == FTF_NUMERIC ? "NUMERIC" : "VECTOR";
}

/* One attribute: key/value pairs, then flag words (RESP2) or a flags array (RESP3). */
static void info_attribute(client *c, const ft_field *f)
{
    int pairs = 3, nflags = 0;
    const char *flags[3];
    if (f->flags & FTFL_SORTABLE)
        flags[nflags++] = "SORTABLE";
    if (f->flags & FTFL_NOINDEX)
        flags[nflags++] = "NOINDEX";
    if (f->flags & FTFL_CASESENSITIVE)
        flags[nflags++] = "CASESENSITIVE";
    int hnsw = f->vp.kind == VEC_HNSW, ivf = f->vp.kind == VEC_IVF;
    if (f->type == FTF_VECTOR)
        pairs += hnsw ? 8 : ivf ? 6 : 5;
    else if (f->type == FTF_TAG || f->type == FTF_TEXT)
        pairs += 1;
    if (c->resp == 3)
        reply_map(c, pairs + 1);
    else
        reply_array(c, 2 * pairs + nflags);
    reply_bulk_cstr(c, "identifier");
    reply_bulk_cstr(c, f->name);
    reply_bulk_cstr(c, "attribute");
    reply_bulk_cstr(c, f->alias);
    reply_bulk_cstr(c, "type");
    reply_bulk_cstr(c, type_name(f->type));
    if (f->type == FTF_TAG) {
        reply_bulk_cstr(c, "SEPARATOR");
        reply_bulk(c, &f->sep, 1);
    } else if (f->type == FTF_TEXT) {
        reply_bulk_cstr(c, "WEIGHT");
        reply_double(c, f->weight);
    } else if (f->type == FTF_VECTOR) {
        reply_bulk_cstr(c, "algorithm");
        reply_bulk_cstr(c, hnsw ? "HNSW" : ivf ? "IVF" : "FLAT");
        reply_bulk_cstr(c, "data_type");
        reply_bulk_cstr(c, "FLOAT32");
        reply_bulk_cstr(c, "dim");
        reply_int(c, f->vp.dim);
        reply_bulk_cstr(c, "distance_metric");
        reply_bulk_cstr(c, metric_name(f->vp.metric));
        if (hnsw) {
            reply_bulk_cstr(c, "M");
            reply_int(c, f->vp.m ? f->vp.m : 16);
            reply_bulk_cstr(c, "ef_construction");
            reply_int(c, f->vp.ef_construction ? f->vp.ef_construction : 200);
            reply_bulk_cstr(c, "ef_runtime");
            reply_int(c, f->vp.ef_runtime ? f->vp.ef_runtime : 10);
            reply_bulk_cstr(c, "epsilon");
            reply_double(c, f->vp.epsilon > 0 ? f->vp.epsilon : 0.01);
        } else if (ivf) {
            reply_bulk_cstr(c, "factory");
            reply_bulk_cstr(c, f->vp.factory);
            reply_bulk_cstr(c, "ef_runtime"); /* FAISS's nprobe */
            reply_int(c, f->vp.ef_runtime ? f->vp.ef_runtime : 10);
        } else {
            reply_bulk_cstr(c, "block_size");
            reply_int(c, f->block_size ? f->block_size : 1024);
        }
    }
    if (c->resp == 3)
        reply_bulk_cstr(c, "flags"), reply_array(c, nflags);
    for (int i = 0; i < nflags; i++)
        reply_bulk_cstr(c, flags[i]);
}

static void info_definition(client *c, const ft_def *def)
{
    reply_map(c, 3);
    reply_bulk_cstr(c, "key_type");
    reply_bulk_cstr(c, "HASH");
    reply_bulk_cstr(c, "prefixes");
    reply_array(c, def->nprefixes ? def->nprefixes : 1);
    for (int i = 0; i < def->nprefixes; i++)
        reply_bulk(c, def->prefixes[i], def->prefix_lens[i]);
    if (!def->nprefixes)
        reply_bulk_cstr(c, "");
    reply_bulk_cstr(c, "default_score");
    reply_double(c, 1);
}

static void kv_int(client *c, const char *k, long long v)
{
    reply_bulk_cstr(c, k);
    reply_int(c, v);
}

static void kv_double(client *c, const char *k, double v)
{
    reply_bulk_cstr(c, k);
    reply_double(c, v);
}

static void kv_str(client *c, const char *k, const char *v)
{
    reply_bulk_cstr(c, k);
    reply_bulk_cstr(c, v);
}

void cmd_ft_info(client *c)
{
    ft_index *ix = index_or_reply(c, 1);
    if (!ix)
        return;
    const ft_def *def = ft_index_def(ix);
    ft_stats st;
    ft_get_stats(ix, &st);
    double mb = 1024.0 * 1024.0;
    reply_map(c, 27);
    kv_str(c, "index_name", def->name);
    reply_bulk_cstr(c, "index_options");
    reply_array(c, 0);
    reply_bulk_cstr(c, "index_definition");
    info_definition(c, def);
    reply_bulk_cstr(c, "attributes");
    reply_array(c, def->nfields);
    for (int i = 0; i < def->nfields; i++)
        info_attribute(c, &def->fields[i]);
    kv_int(c, "num_docs", st.num_docs);
    kv_int(c, "max_doc_id", st.max_doc_id);
    kv_int(c, "num_terms", 0);
    kv_int(c, "num_records", (long long)st.records);
    kv_double(c, "inverted_sz_mb", (double)st.tag_bytes / mb);
    kv_double(c, "vector_index_sz_mb", (double)st.vector_bytes / mb);
    kv_int(c, "total_inverted_index_blocks", 0);
    kv_double(c, "offset_vectors_sz_mb", 0);
    kv_double(c, "doc_table_size_mb", (double)st.doc_table_bytes / mb);
    kv_double(c, "sortable_values_size_mb", 0);
    kv_double(c, "key_table_size_mb", (double)st.doc_table_bytes / mb);
    kv_double(c, "records_per_doc_avg", st.num_docs ? (double)st.records / st.num_docs : 0);
    kv_int(c, "hash_indexing_failures", (long long)st.failures);
    kv_double(c, "total_indexing_time", st.total_indexing_ms);
    kv_int(c, "indexing", st.indexing);
    kv_double(c, "percent_indexed", st.percent_indexed);
    kv_int(c, "number_of_uses", (long long)st.uses);
    kv_int(c, "cleaning", 0);
    reply_bulk_cstr(c, "gc_stats");
    reply_map(c, 0);
    reply_bulk_cstr(c, "cursor_stats");
    reply_map(c, 4);
    kv_int(c, "global_idle", 0);
    kv_int(c, "global_total", 0);
    kv_int(c, "index_capacity", 128);
    kv_int(c, "index_total", 0);
    reply_bulk_cstr(c, "dialect_stats");
    reply_map(c, 0);
    reply_bulk_cstr(c, "Index Errors");
    reply_map(c, 3);
    kv_int(c, "indexing failures", (long long)st.failures);
    kv_str(c, "last indexing error", st.last_error);
    kv_str(c, "last indexing error key", st.last_error_key);
    kv_str(c, "full_text", "TEXT fields are stored and returned, not full-text searched");
}

/* ---- FT.SEARCH: options -------------------------------------------------------------------- */

/* FT.SEARCH's arguments and the buffer a parse writes its error into: the option parsers
 * are pure (ft_search_opts_parse is fuzzed), and the handler replies the error. */
typedef struct opt_args {
    int argc;
    const char **argv;
    const size_t *lens;
    char *err;
    size_t errlen;
} opt_args;

static int opt_fail(opt_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int opt_fail(opt_args *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->err, a->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int opt_is(const opt_args *a, int i, const char *word)
{
    size_t n = strlen(word);
    return a->lens[i] == n && strncasecmp(a->argv[i], word, n) == 0;
}

/* FILTER field min max (the old numeric filter): bounds as in @f:[min max]. */
static int filter_bound(const char *s, size_t n, double *v, int *excl)
{
    *excl = n > 0 && s[0] == '(';
    if (*excl) {
        s++;
        n--;
    }
    if (n == 4 && strncasecmp(s, "-inf", 4) == 0)
        *v = -INFINITY;
    else if ((n == 4 && strncasecmp(s, "+inf", 4) == 0) || (n == 3 && strncasecmp(s, "inf", 3) == 0))
        *v = INFINITY;
    else
        return str_to_double(s, n, v, 0);
    return 0;
}

static int opt_filter(opt_args *a, const ft_index *ix, int *i, ft_search_opts *o)
{
    if (*i + 3 >= a->argc)
        return opt_fail(a, "FILTER needs a field, a minimum and a maximum");
    const ft_field *f = ft_def_field(ft_index_def(ix), a->argv[*i + 1], a->lens[*i + 1]);
    if (!f || f->type != FTF_NUMERIC)
        return opt_fail(a, "FILTER: '%.*s' is not a NUMERIC field",
                        SHOW(a->argv[*i + 1], a->lens[*i + 1]));
    if (o->nfilters == 8)
        return opt_fail(a, "at most 8 FILTER clauses");
    ft_num_filter *fl = &o->filters[o->nfilters];
    if (filter_bound(a->argv[*i + 2], a->lens[*i + 2], &fl->lo, &fl->lo_excl) ||
        filter_bound(a->argv[*i + 3], a->lens[*i + 3], &fl->hi, &fl->hi_excl))
        return opt_fail(a, "FILTER bounds must be numbers, inf or -inf (optionally after '(')");
    fl->f = f;
    o->nfilters++;
    *i += 4;
    return 0;
}

/* "count" then count items, at i: sets *n and steps over them. */
static int counted(opt_args *a, int *i, const char *what, int64_t max, int64_t *n)
{
    if (*i + 1 >= a->argc || str_to_i64(a->argv[*i + 1], a->lens[*i + 1], n) != 0 || *n < 0 ||
        *n > max || *n > a->argc - (*i + 2))
        return opt_fail(a, "%s needs a count and that many arguments", what);
    *i += 2;
    return 0;
}

/* RETURN n field [AS name] ...: n counts every argument, AS and names included. */
static int opt_return(opt_args *a, int *i, ft_search_opts *o)
{
    int64_t n;
    if (counted(a, i, "RETURN", 1024, &n))
        return -1;
    int end = *i + (int)n;
    xfree(o->ret);
    o->ret = xcalloc((size_t)n + 1, sizeof *o->ret);
    o->nreturn = 0;
    while (*i < end) {
        ft_ret_field *r = &o->ret[o->nreturn++];
        r->name = r->as = a->argv[*i];
        r->nlen = r->aslen = a->lens[*i];
        (*i)++;
        if (*i < end && opt_is(a, *i, "AS")) {
            if (*i + 1 >= end)
                return opt_fail(a, "RETURN: AS needs a name, counted in the RETURN count");
            r->as = a->argv[*i + 1];
            r->aslen = a->lens[*i + 1];
            *i += 2;
        }
    }
    return 0;
}

static int opt_params(opt_args *a, int *i, ft_search_opts *o)
{
    int64_t n;
    if (counted(a, i, "PARAMS", 2048, &n))
        return -1;
    if (n % 2)
        return opt_fail(a, "PARAMS count must be even (name value pairs)");
    int np = (int)n / 2;
    const char **names = xcalloc((size_t)np + 1, sizeof *names);
    const char **vals = xcalloc((size_t)np + 1, sizeof *vals);
    size_t *nl = xcalloc((size_t)np + 1, sizeof *nl), *vl = xcalloc((size_t)np + 1, sizeof *vl);
    for (int k = 0; k < np; k++) {
        names[k] = a->argv[*i + 2 * k];
        nl[k] = a->lens[*i + 2 * k];
        vals[k] = a->argv[*i + 2 * k + 1];
        vl[k] = a->lens[*i + 2 * k + 1];
        for (int j = 0; j < k; j++)
            if (nl[j] == nl[k] && memcmp(names[j], names[k], nl[k]) == 0) {
                opt_fail(a, "Duplicate parameter `%.*s`", SHOW(names[k], nl[k]));
                xfree(names), xfree(vals), xfree(nl), xfree(vl);
                return -1;
            }
    }
    xfree((void *)o->params.names), xfree((void *)o->params.vals);
    xfree((void *)o->params.nlens), xfree((void *)o->params.vlens);
    o->params = (ft_params){np, names, vals, nl, vl};
    *i += (int)n;
    return 0;
}

static int opt_limit(opt_args *a, int *i, ft_search_opts *o)
{
    if (*i + 2 >= a->argc || str_to_i64(a->argv[*i + 1], a->lens[*i + 1], &o->offset) != 0 ||
        str_to_i64(a->argv[*i + 2], a->lens[*i + 2], &o->num) != 0 || o->offset < 0 ||
        o->num < 0)
        return opt_fail(a, "LIMIT needs a non-negative offset and count");
    if (o->offset > LIMIT_MAX || o->num > LIMIT_MAX)
        return opt_fail(a, "LIMIT exceeds the maximum of %d", LIMIT_MAX);
    *i += 3;
    return 0;
}

/* Options that take one value and have no effect here. */
static int ignored_with_value(const opt_args *a, int i)
{
    return opt_is(a, i, "SCORER") || opt_is(a, i, "LANGUAGE") || opt_is(a, i, "EXPANDER") ||
           opt_is(a, i, "SLOP") || opt_is(a, i, "TIMEOUT") || opt_is(a, i, "PAYLOAD");
}

/* SORTBY field [ASC|DESC] at i. */
static int opt_sortby(opt_args *a, int *i, ft_search_opts *o)
{
    if (*i + 1 >= a->argc)
        return opt_fail(a, "SORTBY needs a field");
    o->sortby = a->argv[*i + 1];
    o->sortlen = a->lens[*i + 1];
    if (o->sortlen && o->sortby[0] == '@')
        o->sortby++, o->sortlen--;
    *i += 2;
    if (*i < a->argc && (opt_is(a, *i, "ASC") || opt_is(a, *i, "DESC")))
        o->desc = opt_is(a, (*i)++, "DESC");
    return 0;
}

int ft_search_opts_parse(const ft_index *ix, int argc, const char **argv, const size_t *lens,
                         ft_search_opts *o, char *err, size_t errlen)
{
    opt_args args = {argc, argv, lens, err, errlen}, *a = &args;
    memset(o, 0, sizeof *o);
    o->nreturn = -1;
    o->num = 10;
    for (int i = 3; i < a->argc;) {
        int64_t n;
        if (opt_is(a, i, "NOCONTENT")) {
            o->nocontent = 1, i++;
        } else if (opt_is(a, i, "WITHSCORES")) {
            o->withscores = 1, i++;
        } else if (opt_is(a, i, "VERBATIM") || opt_is(a, i, "NOSTOPWORDS") ||
                   opt_is(a, i, "INORDER")) {
            i++;
        } else if (opt_is(a, i, "RETURN")) {
            if (opt_return(a, &i, o))
                return -1;
        } else if (opt_is(a, i, "SORTBY")) {
            if (opt_sortby(a, &i, o))
                return -1;
        } else if (opt_is(a, i, "LIMIT")) {
            if (opt_limit(a, &i, o))
                return -1;
        } else if (opt_is(a, i, "PARAMS")) {
            if (opt_params(a, &i, o))
                return -1;
        } else if (opt_is(a, i, "DIALECT")) {
            if (i + 1 >= a->argc || str_to_i64(a->argv[i + 1], a->lens[i + 1], &n) != 0 ||
                n < 1 || n > 4)
                return opt_fail(a, "DIALECT must be 1, 2, 3 or 4");
            i += 2;
        } else if (opt_is(a, i, "FORMAT")) {
            if (i + 1 >= a->argc || !opt_is(a, i + 1, "STRING"))
                return opt_fail(a, "FORMAT: only STRING is supported for hashes");
            i += 2;
        } else if (opt_is(a, i, "FILTER")) {
            if (opt_filter(a, ix, &i, o))
                return -1;
        } else if (opt_is(a, i, "INKEYS")) {
            if (counted(a, &i, "INKEYS", 1000000, &n))
                return -1;
            o->inkeys_at = i, o->ninkeys = (int)n, i += (int)n;
        } else if (opt_is(a, i, "INFIELDS")) {
            if (counted(a, &i, "INFIELDS", 1024, &n))
                return -1;
            i += (int)n;
        } else if (ignored_with_value(a, i) && i + 1 < a->argc) {
            i += 2;
        } else {
            return opt_fail(a, "unsupported or unknown FT.SEARCH argument '%.*s'",
                            SHOW(a->argv[i], a->lens[i]));
        }
    }
    return 0;
}

void ft_search_opts_free(ft_search_opts *o)
{
    xfree(o->ret);
    xfree((void *)o->params.names);
    xfree((void *)o->params.vals);
    xfree((void *)o->params.nlens);
    xfree((void *)o->params.vlens);
}

/* ---- FT.SEARCH: running it ------------------------------------------------------------------- */

typedef struct result {
    uint32_t id;
    float dist;     /* KNN or yield distance */
    int has_dist;
    double num;     /* SORTBY on a NUMERIC field (NaN: none) */
    char *str;      /* SORTBY on another field (NULL: none) */
    size_t slen;
} result;

/* One FT.SEARCH. On the GPU path (query/gpu_batch.h) it outlives the command: then its
 * arguments, which o and q borrow, are a copy of the client's (the query buffer moves). */
typedef struct search {
    client *c;
    int argc;
    const char **argv;
    size_t *argl;
    char *copy;         /* the copied arguments' bytes; NULL when argv is the client's */
    int parked;         /* handed to a GPU batch: search_resume() finishes and frees it */
    ft_index *ix;
    ft_query q;
    ft_search_opts o;
    uint64_t *bits;
    result *res;
    size_t nres, total; /* results held; results in all */
    int windowed;       /* res holds only the LIMIT window */
    store_txn *t;
    int db;
} search;

static size_t bits_to_ids(const uint64_t *bits, size_t words, uint32_t *ids)
{
    size_t n = 0;
    for (size_t w = 0; w < words; w++)
        for (uint64_t x = bits[w]; x; x &= x - 1)
            ids[n++] = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(x));
    return n;
}

static size_t popcount(const uint64_t *bits, size_t words)
{
    size_t n = 0;
    for (size_t w = 0; w < words; w++)
        n += (size_t)__builtin_popcountll(bits[w]);
    return n;
}

/* FILTER and INKEYS narrow the bitmap. */
static void narrow(search *s, size_t words)
{
    for (int k = 0; k < s->o.nfilters; k++) {
        uint64_t *tmp = xcalloc(words + 1, 8);
        ft_num_match(s->ix, s->o.filters[k].f, s->o.filters[k].lo, s->o.filters[k].hi,
                     s->o.filters[k].lo_excl, s->o.filters[k].hi_excl, tmp);
        for (size_t w = 0; w < words; w++)
            s->bits[w] &= tmp[w];
        xfree(tmp);
    }
    if (s->o.inkeys_at) {
        uint64_t *tmp = xcalloc(words + 1, 8);
        for (int k = 0; k < s->o.ninkeys; k++) {
            const char *key = s->argv[s->o.inkeys_at + k];
            size_t klen = s->argl[s->o.inkeys_at + k];
            int64_t id = ft_doc_id(s->ix, key, klen);
            if (id >= 0)
                tmp[id >> 6] |= 1ull << (id & 63);
        }
        for (size_t w = 0; w < words; w++)
            s->bits[w] &= tmp[w];
        xfree(tmp);
    }
}

/* A KNN over every document: no bitmap, no filter handed to the index. */
static int unfiltered_knn(const search *s)
{
    return s->q.has_knn && s->q.root_is_all && ft_all_live(s->ix) && !s->o.nfilters &&
           !s->o.inkeys_at;
}

/* The hits as results, nearest first; a document gone since the search (a GPU batch
 * answers after it ran) is left out. -1 after replying an error. */
static int take_hits(search *s, const vec_hit *hits, size_t n)
{
    s->res = try_malloc(sizeof *s->res * (n + 1));
    if (!s->res) {
        reply_error(s->c, "out of memory");
        return -1;
    }
    size_t klen;
    for (size_t i = 0; i < n; i++)
        if (ft_doc_key(s->ix, hits[i].id, &klen))
            s->res[s->nres++] = (result){hits[i].id, hits[i].dist, 1, NAN, NULL, 0};
    s->total = s->nres;
    return 0;
}

/* The KNN: nearest first. -1 after replying an error. */
static int run_knn(search *s, size_t words)
{
    const ft_vecf *vf = ft_vec(s->ix, s->q.knn_field);
    vec_filter filter = {0}, *fp = NULL;
    uint32_t *ids = NULL;
    if (!unfiltered_knn(s)) {
        for (size_t w = 0; w < words; w++)
            s->bits[w] &= vf->has[w];
        ids = try_malloc(sizeof *ids * (popcount(s->bits, words) + 1));
        if (!ids) {
            reply_error(s->c, "out of memory");
            return -1;
        }
        filter.ids = ids;
        filter.nids = bits_to_ids(s->bits, words, ids);
        fp = &filter;
    }
    vec_hit *hits = try_malloc(sizeof *hits * s->q.k);
    size_t n = 0;
    int rc = hits ? 0 : ERR_NOMEM;
    if (!rc && (!fp || filter.nids))
        rc = vec_knn(vf->vx, s->q.knn_vec, s->q.k, s->q.ef, fp, hits, &n);
    xfree(ids);
    if (rc)
        reply_errorf(s->c, "vector search failed: %s", err_str(rc));
    rc = rc ? -1 : take_hits(s, hits, n);
    xfree(hits);
    return rc;
}

/* The matching documents (no KNN), by id, with their VECTOR_RANGE distance if yielded:
 * every one when they are to be sorted, else only those in the LIMIT window. */
static int run_filter(search *s, size_t words)
{
    s->total = popcount(s->bits, words);
    size_t from = 0, to = s->total;
    if (!s->o.sortby) {
        s->windowed = 1;
        from = (size_t)s->o.offset < to ? (size_t)s->o.offset : to;
        to = from + (size_t)s->o.num < to ? from + (size_t)s->o.num : to;
    }
    s->res = try_malloc(sizeof *s->res * (to - from + 1));
    if (!s->res) {
        reply_error(s->c, "out of memory");
        return -1;
    }
    size_t i = 0;
    for (size_t w = 0; w < words && i < to; w++)
        for (uint64_t x = s->bits[w]; x && i < to; x &= x - 1, i++) {
            if (i < from)
                continue;
            result *r = &s->res[s->nres++];
            *r = (result){(uint32_t)(w * 64 + (size_t)__builtin_ctzll(x)), 0, 0, NAN, NULL, 0};
            r->has_dist = ft_query_yield(&s->q, r->id, &r->dist);
        }
    return 0;
}

/* The name under which a result's distance is returned (NULL: none). */
static const char *dist_name(const search *s)
{
    return s->q.has_knn ? s->q.score_name : s->q.yield_name;
}

static int name_is(const char *a, size_t alen, const char *b)
{
    return b && strlen(b) == alen && memcmp(a, b, alen) == 0;
}

enum { BY_DIST, BY_NUM, BY_STR };

static int cmp_results(const void *pa, const void *pb, void *arg)
{
    const result *a = pa, *b = pb;
    int kind = ((const int *)arg)[0], desc = ((const int *)arg)[1], c = 0;
    if (kind == BY_DIST) {
        if (a->has_dist != b->has_dist)
            return a->has_dist ? -1 : 1; /* missing values last either way */
        c = a->dist < b->dist ? -1 : a->dist > b->dist;
    } else if (kind == BY_NUM) {
        int an = a->num != a->num, bn = b->num != b->num;
        if (an != bn)
            return an ? 1 : -1;
        c = a->num < b->num ? -1 : a->num > b->num;
    } else {
        if (!a->str != !b->str)
            return a->str ? -1 : 1;
        if (a->str) {
            size_t m = a->slen < b->slen ? a->slen : b->slen;
            c = memcmp(a->str, b->str, m);
            if (!c)
                c = a->slen < b->slen ? -1 : a->slen > b->slen;
        }
    }
    if (desc)
        c = -c;
    return c ? c : (a->id < b->id ? -1 : a->id > b->id);
}

/* The stored value of hash field name for document id (copied); NULL if none. */
static char *hash_value(search *s, uint32_t id, const char *field, size_t *len)
{
    size_t klen;
    const char *key = ft_doc_key(s->ix, id, &klen);
    store_obj o;
    const char *v;
    if (!key || store_lookup(s->t, s->db, key, klen, clock_ms(), &o) != 0 ||
        o.type != STORE_HASH || store_hash_get(s->t, &o, field, strlen(field), &v, len) != 0)
        return NULL;
    return xmemdup(v, *len);
}

static int sort_results(search *s)
{
    int how[2] = {BY_DIST, s->o.desc};
    if (!s->o.sortby) {
        if (!s->q.has_knn)
            return 0; /* document order */
    } else if (!name_is(s->o.sortby, s->o.sortlen, dist_name(s))) {
        const ft_field *f = ft_def_field(ft_index_def(s->ix), s->o.sortby, s->o.sortlen);
        if (!f) {
            reply_errorf(s->c, "Property `%.*s` not loaded nor in schema",
                         SHOW(s->o.sortby, s->o.sortlen));
            return -1;
        }
        how[0] = f->type == FTF_NUMERIC ? BY_NUM : BY_STR;
        for (size_t i = 0; i < s->nres; i++) {
            if (how[0] == BY_NUM)
                s->res[i].num = ft_num_value(s->ix, f, s->res[i].id);
            else
                s->res[i].str = hash_value(s, s->res[i].id, f->name, &s->res[i].slen);
        }
    }
    qsort_r(s->res, s->nres, sizeof *s->res, cmp_results, how);
    return 0;
}

static void reply_dist(client *c, float d)
{
    char tmp[40];
    size_t n = double_to_str(tmp, float_shortest(d));
    reply_bulk(c, tmp, n);
}

/* A result's fields: a flat array (RESP2) or a map (RESP3) of name, value. */
static void reply_fields(search *s, const result *r)
{
    client *c = s->c;
    size_t h = reply_deferred(c), klen;
    long pairs = 0;
    const char *key = ft_doc_key(s->ix, r->id, &klen);
    store_obj o;
    int found = key && store_lookup(s->t, s->db, key, klen, clock_ms(), &o) == 0 &&
                o.type == STORE_HASH;
    const char *dn = dist_name(s), *f, *v;
    size_t flen, vlen;
    if (s->o.nreturn < 0) {
        if (dn && r->has_dist) {
            reply_bulk_cstr(c, dn);
            reply_dist(c, r->dist);
            pairs++;
        }
        store_iter *it;
        if (found && store_iter_fields(s->t, &o, NULL, 0, &it) == 0) {
            while (store_iter_next_field(it, &f, &flen, &v, &vlen) == 0) {
                reply_bulk(c, f, flen);
                reply_bulk(c, v, vlen);
                pairs++;
            }
            store_iter_free(it);
        }
    }
    for (int i = 0; i < s->o.nreturn; i++) {
        const ft_ret_field *rf = &s->o.ret[i];
        if (name_is(rf->name, rf->nlen, dn)) {
            if (!r->has_dist)
                continue;
            reply_bulk(c, rf->as, rf->aslen);
            reply_dist(c, r->dist);
            pairs++;
            continue;
        }
        const ft_field *sf = ft_def_field(ft_index_def(s->ix), rf->name, rf->nlen);
        const char *hf = sf ? sf->name : rf->name;
        size_t hlen = sf ? strlen(sf->name) : rf->nlen;
        if (found && store_hash_get(s->t, &o, hf, hlen, &v, &vlen) == 0) {
            reply_bulk(c, rf->as, rf->aslen);
            reply_bulk(c, v, vlen);
            pairs++;
        }
    }
    reply_set_map(c, h, pairs);
}

static void reply_results(search *s)
{
    client *c = s->c;
    size_t from = (size_t)s->o.offset < s->nres ? (size_t)s->o.offset : s->nres;
    size_t to = from + (size_t)s->o.num < s->nres ? from + (size_t)s->o.num : s->nres;
    if (s->windowed)
        from = 0, to = s->nres;
    int content = !s->o.nocontent && s->o.nreturn != 0;
    if (c->resp == 3) {
        reply_map(c, 5);
        reply_bulk_cstr(c, "attributes");
        reply_array(c, 0);
        reply_bulk_cstr(c, "format");
        reply_bulk_cstr(c, "STRING");
        reply_bulk_cstr(c, "results");
        reply_array(c, (long)(to - from));
    } else {
        reply_array(c, 1 + (long)(to - from) * (1 + s->o.withscores + content));
        reply_int(c, (long long)s->total);
    }
    for (size_t i = from; i < to; i++) {
        const result *r = &s->res[i];
        size_t klen;
        const char *key = ft_doc_key(s->ix, r->id, &klen);
        double score = r->has_dist ? float_shortest(r->dist) : 1;
        if (c->resp == 3) {
            reply_map(c, 2 + s->o.withscores + content);
            reply_bulk_cstr(c, "id");
            reply_bulk(c, key, klen);
            if (s->o.withscores) {
                reply_bulk_cstr(c, "score");
                reply_double(c, score);
            }
            if (content) {
                reply_bulk_cstr(c, "extra_attributes");
                reply_fields(s, r);
            }
            reply_bulk_cstr(c, "values");
            reply_array(c, 0);
        } else {
            reply_bulk(c, key, klen);
            if (s->o.withscores)
                reply_double(c, score);
            if (content)
                reply_fields(s, r);
        }
    }
    if (c->resp == 3) {
        reply_bulk_cstr(c, "total_results");
        reply_int(c, (long long)s->total);
        reply_bulk_cstr(c, "warning");
        reply_array(c, 0);
    }
}

/* Makes s's arguments c's, or (copy) a copy of them that outlives the command; without
 * the memory for a copy, c's (the search then stays on the CPU). */
static void search_args(search *s, client *c, int copy)
{
    s->argc = c->argc;
    s->argv = c->argv;
    s->argl = c->argl;
    size_t total = 0;
    for (int i = 0; i < c->argc; i++)
        total += c->argl[i] + 1;
    char *bytes = copy ? try_malloc(total) : NULL;
    const char **argv = bytes ? try_malloc(sizeof *argv * (size_t)c->argc) : NULL;
    size_t *argl = argv ? try_malloc(sizeof *argl * (size_t)c->argc) : NULL;
    if (!argl) {
        xfree(bytes);
        xfree(argv);
        return;
    }
    s->copy = bytes;
    s->argv = argv;
    s->argl = argl;
    char *p = s->copy;
    for (int i = 0; i < c->argc; i++) {
        memcpy(p, c->argv[i], c->argl[i]);
        p[c->argl[i]] = '\0';
        s->argv[i] = p;
        s->argl[i] = c->argl[i];
        p += c->argl[i] + 1;
    }
}

static void search_free(search *s)
{
    for (size_t i = 0; s->res && i < s->nres; i++)
        xfree(s->res[i].str);
    xfree(s->res);
    xfree(s->bits);
    ft_query_free(&s->q);
    ft_search_opts_free(&s->o);
    if (s->copy) {
        xfree(s->copy);
        xfree(s->argv);
        xfree(s->argl);
    }
    xfree(s);
}

/* The options and the query of s->ix. -1 with the reason in err. */
static int search_parse_query(search *s, char *err, size_t errlen)
{
    if (ft_search_opts_parse(s->ix, s->argc, s->argv, s->argl, &s->o, err, errlen))
        return -1;
    int rc = ft_query_parse(s->ix, s->argv[2], s->argl[2], &s->o.params, &s->q, err, errlen);
    return rc ? -1 : 0;
}

/* The index, the options and the query. -1 after replying an error. */
static int search_parse(search *s)
{
    client *c = s->c;
    char err[512];
    if (!(s->ix = index_or_reply(c, 1)))
        return -1;
    if (search_parse_query(s, err, sizeof err)) {
        reply_error(c, err);
        return -1;
    }
    s->db = ft_index_def(s->ix)->db;
    ft_count_use(s->ix);
    return 0;
}

/* On the loop, once a GPU batch answered s's KNN (or failed): the reply, as search_run's. */
static void search_resume(void *arg, client *c, const vec_hit *hits, size_t n, int rc)
{
    search *s = arg;
    if (c) {
        s->c = c;
        if (rc)
            reply_errorf(c, "vector search failed: %s", err_str(rc));
        else if (read_txn(c, &s->t) == 0 && take_hits(s, hits, n) == 0 && sort_results(s) == 0)
            reply_results(s);
    }
    search_free(s);
}

/* A command pipelined behind a search waiting on the GPU (gpu_batch.h, PIPELINES): 1 when
 * it is an FT.SEARCH that search_to_gpu() will hand to the batcher too. Parsed here
 * without a reply; the dispatch parses it again. */
static int search_joins_batch(client *c)
{
    const command *cmd = command_lookup(c->argv[0], c->argl[0]);
    if (!cmd || cmd->proc != cmd_ft_search || c->argc < 3 || (c->flags & CLIENT_MULTI))
        return 0;
    search s = {.c = c, .argc = c->argc, .argv = c->argv, .argl = c->argl};
    char err[512];
    int joins = (s.ix = ft_lookup(c->argv[1], c->argl[1])) &&
                search_parse_query(&s, err, sizeof err) == 0 && unfiltered_knn(&s) &&
                gpu_batch_takes(ft_vec(s.ix, s.q.knn_field)->vx, s.q.k);
    ft_query_free(&s.q);
    ft_search_opts_free(&s.o);
    return joins;
}

/* Hands an unfiltered KNN to the GPU batcher; 1 when it took it (s is parked). */
static int search_to_gpu(search *s)
{
    if (!s->copy || !unfiltered_knn(s))
        return 0;
    const ft_vecf *vf = ft_vec(s->ix, s->q.knn_field);
    s->parked = gpu_batch_submit(s->c, s->ix, vf->vx, s->q.knn_vec, s->q.k, search_joins_batch,
                                 search_resume, s) == 0;
    return s->parked;
}

/* The search on the loop, and its reply. */
static void search_run(search *s)
{
    client *c = s->c;
    char err[512];
    if (read_txn(c, &s->t))
        return;
    size_t words = ft_bitmap_words(s->ix);
    if (!unfiltered_knn(s)) {
        s->bits = try_malloc(words * 8 + 8);
        if (!s->bits) {
            reply_error(c, "out of memory");
            return;
        }
        memset(s->bits, 0, words * 8 + 8);
        if (ft_query_eval(s->ix, &s->q, s->bits, err, sizeof err)) {
            reply_error(c, err);
            return;
        }
        narrow(s, words);
    }
    if ((s->q.has_knn ? run_knn(s, words) : run_filter(s, words)) || sort_results(s))
        return;
    reply_results(s);
}

void cmd_ft_search(client *c)
{
    search *s = xcalloc(1, sizeof *s);
    s->c = c;
    search_args(s, c, gpu_batch_on());
    if (search_parse(s) == 0 && !search_to_gpu(s))
        search_run(s);
    if (!s->parked)
        search_free(s);
}
