/* reply.c: the reply builders. Every byte a handler sends goes through here, encoded for
 * the client's protocol (RESP2, or RESP3 after HELLO 3), appended to its output buffer.
 * Deferred lengths reserve a spot and insert the header once the count is known. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "wire/wire.h"

static void emit(client *c, const void *p, size_t n)
{
    if (c->state == CONN_CLOSED)
        return;
    buf_append(&c->obuf, p, n);
}

/* "<prefix><n>\r\n" */
static void header(client *c, char prefix, long long n)
{
    char tmp[32];
    tmp[0] = prefix;
    size_t len = 1 + i64_to_str(tmp + 1, n);
    tmp[len++] = '\r';
    tmp[len++] = '\n';
    emit(c, tmp, len);
}

void reply_simple(client *c, const char *s)
{
    emit(c, "+", 1);
    emit(c, s, strlen(s));
    emit(c, "\r\n", 2);
}

void reply_help(client *c, const char *const *lines, size_t n)
{
    reply_array(c, (long)n);
    for (size_t i = 0; i < n; i++)
        reply_simple(c, lines[i]);
}

void reply_ok(client *c)
{
    emit(c, "+OK\r\n", 5);
}

/* The error codes Redis sends in place of ERR. An upper-case first word is not enough to
 * tell a code: "DB index is out of range" and "EXEC without MULTI" are plain ERR errors. */
static const char *const error_codes[] = {
    "ERR",       "WRONGTYPE", "NOAUTH",      "WRONGPASS",  "NOPERM",   "NOPROTO",
    "EXECABORT", "BUSYKEY",   "NOSCRIPT",    "OOM",        "READONLY", "LOADING",
    "BUSY",      "MISCONF",   "NOREPLICAS",  "MASTERDOWN", "TRYAGAIN", "CROSSSLOT",
    "MOVED",     "ASK",       "CLUSTERDOWN", "UNBLOCKED",  "DENIED",   NULL,
};

static int starts_with_code(const char *msg)
{
    size_t i = 0;
    while (msg[i] >= 'A' && msg[i] <= 'Z')
        i++;
    if (i == 0 || (msg[i] != ' ' && msg[i] != '\0'))
        return 0;
    for (const char *const *code = error_codes; *code; code++)
        if (strlen(*code) == i && memcmp(*code, msg, i) == 0)
            return 1;
    return 0;
}

void reply_error(client *c, const char *msg)
{
    /* Keep a known error code; otherwise say ERR. */
    int has_code = starts_with_code(msg);
    c->errors++;
    emit(c, has_code ? "-" : "-ERR ", has_code ? 1 : 5);
    /* Newlines would break the protocol: replace them. */
    for (const char *p = msg; *p; p++)
        emit(c, (*p == '\r' || *p == '\n') ? " " : p, 1);
    emit(c, "\r\n", 2);
}

void reply_errorf(client *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply_error(c, msg);
}

void reply_int(client *c, long long v)
{
    header(c, ':', v);
}

void reply_bulk(client *c, const void *p, size_t n)
{
    if (c->state == CONN_CLOSED)
        return;
    char tmp[32];
    tmp[0] = '$';
    size_t len = 1 + i64_to_str(tmp + 1, (long long)n);
    tmp[len++] = '\r';
    tmp[len++] = '\n';
    buf_reserve(&c->obuf, len + n + 2);
    char *o = c->obuf.data + c->obuf.len;
    memcpy(o, tmp, len);
    if (n)
        memcpy(o + len, p, n);
    memcpy(o + len + n, "\r\n", 2);
    c->obuf.len += len + n + 2;
}

void reply_bulk_cstr(client *c, const char *s)
{
    if (s)
        reply_bulk(c, s, strlen(s));
    else
        reply_null(c);
}

void reply_bulk_int(client *c, long long v)
{
    char tmp[24];
    reply_bulk(c, tmp, i64_to_str(tmp, v));
}

void reply_double(client *c, double v)
{
    char tmp[40];
    size_t n = double_to_str(tmp, v);
    if (c->resp == 3) {
        emit(c, ",", 1);
        emit(c, tmp, n);
        emit(c, "\r\n", 2);
    } else {
        reply_bulk(c, tmp, n);
    }
}

void reply_bool(client *c, int v)
{
    if (c->resp == 3)
        emit(c, v ? "#t\r\n" : "#f\r\n", 4);
    else
        reply_int(c, v ? 1 : 0);
}

void reply_null(client *c)
{
    if (c->resp == 3)
        emit(c, "_\r\n", 3);
    else
        emit(c, "$-1\r\n", 5);
}

void reply_null_array(client *c)
{
    if (c->resp == 3)
        emit(c, "_\r\n", 3);
    else
        emit(c, "*-1\r\n", 5);
}

void reply_array(client *c, long n)
{
    header(c, '*', n);
}

void reply_map(client *c, long n)
{
    if (c->resp == 3)
        header(c, '%', n);
    else
        header(c, '*', 2 * (long long)n);
}

void reply_set(client *c, long n)
{
    header(c, c->resp == 3 ? '~' : '*', n);
}

void reply_verbatim(client *c, const char *p, size_t n)
{
    if (c->resp != 3) {
        reply_bulk(c, p, n);
        return;
    }
    header(c, '=', (long long)n + 4);
    emit(c, "txt:", 4);
    emit(c, p, n);
    emit(c, "\r\n", 2);
}

size_t reply_deferred(client *c)
{
    return c->obuf.len;
}

/* Inserts a header at handle, moving what was written after it. */
static void set_deferred(client *c, size_t handle, char prefix, long long n)
{
    if (c->state == CONN_CLOSED || handle > c->obuf.len)
        return;
    char tmp[32];
    tmp[0] = prefix;
    size_t len = 1 + i64_to_str(tmp + 1, n);
    tmp[len++] = '\r';
    tmp[len++] = '\n';
    buf_reserve(&c->obuf, len);
    char *at = c->obuf.data + handle;
    memmove(at + len, at, c->obuf.len - handle);
    memcpy(at, tmp, len);
    c->obuf.len += len;
}

void reply_set_array(client *c, size_t handle, long n)
{
    set_deferred(c, handle, '*', n);
}

void reply_set_map(client *c, size_t handle, long n)
{
    if (c->resp == 3)
        set_deferred(c, handle, '%', n);
    else
        set_deferred(c, handle, '*', 2 * (long long)n);
}

size_t client_obuf_pending(const client *c)
{
    return c->obuf.len - c->osent;
}
