/* Unit tests for the agentws.v1 codec (lib/agentws_codec.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "agentws.h"
#include "agentws_codec.h"

#define MAXB ((size_t)1 << 20)
#define TS 1763769600123LL

/* ------------------------------------------------------------ helpers */

/* Parses |len| bytes as one JSON object (duplicates rejected: the codec
 * must never produce them); the caller decrefs. Numbers decode as reals,
 * as jansson's integers stop at INT64_MAX and seqs do not. */
static json_t *parse_obj(const char *s, size_t len) {
  json_error_t err;
  json_t *v = json_loadb(
      s, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL,
      &err);
  if (v == NULL)
    fail_msg("invalid JSON (%s) in: %.*s", err.text, (int)len, s);
  assert_true(json_is_object(v));
  return v;
}

static void assert_json(const char *s, size_t len) {
  json_decref(parse_obj(s, len));
}

static agentws__emit_args args_of(int type) {
  agentws__emit_args a;
  memset(&a, 0, sizeof(a));
  a.type = type;
  a.target = AGENTWS_TARGET_USER;
  a.target_id = "alice";
  a.run_id = "r-7";
  a.ts_ms = TS;
  switch (type) {
  case AGENTWS__EV_AGENT_STARTED:
    a.agent = "planner";
    break;
  case AGENTWS__EV_AGENT_THINKING:
    a.text = "Hello";
    a.text_len = 5;
    break;
  case AGENTWS__EV_TOOL_EXECUTING:
  case AGENTWS__EV_TOOL_COMPLETED:
    a.tool = "web_search";
    a.tool_call_id = "c-1";
    a.ok = 1;
    a.duration_ms = 250;
    break;
  case AGENTWS__EV_AGENT_COMPLETED:
    a.duration_ms = 1200;
    break;
  case AGENTWS__EV_AGENT_ERROR:
    a.code = "rate_limited";
    a.message = "Too many requests";
    a.severity = "error";
    a.retryable = 1;
    break;
  case AGENTWS__EV_CUSTOM:
    a.custom_type = "ui.card";
    a.run_id = NULL;
    break;
  default:
    break;
  }
  return a;
}

static agentws__event *build_ok(const agentws__emit_args *a) {
  agentws__event *ev = NULL;
  assert_int_equal(agentws__event_build(agentws__mem_default(), a, MAXB, &ev),
                   0);
  assert_non_null(ev);
  return ev;
}

/* Builds, finalizes with seq 42, compares bytes and checks it parses. */
static void expect_env(const agentws__emit_args *a, const char *want) {
  agentws__event *ev = build_ok(a);
  assert_int_equal(ev->seq, 0);
  agentws__event_finalize(ev, 42);
  assert_int_equal(ev->seq, 42);
  assert_string_equal(ev->json, want);
  assert_int_equal(ev->len, strlen(want));
  assert_int_equal(ev->json_len + 3, ev->len); /* "42}" */
  assert_json(ev->json, ev->len);
  agentws__event_free(agentws__mem_default(), ev);
}

static void expect_err(const agentws__emit_args *a, int want) {
  agentws__event *ev = (agentws__event *)&ev; /* must be reset to NULL */
  assert_int_equal(agentws__event_build(agentws__mem_default(), a, MAXB, &ev),
                   want);
  assert_null(ev);
}

/* The escaper's output for |s|, as a NUL-terminated heap string. */
static char *escape(const char *s, size_t len) {
  agentws__buf b = {NULL, 0, 0};
  char *r;
  assert_int_equal(agentws__json_escape(&b, agentws__mem_default(), s, len), 0);
  r = agentws__mem_strndup(agentws__mem_default(),
                           b.len ? (const char *)b.data : "", b.len);
  agentws__buf_free(&b, agentws__mem_default());
  return r;
}

/* Obvious reference escaper, byte by byte. */
static size_t ref_escape(char *d, const unsigned char *s, size_t len) {
  size_t i, n = 0;
  for (i = 0; i < len; i++) {
    unsigned char c = s[i];
    if (c == '"' || c == '\\') {
      d[n++] = '\\';
      d[n++] = (char)c;
    } else if (c == '\n') {
      n += (size_t)sprintf(d + n, "\\n");
    } else if (c == '\r') {
      n += (size_t)sprintf(d + n, "\\r");
    } else if (c == '\t') {
      n += (size_t)sprintf(d + n, "\\t");
    } else if (c == '\b') {
      n += (size_t)sprintf(d + n, "\\b");
    } else if (c == '\f') {
      n += (size_t)sprintf(d + n, "\\f");
    } else if (c < 0x20) {
      n += (size_t)sprintf(d + n, "\\u%04x", c);
    } else if (c == 0xe2 && i + 2 < len && s[i + 1] == 0x80 &&
               (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
      n += (size_t)sprintf(d + n, "\\u%04x", s[i + 2] == 0xa8 ? 0x2028 : 0x2029);
      i += 2;
    } else {
      d[n++] = (char)c;
    }
  }
  return n;
}

/* ------------------------------------------------------ envelope bytes */

static void test_agent_started(void **state) {
  agentws__emit_args a = args_of(AGENTWS__EV_AGENT_STARTED);
  (void)state;
  expect_env(&a, "{\"type\":\"agent_started\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"agent\":\"planner\"},\"seq\":42}");
  a.data_json = "{\"thread_id\":\"t-1\",\"parent_run_id\":\"r-1\","
                "\"input\":{\"q\":\"hi\",\"agent\":1}}";
  expect_env(&a, "{\"type\":\"agent_started\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"agent\":\"planner\",\"thread_id\":"
                 "\"t-1\",\"parent_run_id\":\"r-1\",\"input\":{\"q\":\"hi\","
                 "\"agent\":1}},\"seq\":42}");
}

static void test_agent_thinking(void **state) {
  agentws__emit_args a = args_of(AGENTWS__EV_AGENT_THINKING);
  agentws__event *ev;
  (void)state;
  expect_env(&a, "{\"type\":\"agent_thinking\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"text\":\"Hello\"},\"seq\":42}");

  a.text = "a\"b\n";
  a.text_len = 4;
  a.data_json = "{\"progress\":0.5}";
  expect_env(&a, "{\"type\":\"agent_thinking\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"text\":\"a\\\"b\\n\","
                 "\"progress\":0.5},\"seq\":42}");

  /* Offsets a merger reuses. */
  ev = build_ok(&a);
  assert_int_equal(ev->text_len, 6);
  assert_memory_equal(ev->json + ev->text_off, "a\\\"b\\n", 6);
  assert_int_equal(ev->json[ev->text_off - 1], '"');
  assert_int_equal(ev->json[ev->text_off + ev->text_len], '"');
  assert_int_equal(ev->extra_off, ev->text_off + ev->text_len + 1);
  assert_int_equal(ev->extra_len, strlen(",\"progress\":0.5"));
  assert_memory_equal(ev->json + ev->extra_off, ",\"progress\":0.5",
                      ev->extra_len);
  assert_int_equal(ev->json[ev->extra_off + ev->extra_len], '}');
  agentws__event_free(agentws__mem_default(), ev);

  /* Empty text (NULL or not), no extras. */
  a.text = NULL;
  a.text_len = 0;
  a.data_json = NULL;
  ev = build_ok(&a);
  assert_int_equal(ev->text_len, 0);
  assert_int_equal(ev->extra_len, 0);
  assert_int_equal(ev->extra_off, ev->text_off + 1);
  agentws__event_finalize(ev, 42);
  assert_string_equal(ev->json,
                      "{\"type\":\"agent_thinking\",\"run_id\":\"r-7\",\"ts\":"
                      "1763769600123,\"data\":{\"text\":\"\"},\"seq\":42}");
  agentws__event_free(agentws__mem_default(), ev);

  /* Text is pointer + length: an embedded NUL is just a control char. */
  a.text = "x\0y";
  a.text_len = 3;
  expect_env(&a, "{\"type\":\"agent_thinking\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"text\":\"x\\u0000y\"},\"seq\":42}");
}

static void test_tool_executing(void **state) {
  agentws__emit_args a = args_of(AGENTWS__EV_TOOL_EXECUTING);
  (void)state;
  expect_env(&a, "{\"type\":\"tool_executing\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"tool\":\"web_search\","
                 "\"tool_call_id\":\"c-1\"},\"seq\":42}");
  a.args_json = "{\"q\":\"libuv\"}";
  expect_env(&a, "{\"type\":\"tool_executing\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"tool\":\"web_search\","
                 "\"tool_call_id\":\"c-1\",\"args\":{\"q\":\"libuv\"}},"
                 "\"seq\":42}");
  a.args_json = "null";
  a.data_json = "{\"attempt\":2}";
  expect_env(&a, "{\"type\":\"tool_executing\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"tool\":\"web_search\","
                 "\"tool_call_id\":\"c-1\",\"args\":null,\"attempt\":2},"
                 "\"seq\":42}");
}

static void test_tool_completed(void **state) {
  agentws__emit_args a = args_of(AGENTWS__EV_TOOL_COMPLETED);
  (void)state;
  expect_env(&a, "{\"type\":\"tool_completed\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"tool\":\"web_search\","
                 "\"tool_call_id\":\"c-1\",\"ok\":true,\"duration_ms\":250},"
                 "\"seq\":42}");
  a.ok = 0;
  a.duration_ms = 0;
  a.result_json = "[\"a\",2]";
  expect_env(&a, "{\"type\":\"tool_completed\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"tool\":\"web_search\","
                 "\"tool_call_id\":\"c-1\",\"ok\":false,\"duration_ms\":0,"
                 "\"result\":[\"a\",2]},\"seq\":42}");
  a.ok = 7; /* any nonzero is true */
  a.duration_ms = INT64_MAX;
  a.result_json = NULL;
  expect_env(&a, "{\"type\":\"tool_completed\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"tool\":\"web_search\","
                 "\"tool_call_id\":\"c-1\",\"ok\":true,\"duration_ms\":"
                 "9223372036854775807},\"seq\":42}");
}

static void test_agent_completed(void **state) {
  agentws__emit_args a = args_of(AGENTWS__EV_AGENT_COMPLETED);
  (void)state;
  expect_env(&a, "{\"type\":\"agent_completed\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"duration_ms\":1200},\"seq\":42}");
  a.result_json = "\"done\"";
  a.data_json = "{\"usage\":{\"input_tokens\":10,\"output_tokens\":20}}";
  expect_env(&a, "{\"type\":\"agent_completed\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"duration_ms\":1200,\"result\":"
                 "\"done\",\"usage\":{\"input_tokens\":10,\"output_tokens\":"
                 "20}},\"seq\":42}");
}

static void test_agent_error(void **state) {
  agentws__emit_args a = args_of(AGENTWS__EV_AGENT_ERROR);
  (void)state;
  expect_env(&a, "{\"type\":\"agent_error\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"code\":\"rate_limited\","
                 "\"message\":\"Too many requests\",\"severity\":\"error\","
                 "\"retryable\":true},\"seq\":42}");
  a.retryable = 0;
  a.severity = "fatal";
  a.message = "bad \"key\"\n";
  a.data_json = "{\"hint\":\"rotate the key\"}";
  expect_env(&a, "{\"type\":\"agent_error\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"code\":\"rate_limited\","
                 "\"message\":\"bad \\\"key\\\"\\n\",\"severity\":\"fatal\","
                 "\"retryable\":false,\"hint\":\"rotate the key\"},"
                 "\"seq\":42}");
  {
    static const char *const sev[] = {"info", "warning", "error", "fatal"};
    size_t i;
    for (i = 0; i < 4; i++) {
      agentws__event *ev;
      a.severity = sev[i];
      ev = build_ok(&a);
      agentws__event_finalize(ev, 1);
      assert_non_null(strstr(ev->json, sev[i]));
      assert_json(ev->json, ev->len);
      agentws__event_free(agentws__mem_default(), ev);
    }
  }
}

static void test_custom(void **state) {
  agentws__emit_args a = args_of(AGENTWS__EV_CUSTOM);
  (void)state;
  expect_env(&a, "{\"type\":\"ui.card\",\"ts\":1763769600123,\"data\":{},"
                 "\"seq\":42}");
  a.data_json = "{\"title\":\"T\",\"n\":[1,2]}";
  expect_env(&a, "{\"type\":\"ui.card\",\"ts\":1763769600123,\"data\":"
                 "{\"title\":\"T\",\"n\":[1,2]},\"seq\":42}");
  a.run_id = "r-9";
  a.data_json = "{}";
  expect_env(&a, "{\"type\":\"ui.card\",\"run_id\":\"r-9\",\"ts\":"
                 "1763769600123,\"data\":{},\"seq\":42}");
  /* Members named like the built-in types' are fine in custom data. */
  a.data_json = "{\"text\":\"x\",\"agent\":1}";
  a.ts_ms = INT64_MIN;
  expect_env(&a, "{\"type\":\"ui.card\",\"run_id\":\"r-9\",\"ts\":"
                 "-9223372036854775808,\"data\":{\"text\":\"x\",\"agent\":1},"
                 "\"seq\":42}");
}

static void test_room_stream(void **state) {
  agentws__emit_args a = args_of(AGENTWS__EV_TOOL_EXECUTING);
  agentws__event *ev;
  (void)state;
  a.target = AGENTWS_TARGET_ROOM;
  a.target_id = "lobby";
  expect_env(&a, "{\"type\":\"tool_executing\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"tool\":\"web_search\","
                 "\"tool_call_id\":\"c-1\"},\"stream\":\"room:lobby\","
                 "\"seq\":42}");

  /* The id lives in the same block, unescaped; the stream is escaped. */
  a.target_id = "q\"r";
  ev = build_ok(&a);
  assert_string_equal(ev->target_id, "q\"r");
  assert_string_equal(ev->run_id, "r-7");
  assert_int_equal(ev->target, AGENTWS_TARGET_ROOM);
  assert_int_equal(ev->type, AGENTWS__EV_TOOL_EXECUTING);
  assert_int_equal(ev->ts_ms, TS);
  assert_int_equal(ev->refcnt, 1);
  assert_null(ev->next);
  assert_true(ev->target_id > ev->json && ev->run_id > ev->target_id);
  agentws__event_finalize(ev, 42);
  assert_non_null(strstr(ev->json, ",\"stream\":\"room:q\\\"r\",\"seq\":42}"));
  assert_json(ev->json, ev->len);
  agentws__event_free(agentws__mem_default(), ev);

  /* A user target has no stream field; custom without run_id has NULL. */
  a = args_of(AGENTWS__EV_CUSTOM);
  ev = build_ok(&a);
  assert_null(ev->run_id);
  assert_string_equal(ev->target_id, "alice");
  assert_int_equal(ev->target, AGENTWS_TARGET_USER);
  assert_null(strstr(ev->json, "stream"));
  agentws__event_free(agentws__mem_default(), ev);
}

static void test_finalize(void **state) {
  agentws__emit_args a = args_of(AGENTWS__EV_CUSTOM);
  agentws__event *ev = build_ok(&a);
  (void)state;
  agentws__event_finalize(ev, 0);
  assert_string_equal(ev->json + ev->json_len, "0}");
  assert_int_equal(ev->len, ev->json_len + 2);
  agentws__event_finalize(ev, UINT64_MAX);
  assert_string_equal(ev->json + ev->json_len, "18446744073709551615}");
  assert_int_equal(ev->len, ev->json_len + 21);
  assert_int_equal(ev->seq, UINT64_MAX);
  assert_json(ev->json, ev->len);
  agentws__event_free(agentws__mem_default(), ev);
  agentws__event_free(agentws__mem_default(), NULL);
}

/* ------------------------------------------------------------ escaping */

static void expect_escape(const char *in, size_t len, const char *want) {
  char *got = escape(in, len);
  assert_string_equal(got, want);
  agentws__mem_free(agentws__mem_default(), got);
}

#define ESC(in, want) expect_escape((in), sizeof(in) - 1, (want))

static void test_escape(void **state) {
  char in[32], want[256];
  size_t i;
  (void)state;
  ESC("", "");
  ESC("plain text", "plain text");
  ESC("\"", "\\\"");
  ESC("\\", "\\\\");
  ESC("a\"b\\c", "a\\\"b\\\\c");
  ESC("\n\r\t\b\f", "\\n\\r\\t\\b\\f");
  ESC("\x01\x1f\x0b\x7f", "\\u0001\\u001f\\u000b\x7f");
  ESC("\0", "\\u0000");
  ESC("/", "/"); /* no need to escape the solidus */
  ESC("\xe2\x80\xa8", "\\u2028");
  ESC("\xe2\x80\xa9", "\\u2029");
  ESC("a\xe2\x80\xa8z\xe2\x80\xa9", "a\\u2028z\\u2029");
  /* Other E2 sequences and multi-byte UTF-8 stay raw. */
  ESC("\xe2\x80\xa6 \xe2\x80\xaa \xe2\x82\xac", "\xe2\x80\xa6 \xe2\x80\xaa "
                                                 "\xe2\x82\xac");
  ESC("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
      "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
  /* Every control character, against the reference. */
  for (i = 0; i < 0x20; i++)
    in[i] = (char)i;
  want[ref_escape(want, (const unsigned char *)in, 0x20)] = '\0';
  expect_escape(in, 0x20, want);
  /* Appends after what the buffer holds. */
  {
    agentws__buf b = {NULL, 0, 0};
    assert_int_equal(agentws__buf_append(&b, agentws__mem_default(), "x:", 2),
                     0);
    assert_int_equal(
        agentws__json_escape(&b, agentws__mem_default(), "\"q\"", 3), 0);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "x:\\\"q\\\"", 7);
    agentws__buf_free(&b, agentws__mem_default());
  }
}

/*
 * Random valid UTF-8 from tokens that exercise every escaper path, at
 * every offset relative to the 8-byte scan; checked against the reference
 * and by decoding with jansson back to the input.
 */
static void test_escape_random(void **state) {
  static const char *const tok[] = {
      "a", "Z", " ", "\"", "\\", "\n", "\x01", "\x1f", "\x7f", "/",
      "\xc3\xa9", "\xe2\x80\xa6", "\xe2\x80\xa8", "\xe2\x80\xa9",
      "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\0", "abcdefgh", "0123456789"};
  char in[1024], want[8192];
  uint32_t seed = 12345;
  int iter;
  (void)state;
  for (iter = 0; iter < 3000; iter++) {
    size_t len = 0, ntok, k, wlen;
    char *got, *quoted;
    json_t *v;
    json_error_t err;
    seed = seed * 1103515245u + 12345u;
    ntok = (seed >> 16) % 60;
    for (k = 0; k < ntok; k++) {
      const char *t;
      size_t tl;
      seed = seed * 1103515245u + 12345u;
      /* Mostly safe tokens, so long safe runs get tested too. */
      t = tok[(seed >> 16) % 4 == 0 ? (seed >> 8) % 19 : ((seed >> 8) & 1) * 17];
      tl = t[0] == '\0' ? 1 : strlen(t);
      memcpy(in + len, t, tl);
      len += tl;
    }
    wlen = ref_escape(want, (const unsigned char *)in, len);
    want[wlen] = '\0';
    got = escape(in, len);
    assert_string_equal(got, want);
    /* Round trip through a real parser. */
    quoted = agentws__mem_malloc(agentws__mem_default(), wlen + 3);
    snprintf(quoted, wlen + 3, "\"%s\"", got);
    v = json_loadb(quoted, wlen + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    assert_non_null(v);
    assert_int_equal(json_string_length(v), len);
    assert_memory_equal(json_string_value(v), in, len);
    json_decref(v);
    agentws__mem_free(agentws__mem_default(), quoted);
    agentws__mem_free(agentws__mem_default(), got);
  }
}

/* Escapes in every string field, and the event decodes to the inputs. */
static void test_escape_fields(void **state) {
  agentws__emit_args a = args_of(AGENTWS__EV_AGENT_ERROR);
  agentws__event *ev;
  json_t *root, *data;
  (void)state;
  a.target = AGENTWS_TARGET_ROOM;
  a.target_id = "r\xe2\x80\xa8";
  a.run_id = "run\t1";
  a.code = "c\\d";
  a.message = "line1\nline2 \xe2\x80\xa9 \xf0\x9f\x98\x80 \x01";
  ev = build_ok(&a);
  agentws__event_finalize(ev, 42);
  assert_string_equal(ev->json,
                      "{\"type\":\"agent_error\",\"run_id\":\"run\\t1\",\"ts\":"
                      "1763769600123,\"data\":{\"code\":\"c\\\\d\",\"message\":"
                      "\"line1\\nline2 \\u2029 \xf0\x9f\x98\x80 \\u0001\","
                      "\"severity\":\"error\",\"retryable\":true},\"stream\":"
                      "\"room:r\\u2028\",\"seq\":42}");
  root = parse_obj(ev->json, ev->len);
  data = json_object_get(root, "data");
  assert_string_equal(json_string_value(json_object_get(root, "run_id")),
                      a.run_id);
  assert_string_equal(json_string_value(json_object_get(root, "stream")),
                      "room:r\xe2\x80\xa8");
  assert_string_equal(json_string_value(json_object_get(data, "code")),
                      a.code);
  assert_string_equal(json_string_value(json_object_get(data, "message")),
                      a.message);
  json_decref(root);
  agentws__event_free(agentws__mem_default(), ev);
}

/* ---------------------------------------------------------- validation */

#define BAD_UTF8 "a\xff"

static void test_invalid_common(void **state) {
  int t;
  (void)state;
  for (t = AGENTWS__EV_AGENT_STARTED; t <= AGENTWS__EV_CUSTOM; t++) {
    agentws__emit_args a = args_of(t);
    a.type = 0;
    expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
    a.type = AGENTWS__EV_CUSTOM + 1;
    expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
    a = args_of(t);
    a.target = 0;
    expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
    a.target = 3;
    expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
    a = args_of(t);
    a.target_id = NULL;
    expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
    a.target_id = "";
    expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
    a.target_id = BAD_UTF8;
    expect_err(&a, AGENTWS_ERR_INVALID_UTF8);
    a.target_id = "\xed\xa0\x80"; /* a UTF-16 surrogate */
    expect_err(&a, AGENTWS_ERR_INVALID_UTF8);
    a = args_of(t);
    if (t == AGENTWS__EV_CUSTOM) {
      a.run_id = "";
      expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
      a.run_id = BAD_UTF8;
      expect_err(&a, AGENTWS_ERR_INVALID_UTF8);
    } else {
      a.run_id = NULL;
      expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
      a.run_id = "";
      expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
      a.run_id = BAD_UTF8;
      expect_err(&a, AGENTWS_ERR_INVALID_UTF8);
    }
  }
}

/* Sets the string field at |off| in |a| and expects |want|. */
static void expect_str_field(int type, size_t off) {
  agentws__emit_args a = args_of(type);
  const char **f = (const char **)(void *)((char *)&a + off);
  *f = NULL;
  expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
  *f = "";
  expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
  *f = BAD_UTF8;
  expect_err(&a, AGENTWS_ERR_INVALID_UTF8);
  *f = "\xc0\x80"; /* overlong NUL */
  expect_err(&a, AGENTWS_ERR_INVALID_UTF8);
}

static void test_invalid_fields(void **state) {
  agentws__emit_args a;
  (void)state;
  expect_str_field(AGENTWS__EV_AGENT_STARTED,
                   offsetof(agentws__emit_args, agent));
  expect_str_field(AGENTWS__EV_TOOL_EXECUTING,
                   offsetof(agentws__emit_args, tool));
  expect_str_field(AGENTWS__EV_TOOL_EXECUTING,
                   offsetof(agentws__emit_args, tool_call_id));
  expect_str_field(AGENTWS__EV_TOOL_COMPLETED,
                   offsetof(agentws__emit_args, tool));
  expect_str_field(AGENTWS__EV_TOOL_COMPLETED,
                   offsetof(agentws__emit_args, tool_call_id));
  expect_str_field(AGENTWS__EV_AGENT_ERROR,
                   offsetof(agentws__emit_args, code));
  expect_str_field(AGENTWS__EV_AGENT_ERROR,
                   offsetof(agentws__emit_args, message));
  expect_str_field(AGENTWS__EV_AGENT_ERROR,
                   offsetof(agentws__emit_args, severity));

  /* Thinking text: may be empty, must be there if it has a length. */
  a = args_of(AGENTWS__EV_AGENT_THINKING);
  a.text = NULL;
  a.text_len = 3;
  expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
  a.text = "ab\xe2\x80"; /* truncated sequence */
  a.text_len = 4;
  expect_err(&a, AGENTWS_ERR_INVALID_UTF8);
  a.text = "\xe2\x80\xa8";
  a.text_len = 2; /* length cuts the code point */
  expect_err(&a, AGENTWS_ERR_INVALID_UTF8);

  /* Durations. */
  a = args_of(AGENTWS__EV_TOOL_COMPLETED);
  a.duration_ms = -1;
  expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
  a = args_of(AGENTWS__EV_AGENT_COMPLETED);
  a.duration_ms = INT64_MIN;
  expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);

  /* Severity. */
  a = args_of(AGENTWS__EV_AGENT_ERROR);
  a.severity = "debug";
  expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
  a.severity = "Error";
  expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
  a.severity = "errors";
  expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
}

static void test_custom_type_names(void **state) {
  static const char *const bad[] = {NULL,      "",        "A",     "Ab",
                                    "1abc",    "_x",      "a b",   "a/b",
                                    "aB",      "agent_x", "tool_", "tool_y",
                                    "agent_",  "caf\xc3\xa9"};
  static const char *const good[] = {"a", "x.y-z_1", "agentx", "toolbox",
                                     "agent", "tool", "a9", "z.-_"};
  char name[80];
  size_t i;
  agentws__emit_args a = args_of(AGENTWS__EV_CUSTOM);
  (void)state;
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    a.custom_type = bad[i];
    expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
  }
  for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    agentws__event *ev;
    json_t *root;
    a.custom_type = good[i];
    ev = build_ok(&a);
    agentws__event_finalize(ev, 42);
    root = parse_obj(ev->json, ev->len);
    assert_string_equal(json_string_value(json_object_get(root, "type")),
                        good[i]);
    json_decref(root);
    agentws__event_free(agentws__mem_default(), ev);
  }
  /* 64 characters is the longest name. */
  memset(name, 'a', sizeof(name));
  name[64] = '\0';
  a.custom_type = name;
  agentws__event_free(agentws__mem_default(), build_ok(&a));
  name[64] = 'a';
  name[65] = '\0';
  expect_err(&a, AGENTWS_ERR_INVALID_ARGUMENT);
}

static void test_invalid_json(void **state) {
  static const char *const bad_data[] = {
      "",          " ",           "[]",          "1",
      "\"s\"",     "null",        "{",           "}",
      "{\"a\":}",  "{\"a\":1,}",  "{} {}",       "{}x",
      "{'a':1}",   "{\"a\":1,\"a\":2}", "{\"o\":{\"b\":1,\"b\":1}}",
      "{\"a\":\"\\ud800\"}", "{\"a\":01}", "{\"a\":NaN}"};
  static const char *const bad_any[] = {"", "  ", "{", "tru", "[1,]",
                                        "1 2", "'x'", "\"a"};
  agentws__emit_args a;
  size_t i;
  int t;
  (void)state;
  for (t = AGENTWS__EV_AGENT_STARTED; t <= AGENTWS__EV_CUSTOM; t++) {
    for (i = 0; i < sizeof(bad_data) / sizeof(bad_data[0]); i++) {
      a = args_of(t);
      a.data_json = bad_data[i];
      expect_err(&a, AGENTWS_ERR_INVALID_JSON);
    }
    a = args_of(t);
    a.data_json = "{\"a\":\"x" BAD_UTF8 "\"}";
    expect_err(&a, AGENTWS_ERR_INVALID_UTF8);
  }
  for (i = 0; i < sizeof(bad_any) / sizeof(bad_any[0]); i++) {
    a = args_of(AGENTWS__EV_TOOL_EXECUTING);
    a.args_json = bad_any[i];
    expect_err(&a, AGENTWS_ERR_INVALID_JSON);
    a = args_of(AGENTWS__EV_TOOL_COMPLETED);
    a.result_json = bad_any[i];
    expect_err(&a, AGENTWS_ERR_INVALID_JSON);
    a = args_of(AGENTWS__EV_AGENT_COMPLETED);
    a.result_json = bad_any[i];
    expect_err(&a, AGENTWS_ERR_INVALID_JSON);
  }
  a = args_of(AGENTWS__EV_TOOL_EXECUTING);
  a.args_json = "\"" BAD_UTF8 "\"";
  expect_err(&a, AGENTWS_ERR_INVALID_UTF8);
  /* Any JSON value is a valid args/result, even with a \u0000. */
  a.args_json = " \"\\u0000\" ";
  agentws__event_free(agentws__mem_default(), build_ok(&a));
}

static void test_member_collision(void **state) {
  static const struct {
    int type;
    const char *member;
  } own[] = {
      {AGENTWS__EV_AGENT_STARTED, "agent"},
      {AGENTWS__EV_AGENT_THINKING, "text"},
      {AGENTWS__EV_AGENT_THINKING, "coalesced"},
      {AGENTWS__EV_TOOL_EXECUTING, "tool"},
      {AGENTWS__EV_TOOL_EXECUTING, "tool_call_id"},
      {AGENTWS__EV_TOOL_EXECUTING, "args"},
      {AGENTWS__EV_TOOL_COMPLETED, "tool"},
      {AGENTWS__EV_TOOL_COMPLETED, "tool_call_id"},
      {AGENTWS__EV_TOOL_COMPLETED, "ok"},
      {AGENTWS__EV_TOOL_COMPLETED, "duration_ms"},
      {AGENTWS__EV_TOOL_COMPLETED, "result"},
      {AGENTWS__EV_AGENT_COMPLETED, "duration_ms"},
      {AGENTWS__EV_AGENT_COMPLETED, "result"},
      {AGENTWS__EV_AGENT_ERROR, "code"},
      {AGENTWS__EV_AGENT_ERROR, "message"},
      {AGENTWS__EV_AGENT_ERROR, "severity"},
      {AGENTWS__EV_AGENT_ERROR, "retryable"},
  };
  char data[128];
  agentws__emit_args a;
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
    a = args_of(own[i].type);
    snprintf(data, sizeof(data), "{\"x\":1,\"%s\":null}", own[i].member);
    a.data_json = data;
    expect_err(&a, AGENTWS_ERR_INVALID_JSON);
  }
  /* Keys compare decoded: \u0074ext is "text". */
  a = args_of(AGENTWS__EV_AGENT_THINKING);
  a.data_json = "{\"\\u0074ext\":\"x\"}";
  expect_err(&a, AGENTWS_ERR_INVALID_JSON);
  /* Nested members and near names do not collide. */
  a.data_json = "{\"progress\":1,\"texts\":{\"text\":1},\"Text\":2}";
  agentws__event_free(agentws__mem_default(), build_ok(&a));
}

/* ------------------------------------------------- trimmed host JSON */

static void test_trimmed_copies(void **state) {
  agentws__emit_args a = args_of(AGENTWS__EV_TOOL_COMPLETED);
  (void)state;
  a.result_json = "\n\t [ 1 , {\"a\" : 2} ]\r\n ";
  a.data_json = " \r\n\t{ \n \"x\" : 1 , \"y\":[1, 2]\t\n}\n ";
  expect_env(&a, "{\"type\":\"tool_completed\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"tool\":\"web_search\","
                 "\"tool_call_id\":\"c-1\",\"ok\":true,\"duration_ms\":250,"
                 "\"result\":[ 1 , {\"a\" : 2} ],\"x\" : 1 , \"y\":[1, 2]},"
                 "\"seq\":42}");
  a = args_of(AGENTWS__EV_TOOL_EXECUTING);
  a.args_json = "   \"q\"\n";
  a.data_json = " {  \t\n } ";
  expect_env(&a, "{\"type\":\"tool_executing\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"tool\":\"web_search\","
                 "\"tool_call_id\":\"c-1\",\"args\":\"q\"},\"seq\":42}");
  a = args_of(AGENTWS__EV_AGENT_COMPLETED);
  a.result_json = " 5 ";
  a.data_json = "{ }";
  expect_env(&a, "{\"type\":\"agent_completed\",\"run_id\":\"r-7\",\"ts\":"
                 "1763769600123,\"data\":{\"duration_ms\":1200,\"result\":5},"
                 "\"seq\":42}");
  a = args_of(AGENTWS__EV_CUSTOM);
  a.data_json = "\n{ \"k\" : \"v\" }\n";
  expect_env(&a, "{\"type\":\"ui.card\",\"ts\":1763769600123,\"data\":"
                 "{\"k\" : \"v\"},\"seq\":42}");
  /* Host strings are copied verbatim, not re-escaped. */
  a.data_json = "{\"s\":\"\\u00e9\\/\xe2\x80\xa8\"}";
  expect_env(&a, "{\"type\":\"ui.card\",\"ts\":1763769600123,\"data\":"
                 "{\"s\":\"\\u00e9\\/\xe2\x80\xa8\"},\"seq\":42}");
}

/* ------------------------------------------------------------ too big */

static void test_too_big(void **state) {
  agentws__emit_args a = args_of(AGENTWS__EV_AGENT_THINKING);
  agentws__event *ev;
  char text[100];
  size_t json_len;
  (void)state;
  /* 100 control characters escape to 600 bytes: escaping counts. */
  memset(text, '\x01', sizeof(text));
  a.text = text;
  a.text_len = sizeof(text);
  a.data_json = "{\"progress\":0.25}";
  ev = build_ok(&a);
  json_len = ev->json_len;
  assert_true(json_len > 600);
  agentws__event_free(agentws__mem_default(), ev);

  /* The limit holds with room for the longest seq and the brace. */
  ev = NULL;
  assert_int_equal(agentws__event_build(agentws__mem_default(), &a,
                                        json_len + 21, &ev),
                   0);
  agentws__event_finalize(ev, UINT64_MAX);
  assert_int_equal(ev->len, json_len + 21);
  agentws__event_free(agentws__mem_default(), ev);
  ev = NULL;
  assert_int_equal(agentws__event_build(agentws__mem_default(), &a,
                                        json_len + 20, &ev),
                   AGENTWS_ERR_TOO_BIG);
  assert_null(ev);
  assert_int_equal(
      agentws__event_build(agentws__mem_default(), &a, 600, &ev),
      AGENTWS_ERR_TOO_BIG);

  /* A big payload is refused by size, whatever JSON it holds. */
  a = args_of(AGENTWS__EV_TOOL_COMPLETED);
  a.result_json = "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]";
  assert_int_equal(agentws__event_build(agentws__mem_default(), &a, 100, &ev),
                   AGENTWS_ERR_TOO_BIG);
  assert_null(ev);
}

/* ------------------------------------------------------------- merging */

static agentws__event *thinking(const char *text, const char *data,
                                int64_t ts, uint64_t seq) {
  agentws__emit_args a = args_of(AGENTWS__EV_AGENT_THINKING);
  agentws__event *ev;
  a.target = AGENTWS_TARGET_ROOM;
  a.target_id = "r1";
  a.text = text;
  a.text_len = strlen(text);
  a.data_json = data;
  a.ts_ms = ts;
  ev = build_ok(&a);
  agentws__event_finalize(ev, seq);
  return ev;
}

static void test_merged(void **state) {
  static const char *const texts[] = {"Hel\"lo", "\n wor\\ld\t",
                                      ("\xe2\x80\xa8" "end caf\xc3\xa9")};
  static const char want[] =
      "{\"type\":\"agent_thinking\",\"run_id\":\"r-7\",\"ts\":3000,\"data\":"
      "{\"text\":\"Hel\\\"lo\\n wor\\\\ld\\t\\u2028end caf\xc3\xa9\","
      "\"progress\":0.9,\"coalesced\":3},\"stream\":\"room:r1\",\"seq\":7}";
  agentws__event *evs[3];
  agentws__buf b = {NULL, 0, 0};
  json_t *root, *data;
  char all[64];
  size_t i;
  (void)state;
  evs[0] = thinking(texts[0], "{\"progress\":0.1}", 1000, 5);
  evs[1] = thinking(texts[1], NULL, 2000, 6);
  /* Extras come from the last event only, as its trimmed copy. */
  evs[2] = thinking(texts[2], " {\n\"progress\":0.9 } ", 3000, 7);

  assert_int_equal(agentws__buf_append(&b, agentws__mem_default(), "#", 1), 0);
  assert_int_equal(
      agentws__event_write_merged(&b, agentws__mem_default(), evs, 3), 0);
  assert_int_equal(b.len, 1 + sizeof(want) - 1);
  assert_memory_equal(b.data, "#", 1);
  assert_memory_equal(b.data + 1, want, sizeof(want) - 1);

  root = parse_obj((const char *)b.data + 1, b.len - 1);
  data = json_object_get(root, "data");
  snprintf(all, sizeof(all), "%s%s%s", texts[0], texts[1], texts[2]);
  assert_string_equal(json_string_value(json_object_get(data, "text")), all);
  assert_true(json_number_value(json_object_get(data, "coalesced")) == 3);
  assert_true(json_number_value(json_object_get(root, "seq")) == 7);
  assert_true(json_number_value(json_object_get(root, "ts")) == 3000);
  json_decref(root);

  /* One event, no extras, user stream: still well formed. */
  for (i = 0; i < 3; i++)
    agentws__event_free(agentws__mem_default(), evs[i]);
  {
    agentws__emit_args a = args_of(AGENTWS__EV_AGENT_THINKING);
    agentws__event *one = build_ok(&a);
    agentws__event_finalize(one, 9);
    b.len = 0;
    assert_int_equal(
        agentws__event_write_merged(&b, agentws__mem_default(), &one, 1), 0);
    assert_int_equal(b.len, strlen("{\"type\":\"agent_thinking\",\"run_id\":"
                                   "\"r-7\",\"ts\":1763769600123,\"data\":{"
                                   "\"text\":\"Hello\",\"coalesced\":1},"
                                   "\"seq\":9}"));
    assert_memory_equal(b.data,
                        "{\"type\":\"agent_thinking\",\"run_id\":\"r-7\",\"ts\":"
                        "1763769600123,\"data\":{\"text\":\"Hello\","
                        "\"coalesced\":1},\"seq\":9}",
                        b.len);
    assert_json((const char *)b.data, b.len);
    /* Nothing to merge: nothing written. */
    b.len = 0;
    assert_int_equal(
        agentws__event_write_merged(&b, agentws__mem_default(), &one, 0), 0);
    assert_int_equal(b.len, 0);
    agentws__event_free(agentws__mem_default(), one);
  }
  agentws__buf_free(&b, agentws__mem_default());
}

/* ----------------------------------------------------- control messages */

static void expect_buf(agentws__buf *b, const char *want) {
  assert_int_equal(b->len, strlen(want));
  assert_memory_equal(b->data, want, b->len);
  assert_json((const char *)b->data, b->len);
  b->len = 0;
}

static void test_ctl(void **state) {
  const agentws__mem *m = agentws__mem_default();
  agentws__buf b = {NULL, 0, 0};
  (void)state;
  assert_int_equal(
      agentws__ctl_welcome(&b, m, "s-91c2", "alice", "e-5f1a", 41, 1, 0), 0);
  expect_buf(&b, "{\"type\":\"welcome\",\"session\":\"s-91c2\",\"user\":"
                 "\"alice\",\"epoch\":\"e-5f1a\",\"seq\":41,\"recovered\":"
                 "true,\"missed\":0}");
  assert_int_equal(agentws__ctl_welcome(&b, m, "s", "b\"ob\n", "e", 0, 0,
                                        UINT64_MAX),
                   0);
  expect_buf(&b, "{\"type\":\"welcome\",\"session\":\"s\",\"user\":"
                 "\"b\\\"ob\\n\",\"epoch\":\"e\",\"seq\":0,\"recovered\":"
                 "false,\"missed\":18446744073709551615}");

  assert_int_equal(agentws__ctl_resumed(&b, m, NULL, "e-1", 17, 1, 0), 0);
  expect_buf(&b, "{\"type\":\"resumed\",\"epoch\":\"e-1\",\"seq\":17,"
                 "\"recovered\":true,\"missed\":0}");
  assert_int_equal(agentws__ctl_resumed(&b, m, "room:lobby", "e-1", 3, 0, 2),
                   0);
  expect_buf(&b, "{\"type\":\"resumed\",\"stream\":\"room:lobby\",\"epoch\":"
                 "\"e-1\",\"seq\":3,\"recovered\":false,\"missed\":2}");

  assert_int_equal(agentws__ctl_gap(&b, m, NULL, 5, 9), 0);
  expect_buf(&b, "{\"type\":\"gap\",\"from\":5,\"to\":9}");
  assert_int_equal(agentws__ctl_gap(&b, m, "room:x", 1, UINT64_MAX), 0);
  expect_buf(&b, "{\"type\":\"gap\",\"stream\":\"room:x\",\"from\":1,\"to\":"
                 "18446744073709551615}");

  assert_int_equal(agentws__ctl_error(&b, m, "bad_message",
                                      "expected \"type\"\t\xe2\x80\xa8"),
                   0);
  expect_buf(&b, "{\"type\":\"error\",\"code\":\"bad_message\",\"message\":"
                 "\"expected \\\"type\\\"\\t\\u2028\"}");

  assert_int_equal(agentws__ctl_pong(&b, m), 0);
  expect_buf(&b, "{\"type\":\"pong\"}");

  assert_int_equal(agentws__ctl_room(&b, m, "joined", "lobby", "e-2", 12), 0);
  expect_buf(&b, "{\"type\":\"joined\",\"room\":\"lobby\",\"stream\":"
                 "\"room:lobby\",\"epoch\":\"e-2\",\"seq\":12}");
  assert_int_equal(agentws__ctl_room(&b, m, "left", "a:b", "e-2", 0), 0);
  expect_buf(&b, "{\"type\":\"left\",\"room\":\"a:b\",\"stream\":"
                 "\"room:a:b\",\"epoch\":\"e-2\",\"seq\":0}");

  /* Appends: two messages back to back. */
  assert_int_equal(agentws__ctl_pong(&b, m), 0);
  assert_int_equal(agentws__ctl_gap(&b, m, NULL, 1, 2), 0);
  assert_int_equal(b.len, strlen("{\"type\":\"pong\"}{\"type\":\"gap\","
                                 "\"from\":1,\"to\":2}"));
  assert_memory_equal(b.data,
                      "{\"type\":\"pong\"}{\"type\":\"gap\",\"from\":1,"
                      "\"to\":2}",
                      b.len);
  agentws__buf_free(&b, m);
}

/* ----------------------------------------------------- out of memory */

/* Fails every allocation after |budget| successful ones. */
static int fail_budget;

static void *f_malloc(size_t n, void *ud) {
  (void)ud;
  return fail_budget-- > 0 ? agentws__mem_malloc(agentws__mem_default(), n)
                           : NULL;
}
static void f_free(void *p, void *ud) {
  (void)ud;
  agentws__mem_free(agentws__mem_default(), p);
}
static void *f_calloc(size_t k, size_t n, void *ud) {
  (void)ud;
  return fail_budget-- > 0
             ? agentws__mem_calloc(agentws__mem_default(), k, n)
             : NULL;
}
static void *f_realloc(void *p, size_t n, void *ud) {
  (void)ud;
  return fail_budget-- > 0
             ? agentws__mem_realloc(agentws__mem_default(), p, n)
             : NULL;
}
static const agentws__mem failing = {f_malloc, f_free, f_calloc, f_realloc,
                                     NULL};

static void test_nomem(void **state) {
  agentws__emit_args a = args_of(AGENTWS__EV_AGENT_THINKING);
  agentws__event *ev = NULL, *evs[2];
  agentws__buf b = {NULL, 0, 0};
  char fill[256];
  (void)state;
  /* The event is one allocation: one failure is the only failure. */
  fail_budget = 0;
  assert_int_equal(agentws__event_build(&failing, &a, MAXB, &ev),
                   AGENTWS_ERR_NOMEM);
  assert_null(ev);
  fail_budget = 1;
  assert_int_equal(agentws__event_build(&failing, &a, MAXB, &ev), 0);
  assert_int_equal(fail_budget, 0);
  agentws__event_finalize(ev, 1);
  evs[0] = evs[1] = ev;

  /* A failed append leaves the buffer as it was; fill it to capacity
   * (256) so every append below has to grow it. */
  fail_budget = 1;
  memset(fill, 'k', sizeof(fill));
  assert_int_equal(agentws__buf_append(&b, &failing, fill, sizeof(fill)), 0);
  assert_int_equal(b.cap, sizeof(fill));
  fail_budget = 0;
  assert_int_equal(agentws__event_write_merged(&b, &failing, evs, 2),
                   AGENTWS_ERR_NOMEM);
  assert_int_equal(agentws__ctl_welcome(&b, &failing, "s", "u", "e", 1, 1,
                                        0),
                   AGENTWS_ERR_NOMEM);
  assert_int_equal(agentws__ctl_room(&b, &failing, "joined", "r", "e", 1),
                   AGENTWS_ERR_NOMEM);
  assert_int_equal(agentws__ctl_pong(&b, &failing), AGENTWS_ERR_NOMEM);
  assert_int_equal(agentws__json_escape(&b, &failing, "\"x\"", 3),
                   AGENTWS_ERR_NOMEM);
  assert_int_equal(b.len, sizeof(fill));
  assert_memory_equal(b.data, fill, sizeof(fill));
  agentws__buf_free(&b, &failing);
  agentws__event_free(&failing, ev);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_agent_started),
      cmocka_unit_test(test_agent_thinking),
      cmocka_unit_test(test_tool_executing),
      cmocka_unit_test(test_tool_completed),
      cmocka_unit_test(test_agent_completed),
      cmocka_unit_test(test_agent_error),
      cmocka_unit_test(test_custom),
      cmocka_unit_test(test_room_stream),
      cmocka_unit_test(test_finalize),
      cmocka_unit_test(test_escape),
      cmocka_unit_test(test_escape_random),
      cmocka_unit_test(test_escape_fields),
      cmocka_unit_test(test_invalid_common),
      cmocka_unit_test(test_invalid_fields),
      cmocka_unit_test(test_custom_type_names),
      cmocka_unit_test(test_invalid_json),
      cmocka_unit_test(test_member_collision),
      cmocka_unit_test(test_trimmed_copies),
      cmocka_unit_test(test_too_big),
      cmocka_unit_test(test_merged),
      cmocka_unit_test(test_ctl),
      cmocka_unit_test(test_nomem),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
