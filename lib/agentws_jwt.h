/*
 * JWT verification: compact JWS checked by libcjose against a key set,
 * claims (exp, nbf, iat, iss, aud, user, scope) checked with jansson, and
 * a bounded cache of verified tokens keyed by their SHA-256, so a storm of
 * reconnects with the same tokens costs a hash each. No socket, no loop.
 */
#ifndef AGENTWS_JWT_H
#define AGENTWS_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "agentws_keyset.h"
#include "agentws_list.h"
#include "agentws_mem.h"
#include "agentws_strmap.h"

#define AGENTWS__MAX_TOKEN 8192

typedef struct agentws__jwt_policy {
  uint32_t algs;          /* allowed AGENTWS__ALG_* bits */
  const char *issuer;     /* required iss, or NULL */
  const char *audience;   /* required aud, or NULL */
  const char *user_claim; /* the user id's claim */
  const char *scope;      /* required scope/role, or NULL */
  int64_t leeway_s;       /* clock skew allowed */
  int require_exp;        /* refuse tokens without exp */
} agentws__jwt_policy;

typedef struct agentws__jwt_result {
  int stat;     /* AGENTWS_STAT_AUTH_*: ACCEPTED, or why not */
  int status;   /* 0 (valid), 401 or 403 */
  char *user;   /* valid: the user id (owned) */
  char *claims; /* valid: the payload JSON text (owned) */
  int64_t exp;  /* valid: exp in Unix seconds, 0 if none */
} agentws__jwt_result;

/*
 * Verifies |tok| (|len| bytes) at Unix time |now_s| with the keys of |ks|
 * (NULL: none) under |pol|. Fills |out| (clear it after). Returns 0 if
 * the token is valid, else its HTTP status (401/403) or
 * AGENTWS_ERR_NOMEM. Thread-safe.
 */
int agentws__jwt_verify(const agentws__mem *mem, const agentws_keyset *ks,
                        const agentws__jwt_policy *pol, const char *tok,
                        size_t len, int64_t now_s, agentws__jwt_result *out);
void agentws__jwt_result_clear(const agentws__mem *mem,
                               agentws__jwt_result *r);

typedef struct agentws__jwt_cache {
  const agentws__mem *mem;
  agentws__strmap map;    /* hex SHA-256 -> entry */
  agentws__list lru;      /* least recently used first */
  size_t count, max;      /* entries, bound (0: off) */
  uint64_t hits, misses;
} agentws__jwt_cache;

void agentws__jwt_cache_init(agentws__jwt_cache *c, const agentws__mem *mem,
                             size_t max);
void agentws__jwt_cache_clear(agentws__jwt_cache *c);
void agentws__jwt_cache_free(agentws__jwt_cache *c);

/*
 * agentws__jwt_verify() through |c|: a token verified before with the
 * same key set (same generation) and not expired is answered from the
 * cache; an expired one is refused without verifying. One thread only.
 */
int agentws__jwt_check(agentws__jwt_cache *c, const agentws_keyset *ks,
                       const agentws__jwt_policy *pol, const char *tok,
                       size_t len, int64_t now_s, agentws__jwt_result *out);

#endif /* AGENTWS_JWT_H */
