/* alloc.c: the allocator wrapper. Small internal objects abort on OOM; client-sized ones can
 * fail, and tests can make them fail on purpose (a countdown, as SQLite's fault simulator).
 * Every block handed out is counted until xfree, so tests can assert that nothing leaked. */
#include "alloc.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_countdown = -1;
static atomic_long live_blocks;

static void oom(size_t n)
{
    fprintf(stderr, "quiver: out of memory allocating %zu bytes\n", n);
    abort();
}

/* Counts a block that a malloc-like call returned (NULL: nothing to count). */
static void *counted(void *p)
{
    if (p)
        atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    return p;
}

/* A realloc of old that returned q: only a fresh block (old NULL) adds one. */
static void *recounted(void *old, void *q)
{
    return old ? q : counted(q);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return counted(p);
}

void *xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n);
    return counted(p);
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return recounted(p, q);
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
    if (!p)
        return;
    atomic_fetch_sub_explicit(&live_blocks, 1, memory_order_relaxed);
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
    return counted(malloc(n ? n : 1));
}

void *try_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return recounted(p, realloc(p, n ? n : 1));
}

void *try_calloc(size_t count, size_t n)
{
    if (n && count > SIZE_MAX / n)
        return NULL;
    if (should_fail())
        return NULL;
    return counted(calloc(count ? count : 1, n ? n : 1));
}

char *try_memdup(const void *p, size_t n)
{
    char *q = n == SIZE_MAX ? NULL : try_malloc(n + 1);
    if (!q)
        return NULL;
    if (n)
        memcpy(q, p, n);
    q[n] = '\0';
    return q;
}

void *try_aligned(size_t align, size_t n)
{
    void *p = NULL;
    if (should_fail() || posix_memalign(&p, align, n ? n : align))
        return NULL;
    return counted(p);
}

long alloc_fail_after(long n)
{
    return atomic_exchange(&fail_countdown, n);
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

long alloc_live(void)
{
    return atomic_load_explicit(&live_blocks, memory_order_relaxed);
}
