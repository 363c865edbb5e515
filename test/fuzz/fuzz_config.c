/*
 * libFuzzer target: every config setter that takes a string. An input is
 * lines ('\n'-separated), each one setter call:
 *
 *   OP STRING
 *
 * OP & 15 (mod 13) picks the setter: ws_path, add_allowed_origin,
 * add_subprotocol, jwt_algorithms, jwt_issuer, jwt_audience,
 * jwt_user_claim, jwt_required_scope, token_sources, token_query_param,
 * token_cookie, http_token, or a key id for agentws_keyset_add_secret.
 * OP bit 7 passes NULL instead of STRING, bit 6 a NULL config. STRING
 * is used as a C string (up to its first NUL).
 *
 * Contracts:
 *  - each call returns exactly what an oracle written from the header's
 *    documentation expects (0, AGENTWS_ERR_INVALID_ARGUMENT or
 *    AGENTWS_ERR_OUT_OF_RANGE; never NOMEM here); a NULL config is
 *    INVALID_ARGUMENT;
 *  - a success stores what was given (a list grows by one unless the
 *    entry was there) and changes nothing else; a refusal changes
 *    nothing at all;
 *  - the copy a manager makes holds the same;
 *  - the config stays usable, and every string it accepted works on the
 *    wire: a manager made from it (the original freed right after) must
 *    upgrade, with 101, a handshake to ws_path that offers the last
 *    subprotocol added (which must be the one echoed), sends the last
 *    origin added and carries a token, signed with the first allowed
 *    algorithm, whose claims name the configured issuer, audience, user
 *    claim and scope, in each configured token source (header,
 *    subprotocol, query parameter, cookie) in turn; and /healthz must
 *    answer 200 with the http_token and 401 without it.
 *  - no leak, and the loop closes.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjose/header.h>
#include <cjose/jwk.h>
#include <cjose/jws.h>
#include <jansson.h>
#include <uv.h>

#include "agentws.h"
#include "agentws_config.h"
#include "agentws_keyset.h"
#include "agentws_manager.h"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      abort();                                                                 \
  } while (0)

#define NOPS 13
#define MAX_LINES 64

enum {
  OP_PATH, OP_ORIGIN, OP_PROTO, OP_ALGS, OP_ISSUER, OP_AUDIENCE, OP_CLAIM,
  OP_SCOPE, OP_SOURCES, OP_QUERY, OP_COOKIE, OP_HTTP_TOKEN, OP_KID
};

/* ------------------------------------------------------------ oracles */

static int visible(const char *s) {
  for (; *s != '\0'; s++)
    if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
      return 0;
  return 1;
}

static int no_ctl(const char *s) {
  for (; *s != '\0'; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return 0;
  return 1;
}

/* RFC 9110 5.6.2 tchar. */
static int token_str(const char *s) {
  size_t n = strlen(s), i;
  if (n == 0 || n > 64)
    return 0;
  for (i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') ||
          (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL)))
      return 0;
  }
  return 1;
}

/* "bearer.<token>" entries (any case) carry tokens: never a name. */
static int bearer(const char *s) {
  static const char b[] = "bearer.";
  size_t i;
  for (i = 0; i < 7; i++)
    if (s[i] == '\0' || (s[i] | 0x20) != b[i])
      return 0;
  return 1;
}

static const char *const alg_names[] = {
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"};
static const char *const source_names[] = {"header", "subprotocol", "query",
                                           "cookie"};

/*
 * A comma-separated list of |names| ("a, b"; spaces around an item are
 * dropped, a trailing comma is tolerated, an empty item is not): the
 * indexes in order into |out|, or -1 if the list is not one.
 */
static int parse_list(const char *s, const char *const *names, size_t nnames,
                      int dups_ok, int *out, size_t cap) {
  size_t n = 0, k;
  const char *p = s;
  uint32_t seen = 0;
  if (*s == '\0')
    return -1;
  while (*p != '\0') {
    size_t w = strcspn(p, ","), len = w;
    const char *it = p;
    while (len > 0 && *it == ' ')
      it++, len--;
    while (len > 0 && it[len - 1] == ' ')
      len--;
    for (k = 0; k < nnames; k++)
      if (strlen(names[k]) == len && memcmp(names[k], it, len) == 0)
        break;
    if (k == nnames || (!dups_ok && (seen & (1u << k))))
      return -1;
    seen |= 1u << k;
    if (n < cap)
      out[n] = (int)k;
    n++;
    p += w;
    if (*p == ',')
      p++;
  }
  return (int)n;
}

/* What the setter of |op| must return for |s| (NULL: NULL). */
static int expect(const agentws_config *c, int op, const char *s,
                  size_t nkeys) {
  const int bad = AGENTWS_ERR_INVALID_ARGUMENT;
  int idx[16];
  size_t n = s != NULL ? strlen(s) : 0, i;
  switch (op) {
  case OP_PATH:
    return s != NULL && s[0] == '/' && n <= 255 && visible(s) &&
                   strpbrk(s, "?#") == NULL
               ? 0
               : bad;
  case OP_ORIGIN:
  case OP_PROTO: {
    char *const *list = op == OP_ORIGIN ? c->origins : c->subprotocols;
    size_t len = op == OP_ORIGIN ? c->num_origins : c->num_subprotocols;
    if (s == NULL ||
        (op == OP_ORIGIN ? n == 0 || n > 1024 || !visible(s)
                         : !token_str(s) || bearer(s)))
      return bad;
    for (i = 0; i < len; i++)
      if (strcmp(list[i], s) == 0)
        return 0;
    return len == AGENTWS__MAX_LIST ? AGENTWS_ERR_OUT_OF_RANGE : 0;
  }
  case OP_ALGS:
    return s != NULL && parse_list(s, alg_names, 12, 1, idx, 16) > 0 ? 0
                                                                     : bad;
  case OP_SOURCES:
    return s != NULL && parse_list(s, source_names, 4, 0, idx, 16) > 0 ? 0
                                                                       : bad;
  case OP_ISSUER:
  case OP_AUDIENCE:
    return s == NULL || (n > 0 && n <= 1024 && no_ctl(s)) ? 0 : bad;
  case OP_CLAIM:
    return s != NULL && n > 0 && n <= 255 && no_ctl(s) ? 0 : bad;
  case OP_SCOPE:
    return s == NULL || (n > 0 && n <= 255 && no_ctl(s) &&
                         strchr(s, ' ') == NULL)
               ? 0
               : bad;
  case OP_QUERY:
    return s != NULL && token_str(s) && strpbrk(s, "&%") == NULL ? 0 : bad;
  case OP_COOKIE:
    return s != NULL && token_str(s) ? 0 : bad;
  case OP_HTTP_TOKEN:
    if (n > 1024)
      return AGENTWS_ERR_OUT_OF_RANGE;
    return n == 0 || visible(s) ? 0 : bad;
  default: /* OP_KID: NULL, or 1 .. 255 bytes without control bytes */
    if (s != NULL && (n == 0 || n > 255 || !no_ctl(s)))
      return bad;
    return nkeys == AGENTWS__MAX_KEYS ? AGENTWS_ERR_LIMIT : 0;
  }
}

static int call(agentws_config *c, agentws_keyset *ks, int op,
                const char *s) {
  static const uint8_t secret[32] = {1};
  switch (op) {
  case OP_PATH:
    return agentws_config_set_ws_path(c, s);
  case OP_ORIGIN:
    return agentws_config_add_allowed_origin(c, s);
  case OP_PROTO:
    return agentws_config_add_subprotocol(c, s);
  case OP_ALGS:
    return agentws_config_set_jwt_algorithms(c, s);
  case OP_ISSUER:
    return agentws_config_set_jwt_issuer(c, s);
  case OP_AUDIENCE:
    return agentws_config_set_jwt_audience(c, s);
  case OP_CLAIM:
    return agentws_config_set_jwt_user_claim(c, s);
  case OP_SCOPE:
    return agentws_config_set_jwt_required_scope(c, s);
  case OP_SOURCES:
    return agentws_config_set_token_sources(c, s);
  case OP_QUERY:
    return agentws_config_set_token_query_param(c, s);
  case OP_COOKIE:
    return agentws_config_set_token_cookie(c, s);
  case OP_HTTP_TOKEN:
    return agentws_config_set_http_token(c, s);
  default:
    return agentws_keyset_add_secret(ks, s, secret, sizeof(secret));
  }
}

/* ----------------------------------------------------------- snapshots */

/* Every string-valued option, one slot each (lists joined by '\n'). */
enum { S_PATH, S_ORIGINS, S_PROTOS, S_ALGS, S_ISSUER, S_AUDIENCE, S_CLAIM,
       S_SCOPE, S_SOURCES, S_QUERY, S_COOKIE, S_HTTP_TOKEN, S_COUNT };

typedef struct snap {
  char *v[S_COUNT]; /* NULL for a NULL option */
} snap;

static char *dup_or_null(const char *s) {
  char *d;
  if (s == NULL)
    return NULL;
  d = strdup(s);
  CHECK(d != NULL);
  return d;
}

static char *join(char *const *list, size_t n) {
  size_t len = 1, i;
  char *out;
  for (i = 0; i < n; i++)
    len += strlen(list[i]) + 1;
  out = malloc(len);
  CHECK(out != NULL);
  out[0] = '\0';
  for (i = 0; i < n; i++) {
    strcat(out, list[i]);
    strcat(out, "\n");
  }
  return out;
}

static void take(snap *s, const agentws_config *c) {
  char buf[64];
  size_t i;
  s->v[S_PATH] = dup_or_null(c->ws_path);
  s->v[S_ORIGINS] = join(c->origins, c->num_origins);
  s->v[S_PROTOS] = join(c->subprotocols, c->num_subprotocols);
  snprintf(buf, sizeof(buf), "%lx", (unsigned long)c->auth.algs);
  s->v[S_ALGS] = dup_or_null(buf);
  s->v[S_ISSUER] = dup_or_null(c->auth.issuer);
  s->v[S_AUDIENCE] = dup_or_null(c->auth.audience);
  s->v[S_CLAIM] = dup_or_null(c->auth.user_claim);
  s->v[S_SCOPE] = dup_or_null(c->auth.scope);
  buf[0] = '\0';
  for (i = 0; i < c->auth.num_sources; i++)
    buf[i] = (char)('0' + c->auth.sources[i]);
  buf[c->auth.num_sources] = '\0';
  s->v[S_SOURCES] = dup_or_null(buf);
  s->v[S_QUERY] = dup_or_null(c->auth.query_param);
  s->v[S_COOKIE] = dup_or_null(c->auth.cookie);
  s->v[S_HTTP_TOKEN] = dup_or_null(c->mon.http_token);
}

static void drop_snap(snap *s) {
  size_t i;
  for (i = 0; i < S_COUNT; i++)
    free(s->v[i]);
}

static int same_slot(const snap *a, const snap *b, size_t i) {
  if (a->v[i] == NULL || b->v[i] == NULL)
    return a->v[i] == b->v[i];
  return strcmp(a->v[i], b->v[i]) == 0;
}

/* All slots equal but |except| (-1: none). */
static void check_same(const snap *a, const snap *b, int except) {
  size_t i;
  for (i = 0; i < S_COUNT; i++)
    if ((int)i != except)
      CHECK(same_slot(a, b, i));
}

static int slot_of(int op) { return op == OP_KID ? -1 : op; }

/* After a success: the option holds what was given. */
static void check_stored(const agentws_config *c, int op, const char *s,
                         const snap *before, const snap *after) {
  int idx[16], n;
  size_t i;
  switch (op) {
  case OP_PATH:
    CHECK(strcmp(c->ws_path, s) == 0);
    break;
  case OP_ORIGIN:
  case OP_PROTO: {
    char *const *list = op == OP_ORIGIN ? c->origins : c->subprotocols;
    size_t len = op == OP_ORIGIN ? c->num_origins : c->num_subprotocols;
    int found = 0;
    for (i = 0; i < len; i++)
      found += strcmp(list[i], s) == 0;
    CHECK(found == 1);
    /* Appended, or already there (then nothing changed). */
    CHECK(same_slot(before, after, (size_t)op) ||
          strcmp(list[len - 1], s) == 0);
    break;
  }
  case OP_ALGS: {
    uint32_t mask = 0;
    n = parse_list(s, alg_names, 12, 1, idx, 16);
    for (i = 0; i < (size_t)n && i < 16; i++)
      mask |= 1u << idx[i];
    CHECK(c->auth.algs == mask);
    break;
  }
  case OP_SOURCES:
    n = parse_list(s, source_names, 4, 0, idx, 16);
    CHECK(c->auth.num_sources == (size_t)n);
    for (i = 0; i < (size_t)n; i++)
      CHECK(c->auth.sources[i] == idx[i]);
    break;
  case OP_ISSUER:
  case OP_AUDIENCE:
  case OP_CLAIM:
  case OP_SCOPE:
  case OP_QUERY:
  case OP_COOKIE: {
    const char *v = op == OP_ISSUER     ? c->auth.issuer
                    : op == OP_AUDIENCE ? c->auth.audience
                    : op == OP_CLAIM    ? c->auth.user_claim
                    : op == OP_SCOPE    ? c->auth.scope
                    : op == OP_QUERY    ? c->auth.query_param
                                        : c->auth.cookie;
    CHECK(s == NULL ? v == NULL : v != NULL && strcmp(v, s) == 0);
    break;
  }
  case OP_HTTP_TOKEN:
    CHECK(s == NULL || s[0] == '\0'
              ? c->mon.http_token == NULL
              : c->mon.http_token != NULL && strcmp(c->mon.http_token, s) == 0);
    break;
  default:
    break;
  }
}

/* ------------------------------------------------------------- tokens */

/* Signing keys, one per algorithm family, made once; their public halves
 * (and the secret) form the key set every manager verifies with. */
static cjose_jwk_t *g_oct, *g_rsa, *g_ec[3];
static agentws_keyset *g_keys;

static void add_public(cjose_jwk_t *k) {
  char *pub = cjose_jwk_to_json(k, false, NULL);
  CHECK(pub != NULL);
  CHECK(agentws_keyset_add_jwks(g_keys, pub, strlen(pub)) == 0);
  free(pub);
}

static void init_once(void) {
  static const uint8_t e[] = {1, 0, 1};
  static const cjose_jwk_ec_curve curves[] = {
      CJOSE_JWK_EC_P_256, CJOSE_JWK_EC_P_384, CJOSE_JWK_EC_P_521};
  uint8_t secret[64];
  size_t i;
  if (g_keys != NULL)
    return;
  for (i = 0; i < sizeof(secret); i++)
    secret[i] = (uint8_t)(i * 7 + 3);
  CHECK(agentws_keyset_new(&g_keys) == 0);
  CHECK(agentws_keyset_add_secret(g_keys, NULL, secret, sizeof(secret)) == 0);
  g_oct = cjose_jwk_create_oct_spec(secret, sizeof(secret), NULL);
  g_rsa = cjose_jwk_create_RSA_random(2048, e, sizeof(e), NULL);
  CHECK(g_oct != NULL && g_rsa != NULL);
  add_public(g_rsa);
  for (i = 0; i < 3; i++) {
    g_ec[i] = cjose_jwk_create_EC_random(curves[i], NULL);
    CHECK(g_ec[i] != NULL);
    add_public(g_ec[i]);
  }
}

/* Claims whose names the checks give a meaning of their own. */
static int reserved_claim(const char *c) {
  static const char *const names[] = {"iss", "aud", "exp", "nbf", "iat",
                                      "scope", "scp", "roles"};
  size_t i;
  for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strcmp(c, names[i]) == 0)
      return 1;
  return 0;
}

static int set_str(json_t *o, const char *k, const char *v) {
  json_t *s = json_string(v); /* NULL for a string that is not UTF-8 */
  return s != NULL && json_object_set_new(o, k, s) == 0;
}

/*
 * A token the config must accept, signed with its first allowed
 * algorithm; NULL when the config's strings cannot be put in claims
 * (not UTF-8, or a user claim that collides with a checked one).
 */
static char *mint(const agentws_config *c) {
  const agentws__auth_cfg *a = &c->auth;
  cjose_jwk_t *key;
  cjose_header_t *h;
  cjose_jws_t *jws;
  json_t *claims;
  const char *ser = NULL;
  char *payload, *tok = NULL;
  int alg, ok;
  for (alg = 0; alg < 12 && !(a->algs & (1u << alg)); alg++)
    ;
  if (alg == 12 || reserved_claim(a->user_claim))
    return NULL;
  key = alg < 3 ? g_oct : alg < 9 ? g_rsa : g_ec[alg - 9];
  claims = json_object();
  ok = set_str(claims, "sub", "alice") &&
       set_str(claims, a->user_claim, "alice") &&
       json_object_set_new(claims, "exp",
                           json_integer((json_int_t)time(NULL) + 3600)) == 0 &&
       (a->issuer == NULL || set_str(claims, "iss", a->issuer)) &&
       (a->audience == NULL || set_str(claims, "aud", a->audience)) &&
       (a->scope == NULL || set_str(claims, "scope", a->scope));
  payload = ok ? json_dumps(claims, JSON_COMPACT) : NULL;
  json_decref(claims);
  if (payload == NULL)
    return NULL;
  h = cjose_header_new(NULL);
  CHECK(h != NULL && cjose_header_set(h, CJOSE_HDR_ALG, alg_names[alg], NULL));
  jws = cjose_jws_sign(key, h, (const uint8_t *)payload, strlen(payload),
                       NULL);
  CHECK(jws != NULL && cjose_jws_export(jws, &ser, NULL));
  tok = strdup(ser);
  CHECK(tok != NULL);
  cjose_jws_release(jws);
  cjose_header_release(h);
  free(payload);
  return tok;
}

/* ---------------------------------------------------------- the wire */

#define MAX_CONNS 6

typedef struct conn {
  int fd;            /* our end */
  char resp[8192];   /* what came back */
  size_t len;
  int want;          /* expected status */
  char *proto;       /* subprotocol that must be echoed, or NULL */
} conn;

static void append(char *buf, size_t cap, size_t *len, const char *s) {
  size_t n = strlen(s);
  CHECK(*len + n < cap);
  memcpy(buf + *len, s, n + 1);
  *len += n;
}

static void open_conn(agentws_manager *m, conn *cn, const char *req,
                      size_t len) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  cn->fd = sv[1];
  cn->len = 0;
  CHECK(agentws_manager_adopt(m, sv[0], (const uint8_t *)req, len, NULL) ==
        0);
}

/* A WebSocket handshake with the token in source |src| (-1: none). */
static void ws_request(const agentws_config *c, const char *tok, int src,
                       char *req, size_t cap, size_t *len) {
  const char *proto = c->subprotocols[c->num_subprotocols - 1];
  *len = 0;
  append(req, cap, len, "GET ");
  append(req, cap, len, c->ws_path);
  if (src == AGENTWS__TOKEN_QUERY) {
    append(req, cap, len, "?");
    append(req, cap, len, c->auth.query_param);
    append(req, cap, len, "=");
    append(req, cap, len, tok);
  }
  append(req, cap, len,
         " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
         "Connection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ");
  append(req, cap, len, proto);
  if (src == AGENTWS__TOKEN_SUBPROTOCOL) {
    append(req, cap, len, ", bearer.");
    append(req, cap, len, tok);
  }
  append(req, cap, len, "\r\n");
  if (c->num_origins > 0) {
    append(req, cap, len, "Origin: ");
    append(req, cap, len, c->origins[c->num_origins - 1]);
    append(req, cap, len, "\r\n");
  }
  if (src == AGENTWS__TOKEN_HEADER) {
    append(req, cap, len, "Authorization: Bearer ");
    append(req, cap, len, tok);
    append(req, cap, len, "\r\n");
  }
  if (src == AGENTWS__TOKEN_COOKIE) {
    append(req, cap, len, "Cookie: theme=dark; ");
    append(req, cap, len, c->auth.cookie);
    append(req, cap, len, "=");
    append(req, cap, len, tok);
    append(req, cap, len, "\r\n");
  }
  append(req, cap, len, "\r\n");
}

/* The response head must be |want| (and echo the subprotocol). */
static void check_response(const conn *cn, const char *req) {
  char want[32], hdr[128];
  const char *end = strstr(cn->resp, "\r\n\r\n");
  int ok;
  snprintf(want, sizeof(want), "HTTP/1.1 %d ", cn->want);
  ok = end != NULL && strncmp(cn->resp, want, strlen(want)) == 0;
  if (ok && cn->want == 101 && cn->proto != NULL) {
    snprintf(hdr, sizeof(hdr), "\r\nSec-WebSocket-Protocol: %s\r\n",
             cn->proto);
    ok = strstr(cn->resp, hdr) != NULL && strstr(cn->resp, hdr) < end;
  }
  if (!ok) {
    fprintf(stderr, "fuzz_config: wanted %d%s%s for\n%s\ngot\n%.*s\n",
            cn->want, cn->proto != NULL ? " with " : "",
            cn->proto != NULL ? cn->proto : "", req,
            end != NULL ? (int)(end - cn->resp) : (int)cn->len, cn->resp);
    abort();
  }
}

/* A manager from |c| (which is freed at once: the copy must suffice). */
static void use(agentws_config *c) {
  static char req[8192];
  conn conns[MAX_CONNS];
  char *reqs[MAX_CONNS];
  size_t lens[MAX_CONNS];
  size_t nconns = 0, len, i;
  agentws_manager *m = NULL;
  agentws_config *copy = NULL;
  const char *proto = c->subprotocols[c->num_subprotocols - 1];
  char *tok;
  uv_loop_t loop;
  snap a, b;
  int round;

  /* The manager's copy holds the same. */
  CHECK(agentws__config_copy(&copy, c) == 0);
  take(&a, c);
  take(&b, copy);
  check_same(&a, &b, -1);
  drop_snap(&a);
  drop_snap(&b);
  agentws_config_free(copy);

  CHECK(agentws_config_set_jwt_keys(c, g_keys) == 0);
  tok = mint(c);
  for (i = 0; tok != NULL && i < c->auth.num_sources; i++) {
    ws_request(c, tok, c->auth.sources[i], req, sizeof(req), &len);
    if (len > c->max_header_bytes)
      continue;
    conns[nconns].want = 101;
    conns[nconns].proto = dup_or_null(proto);
    reqs[nconns] = dup_or_null(req);
    lens[nconns++] = len;
  }
  /* /healthz with and without the token (unless it is the WS path). */
  for (round = 0; round < 2 && strcmp(c->ws_path, "/healthz") != 0 &&
                  (round == 0 || c->mon.http_token != NULL);
       round++) {
    len = 0;
    append(req, sizeof(req), &len, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    if (round == 0 && c->mon.http_token != NULL) {
      append(req, sizeof(req), &len, "Authorization: Bearer ");
      append(req, sizeof(req), &len, c->mon.http_token);
      append(req, sizeof(req), &len, "\r\n");
    }
    append(req, sizeof(req), &len, "\r\n");
    conns[nconns].want = round == 0 ? 200 : 401;
    conns[nconns].proto = NULL;
    reqs[nconns] = dup_or_null(req);
    lens[nconns++] = len;
  }
  free(tok);

  uv_loop_init(&loop);
  CHECK(agentws_manager_new(&m, &loop, c, NULL, NULL) == 0);
  agentws_config_free(c); /* the manager holds a copy */
  for (i = 0; i < nconns; i++)
    open_conn(m, &conns[i], reqs[i], lens[i]);
  for (round = 0; round < 8; round++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    for (i = 0; i < nconns; i++) {
      conn *cn = &conns[i];
      ssize_t n;
      while (cn->len < sizeof(cn->resp) - 1 &&
             (n = read(cn->fd, cn->resp + cn->len,
                       sizeof(cn->resp) - 1 - cn->len)) > 0)
        cn->len += (size_t)n;
      cn->resp[cn->len] = '\0';
    }
  }
  for (i = 0; i < nconns; i++) {
    check_response(&conns[i], reqs[i]);
    free(reqs[i]);
    close(conns[i].fd);
    free(conns[i].proto);
  }
  agentws_manager_close(m, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  agentws_manager_free(m);
  CHECK(uv_loop_close(&loop) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  agentws_config *c = NULL;
  agentws_keyset *ks = NULL;
  size_t start, nlines = 0;
  init_once();
  if (size > 8192)
    return 0;
  CHECK(agentws_config_new(&c) == 0);
  CHECK(agentws_keyset_new(&ks) == 0);
  for (start = 0; start < size && nlines < MAX_LINES; nlines++) {
    const uint8_t *nl = memchr(data + start, '\n', size - start);
    size_t end = nl != NULL ? (size_t)(nl - data) : size;
    if (end > start) {
      uint8_t opb = data[start];
      int op = (opb & 15) % NOPS, want, rv;
      size_t n = end - start - 1;
      char *str = malloc(n + 1);
      const char *arg = (opb & 0x80) ? NULL : str;
      snap before, after;
      CHECK(str != NULL);
      memcpy(str, data + start + 1, n);
      str[n] = '\0';
      if (opb & 0x40) {
        CHECK(call(NULL, NULL, op, arg) == AGENTWS_ERR_INVALID_ARGUMENT);
      } else {
        size_t nkeys = (size_t)agentws_keyset_count(ks);
        want = expect(c, op, arg, nkeys);
        take(&before, c);
        rv = call(c, ks, op, arg);
        take(&after, c);
        CHECK(rv == want);
        if (rv == 0)
          check_stored(c, op, arg, &before, &after);
        check_same(&before, &after, rv == 0 ? slot_of(op) : -1);
        if (op == OP_KID)
          CHECK((size_t)agentws_keyset_count(ks) == nkeys + (rv == 0));
        drop_snap(&before);
        drop_snap(&after);
      }
      free(str);
    }
    start = end + 1;
  }
  agentws_keyset_free(ks);
  use(c); /* frees c */
  return 0;
}
