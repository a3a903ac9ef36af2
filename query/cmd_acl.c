/* cmd_acl.c: the ACL command (SETUSER, GETUSER, DELUSER, LIST, USERS, WHOAMI, CAT, LOAD,
 * SAVE, GENPASS, HELP), with Redis 7.0's replies and error texts. The users and their
 * checks live in acl.c. */
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/server.h"
#include "query/acl.h"
#include "query/query_int.h"

static const char NO_FILE[] =
    "This Redis instance is not configured to use an ACL file. You may want to specify users "
    "via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis "
    "configuration file set) in order to store users in the Redis configuration.";

static int valid_username(client *c, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == ' ' || p[i] == '\0') {
            reply_error(c, "Usernames can't contain spaces or null characters");
            return 0;
        }
    }
    return 1;
}

static void acl_setuser_cmd(client *c)
{
    if (!valid_username(c, c->argv[2], c->argl[2]))
        return;
    char err[512];
    if (acl_setuser(c->argv[2], c->argl[2], c->argc - 3, c->argv + 3, c->argl + 3, err,
                    sizeof err) != 0) {
        reply_error(c, err);
        return;
    }
    server_apply_config(); /* `default` may now need a password, or no longer */
    reply_ok(c);
}

static void emit_flag(void *ctx, const char *flag)
{
    reply_bulk_cstr(ctx, flag);
}

static void count_flag(void *ctx, const char *flag)
{
    (void)flag;
    (*(long *)ctx)++;
}

/* A field whose value a buf-filling describer makes. */
static void reply_described(client *c, const char *field, const acl_user *u,
                            void (*describe)(const acl_user *, buf *))
{
    buf b;
    buf_init(&b);
    describe(u, &b);
    reply_bulk_cstr(c, field);
    reply_bulk(c, b.data ? b.data : "", b.len);
    buf_free(&b);
}

static void acl_getuser_cmd(client *c)
{
    const acl_user *u = acl_find(c->argv[2], c->argl[2]);
    if (!u) {
        reply_null(c);
        return;
    }
    reply_map(c, 6);
    long nflags = 0;
    acl_user_flags(u, count_flag, &nflags);
    reply_bulk_cstr(c, "flags");
    reply_array(c, nflags);
    acl_user_flags(u, emit_flag, c);
    reply_bulk_cstr(c, "passwords");
    reply_array(c, acl_user_npasswords(u));
    for (int i = 0; i < acl_user_npasswords(u); i++) {
        char hex[65];
        acl_user_password_hex(u, i, hex);
        reply_bulk_cstr(c, hex);
    }
    reply_described(c, "commands", u, acl_user_commands);
    reply_described(c, "keys", u, acl_user_keys);
    reply_described(c, "channels", u, acl_user_channels);
    reply_bulk_cstr(c, "selectors");
    reply_array(c, 0);
}

/* DELUSER name ...: all names are checked before any is deleted. */
static void acl_deluser_cmd(client *c)
{
    for (int i = 2; i < c->argc; i++) {
        if (c->argl[i] == 7 && memcmp(c->argv[i], "default", 7) == 0) {
            reply_error(c, "The 'default' user cannot be removed");
            return;
        }
    }
    long long n = 0;
    for (int i = 2; i < c->argc; i++)
        n += acl_deluser(c, c->argv[i], c->argl[i]);
    reply_int(c, n);
}

static void acl_list_cmd(client *c)
{
    int n = 0;
    while (acl_nth(n))
        n++;
    reply_array(c, n);
    for (int i = 0; i < n; i++) {
        const acl_user *u = acl_nth(i);
        buf b;
        buf_init(&b);
        buf_printf(&b, "user %s", acl_user_name(u));
        acl_user_describe(u, &b);
        reply_bulk(c, b.data, b.len);
        buf_free(&b);
    }
}

static void acl_users_cmd(client *c)
{
    int n = 0;
    while (acl_nth(n))
        n++;
    reply_array(c, n);
    for (int i = 0; i < n; i++)
        reply_bulk_cstr(c, acl_user_name(acl_nth(i)));
}

static void acl_whoami_cmd(client *c)
{
    reply_bulk_cstr(c, acl_user_name(acl_user_of(c)));
}

static void acl_cat_cmd(client *c)
{
    if (c->argc == 2) {
        int n = 0;
        while (acl_category_name(n))
            n++;
        reply_array(c, n);
        for (int i = 0; i < n; i++)
            reply_bulk_cstr(c, acl_category_name(i));
        return;
    }
    int cat = acl_category_find(c->argv[2], c->argl[2]);
    if (cat < 0) {
        reply_errorf(c, "Unknown category '%.*s'", (int)(c->argl[2] > 128 ? 128 : c->argl[2]),
                     c->argv[2]);
        return;
    }
    size_t handle = reply_deferred(c);
    long n = 0;
    for (int i = 0; i < ncommands; i++) {
        if (acl_in_category(cat, i)) {
            reply_bulk_cstr(c, commands[i].name);
            n++;
        }
    }
    reply_set_array(c, handle, n);
}

static void acl_load_cmd(client *c)
{
    char err[1024];
    if (!acl_file()) {
        reply_error(c, NO_FILE);
        return;
    }
    if (acl_load(c, err, sizeof err) != 0) {
        reply_errorf(c,
                     "%s. WARNING: ACL errors detected, no change to the previously active "
                     "ACL rules was performed",
                     err);
        return;
    }
    server_apply_config();
    reply_ok(c);
}

static void acl_save_cmd(client *c)
{
    char err[1024];
    if (!acl_file()) {
        reply_error(c, NO_FILE);
        return;
    }
    if (acl_save(err, sizeof err) != 0) {
        log_warn("ACL SAVE: %s", err);
        reply_errorf(c, "There was an error trying to save the ACLs: %s", err);
        return;
    }
    reply_ok(c);
}

static void acl_genpass_cmd(client *c)
{
    int64_t bits = 256;
    if (c->argc == 3 && arg_i64(c, 2, &bits))
        return;
    if (bits <= 0 || bits > 4096) {
        reply_error(c, "ACL GENPASS argument must be the number of bits for the output password, "
                       "a positive number up to 4096");
        return;
    }
    unsigned char raw[512];
    size_t chars = (size_t)(bits + 3) / 4, bytes = (chars + 1) / 2;
    if (RAND_bytes(raw, (int)bytes) != 1) {
        reply_error(c, "cannot get random bytes for the password");
        return;
    }
    char hex[1025];
    for (size_t i = 0; i < bytes; i++)
        sprintf(hex + 2 * i, "%02x", raw[i]);
    reply_bulk(c, hex, chars);
}

static void acl_help_cmd(client *c)
{
    static const char *const lines[] = {
        "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CAT [<category>]",
        "    List all commands that belong to <category>, or all command categories",
        "    when no category is specified.",
        "DELUSER <username> [<username> ...]",
        "    Delete a list of users.",
        "GETUSER <username>",
        "    Get the user's details.",
        "GENPASS [<bits>]",
        "    Generate a secure 256-bit user password. The optional `bits` argument can",
        "    be used to specify a different size.",
        "LIST",
        "    Show users details in config file format.",
        "LOAD",
        "    Reload users from the ACL file.",
        "SAVE",
        "    Save the current config to the ACL file.",
        "SETUSER <username> <attribute> [<attribute> ...]",
        "    Create or modify a user with the specified attributes.",
        "USERS",
        "    List all the registered usernames.",
        "WHOAMI",
        "    Return the current connection username.",
        "HELP",
        "    Prints this help.",
    };
    reply_help(c, lines, sizeof lines / sizeof lines[0]);
}

static const struct {
    const char *name;
    void (*fn)(client *c);
    int min_argc, max_argc; /* with ACL and the subcommand */
} subcommands[] = {
    {"setuser", acl_setuser_cmd, 3, -1}, {"getuser", acl_getuser_cmd, 3, 3},
    {"deluser", acl_deluser_cmd, 3, -1}, {"list", acl_list_cmd, 2, 2},
    {"users", acl_users_cmd, 2, 2},      {"whoami", acl_whoami_cmd, 2, 2},
    {"cat", acl_cat_cmd, 2, 3},          {"load", acl_load_cmd, 2, 2},
    {"save", acl_save_cmd, 2, 2},        {"genpass", acl_genpass_cmd, 2, 3},
    {"help", acl_help_cmd, 2, 2},
};

void cmd_acl(client *c)
{
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++) {
        if (!arg_is(c, 1, subcommands[i].name))
            continue;
        if (c->argc < subcommands[i].min_argc ||
            (subcommands[i].max_argc > 0 && c->argc > subcommands[i].max_argc)) {
            reply_errorf(c, "wrong number of arguments for 'acl|%s' command", subcommands[i].name);
        } else {
            subcommands[i].fn(c);
        }
        return;
    }
    reply_errorf(c, "unknown subcommand '%.*s'. Try ACL HELP.",
                 (int)(c->argl[1] > 128 ? 128 : c->argl[1]), c->argv[1]);
}
