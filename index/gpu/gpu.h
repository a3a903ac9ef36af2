/* gpu.h: exact k-nearest-neighbour search on one CUDA device, the C API of index/gpu/.
 *
 * WHAT. A gpu_index holds float32 vectors resident in device memory, each under a caller's
 * uint32 id (the FLAT index's slot ids). Vectors are added and deleted incrementally; a
 * search of a batch of 1..GPU_MAX_BATCH queries returns, per query, the k (<= GPU_MAX_K)
 * nearest ids and distances, nearest first, ties by smaller id. Distances are the ones the
 * CPU indexes report (index/index.h, DISTANCES): L2 is the squared Euclidean distance, IP is
 * 1 - u.v, COSINE is 1 - cos(u, v) (vectors and queries normalised on the device).
 *
 * HOW. Distances come from cuBLAS SGEMM over tiles of the stored rows (norms precomputed:
 * L2 = |q|^2 + |x|^2 - 2 q.x); right after each tile's GEMM a block-level select merges the
 * tile into a running top-k per query, so the query x N matrix never exists whole. The
 * candidates (a few more than k) are then re-ranked with exact fp32 distances computed
 * directly, so the reported distances match the CPU's to float rounding. GPU_SEARCH_TF32
 * lets the GEMM use TF32 tensor cores and widens the candidate set for the re-rank.
 * Deletes set a bit in a tombstone bitmap on the device; compaction moves live rows into
 * the holes once a quarter of the rows are dead (or on gpu_index_compact).
 *
 * THREADS. A gpu_index is not thread-safe: the caller serialises every call on one index
 * (one writer or one searcher at a time). Distinct indexes may be used from distinct
 * threads. Every call is synchronous: when it returns, the device work is done.
 *
 * OWNERSHIP. Pointers passed in are borrowed for the call only. Outputs go to caller
 * buffers. Error detail goes into the index's last-error text (gpu_index_error), or into
 * the caller's buffer where one is taken.
 *
 * ERRORS. Every function returning int returns 0 or one of enum gpu_status (negative). After
 * GPU_ERR_CUDA the device state may not match the host's: free the index (the server then
 * serves from the CPU). The
 * library depends on nothing of Quiver's: the server's adapter maps these to ERR_GPU,
 * ERR_INVAL, ERR_NOMEM once. */
#ifndef QUIVER_GPU_H
#define QUIVER_GPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum gpu_status {
    GPU_OK = 0,
    GPU_ERR_NO_DEVICE = -1, /* no usable CUDA device (driver missing, none present, bad ordinal) */
    GPU_ERR_OOM = -2,       /* device memory exhausted: the caller falls back to the CPU */
    GPU_ERR_K = -3,         /* k is 0 or above GPU_MAX_K */
    GPU_ERR_DIM = -4,       /* dimension differs from the index's, or is 0 / too large */
    GPU_ERR_ARG = -5,       /* another bad argument (batch size, metric, NULL, zero vector) */
    GPU_ERR_NOTFOUND = -6,  /* delete of an id that is not held */
    GPU_ERR_CUDA = -7,      /* any other CUDA / cuBLAS failure (device lost, launch failed) */
};

enum { GPU_METRIC_L2 = 1, GPU_METRIC_IP = 2, GPU_METRIC_COSINE = 3 }; /* = index.h's VEC_* */

#define GPU_MAX_K 1024
#define GPU_MAX_BATCH 4096
#define GPU_MAX_DIM 32768

/* Search flags. */
#define GPU_SEARCH_TF32 1u /* TF32 tensor-core GEMM, wider candidate set, fp32 re-rank */

typedef struct gpu_index gpu_index;

/* What the device is, for INFO and the skip message of the tests. */
typedef struct gpu_device_info {
    int device_count;
    char name[256]; /* cudaDeviceProp.name */
    size_t total_mem, free_mem;  /* bytes */
    double mem_bandwidth_gbs;    /* peak, from the memory clock and bus width (0 if unknown) */
    int sm_count, cc_major, cc_minor;
} gpu_device_info;

/* Fills *info for device ordinal `device`. GPU_ERR_NO_DEVICE with the CUDA error text in
 * detail (e.g. "cudaGetDeviceCount: no CUDA-capable device is detected") when there is none. */
int gpu_device_query(int device, gpu_device_info *info, char *detail, size_t detail_len);

/* A static string naming a gpu_status; never NULL. */
const char *gpu_strerror(int rc);

/* Creates an empty index of dim-dimensional vectors under metric on device `device`.
 * GPU_ERR_NO_DEVICE, GPU_ERR_DIM, GPU_ERR_ARG (metric), GPU_ERR_OOM, GPU_ERR_CUDA; detail
 * in the caller's buffer. */
int gpu_index_create(int device, uint32_t dim, int metric, gpu_index **out, char *detail,
                     size_t detail_len);
/* Frees the index and all its device memory. NULL is a no-op. */
void gpu_index_free(gpu_index *g);

/* The last error's detail text; valid until the next call on g. */
const char *gpu_index_error(const gpu_index *g);

/* Makes room for `rows` rows in total without reallocating later. GPU_ERR_OOM when the device
 * cannot hold them (nothing changes). */
int gpu_index_reserve(gpu_index *g, uint64_t rows);

/* Adds n vectors of dim floats (row-major) under ids[0..n); an id already held is replaced.
 * The ids within one call must be distinct. GPU_ERR_DIM, GPU_ERR_ARG (COSINE zero vector,
 * duplicate id, id UINT32_MAX), GPU_ERR_OOM, GPU_ERR_CUDA. On error nothing is added. */
int gpu_index_add(gpu_index *g, const uint32_t *ids, const float *vecs, size_t n, uint32_t dim);

/* Deletes ids[0..n). GPU_ERR_NOTFOUND if any is not held (then nothing is deleted). */
int gpu_index_delete(gpu_index *g, const uint32_t *ids, size_t n);

/* Moves live rows into the deleted ones' places now (add and delete also do it on their own
 * when a quarter of the rows are dead). GPU_ERR_CUDA. */
int gpu_index_compact(gpu_index *g);

/* The k nearest of each of nq queries (nq x dim floats, row-major). Per query q, ids[q*k + i]
 * and dists[q*k + i] for i < k, nearest first, ties by smaller id; where fewer than k vectors
 * are held the rest have id -1 and distance +inf. GPU_ERR_K, GPU_ERR_DIM, GPU_ERR_ARG (nq
 * outside 1..GPU_MAX_BATCH, COSINE zero query), GPU_ERR_OOM, GPU_ERR_CUDA. */
int gpu_index_search(gpu_index *g, const float *queries, uint32_t nq, uint32_t dim, uint32_t k,
                     unsigned flags, int64_t *ids, float *dists);

/* Rows per distance tile: 0 (the default) sizes tiles to ~512 MiB of dot products; tests set
 * a small value to cross many tile edges on little data. */
void gpu_index_set_tile_rows(gpu_index *g, uint32_t rows);

/* Live vectors held; rows in device memory (live + tombstoned); device bytes allocated. */
uint64_t gpu_index_count(const gpu_index *g);
uint64_t gpu_index_rows(const gpu_index *g);
uint64_t gpu_index_device_bytes(const gpu_index *g);

/* Time the last search spent, in milliseconds, measured with CUDA events on the index's
 * stream: all of it, and the part in the top-k selection kernels (select, merge, re-rank). */
void gpu_index_last_times(const gpu_index *g, double *total_ms, double *select_ms);

/* The k nearest other vectors of each of n vectors (n x dim floats, row-major), excluding
 * the vector itself: out[i*k + j] is a row index, nearest first, ties by smaller index; where
 * fewer than k others exist the rest are UINT32_MAX. GPU_ERR_* as gpu_index_*. */
int gpu_knn_graph(int device, const float *vecs, uint64_t n, uint32_t dim, int metric,
                  uint32_t k, uint32_t *out, char *detail, size_t detail_len);

#ifdef __cplusplus
}
#endif

#endif
