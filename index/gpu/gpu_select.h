/* gpu_select.h: the block-level top-k selection of index/gpu/, written once for both sides:
 * gpu_kernels.cu runs it in CUDA blocks, test_gpu_select.cpp runs the very same code on CPU
 * threads with a barrier (so its races and edge cases are tested where no GPU exists).
 *
 * The code is generic over a Block: tid(), size(), sync() (a barrier of all its threads) and
 * add(uint32_t *, uint32_t) (an atomic add to block-shared memory, returning the old value).
 * Every function here is called by all threads of a block with the same arguments.
 *
 * KEYS are gpu_int.h's: (order-preserving distance bits << 32) | position-or-id. */
#ifndef QUIVER_GPU_SELECT_H
#define QUIVER_GPU_SELECT_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define GPU_HD __host__ __device__ __forceinline__
#else
#define GPU_HD inline
#endif

#define GPU_KEY_NONE UINT64_MAX
#define GPU_THREADS 256 /* threads of every block-per-query kernel */
/* Keys each thread reads per round of a select: several loads in flight per thread, and a
 * quarter of the barriers per key. */
#define GPU_ITEMS 4

/* Maps a float to a uint32 of the same order (negatives flipped, positives' sign set). */
GPU_HD uint32_t gpu_float_order(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

GPU_HD float gpu_order_float(uint32_t u)
{
    u = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

GPU_HD uint64_t gpu_make_key(float dist, uint32_t low)
{
    return ((uint64_t)gpu_float_order(dist) << 32) | low;
}

/* The keys a select block holds: kp listed, then a buffer up to the next power of two past
 * kp + GPU_ITEMS * GPU_THREADS (so one round's appends always fit after a flush). */
GPU_HD uint32_t gpu_select_span(uint32_t kp)
{
    uint32_t s = 1;
    while (s < kp + GPU_ITEMS * GPU_THREADS)
        s <<= 1;
    return s;
}

/* Sorts n (a power of two) keys ascending. */
template <class Block> GPU_HD void gpu_bitonic_sort(Block &b, uint64_t *a, uint32_t n)
{
    for (uint32_t size = 2; size <= n; size <<= 1) {
        for (uint32_t stride = size >> 1; stride > 0; stride >>= 1) {
            for (uint32_t i = b.tid(); i < n / 2; i += b.size()) {
                uint32_t lo = 2 * i - (i & (stride - 1)), hi = lo + stride;
                bool ascending = (lo & size) == 0;
                uint64_t x = a[lo], y = a[hi];
                if ((x > y) == ascending) {
                    a[lo] = y;
                    a[hi] = x;
                }
            }
            b.sync();
        }
    }
}

/* A running top-k in block-shared memory: keys[0..kp) sorted, keys[kp..span) the buffer of
 * candidates below the threshold (keys[kc - 1] at the last flush). */
struct gpu_topk {
    uint64_t *keys;
    uint32_t kp, kc, span;
    uint32_t *count;     /* keys in the buffer */
    uint64_t *threshold; /* below it a key may enter */

    /* Loads the list from src[0..kp) (sorted, GPU_KEY_NONE for empty places). */
    template <class Block> GPU_HD void load(Block &b, const uint64_t *src)
    {
        for (uint32_t i = b.tid(); i < kp; i += b.size())
            keys[i] = src[i];
        b.sync();
        if (b.tid() == 0) {
            *count = 0;
            *threshold = keys[kc - 1];
        }
        b.sync();
    }

    template <class Block> GPU_HD void store(Block &b, uint64_t *dst)
    {
        for (uint32_t i = b.tid(); i < kp; i += b.size())
            dst[i] = keys[i];
        b.sync();
    }

    /* Sorts list + buffer, keeps the best kp and tightens the threshold. */
    template <class Block> GPU_HD void flush(Block &b)
    {
        for (uint32_t i = kp + *count + b.tid(); i < span; i += b.size())
            keys[i] = GPU_KEY_NONE;
        b.sync();
        gpu_bitonic_sort(b, keys, span);
        if (b.tid() == 0) {
            *count = 0;
            *threshold = keys[kc - 1];
        }
        b.sync();
    }

    /* Offers GPU_ITEMS keys per thread (GPU_KEY_NONE offers nothing). */
    template <class Block> GPU_HD void offer(Block &b, const uint64_t *cand)
    {
        uint32_t buffered = *count;
        b.sync(); /* everyone has read count before anyone appends */
        if (buffered + GPU_ITEMS * b.size() > span - kp)
            flush(b);
        for (int i = 0; i < GPU_ITEMS; i++)
            if (cand[i] < *threshold)
                keys[kp + b.add(count, 1u)] = cand[i];
        b.sync();
    }

    /* Offers key_of(j) for every j in [lo, hi), then flushes what is buffered. A round reads
     * GPU_ITEMS block-widths, each coalesced. Every thread runs the same number of rounds,
     * since offer() is a barrier. */
    template <class Block, class KeyOf>
    GPU_HD void offer_range(Block &b, uint32_t lo, uint32_t hi, KeyOf key_of)
    {
        for (uint32_t base = lo; base < hi; base += GPU_ITEMS * b.size()) {
            uint64_t cand[GPU_ITEMS];
            for (int i = 0; i < GPU_ITEMS; i++) {
                uint32_t j = base + i * b.size() + b.tid();
                cand[i] = j < hi ? key_of(j) : GPU_KEY_NONE;
            }
            offer(b, cand);
        }
        uint32_t buffered = *count;
        b.sync();
        if (buffered > 0)
            flush(b);
    }
};

#endif
