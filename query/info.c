/* info.c: the INFO command, sections and field names as Redis writes them, so that
 * monitoring tools and client libraries that parse INFO work unchanged. */
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/util.h"
#include "index/index.h"
#include "query/ft.h"
#include "query/gpu_batch.h"
#include "query/query_int.h"
#include "replication/repl.h"

static void human(char *out, size_t n, double bytes)
{
    const char *units = "BKMGT";
    int i = 0;
    while (bytes >= 1024 && i < 4) {
        bytes /= 1024;
        i++;
    }
    if (i == 0)
        snprintf(out, n, "%.0fB", bytes);
    else
        snprintf(out, n, "%.2f%c", bytes, units[i]);
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

static void section_server(buf *b)
{
    struct utsname u;
    uname(&u);
    int64_t now = clock_us();
    int64_t up = (now / 1000 - srv.start_ms) / 1000;
    buf_printf(b, "# Server\r\nredis_version:%s\r\nquiver_version:%s\r\nredis_mode:standalone\r\n"
                  "os:%s %s %s\r\narch_bits:%d\r\nmultiplexing_api:%s\r\nprocess_id:%d\r\n"
                  "run_id:%s\r\ntcp_port:%d\r\nserver_time_usec:%lld\r\nuptime_in_seconds:%lld\r\n"
                  "uptime_in_days:%lld\r\nhz:%d\r\nconfig_file:%s\r\n",
               QUIVER_REDIS_VERSION, QUIVER_VERSION, u.sysname, u.release, u.machine,
               (int)(8 * sizeof(void *)), event_base_get_method(srv.base), (int)getpid(),
               srv.run_id, srv.cfg.port, (long long)now, (long long)up, (long long)up / 86400,
               srv.cfg.hz, srv.cfg.config_file ? srv.cfg.config_file : "");
}

static void section_clients(buf *b)
{
    buf_printf(b, "# Clients\r\nconnected_clients:%u\r\nmaxclients:%d\r\nblocked_clients:0\r\n",
               net_get_stats()->connected, srv.cfg.maxclients);
}

static void section_memory(buf *b)
{
    char h1[32], h2[32];
    size_t used = alloc_used(), rss = rss_bytes();
    store_stats st;
    store_get_stats(srv.store, &st);
    human(h1, sizeof h1, (double)used);
    human(h2, sizeof h2, (double)rss);
    char h3[32];
    human(h3, sizeof h3, (double)srv.cfg.maxmemory);
    buf_printf(b, "# Memory\r\nused_memory:%zu\r\nused_memory_human:%s\r\nused_memory_rss:%zu\r\n"
                  "used_memory_rss_human:%s\r\nmaxmemory:%lld\r\nmaxmemory_human:%s\r\n"
                  "maxmemory_policy:noeviction\r\nlmdb_map_size:%zu\r\nlmdb_used_bytes:%zu\r\n",
               used, h1, rss, h2, srv.cfg.maxmemory, h3, st.map_size, st.used_bytes);
}

static void section_persistence(buf *b)
{
    static const char *names[] = {"no", "everysec", "always"};
    store_stats st;
    store_get_stats(srv.store, &st);
    buf_printf(b, "# Persistence\r\nloading:%d\r\nasync_loading:0\r\ndurability:%s\r\n"
                  "lmdb_commits:%llu\r\n"
                  "lmdb_syncs:%llu\r\nlmdb_failed_commits:%llu\r\nlast_sync_time:%lld\r\n"
                  "aof_enabled:0\r\nrdb_bgsave_in_progress:0\r\nrdb_last_bgsave_status:ok\r\n",
               repl_loading(), names[st.durability], (unsigned long long)st.commits,
               (unsigned long long)st.syncs, (unsigned long long)st.failed_commits,
               (long long)st.last_sync_ms / 1000);
}

static void section_stats(buf *b)
{
    const net_stats *ns = net_get_stats();
    buf_printf(b, "# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
                  "instantaneous_ops_per_sec:%llu\r\n"
                  "total_net_input_bytes:%llu\r\ntotal_net_output_bytes:%llu\r\n"
                  "rejected_connections:%llu\r\nexpired_keys:%llu\r\nevicted_keys:0\r\n"
                  "keyspace_hits:%llu\r\nkeyspace_misses:%llu\r\n"
                  "client_output_buffer_limit_disconnections:%llu\r\n"
                  "total_protocol_errors:%llu\r\nfailed_write_passes:%llu\r\n",
               (unsigned long long)ns->connections, (unsigned long long)ns->commands,
               (unsigned long long)server_ops_per_sec(),
               (unsigned long long)ns->net_in, (unsigned long long)ns->net_out,
               (unsigned long long)ns->rejected, (unsigned long long)srv.stats.expired_keys,
               (unsigned long long)srv.stats.keyspace_hits,
               (unsigned long long)srv.stats.keyspace_misses,
               (unsigned long long)ns->obuf_disconnects, (unsigned long long)ns->proto_errors,
               (unsigned long long)srv.stats.failed_passes);
    repl_info_stats(b);
}

static void section_replication(buf *b)
{
    repl_info(b);
}

static void section_keyspace(buf *b)
{
    buf_printf(b, "# Keyspace\r\n");
    for (int db = 0; db < STORE_DBS; db++) {
        uint64_t keys = store_dbsize(srv.store, db);
        if (keys)
            buf_printf(b, "db%d:keys=%llu,expires=%llu,avg_ttl=0\r\n", db,
                       (unsigned long long)keys, (unsigned long long)store_expires(srv.store, db));
    }
}

static void section_commandstats(buf *b)
{
    buf_printf(b, "# Commandstats\r\n");
    for (int i = 0; i < ncommands; i++) {
        const command_stats *s = &cmdstats[i];
        if (!s->calls && !s->rejected)
            continue;
        buf_printf(b, "cmdstat_%s:calls=%llu,usec=%llu,usec_per_call=%.2f,rejected_calls=%llu,"
                      "failed_calls=%llu\r\n",
                   commands[i].name, (unsigned long long)s->calls, (unsigned long long)s->usec,
                   s->calls ? (double)s->usec / (double)s->calls : 0.0,
                   (unsigned long long)s->rejected, (unsigned long long)s->failed);
    }
}

static void section_featurestore(buf *b)
{
    store_fs_stats st;
    store_get_fs_stats(srv.store, &st);
    buf_printf(b, "# Featurestore\r\nfs_entities:%d\r\nfs_views:%d\r\nfs_services:%d\r\n"
                  "fs_pushes:%llu\r\nfs_history_batches:%llu\r\nfs_history_rows:%llu\r\n"
                  "fs_history_write_errors:%llu\r\n",
               store_entity_count(srv.store), store_view_count(srv.store),
               store_service_count(srv.store), (unsigned long long)st.pushes,
               (unsigned long long)st.history_batches, (unsigned long long)st.history_rows,
               (unsigned long long)st.history_write_errors);
}

static void section_vector(buf *b)
{
    ft_info_section(b);
}

static void section_gpu(buf *b)
{
    index_gpu_info g;
    index_gpu_get(&g);
    static const char *const modes[] = {"no", "yes", "auto"};
    buf_printf(b, "# GPU\r\ngpu_mode:%s\r\ngpu_enabled:%d\r\ngpu_library:%s\r\n", modes[g.mode],
               g.enabled, g.library);
    if (g.enabled)
        buf_printf(b, "gpu_device:%s\r\ngpu_memory_total:%zu\r\ngpu_memory_free:%zu\r\n",
                   g.device, g.total_mem, g.free_mem);
    else
        buf_printf(b, "gpu_disabled_reason:%s\r\n", g.reason);
    gpu_batch_info(b);
    ft_bulk_info(b);
}

static const struct {
    const char *name;
    void (*render)(buf *);
    int in_default;
} sections[] = {
    {"server", section_server, 1},           {"clients", section_clients, 1},
    {"memory", section_memory, 1},           {"persistence", section_persistence, 1},
    {"stats", section_stats, 1},             {"replication", section_replication, 1},
    {"keyspace", section_keyspace, 1},       {"featurestore", section_featurestore, 1},
    {"commandstats", section_commandstats, 0}, {"vector", section_vector, 1},
    {"latencystats", latency_info_section, 0},
    {"gpu", section_gpu, 1},
};

#define NSECTIONS (sizeof sections / sizeof sections[0])

static void render_section(buf *b, size_t s)
{
    if (b->len)
        buf_append(b, "\r\n", 2);
    sections[s].render(b);
}

void info_render_all(buf *b)
{
    for (size_t s = 0; s < NSECTIONS; s++)
        render_section(b, s);
}

void cmd_info(client *c)
{
    buf b;
    buf_init(&b);
    int all = c->argc == 1, everything = 0;
    for (int i = 1; i < c->argc; i++) {
        if (arg_is(c, i, "all") || arg_is(c, i, "everything"))
            everything = 1;
        else if (arg_is(c, i, "default"))
            all = 1;
    }
    for (size_t s = 0; s < NSECTIONS; s++) {
        int want = everything || (all && sections[s].in_default);
        for (int i = 1; i < c->argc && !want; i++)
            want = arg_is(c, i, sections[s].name);
        if (want)
            render_section(&b, s);
    }
    reply_verbatim(c, b.data ? b.data : "", b.len);
    buf_free(&b);
}
