/* resp.h: the standalone RESP request parser.
 *
 * Bytes in, one command out; no I/O, no globals, no allocation except the argument arrays
 * inside the parser (grown with xrealloc, bounded by limits->max_args). It understands the
 * two request forms Redis accepts:
 *   - multibulk: "*<n>\r\n" then n times "$<len>\r\n<len bytes>\r\n"
 *   - inline:    a line of space-separated words, as telnet and `redis-cli` in some modes
 *                send it, with "double quotes" (\n \r \t \b \a \\ \" \xHH escapes) and
 *                'single quotes' (only \' escaped), ended by "\n" or "\r\n".
 *
 * Resumable: call resp_parse() with all unconsumed bytes each time more arrive. The parser
 * remembers how far it has scanned, so a 512 MiB bulk arriving in 16 KiB reads is scanned
 * once, not quadratically. The caller must present the same bytes again (it may move them
 * in memory between calls: all positions are relative to buf). Inline commands are
 * unescaped in place, which is why buf is not const.
 *
 * On RESP_OK, p->argc arguments are at buf + p->argv_off[i] with length p->argv_len[i];
 * they live as long as the caller keeps those bytes. *consumed is the size of the command;
 * the caller drops those bytes and calls again for the next command. A line of only spaces
 * (inline) or "*0\r\n" / "*-1\r\n" yields RESP_OK with argc == 0: the caller skips it.
 *
 * Errors: RESP_ERR sets p->err to a message in Redis's words, for example
 * "Protocol error: invalid bulk length"; the caller replies "-ERR <p->err>" and closes the
 * connection. RESP_CLOSE means the input looks like an HTTP request ("POST" or "Host:" at
 * the start of an inline line): close without a reply. After an error the parser must be
 * reset before reuse.
 *
 * Limits (struct resp_limits, chosen by the caller per call so that an unauthenticated
 * client can get tighter ones):
 *   max_inline      longest inline line, and longest "*"/"$" header line (64 KiB)
 *   max_bulk        largest bulk length (proto-max-bulk-len, 512 MiB)
 *   max_args        largest multibulk count (1024*1024; 10 unauthenticated)
 *   max_buffered    bytes the caller may hold for one incomplete command; exceeding it is
 *                   "Protocol error: too big request" (for unauthenticated clients 1 MiB)
 * Messages for limit failures:
 *   "Protocol error: too big inline request"
 *   "Protocol error: too big mbulk count string"      (header line without CRLF > max_inline)
 *   "Protocol error: invalid multibulk length"        (non-numeric, or > max_args, or < -1)
 *   "Protocol error: expected '$', got '<c>'"
 *   "Protocol error: too big bulk count string"
 *   "Protocol error: invalid bulk length"             (non-numeric, negative, > max_bulk)
 *   "Protocol error: unbalanced quotes in request"
 *   "Protocol error: too big request"
 *   "Protocol error: missing CRLF after bulk"          (the two bytes after the payload)
 *   "Protocol error: unauthenticated multibulk length" / "unauthenticated bulk length"
 *     (when limits->unauthenticated is set, in place of the two "invalid" messages)
 */
#ifndef QUIVER_RESP_H
#define QUIVER_RESP_H

#include <stddef.h>

enum {
    RESP_OK = 0,         /* one command parsed */
    RESP_NEED_MORE = 1,  /* incomplete: call again with more bytes */
    RESP_ERR = -1,       /* protocol error, see p->err */
    RESP_CLOSE = -2,     /* looks like HTTP: close silently */
};

typedef struct resp_limits {
    size_t max_inline;
    long long max_bulk;
    long long max_args;
    size_t max_buffered;
    int unauthenticated; /* only changes the error messages */
} resp_limits;

#define RESP_DEFAULT_MAX_INLINE (64 * 1024)
#define RESP_DEFAULT_MAX_BULK (512LL * 1024 * 1024)
#define RESP_DEFAULT_MAX_ARGS (1024LL * 1024)

typedef struct resp_parser {
    /* results */
    int argc;
    size_t *argv_off;
    size_t *argv_len;
    const char *err;
    /* private state */
    int state;
    size_t pos;          /* bytes of buf already scanned */
    long long mb_left;   /* multibulk: arguments still to read */
    long long bulk_len;  /* current bulk length, -1 when reading its header */
    int cap;
} resp_parser;

void resp_parser_init(resp_parser *p);
void resp_parser_reset(resp_parser *p); /* back to the start of a command; keeps arrays */
void resp_parser_free(resp_parser *p);

/* See the file comment. buf[0..len) are all unconsumed bytes, starting at a command. */
int resp_parse(resp_parser *p, char *buf, size_t len, const resp_limits *lim, size_t *consumed);

/* Bytes still needed to complete the bulk currently being read, or 0 if unknown; lets the
 * caller size one big read instead of many small ones. */
size_t resp_parse_want(const resp_parser *p, size_t len);

#endif
