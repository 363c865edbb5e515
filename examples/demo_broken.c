/* Misbehaving simulated agents: each scenario breaks the run lifecycle in
 * one way the validator has a rule for (DESIGN.md §12). Every emit's
 * result is logged, so a strict refusal shows in the server's stderr. */
#include <stdio.h>
#include <string.h>

#include "demo_broken.h"

enum {
  ORPHAN_TOOL = 1, AFTER_TERMINAL, OPEN_TOOLS, DUPLICATE_START,
  ERROR_THEN_COMPLETE, STALL, NSCENARIOS
};

static const char *const names[NSCENARIOS] = {
    NULL,           "orphan-tool",         "after-terminal", "open-tools",
    "duplicate-start", "error-then-complete", "stall"};

const char *demo_broken_names(void) {
  return "orphan-tool, after-terminal, open-tools, duplicate-start, "
         "error-then-complete, stall";
}

int demo_broken_parse(const char *text, size_t len) {
  int i;
  if (len < 8 || strncmp(text, "/broken ", 8) != 0)
    return 0;
  text += 8;
  len -= 8;
  for (i = 1; i < NSCENARIOS; i++)
    if (strlen(names[i]) == len && memcmp(names[i], text, len) == 0)
      return i;
  return -1;
}

static void logged(const char *what, const char *run_id, int rv) {
  if (rv != 0)
    fprintf(stderr, "agentws-demo: broken run %s: %s: %s\n", run_id, what,
            agentws_err_name(rv));
}

#define EMIT(what, call) logged(what, run_id, (call))
#define STEP()                                                               \
  do {                                                                       \
    if (pause(ctx))                                                          \
      return;                                                                \
  } while (0)

void demo_broken_run(agentws_manager *m, int which, int target,
                     const char *target_id, const char *run_id,
                     const char *call_id, demo_pause_fn pause, void *ctx) {
  static const char think[] = "Thinking about breaking the rules.";
  if (which != ORPHAN_TOOL)
    EMIT("agent_started",
         agentws_emit_agent_started(m, target, target_id, run_id,
                                    "broken-agent", NULL));
  STEP();
  EMIT("agent_thinking",
       agentws_emit_agent_thinking(m, target, target_id, run_id, think,
                                   sizeof think - 1, NULL));
  STEP();
  switch (which) {
  case ORPHAN_TOOL: /* a result for a call that was never announced */
    EMIT("tool_completed",
         agentws_emit_tool_completed(m, target, target_id, run_id,
                                     "web_search", call_id, 1, 5,
                                     "{\"hits\":1}"));
    break;
  case OPEN_TOOLS: /* completed while a tool call is still open */
  case STALL:      /* and then nothing at all */
    EMIT("tool_executing",
         agentws_emit_tool_executing(m, target, target_id, run_id,
                                     "web_search", call_id, "{\"q\":\"x\"}"));
    if (which == STALL)
      return;
    break;
  case DUPLICATE_START:
    EMIT("agent_started",
         agentws_emit_agent_started(m, target, target_id, run_id,
                                    "broken-agent", NULL));
    break;
  case ERROR_THEN_COMPLETE:
    EMIT("agent_error",
         agentws_emit_agent_error(m, target, target_id, run_id, "tool_failed",
                                  "the tool crashed", "error", 0, NULL));
    break;
  default:
    break;
  }
  STEP();
  EMIT("agent_completed",
       agentws_emit_agent_completed(m, target, target_id, run_id, 42,
                                    "{\"text\":\"done\"}", NULL));
  if (which == AFTER_TERMINAL) {
    STEP();
    EMIT("agent_thinking",
         agentws_emit_agent_thinking(m, target, target_id, run_id, think,
                                     sizeof think - 1, NULL));
    EMIT("tool_executing",
         agentws_emit_tool_executing(m, target, target_id, run_id,
                                     "web_search", call_id, NULL));
  }
}
