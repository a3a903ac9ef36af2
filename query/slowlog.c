/* slowlog.c: SLOWLOG, the ring of the latest commands that took at least
 * slowlog-log-slower-than microseconds (Redis's format: id, unix time, duration, arguments,
 * client address, client name). call() measures and pushes; entries hold copies of the
 * arguments, trimmed as Redis trims them (32 arguments, 128 bytes each) and with secrets
 * (AUTH and HELLO passwords, CONFIG SET requirepass) replaced by "(redacted)".
 *
 * The duration is the time the command held the event loop: a command that parks its
 * client and finishes on a worker (FS.JOIN, FT.CREATE's build) is logged for its loop-thread
 * part only, as Redis logs a blocked command for the time it ran, not the time it waited. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "query/query_int.h"

#define SLOWLOG_MAX_ARGC 32
#define SLOWLOG_MAX_ARGLEN 128

typedef struct slow_entry {
    uint64_t id;
    int64_t time_s, duration_us;
    int argc;
    char **argv;
    size_t *argl;
    char addr[64];
    char *name;
} slow_entry;

/* Oldest entry at items[start]; the ring grows as needed, and is trimmed to
 * slowlog-max-len after each push (so lowering the limit takes effect at the next entry, as
 * in Redis). */
static struct {
    slow_entry **items;
    size_t cap, start, len;
    uint64_t next_id;
} slow;

static void entry_free(slow_entry *e)
{
    for (int i = 0; i < e->argc; i++)
        xfree(e->argv[i]);
    xfree(e->argv);
    xfree(e->argl);
    xfree(e->name);
    xfree(e);
}

/* True when argument i of c's command is a password that the log must not keep. */
static int is_secret(const client *c, const command *cmd, int i)
{
    if (cmd->proc == cmd_auth)
        return i >= 1;
    if (cmd->proc == cmd_hello) {
        for (int j = 2; j < i; j++)
            if (arg_is(c, j, "AUTH") && i <= j + 2)
                return 1;
        return 0;
    }
    if (cmd->proc == cmd_acl) /* SETUSER: the user and every rule, as Redis 7 */
        return arg_is(c, 1, "SETUSER") && i >= 2;
    return cmd->proc == cmd_config && arg_is(c, 1, "SET") && i >= 3 && i % 2 == 1 &&
           (arg_is(c, i - 1, "requirepass") || arg_is(c, i - 1, "masterauth") ||
            arg_is(c, i - 1, "masteruser"));
}

static void copy_arg(slow_entry *e, int i, const char *p, size_t n)
{
    buf b;
    buf_init(&b);
    buf_append(&b, p, n > SLOWLOG_MAX_ARGLEN ? SLOWLOG_MAX_ARGLEN : n);
    if (n > SLOWLOG_MAX_ARGLEN)
        buf_printf(&b, "... (%zu more bytes)", n - SLOWLOG_MAX_ARGLEN);
    e->argl[i] = b.len;
    buf_appendc(&b, '\0');
    e->argv[i] = b.data;
}

static slow_entry *entry_new(client *c, const command *cmd, int64_t start_us, int64_t dur_us)
{
    slow_entry *e = xcalloc(1, sizeof *e);
    e->id = slow.next_id++;
    e->time_s = start_us / 1000000;
    e->duration_us = dur_us;
    e->argc = c->argc > SLOWLOG_MAX_ARGC ? SLOWLOG_MAX_ARGC : c->argc;
    e->argv = xmalloc(sizeof *e->argv * (size_t)e->argc);
    e->argl = xmalloc(sizeof *e->argl * (size_t)e->argc);
    for (int i = 0; i < e->argc; i++) {
        char more[48];
        if (e->argc != c->argc && i == e->argc - 1) {
            int n = snprintf(more, sizeof more, "... (%d more arguments)", c->argc - i);
            copy_arg(e, i, more, (size_t)n);
        } else if (is_secret(c, cmd, i)) {
            copy_arg(e, i, "(redacted)", 10);
        } else {
            copy_arg(e, i, c->argv[i], c->argl[i]);
        }
    }
    snprintf(e->addr, sizeof e->addr, "%s", c->addr);
    e->name = xstrdup(c->name ? c->name : "");
    return e;
}

static void drop_oldest(void)
{
    entry_free(slow.items[slow.start]);
    slow.start = (slow.start + 1) % slow.cap;
    slow.len--;
}

void slowlog_push(client *c, const command *cmd, int64_t start_us, int64_t dur_us)
{
    if (slow.len == slow.cap) { /* grow, unrolling the ring so that it starts at 0 */
        size_t cap = slow.cap ? slow.cap * 2 : 16;
        slow_entry **items = xmalloc(sizeof *items * cap);
        for (size_t i = 0; i < slow.len; i++)
            items[i] = slow.items[(slow.start + i) % slow.cap];
        xfree(slow.items);
        slow.items = items;
        slow.cap = cap;
        slow.start = 0;
    }
    slow.items[(slow.start + slow.len) % slow.cap] = entry_new(c, cmd, start_us, dur_us);
    slow.len++;
    while (slow.len > (size_t)srv.cfg.slowlog_max_len)
        drop_oldest();
}

static void slowlog_reset(void)
{
    while (slow.len)
        drop_oldest();
}

static void reply_entry(client *c, const slow_entry *e)
{
    reply_array(c, 6);
    reply_int(c, (long long)e->id);
    reply_int(c, (long long)e->time_s);
    reply_int(c, (long long)e->duration_us);
    reply_array(c, e->argc);
    for (int i = 0; i < e->argc; i++)
        reply_bulk(c, e->argv[i], e->argl[i]);
    reply_bulk_cstr(c, e->addr);
    reply_bulk_cstr(c, e->name);
}

/* SLOWLOG GET [count]: the newest first; count -1 means all, default 10. */
static void slowlog_get(client *c)
{
    int64_t count = 10;
    if (c->argc == 3 && (str_to_i64(c->argv[2], c->argl[2], &count) != 0 || count < -1)) {
        reply_error(c, "count should be greater than or equal to -1");
        return;
    }
    size_t n = count < 0 || (uint64_t)count > slow.len ? slow.len : (size_t)count;
    reply_array(c, (long)n);
    for (size_t i = 0; i < n; i++)
        reply_entry(c, slow.items[(slow.start + slow.len - 1 - i) % slow.cap]);
}

static void slowlog_help(client *c)
{
    static const char *const lines[] = {
        "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET [<count>]",
        "    The newest <count> entries of the slow log (default 10; -1 for all). Each is:",
        "    id, unix time, duration in microseconds, arguments, client address and port,",
        "    client name.",
        "LEN",
        "    How many entries the slow log holds.",
        "RESET",
        "    Empties the slow log.",
        "HELP",
        "    Prints this help.",
    };
    reply_help(c, lines, sizeof lines / sizeof lines[0]);
}

void cmd_slowlog(client *c)
{
    static const char *const fixed[] = {"len", "reset", "help"}; /* subcommands of arity 2 */
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (arg_is(c, 1, fixed[i]) && c->argc != 2) {
            reply_errorf(c, "wrong number of arguments for 'slowlog|%s' command", fixed[i]);
            return;
        }
    }
    if (arg_is(c, 1, "GET") && c->argc <= 3) {
        slowlog_get(c);
    } else if (arg_is(c, 1, "LEN")) {
        reply_int(c, (long long)slow.len);
    } else if (arg_is(c, 1, "RESET")) {
        slowlog_reset();
        reply_ok(c);
    } else if (arg_is(c, 1, "HELP")) {
        slowlog_help(c);
    } else {
        /* Redis's words: GET with too many arguments gets this message too */
        reply_errorf(c, "unknown subcommand%s '%.*s'. Try SLOWLOG HELP.",
                     arg_is(c, 1, "GET") ? " or wrong number of arguments for" : "",
                     (int)(c->argl[1] > 128 ? 128 : c->argl[1]), c->argv[1]);
    }
}
