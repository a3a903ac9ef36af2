/* conn.c: the tools' pipelined connection (see conn.h). hiredis makes the TCP connection and
 * its reader turns bytes into replies; the socket is then non-blocking and this file decides
 * when to write the queue and when to read, with poll() when neither can proceed. */
#include "tools/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"

#define READ_CHUNK (256u << 10)

struct conn {
    redisContext *ctx;
    buf out;     /* queued request bytes */
    size_t sent; /* out.data[0..sent) are written */
    char *in;    /* READ_CHUNK bytes */
    char where[300];
};

buf *conn_out(conn *c)
{
    return &c->out;
}

void conn_close(conn *c)
{
    if (!c)
        return;
    if (c->ctx)
        redisFree(c->ctx);
    buf_free(&c->out);
    xfree(c->in);
    xfree(c);
}

int conn_flush(conn *c, char *err, size_t errlen)
{
    while (c->sent < c->out.len) {
        ssize_t k = send(c->ctx->fd, c->out.data + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (k < 0) {
            snprintf(err, errlen, "writing to %s: %s", c->where, strerror(errno));
            return ERR_IO;
        }
        c->sent += (size_t)k;
    }
    if (c->sent == c->out.len) {
        c->out.len = c->sent = 0;
    } else if (c->sent >= (1u << 20) && c->sent >= c->out.len / 2) {
        memmove(c->out.data, c->out.data + c->sent, c->out.len - c->sent);
        c->out.len -= c->sent;
        c->sent = 0;
    }
    return 0;
}

/* Reads what has arrived into hiredis's reader: 1 when bytes came, 0 when none. */
static int fill(conn *c, char *err, size_t errlen)
{
    for (;;) {
        ssize_t k = read(c->ctx->fd, c->in, READ_CHUNK);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (k < 0) {
            snprintf(err, errlen, "reading from %s: %s", c->where, strerror(errno));
            return ERR_IO;
        }
        if (k == 0) {
            snprintf(err, errlen, "%s closed the connection", c->where);
            return ERR_IO;
        }
        if (redisReaderFeed(c->ctx->reader, c->in, (size_t)k) != REDIS_OK) {
            snprintf(err, errlen, "%s: %s", c->where, c->ctx->reader->errstr);
            return ERR_PROTO;
        }
        return 1;
    }
}

int conn_reply(conn *c, int wait, redisReply **reply, char *err, size_t errlen)
{
    for (;;) {
        void *r = NULL;
        if (redisReaderGetReply(c->ctx->reader, &r) != REDIS_OK) {
            snprintf(err, errlen, "%s sent bytes that are not RESP: %s", c->where,
                     c->ctx->reader->errstr);
            return ERR_PROTO;
        }
        if (r) {
            *reply = r;
            return 1;
        }
        int rc = conn_flush(c, err, errlen);
        if (rc == 0)
            rc = fill(c, err, errlen);
        if (rc < 0)
            return rc;
        if (rc == 1)
            continue;
        if (!wait)
            return 0;
        struct pollfd p = {.fd = c->ctx->fd, .events = POLLIN};
        if (c->sent < c->out.len)
            p.events |= POLLOUT;
        if (poll(&p, 1, -1) < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            return ERR_IO;
        }
    }
}

int conn_call(conn *c, int argc, const char *const *argv, redisReply **reply, char *err,
              size_t errlen)
{
    resp_cmd(&c->out, argc);
    for (int i = 0; i < argc; i++)
        resp_argz(&c->out, argv[i]);
    int rc = conn_reply(c, 1, reply, err, errlen);
    return rc < 0 ? rc : 0;
}

/* A command that must answer without an error, for the set-up (AUTH, PING). */
static int setup_call(conn *c, int argc, const char *const *argv, const char *what, char *err,
                      size_t errlen)
{
    redisReply *r = NULL;
    int rc = conn_call(c, argc, argv, &r, err, errlen);
    if (rc == 0 && r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s refused %s: %s", c->where, what, r->str);
        rc = ERR_PERM;
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

int conn_open(const conn_opts *o, conn **out, char *err, size_t errlen)
{
    conn *c = xcalloc(1, sizeof *c);
    buf_init(&c->out);
    c->in = xmalloc(READ_CHUNK);
    snprintf(c->where, sizeof c->where, "%s:%d", o->host, o->port);
    struct timeval tv = {5, 0};
    c->ctx = redisConnectWithTimeout(o->host, o->port, tv);
    int rc = ERR_IO;
    if (!c->ctx || c->ctx->err) {
        snprintf(err, errlen, "cannot connect to %s: %s", c->where,
                 c->ctx ? c->ctx->errstr : "out of memory");
        goto fail;
    }
    int fl = fcntl(c->ctx->fd, F_GETFL);
    if (fl < 0 || fcntl(c->ctx->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "fcntl: %s", strerror(errno));
        goto fail;
    }
    if (o->password) {
        const char *auth[] = {"AUTH", o->password};
        if ((rc = setup_call(c, 2, auth, "AUTH (-a)", err, errlen)) != 0)
            goto fail;
    }
    const char *ping[] = {"PING"};
    if ((rc = setup_call(c, 1, ping, "PING (a password is needed? -a)", err, errlen)) != 0)
        goto fail;
    *out = c;
    return 0;
fail:
    conn_close(c);
    return rc;
}

void resp_cmd(buf *b, int argc)
{
    char n[24];
    size_t k = i64_to_str(n, argc);
    buf_reserve(b, k + 3);
    b->data[b->len++] = '*';
    memcpy(b->data + b->len, n, k);
    b->len += k;
    b->data[b->len++] = '\r';
    b->data[b->len++] = '\n';
}

void resp_arg(buf *b, const char *p, size_t len)
{
    char n[24];
    size_t k = i64_to_str(n, (int64_t)len);
    buf_reserve(b, k + len + 5);
    char *d = b->data + b->len;
    *d++ = '$';
    memcpy(d, n, k);
    d += k;
    *d++ = '\r';
    *d++ = '\n';
    memcpy(d, p, len);
    d += len;
    *d++ = '\r';
    *d++ = '\n';
    b->len = (size_t)(d - b->data);
}

void resp_argz(buf *b, const char *s)
{
    resp_arg(b, s, strlen(s));
}
