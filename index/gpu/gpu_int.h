/* gpu_int.h: what gpu_index.cu (the host side) and gpu_kernels.cu (the device side) share:
 * the launchers of the kernels and the layout of the search state. Not for use outside
 * index/gpu/.
 *
 * KEYS (gpu_select.h makes them). A candidate is one uint64: the distance mapped to an order-preserving uint32 in the
 * high half, a row position (during the scan) or an id (after the re-rank) in the low half.
 * So one integer compare orders by distance, then by position or id, and GPU_KEY_NONE
 * (all ones) is larger than every real candidate: an empty slot of a top-k list. */
#ifndef QUIVER_GPU_INT_H
#define QUIVER_GPU_INT_H

#include <cuda_runtime.h>
#include <stdint.h>

#include "index/gpu/gpu_select.h"

/* Where one search reads from: the stored rows and their side arrays, the prepared queries. */
typedef struct gpu_search_args {
    const float *rows;       /* n_rows x dim, row-major */
    const float *norms;      /* |x|^2 per row (L2 only) */
    const uint32_t *row_ids; /* row -> caller's id */
    const uint32_t *tomb;    /* tombstone bitmap, bit r of word r/32 set: row r is deleted */
    const float *queries;    /* nq x dim, normalised for COSINE */
    const float *qnorms;     /* |q|^2 per query */
    uint32_t dim, nq;
    int metric;
    uint64_t *state; /* nq x lanes x kp running top-k keys (by row position) */
    uint32_t lanes, kp, kc; /* lanes per query; list capacity (a power of two >= kc); kept */
} gpu_search_args;

/* The shared memory bytes of a select kernel whose list holds kp keys. */
size_t gpu__select_smem(uint32_t kp);

/* Writes n rows from src (n x dim) to positions pos[], with their ids, and their squared
 * norms; normalises them first when `normalise` (COSINE). */
void gpu__scatter_rows(cudaStream_t s, float *rows, float *norms, uint32_t *row_ids,
                       const float *src, const uint32_t *pos, const uint32_t *ids, uint32_t n,
                       uint32_t dim, int normalise);
/* Sets the tombstone bits of the n rows at pos[]. */
void gpu__set_tombstones(cudaStream_t s, uint32_t *tomb, const uint32_t *pos, uint32_t n);
/* Copies row src[i] (vector, norm, id) over row dst[i], for i < n; no src is also a dst. */
void gpu__move_rows(cudaStream_t s, float *rows, float *norms, uint32_t *row_ids,
                    const uint32_t *src, const uint32_t *dst, uint32_t n, uint32_t dim);
/* Normalises the nq queries in place when `normalise`, and writes their squared norms. */
void gpu__prep_queries(cudaStream_t s, float *q, float *qnorms, uint32_t nq, uint32_t dim,
                       int normalise);
/* Merges one tile of dot products (dots[q * tile_rows + j] = q . row(tile_start + j)) into
 * the running top-k lists of a->state; each query's tile is split among a->lanes blocks. */
void gpu__select_tile(cudaStream_t s, const gpu_search_args *a, const float *dots,
                      uint64_t tile_start, uint32_t tile_rows);
/* Per query: merges the lanes' lists into the kc best, re-computes their distances exactly
 * in fp32, and writes the k best (ids, then -1 / +inf where fewer exist). */
void gpu__finish(cudaStream_t s, const gpu_search_args *a, uint32_t k, int64_t *out_ids,
                 float *out_dists);

#endif
