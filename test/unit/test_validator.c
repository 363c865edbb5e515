/*
 * Unit tests of the run lifecycle validator (lib/agentws_validator.c),
 * driven directly: agentws__validator_check() / _sweep() with a fake
 * synthesize function that records what a repair queues and a fake
 * monotonic clock (the now_ms values passed in).
 *
 * - every rule under every policy (off, warn, strict, repair): the action,
 *   the synthesized events and their position, the reports and counters;
 * - per-rule policies, agent_error with open tools, ended runs forgotten,
 *   a valid lifecycle (no report), the memory bound under 100,000
 *   abandoned runs;
 * - property tests: thousands of random (often broken) event sequences over
 *   a few run ids; what would reach a client must be a valid lifecycle per
 *   run under repair and strict, and exactly the input under warn / off.
 *
 * Tests named known_bug_* show library bugs; they are skipped unless
 * AGENTWS_KNOWN_BUGS=1 is set (then they fail until the bug is fixed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <uv.h>

#include "agentws.h"
#include "agentws_codec.h"
#include "agentws_validator.h"

#define OFF AGENTWS_VALIDATION_OFF
#define WARN AGENTWS_VALIDATION_WARN
#define STRICT AGENTWS_VALIDATION_STRICT
#define REPAIR AGENTWS_VALIDATION_REPAIR

#define STARTED AGENTWS__EV_AGENT_STARTED
#define THINKING AGENTWS__EV_AGENT_THINKING
#define EXEC AGENTWS__EV_TOOL_EXECUTING
#define DONE AGENTWS__EV_TOOL_COMPLETED
#define COMPLETED AGENTWS__EV_AGENT_COMPLETED
#define ERROR AGENTWS__EV_AGENT_ERROR
#define CUSTOM AGENTWS__EV_CUSTOM

#define DELIVER AGENTWS__V_DELIVER
#define REFUSE AGENTWS__V_REFUSE
#define DROP AGENTWS__V_DROP

#define MARK(rule) "{\"synthesized\":true,\"rule\":\"" rule "\"}"

/* ------------------------------------------------------ counting malloc */

/* Every allocation carries its size, so the bytes held are known. */
typedef struct counter {
  size_t live, peak, allocs;
} counter;

#define HDR 16

static void *c_malloc(size_t n, void *ud) {
  counter *c = ud;
  unsigned char *p = malloc(n + HDR);
  if (p == NULL)
    return NULL;
  memcpy(p, &n, sizeof(n));
  c->live += n;
  c->allocs++;
  if (c->live > c->peak)
    c->peak = c->live;
  return p + HDR;
}

static void c_free(void *ptr, void *ud) {
  counter *c = ud;
  unsigned char *p = ptr;
  size_t n;
  if (p == NULL)
    return;
  p -= HDR;
  memcpy(&n, p, sizeof(n));
  c->live -= n;
  free(p);
}

static void *c_calloc(size_t k, size_t n, void *ud) {
  void *p = c_malloc(k * n, ud);
  if (p != NULL)
    memset(p, 0, k * n);
  return p;
}

static void *c_realloc(void *ptr, size_t n, void *ud) {
  unsigned char *q;
  size_t old = 0;
  if (ptr != NULL)
    memcpy(&old, (unsigned char *)ptr - HDR, sizeof(old));
  q = c_malloc(n, ud);
  if (q == NULL)
    return NULL;
  if (ptr != NULL) {
    memcpy(q, ptr, old < n ? old : n);
    c_free(ptr, ud);
  }
  return q;
}

/* ------------------------------------------------------------- recorder */

/* One event that would reach a client: synthesized or checked+delivered. */
typedef struct rec_ev {
  int type;
  int synth;
  int target;
  int ok, retryable;
  int64_t duration_ms;
  char run_id[64], target_id[32], tool[32], tool_call_id[64];
  char agent[32], code[32], message[96], severity[16];
  char data[96], result[48];
} rec_ev;

typedef struct rec {
  rec_ev *ev;
  size_t n, cap;
  int count_only;        /* just count (the 100,000-run tests) */
  size_t nsynth;         /* synthesized events seen */
  size_t nsynth_type[8]; /* ... by type */
  long fail_after;       /* synthesize fails with NOMEM after this many; <0
                            never */
  int build_check;       /* every synthesized event must build */
} rec;

static void copy(char *dst, size_t cap, const char *src) {
  if (src == NULL) {
    dst[0] = '\0';
    return;
  }
  snprintf(dst, cap, "%s", src);
}

static void rec_add(rec *r, const agentws__emit_args *a, int synth) {
  rec_ev *e;
  if (r->count_only)
    return;
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 64;
    r->ev = realloc(r->ev, r->cap * sizeof(*r->ev));
    assert_non_null(r->ev);
  }
  e = &r->ev[r->n++];
  memset(e, 0, sizeof(*e));
  e->type = a->type;
  e->synth = synth;
  e->target = a->target;
  e->ok = a->ok;
  e->retryable = a->retryable;
  e->duration_ms = a->duration_ms;
  copy(e->run_id, sizeof(e->run_id), a->run_id);
  copy(e->target_id, sizeof(e->target_id), a->target_id);
  copy(e->tool, sizeof(e->tool), a->tool);
  copy(e->tool_call_id, sizeof(e->tool_call_id), a->tool_call_id);
  copy(e->agent, sizeof(e->agent), a->agent);
  copy(e->code, sizeof(e->code), a->code);
  copy(e->message, sizeof(e->message), a->message);
  copy(e->severity, sizeof(e->severity), a->severity);
  copy(e->data, sizeof(e->data), a->data_json);
  copy(e->result, sizeof(e->result), a->result_json);
}

static int fake_synth(void *ctx, const agentws__emit_args *a) {
  rec *r = ctx;
  if (r->fail_after >= 0 && (long)r->nsynth >= r->fail_after)
    return AGENTWS_ERR_NOMEM;
  r->nsynth++;
  if (a->type >= 0 && a->type < 8)
    r->nsynth_type[a->type]++;
  if (r->build_check) {
    /* What a repair makes passes the same schema checks as any emit. */
    agentws__event *ev = NULL;
    agentws__emit_args b = *a;
    b.ts_ms = 1763769600123LL;
    assert_int_equal(
        agentws__event_build(agentws__mem_default(), &b, 1u << 20, &ev), 0);
    agentws__event_free(agentws__mem_default(), ev);
  }
  rec_add(r, a, 1);
  return 0;
}

/* -------------------------------------------------------------- fixture */

typedef struct fx {
  agentws__validator v;
  rec r;
  counter cnt;
  agentws__mem mem;
  uint64_t now;
} fx;

static void fx_init_rules(fx *f, const int *pol, int64_t stall,
                          int64_t tool, size_t max_runs, int64_t keep) {
  memset(f, 0, sizeof(*f));
  f->mem.malloc = c_malloc;
  f->mem.free = c_free;
  f->mem.calloc = c_calloc;
  f->mem.realloc = c_realloc;
  f->mem.mem_user_data = &f->cnt;
  f->r.fail_after = -1;
  f->r.build_check = 1;
  f->now = 1000;
  agentws__validator_init(&f->v, &f->mem, pol, stall, tool, max_runs, keep);
}

static void fx_init(fx *f, int policy, int64_t stall, int64_t tool,
                    size_t max_runs, int64_t keep) {
  int pol[AGENTWS__NRULES], i;
  for (i = 0; i < AGENTWS__NRULES; i++)
    pol[i] = policy;
  fx_init_rules(f, pol, stall, tool, max_runs, keep);
}

/* |rule| at |policy|, every other rule at warn when |policy| is off (so
 * runs are still tracked: "off" is per rule) and else at |policy|. */
static void fx_rule(fx *f, int rule, int policy, int64_t stall, int64_t tool,
                    size_t max_runs, int64_t keep) {
  int pol[AGENTWS__NRULES], i;
  for (i = 0; i < AGENTWS__NRULES; i++)
    pol[i] = policy == OFF ? WARN : policy;
  pol[rule] = policy;
  fx_init_rules(f, pol, stall, tool, max_runs, keep);
}

/* The common fixture: no timers, room for 100 runs, ended kept 60 s. */
static void fx_std(fx *f, int policy) { fx_init(f, policy, 0, 0, 100, 60000); }

static void fx_free(fx *f) {
  agentws__validator_free(&f->v);
  free(f->r.ev);
  f->r.ev = NULL;
  /* Everything the validator allocated is back. */
  assert_int_equal(f->cnt.live, 0);
}

static agentws__emit_args args(int type, const char *run, const char *call) {
  agentws__emit_args a;
  memset(&a, 0, sizeof(a));
  a.type = type;
  a.target = AGENTWS_TARGET_USER;
  a.target_id = "alice";
  a.run_id = run;
  a.ts_ms = 1763769600123LL;
  switch (type) {
  case STARTED:
    a.agent = "bot";
    break;
  case THINKING:
    a.text = "hmm";
    a.text_len = 3;
    break;
  case EXEC:
    a.tool = "web";
    a.tool_call_id = call;
    break;
  case DONE:
    a.tool = "web";
    a.tool_call_id = call;
    a.ok = 1;
    a.duration_ms = 7;
    break;
  case COMPLETED:
    a.duration_ms = 42;
    break;
  case ERROR:
    a.code = "boom";
    a.message = "it broke";
    a.severity = "error";
    break;
  case CUSTOM:
    a.custom_type = "ui.card";
    break;
  default:
    break;
  }
  return a;
}

/* Checks one event at f->now; records it when it is delivered. */
static int put_args(fx *f, const agentws__emit_args *a) {
  int act = agentws__validator_check(&f->v, a, f->now, fake_synth, &f->r);
  if (act == DELIVER)
    rec_add(&f->r, a, 0);
  return act;
}

static int put(fx *f, int type, const char *run, const char *call) {
  agentws__emit_args a = args(type, run, call);
  return put_args(f, &a);
}

static void put_ok(fx *f, int type, const char *run, const char *call) {
  assert_int_equal(put(f, type, run, call), DELIVER);
}

static uint64_t sweep(fx *f, uint64_t now) {
  f->now = now;
  return agentws__validator_sweep(&f->v, now, fake_synth, &f->r);
}

/* Forgets the events recorded so far. */
static void rec_clear(fx *f) { f->r.n = 0; }

/* Recorded event |i|: its type, synthesized or not, its tool_call_id. */
static const rec_ev *ev_at(fx *f, size_t i) {
  assert_true(i < f->r.n);
  return &f->r.ev[i];
}

static void expect_ev(fx *f, size_t i, int type, int synth, const char *run,
                      const char *call) {
  const rec_ev *e = ev_at(f, i);
  if (e->type != type || e->synth != synth)
    fail_msg("event %zu: type %d synth %d, want type %d synth %d", i, e->type,
             e->synth, type, synth);
  assert_string_equal(e->run_id, run);
  assert_string_equal(e->target_id, "alice");
  assert_int_equal(e->target, AGENTWS_TARGET_USER);
  if (call != NULL)
    assert_string_equal(e->tool_call_id, call);
}

/* A copy of one report. */
typedef struct rep {
  int rule, outcome, target;
  char run_id[64], target_id[32], message[160];
} rep;

/* Takes the queued reports into |out| (at most |cap|); returns how many
 * there were in all. */
static size_t take(fx *f, rep *out, size_t cap) {
  agentws__vreport *head = agentws__validator_take_reports(&f->v), *r;
  size_t n = 0;
  for (r = head; r != NULL; r = r->next, n++) {
    if (n < cap) {
      out[n].rule = r->rule;
      out[n].outcome = r->outcome;
      out[n].target = r->target;
      copy(out[n].run_id, sizeof(out[n].run_id), r->run_id);
      copy(out[n].target_id, sizeof(out[n].target_id), r->target_id);
      copy(out[n].message, sizeof(out[n].message), r->message);
    }
  }
  agentws__validator_reports_free(&f->mem, head);
  assert_null(agentws__validator_take_reports(&f->v));
  return n;
}

static void expect_no_report(fx *f) {
  rep r[4];
  size_t n = take(f, r, 4);
  if (n != 0)
    fail_msg("unexpected report: rule %s outcome %d run %s: %s",
             agentws__rule_name(r[0].rule), r[0].outcome, r[0].run_id,
             r[0].message);
}

/* Exactly one report, of |rule| / |outcome| about |run|, whose message
 * contains |needle| (NULL: any). */
static void expect_report(fx *f, int rule, int outcome, const char *run,
                          const char *needle) {
  rep r[4];
  size_t n = take(f, r, 4);
  if (n != 1)
    fail_msg("%zu reports, want 1 (%s)", n, agentws__rule_name(rule));
  assert_int_equal(r[0].rule, rule);
  assert_int_equal(r[0].outcome, outcome);
  assert_string_equal(r[0].run_id, run);
  assert_string_equal(r[0].target_id, "alice");
  assert_int_equal(r[0].target, AGENTWS_TARGET_USER);
  assert_true(r[0].message[0] != '\0');
  if (needle != NULL && strstr(r[0].message, needle) == NULL)
    fail_msg("report message '%s' lacks '%s'", r[0].message, needle);
}

/* The counters are exactly |n| of |rule| with |outcome| (n == 0: all zero).
 */
static void expect_counts(fx *f, int rule, int outcome, uint64_t n) {
  int i;
  for (i = 0; i < AGENTWS__NRULES; i++)
    if (f->v.by_rule[i] != (i == rule ? n : 0))
      fail_msg("by_rule[%s] = %llu, want %llu", agentws__rule_name(i),
               (unsigned long long)f->v.by_rule[i],
               (unsigned long long)(i == rule ? n : 0));
  for (i = 0; i < 4; i++)
    if (f->v.by_outcome[i] != (i == outcome ? n : 0))
      fail_msg("by_outcome[%d] = %llu, want %llu", i,
               (unsigned long long)f->v.by_outcome[i],
               (unsigned long long)(i == outcome ? n : 0));
}

static void expect_zero_counts(fx *f) { expect_counts(f, 0, 0, 0); }

/* What the policy's outcome is for a rule whose repair does |repair|. */
static int outcome_of(int policy, int repair) {
  return policy == WARN     ? AGENTWS_OUTCOME_WARNED
         : policy == STRICT ? AGENTWS_OUTCOME_REFUSED
                            : repair;
}

/* After a violation of |rule| by one event: the report and counters for
 * |policy| (none under off). */
static void expect_violation(fx *f, int policy, int rule, int repair,
                             const char *run, const char *needle) {
  if (policy == OFF) {
    expect_no_report(f);
    expect_zero_counts(f);
    return;
  }
  expect_report(f, rule, outcome_of(policy, repair), run, needle);
  expect_counts(f, rule, outcome_of(policy, repair), 1);
}

static int act_of(int policy, int repair_act) {
  return policy == STRICT ? REFUSE : policy == REPAIR ? repair_act : DELIVER;
}

static int policy_of(void **state) { return *(const int *)*state; }

/* ============================================================== the rules */

/* run_not_started: a run whose first event is not agent_started. */
static void test_run_not_started(void **state) {
  int p = policy_of(state);
  fx f;
  fx_rule(&f, AGENTWS_RULE_RUN_NOT_STARTED, p, 0, 0, 100, 60000);
  assert_int_equal(put(&f, THINKING, "r1", NULL), act_of(p, DELIVER));
  expect_violation(&f, p, AGENTWS_RULE_RUN_NOT_STARTED,
                   AGENTWS_OUTCOME_REPAIRED, "r1", "agent_started");
  switch (p) {
  case OFF:
  case WARN: /* delivered as it was, and the run is tracked from here */
    assert_int_equal(f.r.n, 1);
    expect_ev(&f, 0, THINKING, 0, "r1", NULL);
    assert_int_equal(f.v.nlive, 1);
    break;
  case STRICT: /* nothing; the run does not exist */
    assert_int_equal(f.r.n, 0);
    assert_int_equal(f.v.nlive, 0);
    /* Still not started: refused again, then a proper start is fine. */
    assert_int_equal(put(&f, EXEC, "r1", "c1"), REFUSE);
    expect_report(&f, AGENTWS_RULE_RUN_NOT_STARTED, AGENTWS_OUTCOME_REFUSED,
                  "r1", NULL);
    put_ok(&f, STARTED, "r1", NULL);
    put_ok(&f, THINKING, "r1", NULL);
    expect_no_report(&f);
    assert_int_equal(f.v.nlive, 1);
    break;
  case REPAIR: /* an agent_started is synthesized before it */
    assert_int_equal(f.r.n, 2);
    expect_ev(&f, 0, STARTED, 1, "r1", NULL);
    assert_string_equal(ev_at(&f, 0)->agent, "unknown");
    assert_string_equal(ev_at(&f, 0)->data, MARK("run_not_started"));
    expect_ev(&f, 1, THINKING, 0, "r1", NULL);
    assert_int_equal(f.v.nlive, 1);
    break;
  }
  if (p != STRICT) { /* the run is live: the rest is valid */
    put_ok(&f, EXEC, "r1", "c1");
    put_ok(&f, DONE, "r1", "c1");
    put_ok(&f, COMPLETED, "r1", NULL);
    expect_no_report(&f);
    assert_int_equal(f.v.nlive, 0);
    assert_int_equal(f.v.nended, 1);
  }
  fx_free(&f);
}

/* duplicate_start: agent_started for a live run. */
static void test_duplicate_start(void **state) {
  int p = policy_of(state);
  fx f;
  fx_rule(&f, AGENTWS_RULE_DUPLICATE_START, p, 0, 0, 100, 60000);
  put_ok(&f, STARTED, "r1", NULL);
  put_ok(&f, EXEC, "r1", "c1");
  expect_no_report(&f);
  assert_int_equal(put(&f, STARTED, "r1", NULL), act_of(p, DROP));
  expect_violation(&f, p, AGENTWS_RULE_DUPLICATE_START,
                   AGENTWS_OUTCOME_DROPPED, "r1", "already live");
  assert_int_equal(f.r.n, p == OFF || p == WARN ? 3 : 2);
  assert_int_equal(f.r.nsynth, 0);
  /* The run goes on unchanged: its tool call is still open. */
  assert_int_equal(f.v.nlive, 1);
  put_ok(&f, DONE, "r1", "c1");
  put_ok(&f, COMPLETED, "r1", NULL);
  expect_no_report(&f);
  assert_int_equal(f.r.nsynth, 0);
  fx_free(&f);
}

/* orphan_tool_result: tool_completed for a call never announced. */
static void test_orphan_never_announced(void **state) {
  int p = policy_of(state);
  fx f;
  fx_rule(&f, AGENTWS_RULE_ORPHAN_TOOL_RESULT, p, 0, 0, 100, 60000);
  put_ok(&f, STARTED, "r1", NULL);
  rec_clear(&f);
  assert_int_equal(put(&f, DONE, "r1", "c9"), act_of(p, DELIVER));
  expect_violation(&f, p, AGENTWS_RULE_ORPHAN_TOOL_RESULT,
                   AGENTWS_OUTCOME_REPAIRED, "r1", "c9");
  switch (p) {
  case OFF:
  case WARN:
    assert_int_equal(f.r.n, 1);
    expect_ev(&f, 0, DONE, 0, "r1", "c9");
    break;
  case STRICT:
    assert_int_equal(f.r.n, 0);
    break;
  case REPAIR: /* tool_executing synthesized first, then the result */
    assert_int_equal(f.r.n, 2);
    expect_ev(&f, 0, EXEC, 1, "r1", "c9");
    assert_string_equal(ev_at(&f, 0)->tool, "web");
    assert_string_equal(ev_at(&f, 0)->data, MARK("orphan_tool_result"));
    expect_ev(&f, 1, DONE, 0, "r1", "c9");
    /* The repaired call is closed: a second result is dropped. */
    assert_int_equal(put(&f, DONE, "r1", "c9"), DROP);
    expect_report(&f, AGENTWS_RULE_ORPHAN_TOOL_RESULT,
                  AGENTWS_OUTCOME_DROPPED, "r1", "second");
    break;
  }
  /* No call is left open: the run completes without a violation. */
  rec_clear(&f);
  put_ok(&f, COMPLETED, "r1", NULL);
  expect_no_report(&f);
  assert_int_equal(f.r.n, 1);
  fx_free(&f);
}

/* orphan_tool_result: a second tool_completed for a finished call. */
static void test_orphan_second_result(void **state) {
  int p = policy_of(state);
  fx f;
  fx_rule(&f, AGENTWS_RULE_ORPHAN_TOOL_RESULT, p, 0, 0, 100, 60000);
  put_ok(&f, STARTED, "r1", NULL);
  put_ok(&f, EXEC, "r1", "c1");
  put_ok(&f, DONE, "r1", "c1");
  expect_no_report(&f);
  rec_clear(&f);
  assert_int_equal(put(&f, DONE, "r1", "c1"), act_of(p, DROP));
  expect_violation(&f, p, AGENTWS_RULE_ORPHAN_TOOL_RESULT,
                   AGENTWS_OUTCOME_DROPPED, "r1", "second tool_completed for c1");
  assert_int_equal(f.r.n, p == OFF || p == WARN ? 1 : 0);
  assert_int_equal(f.r.nsynth, 0);
  put_ok(&f, COMPLETED, "r1", NULL);
  expect_no_report(&f);
  fx_free(&f);
}

/* duplicate_tool_call: tool_executing again while the call is open. */
static void test_duplicate_call_open(void **state) {
  int p = policy_of(state);
  fx f;
  fx_rule(&f, AGENTWS_RULE_DUPLICATE_TOOL_CALL, p, 0, 0, 100, 60000);
  put_ok(&f, STARTED, "r1", NULL);
  put_ok(&f, EXEC, "r1", "c1");
  rec_clear(&f);
  assert_int_equal(put(&f, EXEC, "r1", "c1"), act_of(p, DROP));
  expect_violation(&f, p, AGENTWS_RULE_DUPLICATE_TOOL_CALL,
                   AGENTWS_OUTCOME_DROPPED, "r1", "c1");
  assert_int_equal(f.r.n, p == OFF || p == WARN ? 1 : 0);
  /* Still one open call: one result closes it, the run completes. */
  put_ok(&f, DONE, "r1", "c1");
  put_ok(&f, COMPLETED, "r1", NULL);
  expect_no_report(&f);
  assert_int_equal(f.r.nsynth, 0);
  fx_free(&f);
}

/* duplicate_tool_call: tool_executing with the id of a finished call. */
static void test_duplicate_call_finished(void **state) {
  int p = policy_of(state);
  fx f;
  fx_rule(&f, AGENTWS_RULE_DUPLICATE_TOOL_CALL, p, 0, 0, 100, 60000);
  put_ok(&f, STARTED, "r1", NULL);
  put_ok(&f, EXEC, "r1", "c1");
  put_ok(&f, DONE, "r1", "c1");
  rec_clear(&f);
  assert_int_equal(put(&f, EXEC, "r1", "c1"), act_of(p, DROP));
  expect_violation(&f, p, AGENTWS_RULE_DUPLICATE_TOOL_CALL,
                   AGENTWS_OUTCOME_DROPPED, "r1", "c1 was used before");
  assert_int_equal(f.r.n, p == OFF || p == WARN ? 1 : 0);
  /* The call stays finished: nothing is open at the end. */
  put_ok(&f, COMPLETED, "r1", NULL);
  expect_no_report(&f);
  assert_int_equal(f.r.nsynth, 0);
  fx_free(&f);
}

/* event_after_terminal: anything of a run after agent_completed / error. */
static void test_after_terminal(void **state) {
  static const int types[] = {THINKING, EXEC, DONE, COMPLETED, ERROR,
                              STARTED};
  int p = policy_of(state);
  size_t i;
  fx f;
  fx_rule(&f, AGENTWS_RULE_AFTER_TERMINAL, p, 0, 0, 100, 60000);
  put_ok(&f, STARTED, "r1", NULL);
  put_ok(&f, COMPLETED, "r1", NULL);
  put_ok(&f, STARTED, "r2", NULL);
  put_ok(&f, ERROR, "r2", NULL);
  expect_no_report(&f);
  assert_int_equal(f.v.nended, 2);
  for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
    const char *run = i % 2 ? "r2" : "r1";
    rec_clear(&f);
    assert_int_equal(put(&f, types[i], run, "c1"), act_of(p, DROP));
    if (p == OFF) {
      expect_no_report(&f);
    } else {
      expect_report(&f, AGENTWS_RULE_AFTER_TERMINAL,
                    outcome_of(p, AGENTWS_OUTCOME_DROPPED), run, "ended");
    }
    assert_int_equal(f.r.n, p == OFF || p == WARN ? 1 : 0);
  }
  if (p == OFF)
    expect_zero_counts(&f);
  else
    expect_counts(&f, AGENTWS_RULE_AFTER_TERMINAL,
                  outcome_of(p, AGENTWS_OUTCOME_DROPPED), 6);
  /* Ended runs stay ended: no new run, nothing synthesized. */
  assert_int_equal(f.v.nlive, 0);
  assert_int_equal(f.v.nended, 2);
  assert_int_equal(f.r.nsynth, 0);
  fx_free(&f);
}

/* open_tools_at_end: agent_completed while tool calls are open. */
static void test_open_tools_at_end(void **state) {
  int p = policy_of(state);
  fx f;
  fx_rule(&f, AGENTWS_RULE_OPEN_TOOLS_AT_END, p, 0, 0, 100, 60000);
  f.now = 1000;
  put_ok(&f, STARTED, "r1", NULL);
  put_ok(&f, EXEC, "r1", "c1");
  f.now = 1100;
  put_ok(&f, EXEC, "r1", "c2");
  put_ok(&f, EXEC, "r1", "c3");
  put_ok(&f, DONE, "r1", "c3");
  rec_clear(&f);
  f.now = 1500;
  assert_int_equal(put(&f, COMPLETED, "r1", NULL), act_of(p, DELIVER));
  expect_violation(&f, p, AGENTWS_RULE_OPEN_TOOLS_AT_END,
                   AGENTWS_OUTCOME_REPAIRED, "r1", "open");
  switch (p) {
  case OFF:
  case WARN:
    assert_int_equal(f.r.n, 1);
    expect_ev(&f, 0, COMPLETED, 0, "r1", NULL);
    assert_int_equal(f.v.nended, 1);
    break;
  case STRICT: /* refused: the run is still live with both calls open */
    assert_int_equal(f.r.n, 0);
    assert_int_equal(f.v.nlive, 1);
    put_ok(&f, DONE, "r1", "c1");
    put_ok(&f, DONE, "r1", "c2");
    put_ok(&f, COMPLETED, "r1", NULL);
    expect_no_report(&f);
    assert_int_equal(f.v.nended, 1);
    break;
  case REPAIR: { /* a failed tool_completed for each open call first */
    size_t i;
    int seen1 = 0, seen2 = 0;
    assert_int_equal(f.r.n, 3);
    for (i = 0; i < 2; i++) {
      const rec_ev *e = ev_at(&f, i);
      assert_int_equal(e->type, DONE);
      assert_int_equal(e->synth, 1);
      assert_int_equal(e->ok, 0);
      assert_string_equal(e->tool, "web");
      assert_string_equal(e->result, "{\"code\":\"abandoned\"}");
      assert_string_equal(e->data, MARK("open_tools_at_end"));
      if (strcmp(e->tool_call_id, "c1") == 0) {
        seen1++;
        assert_int_equal(e->duration_ms, 500);
      } else if (strcmp(e->tool_call_id, "c2") == 0) {
        seen2++;
        assert_int_equal(e->duration_ms, 400);
      }
    }
    assert_int_equal(seen1, 1);
    assert_int_equal(seen2, 1);
    expect_ev(&f, 2, COMPLETED, 0, "r1", NULL);
    assert_int_equal(f.v.nended, 1);
    break;
  }
  }
  assert_int_equal(f.v.nlive, 0);
  fx_free(&f);
}

/* run_stalled: a live run with no event for stall_ms. */
static void test_run_stalled(void **state) {
  int p = policy_of(state);
  fx f;
  fx_rule(&f, AGENTWS_RULE_RUN_STALLED, p, 1000, 0, 100, 60000);
  f.now = 0;
  put_ok(&f, STARTED, "r1", NULL);
  f.now = 100;
  put_ok(&f, EXEC, "r1", "c1");
  rec_clear(&f);
  assert_int_equal(sweep(&f, 1099), 1100); /* not yet; due at 1100 */
  assert_int_equal(f.r.n, 0);
  expect_no_report(&f);
  sweep(&f, 1100);
  switch (p) {
  case OFF: /* nothing; looked at again a period later */
    expect_no_report(&f);
    assert_int_equal(f.r.n, 0);
    assert_int_equal(f.v.nlive, 1);
    expect_zero_counts(&f);
    break;
  case WARN:
    expect_report(&f, AGENTWS_RULE_RUN_STALLED, AGENTWS_OUTCOME_WARNED, "r1",
                  "no event for 1000 ms");
    assert_int_equal(f.r.n, 0);
    assert_int_equal(f.v.nlive, 1);
    /* Once per quiet period: not again while it stays quiet ... */
    sweep(&f, 2100);
    sweep(&f, 5000);
    expect_no_report(&f);
    /* ... but again after an event and another quiet period. */
    f.now = 5100;
    put_ok(&f, THINKING, "r1", NULL);
    assert_int_equal(sweep(&f, 6099), 6100);
    expect_no_report(&f);
    sweep(&f, 6100);
    expect_report(&f, AGENTWS_RULE_RUN_STALLED, AGENTWS_OUTCOME_WARNED, "r1",
                  NULL);
    expect_counts(&f, AGENTWS_RULE_RUN_STALLED, AGENTWS_OUTCOME_WARNED, 2);
    assert_int_equal(f.r.nsynth, 0);
    break;
  case STRICT:
  case REPAIR: /* the open call fails, then agent_error "stalled" */
    expect_report(&f, AGENTWS_RULE_RUN_STALLED, AGENTWS_OUTCOME_REPAIRED,
                  "r1", "agent_error stalled");
    expect_counts(&f, AGENTWS_RULE_RUN_STALLED, AGENTWS_OUTCOME_REPAIRED, 1);
    assert_int_equal(f.r.n, 2);
    expect_ev(&f, 0, DONE, 1, "r1", "c1");
    assert_int_equal(ev_at(&f, 0)->ok, 0);
    assert_string_equal(ev_at(&f, 0)->result, "{\"code\":\"stalled\"}");
    assert_string_equal(ev_at(&f, 0)->data, MARK("run_stalled"));
    assert_int_equal(ev_at(&f, 0)->duration_ms, 1000);
    expect_ev(&f, 1, ERROR, 1, "r1", NULL);
    assert_string_equal(ev_at(&f, 1)->code, "stalled");
    assert_string_equal(ev_at(&f, 1)->severity, "error");
    assert_int_equal(ev_at(&f, 1)->retryable, 1);
    assert_true(ev_at(&f, 1)->message[0] != '\0');
    assert_string_equal(ev_at(&f, 1)->data, MARK("run_stalled"));
    assert_int_equal(f.v.nlive, 0);
    assert_int_equal(f.v.nended, 1);
    /* The run is over: the agent's late events are after the end. */
    rec_clear(&f);
    assert_int_equal(put(&f, THINKING, "r1", NULL),
                     p == STRICT ? REFUSE : DROP);
    expect_report(&f, AGENTWS_RULE_AFTER_TERMINAL,
                  p == STRICT ? AGENTWS_OUTCOME_REFUSED
                              : AGENTWS_OUTCOME_DROPPED,
                  "r1", NULL);
    assert_int_equal(f.r.n, 0);
    /* Nothing left to expire but the ended run (kept 60 s from 1100). */
    assert_int_equal(sweep(&f, 2000), 61100);
    break;
  }
  fx_free(&f);
}

/* tool_timeout: a tool call with no result for tool_timeout_ms. */
static void test_tool_timeout(void **state) {
  int p = policy_of(state);
  fx f;
  fx_rule(&f, AGENTWS_RULE_TOOL_TIMEOUT, p, 0, 500, 100, 60000);
  f.now = 0;
  put_ok(&f, STARTED, "r1", NULL);
  f.now = 10;
  put_ok(&f, EXEC, "r1", "c1");
  f.now = 20;
  put_ok(&f, EXEC, "r1", "c2");
  put_ok(&f, DONE, "r1", "c2"); /* answered: never times out */
  rec_clear(&f);
  assert_int_equal(sweep(&f, 509), 510);
  expect_no_report(&f);
  assert_int_equal(f.r.n, 0);
  assert_int_equal(sweep(&f, 510), 0); /* nothing left to expire */
  switch (p) {
  case OFF:
    expect_no_report(&f);
    expect_zero_counts(&f);
    assert_int_equal(f.r.n, 0);
    put_ok(&f, DONE, "r1", "c1");
    break;
  case WARN: /* reported once; the call is still open */
    expect_report(&f, AGENTWS_RULE_TOOL_TIMEOUT, AGENTWS_OUTCOME_WARNED,
                  "r1", "c1");
    sweep(&f, 5000);
    expect_no_report(&f);
    expect_counts(&f, AGENTWS_RULE_TOOL_TIMEOUT, AGENTWS_OUTCOME_WARNED, 1);
    assert_int_equal(f.r.n, 0);
    put_ok(&f, DONE, "r1", "c1"); /* the late result is fine */
    expect_no_report(&f);
    break;
  case STRICT:
  case REPAIR: /* a failed tool_completed with result code "timeout" */
    expect_report(&f, AGENTWS_RULE_TOOL_TIMEOUT, AGENTWS_OUTCOME_REPAIRED,
                  "r1", "c1");
    expect_counts(&f, AGENTWS_RULE_TOOL_TIMEOUT, AGENTWS_OUTCOME_REPAIRED, 1);
    assert_int_equal(f.r.n, 1);
    expect_ev(&f, 0, DONE, 1, "r1", "c1");
    assert_int_equal(ev_at(&f, 0)->ok, 0);
    assert_string_equal(ev_at(&f, 0)->tool, "web");
    assert_string_equal(ev_at(&f, 0)->result, "{\"code\":\"timeout\"}");
    assert_string_equal(ev_at(&f, 0)->data, MARK("tool_timeout"));
    assert_int_equal(ev_at(&f, 0)->duration_ms, 500);
    assert_int_equal(f.v.nlive, 1); /* the run itself goes on */
    /* The agent's late result is a second result for a closed call. */
    rec_clear(&f);
    assert_int_equal(put(&f, DONE, "r1", "c1"), p == STRICT ? REFUSE : DROP);
    expect_report(&f, AGENTWS_RULE_ORPHAN_TOOL_RESULT,
                  p == STRICT ? AGENTWS_OUTCOME_REFUSED
                              : AGENTWS_OUTCOME_DROPPED,
                  "r1", "c1");
    assert_int_equal(f.r.n, 0);
    break;
  }
  /* Nothing is open any more (warn/off: the result came; else repaired). */
  rec_clear(&f);
  put_ok(&f, COMPLETED, "r1", NULL);
  expect_no_report(&f);
  assert_int_equal(f.r.n, 1);
  fx_free(&f);
}

/* run_limit: a new run while max_runs are live evicts the least recently
 * active one. */
static void test_run_limit(void **state) {
  int p = policy_of(state);
  fx f;
  fx_rule(&f, AGENTWS_RULE_RUN_LIMIT, p, 0, 0, 2, 60000);
  f.now = 1;
  put_ok(&f, STARTED, "r1", NULL);
  f.now = 2;
  put_ok(&f, STARTED, "r2", NULL);
  put_ok(&f, EXEC, "r2", "c7");
  f.now = 3;
  put_ok(&f, THINKING, "r1", NULL); /* r2 is now the least recent */
  rec_clear(&f);
  f.now = 4;
  put_ok(&f, STARTED, "r3", NULL);
  assert_int_equal(f.v.nlive, 2);
  assert_int_equal(f.v.nended, 1);
  switch (p) {
  case OFF:
    expect_no_report(&f);
    expect_zero_counts(&f);
    assert_int_equal(f.r.n, 1);
    break;
  case WARN: /* forgotten: no event, a report */
    expect_report(&f, AGENTWS_RULE_RUN_LIMIT, AGENTWS_OUTCOME_WARNED, "r2",
                  "too many live runs");
    expect_counts(&f, AGENTWS_RULE_RUN_LIMIT, AGENTWS_OUTCOME_WARNED, 1);
    assert_int_equal(f.r.n, 1);
    break;
  case STRICT:
  case REPAIR: /* r2 ended for its clients before r3 starts */
    expect_report(&f, AGENTWS_RULE_RUN_LIMIT, AGENTWS_OUTCOME_REPAIRED, "r2",
                  "too many live runs");
    expect_counts(&f, AGENTWS_RULE_RUN_LIMIT, AGENTWS_OUTCOME_REPAIRED, 1);
    assert_int_equal(f.r.n, 3);
    expect_ev(&f, 0, DONE, 1, "r2", "c7");
    assert_int_equal(ev_at(&f, 0)->ok, 0);
    assert_string_equal(ev_at(&f, 0)->result, "{\"code\":\"evicted\"}");
    assert_string_equal(ev_at(&f, 0)->data, MARK("run_limit"));
    expect_ev(&f, 1, ERROR, 1, "r2", NULL);
    assert_string_equal(ev_at(&f, 1)->code, "evicted");
    assert_string_equal(ev_at(&f, 1)->data, MARK("run_limit"));
    expect_ev(&f, 2, STARTED, 0, "r3", NULL);
    break;
  }
  /* r2 is over: its late events come after its end (that rule is at warn
   * when run_limit is off). */
  rec_clear(&f);
  {
    int at = p == OFF ? WARN : p;
    assert_int_equal(put(&f, THINKING, "r2", NULL), act_of(at, DROP));
    expect_report(&f, AGENTWS_RULE_AFTER_TERMINAL,
                  outcome_of(at, AGENTWS_OUTCOME_DROPPED), "r2", NULL);
  }
  /* r1 and r3 are untouched. */
  put_ok(&f, COMPLETED, "r1", NULL);
  put_ok(&f, COMPLETED, "r3", NULL);
  expect_no_report(&f);
  fx_free(&f);
}

/* ========================================================= other cases */

/* Under repair, the first event of a run decides what is synthesized. */
static void test_repair_first_event_types(void **state) {
  fx f;
  (void)state;
  fx_std(&f, REPAIR);
  /* tool_completed first: agent_started and tool_executing synthesized. */
  put_ok(&f, DONE, "a", "c1");
  assert_int_equal(f.r.n, 3);
  expect_ev(&f, 0, STARTED, 1, "a", NULL);
  expect_ev(&f, 1, EXEC, 1, "a", "c1");
  assert_string_equal(ev_at(&f, 1)->data, MARK("orphan_tool_result"));
  expect_ev(&f, 2, DONE, 0, "a", "c1");
  assert_int_equal(take(&f, NULL, 0), 2); /* run_not_started + orphan */
  assert_int_equal(f.v.by_rule[AGENTWS_RULE_RUN_NOT_STARTED], 1);
  assert_int_equal(f.v.by_rule[AGENTWS_RULE_ORPHAN_TOOL_RESULT], 1);
  assert_int_equal(f.v.by_outcome[AGENTWS_OUTCOME_REPAIRED], 2);
  /* agent_completed first: just the start. */
  rec_clear(&f);
  put_ok(&f, COMPLETED, "b", NULL);
  assert_int_equal(f.r.n, 2);
  expect_ev(&f, 0, STARTED, 1, "b", NULL);
  expect_ev(&f, 1, COMPLETED, 0, "b", NULL);
  /* tool_executing first; then the run ends with agent_error. */
  rec_clear(&f);
  put_ok(&f, EXEC, "c", "c1");
  put_ok(&f, DONE, "c", "c1");
  put_ok(&f, ERROR, "c", NULL);
  assert_int_equal(f.r.n, 4);
  expect_ev(&f, 0, STARTED, 1, "c", NULL);
  expect_ev(&f, 1, EXEC, 0, "c", "c1");
  expect_ev(&f, 3, ERROR, 0, "c", NULL);
  assert_int_equal(take(&f, NULL, 0), 2);
  assert_int_equal(f.v.nended, 2); /* b and c; a is still live */
  assert_int_equal(f.v.nlive, 1);
  fx_free(&f);
}

/* Each rule follows its own policy. */
static void test_per_rule_policy(void **state) {
  int pol[AGENTWS__NRULES];
  fx f;
  (void)state;
  pol[AGENTWS_RULE_SCHEMA] = WARN;
  pol[AGENTWS_RULE_RUN_NOT_STARTED] = REPAIR;
  pol[AGENTWS_RULE_DUPLICATE_START] = STRICT;
  pol[AGENTWS_RULE_ORPHAN_TOOL_RESULT] = WARN;
  pol[AGENTWS_RULE_DUPLICATE_TOOL_CALL] = REPAIR;
  pol[AGENTWS_RULE_AFTER_TERMINAL] = OFF;
  pol[AGENTWS_RULE_OPEN_TOOLS_AT_END] = STRICT;
  pol[AGENTWS_RULE_RUN_STALLED] = WARN;
  pol[AGENTWS_RULE_TOOL_TIMEOUT] = REPAIR;
  pol[AGENTWS_RULE_RUN_LIMIT] = OFF;
  fx_init_rules(&f, pol, 1000, 300, 100, 60000);
  f.now = 0;
  /* run_not_started: repaired */
  put_ok(&f, THINKING, "r1", NULL);
  expect_report(&f, AGENTWS_RULE_RUN_NOT_STARTED, AGENTWS_OUTCOME_REPAIRED,
                "r1", NULL);
  assert_int_equal(f.r.nsynth, 1);
  /* duplicate_start: refused */
  assert_int_equal(put(&f, STARTED, "r1", NULL), REFUSE);
  expect_report(&f, AGENTWS_RULE_DUPLICATE_START, AGENTWS_OUTCOME_REFUSED,
                "r1", NULL);
  /* orphan: warned, delivered, nothing synthesized */
  assert_int_equal(put(&f, DONE, "r1", "c0"), DELIVER);
  expect_report(&f, AGENTWS_RULE_ORPHAN_TOOL_RESULT, AGENTWS_OUTCOME_WARNED,
                "r1", NULL);
  assert_int_equal(f.r.nsynth, 1);
  /* duplicate_tool_call: dropped */
  put_ok(&f, EXEC, "r1", "c1");
  assert_int_equal(put(&f, EXEC, "r1", "c1"), DROP);
  expect_report(&f, AGENTWS_RULE_DUPLICATE_TOOL_CALL,
                AGENTWS_OUTCOME_DROPPED, "r1", NULL);
  /* open_tools_at_end: refused */
  assert_int_equal(put(&f, COMPLETED, "r1", NULL), REFUSE);
  expect_report(&f, AGENTWS_RULE_OPEN_TOOLS_AT_END, AGENTWS_OUTCOME_REFUSED,
                "r1", NULL);
  /* tool_timeout (repair) at 300 ms, run_stalled (warn) at 1000 ms */
  rec_clear(&f);
  sweep(&f, 300);
  expect_report(&f, AGENTWS_RULE_TOOL_TIMEOUT, AGENTWS_OUTCOME_REPAIRED,
                "r1", "c1");
  assert_int_equal(f.r.n, 1);
  expect_ev(&f, 0, DONE, 1, "r1", "c1");
  sweep(&f, 1000);
  expect_report(&f, AGENTWS_RULE_RUN_STALLED, AGENTWS_OUTCOME_WARNED, "r1",
                NULL);
  assert_int_equal(f.r.n, 1);
  /* Now nothing is open: completes; after_terminal is off. */
  f.now = 1001;
  put_ok(&f, COMPLETED, "r1", NULL);
  put_ok(&f, THINKING, "r1", NULL);
  expect_no_report(&f);
  assert_int_equal(f.v.by_rule[AGENTWS_RULE_AFTER_TERMINAL], 0);
  assert_int_equal(f.v.by_outcome[AGENTWS_OUTCOME_WARNED], 2);
  assert_int_equal(f.v.by_outcome[AGENTWS_OUTCOME_REFUSED], 2);
  assert_int_equal(f.v.by_outcome[AGENTWS_OUTCOME_REPAIRED], 2);
  assert_int_equal(f.v.by_outcome[AGENTWS_OUTCOME_DROPPED], 1);
  fx_free(&f);
}

/* agent_error may end a run mid-tool: under repair the open calls are
 * closed (code run_failed) without a violation; otherwise nothing. */
static void test_error_with_open_tools(void **state) {
  static const int pols[] = {OFF, WARN, STRICT, REPAIR};
  size_t k;
  (void)state;
  for (k = 0; k < 4; k++) {
    fx f;
    fx_std(&f, pols[k]);
    put_ok(&f, STARTED, "r1", NULL);
    put_ok(&f, EXEC, "r1", "c1");
    put_ok(&f, EXEC, "r1", "c2");
    rec_clear(&f);
    put_ok(&f, ERROR, "r1", NULL);
    expect_no_report(&f);
    expect_zero_counts(&f);
    if (pols[k] != OFF)
      assert_int_equal(f.v.nended, 1);
    if (pols[k] == REPAIR) {
      size_t i;
      assert_int_equal(f.r.n, 3);
      for (i = 0; i < 2; i++) {
        assert_int_equal(ev_at(&f, i)->type, DONE);
        assert_int_equal(ev_at(&f, i)->synth, 1);
        assert_int_equal(ev_at(&f, i)->ok, 0);
        assert_string_equal(ev_at(&f, i)->result, "{\"code\":\"run_failed\"}");
        assert_string_equal(ev_at(&f, i)->data, MARK("open_tools_at_end"));
      }
      assert_string_not_equal(ev_at(&f, 0)->tool_call_id,
                              ev_at(&f, 1)->tool_call_id);
      expect_ev(&f, 2, ERROR, 0, "r1", NULL);
    } else {
      assert_int_equal(f.r.n, 1);
      expect_ev(&f, 0, ERROR, 0, "r1", NULL);
    }
    fx_free(&f);
  }
}

/* Open-tools repair follows the open_tools_at_end policy for agent_error
 * too: with that rule at warn, agent_error closes nothing. */
static void test_error_open_tools_follows_rule(void **state) {
  int pol[AGENTWS__NRULES], i;
  fx f;
  (void)state;
  for (i = 0; i < AGENTWS__NRULES; i++)
    pol[i] = REPAIR;
  pol[AGENTWS_RULE_OPEN_TOOLS_AT_END] = WARN;
  fx_init_rules(&f, pol, 0, 0, 10, 1000);
  put_ok(&f, STARTED, "r1", NULL);
  put_ok(&f, EXEC, "r1", "c1");
  rec_clear(&f);
  put_ok(&f, ERROR, "r1", NULL);
  assert_int_equal(f.r.n, 1);
  assert_int_equal(f.r.nsynth, 0);
  expect_no_report(&f);
  fx_free(&f);
}

/* A valid lifecycle (several tools, thinking, interleaved runs) under
 * every policy: all delivered, nothing synthesized, no report. */
static void test_valid_lifecycle(void **state) {
  static const int pols[] = {OFF, WARN, STRICT, REPAIR};
  size_t k;
  (void)state;
  for (k = 0; k < 4; k++) {
    fx f;
    fx_init(&f, pols[k], 10000, 5000, 100, 60000);
    f.now = 0;
    put_ok(&f, STARTED, "r1", NULL);
    put_ok(&f, STARTED, "r2", NULL);
    put_ok(&f, THINKING, "r1", NULL);
    put_ok(&f, EXEC, "r1", "c1");
    put_ok(&f, EXEC, "r1", "c2");
    put_ok(&f, EXEC, "r2", "c1"); /* ids are per run */
    f.now = 100;
    put_ok(&f, DONE, "r1", "c2");
    put_ok(&f, DONE, "r1", "c1");
    put_ok(&f, THINKING, "r1", NULL);
    put_ok(&f, DONE, "r2", "c1");
    put_ok(&f, COMPLETED, "r1", NULL);
    put_ok(&f, ERROR, "r2", NULL);
    {
      agentws__emit_args c = args(CUSTOM, NULL, NULL);
      assert_int_equal(put_args(&f, &c), DELIVER);
      c.run_id = "r1"; /* custom events are not part of a lifecycle */
      assert_int_equal(put_args(&f, &c), DELIVER);
    }
    sweep(&f, 1000);
    expect_no_report(&f);
    expect_zero_counts(&f);
    assert_int_equal(f.r.nsynth, 0);
    assert_int_equal(f.r.n, 14);
    if (pols[k] != OFF) {
      assert_int_equal(f.v.nlive, 0);
      assert_int_equal(f.v.nended, 2);
    }
    fx_free(&f);
  }
}

/* All rules off: nothing is tracked at all. */
static void test_all_off_tracks_nothing(void **state) {
  fx f;
  (void)state;
  fx_init(&f, OFF, 100, 100, 10, 1000);
  assert_int_equal(f.v.enabled, 0);
  put_ok(&f, THINKING, "r1", NULL);
  put_ok(&f, STARTED, "r1", NULL);
  put_ok(&f, STARTED, "r1", NULL);
  put_ok(&f, DONE, "r1", "c1");
  put_ok(&f, COMPLETED, "r1", NULL);
  put_ok(&f, COMPLETED, "r1", NULL);
  assert_int_equal(f.v.nlive, 0);
  assert_int_equal(f.v.nended, 0);
  assert_int_equal(sweep(&f, 100000), 0);
  expect_no_report(&f);
  assert_int_equal(f.r.nsynth, 0);
  fx_free(&f);
}

/* Ended runs are forgotten after keep_ms (then the id is a new run), and
 * at most max_runs of them are kept. */
static void test_ended_runs_forgotten(void **state) {
  fx f;
  (void)state;
  fx_init(&f, WARN, 0, 0, 3, 1000);
  f.now = 10;
  put_ok(&f, STARTED, "r1", NULL);
  put_ok(&f, COMPLETED, "r1", NULL);
  assert_int_equal(f.v.nended, 1);
  assert_int_equal(sweep(&f, 500), 1010);
  assert_int_equal(sweep(&f, 1009), 1010);
  assert_int_equal(f.v.nended, 1);
  /* Still remembered: an event after the end. */
  f.now = 1009;
  put_ok(&f, THINKING, "r1", NULL);
  expect_report(&f, AGENTWS_RULE_AFTER_TERMINAL, AGENTWS_OUTCOME_WARNED,
                "r1", NULL);
  assert_int_equal(sweep(&f, 1010), 0);
  assert_int_equal(f.v.nended, 0);
  assert_int_equal(f.v.runs.count, 0);
  /* Forgotten: the id starts afresh. */
  put_ok(&f, STARTED, "r1", NULL);
  expect_no_report(&f);
  assert_int_equal(f.v.nlive, 1);
  put_ok(&f, COMPLETED, "r1", NULL);
  /* At most max_runs (3) ended runs; the oldest goes first. */
  put_ok(&f, STARTED, "r2", NULL);
  put_ok(&f, COMPLETED, "r2", NULL);
  put_ok(&f, STARTED, "r3", NULL);
  put_ok(&f, COMPLETED, "r3", NULL);
  put_ok(&f, STARTED, "r4", NULL);
  put_ok(&f, COMPLETED, "r4", NULL);
  assert_int_equal(f.v.nended, 3);
  assert_int_equal(f.v.runs.count, 3);
  put_ok(&f, THINKING, "r1", NULL); /* r1 forgotten: not started */
  expect_report(&f, AGENTWS_RULE_RUN_NOT_STARTED, AGENTWS_OUTCOME_WARNED,
                "r1", NULL);
  put_ok(&f, THINKING, "r4", NULL); /* r4 remembered: after the end */
  expect_report(&f, AGENTWS_RULE_AFTER_TERMINAL, AGENTWS_OUTCOME_WARNED,
                "r4", NULL);
  fx_free(&f);
}

/* The sweep's return value: the earliest deadline of tool calls, live runs
 * and ended runs; 0 when nothing is pending. */
static void test_sweep_next_deadline(void **state) {
  fx f;
  (void)state;
  fx_init(&f, REPAIR, 1000, 300, 10, 5000);
  assert_int_equal(sweep(&f, 0), 0);
  f.now = 100;
  put_ok(&f, STARTED, "r1", NULL);
  assert_int_equal(sweep(&f, 100), 1100); /* stall */
  f.now = 200;
  put_ok(&f, EXEC, "r1", "c1");
  assert_int_equal(sweep(&f, 200), 500); /* tool */
  f.now = 300;
  put_ok(&f, DONE, "r1", "c1");
  assert_int_equal(sweep(&f, 300), 1300);
  f.now = 400;
  put_ok(&f, COMPLETED, "r1", NULL);
  assert_int_equal(sweep(&f, 400), 5400); /* forget */
  assert_int_equal(sweep(&f, 5400), 0);
  assert_int_equal(f.v.runs.count, 0);
  expect_no_report(&f);
  fx_free(&f);
}

/* At most 1024 reports wait for the loop; more are only counted. */
static void test_reports_bounded(void **state) {
  fx f;
  int i;
  (void)state;
  fx_std(&f, WARN);
  put_ok(&f, STARTED, "r1", NULL);
  put_ok(&f, COMPLETED, "r1", NULL);
  for (i = 0; i < 1500; i++)
    put_ok(&f, THINKING, "r1", NULL);
  assert_int_equal(take(&f, NULL, 0), 1024);
  assert_int_equal(f.v.reports_dropped, 1500 - 1024);
  expect_counts(&f, AGENTWS_RULE_AFTER_TERMINAL, AGENTWS_OUTCOME_WARNED,
                1500);
  /* Taken: room again. */
  put_ok(&f, THINKING, "r1", NULL);
  assert_int_equal(take(&f, NULL, 0), 1);
  fx_free(&f);
}

/* Every rule has a stable name. */
static void test_rule_names(void **state) {
  static const char *const want[] = {
      "schema",          "run_not_started",      "duplicate_start",
      "orphan_tool_result", "duplicate_tool_call", "event_after_terminal",
      "open_tools_at_end",  "run_stalled",         "tool_timeout",
      "run_limit"};
  int i;
  (void)state;
  assert_int_equal(AGENTWS__NRULES, 10);
  for (i = 0; i < AGENTWS__NRULES; i++)
    assert_string_equal(agentws__rule_name(i), want[i]);
  assert_null(agentws__rule_name(-1));
  assert_null(agentws__rule_name(AGENTWS__NRULES));
}

/* Out of memory in a repair: the check fails (the event is refused)
 * rather than delivering an unrepaired event. */
static void test_synth_failure_refuses(void **state) {
  fx f;
  (void)state;
  fx_std(&f, REPAIR);
  f.r.fail_after = 0;
  assert_int_equal(put(&f, THINKING, "r1", NULL), AGENTWS_ERR_NOMEM);
  assert_int_equal(f.r.n, 0);
  fx_free(&f);
}

/* fuzz_emit: the emitter built repairs within max(max_event_bytes, 4 KiB),
 * but ids of control bytes escape six-fold (\u00XX): a tool_completed
 * closing this call did not fit, so agent_completed failed with NOMEM and
 * the call was marked closed though no tool_completed was queued. */
static void test_repair_of_escaped_ids_fits(void **state) {
  char run[257], tool[257], call[151];
  agentws_manager *m = NULL;
  agentws_config *cfg = NULL;
  agentws_stats *st = NULL;
  uv_loop_t loop;

  (void)state;
  memset(run, 1, 256);
  run[256] = '\0';
  memset(tool, 1, 256);
  tool[256] = '\0';
  memset(call, 1, 150);
  call[150] = '\0';
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_validation(cfg, REPAIR), 0);
  assert_int_equal(agentws_config_set_max_event_bytes(cfg, 4096), 0);
  assert_int_equal(agentws_manager_new(&m, &loop, cfg, NULL, NULL), 0);
  agentws_config_free(cfg);
  assert_int_equal(agentws_emit_agent_started(m, AGENTWS_TARGET_USER, "u",
                                              run, "a", NULL),
                   0);
  /* About 4050 bytes escaped: fits; its failed result is ~110 more. */
  assert_int_equal(agentws_emit_tool_executing(m, AGENTWS_TARGET_USER, "u",
                                               run, tool, call, NULL),
                   0);
  assert_int_equal(agentws_emit_agent_completed(m, AGENTWS_TARGET_USER, "u",
                                                run, 1, NULL, NULL),
                   0);
  assert_int_equal(agentws_stats_new(&st), 0);
  assert_int_equal(agentws_manager_get_stats(m, st), 0);
  assert_int_equal(agentws_stats_get(st, AGENTWS_STAT_EVENTS_SYNTHESIZED), 1);
  agentws_stats_free(st);
  agentws_manager_close(m, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  agentws_manager_free(m);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* ----------------------------------------------------------- memory bound */

#define ABANDONED 100000
#define MAX_RUNS 1000

/* 100,000 runs that only ever send agent_started: at most MAX_RUNS live and
 * MAX_RUNS ended are kept, the rest is evicted and reported as run_limit;
 * the memory held stays bounded and is all returned by free. */
static void test_abandoned_runs_warn(void **state) {
  fx f;
  int i;
  size_t peak_nlive = 0, peak_nended = 0, peak_bytes = 0;
  (void)state;
  fx_init(&f, WARN, 0, 0, MAX_RUNS, 600000);
  f.r.count_only = 1;
  f.r.build_check = 0;
  for (i = 0; i < ABANDONED; i++) {
    char id[32];
    snprintf(id, sizeof(id), "abandoned-%d", i);
    f.now = 1000 + (uint64_t)i / 10;
    assert_int_equal(put(&f, STARTED, id, NULL), DELIVER);
    if (f.v.nlive > peak_nlive)
      peak_nlive = f.v.nlive;
    if (f.v.nended > peak_nended)
      peak_nended = f.v.nended;
    if (i == 10 * MAX_RUNS) /* the table is full: the memory held now ... */
      peak_bytes = f.cnt.live;
  }
  assert_true(peak_nlive <= MAX_RUNS);
  assert_true(peak_nended <= MAX_RUNS);
  assert_int_equal(f.v.nlive, MAX_RUNS);
  assert_int_equal(f.v.nended, MAX_RUNS);
  assert_int_equal(f.v.runs.count, 2 * MAX_RUNS);
  assert_true(f.v.runs.cap <= 4096);
  expect_counts(&f, AGENTWS_RULE_RUN_LIMIT, AGENTWS_OUTCOME_WARNED,
                ABANDONED - MAX_RUNS);
  /* ... is the memory held after 100,000 runs (give or take the ids'
   * lengths), and small. */
  assert_true(f.cnt.live <= peak_bytes + peak_bytes / 10);
  assert_true(f.cnt.peak < 2u * 1024 * 1024);
  {
    rep r[1];
    assert_int_equal(take(&f, r, 1), 1024);
    assert_int_equal(r[0].rule, AGENTWS_RULE_RUN_LIMIT);
    assert_string_equal(r[0].run_id, "abandoned-0");
  }
  assert_int_equal(f.v.reports_dropped, ABANDONED - MAX_RUNS - 1024);
  assert_int_equal(f.r.nsynth, 0);
  fx_free(&f);
}

/* The same under repair with a stall timeout: every evicted run gets its
 * agent_error, and the stall sweep ends the rest, so all 100,000 end; the
 * ended ones are then forgotten and nothing is held. */
static void test_abandoned_runs_repair_stall(void **state) {
  fx f;
  int i;
  (void)state;
  fx_init(&f, REPAIR, 5000, 0, MAX_RUNS, 60000);
  f.r.count_only = 1;
  f.r.build_check = 0;
  for (i = 0; i < ABANDONED; i++) {
    char id[32];
    snprintf(id, sizeof(id), "abandoned-%d", i);
    f.now = 1000 + (uint64_t)i / 100; /* 1 s in all: none stalls yet */
    assert_int_equal(put(&f, STARTED, id, NULL), DELIVER);
    assert_true(f.v.nlive <= MAX_RUNS);
    assert_true(f.v.nended <= MAX_RUNS);
    if (i % 1000 == 999)
      (void)sweep(&f, f.now);
  }
  assert_int_equal(f.v.nlive, MAX_RUNS);
  assert_int_equal(f.v.by_rule[AGENTWS_RULE_RUN_LIMIT],
                   ABANDONED - MAX_RUNS);
  assert_int_equal(f.v.by_rule[AGENTWS_RULE_RUN_STALLED], 0);
  /* The stall timeout ends every remaining run. */
  (void)sweep(&f, f.now + 5000);
  assert_int_equal(f.v.nlive, 0);
  assert_int_equal(f.v.nended, MAX_RUNS);
  assert_int_equal(f.v.by_rule[AGENTWS_RULE_RUN_STALLED], MAX_RUNS);
  assert_int_equal(f.v.by_outcome[AGENTWS_OUTCOME_REPAIRED], ABANDONED);
  /* Exactly one synthesized agent_error per run, nothing else. */
  assert_int_equal(f.r.nsynth, ABANDONED);
  assert_int_equal(f.r.nsynth_type[ERROR], ABANDONED);
  /* Forgotten after keep_ms: nothing left. */
  assert_int_equal(sweep(&f, f.now + 60000), 0);
  assert_int_equal(f.v.nended, 0);
  assert_int_equal(f.v.runs.count, 0);
  agentws__validator_reports_free(&f.mem,
                                  agentws__validator_take_reports(&f.v));
  /* What is left is the map's slot array (it never shrinks): 4096 slots. */
  assert_true(f.cnt.live <= 4096 * sizeof(agentws__strmap_slot));
  fx_free(&f);
}

/* ======================================================== property tests */

/* xorshift64*: reproducible sequences from a seed. */
static uint64_t rng_state;
static uint32_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}
static uint32_t rnd_n(uint32_t n) { return rnd() % n; }

/* A random type: broken orders come about by themselves. */
static int rnd_type(void) {
  uint32_t x = rnd_n(100);
  return x < 16   ? STARTED
         : x < 34 ? THINKING
         : x < 56 ? EXEC
         : x < 80 ? DONE
         : x < 92 ? COMPLETED
                  : ERROR;
}

#define MAX_IDS 16
typedef struct life {
  char run[64];
  int phase;         /* 0 not started, 1 live, 2 ended */
  int open[MAX_IDS]; /* per call id: open */
  int used[MAX_IDS]; /* per call id: tool_executing seen */
} life;

static int call_no(const char *id) {
  assert_true(id[0] == 'c');
  return atoi(id + 1);
}

/* Checks the delivered events |evs| form valid lifecycles per run.
 * |restart|: a run id may start again after its end (the validator forgot
 * it). |closed_end|: no terminal event with tool calls open (repair), else
 * only agent_completed. |must_end|: every run ended. Returns the number of
 * runs seen. */
static size_t check_lifecycles(const rec_ev *evs, size_t n, int restart,
                               int closed_end, int must_end,
                               const char *what) {
  life runs[64];
  size_t nruns = 0, i, k;
  memset(runs, 0, sizeof(runs));
  for (i = 0; i < n; i++) {
    const rec_ev *e = &evs[i];
    life *l = NULL;
    int c, nopen = 0, j;
    for (k = 0; k < nruns; k++)
      if (strcmp(runs[k].run, e->run_id) == 0)
        l = &runs[k];
    if (l == NULL) {
      assert_true(nruns < 64);
      l = &runs[nruns++];
      copy(l->run, sizeof(l->run), e->run_id);
    }
    for (j = 0; j < MAX_IDS; j++)
      nopen += l->open[j];
    if (e->synth && strstr(e->data, "\"synthesized\":true") == NULL)
      fail_msg("%s: event %zu synthesized without the mark", what, i);
    if (l->phase == 2 && restart && e->type == STARTED) {
      memset(l->open, 0, sizeof(l->open));
      memset(l->used, 0, sizeof(l->used));
      l->phase = 0;
    }
    if (l->phase == 0) {
      if (e->type != STARTED)
        fail_msg("%s: run %s: event %zu (type %d) before agent_started",
                 what, l->run, i, e->type);
      l->phase = 1;
      continue;
    }
    if (l->phase == 2)
      fail_msg("%s: run %s: event %zu (type %d) after its end", what,
               l->run, i, e->type);
    switch (e->type) {
    case STARTED:
      fail_msg("%s: run %s: agent_started twice (event %zu)", what, l->run,
               i);
      break;
    case EXEC:
      c = call_no(e->tool_call_id);
      if (l->used[c])
        fail_msg("%s: run %s: tool_call_id %s used twice (event %zu)", what,
                 l->run, e->tool_call_id, i);
      l->used[c] = l->open[c] = 1;
      break;
    case DONE:
      c = call_no(e->tool_call_id);
      if (!l->open[c])
        fail_msg("%s: run %s: tool_completed for %s, not open (event %zu)",
                 what, l->run, e->tool_call_id, i);
      l->open[c] = 0;
      break;
    case COMPLETED:
    case ERROR:
      if (nopen > 0 && (closed_end || e->type == COMPLETED))
        fail_msg("%s: run %s: type %d with %d tool calls open (event %zu)",
                 what, l->run, e->type, nopen, i);
      l->phase = 2;
      break;
    default:
      break;
    }
  }
  if (must_end)
    for (k = 0; k < nruns; k++)
      if (runs[k].phase == 1)
        fail_msg("%s: run %s never ended", what, runs[k].run);
  return nruns;
}

typedef struct prop_cfg {
  int policy;
  int nruns;      /* run ids in play */
  int ncalls;     /* call ids in play */
  size_t max_runs;
  int64_t stall, tool, keep;
  int restart;    /* ids may be forgotten and start again */
} prop_cfg;

typedef struct prop_stats {
  size_t events, delivered, refused, dropped, synth, reports;
} prop_stats;

/* One random sequence; checks the invariants for its policy. */
static void prop_one(const prop_cfg *pc, uint64_t seed, prop_stats *ps) {
  fx f;
  agentws__emit_args *in;
  int *acts;
  size_t nev = 8 + rnd_n(56), i, ndeliv = 0;
  char what[64];
  snprintf(what, sizeof(what), "policy %d seed %llu", pc->policy,
           (unsigned long long)seed);
  fx_init(&f, pc->policy, pc->stall, pc->tool, pc->max_runs, pc->keep);
  f.now = 0;
  in = calloc(nev, sizeof(*in));
  acts = calloc(nev, sizeof(*acts));
  assert_non_null(in);
  assert_non_null(acts);
  for (i = 0; i < nev; i++) {
    static const char *const runs[] = {"p0", "p1", "p2", "p3", "p4", "p5"};
    static const char *const calls[] = {"c0", "c1", "c2", "c3",
                                        "c4", "c5", "c6", "c7"};
    size_t before;
    f.now += rnd_n(40);
    if (rnd_n(6) == 0)
      (void)sweep(&f, f.now);
    before = f.r.n;
    in[i] = args(rnd_type(), runs[rnd_n((uint32_t)pc->nruns)],
                 calls[rnd_n((uint32_t)pc->ncalls)]);
    acts[i] = put_args(&f, &in[i]);
    switch (acts[i]) {
    case DELIVER:
      ps->delivered++;
      ndeliv++;
      break;
    case REFUSE:
      ps->refused++;
      if (pc->policy != STRICT)
        fail_msg("%s: refused under policy %d", what, pc->policy);
      assert_int_equal(f.r.n, before); /* nothing at all went out */
      break;
    case DROP:
      ps->dropped++;
      if (pc->policy != REPAIR)
        fail_msg("%s: dropped under policy %d", what, pc->policy);
      assert_int_equal(f.r.n, before);
      break;
    default:
      fail_msg("%s: check returned %d", what, acts[i]);
    }
    if (pc->policy == STRICT)
      /* Strict never synthesizes for an event (only sweeps and evictions
       * end runs). */
      assert_true(f.r.n - before <= 1 || pc->max_runs < 6);
  }
  ps->events += nev;
  /* In the end every run stalls (when a stall timeout is set). */
  (void)sweep(&f, f.now + 10000000);
  ps->synth += f.r.nsynth;
  if (pc->policy == WARN || pc->policy == OFF) {
    /* Everything delivered as it was, nothing synthesized. */
    assert_int_equal(f.r.nsynth, 0);
    assert_int_equal(ndeliv, nev);
    assert_int_equal(f.r.n, nev);
    for (i = 0; i < nev; i++) {
      assert_int_equal(f.r.ev[i].type, in[i].type);
      assert_string_equal(f.r.ev[i].run_id, in[i].run_id);
    }
  } else {
    (void)check_lifecycles(f.r.ev, f.r.n, pc->restart,
                           pc->policy == REPAIR, pc->stall > 0, what);
  }
  if (pc->policy == OFF)
    expect_zero_counts(&f);
  if (pc->policy == STRICT)
    assert_int_equal(f.v.by_outcome[AGENTWS_OUTCOME_DROPPED], 0);
  if (pc->policy == REPAIR)
    assert_int_equal(f.v.by_outcome[AGENTWS_OUTCOME_REFUSED], 0);
  {
    size_t nrep = take(&f, NULL, 0), total = 0;
    int o;
    for (o = 0; o < 4; o++)
      total += f.v.by_outcome[o];
    assert_int_equal(nrep, total); /* fewer than 1024: all reported */
    ps->reports += nrep;
  }
  free(in);
  free(acts);
  fx_free(&f);
}

#define NSEQ 3000

static void prop_run(const prop_cfg *pc, uint64_t seed0) {
  prop_stats ps;
  int s;
  memset(&ps, 0, sizeof(ps));
  for (s = 0; s < NSEQ; s++) {
    uint64_t seed = seed0 * 1000003u + (uint64_t)s + 1;
    rng_state = seed * 0x9E3779B97F4A7C15ull | 1;
    prop_one(pc, seed, &ps);
  }
  /* The random sequences did exercise the validator. */
  if (pc->policy != OFF)
    assert_true(ps.reports > NSEQ);
  if (pc->policy == STRICT)
    assert_true(ps.refused > NSEQ / 2);
  if (pc->policy == REPAIR) {
    assert_true(ps.dropped > NSEQ / 2);
    assert_true(ps.synth > NSEQ / 2);
  }
  assert_true(ps.delivered > NSEQ);
}

static void test_prop_no_timers(void **state) {
  int p = policy_of(state);
  prop_cfg pc = {p, 3, 4, 64, 0, 0, 1000000000, 0};
  prop_run(&pc, 11 + (uint64_t)p);
}

static void test_prop_timers(void **state) {
  int p = policy_of(state);
  prop_cfg pc = {p, 3, 4, 64, 400, 150, 1000000000, 0};
  prop_run(&pc, 23 + (uint64_t)p);
}

/* Few run slots, short keep: evictions, forgetting, id reuse. */
static void test_prop_evictions(void **state) {
  int p = policy_of(state);
  prop_cfg pc = {p, 6, 8, 2, 300, 100, 200, 1};
  prop_run(&pc, 37 + (uint64_t)p);
}

/* ============================================================ known bugs */

static int known_bugs(void) {
  const char *e = getenv("AGENTWS_KNOWN_BUGS");
  return e != NULL && strcmp(e, "1") == 0;
}

/* BUG: a run tracks at most 4096 open tool calls (MAX_OPEN); the 4097th
 * tool_executing is delivered but not tracked, so under strict its valid
 * tool_completed is refused as an orphan, and under repair a second
 * tool_executing with the same id is synthesized and agent_completed goes
 * out with that call still open for the client. */
static void known_bug_max_open_strict(void **state) {
  fx f;
  int i;
  (void)state;
  if (!known_bugs())
    skip();
  fx_std(&f, STRICT);
  f.r.build_check = 0;
  put_ok(&f, STARTED, "r1", NULL);
  for (i = 0; i <= 4096; i++) {
    char id[16];
    snprintf(id, sizeof(id), "c%d", i);
    put_ok(&f, EXEC, "r1", id);
  }
  /* A valid result for an announced, open call must not be refused. */
  assert_int_equal(put(&f, DONE, "r1", "c4096"), DELIVER);
  fx_free(&f);
}

static void known_bug_max_open_repair(void **state) {
  fx f;
  int i;
  size_t k, execs = 0;
  (void)state;
  if (!known_bugs())
    skip();
  fx_std(&f, REPAIR);
  f.r.build_check = 0;
  put_ok(&f, STARTED, "r1", NULL);
  for (i = 0; i <= 4096; i++) {
    char id[16];
    snprintf(id, sizeof(id), "c%d", i);
    put_ok(&f, EXEC, "r1", id);
  }
  put_ok(&f, COMPLETED, "r1", NULL);
  /* Every announced call must be closed before agent_completed. */
  for (k = 0; k < f.r.n; k++)
    if (f.r.ev[k].type == DONE)
      execs++;
  assert_int_equal(execs, 4097);
  fx_free(&f);
}

/* BUG: a repair whose synthesized event cannot be queued (the synth
 * function fails) still leaves the run registered as started: the event
 * is refused (as NOMEM), but the next event of the run is delivered with
 * no agent_started ever sent. In the library the synth function fails
 * when the synthesized event is over max_event_bytes (see
 * test_api_validate.c known_bug_synth_too_big). */
static void known_bug_synth_failure_state(void **state) {
  fx f;
  (void)state;
  if (!known_bugs())
    skip();
  fx_std(&f, REPAIR);
  f.r.fail_after = 0; /* the first synthesized event fails */
  assert_int_equal(put(&f, THINKING, "r1", NULL), AGENTWS_ERR_NOMEM);
  f.r.fail_after = -1;
  rec_clear(&f);
  put_ok(&f, EXEC, "r1", "c1");
  /* The client must never see a run without agent_started. */
  (void)check_lifecycles(f.r.ev, f.r.n, 0, 1, 0, "after a failed repair");
  fx_free(&f);
}

/* ================================================================= main */

static int pol_off = OFF, pol_warn = WARN, pol_strict = STRICT,
           pol_repair = REPAIR;

#define PCASE(f, p) {#f "/" #p, f, NULL, NULL, &pol_##p}
#define PCASES(f)                                                            \
  PCASE(f, off), PCASE(f, warn), PCASE(f, strict), PCASE(f, repair)

int main(void) {
  const struct CMUnitTest tests[] = {
      PCASES(test_run_not_started),
      PCASES(test_duplicate_start),
      PCASES(test_orphan_never_announced),
      PCASES(test_orphan_second_result),
      PCASES(test_duplicate_call_open),
      PCASES(test_duplicate_call_finished),
      PCASES(test_after_terminal),
      PCASES(test_open_tools_at_end),
      PCASES(test_run_stalled),
      PCASES(test_tool_timeout),
      PCASES(test_run_limit),
      cmocka_unit_test(test_repair_first_event_types),
      cmocka_unit_test(test_per_rule_policy),
      cmocka_unit_test(test_error_with_open_tools),
      cmocka_unit_test(test_error_open_tools_follows_rule),
      cmocka_unit_test(test_valid_lifecycle),
      cmocka_unit_test(test_all_off_tracks_nothing),
      cmocka_unit_test(test_ended_runs_forgotten),
      cmocka_unit_test(test_sweep_next_deadline),
      cmocka_unit_test(test_reports_bounded),
      cmocka_unit_test(test_rule_names),
      cmocka_unit_test(test_synth_failure_refuses),
      cmocka_unit_test(test_repair_of_escaped_ids_fits),
      cmocka_unit_test(test_abandoned_runs_warn),
      cmocka_unit_test(test_abandoned_runs_repair_stall),
      PCASES(test_prop_no_timers),
      PCASES(test_prop_timers),
      PCASES(test_prop_evictions),
      cmocka_unit_test(known_bug_max_open_strict),
      cmocka_unit_test(known_bug_max_open_repair),
      cmocka_unit_test(known_bug_synth_failure_state),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
