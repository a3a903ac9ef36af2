/* test_reply.c: unit tests for the reply builders of wire/wire.h (wire/reply.c). Each test
 * drives a client struct with no socket and compares its output buffer byte for byte, in
 * RESP2 and RESP3: simple strings, errors (codes kept, ERR added, line breaks removed),
 * integers, bulks, nulls, doubles, booleans, aggregates, verbatim strings, nested deferred
 * lengths, and a closed client that must receive nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "wire/wire.h"

#define S(lit) lit, sizeof(lit) - 1 /* a string literal and its length, NULs included */

static int setup(void **state)
{
    client *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    c->state = CONN_OPEN;
    c->resp = 2;
    buf_init(&c->obuf);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    client *c = *state;
    buf_free(&c->obuf);
    free(c);
    return 0;
}

/* Asserts that the output buffer holds exactly want, then empties it. */
static void expect_n(client *c, const char *want, size_t n)
{
    if (c->obuf.len != n || (n && memcmp(c->obuf.data, want, n) != 0)) {
        print_error("obuf (%zu bytes): %.*s\nwant (%zu bytes): %.*s\n", c->obuf.len,
                    (int)c->obuf.len, c->obuf.data ? c->obuf.data : "", n, (int)n, want);
        fail();
    }
    c->obuf.len = 0;
}

#define EXPECT(c, lit) expect_n(c, S(lit))

static void test_simple_ok(void **state)
{
    client *c = *state;
    reply_simple(c, "PONG");
    EXPECT(c, "+PONG\r\n");
    reply_simple(c, "");
    EXPECT(c, "+\r\n");
    reply_ok(c);
    EXPECT(c, "+OK\r\n");
    c->resp = 3;
    reply_ok(c);
    reply_simple(c, "QUEUED");
    EXPECT(c, "+OK\r\n+QUEUED\r\n"); /* replies accumulate in order */
}

static void test_error(void **state)
{
    client *c = *state;
    reply_error(c, "WRONGTYPE Operation against a key holding the wrong kind of value");
    EXPECT(c, "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    reply_error(c, "NOAUTH Authentication required.");
    EXPECT(c, "-NOAUTH Authentication required.\r\n");
    reply_error(c, "EXECABORT Transaction discarded because of previous errors.");
    EXPECT(c, "-EXECABORT Transaction discarded because of previous errors.\r\n");
    reply_error(c, "ERR syntax error");
    EXPECT(c, "-ERR syntax error\r\n");
    reply_error(c, "BUSYKEY");
    EXPECT(c, "-BUSYKEY\r\n");

    /* no code: ERR is added */
    reply_error(c, "syntax error");
    EXPECT(c, "-ERR syntax error\r\n");
    reply_error(c, "unknown command 'FOO'");
    EXPECT(c, "-ERR unknown command 'FOO'\r\n");
    /* an upper-case first word is not necessarily a code */
    reply_error(c, "DB index is out of range");
    EXPECT(c, "-ERR DB index is out of range\r\n");
    reply_error(c, "EXEC without MULTI");
    EXPECT(c, "-ERR EXEC without MULTI\r\n");
    reply_error(c, "WRONGTYPEX is not a code");
    EXPECT(c, "-ERR WRONGTYPEX is not a code\r\n");
    reply_error(c, "Wrongtype lower case");
    EXPECT(c, "-ERR Wrongtype lower case\r\n");
    reply_error(c, "WRONGTYPE:colon");
    EXPECT(c, "-ERR WRONGTYPE:colon\r\n");
    reply_error(c, "");
    EXPECT(c, "-ERR \r\n");

    /* line breaks would end the error early: each becomes a space */
    reply_error(c, "line one\r\nline two\n");
    EXPECT(c, "-ERR line one  line two \r\n");
    reply_error(c, "WRONGTYPE a\nb");
    EXPECT(c, "-WRONGTYPE a b\r\n");

    /* the same bytes in RESP3 */
    c->resp = 3;
    reply_error(c, "no such key");
    EXPECT(c, "-ERR no such key\r\n");

    reply_errorf(c, "value %d is %s", 5, "bad");
    EXPECT(c, "-ERR value 5 is bad\r\n");
    reply_errorf(c, "NOPERM user %s", "x\ny");
    EXPECT(c, "-NOPERM user x y\r\n");
    /* a long formatted message is cut, never overflowed */
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    reply_errorf(c, "%s", big);
    assert_true(c->obuf.len > 100 && c->obuf.len < 600);
    assert_memory_equal(c->obuf.data, "-ERR xxx", 8);
    assert_memory_equal(c->obuf.data + c->obuf.len - 3, "x\r\n", 3);
    c->obuf.len = 0;
}

static void test_int(void **state)
{
    client *c = *state;
    reply_int(c, 0);
    EXPECT(c, ":0\r\n");
    reply_int(c, -1);
    EXPECT(c, ":-1\r\n");
    reply_int(c, 1234567);
    EXPECT(c, ":1234567\r\n");
    reply_int(c, LLONG_MAX);
    EXPECT(c, ":9223372036854775807\r\n");
    reply_int(c, LLONG_MIN);
    EXPECT(c, ":-9223372036854775808\r\n");
    c->resp = 3;
    reply_int(c, 42);
    EXPECT(c, ":42\r\n");
}

static void test_bulk(void **state)
{
    client *c = *state;
    reply_bulk(c, "hello", 5);
    EXPECT(c, "$5\r\nhello\r\n");
    reply_bulk(c, "", 0);
    EXPECT(c, "$0\r\n\r\n");
    reply_bulk(c, NULL, 0);
    EXPECT(c, "$0\r\n\r\n");
    reply_bulk(c, S("a\0\r\nb\xff"));
    EXPECT(c, "$6\r\na\0\r\nb\xff\r\n");
    reply_bulk_cstr(c, "abc");
    EXPECT(c, "$3\r\nabc\r\n");
    reply_bulk_int(c, -42);
    EXPECT(c, "$3\r\n-42\r\n");
    reply_bulk_int(c, LLONG_MIN);
    EXPECT(c, "$20\r\n-9223372036854775808\r\n");

    /* a NULL C string is a null, in the client's protocol */
    reply_bulk_cstr(c, NULL);
    EXPECT(c, "$-1\r\n");
    c->resp = 3;
    reply_bulk_cstr(c, NULL);
    EXPECT(c, "_\r\n");
    reply_bulk(c, "x", 1);
    EXPECT(c, "$1\r\nx\r\n");

    /* a large bulk after other output: header, body and trailer all in place */
    size_t n = 300000;
    char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 7);
    reply_ok(c);
    reply_bulk(c, big, n);
    assert_int_equal(c->obuf.len, 5 + 9 + n + 2);
    assert_memory_equal(c->obuf.data, "+OK\r\n$300000\r\n", 14);
    assert_memory_equal(c->obuf.data + 14, big, n);
    assert_memory_equal(c->obuf.data + 14 + n, "\r\n", 2);
    c->obuf.len = 0;
    free(big);
}

static void test_null(void **state)
{
    client *c = *state;
    reply_null(c);
    EXPECT(c, "$-1\r\n");
    reply_null_array(c);
    EXPECT(c, "*-1\r\n");
    c->resp = 3;
    reply_null(c);
    EXPECT(c, "_\r\n");
    reply_null_array(c);
    EXPECT(c, "_\r\n");
}

static void test_double(void **state)
{
    client *c = *state;
    reply_double(c, 1.5);
    EXPECT(c, "$3\r\n1.5\r\n");
    reply_double(c, 0.1);
    EXPECT(c, "$3\r\n0.1\r\n");
    reply_double(c, 3.0);
    EXPECT(c, "$1\r\n3\r\n");
    reply_double(c, -2.5);
    EXPECT(c, "$4\r\n-2.5\r\n");
    reply_double(c, INFINITY);
    EXPECT(c, "$3\r\ninf\r\n");
    reply_double(c, -INFINITY);
    EXPECT(c, "$4\r\n-inf\r\n");
    reply_double(c, 1e100);
    EXPECT(c, "$6\r\n1e+100\r\n");

    c->resp = 3;
    reply_double(c, 1.5);
    EXPECT(c, ",1.5\r\n");
    reply_double(c, 3.0);
    EXPECT(c, ",3\r\n");
    reply_double(c, 0.1 + 0.2);
    EXPECT(c, ",0.30000000000000004\r\n");
    reply_double(c, INFINITY);
    EXPECT(c, ",inf\r\n");
    reply_double(c, -INFINITY);
    EXPECT(c, ",-inf\r\n");
}

static void test_bool(void **state)
{
    client *c = *state;
    reply_bool(c, 1);
    reply_bool(c, 0);
    reply_bool(c, 7); /* any non-zero is true */
    EXPECT(c, ":1\r\n:0\r\n:1\r\n");
    c->resp = 3;
    reply_bool(c, 1);
    reply_bool(c, 0);
    reply_bool(c, -1);
    EXPECT(c, "#t\r\n#f\r\n#t\r\n");
}

static void test_aggregates(void **state)
{
    client *c = *state;
    reply_array(c, 0);
    EXPECT(c, "*0\r\n");
    reply_array(c, 3);
    EXPECT(c, "*3\r\n");
    reply_map(c, 2); /* RESP2: a flat array of key, value, key, value */
    EXPECT(c, "*4\r\n");
    reply_map(c, 0);
    EXPECT(c, "*0\r\n");
    reply_set(c, 3);
    EXPECT(c, "*3\r\n");

    c->resp = 3;
    reply_array(c, 3);
    EXPECT(c, "*3\r\n");
    reply_map(c, 2);
    EXPECT(c, "%2\r\n");
    reply_set(c, 3);
    EXPECT(c, "~3\r\n");

    /* a whole small map reply */
    reply_map(c, 1);
    reply_bulk_cstr(c, "server");
    reply_bulk_cstr(c, "quiver");
    EXPECT(c, "%1\r\n$6\r\nserver\r\n$6\r\nquiver\r\n");
    c->resp = 2;
    reply_map(c, 1);
    reply_bulk_cstr(c, "server");
    reply_bulk_cstr(c, "quiver");
    EXPECT(c, "*2\r\n$6\r\nserver\r\n$6\r\nquiver\r\n");
}

static void test_verbatim(void **state)
{
    client *c = *state;
    reply_verbatim(c, "hello", 5);
    EXPECT(c, "$5\r\nhello\r\n");
    reply_verbatim(c, "", 0);
    EXPECT(c, "$0\r\n\r\n");
    c->resp = 3;
    reply_verbatim(c, "hello", 5);
    EXPECT(c, "=9\r\ntxt:hello\r\n");
    reply_verbatim(c, "", 0);
    EXPECT(c, "=4\r\ntxt:\r\n");
    reply_verbatim(c, S("a\r\nb\0"));
    EXPECT(c, "=9\r\ntxt:a\r\nb\0\r\n");
}

/* [ "a", {k: 1, m: [x, y]}, "z" ] built with deferred lengths at each level, after another
 * reply already in the buffer, and set innermost first. */
static void nested_deferred(client *c)
{
    reply_simple(c, "before");
    size_t outer = reply_deferred(c);
    reply_bulk_cstr(c, "a");
    size_t map = reply_deferred(c);
    reply_bulk_cstr(c, "k");
    reply_int(c, 1);
    reply_bulk_cstr(c, "m");
    size_t inner = reply_deferred(c);
    reply_bulk_cstr(c, "x");
    reply_bulk_cstr(c, "y");
    reply_set_array(c, inner, 2);
    reply_set_map(c, map, 2);
    reply_bulk_cstr(c, "z");
    reply_set_array(c, outer, 3);
    reply_int(c, 9); /* the next reply follows the completed one */
}

static void test_deferred_nested(void **state)
{
    client *c = *state;
    nested_deferred(c);
    EXPECT(c, "+before\r\n"
              "*3\r\n$1\r\na\r\n"
              "*4\r\n$1\r\nk\r\n:1\r\n$1\r\nm\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n"
              "$1\r\nz\r\n"
              ":9\r\n");
    c->resp = 3;
    nested_deferred(c);
    EXPECT(c, "+before\r\n"
              "*3\r\n$1\r\na\r\n"
              "%2\r\n$1\r\nk\r\n:1\r\n$1\r\nm\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n"
              "$1\r\nz\r\n"
              ":9\r\n");
}

static void test_deferred_empty_and_large(void **state)
{
    client *c = *state;
    size_t h = reply_deferred(c);
    reply_set_array(c, h, 0);
    h = reply_deferred(c);
    reply_set_map(c, h, 0);
    EXPECT(c, "*0\r\n*0\r\n");

    /* a deferred header inserted in front of a large body, forcing the buffer to grow */
    c->resp = 3;
    h = reply_deferred(c);
    long n = 5000;
    for (long i = 0; i < n; i++) {
        reply_int(c, i);
        reply_bool(c, (int)(i & 1));
    }
    size_t body = c->obuf.len;
    while (c->obuf.cap - c->obuf.len >= 7) /* fill to the brim so the insert must grow */
        reply_int(c, 0);
    size_t full = c->obuf.len, cap = c->obuf.cap;
    reply_set_map(c, h, n);
    assert_true(c->obuf.cap > cap);
    assert_int_equal(c->obuf.len, full + 7);
    assert_memory_equal(c->obuf.data, "%5000\r\n:0\r\n#f\r\n:1\r\n#t\r\n", 23);
    assert_memory_equal(c->obuf.data + 7 + body - 11, ":4999\r\n#t\r\n", 11);
    c->obuf.len = 0;
}

static void test_closed_client(void **state)
{
    client *c = *state;
    reply_ok(c);
    size_t h = reply_deferred(c);
    c->state = CONN_CLOSED;
    reply_simple(c, "x");
    reply_ok(c);
    reply_error(c, "WRONGTYPE x");
    reply_errorf(c, "bad %d", 1);
    reply_int(c, 1);
    reply_bulk(c, "abc", 3);
    reply_bulk_cstr(c, "abc");
    reply_bulk_cstr(c, NULL);
    reply_bulk_int(c, 5);
    reply_double(c, 1.5);
    reply_bool(c, 1);
    reply_null(c);
    reply_null_array(c);
    reply_array(c, 2);
    reply_map(c, 2);
    reply_set(c, 2);
    reply_verbatim(c, "v", 1);
    reply_set_array(c, h, 4);
    reply_set_map(c, h, 4);
    c->resp = 3;
    reply_double(c, 1.5);
    reply_bool(c, 0);
    reply_null(c);
    reply_map(c, 1);
    reply_verbatim(c, "v", 1);
    reply_set_map(c, h, 4);
    EXPECT(c, "+OK\r\n"); /* only what was there before the close */

    /* a closing client still gets its queued answers */
    c->state = CONN_CLOSING;
    reply_error(c, "max number of clients reached");
    EXPECT(c, "-ERR max number of clients reached\r\n");
}

static void test_pending(void **state)
{
    client *c = *state;
    assert_int_equal(client_obuf_pending(c), 0);
    reply_ok(c);
    reply_int(c, 10);
    assert_int_equal(client_obuf_pending(c), 10);
    c->osent = 4;
    assert_int_equal(client_obuf_pending(c), 6);
    c->osent = 0;
    c->obuf.len = 0;
}

/* Output handed over from elsewhere (replication, parked work): the bytes already sent make
 * room before the buffer grows, and a buffer bigger than ours is taken, not copied. */
static void test_output_write_and_append(void **state)
{
    client *c = *state;
    client_output_write(c, "0123456789", 10);
    size_t cap = c->obuf.cap;
    c->osent = c->ocommitted = 6; /* "012345" went out */
    char more[256];
    memset(more, 'x', sizeof more);
    size_t n = cap - 10 + 2; /* fits only once the sent bytes are gone */
    client_output_write(c, more, n);
    assert_int_equal(c->obuf.cap, cap);
    assert_int_equal(c->osent, 0);
    assert_int_equal(c->ocommitted, 0);
    assert_int_equal(client_obuf_pending(c), 4 + n);
    assert_memory_equal(c->obuf.data, "6789", 4);
    assert_memory_equal(c->obuf.data + 4, more, n);

    c->obuf.len = 0;
    buf big;
    buf_init(&big);
    buf_append(&big, more, sizeof more);
    buf_append(&big, more, sizeof more); /* more than our capacity */
    const char *mem = big.data;
    client_output_append(c, &big);
    assert_ptr_equal(c->obuf.data, mem);
    assert_null(big.data);
    assert_int_equal(client_obuf_pending(c), 2 * sizeof more);

    c->obuf.len = 0;
    buf small;
    buf_init(&small);
    buf_append(&small, "+OK\r\n", 5);
    client_output_append(c, &small); /* fits in ours: copied */
    assert_ptr_equal(c->obuf.data, mem);
    assert_null(small.data);
    EXPECT(c, "+OK\r\n");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_simple_ok),
        T(test_error),
        T(test_int),
        T(test_bulk),
        T(test_null),
        T(test_double),
        T(test_bool),
        T(test_aggregates),
        T(test_verbatim),
        T(test_deferred_nested),
        T(test_deferred_empty_and_large),
        T(test_closed_client),
        T(test_pending),
        T(test_output_write_and_append),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
