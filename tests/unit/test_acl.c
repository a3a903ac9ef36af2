/* test_acl.c: unit tests for query/acl.h's users and rules without a server: each rule's
 * effect on passwords, commands, key patterns and flags, the ACL LIST text that describes
 * the result (checked against what Redis 7.0 prints for the same rules), Redis's reasons
 * for bad rules, the NOPERM checks of commands and keys, and that rules applied through a
 * copy leave the user unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/err.h"
#include "core/util.h"
#include "query/acl.h"
#include "query/query_int.h"

/* A user built from space-separated rules; fails the test on a bad rule. */
static acl_user *user_with(const char *rules)
{
    acl_user *u = acl_user_new("t", 1);
    char err[256];
    assert_int_equal(acl_user_apply(u, "reset", 5, err, sizeof err), 0);
    for (const char *p = rules; *p;) {
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (acl_user_apply(u, p, n, err, sizeof err) != 0)
            fail_msg("rule '%.*s': %s", (int)n, p, err);
        p += n + (end != NULL);
    }
    return u;
}

static void assert_describes(const char *rules, const char *want)
{
    acl_user *u = user_with(rules);
    buf b;
    buf_init(&b);
    acl_user_describe(u, &b);
    buf_appendc(&b, '\0');
    assert_string_equal(b.data, want);
    buf_free(&b);
    acl_user_free(u);
}

static int idx(const char *name)
{
    for (int i = 0; i < ncommands; i++)
        if (strcmp(commands[i].name, name) == 0)
            return i;
    fail_msg("no command %s", name);
    return -1;
}

static void test_describe_like_redis(void **state)
{
    (void)state;
    /* left: rules after `reset`; right: Redis 7.0.15's ACL LIST text for them */
    static const char *const cases[][2] = {
        {"", "off sanitize-payload resetchannels -@all"},
        {"+@all -get", "off sanitize-payload resetchannels +@all -get"},
        {"allcommands -get +get", "off sanitize-payload resetchannels +@all"},
        {"nocommands +get +get", "off sanitize-payload resetchannels -@all +get"},
        {"+get -get", "off sanitize-payload resetchannels -@all"},
        {"+@hash +@hash -@hash", "off sanitize-payload resetchannels -@all"},
        {"+GET", "off sanitize-payload resetchannels -@all +get"},
        {"+@all +get", "off sanitize-payload resetchannels +@all"},
        {"+get +@read", "off sanitize-payload resetchannels -@all +@read"},
        {"+@read -get +get", "off sanitize-payload resetchannels -@all +@read"},
        {"+@all -@write +set", "off sanitize-payload resetchannels +@all -@write +set"},
        {"-@all +@read -@read +get", "off sanitize-payload resetchannels -@all +get"},
        {"on nopass", "on nopass sanitize-payload resetchannels -@all"},
        {"off >a >b <a", "off sanitize-payload "
                         "#3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d "
                         "resetchannels -@all"},
        {">x nopass", "off nopass sanitize-payload resetchannels -@all"},
        {"resetkeys ~x", "off sanitize-payload ~x resetchannels -@all"},
        {"%R~a %W~a %RW~b", "off sanitize-payload ~a ~b resetchannels -@all"},
        {"%R~ro:* ~app:*", "off sanitize-payload %R~ro:* ~app:* resetchannels -@all"},
        {"~a ~b allkeys", "off sanitize-payload ~* resetchannels -@all"},
        {"&foo &bar", "off sanitize-payload resetchannels &foo &bar -@all"},
        {"&foo allchannels", "off sanitize-payload &* -@all"},
        {"on nopass ~* &* +@all", "on nopass sanitize-payload ~* &* +@all"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_describes(cases[i][0], cases[i][1]);
}

static void assert_bad(const char *rule, const char *why)
{
    acl_user *u = user_with("on ~* +@all");
    char err[256];
    assert_int_equal(acl_user_apply(u, rule, strlen(rule), err, sizeof err), ERR_INVAL);
    assert_string_equal(err, why);
    acl_user_free(u);
}

static void test_bad_rules(void **state)
{
    (void)state;
    assert_bad("foo", "Syntax error");
    assert_bad("%X~a", "Syntax error");
    assert_bad("%Ra", "Syntax error");
    assert_bad("+@nosuch", "Unknown command or category name in ACL");
    assert_bad("+nosuchcmd", "Unknown command or category name in ACL");
    assert_bad("#abc", "The password hash must be exactly 64 characters and contain only "
                       "lowercase hexadecimal characters");
    assert_bad("<nope", "The password you are trying to remove from the user does not exist");
    assert_bad("~c", "Adding a pattern after the * pattern (or the 'allkeys' flag) is not "
                     "valid and does not have any effect. Try 'resetkeys' to start with an "
                     "empty list of patterns");
}

static void test_passwords(void **state)
{
    (void)state;
    acl_user *u =
        user_with("on >secret #2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
    assert_true(acl_user_password_ok(u, "secret", 6));
    assert_true(acl_user_password_ok(u, "x", 1)); /* the hash is SHA-256("x") */
    assert_false(acl_user_password_ok(u, "secreT", 6));
    char err[64];
    assert_int_equal(acl_user_apply(u, "<secret", 7, err, sizeof err), 0);
    assert_false(acl_user_password_ok(u, "secret", 6));
    assert_int_equal(acl_user_apply(u, "off", 3, err, sizeof err), 0);
    assert_false(acl_user_password_ok(u, "x", 1)); /* disabled users cannot log in */
    assert_int_equal(acl_user_apply(u, "on", 2, err, sizeof err), 0);
    assert_int_equal(acl_user_apply(u, "nopass", 6, err, sizeof err), 0);
    assert_true(acl_user_password_ok(u, "anything", 8));
    assert_int_equal(acl_user_apply(u, "resetpass", 9, err, sizeof err), 0);
    assert_false(acl_user_password_ok(u, "anything", 8));
    assert_int_equal(acl_user_npasswords(u), 0);
    acl_user_free(u);
}

static void test_commands_and_categories(void **state)
{
    (void)state;
    acl_user *u = user_with("+@read -hget +set");
    assert_true(acl_user_can_run(u, idx("get")));
    assert_true(acl_user_can_run(u, idx("hgetall")));
    assert_false(acl_user_can_run(u, idx("hget")));
    assert_true(acl_user_can_run(u, idx("set")));
    assert_false(acl_user_can_run(u, idx("del")));
    acl_user_free(u);

    u = user_with("+@featurestore");
    assert_true(acl_user_can_run(u, idx("fs.get")));
    assert_true(acl_user_can_run(u, idx("fs.push")));
    assert_false(acl_user_can_run(u, idx("set")));
    assert_false(acl_user_can_run(u, idx("ft.search")));
    acl_user_free(u);

    u = user_with("+@search"); /* RediSearch's name for @vector */
    assert_true(acl_user_can_run(u, idx("ft.search")));
    assert_false(acl_user_can_run(u, idx("fs.push")));
    acl_user_free(u);

    u = user_with("+@all -@dangerous");
    assert_false(acl_user_can_run(u, idx("flushall")));
    assert_false(acl_user_can_run(u, idx("acl")));
    assert_true(acl_user_can_run(u, idx("get")));
    acl_user_free(u);
}

static void test_key_patterns(void **state)
{
    (void)state;
    acl_user *u = user_with("~app:* %R~ro:* %W~wo:*");
    assert_true(acl_user_key_ok(u, "app:1", 5, 0));
    assert_true(acl_user_key_ok(u, "app:1", 5, 1));
    assert_false(acl_user_key_ok(u, "other:1", 7, 0));
    assert_true(acl_user_key_ok(u, "ro:1", 4, 0));
    assert_false(acl_user_key_ok(u, "ro:1", 4, 1));
    assert_true(acl_user_key_ok(u, "wo:1", 4, 1));
    assert_false(acl_user_key_ok(u, "wo:1", 4, 0));
    acl_user_free(u);

    u = user_with("allkeys");
    assert_true(acl_user_key_ok(u, "anything", 8, 1));
    acl_user_free(u);
    u = user_with("~a allkeys resetkeys");
    assert_false(acl_user_key_ok(u, "a", 1, 0));
    acl_user_free(u);
}

static int check(const acl_user *u, int argc, const char *const *argv)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return acl_user_check(u, &commands[idx(argv[0])], argc, argv, lens);
}

static void test_checks(void **state)
{
    (void)state;
    acl_user *u = user_with("~app:* +get +mset");
    assert_int_equal(0, check(u, 2, (const char *[]){"get", "app:1"}));
    assert_int_equal(check(u, 2, (const char *[]){"get", "other:1"}), ACL_DENIED_KEY);
    assert_int_equal(check(u, 3, (const char *[]){"set", "app:1", "v"}), ACL_DENIED_CMD);
    assert_int_equal(0, check(u, 5, (const char *[]){"mset", "app:1", "a", "app:2", "b"}));
    assert_int_equal(check(u, 5, (const char *[]){"mset", "app:1", "a", "x", "b"}), ACL_DENIED_KEY);
    /* a value that looks like a forbidden key is not a key (key step 2) */
    assert_int_equal(0, check(u, 5, (const char *[]){"mset", "app:1", "other", "app:2", "b"}));
    assert_int_equal(0, check(u, 3, (const char *[]){"auth", "u", "p"})); /* no-auth commands */
    acl_user_free(u);
    u = user_with("%R~ro:* +@all");
    assert_int_equal(0, check(u, 2, (const char *[]){"get", "ro:1"}));
    assert_int_equal(check(u, 3, (const char *[]){"set", "ro:1", "v"}), ACL_DENIED_KEY);
    acl_user_free(u);
}

/* Rules applied to a copy leave the original as it was (what SETUSER relies on). */
static void test_copy_keeps_original(void **state)
{
    (void)state;
    acl_user *u = user_with("on >pw ~k* +get");
    acl_user *tmp = acl_user_new("t", 1);
    acl_user_copy_rules(tmp, u);
    char err[128];
    assert_int_equal(acl_user_apply(tmp, "+set", 4, err, sizeof err), 0);
    assert_int_equal(acl_user_apply(tmp, "bogus", 5, err, sizeof err), ERR_INVAL);
    assert_false(acl_user_can_run(u, idx("set")));
    assert_true(acl_user_can_run(tmp, idx("set")));
    assert_true(acl_user_password_ok(u, "pw", 2));
    acl_user_free(tmp);
    acl_user_free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_describe_like_redis), cmocka_unit_test(test_bad_rules),
        cmocka_unit_test(test_passwords),           cmocka_unit_test(test_commands_and_categories),
        cmocka_unit_test(test_key_patterns),        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_copy_keeps_original),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
