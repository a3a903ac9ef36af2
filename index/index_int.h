/* index_int.h: what the files of index/ share and nobody else includes (tests aside).
 *
 * KINDS. Each kind (FLAT, HNSW, IVF) lives in its own file and exports one constructor,
 * vec__<kind>_create. index.c keeps a table of them indexed by VEC_* kind; the HNSW and IVF
 * entries are weak references there (#pragma weak in index.c), so the server links and
 * answers "not built" with ERR_INVAL until hnsw.c / ivf.c define them. Adding a kind: add
 * its VEC_* value in index.h, its constructor below, its entry in index.c's table.
 *
 * A constructor receives parameters that index.c has already checked (kind, metric, dim in
 * 1..VEC_MAX_DIM) and completed with the defaults (m, ef_construction, ef_runtime, epsilon
 * never 0; factory may be NULL except for IVF). It allocates its own struct whose first
 * member is `vec_index base`, sets base.ops and returns &obj->base. index.c then fills the
 * rest of base (params with its own copy of factory, the lock) and owns it: ops->destroy
 * frees only what the kind allocated, the struct included.
 *
 * LOCKING. Unless ops->own_locking is set, index.c holds base.lock around every call:
 * exclusive for add/del/load, shared for the rest, so a kind sees one writer or many readers
 * and needs no locks of its own.
 *
 * VECTORS reach a kind already checked (finite) and, for COSINE, normalised; queries too.
 * Distances a kind returns follow index.h (L2 squared, 1 - dot for IP and COSINE): use
 * vec__kern() and vec__dist_from_dot().
 *
 * SNAPSHOTS. index.c writes and checks the envelope (magic, version, the params, payload
 * length, CRC32C; the table is at the top of index.c); a kind writes its payload with
 * ops->save and reads it back into a freshly created, empty index with ops->load, which
 * must check every field of the bytes (they passed the CRC but are still untrusted) and
 * return ERR_CORRUPT with a detail when one is wrong. */
#ifndef QUIVER_INDEX_INT_H
#define QUIVER_INDEX_INT_H

#include <pthread.h>

#include "index/gpu/gpu.h"
#include "index/index.h"

typedef struct vec_ops {
    int own_locking; /* 1: index.c takes no lock, the kind does its own */
    void (*destroy)(vec_index *ix);
    int (*add)(vec_index *ix, uint32_t id, const float *v);
    int (*del)(vec_index *ix, uint32_t id);
    int (*contains)(const vec_index *ix, uint32_t id);
    size_t (*count)(const vec_index *ix);
    size_t (*memory)(const vec_index *ix);
    /* k in 1..VEC_MAX_K, ef already defaulted, f NULL when it filters nothing. */
    int (*knn)(vec_index *ix, const float *q, uint32_t k, uint32_t ef, const vec_filter *f,
               vec_hit *out, size_t *n);
    /* epsilon already defaulted; *out allocated with try_malloc/xmalloc (caller xfrees). */
    int (*range)(vec_index *ix, const float *q, float radius, double epsilon, const vec_filter *f,
                 size_t max, vec_hit **out, size_t *n);
    int (*save)(vec_index *ix, buf *out);
    int (*load)(vec_index *ix, const char *p, size_t len, char *err, size_t errlen);
} vec_ops;

struct vec_index {
    const vec_ops *ops;
    vec_params params; /* completed with defaults; factory is index.c's own copy */
    pthread_rwlock_t lock;
    struct vec_gpu_mirror *gpu; /* FLAT only, NULL if none; set and read under lock */
};

typedef int (*vec_create_fn)(const vec_params *p, vec_index **out, char *err, size_t errlen);

int vec__flat_create(const vec_params *p, vec_index **out, char *err, size_t errlen);
int vec__hnsw_create(const vec_params *p, vec_index **out, char *err, size_t errlen);
int vec__ivf_create(const vec_params *p, vec_index **out, char *err, size_t errlen);

/* ---- kernels (distance.c, distance_avx2.c, distance_avx512.c) ---- */

/* One instruction set's kernels. The _x4 forms compare q with four vectors at once (any of
 * them may be the same pointer), sharing the loads of q: the blocked scans use them. */
typedef struct vec_kern {
    const char *name;
    float (*l2sq)(const float *a, const float *b, uint32_t dim);
    float (*dot)(const float *a, const float *b, uint32_t dim);
    void (*l2sq_x4)(const float *q, const float *const v[4], uint32_t dim, float out[4]);
    void (*dot_x4)(const float *q, const float *const v[4], uint32_t dim, float out[4]);
} vec_kern;

enum { VEC_KERN_SCALAR = 0, VEC_KERN_AVX2 = 1, VEC_KERN_AVX512 = 2 };

extern const vec_kern vec__kern_scalar, vec__kern_avx2, vec__kern_avx512;

/* The kernels in use (the best this CPU runs, capped by QUIVER_SIMD); chosen once. */
const vec_kern *vec__kern(void);
/* The kernels of one level, or NULL when this CPU cannot run them (tests, benchmarks). */
const vec_kern *vec__kern_level(int level);

/* The reported distance for a dot product: 1 - dot for IP and COSINE. */
static inline float vec__dist_from_dot(float dot)
{
    return 1.0f - dot;
}

/* Orders hits nearest first, ties by smaller id (qsort comparator). */
int vec__hit_cmp(const void *a, const void *b);

/* ---- threads (knn_graph.c) ---- */

/* Threads to use for `want` (0: one per online CPU), at most 256. */
uint32_t vec__threads(uint32_t want);
/* Runs fn over [0, n) in pieces of `grain` on vec__threads(threads) workers (this thread is
 * worker 0; worker ids are below vec__threads(threads), for per-worker scratch). The first
 * nonzero return stops the handing out of pieces and is returned. */
int vec__parallel(uint32_t threads, uint32_t n, uint32_t grain,
                  int (*fn)(void *ctx, uint32_t worker, uint32_t lo, uint32_t hi), void *ctx);
/* ---- FLAT's storage, for the GPU mirror (flat.c) ----
 * Both expect the index's lock held (shared is enough). */

/* Copies id's vector (as held: normalised for COSINE) into out; ERR_NOTFOUND if absent. */
int vec__flat_get(const vec_index *ix, uint32_t id, float *out);
/* One more than the largest id held (0 when empty). */
uint64_t vec__flat_id_bound(const vec_index *ix);

/* ---- the GPU library (gpu_probe.c) and the mirror (gpu_mirror.c) ----
 * Every function of index/gpu/gpu.h, reached through the library the probe loaded; each
 * member is named as the function without its gpu_ prefix. */
#define VEC__GPU_FUNCS(X)                                                                      \
    X(device_query) X(strerror) X(index_create) X(index_free) X(index_error) X(index_reserve)  \
    X(index_add) X(index_delete) X(index_compact) X(index_search) X(index_set_tile_rows)       \
    X(index_count) X(index_rows) X(index_device_bytes) X(index_last_times) X(knn_graph)

typedef struct vec__gpu_api {
#define X(name) __typeof__(gpu_##name) *name;
    VEC__GPU_FUNCS(X)
#undef X
} vec__gpu_api;

/* The library's functions after a successful probe; NULL while the GPU is disabled. */
const vec__gpu_api *vec__gpu(void);

/* index.c calls these (under the index's write lock) so the mirror learns of a change. */
void vec__gpu_changed(struct vec_gpu_mirror *m, uint32_t id);
void vec__gpu_free(struct vec_gpu_mirror *m);

/* ---- snapshot bytes: little-endian writers and a bounds-checked reader ---- */

void vec__put_u32(buf *b, uint32_t v);
void vec__put_u64(buf *b, uint64_t v);

/* Reads advance p; reading past the end sets bad and yields zeros, so a parser reads
 * every field and checks bad once. */
typedef struct vec_reader {
    const char *p;
    size_t left;
    int bad;
} vec_reader;

uint32_t vec__get_u32(vec_reader *r);
uint64_t vec__get_u64(vec_reader *r);
/* A pointer to the next n bytes (NULL and bad when fewer remain). */
const char *vec__get_bytes(vec_reader *r, size_t n);

#endif
