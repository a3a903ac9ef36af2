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
 * BULK BUILDS (vec_hnsw_build, hnsw_bulk.c) fill an empty index from kNN lists
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
#include "index/hnsw_int.h"

/* ---- distances (dist itself: hnsw_int.h) ---- */

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

void hnsw__searcher_put(hnsw *h, searcher *s)
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

/* A new visit epoch; searcher_fit has sized the marks. */
void hnsw__searcher_begin(const hnsw *h, searcher *s)
{
    (void)h;
    if (++s->epoch == 0) {
        memset(s->mark, 0, s->nmark * sizeof(uint16_t));
        s->epoch = 1;
    }
    s->cand.n = s->res.n = 0;
}

searcher *hnsw__searcher_ready(hnsw *h, uint32_t ef)
{
    searcher *s = searcher_get(h);
    if (s && searcher_fit(h, s, ef)) {
        hnsw__searcher_put(h, s);
        return NULL;
    }
    if (s)
        hnsw__searcher_begin(h, s);
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

#define EXPANDED 0x80000000u /* in hnsw__search_best's list: the node's links were followed */

/* The unfiltered search of level lev from ep: the same answer as search_layer without a
 * filter, kept in one sorted array of the ef nearest (s->best, nearest first) instead of
 * two heaps: a candidate that falls out of the ef nearest could never be expanded anyway,
 * so the array is the candidate list too, and the next node to expand is the nearest not
 * yet expanded. Returns how many are in s->best. The caller has begun an epoch, with the
 * searcher fitted for ef. */
uint32_t hnsw__search_best(const hnsw *h, searcher *s, const float *q, uint32_t ep, float epd,
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

int hnsw__pair_cmp(const void *a, const void *b)
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
uint32_t hnsw__select_neighbors(const hnsw *h, pair *c, uint32_t n, uint32_t max, uint32_t fill,
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

int hnsw__has_link(const hnsw *h, uint32_t a, uint32_t b, uint32_t lev)
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
void hnsw__back_add(hnsw *h, uint32_t v, uint32_t e)
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

void hnsw__node_free_back(hnsw *h, node *nd)
{
    if (nd->back)
        h->back_bytes -= (2 + (size_t)nd->back[1]) * sizeof(uint32_t);
    xfree(nd->back);
    nd->back = NULL;
}

/* Bookkeeping after a->b appeared at lev: the edge is one-way unless b links to a. */
void hnsw__link_added(hnsw *h, uint32_t a, uint32_t b, uint32_t lev)
{
    if (hnsw__has_link(h, b, a, lev))
        back_del(h, a, lev << HNSW_LEVEL_SHIFT | b);
    else
        hnsw__back_add(h, b, lev << HNSW_LEVEL_SHIFT | a);
}

/* Bookkeeping after a->b went away at lev. */
void hnsw__link_removed(hnsw *h, uint32_t a, uint32_t b, uint32_t lev)
{
    if (hnsw__has_link(h, b, a, lev))
        hnsw__back_add(h, a, lev << HNSW_LEVEL_SHIFT | b);
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
            hnsw__link_removed(h, y, s->old[i], lev);
    for (uint32_t i = 0; i < k; i++)
        if (!in_slots(s->old, nold, l[1 + i]))
            hnsw__link_added(h, y, l[1 + i], lev);
}

/* Adds the link y->x (x at distance dxy), pruning y's list by the heuristic when full. */
static void link_pruned(hnsw *h, searcher *s, uint32_t y, uint32_t x, float dxy, uint32_t lev)
{
    uint32_t *l = list_of(h, y, lev);
    uint32_t cap = cap_of(h, lev);
    if (l[0] < cap) {
        l[1 + l[0]++] = x;
        hnsw__link_added(h, y, x, lev);
        return;
    }
    const float *vy = vec_of(h, y);
    pair *c = s->scr;
    c[0] = (pair){dxy, x};
    for (uint32_t i = 1; i <= l[0]; i++)
        c[i] = (pair){dist(h, vy, vec_of(h, l[i])), l[i]};
    qsort(c, l[0] + 1, sizeof(pair), hnsw__pair_cmp);
    uint32_t k = hnsw__select_neighbors(h, c, l[0] + 1, cap, 0, NULL);
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
        hnsw__searcher_begin(h, s);
        uint32_t n = hnsw__search_best(h, s, q, cur, curd, h->efc, lev);
        pair *w = s->best;
        cur = w[0].s;
        curd = w[0].d;
        uint32_t k = hnsw__select_neighbors(h, w, n, h->m, 0, NULL);
        uint32_t *l = list_of(h, x, lev);
        for (uint32_t i = 0; i < k; i++) {
            l[1 + l[0]++] = w[i].s;
            hnsw__link_added(h, x, w[i].s, lev);
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

uint32_t hnsw__random_level(hnsw *h)
{
    double u = ((rng_next(h) >> 11) + 1) * 0x1p-53; /* (0, 1] */
    double l = -log(u) * h->ml;
    return l >= HNSW_MAX_LEVEL ? HNSW_MAX_LEVEL : (uint32_t)l;
}

/* Makes room for id in id2slot, one more slot, and one more free-list entry. */
int hnsw__reserve(hnsw *h, uint32_t id)
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

/* Takes a slot (free list first) and fills its record; hnsw__reserve() has run. */
uint32_t hnsw__slot_take(hnsw *h, uint32_t id, uint32_t level, uint32_t *upper, const float *v)
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

uint32_t *hnsw__upper_alloc(const hnsw *h, uint32_t level)
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

/* Every allocation comes before the first change (hnsw__reserve, the upper levels, a fitted
 * searcher, the replaced vector's delete), so a failed add leaves the graph as it was;
 * back lists aside (hnsw__back_add). */
static int hnsw_add(vec_index *ix, uint32_t id, const float *v)
{
    hnsw *h = (hnsw *)ix;
    int rc = hnsw__reserve(h, id);
    if (rc)
        return rc;
    uint64_t rng = h->rng;
    uint32_t level = hnsw__random_level(h);
    uint32_t *upper = hnsw__upper_alloc(h, level);
    searcher *s = level && !upper ? NULL : hnsw__searcher_ready(h, h->efc);
    uint32_t old = slot_of(h, id);
    if (s && old != NONE)
        rc = del_with(h, s, old); /* a replaced vector: ERR_NOMEM before it changes */
    if (!s || rc) {
        if (s)
            hnsw__searcher_put(h, s);
        xfree(upper);
        h->rng = rng; /* as if this add never ran */
        return ERR_NOMEM;
    }
    uint32_t x = hnsw__slot_take(h, id, level, upper, v);
    if (h->entry == NONE) {
        hnsw__searcher_put(h, s);
        h->entry = x;
        h->maxlevel = level;
        return 0;
    }
    connect(h, s, x, level);
    hnsw__searcher_put(h, s);
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
        if (hnsw__has_link(h, l[i], x, lev))
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
    hnsw__searcher_begin(h, s);
    visit(s, y);
    visit(s, x);
    for (uint32_t i = 1; i <= l[0]; i++)
        if (visit(s, l[i]))
            c[n++] = (pair){dist(h, vy, vec_of(h, l[i])), l[i]};
    for (uint32_t i = 0; i < nxs; i++)
        if (visit(s, s->xs[i]))
            c[n++] = (pair){dist(h, vy, vec_of(h, s->xs[i])), s->xs[i]};
    qsort(c, n, sizeof(pair), hnsw__pair_cmp);
    uint32_t k = hnsw__select_neighbors(h, c, n, cap_of(h, lev), l[0], s->rest);
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
            hnsw__link_removed(h, x, s->xs[i], lev);
        for (uint32_t i = 0; i < nin; i++)
            repair(h, s, s->in[i], x, nxs, lev);
    }
    h->upper_bytes -= (size_t)nx->level * (h->m + 1) * sizeof(uint32_t);
    xfree(nx->upper);
    nx->upper = NULL;
    hnsw__node_free_back(h, nx);
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
    searcher *s = hnsw__searcher_ready(h, 0);
    if (!s)
        return ERR_NOMEM;
    int rc = del_with(h, s, x);
    hnsw__searcher_put(h, s);
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
    searcher *s = hnsw__searcher_ready(h, ef);
    if (!s)
        return ERR_NOMEM;
    int rc = 0;
    if (f && f->ids && prefer_scan(h, f->nids, ef)) {
        rc = scan_knn(h, s, q, k, f, out, n);
        hnsw__searcher_put(h, s);
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
            hnsw__searcher_put(h, s);
            return ERR_NOMEM;
        }
        heap_drain_sorted(&s->res, best);
    } else {
        got = hnsw__search_best(h, s, q, ep, curd, ef, 0);
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
    hnsw__searcher_put(h, s);
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
    uint32_t nseed = hnsw__search_best(h, s, q, ep, epd, h->base.params.ef_runtime, 0);
    pair *seed = try_malloc(nseed * sizeof(pair));
    int rc = seed ? 0 : ERR_NOMEM;
    if (rc)
        return rc;
    memcpy(seed, s->best, nseed * sizeof(pair));
    hnsw__searcher_begin(h, s); /* a new epoch: nodes seen by the kNN step may lie in range */
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
    searcher *s = hnsw__searcher_ready(h, h->base.params.ef_runtime);
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
    hnsw__searcher_put(h, s);
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
    if (!rc && (rc = hnsw__reserve(h, id)) == 0 && level && !(upper = hnsw__upper_alloc(h, level)))
        rc = ERR_NOMEM;
    uint32_t x = rc ? NONE : hnsw__slot_take(h, id, level, upper, v);
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

void hnsw__back_build(hnsw *h, uint32_t n)
{
    for (uint32_t x = 0; x < n; x++) {
        uint32_t level = node_of(h, x)->level;
        for (uint32_t lev = 0; lev <= level; lev++) {
            const uint32_t *l = list_of(h, x, lev);
            for (uint32_t i = 1; i <= l[0]; i++)
                if (!hnsw__has_link(h, l[i], x, lev))
                    hnsw__back_add(h, l[i], lev << HNSW_LEVEL_SHIFT | x);
        }
    }
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
    hnsw__back_build(h, h->nslots);
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

const vec_ops hnsw__ops = {
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
    h->base.ops = &hnsw__ops;
    *out = &h->base;
    return 0;
}