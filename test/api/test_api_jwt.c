/*
 * API tests of JWT auth on a real loop and loopback sockets: a manager
 * with JWT keys accepts valid tokens from each source (Authorization,
 * subprotocol, query, cookie) and refuses bad ones with 401 and the
 * Bearer challenge before the upgrade; an on_authenticate hook runs only
 * after the token verified and sees its user and claims; an async hook
 * that never answers gives 503; the statistics snapshot counts every
 * outcome and the cache hits; keys are rotated from another thread while
 * the loop runs without dropping open connections; a connection reports
 * its token's exp; and the config setters check their arguments. Tokens
 * come from jwt_fixtures.h (PyJWT, exp in 2100), so the wall clock never
 * matters. Every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"
#include "client.h"
#include "harness.h"
#include "../unit/jwt_fixtures.h"

#define LEN(s) (sizeof(s) - 1)

#define CHALLENGE_INVALID                                                    \
  "\r\nWWW-Authenticate: Bearer realm=\"agentws\", "                         \
  "error=\"invalid_token\"\r\n"
#define CHALLENGE_PLAIN "\r\nWWW-Authenticate: Bearer realm=\"agentws\"\r\n"

/* ------------------------------------------------------------- helpers */

static agentws_keyset *secret_set(const char *kid, const char *secret) {
  agentws_keyset *ks = NULL;
  assert_int_equal(agentws_keyset_new(&ks), 0);
  assert_int_equal(agentws_keyset_add_secret(ks, kid, (const uint8_t *)secret,
                                             strlen(secret)),
                   0);
  return ks;
}

/* A protocol-mode config with pings off and JWT keys |ks| (may be NULL),
 * issuer and audience those of the fixtures. */
static agentws_config *jwt_cfg(const agentws_keyset *ks) {
  agentws_config *cfg = NULL;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_ping_interval_ms(cfg, 0), 0);
  assert_int_equal(agentws_config_set_close_timeout_ms(cfg, 500), 0);
  if (ks != NULL) {
    assert_int_equal(agentws_config_set_jwt_keys(cfg, ks), 0);
    assert_int_equal(agentws_config_set_jwt_issuer(cfg, JWTF_ISS), 0);
    assert_int_equal(agentws_config_set_jwt_audience(cfg, JWTF_AUD), 0);
  }
  return cfg;
}

/* A manager on a host loop with the recorders, plus |hook| (may be NULL)
 * as on_authenticate with s->test = |test|. */
static void start(th_server *s, const agentws_config *cfg,
                  agentws_on_authenticate_cb hook, void *test) {
  agentws_callbacks *cbs;
  memset(s, 0, sizeof(*s));
  assert_int_equal(uv_loop_init(&s->loop), 0);
  th_track(s);
  cbs = th_callbacks();
  assert_non_null(cbs);
  if (hook != NULL)
    agentws_callbacks_set_on_authenticate(cbs, hook);
  s->test = test;
  assert_int_equal(agentws_manager_new(&s->m, &s->loop, cfg, cbs, s), 0);
  agentws_callbacks_free(cbs);
  assert_int_equal(agentws_manager_listen(s->m, "127.0.0.1", 0, &s->port),
                   0);
}

static void send_request(tc_client *c, const char *path, const char *extra) {
  char req[4096];
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

static int head_status(const tc_client *c) {
  int st = 0;
  if (sscanf(c->head, "HTTP/1.1 %d ", &st) != 1)
    return -1;
  return st;
}

/* Reads the response body (Content-Length bytes) into |out|. */
static void read_body(th_server *s, tc_client *c, char *out, size_t cap) {
  const char *cl = strstr(c->head, "Content-Length: ");
  size_t want = 0, have;
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

/* Connects, sends a handshake and reads the response head; returns the
 * status. A refusal's body goes into |body| (may be NULL). */
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

/* "Authorization: Bearer TOKEN\r\n" in |buf|. */
static const char *bearer(char *buf, size_t cap, const char *tok) {
  int n = snprintf(buf, cap, "Authorization: Bearer %s\r\n", tok);
  assert_true(n > 0 && (size_t)n < cap);
  return buf;
}

/* A handshake with |tok| in the Authorization header; returns the status
 * and for a refusal closes the client and checks the challenge: with
 * error="invalid_token" for a bad token, without if no token was found
 * (the header is not a configured source). */
static int try_token_as(th_server *s, tc_client *c, const char *tok,
                        int found) {
  char hdr[4096], body[256];
  int st = handshake(s, c, "/ws", bearer(hdr, sizeof(hdr), tok), body,
                     sizeof(body));
  if (st == 401) {
    assert_non_null(
        strstr(c->head, found ? CHALLENGE_INVALID : CHALLENGE_PLAIN));
    /* The body says nothing about what was wrong. */
    assert_string_equal(body, "unauthorized\n");
  }
  if (st != 101)
    tc_close(c);
  return st;
}

static int try_token(th_server *s, tc_client *c, const char *tok) {
  return try_token_as(s, c, tok, 1);
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
    if (f.opcode != TC_OP_TEXT || !f.fin)
      fail_msg("expected a text frame, got opcode %d", f.opcode);
    return (char *)f.data;
  }
}

/* Reads the next message and checks it contains |want|. */
static void expect_text(tc_client *c, const char *want) {
  char *w = read_text(c);
  if (strstr(w, want) == NULL) {
    char copy[512];
    snprintf(copy, sizeof(copy), "%s", w);
    free(w);
    fail_msg("wanted a message with %s, got %s", want, copy);
  }
  free(w);
}

/* Reads the welcome and checks its user. */
static void expect_welcome(tc_client *c, const char *user) {
  char want[300];
  char *w = read_text(c);
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

/* Upgrades with |tok| in the Authorization header and reads the welcome
 * for |user|. */
static void connect_token(th_server *s, tc_client *c, const char *tok,
                          const char *user) {
  char hdr[4096];
  int st = handshake(s, c, "/ws", bearer(hdr, sizeof(hdr), tok), NULL, 0);
  if (st != 101)
    fail_msg("token for %s: got %d, want 101\n%s", user, st, c->head);
  assert_non_null(strstr(c->head, "Sec-WebSocket-Accept: " TC_ACCEPT));
  expect_welcome(c, user);
}

static void close_client(th_server *s, tc_client *c) {
  int code = 0;
  char reason[128];
  int before = s->n_close;
  assert_int_equal(tc_send_close(c, 1000, "bye"), 0);
  assert_int_equal(
      tc_read_close(c, &code, reason, sizeof(reason), TC_TIMEOUT_MS), 0);
  assert_int_equal(code, 1000);
  tc_close(c);
  TH_RUN_UNTIL(s, s->n_close == before + 1);
}

static uint64_t stat_of(th_server *s, int stat) {
  agentws_stats *st = NULL;
  uint64_t v;
  assert_int_equal(agentws_stats_new(&st), 0);
  assert_int_equal(agentws_manager_get_stats(s->m, st), 0);
  v = agentws_stats_get(st, stat);
  agentws_stats_free(st);
  return v;
}

/* ------------------------------------------------------------ accepting */

static void test_header_token_accepted(void **state) {
  static th_server s;
  agentws_keyset *ks = secret_set("hs1", JWTF_HS_SECRET);
  agentws_config *cfg = jwt_cfg(ks);
  tc_client c;
  const char *user = NULL;
  int64_t exp = -1;
  (void)state;
  start(&s, cfg, NULL, NULL);
  agentws_config_free(cfg);
  agentws_keyset_free(ks); /* the config and manager hold their own */

  connect_token(&s, &c, JWTF_TOK_HS256, "alice");
  TH_RUN_UNTIL(&s, s.n_open == 1);
  assert_int_equal(agentws_conn_get_user(s.m, s.open_id, &user), 0);
  assert_string_equal(user, "alice");
  /* The token's exp, exactly. */
  assert_int_equal(agentws_conn_get_token_exp(s.m, s.open_id, &exp), 0);
  assert_int_equal(exp, JWTF_EXP_2100);
  assert_int_equal(agentws_conn_get_token_exp(s.m, s.open_id, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_conn_get_token_exp(NULL, s.open_id, &exp),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_conn_get_token_exp(s.m, 987654321u, &exp),
                   AGENTWS_ERR_NOT_FOUND);
  /* The connection works: ping, pong. */
  assert_int_equal(tc_send_frame(&c, TC_OP_TEXT, "{\"type\":\"ping\"}", 15),
                   0);
  expect_text(&c, "\"type\":\"pong\"");
  close_client(&s, &c);
  th_finish(&s);
  assert_int_equal(s.bad_user_data, 0);
  assert_int_equal(s.bad_manager, 0);
}

static void test_bad_tokens_refused(void **state) {
  static th_server s;
  agentws_keyset *ks = secret_set("hs1", JWTF_HS_SECRET);
  agentws_config *cfg = jwt_cfg(ks);
  static const struct {
    const char *name;
    const char *tok;
  } bad[] = {
      {"bad signature", JWTF_TOK_BAD_SIG},
      {"expired", JWTF_TOK_EXPIRED},
      {"not yet valid", JWTF_TOK_NBF_FUTURE},
      {"alg none", JWTF_TOK_ALG_NONE_SIGNED},
      {"algorithm confusion", JWTF_TOK_ALG_CONFUSION_NOKID},
      {"unknown kid", JWTF_TOK_UNKNOWN_KID},
      {"wrong issuer", JWTF_TOK_WRONG_ISS},
      {"wrong audience", JWTF_TOK_WRONG_AUD},
      {"missing sub", JWTF_TOK_MISSING_SUB},
      {"truncated", JWTF_TOK_TRUNCATED},
      {"not a JWT", "hello"},
  };
  tc_client c;
  char body[256];
  size_t i;
  (void)state;
  start(&s, cfg, NULL, NULL);
  agentws_config_free(cfg);
  agentws_keyset_free(ks);
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int st = try_token(&s, &c, bad[i].tok);
    if (st != 401)
      fail_msg("%s: got %d, want 401", bad[i].name, st);
  }
  /* No token: 401 with the plain challenge (no error attribute). */
  assert_int_equal(handshake(&s, &c, "/ws", NULL, body, sizeof(body)), 401);
  assert_non_null(strstr(c.head, CHALLENGE_PLAIN));
  assert_null(strstr(c.head, "invalid_token"));
  tc_close(&c);
  /* A Basic header is no token either. */
  assert_int_equal(handshake(&s, &c, "/ws",
                             "Authorization: Basic YWxpY2U6cHc=\r\n", body,
                             sizeof(body)),
                   401);
  assert_non_null(strstr(c.head, CHALLENGE_PLAIN));
  tc_close(&c);
  /* Dev mode's ?user= is no way around it (dev mode is off). */
  assert_int_equal(handshake(&s, &c, "/ws?user=alice", NULL, body,
                             sizeof(body)),
                   401);
  tc_close(&c);
  th_finish(&s);
  assert_int_equal(s.n_open, 0);
}

/* The other sources, each enabled in turn; the subprotocol is never
 * echoed back. */
static void test_token_sources(void **state) {
  static th_server s;
  agentws_keyset *ks = secret_set("hs1", JWTF_HS_SECRET);
  agentws_config *cfg = jwt_cfg(ks);
  tc_client c;
  char extra[4096];
  (void)state;
  assert_int_equal(agentws_config_set_token_sources(cfg, "cookie, query"),
                   0);
  assert_int_equal(agentws_config_set_token_query_param(cfg, "t"), 0);
  assert_int_equal(agentws_config_set_token_cookie(cfg, "sess_tok"), 0);
  start(&s, cfg, NULL, NULL);
  agentws_config_free(cfg);

  /* The query parameter, among others. */
  assert_int_equal(handshake(&s, &c, "/ws?a=1&t=" JWTF_TOK_HS256 "&b=2", NULL,
                             NULL, 0),
                   101);
  expect_welcome(&c, "alice");
  close_client(&s, &c);
  /* The cookie (first in the list) wins over the query. */
  snprintf(extra, sizeof(extra), "Cookie: x=1; sess_tok=\"%s\"; y=2\r\n",
           JWTF_TOK_HS256_BOB);
  assert_int_equal(handshake(&s, &c, "/ws?t=" JWTF_TOK_HS256, extra, NULL, 0),
                   101);
  expect_welcome(&c, "bob");
  close_client(&s, &c);
  /* Sources not listed are ignored: the Authorization header here. */
  assert_int_equal(try_token_as(&s, &c, JWTF_TOK_HS256, 0), 401);
  th_finish(&s);

  /* Subprotocol: "agentws.v1, bearer.TOKEN", answered with agentws.v1. */
  cfg = jwt_cfg(ks);
  start(&s, cfg, NULL, NULL);
  agentws_config_free(cfg);
  agentws_keyset_free(ks);
  assert_int_equal(tc_connect(&c, "127.0.0.1", s.port, th_pump, &s), 0);
  assert_int_equal(
      tc_upgrade(&c, "/ws", "agentws.v1, bearer." JWTF_TOK_HS256_CAROL), 0);
  assert_string_equal(c.protocol, "agentws.v1");
  assert_null(strstr(c.head, "bearer."));
  expect_welcome(&c, "carol");
  close_client(&s, &c);
  th_finish(&s);
  assert_int_equal(s.n_open, 1); /* this manager's */
}

/* ----------------------------------------------------------------- hook */

typedef struct hook_state {
  int mode;          /* 0: accept the token's user, 1: refuse 403, 2: none */
  int calls;
  uint64_t id;
  char user[64];     /* agentws_request_get_user() in the hook */
  char claims[512];  /* agentws_request_get_claims() */
  char auth[600];    /* the Authorization header */
  int answer_rv;
} hook_state;

static int on_auth(agentws_manager *m, uint64_t id, const agentws_request *req,
                   void *ud) {
  th_server *s = ud;
  hook_state *h = s->test;
  const char *u = agentws_request_get_user(req);
  const char *cl = agentws_request_get_claims(req);
  const char *a = agentws_request_get_header(req, "Authorization");
  h->calls++;
  h->id = id;
  snprintf(h->user, sizeof(h->user), "%s", u != NULL ? u : "(null)");
  snprintf(h->claims, sizeof(h->claims), "%s", cl != NULL ? cl : "(null)");
  snprintf(h->auth, sizeof(h->auth), "%s", a != NULL ? a : "(null)");
  switch (h->mode) {
  case 0:
    h->answer_rv = agentws_conn_accept(m, id, u != NULL ? u : "nobody");
    break;
  case 1:
    h->answer_rv = agentws_conn_refuse(m, id, 403, "not on the list");
    break;
  default:
    break; /* never answers */
  }
  return 0;
}

static void test_hook_after_token(void **state) {
  static th_server s;
  static hook_state h;
  agentws_keyset *ks = secret_set("hs1", JWTF_HS_SECRET);
  agentws_config *cfg = jwt_cfg(ks);
  tc_client c;
  char body[256];
  (void)state;
  memset(&h, 0, sizeof(h));
  start(&s, cfg, on_auth, &h);
  agentws_config_free(cfg);
  agentws_keyset_free(ks);

  /* A bad token never reaches the hook. */
  assert_int_equal(try_token(&s, &c, JWTF_TOK_BAD_SIG), 401);
  assert_int_equal(handshake(&s, &c, "/ws", NULL, body, sizeof(body)), 401);
  tc_close(&c);
  assert_int_equal(h.calls, 0);

  /* A good one does, with the token's user and claims. */
  connect_token(&s, &c, JWTF_TOK_HS256_SCOPE, "alice");
  assert_int_equal(h.calls, 1);
  assert_int_equal(h.answer_rv, 0);
  assert_string_equal(h.user, "alice");
  assert_non_null(strstr(h.claims, "\"scope\":\"read write\""));
  assert_non_null(strstr(h.claims, "\"sub\":\"alice\""));
  assert_string_equal(h.auth, "Bearer " JWTF_TOK_HS256_SCOPE);
  TH_RUN_UNTIL(&s, s.n_open == 1);
  assert_int_equal(s.open_id, h.id);
  close_client(&s, &c);

  /* Its refusal goes through as it chose, without a challenge. */
  h.mode = 1;
  {
    char hdr[4096];
    assert_int_equal(handshake(&s, &c, "/ws",
                               bearer(hdr, sizeof(hdr), JWTF_TOK_HS256_BOB),
                               body, sizeof(body)),
                     403);
  }
  assert_string_equal(body, "not on the list\n");
  assert_null(strstr(c.head, "WWW-Authenticate"));
  assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
  tc_close(&c);
  assert_int_equal(h.calls, 2);
  assert_string_equal(h.user, "bob");
  assert_int_equal(h.answer_rv, 0);
  assert_int_equal(stat_of(&s, AGENTWS_STAT_AUTH_HOOK_REFUSED), 1);
  th_finish(&s);
  assert_int_equal(s.n_open, 1);
}

static void test_async_hook_timeout(void **state) {
  static th_server s;
  static hook_state h;
  agentws_keyset *ks = secret_set("hs1", JWTF_HS_SECRET);
  agentws_config *cfg = jwt_cfg(ks);
  tc_client c;
  char hdr[4096], body[256];
  uint64_t t0, took;
  (void)state;
  memset(&h, 0, sizeof(h));
  h.mode = 2;
  assert_int_equal(agentws_config_set_auth_timeout_ms(cfg, 200), 0);
  start(&s, cfg, on_auth, &h);
  agentws_config_free(cfg);
  agentws_keyset_free(ks);

  t0 = tc_now_ms();
  assert_int_equal(handshake(&s, &c, "/ws",
                             bearer(hdr, sizeof(hdr), JWTF_TOK_HS256), body,
                             sizeof(body)),
                   503);
  took = tc_now_ms() - t0;
  assert_true(took >= 180);
  assert_true(took < 3000);
  tc_close(&c);
  assert_int_equal(h.calls, 1);
  assert_string_equal(h.user, "alice");
  assert_int_equal(agentws_conn_accept(s.m, h.id, "alice"),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(stat_of(&s, AGENTWS_STAT_AUTH_TIMEOUT), 1);
  assert_int_equal(stat_of(&s, AGENTWS_STAT_AUTH_ACCEPTED), 0);
  th_finish(&s);
  assert_int_equal(s.n_open, 0);
}

/* ----------------------------------------------------------- statistics */

static void test_stats(void **state) {
  static th_server s;
  agentws_keyset *ks = secret_set("hs1", JWTF_HS_SECRET);
  agentws_config *cfg = jwt_cfg(ks);
  agentws_stats *st = NULL;
  tc_client a1, a2, c;
  char body[256];
  int i, n;
  (void)state;
  assert_int_equal(agentws_config_set_max_conns_per_user(cfg, 1), 0);
  start(&s, cfg, NULL, NULL);
  agentws_config_free(cfg);
  agentws_keyset_free(ks);

  /* The API around the snapshot. */
  assert_int_equal(agentws_stats_new(NULL), AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_stats_new(&st), 0);
  assert_int_equal(agentws_manager_get_stats(NULL, st),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_manager_get_stats(s.m, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  agentws_stats_free(NULL);
  assert_int_equal(agentws_manager_get_stats(s.m, st), 0);
  for (i = 0; i <= AGENTWS_STAT_TOKEN_EXPIRED_CLOSES; i++)
    assert_int_equal(agentws_stats_get(st, i), 0);
  assert_int_equal(agentws_stats_get(st, -1), 0);
  assert_int_equal(agentws_stats_get(st, 100000), 0);
  assert_int_equal(agentws_stats_get(NULL, 0), 0);

  connect_token(&s, &a1, JWTF_TOK_HS256, "alice"); /* accepted, miss */
  assert_int_equal(handshake(&s, &c, "/ws", NULL, body, sizeof(body)),
                   401); /* missing */
  tc_close(&c);
  assert_int_equal(try_token(&s, &c, JWTF_TOK_BAD_SIG), 401); /* miss */
  assert_int_equal(try_token(&s, &c, JWTF_TOK_EXPIRED), 401); /* miss */
  /* The same token again while alice is connected: a cache hit, and the
   * user's limit of 1 gives 429. */
  assert_int_equal(handshake(&s, &a2, "/ws",
                             "Authorization: Bearer " JWTF_TOK_HS256 "\r\n",
                             body, sizeof(body)),
                   429);
  tc_close(&a2);
  /* Reconnect after closing: another hit, accepted. */
  close_client(&s, &a1);
  connect_token(&s, &a1, JWTF_TOK_HS256, "alice");
  connect_token(&s, &a2, JWTF_TOK_HS256_BOB, "bob"); /* miss */
  TH_RUN_UNTIL(&s, s.n_open == 3);

  assert_int_equal(agentws_manager_get_stats(s.m, st), 0);
  assert_int_equal(agentws_stats_get(st, AGENTWS_STAT_AUTH_ACCEPTED), 3);
  assert_int_equal(agentws_stats_get(st, AGENTWS_STAT_AUTH_MISSING_TOKEN), 1);
  assert_int_equal(agentws_stats_get(st, AGENTWS_STAT_AUTH_BAD_SIGNATURE), 1);
  assert_int_equal(agentws_stats_get(st, AGENTWS_STAT_AUTH_EXPIRED), 1);
  assert_int_equal(agentws_stats_get(st, AGENTWS_STAT_AUTH_USER_LIMIT), 1);
  assert_int_equal(agentws_stats_get(st, AGENTWS_STAT_AUTH_CACHE_HITS), 2);
  assert_int_equal(agentws_stats_get(st, AGENTWS_STAT_AUTH_CACHE_MISSES), 4);
  assert_int_equal(agentws_stats_get(st, AGENTWS_STAT_AUTH_MALFORMED), 0);
  assert_int_equal(agentws_stats_get(st, AGENTWS_STAT_AUTH_TIMEOUT), 0);
  assert_int_equal(agentws_stats_get(st, AGENTWS_STAT_AUTH_HOOK_REFUSED), 0);
  /* The snapshot does not move by itself. */
  assert_int_equal(try_token(&s, &c, JWTF_TOK_BAD_SIG), 401);
  assert_int_equal(agentws_stats_get(st, AGENTWS_STAT_AUTH_BAD_SIGNATURE), 1);
  assert_int_equal(stat_of(&s, AGENTWS_STAT_AUTH_BAD_SIGNATURE), 2);
  agentws_stats_free(st);

  /* Names: snake_case, unique, listed from 0 until NULL. */
  for (n = 0; agentws_stat_name(n) != NULL; n++) {
    const char *name = agentws_stat_name(n);
    size_t k;
    assert_true(n < 1000);
    assert_true(name[0] >= 'a' && name[0] <= 'z');
    for (k = 0; name[k] != '\0'; k++)
      assert_true((name[k] >= 'a' && name[k] <= 'z') || name[k] == '_' ||
                  (name[k] >= '0' && name[k] <= '9'));
    for (i = 0; i < n; i++)
      assert_true(strcmp(agentws_stat_name(i), name) != 0);
  }
  assert_true(n > AGENTWS_STAT_TOKEN_EXPIRED_CLOSES);
  assert_null(agentws_stat_name(-1));
  assert_null(agentws_stat_name(n));
  assert_string_equal(agentws_stat_name(AGENTWS_STAT_AUTH_ACCEPTED),
                      "auth_accepted");
  assert_string_equal(agentws_stat_name(AGENTWS_STAT_AUTH_TIMEOUT),
                      "auth_timeout");
  assert_string_equal(agentws_stat_name(AGENTWS_STAT_AUTH_CACHE_HITS),
                      "auth_cache_hits");
  assert_string_equal(agentws_stat_name(AGENTWS_STAT_TOKEN_EXPIRED_CLOSES),
                      "token_expired_closes");

  close_client(&s, &a1);
  close_client(&s, &a2);
  th_finish(&s);
}

/* --------------------------------------------------------- key rotation */

typedef struct rotate_arg {
  agentws_manager *m;
  const agentws_keyset *ks;
  int rv;
  atomic_int done;
} rotate_arg;

static void rotate_thread(void *p) {
  rotate_arg *r = p;
  r->rv = agentws_manager_set_jwt_keys(r->m, r->ks);
  atomic_store(&r->done, 1);
}

/* Calls agentws_manager_set_jwt_keys() on another thread while this one
 * keeps running the loop. */
static void rotate_from_thread(th_server *s, const agentws_keyset *ks) {
  static rotate_arg r;
  uv_thread_t tid;
  r.m = s->m;
  r.ks = ks;
  r.rv = -1;
  atomic_store(&r.done, 0);
  assert_int_equal(uv_thread_create(&tid, rotate_thread, &r), 0);
  TH_RUN_UNTIL(s, atomic_load(&r.done) == 1);
  assert_int_equal(uv_thread_join(&tid), 0);
  assert_int_equal(r.rv, 0);
}

static void test_rotation(void **state) {
  static th_server s;
  agentws_keyset *old_ks = secret_set("hs1", JWTF_HS_SECRET);
  agentws_keyset *new_ks = NULL;
  agentws_config *cfg = jwt_cfg(old_ks);
  tc_client open1, open2, c;
  (void)state;
  assert_int_equal(agentws_keyset_new(&new_ks), 0);
  assert_int_equal(agentws_keyset_add_jwks(new_ks, JWTF_JWKS_ROTATED,
                                           LEN(JWTF_JWKS_ROTATED)),
                   0);
  start(&s, cfg, NULL, NULL);
  agentws_config_free(cfg);

  /* Before: the old token works (and is now cached), the new one not. */
  connect_token(&s, &open1, JWTF_TOK_HS256, "alice");
  TH_RUN_UNTIL(&s, s.n_open == 1);
  assert_int_equal(try_token(&s, &c, JWTF_TOK_HS256_K2), 401);

  rotate_from_thread(&s, new_ks);
  /* The manager holds its own reference: the host may free its handle,
   * and the set is frozen. */
  agentws_keyset_free(new_ks);

  /* After: the old token is refused, even though it was cached. */
  assert_int_equal(try_token(&s, &c, JWTF_TOK_HS256), 401);
  connect_token(&s, &open2, JWTF_TOK_HS256_K2, "alice");
  TH_RUN_UNTIL(&s, s.n_open == 2);
  assert_int_equal(agentws_manager_get_num_connections(s.m), 2);
  /* The connection opened with the old key is still served. */
  assert_int_equal(
      tc_send_frame(&open1, TC_OP_TEXT, "{\"type\":\"ping\"}", 15), 0);
  expect_text(&open1, "\"type\":\"pong\"");
  /* A refresh on it is checked against the new keys. */
  {
    static const char refresh_old[] =
        "{\"type\":\"refresh\",\"token\":\"" JWTF_TOK_HS256 "\"}";
    static const char refresh_new[] =
        "{\"type\":\"refresh\",\"token\":\"" JWTF_TOK_HS256_K2 "\"}";
    assert_int_equal(tc_send_frame(&open1, TC_OP_TEXT, refresh_old,
                                   LEN(refresh_old)),
                     0);
    expect_text(&open1, "refresh_failed");
    assert_int_equal(tc_send_frame(&open1, TC_OP_TEXT, refresh_new,
                                   LEN(refresh_new)),
                     0);
    expect_text(&open1, "{\"type\":\"refreshed\",\"exp\":4102444800}");
  }
  assert_int_equal(s.n_close, 0);

  /* No keys at all: every token is refused, open connections stay. */
  rotate_from_thread(&s, NULL);
  assert_int_equal(try_token(&s, &c, JWTF_TOK_HS256_K2), 401);
  /* And back to the old set (the manager freed nothing we still hold). */
  rotate_from_thread(&s, old_ks);
  connect_token(&s, &c, JWTF_TOK_HS256_BOB, "bob");
  assert_int_equal(agentws_manager_get_num_connections(s.m), 3);
  assert_int_equal(agentws_manager_set_jwt_keys(NULL, old_ks),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  agentws_keyset_free(old_ks);
  close_client(&s, &open1);
  close_client(&s, &open2);
  close_client(&s, &c);
  th_finish(&s);
  assert_int_equal(s.n_open, 3);
}

static void test_rotation_needs_keys(void **state) {
  static th_server s;
  agentws_keyset *ks = secret_set("hs1", JWTF_HS_SECRET);
  agentws_config *cfg = jwt_cfg(NULL);
  (void)state;
  assert_int_equal(agentws_config_set_dev_insecure(cfg, 1), 0);
  start(&s, cfg, NULL, NULL);
  agentws_config_free(cfg);
  assert_int_equal(agentws_manager_set_jwt_keys(s.m, ks),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_manager_set_jwt_keys(s.m, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  /* Not frozen by the failed call. */
  assert_int_equal(agentws_keyset_add_secret(ks, "hs2",
                                             (const uint8_t *)JWTF_HS_SECRET2,
                                             32),
                   0);
  agentws_keyset_free(ks);
  th_finish(&s);
}

/* A token without exp, allowed: the connection never expires (exp 0). */
static void test_token_without_exp(void **state) {
  static th_server s;
  agentws_keyset *ks = secret_set("hs1", JWTF_HS_SECRET);
  agentws_config *cfg = jwt_cfg(ks);
  tc_client c;
  int64_t exp = -1;
  (void)state;
  assert_int_equal(agentws_config_set_jwt_require_exp(cfg, 0), 0);
  start(&s, cfg, NULL, NULL);
  agentws_config_free(cfg);
  agentws_keyset_free(ks);
  connect_token(&s, &c, JWTF_TOK_HS256_NOEXP, "alice");
  TH_RUN_UNTIL(&s, s.n_open == 1);
  assert_int_equal(agentws_conn_get_token_exp(s.m, s.open_id, &exp), 0);
  assert_int_equal(exp, 0);
  close_client(&s, &c);
  th_finish(&s);
}

/* A required scope: 403 with insufficient_scope when missing. */
static void test_required_scope(void **state) {
  static th_server s;
  agentws_keyset *ks = secret_set("hs1", JWTF_HS_SECRET);
  agentws_config *cfg = jwt_cfg(ks);
  tc_client c;
  char hdr[4096], body[256];
  (void)state;
  assert_int_equal(agentws_config_set_jwt_required_scope(cfg, "write"), 0);
  start(&s, cfg, NULL, NULL);
  agentws_config_free(cfg);
  agentws_keyset_free(ks);
  assert_int_equal(handshake(&s, &c, "/ws",
                             bearer(hdr, sizeof(hdr), JWTF_TOK_NO_SCOPE),
                             body, sizeof(body)),
                   403);
  assert_non_null(strstr(c.head, "error=\"insufficient_scope\""));
  assert_string_equal(body, "forbidden\n");
  tc_close(&c);
  connect_token(&s, &c, JWTF_TOK_HS256_SCOPE, "alice");
  close_client(&s, &c);
  assert_int_equal(stat_of(&s, AGENTWS_STAT_AUTH_FORBIDDEN), 1);
  th_finish(&s);
}

/* --------------------------------------------------------- config setters */

static void test_config_setters(void **state) {
  agentws_config *cfg = NULL;
  char long_name[300];
  (void)state;
  assert_int_equal(agentws_config_new(&cfg), 0);

  /* Algorithms. */
  assert_int_equal(agentws_config_set_jwt_algorithms(cfg, "RS256,ES256"), 0);
  assert_int_equal(agentws_config_set_jwt_algorithms(cfg, "HS512"), 0);
  assert_int_equal(agentws_config_set_jwt_algorithms(cfg, "none"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_jwt_algorithms(cfg, ""),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_jwt_algorithms(cfg, "HS256,XX"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_jwt_algorithms(cfg, "HS256,none"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_jwt_algorithms(cfg, "EdDSA"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_jwt_algorithms(cfg, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_jwt_algorithms(NULL, "HS256"),
                   AGENTWS_ERR_INVALID_ARGUMENT);

  /* Token sources. */
  assert_int_equal(agentws_config_set_token_sources(cfg, "header"), 0);
  assert_int_equal(
      agentws_config_set_token_sources(cfg, "query,cookie,subprotocol,header"),
      0);
  assert_int_equal(agentws_config_set_token_sources(cfg, "header,header"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_sources(cfg, "foo"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_sources(cfg, "header,foo"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_sources(cfg, ""),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_sources(cfg, "Header"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_sources(cfg, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_sources(NULL, "header"),
                   AGENTWS_ERR_INVALID_ARGUMENT);

  /* Ranges. */
  assert_int_equal(agentws_config_set_jwt_leeway_s(cfg, 0), 0);
  assert_int_equal(agentws_config_set_jwt_leeway_s(cfg, 3600), 0);
  assert_int_equal(agentws_config_set_jwt_leeway_s(cfg, 3601),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_jwt_leeway_s(cfg, -1),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_jwt_leeway_s(NULL, 5),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_jwt_cache_size(cfg, 0), 0);
  assert_int_equal(agentws_config_set_jwt_cache_size(cfg, 1000000), 0);
  assert_int_equal(agentws_config_set_jwt_cache_size(cfg, -1),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_jwt_cache_size(cfg, 1000001),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_token_expiring_s(cfg, 0), 0);
  assert_int_equal(agentws_config_set_token_expiring_s(cfg, 86400), 0);
  assert_int_equal(agentws_config_set_token_expiring_s(cfg, 86401),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_token_expiring_s(cfg, -1),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_jwt_require_exp(cfg, 0), 0);
  assert_int_equal(agentws_config_set_jwt_require_exp(cfg, 1), 0);
  assert_int_equal(agentws_config_set_jwt_require_exp(cfg, 2),
                   AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(agentws_config_set_jwt_require_exp(NULL, 1),
                   AGENTWS_ERR_INVALID_ARGUMENT);

  /* Names of the query parameter and cookie: HTTP tokens, 1 .. 64. */
  memset(long_name, 'a', sizeof(long_name));
  long_name[64] = '\0';
  assert_int_equal(agentws_config_set_token_query_param(cfg, "tok"), 0);
  assert_int_equal(agentws_config_set_token_query_param(cfg, long_name), 0);
  assert_int_equal(agentws_config_set_token_query_param(cfg, "a&b"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_query_param(cfg, "a=b"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_query_param(cfg, "a%26"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_query_param(cfg, "a b"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_query_param(cfg, ""),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_query_param(cfg, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_query_param(NULL, "tok"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_cookie(cfg, "sess"), 0);
  assert_int_equal(agentws_config_set_token_cookie(cfg, "a;b"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_cookie(cfg, "a=b"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_cookie(cfg, "\"q\""),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_cookie(cfg, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  long_name[64] = 'a';
  long_name[65] = '\0';
  assert_int_equal(agentws_config_set_token_query_param(cfg, long_name),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_cookie(cfg, long_name),
                   AGENTWS_ERR_INVALID_ARGUMENT);

  /* Strings: issuer, audience, user claim, scope. */
  assert_int_equal(agentws_config_set_jwt_issuer(cfg, JWTF_ISS), 0);
  assert_int_equal(agentws_config_set_jwt_issuer(cfg, NULL), 0);
  assert_int_equal(agentws_config_set_jwt_issuer(cfg, ""),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_jwt_issuer(cfg, "a\nb"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_jwt_issuer(NULL, "x"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_jwt_audience(cfg, JWTF_AUD), 0);
  assert_int_equal(agentws_config_set_jwt_audience(cfg, NULL), 0);
  assert_int_equal(agentws_config_set_jwt_audience(cfg, ""),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_jwt_user_claim(cfg, "email"), 0);
  assert_int_equal(agentws_config_set_jwt_user_claim(cfg, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_jwt_user_claim(cfg, ""),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  memset(long_name, 'c', sizeof(long_name));
  long_name[255] = '\0';
  assert_int_equal(agentws_config_set_jwt_user_claim(cfg, long_name), 0);
  long_name[255] = 'c';
  long_name[256] = '\0';
  assert_int_equal(agentws_config_set_jwt_user_claim(cfg, long_name),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_jwt_required_scope(cfg, "write"), 0);
  assert_int_equal(agentws_config_set_jwt_required_scope(cfg, NULL), 0);
  assert_int_equal(agentws_config_set_jwt_required_scope(cfg, "a b"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_jwt_required_scope(cfg, ""),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  agentws_config_free(cfg);
}

/* A refused setter leaves the option as it was: the manager still takes
 * the algorithms and sources set before. */
static void test_config_unchanged_on_error(void **state) {
  static th_server s;
  agentws_keyset *ks = secret_set("hs1", JWTF_HS_SECRET);
  agentws_config *cfg = jwt_cfg(ks);
  tc_client c;
  (void)state;
  assert_int_equal(agentws_config_set_jwt_algorithms(cfg, "RS256"), 0);
  assert_int_equal(agentws_config_set_jwt_algorithms(cfg, "HS256,XX"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_token_sources(cfg, "query"), 0);
  assert_int_equal(agentws_config_set_token_sources(cfg, "header,header"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  start(&s, cfg, NULL, NULL);
  /* HS256 is not allowed (RS256 only), the header is not a source. */
  assert_int_equal(handshake(&s, &c, "/ws?access_token=" JWTF_TOK_HS256, NULL,
                             NULL, 0),
                   401);
  tc_close(&c);
  assert_int_equal(stat_of(&s, AGENTWS_STAT_AUTH_BAD_ALGORITHM), 1);
  assert_int_equal(try_token_as(&s, &c, JWTF_TOK_HS256, 0), 401);
  assert_int_equal(stat_of(&s, AGENTWS_STAT_AUTH_MISSING_TOKEN), 1);
  th_finish(&s);
  /* The same config with HS256 allowed again. */
  assert_int_equal(agentws_config_set_jwt_algorithms(cfg, "HS256"), 0);
  start(&s, cfg, NULL, NULL);
  agentws_config_free(cfg);
  agentws_keyset_free(ks);
  assert_int_equal(handshake(&s, &c, "/ws?access_token=" JWTF_TOK_HS256, NULL,
                             NULL, 0),
                   101);
  expect_welcome(&c, "alice");
  close_client(&s, &c);
  th_finish(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(test_header_token_accepted),
      TH_TEST(test_bad_tokens_refused),
      TH_TEST(test_token_sources),
      TH_TEST(test_hook_after_token),
      TH_TEST(test_async_hook_timeout),
      TH_TEST(test_stats),
      TH_TEST(test_rotation),
      TH_TEST(test_rotation_needs_keys),
      TH_TEST(test_token_without_exp),
      TH_TEST(test_required_scope),
      TH_TEST(test_config_setters),
      TH_TEST(test_config_unchanged_on_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
