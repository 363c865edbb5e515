/*
 * jwt-verify: the cost of one JWT verification, with and without the
 * verification cache, for HS256, RS256 and ES256.
 *
 * For each algorithm a fresh key is generated (cjose: a random 256-bit
 * secret, RSA 2048, EC P-256), N tokens are signed with it (sub u0..uN-1,
 * iat now, exp now + 1 h), and the verifier's key set is built from the
 * key's JWK: the public part for RSA and EC, the secret for HS256 (an
 * HMAC key has no public part). Then, round-robin over the N tokens:
 *
 *   verify  agentws__jwt_verify(): signature (cjose) and claims (jansson),
 *           what every handshake costs with --jwt-cache-size 0;
 *   cached  agentws__jwt_check() with a warm cache (every token verified
 *           once before timing): SHA-256 of the token, a map lookup, and
 *           copies of the user id and the claims.
 *
 * Each is timed R times for at least T seconds; the median and the minimum
 * per call are reported. Every call must accept its token, or the run
 * fails. Linked with the library's objects (internal symbols).
 *
 * Output: one JSON line per algorithm on stdout.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjose/header.h>
#include <cjose/jwk.h>
#include <cjose/jws.h>
#include <cjose/util.h>

#include "agentws_jwt.h"
#include "agentws_keyset.h"
#include "agentws_mem.h"

#define MAX_REPS 101
#define MAX_TOKENS 100000

struct opts {
  int tokens;      /* distinct tokens, round-robin */
  int reps;        /* timed repetitions per measurement */
  double min_time; /* seconds per repetition, at least */
};

struct alg_case {
  const char *name;     /* "HS256" */
  const char *hdr_alg;  /* CJOSE_HDR_ALG_* */
  cjose_jwk_t *jwk;     /* the signing key */
  agentws_keyset *ks;   /* the verifier's keys */
  char **toks;          /* signed tokens */
  size_t *lens;         /* their lengths */
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_s(void) {
  return (int64_t)time(NULL);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void die(const char *what, const char *detail) {
  fprintf(stderr, "jwt-verify: %s%s%s\n", what, detail ? ": " : "",
          detail ? detail : "");
  exit(1);
}

/* ---- keys and tokens */

static cjose_jwk_t *make_key(const char *name) {
  static const uint8_t e[] = {0x01, 0x00, 0x01}; /* 65537 */
  cjose_err err;
  cjose_jwk_t *jwk = NULL;
  if (strcmp(name, "HS256") == 0) {
    jwk = cjose_jwk_create_oct_random(256, &err);
  } else if (strcmp(name, "RS256") == 0) {
    jwk = cjose_jwk_create_RSA_random(2048, e, sizeof(e), &err);
  } else {
    jwk = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err);
  }
  if (jwk == NULL) {
    die("cannot generate a key", err.message);
  }
  return jwk;
}

/* The verifier's key set from the key's JWK JSON (public part, or the
 * secret for an HMAC key), through the library's JWKS import. */
static agentws_keyset *make_keyset(const struct alg_case *ac) {
  cjose_err err;
  int secret = strcmp(ac->name, "HS256") == 0;
  char *json = cjose_jwk_to_json(ac->jwk, secret, &err);
  agentws_keyset *ks = NULL;
  int rv;
  if (json == NULL) {
    die("cjose_jwk_to_json", err.message);
  }
  if (agentws_keyset_new(&ks) != 0) {
    die("agentws_keyset_new", NULL);
  }
  rv = agentws_keyset_add_jwks(ks, json, strlen(json));
  cjose_get_dealloc()(json);
  if (rv != 0) {
    die("agentws_keyset_add_jwks", agentws_strerror(rv));
  }
  return ks;
}

static void make_tokens(struct alg_case *ac, int n) {
  cjose_err err;
  cjose_header_t *hdr = cjose_header_new(&err);
  int64_t now = wall_s();
  int i;
  if (hdr == NULL || !cjose_header_set(hdr, CJOSE_HDR_ALG, ac->hdr_alg, &err) ||
      !cjose_header_set(hdr, "typ", "JWT", &err)) {
    die("cjose header", err.message);
  }
  ac->toks = calloc((size_t)n, sizeof(*ac->toks));
  ac->lens = calloc((size_t)n, sizeof(*ac->lens));
  if (ac->toks == NULL || ac->lens == NULL) {
    die("out of memory", NULL);
  }
  for (i = 0; i < n; i++) {
    char payload[128];
    const char *ser = NULL;
    cjose_jws_t *jws;
    int len = snprintf(payload, sizeof(payload),
                       "{\"sub\":\"u%d\",\"iat\":%lld,\"exp\":%lld}", i,
                       (long long)now, (long long)(now + 3600));
    jws = cjose_jws_sign(ac->jwk, hdr, (const uint8_t *)payload, (size_t)len, &err);
    if (jws == NULL || !cjose_jws_export(jws, &ser, &err)) {
      die("cjose_jws_sign", err.message);
    }
    ac->lens[i] = strlen(ser);
    ac->toks[i] = malloc(ac->lens[i] + 1);
    if (ac->toks[i] == NULL) {
      die("out of memory", NULL);
    }
    memcpy(ac->toks[i], ser, ac->lens[i] + 1);
    cjose_jws_release(jws); /* owns |ser| */
  }
  cjose_header_release(hdr);
}

/* ---- timing */

static agentws__jwt_policy policy(void) {
  agentws__jwt_policy pol;
  memset(&pol, 0, sizeof(pol));
  pol.algs = AGENTWS__DEFAULT_ALGS;
  pol.user_claim = "sub";
  pol.leeway_s = 30;
  pol.require_exp = 1;
  return pol;
}

/* One call, checked: every token must be accepted as its own user. */
static void one(const struct alg_case *ac, agentws__jwt_cache *cache,
                const agentws__jwt_policy *pol, int i, int64_t now) {
  const agentws__mem *mem = agentws__mem_default();
  agentws__jwt_result r;
  int rv = cache != NULL
               ? agentws__jwt_check(cache, ac->ks, pol, ac->toks[i], ac->lens[i], now, &r)
               : agentws__jwt_verify(mem, ac->ks, pol, ac->toks[i], ac->lens[i], now, &r);
  if (rv != 0 || r.user == NULL || r.user[0] != 'u') {
    fprintf(stderr, "jwt-verify: %s token %d refused (%d, stat %d)\n", ac->name,
            i, rv, r.stat);
    exit(1);
  }
  agentws__jwt_result_clear(mem, &r);
}

/* Per-call microseconds of R repetitions, each >= min_time seconds
 * (checked every 64 calls); sorted into |us|. */
static void time_calls(const struct alg_case *ac, agentws__jwt_cache *cache,
                       const struct opts *o, double *us) {
  agentws__jwt_policy pol = policy();
  int64_t now = wall_s();
  int rep, i = 0;
  for (rep = 0; rep < o->reps; rep++) {
    double t0 = now_s(), t1;
    long calls = 0;
    do {
      int k;
      for (k = 0; k < 64; k++) {
        one(ac, cache, &pol, i, now);
        i = i + 1 == o->tokens ? 0 : i + 1;
      }
      calls += 64;
      t1 = now_s();
    } while (t1 - t0 < o->min_time && calls < 100000000L);
    us[rep] = (t1 - t0) / (double)calls * 1e6;
  }
  qsort(us, (size_t)o->reps, sizeof(*us), cmp_double);
}

static int parse_opts(int argc, char **argv, struct opts *o) {
  enum { O_TOKENS = 256, O_REPS, O_MIN_TIME, O_HELP };
  static const struct option longopts[] = {
      {"tokens", required_argument, NULL, O_TOKENS},
      {"reps", required_argument, NULL, O_REPS},
      {"min-time", required_argument, NULL, O_MIN_TIME},
      {"help", no_argument, NULL, O_HELP},
      {NULL, 0, NULL, 0}};
  int ch;
  o->tokens = 1000;
  o->reps = 5;
  o->min_time = 0.2;
  while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    char *end;
    errno = 0;
    switch (ch) {
    case O_TOKENS: o->tokens = (int)strtol(optarg, &end, 10); break;
    case O_REPS: o->reps = (int)strtol(optarg, &end, 10); break;
    case O_MIN_TIME: o->min_time = strtod(optarg, &end); break;
    case O_HELP:
      printf("usage: jwt-verify [--tokens N (1000)] [--reps R (5)] [--min-time S (0.2)]\n");
      exit(0);
    default: return -1;
    }
    if (errno != 0 || *end != '\0') {
      return -1;
    }
  }
  if (optind != argc || o->tokens < 1 || o->tokens > MAX_TOKENS || o->reps < 1 ||
      o->reps > MAX_REPS || !(o->min_time >= 0.001 && o->min_time <= 60)) {
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  struct alg_case cases[3];
  struct opts o;
  double verify_us[MAX_REPS], cached_us[MAX_REPS];
  size_t c;
  int i;
  if (parse_opts(argc, argv, &o) != 0) {
    fprintf(stderr, "usage: jwt-verify [--tokens N (1..%d)] [--reps R (1..%d)]"
                    " [--min-time S (0.001..60)]\n", MAX_TOKENS, MAX_REPS);
    return 2;
  }
  memset(cases, 0, sizeof(cases));
  cases[0].name = "HS256";
  cases[0].hdr_alg = CJOSE_HDR_ALG_HS256;
  cases[1].name = "RS256";
  cases[1].hdr_alg = CJOSE_HDR_ALG_RS256;
  cases[2].name = "ES256";
  cases[2].hdr_alg = CJOSE_HDR_ALG_ES256;
  for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    struct alg_case *ac = &cases[c];
    agentws__jwt_cache cache;
    agentws__jwt_policy pol = policy();
    int64_t now = wall_s();
    ac->jwk = make_key(ac->name);
    ac->ks = make_keyset(ac);
    make_tokens(ac, o.tokens);

    time_calls(ac, NULL, &o, verify_us);

    agentws__jwt_cache_init(&cache, agentws__mem_default(), (size_t)o.tokens);
    for (i = 0; i < o.tokens; i++) {
      one(ac, &cache, &pol, i, now); /* warm: each token verified once */
    }
    cache.hits = cache.misses = 0;
    time_calls(ac, &cache, &o, cached_us);
    if (cache.misses != 0) {
      fprintf(stderr, "jwt-verify: %s: %llu cache misses while warm\n", ac->name,
              (unsigned long long)cache.misses);
      return 1;
    }
    printf("{\"alg\":\"%s\",\"tokens\":%d,\"token_bytes\":%zu,\"reps\":%d,"
           "\"min_time_s\":%.3f,\"verify_us\":%.3f,\"verify_us_min\":%.3f,"
           "\"verify_us_max\":%.3f,\"cached_us\":%.3f,\"cached_us_min\":%.3f,"
           "\"cached_us_max\":%.3f,\"verify_per_cached\":%.1f,\"cache_hits\":%llu}\n",
           ac->name, o.tokens, ac->lens[0], o.reps, o.min_time,
           verify_us[o.reps / 2], verify_us[0], verify_us[o.reps - 1],
           cached_us[o.reps / 2], cached_us[0], cached_us[o.reps - 1],
           cached_us[o.reps / 2] > 0 ? verify_us[o.reps / 2] / cached_us[o.reps / 2] : 0.0,
           (unsigned long long)cache.hits);
    fflush(stdout);
    agentws__jwt_cache_free(&cache);
    for (i = 0; i < o.tokens; i++) {
      free(ac->toks[i]);
    }
    free(ac->toks);
    free(ac->lens);
    agentws_keyset_free(ac->ks);
    cjose_jwk_release(ac->jwk);
  }
  return 0;
}
