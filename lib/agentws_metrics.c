/*
 * Prometheus text exposition (format 0.0.4) of the counters, gauges and
 * histograms, and the JSON of the health endpoints. Names follow the
 * Prometheus conventions: agentws_ prefix, base units (seconds, bytes),
 * counters ending in _total. Written on a scrape, never on the hot path.
 */
#include "agentws_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agentws_manager.h"

typedef struct w {
  agentws__buf *out;
  const agentws__mem *mem;
  int err;
} w;

static void put(w *o, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void put(w *o, const char *fmt, ...) {
  char line[512];
  va_list ap;
  int n;
  if (o->err)
    return;
  va_start(ap, fmt);
  n = vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof(line) ||
      agentws__buf_append(o->out, o->mem, line, (size_t)n) != 0)
    o->err = 1;
}

static void family(w *o, const char *name, const char *type,
                   const char *help) {
  put(o, "# HELP agentws_%s %s\n# TYPE agentws_%s %s\n", name, help, name,
      type);
}

static void one(w *o, const char *name, const char *type, const char *help,
                uint64_t v) {
  family(o, name, type, help);
  put(o, "agentws_%s %llu\n", name, (unsigned long long)v);
}

/* A family with one label over the consecutive stats |first| .. +n-1; each
 * label value is the stat's name less its |prefix| ("closed_1000" ->
 * "1000"), so the names live in one place (agentws_stats.c). */
static void labeled(w *o, const uint64_t *v, const char *name,
                    const char *type, const char *help, const char *label,
                    int first, int n, const char *prefix) {
  size_t plen = strlen(prefix);
  int i;
  family(o, name, type, help);
  for (i = 0; i < n; i++)
    put(o, "agentws_%s{%s=\"%s\"} %llu\n", name, label,
        agentws_stat_name(first + i) + plen,
        (unsigned long long)v[first + i]);
}

static void histogram(w *o, agentws_manager *m, int h, const char *name,
                      const char *help) {
  const agentws__hist *hi = &m->stats.h[h];
  uint64_t cum = 0, sum;
  int i;
  family(o, name, "histogram", help);
  for (i = 0; i < AGENTWS__HIST_BUCKETS; i++) {
    cum += atomic_load_explicit(&hi->b[i], memory_order_relaxed);
    /* Exposed at each power of two (every 4th fine bucket). */
    if (i == 0 || (i < AGENTWS__HIST_BUCKETS - 1 && i % 4 == 0))
      put(o, "agentws_%s_bucket{le=\"%.12g\"} %llu\n", name,
          (double)agentws__hist_upper(i) / 1e9, (unsigned long long)cum);
  }
  sum = atomic_load_explicit(&hi->sum_ns, memory_order_relaxed);
  put(o, "agentws_%s_bucket{le=\"+Inf\"} %llu\n", name,
      (unsigned long long)cum);
  put(o, "agentws_%s_sum %.9g\n", name, (double)sum / 1e9);
  put(o, "agentws_%s_count %llu\n", name, (unsigned long long)cum);
}

/* Families of one unlabeled sample. */
typedef struct single {
  const char *name, *type, *help;
  int stat;
} single;

static const single singles[] = {
    {"connections_opened_total", "counter",
     "WebSocket handshakes completed.", AGENTWS_STAT_CONNECTIONS_OPENED},
    {"http_requests_total", "counter",
     "Endpoint and host page requests answered.",
     AGENTWS_STAT_HTTP_REQUESTS},
    {"auth_accepted_total", "counter", "Handshakes given a user.",
     AGENTWS_STAT_AUTH_ACCEPTED},
    {"auth_cache_hits_total", "counter",
     "Token verifications answered from the cache.",
     AGENTWS_STAT_AUTH_CACHE_HITS},
    {"auth_cache_misses_total", "counter", "Full token verifications.",
     AGENTWS_STAT_AUTH_CACHE_MISSES},
    {"token_expiring_sent_total", "counter", "token_expiring messages sent.",
     AGENTWS_STAT_TOKEN_EXPIRING_SENT},
    {"token_refreshed_total", "counter", "In-band refreshes accepted.",
     AGENTWS_STAT_TOKEN_REFRESHED},
    {"token_refresh_failed_total", "counter", "In-band refreshes refused.",
     AGENTWS_STAT_TOKEN_REFRESH_FAILED},
    {"token_expired_closes_total", "counter", "Connections closed with 4001.",
     AGENTWS_STAT_TOKEN_EXPIRED_CLOSES},
    {"events_delivered_total", "counter", "Events queued to a connection.",
     AGENTWS_STAT_EVENTS_DELIVERED},
    {"events_written_total", "counter",
     "Delivered events taken by the kernel.", AGENTWS_STAT_EVENTS_WRITTEN},
    {"events_acked_total", "counter",
     "Delivered events acknowledged by clients.", AGENTWS_STAT_EVENTS_ACKED},
    {"events_replayed_total", "counter", "Events delivered from the backlog.",
     AGENTWS_STAT_EVENTS_REPLAYED},
    {"events_coalesced_total", "counter",
     "Thinking deltas merged away for slow connections.",
     AGENTWS_STAT_EVENTS_COALESCED},
    {"events_synthesized_total", "counter",
     "Events made by validator repairs.", AGENTWS_STAT_EVENTS_SYNTHESIZED},
    {"client_messages_refused_total", "counter",
     "Client messages answered with an error message.",
     AGENTWS_STAT_CLIENT_MESSAGES_REFUSED},
    {"slow_consumer_closes_total", "counter",
     "Connections closed with 1013 (slow consumer).",
     AGENTWS_STAT_SLOW_CONSUMER_CLOSES},
    {"received_bytes_total", "counter", "Bytes read from sockets.",
     AGENTWS_STAT_BYTES_RECEIVED},
    {"sent_bytes_total", "counter", "Bytes written to sockets.",
     AGENTWS_STAT_BYTES_SENT},
    {"queued_bytes", "gauge", "Output waiting in the library, all connections.",
     AGENTWS_STAT_QUEUED_BYTES},
    {"queued_bytes_max", "gauge",
     "Highest sampled value of agentws_queued_bytes.",
     AGENTWS_STAT_QUEUED_BYTES_MAX},
    {"users", "gauge", "Users known (with a stream or connection).",
     AGENTWS_STAT_USERS},
    {"rooms", "gauge", "Rooms known.", AGENTWS_STAT_ROOMS},
    {"runs_live", "gauge", "Runs tracked by the validator.",
     AGENTWS_STAT_RUNS_LIVE},
    {"runs_stalled", "gauge", "Live runs stalled now.",
     AGENTWS_STAT_RUNS_STALLED}};

/* Families with one label. */
typedef struct multi {
  const char *name, *type, *help, *label;
  int first, n;
  const char *prefix; /* of the stats' names, left out of the label */
} multi;

#define SPAN(a, b) (a), ((b) - (a) + 1)

static const multi multis[] = {
    {"connections_closed_total", "counter",
     "Opened connections that ended, by close code.", "code",
     SPAN(AGENTWS_STAT_CLOSED_1000, AGENTWS_STAT_CLOSED_OTHER), "closed_"},
    {"handshakes_refused_total", "counter",
     "HTTP requests answered with an error status.", "status",
     SPAN(AGENTWS_STAT_REFUSED_400, AGENTWS_STAT_REFUSED_OTHER), "refused_"},
    {"auth_refused_total", "counter",
     "Handshakes refused by authentication, by reason.", "reason",
     SPAN(AGENTWS_STAT_AUTH_MISSING_TOKEN, AGENTWS_STAT_AUTH_USER_LIMIT),
     "auth_"},
    {"events_emitted_total", "counter",
     "Events published (given a seq), by type.", "type",
     SPAN(AGENTWS_STAT_EMITTED_AGENT_STARTED, AGENTWS_STAT_EMITTED_CUSTOM),
     "emitted_"},
    {"events_dropped_total", "counter",
     "Events that reached nobody, by reason.", "reason",
     SPAN(AGENTWS_STAT_DROPPED_INVALID, AGENTWS_STAT_DROPPED_MISSED),
     "dropped_"},
    {"validation_violations_total", "counter",
     "Validation violations, by rule.", "rule",
     SPAN(AGENTWS_STAT_VIOLATION_SCHEMA, AGENTWS_STAT_VIOLATION_RUN_LIMIT),
     "violation_"},
    {"validation_outcomes_total", "counter", "What became of violations.",
     "outcome",
     SPAN(AGENTWS_STAT_VIOLATIONS_WARNED, AGENTWS_STAT_VIOLATIONS_DROPPED),
     "violations_"},
    {"alerts_total", "counter", "Alerts fired, by rule.", "rule",
     SPAN(AGENTWS_STAT_ALERTS_RUN_STALLED,
          AGENTWS_STAT_ALERTS_VALIDATION_RATE),
     "alerts_"},
    {"alerts_active", "gauge", "Alerts firing now, by rule.", "rule",
     SPAN(AGENTWS_STAT_ACTIVE_RUN_STALLED,
          AGENTWS_STAT_ACTIVE_VALIDATION_RATE),
     "active_"}};

#define N(a) (sizeof(a) / sizeof((a)[0]))

int agentws__metrics_write(agentws_manager *m, agentws__buf *out) {
  uint64_t v[AGENTWS__NSTATS];
  agentws__transport *t = &m->transport;
  size_t i;
  w o;
  o.out = out;
  o.mem = m->mem;
  o.err = 0;
  agentws__stats_read(m, v);
  family(&o, "build_info", "gauge", "The library's version.");
  put(&o, "agentws_build_info{version=\"%s\"} 1\n", AGENTWS_VERSION_STRING);
  family(&o, "uptime_seconds", "gauge", "Time since the manager started.");
  put(&o, "agentws_uptime_seconds %.3f\n",
      (double)(uv_now(t->loop) - t->started_ms) / 1e3);
  one(&o, "connections", "gauge", "Open WebSocket connections.",
      v[AGENTWS_STAT_CONNECTIONS]);
  one(&o, "tcp_connections", "gauge",
      "Open TCP connections, HTTP phase included.", t->num_conns);
  for (i = 0; i < N(singles); i++)
    one(&o, singles[i].name, singles[i].type, singles[i].help,
        v[singles[i].stat]);
  for (i = 0; i < N(multis); i++)
    labeled(&o, v, multis[i].name, multis[i].type, multis[i].help,
            multis[i].label, multis[i].first, multis[i].n,
            multis[i].prefix);
  family(&o, "loop_lag_seconds", "gauge", "Event loop lag, last probe.");
  put(&o, "agentws_loop_lag_seconds %.6f\n",
      (double)v[AGENTWS_STAT_LOOP_LAG_US] / 1e6);
  family(&o, "loop_lag_max_seconds", "gauge", "Highest event loop lag.");
  put(&o, "agentws_loop_lag_max_seconds %.6f\n",
      (double)v[AGENTWS_STAT_LOOP_LAG_MAX_US] / 1e6);
  histogram(&o, m, AGENTWS_HIST_EMIT_TO_WRITE, "emit_to_write_seconds",
            "Time from emit to the kernel taking the event.");
  histogram(&o, m, AGENTWS_HIST_EMIT_TO_ACK, "emit_to_ack_seconds",
            "Time from emit to the client's acknowledgement.");
  histogram(&o, m, AGENTWS_HIST_HANDSHAKE, "handshake_duration_seconds",
            "Time from TCP accept to the 101 response.");
  return o.err ? AGENTWS_ERR_NOMEM : 0;
}

int agentws__healthz_write(agentws_manager *m, agentws__buf *out,
                           int *status) {
  agentws__transport *t = &m->transport;
  w o;
  o.out = out;
  o.mem = m->mem;
  o.err = 0;
  *status = t->closing ? 503 : 200;
  put(&o,
      "{\"status\":\"%s\",\"connections\":%llu,\"websockets\":%llu,"
      "\"uptime_ms\":%llu}\n",
      t->closing ? "closing" : "ok", (unsigned long long)t->num_conns,
      (unsigned long long)t->num_ws,
      (unsigned long long)(uv_now(t->loop) - t->started_ms));
  return o.err ? AGENTWS_ERR_NOMEM : 0;
}

int agentws__readyz_write(agentws_manager *m, agentws__buf *out,
                          int *status) {
  const agentws__monitor_cfg *c = &m->cfg->mon;
  uint64_t lag_us = agentws__stat_read(&m->stats, AGENTWS_STAT_LOOP_LAG_US);
  uint64_t queued = m->mon.queued_now;
  int closing = m->transport.closing || m->closing;
  int lagging = lag_us >= (uint64_t)c->ready_lag_ms * 1000u;
  int pressure = c->ready_queued_bytes > 0 && queued > c->ready_queued_bytes;
  w o;
  o.out = out;
  o.mem = m->mem;
  o.err = 0;
  *status = closing || lagging || pressure ? 503 : 200;
  put(&o, "{\"status\":\"%s\"", *status == 200 ? "ready" : "not_ready");
  if (*status != 200)
    put(&o, ",\"reasons\":[%s%s%s%s%s]", closing ? "\"closing\"" : "",
        closing && (lagging || pressure) ? "," : "",
        lagging ? "\"loop_lag\"" : "", lagging && pressure ? "," : "",
        pressure ? "\"queue_pressure\"" : "");
  put(&o, ",\"loop_lag_ms\":%.3f,\"queued_bytes\":%llu}\n",
      (double)lag_us / 1e3, (unsigned long long)queued);
  return o.err ? AGENTWS_ERR_NOMEM : 0;
}
