/* backlog.c: the replication backlog, a ring of the stream's last bytes that lets a
 * replica that lost its link resume where it stopped instead of copying everything. */
#include "replication/repl_int.h"

#include <string.h>

#include "core/alloc.h"

void backlog_init(backlog *b, size_t size, uint64_t end)
{
    b->ring = xmalloc(size);
    b->size = size;
    b->len = b->head = 0;
    b->end = end;
}

void backlog_free(backlog *b)
{
    xfree(b->ring);
    b->ring = NULL;
}

void backlog_append(backlog *b, const char *p, size_t n)
{
    b->end += n;
    if (n >= b->size) { /* only the tail survives */
        memcpy(b->ring, p + n - b->size, b->size);
        b->head = 0;
        b->len = b->size;
        return;
    }
    size_t first = b->size - b->head < n ? b->size - b->head : n;
    memcpy(b->ring + b->head, p, first);
    memcpy(b->ring, p + first, n - first);
    b->head = (b->head + n) % b->size;
    b->len = b->len + n > b->size ? b->size : b->len + n;
}

int backlog_copy(const backlog *b, uint64_t from, buf *out)
{
    if (from > b->end || b->end - from > b->len)
        return -1;
    size_t n = (size_t)(b->end - from);
    size_t start = (b->head + b->size - n) % b->size;
    size_t first = b->size - start < n ? b->size - start : n;
    buf_append(out, b->ring + start, first);
    buf_append(out, b->ring, n - first);
    return 0;
}
