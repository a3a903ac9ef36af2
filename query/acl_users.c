/* acl_users.c: the table of users (acl.h): `default` and requirepass, logins and which
 * user each client is, the check the dispatcher makes before a command runs, deleting
 * users with their clients, and the ACL file, loaded all or nothing and saved atomically.
 * The rules of one user are acl.c's. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/err.h"
#include "query/acl.h"
#include "query/ft.h"
#include "query/query_int.h"

static struct {
    acl_user **users; /* sorted by name */
    int n;
    acl_user *dflt;
    char *file;           /* aclfile, or NULL */
    int file_has_default; /* the file defines `default`: requirepass does not touch it */
    char *requirepass;    /* as configured */
} acl;

/* ---- the table ---- */

static int name_cmp(const acl_user *u, const char *name, size_t len)
{
    const char *un = acl_user_name(u);
    size_t ul = strlen(un);
    int c = memcmp(un, name, ul < len ? ul : len);
    return c ? c : (ul > len) - (ul < len);
}

/* Position of name in the table, or where it would go (*found = 0). */
static int table_pos(acl_user **users, int n, const char *name, size_t len, int *found)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        int c = name_cmp(users[mid], name, len);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static void table_insert(acl_user ***users, int *n, acl_user *u)
{
    int found;
    const char *name = acl_user_name(u);
    int at = table_pos(*users, *n, name, strlen(name), &found);
    *users = xrealloc(*users, sizeof **users * (size_t)(*n + 1));
    memmove(&(*users)[at + 1], &(*users)[at], sizeof **users * (size_t)(*n - at));
    (*users)[at] = u;
    (*n)++;
}

acl_user *acl_find(const char *name, size_t len)
{
    int found;
    int at = table_pos(acl.users, acl.n, name, len, &found);
    return found ? acl.users[at] : NULL;
}

acl_user *acl_nth(int i)
{
    return i >= 0 && i < acl.n ? acl.users[i] : NULL;
}

acl_user *acl_user_of(const client *c)
{
    return c->user ? c->user : acl.dflt;
}

/* `default` as Redis makes it: everything allowed, no password (apply_requirepass gives
 * it one). */
static void make_default(acl_user *u)
{
    static const char *const rules[] = {"on", "nopass", "~*", "&*", "+@all"};
    acl_user *fresh = acl_user_new("default", 7); /* no sanitize flag, unlike `reset` */
    char err[128];
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        acl_user_apply(fresh, rules[i], strlen(rules[i]), err, sizeof err);
    acl_user_copy_rules(u, fresh);
    acl_user_free(fresh);
}

/* Gives `default` the configured requirepass (nopass when empty). */
static void apply_requirepass(void)
{
    char err[128];
    acl_user_apply(acl.dflt, "resetpass", 9, err, sizeof err);
    if (!*acl.requirepass) {
        acl_user_apply(acl.dflt, "nopass", 6, err, sizeof err);
        return;
    }
    buf rule;
    buf_init(&rule);
    buf_printf(&rule, ">%s", acl.requirepass);
    acl_user_apply(acl.dflt, rule.data, rule.len, err, sizeof err);
    buf_free(&rule);
}

void acl_set_requirepass(const char *pass)
{
    pass = pass ? pass : "";
    if (strcmp(pass, acl.requirepass) == 0)
        return; /* CONFIG SET of another option: keep what ACL SETUSER default did */
    xfree(acl.requirepass);
    acl.requirepass = xstrdup(pass);
    if (!acl.file_has_default)
        apply_requirepass();
}

int acl_default_needs_auth(void)
{
    return !acl_user_on_nopass(acl.dflt);
}

/* ---- clients ---- */

static void client_set_user(client *c, acl_user *u)
{
    acl_user *old = c->user;
    c->user = u == acl.dflt ? NULL : u;
    if (c->user)
        acl_user_hold(c->user);
    if (old)
        acl_user_release(old);
}

void acl_client_release(client *c)
{
    if (c->user)
        acl_user_release(c->user);
    c->user = NULL;
}

void acl_client_reset(client *c)
{
    client_set_user(c, acl.dflt);
    c->authenticated = !acl_default_needs_auth();
}

int acl_auth(client *c, const char *user, size_t ulen, const char *pass, size_t plen)
{
    acl_user *u = user ? acl_find(user, ulen) : acl.dflt;
    if (!user && acl_user_on_nopass(acl.dflt)) {
        reply_error(c, "ERR AUTH <password> called without any password configured for the "
                       "default user. Are you sure your configuration is correct?");
        return -1;
    }
    if (!u || !acl_user_password_ok(u, pass, plen)) {
        reply_error(c, "WRONGPASS invalid username-password pair or user is disabled.");
        return -1;
    }
    client_set_user(c, u);
    c->authenticated = 1;
    return 0;
}

static int check(const client *c, const command *cmd)
{
    return acl_user_check(c->user ? c->user : acl.dflt, cmd, c->argc, c->argv, c->argl);
}

const char *acl_denied(const client *c, const command *cmd)
{
    int why = check(c, cmd);
    if (!why)
        return NULL;
    if (why == ACL_DENIED_KEY)
        return "NOPERM this user has no permissions to access one of the keys used as "
               "arguments";
    static char msg[128];
    snprintf(msg, sizeof msg, "NOPERM this user has no permissions to run the '%s' command",
             cmd->name);
    return msg;
}

const char *acl_denied_in_exec(const client *c, const command *cmd)
{
    int why = check(c, cmd);
    if (!why)
        return NULL;
    return why == ACL_DENIED_KEY
               ? "NOPERM ACLs rules changed between the moment the transaction was "
                 "accumulated and the EXEC call. This command is no longer allowed for the "
                 "following reason: no permission to touch the specified keys"
               : "NOPERM ACLs rules changed between the moment the transaction was "
                 "accumulated and the EXEC call. This command is no longer allowed for the "
                 "following reason: no permission to execute the command or subcommand";
}

/* Closes u's clients (self after its reply) and lets u go once they have. */
static void drop_user(client *self, acl_user *u)
{
    for (client *x = net_clients(); x; x = x->next) {
        if (x->user != u)
            continue;
        if (x == self)
            client_close_after_reply(x);
        else
            client_close(x);
    }
    acl_user_unlist(u);
}

int acl_deluser(client *self, const char *name, size_t len)
{
    int found;
    int at = table_pos(acl.users, acl.n, name, len, &found);
    if (!found)
        return 0;
    acl_user *u = acl.users[at];
    memmove(&acl.users[at], &acl.users[at + 1], sizeof *acl.users * (size_t)(acl.n - at - 1));
    acl.n--;
    drop_user(self, u);
    return 1;
}

int acl_setuser(const char *name, size_t nlen, int nrules, const char *const *rules,
                const size_t *lens, char *err, size_t errlen)
{
    acl_user *u = acl_find(name, nlen);
    acl_user *tmp = acl_user_new(name, nlen);
    if (u)
        acl_user_copy_rules(tmp, u);
    for (int i = 0; i < nrules; i++) {
        char why[256];
        if (acl_user_apply(tmp, rules[i], lens[i], why, sizeof why) != 0) {
            snprintf(err, errlen, "Error in ACL SETUSER modifier '%.*s': %s",
                     (int)(lens[i] > 128 ? 128 : lens[i]), rules[i], why);
            acl_user_free(tmp);
            return ERR_INVAL;
        }
    }
    if (u) {
        acl_user_copy_rules(u, tmp); /* in place: its clients see the new rules at once */
        acl_user_free(tmp);
    } else {
        table_insert(&acl.users, &acl.n, tmp);
    }
    return 0;
}

/* ---- the ACL file ---- */

static void free_users(acl_user **users, int n)
{
    for (int i = 0; i < n; i++)
        acl_user_free(users[i]);
    xfree(users);
}

/* One line of the file into *users; 0, or ERR_INVAL with the reason in why. */
static int parse_line(char *line, acl_user ***users, int *n, char *why, size_t whylen)
{
    char **w;
    int nw = config_split_words(line, &w);
    int rc = 0;
    if (nw < 0) {
        snprintf(why, whylen, "unbalanced quotes");
        return ERR_INVAL;
    }
    if (nw == 0 || w[0][0] == '#')
        goto done;
    int found;
    if (nw < 2 || strcmp(w[0], "user") != 0) {
        snprintf(why, whylen, "should start with user keyword followed by the username");
        rc = ERR_INVAL;
    } else if (table_pos(*users, *n, w[1], strlen(w[1]), &found), found) {
        snprintf(why, whylen, "Duplicate user '%s' found", w[1]);
        rc = ERR_INVAL;
    } else {
        acl_user *u = acl_user_new(w[1], strlen(w[1]));
        for (int i = 2; i < nw && !rc; i++) {
            char reason[256];
            rc = acl_user_apply(u, w[i], strlen(w[i]), reason, sizeof reason);
            if (rc)
                snprintf(why, whylen, "%s in '%s'", reason, w[i]);
        }
        if (rc)
            acl_user_free(u);
        else
            table_insert(users, n, u);
    }
done:
    config_free_words(w, nw);
    return rc;
}

/* Reads the whole file into a sorted list of users, or says which line is wrong. */
static int parse_file(const char *path, acl_user ***users, int *n, char *err, size_t errlen)
{
    buf b;
    buf_init(&b);
    int rc = ft_file_read(path, &b);
    if (rc) {
        snprintf(err, errlen, "cannot read the ACL file %s: %s", path,
                 rc == ERR_NOTFOUND ? "no such file" : strerror(errno));
        buf_free(&b);
        return rc;
    }
    buf_appendc(&b, '\0');
    *users = NULL;
    *n = 0;
    int lineno = 0;
    for (char *p = b.data, *nl; !rc && p && *p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        lineno++;
        char why[512];
        if ((rc = parse_line(p, users, n, why, sizeof why)) != 0)
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
    }
    buf_free(&b);
    if (rc) {
        free_users(*users, *n);
        *users = NULL;
        *n = 0;
    }
    return rc;
}

/* Makes the table what the file says: users kept by name are changed in place, users gone
 * are dropped with their clients, `default` goes back to its start state unless defined. */
static void adopt(client *self, acl_user **users, int n)
{
    for (int i = 0; i < acl.n;) {
        acl_user *u = acl.users[i];
        const char *name = acl_user_name(u);
        int found;
        table_pos(users, n, name, strlen(name), &found);
        if (u == acl.dflt || found) {
            i++;
            continue;
        }
        memmove(&acl.users[i], &acl.users[i + 1], sizeof *acl.users * (size_t)(acl.n - i - 1));
        acl.n--;
        drop_user(self, u);
    }
    acl.file_has_default = 0;
    for (int i = 0; i < n; i++) {
        const char *name = acl_user_name(users[i]);
        acl_user *old = acl_find(name, strlen(name));
        if (old == acl.dflt)
            acl.file_has_default = 1;
        if (old) {
            acl_user_copy_rules(old, users[i]);
            acl_user_free(users[i]);
        } else {
            table_insert(&acl.users, &acl.n, users[i]);
        }
    }
    xfree(users);
    if (!acl.file_has_default) {
        make_default(acl.dflt);
        apply_requirepass();
    }
}

int acl_load(client *self, char *err, size_t errlen)
{
    acl_user **users;
    int n;
    int rc = parse_file(acl.file, &users, &n, err, errlen);
    if (rc == 0)
        adopt(self, users, n);
    return rc;
}

int acl_save(char *err, size_t errlen)
{
    buf b;
    buf_init(&b);
    for (int i = 0; i < acl.n; i++) {
        buf_printf(&b, "user %s", acl_user_name(acl.users[i]));
        acl_user_describe(acl.users[i], &b);
        buf_appendc(&b, '\n');
    }
    int rc = ft_file_write(acl.file, b.data ? b.data : "", b.len, err, errlen);
    buf_free(&b);
    return rc;
}

const char *acl_file(void)
{
    return acl.file;
}

int acl_init(const char *path, const char *requirepass, char *err, size_t errlen)
{
    acl.dflt = acl_user_new("default", 7);
    make_default(acl.dflt);
    table_insert(&acl.users, &acl.n, acl.dflt);
    acl.requirepass = xstrdup(requirepass ? requirepass : "");
    acl.file = path && *path ? xstrdup(path) : NULL;
    if (acl.file)
        return acl_load(NULL, err, errlen);
    apply_requirepass();
    return 0;
}

void acl_shutdown(void)
{
    for (int i = 0; i < acl.n; i++)
        acl_user_unlist(acl.users[i]);
    xfree(acl.users);
    xfree(acl.file);
    xfree(acl.requirepass);
    memset(&acl, 0, sizeof acl);
}
