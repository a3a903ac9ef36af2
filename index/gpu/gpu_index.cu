/* gpu_index.cu: the host side of index/gpu/ (API in gpu.h): device detection, the stored
 * rows and their bookkeeping (id <-> row maps, tombstones, compaction), and the search
 * driver that alternates one cuBLAS SGEMM per tile of rows with the select kernel of
 * gpu_kernels.cu. CUDA and cuBLAS errors are turned into gpu_status here and nowhere else. */
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>
#include <vector>

#include "index/gpu/gpu.h"
#include "index/gpu/gpu_int.h"

#define NO_ROW UINT32_MAX
/* Floats of dot products one tile may hold (512 MiB): large enough that a batch-1 search of
 * a few million rows is one tile, small enough beside the rows themselves. */
#define TILE_FLOATS (128u << 20)
/* Rows per upload of gpu_index_add: bounds the staging buffer to ~64 MiB. */
#define ADD_CHUNK_BYTES (64u << 20)
#define MAX_LANES 128u

/* A device buffer that only grows. */
struct dev_buf {
    void *p = nullptr;
    size_t bytes = 0;
};

struct gpu_index {
    int device, metric;
    uint32_t dim;
    cudaStream_t stream;
    cublasHandle_t blas;
    int sm_count;
    /* Rows [0, n_rows) on the device; cap allocated. */
    float *rows = nullptr, *norms = nullptr;
    uint32_t *row_ids = nullptr, *tomb = nullptr;
    uint64_t n_rows = 0, n_dead = 0, cap = 0;
    uint32_t tile_rows = 0; /* 0: from TILE_FLOATS */
    /* Host mirrors: row -> id, id -> row (NO_ROW: not held), the tombstones. */
    std::vector<uint32_t> row_id, id_row, dead;
    dev_buf stage, queries, qnorms, dots, state, out_ids, out_dists;
    std::vector<cudaEvent_t> events; /* pairs around each select launch, then start / end */
    double last_total_ms = 0, last_select_ms = 0;
    char err[256] = "";
};

/* ---- errors ---- */

const char *gpu_strerror(int rc)
{
    switch (rc) {
    case GPU_OK: return "ok";
    case GPU_ERR_NO_DEVICE: return "no CUDA device";
    case GPU_ERR_OOM: return "out of device memory";
    case GPU_ERR_K: return "k out of range (1..1024)";
    case GPU_ERR_DIM: return "dimension mismatch";
    case GPU_ERR_ARG: return "invalid argument";
    case GPU_ERR_NOTFOUND: return "id not found";
    case GPU_ERR_CUDA: return "CUDA error";
    }
    return "unknown GPU error";
}

static void put_detail(char *buf, size_t len, const char *fmt, va_list ap)
{
    if (buf && len)
        vsnprintf(buf, len, fmt, ap);
}

static int fail(gpu_index *g, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    put_detail(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
    return rc;
}

static int fail_buf(char *buf, size_t len, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    put_detail(buf, len, fmt, ap);
    va_end(ap);
    return rc;
}

static int status_of_cuda(cudaError_t e)
{
    return e == cudaErrorMemoryAllocation ? GPU_ERR_OOM : GPU_ERR_CUDA;
}

/* Converts a CUDA result at the call that produced it; `what` names the call. */
static int check(gpu_index *g, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return GPU_OK;
    cudaGetLastError(); /* clear a sticky-free error so the next call starts clean */
    return fail(g, status_of_cuda(e), "%s: %s", what, cudaGetErrorString(e));
}

static int check_blas(gpu_index *g, cublasStatus_t st, const char *what)
{
    if (st == CUBLAS_STATUS_SUCCESS)
        return GPU_OK;
    int rc = st == CUBLAS_STATUS_ALLOC_FAILED ? GPU_ERR_OOM : GPU_ERR_CUDA;
    return fail(g, rc, "%s: %s", what, cublasGetStatusString(st));
}

/* ---- device ---- */

int gpu_device_query(int device, gpu_device_info *info, char *detail, size_t detail_len)
{
    memset(info, 0, sizeof *info);
    cudaError_t e = cudaGetDeviceCount(&info->device_count);
    if (e != cudaSuccess || info->device_count == 0)
        return fail_buf(detail, detail_len, GPU_ERR_NO_DEVICE, "cudaGetDeviceCount: %s",
                        e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    if (device < 0 || device >= info->device_count)
        return fail_buf(detail, detail_len, GPU_ERR_NO_DEVICE, "device %d of %d", device,
                        info->device_count);
    cudaDeviceProp p;
    if ((e = cudaGetDeviceProperties(&p, device)) != cudaSuccess ||
        (e = cudaSetDevice(device)) != cudaSuccess ||
        (e = cudaMemGetInfo(&info->free_mem, &info->total_mem)) != cudaSuccess)
        return fail_buf(detail, detail_len, GPU_ERR_NO_DEVICE, "device %d: %s", device,
                        cudaGetErrorString(e));
    snprintf(info->name, sizeof info->name, "%s", p.name);
    int clock_khz = 0, bus_bits = 0;
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device);
    cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device);
    /* Double data rate: two transfers per clock. */
    info->mem_bandwidth_gbs = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
    info->sm_count = p.multiProcessorCount;
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    return GPU_OK;
}

/* ---- memory ---- */

static int grow_buf(gpu_index *g, dev_buf *b, size_t bytes, const char *what)
{
    if (b->bytes >= bytes)
        return GPU_OK;
    void *p = nullptr;
    int rc = check(g, cudaMalloc(&p, bytes), what);
    if (rc)
        return rc;
    cudaFree(b->p);
    b->p = p;
    b->bytes = bytes;
    return GPU_OK;
}

/* Reallocates one row array to `cap` elements of `size` bytes, keeping `used` of them. */
static int realloc_dev(gpu_index *g, void **arr, size_t size, uint64_t used, uint64_t cap)
{
    void *p = nullptr;
    int rc = check(g, cudaMalloc(&p, size * cap), "cudaMalloc(rows)");
    if (rc == GPU_OK && used)
        rc = check(g, cudaMemcpyAsync(p, *arr, size * used, cudaMemcpyDeviceToDevice, g->stream),
                   "cudaMemcpy(rows)");
    if (rc == GPU_OK)
        rc = check(g, cudaStreamSynchronize(g->stream), "grow rows");
    if (rc) {
        cudaFree(p);
        return rc;
    }
    cudaFree(*arr);
    *arr = p;
    return GPU_OK;
}

int gpu_index_reserve(gpu_index *g, uint64_t rows)
{
    if (rows <= g->cap)
        return GPU_OK;
    int rc = check(g, cudaSetDevice(g->device), "cudaSetDevice");
    if (rc)
        return rc;
    if (rows >= NO_ROW)
        return fail(g, GPU_ERR_ARG, "%llu rows: at most %u", (unsigned long long)rows, NO_ROW - 1);
    rows = (rows + 31) & ~31ull; /* whole tombstone words */
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    /* Ask cudaMalloc only for what could fit: a request far past the device is refused
     * here with a clear message rather than by the driver. */
    double need = (double)rows * (g->dim * 4.0 + 8.0) + rows / 8.0;
    if (need > (double)free_b)
        return fail(g, GPU_ERR_OOM, "%llu rows of dim %u need %.0f MiB, %.0f MiB free",
                    (unsigned long long)rows, g->dim, need / 1048576.0, free_b / 1048576.0);
    if ((rc = realloc_dev(g, (void **)&g->rows, (size_t)g->dim * 4, g->n_rows, rows)) ||
        (rc = realloc_dev(g, (void **)&g->norms, 4, g->n_rows, rows)) ||
        (rc = realloc_dev(g, (void **)&g->row_ids, 4, g->n_rows, rows)) ||
        (rc = realloc_dev(g, (void **)&g->tomb, 4, g->cap / 32, rows / 32)))
        return rc; /* the arrays already grown are merely larger than needed */
    rc = check(g, cudaMemsetAsync(g->tomb + g->cap / 32, 0, (rows - g->cap) / 8, g->stream),
               "cudaMemset(tombstones)");
    if (rc == GPU_OK)
        rc = check(g, cudaStreamSynchronize(g->stream), "reserve");
    if (rc == GPU_OK)
        g->cap = rows;
    return rc;
}

/* ---- create / free ---- */

int gpu_index_create(int device, uint32_t dim, int metric, gpu_index **out, char *detail,
                     size_t detail_len)
{
    *out = nullptr;
    if (dim == 0 || dim > GPU_MAX_DIM)
        return fail_buf(detail, detail_len, GPU_ERR_DIM, "dim %u: 1..%u", dim, GPU_MAX_DIM);
    if (metric != GPU_METRIC_L2 && metric != GPU_METRIC_IP && metric != GPU_METRIC_COSINE)
        return fail_buf(detail, detail_len, GPU_ERR_ARG, "metric %d", metric);
    gpu_device_info info;
    int rc = gpu_device_query(device, &info, detail, detail_len);
    if (rc)
        return rc;
    gpu_index *g = new (std::nothrow) gpu_index;
    if (!g)
        return fail_buf(detail, detail_len, GPU_ERR_OOM, "host memory");
    g->device = device;
    g->metric = metric;
    g->dim = dim;
    g->sm_count = info.sm_count;
    cudaError_t e = cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        delete g;
        return fail_buf(detail, detail_len, status_of_cuda(e), "cudaStreamCreate: %s",
                        cudaGetErrorString(e));
    }
    cublasStatus_t st = cublasCreate(&g->blas);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasSetStream(g->blas, g->stream);
    if (st != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(g->stream);
        delete g;
        return fail_buf(detail, detail_len, GPU_ERR_CUDA, "cublasCreate: %s",
                        cublasGetStatusString(st));
    }
    *out = g;
    return GPU_OK;
}

void gpu_index_free(gpu_index *g)
{
    if (!g)
        return;
    cudaSetDevice(g->device);
    cudaStreamSynchronize(g->stream);
    for (void *p : {(void *)g->rows, (void *)g->norms, (void *)g->row_ids, (void *)g->tomb})
        cudaFree(p);
    for (dev_buf *b : {&g->stage, &g->queries, &g->qnorms, &g->dots, &g->state, &g->out_ids,
                       &g->out_dists})
        cudaFree(b->p);
    for (cudaEvent_t ev : g->events)
        cudaEventDestroy(ev);
    cublasDestroy(g->blas);
    cudaStreamDestroy(g->stream);
    delete g;
}

const char *gpu_index_error(const gpu_index *g)
{
    return g->err;
}

uint64_t gpu_index_count(const gpu_index *g)
{
    return g->n_rows - g->n_dead;
}

uint64_t gpu_index_rows(const gpu_index *g)
{
    return g->n_rows;
}

uint64_t gpu_index_device_bytes(const gpu_index *g)
{
    uint64_t b = g->cap * ((uint64_t)g->dim * 4 + 8) + g->cap / 8;
    for (const dev_buf *x : {&g->stage, &g->queries, &g->qnorms, &g->dots, &g->state,
                             &g->out_ids, &g->out_dists})
        b += x->bytes;
    return b;
}

void gpu_index_set_tile_rows(gpu_index *g, uint32_t rows)
{
    g->tile_rows = rows;
}

void gpu_index_last_times(const gpu_index *g, double *total_ms, double *select_ms)
{
    *total_ms = g->last_total_ms;
    *select_ms = g->last_select_ms;
}

/* ---- add ---- */

static bool is_dead(const gpu_index *g, uint64_t r)
{
    return (g->dead[r >> 5] >> (r & 31)) & 1u;
}

/* Checks an add's input on the host: ids usable and distinct, COSINE vectors non-zero. */
static int check_add(gpu_index *g, const uint32_t *ids, const float *vecs, size_t n)
{
    std::vector<uint32_t> sorted(ids, ids + n);
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < n; i++) {
        if (sorted[i] == NO_ROW)
            return fail(g, GPU_ERR_ARG, "id %u is reserved", NO_ROW);
        if (i && sorted[i] == sorted[i - 1])
            return fail(g, GPU_ERR_ARG, "id %u twice in one add", sorted[i]);
    }
    for (size_t i = 0; g->metric == GPU_METRIC_COSINE && i < n; i++) {
        double ss = 0;
        for (uint32_t j = 0; j < g->dim; j++)
            ss += (double)vecs[i * g->dim + j] * vecs[i * g->dim + j];
        if (!(ss > 0) || !std::isfinite(ss))
            return fail(g, GPU_ERR_ARG, "COSINE: the vector of id %u has no direction", ids[i]);
    }
    return GPU_OK;
}

/* Uploads n rows (ids, vectors) to the row positions pos[]: one staging copy, one kernel. */
static int upload_rows(gpu_index *g, const uint32_t *ids, const float *vecs,
                       const uint32_t *pos, uint32_t n)
{
    size_t vbytes = (size_t)n * g->dim * 4, ibytes = (size_t)n * 4;
    int rc = grow_buf(g, &g->stage, vbytes + 2 * ibytes, "cudaMalloc(staging)");
    if (rc)
        return rc;
    char *st = (char *)g->stage.p;
    if ((rc = check(g, cudaMemcpyAsync(st, vecs, vbytes, cudaMemcpyHostToDevice, g->stream),
                    "cudaMemcpy(vectors)")) ||
        (rc = check(g, cudaMemcpyAsync(st + vbytes, pos, ibytes, cudaMemcpyHostToDevice,
                                       g->stream), "cudaMemcpy(positions)")) ||
        (rc = check(g, cudaMemcpyAsync(st + vbytes + ibytes, ids, ibytes,
                                       cudaMemcpyHostToDevice, g->stream), "cudaMemcpy(ids)")))
        return rc;
    gpu__scatter_rows(g->stream, g->rows, g->norms, g->row_ids, (const float *)st,
                      (const uint32_t *)(st + vbytes), (const uint32_t *)(st + vbytes + ibytes),
                      n, g->dim, g->metric == GPU_METRIC_COSINE);
    if ((rc = check(g, cudaGetLastError(), "scatter_rows")))
        return rc;
    return check(g, cudaStreamSynchronize(g->stream), "add");
}

int gpu_index_add(gpu_index *g, const uint32_t *ids, const float *vecs, size_t n, uint32_t dim)
{
    if (dim != g->dim)
        return fail(g, GPU_ERR_DIM, "vector dim %u, index dim %u", dim, g->dim);
    if (n == 0)
        return GPU_OK;
    if (!ids || !vecs)
        return fail(g, GPU_ERR_ARG, "NULL ids or vectors");
    int rc = check_add(g, ids, vecs, n);
    if (rc)
        return rc;
    /* Positions: a held id keeps its row; new ids go after the last row. */
    std::vector<uint32_t> pos(n);
    uint64_t next = g->n_rows;
    for (size_t i = 0; i < n; i++) {
        bool held = ids[i] < g->id_row.size() && g->id_row[ids[i]] != NO_ROW;
        pos[i] = held ? g->id_row[ids[i]] : (uint32_t)next++;
    }
    if (next > g->cap && (rc = gpu_index_reserve(g, std::max<uint64_t>(next, 2 * g->cap))) &&
        (rc = gpu_index_reserve(g, next)))
        return rc;
    if ((rc = check(g, cudaSetDevice(g->device), "cudaSetDevice")))
        return rc;
    size_t chunk = std::max<size_t>(1, ADD_CHUNK_BYTES / ((size_t)g->dim * 4));
    for (size_t i = 0; i < n; i += chunk) {
        uint32_t m = (uint32_t)std::min(chunk, n - i);
        if ((rc = upload_rows(g, ids + i, vecs + i * g->dim, pos.data() + i, m)))
            return rc;
    }
    g->row_id.resize(next);
    g->dead.resize((next + 31) / 32, 0);
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= g->id_row.size())
            g->id_row.resize(std::max<size_t>((size_t)ids[i] + 1, 2 * g->id_row.size()), NO_ROW);
        g->id_row[ids[i]] = pos[i];
        g->row_id[pos[i]] = ids[i];
    }
    g->n_rows = next;
    return GPU_OK;
}

/* ---- delete / compact ---- */

int gpu_index_compact(gpu_index *g)
{
    if (g->n_dead == 0)
        return GPU_OK;
    uint64_t live = g->n_rows - g->n_dead;
    std::vector<uint32_t> moves; /* src..., then dst... */
    std::vector<uint32_t> dst;
    uint64_t src = g->n_rows;
    for (uint64_t h = 0; h < live; h++) {
        if (!is_dead(g, h))
            continue;
        do
            src--;
        while (is_dead(g, src));
        moves.push_back((uint32_t)src);
        dst.push_back((uint32_t)h);
    }
    uint32_t n = (uint32_t)moves.size();
    moves.insert(moves.end(), dst.begin(), dst.end());
    int rc = check(g, cudaSetDevice(g->device), "cudaSetDevice");
    if (rc == GPU_OK && n)
        rc = grow_buf(g, &g->stage, (size_t)n * 8, "cudaMalloc(staging)");
    if (rc == GPU_OK && n)
        rc = check(g, cudaMemcpyAsync(g->stage.p, moves.data(), (size_t)n * 8,
                                      cudaMemcpyHostToDevice, g->stream), "cudaMemcpy(moves)");
    if (rc == GPU_OK && n) {
        const uint32_t *s = (const uint32_t *)g->stage.p;
        gpu__move_rows(g->stream, g->rows, g->norms, g->row_ids, s, s + n, n, g->dim);
        rc = check(g, cudaGetLastError(), "move_rows");
    }
    if (rc == GPU_OK)
        rc = check(g, cudaMemsetAsync(g->tomb, 0, g->cap / 8, g->stream), "cudaMemset");
    if (rc == GPU_OK)
        rc = check(g, cudaStreamSynchronize(g->stream), "compact");
    if (rc)
        return rc;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = g->row_id[moves[i]];
        g->row_id[dst[i]] = id;
        g->id_row[id] = dst[i];
    }
    g->n_rows = live;
    g->n_dead = 0;
    g->row_id.resize(live);
    std::fill(g->dead.begin(), g->dead.end(), 0u);
    return GPU_OK;
}

int gpu_index_delete(gpu_index *g, const uint32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= g->id_row.size() || g->id_row[ids[i]] == NO_ROW)
            return fail(g, GPU_ERR_NOTFOUND, "id %u is not held", ids[i]);
    std::vector<uint32_t> pos;
    for (size_t i = 0; i < n; i++) {
        uint32_t r = g->id_row[ids[i]];
        if (r == NO_ROW)
            continue; /* the same id twice in this call */
        pos.push_back(r);
        g->id_row[ids[i]] = NO_ROW;
        g->dead[r >> 5] |= 1u << (r & 31);
    }
    g->n_dead += pos.size();
    if (pos.empty())
        return GPU_OK;
    int rc = check(g, cudaSetDevice(g->device), "cudaSetDevice");
    if (rc == GPU_OK)
        rc = grow_buf(g, &g->stage, pos.size() * 4, "cudaMalloc(staging)");
    if (rc == GPU_OK)
        rc = check(g, cudaMemcpyAsync(g->stage.p, pos.data(), pos.size() * 4,
                                      cudaMemcpyHostToDevice, g->stream), "cudaMemcpy(deletes)");
    if (rc == GPU_OK) {
        gpu__set_tombstones(g->stream, g->tomb, (const uint32_t *)g->stage.p,
                            (uint32_t)pos.size());
        rc = check(g, cudaGetLastError(), "set_tombstones");
    }
    if (rc == GPU_OK)
        rc = check(g, cudaStreamSynchronize(g->stream), "delete");
    if (rc)
        return rc;
    /* A quarter dead: scans pay for them more than one compaction costs. */
    return g->n_dead * 4 > g->n_rows ? gpu_index_compact(g) : GPU_OK;
}

/* ---- search ---- */

/* Candidates kept for the re-rank: a few past k for fp32 GEMM rounding, twice k for TF32's
 * 10-bit mantissa; never past GPU_MAX_K. */
static uint32_t candidates(uint32_t k, unsigned flags)
{
    uint32_t kc = (flags & GPU_SEARCH_TF32) ? 2 * k + 16 : k + k / 8 + 8;
    return std::min<uint32_t>(kc, GPU_MAX_K);
}

static uint32_t pow2_at_least(uint32_t x)
{
    uint32_t p = 32;
    while (p < x)
        p <<= 1;
    return p;
}

/* Lanes per query: enough blocks to fill the device twice over at small batches (a batch of
 * one would otherwise scan on one SM), each lane scanning at least 2048 rows of a tile. */
static uint32_t lanes_for(const gpu_index *g, uint32_t nq, uint64_t tile_rows)
{
    uint32_t want = (2u * g->sm_count + nq - 1) / nq;
    uint64_t by_rows = std::max<uint64_t>(1, tile_rows / 2048);
    return (uint32_t)std::max<uint64_t>(1, std::min<uint64_t>({want, by_rows, MAX_LANES}));
}

static int ensure_events(gpu_index *g, size_t n)
{
    while (g->events.size() < n) {
        cudaEvent_t ev;
        int rc = check(g, cudaEventCreate(&ev), "cudaEventCreate");
        if (rc)
            return rc;
        g->events.push_back(ev);
    }
    return GPU_OK;
}

/* Fills the results of a search of an empty index. */
static void fill_empty(uint32_t nq, uint32_t k, int64_t *ids, float *dists)
{
    for (size_t i = 0; i < (size_t)nq * k; i++) {
        ids[i] = -1;
        dists[i] = INFINITY;
    }
}

static int check_search(gpu_index *g, const float *queries, uint32_t nq, uint32_t dim,
                        uint32_t k)
{
    if (k == 0 || k > GPU_MAX_K)
        return fail(g, GPU_ERR_K, "k %u: 1..%u", k, GPU_MAX_K);
    if (dim != g->dim)
        return fail(g, GPU_ERR_DIM, "query dim %u, index dim %u", dim, g->dim);
    if (nq == 0 || nq > GPU_MAX_BATCH)
        return fail(g, GPU_ERR_ARG, "batch of %u queries: 1..%u", nq, GPU_MAX_BATCH);
    if (!queries)
        return fail(g, GPU_ERR_ARG, "NULL queries");
    for (uint32_t q = 0; g->metric == GPU_METRIC_COSINE && q < nq; q++) {
        double ss = 0;
        for (uint32_t j = 0; j < dim; j++)
            ss += (double)queries[(size_t)q * dim + j] * queries[(size_t)q * dim + j];
        if (!(ss > 0) || !std::isfinite(ss))
            return fail(g, GPU_ERR_ARG, "COSINE: query %u has no direction", q);
    }
    return GPU_OK;
}

/* Grows the per-search buffers for nq queries, tiles of tile_rows, lists of kp keys. */
static int search_buffers(gpu_index *g, uint32_t nq, uint32_t k, uint64_t tile_rows,
                          size_t state_keys)
{
    int rc;
    if ((rc = grow_buf(g, &g->queries, (size_t)nq * g->dim * 4, "cudaMalloc(queries)")) ||
        (rc = grow_buf(g, &g->qnorms, (size_t)nq * 4, "cudaMalloc(qnorms)")) ||
        (rc = grow_buf(g, &g->dots, (size_t)nq * tile_rows * 4, "cudaMalloc(tile)")) ||
        (rc = grow_buf(g, &g->state, state_keys * 8, "cudaMalloc(top-k state)")) ||
        (rc = grow_buf(g, &g->out_ids, (size_t)nq * k * 8, "cudaMalloc(ids)")) ||
        (rc = grow_buf(g, &g->out_dists, (size_t)nq * k * 4, "cudaMalloc(dists)")))
        return rc;
    return GPU_OK;
}

/* One tile: dots = rows[t0, t0 + m) . queries^T as an m x nq column-major matrix, i.e. each
 * query's m dot products contiguous; then the select, between a pair of timing events. */
static int search_tile(gpu_index *g, const gpu_search_args *a, uint64_t t0, uint32_t m,
                       size_t ev)
{
    const float one = 1.0f, zero = 0.0f;
    int rc = check_blas(g, cublasSgemm(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)a->nq,
                                       (int)g->dim, &one, g->rows + t0 * g->dim, (int)g->dim,
                                       a->queries, (int)g->dim, &zero, (float *)g->dots.p,
                                       (int)m),
                        "cublasSgemm");
    if (rc)
        return rc;
    cudaEventRecord(g->events[ev], g->stream);
    gpu__select_tile(g->stream, a, (const float *)g->dots.p, t0, m);
    cudaEventRecord(g->events[ev + 1], g->stream);
    return check(g, cudaGetLastError(), "select_tile");
}

/* Sums the select kernels' share and the whole search's time from the recorded events. */
static void record_times(gpu_index *g, size_t tiles)
{
    float ms = 0;
    double select = 0;
    for (size_t t = 0; t < tiles + 1; t++) { /* the last pair brackets the finish kernel */
        cudaEventElapsedTime(&ms, g->events[2 * t], g->events[2 * t + 1]);
        select += ms;
    }
    cudaEventElapsedTime(&ms, g->events[2 * tiles + 2], g->events[2 * tiles + 3]);
    g->last_select_ms = select;
    g->last_total_ms = ms;
}

int gpu_index_search(gpu_index *g, const float *queries, uint32_t nq, uint32_t dim, uint32_t k,
                     unsigned flags, int64_t *ids, float *dists)
{
    int rc = check_search(g, queries, nq, dim, k);
    if (rc)
        return rc;
    if (gpu_index_count(g) == 0) {
        fill_empty(nq, k, ids, dists);
        return GPU_OK;
    }
    uint64_t tile = g->tile_rows ? g->tile_rows : std::max<uint64_t>(4096, TILE_FLOATS / nq);
    tile = std::min<uint64_t>(tile, g->n_rows);
    size_t tiles = (g->n_rows + tile - 1) / tile;
    gpu_search_args a = {g->rows, g->norms, g->row_ids, g->tomb, nullptr, nullptr, g->dim, nq,
                         g->metric, nullptr, lanes_for(g, nq, tile), 0, candidates(k, flags)};
    a.kp = pow2_at_least(a.kc);
    if ((rc = check(g, cudaSetDevice(g->device), "cudaSetDevice")) ||
        (rc = search_buffers(g, nq, k, tile, (size_t)nq * a.lanes * a.kp)) ||
        (rc = ensure_events(g, 2 * tiles + 4)))
        return rc;
    a.queries = (const float *)g->queries.p;
    a.qnorms = (const float *)g->qnorms.p;
    a.state = (uint64_t *)g->state.p;
    size_t tail = 2 * tiles; /* events: tiles' pairs, finish pair, whole-search pair */
    cudaEventRecord(g->events[tail + 2], g->stream);
    if ((rc = check(g, cudaMemcpyAsync(g->queries.p, queries, (size_t)nq * dim * 4,
                                       cudaMemcpyHostToDevice, g->stream), "cudaMemcpy(queries)")))
        return rc;
    gpu__prep_queries(g->stream, (float *)g->queries.p, (float *)g->qnorms.p, nq, dim,
                      g->metric == GPU_METRIC_COSINE);
    if ((rc = check(g, cudaMemsetAsync(a.state, 0xff, (size_t)nq * a.lanes * a.kp * 8,
                                       g->stream), "cudaMemset(state)")) ||
        (rc = check_blas(g, cublasSetMathMode(g->blas, (flags & GPU_SEARCH_TF32)
                                                           ? CUBLAS_TF32_TENSOR_OP_MATH
                                                           : CUBLAS_DEFAULT_MATH),
                         "cublasSetMathMode")))
        return rc;
    for (size_t t = 0; t < tiles; t++) {
        uint64_t t0 = t * tile;
        if ((rc = search_tile(g, &a, t0, (uint32_t)std::min<uint64_t>(tile, g->n_rows - t0),
                              2 * t)))
            return rc;
    }
    cudaEventRecord(g->events[tail], g->stream);
    gpu__finish(g->stream, &a, k, (int64_t *)g->out_ids.p, (float *)g->out_dists.p);
    cudaEventRecord(g->events[tail + 1], g->stream);
    if ((rc = check(g, cudaGetLastError(), "finish")) ||
        (rc = check(g, cudaMemcpyAsync(ids, g->out_ids.p, (size_t)nq * k * 8,
                                       cudaMemcpyDeviceToHost, g->stream), "cudaMemcpy(ids)")) ||
        (rc = check(g, cudaMemcpyAsync(dists, g->out_dists.p, (size_t)nq * k * 4,
                                       cudaMemcpyDeviceToHost, g->stream), "cudaMemcpy(dists)")))
        return rc;
    cudaEventRecord(g->events[tail + 3], g->stream);
    if ((rc = check(g, cudaStreamSynchronize(g->stream), "search")))
        return rc;
    record_times(g, tiles);
    return GPU_OK;
}
