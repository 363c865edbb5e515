/*
 * libFuzzer target: HTTP head parser, handshake check and response writers.
 *
 * Besides "no crash", it asserts the parser's contract, because a parser that
 * merely survives can still lie: success points only inside the input, every
 * field obeys the grammar, a strict prefix of a valid head is PARTIAL, and
 * the writers never exceed their capacity.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentws_handshake.h"
#include "agentws_http.h"

#define MAX_HDRS 24

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      abort();                                                                 \
  } while (0)

static int in_buf(const uint8_t *buf, size_t len, const char *p, size_t n) {
  return (const uint8_t *)p >= buf && n <= len &&
         (size_t)((const uint8_t *)p - buf) <= len - n;
}

static int tchar_span(const char *s, size_t n) {
  size_t k;
  if (n == 0)
    return 0;
  for (k = 0; k < n; k++) {
    unsigned char c = (unsigned char)s[k];
    if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c) != NULL)
      return 0;
  }
  return 1;
}

static void check_value(const char *v, size_t n) {
  size_t k;
  if (n > 0) {
    CHECK(v[0] != ' ' && v[0] != '\t');
    CHECK(v[n - 1] != ' ' && v[n - 1] != '\t');
  }
  for (k = 0; k < n; k++) {
    unsigned char c = (unsigned char)v[k];
    CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
  }
}

/* Writes into a heap block of exactly |cap| bytes so ASan sees overruns. */
static void check_writers(const agentws__hs_result *res, const char *proto) {
  size_t caps[] = {0, 1, 64, 128, 160, 512};
  size_t k;

  for (k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
    char *buf = malloc(caps[k] ? caps[k] : 1);
    int n;

    CHECK(buf != NULL);
    if (res->status == 101) {
      n = agentws__handshake_write_101(buf, caps[k], res->key, res->key_len,
                                       proto);
      CHECK(n == -1 || (n > 0 && (size_t)n < caps[k]));
    } else {
      n = agentws__http_write_error(buf, caps[k], res->status, res->reason);
      CHECK(n == -1 || (n > 0 && (size_t)n < caps[k]));
      n = agentws__http_write_ok(buf, caps[k], "text/plain", res->reason,
                                 strlen(res->reason));
      CHECK(n == -1 || (n > 0 && (size_t)n < caps[k]));
    }
    free(buf);
  }
}

/* The writers on arbitrary statuses and bodies, whatever the parse gave. */
static void fuzz_writers(const uint8_t *data, size_t size) {
  static const int statuses[] = {101, 200, 400, 401, 403, 404, 405, 408, 413,
                                 426, 429, 431, 500, 503, 505, 99,  1000};
  size_t blen = size < 300 ? size : 300;
  char *body = malloc(blen + 1);
  char *out;
  size_t cap;
  int status;
  int n;

  if (size == 0 || body == NULL) {
    free(body);
    return;
  }
  memcpy(body, data, blen);
  body[blen] = '\0';
  status = data[size - 1] < 128
               ? statuses[data[size - 1] % (sizeof(statuses) / sizeof(int))]
               : 100 + (int)data[size - 1] * 3;
  cap = (size_t)data[0] * 3;
  out = malloc(cap ? cap : 1);
  CHECK(out != NULL);
  n = agentws__http_write_error(out, cap, status, body);
  CHECK(n == -1 || (size_t)n < cap);
  CHECK(n == -1 || strlen(out) == (size_t)n);
  n = agentws__http_write_ok(out, cap, body, body, blen);
  CHECK(n == -1 || (size_t)n < cap);
  (void)agentws__http_reason_phrase(status);
  free(out);
  free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const origins[] = {"https://app.example.com"};
  static const char *const protos[] = {"agentws.v1", "ag-ui", "bearer.x"};
  agentws__hs_policy pol = {origins, 1, protos, 3};
  agentws__http_header hdrs[MAX_HDRS];
  agentws__http_request req;
  agentws__hs_result res;
  const char *buf = (const char *)data;
  size_t k;
  int rc;

  fuzz_writers(data, size);

  memset(&req, 0, sizeof(req));
  req.headers = hdrs;
  req.num_headers = MAX_HDRS;
  rc = agentws__http_parse_request(buf, size, &req);
  CHECK(rc == AGENTWS__HTTP_PARTIAL || rc == AGENTWS__HTTP_INVALID ||
        rc == AGENTWS__HTTP_TOO_MANY || rc > 0);
  if (rc <= 0) {
    CHECK(req.num_headers == MAX_HDRS); /* capacity kept for the re-parse */
    return 0;
  }

  CHECK((size_t)rc <= size);
  CHECK(rc >= 4 && memcmp(buf + rc - 4, "\r\n\r\n", 4) == 0);
  CHECK(req.num_headers <= MAX_HDRS);
  CHECK(req.minor_version == 0 || req.minor_version == 1);
  CHECK(in_buf(data, (size_t)rc, req.method, req.method_len));
  CHECK(tchar_span(req.method, req.method_len));
  CHECK(in_buf(data, (size_t)rc, req.target, req.target_len));
  CHECK(req.target_len > 0);
  for (k = 0; k < req.num_headers; k++) {
    const agentws__http_header *h = &hdrs[k];
    CHECK(in_buf(data, (size_t)rc, h->name, h->name_len));
    CHECK(tchar_span(h->name, h->name_len));
    CHECK(in_buf(data, (size_t)rc, h->value, h->value_len));
    check_value(h->value, h->value_len);
    (void)agentws__http_list_has_token(h->value, h->value_len, "upgrade");
  }
  {
    const agentws__http_header *h = agentws__http_find_header(&req, "host");
    CHECK(h == NULL || agentws__http_ieq(h->name, h->name_len, "HOST"));
  }

  /* Stateless re-parse: any strict prefix of a valid head is PARTIAL, the
   * exact capacity suffices and one less is TOO_MANY. */
  {
    size_t cuts[] = {0, (size_t)rc / 2, (size_t)rc - 1};
    agentws__http_header h2[MAX_HDRS];
    agentws__http_request r2;

    for (k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
      memset(&r2, 0, sizeof(r2));
      r2.headers = h2;
      r2.num_headers = MAX_HDRS;
      CHECK(agentws__http_parse_request(buf, cuts[k], &r2) ==
            AGENTWS__HTTP_PARTIAL);
    }
    r2.num_headers = req.num_headers;
    CHECK(agentws__http_parse_request(buf, size, &r2) == rc);
    CHECK(r2.num_headers == req.num_headers);
    if (req.num_headers > 0) {
      r2.num_headers = req.num_headers - 1;
      CHECK(agentws__http_parse_request(buf, size, &r2) ==
            AGENTWS__HTTP_TOO_MANY);
    }
  }

  agentws__handshake_check(&req, &pol, &res);
  CHECK(res.reason != NULL);
  CHECK(res.subprotocol >= -1 && res.subprotocol < 3);
  if (res.status == 101) {
    char accept[29];
    CHECK(res.key_len == 24 && in_buf(data, (size_t)rc, res.key, res.key_len));
    CHECK(res.subprotocol != 2); /* bearer.* is never selected */
    agentws__handshake_accept_key(res.key, res.key_len, accept);
    CHECK(strlen(accept) == 28);
  }
  check_writers(&res, res.subprotocol >= 0 ? protos[res.subprotocol] : NULL);
  return 0;
}
