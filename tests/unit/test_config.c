/* test_config.c: unit tests for core/config.h: defaults, sizes, redis.conf word splitting,
 * CONFIG SET validation and its messages, client-output-buffer-limit, loading files (with
 * "file:line" errors), CONFIG GET patterns, deep copies, and CONFIG REWRITE editing a real
 * file in place (comments kept, duplicates collapsed, changed and new options written). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "wire/tls.h"

#define NOPTIONS 53 /* rows of the option table in core/config.c */
#define MB (1024LL * 1024)
#define GB (1024LL * MB)

/* ---- helpers ---- */

/* A temporary file holding text; path is filled in. */
static void write_temp(char *path, size_t n, const char *text)
{
    snprintf(path, n, "/tmp/quiver-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/* The whole file, NUL-terminated; free() it. */
static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t cap = 1 << 16, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    len = fread(s, 1, cap - 1, f);
    s[len] = '\0';
    fclose(f);
    return s;
}

/* config_set with a NULL-terminated list of arguments. */
static int set_args(config *cfg, const char *name, int startup, char *err, size_t errlen, ...)
{
    const char *argv[16];
    int argc = 0;
    va_list ap;
    va_start(ap, errlen);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 16)
        argv[argc++] = a;
    va_end(ap);
    err[0] = '\0';
    return config_set(cfg, name, argc, argv, startup, err, errlen);
}

#define SET(cfg, name, ...) set_args(cfg, name, 0, err, sizeof err, __VA_ARGS__, NULL)
#define SET_STARTUP(cfg, name, ...) set_args(cfg, name, 1, err, sizeof err, __VA_ARGS__, NULL)

/* Collects config_get's output. */
typedef struct got {
    int n;
    char names[NOPTIONS + 1][64];
    char values[NOPTIONS + 1][1100];
} got;

static void collect(void *ctx, const char *name, const char *value)
{
    got *g = ctx;
    assert_true(g->n <= NOPTIONS);
    snprintf(g->names[g->n], sizeof g->names[0], "%s", name);
    snprintf(g->values[g->n], sizeof g->values[0], "%s", value);
    g->n++;
}

static int get(const config *cfg, const char *pattern, got *g)
{
    memset(g, 0, sizeof *g);
    config_get(cfg, pattern, strlen(pattern), collect, g);
    return g->n;
}

/* The value CONFIG GET shows for one option name (which must match exactly one). */
static const char *get1(const config *cfg, const char *name, got *g)
{
    assert_int_equal(get(cfg, name, g), 1);
    assert_string_equal(g->names[0], name);
    return g->values[0];
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    (void)state;
    config cfg;
    config_init(&cfg);
    assert_int_equal(cfg.port, 6379);
    assert_string_equal(cfg.bind, "127.0.0.1");
    assert_string_equal(cfg.dir, "./data");
    assert_string_equal(cfg.requirepass, "");
    assert_int_equal(cfg.durability, 1); /* "everysec", index 1 of no/everysec/always */
    assert_int_equal(cfg.maxclients, 10000);
    assert_int_equal(cfg.protected_mode, 1);
    assert_true(cfg.proto_max_bulk_len == 512 * MB);
    assert_true(cfg.obuf_hard == GB);
    assert_true(cfg.obuf_soft == 0);
    assert_int_equal(cfg.obuf_soft_secs, 0);
    assert_int_equal(cfg.timeout, 0);
    assert_int_equal(cfg.tcp_backlog, 511);
    assert_int_equal(cfg.hz, 10);
    assert_int_equal(cfg.loglevel, 2); /* notice */
    assert_string_equal(cfg.logfile, "");
    assert_string_equal(cfg.pidfile, "");
    assert_true(cfg.lmdb_map_size == 256 * MB);
    assert_int_equal(cfg.databases, 16);
    assert_int_equal(cfg.save, 0);
    assert_int_equal(cfg.appendonly, 0);
    assert_null(cfg.config_file);
    config_free(&cfg);
    assert_null(cfg.bind); /* config_free leaves a zeroed struct */
}

/* ---- sizes ---- */

static void size_ok(const char *s, long long want)
{
    long long v = -7;
    assert_int_equal(config_parse_size(s, &v), 0);
    assert_true(v == want);
}

static void size_bad(const char *s)
{
    long long v = -7;
    assert_int_equal(config_parse_size(s, &v), ERR_RANGE);
    assert_true(v == -7);
}

static void test_parse_size(void **state)
{
    (void)state;
    size_ok("0", 0);
    size_ok("100", 100);
    size_ok("100b", 100);
    size_ok("1k", 1000);
    size_ok("1kb", 1024);
    size_ok("1K", 1000);
    size_ok("1KB", 1024);
    size_ok("3m", 3000000);
    size_ok("3mb", 3 * MB);
    size_ok("2g", 2000000000LL);
    size_ok("2gb", 2 * GB);
    size_ok("2GB", 2 * GB);
    size_ok("9223372036854775807", LLONG_MAX);
    size_bad("");
    size_bad("kb");
    size_bad("1x");
    size_bad("1kbb");
    size_bad("1 kb");
    size_bad("1tb");
    size_bad("-1");
    size_bad("-1kb");
    size_bad("1.5mb");
    size_bad("9223372036854775808");  /* overflows long long */
    size_bad("9223372036854775807k"); /* overflows once multiplied */
    size_bad("8589934592gb");
}

/* ---- word splitting ---- */

static void test_split_words(void **state)
{
    (void)state;
    char **w;
    int n = config_split_words("set \"a b\" 'c d'  plain\t", &w);
    assert_int_equal(n, 4);
    assert_string_equal(w[0], "set");
    assert_string_equal(w[1], "a b");
    assert_string_equal(w[2], "c d");
    assert_string_equal(w[3], "plain");
    config_free_words(w, n);

    /* escapes inside double quotes; single quotes keep backslashes */
    n = config_split_words("\"x\\ny\\tz\\r\\\"q\\\\\" 'a\\nb'", &w);
    assert_int_equal(n, 2);
    assert_string_equal(w[0], "x\ny\tz\r\"q\\");
    assert_string_equal(w[1], "a\\nb");
    config_free_words(w, n);

    /* empty quoted word, quotes joined to an unquoted start, many words (growth) */
    n = config_split_words("\"\" ab\"c d\" 1 2 3 4 5 6 7 8 9", &w);
    assert_int_equal(n, 11);
    assert_string_equal(w[0], "");
    assert_string_equal(w[1], "abc d");
    assert_string_equal(w[10], "9");
    config_free_words(w, n);

    n = config_split_words("", &w);
    assert_int_equal(n, 0);
    config_free_words(w, n);
    n = config_split_words("  \t \r\n", &w);
    assert_int_equal(n, 0);
    config_free_words(w, n);

    /* unbalanced quotes and a closing quote followed by a letter */
    assert_int_equal(config_split_words("set \"abc", &w), -1);
    assert_null(w);
    assert_int_equal(config_split_words("set 'abc", &w), -1);
    assert_int_equal(config_split_words("a \"b\\\"", &w), -1); /* the quote is escaped */
    assert_int_equal(config_split_words("\"abc\"d", &w), -1);
    assert_int_equal(config_split_words("'abc'd e", &w), -1);
    assert_int_equal(config_split_words("x \"a\"\"b\"", &w), -1);
    /* a closing quote followed by whitespace or the end is fine */
    n = config_split_words("\"abc\"\n", &w);
    assert_int_equal(n, 1);
    assert_string_equal(w[0], "abc");
    config_free_words(w, n);
}

static void test_split_words_escapes(void **state)
{
    (void)state;
    /* redis.conf (sdssplitargs) also reads \' inside single quotes and \xHH inside double */
    char **w;
    int n1 = config_split_words("'it\\'s'", &w);
    int ok1 = n1 == 1 && strcmp(w[0], "it's") == 0;
    if (n1 >= 0)
        config_free_words(w, n1);
    int n2 = config_split_words("\"\\x41\\x7a\"", &w);
    int ok2 = n2 == 1 && strcmp(w[0], "Az") == 0;
    if (n2 >= 0)
        config_free_words(w, n2);
    assert_true(ok1);
    assert_true(ok2);
}

/* ---- CONFIG SET ---- */

static void test_set_known_and_unknown(void **state)
{
    (void)state;
    config cfg;
    char err[256];
    config_init(&cfg);

    assert_int_equal(SET(&cfg, "maxclients", "100"), 0);
    assert_int_equal(cfg.maxclients, 100);
    assert_int_equal(SET(&cfg, "MaxClients", "101"), 0); /* names are case-insensitive */
    assert_int_equal(cfg.maxclients, 101);
    assert_int_equal(SET(&cfg, "timeout", "300"), 0);
    assert_int_equal(cfg.timeout, 300);
    assert_int_equal(SET(&cfg, "requirepass", "s3cret"), 0);
    assert_string_equal(cfg.requirepass, "s3cret");
    assert_int_equal(SET(&cfg, "requirepass", ""), 0);
    assert_string_equal(cfg.requirepass, "");
    assert_int_equal(SET(&cfg, "proto-max-bulk-len", "2mb"), 0);
    assert_true(cfg.proto_max_bulk_len == 2 * MB);

    assert_int_equal(SET(&cfg, "nosuch", "1"), ERR_INVAL);
    assert_string_equal(err, "Unknown option or number of arguments for CONFIG SET - 'nosuch'");

    /* no value at all */
    assert_int_equal(config_set(&cfg, "hz", 0, NULL, 0, err, sizeof err), ERR_INVAL);
    assert_string_equal(err, "wrong number of arguments for 'hz'");
    /* two values for a single-valued option */
    assert_int_equal(SET(&cfg, "hz", "10", "20"), ERR_INVAL);
    assert_non_null(strstr(err, "wrong number of arguments for 'hz'"));
    assert_int_equal(cfg.hz, 10);
    config_free(&cfg);
}

static void test_set_immutable(void **state)
{
    (void)state;
    config cfg;
    char err[256];
    config_init(&cfg);
    assert_int_equal(SET(&cfg, "port", "7000"), ERR_INVAL);
    assert_string_equal(err, "CONFIG SET failed (possibly related to argument 'port') - can't "
                             "set immutable config");
    assert_int_equal(cfg.port, 6379);
    assert_int_equal(SET(&cfg, "dir", "/tmp"), ERR_INVAL);
    assert_string_equal(cfg.dir, "./data");
    assert_int_equal(SET(&cfg, "databases", "16"), ERR_INVAL);

    assert_int_equal(SET_STARTUP(&cfg, "port", "7000"), 0);
    assert_int_equal(cfg.port, 7000);
    assert_int_equal(SET_STARTUP(&cfg, "dir", "/tmp/q"), 0);
    assert_string_equal(cfg.dir, "/tmp/q");
    assert_int_equal(SET_STARTUP(&cfg, "bind", "127.0.0.1", "::1"), 0);
    assert_string_equal(cfg.bind, "127.0.0.1 ::1"); /* several addresses are joined */
    assert_int_equal(SET_STARTUP(&cfg, "lmdb-map-size", "4gb"), 0);
    assert_true(cfg.lmdb_map_size == 4 * GB);
    /* fixed options accept only their one value, even at startup */
    assert_int_equal(SET_STARTUP(&cfg, "databases", "16"), 0);
    assert_int_equal(SET_STARTUP(&cfg, "databases", "32"), ERR_INVAL);
    assert_int_equal(SET_STARTUP(&cfg, "appendonly", "yes"), ERR_INVAL);
    assert_int_equal(SET_STARTUP(&cfg, "save", ""), 0);
    assert_int_equal(SET_STARTUP(&cfg, "save", "900 1"), ERR_INVAL);
    config_free(&cfg);
}

static void test_set_int_range(void **state)
{
    (void)state;
    config cfg;
    char err[256];
    config_init(&cfg);
    assert_int_equal(SET(&cfg, "hz", "1000"), ERR_INVAL);
    assert_string_equal(err, "Invalid argument '1000' for CONFIG SET 'hz' - argument must be "
                             "between 1 and 500 inclusive");
    assert_int_equal(SET(&cfg, "hz", "0"), ERR_INVAL);
    assert_int_equal(SET(&cfg, "hz", "-5"), ERR_INVAL);
    assert_int_equal(cfg.hz, 10);
    assert_int_equal(SET(&cfg, "hz", "1"), 0);
    assert_int_equal(SET(&cfg, "hz", "500"), 0);
    assert_int_equal(cfg.hz, 500);

    assert_int_equal(SET(&cfg, "maxclients", "abc"), ERR_INVAL);
    assert_string_equal(err, "Invalid argument 'abc' for CONFIG SET 'maxclients' - argument "
                             "couldn't be parsed into an integer");
    assert_int_equal(SET(&cfg, "maxclients", "10 "), ERR_INVAL);
    assert_int_equal(SET(&cfg, "maxclients", "0"), ERR_INVAL);
    assert_int_equal(SET(&cfg, "maxclients", "1000001"), ERR_INVAL);
    /* larger than an int: refused, never truncated into range */
    assert_int_equal(SET(&cfg, "timeout", "4294967296"), ERR_INVAL);
    assert_int_equal(SET(&cfg, "timeout", "99999999999999999999"), ERR_INVAL);
    assert_int_equal(cfg.timeout, 0);
    assert_int_equal(cfg.maxclients, 10000);

    /* sizes: units accepted, bounds in bytes */
    assert_int_equal(SET(&cfg, "proto-max-bulk-len", "1kb"), ERR_INVAL);
    assert_non_null(strstr(err, "argument must be between 1048576 and"));
    assert_int_equal(SET(&cfg, "proto-max-bulk-len", "lots"), ERR_INVAL);
    assert_true(cfg.proto_max_bulk_len == 512 * MB);
    config_free(&cfg);
}

static void test_set_enum_bool(void **state)
{
    (void)state;
    config cfg;
    char err[256];
    config_init(&cfg);
    assert_int_equal(SET(&cfg, "durability", "always"), 0);
    assert_int_equal(cfg.durability, 2);
    assert_int_equal(SET(&cfg, "durability", "NO"), 0);
    assert_int_equal(cfg.durability, 0);
    assert_int_equal(SET(&cfg, "durability", "sometimes"), ERR_INVAL);
    assert_string_equal(err, "Invalid argument 'sometimes' for CONFIG SET 'durability' - "
                             "argument(s) must be one of the following: no, everysec, always");
    assert_int_equal(cfg.durability, 0);
    assert_int_equal(SET(&cfg, "loglevel", "warning"), 0);
    assert_int_equal(cfg.loglevel, 3);
    assert_int_equal(SET(&cfg, "loglevel", "loud"), ERR_INVAL);
    assert_non_null(strstr(err, "debug, verbose, notice, warning"));

    assert_int_equal(SET(&cfg, "protected-mode", "no"), 0);
    assert_int_equal(cfg.protected_mode, 0);
    assert_int_equal(SET(&cfg, "protected-mode", "YES"), 0);
    assert_int_equal(cfg.protected_mode, 1);
    assert_int_equal(SET(&cfg, "protected-mode", "1"), ERR_INVAL);
    assert_string_equal(err, "Invalid argument '1' for CONFIG SET 'protected-mode' - argument "
                             "must be 'yes' or 'no'");
    assert_int_equal(SET(&cfg, "protected-mode", "maybe"), ERR_INVAL);
    assert_int_equal(cfg.protected_mode, 1);
    config_free(&cfg);
}

/* ---- client-output-buffer-limit ---- */

static void test_obuf_limit(void **state)
{
    (void)state;
    config cfg;
    char err[256];
    config_init(&cfg);

    /* one argument holding the whole spec, as CONFIG SET sends it */
    assert_int_equal(SET(&cfg, "client-output-buffer-limit", "normal 1mb 2mb 60"), 0);
    assert_true(cfg.obuf_hard == MB);
    assert_true(cfg.obuf_soft == 2 * MB);
    assert_int_equal(cfg.obuf_soft_secs, 60);

    /* several classes: only normal applies */
    assert_int_equal(SET(&cfg, "client-output-buffer-limit",
                         "replica 256mb 64mb 60 normal 0 0 0 pubsub 32mb 8mb 60"),
                     0);
    assert_true(cfg.obuf_hard == 0 && cfg.obuf_soft == 0);
    assert_int_equal(cfg.obuf_soft_secs, 0);
    assert_int_equal(SET(&cfg, "client-output-buffer-limit", "slave 1 2 3"), 0);
    assert_true(cfg.obuf_hard == 0);
    assert_true(cfg.obuf_replica[0] == 1 && cfg.obuf_replica[1] == 2 && cfg.obuf_replica[2] == 3);
    assert_true(cfg.obuf_pubsub[0] == 32 * MB && cfg.obuf_pubsub[2] == 60);

    /* separate arguments, as a config file line gives them */
    assert_int_equal(SET(&cfg, "client-output-buffer-limit", "normal", "3k", "4k", "5"), 0);
    assert_true(cfg.obuf_hard == 3000 && cfg.obuf_soft == 4000);
    assert_int_equal(cfg.obuf_soft_secs, 5);

    assert_int_equal(SET(&cfg, "client-output-buffer-limit", "master 1mb 2mb 60"), ERR_INVAL);
    assert_non_null(strstr(err, "Invalid client class specified in buffer limit configuration."));
    assert_int_equal(SET(&cfg, "client-output-buffer-limit", "normal 1mb 2mb"), ERR_INVAL);
    assert_non_null(strstr(err, "Wrong number of arguments in buffer limit configuration."));
    assert_int_equal(SET(&cfg, "client-output-buffer-limit", "normal 1mb 2mb 60 pubsub"),
                     ERR_INVAL);
    assert_non_null(strstr(err, "Wrong number of arguments in buffer limit configuration."));
    assert_int_equal(SET(&cfg, "client-output-buffer-limit", "normal"), ERR_INVAL);
    assert_non_null(strstr(err, "Wrong number of arguments in buffer limit configuration."));
    assert_int_equal(SET(&cfg, "client-output-buffer-limit", "normal 1zb 2mb 60"), ERR_INVAL);
    assert_non_null(strstr(err, "Error in hard, soft or soft_seconds setting"));
    assert_int_equal(SET(&cfg, "client-output-buffer-limit", "normal -1 2mb 60"), ERR_INVAL);
    assert_int_equal(SET(&cfg, "client-output-buffer-limit", "normal 1 2 99999999999"), ERR_INVAL);
    assert_int_equal(SET(&cfg, "client-output-buffer-limit", "normal \"1"), ERR_INVAL);
    /* refused settings left the normal class alone */
    assert_true(cfg.obuf_hard == 3000 && cfg.obuf_soft == 4000);
    assert_int_equal(cfg.obuf_soft_secs, 5);

    got g;
    assert_string_equal(get1(&cfg, "client-output-buffer-limit", &g),
                        "normal 3000 4000 5 slave 1 2 3 pubsub 33554432 8388608 60");
    config_free(&cfg);
}

/* ---- slow log, latency tracking, maxmemory ---- */

static void test_observability_options(void **state)
{
    (void)state;
    config cfg;
    char err[256];
    got g;
    config_init(&cfg);
    assert_true(cfg.slowlog_slower_than == 10000);
    assert_int_equal(cfg.slowlog_max_len, 128);
    assert_int_equal(cfg.latency_tracking, 1);
    assert_int_equal(cfg.npercentiles, 3);
    assert_true(cfg.percentiles[2] == 99.9);
    assert_true(cfg.maxmemory == 0);
    assert_string_equal(get1(&cfg, "maxmemory-policy", &g), "noeviction");

    assert_int_equal(SET(&cfg, "slowlog-log-slower-than", "-1"), 0);
    assert_int_equal(SET(&cfg, "slowlog-log-slower-than", "99999999999"), 0); /* past int */
    assert_true(cfg.slowlog_slower_than == 99999999999LL);
    assert_int_equal(SET(&cfg, "slowlog-log-slower-than", "-2"), ERR_INVAL);
    assert_int_equal(SET(&cfg, "slowlog-max-len", "-1"), ERR_INVAL);
    assert_string_equal(get1(&cfg, "slowlog-log-slower-than", &g), "99999999999");

    /* percentiles: one argument (CONFIG SET) or several (a config file line), kept in order */
    assert_int_equal(SET(&cfg, "latency-tracking-info-percentiles", "99.90 50.0 1e1"), 0);
    assert_string_equal(get1(&cfg, "latency-tracking-info-percentiles", &g), "99.9 50 10");
    assert_int_equal(SET(&cfg, "latency-tracking-info-percentiles", "25", "75"), 0);
    assert_string_equal(get1(&cfg, "latency-tracking-info-percentiles", &g), "25 75");
    assert_int_equal(SET(&cfg, "latency-tracking-info-percentiles", "50 101"), ERR_INVAL);
    assert_non_null(strstr(err, "should sit between [0.0,100.0]"));
    assert_int_equal(SET(&cfg, "latency-tracking-info-percentiles", "50 abc"), ERR_INVAL);
    assert_int_equal(SET(&cfg, "latency-tracking-info-percentiles", "50 nan"), ERR_INVAL);
    assert_int_equal(SET(&cfg, "latency-tracking-info-percentiles",
                         "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17"), ERR_INVAL);
    assert_string_equal(get1(&cfg, "latency-tracking-info-percentiles", &g), "25 75");
    assert_int_equal(SET(&cfg, "latency-tracking-info-percentiles", ""), 0);
    assert_int_equal(cfg.npercentiles, 0);

    assert_int_equal(SET(&cfg, "maxmemory", "1gb"), 0);
    assert_true(cfg.maxmemory == GB);
    assert_int_equal(SET(&cfg, "maxmemory", "-5"), ERR_INVAL);
    assert_int_equal(SET(&cfg, "maxmemory-policy", "allkeys-lru"), ERR_INVAL);
    assert_non_null(strstr(err, "must be one of the following: noeviction"));
    assert_int_equal(SET(&cfg, "maxmemory-policy", "NOEVICTION"), 0);

    /* metrics-port: off by default, a port number, chosen at start only */
    assert_int_equal(cfg.metrics_port, 0);
    assert_string_equal(get1(&cfg, "metrics-port", &g), "0");
    assert_int_equal(SET(&cfg, "metrics-port", "9121"), ERR_INVAL);
    assert_int_equal(cfg.metrics_port, 0);
    assert_int_equal(SET_STARTUP(&cfg, "metrics-port", "9121"), 0);
    assert_int_equal(cfg.metrics_port, 9121);
    assert_int_equal(SET_STARTUP(&cfg, "metrics-port", "65536"), ERR_INVAL);
    assert_int_equal(SET_STARTUP(&cfg, "metrics-port", "-1"), ERR_INVAL);
    assert_int_equal(SET_STARTUP(&cfg, "metrics-port", "http"), ERR_INVAL);
    assert_int_equal(cfg.metrics_port, 9121);

    /* history-cache-size: a size, at least 1mb, chosen at start only */
    assert_true(cfg.history_cache_size == 256 * MB);
    assert_string_equal(get1(&cfg, "history-cache-size", &g), "268435456");
    assert_int_equal(SET(&cfg, "history-cache-size", "1gb"), ERR_INVAL);
    assert_int_equal(SET_STARTUP(&cfg, "history-cache-size", "1gb"), 0);
    assert_true(cfg.history_cache_size == GB);
    assert_int_equal(SET_STARTUP(&cfg, "history-cache-size", "1000kb"), ERR_INVAL);
    assert_int_equal(SET_STARTUP(&cfg, "history-cache-size", "lots"), ERR_INVAL);
    assert_true(cfg.history_cache_size == GB);
    config_free(&cfg);
}

static void test_obuf_limit_empty(void **state)
{
    (void)state;
    config cfg;
    char err[256];
    config_init(&cfg);
    int rc = SET(&cfg, "client-output-buffer-limit", "");
    int has_msg = strstr(err, "Wrong number of arguments") != NULL;
    config_free(&cfg);
    assert_int_equal(rc, ERR_INVAL);
    assert_true(has_msg);
}

/* ---- config files ---- */

static void test_load_file(void **state)
{
    (void)state;
    char path[64], err[512];
    write_temp(path, sizeof path,
               "# Quiver test configuration\n"
               "\n"
               "   # an indented comment\n"
               "port 7001\n"
               "requirepass \"with space\"\n"
               "dir '/tmp/x y'\n"
               "bind 127.0.0.1 ::1\r\n"
               "client-output-buffer-limit normal 1mb 2mb 60\n"
               "client-output-buffer-limit replica 256mb 64mb 60\n"
               "maxclients 50\n"
               "durability always\n"
               "protected-mode no\n"
               "save \"\"\n"
               "HZ 25\n"
               "requirepass\n"
               "requirepass \"esc\\\"aped\"\n");
    config cfg;
    config_init(&cfg);
    assert_int_equal(config_load_file(&cfg, path, err, sizeof err), 0);
    assert_int_equal(cfg.port, 7001);
    assert_string_equal(cfg.requirepass, "esc\"aped"); /* the last line wins */
    assert_string_equal(cfg.dir, "/tmp/x y");
    assert_string_equal(cfg.bind, "127.0.0.1 ::1");
    assert_true(cfg.obuf_hard == MB && cfg.obuf_soft == 2 * MB);
    assert_int_equal(cfg.obuf_soft_secs, 60);
    assert_int_equal(cfg.maxclients, 50);
    assert_int_equal(cfg.durability, 2);
    assert_int_equal(cfg.protected_mode, 0);
    assert_int_equal(cfg.hz, 25);
    char *abs = realpath(path, NULL);
    assert_non_null(abs);
    assert_non_null(cfg.config_file);
    assert_string_equal(cfg.config_file, abs);
    free(abs);
    config_free(&cfg);
    unlink(path);
}

/* Loads text into a fresh config and expects failure with err == "<path>:<want>". */
static void load_fails(const char *text, int want_rc, const char *want)
{
    char path[64], err[512], full[600];
    write_temp(path, sizeof path, text);
    config cfg;
    config_init(&cfg);
    err[0] = '\0';
    assert_int_equal(config_load_file(&cfg, path, err, sizeof err), want_rc);
    assert_null(cfg.config_file); /* a failed load does not adopt the file */
    config_free(&cfg);
    snprintf(full, sizeof full, "%s:%s", path, want);
    unlink(path);
    assert_string_equal(err, full);
}

static void test_load_file_errors(void **state)
{
    (void)state;
    load_fails("# ok\nport 7001\nnosuch-directive 1\nport 7002\n", ERR_INVAL,
               "3: Bad directive or wrong number of arguments: 'nosuch-directive'");
    load_fails("hz 1000\n", ERR_INVAL, "1: hz: argument must be between 1 and 500 inclusive");
    load_fails("\n\nport\n", ERR_INVAL, "3: 'port' needs a value");
    load_fails("port 1\nrequirepass \"open\n", ERR_INVAL, "2: unbalanced quotes");
    load_fails("dir \"a\"b\n", ERR_INVAL, "1: unbalanced quotes");
    load_fails("durability sometimes\n", ERR_INVAL,
               "1: durability: argument(s) must be one of the following: no, everysec, always");
    load_fails("client-output-buffer-limit normal 1mb\n", ERR_INVAL,
               "1: client-output-buffer-limit: Wrong number of arguments in buffer limit "
               "configuration.");

    config cfg;
    char err[512];
    config_init(&cfg);
    assert_int_equal(config_load_file(&cfg, "/nonexistent/quiver.conf", err, sizeof err), ERR_IO);
    assert_non_null(strstr(err, "/nonexistent/quiver.conf"));
    config_free(&cfg);
}

static void test_load_file_comment_quotes(void **state)
{
    (void)state;
    /* redis.conf's own comments are full of apostrophes ("it's", "Redis's") */
    char path[64], err[512];
    write_temp(path, sizeof path,
               "# it's a comment with an apostrophe\n"
               "# and one with \"unbalanced double quotes\n"
               "port 7003\n");
    config cfg;
    config_init(&cfg);
    int rc = config_load_file(&cfg, path, err, sizeof err);
    int port = cfg.port;
    config_free(&cfg);
    unlink(path);
    assert_int_equal(rc, 0);
    assert_int_equal(port, 7003);
}

/* ---- CONFIG GET ---- */

static void test_get(void **state)
{
    (void)state;
    config cfg;
    got g;
    config_init(&cfg);
    assert_int_equal(get(&cfg, "*", &g), NOPTIONS);
    assert_string_equal(g.names[0], "port");
    assert_string_equal(g.values[0], "6379");

    assert_int_equal(get(&cfg, "*max*", &g), 8); /* ... min-replicas-max-lag, gpu-batch-max */
    assert_string_equal(g.names[0], "maxclients");
    assert_string_equal(g.values[0], "10000");
    assert_string_equal(g.names[1], "proto-max-bulk-len");
    assert_string_equal(g.values[1], "536870912");
    assert_string_equal(g.names[2], "lmdb-max-map-size");
    assert_string_equal(g.values[2], "0");
    assert_int_equal(get(&cfg, "*MAX*", &g), 8); /* patterns ignore case */
    assert_int_equal(get(&cfg, "d*", &g), 3);    /* dir durability databases */
    assert_int_equal(get(&cfg, "*-*", &g), 33); /* 13, tls-*, repl-*, replica-*, min-replicas-*, gpu-* */
    assert_int_equal(get(&cfg, "?ort", &g), 1);
    assert_int_equal(get(&cfg, "[pb]*", &g), 5); /* port bind protected-mode proto-... pidfile */
    assert_int_equal(get(&cfg, "nosuch", &g), 0);
    assert_int_equal(get(&cfg, "", &g), 0);

    assert_string_equal(get1(&cfg, "bind", &g), "127.0.0.1");
    assert_string_equal(get1(&cfg, "durability", &g), "everysec");
    assert_string_equal(get1(&cfg, "protected-mode", &g), "yes");
    assert_string_equal(get1(&cfg, "requirepass", &g), "");
    assert_string_equal(get1(&cfg, "save", &g), "");
    assert_string_equal(get1(&cfg, "appendonly", &g), "no");
    assert_string_equal(get1(&cfg, "databases", &g), "16");
    assert_string_equal(get1(&cfg, "loglevel", &g), "notice");
    assert_string_equal(get1(&cfg, "lmdb-map-size", &g), "268435456");
    assert_string_equal(get1(&cfg, "client-output-buffer-limit", &g),
                        "normal 1073741824 0 0 slave 268435456 67108864 60 pubsub 33554432 "
                        "8388608 60");
    config_free(&cfg);
}

static void test_get_long_value(void **state)
{
    (void)state;
    config cfg;
    char err[256];
    got g;
    char *pass = malloc(2001);
    assert_non_null(pass);
    memset(pass, 'p', 2000);
    pass[2000] = '\0';
    config_init(&cfg);
    assert_int_equal(SET(&cfg, "requirepass", pass), 0);
    assert_string_equal(cfg.requirepass, pass);
    get(&cfg, "requirepass", &g);
    size_t shown = strlen(g.values[0]);
    config_free(&cfg);
    free(pass);
    assert_true(shown <= sizeof g.values[0] - 1);
    assert_int_equal(shown, 1099); /* as much as this test's collector keeps */
}

/* ---- copies ---- */

static void test_dup(void **state)
{
    (void)state;
    config a, b;
    char err[256], path[64];
    write_temp(path, sizeof path, "requirepass orig\n");
    config_init(&a);
    assert_int_equal(config_load_file(&a, path, err, sizeof err), 0);
    config_dup(&b, &a);
    assert_string_equal(b.requirepass, "orig");
    assert_ptr_not_equal(b.requirepass, a.requirepass);
    assert_ptr_not_equal(b.bind, a.bind);
    assert_ptr_not_equal(b.dir, a.dir);
    assert_ptr_not_equal(b.config_file, a.config_file);
    assert_string_equal(b.config_file, a.config_file);

    assert_int_equal(SET(&b, "requirepass", "changed"), 0);
    assert_int_equal(SET_STARTUP(&b, "bind", "0.0.0.0"), 0);
    assert_int_equal(SET_STARTUP(&b, "dir", "/elsewhere"), 0);
    assert_int_equal(SET(&b, "hz", "50"), 0);
    b.config_file[0] = 'X';
    assert_string_equal(a.requirepass, "orig");
    assert_string_equal(a.bind, "127.0.0.1");
    assert_string_equal(a.dir, "./data");
    assert_int_equal(a.hz, 10);
    assert_int_equal(a.config_file[0], '/');

    /* freeing the copy leaves the original whole */
    config_free(&b);
    assert_string_equal(a.requirepass, "orig");
    config_free(&a);
    unlink(path);
}

/* ---- CONFIG REWRITE ---- */

static void test_rewrite(void **state)
{
    (void)state;
    char path[64], err[512];
    write_temp(path, sizeof path,
               "# Quiver test config\n"
               "port 7002\n"
               "\n"
               "# the client limit, given twice\n"
               "maxclients 100\n"
               "hz 20\n"
               "MAXCLIENTS 200\n"
               "durability everysec\n"
               "# trailing comment without newline");
    config cfg;
    config_init(&cfg);
    assert_int_equal(config_load_file(&cfg, path, err, sizeof err), 0);
    assert_int_equal(cfg.maxclients, 200);

    assert_int_equal(SET(&cfg, "maxclients", "300"), 0);
    assert_int_equal(SET(&cfg, "requirepass", "p w"), 0);
    assert_int_equal(SET(&cfg, "loglevel", "warning"), 0);
    assert_int_equal(SET(&cfg, "client-output-buffer-limit", "normal 1mb 2mb 60"), 0);
    assert_int_equal(config_rewrite(&cfg, err, sizeof err), 0);

    char *text = read_all(path);
    assert_string_equal(text, "# Quiver test config\n"
                              "port 7002\n"
                              "\n"
                              "# the client limit, given twice\n"
                              "maxclients 300\n"
                              "hz 20\n"
                              "durability everysec\n"
                              "# trailing comment without newline\n"
                              "requirepass \"p w\"\n"
                              "client-output-buffer-limit normal 1048576 2097152 60 slave "
                              "268435456 67108864 60 pubsub 33554432 8388608 60\n"
                              "loglevel warning\n");
    free(text);

    /* the rewritten file reads back to the same settings */
    config back;
    config_init(&back);
    assert_int_equal(config_load_file(&back, path, err, sizeof err), 0);
    assert_int_equal(back.port, 7002);
    assert_int_equal(back.maxclients, 300);
    assert_int_equal(back.hz, 20);
    assert_string_equal(back.requirepass, "p w");
    assert_int_equal(back.loglevel, 3);
    assert_true(back.obuf_hard == MB && back.obuf_soft == 2 * MB);
    assert_int_equal(back.obuf_soft_secs, 60);
    config_free(&back);

    /* a second rewrite with nothing changed is a fixed point */
    text = read_all(path);
    assert_int_equal(config_rewrite(&cfg, err, sizeof err), 0);
    char *again = read_all(path);
    assert_string_equal(again, text);
    free(text);
    free(again);

    config_free(&cfg);
    unlink(path);
}

static void test_rewrite_quoting(void **state)
{
    (void)state;
    char path[64], err[512];
    write_temp(path, sizeof path, "bind 127.0.0.1 ::1\nsave \"\"\n");
    config cfg;
    config_init(&cfg);
    assert_int_equal(config_load_file(&cfg, path, err, sizeof err), 0);
    const char *tricky = "a\"b\\c\nd\te\rf 'g' #h";
    assert_int_equal(SET(&cfg, "requirepass", tricky), 0);
    assert_int_equal(SET(&cfg, "protected-mode", "no"), 0);
    assert_int_equal(config_rewrite(&cfg, err, sizeof err), 0);

    char *text = read_all(path);
    assert_string_equal(text, "bind 127.0.0.1 ::1\n"
                              "save \"\"\n"
                              "requirepass \"a\\\"b\\\\c\\nd\\te\\rf 'g' #h\"\n"
                              "protected-mode no\n");
    free(text);

    config back;
    config_init(&back);
    assert_int_equal(config_load_file(&back, path, err, sizeof err), 0);
    assert_string_equal(back.requirepass, tricky);
    assert_string_equal(back.bind, "127.0.0.1 ::1");
    assert_int_equal(back.protected_mode, 0);
    config_free(&back);
    config_free(&cfg);
    unlink(path);
}

static void test_rewrite_without_file(void **state)
{
    (void)state;
    config cfg;
    char err[256] = "";
    config_init(&cfg);
    assert_int_equal(config_rewrite(&cfg, err, sizeof err), ERR_NOTFOUND);
    assert_string_equal(err, "The server is running without a config file");

    /* a file that vanished since it was loaded */
    char path[64];
    write_temp(path, sizeof path, "hz 11\n");
    assert_int_equal(config_load_file(&cfg, path, err, sizeof err), 0);
    unlink(path);
    assert_int_equal(config_rewrite(&cfg, err, sizeof err), ERR_IO);
    assert_int_equal(access(path, F_OK), -1); /* nothing created in its place */
    config_free(&cfg);
}

/* The tls-* options: Redis's names and defaults, fixed after start. */
static void test_tls_options(void **state)
{
    (void)state;
    config cfg;
    char err[256];
    got g;
    config_init(&cfg);
    assert_string_equal(get1(&cfg, "tls-port", &g), "0");
    assert_string_equal(get1(&cfg, "tls-auth-clients", &g), "yes");
    assert_string_equal(get1(&cfg, "tls-cert-file", &g), "");
    assert_int_equal(SET_STARTUP(&cfg, "tls-auth-clients", "optional"), 0);
    assert_int_equal(cfg.tls_auth_clients, TLS_AUTH_OPTIONAL);
    assert_int_equal(SET_STARTUP(&cfg, "tls-auth-clients", "maybe"), ERR_INVAL);
    assert_string_equal(err, "invalid value 'maybe' for 'tls-auth-clients': argument(s) must "
                             "be one of the following: no, yes, optional");
    assert_int_equal(SET_STARTUP(&cfg, "tls-port", "6380"), 0);
    assert_int_equal(SET_STARTUP(&cfg, "tls-protocols", "TLSv1.2", "TLSv1.3"), 0);
    assert_string_equal(cfg.tls_protocols, "TLSv1.2 TLSv1.3");
    assert_int_equal(SET(&cfg, "tls-cert-file", "/tmp/x.crt"), ERR_INVAL);
    assert_int_equal(cfg.tls_port, 6380);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_split_words),
        cmocka_unit_test(test_split_words_escapes),
        cmocka_unit_test(test_set_known_and_unknown),
        cmocka_unit_test(test_set_immutable),
        cmocka_unit_test(test_set_int_range),
        cmocka_unit_test(test_set_enum_bool),
        cmocka_unit_test(test_obuf_limit),
        cmocka_unit_test(test_obuf_limit_empty),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_load_file_comment_quotes),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_get_long_value),
        cmocka_unit_test(test_dup),
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_rewrite_quoting),
        cmocka_unit_test(test_rewrite_without_file),
        cmocka_unit_test(test_tls_options),
        cmocka_unit_test(test_observability_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
