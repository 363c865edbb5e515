/*
 * The HTTP phase of a connection: collect the request head (bounded), route
 * it (WebSocket path, /healthz, 404), run the handshake, answer, and hand
 * bytes pipelined after the head to the WebSocket phase.
 */
#include <stdio.h>
#include <string.h>

#include "agentws_handshake.h"
#include "agentws_transport.h"

#define RESPONSE_MAX 1024

static int refused_stat(int status);

void agentws__upgrade_refuse(agentws__conn *c, int status, const char *body) {
  agentws__upgrade_refuse_with(c, status, NULL, body);
}

void agentws__upgrade_refuse_with(agentws__conn *c, int status,
                                  const char *headers, const char *body) {
  char resp[RESPONSE_MAX];
  int n = agentws__http_write_error_with(resp, sizeof(resp), status, headers,
                                         body);
  agentws__stat_inc(c->t->stats, refused_stat(status));
  agentws__buf_free(&c->head, c->t->mem);
  agentws__upgrade_release(c);
  c->state = AGENTWS__CONN_LINGER;
  agentws__conn_set_timer(c, AGENTWS__TL_CLOSING);
  if (n < 0 || agentws__writer_append(c, resp, (size_t)n, 1) != 0) {
    agentws__conn_kill(c, 0, NULL);
    return;
  }
  c->out_keep = c->out.len;
}

static int refused_stat(int status) {
  static const int codes[] = {400, 401, 403, 404, 405, 408, 426,
                              429, 431, 500, 503, 505};
  size_t i;
  for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
    if (codes[i] == status)
      return AGENTWS_STAT_REFUSED_400 + (int)i;
  return AGENTWS_STAT_REFUSED_OTHER;
}

int agentws__upgrade_respond(agentws__conn *c, int status,
                             const char *content_type, const char *headers,
                             const void *body, size_t len, int head_only) {
  agentws__transport *t = c->t;
  char head[RESPONSE_MAX];
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 %d %s\r\n"
                   "Content-Type: %s\r\n"
                   "Content-Length: %zu\r\n"
                   "Cache-Control: no-store\r\n"
                   "Connection: close\r\n"
                   "%s\r\n",
                   status, agentws__http_reason_phrase(status), content_type,
                   len, headers != NULL ? headers : "");
  if (status >= 400)
    agentws__stat_inc(t->stats, refused_stat(status));
  else
    agentws__stat_inc(t->stats, AGENTWS_STAT_HTTP_REQUESTS);
  agentws__buf_free(&c->head, t->mem);
  agentws__upgrade_release(c);
  c->state = AGENTWS__CONN_LINGER;
  agentws__conn_set_timer(c, AGENTWS__TL_CLOSING);
  if (n < 0 || (size_t)n >= sizeof(head) ||
      agentws__writer_append(c, head, (size_t)n, 1) != 0 ||
      (!head_only && len > 0 && agentws__writer_append(c, body, len, 1) != 0)) {
    agentws__conn_kill(c, 0, NULL);
    return AGENTWS_ERR_NOMEM;
  }
  return 0;
}

/* Path of the request-target without its query string. */
static size_t path_len(const agentws__http_request *req) {
  const char *q = memchr(req->target, '?', req->target_len);
  return q != NULL ? (size_t)(q - req->target) : req->target_len;
}

static int path_is(const agentws__http_request *req, const char *path) {
  size_t n = path_len(req);
  return n == strlen(path) && memcmp(req->target, path, n) == 0;
}

/* A handshake that passed the checks, kept until it is answered. */
typedef struct agentws__pend {
  char key[64];        /* Sec-WebSocket-Key (24 chars) */
  size_t key_len;
  int subprotocol;     /* index into the config's list, -1 none */
  agentws__buf rest;   /* bytes pipelined after the head */
} agentws__pend;

void agentws__upgrade_release(agentws__conn *c) {
  if (c->pend == NULL)
    return;
  agentws__buf_free(&c->pend->rest, c->t->mem);
  agentws__mem_free(c->t->mem, c->pend);
  c->pend = NULL;
}

/* Switches to WebSocket: 101, on_open, then the pipelined bytes. */
void agentws__upgrade_accept(agentws__conn *c) {
  agentws__transport *t = c->t;
  agentws__pend *p = c->pend;
  char resp[RESPONSE_MAX];
  const char *proto;
  agentws__buf rest;
  int n;
  if (p == NULL || c->state != AGENTWS__CONN_HTTP)
    return;
  proto = p->subprotocol >= 0 ? t->cfg->subprotocols[p->subprotocol] : NULL;
  n = agentws__handshake_write_101(resp, sizeof(resp), p->key, p->key_len,
                                   proto);
  if (n < 0 || agentws__writer_append(c, resp, (size_t)n, 1) != 0) {
    agentws__conn_kill(c, 0, NULL);
    return;
  }
  rest = p->rest;
  memset(&p->rest, 0, sizeof(p->rest));
  agentws__upgrade_release(c);
  c->subprotocol = proto != NULL ? proto : "";
  c->state = AGENTWS__CONN_WS;
  c->opened = 1;
  t->num_ws++;
  agentws__stat_inc(t->stats, AGENTWS_STAT_CONNECTIONS_OPENED);
  if (t->stats->hist_on)
    agentws__hist_add(t->stats, AGENTWS_HIST_HANDSHAKE,
                      uv_hrtime() - c->born_ns);
  agentws__conn_set_timer(c, t->cfg->ping_interval_ms > 0
                                 ? AGENTWS__TL_ACTIVE
                                 : AGENTWS__TL_OPEN);
  agentws__conn_touch_msg(c);
  if (t->hooks.on_open != NULL)
    t->hooks.on_open(c, t->hooks.user_data);
  if (rest.len > 0 && c->state == AGENTWS__CONN_WS)
    agentws__ws_feed(c, rest.data, rest.len);
  agentws__buf_free(&rest, t->mem);
}

static void start_upgrade(agentws__conn *c, const agentws__http_request *req,
                          const agentws__hs_result *res, const uint8_t *rest,
                          size_t rest_len) {
  agentws__transport *t = c->t;
  const char *reason = "refused";
  agentws__pend *p = agentws__mem_calloc(t->mem, 1, sizeof(*p));
  int rv;
  if (p == NULL || res->key_len >= sizeof(p->key) ||
      agentws__buf_append(&p->rest, t->mem, rest, rest_len) != 0) {
    if (p != NULL)
      agentws__buf_free(&p->rest, t->mem);
    agentws__mem_free(t->mem, p);
    agentws__upgrade_refuse(c, 500, "out of memory");
    return;
  }
  memcpy(p->key, res->key, res->key_len);
  p->key_len = res->key_len;
  p->subprotocol = res->subprotocol;
  c->pend = p;
  rv = t->hooks.on_request != NULL
           ? t->hooks.on_request(c, req, &reason, t->hooks.user_data)
           : 0;
  if (c->state != AGENTWS__CONN_HTTP)
    return;
  if (rv == 0)
    agentws__upgrade_accept(c);
  else if (rv == AGENTWS__PENDING)
    agentws__conn_set_timer(c, AGENTWS__TL_AUTH);
  else
    agentws__upgrade_refuse(c, rv > 0 ? rv : 500, reason);
}

static void route(agentws__conn *c, const agentws__http_request *req,
                  const uint8_t *rest, size_t rest_len) {
  agentws__transport *t = c->t;
  const agentws_config *cfg = t->cfg;
  agentws__hs_policy pol;
  agentws__hs_result res;
  if (!path_is(req, cfg->ws_path)) {
    if (t->hooks.on_http == NULL ||
        !t->hooks.on_http(c, req, t->hooks.user_data))
      agentws__upgrade_refuse(c, 404, "not found");
    return;
  }
  pol.origins = (const char *const *)cfg->origins;
  pol.num_origins = cfg->num_origins;
  pol.subprotocols = (const char *const *)cfg->subprotocols;
  pol.num_subprotocols = cfg->num_subprotocols;
  agentws__handshake_check(req, &pol, &res);
  if (res.status != 101) {
    agentws__upgrade_refuse(c, res.status, res.reason);
    return;
  }
  if (t->closing) {
    agentws__upgrade_refuse(c, 503, "server shutting down");
    return;
  }
  if (cfg->max_connections > 0 &&
      t->num_ws >= (uint64_t)cfg->max_connections) {
    agentws__upgrade_refuse(c, 503, "too many connections");
    return;
  }
  start_upgrade(c, req, &res, rest, rest_len);
}

void agentws__upgrade_feed(agentws__conn *c, const uint8_t *data,
                           size_t len, int in_head) {
  agentws__transport *t = c->t;
  const agentws__mem *mem = t->mem;
  size_t limit = t->cfg->max_header_bytes;
  agentws__http_request req;
  const uint8_t *p = data;
  size_t plen = len;
  int r;
  size_t scan_from = 0;
  if (!in_head && c->head.len > 0) {
    /* Bounded: at most one read beyond the limit is ever held. */
    scan_from = c->head.len;
    if (agentws__buf_append(&c->head, mem, data, len) != 0) {
      agentws__conn_kill(c, 0, NULL);
      return;
    }
    p = c->head.data;
    plen = c->head.len;
    /* A head trickling in a byte at a time is re-parsed once per line,
     * not once per read. */
    if (plen < limit && memchr(p + scan_from, '\n', plen - scan_from) == NULL)
      return;
  } else if (in_head) {
    p = c->head.data;
    plen = c->head.len;
  }
  memset(&req, 0, sizeof(req));
  req.headers = t->hdrs;
  req.num_headers = (size_t)t->cfg->max_headers;
  r = agentws__http_parse_request((const char *)p, plen, &req);
  if (r == AGENTWS__HTTP_PARTIAL) {
    if (plen >= limit) {
      agentws__upgrade_refuse(c, 431, "request head too large");
      return;
    }
    if (p == data && !in_head &&
        agentws__buf_append(&c->head, mem, data, len) != 0)
      agentws__conn_kill(c, 0, NULL);
    return;
  }
  if (r == AGENTWS__HTTP_TOO_MANY || (r > 0 && (size_t)r > limit)) {
    agentws__upgrade_refuse(c, 431, "request head too large");
    return;
  }
  if (r < 0) {
    agentws__upgrade_refuse(c, 400, "malformed request");
    return;
  }
  /* Routing may free c->head, so the rest is fed from the same memory
   * before that happens: open_ws() runs before the buffer is released. */
  {
    agentws__buf held = c->head;
    memset(&c->head, 0, sizeof(c->head));
    route(c, &req, p + r, plen - (size_t)r);
    agentws__buf_free(&held, mem);
  }
}
