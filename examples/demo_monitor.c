/* Monitoring in the demo server: the options of the library's monitor,
 * its log and alert hooks, and custom events that let the web pages show
 * alerts (room "ops") and validator outcomes (the run's own stream)
 * through the public protocol alone. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "demo_monitor.h"
#include "demo_opts.h"

static const char *const names[DEMO_MONITOR_NOPTS] = {
    "http-token",          "no-monitor",          "monitor-interval-ms",
    "alert-loop-lag-ms",   "alert-ack-timeout-ms", "alert-queue-bytes",
    "alert-window-ms",     "alert-violations-per-s",
    "alert-auth-timeouts", "log-level"};

enum { HTTP_TOKEN, NO_MONITOR, INTERVAL, LOOP_LAG, ACK_TIMEOUT, QUEUE_BYTES,
       WINDOW, VIOLATIONS, AUTH_TIMEOUTS, LOG_LEVEL };

void demo_monitor_options(struct option *out, int base) {
  demo_opts_fill(out, names, DEMO_MONITOR_NOPTS, base, NO_MONITOR);
}

void demo_monitor_usage(FILE *f) {
  fprintf(f,
          "  [--http-token T] (Bearer token for /metrics, /healthz, "
          "/readyz)\n"
          "  [--no-monitor] [--monitor-interval-ms N] "
          "[--alert-loop-lag-ms N]\n"
          "  [--alert-ack-timeout-ms N] [--alert-queue-bytes N] "
          "[--alert-window-ms N]\n"
          "  [--alert-violations-per-s N] [--alert-auth-timeouts N]\n"
          "  [--log-level error|warn|info|debug]\n"
          "  (alerts: stderr and custom events \"monitor.alert\" in room "
          "\"" DEMO_MONITOR_ROOM "\")\n");
}

static int log_level(agentws_config *cfg, const char *arg) {
  int i;
  for (i = AGENTWS_LOG_ERROR; i <= AGENTWS_LOG_DEBUG; i++) {
    const char *n = agentws_log_level_name(i);
    if (n != NULL && strcmp(arg, n) == 0)
      return agentws_config_set_log_level(cfg, i);
  }
  fprintf(stderr, "agentws-demo: --log-level error|warn|info|debug\n");
  return -1;
}

int demo_monitor_apply(agentws_config *cfg, int idx, const char *arg) {
  int64_t v = 0;
  int rv;
  if (idx == HTTP_TOKEN)
    rv = agentws_config_set_http_token(cfg, arg);
  else if (idx == NO_MONITOR)
    rv = agentws_config_set_monitor(cfg, 0);
  else if (idx == LOG_LEVEL)
    return log_level(cfg, arg);
  else if (demo_parse_i64(arg, &v) != 0) {
    fprintf(stderr, "agentws-demo: --%s needs a number\n", names[idx]);
    return -1;
  } else {
    switch (idx) {
    case INTERVAL: rv = agentws_config_set_monitor_interval_ms(cfg, v); break;
    case LOOP_LAG: rv = agentws_config_set_alert_loop_lag_ms(cfg, v); break;
    case ACK_TIMEOUT:
      rv = agentws_config_set_alert_ack_timeout_ms(cfg, v);
      break;
    case QUEUE_BYTES:
      /* A negative number must not wrap into a huge threshold. */
      rv = v < 0 ? AGENTWS_ERR_OUT_OF_RANGE
                 : agentws_config_set_alert_queue_bytes(cfg, (uint64_t)v);
      break;
    case WINDOW: rv = agentws_config_set_alert_window_ms(cfg, v); break;
    case VIOLATIONS:
      rv = agentws_config_set_alert_violations_per_s(cfg, v);
      break;
    case AUTH_TIMEOUTS:
      rv = agentws_config_set_alert_auth_timeouts(cfg, v);
      break;
    default: rv = AGENTWS_ERR_INVALID_ARGUMENT; break;
    }
  }
  if (rv != 0)
    fprintf(stderr, "agentws-demo: --%s%s%s: %s\n", names[idx],
            arg != NULL && idx != HTTP_TOKEN ? " " : "",
            arg != NULL && idx != HTTP_TOKEN ? arg : "", /* no secrets */
            agentws_strerror(rv));
  return rv;
}

/* ------------------------------------------------------------ callbacks */

static const char *nz(const char *s) { return s != NULL ? s : ""; }

static void on_log(agentws_manager *m, int level, const char *message,
                   void *ud) {
  const char *name = agentws_log_level_name(level);
  (void)m, (void)ud;
  fprintf(stderr, "agentws-demo: [%s] %s\n", name != NULL ? name : "?",
          nz(message));
}

/* Emits |data| (a JSON object, released here) as custom event |type|;
 * logs a failure. Raw mode (--mode echo) has no custom events and a
 * closing manager takes none: both are expected, so they stay quiet. */
static void emit(agentws_manager *m, int target, const char *target_id,
                 const char *type, const char *run_id, json_t *data) {
  char *s = data != NULL ? json_dumps(data, JSON_COMPACT) : NULL;
  int rv = s != NULL ? agentws_emit_custom(m, target, target_id, type,
                                           run_id, s)
                     : AGENTWS_ERR_NOMEM;
  json_decref(data);
  free(s);
  if (rv != 0 && rv != AGENTWS_ERR_INVALID_STATE)
    fprintf(stderr, "agentws-demo: emit %s to %s failed: %s\n", type,
            target_id, agentws_err_name(rv));
}

static void on_alert(agentws_manager *m, const agentws_alert *a, void *ud) {
  const char *rule = nz(agentws_alert_rule_name(agentws_alert_get_rule(a)));
  const char *sev =
      nz(agentws_severity_name(agentws_alert_get_severity(a)));
  int firing = agentws_alert_is_firing(a) == 1;
  uint64_t conn = agentws_alert_get_conn(a);
  const char *target = nz(agentws_alert_get_target(a));
  const char *run = nz(agentws_alert_get_run(a));
  const char *call = nz(agentws_alert_get_tool_call(a));
  int64_t value = agentws_alert_get_value(a);
  int64_t threshold = agentws_alert_get_threshold(a);
  const char *msg = nz(agentws_alert_get_message(a));
  (void)ud;
  fprintf(stderr,
          "agentws-demo: alert %s (%s) %s: %s [conn %" PRIu64
          " target '%s' run '%s' tool_call '%s' value %" PRId64
          " threshold %" PRId64 "]\n",
          rule, sev, firing ? "firing" : "cleared", msg, conn, target, run,
          call, value, threshold);
  /* json_pack copies and escapes every string (user ids, run ids and
   * messages may hold quotes or backslashes). */
  emit(m, AGENTWS_TARGET_ROOM, DEMO_MONITOR_ROOM, "monitor.alert",
       run[0] != '\0' ? run : NULL,
       json_pack("{s:s,s:s,s:b,s:I,s:s,s:s,s:s,s:I,s:I,s:s}", "rule", rule,
                 "severity", sev, "firing", firing, "conn", (json_int_t)conn,
                 "target", target, "run", run, "tool_call", call, "value",
                 (json_int_t)value, "threshold", (json_int_t)threshold,
                 "message", msg));
}

void demo_monitor_register(agentws_callbacks *cbs) {
  agentws_callbacks_set_on_log(cbs, on_log);
  agentws_callbacks_set_on_alert(cbs, on_alert);
}

/* ----------------------------------------------------------- violations */

void demo_monitor_violation(agentws_manager *m, int rule, int outcome,
                            const char *run_id, int target,
                            const char *target_id, const char *message) {
  if (target_id == NULL || target_id[0] == '\0')
    return;
  emit(m, target, target_id, "validation.violation",
       run_id != NULL && run_id[0] != '\0' ? run_id : NULL,
       json_pack("{s:s,s:s,s:s,s:s}", "rule", nz(agentws_rule_name(rule)),
                 "outcome", nz(agentws_outcome_name(outcome)), "run_id",
                 nz(run_id), "message", nz(message)));
}
