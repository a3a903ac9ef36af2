/* ann_adapters.cpp: the two libraries ann_bench compares against, behind a small C
 * interface (ann_adapters.h): hnswlib (Debian's header-only libhnswlib-dev) and FAISS's
 * IndexHNSWFlat (libfaiss-dev), both L2, single-threaded, built with the M and
 * EF_CONSTRUCTION given. C++ exceptions stop at this file: a failure returns NULL. */
#include "ann_adapters.h"

#include <faiss/IndexHNSW.h>
#include <hnswlib/hnswlib.h>
#include <omp.h>

#include <cstdio>
#include <exception>
#include <vector>

namespace
{

struct hnswlib_ann {
    hnswlib::L2Space space;
    hnswlib::HierarchicalNSW<float> index;
    hnswlib_ann(size_t n, int dim, int m, int efc) : space(dim), index(&space, n, m, efc, 100)
    {
    }
};

} // namespace

extern "C" {

void *ann_hnswlib_build(const float *base, size_t n, int dim, int m, int efc)
{
    try {
        auto *a = new hnswlib_ann(n, dim, m, efc);
        for (size_t i = 0; i < n; i++)
            a->index.addPoint(base + i * dim, i);
        return a;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "hnswlib: %s\n", e.what());
        return nullptr;
    }
}

void ann_hnswlib_search(void *ix, const float *q, int k, int ef, uint32_t *out)
{
    auto *a = static_cast<hnswlib_ann *>(ix);
    a->index.setEf(ef);
    auto res = a->index.searchKnn(q, k);
    for (int i = (int)res.size() - 1; i >= 0; i--) {
        out[i] = (uint32_t)res.top().second;
        res.pop();
    }
}

void ann_hnswlib_free(void *ix)
{
    delete static_cast<hnswlib_ann *>(ix);
}

void *ann_faiss_build(const float *base, size_t n, int dim, int m, int efc)
{
    try {
        omp_set_num_threads(1);
        auto *ix = new faiss::IndexHNSWFlat(dim, m);
        ix->hnsw.efConstruction = efc;
        ix->add((faiss::Index::idx_t)n, base);
        return ix;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "faiss: %s\n", e.what());
        return nullptr;
    }
}

void ann_faiss_search(void *ix, const float *q, int k, int ef, uint32_t *out)
{
    auto *f = static_cast<faiss::IndexHNSWFlat *>(ix);
    std::vector<faiss::Index::idx_t> labels(k);
    std::vector<float> dist(k);
    f->hnsw.efSearch = ef;
    f->search(1, q, k, dist.data(), labels.data());
    for (int i = 0; i < k; i++)
        out[i] = labels[i] < 0 ? UINT32_MAX : (uint32_t)labels[i];
}

void ann_faiss_free(void *ix)
{
    delete static_cast<faiss::IndexHNSWFlat *>(ix);
}
}
