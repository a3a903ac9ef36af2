/* distance_avx512.c: the distance kernels in AVX-512F, sixteen floats a step, four
 * independent accumulators, and a masked load for the last partial step (no scalar tail;
 * masked-off lanes are never read, so a vector may end at the edge of a page). Built with
 * the -mavx512* flags (Makefile) and marked with the target attribute as well; distance.c
 * calls in only when the CPU has AVX-512F. */
#include <immintrin.h>

#include "index/index_int.h"

#define AVX512 __attribute__((target("avx512f,fma")))

static inline __mmask16 tail_mask(uint32_t r)
{
    return (__mmask16)((1u << r) - 1);
}

static AVX512 float l2sq(const float *a, const float *b, uint32_t dim)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    uint32_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
        __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
        s2 = _mm512_fmadd_ps(d2, d2, s2);
        s3 = _mm512_fmadd_ps(d3, d3, s3);
    }
    for (; i + 16 <= dim; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    if (i < dim) {
        __mmask16 m = tail_mask(dim - i);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        s1 = _mm512_fmadd_ps(d, d, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static AVX512 float dot(const float *a, const float *b, uint32_t dim)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    uint32_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= dim; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < dim) {
        __mmask16 m = tail_mask(dim - i);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* s + (x - y)^2, lane by lane. */
static inline AVX512 __m512 acc_sqdiff(__m512 s, __m512 x, __m512 y)
{
    __m512 d = _mm512_sub_ps(x, y);
    return _mm512_fmadd_ps(d, d, s);
}

/* The four-vector forms: q's sixteen floats are loaded once per step for all four. */
static AVX512 void l2sq_x4(const float *q, const float *const v[4], uint32_t dim, float out[4])
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    uint32_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m512 x = _mm512_loadu_ps(q + i);
        s0 = acc_sqdiff(s0, x, _mm512_loadu_ps(v[0] + i));
        s1 = acc_sqdiff(s1, x, _mm512_loadu_ps(v[1] + i));
        s2 = acc_sqdiff(s2, x, _mm512_loadu_ps(v[2] + i));
        s3 = acc_sqdiff(s3, x, _mm512_loadu_ps(v[3] + i));
    }
    if (i < dim) {
        __mmask16 m = tail_mask(dim - i);
        __m512 x = _mm512_maskz_loadu_ps(m, q + i);
        s0 = acc_sqdiff(s0, x, _mm512_maskz_loadu_ps(m, v[0] + i));
        s1 = acc_sqdiff(s1, x, _mm512_maskz_loadu_ps(m, v[1] + i));
        s2 = acc_sqdiff(s2, x, _mm512_maskz_loadu_ps(m, v[2] + i));
        s3 = acc_sqdiff(s3, x, _mm512_maskz_loadu_ps(m, v[3] + i));
    }
    out[0] = _mm512_reduce_add_ps(s0);
    out[1] = _mm512_reduce_add_ps(s1);
    out[2] = _mm512_reduce_add_ps(s2);
    out[3] = _mm512_reduce_add_ps(s3);
}

static AVX512 void dot_x4(const float *q, const float *const v[4], uint32_t dim, float out[4])
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    uint32_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m512 x = _mm512_loadu_ps(q + i);
        s0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(v[0] + i), s0);
        s1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(v[1] + i), s1);
        s2 = _mm512_fmadd_ps(x, _mm512_loadu_ps(v[2] + i), s2);
        s3 = _mm512_fmadd_ps(x, _mm512_loadu_ps(v[3] + i), s3);
    }
    if (i < dim) {
        __mmask16 m = tail_mask(dim - i);
        __m512 x = _mm512_maskz_loadu_ps(m, q + i);
        s0 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, v[0] + i), s0);
        s1 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, v[1] + i), s1);
        s2 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, v[2] + i), s2);
        s3 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, v[3] + i), s3);
    }
    out[0] = _mm512_reduce_add_ps(s0);
    out[1] = _mm512_reduce_add_ps(s1);
    out[2] = _mm512_reduce_add_ps(s2);
    out[3] = _mm512_reduce_add_ps(s3);
}

const vec_kern vec__kern_avx512 = {"avx512", l2sq, dot, l2sq_x4, dot_x4};
