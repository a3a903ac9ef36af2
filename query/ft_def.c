/* ft_def.c: FT index definitions: FT.CREATE's arguments parsed into an ft_def, the
 * persisted definition record (ft.h DEFINITION RECORD) written and read back, and the file
 * helpers for vector snapshots (their path, an atomic write, a read). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "query/ft.h"

#define DEF_VERSION 1
#define SHOW(s, len) (int)((len) > 64 ? 64 : (len)), (s) /* a client's word in a message */

/* ---- FT.CREATE arguments ----------------------------------------------------------------- */

typedef struct args {
    int argc, i;
    const char **argv;
    const size_t *lens;
    char *err;
    size_t errlen;
} args;

static int is(const args *a, int i, const char *word)
{
    size_t n = strlen(word);
    return i < a->argc && a->lens[i] == n && strncasecmp(a->argv[i], word, n) == 0;
}

static int fail(args *a, const char *fmt, const char *word, size_t len)
{
    snprintf(a->err, a->errlen, fmt, SHOW(word, len));
    return ERR_INVAL;
}

/* The argument after option i, or an error naming the option. */
static int need(args *a, int n)
{
    if (a->i + n < a->argc)
        return 0;
    return fail(a, "missing value after '%.*s'", a->argv[a->i], a->lens[a->i]);
}

/* FAISS factory strings are printable ASCII. */
static int printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int parse_u32(args *a, int i, uint32_t lo, uint32_t hi, const char *what, uint32_t *out)
{
    int64_t v;
    if (str_to_i64(a->argv[i], a->lens[i], &v) != 0 || v < lo || v > hi) {
        snprintf(a->err, a->errlen, "%s must be an integer from %u to %u, got '%.*s'", what,
                 lo, hi, SHOW(a->argv[i], a->lens[i]));
        return ERR_INVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_metric(args *a, int i, int *out)
{
    if (is(a, i, "L2"))
        *out = VEC_L2;
    else if (is(a, i, "IP"))
        *out = VEC_IP;
    else if (is(a, i, "COSINE"))
        *out = VEC_COSINE;
    else
        return fail(a, "unknown DISTANCE_METRIC '%.*s' (L2, IP or COSINE)", a->argv[i],
                    a->lens[i]);
    return 0;
}

/* One attribute pair of a VECTOR field at a->i. */
static int vector_attr(args *a, ft_field *f, int *have)
{
    int i = a->i + 1;
    vec_params *p = &f->vp;
    int hnsw = p->kind == VEC_HNSW;
    if (is(a, a->i, "TYPE")) {
        if (!is(a, i, "FLOAT32"))
            return fail(a, "unsupported vector TYPE '%.*s': only FLOAT32 is supported",
                        a->argv[i], a->lens[i]);
        *have |= 1;
        return 0;
    }
    if (is(a, a->i, "DIM")) {
        *have |= 2;
        return parse_u32(a, i, 1, VEC_MAX_DIM, "DIM", &p->dim);
    }
    if (is(a, a->i, "DISTANCE_METRIC")) {
        *have |= 4;
        return parse_metric(a, i, &p->metric);
    }
    if (is(a, a->i, "INITIAL_CAP"))
        return parse_u32(a, i, 0, UINT32_MAX / 2, "INITIAL_CAP", &p->initial_cap);
    if (is(a, a->i, "BLOCK_SIZE") && !hnsw)
        return parse_u32(a, i, 1, UINT32_MAX / 2, "BLOCK_SIZE", &f->block_size);
    if (is(a, a->i, "M") && hnsw)
        return parse_u32(a, i, 2, 1024, "M", &p->m);
    if (is(a, a->i, "EF_CONSTRUCTION") && hnsw)
        return parse_u32(a, i, 1, 100000, "EF_CONSTRUCTION", &p->ef_construction);
    if (is(a, a->i, "EF_RUNTIME") && (hnsw || p->kind == VEC_IVF)) /* IVF: nprobe */
        return parse_u32(a, i, 1, VEC_MAX_K, "EF_RUNTIME", &p->ef_runtime);
    if (is(a, a->i, "FACTORY") && p->kind == VEC_IVF) {
        if (a->lens[i] == 0 || a->lens[i] > 255 || !printable(a->argv[i], a->lens[i]))
            return fail(a, "FACTORY must be a FAISS factory string such as IVF1024,PQ32, got "
                           "'%.*s'", a->argv[i], a->lens[i]);
        xfree((char *)p->factory);
        p->factory = xmemdup(a->argv[i], a->lens[i]);
        return 0;
    }
    if (is(a, a->i, "EPSILON") && hnsw) {
        if (str_to_double(a->argv[i], a->lens[i], &p->epsilon, 0) != 0 || !(p->epsilon > 0))
            return fail(a, "EPSILON must be a positive number, got '%.*s'", a->argv[i],
                        a->lens[i]);
        return 0;
    }
    return fail(a, hnsw                   ? "unknown HNSW vector attribute '%.*s'"
                   : p->kind == VEC_IVF ? "unknown IVF vector attribute '%.*s'"
                                        : "unknown FLAT vector attribute '%.*s'",
                a->argv[a->i], a->lens[a->i]);
}

/* VECTOR alg nargs attr value ... with a->i on the algorithm. */
static int parse_vector(args *a, ft_field *f)
{
    if (a->i >= a->argc)
        return fail(a, "missing vector algorithm after '%.*s'", "VECTOR", 6);
    if (is(a, a->i, "FLAT"))
        f->vp.kind = VEC_FLAT;
    else if (is(a, a->i, "HNSW"))
        f->vp.kind = VEC_HNSW;
    else if (is(a, a->i, "IVF"))
        f->vp.kind = VEC_IVF;
    else
        return fail(a, "unknown vector algorithm '%.*s' (FLAT, HNSW or IVF)", a->argv[a->i],
                    a->lens[a->i]);
    uint32_t nargs;
    if (need(a, 1) || parse_u32(a, a->i + 1, 0, 64, "the vector attribute count", &nargs))
        return ERR_INVAL;
    a->i += 2;
    if (nargs % 2 || a->i + (int)nargs > a->argc)
        return fail(a, "vector field '%.*s': the attribute count must be even and match the "
                       "attributes given", f->name, strlen(f->name));
    int end = a->i + (int)nargs, have = 0;
    for (; a->i < end; a->i += 2)
        if (vector_attr(a, f, &have))
            return ERR_INVAL;
    if (have != 7)
        return fail(a, "vector field '%.*s' needs TYPE, DIM and DISTANCE_METRIC", f->name,
                    strlen(f->name));
    if (f->vp.kind == VEC_IVF && !f->vp.factory)
        return fail(a, "IVF vector field '%.*s' needs FACTORY (e.g. IVF1024,PQ32)", f->name,
                    strlen(f->name));
    return 0;
}

/* The options after a field's type, in any order. */
static int field_options(args *a, ft_field *f)
{
    while (a->i < a->argc) {
        if (is(a, a->i, "SORTABLE")) {
            f->flags |= FTFL_SORTABLE;
            a->i += is(a, a->i + 1, "UNF") ? 2 : 1;
        } else if (is(a, a->i, "NOINDEX")) {
            f->flags |= FTFL_NOINDEX;
            a->i++;
        } else if (is(a, a->i, "WITHSUFFIXTRIE") || (f->type == FTF_TEXT && is(a, a->i, "NOSTEM"))) {
            a->i++;
        } else if (f->type == FTF_TEXT && is(a, a->i, "PHONETIC")) {
            if (need(a, 1))
                return ERR_INVAL;
            a->i += 2;
        } else if (f->type == FTF_TEXT && is(a, a->i, "WEIGHT")) {
            if (need(a, 1))
                return ERR_INVAL;
            if (str_to_double(a->argv[a->i + 1], a->lens[a->i + 1], &f->weight, 0) != 0 ||
                f->weight < 0)
                return fail(a, "WEIGHT must be a non-negative number, got '%.*s'",
                            a->argv[a->i + 1], a->lens[a->i + 1]);
            a->i += 2;
        } else if (f->type == FTF_TAG && is(a, a->i, "SEPARATOR")) {
            if (need(a, 1))
                return ERR_INVAL;
            if (a->lens[a->i + 1] != 1)
                return fail(a, "SEPARATOR must be one character, got '%.*s'",
                            a->argv[a->i + 1], a->lens[a->i + 1]);
            f->sep = a->argv[a->i + 1][0];
            a->i += 2;
        } else if (f->type == FTF_TAG && is(a, a->i, "CASESENSITIVE")) {
            f->flags |= FTFL_CASESENSITIVE;
            a->i++;
        } else {
            break;
        }
    }
    return 0;
}

static int parse_field(args *a, ft_def *def, ft_field *f)
{
    const char *name = a->argv[a->i];
    size_t nlen = a->lens[a->i];
    if (nlen == 0 || nlen > 255 || memchr(name, '\0', nlen))
        return fail(a, "bad field name '%.*s' (1 to 255 bytes)", name, nlen);
    f->name = xmemdup(name, nlen);
    a->i++;
    if (is(a, a->i, "AS")) {
        if (need(a, 1))
            return ERR_INVAL;
        const char *al = a->argv[a->i + 1];
        size_t alen = a->lens[a->i + 1];
        if (alen == 0 || alen > 255 || memchr(al, '\0', alen))
            return fail(a, "bad attribute name '%.*s' (1 to 255 bytes)", al, alen);
        f->alias = xmemdup(al, alen);
        a->i += 2;
    } else {
        f->alias = xmemdup(name, nlen);
    }
    for (int j = 0; j < def->nfields - 1; j++) /* f is the last one */
        if (!strcmp(def->fields[j].alias, f->alias) || !strcmp(def->fields[j].name, f->name))
            return fail(a, "duplicate field in schema: '%.*s'", f->alias, strlen(f->alias));
    if (a->i >= a->argc)
        return fail(a, "field '%.*s' has no type", f->name, strlen(f->name));
    f->sep = ',';
    f->weight = 1;
    int ti = a->i++;
    if (is(a, ti, "TEXT")) {
        f->type = FTF_TEXT;
    } else if (is(a, ti, "TAG")) {
        f->type = FTF_TAG;
        f->slot = def->ntags++;
    } else if (is(a, ti, "NUMERIC")) {
        f->type = FTF_NUMERIC;
        f->slot = def->nnums++;
    } else if (is(a, ti, "VECTOR")) {
        f->type = FTF_VECTOR;
        f->slot = def->nvecs++;
        return parse_vector(a, f);
    } else if (is(a, ti, "GEO") || is(a, ti, "GEOSHAPE")) {
        return fail(a, "field type '%.*s' is not supported (TEXT, TAG, NUMERIC or VECTOR)",
                    a->argv[ti], a->lens[ti]);
    } else {
        return fail(a, "unknown field type '%.*s' (TEXT, TAG, NUMERIC or VECTOR)", a->argv[ti],
                    a->lens[ti]);
    }
    return field_options(a, f);
}

static int parse_schema(args *a, ft_def *def)
{
    a->i++;
    if (a->i >= a->argc)
        return fail(a, "%.*s needs at least one field", "SCHEMA", 6);
    while (a->i < a->argc) {
        if (def->nfields == FT_SCHEMA_MAX)
            return fail(a, "too many fields (at most 256) at '%.*s'", a->argv[a->i],
                        a->lens[a->i]);
        def->fields = xrealloc(def->fields, sizeof *def->fields * (size_t)(def->nfields + 1));
        ft_field *f = &def->fields[def->nfields];
        memset(f, 0, sizeof *f);
        def->nfields++;
        if (parse_field(a, def, f))
            return ERR_INVAL;
    }
    if (def->nvecs > 255)
        return fail(a, "too many VECTOR fields (at most 255)%.*s", "", 0);
    return 0;
}

static int parse_prefixes(args *a, ft_def *def)
{
    uint32_t n;
    if (need(a, 1) || parse_u32(a, a->i + 1, 1, FT_MAX_PREFIXES, "PREFIX count", &n))
        return ERR_INVAL;
    a->i += 2;
    if (a->i + (int)n > a->argc)
        return fail(a, "PREFIX count %.*s is more than the prefixes given", a->argv[a->i - 1],
                    a->lens[a->i - 1]);
    if (def->nprefixes + (int)n > FT_MAX_PREFIXES) { /* PREFIX given again adds to them */
        snprintf(a->err, a->errlen, "more than %d prefixes in all", FT_MAX_PREFIXES);
        return ERR_INVAL;
    }
    for (uint32_t j = 0; j < n; j++, a->i++) {
        if (a->lens[a->i] > 400)
            return fail(a, "prefix '%.*s...' is longer than 400 bytes", a->argv[a->i], 32);
        def->prefixes = xrealloc(def->prefixes, sizeof(char *) * (size_t)(def->nprefixes + 1));
        def->prefix_lens = xrealloc(def->prefix_lens, sizeof(size_t) * (size_t)(def->nprefixes + 1));
        def->prefixes[def->nprefixes] = xmemdup(a->argv[a->i], a->lens[a->i]);
        def->prefix_lens[def->nprefixes++] = a->lens[a->i];
    }
    return 0;
}

/* Index options before SCHEMA. Those that only shape full-text search are accepted and
 * have no effect here. */
static int parse_option(args *a, ft_def *def, int *skip_scan)
{
    if (is(a, a->i, "ON")) {
        if (need(a, 1))
            return ERR_INVAL;
        if (!is(a, a->i + 1, "HASH"))
            return fail(a, "ON %.*s is not supported: indexes cover hashes (ON HASH)",
                        a->argv[a->i + 1], a->lens[a->i + 1]);
        a->i += 2;
    } else if (is(a, a->i, "PREFIX")) {
        return parse_prefixes(a, def);
    } else if (is(a, a->i, "LANGUAGE") || is(a, a->i, "LANGUAGE_FIELD") ||
               is(a, a->i, "SCORE") || is(a, a->i, "SCORE_FIELD") ||
               is(a, a->i, "PAYLOAD_FIELD")) {
        if (need(a, 1))
            return ERR_INVAL;
        a->i += 2;
    } else if (is(a, a->i, "MAXTEXTFIELDS") || is(a, a->i, "NOOFFSETS") || is(a, a->i, "NOHL") ||
               is(a, a->i, "NOFIELDS") || is(a, a->i, "NOFREQS")) {
        a->i++;
    } else if (is(a, a->i, "SKIPINITIALSCAN")) {
        *skip_scan = 1;
        a->i++;
    } else if (is(a, a->i, "STOPWORDS")) {
        uint32_t n;
        if (need(a, 1) || parse_u32(a, a->i + 1, 0, 100000, "STOPWORDS count", &n))
            return ERR_INVAL;
        a->i += 2 + (int)n;
        if (a->i > a->argc)
            return fail(a, "STOPWORDS count is more than the words given%.*s", "", 0);
    } else if (is(a, a->i, "FILTER") || is(a, a->i, "TEMPORARY")) {
        return fail(a, "index option '%.*s' is not supported", a->argv[a->i], a->lens[a->i]);
    } else {
        return fail(a, "unknown argument '%.*s' (index options, then SCHEMA)", a->argv[a->i],
                    a->lens[a->i]);
    }
    return 0;
}

int ft_def_parse(int argc, const char **argv, const size_t *lens, ft_def *def, int *skip_scan,
                 char *err, size_t errlen)
{
    args a = {argc, 0, argv, lens, err, errlen};
    memset(def, 0, sizeof *def);
    *skip_scan = 0;
    while (a.i < argc && !is(&a, a.i, "SCHEMA"))
        if (parse_option(&a, def, skip_scan))
            goto fail;
    if (a.i >= argc) {
        snprintf(err, errlen, "missing SCHEMA");
        goto fail;
    }
    if (parse_schema(&a, def))
        goto fail;
    return 0;
fail:
    ft_def_free(def);
    return ERR_INVAL;
}

void ft_def_free(ft_def *def)
{
    for (int i = 0; i < def->nprefixes; i++)
        xfree(def->prefixes[i]);
    for (int i = 0; i < def->nfields; i++) {
        xfree(def->fields[i].name);
        xfree(def->fields[i].alias);
        xfree((char *)def->fields[i].vp.factory);
    }
    xfree(def->prefixes);
    xfree(def->prefix_lens);
    xfree(def->fields);
    xfree(def->name);
    memset(def, 0, sizeof *def);
}

const ft_field *ft_def_field(const ft_def *def, const char *name, size_t len)
{
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < def->nfields; i++) {
            const char *s = pass ? def->fields[i].name : def->fields[i].alias;
            if (strlen(s) == len && memcmp(s, name, len) == 0)
                return &def->fields[i];
        }
    return NULL;
}

/* ---- the definition record ------------------------------------------------------------- */

static void put_u16(buf *b, size_t v)
{
    uint16_t x = (uint16_t)v;
    buf_append(b, &x, 2);
}

static void put_u32(buf *b, uint32_t v)
{
    buf_append(b, &v, 4);
}

static void put_str(buf *b, const char *s, size_t len)
{
    put_u16(b, len);
    buf_append(b, s, len);
}

void ft_def_encode(const ft_def *def, buf *out)
{
    size_t start = out->len;
    buf_appendc(out, DEF_VERSION);
    buf_appendc(out, (char)def->db);
    put_u16(out, (size_t)def->nprefixes);
    for (int i = 0; i < def->nprefixes; i++)
        put_str(out, def->prefixes[i], def->prefix_lens[i]);
    put_u16(out, (size_t)def->nfields);
    for (int i = 0; i < def->nfields; i++) {
        const ft_field *f = &def->fields[i];
        put_str(out, f->name, strlen(f->name));
        put_str(out, f->alias, strlen(f->alias));
        buf_appendc(out, (char)f->type);
        buf_appendc(out, (char)f->flags);
        if (f->type == FTF_TAG) {
            buf_appendc(out, f->sep);
        } else if (f->type == FTF_TEXT) {
            buf_append(out, &f->weight, 8);
        } else if (f->type == FTF_VECTOR) {
            buf_appendc(out, (char)f->vp.kind);
            buf_appendc(out, (char)f->vp.metric);
            put_u32(out, f->vp.dim);
            put_u32(out, f->vp.m);
            put_u32(out, f->vp.ef_construction);
            put_u32(out, f->vp.ef_runtime);
            buf_append(out, &f->vp.epsilon, 8);
            put_u32(out, f->vp.initial_cap);
            put_u32(out, f->block_size);
            const char *fac = f->vp.factory ? f->vp.factory : "";
            put_str(out, fac, strlen(fac));
        }
    }
    put_u32(out, crc32c(0, out->data + start, out->len - start));
}

/* A bounds-checked reader over a record. */
typedef struct rd {
    const unsigned char *p;
    size_t len, pos;
    int bad;
} rd;

static const unsigned char *take(rd *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        return NULL;
    }
    r->pos += n;
    return r->p + r->pos - n;
}

static unsigned get_u8(rd *r)
{
    const unsigned char *p = take(r, 1);
    return p ? *p : 0;
}

static size_t get_u16(rd *r)
{
    const unsigned char *p = take(r, 2);
    return p ? (size_t)(p[0] | p[1] << 8) : 0;
}

static uint32_t get_u32(rd *r)
{
    const unsigned char *p = take(r, 4);
    uint32_t v = 0;
    if (p)
        memcpy(&v, p, 4);
    return v;
}

static double get_f64(rd *r)
{
    const unsigned char *p = take(r, 8);
    double v = 0;
    if (p)
        memcpy(&v, p, 8);
    return v;
}

static char *get_str(rd *r, size_t *len)
{
    size_t n = get_u16(r);
    const unsigned char *p = take(r, n);
    if (len)
        *len = n;
    return p ? xmemdup(p, n) : NULL;
}

/* A field or attribute name as FT.CREATE takes them: 1 to 255 bytes, no NUL. */
static char *get_name(rd *r)
{
    size_t n;
    char *s = get_str(r, &n);
    if (s && (n == 0 || n > 255 || memchr(s, '\0', n)))
        xfree(s), s = NULL;
    return s;
}

static int decode_field(rd *r, ft_def *def, ft_field *f)
{
    f->name = get_name(r);
    f->alias = get_name(r);
    f->type = (int)get_u8(r);
    f->flags = (int)get_u8(r);
    f->sep = ',';
    f->weight = 1;
    switch (f->type) {
    case FTF_TEXT: f->weight = get_f64(r); break;
    case FTF_TAG:
        f->sep = (char)get_u8(r);
        f->slot = def->ntags++;
        break;
    case FTF_NUMERIC: f->slot = def->nnums++; break;
    case FTF_VECTOR:
        f->slot = def->nvecs++;
        f->vp.kind = (int)get_u8(r);
        f->vp.metric = (int)get_u8(r);
        f->vp.dim = get_u32(r);
        f->vp.m = get_u32(r);
        f->vp.ef_construction = get_u32(r);
        f->vp.ef_runtime = get_u32(r);
        f->vp.epsilon = get_f64(r);
        f->vp.initial_cap = get_u32(r);
        f->block_size = get_u32(r);
        size_t flen;
        char *fac = get_str(r, &flen);
        /* IVF has FAISS's factory string (printable ASCII, as FT.CREATE takes it), the
         * other kinds an empty one */
        int fac_ok = fac && (f->vp.kind == VEC_IVF ? flen > 0 && printable(fac, flen) : flen == 0);
        if (fac && flen == 0)
            xfree(fac), fac = NULL;
        f->vp.factory = fac;
        if (!fac_ok)
            return -1;
        if (f->vp.kind < VEC_FLAT || f->vp.kind > VEC_IVF || f->vp.metric < VEC_L2 ||
            f->vp.metric > VEC_COSINE || f->vp.dim == 0 || f->vp.dim > VEC_MAX_DIM)
            return -1;
        break;
    default: return -1;
    }
    return r->bad || !f->name || !f->alias ? -1 : 0;
}

int ft_def_decode(const char *name, size_t nlen, const char *p, size_t len, ft_def *def,
                  char *err, size_t errlen)
{
    memset(def, 0, sizeof *def);
    rd r = {(const unsigned char *)p, len, 0, 0};
    uint32_t crc;
    if (len < 5 || (memcpy(&crc, p + len - 4, 4), crc != crc32c(0, p, len - 4)) ||
        get_u8(&r) != DEF_VERSION)
        goto fail;
    r.len -= 4;
    def->name = xmemdup(name, nlen);
    def->db = (int)get_u8(&r);
    int np = (int)get_u16(&r);
    if (np > FT_MAX_PREFIXES)
        goto fail; /* checked before def counts them: ft_def_free walks what it counts */
    def->prefixes = xcalloc((size_t)np + 1, sizeof(char *));
    def->prefix_lens = xcalloc((size_t)np + 1, sizeof(size_t));
    def->nprefixes = np;
    for (int i = 0; i < np; i++)
        if (!(def->prefixes[i] = get_str(&r, &def->prefix_lens[i])))
            goto fail;
    int n = (int)get_u16(&r);
    if (n < 1 || n > FT_SCHEMA_MAX)
        goto fail;
    def->fields = xcalloc((size_t)n, sizeof *def->fields);
    for (def->nfields = 0; def->nfields < n; def->nfields++)
        if (decode_field(&r, def, &def->fields[def->nfields])) {
            def->nfields++;
            goto fail;
        }
    if (r.bad || r.pos != r.len || def->db < 0 || def->db > 15)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "FT index definition '%.*s' is corrupt", SHOW(name, nlen));
    ft_def_free(def);
    return ERR_CORRUPT;
}

/* ---- snapshot files ---------------------------------------------------------------------- */

void ft_snapshot_path(const char *dir, const char *name, buf *out)
{
    buf_printf(out, "%s/vectors/", dir);
    for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            *s == '-' || *s == '_' || *s == '.')
            buf_appendc(out, (char)*s);
        else
            buf_printf(out, "%%%02X", *s);
    }
    buf_append(out, ".qvi", 5); /* with the NUL */
}

static int sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n == 0 || n >= sizeof dir)
        return 0;
    memcpy(dir, path, n);
    dir[n] = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int ft_file_write(const char *path, const char *p, size_t len, char *err, size_t errlen)
{
    char tmp[4200], dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            goto fail;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto fail;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            goto fail;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        goto fail;
    }
    sync_dir(path);
    return 0;
fail:
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return ERR_IO;
}

int ft_file_read(const char *path, buf *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return ERR_IO;
    }
    buf_reserve(out, (size_t)st.st_size);
    for (;;) {
        buf_reserve(out, 1 << 16);
        ssize_t r = read(fd, out->data + out->len, out->cap - out->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            close(fd);
            return ERR_IO;
        }
        if (r == 0)
            break;
        out->len += (size_t)r;
    }
    close(fd);
    return 0;
}
