/*
 * libFuzzer target: inbound client messages, room ids and the rate limiter.
 *
 * Besides "no crash, no leak", it checks the parser's contract: a refusal
 * carries a known code and no pointer into the JSON; a success has every
 * string its kind requires, each obeying the protocol's grammar and being
 * the very string in the parsed JSON; the kind agrees with "type"; the size
 * limit is exact; and the limiter never grants more than burst + refill.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agentws_inbound.h"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      abort();                                                                 \
  } while (0)

/* Reference checks, written apart from the library's. */
static int ref_room(const char *s) {
  size_t n = s != NULL ? strlen(s) : 0;
  size_t i;

  if (n < 1 || n > 128)
    return 0;
  for (i = 0; i < n; i++) {
    if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
               "0123456789_.:-",
               s[i]) == NULL)
      return 0;
  }
  return 1;
}

static int ref_type(const char *s) {
  size_t n = strlen(s);

  return n >= 1 && n <= 64 && s[0] >= 'a' && s[0] <= 'z' &&
         strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static int one_of(const char *s, const char *const *set) {
  for (; *set != NULL; set++) {
    if (strcmp(s, *set) == 0)
      return 1;
  }
  return 0;
}

static const char *const codes[] = {"too_large", "bad_json", "bad_message",
                                    "bad_field", NULL};
static const char *const own_types[] = {"resume", "ack",     "ping", "join",
                                        "leave",  "refresh", NULL};
static const char *const server_types[] = {
    "welcome", "gap",  "resumed",        "error", "pong",
    "joined",  "left", "token_expiring", NULL};

/* |s| is the string member |key| of |obj| itself, not a copy. */
static void check_member(json_t *obj, const char *key, const char *s) {
  json_t *v = json_object_get(obj, key);

  CHECK(v != NULL && json_is_string(v));
  CHECK(json_string_value(v) == s);
  CHECK(strlen(s) == json_string_length(v)); /* no embedded NUL */
}

static void check_uint(json_t *obj, const char *key, uint64_t n) {
  json_t *v = json_object_get(obj, key);

  CHECK(v != NULL && json_is_integer(v) && json_integer_value(v) >= 0);
  CHECK((uint64_t)json_integer_value(v) == n);
}

static void check_epoch(json_t *obj, const char *epoch) {
  check_member(obj, "epoch", epoch);
  CHECK(strlen(epoch) >= 1 && strlen(epoch) <= 64);
}

static void check_result(const agentws__inbound *in) {
  json_t *root = in->json;

  CHECK(in->kind >= AGENTWS__IN_ERROR && in->kind <= AGENTWS__IN_OTHER);
  if (in->kind == AGENTWS__IN_ERROR) {
    CHECK(in->error_code != NULL && one_of(in->error_code, codes));
    CHECK(in->error_message != NULL && in->error_message[0] != '\0');
    CHECK(in->json == NULL && in->type == NULL && in->epoch == NULL &&
          in->stream == NULL && in->room == NULL && in->token == NULL);
    return;
  }
  CHECK(in->error_code == NULL && in->error_message == NULL);
  CHECK(root != NULL && json_is_object(root));
  CHECK(in->type != NULL && ref_type(in->type));
  check_member(root, "type", in->type);
  CHECK(!one_of(in->type, server_types));
  /* Fields not of this kind stay NULL. */
  if (in->kind != AGENTWS__IN_RESUME && in->kind != AGENTWS__IN_JOIN)
    CHECK(in->epoch == NULL);
  if (in->kind != AGENTWS__IN_ACK)
    CHECK(in->stream == NULL);
  if (in->kind != AGENTWS__IN_JOIN && in->kind != AGENTWS__IN_LEAVE)
    CHECK(in->room == NULL);
  if (in->kind != AGENTWS__IN_REFRESH)
    CHECK(in->token == NULL);

  switch (in->kind) {
  case AGENTWS__IN_RESUME:
    CHECK(strcmp(in->type, "resume") == 0);
    CHECK(in->epoch != NULL);
    check_epoch(root, in->epoch);
    check_uint(root, "last_seq", in->last_seq);
    break;
  case AGENTWS__IN_ACK:
    CHECK(strcmp(in->type, "ack") == 0);
    check_uint(root, "seq", in->seq);
    if (in->stream != NULL) {
      check_member(root, "stream", in->stream);
      CHECK(strncmp(in->stream, "room:", 5) == 0 && ref_room(in->stream + 5));
    } else {
      CHECK(json_object_get(root, "stream") == NULL);
    }
    break;
  case AGENTWS__IN_PING:
    CHECK(strcmp(in->type, "ping") == 0);
    break;
  case AGENTWS__IN_JOIN:
    CHECK(strcmp(in->type, "join") == 0);
    CHECK(in->room != NULL && ref_room(in->room));
    check_member(root, "room", in->room);
    if (in->epoch != NULL)
      check_epoch(root, in->epoch);
    else
      CHECK(json_object_get(root, "epoch") == NULL);
    CHECK(in->has_last_seq == 0 || in->has_last_seq == 1);
    if (in->has_last_seq)
      check_uint(root, "last_seq", in->last_seq);
    else
      CHECK(in->last_seq == 0 && json_object_get(root, "last_seq") == NULL);
    break;
  case AGENTWS__IN_LEAVE:
    CHECK(strcmp(in->type, "leave") == 0);
    CHECK(in->room != NULL && ref_room(in->room));
    check_member(root, "room", in->room);
    break;
  case AGENTWS__IN_REFRESH:
    CHECK(strcmp(in->type, "refresh") == 0);
    CHECK(in->token != NULL && in->token[0] != '\0');
    check_member(root, "token", in->token);
    break;
  default: /* OTHER */
    CHECK(!one_of(in->type, own_types));
    break;
  }
}

static void fuzz_parse(const uint8_t *data, size_t size) {
  agentws__inbound in;
  agentws__inbound again;

  agentws__inbound_parse((const char *)data, size, size, &in);
  check_result(&in);
  CHECK(in.kind != AGENTWS__IN_ERROR ||
        strcmp(in.error_code, "too_large") != 0);
  /* Same input, same verdict. */
  agentws__inbound_parse((const char *)data, size, 65536, &again);
  CHECK(again.kind == in.kind);
  CHECK(in.kind != AGENTWS__IN_ERROR ||
        strcmp(again.error_code, in.error_code) == 0);
  agentws__inbound_free(&again);
  agentws__inbound_free(&in);
  CHECK(in.json == NULL);
  agentws__inbound_free(&in); /* idempotent */

  /* One byte under the size is refused before any parsing. */
  if (size > 0) {
    agentws__inbound_parse((const char *)data, size, size - 1, &in);
    CHECK(in.kind == AGENTWS__IN_ERROR && in.json == NULL);
    CHECK(strcmp(in.error_code, "too_large") == 0);
    agentws__inbound_free(&in);
  }
}

static void fuzz_room(const uint8_t *data, size_t size) {
  char buf[256];
  size_t n = size < sizeof(buf) - 1 ? size : sizeof(buf) - 1;

  memcpy(buf, data, n);
  buf[n] = '\0'; /* stops at the first NUL, as a C string would */
  CHECK(agentws__room_valid(buf) == ref_room(buf));
}

/*
 * The bytes drive a clock: each pair is a signed step in ms, so time also
 * goes backwards. Over any run the grants must not exceed the initial burst
 * plus rate times the forward time that passed.
 */
static void fuzz_rate(const uint8_t *data, size_t size) {
  agentws__rate r;
  double rate, burst, forward = 0;
  uint64_t now = 1000000;
  size_t granted = 0;
  size_t i;

  if (size < 2)
    return;
  rate = (double)data[0] / 4.0;         /* 0 .. 63.75 per second */
  burst = 1.0 + (double)(data[1] % 16); /* 1 .. 16 */
  agentws__rate_init(&r, now, burst);
  for (i = 2; i + 1 < size; i += 2) {
    int step = (int)(int8_t)data[i] * 8 + (data[i + 1] & 7);

    if (step >= 0) {
      now += (uint64_t)step;
      forward += (double)step;
    } else {
      now -= (uint64_t)(-step);
    }
    granted += (size_t)agentws__rate_take(&r, now, rate, burst);
    CHECK(r.tokens >= 0.0 && r.tokens <= burst);
    CHECK(r.last_ms == now);
    CHECK((double)granted <= burst + forward * rate / 1000.0 + 1e-6);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536)
    return 0;
  fuzz_parse(data, size);
  fuzz_room(data, size);
  fuzz_rate(data, size);
  return 0;
}
