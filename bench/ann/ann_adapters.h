/* ann_adapters.h: the C face of the libraries ann_bench compares against (ann_adapters.cpp).
 * build returns NULL on failure (the reason on stderr); search writes k ids nearest first,
 * UINT32_MAX where fewer were found; ef is the search-time candidate list size. */
#ifndef QUIVER_ANN_ADAPTERS_H
#define QUIVER_ANN_ADAPTERS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void *ann_hnswlib_build(const float *base, size_t n, int dim, int m, int efc);
void ann_hnswlib_search(void *ix, const float *q, int k, int ef, uint32_t *out);
void ann_hnswlib_free(void *ix);

void *ann_faiss_build(const float *base, size_t n, int dim, int m, int efc);
void ann_faiss_search(void *ix, const float *q, int k, int ef, uint32_t *out);
void ann_faiss_free(void *ix);

#ifdef __cplusplus
}
#endif

#endif
