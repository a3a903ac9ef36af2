/* distance_avx2.c: the distance kernels in AVX2 with FMA, eight floats a step, four
 * independent accumulators, and a masked load for the last partial step (no scalar tail).
 * Built with -mavx2 -mfma (Makefile) and marked with the target attribute as well, so that
 * a build without those flags still compiles; distance.c calls in only when the CPU has
 * both. */
#include <immintrin.h>

#include "index/index_int.h"

#define AVX2 __attribute__((target("avx2,fma")))

/* tail_mask(r): the first r of eight lanes set (0 <= r <= 8). */
static const int32_t mask_bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

static inline AVX2 __m256i tail_mask(uint32_t r)
{
    return _mm256_loadu_si256((const __m256i *)(mask_bits + 8 - r));
}

static inline AVX2 float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static AVX2 float l2sq(const float *a, const float *b, uint32_t dim)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    uint32_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
    }
    for (; i + 8 <= dim; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    if (i < dim) {
        __m256i m = tail_mask(dim - i);
        __m256 d = _mm256_sub_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m));
        s1 = _mm256_fmadd_ps(d, d, s1);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

static AVX2 float dot(const float *a, const float *b, uint32_t dim)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    uint32_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= dim; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    if (i < dim) {
        __m256i m = tail_mask(dim - i);
        s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

/* s + (x - y)^2, lane by lane. */
static inline AVX2 __m256 acc_sqdiff(__m256 s, __m256 x, __m256 y)
{
    __m256 d = _mm256_sub_ps(x, y);
    return _mm256_fmadd_ps(d, d, s);
}

/* The four-vector forms: q's eight floats are loaded once per step for all four. */
static AVX2 void l2sq_x4(const float *q, const float *const v[4], uint32_t dim, float out[4])
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    uint32_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        __m256 x = _mm256_loadu_ps(q + i);
        s0 = acc_sqdiff(s0, x, _mm256_loadu_ps(v[0] + i));
        s1 = acc_sqdiff(s1, x, _mm256_loadu_ps(v[1] + i));
        s2 = acc_sqdiff(s2, x, _mm256_loadu_ps(v[2] + i));
        s3 = acc_sqdiff(s3, x, _mm256_loadu_ps(v[3] + i));
    }
    if (i < dim) {
        __m256i m = tail_mask(dim - i);
        __m256 x = _mm256_maskload_ps(q + i, m);
        s0 = acc_sqdiff(s0, x, _mm256_maskload_ps(v[0] + i, m));
        s1 = acc_sqdiff(s1, x, _mm256_maskload_ps(v[1] + i, m));
        s2 = acc_sqdiff(s2, x, _mm256_maskload_ps(v[2] + i, m));
        s3 = acc_sqdiff(s3, x, _mm256_maskload_ps(v[3] + i, m));
    }
    out[0] = hsum(s0);
    out[1] = hsum(s1);
    out[2] = hsum(s2);
    out[3] = hsum(s3);
}

static AVX2 void dot_x4(const float *q, const float *const v[4], uint32_t dim, float out[4])
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    uint32_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        __m256 x = _mm256_loadu_ps(q + i);
        s0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(v[0] + i), s0);
        s1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(v[1] + i), s1);
        s2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(v[2] + i), s2);
        s3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(v[3] + i), s3);
    }
    if (i < dim) {
        __m256i m = tail_mask(dim - i);
        __m256 x = _mm256_maskload_ps(q + i, m);
        s0 = _mm256_fmadd_ps(x, _mm256_maskload_ps(v[0] + i, m), s0);
        s1 = _mm256_fmadd_ps(x, _mm256_maskload_ps(v[1] + i, m), s1);
        s2 = _mm256_fmadd_ps(x, _mm256_maskload_ps(v[2] + i, m), s2);
        s3 = _mm256_fmadd_ps(x, _mm256_maskload_ps(v[3] + i, m), s3);
    }
    out[0] = hsum(s0);
    out[1] = hsum(s1);
    out[2] = hsum(s2);
    out[3] = hsum(s3);
}

const vec_kern vec__kern_avx2 = {"avx2", l2sq, dot, l2sq_x4, dot_x4};
