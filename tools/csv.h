/* csv.h: the CSV reader and writer quiver-load and quiver-join share.
 *
 * READING (RFC 4180, strict where it matters): records end with LF or CRLF; fields are
 * separated by ','; a field that starts with '"' is quoted and may hold ',', CR, LF and '""'
 * (one '"'); after a closing quote only ',' or the end of the record may follow; a '"' inside
 * an unquoted field is an error; a lone CR inside an unquoted field is data. A UTF-8 byte
 * order mark at the very start is skipped, and so are empty lines. The first record is the
 * header: every later record must have as many fields, or csv_next() fails naming the line.
 * A record may not exceed CSV_MAX_RECORD bytes nor CSV_MAX_FIELDS fields (so an unterminated
 * quote fails instead of swallowing the file into memory).
 *
 * EMPTY AND NULL. A field records whether it was quoted: the tools read an unquoted empty
 * field as NULL and a quoted one ("") as the empty string (PostgreSQL's COPY rule), and the
 * writer writes them back the same way.
 *
 * LINE NUMBERS are physical lines, 1-based: a record's line is the line it starts on, and a
 * quoted field with newlines moves the count on. Errors say "line N: what was wrong".
 *
 * OWNERSHIP. A record's fields and raw text point into the reader's buffers and live until
 * the next csv_next() or csv_close(). A memory reader borrows its input (it must outlive the
 * reader); a file reader owns neither the fd (the caller closes it) nor anything it returned.
 * One reader is used by one thread. */
#ifndef QUIVER_TOOLS_CSV_H
#define QUIVER_TOOLS_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define CSV_MAX_RECORD (64u << 20)
#define CSV_MAX_FIELDS 65536

typedef struct csv_field {
    const char *p; /* the unescaped bytes (no NUL terminator) */
    size_t len;
    int quoted;    /* the field was written in quotes */
} csv_field;

typedef struct csv_record {
    int nfields;
    csv_field *fields;
    uint64_t line;   /* the line the record starts on */
    const char *raw; /* the record's text as read, without its line ending */
    size_t raw_len;
} csv_record;

typedef struct csv_reader csv_reader;

/* A reader of fd (read() in large chunks until it returns 0), or of len bytes at data. */
csv_reader *csv_open_fd(int fd);
csv_reader *csv_open_mem(const char *data, size_t len);
void csv_close(csv_reader *r);

/* The next record into *rec: 1, or 0 at the end of the input, or a negative code with
 * "line N: ..." in err: ERR_PROTO (malformed CSV, ragged record), ERR_LIMIT (a record over
 * CSV_MAX_RECORD bytes or CSV_MAX_FIELDS fields), ERR_IO (read failed; errno's text in err).
 * After an error the reader returns the same error again. */
int csv_next(csv_reader *r, csv_record *rec, char *err, size_t errlen);

/* Bytes of input consumed so far (through the last record returned), for progress. */
uint64_t csv_bytes_read(const csv_reader *r);

/* Appends one field to out, quoted when it holds ',', '"', CR or LF or is empty (so that an
 * empty string reads back as "" and not as NULL); a NULL value is written as nothing. */
void csv_put_field(buf *out, const char *p, size_t len);

#endif
