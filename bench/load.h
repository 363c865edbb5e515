/*
 * agentws-load: shared types of the load generator.
 *
 * One libuv loop thread drives every connection. Frames produced while
 * handling one loop turn are appended to a per-connection buffer and
 * written with one uv_write per connection per turn (see load_conn.c).
 */
#ifndef AGENTWS_BENCH_LOAD_H
#define AGENTWS_BENCH_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>
#include <wslay/wslay.h>

#include "load_hist.h"

#define LOAD_MAX_HEADERS 8

enum load_mode { MODE_ECHO, MODE_FANOUT, MODE_CONNECT, MODE_RECONNECT };

/* Run phases, in order. Traffic is generated in WARMUP and MEASURE only. */
enum load_phase {
  PH_CONNECT, /* opening connections (reconnect mode skips it) */
  PH_WARMUP,  /* echo traffic / reconnect cycles flow but are not counted */
  PH_MEASURE, /* counted window */
  PH_HOLD,    /* connect mode: idle connections held open */
  PH_DRAIN,   /* close handshakes in progress, bounded by a grace timer */
  PH_DONE     /* every handle closing; loop about to exit */
};

enum conn_state {
  CS_IDLE,       /* not started yet */
  CS_CONNECTING, /* TCP connect in progress */
  CS_UPGRADING,  /* HTTP upgrade request sent, waiting for the response head */
  CS_OPEN,       /* WebSocket open (or raw TCP connected) */
  CS_CLOSING,    /* close frame sent or received, waiting for the peer
                  * (reconnect mode: for its FIN, so the server closes first) */
  CS_CLOSED      /* uv_close called; the struct stays until the loop ends */
};

struct load_opts {
  enum load_mode mode;
  const char *host;   /* loopback address only */
  int port;           /* server port */
  const char *path;   /* request path, default /ws */
  const char *query;  /* optional query; each "%d" becomes the connection index
                       * (modulo |users| when that is set) */
  int users;          /* fanout: 0, or U: "%d" is idx % U; default query user=u%d */
  int stall;          /* fanout: connections 0..stall-1 stop reading after the
                       * first message (the welcome) until the drain */
  const char *headers[LOAD_MAX_HEADERS]; /* extra request header lines */
  int nheaders;       /* used entries of headers[] */
  int conns;          /* connections to open */
  int pipeline;       /* echo: messages outstanding per connection */
  size_t size;        /* echo: message size in bytes */
  double duration;    /* echo/fanout: measured seconds */
  double warmup;      /* echo/fanout: uncounted seconds before measuring */
  int binary;         /* echo: binary frames instead of text */
  int raw;            /* echo: plain TCP, fixed-size messages, no WebSocket */
  double rate;        /* connections started per second, 0 = unpaced */
  double hold;        /* connect: seconds to hold the idle connections */
  double connect_timeout; /* seconds from connect start to upgrade done */
  int max_pending;    /* connects/upgrades in flight at once */
  const char *send_text; /* fanout: text sent once per connection when all are open */
  size_t max_msg;     /* fanout: bytes of one text message kept for the ts scan */
  uint64_t count;     /* reconnect: stop after this many counted handshakes (0: none) */
  const char *token_file; /* one token a line; connection i sends token i % n */
  char *token_buf;    /* the file's bytes, lines NUL-terminated in place */
  char **tokens;      /* its non-empty lines, pointers into token_buf */
  size_t *token_lens; /* their lengths */
  int ntokens;        /* entries of tokens[]; 0: no Authorization header */
};

/* A growable byte buffer. */
struct bbuf {
  uint8_t *p;  /* storage, NULL until first use */
  size_t len;  /* bytes used */
  size_t cap;  /* bytes allocated */
};

struct load;

struct conn {
  uv_tcp_t tcp;               /* the socket; tcp.data points back here */
  uv_connect_t creq;          /* connect request */
  uv_write_t wreq;            /* the one write in flight */
  uv_shutdown_t sreq;         /* raw mode: FIN after the last write */
  struct load *ld;            /* owning run */
  int idx;                    /* index in load.conns, substituted for %d */
  enum conn_state state;      /* see enum conn_state */
  uint64_t t_start;           /* uv_hrtime() at connect start, for the timeout sweep */
  wslay_frame_context_ptr fctx; /* client framing; NULL in raw mode */
  const uint8_t *in;          /* received bytes wslay's recv callback may take */
  size_t in_len;              /* length of |in| still unread */
  struct bbuf head;           /* HTTP response head, only while upgrading */
  struct bbuf out;            /* bytes queued during this loop turn */
  struct bbuf wbuf;           /* bytes owned by the write in flight */
  int writing;                /* wreq is in flight */
  int dirty;                  /* on load.dirty, to be flushed this turn */
  struct conn *next_dirty;    /* dirty list link */
  int close_after_write;      /* uv_close once |out| and |wbuf| are written */
  int want_shutdown;          /* raw mode: shut down once |out| is handed to libuv */
  int close_sent;             /* our close frame (or FIN, raw) is queued */
  int in_frame;               /* inside a frame's payload */
  uint64_t frame_left;        /* payload bytes of the current frame still to come */
  uint8_t frame_opcode;       /* opcode of the current frame */
  uint8_t msg_opcode;         /* opcode of the current data message */
  uint64_t msg_len;           /* payload bytes of the current data message so far */
  uint8_t ctrl[125];          /* payload of the current control frame */
  size_t ctrl_len;            /* bytes in ctrl[] */
  struct bbuf msg;            /* fanout: text of the current message, capped at max_msg */
  uint64_t *sent_ts;          /* echo: ring of send times (uv_hrtime), pipeline slots */
  int ts_head;                /* oldest slot of sent_ts */
  int ts_count;               /* messages outstanding */
  uint64_t raw_rx;            /* raw: bytes of the current message received */
  uint64_t msgs;              /* fanout: data messages counted in the window */
  int stalled;                /* fanout --stall: reading stopped after the welcome */
  int stall_conn;             /* fanout --stall: one of the stalled connections */
  int peer_close;             /* close code the peer sent (1005: none given), 0 if no close frame */
  int welcomed;               /* reconnect: the first data message of this cycle arrived */
  uint64_t t_welcome;         /* reconnect: load.now when it did */
};

struct load_errors {
  uint64_t connect;   /* TCP connect failed (refused, EMFILE, ...) */
  uint64_t handshake; /* non-101 response or malformed head */
  uint64_t timeout;   /* connect + upgrade not done in time */
  uint64_t protocol;  /* bad frame, wrong echo size, unexpected message */
  uint64_t closed;    /* the peer closed or reset before the drain */
  uint64_t io;        /* write or read error */
};

struct load {
  uv_loop_t *loop;            /* the one loop */
  struct load_opts o;         /* parsed options */
  struct sockaddr_storage addr; /* server address */
  struct conn *conns;         /* o.conns entries */
  int next_conn;              /* next index to start */
  int pending;                /* connections connecting or upgrading */
  int open;                   /* connections open now */
  int opened;                 /* connections that ever reached CS_OPEN */
  int handles;                /* tcp handles initialised and not yet closed */
  enum load_phase phase;      /* see enum load_phase */
  int watchdog_fired;         /* the run hit its overall time cap */
  uv_timer_t tick;            /* connect pacing and timeout sweep */
  uv_timer_t phase_timer;     /* warmup/measure/hold/drain transitions */
  uv_timer_t watchdog;        /* overall time cap */
  uv_check_t flush;           /* writes the dirty connections after each poll */
  uv_signal_t sigint;         /* Ctrl-C ends the run early, still reporting */
  struct conn *dirty;         /* connections with queued output */
  uint64_t last_sweep;        /* uv_hrtime() of the last timeout sweep */
  uint64_t now;               /* uv_hrtime() at the start of the current read or
                               * send burst: one clock read per batch, not two
                               * per message (it was 11% of the client's CPU) */
  uint64_t t_connect0;        /* first connect started */
  uint64_t t_connected;       /* connect phase finished */
  uint64_t t_measure0;        /* measure window start */
  uint64_t t_measure1;        /* measure window end */
  double cpu0;                /* our user+sys CPU seconds at t_measure0 */
  double cpu1;                /* ... and at t_measure1: shows whether the
                               * generator itself was the bottleneck */
  uint64_t round_trips;       /* echo: completed in the window */
  uint64_t messages;          /* fanout/connect: data messages received in the window */
  uint64_t handshakes;        /* reconnect: 101 + welcome completed in the window */
  uint64_t cycles;            /* reconnect: connects started, every phase */
  uint64_t lost;              /* reconnect: clients that could not start again */
  uint64_t with_ts;           /* fanout: messages carrying a parsable "ts" */
  uint64_t with_us;           /* fanout: messages whose data carries "emit_us" */
  uint64_t bytes;             /* fanout: payload bytes of those messages */
  int64_t wall_us;            /* fanout: wall clock (us) at the start of the current read */
  uint64_t per_s[64];         /* fanout: messages per second of the window (first 64 s) */
  uint64_t per_s_max[64];     /* fanout: largest emit_us latency (us) in each of those seconds */
  struct hist hist;           /* latency, nanoseconds (fanout: from "ts", ms resolution;
                               * reconnect: connect start to the welcome) */
  struct hist hist_us;        /* fanout: latency from data "emit_us" (us resolution);
                               * reconnect: connect start to the 101 (ns) */
  struct hist hist_close;     /* reconnect: welcome to our socket closed (ns) */
  struct load_errors err;     /* counted failures */
  uint8_t *payload;           /* echo message body, o.size bytes */
  uint8_t *rbuf;              /* shared read buffer, consumed within read_cb */
  size_t rbuf_len;            /* size of rbuf */
  uint64_t rng;               /* xorshift state for keys and masks */
};

/* load_conn.c */
int load_conn_start(struct load *ld, struct conn *c);
void load_conn_reset(struct conn *c);
void load_conn_close(struct conn *c);
void load_conn_begin_close(struct conn *c);
int load_conn_send_msg(struct conn *c);
int load_conn_send_text(struct conn *c, const char *text, size_t len);
void load_flush_dirty(struct load *ld);
void load_conn_stall(struct conn *c);
uint64_t load_rand64(struct load *ld);

/* agentws-load.c: events the connection layer reports upward. */
void load_on_open(struct conn *c);
void load_on_message(struct conn *c);
void load_on_conn_failed(struct conn *c);
void load_on_closed(struct conn *c);

#endif /* AGENTWS_BENCH_LOAD_H */
