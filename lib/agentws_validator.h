/*
 * The run lifecycle validator (DESIGN.md §8): a state machine per run_id
 * that sees every lifecycle event before it is queued, decides by policy
 * (off / warn / strict / repair) what happens to a violation, synthesizes
 * the events a repair needs, and closes stalled runs and tool calls that
 * never got a result. All of it runs under the emitter's queue lock, so the
 * order it validates is the order clients see. Bounded: at most max_runs
 * live and max_runs ended runs, ended ones forgotten after keep_ms.
 */
#ifndef AGENTWS_VALIDATOR_H
#define AGENTWS_VALIDATOR_H

#include <stddef.h>
#include <stdint.h>

#include "agentws.h"
#include "agentws_codec.h"
#include "agentws_list.h"
#include "agentws_mem.h"
#include "agentws_strmap.h"

#define AGENTWS__NRULES (AGENTWS_RULE_RUN_LIMIT + 1)

/* What happens to a checked event. */
enum {
  AGENTWS__V_DELIVER, /* queue it (after any synthesized events) */
  AGENTWS__V_REFUSE,  /* strict: emit fails with AGENTWS_ERR_VALIDATION */
  AGENTWS__V_DROP     /* repair: swallowed, emit returns 0 */
};

/* Queues one synthesized event (built and queued by the emitter, under the
 * same lock). Returns 0 or an error (the repair is then incomplete). */
typedef int (*agentws__synth_fn)(void *ctx, const agentws__emit_args *a);

/* One violation for the host's hook, delivered on the loop thread. */
typedef struct agentws__vreport {
  int alert;      /* 0: a violation; 1: alert fired, 2: cleared */
  int rule;       /* AGENTWS_RULE_* (AGENTWS_ALERT_* for alerts) */
  int outcome;    /* AGENTWS_OUTCOME_* */
  char *tool_call; /* alerts: owned, or NULL */
  int64_t value;  /* alerts: ms quiet / waiting */
  int64_t threshold;
  char *run_id;   /* owned */
  char *target_id; /* owned */
  int target;
  char message[160];
  struct agentws__vreport *next;
} agentws__vreport;

typedef struct agentws__validator {
  const agentws__mem *mem;
  int policy[AGENTWS__NRULES]; /* AGENTWS_VALIDATION_* per rule */
  int enabled;                 /* any rule is not off */
  int alerts;                  /* report run_stalled / tool_timeout alerts */
  int64_t stall_ms;            /* run with no event this long; 0 = off */
  int64_t tool_timeout_ms;     /* tool call without result; 0 = off */
  size_t max_runs;             /* live runs (and ended runs) kept */
  int64_t keep_ms;             /* ended runs remembered this long */
  agentws__strmap runs;        /* run_id -> run */
  agentws__list live;          /* live runs, least recently active first */
  agentws__list ended;         /* ended runs, oldest first */
  agentws__list calls;         /* open tool calls, oldest first */
  size_t nlive, nended;
  agentws__vreport *r_head, *r_tail; /* for the loop thread */
  size_t nreports;             /* queued, at most 1024 */
  uint64_t reports_dropped;    /* over that bound: counted only */
  uint64_t by_rule[AGENTWS__NRULES];
  uint64_t by_outcome[4];      /* AGENTWS_OUTCOME_* */
} agentws__validator;

/* |policy| for every rule; see agentws_config_set_validation*. */
void agentws__validator_init(agentws__validator *v, const agentws__mem *mem,
                             const int *policy, int64_t stall_ms,
                             int64_t tool_timeout_ms, size_t max_runs,
                             int64_t keep_ms);
void agentws__validator_free(agentws__validator *v);

/*
 * Checks |a| at |now_ms| (a monotonic clock); synthesized events go out
 * through |synth| before it. Returns AGENTWS__V_*, or AGENTWS_ERR_NOMEM
 * (the event is then refused). Custom events are not checked.
 */
int agentws__validator_check(agentws__validator *v,
                             const agentws__emit_args *a, uint64_t now_ms,
                             agentws__synth_fn synth, void *ctx);

/* Stalled runs and tool timeouts at |now_ms|; the earliest time anything
 * can next expire (0: nothing pending). */
uint64_t agentws__validator_sweep(agentws__validator *v, uint64_t now_ms,
                                  agentws__synth_fn synth, void *ctx);

/* Takes the queued reports (a list to free with ..._reports_free). */
agentws__vreport *agentws__validator_take_reports(agentws__validator *v);
void agentws__validator_reports_free(const agentws__mem *mem,
                                     agentws__vreport *r);

const char *agentws__rule_name(int rule);

#endif /* AGENTWS_VALIDATOR_H */
