/*
 * Where a handshake's bearer token is found: the Authorization header, a
 * "bearer.<token>" Sec-WebSocket-Protocol entry (what browsers can send),
 * a query parameter, or a cookie, in the order the host configured.
 */
#include <string.h>

#include "agentws_auth.h"

static int is_ows(char ch) { return ch == ' ' || ch == '\t'; }

/* "Bearer <token>", scheme case-insensitive (RFC 6750 2.1). */
static int from_header(const agentws__http_request *req, const char **tok,
                       size_t *len) {
  size_t i;
  for (i = 0; i < req->num_headers; i++) {
    const agentws__http_header *h = &req->headers[i];
    size_t k = 7;
    if (!agentws__http_ieq(h->name, h->name_len, "Authorization"))
      continue;
    if (h->value_len <= 7 || !agentws__http_ieq(h->value, 6, "Bearer") ||
        !is_ows(h->value[6]))
      return -1;
    while (k < h->value_len && is_ows(h->value[k]))
      k++;
    if (k == h->value_len)
      return -1;
    *tok = h->value + k;
    *len = h->value_len - k;
    return 0;
  }
  return -1;
}

static int from_subprotocol(const agentws__http_request *req,
                            const char **tok, size_t *len) {
  size_t i;
  for (i = 0; i < req->num_headers; i++) {
    const agentws__http_header *h = &req->headers[i];
    size_t p = 0;
    if (!agentws__http_ieq(h->name, h->name_len, "Sec-WebSocket-Protocol"))
      continue;
    while (p < h->value_len) {
      size_t start, end;
      while (p < h->value_len && (is_ows(h->value[p]) || h->value[p] == ','))
        p++;
      start = p;
      while (p < h->value_len && h->value[p] != ',')
        p++;
      end = p;
      while (end > start && is_ows(h->value[end - 1]))
        end--;
      if (end - start > 7 && agentws__http_ieq(h->value + start, 7,
                                               "bearer.")) {
        *tok = h->value + start + 7;
        *len = end - start - 7;
        return 0;
      }
    }
  }
  return -1;
}

/* The raw value of ?name=...: a JWT needs no percent-decoding. */
static int from_query(const agentws__http_request *req, const char *name,
                      const char **tok, size_t *len) {
  const char *q = memchr(req->target, '?', req->target_len);
  const char *end = req->target + req->target_len;
  size_t nlen = strlen(name);
  if (q == NULL)
    return -1;
  for (q++; q < end;) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    const char *stop = amp != NULL ? amp : end;
    if ((size_t)(stop - q) > nlen + 1 && memcmp(q, name, nlen) == 0 &&
        q[nlen] == '=') {
      *tok = q + nlen + 1;
      *len = (size_t)(stop - *tok);
      return 0;
    }
    if (stop == end)
      break;
    q = stop + 1;
  }
  return -1;
}

/* Cookie: a=b; name=token (RFC 6265 5.4), in any Cookie header line. */
static int from_cookie(const agentws__http_request *req, const char *name,
                       const char **tok, size_t *len) {
  size_t i, nlen = strlen(name);
  for (i = 0; i < req->num_headers; i++) {
    const agentws__http_header *h = &req->headers[i];
    const char *p = h->value, *end = h->value + h->value_len;
    if (!agentws__http_ieq(h->name, h->name_len, "Cookie"))
      continue;
    while (p < end) {
      const char *semi = memchr(p, ';', (size_t)(end - p));
      const char *stop = semi != NULL ? semi : end;
      while (p < stop && is_ows(*p))
        p++;
      if ((size_t)(stop - p) > nlen + 1 && memcmp(p, name, nlen) == 0 &&
          p[nlen] == '=') {
        const char *v = p + nlen + 1, *ve = stop;
        while (ve > v && is_ows(ve[-1]))
          ve--;
        if (ve - v >= 2 && *v == '"' && ve[-1] == '"')
          v++, ve--;
        if (ve == v)
          return -1;
        *tok = v;
        *len = (size_t)(ve - v);
        return 0;
      }
      if (stop == end)
        break;
      p = stop + 1;
    }
  }
  return -1;
}

int agentws__token_find(const agentws__auth_cfg *ac,
                        const agentws__http_request *req, const char **tok,
                        size_t *len) {
  size_t i;
  for (i = 0; i < ac->num_sources; i++) {
    int rv = -1;
    switch (ac->sources[i]) {
    case AGENTWS__TOKEN_HEADER:
      rv = from_header(req, tok, len);
      break;
    case AGENTWS__TOKEN_SUBPROTOCOL:
      rv = from_subprotocol(req, tok, len);
      break;
    case AGENTWS__TOKEN_QUERY:
      rv = from_query(req, ac->query_param, tok, len);
      break;
    case AGENTWS__TOKEN_COOKIE:
      rv = from_cookie(req, ac->cookie, tok, len);
      break;
    default:
      break;
    }
    if (rv == 0)
      return 0;
  }
  return -1;
}
