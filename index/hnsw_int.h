/* hnsw_int.h: what hnsw.c (the HNSW index: insert, delete, search, snapshots) and
 * hnsw_bulk.c (vec_hnsw_build, the bulk build from kNN lists) share and nobody else
 * includes: the node layout, the searcher, and the few helpers of hnsw.c that the bulk
 * build reuses so that both build the same graph (the same heuristic, the same bookkeeping
 * of back lists, the same slot handling). See hnsw.c's header for the layout and the rules. */
#ifndef QUIVER_HNSW_INT_H
#define QUIVER_HNSW_INT_H

#include <stdint.h>

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

static inline float dist(const hnsw *h, const float *a, const float *b)
{
    if (h->metric == VEC_L2)
        return h->kern->l2sq(a, b, h->dim);
    return vec__dist_from_dot(h->kern->dot(a, b, h->dim));
}
/* ---- hnsw.c's helpers that hnsw_bulk.c uses ---- */

extern const vec_ops hnsw__ops;

/* A searcher fitted for ef, begun; NULL when out of memory. Give it back with searcher_put. */
searcher *hnsw__searcher_ready(hnsw *h, uint32_t ef);
void hnsw__searcher_put(hnsw *h, searcher *s);
/* A new visit epoch; the searcher has been fitted. */
void hnsw__searcher_begin(const hnsw *h, searcher *s);
/* The ef nearest to q at lev from ep (at distance epd) into s->best; returns how many. */
uint32_t hnsw__search_best(const hnsw *h, searcher *s, const float *q, uint32_t ep, float epd,
                           uint32_t ef, uint32_t lev);

/* Orders pairs by (distance, slot) (qsort comparator). */
int hnsw__pair_cmp(const void *a, const void *b);
/* The neighbour heuristic over c (n, sorted): keeps up to max, then the nearest dropped
 * (set aside in rest, room for n) up to fill; returns how many. */
uint32_t hnsw__select_neighbors(const hnsw *h, pair *c, uint32_t n, uint32_t max, uint32_t fill,
                                pair *rest);

int hnsw__has_link(const hnsw *h, uint32_t a, uint32_t b, uint32_t lev);
/* Back-list bookkeeping (aborts on out of memory: see hnsw.c). */
void hnsw__back_add(hnsw *h, uint32_t v, uint32_t e);
void hnsw__node_free_back(hnsw *h, node *nd);
/* The back lists of slots [0, n) at every level, from their links (a load, a bulk build). */
void hnsw__back_build(hnsw *h, uint32_t n);
/* After a->b appeared / went away at lev. */
void hnsw__link_added(hnsw *h, uint32_t a, uint32_t b, uint32_t lev);
void hnsw__link_removed(hnsw *h, uint32_t a, uint32_t b, uint32_t lev);

/* A level drawn as an insertion draws it (advances h->rng). */
uint32_t hnsw__random_level(hnsw *h);
/* Room for id in id2slot, one more slot, one more free-list entry. */
int hnsw__reserve(hnsw *h, uint32_t id);
/* Takes a slot (free list first) and fills its record; hnsw__reserve() has run. */
uint32_t hnsw__slot_take(hnsw *h, uint32_t id, uint32_t level, uint32_t *upper, const float *v);
/* Upper-level links for a node of level (NULL for level 0 or out of memory). */
uint32_t *hnsw__upper_alloc(const hnsw *h, uint32_t level);

#endif
