/*
 * The validator inside the emit path: checks each event under the queue
 * lock (so validation order is delivery order), queues what a repair
 * synthesizes right there, runs the stall / tool-timeout sweep on a loop
 * timer, and hands violation reports to the host's hook on the loop
 * thread.
 */
#include <string.h>

#include "agentws_emitter.h"
#include "agentws_manager.h"

static uint64_t mono_ms(void) { return uv_hrtime() / 1000000u; }

/* The bound a repair is built within, whatever max_event_bytes says. The
 * largest is a tool_completed whose run id, tool and tool call id (each at
 * most AGENTWS__MAX_NAME bytes) escape to 6 bytes a byte (\u00XX): 4608
 * bytes, plus its fixed members, its data mark and a room's stream name,
 * well under 8 KiB. */
#define SYNTH_MAX_BYTES 8192

/* Called with e->lock held. */
static int synth(void *ctx, const agentws__emit_args *src) {
  agentws__emitter *e = ctx;
  agentws__emit_args a = *src;
  agentws__event *ev;
  int rv;
  a.ts_ms = agentws__wall_ms();
  /* A repair must not fail for size: its ids passed the schema limits.
   * (A 4 KiB floor did not hold them escaped: fuzz_emit.) */
  rv = agentws__event_build(e->mem, &a,
                            e->cfg->max_event_bytes > SYNTH_MAX_BYTES
                                ? e->cfg->max_event_bytes
                                : SYNTH_MAX_BYTES,
                            &ev);
  if (rv != 0)
    return rv;
  ev->emit_ns = uv_hrtime();
  ev->refcnt = 1;
  ev->next = NULL;
  if (e->q_tail != NULL)
    e->q_tail->next = ev;
  else
    e->q_head = ev;
  e->q_tail = ev;
  e->q_len++;
  e->synthesized++;
  return 0;
}

int agentws__validate_emit(agentws__emitter *e, const agentws__emit_args *a) {
  return agentws__validator_check(&e->v, a, mono_ms(), synth, e);
}

void agentws__validate_schema_failure(agentws__emitter *e) {
  uv_mutex_lock(&e->lock);
  e->v.by_rule[AGENTWS_RULE_SCHEMA]++;
  uv_mutex_unlock(&e->lock);
}

void agentws__validate_report(agentws__emitter *e) {
  agentws_manager *m = e->m;
  agentws__vreport *r, *head;
  uv_mutex_lock(&e->lock);
  head = e->v.r_head != NULL ? agentws__validator_take_reports(&e->v) : NULL;
  uv_mutex_unlock(&e->lock);
  for (r = head; r != NULL; r = r->next) {
    if (r->alert) {
      agentws_alert a;
      memset(&a, 0, sizeof(a));
      a.rule = r->rule;
      a.firing = r->alert == 1;
      a.target = r->target_id;
      a.run = r->run_id;
      a.tool_call = r->tool_call;
      a.value = r->value;
      a.threshold = r->threshold;
      a.message = r->message;
      agentws__monitor_alert(&m->mon, &a);
    } else {
      agentws__log(m, AGENTWS_LOG_WARN, "violation %s (%s) run %s of %s: %s",
                   agentws__rule_name(r->rule),
                   agentws_outcome_name(r->outcome), r->run_id, r->target_id,
                   r->message);
      if (m->cbs.on_violation != NULL)
        m->cbs.on_violation(m, r->rule, r->outcome, r->run_id, r->target,
                            r->target_id, r->message, m->user_data);
    }
  }
  agentws__validator_reports_free(e->mem, head);
}

static void on_vtimer(uv_timer_t *h) {
  agentws__emitter *e = h->data;
  uv_mutex_lock(&e->lock);
  (void)agentws__validator_sweep(&e->v, mono_ms(), synth, e);
  uv_mutex_unlock(&e->lock);
  agentws__emitter_drain(e); /* publishes what the sweep synthesized */
}

/* The sweep's period: a quarter of the shortest deadline, 10 ms .. 1 s. */
static uint64_t period(const agentws_config *cfg) {
  int64_t p = 4000;
  if (cfg->stall_timeout_ms > 0 && cfg->stall_timeout_ms < p)
    p = cfg->stall_timeout_ms;
  if (cfg->tool_timeout_ms > 0 && cfg->tool_timeout_ms < p)
    p = cfg->tool_timeout_ms;
  if (cfg->run_keep_ms > 0 && cfg->run_keep_ms < p)
    p = cfg->run_keep_ms;
  p /= 4;
  return (uint64_t)(p < 10 ? 10 : p);
}

void agentws__validate_init(agentws__emitter *e, uv_loop_t *loop) {
  const agentws_config *cfg = e->cfg;
  int policy[AGENTWS__NRULES], i;
  for (i = 0; i < AGENTWS__NRULES; i++)
    policy[i] = agentws__config_rule_policy(cfg, i);
  agentws__validator_init(&e->v, e->mem, policy, cfg->stall_timeout_ms,
                          cfg->tool_timeout_ms, (size_t)cfg->max_live_runs,
                          cfg->run_keep_ms);
  e->v.alerts = cfg->mon.enabled;
  if (!e->v.enabled)
    return;
  uv_timer_init(loop, &e->vtimer);
  e->vtimer.data = e;
  uv_timer_start(&e->vtimer, on_vtimer, period(cfg), period(cfg));
  uv_unref((uv_handle_t *)&e->vtimer);
  e->vtimer_on = 1;
}

void agentws__validate_close(agentws__emitter *e) {
  if (e->vtimer_on)
    uv_close((uv_handle_t *)&e->vtimer, NULL);
  e->vtimer_on = 0;
}

void agentws__validate_stats(agentws__emitter *e, uint64_t *rules,
                             uint64_t *outcomes, uint64_t *synthesized,
                             uint64_t *live) {
  uv_mutex_lock(&e->lock);
  memcpy(rules, e->v.by_rule, sizeof(e->v.by_rule));
  memcpy(outcomes, e->v.by_outcome, sizeof(e->v.by_outcome));
  *synthesized = e->synthesized;
  *live = e->v.nlive;
  uv_mutex_unlock(&e->lock);
}
