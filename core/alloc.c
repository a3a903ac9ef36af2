/* alloc.c: the allocator wrapper. Small internal objects abort on OOM; client-sized ones can
 * fail, and tests can make them fail on purpose (a countdown, as SQLite's fault simulator). */
#include "alloc.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_countdown = -1;

static void oom(size_t n)
{
    fprintf(stderr, "quiver: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xmemdup(s, strlen(s));
}

char *xmemdup(const void *p, size_t n)
{
    char *q = xmalloc(n + 1);
    if (n)
        memcpy(q, p, n);
    q[n] = '\0';
    return q;
}

void xfree(void *p)
{
    free(p);
}

/* True when the injected failure is due now. */
static int should_fail(void)
{
    long v = atomic_load(&fail_countdown);
    while (v >= 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &v, v - 1))
            return v == 0;
    }
    return 0;
}

void *try_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *try_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void alloc_fail_after(long n)
{
    atomic_store(&fail_countdown, n);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* ASan's and TSan's malloc replaces glibc's, whose arenas mallinfo2() would find empty: ask
 * the sanitizer (declared here: GCC ships no header for its allocator interface). */
size_t __sanitizer_get_current_allocated_bytes(void);

size_t alloc_used(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
size_t alloc_used(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}
#endif
