/* latency.c: per-command latency histograms, read back as INFO latencystats (percentiles,
 * Redis 7's field format) and LATENCY HISTOGRAM (Redis 7's reply: per command, the calls
 * and a cumulative count at each power-of-two microsecond bound). dispatch.c records each
 * call's duration into its command's histogram (core/histogram.h) while latency-tracking
 * is yes; CONFIG RESETSTAT clears them.
 *
 * Quiver has no latency monitor (Redis's latency-monitor-threshold events): LATENCY LATEST
 * answers an empty list and LATENCY RESET resets nothing, for tools that poll them. */
#include <stdio.h>

#include "core/histogram.h"
#include "query/query_int.h"

void latency_info_section(buf *b)
{
    buf_printf(b, "# Latencystats\r\n");
    if (!srv.cfg.latency_tracking)
        return;
    for (int i = 0; i < ncommands; i++) {
        const histogram *h = cmdstats[i].latency;
        if (!h || !h->total)
            continue;
        buf_printf(b, "latency_percentiles_usec_%s:", commands[i].name);
        for (int j = 0; j < srv.cfg.npercentiles; j++) {
            char p[32];
            double_to_str(p, srv.cfg.percentiles[j]);
            buf_printf(b, "%sp%s=%.3f", j ? "," : "", p,
                       (double)hist_percentile(h, srv.cfg.percentiles[j]));
        }
        buf_printf(b, "\r\n");
    }
}

/* {calls: n, histogram_usec: {bound: samples <= bound, ...}} over bounds 1, 2, 4, ... us,
 * each bound listed only when its count grew since the previous one. */
static void reply_histogram(client *c, const histogram *h)
{
    reply_map(c, 2);
    reply_bulk_cstr(c, "calls");
    reply_int(c, (long long)h->total);
    reply_bulk_cstr(c, "histogram_usec");
    size_t len = reply_deferred(c);
    long n = 0;
    uint64_t prev = 0, top = hist_max(h);
    for (uint64_t bound = 1; prev < h->total; bound *= 2) {
        uint64_t count = bound >= top ? h->total : hist_count_upto(h, bound);
        if (count > prev) {
            reply_int(c, (long long)bound);
            reply_int(c, (long long)count);
            n++;
        }
        prev = count;
    }
    reply_set_map(c, len, n);
}

static const histogram *tracked(int i)
{
    const histogram *h = cmdstats[i].latency;
    return h && h->total ? h : NULL;
}

/* LATENCY HISTOGRAM [command ...]: every command called so far, or the named ones that
 * were (unknown names are skipped, as Redis does). */
static void latency_histogram(client *c)
{
    size_t len = reply_deferred(c);
    long n = 0;
    for (int i = 0; i < ncommands; i++) {
        int wanted = c->argc == 2;
        for (int a = 2; a < c->argc && !wanted; a++)
            wanted = command_lookup(c->argv[a], c->argl[a]) == &commands[i];
        if (!wanted || !tracked(i))
            continue;
        reply_bulk_cstr(c, commands[i].name);
        reply_histogram(c, tracked(i));
        n++;
    }
    reply_set_map(c, len, n);
}

static void latency_help(client *c)
{
    static const char *const lines[] = {
        "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "HISTOGRAM [COMMAND ...]",
        "    For each command (all that were called, or the ones named): the number of",
        "    calls and how many took at most 1, 2, 4, ... microseconds (cumulative).",
        "LATEST",
        "    Latency monitor events: always empty (Quiver has no latency monitor).",
        "RESET [EVENT ...]",
        "    Resets latency monitor events: there are none, so it answers 0.",
        "HELP",
        "    Prints this help.",
    };
    reply_help(c, lines, sizeof lines / sizeof lines[0]);
}

void cmd_latency(client *c)
{
    if (arg_is(c, 1, "HISTOGRAM")) {
        latency_histogram(c);
    } else if (arg_is(c, 1, "LATEST") && c->argc == 2) {
        reply_array(c, 0);
    } else if (arg_is(c, 1, "RESET")) {
        reply_int(c, 0);
    } else if (arg_is(c, 1, "HELP") && c->argc == 2) {
        latency_help(c);
    } else {
        reply_errorf(c, "unknown subcommand '%.*s'. Try LATENCY HELP.",
                     (int)(c->argl[1] > 128 ? 128 : c->argl[1]), c->argv[1]);
    }
}
