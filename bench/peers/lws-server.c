/*
 * lws-server: the libwebsockets peer for bench/run-peers.sh, a minimal
 * server written the way lws applications are written (one lws_write per
 * LWS_CALLBACK_SERVER_WRITEABLE, lws_callback_on_writable to ask for the
 * next one, the default poll() event loop, default buffer sizes).
 *
 *   lws-server --mode echo|fanout|room|paced [--port 0] [--conns 0]
 *              [--size 200] [--interval-ms 10] [--ring 1024] [--max-run 3600]
 *
 *   echo    every text/binary message goes back to its sender.
 *   fanout  each connection (?user=u<k>) is its own user's stream: the
 *           server makes a fresh event for it whenever its socket takes one.
 *   room    one stream for all connections: each event is made once and
 *           written to every connection; the next is made when a connection
 *           that has written all so far can write again, so the rate is the
 *           connections' (at most --ring events between slowest and fastest).
 *   paced   one event to every connection each --interval-ms.
 *
 * --conns N: no events until N connections are open (as fanout-host waits
 * for its N), so connecting is not slowed by a flood and the measured
 * window sees every connection from its start; 0 starts at once.
 *
 * Events are ~--size bytes of JSON shaped like libagentws's, with the wall
 * clock in "ts" (ms) and data.emit_us (us) taken when the event is made,
 * so agentws-load --mode fanout measures them as it measures fanout-host:
 *   {"type":"custom_event","run_id":"r-1","ts":T,"data":{"emit_us":U,
 *    "pad":"..."},"seq":N}
 * Non-echo connections first get {"type":"welcome",...} (agentws-load's
 * --stall and reconnect modes wait for a first message). The agentws.v1
 * subprotocol is accepted when offered. Listens on 127.0.0.1 only and
 * prints "listening on 127.0.0.1:PORT"; SIGINT/SIGTERM stop it (exit 0),
 * as does --max-run seconds (exit 1: the script that started it is gone).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

#define EVENT_MAX 4096            /* largest --size */
#define SLOT_LEN (LWS_PRE + EVENT_MAX + 64)
#define ECHO_STOP_READ (4u << 20) /* queued echo bytes: stop reading above, */
#define ECHO_RESUME (1u << 20)    /* read again below */
#define TICK_US 100000            /* signal/--max-run check */

enum mode { M_ECHO, M_FANOUT, M_ROOM, M_PACED };

/* One connection (lws allocates it as the protocol's per-session data). */
struct pss {
  struct lws *wsi;
  struct pss *prev, *next; /* all open connections (room/paced wake-ups) */
  int welcome;             /* the welcome still has to be written */
  int parked;              /* room/paced: waiting for an event, no writable asked */
  uint64_t seq;            /* fanout: this connection's stream position */
  uint64_t rseq;           /* room/paced: next ring event to write */
  char user[32];
  /* echo: FIFO of records {struct rec, LWS_PRE headroom, payload} */
  uint8_t *q;
  size_t q_rd, q_done, q_wr, q_cap; /* next to send, end of whole messages, end */
  size_t q_cur;            /* offset of the message being received */
  int in_msg, flow_off;
};

struct rec {
  uint32_t len;
  uint32_t binary;
};

static struct {
  enum mode mode;
  int port, size, interval_ms, ring, want_conns;
  int started;             /* events flow (want_conns reached) */
  double max_run;
  struct lws_context *ctx;
  struct pss *conns;       /* list head */
  int nconns;
  char pad[EVENT_MAX];     /* pad text so the envelope is ~size bytes */
  uint8_t scratch[SLOT_LEN];
  /* room/paced ring: event s is in slot s % ring; cnt[s % ring] counts the
   * connections whose rseq is s. Connections sit in [tail, head], and head -
   * tail < ring, so neither array ever holds two live seqs in one slot. */
  uint8_t (*slots)[SLOT_LEN];
  size_t *slot_len;
  uint32_t *cnt;
  uint64_t head, tail;
  int blocked;             /* room: connections parked because the ring is full */
  lws_sorted_usec_list_t tick, pace;
  double t_start, next_pace;
  unsigned long long events, writes, pace_skipped;
} g;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- events: hand-rolled formatting, as fanout-host avoids printf per event */

static char *put(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}

static char *put_u64(char *p, unsigned long long v) {
  char d[24];
  size_t n = 0;
  do {
    d[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (n > 0)
    *p++ = d[--n];
  return p;
}

#define PUTS(p, lit) put((p), (lit), sizeof(lit) - 1)

/* Writes event |seq| at |out| (LWS_PRE bytes must precede it); returns its length. */
static size_t make_event(uint8_t *out, unsigned long long seq) {
  long long us = wall_us();
  char *p = (char *)out;
  p = PUTS(p, "{\"type\":\"custom_event\",\"run_id\":\"r-1\",\"ts\":");
  p = put_u64(p, (unsigned long long)(us / 1000));
  p = PUTS(p, ",\"data\":{\"emit_us\":");
  p = put_u64(p, (unsigned long long)us);
  p = PUTS(p, ",\"pad\":\"");
  p = put(p, g.pad, strlen(g.pad));
  p = PUTS(p, "\"},\"seq\":");
  p = put_u64(p, seq);
  *p++ = '}';
  return (size_t)(p - (char *)out);
}

static void make_pad(void) {
  /* The envelope around an empty pad, with 13-digit ts, 16-digit emit_us
   * and a 6-digit seq (as fanout-host sizes its events). */
  static const char fixed[] =
      "{\"type\":\"custom_event\",\"run_id\":\"r-1\",\"ts\":1763769600123,"
      "\"data\":{\"emit_us\":1763769600123456,\"pad\":\"\"},\"seq\":123456}";
  int n = g.size - (int)(sizeof(fixed) - 1), i;
  for (i = 0; i < n; i++)
    g.pad[i] = (char)('a' + i % 26);
  g.pad[n > 0 ? n : 0] = '\0';
}

/* ---- the ring (room, paced) */

static void wake_parked(void) {
  struct pss *p;
  for (p = g.conns; p != NULL; p = p->next) {
    if (p->parked) {
      p->parked = 0;
      lws_callback_on_writable(p->wsi);
    }
  }
  g.blocked = 0;
}

static void advance_tail(void) {
  uint64_t old = g.tail;
  while (g.tail < g.head && g.cnt[g.tail % (uint64_t)g.ring] == 0)
    g.tail++;
  if (g.tail != old && g.blocked > 0)
    wake_parked(); /* room: the ring has space again */
}

static int ring_full(void) { return g.head - g.tail >= (uint64_t)g.ring - 1; }

static void ring_produce(void) {
  size_t i = (size_t)(g.head % (uint64_t)g.ring);
  g.slot_len[i] = make_event(g.slots[i] + LWS_PRE, g.head);
  g.head++;
  g.events++;
}

static void ring_join(struct pss *p) {
  if (g.nconns == 0)
    g.tail = g.head;
  p->rseq = g.head;
  g.cnt[p->rseq % (uint64_t)g.ring]++;
}

static void ring_leave(struct pss *p) {
  g.cnt[p->rseq % (uint64_t)g.ring]--;
  if (p->rseq == g.tail)
    advance_tail();
}

/* Writes ring event p->rseq and moves the connection on; -1 if lws failed. */
static int ring_write(struct pss *p) {
  size_t i = (size_t)(p->rseq % (uint64_t)g.ring);
  int n = lws_write(p->wsi, g.slots[i] + LWS_PRE, g.slot_len[i], LWS_WRITE_TEXT);
  if (n < (int)g.slot_len[i])
    return -1;
  g.writes++;
  g.cnt[i]--;
  p->rseq++;
  g.cnt[p->rseq % (uint64_t)g.ring]++;
  if (p->rseq - 1 == g.tail)
    advance_tail();
  return 0;
}

static void on_pace(lws_sorted_usec_list_t *sul) {
  double now = mono_s();
  (void)sul;
  if (!g.started) {
    /* nobody to send to yet */
  } else if (ring_full()) {
    g.pace_skipped++; /* a connection is ring-size events behind */
  } else {
    ring_produce();
    wake_parked(); /* the connections that had written everything */
  }
  /* Absolute schedule, so callback latency does not add up. */
  g.next_pace += g.interval_ms / 1000.0;
  if (g.next_pace < now)
    g.next_pace = now;
  lws_sul_schedule(g.ctx, 0, &g.pace, on_pace,
                   (lws_usec_t)((g.next_pace - now) * 1e6));
}

static void on_tick(lws_sorted_usec_list_t *sul) {
  (void)sul;
  if (g.max_run > 0 && mono_s() - g.t_start > g.max_run) {
    fprintf(stderr, "lws-server: --max-run %.0f s reached\n", g.max_run);
    g_stop = 2;
  }
  lws_sul_schedule(g.ctx, 0, &g.tick, on_tick, TICK_US);
}

/* ---- echo queue */

static int q_reserve(struct pss *p, size_t n) {
  if (p->q_wr + n <= p->q_cap)
    return 0;
  if (p->q_rd > 0) { /* slide the unsent records to the front */
    memmove(p->q, p->q + p->q_rd, p->q_wr - p->q_rd);
    p->q_done -= p->q_rd;
    p->q_cur -= p->q_rd;
    p->q_wr -= p->q_rd;
    p->q_rd = 0;
  }
  if (p->q_wr + n > p->q_cap) {
    size_t cap = p->q_cap ? p->q_cap : 4096;
    uint8_t *nq;
    while (cap < p->q_wr + n)
      cap *= 2;
    nq = realloc(p->q, cap);
    if (nq == NULL)
      return -1;
    p->q = nq;
    p->q_cap = cap;
  }
  return 0;
}

/* A received chunk: starts a record, appends, closes it at the message end. */
static int echo_rx(struct pss *p, const void *in, size_t len) {
  if (!p->in_msg) {
    struct rec r = {0, (uint32_t)lws_frame_is_binary(p->wsi)};
    if (q_reserve(p, sizeof(r) + LWS_PRE) != 0)
      return -1;
    p->q_cur = p->q_wr;
    memcpy(p->q + p->q_wr, &r, sizeof(r));
    p->q_wr += sizeof(r) + LWS_PRE;
    p->in_msg = 1;
  }
  if (len > 0) {
    if (q_reserve(p, len) != 0)
      return -1;
    memcpy(p->q + p->q_wr, in, len);
    p->q_wr += len;
  }
  if (lws_is_final_fragment(p->wsi) && lws_remaining_packet_payload(p->wsi) == 0) {
    struct rec r;
    memcpy(&r, p->q + p->q_cur, sizeof(r));
    r.len = (uint32_t)(p->q_wr - p->q_cur - sizeof(r) - LWS_PRE);
    memcpy(p->q + p->q_cur, &r, sizeof(r));
    p->in_msg = 0;
    p->q_done = p->q_wr;
    lws_callback_on_writable(p->wsi);
  }
  if (!p->flow_off && p->q_wr - p->q_rd > ECHO_STOP_READ) {
    p->flow_off = 1; /* the client sends faster than it reads */
    lws_rx_flow_control(p->wsi, 0);
  }
  return 0;
}

static int echo_tx(struct pss *p) {
  struct rec r;
  uint8_t *payload;
  if (p->q_rd >= p->q_done)
    return 0;
  memcpy(&r, p->q + p->q_rd, sizeof(r));
  payload = p->q + p->q_rd + sizeof(r) + LWS_PRE;
  if (lws_write(p->wsi, payload, r.len, r.binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) <
      (int)r.len)
    return -1;
  g.writes++;
  p->q_rd += sizeof(r) + LWS_PRE + r.len;
  if (p->q_rd == p->q_wr)
    p->q_rd = p->q_done = p->q_wr = p->q_cur = 0;
  if (p->flow_off && p->q_wr - p->q_rd < ECHO_RESUME) {
    p->flow_off = 0;
    lws_rx_flow_control(p->wsi, 1);
  }
  if (p->q_rd < p->q_done)
    lws_callback_on_writable(p->wsi);
  return 0;
}

/* ---- the protocol callback */

static int write_welcome(struct pss *p) {
  uint8_t *out = g.scratch + LWS_PRE;
  char *e = (char *)out;
  e = PUTS(e, "{\"type\":\"welcome\",\"user\":\"");
  e = put(e, p->user, strlen(p->user));
  e = PUTS(e, "\",\"seq\":0}");
  p->welcome = 0;
  return lws_write(p->wsi, out, (size_t)(e - (char *)out), LWS_WRITE_TEXT) < 0 ? -1 : 0;
}

static int on_writeable(struct pss *p) {
  if (p->welcome) {
    if (write_welcome(p) != 0)
      return -1;
    lws_callback_on_writable(p->wsi);
    return 0;
  }
  if (!g.started) {
    p->parked = 1; /* woken when the last of --conns opens */
    return 0;
  }
  switch (g.mode) {
  case M_ECHO:
    return echo_tx(p);
  case M_FANOUT: {
    size_t n = make_event(g.scratch + LWS_PRE, p->seq++);
    if (lws_write(p->wsi, g.scratch + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n)
      return -1;
    g.events++;
    g.writes++;
    lws_callback_on_writable(p->wsi);
    return 0;
  }
  case M_ROOM:
  case M_PACED:
    if (p->rseq == g.head) {
      if (g.mode == M_PACED || ring_full()) {
        p->parked = 1; /* paced: the timer wakes it; room: the slowest does */
        g.blocked += g.mode == M_ROOM;
        return 0;
      }
      ring_produce(); /* room: caught up, so it makes the next event */
    }
    if (ring_write(p) != 0)
      return -1;
    lws_callback_on_writable(p->wsi);
    return 0;
  }
  return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len) {
  struct pss *p = user;
  switch (reason) {
  case LWS_CALLBACK_ESTABLISHED: {
    char buf[64];
    const char *u = lws_get_urlarg_by_name(wsi, "user=", buf, (int)sizeof(buf));
    memset(p, 0, sizeof(*p));
    p->wsi = wsi;
    snprintf(p->user, sizeof(p->user), "%s", u != NULL ? u : "anonymous");
    p->next = g.conns;
    if (g.conns != NULL)
      g.conns->prev = p;
    g.conns = p;
    if (g.mode == M_ROOM || g.mode == M_PACED)
      ring_join(p);
    g.nconns++;
    p->welcome = g.mode != M_ECHO;
    if (p->welcome)
      lws_callback_on_writable(wsi);
    if (!g.started && g.nconns >= g.want_conns) {
      g.started = 1;
      fprintf(stderr, "lws-server: %d connections open, sending\n", g.nconns);
      wake_parked();
    }
    return 0;
  }
  case LWS_CALLBACK_SERVER_WRITEABLE:
    return on_writeable(p);
  case LWS_CALLBACK_RECEIVE:
    if (g.mode == M_ECHO)
      return echo_rx(p, in, len);
    return 0; /* other modes ignore what clients send */
  case LWS_CALLBACK_CLOSED:
    if (p->wsi == NULL)
      return 0;
    if (p->parked && g.mode == M_ROOM && g.blocked > 0)
      g.blocked--;
    g.nconns--;
    if (g.mode == M_ROOM || g.mode == M_PACED)
      ring_leave(p);
    if (p->prev != NULL)
      p->prev->next = p->next;
    else
      g.conns = p->next;
    if (p->next != NULL)
      p->next->prev = p->prev;
    free(p->q);
    p->wsi = NULL;
    return 0;
  default:
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

/* ---- options and main */

static int num(const char *name, const char *s, double lo, double hi, double *out) {
  char *end;
  double v;
  errno = 0;
  v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
    fprintf(stderr, "lws-server: --%s must be a number in [%g, %g]\n", name, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

static void usage(FILE *f) {
  fprintf(f, "usage: lws-server --mode echo|fanout|room|paced [--port 0] [--conns 0]\n"
             "         [--size 200] [--interval-ms 10] [--ring 1024] [--max-run 3600]\n");
}

static int parse_opts(int argc, char **argv) {
  static const struct option lo[] = {
      {"mode", required_argument, NULL, 'm'},     {"port", required_argument, NULL, 'p'},
      {"size", required_argument, NULL, 's'},     {"interval-ms", required_argument, NULL, 'i'},
      {"ring", required_argument, NULL, 'r'},     {"max-run", required_argument, NULL, 'x'},
      {"conns", required_argument, NULL, 'c'},    {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  double v;
  int ch, r = 0, have_mode = 0;
  g.size = 200;
  g.interval_ms = 10;
  g.ring = 1024;
  g.max_run = 3600;
  while (r == 0 && (ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (ch) {
    case 'm':
      have_mode = 1;
      if (strcmp(optarg, "echo") == 0)
        g.mode = M_ECHO;
      else if (strcmp(optarg, "fanout") == 0)
        g.mode = M_FANOUT;
      else if (strcmp(optarg, "room") == 0)
        g.mode = M_ROOM;
      else if (strcmp(optarg, "paced") == 0)
        g.mode = M_PACED;
      else
        r = -1;
      break;
    case 'p': r = num("port", optarg, 0, 65535, &v); g.port = (int)v; break;
    case 's': r = num("size", optarg, 64, EVENT_MAX, &v); g.size = (int)v; break;
    case 'i': r = num("interval-ms", optarg, 1, 60000, &v); g.interval_ms = (int)v; break;
    case 'r': r = num("ring", optarg, 4, 1 << 20, &v); g.ring = (int)v; break;
    case 'x': r = num("max-run", optarg, 0, 86400, &g.max_run); break;
    case 'c': r = num("conns", optarg, 0, 1000000, &v); g.want_conns = (int)v; break;
    case 'h': usage(stdout); exit(0);
    default: r = -1; break;
    }
  }
  if (r != 0 || !have_mode || optind != argc) {
    usage(stderr);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  /* One protocol: clients that offer none get protocols[0]; agentws.v1 is
   * echoed when offered. */
  static const struct lws_protocols protocols[] = {
      {"agentws.v1", callback, sizeof(struct pss), 0, 0, NULL, 0},
      {NULL, NULL, 0, 0, 0, NULL, 0}};
  struct lws_context_creation_info info;
  struct lws_vhost *vh;
  struct sigaction sa;
  static const char *const names[] = {"echo", "fanout", "room", "paced"};

  if (parse_opts(argc, argv) != 0)
    return 2;
  g.started = g.want_conns == 0 || g.mode == M_ECHO;
  make_pad();
  if (g.mode == M_ROOM || g.mode == M_PACED) {
    g.slots = calloc((size_t)g.ring, sizeof(*g.slots));
    g.slot_len = calloc((size_t)g.ring, sizeof(*g.slot_len));
    g.cnt = calloc((size_t)g.ring, sizeof(*g.cnt));
    if (g.slots == NULL || g.slot_len == NULL || g.cnt == NULL) {
      fprintf(stderr, "lws-server: out of memory\n");
      return 1;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

  memset(&info, 0, sizeof(info));
  info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6;
  g.ctx = lws_create_context(&info);
  if (g.ctx == NULL) {
    fprintf(stderr, "lws-server: lws_create_context failed\n");
    return 1;
  }
  memset(&info, 0, sizeof(info));
  info.port = g.port;
  info.iface = "127.0.0.1"; /* loopback only */
  info.protocols = protocols;
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
  vh = lws_create_vhost(g.ctx, &info);
  if (vh == NULL) {
    fprintf(stderr, "lws-server: cannot listen on 127.0.0.1:%d\n", g.port);
    lws_context_destroy(g.ctx);
    return 1;
  }
  g.t_start = g.next_pace = mono_s();
  lws_sul_schedule(g.ctx, 0, &g.tick, on_tick, TICK_US);
  if (g.mode == M_PACED)
    lws_sul_schedule(g.ctx, 0, &g.pace, on_pace, (lws_usec_t)g.interval_ms * 1000);
  printf("listening on 127.0.0.1:%d\n", lws_get_vhost_listen_port(vh));
  fflush(stdout);
  fprintf(stderr, "lws-server: libwebsockets %s, mode %s, events ~%d bytes\n",
          lws_get_library_version(), names[g.mode], g.size);

  while (!g_stop) {
    if (lws_service(g.ctx, 0) < 0)
      break;
  }
  fprintf(stderr, "lws-server: %llu events made, %llu messages written%s\n",
          g.events, g.writes, g.pace_skipped ? " (paced ticks skipped, ring full)" : "");
  lws_sul_cancel(&g.tick);
  lws_sul_cancel(&g.pace);
  lws_context_destroy(g.ctx);
  free(g.slots);
  free(g.slot_len);
  free(g.cnt);
  return g_stop == 2 ? 1 : 0;
}
