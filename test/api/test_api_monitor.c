/*
 * API tests of the monitor: /metrics, /healthz, /readyz and their bearer
 * token; counters and histograms moving in a real scenario; every detector
 * firing and clearing (run_stalled, tool_timeout, unacked, slow_consumer,
 * half_open, loop_lag, auth_timeouts, validation_rate); the log hook; the
 * host's own pages through on_http; the monitor switched off. Real loop,
 * real loopback sockets, bounded waits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"
#include "client.h"
#include "harness.h"

#define USER AGENTWS_TARGET_USER

/* ------------------------------------------------------------ recorders */

typedef struct alert_rec {
  int rule, severity, firing;
  uint64_t conn;
  char target[64], run[64], tool_call[64], message[160];
  int64_t value, threshold;
} alert_rec;

#define MAX_ALERTS 64
#define MAX_LOGS 256

static struct {
  alert_rec alerts[MAX_ALERTS];
  int nalerts;
  char logs[MAX_LOGS][200];
  int log_levels[MAX_LOGS];
  int nlogs;
  int http_calls;
  int http_answer;   /* 0: answer 200; 1: do not answer; 2: return 1 */
  int http_rv;       /* agentws_http_respond's result inside the hook */
  int http_rv2;      /* ... of a second answer */
  char http_method[16], http_target[64], http_header[64];
  size_t http_nheaders;
  char http_last_name[32], http_last_value[32];
  int http_at_rv;    /* agentws_request_get_header_at past the end */
  int auth_calls;
} R;

static void on_alert(agentws_manager *m, const agentws_alert *a, void *ud) {
  alert_rec *r;
  (void)m, (void)ud;
  if (R.nalerts >= MAX_ALERTS)
    return;
  r = &R.alerts[R.nalerts];
  r->rule = agentws_alert_get_rule(a);
  r->severity = agentws_alert_get_severity(a);
  r->firing = agentws_alert_is_firing(a);
  r->conn = agentws_alert_get_conn(a);
  snprintf(r->target, sizeof(r->target), "%s", agentws_alert_get_target(a));
  snprintf(r->run, sizeof(r->run), "%s", agentws_alert_get_run(a));
  snprintf(r->tool_call, sizeof(r->tool_call), "%s",
           agentws_alert_get_tool_call(a));
  snprintf(r->message, sizeof(r->message), "%s",
           agentws_alert_get_message(a));
  r->value = agentws_alert_get_value(a);
  r->threshold = agentws_alert_get_threshold(a);
  R.nalerts++;
}

static void on_log(agentws_manager *m, int level, const char *msg,
                   void *ud) {
  (void)m, (void)ud;
  if (R.nlogs >= MAX_LOGS)
    return;
  snprintf(R.logs[R.nlogs], sizeof(R.logs[0]), "%s", msg);
  R.log_levels[R.nlogs++] = level;
}

static const char page[] = "<!doctype html><p>hello</p>";

static int on_http(agentws_manager *m, uint64_t conn, const agentws_request *req,
                   void *ud) {
  const char *h = agentws_request_get_header(req, "X-Test");
  (void)ud;
  R.http_calls++;
  snprintf(R.http_method, sizeof(R.http_method), "%s",
           agentws_request_get_method(req));
  snprintf(R.http_target, sizeof(R.http_target), "%s",
           agentws_request_get_target(req));
  snprintf(R.http_header, sizeof(R.http_header), "%s", h != NULL ? h : "");
  R.http_nheaders = agentws_request_get_header_count(req);
  if (R.http_nheaders > 0) {
    const char *n = NULL, *v = NULL;
    assert_int_equal(agentws_request_get_header_at(req, R.http_nheaders - 1,
                                                   &n, &v),
                     0);
    snprintf(R.http_last_name, sizeof(R.http_last_name), "%s", n);
    snprintf(R.http_last_value, sizeof(R.http_last_value), "%s", v);
    R.http_at_rv =
        agentws_request_get_header_at(req, R.http_nheaders, &n, &v);
  }
  if (R.http_answer == 1)
    return 0;
  if (R.http_answer == 2)
    return 1;
  /* Refused before anything is sent. */
  assert_int_equal(agentws_http_respond(m, conn, 200, "text/html\r\nX: y",
                                        (const uint8_t *)page, 3),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_http_respond(m, conn, 99, "text/html",
                                        (const uint8_t *)page, 3),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_http_respond(m, conn + 1000, 200, "text/html",
                                        (const uint8_t *)page, 3),
                   AGENTWS_ERR_NOT_FOUND);
  R.http_rv = agentws_http_respond(m, conn, 200, "text/html; charset=utf-8",
                                   (const uint8_t *)page, sizeof(page) - 1);
  R.http_rv2 = agentws_http_respond(m, conn, 200, "text/html",
                                    (const uint8_t *)page, 1);
  return 0;
}

/* Never answers: every handshake times out (503). */
static int on_auth_silent(agentws_manager *m, uint64_t conn,
                          const agentws_request *req, void *ud) {
  (void)m, (void)conn, (void)req, (void)ud;
  R.auth_calls++;
  return 0;
}

static void hooks(agentws_callbacks *cbs) {
  agentws_callbacks_set_on_alert(cbs, on_alert);
  agentws_callbacks_set_on_log(cbs, on_log);
  agentws_callbacks_set_on_http(cbs, on_http);
}

static void hooks_silent_auth(agentws_callbacks *cbs) {
  hooks(cbs);
  agentws_callbacks_set_on_authenticate(cbs, on_auth_silent);
}

/* -------------------------------------------------------------- helpers */

/* Dev-mode protocol config with a fast monitor tick; pings off. */
static agentws_config *mon_cfg(void) {
  agentws_config *cfg = NULL;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_dev_insecure(cfg, 1), 0);
  assert_int_equal(agentws_config_set_ping_interval_ms(cfg, 0), 0);
  assert_int_equal(agentws_config_set_close_timeout_ms(cfg, 500), 0);
  assert_int_equal(agentws_config_set_monitor_interval_ms(cfg, 20), 0);
  return cfg;
}

static void start(th_server *s, agentws_config *cfg,
                  void (*more)(agentws_callbacks *)) {
  memset(&R, 0, sizeof(R));
  assert_int_equal(th_start_with(s, cfg, more != NULL ? more : hooks), 0);
  agentws_config_free(cfg);
}

static void settle(th_server *s, int ms) {
  uint64_t end = tc_now_ms() + (uint64_t)ms;
  while (tc_now_ms() < end) {
    uv_run(&s->loop, UV_RUN_NOWAIT);
    tc_sleep_ms(1);
  }
}

/* Index of the first alert of |rule| with |firing| at or after |from|, or
 * -1. */
static int find_alert(int rule, int firing, int from) {
  int i;
  for (i = from; i < R.nalerts; i++)
    if (R.alerts[i].rule == rule && R.alerts[i].firing == firing)
      return i;
  return -1;
}

static int count_alerts(int rule, int firing) {
  int i, n = 0;
  for (i = 0; i < R.nalerts; i++)
    n += R.alerts[i].rule == rule && R.alerts[i].firing == firing;
  return n;
}

static uint64_t statv(th_server *s, int which) {
  agentws_stats *st;
  uint64_t v;
  assert_int_equal(agentws_stats_new(&st), 0);
  assert_int_equal(agentws_manager_get_stats(s->m, st), 0);
  v = agentws_stats_get(st, which);
  agentws_stats_free(st);
  return v;
}

/* One HTTP request; the whole answer (head and body) into |out|. Returns
 * the status. */
static int http(th_server *s, const char *method, const char *path,
                const char *extra, char *out, size_t cap) {
  tc_client c;
  char req[512];
  int status = 0, n;
  assert_int_equal(tc_connect(&c, "127.0.0.1", s->port, th_pump, s), 0);
  n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n",
               method, path, extra != NULL ? extra : "");
  assert_int_equal(tc_send_all(&c, req, (size_t)n), 0);
  assert_int_equal(tc_read_to_eof(&c, TC_TIMEOUT_MS), 0);
  n = (int)(c.in_len < cap - 1 ? c.in_len : cap - 1);
  memcpy(out, c.in, (size_t)n);
  out[n] = '\0';
  sscanf(out, "HTTP/1.1 %d", &status);
  tc_close(&c);
  return status;
}

static char *body_of(char *resp) {
  char *b = strstr(resp, "\r\n\r\n");
  return b != NULL ? b + 4 : resp + strlen(resp);
}

static char *read_text(tc_client *c) {
  for (;;) {
    tc_frame f;
    int r = tc_read_frame(c, &f, TC_TIMEOUT_MS);
    if (r != 0)
      fail_msg("no message (%d)", r);
    if (f.opcode == TC_OP_PING || f.opcode == TC_OP_PONG) {
      tc_frame_free(&f);
      continue;
    }
    return (char *)f.data;
  }
}

/* Connects |user| and reads its welcome. */
static void connect_user(th_server *s, tc_client *c, const char *user) {
  char path[128], *w;
  assert_int_equal(tc_connect(c, "127.0.0.1", s->port, th_pump, s), 0);
  snprintf(path, sizeof(path), "/ws?user=%s", user);
  assert_int_equal(tc_upgrade(c, path, NULL), 0);
  w = read_text(c);
  assert_non_null(strstr(w, "\"type\":\"welcome\""));
  free(w);
}

static void skip_texts(tc_client *c, int n) {
  while (n-- > 0)
    free(read_text(c));
}

/* Reads until the event with |seq| (thinking deltas a lagging reader got
 * merged arrive as one message carrying the last seq). */
static void skip_to_seq(tc_client *c, uint64_t seq) {
  for (;;) {
    char *m = read_text(c);
    const char *p = strstr(m, "\"seq\":");
    uint64_t got = p != NULL ? strtoull(p + 6, NULL, 10) : 0;
    free(m);
    if (got >= seq)
      return;
  }
}

static void ack(tc_client *c, uint64_t seq) {
  char msg[64];
  int n = snprintf(msg, sizeof(msg), "{\"type\":\"ack\",\"seq\":%llu}",
                   (unsigned long long)seq);
  assert_int_equal(tc_send_frame(c, TC_OP_TEXT, msg, (size_t)n), 0);
}

/* ------------------------------------------------------------ endpoints */

static void test_endpoints_and_token(void **state) {
  static th_server s;
  agentws_config *cfg = mon_cfg();
  char resp[65536];
  (void)state;
  assert_int_equal(agentws_config_set_http_token(cfg, "s3cret-token"), 0);
  start(&s, cfg, NULL);
  /* Without, or with a wrong token: 401 with a challenge. */
  assert_int_equal(http(&s, "GET", "/metrics", NULL, resp, sizeof(resp)),
                   401);
  assert_non_null(strstr(resp, "WWW-Authenticate: Bearer"));
  assert_int_equal(http(&s, "GET", "/metrics",
                        "Authorization: Bearer s3cret-tokem\r\n", resp,
                        sizeof(resp)),
                   401);
  assert_int_equal(http(&s, "GET", "/healthz", NULL, resp, sizeof(resp)),
                   401);
  assert_int_equal(http(&s, "GET", "/readyz",
                        "Authorization: Bearer s3cret-token-longer\r\n", resp,
                        sizeof(resp)),
                   401);
  /* With it. */
  assert_int_equal(http(&s, "GET", "/metrics?x=1",
                        "Authorization: Bearer s3cret-token\r\n", resp,
                        sizeof(resp)),
                   200);
  assert_non_null(
      strstr(resp, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
  assert_non_null(strstr(resp, "# TYPE agentws_connections gauge\n"));
  assert_non_null(strstr(resp, "agentws_handshakes_refused_total"
                               "{status=\"401\"} 4\n"));
  assert_non_null(strstr(resp, "# TYPE agentws_emit_to_write_seconds "
                               "histogram\n"));
  assert_non_null(strstr(resp, "agentws_emit_to_write_seconds_bucket"
                               "{le=\"+Inf\"} 0\n"));
  assert_null(strstr(resp, "s3cret"));
  assert_int_equal(http(&s, "GET", "/healthz",
                        "Authorization: bearer s3cret-token\r\n", resp,
                        sizeof(resp)),
                   200);
  assert_non_null(strstr(body_of(resp), "{\"status\":\"ok\""));
  assert_int_equal(http(&s, "GET", "/readyz",
                        "Authorization: Bearer s3cret-token\r\n", resp,
                        sizeof(resp)),
                   200);
  assert_non_null(strstr(body_of(resp), "{\"status\":\"ready\""));
  /* HEAD has the head only; other methods 405. */
  assert_int_equal(http(&s, "HEAD", "/metrics",
                        "Authorization: Bearer s3cret-token\r\n", resp,
                        sizeof(resp)),
                   200);
  assert_string_equal(body_of(resp), "");
  assert_int_equal(http(&s, "POST", "/metrics",
                        "Authorization: Bearer s3cret-token\r\n", resp,
                        sizeof(resp)),
                   405);
  assert_true(statv(&s, AGENTWS_STAT_REFUSED_401) == 4);
  assert_true(statv(&s, AGENTWS_STAT_REFUSED_405) == 1);
  assert_true(statv(&s, AGENTWS_STAT_HTTP_REQUESTS) == 4);
  th_finish(&s);
}

static void test_endpoints_disabled(void **state) {
  static th_server s;
  agentws_config *cfg = mon_cfg();
  char resp[4096];
  (void)state;
  assert_int_equal(agentws_config_set_metrics(cfg, 0), 0);
  assert_int_equal(agentws_config_set_readyz(cfg, 0), 0);
  assert_int_equal(agentws_config_set_healthz(cfg, 0), 0);
  R.http_answer = 1;
  start(&s, cfg, NULL);
  R.http_answer = 1; /* start() cleared it */
  assert_int_equal(http(&s, "GET", "/metrics", NULL, resp, sizeof(resp)),
                   404);
  assert_int_equal(http(&s, "GET", "/readyz", NULL, resp, sizeof(resp)),
                   404);
  assert_int_equal(http(&s, "GET", "/healthz", NULL, resp, sizeof(resp)),
                   404);
  /* The host saw them (they are its paths now) and answered nothing. */
  assert_int_equal(R.http_calls, 3);
  assert_true(statv(&s, AGENTWS_STAT_REFUSED_404) == 3);
  th_finish(&s);
}

static void test_host_pages(void **state) {
  static th_server s;
  char resp[4096];
  (void)state;
  start(&s, mon_cfg(), NULL);
  assert_int_equal(http(&s, "GET", "/chat?x=1", "X-Test: yes\r\n", resp,
                        sizeof(resp)),
                   200);
  assert_int_equal(R.http_rv, 0);
  assert_int_equal(R.http_rv2, AGENTWS_ERR_NOT_FOUND); /* answered once */
  assert_string_equal(R.http_method, "GET");
  assert_string_equal(R.http_target, "/chat?x=1");
  assert_string_equal(R.http_header, "yes");
  /* "Host: x", then "X-Test: yes": every line can be listed. */
  assert_int_equal(R.http_nheaders, 2);
  assert_string_equal(R.http_last_name, "X-Test");
  assert_string_equal(R.http_last_value, "yes");
  assert_int_equal(R.http_at_rv, AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_request_get_header_count(NULL), 0);
  assert_non_null(strstr(resp, "Content-Type: text/html; charset=utf-8"));
  assert_string_equal(body_of(resp), page);
  assert_int_equal(http(&s, "HEAD", "/chat", NULL, resp, sizeof(resp)), 200);
  assert_string_equal(body_of(resp), "");
  /* Other methods never reach the host. */
  assert_int_equal(http(&s, "POST", "/chat", NULL, resp, sizeof(resp)), 404);
  assert_int_equal(R.http_calls, 2);
  /* Not answered (either return value): 404. */
  R.http_answer = 1;
  assert_int_equal(http(&s, "GET", "/x", NULL, resp, sizeof(resp)), 404);
  R.http_answer = 2;
  assert_int_equal(http(&s, "GET", "/y", NULL, resp, sizeof(resp)), 404);
  /* Outside the hook there is nothing to answer. */
  assert_int_equal(agentws_http_respond(s.m, 1, 200, NULL, NULL, 0),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_http_respond(NULL, 1, 200, NULL, NULL, 0),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  th_finish(&s);
}

/* ------------------------------------------------- counters, histograms */

static void test_counters_and_histograms(void **state) {
  static th_server s;
  tc_client a, b, c;
  agentws_config *cfg = mon_cfg();
  agentws_stats *st;
  char resp[4096];
  uint64_t q50 = 0, q99 = 0;
  (void)state;
  assert_int_equal(agentws_config_set_max_conns_per_user(cfg, 1), 0);
  start(&s, cfg, NULL);
  connect_user(&s, &a, "alice");
  connect_user(&s, &b, "bob");
  /* A second tab of alice is over the limit: 429. */
  assert_int_equal(tc_connect(&c, "127.0.0.1", s.port, th_pump, &s), 0);
  assert_int_not_equal(tc_upgrade(&c, "/ws?user=alice", NULL), 0);
  tc_close(&c);
  assert_int_equal(http(&s, "GET", "/nope", NULL, resp, sizeof(resp)), 200);
  assert_int_equal(http(&s, "GET /x", "", NULL, resp, sizeof(resp)), 400);

  assert_int_equal(agentws_emit_agent_started(s.m, USER, "alice", "r1", "a",
                                              NULL), 0);
  assert_int_equal(agentws_emit_agent_thinking(s.m, USER, "alice", "r1",
                                               "hm", 2, NULL), 0);
  assert_int_equal(agentws_emit_tool_executing(s.m, USER, "alice", "r1", "t",
                                               "c1", NULL), 0);
  assert_int_equal(agentws_emit_tool_completed(s.m, USER, "alice", "r1", "t",
                                               "c1", 1, 5, NULL), 0);
  assert_int_equal(agentws_emit_agent_completed(s.m, USER, "alice", "r1", 9,
                                                NULL, NULL), 0);
  assert_int_equal(agentws_emit_agent_started(s.m, USER, "bob", "r2", "a",
                                              NULL), 0);
  assert_int_equal(agentws_emit_agent_error(s.m, USER, "bob", "r2", "x",
                                            "boom", "error", 0, NULL), 0);
  assert_int_equal(agentws_emit_custom(s.m, USER, "bob", "note", NULL, NULL),
                   0);
  /* Refused: malformed JSON. */
  assert_int_equal(agentws_emit_custom(s.m, USER, "bob", "note", NULL, "{"),
                   AGENTWS_ERR_INVALID_JSON);
  skip_texts(&a, 5);
  skip_texts(&b, 3);
  ack(&a, 5);
  TH_RUN_UNTIL(&s, statv(&s, AGENTWS_STAT_EVENTS_ACKED) == 5);
  TH_RUN_UNTIL(&s, statv(&s, AGENTWS_STAT_EVENTS_WRITTEN) == 8);
  TH_RUN_UNTIL(&s, statv(&s, AGENTWS_STAT_USERS) == 2); /* a tick's gauge */

  assert_int_equal(agentws_stats_new(&st), 0);
  assert_int_equal(agentws_manager_get_stats(s.m, st), 0);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_CONNECTIONS) == 2);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_CONNECTIONS_OPENED) == 2);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_REFUSED_429) == 1);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_REFUSED_400) == 1);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_EMITTED_AGENT_STARTED) == 2);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_EMITTED_AGENT_THINKING) == 1);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_EMITTED_TOOL_EXECUTING) == 1);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_EMITTED_TOOL_COMPLETED) == 1);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_EMITTED_AGENT_COMPLETED) ==
              1);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_EMITTED_AGENT_ERROR) == 1);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_EMITTED_CUSTOM) == 1);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_EVENTS_DELIVERED) == 8);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_DROPPED_INVALID) == 1);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_BYTES_SENT) > 500);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_BYTES_RECEIVED) > 100);
  /* Latencies: every written event, every acked one, both handshakes. */
  assert_true(agentws_stats_hist_count(st, AGENTWS_HIST_EMIT_TO_WRITE) == 8);
  assert_true(agentws_stats_hist_count(st, AGENTWS_HIST_EMIT_TO_ACK) == 5);
  assert_true(agentws_stats_hist_count(st, AGENTWS_HIST_HANDSHAKE) == 2);
  assert_true(agentws_stats_hist_sum_ns(st, AGENTWS_HIST_EMIT_TO_WRITE) > 0);
  assert_int_equal(agentws_stats_hist_quantile(st, AGENTWS_HIST_EMIT_TO_WRITE,
                                               0.5, &q50), 0);
  assert_int_equal(agentws_stats_hist_quantile(st, AGENTWS_HIST_EMIT_TO_WRITE,
                                               0.99, &q99), 0);
  assert_true(q50 > 0 && q50 <= q99 && q99 < 5000000000ull);
  assert_int_equal(agentws_stats_hist_quantile(st, AGENTWS_HIST_EMIT_TO_WRITE,
                                               1.5, &q50),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_stats_hist_quantile(st, 9, 0.5, &q50),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_string_equal(agentws_hist_name(AGENTWS_HIST_EMIT_TO_ACK),
                      "emit_to_ack");
  assert_null(agentws_hist_name(3));
  assert_string_equal(agentws_stat_name(AGENTWS_STAT_HTTP_REQUESTS),
                      "http_requests");
  assert_null(agentws_stat_name(AGENTWS_STAT_HTTP_REQUESTS + 1));

  /* Close codes as reported. */
  assert_int_equal(tc_send_close(&a, 1000, "bye"), 0);
  assert_int_equal(tc_send_close(&b, 4321, "own"), 0);
  TH_RUN_UNTIL(&s, statv(&s, AGENTWS_STAT_CONNECTIONS_CLOSED) == 2);
  assert_true(statv(&s, AGENTWS_STAT_CLOSED_1000) == 1);
  assert_true(statv(&s, AGENTWS_STAT_CLOSED_OTHER) == 1);
  assert_true(statv(&s, AGENTWS_STAT_CONNECTIONS) == 0);
  tc_close(&a);
  tc_close(&b);
  assert_int_equal(th_close(&s), 0);
  TH_RUN_UNTIL(&s, s.n_closed == 1);
  /* After the close, emits are refused and counted. */
  assert_int_equal(agentws_emit_custom(s.m, USER, "bob", "note", NULL, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_true(statv(&s, AGENTWS_STAT_DROPPED_SHUTDOWN) == 1);
  agentws_stats_free(st);
  th_finish(&s);
}

static void test_strict_refusals_counted(void **state) {
  static th_server s;
  agentws_config *cfg = mon_cfg();
  (void)state;
  assert_int_equal(agentws_config_set_validation(cfg,
                                                 AGENTWS_VALIDATION_STRICT),
                   0);
  start(&s, cfg, NULL);
  assert_int_equal(agentws_emit_tool_completed(s.m, USER, "u", "r", "t", "c",
                                               1, 1, NULL),
                   AGENTWS_ERR_VALIDATION);
  assert_true(statv(&s, AGENTWS_STAT_DROPPED_VALIDATION) == 1);
  th_finish(&s);
}

/* ------------------------------------------------------------ detectors */

static void test_alert_stall_and_tool_timeout(void **state) {
  static th_server s;
  agentws_config *cfg = mon_cfg();
  int i;
  (void)state;
  assert_int_equal(agentws_config_set_stall_timeout_ms(cfg, 100), 0);
  assert_int_equal(agentws_config_set_tool_timeout_ms(cfg, 100), 0);
  start(&s, cfg, NULL);
  assert_int_equal(agentws_emit_agent_started(s.m, USER, "u1", "r1", "a",
                                              NULL), 0);
  assert_int_equal(agentws_emit_tool_executing(s.m, USER, "u1", "r1", "t",
                                               "c1", NULL), 0);
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_RUN_STALLED, 1, 0) >= 0 &&
                       find_alert(AGENTWS_ALERT_TOOL_TIMEOUT, 1, 0) >= 0);
  i = find_alert(AGENTWS_ALERT_RUN_STALLED, 1, 0);
  assert_string_equal(R.alerts[i].run, "r1");
  assert_string_equal(R.alerts[i].target, "u1");
  assert_int_equal(R.alerts[i].severity, AGENTWS_SEVERITY_WARNING);
  assert_true(R.alerts[i].value >= 100 && R.alerts[i].threshold == 100);
  i = find_alert(AGENTWS_ALERT_TOOL_TIMEOUT, 1, 0);
  assert_string_equal(R.alerts[i].tool_call, "c1");
  assert_true(statv(&s, AGENTWS_STAT_RUNS_STALLED) == 1);
  assert_true(statv(&s, AGENTWS_STAT_ACTIVE_TOOL_TIMEOUT) == 1);
  /* Fired once, however long it stays quiet. */
  settle(&s, 300);
  assert_int_equal(count_alerts(AGENTWS_ALERT_RUN_STALLED, 1), 1);
  assert_int_equal(count_alerts(AGENTWS_ALERT_TOOL_TIMEOUT, 1), 1);
  /* The late result clears both. */
  assert_int_equal(agentws_emit_tool_completed(s.m, USER, "u1", "r1", "t",
                                               "c1", 1, 400, NULL), 0);
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_RUN_STALLED, 0, 0) >= 0 &&
                       find_alert(AGENTWS_ALERT_TOOL_TIMEOUT, 0, 0) >= 0);
  assert_true(statv(&s, AGENTWS_STAT_RUNS_STALLED) == 0);
  assert_true(statv(&s, AGENTWS_STAT_ACTIVE_TOOL_TIMEOUT) == 0);
  assert_true(statv(&s, AGENTWS_STAT_ALERTS_RUN_STALLED) == 1);
  /* Stalls again; its end clears it. */
  TH_RUN_UNTIL(&s, count_alerts(AGENTWS_ALERT_RUN_STALLED, 1) == 2);
  assert_int_equal(agentws_emit_agent_completed(s.m, USER, "u1", "r1", 1,
                                                NULL, NULL), 0);
  TH_RUN_UNTIL(&s, count_alerts(AGENTWS_ALERT_RUN_STALLED, 0) == 2);
  th_finish(&s);
}

static void test_alert_stall_repair_clears_at_once(void **state) {
  static th_server s;
  agentws_config *cfg = mon_cfg();
  int f, c;
  (void)state;
  assert_int_equal(agentws_config_set_validation(cfg,
                                                 AGENTWS_VALIDATION_REPAIR),
                   0);
  assert_int_equal(agentws_config_set_stall_timeout_ms(cfg, 50), 0);
  start(&s, cfg, NULL);
  assert_int_equal(agentws_emit_agent_started(s.m, USER, "u1", "r1", "a",
                                              NULL), 0);
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_RUN_STALLED, 0, 0) >= 0);
  f = find_alert(AGENTWS_ALERT_RUN_STALLED, 1, 0);
  c = find_alert(AGENTWS_ALERT_RUN_STALLED, 0, 0);
  assert_true(f >= 0 && f < c);
  assert_true(statv(&s, AGENTWS_STAT_RUNS_STALLED) == 0);
  th_finish(&s);
}

/* A client that stops reading: slow_consumer fires while its debt grows,
 * /readyz reports queue pressure; reading again clears it. */
static void test_alert_slow_consumer_and_readyz(void **state) {
  static th_server s;
  tc_client a;
  agentws_config *cfg = mon_cfg();
  char pad[1024], resp[4096];
  int i, n = 0, rcv = 4096;
  (void)state;
  memset(pad, 'x', sizeof(pad) - 1);
  pad[sizeof(pad) - 1] = '\0';
  assert_int_equal(agentws_config_set_alert_queue_bytes(cfg, 32768), 0);
  assert_int_equal(agentws_config_set_ready_max_queued_bytes(cfg, 4096), 0);
  assert_int_equal(agentws_config_set_socket_send_buffer(cfg, 4096), 0);
  assert_int_equal(agentws_config_set_max_queued_bytes(cfg, 4u << 20), 0);
  assert_int_equal(agentws_config_set_backlog_bytes(cfg, 8u << 20), 0);
  start(&s, cfg, NULL);
  connect_user(&s, &a, "slow");
  setsockopt(a.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
  for (i = 0; i < 400 && find_alert(AGENTWS_ALERT_SLOW_CONSUMER, 1, 0) < 0;
       i++) {
    assert_int_equal(agentws_emit_agent_thinking(s.m, USER, "slow", "r", pad,
                                                 sizeof(pad) - 1, NULL),
                     0);
    n++;
    settle(&s, 5);
  }
  i = find_alert(AGENTWS_ALERT_SLOW_CONSUMER, 1, 0);
  assert_true(i >= 0);
  assert_string_equal(R.alerts[i].target, "slow");
  assert_true(R.alerts[i].conn != 0);
  assert_true(R.alerts[i].value >= 32768 && R.alerts[i].threshold == 32768);
  assert_int_equal(http(&s, "GET", "/readyz", NULL, resp, sizeof(resp)),
                   503);
  assert_non_null(strstr(body_of(resp), "\"queue_pressure\""));
  assert_true(statv(&s, AGENTWS_STAT_QUEUED_BYTES_MAX) > 4096);
  /* It reads everything: the alert clears and it stays connected. */
  skip_to_seq(&a, (uint64_t)n);
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_SLOW_CONSUMER, 0, 0) >= 0);
  assert_int_equal(s.n_close, 0);
  assert_int_equal(http(&s, "GET", "/readyz", NULL, resp, sizeof(resp)),
                   200);
  tc_close(&a);
  th_finish(&s);
}

static void test_alert_unacked(void **state) {
  static th_server s;
  tc_client a;
  agentws_config *cfg = mon_cfg();
  int i;
  (void)state;
  assert_int_equal(agentws_config_set_alert_ack_timeout_ms(cfg, 100), 0);
  start(&s, cfg, NULL);
  connect_user(&s, &a, "acker");
  assert_int_equal(agentws_emit_custom(s.m, USER, "acker", "n", NULL, NULL),
                   0);
  skip_texts(&a, 1);
  ack(&a, 1);
  TH_RUN_UNTIL(&s, statv(&s, AGENTWS_STAT_EVENTS_ACKED) == 1);
  /* Two more, never acked. */
  assert_int_equal(agentws_emit_custom(s.m, USER, "acker", "n", NULL, NULL),
                   0);
  assert_int_equal(agentws_emit_custom(s.m, USER, "acker", "n", NULL, NULL),
                   0);
  skip_texts(&a, 2);
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_UNACKED, 1, 0) >= 0);
  i = find_alert(AGENTWS_ALERT_UNACKED, 1, 0);
  assert_int_equal(R.alerts[i].value, 2);
  assert_string_equal(R.alerts[i].target, "acker");
  ack(&a, 3);
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_UNACKED, 0, 0) >= 0);
  assert_true(statv(&s, AGENTWS_STAT_ACTIVE_UNACKED) == 0);
  tc_close(&a);
  th_finish(&s);
}

/* A peer that never answers pings: half_open at half the pong timeout,
 * cleared when the library drops it (1006). */
static void test_alert_half_open(void **state) {
  static th_server s;
  tc_client a;
  agentws_config *cfg = mon_cfg();
  int f, c;
  (void)state;
  assert_int_equal(agentws_config_set_ping_interval_ms(cfg, 30), 0);
  assert_int_equal(agentws_config_set_pong_timeout_ms(cfg, 400), 0);
  start(&s, cfg, NULL);
  connect_user(&s, &a, "ghost");
  /* At half the pong timeout, while the connection is still open (a ping
   * mark newer than the tick's clock once made it drop at once). */
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_HALF_OPEN, 1, 0) >= 0);
  assert_int_equal(s.n_close, 0);
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_HALF_OPEN, 0, 0) >= 0);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_int_equal(s.close_code, 1006);
  f = find_alert(AGENTWS_ALERT_HALF_OPEN, 1, 0);
  c = find_alert(AGENTWS_ALERT_HALF_OPEN, 0, 0);
  assert_true(R.alerts[f].conn == R.alerts[c].conn && R.alerts[f].conn != 0);
  assert_true(R.alerts[f].value >= 200);
  tc_close(&a);
  th_finish(&s);
}

/* No scan falls inside the window (the tick is a minute): the drop itself
 * still fires the alert, and clears it. */
static void test_alert_half_open_at_the_drop(void **state) {
  static th_server s;
  tc_client a;
  agentws_config *cfg = mon_cfg();
  int f, c;
  (void)state;
  assert_int_equal(agentws_config_set_monitor_interval_ms(cfg, 60000), 0);
  assert_int_equal(agentws_config_set_ping_interval_ms(cfg, 30), 0);
  assert_int_equal(agentws_config_set_pong_timeout_ms(cfg, 200), 0);
  start(&s, cfg, NULL);
  connect_user(&s, &a, "ghost2");
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_int_equal(s.close_code, 1006);
  f = find_alert(AGENTWS_ALERT_HALF_OPEN, 1, 0);
  c = find_alert(AGENTWS_ALERT_HALF_OPEN, 0, 0);
  assert_true(f >= 0 && f < c);
  assert_true(R.alerts[f].value == 200 && R.alerts[f].threshold == 100);
  assert_true(statv(&s, AGENTWS_STAT_ACTIVE_HALF_OPEN) == 0);
  tc_close(&a);
  th_finish(&s);
}

/* The same, but the peer wakes up: any frame clears it. */
static void test_alert_half_open_recovers(void **state) {
  static th_server s;
  tc_client a;
  agentws_config *cfg = mon_cfg();
  (void)state;
  assert_int_equal(agentws_config_set_ping_interval_ms(cfg, 30), 0);
  assert_int_equal(agentws_config_set_pong_timeout_ms(cfg, 2000), 0);
  start(&s, cfg, NULL);
  connect_user(&s, &a, "sleepy");
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_HALF_OPEN, 1, 0) >= 0);
  assert_int_equal(tc_send_frame(&a, TC_OP_PONG, "", 0), 0);
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_HALF_OPEN, 0, 0) >= 0);
  assert_int_equal(s.n_close, 0);
  tc_close(&a);
  th_finish(&s);
}

static void block_loop(agentws_manager *m, void *ud) {
  (void)m, (void)ud;
  tc_sleep_ms(300);
}

static void test_alert_loop_lag(void **state) {
  static th_server s;
  agentws_config *cfg = mon_cfg();
  int i;
  (void)state;
  assert_int_equal(agentws_config_set_alert_loop_lag_ms(cfg, 100), 0);
  start(&s, cfg, NULL);
  settle(&s, 60);
  assert_int_equal(count_alerts(AGENTWS_ALERT_LOOP_LAG, 1), 0);
  assert_int_equal(agentws_manager_post(s.m, block_loop, NULL), 0);
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_LOOP_LAG, 1, 0) >= 0);
  i = find_alert(AGENTWS_ALERT_LOOP_LAG, 1, 0);
  assert_int_equal(R.alerts[i].severity, AGENTWS_SEVERITY_CRITICAL);
  assert_true(R.alerts[i].value >= 100);
  assert_true(statv(&s, AGENTWS_STAT_LOOP_LAG_MAX_US) >= 100000);
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_LOOP_LAG, 0, 0) >= 0);
  th_finish(&s);
}

/* A loop that starts running long after the manager was made is not
 * lagging. */
static void test_no_lag_alert_before_the_loop_runs(void **state) {
  static th_server s;
  agentws_config *cfg = mon_cfg();
  (void)state;
  /* A threshold well above what a loaded CI machine lags, well below the
   * 700 ms the old first probe would have measured. */
  assert_int_equal(agentws_config_set_alert_loop_lag_ms(cfg, 400), 0);
  start(&s, cfg, NULL);
  tc_sleep_ms(700);
  settle(&s, 150);
  assert_int_equal(count_alerts(AGENTWS_ALERT_LOOP_LAG, 1), 0);
  assert_true(statv(&s, AGENTWS_STAT_LOOP_LAG_MAX_US) < 400000);
  th_finish(&s);
}

static void test_alert_auth_timeouts(void **state) {
  static th_server s;
  tc_client c;
  agentws_config *cfg = NULL;
  (void)state;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_auth_timeout_ms(cfg, 30), 0);
  assert_int_equal(agentws_config_set_monitor_interval_ms(cfg, 20), 0);
  assert_int_equal(agentws_config_set_alert_window_ms(cfg, 300), 0);
  assert_int_equal(agentws_config_set_alert_auth_timeouts(cfg, 2), 0);
  start(&s, cfg, hooks_silent_auth);
  assert_int_equal(tc_connect(&c, "127.0.0.1", s.port, th_pump, &s), 0);
  assert_int_not_equal(tc_upgrade(&c, "/ws", NULL), 0);
  assert_non_null(strstr(c.head, " 503 "));
  tc_close(&c);
  settle(&s, 50);
  assert_int_equal(count_alerts(AGENTWS_ALERT_AUTH_TIMEOUTS, 1), 0);
  assert_int_equal(tc_connect(&c, "127.0.0.1", s.port, th_pump, &s), 0);
  assert_int_not_equal(tc_upgrade(&c, "/ws", NULL), 0);
  tc_close(&c);
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_AUTH_TIMEOUTS, 1, 0) >= 0);
  assert_int_equal(R.auth_calls, 2);
  assert_true(statv(&s, AGENTWS_STAT_AUTH_TIMEOUT) == 2);
  /* A window with none clears it. */
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_AUTH_TIMEOUTS, 0, 0) >= 0);
  th_finish(&s);
}

static void test_alert_validation_rate(void **state) {
  static th_server s;
  agentws_config *cfg = mon_cfg();
  char run[16];
  int i;
  (void)state;
  assert_int_equal(agentws_config_set_alert_window_ms(cfg, 200), 0);
  assert_int_equal(agentws_config_set_alert_violations_per_s(cfg, 20), 0);
  /* Threshold: 20/s x 0.2 s = 4 per window; an orphan result that starts
   * a run is two violations (run_not_started, orphan_tool_result). */
  start(&s, cfg, NULL);
  for (i = 0; i < 1; i++) {
    snprintf(run, sizeof(run), "r%d", i);
    assert_int_equal(agentws_emit_tool_completed(s.m, USER, "v", run, "t",
                                                 "c", 1, 1, NULL), 0);
  }
  settle(&s, 60);
  assert_int_equal(count_alerts(AGENTWS_ALERT_VALIDATION_RATE, 1), 0);
  for (i = 1; i < 12; i++) {
    snprintf(run, sizeof(run), "r%d", i);
    assert_int_equal(agentws_emit_tool_completed(s.m, USER, "v", run, "t",
                                                 "c", 1, 1, NULL), 0);
  }
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_VALIDATION_RATE, 1, 0) >= 0);
  i = find_alert(AGENTWS_ALERT_VALIDATION_RATE, 1, 0);
  assert_true(R.alerts[i].value >= 4 && R.alerts[i].threshold == 4);
  TH_RUN_UNTIL(&s, find_alert(AGENTWS_ALERT_VALIDATION_RATE, 0, 0) >= 0);
  th_finish(&s);
}

/* --------------------------------------------------------- log, off */

static void test_log_levels(void **state) {
  static th_server s;
  tc_client a;
  agentws_config *cfg = mon_cfg();
  int i, warn = 0;
  (void)state;
  assert_int_equal(agentws_config_set_log_level(cfg, AGENTWS_LOG_WARN), 0);
  assert_int_equal(agentws_config_set_stall_timeout_ms(cfg, 50), 0);
  start(&s, cfg, NULL);
  connect_user(&s, &a, "logger");
  assert_int_equal(tc_send_close(&a, 1000, ""), 0);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_int_equal(agentws_emit_agent_started(s.m, USER, "u", "r", "a", NULL),
                   0);
  TH_RUN_UNTIL(&s, R.nlogs > 0 && find_alert(AGENTWS_ALERT_RUN_STALLED, 1,
                                             0) >= 0);
  for (i = 0; i < R.nlogs; i++) {
    assert_true(R.log_levels[i] <= AGENTWS_LOG_WARN);
    assert_null(strchr(R.logs[i], '\n'));
    warn += strstr(R.logs[i], "alert run_stalled firing") != NULL;
  }
  assert_int_equal(warn, 1);
  assert_string_equal(agentws_log_level_name(AGENTWS_LOG_DEBUG), "debug");
  assert_null(agentws_log_level_name(4));
  tc_close(&a);
  th_finish(&s);
}

static uv_thread_t log_thread;
static atomic_int log_thread_set; /* set after log_thread */

static void on_log_thread(agentws_manager *m, int level, const char *msg,
                          void *ud) {
  (void)m, (void)level, (void)msg, (void)ud;
  if (!log_thread_set) {
    log_thread = uv_thread_self();
    log_thread_set = 1;
  }
}

/* The dev-mode warning reaches on_log on the library's thread, not inside
 * agentws_manager_new_threaded() on the caller's; emits queue until the
 * loop publishes them. */
static void test_threaded_log_and_queue(void **state) {
  agentws_config *cfg = NULL;
  agentws_callbacks *cbs = NULL;
  agentws_manager *m = NULL;
  uv_thread_t self = uv_thread_self();
  int port = 0;
  (void)state;
  log_thread_set = 0;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_dev_insecure(cfg, 1), 0);
  assert_int_equal(agentws_callbacks_new(&cbs), 0);
  agentws_callbacks_set_on_log(cbs, on_log_thread);
  assert_int_equal(agentws_manager_new_threaded(&m, cfg, cbs, NULL), 0);
  agentws_config_free(cfg);
  agentws_callbacks_free(cbs);
  assert_int_equal(agentws_manager_listen(m, "127.0.0.1", 0, &port), 0);
  assert_int_equal(log_thread_set, 0);
  /* Not started: emits wait in the queue. */
  assert_int_equal(agentws_emit_custom(m, USER, "q", "n", NULL, NULL), 0);
  assert_int_equal(agentws_emit_custom(m, USER, "q", "n", NULL, NULL), 0);
  assert_true(agentws_manager_get_queued_events(m) == 2);
  assert_true(agentws_manager_get_queued_events(NULL) == 0);
  assert_int_equal(agentws_manager_start(m), 0);
  TH_WAIT_UNTIL(log_thread_set && agentws_manager_get_queued_events(m) == 0);
  assert_false(uv_thread_equal(&log_thread, &self));
  assert_int_equal(agentws_manager_stop(m), 0);
  agentws_manager_free(m);
}

static void test_monitor_off(void **state) {
  static th_server s;
  tc_client a;
  agentws_config *cfg = mon_cfg();
  char resp[65536];
  agentws_stats *st;
  (void)state;
  assert_int_equal(agentws_config_set_monitor(cfg, 0), 0);
  assert_int_equal(agentws_config_set_stall_timeout_ms(cfg, 50), 0);
  start(&s, cfg, NULL);
  connect_user(&s, &a, "quiet");
  assert_int_equal(agentws_emit_agent_started(s.m, USER, "quiet", "r", "a",
                                              NULL), 0);
  skip_texts(&a, 1);
  settle(&s, 200);
  assert_int_equal(R.nalerts, 0);
  assert_int_equal(agentws_stats_new(&st), 0);
  assert_int_equal(agentws_manager_get_stats(s.m, st), 0);
  assert_true(agentws_stats_hist_count(st, AGENTWS_HIST_EMIT_TO_WRITE) == 0);
  assert_true(agentws_stats_hist_count(st, AGENTWS_HIST_HANDSHAKE) == 0);
  /* Counters still count, and /metrics still answers. */
  assert_true(agentws_stats_get(st, AGENTWS_STAT_EVENTS_WRITTEN) == 1);
  assert_true(agentws_stats_get(st, AGENTWS_STAT_VIOLATION_RUN_STALLED) == 1);
  agentws_stats_free(st);
  assert_int_equal(http(&s, "GET", "/metrics", NULL, resp, sizeof(resp)),
                   200);
  tc_close(&a);
  th_finish(&s);
}

static void test_config_ranges(void **state) {
  agentws_config *cfg;
  (void)state;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_monitor(cfg, 2),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_monitor_interval_ms(cfg, 9),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_monitor_interval_ms(cfg, 60001),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_alert_loop_lag_ms(cfg, 0), 0);
  assert_int_equal(agentws_config_set_alert_loop_lag_ms(cfg, -1),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_alert_ack_timeout_ms(cfg, 9),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_alert_queue_bytes(cfg, 1023),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_alert_queue_bytes(cfg, 0), 0);
  assert_int_equal(agentws_config_set_alert_auth_timeouts(cfg, -1),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_alert_violations_per_s(cfg, 10000001),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_alert_window_ms(cfg, 99),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_metrics(cfg, -1),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_readyz(cfg, 3),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_http_token(cfg, "has space"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_http_token(cfg, "ok"), 0);
  assert_int_equal(agentws_config_set_http_token(cfg, NULL), 0);
  assert_int_equal(agentws_config_set_ready_max_loop_lag_ms(cfg, 0),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_ready_max_queued_bytes(cfg, 5),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_log_level(cfg, 4),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_log_level(NULL, 1),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  agentws_config_free(cfg);
  assert_string_equal(agentws_alert_rule_name(AGENTWS_ALERT_HALF_OPEN),
                      "half_open");
  assert_null(agentws_alert_rule_name(8));
  assert_string_equal(agentws_severity_name(AGENTWS_SEVERITY_CRITICAL),
                      "critical");
  assert_int_equal(agentws_alert_get_rule(NULL), -1);
  assert_null(agentws_alert_get_target(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(test_endpoints_and_token),
      TH_TEST(test_endpoints_disabled),
      TH_TEST(test_host_pages),
      TH_TEST(test_counters_and_histograms),
      TH_TEST(test_strict_refusals_counted),
      TH_TEST(test_alert_stall_and_tool_timeout),
      TH_TEST(test_alert_stall_repair_clears_at_once),
      TH_TEST(test_alert_slow_consumer_and_readyz),
      TH_TEST(test_alert_unacked),
      TH_TEST(test_alert_half_open),
      TH_TEST(test_alert_half_open_recovers),
      TH_TEST(test_alert_half_open_at_the_drop),
      TH_TEST(test_alert_loop_lag),
      TH_TEST(test_no_lag_alert_before_the_loop_runs),
      TH_TEST(test_alert_auth_timeouts),
      TH_TEST(test_alert_validation_rate),
      TH_TEST(test_log_levels),
      TH_TEST(test_monitor_off),
      cmocka_unit_test(test_threaded_log_and_queue),
      cmocka_unit_test(test_config_ranges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
