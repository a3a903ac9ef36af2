/* docs.c: the COMMAND command, answered from the command table: COUNT, LIST, INFO (the
 * positional layout client libraries parse) and DOCS, whose argument trees are built from
 * each command's syntax string. redis-cli turns those trees into its typing hints. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "query/query_int.h"

static const struct {
    unsigned flag;
    const char *name;
} flag_names[] = {
    {CMD_WRITE, "write"},     {CMD_READONLY, "readonly"}, {CMD_DENYOOM, "denyoom"},
    {CMD_ADMIN, "admin"},     {CMD_FAST, "fast"},         {CMD_NOAUTH, "no_auth"},
    {CMD_LOADING, "loading"}, {CMD_STALE, "stale"},       {CMD_NOTXN, "no_multi"},
};

static void command_info(client *c, const command *cmd)
{
    reply_array(c, 10);
    reply_bulk_cstr(c, cmd->name);
    reply_int(c, cmd->arity);
    int n = 0;
    for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
        n += (cmd->flags & flag_names[i].flag) != 0;
    reply_set(c, n);
    for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
        if (cmd->flags & flag_names[i].flag)
            reply_simple(c, flag_names[i].name);
    reply_int(c, cmd->first_key);
    reply_int(c, cmd->last_key);
    reply_int(c, cmd->key_step);
    /* ACL categories: @read/@write, @fast or @slow, @admin, and the group */
    int cats = 2 + ((cmd->flags & (CMD_WRITE | CMD_READONLY)) != 0) +
               ((cmd->flags & CMD_ADMIN) != 0);
    reply_set(c, cats);
    if (cmd->flags & CMD_WRITE)
        reply_simple(c, "@write");
    else if (cmd->flags & CMD_READONLY)
        reply_simple(c, "@read");
    if (cmd->flags & CMD_ADMIN)
        reply_simple(c, "@admin");
    reply_simple(c, (cmd->flags & CMD_FAST) ? "@fast" : "@slow");
    char cat[40];
    snprintf(cat, sizeof cat, "@%s", cmd->group);
    reply_simple(c, cat);
    reply_array(c, 0); /* tips */
    reply_array(c, 0); /* key specs */
    reply_array(c, 0); /* subcommands */
}

/* --- argument trees from syntax strings --------------------------------------------- */

static int is_token(const char *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (islower((unsigned char)w[i]))
            return 0;
    return n > 0;
}

static const char *type_of(const char *w, size_t n)
{
    static const char *ints[] = {"seconds", "milliseconds", "count", "index", "offset", "start",
                                 "end", "increment", "decrement", "cursor", "protover",
                                 "client-id", "unix-time-seconds", "unix-time-milliseconds"};
    if (n >= 3 && memcmp(w + n - 3, "key", 3) == 0)
        return "key";
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (strlen(ints[i]) == n && memcmp(ints[i], w, n) == 0)
            return "integer";
    return "string";
}

static void lower_bulk(client *c, const char *w, size_t n)
{
    char tmp[64];
    if (n >= sizeof tmp)
        n = sizeof tmp - 1;
    for (size_t i = 0; i < n; i++)
        tmp[i] = (char)tolower((unsigned char)w[i]);
    reply_bulk(c, tmp, n);
}

/* End of the item starting at p: a word, or a bracketed group. */
static const char *item_end(const char *p, const char *end)
{
    if (*p == '[') {
        int depth = 0;
        for (; p < end; p++) {
            depth += (*p == '[') - (*p == ']');
            if (depth == 0)
                return p + 1;
        }
        return end;
    }
    while (p < end && *p != ' ' && *p != '|' && *p != '[' && *p != ']')
        p++;
    return p;
}

/* Splits [p, end) at '|' outside brackets; returns the number of alternatives. */
static int alternatives(const char *p, const char *end, const char **cuts, int max)
{
    int n = 0, depth = 0;
    for (const char *q = p; q < end; q++) {
        depth += (*q == '[') - (*q == ']');
        if (*q == '|' && depth == 0 && n < max)
            cuts[n++] = q;
    }
    return n + 1;
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && *p == ' ')
        p++;
    return p;
}

static long emit_sequence(client *c, const char *p, const char *end, int optional);

/* Is q..e a TOKEN followed by a value word (EX seconds)? Returns the value's start. */
static const char *token_value(const char *q, const char *e, const char *end)
{
    const char *next = skip_space(e, end);
    if (!is_token(q, (size_t)(e - q)) || next >= end || *next == '[' || *next == '.' ||
        is_token(next, (size_t)(item_end(next, end) - next)))
        return NULL;
    return next;
}

/* Skips a "..." after an item; sets *many. */
static const char *skip_dots(const char *p, const char *end, int *many)
{
    *many = p + 3 <= end && memcmp(p, "...", 3) == 0;
    return *many ? skip_space(p + 3, end) : p;
}

/* Items of a sequence, counting "TOKEN value" as one. */
static int count_items(const char *p, const char *end)
{
    int n = 0, many;
    for (const char *q = skip_space(p, end); q < end; n++) {
        const char *e = item_end(q, end);
        if (e == q)
            break;
        const char *v = token_value(q, e, end);
        if (v)
            e = item_end(v, end);
        q = skip_dots(skip_space(e, end), end, &many);
    }
    return n;
}

/* Opens one argument's map of `fields` pairs and emits name and type; the caller emits the
 * rest (token, flags, and the arguments of blocks and oneofs). */
static void arg_head(client *c, long fields, const char *name, size_t nlen, const char *type)
{
    reply_map(c, fields);
    reply_bulk_cstr(c, "name");
    lower_bulk(c, name, nlen);
    reply_bulk_cstr(c, "type");
    reply_bulk_cstr(c, type);
}

static void arg_flags(client *c, int optional, int multiple)
{
    reply_bulk_cstr(c, "flags");
    reply_set(c, optional + multiple);
    if (optional)
        reply_simple(c, "optional");
    if (multiple)
        reply_simple(c, "multiple");
}

/* Emits a group: alternatives become a oneof, several items a block, one item itself. */
static long emit_group(client *c, const char *p, const char *end, int optional, int multiple)
{
    const char *cuts[32];
    int nalt = alternatives(p, end, cuts, 32);
    int flags = optional || multiple;
    if (nalt > 1) {
        arg_head(c, 3 + flags, p, (size_t)(item_end(p, end) - p), "oneof");
        if (flags)
            arg_flags(c, optional, multiple);
        reply_bulk_cstr(c, "arguments");
        size_t h = reply_deferred(c);
        long n = 0;
        const char *a = p;
        for (int i = 0; i < nalt; i++) {
            const char *b = i < nalt - 1 ? cuts[i] : end;
            n += emit_sequence(c, skip_space(a, b), b, -1);
            a = b + 1;
        }
        reply_set_array(c, h, n);
        return 1;
    }
    return emit_sequence(c, p, end, optional + 2 * multiple);
}

/* Emits the items of a sequence. mode: -1 inside a oneof (a multi-item alternative becomes
 * a block), else bit 0 optional and bit 1 multiple apply to a lone item or the block. */
static long emit_sequence(client *c, const char *p, const char *end, int mode)
{
    int items = count_items(p, end);
    int optional = mode > 0 && (mode & 1), multiple = mode > 0 && (mode & 2);
    int block = mode != 0 && items > 1;
    size_t h = 0;
    if (block) {
        arg_head(c, 3 + (optional || multiple), p, (size_t)(item_end(p, end) - p), "block");
        if (optional || multiple)
            arg_flags(c, optional, multiple);
        reply_bulk_cstr(c, "arguments");
        h = reply_deferred(c);
    }
    long n = 0;
    int lone = !block && items == 1;
    for (const char *q = skip_space(p, end); q < end;) {
        const char *e = item_end(q, end);
        if (e == q)
            break;
        int many;
        if (*q == '[') {
            const char *next = skip_dots(skip_space(e, end), end, &many);
            n += emit_group(c, q + 1, e - 1, 1, many);
            q = next;
            continue;
        }
        const char *word = q, *v = token_value(q, e, end);
        const char *name = v ? v : q, *name_end = v ? item_end(v, end) : e;
        int tok = !v && is_token(q, (size_t)(e - q));
        q = skip_dots(skip_space(name_end, end), end, &many);
        int opt = lone && optional, mult = many || (lone && multiple);
        size_t nlen = (size_t)(name_end - name);
        arg_head(c, 2 + (v || tok) + (opt || mult), name, nlen,
                 tok ? "pure-token" : type_of(name, nlen));
        if (v || tok) {
            reply_bulk_cstr(c, "token");
            reply_bulk(c, word, (size_t)(e - word));
        }
        if (opt || mult)
            arg_flags(c, opt, mult);
        n++;
    }
    if (block) {
        reply_set_array(c, h, n);
        return 1;
    }
    return n;
}

static void command_docs(client *c, const command *cmd)
{
    int has_args = cmd->syntax && *cmd->syntax;
    reply_map(c, 4 + has_args);
    reply_bulk_cstr(c, "summary");
    reply_bulk_cstr(c, cmd->summary);
    reply_bulk_cstr(c, "since");
    reply_bulk_cstr(c, cmd->since);
    reply_bulk_cstr(c, "group");
    reply_bulk_cstr(c, cmd->group);
    reply_bulk_cstr(c, "complexity");
    reply_bulk_cstr(c, (cmd->flags & CMD_FAST) ? "O(1)" : "O(N)");
    if (has_args) {
        reply_bulk_cstr(c, "arguments");
        size_t h = reply_deferred(c);
        const char *s = cmd->syntax;
        long n = emit_group(c, s, s + strlen(s), 0, 0);
        reply_set_array(c, h, n);
    }
}

void docs_reply(client *c, const command *cmd)
{
    command_docs(c, cmd);
}

void cmd_command(client *c)
{
    if (c->argc == 1) {
        reply_array(c, ncommands);
        for (int i = 0; i < ncommands; i++)
            command_info(c, &commands[i]);
    } else if (arg_is(c, 1, "COUNT") && c->argc == 2) {
        reply_int(c, ncommands);
    } else if (arg_is(c, 1, "LIST")) {
        reply_array(c, ncommands);
        for (int i = 0; i < ncommands; i++)
            reply_bulk_cstr(c, commands[i].name);
    } else if (arg_is(c, 1, "INFO")) {
        if (c->argc == 2) {
            reply_array(c, ncommands);
            for (int i = 0; i < ncommands; i++)
                command_info(c, &commands[i]);
            return;
        }
        reply_array(c, c->argc - 2);
        for (int i = 2; i < c->argc; i++) {
            const command *cmd = command_lookup(c->argv[i], c->argl[i]);
            cmd ? command_info(c, cmd) : reply_null_array(c);
        }
    } else if (arg_is(c, 1, "DOCS")) {
        if (c->argc == 2) {
            reply_map(c, ncommands);
            for (int i = 0; i < ncommands; i++) {
                reply_bulk_cstr(c, commands[i].name);
                command_docs(c, &commands[i]);
            }
            return;
        }
        size_t h = reply_deferred(c);
        long n = 0;
        for (int i = 2; i < c->argc; i++) {
            const command *cmd = command_lookup(c->argv[i], c->argl[i]);
            if (!cmd)
                continue;
            reply_bulk_cstr(c, cmd->name);
            command_docs(c, cmd);
            n++;
        }
        reply_set_map(c, h, n);
    } else {
        reply_errorf(c, "unknown subcommand or wrong number of arguments for '%.*s'. Try "
                        "COMMAND HELP.", (int)c->argl[1], c->argv[1]);
    }
}
