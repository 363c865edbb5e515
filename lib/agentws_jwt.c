/*
 * JWT verification with libcjose (signature, base64url) and jansson
 * (header and claims). The order of the checks decides what a refusal is
 * counted as: shape, algorithm, key, signature, then the claims.
 */
#include "agentws_jwt.h"

#include <math.h>
#include <string.h>

#include <cjose/header.h>
#include <cjose/jws.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "agentws_utf8.h"

static int fail(agentws__jwt_result *r, int stat) {
  r->stat = stat;
  r->status = stat == AGENTWS_STAT_AUTH_FORBIDDEN ? 403 : 401;
  return r->status;
}

/* Compact JWS shape: three base64url segments, the first two non-empty. */
static int well_formed(const char *t, size_t len) {
  size_t i, dots = 0, seg = 0;
  for (i = 0; i < len; i++) {
    char ch = t[i];
    if (ch == '.') {
      if (seg == 0 && dots < 2)
        return 0;
      dots++;
      seg = 0;
    } else if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
               (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') {
      seg++;
    } else {
      return 0;
    }
  }
  return dots == 2 && seg > 0;
}

static int user_ok(const char *u, size_t n) {
  size_t i;
  if (n == 0 || n > 255 || !agentws__utf8_valid((const uint8_t *)u, n))
    return 0;
  for (i = 0; i < n; i++)
    if ((unsigned char)u[i] < 0x20 || u[i] == 0x7f)
      return 0;
  return 1;
}

/* A NumericDate claim: absent (1, *v untouched), valid (1), or not a
 * finite number (0). */
static int is_json_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int numeric_date(json_t *claims, const char *name, int64_t *v,
                        int *present) {
  json_t *j = json_object_get(claims, name);
  double d;
  *present = j != NULL;
  if (j == NULL)
    return 1;
  if (!json_is_number(j))
    return 0;
  d = json_number_value(j);
  if (!isfinite(d) || d < 0 || d > 1e15)
    return 0;
  *v = (int64_t)d; /* d >= 0: truncation is floor */
  return 1;
}

static int has_string(json_t *j, const char *want) {
  size_t i;
  if (json_is_string(j))
    return strcmp(json_string_value(j), want) == 0;
  if (!json_is_array(j))
    return 0;
  for (i = 0; i < json_array_size(j); i++) {
    json_t *e = json_array_get(j, i);
    if (json_is_string(e) && strcmp(json_string_value(e), want) == 0)
      return 1;
  }
  return 0;
}

/* "scope" may be one space-separated string (RFC 8693). */
static int grants(json_t *claims, const char *scope) {
  json_t *s = json_object_get(claims, "scope");
  size_t n = strlen(scope);
  if (json_is_string(s)) {
    const char *p = json_string_value(s);
    while (*p != '\0') {
      size_t w = strcspn(p, " ");
      if (w == n && memcmp(p, scope, n) == 0)
        return 1;
      p += w;
      p += strspn(p, " ");
    }
  } else if (has_string(s, scope)) {
    return 1;
  }
  return has_string(json_object_get(claims, "scp"), scope) ||
         has_string(json_object_get(claims, "roles"), scope);
}

static int check_claims(const agentws__mem *mem, json_t *claims,
                        const agentws__jwt_policy *pol, int64_t now,
                        agentws__jwt_result *r) {
  int64_t exp = 0, nbf = 0, iat = 0;
  int has_exp, has_nbf, has_iat;
  json_t *user;
  if (!numeric_date(claims, "exp", &exp, &has_exp) ||
      !numeric_date(claims, "nbf", &nbf, &has_nbf) ||
      !numeric_date(claims, "iat", &iat, &has_iat))
    return fail(r, AGENTWS_STAT_AUTH_BAD_CLAIMS);
  if (!has_exp && pol->require_exp)
    return fail(r, AGENTWS_STAT_AUTH_BAD_CLAIMS);
  if (has_exp && now >= exp + pol->leeway_s) /* RFC 7519 4.1.4 */
    return fail(r, AGENTWS_STAT_AUTH_EXPIRED);
  if ((has_nbf && now + pol->leeway_s < nbf) ||
      (has_iat && now + pol->leeway_s < iat))
    return fail(r, AGENTWS_STAT_AUTH_NOT_YET_VALID);
  if (pol->issuer != NULL) {
    json_t *iss = json_object_get(claims, "iss");
    if (!json_is_string(iss) || strcmp(json_string_value(iss), pol->issuer))
      return fail(r, AGENTWS_STAT_AUTH_BAD_ISSUER);
  }
  if (pol->audience != NULL &&
      !has_string(json_object_get(claims, "aud"), pol->audience))
    return fail(r, AGENTWS_STAT_AUTH_BAD_AUDIENCE);
  user = json_object_get(claims, pol->user_claim);
  if (!json_is_string(user) ||
      !user_ok(json_string_value(user), json_string_length(user)))
    return fail(r, AGENTWS_STAT_AUTH_BAD_CLAIMS);
  if (pol->scope != NULL && !grants(claims, pol->scope))
    return fail(r, AGENTWS_STAT_AUTH_FORBIDDEN);
  r->user = agentws__mem_strndup(mem, json_string_value(user),
                                 json_string_length(user));
  if (r->user == NULL)
    return AGENTWS_ERR_NOMEM;
  r->exp = has_exp ? exp : 0;
  return 0;
}

/* Header checks and the key search; 0 when a key verified the signature. */
/* The exact signature size |alg| produces with |k|, in bytes: libcjose
 * 0.6 compares HMACs before it checks their length (an over-read) and
 * takes ECDSA r||s and PSS signatures of the wrong size, so the size is
 * checked here first (RFC 7518 3.2-3.5). */
static size_t sig_bytes(const agentws__key *k, int alg) {
  switch (alg) {
  case AGENTWS__ALG_HS256: return 32;
  case AGENTWS__ALG_HS384: return 48;
  case AGENTWS__ALG_HS512: return 64;
  case AGENTWS__ALG_ES256: return 64;
  case AGENTWS__ALG_ES384: return 96;
  case AGENTWS__ALG_ES512: return 132;
  default: return (cjose_jwk_get_keysize(k->jwk, NULL) + 7) / 8;
  }
}

static int check_signature(cjose_jws_t *jws, const agentws_keyset *ks,
                           const agentws__jwt_policy *pol, size_t sig_len,
                           agentws__jwt_result *r) {
  json_t *hdr = (json_t *)cjose_jws_get_protected(jws);
  json_t *alg_j = json_object_get(hdr, "alg"), *kid_j;
  const char *kid = NULL;
  int alg, named = 0, fitting = 0;
  size_t i;
  if (!json_is_object(hdr) || !json_is_string(alg_j) ||
      json_object_get(hdr, "crit") != NULL)
    return fail(r, AGENTWS_STAT_AUTH_MALFORMED);
  alg = agentws__alg_from_name(json_string_value(alg_j),
                               json_string_length(alg_j));
  if (alg < 0 || !(pol->algs & (1u << alg)))
    return fail(r, AGENTWS_STAT_AUTH_BAD_ALGORITHM);
  kid_j = json_object_get(hdr, "kid");
  if (kid_j != NULL) {
    if (!json_is_string(kid_j))
      return fail(r, AGENTWS_STAT_AUTH_MALFORMED);
    kid = json_string_value(kid_j);
  }
  for (i = 0; ks != NULL && i < ks->n; i++) {
    const agentws__key *k = &ks->keys[i];
    if (kid != NULL && (k->kid == NULL || strcmp(k->kid, kid) != 0))
      continue;
    named++;
    if (!agentws__key_fits(k, alg))
      continue;
    fitting++;
    if (sig_len == sig_bytes(k, alg) && cjose_jws_verify(jws, k->jwk, NULL))
      return 0;
  }
  if (kid != NULL && named == 0)
    return fail(r, AGENTWS_STAT_AUTH_UNKNOWN_KEY);
  if (fitting == 0)
    return fail(r, AGENTWS_STAT_AUTH_BAD_ALGORITHM);
  return fail(r, AGENTWS_STAT_AUTH_BAD_SIGNATURE);
}

int agentws__jwt_verify(const agentws__mem *mem, const agentws_keyset *ks,
                        const agentws__jwt_policy *pol, const char *tok,
                        size_t len, int64_t now_s, agentws__jwt_result *r) {
  cjose_jws_t *jws;
  uint8_t *plain = NULL;
  size_t plain_len = 0;
  json_t *claims;
  int rv;
  memset(r, 0, sizeof(*r));
  if (tok == NULL || len == 0)
    return fail(r, AGENTWS_STAT_AUTH_MISSING_TOKEN);
  if (len > AGENTWS__MAX_TOKEN || !well_formed(tok, len))
    return fail(r, AGENTWS_STAT_AUTH_MALFORMED);
  jws = cjose_jws_import(tok, len, NULL);
  if (jws == NULL)
    return fail(r, AGENTWS_STAT_AUTH_MALFORMED);
  {
    /* The signature segment follows the last dot (well_formed: two). */
    const char *sig = tok + len;
    size_t chars, sig_len;
    while (sig[-1] != '.')
      sig--;
    chars = (size_t)(tok + len - sig);
    /* Unpadded base64url: 4n+1 characters is never a valid length. */
    sig_len = chars % 4 == 1 ? 0
                             : chars / 4 * 3 + (chars % 4 ? chars % 4 - 1 : 0);
    rv = check_signature(jws, ks, pol, sig_len, r);
  }
  if (rv == 0 && !cjose_jws_get_plaintext(jws, &plain, &plain_len, NULL))
    rv = fail(r, AGENTWS_STAT_AUTH_MALFORMED);
  if (rv != 0) {
    cjose_jws_release(jws);
    return rv;
  }
  claims = json_loadb((const char *)plain, plain_len, JSON_REJECT_DUPLICATES,
                      NULL);
  if (!json_is_object(claims)) {
    rv = fail(r, AGENTWS_STAT_AUTH_MALFORMED);
  } else {
    rv = check_claims(mem, claims, pol, now_s, r);
    if (rv == 0) {
      /* jansson allows JSON whitespace around the object; the host is
       * promised an object text, so it starts at '{' and ends at '}'. */
      const char *b = (const char *)plain, *e = b + plain_len;
      while (b < e && is_json_space(*b))
        b++;
      while (e > b && is_json_space(e[-1]))
        e--;
      r->claims = agentws__mem_strndup(mem, b, (size_t)(e - b));
      if (r->claims == NULL)
        rv = AGENTWS_ERR_NOMEM;
    }
  }
  json_decref(claims);
  cjose_jws_release(jws); /* owns |plain| */
  if (rv == 0) {
    r->stat = AGENTWS_STAT_AUTH_ACCEPTED;
    r->status = 0;
  } else if (rv == AGENTWS_ERR_NOMEM) {
    agentws__jwt_result_clear(mem, r);
  }
  return rv;
}

void agentws__jwt_result_clear(const agentws__mem *mem,
                               agentws__jwt_result *r) {
  agentws__mem_free(mem, r->user);
  agentws__mem_free(mem, r->claims);
  r->user = r->claims = NULL;
}

/* --------------------------------------------------------------- cache */

typedef struct entry {
  char key[65];       /* hex SHA-256 of the token */
  uint64_t generation; /* of the key set that verified it */
  int64_t exp;        /* 0: none */
  char *user, *claims;
  agentws__list lru;
} entry;

void agentws__jwt_cache_init(agentws__jwt_cache *c, const agentws__mem *mem,
                             size_t max) {
  memset(c, 0, sizeof(*c));
  c->mem = mem;
  c->max = max;
  agentws__list_init(&c->lru);
}

static void drop(agentws__jwt_cache *c, entry *e) {
  agentws__strmap_del(&c->map, e->key);
  agentws__list_remove(&e->lru);
  agentws__mem_free(c->mem, e->user);
  agentws__mem_free(c->mem, e->claims);
  agentws__mem_free(c->mem, e);
  c->count--;
}

void agentws__jwt_cache_clear(agentws__jwt_cache *c) {
  while (!agentws__list_empty(&c->lru))
    drop(c, AGENTWS__CONTAINER_OF(c->lru.next, entry, lru));
}

void agentws__jwt_cache_free(agentws__jwt_cache *c) {
  agentws__jwt_cache_clear(c);
  agentws__strmap_free(&c->map, c->mem);
}

static int digest_hex(const char *tok, size_t len, char out[65]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char md[32];
  unsigned int n = 0, i;
  if (EVP_Digest(tok, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
    return -1;
  for (i = 0; i < 32; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  out[64] = '\0';
  return 0;
}

static int copy_out(agentws__jwt_cache *c, const entry *e,
                    agentws__jwt_result *r) {
  memset(r, 0, sizeof(*r));
  r->user = agentws__mem_strndup(c->mem, e->user, strlen(e->user));
  r->claims = agentws__mem_strndup(c->mem, e->claims, strlen(e->claims));
  if (r->user == NULL || r->claims == NULL) {
    agentws__jwt_result_clear(c->mem, r);
    return AGENTWS_ERR_NOMEM;
  }
  r->exp = e->exp;
  r->stat = AGENTWS_STAT_AUTH_ACCEPTED;
  return 0;
}

/* Remembers a verified token; failure to remember is not an error. */
static void remember(agentws__jwt_cache *c, const char *key, uint64_t gen,
                     const agentws__jwt_result *r) {
  entry *e;
  if (c->count >= c->max) /* front: least recently used */
    drop(c, AGENTWS__CONTAINER_OF(c->lru.next, entry, lru));
  e = agentws__mem_calloc(c->mem, 1, sizeof(*e));
  if (e == NULL)
    return;
  memcpy(e->key, key, sizeof(e->key));
  e->generation = gen;
  e->exp = r->exp;
  e->user = agentws__mem_strndup(c->mem, r->user, strlen(r->user));
  e->claims = agentws__mem_strndup(c->mem, r->claims, strlen(r->claims));
  if (e->user == NULL || e->claims == NULL ||
      agentws__strmap_put(&c->map, c->mem, e->key, e) != 0) {
    agentws__mem_free(c->mem, e->user);
    agentws__mem_free(c->mem, e->claims);
    agentws__mem_free(c->mem, e);
    return;
  }
  agentws__list_push_back(&c->lru, &e->lru); /* back = newest */
  c->count++;
}

int agentws__jwt_check(agentws__jwt_cache *c, const agentws_keyset *ks,
                       const agentws__jwt_policy *pol, const char *tok,
                       size_t len, int64_t now_s, agentws__jwt_result *r) {
  uint64_t gen = ks != NULL ? ks->generation : 0;
  char key[65];
  entry *e;
  int rv;
  if (c->max == 0 || len == 0 || len > AGENTWS__MAX_TOKEN ||
      digest_hex(tok, len, key) != 0) {
    c->misses++;
    return agentws__jwt_verify(c->mem, ks, pol, tok, len, now_s, r);
  }
  e = agentws__strmap_get(&c->map, key);
  if (e != NULL && e->generation != gen) {
    drop(c, e);
    e = NULL;
  }
  if (e != NULL) {
    c->hits++;
    if (e->exp != 0 && now_s >= e->exp + pol->leeway_s) {
      drop(c, e);
      memset(r, 0, sizeof(*r));
      return fail(r, AGENTWS_STAT_AUTH_EXPIRED);
    }
    agentws__list_remove(&e->lru);
    agentws__list_push_back(&c->lru, &e->lru);
    return copy_out(c, e, r);
  }
  c->misses++;
  rv = agentws__jwt_verify(c->mem, ks, pol, tok, len, now_s, r);
  if (rv == 0)
    remember(c, key, gen, r);
  return rv;
}
