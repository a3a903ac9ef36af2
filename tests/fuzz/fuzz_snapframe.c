/* fuzz_snapframe.c: libFuzzer target for what a replica parses of a full-sync snapshot
 * (replication/repl.h SNAPSHOT FORMAT): frames cut from a byte stream by frame_get, and the
 * records of a RECORDS payload by frame_record. The first byte picks the mode:
 *   0: the rest is a stream of frames as received (CRCs as given);
 *   1: the rest is a payload: it is framed here (the CRC made right, so that mutations reach
 *      the lengths and records) and then parsed like mode 0.
 * A frame must be refused (-1), incomplete (1) or parsed with every part inside the input,
 * and a parsed frame must encode back to exactly its bytes; records must lie inside their
 * payload and account for all of it. Any breach aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replication/repl_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_snapframe: %s\n", what);
        abort();
    }
}

static void walk_records(const char *p, size_t n)
{
    const char *end = p + n, *k, *v;
    size_t kl, vl;
    int rc;
    for (const char *at = p; (rc = frame_record(&p, &n, &k, &kl, &v, &vl)) == 0; at = p)
        check(k == at + 4 && v == k + kl + 4 && v + vl == p && p <= end,
              "a record outside its payload");
    check(rc == -1 || (rc == 1 && p == end), "records that do not end at the payload's end");
}

static void walk_frames(const char *p, size_t len)
{
    buf again;
    buf_init(&again);
    while (len > 0) {
        int type;
        const char *name, *payload;
        size_t nlen, plen, size;
        int rc = frame_get(p, len, &type, &name, &nlen, &payload, &plen, &size);
        if (rc != 0)
            break;
        check(size <= len && name >= p && payload + plen <= p + size, "a frame outside input");
        again.len = 0;
        frame_put(&again, type, name, nlen, payload, plen);
        check(again.len == size && memcmp(again.data, p, size) == 0,
              "a frame that re-encodes differently");
        if (type == FRAME_RECORDS)
            walk_records(payload, plen);
        p += size;
        len -= size;
    }
    buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] % 2 == 0) {
        walk_frames(p, n);
        return 0;
    }
    buf f;
    buf_init(&f);
    frame_put(&f, FRAME_RECORDS, "keys", 4, p, n > REPL_FRAME_MAX ? REPL_FRAME_MAX : n);
    walk_frames(f.data, f.len);
    buf_free(&f);
    return 0;
}
