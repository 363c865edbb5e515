/* "/broken SCENARIO": simulated agents that misbehave on purpose, so the
 * validator's policies can be seen and tested end to end. */
#ifndef DEMO_BROKEN_H
#define DEMO_BROKEN_H

#include <stddef.h>

#include <agentws.h>

/* The scenario named by |text| ("/broken orphan-tool", ...): its number
 * (>= 1), 0 if |text| is not a /broken command, -1 if the name is unknown. */
int demo_broken_parse(const char *text, size_t len);
/* The list of names, for an error message. */
const char *demo_broken_names(void);

/* Waits between events; nonzero: stop (shutdown). */
typedef int (*demo_pause_fn)(void *ctx);

/* Emits scenario |which| for run |run_id| with tool call |call_id|
 * (worker thread). */
void demo_broken_run(agentws_manager *m, int which, int target,
                     const char *target_id, const char *run_id,
                     const char *call_id, demo_pause_fn pause, void *ctx);

#endif /* DEMO_BROKEN_H */
