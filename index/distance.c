/* distance.c: the distance kernels' portable versions and their run-time dispatch. The best
 * level the CPU runs (AVX-512, AVX2+FMA, or this file's scalar code) is chosen once, capped
 * by QUIVER_SIMD=scalar|avx2 in the environment; every index reaches the kernels through
 * vec__kern(). The scalar code keeps four float accumulators, as the SIMD files keep four
 * registers, so that every level sums in a similar order. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "index/index_int.h"

static float l2sq_scalar(const float *a, const float *b, uint32_t dim)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    uint32_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1];
        float d2 = a[i + 2] - b[i + 2], d3 = a[i + 3] - b[i + 3];
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}

static float dot_scalar(const float *a, const float *b, uint32_t dim)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    uint32_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < dim; i++)
        s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static void l2sq_x4_scalar(const float *q, const float *const v[4], uint32_t dim, float out[4])
{
    for (int j = 0; j < 4; j++)
        out[j] = l2sq_scalar(q, v[j], dim);
}

static void dot_x4_scalar(const float *q, const float *const v[4], uint32_t dim, float out[4])
{
    for (int j = 0; j < 4; j++)
        out[j] = dot_scalar(q, v[j], dim);
}

const vec_kern vec__kern_scalar = {"scalar", l2sq_scalar, dot_scalar, l2sq_x4_scalar,
                                   dot_x4_scalar};

const vec_kern *vec__kern_level(int level)
{
    __builtin_cpu_init();
    switch (level) {
    case VEC_KERN_SCALAR:
        return &vec__kern_scalar;
    case VEC_KERN_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &vec__kern_avx2
                                                                               : NULL;
    case VEC_KERN_AVX512:
        return __builtin_cpu_supports("avx512f") ? &vec__kern_avx512 : NULL;
    default:
        return NULL;
    }
}

static const vec_kern *active;
static pthread_once_t active_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    const char *cap = getenv("QUIVER_SIMD");
    int level = VEC_KERN_AVX512;
    if (cap && strcmp(cap, "scalar") == 0)
        level = VEC_KERN_SCALAR;
    else if (cap && strcmp(cap, "avx2") == 0)
        level = VEC_KERN_AVX2;
    while (!vec__kern_level(level))
        level--;
    active = vec__kern_level(level);
}

const vec_kern *vec__kern(void)
{
    pthread_once(&active_once, choose);
    return active;
}

float vec_l2sq(const float *a, const float *b, uint32_t dim)
{
    return vec__kern()->l2sq(a, b, dim);
}

float vec_dot(const float *a, const float *b, uint32_t dim)
{
    return vec__kern()->dot(a, b, dim);
}

float vec_distance(int metric, const float *a, const float *b, uint32_t dim)
{
    if (metric == VEC_L2)
        return vec_l2sq(a, b, dim);
    return vec__dist_from_dot(vec_dot(a, b, dim));
}

int vec_normalize(float *v, uint32_t dim)
{
    double ss = 0;
    for (uint32_t i = 0; i < dim; i++)
        ss += (double)v[i] * v[i];
    if (!(ss > 0) || !isfinite(ss))
        return ERR_INVAL;
    double inv = 1.0 / sqrt(ss);
    for (uint32_t i = 0; i < dim; i++)
        v[i] = (float)(v[i] * inv);
    return 0;
}

const char *vec_kernels(void)
{
    return vec__kern()->name;
}
