/*
 * libFuzzer target: the token path. An input is
 *
 *   FLAGS TOKEN '\n' REST
 *
 * FLAGS (one byte) picks the policy (issuer/audience, scope, user claim,
 * exp optional) and a kid for the minted token. TOKEN goes through
 * agentws__jwt_verify() against a fixed key set (an HS256 secret, an RSA
 * and an EC public key, built once) and through a fresh cache twice. REST
 * is used three ways: as a JWKS document for agentws_keyset_add_jwks()
 * (then TOKEN is verified against that set too), as the claims of a token
 * signed here with the HS256 secret (so the claim checks are reached past
 * the signature), and as an HTTP request head whose token, if
 * agentws__token_find() finds one, is verified as well.
 *
 * Besides "no crash, no leak" it checks the contracts: a success has a
 * user and claims and status 0; a refusal is 401 or 403 with a refusal
 * counter, hands out nothing, and 403 means only "scope missing"; the
 * cache answers what a full verification answers; an add_jwks error
 * leaves the set unchanged; a found token lies inside the request.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cjose/header.h>
#include <cjose/jwk.h>
#include <cjose/jws.h>
#include <cjose/util.h>
#include <jansson.h>

#include "agentws_auth.h"
#include "agentws_jwt.h"
#include "agentws_keyset.h"
#include "../unit/jwt_fixtures.h"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      abort();                                                                 \
  } while (0)

#define LEN(s) (sizeof(s) - 1)
#define MAX_HDRS 16

static agentws_keyset *g_keys;  /* hs1, rsa1, ec1 */
static cjose_jwk_t *g_hs1;      /* the HS256 secret, for minting */
static agentws__auth_cfg g_src; /* every token source */

static const agentws__mem *mem(void) { return agentws__mem_default(); }

/*
 * libcjose is not built with ASan, so a read past one of its buffers goes
 * unseen. With FUZZ_JWT_FENCE=1 in the environment its allocator (which
 * cjose also hands to jansson) is replaced by one that ends every block
 * at a PROT_NONE page, so such a read faults. About 15 times slower, so
 * off by default (CI); run it that way now and then.
 */
typedef struct fence_hdr {
  void *base;
  size_t map_len, size, pad;
} fence_hdr;

static void *fence_alloc(size_t n) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t body = (n + 15) & ~(size_t)15;
  size_t pages = (body + sizeof(fence_hdr) + page - 1) / page;
  uint8_t *base = mmap(NULL, (pages + 1) * page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  fence_hdr *h;
  CHECK(base != MAP_FAILED);
  CHECK(mprotect(base + pages * page, page, PROT_NONE) == 0);
  h = (fence_hdr *)(void *)(base + pages * page - body - sizeof(fence_hdr));
  h->base = base;
  h->map_len = (pages + 1) * page;
  h->size = n;
  return h + 1;
}

static void fence_free(void *p) {
  fence_hdr *h;
  if (p == NULL)
    return;
  h = (fence_hdr *)p - 1;
  CHECK(munmap(h->base, h->map_len) == 0);
}

static void *fence_realloc(void *p, size_t n) {
  void *q = fence_alloc(n);
  if (p != NULL) {
    size_t old = ((fence_hdr *)p - 1)->size;
    memcpy(q, p, old < n ? old : n);
    fence_free(p);
  }
  return q;
}

static void init_once(void) {
  if (g_keys != NULL)
    return;
  if (getenv("FUZZ_JWT_FENCE") != NULL)
    cjose_set_alloc_funcs(fence_alloc, fence_realloc, fence_free);
  CHECK(agentws_keyset_new(&g_keys) == 0);
  CHECK(agentws_keyset_add_secret(g_keys, "hs1",
                                  (const uint8_t *)JWTF_HS_SECRET,
                                  LEN(JWTF_HS_SECRET)) == 0);
  CHECK(agentws_keyset_add_pem(g_keys, "rsa1", JWTF_RSA1_PUB,
                               LEN(JWTF_RSA1_PUB)) == 0);
  CHECK(agentws_keyset_add_pem(g_keys, "ec1", JWTF_EC256_PUB,
                               LEN(JWTF_EC256_PUB)) == 0);
  g_hs1 = cjose_jwk_create_oct_spec((const uint8_t *)JWTF_HS_SECRET,
                                    LEN(JWTF_HS_SECRET), NULL);
  CHECK(g_hs1 != NULL);
  CHECK(agentws__auth_cfg_init(&g_src, mem()) == 0);
  g_src.sources[0] = AGENTWS__TOKEN_COOKIE;
  g_src.sources[1] = AGENTWS__TOKEN_QUERY;
  g_src.sources[2] = AGENTWS__TOKEN_SUBPROTOCOL;
  g_src.sources[3] = AGENTWS__TOKEN_HEADER;
  g_src.num_sources = 4;
}

static agentws__jwt_policy policy(uint8_t flags) {
  agentws__jwt_policy p;
  memset(&p, 0, sizeof(p));
  p.algs = (1u << AGENTWS__ALG_COUNT) - 1u;
  if (flags & 1) {
    p.issuer = JWTF_ISS;
    p.audience = JWTF_AUD;
  }
  p.scope = (flags & 2) ? "write" : NULL;
  p.user_claim = (flags & 4) ? "email" : "sub";
  p.leeway_s = (flags & 8) ? 0 : 30;
  p.require_exp = (flags & 16) == 0;
  return p;
}

/* The contract of one verification result. */
static void check_result(int rv, const agentws__jwt_result *r) {
  if (rv == 0) {
    CHECK(r->status == 0);
    CHECK(r->stat == AGENTWS_STAT_AUTH_ACCEPTED);
    CHECK(r->user != NULL && r->user[0] != '\0' && strlen(r->user) <= 255);
    CHECK(r->claims != NULL && r->claims[0] == '{');
    CHECK(r->exp >= 0);
    return;
  }
  CHECK(rv == 401 || rv == 403);
  CHECK(r->status == rv);
  CHECK(r->user == NULL && r->claims == NULL);
  CHECK(r->stat >= AGENTWS_STAT_AUTH_MISSING_TOKEN &&
        r->stat <= AGENTWS_STAT_AUTH_FORBIDDEN);
  CHECK((rv == 403) == (r->stat == AGENTWS_STAT_AUTH_FORBIDDEN));
}

static int same(int rv1, const agentws__jwt_result *a, int rv2,
                const agentws__jwt_result *b) {
  if (rv1 != rv2 || a->stat != b->stat)
    return 0;
  if (rv1 != 0)
    return 1;
  return strcmp(a->user, b->user) == 0 && strcmp(a->claims, b->claims) == 0 &&
         a->exp == b->exp;
}

/* Verifies |tok| directly and through a fresh cache (twice: the second
 * may be a hit), checking all three agree. */
static void verify_all(const agentws_keyset *ks, const agentws__jwt_policy *p,
                       const char *tok, size_t len) {
  agentws__jwt_result r0, r1, r2;
  agentws__jwt_cache c;
  int rv0, rv1, rv2;
  rv0 = agentws__jwt_verify(mem(), ks, p, tok, len, JWTF_NOW, &r0);
  check_result(rv0, &r0);
  agentws__jwt_cache_init(&c, mem(), 2);
  rv1 = agentws__jwt_check(&c, ks, p, tok, len, JWTF_NOW, &r1);
  check_result(rv1, &r1);
  rv2 = agentws__jwt_check(&c, ks, p, tok, len, JWTF_NOW, &r2);
  check_result(rv2, &r2);
  CHECK(same(rv0, &r0, rv1, &r1));
  CHECK(same(rv0, &r0, rv2, &r2));
  CHECK(c.count <= 1);
  CHECK(rv0 != 0 || len > AGENTWS__MAX_TOKEN || c.hits == 1);
  agentws__jwt_cache_free(&c);
  agentws__jwt_result_clear(mem(), &r0);
  agentws__jwt_result_clear(mem(), &r1);
  agentws__jwt_result_clear(mem(), &r2);
}

/* REST as claims, signed with the HS256 secret. */
static void fuzz_claims(uint8_t flags, const agentws__jwt_policy *p,
                        const uint8_t *rest, size_t n) {
  cjose_header_t *h;
  cjose_jws_t *jws;
  const char *ser = NULL;
  if (n == 0)
    return;
  h = cjose_header_new(NULL);
  CHECK(h != NULL);
  CHECK(cjose_header_set(h, CJOSE_HDR_ALG, CJOSE_HDR_ALG_HS256, NULL));
  if (flags & 32)
    CHECK(cjose_header_set(h, CJOSE_HDR_KID, "hs1", NULL));
  jws = cjose_jws_sign(g_hs1, h, rest, n, NULL);
  if (jws != NULL && cjose_jws_export(jws, &ser, NULL))
    verify_all(g_keys, p, ser, strlen(ser));
  cjose_jws_release(jws);
  cjose_header_release(h);
}

/* REST as a key set document; TOKEN verified against what it gave. */
static void fuzz_jwks(const agentws__jwt_policy *p, const char *tok,
                      size_t tlen, const uint8_t *rest, size_t n) {
  agentws_keyset *ks = NULL;
  int rv;
  CHECK(agentws_keyset_new(&ks) == 0);
  CHECK(agentws_keyset_add_secret(ks, "pre", (const uint8_t *)JWTF_HS_SECRET2,
                                  LEN(JWTF_HS_SECRET2)) == 0);
  rv = agentws_keyset_add_jwks(ks, (const char *)rest, n);
  CHECK(rv == 0 || rv == AGENTWS_ERR_INVALID_JSON ||
        rv == AGENTWS_ERR_INVALID_ARGUMENT || rv == AGENTWS_ERR_LIMIT);
  if (rv == 0) {
    size_t i;
    CHECK(agentws_keyset_count(ks) > 1 &&
          agentws_keyset_count(ks) <= AGENTWS__MAX_KEYS);
    for (i = 0; i < ks->n; i++) {
      CHECK(ks->keys[i].jwk != NULL);
      CHECK(ks->keys[i].pinned >= -1 &&
            ks->keys[i].pinned < AGENTWS__ALG_COUNT);
    }
    verify_all(ks, p, tok, tlen);
  } else {
    CHECK(agentws_keyset_count(ks) == 1); /* all or nothing */
  }
  agentws_keyset_free(ks);
}

/* REST as a request head; a token found in it is verified too. */
static void fuzz_head(const agentws__jwt_policy *p, const uint8_t *rest,
                      size_t n) {
  agentws__http_header hdrs[MAX_HDRS];
  agentws__http_request req;
  const char *buf = (const char *)rest, *tok = NULL;
  size_t len = 0;
  int rc;
  memset(&req, 0, sizeof(req));
  req.headers = hdrs;
  req.num_headers = MAX_HDRS;
  rc = agentws__http_parse_request(buf, n, &req);
  if (rc <= 0)
    return;
  if (agentws__token_find(&g_src, &req, &tok, &len) != 0)
    return;
  CHECK(len > 0);
  CHECK(tok >= buf && len <= (size_t)rc && (size_t)(tok - buf) <= (size_t)rc - len);
  verify_all(g_keys, p, tok, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nl, *rest;
  const char *tok;
  size_t tlen, rlen;
  uint8_t flags;
  agentws__jwt_policy p;
  init_once();
  if (size == 0)
    return 0;
  flags = data[0];
  p = policy(flags);
  tok = (const char *)data + 1;
  nl = memchr(data + 1, '\n', size - 1);
  tlen = nl != NULL ? (size_t)(nl - (data + 1)) : size - 1;
  rest = nl != NULL ? nl + 1 : data + size;
  rlen = (size_t)(data + size - rest);

  verify_all(g_keys, &p, tok, tlen);
  verify_all(NULL, &p, tok, tlen);
  fuzz_claims(flags, &p, rest, rlen);
  fuzz_jwks(&p, tok, tlen, rest, rlen);
  fuzz_head(&p, rest, rlen);
  return 0;
}
