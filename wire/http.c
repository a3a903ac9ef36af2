/* http.c: the one-page HTTP server of http.h over libevent's evhttp: the listening sockets
 * (the same as the RESP port's, net_listen_fd), the bounds, and the routing of a request to
 * 200, 404 or 405. */
#include "wire/http.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "wire/wire.h"

static struct {
    struct evhttp *http;
    char *path, *content_type;
    void (*render)(buf *out);
} hs;

static void send_text(struct evhttp_request *req, int code, const char *reason, const char *body)
{
    struct evbuffer *out = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evbuffer_add(out, body, strlen(body));
    evhttp_send_reply(req, code, reason, out);
    evbuffer_free(out);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        send_text(req, HTTP_BADMETHOD, "Method Not Allowed", "method not allowed\n");
        return;
    }
    if (!path || strcmp(path, hs.path) != 0) {
        send_text(req, HTTP_NOTFOUND, "Not Found", "not found\n");
        return;
    }
    buf body;
    buf_init(&body);
    hs.render(&body);
    struct evbuffer *out = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", hs.content_type);
    evbuffer_add(out, body.data ? body.data : "", body.len);
    buf_free(&body);
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}

/* Every method evhttp knows is let through to on_request, which answers 405 itself (evhttp
 * would answer 501 to the ones not allowed). */
#define ALL_METHODS                                                                                \
    (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |     \
     EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)

static int listen_all(const http_config *cfg, char *err, size_t errlen)
{
    char addrs[256];
    snprintf(addrs, sizeof addrs, "%s", cfg->bind ? cfg->bind : "127.0.0.1");
    char *save = NULL;
    for (char *a = strtok_r(addrs, " ", &save); a; a = strtok_r(NULL, " ", &save)) {
        int fd, rc = net_listen_fd(a, cfg->port, cfg->backlog, &fd, err, errlen);
        if (rc)
            return rc;
        if (!evhttp_accept_socket_with_handle(hs.http, fd)) {
            close(fd);
            snprintf(err, errlen, "cannot accept HTTP on %s:%d", a, cfg->port);
            return ERR_IO;
        }
    }
    return 0;
}

int http_start(struct event_base *base, const http_config *cfg, char *err, size_t errlen)
{
    if (hs.http) {
        snprintf(err, errlen, "the HTTP server is already started");
        return ERR_INVAL;
    }
    hs.http = evhttp_new(base);
    evhttp_set_timeout(hs.http, HTTP_TIMEOUT_SECS);
    evhttp_set_max_headers_size(hs.http, HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(hs.http, HTTP_MAX_BODY);
    evhttp_set_allowed_methods(hs.http, ALL_METHODS);
    evhttp_set_gencb(hs.http, on_request, NULL);
    hs.path = xstrdup(cfg->path);
    hs.content_type = xstrdup(cfg->content_type);
    hs.render = cfg->render;
    int rc = listen_all(cfg, err, errlen);
    if (rc)
        http_stop();
    return rc;
}

void http_stop(void)
{
    if (hs.http)
        evhttp_free(hs.http);
    xfree(hs.path);
    xfree(hs.content_type);
    memset(&hs, 0, sizeof hs);
}
