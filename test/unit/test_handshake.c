/* Unit tests for the RFC 6455 handshake and HTTP writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agentws_handshake.h"

#define MAX_HDRS 32

typedef struct parsed {
  agentws__http_request req;
  agentws__http_header hdrs[MAX_HDRS];
} parsed;

static const char *const v1_only[] = {"agentws.v1"};
static const char *const protos[] = {"agentws.v1", "ag-ui"};
static const char *const origins[] = {"https://app.example.com",
                                      "http://localhost:3000"};

/* A valid upgrade request with |extra| header lines spliced in. */
static void parse_with(parsed *p, char *buf, size_t cap, const char *line,
                       const char *extra) {
  int n = snprintf(buf, cap,
                   "%s\r\n"
                   "Host: example.com\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "%s\r\n",
                   line, extra);
  assert_true(n > 0 && (size_t)n < cap);
  memset(p, 0, sizeof(*p));
  p->req.headers = p->hdrs;
  p->req.num_headers = MAX_HDRS;
  assert_int_equal(agentws__http_parse_request(buf, (size_t)n, &p->req), n);
}

/* Parses |head| verbatim and runs the check. */
static int check_raw(const char *head, const agentws__hs_policy *pol,
                     agentws__hs_result *res) {
  parsed p;
  memset(&p, 0, sizeof(p));
  p.req.headers = p.hdrs;
  p.req.num_headers = MAX_HDRS;
  assert_true(agentws__http_parse_request(head, strlen(head), &p.req) > 0);
  agentws__handshake_check(&p.req, pol, res);
  assert_non_null(res->reason);
  return res->status;
}

#define REQ(lines) lines "\r\n"
#define L_GET "GET /ws HTTP/1.1\r\n"
#define L_HOST "Host: example.com\r\n"
#define L_UPG "Upgrade: websocket\r\n"
#define L_CONN "Connection: Upgrade\r\n"
#define L_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define L_VER "Sec-WebSocket-Version: 13\r\n"

static void test_accept_key_rfc_sample(void **state) {
  char out[29];
  (void)state;

  agentws__handshake_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_accept_key_too_long(void **state) {
  char key[200];
  char out[29];
  char buf[256];
  (void)state;

  /* Never a valid key; the accept is "" and the 101 writer refuses. */
  memset(key, 'A', sizeof(key));
  agentws__handshake_accept_key(key, sizeof(key), out);
  assert_string_equal(out, "");
  assert_int_equal(
      agentws__handshake_write_101(buf, sizeof(buf), key, sizeof(key), NULL),
      -1);
}

static void test_check_ok(void **state) {
  agentws__hs_policy pol = {NULL, 0, v1_only, 1};
  agentws__hs_result res;
  (void)state;

  assert_int_equal(
      check_raw(REQ(L_GET L_HOST L_UPG L_CONN L_KEY L_VER), &pol, &res), 101);
  assert_string_equal(res.reason, "");
  assert_int_equal(res.key_len, 24);
  assert_memory_equal(res.key, "dGhlIHNhbXBsZSBub25jZQ==", 24);
  assert_int_equal(res.subprotocol, -1); /* nothing offered: none echoed */

  /* Token lists and case: "keep-alive, Upgrade", "WebSocket". */
  assert_int_equal(
      check_raw(REQ(L_GET L_HOST
                    "Upgrade: WebSocket\r\n"
                    "Connection: keep-alive, Upgrade\r\n" L_KEY L_VER),
                &pol, &res),
      101);
  /* A NULL policy means no origin check and no subprotocols. */
  assert_int_equal(check_raw(REQ(L_GET L_HOST L_UPG L_CONN L_KEY L_VER
                                 "Origin: https://evil.example\r\n"
                                 "Sec-WebSocket-Protocol: agentws.v1\r\n"),
                             NULL, &res),
                   101);
  assert_int_equal(res.subprotocol, -1);
}

/* Each refusal, with every earlier check passing and the later ones failing,
 * so the documented order is what is being tested. */
static void test_refusal_order(void **state) {
  agentws__hs_policy pol = {origins, 2, v1_only, 1};
  agentws__hs_result res;
  (void)state;

  assert_int_equal(check_raw(REQ("POST /ws HTTP/1.0\r\n"), &pol, &res), 405);
  assert_int_equal(
      check_raw(REQ("get /ws HTTP/1.1\r\n" L_HOST L_UPG L_CONN L_KEY L_VER),
                &pol, &res),
      405);
  assert_int_equal(check_raw(REQ("GET /ws HTTP/1.0\r\n"), &pol, &res), 505);
  assert_int_equal(check_raw(REQ(L_GET), &pol, &res), 400);
  assert_int_equal(
      check_raw(REQ(L_GET L_HOST L_UPG L_CONN L_KEY L_VER "Host: b\r\n"), &pol,
                &res),
      400);
  assert_int_equal(check_raw(REQ(L_GET L_HOST), &pol, &res), 426);
  assert_int_equal(
      check_raw(REQ(L_GET L_HOST "Upgrade: h2c\r\n" L_CONN L_KEY L_VER), &pol,
                &res),
      426);
  assert_int_equal(check_raw(REQ(L_GET L_HOST L_UPG), &pol, &res), 400);
  assert_int_equal(
      check_raw(REQ(L_GET L_HOST L_UPG "Connection: close\r\n"), &pol, &res),
      400);
  assert_int_equal(check_raw(REQ(L_GET L_HOST L_UPG L_CONN), &pol, &res), 426);
  assert_int_equal(
      check_raw(REQ(L_GET L_HOST L_UPG L_CONN "Sec-WebSocket-Version: 8\r\n"),
                &pol, &res),
      426);
  assert_int_equal(check_raw(REQ(L_GET L_HOST L_UPG L_CONN
                                 "Sec-WebSocket-Version: 13, 8\r\n"),
                             &pol, &res),
                   426);
  assert_int_equal(check_raw(REQ(L_GET L_HOST L_UPG L_CONN L_VER), &pol, &res),
                   400);
  assert_string_equal(res.reason, "Sec-WebSocket-Key is missing or invalid");
  assert_int_equal(
      check_raw(REQ(L_GET L_HOST L_UPG L_CONN L_VER L_KEY L_KEY), &pol, &res),
      400);
  assert_int_equal(check_raw(REQ(L_GET L_HOST L_UPG L_CONN L_VER L_KEY
                                 "Origin: https://evil.example\r\n"),
                             &pol, &res),
                   403);
  assert_true(res.reason[0] != '\0');
  assert_null(res.key);
  assert_int_equal(res.subprotocol, -1);
}

static void test_bad_keys(void **state) {
  static const char *const bad[] = {
      "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 chars */
      "dGhlIHNhbXBsZSBub25jZQ===", /* 25 chars */
      "dGhlIHNhbXBsZSBub25jZQAA",  /* 18 bytes, no padding */
      "dGhlIHNhbXBsZSBub25jZQA=",  /* 17 bytes */
      "dGhlIHNhbXBsZSBub25j====",  /* padding too early */
      "dGhlIHNhbXBsZSBub2 jZQ==",  /* space inside */
      "dGhlIHNhbXBsZSBub2-jZQ==",  /* base64url alphabet */
      "dGhlIHNhbXBsZSBub2*jZQ==",  "",
  };
  char buf[512];
  parsed p;
  agentws__hs_result res;
  size_t k;
  (void)state;

  for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
    int n = snprintf(buf, sizeof(buf),
                     L_GET L_HOST L_UPG L_CONN L_VER
                     "Sec-WebSocket-Key: %s\r\n\r\n",
                     bad[k]);
    memset(&p, 0, sizeof(p));
    p.req.headers = p.hdrs;
    p.req.num_headers = MAX_HDRS;
    assert_int_equal(agentws__http_parse_request(buf, (size_t)n, &p.req), n);
    agentws__handshake_check(&p.req, NULL, &res);
    if (res.status != 400)
      fail_msg("key #%zu \"%s\" gave %d", k, bad[k], res.status);
  }
  /* Another valid 16-byte key, with OWS the parser strips. */
  assert_int_equal(
      check_raw(REQ(L_GET L_HOST L_UPG L_CONN L_VER
                    "Sec-WebSocket-Key:  AQIDBAUGBwgJCgsMDQ4PEA== \r\n"),
                NULL, &res),
      101);
}

static void test_subprotocol_selection(void **state) {
  agentws__hs_policy pol = {NULL, 0, protos, 2};
  agentws__hs_result res;
  char buf[1024];
  parsed p;
  (void)state;

  /* Client order wins over policy order. */
  parse_with(&p, buf, sizeof(buf), "GET /ws HTTP/1.1",
             "Sec-WebSocket-Protocol: ag-ui, agentws.v1\r\n");
  agentws__handshake_check(&p.req, &pol, &res);
  assert_int_equal(res.status, 101);
  assert_int_equal(res.subprotocol, 1);

  /* bearer.* is skipped even if the policy (wrongly) lists it. */
  {
    static const char *const with_bearer[] = {"bearer.abc", "agentws.v1"};
    agentws__hs_policy bpol = {NULL, 0, with_bearer, 2};
    parse_with(&p, buf, sizeof(buf), "GET /ws HTTP/1.1",
               "Sec-WebSocket-Protocol: bearer.abc, agentws.v1\r\n");
    agentws__handshake_check(&p.req, &bpol, &res);
    assert_int_equal(res.subprotocol, 1);
    parse_with(&p, buf, sizeof(buf), "GET /ws HTTP/1.1",
               "Sec-WebSocket-Protocol: Bearer.abc\r\n");
    agentws__handshake_check(&p.req, &bpol, &res);
    assert_int_equal(res.status, 101);
    assert_int_equal(res.subprotocol, -1);
  }

  /* Multiple headers are one list, in order. */
  parse_with(&p, buf, sizeof(buf), "GET /ws HTTP/1.1",
             "Sec-WebSocket-Protocol: bearer.eyJhbGciOi.x.y\r\n"
             "X-Other: ag-ui\r\n"
             "Sec-WebSocket-Protocol: chat , agentws.v1\r\n"
             "Sec-WebSocket-Protocol: ag-ui\r\n");
  agentws__handshake_check(&p.req, &pol, &res);
  assert_int_equal(res.subprotocol, 0);

  /* Case-sensitive names; empty entries; nothing supported. */
  parse_with(&p, buf, sizeof(buf), "GET /ws HTTP/1.1",
             "Sec-WebSocket-Protocol: AgentWS.v1, , agentws.v1x\r\n");
  agentws__handshake_check(&p.req, &pol, &res);
  assert_int_equal(res.status, 101);
  assert_int_equal(res.subprotocol, -1);
}

static void test_origin_allow_list(void **state) {
  agentws__hs_policy pol = {origins, 2, NULL, 0};
  agentws__hs_policy any = {NULL, 0, NULL, 0};
  agentws__hs_result res;
  char buf[1024];
  parsed p;
  (void)state;

  parse_with(&p, buf, sizeof(buf), "GET /ws HTTP/1.1",
             "Origin: http://localhost:3000\r\n");
  agentws__handshake_check(&p.req, &pol, &res);
  assert_int_equal(res.status, 101);
  parse_with(&p, buf, sizeof(buf), "GET /ws HTTP/1.1",
             "Origin: HTTPS://APP.example.com\r\n");
  agentws__handshake_check(&p.req, &pol, &res);
  assert_int_equal(res.status, 101);
  /* No Origin (non-browser client) is allowed. */
  parse_with(&p, buf, sizeof(buf), "GET /ws HTTP/1.1", "");
  agentws__handshake_check(&p.req, &pol, &res);
  assert_int_equal(res.status, 101);

  parse_with(&p, buf, sizeof(buf), "GET /ws HTTP/1.1",
             "Origin: https://app.example.com.evil\r\n");
  agentws__handshake_check(&p.req, &pol, &res);
  assert_int_equal(res.status, 403);
  parse_with(&p, buf, sizeof(buf), "GET /ws HTTP/1.1", "Origin: null\r\n");
  agentws__handshake_check(&p.req, &pol, &res);
  assert_int_equal(res.status, 403);
  /* A second Origin line cannot smuggle a foreign origin past the first. */
  parse_with(&p, buf, sizeof(buf), "GET /ws HTTP/1.1",
             "Origin: http://localhost:3000\r\nOrigin: https://evil\r\n");
  agentws__handshake_check(&p.req, &pol, &res);
  assert_int_equal(res.status, 403);
  /* Empty allow-list: anything goes. */
  parse_with(&p, buf, sizeof(buf), "GET /ws HTTP/1.1",
             "Origin: https://evil\r\n");
  agentws__handshake_check(&p.req, &any, &res);
  assert_int_equal(res.status, 101);
}

static void test_write_101_exact(void **state) {
  static const char want[] =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
      "\r\n";
  static const char want_proto[] =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
      "Sec-WebSocket-Protocol: agentws.v1\r\n"
      "\r\n";
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
  char buf[256];
  size_t cap;
  (void)state;

  assert_int_equal(
      agentws__handshake_write_101(buf, sizeof(buf), key, 24, NULL),
      (int)sizeof(want) - 1);
  assert_string_equal(buf, want);
  assert_int_equal(
      agentws__handshake_write_101(buf, sizeof(buf), key, 24, "agentws.v1"),
      (int)sizeof(want_proto) - 1);
  assert_string_equal(buf, want_proto);

  /* Exactly enough room (bytes + NUL) works; one less refuses, and nothing
   * is written past |cap|. */
  for (cap = 0; cap <= sizeof(want_proto); cap++) {
    int n;
    memset(buf, 'Z', sizeof(buf));
    n = agentws__handshake_write_101(buf, cap, key, 24, "agentws.v1");
    assert_int_equal(n, cap == sizeof(want_proto) ? (int)cap - 1 : -1);
    assert_int_equal(buf[cap], 'Z');
  }
  /* Header injection through a configured name is refused. */
  assert_int_equal(
      agentws__handshake_write_101(buf, sizeof(buf), key, 24, "a\r\nX: y"), -1);
  assert_int_equal(agentws__handshake_write_101(buf, sizeof(buf), key, 24, ""),
                   -1);
}

static void test_write_error(void **state) {
  static const struct {
    int status;
    const char *extra;
  } cases[] = {
      {400, ""},
      {401, "WWW-Authenticate: Bearer realm=\"agentws\"\r\n"},
      {403, ""},
      {404, ""},
      {405, "Allow: GET\r\n"},
      {426, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"},
      {429, ""},
      {431, ""},
      {503, "Retry-After: 1\r\n"},
      {505, ""},
  };
  char buf[512];
  char want[512];
  size_t k;
  int n;
  (void)state;

  for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    int wn =
        snprintf(want, sizeof(want),
                 "HTTP/1.1 %d %s\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 12\r\n"
                 "Connection: close\r\n"
                 "%s\r\n"
                 "bad request\n",
                 cases[k].status, agentws__http_reason_phrase(cases[k].status),
                 cases[k].extra);
    assert_int_equal(agentws__http_write_error(buf, sizeof(buf),
                                               cases[k].status, "bad request"),
                     wn);
    assert_string_equal(buf, want);
  }
  assert_true(strstr(want, "505 HTTP Version Not Supported\r\n") != NULL);

  /* NULL body is an empty body plus the newline. */
  n = agentws__http_write_error(buf, sizeof(buf), 404, NULL);
  assert_true(n > 3);
  assert_non_null(strstr(buf, "Content-Length: 1\r\n"));
  assert_string_equal(buf + n - 3, "\r\n\n");
  assert_int_equal(agentws__http_write_error(buf, sizeof(buf), 42, "x"), -1);
}

static void test_write_error_cap(void **state) {
  char buf[256];
  int full;
  size_t cap;
  (void)state;

  full = agentws__http_write_error(buf, sizeof(buf), 426, "need websocket");
  assert_true(full > 0);
  for (cap = 0; cap <= (size_t)full + 1; cap++) {
    int n;
    memset(buf, 'Z', sizeof(buf));
    n = agentws__http_write_error(buf, cap, 426, "need websocket");
    assert_int_equal(n, cap == (size_t)full + 1 ? full : -1);
    assert_int_equal(buf[cap], 'Z');
  }
  assert_int_equal(agentws__http_write_error(NULL, 0, 400, "x"), -1);
}

static void test_write_ok(void **state) {
  static const char body[] = "{\"ok\":true}\0tail";
  static const char want_head[] = "HTTP/1.1 200 OK\r\n"
                                  "Content-Type: application/json\r\n"
                                  "Content-Length: 16\r\n"
                                  "Cache-Control: no-store\r\n"
                                  "Connection: close\r\n"
                                  "\r\n";
  const size_t hl = sizeof(want_head) - 1;
  const size_t bl = sizeof(body) - 1;
  char buf[256];
  size_t cap;
  int n;
  (void)state;

  assert_int_equal(
      agentws__http_write_ok(buf, sizeof(buf), "application/json", body, bl),
      (int)(hl + bl));
  assert_memory_equal(buf, want_head, hl);
  assert_memory_equal(buf + hl, body, bl); /* embedded NUL survives */
  for (cap = 0; cap <= hl + bl + 1; cap++) {
    memset(buf, 'Z', sizeof(buf));
    n = agentws__http_write_ok(buf, cap, "application/json", body, bl);
    assert_int_equal(n, cap == hl + bl + 1 ? (int)(hl + bl) : -1);
    assert_int_equal(buf[cap], 'Z');
  }
  n = agentws__http_write_ok(buf, sizeof(buf), "text/plain", NULL, 0);
  assert_int_equal(n, (int)strlen(buf));
  assert_non_null(strstr(buf, "Content-Length: 0\r\n"));
  assert_int_equal(
      agentws__http_write_ok(buf, sizeof(buf), "text/plain\r\nX: y", "a", 1),
      -1);
  assert_int_equal(
      agentws__http_write_ok(buf, sizeof(buf), "text/plain", NULL, 3), -1);
}

static void test_reason_phrases(void **state) {
  static const struct {
    int status;
    const char *phrase;
  } cases[] = {
      {101, "Switching Protocols"},
      {200, "OK"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {408, "Request Timeout"},
      {413, "Content Too Large"},
      {426, "Upgrade Required"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {503, "Service Unavailable"},
      {505, "HTTP Version Not Supported"},
      {299, "Unknown"},
      {-1, "Unknown"},
  };
  size_t k;
  (void)state;

  for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
    assert_string_equal(agentws__http_reason_phrase(cases[k].status),
                        cases[k].phrase);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accept_key_rfc_sample),
      cmocka_unit_test(test_accept_key_too_long),
      cmocka_unit_test(test_check_ok),
      cmocka_unit_test(test_refusal_order),
      cmocka_unit_test(test_bad_keys),
      cmocka_unit_test(test_subprotocol_selection),
      cmocka_unit_test(test_origin_allow_list),
      cmocka_unit_test(test_write_101_exact),
      cmocka_unit_test(test_write_error),
      cmocka_unit_test(test_write_error_cap),
      cmocka_unit_test(test_write_ok),
      cmocka_unit_test(test_reason_phrases),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
