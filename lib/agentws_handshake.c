/*
 * RFC 6455 §4.2 server handshake and the small fixed HTTP responses.
 *
 * SHA-1 and base64 come from OpenSSL's libcrypto (DESIGN §11: use packaged
 * code, do not hand-write what it does). Every writer formats with snprintf
 * into the caller's buffer and refuses with -1 rather than truncate: a cut-off
 * response head would leave the peer waiting, which DESIGN §6 forbids.
 */
#include "agentws_handshake.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

/* RFC 6455 §1.3: the GUID appended to the key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* A valid key is 24 chars; the slack only lets odd lengths be hashed too. */
#define KEY_MAX 64

/* RFC 6455 §4.1: 16 random bytes, base64-encoded, is 22 chars plus "==". */
#define KEY_LEN 24

static int is_b64_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/*
 * Checks the alphabet and padding ourselves because EVP_DecodeBlock skips
 * surrounding whitespace and reports decoded sizes in multiples of 3, so on
 * its own it cannot say "exactly 16 bytes".
 */
static int key_is_valid(const char *key, size_t len) {
  unsigned char raw[18];
  size_t k;

  if (len != KEY_LEN || key[22] != '=' || key[23] != '=')
    return 0;
  for (k = 0; k < 22; k++)
    if (!is_b64_char((unsigned char)key[k]))
      return 0;
  return EVP_DecodeBlock(raw, (const unsigned char *)key, KEY_LEN) ==
         (int)sizeof(raw);
}

/* Counts headers named |name| and returns the first through |*first|. */
static size_t count_headers(const agentws__http_request *req, const char *name,
                            const agentws__http_header **first) {
  size_t n = 0;
  size_t k;

  *first = NULL;
  for (k = 0; k < req->num_headers; k++) {
    const agentws__http_header *h = &req->headers[k];
    if (!agentws__http_ieq(h->name, h->name_len, name))
      continue;
    if (n++ == 0)
      *first = h;
  }
  return n;
}

/* A list-valued field may be split over several lines (RFC 9110 §5.3). */
static int any_header_has_token(const agentws__http_request *req,
                                const char *name, const char *token) {
  size_t k;

  for (k = 0; k < req->num_headers; k++) {
    const agentws__http_header *h = &req->headers[k];
    if (agentws__http_ieq(h->name, h->name_len, name) &&
        agentws__http_list_has_token(h->value, h->value_len, token))
      return 1;
  }
  return 0;
}

/* Every Origin line must be allowed, so a second one cannot sneak past. */
static int origin_allowed(const agentws__http_request *req,
                          const agentws__hs_policy *pol) {
  size_t k;
  size_t j;

  if (pol == NULL || pol->origins == NULL || pol->num_origins == 0)
    return 1;
  for (k = 0; k < req->num_headers; k++) {
    const agentws__http_header *h = &req->headers[k];
    int ok = 0;

    if (!agentws__http_ieq(h->name, h->name_len, "Origin"))
      continue;
    /* Scheme and host are case-insensitive (RFC 6454 §4). */
    for (j = 0; j < pol->num_origins && !ok; j++)
      ok = pol->origins[j] != NULL &&
           agentws__http_ieq(h->value, h->value_len, pol->origins[j]);
    if (!ok)
      return 0;
  }
  return 1;
}

/* Policy index of an offered entry; subprotocol names are case-sensitive. */
static int supported_index(const agentws__hs_policy *pol, const char *s,
                           size_t len) {
  size_t j;

  for (j = 0; j < pol->num_subprotocols && j < (size_t)INT_MAX; j++) {
    const char *name = pol->subprotocols[j];
    if (name != NULL && strlen(name) == len && memcmp(name, s, len) == 0)
      return (int)j;
  }
  return -1;
}

/* "bearer.<token>" entries carry credentials and must never be echoed. */
static int is_bearer_entry(const char *s, size_t len) {
  return len >= 7 && agentws__http_ieq(s, 7, "bearer.");
}

static int select_subprotocol(const agentws__http_request *req,
                              const agentws__hs_policy *pol) {
  size_t k;

  if (pol == NULL || pol->subprotocols == NULL || pol->num_subprotocols == 0)
    return -1;
  for (k = 0; k < req->num_headers; k++) {
    const agentws__http_header *h = &req->headers[k];
    size_t i = 0;

    if (!agentws__http_ieq(h->name, h->name_len, "Sec-WebSocket-Protocol"))
      continue;
    while (i < h->value_len) {
      size_t start;
      size_t end;
      int idx;

      while (i < h->value_len &&
             (h->value[i] == ' ' || h->value[i] == '\t' || h->value[i] == ','))
        i++;
      start = i;
      while (i < h->value_len && h->value[i] != ',')
        i++;
      end = i;
      while (end > start &&
             (h->value[end - 1] == ' ' || h->value[end - 1] == '\t'))
        end--;
      if (end == start || is_bearer_entry(h->value + start, end - start))
        continue;
      idx = supported_index(pol, h->value + start, end - start);
      if (idx >= 0)
        return idx;
    }
  }
  return -1;
}

static void refuse(agentws__hs_result *res, int status, const char *reason) {
  res->status = status;
  res->reason = reason;
}

void agentws__handshake_check(const agentws__http_request *req,
                              const agentws__hs_policy *pol,
                              agentws__hs_result *res) {
  const agentws__http_header *h;
  const agentws__http_header *key;

  res->status = 0;
  res->reason = "";
  res->key = NULL;
  res->key_len = 0;
  res->subprotocol = -1;

  /* Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET. */
  if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0) {
    refuse(res, 405, "WebSocket upgrade requires GET");
    return;
  }
  if (req->minor_version != 1) {
    refuse(res, 505, "WebSocket upgrade requires HTTP/1.1");
    return;
  }
  /* RFC 9112 §3.2: a missing or repeated Host is a 400. */
  if (count_headers(req, "Host", &h) != 1) {
    refuse(res, 400, "exactly one Host header is required");
    return;
  }
  if (!any_header_has_token(req, "Upgrade", "websocket")) {
    refuse(res, 426, "Upgrade: websocket is required");
    return;
  }
  if (!any_header_has_token(req, "Connection", "upgrade")) {
    refuse(res, 400, "Connection: Upgrade is required");
    return;
  }
  if (count_headers(req, "Sec-WebSocket-Version", &h) != 1 ||
      h->value_len != 2 || memcmp(h->value, "13", 2) != 0) {
    refuse(res, 426, "Sec-WebSocket-Version must be 13");
    return;
  }
  if (count_headers(req, "Sec-WebSocket-Key", &key) != 1 ||
      !key_is_valid(key->value, key->value_len)) {
    refuse(res, 400, "Sec-WebSocket-Key is missing or invalid");
    return;
  }
  if (!origin_allowed(req, pol)) {
    refuse(res, 403, "Origin not allowed");
    return;
  }

  res->status = 101;
  res->key = key->value;
  res->key_len = key->value_len;
  res->subprotocol = select_subprotocol(req, pol);
}

/*
 * On a libcrypto failure (only possible under memory exhaustion) or an
 * absurdly long key, |out| becomes "" so the 101 writer can refuse.
 */
void agentws__handshake_accept_key(const char *key, size_t key_len,
                                   char out[29]) {
  unsigned char msg[KEY_MAX + sizeof(ws_guid) - 1];
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;

  out[0] = '\0';
  if (key_len > KEY_MAX)
    return;
  memcpy(msg, key, key_len);
  memcpy(msg + key_len, ws_guid, sizeof(ws_guid) - 1);
  if (EVP_Digest(msg, key_len + sizeof(ws_guid) - 1, md, &md_len, EVP_sha1(),
                 NULL) != 1 ||
      md_len != 20)
    return;
  /* 20 bytes encode to exactly 28 chars plus the NUL EVP_EncodeBlock adds. */
  EVP_EncodeBlock((unsigned char *)out, md, (int)md_len);
}

/* Turns an snprintf result into the writers' contract: length or -1. */
static int fitted(int n, size_t cap) {
  if (n < 0 || (size_t)n >= cap)
    return -1;
  return n;
}

/* Config strings go into header lines; CR/LF there would inject headers. */
static int is_header_safe(const char *s) {
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return 0;
  }
  return 1;
}

int agentws__handshake_write_101(char *buf, size_t cap, const char *key,
                                 size_t key_len, const char *subprotocol) {
  char accept[29];
  int n;

  if (subprotocol != NULL &&
      (subprotocol[0] == '\0' || !is_header_safe(subprotocol)))
    return -1;
  agentws__handshake_accept_key(key, key_len, accept);
  if (accept[0] == '\0')
    return -1;
  n = snprintf(buf, cap,
               "HTTP/1.1 101 Switching Protocols\r\n"
               "Upgrade: websocket\r\n"
               "Connection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\n"
               "%s%s%s"
               "\r\n",
               accept, subprotocol ? "Sec-WebSocket-Protocol: " : "",
               subprotocol ? subprotocol : "", subprotocol ? "\r\n" : "");
  return fitted(n, cap);
}

/* Headers a refusal must carry so the client knows what to do next. */
static const char *status_extra_headers(int status) {
  switch (status) {
  case 401:
    return "WWW-Authenticate: Bearer realm=\"agentws\"\r\n";
  case 405:
    return "Allow: GET\r\n";
  case 426:
    return "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
  case 503:
    return "Retry-After: 1\r\n";
  default:
    return "";
  }
}

int agentws__http_write_error(char *buf, size_t cap, int status,
                              const char *body) {
  return agentws__http_write_error_with(buf, cap, status, NULL, body);
}

int agentws__http_write_error_with(char *buf, size_t cap, int status,
                                   const char *headers, const char *body) {
  int n;

  if (status < 100 || status > 999)
    return -1;
  if (headers == NULL)
    headers = status_extra_headers(status);
  if (body == NULL)
    body = "";
  n = snprintf(buf, cap,
               "HTTP/1.1 %d %s\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n"
               "Content-Length: %zu\r\n"
               "Connection: close\r\n"
               "%s"
               "\r\n"
               "%s\n",
               status, agentws__http_reason_phrase(status), strlen(body) + 1,
               headers, body);
  return fitted(n, cap);
}

int agentws__http_write_ok(char *buf, size_t cap, const char *content_type,
                           const char *body, size_t body_len) {
  int n;

  if (content_type == NULL || !is_header_safe(content_type) ||
      (body == NULL && body_len != 0))
    return -1;
  n = snprintf(buf, cap,
               "HTTP/1.1 200 OK\r\n"
               "Content-Type: %s\r\n"
               "Content-Length: %zu\r\n"
               "Cache-Control: no-store\r\n"
               "Connection: close\r\n"
               "\r\n",
               content_type, body_len);
  if (fitted(n, cap) < 0)
    return -1;
  /* The body may hold NULs, so it is copied rather than formatted; the
   * "- 1" keeps room for the terminating NUL the other writers also add. */
  if (body_len > cap - (size_t)n - 1 || body_len > (size_t)INT_MAX - (size_t)n)
    return -1;
  if (body_len > 0)
    memcpy(buf + n, body, body_len);
  buf[(size_t)n + body_len] = '\0';
  return n + (int)body_len;
}

const char *agentws__http_reason_phrase(int status) {
  /* clang-format off */
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
  /* clang-format on */
}
