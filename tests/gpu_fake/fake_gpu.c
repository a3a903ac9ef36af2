/* fake_gpu.c: a TEST DOUBLE of index/gpu/'s library (gpu.h) that runs on the CPU, so the
 * server's GPU wiring (index/gpu_probe.c, index/gpu_mirror.c, query/gpu_batch.c) can be
 * tested on machines without a CUDA device. It is not a model of the real library's speed
 * or memory layout, only of its contract: the same functions, arguments, errors and answers
 * (exact k nearest, distances as gpu.h defines them, ties by smaller id, id -1 / +inf past
 * the vectors held). Built as build/<flavour>/libquivergpu_fake.so and loaded by the server
 * through QUIVER_GPU_LIB; its device is named "fake".
 *
 * FAULT INJECTION, from the environment, read at every call (so a unit test may change it):
 *   QUIVER_FAKE_GPU_FAIL  comma-separated rules [add:|search:|graph:]oom@N or cuda@N: the
 *                         Nth call (from 1, counted since the variable last changed) of add
 *                         and search together, or of the one named (graph: gpu_knn_graph,
 *                         only counted by its own rules), fails with GPU_ERR_OOM or
 *                         GPU_ERR_CUDA (nothing changes); "nodevice" makes the device query
 *                         and create fail with GPU_ERR_NO_DEVICE.
 *   QUIVER_FAKE_GPU_MEM   device memory in bytes (default 16 GiB): reserve and add beyond
 *                         it fail with GPU_ERR_OOM, as the real library refuses them.
 *   QUIVER_FAKE_GPU_SLEEP_MS  each search and each gpu_knn_graph first sleeps this long (a
 *                         slow device: tests use it to act while a batch or a graph build
 *                         is on the device).
 * Distances are summed in double and rounded to float once. Thread-safe as gpu.h requires
 * (one caller per index; the counters and the memory total are shared, under a mutex). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/gpu/gpu.h"

#define DEFAULT_MEM (16ull << 30)
#define NO_ROW UINT32_MAX

struct gpu_index {
    uint32_t dim;
    int metric;
    uint64_t n, cap;   /* rows held, rows reserved */
    float *vecs;       /* cap x dim, normalised for COSINE */
    uint32_t *ids;     /* row -> id */
    uint32_t *map;     /* id -> row (NO_ROW), map_cap entries */
    uint64_t map_cap;
    uint64_t bytes;    /* charged to the fake device */
    double total_ms, select_ms;
    char err[256];
};

static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char spec[512];     /* the QUIVER_FAKE_GPU_FAIL last seen */
    uint64_t calls[4];  /* add+search, add, search, knn_graph */
    uint64_t used;      /* bytes charged by every index */
} st;

enum { CALL_ANY = 0, CALL_ADD = 1, CALL_SEARCH = 2, CALL_GRAPH = 3 };

static uint64_t device_mem(void)
{
    const char *s = getenv("QUIVER_FAKE_GPU_MEM");
    return s && *s ? strtoull(s, NULL, 10) : DEFAULT_MEM;
}

static const char *fail_spec(void)
{
    const char *s = getenv("QUIVER_FAKE_GPU_FAIL");
    return s ? s : "";
}

static int no_device(void)
{
    return strstr(fail_spec(), "nodevice") != NULL;
}

/* Counts a call of kind (CALL_ADD / CALL_SEARCH / CALL_GRAPH); the injected error, or 0. */
static int injected(int kind)
{
    const char *spec = fail_spec();
    pthread_mutex_lock(&state_lock);
    if (strcmp(spec, st.spec) != 0) {
        snprintf(st.spec, sizeof st.spec, "%s", spec);
        memset(st.calls, 0, sizeof st.calls);
    }
    if (kind != CALL_GRAPH) /* graph builds leave the add/search numbering alone */
        st.calls[CALL_ANY]++;
    st.calls[kind]++;
    uint64_t any = st.calls[CALL_ANY], mine = st.calls[kind];
    pthread_mutex_unlock(&state_lock);
    int rc = 0;
    char *copy = strdup(spec), *save = NULL;
    for (char *r = strtok_r(copy, ",", &save); r && !rc; r = strtok_r(NULL, ",", &save)) {
        int want = CALL_ANY;
        if (strncmp(r, "add:", 4) == 0)
            want = CALL_ADD, r += 4;
        else if (strncmp(r, "search:", 7) == 0)
            want = CALL_SEARCH, r += 7;
        else if (strncmp(r, "graph:", 6) == 0)
            want = CALL_GRAPH, r += 6;
        int code = strncmp(r, "oom@", 4) == 0 ? GPU_ERR_OOM
                   : strncmp(r, "cuda@", 5) == 0 ? GPU_ERR_CUDA : 0;
        const char *at = strchr(r, '@');
        int applies = kind == CALL_GRAPH ? want == CALL_GRAPH : want == CALL_ANY || want == kind;
        if (!code || !at || !applies)
            continue;
        if (strtoull(at + 1, NULL, 10) == (want == CALL_ANY ? any : mine))
            rc = code;
    }
    free(copy);
    return rc;
}

/* Sleeps QUIVER_FAKE_GPU_SLEEP_MS, if set. */
static void slow_device(void)
{
    const char *sleep_ms = getenv("QUIVER_FAKE_GPU_SLEEP_MS");
    if (sleep_ms && *sleep_ms) {
        long ms = strtol(sleep_ms, NULL, 10);
        nanosleep(&(struct timespec){ms / 1000, ms % 1000 * 1000000L}, NULL);
    }
}

/* Charges delta bytes to the device; GPU_ERR_OOM past its memory. */
static int charge(int64_t delta)
{
    pthread_mutex_lock(&state_lock);
    int rc = 0;
    if (delta > 0 && st.used + (uint64_t)delta > device_mem())
        rc = GPU_ERR_OOM;
    else
        st.used += (uint64_t)delta;
    pthread_mutex_unlock(&state_lock);
    return rc;
}

static int fail(gpu_index *g, int rc, const char *what)
{
    snprintf(g->err, sizeof g->err, "%s: %s (fake device)", what, gpu_strerror(rc));
    return rc;
}

const char *gpu_strerror(int rc)
{
    switch (rc) {
    case GPU_OK: return "ok";
    case GPU_ERR_NO_DEVICE: return "no CUDA device";
    case GPU_ERR_OOM: return "out of device memory";
    case GPU_ERR_K: return "k out of range";
    case GPU_ERR_DIM: return "bad dimension";
    case GPU_ERR_ARG: return "bad argument";
    case GPU_ERR_NOTFOUND: return "id not held";
    case GPU_ERR_CUDA: return "CUDA error";
    default: return "unknown error";
    }
}

int gpu_device_query(int device, gpu_device_info *info, char *detail, size_t detail_len)
{
    if (device != 0 || no_device()) {
        snprintf(detail, detail_len, "fake: no device %d", device);
        return GPU_ERR_NO_DEVICE;
    }
    memset(info, 0, sizeof *info);
    info->device_count = 1;
    snprintf(info->name, sizeof info->name, "fake");
    info->total_mem = device_mem();
    pthread_mutex_lock(&state_lock);
    info->free_mem = info->total_mem > st.used ? info->total_mem - st.used : 0;
    pthread_mutex_unlock(&state_lock);
    info->sm_count = 1;
    return GPU_OK;
}

int gpu_index_create(int device, uint32_t dim, int metric, gpu_index **out, char *detail,
                     size_t detail_len)
{
    if (device != 0 || no_device()) {
        snprintf(detail, detail_len, "fake: no device %d", device);
        return GPU_ERR_NO_DEVICE;
    }
    if (dim == 0 || dim > GPU_MAX_DIM) {
        snprintf(detail, detail_len, "dim %u", dim);
        return GPU_ERR_DIM;
    }
    if (metric != GPU_METRIC_L2 && metric != GPU_METRIC_IP && metric != GPU_METRIC_COSINE) {
        snprintf(detail, detail_len, "metric %d", metric);
        return GPU_ERR_ARG;
    }
    gpu_index *g = calloc(1, sizeof *g);
    if (!g)
        return GPU_ERR_OOM;
    g->dim = dim;
    g->metric = metric;
    *out = g;
    return GPU_OK;
}

void gpu_index_free(gpu_index *g)
{
    if (!g)
        return;
    charge(-(int64_t)g->bytes);
    free(g->vecs);
    free(g->ids);
    free(g->map);
    free(g);
}

const char *gpu_index_error(const gpu_index *g)
{
    return g->err;
}

/* Rows and the id map sized for rows rows and ids below id_bound, charged to the device. */
static int grow(gpu_index *g, uint64_t rows, uint64_t id_bound)
{
    uint64_t cap = g->cap, map_cap = g->map_cap;
    while (cap < rows)
        cap = cap ? 2 * cap : 64;
    while (map_cap < id_bound)
        map_cap = map_cap ? 2 * map_cap : 1024;
    if (cap == g->cap && map_cap == g->map_cap)
        return GPU_OK;
    uint64_t bytes = cap * (g->dim * 4 + 4) + map_cap * 4;
    if (charge((int64_t)bytes - (int64_t)g->bytes))
        return GPU_ERR_OOM;
    float *v = realloc(g->vecs, cap * g->dim * sizeof *v);
    uint32_t *ids = v ? realloc(g->ids, cap * sizeof *ids) : NULL;
    uint32_t *map = ids ? realloc(g->map, map_cap * sizeof *map) : NULL;
    if (v)
        g->vecs = v;
    if (ids)
        g->ids = ids;
    if (!map) {
        charge((int64_t)g->bytes - (int64_t)bytes);
        return GPU_ERR_OOM;
    }
    for (uint64_t i = g->map_cap; i < map_cap; i++)
        map[i] = NO_ROW;
    g->map = map;
    g->cap = cap;
    g->map_cap = map_cap;
    g->bytes = bytes;
    return GPU_OK;
}

int gpu_index_reserve(gpu_index *g, uint64_t rows)
{
    int rc = grow(g, rows, g->map_cap);
    return rc ? fail(g, rc, "reserve") : GPU_OK;
}

static uint32_t row_of(const gpu_index *g, uint32_t id)
{
    return id < g->map_cap ? g->map[id] : NO_ROW;
}

static double norm_of(const float *v, uint32_t dim)
{
    double s = 0;
    for (uint32_t i = 0; i < dim; i++)
        s += (double)v[i] * v[i];
    return sqrt(s);
}

/* Checks an add's arguments: 0 or the error. */
static int check_add(gpu_index *g, const uint32_t *ids, const float *vecs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == UINT32_MAX)
            return fail(g, GPU_ERR_ARG, "add: id UINT32_MAX");
        if (g->metric == GPU_METRIC_COSINE && norm_of(vecs + i * g->dim, g->dim) == 0)
            return fail(g, GPU_ERR_ARG, "add: zero vector under COSINE");
        for (size_t j = 0; j < i; j++)
            if (ids[j] == ids[i])
                return fail(g, GPU_ERR_ARG, "add: duplicate id");
    }
    return GPU_OK;
}

int gpu_index_add(gpu_index *g, const uint32_t *ids, const float *vecs, size_t n, uint32_t dim)
{
    if (dim != g->dim)
        return fail(g, GPU_ERR_DIM, "add");
    int rc = injected(CALL_ADD);
    if (rc)
        return fail(g, rc, "add (injected)");
    if ((rc = check_add(g, ids, vecs, n)))
        return rc;
    uint64_t fresh = 0, bound = g->map_cap;
    for (size_t i = 0; i < n; i++) {
        fresh += row_of(g, ids[i]) == NO_ROW;
        bound = ids[i] >= bound ? (uint64_t)ids[i] + 1 : bound;
    }
    if ((rc = grow(g, g->n + fresh, bound)))
        return fail(g, rc, "add");
    for (size_t i = 0; i < n; i++) {
        uint32_t r = row_of(g, ids[i]);
        if (r == NO_ROW) {
            r = (uint32_t)g->n++;
            g->ids[r] = ids[i];
            g->map[ids[i]] = r;
        }
        float *dst = g->vecs + (uint64_t)r * dim;
        memcpy(dst, vecs + i * dim, dim * sizeof *dst);
        if (g->metric == GPU_METRIC_COSINE) {
            double len = norm_of(dst, dim);
            for (uint32_t d = 0; d < dim; d++)
                dst[d] = (float)(dst[d] / len);
        }
    }
    return GPU_OK;
}

int gpu_index_delete(gpu_index *g, const uint32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (row_of(g, ids[i]) == NO_ROW)
            return fail(g, GPU_ERR_NOTFOUND, "delete");
    for (size_t i = 0; i < n; i++) {
        uint32_t r = row_of(g, ids[i]);
        if (r == NO_ROW)
            continue; /* an id given twice */
        uint64_t last = --g->n;
        if (r != last) {
            memcpy(g->vecs + (uint64_t)r * g->dim, g->vecs + last * g->dim, g->dim * 4);
            g->ids[r] = g->ids[last];
            g->map[g->ids[r]] = r;
        }
        g->map[ids[i]] = NO_ROW;
    }
    return GPU_OK;
}

int gpu_index_compact(gpu_index *g)
{
    (void)g; /* rows are always dense here */
    return GPU_OK;
}

void gpu_index_set_tile_rows(gpu_index *g, uint32_t rows)
{
    (void)g, (void)rows; /* no tiles */
}

uint64_t gpu_index_count(const gpu_index *g)
{
    return g->n;
}

uint64_t gpu_index_rows(const gpu_index *g)
{
    return g->n;
}

uint64_t gpu_index_device_bytes(const gpu_index *g)
{
    return g->bytes;
}

void gpu_index_last_times(const gpu_index *g, double *total_ms, double *select_ms)
{
    *total_ms = g->total_ms;
    *select_ms = g->select_ms;
}

/* ---- exact search ---- */

typedef struct cand {
    float d;
    uint32_t id;
} cand;

static int worse(const cand *a, const cand *b)
{
    return a->d > b->d || (a->d == b->d && a->id > b->id);
}

/* A bounded max-heap of the k best candidates (worst on top). */
static void heap_offer(cand *h, uint32_t *n, uint32_t k, cand c)
{
    if (*n == k) {
        if (!worse(h, &c))
            return;
        uint32_t i = 0;
        for (;;) {
            uint32_t l = 2 * i + 1, r = l + 1, m = i;
            const cand *mc = &c;
            if (l < k && worse(&h[l], mc))
                m = l, mc = &h[l];
            if (r < k && worse(&h[r], mc))
                m = r;
            if (m == i)
                break;
            h[i] = h[m];
            i = m;
        }
        h[i] = c;
        return;
    }
    uint32_t i = (*n)++;
    while (i > 0 && worse(&c, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static int cand_cmp(const void *a, const void *b)
{
    return worse(a, b) ? 1 : worse(b, a) ? -1 : 0;
}

/* The distance gpu.h reports between query q (normalised for COSINE) and row x. */
static float distance(int metric, const float *q, const float *x, uint32_t dim)
{
    double s = 0;
    if (metric == GPU_METRIC_L2) {
        for (uint32_t i = 0; i < dim; i++)
            s += ((double)q[i] - x[i]) * ((double)q[i] - x[i]);
        return (float)s;
    }
    for (uint32_t i = 0; i < dim; i++)
        s += (double)q[i] * x[i];
    return (float)(1.0 - s);
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The k nearest of rows to q into ids/dists, padding with -1 / +inf. */
static void search_one(const float *vecs, const uint32_t *row_ids, uint64_t rows, int metric,
                       const float *q, uint32_t dim, uint32_t k, cand *h, int64_t *ids,
                       float *dists)
{
    uint32_t n = 0;
    for (uint64_t r = 0; r < rows; r++)
        heap_offer(h, &n, k, (cand){distance(metric, q, vecs + r * dim, dim), row_ids[r]});
    qsort(h, n, sizeof *h, cand_cmp);
    for (uint32_t i = 0; i < k; i++) {
        ids[i] = i < n ? (int64_t)h[i].id : -1;
        dists[i] = i < n ? h[i].d : INFINITY;
    }
}

int gpu_index_search(gpu_index *g, const float *queries, uint32_t nq, uint32_t dim, uint32_t k,
                     unsigned flags, int64_t *ids, float *dists)
{
    (void)flags; /* TF32 changes nothing here: the answers are exact either way */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (k == 0 || k > GPU_MAX_K)
        return fail(g, GPU_ERR_K, "search");
    if (dim != g->dim)
        return fail(g, GPU_ERR_DIM, "search");
    if (nq == 0 || nq > GPU_MAX_BATCH || !queries)
        return fail(g, GPU_ERR_ARG, "search: batch size");
    slow_device();
    int rc = injected(CALL_SEARCH);
    if (rc)
        return fail(g, rc, "search (injected)");
    float *q = malloc((size_t)dim * sizeof *q);
    cand *h = malloc((size_t)k * sizeof *h);
    if (!q || !h) {
        free(q), free(h);
        return fail(g, GPU_ERR_OOM, "search");
    }
    for (uint32_t i = 0; i < nq && !rc; i++) {
        memcpy(q, queries + (size_t)i * dim, dim * sizeof *q);
        if (g->metric == GPU_METRIC_COSINE) {
            double len = norm_of(q, dim);
            if (len == 0) {
                rc = fail(g, GPU_ERR_ARG, "search: zero query under COSINE");
                break;
            }
            for (uint32_t d = 0; d < dim; d++)
                q[d] = (float)(q[d] / len);
        }
        search_one(g->vecs, g->ids, g->n, g->metric, q, dim, k, h, ids + (size_t)i * k,
                   dists + (size_t)i * k);
    }
    free(q);
    free(h);
    g->total_ms = ms_since(&t0);
    g->select_ms = g->total_ms / 2; /* no separate select here: a stand-in share */
    return rc;
}

/* ---- the k-nearest-neighbour graph ---- */

int gpu_knn_graph(int device, const float *vecs, uint64_t n, uint32_t dim, int metric,
                  uint32_t k, uint32_t *out, char *detail, size_t detail_len)
{
    gpu_index *g;
    int rc = gpu_index_create(device, dim, metric, &g, detail, detail_len);
    if (rc)
        return rc;
    if (k == 0 || k > GPU_MAX_K) {
        gpu_index_free(g);
        snprintf(detail, detail_len, "k %u", k);
        return GPU_ERR_K;
    }
    slow_device();
    if ((rc = injected(CALL_GRAPH)) != 0) {
        gpu_index_free(g);
        snprintf(detail, detail_len, "knn_graph (injected): %s", gpu_strerror(rc));
        return rc;
    }
    uint32_t *row_ids = malloc((n + 1) * sizeof *row_ids);
    float *copy = malloc((n * dim + 1) * sizeof *copy);
    cand *h = malloc(((size_t)k + 1) * sizeof *h);
    int64_t *ids = malloc(((size_t)k + 1) * sizeof *ids);
    float *dists = malloc(((size_t)k + 1) * sizeof *dists);
    rc = row_ids && copy && h && ids && dists ? GPU_OK : GPU_ERR_OOM;
    for (uint64_t i = 0; !rc && i < n; i++) {
        row_ids[i] = (uint32_t)i;
        memcpy(copy + i * dim, vecs + i * dim, dim * sizeof *copy);
        if (metric != GPU_METRIC_COSINE)
            continue;
        double len = norm_of(copy + i * dim, dim);
        if (len == 0) {
            snprintf(detail, detail_len, "vector %llu is zero under COSINE",
                     (unsigned long long)i);
            rc = GPU_ERR_ARG;
        }
        for (uint32_t d = 0; d < dim && len > 0; d++)
            copy[i * dim + d] = (float)(copy[i * dim + d] / len);
    }
    /* k + 1 nearest of each row, then the row itself left out */
    uint32_t k1 = k + 1;
    for (uint64_t i = 0; !rc && i < n; i++) {
        search_one(copy, row_ids, n, metric, copy + i * dim, dim, k1, h, ids, dists);
        uint32_t j = 0;
        for (uint32_t m = 0; m < k1 && j < k; m++)
            if (ids[m] >= 0 && (uint64_t)ids[m] != i)
                out[i * k + j++] = (uint32_t)ids[m];
        while (j < k)
            out[i * k + j++] = UINT32_MAX;
    }
    free(row_ids), free(copy), free(h), free(ids), free(dists);
    gpu_index_free(g);
    if (rc == GPU_ERR_OOM)
        snprintf(detail, detail_len, "fake: out of host memory");
    return rc;
}
