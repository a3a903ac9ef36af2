/* config.c: the option table and everything driven by it: parsing config files and
 * overrides, formatting values for CONFIG GET, validated CONFIG SET, and CONFIG REWRITE,
 * which edits the original file in place of writing a new one from scratch. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"

enum { T_INT, T_BOOL, T_STR, T_SIZE, T_ENUM, T_OBUF, T_LL, T_PCTL };
enum { IMMUTABLE = 1 };

static const char *const durability_names[] = {"no", "everysec", "always", NULL};
static const char *const loglevel_names[] = {"debug", "verbose", "notice", "warning", NULL};
/* Redis persistence options that tools read (redis-benchmark asks for them): Quiver has no
 * RDB snapshots or AOF, so each admits only the value that says so. */
static const char *const save_names[] = {"", NULL};
static const char *const appendonly_names[] = {"no", NULL};
static const char *const tls_auth_names[] = {"no", "yes", "optional", NULL}; /* TLS_AUTH_* */
static const char *const gpu_names[] = {"no", "yes", "auto", NULL}; /* INDEX_GPU_* */
/* Quiver never evicts keys: the one Redis policy it can honour is refusing writes. */
static const char *const maxmemory_policy_names[] = {"noeviction", NULL};

typedef struct option {
    const char *name;
    int type;
    size_t off;
    long long min, max;
    const char *const *names; /* T_ENUM */
    int flags;
    const char *def;
} option;

#define O(f) offsetof(config, f)
static const option options[] = {
    {"port", T_INT, O(port), 0, 65535, NULL, IMMUTABLE, "6379"},
    {"bind", T_STR, O(bind), 0, 0, NULL, IMMUTABLE, "127.0.0.1"},
    {"dir", T_STR, O(dir), 0, 0, NULL, IMMUTABLE, "./data"},
    {"requirepass", T_STR, O(requirepass), 0, 0, NULL, 0, ""},
    {"durability", T_ENUM, O(durability), 0, 0, durability_names, 0, "everysec"},
    {"maxclients", T_INT, O(maxclients), 1, 1000000, NULL, 0, "10000"},
    {"protected-mode", T_BOOL, O(protected_mode), 0, 1, NULL, 0, "yes"},
    {"proto-max-bulk-len", T_SIZE, O(proto_max_bulk_len), 1024 * 1024, LLONG_MAX, NULL, 0, "512mb"},
    {"client-output-buffer-limit", T_OBUF, O(obuf_hard), 0, 0, NULL, 0, "normal 1gb 0 0 replica 256mb 64mb 60 pubsub 32mb 8mb 60"},
    {"timeout", T_INT, O(timeout), 0, INT_MAX, NULL, 0, "0"},
    {"tcp-backlog", T_INT, O(tcp_backlog), 0, INT_MAX, NULL, IMMUTABLE, "511"},
    {"hz", T_INT, O(hz), 1, 500, NULL, 0, "10"},
    {"loglevel", T_ENUM, O(loglevel), 0, 0, loglevel_names, 0, "notice"},
    {"logfile", T_STR, O(logfile), 0, 0, NULL, IMMUTABLE, ""},
    {"pidfile", T_STR, O(pidfile), 0, 0, NULL, IMMUTABLE, ""},
    {"lmdb-map-size", T_SIZE, O(lmdb_map_size), 1024 * 1024, LLONG_MAX, NULL, IMMUTABLE, "256mb"},
    {"lmdb-max-map-size", T_SIZE, O(lmdb_max_map_size), 0, LLONG_MAX, NULL, IMMUTABLE, "0"},
    {"databases", T_INT, O(databases), 16, 16, NULL, IMMUTABLE, "16"},
    {"save", T_ENUM, O(save), 0, 0, save_names, IMMUTABLE, "\"\""},
    {"appendonly", T_ENUM, O(appendonly), 0, 0, appendonly_names, IMMUTABLE, "no"},
    {"aclfile", T_STR, O(aclfile), 0, 0, NULL, IMMUTABLE, ""},
    {"gpu", T_ENUM, O(gpu), 0, 0, gpu_names, IMMUTABLE, "auto"},
    {"tls-port", T_INT, O(tls_port), 0, 65535, NULL, IMMUTABLE, "0"},
    {"tls-cert-file", T_STR, O(tls_cert_file), 0, 0, NULL, IMMUTABLE, ""},
    {"tls-key-file", T_STR, O(tls_key_file), 0, 0, NULL, IMMUTABLE, ""},
    {"tls-ca-cert-file", T_STR, O(tls_ca_cert_file), 0, 0, NULL, IMMUTABLE, ""},
    {"tls-ca-cert-dir", T_STR, O(tls_ca_cert_dir), 0, 0, NULL, IMMUTABLE, ""},
    {"tls-auth-clients", T_ENUM, O(tls_auth_clients), 0, 0, tls_auth_names, IMMUTABLE, "yes"},
    {"tls-protocols", T_STR, O(tls_protocols), 0, 0, NULL, IMMUTABLE, ""},
    {"tls-replication", T_BOOL, O(tls_replication), 0, 1, NULL, 0, "no"},
    {"tls-client-cert-file", T_STR, O(tls_client_cert_file), 0, 0, NULL, IMMUTABLE, ""},
    {"tls-client-key-file", T_STR, O(tls_client_key_file), 0, 0, NULL, IMMUTABLE, ""},
    {"replicaof", T_STR, O(replicaof), 0, 0, NULL, IMMUTABLE, ""},
    {"masterauth", T_STR, O(masterauth), 0, 0, NULL, 0, ""},
    {"masteruser", T_STR, O(masteruser), 0, 0, NULL, 0, ""},
    {"min-replicas-to-write", T_INT, O(min_replicas_to_write), 0, INT_MAX, NULL, 0, "0"},
    {"min-replicas-max-lag", T_INT, O(min_replicas_max_lag), 0, INT_MAX, NULL, 0, "10"},
    {"repl-backlog-size", T_SIZE, O(repl_backlog_size), 16 * 1024, LLONG_MAX, NULL, IMMUTABLE, "1mb"},
    {"repl-timeout", T_INT, O(repl_timeout), 1, INT_MAX, NULL, 0, "60"},
    {"repl-ping-replica-period", T_INT, O(repl_ping_replica_period), 1, INT_MAX, NULL, 0, "10"},
    {"replica-protect-data", T_BOOL, O(replica_protect_data), 0, 1, NULL, 0, "no"},
    {"slowlog-log-slower-than", T_LL, O(slowlog_slower_than), -1, LLONG_MAX, NULL, 0, "10000"},
    {"slowlog-max-len", T_INT, O(slowlog_max_len), 0, INT_MAX, NULL, 0, "128"},
    {"latency-tracking", T_BOOL, O(latency_tracking), 0, 1, NULL, 0, "yes"},
    {"latency-tracking-info-percentiles", T_PCTL, O(percentiles), 0, 100, NULL, 0, "50 99 99.9"},
    {"maxmemory", T_SIZE, O(maxmemory), 0, LLONG_MAX, NULL, 0, "0"},
    {"maxmemory-policy", T_ENUM, O(maxmemory_policy), 0, 0, maxmemory_policy_names, 0, "noeviction"},
    {"metrics-port", T_INT, O(metrics_port), 0, 65535, NULL, IMMUTABLE, "0"},
    {"gpu-batch-window-us", T_INT, O(gpu_batch_window_us), 0, 1000000, NULL, 0, "200"},
    {"gpu-batch-max", T_INT, O(gpu_batch_max), 1, 4096, NULL, 0, "1024"},
    {"gpu-min-vectors", T_LL, O(gpu_min_vectors), 0, LLONG_MAX, NULL, 0, "10000"},
    {"history-cache-size", T_SIZE, O(history_cache_size), 1024 * 1024, LLONG_MAX, NULL, IMMUTABLE, "256mb"},
    {"gpu-build-min-vectors", T_LL, O(gpu_build_min_vectors), 1, LLONG_MAX, NULL, 0, "50000"},
};
#define NOPTIONS (sizeof options / sizeof options[0])

static const option *find(const char *name)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strcasecmp(options[i].name, name) == 0)
            return &options[i];
    return NULL;
}

int config_parse_size(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno || v < 0)
        return ERR_RANGE;
    static const struct { const char *suffix; long long mul; } units[] = {
        {"", 1}, {"b", 1}, {"k", 1000}, {"kb", 1024}, {"m", 1000000}, {"mb", 1024 * 1024},
        {"g", 1000000000}, {"gb", 1024LL * 1024 * 1024},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            if (v > LLONG_MAX / units[i].mul)
                return ERR_RANGE;
            *out = v * units[i].mul;
            return 0;
        }
    }
    return ERR_RANGE;
}

static int parse_bool(const char *s)
{
    if (strcasecmp(s, "yes") == 0)
        return 1;
    if (strcasecmp(s, "no") == 0)
        return 0;
    return -1;
}

/* client-output-buffer-limit <class> <hard> <soft> <secs> [<class> ...]: only the normal
 * class applies to Quiver's clients; the others (replica, its old name slave, pubsub) are
 * kept for redis.conf compatibility. Classes not named keep their limits, as in Redis. */
static int set_obuf(config *cfg, int argc, const char *const *argv, char *err, size_t errlen)
{
    if (argc == 1) {
        char **w;
        int n = config_split_words(argv[0], &w);
        int rc = n > 1 ? set_obuf(cfg, n, (const char *const *)w, err, errlen) : ERR_INVAL;
        if (n <= 1)
            snprintf(err, errlen, "Wrong number of arguments in buffer limit configuration.");
        config_free_words(w, n);
        return rc;
    }
    if (argc % 4) {
        snprintf(err, errlen, "Wrong number of arguments in buffer limit configuration.");
        return ERR_INVAL;
    }
    for (int i = 0; i < argc; i += 4) {
        long long hard, soft, secs;
        if (strcasecmp(argv[i], "normal") && strcasecmp(argv[i], "replica") &&
            strcasecmp(argv[i], "slave") && strcasecmp(argv[i], "pubsub")) {
            snprintf(err, errlen, "Invalid client class specified in buffer limit configuration.");
            return ERR_INVAL;
        }
        if (config_parse_size(argv[i + 1], &hard) || config_parse_size(argv[i + 2], &soft) ||
            config_parse_size(argv[i + 3], &secs) || secs > INT_MAX) {
            snprintf(err, errlen, "Error in hard, soft or soft_seconds setting in buffer limit "
                                  "configuration.");
            return ERR_INVAL;
        }
        if (strcasecmp(argv[i], "normal") == 0) {
            cfg->obuf_hard = hard;
            cfg->obuf_soft = soft;
            cfg->obuf_soft_secs = (int)secs;
        } else {
            long long *other = strcasecmp(argv[i], "pubsub") ? cfg->obuf_replica : cfg->obuf_pubsub;
            other[0] = hard;
            other[1] = soft;
            other[2] = secs;
        }
    }
    return 0;
}

/* latency-tracking-info-percentiles: numbers from 0 to 100, as several words or as one
 * word holding them all (CONFIG SET); an empty list is allowed and reports none. */
static int set_percentiles(config *cfg, int argc, const char *const *argv, char *err,
                           size_t errlen)
{
    char **w = NULL;
    if (argc == 1) {
        argc = config_split_words(argv[0], &w);
        argv = (const char *const *)w;
    }
    double p[CONFIG_MAX_PERCENTILES];
    int rc = 0;
    if (argc < 0 || argc > CONFIG_MAX_PERCENTILES) {
        snprintf(err, errlen, "at most %d percentiles", CONFIG_MAX_PERCENTILES);
        rc = ERR_INVAL;
    }
    for (int i = 0; !rc && i < argc; i++) {
        if (str_to_double(argv[i], strlen(argv[i]), &p[i], 0) != 0) {
            snprintf(err, errlen, "Invalid latency-tracking-info-percentiles parameters");
            rc = ERR_INVAL;
        } else if (p[i] < 0 || p[i] > 100) {
            snprintf(err, errlen, "latency-tracking-info-percentiles parameters should sit "
                                  "between [0.0,100.0]");
            rc = ERR_INVAL;
        }
    }
    if (!rc) {
        memcpy(cfg->percentiles, p, sizeof p[0] * (size_t)argc);
        cfg->npercentiles = argc;
    }
    if (w)
        config_free_words(w, argc);
    return rc;
}

static int apply(config *cfg, const option *o, int argc, const char *const *argv, char *err,
                 size_t errlen)
{
    void *field = (char *)cfg + o->off;
    long long v;
    if (o->type == T_OBUF)
        return set_obuf(cfg, argc, argv, err, errlen);
    if (o->type == T_PCTL)
        return set_percentiles(cfg, argc, argv, err, errlen);
    if (o->type == T_STR) {
        /* bind takes several addresses; join them */
        buf b;
        buf_init(&b);
        for (int i = 0; i < argc; i++) {
            if (i)
                buf_appendc(&b, ' ');
            buf_append(&b, argv[i], strlen(argv[i]));
        }
        buf_appendc(&b, '\0');
        xfree(*(char **)field);
        *(char **)field = b.data;
        return 0;
    }
    if (argc != 1) {
        snprintf(err, errlen, "wrong number of arguments for '%s'", o->name);
        return ERR_INVAL;
    }
    switch (o->type) {
    case T_INT:
    case T_LL:
    case T_SIZE:
        if (o->type != T_SIZE ? str_to_i64(argv[0], strlen(argv[0]), (int64_t *)&v) != 0
                              : config_parse_size(argv[0], &v) != 0) {
            snprintf(err, errlen, "argument couldn't be parsed into an integer");
            return ERR_INVAL;
        }
        if (v < o->min || v > o->max) {
            snprintf(err, errlen, "argument must be between %lld and %lld inclusive", o->min,
                     o->max);
            return ERR_INVAL;
        }
        if (o->type == T_INT)
            *(int *)field = (int)v;
        else
            *(long long *)field = v;
        return 0;
    case T_BOOL:
        if ((v = parse_bool(argv[0])) < 0) {
            snprintf(err, errlen, "argument must be 'yes' or 'no'");
            return ERR_INVAL;
        }
        *(int *)field = (int)v;
        return 0;
    case T_ENUM:
        for (int i = 0; o->names[i]; i++) {
            if (strcasecmp(o->names[i], argv[0]) == 0) {
                *(int *)field = i;
                return 0;
            }
        }
        snprintf(err, errlen, "argument(s) must be one of the following: %s", o->names[0]);
        for (int i = 1; o->names[i]; i++)
            snprintf(err + strlen(err), errlen - strlen(err), ", %s", o->names[i]);
        return ERR_INVAL;
    }
    return ERR_INVAL;
}

void config_init(config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    char err[256];
    for (size_t i = 0; i < NOPTIONS; i++) {
        char **w;
        int n = config_split_words(options[i].def, &w);
        if (n == 0) { /* empty default string */
            const char *empty = "";
            apply(cfg, &options[i], 1, &empty, err, sizeof err);
        } else {
            apply(cfg, &options[i], n, (const char *const *)w, err, sizeof err);
        }
        config_free_words(w, n);
    }
}

void config_free(config *cfg)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (options[i].type == T_STR)
            xfree(*(char **)((char *)cfg + options[i].off));
    xfree(cfg->config_file);
    memset(cfg, 0, sizeof *cfg);
}

void config_dup(config *dst, const config *src)
{
    *dst = *src;
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (options[i].type != T_STR)
            continue;
        char **f = (char **)((char *)dst + options[i].off);
        if (*f)
            *f = xstrdup(*f);
    }
    if (src->config_file)
        dst->config_file = xstrdup(src->config_file);
}

int config_set(config *cfg, const char *name, int argc, const char *const *argv, int startup,
               char *err, size_t errlen)
{
    const option *o = find(name);
    if (!o) {
        if (startup)
            snprintf(err, errlen, "unknown option '%s'", name);
        else
            snprintf(err, errlen, "Unknown option or number of arguments for CONFIG SET - '%s'",
                     name);
        return ERR_INVAL;
    }
    if ((o->flags & IMMUTABLE) && !startup) {
        snprintf(err, errlen, "CONFIG SET failed (possibly related to argument '%s') - can't "
                              "set immutable config", o->name);
        return ERR_INVAL;
    }
    if (argc < 1) {
        snprintf(err, errlen, "wrong number of arguments for '%s'", o->name);
        return ERR_INVAL;
    }
    char detail[200] = "";
    int rc = apply(cfg, o, argc, argv, detail, sizeof detail);
    if (rc)
        snprintf(err, errlen, startup ? "invalid value '%s' for '%s': %s"
                                      : "Invalid argument '%s' for CONFIG SET '%s' - %s",
                 argv[0], o->name, detail);
    return rc;
}

int config_split_words(const char *line, char ***out)
{
    int n = 0, cap = 4;
    char **w = xmalloc(sizeof *w * (size_t)cap);
    const char *p = line;
    for (;;) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        buf b;
        buf_init(&b);
        char q = 0;
        for (; *p; p++) {
            if (q) {
                if (*p == '\\' && q == '"' && p[1] == 'x' && isxdigit((unsigned char)p[2]) &&
                    isxdigit((unsigned char)p[3])) {
                    char hex[3] = {p[2], p[3], 0};
                    buf_appendc(&b, (char)strtol(hex, NULL, 16));
                    p += 3;
                } else if (*p == '\\' && q == '"' && p[1]) {
                    p++;
                    static const char from[] = "ntrab", to[] = "\n\t\r\a\b";
                    const char *e = strchr(from, *p);
                    buf_appendc(&b, e ? to[e - from] : *p);
                } else if (*p == '\\' && q == '\'' && p[1] == '\'') {
                    buf_appendc(&b, *++p);
                } else if (*p == q) {
                    q = 0;
                    if (p[1] && !isspace((unsigned char)p[1])) {
                        buf_free(&b);
                        config_free_words(w, n);
                        *out = NULL;
                        return -1;
                    }
                } else {
                    buf_appendc(&b, *p);
                }
            } else if (*p == '"' || *p == '\'') {
                q = *p;
            } else if (isspace((unsigned char)*p)) {
                break;
            } else {
                buf_appendc(&b, *p);
            }
        }
        if (q) {
            buf_free(&b);
            config_free_words(w, n);
            *out = NULL;
            return -1;
        }
        buf_appendc(&b, '\0');
        if (n == cap)
            w = xrealloc(w, sizeof *w * (size_t)(cap *= 2));
        w[n++] = b.data;
    }
    *out = w;
    return n;
}

void config_free_words(char **words, int n)
{
    for (int i = 0; i < n; i++)
        xfree(words[i]);
    xfree(words);
}

int config_load_file(config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open config file '%s': %s", path, strerror(errno));
        return ERR_IO;
    }
    char line[64 * 1024];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        const char *first = line + strspn(line, " \t");
        if (*first == '#')
            continue; /* a comment may hold quotes that split_words would refuse */
        char **w;
        int n = config_split_words(line, &w);
        if (n < 0) {
            snprintf(err, errlen, "%s:%d: unbalanced quotes", path, lineno);
            rc = ERR_INVAL;
            break;
        }
        if (n > 0 && w[0][0] != '#') {
            char detail[300];
            const option *o = find(w[0]);
            if (!o) {
                snprintf(err, errlen, "%s:%d: Bad directive or wrong number of arguments: '%s'",
                         path, lineno, w[0]);
                rc = ERR_INVAL;
            } else if (n == 1 && o->type != T_STR) {
                snprintf(err, errlen, "%s:%d: '%s' needs a value", path, lineno, w[0]);
                rc = ERR_INVAL;
            } else if ((rc = apply(cfg, o, n - 1, (const char *const *)w + 1, detail,
                                   sizeof detail)) != 0) {
                snprintf(err, errlen, "%s:%d: %s: %s", path, lineno, w[0], detail);
            }
        }
        config_free_words(w, n);
    }
    fclose(f);
    if (!rc) {
        char *abs = realpath(path, NULL);
        xfree(cfg->config_file);
        cfg->config_file = abs ? xstrdup(abs) : xstrdup(path);
        free(abs);
    }
    return rc;
}

/* Formats an option's current value the way CONFIG GET shows it. */
static void format(const config *cfg, const option *o, buf *out)
{
    const void *field = (const char *)cfg + o->off;
    out->len = 0;
    switch (o->type) {
    case T_INT: buf_printf(out, "%d", *(const int *)field); break;
    case T_SIZE:
    case T_LL: buf_printf(out, "%lld", *(const long long *)field); break;
    case T_PCTL:
        for (int i = 0; i < cfg->npercentiles; i++) {
            char num[32];
            double_to_str(num, cfg->percentiles[i]);
            buf_printf(out, "%s%s", i ? " " : "", num);
        }
        break;
    case T_BOOL: buf_printf(out, "%s", *(const int *)field ? "yes" : "no"); break;
    case T_ENUM: buf_printf(out, "%s", o->names[*(const int *)field]); break;
    case T_STR: buf_printf(out, "%s", *(char *const *)field ? *(char *const *)field : ""); break;
    case T_OBUF:
        /* Redis 7.0 names the replica class "slave" here */
        buf_printf(out, "normal %lld %lld %d slave %lld %lld %lld pubsub %lld %lld %lld",
                   cfg->obuf_hard, cfg->obuf_soft, cfg->obuf_soft_secs, cfg->obuf_replica[0],
                   cfg->obuf_replica[1], cfg->obuf_replica[2], cfg->obuf_pubsub[0],
                   cfg->obuf_pubsub[1], cfg->obuf_pubsub[2]);
        break;
    }
    buf_appendc(out, '\0'); /* a C string, and len counts the NUL */
}

void config_get(const config *cfg, const char *pattern, size_t plen,
                void (*emit)(void *ctx, const char *name, const char *value), void *ctx)
{
    buf value;
    buf_init(&value);
    for (size_t i = 0; i < NOPTIONS; i++) {
        const option *o = &options[i];
        if (!glob_match(pattern, plen, o->name, strlen(o->name), 1))
            continue;
        format(cfg, o, &value);
        emit(ctx, o->name, value.data);
    }
    buf_free(&value);
}

/* Appends "name value" to b, quoting the value when it needs it. */
static void rewrite_line(buf *b, const config *cfg, const option *o)
{
    buf vb;
    buf_init(&vb);
    format(cfg, o, &vb);
    const char *value = vb.data;
    if (o->type == T_OBUF) { /* several words, unquoted */
        buf_printf(b, "%s %s\n", o->name, value);
        buf_free(&vb);
        return;
    }
    int is_bind = strcmp(o->name, "bind") == 0; /* several addresses, space-separated */
    int plain = *value != '\0';
    for (const char *p = value; plain && *p; p++)
        plain = isgraph((unsigned char)*p) || (*p == ' ' && is_bind);
    if (plain && (o->type != T_STR || is_bind || !strpbrk(value, "\"'#"))) {
        buf_printf(b, "%s %s\n", o->name, value);
    } else {
        /* quoted, with the escapes config_split_words reads back */
        buf_printf(b, "%s \"", o->name);
        for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
            if (*p == '"' || *p == '\\')
                buf_printf(b, "\\%c", *p);
            else if (*p == '\n' || *p == '\r' || *p == '\t')
                buf_printf(b, "\\%c", *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't');
            else if (isprint(*p))
                buf_appendc(b, (char)*p);
            else
                buf_printf(b, "\\x%02x", *p);
        }
        buf_printf(b, "\"\n");
    }
    buf_free(&vb);
}

int config_rewrite(const config *cfg, char *err, size_t errlen)
{
    if (!cfg->config_file) {
        snprintf(err, errlen, "The server is running without a config file");
        return ERR_NOTFOUND;
    }
    FILE *f = fopen(cfg->config_file, "r");
    if (!f) {
        snprintf(err, errlen, "Rewriting config file: %s", strerror(errno));
        return ERR_IO;
    }
    config defaults;
    config_init(&defaults);
    int done[NOPTIONS] = {0};
    buf out;
    buf_init(&out);
    char line[64 * 1024];
    while (fgets(line, sizeof line, f)) {
        char **w;
        int n = config_split_words(line, &w);
        const option *o = n > 0 && w[0][0] != '#' ? find(w[0]) : NULL;
        config_free_words(w, n);
        if (!o) {
            buf_append(&out, line, strlen(line));
            if (out.len && out.data[out.len - 1] != '\n')
                buf_appendc(&out, '\n');
            continue;
        }
        size_t i = (size_t)(o - options);
        if (!done[i])
            rewrite_line(&out, cfg, o);
        done[i] = 1;
    }
    fclose(f);
    for (size_t i = 0; i < NOPTIONS; i++) {
        buf a, b;
        buf_init(&a);
        buf_init(&b);
        format(cfg, &options[i], &a);
        format(&defaults, &options[i], &b);
        if (!done[i] && strcmp(a.data, b.data) != 0)
            rewrite_line(&out, cfg, &options[i]);
        buf_free(&a);
        buf_free(&b);
    }
    config_free(&defaults);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.rewrite.%d", cfg->config_file, (int)getpid());
    FILE *o = fopen(tmp, "w");
    int rc = 0;
    if (!o || fwrite(out.data, 1, out.len, o) != out.len || fflush(o) != 0 ||
        fsync(fileno(o)) != 0) {
        snprintf(err, errlen, "Rewriting config file: %s", strerror(errno));
        rc = ERR_IO;
    }
    if (o && fclose(o) != 0 && !rc) {
        snprintf(err, errlen, "Rewriting config file: %s", strerror(errno));
        rc = ERR_IO;
    }
    if (!rc && rename(tmp, cfg->config_file) != 0) {
        snprintf(err, errlen, "Rewriting config file: %s", strerror(errno));
        rc = ERR_IO;
    }
    if (rc)
        unlink(tmp);
    buf_free(&out);
    return rc;
}
