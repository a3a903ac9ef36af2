/* fuzz_filter.c: libFuzzer target for FS.KNN's filter expressions (query/fs_filter.c). The
 * input is an expression over a fixed view with one field of every type. Parsing must
 * return 0, ERR_INVAL or ERR_LIMIT, with a printable, terminated detail that gives the
 * offset of the fault inside the input; a parsed filter is matched against rows of NULLs,
 * zeros and ordinary values, each answer 0 or 1, and on rows without NULLs "not (E)" must
 * answer the opposite of E (when the wrapped expression is within the limits). Any breach
 * aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "query/fs_filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { NFIELDS = 10 };
static store_field fields[NFIELDS] = {
    {.name = "i32", .type = {FT_INT32, 0}},    {.name = "i64", .type = {FT_INT64, 0}},
    {.name = "rate", .type = {FT_FLOAT32, 0}}, {.name = "f64", .type = {FT_FLOAT64, 0}},
    {.name = "active", .type = {FT_BOOL, 0}},  {.name = "city", .type = {FT_STRING, 0}},
    {.name = "raw", .type = {FT_BYTES, 0}},    {.name = "seen", .type = {FT_TIMESTAMP, 0}},
    {.name = "emb", .type = {FT_VECTOR, 2}},   {.name = "a:b", .type = {FT_INT64, 0}},
};
static const store_view view = {.name = "v", .nfields = NFIELDS, .fields = fields};

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_filter: %s\n", what);
        abort();
    }
}

static void check_detail(int rc, const char *err, size_t errlen, size_t size)
{
    check(rc == ERR_INVAL || rc == ERR_LIMIT, "parse returned an unexpected code");
    size_t n = strnlen(err, errlen);
    check(n > 0 && n < errlen, "error detail empty or unterminated");
    for (size_t i = 0; i < n; i++)
        check(err[i] >= 0x20 && err[i] < 0x7f, "error detail not printable");
    unsigned long long off;
    if (sscanf(err, "at offset %llu:", &off) == 1)
        check(off <= size, "error offset past the input");
    else
        check(strncmp(err, "expression longer", 17) == 0, "error detail without an offset");
}

/* The rows a filter is matched against: all NULL, zeros and empties, ordinary values. */
static void rows(store_fvalue r[3][NFIELDS])
{
    memset(r, 0, 3 * NFIELDS * sizeof r[0][0]);
    for (int k = 0; k < NFIELDS; k++) {
        r[0][k].is_null = 1;
        r[1][k].bytes = "";
        r[2][k].bytes = "Paris";
        r[2][k].len = 5;
        r[2][k].i = 7;
        r[2][k].f = 0.5;
    }
    r[2][4].i = 1; /* a BOOL is 0 or 1 */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fs_filter *f;
    char err[256];
    int rc = fs_filter_parse((const char *)data, size, &view, &f, err, sizeof err);
    if (rc) {
        check(f == NULL, "a refused expression left a filter");
        check_detail(rc, err, sizeof err, size);
        return 0;
    }
    store_fvalue r[3][NFIELDS];
    rows(r);
    int m[3];
    for (int i = 0; i < 3; i++) {
        m[i] = fs_filter_match(f, r[i]);
        check(m[i] == 0 || m[i] == 1, "match is not 0 or 1");
    }
    fs_filter_free(f);
    char *wrapped = malloc(size + 6);
    check(wrapped != NULL, "out of memory");
    memcpy(wrapped, "not (", 5);
    memcpy(wrapped + 5, data, size);
    wrapped[size + 5] = ')';
    if (fs_filter_parse(wrapped, size + 6, &view, &f, err, sizeof err) == 0) {
        for (int i = 1; i < 3; i++)
            check(fs_filter_match(f, r[i]) == !m[i], "not (E) agrees with E");
        fs_filter_free(f);
    }
    free(wrapped);
    return 0;
}
