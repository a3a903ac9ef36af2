/* cmd_core.c: connection and server commands: PING, ECHO, HELLO, AUTH, QUIT, RESET,
 * SELECT, CLIENT, CONFIG, DBSIZE, FLUSHDB/FLUSHALL, TIME, SHUTDOWN, MODULE, FUNCTION,
 * LASTSAVE. (INFO is in info.c, COMMAND in docs.c, transactions in multi.c.) */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "query/acl.h"
#include "query/query_int.h"

void cmd_ping(client *c)
{
    if (c->argc > 2) {
        reply_error(c, "wrong number of arguments for 'ping' command");
        return;
    }
    if (c->argc == 2)
        reply_bulk(c, c->argv[1], c->argl[1]);
    else
        reply_simple(c, "PONG");
}

void cmd_echo(client *c)
{
    reply_bulk(c, c->argv[1], c->argl[1]);
}

void cmd_auth(client *c)
{
    if (c->argc > 3) {
        reply_syntax_error(c);
        return;
    }
    int two = c->argc == 3;
    if (acl_auth(c, two ? c->argv[1] : NULL, two ? c->argl[1] : 0, c->argv[c->argc - 1],
                 c->argl[c->argc - 1]) == 0)
        reply_ok(c);
}

static int valid_name(client *c, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '!' || p[i] > '~') {
            reply_error(c, "Client names cannot contain spaces, newlines or special characters.");
            return 0;
        }
    }
    return 1;
}

static void set_name(client *c, const char *p, size_t n)
{
    xfree(c->name);
    c->name = n ? xmemdup(p, n) : NULL;
}

void cmd_hello(client *c)
{
    int64_t ver = c->resp;
    int i = 1;
    if (c->argc >= 2) {
        if (str_to_i64(c->argv[1], c->argl[1], &ver) != 0) {
            reply_error(c, "Protocol version is not an integer or out of range");
            return;
        }
        if (ver != 2 && ver != 3) {
            reply_error(c, "NOPROTO unsupported protocol version");
            return;
        }
        i = 2;
    }
    const char *user = NULL, *pass = NULL, *name = NULL;
    size_t ulen = 0, plen = 0, nlen = 0;
    for (; i < c->argc; i++) {
        if (arg_is(c, i, "AUTH") && i + 2 < c->argc) {
            user = c->argv[i + 1], ulen = c->argl[i + 1];
            pass = c->argv[i + 2], plen = c->argl[i + 2];
            i += 2;
        } else if (arg_is(c, i, "SETNAME") && i + 1 < c->argc) {
            name = c->argv[i + 1], nlen = c->argl[i + 1];
            if (!valid_name(c, name, nlen))
                return;
            i++;
        } else {
            reply_errorf(c, "Syntax error in HELLO option '%.*s'", (int)c->argl[i], c->argv[i]);
            return;
        }
    }
    if (pass && acl_auth(c, user, ulen, pass, plen) != 0)
        return;
    if (!c->authenticated) {
        reply_error(c, "NOAUTH HELLO must be called with the client already authenticated, "
                       "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
                       "authenticate the client and select the RESP protocol version at the "
                       "same time");
        return;
    }
    if (name)
        set_name(c, name, nlen);
    c->resp = (int)ver;
    reply_map(c, 7);
    reply_bulk_cstr(c, "server");
    reply_bulk_cstr(c, "quiver");
    reply_bulk_cstr(c, "version");
    reply_bulk_cstr(c, QUIVER_REDIS_VERSION);
    reply_bulk_cstr(c, "proto");
    reply_int(c, ver);
    reply_bulk_cstr(c, "id");
    reply_int(c, (long long)c->id);
    reply_bulk_cstr(c, "mode");
    reply_bulk_cstr(c, "standalone");
    reply_bulk_cstr(c, "role");
    reply_bulk_cstr(c, "master");
    reply_bulk_cstr(c, "modules");
    reply_array(c, 0);
}

void cmd_quit(client *c)
{
    reply_ok(c);
    client_close_after_reply(c);
}

void cmd_reset(client *c)
{
    multi_release(c);
    watch_release(c);
    c->db = 0;
    c->resp = 2;
    set_name(c, NULL, 0);
    acl_client_reset(c);
    reply_simple(c, "RESET");
}

void cmd_select(client *c)
{
    int64_t db;
    if (arg_i64(c, 1, &db))
        return;
    if (db < 0 || db >= STORE_DBS) {
        reply_error(c, "ERR DB index is out of range");
        return;
    }
    c->db = (int)db;
    reply_ok(c);
}

static void client_list(client *c, client *only)
{
    buf b;
    buf_init(&b);
    for (client *x = only ? only : net_clients(); x; x = only ? NULL : x->next) {
        client_describe(x, acl_user_name(acl_user_of(x)), &b);
        buf_appendc(&b, '\n');
    }
    reply_verbatim(c, b.data ? b.data : "", b.len);
    buf_free(&b);
}

/* CLIENT KILL, old form (an address) or new form (filters); replies as Redis. */
static void client_kill(client *c)
{
    if (c->argc == 3) {
        for (client *x = net_clients(); x; x = x->next) {
            if (strlen(x->addr) == c->argl[2] && memcmp(x->addr, c->argv[2], c->argl[2]) == 0) {
                x == c ? client_close_after_reply(c) : client_close(x);
                reply_ok(c);
                return;
            }
        }
        reply_error(c, "No such client");
        return;
    }
    int64_t id = 0;
    const acl_user *user = NULL;
    const char *addr = NULL, *laddr = NULL;
    size_t alen = 0, llen = 0;
    int skipme = 1;
    for (int i = 2; i < c->argc; i += 2) {
        if (i + 1 >= c->argc) {
            reply_syntax_error(c);
            return;
        }
        if (arg_is(c, i, "ID")) {
            if (str_to_i64(c->argv[i + 1], c->argl[i + 1], &id) || id <= 0) {
                reply_error(c, "client-id should be greater than 0");
                return;
            }
        } else if (arg_is(c, i, "ADDR")) {
            addr = c->argv[i + 1], alen = c->argl[i + 1];
        } else if (arg_is(c, i, "LADDR")) {
            laddr = c->argv[i + 1], llen = c->argl[i + 1];
        } else if (arg_is(c, i, "SKIPME")) {
            skipme = arg_is(c, i + 1, "yes");
        } else if (arg_is(c, i, "USER")) {
            if (!(user = acl_find(c->argv[i + 1], c->argl[i + 1]))) {
                reply_errorf(c, "No such user '%.*s'", (int)c->argl[i + 1], c->argv[i + 1]);
                return;
            }
        } else if (arg_is(c, i, "TYPE")) {
            /* one kind of client so far: this filters nothing */
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    long long n = 0;
    for (client *x = net_clients(), *next; x; x = next) {
        next = x->next;
        if ((id && x->id != (uint64_t)id) ||
            (addr && (strlen(x->addr) != alen || memcmp(x->addr, addr, alen))) ||
            (laddr && (strlen(x->laddr) != llen || memcmp(x->laddr, laddr, llen))) ||
            (user && acl_user_of(x) != user) || (skipme && x == c))
            continue;
        x == c ? client_close_after_reply(c) : client_close(x);
        n++;
    }
    reply_int(c, n);
}

void cmd_client(client *c)
{
    if (arg_is(c, 1, "ID") && c->argc == 2) {
        reply_int(c, (long long)c->id);
    } else if (arg_is(c, 1, "SETNAME") && c->argc == 3) {
        if (valid_name(c, c->argv[2], c->argl[2])) {
            set_name(c, c->argv[2], c->argl[2]);
            reply_ok(c);
        }
    } else if (arg_is(c, 1, "GETNAME") && c->argc == 2) {
        reply_bulk_cstr(c, c->name);
    } else if (arg_is(c, 1, "LIST")) {
        if (c->argc >= 4 && arg_is(c, 2, "ID")) {
            buf b;
            buf_init(&b);
            for (int i = 3; i < c->argc; i++) {
                int64_t id;
                if (str_to_i64(c->argv[i], c->argl[i], &id) || id <= 0) {
                    buf_free(&b);
                    reply_error(c, "Invalid client ID");
                    return;
                }
                client *x = net_client_by_id((uint64_t)id);
                if (x) {
                    client_describe(x, acl_user_name(acl_user_of(x)), &b);
                    buf_appendc(&b, '\n');
                }
            }
            reply_verbatim(c, b.data ? b.data : "", b.len);
            buf_free(&b);
        } else {
            client_list(c, NULL);
        }
    } else if (arg_is(c, 1, "INFO") && c->argc == 2) {
        client_list(c, c);
    } else if (arg_is(c, 1, "KILL") && c->argc >= 3) {
        client_kill(c);
    } else if (arg_is(c, 1, "SETINFO") && c->argc == 4) {
        char **slot = arg_is(c, 2, "LIB-NAME") ? &c->lib_name
                      : arg_is(c, 2, "LIB-VER") ? &c->lib_ver : NULL;
        if (!slot) {
            reply_errorf(c, "Unrecognized option '%.*s'", (int)c->argl[2], c->argv[2]);
            return;
        }
        if (!valid_name(c, c->argv[3], c->argl[3]))
            return;
        xfree(*slot);
        *slot = xmemdup(c->argv[3], c->argl[3]);
        reply_ok(c);
    } else if ((arg_is(c, 1, "NO-EVICT") || arg_is(c, 1, "NO-TOUCH")) && c->argc == 3) {
        reply_ok(c); /* nothing is evicted, and we track no access times */
    } else {
        reply_errorf(c, "unknown subcommand or wrong number of arguments for '%.*s'. Try "
                        "CLIENT HELP.", (int)c->argl[1], c->argv[1]);
    }
}

static void emit_config(void *ctx, const char *name, const char *value)
{
    client *c = ctx;
    reply_bulk_cstr(c, name);
    reply_bulk_cstr(c, value);
}

static void count_config(void *ctx, const char *name, const char *value)
{
    (void)name;
    (void)value;
    (*(long *)ctx)++;
}

static void config_get_cmd(client *c)
{
    long n = 0;
    for (int i = 2; i < c->argc; i++)
        config_get(&srv.cfg, c->argv[i], c->argl[i], count_config, &n);
    reply_map(c, n);
    for (int i = 2; i < c->argc; i++)
        config_get(&srv.cfg, c->argv[i], c->argl[i], emit_config, c);
}

/* CONFIG SET name value [name value ...]: all or nothing. */
static void config_set_cmd(client *c)
{
    if (c->argc < 4 || c->argc % 2) {
        reply_error(c, "wrong number of arguments for 'config|set' command");
        return;
    }
    config tmp;
    config_dup(&tmp, &srv.cfg);
    char err[512];
    for (int i = 2; i < c->argc; i += 2) {
        char *name = xmemdup(c->argv[i], c->argl[i]);
        char *value = xmemdup(c->argv[i + 1], c->argl[i + 1]);
        char **words = NULL;
        int n = 1;
        /* options with several values (bind, buffer limits) take them in one argument */
        if (!strcasecmp(name, "bind") || !strcasecmp(name, "client-output-buffer-limit"))
            n = config_split_words(value, &words);
        int rc = n < 0 ? ERR_INVAL
                       : config_set(&tmp, name, n, words ? (const char *const *)words
                                                         : (const char *const *)&value,
                                    0, err, sizeof err);
        if (n < 0)
            snprintf(err, sizeof err, "Invalid argument for CONFIG SET '%s'", name);
        if (words)
            config_free_words(words, n);
        xfree(name);
        xfree(value);
        if (rc) {
            config_free(&tmp);
            reply_error(c, err);
            return;
        }
    }
    config_free(&srv.cfg);
    srv.cfg = tmp;
    server_apply_config();
    reply_ok(c);
}

void cmd_config(client *c)
{
    char err[512];
    if (arg_is(c, 1, "GET") && c->argc >= 3) {
        config_get_cmd(c);
    } else if (arg_is(c, 1, "SET")) {
        config_set_cmd(c);
    } else if (arg_is(c, 1, "RESETSTAT") && c->argc == 2) {
        memset(&srv.stats, 0, sizeof srv.stats);
        cmdstats_reset();
        reply_ok(c);
    } else if (arg_is(c, 1, "REWRITE") && c->argc == 2) {
        if (config_rewrite(&srv.cfg, err, sizeof err) != 0)
            reply_error(c, err);
        else
            reply_ok(c);
    } else {
        reply_errorf(c, "unknown subcommand or wrong number of arguments for '%.*s'. Try "
                        "CONFIG HELP.", (int)c->argl[1], c->argv[1]);
    }
}

void cmd_dbsize(client *c)
{
    reply_int(c, (long long)store_dbsize(srv.store, c->db));
}

static void flush(client *c, int db)
{
    if (c->argc > 2 || (c->argc == 2 && !arg_is(c, 1, "ASYNC") && !arg_is(c, 1, "SYNC"))) {
        reply_syntax_error(c);
        return;
    }
    store_txn *t;
    if (write_txn(c, 0, &t))
        return;
    watch_touch_db(t, db);
    int rc = store_flush(t, db);
    if (rc) {
        reply_store_error(c, rc);
        return;
    }
    command_dirty();
    reply_ok(c);
}

void cmd_flushdb(client *c)
{
    flush(c, c->db);
}

void cmd_flushall(client *c)
{
    flush(c, -1);
}

void cmd_time(client *c)
{
    int64_t us = clock_us();
    reply_array(c, 2);
    reply_bulk_int(c, us / 1000000);
    reply_bulk_int(c, us % 1000000);
}

void cmd_lastsave(client *c)
{
    store_stats st;
    store_get_stats(srv.store, &st);
    reply_int(c, (long long)(st.last_sync_ms ? st.last_sync_ms : (uint64_t)srv.start_ms) / 1000);
}

void cmd_shutdown(client *c)
{
    for (int i = 1; i < c->argc; i++) {
        if (arg_is(c, i, "ABORT")) {
            reply_error(c, "No shutdown in progress.");
            return;
        }
        if (!arg_is(c, i, "NOSAVE") && !arg_is(c, i, "SAVE") && !arg_is(c, i, "NOW") &&
            !arg_is(c, i, "FORCE")) {
            reply_syntax_error(c);
            return;
        }
    }
    /* Every write is in LMDB already; shutting down commits the pass and syncs. */
    log_info("SHUTDOWN requested by client id=%llu addr=%s", (unsigned long long)c->id, c->addr);
    srv.shutdown = 1;
    client_close(c);
}

void cmd_module(client *c)
{
    if (arg_is(c, 1, "LIST") && c->argc == 2) {
        /* The vector commands speak RediSearch's dialect; RedisVL checks for this module. */
        reply_array(c, 1);
        reply_map(c, 4);
        reply_bulk_cstr(c, "name");
        reply_bulk_cstr(c, "search");
        reply_bulk_cstr(c, "ver");
        reply_int(c, 20600);
        reply_bulk_cstr(c, "path");
        reply_bulk_cstr(c, "built-in");
        reply_bulk_cstr(c, "args");
        reply_array(c, 0);
    } else if (arg_is(c, 1, "LOAD") || arg_is(c, 1, "LOADEX") || arg_is(c, 1, "UNLOAD")) {
        reply_error(c, "Quiver's modules are built in; MODULE LOAD and UNLOAD are not supported");
    } else {
        reply_errorf(c, "unknown subcommand or wrong number of arguments for '%.*s'. Try "
                        "MODULE HELP.", (int)c->argl[1], c->argv[1]);
    }
}

void cmd_function(client *c)
{
    if (arg_is(c, 1, "FLUSH") && (c->argc == 2 || (c->argc == 3 && (arg_is(c, 2, "ASYNC") ||
                                                                       arg_is(c, 2, "SYNC"))))) {
        reply_ok(c); /* no functions exist, so there is nothing to flush */
    } else {
        reply_errorf(c, "unknown subcommand or wrong number of arguments for '%.*s'. Try "
                        "FUNCTION HELP.", (int)c->argl[1], c->argv[1]);
    }
}
