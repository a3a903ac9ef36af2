/* test_histogram.c: unit tests for core/histogram.h: percentiles read back from the
 * histogram against the exact percentiles of the same samples sorted (never below them,
 * less than 1/128 above), bucket edges, values past the range, cumulative counts, and the
 * sum. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "core/histogram.h"

static histogram *new_hist(void)
{
    histogram *h = calloc(1, sizeof *h);
    assert_non_null(h);
    return h;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sample of rank ceil(p% of n) (at least 1) in sorted s: what hist_percentile names. */
static uint64_t exact_percentile(const uint64_t *s, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    return s[rank - 1];
}

/* A deterministic generator, so a failure can be replayed. */
static uint64_t next_rand(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return *state >> 11;
}

static void check_against_sorted(uint64_t *samples, size_t n)
{
    histogram *h = new_hist();
    for (size_t i = 0; i < n; i++)
        hist_record(h, samples[i]);
    assert_true(h->total == n);
    qsort(samples, n, sizeof *samples, cmp_u64);
    static const double ps[] = {0, 0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        uint64_t want = exact_percentile(samples, n, ps[i]);
        uint64_t got = hist_percentile(h, ps[i]);
        assert_true(got >= want);
        assert_true(got - want <= want / 128); /* two significant digits, and better */
    }
    assert_true(hist_max(h) >= samples[n - 1]);
    assert_true(hist_max(h) - samples[n - 1] <= samples[n - 1] / 128);
    free(h);
}

static void percentiles_match_sorted_samples(void **state)
{
    (void)state;
    enum { N = 200000 };
    uint64_t *s = malloc(N * sizeof *s);
    assert_non_null(s);
    uint64_t seed = 42;
    /* latencies spread over 1 us .. ~1 hour: a random exponent, then a random mantissa */
    for (size_t i = 0; i < N; i++) {
        unsigned bits = (unsigned)(next_rand(&seed) % 32);
        s[i] = ((uint64_t)1 << bits) + next_rand(&seed) % ((uint64_t)1 << bits);
    }
    check_against_sorted(s, N);
    /* a tight cluster, as fast commands make: the exact buckets below 256 */
    for (size_t i = 0; i < N; i++)
        s[i] = 1 + next_rand(&seed) % 40;
    check_against_sorted(s, N);
    free(s);
}

static void single_values_and_edges(void **state)
{
    (void)state;
    static const uint64_t values[] = {0, 1, 127, 128, 255, 256, 257, 511, 512, 1000, 10007,
                                      1u << 20, ((uint64_t)1 << 31) + 12345, HIST_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        histogram *h = new_hist();
        hist_record(h, values[i]);
        uint64_t got = hist_percentile(h, 50);
        assert_true(got >= values[i]);
        assert_true(got - values[i] <= values[i] / 128);
        assert_true(hist_percentile(h, 0) == got && hist_percentile(h, 100) == got);
        free(h);
    }
}

static void empty_and_out_of_range(void **state)
{
    (void)state;
    histogram *h = new_hist();
    assert_true(hist_percentile(h, 50) == 0);
    assert_true(hist_max(h) == 0);
    assert_true(hist_count_upto(h, HIST_MAX) == 0);
    hist_record(h, (uint64_t)HIST_MAX * 1000); /* past the range: counted at the top */
    assert_true(hist_percentile(h, 99) == HIST_MAX);
    assert_true(hist_max(h) == HIST_MAX);
    assert_true(h->total == 1);
    free(h);
}

static void cumulative_counts(void **state)
{
    (void)state;
    histogram *h = new_hist();
    for (uint64_t v = 1; v <= 1000; v++)
        hist_record(h, v);
    assert_true(hist_count_upto(h, 0) == 0);
    assert_true(hist_count_upto(h, 1) == 1);
    assert_true(hist_count_upto(h, 255) == 255);
    assert_true(hist_count_upto(h, 1000) <= 1000);
    assert_true(hist_count_upto(h, 1000) >= 990); /* whole buckets only */
    assert_true(hist_count_upto(h, HIST_MAX) == 1000);
    /* percentiles never decrease with p */
    uint64_t prev = 0;
    for (double p = 0; p <= 100; p += 0.5) {
        uint64_t v = hist_percentile(h, p);
        assert_true(v >= prev);
        prev = v;
    }
    free(h);
}

/* The one-walk form gives what hist_count_upto() gives at each bound. */
static void count_upto_many_matches(void **state)
{
    (void)state;
    histogram *h = new_hist();
    uint64_t seed = 7;
    for (int i = 0; i < 20000; i++)
        hist_record(h, next_rand(&seed) % 5000000);
    uint64_t bounds[40], out[40];
    uint64_t b = 0;
    for (int i = 0; i < 40; i++) {
        bounds[i] = b;
        b = b * 3 / 2 + (uint64_t)(i % 3); /* repeats, small steps and large ones */
    }
    bounds[39] = HIST_MAX;
    hist_count_upto_many(h, bounds, 40, out);
    for (int i = 0; i < 40; i++)
        assert_true(out[i] == hist_count_upto(h, bounds[i]));
    assert_true(out[39] == 20000);
    free(h);
}

/* The sum is of the values as recorded, even past HIST_MAX (a Prometheus _sum). */
static void sum_of_values(void **state)
{
    (void)state;
    histogram *h = new_hist();
    assert_true(h->sum == 0);
    hist_record(h, 3);
    hist_record(h, 1000);
    hist_record(h, (uint64_t)HIST_MAX + 5);
    assert_true(h->sum == 1003 + (uint64_t)HIST_MAX + 5);
    assert_true(h->total == 3);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(percentiles_match_sorted_samples),
        cmocka_unit_test(single_values_and_edges),
        cmocka_unit_test(empty_and_out_of_range),
        cmocka_unit_test(cumulative_counts),
        cmocka_unit_test(sum_of_values),
        cmocka_unit_test(count_upto_many_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
