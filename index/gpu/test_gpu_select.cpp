/* test_gpu_select.cpp: gpu_select.h's block-level top-k, run on CPU threads. Each "block" is
 * that many POSIX threads meeting at a barrier, executing the same code the CUDA kernels
 * run, so the selection's logic (flush points, thresholds, the shared counter, the bitonic
 * sort, merging lanes) is tested on any machine. It drives the select as a search does:
 * tiles split among lanes, a running list per lane kept between tiles, then one merge of
 * the lanes; and checks the result against a plain sort of every key.
 *
 * Needs no GPU and no CUDA: plain C++17 and pthreads. */
#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "index/gpu/gpu_select.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        checks++;                                                                             \
        if (!(cond)) {                                                                        \
            failures++;                                                                       \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                      \
            printf(__VA_ARGS__);                                                              \
            printf("\n");                                                                     \
        }                                                                                     \
    } while (0)

/* gpu_select.h's Block on CPU threads. */
struct host_block {
    uint32_t t, n;
    pthread_barrier_t *bar;
    uint32_t tid() const { return t; }
    uint32_t size() const { return n; }
    void sync() const { pthread_barrier_wait(bar); }
    uint32_t add(uint32_t *p, uint32_t v) const { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
};

/* The block's shared memory. */
struct shared_mem {
    std::vector<uint64_t> keys;
    uint32_t count = 0;
    uint64_t threshold = 0;
};

struct block_run {
    std::function<void(host_block &, gpu_topk &)> body;
    shared_mem *mem;
    pthread_barrier_t *bar;
    uint32_t t, n, kp, kc;
};

static void *block_thread(void *arg)
{
    block_run *r = (block_run *)arg;
    host_block b{r->t, r->n, r->bar};
    gpu_topk topk{r->mem->keys.data(), r->kp, r->kc, gpu_select_span(r->kp), &r->mem->count,
                  &r->mem->threshold};
    r->body(b, topk);
    return nullptr;
}

/* Runs body on a block of `threads` threads over one shared memory; returns the shared keys. */
static std::vector<uint64_t> run_block(uint32_t threads, uint32_t kp, uint32_t kc,
                                       std::function<void(host_block &, gpu_topk &)> body)
{
    shared_mem mem;
    mem.keys.assign(gpu_select_span(kp), 0xdeadbeefull); /* garbage, as shared memory is */
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, nullptr, threads);
    std::vector<block_run> runs(threads);
    std::vector<pthread_t> th(threads);
    for (uint32_t t = 0; t < threads; t++) {
        runs[t] = block_run{body, &mem, &bar, t, threads, kp, kc};
        pthread_create(&th[t], nullptr, block_thread, &runs[t]);
    }
    for (uint32_t t = 0; t < threads; t++)
        pthread_join(th[t], nullptr);
    pthread_barrier_destroy(&bar);
    return mem.keys;
}

static uint32_t pow2_at_least(uint32_t x)
{
    uint32_t p = 32;
    while (p < x)
        p <<= 1;
    return p;
}

/* Selects the kc smallest of keys as a search does (tiles of tile_rows, split among lanes,
 * then a merge of the lanes) and checks them against a sort. */
static void check_select(const char *what, const std::vector<uint64_t> &keys, uint32_t kc,
                         uint32_t tile_rows, uint32_t lanes, uint32_t threads)
{
    uint32_t kp = pow2_at_least(kc);
    std::vector<uint64_t> state((size_t)lanes * kp, GPU_KEY_NONE);
    uint32_t n = (uint32_t)keys.size();
    for (uint32_t t0 = 0; t0 < n; t0 += tile_rows) {
        uint32_t rows = std::min(tile_rows, n - t0);
        for (uint32_t lane = 0; lane < lanes; lane++) {
            uint32_t lo = (uint32_t)((uint64_t)rows * lane / lanes);
            uint32_t hi = (uint32_t)((uint64_t)rows * (lane + 1) / lanes);
            uint64_t *list = state.data() + (size_t)lane * kp;
            run_block(threads, kp, kc, [&](host_block &b, gpu_topk &t) {
                t.load(b, list);
                t.offer_range(b, lo, hi, [&](uint32_t j) { return keys[t0 + j]; });
                t.store(b, list);
            });
        }
    }
    std::vector<uint64_t> got = run_block(threads, kp, kc, [&](host_block &b, gpu_topk &t) {
        t.load(b, state.data());
        t.offer_range(b, kp, lanes * kp, [&](uint32_t i) { return state[i]; });
    });
    std::vector<uint64_t> want(keys);
    std::sort(want.begin(), want.end());
    want.resize(std::max<size_t>(want.size(), kc), GPU_KEY_NONE);
    uint32_t bad = 0, first = 0;
    for (uint32_t i = kc; i-- > 0;)
        if (got[i] != want[i]) {
            bad++;
            first = i;
        }
    CHECK(bad == 0, "%s: %u of %u keys differ (first at %u: got %llx want %llx)", what, bad, kc,
          first, (unsigned long long)got[first], (unsigned long long)want[first]);
    printf("%-6s %s: n=%u kc=%u tile=%u lanes=%u threads=%u\n", bad ? "FAILED" : "ok", what, n,
           kc, tile_rows, lanes, threads);
}

/* Keys of n rows at distances made by dist(j); rows with dead(j) are GPU_KEY_NONE. */
static std::vector<uint64_t> make_keys(uint32_t n, std::function<float(uint32_t)> dist,
                                       std::function<bool(uint32_t)> dead)
{
    std::vector<uint64_t> k(n);
    for (uint32_t j = 0; j < n; j++)
        k[j] = dead(j) ? GPU_KEY_NONE : gpu_make_key(dist(j), j);
    return k;
}

static void test_keys()
{
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1e6f, 1e6f);
    for (int i = 0; i < 100000; i++) {
        float a = u(rng), b = u(rng);
        if (i % 3 == 0)
            b = -a;
        CHECK((a < b) == (gpu_float_order(a) < gpu_float_order(b)), "order of %g, %g", a, b);
        CHECK(gpu_order_float(gpu_float_order(a)) == a, "round trip of %g", a);
    }
    CHECK(gpu_float_order(INFINITY) > gpu_float_order(3e38f), "+inf last");
    CHECK(gpu_make_key(1.0f, 5) < gpu_make_key(1.0f, 6), "ties by position");
    CHECK(gpu_make_key(INFINITY, 0xfffffffeu) < GPU_KEY_NONE, "NONE after every key");
    printf("ok     keys: order and round trip\n");
}

int main()
{
    test_keys();
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> u(0.0f, 100.0f);
    std::vector<float> rnd(30000);
    for (float &x : rnd)
        x = u(rng);
    auto random = [&](uint32_t j) { return rnd[j]; };
    auto none_dead = [](uint32_t) { return false; };
    std::vector<uint64_t> keys = make_keys(12000, random, none_dead);
    for (uint32_t kc : {1u, 10u, 100u, 120u, 1024u})
        check_select("random", keys, kc, 12000, 1, kc == 1024 ? 256 : 64);
    check_select("random, 7 tiles x 3 lanes", keys, 100, 3001, 3, 64);
    check_select("random, 3 tiles x 9 lanes", keys, 1024, 4096, 9, 64);
    check_select("random, 32-thread block", keys, 1024, 12000, 2, 32);
    std::vector<uint64_t> desc = make_keys(6000, [](uint32_t j) { return 6000.0f - j; },
                                           none_dead);
    check_select("descending (a flush every round)", desc, 1024, 6000, 1, 64);
    check_select("descending, small k", desc, 10, 2000, 2, 64);
    std::vector<uint64_t> asc = make_keys(6000, [](uint32_t j) { return (float)j; }, none_dead);
    check_select("ascending", asc, 100, 6000, 4, 64);
    std::vector<uint64_t> ties = make_keys(5000, [](uint32_t j) { return (float)(j % 3); },
                                           none_dead);
    check_select("ties (by position)", ties, 1024, 1700, 2, 64);
    std::vector<uint64_t> dead = make_keys(12000, random, [](uint32_t j) { return j % 4 != 1; });
    check_select("three quarters deleted", dead, 1024, 12000, 3, 64);
    std::vector<uint64_t> few = make_keys(700, random, [](uint32_t j) { return j % 10 != 0; });
    check_select("fewer live than k", few, 100, 300, 2, 64);
    std::vector<uint64_t> all_dead = make_keys(1000, random, [](uint32_t) { return true; });
    check_select("all deleted", all_dead, 10, 1000, 1, 64);
    std::vector<uint64_t> neg = make_keys(3000, [&](uint32_t j) { return rnd[j] - 50.0f; },
                                          none_dead);
    check_select("negative distances (IP)", neg, 100, 3000, 2, 64);
    /* The k-th nearest arrives last, after a flush has set the threshold from k - 1 keys
     * and far ones: a threshold one place too tight would drop it. */
    for (uint32_t kc : {10u, 100u}) {
        std::vector<uint64_t> late = make_keys(3000, [&](uint32_t j) {
            return j < kc - 1 ? (float)j : j == 2999 ? (float)kc - 1 : 1000.0f + j;
        }, none_dead);
        check_select("k-th nearest last", late, kc, 3000, 1, 64);
    }
    printf("test_gpu_select: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
