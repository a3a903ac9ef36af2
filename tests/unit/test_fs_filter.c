/* test_fs_filter.c: unit tests for FS.KNN's filter expressions (query/fs_filter.c): every
 * operator on every kind of field, precedence and parentheses, "in" and "not in", the
 * three-valued logic of NULLs, float32 rounding of literals, timestamps as milliseconds and
 * ISO-8601, quoted field names and string escapes, long flat chains, and malformed
 * expressions: each refused with ERR_INVAL (or ERR_LIMIT) and the offset of the fault. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"
#include "query/fs_filter.h"

/* The view every test filters: one field of each type (and one with an odd name). */
enum { F_I32, F_I64, F_F32, F_F64, F_BOOL, F_STR, F_BYTES, F_TS, F_VEC, F_ODD, NFIELDS };

static store_field fields[NFIELDS] = {
    {.name = "i32", .type = {FT_INT32, 0}},     {.name = "i64", .type = {FT_INT64, 0}},
    {.name = "rate", .type = {FT_FLOAT32, 0}},  {.name = "f64", .type = {FT_FLOAT64, 0}},
    {.name = "active", .type = {FT_BOOL, 0}},   {.name = "city", .type = {FT_STRING, 0}},
    {.name = "raw", .type = {FT_BYTES, 0}},     {.name = "seen", .type = {FT_TIMESTAMP, 0}},
    {.name = "emb", .type = {FT_VECTOR, 2}},    {.name = "rate:7d", .type = {FT_FLOAT64, 0}},
};
static const store_view view = {.name = "drivers", .nfields = NFIELDS, .fields = fields};

/* A row: every field set to a known value. */
static void base_row(store_fvalue *r)
{
    memset(r, 0, NFIELDS * sizeof *r);
    r[F_I32].i = 7;
    r[F_I64].i = INT64_MAX;
    r[F_F32].f = (float)0.1;
    r[F_F64].f = 2.5;
    r[F_BOOL].i = 1;
    r[F_STR].bytes = "Paris";
    r[F_STR].len = 5;
    r[F_BYTES].bytes = "a\0b";
    r[F_BYTES].len = 3;
    r[F_TS].i = 1600000000000000LL; /* 2020-09-13T12:26:40Z */
    r[F_VEC].bytes = "\0\0\0\0\0\0\0\0";
    r[F_VEC].len = 8;
    r[F_ODD].f = -1;
}

/* 1 or 0 as expr matches r; fails the test if expr does not parse. */
static int match_row(const char *expr, const store_fvalue *r)
{
    fs_filter *f;
    char err[256] = "";
    int rc = fs_filter_parse(expr, strlen(expr), &view, &f, err, sizeof err);
    if (rc) {
        fprintf(stderr, "parse of \"%.200s\" failed: %s\n", expr, err);
        fail();
    }
    int m = fs_filter_match(f, r);
    fs_filter_free(f);
    return m;
}

static int match(const char *expr)
{
    store_fvalue r[NFIELDS];
    base_row(r);
    return match_row(expr, r);
}

/* expr must be refused with rc, and the detail must contain want. */
static void refused_rc(const char *expr, int want_rc, const char *want)
{
    fs_filter *f = (fs_filter *)&f;
    char err[256] = "";
    int rc = fs_filter_parse(expr, strlen(expr), &view, &f, err, sizeof err);
    if (rc != want_rc || !strstr(err, want)) {
        fprintf(stderr, "\"%.200s\": rc %d, detail \"%s\" (wanted %d, \"%s\")\n", expr, rc, err,
                want_rc, want);
        fail();
    }
    assert_null(f);
}

static void refused(const char *expr, const char *want)
{
    refused_rc(expr, ERR_INVAL, want);
}

static void test_numbers(void **state)
{
    (void)state;
    assert_true(match(".i32 == 7"));
    assert_false(match(".i32 != 7"));
    assert_true(match(".i32 < 8") && match(".i32 <= 7") && match(".i32 > 6.5"));
    assert_false(match(".i32 > 7") || match(".i32 < 7") || match(".i32 >= 7.0001"));
    assert_true(match(".i32 >= -3") && match(".i32 == 7.0") && match(".i32 < 1e3"));
    assert_true(match("7 == .i32") && match("8 > .i32")); /* literal on the left */
    /* INT64 compares exactly, even where doubles cannot tell the values apart */
    assert_true(match(".i64 == 9223372036854775807"));
    assert_true(match(".i64 > 9223372036854775806"));
    assert_false(match(".i64 < 9223372036854775807"));
    assert_true(match(".i64 > 9.2e18"));
    /* fields against fields */
    assert_true(match(".f64 < .i32") && match(".i32 > .rate") && match(".f64 != .rate"));
    assert_true(match("1 < 2") && !match("2 < 1"));
}

static void test_float32_literals(void **state)
{
    (void)state;
    /* a literal meeting a FLOAT32 field is rounded to float32 first, as a push would be */
    assert_true(match(".rate == 0.1"));
    assert_false(match(".rate > 0.1") || match(".rate < 0.1"));
    assert_true(match(".rate >= 0.1") && match("0.1 == .rate"));
    assert_true(match(".rate in [0.3, 0.1]"));
    /* a FLOAT64 field keeps full precision */
    store_fvalue r[NFIELDS];
    base_row(r);
    r[F_F64].f = (float)0.1;
    assert_false(match_row(".f64 == 0.1", r));
    assert_true(match_row(".f64 > 0.1", r));
}

static void test_strings_bools(void **state)
{
    (void)state;
    assert_true(match(".city == \"Paris\"") && match(".city == 'Paris'"));
    assert_false(match(".city == \"paris\"") || match(".city == \"Pari\""));
    assert_true(match(".city > \"Pari\"") && match(".city < \"Parisx\"") &&
                match(".city < \"Q\""));
    assert_true(match(".raw == \"a\\x00b\"") && match(".raw > \"a\""));
    assert_true(match(".city != \"Lyon\""));
    assert_true(match(".active") && match(".active == true") && !match(".active == false"));
    assert_true(match(".active > false") && match("true") && !match("false"));
    assert_true(match("not .active == false"));
    /* escapes */
    store_fvalue r[NFIELDS];
    base_row(r);
    r[F_STR].bytes = "a\"b'c\\d\n\t\r";
    r[F_STR].len = 10;
    assert_true(match_row(".city == \"a\\\"b'c\\\\d\\n\\t\\r\"", r));
    assert_true(match_row(".city == 'a\"b\\'c\\\\d\\n\\t\\r'", r));
    assert_true(match_row(".city == \"\\x61\\\"b\\x27c\\x5Cd\\x0a\\x09\\x0D\"", r));
    r[F_STR].len = 0;
    assert_true(match_row(".city == \"\"", r) && match_row(".city < \"a\"", r));
}

static void test_timestamps(void **state)
{
    (void)state;
    assert_true(match(".seen == 1600000000000"));
    assert_true(match(".seen == \"2020-09-13T12:26:40Z\""));
    assert_true(match(".seen > \"2020-09-13 12:26:39.999999\""));
    assert_true(match(".seen < \"2020-09-13T14:26:41+02:00\""));
    assert_true(match(".seen in [1, 1600000000000]"));
    assert_true(match(".seen >= .seen"));
    refused(".seen > 1.5", "whole epoch milliseconds");
    refused(".seen > \"yesterday\"", "at offset 8:");
    refused(".seen > 99999999999999999", "at offset 8:");
    refused(".seen > .i64", "cannot compare TIMESTAMP with INT64");
}

static void test_in(void **state)
{
    (void)state;
    assert_true(match(".city in [\"Lyon\", \"Paris\"]"));
    assert_false(match(".city in [\"Lyon\"]") || match(".city in []"));
    assert_true(match(".city not in [\"Lyon\"]") && match(".city NOT IN []"));
    assert_false(match(".city not in [\"Paris\"]"));
    assert_true(match(".i32 in [1, 7.0, 9]") && match(".i64 in [9223372036854775807]"));
    assert_true(match(".active in [true]") && !match(".active in [false]"));
    refused(".city in [\"a\", 1]", "cannot compare STRING with a number");
    refused(".city in [.city]", "expected a literal in the list");
    refused(".city in \"Paris\"", "expected '[' after in");
    refused(".city in [\"a\" \"b\"]", "expected ',' or ']'");
    refused(".city in [\"a\",]", "at offset 14: expected a literal");
    refused(".city in [\"a\"", "expected ',' or ']', found the end");
    refused(".city not \"a\"", "expected in after not");
}

static void test_logic_and_precedence(void **state)
{
    (void)state;
    assert_true(match(".i32 == 7 and .city == \"Paris\""));
    assert_false(match(".i32 == 7 and .city == \"Lyon\""));
    assert_true(match(".i32 == 1 or .city == \"Paris\""));
    /* and binds tighter than or; not tighter than both */
    assert_true(match(".i32 == 7 or .i32 == 1 and .i32 == 2"));
    assert_false(match("(.i32 == 7 or .i32 == 1) and .i32 == 2"));
    assert_false(match("not .i32 == 7 or .i32 == 1"));
    assert_true(match("not (.i32 == 1 or .i32 == 2)"));
    assert_true(match("not not .active"));
    assert_true(match("((((.active))))"));
    assert_true(match(".rate > 0.05 AND .city == \"Paris\" Or false"));
    assert_true(match("(.i32==7)and(.city=='Paris')"));
    assert_true(match("\t.i32\n==\r7 "));
}

static void test_nulls(void **state)
{
    (void)state;
    store_fvalue r[NFIELDS];
    base_row(r);
    r[F_STR].is_null = 1;
    r[F_BOOL].is_null = 1;
    /* a comparison with NULL is unknown, and unknown never matches, even under not */
    assert_false(match_row(".city == \"Paris\"", r));
    assert_false(match_row(".city != \"Paris\"", r));
    assert_false(match_row("not .city == \"Paris\"", r));
    assert_false(match_row(".city in [\"Paris\"]", r) || match_row(".city not in [\"x\"]", r));
    assert_false(match_row(".active", r) || match_row("not .active", r));
    assert_false(match_row(".city == .city", r));
    /* three-valued and/or */
    assert_true(match_row(".city == \"x\" or .i32 == 7", r));
    assert_false(match_row(".city == \"x\" or .i32 == 8", r));
    assert_false(match_row(".city == \"x\" and .i32 == 7", r));
    assert_false(match_row("not (.city == \"x\" and .i32 == 7)", r));
    assert_true(match_row("not (.city == \"x\" and .i32 == 8)", r)); /* false and unknown */
    assert_true(match_row("not (.city == \"x\" or .i32 == 7) or true", r));
}

static void test_field_names(void **state)
{
    (void)state;
    assert_true(match(".\"rate:7d\" < 0") && match(".'rate:7d' == -1"));
    assert_true(match(".\"city\" == 'Paris'"));
    refused(".nope > 1", "at offset 0: unknown field 'nope' of feature view 'drivers'");
    refused(".\"rate\" > 1 and .\"x y\" == 1", "at offset 16: unknown field 'x y'");
    refused(". > 1", "at offset 0: '.' must be followed by a field name");
    refused(".emb == 1", "field 'emb' is a VECTOR: it cannot be filtered on");
    refused("rate > 1", "at offset 0: unknown word 'rate' (fields are written .rate");
}

static void test_type_errors(void **state)
{
    (void)state;
    refused(".city > 3", "at offset 6: cannot compare STRING with a number");
    refused(".i32 == \"7\"", "at offset 5: cannot compare INT32 with a string");
    refused(".active == 1", "cannot compare BOOL with a number");
    refused(".rate == true", "cannot compare FLOAT32 with a boolean");
    refused(".city == .i32", "cannot compare STRING with INT32");
    refused(".i32", "at offset 0: INT32 is not a condition");
    refused("\"x\"", "a string is not a condition");
    refused(".i32 == 7 and 3", "at offset 14: a number is not a condition");
}

static void test_malformed(void **state)
{
    (void)state;
    refused("", "at offset 0: empty expression");
    refused("   ", "at offset 0: empty expression");
    refused(".i32 = 7", "at offset 5: '=' is not an operator: write '=='");
    refused(".i32 ! 7", "at offset 5: '!' is not an operator");
    refused(".i32 == ", "at offset 8: expected a field or a value after the operator, found "
            "the end");
    refused(".i32 == and", "expected a field or a value after the operator, found 'and'");
    refused(".i32 == 7 and", "at offset 13: expected a condition, found the end");
    refused("and .i32 == 7", "at offset 0: expected a condition, found 'and'");
    refused("(.i32 == 7", "at offset 10: expected ')', found the end");
    refused(".i32 == 7)", "at offset 9: expected 'and', 'or' or the end, found ')'");
    refused("()", "at offset 1: expected a condition, found ')'");
    refused(".i32 == 7 .i32 == 7", "at offset 10: expected 'and', 'or' or the end");
    refused(".i32 == 7 == 7", "expected 'and', 'or' or the end, found '=='");
    refused(".i32 == 1.2.3", "at offset 8: '1.2.3' is not a number");
    refused(".i32 == 12abc", "'12a' is not a number");
    refused(".i32 == -", "'-' is not a number");
    refused(".i32 == inf", "unknown word 'inf'");
    refused(".i32 == 1e999", "'1e999' is not a number");
    refused(".city == \"Paris", "at offset 9: string not closed (missing \")");
    refused(".city == 'Paris", "string not closed (missing ')");
    refused(".city == \"a\\qb\"", "at offset 11: unknown escape");
    refused(".city == \"a\\x4\"", "at offset 11: \\x needs two hex digits");
    refused(".city == \"a\\", "at offset 11: unknown escape");
    refused(".i32 == 7 && .i32 == 7", "at offset 10: unexpected character '&'");
    refused(".i32 == 7 ; drop", "unexpected character ';'");
    refused("\x01", "unexpected character '?'");
    char nul[] = ".i32 == 7\0";
    fs_filter *f;
    char err[128];
    assert_int_equal(fs_filter_parse(nul, sizeof nul - 1, &view, &f, err, sizeof err),
                     ERR_INVAL);
    assert_non_null(strstr(err, "at offset 9: unexpected character '?'"));
}

static void test_limits(void **state)
{
    (void)state;
    char expr[1024];
    /* FS_FILTER_MAX_DEPTH levels of parentheses parse, one more does not */
    int d = FS_FILTER_MAX_DEPTH;
    snprintf(expr, sizeof expr, "%.*s.active%.*s", d, "((((((((((((((((((((((((((((((((((((("
             "((((((((((((((((((((((((((((((((((((", d, "))))))))))))))))))))))))))))))))))))))"
             "))))))))))))))))))))))))))))))))))))))");
    assert_true(match(expr));
    d++;
    snprintf(expr, sizeof expr, "%.*s.active%.*s", d, "((((((((((((((((((((((((((((((((((((("
             "((((((((((((((((((((((((((((((((((((", d, "))))))))))))))))))))))))))))))))))))))"
             "))))))))))))))))))))))))))))))))))))))");
    refused_rc(expr, ERR_LIMIT, "nested deeper than 64 levels");
    buf b;
    buf_init(&b);
    for (int i = 0; i < FS_FILTER_MAX_DEPTH; i++)
        buf_printf(&b, "not ");
    buf_printf(&b, ".active");
    buf_appendc(&b, '\0');
    assert_true(match(b.data)); /* an even number of nots */
    b.len = 0;
    for (int i = 0; i < 100; i++)
        buf_printf(&b, "not ");
    buf_printf(&b, ".active");
    buf_appendc(&b, '\0');
    refused_rc(b.data, ERR_LIMIT, "at offset 260: expression nested deeper than 64");
    /* long and/or chains are flat: thousands of terms are fine */
    b.len = 0;
    for (int i = 0; i < 3000; i++)
        buf_printf(&b, "%s.i32 == %d", i ? " or " : "", 3000 - i);
    buf_appendc(&b, '\0');
    assert_true(match(b.data)); /* term 2993 holds */
    b.len = 0;
    for (int i = 0; i < 3000; i++)
        buf_printf(&b, "%s.i32 != %d", i ? " and " : "", 10000 + i);
    buf_appendc(&b, '\0');
    assert_true(match(b.data));
    buf_free(&b);
    /* too long */
    size_t n = FS_FILTER_MAX_LEN + 1;
    char *big = xmalloc(n);
    memset(big, ' ', n);
    fs_filter *f;
    char err[128];
    assert_int_equal(fs_filter_parse(big, n, &view, &f, err, sizeof err), ERR_LIMIT);
    assert_non_null(strstr(err, "longer than 65536 bytes"));
    xfree(big);
}

static void test_error_detail_truncated(void **state)
{
    (void)state;
    /* a small buffer gets a terminated, truncated message */
    fs_filter *f;
    char err[16];
    memset(err, 'x', sizeof err);
    assert_int_equal(fs_filter_parse("nope", 4, &view, &f, err, sizeof err), ERR_INVAL);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_memory_equal(err, "at offset 0: un", 15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_float32_literals),
        cmocka_unit_test(test_strings_bools),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_in),
        cmocka_unit_test(test_logic_and_precedence),
        cmocka_unit_test(test_nulls),
        cmocka_unit_test(test_field_names),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_error_detail_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
