/* fuzz_resp.c: libFuzzer target for the RESP request parser. Each input is parsed as a
 * stream of commands three ways: all bytes at once, in chunks whose size the first byte
 * picks, and one byte at a time; the caller drops consumed bytes and moves the rest, as a
 * connection does. All three must yield the same commands and the same final outcome, under
 * the default limits and under small limits that make every limit reachable. Any
 * difference, or a result that breaks the header's promises, aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/util.h"
#include "wire/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What one way of feeding produced: every command serialized, then the final outcome. */
typedef struct outcome {
    buf cmds;
    int rc;
    const char *err;
    size_t want;
} outcome;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_resp: %s\n", what);
        abort();
    }
}

static void record(outcome *o, const resp_parser *p, const char *held, size_t consumed,
                   const resp_limits *lim)
{
    check(consumed > 0, "RESP_OK consumed nothing");
    check(p->argc >= 0 && p->argc <= lim->max_args, "argc out of range");
    buf_append(&o->cmds, &consumed, sizeof consumed);
    buf_append(&o->cmds, &p->argc, sizeof p->argc);
    for (int i = 0; i < p->argc; i++) {
        check(p->argv_off[i] + p->argv_len[i] <= consumed, "argument outside the command");
        buf_append(&o->cmds, &p->argv_len[i], sizeof p->argv_len[i]);
        buf_append(&o->cmds, held + p->argv_off[i], p->argv_len[i]);
    }
}

/* Feeds data chunk bytes at a time into a buffer the way a connection would. */
static void run(const uint8_t *data, size_t size, size_t chunk, const resp_limits *lim,
                outcome *o)
{
    char *held = xmalloc(size + 1);
    size_t have = 0, fed = 0;
    resp_parser p;
    resp_parser_init(&p);
    buf_init(&o->cmds);
    for (;;) {
        size_t consumed;
        o->rc = resp_parse(&p, held, have, lim, &consumed);
        check(p.cap <= lim->max_args, "argument arrays beyond max_args");
        if (o->rc == RESP_OK) {
            record(o, &p, held, consumed, lim);
            check(consumed <= have, "consumed more than given");
            memmove(held, held + consumed, have - consumed);
            have -= consumed;
            continue;
        }
        check(consumed == 0, "consumed set without a command");
        if (o->rc != RESP_NEED_MORE || fed == size)
            break;
        size_t n = size - fed < chunk ? size - fed : chunk;
        memcpy(held + have, data + fed, n);
        have += n;
        fed += n;
    }
    if (o->rc == RESP_ERR || o->rc == RESP_CLOSE) {
        size_t consumed;
        check(resp_parse(&p, held, have, lim, &consumed) == o->rc, "failure did not stick");
    }
    o->err = p.err;
    o->want = resp_parse_want(&p, have);
    if (o->rc == RESP_ERR)
        check(o->err && strncmp(o->err, "Protocol error: ", 16) == 0, "bad error message");
    else
        check(o->err == NULL, "error message without RESP_ERR");
    if (o->rc == RESP_NEED_MORE)
        check(have <= lim->max_buffered, "holding more than max_buffered");
    resp_parser_free(&p);
    xfree(held);
}

static void same(const outcome *a, const outcome *b)
{
    check(a->cmds.len == b->cmds.len, "different commands");
    check(a->cmds.len == 0 || memcmp(a->cmds.data, b->cmds.data, a->cmds.len) == 0,
          "different commands");
    check(a->rc == b->rc, "different outcome");
    check(a->err == b->err || (a->err && b->err && strcmp(a->err, b->err) == 0),
          "different error");
    check(a->want == b->want, "different resp_parse_want");
}

static void run_all_ways(const uint8_t *data, size_t size, const resp_limits *lim)
{
    size_t chunk = size ? (size_t)(data[0] & 0x3f) + 1 : 1;
    outcome whole, chunked, bytes;
    run(data, size, size ? size : 1, lim, &whole);
    run(data, size, chunk, lim, &chunked);
    run(data, size, 1, lim, &bytes);
    same(&whole, &chunked);
    same(&whole, &bytes);
    buf_free(&whole.cmds);
    buf_free(&chunked.cmds);
    buf_free(&bytes.cmds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    resp_limits lim = {
        .max_inline = RESP_DEFAULT_MAX_INLINE,
        .max_bulk = RESP_DEFAULT_MAX_BULK,
        .max_args = RESP_DEFAULT_MAX_ARGS,
        .max_buffered = (size_t)1 << 30,
    };
    run_all_ways(data, size, &lim);

    /* Small limits so that each is reachable: bits of the second byte pick their sizes,
     * bit 6 of the first byte whether the client is unauthenticated. */
    unsigned knob = size > 1 ? data[1] : 0;
    lim.max_args = 1 + (knob & 7);
    lim.max_bulk = 4 + 16 * ((knob >> 3) & 3);
    lim.max_inline = (size_t)16 << ((knob >> 5) & 1);
    lim.max_buffered = (size_t)24 << ((knob >> 6) & 3);
    lim.unauthenticated = size > 0 && (data[0] & 0x40);
    run_all_ways(data, size, &lim);
    return 0;
}
