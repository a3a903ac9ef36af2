/* fuzz_ftquery.c: libFuzzer target for FT.SEARCH's query language (query/ft_query.c). The
 * input is a query string against a fixed index (a 2-dim FLAT VECTOR, a TAG, a NUMERIC and
 * a TEXT field) holding a few documents, with PARAMS vec (a 2-float blob), short (4 bytes),
 * K, lo and tag. Parsing must return 0 or ERR_INVAL with a printable, terminated detail; a
 * parsed query is evaluated, and its matches must be documents of the index. Any breach
 * aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "query/ft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_ftquery: %s\n", what);
        abort();
    }
}

static ft_index *make_index(void)
{
    const char *argv[] = {"SCHEMA", "v", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", "2",
                          "DISTANCE_METRIC", "L2", "t", "TAG", "n", "NUMERIC", "title", "TEXT"};
    int argc = (int)(sizeof argv / sizeof argv[0]);
    size_t lens[sizeof argv / sizeof argv[0]];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    ft_def def;
    int skip;
    char err[256];
    check(ft_def_parse(argc, argv, lens, &def, &skip, err, sizeof err) == 0, err);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ft_index *ix;
    if (!ix)
        ix = make_index();
    static const float vec[2] = {1, 2};
    const char *names[] = {"vec", "short", "K", "lo", "tag"};
    const char *vals[] = {(const char *)vec, "abcd", "3", "(1", "a"};
    size_t nl[] = {3, 5, 1, 2, 3}, vl[] = {8, 4, 1, 2, 1};
    ft_params params = {5, names, vals, nl, vl};
    ft_query q;
    char err[256];
    int rc = ft_query_parse(ix, (const char *)data, size, &params, &q, err, sizeof err);
    if (rc) {
        check(rc == ERR_INVAL, "parse returned an unexpected code");
        size_t n = strnlen(err, sizeof err);
        check(n > 0 && n < sizeof err, "error detail empty or unterminated");
        return 0;
    }
    check(q.root != NULL, "a parsed query without a filter");
    check(!q.has_knn || (q.k >= 1 && q.k <= VEC_MAX_K && q.knn_vec && q.score_name),
          "a KNN clause incomplete");
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
    return 0;
}
