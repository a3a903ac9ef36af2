/* test_values.c: unit tests for the typed feature values of store/values.c: type names,
 * timestamps (epoch milliseconds, ISO-8601 forms, every error, formatting before and after
 * 1970, a round trip over 1900..2200 checked against a naive day-counting calendar), value
 * parsing per type at its boundaries, and the row codec (round trips, NULLs, 0 and 4096
 * fields, vectors, and rejection of every truncation, flipped byte and inconsistency), plus
 * the CRC32C check value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"
#include "store/store.h"

#define S(lit) lit, sizeof(lit) - 1 /* a string literal and its length */

/* ---- crc32c ---- */

static void test_crc32c(void **state)
{
    (void)state;
    assert_true(crc32c(0, "123456789", 9) == 0xE3069283u);
    assert_true(crc32c(0, "", 0) == 0);
    /* chaining: the CRC of a whole equals the CRC continued over its parts */
    uint32_t c = crc32c(0, "1234", 4);
    assert_true(crc32c(c, "56789", 5) == 0xE3069283u);
    /* RFC 3720 B.4: 32 bytes of zeros, of 0xff */
    char z[32];
    memset(z, 0, sizeof z);
    assert_true(crc32c(0, z, 32) == 0x8A9136AAu);
    memset(z, 0xff, sizeof z);
    assert_true(crc32c(0, z, 32) == 0x62A8AB43u);
}

/* ---- type names ---- */

static void test_ftype_names(void **state)
{
    (void)state;
    static const char *names[] = {"INT32",  "INT64", "FLOAT32",   "FLOAT64", "BOOL",
                                  "STRING", "BYTES", "TIMESTAMP", "VECTOR"};
    for (int t = FT_INT32; t <= FT_VECTOR; t++) {
        assert_string_equal(store_ftype_name(t), names[t - 1]);
        assert_int_equal(store_ftype_parse(names[t - 1], strlen(names[t - 1])), t);
    }
    assert_int_equal(store_ftype_parse(S("int64")), FT_INT64);
    assert_int_equal(store_ftype_parse(S("Vector")), FT_VECTOR);
    assert_int_equal(store_ftype_parse(S("INT")), 0);
    assert_int_equal(store_ftype_parse(S("INT644")), 0);
    assert_int_equal(store_ftype_parse(S("")), 0);
    assert_int_equal(store_ftype_parse("INT64", 3), 0); /* only len bytes count */
    assert_string_equal(store_ftype_name(0), "UNKNOWN");
    assert_string_equal(store_ftype_name(10), "UNKNOWN");
}

/* ---- timestamps ---- */

static void ts_ok(const char *s, int64_t want)
{
    int64_t us = 42;
    char err[256] = "";
    int rc = store_parse_ts(s, strlen(s), &us, err, sizeof err);
    if (rc != 0 || us != want)
        fail_msg("'%s': rc %d us %lld want %lld (%s)", s, rc, (long long)us, (long long)want, err);
}

/* Expects an error whose detail contains why. */
static void ts_bad(const char *s, const char *why)
{
    int64_t us = 42;
    char err[256] = "";
    int rc = store_parse_ts(s, strlen(s), &us, err, sizeof err);
    if (rc != ERR_INVAL)
        fail_msg("'%s': rc %d us %lld, expected an error", s, rc, (long long)us);
    assert_true(us == 42);
    if (!strstr(err, why) || strncmp(err, "invalid timestamp '", 19) != 0)
        fail_msg("'%s': detail '%s' lacks '%s'", s, err, why);
}

static void test_ts_epoch_ms(void **state)
{
    (void)state;
    ts_ok("0", 0);
    ts_ok("1", 1000);
    ts_ok("-1", -1000);
    ts_ok("1618225182123", 1618225182123000);
    ts_ok("-2208988800000", -2208988800000000); /* 1900-01-01 */
    ts_ok("2021", 2021000);                     /* all digits: milliseconds, not a year */
    ts_ok("9223372036854775", 9223372036854775000);
    ts_ok("-9223372036854775", -9223372036854775000);
    ts_bad("9223372036854776", "milliseconds out of range");
    ts_bad("-9223372036854776", "milliseconds out of range");
    ts_bad("9223372036854775808", "milliseconds out of range");
    ts_bad("99999999999999999999", "milliseconds out of range");
    ts_bad("-999999999999999999999", "milliseconds out of range");
    ts_bad("01", "not an integer");
    ts_bad("-0", "not an integer");
    ts_bad("-", "not an integer");
    ts_bad("", "empty");
    ts_bad("+5", "expected YYYY-MM-DD");
    ts_bad("1.5", "expected YYYY-MM-DD");
    ts_bad(" 5", "expected YYYY-MM-DD");
    ts_bad("5 ", "expected YYYY-MM-DD");
}

static void test_ts_iso(void **state)
{
    (void)state;
    const int64_t t = 1618225182000000; /* 2021-04-12T10:59:42Z */
    ts_ok("2021-04-12T10:59:42.123456Z", 1618225182123456);
    ts_ok("2021-04-12T10:59:42Z", t);
    ts_ok("2021-04-12T10:59:42", t);
    ts_ok("2021-04-12 10:59:42", t);
    ts_ok("2021-04-12 10:59:42Z", t);
    ts_ok("2021-04-12T10:59Z", t - 42000000);
    ts_ok("2021-04-12T10:59", t - 42000000);
    ts_ok("2021-04-12", t - (10 * 3600 + 59 * 60 + 42) * 1000000LL);
    /* fractions of 1..9 digits, truncated (not rounded) to microseconds */
    ts_ok("2021-04-12T10:59:42.1Z", t + 100000);
    ts_ok("2021-04-12T10:59:42.12Z", t + 120000);
    ts_ok("2021-04-12T10:59:42.123Z", t + 123000);
    ts_ok("2021-04-12T10:59:42.1234Z", t + 123400);
    ts_ok("2021-04-12T10:59:42.12345Z", t + 123450);
    ts_ok("2021-04-12T10:59:42.123456Z", t + 123456);
    ts_ok("2021-04-12T10:59:42.1234567Z", t + 123456);
    ts_ok("2021-04-12T10:59:42.12345678Z", t + 123456);
    ts_ok("2021-04-12T10:59:42.999999999Z", t + 999999);
    ts_ok("2021-04-12T10:59:42.000000001", t);
    ts_ok("2021-04-12T10:59:42.5+02:00", t + 500000 - 7200000000LL);
    /* offsets: local time minus offset is UTC */
    ts_ok("2021-04-12T12:59:42+02:00", t);
    ts_ok("2021-04-12T12:59:42+0200", t);
    ts_ok("2021-04-12T05:29:42-05:30", t);
    ts_ok("2021-04-12T05:29:42-0530", t);
    ts_ok("2021-04-12T10:59:42+00:00", t);
    ts_ok("2021-04-12T10:59:42-00:00", t);
    ts_ok("2021-04-13T00:59:42+14:00", t);
    ts_ok("2021-04-12T10:59+01:00", t - 42000000 - 3600000000LL);
    ts_ok("2021-04-12T23:59:59+23:59", 1618271999000000 - (23 * 3600 + 59 * 60) * 1000000LL);
    /* known instants */
    ts_ok("1970-01-01T00:00:00Z", 0);
    ts_ok("1970-01-01", 0);
    ts_ok("1969-12-31T23:59:59.999999Z", -1);
    ts_ok("1970-01-01T01:00:00+01:00", 0);
    ts_ok("2000-01-01T00:00:00Z", 946684800000000);
    ts_ok("1900-01-01T00:00:00Z", -2208988800000000);
    ts_ok("2038-01-19T03:14:07Z", 2147483647000000);
    ts_ok("2100-01-01T00:00:00Z", 4102444800000000);
    ts_ok("2024-02-29T00:00:00Z", 1709164800000000);
    ts_ok("2024-03-01T00:00:00Z", 1709251200000000);
    ts_ok("1600-03-01T00:00:00Z", -11670912000000000);
    ts_ok("0000-01-01T00:00:00Z", -62167219200000000);
    ts_ok("9999-12-31T23:59:59.999999Z", 253402300799999999);
}

static void test_ts_calendar(void **state)
{
    (void)state;
    ts_ok("2024-02-29", 1709164800000000);
    ts_ok("2000-02-29", 951782400000000);
    ts_bad("2023-02-29", "day out of range");
    ts_bad("1900-02-29", "day out of range");
    ts_bad("2100-02-29", "day out of range");
    ts_bad("2024-02-30", "day out of range");
    ts_ok("2023-02-28", 1677542400000000);
    ts_ok("2021-04-30", 1619740800000000);
    ts_bad("2021-04-31", "day out of range");
    ts_bad("2021-06-31", "day out of range");
    ts_bad("2021-09-31", "day out of range");
    ts_bad("2021-11-31", "day out of range");
    ts_ok("2021-12-31", 1640908800000000);
    ts_ok("2021-01-31", 1612051200000000);
    ts_bad("2021-01-32", "day out of range");
    ts_bad("2021-01-00", "day out of range");
    ts_bad("2021-00-01", "month out of range");
    ts_bad("2021-13-01T00:00:00Z", "month out of range");
    ts_bad("2021-99-99", "month out of range");
}

static void test_ts_errors(void **state)
{
    (void)state;
    char err[256];
    int64_t us;
    assert_int_equal(store_parse_ts(S("2021-13-01T00:00:00Z"), &us, err, sizeof err), ERR_INVAL);
    assert_string_equal(err, "invalid timestamp '2021-13-01T00:00:00Z': month out of range");

    ts_bad("2021-04-12T24:00:00Z", "hour out of range");
    ts_bad("2021-04-12T99:00Z", "hour out of range");
    ts_bad("2021-04-12T10:60:00Z", "minute out of range");
    ts_bad("2021-04-12T10:59:60Z", "second out of range");
    ts_bad("2021-04-12T10:59:99", "second out of range");
    ts_bad("2021-04-12T10:59:42.Z", "fraction must have 1 to 9 digits");
    ts_bad("2021-04-12T10:59:42.", "fraction must have 1 to 9 digits");
    ts_bad("2021-04-12T10:59:42.1234567890Z", "fraction must have 1 to 9 digits");
    ts_bad("2021-04-12T10:59:42+02", "time zone offset must be");
    ts_bad("2021-04-12T10:59:42+2:00", "time zone offset must be");
    ts_bad("2021-04-12T10:59:42+02:0", "time zone offset must be");
    ts_bad("2021-04-12T10:59:42+", "time zone offset must be");
    ts_bad("2021-04-12T10:59:42+24:00", "time zone offset out of range");
    ts_bad("2021-04-12T10:59:42+02:60", "time zone offset out of range");
    ts_bad("2021-04-12T10:59:42+02:00Z", "unexpected characters after the time zone");
    ts_bad("2021-04-12T10:59:42+02:000", "unexpected characters after the time zone");
    ts_bad("2021-04-12T10:59:42ZZ", "unexpected characters after the time zone");
    ts_bad("2021-04-12T10:59:42 ", "unexpected characters after the time");
    ts_bad("2021-04-12T10:59:42z", "unexpected characters after the time");
    ts_bad("2021-04-12T10:59.5", "unexpected characters after the time");
    ts_bad("2021-04-12T10:59:4", "expected two digits of seconds");
    ts_bad("2021-04-12T10:59:", "expected two digits of seconds");
    ts_bad("2021-04-12T10", "expected HH:MM");
    ts_bad("2021-04-12T10:", "expected HH:MM");
    ts_bad("2021-04-12T10:5", "expected HH:MM");
    ts_bad("2021-04-12T1:05", "expected HH:MM");
    ts_bad("2021-04-12T", "expected HH:MM");
    ts_bad("2021-04-12X10:59", "expected 'T' or ' ' after the date");
    ts_bad("2021-04-12Z", "expected 'T' or ' ' after the date");
    ts_bad("2021-04-1", "expected YYYY-MM-DD");
    ts_bad("2021-4-12", "expected YYYY-MM-DD");
    ts_bad("21-04-12", "expected YYYY-MM-DD");
    ts_ok("20210412", 20210412000); /* digits only: milliseconds */
}

static void test_ts_error_detail(void **state)
{
    (void)state;
    char err[256];
    int64_t us;
    /* long input is cut to 64 bytes and marked; non-printables show as '?' */
    char longs[200];
    memset(longs, 'x', sizeof longs);
    assert_int_equal(store_parse_ts(longs, sizeof longs, &us, err, sizeof err), ERR_INVAL);
    char want[256];
    snprintf(want, sizeof want,
             "invalid timestamp '%.64s...': expected YYYY-MM-DD or integer milliseconds", longs);
    assert_string_equal(err, want);
    assert_int_equal(store_parse_ts(S("20\x01\n-\0"), &us, err, sizeof err), ERR_INVAL);
    assert_string_equal(err, "invalid timestamp '20?"
                             "?-?': expected YYYY-MM-DD or integer milliseconds");
    /* a small or absent buffer is fine */
    char tiny[8];
    assert_int_equal(store_parse_ts(S("nope"), &us, tiny, sizeof tiny), ERR_INVAL);
    assert_string_equal(tiny, "invalid");
    assert_int_equal(store_parse_ts(S("nope"), &us, NULL, 0), ERR_INVAL);
}

static void fmt_is(int64_t us, const char *want)
{
    char buf[32];
    size_t n = store_format_ts(us, buf);
    assert_int_equal(n, strlen(want));
    assert_string_equal(buf, want);
}

static void test_ts_format(void **state)
{
    (void)state;
    fmt_is(0, "1970-01-01T00:00:00.000000Z");
    fmt_is(1618225182123456, "2021-04-12T10:59:42.123456Z");
    fmt_is(-1, "1969-12-31T23:59:59.999999Z");
    fmt_is(-1000000, "1969-12-31T23:59:59.000000Z");
    fmt_is(-999999, "1969-12-31T23:59:59.000001Z");
    fmt_is(-86400000000, "1969-12-31T00:00:00.000000Z");
    fmt_is(-86400000001, "1969-12-30T23:59:59.999999Z");
    fmt_is(-2208988800000000, "1900-01-01T00:00:00.000000Z");
    fmt_is(1709164800000000, "2024-02-29T00:00:00.000000Z");
    fmt_is(951782400000000, "2000-02-29T00:00:00.000000Z");
    fmt_is(-11670912000000000, "1600-03-01T00:00:00.000000Z");
    fmt_is(-62167219200000000, "0000-01-01T00:00:00.000000Z");
    fmt_is(253402300799999999, "9999-12-31T23:59:59.999999Z");
    /* outside 0000..9999: ISO 8601 expanded years, no overflow at the extremes */
    fmt_is(253402300800000000, "+10000-01-01T00:00:00.000000Z");
    fmt_is(-62167219200000001, "-0001-12-31T23:59:59.999999Z");
    fmt_is(INT64_MAX, "+294247-01-10T04:00:54.775807Z");
    fmt_is(INT64_MIN, "-290308-12-21T19:59:05.224192Z");
}

/* Naive calendar for the oracle: walks years and months one by one from 1970. */
static int naive_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static void naive_civil(int64_t us, int64_t *y, int *mo, int *d, int *h, int *mi, int *s, int *f)
{
    int64_t secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs - days * 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t year = 1970;
    while (days < 0) {
        year--;
        days += 365 + naive_leap(year);
    }
    while (days >= 365 + naive_leap(year)) {
        days -= 365 + naive_leap(year);
        year++;
    }
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int m = 0;
    for (;; m++) {
        int dm = mdays[m] + (m == 1 && naive_leap(year));
        if (days < dm)
            break;
        days -= dm;
    }
    *y = year;
    *mo = m + 1;
    *d = (int)days + 1;
    *h = (int)(sod / 3600);
    *mi = (int)(sod / 60 % 60);
    *s = (int)(sod % 60);
    *f = (int)frac;
}

static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void test_ts_round_trip(void **state)
{
    (void)state;
    const int64_t lo = -2208988800000000; /* 1900-01-01 */
    const int64_t hi = 7258118400000000;  /* 2200-01-01 */
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (int k = 0; k < 20000; k++) {
        int64_t us = lo + (int64_t)(next_rand(&rng) % (uint64_t)(hi - lo));
        if (k % 4 == 1)
            us -= us % 1000000; /* whole seconds */
        if (k % 4 == 2)
            us -= us % 86400000000; /* near midnight boundaries too */
        char buf[32], want[32];
        store_format_ts(us, buf);
        int64_t y;
        int mo, d, h, mi, s, f;
        naive_civil(us, &y, &mo, &d, &h, &mi, &s, &f);
        snprintf(want, sizeof want, "%04lld-%02d-%02dT%02d:%02d:%02d.%06dZ", (long long)y, mo, d, h,
                 mi, s, f);
        assert_string_equal(buf, want);
        int64_t back = 0;
        char err[128];
        assert_int_equal(store_parse_ts(buf, strlen(buf), &back, err, sizeof err), 0);
        assert_true(back == us);
        /* the same instant written with an offset and a 9-digit fraction */
        char off[48];
        int64_t local = us + 5 * 3600000000LL + 45 * 60000000LL;
        naive_civil(local, &y, &mo, &d, &h, &mi, &s, &f);
        snprintf(off, sizeof off, "%04lld-%02d-%02d %02d:%02d:%02d.%06d789+05:45", (long long)y, mo,
                 d, h, mi, s, f);
        assert_int_equal(store_parse_ts(off, strlen(off), &back, err, sizeof err), 0);
        assert_true(back == us);
    }
    /* 2200-01-01 itself: the oracle's constant */
    fmt_is(hi, "2200-01-01T00:00:00.000000Z");
}

/* ---- values ---- */

static store_fvalue val_ok(int type, uint32_t dim, const char *s, size_t len)
{
    store_ftype t = {type, dim};
    store_fvalue v;
    char err[256] = "";
    int rc = store_parse_value(&t, s, len, &v, err, sizeof err);
    if (rc != 0)
        fail_msg("%s '%.*s': rc %d (%s)", store_ftype_name(type), (int)len, s, rc, err);
    assert_int_equal(v.is_null, 0);
    return v;
}

static void val_bad(int type, uint32_t dim, const char *s, size_t len, const char *want)
{
    store_ftype t = {type, dim};
    store_fvalue v;
    char err[256] = "";
    assert_int_equal(store_parse_value(&t, s, len, &v, err, sizeof err), ERR_INVAL);
    if (strcmp(err, want) != 0)
        fail_msg("%s '%.*s': detail '%s', want '%s'", store_ftype_name(type), (int)len, s, err,
                 want);
}

static void test_value_ints(void **state)
{
    (void)state;
    assert_true(val_ok(FT_INT32, 0, S("2147483647")).i == 2147483647);
    assert_true(val_ok(FT_INT32, 0, S("-2147483648")).i == -2147483648LL);
    assert_true(val_ok(FT_INT32, 0, S("0")).i == 0);
    val_bad(FT_INT32, 0, S("2147483648"), "value '2147483648' is out of range for INT32");
    val_bad(FT_INT32, 0, S("-2147483649"), "value '-2147483649' is out of range for INT32");
    val_bad(FT_INT32, 0, S("1.0"), "value '1.0' is not a valid INT32");
    assert_true(val_ok(FT_INT64, 0, S("9223372036854775807")).i == INT64_MAX);
    assert_true(val_ok(FT_INT64, 0, S("-9223372036854775808")).i == INT64_MIN);
    val_bad(FT_INT64, 0, S("9223372036854775808"),
            "value '9223372036854775808' is not a valid INT64");
    val_bad(FT_INT64, 0, S("abc"), "value 'abc' is not a valid INT64");
    val_bad(FT_INT64, 0, S(""), "value '' is not a valid INT64");
    val_bad(FT_INT64, 0, S(" 1"), "value ' 1' is not a valid INT64");
    val_bad(FT_INT64, 0, S("+1"), "value '+1' is not a valid INT64");
    val_bad(FT_INT64, 0, S("01"), "value '01' is not a valid INT64");
    val_bad(FT_INT64, 0, S("1\n"), "value '1?' is not a valid INT64");
    val_bad(FT_INT64, 0, S("1\0"), "value '1?' is not a valid INT64");
}

static void test_value_floats(void **state)
{
    (void)state;
    assert_true(val_ok(FT_FLOAT64, 0, S("1.5")).f == 1.5);
    assert_true(val_ok(FT_FLOAT64, 0, S("-2e300")).f == -2e300);
    assert_true(val_ok(FT_FLOAT64, 0, S("3")).f == 3.0);
    assert_true(val_ok(FT_FLOAT64, 0, S("1.7976931348623157e308")).f == DBL_MAX);
    val_bad(FT_FLOAT64, 0, S("1e309"), "value '1e309' is not a valid FLOAT64");
    val_bad(FT_FLOAT64, 0, S("inf"), "value 'inf' is not a valid FLOAT64");
    val_bad(FT_FLOAT64, 0, S("-inf"), "value '-inf' is not a valid FLOAT64");
    val_bad(FT_FLOAT64, 0, S("nan"), "value 'nan' is not a valid FLOAT64");
    val_bad(FT_FLOAT64, 0, S("1.5x"), "value '1.5x' is not a valid FLOAT64");
    val_bad(FT_FLOAT64, 0, S(""), "value '' is not a valid FLOAT64");
    /* FLOAT32: the value is what a float holds */
    assert_true(val_ok(FT_FLOAT32, 0, S("1.5")).f == 1.5);
    assert_true(val_ok(FT_FLOAT32, 0, S("0.1")).f == (double)0.1f);
    assert_true(val_ok(FT_FLOAT32, 0, S("3.4028234663852886e38")).f == FLT_MAX);
    assert_true(val_ok(FT_FLOAT32, 0, S("-3.4028234663852886e38")).f == -FLT_MAX);
    assert_true(val_ok(FT_FLOAT32, 0, S("3.4e38")).f == (double)3.4e38f);
    val_bad(FT_FLOAT32, 0, S("3.5e38"), "value '3.5e38' is out of range for FLOAT32");
    val_bad(FT_FLOAT32, 0, S("-3.5e38"), "value '-3.5e38' is out of range for FLOAT32");
    val_bad(FT_FLOAT32, 0, S("1e300"), "value '1e300' is out of range for FLOAT32");
    val_bad(FT_FLOAT32, 0, S("inf"), "value 'inf' is not a valid FLOAT32");
    val_bad(FT_FLOAT32, 0, S("x"), "value 'x' is not a valid FLOAT32");
}

static void test_value_bool_ts(void **state)
{
    (void)state;
    assert_true(val_ok(FT_BOOL, 0, S("1")).i == 1);
    assert_true(val_ok(FT_BOOL, 0, S("0")).i == 0);
    assert_true(val_ok(FT_BOOL, 0, S("true")).i == 1);
    assert_true(val_ok(FT_BOOL, 0, S("TRUE")).i == 1);
    assert_true(val_ok(FT_BOOL, 0, S("False")).i == 0);
    assert_true(val_ok(FT_BOOL, 0, S("fAlSe")).i == 0);
    val_bad(FT_BOOL, 0, S("2"), "value '2' is not a valid BOOL");
    val_bad(FT_BOOL, 0, S("yes"), "value 'yes' is not a valid BOOL");
    val_bad(FT_BOOL, 0, S("truee"), "value 'truee' is not a valid BOOL");
    val_bad(FT_BOOL, 0, S("tru"), "value 'tru' is not a valid BOOL");
    val_bad(FT_BOOL, 0, S(""), "value '' is not a valid BOOL");
    val_bad(FT_BOOL, 0, S("01"), "value '01' is not a valid BOOL");
    assert_true(val_ok(FT_TIMESTAMP, 0, S("2021-04-12T10:59:42.123456Z")).i == 1618225182123456);
    assert_true(val_ok(FT_TIMESTAMP, 0, S("-5")).i == -5000);
    val_bad(FT_TIMESTAMP, 0, S("2021-13-01T00:00:00Z"),
            "invalid timestamp '2021-13-01T00:00:00Z': month out of range");
}

static void test_value_bytes_vector(void **state)
{
    (void)state;
    const char s[] = "a\0b\xff";
    store_fvalue v = val_ok(FT_STRING, 0, s, 4);
    assert_ptr_equal(v.bytes, s); /* borrowed */
    assert_int_equal(v.len, 4);
    v = val_ok(FT_BYTES, 0, s, 0);
    assert_int_equal(v.len, 0);
    float f[3] = {1, 2, 3};
    v = val_ok(FT_VECTOR, 3, (const char *)f, 12);
    assert_ptr_equal(v.bytes, (const char *)f);
    assert_int_equal(v.len, 12);
    val_bad(FT_VECTOR, 3, (const char *)f, 8,
            "vector blob of 8 bytes does not match dimension 3 (expected 12 bytes)");
    val_bad(FT_VECTOR, 3, (const char *)f, 0,
            "vector blob of 0 bytes does not match dimension 3 (expected 12 bytes)");
    val_bad(FT_VECTOR, 2, (const char *)f, 12,
            "vector blob of 12 bytes does not match dimension 2 (expected 8 bytes)");
    val_bad(FT_VECTOR, 0, "", 0, "invalid vector dimension 0");
    val_bad(0, 0, S("1"), "unknown feature type 0");
    val_bad(99, 0, S("1"), "unknown feature type 99");
}

static void test_value_detail_cut(void **state)
{
    (void)state;
    char longs[300];
    memset(longs, '7', sizeof longs);
    longs[0] = '\x7f';
    char want[256];
    snprintf(want, sizeof want, "value '?%.63s...' is not a valid INT64", longs + 1);
    val_bad(FT_INT64, 0, longs, sizeof longs, want);
}

/* ---- rows ---- */

typedef struct rowcase {
    store_ftype schema[16];
    store_fvalue vals[16];
    int n;
} rowcase;

static void assert_same_value(const store_ftype *t, const store_fvalue *a, const store_fvalue *b)
{
    assert_int_equal(a->is_null, b->is_null);
    if (a->is_null)
        return;
    switch (t->type) {
    case FT_INT32:
    case FT_INT64:
    case FT_BOOL:
    case FT_TIMESTAMP:
        assert_true(a->i == b->i);
        break;
    case FT_FLOAT32:
    case FT_FLOAT64:
        assert_memory_equal(&a->f, &b->f, sizeof a->f); /* bit for bit, -0.0 included */
        break;
    default:
        assert_int_equal(a->len, b->len);
        if (a->len)
            assert_memory_equal(a->bytes, b->bytes, a->len);
    }
}

/* Encodes, decodes, compares, and re-encodes to the same bytes. Returns the encoding. */
static void round_trip(const store_ftype *schema, int n, const store_fvalue *vals, buf *enc)
{
    buf_init(enc);
    store_row_encode(schema, n, vals, enc);
    store_fvalue *got = test_calloc((size_t)n + 1, sizeof *got);
    assert_int_equal(store_row_decode(schema, n, enc->data, enc->len, got), 0);
    for (int i = 0; i < n; i++)
        assert_same_value(&schema[i], &vals[i], &got[i]);
    buf again;
    buf_init(&again);
    store_row_encode(schema, n, got, &again);
    assert_int_equal(again.len, enc->len);
    assert_memory_equal(again.data, enc->data, enc->len);
    buf_free(&again);
    test_free(got);
}

static float vec4[4] = {1.5f, -2.25f, 0.0f, 1e-30f};

/* One field of each type, with values at their edges. */
static void all_types(rowcase *c)
{
    memset(c, 0, sizeof *c);
    int k = 0;
    c->schema[k] = (store_ftype){FT_INT32, 0};
    c->vals[k++].i = INT32_MIN;
    c->schema[k] = (store_ftype){FT_INT64, 0};
    c->vals[k++].i = INT64_MIN;
    c->schema[k] = (store_ftype){FT_FLOAT32, 0};
    c->vals[k++].f = (double)0.1f;
    c->schema[k] = (store_ftype){FT_FLOAT64, 0};
    c->vals[k++].f = -0.0;
    c->schema[k] = (store_ftype){FT_BOOL, 0};
    c->vals[k++].i = 1;
    c->schema[k] = (store_ftype){FT_STRING, 0};
    c->vals[k].bytes = "hello, world";
    c->vals[k++].len = 12;
    c->schema[k] = (store_ftype){FT_BYTES, 0};
    c->vals[k].bytes = "\0\xff\x80";
    c->vals[k++].len = 3;
    c->schema[k] = (store_ftype){FT_TIMESTAMP, 0};
    c->vals[k++].i = -1;
    c->schema[k] = (store_ftype){FT_VECTOR, 4};
    c->vals[k].bytes = (const char *)vec4;
    c->vals[k++].len = 16;
    c->schema[k] = (store_ftype){FT_INT32, 0};
    c->vals[k++].i = INT32_MAX;
    c->schema[k] = (store_ftype){FT_INT64, 0};
    c->vals[k++].i = INT64_MAX;
    c->schema[k] = (store_ftype){FT_FLOAT64, 0};
    c->vals[k++].f = DBL_MAX;
    c->schema[k] = (store_ftype){FT_FLOAT32, 0};
    c->vals[k++].f = -FLT_MAX;
    c->schema[k] = (store_ftype){FT_STRING, 0};
    c->vals[k++].len = 0; /* empty, not NULL */
    c->schema[k] = (store_ftype){FT_BOOL, 0};
    c->vals[k++].i = 0;
    c->schema[k] = (store_ftype){FT_TIMESTAMP, 0};
    c->vals[k++].i = 1618225182123456;
    c->n = k;
}

static void test_row_all_types(void **state)
{
    (void)state;
    rowcase c;
    all_types(&c);
    buf enc;
    round_trip(c.schema, c.n, c.vals, &enc);
    /* layout: version, count, 2 bitmap bytes, values, crc */
    assert_int_equal((unsigned char)enc.data[0], 1);
    assert_int_equal((unsigned char)enc.data[1], 16);
    assert_int_equal((unsigned char)enc.data[2], 0);
    assert_int_equal(enc.data[3], 0);
    assert_int_equal(enc.data[4], 0);
    assert_memory_equal(enc.data + 5, "\x00\x00\x00\x80", 4); /* INT32_MIN little-endian */
    size_t want = 5 + 4 + 8 + 4 + 8 + 1 + 13 + 4 + 8 + 16 + 4 + 8 + 8 + 4 + 1 + 1 + 8 + 4;
    assert_int_equal(enc.len, want);
    uint32_t crc = crc32c(0, enc.data, enc.len - 4);
    assert_memory_equal(enc.data + enc.len - 4, &crc, 4); /* little-endian host */
    buf_free(&enc);
}

static void test_row_nulls(void **state)
{
    (void)state;
    rowcase c;
    all_types(&c);
    /* every single NULL position, every pattern of the first 8, and all NULL */
    for (int pat = 0; pat < 256 + c.n + 1; pat++) {
        rowcase d = c;
        for (int i = 0; i < d.n; i++) {
            if (pat < 256)
                d.vals[i].is_null = i < 8 && ((pat >> i) & 1);
            else if (pat < 256 + c.n)
                d.vals[i].is_null = i == pat - 256;
            else
                d.vals[i].is_null = 1;
        }
        buf enc;
        round_trip(d.schema, d.n, d.vals, &enc);
        if (pat == 256 + c.n)
            assert_int_equal(enc.len, 3 + 2 + 4);
        buf_free(&enc);
    }
}

static void test_row_zero_fields(void **state)
{
    (void)state;
    buf enc;
    round_trip(NULL, 0, NULL, &enc);
    assert_int_equal(enc.len, 7);
    assert_memory_equal(enc.data, "\x01\x00\x00", 3);
    /* a zero-field row is not a one-field row */
    store_ftype t = {FT_INT32, 0};
    store_fvalue v;
    assert_int_equal(store_row_decode(&t, 1, enc.data, enc.len, &v), ERR_CORRUPT);
    buf_free(&enc);
}

static void test_row_4096_fields(void **state)
{
    (void)state;
    int n = FT_MAX_FIELDS;
    store_ftype *schema = test_calloc((size_t)n, sizeof *schema);
    store_fvalue *vals = test_calloc((size_t)n, sizeof *vals);
    char *strs = test_malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        schema[i].type = FT_INT32 + i % 8; /* every type but VECTOR */
        vals[i].is_null = i % 7 == 3;
        vals[i].i = schema[i].type == FT_BOOL ? i % 2 : (int64_t)i * 7919 - 100000;
        vals[i].f = schema[i].type == FT_FLOAT32 ? (double)(float)(i / 3.0) : i / 3.0;
        strs[i] = (char)i;
        vals[i].bytes = strs;
        vals[i].len = (size_t)(i % 200); /* lengths past 127 take a 2-byte varint */
    }
    buf enc;
    round_trip(schema, n, vals, &enc);
    assert_int_equal((unsigned char)enc.data[1] | (unsigned char)enc.data[2] << 8, 4096);
    buf_free(&enc);
    /* more than FT_MAX_FIELDS is refused */
    assert_int_equal(store_row_decode(schema, n + 1, "", 0, vals), ERR_CORRUPT);
    assert_int_equal(store_row_decode(schema, -1, "", 0, vals), ERR_CORRUPT);
    test_free(schema);
    test_free(vals);
    test_free(strs);
}

static void test_row_vectors(void **state)
{
    (void)state;
    uint32_t dims[] = {1, 768};
    for (size_t k = 0; k < 2; k++) {
        uint32_t dim = dims[k];
        float *v = test_malloc(dim * sizeof *v);
        for (uint32_t i = 0; i < dim; i++)
            v[i] = (float)i * 0.25f - 3.0f;
        store_ftype schema[3] = {{FT_VECTOR, dim}, {FT_STRING, 0}, {FT_VECTOR, dim}};
        store_fvalue vals[3] = {{0}};
        vals[0].bytes = (const char *)v;
        vals[0].len = dim * 4;
        vals[1].bytes = "k";
        vals[1].len = 1;
        vals[2].is_null = 1;
        buf enc;
        round_trip(schema, 3, vals, &enc);
        assert_int_equal(enc.len, 3 + 1 + dim * 4 + 2 + 4);
        assert_memory_equal(enc.data + 4, v, dim * 4); /* little-endian host */
        buf_free(&enc);
        test_free(v);
    }
}

static void test_row_truncations_and_flips(void **state)
{
    (void)state;
    rowcase c;
    all_types(&c);
    c.vals[2].is_null = 1;
    buf enc;
    round_trip(c.schema, c.n, c.vals, &enc);
    store_fvalue got[16];
    for (size_t len = 0; len < enc.len; len++)
        assert_int_equal(store_row_decode(c.schema, c.n, enc.data, len, got), ERR_CORRUPT);
    /* each truncation in its own allocation so ASan sees any read past it */
    for (size_t len = 0; len < enc.len; len++) {
        char *copy = test_malloc(len + 1);
        memcpy(copy, enc.data, len);
        assert_int_equal(store_row_decode(c.schema, c.n, copy, len, got), ERR_CORRUPT);
        test_free(copy);
    }
    /* extended by a trailing byte */
    buf_appendc(&enc, 0);
    assert_int_equal(store_row_decode(c.schema, c.n, enc.data, enc.len, got), ERR_CORRUPT);
    enc.len--;
    for (size_t i = 0; i < enc.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            enc.data[i] ^= (char)(1 << bit);
            assert_int_equal(store_row_decode(c.schema, c.n, enc.data, enc.len, got), ERR_CORRUPT);
            enc.data[i] ^= (char)(1 << bit);
        }
    }
    assert_int_equal(store_row_decode(c.schema, c.n, enc.data, enc.len, got), 0);
    buf_free(&enc);
}

/* Decodes bytes (given without a CRC; one is appended) against schema. */
static int decode_with_crc(const store_ftype *schema, int n, const char *p, size_t len)
{
    char tmp[256];
    memcpy(tmp, p, len);
    uint32_t crc = crc32c(0, p, len);
    for (int k = 0; k < 4; k++)
        tmp[len + (size_t)k] = (char)(crc >> (8 * k));
    store_fvalue vals[8];
    return store_row_decode(schema, n, tmp, len + 4, vals);
}

static void test_row_inconsistent(void **state)
{
    (void)state;
    store_ftype s1[] = {{FT_STRING, 0}};
    store_ftype b1[] = {{FT_BOOL, 0}};
    store_ftype f1[] = {{FT_FLOAT32, 0}};
    store_ftype d1[] = {{FT_FLOAT64, 0}};
    store_ftype i2[] = {{FT_INT32, 0}, {FT_INT32, 0}};
    store_ftype v1[] = {{FT_VECTOR, 2}};
    store_ftype bad[] = {{0, 0}};
    /* sanity: the well-formed ones pass */
    assert_int_equal(decode_with_crc(s1, 1, S("\x01\x01\x00\x00\x02hi")), 0);
    assert_int_equal(decode_with_crc(s1, 1, S("\x01\x01\x00\x01")), 0); /* NULL */
    assert_int_equal(decode_with_crc(b1, 1, S("\x01\x01\x00\x00\x01")), 0);
    assert_int_equal(decode_with_crc(s1, 1, S("\x01\x01\x00\x00\x00")), 0); /* empty string */
    /* version and count */
    assert_int_equal(decode_with_crc(s1, 1, S("\x02\x01\x00\x00\x02hi")), ERR_CORRUPT);
    assert_int_equal(decode_with_crc(s1, 1, S("\x00\x01\x00\x00\x02hi")), ERR_CORRUPT);
    assert_int_equal(decode_with_crc(s1, 1, S("\x01\x02\x00\x00\x02hi")), ERR_CORRUPT);
    assert_int_equal(decode_with_crc(s1, 1, S("\x01\x01\x01\x00\x02hi")), ERR_CORRUPT);
    /* bitmap bits past the last field */
    assert_int_equal(decode_with_crc(s1, 1, S("\x01\x01\x00\x03")), ERR_CORRUPT);
    assert_int_equal(decode_with_crc(s1, 1, S("\x01\x01\x00\x81")), ERR_CORRUPT);
    /* varint: longer than what remains, cut short, overlong, too wide */
    assert_int_equal(decode_with_crc(s1, 1, S("\x01\x01\x00\x00\x03hi")), ERR_CORRUPT);
    assert_int_equal(decode_with_crc(s1, 1, S("\x01\x01\x00\x00\x01hi")),
                     ERR_CORRUPT); /* trailing */
    assert_int_equal(decode_with_crc(s1, 1, S("\x01\x01\x00\x00\x82")), ERR_CORRUPT);
    assert_int_equal(decode_with_crc(s1, 1, S("\x01\x01\x00\x00\x82\x00hi")), ERR_CORRUPT);
    assert_int_equal(decode_with_crc(s1, 1, S("\x01\x01\x00\x00\x80\x00")), ERR_CORRUPT);
    assert_int_equal(
        decode_with_crc(s1, 1, S("\x01\x01\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")),
        ERR_CORRUPT);
    assert_int_equal(
        decode_with_crc(s1, 1, S("\x01\x01\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02")),
        ERR_CORRUPT);
    assert_int_equal(
        decode_with_crc(s1, 1, S("\x01\x01\x00\x00\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01")),
        ERR_CORRUPT);
    /* BOOL other than 0/1, non-finite floats */
    assert_int_equal(decode_with_crc(b1, 1, S("\x01\x01\x00\x00\x02")), ERR_CORRUPT);
    assert_int_equal(decode_with_crc(f1, 1, S("\x01\x01\x00\x00\x00\x00\x80\x7f")), ERR_CORRUPT);
    assert_int_equal(decode_with_crc(f1, 1, S("\x01\x01\x00\x00\x01\x00\x80\xff")), ERR_CORRUPT);
    assert_int_equal(decode_with_crc(f1, 1, S("\x01\x01\x00\x00\x00\x00\x80\x3f")), 0);
    assert_int_equal(decode_with_crc(d1, 1, S("\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\xf0\x7f")),
                     ERR_CORRUPT);
    /* fixed widths short or long */
    assert_int_equal(decode_with_crc(i2, 2, S("\x01\x02\x00\x00\x01\x00\x00\x00\x02\x00\x00")),
                     ERR_CORRUPT);
    assert_int_equal(decode_with_crc(i2, 2, S("\x01\x02\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00")),
                     0);
    assert_int_equal(decode_with_crc(i2, 2, S("\x01\x02\x00\x02\x01\x00\x00\x00")), 0);
    assert_int_equal(decode_with_crc(i2, 2, S("\x01\x02\x00\x02\x01\x00\x00\x00\x00")),
                     ERR_CORRUPT);
    assert_int_equal(decode_with_crc(v1, 1, S("\x01\x01\x00\x00\x00\x00\x80\x3f\x00\x00\x80")),
                     ERR_CORRUPT);
    /* a schema with an unknown type cannot decode a non-NULL value */
    assert_int_equal(decode_with_crc(bad, 1, S("\x01\x01\x00\x00")), ERR_CORRUPT);
    assert_int_equal(decode_with_crc(bad, 1, S("\x01\x01\x00\x01")), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_ftype_names),
        cmocka_unit_test(test_ts_epoch_ms),
        cmocka_unit_test(test_ts_iso),
        cmocka_unit_test(test_ts_calendar),
        cmocka_unit_test(test_ts_errors),
        cmocka_unit_test(test_ts_error_detail),
        cmocka_unit_test(test_ts_format),
        cmocka_unit_test(test_ts_round_trip),
        cmocka_unit_test(test_value_ints),
        cmocka_unit_test(test_value_floats),
        cmocka_unit_test(test_value_bool_ts),
        cmocka_unit_test(test_value_bytes_vector),
        cmocka_unit_test(test_value_detail_cut),
        cmocka_unit_test(test_row_all_types),
        cmocka_unit_test(test_row_nulls),
        cmocka_unit_test(test_row_zero_fields),
        cmocka_unit_test(test_row_4096_fields),
        cmocka_unit_test(test_row_vectors),
        cmocka_unit_test(test_row_truncations_and_flips),
        cmocka_unit_test(test_row_inconsistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
