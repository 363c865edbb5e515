/*
 * A log-linear latency histogram: exact below 128, then 128 sub-buckets
 * per power of two, so any reported percentile is within 0.8% of the
 * true value while recording stays O(1) and allocation-free.
 */
#ifndef AGENTWS_BENCH_LOAD_HIST_H
#define AGENTWS_BENCH_LOAD_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_SUB + (64 - HIST_SUB_BITS) * HIST_SUB)

struct hist {
  uint64_t count;              /* values recorded */
  uint64_t min;                /* smallest value (valid when count > 0) */
  uint64_t max;                /* largest value */
  uint64_t b[HIST_BUCKETS];    /* per-bucket counts */
};

void hist_reset(struct hist *h);
void hist_add(struct hist *h, uint64_t v);
/* Value at quantile q in [0,1]; 0 when empty. Bucket midpoint, capped at max. */
uint64_t hist_quantile(const struct hist *h, double q);

#endif /* AGENTWS_BENCH_LOAD_HIST_H */
