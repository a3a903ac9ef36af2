/* fuzz_ftsnap.c: libFuzzer target for what FT reads back at start: the definition record
 * decoder (ft_def_decode, ft.h DEFINITION RECORD) and the snapshot file loader
 * (ft__snapshot_load, ft.h SNAPSHOT FORMAT). The first byte picks which; the rest is the
 * record or file without its last 4 bytes, and the target appends the CRC32C so that
 * mutations reach the fields (the seeds are real records and snapshots, cut the same way).
 *   even: a definition record. It must decode or return ERR_CORRUPT with a printable,
 *         terminated detail; a decoded one must encode back to exactly the same bytes, and
 *         an index made from it (as ft_start does) must come up or be refused with a detail.
 *   odd:  a snapshot file for a fixed index (a FLAT and an HNSW VECTOR field, a TAG, a
 *         NUMERIC). It must load into a fresh index or return ERR_CORRUPT, without
 *         allocating more than its size allows; a loaded one is captured again, and that
 *         capture must load into another fresh index and capture to the very same bytes.
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

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_ftsnap: %s\n", what);
        abort();
    }
}

static void check_detail(const char *err, size_t errlen)
{
    size_t n = strnlen(err, errlen);
    check(n > 0 && n < errlen, "error detail empty or unterminated");
    for (size_t i = 0; i < n; i++)
        check(err[i] >= 0x20 && err[i] < 0x7f, "error detail not printable");
}

/* Frees an index that was never registered. */
static void index_discard(ft_index *ix)
{
    ix->jobs = 0;
    ix->dropped = 1;
    ft__release(ix);
}

static void fuzz_def(const char *rec, size_t len)
{
    ft_def def;
    char err[256];
    memset(err, 'x', sizeof err);
    int rc = ft_def_decode("fuzz", 4, rec, len, &def, err, sizeof err);
    if (rc) {
        check(rc == ERR_CORRUPT, "decode returned a code other than ERR_CORRUPT");
        check_detail(err, sizeof err);
        return;
    }
    buf out;
    buf_init(&out);
    ft_def_encode(&def, &out);
    check(out.len == len && memcmp(out.data, rec, len) == 0, "a decoded record encodes differently");
    buf_free(&out);
    memset(err, 'x', sizeof err);
    ft_index *ix = ft__index_new(&def, err, sizeof err);
    if (ix)
        index_discard(ix);
    else
        check_detail(err, sizeof err);
}

/* The fixed index the snapshots are for (made afresh for each load). */
static ft_index *snapshot_index(void)
{
    const char *argv[] = {"PREFIX", "1", "doc:", "SCHEMA", "v", "VECTOR", "FLAT", "6", "TYPE",
                          "FLOAT32", "DIM", "2", "DISTANCE_METRIC", "L2", "h", "VECTOR",
                          "HNSW", "8", "TYPE", "FLOAT32", "DIM", "3", "DISTANCE_METRIC",
                          "COSINE", "M", "4", "t", "TAG", "n", "NUMERIC"};
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
    return ix;
}

static void fuzz_snapshot(const char *file, size_t len)
{
    ft_index *ix = snapshot_index();
    char err[256];
    int rc = ft__snapshot_load(ix, file, len, err, sizeof err);
    if (rc) {
        check(rc == ERR_CORRUPT, "load returned a code other than ERR_CORRUPT");
        check_detail(err, sizeof err);
        index_discard(ix);
        return;
    }
    buf a, b;
    buf_init(&a);
    buf_init(&b);
    ft__snapshot_capture(ix, &a);
    index_discard(ix);
    ix = snapshot_index();
    check(ft__snapshot_load(ix, a.data, a.len, err, sizeof err) == 0, "its own capture fails");
    ft__snapshot_capture(ix, &b);
    check(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "capture-load-capture differs");
    index_discard(ix);
    buf_free(&a);
    buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = size - 1;
    char *p = malloc(len + 4);
    check(p != NULL, "out of memory");
    if (len)
        memcpy(p, data + 1, len);
    uint32_t crc = crc32c(0, p, len);
    memcpy(p + len, &crc, 4); /* little-endian hosts, as the writers */
    if (data[0] % 2 == 0)
        fuzz_def(p, len + 4);
    else
        fuzz_snapshot(p, len + 4);
    free(p);
    return 0;
}
