/* The monitor, endpoint and log options of agentws_config. */
#include <string.h>

#include "agentws_config.h"

void agentws__monitor_cfg_init(agentws__monitor_cfg *c) {
  memset(c, 0, sizeof(*c));
  c->enabled = 1;
  c->interval_ms = 1000;
  c->lag_alert_ms = 250;
  c->ack_timeout_ms = 30000;
  c->queue_alert_bytes = UINT64_MAX;
  c->auth_timeouts = 1;
  c->violations_per_s = 10;
  c->window_ms = 10000;
  c->metrics = 1;
  c->readyz = 1;
  c->ready_lag_ms = 1000;
  c->ready_queued_bytes = (uint64_t)1 << 30;
  c->log_level = AGENTWS_LOG_INFO;
}

int agentws__monitor_cfg_copy(agentws__monitor_cfg *dst,
                              const agentws__monitor_cfg *src,
                              const agentws__mem *mem) {
  *dst = *src;
  dst->http_token = NULL;
  if (src->http_token != NULL) {
    dst->http_token =
        agentws__mem_strndup(mem, src->http_token, strlen(src->http_token));
    if (dst->http_token == NULL)
      return AGENTWS_ERR_NOMEM;
  }
  return 0;
}

void agentws__monitor_cfg_free(agentws__monitor_cfg *c,
                               const agentws__mem *mem) {
  agentws__mem_free(mem, c->http_token);
  c->http_token = NULL;
}

static int in(int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; }

int agentws_config_set_monitor(agentws_config *cfg, int enabled) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (enabled != 0 && enabled != 1)
    return AGENTWS_ERR_OUT_OF_RANGE;
  cfg->mon.enabled = enabled;
  return 0;
}

int agentws_config_set_monitor_interval_ms(agentws_config *cfg, int64_t ms) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (!in(ms, 10, 60000))
    return AGENTWS_ERR_OUT_OF_RANGE;
  cfg->mon.interval_ms = ms;
  return 0;
}

int agentws_config_set_alert_loop_lag_ms(agentws_config *cfg, int64_t ms) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (ms != 0 && !in(ms, 1, 600000))
    return AGENTWS_ERR_OUT_OF_RANGE;
  cfg->mon.lag_alert_ms = ms;
  return 0;
}

int agentws_config_set_alert_ack_timeout_ms(agentws_config *cfg, int64_t ms) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (ms != 0 && !in(ms, 10, 86400000))
    return AGENTWS_ERR_OUT_OF_RANGE;
  cfg->mon.ack_timeout_ms = ms;
  return 0;
}

int agentws_config_set_alert_queue_bytes(agentws_config *cfg,
                                         uint64_t bytes) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (bytes != 0 && (bytes < 1024 || bytes > ((uint64_t)1 << 32)))
    return AGENTWS_ERR_OUT_OF_RANGE;
  cfg->mon.queue_alert_bytes = bytes;
  return 0;
}

int agentws_config_set_alert_auth_timeouts(agentws_config *cfg, int64_t n) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (!in(n, 0, 1000000))
    return AGENTWS_ERR_OUT_OF_RANGE;
  cfg->mon.auth_timeouts = n;
  return 0;
}

int agentws_config_set_alert_violations_per_s(agentws_config *cfg,
                                              int64_t n) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (!in(n, 0, 10000000))
    return AGENTWS_ERR_OUT_OF_RANGE;
  cfg->mon.violations_per_s = n;
  return 0;
}

int agentws_config_set_alert_window_ms(agentws_config *cfg, int64_t ms) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (!in(ms, 100, 3600000))
    return AGENTWS_ERR_OUT_OF_RANGE;
  cfg->mon.window_ms = ms;
  return 0;
}

int agentws_config_set_metrics(agentws_config *cfg, int enabled) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (enabled != 0 && enabled != 1)
    return AGENTWS_ERR_OUT_OF_RANGE;
  cfg->mon.metrics = enabled;
  return 0;
}

int agentws_config_set_readyz(agentws_config *cfg, int enabled) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (enabled != 0 && enabled != 1)
    return AGENTWS_ERR_OUT_OF_RANGE;
  cfg->mon.readyz = enabled;
  return 0;
}

int agentws_config_set_http_token(agentws_config *cfg, const char *token) {
  size_t n, i;
  char *dup = NULL;
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  n = token != NULL ? strlen(token) : 0;
  if (n > 1024)
    return AGENTWS_ERR_OUT_OF_RANGE;
  for (i = 0; i < n; i++)
    if ((unsigned char)token[i] <= 0x20 || (unsigned char)token[i] >= 0x7f)
      return AGENTWS_ERR_INVALID_ARGUMENT;
  if (n > 0) {
    dup = agentws__mem_strndup(cfg->mem, token, n);
    if (dup == NULL)
      return AGENTWS_ERR_NOMEM;
  }
  agentws__mem_free(cfg->mem, cfg->mon.http_token);
  cfg->mon.http_token = dup;
  return 0;
}

int agentws_config_set_ready_max_loop_lag_ms(agentws_config *cfg,
                                             int64_t ms) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (!in(ms, 1, 600000))
    return AGENTWS_ERR_OUT_OF_RANGE;
  cfg->mon.ready_lag_ms = ms;
  return 0;
}

int agentws_config_set_ready_max_queued_bytes(agentws_config *cfg,
                                              uint64_t bytes) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (bytes != 0 && (bytes < 1024 || bytes > ((uint64_t)1 << 40)))
    return AGENTWS_ERR_OUT_OF_RANGE;
  cfg->mon.ready_queued_bytes = bytes;
  return 0;
}

int agentws_config_set_log_level(agentws_config *cfg, int level) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (level < AGENTWS_LOG_ERROR || level > AGENTWS_LOG_DEBUG)
    return AGENTWS_ERR_OUT_OF_RANGE;
  cfg->mon.log_level = level;
  return 0;
}

const char *agentws_log_level_name(int level) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  return level >= 0 && level <= AGENTWS_LOG_DEBUG ? names[level] : NULL;
}
