/* histogram.c: the log-linear latency histogram of histogram.h: a value's bucket from its
 * highest set bit and the next HIST_SUB_BITS bits below it, and percentiles read back by a
 * walk over the cumulative counts. */
#include "core/histogram.h"

#include <math.h>

#define SUB (1u << HIST_SUB_BITS)

/* Values below 2*SUB index themselves; above, octave k (highest bit k >= HIST_SUB_BITS + 1)
 * starts at index (k - HIST_SUB_BITS) * SUB and its buckets are 2^(k - HIST_SUB_BITS) wide. */
static unsigned bucket_of(uint64_t v)
{
    if (v > HIST_MAX)
        v = HIST_MAX;
    if (v < 2 * SUB)
        return (unsigned)v;
    unsigned k = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = k - HIST_SUB_BITS;
    return shift * SUB + (unsigned)(v >> shift);
}

/* The largest value that falls in bucket i. */
static uint64_t bucket_top(unsigned i)
{
    if (i < 2 * SUB)
        return i;
    unsigned shift = i / SUB - 1;
    uint64_t low = (uint64_t)(i - shift * SUB) << shift;
    return low + ((uint64_t)1 << shift) - 1;
}

void hist_record(histogram *h, uint64_t v)
{
    h->counts[bucket_of(v)]++;
    h->total++;
    h->sum += v;
}

uint64_t hist_percentile(const histogram *h, double p)
{
    if (!h->total)
        return 0;
    if (p < 0)
        p = 0;
    if (p > 100)
        p = 100;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->total);
    if (rank < 1)
        rank = 1;
    if (rank > h->total)
        rank = h->total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank)
            return bucket_top(i);
    }
    return bucket_top(HIST_BUCKETS - 1); /* not reached: the counts sum to total */
}

uint64_t hist_count_upto(const histogram *h, uint64_t v)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < HIST_BUCKETS && bucket_top(i) <= v; i++)
        n += h->counts[i];
    return n;
}

void hist_count_upto_many(const histogram *h, const uint64_t *bounds, int n, uint64_t *out)
{
    uint64_t seen = 0;
    unsigned i = 0;
    for (int j = 0; j < n; j++) {
        for (; i < HIST_BUCKETS && bucket_top(i) <= bounds[j]; i++)
            seen += h->counts[i];
        out[j] = seen;
    }
}

uint64_t hist_max(const histogram *h)
{
    for (unsigned i = HIST_BUCKETS; i-- > 0;)
        if (h->counts[i])
            return bucket_top(i);
    return 0;
}
