/*
 * Transport: sockets, the HTTP handshake, WebSocket framing (wslay), write
 * coalescing and timers. It knows nothing about agents; it reports what
 * happens on a connection through hooks the manager installs.
 *
 * Files: agentws_transport.c (listen/accept/adopt/lifecycle),
 * agentws_upgrade.c (HTTP phase), agentws_ws.c (wslay glue),
 * agentws_writer.c (output), agentws_timers.c (deadlines).
 */
#ifndef AGENTWS_TRANSPORT_H
#define AGENTWS_TRANSPORT_H

#include <stdint.h>
#include <uv.h>

#include "agentws.h"
#include "agentws_buf.h"
#include "agentws_config.h"
#include "agentws_http.h"
#include "agentws_idmap.h"
#include "agentws_list.h"
#include "agentws_mem.h"
#include "agentws_stats.h"

typedef struct agentws__transport agentws__transport;
typedef struct agentws__conn agentws__conn;
typedef struct agentws__ws_slot agentws__ws_slot;

/* What the transport reports upward; every hook runs on the loop thread. */
/* on_request's answer when the decision comes later. */
#define AGENTWS__PENDING (-1)

typedef struct agentws__transport_hooks {
  /* A valid upgrade request: 0 accepts now, an HTTP status (with a static
   * |*reason|) refuses, AGENTWS__PENDING waits for agentws__upgrade_accept()
   * or agentws__upgrade_refuse() (or the auth timeout: 503). */
  int (*on_request)(agentws__conn *c, const agentws__http_request *req,
                    const char **reason, void *ud);
  void (*on_open)(agentws__conn *c, void *ud);
  int (*on_message)(agentws__conn *c, int type, const uint8_t *data,
                    size_t len, void *ud);
  /* Every conn that got past on_request (opened or not) ends here. */
  void (*on_close)(agentws__conn *c, int code, const char *reason,
                   size_t reason_len, void *ud);
  /* All queued output was written: the emitter may send more. */
  void (*on_writable)(agentws__conn *c, void *ud);
  void (*on_closed)(agentws__transport *t, void *ud); /* all handles gone */
  /* A PENDING answer did not come within auth_timeout (then: 503). */
  void (*on_auth_timeout)(agentws__conn *c, void *ud);
  /* A request for a path other than the WebSocket path: 1 if it answered
   * (agentws__upgrade_respond), 0 for 404. */
  int (*on_http)(agentws__conn *c, const agentws__http_request *req,
                 void *ud);
  /* A shared frame's reference (agentws__writer_append_shared) is no
   * longer needed: written, dropped or its connection gone. */
  void (*on_release)(void *ref, void *ud);
  void *user_data; /* the manager */
} agentws__transport_hooks;

/* A frame shared by several connections (a large event), queued by
 * reference and written with the bytes around it in one sendmsg(2). */
typedef struct agentws__wseg {
  size_t at;        /* bytes of conn->out queued before it */
  const uint8_t *p; /* the frame, alive while |ref| is held */
  size_t len;
  void *ref;        /* handed to hooks.on_release when done */
} agentws__wseg;

#define AGENTWS__MAX_SEGS 32 /* per connection; beyond, frames are copied */

typedef enum agentws__conn_state {
  AGENTWS__CONN_HTTP,    /* reading the request head */
  AGENTWS__CONN_WS,      /* open WebSocket */
  AGENTWS__CONN_CLOSING, /* close frame queued/sent; awaiting peer or drain */
  AGENTWS__CONN_LINGER,  /* last bytes flushed, FIN sent; discarding input */
  AGENTWS__CONN_DEAD     /* uv_close() called; freed in its callback */
} agentws__conn_state;

/* Timer lists: every live connection is in exactly one. */
enum {
  AGENTWS__TL_HANDSHAKE, /* HTTP phase; expires after handshake_timeout */
  AGENTWS__TL_ACTIVE,    /* WebSocket, heard from; ping after ping_interval */
  AGENTWS__TL_PINGED,    /* ping sent; dropped after pong_timeout */
  AGENTWS__TL_OPEN,      /* WebSocket with pings off: never expires */
  AGENTWS__TL_CLOSING,   /* closing/lingering; dropped after close_timeout */
  AGENTWS__TL_AUTH,      /* awaiting the host's auth answer: 503 after */
  AGENTWS__TL_COUNT
};

struct agentws__conn {
  uv_tcp_t tcp;            /* the socket; tcp.data points to this conn */
  agentws__transport *t;   /* owner */
  uint64_t id;             /* public id, never 0, never reused */
  void *user_data;         /* host's, agentws_conn_set_user_data() */
  const char *subprotocol; /* selected, points into the config; "" none */
  uint8_t state;           /* agentws__conn_state */
  uint8_t tl;              /* timer list index, AGENTWS__TL_COUNT if none */
  unsigned opened : 1;     /* on_open fired, so on_close must fire */
  unsigned close_sent : 1; /* a close frame is queued or sent */
  unsigned our_close : 1;  /* we framed the close: drop wslay's echo */
  unsigned close_received : 1;   /* peer's close frame arrived */
  unsigned linger_after_flush : 1; /* don't await the peer: FIN after flush */
  unsigned shutdown_sent : 1;    /* uv_shutdown issued */
  unsigned write_pending : 1;    /* a uv_write is in flight */
  unsigned mon_half_open : 1;    /* monitor: half_open alert firing */
  unsigned ping_timed_out : 1;   /* dropped for an unanswered ping */
  uint16_t close_code;     /* code to report in on_close (0: unknown) */
  uint8_t reason_len;      /* bytes in reason */
  char *reason;            /* owned copy of the close reason, or NULL */
  uint64_t t_mark;         /* loop ms when it entered its timer list */
  uint64_t t_msg;          /* loop ms of the last message (idle timeout) */
  uint64_t born_ns;        /* hrtime at accept (handshake latency) */
  agentws__list tnode;     /* in t->tl[tl] */
  agentws__list inode;     /* in t->idle when idle timeout is on */
  agentws__list dnode;     /* in t->dirty (output) or t->pending_in */
  agentws__buf head;       /* partial request head (HTTP phase only) */
  agentws__buf out;        /* bytes queued, not yet handed to a write */
  size_t out_keep;         /* leading bytes of out a discard keeps (101) */
  agentws__wseg *segs;     /* shared frames between out's bytes, or NULL */
  uint32_t nsegs;          /* entries in segs */
  uint64_t seg_bytes;      /* their bytes */
  size_t inflight;         /* bytes in the uv_write in flight */
  agentws__ws_slot *ws;    /* wslay context lent while mid-message */
  void *app;               /* the manager's session for this conn */
  struct agentws__pend *pend; /* handshake awaiting its answer, or NULL */
};

/* A listening socket. */
typedef struct agentws__listener {
  uv_tcp_t tcp;          /* the listening handle */
  agentws__transport *t; /* owner */
  agentws__list node;    /* in t->listeners */
} agentws__listener;

struct agentws__transport {
  uv_loop_t *loop;               /* not owned */
  const agentws__mem *mem;       /* allocator */
  const agentws_config *cfg;     /* owned by the manager */
  agentws__transport_hooks hooks;
  agentws__list listeners;       /* agentws__listener.node */
  agentws__idmap conns;          /* id -> agentws__conn */
  uint64_t next_id;              /* last id handed out */
  uint64_t num_conns;            /* live conns (not yet freed) */
  uint64_t num_ws;               /* opened and not yet closed */
  uint64_t started_ms;           /* loop time at init, for uptime */
  agentws__stats *stats;         /* the manager's counters */
  uv_check_t flush_check;        /* the once-per-iteration flush point */
  uv_idle_t kick;                /* keeps poll from blocking when work waits */
  uv_timer_t tick;               /* drives the timer lists */
  uint64_t tick_ms;              /* tick period */
  agentws__list dirty;           /* conns with queued output */
  agentws__list pending_in;      /* adopted conns with bytes to parse */
  agentws__list tl[AGENTWS__TL_COUNT]; /* timer lists, oldest first */
  int64_t tl_ms[AGENTWS__TL_COUNT];    /* expiry per list, 0 = never */
  agentws__list idle;            /* WebSocket conns by last message */
  agentws__ws_slot *ws_pool;     /* idle wslay contexts to lend */
  size_t ws_pool_len;
  void *enc;                     /* wslay frame context that frames output */
  agentws__buf *enc_target;      /* where the encoder appends; NULL: */
  uint8_t enc_head[14];          /* ... only the first bytes are kept */
  size_t enc_sent;               /* and the rest counted (a header alone) */
  agentws__buf buf_cache[256];   /* released output buffers (<= 16 KiB):
                                    a busy turn reuses them, no realloc */
  size_t buf_cache_len;
  agentws__wseg *seg_cache[64];  /* released segment arrays */
  size_t seg_cache_len;
  uv_tcp_t reject;               /* accepts-and-closes when out of memory */
  int reject_busy;               /* reject is in use */
  int closing;                   /* agentws__transport_close() called */
  int internal_open;             /* internal handles not yet closed */
  agentws__http_header hdrs[256]; /* parser scratch */
  uint8_t rbuf[65536];           /* shared read buffer */
};

/* agentws_transport.c */
int agentws__transport_init(agentws__transport *t, uv_loop_t *loop,
                            const agentws__mem *mem,
                            const agentws_config *cfg,
                            const agentws__transport_hooks *hooks);
int agentws__transport_listen(agentws__transport *t, const char *host,
                              int port, int *bound_port);
int agentws__transport_adopt(agentws__transport *t, int fd,
                             const uint8_t *data, size_t len, uint64_t *id);
/* Graceful: 1001 to every WebSocket, then on_closed when all is closed. */
void agentws__transport_close(agentws__transport *t);
/* Frees what init allocated; only after on_closed (or if never used). */
void agentws__transport_free(agentws__transport *t);
agentws__conn *agentws__transport_find(agentws__transport *t, uint64_t id);
/* Makes the next poll non-blocking: work is waiting for the check phase. */
void agentws__transport_kick(agentws__transport *t);
/* Closes the socket now; on_close reports |code|/|reason| (static). */
void agentws__conn_kill(agentws__conn *c, int code, const char *reason);
/* Records the close code/reason to report, if none recorded yet. */
void agentws__conn_set_close_info(agentws__conn *c, int code,
                                  const char *reason, size_t len);
/* Moves |c| to the tail of timer list |tl| with mark now. */
void agentws__conn_set_timer(agentws__conn *c, int tl);
/* Marks message activity for the idle timeout. */
void agentws__conn_touch_msg(agentws__conn *c);

/* agentws_upgrade.c: bytes arriving in the HTTP phase. |in_head| says
 * data is c->head itself (adopted bytes). */
void agentws__upgrade_feed(agentws__conn *c, const uint8_t *data,
                           size_t len, int in_head);
/* Answers |status| with |body| and lingers; for timeouts and limits. */
void agentws__upgrade_refuse(agentws__conn *c, int status, const char *body);
/* The same with these extra header lines (NULL: the status's usual). */
void agentws__upgrade_refuse_with(agentws__conn *c, int status,
                                  const char *headers, const char *body);
/* Completes a pending handshake: 101, on_open, pipelined bytes. */
void agentws__upgrade_accept(agentws__conn *c);
/* Answers an HTTP request with |status|, |content_type|, extra |headers|
 * (CRLF-terminated lines or NULL) and |body| (omitted when |head_only|),
 * then lingers. Returns 0 or AGENTWS_ERR_NOMEM (the conn is then dropped).
 */
int agentws__upgrade_respond(agentws__conn *c, int status,
                             const char *content_type, const char *headers,
                             const void *body, size_t len, int head_only);
/* Frees c->pend (conn going away). */
void agentws__upgrade_release(agentws__conn *c);
/* Bytes waiting to be written on |c| (queued + in flight). */
uint64_t agentws__writer_queued(const agentws__conn *c);

/* agentws_ws.c */
int agentws__ws_init(agentws__transport *t);
void agentws__ws_free(agentws__transport *t);
void agentws__ws_feed(agentws__conn *c, const uint8_t *data, size_t len);
/* Frames a message and queues it. |control| frames bypass the bound. */
int agentws__ws_send(agentws__conn *c, int opcode, const uint8_t *data,
                     size_t len, int control);
/* Writes the header of a final text frame of |len| payload bytes (made by
 * wslay) into |hdr| (room for 10 bytes); returns its length, 0 on failure.
 */
size_t agentws__ws_text_header(agentws__transport *t, const uint8_t *data,
                               size_t len, uint8_t *hdr);
/* Queues |len| bytes that are already a whole frame (a header from
 * agentws__ws_text_header and its payload) by reference, as agentws__ws_send
 * would queue a copy (agentws__writer_append_shared): takes one reference
 * |ref| in every case. */
int agentws__ws_send_shared(agentws__conn *c, const uint8_t *bytes,
                            size_t len, void *ref);
/* Queues a close frame and enters CLOSING. |linger|: don't await the
 * peer's answer; FIN once flushed. Returns 0 or AGENTWS_ERR_CLOSING. */
int agentws__ws_close(agentws__conn *c, int code, const char *reason,
                      size_t len, int linger);
/* Gives back the lent wslay context, if any (conn going away). */
void agentws__ws_release(agentws__conn *c);

/* agentws_writer.c */
/* Appends raw bytes; |bypass| ignores the queue bound. Returns 0,
 * AGENTWS_ERR_QUEUE_FULL (caller closes with 1013) or AGENTWS_ERR_NOMEM. */
int agentws__writer_reserve(agentws__conn *c, size_t len, int bypass);
int agentws__writer_append(agentws__conn *c, const void *data, size_t len,
                           int bypass);
/* Queues |len| bytes of a frame other connections share, by reference:
 * takes one reference |ref| in every case (released through
 * hooks.on_release once written, on failure, or copied at once when the
 * connection holds AGENTWS__MAX_SEGS). Returns as agentws__writer_append. */
int agentws__writer_append_shared(agentws__conn *c, const uint8_t *p,
                                  size_t len, void *ref);
/* Whether anything is queued and not yet handed to a write. */
int agentws__writer_pending(const agentws__conn *c);
void agentws__writer_mark_dirty(agentws__conn *c);
/* Flushes every dirty connection: once per loop iteration. */
void agentws__writer_flush_all(agentws__transport *t);
/* Drops queued bytes that are not yet in flight (slow consumer). */
void agentws__writer_discard(agentws__conn *c);
void agentws__writer_release(agentws__conn *c);
/* agentws_writer_shared.c: the shared frames of conn->segs. */
/* Writes out's bytes and the shared frames in order with one non-blocking
 * sendmsg(2): bytes written, UV_EAGAIN or an error. */
int agentws__writer_try_send(agentws__conn *c);
/* Replaces out with a copy of what follows the first |skip| bytes of the
 * queued stream and drops the shared frames. 0 or AGENTWS_ERR_NOMEM. */
int agentws__segs_materialize(agentws__conn *c, size_t skip);
/* Releases every shared frame of |c| and its segment array. */
void agentws__segs_drop(agentws__conn *c);
void agentws__segs_cache_free(agentws__transport *t);
/* Called when a conn's output is fully written: advances closing. */
void agentws__conn_flushed(agentws__conn *c);

/* agentws_timers.c */
int agentws__timers_init(agentws__transport *t);
void agentws__timers_on_tick(uv_timer_t *h);

#endif /* AGENTWS_TRANSPORT_H */
