/* test_prom.c: unit tests for query/prom.h, the Prometheus text format writer: escaping of
 * label values (\, " and newline) and help texts (\ and newline only), sample lines with and
 * without labels, float spelling (integers, fractions, exponents, +Inf, -Inf, NaN), and
 * names made valid from data. Every output is compared byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "query/prom.h"

/* b's bytes as a string (b is NUL-terminated for the comparison, then emptied). */
static void assert_buf(buf *b, const char *want)
{
    buf_appendc(b, '\0');
    assert_string_equal(b->data, want);
    b->len = 0;
}

static void label_escaping(void **state)
{
    (void)state;
    buf b;
    buf_init(&b);
    prom_escape_label(&b, "plain");
    assert_buf(&b, "plain");
    prom_escape_label(&b, "a\\b\"c\nd");
    assert_buf(&b, "a\\\\b\\\"c\\nd");
    prom_escape_label(&b, "");
    assert_buf(&b, "");
    prom_escape_label(&b, "\\\\\"\"\n\n");
    assert_buf(&b, "\\\\\\\\\\\"\\\"\\n\\n");
    prom_escape_label(&b, "tab\there, utf-8 \xc3\xa9");
    assert_buf(&b, "tab\there, utf-8 \xc3\xa9"); /* only the three are escaped */
    buf_free(&b);
}

static void family_lines(void **state)
{
    (void)state;
    buf b;
    buf_init(&b);
    prom_family(&b, "quiver_x_total", "counter", "Calls \"of\" x\\y\nz.");
    /* help texts escape \ and newline, not the quote */
    assert_buf(&b, "# HELP quiver_x_total Calls \"of\" x\\\\y\\nz.\n"
                   "# TYPE quiver_x_total counter\n");
    buf_free(&b);
}

static void sample_lines(void **state)
{
    (void)state;
    buf b;
    buf_init(&b);
    prom_sample(&b, "quiver_up", NULL, NULL, 0, 1);
    assert_buf(&b, "quiver_up 1\n");
    prom_label one = {"db", "db0"};
    prom_sample(&b, "quiver_db_keys", NULL, &one, 1, 42);
    assert_buf(&b, "quiver_db_keys{db=\"db0\"} 42\n");
    prom_label two[2] = {{"cmd", "get\"\n"}, {"le", "+Inf"}};
    prom_sample(&b, "quiver_lat", "_bucket", two, 2, 7);
    assert_buf(&b, "quiver_lat_bucket{cmd=\"get\\\"\\n\",le=\"+Inf\"} 7\n");
    prom_sample(&b, "quiver_lat", "_sum", two, 1, 0.25);
    assert_buf(&b, "quiver_lat_sum{cmd=\"get\\\"\\n\"} 0.25\n");
    buf_free(&b);
}

static void value_spelling(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"},           {1, "1"},         {-3, "-3"},
        {1796177035, "1796177035"},           {9007199254740992.0, "9007199254740992"},
        {0.5, "0.5"},       {2e-05, "2e-05"}, {1e-06, "1e-06"},
        {0.000128, "0.000128"},               {8.388608, "8.388608"},
        {1e300, "1e+300"},
    };
    buf b;
    buf_init(&b);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        prom_value(&b, cases[i].v);
        assert_buf(&b, cases[i].want);
    }
    prom_value(&b, INFINITY);
    assert_buf(&b, "+Inf");
    prom_value(&b, -INFINITY);
    assert_buf(&b, "-Inf");
    prom_value(&b, NAN);
    assert_buf(&b, "NaN");
    buf_free(&b);
}

static void name_cleaning(void **state)
{
    (void)state;
    char a[] = "quiver_gpu_mem.used-bytes", b[] = "9lives", c[] = "ok_name:x9", d[] = "";
    prom_name_clean(a);
    prom_name_clean(b);
    prom_name_clean(c);
    prom_name_clean(d);
    assert_string_equal(a, "quiver_gpu_mem_used_bytes");
    assert_string_equal(b, "_lives");
    assert_string_equal(c, "ok_name:x9");
    assert_string_equal(d, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(label_escaping), cmocka_unit_test(family_lines),
        cmocka_unit_test(sample_lines),   cmocka_unit_test(value_spelling),
        cmocka_unit_test(name_cleaning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
