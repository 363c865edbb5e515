/*
 * Counters and latency histograms of a manager. The loop thread is the
 * only writer of most of them, so an increment is a relaxed load and store
 * (no lock, no locked instruction); the few counted on emitting threads
 * (events refused or dropped there) use an atomic add. Any thread may read
 * them for a snapshot.
 */
#ifndef AGENTWS_STATS_H
#define AGENTWS_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "agentws.h"

#define AGENTWS__NSTATS (AGENTWS_STAT_HTTP_REQUESTS + 1)
#define AGENTWS__NHIST (AGENTWS_HIST_HANDSHAKE + 1)

/* Log buckets, 4 per power of two: bucket 0 holds <= 2^10 ns, bucket
 * 1 + 4 (k - 10) + s holds (2^k + s 2^(k-2), 2^k + (s+1) 2^(k-2)] for
 * k = 10 .. 36, the last one everything above 2^37 ns (137 s). */
#define AGENTWS__HIST_MIN_SHIFT 10
#define AGENTWS__HIST_MAX_SHIFT 36
#define AGENTWS__HIST_BUCKETS                                              \
  (2 + 4 * (AGENTWS__HIST_MAX_SHIFT - AGENTWS__HIST_MIN_SHIFT + 1))

typedef struct agentws__hist {
  _Atomic uint64_t b[AGENTWS__HIST_BUCKETS]; /* samples per bucket */
  _Atomic uint64_t sum_ns;                   /* of every sample */
} agentws__hist;

typedef struct agentws__stats {
  _Atomic uint64_t v[AGENTWS__NSTATS];
  agentws__hist h[AGENTWS__NHIST];
  int hist_on; /* the monitor is on: record latencies */
} agentws__stats;

/* Loop thread only. */
static inline void agentws__stat_add(agentws__stats *s, int i, uint64_t n) {
  atomic_store_explicit(&s->v[i],
                        atomic_load_explicit(&s->v[i], memory_order_relaxed) +
                            n,
                        memory_order_relaxed);
}

static inline void agentws__stat_inc(agentws__stats *s, int i) {
  agentws__stat_add(s, i, 1);
}

/* Loop thread only: a gauge. */
static inline void agentws__stat_set(agentws__stats *s, int i, uint64_t v) {
  atomic_store_explicit(&s->v[i], v, memory_order_relaxed);
}

static inline uint64_t agentws__stat_read(agentws__stats *s, int i) {
  return atomic_load_explicit(&s->v[i], memory_order_relaxed);
}

/* Any thread; only for counters no loop-thread path writes. */
static inline void agentws__stat_inc_mt(agentws__stats *s, int i) {
  atomic_fetch_add_explicit(&s->v[i], 1, memory_order_relaxed);
}

/* The bucket of a sample of |ns| nanoseconds. */
static inline int agentws__hist_bucket(uint64_t ns) {
  uint64_t x;
  int k;
  if (ns <= (1u << AGENTWS__HIST_MIN_SHIFT))
    return 0;
  x = ns - 1;
  k = 63 - __builtin_clzll(x);
  if (k > AGENTWS__HIST_MAX_SHIFT)
    return AGENTWS__HIST_BUCKETS - 1;
  return 1 + 4 * (k - AGENTWS__HIST_MIN_SHIFT) + (int)((x >> (k - 2)) & 3);
}

struct agentws_manager;
/* Every counter of |m| into |v| (AGENTWS__NSTATS), validator ones and
 * derived gauges included. Any thread. */
void agentws__stats_read(struct agentws_manager *m, uint64_t *v);

/* Upper bound of bucket |i| in ns; UINT64_MAX for the last. */
uint64_t agentws__hist_upper(int i);

/* Loop thread only. */
static inline void agentws__hist_add(agentws__stats *s, int h, uint64_t ns) {
  agentws__hist *hi = &s->h[h];
  int b = agentws__hist_bucket(ns);
  atomic_store_explicit(
      &hi->b[b], atomic_load_explicit(&hi->b[b], memory_order_relaxed) + 1,
      memory_order_relaxed);
  atomic_store_explicit(
      &hi->sum_ns,
      atomic_load_explicit(&hi->sum_ns, memory_order_relaxed) + ns,
      memory_order_relaxed);
}

#endif /* AGENTWS_STATS_H */
