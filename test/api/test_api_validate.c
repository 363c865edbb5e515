/*
 * API tests of emit-time validation (agentws.h "validation"), on a real
 * loop with a real WebSocket client:
 *
 * - four threads emit random lifecycles (many broken) for one user at
 *   once, over shared run ids, under repair, strict and warn; everything
 *   delivered reaches the client, every delivered run is a valid lifecycle
 *   (repair / strict), synthesized events carry data.synthesized, strict
 *   emits fail with AGENTWS_ERR_VALIDATION, on_violation runs on the loop
 *   thread, and the statistics match what was seen;
 * - each policy on one broken run, per-rule overrides, the default (warn);
 * - stall and tool timeouts of 100 ms end a quiet run / tool call;
 * - the config setters' ranges, the schema limits, the name functions.
 *
 * known_bug_* tests show library bugs; they are skipped unless
 * AGENTWS_KNOWN_BUGS=1 (then they fail until fixed). Every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"
#include "client.h"
#include "harness.h"

#define USER AGENTWS_TARGET_USER
#define QUIET_MS 150

enum { T_STARTED, T_THINKING, T_EXEC, T_DONE, T_COMPLETED, T_ERROR, NT };
static const char *const type_names[NT] = {
    "agent_started",  "agent_thinking",  "tool_executing",
    "tool_completed", "agent_completed", "agent_error"};

/* ------------------------------------------------ violation recorder */

typedef struct vrec {
  int rule, outcome, target;
  char run_id[80], target_id[32], message[160];
} vrec;

#define VMAX 4096
typedef struct vlog {
  vrec r[VMAX];
  size_t n;                 /* recorded (at most VMAX) */
  uint64_t total;           /* calls */
  uint64_t by_rule[10], by_outcome[4];
  int wrong_thread;         /* calls not on the loop thread */
  int bad_args;             /* out-of-range rule/outcome, NULL strings */
  uv_thread_t loop_thread;  /* the thread running the host loop */
} vlog;

static vlog g_vlog;

static void on_violation(agentws_manager *m, int rule, int outcome,
                         const char *run_id, int target,
                         const char *target_id, const char *message,
                         void *ud) {
  th_server *s = ud;
  uv_thread_t self = uv_thread_self();
  if (!uv_thread_equal(&self, &g_vlog.loop_thread))
    g_vlog.wrong_thread++;
  if (m != s->m || rule < 0 || rule > 9 || outcome < 0 || outcome > 3 ||
      run_id == NULL || target_id == NULL || message == NULL ||
      (target != AGENTWS_TARGET_USER && target != AGENTWS_TARGET_ROOM) ||
      run_id[0] == '\0' || message[0] == '\0') {
    g_vlog.bad_args++;
  } else {
    g_vlog.by_rule[rule]++;
    g_vlog.by_outcome[outcome]++;
    if (g_vlog.n < VMAX) {
      vrec *v = &g_vlog.r[g_vlog.n++];
      v->rule = rule;
      v->outcome = outcome;
      v->target = target;
      snprintf(v->run_id, sizeof(v->run_id), "%s", run_id);
      snprintf(v->target_id, sizeof(v->target_id), "%s", target_id);
      snprintf(v->message, sizeof(v->message), "%s", message);
    }
  }
  g_vlog.total++;
}

/* ---------------------------------------------------------- the server */

/* Agent protocol, dev mode (?user=), pings off, a big backlog (nothing is
 * evicted before the client reads it); |policy| < 0 keeps the default. */
static agentws_config *vcfg(int policy) {
  agentws_config *cfg = NULL;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_dev_insecure(cfg, 1), 0);
  assert_int_equal(agentws_config_set_ping_interval_ms(cfg, 0), 0);
  assert_int_equal(agentws_config_set_close_timeout_ms(cfg, 500), 0);
  assert_int_equal(agentws_config_set_backlog_events(cfg, 1000000), 0);
  assert_int_equal(agentws_config_set_backlog_bytes(cfg, (uint64_t)1 << 30),
                   0);
  assert_int_equal(
      agentws_config_set_max_queued_bytes(cfg, (uint64_t)1 << 30), 0);
  if (policy >= 0)
    assert_int_equal(agentws_config_set_validation(cfg, policy), 0);
  return cfg;
}

/* A host-loop manager (this thread runs the loop) with on_violation. */
static void vstart(th_server *s, agentws_config *cfg) {
  agentws_callbacks *cbs;
  memset(s, 0, sizeof(*s));
  memset(&g_vlog, 0, sizeof(g_vlog));
  g_vlog.loop_thread = uv_thread_self();
  assert_int_equal(uv_loop_init(&s->loop), 0);
  th_track(s);
  cbs = th_callbacks();
  assert_non_null(cbs);
  agentws_callbacks_set_on_violation(cbs, on_violation);
  assert_int_equal(agentws_manager_new(&s->m, &s->loop, cfg, cbs, s), 0);
  agentws_callbacks_free(cbs);
  agentws_config_free(cfg);
  assert_int_equal(agentws_manager_listen(s->m, "127.0.0.1", 0, &s->port),
                   0);
}

/* Runs the loop a little so queued emits and reports go out. */
static void settle(th_server *s) {
  int i;
  for (i = 0; i < 20; i++) {
    uv_run(&s->loop, UV_RUN_NOWAIT);
    tc_sleep_ms(1);
  }
}

/* The next text message within |timeout_ms| (pings skipped), or NULL on
 * timeout; the caller frees. */
static char *try_read_text(tc_client *c, int timeout_ms) {
  uint64_t deadline = tc_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    tc_frame f;
    uint64_t now = tc_now_ms();
    int r = tc_read_frame(c, &f, now >= deadline ? 0 : (int)(deadline - now));
    if (r == TC_TIMEOUT)
      return NULL;
    if (r != 0)
      fail_msg("connection failed while reading (%d)", r);
    if (f.opcode == TC_OP_PING || f.opcode == TC_OP_PONG) {
      tc_frame_free(&f);
      continue;
    }
    if (f.opcode != TC_OP_TEXT || !f.fin)
      fail_msg("expected a text frame, got opcode %d", f.opcode);
    return (char *)f.data;
  }
}

static char *read_text(tc_client *c) {
  char *m = try_read_text(c, TC_TIMEOUT_MS);
  if (m == NULL)
    fail_msg("no message within %d ms", TC_TIMEOUT_MS);
  return m;
}

static void expect_quiet(tc_client *c, int ms) {
  char *m = try_read_text(c, ms);
  if (m != NULL)
    fail_msg("unexpected message: %.300s", m);
}

static void connect_user(th_server *s, tc_client *c, const char *user) {
  char path[128], want[128], *w;
  snprintf(path, sizeof(path), "/ws?user=%s", user);
  if (tc_connect(c, "127.0.0.1", s->port, th_pump, s) != 0)
    fail_msg("connect failed");
  if (tc_upgrade(c, path, NULL) != 0)
    fail_msg("upgrade failed: %s", c->head);
  w = read_text(c);
  snprintf(want, sizeof(want), "\"user\":\"%s\"", user);
  if (strncmp(w, "{\"type\":\"welcome\"", 17) != 0 || strstr(w, want) == NULL)
    fail_msg("not a welcome: %.300s", w);
  free(w);
}

static void close_client(th_server *s, tc_client *c) {
  int code = 0, before = s->n_close;
  char reason[128];
  assert_int_equal(tc_send_close(c, 1000, "bye"), 0);
  assert_int_equal(
      tc_read_close(c, &code, reason, sizeof(reason), TC_TIMEOUT_MS), 0);
  tc_close(c);
  TH_RUN_UNTIL(s, s->n_close == before + 1);
}

/* ------------------------------------------------------- event parsing */

typedef struct wev {
  int type;             /* T_*, or -1 (custom) */
  char tname[40];
  char run_id[300], call[80], code[40], rule[40], agent[40];
  int synth, ok, coalesced;
  long w, i;            /* "w" and "i" of the emitting thread, or -1 */
  uint64_t seq;
} wev;

/* The string after "key":" (first occurrence; no escapes expected). */
static void str_field(const char *json, const char *key, char *out,
                      size_t cap) {
  char pat[64];
  const char *p, *e;
  size_t n;
  out[0] = '\0';
  snprintf(pat, sizeof(pat), "\"%s\":\"", key);
  p = strstr(json, pat);
  if (p == NULL)
    return;
  p += strlen(pat);
  e = strchr(p, '"');
  if (e == NULL)
    return;
  n = (size_t)(e - p) < cap - 1 ? (size_t)(e - p) : cap - 1;
  memcpy(out, p, n);
  out[n] = '\0';
}

static long num_field(const char *json, const char *key) {
  char pat[64];
  const char *p;
  snprintf(pat, sizeof(pat), "\"%s\":", key);
  p = strstr(json, pat);
  return p == NULL ? -1 : strtol(p + strlen(pat), NULL, 10);
}

static void parse_ev(const char *json, wev *e) {
  int t;
  memset(e, 0, sizeof(*e));
  str_field(json, "type", e->tname, sizeof(e->tname));
  e->type = -1;
  for (t = 0; t < NT; t++)
    if (strcmp(e->tname, type_names[t]) == 0)
      e->type = t;
  str_field(json, "run_id", e->run_id, sizeof(e->run_id));
  str_field(json, "tool_call_id", e->call, sizeof(e->call));
  str_field(json, "code", e->code, sizeof(e->code));
  str_field(json, "rule", e->rule, sizeof(e->rule));
  str_field(json, "agent", e->agent, sizeof(e->agent));
  e->synth = strstr(json, "\"synthesized\":true") != NULL;
  e->ok = strstr(json, "\"ok\":true") != NULL;
  e->coalesced = (int)num_field(json, "coalesced");
  e->w = num_field(json, "w");
  e->i = num_field(json, "i");
  e->seq = (uint64_t)num_field(json, "seq");
}

/* Reads the next event, which must be of |type| for |run| (synthesized or
 * not, as |synth|), and returns it parsed. */
static wev expect_ev(tc_client *c, int type, const char *run, int synth) {
  wev e;
  char *m = read_text(c);
  parse_ev(m, &e);
  if (e.type != type || strcmp(e.run_id, run) != 0 || e.synth != synth)
    fail_msg("expected %s of %s (synthesized %d), got %.400s",
             type_names[type], run, synth, m);
  free(m);
  return e;
}

/* ------------------------------------------------- lifecycle checker */

#define MAX_CALL_IDS 8
typedef struct life {
  char run[300];
  int phase; /* 0 none, 1 live, 2 ended */
  int open[MAX_CALL_IDS], used[MAX_CALL_IDS];
} life;

typedef struct checker {
  life *runs;
  size_t n, cap;
  int closed_end; /* repair: no terminal event with calls open */
  size_t events, synth, coalesced_extra;
  size_t by_type[NT];
  long last_i[8]; /* per emitting thread: the last "i" seen */
} checker;

static void checker_init(checker *k, int closed_end) {
  int i;
  memset(k, 0, sizeof(*k));
  k->closed_end = closed_end;
  for (i = 0; i < 8; i++)
    k->last_i[i] = -1;
}

static void checker_free(checker *k) { free(k->runs); }

static life *find_run(checker *k, const char *run) {
  size_t i;
  for (i = k->n; i-- > 0;)
    if (strcmp(k->runs[i].run, run) == 0)
      return &k->runs[i];
  if (k->n == k->cap) {
    k->cap = k->cap ? k->cap * 2 : 256;
    k->runs = realloc(k->runs, k->cap * sizeof(*k->runs));
    assert_non_null(k->runs);
  }
  memset(&k->runs[k->n], 0, sizeof(k->runs[k->n]));
  snprintf(k->runs[k->n].run, sizeof(k->runs[k->n].run), "%s", run);
  return &k->runs[k->n++];
}

static int call_index(const char *id) {
  if (id[0] != 'c' || id[1] < '0' || id[1] >= '0' + MAX_CALL_IDS ||
      id[2] != '\0')
    fail_msg("unexpected tool_call_id %s", id);
  return id[1] - '0';
}

/* Feeds one delivered event; |lifecycle|: check the lifecycle rules. */
static void checker_feed(checker *k, const wev *e, int lifecycle) {
  life *l;
  int c, nopen = 0, j;
  if (e->type < 0)
    fail_msg("unexpected event type %s", e->tname);
  k->events++;
  k->by_type[e->type]++;
  if (e->coalesced > 1)
    k->coalesced_extra += (size_t)e->coalesced - 1;
  if (e->synth) {
    k->synth++;
    if (e->rule[0] == '\0')
      fail_msg("synthesized %s of %s without data.rule", e->tname,
               e->run_id);
  } else if (e->w >= 0 && e->w < 8) {
    /* Each thread's events keep their order. */
    if (e->i <= k->last_i[e->w])
      fail_msg("thread %ld: event %ld after %ld", e->w, e->i,
               k->last_i[e->w]);
    k->last_i[e->w] = e->i;
  }
  if (!lifecycle)
    return;
  l = find_run(k, e->run_id);
  for (j = 0; j < MAX_CALL_IDS; j++)
    nopen += l->open[j];
  if (l->phase == 0) {
    if (e->type != T_STARTED)
      fail_msg("run %s: %s before agent_started", l->run, e->tname);
    l->phase = 1;
    return;
  }
  if (l->phase == 2)
    fail_msg("run %s: %s after its end", l->run, e->tname);
  switch (e->type) {
  case T_STARTED:
    fail_msg("run %s: agent_started twice", l->run);
    break;
  case T_EXEC:
    c = call_index(e->call);
    if (l->used[c])
      fail_msg("run %s: tool_call_id %s used twice", l->run, e->call);
    l->used[c] = l->open[c] = 1;
    break;
  case T_DONE:
    c = call_index(e->call);
    if (!l->open[c])
      fail_msg("run %s: tool_completed for %s, not open", l->run, e->call);
    l->open[c] = 0;
    break;
  case T_COMPLETED:
  case T_ERROR:
    if (nopen > 0 && (k->closed_end || e->type == T_COMPLETED))
      fail_msg("run %s: %s with %d tool calls open", l->run, e->tname,
               nopen);
    l->phase = 2;
    break;
  default:
    break;
  }
}

static size_t checker_live(const checker *k) {
  size_t i, n = 0;
  for (i = 0; i < k->n; i++)
    n += k->runs[i].phase == 1;
  return n;
}

/* ------------------------------------------------------------- stats */

static uint64_t stat_of(agentws_manager *m, int which) {
  agentws_stats *st = NULL;
  uint64_t v;
  assert_int_equal(agentws_stats_new(&st), 0);
  assert_int_equal(agentws_manager_get_stats(m, st), 0);
  v = agentws_stats_get(st, which);
  agentws_stats_free(st);
  return v;
}

/* The by-rule and by-outcome counters equal what on_violation saw. */
static void expect_stats_match_hook(agentws_manager *m) {
  agentws_stats *st = NULL;
  int i;
  assert_int_equal(agentws_stats_new(&st), 0);
  assert_int_equal(agentws_manager_get_stats(m, st), 0);
  for (i = 1; i < 10; i++)
    if (agentws_stats_get(st, AGENTWS_STAT_VIOLATION_SCHEMA + i) !=
        g_vlog.by_rule[i])
      fail_msg("stat %s = %llu, on_violation saw %llu", agentws_stat_name(
                   AGENTWS_STAT_VIOLATION_SCHEMA + i),
               (unsigned long long)agentws_stats_get(
                   st, AGENTWS_STAT_VIOLATION_SCHEMA + i),
               (unsigned long long)g_vlog.by_rule[i]);
  for (i = 0; i < 4; i++)
    if (agentws_stats_get(st, AGENTWS_STAT_VIOLATIONS_WARNED + i) !=
        g_vlog.by_outcome[i])
      fail_msg("stat %s = %llu, on_violation saw %llu",
               agentws_stat_name(AGENTWS_STAT_VIOLATIONS_WARNED + i),
               (unsigned long long)agentws_stats_get(
                   st, AGENTWS_STAT_VIOLATIONS_WARNED + i),
               (unsigned long long)g_vlog.by_outcome[i]);
  agentws_stats_free(st);
  assert_int_equal(g_vlog.wrong_thread, 0);
  assert_int_equal(g_vlog.bad_args, 0);
}

/* --------------------------------------------------------- emit helper */

/* Emits |type| for |run| (tool events with |call|); |wi| (may be NULL) is
 * a JSON object put into data / args / result. */
static int emit(agentws_manager *m, const char *user, int type,
                const char *run, const char *call, const char *wi) {
  switch (type) {
  case T_STARTED:
    return agentws_emit_agent_started(m, USER, user, run, "bot", wi);
  case T_THINKING:
    return agentws_emit_agent_thinking(m, USER, user, run, "hmm", 3, wi);
  case T_EXEC:
    return agentws_emit_tool_executing(m, USER, user, run, "web", call, wi);
  case T_DONE:
    return agentws_emit_tool_completed(m, USER, user, run, "web", call, 1, 5,
                                       wi);
  case T_COMPLETED:
    return agentws_emit_agent_completed(m, USER, user, run, 9, NULL, wi);
  default:
    return agentws_emit_agent_error(m, USER, user, run, "boom", "it broke",
                                    "error", 0, wi);
  }
}

/* ============================================ four threads, random runs */

#define NTHREADS 4
#define PER_ROUND 200 /* per thread: 800 emits a round, < 1024 reports */
#define ROUNDS 4
#define NSLOTS 6

static atomic_int g_gen[NSLOTS]; /* current run of each slot */

typedef struct pworker {
  agentws_manager *m;
  int idx, round;
  uint64_t rng;
  int ok, refused, other, last_other;
  int emitted_by_type[NT];
  atomic_int *done;
} pworker;

static uint32_t prnd(pworker *w) {
  w->rng ^= w->rng >> 12;
  w->rng ^= w->rng << 25;
  w->rng ^= w->rng >> 27;
  return (uint32_t)((w->rng * 2685821657736338717ull) >> 32);
}

static int prnd_type(pworker *w) {
  uint32_t x = prnd(w) % 100;
  return x < 16   ? T_STARTED
         : x < 34 ? T_THINKING
         : x < 56 ? T_EXEC
         : x < 80 ? T_DONE
         : x < 92 ? T_COMPLETED
                  : T_ERROR;
}

static void pworker_main(void *p) {
  pworker *w = p;
  int n;
  for (n = 0; n < PER_ROUND; n++) {
    int slot = (int)(prnd(w) % NSLOTS);
    int gen = atomic_load(&g_gen[slot]);
    int type = prnd_type(w);
    char run[32], call[8], wi[48];
    int rv;
    snprintf(run, sizeof(run), "s%d-g%d", slot, gen);
    snprintf(call, sizeof(call), "c%u", prnd(w) % 4);
    snprintf(wi, sizeof(wi), "{\"w\":%d,\"i\":%d}", w->idx,
             w->round * PER_ROUND + n);
    rv = emit(w->m, "pt", type, run, call, wi);
    if (rv == 0) {
      w->ok++;
      w->emitted_by_type[type]++;
    } else if (rv == AGENTWS_ERR_VALIDATION) {
      w->refused++;
    } else {
      w->other++;
      w->last_other = rv;
    }
    /* After an end, often move the slot on to a new run id. */
    if ((type == T_COMPLETED || type == T_ERROR) && prnd(w) % 2 == 0)
      atomic_compare_exchange_strong(&g_gen[slot], &gen, gen + 1);
  }
  atomic_fetch_add(w->done, 1);
}

static void feed_message(checker *k, char *m, int lifecycle, int *marker) {
  wev e;
  if (strncmp(m, "{\"type\":\"mark.end\"", 18) == 0) {
    *marker = 1;
    return;
  }
  if (strncmp(m, "{\"type\":\"gap\"", 13) == 0)
    fail_msg("events were lost: %.200s", m);
  parse_ev(m, &e);
  if (strcmp(e.tname, "error") == 0 || e.type < 0)
    fail_msg("unexpected message: %.300s", m);
  checker_feed(k, &e, lifecycle);
}

static void threads_random_lifecycles(int policy) {
  static th_server s;
  static pworker w[NTHREADS];
  atomic_int done;
  checker k;
  tc_client c;
  uv_thread_t th[NTHREADS];
  int round, t, i;
  size_t ok = 0, refused = 0, by_type[NT];
  memset(by_type, 0, sizeof(by_type));
  vstart(&s, vcfg(policy));
  connect_user(&s, &c, "pt");
  for (i = 0; i < NSLOTS; i++)
    atomic_store(&g_gen[i], 0);
  checker_init(&k, policy == AGENTWS_VALIDATION_REPAIR);
  for (round = 0; round < ROUNDS; round++) {
    int marker = 0;
    uint64_t deadline;
    atomic_store(&done, 0);
    for (t = 0; t < NTHREADS; t++) {
      memset(&w[t], 0, sizeof(w[t]));
      w[t].m = s.m;
      w[t].idx = t;
      w[t].round = round;
      w[t].rng = (uint64_t)(policy * 1000 + round * 10 + t + 1) *
                     0x9E3779B97F4A7C15ull |
                 1;
      w[t].done = &done;
      assert_int_equal(uv_thread_create(&th[t], pworker_main, &w[t]), 0);
    }
    /* Read (and so run the loop) while the threads emit. */
    deadline = tc_now_ms() + 20000;
    while (atomic_load(&done) < NTHREADS) {
      char *m = try_read_text(&c, 2);
      if (m != NULL) {
        feed_message(&k, m, policy != AGENTWS_VALIDATION_WARN, &marker);
        free(m);
      }
      if (tc_now_ms() > deadline)
        fail_msg("emitting threads did not finish");
    }
    for (t = 0; t < NTHREADS; t++) {
      assert_int_equal(uv_thread_join(&th[t]), 0);
      if (w[t].other != 0)
        fail_msg("thread %d: %d emits failed (last %s)", t, w[t].other,
                 agentws_err_name(w[t].last_other));
      ok += (size_t)w[t].ok;
      refused += (size_t)w[t].refused;
      for (i = 0; i < NT; i++)
        by_type[i] += (size_t)w[t].emitted_by_type[i];
    }
    /* Everything emitted before the marker arrives before it. */
    assert_int_equal(agentws_emit_custom(s.m, USER, "pt", "mark.end", NULL,
                                         "{\"round\":1}"),
                     0);
    deadline = tc_now_ms() + 10000;
    while (!marker) {
      char *m = try_read_text(&c, 100);
      if (m != NULL) {
        feed_message(&k, m, policy != AGENTWS_VALIDATION_WARN, &marker);
        free(m);
      }
      if (tc_now_ms() > deadline)
        fail_msg("the marker did not arrive");
    }
    settle(&s);

    /* What arrived, against what was emitted and counted. */
    {
      size_t got = k.events + k.coalesced_extra;
      uint64_t synth = stat_of(s.m, AGENTWS_STAT_EVENTS_SYNTHESIZED);
      uint64_t dropped = stat_of(s.m, AGENTWS_STAT_VIOLATIONS_DROPPED);
      uint64_t refused_st = stat_of(s.m, AGENTWS_STAT_VIOLATIONS_REFUSED);
      assert_int_equal(k.synth, synth);
      assert_int_equal(refused, refused_st);
      switch (policy) {
      case AGENTWS_VALIDATION_WARN: /* every event, as sent */
        assert_int_equal(refused, 0);
        assert_int_equal(synth, 0);
        assert_int_equal(got, ok);
        assert_int_equal(ok, (size_t)(round + 1) * NTHREADS * PER_ROUND);
        assert_int_equal(k.by_type[T_STARTED], by_type[T_STARTED]);
        assert_int_equal(k.by_type[T_EXEC], by_type[T_EXEC]);
        assert_int_equal(k.by_type[T_DONE], by_type[T_DONE]);
        assert_int_equal(k.by_type[T_COMPLETED], by_type[T_COMPLETED]);
        assert_int_equal(k.by_type[T_ERROR], by_type[T_ERROR]);
        assert_true(g_vlog.by_outcome[AGENTWS_OUTCOME_WARNED] > 0);
        break;
      case AGENTWS_VALIDATION_STRICT: /* every accepted event, nothing
                                         made up */
        assert_int_equal(synth, 0);
        assert_int_equal(got, ok);
        assert_int_equal(dropped, 0);
        assert_true(refused > 0);
        break;
      default: /* accepted minus dropped, plus the synthesized ones */
        assert_int_equal(refused, 0);
        assert_int_equal(got - k.synth, ok - dropped);
        assert_true(synth > 0);
        assert_true(dropped > 0);
        break;
      }
      if (policy != AGENTWS_VALIDATION_WARN)
        assert_int_equal(stat_of(s.m, AGENTWS_STAT_RUNS_LIVE), checker_live(&k));
      assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_SCHEMA), 0);
    }
    /* Every report reached on_violation, on the loop thread. */
    expect_stats_match_hook(s.m);
    if (round == ROUNDS - 1)
      fprintf(stderr,
              "policy %d: %zu emits accepted, %zu refused; %zu events "
              "arrived (%zu synthesized, %zu merged away) in %zu runs, "
              "%zu live; %llu violations reported\n",
              policy, ok, refused, k.events, k.synth, k.coalesced_extra,
              k.n, checker_live(&k), (unsigned long long)g_vlog.total);
    for (i = 0; i < (int)g_vlog.n; i++) {
      assert_string_equal(g_vlog.r[i].target_id, "pt");
      assert_true(g_vlog.r[i].run_id[0] == 's');
    }
  }
  checker_free(&k);
  close_client(&s, &c);
  th_finish(&s);
}

static void test_threads_repair(void **state) {
  (void)state;
  threads_random_lifecycles(AGENTWS_VALIDATION_REPAIR);
}

static void test_threads_strict(void **state) {
  (void)state;
  threads_random_lifecycles(AGENTWS_VALIDATION_STRICT);
}

static void test_threads_warn(void **state) {
  (void)state;
  threads_random_lifecycles(AGENTWS_VALIDATION_WARN);
}

/* ============================================ one broken run per policy */

/* The last violation seen is |rule| / |outcome| for |run|. */
static void expect_hook(th_server *s, size_t n, int rule, int outcome,
                        const char *run) {
  TH_RUN_UNTIL(s, g_vlog.n >= n);
  settle(s);
  assert_int_equal(g_vlog.n, n);
  assert_int_equal(g_vlog.r[n - 1].rule, rule);
  assert_int_equal(g_vlog.r[n - 1].outcome, outcome);
  assert_string_equal(g_vlog.r[n - 1].run_id, run);
  assert_string_equal(g_vlog.r[n - 1].target_id, "u");
  assert_int_equal(g_vlog.wrong_thread, 0);
}

/* Strict: each broken event's emit fails with AGENTWS_ERR_VALIDATION,
 * the client sees only the valid events, on_violation reports it. */
static void test_strict_refuses(void **state) {
  static th_server s;
  tc_client c;
  size_t n = 0;
  (void)state;
  vstart(&s, vcfg(AGENTWS_VALIDATION_STRICT));
  connect_user(&s, &c, "u");

  assert_int_equal(emit(s.m, "u", T_THINKING, "r1", NULL, NULL),
                   AGENTWS_ERR_VALIDATION);
  expect_hook(&s, ++n, AGENTWS_RULE_RUN_NOT_STARTED, AGENTWS_OUTCOME_REFUSED,
              "r1");
  assert_int_equal(strstr(g_vlog.r[0].message, "agent_started") != NULL, 1);
  expect_quiet(&c, QUIET_MS);

  assert_int_equal(emit(s.m, "u", T_STARTED, "r1", NULL, NULL), 0);
  assert_int_equal(emit(s.m, "u", T_STARTED, "r1", NULL, NULL),
                   AGENTWS_ERR_VALIDATION);
  expect_hook(&s, ++n, AGENTWS_RULE_DUPLICATE_START, AGENTWS_OUTCOME_REFUSED,
              "r1");
  assert_int_equal(emit(s.m, "u", T_DONE, "r1", "c9", NULL),
                   AGENTWS_ERR_VALIDATION);
  expect_hook(&s, ++n, AGENTWS_RULE_ORPHAN_TOOL_RESULT,
              AGENTWS_OUTCOME_REFUSED, "r1");
  assert_int_equal(emit(s.m, "u", T_EXEC, "r1", "c1", NULL), 0);
  assert_int_equal(emit(s.m, "u", T_EXEC, "r1", "c1", NULL),
                   AGENTWS_ERR_VALIDATION);
  expect_hook(&s, ++n, AGENTWS_RULE_DUPLICATE_TOOL_CALL,
              AGENTWS_OUTCOME_REFUSED, "r1");
  assert_int_equal(emit(s.m, "u", T_COMPLETED, "r1", NULL, NULL),
                   AGENTWS_ERR_VALIDATION);
  expect_hook(&s, ++n, AGENTWS_RULE_OPEN_TOOLS_AT_END,
              AGENTWS_OUTCOME_REFUSED, "r1");
  assert_int_equal(emit(s.m, "u", T_DONE, "r1", "c1", NULL), 0);
  assert_int_equal(emit(s.m, "u", T_COMPLETED, "r1", NULL, NULL), 0);
  assert_int_equal(emit(s.m, "u", T_THINKING, "r1", NULL, NULL),
                   AGENTWS_ERR_VALIDATION);
  expect_hook(&s, ++n, AGENTWS_RULE_AFTER_TERMINAL, AGENTWS_OUTCOME_REFUSED,
              "r1");

  /* Exactly the valid events, in order. */
  expect_ev(&c, T_STARTED, "r1", 0);
  expect_ev(&c, T_EXEC, "r1", 0);
  expect_ev(&c, T_DONE, "r1", 0);
  expect_ev(&c, T_COMPLETED, "r1", 0);
  expect_quiet(&c, QUIET_MS);

  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATIONS_REFUSED), 6);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_EVENTS_SYNTHESIZED), 0);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_RUNS_LIVE), 0);
  expect_stats_match_hook(s.m);
  close_client(&s, &c);
  th_finish(&s);
}

/* Repair: what is missing is synthesized (data.synthesized, data.rule),
 * what cannot be made valid is dropped (emit returns 0). */
static void test_repair_synthesizes(void **state) {
  static th_server s;
  tc_client c;
  wev e;
  (void)state;
  vstart(&s, vcfg(AGENTWS_VALIDATION_REPAIR));
  connect_user(&s, &c, "u");

  /* A result first: agent_started and tool_executing are made up. */
  assert_int_equal(emit(s.m, "u", T_DONE, "r1", "c1", NULL), 0);
  e = expect_ev(&c, T_STARTED, "r1", 1);
  assert_string_equal(e.rule, "run_not_started");
  assert_string_equal(e.agent, "unknown");
  e = expect_ev(&c, T_EXEC, "r1", 1);
  assert_string_equal(e.rule, "orphan_tool_result");
  assert_string_equal(e.call, "c1");
  e = expect_ev(&c, T_DONE, "r1", 0);
  assert_string_equal(e.call, "c1");
  /* Dropped: a second start, a second result, a reused call id. */
  assert_int_equal(emit(s.m, "u", T_STARTED, "r1", NULL, NULL), 0);
  assert_int_equal(emit(s.m, "u", T_DONE, "r1", "c1", NULL), 0);
  assert_int_equal(emit(s.m, "u", T_EXEC, "r1", "c1", NULL), 0);
  /* Completed with a call open: a failed tool_completed first. */
  assert_int_equal(emit(s.m, "u", T_EXEC, "r1", "c2", NULL), 0);
  assert_int_equal(emit(s.m, "u", T_COMPLETED, "r1", NULL, NULL), 0);
  e = expect_ev(&c, T_EXEC, "r1", 0);
  assert_string_equal(e.call, "c2");
  e = expect_ev(&c, T_DONE, "r1", 1);
  assert_string_equal(e.call, "c2");
  assert_int_equal(e.ok, 0);
  assert_string_equal(e.code, "abandoned");
  assert_string_equal(e.rule, "open_tools_at_end");
  expect_ev(&c, T_COMPLETED, "r1", 0);
  /* After the end: dropped. */
  assert_int_equal(emit(s.m, "u", T_THINKING, "r1", NULL, NULL), 0);
  expect_quiet(&c, QUIET_MS);
  settle(&s);

  assert_int_equal(stat_of(s.m, AGENTWS_STAT_EVENTS_SYNTHESIZED), 3);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATIONS_REPAIRED), 3);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATIONS_DROPPED), 4);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_RUN_NOT_STARTED), 1);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_DUPLICATE_START), 1);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_ORPHAN_TOOL_RESULT), 2);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_DUPLICATE_TOOL_CALL), 1);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_OPEN_TOOLS_AT_END), 1);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_AFTER_TERMINAL), 1);
  assert_int_equal(g_vlog.n, 7);
  expect_stats_match_hook(s.m);

  /* agent_error with a call open: closed (run_failed), no violation. */
  assert_int_equal(emit(s.m, "u", T_STARTED, "r2", NULL, NULL), 0);
  assert_int_equal(emit(s.m, "u", T_EXEC, "r2", "c1", NULL), 0);
  assert_int_equal(emit(s.m, "u", T_ERROR, "r2", NULL, NULL), 0);
  expect_ev(&c, T_STARTED, "r2", 0);
  expect_ev(&c, T_EXEC, "r2", 0);
  e = expect_ev(&c, T_DONE, "r2", 1);
  assert_string_equal(e.code, "run_failed");
  e = expect_ev(&c, T_ERROR, "r2", 0);
  assert_string_equal(e.code, "boom");
  settle(&s);
  assert_int_equal(g_vlog.n, 7);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_EVENTS_SYNTHESIZED), 4);
  close_client(&s, &c);
  th_finish(&s);
}

/* The default policy is warn: broken events are delivered as sent,
 * counted and reported. */
static void test_default_is_warn(void **state) {
  static th_server s;
  tc_client c;
  (void)state;
  vstart(&s, vcfg(-1));
  connect_user(&s, &c, "u");
  assert_int_equal(emit(s.m, "u", T_THINKING, "r1", NULL, NULL), 0);
  assert_int_equal(emit(s.m, "u", T_DONE, "r1", "c1", NULL), 0);
  assert_int_equal(emit(s.m, "u", T_COMPLETED, "r1", NULL, NULL), 0);
  assert_int_equal(emit(s.m, "u", T_COMPLETED, "r1", NULL, NULL), 0);
  expect_ev(&c, T_THINKING, "r1", 0);
  expect_ev(&c, T_DONE, "r1", 0);
  expect_ev(&c, T_COMPLETED, "r1", 0);
  expect_ev(&c, T_COMPLETED, "r1", 0);
  expect_quiet(&c, QUIET_MS);
  TH_RUN_UNTIL(&s, g_vlog.n == 3);
  assert_int_equal(g_vlog.r[0].rule, AGENTWS_RULE_RUN_NOT_STARTED);
  assert_int_equal(g_vlog.r[1].rule, AGENTWS_RULE_ORPHAN_TOOL_RESULT);
  assert_int_equal(g_vlog.r[2].rule, AGENTWS_RULE_AFTER_TERMINAL);
  assert_int_equal(g_vlog.r[2].outcome, AGENTWS_OUTCOME_WARNED);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATIONS_WARNED), 3);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_EVENTS_SYNTHESIZED), 0);
  expect_stats_match_hook(s.m);
  close_client(&s, &c);
  th_finish(&s);
}

/* on_violation says whether the run's target is a user or a room. */
static void test_violation_names_target_kind(void **state) {
  static th_server s;
  (void)state;
  vstart(&s, vcfg(AGENTWS_VALIDATION_WARN));
  assert_int_equal(agentws_emit_agent_completed(s.m, AGENTWS_TARGET_ROOM,
                                                "room-x", "r1", 1, NULL,
                                                NULL),
                   0);
  assert_int_equal(agentws_emit_agent_completed(s.m, USER, "room-x", "r1",
                                                1, NULL, NULL),
                   0);
  TH_RUN_UNTIL(&s, g_vlog.n == 2);
  assert_int_equal(g_vlog.r[0].target, AGENTWS_TARGET_ROOM);
  assert_string_equal(g_vlog.r[0].target_id, "room-x");
  assert_int_equal(g_vlog.r[1].target, AGENTWS_TARGET_USER);
  assert_string_equal(g_vlog.r[1].target_id, "room-x");
  assert_int_equal(g_vlog.bad_args, 0);
  th_finish(&s);
}

/* Off: nothing checked, counted or tracked. */
static void test_off(void **state) {
  static th_server s;
  tc_client c;
  (void)state;
  vstart(&s, vcfg(AGENTWS_VALIDATION_OFF));
  connect_user(&s, &c, "u");
  assert_int_equal(emit(s.m, "u", T_THINKING, "r1", NULL, NULL), 0);
  assert_int_equal(emit(s.m, "u", T_STARTED, "r2", NULL, NULL), 0);
  assert_int_equal(emit(s.m, "u", T_STARTED, "r2", NULL, NULL), 0);
  expect_ev(&c, T_THINKING, "r1", 0);
  expect_ev(&c, T_STARTED, "r2", 0);
  expect_ev(&c, T_STARTED, "r2", 0);
  settle(&s);
  assert_int_equal(g_vlog.total, 0);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_RUNS_LIVE), 0);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATIONS_WARNED), 0);
  close_client(&s, &c);
  th_finish(&s);
}

/* A rule's own policy wins over the global one. */
static void test_rule_override(void **state) {
  static th_server s;
  tc_client c;
  agentws_config *cfg = vcfg(AGENTWS_VALIDATION_STRICT);
  wev e;
  (void)state;
  assert_int_equal(agentws_config_set_validation_rule(
                       cfg, AGENTWS_RULE_RUN_NOT_STARTED,
                       AGENTWS_VALIDATION_REPAIR),
                   0);
  assert_int_equal(agentws_config_set_validation_rule(
                       cfg, AGENTWS_RULE_AFTER_TERMINAL,
                       AGENTWS_VALIDATION_WARN),
                   0);
  vstart(&s, cfg);
  connect_user(&s, &c, "u");
  assert_int_equal(emit(s.m, "u", T_THINKING, "r1", NULL, NULL), 0);
  assert_int_equal(emit(s.m, "u", T_STARTED, "r1", NULL, NULL),
                   AGENTWS_ERR_VALIDATION);
  assert_int_equal(emit(s.m, "u", T_ERROR, "r1", NULL, NULL), 0);
  assert_int_equal(emit(s.m, "u", T_THINKING, "r1", NULL, NULL), 0);
  e = expect_ev(&c, T_STARTED, "r1", 1);
  assert_string_equal(e.rule, "run_not_started");
  expect_ev(&c, T_THINKING, "r1", 0);
  expect_ev(&c, T_ERROR, "r1", 0);
  expect_ev(&c, T_THINKING, "r1", 0); /* warned, delivered */
  expect_quiet(&c, QUIET_MS);
  TH_RUN_UNTIL(&s, g_vlog.n == 3);
  assert_int_equal(g_vlog.r[0].outcome, AGENTWS_OUTCOME_REPAIRED);
  assert_int_equal(g_vlog.r[1].outcome, AGENTWS_OUTCOME_REFUSED);
  assert_int_equal(g_vlog.r[2].outcome, AGENTWS_OUTCOME_WARNED);
  expect_stats_match_hook(s.m);
  close_client(&s, &c);
  th_finish(&s);
}

/* ================================================== stall / tool timeout */

/* A quiet run is ended after stall_timeout_ms: its open call fails with
 * code "stalled", then agent_error {code:"stalled"}. */
static void stall_case(int policy) {
  static th_server s;
  tc_client c;
  agentws_config *cfg = vcfg(policy);
  uint64_t t0;
  wev e;
  assert_int_equal(agentws_config_set_stall_timeout_ms(cfg, 100), 0);
  vstart(&s, cfg);
  connect_user(&s, &c, "u");
  t0 = tc_now_ms(); /* the stall is measured from the last event */
  assert_int_equal(emit(s.m, "u", T_STARTED, "q1", NULL, NULL), 0);
  assert_int_equal(emit(s.m, "u", T_EXEC, "q1", "c1", NULL), 0);
  expect_ev(&c, T_STARTED, "q1", 0);
  expect_ev(&c, T_EXEC, "q1", 0);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_RUNS_LIVE), 1);
  e = expect_ev(&c, T_DONE, "q1", 1);
  assert_true(tc_now_ms() - t0 >= 100);
  assert_true(tc_now_ms() - t0 < 2000);
  assert_int_equal(e.ok, 0);
  assert_string_equal(e.code, "stalled");
  assert_string_equal(e.rule, "run_stalled");
  e = expect_ev(&c, T_ERROR, "q1", 1);
  assert_string_equal(e.code, "stalled");
  assert_string_equal(e.rule, "run_stalled");
  expect_hook(&s, 1, AGENTWS_RULE_RUN_STALLED, AGENTWS_OUTCOME_REPAIRED,
              "q1");
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_RUN_STALLED), 1);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_EVENTS_SYNTHESIZED), 2);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_RUNS_LIVE), 0);
  /* The agent wakes up too late: its events come after the end. */
  assert_int_equal(emit(s.m, "u", T_COMPLETED, "q1", NULL, NULL),
                   policy == AGENTWS_VALIDATION_STRICT ? AGENTWS_ERR_VALIDATION
                                                       : 0);
  expect_quiet(&c, 300);
  expect_stats_match_hook(s.m);
  close_client(&s, &c);
  th_finish(&s);
}

static void test_stall_repair(void **state) {
  (void)state;
  stall_case(AGENTWS_VALIDATION_REPAIR);
}

static void test_stall_strict(void **state) {
  (void)state;
  stall_case(AGENTWS_VALIDATION_STRICT);
}

/* Under warn a stalled run is reported (once) and left alone. */
static void test_stall_warn(void **state) {
  static th_server s;
  tc_client c;
  agentws_config *cfg = vcfg(AGENTWS_VALIDATION_WARN);
  (void)state;
  assert_int_equal(agentws_config_set_stall_timeout_ms(cfg, 100), 0);
  vstart(&s, cfg);
  connect_user(&s, &c, "u");
  assert_int_equal(emit(s.m, "u", T_STARTED, "q1", NULL, NULL), 0);
  expect_ev(&c, T_STARTED, "q1", 0);
  expect_hook(&s, 1, AGENTWS_RULE_RUN_STALLED, AGENTWS_OUTCOME_WARNED, "q1");
  expect_quiet(&c, 400); /* and nothing is sent; nor reported again */
  settle(&s);
  assert_int_equal(g_vlog.n, 1);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_RUNS_LIVE), 1);
  assert_int_equal(emit(s.m, "u", T_COMPLETED, "q1", NULL, NULL), 0);
  expect_ev(&c, T_COMPLETED, "q1", 0);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_RUNS_LIVE), 0);
  expect_stats_match_hook(s.m);
  close_client(&s, &c);
  th_finish(&s);
}

/* A tool call without a result after tool_timeout_ms fails with result
 * {code:"timeout"}; the agent's late result is then dropped. */
static void test_tool_timeout_repair(void **state) {
  static th_server s;
  tc_client c;
  agentws_config *cfg = vcfg(AGENTWS_VALIDATION_REPAIR);
  uint64_t t0;
  wev e;
  (void)state;
  assert_int_equal(agentws_config_set_tool_timeout_ms(cfg, 100), 0);
  assert_int_equal(agentws_config_set_stall_timeout_ms(cfg, 0), 0);
  vstart(&s, cfg);
  connect_user(&s, &c, "u");
  assert_int_equal(emit(s.m, "u", T_STARTED, "q2", NULL, NULL), 0);
  t0 = tc_now_ms();
  assert_int_equal(emit(s.m, "u", T_EXEC, "q2", "c1", NULL), 0);
  expect_ev(&c, T_STARTED, "q2", 0);
  expect_ev(&c, T_EXEC, "q2", 0);
  e = expect_ev(&c, T_DONE, "q2", 1);
  assert_true(tc_now_ms() - t0 >= 100);
  assert_int_equal(e.ok, 0);
  assert_string_equal(e.call, "c1");
  assert_string_equal(e.code, "timeout");
  assert_string_equal(e.rule, "tool_timeout");
  expect_hook(&s, 1, AGENTWS_RULE_TOOL_TIMEOUT, AGENTWS_OUTCOME_REPAIRED,
              "q2");
  assert_int_equal(emit(s.m, "u", T_DONE, "q2", "c1", NULL), 0); /* late */
  assert_int_equal(emit(s.m, "u", T_COMPLETED, "q2", NULL, NULL), 0);
  expect_ev(&c, T_COMPLETED, "q2", 0);
  expect_quiet(&c, QUIET_MS);
  expect_hook(&s, 2, AGENTWS_RULE_ORPHAN_TOOL_RESULT,
              AGENTWS_OUTCOME_DROPPED, "q2");
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_TOOL_TIMEOUT), 1);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_EVENTS_SYNTHESIZED), 1);
  expect_stats_match_hook(s.m);
  close_client(&s, &c);
  th_finish(&s);
}

/* =================================================== config and schema */

static void test_config_ranges(void **state) {
  agentws_config *cfg = NULL;
  int r;
  (void)state;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_validation(NULL, 1),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_validation(cfg, -1),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_validation(cfg, 4),
                   AGENTWS_ERR_OUT_OF_RANGE);
  for (r = 0; r <= 3; r++)
    assert_int_equal(agentws_config_set_validation(cfg, r), 0);

  assert_int_equal(agentws_config_set_validation_rule(
                       NULL, AGENTWS_RULE_RUN_STALLED, 1),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_validation_rule(
                       cfg, AGENTWS_RULE_SCHEMA, AGENTWS_VALIDATION_WARN),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_validation_rule(cfg, -1, 1),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_validation_rule(cfg, 10, 1),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_validation_rule(
                       cfg, AGENTWS_RULE_RUN_LIMIT, 4),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_validation_rule(
                       cfg, AGENTWS_RULE_RUN_LIMIT, -1),
                   AGENTWS_ERR_OUT_OF_RANGE);
  for (r = AGENTWS_RULE_RUN_NOT_STARTED; r <= AGENTWS_RULE_RUN_LIMIT; r++)
    assert_int_equal(agentws_config_set_validation_rule(cfg, r, r % 4), 0);

  assert_int_equal(agentws_config_set_stall_timeout_ms(cfg, 5),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_stall_timeout_ms(cfg, -1),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_stall_timeout_ms(cfg, 86400001),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_stall_timeout_ms(cfg, 0), 0);
  assert_int_equal(agentws_config_set_stall_timeout_ms(cfg, 10), 0);
  assert_int_equal(agentws_config_set_stall_timeout_ms(cfg, 86400000), 0);
  assert_int_equal(agentws_config_set_stall_timeout_ms(NULL, 100),
                   AGENTWS_ERR_INVALID_ARGUMENT);

  assert_int_equal(agentws_config_set_tool_timeout_ms(cfg, 9),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_tool_timeout_ms(cfg, -5),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_tool_timeout_ms(cfg, 86400001),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_tool_timeout_ms(cfg, 0), 0);
  assert_int_equal(agentws_config_set_tool_timeout_ms(cfg, 10), 0);
  assert_int_equal(agentws_config_set_tool_timeout_ms(cfg, 86400000), 0);

  assert_int_equal(agentws_config_set_max_live_runs(cfg, 0),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_max_live_runs(cfg, -1),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_max_live_runs(cfg, 10000001),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_max_live_runs(cfg, 1), 0);
  assert_int_equal(agentws_config_set_max_live_runs(cfg, 10000000), 0);

  assert_int_equal(agentws_config_set_run_keep_ms(cfg, -1),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_run_keep_ms(cfg, 86400001),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_run_keep_ms(cfg, 0), 0);
  assert_int_equal(agentws_config_set_run_keep_ms(cfg, 86400000), 0);
  agentws_config_free(cfg);
}

/* A string of |n| copies of |ch|, NUL-terminated (caller frees). */
static char *repeat(char ch, size_t n) {
  char *s = malloc(n + 1);
  assert_non_null(s);
  memset(s, ch, n);
  s[n] = '\0';
  return s;
}

/* {"a":{"a":...{"a":1}...}} with |depth| objects. */
static char *nested(int depth) {
  size_t n = (size_t)depth * 6 + 8;
  char *s = malloc(n), *p = s;
  int i;
  assert_non_null(s);
  for (i = 0; i < depth; i++)
    p += sprintf(p, i + 1 < depth ? "{\"a\":" : "{\"a\":1");
  for (i = 0; i < depth; i++)
    *p++ = '}';
  *p = '\0';
  return s;
}

/* Malformed events are refused with their own codes, under any policy,
 * and counted as schema violations; nothing reaches the client. */
static void schema_case(int policy) {
  static th_server s;
  tc_client c;
  char *id256 = repeat('r', 256), *id257 = repeat('r', 257);
  char *d32 = nested(32), *d33 = nested(33), *msg = repeat('m', 4097);
  uint64_t want = 0;
  vstart(&s, vcfg(policy));
  connect_user(&s, &c, "u");
  assert_int_equal(agentws_emit_agent_started(s.m, USER, "u", id257, "bot",
                                              NULL),
                   AGENTWS_ERR_TOO_BIG);
  want++;
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_SCHEMA), want);
  assert_int_equal(agentws_emit_agent_started(s.m, USER, "u", "r1", "bot",
                                              d33),
                   AGENTWS_ERR_INVALID_JSON);
  want++;
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_SCHEMA), want);
  assert_int_equal(agentws_emit_tool_executing(s.m, USER, "u", "r1", "web",
                                               "c1", d33),
                   AGENTWS_ERR_INVALID_JSON);
  want++;
  assert_int_equal(agentws_emit_agent_error(s.m, USER, "u", "r1", "x", msg,
                                            "error", 0, NULL),
                   AGENTWS_ERR_TOO_BIG);
  want++;
  assert_int_equal(agentws_emit_agent_error(s.m, USER, "u", "r1", "x", "m",
                                            "bogus", 0, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  want++;
  assert_int_equal(agentws_emit_agent_started(s.m, USER, "u", "r1", "bot",
                                              "[1]"),
                   AGENTWS_ERR_INVALID_JSON);
  want++;
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_SCHEMA), want);
  /* Nothing reached the client, nothing was tracked. */
  expect_quiet(&c, QUIET_MS);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_RUNS_LIVE), 0);
  /* The limits themselves are fine. */
  assert_int_equal(agentws_emit_agent_started(s.m, USER, "u", id256, "bot",
                                              d32),
                   0);
  expect_ev(&c, T_STARTED, id256, 0);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_SCHEMA), want);
  assert_int_equal(g_vlog.total, 0); /* schema refusals are only counted */
  free(id256);
  free(id257);
  free(d32);
  free(d33);
  free(msg);
  close_client(&s, &c);
  th_finish(&s);
}

static void test_schema_limits_warn(void **state) {
  (void)state;
  schema_case(AGENTWS_VALIDATION_WARN);
}

static void test_schema_limits_off(void **state) {
  (void)state;
  schema_case(AGENTWS_VALIDATION_OFF);
}

static void test_names(void **state) {
  static const char *const rules[] = {
      "schema",          "run_not_started",      "duplicate_start",
      "orphan_tool_result", "duplicate_tool_call", "event_after_terminal",
      "open_tools_at_end",  "run_stalled",         "tool_timeout",
      "run_limit"};
  static const char *const outcomes[] = {"warned", "refused", "repaired",
                                         "dropped"};
  char want[64];
  int i;
  (void)state;
  for (i = 0; i < 10; i++)
    assert_string_equal(agentws_rule_name(i), rules[i]);
  assert_null(agentws_rule_name(-1));
  assert_null(agentws_rule_name(10));
  assert_int_equal(AGENTWS_RULE_RUN_LIMIT, 9);
  for (i = 0; i < 4; i++)
    assert_string_equal(agentws_outcome_name(i), outcomes[i]);
  assert_null(agentws_outcome_name(-1));
  assert_null(agentws_outcome_name(4));
  /* The statistics are named after the rules and outcomes. */
  for (i = 0; i < 10; i++) {
    snprintf(want, sizeof(want), "violation_%s", rules[i]);
    assert_string_equal(agentws_stat_name(AGENTWS_STAT_VIOLATION_SCHEMA + i),
                        want);
  }
  for (i = 0; i < 4; i++) {
    snprintf(want, sizeof(want), "violations_%s", outcomes[i]);
    assert_string_equal(
        agentws_stat_name(AGENTWS_STAT_VIOLATIONS_WARNED + i), want);
  }
  assert_string_equal(agentws_stat_name(AGENTWS_STAT_EVENTS_SYNTHESIZED),
                      "events_synthesized");
  assert_string_equal(agentws_stat_name(AGENTWS_STAT_RUNS_LIVE), "runs_live");
}

/* ===================================== regressions (bugs found and fixed) */

/* Fixed (was a bug): under repair, when the synthesized agent_started does not fit in
 * max_event_bytes (it is ~50 bytes bigger than an empty agent_thinking),
 * the emit fails with AGENTWS_ERR_NOMEM (no memory shortage involved) yet
 * the validator keeps the run as started; the run's next event is then
 * delivered although no agent_started ever reached the client. */
static void test_synth_never_too_big(void **state) {
  static th_server s;
  tc_client c;
  agentws_config *cfg;
  char run[300];
  size_t len;
  int rv = 0, found = 0;
  (void)state;
  cfg = vcfg(AGENTWS_VALIDATION_REPAIR);
  assert_int_equal(agentws_config_set_max_event_bytes(cfg, 256), 0);
  vstart(&s, cfg);
  connect_user(&s, &c, "u");
  for (len = 100; len < 256 && !found; len++) {
    snprintf(run, sizeof(run), "k%03zu-", len);
    memset(run + 5, 'x', len - 5);
    run[len] = '\0';
    rv = agentws_emit_agent_thinking(s.m, USER, "u", run, NULL, 0, NULL);
    if (rv == AGENTWS_ERR_TOO_BIG)
      break;
    if (rv != 0)
      found = 1;
    else
      free(try_read_text(&c, 50)), free(try_read_text(&c, 50));
  }
  assert_false(found); /* repairs are exempt from max_event_bytes */
  assert_int_not_equal(rv, AGENTWS_ERR_NOMEM);
  close_client(&s, &c);
  th_finish(&s);
}

/* Fixed (was a bug): a stalled run whose synthesized agent_error does not fit in
 * max_event_bytes is ended silently: the client never sees the run end
 * (the "spinner forever" the stall timeout is there to prevent). */
static void test_stall_error_never_too_big(void **state) {
  static th_server s;
  tc_client c;
  agentws_config *cfg;
  char run[300];
  char *m;
  (void)state;
  cfg = vcfg(AGENTWS_VALIDATION_REPAIR);
  assert_int_equal(agentws_config_set_max_event_bytes(cfg, 256), 0);
  assert_int_equal(agentws_config_set_stall_timeout_ms(cfg, 100), 0);
  vstart(&s, cfg);
  connect_user(&s, &c, "u");
  /* agent_started with a 120-byte run id fits; the synthesized
   * agent_error (code, message, severity, retryable, mark) does not. */
  memset(run, 'y', 120);
  run[120] = '\0';
  assert_int_equal(agentws_emit_agent_started(s.m, USER, "u", run, "b", NULL),
                   0);
  expect_ev(&c, T_STARTED, run, 0);
  TH_RUN_UNTIL(&s, g_vlog.n >= 1); /* the stall was detected ... */
  assert_int_equal(g_vlog.r[0].rule, AGENTWS_RULE_RUN_STALLED);
  m = try_read_text(&c, 500);      /* ... and the client must hear of it */
  if (m == NULL)
    fail_msg("run_stalled reported as repaired, but no agent_error came");
  free(m);
  close_client(&s, &c);
  th_finish(&s);
}

/* Fixed (was a design gap): runs are keyed by target and run_id.
 * When two users' agents use the same run_id, user b's agent_started is
 * taken for a duplicate start of user a's run and dropped under repair,
 * and b's following events are delivered: b's client sees a run that
 * never started. */
static void test_run_id_per_target(void **state) {
  static th_server s;
  tc_client a, b;
  (void)state;
  vstart(&s, vcfg(AGENTWS_VALIDATION_REPAIR));
  connect_user(&s, &a, "ua");
  connect_user(&s, &b, "ub");
  assert_int_equal(emit(s.m, "ua", T_STARTED, "run-1", NULL, NULL), 0);
  assert_int_equal(emit(s.m, "ub", T_STARTED, "run-1", NULL, NULL), 0);
  assert_int_equal(emit(s.m, "ub", T_THINKING, "run-1", NULL, NULL), 0);
  expect_ev(&a, T_STARTED, "run-1", 0);
  /* b's own run must start for b's client. */
  expect_ev(&b, T_STARTED, "run-1", 0);
  expect_ev(&b, T_THINKING, "run-1", 0);
  close_client(&s, &a);
  close_client(&s, &b);
  th_finish(&s);
}

/* Fixed (was minor): "Malformed events ... are always refused ... and counted
 * under AGENTWS_RULE_SCHEMA", but an invalid room id and a NULL text with
 * a length are refused before the count. */
static void test_schema_always_counted(void **state) {
  static th_server s;
  (void)state;
  vstart(&s, vcfg(AGENTWS_VALIDATION_WARN));
  assert_int_equal(agentws_emit_agent_started(s.m, AGENTWS_TARGET_ROOM,
                                              "bad room!", "r1", "a", NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_SCHEMA), 1);
  assert_int_equal(agentws_emit_agent_thinking(s.m, USER, "u", "r1", NULL, 3,
                                               NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(stat_of(s.m, AGENTWS_STAT_VIOLATION_SCHEMA), 2);
  th_finish(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(test_threads_repair),
      TH_TEST(test_threads_strict),
      TH_TEST(test_threads_warn),
      TH_TEST(test_strict_refuses),
      TH_TEST(test_repair_synthesizes),
      TH_TEST(test_default_is_warn),
      TH_TEST(test_violation_names_target_kind),
      TH_TEST(test_off),
      TH_TEST(test_rule_override),
      TH_TEST(test_stall_repair),
      TH_TEST(test_stall_strict),
      TH_TEST(test_stall_warn),
      TH_TEST(test_tool_timeout_repair),
      cmocka_unit_test(test_config_ranges),
      TH_TEST(test_schema_limits_warn),
      TH_TEST(test_schema_limits_off),
      cmocka_unit_test(test_names),
      TH_TEST(test_synth_never_too_big),
      TH_TEST(test_stall_error_never_too_big),
      TH_TEST(test_run_id_per_target),
      TH_TEST(test_schema_always_counted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
