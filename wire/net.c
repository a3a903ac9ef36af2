/* net.c: sockets and connections. Listening sockets on the libevent loop (plaintext and
 * TLS), accepting with the maxclients and protected-mode checks, reading into each client's
 * query buffer and cutting commands out of it with the RESP parser, the end-of-pass flush
 * that sends replies only after the storage commit, output-buffer limits, idle timeouts,
 * the close path, and parking a client while its command runs on another thread. Reads and
 * writes go through conn_read()/conn_write(): read()/write() on a plaintext socket, tls.h on
 * a TLS one, whose handshake and cross-direction waits are driven here by the same events. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "wire/wire.h"

#define MAX_LISTENERS 16
#define READ_CHUNK (16 * 1024)
#define READ_MAX (64 * 1024 * 1024)
#define READ_BATCH (128 * 1024) /* what one pass reads from a client whose chunks come full */
#define QUERY_BUF_LIMIT (1024LL * 1024 * 1024) /* client-query-buffer-limit */
#define PARKED_READ_MAX (64 * 1024 * 1024) /* a parked client's socket rests past this */

static struct {
    struct event_base *base;
    net_config cfg;
    char bind[256], password_set;
    net_dispatch_fn dispatch;
    net_release_fn release;
    int lfd[MAX_LISTENERS];
    struct event *lev[MAX_LISTENERS];
    int nlisten;
    tls_ctx *tls; /* while tls-port is served */
    client *clients, *pending, *closed;
    uint64_t next_id, pass;
    net_stats stats;
} net;

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_writable(evutil_socket_t fd, short what, void *arg);

/* c->tls_blocked: OpenSSL needs the other direction's readiness to go on. */
enum { TLS_READ_NEEDS_WRITE = 1, TLS_WRITE_NEEDS_READ = 2 };
/* conn_read()/conn_write() results besides a byte count */
enum { CONN_AGAIN = -1, CONN_GONE = -2 };

static void fmt_addr(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)ss;
        inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
        port = ntohs(s->sin_port);
        snprintf(out, n, "%s:%d", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
        port = ntohs(s->sin6_port);
        snprintf(out, n, "%s:%d", host, port);
    } else {
        snprintf(out, n, "?:0");
    }
}

static int is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)(const void *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

/* Writes a reply straight to a socket we are about to refuse. A TLS client would need a
 * handshake to read it: it is only closed. */
static void refuse(int fd, const char *msg, int tls)
{
    if (!tls) {
        ssize_t w = write(fd, msg, strlen(msg));
        (void)w;
    } else {
        log_msg(LOG_VERBOSE, "TLS connection refused: %.*s", (int)strcspn(msg, "\r"), msg);
    }
    close(fd);
    net.stats.rejected++;
}

/* on_accept's arg: the TLS context for the TLS port, NULL for the plaintext one. */
static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    tls_ctx *tls = arg;
    for (int i = 0; i < 64; i++) { /* bounded, so a flood cannot starve the loop */
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("accept: %s", strerror(errno));
            return;
        }
        int local = is_loopback(&ss);
        if (net.cfg.maxclients > 0 && net.stats.connected >= (unsigned)net.cfg.maxclients) {
            refuse(fd, "-ERR max number of clients reached\r\n", tls != NULL);
            continue;
        }
        if (net.cfg.protected_mode && !net.password_set && !local) {
            refuse(fd, "-DENIED Quiver is running in protected mode because protected mode is "
                       "enabled and no password is set for the default user. Only loopback "
                       "connections are accepted. Set a password with requirepass, or bind "
                       "deliberately and disable protected-mode.\r\n", tls != NULL);
            continue;
        }
        tls_conn *t = NULL;
        if (tls && tls_conn_new(tls, fd, &t) != 0) {
            log_warn("accept: no memory for a TLS session");
            refuse(fd, "", 1);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);

        client *c = xcalloc(1, sizeof *c);
        c->tls = t;
        c->id = ++net.next_id;
        c->fd = fd;
        c->state = CONN_OPEN;
        c->resp = 2;
        c->authenticated = !net.password_set;
        c->flags = local ? CLIENT_LOCAL : 0;
        c->ctime_ms = c->last_ms = clock_ms();
        fmt_addr(&ss, c->addr, sizeof c->addr);
        struct sockaddr_storage ls;
        socklen_t ll = sizeof ls;
        if (getsockname(fd, (struct sockaddr *)&ls, &ll) == 0)
            fmt_addr(&ls, c->laddr, sizeof c->laddr);
        resp_parser_init(&c->parser);
        c->rev = event_new(net.base, fd, EV_READ | EV_PERSIST, on_readable, c);
        c->wev = event_new(net.base, fd, EV_WRITE | EV_PERSIST, on_writable, c);
        event_add(c->rev, NULL);
        c->next = net.clients;
        if (net.clients)
            net.clients->prev = c;
        net.clients = c;
        net.stats.connections++;
        net.stats.connected++;
    }
}

int net_listen_fd(const char *addr, int port, int backlog, int *fdp, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST};
    struct addrinfo *res;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const char *host = (strcmp(addr, "*") == 0) ? "0.0.0.0" : addr;
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "cannot bind '%s': %s", addr, gai_strerror(rc));
        return ERR_IO;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (res->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
        listen(fd, backlog > 0 ? backlog : 511) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", addr, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return ERR_IO;
    }
    freeaddrinfo(res);
    *fdp = fd;
    return 0;
}

static int listen_on(const char *addr, int port, tls_ctx *tls, char *err, size_t errlen)
{
    int fd, rc = net_listen_fd(addr, port, net.cfg.backlog, &fd, err, errlen);
    if (rc)
        return rc;
    if (net.nlisten == MAX_LISTENERS) {
        close(fd);
        snprintf(err, errlen, "too many bind addresses (at most %d)", MAX_LISTENERS);
        return ERR_LIMIT;
    }
    net.lfd[net.nlisten] = fd;
    net.lev[net.nlisten] = event_new(net.base, fd, EV_READ | EV_PERSIST, on_accept, tls);
    event_add(net.lev[net.nlisten], NULL);
    net.nlisten++;
    return 0;
}

void net_reconfigure(const net_config *cfg)
{
    net.cfg = *cfg;
    snprintf(net.bind, sizeof net.bind, "%s", cfg->bind ? cfg->bind : "127.0.0.1");
    net.cfg.bind = net.bind;
    net.password_set = (char)cfg->need_auth;
    memset(&net.cfg.tls, 0, sizeof net.cfg.tls); /* its strings are not ours to keep */
}

int net_start(struct event_base *base, const net_config *cfg, net_dispatch_fn dispatch,
              net_release_fn release, char *err, size_t errlen)
{
    net.base = base;
    net.dispatch = dispatch;
    net.release = release;
    net_reconfigure(cfg);
    if (!cfg->port && !cfg->tls_port) {
        snprintf(err, errlen, "port and tls-port are both 0: nothing to listen on");
        return ERR_INVAL;
    }
    int rc;
    if (cfg->tls_port && (rc = tls_ctx_new(&cfg->tls, &net.tls, err, errlen)) != 0)
        return rc;
    char addrs[256];
    snprintf(addrs, sizeof addrs, "%s", net.bind);
    char *save = NULL;
    for (char *a = strtok_r(addrs, " ", &save); a; a = strtok_r(NULL, " ", &save)) {
        if ((cfg->port && (rc = listen_on(a, cfg->port, NULL, err, errlen)) != 0) ||
            (cfg->tls_port && (rc = listen_on(a, cfg->tls_port, net.tls, err, errlen)) != 0)) {
            net_stop();
            return rc;
        }
    }
    if (!net.nlisten) {
        snprintf(err, errlen, "no address to bind");
        net_stop();
        return ERR_INVAL;
    }
    return 0;
}

static void client_free(client *c)
{
    if (net.release)
        net.release(c);
    event_free(c->rev);
    event_free(c->wev);
    resp_parser_free(&c->parser);
    buf_free(&c->qbuf);
    buf_free(&c->obuf);
    xfree(c->argv);
    xfree(c->argl);
    xfree(c->name);
    xfree(c->lib_name);
    xfree(c->lib_ver);
    xfree(c);
}

void net_stop(void)
{
    for (int i = 0; i < net.nlisten; i++) {
        event_free(net.lev[i]);
        close(net.lfd[i]);
    }
    net.nlisten = 0;
    while (net.clients) /* client_close() unlinks the client, so always take the first */
        client_close(net.clients);
    net_pass_end(1);
    tls_ctx_free(net.tls);
    net.tls = NULL;
}

void client_close(client *c)
{
    if (c->state == CONN_CLOSED)
        return;
    if (c->flags & CLIENT_PARKED) {
        c->flags &= ~CLIENT_PARKED;
        c->park_ops->closed(c->park_arg);
        c->park_ops = NULL;
        c->park_arg = NULL;
    }
    event_del(c->rev); /* before close(): the fd number may be reused at once */
    event_del(c->wev);
    tls_conn_free(c->tls);
    c->tls = NULL;
    close(c->fd);
    c->fd = -1;
    c->state = CONN_CLOSED;
    /* unlink from all clients; park on the closed list until the pass ends */
    if (c->prev)
        c->prev->next = c->next;
    else
        net.clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = net.closed;
    net.closed = c;
    net.stats.connected--;
}

void client_close_after_reply(client *c)
{
    if (c->state == CONN_OPEN) {
        c->state = CONN_CLOSING;
        event_del(c->rev);
    }
}

static void mark_pending(client *c)
{
    if (!(c->flags & CLIENT_PENDING) && c->state != CONN_CLOSED) {
        c->flags |= CLIENT_PENDING;
        c->next_pending = net.pending;
        net.pending = c;
    }
}

/* True (and the client closed) when its output is past the hard limit. */
static int over_hard_limit(client *c)
{
    if (!net.cfg.obuf_hard || client_obuf_pending(c) <= (size_t)net.cfg.obuf_hard ||
        (c->flags & CLIENT_REPLICA))
        return 0;
    log_warn("client id=%llu addr=%s closed: output buffer of %zu bytes is over the limit",
             (unsigned long long)c->id, c->addr, client_obuf_pending(c));
    net.stats.obuf_disconnects++;
    client_close(c);
    return 1;
}

static const resp_limits *limits_for(const client *c, resp_limits *l)
{
    l->max_inline = RESP_DEFAULT_MAX_INLINE;
    l->max_bulk = net.cfg.max_bulk > 0 ? net.cfg.max_bulk : RESP_DEFAULT_MAX_BULK;
    l->max_args = RESP_DEFAULT_MAX_ARGS;
    l->max_buffered = QUERY_BUF_LIMIT;
    l->unauthenticated = 0;
    if (!c->authenticated) {
        l->max_bulk = 16 * 1024;
        l->max_args = 10;
        l->max_buffered = 1024 * 1024;
        l->unauthenticated = 1;
    }
    return l;
}

/* Whether c's next command is to be offered to the owner of its park (PARKED CLIENTS). */
static int offering(const client *c)
{
    return (c->flags & CLIENT_PARKED) && c->park_ops->offer && !c->held;
}

/* Points c->argv at the command the parser found at start. */
static void set_argv(client *c, char *start)
{
    int argc = c->parser.argc;
    if (argc > c->argv_cap) {
        c->argv_cap = argc < 16 ? 16 : argc;
        c->argv = xrealloc(c->argv, sizeof *c->argv * (size_t)c->argv_cap);
        c->argl = xrealloc(c->argl, sizeof *c->argl * (size_t)c->argv_cap);
    }
    for (int i = 0; i < argc; i++) {
        c->argv[i] = start + c->parser.argv_off[i];
        c->argl[i] = c->parser.argv_len[i];
    }
    c->argc = argc;
}

/* Dispatches c's command. One the owner of c's park took runs with c's output set aside:
 * what it writes goes to the owner, which sends it after the replies due before it. */
static void dispatch(client *c)
{
    net.stats.commands++;
    if (!(c->flags & CLIENT_PARKED)) {
        net.dispatch(c);
        return;
    }
    const client_park_ops *ops = c->park_ops;
    void *arg = c->park_arg;
    buf kept = c->obuf;
    size_t osent = c->osent, ocommitted = c->ocommitted;
    buf_init(&c->obuf);
    c->osent = c->ocommitted = 0;
    net.dispatch(c);
    buf out = c->obuf;
    c->obuf = kept;
    c->osent = osent;
    c->ocommitted = ocommitted;
    if (c->state != CONN_CLOSED && (c->flags & CLIENT_PARKED) && c->park_ops == ops &&
        c->park_arg == arg)
        ops->taken(arg, &out);
    else if (c->state != CONN_CLOSED)
        client_output_append(c, &out);
    buf_free(&out);
}

/* Executes every complete command in the query buffer; while c is parked, offers them to
 * the park's owner, holding the first it declines (and any the parser refused). */
static void process_input(client *c)
{
    resp_limits lim;
    while (c->state == CONN_OPEN && c->qpos < c->qbuf.len &&
           (!(c->flags & CLIENT_PARKED) || offering(c))) {
        size_t consumed = 0;
        char *start = c->qbuf.data + c->qpos;
        int rc;
        if (c->held) { /* parsed before: inline commands are unescaped in place, once */
            c->held = 0;
            rc = c->held_rc;
            consumed = c->held_len;
        } else {
            rc = resp_parse(&c->parser, start, c->qbuf.len - c->qpos, limits_for(c, &lim),
                            &consumed);
        }
        if (rc == RESP_NEED_MORE)
            break;
        int argc = rc == RESP_OK ? c->parser.argc : 0;
        if (argc > 0)
            set_argv(c, start);
        if ((c->flags & CLIENT_PARKED) &&
            (rc != RESP_OK || (argc > 0 && !c->park_ops->offer(c->park_arg, c)))) {
            c->argc = 0;
            c->held = 1;
            c->held_rc = rc;
            c->held_len = consumed;
            break;
        }
        if (rc == RESP_CLOSE) {
            log_warn("possible cross-protocol attack from %s: HTTP request, connection closed",
                     c->addr);
            client_close(c);
            return;
        }
        if (rc == RESP_ERR) {
            net.stats.proto_errors++;
            reply_error(c, c->parser.err);
            client_close_after_reply(c);
            break;
        }
        if (argc > 0) {
            dispatch(c);
            c->argc = 0;
        }
        c->qpos += consumed;
        resp_parser_reset(&c->parser);
        if (c->state != CONN_CLOSED && over_hard_limit(c))
            return;
    }
    if (c->state == CONN_CLOSED)
        return;
    /* Drop what was executed, keeping the partial command at the front. */
    if (c->qpos) {
        size_t rest = c->qbuf.len - c->qpos;
        memmove(c->qbuf.data, c->qbuf.data + c->qpos, rest);
        c->qbuf.len = rest;
        c->qpos = 0;
    }
    if (c->qbuf.len == 0 && c->qbuf.cap > 256 * 1024)
        buf_free(&c->qbuf); /* give a big idle buffer back */
    if (client_obuf_pending(c))
        mark_pending(c);
}

/* Reads from a TLS client until OpenSSL holds nothing more (what is still in the kernel
 * wakes the read event again: no read() just to hear EAGAIN), needs more from the socket,
 * or n bytes came. Stopping at n can leave decrypted bytes inside OpenSSL that no socket
 * event will announce: the read event is then made active by hand. */
static ssize_t tls_conn_read(client *c, char *p, size_t n)
{
    size_t total = 0;
    int rc = 0, wants = 0;
    while (total < n) {
        size_t got;
        if ((rc = tls_read(c->tls, p + total, n - total, &got, &wants)) != 0)
            break;
        total += got;
        if (!tls_pending(c->tls))
            break;
    }
    if (rc == ERR_AGAIN && wants == TLS_WANT_WRITE) { /* on_writable() reads on */
        c->tls_blocked |= TLS_READ_NEEDS_WRITE;
        event_add(c->wev, NULL);
    }
    if ((total == n && tls_pending(c->tls)) || (rc == ERR_IO && total))
        event_active(c->rev, EV_READ, 1); /* more to read, or the end to see again */
    if (total)
        return (ssize_t)total;
    return rc == ERR_AGAIN ? CONN_AGAIN : CONN_GONE;
}

static ssize_t conn_read(client *c, char *p, size_t n)
{
    if (c->tls)
        return tls_conn_read(c, p, n);
    ssize_t r = read(c->fd, p, n);
    if (r > 0)
        return r;
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? CONN_AGAIN
                                                                                : CONN_GONE;
}

static ssize_t conn_write(client *c, const char *p, size_t n)
{
    if (c->tls) {
        size_t put;
        int wants;
        int rc = tls_write(c->tls, p, n, &put, &wants);
        if (rc == 0)
            return (ssize_t)put;
        if (rc != ERR_AGAIN)
            return CONN_GONE;
        if (wants == TLS_WANT_READ)
            c->tls_blocked |= TLS_WRITE_NEEDS_READ; /* flush_client() watches for it */
        return CONN_AGAIN;
    }
    for (;;) {
        ssize_t w = write(c->fd, p, n);
        if (w >= 0)
            return w;
        if (errno != EINTR)
            return errno == EAGAIN || errno == EWOULDBLOCK ? CONN_AGAIN : CONN_GONE;
    }
}

/* Reads what the socket has into the query buffer and executes what is complete. */
static void read_input(client *c)
{
    if ((c->flags & CLIENT_PARKED) && c->qbuf.len >= PARKED_READ_MAX) {
        event_del(c->rev); /* enough waiting already: client_unpark() reads on */
        return;
    }
    size_t want = resp_parse_want(&c->parser, c->qbuf.len);
    want = want > READ_CHUNK ? (want > READ_MAX ? READ_MAX : want) : READ_CHUNK;
    buf_reserve(&c->qbuf, want);
    ssize_t n = conn_read(c, c->qbuf.data + c->qbuf.len, want);
    if (n < 0) {
        if (n == CONN_GONE)
            client_close(c);
        return;
    }
    size_t got = (size_t)n;
    c->qbuf.len += got;
    /* A full chunk says more is waiting: a pipelining client's next chunks join this pass,
     * whose commit and write to each replica then serve more commands. An error or EOF
     * shows again on the next read, once what came is served. */
    while ((size_t)n == want && got < READ_BATCH) {
        want = READ_CHUNK;
        buf_reserve(&c->qbuf, want);
        if ((n = conn_read(c, c->qbuf.data + c->qbuf.len, want)) < 0)
            break;
        c->qbuf.len += (size_t)n;
        got += (size_t)n;
    }
    c->last_ms = clock_ms();
    net.stats.net_in += got;
    if (!(c->flags & CLIENT_PARKED) || offering(c))
        process_input(c);
}

/* Sends committed output; returns 0, or -1 when the client was closed. */
static int flush_client(client *c)
{
    while (c->osent < c->ocommitted) {
        ssize_t n = conn_write(c, c->obuf.data + c->osent, c->ocommitted - c->osent);
        if (n < 0) {
            if (n == CONN_AGAIN)
                break;
            client_close(c);
            return -1;
        }
        c->osent += (size_t)n;
        net.stats.net_out += (uint64_t)n;
    }
    if (c->osent == c->obuf.len) {
        c->obuf.len = c->osent = c->ocommitted = 0;
        /* A replica's output is refilled at once: new memory each time would cost a page
         * fault per 4 KiB sent (a full sync's window fits in 32 MiB; more is let go). */
        int keep = (c->flags & CLIENT_REPLICA) && c->obuf.cap <= ((size_t)32 << 20);
        if (c->obuf.cap > 64 * 1024 && !keep)
            buf_free(&c->obuf);
        if (!(c->tls_blocked & TLS_READ_NEEDS_WRITE))
            event_del(c->wev);
        if (c->state == CONN_CLOSING) {
            client_close(c);
            return -1;
        }
    } else if (c->tls_blocked & TLS_WRITE_NEEDS_READ) {
        event_del(c->wev); /* writable is not what it waits for */
        event_add(c->rev, NULL);
    } else if (c->osent < c->ocommitted) {
        event_add(c->wev, NULL);
    }
    if ((c->flags & CLIENT_PARKED) && c->park_ops->sent)
        c->park_ops->sent(c->park_arg, client_obuf_pending(c));
    return 0;
}

/* Runs the TLS handshake on; returns 1 once complete, 0 while it waits, -1 when it failed
 * (the client is closed: a plaintext client or a refused certificate, logged at verbose). */
static int tls_handshake(client *c)
{
    char err[256];
    int wants;
    int rc = tls_accept(c->tls, &wants, err, sizeof err);
    if (rc == 0) {
        event_del(c->wev);
        return 1;
    }
    if (rc == ERR_AGAIN) {
        if (wants == TLS_WANT_WRITE)
            event_add(c->wev, NULL);
        else
            event_del(c->wev);
        return 0;
    }
    log_msg(LOG_VERBOSE, "TLS handshake with %s failed, connection closed: %s", c->addr, err);
    client_close(c);
    return -1;
}

/* TLS work due when c's socket turns readable, before reading requests: the handshake, or
 * a write that waited for it. Returns 1 when reading may go on. */
static int tls_on_readable(client *c)
{
    if (!tls_conn_ready(c->tls))
        return tls_handshake(c) == 1;
    if (c->tls_blocked & TLS_WRITE_NEEDS_READ) {
        c->tls_blocked &= ~TLS_WRITE_NEEDS_READ;
        if (flush_client(c) < 0)
            return 0;
        if (c->state != CONN_OPEN) { /* only watching reads for that write */
            if (!(c->tls_blocked & TLS_WRITE_NEEDS_READ))
                event_del(c->rev);
            return 0;
        }
    }
    return 1;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client *c = arg;
    if (c->tls && !tls_on_readable(c))
        return;
    read_input(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client *c = arg;
    if (c->tls && !tls_conn_ready(c->tls)) {
        if (tls_handshake(c) == 1)
            event_active(c->rev, EV_READ, 1); /* requests may have come with the handshake */
        return;
    }
    if (c->tls_blocked & TLS_READ_NEEDS_WRITE) {
        c->tls_blocked &= ~TLS_READ_NEEDS_WRITE;
        if (c->state == CONN_OPEN)
            read_input(c);
        if (c->state == CONN_CLOSED)
            return;
    }
    flush_client(c);
}

int client_park(client *c, const client_park_ops *ops, void *arg)
{
    /* EXEC replays queued commands from copies: their argv is not in the query buffer, and
     * the rest of the transaction's reply follows at once, so they cannot wait. */
    int from_socket = c->argc > 0 && c->argv[0] >= c->qbuf.data &&
                      c->argv[0] < c->qbuf.data + c->qbuf.len;
    if (c->state != CONN_OPEN || (c->flags & CLIENT_PARKED) || !from_socket)
        return -1;
    c->flags |= CLIENT_PARKED;
    c->park_ops = ops;
    c->park_arg = arg;
    return 0;
}

void client_unpark(client *c)
{
    if (!(c->flags & CLIENT_PARKED))
        return;
    c->flags &= ~CLIENT_PARKED;
    c->park_ops = NULL;
    c->park_arg = NULL;
    if (c->state != CONN_OPEN)
        return;
    event_add(c->rev, NULL); /* in case it rested (PARKED_READ_MAX) */
    if (c->tls && tls_pending(c->tls))
        event_active(c->rev, EV_READ, 1); /* bytes inside OpenSSL wake no socket event */
    process_input(c);
}

void client_output_write(client *c, const void *p, size_t n)
{
    if (c->state == CONN_CLOSED)
        return;
    /* The sent bytes make room before the buffer grows: a replica's output during a full
     * sync never empties, and would otherwise grow by the whole snapshot. */
    if (c->osent && c->obuf.cap - c->obuf.len < n) {
        memmove(c->obuf.data, c->obuf.data + c->osent, c->obuf.len - c->osent);
        c->obuf.len -= c->osent;
        c->ocommitted -= c->osent;
        c->osent = 0;
    }
    buf_append(&c->obuf, p, n);
    mark_pending(c);
}

void client_output_append(client *c, buf *b)
{
    if (c->state != CONN_CLOSED && c->obuf.len == 0 && c->obuf.cap < b->len) {
        buf_free(&c->obuf); /* take b's memory instead of copying it */
        c->obuf = *b;
        c->osent = c->ocommitted = 0;
        buf_init(b);
        mark_pending(c);
        return;
    }
    client_output_write(c, b->data, b->len);
    buf_free(b);
}

void client_wrote(client *c)
{
    c->wrote_pass = net.pass;
}

void net_pass_end(int ok)
{
    if (!ok) {
        /* The pass's writes are gone: nobody who wrote may read an acknowledgement. */
        for (client *c = net.clients, *next; c; c = next) {
            next = c->next;
            if (c->wrote_pass == net.pass) {
                log_warn("client id=%llu closed: its writes could not be committed",
                         (unsigned long long)c->id);
                client_close(c);
            }
        }
    }
    client *list = net.pending;
    net.pending = NULL;
    for (client *c = list, *next; c; c = next) {
        next = c->next_pending;
        c->flags &= ~CLIENT_PENDING;
        if (c->state == CONN_CLOSED)
            continue;
        c->ocommitted = c->obuf.len;
        flush_client(c);
    }
    while (net.closed) {
        client *c = net.closed;
        net.closed = c->next;
        client_free(c);
    }
    net.pass++;
}

uint64_t net_pass(void)
{
    return net.pass;
}

client *net_clients(void)
{
    return net.clients;
}

client *net_client_by_id(uint64_t id)
{
    for (client *c = net.clients; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

const net_stats *net_get_stats(void)
{
    return &net.stats;
}

void client_describe(const client *c, const char *user, buf *out)
{
    int64_t now = clock_ms();
    char flags[8];
    int nf = 0;
    if (c->flags & CLIENT_MULTI)
        flags[nf++] = 'x';
    if (c->flags & CLIENT_DIRTY_CAS)
        flags[nf++] = 'd';
    if (c->state == CONN_CLOSING)
        flags[nf++] = 'c';
    if (c->flags & CLIENT_PARKED)
        flags[nf++] = 'b';
    if (!nf)
        flags[nf++] = 'N';
    flags[nf] = '\0';
    buf_printf(out,
               "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=%s db=%d "
               "sub=0 psub=0 ssub=0 multi=%d qbuf=%zu qbuf-free=%zu argv-mem=0 multi-mem=0 "
               "rbs=%zu rbp=0 obl=%zu oll=0 omem=%zu tot-mem=%zu events=r%s cmd=%s "
               "user=%s redir=-1 resp=%d lib-name=%s lib-ver=%s",
               (unsigned long long)c->id, c->addr, c->laddr, c->fd, c->name ? c->name : "",
               (long long)(now - c->ctime_ms) / 1000, (long long)(now - c->last_ms) / 1000,
               flags, c->db, (c->flags & CLIENT_MULTI) ? 0 : -1, c->qbuf.len - c->qpos,
               c->qbuf.cap - c->qbuf.len, c->qbuf.cap, client_obuf_pending(c), c->obuf.cap,
               c->qbuf.cap + c->obuf.cap + sizeof *c, client_obuf_pending(c) ? "w" : "",
               c->last_cmd ? c->last_cmd : "NULL", user, c->resp, c->lib_name ? c->lib_name : "",
               c->lib_ver ? c->lib_ver : "");
}

void net_cron(int64_t now_ms)
{
    for (client *c = net.clients, *next; c; c = next) {
        next = c->next;
        if (c->flags & CLIENT_REPLICA)
            continue; /* replication/ watches its replicas */
        if (net.cfg.timeout_secs > 0 && !(c->flags & (CLIENT_MULTI | CLIENT_PARKED)) &&
            now_ms - c->last_ms > (int64_t)net.cfg.timeout_secs * 1000 &&
            !client_obuf_pending(c)) {
            client_close(c);
            continue;
        }
        size_t pending = client_obuf_pending(c);
        if (net.cfg.obuf_soft && pending > (size_t)net.cfg.obuf_soft) {
            if (!c->obuf_soft_since) {
                c->obuf_soft_since = now_ms;
            } else if (now_ms - c->obuf_soft_since > (int64_t)net.cfg.obuf_soft_secs * 1000) {
                log_warn("client id=%llu addr=%s closed: output buffer over the soft limit "
                         "for %d s", (unsigned long long)c->id, c->addr, net.cfg.obuf_soft_secs);
                net.stats.obuf_disconnects++;
                client_close(c);
            }
        } else {
            c->obuf_soft_since = 0;
        }
    }
}
