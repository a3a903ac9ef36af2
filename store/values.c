/* values.c: typed feature values. It turns a client's bytes into a store_fvalue of a schema
 * type (strict integers, finite floats, booleans, raw vector blobs), parses and formats
 * timestamps (integer milliseconds or ISO-8601, kept as int64 microseconds UTC, converted
 * with a days-from-civil calendar so no libc time zone is involved), and encodes and decodes
 * the persisted row format of store.h (version, null bitmap, values, CRC32C). Decoding trusts
 * nothing: every length is checked against what remains before it is read. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/util.h"
#include "store/store.h"

#define ROW_VERSION 1
#define SHOW_MAX 64 /* bytes of client input quoted in an error message */

/* ---- type names ---------------------------------------------------------------------- */

static const char *const type_names[] = {
    [FT_INT32] = "INT32",     [FT_INT64] = "INT64",         [FT_FLOAT32] = "FLOAT32",
    [FT_FLOAT64] = "FLOAT64", [FT_BOOL] = "BOOL",           [FT_STRING] = "STRING",
    [FT_BYTES] = "BYTES",     [FT_TIMESTAMP] = "TIMESTAMP", [FT_VECTOR] = "VECTOR",
};

int store_ftype_parse(const char *name, size_t len)
{
    for (int t = FT_INT32; t <= FT_VECTOR; t++) {
        if (strlen(type_names[t]) == len && strncasecmp(type_names[t], name, len) == 0)
            return t;
    }
    return 0;
}

const char *store_ftype_name(int type)
{
    if (type < FT_INT32 || type > FT_VECTOR)
        return "UNKNOWN";
    return type_names[type];
}

/* ---- error detail -------------------------------------------------------------------- */

/* Copies at most SHOW_MAX bytes of s into out (size SHOW_MAX + 4), non-printables as '?',
 * with "..." when s was longer. */
static void show(const char *s, size_t len, char *out)
{
    size_t n = len < SHOW_MAX ? len : SHOW_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (len > SHOW_MAX) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

static int ts_fail(const char *s, size_t len, const char *why, char *err, size_t errlen)
{
    char shown[SHOW_MAX + 4];
    show(s, len, shown);
    if (err && errlen > 0)
        snprintf(err, errlen, "invalid timestamp '%s': %s", shown, why);
    return ERR_INVAL;
}

static int value_fail(const char *s, size_t len, const char *what, int type, char *err,
                      size_t errlen)
{
    char shown[SHOW_MAX + 4];
    show(s, len, shown);
    if (err && errlen > 0)
        snprintf(err, errlen, "value '%s' %s %s", shown, what, store_ftype_name(type));
    return ERR_INVAL;
}

/* ---- calendar ------------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                   /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

/* The inverse: a day count since 1970-01-01 to year, month (1-12), day (1-31). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* ---- timestamps ---------------------------------------------------------------------- */

/* Reads exactly n decimal digits at s[*i]; -1 if any is missing or not a digit. */
static int digits(const char *s, size_t len, size_t *i, int n)
{
    int v = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (s[*i] - '0');
    }
    return v;
}

static int looks_like_integer(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (i == 0 && s[i] == '-')))
            return 0;
    }
    return 1;
}

static int parse_epoch_ms(const char *s, size_t len, int64_t *us, char *err, size_t errlen)
{
    int64_t ms;
    size_t first = s[0] == '-'; /* the first digit */
    if (str_to_i64(s, len, &ms) != 0) {
        /* digits without a leading zero that str_to_i64 refuses can only be too many */
        if (first < len && s[first] != '0')
            return ts_fail(s, len, "milliseconds out of range", err, errlen);
        return ts_fail(s, len, "not an integer number of milliseconds", err, errlen);
    }
    if (ms > INT64_MAX / 1000 || ms < INT64_MIN / 1000)
        return ts_fail(s, len, "milliseconds out of range", err, errlen);
    *us = ms * 1000;
    return 0;
}

/* The zone suffix at s[i..len): "", "Z", "+HH:MM", "-HH:MM", "+HHMM". Its offset east of
 * UTC in seconds into *off; NULL on success, else why it is wrong. */
static const char *parse_zone(const char *s, size_t len, size_t i, int64_t *off)
{
    *off = 0;
    if (i == len)
        return NULL;
    if (s[i] == 'Z')
        return i + 1 == len ? NULL : "unexpected characters after the time zone";
    if (s[i] != '+' && s[i] != '-')
        return "unexpected characters after the time";
    int sign = s[i++] == '-' ? -1 : 1;
    int hh = digits(s, len, &i, 2);
    if (hh < 0)
        return "time zone offset must be +HH:MM or +HHMM";
    if (i < len && s[i] == ':')
        i++;
    int mm = digits(s, len, &i, 2);
    if (mm < 0)
        return "time zone offset must be +HH:MM or +HHMM";
    if (i != len)
        return "unexpected characters after the time zone";
    if (hh > 23 || mm > 59)
        return "time zone offset out of range";
    *off = sign * (hh * 3600 + mm * 60);
    return NULL;
}

int store_parse_ts(const char *s, size_t len, int64_t *us, char *err, size_t errlen)
{
    if (len == 0)
        return ts_fail(s, len, "empty", err, errlen);
    if (looks_like_integer(s, len))
        return parse_epoch_ms(s, len, us, err, errlen);

    size_t i = 0;
    int y = digits(s, len, &i, 4);
    if (y < 0 || i >= len || s[i++] != '-')
        return ts_fail(s, len, "expected YYYY-MM-DD or integer milliseconds", err, errlen);
    int mo = digits(s, len, &i, 2);
    if (mo < 0 || i >= len || s[i++] != '-')
        return ts_fail(s, len, "expected YYYY-MM-DD or integer milliseconds", err, errlen);
    int d = digits(s, len, &i, 2);
    if (d < 0)
        return ts_fail(s, len, "expected YYYY-MM-DD or integer milliseconds", err, errlen);
    if (mo < 1 || mo > 12)
        return ts_fail(s, len, "month out of range", err, errlen);
    if (d < 1 || d > days_in_month(y, mo))
        return ts_fail(s, len, "day out of range", err, errlen);

    int hh = 0, mi = 0, ss = 0;
    int64_t frac_us = 0, off = 0;
    if (i < len) {
        if (s[i] != 'T' && s[i] != ' ')
            return ts_fail(s, len, "expected 'T' or ' ' after the date", err, errlen);
        i++;
        hh = digits(s, len, &i, 2);
        if (hh < 0 || i >= len || s[i++] != ':')
            return ts_fail(s, len, "expected HH:MM after the date", err, errlen);
        mi = digits(s, len, &i, 2);
        if (mi < 0)
            return ts_fail(s, len, "expected HH:MM after the date", err, errlen);
        if (i < len && s[i] == ':') {
            i++;
            ss = digits(s, len, &i, 2);
            if (ss < 0)
                return ts_fail(s, len, "expected two digits of seconds", err, errlen);
            if (i < len && s[i] == '.') {
                i++;
                size_t start = i;
                int64_t scale = 100000;
                for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
                    frac_us += (s[i] - '0') * scale; /* digits past the 6th add 0 */
                    scale /= 10;
                }
                if (i == start || i - start > 9)
                    return ts_fail(s, len, "fraction must have 1 to 9 digits", err, errlen);
            }
        }
        if (hh > 23)
            return ts_fail(s, len, "hour out of range", err, errlen);
        if (mi > 59)
            return ts_fail(s, len, "minute out of range", err, errlen);
        if (ss > 59)
            return ts_fail(s, len, "second out of range", err, errlen);
        const char *why = parse_zone(s, len, i, &off);
        if (why)
            return ts_fail(s, len, why, err, errlen);
    }
    /* years 0000..9999 stay within +-3.2e17 us: no overflow is possible */
    int64_t secs = days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - off;
    *us = secs * 1000000 + frac_us;
    return 0;
}

size_t store_format_ts(int64_t us, char *buf)
{
    /* floor division so that times before 1970 keep a fraction in [0, 1e6) */
    int64_t secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    /* years outside 0000..9999 in ISO 8601's expanded form ("+10000", "-0001") */
    const char *sign = y < 0 ? "-" : y > 9999 ? "+" : "";
    int n = snprintf(buf, 32, "%s%04lld-%02d-%02dT%02d:%02d:%02d.%06dZ", sign,
                     (long long)(y < 0 ? -y : y), m, d, (int)(sod / 3600), (int)(sod / 60 % 60),
                     (int)(sod % 60), (int)frac);
    return (size_t)n;
}

/* ---- values -------------------------------------------------------------------------- */

static int parse_bool(const char *s, size_t len, int64_t *out)
{
    if ((len == 1 && s[0] == '1') || (len == 4 && strncasecmp(s, "true", 4) == 0)) {
        *out = 1;
        return 0;
    }
    if ((len == 1 && s[0] == '0') || (len == 5 && strncasecmp(s, "false", 5) == 0)) {
        *out = 0;
        return 0;
    }
    return ERR_RANGE;
}

int store_parse_value(const store_ftype *t, const char *s, size_t len, store_fvalue *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof *out);
    switch (t->type) {
    case FT_INT32:
    case FT_INT64:
        if (str_to_i64(s, len, &out->i) != 0)
            return value_fail(s, len, "is not a valid", t->type, err, errlen);
        if (t->type == FT_INT32 && (out->i < INT32_MIN || out->i > INT32_MAX))
            return value_fail(s, len, "is out of range for", t->type, err, errlen);
        return 0;
    case FT_FLOAT32:
    case FT_FLOAT64:
        if (str_to_double(s, len, &out->f, 0) != 0)
            return value_fail(s, len, "is not a valid", t->type, err, errlen);
        if (t->type == FT_FLOAT32) {
            if (fabs(out->f) > FLT_MAX)
                return value_fail(s, len, "is out of range for", t->type, err, errlen);
            out->f = (double)(float)out->f; /* what will be stored */
        }
        return 0;
    case FT_BOOL:
        if (parse_bool(s, len, &out->i) != 0)
            return value_fail(s, len, "is not a valid", t->type, err, errlen);
        return 0;
    case FT_TIMESTAMP:
        return store_parse_ts(s, len, &out->i, err, errlen);
    case FT_STRING:
    case FT_BYTES:
        out->bytes = s;
        out->len = len;
        return 0;
    case FT_VECTOR:
        if (t->dim == 0 || t->dim > FT_MAX_VECTOR_DIM) {
            if (err && errlen > 0)
                snprintf(err, errlen, "invalid vector dimension %u", t->dim);
            return ERR_INVAL;
        }
        if (len != (size_t)t->dim * 4) {
            if (err && errlen > 0)
                snprintf(err, errlen,
                         "vector blob of %zu bytes does not match dimension %u (expected %zu "
                         "bytes)",
                         len, t->dim, (size_t)t->dim * 4);
            return ERR_INVAL;
        }
        out->bytes = s;
        out->len = len;
        return 0;
    default:
        if (err && errlen > 0)
            snprintf(err, errlen, "unknown feature type %d", t->type);
        return ERR_INVAL;
    }
}

/* ---- row codec ----------------------------------------------------------------------- */

static void put_le(buf *out, uint64_t v, int n)
{
    char b[8];
    for (int k = 0; k < n; k++)
        b[k] = (char)(v >> (8 * k));
    buf_append(out, b, (size_t)n);
}

static uint64_t get_le(const char *p, int n)
{
    uint64_t v = 0;
    for (int k = 0; k < n; k++)
        v |= (uint64_t)(unsigned char)p[k] << (8 * k);
    return v;
}

static void put_varint(buf *out, uint64_t v)
{
    while (v >= 0x80) {
        buf_appendc(out, (char)((v & 0x7f) | 0x80));
        v >>= 7;
    }
    buf_appendc(out, (char)v);
}

/* Reads a minimal LEB128 varint of at most 10 bytes from p[*off..end); -1 when it is cut
 * short, too long, overlong (a redundant final 0 byte) or wider than 64 bits. */
static int get_varint(const char *p, size_t end, size_t *off, uint64_t *v)
{
    *v = 0;
    for (int k = 0; k < 10; k++) {
        if (*off >= end)
            return -1;
        unsigned char c = (unsigned char)p[(*off)++];
        if (k == 9 && c > 1)
            return -1;
        *v |= (uint64_t)(c & 0x7f) << (7 * k);
        if (!(c & 0x80))
            return (c == 0 && k > 0) ? -1 : 0;
    }
    return -1;
}

static uint32_t float_bits(double f)
{
    float x = (float)f;
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static uint64_t double_bits(double f)
{
    uint64_t u;
    memcpy(&u, &f, 8);
    return u;
}

/* Width in bytes of a fixed-size value of type t (VECTOR by its dim); 0 for varint ones. */
static size_t fixed_width(const store_ftype *t)
{
    switch (t->type) {
    case FT_INT32:
    case FT_FLOAT32:
        return 4;
    case FT_INT64:
    case FT_FLOAT64:
    case FT_TIMESTAMP:
        return 8;
    case FT_BOOL:
        return 1;
    case FT_VECTOR:
        return (size_t)t->dim * 4;
    default:
        return 0;
    }
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

/* The encoded size of a row (see ROW FORMAT). */
static size_t row_size(const store_ftype *schema, int n, const store_fvalue *vals)
{
    size_t size = 3 + ((size_t)n + 7) / 8 + 4;
    for (int i = 0; i < n; i++) {
        if (vals[i].is_null)
            continue;
        if (schema[i].type == FT_STRING || schema[i].type == FT_BYTES)
            size += varint_len(vals[i].len) + vals[i].len;
        else
            size += fixed_width(&schema[i]);
    }
    return size;
}

int store_row_encode(const store_ftype *schema, int n, const store_fvalue *vals, buf *out)
{
    if (buf_try_reserve(out, row_size(schema, n, vals)))
        return ERR_NOMEM; /* the appends below then fit */
    size_t start = out->len;
    buf_appendc(out, ROW_VERSION);
    put_le(out, (uint64_t)n, 2);
    size_t bitmap = out->len;
    for (int i = 0; i < (n + 7) / 8; i++)
        buf_appendc(out, 0);
    for (int i = 0; i < n; i++) {
        const store_fvalue *v = &vals[i];
        if (v->is_null) {
            out->data[bitmap + (size_t)i / 8] |= (char)(1 << (i % 8));
            continue;
        }
        switch (schema[i].type) {
        case FT_INT32:
            put_le(out, (uint32_t)(int32_t)v->i, 4);
            break;
        case FT_INT64:
        case FT_TIMESTAMP:
            put_le(out, (uint64_t)v->i, 8);
            break;
        case FT_FLOAT32:
            put_le(out, float_bits(v->f), 4);
            break;
        case FT_FLOAT64:
            put_le(out, double_bits(v->f), 8);
            break;
        case FT_BOOL:
            buf_appendc(out, v->i ? 1 : 0);
            break;
        case FT_STRING:
        case FT_BYTES:
            put_varint(out, v->len);
            buf_append(out, v->bytes, v->len);
            break;
        case FT_VECTOR:
            buf_append(out, v->bytes, (size_t)schema[i].dim * 4);
            break;
        }
    }
    put_le(out, crc32c(0, out->data + start, out->len - start), 4);
    return 0;
}

int store_row_decode(const store_ftype *schema, int n, const char *p, size_t len,
                     store_fvalue *vals)
{
    if (n < 0 || n > FT_MAX_FIELDS)
        return ERR_CORRUPT;
    size_t nbitmap = ((size_t)n + 7) / 8;
    if (len < 3 + nbitmap + 4)
        return ERR_CORRUPT;
    size_t end = len - 4; /* values end where the CRC begins */
    if (crc32c(0, p, end) != (uint32_t)get_le(p + end, 4))
        return ERR_CORRUPT;
    if ((unsigned char)p[0] != ROW_VERSION || get_le(p + 1, 2) != (uint64_t)n)
        return ERR_CORRUPT;
    /* bits past field n-1 in the last bitmap byte must be clear */
    if (n % 8 && ((unsigned char)p[3 + nbitmap - 1] >> (n % 8)))
        return ERR_CORRUPT;

    size_t off = 3 + nbitmap;
    for (int i = 0; i < n; i++) {
        store_fvalue *v = &vals[i];
        memset(v, 0, sizeof *v);
        if ((unsigned char)p[3 + i / 8] & (1u << (i % 8))) {
            v->is_null = 1;
            continue;
        }
        const store_ftype *t = &schema[i];
        size_t w = fixed_width(t);
        if (t->type == FT_STRING || t->type == FT_BYTES) {
            uint64_t slen;
            if (get_varint(p, end, &off, &slen) != 0 || slen > end - off)
                return ERR_CORRUPT;
            v->bytes = p + off;
            v->len = (size_t)slen;
            off += (size_t)slen;
            continue;
        }
        if (w == 0 || (t->type == FT_VECTOR && t->dim > FT_MAX_VECTOR_DIM) || w > end - off)
            return ERR_CORRUPT;
        const char *q = p + off;
        off += w;
        switch (t->type) {
        case FT_INT32:
            v->i = (int32_t)(uint32_t)get_le(q, 4);
            break;
        case FT_INT64:
        case FT_TIMESTAMP:
            v->i = (int64_t)get_le(q, 8);
            break;
        case FT_FLOAT32: {
            uint32_t u = (uint32_t)get_le(q, 4);
            float x;
            memcpy(&x, &u, 4);
            if (!isfinite(x))
                return ERR_CORRUPT;
            v->f = x;
            break;
        }
        case FT_FLOAT64: {
            uint64_t u = get_le(q, 8);
            memcpy(&v->f, &u, 8);
            if (!isfinite(v->f))
                return ERR_CORRUPT;
            break;
        }
        case FT_BOOL:
            if ((unsigned char)q[0] > 1)
                return ERR_CORRUPT;
            v->i = q[0];
            break;
        case FT_VECTOR:
            v->bytes = q;
            v->len = w;
            break;
        }
    }
    return off == end ? 0 : ERR_CORRUPT;
}
