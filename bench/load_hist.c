/* Log-linear histogram; see load_hist.h. */
#include "load_hist.h"

#include <math.h>
#include <string.h>

void hist_reset(struct hist *h) { memset(h, 0, sizeof(*h)); }

static unsigned bucket_of(uint64_t v) {
  unsigned e;
  if (v < HIST_SUB) {
    return (unsigned)v;
  }
  e = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS */
  return HIST_SUB + (e - HIST_SUB_BITS) * HIST_SUB +
         (unsigned)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* Midpoint of bucket i. */
static uint64_t bucket_mid(unsigned i) {
  unsigned k, sub;
  uint64_t low, width;
  if (i < HIST_SUB) {
    return i;
  }
  k = (i - HIST_SUB) / HIST_SUB;
  sub = (i - HIST_SUB) % HIST_SUB;
  width = (uint64_t)1 << k;
  low = (uint64_t)(HIST_SUB + sub) << k;
  return low + width / 2;
}

void hist_add(struct hist *h, uint64_t v) {
  if (h->count == 0 || v < h->min) {
    h->min = v;
  }
  if (v > h->max) {
    h->max = v;
  }
  h->count++;
  h->b[bucket_of(v)]++;
}

uint64_t hist_quantile(const struct hist *h, double q) {
  uint64_t rank, seen = 0;
  unsigned i;
  if (h->count == 0) {
    return 0;
  }
  if (q <= 0) {
    return h->min;
  }
  rank = (uint64_t)ceil(q * (double)h->count);
  if (rank < 1) {
    rank = 1;
  }
  for (i = 0; i < HIST_BUCKETS; i++) {
    seen += h->b[i];
    if (seen >= rank) {
      uint64_t mid = bucket_mid(i);
      if (mid > h->max) {
        mid = h->max;
      }
      if (mid < h->min) {
        mid = h->min;
      }
      return mid;
    }
  }
  return h->max;
}
