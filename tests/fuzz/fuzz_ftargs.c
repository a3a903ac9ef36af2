/* fuzz_ftargs.c: libFuzzer target for the FT.* command arguments beyond the query string
 * (query/ft_def.c, query/cmd_ft.c). The input's first byte picks the parser; the rest is
 * split into arguments at each '\n' (a line-per-argument text that libFuzzer's mutations
 * and dictionary insertions keep well-formed; an argument cannot hold a '\n').
 *   even: FT.CREATE's arguments after the index name (ft_def_parse: ON HASH, PREFIX,
 *         SKIPINITIALSCAN, SCHEMA with TEXT/TAG/NUMERIC/VECTOR FLAT|HNSW|IVF and their
 *         options). A refusal is ERR_INVAL with a non-empty, terminated message. A parsed
 *         definition has fields with names and consistent slots; written as its definition
 *         record, decoded and written again it gives the same bytes; and an index made from
 *         it comes up or is refused with a message.
 *   odd:  FT.SEARCH idx <query> <options...> (ft_search_opts_parse against a fixed index
 *         with a VECTOR, a TAG, a NUMERIC and a TEXT field, then ft_query_parse with the
 *         PARAMS given). A refusal carries a non-empty, terminated message. Parsed options
 *         stay inside the arguments and their limits (LIMIT, RETURN, PARAMS, FILTER on a
 *         NUMERIC field, INKEYS); a query that parses is evaluated, and its matches are
 *         documents of the index.
 * Any breach aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "query/ft.h"
#include "tests/fuzz/faiss_leaks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 4096
#define LIMIT_MAX 1000000 /* cmd_ft.c's */

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_ftargs: %s\n", what);
        abort();
    }
}

static void check_detail(const char *err, size_t errlen)
{
    size_t n = strnlen(err, errlen);
    check(n > 0 && n < errlen, "error detail empty or unterminated");
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

/* ---- FT.CREATE ---- */

static void check_def(const ft_def *def)
{
    int counts[5] = {0};
    check(def->nfields >= 1 && def->nfields <= FT_SCHEMA_MAX, "field count out of range");
    check(def->nprefixes >= 0 && def->nprefixes <= FT_MAX_PREFIXES, "prefix count");
    for (int i = 0; i < def->nfields; i++) {
        const ft_field *f = &def->fields[i];
        check(f->name && f->alias, "a field without a name");
        check(f->type >= FTF_TEXT && f->type <= FTF_VECTOR, "a field of no type");
        if (f->type != FTF_TEXT)
            check(f->slot == counts[f->type]++, "field slots out of order");
        if (f->type == FTF_VECTOR)
            check(f->vp.dim >= 1 && f->vp.dim <= VEC_MAX_DIM &&
                      (f->vp.kind == VEC_IVF) == (f->vp.factory != NULL),
                  "vector parameters inconsistent");
    }
    check(counts[FTF_TAG] == def->ntags && counts[FTF_NUMERIC] == def->nnums &&
              counts[FTF_VECTOR] == def->nvecs, "slot counts differ");
}

static void fuzz_create(const char *p, size_t len)
{
    static const char *argv[MAX_ARGS];
    static size_t lens[MAX_ARGS];
    int argc = split(p, len, argv, lens, 0);
    ft_def def, back;
    int skip;
    char err[512];
    memset(err, 'x', sizeof err);
    int rc = ft_def_parse(argc, argv, lens, &def, &skip, err, sizeof err);
    if (rc) {
        check(rc == ERR_INVAL, "parse returned a code other than ERR_INVAL");
        check_detail(err, sizeof err);
        return;
    }
    def.name = xmemdup("fuzz", 4);
    check_def(&def);
    buf a, b;
    buf_init(&a);
    buf_init(&b);
    ft_def_encode(&def, &a);
    check(ft_def_decode("fuzz", 4, a.data, a.len, &back, err, sizeof err) == 0,
          "a parsed definition's record fails to decode");
    ft_def_encode(&back, &b);
    check(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "record changed through decode");
    ft_def_free(&back);
    buf_free(&a);
    buf_free(&b);
    memset(err, 'x', sizeof err);
    ft_index *ix = ft__index_new(&def, err, sizeof err);
    if (!ix) {
        check_detail(err, sizeof err);
        return;
    }
    ix->jobs = 0;
    ix->dropped = 1;
    ft__release(ix);
}

/* ---- FT.SEARCH ---- */

static ft_index *search_index(void)
{
    const char *argv[] = {"SCHEMA", "v", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", "2",
                          "DISTANCE_METRIC", "L2", "t", "TAG", "n", "NUMERIC", "SORTABLE",
                          "title", "TEXT"};
    enum { ARGC = sizeof argv / sizeof argv[0] };
    size_t lens[ARGC];
    for (int i = 0; i < ARGC; i++)
        lens[i] = strlen(argv[i]);
    ft_def def;
    int skip;
    char err[256];
    check(ft_def_parse(ARGC, argv, lens, &def, &skip, err, sizeof err) == 0, err);
    def.name = xmemdup("fuzz", 4);
    ft_index *ix = ft__index_new(&def, err, sizeof err);
    check(ix != NULL, err);
    for (uint32_t id = 0; id < 5; id++) {
        char key[16];
        snprintf(key, sizeof key, "doc:%u", id);
        check(ft__doc_put(ix, id, key, strlen(key)) == 0, "doc_put");
    }
    return ix;
}

/* s is one of the arguments (a pointer into them, or past a leading '@'). */
static int inside(const char *s, size_t len, int argc, const char **argv, const size_t *lens)
{
    for (int i = 0; i < argc; i++)
        if (s >= argv[i] && s + len <= argv[i] + lens[i])
            return 1;
    return 0;
}

static void check_opts(const ft_search_opts *o, int argc, const char **argv, const size_t *lens)
{
    check(o->offset >= 0 && o->offset <= LIMIT_MAX && o->num >= 0 && o->num <= LIMIT_MAX,
          "LIMIT out of range");
    check(o->nreturn >= -1 && o->nreturn <= 1024, "RETURN count out of range");
    for (int i = 0; i < o->nreturn; i++)
        check(inside(o->ret[i].name, o->ret[i].nlen, argc, argv, lens) &&
                  inside(o->ret[i].as, o->ret[i].aslen, argc, argv, lens),
              "RETURN names outside the arguments");
    check(!o->sortby || inside(o->sortby, o->sortlen, argc, argv, lens), "SORTBY outside");
    check(o->nfilters >= 0 && o->nfilters <= 8, "FILTER count out of range");
    for (int i = 0; i < o->nfilters; i++)
        check(o->filters[i].f && o->filters[i].f->type == FTF_NUMERIC, "FILTER on a non-NUMERIC");
    check(o->params.n >= 0 && 2 * o->params.n <= argc, "PARAMS count out of range");
    for (int i = 0; i < o->params.n; i++)
        check(inside(o->params.names[i], o->params.nlens[i], argc, argv, lens) &&
                  inside(o->params.vals[i], o->params.vlens[i], argc, argv, lens),
              "PARAMS outside the arguments");
    check(o->inkeys_at == 0 || (o->inkeys_at >= 3 && o->ninkeys >= 0 &&
                                o->inkeys_at + o->ninkeys <= argc),
          "INKEYS outside the arguments");
}

static void fuzz_search(const char *p, size_t len)
{
    static ft_index *ix;
    static const char *argv[MAX_ARGS];
    static size_t lens[MAX_ARGS];
    if (!ix)
        ix = search_index();
    argv[0] = "FT.SEARCH";
    lens[0] = 9;
    argv[1] = "fuzz";
    lens[1] = 4;
    int argc = split(p, len, argv, lens, 2);
    ft_search_opts o;
    char err[512];
    memset(err, 'x', sizeof err);
    if (ft_search_opts_parse(ix, argc, argv, lens, &o, err, sizeof err) != 0) {
        check_detail(err, sizeof err);
        ft_search_opts_free(&o);
        return;
    }
    check_opts(&o, argc, argv, lens);
    ft_query q;
    memset(err, 'x', sizeof err);
    if (ft_query_parse(ix, argv[2], lens[2], &o.params, &q, err, sizeof err) != 0) {
        check_detail(err, sizeof err);
        ft_search_opts_free(&o);
        return;
    }
    size_t words = ft_bitmap_words(ix);
    uint64_t *bits = calloc(words + 1, 8);
    check(bits != NULL, "out of memory");
    if (ft_query_eval(ix, &q, bits, err, sizeof err) == 0) {
        const uint64_t *live = ft_live(ix);
        for (size_t w = 0; w < words; w++)
            check((bits[w] & ~live[w]) == 0, "a match that is not a live document");
    }
    free(bits);
    ft_query_free(&q);
    ft_search_opts_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] % 2 == 0)
        fuzz_create((const char *)data + 1, size - 1);
    else
        fuzz_search((const char *)data + 1, size - 1);
    return 0;
}
