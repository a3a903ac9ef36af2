/* gpu_graph_hnswlib.cpp: hnswlib (header-only; Debian's libhnswlib-dev, or any copy named by
 * HNSWLIB_INC) behind a small C interface for gpu_graph_bench.c, with hnswlib's own
 * thread-safe addPoint run on `threads` threads, as its Python binding builds. L2 only.
 * Compiled only where the header is found (index/gpu/Makefile); C++ exceptions stop here:
 * a failure returns NULL. */
#include <hnswlib/hnswlib.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <thread>
#include <vector>

#include "bench/gpu_graph_hnswlib.h"

namespace
{

struct hl_index {
    hnswlib::L2Space space;
    hnswlib::HierarchicalNSW<float> index;
    hl_index(size_t n, int dim, int m, int efc) : space(dim), index(&space, n, m, efc, 100)
    {
    }
};

} // namespace

extern "C" {

void *hl_build(const float *base, size_t n, int dim, int m, int efc, int threads)
{
    hl_index *a = nullptr;
    try {
        a = new hl_index(n, dim, m, efc);
        std::atomic<size_t> next(0);
        std::vector<std::thread> pool;
        auto work = [&]() {
            for (size_t i; (i = next.fetch_add(1)) < n;)
                a->index.addPoint(base + i * dim, i);
        };
        for (int t = 1; t < threads; t++)
            pool.emplace_back(work);
        work();
        for (auto &t : pool)
            t.join();
        return a;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "hnswlib: %s\n", e.what());
        delete a;
        return nullptr;
    }
}

void hl_search(void *ix, const float *q, int k, int ef, uint32_t *out)
{
    auto *a = static_cast<hl_index *>(ix);
    a->index.setEf(ef);
    auto res = a->index.searchKnn(q, k);
    for (int i = k - 1; i >= 0; i--) {
        out[i] = UINT32_MAX;
        if ((size_t)i < res.size()) {
            out[i] = (uint32_t)res.top().second;
            res.pop();
        }
    }
}

void hl_free(void *ix)
{
    delete static_cast<hl_index *>(ix);
}
}
