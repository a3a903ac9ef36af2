/* util.c: number parsing and formatting with Redis's exact rules, glob matching, clocks,
 * and the growable byte buffer everything else builds replies and keys in. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "err.h"

int str_to_i64(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > 20)
        return ERR_RANGE;
    size_t i = 0;
    int neg = 0;
    if (s[0] == '-') {
        neg = 1;
        if (++i == len)
            return ERR_RANGE;
    }
    if (s[i] == '0' && len > i + 1)
        return ERR_RANGE;
    if (s[i] == '0' && neg)
        return ERR_RANGE; /* "-0" is not an integer for Redis */
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return ERR_RANGE;
        uint64_t d = (uint64_t)(s[i] - '0');
        /* 19 digits cannot overflow 64 bits: only the 20th needs the (slow) check */
        if (i >= 19 && v > (UINT64_MAX - d) / 10)
            return ERR_RANGE;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return ERR_RANGE;
        *out = (int64_t)(0 - v);
    } else {
        if (v > (uint64_t)INT64_MAX)
            return ERR_RANGE;
        *out = (int64_t)v;
    }
    return 0;
}

int str_to_double(const char *s, size_t len, double *out, int allow_inf)
{
    char tmp[256];
    if (len == 0 || len >= sizeof tmp || isspace((unsigned char)s[0]))
        return ERR_RANGE;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (end != tmp + len || isnan(v))
        return ERR_RANGE;
    /* Redis's string2d: overflow to infinity and underflow to zero are errors, a subnormal
     * result (also ERANGE in glibc) is a valid number. */
    if (errno == ERANGE && (isinf(v) || v == 0))
        return ERR_RANGE;
    if (isinf(v) && !allow_inf)
        return ERR_RANGE;
    *out = v;
    return 0;
}

size_t i64_to_str(char *buf, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0)
        buf[len++] = '-';
    while (n)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}

size_t double_to_str(char *buf, double v)
{
    if (isinf(v))
        return (size_t)sprintf(buf, v > 0 ? "inf" : "-inf");
    /* Exact integers print without an exponent, within Redis's range (|v| <= 2^62); zero
     * goes below so that -0.0 keeps its sign. */
    if (v != 0 && v >= -4611686018427387904.0 && v <= 4611686018427387904.0 &&
        v == (double)(int64_t)v)
        return i64_to_str(buf, (int64_t)v);
    /* Shortest representation that round-trips. */
    for (int prec = 15; prec <= 17; prec++) {
        int n = snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return (size_t)n;
    }
    return (size_t)snprintf(buf, 32, "%.17g", v);
}

size_t ldouble_to_str(char *buf, long double v)
{
    if (isinf(v))
        return (size_t)sprintf(buf, v > 0 ? "inf" : "-inf");
    int n = snprintf(buf, LDOUBLE_STR_MAX, "%.17Lf", v);
    if (n < 0 || n >= LDOUBLE_STR_MAX) /* beyond any finite long double: cannot happen */
        return (size_t)snprintf(buf, LDOUBLE_STR_MAX, "%.17Lg", v);
    if (strchr(buf, '.')) {
        while (n > 0 && buf[n - 1] == '0')
            n--;
        if (n > 0 && buf[n - 1] == '.')
            n--;
        buf[n] = '\0';
    }
    if (n == 2 && buf[0] == '-' && buf[1] == '0')
        n = (int)sprintf(buf, "0");
    return (size_t)n;
}

static int fold(int c, int nocase)
{
    return nocase ? tolower(c) : c;
}

/* skip: set once the rest of the pattern after a '*' matched no suffix of the string; every
 * enclosing '*' would then only retry shorter suffixes, so all of them give up at once (the
 * fix of Redis's CVE-2022-36021, without which "*a*a*a...b" takes exponential time).
 * depth bounds the recursion, one level per '*', as Redis does. */
static int glob_impl(const char *p, size_t plen, const char *s, size_t slen, int nocase, int *skip,
                     int depth)
{
    if (depth > 1000)
        return 0;
    while (plen && slen) {
        switch (p[0]) {
        case '*':
            while (plen > 1 && p[1] == '*')
                p++, plen--;
            if (plen == 1)
                return 1;
            for (size_t i = 0; i <= slen; i++) {
                if (glob_impl(p + 1, plen - 1, s + i, slen - i, nocase, skip, depth + 1))
                    return 1;
                if (*skip)
                    return 0;
            }
            *skip = 1;
            return 0;
        case '?':
            break;
        case '[': {
            p++, plen--;
            int neg = plen && p[0] == '^';
            if (neg)
                p++, plen--;
            int match = 0;
            while (plen && p[0] != ']') {
                if (p[0] == '\\' && plen >= 2) {
                    p++, plen--;
                    if (fold((unsigned char)p[0], nocase) == fold((unsigned char)s[0], nocase))
                        match = 1;
                } else if (plen >= 3 && p[1] == '-' && p[2] != ']') {
                    int a = fold((unsigned char)p[0], nocase), b = fold((unsigned char)p[2], nocase);
                    int c = fold((unsigned char)s[0], nocase);
                    if (a > b) {
                        int t = a;
                        a = b;
                        b = t;
                    }
                    if (c >= a && c <= b)
                        match = 1;
                    p += 2, plen -= 2;
                } else if (fold((unsigned char)p[0], nocase) == fold((unsigned char)s[0], nocase)) {
                    match = 1;
                }
                p++, plen--;
            }
            if (neg)
                match = !match;
            if (!match)
                return 0;
            if (!plen) /* unterminated class: treat as end of pattern */
                return slen == 1;
            break;
        }
        case '\\':
            if (plen >= 2)
                p++, plen--;
            /* fall through */
        default:
            if (fold((unsigned char)p[0], nocase) != fold((unsigned char)s[0], nocase))
                return 0;
            break;
        }
        p++, plen--;
        s++, slen--;
    }
    while (plen && p[0] == '*')
        p++, plen--;
    return plen == 0 && slen == 0;
}

int glob_match(const char *p, size_t plen, const char *s, size_t slen, int nocase)
{
    int skip = 0;
    return glob_impl(p, plen, s, slen, nocase, &skip, 0);
}

int64_t clock_ms(void)
{
    return clock_us() / 1000;
}

int64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void buf_init(buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_free(buf *b)
{
    xfree(b->data);
    buf_init(b);
}

void buf_reserve(buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void buf_append(buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

void buf_appendc(buf *b, char c)
{
    buf_reserve(b, 1);
    b->data[b->len++] = c;
}

void buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

uint64_t hash_bytes(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}
