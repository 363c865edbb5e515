/*
 * libFuzzer target: a connection's way in, end to end, through a real
 * manager on a real loop (one end of a socketpair adopted): the head
 * collected across reads, routing (WebSocket path, /healthz, /readyz,
 * /metrics behind an http_token, the host's on_http pages, 404), the
 * handshake, auth (dev mode ?user=, a JWT from the Authorization header,
 * a bearer.* subprotocol, the query or a cookie, an on_authenticate hook
 * answering at once or later), resume parameters on the URL
 * (?epoch=&last_seq=) against a backlog the target emitted first, the
 * welcome and the replay, then client messages of the protocol (resume,
 * ack, ping, join, leave, refresh, others) and live events.
 *
 * An input is
 *
 *   FLAGS SPLIT HEAD [0x00 MESSAGE]*
 *
 * FLAGS: bits 0-1 auth (dev, JWT, hook answering now, hook answering a
 * turn later), bit 2 an Origin allow-list and the "ag-ui" subprotocol,
 * bit 3 an http_token, bit 4 max_header_bytes 256, bit 5 raw mode (echo),
 * bit 6 the bytes after HEAD go to the socket as they are instead of as
 * framed messages, bit 7 live events once the connection is up. SPLIT:
 * how many bytes of HEAD are handed to adopt (0: all); the rest is
 * written to the socket. Each MESSAGE is sent as one masked text frame
 * (binary if it starts with 0x02). In HEAD and messages "@E" becomes the
 * user's stream epoch, "@R" the room's, "@T" a valid token for "alice".
 *
 * Contracts:
 *  - the answer is what the request deserves: the target parses the head
 *    itself and runs the handshake check with the manager's policy, so a
 *    malformed head gets 400, a too large one 431, a refused handshake
 *    exactly its status, a valid one 101 or an auth refusal; an
 *    incomplete head under the limit gets nothing (yet); adopt refuses
 *    only a head over max_header_bytes;
 *  - every response head is well formed; a refusal or page carries a
 *    Content-Length equal to its body (none for HEAD), Connection: close
 *    and the headers its status needs (401 WWW-Authenticate, 405 Allow,
 *    426 Sec-WebSocket-Version); endpoint bodies are JSON where they say;
 *  - a 101 carries the right Sec-WebSocket-Accept, the subprotocol the
 *    handshake check selected (never a bearer.* entry), no extensions;
 *  - what follows is well-formed server frames (unmasked, final, no RSV
 *    bits, valid opcodes, close codes and UTF-8); in protocol mode every
 *    text frame is a JSON object with a "type", the first is welcome;
 *    per stream every event's seq is higher than the last one's, and
 *    consecutive unless a gap came in between (then it is the gap's
 *    to + 1); a gap is announced exactly when a welcome or resumed says
 *    events were missed, with that many; "recovered" implies none missed;
 *    no event was ever sent that was not emitted; in raw mode the echoes
 *    are the messages sent, in order;
 *  - nothing leaks and the loop closes.
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
#include "agentws_handshake.h"
#include "agentws_http.h"
#include "agentws_manager.h"
#include "agentws_utf8.h"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      fail(#cond, __LINE__);                                                   \
  } while (0)

#define MAX_MSGS 32
#define RESP_CAP (256 * 1024)
#define USER_EVENTS 6 /* emitted to alice before the connection */
#define ROOM_EVENTS 3 /* ... and to room "lobby" */
#define BACKLOG 4     /* events held per stream: resumes from 0 see a gap */

static const char secret[] = "fuzz-upgrade-hs256-secret-0123456789abcdef";
static agentws_keyset *g_keys;
static char *g_token; /* a valid JWT for alice */

/* What the run saw, for the failure report. */
static const uint8_t *g_resp;
static size_t g_resp_len;

static void fail(const char *what, int line) {
  fprintf(stderr, "fuzz_upgrade:%d: %s\nresponse (%zu bytes):\n%.*s\n", line,
          what, g_resp_len, (int)(g_resp_len > 2000 ? 2000 : g_resp_len),
          (const char *)g_resp);
  abort();
}

static void init_once(void) {
  cjose_jwk_t *k;
  cjose_header_t *h;
  cjose_jws_t *jws;
  const char *ser = NULL;
  char claims[128];
  if (g_keys != NULL)
    return;
  CHECK(agentws_keyset_new(&g_keys) == 0);
  CHECK(agentws_keyset_add_secret(g_keys, NULL, (const uint8_t *)secret,
                                  sizeof(secret) - 1) == 0);
  k = cjose_jwk_create_oct_spec((const uint8_t *)secret, sizeof(secret) - 1,
                                NULL);
  h = cjose_header_new(NULL);
  CHECK(k != NULL && h != NULL);
  CHECK(cjose_header_set(h, CJOSE_HDR_ALG, CJOSE_HDR_ALG_HS256, NULL));
  /* A day is far more than any run lasts. */
  snprintf(claims, sizeof(claims), "{\"sub\":\"alice\",\"exp\":%lld}",
           (long long)time(NULL) + 86400);
  jws = cjose_jws_sign(k, h, (const uint8_t *)claims, strlen(claims), NULL);
  CHECK(jws != NULL && cjose_jws_export(jws, &ser, NULL));
  g_token = strdup(ser);
  CHECK(g_token != NULL);
  cjose_jws_release(jws);
  cjose_header_release(h);
  cjose_jwk_release(k);
}

/* ------------------------------------------------------------ the host */

typedef struct host {
  int flags;
  uint64_t pending[4]; /* hook answers owed */
  size_t npending;
} host;

static const char *header_or(const agentws_request *req, const char *name,
                             const char *dflt) {
  const char *v = agentws_request_get_header(req, name);
  return v != NULL ? v : dflt;
}

static int on_authenticate(agentws_manager *m, uint64_t id,
                           const agentws_request *req, void *ud) {
  host *h = ud;
  size_t i, n = agentws_request_get_header_count(req);
  const char *name, *value, *refuse;
  CHECK(agentws_request_get_method(req) != NULL);
  CHECK(agentws_request_get_target(req) != NULL);
  for (i = 0; i < n; i++) {
    CHECK(agentws_request_get_header_at(req, i, &name, &value) == 0);
    CHECK(name != NULL && value != NULL && name[0] != '\0');
  }
  CHECK(agentws_request_get_header_at(req, n, &name, &value) ==
        AGENTWS_ERR_OUT_OF_RANGE);
  if ((h->flags & 3) == 3 && h->npending < 4) {
    h->pending[h->npending++] = id; /* answered a turn later */
    return 0;
  }
  refuse = agentws_request_get_header(req, "X-Refuse");
  if (refuse != NULL &&
      agentws_conn_refuse(m, id, atoi(refuse), "refused by the host") == 0)
    return 0;
  /* An invalid user id is refused; the handshake then waits (503 later). */
  (void)agentws_conn_accept(m, id, header_or(req, "X-User", "bob"));
  return 0;
}

static int on_join(agentws_manager *m, uint64_t id, const char *user,
                   const char *room, void *ud) {
  (void)m;
  (void)id;
  (void)ud;
  CHECK(user != NULL && room != NULL);
  return strcmp(room, "lobby") == 0 || strncmp(room, "ok", 2) == 0 ? 0 : 1;
}

static void on_client_message(agentws_manager *m, uint64_t id,
                              const char *user, const char *type,
                              const char *json, size_t len, void *ud) {
  (void)m;
  (void)id;
  (void)ud;
  CHECK(user != NULL && type != NULL && json != NULL);
  CHECK(json[len] == '\0');
}

static int on_message(agentws_manager *m, uint64_t id, int type,
                      const uint8_t *data, size_t len, void *ud) {
  (void)ud;
  agentws_conn_send(m, id, type, data, len);
  return 0;
}

/* Log lines are C strings at a known level (and none reach stderr). */
static void on_log(agentws_manager *m, int level, const char *msg, void *ud) {
  (void)m;
  (void)ud;
  CHECK(agentws_log_level_name(level) != NULL && msg != NULL);
  CHECK(strchr(msg, '\n') == NULL);
}

/* Pages of the host: /page answers 200 with X-CT as its content type. */
static int on_http(agentws_manager *m, uint64_t id, const agentws_request *req,
                   void *ud) {
  const char *t = agentws_request_get_target(req);
  (void)ud;
  if (strncmp(t, "/page", 5) != 0)
    return 1;
  return agentws_http_respond(m, id, 200,
                              agentws_request_get_header(req, "X-CT"),
                              (const uint8_t *)"page\n", 5) == 0
             ? 0
             : 1;
}

/* ---------------------------------------------------------- the input */

typedef struct buf {
  uint8_t *p;
  size_t len, cap;
} buf;

static void put(buf *b, const void *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->p = realloc(b->p, b->cap);
    CHECK(b->p != NULL);
  }
  if (n > 0)
    memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

/* |s| with @E, @R and @T replaced. */
static void subst(buf *out, const uint8_t *s, size_t n, const char *ue,
                  const char *re) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (s[i] == '@' && i + 1 < n &&
        (s[i + 1] == 'E' || s[i + 1] == 'R' || s[i + 1] == 'T')) {
      const char *v = s[i + 1] == 'E' ? ue : s[i + 1] == 'R' ? re : g_token;
      put(out, v, strlen(v));
      i++;
    } else {
      put(out, s + i, 1);
    }
  }
  if (n == 0)
    put(out, "", 0);
}

/* A client frame: final, masked. */
static void frame(buf *out, int opcode, const uint8_t *p, size_t n) {
  static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  uint8_t hdr[14];
  size_t h = 0, i;
  hdr[h++] = (uint8_t)(0x80 | opcode);
  if (n < 126) {
    hdr[h++] = (uint8_t)(0x80 | n);
  } else if (n < 65536) {
    hdr[h++] = 0x80 | 126;
    hdr[h++] = (uint8_t)(n >> 8);
    hdr[h++] = (uint8_t)n;
  } else {
    hdr[h++] = 0x80 | 127;
    for (i = 0; i < 8; i++)
      hdr[h++] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
  }
  memcpy(hdr + h, mask, 4);
  h += 4;
  put(out, hdr, h);
  for (i = 0; i < n; i++) {
    uint8_t c = p[i] ^ mask[i % 4];
    put(out, &c, 1);
  }
}

/* ---------------------------------------------------- HTTP contracts */

/* The end of the first "\r\n\r\n" in |p|, or 0. */
static size_t head_end(const uint8_t *p, size_t n) {
  size_t i;
  for (i = 0; i + 4 <= n; i++)
    if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' &&
        p[i + 3] == '\n')
      return i + 4;
  return 0;
}

typedef struct expect {
  int complete;    /* the head parses */
  int status;      /* the status it must get, or 0: 101 or an auth one */
  int alt;         /* another it may get (the order of reads), or 0 */
  int ws;          /* the WebSocket path with a valid handshake */
  int subprotocol; /* the policy index it must select, -1 none */
  const char *key; /* its Sec-WebSocket-Key */
  size_t key_len;
  int head_only;   /* a HEAD request */
  int endpoint;    /* 1 healthz/readyz (JSON), 2 metrics, 3 /page */
} expect;

static int path_is(const agentws__http_request *req, const char *path) {
  const char *q = memchr(req->target, '?', req->target_len);
  size_t n = q != NULL ? (size_t)(q - req->target) : req->target_len;
  return n == strlen(path) && memcmp(req->target, path, n) == 0;
}

static int bearer_ok(const agentws__http_request *req, const char *tok) {
  const agentws__http_header *h = agentws__http_find_header(req,
                                                            "Authorization");
  return tok == NULL ||
         (h != NULL && h->value_len == 7 + strlen(tok) &&
          agentws__http_ieq(h->value, 7, "Bearer ") &&
          memcmp(h->value + 7, tok, strlen(tok)) == 0);
}

static int parse(const agentws_config *cfg, const uint8_t *b, size_t n,
                 agentws__http_request *req, agentws__http_header *hdrs) {
  memset(req, 0, sizeof(*req));
  req->headers = hdrs;
  req->num_headers = (size_t)cfg->max_headers;
  return agentws__http_parse_request((const char *)b, n, req);
}

/*
 * The head's fate when the manager parses it at |npts| points: each the
 * length of what has arrived and whether it parses there whatever came
 * (adopted bytes) or only if the new bytes hold a line end or reach the
 * limit (a head trickling in is re-parsed once per line). 0: complete
 * (|*r| > 0), else the status, -1 for none yet.
 */
static int fate(const agentws_config *cfg, const uint8_t *b,
                const size_t *pts, const int *always, size_t npts,
                agentws__http_request *req, agentws__http_header *hdrs,
                int *r) {
  size_t limit = cfg->max_header_bytes, i, from = 0;
  for (i = 0; i < npts; i++) {
    size_t n = pts[i];
    if (n < from)
      continue;
    /* Bytes onto nothing held are parsed as they are. */
    if (!always[i] && from > 0 && n < limit &&
        memchr(b + from, '\n', n - from) == NULL) {
      from = n;
      continue;
    }
    from = n;
    *r = parse(cfg, b, n, req, hdrs);
    if (*r == AGENTWS__HTTP_PARTIAL) {
      if (n >= limit)
        return 431;
      continue;
    }
    if (*r == AGENTWS__HTTP_TOO_MANY || (*r > 0 && (size_t)*r > limit))
      return 431;
    return *r < 0 ? 400 : 0;
  }
  return -1;
}

/*
 * What the manager must answer. |split| bytes are adopted, the rest of
 * the head (to |hlen|) is written before the first loop turn, the |n| -
 * |hlen| bytes after it (messages) in the second. Within the first turn
 * the read of the rest may come before or after the adopted bytes are
 * parsed: both orders are allowed (e->alt).
 */
static void predict(const agentws_config *cfg, const uint8_t *b, size_t split,
                    size_t hlen, size_t n, expect *e) {
  static agentws__http_header hdrs[256], hdrs2[256];
  const size_t pa[3] = {split, hlen, n}, pb[3] = {hlen, hlen, n};
  const int aa[3] = {1, 0, 0}, ab[3] = {0, 1, 0};
  agentws__http_request req, req2;
  agentws__hs_policy pol;
  agentws__hs_result res;
  int r = 0, r2 = 0, fa, fb, head_only;
  memset(e, 0, sizeof(*e));
  e->subprotocol = -1;
  fa = fate(cfg, b, pa, aa, 3, &req, hdrs, &r);
  fb = fate(cfg, b, pb, ab, 3, &req2, hdrs2, &r2);
  if (fa != 0 || fb != 0) {
    e->status = fa != 0 ? fa : fb; /* -1: no answer yet */
    e->alt = fa != 0 && fb != 0 ? fb : 0;
    if (fa == 0 || fb == 0)
      e->alt = -2; /* either that status or a complete head: not checked */
    return;
  }
  (void)r2;
  e->complete = 1;
  head_only = agentws__http_ieq(req.method, req.method_len, "HEAD");
  if (!path_is(&req, cfg->ws_path)) {
    int get = head_only || agentws__http_ieq(req.method, req.method_len, "GET");
    int which = path_is(&req, "/metrics") ? 2
                : path_is(&req, "/healthz") || path_is(&req, "/readyz") ? 1
                                                                        : 0;
    if (which != 0) {
      e->status = !get ? 405 : !bearer_ok(&req, cfg->mon.http_token) ? 401 : 0;
      e->endpoint = which;
    } else if (get && req.target_len >= 5 &&
               memcmp(req.target, "/page", 5) == 0) {
      e->endpoint = 3; /* 200, or 404 if the content type was refused */
    } else {
      e->status = 404;
    }
    e->head_only = head_only;
    return;
  }
  pol.origins = (const char *const *)cfg->origins;
  pol.num_origins = cfg->num_origins;
  pol.subprotocols = (const char *const *)cfg->subprotocols;
  pol.num_subprotocols = cfg->num_subprotocols;
  agentws__handshake_check(&req, &pol, &res);
  if (res.status != 101) {
    e->status = res.status;
    return;
  }
  e->ws = 1;
  e->subprotocol = res.subprotocol;
  e->key = res.key;
  e->key_len = res.key_len;
}

/* The value of header |name| in response head |h| (len |n|), or NULL. */
static const char *resp_header(const char *h, size_t n, const char *name,
                               size_t *vlen) {
  const char *p = memchr(h, '\n', n), *end = h + n;
  size_t nl = strlen(name);
  while (p != NULL && p + 1 < end) {
    const char *line = p + 1, *eol = memchr(line, '\r', (size_t)(end - line));
    if (eol == NULL || eol == line)
      return NULL;
    if ((size_t)(eol - line) > nl + 1 && agentws__http_ieq(line, nl, name) &&
        line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ')
        v++;
      *vlen = (size_t)(eol - v);
      return v;
    }
    p = memchr(line, '\n', (size_t)(end - line));
  }
  return NULL;
}

/* Checks the response head; returns where it ends (0: none came). */
static size_t check_http(const expect *e, const agentws_config *cfg,
                         int hook, const uint8_t *resp, size_t n,
                         int *status) {
  const char *h = (const char *)resp, *v;
  const uint8_t *end;
  size_t hlen, vlen, body;
  char accept[29];
  *status = 0;
  hlen = head_end(resp, n);
  if (hlen == 0) {
    /* Nothing yet: only an incomplete head, or a handshake whose answer
     * the hook still owes (or whose user it named was refused: 503 at
     * the auth timeout). */
    CHECK(n == 0);
    CHECK(e->status == -1 || e->alt == -1 || e->alt == -2 || (e->ws && hook));
    return 0;
  }
  end = resp + hlen - 4;
  (void)end;
  CHECK(hlen > 13 && memcmp(h, "HTTP/1.1 ", 9) == 0);
  CHECK(h[9] >= '1' && h[9] <= '5' && h[10] >= '0' && h[10] <= '9' &&
        h[11] >= '0' && h[11] <= '9' && h[12] == ' ');
  *status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
  if (e->alt == -2)
    return hlen; /* the order of reads decided: not predicted */
  CHECK(e->status != -1 || e->alt > 0);
  if (e->status > 0)
    CHECK(*status == e->status || *status == e->alt);
  else if (e->alt > 0)
    CHECK(*status == e->alt);
  if (*status == 101) {
    CHECK(e->ws);
    v = resp_header(h, hlen, "Sec-WebSocket-Accept", &vlen);
    agentws__handshake_accept_key(e->key, e->key_len, accept);
    CHECK(v != NULL && vlen == 28 && memcmp(v, accept, 28) == 0);
    CHECK(resp_header(h, hlen, "Sec-WebSocket-Extensions", &vlen) == NULL);
    v = resp_header(h, hlen, "Sec-WebSocket-Protocol", &vlen);
    if (e->subprotocol < 0) {
      CHECK(v == NULL);
    } else {
      const char *want = cfg->subprotocols[e->subprotocol];
      CHECK(v != NULL && vlen == strlen(want) && memcmp(v, want, vlen) == 0);
      CHECK(!agentws__http_ieq(v, vlen < 7 ? vlen : 7, "bearer."));
    }
    return hlen;
  }
  if (e->ws)
    CHECK(*status == 401 || *status == 403 || *status == 429 ||
          (hook && *status >= 400 && *status <= 599));
  if (e->status == 0 && e->endpoint == 1)
    CHECK(*status == 200 || *status == 503);
  if (e->status == 0 && e->endpoint == 2)
    CHECK(*status == 200);
  if (e->status == 0 && e->endpoint == 3)
    CHECK(*status == 200 || *status == 404);
  CHECK(*status != 200 || e->endpoint != 0);
  v = resp_header(h, hlen, "Connection", &vlen);
  CHECK(v != NULL && vlen == 5 && memcmp(v, "close", 5) == 0);
  if (*status == 401)
    CHECK(resp_header(h, hlen, "WWW-Authenticate", &vlen) != NULL);
  if (*status == 405)
    CHECK(resp_header(h, hlen, "Allow", &vlen) != NULL);
  if (*status == 426) {
    v = resp_header(h, hlen, "Sec-WebSocket-Version", &vlen);
    CHECK(v != NULL && vlen == 2 && memcmp(v, "13", 2) == 0);
  }
  v = resp_header(h, hlen, "Content-Length", &vlen);
  CHECK(v != NULL && vlen > 0 && vlen < 12);
  body = (size_t)strtoul(v, NULL, 10);
  /* Answers (endpoints, pages) omit a HEAD's body; refusals never do. */
  if (e->head_only && e->endpoint != 0 && (*status == 200 || *status == 503)) {
    CHECK(n == hlen);
  } else {
    CHECK(n == hlen + body);
    if (e->endpoint == 1 && (*status == 200 || *status == 503)) {
      json_t *j = json_loadb((const char *)resp + hlen, body, 0, NULL);
      CHECK(json_is_object(j) && json_is_string(json_object_get(j, "status")));
      json_decref(j);
    }
  }
  return hlen;
}

/* --------------------------------------------------- frame contracts */

typedef struct track {
  char name[160]; /* "" for the user's stream */
  uint64_t last;  /* last event seq seen, 0 none */
  uint64_t next;  /* what the next must be after a gap, 0 any */
  uint64_t owed;  /* a gap of this many events must come next */
} track;

typedef struct session {
  int raw;
  int raw_unknown; /* raw bytes were sent: echoes cannot be predicted */
  int welcomed;
  track t[8];
  size_t nt;
  uint64_t max_user_seq, max_room_seq;
  buf sent[MAX_MSGS]; /* raw mode: texts sent, for the echoes */
  size_t nsent, echoed;
} session;

static track *stream_of(session *s, const char *name) {
  size_t i;
  for (i = 0; i < s->nt; i++)
    if (strcmp(s->t[i].name, name) == 0)
      return &s->t[i];
  CHECK(s->nt < 8 && strlen(name) < sizeof(s->t[0].name));
  memset(&s->t[s->nt], 0, sizeof(track));
  strcpy(s->t[s->nt].name, name);
  return &s->t[s->nt++];
}

static uint64_t uint_member(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  CHECK(json_is_integer(v) && json_integer_value(v) >= 0);
  return (uint64_t)json_integer_value(v);
}

static const char *str_member(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  CHECK(json_is_string(v));
  return json_string_value(v);
}

/* welcome / resumed: a gap of |missed| must follow, none if recovered. */
static void summary(session *s, json_t *o, const char *stream) {
  track *t = stream_of(s, stream);
  uint64_t missed = uint_member(o, "missed");
  json_t *rec = json_object_get(o, "recovered");
  CHECK(json_is_boolean(rec));
  CHECK(!json_is_true(rec) || missed == 0);
  (void)str_member(o, "epoch");
  (void)uint_member(o, "seq");
  t->owed = missed;
  t->next = 0;
  t->last = 0; /* a resume may replay from before what was live */
}

static void event(session *s, json_t *o, const char *stream) {
  track *t = stream_of(s, stream);
  uint64_t seq = uint_member(o, "seq");
  CHECK(t->owed == 0); /* the gap comes first */
  CHECK(seq >= 1 && seq > t->last);
  CHECK(seq <= (stream[0] == '\0' ? s->max_user_seq : s->max_room_seq));
  if (t->next != 0)
    CHECK(seq == t->next);
  else if (t->last != 0)
    CHECK(seq == t->last + 1);
  t->last = seq;
  t->next = 0;
  CHECK(json_is_object(json_object_get(o, "data")));
}

static void text(session *s, const uint8_t *p, size_t n) {
  json_t *o, *st;
  const char *type, *stream;
  CHECK(agentws__utf8_valid(p, n));
  if (s->raw) {
    if (s->raw_unknown)
      return;
    CHECK(s->echoed < s->nsent && s->sent[s->echoed].len == n &&
          (n == 0 || memcmp(s->sent[s->echoed].p, p, n) == 0));
    s->echoed++;
    return;
  }
  o = json_loadb((const char *)p, n, JSON_ALLOW_NUL, NULL);
  CHECK(json_is_object(o));
  type = str_member(o, "type");
  st = json_object_get(o, "stream");
  stream = json_is_string(st) ? json_string_value(st) : "";
  CHECK(s->welcomed || strcmp(type, "welcome") == 0);
  if (strcmp(type, "welcome") == 0) {
    const char *u = str_member(o, "user");
    CHECK(!s->welcomed);
    s->welcomed = 1;
    CHECK(u[0] != '\0' && strlen(u) <= 255);
    (void)str_member(o, "session");
    summary(s, o, "");
  } else if (strcmp(type, "resumed") == 0) {
    summary(s, o, stream);
  } else if (strcmp(type, "gap") == 0) {
    track *t = stream_of(s, stream);
    uint64_t from = uint_member(o, "from"), to = uint_member(o, "to");
    CHECK(from >= 1 && from <= to);
    CHECK(t->owed == to - from + 1);
    t->owed = 0;
    t->next = to + 1;
  } else if (strcmp(type, "joined") == 0) {
    const char *room = str_member(o, "room");
    char name[160];
    track *t;
    CHECK(strlen(room) < 120);
    snprintf(name, sizeof(name), "room:%s", room);
    CHECK(strcmp(stream, name) == 0);
    t = stream_of(s, name);
    t->last = uint_member(o, "seq"); /* live from here */
    t->next = t->owed = 0;
  } else if (strcmp(type, "error") == 0) {
    (void)str_member(o, "code");
    (void)str_member(o, "message");
  } else if (json_object_get(o, "data") != NULL &&
             json_object_get(o, "ts") != NULL) {
    event(s, o, stream);
  }
  json_decref(o);
}

/* Parses the server's frames after the 101; 1 if none was cut short. */
static int check_frames(session *s, const uint8_t *p, size_t n) {
  size_t i = 0;
  int closed = 0;
  while (i + 2 <= n) {
    uint8_t b0 = p[i], b1 = p[i + 1];
    uint64_t len = b1 & 0x7f;
    size_t h = 2, k;
    int op = b0 & 0x0f;
    CHECK(!closed);
    CHECK((b0 & 0x80) && (b0 & 0x70) == 0 && (b1 & 0x80) == 0);
    if (len == 126) {
      if (i + 4 > n)
        return 0;
      len = (uint64_t)p[i + 2] << 8 | p[i + 3];
      h = 4;
      CHECK(len >= 126);
    } else if (len == 127) {
      if (i + 10 > n)
        return 0;
      for (len = 0, k = 0; k < 8; k++)
        len = len << 8 | p[i + 2 + k];
      h = 10;
      CHECK(len >= 65536);
    }
    if (len > n - i - h)
      return 0; /* cut by the read: the rest is not checked */
    switch (op) {
    case 0x1:
      text(s, p + i + h, (size_t)len);
      break;
    case 0x2:
      CHECK(s->raw);
      break;
    case 0x8:
      CHECK(len == 0 || len >= 2);
      if (len >= 2) {
        unsigned code = (unsigned)p[i + h] << 8 | p[i + h + 1];
        CHECK((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
              (code >= 3000 && code <= 4999));
        CHECK(agentws__utf8_valid(p + i + h + 2, (size_t)len - 2));
      }
      closed = 1;
      break;
    case 0x9:
    case 0xa:
      CHECK(len <= 125);
      break;
    default:
      CHECK(!"opcode");
    }
    i += h + (size_t)len;
  }
  return i == n;
}

/* ----------------------------------------------------------------- run */

static void emit_backlog(agentws_manager *m) {
  static const char *const kinds[] = {"a", "b", "c"};
  int i;
  CHECK(agentws_emit_agent_started(m, AGENTWS_TARGET_USER, "alice", "r-1",
                                   "planner", NULL) == 0);
  for (i = 0; i < USER_EVENTS - 2; i++)
    CHECK(agentws_emit_agent_thinking(m, AGENTWS_TARGET_USER, "alice", "r-1",
                                      kinds[i % 3], 1, NULL) == 0);
  CHECK(agentws_emit_agent_completed(m, AGENTWS_TARGET_USER, "alice", "r-1",
                                     5, NULL, NULL) == 0);
  for (i = 0; i < ROOM_EVENTS; i++)
    CHECK(agentws_emit_custom(m, AGENTWS_TARGET_ROOM, "lobby", "note", NULL,
                              "{\"n\":1}") == 0);
}

static const char *epoch_of(agentws_manager *m, int room) {
  if (room) {
    agentws__room *r = agentws__registry_find_room(&m->emitter.reg, "lobby");
    return r != NULL && r->stream != NULL ? r->stream->epoch : "";
  } else {
    agentws__user *u = agentws__registry_find_user(&m->emitter.reg, "alice");
    return u != NULL && u->stream != NULL ? u->stream->epoch : "";
  }
}

static void on_idle(uv_idle_t *h) { (void)h; }

static void drain(int fd, buf *resp) {
  uint8_t tmp[65536];
  ssize_t n;
  while (resp->len < RESP_CAP && (n = read(fd, tmp, sizeof(tmp))) > 0)
    put(resp, tmp, (size_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  agentws_manager *m = NULL;
  agentws_config *cfg = NULL;
  agentws_callbacks *cbs = NULL;
  uv_loop_t loop;
  host h;
  session s;
  buf head = {0}, tail = {0}, resp = {0}, all = {0};
  const uint8_t *hend, *body;
  size_t hlen, split, i, hs_end;
  expect e;
  int flags, sv[2], rv, status, round, user_events = USER_EVENTS;
  char uepoch[40], repoch[40];

  if (size < 2 || size > 16384)
    return 0;
  init_once();
  flags = data[0];
  memset(&h, 0, sizeof(h));
  memset(&s, 0, sizeof(s));
  h.flags = flags;
  s.raw = (flags & 0x20) != 0;
  s.raw_unknown = s.raw && (flags & 0x40) != 0;

  CHECK(agentws_config_new(&cfg) == 0);
  agentws_config_set_backlog_events(cfg, BACKLOG);
  agentws_config_set_ping_interval_ms(cfg, 0);
  if ((flags & 3) == 0)
    agentws_config_set_dev_insecure(cfg, 1);
  if ((flags & 3) == 1) {
    agentws_config_set_jwt_keys(cfg, g_keys);
    agentws_config_set_token_sources(cfg, "header,subprotocol,query,cookie");
  }
  if (flags & 4) {
    agentws_config_add_allowed_origin(cfg, "https://app.example.com");
    agentws_config_add_subprotocol(cfg, "ag-ui");
  }
  if (flags & 8)
    agentws_config_set_http_token(cfg, "s3cret");
  if (flags & 0x10)
    agentws_config_set_max_header_bytes(cfg, 256);
  if (s.raw)
    agentws_config_set_raw_messages(cfg, 1);
  CHECK(agentws_callbacks_new(&cbs) == 0);
  if ((flags & 3) >= 2)
    agentws_callbacks_set_on_authenticate(cbs, on_authenticate);
  agentws_callbacks_set_on_join(cbs, on_join);
  agentws_callbacks_set_on_client_message(cbs, on_client_message);
  agentws_callbacks_set_on_message(cbs, on_message);
  agentws_callbacks_set_on_http(cbs, on_http);
  agentws_callbacks_set_on_log(cbs, on_log);
  agentws_config_set_log_level(cfg, AGENTWS_LOG_DEBUG);
  CHECK(uv_loop_init(&loop) == 0);
  CHECK(agentws_manager_new(&m, &loop, cfg, cbs, &h) == 0);

  /* A backlog to resume from (only in protocol mode). */
  if (!s.raw) {
    /* The manager's handles keep no host loop alive: an idle one does
     * while the loop thread publishes. */
    uv_idle_t idle;
    emit_backlog(m);
    uv_idle_init(&loop, &idle);
    uv_idle_start(&idle, on_idle);
    for (round = 0; round < 16 && (epoch_of(m, 0)[0] == '\0' ||
                                   epoch_of(m, 1)[0] == '\0');
         round++)
      uv_run(&loop, UV_RUN_NOWAIT);
    uv_close((uv_handle_t *)&idle, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(epoch_of(m, 0)[0] != '\0' && epoch_of(m, 1)[0] != '\0');
  }
  s.max_user_seq = USER_EVENTS;
  s.max_room_seq = ROOM_EVENTS;
  snprintf(uepoch, sizeof(uepoch), "%s", epoch_of(m, 0));
  snprintf(repoch, sizeof(repoch), "%s", epoch_of(m, 1));

  /* HEAD up to the first NUL; the rest is messages or raw bytes. */
  hend = memchr(data + 2, 0, size - 2);
  hlen = (size_t)((hend != NULL ? hend : data + size) - (data + 2));
  subst(&head, data + 2, hlen, uepoch, repoch);
  if (hend != NULL) {
    const uint8_t *p = hend + 1, *end = data + size;
    if (flags & 0x40) {
      subst(&tail, p, (size_t)(end - p), uepoch, repoch);
    } else {
      while (p <= end && s.nsent < MAX_MSGS) {
        const uint8_t *q = memchr(p, 0, (size_t)(end - p));
        size_t n = (size_t)((q != NULL ? q : end) - p);
        buf msg = {0};
        int binary = n > 0 && p[0] == 0x02;
        subst(&msg, p + binary, n - (size_t)binary, uepoch, repoch);
        frame(&tail, binary ? 0x2 : 0x1, msg.p, msg.len);
        if (!binary && s.raw)
          s.sent[s.nsent++] = msg;
        else
          free(msg.p);
        if (q == NULL)
          break;
        p = q + 1;
      }
    }
  }
  put(&all, head.p, head.len);
  put(&all, tail.p, tail.len);
  split = data[1] == 0 || data[1] > head.len ? head.len : data[1];
  predict(cfg, all.p, split, head.len, all.len, &e);

  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  rv = agentws_manager_adopt(m, sv[0], head.p, split, NULL);
  CHECK(rv == 0 || rv == AGENTWS_ERR_TOO_BIG);
  CHECK((rv == AGENTWS_ERR_TOO_BIG) == (split > cfg->max_header_bytes));
  agentws_config_free(cfg);
  cfg = NULL;
  if (rv != 0) {
    close(sv[0]);
  } else {
    const agentws_config *mc = m->cfg;
    if (head.len > split)
      CHECK(write(sv[1], head.p + split, head.len - split) ==
            (ssize_t)(head.len - split));
    for (round = 0; round < 10; round++) {
      uv_run(&loop, UV_RUN_NOWAIT);
      drain(sv[1], &resp);
      if (round == 1 && tail.len > 0)
        CHECK(write(sv[1], tail.p, tail.len) == (ssize_t)tail.len);
      if (round == 2)
        for (i = 0; i < h.npending; i++)
          (void)agentws_conn_accept(m, h.pending[i], "dave");
      if (round == 3 && (flags & 0x80) && !s.raw) {
        CHECK(agentws_emit_agent_thinking(m, AGENTWS_TARGET_USER, "alice",
                                          "r-2", "live", 4, NULL) == 0);
        CHECK(agentws_emit_custom(m, AGENTWS_TARGET_ROOM, "lobby", "note",
                                  NULL, NULL) == 0);
        user_events++;
        s.max_user_seq = (uint64_t)user_events;
        s.max_room_seq = ROOM_EVENTS + 1;
      }
    }
    g_resp = resp.p;
    g_resp_len = resp.len;
    body = resp.p;
    hs_end = 0;
    /* Bytes after a 101 are frames: the head is checked alone. */
    if (e.ws && resp.len > 12 && memcmp(resp.p + 9, "101", 3) == 0)
      hs_end = head_end(resp.p, resp.len);
    hlen = check_http(&e, mc, (flags & 3) >= 2, body,
                      hs_end > 0 ? hs_end : resp.len, &status);
    if (status == 101 &&
        check_frames(&s, resp.p + hlen, resp.len - hlen) &&
        resp.len < RESP_CAP) {
      for (i = 0; i < s.nt; i++)
        CHECK(s.t[i].owed == 0); /* every gap announced came */
    }
    if (status == 101 && !s.raw)
      CHECK(s.welcomed);
  }
  agentws_manager_close(m, NULL, NULL);
  close(sv[1]);
  uv_run(&loop, UV_RUN_DEFAULT);
  agentws_manager_free(m);
  CHECK(uv_loop_close(&loop) == 0);
  agentws_callbacks_free(cbs);
  for (i = 0; i < s.nsent; i++)
    free(s.sent[i].p);
  free(head.p);
  free(tail.p);
  free(resp.p);
  free(all.p);
  g_resp = NULL;
  g_resp_len = 0;
  return 0;
}
