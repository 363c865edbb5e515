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

/* Stores |v| in |*field| if it is in [lo, hi] (or 0 when |zero_ok|). */
static int set_i64(agentws_config *cfg, int64_t *field, int64_t v,
                   int64_t lo, int64_t hi, int zero_ok) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (!(v >= lo && v <= hi) && !(zero_ok && v == 0))
    return AGENTWS_ERR_OUT_OF_RANGE;
  *field = v;
  return 0;
}

/* The same for 0/1 switches. */
static int set_flag(agentws_config *cfg, int *field, int v) {
  if (cfg == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (v != 0 && v != 1)
    return AGENTWS_ERR_OUT_OF_RANGE;
  *field = v;
  return 0;
}

int agentws_config_set_monitor(agentws_config *cfg, int enabled) {
  return set_flag(cfg, cfg != NULL ? &cfg->mon.enabled : NULL, enabled);
}

int agentws_config_set_monitor_interval_ms(agentws_config *cfg, int64_t ms) {
  return set_i64(cfg, cfg != NULL ? &cfg->mon.interval_ms : NULL, ms, 10,
                 60000, 0);
}

int agentws_config_set_alert_loop_lag_ms(agentws_config *cfg, int64_t ms) {
  return set_i64(cfg, cfg != NULL ? &cfg->mon.lag_alert_ms : NULL, ms, 1,
                 600000, 1);
}

int agentws_config_set_alert_ack_timeout_ms(agentws_config *cfg, int64_t ms) {
  return set_i64(cfg, cfg != NULL ? &cfg->mon.ack_timeout_ms : NULL, ms, 10,
                 86400000, 1);
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
  return set_i64(cfg, cfg != NULL ? &cfg->mon.auth_timeouts : NULL, n, 0,
                 1000000, 0);
}

int agentws_config_set_alert_violations_per_s(agentws_config *cfg,
                                              int64_t n) {
  return set_i64(cfg, cfg != NULL ? &cfg->mon.violations_per_s : NULL, n, 0,
                 10000000, 0);
}

int agentws_config_set_alert_window_ms(agentws_config *cfg, int64_t ms) {
  return set_i64(cfg, cfg != NULL ? &cfg->mon.window_ms : NULL, ms, 100,
                 3600000, 0);
}

int agentws_config_set_metrics(agentws_config *cfg, int enabled) {
  return set_flag(cfg, cfg != NULL ? &cfg->mon.metrics : NULL, enabled);
}

int agentws_config_set_readyz(agentws_config *cfg, int enabled) {
  return set_flag(cfg, cfg != NULL ? &cfg->mon.readyz : NULL, enabled);
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
  return set_i64(cfg, cfg != NULL ? &cfg->mon.ready_lag_ms : NULL, ms, 1,
                 600000, 0);
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
