/* gpu_kernels.cu: the device side of index/gpu/: row upkeep (scatter, tombstones, moves),
 * query preparation, and the top-k selection that runs after each distance tile's GEMM.
 *
 * The selection (gpu_select.h) is one block per (query, lane). The block keeps its running
 * top-k as sorted keys (gpu_int.h, KEYS) in shared memory, with a buffer behind them. Each
 * round its threads read GPU_ITEMS block-widths of the tile, turn each dot product into a
 * distance and append only keys below the current k-th key (the threshold) to the buffer;
 * when the buffer could overflow, a bitonic sort of list + buffer keeps the best kp and
 * tightens the threshold. After the first tile few candidates pass, so a tile costs about
 * one read of its dot products. */
#include <math.h>

#include "index/gpu/gpu.h"
#include "index/gpu/gpu_int.h"

/* gpu_select.h's Block on a CUDA thread block. */
struct cuda_block {
    __device__ uint32_t tid() const { return threadIdx.x; }
    __device__ uint32_t size() const { return blockDim.x; }
    __device__ void sync() const { __syncthreads(); }
    __device__ uint32_t add(uint32_t *p, uint32_t v) const { return atomicAdd(p, v); }
};

__device__ float warp_sum(float v)
{
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, off);
    return __shfl_sync(0xffffffffu, v, 0);
}

/* Sum over the block of each thread's v; every thread gets it. */
__device__ float block_sum(float v)
{
    __shared__ float part[GPU_THREADS / 32];
    __shared__ float total;
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0)
        part[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        float p = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0.0f;
        p = warp_sum(p);
        if (threadIdx.x == 0)
            total = p;
    }
    __syncthreads();
    return total;
}

size_t gpu__select_smem(uint32_t kp)
{
    return gpu_select_span(kp) * sizeof(uint64_t);
}

/* A top-k list over this block's dynamic shared memory. */
__device__ gpu_topk shared_topk(uint32_t kp, uint32_t kc)
{
    extern __shared__ uint64_t smem[];
    __shared__ uint32_t count;
    __shared__ uint64_t threshold;
    return gpu_topk{smem, kp, kc, gpu_select_span(kp), &count, &threshold};
}

/* ---- row upkeep ---- */

/* One block per row: its squared norm (after normalising, for COSINE), then the copy. */
__global__ void scatter_rows_kernel(float *rows, float *norms, uint32_t *row_ids,
                                    const float *src, const uint32_t *pos, const uint32_t *ids,
                                    uint32_t dim, int normalise)
{
    const float *in = src + (size_t)blockIdx.x * dim;
    float *out = rows + (size_t)pos[blockIdx.x] * dim;
    float ss = 0;
    for (uint32_t i = threadIdx.x; i < dim; i += blockDim.x)
        ss += in[i] * in[i];
    ss = block_sum(ss);
    float scale = normalise ? rsqrtf(ss) : 1.0f;
    for (uint32_t i = threadIdx.x; i < dim; i += blockDim.x)
        out[i] = in[i] * scale;
    if (threadIdx.x == 0) {
        norms[pos[blockIdx.x]] = normalise ? 1.0f : ss;
        row_ids[pos[blockIdx.x]] = ids[blockIdx.x];
    }
}

void gpu__scatter_rows(cudaStream_t s, float *rows, float *norms, uint32_t *row_ids,
                       const float *src, const uint32_t *pos, const uint32_t *ids, uint32_t n,
                       uint32_t dim, int normalise)
{
    scatter_rows_kernel<<<n, GPU_THREADS, 0, s>>>(rows, norms, row_ids, src, pos, ids, dim,
                                                  normalise);
}

__global__ void set_tombstones_kernel(uint32_t *tomb, const uint32_t *pos, uint32_t n)
{
    uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        atomicOr(&tomb[pos[i] >> 5], 1u << (pos[i] & 31));
}

void gpu__set_tombstones(cudaStream_t s, uint32_t *tomb, const uint32_t *pos, uint32_t n)
{
    set_tombstones_kernel<<<(n + GPU_THREADS - 1) / GPU_THREADS, GPU_THREADS, 0, s>>>(tomb, pos,
                                                                                     n);
}

__global__ void move_rows_kernel(float *rows, float *norms, uint32_t *row_ids,
                                 const uint32_t *src, const uint32_t *dst, uint32_t dim)
{
    uint32_t from = src[blockIdx.x], to = dst[blockIdx.x];
    for (uint32_t i = threadIdx.x; i < dim; i += blockDim.x)
        rows[(size_t)to * dim + i] = rows[(size_t)from * dim + i];
    if (threadIdx.x == 0) {
        norms[to] = norms[from];
        row_ids[to] = row_ids[from];
    }
}

void gpu__move_rows(cudaStream_t s, float *rows, float *norms, uint32_t *row_ids,
                    const uint32_t *src, const uint32_t *dst, uint32_t n, uint32_t dim)
{
    move_rows_kernel<<<n, GPU_THREADS, 0, s>>>(rows, norms, row_ids, src, dst, dim);
}

__global__ void prep_queries_kernel(float *q, float *qnorms, uint32_t dim, int normalise)
{
    float *v = q + (size_t)blockIdx.x * dim;
    float ss = 0;
    for (uint32_t i = threadIdx.x; i < dim; i += blockDim.x)
        ss += v[i] * v[i];
    ss = block_sum(ss);
    if (normalise) {
        float scale = rsqrtf(ss);
        for (uint32_t i = threadIdx.x; i < dim; i += blockDim.x)
            v[i] *= scale;
    }
    if (threadIdx.x == 0)
        qnorms[blockIdx.x] = normalise ? 1.0f : ss;
}

void gpu__prep_queries(cudaStream_t s, float *q, float *qnorms, uint32_t nq, uint32_t dim,
                       int normalise)
{
    prep_queries_kernel<<<nq, GPU_THREADS, 0, s>>>(q, qnorms, dim, normalise);
}

/* ---- selection ---- */

/* The reported distance from a dot product: see gpu.h for the three metrics. The L2
 * expansion can come out slightly negative for a row equal to the query. */
__device__ __forceinline__ float dist_from_dot(int metric, float dot, float qn, float xn)
{
    if (metric == GPU_METRIC_L2)
        return fmaxf(qn + xn - 2.0f * dot, 0.0f);
    return 1.0f - dot;
}

/* Grid (nq, lanes): block (q, lane) merges its slice of query q's tile into its list. */
__global__ void select_tile_kernel(gpu_search_args a, const float *dots, uint64_t tile_start,
                                   uint32_t tile_rows)
{
    cuda_block b;
    uint32_t q = blockIdx.x, lane = blockIdx.y;
    uint64_t *state = a.state + ((size_t)q * a.lanes + lane) * a.kp;
    gpu_topk t = shared_topk(a.kp, a.kc);
    t.load(b, state);
    uint32_t lo = (uint32_t)((uint64_t)tile_rows * lane / a.lanes);
    uint32_t hi = (uint32_t)((uint64_t)tile_rows * (lane + 1) / a.lanes);
    const float *d = dots + (size_t)q * tile_rows;
    float qn = a.qnorms[q];
    t.offer_range(b, lo, hi, [&](uint32_t j) {
        uint64_t r = tile_start + j;
        if ((a.tomb[r >> 5] >> (r & 31)) & 1u)
            return GPU_KEY_NONE; /* deleted */
        return gpu_make_key(dist_from_dot(a.metric, d[j], qn, a.norms[r]), (uint32_t)r);
    });
    t.store(b, state);
}

void gpu__select_tile(cudaStream_t s, const gpu_search_args *a, const float *dots,
                      uint64_t tile_start, uint32_t tile_rows)
{
    dim3 grid(a->nq, a->lanes);
    select_tile_kernel<<<grid, GPU_THREADS, gpu__select_smem(a->kp), s>>>(*a, dots, tile_start,
                                                                         tile_rows);
}

/* The exact fp32 distance of query q to row r, computed directly by one warp. */
__device__ float exact_distance(const gpu_search_args &a, uint32_t q, uint32_t r)
{
    const float *x = a.rows + (size_t)r * a.dim, *v = a.queries + (size_t)q * a.dim;
    float s = 0;
    for (uint32_t i = threadIdx.x & 31; i < a.dim; i += 32)
        s += a.metric == GPU_METRIC_L2 ? (v[i] - x[i]) * (v[i] - x[i]) : v[i] * x[i];
    s = warp_sum(s);
    return a.metric == GPU_METRIC_L2 ? s : 1.0f - s;
}

/* One block per query: merge the lanes, re-rank the kc best exactly (one warp per
 * candidate), sort by (distance, id) and write the k best. */
__global__ void finish_kernel(gpu_search_args a, uint32_t k, int64_t *out_ids, float *out_dists)
{
    cuda_block b;
    uint32_t q = blockIdx.x;
    const uint64_t *lists = a.state + (size_t)q * a.lanes * a.kp;
    gpu_topk t = shared_topk(a.kp, a.kc);
    t.load(b, lists);
    t.offer_range(b, a.kp, a.lanes * a.kp, [&](uint32_t i) { return lists[i]; });
    uint32_t warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (uint32_t c = warp; c < a.kp; c += warps) {
        uint64_t key = c < a.kc ? t.keys[c] : GPU_KEY_NONE;
        uint64_t exact = GPU_KEY_NONE;
        if (key != GPU_KEY_NONE) {
            uint32_t r = (uint32_t)key;
            exact = gpu_make_key(exact_distance(a, q, r), a.row_ids[r]);
        }
        __syncwarp();
        if ((threadIdx.x & 31) == 0)
            t.keys[c] = exact;
    }
    __syncthreads();
    gpu_bitonic_sort(b, t.keys, a.kp);
    for (uint32_t i = threadIdx.x; i < k; i += blockDim.x) {
        uint64_t key = t.keys[i];
        bool none = key == GPU_KEY_NONE;
        out_ids[(size_t)q * k + i] = none ? -1 : (int64_t)(uint32_t)key;
        out_dists[(size_t)q * k + i] = none ? INFINITY : gpu_order_float((uint32_t)(key >> 32));
    }
}

void gpu__finish(cudaStream_t s, const gpu_search_args *a, uint32_t k, int64_t *out_ids,
                 float *out_dists)
{
    finish_kernel<<<a->nq, GPU_THREADS, gpu__select_smem(a->kp), s>>>(*a, k, out_ids,
                                                                      out_dists);
}
