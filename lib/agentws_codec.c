/*
 * agentws.v1 codec (DESIGN.md §6). Every envelope is written once, on the
 * emitting thread, by a two-pass writer: a counting pass sizes the single
 * allocation exactly, a second pass fills it. Host JSON (data/args/result)
 * is checked with jansson but copied verbatim, never re-serialized.
 */
#include "agentws_codec.h"

#include <assert.h>
#include <string.h>

#include <jansson.h>

#include "agentws.h"
#include "agentws_utf8.h"

/* The most digits a uint64_t seq takes (18446744073709551615). */
#define SEQ_DIGITS 20
/* Reserved after json_len: the seq digits, '}' and a NUL, so a finished
 * envelope is also a C string (for logs and tests; never sent). */
#define SEQ_ROOM (SEQ_DIGITS + 2)

/* ------------------------------------------------------------ escaping */

/*
 * Per input byte: 0 copies as is; 1 is a two-byte escape (\" \\ \n \r \t
 * \b \f); 2 is \u00XX; 3 is 0xE2, the lead byte of U+2028/U+2029 (raw
 * they end a line in pre-ES2019 JavaScript), decided by looking ahead.
 */
static const uint8_t esc_tab[256] = {
    /* 0x00 */ 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 1, 1, 2, 2,
    /* 0x10 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* 0x20 */ 0, 0, 1,
    [0x5c] = 1,
    [0xe2] = 3};

static const char hex_digits[] = "0123456789abcdef";

static char named_escape(unsigned char c) {
  switch (c) {
  case '\b':
    return 'b';
  case '\t':
    return 't';
  case '\n':
    return 'n';
  case '\f':
    return 'f';
  case '\r':
    return 'r';
  default: /* '"' and '\\' escape as themselves */
    return (char)c;
  }
}

#define ONES ((uint64_t)0x0101010101010101u)
#define HIGHS (ONES * 0x80u)

/*
 * Whether 8 bytes may hold a byte the escaper cares about: < 0x20, '"',
 * '\\' or 0xE2 (the "has zero byte" / "has byte less than" bit tricks;
 * both are exact about existence, which is all we ask of them).
 */
static int word_special(uint64_t v) {
  uint64_t lt = (v - ONES * 0x20u) & ~v & HIGHS;
  uint64_t q = v ^ (ONES * 0x22u);
  uint64_t b = v ^ (ONES * 0x5cu);
  uint64_t e = v ^ (ONES * 0xe2u);
  q = (q - ONES) & ~q & HIGHS;
  b = (b - ONES) & ~b & HIGHS;
  e = (e - ONES) & ~e & HIGHS;
  return (lt | q | b | e) != 0;
}

/* Returns the first byte at or after |p| that is not plainly safe. Skips
 * eight bytes at a time: most text has no byte to escape at all. */
static const unsigned char *skip_safe(const unsigned char *p,
                                      const unsigned char *end) {
  uint64_t v;
  while ((size_t)(end - p) >= 8) {
    memcpy(&v, p, 8); /* unaligned-safe load */
    if (word_special(v))
      break;
    p += 8;
  }
  while (p < end && esc_tab[*p] == 0)
    p++;
  return p;
}

/* |p| points at 0xE2: is it U+2028 (E2 80 A8) or U+2029 (E2 80 A9)? */
static int is_line_sep(const unsigned char *p, const unsigned char *end) {
  return end - p >= 3 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9);
}

static size_t sat_add(size_t a, size_t b) {
  return b > SIZE_MAX - a ? SIZE_MAX : a + b;
}

/* Escaped size of |len| bytes (SIZE_MAX if that does not fit). */
static size_t esc_len(const char *s, size_t len) {
  const unsigned char *p, *end;
  size_t n = len;
  if (len == 0)
    return 0;
  p = (const unsigned char *)s;
  end = p + len;
  for (;;) {
    p = skip_safe(p, end);
    if (p == end)
      return n;
    switch (esc_tab[*p]) {
    case 1:
      n = sat_add(n, 1);
      p++;
      break;
    case 2:
      n = sat_add(n, 5);
      p++;
      break;
    default:
      if (is_line_sep(p, end)) {
        n = sat_add(n, 3);
        p += 3;
      } else {
        p++;
      }
      break;
    }
  }
}

/* Writes |len| bytes escaped at |d|; returns the end. |d| has esc_len()
 * bytes of room. */
static char *esc_write(char *d, const char *s, size_t len) {
  const unsigned char *p, *end, *run;
  if (len == 0)
    return d;
  p = (const unsigned char *)s;
  end = p + len;
  for (;;) {
    run = p;
    p = skip_safe(p, end);
    memcpy(d, run, (size_t)(p - run));
    d += p - run;
    if (p == end)
      return d;
    switch (esc_tab[*p]) {
    case 1:
      d[0] = '\\';
      d[1] = named_escape(*p);
      d += 2;
      p++;
      break;
    case 2:
      memcpy(d, "\\u00", 4);
      d[4] = hex_digits[*p >> 4];
      d[5] = hex_digits[*p & 15];
      d += 6;
      p++;
      break;
    default:
      if (is_line_sep(p, end)) {
        memcpy(d, p[2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
        d += 6;
        p += 3;
      } else {
        *d++ = (char)*p++;
      }
      break;
    }
  }
}

int agentws__json_escape(agentws__buf *out, const agentws__mem *mem,
                         const char *s, size_t len) {
  size_t n;
  int rv;
  if (len == 0)
    return 0;
  n = esc_len(s, len);
  if (n == SIZE_MAX)
    return AGENTWS_ERR_NOMEM;
  rv = agentws__buf_reserve(out, mem, n);
  if (rv != 0)
    return rv;
  if (n == len)
    memcpy(out->data + out->len, s, len); /* nothing to escape */
  else
    esc_write((char *)out->data + out->len, s, len);
  out->len += n;
  return 0;
}

/* ------------------------------------------------------ two-pass writer */

/* With p == NULL only counts (saturating), so the same code sizes an
 * output exactly and then writes it. */
typedef struct wr {
  char *p;  /* destination, or NULL to count only */
  size_t n; /* bytes written (or counted) so far */
} wr;

static void wr_put(wr *w, const char *s, size_t len) {
  if (w->p != NULL) {
    memcpy(w->p + w->n, s, len);
    w->n += len;
  } else {
    w->n = sat_add(w->n, len);
  }
}

#define WR_LIT(w, lit) wr_put((w), (lit), sizeof(lit) - 1)

static void wr_esc(wr *w, const char *s, size_t len) {
  if (w->p != NULL)
    w->n = (size_t)(esc_write(w->p + w->n, s, len) - w->p);
  else
    w->n = sat_add(w->n, esc_len(s, len));
}

/* A quoted, escaped string; NULL writes "" (control messages only ever
 * get library-made strings, and cannot report an error but NOMEM). */
static void wr_str(wr *w, const char *s) {
  if (s == NULL)
    s = "";
  WR_LIT(w, "\"");
  wr_esc(w, s, strlen(s));
  WR_LIT(w, "\"");
}

/* Decimal digits of |v| at |dst| (room for SEQ_DIGITS); returns count. */
static size_t u64_dec(char *dst, uint64_t v) {
  char tmp[SEQ_DIGITS];
  size_t n = 0, i;
  do {
    tmp[n++] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v != 0);
  for (i = 0; i < n; i++)
    dst[i] = tmp[n - 1 - i];
  return n;
}

static void wr_u64(wr *w, uint64_t v) {
  char d[SEQ_DIGITS];
  wr_put(w, d, u64_dec(d, v));
}

static void wr_i64(wr *w, int64_t v) {
  if (v < 0) {
    WR_LIT(w, "-");
    wr_u64(w, 0 - (uint64_t)v); /* well defined for INT64_MIN too */
  } else {
    wr_u64(w, (uint64_t)v);
  }
}

static void wr_bool(wr *w, int b) {
  if (b)
    WR_LIT(w, "true");
  else
    WR_LIT(w, "false");
}

/* ------------------------------------------------------------- events */

static const char *const type_names[] = {
    NULL,           "agent_started",   "agent_thinking", "tool_executing",
    "tool_completed", "agent_completed", "agent_error",    NULL};

/* Members each type writes into "data" itself; data_json may not repeat
 * them (a duplicate key means different things to different parsers).
 * "coalesced" is the merger's. */
static const char *const own_started[] = {"agent", NULL};
static const char *const own_thinking[] = {"text", "coalesced", NULL};
static const char *const own_executing[] = {"tool", "tool_call_id", "args",
                                            NULL};
static const char *const own_tool_completed[] = {
    "tool", "tool_call_id", "ok", "duration_ms", "result", NULL};
static const char *const own_completed[] = {"duration_ms", "result", NULL};
static const char *const own_error[] = {"code", "message", "severity",
                                        "retryable", NULL};
static const char *const own_none[] = {NULL};

static const char *const *const own_members[] = {
    NULL,          own_started,   own_thinking, own_executing,
    own_tool_completed, own_completed, own_error,    own_none};

/* What the checks found, for the writer. */
typedef struct prep {
  const char *type_name; /* the envelope's "type" (needs no escaping) */
  size_t type_len;
  const char *data; /* data_json's members, trimmed; data_len 0: none */
  size_t data_len;
  const char *args; /* trimmed args_json, or NULL */
  size_t args_len;
  const char *result; /* trimmed result_json, or NULL */
  size_t result_len;
  size_t text_off, text_len, extra_off, extra_len; /* set by the writer */
} prep;

/* A required string: non-NULL, non-empty, UTF-8, at most |max| bytes. */
static int check_str_max(const char *s, size_t max) {
  size_t n;
  if (s == NULL || s[0] == '\0')
    return AGENTWS_ERR_INVALID_ARGUMENT;
  n = strlen(s);
  if (n > max)
    return AGENTWS_ERR_TOO_BIG;
  if (!agentws__utf8_valid((const uint8_t *)s, n))
    return AGENTWS_ERR_INVALID_UTF8;
  return 0;
}

/* Ids and names (run, tool call, tool, agent, code, severity, target). */
static int check_str(const char *s) {
  return check_str_max(s, AGENTWS__MAX_NAME);
}

/* Types the server sends as control messages: an event named like one
 * would be mistaken for it by clients. */
static const char *const control_types[] = {
    "welcome", "gap", "error", "pong", "resumed", "joined", "left",
    "token_expiring", "ping", "resume", "ack", "join", "leave", "refresh"};

/* [a-z][a-z0-9_.-]{0,63}, not in the library's agent_ / tool_ space and
 * not a control message type. */
static int custom_type_ok(const char *t, size_t *len) {
  size_t i;
  if (t == NULL || t[0] < 'a' || t[0] > 'z')
    return 0;
  for (i = 1; t[i] != '\0'; i++) {
    char c = t[i];
    if (i >= 64)
      return 0;
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '.' || c == '-'))
      return 0;
  }
  if (strncmp(t, "agent_", 6) == 0 || strncmp(t, "tool_", 5) == 0)
    return 0;
  for (i = 0; i < sizeof(control_types) / sizeof(control_types[0]); i++)
    if (strcmp(t, control_types[i]) == 0)
      return 0;
  *len = strlen(t);
  return 1;
}

static int severity_ok(const char *s) {
  return strcmp(s, "info") == 0 || strcmp(s, "warning") == 0 ||
         strcmp(s, "error") == 0 || strcmp(s, "fatal") == 0;
}

/* JSON insignificant whitespace (RFC 8259 §2). */
static int json_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void trim(const char **s, size_t *len) {
  while (*len > 0 && json_ws((*s)[0])) {
    (*s)++;
    (*len)--;
  }
  while (*len > 0 && json_ws((*s)[*len - 1]))
    (*len)--;
}

/* jansson reports bad UTF-8 as its own error; keep that distinction. */
static int json_fail(const json_error_t *e) {
  return json_error_code(e) == json_error_invalid_utf8
             ? AGENTWS_ERR_INVALID_UTF8
             : AGENTWS_ERR_INVALID_JSON;
}

/* Checks |a| (everything but host JSON content) and fills |pp|. */
static int check_args(const agentws__emit_args *a, prep *pp) {
  int rv;
  memset(pp, 0, sizeof(*pp));
  if (a->type < AGENTWS__EV_AGENT_STARTED || a->type > AGENTWS__EV_CUSTOM)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (a->target != AGENTWS_TARGET_USER && a->target != AGENTWS_TARGET_ROOM)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if ((rv = check_str(a->target_id)) != 0)
    return rv;
  if (a->type == AGENTWS__EV_CUSTOM) {
    if (!custom_type_ok(a->custom_type, &pp->type_len))
      return AGENTWS_ERR_INVALID_ARGUMENT;
    pp->type_name = a->custom_type;
    /* Optional for custom events, but if given it must be a real id. */
    if (a->run_id != NULL && (rv = check_str(a->run_id)) != 0)
      return rv;
  } else {
    pp->type_name = type_names[a->type];
    pp->type_len = strlen(pp->type_name);
    if ((rv = check_str(a->run_id)) != 0)
      return rv;
  }

  switch (a->type) {
  case AGENTWS__EV_AGENT_STARTED:
    return check_str(a->agent);
  case AGENTWS__EV_AGENT_THINKING:
    /* A delta may be empty (e.g. one carrying only progress). */
    if (a->text == NULL && a->text_len != 0)
      return AGENTWS_ERR_INVALID_ARGUMENT;
    if (a->text_len != 0 &&
        !agentws__utf8_valid((const uint8_t *)a->text, a->text_len))
      return AGENTWS_ERR_INVALID_UTF8;
    return 0;
  case AGENTWS__EV_TOOL_EXECUTING:
  case AGENTWS__EV_TOOL_COMPLETED:
    if ((rv = check_str(a->tool)) != 0 ||
        (rv = check_str(a->tool_call_id)) != 0)
      return rv;
    if (a->type == AGENTWS__EV_TOOL_COMPLETED && a->duration_ms < 0)
      return AGENTWS_ERR_INVALID_ARGUMENT;
    return 0;
  case AGENTWS__EV_AGENT_COMPLETED:
    return a->duration_ms < 0 ? AGENTWS_ERR_INVALID_ARGUMENT : 0;
  case AGENTWS__EV_AGENT_ERROR:
    if ((rv = check_str(a->code)) != 0 ||
        (rv = check_str_max(a->message, AGENTWS__MAX_MESSAGE)) != 0 ||
        (rv = check_str(a->severity)) != 0)
      return rv;
    return severity_ok(a->severity) ? 0 : AGENTWS_ERR_INVALID_ARGUMENT;
  default:
    return 0;
  }
}

/*
 * Finds the slices of host JSON to copy, by shape only: this runs before
 * the size check, so an oversized payload is refused before jansson
 * spends time on it. json_check() then proves them valid.
 */
static int slice_json(const agentws__emit_args *a, prep *pp) {
  if (a->data_json != NULL) {
    const char *s = a->data_json;
    size_t len = strlen(s);
    trim(&s, &len);
    if (len < 2 || s[0] != '{' || s[len - 1] != '}')
      return AGENTWS_ERR_INVALID_JSON;
    s++;
    len -= 2;
    trim(&s, &len);
    pp->data = s;
    pp->data_len = len;
  }
  if (a->type == AGENTWS__EV_TOOL_EXECUTING && a->args_json != NULL) {
    pp->args = a->args_json;
    pp->args_len = strlen(pp->args);
    trim(&pp->args, &pp->args_len);
  }
  if ((a->type == AGENTWS__EV_TOOL_COMPLETED ||
       a->type == AGENTWS__EV_AGENT_COMPLETED) &&
      a->result_json != NULL) {
    pp->result = a->result_json;
    pp->result_len = strlen(pp->result);
    trim(&pp->result, &pp->result_len);
  }
  return 0;
}

/* 1 if |v| nests no deeper than |left| arrays/objects. */
static int depth_ok(json_t *v, int left) {
  size_t i;
  const char *k;
  json_t *x;
  if (!json_is_object(v) && !json_is_array(v))
    return 1;
  if (left == 0)
    return 0;
  if (json_is_array(v)) {
    json_array_foreach(v, i, x) if (!depth_ok(x, left - 1)) return 0;
    return 1;
  }
  json_object_foreach(v, k, x) if (!depth_ok(x, left - 1)) return 0;
  return 1;
}

/* Any JSON value, nested at most AGENTWS__MAX_DEPTH deep. */
static int json_check_any(const char *s) {
  json_error_t err;
  json_t *v = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  int rv;
  if (v == NULL)
    return json_fail(&err);
  rv = depth_ok(v, AGENTWS__MAX_DEPTH) ? 0 : AGENTWS_ERR_INVALID_JSON;
  json_decref(v);
  return rv;
}

static int json_check(const agentws__emit_args *a, const prep *pp) {
  int rv = 0;
  if (pp->args != NULL && (rv = json_check_any(a->args_json)) != 0)
    return rv;
  if (pp->result != NULL && (rv = json_check_any(a->result_json)) != 0)
    return rv;
  if (a->data_json != NULL) {
    json_error_t err;
    const char *const *own;
    json_t *obj =
        json_loads(a->data_json, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (obj == NULL)
      return json_fail(&err);
    rv = json_is_object(obj) && depth_ok(obj, AGENTWS__MAX_DEPTH)
             ? 0
             : AGENTWS_ERR_INVALID_JSON;
    /* Decoded keys, so "\u0074ext" collides with "text" too. */
    for (own = own_members[a->type]; rv == 0 && *own != NULL; own++)
      if (json_object_get(obj, *own) != NULL)
        rv = AGENTWS_ERR_INVALID_JSON;
    json_decref(obj);
  }
  return rv;
}

/* The envelope up to and including "seq": (see agentws_codec.h). */
static void write_envelope(wr *w, const agentws__emit_args *a, prep *pp) {
  WR_LIT(w, "{\"type\":\"");
  wr_put(w, pp->type_name, pp->type_len);
  WR_LIT(w, "\"");
  if (a->run_id != NULL) {
    WR_LIT(w, ",\"run_id\":");
    wr_str(w, a->run_id);
  }
  WR_LIT(w, ",\"ts\":");
  wr_i64(w, a->ts_ms);
  WR_LIT(w, ",\"data\":{");

  switch (a->type) {
  case AGENTWS__EV_AGENT_STARTED:
    WR_LIT(w, "\"agent\":");
    wr_str(w, a->agent);
    break;
  case AGENTWS__EV_AGENT_THINKING:
    WR_LIT(w, "\"text\":\"");
    pp->text_off = w->n;
    wr_esc(w, a->text, a->text_len);
    pp->text_len = w->n - pp->text_off;
    WR_LIT(w, "\"");
    break;
  case AGENTWS__EV_TOOL_EXECUTING:
  case AGENTWS__EV_TOOL_COMPLETED:
    WR_LIT(w, "\"tool\":");
    wr_str(w, a->tool);
    WR_LIT(w, ",\"tool_call_id\":");
    wr_str(w, a->tool_call_id);
    if (a->type == AGENTWS__EV_TOOL_EXECUTING) {
      if (pp->args != NULL) {
        WR_LIT(w, ",\"args\":");
        wr_put(w, pp->args, pp->args_len);
      }
      break;
    }
    WR_LIT(w, ",\"ok\":");
    wr_bool(w, a->ok);
    WR_LIT(w, ",\"duration_ms\":");
    wr_i64(w, a->duration_ms);
    if (pp->result != NULL) {
      WR_LIT(w, ",\"result\":");
      wr_put(w, pp->result, pp->result_len);
    }
    break;
  case AGENTWS__EV_AGENT_COMPLETED:
    WR_LIT(w, "\"duration_ms\":");
    wr_i64(w, a->duration_ms);
    if (pp->result != NULL) {
      WR_LIT(w, ",\"result\":");
      wr_put(w, pp->result, pp->result_len);
    }
    break;
  case AGENTWS__EV_AGENT_ERROR:
    WR_LIT(w, "\"code\":");
    wr_str(w, a->code);
    WR_LIT(w, ",\"message\":");
    wr_str(w, a->message);
    WR_LIT(w, ",\"severity\":");
    wr_str(w, a->severity);
    WR_LIT(w, ",\"retryable\":");
    wr_bool(w, a->retryable);
    break;
  default: /* custom: data_json members only */
    break;
  }

  pp->extra_off = w->n;
  if (pp->data_len != 0) {
    if (a->type != AGENTWS__EV_CUSTOM)
      WR_LIT(w, ",");
    wr_put(w, pp->data, pp->data_len);
  }
  pp->extra_len = w->n - pp->extra_off;
  WR_LIT(w, "}");

  if (a->target == AGENTWS_TARGET_ROOM) {
    WR_LIT(w, ",\"stream\":\"room:");
    wr_esc(w, a->target_id, strlen(a->target_id));
    WR_LIT(w, "\"");
  }
  WR_LIT(w, ",\"seq\":");
}

static int build(const agentws__mem *mem, agentws__evpool *pool,
                 const agentws__emit_args *a, size_t max_bytes,
                 agentws__event **out) {
  prep pp;
  wr w = {NULL, 0};
  size_t json_len, tid_len, run_len, size;
  agentws__event *ev;
  char *p;
  int rv;

  *out = NULL;
  if ((rv = check_args(a, &pp)) != 0 || (rv = slice_json(a, &pp)) != 0)
    return rv;

  write_envelope(&w, a, &pp);
  json_len = w.n;
  /* Counted with the longest seq, so no finalized frame exceeds it. */
  if (sat_add(json_len, SEQ_DIGITS + 1) > max_bytes)
    return AGENTWS_ERR_TOO_BIG;

  if ((rv = json_check(a, &pp)) != 0)
    return rv;

  tid_len = strlen(a->target_id);
  run_len = a->run_id != NULL ? strlen(a->run_id) + 1 : 0;
  size = sat_add(sizeof(*ev), AGENTWS__FRAME_ROOM);
  size = sat_add(size, json_len);
  size = sat_add(size, SEQ_ROOM);
  size = sat_add(size, tid_len + 1);
  size = sat_add(size, run_len);
  if (size == SIZE_MAX)
    return AGENTWS_ERR_NOMEM;
  ev = pool != NULL ? agentws__evpool_get(pool, size)
                    : agentws__mem_malloc(mem, size);
  if (ev == NULL)
    return AGENTWS_ERR_NOMEM;

  /* Layout: struct | frame room | json (+ seq room) | target_id\0 |
   * run_id\0 */
  memset(ev, 0, sizeof(*ev));
  ev->pool = pool;
  ev->block = size;
  ev->refcnt = 1; /* the builder's reference */
  ev->type = (uint8_t)a->type;
  ev->target = (uint8_t)a->target;
  ev->ts_ms = a->ts_ms;
  ev->json = (char *)(ev + 1) + AGENTWS__FRAME_ROOM;
  w.p = ev->json;
  w.n = 0;
  write_envelope(&w, a, &pp);
  assert(w.n == json_len);
  ev->json_len = json_len;
  ev->json[json_len] = '\0';
  if (a->type == AGENTWS__EV_AGENT_THINKING) {
    ev->text_off = pp.text_off;
    ev->text_len = pp.text_len;
    ev->extra_off = pp.extra_off;
    ev->extra_len = pp.extra_len;
  }

  p = ev->json + json_len + SEQ_ROOM;
  memcpy(p, a->target_id, tid_len + 1);
  ev->target_id = p;
  if (a->run_id != NULL) {
    p += tid_len + 1;
    memcpy(p, a->run_id, run_len);
    ev->run_id = p;
  }
  *out = ev;
  return 0;
}

int agentws__event_build(const agentws__mem *mem,
                         const agentws__emit_args *a, size_t max_bytes,
                         agentws__event **out) {
  return build(mem, NULL, a, max_bytes, out);
}

int agentws__event_build_pooled(agentws__evpool *pool,
                                const agentws__emit_args *a,
                                size_t max_bytes, agentws__event **out) {
  return build(pool->mem, pool, a, max_bytes, out);
}

void agentws__event_finalize(agentws__event *ev, uint64_t seq) {
  char *p = ev->json + ev->json_len;
  p += u64_dec(p, seq);
  *p++ = '}';
  *p = '\0';
  ev->seq = seq;
  ev->len = (size_t)(p - ev->json);
}

/* |mt|: from any thread (the pool's lock at once), else the loop's. */
static void free_event(const agentws__mem *mem, agentws__event *ev, int mt) {
  if (ev == NULL)
    return;
  if (ev->pool == NULL)
    agentws__mem_free(mem, ev);
  else if (mt)
    agentws__evpool_put_mt(ev->pool, ev, ev->block);
  else
    agentws__evpool_put(ev->pool, ev, ev->block);
}

void agentws__event_free(const agentws__mem *mem, agentws__event *ev) {
  free_event(mem, ev, 0);
}

void agentws__event_free_mt(const agentws__mem *mem, agentws__event *ev) {
  free_event(mem, ev, 1);
}

/*
 * The last event's envelope is the template: its bytes before the text
 * hold type, run_id, ts and "text":" ; after the text come the quote, its
 * extra members, and from the data's closing brace on its stream and seq.
 * Escaped texts concatenate to the escaped concatenation, since each is
 * whole UTF-8 and escaping works per code point.
 */
int agentws__event_write_merged(agentws__buf *out, const agentws__mem *mem,
                                agentws__event *const *evs, size_t n) {
  static const char coalesced[] = ",\"coalesced\":";
  const agentws__event *last;
  char num[SEQ_DIGITS];
  size_t nlen, mid_off, tail_off, total, i;
  uint8_t *d;
  int rv;

  if (n == 0)
    return 0;
  last = evs[n - 1];
  assert(last->type == AGENTWS__EV_AGENT_THINKING && last->len != 0);
  nlen = u64_dec(num, n);
  mid_off = last->text_off + last->text_len;
  tail_off = last->extra_off + last->extra_len;

  total = last->text_off;
  for (i = 0; i < n; i++)
    total = sat_add(total, evs[i]->text_len);
  total = sat_add(total, tail_off - mid_off);
  total = sat_add(total, sizeof(coalesced) - 1 + nlen);
  total = sat_add(total, last->len - tail_off);
  if (total == SIZE_MAX)
    return AGENTWS_ERR_NOMEM;
  if ((rv = agentws__buf_reserve(out, mem, total)) != 0)
    return rv;

  d = out->data + out->len;
  memcpy(d, last->json, last->text_off);
  d += last->text_off;
  for (i = 0; i < n; i++) {
    memcpy(d, evs[i]->json + evs[i]->text_off, evs[i]->text_len);
    d += evs[i]->text_len;
  }
  memcpy(d, last->json + mid_off, tail_off - mid_off);
  d += tail_off - mid_off;
  memcpy(d, coalesced, sizeof(coalesced) - 1);
  d += sizeof(coalesced) - 1;
  memcpy(d, num, nlen);
  d += nlen;
  memcpy(d, last->json + tail_off, last->len - tail_off);
  out->len += total;
  return 0;
}

/* ---------------------------------------------------- control messages */

/* Every field any control message has; each writer uses its own. */
typedef struct ctl {
  const char *type; /* "joined" / "left" for room messages */
  const char *session, *user, *epoch, *stream, *room, *code, *message;
  uint64_t seq, missed, from, to;
  int recovered;
} ctl;

typedef void (*ctl_fn)(wr *w, const ctl *c);

/* Counts, reserves once, writes: |out| is untouched on failure. */
static int ctl_append(agentws__buf *out, const agentws__mem *mem, ctl_fn fn,
                      const ctl *c) {
  wr w = {NULL, 0};
  size_t n;
  int rv;
  fn(&w, c);
  n = w.n;
  if (n == SIZE_MAX)
    return AGENTWS_ERR_NOMEM;
  if ((rv = agentws__buf_reserve(out, mem, n)) != 0)
    return rv;
  w.p = (char *)out->data + out->len;
  w.n = 0;
  fn(&w, c);
  assert(w.n == n);
  out->len += n;
  return 0;
}

static void welcome_fn(wr *w, const ctl *c) {
  WR_LIT(w, "{\"type\":\"welcome\",\"session\":");
  wr_str(w, c->session);
  WR_LIT(w, ",\"user\":");
  wr_str(w, c->user);
  WR_LIT(w, ",\"epoch\":");
  wr_str(w, c->epoch);
  WR_LIT(w, ",\"seq\":");
  wr_u64(w, c->seq);
  WR_LIT(w, ",\"recovered\":");
  wr_bool(w, c->recovered);
  WR_LIT(w, ",\"missed\":");
  wr_u64(w, c->missed);
  WR_LIT(w, "}");
}

int agentws__ctl_welcome(agentws__buf *out, const agentws__mem *mem,
                         const char *session, const char *user,
                         const char *epoch, uint64_t seq, int recovered,
                         uint64_t missed) {
  ctl c = {0};
  c.session = session;
  c.user = user;
  c.epoch = epoch;
  c.seq = seq;
  c.recovered = recovered;
  c.missed = missed;
  return ctl_append(out, mem, welcome_fn, &c);
}

static void resumed_fn(wr *w, const ctl *c) {
  WR_LIT(w, "{\"type\":\"resumed\"");
  if (c->stream != NULL) {
    WR_LIT(w, ",\"stream\":");
    wr_str(w, c->stream);
  }
  WR_LIT(w, ",\"epoch\":");
  wr_str(w, c->epoch);
  WR_LIT(w, ",\"seq\":");
  wr_u64(w, c->seq);
  WR_LIT(w, ",\"recovered\":");
  wr_bool(w, c->recovered);
  WR_LIT(w, ",\"missed\":");
  wr_u64(w, c->missed);
  WR_LIT(w, "}");
}

int agentws__ctl_resumed(agentws__buf *out, const agentws__mem *mem,
                         const char *stream, const char *epoch, uint64_t seq,
                         int recovered, uint64_t missed) {
  ctl c = {0};
  c.stream = stream;
  c.epoch = epoch;
  c.seq = seq;
  c.recovered = recovered;
  c.missed = missed;
  return ctl_append(out, mem, resumed_fn, &c);
}

static void gap_fn(wr *w, const ctl *c) {
  WR_LIT(w, "{\"type\":\"gap\"");
  if (c->stream != NULL) {
    WR_LIT(w, ",\"stream\":");
    wr_str(w, c->stream);
  }
  WR_LIT(w, ",\"from\":");
  wr_u64(w, c->from);
  WR_LIT(w, ",\"to\":");
  wr_u64(w, c->to);
  WR_LIT(w, "}");
}

int agentws__ctl_gap(agentws__buf *out, const agentws__mem *mem,
                     const char *stream, uint64_t from, uint64_t to) {
  ctl c = {0};
  c.stream = stream;
  c.from = from;
  c.to = to;
  return ctl_append(out, mem, gap_fn, &c);
}

static void error_fn(wr *w, const ctl *c) {
  WR_LIT(w, "{\"type\":\"error\",\"code\":");
  wr_str(w, c->code);
  WR_LIT(w, ",\"message\":");
  wr_str(w, c->message);
  WR_LIT(w, "}");
}

int agentws__ctl_error(agentws__buf *out, const agentws__mem *mem,
                       const char *code, const char *message) {
  ctl c = {0};
  c.code = code;
  c.message = message;
  return ctl_append(out, mem, error_fn, &c);
}

int agentws__ctl_pong(agentws__buf *out, const agentws__mem *mem) {
  static const char pong[] = "{\"type\":\"pong\"}";
  return agentws__buf_append(out, mem, pong, sizeof(pong) - 1);
}

static void room_fn(wr *w, const ctl *c) {
  const char *room = c->room != NULL ? c->room : "";
  WR_LIT(w, "{\"type\":");
  wr_str(w, c->type);
  WR_LIT(w, ",\"room\":");
  wr_str(w, room);
  WR_LIT(w, ",\"stream\":\"room:");
  wr_esc(w, room, strlen(room));
  WR_LIT(w, "\",\"epoch\":");
  wr_str(w, c->epoch);
  WR_LIT(w, ",\"seq\":");
  wr_u64(w, c->seq);
  WR_LIT(w, "}");
}

int agentws__ctl_room(agentws__buf *out, const agentws__mem *mem,
                      const char *type, const char *room, const char *epoch,
                      uint64_t seq) {
  ctl c = {0};
  c.type = type;
  c.room = room;
  c.epoch = epoch;
  c.seq = seq;
  return ctl_append(out, mem, room_fn, &c);
}
