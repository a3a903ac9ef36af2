/* tls.h: TLS on client connections, over OpenSSL, for wire/net.c (and on a replica's link
 * to its leader, replication/replica.c).
 *
 * One server context (tls_ctx) is built at start from the tls-* options: certificate chain,
 * private key, trusted CAs, the client-certificate policy and the protocol versions. Each
 * client accepted on the TLS port gets a tls_conn on its socket. net.c keeps driving the
 * socket with its own libevent events and buffers; this module only moves bytes through
 * OpenSSL and says, when it cannot go on, which readiness of the socket it waits for.
 *
 * NON-BLOCKING RULES. A call that returns ERR_AGAIN sets *wants to TLS_WANT_READ or
 * TLS_WANT_WRITE: the same call must be repeated once the socket is ready that way (a write
 * may need the socket readable, a read may need it writable). OpenSSL may hold decrypted
 * bytes the socket no longer shows: after a read that filled the caller's buffer, ask
 * tls_pending() before waiting for the socket again.
 *
 * THREADING. The loop thread only. The context is read-only once built.
 *
 * OWNERSHIP. tls_conn_free() ends the session (sending close_notify when the session is
 * healthy) but does not close the socket: the caller does. */
#ifndef QUIVER_TLS_H
#define QUIVER_TLS_H

#include <stddef.h>

/* tls-auth-clients, in the order of its config names: no, yes, optional */
enum { TLS_AUTH_NO, TLS_AUTH_YES, TLS_AUTH_OPTIONAL };
enum { TLS_WANT_READ = 1, TLS_WANT_WRITE = 2 };

typedef struct tls_config {
    const char *cert_file, *key_file; /* PEM; the certificate file may hold a chain */
    const char *ca_cert_file, *ca_cert_dir; /* trusted CAs for client certificates */
    int auth_clients;                       /* TLS_AUTH_* */
    const char *protocols; /* "TLSv1.2 TLSv1.3"-style list; NULL or "" = TLSv1.2 and 1.3 */
} tls_config;

typedef struct tls_ctx tls_ctx;
typedef struct tls_conn tls_conn;

/* Builds the server context, loading the files. Errors: ERR_INVAL (a missing option, an
 * unknown protocol name) and ERR_IO (a file that cannot be read or used), with the option,
 * the file and OpenSSL's reason in err. */
int tls_ctx_new(const tls_config *cfg, tls_ctx **out, char *err, size_t errlen);
/* Builds a client context for outgoing connections (a replica's link to its leader):
 * cert_file/key_file, when set, are presented if the peer asks; the peer's certificate is
 * verified against ca_cert_file/ca_cert_dir (one is required: ERR_INVAL); protocols as
 * above. auth_clients is not used. */
int tls_client_ctx_new(const tls_config *cfg, tls_ctx **out, char *err, size_t errlen);
void tls_ctx_free(tls_ctx *ctx);

/* A server-side session on a connected non-blocking socket. ERR_NOMEM when OpenSSL cannot
 * allocate it. */
int tls_conn_new(tls_ctx *ctx, int fd, tls_conn **out);
/* A client-side session on a connected non-blocking socket, to a peer whose certificate
 * must name host (an IP address or a DNS name, also sent as SNI). ERR_NOMEM as above. */
int tls_client_conn_new(tls_ctx *ctx, int fd, const char *host, tls_conn **out);
/* Ends the session (see OWNERSHIP) and frees it. NULL is allowed. */
void tls_conn_free(tls_conn *t);
/* 1 once the handshake has completed. */
int tls_conn_ready(const tls_conn *t);
/* Runs the handshake on: 0 when complete, ERR_AGAIN with *wants, or ERR_PROTO (a failed
 * handshake: not TLS, no or an untrusted client certificate, no common protocol) with
 * OpenSSL's reason in err. */
int tls_accept(tls_conn *t, int *wants, char *err, size_t errlen);
/* The client's side of tls_accept(): ERR_PROTO when the peer's certificate is not trusted
 * or does not name the host, or the peer refused ours. */
int tls_connect(tls_conn *t, int *wants, char *err, size_t errlen);
/* Reads up to n bytes: 0 with *got > 0, ERR_AGAIN with *wants, or ERR_IO when the session
 * is over (the peer closed, or a protocol error). */
int tls_read(tls_conn *t, void *p, size_t n, size_t *got, int *wants);
/* Writes up to n > 0 bytes: 0 with *put > 0 (maybe fewer than n), ERR_AGAIN with *wants
 * (repeat with the same bytes, possibly at a new address and with more after them), or
 * ERR_IO. */
int tls_write(tls_conn *t, const void *p, size_t n, size_t *put, int *wants);
/* Why the last tls_read() failed with a protocol error (an alert from the peer: e.g. our
 * certificate refused), "" when it did not. */
const char *tls_read_error(const tls_conn *t);
/* 1 when OpenSSL holds received bytes not yet returned by tls_read(). */
int tls_pending(const tls_conn *t);

#endif
