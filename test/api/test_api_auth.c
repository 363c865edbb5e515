/*
 * API tests of who a connection belongs to (agent protocol, host loop):
 * the 401 without a hook, the insecure dev mode (?user=NAME), the
 * on_authenticate hook answered inside the call or later from a uv timer,
 * its refusals, timeout (503) and failure (500), the request accessors,
 * answers for ids that are not pending, the per-user connection limit
 * (429), and a hook in raw mode. Real loopback sockets; every wait is
 * bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"
#include "client.h"
#include "harness.h"

/* ------------------------------------------------------------- helpers */

/* What the hook does with a handshake. */
enum hook_mode {
  HOOK_SYNC_ACCEPT,  /* agentws_conn_accept() inside the hook */
  HOOK_SYNC_REFUSE,  /* agentws_conn_refuse() inside the hook */
  HOOK_ASYNC_ACCEPT, /* accept from a uv timer, delay_ms later */
  HOOK_ASYNC_REFUSE, /* refuse from a uv timer */
  HOOK_NONE,         /* never answers */
  HOOK_FAIL          /* returns nonzero without answering */
};

typedef struct auth_state {
  int mode;
  const char *user;       /* accepted user id */
  int refuse_status;
  const char *refuse_reason;
  uint64_t delay_ms;      /* async answers */
  int calls;              /* hook invocations */
  uint64_t id;            /* last id the hook saw */
  const agentws_request *req; /* kept for an async answer */
  /* Inside the hook. */
  char target[256];
  char hdr_token[128];    /* "x-test-token" asked in lower case */
  char hdr_upgrade[64];   /* "UPGRADE" */
  int hdr_missing_null;   /* a header not sent reads as NULL */
  int hdr_null_name_null; /* NULL name reads as NULL */
  char remote[64];
  int accept_bad_rv[3];   /* accept with "", NULL, bad UTF-8 */
  int refuse_range_rv[2]; /* refuse 399 and 600 */
  int answer_rv;          /* the real answer */
  int second_rv;          /* a second answer after it */
  /* Inside the timer. */
  uv_timer_t timer;
  int timer_inited;
  int timer_fired;
  uint64_t timer_at;      /* tc_now_ms() when it fired */
  char timer_target[256]; /* the request read in the timer, still valid */
  int timer_rv;
  int timer_second_rv;
} auth_state;

static void copy_str(char *dst, size_t cap, const char *src) {
  if (src == NULL) {
    snprintf(dst, cap, "(null)");
    return;
  }
  snprintf(dst, cap, "%s", src);
}

static int answer(agentws_manager *m, auth_state *a, int accept) {
  if (accept)
    return agentws_conn_accept(m, a->id, a->user);
  return agentws_conn_refuse(m, a->id, a->refuse_status, a->refuse_reason);
}

static void on_timer(uv_timer_t *h) {
  th_server *s = h->data;
  auth_state *a = s->test;
  copy_str(a->timer_target, sizeof(a->timer_target),
           agentws_request_get_target(a->req));
  a->timer_rv = answer(s->m, a, a->mode == HOOK_ASYNC_ACCEPT);
  /* Answered: a second answer finds nothing pending. */
  a->timer_second_rv = agentws_conn_accept(s->m, a->id, "second");
  a->timer_at = tc_now_ms();
  a->timer_fired = 1;
}

static int on_auth(agentws_manager *m, uint64_t id, const agentws_request *req,
                   void *ud) {
  th_server *s = ud;
  auth_state *a = s->test;
  a->calls++;
  a->id = id;
  a->req = req;
  if (m != s->m)
    s->bad_manager++;
  copy_str(a->target, sizeof(a->target), agentws_request_get_target(req));
  copy_str(a->hdr_token, sizeof(a->hdr_token),
           agentws_request_get_header(req, "x-test-token"));
  copy_str(a->hdr_upgrade, sizeof(a->hdr_upgrade),
           agentws_request_get_header(req, "UPGRADE"));
  a->hdr_missing_null = agentws_request_get_header(req, "X-Not-Sent") == NULL;
  a->hdr_null_name_null = agentws_request_get_header(req, NULL) == NULL;
  copy_str(a->remote, sizeof(a->remote),
           agentws_request_get_remote_address(req));
  a->accept_bad_rv[0] = agentws_conn_accept(m, id, "");
  a->accept_bad_rv[1] = agentws_conn_accept(m, id, NULL);
  a->accept_bad_rv[2] = agentws_conn_accept(m, id, "bad\xff");
  a->refuse_range_rv[0] = agentws_conn_refuse(m, id, 399, "x");
  a->refuse_range_rv[1] = agentws_conn_refuse(m, id, 600, "x");
  switch (a->mode) {
  case HOOK_SYNC_ACCEPT:
  case HOOK_SYNC_REFUSE:
    a->answer_rv = answer(m, a, a->mode == HOOK_SYNC_ACCEPT);
    a->second_rv = agentws_conn_accept(m, id, "second");
    return 0;
  case HOOK_ASYNC_ACCEPT:
  case HOOK_ASYNC_REFUSE:
    if (!a->timer_inited) {
      uv_timer_init(&s->loop, &a->timer);
      a->timer.data = s;
      a->timer_inited = 1;
    }
    uv_timer_start(&a->timer, on_timer, a->delay_ms, 0);
    return 0;
  case HOOK_FAIL:
    return -1;
  default:
    return 0;
  }
}

/* Closes the test's timer (if any); call before th_finish(). */
static void auth_state_done(th_server *s, auth_state *a) {
  (void)s;
  if (a->timer_inited) {
    uv_close((uv_handle_t *)&a->timer, NULL); /* th_finish() runs it */
    a->timer_inited = 0;
  }
}

/* A manager on a host loop with the recorders, plus on_authenticate if
 * |a| is given (then s->test = a). */
static void start(th_server *s, const agentws_config *cfg, auth_state *a) {
  agentws_callbacks *cbs;
  memset(s, 0, sizeof(*s));
  assert_int_equal(uv_loop_init(&s->loop), 0);
  th_track(s);
  cbs = th_callbacks();
  assert_non_null(cbs);
  if (a != NULL) {
    agentws_callbacks_set_on_authenticate(cbs, on_auth);
    s->test = a;
  }
  assert_int_equal(agentws_manager_new(&s->m, &s->loop, cfg, cbs, s), 0);
  agentws_callbacks_free(cbs);
  assert_int_equal(agentws_manager_listen(s->m, "127.0.0.1", 0, &s->port),
                   0);
}

/* A protocol-mode config (raw_messages 0) with pings off. */
static agentws_config *proto_cfg(int dev) {
  agentws_config *cfg = NULL;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_ping_interval_ms(cfg, 0), 0);
  assert_int_equal(agentws_config_set_close_timeout_ms(cfg, 500), 0);
  assert_int_equal(agentws_config_set_dev_insecure(cfg, dev), 0);
  return cfg;
}

/* Sends a handshake for |path| with |extra| header lines ("" or
 * "Name: v\r\n..."). */
static void send_request(tc_client *c, const char *path, const char *extra) {
  char req[2048];
  int n = snprintf(req, sizeof(req),
                   "GET %s HTTP/1.1\r\n"
                   "Host: 127.0.0.1\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: " TC_KEY "\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "%s\r\n",
                   path, extra != NULL ? extra : "");
  assert_true(n > 0 && (size_t)n < sizeof(req));
  assert_int_equal(tc_send_all(c, req, (size_t)n), 0);
}

/* The status code of c->head. */
static int head_status(const tc_client *c) {
  int st = 0;
  if (sscanf(c->head, "HTTP/1.1 %d ", &st) != 1)
    return -1;
  return st;
}

/* Reads the response body (Content-Length bytes, "" if absent) into
 * |out|, pumping the server while waiting. */
static void read_body(th_server *s, tc_client *c, char *out, size_t cap) {
  const char *cl = strstr(c->head, "Content-Length: ");
  size_t want = 0, have = 0;
  uint64_t deadline = tc_now_ms() + TH_TIMEOUT_MS;
  out[0] = '\0';
  if (cl != NULL)
    want = (size_t)strtoul(cl + 16, NULL, 10);
  assert_true(want < cap);
  have = c->in_len < want ? c->in_len : want;
  memcpy(out, c->in, have);
  while (have < want) {
    ssize_t n;
    if (tc_now_ms() > deadline)
      fail_msg("timed out reading a %zu byte body", want);
    th_pump(s);
    n = recv(c->fd, out + have, want - have, MSG_DONTWAIT);
    if (n > 0)
      have += (size_t)n;
    else if (n == 0)
      fail_msg("EOF after %zu of %zu body bytes", have, want);
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      fail_msg("recv: %s", strerror(errno));
    else
      tc_sleep_ms(1);
  }
  out[want] = '\0';
}

/* Connects, sends a handshake for |path| and reads the response head.
 * Returns the status; the body goes into |body| (may be NULL) unless the
 * status is 101. */
static int handshake(th_server *s, tc_client *c, const char *path,
                     const char *extra, char *body, size_t cap) {
  int r = tc_connect(c, "127.0.0.1", s->port, th_pump, s);
  int st;
  if (r != 0)
    fail_msg("connect to 127.0.0.1:%d failed", s->port);
  send_request(c, path, extra);
  r = tc_read_head(c, TC_TIMEOUT_MS);
  if (r != 0)
    fail_msg("no response head for %s (%d)", path, r);
  st = head_status(c);
  if (st != 101 && body != NULL)
    read_body(s, c, body, cap);
  return st;
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

/* Reads the welcome and checks its type and user. */
static void expect_welcome(tc_client *c, const char *user) {
  char want[300];
  char *w = read_text(c, TC_TIMEOUT_MS);
  snprintf(want, sizeof(want), "\"user\":\"%s\"", user);
  if (strncmp(w, "{\"type\":\"welcome\"", 17) != 0 ||
      strstr(w, want) == NULL) {
    char copy[512];
    snprintf(copy, sizeof(copy), "%s", w);
    free(w);
    fail_msg("not a welcome for %s: %s", user, copy);
  }
  free(w);
}

/* Upgrades a new client on |path| and reads the welcome for |user|. */
static void connect_user(th_server *s, tc_client *c, const char *path,
                         const char *user) {
  int st = handshake(s, c, path, NULL, NULL, 0);
  if (st != 101)
    fail_msg("%s: got %d, want 101\n%s", path, st, c->head);
  assert_non_null(strstr(c->head, "Sec-WebSocket-Accept: " TC_ACCEPT));
  expect_welcome(c, user);
}

/* Closes a client with 1000 and waits for the server's close. */
static void close_client(th_server *s, tc_client *c) {
  int code = 0;
  char reason[128];
  int before = s->n_close;
  assert_int_equal(tc_send_close(c, 1000, "bye"), 0);
  assert_int_equal(tc_read_close(c, &code, reason, sizeof(reason),
                                 TC_TIMEOUT_MS),
                   0);
  assert_int_equal(code, 1000);
  tc_close(c);
  TH_RUN_UNTIL(s, s->n_close == before + 1);
}

/* "127.0.0.1:PORT" of the client's own end. */
static void local_address(const tc_client *c, char *out, size_t cap) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  assert_int_equal(getsockname(c->fd, (struct sockaddr *)&a, &len), 0);
  snprintf(out, cap, "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
}

/* ------------------------------------------------------- no hook, dev */

static void test_no_hook_is_401(void **state) {
  static th_server s;
  agentws_config *cfg = proto_cfg(0);
  tc_client c;
  char body[256];
  (void)state;
  start(&s, cfg, NULL);
  agentws_config_free(cfg);

  /* Even with ?user=: dev mode is off. */
  assert_int_equal(handshake(&s, &c, "/ws?user=alice", NULL, body,
                             sizeof(body)),
                   401);
  assert_non_null(strstr(c.head, "\r\nWWW-Authenticate: Bearer realm=\"agentws\"\r\n"));
  assert_true(strlen(body) > 1);
  tc_close(&c);
  assert_int_equal(handshake(&s, &c, "/ws", "Authorization: Bearer x\r\n",
                             body, sizeof(body)),
                   401);
  assert_non_null(strstr(c.head, "\r\nWWW-Authenticate: Bearer realm=\"agentws\"\r\n"));
  tc_close(&c);
  th_finish(&s);
  assert_int_equal(s.n_open, 0);
}

static void test_dev_mode_user(void **state) {
  static th_server s;
  agentws_config *cfg = proto_cfg(1);
  tc_client c;
  const char *user = NULL;
  (void)state;
  start(&s, cfg, NULL);
  agentws_config_free(cfg);

  connect_user(&s, &c, "/ws?user=alice", "alice");
  TH_RUN_UNTIL(&s, s.n_open == 1);
  assert_int_equal(agentws_conn_get_user(s.m, s.open_id, &user), 0);
  assert_string_equal(user, "alice");
  close_client(&s, &c);

  /* Percent-decoded, among other parameters. */
  connect_user(&s, &c, "/ws?x=1&user=b%C3%B6b&y=2", "b\xc3\xb6"
                                                       "b");
  close_client(&s, &c);
  th_finish(&s);
  assert_int_equal(s.bad_user_data, 0);
  assert_int_equal(s.bad_manager, 0);
}

static void test_dev_mode_bad_user(void **state) {
  static th_server s;
  agentws_config *cfg = proto_cfg(1);
  static const char *const paths[] = {
      "/ws",                 /* missing */
      "/ws?",                /* no parameters */
      "/ws?user=",           /* empty */
      "/ws?users=alice",     /* another name */
      "/ws?user=%01",        /* control character */
      "/ws?user=a%0Ab",      /* newline inside */
      "/ws?user=a%7F",       /* DEL */
      "/ws?user=%00alice",   /* NUL */
      "/ws?user=%ff",        /* not UTF-8 */
      "/ws?user=%zz",        /* malformed escape */
      "/ws?user=ab%4",       /* truncated escape */
  };
  size_t i;
  (void)state;
  start(&s, cfg, NULL);
  agentws_config_free(cfg);
  for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    tc_client c;
    char body[256];
    int st = handshake(&s, &c, paths[i], NULL, body, sizeof(body));
    if (st != 401)
      fail_msg("%s: got %d, want 401\n%s", paths[i], st, c.head);
    assert_non_null(strstr(c.head, "\r\nWWW-Authenticate: Bearer realm=\"agentws\"\r\n"));
    tc_close(&c);
  }
  th_finish(&s);
  assert_int_equal(s.n_open, 0);
}

/* ------------------------------------------------------------- the hook */

static void check_in_hook_calls(const auth_state *a) {
  assert_int_equal(a->accept_bad_rv[0], AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(a->accept_bad_rv[1], AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(a->accept_bad_rv[2], AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(a->refuse_range_rv[0], AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(a->refuse_range_rv[1], AGENTWS_ERR_OUT_OF_RANGE);
}

static void test_hook_sync_accept_and_request(void **state) {
  static th_server s;
  static auth_state a;
  agentws_config *cfg = proto_cfg(1); /* the hook wins over dev mode */
  tc_client c;
  char addr[64];
  const char *user = NULL;
  int st;
  (void)state;
  memset(&a, 0, sizeof(a));
  a.mode = HOOK_SYNC_ACCEPT;
  a.user = "carol";
  start(&s, cfg, &a);
  agentws_config_free(cfg);

  st = handshake(&s, &c, "/ws?user=mallory&token=abc",
                 "X-Test-Token: secret-1\r\n", NULL, 0);
  assert_int_equal(st, 101);
  expect_welcome(&c, "carol");
  local_address(&c, addr, sizeof(addr));
  assert_int_equal(a.calls, 1);
  assert_string_equal(a.target, "/ws?user=mallory&token=abc");
  assert_string_equal(a.hdr_token, "secret-1");
  assert_string_equal(a.hdr_upgrade, "websocket");
  assert_true(a.hdr_missing_null);
  assert_true(a.hdr_null_name_null);
  assert_string_equal(a.remote, addr);
  check_in_hook_calls(&a);
  assert_int_equal(a.answer_rv, 0);
  assert_int_equal(a.second_rv, AGENTWS_ERR_NOT_FOUND);
  TH_RUN_UNTIL(&s, s.n_open == 1);
  assert_int_equal(s.open_id, a.id);
  assert_int_equal(agentws_conn_get_user(s.m, a.id, &user), 0);
  assert_string_equal(user, "carol");

  /* Answered and open: nothing is pending any more. */
  assert_int_equal(agentws_conn_accept(s.m, a.id, "carol"),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_refuse(s.m, a.id, 403, NULL),
                   AGENTWS_ERR_NOT_FOUND);
  /* Accessors are NULL-safe. */
  assert_null(agentws_request_get_target(NULL));
  assert_null(agentws_request_get_header(NULL, "Host"));
  assert_null(agentws_request_get_remote_address(NULL));
  close_client(&s, &c);
  auth_state_done(&s, &a);
  th_finish(&s);
}

static void test_hook_sync_refuse(void **state) {
  static th_server s;
  static auth_state a;
  agentws_config *cfg = proto_cfg(0);
  tc_client c;
  char body[256];
  (void)state;
  memset(&a, 0, sizeof(a));
  a.mode = HOOK_SYNC_REFUSE;
  a.refuse_status = 403;
  a.refuse_reason = "user is suspended";
  start(&s, cfg, &a);
  agentws_config_free(cfg);

  assert_int_equal(handshake(&s, &c, "/ws", NULL, body, sizeof(body)), 403);
  assert_string_equal(body, "user is suspended\n");
  assert_null(strstr(c.head, "WWW-Authenticate"));
  assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
  tc_close(&c);
  check_in_hook_calls(&a);
  assert_int_equal(a.answer_rv, 0);
  assert_int_equal(a.second_rv, AGENTWS_ERR_NOT_FOUND);

  /* 401 from the hook carries the challenge; NULL reason is allowed. */
  a.refuse_status = 401;
  a.refuse_reason = NULL;
  assert_int_equal(handshake(&s, &c, "/ws", NULL, body, sizeof(body)), 401);
  assert_non_null(strstr(c.head, "\r\nWWW-Authenticate: Bearer realm=\"agentws\"\r\n"));
  tc_close(&c);
  assert_int_equal(a.answer_rv, 0);

  /* Any 4xx/5xx status goes through. */
  a.refuse_status = 418;
  a.refuse_reason = "teapot";
  assert_int_equal(handshake(&s, &c, "/ws", NULL, body, sizeof(body)), 418);
  assert_string_equal(body, "teapot\n");
  tc_close(&c);
  auth_state_done(&s, &a);
  th_finish(&s);
  assert_int_equal(s.n_open, 0);
}

static void test_hook_async_accept(void **state) {
  static th_server s;
  static auth_state a;
  agentws_config *cfg = proto_cfg(0);
  tc_client c;
  uint64_t t0, took;
  const char *user = NULL;
  (void)state;
  memset(&a, 0, sizeof(a));
  a.mode = HOOK_ASYNC_ACCEPT;
  a.user = "dave";
  a.delay_ms = 50;
  start(&s, cfg, &a);
  agentws_config_free(cfg);

  t0 = tc_now_ms();
  assert_int_equal(handshake(&s, &c, "/ws?t=async", NULL, NULL, 0), 101);
  took = tc_now_ms() - t0;
  assert_true(a.timer_fired);
  assert_true(took >= 40); /* timer set from the loop's cached clock */
  expect_welcome(&c, "dave");
  check_in_hook_calls(&a);
  assert_int_equal(a.timer_rv, 0);
  assert_int_equal(a.timer_second_rv, AGENTWS_ERR_NOT_FOUND);
  /* The request stayed readable until the answer. */
  assert_string_equal(a.timer_target, "/ws?t=async");
  TH_RUN_UNTIL(&s, s.n_open == 1);
  assert_int_equal(agentws_conn_get_user(s.m, a.id, &user), 0);
  assert_string_equal(user, "dave");
  close_client(&s, &c);
  auth_state_done(&s, &a);
  th_finish(&s);
}

static void test_hook_async_refuse(void **state) {
  static th_server s;
  static auth_state a;
  agentws_config *cfg = proto_cfg(0);
  tc_client c;
  char body[256];
  (void)state;
  memset(&a, 0, sizeof(a));
  a.mode = HOOK_ASYNC_REFUSE;
  a.refuse_status = 403;
  a.refuse_reason = "no access";
  a.delay_ms = 50;
  start(&s, cfg, &a);
  agentws_config_free(cfg);

  assert_int_equal(handshake(&s, &c, "/ws", NULL, body, sizeof(body)), 403);
  assert_true(a.timer_fired);
  assert_string_equal(body, "no access\n");
  assert_int_equal(a.timer_rv, 0);
  assert_int_equal(a.timer_second_rv, AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
  tc_close(&c);
  auth_state_done(&s, &a);
  th_finish(&s);
  assert_int_equal(s.n_open, 0);
}

static void test_hook_no_answer_is_503(void **state) {
  static th_server s;
  static auth_state a;
  agentws_config *cfg = proto_cfg(0);
  tc_client c;
  char body[256];
  uint64_t t0, took;
  (void)state;
  memset(&a, 0, sizeof(a));
  a.mode = HOOK_NONE;
  assert_int_equal(agentws_config_set_auth_timeout_ms(cfg, 200), 0);
  start(&s, cfg, &a);
  agentws_config_free(cfg);

  t0 = tc_now_ms();
  assert_int_equal(handshake(&s, &c, "/ws", NULL, body, sizeof(body)), 503);
  took = tc_now_ms() - t0;
  assert_true(took >= 180);
  assert_true(took < 2000);
  assert_int_equal(a.calls, 1);
  /* Too late: the id is no longer pending. */
  assert_int_equal(agentws_conn_accept(s.m, a.id, "late"),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_refuse(s.m, a.id, 403, "late"),
                   AGENTWS_ERR_NOT_FOUND);
  tc_close(&c);

  /* A client that hangs up while pending: its id expires too. */
  assert_int_equal(tc_connect(&c, "127.0.0.1", s.port, th_pump, &s), 0);
  send_request(&c, "/ws", NULL);
  TH_RUN_UNTIL(&s, a.calls == 2);
  tc_close(&c);
  TH_RUN_UNTIL(&s, agentws_manager_get_num_connections(s.m) == 0);
  assert_int_equal(agentws_conn_accept(s.m, a.id, "gone"),
                   AGENTWS_ERR_NOT_FOUND);

  /* Ids never handed out. */
  assert_int_equal(agentws_conn_accept(s.m, 0, "x"), AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_accept(s.m, 987654321u, "x"),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_refuse(s.m, 987654321u, 403, NULL),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_accept(NULL, 1, "x"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_conn_refuse(NULL, 1, 403, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  auth_state_done(&s, &a);
  th_finish(&s);
  assert_int_equal(s.n_open, 0);
}

static void test_hook_failure_is_500(void **state) {
  static th_server s;
  static auth_state a;
  agentws_config *cfg = proto_cfg(1);
  tc_client c;
  char body[256];
  (void)state;
  memset(&a, 0, sizeof(a));
  a.mode = HOOK_FAIL;
  start(&s, cfg, &a);
  agentws_config_free(cfg);
  assert_int_equal(handshake(&s, &c, "/ws?user=alice", NULL, body,
                             sizeof(body)),
                   500);
  tc_close(&c);
  assert_int_equal(a.calls, 1);
  assert_int_equal(agentws_conn_accept(s.m, a.id, "alice"),
                   AGENTWS_ERR_NOT_FOUND);
  auth_state_done(&s, &a);
  th_finish(&s);
  assert_int_equal(s.n_open, 0);
}

/* ------------------------------------------------------ per-user limit */

static void test_per_user_limit(void **state) {
  static th_server s;
  agentws_config *cfg = proto_cfg(1);
  tc_client a1, a2, a3, b1;
  char body[256];
  (void)state;
  assert_int_equal(agentws_config_set_max_conns_per_user(cfg, 2), 0);
  start(&s, cfg, NULL);
  agentws_config_free(cfg);

  connect_user(&s, &a1, "/ws?user=alice", "alice");
  connect_user(&s, &a2, "/ws?user=alice", "alice");
  assert_int_equal(handshake(&s, &a3, "/ws?user=alice", NULL, body,
                             sizeof(body)),
                   429);
  assert_true(strlen(body) > 1);
  tc_close(&a3);
  /* Another user is not affected. */
  connect_user(&s, &b1, "/ws?user=bob", "bob");
  TH_RUN_UNTIL(&s, s.n_open == 3);

  /* One of alice's closes: room for a new one, then full again. */
  close_client(&s, &a1);
  connect_user(&s, &a3, "/ws?user=alice", "alice");
  assert_int_equal(handshake(&s, &a1, "/ws?user=alice", NULL, body,
                             sizeof(body)),
                   429);
  tc_close(&a1);

  close_client(&s, &a2);
  close_client(&s, &a3);
  close_client(&s, &b1);
  th_finish(&s);
  assert_int_equal(s.n_open, 4);
}

static void test_per_user_limit_with_hook(void **state) {
  static th_server s;
  static auth_state a;
  agentws_config *cfg = proto_cfg(0);
  tc_client c1, c2;
  char body[256];
  (void)state;
  memset(&a, 0, sizeof(a));
  a.mode = HOOK_ASYNC_ACCEPT;
  a.user = "erin";
  a.delay_ms = 10;
  assert_int_equal(agentws_config_set_max_conns_per_user(cfg, 1), 0);
  start(&s, cfg, &a);
  agentws_config_free(cfg);

  connect_user(&s, &c1, "/ws", "erin");
  /* The late accept is taken (0) but the user is full: 429. */
  assert_int_equal(handshake(&s, &c2, "/ws", NULL, body, sizeof(body)), 429);
  assert_int_equal(a.timer_rv, 0);
  tc_close(&c2);
  /* The same inside the hook. */
  a.mode = HOOK_SYNC_ACCEPT;
  assert_int_equal(handshake(&s, &c2, "/ws", NULL, body, sizeof(body)), 429);
  assert_int_equal(a.answer_rv, 0);
  tc_close(&c2);
  close_client(&s, &c1);
  auth_state_done(&s, &a);
  th_finish(&s);
  assert_int_equal(s.n_open, 1);
}

/* ------------------------------------------------------------- raw mode */

static void test_raw_mode_with_hook(void **state) {
  static th_server s;
  static auth_state a;
  agentws_config *cfg = proto_cfg(0);
  tc_client c;
  char body[256];
  (void)state;
  memset(&a, 0, sizeof(a));
  a.mode = HOOK_SYNC_ACCEPT;
  a.user = "frank";
  assert_int_equal(agentws_config_set_raw_messages(cfg, 1), 0);
  start(&s, cfg, &a);
  agentws_config_free(cfg);
  s.echo = 1;

  /* Accepted: raw messages, no welcome; the first message is our echo. */
  assert_int_equal(handshake(&s, &c, "/ws?raw=1", NULL, NULL, 0), 101);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.answer_rv, 0);
  assert_string_equal(a.target, "/ws?raw=1");
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "{\"type\":\"ping\"}", 15), 0);
  TH_RUN_UNTIL(&s, s.n_open == 1 && s.n_msg == 1);
  close_client(&s, &c);

  /* Refused and late-accepted in raw mode too. */
  a.mode = HOOK_SYNC_REFUSE;
  a.refuse_status = 403;
  a.refuse_reason = "raw refused";
  assert_int_equal(handshake(&s, &c, "/ws", NULL, body, sizeof(body)), 403);
  assert_string_equal(body, "raw refused\n");
  tc_close(&c);
  a.mode = HOOK_ASYNC_ACCEPT;
  a.delay_ms = 20;
  assert_int_equal(handshake(&s, &c, "/ws", NULL, NULL, 0), 101);
  assert_int_equal(a.timer_rv, 0);
  assert_int_equal(tc_echo(&c, TC_OP_BINARY, "\x01\x02", 2), 0);
  close_client(&s, &c);
  auth_state_done(&s, &a);
  th_finish(&s);
  assert_int_equal(s.n_open, 2);
}

/*
 * The header: agentws_conn_accept() says "the connection belongs to
 * |user_id|", and agentws_conn_get_user() gives "" only "in raw mode
 * without a user". A raw-mode connection the hook accepted for a user
 * reports that user, whether answered inside the hook or later.
 */
static void test_raw_mode_hook_user(void **state) {
  static th_server s;
  static auth_state a;
  agentws_config *cfg = proto_cfg(0);
  tc_client c1, c2;
  const char *user = NULL;
  char got[2][64];
  uint64_t ids[2];
  (void)state;
  memset(&a, 0, sizeof(a));
  a.mode = HOOK_SYNC_ACCEPT;
  a.user = "frank";
  assert_int_equal(agentws_config_set_raw_messages(cfg, 1), 0);
  start(&s, cfg, &a);
  agentws_config_free(cfg);
  assert_int_equal(handshake(&s, &c1, "/ws", NULL, NULL, 0), 101);
  TH_RUN_UNTIL(&s, s.n_open == 1);
  ids[0] = s.open_id;
  a.mode = HOOK_ASYNC_ACCEPT;
  a.user = "grace";
  a.delay_ms = 10;
  assert_int_equal(handshake(&s, &c2, "/ws", NULL, NULL, 0), 101);
  TH_RUN_UNTIL(&s, s.n_open == 2);
  ids[1] = s.open_id;
  assert_int_equal(agentws_conn_get_user(s.m, ids[0], &user), 0);
  copy_str(got[0], sizeof(got[0]), user);
  assert_int_equal(agentws_conn_get_user(s.m, ids[1], &user), 0);
  copy_str(got[1], sizeof(got[1]), user);
  close_client(&s, &c1);
  close_client(&s, &c2);
  auth_state_done(&s, &a);
  th_finish(&s);
  assert_string_equal(got[0], "frank");
  assert_string_equal(got[1], "grace");
}

/* Raw mode without a hook stays anonymous and open (no 401). */
static void test_raw_mode_without_hook(void **state) {
  static th_server s;
  agentws_config *cfg = proto_cfg(0);
  tc_client c;
  const char *user = NULL;
  (void)state;
  assert_int_equal(agentws_config_set_raw_messages(cfg, 1), 0);
  start(&s, cfg, NULL);
  agentws_config_free(cfg);
  s.echo = 1;
  assert_int_equal(handshake(&s, &c, "/ws", NULL, NULL, 0), 101);
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "hi", 2), 0);
  TH_RUN_UNTIL(&s, s.n_open == 1);
  assert_int_equal(agentws_conn_get_user(s.m, s.open_id, &user), 0);
  assert_string_equal(user, "");
  close_client(&s, &c);
  th_finish(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(test_no_hook_is_401),
      TH_TEST(test_dev_mode_user),
      TH_TEST(test_dev_mode_bad_user),
      TH_TEST(test_hook_sync_accept_and_request),
      TH_TEST(test_hook_sync_refuse),
      TH_TEST(test_hook_async_accept),
      TH_TEST(test_hook_async_refuse),
      TH_TEST(test_hook_no_answer_is_503),
      TH_TEST(test_hook_failure_is_500),
      TH_TEST(test_per_user_limit),
      TH_TEST(test_per_user_limit_with_hook),
      TH_TEST(test_raw_mode_with_hook),
      TH_TEST(test_raw_mode_hook_user),
      TH_TEST(test_raw_mode_without_hook),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
