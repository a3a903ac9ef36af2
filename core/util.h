/* util.h: small pure helpers shared by every module: strict number parsing and formatting,
 * glob matching, clocks, and a growable byte buffer. No state, no I/O; all thread-safe. */
#ifndef QUIVER_UTIL_H
#define QUIVER_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Strict integer parse of exactly len bytes (Redis rules: optional '-', no '+', no spaces,
 * no leading zeros except "0"). Returns 0 or ERR_RANGE (not an integer, or overflow). */
int str_to_i64(const char *s, size_t len, int64_t *out);
/* Strict double parse of exactly len bytes; rejects spaces, NaN and empty input. "inf" is
 * accepted only when allow_inf. Returns 0 or ERR_RANGE. */
int str_to_double(const char *s, size_t len, double *out, int allow_inf);
/* Formats v into buf (at least 21 bytes); returns the length. */
size_t i64_to_str(char *buf, int64_t v);
/* Formats a double the way Redis replies it: shortest round-trip form ("%.17g" trimmed),
 * integers without exponent when exact, "inf"/"-inf". buf at least 32 bytes. */
size_t double_to_str(char *buf, double v);
/* The double with the fewest significant digits that converts to the same float as f
 * (0.1f gives 0.1, not 0.10000000149011612), for replying FLOAT32 values. */
double float_shortest(float f);
/* Formats a long double the way INCRBYFLOAT replies it: fixed notation with every integer
 * digit (as Redis), 17 decimals with trailing zeros trimmed. buf holds LDOUBLE_STR_MAX. */
#define LDOUBLE_STR_MAX (5 * 1024)
size_t ldouble_to_str(char *buf, long double v);

/* Redis glob: * ? [abc] [^a] [a-z] and \ escapes; nocase folds ASCII. 1 on match. */
int glob_match(const char *pat, size_t plen, const char *s, size_t slen, int nocase);

int64_t clock_ms(void);      /* wall clock, ms since the Unix epoch */
int64_t clock_us(void);      /* wall clock, us since the Unix epoch */
int64_t clock_mono_us(void); /* monotonic, us */

/* A growable byte buffer. len bytes are valid at data; cap is the allocation. */
typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

void buf_init(buf *b);
void buf_free(buf *b);
void buf_reserve(buf *b, size_t extra); /* aborts on OOM: internal sizes only */
void buf_append(buf *b, const void *p, size_t n);
/* Fallible forms for sizes a client controls: ERR_NOMEM (b unchanged) or 0. */
int buf_try_reserve(buf *b, size_t extra);
int buf_try_append(buf *b, const void *p, size_t n);
void buf_appendc(buf *b, char c);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* CRC32C (Castagnoli), the checksum of every persisted format; crc 0 to start. */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);

/* 64-bit hash of bytes (FNV-1a variant with a final mix); stable across runs and builds. */
uint64_t hash_bytes(const void *p, size_t n, uint64_t seed);

#endif
