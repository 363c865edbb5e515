/* The demo server's monitoring: monitor and alert options (--alert-*,
 * --monitor-*, --http-token, --log-level), the library's log lines and
 * alerts on stderr, and alerts and validation violations as custom events
 * for the web pages (the dashboard follows room "ops"; the chat page shows
 * what the validator did to a run). */
#ifndef DEMO_MONITOR_H
#define DEMO_MONITOR_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include <agentws.h>

/* The room alerts are emitted to ("monitor.alert" events). */
#define DEMO_MONITOR_ROOM "ops"

/* getopt_long entries; |base| is the first option value they use. */
#define DEMO_MONITOR_NOPTS 10
void demo_monitor_options(struct option *out, int base);
void demo_monitor_usage(FILE *f);
/* Applies option |idx| (0 .. DEMO_MONITOR_NOPTS-1): 0, or prints why not.
 * |arg| is NULL for options without an argument. */
int demo_monitor_apply(agentws_config *cfg, int idx, const char *arg);

/* Registers on_log and on_alert, which use no user_data. In --mode echo
 * (raw messages) alerts go to stderr only. */
void demo_monitor_register(agentws_callbacks *cbs);

/* Tells the run's user (or room) what the validator did: a custom event
 * "validation.violation" {rule, outcome, run_id, message}. Loop thread,
 * from on_violation. */
void demo_monitor_violation(agentws_manager *m, int rule, int outcome,
                            const char *run_id, int target,
                            const char *target_id, const char *message);

#endif /* DEMO_MONITOR_H */
