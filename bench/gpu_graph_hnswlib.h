/* gpu_graph_hnswlib.h: the C face of hnswlib for gpu_graph_bench.c (gpu_graph_hnswlib.cpp,
 * compiled only where hnswlib's header exists: then HAVE_HNSWLIB is defined). hl_build
 * returns NULL on failure (the reason on stderr); hl_search writes k ids nearest first,
 * UINT32_MAX where fewer were found. L2 only. */
#ifndef QUIVER_GPU_GRAPH_HNSWLIB_H
#define QUIVER_GPU_GRAPH_HNSWLIB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void *hl_build(const float *base, size_t n, int dim, int m, int efc, int threads);
void hl_search(void *ix, const float *q, int k, int ef, uint32_t *out);
void hl_free(void *ix);

#ifdef __cplusplus
}
#endif

#endif
