/* acl.c: a user and its rules (acl.h): parsing each ACL SETUSER rule, the check of a
 * command against the rules, and the ACL LIST text that describes them. A user's commands
 * are a bitmap rebuilt from its rules whenever they change, so a check is one bit test; the
 * rule list itself is kept short and free of rules that change nothing, so ACL LIST shows
 * what Redis would. The table of users, logins and the ACL file are in acl_users.c. */
#include "query/acl.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/err.h"
#include "query/query_int.h"

/* The table's size at compile time, so that a bitmap can be a plain array. */
enum {
#define X(...) +1
    ACL_NCMDS = 0
#include "query/commands.def"
#undef X
};
#define ACL_WORDS ((ACL_NCMDS + 63) / 64)

enum {
    U_ON = 1 << 0,
    U_NOPASS = 1 << 1,
    U_ALLKEYS = 1 << 2,
    U_ALLCHANNELS = 1 << 3,
    U_SANITIZE = 1 << 4,
    U_SKIP_SANITIZE = 1 << 5,
};
enum { KEY_R = 1, KEY_W = 2, KEY_RW = 3 };

typedef struct cmd_rule {
    int allow;
    int cat; /* a category, or -1 for the command at idx */
    int idx;
} cmd_rule;

typedef struct pattern {
    char *p;
    size_t len;
    int rw; /* KEY_*; channels: unused */
} pattern;

struct acl_user {
    char *name;
    int flags;
    int refs;        /* clients pointing at it */
    int listed;      /* still in the table: not freed when the last client lets go */
    int allcommands; /* the rules start from +@all, not -@all */
    cmd_rule *rules;
    int nrules;
    uint64_t allowed[ACL_WORDS];
    int unrestricted; /* every command and every key: checks skipped */
    unsigned char (*pass)[SHA256_DIGEST_LENGTH];
    int npass;
    pattern *keys, *chans;
    int nkeys, nchans;
};

/* ---- categories ---- */

enum {
    CAT_KEYSPACE,
    CAT_READ,
    CAT_WRITE,
    CAT_SET,
    CAT_SORTEDSET,
    CAT_LIST,
    CAT_HASH,
    CAT_STRING,
    CAT_BITMAP,
    CAT_HYPERLOGLOG,
    CAT_GEO,
    CAT_STREAM,
    CAT_PUBSUB,
    CAT_ADMIN,
    CAT_FAST,
    CAT_SLOW,
    CAT_BLOCKING,
    CAT_DANGEROUS,
    CAT_CONNECTION,
    CAT_TRANSACTION,
    CAT_SCRIPTING,
    CAT_FEATURESTORE,
    CAT_VECTOR,
    NCATS
};
/* Redis's categories in ACL CAT's order (those of data types Quiver lacks are empty), then
 * ours. */
static const char *const cat_names[NCATS] = {
    "keyspace",   "read",        "write",     "set",          "sortedset", "list",
    "hash",       "string",      "bitmap",    "hyperloglog",  "geo",       "stream",
    "pubsub",     "admin",       "fast",      "slow",         "blocking",  "dangerous",
    "connection", "transaction", "scripting", "featurestore", "vector",
};

static int name_in(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(name, *list) == 0)
            return 1;
    return 0;
}

static int in_category(int cat, const command *cmd)
{
    static const char *const keyspace_extra[] = {"flushdb", "flushall", "dbsize", NULL};
    static const char *const dangerous_extra[] = {"flushdb", "flushall", "keys",
                                                  "info",    "lastsave", NULL};
    switch (cat) {
    case CAT_KEYSPACE:
        return strcmp(cmd->group, "generic") == 0 || name_in(cmd->name, keyspace_extra);
    case CAT_READ:
        return (cmd->flags & CMD_READONLY) != 0;
    case CAT_WRITE:
        return (cmd->flags & CMD_WRITE) != 0;
    case CAT_HASH:
        return strcmp(cmd->group, "hash") == 0;
    case CAT_STRING:
        return strcmp(cmd->group, "string") == 0;
    case CAT_ADMIN:
        return (cmd->flags & CMD_ADMIN) != 0;
    case CAT_FAST:
        return (cmd->flags & CMD_FAST) != 0;
    case CAT_SLOW:
        return !(cmd->flags & CMD_FAST);
    case CAT_DANGEROUS:
        return (cmd->flags & CMD_ADMIN) || name_in(cmd->name, dangerous_extra);
    case CAT_CONNECTION:
        return strcmp(cmd->group, "connection") == 0 || strcmp(cmd->name, "command") == 0;
    case CAT_TRANSACTION:
        return strcmp(cmd->group, "transactions") == 0;
    case CAT_SCRIPTING:
        return strcmp(cmd->group, "scripting") == 0;
    case CAT_FEATURESTORE:
        return strcmp(cmd->group, "featurestore") == 0;
    case CAT_VECTOR:
        return strcmp(cmd->group, "search") == 0;
    default:
        return 0;
    }
}

const char *acl_category_name(int i)
{
    return i >= 0 && i < NCATS ? cat_names[i] : NULL;
}

int acl_category_find(const char *name, size_t len)
{
    for (int i = 0; i < NCATS; i++)
        if (strlen(cat_names[i]) == len && strncasecmp(cat_names[i], name, len) == 0)
            return i;
    if (len == 6 && strncasecmp(name, "search", 6) == 0)
        return CAT_VECTOR; /* RediSearch's own name for its commands */
    return -1;
}

int acl_in_category(int cat, int idx)
{
    return in_category(cat, &commands[idx]);
}

/* ---- users ---- */

acl_user *acl_user_new(const char *name, size_t len)
{
    acl_user *u = xcalloc(1, sizeof *u);
    u->name = xmemdup(name, len);
    u->listed = 1;
    return u;
}

static void patterns_free(pattern *p, int n)
{
    for (int i = 0; i < n; i++)
        xfree(p[i].p);
    xfree(p);
}

static void rules_clear(acl_user *u)
{
    xfree(u->rules);
    xfree(u->pass);
    patterns_free(u->keys, u->nkeys);
    patterns_free(u->chans, u->nchans);
    u->rules = NULL;
    u->pass = NULL;
    u->keys = u->chans = NULL;
    u->nrules = u->npass = u->nkeys = u->nchans = 0;
}

void acl_user_free(acl_user *u)
{
    if (!u)
        return;
    rules_clear(u);
    xfree(u->name);
    xfree(u);
}

static pattern *patterns_dup(const pattern *p, int n)
{
    pattern *out = n ? xmalloc(sizeof *out * (size_t)n) : NULL;
    for (int i = 0; i < n; i++) {
        out[i] = p[i];
        out[i].p = xmemdup(p[i].p, p[i].len);
    }
    return out;
}

void acl_user_copy_rules(acl_user *dst, const acl_user *src)
{
    rules_clear(dst);
    dst->flags = src->flags;
    dst->allcommands = src->allcommands;
    dst->unrestricted = src->unrestricted;
    memcpy(dst->allowed, src->allowed, sizeof dst->allowed);
    dst->nrules = src->nrules;
    dst->rules = src->nrules
                     ? (cmd_rule *)xmemdup(src->rules, sizeof *src->rules * (size_t)src->nrules)
                     : NULL;
    dst->npass = src->npass;
    dst->pass =
        src->npass ? (void *)xmemdup(src->pass, sizeof *src->pass * (size_t)src->npass) : NULL;
    dst->nkeys = src->nkeys;
    dst->keys = patterns_dup(src->keys, src->nkeys);
    dst->nchans = src->nchans;
    dst->chans = patterns_dup(src->chans, src->nchans);
}

const char *acl_user_name(const acl_user *u)
{
    return u->name;
}

void acl_user_hold(acl_user *u)
{
    u->refs++;
}

void acl_user_release(acl_user *u)
{
    if (--u->refs == 0 && !u->listed)
        acl_user_free(u);
}

void acl_user_unlist(acl_user *u)
{
    u->listed = 0;
    if (u->refs == 0)
        acl_user_free(u);
}

int acl_user_on_nopass(const acl_user *u)
{
    return (u->flags & (U_ON | U_NOPASS)) == (U_ON | U_NOPASS);
}

/* ---- command rules and the bitmap ---- */

static void set_bit(uint64_t *bits, int idx, int on)
{
    if (on)
        bits[idx / 64] |= 1ULL << (idx % 64);
    else
        bits[idx / 64] &= ~(1ULL << (idx % 64));
}

static int get_bit(const uint64_t *bits, int idx)
{
    return (bits[idx / 64] >> (idx % 64)) & 1;
}

static int rule_covers(const cmd_rule *r, int idx)
{
    return r->cat >= 0 ? in_category(r->cat, &commands[idx]) : r->idx == idx;
}

/* The bitmap the rules give, leaving out rule skip (-1: none). */
static void replay(const acl_user *u, int skip, uint64_t *bits)
{
    memset(bits, 0, sizeof(uint64_t) * ACL_WORDS);
    for (int i = 0; i < ncommands; i++) {
        int on = u->allcommands;
        for (int r = 0; r < u->nrules; r++)
            if (r != skip && rule_covers(&u->rules[r], i))
                on = u->rules[r].allow;
        set_bit(bits, i, on);
    }
}

static void remove_rule(acl_user *u, int r)
{
    memmove(&u->rules[r], &u->rules[r + 1], sizeof *u->rules * (size_t)(u->nrules - r - 1));
    u->nrules--;
}

/* Rebuilds the bitmap, then drops each rule (left to right) whose absence changes nothing,
 * so that `+get -get` reads back as `-@all`, as in Redis. */
static void commands_changed(acl_user *u)
{
    replay(u, -1, u->allowed);
    for (int r = 0; r < u->nrules;) {
        uint64_t without[ACL_WORDS];
        replay(u, r, without);
        if (memcmp(without, u->allowed, sizeof without) == 0)
            remove_rule(u, r);
        else
            r++;
    }
    int all = 1;
    for (int i = 0; i < ncommands && all; i++)
        all = get_bit(u->allowed, i);
    u->unrestricted = all && (u->flags & U_ALLKEYS);
}

static void add_rule(acl_user *u, int allow, int cat, int idx)
{
    for (int r = 0; r < u->nrules;) {
        cmd_rule *x = &u->rules[r];
        int same = cat >= 0 ? x->cat == cat : x->cat < 0 && x->idx == idx;
        if (same && x->allow == allow)
            return; /* already there: it keeps its place */
        /* A category overrides earlier rules for its own commands. */
        if (same || (cat >= 0 && x->cat < 0 && in_category(cat, &commands[x->idx])))
            remove_rule(u, r);
        else
            r++;
    }
    u->rules = xrealloc(u->rules, sizeof *u->rules * (size_t)(u->nrules + 1));
    u->rules[u->nrules++] = (cmd_rule){allow, cat, idx};
}

static void set_all_commands(acl_user *u, int allow)
{
    u->allcommands = allow;
    xfree(u->rules);
    u->rules = NULL;
    u->nrules = 0;
}

/* +cmd, -cmd, +@cat, -@cat. */
static const char *apply_command_rule(acl_user *u, const char *r, size_t len)
{
    static const char unknown[] = "Unknown command or category name in ACL";
    int allow = r[0] == '+';
    if (len > 1 && r[1] == '@') {
        if (len == 5 && strncasecmp(r + 2, "all", 3) == 0) {
            set_all_commands(u, allow);
            return NULL;
        }
        int cat = acl_category_find(r + 2, len - 2);
        if (cat < 0)
            return unknown;
        add_rule(u, allow, cat, -1);
        return NULL;
    }
    /* A scan, not command_lookup(): rules are rare, and this way they need no query_init(). */
    for (int i = 0; i < ncommands; i++) {
        if (strlen(commands[i].name) == len - 1 &&
            strncasecmp(commands[i].name, r + 1, len - 1) == 0) {
            add_rule(u, allow, -1, i);
            return NULL;
        }
    }
    return unknown;
}

/* ---- passwords ---- */

static void sha256(const char *p, size_t n, unsigned char out[SHA256_DIGEST_LENGTH])
{
    SHA256((const unsigned char *)p, n, out);
}

static int find_hash(const acl_user *u, const unsigned char *h)
{
    for (int i = 0; i < u->npass; i++)
        if (CRYPTO_memcmp(u->pass[i], h, SHA256_DIGEST_LENGTH) == 0)
            return i;
    return -1;
}

static void add_hash(acl_user *u, const unsigned char *h)
{
    u->flags &= ~U_NOPASS;
    if (find_hash(u, h) >= 0)
        return;
    u->pass = xrealloc(u->pass, sizeof *u->pass * (size_t)(u->npass + 1));
    memcpy(u->pass[u->npass++], h, SHA256_DIGEST_LENGTH);
}

static const char *remove_hash(acl_user *u, const unsigned char *h)
{
    int i = find_hash(u, h);
    if (i < 0)
        return "The password you are trying to remove from the user does not exist";
    memmove(u->pass[i], u->pass[i + 1], sizeof *u->pass * (size_t)(u->npass - i - 1));
    u->npass--;
    return NULL;
}

/* 64 lower-case hex digits into 32 bytes; -1 if not exactly that. */
static int parse_hash(const char *s, size_t len, unsigned char *out)
{
    if (len != 2 * SHA256_DIGEST_LENGTH)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        if (i % 2 == 0)
            out[i / 2] = (unsigned char)(v << 4);
        else
            out[i / 2] |= (unsigned char)v;
    }
    return 0;
}

/* >pass <pass #hash !hash */
static const char *apply_password_rule(acl_user *u, const char *r, size_t len)
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    if (r[0] == '>' || r[0] == '<') {
        sha256(r + 1, len - 1, h);
    } else if (parse_hash(r + 1, len - 1, h) != 0) {
        return "The password hash must be exactly 64 characters and contain only lowercase "
               "hexadecimal characters";
    }
    if (r[0] == '>' || r[0] == '#') {
        add_hash(u, h);
        return NULL;
    }
    return remove_hash(u, h);
}

int acl_user_password_ok(const acl_user *u, const char *pass, size_t plen)
{
    if (!(u->flags & U_ON))
        return 0;
    if (u->flags & U_NOPASS)
        return 1;
    unsigned char h[SHA256_DIGEST_LENGTH];
    sha256(pass, plen, h);
    return find_hash(u, h) >= 0;
}

/* ---- key and channel patterns ---- */

static void add_pattern(pattern **list, int *n, const char *p, size_t len, int rw)
{
    for (int i = 0; i < *n; i++) {
        if ((*list)[i].len == len && memcmp((*list)[i].p, p, len) == 0) {
            (*list)[i].rw |= rw;
            return;
        }
    }
    *list = xrealloc(*list, sizeof **list * (size_t)(*n + 1));
    (*list)[(*n)++] = (pattern){xmemdup(p, len), len, rw};
}

/* Patterns with white space would not survive ACL SAVE's one line per user. */
static int has_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)p[i]))
            return 1;
    return 0;
}

static void reset_patterns(pattern **list, int *n)
{
    patterns_free(*list, *n);
    *list = NULL;
    *n = 0;
}

/* ~pattern and %R~ %W~ %RW~pattern */
static const char *apply_key_rule(acl_user *u, const char *r, size_t len)
{
    int rw = KEY_RW;
    size_t at = 1;
    if (r[0] == '%') {
        rw = 0;
        for (; at < len && r[at] != '~'; at++) {
            char f = r[at] & ~0x20;
            if (f != 'R' && f != 'W')
                return "Syntax error";
            rw |= f == 'R' ? KEY_R : KEY_W;
        }
        if (rw == 0 || at == len)
            return "Syntax error";
        at++;
    }
    if (u->flags & U_ALLKEYS)
        return "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and "
               "does not have any effect. Try 'resetkeys' to start with an empty list of "
               "patterns";
    if (has_space(r + at, len - at))
        return "Syntax error";
    if (rw == KEY_RW && len - at == 1 && r[at] == '*') {
        reset_patterns(&u->keys, &u->nkeys);
        u->flags |= U_ALLKEYS;
        return NULL;
    }
    add_pattern(&u->keys, &u->nkeys, r + at, len - at, rw);
    return NULL;
}

static const char *apply_channel_rule(acl_user *u, const char *r, size_t len)
{
    if (u->flags & U_ALLCHANNELS)
        return "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid "
               "and does not have any effect. Try 'resetchannels' to start with an empty list "
               "of channels";
    if (has_space(r + 1, len - 1))
        return "Syntax error";
    if (len == 2 && r[1] == '*') {
        reset_patterns(&u->chans, &u->nchans);
        u->flags |= U_ALLCHANNELS;
        return NULL;
    }
    add_pattern(&u->chans, &u->nchans, r + 1, len - 1, 0);
    return NULL;
}

int acl_user_key_ok(const acl_user *u, const char *key, size_t klen, int write)
{
    if (u->flags & U_ALLKEYS)
        return 1;
    int need = write ? KEY_W : KEY_R;
    for (int i = 0; i < u->nkeys; i++)
        if ((u->keys[i].rw & need) && glob_match(u->keys[i].p, u->keys[i].len, key, klen, 0))
            return 1;
    return 0;
}

int acl_user_can_run(const acl_user *u, int idx)
{
    return get_bit(u->allowed, idx);
}

int acl_user_check(const acl_user *u, const command *cmd, int argc, const char *const *argv,
                   const size_t *argl)
{
    if (u->unrestricted || (cmd->flags & CMD_NOAUTH))
        return 0;
    if (!acl_user_can_run(u, (int)(cmd - commands)))
        return ACL_DENIED_CMD;
    if (cmd->first_key <= 0 || (u->flags & U_ALLKEYS))
        return 0;
    int last = cmd->last_key < 0 ? argc + cmd->last_key : cmd->last_key;
    int write = (cmd->flags & CMD_WRITE) != 0;
    for (int i = cmd->first_key; i <= last && i < argc; i += cmd->key_step)
        if (!acl_user_key_ok(u, argv[i], argl[i], write))
            return ACL_DENIED_KEY;
    return 0;
}

/* ---- rules ---- */

static int word_is(const char *r, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(r, word, len) == 0;
}

/* The rules that are single words; 0 if r is none of them. */
static int apply_word(acl_user *u, const char *r, size_t len)
{
    if (word_is(r, len, "on"))
        u->flags |= U_ON;
    else if (word_is(r, len, "off"))
        u->flags &= ~U_ON;
    else if (word_is(r, len, "nopass")) {
        u->flags |= U_NOPASS;
        xfree(u->pass);
        u->pass = NULL;
        u->npass = 0;
    } else if (word_is(r, len, "resetpass")) {
        u->flags &= ~U_NOPASS;
        xfree(u->pass);
        u->pass = NULL;
        u->npass = 0;
    } else if (word_is(r, len, "allkeys")) {
        reset_patterns(&u->keys, &u->nkeys);
        u->flags |= U_ALLKEYS;
    } else if (word_is(r, len, "resetkeys")) {
        reset_patterns(&u->keys, &u->nkeys);
        u->flags &= ~U_ALLKEYS;
    } else if (word_is(r, len, "allchannels")) {
        reset_patterns(&u->chans, &u->nchans);
        u->flags |= U_ALLCHANNELS;
    } else if (word_is(r, len, "resetchannels")) {
        reset_patterns(&u->chans, &u->nchans);
        u->flags &= ~U_ALLCHANNELS;
    } else if (word_is(r, len, "allcommands"))
        set_all_commands(u, 1);
    else if (word_is(r, len, "nocommands"))
        set_all_commands(u, 0);
    else if (word_is(r, len, "sanitize-payload"))
        u->flags = (u->flags & ~U_SKIP_SANITIZE) | U_SANITIZE;
    else if (word_is(r, len, "skip-sanitize-payload"))
        u->flags = (u->flags & ~U_SANITIZE) | U_SKIP_SANITIZE;
    else if (word_is(r, len, "reset")) {
        rules_clear(u);
        u->flags = U_SANITIZE;
        set_all_commands(u, 0);
    } else
        return 0;
    return 1;
}

static const char *apply(acl_user *u, const char *r, size_t len)
{
    if (len == 0 || apply_word(u, r, len))
        return NULL;
    switch (r[0]) {
    case '>':
    case '<':
    case '#':
    case '!':
        return apply_password_rule(u, r, len);
    case '~':
    case '%':
        return apply_key_rule(u, r, len);
    case '&':
        return apply_channel_rule(u, r, len);
    case '+':
    case '-':
        return apply_command_rule(u, r, len);
    case '(':
        return "Selectors are not supported";
    default:
        return "Syntax error";
    }
}

int acl_user_apply(acl_user *u, const char *rule, size_t len, char *err, size_t errlen)
{
    const char *why = apply(u, rule, len);
    commands_changed(u); /* allkeys and command rules both decide unrestricted */
    if (!why)
        return 0;
    snprintf(err, errlen, "%s", why);
    return ERR_INVAL;
}

/* ---- describing a user ---- */

static const struct {
    int flag;
    const char *name;
} flag_names[] = {
    {U_NOPASS, "nopass"},
    {U_SKIP_SANITIZE, "skip-sanitize-payload"},
    {U_SANITIZE, "sanitize-payload"},
};

void acl_user_flags(const acl_user *u, void (*emit)(void *ctx, const char *flag), void *ctx)
{
    emit(ctx, u->flags & U_ON ? "on" : "off");
    for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
        if (u->flags & flag_names[i].flag)
            emit(ctx, flag_names[i].name);
}

int acl_user_npasswords(const acl_user *u)
{
    return u->npass;
}

void acl_user_password_hex(const acl_user *u, int i, char out[65])
{
    for (int j = 0; j < SHA256_DIGEST_LENGTH; j++)
        sprintf(out + 2 * j, "%02x", u->pass[i][j]);
}

static void space(buf *out)
{
    if (out->len)
        buf_appendc(out, ' ');
}

void acl_user_commands(const acl_user *u, buf *out)
{
    buf_printf(out, "%s", u->allcommands ? "+@all" : "-@all");
    for (int r = 0; r < u->nrules; r++) {
        const cmd_rule *x = &u->rules[r];
        buf_printf(out, " %c%s%s", x->allow ? '+' : '-', x->cat >= 0 ? "@" : "",
                   x->cat >= 0 ? cat_names[x->cat] : commands[x->idx].name);
    }
}

void acl_user_keys(const acl_user *u, buf *out)
{
    if (u->flags & U_ALLKEYS) {
        buf_printf(out, "~*");
        return;
    }
    for (int i = 0; i < u->nkeys; i++) {
        static const char *const prefix[] = {"", "%R~", "%W~", "~"};
        if (i)
            buf_appendc(out, ' ');
        buf_printf(out, "%s", prefix[u->keys[i].rw]);
        buf_append(out, u->keys[i].p, u->keys[i].len);
    }
}

void acl_user_channels(const acl_user *u, buf *out)
{
    if (u->flags & U_ALLCHANNELS) {
        buf_printf(out, "&*");
        return;
    }
    for (int i = 0; i < u->nchans; i++) {
        buf_printf(out, i ? " &" : "&");
        buf_append(out, u->chans[i].p, u->chans[i].len);
    }
}

static void describe_flag(void *ctx, const char *flag)
{
    buf *out = ctx;
    space(out);
    buf_printf(out, "%s", flag);
}

void acl_user_describe(const acl_user *u, buf *out)
{
    acl_user_flags(u, describe_flag, out);
    for (int i = 0; i < u->npass; i++) {
        char hex[65];
        acl_user_password_hex(u, i, hex);
        buf_printf(out, " #%s", hex);
    }
    if ((u->flags & U_ALLKEYS) || u->nkeys) {
        space(out);
        acl_user_keys(u, out);
    }
    space(out);
    if (!(u->flags & U_ALLCHANNELS))
        buf_printf(out, "resetchannels%s", u->nchans ? " " : "");
    acl_user_channels(u, out);
    space(out);
    acl_user_commands(u, out);
}
