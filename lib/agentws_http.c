/*
 * HTTP/1.1 request-head parser (RFC 9112 §2-§5), strict and zero-copy.
 *
 * Strict on purpose: every byte the grammar does not allow is rejected rather
 * than tolerated, because anything lenient here is a request-smuggling or
 * header-injection foothold for whatever sits in front of us. The parser keeps
 * no state between calls; after PARTIAL the caller re-parses the grown buffer.
 * A strict prefix of a valid head always yields PARTIAL, never INVALID.
 */
#include "agentws_http.h"

#include <limits.h>
#include <string.h>

/* tchar per RFC 9110 §5.6.2; written out so it cannot depend on the locale. */
static int is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
      (c >= 'A' && c <= 'Z'))
    return 1;
  /* clang-format off */
  switch (c) {
  case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
  case '+': case '-': case '.': case '^': case '_': case '`': case '|':
  case '~':
    return 1;
  default:
    return 0;
  }
  /* clang-format on */
}

/* VCHAR: the request-target may hold nothing else (no obs-text either). */
static int is_vchar(unsigned char c) { return c > 0x20 && c < 0x7f; }

/* field-value bytes: HTAB, SP, VCHAR, obs-text; every other CTL is refused. */
static int is_field_byte(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

static unsigned char ascii_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/*
 * Consumes the CRLF at |*pos|. Returns 0 on success, else PARTIAL or INVALID;
 * a lone CR or LF is INVALID since lenient line endings enable smuggling.
 */
static int expect_crlf(const unsigned char *p, size_t len, size_t *pos) {
  size_t i = *pos;

  if (i >= len)
    return AGENTWS__HTTP_PARTIAL;
  if (p[i] != '\r')
    return AGENTWS__HTTP_INVALID;
  if (i + 1 >= len)
    return AGENTWS__HTTP_PARTIAL;
  if (p[i + 1] != '\n')
    return AGENTWS__HTTP_INVALID;
  *pos = i + 2;
  return 0;
}

/* request-line = method SP request-target SP HTTP-version CRLF */
static int parse_request_line(const unsigned char *p, size_t len, size_t *pos,
                              agentws__http_request *out) {
  static const char prefix[] = "HTTP/1.";
  size_t i = *pos;
  size_t start;
  size_t k;
  int rc;

  start = i;
  while (i < len && is_tchar(p[i]))
    i++;
  if (i >= len)
    return AGENTWS__HTTP_PARTIAL;
  if (i == start || p[i] != ' ')
    return AGENTWS__HTTP_INVALID;
  out->method = (const char *)p + start;
  out->method_len = i - start;
  i++;

  start = i;
  while (i < len && is_vchar(p[i]))
    i++;
  if (i >= len)
    return AGENTWS__HTTP_PARTIAL;
  if (i == start || p[i] != ' ')
    return AGENTWS__HTTP_INVALID;
  out->target = (const char *)p + start;
  out->target_len = i - start;
  i++;

  for (k = 0; k < sizeof(prefix) - 1; k++, i++) {
    if (i >= len)
      return AGENTWS__HTTP_PARTIAL;
    if (p[i] != (unsigned char)prefix[k])
      return AGENTWS__HTTP_INVALID;
  }
  if (i >= len)
    return AGENTWS__HTTP_PARTIAL;
  if (p[i] != '0' && p[i] != '1')
    return AGENTWS__HTTP_INVALID;
  out->minor_version = p[i] - '0';
  i++;

  rc = expect_crlf(p, len, &i);
  if (rc != 0)
    return rc;
  *pos = i;
  return 0;
}

/* field-line = field-name ":" OWS field-value OWS CRLF */
static int parse_header_line(const unsigned char *p, size_t len, size_t *pos,
                             agentws__http_header *out) {
  size_t i = *pos;
  size_t start;
  size_t end;
  int rc;

  start = i;
  while (i < len && is_tchar(p[i]))
    i++;
  if (i >= len)
    return AGENTWS__HTTP_PARTIAL;
  /* Also catches "Name :" (RFC 9112 §5.1 demands a 400 for it). */
  if (i == start || p[i] != ':')
    return AGENTWS__HTTP_INVALID;
  out->name = (const char *)p + start;
  out->name_len = i - start;
  i++;

  while (i < len && is_ows(p[i]))
    i++;
  start = i;
  while (i < len && is_field_byte(p[i]))
    i++;
  if (i >= len)
    return AGENTWS__HTTP_PARTIAL;
  end = i;
  while (end > start && is_ows(p[end - 1]))
    end--;
  out->value = (const char *)p + start;
  out->value_len = end - start;

  rc = expect_crlf(p, len, &i);
  if (rc != 0)
    return rc;
  *pos = i;
  return 0;
}

int agentws__http_parse_request(const char *buf, size_t len,
                                agentws__http_request *req) {
  const unsigned char *p = (const unsigned char *)buf;
  agentws__http_request line;
  agentws__http_header h;
  size_t cap = req->num_headers;
  size_t n = 0;
  size_t i = 0;
  int rc;

  /* RFC 9112 §2.2: a server SHOULD ignore empty lines before the request. */
  while (i < len && p[i] == '\r') {
    rc = expect_crlf(p, len, &i);
    if (rc != 0)
      return rc;
  }

  memset(&line, 0, sizeof(line));
  rc = parse_request_line(p, len, &i, &line);
  if (rc != 0)
    return rc;

  for (;;) {
    if (i >= len)
      return AGENTWS__HTTP_PARTIAL;
    if (p[i] == '\r') {
      rc = expect_crlf(p, len, &i);
      if (rc != 0)
        return rc;
      break;
    }
    /* obs-fold (RFC 9112 §5.2) and whitespace before the first field. */
    if (is_ows(p[i]))
      return AGENTWS__HTTP_INVALID;
    rc = parse_header_line(p, len, &i, &h);
    if (rc != 0)
      return rc;
    /* Only a well-formed surplus line counts, so the verdict never depends
     * on where the caller's read happened to stop. */
    if (n == cap)
      return AGENTWS__HTTP_TOO_MANY;
    req->headers[n++] = h;
  }

  if (i > (size_t)INT_MAX)
    return AGENTWS__HTTP_INVALID;

  /* Commit only on success so a PARTIAL leaves the capacity in place. */
  req->method = line.method;
  req->method_len = line.method_len;
  req->target = line.target;
  req->target_len = line.target_len;
  req->minor_version = line.minor_version;
  req->num_headers = n;
  return (int)i;
}

int agentws__http_ieq(const char *s, size_t len, const char *cstr) {
  size_t k;

  for (k = 0; k < len; k++) {
    if (cstr[k] == '\0')
      return 0;
    if (ascii_lower((unsigned char)s[k]) != ascii_lower((unsigned char)cstr[k]))
      return 0;
  }
  return cstr[len] == '\0';
}

const agentws__http_header *
agentws__http_find_header(const agentws__http_request *req, const char *name) {
  size_t k;

  for (k = 0; k < req->num_headers; k++) {
    const agentws__http_header *h = &req->headers[k];
    if (agentws__http_ieq(h->name, h->name_len, name))
      return h;
  }
  return NULL;
}

int agentws__http_list_has_token(const char *list, size_t list_len,
                                 const char *token) {
  size_t i = 0;

  if (list == NULL || token == NULL || token[0] == '\0')
    return 0;
  while (i < list_len) {
    size_t start;
    size_t end;

    while (i < list_len && (is_ows((unsigned char)list[i]) || list[i] == ','))
      i++;
    start = i;
    while (i < list_len && list[i] != ',')
      i++;
    end = i;
    while (end > start && is_ows((unsigned char)list[end - 1]))
      end--;
    if (end > start && agentws__http_ieq(list + start, end - start, token))
      return 1;
  }
  return 0;
}
