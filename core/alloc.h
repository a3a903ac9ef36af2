/* alloc.h: the one allocator wrapper.
 *
 * Two families:
 *  - xmalloc/xcalloc/xrealloc/xstrdup for small internal objects: they never return NULL;
 *    running out of memory there aborts the process with a message (as Redis does).
 *  - try_malloc/try_realloc for allocations whose size a client controls (bulk lengths,
 *    vector dimensions, batch sizes): they return NULL and the caller answers ERR_NOMEM.
 *
 * Everything either family returns is freed with xfree (try_aligned's blocks too).
 *
 * Fault injection (tests only): alloc_fail_after(n) makes the (n+1)-th following try_*
 * allocation fail, once; alloc_fail_after(-1) turns it off. It returns the countdown it
 * replaced: -1 once the failure set up before has fired (or none was set), so a test knows
 * whether its operation met the failure. Thread-safe: counters are atomic.
 * alloc_used() reports the bytes the process heap has allocated, through this wrapper or not
 * (mallinfo2: every malloc arena, so RocksDB's and FAISS's allocations too; memory-mapped
 * LMDB pages are not heap): INFO memory's used_memory and what maxmemory limits. It walks
 * the arenas, so callers that need it often cache it.
 * alloc_live() counts the blocks allocated through this wrapper and not yet xfreed, so a
 * test can check that a failed operation left nothing behind (one atomic add per call). */
#ifndef QUIVER_ALLOC_H
#define QUIVER_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xmemdup(const void *p, size_t n); /* adds a terminating NUL */
void xfree(void *p);

void *try_malloc(size_t n);
void *try_realloc(void *p, size_t n);
void *try_calloc(size_t count, size_t n); /* NULL also when count * n overflows */
char *try_memdup(const void *p, size_t n); /* adds a terminating NUL */
void *try_aligned(size_t align, size_t n); /* align: a power of two, multiple of sizeof(void *) */

long alloc_fail_after(long n);
size_t alloc_used(void);
long alloc_live(void);

#endif
