/*
 * Token lifetime on open connections and key rotation: the key set is
 * swapped under a lock (any thread), verification uses the current set
 * through the cache, and each connection whose token has an exp sits in a
 * deadline heap: token_expiring first, then a 4001 close at exp (plus the
 * leeway) unless a refresh moved it. Checked by the emitter's 1 s sweep:
 * exp has one-second resolution anyway.
 */
#include <stdio.h>
#include <string.h>

#include "agentws_auth.h"
#include "agentws_manager.h"

int agentws__emitter_send_json(agentws__session *s, const char *json,
                               size_t len);

int agentws__auth_init(agentws__auth *a, const agentws_config *cfg,
                       const agentws__mem *mem) {
  const agentws__auth_cfg *ac = &cfg->auth;
  int rv;
  memset(a, 0, sizeof(*a));
  rv = uv_mutex_init(&a->lock);
  if (rv != 0)
    return rv;
  a->keys = agentws__keyset_retain(ac->keys);
  a->jwt = a->keys != NULL;
  a->pol.algs = ac->algs;
  a->pol.issuer = ac->issuer;
  a->pol.audience = ac->audience;
  a->pol.user_claim = ac->user_claim;
  a->pol.scope = ac->scope;
  a->pol.leeway_s = ac->leeway_s;
  a->pol.require_exp = ac->require_exp;
  agentws__jwt_cache_init(&a->cache, mem, (size_t)ac->cache_size);
  return 0;
}

void agentws__auth_free(agentws__auth *a, const agentws__mem *mem) {
  agentws__jwt_cache_free(&a->cache);
  agentws__heap_free(&a->expiry, mem);
  agentws__keyset_release(a->keys);
  a->keys = NULL;
  uv_mutex_destroy(&a->lock);
}

int agentws_manager_set_jwt_keys(agentws_manager *m,
                                 const agentws_keyset *ks) {
  agentws_keyset *old;
  if (m == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (!m->auth.jwt)
    return AGENTWS_ERR_INVALID_STATE;
  uv_mutex_lock(&m->auth.lock);
  old = m->auth.keys;
  m->auth.keys = agentws__keyset_retain(ks);
  uv_mutex_unlock(&m->auth.lock);
  agentws__keyset_release(old);
  return 0;
}

int64_t agentws__wall_ms(void) {
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) != 0)
    return 0;
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int agentws__auth_verify(agentws_manager *m, const char *tok, size_t len,
                         agentws__jwt_result *res) {
  agentws__auth *a = &m->auth;
  agentws_keyset *ks;
  uint64_t hits = a->cache.hits, misses = a->cache.misses;
  int rv;
  uv_mutex_lock(&a->lock);
  ks = agentws__keyset_retain(a->keys);
  uv_mutex_unlock(&a->lock);
  /* A rotation empties the cache: entries of a removed key must go. */
  if ((ks != NULL ? ks->generation : 0) != a->cache_generation) {
    agentws__jwt_cache_clear(&a->cache);
    a->cache_generation = ks != NULL ? ks->generation : 0;
  }
  rv = agentws__jwt_check(&a->cache, ks, &a->pol, tok, len,
                          agentws__wall_ms() / 1000, res);
  agentws__keyset_release(ks);
  agentws__stat_add(&m->stats, AGENTWS_STAT_AUTH_CACHE_HITS,
                    a->cache.hits - hits);
  agentws__stat_add(&m->stats, AGENTWS_STAT_AUTH_CACHE_MISSES,
                    a->cache.misses - misses);
  return rv;
}

/* ------------------------------------------------------------ deadlines */

static int64_t close_at(const agentws_manager *m, const agentws__session *s) {
  return (s->token_exp + m->auth.pol.leeway_s) * 1000;
}

void agentws__auth_schedule(agentws_manager *m, agentws__session *s) {
  int64_t warn = (s->token_exp - m->cfg->auth.expiring_s) * 1000;
  agentws__heap_remove(&m->auth.expiry, &s->expiry);
  if (s->token_exp == 0)
    return;
  s->expiry.key = !s->exp_warned && m->cfg->auth.expiring_s > 0 &&
                          !m->cfg->raw_messages
                      ? warn
                      : close_at(m, s);
  /* Out of memory: the connection then simply is not expired early. */
  (void)agentws__heap_push(&m->auth.expiry, m->mem, &s->expiry);
}

void agentws__auth_unschedule(agentws_manager *m, agentws__session *s) {
  agentws__heap_remove(&m->auth.expiry, &s->expiry);
}

static void warn(agentws_manager *m, agentws__session *s, int64_t now) {
  char msg[64];
  int64_t in_ms = s->token_exp * 1000 - now;
  int n = snprintf(msg, sizeof(msg), "{\"type\":\"token_expiring\",\"in_s\":%lld}",
                   (long long)(in_ms > 0 ? in_ms / 1000 : 0));
  if (agentws__emitter_send_json(s, msg, (size_t)n) == 0)
    agentws__stat_inc(&m->stats, AGENTWS_STAT_TOKEN_EXPIRING_SENT);
}

void agentws__auth_tick(agentws_manager *m) {
  int64_t now = agentws__wall_ms();
  agentws__heap_node *top;
  while ((top = agentws__heap_top(&m->auth.expiry)) != NULL &&
         top->key <= now) {
    agentws__session *s = AGENTWS__CONTAINER_OF(top, agentws__session, expiry);
    agentws__heap_remove(&m->auth.expiry, top);
    if (s->conn->state == AGENTWS__CONN_HTTP ||
        (s->conn->state == AGENTWS__CONN_WS && !s->welcomed &&
         !m->cfg->raw_messages)) {
      top->key = now + 1000; /* not open yet: look again */
      (void)agentws__heap_push(&m->auth.expiry, m->mem, top);
      continue;
    }
    if (s->conn->state != AGENTWS__CONN_WS)
      continue; /* already closing */
    if (now >= close_at(m, s)) {
      agentws__stat_inc(&m->stats, AGENTWS_STAT_TOKEN_EXPIRED_CLOSES);
      (void)agentws_conn_close(m, s->conn->id, AGENTWS__CLOSE_TOKEN_EXPIRED,
                               "token expired", 13);
      continue;
    }
    if (!s->exp_warned) {
      s->exp_warned = 1;
      warn(m, s, now);
    }
    agentws__auth_schedule(m, s);
  }
}

/* -------------------------------------------------------------- refresh */

int agentws__auth_refresh(agentws_manager *m, agentws__session *s,
                          const char *tok, size_t len, const char **why) {
  agentws__jwt_result res;
  char msg[64];
  int rv, n;
  if (!m->auth.jwt) {
    *why = "token refresh is not enabled";
    return -1;
  }
  rv = agentws__auth_verify(m, tok, len, &res);
  if (rv == 0 && strcmp(res.user, s->user->id) != 0)
    rv = 403;
  if (rv != 0) {
    agentws__jwt_result_clear(m->mem, &res);
    agentws__stat_inc(&m->stats, AGENTWS_STAT_TOKEN_REFRESH_FAILED);
    *why = rv == 403 ? "the token is not valid for this user"
                     : "the token was refused";
    return -2;
  }
  s->token_exp = res.exp;
  s->exp_warned = 0;
  agentws__jwt_result_clear(m->mem, &res);
  agentws__auth_schedule(m, s);
  agentws__stat_inc(&m->stats, AGENTWS_STAT_TOKEN_REFRESHED);
  n = snprintf(msg, sizeof(msg), "{\"type\":\"refreshed\",\"exp\":%lld}",
               (long long)s->token_exp);
  (void)agentws__emitter_send_json(s, msg, (size_t)n);
  return 0;
}

int agentws_conn_get_token_exp(agentws_manager *m, uint64_t conn_id,
                               int64_t *exp) {
  agentws__conn *c;
  agentws__session *s;
  if (m == NULL || exp == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  c = agentws__transport_find(&m->transport, conn_id);
  if (c == NULL || c->state != AGENTWS__CONN_WS)
    return AGENTWS_ERR_NOT_FOUND;
  s = c->app;
  *exp = s != NULL ? s->token_exp : 0;
  return 0;
}
