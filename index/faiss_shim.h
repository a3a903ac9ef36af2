/* faiss_shim.h: the C face of FAISS (Debian's libfaiss 1.7.3, a C++ library that ships no C
 * API symbols). index/faiss_shim.cpp is the only C++ in Quiver; it turns every FAISS
 * exception into an err.h code with FAISS's text in the caller's buffer, so nothing C++
 * (exceptions, types, allocations to free with delete) ever reaches C code.
 *
 * WHAT IT HOLDS. One FAISS index built from an index factory string, which must describe an
 * inverted-file index with array inverted lists: IVF<n> (n >= 1) with Flat, PQ<m>[x<bits>]
 * or SQ<b> codes, optionally behind vector transforms (PCA, OPQ, ...), any coarse quantizer.
 * Those are the kinds that store our ids themselves (add_with_ids), filter through an
 * IDSelector during the scan, delete, and never throw from inside an OpenMP region (which
 * would abort the process): fast-scan ("...fs"), additive-quantizer (RQ/LSQ), refined (PQ+n, RFlat)
 * and non-IVF indexes are refused with ERR_INVAL.
 *
 * IDS are FAISS's int64 labels, >= 0, chosen by the caller. SEARCH results are FAISS's raw
 * numbers: squared L2, or the inner product for an IP index (larger is nearer); a result
 * slot with no hit has label -1.
 *
 * THREADS. Any number of searches may run at once (they change nothing); train, add, remove
 * and free need the caller's exclusive lock. FAISS may use OpenMP threads inside a call.
 *
 * ERRORS. ERR_INVAL (a factory string FAISS cannot parse or that is not one of the kinds
 * above, a vector count or k of 0, a loaded index of the wrong dimension or metric),
 * ERR_NOMEM (std::bad_alloc), ERR_BACKEND (any other FAISS exception), ERR_CORRUPT (bytes
 * that read_index refuses). err may be NULL; otherwise it gets FAISS's message, without the
 * "Error in <function> at <file>:<line>:" prefix. */
#ifndef QUIVER_FAISS_SHIM_H
#define QUIVER_FAISS_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct faiss_shim faiss_shim;

/* The filter a search applies while scanning: nonzero keeps label. Called from FAISS's
 * threads (concurrently for one search), so it must only read. */
typedef int (*faiss_shim_keep_fn)(void *ctx, int64_t label);

/* Builds an untrained index of dimension dim from factory, for inner product (ip nonzero)
 * or squared L2. The factory's numbers must be 1 to 2^20 (PQ bits, after 'x', at most 16):
 * FAISS would divide by a zero or allocate without bound. */
int faiss_shim_create(const char *factory, uint32_t dim, int ip, faiss_shim **out, char *err,
                      size_t errlen);
void faiss_shim_free(faiss_shim *s);

int faiss_shim_is_trained(const faiss_shim *s);
/* How many vectors the index holds (removed ones no longer count). */
size_t faiss_shim_ntotal(const faiss_shim *s);
/* The number of inverted lists (IVF<n>). */
size_t faiss_shim_nlist(const faiss_shim *s);
/* How many training vectors this index wants: 39 per cluster of its coarse quantizer and of
 * its product quantizer, as FAISS's k-means asks, and at least 1000. */
size_t faiss_shim_train_size(const faiss_shim *s);
/* Bytes the index holds: inverted lists (codes and ids, by capacity), the coarse quantizer,
 * codebooks, precomputed tables and transforms. */
size_t faiss_shim_memory(const faiss_shim *s);

/* Trains on n vectors (row-major, n x dim). Training an index twice is ERR_INVAL. */
int faiss_shim_train(faiss_shim *s, size_t n, const float *x, char *err, size_t errlen);
/* Adds n trained-on vectors with their labels (>= 0). */
int faiss_shim_add(faiss_shim *s, size_t n, const float *x, const int64_t *labels, char *err,
                   size_t errlen);
/* Removes every entry whose label keep() accepts; *removed gets how many. One pass over all
 * lists; lists left much larger than their contents give their memory back. */
int faiss_shim_remove(faiss_shim *s, faiss_shim_keep_fn keep, void *ctx, size_t *removed, char *err,
                      size_t errlen);
/* Calls visit(ctx, label) for every entry of every list, in list order. */
void faiss_shim_each_label(const faiss_shim *s, void (*visit)(void *ctx, int64_t label), void *ctx);

/* The k nearest of one query q, probing nprobe lists (clamped to 1..nlist), scanning only
 * entries keep() accepts (keep NULL: all). dist and labels have room for k; slots past the
 * hits found hold label -1. */
int faiss_shim_search(const faiss_shim *s, const float *q, size_t k, size_t nprobe,
                      faiss_shim_keep_fn keep, void *ctx, float *dist, int64_t *labels, char *err,
                      size_t errlen);
/* Every entry within radius of q in FAISS's sense (L2: dist < radius; IP: dot > radius),
 * probing nprobe lists, unordered; *dist and *labels are malloc'd (free() them, even when
 * *n is 0). */
int faiss_shim_range(const faiss_shim *s, const float *q, float radius, size_t nprobe,
                     faiss_shim_keep_fn keep, void *ctx, float **dist, int64_t **labels, size_t *n,
                     char *err, size_t errlen);

/* The index as FAISS's own serialisation (write_index), given to write(ctx, p, n) in pieces;
 * write returns 0 or a negative code, which is passed back. */
int faiss_shim_serialize(const faiss_shim *s, int (*write)(void *ctx, const void *p, size_t n),
                         void *ctx, char *err, size_t errlen);
/* Reads len bytes written by faiss_shim_serialize (read_index on them, never past len) and
 * checks the result is a kind listed above, of dimension dim and metric ip. What it
 * allocates while reading is capped by len (ERR_CORRUPT past it). */
int faiss_shim_deserialize(const void *p, size_t len, uint32_t dim, int ip, faiss_shim **out,
                           char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
