/* index.h: vector indexes over float32 vectors: FLAT (exact, the oracle), HNSW (our own
 * graph), and IVF/PQ through FAISS. One interface for all three, so that FT.* and FS.KNN
 * never care which kind answers.
 *
 * IDS. Vectors are addressed by dense uint32 ids that the caller chooses (a document slot;
 * a freed slot is reused by the caller for the next document). Adding an id that is present
 * replaces its vector.
 *
 * DISTANCES are reported as RediSearch reports them: L2 is the *squared* Euclidean
 * distance, IP is 1 - u.v, COSINE is 1 - cos(u, v) (vectors are normalised on the way in
 * for COSINE; a zero vector is refused with ERR_INVAL). Smaller is nearer for all three.
 *
 * THREADS. Any number of threads may search an index at once; one writer at a time adds or
 * deletes, and a search never sees a half-made change (an index-wide rwlock, or finer).
 *
 * ERRORS. ERR_INVAL (bad parameters or vector, detail in err where a buffer is taken),
 * ERR_NOTFOUND (delete of an absent id), ERR_NOMEM, ERR_CORRUPT (a snapshot that fails its
 * checks), ERR_BACKEND (FAISS's exception text, converted in the shim), ERR_LIMIT (an id or
 * count past the index's limits). */
#ifndef QUIVER_INDEX_H
#define QUIVER_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

enum { VEC_L2 = 1, VEC_IP = 2, VEC_COSINE = 3 };    /* persisted */
enum { VEC_FLAT = 1, VEC_HNSW = 2, VEC_IVF = 3 };   /* persisted */

#define VEC_MAX_DIM 32768
#define VEC_MAX_K 100000

/* Defaults are RediSearch's: M 16, EF_CONSTRUCTION 200, EF_RUNTIME 10, EPSILON 0.01. */
typedef struct vec_params {
    int kind;   /* VEC_* kind */
    int metric; /* VEC_L2 / VEC_IP / VEC_COSINE */
    uint32_t dim;
    uint32_t m, ef_construction, ef_runtime; /* HNSW (IVF: ef_runtime is nprobe); 0 = default */
    double epsilon;                          /* HNSW range search; 0 = default */
    uint32_t initial_cap;                    /* a sizing hint; 0 = small */
    const char *factory; /* IVF: a FAISS index factory string, e.g. "IVF1024,PQ32" */
} vec_params;

typedef struct vec_index vec_index;

typedef struct vec_hit {
    uint32_t id;
    float dist;
} vec_hit;

/* A search filter. keep(ctx, id) says whether id may be returned (NULL: every id). When
 * the caller knows which ids pass (a TAG or NUMERIC pre-filter), it gives them in ids
 * (sorted ascending, nids of them): the index then chooses by itself between walking its
 * structure with the predicate and an exact scan of just those ids (RediSearch's BATCHES
 * and ADHOC_BF), and still returns min(k, matching) hits. */
typedef struct vec_filter {
    int (*keep)(void *ctx, uint32_t id);
    void *ctx;
    const uint32_t *ids;
    size_t nids;
} vec_filter;

int vec_create(const vec_params *p, vec_index **out, char *err, size_t errlen);
void vec_free(vec_index *ix);
const vec_params *vec_get_params(const vec_index *ix);

int vec_add(vec_index *ix, uint32_t id, const float *v);
/* Removes id for real: HNSW repairs its neighbours' links and reuses the slot's memory. */
int vec_delete(vec_index *ix, uint32_t id);
int vec_contains(const vec_index *ix, uint32_t id);
size_t vec_count(const vec_index *ix);
/* Bytes of memory the index holds (vectors, graph, free lists, everything). */
size_t vec_memory(const vec_index *ix);

/* The k nearest ids to q, nearest first, into out (room for k): *n gets how many (fewer
 * only if fewer vectors match). ef 0 = the index's EF_RUNTIME. f may be NULL. */
int vec_knn(vec_index *ix, const float *q, uint32_t k, uint32_t ef, const vec_filter *f,
            vec_hit *out, size_t *n);
/* Every id with distance <= radius, nearest first, at most max of them; *out is allocated
 * (xfree it). epsilon 0 = the index's. */
int vec_range(vec_index *ix, const float *q, float radius, double epsilon, const vec_filter *f,
              size_t max, vec_hit **out, size_t *n);

/* IVF needs training: it trains itself once enough vectors have been added (kept aside
 * until then and searched exactly), so callers never see an untrained index. */

/* Snapshot: the whole index as versioned bytes with a CRC32C, appended to out; load checks
 * everything (magic, version, lengths, checksum, ids, graph links in range) and never
 * trusts the bytes. */
int vec_save(vec_index *ix, buf *out);
int vec_load(const char *p, size_t len, vec_index **out, char *err, size_t errlen);

/* ---- bulk builds: an HNSW graph from kNN lists (index/hnsw.c, index/knn_graph.c) ----
 * Instead of n insertions (each a graph search at EF_CONSTRUCTION), a bulk build takes each
 * vector's K nearest others (exact from vec_knn_graph on the CPU, or from index/gpu/'s
 * gpu_knn_graph, which has the same contract) and prunes them into the graph in parallel.
 * The result is an ordinary HNSW index. */

/* The k nearest other rows of each of n rows (n x dim floats, row-major) under metric
 * (distances as above; COSINE rows are normalised in a copy), exactly: out[i*k + j] is a row
 * index, nearest first, ties by smaller index; where fewer than k others exist the rest are
 * UINT32_MAX. threads 0 = one per CPU. ERR_INVAL (metric, dim, k 0 or > VEC_MAX_K, a value
 * not finite, a COSINE zero row), ERR_NOMEM. */
int vec_knn_graph(int metric, const float *vecs, uint32_t n, uint32_t dim, uint32_t k,
                  uint32_t threads, uint32_t *out);

/* A source of kNN lists with vec_knn_graph's contract (ctx: the caller's); 0 or an ERR_*. */
typedef int (*vec_knn_fn)(void *ctx, int metric, const float *vecs, uint32_t n, uint32_t dim,
                          uint32_t k, uint32_t *out);

/* Fills ix, an empty HNSW index that never held a vector, with n vectors (n x dim floats of
 * its dim, row-major) under ids[0..n), the graph built from knn (n x k row indexes, as
 * vec_knn_graph writes them for the index's metric). Levels are drawn as vec_add draws them;
 * each level is built from kNN lists among its own nodes: level 0 from knn, each level above
 * (n / M nodes, n / M^2, ...) from min(k, its nodes - 1) lists that `upper` computes over its
 * nodes' vectors (NULL: vec_knn_graph, exact on the CPU; give the GPU's for millions). A
 * node's candidates are pruned by the insertion's neighbour heuristic to the level's
 * capacity (2M at level 0, M above), reverse edges merged and re-pruned, on `threads` threads
 * (0: one per CPU); then every node the entry point cannot reach is linked in. The result is
 * an ordinary HNSW index. Takes the index's write lock. ERR_INVAL (ix not an empty HNSW
 * index, an id repeated, a vector not finite or COSINE zero, a row index out of range or the
 * row itself; detail in err), ERR_LIMIT (an id past the HNSW limit), ERR_NOMEM, or what
 * `upper` returned (then ix is left empty). */
int vec_hnsw_build(vec_index *ix, const uint32_t *ids, const float *vecs, uint32_t n,
                   const uint32_t *knn, uint32_t k, vec_knn_fn upper, void *upper_ctx,
                   uint32_t threads, char *err, size_t errlen);

/* ---- distance kernels (index/distance.c): SIMD chosen once at start ---- */

/* Squared L2 distance and dot product of two dim-float vectors (any alignment). */
float vec_l2sq(const float *a, const float *b, uint32_t dim);
float vec_dot(const float *a, const float *b, uint32_t dim);
/* The distance of metric between a and b, as reported (see DISTANCES). For COSINE both
 * must already be normalised. */
float vec_distance(int metric, const float *a, const float *b, uint32_t dim);
/* Normalises v in place; ERR_INVAL for a zero vector. */
int vec_normalize(float *v, uint32_t dim);
/* Which kernels run here: "avx512", "avx2" or "scalar" (QUIVER_SIMD=scalar|avx2 in the
 * environment caps it, for tests and benchmarks). */
const char *vec_kernels(void);

/* ---- GPU (index/gpu_probe.c) ----
 * Whether a CUDA device may serve exact kNN (index/gpu/), from the `gpu` option: probed once
 * at start on the event-loop thread, read-only afterwards. */
enum { INDEX_GPU_NO = 0, INDEX_GPU_YES = 1, INDEX_GPU_AUTO = 2 }; /* the `gpu` option's values */

typedef struct index_gpu_info {
    int mode;            /* INDEX_GPU_* */
    int enabled;         /* a device answered and mode is not NO */
    char device[256];    /* its name, "" when disabled */
    size_t total_mem, free_mem; /* bytes, at start */
    char reason[300];    /* why disabled, "" when enabled */
    char library[256];   /* the index/gpu/ library loaded or tried, "" if none */
} index_gpu_info;

/* ---- a FLAT index's copy in device memory (index/gpu_mirror.c) ----
 * A FLAT index may get a mirror while the GPU is enabled: the same vectors under the same
 * ids on the device, searched in batches. vec_add and vec_delete never wait on the device:
 * they only note the changed id (under a small lock of the mirror's own). The searcher
 * applies the noted changes right before it searches, reading each vector from the FLAT
 * index (or deleting the id when the FLAT no longer holds it), so a search sees every
 * change made before it was called. The first search copies the whole index, a chunk of
 * ids at a time under the index's shared lock. COSINE: the FLAT holds normalised vectors;
 * they go to the device under the IP metric, and queries are normalised here as vec_knn
 * normalises them, so the device computes 1 - u.v of the very floats the CPU would.
 * On GPU_ERR_OOM or GPU_ERR_CUDA (or any failed change) the mirror is marked failed: its
 * device memory is freed, the reason kept, and searches return ERR_GPU from then on (the
 * caller serves from the CPU: vec_knn gives the same answers).
 * THREADS: vec_gpu_knn from any thread (searches of one mirror run one at a time);
 * vec_gpu_attach and vec_gpu_stats from any thread. */
#define VEC_GPU_MAX_K 1024     /* GPU_MAX_K of index/gpu/gpu.h */
#define VEC_GPU_MAX_BATCH 4096 /* GPU_MAX_BATCH */

enum { VEC_GPU_NONE = 0, VEC_GPU_OK = 1, VEC_GPU_FAILED = 2 };

typedef struct vec_gpu_stats {
    int state;             /* VEC_GPU_* */
    uint64_t device_bytes; /* device memory it holds */
    char reason[256];      /* why it failed, "" otherwise */
} vec_gpu_stats;

/* Gives a FLAT index a mirror (nothing is copied yet; 0 too when it has one, failed or
 * not). ERR_INVAL for another kind, ERR_GPU while the GPU is disabled. */
int vec_gpu_attach(vec_index *ix);
/* The k nearest of each of nq queries (nq x dim floats, as given to vec_knn: normalised
 * here for COSINE) on the device: query i's hits at out[i * k], counts[i] of them, nearest
 * first, ties by smaller id; the device's time for it in *kernel_ms and *select_ms.
 * ERR_INVAL (k 0 or above VEC_GPU_MAX_K, nq 0 or above VEC_GPU_MAX_BATCH, a query not
 * finite or zero under COSINE), ERR_NOTFOUND (no mirror), ERR_GPU (the mirror failed, now
 * or earlier; the reason in err), ERR_NOMEM. */
int vec_gpu_knn(vec_index *ix, const float *queries, uint32_t nq, uint32_t k, vec_hit *out,
                uint32_t *counts, double *kernel_ms, double *select_ms, char *err,
                size_t errlen);
void vec_gpu_get_stats(vec_index *ix, vec_gpu_stats *out);

/* vec_knn_graph's lists computed on the device (gpu_knn_graph; index/gpu_probe.c), for a
 * bulk build: k at most VEC_GPU_MAX_K - 1. Any thread, any number at once. ERR_GPU with the
 * library's error in err (the GPU disabled, out of device memory, a CUDA error, bad k): the
 * caller builds on the CPU instead. */
int vec_gpu_knn_graph(int metric, const float *vecs, uint32_t n, uint32_t dim, uint32_t k,
                      uint32_t *out, char *err, size_t errlen);

/* Probes for a device under mode. ERR_GPU with the reason in err only for INDEX_GPU_YES when
 * none is usable (the server must not start); AUTO without one, and NO, return 0. */
int index_gpu_probe(int mode, char *err, size_t errlen);
/* What the probe found. */
void index_gpu_get(index_gpu_info *out);

#endif
