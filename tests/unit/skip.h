/* skip.h: TEST_SKIP for the cmocka suites that include it: a space-separated list of glob
 * patterns naming tests to leave out. make valgrind leaves out the long loops over paths
 * that the suite's shorter tests take too (minutes each under valgrind).
 * Include after <cmocka.h>. */
#ifndef QUIVER_TEST_SKIP_H
#define QUIVER_TEST_SKIP_H

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

/* Whether a pattern of TEST_SKIP matches name. */
static int skip_named(const char *name)
{
    const char *p = getenv("TEST_SKIP");
    char pat[128];
    while (p && *p) {
        size_t len = strcspn(p, " ");
        if (len > 0 && len < sizeof pat) {
            memcpy(pat, p, len);
            pat[len] = '\0';
            if (fnmatch(pat, name, 0) == 0)
                return 1;
        }
        p += len + strspn(p + len, " ");
    }
    return 0;
}

/* Moves the tests that TEST_SKIP does not name to the front of t; returns their number. */
static size_t skip_tests(struct CMUnitTest *t, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (!skip_named(t[i].name))
            t[kept++] = t[i];
    return kept;
}

#endif
