/* conn.h: the tools' connection to quiver-server: hiredis connects and parses replies (RESP2),
 * and a small non-blocking loop of our own moves the bytes, so that a tool can keep many
 * commands in flight (writing while replies come back) without either side's socket buffer
 * filling up and stalling both.
 *
 * A tool appends whole commands to conn_out() with resp_cmd()/resp_arg(), and takes replies
 * one by one, in order, with conn_reply(); conn_call() is one command and its reply for the
 * set-up steps. One thread per connection. Errors: ERR_IO (cannot connect, connection lost:
 * err says what happened), ERR_PROTO (bytes hiredis cannot parse), ERR_PERM (AUTH or PING
 * refused). Replies are hiredis objects the caller frees with freeReplyObject(). */
#ifndef QUIVER_TOOLS_CONN_H
#define QUIVER_TOOLS_CONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "core/util.h"

typedef struct conn_opts {
    const char *host;     /* default 127.0.0.1 */
    int port;             /* default 6379 */
    const char *password; /* AUTH when set */
} conn_opts;

typedef struct conn conn;

/* Connects (5 s timeout), sends AUTH when a password is set, then PING. */
int conn_open(const conn_opts *o, conn **out, char *err, size_t errlen);
void conn_close(conn *c);

/* The queue of commands to send; append whole commands only. */
buf *conn_out(conn *c);
/* Sends what the socket takes now of the queue, without waiting. */
int conn_flush(conn *c, char *err, size_t errlen);
/* The next reply: 1 with *reply, or 0 when none has arrived and !wait. While waiting it
 * keeps sending the queue. */
int conn_reply(conn *c, int wait, redisReply **reply, char *err, size_t errlen);
/* Queues argv[0..argc) and waits for its reply (nothing else may be in flight). */
int conn_call(conn *c, int argc, const char *const *argv, redisReply **reply, char *err,
              size_t errlen);

/* RESP request framing: "*argc", then each argument as a bulk string. */
void resp_cmd(buf *b, int argc);
void resp_arg(buf *b, const char *p, size_t len);
void resp_argz(buf *b, const char *s);

#endif
