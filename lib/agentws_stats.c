/* The public snapshot of a manager's counters. */
#include "agentws_stats.h"

#include "agentws_manager.h"

struct agentws_stats {
  const agentws__mem *mem;
  uint64_t v[AGENTWS__NSTATS];
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
    "client_messages_refused"};

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

int agentws_manager_get_stats(agentws_manager *m, agentws_stats *st) {
  int i;
  if (m == NULL || st == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  for (i = 0; i < AGENTWS__NSTATS; i++)
    st->v[i] = atomic_load_explicit(&m->stats.v[i], memory_order_relaxed);
  /* The validator counts under the emit lock, from any thread. */
  agentws__validate_stats(&m->emitter, &st->v[AGENTWS_STAT_VIOLATION_SCHEMA],
                          &st->v[AGENTWS_STAT_VIOLATIONS_WARNED],
                          &st->v[AGENTWS_STAT_EVENTS_SYNTHESIZED],
                          &st->v[AGENTWS_STAT_RUNS_LIVE]);
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

const char *agentws_rule_name(int rule) { return agentws__rule_name(rule); }

const char *agentws_outcome_name(int outcome) {
  static const char *const names[] = {"warned", "refused", "repaired",
                                      "dropped"};
  return outcome >= 0 && outcome < 4 ? names[outcome] : NULL;
}
