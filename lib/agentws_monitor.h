/*
 * Monitor: gauges, loop lag, and the detectors of silent failures (stalled
 * runs and tool calls come from the validator; slow, unacking and half-open
 * connections from a periodic scan; loop lag from a probe timer; auth
 * timeouts and validation failures as rates over a window). Each alert
 * fires once when its condition starts and once when it clears. Loop
 * thread only; it never blocks and never allocates per event.
 */
#ifndef AGENTWS_MONITOR_H
#define AGENTWS_MONITOR_H

#include <stdint.h>
#include <uv.h>

#include "agentws.h"

#define AGENTWS__NALERTS (AGENTWS_ALERT_VALIDATION_RATE + 1)

/* Per-connection alert bits (agentws__session.mon_flags). */
#define AGENTWS__MON_SLOW 1u
#define AGENTWS__MON_UNACKED 2u

struct agentws_alert {
  int rule;              /* AGENTWS_ALERT_* */
  int severity;          /* AGENTWS_SEVERITY_* */
  int firing;            /* 1 fired, 0 cleared */
  uint64_t conn;         /* 0: none */
  const char *target;    /* "" if none */
  const char *run;       /* "" if none */
  const char *tool_call; /* "" if none */
  int64_t value, threshold;
  const char *message;
};

/* An alert found during a scan, fired after it (host code may close
 * connections, so none runs while the registry is being walked). */
typedef struct agentws__pending_alert {
  int rule, firing;
  uint64_t conn;
  int64_t value, threshold;
  char target[256];
} agentws__pending_alert;

#define AGENTWS__MON_PENDING 256 /* per scan; the rest waits a tick */

typedef struct agentws__monitor {
  struct agentws_manager *m;
  int enabled;              /* config monitor */
  uv_timer_t timer;         /* lag probe; every interval also the scan */
  int timer_on;
  uint64_t probe_ms;        /* probe period: min(interval, 100 ms) */
  uint64_t interval_ms;     /* scan period */
  uint64_t last_ns;         /* hrtime of the previous probe; 0: none */
  uint64_t scan_due_ms;     /* loop time of the next scan */
  uint64_t lag_max_us;
  int lag_firing;
  uint64_t win_start_ms;    /* rate window start (loop time) */
  uint64_t win_auth0;       /* AUTH_TIMEOUT counter at window start */
  uint64_t win_viol0;       /* violations at window start */
  int auth_firing, viol_firing;
  uint64_t queued_max;      /* highest sampled queued total */
  uint64_t queued_now;      /* last sampled queued total */
  int64_t active[AGENTWS__NALERTS]; /* firing now, by rule */
  agentws__pending_alert pend[AGENTWS__MON_PENDING];
  size_t npend;
} agentws__monitor;

int agentws__monitor_init(agentws__monitor *mon, struct agentws_manager *m,
                          uv_loop_t *loop);
void agentws__monitor_close(agentws__monitor *mon);

/* Fires or clears |a| (counters, log line, on_alert). */
void agentws__monitor_alert(agentws__monitor *mon, const agentws_alert *a);
/* Publishes the gauges now (before /metrics and /readyz). */
void agentws__monitor_sample(agentws__monitor *mon);
/* A connection is going away: clears its alerts. */
void agentws__monitor_conn_closed(agentws__monitor *mon, void *conn);

/* Logs at |level| if a hook is set and the level is enabled. */
void agentws__log(struct agentws_manager *m, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif /* AGENTWS_MONITOR_H */
