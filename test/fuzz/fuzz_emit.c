/*
 * libFuzzer target: what a host hands to emit. The emit path's payload
 * handling is driven directly: the codec's checks and envelope writer
 * (agentws__event_build / _finalize / _write_merged), the control message
 * writers and the escaper, and the run validator with its repairs.
 *
 * An input is five parameter bytes, then records separated by 0x1E:
 *
 *   P0 P1 P2 P3 P4  TYPE FLAGS STEP F0 0x1F F1 0x1F ... F6  0x1E  ...
 *
 * P0: bits 0-1 the validation profile (all repair, all strict, per rule
 * from P1..P3, all warn), bits 2-3 max_event_bytes, bits 4-6 max_runs,
 * bit 7 stall and tool timeouts on. P4: keep_ms, alerts, seq offset.
 * TYPE % 9: 0 sweeps the validator, else the event type. FLAGS: bit 0
 * room target, 1 ok, 2 retryable, 3 negative duration, 4-7 duration.
 * STEP moves the clock by STEP^2 ms (255/254: ts INT64_MIN/MAX). Fields
 * (an empty one is NULL, a lone 0x1D byte is ""): run_id, target_id, S1
 * (agent, tool, code or custom type), S2 (tool_call_id, message), S3
 * (severity; thinking text, which may hold NULs), J1 (data_json), J2
 * (args_json / result_json). Every field goes to every type, so the
 * codec must ignore what is not its own.
 *
 * Contracts:
 *  - build accepts exactly what an independent oracle (jansson for
 *    UTF-8 and JSON, the documented rules for the rest) calls valid;
 *    refusals are one of the documented codes, never NOMEM, and leave
 *    *out NULL; a smaller max_bytes only adds TOO_BIG, and what fits is
 *    byte for byte what an unbounded build writes;
 *  - every envelope is JSON that jansson parses back to the same data:
 *    type, run_id, ts, seq, stream, each data member and each member of
 *    data_json, args and result (json_equal), nothing more; the thinking
 *    text and extra slices are what the merger takes them for;
 *  - a merge of thinking deltas is JSON with the concatenated text, the
 *    last event's ts, seq and members, and "coalesced":n;
 *  - control messages and the escaper round-trip any UTF-8 string;
 *  - the validator: every synthesized event builds (within the bound the
 *    emitter uses) and carries "synthesized":true; each refusal or drop
 *    is reported once; reports and counters agree; and under the repair
 *    and strict profiles the stream of delivered events (originals and
 *    synthesized, in order) is a valid lifecycle per run, while a valid
 *    event is never refused or dropped.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agentws.h"
#include "agentws_codec.h"
#include "agentws_utf8.h"
#include "agentws_validator.h"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      abort();                                                                 \
  } while (0)

#define RS 0x1e
#define US 0x1f
#define EMPTY 0x1d
#define NFIELDS 7
#define MAX_RECORDS 256
#define WINDOW 16
/* The bound agentws_validate.c's synth() builds repairs with
 * (SYNTH_MAX_BYTES there). */
#define SYNTH_FLOOR 8192u

static const agentws__mem *mem(void) { return agentws__mem_default(); }

/* ------------------------------------------------------------- oracle */

static const char *const type_names[] = {
    NULL,           "agent_started",   "agent_thinking", "tool_executing",
    "tool_completed", "agent_completed", "agent_error",    NULL};

/* Members each type writes into "data" (README, DESIGN §6). */
static const char *const own[][6] = {
    {NULL},
    {"agent", NULL},
    {"text", "coalesced", NULL},
    {"tool", "tool_call_id", "args", NULL},
    {"tool", "tool_call_id", "ok", "duration_ms", "result", NULL},
    {"duration_ms", "result", NULL},
    {"code", "message", "severity", "retryable", NULL},
    {NULL}};

static const char *const reserved[] = {
    "welcome", "gap",  "error", "pong", "resumed", "joined", "left",
    "token_expiring", "ping", "resume", "ack", "join", "leave", "refresh"};

/* jansson is the UTF-8 oracle: json_stringn refuses what is not UTF-8. */
static int utf8_ok(const char *s, size_t n) {
  json_t *j = json_stringn(s, n);
  int ok = j != NULL;
  json_decref(j);
  return ok;
}

static int str_ok_max(const char *s, size_t max) {
  return s != NULL && s[0] != '\0' && strlen(s) <= max &&
         utf8_ok(s, strlen(s));
}

static int str_ok(const char *s) { return str_ok_max(s, 256); }

static int custom_ok(const char *t) {
  size_t i, n;
  if (t == NULL)
    return 0;
  n = strlen(t);
  if (n == 0 || n > 64 || t[0] < 'a' || t[0] > 'z')
    return 0;
  for (i = 1; i < n; i++)
    if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') ||
          t[i] == '_' || t[i] == '.' || t[i] == '-'))
      return 0;
  if (strncmp(t, "agent_", 6) == 0 || strncmp(t, "tool_", 5) == 0)
    return 0;
  for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
    if (strcmp(t, reserved[i]) == 0)
      return 0;
  return 1;
}

/* Containers nested in |v|, |v| itself included. */
static int depth(json_t *v) {
  size_t i;
  const char *k;
  json_t *x;
  int d = 0, e;
  if (json_is_array(v)) {
    json_array_foreach(v, i, x) {
      e = depth(x);
      d = e > d ? e : d;
    }
    return d + 1;
  }
  if (json_is_object(v)) {
    json_object_foreach(v, k, x) {
      e = depth(x);
      d = e > d ? e : d;
    }
    return d + 1;
  }
  return 0;
}

static json_t *load_any(const char *s) {
  return json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}

static json_t *load_data(const char *s) {
  return json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL |
                           JSON_REJECT_DUPLICATES, NULL);
}

static int json_ok(const char *s, int need_object, int type) {
  json_t *v = need_object ? load_data(s) : load_any(s);
  int ok = v != NULL && depth(v) <= AGENTWS__MAX_DEPTH &&
           (!need_object || json_is_object(v));
  size_t i;
  for (i = 0; ok && need_object && own[type][i] != NULL; i++)
    ok = json_object_get(v, own[type][i]) == NULL;
  json_decref(v);
  return ok;
}

static int severity_ok(const char *s) {
  return s != NULL && (strcmp(s, "info") == 0 || strcmp(s, "warning") == 0 ||
                       strcmp(s, "error") == 0 || strcmp(s, "fatal") == 0);
}

/* Whether build must accept |a| when size is no object. */
static int oracle(const agentws__emit_args *a) {
  int t = a->type;
  if (t < AGENTWS__EV_AGENT_STARTED || t > AGENTWS__EV_CUSTOM)
    return 0;
  if (!str_ok(a->target_id))
    return 0;
  if (t == AGENTWS__EV_CUSTOM) {
    if (!custom_ok(a->custom_type) || (a->run_id != NULL && !str_ok(a->run_id)))
      return 0;
  } else if (!str_ok(a->run_id)) {
    return 0;
  }
  switch (t) {
  case AGENTWS__EV_AGENT_STARTED:
    if (!str_ok(a->agent))
      return 0;
    break;
  case AGENTWS__EV_AGENT_THINKING:
    if (a->text_len > 0 && !utf8_ok(a->text, a->text_len))
      return 0;
    break;
  case AGENTWS__EV_TOOL_EXECUTING:
  case AGENTWS__EV_TOOL_COMPLETED:
    if (!str_ok(a->tool) || !str_ok(a->tool_call_id))
      return 0;
    if (t == AGENTWS__EV_TOOL_COMPLETED && a->duration_ms < 0)
      return 0;
    break;
  case AGENTWS__EV_AGENT_COMPLETED:
    if (a->duration_ms < 0)
      return 0;
    break;
  case AGENTWS__EV_AGENT_ERROR:
    if (!str_ok(a->code) || !str_ok_max(a->message, AGENTWS__MAX_MESSAGE) ||
        !str_ok(a->severity) || !severity_ok(a->severity))
      return 0;
    break;
  default:
    break;
  }
  if (t == AGENTWS__EV_TOOL_EXECUTING && a->args_json != NULL &&
      !json_ok(a->args_json, 0, t))
    return 0;
  if ((t == AGENTWS__EV_TOOL_COMPLETED || t == AGENTWS__EV_AGENT_COMPLETED) &&
      a->result_json != NULL && !json_ok(a->result_json, 0, t))
    return 0;
  if (a->data_json != NULL && !json_ok(a->data_json, 1, t))
    return 0;
  return 1;
}

/* --------------------------------------------------------- envelopes */

static void check_string(json_t *obj, const char *key, const char *s,
                         size_t n) {
  json_t *v = json_object_get(obj, key);
  CHECK(json_is_string(v));
  CHECK(json_string_length(v) == n && memcmp(json_string_value(v), s, n) == 0);
}

static void check_cstr(json_t *obj, const char *key, const char *s) {
  check_string(obj, key, s, strlen(s));
}

static void check_int(json_t *obj, const char *key, int64_t n) {
  json_t *v = json_object_get(obj, key);
  CHECK(json_is_integer(v) && json_integer_value(v) == (json_int_t)n);
}

static void check_bool(json_t *obj, const char *key, int b) {
  json_t *v = json_object_get(obj, key);
  CHECK(json_is_boolean(v) && json_is_true(v) == (b != 0));
}

static void check_same_json(json_t *obj, const char *key, const char *text) {
  json_t *want = load_any(text);
  CHECK(want != NULL);
  CHECK(json_equal(json_object_get(obj, key), want));
  json_decref(want);
}

/* Every member of data_json is in |data| as it was; returns how many. */
static size_t check_extra(json_t *data, const char *data_json) {
  json_t *want, *v;
  const char *k;
  size_t n;
  if (data_json == NULL)
    return 0;
  want = load_data(data_json);
  CHECK(want != NULL && json_is_object(want));
  json_object_foreach(want, k, v) CHECK(json_equal(json_object_get(data, k), v));
  n = json_object_size(want);
  json_decref(want);
  return n;
}

/* A slice of escaped text, put back in quotes, parses to |s| of |n|. */
static void check_escaped(const char *esc, size_t elen, const char *s,
                          size_t n) {
  char *q = malloc(elen + 3);
  json_t *v;
  CHECK(q != NULL);
  q[0] = '"';
  memcpy(q + 1, esc, elen);
  q[elen + 1] = '"';
  q[elen + 2] = '\0';
  v = json_loadb(q, elen + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  CHECK(json_is_string(v));
  CHECK(json_string_length(v) == n && memcmp(json_string_value(v), s, n) == 0);
  json_decref(v);
  free(q);
}

/* The stream member of a room event, absent for a user's. */
static size_t check_stream(json_t *root, const agentws__emit_args *a) {
  json_t *v = json_object_get(root, "stream");
  size_t n;
  if (a->target != AGENTWS_TARGET_ROOM) {
    CHECK(v == NULL);
    return 0;
  }
  n = strlen(a->target_id);
  CHECK(json_is_string(v) && json_string_length(v) == n + 5);
  CHECK(memcmp(json_string_value(v), "room:", 5) == 0 &&
        memcmp(json_string_value(v) + 5, a->target_id, n) == 0);
  return 1;
}

/* Finalizes |ev| with |seq| and checks it says exactly what |a| said. */
static void check_event(const agentws__emit_args *a, agentws__event *ev,
                        uint64_t seq) {
  json_error_t err;
  json_t *root, *data;
  size_t top = 4, members = 0;
  agentws__event_finalize(ev, seq);
  CHECK(ev->seq == seq && ev->len > ev->json_len &&
        ev->len <= ev->json_len + 21);
  CHECK(ev->json[ev->len] == '\0' && memchr(ev->json, '\0', ev->len) == NULL);
  CHECK(ev->type == a->type && ev->target == a->target);
  CHECK(strcmp(ev->target_id, a->target_id) == 0);
  CHECK(a->run_id == NULL ? ev->run_id == NULL
                          : strcmp(ev->run_id, a->run_id) == 0);
  root = json_loadb(ev->json, ev->len, JSON_ALLOW_NUL, &err);
  CHECK(json_is_object(root));
  check_cstr(root, "type", a->type == AGENTWS__EV_CUSTOM ? a->custom_type
                                                         : type_names[a->type]);
  if (a->run_id != NULL) {
    check_cstr(root, "run_id", a->run_id);
    top++;
  }
  check_int(root, "ts", a->ts_ms);
  check_int(root, "seq", (int64_t)seq);
  top += check_stream(root, a);
  CHECK(json_object_size(root) == top);
  data = json_object_get(root, "data");
  CHECK(json_is_object(data));
  switch (a->type) {
  case AGENTWS__EV_AGENT_STARTED:
    check_cstr(data, "agent", a->agent);
    members = 1;
    break;
  case AGENTWS__EV_AGENT_THINKING:
    check_string(data, "text", a->text, a->text_len);
    check_escaped(ev->json + ev->text_off, ev->text_len, a->text, a->text_len);
    members = 1;
    break;
  case AGENTWS__EV_TOOL_EXECUTING:
  case AGENTWS__EV_TOOL_COMPLETED:
    check_cstr(data, "tool", a->tool);
    check_cstr(data, "tool_call_id", a->tool_call_id);
    members = 2;
    if (a->type == AGENTWS__EV_TOOL_EXECUTING) {
      if (a->args_json != NULL) {
        check_same_json(data, "args", a->args_json);
        members++;
      }
      break;
    }
    check_bool(data, "ok", a->ok);
    check_int(data, "duration_ms", a->duration_ms);
    members += 2;
    if (a->result_json != NULL) {
      check_same_json(data, "result", a->result_json);
      members++;
    }
    break;
  case AGENTWS__EV_AGENT_COMPLETED:
    check_int(data, "duration_ms", a->duration_ms);
    members = 1;
    if (a->result_json != NULL) {
      check_same_json(data, "result", a->result_json);
      members++;
    }
    break;
  case AGENTWS__EV_AGENT_ERROR:
    check_cstr(data, "code", a->code);
    check_cstr(data, "message", a->message);
    check_cstr(data, "severity", a->severity);
    check_bool(data, "retryable", a->retryable);
    members = 4;
    break;
  default:
    break;
  }
  members += check_extra(data, a->data_json);
  CHECK(json_object_size(data) == members);
  if (a->type == AGENTWS__EV_AGENT_THINKING) {
    /* The extra slice is ",members" (the merger copies it verbatim). */
    if (ev->extra_len == 0) {
      CHECK(a->data_json == NULL || json_object_size(data) == 1);
    } else {
      char *obj = malloc(ev->extra_len + 2);
      json_t *x, *want;
      CHECK(obj != NULL && ev->json[ev->extra_off] == ',');
      obj[0] = '{';
      memcpy(obj + 1, ev->json + ev->extra_off + 1, ev->extra_len - 1);
      obj[ev->extra_len] = '}';
      obj[ev->extra_len + 1] = '\0';
      x = json_loadb(obj, ev->extra_len + 1, JSON_ALLOW_NUL, NULL);
      want = load_data(a->data_json);
      CHECK(x != NULL && want != NULL && json_equal(x, want));
      json_decref(x);
      json_decref(want);
      free(obj);
    }
  }
  json_decref(root);
}

/* ------------------------------------------------------------- merges */

typedef struct held {
  agentws__event *ev;
  char *text;      /* copy of the delta */
  size_t text_len;
  char *data_json; /* copy, or NULL */
} held;

typedef struct window {
  held h[WINDOW];
  size_t n;
} window;

static void window_flush(window *w) {
  agentws__event *evs[WINDOW];
  agentws__buf out = {NULL, 0, 0};
  const held *last;
  json_t *root, *data;
  char *text;
  size_t i, tlen = 0, off = 0, top = 5;
  if (w->n == 0)
    return;
  last = &w->h[w->n - 1];
  for (i = 0; i < w->n; i++) {
    evs[i] = w->h[i].ev;
    tlen += w->h[i].text_len;
  }
  text = malloc(tlen + 1);
  CHECK(text != NULL);
  for (i = 0; i < w->n; i++) {
    if (w->h[i].text_len > 0)
      memcpy(text + off, w->h[i].text, w->h[i].text_len);
    off += w->h[i].text_len;
  }
  CHECK(agentws__event_write_merged(&out, mem(), evs, w->n) == 0);
  root = json_loadb((const char *)out.data, out.len, JSON_ALLOW_NUL, NULL);
  CHECK(json_is_object(root));
  check_cstr(root, "type", "agent_thinking");
  check_cstr(root, "run_id", last->ev->run_id);
  check_int(root, "ts", last->ev->ts_ms);
  check_int(root, "seq", (int64_t)last->ev->seq);
  if (last->ev->target == AGENTWS_TARGET_ROOM)
    top++;
  CHECK(json_object_size(root) == top);
  data = json_object_get(root, "data");
  CHECK(json_is_object(data));
  check_string(data, "text", text, tlen);
  check_int(data, "coalesced", (int64_t)w->n);
  CHECK(json_object_size(data) == 2 + check_extra(data, last->data_json));
  json_decref(root);
  agentws__buf_free(&out, mem());
  free(text);
  for (i = 0; i < w->n; i++) {
    agentws__event_free(mem(), w->h[i].ev);
    free(w->h[i].text);
    free(w->h[i].data_json);
  }
  w->n = 0;
}

/* Keeps a delivered thinking event for the next merge; |ev| is taken. */
static void window_add(window *w, const agentws__emit_args *a,
                       agentws__event *ev) {
  held *h;
  if (w->n > 0) {
    const agentws__event *p = w->h[w->n - 1].ev;
    if (w->n == WINDOW || p->target != ev->target ||
        strcmp(p->target_id, ev->target_id) != 0 ||
        strcmp(p->run_id, ev->run_id) != 0)
      window_flush(w);
  }
  h = &w->h[w->n++];
  h->ev = ev;
  h->text_len = a->text_len;
  h->text = malloc(a->text_len + 1);
  CHECK(h->text != NULL);
  if (a->text_len > 0)
    memcpy(h->text, a->text, a->text_len);
  h->data_json = a->data_json != NULL ? strdup(a->data_json) : NULL;
  CHECK(a->data_json == NULL || h->data_json != NULL);
}

/* -------------------------------------------------- control messages */

static json_t *parse_buf(const agentws__buf *b) {
  json_t *v = json_loadb((const char *)b->data, b->len, JSON_ALLOW_NUL, NULL);
  CHECK(json_is_object(v));
  return v;
}

/* Each string must be UTF-8 (the library only passes such). */
static void fuzz_ctl(const char *s1, const char *s2, const char *s3,
                     const char *t, size_t tn, uint64_t num) {
  agentws__buf b = {NULL, 0, 0};
  json_t *v;
  if (s1 == NULL || s2 == NULL || s3 == NULL || !utf8_ok(s1, strlen(s1)) ||
      !utf8_ok(s2, strlen(s2)) || !utf8_ok(s3, strlen(s3)))
    return;
  CHECK(agentws__ctl_error(&b, mem(), s1, s2) == 0);
  v = parse_buf(&b);
  check_cstr(v, "type", "error");
  check_cstr(v, "code", s1);
  check_cstr(v, "message", s2);
  CHECK(json_object_size(v) == 3);
  json_decref(v);

  b.len = 0;
  CHECK(agentws__ctl_welcome(&b, mem(), s1, s2, s3, num, (int)(num & 1),
                             num / 3) == 0);
  v = parse_buf(&b);
  check_cstr(v, "type", "welcome");
  check_cstr(v, "session", s1);
  check_cstr(v, "user", s2);
  check_cstr(v, "epoch", s3);
  check_int(v, "seq", (int64_t)num);
  check_bool(v, "recovered", (int)(num & 1));
  check_int(v, "missed", (int64_t)(num / 3));
  CHECK(json_object_size(v) == 7);
  json_decref(v);

  b.len = 0;
  CHECK(agentws__ctl_resumed(&b, mem(), (num & 2) ? s1 : NULL, s3, num,
                             (int)(num & 1), num / 5) == 0);
  v = parse_buf(&b);
  check_cstr(v, "type", "resumed");
  if (num & 2)
    check_cstr(v, "stream", s1);
  check_cstr(v, "epoch", s3);
  CHECK(json_object_size(v) == ((num & 2) ? 6u : 5u));
  json_decref(v);

  b.len = 0;
  CHECK(agentws__ctl_gap(&b, mem(), (num & 4) ? s2 : NULL, num / 7, num) == 0);
  v = parse_buf(&b);
  check_cstr(v, "type", "gap");
  check_int(v, "from", (int64_t)(num / 7));
  check_int(v, "to", (int64_t)num);
  CHECK(json_object_size(v) == ((num & 4) ? 4u : 3u));
  json_decref(v);

  b.len = 0;
  CHECK(agentws__ctl_room(&b, mem(), (num & 8) ? "left" : "joined", s2, s3,
                          num) == 0);
  v = parse_buf(&b);
  check_cstr(v, "type", (num & 8) ? "left" : "joined");
  check_cstr(v, "room", s2);
  {
    json_t *st = json_object_get(v, "stream");
    size_t n = strlen(s2);
    CHECK(json_is_string(st) && json_string_length(st) == n + 5 &&
          memcmp(json_string_value(st), "room:", 5) == 0 &&
          memcmp(json_string_value(st) + 5, s2, n) == 0);
  }
  check_cstr(v, "epoch", s3);
  check_int(v, "seq", (int64_t)num);
  CHECK(json_object_size(v) == 5);
  json_decref(v);

  b.len = 0;
  CHECK(agentws__ctl_pong(&b, mem()) == 0);
  v = parse_buf(&b);
  check_cstr(v, "type", "pong");
  json_decref(v);

  /* The escaper on (ptr, len) text, NULs included. */
  if (t != NULL && utf8_ok(t, tn)) {
    b.len = 0;
    CHECK(agentws__json_escape(&b, mem(), t, tn) == 0);
    CHECK(b.len >= tn);
    check_escaped((const char *)b.data, b.len, t, tn);
  }
  agentws__buf_free(&b, mem());
}

/* -------------------------------------------------------------- model */

/*
 * The lifecycle each run must have in what is delivered, mirrored from
 * the outside. Ended runs are forgotten as the validator documents it:
 * beyond max_runs ended ones (oldest first) or keep_ms after their end.
 */
enum { M_NONE, M_LIVE, M_ENDED };

typedef struct mrun {
  char *key;
  int state;
  uint64_t end_ms;
  char **open; /* open tool call ids */
  size_t nopen;
  char **used; /* every id tool_executing named, for "uncertain" */
  size_t nused;
} mrun;

typedef struct model {
  int on;          /* repair or strict profile: check */
  size_t max_runs;
  int64_t keep_ms;
  mrun *runs;
  size_t nruns;
  size_t *ended;   /* FIFO of run indexes in M_ENDED */
  size_t nended;
} model;

static char *run_key(const agentws__emit_args *a) {
  size_t t = strlen(a->target_id), r = strlen(a->run_id);
  char *k = malloc(t + r + 3);
  CHECK(k != NULL);
  k[0] = a->target == AGENTWS_TARGET_ROOM ? 'R' : 'U';
  memcpy(k + 1, a->target_id, t);
  k[1 + t] = '\n';
  memcpy(k + 2 + t, a->run_id, r + 1);
  return k;
}

static mrun *model_run(model *m, const agentws__emit_args *a) {
  char *k = run_key(a);
  size_t i;
  for (i = 0; i < m->nruns; i++)
    if (strcmp(m->runs[i].key, k) == 0) {
      free(k);
      return &m->runs[i];
    }
  m->runs = realloc(m->runs, (m->nruns + 1) * sizeof(*m->runs));
  m->ended = realloc(m->ended, (m->nruns + 1) * sizeof(*m->ended));
  CHECK(m->runs != NULL && m->ended != NULL);
  memset(&m->runs[m->nruns], 0, sizeof(mrun));
  m->runs[m->nruns].key = k;
  return &m->runs[m->nruns++];
}

static int has(char **list, size_t n, const char *id) {
  size_t i;
  for (i = 0; i < n; i++)
    if (strcmp(list[i], id) == 0)
      return 1;
  return 0;
}

static void add(char ***list, size_t *n, const char *id) {
  *list = realloc(*list, (*n + 1) * sizeof(**list));
  CHECK(*list != NULL);
  (*list)[*n] = strdup(id);
  CHECK((*list)[*n] != NULL);
  (*n)++;
}

static void drop(char **list, size_t *n, const char *id) {
  size_t i;
  for (i = 0; i < *n; i++)
    if (strcmp(list[i], id) == 0) {
      free(list[i]);
      list[i] = list[--*n];
      return;
    }
  abort();
}

static void clear(char **list, size_t *n) {
  while (*n > 0)
    free(list[--*n]);
}

static void forget_oldest(model *m) {
  mrun *r = &m->runs[m->ended[0]];
  memmove(m->ended, m->ended + 1, (m->nended - 1) * sizeof(*m->ended));
  m->nended--;
  r->state = M_NONE;
  clear(r->used, &r->nused);
}

/* 1: valid now; 0: a violation; -1: cannot tell (a reused call id the
 * validator may or may not still remember). */
static int model_valid(model *m, const agentws__emit_args *a) {
  mrun *r;
  if (a->type == AGENTWS__EV_CUSTOM || a->run_id == NULL)
    return 1;
  r = model_run(m, a);
  if (r->state == M_NONE)
    return a->type == AGENTWS__EV_AGENT_STARTED;
  if (r->state == M_ENDED)
    return 0;
  switch (a->type) {
  case AGENTWS__EV_AGENT_STARTED:
    return 0;
  case AGENTWS__EV_TOOL_EXECUTING:
    if (has(r->open, r->nopen, a->tool_call_id))
      return 0;
    return has(r->used, r->nused, a->tool_call_id) ? -1 : 1;
  case AGENTWS__EV_TOOL_COMPLETED:
    return has(r->open, r->nopen, a->tool_call_id);
  case AGENTWS__EV_AGENT_COMPLETED:
    return r->nopen == 0;
  default:
    return 1;
  }
}

/* One delivered event: it must be valid, and moves the run on. */
static void model_apply(model *m, const agentws__emit_args *a,
                        uint64_t now) {
  mrun *r;
  if (!m->on || a->type == AGENTWS__EV_CUSTOM || a->run_id == NULL)
    return;
  CHECK(model_valid(m, a) != 0);
  r = model_run(m, a);
  switch (a->type) {
  case AGENTWS__EV_AGENT_STARTED:
    r->state = M_LIVE;
    break;
  case AGENTWS__EV_TOOL_EXECUTING:
    add(&r->open, &r->nopen, a->tool_call_id);
    if (!has(r->used, r->nused, a->tool_call_id))
      add(&r->used, &r->nused, a->tool_call_id);
    break;
  case AGENTWS__EV_TOOL_COMPLETED:
    drop(r->open, &r->nopen, a->tool_call_id);
    break;
  case AGENTWS__EV_AGENT_COMPLETED:
  case AGENTWS__EV_AGENT_ERROR:
    clear(r->open, &r->nopen);
    r->state = M_ENDED;
    r->end_ms = now;
    m->ended[m->nended++] = (size_t)(r - m->runs);
    if (m->nended > m->max_runs)
      forget_oldest(m);
    break;
  default:
    break;
  }
}

static void model_expire(model *m, uint64_t now) {
  while (m->nended > 0 &&
         m->runs[m->ended[0]].end_ms + (uint64_t)m->keep_ms <= now)
    forget_oldest(m);
}

static void model_free(model *m) {
  size_t i;
  for (i = 0; i < m->nruns; i++) {
    clear(m->runs[i].open, &m->runs[i].nopen);
    clear(m->runs[i].used, &m->runs[i].nused);
    free(m->runs[i].open);
    free(m->runs[i].used);
    free(m->runs[i].key);
  }
  free(m->runs);
  free(m->ended);
}

/* ----------------------------------------------------------- the run */

typedef struct ctx {
  agentws__validator v;
  model m;
  window w;
  size_t max_bytes;
  uint64_t now, seq;
  uint64_t reports;      /* violation reports taken so far */
  size_t synthesized;    /* in the current check or sweep */
} ctx;

static uint64_t sum(const uint64_t *v, size_t n) {
  uint64_t s = 0;
  size_t i;
  for (i = 0; i < n; i++)
    s += v[i];
  return s;
}

/* A published event: checked, counted, held for merging or freed. */
static void deliver(ctx *c, const agentws__emit_args *a, agentws__event *ev) {
  check_event(a, ev, ++c->seq);
  model_apply(&c->m, a, c->now);
  if (a->type == AGENTWS__EV_AGENT_THINKING)
    window_add(&c->w, a, ev);
  else
    agentws__event_free(mem(), ev);
}

/* What the emitter's synth() does with a repair, under its bound. */
static int synth(void *vctx, const agentws__emit_args *src) {
  ctx *c = vctx;
  agentws__emit_args a = *src;
  agentws__event *ev = NULL;
  json_t *data;
  int rv;
  a.ts_ms = (int64_t)c->now;
  rv = agentws__event_build(mem(), &a,
                            c->max_bytes > SYNTH_FLOOR ? c->max_bytes
                                                       : SYNTH_FLOOR,
                            &ev);
  CHECK(rv == 0); /* a repair never fails for what the host sent */
  CHECK(a.data_json != NULL);
  data = load_data(a.data_json);
  CHECK(json_is_true(json_object_get(data, "synthesized")));
  json_decref(data);
  c->synthesized++;
  deliver(c, &a, ev);
  return 0;
}

/* Hands the reports out as the loop thread would; they must add up. */
static void take_reports(ctx *c, size_t *refused, size_t *dropped) {
  agentws__vreport *head = agentws__validator_take_reports(&c->v), *r;
  uint64_t n = 0;
  *refused = *dropped = 0;
  for (r = head; r != NULL; r = r->next) {
    CHECK(r->run_id != NULL && r->target_id != NULL);
    CHECK(memchr(r->message, '\0', sizeof(r->message)) != NULL);
    if (r->alert) {
      CHECK(r->alert == 1 || r->alert == 2);
      CHECK(r->rule == AGENTWS_ALERT_RUN_STALLED ||
            r->rule == AGENTWS_ALERT_TOOL_TIMEOUT);
      continue;
    }
    CHECK(agentws__rule_name(r->rule) != NULL);
    CHECK(r->outcome >= AGENTWS_OUTCOME_WARNED &&
          r->outcome <= AGENTWS_OUTCOME_DROPPED);
    *refused += r->outcome == AGENTWS_OUTCOME_REFUSED;
    *dropped += r->outcome == AGENTWS_OUTCOME_DROPPED;
    n++;
  }
  agentws__validator_reports_free(mem(), head);
  CHECK(sum(c->v.by_rule, AGENTWS__NRULES) ==
        sum(c->v.by_outcome, 4));
  c->reports += n;
  CHECK(sum(c->v.by_rule, AGENTWS__NRULES) ==
        c->reports + c->v.reports_dropped);
}

static void sweep(ctx *c) {
  size_t refused, dropped;
  uint64_t next;
  c->synthesized = 0;
  next = agentws__validator_sweep(&c->v, c->now, synth, c);
  CHECK(next == 0 || next > c->now);
  model_expire(&c->m, c->now);
  take_reports(c, &refused, &dropped);
  CHECK(refused == 0 && dropped == 0);
}

/* Codec contracts for |a|; then, if it built, the validator's turn. */
static void emit(ctx *c, const agentws__emit_args *a) {
  agentws__event *ev = (agentws__event *)1, *big = (agentws__event *)1;
  int ok = oracle(a), rv, rv_big, act, valid;
  size_t refused, dropped;

  rv_big = agentws__event_build(mem(), a, SIZE_MAX, &big);
  CHECK((rv_big == 0) == ok);
  CHECK(rv_big == 0 || big == NULL);
  CHECK(rv_big == 0 || rv_big == AGENTWS_ERR_INVALID_ARGUMENT ||
        rv_big == AGENTWS_ERR_INVALID_UTF8 ||
        rv_big == AGENTWS_ERR_INVALID_JSON || rv_big == AGENTWS_ERR_TOO_BIG);
  rv = agentws__event_build(mem(), a, c->max_bytes, &ev);
  CHECK(rv == 0 || ev == NULL);
  if (rv == 0) {
    CHECK(rv_big == 0 && ev->json_len == big->json_len &&
          memcmp(ev->json, big->json, ev->json_len) == 0);
    CHECK(ev->json_len + 21 <= c->max_bytes);
  } else if (rv == AGENTWS_ERR_TOO_BIG) {
    CHECK(rv_big != 0 || big->json_len + 21 > c->max_bytes);
  } else {
    CHECK(rv == rv_big);
  }
  if (rv_big == 0) /* the bigger twin is checked too: same bytes */
    check_event(a, big, 1);
  agentws__event_free(mem(), big);
  if (rv != 0)
    return;

  valid = c->m.on ? model_valid(&c->m, a) : -1;
  c->synthesized = 0;
  act = agentws__validator_check(&c->v, a, c->now, synth, c);
  CHECK(act == AGENTWS__V_DELIVER || act == AGENTWS__V_REFUSE ||
        act == AGENTWS__V_DROP);
  take_reports(c, &refused, &dropped);
  /* A refusal or a drop is reported once, as such. */
  CHECK(act != AGENTWS__V_REFUSE || refused == 1);
  CHECK(act != AGENTWS__V_DROP || dropped == 1);
  CHECK(act == AGENTWS__V_REFUSE || refused == 0);
  if (valid == 1)
    CHECK(act == AGENTWS__V_DELIVER);
  if (act == AGENTWS__V_DELIVER)
    deliver(c, a, ev);
  else
    agentws__event_free(mem(), ev);
}

/* ------------------------------------------------------------- input */

typedef struct rec {
  uint8_t type, flags, step;
  char *f[NFIELDS]; /* NUL-terminated copies, NULL when absent */
  size_t len[NFIELDS];
} rec;

static void rec_parse(rec *r, const uint8_t *p, size_t n) {
  size_t i = 3, k;
  memset(r, 0, sizeof(*r));
  r->type = p[0];
  r->flags = p[1];
  r->step = p[2];
  for (k = 0; k < NFIELDS && i <= n; k++) {
    const uint8_t *us = i < n ? memchr(p + i, US, n - i) : NULL;
    size_t end = us != NULL ? (size_t)(us - p) : n;
    size_t len = end - i;
    if (len > 0) { /* empty: absent; a lone EMPTY byte: "" */
      if (len == 1 && p[i] == EMPTY)
        len = 0;
      r->len[k] = len;
      r->f[k] = malloc(len + 1);
      CHECK(r->f[k] != NULL);
      if (len > 0)
        memcpy(r->f[k], p + i, len);
      r->f[k][len] = '\0';
    }
    i = end + 1;
  }
}

static void rec_free(rec *r) {
  size_t k;
  for (k = 0; k < NFIELDS; k++)
    free(r->f[k]);
}

static void run_record(ctx *c, const rec *r) {
  agentws__emit_args a;
  int type = r->type % 9;
  c->now += (uint64_t)r->step * r->step;
  if (type == 0) {
    sweep(c);
    return;
  }
  memset(&a, 0, sizeof(a));
  a.type = type;
  a.target = (r->flags & 1) ? AGENTWS_TARGET_ROOM : AGENTWS_TARGET_USER;
  a.run_id = r->f[0];
  a.target_id = r->f[1];
  a.agent = a.tool = a.code = a.custom_type = r->f[2];
  a.tool_call_id = a.message = r->f[3];
  a.severity = r->f[4];
  a.text = r->f[4] != NULL ? r->f[4] : "";
  a.text_len = r->len[4];
  a.data_json = r->f[5];
  a.args_json = a.result_json = r->f[6];
  a.ok = (r->flags >> 1) & 1;
  a.retryable = (r->flags >> 2) & 1;
  a.duration_ms = (r->flags & 8) ? -1 - (int64_t)(r->flags >> 4)
                                 : (int64_t)(r->flags >> 4) * 1000;
  a.ts_ms = r->step == 255   ? INT64_MIN
            : r->step == 254 ? INT64_MAX
                             : (int64_t)c->now;
  emit(c, &a);
  fuzz_ctl(r->f[2], r->f[3], r->f[0], r->f[4], r->len[4],
           (uint64_t)r->flags * 1000003u + r->step);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t max_bytes[] = {256, 1024, 4096, 262144};
  static const size_t max_runs[] = {1, 2, 3, 4, 8, 100, 1000, 100000};
  static const int64_t keep[] = {0, 100, 5000, 600000};
  int policy[AGENTWS__NRULES];
  uint32_t mixed;
  ctx c;
  size_t i, start, nrec = 0;
  int profile;

  if (size < 5 || size > 16384)
    return 0;
  memset(&c, 0, sizeof(c));
  profile = data[0] & 3;
  mixed = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16;
  for (i = 0; i < AGENTWS__NRULES; i++)
    policy[i] = profile == 0   ? AGENTWS_VALIDATION_REPAIR
                : profile == 1 ? AGENTWS_VALIDATION_STRICT
                : profile == 3 ? AGENTWS_VALIDATION_WARN
                               : (int)((mixed >> (2 * i)) & 3);
  c.max_bytes = max_bytes[(data[0] >> 2) & 3];
  agentws__validator_init(&c.v, mem(), policy, (data[0] & 0x80) ? 1000 : 0,
                          (data[0] & 0x80) ? 500 : 0,
                          max_runs[(data[0] >> 4) & 7], keep[data[4] & 3]);
  c.v.alerts = (data[4] >> 2) & 1;
  c.m.on = profile <= 1;
  c.m.max_runs = max_runs[(data[0] >> 4) & 7];
  c.m.keep_ms = keep[data[4] & 3];
  c.now = 1000;
  c.seq = (data[4] & 0x80) ? (uint64_t)INT64_MAX - 100000 : 0;

  for (start = 5; start < size && nrec < MAX_RECORDS; nrec++) {
    const uint8_t *rs = memchr(data + start, RS, size - start);
    size_t end = rs != NULL ? (size_t)(rs - data) : size;
    if (end - start >= 3) {
      rec r;
      rec_parse(&r, data + start, end - start);
      run_record(&c, &r);
      rec_free(&r);
    }
    start = end + 1;
  }
  window_flush(&c.w);
  agentws__validator_free(&c.v);
  model_free(&c.m);
  return 0;
}
