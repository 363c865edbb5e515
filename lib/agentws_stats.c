/* The public snapshot of a manager's counters. */
#include "agentws_stats.h"

#include "agentws_manager.h"

struct agentws_stats {
  const agentws__mem *mem;
  uint64_t v[AGENTWS__NSTATS];
  uint64_t hb[AGENTWS__NHIST][AGENTWS__HIST_BUCKETS]; /* bucket counts */
  uint64_t hsum[AGENTWS__NHIST];                      /* ns */
};

static const char *const names[AGENTWS__NSTATS] = {
    "auth_accepted",        "auth_missing_token",     "auth_malformed",
    "auth_bad_algorithm",   "auth_unknown_key",       "auth_bad_signature",
    "auth_expired",         "auth_not_yet_valid",     "auth_bad_issuer",
    "auth_bad_audience",    "auth_bad_claims",        "auth_forbidden",
    "auth_hook_refused",    "auth_timeout",           "auth_user_limit",
    "auth_cache_hits",      "auth_cache_misses",      "token_expiring_sent",
    "token_refreshed",      "token_refresh_failed",   "token_expired_closes",
    "violation_schema",     "violation_run_not_started",
    "violation_duplicate_start", "violation_orphan_tool_result",
    "violation_duplicate_tool_call", "violation_event_after_terminal",
    "violation_open_tools_at_end", "violation_run_stalled",
    "violation_tool_timeout", "violation_run_limit",
    "violations_warned",    "violations_refused",     "violations_repaired",
    "violations_dropped",   "events_synthesized",     "runs_live",
    "client_messages_refused",
    "connections",          "connections_opened",     "connections_closed",
    "closed_1000", "closed_1001", "closed_1002", "closed_1005",
    "closed_1006", "closed_1007", "closed_1008", "closed_1009",
    "closed_1011", "closed_1013", "closed_4001", "closed_other",
    "refused_400", "refused_401", "refused_403", "refused_404",
    "refused_405", "refused_408", "refused_426", "refused_429",
    "refused_431", "refused_500", "refused_503", "refused_505",
    "refused_other",
    "emitted_agent_started", "emitted_agent_thinking",
    "emitted_tool_executing", "emitted_tool_completed",
    "emitted_agent_completed", "emitted_agent_error", "emitted_custom",
    "events_delivered",     "events_written",         "events_acked",
    "events_replayed",      "events_coalesced",
    "dropped_invalid",      "dropped_validation",     "dropped_shutdown",
    "dropped_nomem",        "dropped_missed",         "slow_consumer_closes",
    "bytes_received",       "bytes_sent",             "queued_bytes",
    "queued_bytes_max",     "users",                  "rooms",
    "runs_stalled",         "loop_lag_us",            "loop_lag_max_us",
    "alerts_run_stalled",   "alerts_tool_timeout",    "alerts_unacked",
    "alerts_slow_consumer", "alerts_half_open",       "alerts_loop_lag",
    "alerts_auth_timeouts", "alerts_validation_rate",
    "active_run_stalled",   "active_tool_timeout",    "active_unacked",
    "active_slow_consumer", "active_half_open",       "active_loop_lag",
    "active_auth_timeouts", "active_validation_rate",
    "http_requests"};

static const char *const hist_names[AGENTWS__NHIST] = {
    "emit_to_write", "emit_to_ack", "handshake"};

int agentws_stats_new(agentws_stats **out) {
  const agentws__mem *mem = agentws__mem_default();
  agentws_stats *st;
  if (out == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  st = agentws__mem_calloc(mem, 1, sizeof(*st));
  if (st == NULL)
    return AGENTWS_ERR_NOMEM;
  st->mem = mem;
  *out = st;
  return 0;
}

void agentws_stats_free(agentws_stats *st) {
  if (st != NULL)
    agentws__mem_free(st->mem, st);
}

void agentws__stats_read(agentws_manager *m, uint64_t *v) {
  int i;
  for (i = 0; i < AGENTWS__NSTATS; i++)
    v[i] = atomic_load_explicit(&m->stats.v[i], memory_order_relaxed);
  /* The validator counts under the emit lock, from any thread. */
  agentws__validate_stats(&m->emitter, &v[AGENTWS_STAT_VIOLATION_SCHEMA],
                          &v[AGENTWS_STAT_VIOLATIONS_WARNED],
                          &v[AGENTWS_STAT_EVENTS_SYNTHESIZED],
                          &v[AGENTWS_STAT_RUNS_LIVE]);
  v[AGENTWS_STAT_CONNECTIONS] = v[AGENTWS_STAT_CONNECTIONS_OPENED] -
                                v[AGENTWS_STAT_CONNECTIONS_CLOSED];
}

int agentws_manager_get_stats(agentws_manager *m, agentws_stats *st) {
  int i, j;
  if (m == NULL || st == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  agentws__stats_read(m, st->v);
  for (i = 0; i < AGENTWS__NHIST; i++) {
    for (j = 0; j < AGENTWS__HIST_BUCKETS; j++)
      st->hb[i][j] =
          atomic_load_explicit(&m->stats.h[i].b[j], memory_order_relaxed);
    st->hsum[i] =
        atomic_load_explicit(&m->stats.h[i].sum_ns, memory_order_relaxed);
  }
  return 0;
}

uint64_t agentws_stats_get(const agentws_stats *st, int stat) {
  if (st == NULL || stat < 0 || stat >= AGENTWS__NSTATS)
    return 0;
  return st->v[stat];
}

const char *agentws_stat_name(int stat) {
  return stat >= 0 && stat < AGENTWS__NSTATS ? names[stat] : NULL;
}

uint64_t agentws__hist_upper(int i) {
  int k, sub;
  if (i <= 0)
    return (uint64_t)1 << AGENTWS__HIST_MIN_SHIFT;
  if (i >= AGENTWS__HIST_BUCKETS - 1)
    return UINT64_MAX;
  k = AGENTWS__HIST_MIN_SHIFT + (i - 1) / 4;
  sub = (i - 1) % 4;
  return ((uint64_t)1 << k) + (uint64_t)(sub + 1) * ((uint64_t)1 << (k - 2));
}

const char *agentws_hist_name(int hist) {
  return hist >= 0 && hist < AGENTWS__NHIST ? hist_names[hist] : NULL;
}

uint64_t agentws_stats_hist_count(const agentws_stats *st, int hist) {
  uint64_t n = 0;
  int j;
  if (st == NULL || hist < 0 || hist >= AGENTWS__NHIST)
    return 0;
  for (j = 0; j < AGENTWS__HIST_BUCKETS; j++)
    n += st->hb[hist][j];
  return n;
}

uint64_t agentws_stats_hist_sum_ns(const agentws_stats *st, int hist) {
  if (st == NULL || hist < 0 || hist >= AGENTWS__NHIST)
    return 0;
  return st->hsum[hist];
}

int agentws_stats_hist_quantile(const agentws_stats *st, int hist, double q,
                                uint64_t *ns) {
  uint64_t n, rank, seen = 0;
  int j;
  if (st == NULL || ns == NULL || hist < 0 || hist >= AGENTWS__NHIST)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (!(q >= 0.0 && q <= 1.0))
    return AGENTWS_ERR_OUT_OF_RANGE;
  *ns = 0;
  n = agentws_stats_hist_count(st, hist);
  if (n == 0)
    return 0;
  rank = (uint64_t)(q * (double)n + 0.999999);
  if (rank == 0)
    rank = 1;
  for (j = 0; j < AGENTWS__HIST_BUCKETS; j++) {
    seen += st->hb[hist][j];
    if (seen >= rank)
      break;
  }
  /* The open top bucket reports its lower bound. */
  *ns = j >= AGENTWS__HIST_BUCKETS - 1 ? agentws__hist_upper(j - 1)
                                       : agentws__hist_upper(j);
  return 0;
}

const char *agentws_rule_name(int rule) { return agentws__rule_name(rule); }

const char *agentws_outcome_name(int outcome) {
  static const char *const names[] = {"warned", "refused", "repaired",
                                      "dropped"};
  return outcome >= 0 && outcome < 4 ? names[outcome] : NULL;
}
