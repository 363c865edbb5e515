/* Detectors, gauges and loop lag; see agentws_monitor.h. */
#include "agentws_monitor.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agentws_manager.h"

#define PROBE_MAX_MS 100u /* lag is probed at least this often */

static const char *const rule_names[AGENTWS__NALERTS] = {
    "run_stalled",   "tool_timeout", "unacked",       "slow_consumer",
    "half_open",     "loop_lag",     "auth_timeouts", "validation_rate"};

static const int severities[AGENTWS__NALERTS] = {
    AGENTWS_SEVERITY_WARNING,  AGENTWS_SEVERITY_WARNING,
    AGENTWS_SEVERITY_WARNING,  AGENTWS_SEVERITY_WARNING,
    AGENTWS_SEVERITY_WARNING,  AGENTWS_SEVERITY_CRITICAL,
    AGENTWS_SEVERITY_CRITICAL, AGENTWS_SEVERITY_WARNING};

static const char *const fire_msgs[AGENTWS__NALERTS] = {
    "run stalled: no event from the agent in time",
    "tool call without a result in time",
    "written events not acknowledged in time",
    "connection's pending output keeps growing",
    "connection does not answer pings",
    "event loop lagging",
    "authentication hook timing out",
    "validation failure rate high"};

const char *agentws_alert_rule_name(int rule) {
  return rule >= 0 && rule < AGENTWS__NALERTS ? rule_names[rule] : NULL;
}

const char *agentws_severity_name(int severity) {
  static const char *const names[] = {"info", "warning", "critical"};
  return severity >= 0 && severity <= AGENTWS_SEVERITY_CRITICAL
             ? names[severity]
             : NULL;
}

int agentws_alert_get_rule(const agentws_alert *a) {
  return a != NULL ? a->rule : -1;
}
int agentws_alert_get_severity(const agentws_alert *a) {
  return a != NULL ? a->severity : -1;
}
int agentws_alert_is_firing(const agentws_alert *a) {
  return a != NULL ? a->firing : -1;
}
uint64_t agentws_alert_get_conn(const agentws_alert *a) {
  return a != NULL ? a->conn : 0;
}
const char *agentws_alert_get_target(const agentws_alert *a) {
  return a != NULL ? a->target : NULL;
}
const char *agentws_alert_get_run(const agentws_alert *a) {
  return a != NULL ? a->run : NULL;
}
const char *agentws_alert_get_tool_call(const agentws_alert *a) {
  return a != NULL ? a->tool_call : NULL;
}
int64_t agentws_alert_get_value(const agentws_alert *a) {
  return a != NULL ? a->value : -1;
}
int64_t agentws_alert_get_threshold(const agentws_alert *a) {
  return a != NULL ? a->threshold : -1;
}
const char *agentws_alert_get_message(const agentws_alert *a) {
  return a != NULL ? a->message : NULL;
}

/* ------------------------------------------------------------------ log */

void agentws__log(agentws_manager *m, int level, const char *fmt, ...) {
  char line[512];
  va_list ap;
  if (m->cbs.on_log == NULL || level > m->cfg->mon.log_level)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  m->cbs.on_log(m, level, line, m->user_data);
}

/* --------------------------------------------------------------- alerts */

void agentws__monitor_alert(agentws__monitor *mon, const agentws_alert *in) {
  agentws_manager *m = mon->m;
  agentws_alert a = *in;
  int r = a.rule;
  if (!mon->enabled || r < 0 || r >= AGENTWS__NALERTS)
    return;
  a.severity = severities[r];
  if (a.target == NULL)
    a.target = "";
  if (a.run == NULL)
    a.run = "";
  if (a.tool_call == NULL)
    a.tool_call = "";
  if (a.message == NULL)
    a.message = a.firing ? fire_msgs[r] : "cleared";
  if (a.firing) {
    mon->active[r]++;
    agentws__stat_inc(&m->stats, AGENTWS_STAT_ALERTS_RUN_STALLED + r);
  } else if (mon->active[r] > 0) {
    mon->active[r]--;
  }
  agentws__stat_set(&m->stats, AGENTWS_STAT_ACTIVE_RUN_STALLED + r,
                    (uint64_t)mon->active[r]);
  if (r == AGENTWS_ALERT_RUN_STALLED)
    agentws__stat_set(&m->stats, AGENTWS_STAT_RUNS_STALLED,
                      (uint64_t)mon->active[r]);
  agentws__log(m, a.firing ? AGENTWS_LOG_WARN : AGENTWS_LOG_INFO,
               "alert %s %s: %s (value %lld, threshold %lld)%s%s%s%s%s%s",
               rule_names[r], a.firing ? "firing" : "cleared", a.message,
               (long long)a.value, (long long)a.threshold,
               a.target[0] ? " target " : "", a.target,
               a.run[0] ? " run " : "", a.run,
               a.tool_call[0] ? " tool_call " : "", a.tool_call);
  if (m->cbs.on_alert != NULL)
    m->cbs.on_alert(m, &a, m->user_data);
}

static void simple_alert(agentws__monitor *mon, int rule, int firing,
                         uint64_t conn, const char *target, int64_t value,
                         int64_t threshold) {
  agentws_alert a;
  memset(&a, 0, sizeof(a));
  a.rule = rule;
  a.firing = firing;
  a.conn = conn;
  a.target = target;
  a.value = value;
  a.threshold = threshold;
  agentws__monitor_alert(mon, &a);
}

/* Queues a connection alert for after the scan; 0 if there is no room
 * (the condition is looked at again next tick). */
static int defer(agentws__monitor *mon, int rule, int firing, uint64_t conn,
                 const char *target, int64_t value, int64_t threshold) {
  agentws__pending_alert *p;
  if (mon->npend >= AGENTWS__MON_PENDING)
    return 0;
  p = &mon->pend[mon->npend++];
  p->rule = rule;
  p->firing = firing;
  p->conn = conn;
  p->value = value;
  p->threshold = threshold;
  snprintf(p->target, sizeof(p->target), "%s", target != NULL ? target : "");
  return 1;
}

static void fire_deferred(agentws__monitor *mon) {
  size_t i, n = mon->npend;
  mon->npend = 0;
  for (i = 0; i < n; i++) {
    agentws__pending_alert p = mon->pend[i];
    simple_alert(mon, p.rule, p.firing, p.conn, p.target, p.value,
                 p.threshold);
  }
}

/* ------------------------------------------------------------- sessions */

/* Output a reader is owed: queued in the library, plus what it still has
 * to read from overflow queues and backlogs. */
static uint64_t owed(const agentws__stream *st, const agentws__evq *q,
                     uint64_t pos, int behind) {
  uint64_t n = q != NULL ? q->bytes : 0, first;
  if (st == NULL || !behind)
    return n;
  first = agentws__stream_first(st);
  return n + agentws__stream_bytes_after(st, pos + 1 >= first ? pos
                                                              : first - 1);
}

static uint64_t pending_bytes(const agentws__session *s) {
  const agentws__list *it;
  uint64_t n = agentws__writer_queued(s->conn);
  if (s->user != NULL)
    n += owed(s->user->stream, s->ovf, s->pos, s->behind);
  for (it = s->rooms.next; it != &s->rooms; it = it->next) {
    const agentws__member *mb =
        AGENTWS__CONTAINER_OF(it, agentws__member, snode);
    n += owed(mb->room->stream, mb->ovf, mb->pos, mb->behind);
  }
  return n;
}

static uint64_t slow_threshold(const agentws_manager *m) {
  uint64_t t = m->cfg->mon.queue_alert_bytes;
  return t == UINT64_MAX ? m->cfg->max_queued_bytes / 4 : t;
}

static void scan_session(agentws__monitor *mon, agentws__session *s,
                         uint64_t now) {
  agentws_manager *m = mon->m;
  uint64_t thr = slow_threshold(m), pend, ack_ms;
  const char *user = s->user != NULL ? s->user->id : "";
  int cond;
  if (thr > 0) {
    pend = pending_bytes(s);
    if (!(s->mon_flags & AGENTWS__MON_SLOW) && pend >= thr &&
        pend > s->mon_pending) {
      if (defer(mon, AGENTWS_ALERT_SLOW_CONSUMER, 1, s->conn->id, user,
                (int64_t)pend, (int64_t)thr))
        s->mon_flags |= AGENTWS__MON_SLOW;
    } else if ((s->mon_flags & AGENTWS__MON_SLOW) && pend < thr / 2) {
      if (defer(mon, AGENTWS_ALERT_SLOW_CONSUMER, 0, s->conn->id, user,
                (int64_t)pend, (int64_t)thr))
        s->mon_flags &= (uint8_t)~AGENTWS__MON_SLOW;
    }
    s->mon_pending = pend;
  }
  ack_ms = (uint64_t)m->cfg->mon.ack_timeout_ms;
  if (ack_ms > 0) {
    cond = s->acks_seen && s->written > s->acked && s->unacked_since > 0 &&
           now >= s->unacked_since + ack_ms;
    if (cond && !(s->mon_flags & AGENTWS__MON_UNACKED)) {
      if (defer(mon, AGENTWS_ALERT_UNACKED, 1, s->conn->id, user,
                (int64_t)(s->written - s->acked), (int64_t)ack_ms))
        s->mon_flags |= AGENTWS__MON_UNACKED;
    } else if (!cond && (s->mon_flags & AGENTWS__MON_UNACKED)) {
      if (defer(mon, AGENTWS_ALERT_UNACKED, 0, s->conn->id, user,
                (int64_t)(s->written - s->acked), (int64_t)ack_ms))
        s->mon_flags &= (uint8_t)~AGENTWS__MON_UNACKED;
    }
  }
}

static void scan_conn(agentws__monitor *mon, agentws__conn *c, uint64_t now) {
  agentws_manager *m = mon->m;
  agentws__session *s = c->app;
  uint64_t half = (uint64_t)m->cfg->pong_timeout_ms / 2;
  const char *user = s != NULL && s->user != NULL ? s->user->id : "";
  uint64_t waited = now > c->t_mark ? now - c->t_mark : 0;
  int pinged;
  if (c->state != AGENTWS__CONN_WS)
    return;
  pinged = c->tl == AGENTWS__TL_PINGED && waited >= half;
  if (pinged && !c->mon_half_open) {
    if (defer(mon, AGENTWS_ALERT_HALF_OPEN, 1, c->id, user,
              (int64_t)waited, (int64_t)half))
      c->mon_half_open = 1;
  } else if (!pinged && c->mon_half_open && c->tl != AGENTWS__TL_PINGED) {
    if (defer(mon, AGENTWS_ALERT_HALF_OPEN, 0, c->id, user, 0,
              (int64_t)half))
      c->mon_half_open = 0;
  }
  if (s != NULL && s->welcomed)
    scan_session(mon, s, now);
}

void agentws__monitor_conn_closed(agentws__monitor *mon, void *conn) {
  agentws__conn *c = conn;
  agentws__session *s = c->app;
  const char *user = s != NULL && s->user != NULL ? s->user->id : "";
  int64_t half = mon->m->cfg->pong_timeout_ms / 2;
  /* A loop too busy to scan in time still reports the drop it made. */
  if (c->ping_timed_out && !c->mon_half_open) {
    c->mon_half_open = 1;
    simple_alert(mon, AGENTWS_ALERT_HALF_OPEN, 1, c->id, user,
                 mon->m->cfg->pong_timeout_ms, half);
  }
  if (c->mon_half_open) {
    c->mon_half_open = 0;
    simple_alert(mon, AGENTWS_ALERT_HALF_OPEN, 0, c->id, user, 0, half);
  }
  if (s == NULL)
    return;
  if (s->mon_flags & AGENTWS__MON_SLOW)
    simple_alert(mon, AGENTWS_ALERT_SLOW_CONSUMER, 0, c->id, user, 0,
                 (int64_t)slow_threshold(mon->m));
  if (s->mon_flags & AGENTWS__MON_UNACKED)
    simple_alert(mon, AGENTWS_ALERT_UNACKED, 0, c->id, user, 0,
                 mon->m->cfg->mon.ack_timeout_ms);
  s->mon_flags = 0;
}

/* ----------------------------------------------------------------- scan */

void agentws__monitor_sample(agentws__monitor *mon) {
  agentws_manager *m = mon->m;
  agentws__transport *t = &m->transport;
  uint64_t total = 0;
  size_t i;
  for (i = 0; i < t->conns.cap; i++) {
    agentws__conn *c = t->conns.slots[i].value;
    if (t->conns.slots[i].key != 0)
      total += agentws__writer_queued(c);
  }
  mon->queued_now = total;
  if (total > mon->queued_max)
    mon->queued_max = total;
  agentws__stat_set(&m->stats, AGENTWS_STAT_QUEUED_BYTES, total);
  agentws__stat_set(&m->stats, AGENTWS_STAT_QUEUED_BYTES_MAX,
                    mon->queued_max);
  agentws__stat_set(&m->stats, AGENTWS_STAT_USERS,
                    m->emitter.reg.users.count);
  agentws__stat_set(&m->stats, AGENTWS_STAT_ROOMS,
                    m->emitter.reg.rooms.count);
}

static uint64_t violations(agentws_manager *m) {
  uint64_t rules[AGENTWS__NRULES], outcomes[4], synth, live, n = 0;
  int i;
  agentws__validate_stats(&m->emitter, rules, outcomes, &synth, &live);
  for (i = 0; i < AGENTWS__NRULES; i++)
    n += rules[i];
  return n;
}

static void rates(agentws__monitor *mon, uint64_t now) {
  agentws_manager *m = mon->m;
  const agentws__monitor_cfg *c = &m->cfg->mon;
  uint64_t auth = agentws__stat_read(&m->stats, AGENTWS_STAT_AUTH_TIMEOUT);
  uint64_t viol = violations(m);
  uint64_t dauth = auth - mon->win_auth0, dviol = viol - mon->win_viol0;
  uint64_t vthr = (uint64_t)c->violations_per_s * (uint64_t)c->window_ms /
                  1000u;
  if (vthr == 0)
    vthr = 1;
  if (c->auth_timeouts > 0 && !mon->auth_firing &&
      dauth >= (uint64_t)c->auth_timeouts) {
    mon->auth_firing = 1;
    simple_alert(mon, AGENTWS_ALERT_AUTH_TIMEOUTS, 1, 0, NULL,
                 (int64_t)dauth, c->auth_timeouts);
  }
  if (c->violations_per_s > 0 && !mon->viol_firing && dviol >= vthr) {
    mon->viol_firing = 1;
    simple_alert(mon, AGENTWS_ALERT_VALIDATION_RATE, 1, 0, NULL,
                 (int64_t)dviol, (int64_t)vthr);
  }
  if (now < mon->win_start_ms + (uint64_t)c->window_ms)
    return;
  if (mon->auth_firing && dauth < (uint64_t)c->auth_timeouts) {
    mon->auth_firing = 0;
    simple_alert(mon, AGENTWS_ALERT_AUTH_TIMEOUTS, 0, 0, NULL,
                 (int64_t)dauth, c->auth_timeouts);
  }
  if (mon->viol_firing && dviol < vthr) {
    mon->viol_firing = 0;
    simple_alert(mon, AGENTWS_ALERT_VALIDATION_RATE, 0, 0, NULL,
                 (int64_t)dviol, (int64_t)vthr);
  }
  mon->win_start_ms = now;
  mon->win_auth0 = auth;
  mon->win_viol0 = viol;
}

static void scan(agentws__monitor *mon) {
  agentws_manager *m = mon->m;
  agentws__transport *t = &m->transport;
  uint64_t now = uv_now(m->loop);
  size_t i;
  agentws__monitor_sample(mon);
  for (i = 0; i < t->conns.cap && mon->npend < AGENTWS__MON_PENDING; i++)
    if (t->conns.slots[i].key != 0)
      scan_conn(mon, t->conns.slots[i].value, now);
  fire_deferred(mon);
  rates(mon, now);
}

static void lag(agentws__monitor *mon, uint64_t lag_us) {
  agentws_manager *m = mon->m;
  uint64_t thr = (uint64_t)m->cfg->mon.lag_alert_ms * 1000u;
  if (lag_us > mon->lag_max_us)
    mon->lag_max_us = lag_us;
  agentws__stat_set(&m->stats, AGENTWS_STAT_LOOP_LAG_US, lag_us);
  agentws__stat_set(&m->stats, AGENTWS_STAT_LOOP_LAG_MAX_US, mon->lag_max_us);
  if (thr == 0)
    return;
  if (!mon->lag_firing && lag_us >= thr) {
    mon->lag_firing = 1;
    simple_alert(mon, AGENTWS_ALERT_LOOP_LAG, 1, 0, NULL,
                 (int64_t)(lag_us / 1000), (int64_t)(thr / 1000));
  } else if (mon->lag_firing && lag_us < thr) {
    mon->lag_firing = 0;
    simple_alert(mon, AGENTWS_ALERT_LOOP_LAG, 0, 0, NULL,
                 (int64_t)(lag_us / 1000), (int64_t)(thr / 1000));
  }
}

static void on_probe(uv_timer_t *h) {
  agentws__monitor *mon = h->data;
  uint64_t now_ns = uv_hrtime();
  uint64_t expect = mon->last_ns + mon->probe_ms * 1000000u;
  /* The first probe only starts the clock: the loop may have started
   * long after the manager was made. */
  if (mon->last_ns != 0)
    lag(mon, now_ns > expect ? (now_ns - expect) / 1000u : 0);
  mon->last_ns = now_ns;
  if (uv_now(mon->m->loop) >= mon->scan_due_ms) {
    mon->scan_due_ms = uv_now(mon->m->loop) + mon->interval_ms;
    scan(mon);
  }
}

int agentws__monitor_init(agentws__monitor *mon, agentws_manager *m,
                          uv_loop_t *loop) {
  const agentws__monitor_cfg *c = &m->cfg->mon;
  memset(mon, 0, sizeof(*mon));
  mon->m = m;
  mon->enabled = c->enabled;
  m->stats.hist_on = c->enabled;
  if (!mon->enabled)
    return 0;
  mon->interval_ms = (uint64_t)c->interval_ms;
  mon->probe_ms =
      mon->interval_ms < PROBE_MAX_MS ? mon->interval_ms : PROBE_MAX_MS;
  mon->win_start_ms = uv_now(loop);
  mon->scan_due_ms = uv_now(loop) + mon->interval_ms;
  uv_timer_init(loop, &mon->timer);
  mon->timer.data = mon;
  uv_timer_start(&mon->timer, on_probe, mon->probe_ms, mon->probe_ms);
  uv_unref((uv_handle_t *)&mon->timer);
  mon->timer_on = 1;
  return 0;
}

void agentws__monitor_close(agentws__monitor *mon) {
  if (mon->timer_on)
    uv_close((uv_handle_t *)&mon->timer, NULL);
  mon->timer_on = 0;
}
