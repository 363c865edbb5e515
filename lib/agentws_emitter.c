/* Emit (any thread) -> publish (loop thread) -> deliver or catch up. */
#include "agentws_emitter.h"

#include <stdio.h>
#include <string.h>

#include "agentws_manager.h"

#define PUMP_BUDGET (16u * 1024)  /* bytes written per writable turn */
#define MERGE_MAX 256             /* thinking deltas merged at most */
#define GC_IDLE_MS (10u * 60000)  /* empty, unwatched streams kept this long */
#define EVPOOL_BYTES (1u << 20) /* free event blocks kept for reuse */

/* ------------------------------------------------------------ emit side */

/* Builds on the calling thread, queues under the lock, wakes the loop. */
static int emit(agentws_manager *m, agentws__emit_args *a) {
  agentws__emitter *e;
  agentws__event *ev;
  int rv;
  if (m == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  e = &m->emitter;
  if (m->cfg->raw_messages)
    return AGENTWS_ERR_INVALID_STATE;
  if (a->target == AGENTWS_TARGET_ROOM && a->target_id != NULL &&
      !agentws__room_valid(a->target_id)) {
    agentws__validate_schema_failure(e);
    agentws__stat_inc_mt(e->stats, AGENTWS_STAT_DROPPED_INVALID);
    return AGENTWS_ERR_INVALID_ARGUMENT;
  }
  a->ts_ms = agentws__wall_ms();
  rv = agentws__event_build_pooled(&e->pool, a, m->cfg->max_event_bytes,
                                   &ev);
  if (rv != 0) {
    if (rv != AGENTWS_ERR_NOMEM)
      agentws__validate_schema_failure(e);
    agentws__stat_inc_mt(e->stats, rv == AGENTWS_ERR_NOMEM
                                       ? AGENTWS_STAT_DROPPED_NOMEM
                                       : AGENTWS_STAT_DROPPED_INVALID);
    return rv;
  }
  ev->emit_ns = uv_hrtime();
  ev->refcnt = 1;
  ev->next = NULL;
  uv_mutex_lock(&e->lock);
  if (e->closed) {
    uv_mutex_unlock(&e->lock);
    agentws__event_free_mt(e->mem, ev);
    agentws__stat_inc_mt(e->stats, AGENTWS_STAT_DROPPED_SHUTDOWN);
    return AGENTWS_ERR_INVALID_STATE;
  }
  if (e->v.enabled) {
    int act = agentws__validate_emit(e, a);
    if (act != AGENTWS__V_DELIVER) {
      if (e->v.r_head != NULL || e->q_head != NULL)
        uv_async_send(e->wake); /* reports, synthesized events */
      uv_mutex_unlock(&e->lock);
      agentws__event_free_mt(e->mem, ev);
      agentws__stat_inc_mt(e->stats, act == AGENTWS_ERR_NOMEM
                                         ? AGENTWS_STAT_DROPPED_NOMEM
                                         : AGENTWS_STAT_DROPPED_VALIDATION);
      return act == AGENTWS__V_REFUSE ? AGENTWS_ERR_VALIDATION
             : act == AGENTWS__V_DROP ? 0
                                      : act;
    }
  }
  if (e->q_tail != NULL)
    e->q_tail->next = ev;
  else
    e->q_head = ev;
  e->q_tail = ev;
  e->q_len++;
  uv_async_send(e->wake);
  uv_mutex_unlock(&e->lock);
  return 0;
}

uint64_t agentws_manager_get_queued_events(agentws_manager *m) {
  uint64_t n;
  if (m == NULL)
    return 0;
  uv_mutex_lock(&m->emitter.lock);
  n = m->emitter.q_len;
  uv_mutex_unlock(&m->emitter.lock);
  return n;
}

#define TARGET_ARGS(a, t, id)                                               \
  memset(&(a), 0, sizeof(a));                                                \
  (a).target = (t);                                                          \
  (a).target_id = (id)

int agentws_emit_agent_started(agentws_manager *m, int target,
                               const char *target_id, const char *run_id,
                               const char *agent, const char *data_json) {
  agentws__emit_args a;
  TARGET_ARGS(a, target, target_id);
  a.type = AGENTWS__EV_AGENT_STARTED;
  a.run_id = run_id;
  a.agent = agent;
  a.data_json = data_json;
  return emit(m, &a);
}

int agentws_emit_agent_thinking(agentws_manager *m, int target,
                                const char *target_id, const char *run_id,
                                const char *text, size_t text_len,
                                const char *data_json) {
  agentws__emit_args a;
  if (text == NULL && text_len > 0) {
    if (m != NULL) {
      agentws__validate_schema_failure(&m->emitter);
      agentws__stat_inc_mt(&m->stats, AGENTWS_STAT_DROPPED_INVALID);
    }
    return AGENTWS_ERR_INVALID_ARGUMENT;
  }
  TARGET_ARGS(a, target, target_id);
  a.type = AGENTWS__EV_AGENT_THINKING;
  a.run_id = run_id;
  a.text = text != NULL ? text : "";
  a.text_len = text_len;
  a.data_json = data_json;
  return emit(m, &a);
}

int agentws_emit_tool_executing(agentws_manager *m, int target,
                                const char *target_id, const char *run_id,
                                const char *tool, const char *tool_call_id,
                                const char *args_json) {
  agentws__emit_args a;
  TARGET_ARGS(a, target, target_id);
  a.type = AGENTWS__EV_TOOL_EXECUTING;
  a.run_id = run_id;
  a.tool = tool;
  a.tool_call_id = tool_call_id;
  a.args_json = args_json;
  return emit(m, &a);
}

int agentws_emit_tool_completed(agentws_manager *m, int target,
                                const char *target_id, const char *run_id,
                                const char *tool, const char *tool_call_id,
                                int ok, int64_t duration_ms,
                                const char *result_json) {
  agentws__emit_args a;
  TARGET_ARGS(a, target, target_id);
  a.type = AGENTWS__EV_TOOL_COMPLETED;
  a.run_id = run_id;
  a.tool = tool;
  a.tool_call_id = tool_call_id;
  a.ok = ok;
  a.duration_ms = duration_ms;
  a.result_json = result_json;
  return emit(m, &a);
}

int agentws_emit_agent_completed(agentws_manager *m, int target,
                                 const char *target_id, const char *run_id,
                                 int64_t duration_ms, const char *result_json,
                                 const char *data_json) {
  agentws__emit_args a;
  TARGET_ARGS(a, target, target_id);
  a.type = AGENTWS__EV_AGENT_COMPLETED;
  a.run_id = run_id;
  a.duration_ms = duration_ms;
  a.result_json = result_json;
  a.data_json = data_json;
  return emit(m, &a);
}

int agentws_emit_agent_error(agentws_manager *m, int target,
                             const char *target_id, const char *run_id,
                             const char *code, const char *message,
                             const char *severity, int retryable,
                             const char *data_json) {
  agentws__emit_args a;
  TARGET_ARGS(a, target, target_id);
  a.type = AGENTWS__EV_AGENT_ERROR;
  a.run_id = run_id;
  a.code = code;
  a.message = message;
  a.severity = severity;
  a.retryable = retryable;
  a.data_json = data_json;
  return emit(m, &a);
}

int agentws_emit_custom(agentws_manager *m, int target, const char *target_id,
                        const char *type, const char *run_id,
                        const char *data_json) {
  agentws__emit_args a;
  TARGET_ARGS(a, target, target_id);
  a.type = AGENTWS__EV_CUSTOM;
  a.custom_type = type;
  a.run_id = run_id;
  a.data_json = data_json;
  return emit(m, &a);
}

/* ----------------------------------------------------- streams and epochs */

static void on_evict(agentws__stream *st, agentws__event *ev, void *ud);

static agentws__stream *stream_new(agentws__emitter *e, void *owner,
                                   int is_room) {
  agentws__stream *st;
  char epoch[32];
  snprintf(epoch, sizeof(epoch), "e-%s.%llx", e->epoch_base,
           (unsigned long long)++e->generation);
  if (agentws__stream_new(e->mem, epoch, &st) != 0)
    return NULL;
  st->on_evict = on_evict;
  st->evict_ud = e;
  st->last_ms = (int64_t)uv_now(e->m->loop); /* idle time counts from now */
  st->owner = owner;
  st->owner_is_room = is_room;
  return st;
}

agentws__stream *agentws__emitter_user_stream(agentws__emitter *e,
                                              agentws__user *u) {
  if (u->stream == NULL)
    u->stream = stream_new(e, u, 0);
  return u->stream;
}

agentws__stream *agentws__emitter_room_stream(agentws__emitter *e,
                                              agentws__room *rm) {
  if (rm->stream == NULL)
    rm->stream = stream_new(e, rm, 1);
  return rm->stream;
}

/* ------------------------------------------------------ latency samples */

void agentws__hist_since(agentws__stats *stats, int hist,
                         const agentws__stream *st, uint64_t from,
                         uint64_t to, uint64_t now_ns) {
  const uint64_t *span[2];
  size_t n[2], i, j;
  agentws__stream_emit_times(st, from, to, &span[0], &n[0], &span[1], &n[1]);
  for (j = 0; j < 2; j++)
    for (i = 0; i < n[j]; i++)
      if (now_ns > span[j][i])
        agentws__hist_add(stats, hist, now_ns - span[j][i]);
}

/* ------------------------------------------------------ overflow queues */

void agentws__evq_free(const agentws__mem *mem, agentws__evq *q) {
  if (q == NULL)
    return;
  while (q->len > 0) {
    agentws__event_unref(mem, q->v[q->head]);
    q->head = (q->head + 1) % q->cap;
    q->len--;
  }
  agentws__mem_free(mem, q->v);
  agentws__mem_free(mem, q);
}

static int evq_push(const agentws__mem *mem, agentws__evq **qp,
                    agentws__event *ev) {
  agentws__evq *q = *qp;
  if (q == NULL) {
    q = *qp = agentws__mem_calloc(mem, 1, sizeof(*q));
    if (q == NULL)
      return AGENTWS_ERR_NOMEM;
  }
  if (q->len == q->cap) {
    size_t ncap = q->cap ? q->cap * 2 : 64, i;
    agentws__event **v = agentws__mem_malloc(mem, ncap * sizeof(*v));
    if (v == NULL)
      return AGENTWS_ERR_NOMEM;
    for (i = 0; i < q->len; i++)
      v[i] = q->v[(q->head + i) % q->cap];
    agentws__mem_free(mem, q->v);
    q->v = v;
    q->cap = ncap;
    q->head = 0;
  }
  q->v[(q->head + q->len) % q->cap] = ev;
  q->len++;
  q->bytes += ev->len;
  ev->refcnt++;
  return 0;
}

/* Drops queued events the reader has been sent (seq <= pos). */
static void evq_trim(const agentws__mem *mem, agentws__evq *q,
                     uint64_t pos) {
  while (q != NULL && q->len > 0 && q->v[q->head]->seq <= pos) {
    agentws__event *ev = q->v[q->head];
    q->bytes -= ev->len;
    q->head = (q->head + 1) % q->cap;
    q->len--;
    agentws__event_unref(mem, ev);
  }
}

/* The event |seq| for a reader: its overflow queue first, then the
 * backlog. */
static agentws__event *reader_get(const agentws__evq *q,
                                  const agentws__stream *st, uint64_t seq) {
  if (q != NULL && q->len > 0) {
    uint64_t first = q->v[q->head]->seq;
    if (seq >= first && seq < first + q->len)
      return q->v[(q->head + (size_t)(seq - first)) % q->cap];
  }
  return agentws__stream_get(st, seq);
}

/* ------------------------------------------------------------- delivery */

/* Output a connection may hold before it reads from the backlog instead. */
static uint64_t soft_limit(const agentws__emitter *e) {
  uint64_t q = e->cfg->max_queued_bytes / 2;
  return q < 16384 ? q : 16384;
}

int agentws__emitter_send_json(agentws__session *s, const char *json,
                               size_t len) {
  int rv = agentws__ws_send(s->conn, 0x1, (const uint8_t *)json, len, 0);
  if (rv == AGENTWS_ERR_QUEUE_FULL)
    agentws__stat_inc(&s->m->stats, AGENTWS_STAT_SLOW_CONSUMER_CLOSES);
  return rv;
}

/* One event to one connection: the event is framed once (the header goes
 * just before its json) and queued on each recipient by reference (the
 * writer copies only past AGENTWS__MAX_SEGS per connection; sharing 200-byte
 * events measured the same as copying them, bench/RESULTS.md). */
static int send_event(agentws__session *s, agentws__event *ev) {
  int rv;
  if (ev->frame_len == 0) {
    uint8_t hdr[AGENTWS__FRAME_ROOM];
    size_t n = agentws__ws_text_header(s->conn->t, (const uint8_t *)ev->json,
                                       ev->len, hdr);
    if (n == 0)
      return agentws__emitter_send_json(s, ev->json, ev->len);
    memcpy(ev->json - n, hdr, n);
    ev->frame_len = (uint8_t)n;
  }
  ev->refcnt++; /* the writer's, until written */
  rv = agentws__ws_send_shared(s->conn,
                               (const uint8_t *)ev->json - ev->frame_len,
                               ev->frame_len + ev->len, ev);
  if (rv == AGENTWS_ERR_QUEUE_FULL)
    agentws__stat_inc(&s->m->stats, AGENTWS_STAT_SLOW_CONSUMER_CLOSES);
  return rv;
}

static void slow_close(agentws__emitter *e, agentws__session *s) {
  agentws__stat_inc(e->stats, AGENTWS_STAT_SLOW_CONSUMER_CLOSES);
  agentws__log(e->m, AGENTWS_LOG_WARN,
               "connection %llu of user %s closed: slow consumer (1013)",
               (unsigned long long)s->conn->id,
               s->user != NULL ? s->user->id : "");
  agentws__writer_discard(s->conn);
  agentws__ws_close(s->conn, AGENTWS_CLOSE_TRY_AGAIN_LATER, "slow consumer",
                    13, 1);
}

/* The backlog is about to drop |ev|: a reader behind it keeps a reference
 * (bounded by max_queued_bytes), so it never misses an event it was owed
 * while it stays within the queue bound. */
static void capture(agentws__emitter *e, agentws__session *s, uint64_t pos,
                    int behind, agentws__evq **q, agentws__event *ev) {
  if (!behind || ev->seq <= pos || s->conn->state != AGENTWS__CONN_WS)
    return;
  if ((*q != NULL ? (*q)->bytes : 0) + ev->len > e->cfg->max_queued_bytes ||
      evq_push(e->mem, q, ev) != 0)
    slow_close(e, s);
}

static void on_evict(agentws__stream *st, agentws__event *ev, void *ud) {
  agentws__emitter *e = ud;
  agentws__list *it;
  if (!st->owner_is_room) {
    agentws__user *u = st->owner;
    for (it = u->sessions.next; it != &u->sessions; it = it->next) {
      agentws__session *s = AGENTWS__CONTAINER_OF(it, agentws__session, unode);
      capture(e, s, s->pos, s->behind, &s->ovf, ev);
    }
  } else {
    agentws__room *rm = st->owner;
    for (it = rm->members.next; it != &rm->members; it = it->next) {
      agentws__member *mb = AGENTWS__CONTAINER_OF(it, agentws__member, rnode);
      capture(e, mb->s, mb->pos, mb->behind, &mb->ovf, ev);
    }
  }
}

/* What a reader at |pos| is owed that it must not fall further behind on:
 * the bytes of events that went live since it connected (from |live_from|)
 * plus those the backlog let go meanwhile (|q|). A replay larger than the
 * queue bound is paced by writability, not held against a reader keeping
 * up with it. */
static uint64_t debt(const agentws__evq *q, const agentws__stream *st,
                     uint64_t pos, uint64_t live_from) {
  uint64_t from = live_from > pos + 1 ? live_from - 1 : pos;
  return (q != NULL ? q->bytes : 0) + agentws__stream_bytes_after(st, from);
}

/* One live event to one connection's position in one stream; |live_from|
 * is the first seq it was sent live (older ones are a replay). */
static void deliver(agentws__emitter *e, agentws__session *s,
                    agentws__stream *st, agentws__evq *q, uint64_t *pos,
                    int *behind, uint64_t live_from, agentws__event *ev) {
  if (s->conn->state != AGENTWS__CONN_WS || !s->welcomed || ev->seq <= *pos)
    return;
  if (*behind) {
    /* A reader that stopped reading never becomes writable again, so the
     * queue bound is enforced here too, as its debt grows. */
    if (agentws__writer_queued(s->conn) > soft_limit(e)) {
      s->lagging = 1;
      if (debt(q, st, *pos, live_from) > e->cfg->max_queued_bytes)
        slow_close(e, s);
    }
    return;
  }
  if (agentws__writer_queued(s->conn) > soft_limit(e)) {
    *behind = 1; /* on_writable reads on from the backlog */
    s->lagging = 1;
    return;
  }
  if (send_event(s, ev) != 0)
    return;
  *pos = ev->seq;
  s->delivered = 1;
  agentws__stat_inc(e->stats, AGENTWS_STAT_EVENTS_DELIVERED);
}

/* Same run and both thinking: may be merged for a lagging connection. */
static int mergeable(const agentws__event *a, const agentws__event *b) {
  return a->type == AGENTWS__EV_AGENT_THINKING &&
         b->type == AGENTWS__EV_AGENT_THINKING && a->run_id != NULL &&
         b->run_id != NULL && strcmp(a->run_id, b->run_id) == 0;
}

/*
 * Catches one stream up from the reader's overflow queue and the backlog,
 * up to the budget. Returns 0, or -1 when the connection was closed (it
 * fell out of the window, or lags live events by more than the queue
 * bound: 1013, it can resume).
 */
int agentws__emitter_catch_up(agentws__emitter *e, agentws__session *s,
                              agentws__stream *st, agentws__evq *q,
                              uint64_t *pos, int *behind, uint64_t live_from,
                              size_t *budget) {
  agentws__event *merge[MERGE_MAX];
  uint64_t owed;
  if (st == NULL) {
    *behind = 0;
    return 0;
  }
  evq_trim(e->mem, q, *pos);
  owed = debt(q, st, *pos, live_from);
  if (reader_get(q, st, *pos + 1) == NULL && *pos < st->seq) {
    slow_close(e, s); /* its next event is gone: resume with a gap */
    return -1;
  }
  if (s->lagging && owed > e->cfg->max_queued_bytes) {
    slow_close(e, s);
    return -1;
  }
  /* Stops at the same output level as live delivery: on_writable brings
   * it back once the socket drained, and the queue bound is never hit. */
  while (*pos < st->seq && *budget > 0 &&
         s->conn->state == AGENTWS__CONN_WS &&
         agentws__writer_queued(s->conn) <= soft_limit(e)) {
    agentws__event *ev = reader_get(q, st, *pos + 1);
    size_t n = 1, i;
    int rv;
    if (ev == NULL) {
      slow_close(e, s);
      return -1;
    }
    merge[0] = ev;
    /* A resume replays events as they were; only a connection that could
     * not keep up with live events gets thinking deltas merged. */
    while (s->lagging && n < MERGE_MAX && *pos + n < st->seq) {
      agentws__event *next = reader_get(q, st, *pos + n + 1);
      if (next == NULL || !mergeable(merge[n - 1], next))
        break;
      merge[n++] = next;
    }
    if (n == 1) {
      rv = send_event(s, ev);
    } else {
      e->scratch.len = 0;
      rv = agentws__event_write_merged(&e->scratch, e->mem, merge, n);
      if (rv == 0)
        rv = agentws__emitter_send_json(s, (const char *)e->scratch.data,
                                        e->scratch.len);
      agentws__stat_add(e->stats, AGENTWS_STAT_EVENTS_COALESCED, n - 1);
    }
    if (rv != 0)
      return -1;
    for (i = 0; i < n; i++)
      *budget = *budget > merge[i]->len ? *budget - merge[i]->len : 0;
    *pos += n;
    s->delivered = 1;
    agentws__stat_inc(e->stats, AGENTWS_STAT_EVENTS_DELIVERED);
    agentws__stat_inc(e->stats, AGENTWS_STAT_EVENTS_REPLAYED);
    evq_trim(e->mem, q, *pos);
  }
  if (*pos >= st->seq)
    *behind = 0;
  return 0;
}

/* Caught up everywhere: live again, and no more merging. */
static void update_lagging(agentws__session *s) {
  agentws__list *it;
  if (s->behind)
    return;
  for (it = s->rooms.next; it != &s->rooms; it = it->next)
    if (AGENTWS__CONTAINER_OF(it, agentws__member, snode)->behind)
      return;
  s->lagging = 0;
}

void agentws__emitter_writable(agentws__emitter *e, agentws__session *s) {
  size_t budget = PUMP_BUDGET;
  agentws__list *it;
  if (!s->welcomed)
    return;
  if (s->behind && s->user != NULL &&
      agentws__emitter_catch_up(e, s, s->user->stream, s->ovf, &s->pos,
                                &s->behind, s->live_from, &budget) != 0)
    return;
  for (it = s->rooms.next; it != &s->rooms && budget > 0;) {
    agentws__member *mb = AGENTWS__CONTAINER_OF(it, agentws__member, snode);
    it = it->next;
    if (mb->behind &&
        agentws__emitter_catch_up(e, s, mb->room->stream, mb->ovf,
                                  &mb->pos, &mb->behind, mb->live_from,
                                  &budget) != 0)
      return;
  }
  update_lagging(s);
}

static void publish(agentws__emitter *e, agentws__event *ev) {
  int64_t now = (int64_t)uv_now(e->m->loop);
  agentws__stream *st = NULL;
  agentws__list *it;
  if (ev->target == AGENTWS_TARGET_USER) {
    agentws__user *u = agentws__registry_user(&e->reg, ev->target_id);
    st = u != NULL ? agentws__emitter_user_stream(e, u) : NULL;
    if (st == NULL) {
      agentws__stat_inc_mt(e->stats, AGENTWS_STAT_DROPPED_NOMEM);
      return;
    }
    agentws__stream_publish(st, e->mem, ev, &e->lim, now);
    agentws__stat_inc(e->stats, AGENTWS_STAT_EMITTED_AGENT_STARTED +
                                    ev->type - AGENTWS__EV_AGENT_STARTED);
    for (it = u->sessions.next; it != &u->sessions; it = it->next) {
      agentws__session *s = AGENTWS__CONTAINER_OF(it, agentws__session, unode);
      deliver(e, s, st, s->ovf, &s->pos, &s->behind, s->live_from, ev);
    }
  } else {
    agentws__room *rm = agentws__registry_room(&e->reg, ev->target_id);
    st = rm != NULL ? agentws__emitter_room_stream(e, rm) : NULL;
    if (st == NULL) {
      agentws__stat_inc_mt(e->stats, AGENTWS_STAT_DROPPED_NOMEM);
      return;
    }
    agentws__stream_publish(st, e->mem, ev, &e->lim, now);
    agentws__stat_inc(e->stats, AGENTWS_STAT_EMITTED_AGENT_STARTED +
                                    ev->type - AGENTWS__EV_AGENT_STARTED);
    for (it = rm->members.next; it != &rm->members; it = it->next) {
      agentws__member *mb = AGENTWS__CONTAINER_OF(it, agentws__member, rnode);
      deliver(e, mb->s, st, mb->ovf, &mb->pos, &mb->behind, mb->live_from,
              ev);
    }
  }
}

void agentws__emitter_drain(agentws__emitter *e) {
  agentws__event *ev;
  uv_mutex_lock(&e->lock);
  ev = e->q_head;
  e->q_head = e->q_tail = NULL;
  e->q_len = 0;
  uv_mutex_unlock(&e->lock);
  while (ev != NULL) {
    agentws__event *next = ev->next;
    publish(e, ev);
    agentws__event_unref(e->mem, ev); /* the backlog holds its own ref */
    ev = next;
  }
  agentws__evpool_flush(&e->pool);
  agentws__validate_report(e);
}

/* ------------------------------------------------------ sweep and setup */

static void sweep_streams(agentws__emitter *e, int64_t now) {
  size_t i;
  for (i = 0; i < e->reg.users.cap; i++) {
    agentws__user *u = e->reg.users.slots[i].value;
    if (e->reg.users.slots[i].key == NULL || u->stream == NULL)
      continue;
    agentws__stream_expire(u->stream, e->mem, &e->lim, now);
  }
  for (i = 0; i < e->reg.rooms.cap; i++) {
    agentws__room *rm = e->reg.rooms.slots[i].value;
    if (e->reg.rooms.slots[i].key == NULL || rm->stream == NULL)
      continue;
    agentws__stream_expire(rm->stream, e->mem, &e->lim, now);
  }
}

/* Forgets users and rooms nobody watches whose history is gone and idle. */
static void collect(agentws__emitter *e, int64_t now) {
  size_t i = 0;
  while (i < e->reg.users.cap) {
    agentws__user *u = e->reg.users.slots[i].value;
    if (e->reg.users.slots[i].key != NULL && u->nsessions == 0 &&
        (u->stream == NULL ||
         (u->stream->count == 0 &&
          (uint64_t)(now - u->stream->last_ms) > GC_IDLE_MS))) {
      agentws__stream_free(e->mem, u->stream);
      u->stream = NULL;
      agentws__registry_user_gc(&e->reg, u);
      continue; /* backward shift moved another entry into slot i */
    }
    i++;
  }
  i = 0;
  while (i < e->reg.rooms.cap) {
    agentws__room *rm = e->reg.rooms.slots[i].value;
    if (e->reg.rooms.slots[i].key != NULL && rm->nmembers == 0 &&
        (rm->stream == NULL ||
         (rm->stream->count == 0 &&
          (uint64_t)(now - rm->stream->last_ms) > GC_IDLE_MS))) {
      agentws__stream_free(e->mem, rm->stream);
      rm->stream = NULL;
      agentws__registry_room_gc(&e->reg, rm);
      continue;
    }
    i++;
  }
}

static void on_sweep(uv_timer_t *h) {
  agentws__emitter *e = h->data;
  int64_t now = (int64_t)uv_now(e->m->loop);
  sweep_streams(e, now);
  collect(e, now);
  agentws__evpool_flush(&e->pool);
  agentws__auth_tick(e->m);
}

int agentws__emitter_init(agentws__emitter *e, agentws_manager *m,
                          uv_loop_t *loop, uv_async_t *wake,
                          const agentws_config *cfg,
                          const agentws__mem *mem) {
  unsigned char rnd[4];
  int rv;
  memset(e, 0, sizeof(*e));
  e->m = m;
  e->mem = mem;
  e->cfg = cfg;
  e->wake = wake;
  e->stats = &m->stats;
  e->lim.max_events = (uint64_t)cfg->backlog_events;
  e->lim.max_bytes = cfg->backlog_bytes;
  e->lim.max_age_ms = (uint64_t)cfg->backlog_age_ms;
  agentws__registry_init(&e->reg, mem);
  /* The epoch must differ across restarts: random, not a counter. */
  if (uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL) != 0) {
    uint64_t t = uv_hrtime();
    memcpy(rnd, &t, sizeof(rnd));
  }
  snprintf(e->epoch_base, sizeof(e->epoch_base), "%02x%02x%02x%02x", rnd[0],
           rnd[1], rnd[2], rnd[3]);
  rv = uv_mutex_init(&e->lock);
  if (rv != 0)
    return rv;
  rv = agentws__evpool_init(&e->pool, mem, EVPOOL_BYTES);
  if (rv != 0) {
    uv_mutex_destroy(&e->lock);
    return rv;
  }
  uv_timer_init(loop, &e->sweep);
  e->sweep.data = e;
  uv_timer_start(&e->sweep, on_sweep, 1000, 1000);
  uv_unref((uv_handle_t *)&e->sweep);
  agentws__validate_init(e, loop);
  return 0;
}

void agentws__emitter_close(agentws__emitter *e, uv_close_cb close_cb) {
  uv_mutex_lock(&e->lock);
  e->closed = 1;
  uv_mutex_unlock(&e->lock);
  agentws__emitter_drain(e);
  agentws__validate_close(e);
  uv_close((uv_handle_t *)&e->sweep, close_cb);
}

static void free_stream(agentws__stream *st, void *ud) {
  agentws__emitter *e = ud;
  agentws__stream_free(e->mem, st);
}

void agentws__emitter_free(agentws__emitter *e) {
  agentws__event *ev = e->q_head;
  while (ev != NULL) {
    agentws__event *next = ev->next;
    agentws__event_free(e->mem, ev);
    ev = next;
  }
  e->q_head = e->q_tail = NULL;
  agentws__registry_free(&e->reg, free_stream, e);
  agentws__buf_free(&e->scratch, e->mem);
  agentws__validator_free(&e->v);
  agentws__evpool_free(&e->pool);
  uv_mutex_destroy(&e->lock);
}
