/* test_resp.c: unit tests for the RESP request parser (wire/resp_parse.c): both request
 * forms, byte-by-byte resumption, long pipelines, inline quoting, every protocol error and
 * limit, the HTTP guard and resp_parse_want. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/resp.h"

#define S(lit) lit, sizeof(lit) - 1 /* a string literal and its length, NULs included */

static const resp_limits DEFAULT_LIMITS = {
    .max_inline = RESP_DEFAULT_MAX_INLINE,
    .max_bulk = RESP_DEFAULT_MAX_BULK,
    .max_args = RESP_DEFAULT_MAX_ARGS,
    .max_buffered = (size_t)1 << 30,
};

static const resp_limits UNAUTH_LIMITS = {
    .max_inline = RESP_DEFAULT_MAX_INLINE,
    .max_bulk = 16 * 1024,
    .max_args = 10,
    .max_buffered = 1024 * 1024,
    .unauthenticated = 1,
};

/* One parse of a fresh copy of the input; the copy stays alive for the arguments. */
typedef struct parse {
    resp_parser p;
    char *buf;
    size_t len, consumed;
    int rc;
} parse;

static void parse_with(parse *t, const char *in, size_t len, const resp_limits *lim)
{
    resp_parser_init(&t->p);
    t->buf = malloc(len + 1);
    assert_non_null(t->buf);
    memcpy(t->buf, in, len);
    t->len = len;
    t->rc = resp_parse(&t->p, t->buf, len, lim, &t->consumed);
}

static void parse_done(parse *t)
{
    resp_parser_free(&t->p);
    free(t->buf);
}

static void assert_arg(const resp_parser *p, const char *buf, int i, const char *want,
                       size_t want_len)
{
    assert_true(i < p->argc);
    assert_int_equal(p->argv_len[i], want_len);
    assert_memory_equal(buf + p->argv_off[i], want, want_len);
}

/* Parses one whole command and checks its arguments, given as NUL-terminated strings. */
static void expect_command(const char *in, size_t len, int argc, ...)
{
    parse t;
    parse_with(&t, in, len, &DEFAULT_LIMITS);
    assert_int_equal(t.rc, RESP_OK);
    assert_int_equal(t.consumed, len);
    assert_int_equal(t.p.argc, argc);
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) {
        const char *want = va_arg(ap, const char *);
        assert_arg(&t.p, t.buf, i, want, strlen(want));
    }
    va_end(ap);
    parse_done(&t);
}

static void expect_error_with(const char *in, size_t len, const resp_limits *lim, const char *msg)
{
    parse t;
    parse_with(&t, in, len, lim);
    assert_int_equal(t.rc, RESP_ERR);
    assert_non_null(t.p.err);
    assert_string_equal(t.p.err, msg);
    assert_int_equal(t.consumed, 0);
    parse_done(&t);
}

static void expect_error(const char *in, size_t len, const char *msg)
{
    expect_error_with(in, len, &DEFAULT_LIMITS, msg);
}

static void test_multibulk_simple(void **state)
{
    (void)state;
    expect_command(S("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"), 3, "SET", "key", "value");
    expect_command(S("*1\r\n$4\r\nPING\r\n"), 1, "PING");
}

static void test_binary_and_empty_args(void **state)
{
    (void)state;
    parse t;
    parse_with(&t, S("*4\r\n$0\r\n\r\n$5\r\na\0\r\nb\r\n$2\r\n\xff\xfe\r\n$0\r\n\r\n"),
               &DEFAULT_LIMITS);
    assert_int_equal(t.rc, RESP_OK);
    assert_int_equal(t.consumed, t.len);
    assert_int_equal(t.p.argc, 4);
    assert_arg(&t.p, t.buf, 0, "", 0);
    assert_arg(&t.p, t.buf, 1, "a\0\r\nb", 5);
    assert_arg(&t.p, t.buf, 2, "\xff\xfe", 2);
    assert_arg(&t.p, t.buf, 3, "", 0);
    parse_done(&t);
}

static void test_empty_commands(void **state)
{
    (void)state;
    expect_command(S("*0\r\n"), 0);
    expect_command(S("*-1\r\n"), 0);
    expect_command(S("\r\n"), 0);
    expect_command(S("\n"), 0);
    expect_command(S("   \t \r\n"), 0);
}

static void test_only_first_command_consumed(void **state)
{
    (void)state;
    parse t;
    parse_with(&t, S("*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nEC"), &DEFAULT_LIMITS);
    assert_int_equal(t.rc, RESP_OK);
    assert_int_equal(t.consumed, 14);
    assert_int_equal(t.p.argc, 1);
    assert_arg(&t.p, t.buf, 0, S("PING"));
    parse_done(&t);
}

/* A pipeline fed one byte more on each call, the way a slow socket delivers it. */
static void test_byte_by_byte_pipeline(void **state)
{
    (void)state;
    char big[201];
    memset(big, 'v', 200);
    big[200] = '\0';
    char third[256];
    snprintf(third, sizeof third, "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$200\r\n%s\r\n", big);
    const char *cmds[] = {"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "SET \"a b\" 'c'\r\n", "*0\r\n", third,
                          "PING\n"};
    char in[512] = "";
    size_t ends[5];
    for (int i = 0; i < 5; i++) {
        strcat(in, cmds[i]);
        ends[i] = strlen(in);
    }
    resp_parser p;
    resp_parser_init(&p);
    size_t start = 0;
    for (int cmd = 0; cmd < 5; cmd++) {
        size_t last_pos = 0;
        for (size_t len = 0; start + len < ends[cmd]; len++) {
            size_t consumed = 99;
            int rc = resp_parse(&p, in + start, len, &DEFAULT_LIMITS, &consumed);
            assert_int_equal(rc, RESP_NEED_MORE);
            assert_int_equal(consumed, 0);
            assert_true(p.pos >= last_pos); /* resumes, never scans backwards */
            assert_true(p.pos <= len);
            last_pos = p.pos;
        }
        size_t consumed;
        int rc = resp_parse(&p, in + start, ends[cmd] - start, &DEFAULT_LIMITS, &consumed);
        assert_int_equal(rc, RESP_OK);
        assert_int_equal(consumed, ends[cmd] - start);
        switch (cmd) {
        case 0:
            assert_int_equal(p.argc, 2);
            assert_arg(&p, in + start, 0, S("GET"));
            assert_arg(&p, in + start, 1, S("k"));
            break;
        case 1:
            assert_int_equal(p.argc, 3);
            assert_arg(&p, in + start, 0, S("SET"));
            assert_arg(&p, in + start, 1, S("a b"));
            assert_arg(&p, in + start, 2, S("c"));
            break;
        case 2: assert_int_equal(p.argc, 0); break;
        case 3:
            assert_int_equal(p.argc, 3);
            assert_arg(&p, in + start, 1, S(""));
            assert_arg(&p, in + start, 2, big, 200);
            break;
        case 4:
            assert_int_equal(p.argc, 1);
            assert_arg(&p, in + start, 0, S("PING"));
            break;
        }
        start += consumed;
    }
    resp_parser_free(&p);
}

/* The caller may move the bytes between calls, and bytes already scanned are not read
 * again: overwriting the parsed header does not disturb the rest of the command. */
static void test_resume_skips_scanned_bytes(void **state)
{
    (void)state;
    resp_parser p;
    resp_parser_init(&p);
    char first[] = "*2\r\n$3\r\nGET\r\n$5\r\nhel";
    size_t consumed;
    assert_int_equal(resp_parse(&p, first, strlen(first), &DEFAULT_LIMITS, &consumed),
                     RESP_NEED_MORE);
    char moved[] = "#################hello\r\n";
    assert_int_equal(strlen(first), 20);
    assert_int_equal(resp_parse(&p, moved, strlen(moved), &DEFAULT_LIMITS, &consumed), RESP_OK);
    assert_int_equal(consumed, strlen(moved));
    assert_int_equal(p.argc, 2);
    assert_int_equal(p.argv_off[0], 8);
    assert_arg(&p, moved, 1, S("hello"));
    resp_parser_free(&p);
}

static void test_thousands_of_commands(void **state)
{
    (void)state;
    enum { N = 5000 };
    char *in = malloc(N * 40);
    assert_non_null(in);
    size_t len = 0;
    for (int i = 0; i < N; i++) {
        char key[16];
        int klen = snprintf(key, sizeof key, "key%d", i);
        len += (size_t)sprintf(in + len, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", klen, key);
    }
    resp_parser p;
    resp_parser_init(&p);
    size_t off = 0;
    for (int i = 0; i < N; i++) {
        size_t consumed;
        assert_int_equal(resp_parse(&p, in + off, len - off, &DEFAULT_LIMITS, &consumed), RESP_OK);
        char key[16];
        int klen = snprintf(key, sizeof key, "key%d", i);
        assert_int_equal(p.argc, 2);
        assert_arg(&p, in + off, 0, S("GET"));
        assert_arg(&p, in + off, 1, key, (size_t)klen);
        off += consumed;
    }
    assert_int_equal(off, len);
    size_t consumed;
    assert_int_equal(resp_parse(&p, in + off, 0, &DEFAULT_LIMITS, &consumed), RESP_NEED_MORE);
    resp_parser_free(&p);
    free(in);
}

static void test_args_grow_to_max_args(void **state)
{
    (void)state;
    resp_limits lim = DEFAULT_LIMITS;
    lim.max_args = 100;
    char in[1024];
    size_t len = (size_t)sprintf(in, "*100\r\n");
    for (int i = 0; i < 100; i++)
        len += (size_t)sprintf(in + len, "$1\r\n%c\r\n", 'a' + i % 26);
    parse t;
    parse_with(&t, in, len, &lim);
    assert_int_equal(t.rc, RESP_OK);
    assert_int_equal(t.p.argc, 100);
    assert_int_equal(t.p.cap, 100); /* 8, 16, 32, 64, then capped at max_args */
    assert_arg(&t.p, t.buf, 99, S("v"));
    parse_done(&t);

    /* A huge announced count reserves nothing until arguments arrive. */
    parse_with(&t, S("*1048576\r\n$1\r\n"), &DEFAULT_LIMITS);
    assert_int_equal(t.rc, RESP_NEED_MORE);
    assert_true(t.p.cap <= 8);
    parse_done(&t);
}

static void test_inline_plain(void **state)
{
    (void)state;
    expect_command(S("SET key value\r\n"), 3, "SET", "key", "value");
    expect_command(S("  GET\t  key  \n"), 2, "GET", "key");
    expect_command(S("PING\n"), 1, "PING");
    expect_command(S("a\vb c\r\n"), 2, "a\vb", "c"); /* \v separates only between words */
}

static void test_inline_quotes(void **state)
{
    (void)state;
    expect_command(S("SET \"hello world\" 'x y'\r\n"), 3, "SET", "hello world", "x y");
    expect_command(S("ECHO \"\" ''\n"), 3, "ECHO", "", "");
    expect_command(S("ECHO \"a\\n\\r\\t\\b\\a\\\\\\\"z\"\n"), 2, "ECHO", "a\n\r\t\b\a\\\"z");
    expect_command(S("ECHO \"\\x41\\x7a\\xzz\\q\"\n"), 2, "ECHO", "Azxzzq");
    expect_command(S("ECHO 'it\\'s' 'a\\nb'\n"), 3, "ECHO", "it's", "a\\nb");
    expect_command(S("ECHO ab\"c d\"\n"), 2, "ECHO", "abc d");
    expect_command(S("ECHO \"a\"\tb\n"), 3, "ECHO", "a", "b");

    parse t; /* \x00 unescapes to a NUL byte inside the argument */
    parse_with(&t, S("SET k \"\\x00\\xff\"\r\n"), &DEFAULT_LIMITS);
    assert_int_equal(t.rc, RESP_OK);
    assert_int_equal(t.p.argc, 3);
    assert_arg(&t.p, t.buf, 2, "\0\xff", 2);
    parse_done(&t);
}

static void test_inline_unbalanced_quotes(void **state)
{
    (void)state;
    const char *msg = "Protocol error: unbalanced quotes in request";
    expect_error(S("SET \"abc\r\n"), msg);
    expect_error(S("SET 'abc\n"), msg);
    expect_error(S("SET \"abc\"def\n"), msg);
    expect_error(S("SET 'abc'def\n"), msg);
    expect_error(S("SET \"abc\\\"\n"), msg);
    expect_error(S("SET \"abc\\\n"), msg);
}

static void test_multibulk_length_errors(void **state)
{
    (void)state;
    const char *msg = "Protocol error: invalid multibulk length";
    expect_error(S("*abc\r\n"), msg);
    expect_error(S("*\r\n"), msg);
    expect_error(S("*-2\r\n"), msg);
    expect_error(S("*+1\r\n"), msg);
    expect_error(S("*01\r\n"), msg);
    expect_error(S("* 1\r\n"), msg);
    expect_error(S("*1\rX"), msg);
    expect_error(S("*1048577\r\n"), msg);
    expect_error(S("*99999999999999999999999\r\n"), msg);
    expect_error_with(S("*11\r\n"), &UNAUTH_LIMITS,
                      "Protocol error: unauthenticated multibulk length");
    expect_error_with(S("*x\r\n"), &UNAUTH_LIMITS, msg);

    parse t;
    parse_with(&t, S("*10\r\n"), &UNAUTH_LIMITS);
    assert_int_equal(t.rc, RESP_NEED_MORE);
    parse_done(&t);
}

static void test_bulk_length_errors(void **state)
{
    (void)state;
    const char *msg = "Protocol error: invalid bulk length";
    expect_error(S("*1\r\n$-1\r\n"), msg);
    expect_error(S("*1\r\n$abc\r\n"), msg);
    expect_error(S("*1\r\n$\r\n"), msg);
    expect_error(S("*1\r\n$1x\r\n"), msg);
    expect_error(S("*1\r\n$3\rX"), msg);
    expect_error(S("*1\r\n$99999999999999999999\r\n"), msg);
    /* 1 GB announced: rejected from the header, nothing reserved. */
    expect_error(S("*1\r\n$1073741824\r\n"), msg);
    expect_error(S("*1\r\n$536870913\r\n"), msg);
    expect_error_with(S("*1\r\n$1073741824\r\n"), &UNAUTH_LIMITS,
                      "Protocol error: unauthenticated bulk length");
    expect_error_with(S("*1\r\n$16385\r\n"), &UNAUTH_LIMITS,
                      "Protocol error: unauthenticated bulk length");
    expect_error_with(S("*1\r\n$-5\r\n"), &UNAUTH_LIMITS, msg);

    parse t; /* the largest allowed bulks are accepted and wait for their bytes */
    parse_with(&t, S("*1\r\n$536870912\r\n"), &DEFAULT_LIMITS);
    assert_int_equal(t.rc, RESP_NEED_MORE);
    assert_true(t.p.cap <= 8);
    parse_done(&t);
    parse_with(&t, S("*1\r\n$16384\r\n"), &UNAUTH_LIMITS);
    assert_int_equal(t.rc, RESP_NEED_MORE);
    parse_done(&t);
}

static void test_missing_crlf_after_bulk(void **state)
{
    (void)state;
    const char *msg = "Protocol error: missing CRLF after bulk";
    expect_error(S("*1\r\n$3\r\nabcXY"), msg);
    expect_error(S("*1\r\n$3\r\nabc\rX"), msg);
    expect_error(S("*2\r\n$1\r\na\r\n$1\r\nbc\r\n"), msg);

    parse t; /* one byte short of the CRLF is still incomplete */
    parse_with(&t, S("*1\r\n$3\r\nabc\r"), &DEFAULT_LIMITS);
    assert_int_equal(t.rc, RESP_NEED_MORE);
    parse_done(&t);
}

static void test_expected_dollar(void **state)
{
    (void)state;
    expect_error(S("*1\r\n*1\r\n"), "Protocol error: expected '$', got '*'");
    expect_error(S("*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"),
                 "Protocol error: expected '$', got 'f'");
    expect_error(S("*1\r\n:1\r\n"), "Protocol error: expected '$', got ':'");
    expect_error(S("*1\r\n\r\n"), "Protocol error: expected '$', got '?'");
    expect_error(S("*1\r\n\xff"), "Protocol error: expected '$', got '?'");
}

static void test_too_long_lines(void **state)
{
    (void)state;
    size_t n = RESP_DEFAULT_MAX_INLINE + 10;
    char *in = malloc(n + 2);
    assert_non_null(in);

    memset(in, 'a', n);
    expect_error(in, n, "Protocol error: too big inline request");
    memcpy(in + n, "\r\n", 2);
    expect_error(in, n + 2, "Protocol error: too big inline request");

    memset(in, '1', n);
    in[0] = '*';
    expect_error(in, n, "Protocol error: too big mbulk count string");
    memcpy(in + n, "\r\n", 2);
    expect_error(in, n + 2, "Protocol error: too big mbulk count string");

    memcpy(in, "*1\r\n$", 5);
    expect_error(in, n, "Protocol error: too big bulk count string");

    /* Exactly max_inline bytes before the newline is still allowed. */
    memset(in, 'a', RESP_DEFAULT_MAX_INLINE);
    memcpy(in + RESP_DEFAULT_MAX_INLINE, "\n", 1);
    parse t;
    parse_with(&t, in, RESP_DEFAULT_MAX_INLINE + 1, &DEFAULT_LIMITS);
    assert_int_equal(t.rc, RESP_OK);
    assert_int_equal(t.p.argc, 1);
    assert_int_equal(t.p.argv_len[0], RESP_DEFAULT_MAX_INLINE);
    parse_done(&t);
    free(in);
}

static void test_too_big_request(void **state)
{
    (void)state;
    const char *msg = "Protocol error: too big request";
    resp_limits lim = DEFAULT_LIMITS;
    lim.max_buffered = 100;
    /* A bulk that cannot fit is refused from its header. */
    expect_error_with(S("*1\r\n$200\r\n"), &lim, msg);
    expect_error_with(S("*1\r\n$90\r\n"), &lim, msg);
    /* An incomplete command holding more than max_buffered bytes. */
    char in[200];
    memset(in, 'a', sizeof in);
    expect_error_with(in, sizeof in, &lim, msg);

    parse t; /* a complete command within the limit is fine whatever follows it */
    memcpy(in, "PING\r\n", 6);
    parse_with(&t, in, sizeof in, &lim);
    assert_int_equal(t.rc, RESP_OK);
    assert_int_equal(t.consumed, 6);
    parse_done(&t);
    /* Exactly max_buffered bytes is allowed. */
    parse_with(&t, S("*1\r\n$89\r\n"), &lim);
    assert_int_equal(t.rc, RESP_NEED_MORE);
    parse_done(&t);
}

static void test_inline_arg_limit(void **state)
{
    (void)state;
    expect_error_with(S("a b c d e f g h i j k\r\n"), &UNAUTH_LIMITS,
                      "Protocol error: unauthenticated multibulk length");
    parse t;
    parse_with(&t, S("a b c d e f g h i j\r\n"), &UNAUTH_LIMITS);
    assert_int_equal(t.rc, RESP_OK);
    assert_int_equal(t.p.argc, 10);
    assert_int_equal(t.p.cap, 10);
    parse_done(&t);
}

static void test_http_close(void **state)
{
    (void)state;
    parse t;
    parse_with(&t, S("POST / HTTP/1.1\r\n"), &DEFAULT_LIMITS);
    assert_int_equal(t.rc, RESP_CLOSE);
    parse_done(&t);
    parse_with(&t, S("Host: x\r\n"), &DEFAULT_LIMITS);
    assert_int_equal(t.rc, RESP_CLOSE);
    parse_done(&t);
    /* Case-sensitive, as in Redis's check. */
    expect_command(S("post /\r\n"), 2, "post", "/");
    expect_command(S("host: x\r\n"), 2, "host:", "x");
}

static void test_want(void **state)
{
    (void)state;
    char in[] = "*2\r\n$10\r\n0123456789\r\n$3\r\nabc\r\n";
    resp_parser p;
    resp_parser_init(&p);
    size_t consumed;
    assert_int_equal(resp_parse(&p, in, 6, &DEFAULT_LIMITS, &consumed), RESP_NEED_MORE);
    assert_int_equal(resp_parse_want(&p, 6), 0); /* header incomplete: unknown */
    assert_int_equal(resp_parse(&p, in, 12, &DEFAULT_LIMITS, &consumed), RESP_NEED_MORE);
    assert_int_equal(resp_parse_want(&p, 12), 21 - 12);
    assert_int_equal(resp_parse(&p, in, 20, &DEFAULT_LIMITS, &consumed), RESP_NEED_MORE);
    assert_int_equal(resp_parse_want(&p, 20), 1);
    assert_int_equal(resp_parse(&p, in, 27, &DEFAULT_LIMITS, &consumed), RESP_NEED_MORE);
    assert_int_equal(resp_parse_want(&p, 27), 30 - 27);
    assert_int_equal(resp_parse(&p, in, 30, &DEFAULT_LIMITS, &consumed), RESP_OK);
    assert_int_equal(consumed, 30);
    assert_int_equal(resp_parse_want(&p, 30), 0);

    char line[] = "GET k";
    assert_int_equal(resp_parse(&p, line, 5, &DEFAULT_LIMITS, &consumed), RESP_NEED_MORE);
    assert_int_equal(resp_parse_want(&p, 5), 0);
    resp_parser_free(&p);
}

static void test_error_sticks_until_reset(void **state)
{
    (void)state;
    resp_parser p;
    resp_parser_init(&p);
    char bad[] = "*x\r\n";
    char good[] = "*1\r\n$4\r\nPING\r\n";
    size_t consumed;
    assert_int_equal(resp_parse(&p, bad, 4, &DEFAULT_LIMITS, &consumed), RESP_ERR);
    assert_int_equal(resp_parse(&p, good, 14, &DEFAULT_LIMITS, &consumed), RESP_ERR);
    assert_string_equal(p.err, "Protocol error: invalid multibulk length");
    resp_parser_reset(&p);
    assert_int_equal(resp_parse(&p, good, 14, &DEFAULT_LIMITS, &consumed), RESP_OK);
    assert_null(p.err);
    assert_int_equal(p.argc, 1);
    assert_arg(&p, good, 0, S("PING"));
    resp_parser_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multibulk_simple),
        cmocka_unit_test(test_binary_and_empty_args),
        cmocka_unit_test(test_empty_commands),
        cmocka_unit_test(test_only_first_command_consumed),
        cmocka_unit_test(test_byte_by_byte_pipeline),
        cmocka_unit_test(test_resume_skips_scanned_bytes),
        cmocka_unit_test(test_thousands_of_commands),
        cmocka_unit_test(test_args_grow_to_max_args),
        cmocka_unit_test(test_inline_plain),
        cmocka_unit_test(test_inline_quotes),
        cmocka_unit_test(test_inline_unbalanced_quotes),
        cmocka_unit_test(test_multibulk_length_errors),
        cmocka_unit_test(test_bulk_length_errors),
        cmocka_unit_test(test_missing_crlf_after_bulk),
        cmocka_unit_test(test_expected_dollar),
        cmocka_unit_test(test_too_long_lines),
        cmocka_unit_test(test_too_big_request),
        cmocka_unit_test(test_inline_arg_limit),
        cmocka_unit_test(test_http_close),
        cmocka_unit_test(test_want),
        cmocka_unit_test(test_error_sticks_until_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
