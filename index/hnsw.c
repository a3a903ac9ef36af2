/* hnsw.c: our HNSW graph index (Malkov & Yashunin), the VEC_HNSW kind behind index.h.
 *
 * LAYOUT. A node lives in one fixed-size level-0 record: its vector first (64-byte aligned),
 * then a small header and its 2M level-0 links. Records sit in chunks of HNSW_CHUNK, so
 * growing never moves a vector and a search reads one record per node it visits. A node's
 * upper levels (M links each; few nodes have any) are a separate small allocation. Links are
 * slot numbers; the caller's id is in the header and id2slot maps ids to slots.
 *
 * BUILD. A new node draws its level from -ln(U) / ln(M), descends greedily to that level,
 * then on each level below searches with EF_CONSTRUCTION and keeps M neighbours by the
 * heuristic (a candidate is kept only if it is nearer the new node than every neighbour
 * already kept); each neighbour links back, pruning its own list by the same heuristic when
 * it is full.
 *
 * BULK BUILDS (vec_hnsw_build, at the end of this file) fill an empty index from kNN lists
 * instead: levels drawn as above, each level's lists pruned by the same heuristic on
 * threads, reverse edges merged, unreachable nodes linked in; the result is the same kind of
 * graph, searched, changed and saved as one built by insertion.
 *
 * DELETES are real. Each node keeps the list of its one-way in-links (a node that links to
 * it without being linked back: "back" list), so the in-neighbours of a deleted node are
 * its own neighbours that link back plus its back list, found without scanning the graph.
 * Each in-neighbour drops the link and re-runs the heuristic over its remaining neighbours
 * plus the deleted node's, topped up with the nearest of those to its old length; the entry
 * point moves to a node of the same level; the slot goes on a free list that the next add
 * takes first, so memory is reused, not leaked.
 *
 * SEARCH uses ef = max(EF_RUNTIME or the query's ef, k). It marks visited nodes with an epoch
 * counter (no clearing per query), gathers the unvisited neighbours of a node (prefetching them)
 * and takes their distances four at a time. Unfiltered, it keeps one sorted list of the ef nearest,
 * which is also its candidate list; filtered, a bounded result heap and a candidate heap. Elsewhere
 * (greedy descent, pruning, scans) an L2 distance stops early once its partial sum passes the bound
 * that decides it (the node could not be taken anyway). A filter is applied when a node would enter
 * the results, never to the candidates, and the search keeps widening until it holds ef allowed
 * nodes; a selective list of ids is scanned exactly instead when that costs fewer distances
 * (RediSearch's ADHOC_BF), and whenever the graph yields fewer than k hits the answer is completed
 * by an exact scan, so k hits come back if k match.
 *
 * LOCKING: none here; index.c holds the index's rwlock (shared for searches). Each search
 * takes a searcher (visited marks and heaps) from a small mutex-guarded pool.
 *
 * SNAPSHOT PAYLOAD (after index.c's envelope, which holds the params; little-endian):
 *   off  size  field
 *   0    4     payload version (1)
 *   4    4     count: nodes that follow
 *   8    4     entry point id (0xffffffff when count is 0)
 *   12   4     max level (0 when count is 0)
 *   16   8     random generator state
 *   24   ...   count nodes, each: u32 id, u32 level, dim x f32 vector, then for each level
 *              0..level: u32 n (<= 2M at level 0, <= M above), n x u32 neighbour ids.
 * Load checks every field: ids unique and below HNSW_MAX_SLOTS and 64 x (count + 1024),
 * levels <= HNSW_MAX_LEVEL, vectors finite, every link to a present node of that level, not
 * itself, not repeated, the entry point present at the max level, and no trailing bytes.
 * Back lists are rebuilt. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "index/index_int.h"

#define HNSW_VERSION 1
#define HNSW_MAX_M 512
#define HNSW_MAX_LEVEL 31
#define HNSW_LEVEL_SHIFT 27                     /* back-list entry: level << 27 | slot */
#define HNSW_MAX_SLOTS (1u << HNSW_LEVEL_SHIFT) /* also the id limit */
#define HNSW_CHUNK_SHIFT 8
#define HNSW_CHUNK (1u << HNSW_CHUNK_SHIFT)
#define HNSW_EA_BLOCK 128 /* L2 early abandon: floats summed between checks */
#define HNSW_SCAN_COST 30 /* distances per ef of a graph search, for the scan/walk choice */
#define NONE UINT32_MAX

/* The header after a node's vector in its level-0 record. */
typedef struct node {
    uint32_t id;      /* the caller's id; NONE while the slot is free */
    uint32_t level;   /* top level of the node */
    uint32_t *upper;  /* levels 1..level, (1 + m) each: count then links */
    uint32_t *back;   /* one-way in-links: [0] count, [1] cap, then level << 27 | slot */
    uint32_t links[]; /* level 0: [0] count, then 2M links */
} node;

typedef struct pair {
    float d;
    uint32_t s;
} pair;

/* A binary max-heap on d (candidates store -d). A push that finds no memory is dropped
 * and sets failed: the heap stays a heap, and the search reports ERR_NOMEM at its end. */
typedef struct heap {
    pair *a;
    uint32_t n, cap;
    int failed;
} heap;

/* One search's scratch: visited marks, heaps, and small arrays sized by M. */
typedef struct searcher {
    uint16_t *mark;
    uint32_t nmark;
    uint16_t epoch;
    heap cand, res;
    pair *best; /* the unfiltered search's sorted list of the ef nearest */
    uint32_t best_cap;
    pair *scr;     /* 2 * 2M + 2: neighbour candidates for pruning and repair */
    pair *rest;    /* 2 * 2M + 2: the candidates a repair's heuristic dropped */
    uint32_t *nbr; /* 2M: neighbours to visit */
    uint32_t *old; /* 2M: a list before it is rewritten */
    uint32_t *xs;  /* 2M: a deleted node's links at one level */
    uint32_t *in;  /* in-neighbours of a deleted node */
    uint32_t in_cap;
    struct searcher *next;
} searcher;

typedef struct hnsw {
    vec_index base;
    const vec_kern *kern;
    int metric;
    uint32_t dim, m, m0, efc;
    double ml;
    size_t hdr_off, rec_bytes;
    char **chunks;
    uint32_t nchunks, chunk_cap;
    uint32_t nslots; /* slots handed out so far (free ones included) */
    uint32_t count;
    uint32_t *free_slots;
    uint32_t nfree, free_cap;
    uint32_t *id2slot;
    uint32_t id_cap;
    uint32_t entry;
    uint32_t maxlevel;
    uint64_t rng;
    size_t upper_bytes, back_bytes;
    pthread_mutex_t pool_lock;
    searcher *pool;
    size_t pool_bytes;
} hnsw;

static inline float *vec_of(const hnsw *h, uint32_t slot)
{
    return (float *)(h->chunks[slot >> HNSW_CHUNK_SHIFT] +
                     (size_t)(slot & (HNSW_CHUNK - 1)) * h->rec_bytes);
}

static inline node *node_of(const hnsw *h, uint32_t slot)
{
    return (node *)((char *)vec_of(h, slot) + h->hdr_off);
}

/* The list of slot at lev: [0] count, then links. */
static inline uint32_t *list_of(const hnsw *h, uint32_t slot, uint32_t lev)
{
    node *nd = node_of(h, slot);
    return lev ? nd->upper + (size_t)(lev - 1) * (h->m + 1) : nd->links;
}

static inline uint32_t cap_of(const hnsw *h, uint32_t lev)
{
    return lev ? h->m : h->m0;
}

/* ---- distances ---- */

static inline float dist(const hnsw *h, const float *a, const float *b)
{
    if (h->metric == VEC_L2)
        return h->kern->l2sq(a, b, h->dim);
    return vec__dist_from_dot(h->kern->dot(a, b, h->dim));
}

/* The distance, or for L2 any value > bound once the partial sum passes bound. */
static inline float dist_bounded(const hnsw *h, const float *a, const float *b, float bound)
{
    if (h->metric != VEC_L2 || h->dim < 2 * HNSW_EA_BLOCK)
        return dist(h, a, b);
    float s = 0;
    uint32_t i = 0;
    for (; i + HNSW_EA_BLOCK < h->dim; i += HNSW_EA_BLOCK) {
        s += h->kern->l2sq(a + i, b + i, HNSW_EA_BLOCK);
        if (s > bound)
            return s;
    }
    return s + h->kern->l2sq(a + i, b + i, h->dim - i);
}

/* Distances from q to the g (1..4) nodes at slots, four at a time: the four streams of
 * loads overlap, which matters more than anything else once vectors come from memory. */
static inline void dist4(const hnsw *h, const float *q, const uint32_t *slots, uint32_t g,
                         float out[4])
{
    const float *v[4];
    for (uint32_t i = 0; i < 4; i++)
        v[i] = vec_of(h, slots[i < g ? i : 0]);
    if (h->metric == VEC_L2) {
        h->kern->l2sq_x4(q, v, h->dim, out);
        return;
    }
    h->kern->dot_x4(q, v, h->dim, out);
    for (uint32_t i = 0; i < 4; i++)
        out[i] = vec__dist_from_dot(out[i]);
}

/* ---- heaps and searchers ---- */

static void heap_push(heap *hp, float d, uint32_t s)
{
    if (hp->n == hp->cap) {
        uint32_t cap = hp->cap ? hp->cap * 2 : 64;
        pair *a = try_realloc(hp->a, cap * sizeof(pair));
        if (!a) {
            hp->failed = 1;
            return;
        }
        hp->a = a;
        hp->cap = cap;
    }
    uint32_t i = hp->n++;
    while (i) {
        uint32_t p = (i - 1) / 2;
        if (hp->a[p].d >= d)
            break;
        hp->a[i] = hp->a[p];
        i = p;
    }
    hp->a[i] = (pair){d, s};
}

static pair heap_pop(heap *hp)
{
    pair top = hp->a[0], last = hp->a[--hp->n];
    uint32_t i = 0, n = hp->n;
    if (!n)
        return top;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && hp->a[c + 1].d > hp->a[c].d)
            c++;
        if (hp->a[c].d <= last.d)
            break;
        hp->a[i] = hp->a[c];
        i = c;
    }
    hp->a[i] = last;
    return top;
}

/* Empties the max-heap into out, nearest first; returns how many. */
static uint32_t heap_drain_sorted(heap *hp, pair *out)
{
    uint32_t n = hp->n;
    for (uint32_t i = n; i > 0; i--)
        out[i - 1] = heap_pop(hp);
    return n;
}

static void searcher_free(searcher *s);

/* A searcher from the pool, or a new one; NULL when out of memory. */
static searcher *searcher_get(hnsw *h)
{
    pthread_mutex_lock(&h->pool_lock);
    searcher *s = h->pool;
    if (s)
        h->pool = s->next;
    pthread_mutex_unlock(&h->pool_lock);
    if (!s && (s = try_calloc(1, sizeof(*s))) != NULL) {
        s->scr = try_malloc((2 * (size_t)h->m0 + 2) * sizeof(pair));
        s->rest = try_malloc((2 * (size_t)h->m0 + 2) * sizeof(pair));
        s->nbr = try_malloc(h->m0 * sizeof(uint32_t));
        s->old = try_malloc(h->m0 * sizeof(uint32_t));
        s->xs = try_malloc(h->m0 * sizeof(uint32_t));
        if (!s->scr || !s->rest || !s->nbr || !s->old || !s->xs) {
            searcher_free(s);
            s = NULL;
        }
    }
    if (s)
        s->cand.failed = s->res.failed = 0;
    return s;
}

static size_t searcher_bytes(const hnsw *h, const searcher *s)
{
    return sizeof(*s) + s->nmark * sizeof(uint16_t) +
           ((size_t)s->cand.cap + s->res.cap + s->best_cap) * sizeof(pair) +
           2 * (2 * (size_t)h->m0 + 2) * sizeof(pair) + 3 * h->m0 * sizeof(uint32_t) +
           s->in_cap * sizeof(uint32_t);
}

static void searcher_put(hnsw *h, searcher *s)
{
    pthread_mutex_lock(&h->pool_lock);
    s->next = h->pool;
    h->pool = s;
    pthread_mutex_unlock(&h->pool_lock);
}

static void searcher_free(searcher *s)
{
    xfree(s->mark);
    xfree(s->cand.a);
    xfree(s->res.a);
    xfree(s->best);
    xfree(s->scr);
    xfree(s->rest);
    xfree(s->nbr);
    xfree(s->old);
    xfree(s->xs);
    xfree(s->in);
    xfree(s);
}

/* Sizes s for the graph as it is and for searches of up to ef: a mark for every slot and
 * room for ef + 1 in the best list. Every allocation a search or an add needs from its
 * searcher happens here, before anything changes (heaps aside: see heap). ERR_NOMEM. */
static int searcher_fit(const hnsw *h, searcher *s, uint32_t ef)
{
    uint32_t want = h->nchunks * HNSW_CHUNK;
    if (s->nmark < want) {
        uint16_t *mark = try_realloc(s->mark, want * sizeof(uint16_t));
        if (!mark)
            return ERR_NOMEM;
        memset(mark + s->nmark, 0, (want - s->nmark) * sizeof(uint16_t));
        s->mark = mark;
        s->nmark = want;
    }
    if (s->best_cap < ef + 1) {
        pair *best = try_realloc(s->best, ((size_t)ef + 1) * sizeof(pair));
        if (!best)
            return ERR_NOMEM;
        s->best = best;
        s->best_cap = ef + 1;
    }
    return 0;
}

/* A searcher fitted for ef (searcher_fit), begun; NULL when out of memory. */
static searcher *searcher_ready(hnsw *h, uint32_t ef);

/* A new visit epoch; searcher_fit has sized the marks. */
static void searcher_begin(const hnsw *h, searcher *s)
{
    (void)h;
    if (++s->epoch == 0) {
        memset(s->mark, 0, s->nmark * sizeof(uint16_t));
        s->epoch = 1;
    }
    s->cand.n = s->res.n = 0;
}

static searcher *searcher_ready(hnsw *h, uint32_t ef)
{
    searcher *s = searcher_get(h);
    if (s && searcher_fit(h, s, ef)) {
        searcher_put(h, s);
        return NULL;
    }
    if (s)
        searcher_begin(h, s);
    return s;
}

/* 1 the first time slot is seen in this epoch. */
static inline int visit(searcher *s, uint32_t slot)
{
    if (s->mark[slot] == s->epoch)
        return 0;
    s->mark[slot] = s->epoch;
    return 1;
}

/* ---- filters ---- */

static int ids_has(const uint32_t *ids, size_t n, uint32_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ids[lo] == id;
}

static int allowed(const hnsw *h, const vec_filter *f, uint32_t slot)
{
    if (!f)
        return 1;
    uint32_t id = node_of(h, slot)->id;
    if (f->ids && !ids_has(f->ids, f->nids, id))
        return 0;
    return !f->keep || f->keep(f->ctx, id);
}

/* ---- search ---- */

/* Descends greedily from cur (at distance *curd) through levels from..to. */
static uint32_t greedy(const hnsw *h, const float *q, uint32_t cur, float *curd, uint32_t from,
                       uint32_t to)
{
    for (uint32_t lev = from; lev >= to && lev != UINT32_MAX; lev--) {
        for (int changed = 1; changed;) {
            changed = 0;
            const uint32_t *l = list_of(h, cur, lev);
            for (uint32_t i = 1; i <= l[0]; i++) {
                float d = dist_bounded(h, q, vec_of(h, l[i]), *curd);
                if (d < *curd) {
                    *curd = d;
                    cur = l[i];
                    changed = 1;
                }
            }
        }
    }
    return cur;
}

/* Best-first search of level lev from ep: the ef nearest allowed nodes into s->res (a
 * max-heap). Candidates ignore the filter; while fewer than ef allowed nodes are held the
 * search keeps widening. The caller has begun an epoch. */
static void search_layer(const hnsw *h, searcher *s, const float *q, uint32_t ep, float epd,
                         uint32_t ef, uint32_t lev, const vec_filter *f)
{
    heap *cand = &s->cand, *res = &s->res;
    visit(s, ep);
    heap_push(cand, -epd, ep);
    if (allowed(h, f, ep))
        heap_push(res, epd, ep);
    while (cand->n) {
        pair c = heap_pop(cand);
        if (res->n >= ef && -c.d > res->a[0].d)
            break;
        const uint32_t *l = list_of(h, c.s, lev);
        uint32_t nt = 0;
        for (uint32_t i = 1; i <= l[0]; i++) {
            uint32_t j = l[i];
            if (visit(s, j)) {
                s->nbr[nt++] = j;
                __builtin_prefetch(vec_of(h, j));
            }
        }
        float dd[4];
        for (uint32_t i = 0; i < nt; i++) {
            uint32_t j = s->nbr[i];
            if ((i & 3) == 0)
                dist4(h, q, s->nbr + i, nt - i < 4 ? nt - i : 4, dd);
            float d = dd[i & 3];
            if (res->n >= ef && !(d < res->a[0].d))
                continue;
            heap_push(cand, -d, j);
            if (allowed(h, f, j)) {
                heap_push(res, d, j);
                if (res->n > ef)
                    heap_pop(res);
            }
        }
    }
}

#define EXPANDED 0x80000000u /* in search_best's list: the node's links were followed */

/* The unfiltered search of level lev from ep: the same answer as search_layer without a
 * filter, kept in one sorted array of the ef nearest (s->best, nearest first) instead of
 * two heaps: a candidate that falls out of the ef nearest could never be expanded anyway,
 * so the array is the candidate list too, and the next node to expand is the nearest not
 * yet expanded. Returns how many are in s->best. The caller has begun an epoch, with the
 * searcher fitted for ef. */
static uint32_t search_best(const hnsw *h, searcher *s, const float *q, uint32_t ep, float epd,
                            uint32_t ef, uint32_t lev)
{
    pair *b = s->best;
    uint32_t n = 1, cur = 0;
    b[0] = (pair){epd, ep};
    visit(s, ep);
    while (cur < n) {
        uint32_t c = b[cur].s;
        b[cur].s |= EXPANDED;
        uint32_t next = cur + 1;
        const uint32_t *l = list_of(h, c, lev);
        uint32_t nt = 0;
        for (uint32_t i = 1; i <= l[0]; i++) {
            uint32_t j = l[i];
            if (visit(s, j)) {
                s->nbr[nt++] = j;
                __builtin_prefetch(vec_of(h, j));
            }
        }
        float dd[4];
        for (uint32_t i = 0; i < nt; i++) {
            uint32_t j = s->nbr[i];
            if ((i & 3) == 0)
                dist4(h, q, s->nbr + i, nt - i < 4 ? nt - i : 4, dd);
            float d = dd[i & 3];
            if (n == ef && !(d < b[n - 1].d))
                continue;
            uint32_t lo = 0, hi = n; /* insert after any equal distance */
            while (lo < hi) {
                uint32_t mid = (lo + hi) / 2;
                if (b[mid].d <= d)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            memmove(b + lo + 1, b + lo, (n - lo - (n == ef)) * sizeof(pair));
            b[lo] = (pair){d, j};
            if (n < ef)
                n++;
            if (lo < next)
                next = lo;
        }
        cur = next;
        while (cur < n && (b[cur].s & EXPANDED))
            cur++;
    }
    for (uint32_t i = 0; i < n; i++)
        b[i].s &= ~EXPANDED;
    return n;
}

/* The level-1 entry of a search for q: greedy through the upper levels. */
static uint32_t descend(const hnsw *h, const float *q, float *curd)
{
    uint32_t cur = h->entry;
    *curd = dist(h, q, vec_of(h, cur));
    if (h->maxlevel > 0)
        cur = greedy(h, q, cur, curd, h->maxlevel, 1);
    return cur;
}

/* ---- the neighbour-selection heuristic ---- */

static int pair_cmp(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return x->s < y->s ? -1 : x->s > y->s;
}

/* c: n candidates sorted by distance to the base node. Keeps, in place, up to max of them,
 * each nearer the base than to every one kept before it; then, when fill is above that,
 * the nearest of those dropped (set aside in rest, room for n) until fill are kept.
 * Returns how many. */
static uint32_t select_neighbors(const hnsw *h, pair *c, uint32_t n, uint32_t max, uint32_t fill,
                                 pair *rest)
{
    if (n <= max)
        return n;
    uint32_t k = 0, nr = 0;
    for (uint32_t i = 0; i < n && k < max; i++) {
        const float *v = vec_of(h, c[i].s);
        int good = 1;
        for (uint32_t j = 0; j < k && good; j++)
            good = !(dist_bounded(h, v, vec_of(h, c[j].s), c[i].d) < c[i].d);
        if (good)
            c[k++] = c[i];
        else if (fill)
            rest[nr++] = c[i];
    }
    for (uint32_t i = 0; i < nr && k < fill; i++)
        c[k++] = rest[i];
    return k;
}

/* ---- links and back lists ---- */

static int has_link(const hnsw *h, uint32_t a, uint32_t b, uint32_t lev)
{
    const uint32_t *l = list_of(h, a, lev);
    for (uint32_t i = 1; i <= l[0]; i++)
        if (l[i] == b)
            return 1;
    return 0;
}

/* The one allocation of index/ that aborts on failure (xrealloc): back lists change in the
 * middle of linking and repairing, where a failure could not be undone, and they grow by
 * doubling a few words at a time. */
static void back_add(hnsw *h, uint32_t v, uint32_t e)
{
    node *nd = node_of(h, v);
    uint32_t *b = nd->back;
    if (!b || b[0] == b[1]) {
        uint32_t cap = b ? b[1] * 2 : 4;
        h->back_bytes += (cap - (b ? b[1] : 0)) * sizeof(uint32_t) + (b ? 0 : 2 * sizeof(uint32_t));
        b = xrealloc(b, (2 + (size_t)cap) * sizeof(uint32_t));
        if (!nd->back)
            b[0] = 0;
        b[1] = cap;
        nd->back = b;
    }
    b[2 + b[0]++] = e;
}

static void back_del(hnsw *h, uint32_t v, uint32_t e)
{
    node *nd = node_of(h, v);
    uint32_t *b = nd->back;
    for (uint32_t i = 0; b && i < b[0]; i++) {
        if (b[2 + i] != e)
            continue;
        b[2 + i] = b[2 + --b[0]];
        if (!b[0]) {
            h->back_bytes -= (2 + (size_t)b[1]) * sizeof(uint32_t);
            xfree(b);
            nd->back = NULL;
        }
        return;
    }
}

static void node_free_back(hnsw *h, node *nd)
{
    if (nd->back)
        h->back_bytes -= (2 + (size_t)nd->back[1]) * sizeof(uint32_t);
    xfree(nd->back);
    nd->back = NULL;
}

/* Bookkeeping after a->b appeared at lev: the edge is one-way unless b links to a. */
static void link_added(hnsw *h, uint32_t a, uint32_t b, uint32_t lev)
{
    if (has_link(h, b, a, lev))
        back_del(h, a, lev << HNSW_LEVEL_SHIFT | b);
    else
        back_add(h, b, lev << HNSW_LEVEL_SHIFT | a);
}

/* Bookkeeping after a->b went away at lev. */
static void link_removed(hnsw *h, uint32_t a, uint32_t b, uint32_t lev)
{
    if (has_link(h, b, a, lev))
        back_add(h, a, lev << HNSW_LEVEL_SHIFT | b);
    else
        back_del(h, b, lev << HNSW_LEVEL_SHIFT | a);
}

static int in_slots(const uint32_t *a, uint32_t n, uint32_t x)
{
    for (uint32_t i = 0; i < n; i++)
        if (a[i] == x)
            return 1;
    return 0;
}

/* Rewrites y's list at lev to the k slots of c, keeping back lists true. */
static void set_list(hnsw *h, searcher *s, uint32_t y, uint32_t lev, const pair *c, uint32_t k)
{
    uint32_t *l = list_of(h, y, lev);
    uint32_t nold = l[0];
    memcpy(s->old, l + 1, nold * sizeof(uint32_t));
    l[0] = k;
    for (uint32_t i = 0; i < k; i++)
        l[1 + i] = c[i].s;
    for (uint32_t i = 0; i < nold; i++)
        if (!in_slots(l + 1, k, s->old[i]))
            link_removed(h, y, s->old[i], lev);
    for (uint32_t i = 0; i < k; i++)
        if (!in_slots(s->old, nold, l[1 + i]))
            link_added(h, y, l[1 + i], lev);
}

/* Adds the link y->x (x at distance dxy), pruning y's list by the heuristic when full. */
static void link_pruned(hnsw *h, searcher *s, uint32_t y, uint32_t x, float dxy, uint32_t lev)
{
    uint32_t *l = list_of(h, y, lev);
    uint32_t cap = cap_of(h, lev);
    if (l[0] < cap) {
        l[1 + l[0]++] = x;
        link_added(h, y, x, lev);
        return;
    }
    const float *vy = vec_of(h, y);
    pair *c = s->scr;
    c[0] = (pair){dxy, x};
    for (uint32_t i = 1; i <= l[0]; i++)
        c[i] = (pair){dist(h, vy, vec_of(h, l[i])), l[i]};
    qsort(c, l[0] + 1, sizeof(pair), pair_cmp);
    uint32_t k = select_neighbors(h, c, l[0] + 1, cap, 0, NULL);
    set_list(h, s, y, lev, c, k);
}

/* Links the new node x (already in its record) into levels min(level, maxlevel)..0. */
static void connect(hnsw *h, searcher *s, uint32_t x, uint32_t level)
{
    const float *q = vec_of(h, x);
    float curd;
    uint32_t cur = h->entry;
    curd = dist(h, q, vec_of(h, cur));
    if (h->maxlevel > level)
        cur = greedy(h, q, cur, &curd, h->maxlevel, level + 1);
    uint32_t top = level < h->maxlevel ? level : h->maxlevel;
    for (uint32_t lev = top; lev != UINT32_MAX; lev--) {
        searcher_begin(h, s);
        uint32_t n = search_best(h, s, q, cur, curd, h->efc, lev);
        pair *w = s->best;
        cur = w[0].s;
        curd = w[0].d;
        uint32_t k = select_neighbors(h, w, n, h->m, 0, NULL);
        uint32_t *l = list_of(h, x, lev);
        for (uint32_t i = 0; i < k; i++) {
            l[1 + l[0]++] = w[i].s;
            link_added(h, x, w[i].s, lev);
        }
        for (uint32_t i = 0; i < k; i++)
            link_pruned(h, s, w[i].s, x, w[i].d, lev);
    }
}

/* ---- slots ---- */

static uint64_t rng_next(hnsw *h)
{
    uint64_t z = (h->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t random_level(hnsw *h)
{
    double u = ((rng_next(h) >> 11) + 1) * 0x1p-53; /* (0, 1] */
    double l = -log(u) * h->ml;
    return l >= HNSW_MAX_LEVEL ? HNSW_MAX_LEVEL : (uint32_t)l;
}

/* Makes room for id in id2slot, one more slot, and one more free-list entry. */
static int reserve(hnsw *h, uint32_t id)
{
    if (id >= HNSW_MAX_SLOTS)
        return ERR_LIMIT;
    if (id >= h->id_cap) {
        uint32_t cap = h->id_cap ? h->id_cap : 64;
        while (cap <= id)
            cap = cap * 2 < HNSW_MAX_SLOTS ? cap * 2 : HNSW_MAX_SLOTS;
        uint32_t *m = try_realloc(h->id2slot, (size_t)cap * sizeof(uint32_t));
        if (!m)
            return ERR_NOMEM;
        memset(m + h->id_cap, 0xff, (size_t)(cap - h->id_cap) * sizeof(uint32_t));
        h->id2slot = m;
        h->id_cap = cap;
    }
    if (!h->nfree && h->nslots == h->nchunks * HNSW_CHUNK) {
        if (h->nchunks == h->chunk_cap) {
            uint32_t cap = h->chunk_cap ? h->chunk_cap * 2 : 8;
            char **c = try_realloc(h->chunks, cap * sizeof(char *));
            if (!c)
                return ERR_NOMEM;
            h->chunks = c;
            h->chunk_cap = cap;
        }
        char *c = try_aligned(64, HNSW_CHUNK * h->rec_bytes);
        if (!c)
            return ERR_NOMEM;
        h->chunks[h->nchunks++] = c;
    }
    if (h->free_cap < h->nslots + 1) {
        /* deletes push on the free list without allocating */
        uint32_t cap = h->free_cap ? h->free_cap * 2 : 64;
        uint32_t *f = try_realloc(h->free_slots, (size_t)cap * sizeof(uint32_t));
        if (!f)
            return ERR_NOMEM;
        h->free_slots = f;
        h->free_cap = cap;
    }
    return 0;
}

/* Takes a slot (free list first) and fills its record; reserve() has run. */
static uint32_t slot_take(hnsw *h, uint32_t id, uint32_t level, uint32_t *upper, const float *v)
{
    uint32_t slot = h->nfree ? h->free_slots[--h->nfree] : h->nslots++;
    memcpy(vec_of(h, slot), v, h->dim * sizeof(float));
    node *nd = node_of(h, slot);
    nd->id = id;
    nd->level = level;
    nd->upper = upper;
    nd->back = NULL;
    nd->links[0] = 0;
    h->upper_bytes += (size_t)level * (h->m + 1) * sizeof(uint32_t);
    h->id2slot[id] = slot;
    h->count++;
    return slot;
}

static uint32_t *upper_alloc(const hnsw *h, uint32_t level)
{
    if (!level)
        return NULL;
    size_t n = (size_t)level * (h->m + 1) * sizeof(uint32_t);
    uint32_t *u = try_malloc(n);
    if (u)
        memset(u, 0, n);
    return u;
}

static uint32_t slot_of(const hnsw *h, uint32_t id)
{
    return id < h->id_cap ? h->id2slot[id] : NONE;
}

/* ---- add and delete ---- */

static int del_with(hnsw *h, searcher *s, uint32_t x);

/* Every allocation comes before the first change (reserve, the upper levels, a fitted
 * searcher, the replaced vector's delete), so a failed add leaves the graph as it was;
 * back lists aside (back_add). */
static int hnsw_add(vec_index *ix, uint32_t id, const float *v)
{
    hnsw *h = (hnsw *)ix;
    int rc = reserve(h, id);
    if (rc)
        return rc;
    uint64_t rng = h->rng;
    uint32_t level = random_level(h);
    uint32_t *upper = upper_alloc(h, level);
    searcher *s = level && !upper ? NULL : searcher_ready(h, h->efc);
    uint32_t old = slot_of(h, id);
    if (s && old != NONE)
        rc = del_with(h, s, old); /* a replaced vector: ERR_NOMEM before it changes */
    if (!s || rc) {
        if (s)
            searcher_put(h, s);
        xfree(upper);
        h->rng = rng; /* as if this add never ran */
        return ERR_NOMEM;
    }
    uint32_t x = slot_take(h, id, level, upper, v);
    if (h->entry == NONE) {
        searcher_put(h, s);
        h->entry = x;
        h->maxlevel = level;
        return 0;
    }
    connect(h, s, x, level);
    searcher_put(h, s);
    if (level > h->maxlevel) {
        h->maxlevel = level;
        h->entry = x;
    }
    return 0;
}

/* Room in s->in for x's in-neighbours at any level: its back list only shrinks while x is
 * deleted, and each level's list holds at most 2M. ERR_NOMEM. */
static int in_reserve(const hnsw *h, searcher *s, uint32_t x)
{
    const uint32_t *b = node_of(h, x)->back;
    uint32_t want = h->m0 + (b ? b[0] : 0);
    if (want <= s->in_cap)
        return 0;
    uint32_t *in = try_realloc(s->in, want * sizeof(uint32_t));
    if (!in)
        return ERR_NOMEM;
    s->in = in;
    s->in_cap = want;
    return 0;
}

/* In-neighbours of x at lev into s->in: its neighbours that link back, then its back list. */
static uint32_t in_neighbors(hnsw *h, searcher *s, uint32_t x, uint32_t lev)
{
    const uint32_t *l = list_of(h, x, lev);
    const uint32_t *b = node_of(h, x)->back;
    uint32_t n = 0; /* in_reserve made room */
    for (uint32_t i = 1; i <= l[0]; i++)
        if (has_link(h, l[i], x, lev))
            s->in[n++] = l[i];
    for (uint32_t i = 0; b && i < b[0]; i++)
        if (b[2 + i] >> HNSW_LEVEL_SHIFT == lev)
            s->in[n++] = b[2 + i] & (HNSW_MAX_SLOTS - 1);
    return n;
}

/* y lost its link to x at lev: the heuristic over y's other neighbours and x's (nxs in
 * s->xs) chooses y's new list, topped up with the nearest of the rest to y's old length
 * (the heuristic alone leaves repaired lists shorter than built ones, and after 30% of
 * deletes recall fell below a fresh build's; topped up it stays above). */
static void repair(hnsw *h, searcher *s, uint32_t y, uint32_t x, uint32_t nxs, uint32_t lev)
{
    const float *vy = vec_of(h, y);
    const uint32_t *l = list_of(h, y, lev);
    pair *c = s->scr;
    uint32_t n = 0;
    searcher_begin(h, s);
    visit(s, y);
    visit(s, x);
    for (uint32_t i = 1; i <= l[0]; i++)
        if (visit(s, l[i]))
            c[n++] = (pair){dist(h, vy, vec_of(h, l[i])), l[i]};
    for (uint32_t i = 0; i < nxs; i++)
        if (visit(s, s->xs[i]))
            c[n++] = (pair){dist(h, vy, vec_of(h, s->xs[i])), s->xs[i]};
    qsort(c, n, sizeof(pair), pair_cmp);
    uint32_t k = select_neighbors(h, c, n, cap_of(h, lev), l[0], s->rest);
    set_list(h, s, y, lev, c, k);
}

/* A new entry point after the old one (x) left: a node of the highest level remaining. */
static void new_entry(hnsw *h, uint32_t x, uint32_t top_link)
{
    h->entry = NONE;
    h->maxlevel = 0;
    if (!h->count)
        return;
    if (top_link != NONE) {
        h->entry = top_link; /* linked at x's level, which was the max */
        h->maxlevel = node_of(h, top_link)->level;
        return;
    }
    for (uint32_t s = 0; s < h->nslots; s++) {
        node *nd = node_of(h, s);
        if (s == x || nd->id == NONE)
            continue;
        if (h->entry == NONE || nd->level > h->maxlevel) {
            h->entry = s;
            h->maxlevel = nd->level;
        }
    }
}

/* Deletes the node at slot x with a fitted searcher s; ERR_NOMEM before any change. */
static int del_with(hnsw *h, searcher *s, uint32_t x)
{
    if (in_reserve(h, s, x))
        return ERR_NOMEM;
    node *nx = node_of(h, x);
    uint32_t id = nx->id, top_link = NONE;
    for (uint32_t lev = nx->level; lev != UINT32_MAX; lev--) {
        uint32_t nin = in_neighbors(h, s, x, lev);
        uint32_t *l = list_of(h, x, lev);
        uint32_t nxs = l[0];
        memcpy(s->xs, l + 1, nxs * sizeof(uint32_t));
        if (lev == nx->level && nxs)
            top_link = s->xs[0];
        l[0] = 0;
        for (uint32_t i = 0; i < nxs; i++)
            link_removed(h, x, s->xs[i], lev);
        for (uint32_t i = 0; i < nin; i++)
            repair(h, s, s->in[i], x, nxs, lev);
    }
    h->upper_bytes -= (size_t)nx->level * (h->m + 1) * sizeof(uint32_t);
    xfree(nx->upper);
    nx->upper = NULL;
    node_free_back(h, nx);
    nx->id = NONE;
    h->id2slot[id] = NONE;
    h->free_slots[h->nfree++] = x;
    h->count--;
    if (h->entry == x)
        new_entry(h, x, top_link);
    return 0;
}

static int hnsw_del(vec_index *ix, uint32_t id)
{
    hnsw *h = (hnsw *)ix;
    uint32_t x = slot_of(h, id);
    if (x == NONE)
        return ERR_NOTFOUND;
    searcher *s = searcher_ready(h, 0);
    if (!s)
        return ERR_NOMEM;
    int rc = del_with(h, s, x);
    searcher_put(h, s);
    return rc;
}

/* ---- queries ---- */

static void hits_from(const hnsw *h, const pair *p, uint32_t n, vec_hit *out)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = (vec_hit){node_of(h, p[i].s)->id, p[i].d};
    qsort(out, n, sizeof(vec_hit), vec__hit_cmp);
}

/* Exact top-k over the slots that pass f (ids in f when given, else every slot), *n of
 * them into out. ERR_NOMEM. */
static int scan_knn(const hnsw *h, searcher *s, const float *q, uint32_t k, const vec_filter *f,
                    vec_hit *out, size_t *nout)
{
    heap *res = &s->res;
    res->n = 0;
    size_t n = f && f->ids ? f->nids : h->nslots;
    for (size_t i = 0; i < n; i++) {
        uint32_t slot = f && f->ids ? slot_of(h, f->ids[i]) : (uint32_t)i;
        if (slot == NONE || node_of(h, slot)->id == NONE)
            continue;
        if (f && f->keep && !f->keep(f->ctx, node_of(h, slot)->id))
            continue;
        float bound = res->n >= k ? res->a[0].d : INFINITY;
        float d = dist_bounded(h, q, vec_of(h, slot), bound);
        if (!(d < bound))
            continue;
        heap_push(res, d, slot);
        if (res->n > k)
            heap_pop(res);
    }
    uint32_t got = res->n;
    pair *p = res->failed ? NULL : try_malloc((got ? got : 1) * sizeof(pair));
    if (!p)
        return ERR_NOMEM;
    heap_drain_sorted(res, p);
    hits_from(h, p, got, out);
    xfree(p);
    *nout = got;
    return 0;
}

/* Whether an exact scan of nids ids costs fewer distances than walking the graph, which
 * visits about HNSW_SCAN_COST * ef nodes per ef results and needs count / nids times as
 * many visits to find ef that pass. */
static int prefer_scan(const hnsw *h, size_t nids, uint32_t ef)
{
    return (double)nids * nids <= (double)HNSW_SCAN_COST * ef * h->count;
}

static int hnsw_knn(vec_index *ix, const float *q, uint32_t k, uint32_t ef, const vec_filter *f,
                    vec_hit *out, size_t *n)
{
    hnsw *h = (hnsw *)ix;
    *n = 0;
    if (!h->count || (f && f->ids && !f->nids))
        return 0;
    if (ef < k)
        ef = k;
    searcher *s = searcher_ready(h, ef);
    if (!s)
        return ERR_NOMEM;
    int rc = 0;
    if (f && f->ids && prefer_scan(h, f->nids, ef)) {
        rc = scan_knn(h, s, q, k, f, out, n);
        searcher_put(h, s);
        return rc;
    }
    float curd;
    uint32_t ep = descend(h, q, &curd), got;
    pair *best;
    if (f) {
        search_layer(h, s, q, ep, curd, ef, 0, f);
        while (s->res.n > k)
            heap_pop(&s->res);
        got = s->res.n;
        best = s->cand.a; /* the candidate heap is spent: reuse its array */
        if (s->res.n > s->cand.cap) {
            pair *a = try_realloc(s->cand.a, s->res.n * sizeof(pair));
            if (a) {
                s->cand.a = best = a;
                s->cand.cap = s->res.n;
            } else {
                s->cand.failed = 1;
            }
        }
        if (s->cand.failed || s->res.failed) {
            searcher_put(h, s);
            return ERR_NOMEM;
        }
        heap_drain_sorted(&s->res, best);
    } else {
        got = search_best(h, s, q, ep, curd, ef, 0);
        got = got < k ? got : k;
        best = s->best;
    }
    if (got < k && got < h->count) {
        /* the graph gave fewer than k: complete exactly */
        rc = scan_knn(h, s, q, k, f, out, n);
    } else {
        hits_from(h, best, got, out);
        *n = got;
    }
    searcher_put(h, s);
    return rc;
}

/* Appends a range hit, growing the array; ERR_NOMEM (the array as it was). */
static int hit_push(vec_hit **a, size_t *n, size_t *cap, uint32_t id, float d)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        vec_hit *g = try_realloc(*a, ncap * sizeof(vec_hit));
        if (!g)
            return ERR_NOMEM;
        *a = g;
        *cap = ncap;
    }
    (*a)[(*n)++] = (vec_hit){id, d};
    return 0;
}

/* Range search on level 0, in two steps: a kNN search (EF_RUNTIME) lands among the
 * query's nearest nodes, then a best-first walk from all of them explores while candidates
 * lie within a boundary that starts at the nearest seed's distance and shrinks to
 * radius * (1 + epsilon) as nearer nodes are popped. The searcher is fitted for
 * EF_RUNTIME. ERR_NOMEM. */
static int range_walk(const hnsw *h, searcher *s, const float *q, float radius, double eps,
                      const vec_filter *f, vec_hit **hits, size_t *n, size_t *cap)
{
    float epd;
    uint32_t ep = descend(h, q, &epd);
    uint32_t nseed = search_best(h, s, q, ep, epd, h->base.params.ef_runtime, 0);
    pair *seed = try_malloc(nseed * sizeof(pair));
    int rc = seed ? 0 : ERR_NOMEM;
    if (rc)
        return rc;
    memcpy(seed, s->best, nseed * sizeof(pair));
    searcher_begin(h, s); /* a new epoch: nodes seen by the kNN step may lie in range */
    heap *cand = &s->cand;
    float dyn = seed[0].d > radius ? seed[0].d : radius;
    float bnd = dyn + fabsf(dyn) * (float)eps;
    for (uint32_t i = 0; i < nseed; i++) {
        visit(s, seed[i].s);
        heap_push(cand, -seed[i].d, seed[i].s);
        if (!rc && seed[i].d <= radius && allowed(h, f, seed[i].s))
            rc = hit_push(hits, n, cap, node_of(h, seed[i].s)->id, seed[i].d);
    }
    xfree(seed);
    while (cand->n && !rc) {
        pair c = heap_pop(cand);
        if (-c.d > bnd)
            break;
        if (-c.d < dyn) {
            dyn = -c.d > radius ? -c.d : radius;
            bnd = dyn + fabsf(dyn) * (float)eps;
        }
        const uint32_t *l = list_of(h, c.s, 0);
        for (uint32_t i = 1; i <= l[0]; i++) {
            uint32_t j = l[i];
            if (!visit(s, j))
                continue;
            float d = dist_bounded(h, q, vec_of(h, j), bnd);
            if (!(d < bnd))
                continue;
            heap_push(cand, -d, j);
            if (d <= radius && allowed(h, f, j) &&
                (rc = hit_push(hits, n, cap, node_of(h, j)->id, d)) != 0)
                break;
        }
    }
    return rc || cand->failed ? ERR_NOMEM : 0;
}

static int hnsw_range(vec_index *ix, const float *q, float radius, double epsilon,
                      const vec_filter *f, size_t max, vec_hit **out, size_t *n)
{
    hnsw *h = (hnsw *)ix;
    vec_hit *hits = NULL;
    size_t nh = 0, cap = 0;
    *out = NULL;
    *n = 0;
    if (!h->count || (f && f->ids && !f->nids) || !max)
        return 0;
    searcher *s = searcher_ready(h, h->base.params.ef_runtime);
    if (!s)
        return ERR_NOMEM;
    int rc = 0;
    if (f && f->ids && prefer_scan(h, f->nids, h->base.params.ef_runtime)) {
        for (size_t i = 0; i < f->nids && !rc; i++) {
            uint32_t slot = slot_of(h, f->ids[i]);
            if (slot == NONE || (f->keep && !f->keep(f->ctx, f->ids[i])))
                continue;
            float d = dist_bounded(h, q, vec_of(h, slot), radius);
            if (d <= radius)
                rc = hit_push(&hits, &nh, &cap, f->ids[i], d);
        }
    } else {
        rc = range_walk(h, s, q, radius, epsilon, f, &hits, &nh, &cap);
    }
    searcher_put(h, s);
    if (rc) {
        xfree(hits);
        return rc;
    }
    qsort(hits, nh, sizeof(vec_hit), vec__hit_cmp);
    *out = hits;
    *n = nh < max ? nh : max;
    return 0;
}

/* ---- the rest of the vtable ---- */

static int hnsw_contains(const vec_index *ix, uint32_t id)
{
    return slot_of((const hnsw *)ix, id) != NONE;
}

static size_t hnsw_count(const vec_index *ix)
{
    return ((const hnsw *)ix)->count;
}

static size_t hnsw_memory(const vec_index *ix)
{
    hnsw *h = (hnsw *)ix;
    size_t b = sizeof(*h) + h->chunk_cap * sizeof(char *) +
               (size_t)h->nchunks * HNSW_CHUNK * h->rec_bytes +
               ((size_t)h->id_cap + h->free_cap) * sizeof(uint32_t) + h->upper_bytes +
               h->back_bytes;
    pthread_mutex_lock(&h->pool_lock);
    for (const searcher *s = h->pool; s; s = s->next)
        b += searcher_bytes(h, s);
    pthread_mutex_unlock(&h->pool_lock);
    return b;
}

static void hnsw_destroy(vec_index *ix)
{
    hnsw *h = (hnsw *)ix;
    for (uint32_t s = 0; s < h->nslots; s++) {
        node *nd = node_of(h, s);
        if (nd->id != NONE) {
            xfree(nd->upper);
            xfree(nd->back);
        }
    }
    for (uint32_t c = 0; c < h->nchunks; c++)
        xfree(h->chunks[c]);
    while (h->pool) {
        searcher *s = h->pool;
        h->pool = s->next;
        searcher_free(s);
    }
    pthread_mutex_destroy(&h->pool_lock);
    xfree(h->chunks);
    xfree(h->id2slot);
    xfree(h->free_slots);
    xfree(h);
}

/* ---- snapshot ---- */

/* The payload's size in bytes (see SNAPSHOT PAYLOAD). */
static size_t save_size(const hnsw *h)
{
    size_t n = 24;
    for (uint32_t s = 0; s < h->nslots; s++) {
        node *nd = node_of(h, s);
        if (nd->id == NONE)
            continue;
        n += 8 + h->dim * sizeof(float);
        for (uint32_t lev = 0; lev <= nd->level; lev++)
            n += 4 + 4 * (size_t)list_of(h, s, lev)[0];
    }
    return n;
}

static int hnsw_save(vec_index *ix, buf *out)
{
    hnsw *h = (hnsw *)ix;
    if (buf_try_reserve(out, save_size(h)))
        return ERR_NOMEM; /* the appends below then fit */
    vec__put_u32(out, HNSW_VERSION);
    vec__put_u32(out, h->count);
    vec__put_u32(out, h->count ? node_of(h, h->entry)->id : NONE);
    vec__put_u32(out, h->count ? h->maxlevel : 0);
    vec__put_u64(out, h->rng);
    for (uint32_t s = 0; s < h->nslots; s++) {
        node *nd = node_of(h, s);
        if (nd->id == NONE)
            continue;
        vec__put_u32(out, nd->id);
        vec__put_u32(out, nd->level);
        buf_append(out, vec_of(h, s), h->dim * sizeof(float)); /* little-endian hosts */
        for (uint32_t lev = 0; lev <= nd->level; lev++) {
            const uint32_t *l = list_of(h, s, lev);
            vec__put_u32(out, l[0]);
            for (uint32_t i = 1; i <= l[0]; i++)
                vec__put_u32(out, node_of(h, l[i])->id);
        }
    }
    return 0;
}

static int load_fail(char *err, size_t errlen, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "HNSW snapshot: %s", what);
    return ERR_CORRUPT;
}

/* Reads one node; its links stay as ids until every node is in. Ids must be below
 * id_bound, so that a forged id cannot size the id map far past the snapshot. */
static int load_node(hnsw *h, vec_reader *r, uint64_t id_bound, char *err, size_t errlen)
{
    uint32_t id = vec__get_u32(r), level = vec__get_u32(r);
    const char *vb = vec__get_bytes(r, h->dim * sizeof(float));
    if (r->bad)
        return load_fail(err, errlen, "truncated node");
    if (id >= HNSW_MAX_SLOTS || id >= id_bound || slot_of(h, id) != NONE)
        return load_fail(err, errlen, "node id out of range or repeated");
    if (level > HNSW_MAX_LEVEL)
        return load_fail(err, errlen, "node level out of range");
    float *v = try_malloc(h->dim * sizeof(float));
    if (!v)
        return ERR_NOMEM;
    memcpy(v, vb, h->dim * sizeof(float)); /* little-endian hosts, as the save */
    int rc = 0;
    for (uint32_t i = 0; i < h->dim && !rc; i++)
        if (!isfinite(v[i]))
            rc = load_fail(err, errlen, "vector not finite");
    uint32_t *upper = NULL;
    if (!rc && (rc = reserve(h, id)) == 0 && level && !(upper = upper_alloc(h, level)))
        rc = ERR_NOMEM;
    uint32_t x = rc ? NONE : slot_take(h, id, level, upper, v);
    xfree(v);
    for (uint32_t lev = 0; !rc && lev <= level; lev++) {
        uint32_t *l = list_of(h, x, lev), n = vec__get_u32(r);
        if (r->bad || n > cap_of(h, lev))
            return load_fail(err, errlen, "link count out of range");
        l[0] = n;
        for (uint32_t i = 1; i <= n; i++)
            l[i] = vec__get_u32(r);
        if (r->bad)
            return load_fail(err, errlen, "truncated links");
    }
    return rc;
}

/* Turns every link from an id into a slot, checking it; rebuilds the back lists. */
static int load_links(hnsw *h, char *err, size_t errlen)
{
    for (uint32_t x = 0; x < h->nslots; x++) {
        uint32_t level = node_of(h, x)->level;
        for (uint32_t lev = 0; lev <= level; lev++) {
            uint32_t *l = list_of(h, x, lev);
            for (uint32_t i = 1; i <= l[0]; i++) {
                uint32_t y = slot_of(h, l[i]);
                if (y == NONE || y == x || node_of(h, y)->level < lev)
                    return load_fail(err, errlen, "link to a missing node");
                l[i] = y;
                if (in_slots(l + 1, i - 1, y))
                    return load_fail(err, errlen, "repeated link");
            }
        }
    }
    for (uint32_t x = 0; x < h->nslots; x++) {
        uint32_t level = node_of(h, x)->level;
        for (uint32_t lev = 0; lev <= level; lev++) {
            const uint32_t *l = list_of(h, x, lev);
            for (uint32_t i = 1; i <= l[0]; i++)
                if (!has_link(h, l[i], x, lev))
                    back_add(h, l[i], lev << HNSW_LEVEL_SHIFT | x);
        }
    }
    return 0;
}

static int hnsw_load(vec_index *ix, const char *p, size_t len, char *err, size_t errlen)
{
    hnsw *h = (hnsw *)ix;
    vec_reader r = {p, len, 0};
    uint32_t version = vec__get_u32(&r), count = vec__get_u32(&r);
    uint32_t entry = vec__get_u32(&r), maxlevel = vec__get_u32(&r);
    h->rng = vec__get_u64(&r);
    if (r.bad)
        return load_fail(err, errlen, "truncated header");
    if (version != HNSW_VERSION)
        return load_fail(err, errlen, "unknown version");
    if (count > HNSW_MAX_SLOTS || count > r.left / (8 + h->dim * sizeof(float) + 4))
        return load_fail(err, errlen, "node count out of range");
    /* The id map takes 4 bytes per id below the largest: ids are a caller's dense slots
     * (FT's document ids, whose table takes the same bound), so one past 64 per node is
     * refused rather than believed (the caller rebuilds). */
    uint64_t id_bound = 64 * ((uint64_t)count + 1024);
    for (uint32_t i = 0; i < count; i++) {
        int rc = load_node(h, &r, id_bound, err, errlen);
        if (rc)
            return rc;
    }
    if (r.left)
        return load_fail(err, errlen, "trailing bytes");
    int rc = load_links(h, err, errlen);
    if (rc)
        return rc;
    if (!count)
        return entry == NONE && !maxlevel ? 0 : load_fail(err, errlen, "bad entry point");
    uint32_t e = slot_of(h, entry);
    if (e == NONE || node_of(h, e)->level != maxlevel)
        return load_fail(err, errlen, "bad entry point");
    for (uint32_t x = 0; x < h->nslots; x++)
        if (node_of(h, x)->level > maxlevel)
            return load_fail(err, errlen, "a node above the max level");
    h->entry = e;
    h->maxlevel = maxlevel;
    return 0;
}

static const vec_ops hnsw_ops = {
    .own_locking = 0,
    .destroy = hnsw_destroy,
    .add = hnsw_add,
    .del = hnsw_del,
    .contains = hnsw_contains,
    .count = hnsw_count,
    .memory = hnsw_memory,
    .knn = hnsw_knn,
    .range = hnsw_range,
    .save = hnsw_save,
    .load = hnsw_load,
};

int vec__hnsw_create(const vec_params *p, vec_index **out, char *err, size_t errlen)
{
    if (p->m < 2 || p->m > HNSW_MAX_M) {
        if (err && errlen)
            snprintf(err, errlen, "M must be 2..%d", HNSW_MAX_M);
        return ERR_INVAL;
    }
    hnsw *h = try_calloc(1, sizeof(*h));
    if (!h)
        return ERR_NOMEM;
    h->kern = vec__kern();
    h->metric = p->metric;
    h->dim = p->dim;
    h->m = p->m;
    h->m0 = 2 * p->m;
    h->efc = p->ef_construction ? p->ef_construction : 1;
    h->ml = 1.0 / log((double)p->m);
    h->hdr_off = ((size_t)p->dim * sizeof(float) + 7) & ~(size_t)7;
    h->rec_bytes =
        (h->hdr_off + sizeof(node) + (1 + (size_t)h->m0) * sizeof(uint32_t) + 63) & ~(size_t)63;
    h->entry = NONE;
    h->rng = 0x5eed5eed5eed5eedull;
    pthread_mutex_init(&h->pool_lock, NULL);
    h->base.ops = &hnsw_ops;
    *out = &h->base;
    return 0;
}

/* ---- bulk build from kNN lists (vec_hnsw_build) ----
 * Each level is built the same way from kNN lists among its own nodes (level 0: the
 * caller's; above: the `upper` function's, over the few nodes that reach the level), in
 * three passes over the level's nodes, the first and the last on threads: (1) each node's
 * list, with distances, sorted and pruned by select_neighbors to the level's capacity
 * (topped up to half of it with the nearest dropped: the insertion gives a new node M links
 * at once); (2) the reverse edges gathered per target (CSR arrays indexed by slot); (3) each
 * node's list merged with its reverse edges and pruned again where that passes the
 * capacity. A worker writes only its own nodes' lists and reads only those, the vectors and
 * the CSR arrays: no locks. Then, on one thread: the back lists, and per level a walk from
 * the entry point that links in (both ways) every node it cannot reach (the kNN lists of a
 * tight cluster can all stay inside it). */

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
    qsort(c, n, sizeof(pair), pair_cmp);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!m || c[i].s != c[m - 1].s) /* the same slot has the same distance: adjacent */
            c[m++] = c[i];
    m = select_neighbors(b->h, c, m, b->cap, b->fill, c + b->scap);
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
static int bulk_reverse(const bulk *b, uint32_t nl, uint32_t n, uint32_t **roff,
                        uint32_t **rev, uint32_t *maxin)
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
    bulk b = {.h = h, .lev = lev, .cap = cap_of(h, lev), .fill = cap_of(h, lev) / 2,
              .slots = slots, .knn = knn, .k = k, .scap = k ? k : 1};
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
static int bulk_upper_level(hnsw *h, uint32_t lev, const uint32_t *slots, uint32_t nl,
                            uint32_t n, uint32_t k, vec_knn_fn upper, void *ctx,
                            uint32_t threads)
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

/* The back lists of every level, as a load rebuilds them. */
static void bulk_back(hnsw *h, uint32_t n)
{
    for (uint32_t x = 0; x < n; x++) {
        uint32_t level = node_of(h, x)->level;
        for (uint32_t lev = 0; lev <= level; lev++) {
            const uint32_t *l = list_of(h, x, lev);
            for (uint32_t i = 1; i <= l[0]; i++)
                if (!has_link(h, l[i], x, lev))
                    back_add(h, l[i], lev << HNSW_LEVEL_SHIFT | x);
        }
    }
}

/* Marks every node reachable at lev from the nodes in queue[head..*qn) (marked already). */
static void bulk_walk(const hnsw *h, uint32_t lev, uint8_t *seen, uint32_t *queue,
                      uint32_t *qn, uint32_t head)
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
    if (has_link(h, a, b, lev))
        return 0;
    if (l[0] < cap_of(h, lev)) {
        l[1 + l[0]++] = b;
        link_added(h, a, b, lev);
        return 0;
    }
    uint32_t old = l[l[0]];
    l[l[0]] = b;
    link_removed(h, a, old, lev);
    link_added(h, a, b, lev);
    return 1;
}

/* Links u, which the entry point cannot reach at lev, both ways with the nearest node a
 * search of lev finds that has room in its list (else the nearest): in, so that u is
 * reached, and out, so that a search landing among u's neighbours can leave them. Returns 1
 * when a link was replaced. */
static int bulk_link_in(hnsw *h, searcher *s, uint32_t u, uint32_t lev)
{
    const float *q = vec_of(h, u);
    searcher_begin(h, s);
    uint32_t got = search_best(h, s, q, h->entry, dist(h, q, vec_of(h, h->entry)), h->efc, lev);
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
        if (reserve(h, ids[i]))
            return ERR_NOMEM;
        uint32_t level = random_level(h);
        uint32_t *upper = upper_alloc(h, level);
        if (level && !upper)
            return ERR_NOMEM;
        uint32_t x = slot_take(h, ids[i], level, upper, vecs + (size_t)i * h->dim);
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
        node_free_back(h, nd);
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
                    const uint32_t *knn, uint32_t k, vec_knn_fn upper, void *ctx,
                    uint32_t threads)
{
    uint64_t rng = h->rng;
    searcher *s = NULL;
    int rc = bulk_take(h, ids, vecs, n);
    if (!rc)
        rc = bulk_levels(h, n, knn, k, upper, ctx, vec__threads(threads));
    if (!rc && !(s = searcher_ready(h, h->efc)))
        rc = ERR_NOMEM;
    if (!rc) {
        bulk_back(h, n);
        rc = bulk_reach(h, s, n);
    }
    if (s)
        searcher_put(h, s);
    if (rc)
        bulk_undo(h, rng);
    return rc;
}

int vec_hnsw_build(vec_index *ix, const uint32_t *ids, const float *vecs, uint32_t n,
                   const uint32_t *knn, uint32_t k, vec_knn_fn upper, void *upper_ctx,
                   uint32_t threads, char *err, size_t errlen)
{
    if (!ix || ix->ops != &hnsw_ops)
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
