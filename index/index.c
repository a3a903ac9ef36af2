/* index.c: the vec_* entry points of index.h. It checks every argument once (parameters,
 * vectors finite, k and radius), fills in the defaults, normalises COSINE vectors and
 * queries, takes the index's rwlock, and hands the call to the kind through its vtable
 * (index_int.h). It also writes and checks the snapshot envelope that wraps each kind's
 * payload:
 *
 * SNAPSHOT ENVELOPE, version 1 (all integers little-endian)
 *   offset   size  meaning
 *   0        4     magic "QVIX"
 *   4        4     envelope version (1)
 *   8        4     kind (VEC_FLAT 1, VEC_HNSW 2, VEC_IVF 3)
 *   12       4     metric (VEC_L2 1, VEC_IP 2, VEC_COSINE 3)
 *   16       4     dim
 *   20       4     m
 *   24       4     ef_construction
 *   28       4     ef_runtime
 *   32       8     epsilon (IEEE-754 double, as its 64 bits)
 *   40       4     initial_cap
 *   44       4     F, the length of the factory string (0: none; at most 1024)
 *   48       F     factory string, no terminator
 *   48+F     8     P, the length of the payload
 *   56+F     P     the kind's payload (its layout is at the top of flat.c, hnsw.c, ivf.c)
 *   56+F+P   4     CRC32C of every byte before it
 * Nothing may follow. A load checks the length and the CRC before reading any field. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "index/index_int.h"

#define SNAP_MAGIC "QVIX"
#define SNAP_VERSION 1
#define SNAP_FIXED 48 /* the envelope's bytes before the factory string */
#define MAX_FACTORY 1024

/* The constructors of the kinds not yet linked in stay NULL (index_int.h). */
#pragma weak vec__hnsw_create
#pragma weak vec__ivf_create

static const struct {
    const char *name;
    vec_create_fn create;
} kinds[] = {
    [VEC_FLAT] = {"FLAT", vec__flat_create},
    [VEC_HNSW] = {"HNSW", vec__hnsw_create},
    [VEC_IVF] = {"IVF", vec__ivf_create},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int vec__hit_cmp(const void *a, const void *b)
{
    const vec_hit *x = a, *y = b;
    if (x->dist != y->dist)
        return x->dist < y->dist ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* ---- create and free ---- */

/* Checks p and completes it with the defaults into *out (factory still borrowed). */
static int check_params(const vec_params *p, vec_params *out, char *err, size_t errlen)
{
    if (!p)
        return fail(ERR_INVAL, err, errlen, "no index parameters");
    if (p->kind <= 0 || (size_t)p->kind >= NKINDS || !kinds[p->kind].name)
        return fail(ERR_INVAL, err, errlen, "unknown index type %d", p->kind);
    if (p->metric != VEC_L2 && p->metric != VEC_IP && p->metric != VEC_COSINE)
        return fail(ERR_INVAL, err, errlen, "unknown DISTANCE_METRIC %d", p->metric);
    if (p->dim < 1 || p->dim > VEC_MAX_DIM)
        return fail(ERR_INVAL, err, errlen, "DIM must be 1..%d, got %u", VEC_MAX_DIM, p->dim);
    if (!(p->epsilon >= 0) || !isfinite(p->epsilon))
        return fail(ERR_INVAL, err, errlen, "EPSILON must be a finite number >= 0");
    if (p->factory && strlen(p->factory) > MAX_FACTORY)
        return fail(ERR_INVAL, err, errlen, "factory string longer than %d bytes", MAX_FACTORY);
    if (!kinds[p->kind].create)
        return fail(ERR_INVAL, err, errlen, "index type %s is not built into this server",
                    kinds[p->kind].name);
    *out = *p;
    out->m = p->m ? p->m : 16;
    out->ef_construction = p->ef_construction ? p->ef_construction : 200;
    out->ef_runtime = p->ef_runtime ? p->ef_runtime : 10;
    out->epsilon = p->epsilon > 0 ? p->epsilon : 0.01;
    return 0;
}

int vec_create(const vec_params *p, vec_index **out, char *err, size_t errlen)
{
    vec_params full;
    int rc = check_params(p, &full, err, errlen);
    if (rc)
        return rc;
    vec_index *ix = NULL;
    rc = kinds[full.kind].create(&full, &ix, err, errlen);
    if (rc)
        return rc;
    ix->params = full;
    ix->params.factory = NULL;
    ix->gpu = NULL;
    if (full.factory && !(ix->params.factory = try_memdup(full.factory, strlen(full.factory)))) {
        ix->ops->destroy(ix);
        return ERR_NOMEM;
    }
    /* Writers first: glibc's default favours readers, and a steady stream of searches
     * would then keep an HSET's index update waiting for ever. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&ix->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    *out = ix;
    return 0;
}

void vec_free(vec_index *ix)
{
    if (!ix)
        return;
    vec__gpu_free(ix->gpu);
    pthread_rwlock_destroy(&ix->lock);
    xfree((char *)ix->params.factory);
    ix->ops->destroy(ix);
}

const vec_params *vec_get_params(const vec_index *ix)
{
    return &ix->params;
}

/* ---- locking ---- */

static void rdlock(vec_index *ix)
{
    if (!ix->ops->own_locking)
        pthread_rwlock_rdlock(&ix->lock);
}

static void wrlock(vec_index *ix)
{
    if (!ix->ops->own_locking)
        pthread_rwlock_wrlock(&ix->lock);
}

static void unlock(vec_index *ix)
{
    if (!ix->ops->own_locking)
        pthread_rwlock_unlock(&ix->lock);
}

/* ---- vectors in ---- */

static int all_finite(const float *v, uint32_t dim)
{
    for (uint32_t i = 0; i < dim; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* The vector to hand to the kind: v itself, or for COSINE a normalised copy in *copy
 * (xfree it). ERR_INVAL for a non-finite or (COSINE) zero vector. */
static int prepare(const vec_index *ix, const float *v, const float **use, float **copy)
{
    uint32_t dim = ix->params.dim;
    *copy = NULL;
    *use = v;
    if (!v || !all_finite(v, dim))
        return ERR_INVAL;
    if (ix->params.metric != VEC_COSINE)
        return 0;
    float *c = try_malloc((size_t)dim * sizeof *c);
    if (!c)
        return ERR_NOMEM;
    memcpy(c, v, (size_t)dim * sizeof *c);
    if (vec_normalize(c, dim)) {
        xfree(c);
        return ERR_INVAL;
    }
    *copy = c;
    *use = c;
    return 0;
}

int vec_add(vec_index *ix, uint32_t id, const float *v)
{
    const float *use;
    float *copy;
    int rc = prepare(ix, v, &use, &copy);
    if (rc)
        return rc;
    wrlock(ix);
    rc = ix->ops->add(ix, id, use);
    if (rc == 0 && ix->gpu)
        vec__gpu_changed(ix->gpu, id);
    unlock(ix);
    xfree(copy);
    return rc;
}

int vec_delete(vec_index *ix, uint32_t id)
{
    wrlock(ix);
    int rc = ix->ops->del(ix, id);
    if (rc == 0 && ix->gpu)
        vec__gpu_changed(ix->gpu, id);
    unlock(ix);
    return rc;
}

int vec_contains(const vec_index *ix, uint32_t id)
{
    vec_index *w = (vec_index *)ix; /* the lock is the only thing written */
    rdlock(w);
    int r = ix->ops->contains(ix, id);
    unlock(w);
    return r;
}

size_t vec_count(const vec_index *ix)
{
    vec_index *w = (vec_index *)ix;
    rdlock(w);
    size_t n = ix->ops->count(ix);
    unlock(w);
    return n;
}

size_t vec_memory(const vec_index *ix)
{
    vec_index *w = (vec_index *)ix;
    rdlock(w);
    size_t n = ix->ops->memory(ix);
    unlock(w);
    return n;
}

/* ---- searches ---- */

/* A filter that filters nothing is passed on as NULL. */
static const vec_filter *effective(const vec_filter *f)
{
    return f && (f->keep || f->ids) ? f : NULL;
}

int vec_knn(vec_index *ix, const float *q, uint32_t k, uint32_t ef, const vec_filter *f,
            vec_hit *out, size_t *n)
{
    *n = 0;
    if (k == 0)
        return ERR_INVAL;
    if (k > VEC_MAX_K)
        return ERR_LIMIT;
    const float *use;
    float *copy;
    int rc = prepare(ix, q, &use, &copy);
    if (rc)
        return rc;
    rdlock(ix);
    rc = ix->ops->knn(ix, use, k, ef ? ef : ix->params.ef_runtime, effective(f), out, n);
    unlock(ix);
    xfree(copy);
    return rc;
}

int vec_range(vec_index *ix, const float *q, float radius, double epsilon, const vec_filter *f,
              size_t max, vec_hit **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (isnan(radius) || !(epsilon >= 0) || !isfinite(epsilon))
        return ERR_INVAL;
    const float *use;
    float *copy;
    int rc = prepare(ix, q, &use, &copy);
    if (rc)
        return rc;
    if (max > 0) {
        rdlock(ix);
        rc = ix->ops->range(ix, use, radius, epsilon > 0 ? epsilon : ix->params.epsilon,
                            effective(f), max, out, n);
        unlock(ix);
    }
    xfree(copy);
    return rc;
}

/* ---- snapshot bytes ---- */

void vec__put_u32(buf *b, uint32_t v)
{
    unsigned char x[4] = {v, v >> 8, v >> 16, v >> 24};
    buf_append(b, x, 4);
}

void vec__put_u64(buf *b, uint64_t v)
{
    vec__put_u32(b, (uint32_t)v);
    vec__put_u32(b, (uint32_t)(v >> 32));
}

const char *vec__get_bytes(vec_reader *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        return NULL;
    }
    const char *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

uint32_t vec__get_u32(vec_reader *r)
{
    const unsigned char *p = (const unsigned char *)vec__get_bytes(r, 4);
    if (!p)
        return 0;
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t vec__get_u64(vec_reader *r)
{
    uint64_t lo = vec__get_u32(r);
    return lo | (uint64_t)vec__get_u32(r) << 32;
}

/* ---- snapshots ---- */

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

int vec_save(vec_index *ix, buf *out)
{
    const vec_params *p = &ix->params;
    size_t start = out->len;
    size_t flen = p->factory ? strlen(p->factory) : 0;
    if (buf_try_reserve(out, SNAP_FIXED + flen + 12))
        return ERR_NOMEM; /* the envelope fits; the kind reserves its payload */
    buf_append(out, SNAP_MAGIC, 4);
    vec__put_u32(out, SNAP_VERSION);
    vec__put_u32(out, (uint32_t)p->kind);
    vec__put_u32(out, (uint32_t)p->metric);
    vec__put_u32(out, p->dim);
    vec__put_u32(out, p->m);
    vec__put_u32(out, p->ef_construction);
    vec__put_u32(out, p->ef_runtime);
    vec__put_u64(out, double_bits(p->epsilon));
    vec__put_u32(out, p->initial_cap);
    vec__put_u32(out, (uint32_t)flen);
    buf_append(out, p->factory, flen);
    size_t len_at = out->len;
    vec__put_u64(out, 0); /* the payload length, set below */
    rdlock(ix);
    int rc = ix->ops->save(ix, out);
    unlock(ix);
    if (rc) {
        out->len = start;
        return rc;
    }
    if (buf_try_reserve(out, 4)) { /* the CRC */
        out->len = start;
        return ERR_NOMEM;
    }
    uint64_t plen = out->len - len_at - 8;
    for (int i = 0; i < 8; i++)
        out->data[len_at + i] = (char)(plen >> (8 * i));
    vec__put_u32(out, crc32c(0, out->data + start, out->len - start));
    return 0;
}

/* Reads the envelope's fields into *p (factory into fbuf) and the payload's place. */
static int read_envelope(const char *data, size_t len, vec_params *p, char *fbuf,
                         vec_reader *payload, char *err, size_t errlen)
{
    if (len < SNAP_FIXED + 12)
        return fail(ERR_CORRUPT, err, errlen, "index snapshot truncated (%zu bytes)", len);
    if (memcmp(data, SNAP_MAGIC, 4) != 0)
        return fail(ERR_CORRUPT, err, errlen, "not an index snapshot (bad magic)");
    vec_reader r = {data + 4, len - 8, 0}; /* the CRC is not a field */
    uint32_t crc = vec__get_u32(&(vec_reader){data + len - 4, 4, 0});
    if (crc32c(0, data, len - 4) != crc)
        return fail(ERR_CORRUPT, err, errlen, "index snapshot checksum mismatch");
    uint32_t version = vec__get_u32(&r);
    if (version != SNAP_VERSION)
        return fail(ERR_CORRUPT, err, errlen, "index snapshot version %u unknown", version);
    memset(p, 0, sizeof *p);
    p->kind = (int)vec__get_u32(&r);
    p->metric = (int)vec__get_u32(&r);
    p->dim = vec__get_u32(&r);
    p->m = vec__get_u32(&r);
    p->ef_construction = vec__get_u32(&r);
    p->ef_runtime = vec__get_u32(&r);
    uint64_t eps = vec__get_u64(&r);
    memcpy(&p->epsilon, &eps, sizeof eps);
    p->initial_cap = vec__get_u32(&r);
    uint32_t flen = vec__get_u32(&r);
    if (flen > MAX_FACTORY)
        return fail(ERR_CORRUPT, err, errlen, "index snapshot factory length %u", flen);
    const char *f = vec__get_bytes(&r, flen);
    uint64_t plen = vec__get_u64(&r);
    if (r.bad || plen != r.left)
        return fail(ERR_CORRUPT, err, errlen, "index snapshot lengths disagree");
    for (uint32_t i = 0; i < flen; i++) /* FAISS's factory strings are printable ASCII */
        if ((unsigned char)f[i] < 0x20 || (unsigned char)f[i] > 0x7e)
            return fail(ERR_CORRUPT, err, errlen, "index snapshot factory string not printable");
    if (flen) {
        memcpy(fbuf, f, flen);
        fbuf[flen] = '\0';
        p->factory = fbuf;
    }
    *payload = r;
    return 0;
}

int vec_load(const char *data, size_t len, vec_index **out, char *err, size_t errlen)
{
    vec_params p;
    char fbuf[MAX_FACTORY + 1];
    vec_reader payload = {NULL, 0, 0};
    int rc = read_envelope(data, len, &p, fbuf, &payload, err, errlen);
    if (rc)
        return rc;
    vec_index *ix;
    char why[256] = "";
    rc = vec_create(&p, &ix, why, sizeof why);
    if (rc == ERR_INVAL && p.kind > 0 && (size_t)p.kind < NKINDS && kinds[p.kind].name &&
        !kinds[p.kind].create)
        return fail(rc, err, errlen, "%s", why); /* a kind this build lacks */
    if (rc)
        return fail(rc == ERR_NOMEM ? rc : ERR_CORRUPT, err, errlen,
                    "index snapshot parameters: %s", why);
    rc = ix->ops->load(ix, payload.p, payload.left, err, errlen);
    if (rc) {
        vec_free(ix);
        return rc;
    }
    *out = ix;
    return 0;
}
