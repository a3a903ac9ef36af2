/* config.h: server configuration. One table describes every option: its redis.conf name,
 * type, default, bounds, and whether CONFIG SET may change it at run time. The same table
 * reads the config file, the `--name value` command-line overrides, and answers CONFIG GET,
 * CONFIG SET and CONFIG REWRITE, so the three can never disagree.
 *
 * File syntax is redis.conf's: one directive per line, `name arg...`, `#` comments, words
 * split like inline commands ("double" and 'single' quotes). Unknown names are errors.
 * Sizes accept k, kb, m, mb, g, gb (k = 1000, kb = 1024, as Redis).
 *
 * Threading: the event-loop thread only. Strings are owned by the config. */
#ifndef QUIVER_CONFIG_H
#define QUIVER_CONFIG_H

#include <stddef.h>

#include "core/util.h"

#define CONFIG_MAX_PERCENTILES 16

typedef struct config {
    int port;
    char *bind;
    char *dir;
    char *requirepass;
    int durability;          /* DURABILITY_* of store.h */
    int gpu;                 /* INDEX_GPU_* of index/index.h: no, yes, auto */
    int maxclients;
    int protected_mode;
    long long proto_max_bulk_len;
    long long obuf_hard, obuf_soft; /* client-output-buffer-limit normal <hard> <soft> <secs> */
    int obuf_soft_secs;
    /* The replica and pubsub classes' hard, soft, seconds: kept and reported for redis.conf
     * compatibility, unused (Quiver has no replica links or pub/sub clients). */
    long long obuf_replica[3], obuf_pubsub[3];
    int timeout;
    int tcp_backlog;
    int hz;
    int loglevel;
    char *logfile;
    char *pidfile;
    long long lmdb_map_size;
    long long lmdb_max_map_size; /* 0 = the map may grow without limit */
    long long history_cache_size; /* RocksDB block cache of the feature history, bytes */
    int databases;           /* fixed at 16: reported, not settable */
    int save, appendonly;    /* fixed: no RDB, no AOF (reported for Redis tools) */
    char *aclfile;           /* users and their rules (query/acl.h), "" for none */
    int tls_port;            /* 0 = no TLS listener */
    char *tls_cert_file, *tls_key_file, *tls_ca_cert_file, *tls_ca_cert_dir;
    int tls_auth_clients;    /* TLS_AUTH_* of wire/tls.h */
    char *tls_protocols;
    int tls_replication;     /* a replica reaches its leader's TLS port */
    char *tls_client_cert_file, *tls_client_key_file; /* outgoing; "" = tls-cert/key-file */
    char *config_file;       /* absolute path of the file read at start, or NULL */
    char *replicaof;         /* "host port" of the leader to follow, "" for none */
    char *masterauth;        /* password for the leader */
    char *masteruser;        /* ACL user for the leader, "" for the default user */
    long long repl_backlog_size;
    int repl_timeout;             /* s: a link silent this long is dropped (both ends) */
    int repl_ping_replica_period; /* s: a leader PINGs its replicas through the stream */
    int replica_protect_data;     /* never full-sync from an empty, never-followed leader */
    int min_replicas_to_write, min_replicas_max_lag; /* writes need that many good replicas */
    long long slowlog_slower_than; /* us; -1 logs nothing, 0 everything */
    int slowlog_max_len;
    int latency_tracking;
    int npercentiles;              /* latency-tracking-info-percentiles, in the given order */
    double percentiles[CONFIG_MAX_PERCENTILES];
    long long maxmemory;           /* bytes, 0 = no limit */
    int maxmemory_policy;          /* noeviction only: Quiver evicts nothing */
    int metrics_port;              /* HTTP GET /metrics (Prometheus) on bind, 0 = none */
    int gpu_batch_window_us;       /* a GPU batch waits this long for more queries (0: pass) */
    int gpu_batch_max;             /* ... or until it holds this many */
    long long gpu_min_vectors;     /* smaller FLAT indexes are searched on the CPU */
    long long gpu_build_min_vectors; /* HNSW builds over this many vectors use the GPU */
} config;

/* Fills defaults. */
void config_init(config *cfg);
void config_free(config *cfg);
/* Deep copy, so that a multi-option CONFIG SET can be tried on a copy and kept whole. */
void config_dup(config *dst, const config *src);
/* Applies one directive; returns 0 or ERR_INVAL with a message in err. startup = 1 allows
 * options that cannot change at run time. */
int config_set(config *cfg, const char *name, int argc, const char *const *argv, int startup,
               char *err, size_t errlen);
/* Reads a whole file; err says "file:line: problem". */
int config_load_file(config *cfg, const char *path, char *err, size_t errlen);
/* Appends "name value" pairs of options matching a glob pattern, calling emit for each. */
void config_get(const config *cfg, const char *pattern, size_t plen,
                void (*emit)(void *ctx, const char *name, const char *value), void *ctx);
/* Rewrites cfg->config_file with current values, keeping comments and unknown order.
 * ERR_NOTFOUND when the server was started without a file; ERR_IO. */
int config_rewrite(const config *cfg, char *err, size_t errlen);
/* Splits a line into words as redis.conf does; returns count or -1 on unbalanced quotes.
 * Words are NUL-terminated copies in *out (free with config_free_words). */
int config_split_words(const char *line, char ***out);
void config_free_words(char **words, int n);
/* Parses "1gb"-style sizes. */
int config_parse_size(const char *s, long long *out);

#endif
