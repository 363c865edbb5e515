/* The token and JWT options of agentws_config. */
#include <string.h>

#include "agentws_config.h"
#include "agentws_keyset.h"

static const char *const source_names[AGENTWS__TOKEN_NSOURCES] = {
    "header", "subprotocol", "query", "cookie"};

static int dup_or_null(const agentws__mem *mem, char **dst, const char *s) {
  *dst = NULL;
  if (s == NULL)
    return 0;
  *dst = agentws__mem_strndup(mem, s, strlen(s));
  return *dst != NULL ? 0 : AGENTWS_ERR_NOMEM;
}

int agentws__auth_cfg_init(agentws__auth_cfg *a, const agentws__mem *mem) {
  memset(a, 0, sizeof(*a));
  a->algs = AGENTWS__DEFAULT_ALGS;
  a->leeway_s = 30;
  a->require_exp = 1;
  a->cache_size = 10000;
  a->expiring_s = 60;
  a->sources[0] = AGENTWS__TOKEN_HEADER;
  a->sources[1] = AGENTWS__TOKEN_SUBPROTOCOL;
  a->num_sources = 2;
  if (dup_or_null(mem, &a->user_claim, "sub") != 0 ||
      dup_or_null(mem, &a->query_param, "access_token") != 0 ||
      dup_or_null(mem, &a->cookie, "agentws_token") != 0) {
    agentws__auth_cfg_free(a, mem);
    return AGENTWS_ERR_NOMEM;
  }
  return 0;
}

int agentws__auth_cfg_copy(agentws__auth_cfg *dst,
                           const agentws__auth_cfg *src,
                           const agentws__mem *mem) {
  *dst = *src;
  dst->issuer = dst->audience = dst->scope = NULL;
  dst->user_claim = dst->query_param = dst->cookie = NULL;
  dst->keys = agentws__keyset_retain(src->keys);
  if (dup_or_null(mem, &dst->issuer, src->issuer) != 0 ||
      dup_or_null(mem, &dst->audience, src->audience) != 0 ||
      dup_or_null(mem, &dst->scope, src->scope) != 0 ||
      dup_or_null(mem, &dst->user_claim, src->user_claim) != 0 ||
      dup_or_null(mem, &dst->query_param, src->query_param) != 0 ||
      dup_or_null(mem, &dst->cookie, src->cookie) != 0)
    return AGENTWS_ERR_NOMEM; /* the caller frees |dst| */
  return 0;
}

void agentws__auth_cfg_free(agentws__auth_cfg *a, const agentws__mem *mem) {
  agentws__keyset_release(a->keys);
  agentws__mem_free(mem, a->issuer);
  agentws__mem_free(mem, a->audience);
  agentws__mem_free(mem, a->scope);
  agentws__mem_free(mem, a->user_claim);
  agentws__mem_free(mem, a->query_param);
  agentws__mem_free(mem, a->cookie);
  memset(a, 0, sizeof(*a));
}

/* Replaces an owned string option; |check| validates a non-NULL value. */
static int set_string(agentws_config *c, char **field, const char *v,
                      int nullable, size_t max) {
  char *p = NULL;
  size_t i, n;
  if (c == NULL || (v == NULL && !nullable))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (v != NULL) {
    n = strlen(v);
    if (n == 0 || n > max)
      return AGENTWS_ERR_INVALID_ARGUMENT;
    for (i = 0; i < n; i++)
      if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
        return AGENTWS_ERR_INVALID_ARGUMENT;
    p = agentws__mem_strndup(c->mem, v, n);
    if (p == NULL)
      return AGENTWS_ERR_NOMEM;
  }
  agentws__mem_free(c->mem, *field);
  *field = p;
  return 0;
}

int agentws_config_set_jwt_keys(agentws_config *c, const agentws_keyset *ks) {
  if (c == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  agentws__keyset_release(c->auth.keys);
  c->auth.keys = agentws__keyset_retain(ks);
  return 0;
}

int agentws_config_set_jwt_algorithms(agentws_config *c, const char *list) {
  uint32_t mask;
  if (c == NULL || agentws__alg_parse_list(list, &mask) != 0)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  c->auth.algs = mask;
  return 0;
}

int agentws_config_set_jwt_issuer(agentws_config *c, const char *issuer) {
  return set_string(c, c != NULL ? &c->auth.issuer : NULL, issuer, 1, 1024);
}

int agentws_config_set_jwt_audience(agentws_config *c, const char *aud) {
  return set_string(c, c != NULL ? &c->auth.audience : NULL, aud, 1, 1024);
}

int agentws_config_set_jwt_required_scope(agentws_config *c,
                                          const char *scope) {
  if (scope != NULL && strchr(scope, ' ') != NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  return set_string(c, c != NULL ? &c->auth.scope : NULL, scope, 1, 255);
}

int agentws_config_set_jwt_user_claim(agentws_config *c, const char *claim) {
  return set_string(c, c != NULL ? &c->auth.user_claim : NULL, claim, 0,
                    255);
}

/* HTTP token characters only (RFC 9110 5.6.2). */
static int is_token(const char *s) {
  size_t i, n = s != NULL ? strlen(s) : 0;
  if (n == 0 || n > 64)
    return 0;
  for (i = 0; i < n; i++) {
    int ch = (unsigned char)s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || strchr("!#$%&'*+-.^_`|~", ch)))
      return 0;
  }
  return 1;
}

int agentws_config_set_token_query_param(agentws_config *c,
                                         const char *name) {
  if (!is_token(name) || strchr(name, '&') || strchr(name, '%'))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  return set_string(c, c != NULL ? &c->auth.query_param : NULL, name, 0, 64);
}

int agentws_config_set_token_cookie(agentws_config *c, const char *name) {
  if (!is_token(name))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  return set_string(c, c != NULL ? &c->auth.cookie : NULL, name, 0, 64);
}

int agentws_config_set_token_sources(agentws_config *c, const char *list) {
  uint8_t src[AGENTWS__TOKEN_NSOURCES];
  size_t n = 0, seen = 0;
  const char *p = list;
  if (c == NULL || list == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  while (*p != '\0') {
    size_t w = strcspn(p, ","), k;
    const char *s = p;
    size_t len = w;
    while (len > 0 && *s == ' ')
      s++, len--;
    while (len > 0 && s[len - 1] == ' ')
      len--;
    for (k = 0; k < AGENTWS__TOKEN_NSOURCES; k++)
      if (strlen(source_names[k]) == len &&
          memcmp(source_names[k], s, len) == 0)
        break;
    if (k == AGENTWS__TOKEN_NSOURCES || (seen & (1u << k)))
      return AGENTWS_ERR_INVALID_ARGUMENT;
    seen |= 1u << k;
    src[n++] = (uint8_t)k;
    p += w;
    if (*p == ',')
      p++;
  }
  if (n == 0)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  memcpy(c->auth.sources, src, n);
  c->auth.num_sources = n;
  return 0;
}

/* One range-checked setter per numeric option. */
#define AUTH_RANGE(fn, field, lo, hi)                                        \
  int fn(agentws_config *c, int64_t v) {                                     \
    if (c == NULL)                                                           \
      return AGENTWS_ERR_INVALID_ARGUMENT;                                   \
    if (v < (lo) || v > (hi))                                                \
      return AGENTWS_ERR_OUT_OF_RANGE;                                       \
    c->auth.field = v;                                                       \
    return 0;                                                                \
  }

AUTH_RANGE(agentws_config_set_jwt_leeway_s, leeway_s, 0, 3600)
AUTH_RANGE(agentws_config_set_jwt_cache_size, cache_size, 0, 1000000)
AUTH_RANGE(agentws_config_set_token_expiring_s, expiring_s, 0, 86400)

int agentws_config_set_jwt_require_exp(agentws_config *c, int required) {
  if (c == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (required != 0 && required != 1)
    return AGENTWS_ERR_OUT_OF_RANGE;
  c->auth.require_exp = required;
  return 0;
}
