/* fuzz_fsargs.c: libFuzzer target for the FS.* command arguments that parse a client's
 * bytes (query/cmd_fs.c, store/values.c). The input's first byte picks the parser; the rest
 * is split into arguments at each '\n' (a line-per-argument text that libFuzzer's byte
 * mutations and dictionary insertions keep well-formed; an argument cannot hold a '\n').
 *   0: FS.VIEW.CREATE <lines...> (fs_view_spec_parse). A refusal carries a non-empty,
 *      terminated message. A parsed spec has entities, fields of known types and vector
 *      options in range; printed back as a canonical FS.VIEW.CREATE argument list it must
 *      parse to the same spec (parse-print-parse).
 *   1: FS.PUSH's FIELDS <field> <value> pairs against a fixed view with a field of every
 *      type (fs_push_row). A refusal carries a terminated message; a row must decode, each
 *      pushed field holding the value its text parses to, every other field NULL.
 *   2: timestamps, one per line (store_parse_ts: epoch milliseconds or ISO-8601). A refusal
 *      carries a printable, terminated message; a parsed instant formats as ISO-8601 that
 *      parses back to the same instant.
 * Any breach aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"
#include "query/fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 4096

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_fsargs: %s\n", what);
        abort();
    }
}

/* Non-empty and terminated; printable too when the message cannot echo a client's bytes. */
static void check_detail(const char *err, size_t errlen, int printable)
{
    size_t n = strnlen(err, errlen);
    check(n > 0 && n < errlen, "error detail empty or unterminated");
    for (size_t i = 0; printable && i < n; i++)
        check(err[i] >= 0x20 && err[i] < 0x7f, "error detail not printable");
}

/* Splits p at '\n' after the first skip slots of argv (already set); returns argc. */
static int split(const char *p, size_t len, const char **argv, size_t *lens, int skip)
{
    int argc = skip;
    size_t start = 0;
    for (size_t i = 0; i <= len && argc < MAX_ARGS; i++)
        if (i == len || p[i] == '\n') {
            argv[argc] = p + start;
            lens[argc++] = i - start;
            start = i + 1;
        }
    return argc;
}

/* ---- FS.VIEW.CREATE ---- */

static void check_spec(const store_view *v)
{
    check(v->name && v->nentities >= 1 && v->nfields >= 1, "a parsed spec without parts");
    check(v->online == 0 || v->online == 1, "ONLINE not 0 or 1");
    check(v->ttl_us >= 0 && v->retention_us >= 0, "a negative TTL or RETENTION");
    for (int i = 0; i < v->nfields; i++) {
        const store_field *f = &v->fields[i];
        check(f->name && f->type.type >= FT_INT32 && f->type.type <= FT_VECTOR, "a bad field");
        if (f->type.type == FT_VECTOR)
            check(f->type.dim >= 1 && f->type.dim <= FT_MAX_VECTOR_DIM && f->m >= 2 &&
                      f->m <= 512 && f->ef_construction >= 1 && f->ef_construction <= 4096 &&
                      f->metric >= STORE_METRIC_L2 && f->metric <= STORE_METRIC_COSINE &&
                      f->vindex >= STORE_VINDEX_NONE && f->vindex <= STORE_VINDEX_FLAT,
                  "vector options out of range");
    }
}

/* An argument list being written: the bytes in b, each argument's offset and length. */
typedef struct printed {
    buf b;
    size_t offs[MAX_ARGS], lens[MAX_ARGS];
    int n;
} printed;

static void put(printed *pr, const char *s)
{
    pr->offs[pr->n] = pr->b.len;
    pr->lens[pr->n++] = strlen(s);
    buf_append(&pr->b, s, strlen(s));
}

static void put_num(printed *pr, long long v)
{
    char text[24];
    snprintf(text, sizeof text, "%lld", v);
    put(pr, text);
}

/* The canonical argument list of spec: every option written out. */
static void print_spec(const store_view *v, printed *pr)
{
    static const char *metrics[] = {"", "L2", "IP", "COSINE"};
    static const char *indexes[] = {"NONE", "HNSW", "FLAT"};
    put(pr, "FS.VIEW.CREATE");
    put(pr, v->name);
    put(pr, "ENTITIES");
    put_num(pr, v->nentities);
    for (int i = 0; i < v->nentities; i++)
        put(pr, v->entities[i]);
    put(pr, "TTL");
    put_num(pr, v->ttl_us / 1000000);
    put(pr, "RETENTION");
    put_num(pr, v->retention_us / 1000000);
    put(pr, "ONLINE");
    put(pr, v->online ? "YES" : "NO");
    put(pr, "SCHEMA");
    for (int i = 0; i < v->nfields; i++) {
        const store_field *f = &v->fields[i];
        put(pr, f->name);
        put(pr, store_ftype_name(f->type.type));
        if (f->type.type != FT_VECTOR)
            continue;
        put_num(pr, f->type.dim);
        put(pr, "METRIC");
        put(pr, metrics[f->metric]);
        put(pr, "INDEX");
        put(pr, indexes[f->vindex]);
        put(pr, "M");
        put_num(pr, f->m);
        put(pr, "EF_CONSTRUCTION");
        put_num(pr, f->ef_construction);
    }
}

static void same_spec(const store_view *a, const store_view *b)
{
    check(strcmp(a->name, b->name) == 0 && a->nentities == b->nentities &&
              a->nfields == b->nfields && a->ttl_us == b->ttl_us &&
              a->retention_us == b->retention_us && a->online == b->online,
          "spec changed through print and parse");
    for (int i = 0; i < a->nentities; i++)
        check(strcmp(a->entities[i], b->entities[i]) == 0, "entity changed");
    for (int i = 0; i < a->nfields; i++) {
        const store_field *f = &a->fields[i], *g = &b->fields[i];
        check(strcmp(f->name, g->name) == 0 && f->type.type == g->type.type &&
                  f->type.dim == g->type.dim && f->metric == g->metric &&
                  f->vindex == g->vindex && f->m == g->m &&
                  f->ef_construction == g->ef_construction,
              "field changed through print and parse");
    }
}

static void fuzz_view_create(const char *p, size_t len)
{
    static const char *argv[MAX_ARGS + 1];
    static size_t lens[MAX_ARGS + 1];
    argv[0] = "FS.VIEW.CREATE";
    lens[0] = 14;
    int argc = split(p, len, argv, lens, 1);
    store_view spec, again;
    char err[512];
    memset(err, 'x', sizeof err);
    if (fs_view_spec_parse(argc, argv, lens, &spec, err, sizeof err) != 0) {
        check_detail(err, sizeof err, 0);
        fs_view_spec_free(&spec);
        return;
    }
    check_spec(&spec);
    /* every whole second of TTL and RETENTION, so the printed form is exact */
    check(spec.ttl_us % 1000000 == 0 && spec.retention_us % 1000000 == 0, "partial seconds");
    if (spec.nentities + spec.nfields * 12 + 12 > MAX_ARGS) { /* too many to print */
        fs_view_spec_free(&spec);
        return;
    }
    static printed pr;
    static const char *pargv[MAX_ARGS];
    buf_init(&pr.b);
    pr.n = 0;
    print_spec(&spec, &pr);
    for (int i = 0; i < pr.n; i++)
        pargv[i] = pr.b.data + pr.offs[i]; /* pr.b has stopped growing */
    check(fs_view_spec_parse(pr.n, pargv, pr.lens, &again, err, sizeof err) == 0,
          "a printed spec fails to parse");
    same_spec(&spec, &again);
    fs_view_spec_free(&again);
    fs_view_spec_free(&spec);
    buf_free(&pr.b);
}

/* ---- FS.PUSH FIELDS ---- */

enum { NFIELDS = 9 };
static store_field fields[NFIELDS] = {
    {.name = "i32", .type = {FT_INT32, 0}},    {.name = "i64", .type = {FT_INT64, 0}},
    {.name = "f32", .type = {FT_FLOAT32, 0}},  {.name = "f64", .type = {FT_FLOAT64, 0}},
    {.name = "ok", .type = {FT_BOOL, 0}},      {.name = "city", .type = {FT_STRING, 0}},
    {.name = "raw", .type = {FT_BYTES, 0}},    {.name = "seen", .type = {FT_TIMESTAMP, 0}},
    {.name = "emb", .type = {FT_VECTOR, 2}},
};
static store_ftype schema[NFIELDS];
static const store_view view = {.name = "v", .nfields = NFIELDS, .fields = fields,
                                .schema = schema};

static void same_value(const store_ftype *t, const store_fvalue *a, const store_fvalue *b)
{
    check(a->is_null == b->is_null, "NULL flag differs");
    if (t->type == FT_STRING || t->type == FT_BYTES || t->type == FT_VECTOR)
        check(a->len == b->len && (a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0),
              "bytes differ");
    else if (t->type == FT_FLOAT32 || t->type == FT_FLOAT64)
        check(memcmp(&a->f, &b->f, sizeof a->f) == 0, "float differs");
    else
        check(a->i == b->i, "integer differs");
}

static void fuzz_push(const char *p, size_t len)
{
    static const char *argv[MAX_ARGS];
    static size_t lens[MAX_ARGS];
    for (int k = 0; k < NFIELDS; k++)
        schema[k] = fields[k].type;
    int argc = split(p, len, argv, lens, 0) & ~1; /* the handler passes pairs */
    buf row;
    buf_init(&row);
    char err[512];
    memset(err, 'x', sizeof err);
    if (fs_push_row(&view, argc, argv, lens, &row, err, sizeof err) != 0) {
        check_detail(err, sizeof err, 0);
        buf_free(&row);
        return;
    }
    store_fvalue got[NFIELDS];
    check(store_row_decode(schema, NFIELDS, row.data, row.len, got) == 0, "row fails to decode");
    int pushed[NFIELDS] = {0};
    for (int i = 0; i < argc; i += 2) {
        int k = store_view_field(&view, argv[i], lens[i]);
        check(k >= 0 && !pushed[k], "an unknown or repeated field was accepted");
        pushed[k] = 1;
        store_fvalue want;
        check(store_parse_value(&schema[k], argv[i + 1], lens[i + 1], &want, err, sizeof err) == 0,
              "an accepted value fails to parse");
        same_value(&schema[k], &want, &got[k]);
    }
    for (int k = 0; k < NFIELDS; k++)
        check(pushed[k] || got[k].is_null, "a field not pushed is not NULL");
    buf_free(&row);
}

/* ---- timestamps ---- */

#define TS_MIN (-62167219200000000LL) /* 0000-01-01T00:00:00Z */
#define TS_MAX 253402300799999999LL   /* 9999-12-31T23:59:59.999999Z */

static void fuzz_ts(const char *p, size_t len)
{
    static const char *argv[MAX_ARGS];
    static size_t lens[MAX_ARGS];
    int argc = split(p, len, argv, lens, 0);
    for (int i = 0; i < argc; i++) {
        char err[128], text[32];
        int64_t us, back;
        memset(err, 'x', sizeof err);
        if (store_parse_ts(argv[i], lens[i], &us, err, sizeof err) != 0) {
            check_detail(err, sizeof err, 1);
            continue;
        }
        size_t n = store_format_ts(us, text);
        check(n < sizeof text && text[n] == '\0' && text[n - 1] == 'Z', "bad formatted ts");
        if (us < TS_MIN || us > TS_MAX)
            continue; /* formatted with a year ISO-8601 cannot write in four digits */
        check(store_parse_ts(text, n, &back, err, sizeof err) == 0, "formatted ts fails");
        check(back == us, "timestamp changed through format and parse");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    switch (data[0] % 3) {
    case 0: fuzz_view_create(p, size - 1); break;
    case 1: fuzz_push(p, size - 1); break;
    default: fuzz_ts(p, size - 1); break;
    }
    return 0;
}
