/*
 * agentws-load: WebSocket load generator for loopback benchmarks.
 *
 *   echo     C connections each keep P messages of S bytes in flight;
 *            reports round trips/s and round-trip latency. --raw speaks
 *            plain TCP with fixed S-byte messages to a raw echo server,
 *            the baseline the WebSocket numbers are compared with.
 *   fanout   C connections only receive; each text message's top-level
 *            "ts" (server wall clock, ms) gives the delivery latency, and
 *            an "emit_us" member (wall clock, us; fanout-host puts it in
 *            the event's data) gives it to the microsecond. --users U maps
 *            connection i to ?user=u<i % U>; --stall K makes connections
 *            0..K-1 stop reading after the welcome (slow consumers).
 *   connect  opens C connections (upgrade done), reports how long that
 *            took, holds them idle for --hold seconds, closes them.
 *   reconnect  C clients (default 1000) each connect, upgrade, wait for
 *            the first message (the welcome), close (close handshake, the
 *            server's FIN) and connect again, for W + D seconds or until
 *            --count handshakes; reports handshakes/s and the connect ->
 *            welcome latency. With --token-file, client i sends token
 *            i % n as "Authorization: Bearer" (every WebSocket mode).
 *
 * Prints exactly one JSON line on stdout; progress goes to stderr.
 * Everything is bounded: per-connection connect timeout, a connect-phase
 * deadline, a drain grace period and an overall watchdog.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "load.h"

#define NS_PER_S 1000000000ull
#define NS_PER_MS 1000000ull
#define DRAIN_GRACE_MS 2000 /* close handshakes get this long before a hard close */
#define SWEEP_NS (100 * NS_PER_MS)
#define RBUF_LEN (64 * 1024)
#define TOKEN_FILE_MAX (64u << 20) /* --token-file bytes */
#define TOKENS_MAX 1000000         /* --token-file lines */
#define TOKEN_LEN_MAX 8192         /* one token */

static struct load g_load; /* one run per process; large (histogram) so not on the stack */
static int g_starting;     /* inside start_more(): failures must not recurse into it */

static void begin_drain(struct load *ld);

static double secs(uint64_t ns) { return (double)ns / 1e9; }

static double cpu_seconds(void) {
  uv_rusage_t ru;
  if (uv_getrusage(&ru) != 0) {
    return 0;
  }
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- options */

static void usage(FILE *f) {
  fprintf(f,
          "usage: agentws-load --mode echo|fanout|connect|reconnect --port N [options]\n"
          "  common:  --host 127.0.0.1 --path /ws --query 'user=u%%d' --header 'K: V'\n"
          "           --conns C (1; reconnect 1000) --rate R conn/s (0 = unpaced)\n"
          "           --max-pending N (128) --connect-timeout S (10)\n"
          "           --token-file F (one token a line; connection i sends\n"
          "           'Authorization: Bearer <token i %% n>')\n"
          "  echo:    --pipeline P (1) --size S (64) --duration D (5) --warmup W (0)\n"
          "           --binary  --raw (plain TCP, fixed-size messages)\n"
          "  fanout:  --duration D (5) --warmup W (0) --send TEXT --max-msg BYTES (65536)\n"
          "           --users U (connection i is user=u<i %% U>) --stall K (0)\n"
          "  connect: --hold S (0)\n"
          "  reconnect: --duration D (5) --warmup W (0) --count N (0: no limit)\n");
}

static int parse_num(const char *name, const char *s, double lo, double hi,
                     double *out) {
  char *end;
  double v;
  errno = 0;
  v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
    fprintf(stderr, "agentws-load: --%s must be a number in [%g, %g]\n", name,
            lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_int(const char *name, const char *s, int lo, int hi, int *out) {
  double v;
  if (parse_num(name, s, lo, hi, &v) != 0) {
    return -1;
  }
  if (v != (double)(int)v) {
    fprintf(stderr, "agentws-load: --%s must be an integer\n", name);
    return -1;
  }
  *out = (int)v;
  return 0;
}

static int parse_opts(int argc, char **argv, struct load_opts *o) {
  enum { O_MODE = 256, O_HOST, O_PORT, O_PATH, O_QUERY, O_HEADER, O_CONNS,
         O_PIPELINE, O_SIZE, O_DURATION, O_WARMUP, O_BINARY, O_RAW, O_RATE,
         O_HOLD, O_CTIMEOUT, O_MAXPEND, O_SEND, O_MAXMSG, O_USERS, O_STALL,
         O_TOKEN_FILE, O_COUNT, O_HELP };
  static const struct option longopts[] = {
      {"mode", required_argument, NULL, O_MODE},
      {"host", required_argument, NULL, O_HOST},
      {"port", required_argument, NULL, O_PORT},
      {"path", required_argument, NULL, O_PATH},
      {"query", required_argument, NULL, O_QUERY},
      {"header", required_argument, NULL, O_HEADER},
      {"conns", required_argument, NULL, O_CONNS},
      {"pipeline", required_argument, NULL, O_PIPELINE},
      {"size", required_argument, NULL, O_SIZE},
      {"duration", required_argument, NULL, O_DURATION},
      {"warmup", required_argument, NULL, O_WARMUP},
      {"binary", no_argument, NULL, O_BINARY},
      {"raw", no_argument, NULL, O_RAW},
      {"rate", required_argument, NULL, O_RATE},
      {"hold", required_argument, NULL, O_HOLD},
      {"connect-timeout", required_argument, NULL, O_CTIMEOUT},
      {"max-pending", required_argument, NULL, O_MAXPEND},
      {"send", required_argument, NULL, O_SEND},
      {"max-msg", required_argument, NULL, O_MAXMSG},
      {"users", required_argument, NULL, O_USERS},
      {"stall", required_argument, NULL, O_STALL},
      {"token-file", required_argument, NULL, O_TOKEN_FILE},
      {"count", required_argument, NULL, O_COUNT},
      {"help", no_argument, NULL, O_HELP},
      {NULL, 0, NULL, 0}};
  int ch, r = 0, size = 64, max_msg = 65536, conns_set = 0;
  double count = 0;
  memset(o, 0, sizeof(*o));
  o->mode = MODE_ECHO;
  o->host = "127.0.0.1";
  o->port = -1;
  o->path = "/ws";
  o->conns = 1;
  o->pipeline = 1;
  o->duration = 5;
  o->connect_timeout = 10;
  o->max_pending = 128;
  while (r == 0 && (ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (ch) {
    case O_MODE:
      if (strcmp(optarg, "echo") == 0) {
        o->mode = MODE_ECHO;
      } else if (strcmp(optarg, "fanout") == 0) {
        o->mode = MODE_FANOUT;
      } else if (strcmp(optarg, "connect") == 0) {
        o->mode = MODE_CONNECT;
      } else if (strcmp(optarg, "reconnect") == 0) {
        o->mode = MODE_RECONNECT;
      } else {
        fprintf(stderr, "agentws-load: unknown mode '%s'\n", optarg);
        r = -1;
      }
      break;
    case O_HOST: o->host = optarg; break;
    case O_PORT: r = parse_int("port", optarg, 1, 65535, &o->port); break;
    case O_PATH: o->path = optarg; break;
    case O_QUERY: o->query = optarg; break;
    case O_HEADER:
      if (o->nheaders == LOAD_MAX_HEADERS || strpbrk(optarg, "\r\n") != NULL) {
        fprintf(stderr, "agentws-load: at most %d single-line --header\n",
                LOAD_MAX_HEADERS);
        r = -1;
      } else {
        o->headers[o->nheaders++] = optarg;
      }
      break;
    case O_CONNS:
      r = parse_int("conns", optarg, 1, 1000000, &o->conns);
      conns_set = 1;
      break;
    case O_PIPELINE: r = parse_int("pipeline", optarg, 1, 65536, &o->pipeline); break;
    case O_SIZE: r = parse_int("size", optarg, 1, 16 << 20, &size); break;
    case O_DURATION: r = parse_num("duration", optarg, 0.1, 3600, &o->duration); break;
    case O_WARMUP: r = parse_num("warmup", optarg, 0, 600, &o->warmup); break;
    case O_BINARY: o->binary = 1; break;
    case O_RAW: o->raw = 1; break;
    case O_RATE: r = parse_num("rate", optarg, 0, 1e6, &o->rate); break;
    case O_HOLD: r = parse_num("hold", optarg, 0, 3600, &o->hold); break;
    case O_CTIMEOUT:
      r = parse_num("connect-timeout", optarg, 0.1, 600, &o->connect_timeout);
      break;
    case O_MAXPEND: r = parse_int("max-pending", optarg, 1, 100000, &o->max_pending); break;
    case O_SEND: o->send_text = optarg; break;
    case O_MAXMSG: r = parse_int("max-msg", optarg, 16, 64 << 20, &max_msg); break;
    case O_USERS: r = parse_int("users", optarg, 1, 1000000, &o->users); break;
    case O_STALL: r = parse_int("stall", optarg, 0, 1000000, &o->stall); break;
    case O_TOKEN_FILE: o->token_file = optarg; break;
    case O_COUNT: r = parse_num("count", optarg, 0, 1e12, &count); break;
    case O_HELP: usage(stdout); exit(0);
    default: r = -1; break;
    }
  }
  if (r != 0 || optind != argc) {
    usage(stderr);
    return -1;
  }
  if (o->port < 0) {
    fprintf(stderr, "agentws-load: --port is required\n");
    return -1;
  }
  if (o->raw && o->mode != MODE_ECHO) {
    fprintf(stderr, "agentws-load: --raw applies to --mode echo only\n");
    return -1;
  }
  if (o->raw && o->token_file != NULL) {
    fprintf(stderr, "agentws-load: --token-file needs WebSocket, not --raw\n");
    return -1;
  }
  if (count > 0 && o->mode != MODE_RECONNECT) {
    fprintf(stderr, "agentws-load: --count applies to --mode reconnect only\n");
    return -1;
  }
  if (o->mode == MODE_RECONNECT && !conns_set) {
    o->conns = 1000;
  }
  if ((o->users > 0 || o->stall > 0) && o->mode != MODE_FANOUT) {
    fprintf(stderr, "agentws-load: --users and --stall apply to --mode fanout only\n");
    return -1;
  }
  if (o->stall > o->conns) {
    fprintf(stderr, "agentws-load: --stall must not exceed --conns\n");
    return -1;
  }
  if (o->users > 0 && o->query == NULL) {
    o->query = "user=u%d";
  }
  if (o->path[0] != '/' || strpbrk(o->path, " \r\n") != NULL ||
      (o->query != NULL && strpbrk(o->query, " \r\n") != NULL)) {
    fprintf(stderr, "agentws-load: bad --path or --query\n");
    return -1;
  }
  o->size = (size_t)size;
  o->max_msg = (size_t)max_msg;
  o->count = (uint64_t)count;
  return 0;
}

/* --token-file: every non-empty line (CR/LF stripped) is a token; the
 * lines stay in one buffer, NUL-terminated in place. Tokens must be
 * visible ASCII (they go into a header line as they are). */
static int load_tokens(struct load_opts *o) {
  FILE *f;
  char *buf;
  size_t n = 0, i, start, lines = 0;
  int nt = 0;
  if (o->token_file == NULL) {
    return 0;
  }
  f = fopen(o->token_file, "rb");
  if (f == NULL) {
    fprintf(stderr, "agentws-load: cannot open --token-file %s\n", o->token_file);
    return -1;
  }
  buf = malloc(TOKEN_FILE_MAX + 1);
  if (buf != NULL) {
    n = fread(buf, 1, TOKEN_FILE_MAX + 1, f);
  }
  fclose(f);
  if (buf == NULL || n > TOKEN_FILE_MAX) {
    fprintf(stderr, "agentws-load: --token-file: out of memory or over %u bytes\n",
            TOKEN_FILE_MAX);
    free(buf);
    return -1;
  }
  o->token_buf = buf;
  buf[n] = '\n'; /* the last line needs no newline */
  for (i = 0; i <= n; i++) {
    lines += buf[i] == '\n';
  }
  lines = lines < TOKENS_MAX ? lines : TOKENS_MAX;
  o->tokens = calloc(lines, sizeof(*o->tokens));
  o->token_lens = calloc(lines, sizeof(*o->token_lens));
  if (o->tokens == NULL || o->token_lens == NULL) {
    fprintf(stderr, "agentws-load: out of memory\n");
    return -1;
  }
  for (i = start = 0; i <= n; i++) {
    size_t len;
    if (buf[i] != '\n') {
      if ((buf[i] < 0x21 || buf[i] > 0x7e) &&
          !(buf[i] == '\r' && buf[i + 1] == '\n')) {
        fprintf(stderr, "agentws-load: --token-file: line %d is not a token\n",
                nt + 1);
        return -1;
      }
      continue;
    }
    len = i - start;
    if (len > 0 && buf[i - 1] == '\r') {
      len--;
    }
    buf[start + len] = '\0';
    if (len > 0) {
      if ((size_t)nt == lines || len > TOKEN_LEN_MAX) {
        fprintf(stderr, "agentws-load: --token-file: at most %d tokens of %d bytes\n",
                TOKENS_MAX, TOKEN_LEN_MAX);
        return -1;
      }
      o->tokens[nt] = buf + start;
      o->token_lens[nt++] = len;
    }
    start = i + 1;
  }
  if (nt == 0) {
    fprintf(stderr, "agentws-load: --token-file %s holds no token\n", o->token_file);
    return -1;
  }
  o->ntokens = nt;
  return 0;
}

/* Loopback only: this tool must never load someone else's server. */
static int resolve(struct load *ld) {
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ld->addr;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ld->addr;
  const char *h = ld->o.host;
  if (strcmp(h, "localhost") == 0) {
    h = ld->o.host = "127.0.0.1";
  }
  if (uv_ip4_addr(h, ld->o.port, a4) == 0) {
    if ((ntohl(a4->sin_addr.s_addr) >> 24) == 127) {
      return 0;
    }
  } else if (uv_ip6_addr(h, ld->o.port, a6) == 0) {
    static const struct in6_addr lo = IN6ADDR_LOOPBACK_INIT;
    if (memcmp(&a6->sin6_addr, &lo, sizeof(lo)) == 0) {
      return 0;
    }
  }
  fprintf(stderr, "agentws-load: --host must be a loopback address\n");
  return -1;
}

static void raise_nofile(int conns) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    return;
  }
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      getrlimit(RLIMIT_NOFILE, &rl);
    }
  }
  if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)conns + 32 > rl.rlim_cur) {
    fprintf(stderr,
            "agentws-load: warning: %d connections but NOFILE limit is %llu;"
            " the excess will fail (counted as connect errors)\n",
            conns, (unsigned long long)rl.rlim_cur);
  }
}

/* ---- connect phase */

static uint64_t connect_deadline_ns(const struct load *ld) {
  /* Generous: three connect timeouts plus the pacing time. */
  double s = ld->o.connect_timeout * 3;
  if (ld->o.rate > 0) {
    s += ld->o.conns / ld->o.rate;
  }
  return (uint64_t)(s * 1e9);
}

static void on_measure_done(uv_timer_t *t) {
  begin_drain(t->data);
}

static void start_measure(struct load *ld) {
  ld->phase = PH_MEASURE;
  ld->t_measure0 = uv_hrtime();
  ld->cpu0 = cpu_seconds();
  ld->round_trips = ld->messages = ld->with_ts = ld->with_us = ld->bytes = 0;
  memset(ld->per_s, 0, sizeof(ld->per_s));
  memset(ld->per_s_max, 0, sizeof(ld->per_s_max));
  hist_reset(&ld->hist);
  hist_reset(&ld->hist_us);
  hist_reset(&ld->hist_close);
  uv_timer_start(&ld->phase_timer, on_measure_done,
                 (uint64_t)(ld->o.duration * 1000), 0);
}

static void on_warmup_done(uv_timer_t *t) {
  start_measure(t->data);
}

static void on_all_connected(struct load *ld) {
  int i, j;
  ld->t_connected = ld->now = uv_hrtime();
  uv_timer_stop(&ld->tick);
  fprintf(stderr, "agentws-load: %d/%d connections open in %.1f ms\n", ld->open,
          ld->o.conns, (double)(ld->t_connected - ld->t_connect0) / 1e6);
  if (ld->open == 0) {
    begin_drain(ld);
    return;
  }
  if (ld->o.mode == MODE_CONNECT) {
    ld->phase = PH_HOLD;
    fprintf(stderr, "agentws-load: holding %d connections for %.1f s\n", ld->open,
            ld->o.hold);
    uv_timer_start(&ld->phase_timer, on_measure_done,
                   (uint64_t)(ld->o.hold * 1000), 0);
    return;
  }
  for (i = 0; i < ld->o.conns; i++) {
    struct conn *c = &ld->conns[i];
    if (c->state != CS_OPEN) {
      continue;
    }
    if (ld->o.mode == MODE_ECHO) {
      for (j = 0; j < ld->o.pipeline && c->state == CS_OPEN; j++) {
        load_conn_send_msg(c);
      }
    } else if (ld->o.send_text != NULL) {
      load_conn_send_text(c, ld->o.send_text, strlen(ld->o.send_text));
    }
  }
  if (ld->o.warmup > 0) {
    ld->phase = PH_WARMUP;
    uv_timer_start(&ld->phase_timer, on_warmup_done,
                   (uint64_t)(ld->o.warmup * 1000), 0);
  } else {
    start_measure(ld);
  }
  load_flush_dirty(ld);
}

static void check_connect_done(struct load *ld) {
  if (ld->phase == PH_CONNECT && ld->next_conn >= ld->o.conns &&
      ld->pending == 0) {
    on_all_connected(ld);
  }
}

static void start_more(struct load *ld) {
  int allowed = ld->o.conns;
  if (ld->phase != PH_CONNECT || g_starting) {
    return;
  }
  if (ld->o.rate > 0) {
    double el = secs(uv_hrtime() - ld->t_connect0);
    double a = el * ld->o.rate + 1;
    allowed = a < (double)ld->o.conns ? (int)a : ld->o.conns;
  }
  g_starting = 1;
  while (ld->next_conn < allowed && ld->pending < ld->o.max_pending) {
    struct conn *c = &ld->conns[ld->next_conn];
    c->idx = ld->next_conn++;
    c->stall_conn = c->idx < ld->o.stall;
    load_conn_start(ld, c);
  }
  g_starting = 0;
  check_connect_done(ld);
}

/* Reconnect mode: a cycle (connect, upgrade, welcome, close handshake)
 * still running after the connect timeout fails, and the client starts
 * again from its close callback. */
static void sweep_cycles(struct load *ld, uint64_t now) {
  uint64_t limit = (uint64_t)(ld->o.connect_timeout * 1e9);
  int i;
  for (i = 0; i < ld->next_conn; i++) {
    struct conn *c = &ld->conns[i];
    if (c->state != CS_IDLE && c->state != CS_CLOSED && now - c->t_start > limit) {
      ld->err.timeout++;
      load_conn_close(c);
    }
  }
}

/* Fails connections stuck in connect/upgrade; ends the phase at its deadline. */
static void sweep(struct load *ld, uint64_t now) {
  uint64_t limit = (uint64_t)(ld->o.connect_timeout * 1e9);
  int past_deadline = now - ld->t_connect0 > connect_deadline_ns(ld);
  int i;
  if (ld->o.mode == MODE_RECONNECT) {
    sweep_cycles(ld, now);
    return;
  }
  g_starting = 1;
  for (i = 0; i < ld->next_conn; i++) {
    struct conn *c = &ld->conns[i];
    if ((c->state == CS_CONNECTING || c->state == CS_UPGRADING) &&
        (past_deadline || now - c->t_start > limit)) {
      ld->err.timeout++;
      load_conn_close(c);
    }
  }
  if (past_deadline) {
    ld->err.timeout += (uint64_t)(ld->o.conns - ld->next_conn);
    ld->next_conn = ld->o.conns;
  }
  g_starting = 0;
}

static void on_tick(uv_timer_t *t) {
  struct load *ld = t->data;
  uint64_t now = uv_hrtime();
  if (now - ld->last_sweep >= SWEEP_NS) {
    ld->last_sweep = now;
    sweep(ld, now);
  }
  start_more(ld);
  load_flush_dirty(ld);
}

/* ---- reconnect mode */

static void start_client(struct load *ld) {
  struct conn *c = &ld->conns[ld->next_conn];
  c->idx = ld->next_conn++;
  ld->cycles++;
  if (load_conn_start(ld, c) != 0 && c->state == CS_IDLE) {
    ld->lost++; /* no handle, so no close callback to start it again */
  }
}

/* --max-pending clients start at once, and each finished cycle adds one
 * more until all C run: a burst of C SYNs at once would overflow the
 * server's listen backlog, and a dropped SYN costs a 1 s retransmit. */
static void start_cycles(struct load *ld) {
  int i;
  ld->t_connected = ld->t_connect0;
  if (ld->o.warmup > 0) {
    ld->phase = PH_WARMUP;
    uv_timer_start(&ld->phase_timer, on_warmup_done,
                   (uint64_t)(ld->o.warmup * 1000), 0);
  } else {
    start_measure(ld);
  }
  fprintf(stderr, "agentws-load: %d clients reconnecting, warmup %.1f s, window %.1f s\n",
          ld->o.conns, ld->o.warmup, ld->o.duration);
  for (i = 0; i < ld->o.conns && i < ld->o.max_pending; i++) {
    start_client(ld);
  }
  load_flush_dirty(ld);
}

/* From the close callback: the next cycle, while the run lasts. */
static void next_cycle(struct load *ld, struct conn *c) {
  if (ld->phase != PH_WARMUP && ld->phase != PH_MEASURE) {
    return;
  }
  if (ld->phase == PH_MEASURE && c->welcomed && c->t_welcome >= ld->t_measure0) {
    hist_add(&ld->hist_close, uv_hrtime() - c->t_welcome);
  }
  if (ld->next_conn < ld->o.conns) {
    start_client(ld);
  }
  load_conn_reset(c);
  ld->cycles++;
  if (load_conn_start(ld, c) != 0 && c->state == CS_IDLE) {
    ld->lost++;
  }
}

static void on_cycle_message(struct load *ld, struct conn *c) {
  if (c->state != CS_OPEN || c->welcomed) {
    return; /* anything after the welcome, or during our close */
  }
  c->welcomed = 1;
  c->t_welcome = ld->now;
  if (ld->phase == PH_MEASURE) {
    ld->handshakes++;
    hist_add(&ld->hist, ld->now - c->t_start);
    if (ld->o.count > 0 && ld->handshakes >= ld->o.count) {
      begin_drain(ld);
      return;
    }
  }
  load_conn_begin_close(c);
}

/* ---- events from load_conn.c */

void load_on_open(struct conn *c) {
  struct load *ld = c->ld;
  if (ld->o.mode == MODE_RECONNECT) {
    if (ld->phase == PH_MEASURE) {
      hist_add(&ld->hist_us, ld->now - c->t_start); /* to the 101 */
    }
    return;
  }
  start_more(ld);
}

void load_on_conn_failed(struct conn *c) {
  start_more(c->ld);
}

/* The number after the first |key| (e.g. "\"ts\":") at or after |s|; sets
 * *end past it. A deliberate strstr scan, not a JSON parser: the envelope
 * puts the top-level "ts" before "data", so the first match is the right
 * one, and fanout-host's "emit_us" is the first member of "data". */
static int parse_num_after(const char *s, const char *key, size_t key_len,
                           int64_t *out, const char **end) {
  const char *p = strstr(s, key);
  int64_t v = 0;
  int digits = 0;
  if (p == NULL) {
    return -1;
  }
  p += key_len;
  while (*p == ' ') {
    p++;
  }
  while (*p >= '0' && *p <= '9' && digits < 18) {
    v = v * 10 + (*p++ - '0');
    digits++;
  }
  if (digits == 0) {
    return -1;
  }
  *out = v;
  *end = p;
  return 0;
}

#define KEY_TS "\"ts\":"
#define KEY_EMIT_US "\"emit_us\":"

static void on_fanout_message(struct load *ld, struct conn *c) {
  int64_t ts, emit_us, lat_us;
  const char *p;
  double el;
  int sec;
  if (c->stall_conn && !c->stalled && ld->phase < PH_DRAIN) {
    load_conn_stall(c); /* the first message is the welcome */
    return;
  }
  if (ld->phase != PH_MEASURE) {
    return;
  }
  ld->messages++;
  c->msgs++;
  ld->bytes += c->msg_len;
  el = secs(ld->now - ld->t_measure0);
  sec = el >= 0 && el < 64 ? (int)el : -1;
  if (sec >= 0) {
    ld->per_s[sec]++;
  }
  if (c->msg_opcode != WSLAY_TEXT_FRAME || c->msg.p == NULL || ld->wall_us == 0) {
    return; /* load_conn.c NUL-terminates text messages */
  }
  if (parse_num_after((const char *)c->msg.p, KEY_TS, sizeof(KEY_TS) - 1, &ts,
                      &p) != 0) {
    return;
  }
  /* ts is whole milliseconds (truncated), so this overstates the latency
   * by up to 1 ms; same host, same clock. */
  lat_us = ld->wall_us - ts * 1000;
  ld->with_ts++;
  hist_add(&ld->hist, (uint64_t)(lat_us < 0 ? 0 : lat_us) * 1000);
  if (parse_num_after(p, KEY_EMIT_US, sizeof(KEY_EMIT_US) - 1, &emit_us, &p) == 0) {
    lat_us = ld->wall_us - emit_us;
    ld->with_us++;
    if (sec >= 0 && lat_us > 0 && (uint64_t)lat_us > ld->per_s_max[sec]) {
      ld->per_s_max[sec] = (uint64_t)lat_us;
    }
    hist_add(&ld->hist_us, (uint64_t)(lat_us < 0 ? 0 : lat_us) * 1000);
  }
}

void load_on_message(struct conn *c) {
  struct load *ld = c->ld;
  if (ld->o.mode == MODE_FANOUT) {
    on_fanout_message(ld, c);
  } else if (ld->o.mode == MODE_RECONNECT) {
    on_cycle_message(ld, c);
  } else if (ld->o.mode == MODE_ECHO) {
    uint8_t want = ld->o.binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME;
    uint64_t sent;
    if (c->ts_count == 0) {
      ld->err.protocol++; /* nothing outstanding: not an echo of ours */
      return;
    }
    sent = c->sent_ts[c->ts_head];
    c->ts_head = (c->ts_head + 1) % ld->o.pipeline;
    c->ts_count--;
    if (c->msg_len != ld->o.size || (!ld->o.raw && c->msg_opcode != want)) {
      ld->err.protocol++;
    }
    if (ld->phase == PH_MEASURE) {
      ld->round_trips++;
      hist_add(&ld->hist, ld->now - sent);
    }
    if (ld->phase == PH_WARMUP || ld->phase == PH_MEASURE) {
      load_conn_send_msg(c);
    }
  }
}

/* ---- ending */

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) {
    uv_close(h, NULL);
  }
}

static void finish(struct load *ld) {
  if (ld->phase == PH_DONE) {
    return;
  }
  ld->phase = PH_DONE;
  close_handle((uv_handle_t *)&ld->tick);
  close_handle((uv_handle_t *)&ld->phase_timer);
  close_handle((uv_handle_t *)&ld->watchdog);
  close_handle((uv_handle_t *)&ld->flush);
  close_handle((uv_handle_t *)&ld->sigint);
}

void load_on_closed(struct conn *c) {
  struct load *ld = c->ld;
  if (ld->o.mode == MODE_RECONNECT) {
    next_cycle(ld, c);
  }
  if (ld->handles == 0 && ld->phase >= PH_DRAIN) {
    finish(ld);
  }
}

static void close_all(struct load *ld) {
  int i;
  for (i = 0; i < ld->next_conn; i++) {
    load_conn_close(&ld->conns[i]);
  }
}

static void on_grace_over(uv_timer_t *t) {
  struct load *ld = t->data;
  close_all(ld);
  if (ld->handles == 0) {
    finish(ld);
  }
}

static void begin_drain(struct load *ld) {
  int i;
  if (ld->phase >= PH_DRAIN) {
    return;
  }
  if (ld->phase == PH_MEASURE) {
    ld->t_measure1 = uv_hrtime();
    ld->cpu1 = cpu_seconds();
  }
  ld->phase = PH_DRAIN;
  uv_timer_stop(&ld->tick);
  for (i = 0; i < ld->next_conn; i++) {
    load_conn_begin_close(&ld->conns[i]);
  }
  load_flush_dirty(ld);
  if (ld->handles == 0) {
    finish(ld);
  } else {
    uv_timer_start(&ld->phase_timer, on_grace_over, DRAIN_GRACE_MS, 0);
  }
}

static void on_watchdog(uv_timer_t *t) {
  struct load *ld = t->data;
  fprintf(stderr, "agentws-load: watchdog: run exceeded its time cap\n");
  ld->watchdog_fired = 1;
  begin_drain(ld);
  close_all(ld);
  if (ld->handles == 0) {
    finish(ld);
  }
}

static void on_sigint(uv_signal_t *s, int signum) {
  (void)signum;
  fprintf(stderr, "agentws-load: interrupted, draining\n");
  begin_drain(s->data);
}

static void on_check(uv_check_t *h) {
  load_flush_dirty(h->data);
}

/* ---- report */

static uint64_t total_errors(const struct load_errors *e) {
  return e->connect + e->handshake + e->timeout + e->protocol + e->closed + e->io;
}

/* fanout: how the receiving connections fared, and what the stalled ones saw. */
static void report_fanout_conns(const struct load *ld, double dur) {
  uint64_t min_msgs = UINT64_MAX, zero = 0;
  int i, active = 0, st_1013 = 0, st_other = 0, st_none = 0, n;
  for (i = 0; i < ld->next_conn; i++) {
    const struct conn *c = &ld->conns[i];
    if (c->stall_conn) {
      if (c->peer_close == 1013) {
        st_1013++;
      } else if (c->peer_close != 0) {
        st_other++;
      } else {
        st_none++;
      }
      continue;
    }
    if (c->state == CS_IDLE) {
      continue; /* never started */
    }
    active++;
    if (c->msgs < min_msgs) {
      min_msgs = c->msgs;
    }
    if (c->msgs == 0) {
      zero++;
    }
  }
  printf(",\"active\":%d,\"active_min_msgs\":%llu,\"active_zero\":%llu,"
         "\"stalled\":%d,\"stalled_close_1013\":%d,\"stalled_close_other\":%d,"
         "\"stalled_no_close\":%d,\"msg_per_s_series\":[",
         active, (unsigned long long)(active > 0 ? min_msgs : 0),
         (unsigned long long)zero, ld->o.stall, st_1013, st_other, st_none);
  n = dur > 0 ? (int)(dur + 0.5) : 0; /* whole seconds; a last sliver is left out */
  for (i = 0; i < n && i < 64; i++) {
    printf("%s%llu", i ? "," : "", (unsigned long long)ld->per_s[i]);
  }
  printf("],\"emit_max_us_series\":[");
  for (i = 0; i < n && i < 64; i++) {
    printf("%s%llu", i ? "," : "", (unsigned long long)ld->per_s_max[i]);
  }
  printf("]");
}

static void report(const struct load *ld) {
  const struct load_opts *o = &ld->o;
  const struct load_errors *e = &ld->err;
  static const char *const names[] = {"echo", "fanout", "connect", "reconnect"};
  double connect_ms = (double)(ld->t_connected - ld->t_connect0) / 1e6;
  double dur = ld->t_measure1 > ld->t_measure0 ? secs(ld->t_measure1 - ld->t_measure0) : 0;
  if (ld->t_connected == 0) {
    connect_ms = 0;
  }
  printf("{\"mode\":\"%s\"", names[o->mode]);
  if (o->mode == MODE_ECHO) {
    printf(",\"transport\":\"%s\"", o->raw ? "raw" : "ws");
  }
  printf(",\"host\":\"%s\",\"port\":%d,\"conns\":%d,\"open\":%d,\"connect_ms\":%.1f",
         o->host, o->port, o->conns, ld->opened, connect_ms);
  if (o->ntokens > 0) {
    printf(",\"tokens\":%d", o->ntokens);
  }
  if (o->mode == MODE_ECHO) {
    printf(",\"pipeline\":%d,\"size\":%zu,\"binary\":%s,\"warmup_s\":%.1f,"
           "\"duration_s\":%.3f,\"round_trips\":%llu,\"rt_per_s\":%.1f",
           o->pipeline, o->size, o->binary ? "true" : "false", o->warmup, dur,
           (unsigned long long)ld->round_trips,
           dur > 0 ? (double)ld->round_trips / dur : 0.0);
  } else if (o->mode == MODE_FANOUT) {
    printf(",\"users\":%d,\"warmup_s\":%.1f,\"duration_s\":%.3f,\"messages\":%llu,"
           "\"msg_per_s\":%.1f,\"with_ts\":%llu,\"with_emit_us\":%llu,"
           "\"avg_msg_bytes\":%.1f",
           o->users, o->warmup, dur, (unsigned long long)ld->messages,
           dur > 0 ? (double)ld->messages / dur : 0.0,
           (unsigned long long)ld->with_ts, (unsigned long long)ld->with_us,
           ld->messages > 0 ? (double)ld->bytes / (double)ld->messages : 0.0);
    report_fanout_conns(ld, dur);
  } else if (o->mode == MODE_RECONNECT) {
    /* "open" above: upgrades completed over the whole run, warmup too. */
    printf(",\"warmup_s\":%.1f,\"duration_s\":%.3f,\"count\":%llu,\"cycles\":%llu,"
           "\"lost\":%llu,\"handshakes\":%llu,\"hs_per_s\":%.1f,"
           "\"upgrade_p50_us\":%.1f,\"upgrade_p99_us\":%.1f,"
           "\"close_p50_us\":%.1f,\"close_p99_us\":%.1f",
           o->warmup, dur, (unsigned long long)o->count,
           (unsigned long long)ld->cycles, (unsigned long long)ld->lost,
           (unsigned long long)ld->handshakes,
           dur > 0 ? (double)ld->handshakes / dur : 0.0,
           (double)hist_quantile(&ld->hist_us, 0.50) / 1e3,
           (double)hist_quantile(&ld->hist_us, 0.99) / 1e3,
           (double)hist_quantile(&ld->hist_close, 0.50) / 1e3,
           (double)hist_quantile(&ld->hist_close, 0.99) / 1e3);
  } else {
    printf(",\"rate\":%.1f,\"open_ms\":%.1f,\"hold_s\":%.1f", o->rate,
           connect_ms, o->hold);
  }
  if (o->mode != MODE_CONNECT) {
    /* Fraction of one core the generator used in the window; near 1.0
     * means it, not the server, may be the limit. */
    printf(",\"client_cpu\":%.2f", dur > 0 ? (ld->cpu1 - ld->cpu0) / dur : 0.0);
    printf(",\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f",
           (double)hist_quantile(&ld->hist, 0.50) / 1e3,
           (double)hist_quantile(&ld->hist, 0.99) / 1e3,
           (double)ld->hist.max / 1e3);
  }
  if (o->mode == MODE_FANOUT) {
    printf(",\"emit_p50_us\":%.1f,\"emit_p99_us\":%.1f,\"emit_max_us\":%.1f",
           (double)hist_quantile(&ld->hist_us, 0.50) / 1e3,
           (double)hist_quantile(&ld->hist_us, 0.99) / 1e3,
           (double)ld->hist_us.max / 1e3);
  }
  printf(",\"errors\":%llu,\"err_connect\":%llu,\"err_handshake\":%llu,"
         "\"err_timeout\":%llu,\"err_protocol\":%llu,\"err_closed\":%llu,"
         "\"err_io\":%llu,\"watchdog\":%s}\n",
         (unsigned long long)total_errors(e), (unsigned long long)e->connect,
         (unsigned long long)e->handshake, (unsigned long long)e->timeout,
         (unsigned long long)e->protocol, (unsigned long long)e->closed,
         (unsigned long long)e->io, ld->watchdog_fired ? "true" : "false");
  fflush(stdout);
}

/* ---- main */

int main(int argc, char **argv) {
  struct load *ld = &g_load;
  uv_loop_t loop;
  double cap_s;
  size_t i;
  int rc;

  if (parse_opts(argc, argv, &ld->o) != 0 || resolve(ld) != 0 ||
      load_tokens(&ld->o) != 0) {
    return 2;
  }
  signal(SIGPIPE, SIG_IGN); /* a peer reset must be an error code, not death */
  raise_nofile(ld->o.conns);
  if (uv_loop_init(&loop) != 0) {
    return 1;
  }
  ld->loop = &loop;
  if (uv_random(NULL, NULL, &ld->rng, sizeof(ld->rng), 0, NULL) != 0 || ld->rng == 0) {
    ld->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
  }
  ld->conns = calloc((size_t)ld->o.conns, sizeof(*ld->conns));
  ld->rbuf_len = RBUF_LEN;
  ld->rbuf = malloc(ld->rbuf_len);
  ld->payload = malloc(ld->o.size);
  if (ld->conns == NULL || ld->rbuf == NULL || ld->payload == NULL) {
    fprintf(stderr, "agentws-load: out of memory\n");
    return 1;
  }
  for (i = 0; i < ld->o.size; i++) {
    ld->payload[i] = (uint8_t)('a' + i % 26); /* valid UTF-8 for text frames */
  }

  uv_timer_init(&loop, &ld->tick);
  uv_timer_init(&loop, &ld->phase_timer);
  uv_timer_init(&loop, &ld->watchdog);
  uv_check_init(&loop, &ld->flush);
  uv_signal_init(&loop, &ld->sigint);
  ld->tick.data = ld->phase_timer.data = ld->watchdog.data = ld;
  ld->flush.data = ld->sigint.data = ld;
  uv_check_start(&ld->flush, on_check);
  uv_signal_start(&ld->sigint, on_sigint, SIGINT);
  cap_s = secs(connect_deadline_ns(ld)) + ld->o.warmup + DRAIN_GRACE_MS / 1000.0 + 10 +
          (ld->o.mode == MODE_CONNECT ? ld->o.hold : ld->o.duration);
  uv_timer_start(&ld->watchdog, on_watchdog, (uint64_t)(cap_s * 1000), 0);
  uv_timer_start(&ld->tick, on_tick, 1, ld->o.rate > 0 ? 1 : 10);

  ld->phase = PH_CONNECT;
  ld->t_connect0 = ld->last_sweep = uv_hrtime();
  if (ld->o.mode == MODE_RECONNECT) {
    start_cycles(ld);
  } else {
    start_more(ld);
  }
  uv_run(&loop, UV_RUN_DEFAULT);

  report(ld);
  rc = uv_loop_close(&loop);
  if (rc != 0) {
    fprintf(stderr, "agentws-load: loop not empty at exit: %s\n", uv_strerror(rc));
  }
  free(ld->conns);
  free(ld->rbuf);
  free(ld->payload);
  free(ld->o.token_buf);
  free(ld->o.tokens);
  free(ld->o.token_lens);
  return rc == 0 ? 0 : 1;
}
