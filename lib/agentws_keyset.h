/*
 * Verification keys for JWTs: the public agentws_keyset (shared, reference
 * counted, frozen once handed over) and the algorithm table that says
 * which key may check which "alg", so an HMAC token is never verified with
 * an RSA or EC public key.
 */
#ifndef AGENTWS_KEYSET_H
#define AGENTWS_KEYSET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cjose/jwk.h>

#include "agentws.h"
#include "agentws_mem.h"

enum {
  AGENTWS__ALG_HS256, AGENTWS__ALG_HS384, AGENTWS__ALG_HS512,
  AGENTWS__ALG_RS256, AGENTWS__ALG_RS384, AGENTWS__ALG_RS512,
  AGENTWS__ALG_PS256, AGENTWS__ALG_PS384, AGENTWS__ALG_PS512,
  AGENTWS__ALG_ES256, AGENTWS__ALG_ES384, AGENTWS__ALG_ES512,
  AGENTWS__ALG_COUNT
};

#define AGENTWS__MAX_KEYS 64
#define AGENTWS__DEFAULT_ALGS                                                 \
  ((1u << AGENTWS__ALG_HS256) | (1u << AGENTWS__ALG_RS256) |                  \
   (1u << AGENTWS__ALG_ES256))

typedef struct agentws__key {
  char *kid;          /* owned; NULL: the key has none */
  cjose_jwk_t *jwk;   /* one reference */
  int pinned;         /* AGENTWS__ALG_* from the JWK's "alg", or -1 */
} agentws__key;

struct agentws_keyset {
  const agentws__mem *mem;
  atomic_int refs;       /* the host's handle, configs, managers */
  atomic_int frozen;     /* handed over once: never changes again */
  uint64_t generation;   /* unique per set: verification cache entries */
  size_t n;
  agentws__key keys[AGENTWS__MAX_KEYS];
};

/* The alg's index for |name| (|len| bytes), or -1 ("none" is unknown). */
int agentws__alg_from_name(const char *name, size_t len);
const char *agentws__alg_name(int alg);
/* Parses "HS256,ES256" into a bit mask: 0 or AGENTWS_ERR_INVALID_ARGUMENT. */
int agentws__alg_parse_list(const char *list, uint32_t *mask);
/* 1 if |k| may verify a signature made with |alg|. */
int agentws__key_fits(const agentws__key *k, int alg);

/* Another reference to |ks| (NULL stays NULL); thread-safe. */
agentws_keyset *agentws__keyset_retain(const agentws_keyset *ks);
/* Drops one reference; the last frees the set. Thread-safe. */
void agentws__keyset_release(agentws_keyset *ks);

#endif /* AGENTWS_KEYSET_H */
