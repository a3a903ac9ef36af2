/* fuzz_values.c: libFuzzer target for the typed feature values of store/values.c. The first
 * byte picks a field count n (0..16), the next n bytes a schema (type, and a dimension 1..8
 * for vectors), the next one a type for value parsing; the rest is the payload. The payload
 * is decoded as a row, as given and with a valid CRC appended (so that mutations explore past
 * the checksum): decoding must not crash, and a row that decodes must re-encode to
 * exactly the same bytes. It is also parsed as a timestamp and as a value: a parsed value,
 * written back as text and parsed again, must be the same value, and must survive a row
 * round trip; error details must be printable and terminated. Any breach aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TS_MIN (-62167219200000000LL) /* 0000-01-01T00:00:00Z, the first parseable instant */
#define TS_MAX 253402300799999999LL   /* 9999-12-31T23:59:59.999999Z, the last */

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_values: %s\n", what);
        abort();
    }
}

static store_ftype type_of(uint8_t b)
{
    store_ftype t = {FT_INT32 + b % 9, 0};
    if (t.type == FT_VECTOR)
        t.dim = (uint32_t)(b / 9) % 8 + 1;
    return t;
}

static void check_detail(int rc, const char *err, size_t errlen)
{
    check(rc == 0 || rc == ERR_INVAL, "parse returned a code other than 0 or ERR_INVAL");
    if (rc == 0)
        return;
    size_t n = strnlen(err, errlen);
    check(n > 0 && n < errlen, "error detail empty or unterminated");
    for (size_t i = 0; i < n; i++)
        check(err[i] >= 0x20 && err[i] < 0x7f, "error detail not printable");
}

static void same_value(const store_ftype *t, const store_fvalue *a, const store_fvalue *b)
{
    check(a->is_null == b->is_null, "NULL flag changed");
    switch (t->type) {
    case FT_INT32:
    case FT_INT64:
    case FT_BOOL:
    case FT_TIMESTAMP:
        check(a->i == b->i, "integer value changed");
        break;
    case FT_FLOAT32:
    case FT_FLOAT64:
        check(memcmp(&a->f, &b->f, sizeof a->f) == 0, "float value changed");
        break;
    default:
        check(a->len == b->len && (a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0),
              "bytes changed");
    }
}

static void fuzz_row(const store_ftype *schema, int n, const char *p, size_t len)
{
    store_fvalue vals[16];
    if (store_row_decode(schema, n, p, len, vals) != 0)
        return;
    buf out;
    buf_init(&out);
    store_row_encode(schema, n, vals, &out);
    check(out.len == len && memcmp(out.data, p, len) == 0, "decoded row re-encodes differently");
    buf_free(&out);
}

static void fuzz_ts(const char *p, size_t len)
{
    char err[128], text[32];
    int64_t us = 0, back = 0;
    int rc = store_parse_ts(p, len, &us, err, sizeof err);
    check_detail(rc, err, sizeof err);
    if (rc == 0) {
        size_t n = store_format_ts(us, text);
        check(n < 32 && text[n] == '\0', "formatted timestamp too long");
        if (us >= TS_MIN && us <= TS_MAX) {
            check(store_parse_ts(text, n, &back, err, sizeof err) == 0, "formatted ts fails");
            check(back == us, "timestamp changed through format and parse");
        }
    }
    /* any 8 bytes as an instant formats without trouble, and back when in range */
    if (len >= 8) {
        memcpy(&us, p, 8);
        size_t n = store_format_ts(us, text);
        check(n >= 27 && n < 32 && text[n] == '\0' && text[n - 1] == 'Z', "bad formatted ts");
        if (us >= TS_MIN && us <= TS_MAX) {
            check(store_parse_ts(text, n, &back, err, sizeof err) == 0, "formatted ts fails");
            check(back == us, "timestamp changed through format and parse");
        }
    }
}

/* Writes v as the text a client would send for it. */
static size_t value_text(const store_ftype *t, const store_fvalue *v, char *text)
{
    switch (t->type) {
    case FT_INT32:
    case FT_INT64:
        return i64_to_str(text, v->i);
    case FT_FLOAT32:
    case FT_FLOAT64:
        return double_to_str(text, v->f);
    case FT_BOOL:
        text[0] = v->i ? '1' : '0';
        return 1;
    default: /* FT_TIMESTAMP */
        return store_format_ts(v->i, text);
    }
}

static void fuzz_value(const store_ftype *t, const char *p, size_t len)
{
    char err[160], text[64];
    store_fvalue v, again;
    int rc = store_parse_value(t, p, len, &v, err, sizeof err);
    check_detail(rc, err, sizeof err);
    if (rc != 0)
        return;
    check(!v.is_null, "parsed value is NULL");
    if (t->type == FT_STRING || t->type == FT_BYTES || t->type == FT_VECTOR) {
        check(v.bytes == p && v.len == len, "bytes not borrowed as given");
    } else if (t->type != FT_TIMESTAMP || (v.i >= TS_MIN && v.i <= TS_MAX)) {
        size_t n = value_text(t, &v, text);
        check(store_parse_value(t, text, n, &again, err, sizeof err) == 0, "value text fails");
        same_value(t, &v, &again);
    }
    /* and through a one-field row */
    buf row;
    buf_init(&row);
    store_row_encode(t, 1, &v, &row);
    check(store_row_decode(t, 1, row.data, row.len, &again) == 0, "row of a parsed value fails");
    same_value(t, &v, &again);
    buf_free(&row);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int n = data[0] % 17;
    if (size < (size_t)n + 2)
        return 0;
    store_ftype schema[16];
    for (int i = 0; i < n; i++)
        schema[i] = type_of(data[1 + i]);
    store_ftype vtype = type_of(data[1 + n]);
    const char *p = (const char *)data + n + 2;
    size_t len = size - (size_t)n - 2;

    fuzz_row(schema, n, p, len);
    /* the payload again with its CRC appended, so mutations reach past the checksum */
    char *sealed = malloc(len + 4);
    check(sealed != NULL, "out of memory");
    memcpy(sealed, p, len);
    uint32_t crc = crc32c(0, p, len);
    for (int k = 0; k < 4; k++)
        sealed[len + (size_t)k] = (char)(crc >> (8 * k));
    fuzz_row(schema, n, sealed, len + 4);
    free(sealed);
    fuzz_ts(p, len);
    fuzz_value(&vtype, p, len);
    return 0;
}
