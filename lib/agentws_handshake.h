/*
 * RFC 6455 server handshake: validates an upgrade request, selects the
 * subprotocol, and writes the 101 or the refusal. Touches no socket.
 */
#ifndef AGENTWS_HANDSHAKE_H
#define AGENTWS_HANDSHAKE_H

#include <stddef.h>

#include "agentws_http.h"

/* What the server accepts; all pointers borrowed for the call only. */
typedef struct agentws__hs_policy {
  const char *const *origins;      /* Origin allow-list; NULL/0 = any */
  size_t num_origins;
  const char *const *subprotocols; /* supported, e.g. {"agentws.v1"} */
  size_t num_subprotocols;
} agentws__hs_policy;

/* Outcome of agentws__handshake_check(). Pointers point into the request. */
typedef struct agentws__hs_result {
  int status;          /* 101 when the upgrade may proceed, else HTTP status */
  const char *reason;  /* static text saying why (refusals), "" on 101 */
  const char *key;     /* Sec-WebSocket-Key value (valid when status 101) */
  size_t key_len;
  int subprotocol;     /* index into policy->subprotocols, -1 = none chosen */
} agentws__hs_result;

/*
 * Checks |req| (already routed to the WebSocket path) against RFC 6455 §4.2.1
 * and |pol|. Order and statuses: non-GET 405; not HTTP/1.1 505; no Host 400;
 * no "websocket" token in Upgrade 426; no "upgrade" token in Connection 400;
 * Sec-WebSocket-Version not exactly "13" 426; missing, repeated or malformed
 * Sec-WebSocket-Key (must be base64 of 16 bytes) 400; Origin present and not
 * in a non-empty allow-list 403. Subprotocol: the first client-offered entry
 * (in client order, all Sec-WebSocket-Protocol headers) that |pol| supports;
 * entries starting with "bearer." are never selected (they carry tokens).
 */
void agentws__handshake_check(const agentws__http_request *req,
                              const agentws__hs_policy *pol,
                              agentws__hs_result *res);

/* Writes the 28-char Sec-WebSocket-Accept for |key| plus NUL into |out|. */
void agentws__handshake_accept_key(const char *key, size_t key_len,
                                   char out[29]);

/*
 * Writes the "101 Switching Protocols" head (with Sec-WebSocket-Protocol when
 * |subprotocol| is non-NULL) into |buf|. Returns bytes written, or -1 if |cap|
 * is too small.
 */
int agentws__handshake_write_101(char *buf, size_t cap, const char *key,
                                 size_t key_len, const char *subprotocol);

/*
 * Writes a complete refusal response: status line, Content-Type: text/plain,
 * Content-Length, Connection: close, the headers each status needs (426:
 * Upgrade: websocket and Sec-WebSocket-Version: 13; 405: Allow: GET; 401:
 * WWW-Authenticate: Bearer; 503: Retry-After: 1), then |body| plus "\n".
 * Returns bytes written, or -1 if |cap| is too small.
 */
int agentws__http_write_error(char *buf, size_t cap, int status,
                              const char *body);
/* The same with |headers| ("Name: value\r\n" lines, trusted) instead of
 * the status's usual extra headers (NULL: those). */
int agentws__http_write_error_with(char *buf, size_t cap, int status,
                                   const char *headers, const char *body);

/*
 * Writes a 200 response with the given Content-Type and body (Connection:
 * close, Cache-Control: no-store). Returns bytes written or -1.
 */
int agentws__http_write_ok(char *buf, size_t cap, const char *content_type,
                           const char *body, size_t body_len);

/* The standard reason phrase for |status| ("Unknown" if not known). */
const char *agentws__http_reason_phrase(int status);

#endif /* AGENTWS_HANDSHAKE_H */
