/* fs_vec.h: the vector indexes behind FS.KNN. Each VECTOR field of a feature view whose
 * INDEX is HNSW or FLAT has one in-memory vec_index (index/index.h) over the vectors of the
 * view's online rows; the fields of one view share a table between the indexes' dense ids
 * (slots, reused once free) and the stored entity keys. LMDB's online rows stay the source
 * of truth: the indexes follow them through the store's online-row hook (a push or
 * materialize that replaces a row replaces its vectors; a NULL, zero-for-COSINE or
 * non-finite vector leaves the index), are dropped with the view, and are built from the
 * rows at start and whenever they are missing: a view created since, or one whose pass
 * failed to commit (its indexes are thrown away, since they may hold undone changes, and
 * built again from the committed rows at the next use). INDEX NONE fields have no index:
 * FS.KNN scans their rows.
 *
 * THREADS. Loop thread only, like the store.
 * LIFETIMES. A fs_vec_view and its indexes live until the next write of the pass (a write
 * may drop or rebuild them): use them within one command, without writing. */
#ifndef QUIVER_FS_VEC_H
#define QUIVER_FS_VEC_H

#include <stddef.h>
#include <stdint.h>

#include "index/index.h"
#include "store/store.h"

typedef struct fs_vec_view fs_vec_view;

/* Hooks the indexes to st's online rows and builds those of every view (synchronously;
 * a view whose build fails is logged and built again at its next use). Whatever an
 * earlier fs_vec_init held is forgotten first. */
void fs_vec_init(store *st);
/* Forgets every index (and unhooks the store given to fs_vec_init). */
void fs_vec_reset(void);

/* The indexes of v, built through t now if missing. Errors: those of the build (ERR_NOMEM,
 * ERR_INVAL from the index with its detail in err, storage errors). */
int fs_vec_view_get(store_txn *t, const store_view *v, fs_vec_view **out, char *err,
                    size_t errlen);
/* The index of v's field k, or NULL when the field has INDEX NONE. */
vec_index *fs_vec_index(const fs_vec_view *vv, int field);
/* The entity key (stored form) of id; ERR_NOTFOUND for a free slot. The key lives as long
 * as vv. */
int fs_vec_key(const fs_vec_view *vv, uint32_t id, const char **ekey, size_t *elen);
/* One past the largest id in use (the size of a per-id table). */
uint32_t fs_vec_slots(const fs_vec_view *vv);

/* The index metric (VEC_*) of a field's STORE_METRIC_*. */
int fs_vec_metric(int store_metric);
/* The vector of a row's VECTOR field as floats in out (room for dim): 0, or ERR_INVAL when
 * it is NULL, not finite, or (COSINE) zero; for COSINE, out is normalised. */
int fs_vec_from_value(const store_field *f, const store_fvalue *val, float *out);

#endif
