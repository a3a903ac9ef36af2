/* hnsw_bulk.c: vec_hnsw_build (index.h), an HNSW index filled in bulk from kNN lists (exact
 * from vec_knn_graph on the CPU, or from the GPU's gpu_knn_graph) instead of one insertion at
 * a time. It shares hnsw.c's node layout, neighbour heuristic and back-list bookkeeping
 * (hnsw_int.h), so the graph it makes is searched, changed and saved like any other.
 *
 * HOW. Each level is built the same way from kNN lists among its own nodes (level 0: the
 * caller's; above: the `upper` function's, over the few nodes that reach the level), in
 * three passes over the level's nodes, the first and the last on threads: (1) each node's
 * list, with distances, sorted and pruned by hnsw__select_neighbors to the level's capacity
 * (topped up to half of it with the nearest dropped: the insertion gives a new node M links
 * at once); (2) the reverse edges gathered per target (CSR arrays indexed by slot); (3) each
 * node's list merged with its reverse edges and pruned again where that passes the
 * capacity. A worker writes only its own nodes' lists and reads only those, the vectors and
 * the CSR arrays: no locks. Then, on one thread: the back lists, and per level a walk from
 * the entry point that links in (both ways) every node it cannot reach (the kNN lists of a
 * tight cluster can all stay inside it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "index/hnsw_int.h"

typedef struct bulk {
    hnsw *h;
    uint32_t lev, cap, fill;
    const uint32_t *slots; /* the level's nodes: list i belongs to slots[i] */
    const uint32_t *knn;   /* per list, k list indexes (NONE: padding) */
    uint32_t k;
    const uint32_t *roff, *rev; /* pass 3: slot x's reverse edges are rev[roff[x]..roff[x+1]) */
    pair *scr;                  /* per worker, 2 * scap pairs (candidates, then rest) */
    size_t scap;
} bulk;

/* Sorts c[0..n) by (distance, slot), drops repeated slots, and prunes the rest into x's list
 * at b's level by the heuristic. */
static void bulk_set(const bulk *b, uint32_t x, pair *c, uint32_t n)
{
    qsort(c, n, sizeof(pair), hnsw__pair_cmp);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!m || c[i].s != c[m - 1].s) /* the same slot has the same distance: adjacent */
            c[m++] = c[i];
    m = hnsw__select_neighbors(b->h, c, m, b->cap, b->fill, c + b->scap);
    uint32_t *l = list_of(b->h, x, b->lev);
    l[0] = m;
    for (uint32_t i = 0; i < m; i++)
        l[1 + i] = c[i].s;
}

static int bulk_knn_pass(void *ctx, uint32_t worker, uint32_t lo, uint32_t hi)
{
    const bulk *b = ctx;
    pair *c = b->scr + 2 * worker * b->scap;
    for (uint32_t i = lo; i < hi; i++) {
        uint32_t x = b->slots[i];
        const float *vx = vec_of(b->h, x);
        const uint32_t *row = b->knn + (size_t)i * b->k;
        uint32_t n = 0;
        for (uint32_t j = 0; j < b->k; j++) {
            if (row[j] == NONE)
                continue;
            uint32_t y = b->slots[row[j]];
            c[n++] = (pair){dist(b->h, vx, vec_of(b->h, y)), y};
        }
        bulk_set(b, x, c, n);
    }
    return 0;
}

static int bulk_merge_pass(void *ctx, uint32_t worker, uint32_t lo, uint32_t hi)
{
    const bulk *b = ctx;
    pair *c = b->scr + 2 * worker * b->scap;
    for (uint32_t i = lo; i < hi; i++) {
        uint32_t x = b->slots[i];
        const float *vx = vec_of(b->h, x);
        const uint32_t *l = list_of(b->h, x, b->lev);
        uint32_t n = 0;
        for (uint32_t j = 1; j <= l[0]; j++)
            c[n++] = (pair){dist(b->h, vx, vec_of(b->h, l[j])), l[j]};
        for (uint32_t j = b->roff[x]; j < b->roff[x + 1]; j++)
            c[n++] = (pair){dist(b->h, vx, vec_of(b->h, b->rev[j])), b->rev[j]};
        bulk_set(b, x, c, n);
    }
    return 0;
}

/* The reverse edges of b's level as CSR arrays over all n slots (*roff: n + 1 offsets,
 * *rev), and the largest in-degree. ERR_NOMEM. */
static int bulk_reverse(const bulk *b, uint32_t nl, uint32_t n, uint32_t **roff, uint32_t **rev,
                        uint32_t *maxin)
{
    uint32_t *off = try_calloc((size_t)n + 1, sizeof(uint32_t));
    if (!off)
        return ERR_NOMEM;
    for (uint32_t i = 0; i < nl; i++) {
        const uint32_t *l = list_of(b->h, b->slots[i], b->lev);
        for (uint32_t j = 1; j <= l[0]; j++)
            off[l[j] + 1]++;
    }
    *maxin = 0;
    for (uint32_t y = 0; y < n; y++) {
        *maxin = off[y + 1] > *maxin ? off[y + 1] : *maxin;
        off[y + 1] += off[y];
    }
    uint32_t *r = try_malloc((off[n] ? off[n] : 1) * sizeof(uint32_t));
    if (!r) {
        xfree(off);
        return ERR_NOMEM;
    }
    for (uint32_t i = 0; i < nl; i++) { /* off[y] walks to y's end, y + 1's start */
        const uint32_t *l = list_of(b->h, b->slots[i], b->lev);
        for (uint32_t j = 1; j <= l[0]; j++)
            r[off[l[j]]++] = b->slots[i];
    }
    memmove(off + 1, off, (size_t)n * sizeof(uint32_t));
    off[0] = 0;
    *roff = off;
    *rev = r;
    return 0;
}

/* Passes 1-3 of level lev over its nl nodes (slots), from knn (nl x k list indexes), on
 * `threads` workers; n is the number of slots. ERR_NOMEM. */
static int bulk_level(hnsw *h, uint32_t lev, const uint32_t *slots, uint32_t nl, uint32_t n,
                      const uint32_t *knn, uint32_t k, uint32_t threads)
{
    bulk b = {.h = h,
              .lev = lev,
              .cap = cap_of(h, lev),
              .fill = cap_of(h, lev) / 2,
              .slots = slots,
              .knn = knn,
              .k = k,
              .scap = k ? k : 1};
    if (!(b.scr = try_malloc(2 * threads * b.scap * sizeof(pair))))
        return ERR_NOMEM;
    vec__parallel(threads, nl, 256, bulk_knn_pass, &b);
    xfree(b.scr);
    uint32_t *roff, *rev, maxin;
    int rc = bulk_reverse(&b, nl, n, &roff, &rev, &maxin);
    if (rc)
        return rc;
    b.roff = roff;
    b.rev = rev;
    b.scap = (size_t)b.cap + maxin;
    if ((b.scr = try_malloc(2 * threads * b.scap * sizeof(pair))) != NULL)
        vec__parallel(threads, nl, 256, bulk_merge_pass, &b);
    else
        rc = ERR_NOMEM;
    xfree(b.scr);
    xfree(roff);
    xfree(rev);
    return rc;
}

/* The kNN lists of an upper level when the caller gives no function: exact, on the CPU. */
static int bulk_cpu_knn(void *ctx, int metric, const float *vecs, uint32_t n, uint32_t dim,
                        uint32_t k, uint32_t *out)
{
    return vec_knn_graph(metric, vecs, n, dim, k, *(const uint32_t *)ctx, out);
}

/* Level lev (>= 1) over its nodes slots[0..nl): their vectors to `upper` for kNN lists of
 * min(k, nl - 1), whose rows are checked, then passes 1-3. */
static int bulk_upper_level(hnsw *h, uint32_t lev, const uint32_t *slots, uint32_t nl, uint32_t n,
                            uint32_t k, vec_knn_fn upper, void *ctx, uint32_t threads)
{
    k = k < nl - 1 ? k : nl - 1;
    float *v = try_malloc((size_t)nl * h->dim * sizeof(float));
    uint32_t *knn = try_malloc(((size_t)nl * k + 1) * sizeof(uint32_t));
    int rc = v && knn ? 0 : ERR_NOMEM;
    for (uint32_t i = 0; !rc && i < nl; i++)
        memcpy(v + (size_t)i * h->dim, vec_of(h, slots[i]), h->dim * sizeof(float));
    if (!rc)
        rc = upper(ctx, h->metric, v, nl, h->dim, k, knn);
    for (size_t i = 0; !rc && i < (size_t)nl * k; i++)
        if (knn[i] != NONE && (knn[i] >= nl || knn[i] == i / k))
            knn[i] = NONE; /* a bad row from the function: left out, not followed */
    if (!rc)
        rc = bulk_level(h, lev, slots, nl, n, knn, k, threads);
    xfree(v);
    xfree(knn);
    return rc;
}

/* Every level: level 0 from knn, the ones above through `upper` (NULL: exact on the CPU).
 * The entry point is the first node of the highest level, as insertion in row order would
 * leave it. */
static int bulk_levels(hnsw *h, uint32_t n, const uint32_t *knn, uint32_t k, vec_knn_fn upper,
                       void *ctx, uint32_t threads)
{
    uint32_t *slots = try_malloc(((size_t)n ? n : 1) * sizeof(uint32_t));
    if (!slots)
        return ERR_NOMEM;
    h->entry = 0;
    h->maxlevel = 0;
    for (uint32_t x = 0; x < n; x++) {
        slots[x] = x;
        if (node_of(h, x)->level > h->maxlevel) {
            h->entry = x;
            h->maxlevel = node_of(h, x)->level;
        }
    }
    int rc = bulk_level(h, 0, slots, n, n, knn, k, threads);
    if (!upper) {
        upper = bulk_cpu_knn;
        ctx = &threads;
    }
    for (uint32_t lev = 1; !rc && lev <= h->maxlevel; lev++) {
        uint32_t nl = 0;
        for (uint32_t x = 0; x < n; x++)
            if (node_of(h, x)->level >= lev)
                slots[nl++] = x;
        if (nl > 1)
            rc = bulk_upper_level(h, lev, slots, nl, n, k, upper, ctx, threads);
    }
    xfree(slots);
    return rc;
}

/* Marks every node reachable at lev from the nodes in queue[head..*qn) (marked already). */
static void bulk_walk(const hnsw *h, uint32_t lev, uint8_t *seen, uint32_t *queue, uint32_t *qn,
                      uint32_t head)
{
    while (head < *qn) {
        const uint32_t *l = list_of(h, queue[head++], lev);
        for (uint32_t i = 1; i <= l[0]; i++)
            if (!seen[l[i]]) {
                seen[l[i]] = 1;
                queue[(*qn)++] = l[i];
            }
    }
}

/* Adds the link a->b at lev, in place of a's farthest link when a's list is full. Returns 1
 * when a link was replaced (whatever it led to may now be cut off). */
static int bulk_force_link(hnsw *h, uint32_t a, uint32_t b, uint32_t lev)
{
    uint32_t *l = list_of(h, a, lev);
    if (hnsw__has_link(h, a, b, lev))
        return 0;
    if (l[0] < cap_of(h, lev)) {
        l[1 + l[0]++] = b;
        hnsw__link_added(h, a, b, lev);
        return 0;
    }
    uint32_t old = l[l[0]];
    l[l[0]] = b;
    hnsw__link_removed(h, a, old, lev);
    hnsw__link_added(h, a, b, lev);
    return 1;
}

/* Links u, which the entry point cannot reach at lev, both ways with the nearest node a
 * search of lev finds that has room in its list (else the nearest): in, so that u is
 * reached, and out, so that a search landing among u's neighbours can leave them. Returns 1
 * when a link was replaced. */
static int bulk_link_in(hnsw *h, searcher *s, uint32_t u, uint32_t lev)
{
    const float *q = vec_of(h, u);
    hnsw__searcher_begin(h, s);
    uint32_t got =
        hnsw__search_best(h, s, q, h->entry, dist(h, q, vec_of(h, h->entry)), h->efc, lev);
    uint32_t r = s->best[0].s;
    for (uint32_t i = 0; i < got; i++)
        if (list_of(h, s->best[i].s, lev)[0] < cap_of(h, lev)) {
            r = s->best[i].s;
            break;
        }
    int replaced = bulk_force_link(h, r, u, lev);
    return bulk_force_link(h, u, r, lev) | replaced;
}

/* Makes every node of every level reachable from the entry point at that level. A replaced
 * link may cut another node off: the walk is then redone, a few rounds at most. ERR_NOMEM. */
static int bulk_reach(hnsw *h, searcher *s, uint32_t n)
{
    uint8_t *seen = try_malloc(n);
    uint32_t *queue = try_malloc((size_t)n * sizeof(uint32_t));
    for (uint32_t lev = 0; seen && queue && lev <= h->maxlevel; lev++) {
        int again = 1;
        for (int round = 0; again && round < 8; round++) {
            again = 0;
            memset(seen, 0, n);
            uint32_t qn = 1;
            queue[0] = h->entry;
            seen[h->entry] = 1;
            bulk_walk(h, lev, seen, queue, &qn, 0);
            for (uint32_t u = 0; u < n; u++) {
                if (seen[u] || node_of(h, u)->level < lev)
                    continue;
                again |= bulk_link_in(h, s, u, lev);
                seen[u] = 1;
                queue[qn++] = u;
                bulk_walk(h, lev, seen, queue, &qn, qn - 1);
            }
        }
    }
    int rc = seen && queue ? 0 : ERR_NOMEM;
    xfree(seen);
    xfree(queue);
    return rc;
}

static int bulk_fail(int rc, char *err, size_t errlen, const char *what, uint32_t at)
{
    if (err && errlen && at != NONE)
        snprintf(err, errlen, "HNSW bulk build: %s (row %u)", what, at);
    else if (err && errlen)
        snprintf(err, errlen, "HNSW bulk build: %s", what);
    return rc;
}

/* Checks every input before anything changes. */
static int bulk_check(const hnsw *h, const uint32_t *ids, const float *vecs, uint32_t n,
                      const uint32_t *knn, uint32_t k, char *err, size_t errlen)
{
    uint32_t maxid = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i] >= HNSW_MAX_SLOTS)
            return bulk_fail(ERR_LIMIT, err, errlen, "id out of range", i);
        maxid = ids[i] > maxid ? ids[i] : maxid;
        const float *v = vecs + (size_t)i * h->dim;
        float sq = 0;
        for (uint32_t j = 0; j < h->dim; j++) {
            if (!isfinite(v[j]))
                return bulk_fail(ERR_INVAL, err, errlen, "vector not finite", i);
            sq += v[j] * v[j];
        }
        if (h->metric == VEC_COSINE && !(sq > 0))
            return bulk_fail(ERR_INVAL, err, errlen, "zero vector", i);
        for (uint32_t j = 0; j < k; j++) {
            uint32_t r = knn[(size_t)i * k + j];
            if (r != NONE && (r >= n || r == i))
                return bulk_fail(ERR_INVAL, err, errlen, "kNN row out of range or itself", i);
        }
    }
    uint8_t *seen = try_calloc(maxid / 8 + 1, 1);
    if (!seen)
        return ERR_NOMEM;
    int rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++) {
        if (seen[ids[i] / 8] & (1u << (ids[i] % 8)))
            rc = bulk_fail(ERR_INVAL, err, errlen, "repeated id", i);
        seen[ids[i] / 8] |= (uint8_t)(1u << (ids[i] % 8));
    }
    xfree(seen);
    return rc;
}

/* Takes slots 0..n-1 for the rows, drawing each level as an add does. ERR_NOMEM. */
static int bulk_take(hnsw *h, const uint32_t *ids, const float *vecs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (hnsw__reserve(h, ids[i]))
            return ERR_NOMEM;
        uint32_t level = hnsw__random_level(h);
        uint32_t *upper = hnsw__upper_alloc(h, level);
        if (level && !upper)
            return ERR_NOMEM;
        uint32_t x = hnsw__slot_take(h, ids[i], level, upper, vecs + (size_t)i * h->dim);
        if (h->metric == VEC_COSINE)
            vec_normalize(vec_of(h, x), h->dim); /* bulk_check refused zero vectors */
    }
    return 0;
}

/* Back to empty after a failed build (memory already taken for slots stays for reuse). */
static void bulk_undo(hnsw *h, uint64_t rng)
{
    for (uint32_t x = 0; x < h->nslots; x++) {
        node *nd = node_of(h, x);
        xfree(nd->upper);
        nd->upper = NULL;
        hnsw__node_free_back(h, nd);
        h->id2slot[nd->id] = NONE;
        nd->id = NONE;
    }
    h->nslots = h->count = 0;
    h->upper_bytes = 0;
    h->entry = NONE;
    h->maxlevel = 0;
    h->rng = rng;
}

static int bulk_run(hnsw *h, const uint32_t *ids, const float *vecs, uint32_t n,
                    const uint32_t *knn, uint32_t k, vec_knn_fn upper, void *ctx, uint32_t threads)
{
    uint64_t rng = h->rng;
    searcher *s = NULL;
    int rc = bulk_take(h, ids, vecs, n);
    if (!rc)
        rc = bulk_levels(h, n, knn, k, upper, ctx, vec__threads(threads));
    if (!rc && !(s = hnsw__searcher_ready(h, h->efc)))
        rc = ERR_NOMEM;
    if (!rc) {
        hnsw__back_build(h, n);
        rc = bulk_reach(h, s, n);
    }
    if (s)
        hnsw__searcher_put(h, s);
    if (rc)
        bulk_undo(h, rng);
    return rc;
}

int vec_hnsw_build(vec_index *ix, const uint32_t *ids, const float *vecs, uint32_t n,
                   const uint32_t *knn, uint32_t k, vec_knn_fn upper, void *upper_ctx,
                   uint32_t threads, char *err, size_t errlen)
{
    if (!ix || ix->ops != &hnsw__ops)
        return bulk_fail(ERR_INVAL, err, errlen, "not an HNSW index", NONE);
    if (n && (!ids || !vecs || (k && !knn)))
        return bulk_fail(ERR_INVAL, err, errlen, "missing input", NONE);
    hnsw *h = (hnsw *)ix;
    pthread_rwlock_wrlock(&ix->lock);
    int rc = h->nslots ? bulk_fail(ERR_INVAL, err, errlen, "index not empty", NONE)
                       : bulk_check(h, ids, vecs, n, knn, k, err, errlen);
    if (!rc && n)
        rc = bulk_run(h, ids, vecs, n, knn, k, upper, upper_ctx, threads);
    if (rc == ERR_NOMEM || rc == ERR_GPU)
        bulk_fail(rc, err, errlen, rc == ERR_NOMEM ? "out of memory" : "kNN lists failed", NONE);
    pthread_rwlock_unlock(&ix->lock);
    return rc;
}
