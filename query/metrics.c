/* metrics.c: what GET /metrics answers on metrics-port (wire/http.h): the server's
 * statistics in the Prometheus text format (query/prom.h), every name prefixed "quiver_".
 *
 * The values are read back from INFO's own text (info_render_all), through the tables below
 * that give each INFO field its metric name, type and help. So INFO and the metrics are
 * gathered by one piece of code and cannot disagree; a field INFO stops writing drops out
 * of the metrics (test_metrics.py checks that every name here is exported). Three shapes:
 *  - scalars: one INFO field, one sample (numbers; "up" fields as 1/0; words as a label);
 *  - lists: the "name:a=1,b=2" lines (keyspace dbN, replication slaveN, cmdstat_X), one
 *    sample per line, labelled by the line's name or by some of its items;
 *  - the gpu section, when the build has one: each numeric field as an untyped sample,
 *    since its counters and gauges are not known here.
 * The one thing INFO does not print in full, the per-command latency histograms, is read
 * from the command table's statistics (query_int.h) and written as Prometheus histograms.
 *
 * Threading: the event-loop thread (the statistics belong to it). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/histogram.h"
#include "query/prom.h"
#include "query/query_int.h"

#define PREFIX "quiver_"

/* One "key:value" line of INFO, pointing into the rendered text. */
typedef struct field {
    const char *section, *key, *value;
} field;

typedef struct info_text {
    buf text;
    field *fields;
    int n, cap;
} info_text;

enum { NUM, UP, WORD };

/* Scalars. NUM: the field's number. UP: 1 when the field reads `arg`, else 0.
 * WORD: 1, with the field's text as the value of the label named `arg`. */
static const struct scalar {
    const char *field;
    int kind;
    const char *arg;
    const char *name, *type, *help;
} scalars[] = {
    /* server, clients, memory */
    {"quiver_version", WORD, "version", "build_info", "gauge",
     "Always 1; the label is the server's version."},
    {"uptime_in_seconds", NUM, NULL, "uptime_seconds", "gauge",
     "Seconds since the server started."},
    {"connected_clients", NUM, NULL, "connected_clients", "gauge",
     "Client connections open now (replicas included)."},
    {"maxclients", NUM, NULL, "maxclients", "gauge", "The maxclients setting."},
    {"used_memory", NUM, NULL, "memory_used_bytes", "gauge",
     "Bytes allocated by the server (malloc's view)."},
    {"used_memory_rss", NUM, NULL, "memory_rss_bytes", "gauge",
     "Resident set size of the process, in bytes."},
    {"maxmemory", NUM, NULL, "memory_max_bytes", "gauge",
     "The maxmemory setting in bytes (0: no limit)."},
    {"lmdb_map_size", NUM, NULL, "lmdb_map_size_bytes", "gauge",
     "Size of the LMDB memory map, in bytes."},
    {"lmdb_used_bytes", NUM, NULL, "lmdb_used_bytes", "gauge", "Bytes of the LMDB map in use."},
    /* persistence */
    {"loading", NUM, NULL, "loading", "gauge",
     "1 while the server loads data (a replica swapping in a full sync): commands get -LOADING."},
    {"lmdb_commits", NUM, NULL, "lmdb_commits_total", "counter",
     "LMDB write transactions committed (one per loop pass that wrote)."},
    {"lmdb_syncs", NUM, NULL, "lmdb_syncs_total", "counter", "fsyncs of the LMDB environment."},
    {"lmdb_failed_commits", NUM, NULL, "lmdb_failed_commits_total", "counter",
     "LMDB commits that failed."},
    {"last_sync_time", NUM, NULL, "last_sync_timestamp_seconds", "gauge",
     "Unix time of the last sync to disk."},
    /* stats */
    {"total_connections_received", NUM, NULL, "connections_received_total", "counter",
     "Connections accepted."},
    {"rejected_connections", NUM, NULL, "rejected_connections_total", "counter",
     "Connections refused (maxclients)."},
    {"total_commands_processed", NUM, NULL, "commands_processed_total", "counter",
     "Commands executed."},
    {"instantaneous_ops_per_sec", NUM, NULL, "instantaneous_ops_per_second", "gauge",
     "Commands per second over the last few cron ticks."},
    {"total_net_input_bytes", NUM, NULL, "net_input_bytes_total", "counter",
     "Bytes read from clients."},
    {"total_net_output_bytes", NUM, NULL, "net_output_bytes_total", "counter",
     "Bytes written to clients."},
    {"expired_keys", NUM, NULL, "expired_keys_total", "counter",
     "Keys deleted because their TTL passed."},
    {"evicted_keys", NUM, NULL, "evicted_keys_total", "counter",
     "Keys evicted for maxmemory (always 0: the policy is noeviction)."},
    {"keyspace_hits", NUM, NULL, "keyspace_hits_total", "counter",
     "Key lookups that found the key."},
    {"keyspace_misses", NUM, NULL, "keyspace_misses_total", "counter",
     "Key lookups that did not find the key."},
    {"client_output_buffer_limit_disconnections", NUM, NULL,
     "client_output_buffer_limit_disconnections_total", "counter",
     "Clients closed for exceeding an output buffer limit."},
    {"total_protocol_errors", NUM, NULL, "protocol_errors_total", "counter",
     "Connections closed for a protocol error."},
    {"failed_write_passes", NUM, NULL, "failed_write_passes_total", "counter",
     "Loop passes whose writes could not commit (their writers were disconnected)."},
    {"sync_full", NUM, NULL, "replication_sync_full_total", "counter",
     "Full resyncs served to replicas."},
    {"sync_partial_ok", NUM, NULL, "replication_sync_partial_ok_total", "counter",
     "Partial resyncs accepted."},
    {"sync_partial_err", NUM, NULL, "replication_sync_partial_err_total", "counter",
     "Partial resyncs refused (a full sync followed)."},
    /* replication */
    {"role", WORD, "role", "replication_role", "gauge",
     "Always 1; the label is master (a leader) or slave (a replica)."},
    {"connected_slaves", NUM, NULL, "replication_connected_replicas", "gauge",
     "Replicas connected to this server."},
    {"master_repl_offset", NUM, NULL, "replication_offset_bytes", "gauge",
     "This server's replication offset (master_repl_offset)."},
    {"repl_backlog_size", NUM, NULL, "replication_backlog_size_bytes", "gauge",
     "The replication backlog's capacity."},
    {"repl_backlog_histlen", NUM, NULL, "replication_backlog_history_bytes", "gauge",
     "Bytes of stream the backlog holds."},
    {"master_link_status", UP, "up", "replication_master_link_up", "gauge",
     "On a replica: 1 when the link to the leader is up."},
    {"master_last_io_seconds_ago", NUM, NULL, "replication_master_last_io_seconds", "gauge",
     "On a replica: seconds since the leader last sent anything (-1: never)."},
    {"master_sync_in_progress", NUM, NULL, "replication_master_sync_in_progress", "gauge",
     "On a replica: 1 while a full sync is being received."},
    {"master_link_down_since_seconds", NUM, NULL, "replication_master_link_down_seconds", "gauge",
     "On a replica whose link is down: for how long, in seconds."},
    /* featurestore */
    {"fs_entities", NUM, NULL, "fs_entities", "gauge", "Feature store entities defined."},
    {"fs_views", NUM, NULL, "fs_views", "gauge", "Feature views defined."},
    {"fs_services", NUM, NULL, "fs_services", "gauge", "Feature services defined."},
    {"fs_pushes", NUM, NULL, "fs_pushes_total", "counter", "FS.PUSH rows accepted."},
    {"fs_history_batches", NUM, NULL, "fs_history_batches_total", "counter",
     "Batches written to the offline history (RocksDB)."},
    {"fs_history_rows", NUM, NULL, "fs_history_rows_total", "counter",
     "Rows written to the offline history."},
    {"fs_history_write_errors", NUM, NULL, "fs_history_write_errors_total", "counter",
     "Offline history writes that failed."},
    /* vector */
    {"vector_indexes", NUM, NULL, "vector_indexes", "gauge", "FT vector indexes defined."},
    {"vector_indexing", NUM, NULL, "vector_indexes_building", "gauge",
     "FT indexes whose background build is running."},
    {"vector_documents", NUM, NULL, "vector_documents", "gauge", "Documents in all FT indexes."},
    {"vector_memory_bytes", NUM, NULL, "vector_memory_bytes", "gauge",
     "Bytes of vectors held by the FT indexes."},
    {"vector_hash_indexing_failures", NUM, NULL, "vector_hash_indexing_failures", "gauge",
     "Hashes the FT indexes could not index, summed over the indexes that exist."},
    {"vector_snapshots_written", NUM, NULL, "vector_snapshots_written_total", "counter",
     "FT index snapshots written."},
    {"vector_snapshot_failures", NUM, NULL, "vector_snapshot_failures_total", "counter",
     "FT index snapshots that failed."},
    {"vector_snapshot_loads", NUM, NULL, "vector_snapshot_loads_total", "counter",
     "FT indexes loaded from a snapshot."},
    {"vector_rebuilds", NUM, NULL, "vector_rebuilds_total", "counter",
     "FT indexes rebuilt from the hashes."},
};

/* Lists: each INFO field of `section` whose name starts with `prefix` and whose value has
 * the item `item`; the sample is that item divided by per. Labels: key_label (when set) holds
 * the rest of the field's name, then the items named in copy, under their own names. */
#define MAX_COPY 3
static const struct list {
    const char *section, *prefix, *key_label, *copy[MAX_COPY], *item;
    double per; /* INFO's unit per metric unit (1e6: microseconds to seconds) */
    const char *name, *type, *help;
} lists[] = {
    /* clang-format off */
    {"keyspace", "", "db", {NULL}, "keys", 1, "db_keys", "gauge",
     "Keys in the database."},
    {"keyspace", "", "db", {NULL}, "expires", 1, "db_keys_expiring", "gauge",
     "Keys with a TTL in the database."},
    {"replication", "slave", NULL, {"ip", "port", "state"}, "offset", 1,
     "replication_replica_offset_bytes", "gauge",
     "On a leader: the replication offset each replica acknowledged."},
    {"replication", "slave", NULL, {"ip", "port", "state"}, "lag", 1,
     "replication_replica_lag_seconds", "gauge",
     "On a leader: seconds since each replica's last acknowledgement."},
    {"commandstats", "cmdstat_", "cmd", {NULL}, "calls", 1, "command_calls_total", "counter",
     "Calls of each command (FS.JOIN's are the feature store's joins, FT.SEARCH's the vector "
     "searches)."},
    {"commandstats", "cmdstat_", "cmd", {NULL}, "failed_calls", 1, "command_failed_calls_total",
     "counter", "Calls of each command that answered an error."},
    {"commandstats", "cmdstat_", "cmd", {NULL}, "rejected_calls", 1,
     "command_rejected_calls_total", "counter",
     "Calls of each command refused before running (arity, ACL, OOM, READONLY, ...)."},
    {"commandstats", "cmdstat_", "cmd", {NULL}, "usec", 1e6, "command_duration_seconds_total",
     "counter", "Seconds spent on the event loop executing each command."},
    /* clang-format on */
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Cuts INFO's text into fields: "# Name" lines open a section, "key:value" lines follow. */
static void parse(info_text *it)
{
    buf_appendc(&it->text, '\0');
    const char *section = "";
    char *save = NULL;
    for (char *line = strtok_r(it->text.data, "\r\n", &save); line;
         line = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(line, ':');
        if (line[0] == '#') {
            section = line + 1 + strspn(line + 1, " ");
            continue;
        }
        if (!colon)
            continue;
        *colon = '\0';
        if (it->n == it->cap) {
            it->cap = it->cap ? 2 * it->cap : 128;
            it->fields = xrealloc(it->fields, (size_t)it->cap * sizeof *it->fields);
        }
        it->fields[it->n++] = (field){section, line, colon + 1};
    }
}

static const field *find(const info_text *it, const char *key)
{
    for (int i = 0; i < it->n; i++)
        if (strcasecmp(it->fields[i].section, "gpu") != 0 && strcmp(it->fields[i].key, key) == 0)
            return &it->fields[i];
    return NULL;
}

static int number(const char *s, size_t len, double *v)
{
    return str_to_double(s, len, v, 0) == 0;
}

#define NAME_LEN 128

/* PREFIX + name, once per family rather than once per sample. */
static void full_name(char *out, const char *name)
{
    snprintf(out, NAME_LEN, PREFIX "%s", name);
}

static void emit_scalar(buf *b, const info_text *it, const struct scalar *m)
{
    const field *f = find(it, m->field);
    double v = 1;
    if (!f || (m->kind == NUM && !number(f->value, strlen(f->value), &v)))
        return;
    if (m->kind == UP)
        v = strcmp(f->value, m->arg) == 0;
    prom_label label = {m->arg, f->value};
    char name[NAME_LEN];
    full_name(name, m->name);
    prom_family(b, name, m->type, m->help);
    prom_sample(b, name, NULL, &label, m->kind == WORD, v);
}

/* The value of item `name` in "a=1,b=2" (not NUL-terminated: *len says how long), or NULL. */
static const char *item(const char *list, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
            p += nl + 1;
            *len = strcspn(p, ",");
            return p;
        }
    }
    return NULL;
}

#define MAX_LABELS (1 + MAX_COPY)
#define LABEL_VALUE_MAX 128

/* The labels of one list sample: the rest of the field's name, then the copied items. */
static int list_labels(const struct list *l, const field *f, prom_label *labels,
                       char values[][LABEL_VALUE_MAX])
{
    int n = 0;
    if (l->key_label)
        labels[n++] = (prom_label){l->key_label, f->key + strlen(l->prefix)};
    for (int i = 0; i < MAX_COPY && l->copy[i]; i++, n++) {
        size_t len = 0;
        const char *v = item(f->value, l->copy[i], &len);
        snprintf(values[n], LABEL_VALUE_MAX, "%.*s", v ? (int)len : 0, v ? v : "");
        labels[n] = (prom_label){l->copy[i], values[n]};
    }
    return n;
}

static void emit_list(buf *b, const info_text *it, const struct list *l)
{
    int started = 0;
    char name[NAME_LEN];
    full_name(name, l->name);
    for (int i = 0; i < it->n; i++) {
        const field *f = &it->fields[i];
        size_t len;
        const char *v;
        double x;
        if (strcasecmp(f->section, l->section) != 0 ||
            strncmp(f->key, l->prefix, strlen(l->prefix)) != 0 ||
            !(v = item(f->value, l->item, &len)) || !number(v, len, &x))
            continue;
        prom_label labels[MAX_LABELS];
        char values[MAX_LABELS][LABEL_VALUE_MAX];
        int n = list_labels(l, f, labels, values);
        if (!started++)
            prom_family(b, name, l->type, l->help);
        prom_sample(b, name, NULL, labels, n, x / l->per);
    }
}

/* gpu section fields as quiver_gpu_<field> ("gpu_" is not doubled), untyped. */
static void emit_gpu(buf *b, const info_text *it)
{
    for (int i = 0; i < it->n; i++) {
        const field *f = &it->fields[i];
        double v;
        if (strcasecmp(f->section, "gpu") != 0 || !number(f->value, strlen(f->value), &v))
            continue;
        char name[NAME_LEN];
        snprintf(name, sizeof name, PREFIX "gpu_%s",
                 strncmp(f->key, "gpu_", 4) == 0 ? f->key + 4 : f->key);
        prom_name_clean(name);
        char help[160];
        snprintf(help, sizeof help, "INFO gpu field %s.", f->key);
        prom_family(b, name, "untyped", help);
        prom_sample(b, name, NULL, NULL, 0, v);
    }
}

/* Histogram buckets: upper bounds of 2^k microseconds, 1 us to about 8.4 s, then +Inf. */
#define LATENCY_BUCKETS 24

/* A recorded sample v is the call's duration truncated to whole microseconds: the call
 * took less than bound us exactly when v <= bound - 1. */
static void emit_latency(buf *b)
{
    const char *name = PREFIX "command_latency_seconds";
    uint64_t below[LATENCY_BUCKETS];
    char le[LATENCY_BUCKETS + 1][32];
    for (int k = 0; k < LATENCY_BUCKETS; k++) {
        below[k] = ((uint64_t)1 << k) - 1;
        double_to_str(le[k], (double)(below[k] + 1) / 1e6);
    }
    snprintf(le[LATENCY_BUCKETS], sizeof le[0], "+Inf");
    int started = 0;
    for (int i = 0; i < ncommands; i++) {
        const histogram *h = cmdstats[i].latency;
        if (!h || !h->total)
            continue;
        if (!started++)
            prom_family(b, name, "histogram",
                        "Time each command held the event loop, in seconds "
                        "(recorded while latency-tracking is yes).");
        uint64_t counts[LATENCY_BUCKETS];
        hist_count_upto_many(h, below, LATENCY_BUCKETS, counts);
        prom_label labels[2] = {{"cmd", commands[i].name}, {"le", NULL}};
        for (int k = 0; k <= LATENCY_BUCKETS; k++) {
            labels[1].value = le[k];
            prom_sample(b, name, "_bucket", labels, 2,
                        (double)(k < LATENCY_BUCKETS ? counts[k] : h->total));
        }
        prom_sample(b, name, "_sum", labels, 1, (double)h->sum / 1e6);
        prom_sample(b, name, "_count", labels, 1, (double)h->total);
    }
}

void metrics_from_info(buf *out, const char *info, size_t len)
{
    info_text it = {0};
    buf_init(&it.text);
    buf_append(&it.text, info, len);
    parse(&it);
    for (size_t i = 0; i < NELEM(scalars); i++)
        emit_scalar(out, &it, &scalars[i]);
    for (size_t i = 0; i < NELEM(lists); i++)
        emit_list(out, &it, &lists[i]);
    emit_gpu(out, &it);
    xfree(it.fields);
    buf_free(&it.text);
}

void metrics_render(buf *out)
{
    buf info;
    buf_init(&info);
    info_render_all(&info);
    metrics_from_info(out, info.data, info.len);
    buf_free(&info);
    emit_latency(out);
}
