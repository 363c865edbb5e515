#include "agentws_stream.h"

#include <string.h>

#include "agentws.h"

void agentws__event_unref(const agentws__mem *mem, agentws__event *ev) {
  if (--ev->refcnt == 0)
    agentws__event_free(mem, ev);
}

int agentws__stream_new(const agentws__mem *mem, const char *epoch,
                        agentws__stream **out) {
  agentws__stream *st = agentws__mem_calloc(mem, 1, sizeof(*st));
  if (st == NULL)
    return AGENTWS_ERR_NOMEM;
  strncpy(st->epoch, epoch, sizeof(st->epoch) - 1);
  *out = st;
  return 0;
}

static void drop_oldest(agentws__stream *st, const agentws__mem *mem) {
  agentws__event *ev = st->ring[st->head];
  if (st->on_evict != NULL)
    st->on_evict(st, ev, st->evict_ud);
  st->bytes -= ev->len;
  st->ring[st->head] = NULL;
  st->head = (st->head + 1) % st->cap;
  st->count--;
  agentws__event_unref(mem, ev);
}

void agentws__stream_free(const agentws__mem *mem, agentws__stream *st) {
  if (st == NULL)
    return;
  st->on_evict = NULL; /* nobody reads a stream being freed */
  while (st->count > 0)
    drop_oldest(st, mem);
  agentws__mem_free(mem, st->ring);
  agentws__mem_free(mem, st->cum);
  agentws__mem_free(mem, st->at_ms);
  agentws__mem_free(mem, st->emit_ns);
  agentws__mem_free(mem, st);
}

/* Grows the ring by doubling, up to the event limit; unrolls it so the
 * oldest is at index 0. */
static int grow(agentws__stream *st, const agentws__mem *mem, uint64_t max) {
  size_t ncap = st->cap ? st->cap * 2 : 16, i;
  agentws__event **r;
  uint64_t *cum, *ens;
  int64_t *at;
  if (ncap > max)
    ncap = (size_t)max;
  r = agentws__mem_malloc(mem, ncap * sizeof(*r));
  cum = agentws__mem_malloc(mem, ncap * sizeof(*cum));
  at = agentws__mem_malloc(mem, ncap * sizeof(*at));
  ens = agentws__mem_malloc(mem, ncap * sizeof(*ens));
  if (r == NULL || cum == NULL || at == NULL || ens == NULL) {
    agentws__mem_free(mem, r);
    agentws__mem_free(mem, cum);
    agentws__mem_free(mem, at);
    agentws__mem_free(mem, ens);
    return AGENTWS_ERR_NOMEM;
  }
  for (i = 0; i < st->count; i++) {
    size_t k = (st->head + i) % st->cap;
    r[i] = st->ring[k];
    cum[i] = st->cum[k];
    at[i] = st->at_ms[k];
    ens[i] = st->emit_ns[k];
  }
  agentws__mem_free(mem, st->ring);
  agentws__mem_free(mem, st->cum);
  agentws__mem_free(mem, st->at_ms);
  agentws__mem_free(mem, st->emit_ns);
  st->ring = r;
  st->cum = cum;
  st->at_ms = at;
  st->emit_ns = ens;
  st->cap = ncap;
  st->head = 0;
  return 0;
}

void agentws__stream_expire(agentws__stream *st, const agentws__mem *mem,
                            const agentws__stream_limits *lim, int64_t now) {
  if (lim->max_age_ms == 0)
    return;
  while (st->count > 0 &&
         (uint64_t)(now - st->at_ms[st->head]) > lim->max_age_ms)
    drop_oldest(st, mem);
}

int agentws__stream_publish(agentws__stream *st, const agentws__mem *mem,
                            agentws__event *ev,
                            const agentws__stream_limits *lim, int64_t now) {
  size_t k;
  agentws__event_finalize(ev, ++st->seq);
  st->total += ev->len;
  st->last_ms = now;
  if (lim->max_events == 0 || ev->len > lim->max_bytes) {
    while (st->count > 0)
      drop_oldest(st, mem); /* keeps "held" consecutive: none, then new */
    return 0;
  }
  while (st->count > 0 &&
         (st->count >= lim->max_events || st->bytes + ev->len > lim->max_bytes))
    drop_oldest(st, mem);
  agentws__stream_expire(st, mem, lim, now);
  if (st->count == st->cap && grow(st, mem, lim->max_events) != 0)
    return AGENTWS_ERR_NOMEM;
  k = (st->head + st->count) % st->cap;
  ev->refcnt++;
  st->ring[k] = ev;
  st->cum[k] = st->total;
  st->at_ms[k] = now;
  st->emit_ns[k] = ev->emit_ns;
  st->count++;
  st->bytes += ev->len;
  return 0;
}

uint64_t agentws__stream_first(const agentws__stream *st) {
  return st->count > 0 ? st->seq - st->count + 1 : st->seq + 1;
}

agentws__event *agentws__stream_get(const agentws__stream *st, uint64_t seq) {
  uint64_t first = agentws__stream_first(st);
  if (seq < first || seq > st->seq)
    return NULL;
  return st->ring[(st->head + (size_t)(seq - first)) % st->cap];
}

uint64_t agentws__stream_bytes_after(const agentws__stream *st,
                                     uint64_t after) {
  uint64_t first = agentws__stream_first(st);
  size_t k;
  if (st->count == 0 || after >= st->seq)
    return 0;
  if (after < first)
    return st->bytes;
  k = (st->head + (size_t)(after - first)) % st->cap;
  return st->total - st->cum[k];
}

void agentws__stream_emit_times(const agentws__stream *st, uint64_t from,
                                uint64_t to, const uint64_t **a, size_t *na,
                                const uint64_t **b, size_t *nb) {
  uint64_t first = agentws__stream_first(st);
  size_t k, n;
  *a = *b = NULL;
  *na = *nb = 0;
  if (from < first)
    from = first;
  if (to > st->seq)
    to = st->seq;
  if (st->count == 0 || from > to)
    return;
  k = (st->head + (size_t)(from - first)) % st->cap;
  n = (size_t)(to - from + 1);
  *a = st->emit_ns + k;
  *na = n <= st->cap - k ? n : st->cap - k;
  if (*na < n) {
    *b = st->emit_ns;
    *nb = n - *na;
  }
}
