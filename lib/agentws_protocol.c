/*
 * The agentws.v1 protocol of one connection (docs/PROTOCOL.md): welcome
 * and resume, then client messages — resume, ack, ping, join/leave — and
 * everything else to the host.
 */
#include <stdio.h>
#include <string.h>

#include "agentws_emitter.h"
#include "agentws_manager.h"

agentws__stream *agentws__emitter_user_stream(agentws__emitter *e,
                                              agentws__user *u);
agentws__stream *agentws__emitter_room_stream(agentws__emitter *e,
                                              agentws__room *rm);
int agentws__emitter_send_json(agentws__session *s, const char *json,
                               size_t len);
int agentws__emitter_catch_up(agentws__emitter *e, agentws__session *s,
                              agentws__stream *st, agentws__evq *q,
                              uint64_t *pos, int *behind, uint64_t live_from,
                              size_t *budget);

#define ABUSE_BURST 10.0 /* bad messages tolerated in a burst */
#define MAX_ROOMS 64      /* rooms one connection may be in */
#define ABUSE_RATE 1.0   /* ... refilled per second */

/* Sends what a ctl_* writer put into the scratch buffer. */
static int send_scratch(agentws__emitter *e, agentws__session *s, int rv) {
  if (rv != 0) { /* out of memory writing it: as if sending failed */
    agentws__ws_close(s->conn, AGENTWS_CLOSE_INTERNAL_ERROR, "out of memory",
                      13, 1);
    return rv;
  }
  return agentws__emitter_send_json(s, (const char *)e->scratch.data,
                                    e->scratch.len);
}

static void send_error(agentws__emitter *e, agentws__session *s,
                       const char *code, const char *message) {
  uint64_t now = uv_now(e->m->loop);
  agentws__stat_inc(&e->m->stats, AGENTWS_STAT_CLIENT_MESSAGES_REFUSED);
  e->scratch.len = 0;
  send_scratch(e, s, agentws__ctl_error(&e->scratch, e->mem, code, message));
  agentws__log(e->m, AGENTWS_LOG_DEBUG,
               "connection %llu: client message refused: %s",
               (unsigned long long)s->conn->id, code);
  if (!agentws__rate_take(&s->errs, now, ABUSE_RATE, ABUSE_BURST)) {
    agentws__log(e->m, AGENTWS_LOG_WARN,
                 "connection %llu of user %s closed: too many bad messages "
                 "(1008)",
                 (unsigned long long)s->conn->id,
                 s->user != NULL ? s->user->id : "");
    agentws__ws_close(s->conn, AGENTWS_CLOSE_POLICY_VIOLATION,
                      "too many bad messages", 21, 1);
  }
}

/* ------------------------------------------------------------ resume */

/* Where a resume starts and what it says (DESIGN §7, PROTOCOL.md). */
typedef struct plan {
  uint64_t start;    /* last seq the client has: replay from start + 1 */
  int recovered;     /* nothing missed and the history is the same */
  uint64_t missed;   /* events gone before the client could get them */
  uint64_t gap_from; /* gap to announce, if gap_to >= gap_from > 0 */
  uint64_t gap_to;
} plan;

static void make_plan(const agentws__stream *st, const char *epoch,
                      uint64_t last, plan *p) {
  uint64_t first = agentws__stream_first(st);
  memset(p, 0, sizeof(*p));
  if (epoch == NULL || strcmp(epoch, st->epoch) != 0) {
    p->start = first - 1; /* other history: all that is held */
    p->recovered = 0;
    if (first > 1) {
      p->gap_from = 1;
      p->gap_to = first - 1;
      p->missed = first - 1;
    }
  } else if (last > st->seq) {
    p->start = st->seq; /* claims more than exists: live edge */
  } else if (last + 1 >= first) {
    p->start = last;
    p->recovered = 1;
  } else {
    p->start = first - 1;
    p->gap_from = last + 1;
    p->gap_to = first - 1;
    p->missed = first - 1 - last;
  }
}

/* Gap message, host snapshot hook, then catch-up from the backlog. */
static void run_plan(agentws__emitter *e, agentws__session *s,
                     agentws__stream *st, const char *stream_name,
                     const plan *p, agentws__evq **q, uint64_t *pos,
                     int *behind, uint64_t *written, uint64_t *live_from) {
  agentws_manager *m = e->m;
  size_t budget = 64u * 1024;
  if (p->gap_to >= p->gap_from && p->gap_from > 0) {
    agentws__stat_add(e->stats, AGENTWS_STAT_DROPPED_MISSED,
                      p->gap_to - p->gap_from + 1);
    e->scratch.len = 0;
    if (send_scratch(e, s, agentws__ctl_gap(&e->scratch, e->mem, stream_name,
                                            p->gap_from, p->gap_to)) != 0)
      return;
    if (m->cbs.on_gap != NULL)
      m->cbs.on_gap(m, s->conn->id, stream_name ? stream_name : "",
                    p->gap_from, p->gap_to, m->user_data);
    if (s->conn->state != AGENTWS__CONN_WS)
      return;
  }
  *pos = p->start;
  *written = p->start; /* counts from here */
  *live_from = st->seq + 1; /* older ones are a replay */
  *behind = *pos < st->seq;
  agentws__evq_free(e->mem, *q); /* a resume starts from the backlog */
  *q = NULL;
  if (*behind)
    agentws__emitter_catch_up(e, s, st, NULL, pos, behind, *live_from,
                              &budget);
}

void agentws__emitter_open(agentws__emitter *e, agentws__session *s) {
  agentws__stream *st = agentws__emitter_user_stream(e, s->user);
  char session[32];
  plan p;
  if (st == NULL) {
    agentws__ws_close(s->conn, AGENTWS_CLOSE_INTERNAL_ERROR, "out of memory",
                      13, 1);
    return;
  }
  memset(&p, 0, sizeof(p));
  p.start = st->seq;
  p.recovered = 1;
  if (s->has_resume)
    make_plan(st, s->resume_epoch, s->resume_last, &p);
  snprintf(session, sizeof(session), "s-%llx",
           (unsigned long long)s->conn->id);
  e->scratch.len = 0;
  if (send_scratch(e, s, agentws__ctl_welcome(&e->scratch, e->mem, session,
                                              s->user->id, st->epoch, st->seq,
                                              p.recovered, p.missed)) != 0)
    return;
  s->welcomed = 1;
  run_plan(e, s, st, NULL, &p, &s->ovf, &s->pos, &s->behind, &s->written,
           &s->live_from);
}

static void on_resume(agentws__emitter *e, agentws__session *s,
                      const agentws__inbound *in) {
  agentws__stream *st = s->user->stream;
  plan p;
  if (s->delivered) {
    send_error(e, s, "resume_too_late",
               "events were already delivered on this connection; "
               "reconnect with ?epoch=&last_seq= instead");
    return;
  }
  make_plan(st, in->epoch, in->last_seq, &p);
  e->scratch.len = 0;
  if (send_scratch(e, s, agentws__ctl_resumed(&e->scratch, e->mem, NULL,
                                              st->epoch, st->seq, p.recovered,
                                              p.missed)) != 0)
    return;
  run_plan(e, s, st, NULL, &p, &s->ovf, &s->pos, &s->behind, &s->written,
           &s->live_from);
}

/* ------------------------------------------------------------- rooms */

static agentws__member *find_member(agentws__session *s, const char *room) {
  agentws__list *it;
  for (it = s->rooms.next; it != &s->rooms; it = it->next) {
    agentws__member *mb = AGENTWS__CONTAINER_OF(it, agentws__member, snode);
    if (strcmp(mb->room->id, room) == 0)
      return mb;
  }
  return NULL;
}

int agentws__emitter_in_room(agentws__session *s, const char *room) {
  return find_member(s, room) != NULL;
}

static size_t room_count(agentws__session *s) {
  agentws__list *it;
  size_t n = 0;
  for (it = s->rooms.next; it != &s->rooms; it = it->next)
    n++;
  return n;
}

static void member_free(agentws__emitter *e, agentws__member *mb) {
  agentws__room *rm = mb->room;
  agentws__evq_free(e->mem, mb->ovf);
  agentws__list_remove(&mb->rnode);
  agentws__list_remove(&mb->snode);
  rm->nmembers--;
  agentws__mem_free(e->mem, mb);
}

/* Adds |s| to |room|; |in| (a join message) may ask for a resume. */
static int join(agentws__emitter *e, agentws__session *s, const char *room,
                const agentws__inbound *in, int reply) {
  agentws__room *rm;
  agentws__stream *st;
  agentws__member *mb;
  plan p;
  if (!agentws__room_valid(room))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (find_member(s, room) != NULL)
    return 0;
  if (room_count(s) >= MAX_ROOMS)
    return AGENTWS_ERR_LIMIT;
  rm = agentws__registry_room(&e->reg, room);
  st = rm != NULL ? agentws__emitter_room_stream(e, rm) : NULL;
  mb = st != NULL ? agentws__mem_calloc(e->mem, 1, sizeof(*mb)) : NULL;
  if (mb == NULL)
    return AGENTWS_ERR_NOMEM;
  mb->room = rm;
  mb->s = s;
  mb->pos = mb->written = st->seq;
  mb->live_from = st->seq + 1;
  agentws__list_push_back(&rm->members, &mb->rnode);
  agentws__list_push_back(&s->rooms, &mb->snode);
  rm->nmembers++;
  if (!reply)
    return 0;
  e->scratch.len = 0;
  if (send_scratch(e, s, agentws__ctl_room(&e->scratch, e->mem, "joined",
                                           room, st->epoch, st->seq)) != 0)
    return 0;
  if (in != NULL && in->has_last_seq) {
    make_plan(st, in->epoch != NULL ? in->epoch : st->epoch, in->last_seq,
              &p);
    e->scratch.len = 0;
    if (send_scratch(e, s,
                     agentws__ctl_resumed(&e->scratch, e->mem,
                                          rm->stream_name, st->epoch, st->seq,
                                          p.recovered, p.missed)) != 0)
      return 0;
    run_plan(e, s, st, rm->stream_name, &p, &mb->ovf, &mb->pos,
             &mb->behind, &mb->written, &mb->live_from);
  }
  return 0;
}

int agentws__emitter_room_add(agentws__emitter *e, agentws__session *s,
                              const char *room, int reply) {
  return join(e, s, room, NULL, reply);
}

int agentws__emitter_room_remove(agentws__emitter *e, agentws__session *s,
                                 const char *room, int reply) {
  agentws__member *mb = find_member(s, room);
  agentws__room *rm;
  if (mb == NULL)
    return AGENTWS_ERR_NOT_FOUND;
  rm = mb->room;
  member_free(e, mb);
  if (reply && rm->stream != NULL) {
    e->scratch.len = 0;
    send_scratch(e, s, agentws__ctl_room(&e->scratch, e->mem, "left", room,
                                         rm->stream->epoch, rm->stream->seq));
  }
  return 0;
}

static void on_join(agentws__emitter *e, agentws__session *s,
                    const agentws__inbound *in) {
  agentws_manager *m = e->m;
  int rv;
  if (find_member(s, in->room) != NULL) {
    send_error(e, s, "already_member", "this connection is in that room");
    return;
  }
  if (room_count(s) >= MAX_ROOMS) {
    send_error(e, s, "too_many_rooms", "a connection is in at most 64 rooms");
    return;
  }
  /* Rooms are the host's to grant: without a hook, none. */
  if (m->cbs.on_join == NULL ||
      m->cbs.on_join(m, s->conn->id, s->user->id, in->room, m->user_data) !=
          0) {
    if (s->conn->state == AGENTWS__CONN_WS)
      send_error(e, s, "join_denied", "not allowed to join that room");
    return;
  }
  if (s->conn->state != AGENTWS__CONN_WS)
    return;
  rv = join(e, s, in->room, in, 1);
  if (rv != 0)
    send_error(e, s, "internal", "could not join the room");
}

/* ------------------------------------------------------------ messages */

/* A cumulative ack moved from s->acked to |seq|: counted, emit-to-ack
 * latency of live events recorded, the unacked clock restarted. */
static void acked(agentws__emitter *e, agentws__session *s, uint64_t seq) {
  agentws__stream *st = s->user->stream;
  agentws__stat_add(e->stats, AGENTWS_STAT_EVENTS_ACKED, seq - s->acked);
  if (e->stats->hist_on && st != NULL)
    agentws__hist_since(e->stats, AGENTWS_HIST_EMIT_TO_ACK, st,
                        s->acked + 1 > s->live_from ? s->acked + 1
                                                    : s->live_from,
                        seq, uv_hrtime());
  s->acked = seq;
  s->acks_seen = 1;
  s->unacked_since = s->acked < s->pos ? uv_now(e->m->loop) : 0;
}

static void on_ack(agentws__emitter *e, agentws__session *s,
                   const agentws__inbound *in) {
  if (in->stream == NULL) {
    if (in->seq > s->pos) {
      send_error(e, s, "bad_field", "ack seq beyond what was sent");
      return;
    }
    if (in->seq > s->acked) {
      acked(e, s, in->seq);
    }
    return;
  }
  if (find_member(s, in->stream + 5) == NULL)
    send_error(e, s, "not_member", "ack for a room this connection is not in");
}

void agentws__emitter_message(agentws__emitter *e, agentws__session *s,
                              int type, const uint8_t *data, size_t len) {
  agentws_manager *m = e->m;
  agentws__inbound in;
  uint64_t now = uv_now(m->loop);
  double rate = (double)m->cfg->client_rate;
  if (!agentws__rate_take(&s->rate, now, rate, 2 * rate)) {
    send_error(e, s, "rate_limited", "too many messages per second");
    return;
  }
  if (type != AGENTWS_MSG_TEXT) {
    send_error(e, s, "bad_message", "binary messages are not part of the "
                                    "protocol");
    return;
  }
  agentws__inbound_parse((const char *)data, len,
                         (size_t)m->cfg->max_client_message, &in);
  switch (in.kind) {
  case AGENTWS__IN_ERROR:
    send_error(e, s, in.error_code, in.error_message);
    break;
  case AGENTWS__IN_RESUME:
    on_resume(e, s, &in);
    break;
  case AGENTWS__IN_ACK:
    on_ack(e, s, &in);
    break;
  case AGENTWS__IN_PING:
    e->scratch.len = 0;
    send_scratch(e, s, agentws__ctl_pong(&e->scratch, e->mem));
    break;
  case AGENTWS__IN_JOIN:
    on_join(e, s, &in);
    break;
  case AGENTWS__IN_LEAVE:
    if (agentws__emitter_room_remove(e, s, in.room, 1) != 0)
      send_error(e, s, "not_member", "this connection is not in that room");
    break;
  case AGENTWS__IN_REFRESH: {
    const char *why = "";
    int r = agentws__auth_refresh(m, s, in.token, strlen(in.token), &why);
    if (r != 0)
      send_error(e, s, r == -1 ? "bad_message" : "refresh_failed", why);
    break;
  }
  default:
    if (m->cbs.on_client_message != NULL) {
      /* The frame's bytes (often wslay's own buffer) end without a NUL;
       * the host is promised a C string. */
      char *json = agentws__mem_strndup(e->mem, (const char *)data, len);
      if (json == NULL) {
        agentws__ws_close(s->conn, AGENTWS_CLOSE_INTERNAL_ERROR,
                          "out of memory", 13, 1);
        break;
      }
      m->cbs.on_client_message(m, s->conn->id, s->user->id, in.type, json,
                               len, m->user_data);
      agentws__mem_free(e->mem, json);
    }
    break;
  }
  agentws__inbound_free(&in);
}

/* ------------------------------------------------------ attach, detach */

int agentws__emitter_attach(agentws__emitter *e, agentws__session *s,
                            const char *user) {
  agentws__user *u = agentws__registry_user(&e->reg, user);
  if (u == NULL)
    return 500;
  if (u->nsessions >= (size_t)e->cfg->max_conns_per_user) {
    agentws__registry_user_gc(&e->reg, u);
    return 429;
  }
  s->user = u;
  agentws__list_push_back(&u->sessions, &s->unode);
  u->nsessions++;
  return 0;
}

void agentws__emitter_detach(agentws__emitter *e, agentws__session *s) {
  while (!agentws__list_empty(&s->rooms)) {
    agentws__member *mb =
        AGENTWS__CONTAINER_OF(s->rooms.next, agentws__member, snode);
    agentws__room *rm = mb->room;
    member_free(e, mb);
    agentws__registry_room_gc(&e->reg, rm);
  }
  agentws__evq_free(e->mem, s->ovf);
  s->ovf = NULL;
  if (s->user != NULL) {
    agentws__list_remove(&s->unode);
    s->user->nsessions--;
    agentws__registry_user_gc(&e->reg, s->user);
    s->user = NULL;
  }
}
