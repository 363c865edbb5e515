/*
 * Inbound client messages (DESIGN §6, client → server): one JSON object per
 * text frame, classified by "type" and checked field by field, so the code
 * behind it only ever sees well-formed requests. Also the per-connection
 * token-bucket rate limiter.
 *
 * Error messages are static English text: they never quote the client's
 * bytes, so an error frame cannot be used to reflect content (and jansson's
 * own error text, which quotes the input, is deliberately not used).
 */
#include "agentws_inbound.h"

#include <string.h>

#include <jansson.h>

#define TYPE_MAX 64  /* [a-z][a-z0-9_.-]{0,63} */
#define EPOCH_MAX 64 /* an epoch is a short server-made id */
#define ROOM_MAX 128
#define STREAM_ROOM_PREFIX "room:"

/* Types only the server sends: a client sending one is confused or lying. */
static const char *const server_types[] = {
    "welcome", "gap",    "resumed",        "error",
    "pong",    "joined", "token_expiring", "left",
};

/* Sets |out| to a refusal; drops the JSON, since nothing may point into it. */
static void refuse(agentws__inbound *out, const char *code,
                   const char *message) {
  json_decref((json_t *)out->json);
  memset(out, 0, sizeof(*out));
  out->kind = AGENTWS__IN_ERROR;
  out->error_code = code;
  out->error_message = message;
}

static int type_char(char c, int first) {
  if (c >= 'a' && c <= 'z')
    return 1;
  if (first)
    return 0;
  return (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static int type_valid(const char *s, size_t len) {
  size_t i;

  if (len == 0 || len > TYPE_MAX)
    return 0;
  for (i = 0; i < len; i++) {
    if (!type_char(s[i], i == 0))
      return 0;
  }
  return 1;
}

static int is_server_type(const char *type) {
  size_t i;

  for (i = 0; i < sizeof(server_types) / sizeof(server_types[0]); i++) {
    if (strcmp(type, server_types[i]) == 0)
      return 1;
  }
  return 0;
}

/*
 * Reads |key| as a non-negative JSON integer. Returns 1 when present and
 * valid, 0 when absent, -1 when present but not one (a real, even 1.0, a
 * negative, a string, null...). Reals are refused rather than truncated so
 * "last_seq":1.5 cannot silently mean 1.
 */
static int get_uint(json_t *obj, const char *key, uint64_t *out) {
  json_t *v = json_object_get(obj, key);
  json_int_t n;

  if (v == NULL)
    return 0;
  if (!json_is_integer(v))
    return -1;
  n = json_integer_value(v);
  if (n < 0)
    return -1;
  *out = (uint64_t)n;
  return 1;
}

/* Like get_uint, for strings; |*len| is the byte length. */
static int get_string(json_t *obj, const char *key, const char **out,
                      size_t *len) {
  json_t *v = json_object_get(obj, key);

  if (v == NULL)
    return 0;
  if (!json_is_string(v))
    return -1;
  *out = json_string_value(v);
  *len = json_string_length(v);
  return 1;
}

/* Epoch: a string of 1..EPOCH_MAX bytes. Same return convention. */
static int get_epoch(json_t *obj, const char **out) {
  size_t len = 0;
  int rv = get_string(obj, "epoch", out, &len);

  if (rv == 1 && (len == 0 || len > EPOCH_MAX)) {
    *out = NULL;
    return -1;
  }
  return rv;
}

/* "room" (required): a valid room id. 1 if valid, else 0. */
static int get_room(json_t *obj, const char **out) {
  size_t len;

  if (get_string(obj, "room", out, &len) != 1 || !agentws__room_valid(*out)) {
    *out = NULL;
    return 0;
  }
  return 1;
}

/* "room:<room id>": the only stream a client can name besides its own. */
static int room_stream_valid(const char *stream) {
  size_t n = sizeof(STREAM_ROOM_PREFIX) - 1;

  return strncmp(stream, STREAM_ROOM_PREFIX, n) == 0 &&
         agentws__room_valid(stream + n);
}

static const char msg_epoch[] = "epoch must be a string of 1 to 64 characters";
static const char msg_last_seq[] = "last_seq must be a non-negative integer";
static const char msg_room[] =
    "room must be 1 to 128 characters of A-Z a-z 0-9 _ . : -";

static void parse_resume(json_t *obj, agentws__inbound *out) {
  if (get_epoch(obj, &out->epoch) != 1) {
    refuse(out, "bad_field", msg_epoch);
    return;
  }
  if (get_uint(obj, "last_seq", &out->last_seq) != 1) {
    refuse(out, "bad_field", msg_last_seq);
    return;
  }
  out->kind = AGENTWS__IN_RESUME;
}

static void parse_ack(json_t *obj, agentws__inbound *out) {
  const char *stream = NULL;
  size_t len = 0;
  int rv;

  if (get_uint(obj, "seq", &out->seq) != 1) {
    refuse(out, "bad_field", "seq must be a non-negative integer");
    return;
  }
  rv = get_string(obj, "stream", &stream, &len);
  if (rv == -1 || (rv == 1 && !room_stream_valid(stream))) {
    refuse(out, "bad_field",
           "stream must be \"room:\" followed by a valid room id");
    return;
  }
  out->stream = stream; /* NULL: the user's own stream */
  out->kind = AGENTWS__IN_ACK;
}

static void parse_join(json_t *obj, agentws__inbound *out) {
  int rv;

  if (!get_room(obj, &out->room)) {
    refuse(out, "bad_field", msg_room);
    return;
  }
  if (get_epoch(obj, &out->epoch) == -1) {
    refuse(out, "bad_field", msg_epoch);
    return;
  }
  rv = get_uint(obj, "last_seq", &out->last_seq);
  if (rv == -1) {
    refuse(out, "bad_field", msg_last_seq);
    return;
  }
  out->has_last_seq = rv == 1;
  out->kind = AGENTWS__IN_JOIN;
}

static void parse_leave(json_t *obj, agentws__inbound *out) {
  if (!get_room(obj, &out->room)) {
    refuse(out, "bad_field", msg_room);
    return;
  }
  out->kind = AGENTWS__IN_LEAVE;
}

static void parse_refresh(json_t *obj, agentws__inbound *out) {
  size_t len = 0;

  if (get_string(obj, "token", &out->token, &len) != 1 || len == 0) {
    refuse(out, "bad_field", "token must be a non-empty string");
    return;
  }
  out->kind = AGENTWS__IN_REFRESH;
}

void agentws__inbound_parse(const char *msg, size_t len, size_t max_len,
                            agentws__inbound *out) {
  json_error_t err;
  json_t *root;
  json_t *type;
  const char *t;

  memset(out, 0, sizeof(*out));
  /* Checked before parsing, so an oversized frame costs nothing. */
  if (len > max_len) {
    refuse(out, "too_large", "message exceeds the maximum size");
    return;
  }
  /*
   * JSON_REJECT_DUPLICATES: {"seq":1,"seq":9} must not mean whatever the
   * last key says. JSON_ALLOW_NUL is deliberately not passed, so jansson
   * refuses "\u0000" and every string we hand out is a whole C string.
   * JSON_DECODE_ANY: a bare scalar ("ping", 1) is valid JSON, so it is
   * bad_message (not an object) rather than bad_json. jansson also checks
   * UTF-8 and caps nesting depth.
   */
  root = json_loadb(msg != NULL ? msg : "", msg != NULL ? len : 0,
                    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
  if (root == NULL) {
    refuse(out, "bad_json", "message is not valid JSON");
    return;
  }
  out->json = root;
  if (!json_is_object(root)) {
    refuse(out, "bad_message", "message must be a JSON object");
    return;
  }
  type = json_object_get(root, "type");
  if (type == NULL || !json_is_string(type)) {
    refuse(out, "bad_message", "type must be a string");
    return;
  }
  t = json_string_value(type);
  if (!type_valid(t, json_string_length(type))) {
    refuse(out, "bad_message", "type must match [a-z][a-z0-9_.-]{0,63}");
    return;
  }
  out->type = t;
  if (strcmp(t, "resume") == 0) {
    parse_resume(root, out);
  } else if (strcmp(t, "ack") == 0) {
    parse_ack(root, out);
  } else if (strcmp(t, "ping") == 0) {
    out->kind = AGENTWS__IN_PING; /* other members are ignored */
  } else if (strcmp(t, "join") == 0) {
    parse_join(root, out);
  } else if (strcmp(t, "leave") == 0) {
    parse_leave(root, out);
  } else if (strcmp(t, "refresh") == 0) {
    parse_refresh(root, out);
  } else if (is_server_type(t)) {
    refuse(out, "bad_message", "type is reserved for server messages");
  } else {
    out->kind = AGENTWS__IN_OTHER;
  }
}

void agentws__inbound_free(agentws__inbound *in) {
  if (in == NULL)
    return;
  json_decref((json_t *)in->json);
  in->json = NULL;
  /* These pointed into the JSON just released. */
  in->type = NULL;
  in->epoch = NULL;
  in->stream = NULL;
  in->room = NULL;
  in->token = NULL;
}

int agentws__room_valid(const char *room) {
  size_t i;

  if (room == NULL)
    return 0;
  for (i = 0; room[i] != '\0'; i++) {
    char c = room[i];

    if (i >= ROOM_MAX)
      return 0;
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
          c == '-'))
      return 0;
  }
  return i > 0;
}

void agentws__rate_init(agentws__rate *r, uint64_t now_ms, double burst) {
  r->tokens = burst;
  r->last_ms = now_ms;
}

int agentws__rate_take(agentws__rate *r, uint64_t now_ms, double rate,
                       double burst) {
  if (now_ms > r->last_ms) {
    /* rate <= 0 (or NaN) adds nothing rather than draining the bucket. */
    if (rate > 0)
      r->tokens += (double)(now_ms - r->last_ms) * rate / 1000.0;
  }
  /*
   * A clock that went backwards counts as no time passing. last_ms follows
   * it either way: otherwise a large jump back would freeze the refill until
   * the clock caught up, throttling the client for that long.
   */
  r->last_ms = now_ms;
  if (r->tokens > burst)
    r->tokens = burst; /* also clamps when burst was lowered */
  if (r->tokens >= 1.0) {
    r->tokens -= 1.0;
    return 1;
  }
  return 0;
}
