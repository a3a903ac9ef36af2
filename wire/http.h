/* http.h: a minimal HTTP/1.1 server on the event loop for one read-only page: GET <path>
 * answers what a render callback writes (metrics-port's /metrics, query/metrics.c).
 *
 * Parsing is libevent's evhttp, bounded: request line and headers together at most
 * HTTP_MAX_HEADERS bytes, a body at most HTTP_MAX_BODY, and a connection that sends or
 * takes nothing for HTTP_TIMEOUT_SECS is closed; what breaks a bound gets a 4xx and is
 * closed. Answers: 200 for GET or HEAD of the path (a query string is ignored), 404 for
 * any other path, 405 (with Allow) for any other method, 400 for what does not parse.
 * Nothing blocks: replies leave through the connection's buffer as the socket takes them.
 * No authentication and no TLS: bind it where only the scrapers can reach it.
 *
 * Threading: the event-loop thread; render runs on it. */
#ifndef QUIVER_HTTP_H
#define QUIVER_HTTP_H

#include <stddef.h>

#include "core/util.h"

struct event_base;

#define HTTP_MAX_HEADERS 8192
#define HTTP_MAX_BODY 8192
#define HTTP_TIMEOUT_SECS 10

typedef struct http_config {
    const char *bind; /* space-separated addresses, as net_config's */
    int port;
    int backlog;
    const char *path; /* the page served, e.g. "/metrics" */
    const char *content_type;
    void (*render)(buf *out); /* appends the page's body */
} http_config;

/* Listens on every bind address at cfg->port. The strings of cfg are copied. Errors:
 * ERR_IO with the address and reason in err (nothing is left listening); ERR_INVAL when
 * already started. */
int http_start(struct event_base *base, const http_config *cfg, char *err, size_t errlen);
/* Closes the listeners and every HTTP connection. Safe when not started. */
void http_stop(void);

#endif
