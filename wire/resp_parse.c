/* resp_parse.c: the RESP request parser. It turns the bytes a client sent into one command
 * (argument offsets into the caller's buffer), as a small state machine that remembers how
 * far it has read, so a command arriving in many pieces is scanned once. Multibulk requests
 * ("*<n>" then "$<len>" bulks) are read in place without copying; inline requests are split
 * and unescaped in place the way Redis's sdssplitargs does. Every limit is checked from the
 * announced numbers before anything is reserved: the only memory this file allocates is the
 * argument arrays, grown one argument at a time as arguments actually arrive. */
#include "wire/resp.h"

#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "core/util.h"

enum {
    ST_START = 0, /* nothing read of the current command */
    ST_INLINE,    /* looking for the '\n' of an inline line; pos = bytes scanned */
    ST_MB_COUNT,  /* looking for the '\r' of "*<n>"; pos = bytes scanned */
    ST_BULK_HDR,  /* looking for the '\r' of "$<len>", which starts at argv_off[argc] */
    ST_BULK_DATA, /* waiting for bulk_len bytes at argv_off[argc], then "\r\n" */
    ST_FAILED,    /* RESP_ERR (err set) or RESP_CLOSE (err NULL) returned; reset first */
};

enum { STEP_AGAIN = 2 }; /* the state changed: run the next step on the same bytes */

static const char MSG_INLINE[] = "Protocol error: too big inline request";
static const char MSG_MB_STRING[] = "Protocol error: too big mbulk count string";
static const char MSG_MB_LEN[] = "Protocol error: invalid multibulk length";
static const char MSG_MB_UNAUTH[] = "Protocol error: unauthenticated multibulk length";
static const char MSG_BULK_STRING[] = "Protocol error: too big bulk count string";
static const char MSG_BULK_LEN[] = "Protocol error: invalid bulk length";
static const char MSG_BULK_UNAUTH[] = "Protocol error: unauthenticated bulk length";
static const char MSG_QUOTES[] = "Protocol error: unbalanced quotes in request";
static const char MSG_TOO_BIG[] = "Protocol error: too big request";
static const char MSG_CRLF[] = "Protocol error: missing CRLF after bulk";

/* "expected '$', got '<c>'" for each printable byte, from ' ' to '~'. The parser has no
 * buffer to format into, and a raw control byte must not reach a reply, so the others are
 * shown as '?'. */
#define GOT(c) "Protocol error: expected '$', got '" c "'"
static const char *const MSG_GOT[] = {
    GOT(" "), GOT("!"), GOT("\""), GOT("#"), GOT("$"), GOT("%"), GOT("&"), GOT("'"),
    GOT("("), GOT(")"), GOT("*"),  GOT("+"), GOT(","), GOT("-"), GOT("."), GOT("/"),
    GOT("0"), GOT("1"), GOT("2"),  GOT("3"), GOT("4"), GOT("5"), GOT("6"), GOT("7"),
    GOT("8"), GOT("9"), GOT(":"),  GOT(";"), GOT("<"), GOT("="), GOT(">"), GOT("?"),
    GOT("@"), GOT("A"), GOT("B"),  GOT("C"), GOT("D"), GOT("E"), GOT("F"), GOT("G"),
    GOT("H"), GOT("I"), GOT("J"),  GOT("K"), GOT("L"), GOT("M"), GOT("N"), GOT("O"),
    GOT("P"), GOT("Q"), GOT("R"),  GOT("S"), GOT("T"), GOT("U"), GOT("V"), GOT("W"),
    GOT("X"), GOT("Y"), GOT("Z"),  GOT("["), GOT("\\"), GOT("]"), GOT("^"), GOT("_"),
    GOT("`"), GOT("a"), GOT("b"),  GOT("c"), GOT("d"), GOT("e"), GOT("f"), GOT("g"),
    GOT("h"), GOT("i"), GOT("j"),  GOT("k"), GOT("l"), GOT("m"), GOT("n"), GOT("o"),
    GOT("p"), GOT("q"), GOT("r"),  GOT("s"), GOT("t"), GOT("u"), GOT("v"), GOT("w"),
    GOT("x"), GOT("y"), GOT("z"),  GOT("{"), GOT("|"), GOT("}"), GOT("~"),
};
#undef GOT

void resp_parser_init(resp_parser *p)
{
    memset(p, 0, sizeof *p);
    p->bulk_len = -1;
}

void resp_parser_reset(resp_parser *p)
{
    p->argc = 0;
    p->err = NULL;
    p->state = ST_START;
    p->pos = 0;
    p->mb_left = 0;
    p->bulk_len = -1;
}

void resp_parser_free(resp_parser *p)
{
    xfree(p->argv_off);
    xfree(p->argv_len);
    resp_parser_init(p);
}

size_t resp_parse_want(const resp_parser *p, size_t len)
{
    if (p->state != ST_BULK_DATA)
        return 0;
    size_t end = p->argv_off[p->argc] + (size_t)p->bulk_len + 2;
    return end > len ? end - len : 0;
}

static int fail(resp_parser *p, const char *msg)
{
    p->err = msg;
    p->state = ST_FAILED;
    return RESP_ERR;
}

/* The command is incomplete, so every byte the caller holds belongs to it. */
static int need_more(resp_parser *p, size_t len, const resp_limits *lim)
{
    if (len > lim->max_buffered)
        return fail(p, MSG_TOO_BIG);
    return RESP_NEED_MORE;
}

static int done(resp_parser *p, size_t end, size_t *consumed)
{
    p->state = ST_START;
    p->pos = 0;
    *consumed = end;
    return RESP_OK;
}

static long long max_args(const resp_limits *lim)
{
    return lim->max_args < INT32_MAX ? lim->max_args : INT32_MAX;
}

/* Room for need arguments; need is at most max_args(lim). */
static void grow(resp_parser *p, int need, const resp_limits *lim)
{
    if (need <= p->cap)
        return;
    long long cap = p->cap ? 2LL * p->cap : 8;
    if (cap > max_args(lim))
        cap = max_args(lim);
    p->argv_off = xrealloc(p->argv_off, (size_t)cap * sizeof *p->argv_off);
    p->argv_len = xrealloc(p->argv_len, (size_t)cap * sizeof *p->argv_len);
    p->cap = (int)cap;
}

/* The next multibulk argument starts with its "$" header at off. */
static int begin_bulk(resp_parser *p, size_t off, const resp_limits *lim)
{
    grow(p, p->argc + 1, lim);
    p->argv_off[p->argc] = off;
    p->bulk_len = -1;
    p->pos = off;
    p->state = ST_BULK_HDR;
    return STEP_AGAIN;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char unescape(char c)
{
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'b': return '\b';
    case 'a': return '\a';
    default: return c; /* \\ and \" and anything else: the character itself */
    }
}

static int is_hex_escape(const char *buf, size_t r, size_t end)
{
    return r + 3 < end && buf[r + 1] == 'x' && hex_value(buf[r + 2]) >= 0 &&
           hex_value(buf[r + 3]) >= 0;
}

/* Reads one word of an inline line from *r and writes it, unescaped, at *w, which never
 * runs ahead of *r, so this works in place. A quote may open anywhere in a word; a closing
 * quote must be followed by a space or the end of the line. -1 on unbalanced quotes. */
static int read_word(char *buf, size_t end, size_t *rp, size_t *wp)
{
    size_t r = *rp, w = *wp;
    char quote = 0;
    for (; r < end; r++) {
        char c = buf[r];
        if (!quote) {
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
                break;
            if (c == '"' || c == '\'')
                quote = c;
            else
                buf[w++] = c;
        } else if (c == quote) {
            if (r + 1 < end && !is_space(buf[r + 1]))
                return -1;
            quote = 0;
            r++;
            break;
        } else if (quote == '"' && c == '\\' && is_hex_escape(buf, r, end)) {
            buf[w++] = (char)(hex_value(buf[r + 2]) * 16 + hex_value(buf[r + 3]));
            r += 3;
        } else if (quote == '"' && c == '\\' && r + 1 < end) {
            buf[w++] = unescape(buf[++r]);
        } else if (quote == '\'' && c == '\\' && r + 1 < end && buf[r + 1] == '\'') {
            buf[w++] = buf[++r];
        } else {
            buf[w++] = c;
        }
    }
    if (quote)
        return -1;
    *rp = r;
    *wp = w;
    return 0;
}

/* Splits buf[0..end) into arguments, unescaping in place. */
static int split_inline(resp_parser *p, char *buf, size_t end, const resp_limits *lim)
{
    size_t r = 0, w = 0;
    for (;;) {
        while (r < end && is_space(buf[r]))
            r++;
        if (r == end)
            return RESP_OK;
        if (p->argc >= max_args(lim))
            return fail(p, lim->unauthenticated ? MSG_MB_UNAUTH : MSG_MB_LEN);
        grow(p, p->argc + 1, lim);
        size_t start = w;
        if (read_word(buf, end, &r, &w) < 0)
            return fail(p, MSG_QUOTES);
        p->argv_off[p->argc] = start;
        p->argv_len[p->argc] = w - start;
        p->argc++;
    }
}

static int step_inline(resp_parser *p, char *buf, size_t len, size_t avail,
                       const resp_limits *lim, size_t *consumed)
{
    char *nl = memchr(buf + p->pos, '\n', avail - p->pos);
    if (!nl) {
        p->pos = avail;
        if (avail > lim->max_inline)
            return fail(p, MSG_INLINE);
        return need_more(p, len, lim);
    }
    size_t end = (size_t)(nl - buf);
    if (end > lim->max_inline)
        return fail(p, MSG_INLINE);
    size_t line = end > 0 && buf[end - 1] == '\r' ? end - 1 : end;
    if ((line >= 4 && memcmp(buf, "POST", 4) == 0) || (line >= 5 && memcmp(buf, "Host:", 5) == 0)) {
        p->state = ST_FAILED;
        return RESP_CLOSE;
    }
    int rc = split_inline(p, buf, line, lim);
    if (rc != RESP_OK)
        return rc;
    return done(p, end + 1, consumed);
}

/* Finds the '\r' ending a header line that starts at start, scanning on from p->pos.
 * Returns 1 with *cr set when the whole line and its '\n' are there, 0 when more bytes are
 * needed, -1 when the line is longer than max_inline. */
static int header_line(resp_parser *p, const char *buf, size_t start, size_t avail,
                       const resp_limits *lim, size_t *cr)
{
    char *found = memchr(buf + p->pos, '\r', avail - p->pos);
    if (!found) {
        p->pos = avail;
        return avail - start > lim->max_inline ? -1 : 0;
    }
    *cr = (size_t)(found - buf);
    p->pos = *cr;
    if (*cr - start > lim->max_inline)
        return -1;
    return *cr + 1 < avail;
}

/* The number between the header's first byte at start and its "\r\n" at cr. */
static int header_number(const char *buf, size_t start, size_t cr, int64_t *n)
{
    if (buf[cr + 1] != '\n')
        return -1;
    return str_to_i64(buf + start + 1, cr - start - 1, n) == 0 ? 0 : -1;
}

static int step_mb_count(resp_parser *p, const char *buf, size_t len, size_t avail,
                         const resp_limits *lim, size_t *consumed)
{
    size_t cr;
    int rc = header_line(p, buf, 0, avail, lim, &cr);
    if (rc < 0)
        return fail(p, MSG_MB_STRING);
    if (rc == 0)
        return need_more(p, len, lim);
    int64_t n;
    if (header_number(buf, 0, cr, &n) < 0 || n < -1)
        return fail(p, MSG_MB_LEN);
    if (n > max_args(lim))
        return fail(p, lim->unauthenticated ? MSG_MB_UNAUTH : MSG_MB_LEN);
    if (n <= 0)
        return done(p, cr + 2, consumed);
    p->mb_left = n;
    return begin_bulk(p, cr + 2, lim);
}

static int step_bulk_hdr(resp_parser *p, const char *buf, size_t len, size_t avail,
                         const resp_limits *lim)
{
    size_t start = p->argv_off[p->argc];
    if (start >= avail)
        return need_more(p, len, lim);
    unsigned char first = (unsigned char)buf[start];
    if (first != '$')
        return fail(p, first >= ' ' && first <= '~' ? MSG_GOT[first - ' '] : MSG_GOT['?' - ' ']);
    size_t cr;
    int rc = header_line(p, buf, start, avail, lim, &cr);
    if (rc < 0)
        return fail(p, MSG_BULK_STRING);
    if (rc == 0)
        return need_more(p, len, lim);
    int64_t n;
    if (header_number(buf, start, cr, &n) < 0 || n < 0)
        return fail(p, MSG_BULK_LEN);
    if (n > lim->max_bulk)
        return fail(p, lim->unauthenticated ? MSG_BULK_UNAUTH : MSG_BULK_LEN);
    size_t data = cr + 2; /* at most avail, so at most max_buffered */
    if ((uint64_t)n + 2 > lim->max_buffered - data)
        return fail(p, MSG_TOO_BIG);
    p->argv_off[p->argc] = data;
    p->bulk_len = n;
    p->pos = data;
    p->state = ST_BULK_DATA;
    return STEP_AGAIN;
}

static int step_bulk_data(resp_parser *p, const char *buf, size_t len, size_t avail,
                          const resp_limits *lim, size_t *consumed)
{
    size_t end = p->argv_off[p->argc] + (size_t)p->bulk_len + 2;
    if (end > avail)
        return need_more(p, len, lim);
    if (buf[end - 2] != '\r' || buf[end - 1] != '\n')
        return fail(p, MSG_CRLF);
    p->argv_len[p->argc] = (size_t)p->bulk_len;
    p->argc++;
    if (--p->mb_left == 0)
        return done(p, end, consumed);
    return begin_bulk(p, end, lim);
}

int resp_parse(resp_parser *p, char *buf, size_t len, const resp_limits *lim, size_t *consumed)
{
    /* Bytes past max_buffered are never looked at: a command that needs them is too big. */
    size_t avail = len < lim->max_buffered ? len : lim->max_buffered;
    int rc = STEP_AGAIN;
    *consumed = 0;
    if (p->state != ST_FAILED && p->pos > avail)
        return need_more(p, len, lim); /* only if limits shrank or bytes went missing */
    while (rc == STEP_AGAIN) {
        switch (p->state) {
        case ST_START:
            p->argc = 0;
            if (avail == 0)
                return need_more(p, len, lim);
            p->state = buf[0] == '*' ? ST_MB_COUNT : ST_INLINE;
            break;
        case ST_INLINE: rc = step_inline(p, buf, len, avail, lim, consumed); break;
        case ST_MB_COUNT: rc = step_mb_count(p, buf, len, avail, lim, consumed); break;
        case ST_BULK_HDR: rc = step_bulk_hdr(p, buf, len, avail, lim); break;
        case ST_BULK_DATA: rc = step_bulk_data(p, buf, len, avail, lim, consumed); break;
        default: return p->err ? RESP_ERR : RESP_CLOSE;
        }
    }
    return rc;
}
