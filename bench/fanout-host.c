/*
 * fanout-host: a host program that drives libagentws's emitter for the
 * fan-out benchmark (bench/run-fanout.sh, with agentws-load --mode fanout).
 *
 *   fanout-host --conns N --users U [--port 0] [--duration D] [--warmup W]
 *               [--tail T] [--linger L] [--rate R] [--threads T]
 *               [--type custom|thinking] [--size S] [--batch B] [--window K]
 *               [--max-conns-per-user M] [--wait S]
 *               [--validation P] [--monitor on|off] [--scrape-ms N]
 *               [--room R] [--sample-s S] [--backlog-events N]
 *
 * A threaded manager (dev_insecure, ping off, default max_queued_bytes)
 * listens on 127.0.0.1:PORT and prints "listening on 127.0.0.1:PORT". The
 * host counts WebSocket connections with on_open/on_close; once N are open
 * it emits events of about S bytes (the whole envelope) to users u0..u{U-1}
 * in turn from T threads for W + D + T seconds:
 *
 *   - saturation (default): as fast as the loop thread publishes. emit()
 *     itself never refuses (its queue is unbounded), so each thread posts a
 *     marker (agentws_manager_post) after every B events and waits while
 *     more than K of its markers have not run: at most B*K events per
 *     thread are queued, and the emit rate is the manager's. --window 0
 *     removes the bound (emit as fast as emit returns: memory grows).
 *   - --rate R: R events/s in total, paced in 1 ms steps.
 *
 * Each event's envelope "ts" is the server wall clock at emit (ms); its
 * data also carries "emit_us", the wall clock (us) just before the emit
 * call, so the load generator can measure emit->receive below 1 ms.
 *
 * Windows: the connections are all open at t0. [t0+W, t0+W+D] is the
 * measured window (agentws-load --warmup W --duration D measures the same
 * one from its side); emitting goes on for --tail T seconds more so the
 * generator's window ends inside it, then the host lingers L seconds (RSS
 * after the queues drained), stops the manager and prints one JSON line:
 * events emitted (total and in the window), durations, CPU time of the
 * process (getrusage user+sys) over the emission and over the window, the
 * loop thread's and the emitting threads' CPU in the window, VmRSS sampled
 * every second (max, final and the series) and the connections closed
 * during the run by close code. SIGINT/SIGTERM end the run early (still
 * reporting). Everything is bounded by the options; exit 0 unless the
 * options are bad (2) or the manager fails (1).
 *
 * --room R: every connection is added to room R when it opens
 * (agentws_room_add, on the loop thread) and every event goes to the room
 * (AGENTWS_TARGET_ROOM): one event, one seq, framed once, to all N
 * connections (the room-broadcast scenario); users still name the
 * connections.
 *
 * --sample-s S (S > 0, the soak: bench/run-soak.sh) prints to stderr every
 * S seconds of emitting one JSON line: seconds since t0, VmRSS, the
 * library's queued-bytes and loop-lag gauges (agentws_manager_get_stats,
 * from this thread), the probe's largest lag in those S seconds, open
 * connections, events emitted and connections closed so far by code.
 *
 * --monitor off turns the library's monitor off (agentws_config_set_monitor
 * 0: no latency histograms, detectors or gauges) to measure its cost.
 * --scrape-ms N (N > 0) scrapes the host's own /metrics the way Prometheus
 * would: a thread opens a TCP connection to 127.0.0.1:PORT every N ms from
 * the start of emitting until it stops, sends "GET /metrics HTTP/1.1" and
 * reads the answer to EOF (the library closes after it); the report counts
 * scrapes, failures, the last body size and the slowest scrape.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "agentws.h"

#define MAX_THREADS 16
#define MAX_SAMPLES 4096 /* RSS samples, one a second */
#define PAD_MAX 65536

struct opts {
  int port;
  int conns;
  int users;
  double duration;
  double warmup;
  double tail;
  double linger;
  double rate;     /* events/s in total; 0 = saturation */
  int threads;
  int thinking;    /* 1: agent_thinking, 0: custom "bench" */
  int validation;  /* AGENTWS_VALIDATION_*, or -1: the library's default */
  int size;        /* approximate envelope bytes */
  int batch;       /* saturation: events between markers */
  int window;      /* saturation: markers outstanding at most; 0 = no bound */
  int max_per_user;
  int max_queued_kb; /* --max-queued-kb; 0: the library's default */
  int sndbuf_kb;     /* --sndbuf-kb; 0: the kernel's autotuning */
  int monitor;       /* --monitor on (1, default) | off (0) */
  int scrape_ms;     /* --scrape-ms; 0: no /metrics scrapes */
  const char *room;  /* --room; NULL: per-user emits */
  int sample_s;      /* --sample-s; 0: no periodic samples */
  int backlog;       /* --backlog-events; 0: the library's default */
  double wait;     /* seconds to wait for the N connections */
};

struct emitter {
  pthread_t tid;
  int idx;
  struct host *h;
  atomic_ullong emitted;     /* events emit() accepted */
  atomic_ullong errors;      /* events emit() refused */
  atomic_ullong acked;       /* markers that ran on the loop thread */
  unsigned long long posted; /* markers posted (this thread only) */
  pthread_mutex_t lock;      /* with cond: waiting for markers */
  pthread_cond_t cond;
  clockid_t cpu_clock;       /* this thread's CPU clock, if has_clock */
  int has_clock;
  char *pad;                 /* padding text */
  char *tail;                /* data_json after the emit_us digits */
  size_t tail_len;
};

struct host {
  struct opts o;
  agentws_manager *m;
  atomic_int open;           /* WebSocket connections open now */
  atomic_ullong opened;      /* ever opened */
  atomic_ullong room_errors; /* agentws_room_add failures */
  atomic_ullong closes[6];   /* 1000, 1001, 1006, 1011, 1013, other */
  atomic_int stop;           /* emitters stop */
  atomic_int loop_clock_set; /* loop_clock is valid */
  clockid_t loop_clock;      /* the manager thread's CPU clock */
  char (*user_ids)[24];
  /* Loop lag probe: the main thread posts a no-op every 10 ms while none
   * is outstanding; its post -> run delay shows how long the loop thread
   * is busy between polls. */
  atomic_int probe_busy;
  double probe_t;            /* mono_s() when posted */
  double probe_t0;           /* start of the series */
  atomic_ullong probes;      /* probes that ran */
  double lag_max_s[MAX_SAMPLES]; /* largest lag in each second since t0 */
  double lag_sum_s;          /* sum of lags, for the mean */
  struct emitter em[MAX_THREADS];
  /* /metrics scraper (--scrape-ms), its own thread. */
  int port;                  /* the bound port */
  pthread_t scrape_tid;
  unsigned long long scrapes;       /* answered 200 and read to EOF */
  unsigned long long scrape_errors; /* connect/I/O failures, other status */
  size_t scrape_bytes;       /* the last good answer, head included */
  double scrape_max_s;       /* slowest good scrape, connect to EOF */
};

static volatile sig_atomic_t g_signalled;

static void on_signal(int sig) {
  (void)sig;
  g_signalled = 1;
}

/* ---- clocks */

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

static double clock_s(clockid_t c) {
  struct timespec ts;
  if (clock_gettime(c, &ts) != 0)
    return 0;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rusage_cpu_s(void);
static long vmrss_kb(void);

/* One --sample-s line; |from| is the first second of the period. */
static void soak_sample(struct host *h, double now, int started) {
  agentws_stats *st = NULL;
  unsigned long long emitted = 0;
  double lag = 0;
  int i, from = (int)(now - h->probe_t0) - h->o.sample_s;
  for (i = from < 0 ? 0 : from; i <= (int)(now - h->probe_t0) && i < MAX_SAMPLES;
       i++)
    if (h->lag_max_s[i] > lag)
      lag = h->lag_max_s[i];
  for (i = 0; i < started; i++)
    emitted += atomic_load(&h->em[i].emitted);
  if (agentws_stats_new(&st) != 0 || agentws_manager_get_stats(h->m, st) != 0) {
    agentws_stats_free(st);
    return;
  }
  fprintf(stderr,
          "{\"t\":%.0f,\"rss_kb\":%ld,\"queued_bytes\":%llu,"
          "\"queued_bytes_max\":%llu,\"loop_lag_us\":%llu,"
          "\"probe_lag_max_ms\":%.2f,\"open\":%d,\"emitted\":%llu,"
          "\"closes\":[%llu,%llu,%llu,%llu,%llu,%llu]}\n",
          now - h->probe_t0, vmrss_kb(),
          (unsigned long long)agentws_stats_get(st, AGENTWS_STAT_QUEUED_BYTES),
          (unsigned long long)agentws_stats_get(st,
                                                AGENTWS_STAT_QUEUED_BYTES_MAX),
          (unsigned long long)agentws_stats_get(st, AGENTWS_STAT_LOOP_LAG_US),
          lag * 1000, atomic_load(&h->open), emitted,
          atomic_load(&h->closes[0]), atomic_load(&h->closes[1]),
          atomic_load(&h->closes[2]), atomic_load(&h->closes[3]),
          atomic_load(&h->closes[4]), atomic_load(&h->closes[5]));
  agentws_stats_free(st);
}

static double rusage_cpu_s(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return 0;
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long vmrss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kb = strtol(line + 6, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb;
}

static void sleep_s(double s) {
  struct timespec ts;
  if (s <= 0)
    return;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_signalled) {
  }
}

/* ---- callbacks (loop thread) */

static void on_open(agentws_manager *m, uint64_t conn_id, void *ud) {
  struct host *h = ud;
  if (h->o.room != NULL && agentws_room_add(m, conn_id, h->o.room) != 0)
    atomic_fetch_add(&h->room_errors, 1);
  atomic_fetch_add(&h->open, 1);
  atomic_fetch_add(&h->opened, 1);
}

static void on_close(agentws_manager *m, uint64_t conn_id, int code,
                     const char *reason, size_t reason_len, void *ud) {
  struct host *h = ud;
  int i;
  (void)m;
  (void)conn_id;
  (void)reason;
  (void)reason_len;
  switch (code) {
  case 1000: i = 0; break;
  case 1001: i = 1; break;
  case 1006: i = 2; break;
  case 1011: i = 3; break;
  case 1013: i = 4; break;
  default: i = 5; break;
  }
  atomic_fetch_add(&h->closes[i], 1);
  atomic_fetch_sub(&h->open, 1);
}

static void on_get_clock(agentws_manager *m, void *ud) {
  struct host *h = ud;
  (void)m;
  if (pthread_getcpuclockid(pthread_self(), &h->loop_clock) == 0)
    atomic_store(&h->loop_clock_set, 1);
}

static void on_probe(agentws_manager *m, void *ud) {
  struct host *h = ud;
  double now = mono_s(), lag = now - h->probe_t;
  long sec = (long)(now - h->probe_t0);
  (void)m;
  if (sec >= 0 && sec < MAX_SAMPLES && lag > h->lag_max_s[sec])
    h->lag_max_s[sec] = lag;
  h->lag_sum_s += lag;
  atomic_fetch_add(&h->probes, 1);
  atomic_store(&h->probe_busy, 0); /* releases the fields above */
}

static void probe(struct host *h) {
  if (atomic_load(&h->probe_busy))
    return;
  atomic_store(&h->probe_busy, 1);
  h->probe_t = mono_s();
  if (agentws_manager_post(h->m, on_probe, h) != 0)
    atomic_store(&h->probe_busy, 0);
}

static void on_marker(agentws_manager *m, void *ud) {
  struct emitter *em = ud;
  (void)m;
  pthread_mutex_lock(&em->lock);
  atomic_fetch_add(&em->acked, 1);
  pthread_cond_signal(&em->cond);
  pthread_mutex_unlock(&em->lock);
}

/* ---- emitting threads */

/* data_json: {"emit_us":<digits><tail>, without printf on the hot path. */
static void make_data(const struct emitter *em, char *data) {
  static const char head[] = "{\"emit_us\":";
  char digits[24];
  long long us = wall_us();
  size_t n = 0;
  char *p = data;
  do {
    digits[n++] = (char)('0' + us % 10);
    us /= 10;
  } while (us > 0 && n < sizeof(digits));
  memcpy(p, head, sizeof(head) - 1);
  p += sizeof(head) - 1;
  while (n > 0)
    *p++ = digits[--n];
  memcpy(p, em->tail, em->tail_len + 1);
}

static int emit_one(struct emitter *em, unsigned long long n) {
  struct host *h = em->h;
  /* Users in turn, threads interleaved: thread t takes t, t+T, t+2T, ... */
  const char *user = h->user_ids[(n * (unsigned)h->o.threads + (unsigned)em->idx) %
                                 (unsigned)h->o.users];
  char data[PAD_MAX + 128];
  int target = h->o.room != NULL ? AGENTWS_TARGET_ROOM : AGENTWS_TARGET_USER;
  const char *id = h->o.room != NULL ? h->o.room : user;
  int rv;
  make_data(em, data);
  if (h->o.thinking)
    rv = agentws_emit_agent_thinking(h->m, target, id, "r-1", em->pad,
                                     strlen(em->pad), data);
  else
    rv = agentws_emit_custom(h->m, target, id, "bench", NULL, data);
  if (rv != 0) {
    if (atomic_fetch_add(&em->errors, 1) == 0)
      fprintf(stderr, "fanout-host: emit: %s\n", agentws_err_name(rv));
    return rv;
  }
  atomic_fetch_add_explicit(&em->emitted, 1, memory_order_relaxed);
  return 0;
}

/* Waits until at most |window| markers are outstanding (or stop). */
static void wait_window(struct emitter *em, int window) {
  struct timespec dl;
  pthread_mutex_lock(&em->lock);
  while (em->posted - atomic_load(&em->acked) > (unsigned long long)window &&
         !atomic_load(&em->h->stop)) {
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_nsec += 100 * 1000 * 1000;
    if (dl.tv_nsec >= 1000000000) {
      dl.tv_sec++;
      dl.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&em->cond, &em->lock, &dl);
  }
  pthread_mutex_unlock(&em->lock);
}

static void *emitter_main(void *arg) {
  struct emitter *em = arg;
  struct host *h = em->h;
  const struct opts *o = &h->o;
  unsigned long long n = 0;
  if (o->rate > 0) {
    double per_thread = o->rate / o->threads;
    double t0 = mono_s();
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!atomic_load(&h->stop)) {
      double due = (mono_s() - t0) * per_thread;
      while ((double)n < due && !atomic_load(&h->stop)) {
        emit_one(em, n);
        n++;
      }
      /* Wakes for the next event due, but at most every 1 ms: a slow rate
       * costs no idle wake-ups competing with the loop thread for a core. */
      next.tv_nsec += 1000 * 1000;
      if (next.tv_nsec >= 1000000000) {
        next.tv_sec++;
        next.tv_nsec -= 1000000000;
      }
      {
        double t_due = t0 + (double)n / per_thread;
        if (t_due > (double)next.tv_sec + (double)next.tv_nsec / 1e9) {
          next.tv_sec = (time_t)t_due;
          next.tv_nsec = (long)((t_due - (double)next.tv_sec) * 1e9);
        }
      }
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    return NULL;
  }
  while (!atomic_load(&h->stop)) {
    int i;
    for (i = 0; i < o->batch && !atomic_load(&h->stop); i++) {
      emit_one(em, n);
      n++;
    }
    if (o->window > 0) {
      if (agentws_manager_post(h->m, on_marker, em) == 0) {
        pthread_mutex_lock(&em->lock);
        em->posted++;
        pthread_mutex_unlock(&em->lock);
      }
      wait_window(em, o->window);
    }
  }
  return NULL;
}

/* ---- /metrics scraper */

/* One scrape: connect, request, read to EOF. Returns the bytes read (head
 * and body) if the status was 200, else -1. Bounded by 5 s timeouts. */
static long scrape_once(int port) {
  static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  char buf[16384];
  struct sockaddr_in sa;
  struct timeval tv = {5, 0};
  size_t off = 0;
  long total = 0;
  int ok200 = 0;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
    goto fail;
  while (off < sizeof(req) - 1) {
    ssize_t n = send(fd, req + off, sizeof(req) - 1 - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      goto fail;
    off += (size_t)n;
  }
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      goto fail; /* error or timeout */
    if (n == 0)
      break;
    if (total == 0 && n >= 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0)
      ok200 = 1;
    total += n;
  }
  close(fd);
  return ok200 ? total : -1;
fail:
  close(fd);
  return -1;
}

/* Every scrape_ms from the start until stop (or a signal). */
static void *scraper_main(void *arg) {
  struct host *h = arg;
  double period = h->o.scrape_ms / 1000.0, next = mono_s() + period;
  while (!atomic_load(&h->stop) && !g_signalled) {
    double now = mono_s();
    if (now < next) {
      sleep_s(next - now > 0.01 ? 0.01 : next - now);
      continue;
    }
    {
      long n = scrape_once(h->port);
      double took = mono_s() - now;
      if (n < 0) {
        h->scrape_errors++;
      } else {
        h->scrapes++;
        h->scrape_bytes = (size_t)n;
        if (took > h->scrape_max_s)
          h->scrape_max_s = took;
      }
    }
    next += period;
    if (next < mono_s())
      next = mono_s(); /* overran: no burst to catch up */
  }
  return NULL;
}

/* ---- options */

static void usage(FILE *f) {
  fprintf(f,
          "usage: fanout-host --conns N --users U [--port 0] [--duration D (5)]\n"
          "       [--warmup W (1)] [--tail T (1)] [--linger L (1)] [--rate R (0: saturation)]\n"
          "       [--threads T (1)] [--type custom|thinking (custom)] [--size S (200)]\n"
          "       [--batch B (64)] [--window K (8; 0 = unbounded)]\n"
          "       [--max-conns-per-user M (ceil(N/U), at least 5)] [--wait S (120)]\n"
          "       [--max-queued-kb K (library default 1024)] [--sndbuf-kb K (kernel)]\n"
          "       [--validation off|warn|strict|repair (library default)]\n"
          "       [--monitor on|off (on)] [--scrape-ms N (0: no /metrics scrapes)]\n"
          "       [--room R (every connection in room R; events to the room)]\n"
          "       [--sample-s S (0: no periodic samples on stderr)]\n"
          "       [--backlog-events N (library default 1000)]\n");
}

static int num(const char *name, const char *s, double lo, double hi,
               double *out) {
  char *end;
  double v;
  errno = 0;
  v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
    fprintf(stderr, "fanout-host: --%s must be a number in [%g, %g]\n", name,
            lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

static int inum(const char *name, const char *s, int lo, int hi, int *out) {
  double v;
  if (num(name, s, lo, hi, &v) != 0)
    return -1;
  if (v != (double)(int)v) {
    fprintf(stderr, "fanout-host: --%s must be an integer\n", name);
    return -1;
  }
  *out = (int)v;
  return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o) {
  enum { O_PORT = 256, O_CONNS, O_USERS, O_DURATION, O_WARMUP, O_TAIL,
         O_LINGER, O_RATE, O_THREADS, O_TYPE, O_SIZE, O_BATCH, O_WINDOW,
         O_MAXPU, O_MAXQ, O_SNDBUF, O_WAIT, O_VALIDATION, O_MONITOR,
         O_SCRAPE, O_ROOM, O_SAMPLE, O_BACKLOG, O_HELP };
  static const struct option lo[] = {
      {"port", required_argument, NULL, O_PORT},
      {"conns", required_argument, NULL, O_CONNS},
      {"users", required_argument, NULL, O_USERS},
      {"duration", required_argument, NULL, O_DURATION},
      {"warmup", required_argument, NULL, O_WARMUP},
      {"tail", required_argument, NULL, O_TAIL},
      {"linger", required_argument, NULL, O_LINGER},
      {"rate", required_argument, NULL, O_RATE},
      {"threads", required_argument, NULL, O_THREADS},
      {"type", required_argument, NULL, O_TYPE},
      {"size", required_argument, NULL, O_SIZE},
      {"batch", required_argument, NULL, O_BATCH},
      {"window", required_argument, NULL, O_WINDOW},
      {"max-conns-per-user", required_argument, NULL, O_MAXPU},
      {"max-queued-kb", required_argument, NULL, O_MAXQ},
      {"sndbuf-kb", required_argument, NULL, O_SNDBUF},
      {"wait", required_argument, NULL, O_WAIT},
      {"validation", required_argument, NULL, O_VALIDATION},
      {"monitor", required_argument, NULL, O_MONITOR},
      {"scrape-ms", required_argument, NULL, O_SCRAPE},
      {"room", required_argument, NULL, O_ROOM},
      {"sample-s", required_argument, NULL, O_SAMPLE},
      {"backlog-events", required_argument, NULL, O_BACKLOG},
      {"help", no_argument, NULL, O_HELP},
      {NULL, 0, NULL, 0}};
  int ch, r = 0;
  memset(o, 0, sizeof(*o));
  o->conns = -1;
  o->validation = -1;
  o->users = -1;
  o->duration = 5;
  o->warmup = 1;
  o->tail = 1;
  o->linger = 1;
  o->threads = 1;
  o->size = 200;
  o->batch = 64;
  o->window = 8;
  o->wait = 120;
  o->monitor = 1;
  while (r == 0 && (ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (ch) {
    case O_PORT: r = inum("port", optarg, 0, 65535, &o->port); break;
    case O_CONNS: r = inum("conns", optarg, 0, 1000000, &o->conns); break;
    case O_USERS: r = inum("users", optarg, 1, 1000000, &o->users); break;
    case O_DURATION: r = num("duration", optarg, 0.1, 3600, &o->duration); break;
    case O_WARMUP: r = num("warmup", optarg, 0, 600, &o->warmup); break;
    case O_TAIL: r = num("tail", optarg, 0, 600, &o->tail); break;
    case O_LINGER: r = num("linger", optarg, 0, 600, &o->linger); break;
    case O_RATE: r = num("rate", optarg, 0, 1e8, &o->rate); break;
    case O_THREADS: r = inum("threads", optarg, 1, MAX_THREADS, &o->threads); break;
    case O_TYPE:
      if (strcmp(optarg, "custom") == 0) {
        o->thinking = 0;
      } else if (strcmp(optarg, "thinking") == 0) {
        o->thinking = 1;
      } else {
        fprintf(stderr, "fanout-host: --type is custom or thinking\n");
        r = -1;
      }
      break;
    case O_SIZE: r = inum("size", optarg, 64, PAD_MAX, &o->size); break;
    case O_VALIDATION: {
      static const char *const pol[] = {"off", "warn", "strict", "repair"};
      int k;
      for (k = 0; k < 4 && strcmp(optarg, pol[k]) != 0; k++)
        ;
      if (k == 4) {
        fprintf(stderr, "fanout-host: --validation off|warn|strict|repair\n");
        r = -1;
      }
      o->validation = k;
      break;
    }
    case O_MONITOR:
      if (strcmp(optarg, "on") == 0) {
        o->monitor = 1;
      } else if (strcmp(optarg, "off") == 0) {
        o->monitor = 0;
      } else {
        fprintf(stderr, "fanout-host: --monitor is on or off\n");
        r = -1;
      }
      break;
    case O_SCRAPE: r = inum("scrape-ms", optarg, 0, 3600000, &o->scrape_ms); break;
    case O_ROOM: o->room = optarg; break;
    case O_SAMPLE: r = inum("sample-s", optarg, 0, 3600, &o->sample_s); break;
    case O_BACKLOG:
      r = inum("backlog-events", optarg, 1, 10000000, &o->backlog);
      break;
    case O_BATCH: r = inum("batch", optarg, 1, 1000000, &o->batch); break;
    case O_WINDOW: r = inum("window", optarg, 0, 1000000, &o->window); break;
    case O_MAXPU: r = inum("max-conns-per-user", optarg, 1, 100000, &o->max_per_user); break;
    case O_MAXQ: r = inum("max-queued-kb", optarg, 1, 4194304, &o->max_queued_kb); break;
    case O_SNDBUF: r = inum("sndbuf-kb", optarg, 4, 65536, &o->sndbuf_kb); break;
    case O_WAIT: r = num("wait", optarg, 0.1, 3600, &o->wait); break;
    case O_HELP: usage(stdout); exit(0);
    default: r = -1; break;
    }
  }
  if (r != 0 || optind != argc || o->conns < 0 || o->users < 0) {
    if (r == 0)
      fprintf(stderr, "fanout-host: --conns and --users are required\n");
    usage(stderr);
    return -1;
  }
  if (o->max_per_user == 0) {
    int per = o->conns / o->users + (o->conns % o->users != 0);
    o->max_per_user = per > 5 ? per : 5;
    if (o->max_per_user > 100000)
      o->max_per_user = 100000;
  }
  return 0;
}

/* Padding so the whole envelope is about o->size bytes. */
static char *make_pad(const struct opts *o) {
  char sample[512];
  int fixed;
  size_t n, i;
  char *pad;
  /* The envelope around the padding, with a 6-digit seq. */
  if (o->thinking)
    fixed = snprintf(sample, sizeof(sample),
                     "{\"type\":\"agent_thinking\",\"run_id\":\"r-1\","
                     "\"ts\":1763769600123,\"data\":{\"text\":\"\","
                     "\"emit_us\":1763769600123456},\"seq\":123456}");
  else
    fixed = snprintf(sample, sizeof(sample),
                     "{\"type\":\"bench\",\"ts\":1763769600123,\"data\":{"
                     "\"emit_us\":1763769600123456,\"pad\":\"\"},"
                     "\"seq\":123456}");
  n = o->size > fixed ? (size_t)(o->size - fixed) : 0;
  pad = malloc(n + 1);
  if (pad == NULL)
    return NULL;
  for (i = 0; i < n; i++)
    pad[i] = (char)('a' + i % 26);
  pad[n] = '\0';
  return pad;
}

/* ---- main */

static void print_report(struct host *h, double emit_s, double window_s,
                         unsigned long long ev_total,
                         unsigned long long ev_window, double cpu_total,
                         double cpu_window, double loop_window,
                         double emit_window, unsigned long long errors,
                         const long *rss, int nrss, long rss_start,
                         unsigned long long closes_run[6], int open_end,
                         int ok) {
  const struct opts *o = &h->o;
  long rss_max = rss_start;
  int i;
  for (i = 0; i < nrss; i++)
    if (rss[i] > rss_max)
      rss_max = rss[i];
  {
    agentws_stats *st = NULL;
    if (agentws_stats_new(&st) == 0 && agentws_manager_get_stats(h->m, st) == 0)
      fprintf(stderr, "fanout-host: validation %d: violations %llu\n",
              o->validation,
              (unsigned long long)(agentws_stats_get(st, AGENTWS_STAT_VIOLATIONS_WARNED) +
                                   agentws_stats_get(st, AGENTWS_STAT_VIOLATIONS_REFUSED)));
    agentws_stats_free(st);
  }
  printf("{\"host\":\"fanout\",\"ok\":%s,\"conns\":%d,\"users\":%d,"
         "\"type\":\"%s\",\"validation\":%d,\"monitor\":\"%s\",\"scrape_ms\":%d,"
         "\"scrapes\":%llu,\"scrape_errors\":%llu,\"scrape_bytes\":%zu,"
         "\"scrape_max_ms\":%.1f,\"size\":%d,\"threads\":%d,\"mode\":\"%s\","
         "\"rate\":%.0f,\"batch\":%d,\"window\":%d,"
         "\"opened\":%llu,\"open_end\":%d,"
         "\"emit_s\":%.3f,\"events\":%llu,\"events_per_s\":%.1f,"
         "\"window_s\":%.3f,\"events_window\":%llu,"
         "\"events_window_per_s\":%.1f,\"emit_errors\":%llu,"
         "\"cpu_s\":%.3f,\"cpu_window_s\":%.3f,\"loop_cpu_window_s\":%.3f,"
         "\"emit_cpu_window_s\":%.3f,\"room\":%s%s%s,\"room_errors\":%llu,",
         ok ? "true" : "false", o->conns, o->users,
         o->thinking ? "agent_thinking" : "custom", o->validation,
         o->monitor ? "on" : "off", o->scrape_ms, h->scrapes, h->scrape_errors,
         h->scrape_bytes, h->scrape_max_s * 1e3, o->size,
         o->threads,
         o->rate > 0 ? "rate" : "saturation", o->rate, o->batch, o->window,
         (unsigned long long)atomic_load(&h->opened), open_end, emit_s,
         ev_total, emit_s > 0 ? (double)ev_total / emit_s : 0.0, window_s,
         ev_window, window_s > 0 ? (double)ev_window / window_s : 0.0, errors,
         cpu_total, cpu_window, loop_window, emit_window,
         o->room != NULL ? "\"" : "", o->room != NULL ? o->room : "null",
         o->room != NULL ? "\"" : "",
         (unsigned long long)atomic_load(&h->room_errors));
  printf("\"closes\":{\"1000\":%llu,\"1001\":%llu,\"1006\":%llu,\"1011\":%llu,"
         "\"1013\":%llu,\"other\":%llu},",
         closes_run[0], closes_run[1], closes_run[2], closes_run[3],
         closes_run[4], closes_run[5]);
  {
    /* Whole run, and the seconds inside the window (the run's end, when
     * the generator closes every connection at once, is not in it). */
    double lag_max = 0, lag_win = 0;
    unsigned long long np = atomic_load(&h->probes);
    int nsec = nrss < MAX_SAMPLES ? nrss : MAX_SAMPLES;
    int w0 = (int)o->warmup, w1 = (int)(o->warmup + o->duration);
    for (i = 0; i < nsec; i++) {
      if (h->lag_max_s[i] > lag_max)
        lag_max = h->lag_max_s[i];
      if (i >= w0 && i < w1 && h->lag_max_s[i] > lag_win)
        lag_win = h->lag_max_s[i];
    }
    printf("\"probes\":%llu,\"loop_lag_mean_us\":%.0f,\"loop_lag_max_us\":%.0f,"
           "\"loop_lag_window_max_us\":%.0f,\"loop_lag_max_us_series\":[",
           np, np > 0 ? h->lag_sum_s / (double)np * 1e6 : 0.0, lag_max * 1e6,
           lag_win * 1e6);
    for (i = 0; i < nsec; i++)
      printf("%s%.0f", i ? "," : "", h->lag_max_s[i] * 1e6);
    printf("],");
  }
  printf("\"rss_kb_start\":%ld,\"rss_kb_max\":%ld,\"rss_kb_final\":%ld,"
         "\"rss_kb\":[",
         rss_start, rss_max, nrss > 0 ? rss[nrss - 1] : rss_start);
  for (i = 0; i < nrss; i++)
    printf("%s%ld", i ? "," : "", rss[i]);
  printf("]}\n");
  fflush(stdout);
}

int main(int argc, char **argv) {
  static struct host host;
  static long rss[MAX_SAMPLES];
  struct host *h = &host;
  struct opts *o = &h->o;
  agentws_config *cfg = NULL;
  agentws_callbacks *cbs = NULL;
  int rv, bound = 0, i, nrss = 0, started = 0, ok = 1, open_end, scraping = 0;
  double t0, t_w0 = 0, t_w1 = 0, t_end, next_sample, next_soak, cpu0, cpu_w0 = 0,
         cpu_w1 = 0, cpu_end, loop_w0 = 0, loop_w1 = 0, em_w0 = 0, em_w1 = 0;
  unsigned long long ev_w0 = 0, ev_w1 = 0, ev_end = 0, errors = 0;
  unsigned long long closes_run[6];
  long rss_start;
  int phase = 0; /* 0 warmup, 1 window, 2 tail */
  struct sigaction sa;

  if (parse_opts(argc, argv, o) != 0)
    return 2;
  signal(SIGPIPE, SIG_IGN);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  h->user_ids = calloc((size_t)o->users, sizeof(*h->user_ids));
  if (h->user_ids == NULL)
    return 1;
  for (i = 0; i < o->users; i++)
    snprintf(h->user_ids[i], sizeof(h->user_ids[i]), "u%d", i);

  if (agentws_config_new(&cfg) != 0 || agentws_callbacks_new(&cbs) != 0 ||
      agentws_config_set_dev_insecure(cfg, 1) != 0 ||
      agentws_config_set_ping_interval_ms(cfg, 0) != 0 ||
      agentws_config_set_max_conns_per_user(cfg, o->max_per_user) != 0 ||
      (o->max_queued_kb > 0 &&
       agentws_config_set_max_queued_bytes(cfg, (uint64_t)o->max_queued_kb * 1024) != 0) ||
      (o->sndbuf_kb > 0 &&
       agentws_config_set_socket_send_buffer(cfg, (uint64_t)o->sndbuf_kb * 1024) != 0) ||
      (o->validation >= 0 &&
       agentws_config_set_validation(cfg, o->validation) != 0) ||
      (!o->monitor && agentws_config_set_monitor(cfg, 0) != 0) ||
      (o->backlog > 0 && agentws_config_set_backlog_events(cfg, o->backlog) != 0)) {
    fprintf(stderr, "fanout-host: config failed\n");
    return 1;
  }
  agentws_callbacks_set_on_open(cbs, on_open);
  agentws_callbacks_set_on_close(cbs, on_close);
  rv = agentws_manager_new_threaded(&h->m, cfg, cbs, h);
  agentws_config_free(cfg);
  agentws_callbacks_free(cbs);
  if (rv != 0) {
    fprintf(stderr, "fanout-host: manager: %s\n", agentws_strerror(rv));
    return 1;
  }
  rv = agentws_manager_listen(h->m, "127.0.0.1", o->port, &bound);
  if (rv == 0)
    rv = agentws_manager_start(h->m);
  if (rv != 0) {
    fprintf(stderr, "fanout-host: listen/start: %s\n", agentws_strerror(rv));
    agentws_manager_free(h->m);
    return 1;
  }
  agentws_manager_post(h->m, on_get_clock, h);
  h->port = bound;
  printf("listening on 127.0.0.1:%d\n", bound);
  fflush(stdout);

  /* Wait for the N connections (bounded). */
  t0 = mono_s();
  while (atomic_load(&h->open) < o->conns && !g_signalled) {
    if (mono_s() - t0 > o->wait) {
      fprintf(stderr, "fanout-host: only %d/%d connections after %.0f s\n",
              atomic_load(&h->open), o->conns, o->wait);
      ok = 0;
      break;
    }
    sleep_s(0.002);
  }
  fprintf(stderr, "fanout-host: %d connections open, emitting\n",
          atomic_load(&h->open));

  rss_start = vmrss_kb();
  t0 = mono_s();
  h->probe_t0 = t0;
  cpu0 = rusage_cpu_s();
  /* Thinking events belong to run "r-1" of each user: start it, so the
   * validator (if on) sees a valid lifecycle, not a violation per event. */
  if (o->thinking && o->room != NULL &&
      agentws_emit_agent_started(h->m, AGENTWS_TARGET_ROOM, o->room, "r-1",
                                 "bench", NULL) != 0)
    fprintf(stderr, "fanout-host: agent_started for room %s failed\n",
            o->room);
  for (i = 0; o->thinking && o->room == NULL && i < o->users; i++)
    if (agentws_emit_agent_started(h->m, AGENTWS_TARGET_USER, h->user_ids[i],
                                   "r-1", "bench", NULL) != 0)
      fprintf(stderr, "fanout-host: agent_started for %s failed\n",
              h->user_ids[i]);
  for (i = 0; i < o->threads; i++) {
    struct emitter *em = &h->em[i];
    em->idx = i;
    em->h = h;
    em->pad = make_pad(o);
    if (em->pad != NULL) {
      /* thinking: the padding is the text; custom: a "pad" member. */
      em->tail_len = o->thinking ? 1 : strlen(em->pad) + 10;
      em->tail = malloc(em->tail_len + 1);
      if (em->tail != NULL && o->thinking)
        memcpy(em->tail, "}", 2);
      else if (em->tail != NULL)
        snprintf(em->tail, em->tail_len + 1, ",\"pad\":\"%s\"}", em->pad);
    }
    pthread_mutex_init(&em->lock, NULL);
    pthread_cond_init(&em->cond, NULL);
    if (em->pad == NULL || em->tail == NULL || pthread_create(&em->tid, NULL, emitter_main, em) != 0) {
      fprintf(stderr, "fanout-host: cannot start emitter %d\n", i);
      free(em->pad);
      free(em->tail);
      atomic_store(&h->stop, 1);
      ok = 0;
      break;
    }
    em->has_clock = pthread_getcpuclockid(em->tid, &em->cpu_clock) == 0;
    started++;
  }
  if (o->scrape_ms > 0 && !atomic_load(&h->stop)) {
    if (pthread_create(&h->scrape_tid, NULL, scraper_main, h) == 0)
      scraping = 1;
    else
      fprintf(stderr, "fanout-host: cannot start the /metrics scraper\n");
  }

  /* Phases and RSS samples on this thread; emitters run meanwhile. */
  next_sample = t0 + 1;
  next_soak = t0 + o->sample_s;
  t_end = t0 + o->warmup + o->duration + o->tail;
  while (!atomic_load(&h->stop)) {
    double now = mono_s(), wake = t_end;
    if (g_signalled)
      break;
    if (phase == 0 && now >= t0 + o->warmup) {
      t_w0 = now;
      cpu_w0 = rusage_cpu_s();
      loop_w0 = atomic_load(&h->loop_clock_set) ? clock_s(h->loop_clock) : 0;
      for (ev_w0 = 0, em_w0 = 0, i = 0; i < started; i++) {
        ev_w0 += atomic_load(&h->em[i].emitted);
        em_w0 += h->em[i].has_clock ? clock_s(h->em[i].cpu_clock) : 0;
      }
      phase = 1;
    }
    if (phase == 1 && now >= t0 + o->warmup + o->duration) {
      t_w1 = now;
      cpu_w1 = rusage_cpu_s();
      loop_w1 = atomic_load(&h->loop_clock_set) ? clock_s(h->loop_clock) : 0;
      for (ev_w1 = 0, em_w1 = 0, i = 0; i < started; i++) {
        ev_w1 += atomic_load(&h->em[i].emitted);
        em_w1 += h->em[i].has_clock ? clock_s(h->em[i].cpu_clock) : 0;
      }
      phase = 2;
    }
    if (now >= next_sample) {
      if (nrss < MAX_SAMPLES)
        rss[nrss++] = vmrss_kb();
      next_sample += 1;
    }
    if (o->sample_s > 0 && now >= next_soak) {
      soak_sample(h, now, started);
      next_soak += o->sample_s;
    }
    if (now >= t_end)
      break;
    if (phase == 0 && t0 + o->warmup < wake)
      wake = t0 + o->warmup;
    if (phase == 1 && t0 + o->warmup + o->duration < wake)
      wake = t0 + o->warmup + o->duration;
    if (next_sample < wake)
      wake = next_sample;
    probe(h);
    sleep_s(wake - now > 0.01 ? 0.01 : wake - now);
  }
  atomic_store(&h->stop, 1);
  for (i = 0; i < started; i++) {
    pthread_mutex_lock(&h->em[i].lock);
    pthread_cond_signal(&h->em[i].cond);
    pthread_mutex_unlock(&h->em[i].lock);
    pthread_join(h->em[i].tid, NULL);
    ev_end += atomic_load(&h->em[i].emitted);
    errors += atomic_load(&h->em[i].errors);
  }
  if (scraping)
    pthread_join(h->scrape_tid, NULL); /* its fields are read below */
  cpu_end = rusage_cpu_s();
  {
    double emit_s = mono_s() - t0;
    /* Linger: the queues drain, then the last RSS samples. */
    double l_end = mono_s() + o->linger;
    while (!g_signalled && mono_s() < l_end) {
      double now = mono_s();
      if (now >= next_sample) {
        if (nrss < MAX_SAMPLES)
          rss[nrss++] = vmrss_kb();
        next_sample += 1;
      }
      sleep_s(0.05);
    }
    if (nrss < MAX_SAMPLES)
      rss[nrss++] = vmrss_kb(); /* the final value */
    for (i = 0; i < 200 && atomic_load(&h->probe_busy); i++)
      sleep_s(0.005); /* the last probe: its fields are read below */
    for (i = 0; i < 6; i++)
      closes_run[i] = atomic_load(&h->closes[i]);
    open_end = atomic_load(&h->open);
    if (phase < 2) {
      ok = 0; /* interrupted or never reached the window's end */
      t_w1 = t_w0;
    }
    print_report(h, emit_s, t_w1 - t_w0, ev_end, ev_w1 - ev_w0, cpu_end - cpu0,
                 cpu_w1 - cpu_w0, loop_w1 - loop_w0, em_w1 - em_w0, errors, rss,
                 nrss, rss_start, closes_run, open_end, ok);
  }
  rv = agentws_manager_stop(h->m);
  if (rv != 0)
    fprintf(stderr, "fanout-host: stop: %s\n", agentws_strerror(rv));
  agentws_manager_free(h->m);
  for (i = 0; i < started; i++) {
    free(h->em[i].pad);
    free(h->em[i].tail);
    pthread_mutex_destroy(&h->em[i].lock);
    pthread_cond_destroy(&h->em[i].cond);
  }
  free(h->user_ids);
  return 0;
}
