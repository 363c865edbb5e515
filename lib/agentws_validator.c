/*
 * Run lifecycle state machine. A run is live from its first event until
 * agent_completed / agent_error; its tool calls are open from
 * tool_executing until tool_completed. Violations are decided per rule by
 * policy; repairs emit synthesized events (data.synthesized = true) in
 * the position that makes the run valid again.
 */
#include "agentws_validator.h"

#include <stdio.h>
#include <string.h>

#define MAX_CALLS 256      /* finished tool call ids remembered per run */
#define MAX_OPEN 4096      /* open tool calls tracked per run */
#define MAX_REPORTS 1024   /* reports waiting for the loop thread */

typedef struct run run;

typedef struct call {
  run *r;
  char *id, *tool;     /* owned */
  uint64_t started_ms;
  int open;
  int alerted;         /* a tool_timeout alert is firing for it */
  agentws__list node;  /* v->calls while open and timed */
  struct call *next;   /* r->calls, newest first */
} call;

struct run {
  char *key;           /* owned; the map key: target, target id, run id */
  const char *id;      /* the run id, inside key */
  char *target_id;     /* owned */
  int target;
  int ended;
  int stall_reported;  /* warn: once per quiet period */
  int stall_alerted;   /* a run_stalled alert is firing for it */
  uint64_t last_ms;    /* last event (live) or end (ended) */
  agentws__list node;  /* v->live or v->ended */
  call *calls;
  size_t ncalls, nopen;
};

static const char *const rule_names[AGENTWS__NRULES] = {
    "schema",          "run_not_started",      "duplicate_start",
    "orphan_tool_result", "duplicate_tool_call", "event_after_terminal",
    "open_tools_at_end",  "run_stalled",         "tool_timeout",
    "run_limit"};

const char *agentws__rule_name(int rule) {
  return rule >= 0 && rule < AGENTWS__NRULES ? rule_names[rule] : NULL;
}

void agentws__validator_init(agentws__validator *v, const agentws__mem *mem,
                             const int *policy, int64_t stall_ms,
                             int64_t tool_timeout_ms, size_t max_runs,
                             int64_t keep_ms) {
  int i;
  memset(v, 0, sizeof(*v));
  v->mem = mem;
  for (i = 0; i < AGENTWS__NRULES; i++) {
    v->policy[i] = policy[i];
    if (policy[i] != AGENTWS_VALIDATION_OFF)
      v->enabled = 1;
  }
  v->stall_ms = stall_ms;
  v->tool_timeout_ms = tool_timeout_ms;
  v->max_runs = max_runs > 0 ? max_runs : 1;
  v->keep_ms = keep_ms;
  agentws__list_init(&v->live);
  agentws__list_init(&v->ended);
  agentws__list_init(&v->calls);
}

/* ------------------------------------------------------------- reports */

static void report(agentws__validator *v, int rule, int outcome,
                   const run *r, const char *run_id, int target,
                   const char *target_id, const char *fmt, const char *arg) {
  agentws__vreport *rep;
  v->by_rule[rule]++;
  v->by_outcome[outcome]++;
  if (v->nreports >= MAX_REPORTS) {
    v->reports_dropped++;
    return;
  }
  rep = agentws__mem_calloc(v->mem, 1, sizeof(*rep));
  if (rep == NULL) {
    v->reports_dropped++;
    return;
  }
  if (r != NULL) {
    run_id = r->id;
    target = r->target;
    target_id = r->target_id;
  }
  rep->rule = rule;
  rep->outcome = outcome;
  rep->target = target;
  rep->run_id = agentws__mem_strndup(v->mem, run_id, strlen(run_id));
  rep->target_id = agentws__mem_strndup(v->mem, target_id, strlen(target_id));
  snprintf(rep->message, sizeof(rep->message), fmt, arg != NULL ? arg : "");
  if (rep->run_id == NULL || rep->target_id == NULL) {
    agentws__validator_reports_free(v->mem, rep);
    v->reports_dropped++;
    return;
  }
  if (v->r_tail != NULL)
    v->r_tail->next = rep;
  else
    v->r_head = rep;
  v->r_tail = rep;
  v->nreports++;
}

/* Alert reports are not bounded like violations (each needs an event or a
 * timeout in between, and a fired one must be able to clear); one that
 * cannot be made is not marked as firing, so it never clears either. */
static int alert(agentws__validator *v, int rule, int firing, const run *r,
                 const char *tool_call, uint64_t value, int64_t threshold,
                 const char *message) {
  agentws__vreport *rep;
  if (!v->alerts)
    return 0;
  rep = agentws__mem_calloc(v->mem, 1, sizeof(*rep));
  if (rep == NULL)
    return 0;
  rep->alert = firing ? 1 : 2;
  rep->rule = rule;
  rep->target = r->target;
  rep->run_id = agentws__mem_strndup(v->mem, r->id, strlen(r->id));
  rep->target_id =
      agentws__mem_strndup(v->mem, r->target_id, strlen(r->target_id));
  if (tool_call != NULL)
    rep->tool_call = agentws__mem_strndup(v->mem, tool_call, strlen(tool_call));
  rep->value = (int64_t)value;
  rep->threshold = threshold;
  snprintf(rep->message, sizeof(rep->message), "%s", message);
  if (rep->run_id == NULL || rep->target_id == NULL ||
      (tool_call != NULL && rep->tool_call == NULL)) {
    agentws__validator_reports_free(v->mem, rep);
    return 0;
  }
  if (v->r_tail != NULL)
    v->r_tail->next = rep;
  else
    v->r_head = rep;
  v->r_tail = rep;
  return 1;
}

static void call_clear(agentws__validator *v, call *c, const char *why) {
  if (!c->alerted)
    return;
  c->alerted = 0;
  (void)alert(v, AGENTWS_ALERT_TOOL_TIMEOUT, 0, c->r, c->id, 0,
              v->tool_timeout_ms, why);
}

static void stall_clear(agentws__validator *v, run *r, const char *why) {
  if (!r->stall_alerted)
    return;
  r->stall_alerted = 0;
  (void)alert(v, AGENTWS_ALERT_RUN_STALLED, 0, r, NULL, 0, v->stall_ms, why);
}

agentws__vreport *agentws__validator_take_reports(agentws__validator *v) {
  agentws__vreport *r = v->r_head;
  v->r_head = v->r_tail = NULL;
  v->nreports = 0;
  return r;
}

void agentws__validator_reports_free(const agentws__mem *mem,
                                     agentws__vreport *r) {
  while (r != NULL) {
    agentws__vreport *next = r->next;
    agentws__mem_free(mem, r->run_id);
    agentws__mem_free(mem, r->target_id);
    agentws__mem_free(mem, r->tool_call);
    agentws__mem_free(mem, r);
    r = next;
  }
}

/* ---------------------------------------------------------------- runs */

static void call_free(agentws__validator *v, call *c) {
  call_clear(v, c, "run ended");
  if (agentws__list_linked(&c->node))
    agentws__list_remove(&c->node);
  agentws__mem_free(v->mem, c->id);
  agentws__mem_free(v->mem, c->tool);
  agentws__mem_free(v->mem, c);
}

static void calls_free(agentws__validator *v, run *r) {
  while (r->calls != NULL) {
    call *c = r->calls;
    r->calls = c->next;
    call_free(v, c);
  }
  r->ncalls = r->nopen = 0;
}

static void run_free(agentws__validator *v, run *r) {
  stall_clear(v, r, "run forgotten");
  agentws__strmap_del(&v->runs, r->key);
  agentws__list_remove(&r->node);
  if (r->ended)
    v->nended--;
  else
    v->nlive--;
  calls_free(v, r);
  agentws__mem_free(v->mem, r->key);
  agentws__mem_free(v->mem, r->target_id);
  agentws__mem_free(v->mem, r);
}

void agentws__validator_free(agentws__validator *v) {
  while (!agentws__list_empty(&v->live))
    run_free(v, AGENTWS__CONTAINER_OF(v->live.next, run, node));
  while (!agentws__list_empty(&v->ended))
    run_free(v, AGENTWS__CONTAINER_OF(v->ended.next, run, node));
  agentws__strmap_free(&v->runs, v->mem);
  agentws__validator_reports_free(v->mem, agentws__validator_take_reports(v));
}

static void touch(agentws__validator *v, run *r, uint64_t now) {
  stall_clear(v, r, "run active again");
  r->last_ms = now;
  r->stall_reported = 0;
  agentws__list_remove(&r->node);
  agentws__list_push_back(&v->live, &r->node);
}

static void end_run(agentws__validator *v, run *r, uint64_t now) {
  stall_clear(v, r, "run ended");
  calls_free(v, r);
  agentws__list_remove(&r->node);
  r->ended = 1;
  r->last_ms = now;
  v->nlive--;
  v->nended++;
  agentws__list_push_back(&v->ended, &r->node);
  if (v->nended > v->max_runs)
    run_free(v, AGENTWS__CONTAINER_OF(v->ended.next, run, node));
}

static call *find_call(run *r, const char *id) {
  call *c;
  for (c = r->calls; c != NULL; c = c->next)
    if (strcmp(c->id, id) == 0)
      return c;
  return NULL;
}

/* Synthesized events carry where they came from in "data". */
static void synth_args(agentws__emit_args *s, const run *r, int type,
                       const char *data) {
  memset(s, 0, sizeof(*s));
  s->type = type;
  s->target = r->target;
  s->target_id = r->target_id;
  s->run_id = r->id;
  s->data_json = data;
}

#define MARK(rule) "{\"synthesized\":true,\"rule\":\"" rule "\"}"

static int synth_start(const run *r, agentws__synth_fn synth, void *ctx) {
  agentws__emit_args s;
  synth_args(&s, r, AGENTWS__EV_AGENT_STARTED, MARK("run_not_started"));
  s.agent = "unknown";
  return synth(ctx, &s);
}

static int synth_tool_start(const run *r, const char *tool, const char *id,
                            agentws__synth_fn synth, void *ctx) {
  agentws__emit_args s;
  synth_args(&s, r, AGENTWS__EV_TOOL_EXECUTING, MARK("orphan_tool_result"));
  s.tool = tool;
  s.tool_call_id = id;
  return synth(ctx, &s);
}

/* A failed tool_completed for |c|: |result| {"code":...}, |mark| data. */
static int synth_tool_fail(const run *r, const call *c, const char *result,
                           const char *mark, uint64_t now,
                           agentws__synth_fn synth, void *ctx) {
  agentws__emit_args s;
  synth_args(&s, r, AGENTWS__EV_TOOL_COMPLETED, mark);
  s.tool = c->tool;
  s.tool_call_id = c->id;
  s.ok = 0;
  s.duration_ms = (int64_t)(now - c->started_ms);
  s.result_json = result;
  return synth(ctx, &s);
}

/* Closes every open call of |r| with a synthesized failure. */
static int close_calls(agentws__validator *v, run *r, const char *result,
                       const char *mark, uint64_t now,
                       agentws__synth_fn synth, void *ctx) {
  call *c;
  int rv = 0;
  for (c = r->calls; c != NULL && rv == 0; c = c->next) {
    if (!c->open)
      continue;
    rv = synth_tool_fail(r, c, result, mark, now, synth, ctx);
    c->open = 0;
    r->nopen--;
    call_clear(v, c, "closed by repair");
    if (agentws__list_linked(&c->node))
      agentws__list_remove(&c->node);
  }
  return rv;
}

static int synth_error(const run *r, const char *code, const char *message,
                       const char *mark, agentws__synth_fn synth,
                       void *ctx) {
  agentws__emit_args s;
  synth_args(&s, r, AGENTWS__EV_AGENT_ERROR, mark);
  s.code = code;
  s.message = message;
  s.severity = "error";
  s.retryable = 1;
  return synth(ctx, &s);
}

static int add_call(agentws__validator *v, run *r, const char *id,
                    const char *tool, uint64_t now) {
  call *c;
  if (r->nopen >= MAX_OPEN)
    return 0; /* not tracked: its result will look like an orphan */
  c = agentws__mem_calloc(v->mem, 1, sizeof(*c));
  if (c == NULL)
    return AGENTWS_ERR_NOMEM;
  agentws__list_init(&c->node); /* call_free() below looks at it */
  c->id = agentws__mem_strndup(v->mem, id, strlen(id));
  c->tool = agentws__mem_strndup(v->mem, tool, strlen(tool));
  if (c->id == NULL || c->tool == NULL) {
    call_free(v, c);
    return AGENTWS_ERR_NOMEM;
  }
  c->r = r;
  c->open = 1;
  c->started_ms = now;
  if (v->tool_timeout_ms > 0)
    agentws__list_push_back(&v->calls, &c->node);
  c->next = r->calls;
  r->calls = c;
  r->ncalls++;
  r->nopen++;
  if (r->ncalls > MAX_CALLS) { /* forget the oldest finished id */
    call **pp = &r->calls, **victim = NULL;
    for (; *pp != NULL; pp = &(*pp)->next)
      if (!(*pp)->open)
        victim = pp;
    if (victim != NULL) {
      call *old = *victim;
      *victim = old->next;
      call_free(v, old);
      r->ncalls--;
    }
  }
  return 0;
}

/* Evicts the least recently active live run when the table is full. */
static int make_room(agentws__validator *v, uint64_t now,
                     agentws__synth_fn synth, void *ctx) {
  run *old;
  int pol = v->policy[AGENTWS_RULE_RUN_LIMIT];
  if (v->nlive < v->max_runs)
    return 0;
  old = AGENTWS__CONTAINER_OF(v->live.next, run, node);
  if (pol == AGENTWS_VALIDATION_REPAIR || pol == AGENTWS_VALIDATION_STRICT) {
    (void)close_calls(v, old, "{\"code\":\"evicted\"}", MARK("run_limit"),
                      now, synth, ctx);
    (void)synth_error(old, "evicted", "run forgotten: too many live runs",
                      MARK("run_limit"), synth, ctx);
    report(v, AGENTWS_RULE_RUN_LIMIT, AGENTWS_OUTCOME_REPAIRED, old, NULL, 0,
           NULL, "too many live runs; ended the least recently active", NULL);
  } else if (pol == AGENTWS_VALIDATION_WARN) {
    report(v, AGENTWS_RULE_RUN_LIMIT, AGENTWS_OUTCOME_WARNED, old, NULL, 0,
           NULL, "too many live runs; forgot the least recently active",
           NULL);
  }
  end_run(v, old, now);
  return 0;
}

/* "U|alice\nr-1": runs of different targets never share state, even with
 * the same run id. Into |buf| (|cap| bytes) or, if NULL, a new string. */
static char *make_key(const agentws__mem *mem, const agentws__emit_args *a,
                      char *buf, size_t cap) {
  size_t t = strlen(a->target_id), n = strlen(a->run_id);
  if (buf == NULL) {
    cap = t + n + 4;
    buf = agentws__mem_malloc(mem, cap);
    if (buf == NULL)
      return NULL;
  } else if (t + n + 4 > cap) {
    return NULL;
  }
  buf[0] = a->target == AGENTWS_TARGET_ROOM ? 'R' : 'U';
  buf[1] = '|';
  memcpy(buf + 2, a->target_id, t);
  buf[2 + t] = '\n';
  memcpy(buf + 3 + t, a->run_id, n + 1);
  return buf;
}

static run *new_run(agentws__validator *v, const agentws__emit_args *a,
                    uint64_t now, agentws__synth_fn synth, void *ctx) {
  run *r;
  (void)make_room(v, now, synth, ctx);
  r = agentws__mem_calloc(v->mem, 1, sizeof(*r));
  if (r == NULL)
    return NULL;
  r->key = make_key(v->mem, a, NULL, 0);
  r->id = r->key != NULL ? r->key + 3 + strlen(a->target_id) : NULL;
  r->target_id = agentws__mem_strndup(v->mem, a->target_id,
                                      strlen(a->target_id));
  if (r->id == NULL || r->target_id == NULL ||
      agentws__strmap_put(&v->runs, v->mem, r->key, r) != 0) {
    agentws__mem_free(v->mem, r->key);
    agentws__mem_free(v->mem, r->target_id);
    agentws__mem_free(v->mem, r);
    return NULL;
  }
  r->target = a->target;
  r->last_ms = now;
  agentws__list_push_back(&v->live, &r->node);
  v->nlive++;
  return r;
}

/* ---------------------------------------------------------------- check */

/* A violation of |rule| by event |a|: the outcome its policy gives.
 * |repair| says what REPAIR does (REPAIRED or DROPPED); *deliver is 1 when
 * the event still goes out. */
static int decide(agentws__validator *v, int rule, const agentws__emit_args *a,
                  const run *r, int repair_outcome, const char *fmt,
                  const char *arg) {
  int pol = v->policy[rule];
  int outcome;
  switch (pol) {
  case AGENTWS_VALIDATION_OFF:
    return AGENTWS_OUTCOME_WARNED; /* delivered, not reported */
  case AGENTWS_VALIDATION_WARN:
    outcome = AGENTWS_OUTCOME_WARNED;
    break;
  case AGENTWS_VALIDATION_STRICT:
    outcome = AGENTWS_OUTCOME_REFUSED;
    break;
  default:
    outcome = repair_outcome;
    break;
  }
  report(v, rule, outcome, r, a->run_id, a->target, a->target_id, fmt, arg);
  return outcome;
}

static int outcome_action(int outcome) {
  return outcome == AGENTWS_OUTCOME_REFUSED   ? AGENTWS__V_REFUSE
         : outcome == AGENTWS_OUTCOME_DROPPED ? AGENTWS__V_DROP
                                              : AGENTWS__V_DELIVER;
}

static int check_live(agentws__validator *v, run *r,
                      const agentws__emit_args *a, uint64_t now,
                      agentws__synth_fn synth, void *ctx) {
  call *c;
  int o;
  switch (a->type) {
  case AGENTWS__EV_AGENT_STARTED:
    o = decide(v, AGENTWS_RULE_DUPLICATE_START, a, r, AGENTWS_OUTCOME_DROPPED,
               "agent_started for a run that is already live", NULL);
    if (o != AGENTWS_OUTCOME_REFUSED)
      touch(v, r, now);
    return outcome_action(o);
  case AGENTWS__EV_TOOL_EXECUTING:
    c = find_call(r, a->tool_call_id);
    if (c != NULL) {
      o = decide(v, AGENTWS_RULE_DUPLICATE_TOOL_CALL, a, r,
                 AGENTWS_OUTCOME_DROPPED, "tool_call_id %s was used before",
                 a->tool_call_id);
      if (o != AGENTWS_OUTCOME_REFUSED)
        touch(v, r, now);
      return outcome_action(o);
    }
    if (add_call(v, r, a->tool_call_id, a->tool, now) != 0)
      return AGENTWS_ERR_NOMEM;
    touch(v, r, now);
    return AGENTWS__V_DELIVER;
  case AGENTWS__EV_TOOL_COMPLETED:
    c = find_call(r, a->tool_call_id);
    if (c != NULL && c->open) {
      c->open = 0;
      r->nopen--;
      if (agentws__list_linked(&c->node))
        agentws__list_remove(&c->node);
      call_clear(v, c, "result arrived");
      touch(v, r, now);
      return AGENTWS__V_DELIVER;
    }
    o = decide(v, AGENTWS_RULE_ORPHAN_TOOL_RESULT, a, r,
               c == NULL ? AGENTWS_OUTCOME_REPAIRED : AGENTWS_OUTCOME_DROPPED,
               c == NULL ? "tool_completed for %s without tool_executing"
                         : "a second tool_completed for %s",
               a->tool_call_id);
    if (o == AGENTWS_OUTCOME_REFUSED)
      return AGENTWS__V_REFUSE;
    touch(v, r, now);
    if (o == AGENTWS_OUTCOME_REPAIRED) {
      if (synth_tool_start(r, a->tool, a->tool_call_id, synth, ctx) != 0)
        return AGENTWS_ERR_NOMEM;
      if (add_call(v, r, a->tool_call_id, a->tool, now) != 0)
        return AGENTWS_ERR_NOMEM;
      c = find_call(r, a->tool_call_id);
      if (c != NULL && c->open) {
        c->open = 0;
        r->nopen--;
        if (agentws__list_linked(&c->node))
          agentws__list_remove(&c->node);
      }
    }
    return outcome_action(o);
  case AGENTWS__EV_AGENT_COMPLETED:
  case AGENTWS__EV_AGENT_ERROR:
    if (r->nopen > 0) {
      if (a->type == AGENTWS__EV_AGENT_COMPLETED) {
        o = decide(v, AGENTWS_RULE_OPEN_TOOLS_AT_END, a, r,
                   AGENTWS_OUTCOME_REPAIRED,
                   "agent_completed with tool calls still open%s", NULL);
        if (o == AGENTWS_OUTCOME_REFUSED)
          return AGENTWS__V_REFUSE;
      } else {
        /* An error may end a run mid-tool; repair still closes the calls
         * so no client waits on them, without calling it a violation. */
        o = v->policy[AGENTWS_RULE_OPEN_TOOLS_AT_END] ==
                    AGENTWS_VALIDATION_REPAIR
                ? AGENTWS_OUTCOME_REPAIRED
                : AGENTWS_OUTCOME_WARNED;
      }
      if (o == AGENTWS_OUTCOME_REPAIRED &&
          close_calls(v, r,
                      a->type == AGENTWS__EV_AGENT_COMPLETED
                          ? "{\"code\":\"abandoned\"}"
                          : "{\"code\":\"run_failed\"}",
                      MARK("open_tools_at_end"), now, synth, ctx) != 0)
        return AGENTWS_ERR_NOMEM;
    }
    end_run(v, r, now);
    return AGENTWS__V_DELIVER;
  default: /* thinking */
    touch(v, r, now);
    return AGENTWS__V_DELIVER;
  }
}

int agentws__validator_check(agentws__validator *v,
                             const agentws__emit_args *a, uint64_t now,
                             agentws__synth_fn synth, void *ctx) {
  run *r;
  int o;
  if (!v->enabled || a->type == AGENTWS__EV_CUSTOM || a->run_id == NULL)
    return AGENTWS__V_DELIVER;
  {
    char buf[2 * AGENTWS__MAX_NAME + 8];
    if (make_key(v->mem, a, buf, sizeof(buf)) == NULL)
      return AGENTWS__V_DELIVER; /* over the schema limits: never here */
    r = agentws__strmap_get(&v->runs, buf);
  }
  if (r != NULL && r->ended) {
    o = decide(v, AGENTWS_RULE_AFTER_TERMINAL, a, r, AGENTWS_OUTCOME_DROPPED,
               "event after the run ended%s", NULL);
    return outcome_action(o);
  }
  if (r == NULL) {
    if (a->type != AGENTWS__EV_AGENT_STARTED) {
      o = decide(v, AGENTWS_RULE_RUN_NOT_STARTED, a, NULL,
                 AGENTWS_OUTCOME_REPAIRED,
                 "first event of the run is not agent_started%s", NULL);
      if (o == AGENTWS_OUTCOME_REFUSED)
        return AGENTWS__V_REFUSE;
      r = new_run(v, a, now, synth, ctx);
      if (r == NULL)
        return AGENTWS_ERR_NOMEM;
      if (o == AGENTWS_OUTCOME_REPAIRED && synth_start(r, synth, ctx) != 0)
        return AGENTWS_ERR_NOMEM;
      return check_live(v, r, a, now, synth, ctx);
    }
    r = new_run(v, a, now, synth, ctx);
    return r != NULL ? AGENTWS__V_DELIVER : AGENTWS_ERR_NOMEM;
  }
  return check_live(v, r, a, now, synth, ctx);
}

/* ---------------------------------------------------------------- sweep */

static void stalled(agentws__validator *v, run *r, uint64_t now,
                    agentws__synth_fn synth, void *ctx) {
  int pol = v->policy[AGENTWS_RULE_RUN_STALLED];
  char quiet[32];
  snprintf(quiet, sizeof(quiet), "%llu",
           (unsigned long long)(now - r->last_ms));
  if (!r->stall_alerted && !r->stall_reported)
    r->stall_alerted =
        alert(v, AGENTWS_ALERT_RUN_STALLED, 1, r, NULL, now - r->last_ms,
              v->stall_ms, "no event from the agent in time");
  if (pol == AGENTWS_VALIDATION_REPAIR || pol == AGENTWS_VALIDATION_STRICT) {
    (void)close_calls(v, r, "{\"code\":\"stalled\"}", MARK("run_stalled"), now,
                      synth, ctx);
    (void)synth_error(r, "stalled", "no event from the agent in time",
                      MARK("run_stalled"), synth, ctx);
    report(v, AGENTWS_RULE_RUN_STALLED, AGENTWS_OUTCOME_REPAIRED, r, NULL, 0,
           NULL, "no event for %s ms: ended with agent_error stalled", quiet);
    end_run(v, r, now);
    return;
  }
  if (pol == AGENTWS_VALIDATION_WARN && !r->stall_reported)
    report(v, AGENTWS_RULE_RUN_STALLED, AGENTWS_OUTCOME_WARNED, r, NULL, 0,
           NULL, "no event for %s ms", quiet);
  /* Looked at again after another quiet period. */
  r->last_ms = now;
  r->stall_reported = 1;
  agentws__list_remove(&r->node);
  agentws__list_push_back(&v->live, &r->node);
}

static void timed_out(agentws__validator *v, call *c, uint64_t now,
                      agentws__synth_fn synth, void *ctx) {
  int pol = v->policy[AGENTWS_RULE_TOOL_TIMEOUT];
  agentws__list_remove(&c->node); /* reported once */
  if (!c->alerted)
    c->alerted = alert(v, AGENTWS_ALERT_TOOL_TIMEOUT, 1, c->r, c->id,
                       now - c->started_ms, v->tool_timeout_ms,
                       "tool call without a result in time");
  if (pol == AGENTWS_VALIDATION_REPAIR || pol == AGENTWS_VALIDATION_STRICT) {
    (void)synth_tool_fail(c->r, c, "{\"code\":\"timeout\"}",
                          MARK("tool_timeout"), now, synth, ctx);
    c->open = 0;
    c->r->nopen--;
    call_clear(v, c, "failed with timeout by repair");
    report(v, AGENTWS_RULE_TOOL_TIMEOUT, AGENTWS_OUTCOME_REPAIRED, c->r, NULL,
           0, NULL, "tool call %s got no result: failed with timeout",
           c->id);
  } else if (pol == AGENTWS_VALIDATION_WARN) {
    report(v, AGENTWS_RULE_TOOL_TIMEOUT, AGENTWS_OUTCOME_WARNED, c->r, NULL,
           0, NULL, "tool call %s has no result yet", c->id);
  }
}

uint64_t agentws__validator_sweep(agentws__validator *v, uint64_t now,
                                  agentws__synth_fn synth, void *ctx) {
  uint64_t next = 0;
  while (v->tool_timeout_ms > 0 && !agentws__list_empty(&v->calls)) {
    call *c = AGENTWS__CONTAINER_OF(v->calls.next, call, node);
    uint64_t due = c->started_ms + (uint64_t)v->tool_timeout_ms;
    if (due > now) {
      next = due;
      break;
    }
    timed_out(v, c, now, synth, ctx);
  }
  while (v->stall_ms > 0 && !agentws__list_empty(&v->live)) {
    run *r = AGENTWS__CONTAINER_OF(v->live.next, run, node);
    uint64_t due = r->last_ms + (uint64_t)v->stall_ms;
    if (due > now) {
      if (next == 0 || due < next)
        next = due;
      break;
    }
    stalled(v, r, now, synth, ctx);
  }
  while (!agentws__list_empty(&v->ended)) {
    run *r = AGENTWS__CONTAINER_OF(v->ended.next, run, node);
    uint64_t due = r->last_ms + (uint64_t)v->keep_ms;
    if (due > now) {
      if (next == 0 || due < next)
        next = due;
      break;
    }
    run_free(v, r);
  }
  return next;
}
