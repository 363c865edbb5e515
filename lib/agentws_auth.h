/*
 * Auth state of a manager: the current JWT key set (replaceable from any
 * thread), the verification cache, and the deadlines of open connections'
 * tokens (token_expiring, then close with 4001). Also where a handshake's
 * token is found.
 */
#ifndef AGENTWS_AUTH_H
#define AGENTWS_AUTH_H

#include <uv.h>

#include "agentws_config.h"
#include "agentws_heap.h"
#include "agentws_http.h"
#include "agentws_jwt.h"

#define AGENTWS__CLOSE_TOKEN_EXPIRED 4001

typedef struct agentws__auth {
  uv_mutex_t lock;          /* guards keys */
  agentws_keyset *keys;     /* current set (a reference) */
  int jwt;                  /* JWT checks on: the config had keys */
  agentws__jwt_policy pol;  /* points into the manager's config */
  agentws__jwt_cache cache; /* loop thread */
  uint64_t cache_generation; /* key set the cache entries belong to */
  agentws__heap expiry;     /* sessions by next token deadline (Unix ms) */
} agentws__auth;

int agentws__auth_init(agentws__auth *a, const agentws_config *cfg,
                       const agentws__mem *mem);
void agentws__auth_free(agentws__auth *a, const agentws__mem *mem);

/*
 * Finds the token in |req| from the configured sources, in order: 0 with
 * |*tok| / |*len| pointing into the request, or -1 if there is none.
 */
int agentws__token_find(const agentws__auth_cfg *ac,
                        const agentws__http_request *req, const char **tok,
                        size_t *len);

#endif /* AGENTWS_AUTH_H */
