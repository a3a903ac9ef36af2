/* histogram.h: a latency histogram with two significant digits, for per-command latency
 * percentiles (INFO latencystats, LATENCY HISTOGRAM).
 *
 * Values are non-negative integers (microseconds here) from 0 to HIST_MAX (2^32 - 1, about
 * 71 minutes); larger values are counted as HIST_MAX. Below 256 every value has its own
 * bucket; above, each power-of-two range [2^k, 2^(k+1)) is cut into 128 equal buckets, so a
 * bucket is never wider than 1/128 of the values in it: any percentile read back is at
 * least the true sample and less than 0.8% above it (HdrHistogram's layout, simplified).
 *
 * Recording is a few integer instructions and one increment; the counts array is 26 KiB,
 * so callers allocate a histogram only for what they actually measure.
 *
 * Threading: none; the owner serializes access. */
#ifndef QUIVER_HISTOGRAM_H
#define QUIVER_HISTOGRAM_H

#include <stdint.h>

#define HIST_MAX UINT32_MAX
#define HIST_SUB_BITS 7                                         /* 128 buckets per octave */
#define HIST_BUCKETS ((32 - HIST_SUB_BITS + 1) << HIST_SUB_BITS) /* 3328 */

typedef struct histogram {
    uint64_t total;
    uint64_t sum; /* of the recorded values (as given, before HIST_MAX): a Prometheus _sum */
    uint64_t counts[HIST_BUCKETS];
} histogram;

/* Counts one sample of value v. */
void hist_record(histogram *h, uint64_t v);
/* The value at percentile p (0..100) of what was recorded: the upper end of the bucket that
 * holds the sample of rank ceil(p% of total) (at least rank 1). 0 when nothing was recorded. */
uint64_t hist_percentile(const histogram *h, double p);
/* How many recorded samples are <= v, counting whole buckets (a bucket is counted when its
 * upper end is <= v). */
uint64_t hist_count_upto(const histogram *h, uint64_t v);
/* hist_count_upto() at each of n non-decreasing bounds, in one walk over the buckets. */
void hist_count_upto_many(const histogram *h, const uint64_t *bounds, int n, uint64_t *out);
/* The largest recorded value, as the upper end of its bucket; 0 when empty. */
uint64_t hist_max(const histogram *h);

#endif
