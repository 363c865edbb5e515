/* Unit tests for the HTTP request-head parser (lib/agentws_http.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agentws_http.h"

#define MAX_HDRS 16

typedef struct parsed {
  agentws__http_request req;
  agentws__http_header hdrs[MAX_HDRS];
} parsed;

static int parse_cap(parsed *p, const char *buf, size_t len, size_t cap) {
  memset(p, 0, sizeof(*p));
  p->req.headers = p->hdrs;
  p->req.num_headers = cap;
  return agentws__http_parse_request(buf, len, &p->req);
}

static int parse(parsed *p, const char *s) {
  return parse_cap(p, s, strlen(s), MAX_HDRS);
}

static void assert_span(const char *ptr, size_t len, const char *want) {
  assert_int_equal(len, strlen(want));
  assert_memory_equal(ptr, want, len);
}

static const char upgrade_req[] =
    "GET /ws?user=a HTTP/1.1\r\n"
    "Host: example.com:8080\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

static void test_valid_get(void **state) {
  parsed p;
  (void)state;

  assert_int_equal(parse(&p, upgrade_req), (int)strlen(upgrade_req));
  assert_span(p.req.method, p.req.method_len, "GET");
  assert_span(p.req.target, p.req.target_len, "/ws?user=a");
  assert_int_equal(p.req.minor_version, 1);
  assert_int_equal(p.req.num_headers, 5);
  assert_span(p.hdrs[0].name, p.hdrs[0].name_len, "Host");
  assert_span(p.hdrs[0].value, p.hdrs[0].value_len, "example.com:8080");
  assert_span(p.hdrs[2].value, p.hdrs[2].value_len, "keep-alive, Upgrade");
  assert_span(p.hdrs[4].name, p.hdrs[4].name_len, "Sec-WebSocket-Version");
  assert_span(p.hdrs[4].value, p.hdrs[4].value_len, "13");
  /* Zero-copy: fields point into the caller's buffer. */
  assert_ptr_equal(p.req.method, upgrade_req);
}

static void test_http10_and_no_headers(void **state) {
  parsed p;
  (void)state;

  assert_int_equal(parse(&p, "GET / HTTP/1.0\r\n\r\n"), 18);
  assert_int_equal(p.req.minor_version, 0);
  assert_int_equal(p.req.num_headers, 0);
  assert_span(p.req.target, p.req.target_len, "/");
}

static void test_ows_stripping(void **state) {
  parsed p;
  (void)state;

  assert_true(parse(&p, "GET / HTTP/1.1\r\n"
                        "A: \t  spaced value \t \r\n"
                        "B:nospace\r\n"
                        "C:\r\n"
                        "D:   \t \r\n"
                        "E: x\xc3\xa9y\r\n"
                        "\r\n") > 0);
  assert_int_equal(p.req.num_headers, 5);
  assert_span(p.hdrs[0].value, p.hdrs[0].value_len, "spaced value");
  assert_span(p.hdrs[1].value, p.hdrs[1].value_len, "nospace");
  assert_int_equal(p.hdrs[2].value_len, 0);
  assert_int_equal(p.hdrs[3].value_len, 0);
  /* obs-text is allowed and passed through untouched. */
  assert_span(p.hdrs[4].value, p.hdrs[4].value_len, "x\xc3\xa9y");
}

static void test_partial_every_offset(void **state) {
  size_t n = strlen(upgrade_req);
  size_t cut;
  parsed p;
  (void)state;

  for (cut = 0; cut < n; cut++) {
    /* A heap copy of exactly |cut| bytes lets ASan/valgrind catch overreads. */
    char *copy = malloc(cut ? cut : 1);
    assert_non_null(copy);
    memcpy(copy, upgrade_req, cut);
    assert_int_equal(parse_cap(&p, copy, cut, MAX_HDRS), AGENTWS__HTTP_PARTIAL);
    free(copy);
  }
  assert_int_equal(parse(&p, upgrade_req), (int)n);
  assert_int_equal(p.req.num_headers, 5);
}

static void test_partial_keeps_capacity(void **state) {
  parsed p;
  (void)state;

  /* Stateless re-parse: after PARTIAL the same request struct is reusable. */
  assert_int_equal(parse_cap(&p, upgrade_req, 40, 5), AGENTWS__HTTP_PARTIAL);
  assert_int_equal(p.req.num_headers, 5);
  assert_int_equal(
      agentws__http_parse_request(upgrade_req, strlen(upgrade_req), &p.req),
      (int)strlen(upgrade_req));
  assert_int_equal(p.req.num_headers, 5);
}

static void test_pipelined(void **state) {
  const char buf[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\n";
  const char *head_end = strstr(buf, "\r\n\r\n") + 4;
  parsed p;
  int rc;
  (void)state;

  rc = parse_cap(&p, buf, sizeof(buf) - 1, MAX_HDRS);
  assert_int_equal(rc, (int)(head_end - buf));
  assert_string_equal(buf + rc, "GET /b HTTP/1.1\r\n");
  /* Even binary garbage after the head is not the parser's business. */
  assert_int_equal(
      parse_cap(&p, "GET / HTTP/1.1\r\n\r\n\x81\x00\xff", 21, MAX_HDRS), 18);
}

static void test_leading_crlf(void **state) {
  parsed p;
  (void)state;

  assert_int_equal(parse(&p, "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 31);
  assert_span(p.req.method, p.req.method_len, "GET");
  assert_int_equal(parse(&p, "\r\n"), AGENTWS__HTTP_PARTIAL);
  assert_int_equal(parse(&p, "\r"), AGENTWS__HTTP_PARTIAL);
  assert_int_equal(parse(&p, "\n"), AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "\r\nGET"), AGENTWS__HTTP_PARTIAL);
  assert_int_equal(parse(&p, "\rGET / HTTP/1.1\r\n\r\n"),
                   AGENTWS__HTTP_INVALID);
}

static void test_bare_lf_and_cr(void **state) {
  parsed p;
  (void)state;

  assert_int_equal(parse(&p, "GET / HTTP/1.1\n\n"), AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\nHost: h\n\r\n"),
                   AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\nHost: h\r\n\n"),
                   AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"),
                   AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\nHost: h\r\n\rX"),
                   AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "GET / HTTP/1.1\rX"), AGENTWS__HTTP_INVALID);
}

static void test_obs_fold(void **state) {
  parsed p;
  (void)state;

  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"),
                   AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n"),
                   AGENTWS__HTTP_INVALID);
  /* Whitespace before the first field line (RFC 9112 §2.2). */
  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\n Host: h\r\n\r\n"),
                   AGENTWS__HTTP_INVALID);
}

static void test_ctl_in_value(void **state) {
  static const char nul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
  parsed p;
  (void)state;

  assert_int_equal(parse_cap(&p, nul, sizeof(nul) - 1, MAX_HDRS),
                   AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n"),
                   AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n"),
                   AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\nA: \x1b[0m\r\n\r\n"),
                   AGENTWS__HTTP_INVALID);
  /* HTAB inside a value is fine. */
  assert_true(parse(&p, "GET / HTTP/1.1\r\nA: b\tc\r\n\r\n") > 0);
  assert_span(p.hdrs[0].value, p.hdrs[0].value_len, "b\tc");
}

static void test_bad_request_line(void **state) {
  static const char *const bad[] = {
      "GET / HTTP/1.2\r\n\r\n",
      "GET / HTTP/2.0\r\n\r\n",
      "GET / HTTP/1.10\r\n\r\n",
      "GET / http/1.1\r\n\r\n",
      "GET / HTTP/1.1 \r\n\r\n",
      "GET  / HTTP/1.1\r\n\r\n",
      "GET /  HTTP/1.1\r\n\r\n",
      "GET HTTP/1.1\r\n\r\n",
      " GET / HTTP/1.1\r\n\r\n",
      "G(T / HTTP/1.1\r\n\r\n",
      "GET /a\x01 HTTP/1.1\r\n\r\n",
      "GET /\xc3\xa9 HTTP/1.1\r\n\r\n",
      "GET\t/ HTTP/1.1\r\n\r\n",
      "GET /\tHTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1", /* partial, checked below */
  };
  size_t k;
  parsed p;
  (void)state;

  for (k = 0; k + 1 < sizeof(bad) / sizeof(bad[0]); k++) {
    if (parse(&p, bad[k]) != AGENTWS__HTTP_INVALID)
      fail_msg("accepted bad request line #%zu: %s", k, bad[k]);
  }
  assert_int_equal(parse(&p, bad[k]), AGENTWS__HTTP_PARTIAL);
  /* Errors are reported as soon as they are certain, not at the CRLF. */
  assert_int_equal(parse(&p, "GET / HTTP/3"), AGENTWS__HTTP_INVALID);
}

static void test_bad_header_name(void **state) {
  parsed p;
  (void)state;

  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\n: v\r\n\r\n"),
                   AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\nHost : h\r\n\r\n"),
                   AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\nHo st: h\r\n\r\n"),
                   AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\nHost\r\n\r\n"),
                   AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\nH(st: h\r\n\r\n"),
                   AGENTWS__HTTP_INVALID);
  assert_int_equal(parse(&p, "GET / HTTP/1.1\r\nH\xc3\xa9: h\r\n\r\n"),
                   AGENTWS__HTTP_INVALID);
}

static void test_too_many_headers(void **state) {
  static const char three[] = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  parsed p;
  (void)state;

  assert_int_equal(parse_cap(&p, three, sizeof(three) - 1, 2),
                   AGENTWS__HTTP_TOO_MANY);
  assert_int_equal(parse_cap(&p, three, sizeof(three) - 1, 0),
                   AGENTWS__HTTP_TOO_MANY);
  assert_int_equal(parse_cap(&p, three, sizeof(three) - 1, 3),
                   (int)sizeof(three) - 1);
  assert_int_equal(p.req.num_headers, 3);
  /* The surplus line must be complete and valid before it counts. */
  assert_int_equal(parse_cap(&p, three, 30, 2), AGENTWS__HTTP_PARTIAL);
  assert_int_equal(parse_cap(&p, "GET / HTTP/1.1\r\nA: 1\r\nB\x01", 24, 1),
                   AGENTWS__HTTP_INVALID);
  assert_int_equal(parse_cap(&p, "GET / HTTP/1.1\r\n\r\n", 18, 0), 18);
}

static void test_huge_value(void **state) {
  const size_t vlen = 1 << 20;
  const char *pre = "GET / HTTP/1.1\r\nX-Big: ";
  size_t plen = strlen(pre);
  size_t total = plen + vlen + 4;
  char *buf = malloc(total);
  parsed p;
  (void)state;

  assert_non_null(buf);
  memcpy(buf, pre, plen);
  memset(buf + plen, 'v', vlen);
  memcpy(buf + plen + vlen, "\r\n\r\n", 4);
  assert_int_equal(parse_cap(&p, buf, total, MAX_HDRS), (int)total);
  assert_int_equal(p.hdrs[0].value_len, vlen);
  assert_int_equal(parse_cap(&p, buf, total - 1, MAX_HDRS),
                   AGENTWS__HTTP_PARTIAL);
  free(buf);
}

static void test_find_header_and_ieq(void **state) {
  parsed p;
  const agentws__http_header *h;
  (void)state;

  assert_true(parse(&p, upgrade_req) > 0);
  h = agentws__http_find_header(&p.req, "sec-websocket-key");
  assert_non_null(h);
  assert_span(h->value, h->value_len, "dGhlIHNhbXBsZSBub25jZQ==");
  assert_null(agentws__http_find_header(&p.req, "Origin"));
  assert_null(agentws__http_find_header(&p.req, "Hos"));

  assert_true(agentws__http_ieq("HoSt", 4, "host"));
  assert_false(agentws__http_ieq("Host", 4, "Hostx"));
  assert_false(agentws__http_ieq("Hostx", 5, "Host"));
  assert_true(agentws__http_ieq("", 0, ""));
  assert_false(agentws__http_ieq("[", 1, "{")); /* not a blind |0x20 */
}

static void test_list_has_token(void **state) {
  (void)state;
#define HAS(list, tok) agentws__http_list_has_token(list, strlen(list), tok)
  assert_true(HAS("keep-alive, Upgrade", "upgrade"));
  assert_true(HAS("Upgrade", "upgrade"));
  assert_true(HAS("  upgrade\t", "Upgrade"));
  assert_true(HAS(",,upgrade,,", "upgrade"));
  assert_true(HAS("a,b , \tUPGRADE , c", "upgrade"));
  assert_false(HAS("upgradex", "upgrade"));
  assert_false(HAS("xupgrade", "upgrade"));
  assert_false(HAS("up grade", "upgrade"));
  assert_false(HAS("keep-alive", "upgrade"));
  assert_false(HAS("", "upgrade"));
  assert_false(HAS("upgrade", ""));
  assert_true(HAS("websocket", "websocket"));
  assert_false(HAS("websocket/13x", "websocket"));
#undef HAS
  /* Length-bounded: must not look past list_len. */
  assert_false(agentws__http_list_has_token("upgrade", 6, "upgrade"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_get),
      cmocka_unit_test(test_http10_and_no_headers),
      cmocka_unit_test(test_ows_stripping),
      cmocka_unit_test(test_partial_every_offset),
      cmocka_unit_test(test_partial_keeps_capacity),
      cmocka_unit_test(test_pipelined),
      cmocka_unit_test(test_leading_crlf),
      cmocka_unit_test(test_bare_lf_and_cr),
      cmocka_unit_test(test_obs_fold),
      cmocka_unit_test(test_ctl_in_value),
      cmocka_unit_test(test_bad_request_line),
      cmocka_unit_test(test_bad_header_name),
      cmocka_unit_test(test_too_many_headers),
      cmocka_unit_test(test_huge_value),
      cmocka_unit_test(test_find_header_and_ieq),
      cmocka_unit_test(test_list_has_token),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
