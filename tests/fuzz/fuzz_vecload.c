/* fuzz_vecload.c: libFuzzer target for the vector index snapshot loader, vec_load()
 * (index/index.c's envelope, then flat.c's, hnsw.c's or ivf.c's payload, FAISS's bytes for a
 * trained IVF). The input is a snapshot without its last 4 bytes: the target appends the
 * CRC32C, so that mutations get past the checksum to the fields (the seeds are real FLAT,
 * HNSW, untrained and trained IVF snapshots, each cut the same way). A load must succeed or
 * return ERR_CORRUPT with a printable, terminated detail, and allocate no more than the input
 * size allows (libFuzzer's -malloc_limit_mb catches a forged length). A loaded index must be
 * usable and canonical: saved, loaded and saved again it gives the same bytes; its count is
 * its number of ids; a kNN over everything returns each id once, nearest first, each one it
 * contains; and a delete and an add after the load keep it consistent. Any breach aborts. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"
#include "index/index.h"
#include "tests/fuzz/faiss_leaks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CHECKED 4096 /* kNN checks over at most this many vectors */

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_vecload: %s\n", what);
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

/* Saves ix, loads the bytes back and saves again: the two snapshots must be the same. */
static void check_canonical(vec_index *ix)
{
    buf a, b;
    buf_init(&a);
    buf_init(&b);
    check(vec_save(ix, &a) == 0, "a loaded index fails to save");
    vec_index *again;
    char err[256];
    check(vec_load(a.data, a.len, &again, err, sizeof err) == 0, "its own snapshot fails");
    check(vec_count(again) == vec_count(ix), "count changed through save and load");
    check(vec_save(again, &b) == 0, "a reloaded index fails to save");
    check(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "save-load-save differs");
    vec_free(again);
    buf_free(&a);
    buf_free(&b);
}

/* kNN over every vector: each hit contained, no id twice, nearest first. */
static void check_knn(vec_index *ix, const float *q)
{
    size_t count = vec_count(ix), n = 0;
    if (count == 0 || count > MAX_CHECKED)
        return;
    uint32_t k = (uint32_t)count;
    vec_hit *hits = calloc(k, sizeof *hits);
    check(hits != NULL, "out of memory");
    int rc = vec_knn(ix, q, k, k, NULL, hits, &n);
    check(rc == 0, "kNN on a loaded index fails");
    check(n >= 1 && n <= k, "kNN hit count out of range");
    for (size_t i = 0; i < n; i++) {
        check(vec_contains(ix, hits[i].id), "kNN returned an id the index lacks");
        check(!isnan(hits[i].dist), "kNN distance is NaN");
        check(i == 0 || hits[i - 1].dist <= hits[i].dist, "kNN hits not nearest first");
        for (size_t j = 0; j < i; j++)
            check(hits[j].id != hits[i].id, "kNN returned an id twice");
    }
    /* a delete and an add on the loaded structure (HNSW repairs links here) */
    uint32_t id = hits[0].id;
    check(vec_delete(ix, id) == 0, "deleting a contained id fails");
    check(!vec_contains(ix, id) && vec_count(ix) == count - 1, "delete did not take");
    rc = vec_add(ix, id, q);
    check(rc == 0 || rc == ERR_INVAL, "re-adding a deleted id fails"); /* INVAL: COSINE zero */
    if (rc == 0) {
        check(vec_knn(ix, q, k, k, NULL, hits, &n) == 0 && n >= 1, "kNN after an add fails");
        check(vec_count(ix) == count, "count after delete and add");
    }
    free(hits);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *snap = malloc(size + 4);
    check(snap != NULL, "out of memory");
    if (size)
        memcpy(snap, data, size);
    uint32_t crc = crc32c(0, snap, size);
    memcpy(snap + size, &crc, 4); /* little-endian hosts, as the envelope */
    vec_index *ix;
    char err[256];
    memset(err, 'x', sizeof err);
    int rc = vec_load(snap, size + 4, &ix, err, sizeof err);
    free(snap);
    if (rc) {
        check(rc == ERR_CORRUPT, "load returned a code other than ERR_CORRUPT");
        check_detail(err, sizeof err);
        return 0;
    }
    check_canonical(ix);
    const vec_params *p = vec_get_params(ix);
    float *q = calloc(p->dim, sizeof *q);
    check(q != NULL, "out of memory");
    for (uint32_t i = 0; i < p->dim; i++)
        q[i] = (float)(i % 3) + 0.5f;
    check_knn(ix, q);
    free(q);
    vec_free(ix);
    return 0;
}
