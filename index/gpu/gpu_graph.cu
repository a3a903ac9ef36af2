/* gpu_graph.cu: gpu_knn_graph (gpu.h), the kNN lists an HNSW bulk build prunes into its graph
 * (index/hnsw.c, vec_hnsw_build), computed by the exact search of gpu_index.cu: every row is
 * added to one index under its row number, then the rows themselves are searched in batches
 * of GPU_MAX_BATCH for k + 1 and each row's own id is dropped (or, where more than k exact
 * duplicates push it out, the (k+1)-th). Host code only: no kernels of its own. */
#include <cstdarg>
#include <cstdio>
#include <new>
#include <vector>

#include "index/gpu/gpu.h"

/* Rows per gpu_index_add call: bounds the host id array, not the device memory. */
#define GRAPH_ADD_ROWS (1u << 20)

static int graph_fail(char *detail, size_t len, int rc, const char *fmt, ...)
{
    if (detail && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* The index's last error into the caller's buffer. */
static int graph_index_fail(gpu_index *g, int rc, char *detail, size_t len, const char *what)
{
    return graph_fail(detail, len, rc, "%s: %s (%s)", what, gpu_strerror(rc), gpu_index_error(g));
}

/* Adds every row under its row number. */
static int graph_add(gpu_index *g, const float *vecs, uint64_t n, uint32_t dim, char *detail,
                     size_t len)
{
    int rc = gpu_index_reserve(g, n);
    if (rc)
        return graph_index_fail(g, rc, detail, len, "reserve");
    std::vector<uint32_t> ids;
    for (uint64_t r0 = 0; r0 < n; r0 += GRAPH_ADD_ROWS) {
        uint64_t m = n - r0 < GRAPH_ADD_ROWS ? n - r0 : GRAPH_ADD_ROWS;
        ids.resize(m);
        for (uint64_t i = 0; i < m; i++)
            ids[i] = (uint32_t)(r0 + i);
        if ((rc = gpu_index_add(g, ids.data(), vecs + r0 * dim, m, dim)))
            return graph_index_fail(g, rc, detail, len, "add");
    }
    return GPU_OK;
}

/* Row q's k nearest others from its k + 1 search results. */
static void graph_row(uint64_t q, const int64_t *ids, uint32_t k, uint32_t *out)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i <= k && j < k; i++)
        if (ids[i] >= 0 && (uint64_t)ids[i] != q)
            out[j++] = (uint32_t)ids[i];
    while (j < k)
        out[j++] = UINT32_MAX;
}

static int graph_search(gpu_index *g, const float *vecs, uint64_t n, uint32_t dim, uint32_t k,
                        uint32_t *out, char *detail, size_t len)
{
    std::vector<int64_t> ids((size_t)GPU_MAX_BATCH * (k + 1));
    std::vector<float> dists(ids.size());
    for (uint64_t q0 = 0; q0 < n; q0 += GPU_MAX_BATCH) {
        uint32_t nq = (uint32_t)(n - q0 < GPU_MAX_BATCH ? n - q0 : GPU_MAX_BATCH);
        int rc = gpu_index_search(g, vecs + q0 * dim, nq, dim, k + 1, 0, ids.data(), dists.data());
        if (rc)
            return graph_index_fail(g, rc, detail, len, "search");
        for (uint32_t q = 0; q < nq; q++)
            graph_row(q0 + q, ids.data() + (size_t)q * (k + 1), k, out + (q0 + q) * k);
    }
    return GPU_OK;
}

extern "C" int gpu_knn_graph(int device, const float *vecs, uint64_t n, uint32_t dim, int metric,
                             uint32_t k, uint32_t *out, char *detail, size_t detail_len)
{
    if (!k || k > GPU_MAX_K - 1)
        return graph_fail(detail, detail_len, GPU_ERR_K, "k %u: must be 1..%u", k, GPU_MAX_K - 1);
    if (n >= UINT32_MAX || (n && (!vecs || !out)))
        return graph_fail(detail, detail_len, GPU_ERR_ARG, "rows: %llu", (unsigned long long)n);
    gpu_index *g = nullptr;
    int rc = gpu_index_create(device, dim, metric, &g, detail, detail_len);
    if (rc || !n) {
        gpu_index_free(g);
        return rc;
    }
    try {
        rc = graph_add(g, vecs, n, dim, detail, detail_len);
        if (!rc)
            rc = graph_search(g, vecs, n, dim, k, out, detail, detail_len);
    } catch (const std::bad_alloc &) {
        rc = graph_fail(detail, detail_len, GPU_ERR_OOM, "host memory");
    }
    gpu_index_free(g);
    return rc;
}
