/*
 * Counters of a manager. The loop thread is their only writer, so an
 * increment is a relaxed load and store (no lock, no locked instruction);
 * any thread may read them for a snapshot.
 */
#ifndef AGENTWS_STATS_H
#define AGENTWS_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "agentws.h"

#define AGENTWS__NSTATS (AGENTWS_STAT_CLIENT_MESSAGES_REFUSED + 1)

typedef struct agentws__stats {
  _Atomic uint64_t v[AGENTWS__NSTATS];
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

#endif /* AGENTWS_STATS_H */
