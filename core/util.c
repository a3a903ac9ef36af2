/* util.c: number parsing and formatting with Redis's exact rules, glob matching, clocks,
 * and the growable byte buffer everything else builds replies and keys in. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
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

static const double pow10_exact[] = { /* every power of ten a double holds exactly */
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};
#define TWO_POW_53 9007199254740992.0

/* The fewest decimal places s (and the digits n) with n / 10^s == a: a decimal n * 10^-s
 * with n < 2^53 and s <= 22 is two exact doubles, so their quotient is correctly rounded,
 * exactly as strtod would read the decimal: the test is exact, without formatting or
 * parsing anything. The product a * 10^s is within half a unit of the true one, so the
 * right n is the nearest integer or its neighbour on the side of the product. 0 when a
 * needs digits past 2^53 (16 or 17 significant digits). */
static int fewest_places(double a, int64_t *n, int *s)
{
    for (int k = 0; k < (int)(sizeof pow10_exact / sizeof pow10_exact[0]); k++) {
        double scaled = a * pow10_exact[k];
        if (scaled >= TWO_POW_53)
            return 0;
        double r = nearbyint(scaled);
        double other = scaled > r ? r + 1 : r - 1;
        if (r / pow10_exact[k] != a)
            r = other; /* the neighbour, or no n at all with k places */
        if (r > 0 && r < TWO_POW_53 && r / pow10_exact[k] == a) {
            *n = (int64_t)r;
            *s = k;
            return 1;
        }
    }
    return 0;
}

/* n * 10^-s in fixed notation ("0.0012", "12.5"); n > 0 has no trailing zero when s > 0. */
static size_t fixed_to_str(char *buf, int neg, int64_t n, int s)
{
    char digits[24];
    size_t nd = i64_to_str(digits, n), len = 0;
    if (neg)
        buf[len++] = '-';
    if ((size_t)s >= nd) {
        buf[len++] = '0';
        buf[len++] = '.';
        for (size_t i = nd; i < (size_t)s; i++)
            buf[len++] = '0';
        memcpy(buf + len, digits, nd);
        len += nd;
    } else {
        memcpy(buf + len, digits, nd - (size_t)s);
        len += nd - (size_t)s;
        if (s > 0) {
            buf[len++] = '.';
            memcpy(buf + len, digits + nd - s, (size_t)s);
            len += (size_t)s;
        }
    }
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
    /* Where %g would use fixed notation and 15 digits suffice (most values), the shortest
     * digits come from exact arithmetic: a tenth of the cost of printing and parsing. */
    double a = fabs(v);
    int64_t n;
    int s;
    if (a >= 1e-4 && a < 1e15 && fewest_places(a, &n, &s))
        return fixed_to_str(buf, v < 0, n, s);
    /* Shortest representation that round-trips. */
    for (int prec = 15; prec <= 17; prec++) {
        int len = snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return (size_t)len;
    }
    return (size_t)snprintf(buf, 32, "%.17g", v);
}

double float_shortest(float f)
{
    /* Below 2^24 a float's spacing is at most 1, so the shortest decimal has no fewer
     * integer digits than f: only the places after the point are to find. */
    double a = fabs((double)f);
    for (int k = 0; a < 16777216.0 && k < (int)(sizeof pow10_exact / sizeof pow10_exact[0]); k++) {
        double scaled = a * pow10_exact[k];
        if (scaled >= TWO_POW_53 || !isfinite(scaled))
            break;
        double r = nearbyint(scaled);
        double other = scaled > r ? r + 1 : r - 1;
        double d = r / pow10_exact[k];
        if ((float)d != (float)a && other > 0 && (float)(other / pow10_exact[k]) == (float)a)
            d = other / pow10_exact[k];
        if ((float)d == (float)a)
            return f < 0 ? -d : d;
    }
    /* Tiny or large: print and parse, digit by digit. */
    char tmp[64];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(tmp, sizeof tmp, "%.*g", digits, (double)f);
        double d = strtod(tmp, NULL);
        if ((float)d == f)
            return d;
    }
    return (double)f;
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

/* The capacity that fits extra more bytes: doubling from 64 (0 on overflow). */
static size_t buf_grown_cap(const buf *b, size_t extra)
{
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            return 0;
        cap *= 2;
    }
    return cap;
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

int buf_try_reserve(buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = buf_grown_cap(b, extra);
    char *p = cap ? try_realloc(b->data, cap) : NULL;
    if (!p)
        return ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_try_append(buf *b, const void *p, size_t n)
{
    if (buf_try_reserve(b, n))
        return ERR_NOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
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

/* CRC32C (Castagnoli), reflected polynomial 0x82F63B78, one table lookup per byte. The
 * table is the CRC of each byte value, written out so that nothing is computed at startup. */
static const uint32_t crc32c_table[256] = {
    0x00000000U, 0xf26b8303U, 0xe13b70f7U, 0x1350f3f4U, 0xc79a971fU, 0x35f1141cU, 0x26a1e7e8U,
    0xd4ca64ebU, 0x8ad958cfU, 0x78b2dbccU, 0x6be22838U, 0x9989ab3bU, 0x4d43cfd0U, 0xbf284cd3U,
    0xac78bf27U, 0x5e133c24U, 0x105ec76fU, 0xe235446cU, 0xf165b798U, 0x030e349bU, 0xd7c45070U,
    0x25afd373U, 0x36ff2087U, 0xc494a384U, 0x9a879fa0U, 0x68ec1ca3U, 0x7bbcef57U, 0x89d76c54U,
    0x5d1d08bfU, 0xaf768bbcU, 0xbc267848U, 0x4e4dfb4bU, 0x20bd8edeU, 0xd2d60dddU, 0xc186fe29U,
    0x33ed7d2aU, 0xe72719c1U, 0x154c9ac2U, 0x061c6936U, 0xf477ea35U, 0xaa64d611U, 0x580f5512U,
    0x4b5fa6e6U, 0xb93425e5U, 0x6dfe410eU, 0x9f95c20dU, 0x8cc531f9U, 0x7eaeb2faU, 0x30e349b1U,
    0xc288cab2U, 0xd1d83946U, 0x23b3ba45U, 0xf779deaeU, 0x05125dadU, 0x1642ae59U, 0xe4292d5aU,
    0xba3a117eU, 0x4851927dU, 0x5b016189U, 0xa96ae28aU, 0x7da08661U, 0x8fcb0562U, 0x9c9bf696U,
    0x6ef07595U, 0x417b1dbcU, 0xb3109ebfU, 0xa0406d4bU, 0x522bee48U, 0x86e18aa3U, 0x748a09a0U,
    0x67dafa54U, 0x95b17957U, 0xcba24573U, 0x39c9c670U, 0x2a993584U, 0xd8f2b687U, 0x0c38d26cU,
    0xfe53516fU, 0xed03a29bU, 0x1f682198U, 0x5125dad3U, 0xa34e59d0U, 0xb01eaa24U, 0x42752927U,
    0x96bf4dccU, 0x64d4cecfU, 0x77843d3bU, 0x85efbe38U, 0xdbfc821cU, 0x2997011fU, 0x3ac7f2ebU,
    0xc8ac71e8U, 0x1c661503U, 0xee0d9600U, 0xfd5d65f4U, 0x0f36e6f7U, 0x61c69362U, 0x93ad1061U,
    0x80fde395U, 0x72966096U, 0xa65c047dU, 0x5437877eU, 0x4767748aU, 0xb50cf789U, 0xeb1fcbadU,
    0x197448aeU, 0x0a24bb5aU, 0xf84f3859U, 0x2c855cb2U, 0xdeeedfb1U, 0xcdbe2c45U, 0x3fd5af46U,
    0x7198540dU, 0x83f3d70eU, 0x90a324faU, 0x62c8a7f9U, 0xb602c312U, 0x44694011U, 0x5739b3e5U,
    0xa55230e6U, 0xfb410cc2U, 0x092a8fc1U, 0x1a7a7c35U, 0xe811ff36U, 0x3cdb9bddU, 0xceb018deU,
    0xdde0eb2aU, 0x2f8b6829U, 0x82f63b78U, 0x709db87bU, 0x63cd4b8fU, 0x91a6c88cU, 0x456cac67U,
    0xb7072f64U, 0xa457dc90U, 0x563c5f93U, 0x082f63b7U, 0xfa44e0b4U, 0xe9141340U, 0x1b7f9043U,
    0xcfb5f4a8U, 0x3dde77abU, 0x2e8e845fU, 0xdce5075cU, 0x92a8fc17U, 0x60c37f14U, 0x73938ce0U,
    0x81f80fe3U, 0x55326b08U, 0xa759e80bU, 0xb4091bffU, 0x466298fcU, 0x1871a4d8U, 0xea1a27dbU,
    0xf94ad42fU, 0x0b21572cU, 0xdfeb33c7U, 0x2d80b0c4U, 0x3ed04330U, 0xccbbc033U, 0xa24bb5a6U,
    0x502036a5U, 0x4370c551U, 0xb11b4652U, 0x65d122b9U, 0x97baa1baU, 0x84ea524eU, 0x7681d14dU,
    0x2892ed69U, 0xdaf96e6aU, 0xc9a99d9eU, 0x3bc21e9dU, 0xef087a76U, 0x1d63f975U, 0x0e330a81U,
    0xfc588982U, 0xb21572c9U, 0x407ef1caU, 0x532e023eU, 0xa145813dU, 0x758fe5d6U, 0x87e466d5U,
    0x94b49521U, 0x66df1622U, 0x38cc2a06U, 0xcaa7a905U, 0xd9f75af1U, 0x2b9cd9f2U, 0xff56bd19U,
    0x0d3d3e1aU, 0x1e6dcdeeU, 0xec064eedU, 0xc38d26c4U, 0x31e6a5c7U, 0x22b65633U, 0xd0ddd530U,
    0x0417b1dbU, 0xf67c32d8U, 0xe52cc12cU, 0x1747422fU, 0x49547e0bU, 0xbb3ffd08U, 0xa86f0efcU,
    0x5a048dffU, 0x8ecee914U, 0x7ca56a17U, 0x6ff599e3U, 0x9d9e1ae0U, 0xd3d3e1abU, 0x21b862a8U,
    0x32e8915cU, 0xc083125fU, 0x144976b4U, 0xe622f5b7U, 0xf5720643U, 0x07198540U, 0x590ab964U,
    0xab613a67U, 0xb831c993U, 0x4a5a4a90U, 0x9e902e7bU, 0x6cfbad78U, 0x7fab5e8cU, 0x8dc0dd8fU,
    0xe330a81aU, 0x115b2b19U, 0x020bd8edU, 0xf0605beeU, 0x24aa3f05U, 0xd6c1bc06U, 0xc5914ff2U,
    0x37faccf1U, 0x69e9f0d5U, 0x9b8273d6U, 0x88d28022U, 0x7ab90321U, 0xae7367caU, 0x5c18e4c9U,
    0x4f48173dU, 0xbd23943eU, 0xf36e6f75U, 0x0105ec76U, 0x12551f82U, 0xe03e9c81U, 0x34f4f86aU,
    0xc69f7b69U, 0xd5cf889dU, 0x27a40b9eU, 0x79b737baU, 0x8bdcb4b9U, 0x988c474dU, 0x6ae7c44eU,
    0xbe2da0a5U, 0x4c4623a6U, 0x5f16d052U, 0xad7d5351U,
};

static uint32_t crc32c_table_update(uint32_t crc, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        crc = crc32c_table[(crc ^ s[i]) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
/* SSE4.2 has CRC32C as an instruction: 8 bytes a step instead of one table lookup a byte
 * (every row read checks one). Chosen once, at the first call. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw_update(uint32_t crc,
                                                                   const unsigned char *s,
                                                                   size_t n)
{
    uint64_t c = crc;
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, s, sizeof w);
        c = __builtin_ia32_crc32di(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    for (; n > 0; s++, n--)
        c32 = __builtin_ia32_crc32qi(c32, *s);
    return c32;
}
#endif

uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
#if defined(__x86_64__)
    static atomic_int hw = -1; /* any thread may be first: both would store the same */
    int use = atomic_load_explicit(&hw, memory_order_relaxed);
    if (use < 0) {
        use = __builtin_cpu_supports("sse4.2") && !getenv("QUIVER_NO_HW_CRC");
        atomic_store_explicit(&hw, use, memory_order_relaxed);
    }
    if (use)
        return ~crc32c_hw_update(~crc, p, n);
#endif
    return ~crc32c_table_update(~crc, p, n);
}
