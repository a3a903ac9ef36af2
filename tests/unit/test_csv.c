/* test_csv.c: unit tests for the tools' CSV reader and writer (tools/csv.h): quoted fields,
 * "" escapes, CRLF, empty and NULL cells, line numbers, ragged and malformed records, the
 * limits, and the same records whatever the chunks a file arrives in; and for the helpers
 * of tools/cli.h the tools build commands with (timestamp units, entity keys, columns). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"
#include "tools/cli.h"
#include "tools/csv.h"

#define S(lit) lit, sizeof(lit) - 1

/* Asserts that the next record of r has exactly the n fields given as strings ("\x01" in
 * front of one marks it as quoted), starting on line. */
static void expect(csv_reader *r, uint64_t line, int n, ...)
{
    csv_record rec;
    char err[256] = "";
    int rc = csv_next(r, &rec, err, sizeof err);
    if (rc != 1)
        fail_msg("expected a record on line %llu, got %d (%s)", (unsigned long long)line, rc, err);
    assert_int_equal(rec.line, line);
    assert_int_equal(rec.nfields, n);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *want = va_arg(ap, const char *);
        int quoted = want[0] == '\x01';
        want += quoted;
        assert_int_equal(rec.fields[i].quoted, quoted);
        assert_int_equal(rec.fields[i].len, strlen(want));
        assert_memory_equal(rec.fields[i].p, want, strlen(want));
    }
    va_end(ap);
}

static void expect_end(csv_reader *r)
{
    csv_record rec;
    char err[256] = "";
    assert_int_equal(csv_next(r, &rec, err, sizeof err), 0);
    assert_int_equal(csv_next(r, &rec, err, sizeof err), 0);
}

/* Asserts that reading len bytes fails with code and a message containing what, after
 * `good` good records. */
static void expect_error(const char *data, size_t len, int good, int code, const char *what)
{
    csv_reader *r = csv_open_mem(data, len);
    csv_record rec;
    char err[256] = "";
    for (int i = 0; i < good; i++)
        assert_int_equal(csv_next(r, &rec, err, sizeof err), 1);
    assert_int_equal(csv_next(r, &rec, err, sizeof err), code);
    if (!strstr(err, what))
        fail_msg("error '%s' does not contain '%s'", err, what);
    /* sticky: the same error again */
    char again[256] = "";
    assert_int_equal(csv_next(r, &rec, again, sizeof again), code);
    assert_string_equal(err, again);
    csv_close(r);
}

static void test_plain(void **state)
{
    (void)state;
    csv_reader *r = csv_open_mem(S("a,b,c\n1,2,3\nx,yy,zzz\n"));
    expect(r, 1, 3, "a", "b", "c");
    expect(r, 2, 3, "1", "2", "3");
    expect(r, 3, 3, "x", "yy", "zzz");
    expect_end(r);
    assert_int_equal(csv_bytes_read(r), 21);
    csv_close(r);
}

static void test_no_final_newline(void **state)
{
    (void)state;
    csv_reader *r = csv_open_mem(S("a,b\n1,2"));
    expect(r, 1, 2, "a", "b");
    expect(r, 2, 2, "1", "2");
    expect_end(r);
    csv_close(r);
    r = csv_open_mem(S("a,b\n1,"));
    expect(r, 1, 2, "a", "b");
    expect(r, 2, 2, "1", "");
    expect_end(r);
    csv_close(r);
}

static void test_quoted(void **state)
{
    (void)state;
    csv_reader *r = csv_open_mem(S("a,b,c\n"
                                   "\"x,y\",\"say \"\"hi\"\"\",\"\"\"\"\n"
                                   "\"two\nlines\",\"\",plain\n"
                                   "\"three\r\nlines\nhere\",\"a\"\"b\"\"c\",\"\"\"\"\"\"\n"
                                   "last,\"q\",\"\"\n"));
    expect(r, 1, 3, "a", "b", "c");
    expect(r, 2, 3, "\x01x,y", "\x01say \"hi\"", "\x01\"");
    expect(r, 3, 3, "\x01two\nlines", "\x01", "plain");
    expect(r, 5, 3, "\x01three\r\nlines\nhere", "\x01" "a\"b\"c", "\x01\"\"");
    expect(r, 8, 3, "last", "\x01q", "\x01");
    expect_end(r);
    csv_close(r);
}

static void test_crlf(void **state)
{
    (void)state;
    csv_reader *r = csv_open_mem(S("a,b\r\n1,2\r\n\"q\",\r\n3,4\n5,\"6\"\r\n7,8\r"));
    expect(r, 1, 2, "a", "b");
    expect(r, 2, 2, "1", "2");
    expect(r, 3, 2, "\x01q", "");
    expect(r, 4, 2, "3", "4");
    expect(r, 5, 2, "5", "\x01" "6");
    expect(r, 6, 2, "7", "8");
    expect_end(r);
    csv_close(r);
    /* a CR alone inside an unquoted field is data */
    r = csv_open_mem(S("a,b\nx\ry,z\n"));
    expect(r, 1, 2, "a", "b");
    expect(r, 2, 2, "x\ry", "z");
    expect_end(r);
    csv_close(r);
}

static void test_empty_cells(void **state)
{
    (void)state;
    csv_reader *r = csv_open_mem(S("a,b,c\n,,\n\"\",,\"\"\n1,,3\n"));
    expect(r, 1, 3, "a", "b", "c");
    expect(r, 2, 3, "", "", "");
    expect(r, 3, 3, "\x01", "", "\x01");
    expect(r, 4, 3, "1", "", "3");
    expect_end(r);
    csv_close(r);
}

static void test_blank_lines_and_bom(void **state)
{
    (void)state;
    csv_reader *r = csv_open_mem(S("\xEF\xBB\xBF" "a,b\n\n1,2\r\n\r\n\n3,4\n\n"));
    expect(r, 1, 2, "a", "b");
    expect(r, 3, 2, "1", "2");
    expect(r, 6, 2, "3", "4");
    expect_end(r);
    csv_close(r);
    r = csv_open_mem(S(""));
    expect_end(r);
    csv_close(r);
    r = csv_open_mem(S("\n\r\n"));
    expect_end(r);
    csv_close(r);
}

static void test_raw(void **state)
{
    (void)state;
    csv_reader *r = csv_open_mem(S("a,b\r\n\"x \"\"1\"\"\",2\r\n3,\"4\n5\"\n"));
    csv_record rec;
    char err[128];
    assert_int_equal(csv_next(r, &rec, err, sizeof err), 1);
    assert_int_equal(rec.raw_len, 3);
    assert_memory_equal(rec.raw, "a,b", 3);
    assert_int_equal(csv_next(r, &rec, err, sizeof err), 1);
    assert_int_equal(rec.raw_len, 11);
    assert_memory_equal(rec.raw, "\"x \"\"1\"\"\",2", 11);
    assert_int_equal(csv_next(r, &rec, err, sizeof err), 1);
    assert_int_equal(rec.raw_len, 7);
    assert_memory_equal(rec.raw, "3,\"4\n5\"", 7);
    csv_close(r);
}

static void test_ragged(void **state)
{
    (void)state;
    expect_error(S("a,b,c\n1,2,3\n1,2\n"), 2, ERR_PROTO, "line 3: 2 fields where the header has 3");
    expect_error(S("a,b\n1,2\n\n1,2,3\n"), 2, ERR_PROTO, "line 4: 3 fields where the header has 2");
    expect_error(S("a,b\n\"x\ny\",1\n7\n"), 2, ERR_PROTO, "line 4: 1 field where");
    expect_error(S("a\n1\n2,\n"), 2, ERR_PROTO, "line 3: 2 fields");
}

static void test_malformed(void **state)
{
    (void)state;
    expect_error(S("a,b\n1,\"open\n2,3\n"), 1, ERR_PROTO, "line 2: quoted field not closed");
    expect_error(S("a,b\n1,2\n\"x\"y,3\n"), 2, ERR_PROTO,
                 "line 3: unexpected character after a closing quote");
    expect_error(S("a,b\n1,2\nx\"y,3\n"), 2, ERR_PROTO, "line 3: '\"' inside an unquoted field");
    expect_error(S("a,b\n\"x\n\ny\"z,1\n"), 1, ERR_PROTO,
                 "line 4: unexpected character after a closing quote");
    expect_error(S("a,b\n1,\"x\"\r2\n"), 1, ERR_PROTO, "line 2: unexpected character");
}

static void test_limits(void **state)
{
    (void)state;
    size_t n = CSV_MAX_FIELDS + 1;
    char *wide = malloc(2 * n);
    for (size_t i = 0; i < n; i++) {
        wide[2 * i] = 'x';
        wide[2 * i + 1] = i + 1 < n ? ',' : '\n';
    }
    expect_error(wide, 2 * n, 0, ERR_LIMIT, "line 1: more than 65536 fields");
    free(wide);

    size_t big = CSV_MAX_RECORD + 16;
    char *open = malloc(big);
    memcpy(open, "a\n\"", 3);
    memset(open + 3, 'y', big - 3);
    expect_error(open, big, 1, ERR_LIMIT, "line 2: record longer than 64 MiB");
    free(open);
}

/* A few megabytes of records of every kind, and the records a memory reader finds. */
static char *sample(size_t *len)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "id,text,num\r\n");
    for (int i = 0; b.len < (3u << 20); i++) {
        switch (i % 5) {
        case 0: buf_printf(&b, "%d,plain %d,%d\n", i, i, i * 7); break;
        case 1: buf_printf(&b, "%d,\"comma, %d\",\r\n", i, i); break;
        case 2: buf_printf(&b, "%d,\"say \"\"%d\"\"\nnext\",\"\"\n", i, i); break;
        case 3: buf_printf(&b, "\n%d,,%d\r\n", i, i); break;
        default: buf_printf(&b, "%d,\"%0*d\",-1\n", i, i % 3000, 0); break;
        }
    }
    *len = b.len;
    return b.data;
}

/* Reads everything of r into one string: fields and flags and lines, for comparing. */
static void digest(csv_reader *r, buf *out)
{
    csv_record rec;
    char err[256];
    int rc;
    while ((rc = csv_next(r, &rec, err, sizeof err)) == 1) {
        buf_printf(out, "%llu:", (unsigned long long)rec.line);
        for (int i = 0; i < rec.nfields; i++) {
            buf_printf(out, "%d%zu|", rec.fields[i].quoted, rec.fields[i].len);
            buf_append(out, rec.fields[i].p, rec.fields[i].len);
        }
        buf_append(out, rec.raw, rec.raw_len);
        buf_appendc(out, '\n');
    }
    if (rc != 0)
        fail_msg("read failed: %s", err);
}

/* The same records from a file and from a pipe fed in small pieces as from memory: records
 * cut by the end of the reader's buffer are read whole. */
static void test_chunks(void **state)
{
    (void)state;
    size_t len;
    char *data = sample(&len);
    buf want, got;
    buf_init(&want);
    buf_init(&got);
    csv_reader *r = csv_open_mem(data, len);
    digest(r, &want);
    assert_int_equal(csv_bytes_read(r), len);
    csv_close(r);

    char path[] = "/tmp/test_csv_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    r = csv_open_fd(fd);
    digest(r, &got);
    assert_int_equal(csv_bytes_read(r), len);
    csv_close(r);
    close(fd);
    unlink(path);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);

    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(p[0]);
        size_t step = 1;
        for (size_t off = 0; off < len; off += step, step = step % 4093 + 7)
            if (write(p[1], data + off, off + step > len ? len - off : step) < 0)
                _exit(1);
        _exit(0);
    }
    close(p[1]);
    got.len = 0;
    r = csv_open_fd(p[0]);
    digest(r, &got);
    csv_close(r);
    close(p[0]);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
    buf_free(&want);
    buf_free(&got);
    xfree(data);
}

static void test_read_error(void **state)
{
    (void)state;
    csv_reader *r = csv_open_fd(-1);
    csv_record rec;
    char err[256];
    assert_int_equal(csv_next(r, &rec, err, sizeof err), ERR_IO);
    assert_non_null(strstr(err, "read failed"));
    csv_close(r);
}

static void put(const char *in, size_t len, const char *want)
{
    buf b;
    buf_init(&b);
    csv_put_field(&b, in, len);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    buf_free(&b);
}

static void test_put_field(void **state)
{
    (void)state;
    put(S("plain"), "plain");
    put(S("0.12345678901234567"), "0.12345678901234567");
    put(S(""), "\"\"");
    put(S("a,b"), "\"a,b\"");
    put(S("say \"hi\""), "\"say \"\"hi\"\"\"");
    put(S("\""), "\"\"\"\"");
    put(S("two\nlines"), "\"two\nlines\"");
    put(S("cr\r"), "\"cr\r\"");
    put(S(" spaced "), " spaced ");
    /* what is written reads back the same */
    const char *vals[] = {"", "a,b", "\"\"", "x\r\ny", "plain"};
    buf b;
    buf_init(&b);
    for (int i = 0; i < 5; i++) {
        if (i)
            buf_appendc(&b, ',');
        csv_put_field(&b, vals[i], strlen(vals[i]));
    }
    buf_appendc(&b, '\n');
    csv_reader *r = csv_open_mem(b.data, b.len);
    expect(r, 1, 5, "\x01", "\x01" "a,b", "\x01\"\"", "\x01x\r\ny", "plain");
    csv_close(r);
    buf_free(&b);
}

/* ---- tools/cli.h ---- */

static void ts_ok(const char *in, int unit, const char *want)
{
    char out[CLI_TS_MAX];
    const char *arg;
    size_t len;
    assert_int_equal(cli_ts(in, strlen(in), unit, out, &arg, &len), 0);
    if (len != strlen(want) || memcmp(arg, want, len) != 0)
        fail_msg("'%s' in unit %d gave '%.*s', wanted '%s'", in, unit, (int)len, arg, want);
}

static void ts_range(const char *in, int unit)
{
    char out[CLI_TS_MAX];
    const char *arg;
    size_t len;
    assert_int_equal(cli_ts(in, strlen(in), unit, out, &arg, &len), ERR_RANGE);
}

static void test_ts_units(void **state)
{
    (void)state;
    /* milliseconds and text go as they are, for the server to check */
    ts_ok("1618225182123", CLI_TS_MS, "1618225182123");
    ts_ok("-5", CLI_TS_MS, "-5");
    ts_ok("99999999999999999999", CLI_TS_MS, "99999999999999999999");
    ts_ok("2021-04-12T10:59:42.123456Z", CLI_TS_S, "2021-04-12T10:59:42.123456Z");
    ts_ok("12x", CLI_TS_S, "12x");
    ts_ok("1.", CLI_TS_S, "1.");
    ts_ok("1e9", CLI_TS_S, "1e9");
    /* seconds */
    ts_ok("1567328272", CLI_TS_S, "1567328272000");
    ts_ok("1567328272.5", CLI_TS_S, "1567328272500");
    ts_ok("1567328272.0", CLI_TS_S, "1567328272000");
    ts_ok("951782400.000001", CLI_TS_S, "2000-02-29T00:00:00.000001Z");
    ts_ok("951782400.0000019", CLI_TS_S, "2000-02-29T00:00:00.000001Z");
    ts_ok("0", CLI_TS_S, "0");
    ts_ok("-1", CLI_TS_S, "1969-12-31T23:59:59.000000Z");
    ts_ok("-1.25", CLI_TS_S, "1969-12-31T23:59:58.750000Z");
    ts_ok("-62167219200", CLI_TS_S, "0000-01-01T00:00:00.000000Z");
    ts_ok("253402300799", CLI_TS_S, "253402300799000");
    ts_range("253402300800", CLI_TS_S);
    ts_range("-62167219201", CLI_TS_S);
    ts_range("99999999999999999999", CLI_TS_S);
    /* fractions of milliseconds, microseconds */
    ts_ok("1.5", CLI_TS_MS, "1970-01-01T00:00:00.001500Z");
    ts_ok("1618225182123.000", CLI_TS_MS, "1618225182123");
    ts_ok("1618225182123456", CLI_TS_US, "2021-04-12T10:59:42.123456Z");
    ts_ok("1618225182123000", CLI_TS_US, "1618225182123");
    ts_ok("1618225182123000.9", CLI_TS_US, "1618225182123");
    ts_ok("1709210096000001", CLI_TS_US, "2024-02-29T12:34:56.000001Z");
    assert_int_equal(cli_ts_unit("s"), CLI_TS_S);
    assert_int_equal(cli_ts_unit("ms"), CLI_TS_MS);
    assert_int_equal(cli_ts_unit("us"), CLI_TS_US);
    assert_int_equal(cli_ts_unit("ns"), 0);
}

static void test_entity_key(void **state)
{
    (void)state;
    csv_field a = {S("a:b"), 0}, b = {S("c\\d"), 0}, c = {S("1001"), 0};
    const csv_field *vals[] = {&a, &b, &c};
    buf out;
    buf_init(&out);
    cli_entity_key(&out, vals, 3);
    assert_int_equal(out.len, strlen("a\\:b:c\\\\d:1001"));
    assert_memory_equal(out.data, "a\\:b:c\\\\d:1001", out.len);
    out.len = 0;
    cli_entity_key(&out, vals + 2, 1);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "1001", 4);
    buf_free(&out);
}

static void test_columns(void **state)
{
    (void)state;
    csv_reader *r = csv_open_mem(S("ts,driver_id,rate,driver_id2,dup,dup\n"));
    csv_record hdr;
    char err[256];
    assert_int_equal(csv_next(r, &hdr, err, sizeof err), 1);
    cli_list l;
    int idx[4];
    assert_int_equal(cli_split("rate,ts", "--fields", &l, err, sizeof err), 0);
    assert_int_equal(cli_columns(&hdr, &l, "--fields", idx, err, sizeof err), 0);
    assert_int_equal(idx[0], 2);
    assert_int_equal(idx[1], 0);
    cli_list_free(&l);
    assert_int_equal(cli_split("driver", "--entity", &l, err, sizeof err), 0);
    assert_int_equal(cli_columns(&hdr, &l, "--entity", idx, err, sizeof err), ERR_NOTFOUND);
    assert_string_equal(err, "--entity: no column 'driver' in the header (columns: ts, "
                             "driver_id, rate, driver_id2, dup, dup)");
    cli_list_free(&l);
    assert_int_equal(cli_split("dup", "--fields", &l, err, sizeof err), 0);
    assert_int_equal(cli_columns(&hdr, &l, "--fields", idx, err, sizeof err), ERR_INVAL);
    assert_string_equal(err, "--fields: the header has two columns named 'dup'");
    cli_list_free(&l);
    assert_int_equal(cli_split("a,,b", "--fields", &l, err, sizeof err), ERR_INVAL);
    assert_string_equal(err, "--fields: empty name in 'a,,b'");
    assert_int_equal(cli_split("", "--ts", &l, err, sizeof err), ERR_INVAL);
    assert_int_equal(cli_split("a,", "--ts", &l, err, sizeof err), ERR_INVAL);
    csv_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),         cmocka_unit_test(test_no_final_newline),
        cmocka_unit_test(test_quoted),        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_empty_cells),   cmocka_unit_test(test_blank_lines_and_bom),
        cmocka_unit_test(test_raw),           cmocka_unit_test(test_ragged),
        cmocka_unit_test(test_malformed),     cmocka_unit_test(test_limits),
        cmocka_unit_test(test_chunks),        cmocka_unit_test(test_read_error),
        cmocka_unit_test(test_put_field),     cmocka_unit_test(test_ts_units),
        cmocka_unit_test(test_entity_key),    cmocka_unit_test(test_columns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
