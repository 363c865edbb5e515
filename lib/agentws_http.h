/*
 * HTTP/1.1 request-head parser: strict, bounded, zero-copy.
 *
 * Why our own: no maintained packaged parser exists on Debian 12 (DESIGN §11).
 * It allocates nothing and copies nothing: every field points into the caller's
 * buffer, which must outlive the parsed request.
 */
#ifndef AGENTWS_HTTP_H
#define AGENTWS_HTTP_H

#include <stddef.h>

/* One header line; name and value point into the parsed buffer. */
typedef struct agentws__http_header {
  const char *name;  /* header field name, not NUL-terminated */
  size_t name_len;   /* bytes in name (>= 1) */
  const char *value; /* value with leading/trailing OWS stripped */
  size_t value_len;  /* bytes in value (may be 0) */
} agentws__http_header;

/* A parsed request head. */
typedef struct agentws__http_request {
  const char *method; /* request method token, e.g. "GET" */
  size_t method_len;
  const char *target; /* request-target as sent, e.g. "/ws?user=a" */
  size_t target_len;
  int minor_version;  /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
  agentws__http_header *headers; /* caller-provided array */
  size_t num_headers;            /* in: capacity of headers; out: count */
} agentws__http_request;

/* Return values of agentws__http_parse_request() besides a byte count. */
#define AGENTWS__HTTP_PARTIAL (-2)  /* head incomplete: read more, call again */
#define AGENTWS__HTTP_INVALID (-1)  /* malformed head: answer 400 */
#define AGENTWS__HTTP_TOO_MANY (-3) /* more header lines than capacity: 431 */

/*
 * Parses the request head at the start of |buf|. On success returns the number
 * of bytes the head occupies (through the empty line), so bytes pipelined after
 * it start at buf + return value. Stateless: after PARTIAL, call again with the
 * whole (grown) buffer. |req->num_headers| is the capacity of |req->headers| on
 * input and the count on output. Bounding the head size is the caller's job.
 */
int agentws__http_parse_request(const char *buf, size_t len,
                                agentws__http_request *req);

/* Case-insensitive lookup of the first header named |name|; NULL if absent. */
const agentws__http_header *
agentws__http_find_header(const agentws__http_request *req, const char *name);

/*
 * Returns 1 if the comma-separated token list |list| (an HTTP header value,
 * e.g. "keep-alive, Upgrade") contains |token|, compared case-insensitively.
 */
int agentws__http_list_has_token(const char *list, size_t list_len,
                                 const char *token);

/* Case-insensitive comparison of a (ptr,len) string with a C string. */
int agentws__http_ieq(const char *s, size_t len, const char *cstr);

#endif /* AGENTWS_HTTP_H */
