/* tls.c: the OpenSSL adapter behind tls.h. Builds the server context (and the replica's
 * client context) from the tls-* options and moves bytes through
 * SSL_accept/SSL_connect/SSL_read/SSL_write, turning
 * OpenSSL's SSL_get_error() and error queue into Quiver's codes in one place. The sockets,
 * events and buffers stay net.c's. */
#include "wire/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/err.h"

struct tls_ctx {
    SSL_CTX *ssl_ctx;
};

struct tls_conn {
    SSL *ssl;
    int ready;  /* handshake complete */
    int failed; /* a fatal error happened: OpenSSL forbids SSL_shutdown() then */
    char why[256]; /* OpenSSL's reason for a failed read, "" otherwise */
};

/* Formats "what: reason" with the oldest queued OpenSSL error, and empties the queue. */
static void ssl_reason(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    snprintf(err, errlen, "%s: %s", what, reason);
}

/* tls-protocols: the versions named are enabled, from the lowest to the highest named. */
static int set_protocols(SSL_CTX *ctx, const char *list, char *err, size_t errlen)
{
    static const struct { const char *name; int version; } names[] = {
        {"TLSv1", TLS1_VERSION},     {"TLSv1.1", TLS1_1_VERSION},
        {"TLSv1.2", TLS1_2_VERSION}, {"TLSv1.3", TLS1_3_VERSION},
    };
    int lo = TLS1_2_VERSION, hi = TLS1_3_VERSION;
    if (list && *list) {
        lo = hi = 0;
        char copy[128], *save = NULL;
        snprintf(copy, sizeof copy, "%s", list);
        for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
            int v = 0;
            for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
                if (strcasecmp(w, names[i].name) == 0)
                    v = names[i].version;
            if (!v) {
                snprintf(err, errlen, "tls-protocols: unknown protocol '%s' (TLSv1, TLSv1.1, "
                                      "TLSv1.2, TLSv1.3)", w);
                return ERR_INVAL;
            }
            lo = (!lo || v < lo) ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    if (!lo || !SSL_CTX_set_min_proto_version(ctx, lo) || !SSL_CTX_set_max_proto_version(ctx, hi)) {
        snprintf(err, errlen, "tls-protocols: no usable protocol in '%s'", list ? list : "");
        return ERR_INVAL;
    }
    return 0;
}

/* Trusted CAs and the client-certificate policy of tls-auth-clients. */
static int set_client_auth(SSL_CTX *ctx, const tls_config *cfg, char *err, size_t errlen)
{
    int has_file = cfg->ca_cert_file && *cfg->ca_cert_file;
    int has_dir = cfg->ca_cert_dir && *cfg->ca_cert_dir;
    if (cfg->auth_clients != TLS_AUTH_NO && !has_file && !has_dir) {
        snprintf(err, errlen, "tls-auth-clients needs tls-ca-cert-file or tls-ca-cert-dir "
                              "(or tls-auth-clients no)");
        return ERR_INVAL;
    }
    char what[600];
    if (has_file) {
        snprintf(what, sizeof what, "cannot load tls-ca-cert-file '%s'", cfg->ca_cert_file);
        if (!SSL_CTX_load_verify_locations(ctx, cfg->ca_cert_file, NULL))
            goto fail;
        /* tell clients which CAs we trust, so they pick the right certificate */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_cert_file);
        if (!names)
            goto fail;
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    if (has_dir) {
        snprintf(what, sizeof what, "cannot use tls-ca-cert-dir '%s'", cfg->ca_cert_dir);
        if (!SSL_CTX_load_verify_locations(ctx, NULL, cfg->ca_cert_dir))
            goto fail;
    }
    int mode = cfg->auth_clients == TLS_AUTH_YES
                   ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
               : cfg->auth_clients == TLS_AUTH_OPTIONAL ? SSL_VERIFY_PEER
                                                        : SSL_VERIFY_NONE;
    SSL_CTX_set_verify(ctx, mode, NULL);
    return 0;
fail:
    ssl_reason(err, errlen, what);
    return ERR_IO;
}

/* Our certificate chain and its private key. */
static int use_cert(SSL_CTX *ctx, const tls_config *cfg, char *err, size_t errlen)
{
    char what[600];
    snprintf(what, sizeof what, "cannot load tls-cert-file '%s'", cfg->cert_file);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1)
        goto fail;
    /* this also checks that the key belongs to the certificate ("key values mismatch") */
    snprintf(what, sizeof what, "cannot load tls-key-file '%s'", cfg->key_file);
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1)
        goto fail;
    return 0;
fail:
    ssl_reason(err, errlen, what);
    return ERR_IO;
}

int tls_ctx_new(const tls_config *cfg, tls_ctx **out, char *err, size_t errlen)
{
    if (!cfg->cert_file || !*cfg->cert_file || !cfg->key_file || !*cfg->key_file) {
        snprintf(err, errlen, "tls-port needs tls-cert-file and tls-key-file");
        return ERR_INVAL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_reason(err, errlen, "cannot create the TLS context");
        return ERR_NOMEM;
    }
    /* Renegotiation is the only way a TLS 1.2 write would wait for a read; nobody needs it. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* net.c writes what it can and retries from a buffer that may have moved or grown. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1); /* fewer read() calls: whole socket reads, not records */
    /* Resumed sessions of verified clients need a session context, or the resumption fails. */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"quiver", 6);
    int rc = set_protocols(ctx, cfg->protocols, err, errlen);
    if (rc || (rc = use_cert(ctx, cfg, err, errlen)) != 0 ||
        (rc = set_client_auth(ctx, cfg, err, errlen)) != 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = xcalloc(1, sizeof **out);
    (*out)->ssl_ctx = ctx;
    return 0;
}

int tls_client_ctx_new(const tls_config *cfg, tls_ctx **out, char *err, size_t errlen)
{
    int has_file = cfg->ca_cert_file && *cfg->ca_cert_file;
    int has_dir = cfg->ca_cert_dir && *cfg->ca_cert_dir;
    if (!has_file && !has_dir) {
        snprintf(err, errlen, "tls-replication needs tls-ca-cert-file or tls-ca-cert-dir");
        return ERR_INVAL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ssl_reason(err, errlen, "cannot create the TLS context");
        return ERR_NOMEM;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int rc = set_protocols(ctx, cfg->protocols, err, errlen);
    if (!rc && cfg->cert_file && *cfg->cert_file)
        rc = use_cert(ctx, cfg, err, errlen);
    if (!rc && !SSL_CTX_load_verify_locations(ctx, has_file ? cfg->ca_cert_file : NULL,
                                              has_dir ? cfg->ca_cert_dir : NULL)) {
        ssl_reason(err, errlen, "cannot load the CA certificates");
        rc = ERR_IO;
    }
    if (rc) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = xcalloc(1, sizeof **out);
    (*out)->ssl_ctx = ctx;
    return 0;
}

void tls_ctx_free(tls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    xfree(ctx);
}

static SSL *ssl_on(tls_ctx *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx->ssl_ctx);
    if (!ssl || !SSL_set_fd(ssl, fd)) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    return ssl;
}

int tls_conn_new(tls_ctx *ctx, int fd, tls_conn **out)
{
    SSL *ssl = ssl_on(ctx, fd);
    if (!ssl)
        return ERR_NOMEM;
    SSL_set_accept_state(ssl);
    *out = xcalloc(1, sizeof **out);
    (*out)->ssl = ssl;
    return 0;
}

int tls_client_conn_new(tls_ctx *ctx, int fd, const char *host, tls_conn **out)
{
    SSL *ssl = ssl_on(ctx, fd);
    if (!ssl)
        return ERR_NOMEM;
    /* The leader's certificate must name the host we dialled: an address in its IP SANs,
     * a name in its DNS SANs (also sent as SNI). */
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    int named = X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1 ||
                (SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1);
    ERR_clear_error();
    if (!named) {
        SSL_free(ssl);
        return ERR_NOMEM;
    }
    SSL_set_connect_state(ssl);
    *out = xcalloc(1, sizeof **out);
    (*out)->ssl = ssl;
    return 0;
}

void tls_conn_free(tls_conn *t)
{
    if (!t)
        return;
    /* One non-blocking close_notify; the peer's answer is not awaited. */
    if (t->ready && !t->failed)
        SSL_shutdown(t->ssl);
    ERR_clear_error();
    SSL_free(t->ssl);
    xfree(t);
}

int tls_conn_ready(const tls_conn *t)
{
    return t->ready;
}

/* Converts a failed call's SSL_get_error() into ERR_AGAIN with *wants, or fatal. */
static int result(tls_conn *t, int ret, int *wants)
{
    switch (SSL_get_error(t->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        *wants = TLS_WANT_READ;
        return ERR_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *wants = TLS_WANT_WRITE;
        return ERR_AGAIN;
    case SSL_ERROR_ZERO_RETURN: /* close_notify: a clean end, ours may answer it */
        return ERR_IO;
    default:
        t->failed = 1;
        return ERR_IO;
    }
}

int tls_accept(tls_conn *t, int *wants, char *err, size_t errlen)
{
    int ret = SSL_accept(t->ssl);
    if (ret == 1) {
        t->ready = 1;
        return 0;
    }
    if (result(t, ret, wants) == ERR_AGAIN)
        return ERR_AGAIN;
    t->failed = 1;
    ssl_reason(err, errlen, "handshake");
    return ERR_PROTO;
}

int tls_connect(tls_conn *t, int *wants, char *err, size_t errlen)
{
    int ret = SSL_connect(t->ssl);
    if (ret == 1) {
        t->ready = 1;
        return 0;
    }
    if (result(t, ret, wants) == ERR_AGAIN)
        return ERR_AGAIN;
    t->failed = 1;
    long v = SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK) {
        ERR_clear_error();
        snprintf(err, errlen, "TLS handshake: the leader's certificate: %s",
                 X509_verify_cert_error_string(v));
        return ERR_PROTO;
    }
    ssl_reason(err, errlen, "TLS handshake");
    return ERR_PROTO;
}

int tls_read(tls_conn *t, void *p, size_t n, size_t *got, int *wants)
{
    int ret = SSL_read_ex(t->ssl, p, n, got);
    if (ret == 1)
        return 0;
    int rc = result(t, ret, wants);
    if (t->failed)
        ssl_reason(t->why, sizeof t->why, "TLS");
    ERR_clear_error();
    return rc;
}

int tls_write(tls_conn *t, const void *p, size_t n, size_t *put, int *wants)
{
    int ret = SSL_write_ex(t->ssl, p, n, put);
    if (ret == 1)
        return 0;
    int rc = result(t, ret, wants);
    ERR_clear_error();
    return rc;
}

const char *tls_read_error(const tls_conn *t)
{
    return t->why;
}

int tls_pending(const tls_conn *t)
{
    return SSL_has_pending(t->ssl);
}
