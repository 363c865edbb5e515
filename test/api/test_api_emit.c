/*
 * API tests of the emit API and the registry calls around it (agent
 * protocol): argument validation of every emit function, emit in raw mode
 * and after the manager closed, delivery to a user's connections (and
 * never to anyone else's), connection metadata, listing and revoking a
 * user's connections, rooms added and removed by the host, the offline
 * backlog replayed on resume, and emits from several threads at once.
 * Real loopback sockets; every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"
#include "client.h"
#include "harness.h"

#define USER AGENTWS_TARGET_USER
#define ROOM AGENTWS_TARGET_ROOM

/* A short wait that is expected to time out: nothing must arrive. */
#define QUIET_MS 150

/* ------------------------------------------------------------- helpers */

/* Connection ids in the order on_open saw them. */
typedef struct opened {
  uint64_t ids[16];
  int n;
} opened;

static void record_open(th_server *s, uint64_t id) {
  opened *o = s->test;
  if (o != NULL && o->n < 16)
    o->ids[o->n++] = id;
}

/* A protocol-mode config: dev mode (?user=), pings off. */
static agentws_config *proto_cfg(void) {
  agentws_config *cfg = NULL;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_dev_insecure(cfg, 1), 0);
  assert_int_equal(agentws_config_set_ping_interval_ms(cfg, 0), 0);
  assert_int_equal(agentws_config_set_close_timeout_ms(cfg, 500), 0);
  return cfg;
}

/* Host-loop manager with the recorders; |o| collects open ids. */
static void start(th_server *s, const agentws_config *cfg, opened *o) {
  memset(s, 0, sizeof(*s));
  assert_int_equal(th_start(s, cfg), 0);
  if (o != NULL) {
    memset(o, 0, sizeof(*o));
    s->test = o;
    s->on_open = record_open;
  }
}

/* Reads the next text message (pings/pongs skipped); caller frees. */
static char *read_text(tc_client *c, int timeout_ms) {
  for (;;) {
    tc_frame f;
    int r = tc_read_frame(c, &f, timeout_ms);
    if (r != 0)
      fail_msg("no message (%d)", r);
    if (f.opcode == TC_OP_PING || f.opcode == TC_OP_PONG) {
      tc_frame_free(&f);
      continue;
    }
    if (f.opcode != TC_OP_TEXT || !f.fin)
      fail_msg("expected a text frame, got opcode %d", f.opcode);
    return (char *)f.data;
  }
}

/* Nothing but pings arrives within |ms|. */
static void expect_quiet(tc_client *c, int ms) {
  uint64_t deadline = tc_now_ms() + (uint64_t)ms;
  for (;;) {
    tc_frame f;
    uint64_t now = tc_now_ms();
    int r;
    if (now >= deadline)
      return;
    r = tc_read_frame(c, &f, (int)(deadline - now));
    if (r == TC_TIMEOUT)
      return;
    if (r != 0)
      fail_msg("connection failed while expecting quiet (%d)", r);
    if (f.opcode == TC_OP_PING || f.opcode == TC_OP_PONG) {
      tc_frame_free(&f);
      continue;
    }
    fail_msg("unexpected message: %.300s", (const char *)f.data);
  }
}

/* The unsigned number after "key": in |json| (the first occurrence). */
static uint64_t json_u64(const char *json, const char *key) {
  char pat[64];
  const char *p;
  snprintf(pat, sizeof(pat), "\"%s\":", key);
  p = strstr(json, pat);
  if (p == NULL)
    fail_msg("no %s in %.300s", key, json);
  return strtoull(p + strlen(pat), NULL, 10);
}

/* The string after "key":" in |json| (no escapes expected). */
static void json_str(const char *json, const char *key, char *out,
                     size_t cap) {
  char pat[64];
  const char *p, *e;
  snprintf(pat, sizeof(pat), "\"%s\":\"", key);
  p = strstr(json, pat);
  if (p == NULL)
    fail_msg("no %s in %.300s", key, json);
  p += strlen(pat);
  e = strchr(p, '"');
  if (e == NULL || (size_t)(e - p) >= cap)
    fail_msg("bad %s in %.300s", key, json);
  memcpy(out, p, (size_t)(e - p));
  out[e - p] = '\0';
}

/* Runs the loop a little so queued emits are published. */
static void settle(th_server *s) {
  int i;
  for (i = 0; i < 20; i++) {
    uv_run(&s->loop, UV_RUN_NOWAIT);
    tc_sleep_ms(1);
  }
}

static int starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Upgrades a client on |path| and reads its welcome; stores the welcome's
 * seq and epoch (either may be NULL) and checks "recovered" if
 * |recovered| >= 0. */
static void connect_path(th_server *s, tc_client *c, const char *path,
                         const char *user, uint64_t *seq, char *epoch,
                         int recovered) {
  char want[300], *w;
  int r = tc_connect(c, "127.0.0.1", s->port, th_pump, s);
  if (r != 0)
    fail_msg("connect failed");
  r = tc_upgrade(c, path, NULL);
  if (r != 0)
    fail_msg("upgrade %s failed (%d): %s", path, r, c->head);
  w = read_text(c, TC_TIMEOUT_MS);
  snprintf(want, sizeof(want), "\"user\":\"%s\"", user);
  if (!starts_with(w, "{\"type\":\"welcome\"") || strstr(w, want) == NULL)
    fail_msg("not a welcome for %s: %.300s", user, w);
  if (seq != NULL)
    *seq = json_u64(w, "seq");
  if (epoch != NULL)
    json_str(w, "epoch", epoch, 40);
  if (recovered >= 0 &&
      strstr(w, recovered ? "\"recovered\":true" : "\"recovered\":false") ==
          NULL)
    fail_msg("welcome recovered != %d: %.300s", recovered, w);
  free(w);
}

static void connect_user(th_server *s, tc_client *c, const char *user) {
  char path[128];
  snprintf(path, sizeof(path), "/ws?user=%s", user);
  connect_path(s, c, path, user, NULL, NULL, -1);
}

/* Reads the next message; checks it is an event of |type| with |seq|,
 * containing |needle| (may be NULL); returns it (caller frees). */
static char *expect_event(tc_client *c, const char *type, uint64_t seq,
                          const char *needle) {
  char prefix[128], *m = read_text(c, TC_TIMEOUT_MS);
  snprintf(prefix, sizeof(prefix), "{\"type\":\"%s\"", type);
  if (!starts_with(m, prefix))
    fail_msg("expected %s, got %.300s", type, m);
  if (json_u64(m, "seq") != seq)
    fail_msg("expected seq %llu: %.300s", (unsigned long long)seq, m);
  if (needle != NULL && strstr(m, needle) == NULL)
    fail_msg("no %s in %.300s", needle, m);
  return m;
}

static void expect_event_free(tc_client *c, const char *type, uint64_t seq,
                              const char *needle) {
  free(expect_event(c, type, seq, needle));
}

/* Closes a client with 1000 and waits for the server's on_close. */
static void close_client(th_server *s, tc_client *c) {
  int code = 0, before = s->n_close;
  char reason[128];
  assert_int_equal(tc_send_close(c, 1000, "bye"), 0);
  assert_int_equal(tc_read_close(c, &code, reason, sizeof(reason),
                                 TC_TIMEOUT_MS),
                   0);
  tc_close(c);
  TH_RUN_UNTIL(s, s->n_close == before + 1);
}

static void local_address(const tc_client *c, char *out, size_t cap) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  assert_int_equal(getsockname(c->fd, (struct sockaddr *)&a, &len), 0);
  snprintf(out, cap, "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -------------------------------------------------- argument validation */

/* Every emit function with one argument varied, the rest valid; target
 * user "sink" (nobody connected: accepted events just go to its backlog).
 */
static void test_emit_validation(void **state) {
  static th_server s;
  agentws_config *cfg = proto_cfg();
  agentws_manager *m;
  char big[400], big_text[400], long_type[70], long_room[140];
  const char *bad = "bad\xc3\x28utf8"; /* invalid continuation byte */
  int t;
  (void)state;
  assert_int_equal(agentws_config_set_max_event_bytes(cfg, 256), 0);
  start(&s, cfg, NULL);
  agentws_config_free(cfg);
  m = s.m;

  /* ---- agent_started */
  assert_int_equal(agentws_emit_agent_started(m, USER, "sink", "r1", "a",
                                              NULL),
                   0);
  assert_int_equal(agentws_emit_agent_started(NULL, USER, "sink", "r1", "a",
                                              NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_started(m, USER, NULL, "r1", "a",
                                              NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_started(m, USER, "", "r1", "a", NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_started(m, USER, "sink", NULL, "a",
                                              NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_started(m, USER, "sink", "", "a",
                                              NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_started(m, USER, "sink", "r1", NULL,
                                              NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_started(m, USER, "sink", "r1", "",
                                              NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_started(m, USER, bad, "r1", "a", NULL),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_emit_agent_started(m, USER, "sink", bad, "a",
                                              NULL),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_emit_agent_started(m, USER, "sink", "r1", bad,
                                              NULL),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_emit_agent_started(m, USER, "sink", "r1", "a",
                                              "{\"input\":\"q\"}"),
                   0);
  assert_int_equal(agentws_emit_agent_started(m, USER, "sink", "r1", "a",
                                              "[1]"),
                   AGENTWS_ERR_INVALID_JSON);
  assert_int_equal(agentws_emit_agent_started(m, USER, "sink", "r1", "a",
                                              "{\"x\":"),
                   AGENTWS_ERR_INVALID_JSON);
  assert_int_equal(agentws_emit_agent_started(m, USER, "sink", "r1", "a",
                                              "{\"agent\":\"other\"}"),
                   AGENTWS_ERR_INVALID_JSON);
  assert_int_equal(agentws_emit_agent_started(m, USER, "sink", "r1", "a",
                                              "{\"k\":\"\xff\"}"),
                   AGENTWS_ERR_INVALID_UTF8);

  /* ---- agent_thinking */
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "sink", "r1", "hi",
                                               2, NULL),
                   0);
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "sink", "r1", NULL,
                                               0, "{\"progress\":0.5}"),
                   0);
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "sink", "r1", NULL,
                                               3, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "", "r1", "hi", 2,
                                               NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "sink", NULL, "hi",
                                               2, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "sink", "r1",
                                               "\xff\xfe", 2, NULL),
                   AGENTWS_ERR_INVALID_UTF8);
  /* A half code point at the end of the given length. */
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "sink", "r1",
                                               "\xc3\xb6", 1, NULL),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "sink", "r1", "hi",
                                               2, "{\"text\":\"x\"}"),
                   AGENTWS_ERR_INVALID_JSON);
  /* The collision is found on decoded keys too. */
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "sink", "r1", "hi",
                                               2, "{\"\\u0074ext\":\"x\"}"),
                   AGENTWS_ERR_INVALID_JSON);
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "sink", "r1", "hi",
                                               2, "\"text\""),
                   AGENTWS_ERR_INVALID_JSON);
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "sink", "r1", "hi",
                                               2, "{\"a\":1,\"a\":2}"),
                   AGENTWS_ERR_INVALID_JSON);

  /* ---- tool_executing */
  assert_int_equal(agentws_emit_tool_executing(m, USER, "sink", "r1", "web",
                                               "c1", "{\"q\":1}"),
                   0);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "sink", "r1", "web",
                                               "c1", " [1, 2] "),
                   0);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "sink", "r1", "web",
                                               "c1", NULL),
                   0);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "sink", "r1", NULL,
                                               "c1", NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "sink", "r1", "",
                                               "c1", NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "sink", "r1", "web",
                                               NULL, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "sink", "r1", "web",
                                               "", NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "sink", "", "web",
                                               "c1", NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "sink", "r1", bad,
                                               "c1", NULL),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "sink", "r1", "web",
                                               bad, NULL),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "sink", "r1", "web",
                                               "c1", "{"),
                   AGENTWS_ERR_INVALID_JSON);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "sink", "r1", "web",
                                               "c1", "nope"),
                   AGENTWS_ERR_INVALID_JSON);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "sink", "r1", "web",
                                               "c1", "1 2"),
                   AGENTWS_ERR_INVALID_JSON);

  /* ---- tool_completed */
  assert_int_equal(agentws_emit_tool_completed(m, USER, "sink", "r1", "web",
                                               "c1", 1, 12, "\"done\""),
                   0);
  assert_int_equal(agentws_emit_tool_completed(m, USER, "sink", "r1", "web",
                                               "c1", 0, 0, NULL),
                   0);
  assert_int_equal(agentws_emit_tool_completed(m, USER, "sink", "r1", "web",
                                               "c1", 1, -1, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_tool_completed(m, USER, "sink", "r1", NULL,
                                               "c1", 1, 1, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_tool_completed(m, USER, "sink", "r1", "web",
                                               "", 1, 1, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_tool_completed(m, USER, "sink", NULL, "web",
                                               "c1", 1, 1, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_tool_completed(m, USER, "sink", "r1", "web",
                                               bad, 1, 1, NULL),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_emit_tool_completed(m, USER, "sink", "r1", "web",
                                               "c1", 1, 1, "{\"a\":}"),
                   AGENTWS_ERR_INVALID_JSON);

  /* ---- agent_completed */
  assert_int_equal(agentws_emit_agent_completed(m, USER, "sink", "r1", 5,
                                                "{\"answer\":42}",
                                                "{\"usage\":{\"t\":1}}"),
                   0);
  assert_int_equal(agentws_emit_agent_completed(m, USER, "sink", "r1", -5,
                                                NULL, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_completed(m, USER, "sink", "", 5, NULL,
                                                NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_completed(m, USER, "sink", bad, 5, NULL,
                                                NULL),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_emit_agent_completed(m, USER, "sink", "r1", 5,
                                                "{x}", NULL),
                   AGENTWS_ERR_INVALID_JSON);
  assert_int_equal(agentws_emit_agent_completed(m, USER, "sink", "r1", 5,
                                                NULL, "{\"duration_ms\":1}"),
                   AGENTWS_ERR_INVALID_JSON);
  assert_int_equal(agentws_emit_agent_completed(m, USER, "sink", "r1", 5,
                                                NULL, "null"),
                   AGENTWS_ERR_INVALID_JSON);

  /* ---- agent_error */
  assert_int_equal(agentws_emit_agent_error(m, USER, "sink", "r1", "E1",
                                            "boom", "error", 1, NULL),
                   0);
  assert_int_equal(agentws_emit_agent_error(m, USER, "sink", "r1", NULL,
                                            "boom", "error", 1, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_error(m, USER, "sink", "r1", "E1", "",
                                            "error", 1, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_error(m, USER, "sink", "r1", "E1",
                                            "boom", NULL, 1, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_error(m, USER, "sink", "r1", "E1",
                                            "boom", "", 1, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_error(m, USER, "sink", "r1", "E1",
                                            "boom", "bogus", 1, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_error(m, USER, "sink", NULL, "E1",
                                            "boom", "error", 1, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_agent_error(m, USER, "sink", "r1", bad,
                                            "boom", "error", 1, NULL),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_emit_agent_error(m, USER, "sink", "r1", "E1", bad,
                                            "error", 1, NULL),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_emit_agent_error(m, USER, "sink", "r1", "E1",
                                            "boom", "error", 1,
                                            "{\"code\":\"x\"}"),
                   AGENTWS_ERR_INVALID_JSON);
  assert_int_equal(agentws_emit_agent_error(m, USER, "sink", "r1", "E1",
                                            "boom", "error", 1,
                                            "{\"hint\":\"retry\"}"),
                   0);

  /* ---- custom */
  assert_int_equal(agentws_emit_custom(m, USER, "sink", "note", NULL, NULL),
                   0);
  assert_int_equal(agentws_emit_custom(m, USER, "sink", "a.b-c_9", "r1",
                                       "{\"k\":1}"),
                   0);
  memset(long_type, 'a', 64);
  long_type[64] = '\0';
  assert_int_equal(agentws_emit_custom(m, USER, "sink", long_type, NULL,
                                       NULL),
                   0);
  long_type[64] = 'a';
  long_type[65] = '\0';
  assert_int_equal(agentws_emit_custom(m, USER, "sink", long_type, NULL,
                                       NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  {
    static const char *const bad_types[] = {
        "",        "Note",    "1note",   "_note",          ".note",
        "no te",   "no/te",   "n\xc3\xb6te", "agent_x",    "agent_started",
        "tool_x",  "welcome", "gap",     "error",          "pong",
        "resumed", "joined",  "left",    "token_expiring", "ping",
        "resume",  "ack",     "join",    "leave",          "refresh"};
    size_t i;
    for (i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
      int rv = agentws_emit_custom(m, USER, "sink", bad_types[i], NULL, NULL);
      if (rv != AGENTWS_ERR_INVALID_ARGUMENT)
        fail_msg("custom type \"%s\": %s", bad_types[i],
                 agentws_err_name(rv));
    }
  }
  assert_int_equal(agentws_emit_custom(m, USER, "sink", NULL, NULL, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_custom(m, USER, "sink", "note", "", NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_custom(m, USER, "sink", "note", bad, NULL),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_emit_custom(m, USER, NULL, "note", NULL, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_emit_custom(m, USER, bad, "note", NULL, NULL),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_emit_custom(m, USER, "sink", "note", NULL, "[]"),
                   AGENTWS_ERR_INVALID_JSON);
  assert_int_equal(agentws_emit_custom(m, USER, "sink", "note", NULL, ""),
                   AGENTWS_ERR_INVALID_JSON);
  assert_int_equal(agentws_emit_custom(m, USER, "sink", "note", NULL,
                                       "{\"a\":1} {\"b\":2}"),
                   AGENTWS_ERR_INVALID_JSON);
  assert_int_equal(agentws_emit_custom(m, USER, "sink", "note", NULL,
                                       "{} x"),
                   AGENTWS_ERR_INVALID_JSON);

  /* ---- targets: 3, 0, -1 for every function */
  {
    static const int bad_targets[] = {3, 0, -1};
    size_t i;
    for (i = 0; i < 3; i++) {
      t = bad_targets[i];
      assert_int_equal(agentws_emit_agent_started(m, t, "sink", "r1", "a",
                                                  NULL),
                       AGENTWS_ERR_INVALID_ARGUMENT);
      assert_int_equal(agentws_emit_agent_thinking(m, t, "sink", "r1", "x",
                                                   1, NULL),
                       AGENTWS_ERR_INVALID_ARGUMENT);
      assert_int_equal(agentws_emit_tool_executing(m, t, "sink", "r1", "w",
                                                   "c", NULL),
                       AGENTWS_ERR_INVALID_ARGUMENT);
      assert_int_equal(agentws_emit_tool_completed(m, t, "sink", "r1", "w",
                                                   "c", 1, 1, NULL),
                       AGENTWS_ERR_INVALID_ARGUMENT);
      assert_int_equal(agentws_emit_agent_completed(m, t, "sink", "r1", 1,
                                                    NULL, NULL),
                       AGENTWS_ERR_INVALID_ARGUMENT);
      assert_int_equal(agentws_emit_agent_error(m, t, "sink", "r1", "E",
                                                "m", "error", 0, NULL),
                       AGENTWS_ERR_INVALID_ARGUMENT);
      assert_int_equal(agentws_emit_custom(m, t, "sink", "note", NULL, NULL),
                       AGENTWS_ERR_INVALID_ARGUMENT);
    }
  }

  /* ---- room targets: a valid room id, or INVALID_ARGUMENT */
  assert_int_equal(agentws_emit_custom(m, ROOM, "R-1.a_b:c", "note", NULL,
                                       NULL),
                   0);
  memset(long_room, 'r', 128);
  long_room[128] = '\0';
  assert_int_equal(agentws_emit_custom(m, ROOM, long_room, "note", NULL,
                                       NULL),
                   0);
  long_room[128] = 'r';
  long_room[129] = '\0';
  {
    const char *bad_rooms[] = {"bad room", "a/b", "r\xc3\xb6", "r\"", "",
                               long_room};
    size_t i;
    for (i = 0; i < sizeof(bad_rooms) / sizeof(bad_rooms[0]); i++) {
      const char *r = bad_rooms[i];
      assert_int_equal(agentws_emit_custom(m, ROOM, r, "note", NULL, NULL),
                       AGENTWS_ERR_INVALID_ARGUMENT);
      assert_int_equal(agentws_emit_agent_started(m, ROOM, r, "r1", "a",
                                                  NULL),
                       AGENTWS_ERR_INVALID_ARGUMENT);
      assert_int_equal(agentws_emit_agent_thinking(m, ROOM, r, "r1", "x", 1,
                                                   NULL),
                       AGENTWS_ERR_INVALID_ARGUMENT);
      assert_int_equal(agentws_emit_tool_executing(m, ROOM, r, "r1", "w",
                                                   "c", NULL),
                       AGENTWS_ERR_INVALID_ARGUMENT);
      assert_int_equal(agentws_emit_tool_completed(m, ROOM, r, "r1", "w",
                                                   "c", 1, 1, NULL),
                       AGENTWS_ERR_INVALID_ARGUMENT);
      assert_int_equal(agentws_emit_agent_completed(m, ROOM, r, "r1", 1,
                                                    NULL, NULL),
                       AGENTWS_ERR_INVALID_ARGUMENT);
      assert_int_equal(agentws_emit_agent_error(m, ROOM, r, "r1", "E", "m",
                                                "error", 0, NULL),
                       AGENTWS_ERR_INVALID_ARGUMENT);
    }
  }
  assert_int_equal(agentws_emit_custom(m, ROOM, NULL, "note", NULL, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);

  /* ---- max_event_bytes (256): the whole envelope counts */
  memset(big, 'x', sizeof(big));
  memcpy(big, "{\"k\":\"", 6);
  memcpy(big + 300, "\"}", 3);
  assert_int_equal(agentws_emit_custom(m, USER, "sink", "note", NULL, big),
                   AGENTWS_ERR_TOO_BIG);
  assert_int_equal(agentws_emit_agent_started(m, USER, "sink", "r1", "a",
                                              big),
                   AGENTWS_ERR_TOO_BIG);
  memset(big_text, 'y', 300);
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "sink", "r1",
                                               big_text, 300, NULL),
                   AGENTWS_ERR_TOO_BIG);
  /* Escaping counts: 60 control bytes are 360 bytes escaped. */
  memset(big_text, '\x01', 60);
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "sink", "r1",
                                               big_text, 60, NULL),
                   AGENTWS_ERR_TOO_BIG);
  memset(big_text, 'y', 300);
  big_text[300] = '\0';
  assert_int_equal(agentws_emit_agent_error(m, USER, "sink", "r1", "E",
                                            big_text, "error", 0, NULL),
                   AGENTWS_ERR_TOO_BIG);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "sink", "r1", "w",
                                               "c", big),
                   AGENTWS_ERR_TOO_BIG);
  assert_int_equal(agentws_emit_tool_completed(m, USER, "sink", "r1", "w",
                                               "c", 1, 1, big),
                   AGENTWS_ERR_TOO_BIG);
  assert_int_equal(agentws_emit_agent_completed(m, USER, "sink", "r1", 1,
                                                big, NULL),
                   AGENTWS_ERR_TOO_BIG);
  /* Just under: 100 bytes of data fit. */
  big[6 + 100] = '"';
  big[6 + 101] = '}';
  big[6 + 102] = '\0';
  assert_int_equal(agentws_emit_custom(m, USER, "sink", "note", NULL, big),
                   0);
  th_finish(&s);
}

static void test_emit_raw_mode(void **state) {
  static th_server s;
  agentws_manager *m;
  (void)state;
  start(&s, NULL, NULL); /* th_start(NULL): raw messages */
  m = s.m;
  assert_int_equal(agentws_emit_agent_started(m, USER, "u", "r", "a", NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "u", "r", "t", 1,
                                               NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "u", "r", "w", "c",
                                               NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_emit_tool_completed(m, USER, "u", "r", "w", "c",
                                               1, 1, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_emit_agent_completed(m, USER, "u", "r", 1, NULL,
                                                NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_emit_agent_error(m, USER, "u", "r", "E", "m",
                                            "error", 0, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_emit_custom(m, USER, "u", "note", NULL, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_emit_custom(m, ROOM, "r", "note", NULL, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  th_finish(&s);
}

static void test_emit_after_close(void **state) {
  static th_server s;
  agentws_config *cfg = proto_cfg();
  agentws_manager *m;
  tc_client c;
  int code = 0;
  char reason[64];
  (void)state;
  start(&s, cfg, NULL);
  agentws_config_free(cfg);
  m = s.m;
  connect_user(&s, &c, "alice");
  assert_int_equal(agentws_emit_custom(m, USER, "alice", "note", NULL,
                                       "{\"n\":1}"),
                   0);
  expect_event_free(&c, "note", 1, "\"n\":1");

  assert_int_equal(th_close(&s), 0);
  /* The client answers the shutdown close, so the close completes. */
  assert_int_equal(tc_read_close(&c, &code, reason, sizeof(reason),
                                 TC_TIMEOUT_MS),
                   0);
  assert_int_equal(code, 1001);
  assert_int_equal(tc_send_close(&c, 1001, ""), 0);
  TH_RUN_UNTIL(&s, s.n_closed == 1);
  tc_close(&c);
  assert_int_equal(agentws_emit_agent_started(m, USER, "alice", "r", "a",
                                              NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "alice", "r", "t", 1,
                                               NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_emit_tool_executing(m, USER, "alice", "r", "w",
                                               "c", NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_emit_tool_completed(m, USER, "alice", "r", "w",
                                               "c", 1, 1, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_emit_agent_completed(m, USER, "alice", "r", 1,
                                                NULL, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_emit_agent_error(m, USER, "alice", "r", "E", "m",
                                            "error", 0, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_emit_custom(m, USER, "alice", "note", NULL, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_emit_custom(m, ROOM, "r", "note", NULL, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  th_finish(&s);
}

/* ------------------------------------------------------------- delivery */

static void test_delivery_to_users(void **state) {
  static th_server s;
  static opened o;
  agentws_config *cfg = proto_cfg();
  agentws_manager *m;
  tc_client a1, a2, b1;
  uint64_t ids[4], seq_a = 0, seq_b = 0;
  const char *str = NULL;
  char addr[64];
  int64_t at = 0, now;
  size_t count = 0, n = 0;
  int i, code;
  char reason[64];
  (void)state;
  start(&s, cfg, &o);
  agentws_config_free(cfg);
  m = s.m;

  connect_path(&s, &a1, "/ws?user=alice", "alice", &seq_a, NULL, 1);
  connect_path(&s, &a2, "/ws?user=alice", "alice", NULL, NULL, 1);
  connect_path(&s, &b1, "/ws?user=bob", "bob", &seq_b, NULL, 1);
  TH_RUN_UNTIL(&s, o.n == 3);
  assert_int_equal(seq_a, 0);
  assert_int_equal(seq_b, 0);

  /* Three events to alice: both her connections, in order, never bob. */
  assert_int_equal(agentws_emit_agent_started(m, USER, "alice", "run-1",
                                              "planner", "{\"input\":\"q\"}"),
                   0);
  assert_int_equal(agentws_emit_agent_thinking(m, USER, "alice", "run-1",
                                               "th\"ink", 6, NULL),
                   0);
  assert_int_equal(agentws_emit_custom(m, USER, "alice", "note.x", NULL,
                                       "{\"n\":3}"),
                   0);
  {
    tc_client *cs[2] = {&a1, &a2};
    for (i = 0; i < 2; i++) {
      char *e = expect_event(cs[i], "agent_started", 1,
                             "\"run_id\":\"run-1\"");
      assert_non_null(strstr(e, "\"agent\":\"planner\""));
      assert_non_null(strstr(e, "\"input\":\"q\""));
      assert_null(strstr(e, "\"stream\""));
      assert_true(json_u64(e, "ts") > 1600000000000ull);
      free(e);
      expect_event_free(cs[i], "agent_thinking", 2,
                        "\"text\":\"th\\\"ink\"");
      expect_event_free(cs[i], "note.x", 3, "\"data\":{\"n\":3}");
    }
  }
  expect_quiet(&b1, QUIET_MS);
  /* Bob's own stream starts at 1. */
  assert_int_equal(agentws_emit_custom(m, USER, "bob", "note.y", NULL,
                                       "{\"to\":\"bob\"}"),
                   0);
  expect_event_free(&b1, "note.y", 1, "\"to\":\"bob\"");
  expect_quiet(&a1, QUIET_MS);
  expect_quiet(&a2, QUIET_MS);

  /* Metadata. */
  memcpy(ids, o.ids, sizeof(uint64_t) * 3);
  assert_int_equal(agentws_conn_get_user(m, ids[0], &str), 0);
  assert_string_equal(str, "alice");
  assert_int_equal(agentws_conn_get_user(m, ids[1], &str), 0);
  assert_string_equal(str, "alice");
  assert_int_equal(agentws_conn_get_user(m, ids[2], &str), 0);
  assert_string_equal(str, "bob");
  local_address(&a1, addr, sizeof(addr));
  assert_int_equal(agentws_conn_get_remote_address(m, ids[0], &str), 0);
  assert_string_equal(str, addr);
  local_address(&b1, addr, sizeof(addr));
  assert_int_equal(agentws_conn_get_remote_address(m, ids[2], &str), 0);
  assert_string_equal(str, addr);
  now = wall_ms();
  for (i = 0; i < 3; i++) {
    assert_int_equal(agentws_conn_get_connected_at(m, ids[i], &at), 0);
    assert_true(at <= now + 1000);
    assert_true(at >= now - 60000);
  }
  assert_int_equal(agentws_conn_get_user(m, 0, &str), AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_get_user(m, ids[2] + 100, &str),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_get_remote_address(m, ids[2] + 100, &str),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_get_connected_at(m, ids[2] + 100, &at),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_get_user(m, ids[0], NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_conn_get_remote_address(m, ids[0], NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_conn_get_connected_at(m, ids[0], NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_conn_get_user(NULL, ids[0], &str),
                   AGENTWS_ERR_INVALID_ARGUMENT);

  /* Listing. */
  {
    uint64_t got[4] = {0, 0, 0, 0};
    assert_int_equal(agentws_user_list_connections(m, "alice", got, 4,
                                                   &count),
                     0);
    assert_int_equal(count, 2);
    assert_true((got[0] == ids[0] && got[1] == ids[1]) ||
                (got[0] == ids[1] && got[1] == ids[0]));
    assert_int_equal(got[2], 0);
    got[0] = 0;
    got[1] = 777;
    assert_int_equal(agentws_user_list_connections(m, "alice", got, 1,
                                                   &count),
                     0);
    assert_int_equal(count, 2);
    assert_true(got[0] == ids[0] || got[0] == ids[1]);
    assert_int_equal(got[1], 777); /* beyond cap: untouched */
    assert_int_equal(agentws_user_list_connections(m, "alice", NULL, 0,
                                                   &count),
                     0);
    assert_int_equal(count, 2);
    assert_int_equal(agentws_user_list_connections(m, "bob", got, 4, &count),
                     0);
    assert_int_equal(count, 1);
    assert_int_equal(got[0], ids[2]);
    count = 99;
    assert_int_equal(agentws_user_list_connections(m, "nobody", got, 4,
                                                   &count),
                     0);
    assert_int_equal(count, 0);
    assert_int_equal(agentws_user_list_connections(m, NULL, got, 4, &count),
                     AGENTWS_ERR_INVALID_ARGUMENT);
    assert_int_equal(agentws_user_list_connections(m, "alice", got, 4, NULL),
                     AGENTWS_ERR_INVALID_ARGUMENT);
    assert_int_equal(agentws_user_list_connections(m, "alice", NULL, 4,
                                                   &count),
                     AGENTWS_ERR_INVALID_ARGUMENT);
    assert_int_equal(agentws_user_list_connections(NULL, "alice", got, 4,
                                                   &count),
                     AGENTWS_ERR_INVALID_ARGUMENT);
  }

  /* Revocation: both of alice's connections, not bob's. */
  n = 99;
  assert_int_equal(agentws_user_disconnect(m, "nobody", 4001, "x", 1, &n),
                   0);
  assert_int_equal(n, 0);
  assert_int_equal(agentws_user_disconnect(NULL, "alice", 4001, "x", 1, &n),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_user_disconnect(m, NULL, 4001, "x", 1, &n),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_user_disconnect(m, "alice", 4001, "revoked", 7,
                                           &n),
                   0);
  assert_int_equal(n, 2);
  {
    tc_client *cs[2] = {&a1, &a2};
    for (i = 0; i < 2; i++) {
      code = 0;
      assert_int_equal(tc_read_close(cs[i], &code, reason, sizeof(reason),
                                     TC_TIMEOUT_MS),
                       0);
      assert_int_equal(code, 4001);
      assert_string_equal(reason, "revoked");
      assert_int_equal(tc_send_close(cs[i], 4001, ""), 0);
      assert_int_equal(tc_wait_eof(cs[i], TC_TIMEOUT_MS), 0);
      tc_close(cs[i]);
    }
  }
  TH_RUN_UNTIL(&s, s.n_close == 2);
  assert_int_equal(agentws_user_list_connections(m, "alice", NULL, 0,
                                                 &count),
                   0);
  assert_int_equal(count, 0);
  assert_int_equal(agentws_conn_get_user(m, ids[0], &str),
                   AGENTWS_ERR_NOT_FOUND);
  /* Bob is still live. */
  assert_int_equal(agentws_emit_custom(m, USER, "bob", "note.y", NULL,
                                       "{\"after\":1}"),
                   0);
  expect_event_free(&b1, "note.y", 2, "\"after\":1");
  close_client(&s, &b1);
  th_finish(&s);
  assert_int_equal(s.bad_user_data, 0);
}

static void test_rooms_from_the_host(void **state) {
  static th_server s;
  static opened o;
  agentws_config *cfg = proto_cfg();
  agentws_manager *m;
  tc_client a1, b1, c1;
  uint64_t ida, idb, idc;
  char *msg;
  (void)state;
  start(&s, cfg, &o);
  agentws_config_free(cfg);
  m = s.m;
  connect_user(&s, &a1, "alice");
  connect_user(&s, &b1, "bob");
  connect_user(&s, &c1, "carol");
  TH_RUN_UNTIL(&s, o.n == 3);
  ida = o.ids[0];
  idb = o.ids[1];
  idc = o.ids[2];

  /* Errors. */
  assert_int_equal(agentws_room_add(m, ida, "bad room"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_room_add(m, ida, ""),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_room_add(m, ida, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_room_add(m, idc + 100, "R"),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_room_add(NULL, ida, "R"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_room_remove(m, ida, "R"), AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_room_remove(m, idc + 100, "R"),
                   AGENTWS_ERR_NOT_FOUND);

  /* An event before anyone joined is history, not live for later joiners
   * (adding starts at the live edge). */
  assert_int_equal(agentws_emit_custom(m, ROOM, "R", "room.ev", NULL,
                                       "{\"n\":0}"),
                   0);
  settle(&s);
  assert_int_equal(agentws_room_add(m, ida, "R"), 0);
  msg = read_text(&a1, TC_TIMEOUT_MS);
  if (!starts_with(msg, "{\"type\":\"joined\"") ||
      strstr(msg, "\"stream\":\"room:R\"") == NULL)
    fail_msg("not joined: %.300s", msg);
  free(msg);
  assert_int_equal(agentws_room_add(m, idb, "R"), 0);
  free(read_text(&b1, TC_TIMEOUT_MS));
  assert_int_equal(agentws_room_add(m, ida, "R"), 0); /* already in */

  /* Room events reach members only and carry their stream. */
  assert_int_equal(agentws_emit_custom(m, ROOM, "R", "room.ev", NULL,
                                       "{\"n\":1}"),
                   0);
  assert_int_equal(agentws_emit_agent_started(m, ROOM, "R", "rr", "team",
                                              NULL),
                   0);
  expect_event_free(&a1, "room.ev", 2, "\"stream\":\"room:R\"");
  expect_event_free(&a1, "agent_started", 3, "\"stream\":\"room:R\"");
  expect_event_free(&b1, "room.ev", 2, "\"stream\":\"room:R\"");
  expect_event_free(&b1, "agent_started", 3, "\"stream\":\"room:R\"");
  expect_quiet(&c1, QUIET_MS);

  /* The user stream is separate: alice's own events still start at 1. */
  assert_int_equal(agentws_emit_custom(m, USER, "alice", "own", NULL, NULL),
                   0);
  msg = expect_event(&a1, "own", 1, NULL);
  assert_null(strstr(msg, "\"stream\""));
  free(msg);

  /* Leaving stops them. */
  assert_int_equal(agentws_room_remove(m, idb, "R"), 0);
  msg = read_text(&b1, TC_TIMEOUT_MS);
  if (!starts_with(msg, "{\"type\":\"left\"") ||
      strstr(msg, "\"room\":\"R\"") == NULL)
    fail_msg("not left: %.300s", msg);
  free(msg);
  assert_int_equal(agentws_room_remove(m, idb, "R"), AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_emit_custom(m, ROOM, "R", "room.ev", NULL,
                                       "{\"n\":4}"),
                   0);
  expect_event_free(&a1, "room.ev", 4, "\"n\":4");
  expect_quiet(&b1, QUIET_MS);
  expect_quiet(&c1, QUIET_MS);

  /* Two rooms at once; a closed member is dropped from both. */
  assert_int_equal(agentws_room_add(m, idc, "R"), 0);
  free(read_text(&c1, TC_TIMEOUT_MS));
  assert_int_equal(agentws_room_add(m, idc, "S"), 0);
  free(read_text(&c1, TC_TIMEOUT_MS));
  assert_int_equal(agentws_emit_custom(m, ROOM, "S", "room.ev", NULL,
                                       "{\"s\":1}"),
                   0);
  expect_event_free(&c1, "room.ev", 1, "\"stream\":\"room:S\"");
  expect_quiet(&a1, QUIET_MS);
  close_client(&s, &c1);
  assert_int_equal(agentws_emit_custom(m, ROOM, "R", "room.ev", NULL,
                                       "{\"n\":5}"),
                   0);
  expect_event_free(&a1, "room.ev", 5, "\"n\":5");
  close_client(&s, &a1);
  close_client(&s, &b1);
  th_finish(&s);
}

/* Events go to a room's members by reference (framed once, shared, written
 * with sendmsg beside the connection's own copied bytes, copied past
 * AGENTWS__MAX_SEGS queued); a member whose socket
 * fills gets the rest copied for uv_write; one that vanishes with shared
 * frames queued gives them back. Every member reads every event whole and
 * in order. */
#define SHARED_N 40
static size_t shared_size(int i) {
  static const size_t sizes[] = {50, 3000, 600000, 2100};
  return sizes[i % 4];
}

static void test_shared_frames_in_a_room(void **state) {
  static th_server s;
  static opened o;
  agentws_config *cfg = proto_cfg();
  tc_client a1, b1, c1;
  char *data = malloc(600000 + 64);
  int i;
  (void)state;
  /* 6 MB at once, more than a loopback socket buffers: the rest waits. */
  assert_int_equal(agentws_config_set_max_event_bytes(cfg, 1u << 20), 0);
  assert_int_equal(agentws_config_set_max_queued_bytes(cfg, 8u << 20), 0);
  start(&s, cfg, &o);
  agentws_config_free(cfg);
  connect_user(&s, &a1, "alice");
  connect_user(&s, &b1, "bob");
  connect_user(&s, &c1, "carol");
  TH_RUN_UNTIL(&s, o.n == 3);
  for (i = 0; i < 3; i++) {
    assert_int_equal(agentws_room_add(s.m, o.ids[i], "R"), 0);
  }
  free(read_text(&a1, TC_TIMEOUT_MS)); /* joined */
  free(read_text(&b1, TC_TIMEOUT_MS));
  free(read_text(&c1, TC_TIMEOUT_MS));
  for (i = 0; i < SHARED_N; i++) {
    size_t pad = shared_size(i);
    int n = snprintf(data, 64, "{\"i\":%d,\"pad\":\"", i);
    memset(data + n, 'a' + i % 26, pad);
    memcpy(data + (size_t)n + pad, "\"}", 3);
    assert_int_equal(agentws_emit_custom(s.m, ROOM, "R", "big", NULL, data),
                     0);
  }
  /* carol goes away with everything still queued. */
  tc_close(&c1);
  /* alice reads everything first; bob's socket meanwhile fills up. */
  for (i = 0; i < 2 * SHARED_N; i++) {
    tc_client *c = i < SHARED_N ? &a1 : &b1;
    {
      char needle[64];
      int k = i % SHARED_N;
      char *m = expect_event(c, "big", (uint64_t)k + 1, NULL);
      const char *p;
      size_t run = 0;
      snprintf(needle, sizeof(needle), "{\"i\":%d,\"pad\":\"", k);
      p = strstr(m, needle);
      if (p == NULL)
        fail_msg("event %d: no %s", k, needle);
      for (p += strlen(needle); *p == 'a' + k % 26; p++)
        run++;
      if (run != shared_size(k) || strncmp(p, "\"}", 2) != 0)
        fail_msg("event %d: pad of %zu bytes, want %zu", k, run,
                 shared_size(k));
      free(m);
    }
  }
  /* Bytes the host queues afterwards come after all of them. */
  assert_int_equal(agentws_conn_send(s.m, o.ids[0], AGENTWS_MSG_TEXT,
                                     (const uint8_t *)"{\"type\":\"after\"}",
                                     16),
                   0);
  {
    char *m = read_text(&a1, TC_TIMEOUT_MS);
    assert_string_equal(m, "{\"type\":\"after\"}");
    free(m);
  }
  TH_RUN_UNTIL(&s, s.n_close >= 1);
  close_client(&s, &a1);
  close_client(&s, &b1);
  free(data);
  th_finish(&s);
}

static void test_offline_backlog_replayed(void **state) {
  static th_server s;
  agentws_config *cfg = proto_cfg();
  agentws_manager *m;
  tc_client d1, d2, d3;
  char epoch[40], epoch2[40], path[160], needle[32];
  uint64_t seq = 99, i;
  (void)state;
  start(&s, cfg, NULL);
  agentws_config_free(cfg);
  m = s.m;

  /* Nobody connected: kept, not dropped. */
  for (i = 1; i <= 3; i++) {
    char data[32];
    snprintf(data, sizeof(data), "{\"n\":%llu}", (unsigned long long)i);
    assert_int_equal(agentws_emit_custom(m, USER, "dora", "offline.n", NULL,
                                         data),
                     0);
  }
  settle(&s); /* published before anyone connects */

  /* Without resume parameters: the live edge, nothing replayed. */
  connect_path(&s, &d1, "/ws?user=dora", "dora", &seq, epoch, 1);
  assert_int_equal(seq, 3);
  expect_quiet(&d1, QUIET_MS);

  /* Resume from 0 in that epoch: everything held, in order. */
  snprintf(path, sizeof(path), "/ws?user=dora&epoch=%s&last_seq=0", epoch);
  seq = 99;
  connect_path(&s, &d2, path, "dora", &seq, epoch2, 1);
  assert_int_equal(seq, 3);
  assert_string_equal(epoch, epoch2);
  for (i = 1; i <= 3; i++) {
    snprintf(needle, sizeof(needle), "\"n\":%llu", (unsigned long long)i);
    expect_event_free(&d2, "offline.n", i, needle);
  }
  expect_quiet(&d2, QUIET_MS);

  /* Resume from 2: only 3. */
  snprintf(path, sizeof(path), "/ws?user=dora&epoch=%s&last_seq=2", epoch);
  connect_path(&s, &d3, path, "dora", NULL, NULL, 1);
  expect_event_free(&d3, "offline.n", 3, "\"n\":3");

  /* A live event reaches all three once. */
  assert_int_equal(agentws_emit_custom(m, USER, "dora", "offline.n", NULL,
                                       "{\"n\":4}"),
                   0);
  expect_event_free(&d1, "offline.n", 4, "\"n\":4");
  expect_event_free(&d2, "offline.n", 4, "\"n\":4");
  expect_event_free(&d3, "offline.n", 4, "\"n\":4");
  expect_quiet(&d1, QUIET_MS);
  expect_quiet(&d2, 0);
  expect_quiet(&d3, 0);
  close_client(&s, &d1);
  close_client(&s, &d2);
  close_client(&s, &d3);
  th_finish(&s);
}

/* --------------------------------------------------------- many threads */

#define NTHREADS 4
#define PER_THREAD 400

typedef struct emitter_arg {
  agentws_manager *m;
  char user[16];
  int failures; /* emits that did not return 0 */
} emitter_arg;

static void emitter_main(void *p) {
  emitter_arg *a = p;
  int i;
  for (i = 1; i <= PER_THREAD; i++) {
    char data[64];
    snprintf(data, sizeof(data), "{\"user\":\"%s\",\"i\":%d}", a->user, i);
    if (agentws_emit_custom(a->m, USER, a->user, "mt.tick", NULL, data) != 0)
      a->failures++;
    if (i % 50 == 0 && agentws_emit_agent_thinking(a->m, USER, "spare", "r",
                                                   "t", 1, NULL) != 0)
      a->failures++; /* another stream, from every thread */
  }
}

/* A threaded manager: four threads emit at once, each to its own user;
 * each user's client gets exactly its events, in each thread's order. */
static void test_emit_from_threads(void **state) {
  static th_server s;
  static emitter_arg args[NTHREADS];
  agentws_config *cfg = proto_cfg();
  agentws_callbacks *cbs = th_callbacks();
  tc_client cs[NTHREADS];
  uv_thread_t th[NTHREADS];
  int k, i;
  (void)state;
  memset(&s, 0, sizeof(s));
  s.threaded = 1;
  th_track(&s);
  assert_non_null(cbs);
  assert_int_equal(agentws_config_set_backlog_events(cfg, 10000), 0);
  assert_int_equal(agentws_manager_new_threaded(&s.m, cfg, cbs, &s), 0);
  agentws_config_free(cfg);
  agentws_callbacks_free(cbs);
  assert_int_equal(agentws_manager_listen(s.m, "127.0.0.1", 0, &s.port), 0);
  assert_int_equal(agentws_manager_start(s.m), 0);

  for (k = 0; k < NTHREADS; k++) {
    char path[64], want[64], *w;
    snprintf(args[k].user, sizeof(args[k].user), "mt%d", k);
    args[k].m = s.m;
    args[k].failures = 0;
    snprintf(path, sizeof(path), "/ws?user=%s", args[k].user);
    assert_int_equal(tc_connect(&cs[k], "127.0.0.1", s.port, NULL, NULL), 0);
    assert_int_equal(tc_upgrade(&cs[k], path, NULL), 0);
    w = read_text(&cs[k], TC_TIMEOUT_MS);
    snprintf(want, sizeof(want), "\"user\":\"%s\"", args[k].user);
    assert_non_null(strstr(w, want));
    free(w);
  }
  for (k = 0; k < NTHREADS; k++)
    assert_int_equal(uv_thread_create(&th[k], emitter_main, &args[k]), 0);
  for (k = 0; k < NTHREADS; k++)
    assert_int_equal(uv_thread_join(&th[k]), 0);
  for (k = 0; k < NTHREADS; k++)
    assert_int_equal(args[k].failures, 0);

  for (k = 0; k < NTHREADS; k++) {
    for (i = 1; i <= PER_THREAD; i++) {
      char needle[64];
      snprintf(needle, sizeof(needle), "\"data\":{\"user\":\"%s\",\"i\":%d}",
               args[k].user, i);
      expect_event_free(&cs[k], "mt.tick", (uint64_t)i, needle);
    }
    expect_quiet(&cs[k], k == 0 ? QUIET_MS : 0);
  }

  /* Stopped: emits are refused, from any thread. */
  assert_int_equal(agentws_manager_stop(s.m), 0);
  assert_int_equal(agentws_emit_custom(s.m, USER, "mt0", "mt.tick", NULL,
                                       NULL),
                   AGENTWS_ERR_INVALID_STATE);
  for (k = 0; k < NTHREADS; k++)
    tc_close(&cs[k]);
  agentws_manager_free(s.m);
  s.m = NULL;
  th_track(NULL);
}

/* Emits racing agentws_manager_stop() from other threads: each returns 0
 * or INVALID_STATE, and once stop has returned only INVALID_STATE. */
typedef struct racer {
  agentws_manager *m;
  atomic_int *stopped;   /* set after agentws_manager_stop() returned */
  int other;             /* results other than 0 / INVALID_STATE */
  int late_ok;           /* 0 returned after stop had returned */
  int refused;           /* INVALID_STATE seen */
} racer;

static void racer_main(void *p) {
  racer *r = p;
  uint64_t deadline = tc_now_ms() + TH_TIMEOUT_MS;
  int i;
  for (i = 0; tc_now_ms() < deadline; i++) {
    int was_stopped = atomic_load(r->stopped);
    if (i % 64 == 63)
      uv_sleep(0); /* yield; bounds the queue the loop has to drain */
    int rv = agentws_emit_custom(r->m, USER, "racer", "race.tick", NULL,
                                 "{\"i\":1}");
    if (rv == AGENTWS_ERR_INVALID_STATE) {
      if (++r->refused > 100)
        return;
    } else if (rv != 0) {
      r->other++;
    } else if (was_stopped) {
      r->late_ok++;
    }
  }
}

static void test_emit_races_stop(void **state) {
  static th_server s;
  static racer rs[NTHREADS];
  static atomic_int stopped;
  agentws_config *cfg = proto_cfg();
  uv_thread_t th[NTHREADS];
  tc_client c;
  int k;
  (void)state;
  memset(&s, 0, sizeof(s));
  s.threaded = 1;
  th_track(&s);
  atomic_store(&stopped, 0);
  assert_int_equal(agentws_manager_new_threaded(&s.m, cfg, NULL, NULL), 0);
  agentws_config_free(cfg);
  assert_int_equal(agentws_manager_listen(s.m, "127.0.0.1", 0, &s.port), 0);
  assert_int_equal(agentws_manager_start(s.m), 0);
  /* A watcher, so events are delivered while the close begins. */
  assert_int_equal(tc_connect(&c, "127.0.0.1", s.port, NULL, NULL), 0);
  assert_int_equal(tc_upgrade(&c, "/ws?user=racer", NULL), 0);
  free(read_text(&c, TC_TIMEOUT_MS));
  for (k = 0; k < NTHREADS; k++) {
    memset(&rs[k], 0, sizeof(rs[k]));
    rs[k].m = s.m;
    rs[k].stopped = &stopped;
    assert_int_equal(uv_thread_create(&th[k], racer_main, &rs[k]), 0);
  }
  tc_sleep_ms(20);
  assert_int_equal(agentws_manager_stop(s.m), 0);
  atomic_store(&stopped, 1);
  for (k = 0; k < NTHREADS; k++)
    assert_int_equal(uv_thread_join(&th[k]), 0);
  for (k = 0; k < NTHREADS; k++) {
    assert_int_equal(rs[k].other, 0);
    assert_int_equal(rs[k].late_ok, 0);
    assert_true(rs[k].refused > 0);
  }
  tc_close(&c);
  agentws_manager_free(s.m);
  s.m = NULL;
  th_track(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(test_emit_validation),
      TH_TEST(test_emit_raw_mode),
      TH_TEST(test_emit_after_close),
      TH_TEST(test_delivery_to_users),
      TH_TEST(test_rooms_from_the_host),
      TH_TEST(test_shared_frames_in_a_room),
      TH_TEST(test_offline_backlog_replayed),
      TH_TEST(test_emit_from_threads),
      TH_TEST(test_emit_races_stop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
