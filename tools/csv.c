/* csv.c: a streaming RFC 4180 reader over a file descriptor or a memory block, and the field
 * writer. The reader keeps one buffer of input; a record is parsed only once it lies whole
 * in the buffer (a record cut by the buffer's end is parsed again after the next read), so
 * quoted fields without "" escapes and every unquoted field point straight into the buffer,
 * and only escaped fields are copied (unescaped) into a scratch area. */
#include "tools/csv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"

#define CHUNK (1u << 20) /* the first buffer and the least a read asks for */
#define NEED_MORE 2      /* parse(): the record is cut by the end of the buffer */

struct csv_reader {
    int fd;           /* -1: a memory reader */
    char *own;        /* a file reader's buffer */
    const char *data; /* own, or the caller's bytes */
    size_t cap;       /* own's size */
    size_t pos, end;  /* data[pos..end) is not yet consumed */
    int eof;          /* nothing more will come after data[end] */
    uint64_t base;    /* input offset of data[0] */
    uint64_t line;    /* line number of data[pos] */
    int started;      /* the byte order mark was looked for */
    int ncols;        /* the header's field count (0 before it) */
    int failed;       /* sticky error code */
    char msg[256];
    csv_field *fields;
    int fcap;
    char *scratch; /* unescaped quoted fields of the current record */
    size_t scap;
};

/* A byte that ends or disturbs an unquoted field. */
static const unsigned char special[256] = {[','] = 1, ['\n'] = 1, ['\r'] = 1, ['"'] = 1};

static csv_reader *reader_new(void)
{
    csv_reader *r = xcalloc(1, sizeof *r);
    r->line = 1;
    return r;
}

csv_reader *csv_open_fd(int fd)
{
    csv_reader *r = reader_new();
    r->fd = fd;
    r->cap = CHUNK;
    r->own = xmalloc(r->cap);
    r->data = r->own;
    return r;
}

csv_reader *csv_open_mem(const char *data, size_t len)
{
    csv_reader *r = reader_new();
    r->fd = -1;
    r->data = data;
    r->end = len;
    r->eof = 1;
    return r;
}

void csv_close(csv_reader *r)
{
    if (!r)
        return;
    xfree(r->own);
    xfree(r->fields);
    xfree(r->scratch);
    xfree(r);
}

uint64_t csv_bytes_read(const csv_reader *r)
{
    return r->base + r->pos;
}

__attribute__((format(printf, 5, 6))) static int fail(csv_reader *r, int code, char *err,
                                                      size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    r->failed = code;
    if (err && errlen > 0)
        snprintf(err, errlen, "%s", r->msg);
    return code;
}

static int add_field(csv_reader *r, int *n, const char *p, size_t len, int quoted, uint64_t line,
                     char *err, size_t errlen)
{
    if (*n >= CSV_MAX_FIELDS)
        return fail(r, ERR_LIMIT, err, errlen, "line %llu: more than %d fields",
                    (unsigned long long)line, CSV_MAX_FIELDS);
    if (*n == r->fcap) {
        r->fcap = r->fcap ? 2 * r->fcap : 16;
        r->fields = xrealloc(r->fields, (size_t)r->fcap * sizeof *r->fields);
    }
    r->fields[*n] = (csv_field){p, len, quoted};
    (*n)++;
    return 0;
}

static uint64_t count_lines(const char *p, size_t n)
{
    uint64_t k = 0;
    const char *e = p + n;
    while ((p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
        k++;
        p++;
    }
    return k;
}

/* Skips empty lines at r->pos (consuming them). 0, or NEED_MORE when the buffer ends in a
 * CR that may start a CRLF. */
static int skip_empty_lines(csv_reader *r)
{
    const char *d = r->data;
    while (r->pos < r->end) {
        if (d[r->pos] == '\n') {
            r->pos++;
            r->line++;
        } else if (d[r->pos] == '\r') {
            if (r->pos + 1 == r->end) {
                if (!r->eof)
                    return NEED_MORE;
                r->pos++; /* a CR alone at the very end */
            } else if (d[r->pos + 1] == '\n') {
                r->pos += 2;
                r->line++;
            } else {
                return 0;
            }
        } else {
            return 0;
        }
    }
    return 0;
}

/* The end of a record at d[i] (LF, CRLF, or the end of the input): how many bytes the line
 * ending takes, or -1 when d[i] is not one, or NEED_MORE-style -2 when a CR ends the buffer. */
static int line_end(const csv_reader *r, size_t i, size_t lim, int at_eof)
{
    const char *d = r->data;
    if (i == lim)
        return at_eof ? 0 : -2;
    if (d[i] == '\n')
        return 1;
    if (d[i] == '\r') {
        if (i + 1 == lim)
            return at_eof ? 1 : -2;
        if (d[i + 1] == '\n')
            return 2;
    }
    return -1;
}

/* One quoted field starting at d[*i] (the opening quote). On success *i is just past the
 * closing quote and the field is added. */
static int quoted_field(csv_reader *r, size_t *i, size_t start, size_t lim, int at_eof, int *n,
                        uint64_t *line, size_t *sused, char *err, size_t errlen)
{
    const char *d = r->data;
    uint64_t open_line = *line;
    size_t q = *i + 1, seg = q, flen = 0;
    int escaped = 0;
    for (;;) {
        const char *hit = memchr(d + q, '"', lim - q);
        if (!hit) {
            if (!at_eof)
                return NEED_MORE;
            return fail(r, ERR_PROTO, err, errlen,
                        "line %llu: quoted field not closed (a '\"' is missing)",
                        (unsigned long long)open_line);
        }
        size_t h = (size_t)(hit - d);
        *line += count_lines(d + q, h - q);
        if (h + 1 == lim && !at_eof)
            return NEED_MORE;
        if (h + 1 < lim && d[h + 1] == '"') { /* "" stands for one quote */
            if (!escaped && *sused == 0 && r->scap < lim - start) {
                r->scap = lim - start; /* bounds every escaped field of this record */
                r->scratch = xrealloc(r->scratch, r->scap);
            }
            escaped = 1;
            memcpy(r->scratch + *sused + flen, d + seg, h + 1 - seg);
            flen += h + 1 - seg;
            seg = q = h + 2;
            continue;
        }
        const char *p = d + *i + 1;
        if (escaped) {
            memcpy(r->scratch + *sused + flen, d + seg, h - seg);
            flen += h - seg;
            p = r->scratch + *sused;
            *sused += flen;
        } else {
            flen = h - (*i + 1);
        }
        *i = h + 1;
        return add_field(r, n, p, flen, 1, open_line, err, errlen);
    }
}

/* Parses the record at r->pos: 1 (consumed, *rec filled), 0 at the end of the input,
 * NEED_MORE, or an error. */
static int parse(csv_reader *r, csv_record *rec, char *err, size_t errlen)
{
    int rc = skip_empty_lines(r);
    if (rc)
        return rc;
    if (r->pos == r->end)
        return r->eof ? 0 : NEED_MORE;

    const char *d = r->data;
    size_t start = r->pos, i = start;
    size_t lim = r->end - start > CSV_MAX_RECORD ? start + CSV_MAX_RECORD : r->end;
    int at_eof = lim == r->end && r->eof;
    uint64_t line = r->line;
    size_t sused = 0;
    int n = 0;
    for (;;) {
        if (i < lim && d[i] == '"') {
            rc = quoted_field(r, &i, start, lim, at_eof, &n, &line, &sused, err, errlen);
            if (rc)
                break;
            if (i < lim && d[i] == ',') {
                i++;
                continue;
            }
            int le = line_end(r, i, lim, at_eof);
            if (le == -2) {
                rc = NEED_MORE;
                break;
            }
            if (le < 0)
                return fail(r, ERR_PROTO, err, errlen,
                            "line %llu: unexpected character after a closing quote (a '\"' "
                            "inside a quoted field is written \"\")",
                            (unsigned long long)line);
            rec->raw_len = i - start;
            i += (size_t)le;
            break;
        }
        size_t j = i;
        for (;;) {
            while (j < lim && !special[(unsigned char)d[j]])
                j++;
            if (j < lim && d[j] == '\r' && j + 1 < lim && d[j + 1] != '\n') {
                j++; /* a lone CR is data */
                continue;
            }
            break;
        }
        if (j < lim && d[j] == '"')
            return fail(r, ERR_PROTO, err, errlen,
                        "line %llu: '\"' inside an unquoted field (quote the whole field and "
                        "write the quote as \"\")",
                        (unsigned long long)line);
        if (j == lim && !at_eof) {
            rc = NEED_MORE;
            break;
        }
        if ((rc = add_field(r, &n, d + i, j - i, 0, line, err, errlen)) != 0)
            return rc;
        if (j < lim && d[j] == ',') {
            i = j + 1;
            continue;
        }
        int le = line_end(r, j, lim, at_eof);
        if (le == -2) {
            rc = NEED_MORE;
            break;
        }
        rec->raw_len = j - start;
        i = j + (size_t)le;
        break;
    }
    if (rc == NEED_MORE && lim < r->end)
        return fail(r, ERR_LIMIT, err, errlen,
                    "line %llu: record longer than %u MiB (a quote not closed?)",
                    (unsigned long long)r->line, CSV_MAX_RECORD >> 20);
    if (rc)
        return rc;

    if (r->ncols == 0)
        r->ncols = n;
    else if (n != r->ncols)
        return fail(r, ERR_PROTO, err, errlen, "line %llu: %d field%s where the header has %d",
                    (unsigned long long)r->line, n, n == 1 ? "" : "s", r->ncols);
    rec->nfields = n;
    rec->fields = r->fields;
    rec->line = r->line;
    rec->raw = d + start;
    if (i > start && d[i - 1] == '\n')
        line++;
    r->line = line;
    r->pos = i;
    return 1;
}

/* Reads more input after keeping the unconsumed bytes: 0 or ERR_IO. */
static int refill(csv_reader *r, char *err, size_t errlen)
{
    if (r->pos > 0) {
        memmove(r->own, r->own + r->pos, r->end - r->pos);
        r->base += r->pos;
        r->end -= r->pos;
        r->pos = 0;
    }
    if (r->cap - r->end < CHUNK / 2) {
        r->cap *= 2;
        r->own = xrealloc(r->own, r->cap);
        r->data = r->own;
    }
    ssize_t k;
    do
        k = read(r->fd, r->own + r->end, r->cap - r->end);
    while (k < 0 && errno == EINTR);
    if (k < 0)
        return fail(r, ERR_IO, err, errlen, "line %llu: read failed: %s",
                    (unsigned long long)r->line, strerror(errno));
    if (k == 0)
        r->eof = 1;
    r->end += (size_t)k;
    return 0;
}

int csv_next(csv_reader *r, csv_record *rec, char *err, size_t errlen)
{
    if (r->failed) {
        if (err && errlen > 0)
            snprintf(err, errlen, "%s", r->msg);
        return r->failed;
    }
    int rc;
    while (!r->started) {
        if (r->end - r->pos >= 3 || r->eof) {
            if (r->end - r->pos >= 3 && memcmp(r->data + r->pos, "\xEF\xBB\xBF", 3) == 0)
                r->pos += 3;
            r->started = 1;
        } else if ((rc = refill(r, err, errlen)) != 0) {
            return rc;
        }
    }
    while ((rc = parse(r, rec, err, errlen)) == NEED_MORE) {
        if ((rc = refill(r, err, errlen)) != 0)
            return rc;
    }
    return rc;
}

void csv_put_field(buf *out, const char *p, size_t len)
{
    int quote = len == 0;
    for (size_t i = 0; i < len && !quote; i++)
        quote = special[(unsigned char)p[i]];
    if (!quote) {
        buf_append(out, p, len);
        return;
    }
    buf_reserve(out, len + 2);
    buf_appendc(out, '"');
    for (;;) {
        const char *q = memchr(p, '"', len);
        size_t k = q ? (size_t)(q - p) + 1 : len;
        buf_append(out, p, k);
        if (!q)
            break;
        buf_appendc(out, '"');
        p += k;
        len -= k;
    }
    buf_appendc(out, '"');
}
