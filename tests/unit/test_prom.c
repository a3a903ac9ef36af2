/* test_prom.c: unit tests for query/prom.h, the Prometheus text format writer: escaping of
 * label values (\, " and newline) and help texts (\ and newline only), sample lines with and
 * without labels, float spelling (integers, fractions, exponents, +Inf, -Inf, NaN), and
 * names made valid from data; and metrics.c's reading of INFO text (scalars, labelled list
 * lines, the gpu section, fields that are not numbers or are missing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "query/prom.h"
#include "query/query.h"

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
        {0, "0"},
        {1, "1"},
        {-3, "-3"},
        {1796177035, "1796177035"},
        {9007199254740992.0, "9007199254740992"},
        {0.5, "0.5"},
        {2e-05, "2e-05"},
        {1e-06, "1e-06"},
        {0.000128, "0.000128"},
        {8.388608, "8.388608"},
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

/* ---- metrics_from_info: INFO text in, metrics out ---- */

static char *metrics_of(const char *info)
{
    buf b;
    buf_init(&b);
    metrics_from_info(&b, info, strlen(info));
    buf_appendc(&b, '\0');
    return b.data;
}

/* How many lines of text are exactly line. */
static int lines_equal(const char *text, const char *line)
{
    int n = 0;
    size_t len = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p += len)
        if ((p == text || p[-1] == '\n') && p[len] == '\n')
            n++;
    return n;
}

#define HAS(text, line) assert_int_equal(lines_equal(text, line), 1)

static void metrics_of_a_leader(void **state)
{
    (void)state;
    char *m = metrics_of("# Server\r\nquiver_version:0.1.0\r\nuptime_in_seconds:42\r\n\r\n"
                         "# Stats\r\ntotal_commands_processed:1234567\r\nkeyspace_hits:x\r\n"
                         "\r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\n"
                         "slave0:ip=10.0.0.7,port=6379,state=online,offset=99,lag=0\r\n"
                         "slave1:ip=a\"b\\c,port=1,state=wait_bgsave,offset=0,lag=3\r\n"
                         "master_repl_offset:99\r\n\r\n"
                         "# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0\r\n"
                         "db12:keys=1,expires=0,avg_ttl=0\r\n\r\n"
                         "# Commandstats\r\ncmdstat_get:calls=5,usec=20,usec_per_call=4.00,"
                         "rejected_calls=1,failed_calls=2\r\n"
                         "cmdstat_fs.push:calls=3,usec=3000000,usec_per_call=1000000.00,"
                         "rejected_calls=0,failed_calls=0\r\n");
    HAS(m, "# TYPE quiver_build_info gauge");
    HAS(m, "quiver_build_info{version=\"0.1.0\"} 1");
    HAS(m, "quiver_uptime_seconds 42");
    HAS(m, "# TYPE quiver_commands_processed_total counter");
    HAS(m, "quiver_commands_processed_total 1234567");
    assert_null(strstr(m, "keyspace_hits")); /* not a number: left out */
    HAS(m, "quiver_replication_role{role=\"master\"} 1");
    HAS(m, "quiver_replication_connected_replicas 2");
    HAS(m, "quiver_replication_offset_bytes 99");
    HAS(m, "quiver_replication_replica_offset_bytes{ip=\"10.0.0.7\",port=\"6379\","
           "state=\"online\"} 99");
    HAS(m, "quiver_replication_replica_lag_seconds{ip=\"a\\\"b\\\\c\",port=\"1\","
           "state=\"wait_bgsave\"} 3");
    HAS(m, "quiver_db_keys{db=\"db0\"} 10");
    HAS(m, "quiver_db_keys{db=\"db12\"} 1");
    HAS(m, "quiver_db_keys_expiring{db=\"db0\"} 2");
    HAS(m, "# TYPE quiver_command_calls_total counter");
    HAS(m, "quiver_command_calls_total{cmd=\"get\"} 5");
    HAS(m, "quiver_command_calls_total{cmd=\"fs.push\"} 3");
    HAS(m, "quiver_command_failed_calls_total{cmd=\"get\"} 2");
    HAS(m, "quiver_command_rejected_calls_total{cmd=\"get\"} 1");
    HAS(m, "quiver_command_duration_seconds_total{cmd=\"get\"} 2e-05");
    HAS(m, "quiver_command_duration_seconds_total{cmd=\"fs.push\"} 3");
    /* what INFO did not say is not made up; no replica-only metrics on a leader */
    assert_null(strstr(m, "quiver_memory_used_bytes"));
    assert_null(strstr(m, "master_link"));
    assert_null(strstr(m, "quiver_gpu"));
    /* one family header each, and every line ends */
    assert_int_equal(lines_equal(m, "# TYPE quiver_db_keys gauge"), 1);
    assert_int_equal(m[strlen(m) - 1], '\n');
    free(m);
}

static void metrics_of_a_replica_and_a_gpu(void **state)
{
    (void)state;
    char *m = metrics_of("# Gpu\r\ngpu_devices:2\r\nmemory.used-bytes:1.5e9\r\n"
                         "gpu_name:NVIDIA H200\r\nmaster_link_status:up\r\n\r\n"
                         "# Replication\r\nrole:slave\r\nmaster_link_status:down\r\n"
                         "master_last_io_seconds_ago:-1\r\nmaster_link_down_since_seconds:7\r\n");
    HAS(m, "quiver_replication_role{role=\"slave\"} 1");
    /* the gpu section's master_link_status is the gpu's own field, not replication's */
    HAS(m, "quiver_replication_master_link_up 0");
    HAS(m, "quiver_replication_master_last_io_seconds -1");
    HAS(m, "quiver_replication_master_link_down_seconds 7");
    HAS(m, "# TYPE quiver_gpu_devices untyped");
    HAS(m, "quiver_gpu_devices 2");
    HAS(m, "quiver_gpu_memory_used_bytes 1500000000");
    assert_null(strstr(m, "H200")); /* words are not numbers */
    free(m);
}

static void metrics_of_nothing(void **state)
{
    (void)state;
    char *m = metrics_of("");
    assert_string_equal(m, "");
    free(m);
    m = metrics_of("garbage without colons\n#\n:\n::\ndb0:keys=\ndb1:keys\n"
                   "uptime_in_seconds:\nconnected_clients:1x\n");
    assert_string_equal(m, "");
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(label_escaping),
        cmocka_unit_test(family_lines),
        cmocka_unit_test(sample_lines),
        cmocka_unit_test(value_spelling),
        cmocka_unit_test(name_cleaning),
        cmocka_unit_test(metrics_of_a_leader),
        cmocka_unit_test(metrics_of_a_replica_and_a_gpu),
        cmocka_unit_test(metrics_of_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
