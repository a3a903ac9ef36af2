/* acl.h: access control, as Redis 7 does it. Users with passwords (kept as SHA-256), an
 * on/off switch, the commands they may run (a bitmap indexed by command table position,
 * built from +cmd/-cmd/+@category/-@category rules) and the key patterns they may touch
 * (~pattern, %R~ / %W~ for read-only / write-only access). The `default` user always exists;
 * its password follows requirepass unless an ACL file defines it. acl.c holds one user's
 * rules; acl_users.c the table, logins and the file.
 *
 * RULES are Redis's ACL SETUSER words: on off nopass resetpass >pass <pass #hash !hash
 * ~pattern %R~pattern %W~pattern %RW~pattern allkeys resetkeys &pattern allchannels
 * resetchannels +cmd -cmd +@cat -@cat allcommands nocommands sanitize-payload
 * skip-sanitize-payload reset. Channels are kept and shown but check nothing: there is no
 * pub/sub. Selectors and subcommand rules (+config|get) are refused.
 *
 * THE ACL FILE (aclfile) holds one `user <name> <rule> ...` line per user, `#` comments and
 * blank lines allowed; ACL SAVE writes the ACL LIST lines. Loading is all or nothing: a bad
 * line leaves every user as it was and says "file:line: reason".
 *
 * LIFETIMES. A client points at its user (c->user; NULL means `default`) and holds a
 * reference, so a user deleted while one of its clients is still executing stays valid until
 * that client lets go (acl_client_release). SETUSER and LOAD change users in place, so their
 * clients see new rules at once; DELUSER and a LOAD that drops a user close its clients.
 *
 * Threading: event-loop thread only. */
#ifndef QUIVER_ACL_H
#define QUIVER_ACL_H

#include <stddef.h>

#include "core/util.h"
#include "wire/wire.h"

typedef struct acl_user acl_user;
struct command;

/* Builds the default user and, when path is set, loads the ACL file; then applies
 * requirepass to `default` unless the file defined it. ERR_INVAL with "file:line: reason" in
 * err (nothing loaded), ERR_IO when the file cannot be read. */
int acl_init(const char *path, const char *requirepass, char *err, size_t errlen);
void acl_shutdown(void);
/* Gives `default` the password pass (nopass when empty) if it differs from the last one
 * applied and the ACL file does not own `default`. For CONFIG SET requirepass. */
void acl_set_requirepass(const char *pass);
/* Whether new connections must authenticate (the default user has a password or is off). */
int acl_default_needs_auth(void);

/* Checks a login; on success c is authenticated as that user (user NULL: `default`).
 * Returns 0, or -1 after replying WRONGPASS or the "no password configured" error. */
int acl_auth(client *c, const char *user, size_t ulen, const char *pass, size_t plen);
/* Logs c out to `default` (RESET): authenticated only if `default` needs no password. */
void acl_client_reset(client *c);
/* Drops c's reference to its user (the client is going away). */
void acl_client_release(client *c);
/* NULL when c's user may run cmd with these arguments, else the NOPERM message (static
 * storage). Cheap for an unrestricted user (all commands, all keys): one test. */
const char *acl_denied(const client *c, const struct command *cmd);
/* The same check for a command EXEC is about to run, with Redis's message for rules that
 * changed after it was queued. */
const char *acl_denied_in_exec(const client *c, const struct command *cmd);

/* ---- users and rules, without clients (unit-testable) ---- */

/* A new user as ACL SETUSER creates it: off, no passwords, no keys, no commands. */
acl_user *acl_user_new(const char *name, size_t len);
void acl_user_free(acl_user *u);
/* Applies one rule; 0 or ERR_INVAL with Redis's reason ("Syntax error", "Unknown command or
 * category name in ACL", ...) in err. On error u may be half changed: apply to a copy. */
int acl_user_apply(acl_user *u, const char *rule, size_t len, char *err, size_t errlen);
/* Deep copy of src's rules into dst (names kept). */
void acl_user_copy_rules(acl_user *dst, const acl_user *src);
/* The rules that rebuild u, as ACL LIST shows them after "user <name> ". */
void acl_user_describe(const acl_user *u, buf *out);
const char *acl_user_name(const acl_user *u);
/* 1 if u is on and pass is one of its passwords (or it is nopass). */
int acl_user_password_ok(const acl_user *u, const char *pass, size_t plen);
/* 1 if u may run the command at table position idx. */
int acl_user_can_run(const acl_user *u, int idx);
/* 0 when u may run cmd with these arguments (keys at the table's key positions), else
 * ACL_DENIED_CMD or ACL_DENIED_KEY. One test for an unrestricted user. */
enum { ACL_DENIED_CMD = 1, ACL_DENIED_KEY = 2 };
int acl_user_check(const acl_user *u, const struct command *cmd, int argc, const char *const *argv,
                   const size_t *argl);
/* 1 if u is on and nopass: anyone may log in as u without a password. */
int acl_user_on_nopass(const acl_user *u);
/* Client references: a user taken out of the table (unlist) is freed when the last client
 * holding it lets go. acl_user_new returns a listed user with no references. */
void acl_user_hold(acl_user *u);
void acl_user_release(acl_user *u);
void acl_user_unlist(acl_user *u);
/* 1 if u may read (write = 0) or write (write = 1) key. */
int acl_user_key_ok(const acl_user *u, const char *key, size_t klen, int write);

/* ---- the user table, for the ACL command (query/cmd_acl.c) ---- */

acl_user *acl_find(const char *name, size_t len);
acl_user *acl_user_of(const client *c);
/* Users in name order: the i-th, NULL past the end. */
acl_user *acl_nth(int i);
/* Applies rules to user name (creating it), all or nothing; 0 or ERR_INVAL with
 * "Error in ACL SETUSER modifier '...': reason" in err. */
int acl_setuser(const char *name, size_t nlen, int nrules, const char *const *rules,
                const size_t *lens, char *err, size_t errlen);
/* Deletes a user and closes its clients (self: after the reply); 1 if it existed. */
int acl_deluser(client *self, const char *name, size_t len);
/* Reloads the ACL file all or nothing; ACL SAVE writes it (tmp file, fsync, rename). */
int acl_load(client *self, char *err, size_t errlen);
/* The aclfile path, or NULL when none is set. */
const char *acl_file(void);
int acl_save(char *err, size_t errlen);
/* Category names (NULL past the end) and membership. */
const char *acl_category_name(int i);
int acl_category_find(const char *name, size_t len);
int acl_in_category(int cat, int idx);
/* Fields of ACL GETUSER. */
void acl_user_flags(const acl_user *u, void (*emit)(void *ctx, const char *flag), void *ctx);
int acl_user_npasswords(const acl_user *u);
void acl_user_password_hex(const acl_user *u, int i, char out[65]);
void acl_user_commands(const acl_user *u, buf *out);
void acl_user_keys(const acl_user *u, buf *out);
void acl_user_channels(const acl_user *u, buf *out);

#endif
