/*
 * Key sets for JWT verification. Keys are imported by libcjose (JWKs) or
 * read by OpenSSL (PEM) and handed to cjose as key specs; this file only
 * decides which key may check which algorithm. A set is immutable once a
 * config or manager holds it, so verifying threads never see it change.
 */
#include "agentws_keyset.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define MIN_SECRET 32          /* RFC 7518 3.2: at least the hash size */
#define MIN_RSA_BITS 2048
#define MAX_KID 255
#define MAX_JWKS_FILE (1u << 20)

static const char *const alg_names[AGENTWS__ALG_COUNT] = {
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"};

static atomic_uint_fast64_t next_generation = 1;

int agentws__alg_from_name(const char *name, size_t len) {
  int i;
  for (i = 0; i < AGENTWS__ALG_COUNT; i++)
    if (len == 5 && memcmp(name, alg_names[i], 5) == 0)
      return i;
  return -1;
}

const char *agentws__alg_name(int alg) {
  return alg >= 0 && alg < AGENTWS__ALG_COUNT ? alg_names[alg] : "?";
}

int agentws__alg_parse_list(const char *list, uint32_t *mask) {
  uint32_t m = 0;
  const char *p = list;
  if (list == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  while (*p != '\0') {
    size_t n = strcspn(p, ",");
    const char *s = p;
    size_t len = n;
    int alg;
    while (len > 0 && *s == ' ')
      s++, len--;
    while (len > 0 && s[len - 1] == ' ')
      len--;
    alg = agentws__alg_from_name(s, len);
    if (alg < 0)
      return AGENTWS_ERR_INVALID_ARGUMENT;
    m |= 1u << alg;
    p += n;
    if (*p == ',')
      p++;
  }
  if (m == 0)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  *mask = m;
  return 0;
}

int agentws__key_fits(const agentws__key *k, int alg) {
  cjose_jwk_kty_t kty = cjose_jwk_get_kty(k->jwk, NULL);
  size_t bits = cjose_jwk_get_keysize(k->jwk, NULL);
  if (k->pinned >= 0 && k->pinned != alg)
    return 0;
  switch (alg) {
  case AGENTWS__ALG_HS256:
  case AGENTWS__ALG_HS384:
  case AGENTWS__ALG_HS512:
    return kty == CJOSE_JWK_KTY_OCT &&
           bits >= (alg == AGENTWS__ALG_HS256   ? 256u
                    : alg == AGENTWS__ALG_HS384 ? 384u
                                                : 512u);
  case AGENTWS__ALG_ES256:
    return kty == CJOSE_JWK_KTY_EC &&
           cjose_jwk_EC_get_curve(k->jwk, NULL) == CJOSE_JWK_EC_P_256;
  case AGENTWS__ALG_ES384:
    return kty == CJOSE_JWK_KTY_EC &&
           cjose_jwk_EC_get_curve(k->jwk, NULL) == CJOSE_JWK_EC_P_384;
  case AGENTWS__ALG_ES512:
    return kty == CJOSE_JWK_KTY_EC &&
           cjose_jwk_EC_get_curve(k->jwk, NULL) == CJOSE_JWK_EC_P_521;
  default:
    return kty == CJOSE_JWK_KTY_RSA;
  }
}

/* ------------------------------------------------------------ lifetime */

int agentws_keyset_new(agentws_keyset **out) {
  const agentws__mem *mem = agentws__mem_default();
  agentws_keyset *ks;
  if (out == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  ks = agentws__mem_calloc(mem, 1, sizeof(*ks));
  if (ks == NULL)
    return AGENTWS_ERR_NOMEM;
  ks->mem = mem;
  atomic_init(&ks->refs, 1);
  atomic_init(&ks->frozen, 0);
  ks->generation = atomic_fetch_add(&next_generation, 1);
  *out = ks;
  return 0;
}

agentws_keyset *agentws__keyset_retain(const agentws_keyset *cks) {
  agentws_keyset *ks = (agentws_keyset *)cks;
  if (ks != NULL) {
    atomic_fetch_add(&ks->refs, 1);
    atomic_store(&ks->frozen, 1);
  }
  return ks;
}

void agentws__keyset_release(agentws_keyset *ks) {
  size_t i;
  if (ks == NULL || atomic_fetch_sub(&ks->refs, 1) != 1)
    return;
  for (i = 0; i < ks->n; i++) {
    agentws__mem_free(ks->mem, ks->keys[i].kid);
    cjose_jwk_release(ks->keys[i].jwk);
  }
  agentws__mem_free(ks->mem, ks);
}

void agentws_keyset_free(agentws_keyset *ks) { agentws__keyset_release(ks); }

int agentws_keyset_count(const agentws_keyset *ks) {
  return ks != NULL ? (int)ks->n : 0;
}

/* 0 if |ks| may still change: it was never handed over. */
static int frozen(agentws_keyset *ks) { return atomic_load(&ks->frozen); }

/* ----------------------------------------------------------------- add */

static int kid_ok(const char *kid) {
  size_t i, n;
  if (kid == NULL)
    return 1;
  n = strlen(kid);
  if (n == 0 || n > MAX_KID)
    return 0;
  for (i = 0; i < n; i++)
    if ((unsigned char)kid[i] < 0x20 || kid[i] == 0x7f)
      return 0;
  return 1;
}

/* Appends |jwk| (its reference moves in) to the staging area |tmp|. */
static int stage(agentws_keyset *ks, agentws__key *tmp, size_t *ntmp,
                 cjose_jwk_t *jwk, const char *kid, int pinned) {
  agentws__key *k;
  if (ks->n + *ntmp >= AGENTWS__MAX_KEYS) {
    cjose_jwk_release(jwk);
    return AGENTWS_ERR_LIMIT;
  }
  k = &tmp[(*ntmp)];
  k->kid = NULL;
  if (kid != NULL) {
    k->kid = agentws__mem_strndup(ks->mem, kid, strlen(kid));
    if (k->kid == NULL) {
      cjose_jwk_release(jwk);
      return AGENTWS_ERR_NOMEM;
    }
  }
  k->jwk = jwk;
  k->pinned = pinned;
  (*ntmp)++;
  return 0;
}

static void unstage(agentws_keyset *ks, agentws__key *tmp, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    agentws__mem_free(ks->mem, tmp[i].kid);
    cjose_jwk_release(tmp[i].jwk);
  }
}

static void commit(agentws_keyset *ks, agentws__key *tmp, size_t n) {
  memcpy(&ks->keys[ks->n], tmp, n * sizeof(*tmp));
  ks->n += n;
}

/* Checks sizes a verifier must refuse to trust. */
static int strong_enough(const cjose_jwk_t *jwk) {
  size_t bits = cjose_jwk_get_keysize(jwk, NULL);
  switch (cjose_jwk_get_kty(jwk, NULL)) {
  case CJOSE_JWK_KTY_OCT:
    return bits >= MIN_SECRET * 8;
  case CJOSE_JWK_KTY_RSA:
    return bits >= MIN_RSA_BITS;
  case CJOSE_JWK_KTY_EC:
    return cjose_jwk_EC_get_curve(jwk, NULL) != CJOSE_JWK_EC_INVALID;
  default:
    return 0;
  }
}

int agentws_keyset_add_secret(agentws_keyset *ks, const char *kid,
                              const uint8_t *secret, size_t len) {
  agentws__key tmp[1];
  size_t n = 0;
  cjose_jwk_t *jwk;
  int rv;
  if (ks == NULL || secret == NULL || len < MIN_SECRET || len > 4096 ||
      !kid_ok(kid))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (frozen(ks))
    return AGENTWS_ERR_INVALID_STATE;
  jwk = cjose_jwk_create_oct_spec(secret, len, NULL);
  if (jwk == NULL)
    return AGENTWS_ERR_NOMEM;
  rv = stage(ks, tmp, &n, jwk, kid, -1);
  if (rv == 0)
    commit(ks, tmp, n);
  return rv;
}

/* Big-endian bytes of |bn| padded to |pad| (0: minimal) in a new buffer. */
static uint8_t *bn_bytes(const BIGNUM *bn, size_t pad, size_t *len) {
  size_t n = pad != 0 ? pad : (size_t)BN_num_bytes(bn);
  uint8_t *b = OPENSSL_malloc(n > 0 ? n : 1);
  if (b == NULL || BN_bn2binpad(bn, b, (int)n) < 0) {
    OPENSSL_free(b);
    return NULL;
  }
  *len = n;
  return b;
}

static cjose_jwk_t *rsa_jwk(EVP_PKEY *pk) {
  BIGNUM *n = NULL, *e = NULL;
  cjose_jwk_rsa_keyspec spec;
  cjose_jwk_t *jwk = NULL;
  memset(&spec, 0, sizeof(spec));
  if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
      EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) == 1 &&
      (spec.n = bn_bytes(n, 0, &spec.nlen)) != NULL &&
      (spec.e = bn_bytes(e, 0, &spec.elen)) != NULL)
    jwk = cjose_jwk_create_RSA_spec(&spec, NULL);
  OPENSSL_free(spec.n);
  OPENSSL_free(spec.e);
  BN_free(n);
  BN_free(e);
  return jwk;
}

static cjose_jwk_t *ec_jwk(EVP_PKEY *pk) {
  char group[64];
  BIGNUM *x = NULL, *y = NULL;
  cjose_jwk_ec_keyspec spec;
  cjose_jwk_t *jwk = NULL;
  size_t field = 0;
  memset(&spec, 0, sizeof(spec));
  if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                     sizeof(group), NULL) != 1)
    return NULL;
  if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0) {
    spec.crv = CJOSE_JWK_EC_P_256;
    field = 32;
  } else if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0) {
    spec.crv = CJOSE_JWK_EC_P_384;
    field = 48;
  } else if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0) {
    spec.crv = CJOSE_JWK_EC_P_521;
    field = 66;
  } else {
    return NULL;
  }
  if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
      EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1 &&
      (spec.x = bn_bytes(x, field, &spec.xlen)) != NULL &&
      (spec.y = bn_bytes(y, field, &spec.ylen)) != NULL)
    jwk = cjose_jwk_create_EC_spec(&spec, NULL);
  OPENSSL_free(spec.x);
  OPENSSL_free(spec.y);
  BN_free(x);
  BN_free(y);
  return jwk;
}

/* A public key from PEM: SubjectPublicKeyInfo or an X.509 certificate. */
static EVP_PKEY *read_pem(const char *pem, size_t len) {
  BIO *bio;
  EVP_PKEY *pk;
  X509 *cert;
  if (len > INT32_MAX)
    return NULL;
  bio = BIO_new_mem_buf(pem, (int)len);
  if (bio == NULL)
    return NULL;
  pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
  if (pk == NULL) {
    (void)BIO_reset(bio);
    cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (cert != NULL)
      pk = X509_get_pubkey(cert);
    X509_free(cert);
  }
  BIO_free(bio);
  return pk;
}

int agentws_keyset_add_pem(agentws_keyset *ks, const char *kid,
                           const char *pem, size_t len) {
  agentws__key tmp[1];
  size_t n = 0;
  EVP_PKEY *pk;
  cjose_jwk_t *jwk = NULL;
  int rv;
  if (ks == NULL || pem == NULL || len == 0 || !kid_ok(kid))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (frozen(ks))
    return AGENTWS_ERR_INVALID_STATE;
  pk = read_pem(pem, len);
  if (pk == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (EVP_PKEY_is_a(pk, "RSA"))
    jwk = rsa_jwk(pk);
  else if (EVP_PKEY_is_a(pk, "EC"))
    jwk = ec_jwk(pk);
  EVP_PKEY_free(pk);
  if (jwk == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (!strong_enough(jwk)) {
    cjose_jwk_release(jwk);
    return AGENTWS_ERR_INVALID_ARGUMENT;
  }
  rv = stage(ks, tmp, &n, jwk, kid, -1);
  if (rv == 0)
    commit(ks, tmp, n);
  return rv;
}

/* libcjose 0.6 asserts (aborts) on some malformed base64url, so key
 * members are checked first: base64url alphabet, no padding, and never
 * 4n+1 characters long. */
static int b64url_members_ok(json_t *o) {
  static const char *const members[] = {"k", "n", "e", "x", "y", "d",
                                        "p", "q", "dp", "dq", "qi"};
  size_t i, j;
  for (i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
    json_t *m = json_object_get(o, members[i]);
    const char *v;
    size_t n;
    if (m == NULL)
      continue;
    if (!json_is_string(m))
      return 0;
    v = json_string_value(m);
    n = json_string_length(m);
    if (n % 4 == 1)
      return 0;
    for (j = 0; j < n; j++) {
      char ch = v[j];
      if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
        return 0;
    }
  }
  return 1;
}

/* One JWK object: staged, skipped (not a signature key we support: 1), or
 * an error. */
static int add_jwk(agentws_keyset *ks, agentws__key *tmp, size_t *ntmp,
                   json_t *o) {
  json_t *use = json_object_get(o, "use"), *alg = json_object_get(o, "alg");
  json_t *kid = json_object_get(o, "kid"), *kty = json_object_get(o, "kty");
  const char *k;
  cjose_jwk_t *jwk;
  int pinned = -1;
  if (!json_is_object(o) || !json_is_string(kty))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  k = json_string_value(kty);
  if (strcmp(k, "RSA") != 0 && strcmp(k, "EC") != 0 && strcmp(k, "oct") != 0)
    return 1; /* OKP (EdDSA) and others: not verifiable with cjose 0.6 */
  if (use != NULL && (!json_is_string(use) ||
                      strcmp(json_string_value(use), "sig") != 0))
    return 1;
  if (alg != NULL) {
    if (!json_is_string(alg))
      return AGENTWS_ERR_INVALID_ARGUMENT;
    pinned = agentws__alg_from_name(json_string_value(alg),
                                    json_string_length(alg));
    if (pinned < 0)
      return 1; /* an encryption key, or an algorithm we do not verify */
  }
  if (kid != NULL && (!json_is_string(kid) || !kid_ok(json_string_value(kid))))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (!b64url_members_ok(o))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  jwk = cjose_jwk_import_json((cjose_header_t *)o, NULL);
  if (jwk == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (!strong_enough(jwk)) {
    cjose_jwk_release(jwk);
    return AGENTWS_ERR_INVALID_ARGUMENT;
  }
  return stage(ks, tmp, ntmp, jwk, kid != NULL ? json_string_value(kid) : NULL,
               pinned);
}

int agentws_keyset_add_jwks(agentws_keyset *ks, const char *json,
                            size_t len) {
  agentws__key tmp[AGENTWS__MAX_KEYS];
  size_t ntmp = 0, i;
  json_t *doc, *keys;
  int rv = 0;
  if (ks == NULL || json == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (frozen(ks))
    return AGENTWS_ERR_INVALID_STATE;
  doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
  if (!json_is_object(doc)) {
    json_decref(doc);
    return AGENTWS_ERR_INVALID_JSON;
  }
  keys = json_object_get(doc, "keys");
  if (keys == NULL) {
    rv = add_jwk(ks, tmp, &ntmp, doc);
  } else if (!json_is_array(keys)) {
    rv = AGENTWS_ERR_INVALID_JSON;
  } else {
    for (i = 0; i < json_array_size(keys) && rv >= 0; i++)
      rv = add_jwk(ks, tmp, &ntmp, json_array_get(keys, i));
  }
  json_decref(doc);
  if (rv >= 0 && ntmp == 0)
    rv = AGENTWS_ERR_INVALID_ARGUMENT; /* nothing usable in it */
  if (rv < 0) {
    unstage(ks, tmp, ntmp);
    return rv;
  }
  commit(ks, tmp, ntmp);
  return 0;
}

int agentws_keyset_add_jwks_file(agentws_keyset *ks, const char *path) {
  FILE *f;
  char *buf;
  size_t n;
  int rv;
  if (ks == NULL || path == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  f = fopen(path, "rb");
  if (f == NULL)
    return AGENTWS_ERR_NOT_FOUND;
  buf = agentws__mem_malloc(ks->mem, MAX_JWKS_FILE + 1);
  if (buf == NULL) {
    fclose(f);
    return AGENTWS_ERR_NOMEM;
  }
  n = fread(buf, 1, MAX_JWKS_FILE + 1, f);
  rv = ferror(f) ? AGENTWS_ERR_NOT_FOUND
       : n > MAX_JWKS_FILE ? AGENTWS_ERR_TOO_BIG
                           : agentws_keyset_add_jwks(ks, buf, n);
  fclose(f);
  agentws__mem_free(ks->mem, buf);
  return rv;
}
