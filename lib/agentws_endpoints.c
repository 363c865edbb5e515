/*
 * HTTP on the listening port besides the WebSocket path: /metrics,
 * /healthz and /readyz (optionally behind a bearer token), then the host's
 * own pages through on_http. The transport routes here; the bodies are
 * written by agentws_metrics.c.
 */
#include <stdio.h>
#include <string.h>

#include "agentws_manager.h"
#include "agentws_metrics.h"

/* Path of the request-target without its query string. */
static int path_is(const agentws__http_request *req, const char *path) {
  const char *q = memchr(req->target, '?', req->target_len);
  size_t n = q != NULL ? (size_t)(q - req->target) : req->target_len;
  return n == strlen(path) && memcmp(req->target, path, n) == 0;
}

static int is_get(const agentws__http_request *req, int *head_only) {
  *head_only = agentws__http_ieq(req->method, req->method_len, "HEAD");
  return *head_only || agentws__http_ieq(req->method, req->method_len, "GET");
}

/* Constant-time comparison of "Bearer <token>" with the configured one. */
static int token_ok(const agentws_manager *m,
                    const agentws__http_request *req) {
  const char *want = m->cfg->mon.http_token;
  const agentws__http_header *h;
  size_t n, i;
  unsigned diff = 0;
  if (want == NULL)
    return 1;
  h = agentws__http_find_header(req, "Authorization");
  if (h == NULL || h->value_len < 7 ||
      !agentws__http_ieq(h->value, 7, "Bearer "))
    return 0;
  n = strlen(want);
  if (h->value_len - 7 != n)
    return 0;
  for (i = 0; i < n; i++)
    diff |= (unsigned)(h->value[7 + i] ^ want[i]);
  return diff == 0;
}

static int endpoint(agentws_manager *m, agentws__conn *c,
                    const agentws__http_request *req, int which) {
  agentws__buf body = {NULL, 0, 0};
  int head_only, status = 200, rv;
  if (!is_get(req, &head_only)) {
    agentws__upgrade_refuse(c, 405, "only GET is allowed here");
    return 1;
  }
  if (!token_ok(m, req)) {
    agentws__upgrade_refuse_with(
        c, 401, "WWW-Authenticate: Bearer realm=\"agentws\"\r\n",
        "unauthorized");
    agentws__log(m, AGENTWS_LOG_INFO,
                 "connection %llu: endpoint request without a valid token",
                 (unsigned long long)c->id);
    return 1;
  }
  agentws__monitor_sample(&m->mon);
  if (which == 0)
    rv = agentws__metrics_write(m, &body);
  else if (which == 1)
    rv = agentws__healthz_write(m, &body, &status);
  else
    rv = agentws__readyz_write(m, &body, &status);
  if (rv != 0) {
    agentws__buf_free(&body, m->mem);
    agentws__upgrade_refuse(c, 500, "out of memory");
    return 1;
  }
  (void)agentws__upgrade_respond(
      c, status,
      which == 0 ? "text/plain; version=0.0.4; charset=utf-8"
                 : "application/json",
      NULL, body.data, body.len, head_only);
  agentws__buf_free(&body, m->mem);
  return 1;
}

/* The request on_http answers; set only during the hook. */
typedef struct host_answer {
  agentws__conn *c;
  int head_only;
  int answered;
} host_answer;

static int host_page(agentws_manager *m, agentws__conn *c,
                     const agentws__http_request *req) {
  agentws_request *r;
  host_answer ha;
  char remote[64];
  int head_only, rv;
  if (m->cbs.on_http == NULL || !is_get(req, &head_only))
    return 0;
  agentws__peer_name(c, remote, sizeof(remote));
  r = agentws__request_new(m->mem, req, remote);
  if (r == NULL) {
    agentws__upgrade_refuse(c, 500, "out of memory");
    return 1;
  }
  ha.c = c;
  ha.head_only = head_only;
  ha.answered = 0;
  m->http_answer = &ha;
  rv = m->cbs.on_http(m, c->id, r, m->user_data);
  m->http_answer = NULL;
  agentws__request_free(m, r);
  if (ha.answered)
    return 1;
  if (rv == 0)
    agentws__log(m, AGENTWS_LOG_WARN,
                 "on_http returned 0 without answering: 404");
  return c->state == AGENTWS__CONN_HTTP ? 0 : 1;
}

int agentws_http_respond(agentws_manager *m, uint64_t conn_id, int status,
                         const char *content_type, const uint8_t *body,
                         size_t len) {
  host_answer *ha;
  size_t i;
  if (m == NULL || (body == NULL && len > 0))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  ha = m->http_answer;
  if (ha == NULL || ha->c->id != conn_id || ha->answered)
    return AGENTWS_ERR_NOT_FOUND;
  if (status < 200 || status > 599)
    return AGENTWS_ERR_OUT_OF_RANGE;
  if (content_type == NULL)
    content_type = "application/octet-stream";
  if (strlen(content_type) > 200)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  for (i = 0; content_type[i] != '\0'; i++)
    if ((unsigned char)content_type[i] < 0x20 ||
        (unsigned char)content_type[i] == 0x7f)
      return AGENTWS_ERR_INVALID_ARGUMENT;
  ha->answered = 1;
  return agentws__upgrade_respond(ha->c, status, content_type, NULL, body,
                                  len, ha->head_only);
}

int agentws__endpoints_route(agentws_manager *m, agentws__conn *c,
                             const agentws__http_request *req) {
  const agentws__monitor_cfg *mc = &m->cfg->mon;
  if (mc->metrics && path_is(req, "/metrics"))
    return endpoint(m, c, req, 0);
  if (m->cfg->healthz && path_is(req, "/healthz"))
    return endpoint(m, c, req, 1);
  if (mc->readyz && path_is(req, "/readyz"))
    return endpoint(m, c, req, 2);
  return host_page(m, c, req);
}
