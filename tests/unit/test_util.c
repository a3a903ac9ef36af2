/* test_util.c: unit tests for core/util.h: strict integer and double parsing with Redis's
 * rules, integer and double formatting (replies and INCRBYFLOAT), glob matching against
 * Redis's stringmatchlen semantics, the growable buffer, and hash_bytes stability. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "core/util.h"

#define S(lit) lit, sizeof(lit) - 1 /* a string literal and its length, NULs included */

/* ---- str_to_i64 ---- */

static void i64_ok(const char *s, size_t len, int64_t want)
{
    int64_t v = 12345;
    assert_int_equal(str_to_i64(s, len, &v), 0);
    assert_true(v == want);
}

static void i64_bad(const char *s, size_t len)
{
    int64_t v = 12345;
    assert_int_equal(str_to_i64(s, len, &v), ERR_RANGE);
    assert_true(v == 12345); /* untouched on error */
}

static void test_i64_valid(void **state)
{
    (void)state;
    i64_ok(S("0"), 0);
    i64_ok(S("1"), 1);
    i64_ok(S("-1"), -1);
    i64_ok(S("10"), 10);
    i64_ok(S("1234567890"), 1234567890);
    i64_ok(S("9223372036854775807"), INT64_MAX);
    i64_ok(S("-9223372036854775808"), INT64_MIN);
    i64_ok(S("9223372036854775806"), INT64_MAX - 1);
    /* only len bytes count */
    i64_ok("123xyz", 3, 123);
    i64_ok("-5-", 2, -5);
}

static void test_i64_invalid(void **state)
{
    (void)state;
    i64_bad(S(""));
    i64_bad(S("-"));
    i64_bad(S("+1"));
    i64_bad(S(" 1"));
    i64_bad(S("1 "));
    i64_bad(S("01"));
    i64_bad(S("00"));
    i64_bad(S("-0"));
    i64_bad(S("-01"));
    i64_bad(S("1a"));
    i64_bad(S("a1"));
    i64_bad(S("1.0"));
    i64_bad(S("1e3"));
    i64_bad(S("--1"));
    i64_bad(S("1\0"));
    i64_bad(S("0x10"));
    /* overflow by one in each direction */
    i64_bad(S("9223372036854775808"));
    i64_bad(S("-9223372036854775809"));
    /* values that wrap an unsigned 64-bit accumulator */
    i64_bad(S("18446744073709551615"));
    i64_bad(S("18446744073709551616"));
    i64_bad(S("99999999999999999999"));
    /* 21 digits */
    i64_bad(S("100000000000000000000"));
    i64_bad(S("-100000000000000000000"));
    i64_bad(S("000000000000000000001"));
}

/* ---- str_to_double ---- */

static void test_double_parse(void **state)
{
    (void)state;
    double d;
    assert_int_equal(str_to_double(S("1.5"), &d, 0), 0);
    assert_true(d == 1.5);
    assert_int_equal(str_to_double(S("-0.25"), &d, 0), 0);
    assert_true(d == -0.25);
    assert_int_equal(str_to_double(S("10"), &d, 0), 0);
    assert_true(d == 10.0);
    assert_int_equal(str_to_double(S("+3"), &d, 0), 0); /* strtod's sign, as Redis */
    assert_true(d == 3.0);
    assert_int_equal(str_to_double(S("1e308"), &d, 0), 0);
    assert_true(d == 1e308);
    assert_int_equal(str_to_double(S("-1e308"), &d, 0), 0);
    assert_true(d == -1e308);
    assert_int_equal(str_to_double(S(".5"), &d, 0), 0);
    assert_true(d == 0.5);
    /* a subnormal result is a number (glibc sets ERANGE for it; Redis accepts it) */
    assert_int_equal(str_to_double(S("1e-310"), &d, 0), 0);
    assert_true(d > 0 && d < DBL_MIN);
    /* only len bytes count */
    assert_int_equal(str_to_double("2.5junk", 3, &d, 0), 0);
    assert_true(d == 2.5);
}

static void test_double_parse_inf(void **state)
{
    (void)state;
    double d = 0;
    assert_int_equal(str_to_double(S("inf"), &d, 0), ERR_RANGE);
    assert_int_equal(str_to_double(S("-inf"), &d, 0), ERR_RANGE);
    assert_int_equal(str_to_double(S("inf"), &d, 1), 0);
    assert_true(isinf(d) && d > 0);
    assert_int_equal(str_to_double(S("-inf"), &d, 1), 0);
    assert_true(isinf(d) && d < 0);
    assert_int_equal(str_to_double(S("+inf"), &d, 1), 0);
    assert_true(isinf(d) && d > 0);
    /* overflow and underflow are errors even where inf is allowed (Redis's string2d) */
    d = 7;
    assert_int_equal(str_to_double(S("1e309"), &d, 0), ERR_RANGE);
    assert_int_equal(str_to_double(S("1e309"), &d, 1), ERR_RANGE);
    assert_int_equal(str_to_double(S("-1e309"), &d, 1), ERR_RANGE);
    assert_int_equal(str_to_double(S("1e-400"), &d, 1), ERR_RANGE);
    assert_true(d == 7);
}

static void test_double_parse_invalid(void **state)
{
    (void)state;
    double d = 7;
    assert_int_equal(str_to_double(S(""), &d, 1), ERR_RANGE);
    assert_int_equal(str_to_double(S("nan"), &d, 1), ERR_RANGE);
    assert_int_equal(str_to_double(S("NaN"), &d, 1), ERR_RANGE);
    assert_int_equal(str_to_double(S("-nan"), &d, 1), ERR_RANGE);
    assert_int_equal(str_to_double(S(" 1"), &d, 1), ERR_RANGE);
    assert_int_equal(str_to_double(S("1 "), &d, 1), ERR_RANGE);
    assert_int_equal(str_to_double(S("\t1"), &d, 1), ERR_RANGE);
    assert_int_equal(str_to_double(S("1.5x"), &d, 1), ERR_RANGE);
    assert_int_equal(str_to_double(S("abc"), &d, 1), ERR_RANGE);
    assert_int_equal(str_to_double(S("1\0"), &d, 1), ERR_RANGE);
    assert_int_equal(str_to_double(S("."), &d, 1), ERR_RANGE);
    assert_int_equal(str_to_double(S("-"), &d, 1), ERR_RANGE);
    assert_true(d == 7);
}

/* ---- i64_to_str ---- */

static void test_i64_to_str(void **state)
{
    (void)state;
    static const int64_t vals[] = {
        0, 1, -1, 9, 10, -10, 1234567890, INT64_MAX, INT64_MIN, INT64_MIN + 1, INT64_MAX - 1};
    char buf[32];
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        memset(buf, 'x', sizeof buf);
        size_t n = i64_to_str(buf, vals[i]);
        assert_int_equal(n, strlen(buf)); /* NUL-terminated at the returned length */
        int64_t back;
        assert_int_equal(str_to_i64(buf, n, &back), 0);
        assert_true(back == vals[i]);
    }
    assert_int_equal(i64_to_str(buf, INT64_MIN), 20);
    assert_string_equal(buf, "-9223372036854775808");
    assert_int_equal(i64_to_str(buf, INT64_MAX), 19);
    assert_string_equal(buf, "9223372036854775807");
    assert_int_equal(i64_to_str(buf, 0), 1);
    assert_string_equal(buf, "0");
    assert_int_equal(i64_to_str(buf, -42), 3);
    assert_string_equal(buf, "-42");
}

/* ---- double_to_str ---- */

static void dstr(double v, const char *want)
{
    char buf[64];
    size_t n = double_to_str(buf, v);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}

static void test_double_to_str(void **state)
{
    (void)state;
    dstr(0.1, "0.1");
    dstr(1.5, "1.5");
    dstr(-2.25, "-2.25");
    dstr(0.0, "0");
    dstr(-0.0, "-0"); /* Redis's d2string keeps the sign of zero */
    dstr(3.0, "3");
    dstr(-7.0, "-7");
    dstr(1e100, "1e+100");
    dstr(1e-100, "1e-100");
    dstr(INFINITY, "inf");
    dstr(-INFINITY, "-inf");
    dstr(1.0 / 3, "0.3333333333333333");
    dstr(0.1 + 0.2, "0.30000000000000004");
    dstr(DBL_MAX, "1.7976931348623157e+308");
    /* exact integers without an exponent, up to 2^62 as Redis */
    dstr(1e15, "1000000000000000");
    dstr(1e16, "10000000000000000");
    dstr(-1e17, "-100000000000000000");
    dstr(123456789012345678.0, "123456789012345680");
    dstr(4611686018427387904.0, "4611686018427387904");
    dstr(1e19, "1e+19");
}

static void test_double_to_str_round_trip(void **state)
{
    (void)state;
    /* a deterministic spread of values: every one must parse back to the same double */
    uint64_t x = 88172645463325252ULL;
    char buf[64];
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        uint64_t bits = x;
        memcpy(&v, &bits, sizeof v);
        if (isnan(v) || isinf(v))
            continue;
        size_t n = double_to_str(buf, v);
        assert_true(n > 0 && n < 32);
        assert_int_equal(n, strlen(buf));
        assert_true(strtod(buf, NULL) == v);
        assert_null(strchr(buf, ' '));
    }
}

/* The slow, obviously right shortest form: the first of %.15g, %.16g, %.17g to read back. */
static void reference_dstr(char *buf, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, 64, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* The exact-arithmetic fast path must print what the slow path prints, for short decimals
 * (the common feature value: "0.919085", "123.5") and for arbitrary doubles in its range. */
static void test_double_to_str_fast_path(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    char got[64], want[64];
    for (int i = 0; i < 200000; i++) {
        double v;
        if (i % 2) {
            int places = (int)(xorshift(&x) % 12);
            double p = 1;
            for (int k = 0; k < places; k++)
                p *= 10;
            v = (double)(int64_t)(xorshift(&x) % 100000000000ULL) / p;
        } else {
            v = ldexp((double)(xorshift(&x) >> 11), -(int)(xorshift(&x) % 100));
        }
        if (xorshift(&x) & 1)
            v = -v;
        if (v == 0 || v == (double)(int64_t)v)
            continue;
        double_to_str(got, v);
        reference_dstr(want, v);
        assert_string_equal(got, want);
    }
    dstr(0.0001, "0.0001");
    dstr(0.00012, "0.00012");
    dstr(123456.789, "123456.789");
    dstr(-0.919085025787353516, "-0.9190850257873535");
}

static void test_float_shortest(void **state)
{
    (void)state;
    char buf[64];
    double_to_str(buf, float_shortest(0.1f));
    assert_string_equal(buf, "0.1");
    double_to_str(buf, float_shortest(-2.5e-3f));
    assert_string_equal(buf, "-0.0025");
    double_to_str(buf, float_shortest(16777216.0f));
    assert_string_equal(buf, "16777216");
    uint64_t x = 0x243f6a8885a308d3ULL;
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = (uint32_t)xorshift(&x);
        float f;
        memcpy(&f, &bits, sizeof f);
        if (!isfinite(f))
            continue;
        double d = float_shortest(f);
        assert_true((float)d == f);
        double_to_str(buf, d);
        assert_true((float)strtod(buf, NULL) == f);
        /* no decimal with fewer significant digits converts to f */
        int sig = 0, started = 0, zeros = 0; /* digits from the first to the last nonzero */
        for (const char *p = buf; *p && *p != 'e'; p++) {
            if (*p < '0' || *p > '9')
                continue;
            if (*p == '0') {
                zeros += started;
                continue;
            }
            sig += started ? zeros + 1 : 1;
            started = 1;
            zeros = 0;
        }
        char shorter[512];
        for (int p = 1; p < sig; p++) {
            snprintf(shorter, sizeof shorter, "%.*g", p, (double)f);
            assert_false((float)strtod(shorter, NULL) == f);
        }
    }
}

/* ---- crc32c ---- */

/* Bit by bit, from the polynomial: the slow reference the fast paths must match. */
static uint32_t crc32c_bitwise(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
    }
    return ~crc;
}

static void test_crc32c(void **state)
{
    (void)state;
    assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283u); /* the check value */
    unsigned char data[300];
    uint64_t x = 0x51ed2701f3a5c7b9ULL;
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)xorshift(&x);
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof data; n += 7)
            assert_int_equal(crc32c(0, data + off, n), crc32c_bitwise(data + off, n));
    /* in pieces, continuing a running value, equals in one go */
    uint32_t c = crc32c(0, data, 13);
    c = crc32c(c, data + 13, 200);
    assert_int_equal(c, crc32c(0, data, 213));
}

/* ---- ldouble_to_str ---- */

static void ldstr(long double v, const char *want)
{
    char buf[LDOUBLE_STR_MAX];
    size_t n = ldouble_to_str(buf, v);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}

static void test_ldouble_to_str(void **state)
{
    (void)state;
    /* valgrind computes x87 long doubles with double precision: 10.6L prints as
     * 10.59999999999999964 there. Detect it rather than report a false failure. */
    volatile long double one = 1.0L, eps = LDBL_EPSILON;
    if (LDBL_MANT_DIG > DBL_MANT_DIG && one + eps == one) {
        print_message("long double arithmetic has only double precision here: skipped\n");
        skip();
    }
    ldstr(10.5L + 0.1L, "10.6");
    ldstr(3.0e3L, "3000");
    ldstr(5.0e3L, "5000");
    ldstr(1.1L, "1.1");
    ldstr(10.0L, "10");
    ldstr(0.0L, "0");
    ldstr(-0.0L, "0");
    ldstr(-1e-20L, "0"); /* rounds to "-0.000...": printed as 0 */
    ldstr(-1.5L, "-1.5");
    ldstr(100.0L, "100"); /* zeros before the point stay */
    ldstr(1e-17L, "0.00000000000000001");
    ldstr(0.5L + 0.25L, "0.75");
    ldstr(INFINITY, "inf");
    ldstr(-INFINITY, "-inf");
    /* parsed the way INCRBYFLOAT parses its operands */
    long double a = strtold("5.0e3", NULL), b = strtold("2.0e2", NULL);
    ldstr(a + b, "5200");
}

/* ---- glob_match ---- */

static int gm(const char *pat, const char *s)
{
    return glob_match(pat, strlen(pat), s, strlen(s), 0);
}

static int gmi(const char *pat, const char *s)
{
    return glob_match(pat, strlen(pat), s, strlen(s), 1);
}

static void test_glob_basic(void **state)
{
    (void)state;
    assert_true(gm("", ""));
    assert_false(gm("", "a"));
    assert_true(gm("*", ""));
    assert_true(gm("*", "anything"));
    assert_true(gm("**", ""));
    assert_true(gm("abc", "abc"));
    assert_false(gm("abc", "abd"));
    assert_false(gm("abc", "ab"));
    assert_false(gm("ab", "abc"));
    assert_true(gm("a*", "a"));
    assert_true(gm("a*", "abc"));
    assert_false(gm("a*", "ba"));
    assert_true(gm("*c", "abc"));
    assert_false(gm("*c", "abd"));
    assert_true(gm("a*c", "ac"));
    assert_true(gm("a*c", "abbbc"));
    assert_false(gm("a*c", "abbbd"));
    assert_true(gm("*a*b*", "xxaxxbxx"));
    assert_false(gm("*a*b*", "xxbxxaxx"));
    assert_true(gm("h?llo", "hello"));
    assert_true(gm("h?llo", "hallo"));
    assert_false(gm("h?llo", "hllo"));
    assert_false(gm("?", ""));
    assert_true(gm("??", "ab"));
    assert_true(gm("user:*:name", "user:1000:name"));
    assert_false(gm("user:*:name", "user:1000:age"));
}

static void test_glob_classes(void **state)
{
    (void)state;
    assert_true(gm("h[ae]llo", "hello"));
    assert_true(gm("h[ae]llo", "hallo"));
    assert_false(gm("h[ae]llo", "hillo"));
    assert_true(gm("h[^e]llo", "hallo"));
    assert_false(gm("h[^e]llo", "hello"));
    assert_true(gm("h[a-b]llo", "hbllo"));
    assert_false(gm("h[a-b]llo", "hcllo"));
    assert_true(gm("[a-c]", "b"));
    assert_true(gm("[c-a]", "b")); /* a reversed range is swapped */
    assert_true(gm("[c-a]", "a"));
    assert_false(gm("[c-a]", "d"));
    assert_true(gm("[0-9]*", "7abc"));
    assert_false(gm("[^0-9]*", "7abc"));
    assert_true(gm("[abc]x", "cx"));
    assert_false(gm("[]", "a"));   /* empty class matches nothing */
    assert_true(gm("[^]", "a"));   /* its negation matches anything */
    assert_true(gm("[\\]]", "]")); /* escaped ] inside a class */
    assert_true(gm("[a\\-z]", "-"));
    assert_false(gm("[a\\-z]", "b"));
    assert_true(gm("[a", "a")); /* unterminated class ends the pattern */
    assert_false(gm("[a", "ab"));
    assert_false(gm("[a-c]", ""));
}

static void test_glob_escapes_nocase(void **state)
{
    (void)state;
    assert_true(gm("\\*", "*"));
    assert_false(gm("\\*", "a"));
    assert_true(gm("a\\?c", "a?c"));
    assert_false(gm("a\\?c", "abc"));
    assert_true(gm("\\[a]", "[a]"));
    assert_false(gm("\\[a]", "a"));
    assert_true(gm("\\\\", "\\"));
    assert_true(gm("\\", "\\")); /* a trailing backslash is itself */
    assert_true(gm("\\a", "a"));
    assert_false(gm("HELLO", "hello"));
    assert_true(gmi("HELLO", "hello"));
    assert_true(gmi("h*O", "HellO"));
    assert_true(gmi("h[A-C]llo", "hbllo"));
    assert_true(gmi("h[E]llo", "hello"));
    assert_true(gmi("*MAX*", "proto-max-bulk-len"));
    assert_false(gmi("*MAX*", "port"));
}

static void test_glob_lengths(void **state)
{
    (void)state;
    /* both lengths are explicit: NULs are ordinary bytes, bytes past len are ignored */
    assert_true(glob_match("a?c", 3, "a\0c", 3, 0));
    assert_true(glob_match("a*", 2, "a\0\0b", 4, 0));
    assert_true(glob_match("abcdef", 3, "abcxyz", 3, 0));
    assert_false(glob_match("abc", 3, "abcxyz", 4, 0));
    assert_true(glob_match("*", 1, "", 0, 0));
    assert_true(glob_match("\xff*", 2, "\xff\xfe", 2, 1));
}

/* Runs the pathological matches in a child process, so that a regression to exponential
 * backtracking fails within a bounded time instead of hanging the suite. The child exits 0
 * when every answer was right. */
static int glob_child(void)
{
    /* CVE-2022-36021 shape: exponential backtracking without the early give-up */
    char s[301];
    memset(s, 'a', 300);
    s[300] = '\0';
    if (gm("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", s))
        return 1;
    if (!gm("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*", s))
        return 2;
    if (gm("*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*[b]", s))
        return 3;
    return 0;
}

static void test_glob_pathological(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(glob_child());
    int status = 0;
    pid_t r = 0;
    for (int waited_ms = 0; waited_ms < 30000 && r == 0; waited_ms += 10) {
        r = waitpid(pid, &status, WNOHANG);
        if (r == 0)
            usleep(10000);
    }
    if (r == 0) { /* still running: microseconds when the early give-up works */
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("glob_match took over 30 s on a pathological pattern");
    }
    assert_int_equal(r, pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* deep nesting: one recursion per star, bounded, so a huge pattern cannot overflow the
     * stack (the answer is "no match" either way) */
    size_t n = 200000;
    char *deep = malloc(2 * n + 2), *xs = malloc(n);
    assert_non_null(deep);
    assert_non_null(xs);
    for (size_t i = 0; i < n; i++) {
        deep[2 * i] = '*';
        deep[2 * i + 1] = 'x';
    }
    deep[2 * n] = 'y';
    deep[2 * n + 1] = '\0';
    memset(xs, 'x', n);
    assert_false(glob_match(deep, 2 * n + 1, xs, n, 0));
    free(deep);
    free(xs);
}

/* ---- buf ---- */

static void test_buf(void **state)
{
    (void)state;
    buf b;
    buf_init(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);

    buf_append(&b, "", 0); /* nothing to add is fine on an empty buffer */
    assert_int_equal(b.len, 0);

    buf_append(&b, "hello", 5);
    buf_appendc(&b, ' ');
    buf_printf(&b, "%s=%d", "n", 42);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "hello n=42", 10);
    assert_true(b.cap >= b.len);

    buf_printf(&b, "%s", ""); /* empty output appends nothing */
    assert_int_equal(b.len, 10);

    /* binary bytes, NULs included */
    buf_append(&b, "\0\1\2", 3);
    assert_int_equal(b.len, 13);
    assert_memory_equal(b.data + 10, "\0\1\2", 3);

    /* a long printf beyond the current capacity */
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    buf_printf(&b, "[%s]", big);
    assert_int_equal(b.len, 13 + 1001);
    assert_int_equal(b.data[13], '[');
    assert_int_equal(b.data[13 + 1000], ']');
    assert_memory_equal(b.data, "hello n=42", 10); /* earlier bytes kept across growth */

    /* reserve guarantees room without changing the length */
    size_t len = b.len;
    buf_reserve(&b, 100000);
    assert_int_equal(b.len, len);
    assert_true(b.cap - b.len >= 100000);
    char *data = b.data;
    size_t cap = b.cap;
    buf_reserve(&b, 10); /* already room: nothing moves */
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    memset(b.data + b.len, 'q', 100000); /* the reserved room is writable */

    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);

    /* many small appends */
    for (int i = 0; i < 10000; i++)
        buf_appendc(&b, (char)('a' + i % 26));
    assert_int_equal(b.len, 10000);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);
    buf_free(&b);
}

/* ---- hash_bytes ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_hash_bytes(void **state)
{
    (void)state;
    const char *a = "the quick brown fox";
    size_t n = strlen(a);
    char copy[64];
    memcpy(copy, a, n);
    /* same bytes at another address, same seed: same hash */
    assert_true(hash_bytes(a, n, 0) == hash_bytes(copy, n, 0));
    assert_true(hash_bytes(a, n, 12345) == hash_bytes(copy, n, 12345));
    /* seeds, contents and lengths all matter */
    assert_true(hash_bytes(a, n, 0) != hash_bytes(a, n, 1));
    assert_true(hash_bytes(a, n, 1) != hash_bytes(a, n, 2));
    assert_true(hash_bytes(a, n, 0) != hash_bytes(a, n - 1, 0));
    copy[3] ^= 1;
    assert_true(hash_bytes(a, n, 0) != hash_bytes(copy, n, 0));
    assert_true(hash_bytes("", 0, 0) != hash_bytes("", 0, 1));
    assert_true(hash_bytes("a", 1, 0) != hash_bytes("b", 1, 0));
    /* stable across runs and builds: values pinned from this FNV-1a + mix definition
     * (anything persisted or compared across processes depends on them) */
    assert_true(hash_bytes("", 0, 0) == hash_bytes(NULL, 0, 0));
    assert_true(hash_bytes("", 0, 0) == 0xe36f5519ee926a53ULL);
    assert_true(hash_bytes(a, n, 0) == 0x6f9bc549c67fc705ULL);
    assert_true(hash_bytes(a, n, 42) == 0x24434b36270cbc42ULL);
    /* 10000 short distinct keys: all 64-bit values differ */
    enum { N = 10000 };
    uint64_t *hs = malloc(N * sizeof *hs);
    assert_non_null(hs);
    for (int i = 0; i < N; i++) {
        char key[24];
        size_t kl = i64_to_str(key, i);
        hs[i] = hash_bytes(key, kl, 7);
    }
    qsort(hs, N, sizeof *hs, cmp_u64);
    for (int i = 1; i < N; i++)
        assert_true(hs[i - 1] != hs[i]);
    free(hs);
}

static void test_clocks(void **state)
{
    (void)state;
    int64_t ms = clock_ms(), us = clock_us();
    assert_true(ms > 1600000000000LL); /* after 2020 */
    assert_true(us / 1000 - ms >= 0 && us / 1000 - ms < 1000);
    int64_t m1 = clock_mono_us(), m2 = clock_mono_us();
    assert_true(m2 >= m1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_i64_valid),
        cmocka_unit_test(test_i64_invalid),
        cmocka_unit_test(test_double_parse),
        cmocka_unit_test(test_double_parse_inf),
        cmocka_unit_test(test_double_parse_invalid),
        cmocka_unit_test(test_i64_to_str),
        cmocka_unit_test(test_double_to_str),
        cmocka_unit_test(test_double_to_str_round_trip),
        cmocka_unit_test(test_double_to_str_fast_path),
        cmocka_unit_test(test_float_shortest),
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_ldouble_to_str),
        cmocka_unit_test(test_glob_basic),
        cmocka_unit_test(test_glob_classes),
        cmocka_unit_test(test_glob_escapes_nocase),
        cmocka_unit_test(test_glob_lengths),
        cmocka_unit_test(test_glob_pathological),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_hash_bytes),
        cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
