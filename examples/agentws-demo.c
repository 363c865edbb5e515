/*
 * agentws-demo: the example server (DESIGN.md §12). Runs libagentws on its
 * own libuv loop, the way a host C server embeds it.
 *
 *   --mode agent (default): the agentws.v1 protocol. Each client message
 *     {"type":"user_message","text":T[,"room":R]} queues a simulated agent
 *     run; a pool of worker threads plays it through the thread-safe emit
 *     API: agent_started, agent_thinking deltas, tool_executing,
 *     tool_completed, more thinking, agent_completed. "/burst N [PAD
 *     [RATE]]" emits N custom "demo.tick" events {"i":k} (plus PAD bytes of
 *     "pad"), RATE per second or as fast as emit accepts them.
 *   --mode echo: raw WebSocket echo of every message (conformance tests).
 *
 * In agent mode the same port serves the web pages (demo_web.c: /chat,
 * /dashboard); the monitor's alerts go to stderr and, as custom events,
 * to room "ops", and validator outcomes to the run's stream
 * (demo_monitor.c), so the pages need nothing but the public protocol.
 *
 * Threads: libagentws and every callback run on the main thread's loop; the
 * workers only call agentws_emit_*(), which is thread-safe. Shutdown
 * (SIGINT/SIGTERM): stop taking jobs, wake the workers (a run in progress
 * ends with agent_error {code:"shutdown"}), and once the last worker has
 * said so through an async handle, close the manager; then join the threads
 * and close the loop.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agentws.h"
#include "demo_auth.h"
#include "demo_broken.h"
#include "demo_monitor.h"
#include "demo_opts.h"
#include "demo_web.h"

#define MAX_BURST 100000  /* largest "/burst N" */
#define MAX_PAD 65536     /* largest "/burst N PAD" */
#define MAX_RATE 10000000 /* largest "/burst N PAD RATE" */
#define REPLY_QUOTE_MAX 200   /* bytes of the user's text quoted in a reply */
#define THINKING_PIECES 3     /* deltas per half of the reply */

enum { JOB_RUN = 1, JOB_BURST };

/* One unit of work for the pool. Owned by the queue, then by a worker. */
typedef struct job {
  struct job *next;  /* queue link */
  int kind;          /* JOB_RUN or JOB_BURST */
  int target;        /* AGENTWS_TARGET_USER or AGENTWS_TARGET_ROOM */
  char *target_id;   /* user or room id, NUL-terminated, owned */
  char *text;        /* JOB_RUN: the user's text (text_len bytes, may hold
                        NULs; NUL-terminated), owned */
  size_t text_len;
  uint64_t run_no;   /* JOB_RUN: run_id "r-<run_no>" */
  uint64_t call_no;  /* JOB_RUN: tool_call_id "c-<call_no>" */
  long burst;        /* JOB_BURST: events to emit */
  long pad;          /* JOB_BURST: bytes of "pad" in each event's data */
  long rate;         /* JOB_BURST: events per second, 0: no limit */
  int broken;        /* JOB_RUN: a /broken scenario (demo_broken.h), or 0 */
} job;

typedef struct demo {
  uv_loop_t loop;          /* the host's loop */
  agentws_manager *mgr;    /* the library */
  uv_signal_t sigint;      /* graceful stop */
  uv_signal_t sigterm;
  demo_auth auth;          /* --jwt-*: keys, reload on SIGHUP */
  demo_web web;            /* --static-dir: the pages, in memory */
  uv_async_t workers_done; /* a worker thread ended (agent mode) */
  int async_ready;         /* workers_done is initialized */
  int echo;                /* --mode echo */
  int closing;             /* agentws_manager_close() was called */
  int64_t thinking_delay_ms; /* --thinking-delay-ms */
  int nworkers;            /* --workers */
  int queue_cap;           /* --job-queue */
  uv_thread_t *threads;    /* nworkers threads, started_threads running */
  int started_threads;
  uint64_t next_run;       /* loop thread: last run number handed out */
  uint64_t next_call;      /* loop thread: last tool call number */
  /* Shared with the workers, guarded by lock. */
  uv_mutex_t lock;
  uv_cond_t job_cond;      /* signalled when a job is queued */
  uv_cond_t stop_cond;     /* broadcast when stopping is set */
  job *head, *tail;        /* the job queue, FIFO */
  int queued;              /* jobs in the queue */
  int stopping;            /* no more jobs; runs in progress are abandoned */
  int live_workers;        /* workers that have not ended yet */
} demo;

/* ------------------------------------------------------------ echo mode */

static int on_message(agentws_manager *m, uint64_t id, int type,
                      const uint8_t *data, size_t len, void *ud) {
  demo *d = ud;
  int rv;
  if (!d->echo)
    return 0;
  rv = agentws_conn_send(m, id, type, data, len);
  /* A full queue already closes the connection with 1013. */
  return rv == AGENTWS_ERR_QUEUE_FULL || rv == AGENTWS_ERR_CLOSING ? 0 : rv;
}

/* ----------------------------------------------------- worker utilities */

static int is_stopping(demo *d) {
  int s;
  uv_mutex_lock(&d->lock);
  s = d->stopping;
  uv_mutex_unlock(&d->lock);
  return s;
}

/* Waits |ms| milliseconds, or less if shutdown starts; returns 1 if the
 * demo is stopping. */
static int pause_ms(demo *d, int64_t ms) {
  uint64_t deadline = uv_hrtime() + (uint64_t)ms * 1000000u;
  int s;
  uv_mutex_lock(&d->lock);
  while (!d->stopping) {
    uint64_t now = uv_hrtime();
    if (now >= deadline)
      break;
    (void)uv_cond_timedwait(&d->stop_cond, &d->lock, deadline - now);
  }
  s = d->stopping;
  uv_mutex_unlock(&d->lock);
  return s;
}

static void job_free(job *j) {
  if (j == NULL)
    return;
  free(j->target_id);
  free(j->text);
  free(j);
}

/* Logs a failed emit (never on success). */
static void emit_check(const char *what, const char *run_id, int rv) {
  if (rv != 0)
    fprintf(stderr, "agentws-demo: emit %s (%s) failed: %s\n", what,
            run_id != NULL ? run_id : "-", agentws_err_name(rv));
}

/* Length of the longest prefix of |s| (|len| bytes) that is at most |max|
 * bytes and ends on a UTF-8 character boundary. */
static size_t utf8_prefix(const char *s, size_t len, size_t max) {
  size_t n = len < max ? len : max;
  while (n > 0 && n < len && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  return n;
}

/* Dumps a JSON value compactly and releases it; NULL on failure. The
 * result is freed with free(). */
static char *dump(json_t *v) {
  char *s = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  json_decref(v);
  return s;
}

/* Emits |len| bytes of |text| as THINKING_PIECES agent_thinking deltas,
 * thinking_delay_ms apart, cut on character boundaries. Returns 1 if the
 * demo started stopping meanwhile. */
static int think(demo *d, const job *j, const char *run_id, const char *text,
                 size_t len) {
  size_t off = 0;
  int i;
  for (i = 0; i < THINKING_PIECES && off < len; i++) {
    size_t want = i == THINKING_PIECES - 1 ? len - off
                                           : (len + THINKING_PIECES - 1) /
                                                 THINKING_PIECES;
    size_t n = utf8_prefix(text + off, len - off, want);
    if (n == 0) /* one character wider than a piece */
      n = utf8_prefix(text + off, len - off, want + 4);
    if (pause_ms(d, d->thinking_delay_ms))
      return 1;
    emit_check("agent_thinking", run_id,
               agentws_emit_agent_thinking(d->mgr, j->target, j->target_id,
                                           run_id, text + off, n, NULL));
    off += n;
  }
  return 0;
}

/* Builds the simulated reply: part A (before the tool call) quotes the
 * user's text; part B (after it) holds non-ASCII, quotes and a backslash to
 * exercise the escaping. Returns a malloc'd string of |*len| bytes and the
 * length of part A in |*a_len|, or NULL. */
static char *make_reply(const job *j, size_t *a_len, size_t *len) {
  static const char a1[] = "Let me think about \"";
  static const char a2[] = "\" \xE2\x80\x94 I'll search the web first. ";
  static const char b[] =
      "Found 3 sources (na\xC3\xAFve caf\xC3\xA9, \xE6\x97\xA5\xE6\x9C\xAC"
      "\xE8\xAA\x9E, \xF0\x9F\x9A\x80); they say \"it depends\" \xE2\x80\x94 "
      "see C:\\demo\\notes.txt. Done \xE2\x9C\x93";
  size_t q = utf8_prefix(j->text, j->text_len, REPLY_QUOTE_MAX);
  size_t n = sizeof a1 - 1 + q + sizeof a2 - 1 + sizeof b - 1;
  char *r = malloc(n + 1);
  char *p = r;
  if (r == NULL)
    return NULL;
  memcpy(p, a1, sizeof a1 - 1), p += sizeof a1 - 1;
  memcpy(p, j->text, q), p += q;
  memcpy(p, a2, sizeof a2 - 1), p += sizeof a2 - 1;
  *a_len = (size_t)(p - r);
  memcpy(p, b, sizeof b - 1), p += sizeof b - 1;
  *p = '\0';
  *len = n;
  return r;
}

static int64_t ms_since(uint64_t t0) {
  return (int64_t)((uv_hrtime() - t0) / 1000000u);
}

static int pause_step(void *ctx) {
  demo *d = ctx;
  return pause_ms(d, d->thinking_delay_ms);
}

/* One simulated agent run (worker thread). */
static void run_agent(demo *d, const job *j) {
  char run_id[32], call_id[32];
  char *reply = NULL, *data = NULL, *args = NULL, *result = NULL;
  size_t a_len = 0, len = 0;
  uint64_t t0 = uv_hrtime(), t_tool;
  int rv;
  snprintf(run_id, sizeof run_id, "r-%" PRIu64, j->run_no);
  snprintf(call_id, sizeof call_id, "c-%" PRIu64, j->call_no);
  if (j->broken) {
    demo_broken_run(d->mgr, j->broken, j->target, j->target_id, run_id,
                    call_id, pause_step, d);
    return;
  }
  reply = make_reply(j, &a_len, &len);
  data = dump(json_pack("{s:s%}", "input", j->text, j->text_len));
  args = dump(json_pack("{s:s%}", "q", j->text, j->text_len));
  if (reply == NULL || data == NULL || args == NULL) {
    fprintf(stderr, "agentws-demo: out of memory for run %s\n", run_id);
    goto out;
  }
  rv = agentws_emit_agent_started(d->mgr, j->target, j->target_id, run_id,
                                  "demo-agent", data);
  if (rv != 0) { /* nothing of this run was sent */
    emit_check("agent_started", run_id, rv);
    goto out;
  }
  if (think(d, j, run_id, reply, a_len) || pause_ms(d, d->thinking_delay_ms))
    goto abandon;
  emit_check("tool_executing", run_id,
             agentws_emit_tool_executing(d->mgr, j->target, j->target_id,
                                         run_id, "web_search", call_id,
                                         args));
  t_tool = uv_hrtime();
  if (pause_ms(d, d->thinking_delay_ms))
    goto abandon;
  emit_check("tool_completed", run_id,
             agentws_emit_tool_completed(
                 d->mgr, j->target, j->target_id, run_id, "web_search",
                 call_id, 1, ms_since(t_tool),
                 "{\"hits\":3,\"top\":\"https://example.com/a?b=1&c=\\\"d\\\"\","
                 "\"snippet\":\"na\xC3\xAFve \\\\ caf\xC3\xA9\"}"));
  if (think(d, j, run_id, reply + a_len, len - a_len))
    goto abandon;
  result = dump(json_pack("{s:s%}", "text", reply, len));
  if (result == NULL) {
    fprintf(stderr, "agentws-demo: out of memory for run %s\n", run_id);
    goto abandon;
  }
  emit_check("agent_completed", run_id,
             agentws_emit_agent_completed(d->mgr, j->target, j->target_id,
                                          run_id, ms_since(t0), result,
                                          NULL));
  goto out;
abandon:
  emit_check("agent_error", run_id,
             agentws_emit_agent_error(d->mgr, j->target, j->target_id, run_id,
                                      "shutdown", "the server is shutting "
                                      "down", "error", 1, NULL));
out:
  free(result);
  free(args);
  free(data);
  free(reply);
}

/* "/burst N [PAD [RATE]]": N custom events {"i":k[,"pad":"xx..."]}, at
 * RATE per second or as fast as emit takes them (worker thread). */
static void run_burst(demo *d, const job *j) {
  char *data = malloc(48 + (size_t)j->pad);
  uint64_t t0 = uv_hrtime();
  long k;
  int rv = 0;
  if (data == NULL) {
    fprintf(stderr, "agentws-demo: out of memory for a burst\n");
    return;
  }
  for (k = 0; k < j->burst; k++) {
    int n = snprintf(data, 48, "{\"i\":%ld", k);
    if (j->rate > 0) { /* ahead of schedule by a millisecond or more: wait */
      uint64_t due = (uint64_t)k * 1000000000u / (uint64_t)j->rate;
      uint64_t now = uv_hrtime() - t0;
      if (due >= now + 1000000u &&
          pause_ms(d, (int64_t)((due - now) / 1000000u)))
        goto out;
    }
    if (j->pad > 0) {
      memcpy(data + n, ",\"pad\":\"", 8);
      memset(data + n + 8, 'x', (size_t)j->pad);
      memcpy(data + n + 8 + j->pad, "\"}", 3);
    } else {
      memcpy(data + n, "}", 2);
    }
    for (;;) {
      if ((k & 255) == 0 && is_stopping(d))
        goto out;
      rv = agentws_emit_custom(d->mgr, j->target, j->target_id, "demo.tick",
                               NULL, data);
      if (rv != AGENTWS_ERR_NOMEM && rv != AGENTWS_ERR_LIMIT)
        break;
      if (pause_ms(d, 1)) /* emit pushes back: let the loop catch up */
        goto out;
    }
    if (rv != 0) {
      emit_check("demo.tick", NULL, rv);
      goto out;
    }
  }
out:
  free(data);
}

static void worker_main(void *arg) {
  demo *d = arg;
  for (;;) {
    job *j;
    uv_mutex_lock(&d->lock);
    while (!d->stopping && d->head == NULL)
      uv_cond_wait(&d->job_cond, &d->lock);
    if (d->stopping) {
      uv_mutex_unlock(&d->lock);
      break;
    }
    j = d->head;
    d->head = j->next;
    if (d->head == NULL)
      d->tail = NULL;
    d->queued--;
    uv_mutex_unlock(&d->lock);
    if (j->kind == JOB_RUN)
      run_agent(d, j);
    else
      run_burst(d, j);
    job_free(j);
  }
  /* Sent under the lock: once the loop thread sees live_workers == 0 no
   * worker touches the async handle again. */
  uv_mutex_lock(&d->lock);
  d->live_workers--;
  uv_async_send(&d->workers_done);
  uv_mutex_unlock(&d->lock);
}

/* ------------------------------------------------ agent mode, loop side */

static void send_error(agentws_manager *m, uint64_t conn_id,
                       const char *code, const char *message) {
  char *s = dump(json_pack("{s:s,s:s,s:s}", "type", "error", "code", code,
                           "message", message));
  if (s != NULL)
    (void)agentws_conn_send(m, conn_id, AGENTWS_MSG_TEXT,
                            (const uint8_t *)s, strlen(s));
  free(s);
}

/* Rooms "public.<x>" are open to everyone, "<user>.<x>" to that user;
 * so is "ops", where the dashboard reads the monitor's alerts (a real host
 * would keep it to operators). */
static int room_allowed(const char *user, const char *room) {
  size_t ulen = strlen(user);
  if (strncmp(room, "public.", 7) == 0 && room[7] != '\0')
    return 1;
  if (strcmp(room, DEMO_MONITOR_ROOM) == 0)
    return 1;
  return strncmp(room, user, ulen) == 0 && room[ulen] == '.' &&
         room[ulen + 1] != '\0';
}

static int on_join(agentws_manager *m, uint64_t conn_id, const char *user,
                   const char *room, void *ud) {
  (void)m;
  (void)conn_id;
  (void)ud;
  return room_allowed(user, room) ? 0 : 1;
}

static void on_gap(agentws_manager *m, uint64_t conn_id, const char *stream,
                   uint64_t from, uint64_t to, void *ud) {
  (void)m, (void)ud;
  fprintf(stderr,
          "agentws-demo: connection %" PRIu64 " missed %s%s events %" PRIu64
          "..%" PRIu64 "\n",
          conn_id, stream[0] != '\0' ? stream : "its user stream",
          stream[0] != '\0' ? "" : "'s", from, to);
}

static void on_violation(agentws_manager *m, int rule, int outcome,
                         const char *run_id, int target,
                         const char *target_id, const char *message,
                         void *ud) {
  (void)ud;
  fprintf(stderr, "agentws-demo: violation %s (%s) run %s of %s: %s\n",
          agentws_rule_name(rule), agentws_outcome_name(outcome), run_id,
          target_id, message);
  demo_monitor_violation(m, rule, outcome, run_id, target, target_id,
                         message);
}

static int on_http(agentws_manager *m, uint64_t conn_id,
                   const agentws_request *req, void *ud) {
  demo *d = ud;
  return demo_web_serve(&d->web, m, conn_id, req);
}

/* Parses "/burst N [PAD [RATE]]" into |*n|, |*pad| and |*rate|; returns 1
 * if |text| is a burst command, 0 if it is not, -1 if its numbers are bad. */
static int parse_burst(const char *text, size_t len, long *n, long *pad,
                       long *rate) {
  char *end;
  if (len < 6 || strncmp(text, "/burst", 6) != 0 ||
      (len > 6 && text[6] != ' '))
    return 0;
  if (len == 6 || strlen(text) != len)
    return -1;
  errno = 0;
  *n = strtol(text + 7, &end, 10);
  if (errno != 0 || end == text + 7 || *n < 0 || *n > MAX_BURST)
    return -1;
  *pad = *rate = 0;
  if (*end == ' ') {
    const char *p = end + 1;
    *pad = strtol(p, &end, 10);
    if (errno != 0 || end == p || *pad < 0 || *pad > MAX_PAD)
      return -1;
  }
  if (*end == ' ') {
    const char *p = end + 1;
    *rate = strtol(p, &end, 10);
    if (errno != 0 || end == p || *rate < 0 || *rate > MAX_RATE)
      return -1;
  }
  return *end == '\0' ? 1 : -1;
}

/* Queues |j| unless stopping or full; returns 0, or 1 with |j| freed. */
static int enqueue(demo *d, agentws_manager *m, uint64_t conn_id, job *j) {
  const char *why = NULL;
  uv_mutex_lock(&d->lock);
  if (d->stopping)
    why = "the server is shutting down";
  else if (d->queued >= d->queue_cap)
    why = "too many runs queued; try again later";
  else {
    if (d->tail != NULL)
      d->tail->next = j;
    else
      d->head = j;
    d->tail = j;
    d->queued++;
    uv_cond_signal(&d->job_cond);
  }
  uv_mutex_unlock(&d->lock);
  if (why == NULL)
    return 0;
  job_free(j);
  send_error(m, conn_id, "busy", why);
  return 1;
}

static void on_client_message(agentws_manager *m, uint64_t conn_id,
                              const char *user, const char *type,
                              const char *json, size_t len, void *ud) {
  demo *d = ud;
  json_t *root, *jtext, *jroom;
  json_error_t err;
  job *j = NULL;
  const char *text, *room = NULL;
  size_t text_len;
  long burst = 0, pad = 0, rate = 0;
  int is_burst, broken;
  if (strcmp(type, "user_message") != 0) {
    send_error(m, conn_id, "bad_message",
               "unknown message type (this server takes user_message)");
    return;
  }
  root = json_loadb(json, len, JSON_ALLOW_NUL, &err);
  jtext = json_object_get(root, "text");
  jroom = json_object_get(root, "room");
  if (!json_is_string(jtext) || (jroom != NULL && !json_is_string(jroom))) {
    send_error(m, conn_id, "bad_field",
               "user_message needs a string \"text\" (and an optional "
               "string \"room\")");
    goto out;
  }
  text = json_string_value(jtext);
  text_len = json_string_length(jtext);
  if (jroom != NULL) {
    room = json_string_value(jroom);
    if (agentws_conn_in_room(m, conn_id, room) != 1) {
      send_error(m, conn_id, "not_member", "join the room first");
      goto out;
    }
  }
  is_burst = parse_burst(text, text_len, &burst, &pad, &rate);
  if (is_burst < 0) {
    send_error(m, conn_id, "bad_field",
               "use /burst N [PAD [RATE]] with N in 0..100000, PAD in "
               "0..65536, RATE (events/s, 0: no limit) in 0..10000000");
    goto out;
  }
  broken = demo_broken_parse(text, text_len);
  if (broken < 0) {
    char msg[256];
    snprintf(msg, sizeof msg, "use /broken SCENARIO with one of: %s",
             demo_broken_names());
    send_error(m, conn_id, "bad_field", msg);
    goto out;
  }
  j = calloc(1, sizeof *j);
  if (j == NULL)
    goto nomem;
  j->target = room != NULL ? AGENTWS_TARGET_ROOM : AGENTWS_TARGET_USER;
  j->target_id = strdup(room != NULL ? room : user);
  if (j->target_id == NULL)
    goto nomem;
  if (is_burst) {
    j->kind = JOB_BURST;
    j->burst = burst;
    j->pad = pad;
    j->rate = rate;
  } else {
    j->kind = JOB_RUN;
    j->text = malloc(text_len + 1);
    if (j->text == NULL)
      goto nomem;
    memcpy(j->text, text, text_len + 1);
    j->text_len = text_len;
    j->run_no = ++d->next_run;
    j->call_no = ++d->next_call;
    j->broken = broken;
  }
  (void)enqueue(d, m, conn_id, j);
  goto out;
nomem:
  job_free(j);
  send_error(m, conn_id, "busy", "out of memory");
out:
  json_decref(root);
}

/* ------------------------------------------------------------- shutdown */

static void on_closed(agentws_manager *m, void *ud) {
  demo *d = ud;
  (void)m;
  uv_close((uv_handle_t *)&d->sigint, NULL);
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  demo_auth_close(&d->auth);
  if (d->async_ready)
    uv_close((uv_handle_t *)&d->workers_done, NULL);
}

/* Closes the manager once every worker has ended (loop thread). */
static void maybe_close(demo *d) {
  int live;
  uv_mutex_lock(&d->lock);
  live = d->live_workers;
  uv_mutex_unlock(&d->lock);
  if (live > 0 || d->closing)
    return;
  d->closing = 1;
  if (agentws_manager_close(d->mgr, on_closed, d) != 0)
    on_closed(d->mgr, d);
}

static void on_workers_done(uv_async_t *h) {
  demo *d = h->data;
  if (is_stopping(d))
    maybe_close(d);
}

static void on_signal(uv_signal_t *h, int signum) {
  demo *d = h->data;
  (void)signum;
  uv_signal_stop(&d->sigint);
  uv_signal_stop(&d->sigterm);
  fprintf(stderr, "agentws-demo: shutting down\n");
  uv_mutex_lock(&d->lock);
  d->stopping = 1;
  uv_cond_broadcast(&d->job_cond);
  uv_cond_broadcast(&d->stop_cond);
  uv_mutex_unlock(&d->lock);
  maybe_close(d);
}

/* -------------------------------------------------------- command line */

static void usage(FILE *f) {
  fprintf(f,
          "usage: agentws-demo [--host 127.0.0.1] [--port 8080] "
          "[--mode agent|echo]\n"
          "  [--dev-insecure] [--max-conn-per-user N] [--backlog-events N]\n"
          "  [--backlog-bytes N] [--backlog-age-ms N] [--client-rate N]\n"
          "  [--max-client-message N] [--max-event-bytes N]\n"
          "  [--socket-send-buffer N]\n"
          "  [--thinking-delay-ms N] [--workers N] [--job-queue N]\n"
          "  [--validation off|warn|strict|repair] [--stall-timeout-ms N]\n"
          "  [--tool-timeout-ms N]\n"
          "  [--max-message-size N] [--max-queued-bytes N] "
          "[--max-header-bytes N]\n"
          "  [--handshake-timeout-ms N] [--ping-interval-ms N] "
          "[--pong-timeout-ms N]\n"
          "  [--idle-timeout-ms N] [--close-timeout-ms N] [--max-conns N]\n"
          "  [--origin ORIGIN]... [--subprotocol NAME]... [--ws-path P]\n");
  demo_auth_usage(f);
  demo_monitor_usage(f);
  demo_web_usage(f);
}

enum {
  OPT_HOST = 256, OPT_PORT, OPT_MODE, OPT_MAX_MSG, OPT_MAX_QUEUED,
  OPT_MAX_HDR, OPT_HS_TIMEOUT, OPT_PING, OPT_PONG, OPT_IDLE, OPT_CLOSE,
  OPT_MAX_CONNS, OPT_ORIGIN, OPT_SUBPROTO, OPT_WS_PATH, OPT_HELP,
  OPT_DEV_INSECURE, OPT_PER_USER, OPT_BACKLOG_EVENTS, OPT_BACKLOG_BYTES,
  OPT_BACKLOG_AGE, OPT_CLIENT_RATE, OPT_MAX_CLIENT_MSG, OPT_MAX_EVENT,
  OPT_THINKING_DELAY, OPT_WORKERS, OPT_JOB_QUEUE, OPT_SNDBUF,
  OPT_VALIDATION, OPT_STALL_TIMEOUT, OPT_TOOL_TIMEOUT,
  OPT_AUTH_FIRST, /* DEMO_AUTH_NOPTS values from here */
  OPT_MONITOR_FIRST = OPT_AUTH_FIRST + DEMO_AUTH_NOPTS,
  OPT_WEB_FIRST = OPT_MONITOR_FIRST + DEMO_MONITOR_NOPTS
};

#define NBASE_OPTIONS 31

static struct option options[NBASE_OPTIONS + DEMO_AUTH_NOPTS +
                             DEMO_MONITOR_NOPTS + DEMO_WEB_NOPTS + 1] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"mode", required_argument, NULL, OPT_MODE},
    {"max-message-size", required_argument, NULL, OPT_MAX_MSG},
    {"max-queued-bytes", required_argument, NULL, OPT_MAX_QUEUED},
    {"max-header-bytes", required_argument, NULL, OPT_MAX_HDR},
    {"handshake-timeout-ms", required_argument, NULL, OPT_HS_TIMEOUT},
    {"ping-interval-ms", required_argument, NULL, OPT_PING},
    {"pong-timeout-ms", required_argument, NULL, OPT_PONG},
    {"idle-timeout-ms", required_argument, NULL, OPT_IDLE},
    {"close-timeout-ms", required_argument, NULL, OPT_CLOSE},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"origin", required_argument, NULL, OPT_ORIGIN},
    {"subprotocol", required_argument, NULL, OPT_SUBPROTO},
    {"ws-path", required_argument, NULL, OPT_WS_PATH},
    {"help", no_argument, NULL, OPT_HELP},
    {"dev-insecure", no_argument, NULL, OPT_DEV_INSECURE},
    {"max-conn-per-user", required_argument, NULL, OPT_PER_USER},
    {"backlog-events", required_argument, NULL, OPT_BACKLOG_EVENTS},
    {"backlog-bytes", required_argument, NULL, OPT_BACKLOG_BYTES},
    {"backlog-age-ms", required_argument, NULL, OPT_BACKLOG_AGE},
    {"client-rate", required_argument, NULL, OPT_CLIENT_RATE},
    {"max-client-message", required_argument, NULL, OPT_MAX_CLIENT_MSG},
    {"max-event-bytes", required_argument, NULL, OPT_MAX_EVENT},
    {"socket-send-buffer", required_argument, NULL, OPT_SNDBUF},
    {"thinking-delay-ms", required_argument, NULL, OPT_THINKING_DELAY},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"job-queue", required_argument, NULL, OPT_JOB_QUEUE},
    {"validation", required_argument, NULL, OPT_VALIDATION},
    {"stall-timeout-ms", required_argument, NULL, OPT_STALL_TIMEOUT},
    {"tool-timeout-ms", required_argument, NULL, OPT_TOOL_TIMEOUT}};

/* |v| for an int setter: values outside int become -1, which every int
 * setter used here rejects as out of range. */
static int as_int(int64_t v) {
  return v < INT_MIN || v > INT_MAX ? -1 : (int)v;
}

/* Applies one option to |cfg| or |d|; returns 0 or prints why not. */
static int apply(demo *d, agentws_config *cfg, int opt, const char *arg) {
  int64_t v = 0;
  int rv;
  if (opt >= OPT_AUTH_FIRST && opt < OPT_AUTH_FIRST + DEMO_AUTH_NOPTS)
    return demo_auth_apply(&d->auth, cfg, opt - OPT_AUTH_FIRST, arg);
  if (opt >= OPT_MONITOR_FIRST && opt < OPT_MONITOR_FIRST + DEMO_MONITOR_NOPTS)
    return demo_monitor_apply(cfg, opt - OPT_MONITOR_FIRST, arg);
  if (opt >= OPT_WEB_FIRST && opt < OPT_WEB_FIRST + DEMO_WEB_NOPTS)
    return demo_web_apply(&d->web, opt - OPT_WEB_FIRST, arg);
  if (opt == OPT_VALIDATION) {
    static const char *const pol[] = {"off", "warn", "strict", "repair"};
    for (rv = 0; rv < 4; rv++)
      if (strcmp(arg, pol[rv]) == 0)
        return agentws_config_set_validation(cfg, rv);
    fprintf(stderr, "agentws-demo: --validation off|warn|strict|repair\n");
    return -1;
  }
  if (opt != OPT_ORIGIN && opt != OPT_SUBPROTO && opt != OPT_WS_PATH &&
      demo_parse_i64(arg, &v) != 0) {
    fprintf(stderr, "agentws-demo: not a number: %s\n", arg);
    return -1;
  }
  switch (opt) {
  case OPT_MAX_MSG: rv = agentws_config_set_max_message_size(cfg, (uint64_t)v); break;
  case OPT_MAX_QUEUED: rv = agentws_config_set_max_queued_bytes(cfg, (uint64_t)v); break;
  case OPT_MAX_HDR: rv = agentws_config_set_max_header_bytes(cfg, (uint64_t)v); break;
  case OPT_HS_TIMEOUT: rv = agentws_config_set_handshake_timeout_ms(cfg, v); break;
  case OPT_PING: rv = agentws_config_set_ping_interval_ms(cfg, v); break;
  case OPT_PONG: rv = agentws_config_set_pong_timeout_ms(cfg, v); break;
  case OPT_IDLE: rv = agentws_config_set_idle_timeout_ms(cfg, v); break;
  case OPT_CLOSE: rv = agentws_config_set_close_timeout_ms(cfg, v); break;
  case OPT_MAX_CONNS: rv = agentws_config_set_max_connections(cfg, v); break;
  case OPT_ORIGIN: rv = agentws_config_add_allowed_origin(cfg, arg); break;
  case OPT_SUBPROTO: rv = agentws_config_add_subprotocol(cfg, arg); break;
  case OPT_WS_PATH: rv = agentws_config_set_ws_path(cfg, arg); break;
  case OPT_PER_USER:
    rv = agentws_config_set_max_conns_per_user(cfg, as_int(v));
    break;
  case OPT_BACKLOG_EVENTS: rv = agentws_config_set_backlog_events(cfg, v); break;
  case OPT_BACKLOG_BYTES:
    rv = agentws_config_set_backlog_bytes(cfg, (uint64_t)v);
    break;
  case OPT_BACKLOG_AGE: rv = agentws_config_set_backlog_age_ms(cfg, v); break;
  case OPT_CLIENT_RATE:
    rv = agentws_config_set_client_rate(cfg, as_int(v));
    break;
  case OPT_MAX_CLIENT_MSG:
    rv = agentws_config_set_max_client_message(cfg, (uint64_t)v);
    break;
  case OPT_MAX_EVENT:
    rv = agentws_config_set_max_event_bytes(cfg, (uint64_t)v);
    break;
  case OPT_SNDBUF:
    rv = agentws_config_set_socket_send_buffer(cfg, (uint64_t)v);
    break;
  case OPT_STALL_TIMEOUT:
    rv = agentws_config_set_stall_timeout_ms(cfg, v);
    break;
  case OPT_TOOL_TIMEOUT:
    rv = agentws_config_set_tool_timeout_ms(cfg, v);
    break;
  case OPT_THINKING_DELAY:
    rv = v < 0 || v > 600000 ? AGENTWS_ERR_OUT_OF_RANGE : 0;
    d->thinking_delay_ms = v;
    break;
  case OPT_WORKERS:
    rv = v < 1 || v > 256 ? AGENTWS_ERR_OUT_OF_RANGE : 0;
    d->nworkers = (int)v;
    break;
  case OPT_JOB_QUEUE:
    rv = v < 1 || v > 1000000 ? AGENTWS_ERR_OUT_OF_RANGE : 0;
    d->queue_cap = (int)v;
    break;
  default: rv = AGENTWS_ERR_INVALID_ARGUMENT; break;
  }
  if (rv != 0)
    fprintf(stderr, "agentws-demo: bad value '%s': %s\n", arg,
            agentws_strerror(rv));
  return rv;
}

/* Starts the worker pool (agent mode). Returns 0 or a libuv status. */
static int start_workers(demo *d) {
  int i, rv;
  rv = uv_async_init(&d->loop, &d->workers_done, on_workers_done);
  if (rv != 0)
    return rv;
  d->workers_done.data = d;
  d->async_ready = 1;
  d->threads = calloc((size_t)d->nworkers, sizeof *d->threads);
  if (d->threads == NULL)
    return UV_ENOMEM;
  for (i = 0; i < d->nworkers; i++) {
    uv_mutex_lock(&d->lock);
    d->live_workers++;
    uv_mutex_unlock(&d->lock);
    rv = uv_thread_create(&d->threads[i], worker_main, d);
    if (rv != 0) {
      uv_mutex_lock(&d->lock);
      d->live_workers--;
      uv_mutex_unlock(&d->lock);
      return rv;
    }
    d->started_threads++;
  }
  return 0;
}

int main(int argc, char **argv) {
  static demo d;
  const char *host = "127.0.0.1";
  int64_t port = 8080;
  agentws_config *cfg = NULL;
  agentws_callbacks *cbs = NULL;
  int opt, rv, bound = 0, status = 1, dev_insecure = 0, i;
  d.echo = 0;
  d.thinking_delay_ms = 30;
  d.nworkers = 4;
  d.queue_cap = 64;
  if (uv_mutex_init(&d.lock) != 0 || uv_cond_init(&d.job_cond) != 0 ||
      uv_cond_init(&d.stop_cond) != 0)
    return 1;
  if (agentws_config_new(&cfg) != 0 || agentws_callbacks_new(&cbs) != 0)
    goto out;
  demo_auth_options(&options[NBASE_OPTIONS], OPT_AUTH_FIRST);
  demo_monitor_options(&options[NBASE_OPTIONS + DEMO_AUTH_NOPTS],
                       OPT_MONITOR_FIRST);
  demo_web_options(
      &options[NBASE_OPTIONS + DEMO_AUTH_NOPTS + DEMO_MONITOR_NOPTS],
      OPT_WEB_FIRST);
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case OPT_HOST: host = optarg; break;
    case OPT_PORT:
      if (demo_parse_i64(optarg, &port) != 0 || port < 0 || port > 65535) {
        fprintf(stderr, "agentws-demo: bad port: %s\n", optarg);
        status = 2;
        goto out;
      }
      break;
    case OPT_MODE:
      if (strcmp(optarg, "echo") == 0) {
        d.echo = 1;
      } else if (strcmp(optarg, "agent") == 0) {
        d.echo = 0;
      } else {
        fprintf(stderr, "agentws-demo: unknown mode '%s' (agent or echo)\n",
                optarg);
        status = 2;
        goto out;
      }
      break;
    case OPT_DEV_INSECURE: dev_insecure = 1; break;
    case OPT_HELP: usage(stdout); status = 0; goto out;
    case '?': usage(stderr); status = 2; goto out;
    default:
      if (apply(&d, cfg, opt, optarg) != 0) {
        status = 2;
        goto out;
      }
    }
  }
  if (optind < argc) {
    fprintf(stderr, "agentws-demo: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    status = 2;
    goto out;
  }
  if (d.echo) {
    (void)agentws_config_set_raw_messages(cfg, 1);
  } else {
    (void)agentws_config_set_dev_insecure(cfg, dev_insecure);
    if (dev_insecure)
      fprintf(stderr,
              "agentws-demo: ****************************************"
              "****************\n"
              "agentws-demo: INSECURE: user id taken from ?user=; never use "
              "in production\n"
              "agentws-demo: ****************************************"
              "****************\n");
    else if (!d.auth.enabled)
      fprintf(stderr, "agentws-demo: no authentication is configured: "
                      "every connection gets 401; give "
                      "--jwt-hs256-secret-file, --jwks-file or "
                      "--jwt-pem-file (or --dev-insecure for development)\n");
    agentws_callbacks_set_on_client_message(cbs, on_client_message);
    agentws_callbacks_set_on_join(cbs, on_join);
    agentws_callbacks_set_on_gap(cbs, on_gap);
    agentws_callbacks_set_on_violation(cbs, on_violation);
    /* The pages speak agentws.v1, so only agent mode serves them. */
    if (demo_web_load(&d.web) != 0) {
      status = 2;
      goto out;
    }
    agentws_callbacks_set_on_http(cbs, on_http);
  }
  demo_monitor_register(cbs);
  if (demo_auth_configure(&d.auth, cfg) != 0) {
    status = 2;
    goto out;
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&d.loop);
  agentws_callbacks_set_on_message(cbs, on_message);
  rv = agentws_manager_new(&d.mgr, &d.loop, cfg, cbs, &d);
  if (rv == 0)
    rv = agentws_manager_listen(d.mgr, host, (int)port, &bound);
  if (rv == 0 && !d.echo)
    rv = start_workers(&d);
  if (rv != 0) {
    fprintf(stderr, "agentws-demo: cannot listen on %s:%d: %s\n", host,
            (int)port, agentws_strerror(rv));
    uv_mutex_lock(&d.lock);
    d.stopping = 1;
    uv_cond_broadcast(&d.job_cond);
    uv_mutex_unlock(&d.lock);
    for (i = 0; i < d.started_threads; i++)
      uv_thread_join(&d.threads[i]);
    if (d.async_ready)
      uv_close((uv_handle_t *)&d.workers_done, NULL);
    if (d.mgr != NULL)
      agentws_manager_free(d.mgr);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    uv_loop_close(&d.loop);
    goto out;
  }
  uv_signal_init(&d.loop, &d.sigint);
  uv_signal_init(&d.loop, &d.sigterm);
  d.sigint.data = d.sigterm.data = &d;
  uv_signal_start(&d.sigint, on_signal, SIGINT);
  uv_signal_start(&d.sigterm, on_signal, SIGTERM);
  demo_auth_start(&d.auth, &d.loop, d.mgr);
  printf("listening on %s:%d\n", host, bound);
  fflush(stdout);
  uv_run(&d.loop, UV_RUN_DEFAULT);
  for (i = 0; i < d.started_threads; i++)
    uv_thread_join(&d.threads[i]);
  agentws_manager_free(d.mgr);
  rv = uv_loop_close(&d.loop);
  if (rv != 0)
    fprintf(stderr, "agentws-demo: loop not empty: %s\n", uv_strerror(rv));
  status = rv == 0 ? 0 : 1;
out:
  while (d.head != NULL) { /* jobs never started */
    job *j = d.head;
    d.head = j->next;
    job_free(j);
  }
  free(d.threads);
  demo_web_free(&d.web);
  agentws_callbacks_free(cbs);
  agentws_config_free(cfg);
  uv_cond_destroy(&d.stop_cond);
  uv_cond_destroy(&d.job_cond);
  uv_mutex_destroy(&d.lock);
  return status;
}
