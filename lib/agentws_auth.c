/*
 * Who a connection belongs to, decided before the upgrade: the host's
 * on_authenticate hook (answered now or later), or the explicitly insecure
 * development mode (?user=NAME). Also the request object the hook reads,
 * and resume parameters from the URL. Touches no socket.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentws_emitter.h"
#include "agentws_manager.h"
#include "agentws_utf8.h"

struct agentws_request {
  char *method;   /* NUL-terminated copies */
  char *target;
  char *remote;
  char *user;     /* the verified token's user and claims (owned), or NULL */
  char *claims;
  size_t nheaders;
  char **names;   /* nheaders names, then nheaders values */
  char **values;
};

const char *agentws_request_get_method(const agentws_request *req) {
  return req != NULL ? req->method : NULL;
}

size_t agentws_request_get_header_count(const agentws_request *req) {
  return req != NULL ? req->nheaders : 0;
}

int agentws_request_get_header_at(const agentws_request *req, size_t i,
                                  const char **name, const char **value) {
  if (req == NULL || name == NULL || value == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (i >= req->nheaders)
    return AGENTWS_ERR_OUT_OF_RANGE;
  *name = req->names[i];
  *value = req->values[i];
  return 0;
}

const char *agentws_request_get_target(const agentws_request *req) {
  return req != NULL ? req->target : NULL;
}

const char *agentws_request_get_header(const agentws_request *req,
                                       const char *name) {
  size_t i;
  if (req == NULL || name == NULL)
    return NULL;
  for (i = 0; i < req->nheaders; i++)
    if (agentws__http_ieq(req->names[i], strlen(req->names[i]), name))
      return req->values[i];
  return NULL;
}

const char *agentws_request_get_remote_address(const agentws_request *req) {
  return req != NULL ? req->remote : NULL;
}

const char *agentws_request_get_user(const agentws_request *req) {
  return req != NULL ? req->user : NULL;
}

const char *agentws_request_get_claims(const agentws_request *req) {
  return req != NULL ? req->claims : NULL;
}

void agentws__request_free(agentws_manager *m, agentws_request *r) {
  if (r == NULL)
    return;
  agentws__mem_free(m->mem, r->user);
  agentws__mem_free(m->mem, r->claims);
  agentws__mem_free(m->mem, r);
}

/* One allocation holding the struct, pointer arrays and strings. */
agentws_request *agentws__request_new(const agentws__mem *mem,
                                      const agentws__http_request *hr,
                                      const char *remote) {
  size_t i, size = sizeof(agentws_request) + hr->method_len + 1 +
                   hr->target_len + 1 + strlen(remote) + 1 +
                   2 * hr->num_headers * sizeof(char *);
  agentws_request *r;
  char *p;
  for (i = 0; i < hr->num_headers; i++)
    size += hr->headers[i].name_len + hr->headers[i].value_len + 2;
  r = agentws__mem_malloc(mem, size);
  if (r == NULL)
    return NULL;
  r->user = r->claims = NULL;
  r->nheaders = hr->num_headers;
  r->names = (char **)(void *)(r + 1);
  r->values = r->names + hr->num_headers;
  p = (char *)(r->values + hr->num_headers);
  r->method = p;
  memcpy(p, hr->method, hr->method_len);
  p[hr->method_len] = '\0';
  p += hr->method_len + 1;
  r->target = p;
  memcpy(p, hr->target, hr->target_len);
  p[hr->target_len] = '\0';
  p += hr->target_len + 1;
  r->remote = p;
  strcpy(p, remote);
  p += strlen(remote) + 1;
  for (i = 0; i < hr->num_headers; i++) {
    const agentws__http_header *h = &hr->headers[i];
    r->names[i] = p;
    memcpy(p, h->name, h->name_len);
    p[h->name_len] = '\0';
    p += h->name_len + 1;
    r->values[i] = p;
    memcpy(p, h->value, h->value_len);
    p[h->value_len] = '\0';
    p += h->value_len + 1;
  }
  return r;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/*
 * Finds query parameter |name| in |target| and percent-decodes it into
 * |out| (NUL-terminated). Returns its length, or -1 if absent, malformed,
 * too long, or not valid UTF-8 / containing control characters.
 */
static int query_param(const char *target, size_t tlen, const char *name,
                       char *out, size_t cap) {
  const char *q = memchr(target, '?', tlen), *end = target + tlen;
  size_t nlen = strlen(name);
  if (q == NULL)
    return -1;
  for (q++; q < end;) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    const char *stop = amp != NULL ? amp : end;
    if ((size_t)(stop - q) > nlen && memcmp(q, name, nlen) == 0 &&
        q[nlen] == '=') {
      size_t n = 0;
      const char *v;
      for (v = q + nlen + 1; v < stop; v++) {
        int ch = (unsigned char)*v;
        if (ch == '%') {
          int hi, lo;
          if (stop - v < 3)
            return -1;
          hi = hexval(v[1]);
          lo = hexval(v[2]);
          if (hi < 0 || lo < 0)
            return -1;
          ch = hi * 16 + lo;
          v += 2;
        } else if (ch == '+') {
          ch = ' ';
        }
        if (ch < 0x20 || ch == 0x7f || n + 1 >= cap)
          return -1;
        out[n++] = (char)ch;
      }
      out[n] = '\0';
      return agentws__utf8_valid((const uint8_t *)out, n) ? (int)n : -1;
    }
    if (stop == end)
      break;
    q = stop + 1;
  }
  return -1;
}

/* ?epoch=E&last_seq=N on the URL: resume at the handshake. */
static void parse_resume(agentws__session *s, const agentws__http_request *r) {
  char epoch[40], seq[24], *endp;
  unsigned long long v;
  if (query_param(r->target, r->target_len, "epoch", epoch, sizeof(epoch)) <=
          0 ||
      query_param(r->target, r->target_len, "last_seq", seq, sizeof(seq)) <=
          0)
    return;
  if (seq[0] < '0' || seq[0] > '9')
    return;
  v = strtoull(seq, &endp, 10);
  if (*endp != '\0')
    return;
  s->has_resume = 1;
  s->resume_last = v;
  memcpy(s->resume_epoch, epoch, sizeof(s->resume_epoch));
}


void agentws__peer_name(agentws__conn *c, char *out, size_t cap) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  char ip[48];
  out[0] = '\0';
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
    return;
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    uv_ip6_name(a, ip, sizeof(ip));
    snprintf(out, cap, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
  } else if (ss.ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    uv_ip4_name(a, ip, sizeof(ip));
    snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
  }
}

agentws__session *agentws__session_new(agentws_manager *m, agentws__conn *c) {
  agentws__session *s = agentws__mem_calloc(m->mem, 1, sizeof(*s));
  uint64_t now;
  if (s == NULL)
    return NULL;
  now = uv_now(m->loop);
  s->m = m;
  s->conn = c;
  agentws__list_init(&s->unode);
  agentws__list_init(&s->rooms);
  agentws__heap_node_init(&s->expiry);
  agentws__rate_init(&s->rate, now, 2.0 * m->cfg->client_rate);
  agentws__rate_init(&s->errs, now, 10.0);
  s->connected_at = agentws__wall_ms();
  agentws__peer_name(c, s->remote, sizeof(s->remote));
  c->app = s;
  return s;
}

void agentws__session_free(agentws_manager *m, agentws__session *s) {
  agentws__emitter_detach(&m->emitter, s);
  agentws__auth_unschedule(m, s);
  agentws__request_free(m, s->req);
  agentws__mem_free(m->mem, s->decided_user);
  s->conn->app = NULL;
  agentws__mem_free(m->mem, s);
}

static int user_valid(const char *u, size_t n) {
  size_t i;
  if (n == 0 || n > 255 || !agentws__utf8_valid((const uint8_t *)u, n))
    return 0;
  for (i = 0; i < n; i++)
    if ((unsigned char)u[i] < 0x20 || u[i] == 0x7f)
      return 0;
  return 1;
}

/* Applies an accept decision: registry (per-user limit) then 0 or status. */
static int decide_user(agentws_manager *m, agentws__session *s,
                       const char *user, const char **reason) {
  int rv = agentws__emitter_attach(&m->emitter, s, user);
  if (rv == 0) {
    agentws__stat_inc(&m->stats, AGENTWS_STAT_AUTH_ACCEPTED);
    agentws__auth_schedule(m, s);
  } else if (rv == 429) {
    agentws__stat_inc(&m->stats, AGENTWS_STAT_AUTH_USER_LIMIT);
    *reason = "too many connections for this user";
  } else {
    *reason = "out of memory";
  }
  return rv;
}

#define BEARER "WWW-Authenticate: Bearer realm=\"agentws\""

/* Refuses with the same short body whatever was wrong with the token;
 * the reason is only counted. */
static int refuse_token(agentws_manager *m, agentws__conn *c, int stat,
                        int status) {
  agentws__stat_inc(&m->stats, stat);
  if (status == 403)
    agentws__upgrade_refuse_with(
        c, 403, BEARER ", error=\"insufficient_scope\"\r\n", "forbidden");
  else if (stat == AGENTWS_STAT_AUTH_MISSING_TOKEN)
    agentws__upgrade_refuse_with(c, 401, BEARER "\r\n", "unauthorized");
  else
    agentws__upgrade_refuse_with(
        c, 401, BEARER ", error=\"invalid_token\"\r\n", "unauthorized");
  return status;
}

/* Runs on_authenticate; |res| (may be NULL) is the verified token. */
static int run_hook(agentws_manager *m, agentws__conn *c,
                    agentws__session *s, const agentws__http_request *req,
                    agentws__jwt_result *res, const char **reason) {
  int rv;
  s->req = agentws__request_new(m->mem, req, s->remote);
  if (s->req == NULL) {
    *reason = "out of memory";
    return 500;
  }
  if (res != NULL) { /* ownership moves to the request */
    s->req->user = res->user;
    s->req->claims = res->claims;
    res->user = res->claims = NULL;
  }
  s->in_hook = 1;
  rv = m->cbs.on_authenticate(m, c->id, s->req, m->user_data);
  s->in_hook = 0;
  if (c->state != AGENTWS__CONN_HTTP)
    return 500; /* closed inside the hook */
  if (rv != 0) {
    agentws__stat_inc(&m->stats, AGENTWS_STAT_AUTH_HOOK_REFUSED);
    *reason = "authentication hook failed";
    return 500;
  }
  if (!s->decided)
    return AGENTWS__PENDING;
  agentws__request_free(m, s->req);
  s->req = NULL;
  if (s->decision != 0) {
    agentws__stat_inc(&m->stats, AGENTWS_STAT_AUTH_HOOK_REFUSED);
    *reason = s->decided_user != NULL ? s->decided_user : "refused";
    return s->decision;
  }
  return decide_user(m, s, s->decided_user, reason);
}

/* The JWT stage: 0 with |res| filled, or the status already answered. */
static int check_token(agentws_manager *m, agentws__conn *c,
                       const agentws__http_request *req,
                       agentws__jwt_result *res, const char **reason) {
  const char *tok;
  size_t len;
  int rv;
  memset(res, 0, sizeof(*res));
  if (agentws__token_find(&m->cfg->auth, req, &tok, &len) != 0)
    return refuse_token(m, c, AGENTWS_STAT_AUTH_MISSING_TOKEN, 401);
  rv = agentws__auth_verify(m, tok, len, res);
  if (rv < 0) {
    *reason = "out of memory";
    return 500;
  }
  if (rv != 0)
    return refuse_token(m, c, res->stat, rv);
  return 0;
}

int agentws__auth_on_request(agentws_manager *m, agentws__conn *c,
                             const agentws__http_request *req,
                             const char **reason) {
  agentws__session *s = agentws__session_new(m, c);
  agentws__jwt_result res;
  char user[256];
  int n, rv;
  if (s == NULL) {
    *reason = "out of memory";
    return 500;
  }
  if (!m->cfg->raw_messages)
    parse_resume(s, req);
  if (m->auth.jwt) {
    rv = check_token(m, c, req, &res, reason);
    if (rv == 0) {
      s->token_exp = res.exp;
      rv = m->cbs.on_authenticate != NULL
               ? run_hook(m, c, s, req, &res, reason)
               : decide_user(m, s, res.user, reason);
    }
    agentws__jwt_result_clear(m->mem, &res);
    return rv;
  }
  if (m->cbs.on_authenticate != NULL)
    return run_hook(m, c, s, req, NULL, reason);
  if (m->cfg->raw_messages)
    return 0; /* raw mode without a hook: anonymous */
  if (!m->cfg->dev_insecure)
    return refuse_token(m, c, AGENTWS_STAT_AUTH_MISSING_TOKEN, 401);
  n = query_param(req->target, req->target_len, "user", user, sizeof(user));
  if (n <= 0 || !user_valid(user, (size_t)n)) {
    agentws__stat_inc(&m->stats, AGENTWS_STAT_AUTH_MISSING_TOKEN);
    *reason = "dev mode: ?user=NAME is required";
    return 401;
  }
  return decide_user(m, s, user, reason);
}

/* The pending (awaiting its hook) session of |id|, or NULL. */
static agentws__session *pending(agentws_manager *m, uint64_t id) {
  agentws__conn *c = agentws__transport_find(&m->transport, id);
  agentws__session *s;
  if (c == NULL || c->state != AGENTWS__CONN_HTTP || c->pend == NULL)
    return NULL;
  s = c->app;
  return s != NULL && s->req != NULL && !s->decided ? s : NULL;
}

int agentws_conn_accept(agentws_manager *m, uint64_t conn_id,
                        const char *user_id) {
  agentws__session *s;
  const char *reason = "";
  int rv;
  if (m == NULL || user_id == NULL ||
      !user_valid(user_id, strlen(user_id)))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  s = pending(m, conn_id);
  if (s == NULL)
    return AGENTWS_ERR_NOT_FOUND;
  if (s->in_hook) {
    s->decided_user = agentws__mem_strndup(m->mem, user_id, strlen(user_id));
    if (s->decided_user == NULL)
      return AGENTWS_ERR_NOMEM;
    s->decided = 1;
    s->decision = 0;
    return 0;
  }
  agentws__request_free(m, s->req);
  s->req = NULL;
  rv = decide_user(m, s, user_id, &reason);
  if (rv == 0)
    agentws__upgrade_accept(s->conn);
  else
    agentws__upgrade_refuse(s->conn, rv, reason);
  return 0;
}

int agentws_conn_refuse(agentws_manager *m, uint64_t conn_id, int status,
                        const char *reason) {
  agentws__session *s;
  if (m == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (status < 400 || status > 599)
    return AGENTWS_ERR_OUT_OF_RANGE;
  s = pending(m, conn_id);
  if (s == NULL)
    return AGENTWS_ERR_NOT_FOUND;
  if (s->in_hook) {
    s->decided = 1; /* counted by run_hook */
    s->decision = status;
    if (reason != NULL) /* kept for the response body */
      s->decided_user = agentws__mem_strndup(m->mem, reason, strlen(reason));
    return 0;
  }
  agentws__request_free(m, s->req);
  s->req = NULL;
  agentws__stat_inc(&m->stats, AGENTWS_STAT_AUTH_HOOK_REFUSED);
  agentws__upgrade_refuse(s->conn, status, reason != NULL ? reason : "");
  return 0;
}
