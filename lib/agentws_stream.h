/*
 * A stream: one user's or one room's sequence of events. Owns the seq
 * counter, the epoch that names this history, and the bounded backlog
 * (count, bytes, age) from which reconnecting or lagging connections read.
 * Loop thread only. Seqs are consecutive, so lookup is an index.
 */
#ifndef AGENTWS_STREAM_H
#define AGENTWS_STREAM_H

#include <stdint.h>

#include "agentws_codec.h"
#include "agentws_mem.h"

typedef struct agentws__stream_limits {
  uint64_t max_events; /* 0: keep none */
  uint64_t max_bytes;
  uint64_t max_age_ms; /* 0: no age limit */
} agentws__stream_limits;

typedef struct agentws__stream agentws__stream;
/* Called for each event leaving the backlog, before it is released. */
typedef void (*agentws__evict_cb)(agentws__stream *st, agentws__event *ev,
                                  void *ud);

struct agentws__stream {
  char epoch[32];          /* names this history; new stream, new epoch */
  agentws__evict_cb on_evict; /* lets lagging readers keep what they need */
  void *evict_ud;
  void *owner;             /* the user or room this stream belongs to */
  int owner_is_room;       /* which of the two */
  uint64_t seq;            /* last seq assigned (0: none yet) */
  agentws__event **ring;   /* held events, oldest at ring[head] */
  uint64_t *cum;           /* bytes appended up to and including slot */
  int64_t *at_ms;          /* loop time each held event was appended */
  uint64_t *emit_ns;       /* each held event's emit time (hrtime), read
                              in order by the latency histograms without
                              touching the events themselves */
  size_t cap, head, count; /* ring geometry */
  uint64_t bytes;          /* bytes held */
  uint64_t total;          /* bytes ever appended (cum of the newest) */
  int64_t last_ms;         /* loop time of the last publish */
};

int agentws__stream_new(const agentws__mem *mem, const char *epoch,
                        agentws__stream **out);
void agentws__stream_free(const agentws__mem *mem, agentws__stream *st);

/* Assigns the next seq to |ev| (finalizing it) and holds a reference in
 * the backlog, evicting the oldest past the limits. Returns 0 or NOMEM
 * (then |ev| got its seq but is not held). */
int agentws__stream_publish(agentws__stream *st, const agentws__mem *mem,
                            agentws__event *ev,
                            const agentws__stream_limits *lim, int64_t now);
/* Drops events older than the age limit. */
void agentws__stream_expire(agentws__stream *st, const agentws__mem *mem,
                            const agentws__stream_limits *lim, int64_t now);

/* Oldest held seq, or seq + 1 when nothing is held. */
uint64_t agentws__stream_first(const agentws__stream *st);
/* The held event with |seq|, or NULL. */
agentws__event *agentws__stream_get(const agentws__stream *st, uint64_t seq);
/* Bytes of held events with seq > |after| (after >= first - 1). */
uint64_t agentws__stream_bytes_after(const agentws__stream *st,
                                     uint64_t after);

/* The emit times of the held events |from| .. |to| (clamped to what is
 * held) as up to two contiguous spans (the ring may wrap): |*a| of |*na|
 * and |*b| of |*nb| entries, in seq order. */
void agentws__stream_emit_times(const agentws__stream *st, uint64_t from,
                                uint64_t to, const uint64_t **a, size_t *na,
                                const uint64_t **b, size_t *nb);

void agentws__event_unref(const agentws__mem *mem, agentws__event *ev);

#endif /* AGENTWS_STREAM_H */
