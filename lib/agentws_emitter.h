/*
 * Emitter: the typed, thread-safe emit path and delivery. Events are built
 * on the emitting thread (codec), queued (short-lock MPSC), and on the loop
 * thread get their stream's seq, go into its backlog and out to every
 * connection of the target. A connection that cannot keep up stops taking
 * live events and reads from the backlog instead ("behind"), so a stalled
 * client costs no memory beyond the bounded backlog, and its thinking
 * deltas are coalesced. Also the agentws.v1 protocol of a connection:
 * welcome, resume, ack, ping, join/leave.
 */
#ifndef AGENTWS_EMITTER_H
#define AGENTWS_EMITTER_H

#include <stdint.h>
#include <uv.h>

#include "agentws.h"
#include "agentws_codec.h"
#include "agentws_heap.h"
#include "agentws_inbound.h"
#include "agentws_registry.h"
#include "agentws_stats.h"
#include "agentws_stream.h"
#include "agentws_transport.h"
#include "agentws_validator.h"

/* Events a lagging reader still needs after the backlog evicted them:
 * consecutive seqs, bounded by max_queued_bytes (past it: 1013). */
typedef struct agentws__evq {
  agentws__event **v;  /* ring of references */
  size_t head, len, cap;
  uint64_t bytes;      /* total envelope bytes held */
} agentws__evq;

/* The library's state for one connection (transport conn->app). */
typedef struct agentws__session {
  agentws_manager *m;         /* owner */
  agentws__conn *conn;        /* the transport connection */
  agentws__user *user;        /* its user once accepted (protocol mode) */
  agentws__list unode;        /* in user->sessions */
  agentws__list rooms;        /* agentws__member.snode */
  uint64_t pos;               /* user stream: last seq sent here */
  int behind;                 /* user stream: reading from the backlog */
  int lagging;                /* fell behind live events (not a resume):
                                 thinking deltas may be merged */
  agentws__evq *ovf;          /* user stream: evicted but still needed */
  int welcomed;               /* welcome sent: live events may flow */
  int delivered;              /* an event was sent (message resume: late) */
  uint64_t acked;             /* cumulative ack of the user stream */
  uint64_t written;           /* user stream: last seq the kernel took */
  uint64_t live_from;         /* user stream: first seq sent live, not as
                                 a resume replay (latency counts from it) */
  uint64_t mon_pending;       /* monitor: pending bytes at the last scan */
  uint64_t unacked_since;     /* loop ms since written events wait for an
                                 ack with no ack progress; 0: none wait */
  uint8_t mon_flags;          /* AGENTWS__MON_* alerts firing */
  uint8_t acks_seen;          /* the client acks (unacked alert applies) */
  int has_resume;             /* the URL carried epoch and last_seq */
  uint64_t resume_last;       /* ... last_seq */
  char resume_epoch[40];      /* ... epoch */
  agentws__rate rate;         /* client messages */
  agentws__rate errs;         /* bad client messages */
  char remote[64];            /* "ip:port" of the peer */
  int64_t connected_at;       /* Unix ms at the upgrade request */
  struct agentws_request *req; /* awaiting the auth hook's answer */
  int in_hook;                /* inside on_authenticate */
  int decided;                /* the hook answered inside the call */
  int decision;               /* 0 accept, else HTTP status */
  char *decided_user;         /* accepted user id (owned) */
  int64_t token_exp;          /* Unix s the token expires; 0: never */
  int exp_warned;             /* token_expiring sent for token_exp */
  agentws__heap_node expiry;  /* in the manager's token deadline heap */
} agentws__session;

typedef struct agentws__emitter {
  agentws_manager *m;            /* owner */
  const agentws__mem *mem;       /* allocator */
  const agentws_config *cfg;     /* the manager's copy */
  agentws__registry reg;         /* users, rooms */
  agentws__stream_limits lim;    /* backlog bounds */
  char epoch_base[16];           /* random per manager */
  uint64_t generation;           /* streams created, for epochs */
  uv_mutex_t lock;               /* guards the queue and closed */
  agentws__event *q_head, *q_tail; /* emitted, not yet published */
  uint64_t q_len;                /* ... how many (under the lock) */
  int closed;                    /* no more emits accepted */
  uv_async_t *wake;              /* the manager's async handle */
  uv_timer_t sweep;              /* backlog age limit and garbage */
  agentws__stats *stats;         /* the manager's counters */
  agentws__buf scratch;          /* control messages, merged events */
  agentws__evpool pool;          /* event blocks, recycled */
  agentws__validator v;          /* run lifecycles (under lock) */
  uint64_t synthesized;          /* events repairs made (under lock) */
  uv_timer_t vtimer;             /* stall / tool-timeout sweep */
  int vtimer_on;
} agentws__emitter;

int agentws__emitter_init(agentws__emitter *e, agentws_manager *m,
                          uv_loop_t *loop, uv_async_t *wake,
                          const agentws_config *cfg, const agentws__mem *mem);
/* Refuses further emits, publishes what was queued, closes the timer
 * (|close_cb| for uv_close). */
void agentws__emitter_close(agentws__emitter *e, uv_close_cb close_cb);
void agentws__emitter_free(agentws__emitter *e);
/* Loop thread: publishes queued events. */
void agentws__emitter_drain(agentws__emitter *e);

/* Transport events for protocol-mode connections. */
void agentws__emitter_open(agentws__emitter *e, agentws__session *s);
void agentws__emitter_message(agentws__emitter *e, agentws__session *s,
                              int type, const uint8_t *data, size_t len);
void agentws__emitter_writable(agentws__emitter *e, agentws__session *s);
/* Leaves the registry (and rooms); the session is freed by the caller. */
void agentws__emitter_detach(agentws__emitter *e, agentws__session *s);
/* Releases a reader's overflow queue (NULL is fine). */
void agentws__evq_free(const agentws__mem *mem, agentws__evq *q);
/* Registers an accepted session for |user|: 0, or 429 at the limit, or
 * 500 out of memory. */
int agentws__emitter_attach(agentws__emitter *e, agentws__session *s,
                            const char *user);

int agentws__emitter_room_add(agentws__emitter *e, agentws__session *s,
                              const char *room, int reply);
int agentws__emitter_room_remove(agentws__emitter *e, agentws__session *s,
                                 const char *room, int reply);
int agentws__emitter_in_room(agentws__session *s, const char *room);

/* Records now_ns minus the emit time of each held event |from| .. |to|
 * of |st| in histogram |hist| (events no longer held are not sampled). */
void agentws__hist_since(agentws__stats *stats, int hist,
                         const agentws__stream *st, uint64_t from,
                         uint64_t to, uint64_t now_ns);

/* agentws_validate.c */
void agentws__validate_init(agentws__emitter *e, uv_loop_t *loop);
void agentws__validate_close(agentws__emitter *e);
/* With e->lock held: AGENTWS__V_* or AGENTWS_ERR_NOMEM. */
int agentws__validate_emit(agentws__emitter *e, const agentws__emit_args *a);
void agentws__validate_schema_failure(agentws__emitter *e);
/* Loop thread: hands queued violation reports to on_violation. */
void agentws__validate_report(agentws__emitter *e);
/* Thread-safe copies of the validator's counters. */
void agentws__validate_stats(agentws__emitter *e, uint64_t *rules,
                             uint64_t *outcomes, uint64_t *synthesized,
                             uint64_t *live);

#endif /* AGENTWS_EMITTER_H */
