/* wire.h: clients on the network. The libevent loop, the listening sockets, connections
 * and their state, reading and parsing requests, and the reply builders that encode RESP2
 * or RESP3 into a client's output buffer. Together with resp.h (the request parser) this is
 * all of wire/; only wire/ and query/ know that a client exists.
 *
 * THREADING. Everything here runs on the event-loop thread.
 *
 * LIFE OF A REQUEST. The socket becomes readable; its bytes are appended to c->qbuf; the
 * parser cuts commands out of it; each goes to the dispatcher set by net_start(), whose
 * handlers answer through reply_*(). Replies accumulate in c->obuf and are sent only after
 * the loop pass ends and the storage has committed the pass's writes (net_pass_end()), so a
 * client never sees an acknowledgement for a write that is not durable.
 *
 * OWNERSHIP. A client is freed only on the close path, at the end of a loop pass, never in
 * the middle of a callback: client_close() only marks it. c->argv points into c->qbuf and
 * lives until the command returns.
 *
 * TLS. A client accepted on tls-port carries a tls_conn (wire/tls.h): its bytes go through
 * OpenSSL on the same events and buffers as a plaintext client's, the handshake first,
 * driven by the socket's readiness. Everything above the socket is the same for both.
 *
 * CONNECTION STATES. CONN_OPEN (reading and answering), CONN_CLOSING (answer what is
 * queued, read nothing more, then close), CONN_CLOSED (waiting to be freed).
 *
 * PARKED CLIENTS. A command whose work runs on another thread parks its client
 * (client_park): the client's further requests stay unparsed in its query buffer, in order,
 * while the work goes on and other clients are served. The work's reply, encoded elsewhere
 * by the reply builders on a scratch client (a zeroed client with the same resp: reply
 * builders touch only obuf, state and resp), is handed over in chunks on the loop thread
 * with client_output_append(), and is sent at the end of that pass like any reply.
 * client_unpark() then resumes parsing what was buffered. The owner of the work learns
 * through client_park_ops when output was written (for backpressure) and when the client
 * is closed while parked (it must then forget the client: it will be freed at the end of
 * the pass).
 *
 * An owner that can serve more of the client's work at once (GPU batches: a pipeline's
 * queries join the batch of the first) sets client_park_ops.offer: each further command
 * the parked client sent is parsed and offered to it, in order, before it is dispatched.
 * One it takes is dispatched at once, as usual (the client stays parked), and its output
 * is captured and handed to the owner (taken), which sends it in its turn. The first one
 * it declines is held, parsed, and nothing after it is executed before client_unpark(),
 * which dispatches it first. */
#ifndef QUIVER_WIRE_H
#define QUIVER_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "wire/resp.h"
#include "wire/tls.h"

struct event_base;
struct event;

enum { CONN_OPEN, CONN_CLOSING, CONN_CLOSED };

/* c->flags */
enum {
    CLIENT_MULTI = 1 << 0,      /* inside MULTI */
    CLIENT_DIRTY_CAS = 1 << 1,  /* a WATCHed key was touched: EXEC fails */
    CLIENT_DIRTY_EXEC = 1 << 2, /* a command queued in MULTI was refused: EXEC aborts */
    CLIENT_PENDING = 1 << 3,    /* on the list of clients with output to send */
    CLIENT_LOCAL = 1 << 4,      /* connected over loopback */
    CLIENT_PARKED = 1 << 5,     /* its command runs elsewhere: parse nothing more yet */
    CLIENT_REPLICA = 1 << 6,    /* a replica's link: replication/ limits its output */
    CLIENT_MASTER = 1 << 7,     /* applies the leader's stream (not on the client list) */
};

struct client;
struct query_state; /* per-client command state owned by query/ (MULTI queue, WATCH list) */

/* What the owner of a parked client's work hears about it, on the loop thread. */
typedef struct client_park_ops {
    /* Output was written to the socket; pending is what is still unsent. May be NULL. */
    void (*sent)(void *arg, size_t pending);
    /* The client was closed while parked (it disconnected, was killed, hit a limit): the
     * client pointer must not be used after this returns. Required. */
    void (*closed)(void *arg);
    /* May be NULL. The next command c sent, parsed (c->argc, c->argv), not dispatched: 1
     * to have it dispatched now, 0 to hold it (and offer nothing more while parked). */
    int (*offer)(void *arg, struct client *c);
    /* With offer: the output of a command it took, after its dispatch, in b (emptied; its
     * memory may be taken over). Not called when the dispatch closed or unparked c. */
    void (*taken)(void *arg, buf *b);
} client_park_ops;

typedef struct client {
    uint64_t id;
    int fd;
    int state;
    int flags;
    int resp;          /* protocol: 2 or 3 */
    int authenticated; /* 1 when no password is set */
    struct acl_user *user; /* query/acl.h; NULL: the default user */
    int db;
    char addr[64], laddr[64];
    char *name, *lib_name, *lib_ver;
    int64_t ctime_ms, last_ms; /* connected at, last command at */
    const char *last_cmd;
    int repl_port;     /* REPLCONF listening-port */

    buf qbuf;      /* received, not yet executed bytes start at qpos */
    size_t qpos;
    resp_parser parser;

    buf obuf;      /* replies; bytes [osent, ocommitted) may be sent */
    size_t osent, ocommitted;
    int64_t obuf_soft_since; /* ms since when over the soft limit, 0 if not */
    uint64_t wrote_pass;     /* last loop pass in which this client wrote */
    uint64_t errors;         /* error replies sent (query/ counts failed calls with it) */

    /* the command being executed */
    int argc, argv_cap;
    const char **argv;
    size_t *argl;

    struct query_state *qs;
    const client_park_ops *park_ops; /* while CLIENT_PARKED */
    void *park_arg;
    int held;        /* a command declined by the park's owner waits at qpos, parsed */
    int held_rc;     /* ... resp_parse()'s result for it */
    size_t held_len; /* ... and its size */
    struct event *rev, *wev;
    struct tls_conn *tls; /* NULL on a plaintext connection */
    int tls_blocked;      /* a TLS read waits for writability, or a write for readability */
    struct client *prev, *next;   /* all clients */
    struct client *next_pending;  /* clients with output (CLIENT_PENDING) */
} client;

/* Called for each parsed command. */
typedef void (*net_dispatch_fn)(client *c);
/* Called when a client is freed, so that query/ can release c->qs. */
typedef void (*net_release_fn)(client *c);

typedef struct net_config {
    const char *bind; /* space-separated addresses */
    int port;               /* 0 = no plaintext listener */
    int tls_port;           /* 0 = no TLS listener */
    tls_config tls;         /* read by net_start() only */
    int backlog;
    int maxclients;
    int protected_mode;     /* refuse non-loopback clients when no password is set */
    int need_auth;          /* new clients must AUTH (the default user has a password) */
    long long max_bulk;     /* proto-max-bulk-len */
    long long obuf_hard, obuf_soft; /* output buffer limits in bytes, 0 = none */
    int obuf_soft_secs;
    int timeout_secs;       /* close idle clients after this, 0 = never */
} net_config;

typedef struct net_stats {
    uint64_t connections, rejected, commands, net_in, net_out;
    uint64_t obuf_disconnects, proto_errors;
    unsigned connected;
} net_stats;

/* Builds the TLS context when tls_port is set, binds and listens. Errors: ERR_IO with the
 * address and reason in err; tls_ctx_new()'s errors; ERR_INVAL when both ports are 0. */
int net_start(struct event_base *base, const net_config *cfg, net_dispatch_fn dispatch,
              net_release_fn release, char *err, size_t errlen);
void net_stop(void);
/* A non-blocking listening socket on addr ("*" is every IPv4 address; IPv6 ones listen for
 * IPv6 only) and port, into *fd. Errors: ERR_IO with the address and reason in err. */
int net_listen_fd(const char *addr, int port, int backlog, int *fd, char *err, size_t errlen);
/* Re-reads limits and need_auth after CONFIG SET or ACL changes. */
void net_reconfigure(const net_config *cfg);
/* End of a loop pass. ok = 0 means the pass's writes were not committed: clients that
 * wrote in it are closed without their replies. Then sends output and frees closed
 * clients. */
void net_pass_end(int ok);
uint64_t net_pass(void); /* the current pass number */
/* Marks that c wrote in this pass (see net_pass_end). */
void client_wrote(client *c);
void client_close(client *c);          /* close now, dropping queued output */
void client_close_after_reply(client *c);
client *net_clients(void);             /* first of all clients (follow ->next) */
client *net_client_by_id(uint64_t id);
const net_stats *net_get_stats(void);
/* Parks c from inside the handler of the command it is executing (see PARKED CLIENTS).
 * Returns -1, changing nothing, when c cannot be parked: the command is not one read from
 * c's socket (EXEC replaying a queued command), or c is closing or already parked. */
int client_park(client *c, const client_park_ops *ops, void *arg);
/* Resumes c: parses and executes what it sent meanwhile. Loop thread, outside any handler
 * of c (typically from work posted with server_post). */
void client_unpark(client *c);
/* Appends already-encoded reply bytes to c's output, emptying b (its memory may be taken
 * over), and queues them for sending at the end of the pass. */
void client_output_append(client *c, buf *b);
/* The same for bytes the caller keeps: copies n bytes at p to c's output. */
void client_output_write(client *c, const void *p, size_t n);
/* Formats one CLIENT LIST line for c (no trailing newline); user is its ACL user's name. */
void client_describe(const client *c, const char *user, buf *out);
/* Runs the idle-timeout and soft-limit checks; called from the server cron. */
void net_cron(int64_t now_ms);

/* Reply builders. RESP3 types degrade to their RESP2 forms when c->resp == 2. */
void reply_simple(client *c, const char *s);       /* +s */
/* A HELP subcommand's answer: an array of n status lines. */
void reply_help(client *c, const char *const *lines, size_t n);
void reply_ok(client *c);
void reply_error(client *c, const char *msg);      /* "-ERR msg" unless msg starts with a code */
void reply_errorf(client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void reply_int(client *c, long long v);
void reply_bulk(client *c, const void *p, size_t n);
void reply_bulk_cstr(client *c, const char *s);
void reply_bulk_int(client *c, long long v);
void reply_double(client *c, double v);            /* ",v" or a bulk string */
void reply_bool(client *c, int v);                 /* "#t" or :1 */
void reply_null(client *c);                        /* "_" or $-1 */
void reply_null_array(client *c);                  /* "_" or *-1 */
void reply_array(client *c, long n);
void reply_map(client *c, long n);                 /* "%n" or *2n */
void reply_set(client *c, long n);                 /* "~n" or *n */
void reply_verbatim(client *c, const char *p, size_t n); /* "=n\r\ntxt:..." or bulk */
/* Deferred lengths, for replies whose size is known only at the end. Set them in the
 * reverse order of creation (innermost first). */
size_t reply_deferred(client *c);
void reply_set_array(client *c, size_t handle, long n);
void reply_set_map(client *c, size_t handle, long n);
/* Bytes of c's output not yet sent. */
size_t client_obuf_pending(const client *c);

#endif
