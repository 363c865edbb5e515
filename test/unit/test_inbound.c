/*
 * Unit tests for inbound client messages, the room id check and the rate
 * limiter (lib/agentws_inbound.c), and how a message the protocol does not
 * handle reaches the host (lib/agentws_protocol.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"
#include "agentws_inbound.h"

#undef MAX /* <uv.h> brings <sys/param.h>'s MAX(a, b); unused here */

#define MAX 65536

/* Parses a NUL-terminated literal; the terminator is not part of it. */
static void parse(const char *s, agentws__inbound *in) {
  agentws__inbound_parse(s, strlen(s), MAX, in);
}

/* Parses |s|, expects a refusal with |code|, and frees. */
static void expect_error(const char *s, const char *code) {
  agentws__inbound in;

  parse(s, &in);
  if (in.kind != AGENTWS__IN_ERROR || strcmp(in.error_code, code) != 0)
    print_error("input %.80s: kind %d code %s, wanted %s\n", s, in.kind,
                in.error_code ? in.error_code : "(null)", code);
  assert_int_equal(in.kind, AGENTWS__IN_ERROR);
  assert_string_equal(in.error_code, code);
  assert_non_null(in.error_message);
  assert_true(strlen(in.error_message) > 0);
  /* A refusal keeps nothing that points into the client's message. */
  assert_null(in.json);
  assert_null(in.type);
  assert_null(in.epoch);
  assert_null(in.stream);
  assert_null(in.room);
  assert_null(in.token);
  agentws__inbound_free(&in);
}

/* Builds {"type":T,"K":"<n times c>"} in a malloc'd buffer. */
static char *with_long_string(const char *type, const char *key,
                              const char *prefix, size_t n, char c) {
  size_t plen = strlen(prefix);
  size_t cap = 64 + strlen(type) + strlen(key) + plen + n;
  char *buf = malloc(cap);
  int head;

  assert_non_null(buf);
  head = snprintf(buf, cap, "{\"type\":\"%s\",\"%s\":\"%s", type, key, prefix);
  assert_true(head > 0);
  memset(buf + head, c, n);
  strcpy(buf + head + n, "\"}");
  return buf;
}

/* ---- size limit ---------------------------------------------------- */

static void test_too_large(void **state) {
  static const char ping[] = "{\"type\":\"ping\"}";
  size_t n = sizeof(ping) - 1;
  agentws__inbound in;

  (void)state;
  /* Exactly max_len parses. */
  agentws__inbound_parse(ping, n, n, &in);
  assert_int_equal(in.kind, AGENTWS__IN_PING);
  agentws__inbound_free(&in);
  /* One byte over is refused, though it is fine JSON. */
  agentws__inbound_parse(ping, n, n - 1, &in);
  assert_int_equal(in.kind, AGENTWS__IN_ERROR);
  assert_string_equal(in.error_code, "too_large");
  assert_null(in.json);
  agentws__inbound_free(&in);
  /* Checked before parsing: garbage over the limit is too_large too. */
  agentws__inbound_parse("not json at all", 15, 3, &in);
  assert_string_equal(in.error_code, "too_large");
  agentws__inbound_free(&in);
  /* max_len 0 and an empty message: not too large, just not JSON. */
  agentws__inbound_parse("", 0, 0, &in);
  assert_string_equal(in.error_code, "bad_json");
  agentws__inbound_free(&in);
}

/* ---- bad_json ------------------------------------------------------ */

static void test_bad_json(void **state) {
  agentws__inbound in;
  char *deep;
  size_t i;

  (void)state;
  expect_error("", "bad_json");
  expect_error("   ", "bad_json");
  expect_error("{", "bad_json");
  expect_error("{\"type\":\"ping\"", "bad_json");
  expect_error("{\"type\":\"ping\"} x", "bad_json");
  expect_error("{\"type\":\"ping\"}{}", "bad_json");
  expect_error("{'type':'ping'}", "bad_json");
  expect_error("{\"type\":\"ping\",}", "bad_json");
  expect_error("nul", "bad_json");
  expect_error("{\"type\":\"ping\",\"x\":NaN}", "bad_json");
  /* Invalid UTF-8 inside a string (jansson checks it). */
  expect_error("{\"type\":\"ping\",\"x\":\"\xc0\xaf\"}", "bad_json");
  expect_error("{\"type\":\"ping\",\"x\":\"\xed\xa0\x80\"}", "bad_json");
  /* Lone surrogate escape. */
  expect_error("{\"type\":\"ping\",\"x\":\"\\ud800\"}", "bad_json");

  /* NULL with length 0 must not crash. */
  agentws__inbound_parse(NULL, 0, MAX, &in);
  assert_string_equal(in.error_code, "bad_json");
  agentws__inbound_free(&in);

  /* Nesting past jansson's depth limit is refused, not a stack overflow. */
  deep = malloc(60000 + 1);
  assert_non_null(deep);
  for (i = 0; i < 60000; i++)
    deep[i] = '[';
  deep[60000] = '\0';
  expect_error(deep, "bad_json");
  strcpy(deep, "{\"type\":\"ping\",\"x\":");
  for (i = strlen(deep); i < 60000; i++)
    deep[i] = '[';
  expect_error(deep, "bad_json");
  free(deep);
}

static void test_duplicate_keys(void **state) {
  (void)state;
  expect_error("{\"type\":\"ping\",\"type\":\"ping\"}", "bad_json");
  expect_error("{\"type\":\"ack\",\"seq\":1,\"seq\":9}", "bad_json");
  expect_error("{\"type\":\"resume\",\"epoch\":\"a\",\"last_seq\":1,"
               "\"epoch\":\"b\"}",
               "bad_json");
  /* Also below the top level. */
  expect_error("{\"type\":\"x\",\"d\":{\"a\":1,\"a\":2}}", "bad_json");
  /* Different keys are of course fine. */
  {
    agentws__inbound in;

    parse("{\"type\":\"x\",\"d\":{\"a\":1,\"A\":2}}", &in);
    assert_int_equal(in.kind, AGENTWS__IN_OTHER);
    agentws__inbound_free(&in);
  }
}

static void test_embedded_nul(void **state) {
  static const char raw_in_string[] = "{\"type\":\"pi\0ng\"}";
  static const char trailing[] = "{\"type\":\"ping\"}";
  static const char leading[] = "\0{\"type\":\"ping\"}";
  agentws__inbound in;

  (void)state;
  /* \u0000 is refused (no JSON_ALLOW_NUL), so strings are whole C strings. */
  expect_error("{\"type\":\"pi\\u0000ng\"}", "bad_json");
  expect_error("{\"type\":\"refresh\",\"token\":\"a\\u0000b\"}", "bad_json");
  expect_error("{\"type\":\"join\",\"room\":\"r\\u0000/x\"}", "bad_json");
  /* Raw NUL bytes: inside a string, before the text, after it. */
  agentws__inbound_parse(raw_in_string, sizeof(raw_in_string) - 1, MAX, &in);
  assert_int_equal(in.kind, AGENTWS__IN_ERROR);
  assert_string_equal(in.error_code, "bad_json");
  agentws__inbound_free(&in);
  agentws__inbound_parse(leading, sizeof(leading) - 1, MAX, &in);
  assert_int_equal(in.kind, AGENTWS__IN_ERROR);
  agentws__inbound_free(&in);
  agentws__inbound_parse(trailing, sizeof(trailing), MAX, &in); /* with NUL */
  assert_int_equal(in.kind, AGENTWS__IN_ERROR);
  assert_string_equal(in.error_code, "bad_json");
  agentws__inbound_free(&in);
  /* The length is honoured: no NUL terminator is needed or read past. */
  agentws__inbound_parse("{\"type\":\"ping\"}GARBAGE", 15, MAX, &in);
  assert_int_equal(in.kind, AGENTWS__IN_PING);
  agentws__inbound_free(&in);
}

static void test_huge_numbers(void **state) {
  agentws__inbound in;

  (void)state;
  /* The largest json_int_t is accepted as is. */
  parse("{\"type\":\"ack\",\"seq\":9223372036854775807}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_ACK);
  assert_true(in.seq == UINT64_C(9223372036854775807));
  agentws__inbound_free(&in);
  /* Past it jansson refuses to parse at all. */
  expect_error("{\"type\":\"ack\",\"seq\":9223372036854775808}", "bad_json");
  expect_error("{\"type\":\"ack\",\"seq\":18446744073709551615}", "bad_json");
  expect_error("{\"type\":\"ack\",\"seq\":-9223372036854775809}", "bad_json");
  expect_error("{\"type\":\"ack\",\"seq\":1e400}", "bad_json");
  /* Parseable, but reals are not integers. */
  expect_error("{\"type\":\"ack\",\"seq\":1e300}", "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":1e3}", "bad_field");
  /* The most negative integer is negative. */
  expect_error("{\"type\":\"ack\",\"seq\":-9223372036854775808}", "bad_field");
  /* Big numbers where nobody reads them do no harm. */
  parse("{\"type\":\"ping\",\"x\":1e308,\"y\":-1e-300}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_PING);
  agentws__inbound_free(&in);
}

/* ---- bad_message --------------------------------------------------- */

static void test_not_object(void **state) {
  (void)state;
  expect_error("[]", "bad_message");
  expect_error("[{\"type\":\"ping\"}]", "bad_message");
  expect_error("\"ping\"", "bad_message");
  expect_error("1", "bad_message");
  expect_error("null", "bad_message");
  expect_error("true", "bad_message");
}

static void test_bad_type(void **state) {
  (void)state;
  expect_error("{}", "bad_message");
  expect_error("{\"Type\":\"ping\"}", "bad_message");
  expect_error("{\"x\":{\"type\":\"ping\"}}", "bad_message");
  expect_error("{\"type\":1}", "bad_message");
  expect_error("{\"type\":null}", "bad_message");
  expect_error("{\"type\":true}", "bad_message");
  expect_error("{\"type\":[\"ping\"]}", "bad_message");
  expect_error("{\"type\":{}}", "bad_message");
  expect_error("{\"type\":\"\"}", "bad_message");
  expect_error("{\"type\":\"Ping\"}", "bad_message");
  expect_error("{\"type\":\"PING\"}", "bad_message");
  expect_error("{\"type\":\"1ping\"}", "bad_message");
  expect_error("{\"type\":\"_ping\"}", "bad_message");
  expect_error("{\"type\":\".ping\"}", "bad_message");
  expect_error("{\"type\":\"-ping\"}", "bad_message");
  expect_error("{\"type\":\"pi ng\"}", "bad_message");
  expect_error("{\"type\":\"ping \"}", "bad_message");
  expect_error("{\"type\":\"pi/ng\"}", "bad_message");
  expect_error("{\"type\":\"pi:ng\"}", "bad_message");
  expect_error("{\"type\":\"pi~ng\"}", "bad_message");
  expect_error("{\"type\":\"pi{ng\"}", "bad_message");
  expect_error("{\"type\":\"p\xc3\xa9ng\"}", "bad_message"); /* é */
  expect_error("{\"type\":\"p\\u00e9ng\"}", "bad_message");
  expect_error("{\"type\":\"ping\\n\"}", "bad_message");

  /* 64 characters is the most. */
  {
    char type[80];
    char msg[128];
    agentws__inbound in;

    memset(type, 'a', 64);
    type[64] = '\0';
    snprintf(msg, sizeof(msg), "{\"type\":\"%s\"}", type);
    parse(msg, &in);
    assert_int_equal(in.kind, AGENTWS__IN_OTHER);
    assert_string_equal(in.type, type);
    agentws__inbound_free(&in);
    type[64] = 'a';
    type[65] = '\0';
    snprintf(msg, sizeof(msg), "{\"type\":\"%s\"}", type);
    expect_error(msg, "bad_message");
  }
}

static void test_server_types(void **state) {
  static const char *const types[] = {"welcome", "gap",           "resumed",
                                      "error",   "pong",          "joined",
                                      "left",    "token_expiring"};
  char msg[128];
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
    snprintf(msg, sizeof(msg), "{\"type\":\"%s\"}", types[i]);
    expect_error(msg, "bad_message");
  }
  /* Near misses are ordinary host types. */
  {
    agentws__inbound in;

    parse("{\"type\":\"welcome2\"}", &in);
    assert_int_equal(in.kind, AGENTWS__IN_OTHER);
    agentws__inbound_free(&in);
    parse("{\"type\":\"errors\"}", &in);
    assert_int_equal(in.kind, AGENTWS__IN_OTHER);
    agentws__inbound_free(&in);
  }
}

/* ---- resume -------------------------------------------------------- */

static void test_resume_valid(void **state) {
  agentws__inbound in;

  (void)state;
  parse("{\"type\":\"resume\",\"epoch\":\"e-5f1a\",\"last_seq\":41}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_RESUME);
  assert_string_equal(in.type, "resume");
  assert_string_equal(in.epoch, "e-5f1a");
  assert_true(in.last_seq == 41);
  assert_null(in.room);
  assert_null(in.stream);
  assert_null(in.token);
  assert_null(in.error_code);
  assert_non_null(in.json);
  agentws__inbound_free(&in);

  /* Order does not matter; extra members (streams) are ignored. */
  parse("{\"streams\":[\"room:a\"],\"last_seq\":0,\"epoch\":\"e\","
        "\"type\":\"resume\"}",
        &in);
  assert_int_equal(in.kind, AGENTWS__IN_RESUME);
  assert_string_equal(in.epoch, "e");
  assert_true(in.last_seq == 0);
  agentws__inbound_free(&in);

  /* Whitespace around everything. */
  parse(" \n{ \"type\" : \"resume\" ,\t\"epoch\":\"x\", \"last_seq\" : 7 }\r\n",
        &in);
  assert_int_equal(in.kind, AGENTWS__IN_RESUME);
  assert_true(in.last_seq == 7);
  agentws__inbound_free(&in);
}

static void test_resume_epoch(void **state) {
  agentws__inbound in;
  char *s;

  (void)state;
  expect_error("{\"type\":\"resume\",\"last_seq\":1}", "bad_field");
  expect_error("{\"type\":\"resume\",\"epoch\":\"\",\"last_seq\":1}",
               "bad_field");
  expect_error("{\"type\":\"resume\",\"epoch\":5,\"last_seq\":1}", "bad_field");
  expect_error("{\"type\":\"resume\",\"epoch\":null,\"last_seq\":1}",
               "bad_field");
  expect_error("{\"type\":\"resume\",\"epoch\":[\"e\"],\"last_seq\":1}",
               "bad_field");
  expect_error("{\"type\":\"resume\",\"epoch\":{},\"last_seq\":1}",
               "bad_field");

  /* 64 bytes is the most. */
  s = with_long_string("resume", "epoch", "", 64, 'e');
  strcpy(s + strlen(s) - 1, ",\"last_seq\":1}");
  parse(s, &in);
  assert_int_equal(in.kind, AGENTWS__IN_RESUME);
  assert_int_equal(strlen(in.epoch), 64);
  agentws__inbound_free(&in);
  free(s);
  s = with_long_string("resume", "epoch", "", 65, 'e');
  strcpy(s + strlen(s) - 1, ",\"last_seq\":1}");
  expect_error(s, "bad_field");
  free(s);
  /* The limit is in bytes: 32 two-byte characters fit, 33 do not. */
  parse("{\"type\":\"resume\",\"last_seq\":1,\"epoch\":\""
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}",
        &in);
  assert_int_equal(in.kind, AGENTWS__IN_RESUME);
  agentws__inbound_free(&in);
  expect_error(
      "{\"type\":\"resume\",\"last_seq\":1,\"epoch\":\""
      "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
      "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
      "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
      "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
      "\xc3\xa9\"}",
      "bad_field");
}

static void test_resume_last_seq(void **state) {
  agentws__inbound in;

  (void)state;
  expect_error("{\"type\":\"resume\",\"epoch\":\"e\"}", "bad_field");
  expect_error("{\"type\":\"resume\",\"epoch\":\"e\",\"last_seq\":-1}",
               "bad_field");
  expect_error("{\"type\":\"resume\",\"epoch\":\"e\",\"last_seq\":1.0}",
               "bad_field");
  expect_error("{\"type\":\"resume\",\"epoch\":\"e\",\"last_seq\":0.5}",
               "bad_field");
  expect_error("{\"type\":\"resume\",\"epoch\":\"e\",\"last_seq\":-0.0}",
               "bad_field");
  expect_error("{\"type\":\"resume\",\"epoch\":\"e\",\"last_seq\":\"41\"}",
               "bad_field");
  expect_error("{\"type\":\"resume\",\"epoch\":\"e\",\"last_seq\":null}",
               "bad_field");
  expect_error("{\"type\":\"resume\",\"epoch\":\"e\",\"last_seq\":true}",
               "bad_field");
  expect_error("{\"type\":\"resume\",\"epoch\":\"e\",\"last_seq\":[1]}",
               "bad_field");
  /* -0 is the integer 0 in JSON. */
  parse("{\"type\":\"resume\",\"epoch\":\"e\",\"last_seq\":-0}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_RESUME);
  assert_true(in.last_seq == 0);
  agentws__inbound_free(&in);
  /* The message names the field but never echoes what the client sent. */
  parse("{\"type\":\"resume\",\"epoch\":\"e\",\"last_seq\":\"SECRET\"}", &in);
  assert_string_equal(in.error_code, "bad_field");
  assert_non_null(strstr(in.error_message, "last_seq"));
  assert_null(strstr(in.error_message, "SECRET"));
  agentws__inbound_free(&in);
}

/* ---- ack ----------------------------------------------------------- */

static void test_ack(void **state) {
  agentws__inbound in;
  char *s;

  (void)state;
  parse("{\"type\":\"ack\",\"seq\":42}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_ACK);
  assert_string_equal(in.type, "ack");
  assert_true(in.seq == 42);
  assert_null(in.stream);
  agentws__inbound_free(&in);

  parse("{\"type\":\"ack\",\"seq\":0,\"stream\":\"room:lobby-1\"}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_ACK);
  assert_true(in.seq == 0);
  assert_string_equal(in.stream, "room:lobby-1");
  agentws__inbound_free(&in);

  /* A room id may itself hold colons. */
  parse("{\"type\":\"ack\",\"seq\":1,\"stream\":\"room:org:team\"}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_ACK);
  agentws__inbound_free(&in);

  expect_error("{\"type\":\"ack\"}", "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":-1}", "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":1.5}", "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":\"1\"}", "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":null}", "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":{}}", "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":1,\"stream\":\"lobby\"}",
               "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":1,\"stream\":\"\"}", "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":1,\"stream\":\"room:\"}",
               "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":1,\"stream\":\"room\"}", "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":1,\"stream\":\"Room:a\"}",
               "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":1,\"stream\":\" room:a\"}",
               "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":1,\"stream\":\"room:a b\"}",
               "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":1,\"stream\":\"room:a/b\"}",
               "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":1,\"stream\":\"user:a\"}",
               "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":1,\"stream\":5}", "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":1,\"stream\":null}", "bad_field");
  expect_error("{\"type\":\"ack\",\"seq\":1,\"stream\":[\"room:a\"]}",
               "bad_field");
  /* A bad stream is refused even when seq is fine, and vice versa. */
  expect_error("{\"type\":\"ack\",\"seq\":-5,\"stream\":\"room:a\"}",
               "bad_field");

  /* room:<128 chars> fits, room:<129> does not. */
  s = with_long_string("ack", "stream", "room:", 128, 'r');
  strcpy(s + strlen(s) - 1, ",\"seq\":3}");
  parse(s, &in);
  assert_int_equal(in.kind, AGENTWS__IN_ACK);
  assert_int_equal(strlen(in.stream), 133);
  agentws__inbound_free(&in);
  free(s);
  s = with_long_string("ack", "stream", "room:", 129, 'r');
  strcpy(s + strlen(s) - 1, ",\"seq\":3}");
  expect_error(s, "bad_field");
  free(s);
}

/* ---- ping ---------------------------------------------------------- */

static void test_ping(void **state) {
  agentws__inbound in;

  (void)state;
  parse("{\"type\":\"ping\"}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_PING);
  assert_string_equal(in.type, "ping");
  assert_null(in.error_code);
  agentws__inbound_free(&in);
  /* Anything else in a ping is ignored, nested junk included. */
  parse("{\"type\":\"ping\",\"seq\":-1,\"epoch\":5,\"x\":[[[{\"a\":[null,"
        "true,1.5,\"s\",{}]}]]],\"room\":\"bad room\"}",
        &in);
  assert_int_equal(in.kind, AGENTWS__IN_PING);
  agentws__inbound_free(&in);
}

/* ---- join / leave -------------------------------------------------- */

static void test_join(void **state) {
  agentws__inbound in;

  (void)state;
  parse("{\"type\":\"join\",\"room\":\"lobby\"}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_JOIN);
  assert_string_equal(in.type, "join");
  assert_string_equal(in.room, "lobby");
  assert_null(in.epoch);
  assert_int_equal(in.has_last_seq, 0);
  assert_true(in.last_seq == 0);
  agentws__inbound_free(&in);

  parse("{\"type\":\"join\",\"room\":\"a.b_c:d-1\",\"epoch\":\"e-1\","
        "\"last_seq\":17}",
        &in);
  assert_int_equal(in.kind, AGENTWS__IN_JOIN);
  assert_string_equal(in.room, "a.b_c:d-1");
  assert_string_equal(in.epoch, "e-1");
  assert_int_equal(in.has_last_seq, 1);
  assert_true(in.last_seq == 17);
  agentws__inbound_free(&in);

  /* last_seq 0 is given, not absent. */
  parse("{\"type\":\"join\",\"room\":\"r\",\"last_seq\":0}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_JOIN);
  assert_int_equal(in.has_last_seq, 1);
  assert_true(in.last_seq == 0);
  assert_null(in.epoch);
  agentws__inbound_free(&in);

  /* An epoch alone is fine too. */
  parse("{\"type\":\"join\",\"room\":\"r\",\"epoch\":\"e\"}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_JOIN);
  assert_string_equal(in.epoch, "e");
  assert_int_equal(in.has_last_seq, 0);
  agentws__inbound_free(&in);

  expect_error("{\"type\":\"join\"}", "bad_field");
  expect_error("{\"type\":\"join\",\"room\":\"\"}", "bad_field");
  expect_error("{\"type\":\"join\",\"room\":\"a b\"}", "bad_field");
  expect_error("{\"type\":\"join\",\"room\":\"../etc\"}", "bad_field");
  expect_error("{\"type\":\"join\",\"room\":\"caf\xc3\xa9\"}", "bad_field");
  expect_error("{\"type\":\"join\",\"room\":7}", "bad_field");
  expect_error("{\"type\":\"join\",\"room\":null}", "bad_field");
  expect_error("{\"type\":\"join\",\"room\":[\"r\"]}", "bad_field");
  expect_error("{\"type\":\"join\",\"room\":\"r\",\"epoch\":5}", "bad_field");
  expect_error("{\"type\":\"join\",\"room\":\"r\",\"epoch\":null}",
               "bad_field");
  expect_error("{\"type\":\"join\",\"room\":\"r\",\"epoch\":\"\"}",
               "bad_field");
  expect_error("{\"type\":\"join\",\"room\":\"r\",\"last_seq\":-1}",
               "bad_field");
  expect_error("{\"type\":\"join\",\"room\":\"r\",\"last_seq\":2.0}",
               "bad_field");
  expect_error("{\"type\":\"join\",\"room\":\"r\",\"last_seq\":\"2\"}",
               "bad_field");
  expect_error("{\"type\":\"join\",\"room\":\"r\",\"last_seq\":null}",
               "bad_field");
}

static void test_leave(void **state) {
  agentws__inbound in;

  (void)state;
  parse("{\"type\":\"leave\",\"room\":\"lobby\",\"x\":1}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_LEAVE);
  assert_string_equal(in.type, "leave");
  assert_string_equal(in.room, "lobby");
  agentws__inbound_free(&in);

  expect_error("{\"type\":\"leave\"}", "bad_field");
  expect_error("{\"type\":\"leave\",\"room\":\"\"}", "bad_field");
  expect_error("{\"type\":\"leave\",\"room\":\"a\\tb\"}", "bad_field");
  expect_error("{\"type\":\"leave\",\"room\":1}", "bad_field");
  expect_error("{\"type\":\"leave\",\"room\":{}}", "bad_field");
}

/* ---- refresh ------------------------------------------------------- */

static void test_refresh(void **state) {
  agentws__inbound in;

  (void)state;
  parse("{\"type\":\"refresh\",\"token\":\"eyJhbGciOi.x.y\"}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_REFRESH);
  assert_string_equal(in.type, "refresh");
  assert_string_equal(in.token, "eyJhbGciOi.x.y");
  agentws__inbound_free(&in);

  expect_error("{\"type\":\"refresh\"}", "bad_field");
  expect_error("{\"type\":\"refresh\",\"token\":\"\"}", "bad_field");
  expect_error("{\"type\":\"refresh\",\"token\":1}", "bad_field");
  expect_error("{\"type\":\"refresh\",\"token\":null}", "bad_field");
  expect_error("{\"type\":\"refresh\",\"token\":[\"t\"]}", "bad_field");
  /* A refused token is never echoed back. */
  parse("{\"type\":\"refresh\",\"token\":7777}", &in);
  assert_null(strstr(in.error_message, "7777"));
  agentws__inbound_free(&in);
}

/* ---- other --------------------------------------------------------- */

static void test_other(void **state) {
  agentws__inbound in;

  (void)state;
  parse("{\"type\":\"chat.message\",\"text\":\"hi\",\"seq\":-3}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_OTHER);
  assert_string_equal(in.type, "chat.message");
  assert_null(in.epoch);
  assert_null(in.room);
  assert_null(in.stream);
  assert_null(in.token);
  assert_null(in.error_code);
  assert_non_null(in.json);
  agentws__inbound_free(&in);

  parse("{\"type\":\"a\"}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_OTHER);
  agentws__inbound_free(&in);
  parse("{\"type\":\"x-1_y.z\"}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_OTHER);
  agentws__inbound_free(&in);
  /* Prefixes of known types are not those types. */
  parse("{\"type\":\"pin\"}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_OTHER);
  agentws__inbound_free(&in);
  parse("{\"type\":\"resumes\"}", &in);
  assert_int_equal(in.kind, AGENTWS__IN_OTHER);
  agentws__inbound_free(&in);
}

/* ---- to the host ---------------------------------------------------- */

static int host_calls;

static void on_client_message(agentws_manager *m, uint64_t id,
                              const char *user, const char *type,
                              const char *json, size_t len, void *ud) {
  (void)m;
  (void)id;
  (void)ud;
  assert_string_equal(user, "u");
  assert_string_equal(type, "user_message");
  /* Documented NUL-terminated: the byte after it is a NUL. */
  assert_int_equal(len, 35);
  assert_int_equal(json[len], '\0');
  assert_string_equal(json, "{\"type\":\"user_message\",\"text\":\"hi\"}");
  host_calls++;
}

/* Appends a masked (key 0) final text frame of |s|. */
static size_t text_frame(uint8_t *out, const char *s) {
  size_t n = strlen(s);
  out[0] = 0x81;
  out[1] = (uint8_t)(0x80 | n);
  memset(out + 2, 0, 4);
  memcpy(out + 6, s, n);
  return 6 + n;
}

/* fuzz_upgrade: the message handed to on_client_message was the frame's
 * bytes in place, with whatever followed them (here the next frame)
 * where the NUL should be. */
static void test_host_message_is_c_string(void **state) {
  static const char head[] =
      "GET /ws?user=u HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n";
  const char *msg = "{\"type\":\"user_message\",\"text\":\"hi\"}";
  uint8_t frames[128], junk[4096];
  size_t n;
  uv_loop_t loop;
  agentws_manager *m = NULL;
  agentws_config *cfg = NULL;
  agentws_callbacks *cbs = NULL;
  int sv[2], i;

  (void)state;
  host_calls = 0;
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_dev_insecure(cfg, 1), 0);
  assert_int_equal(agentws_callbacks_new(&cbs), 0);
  agentws_callbacks_set_on_client_message(cbs, on_client_message);
  assert_int_equal(agentws_manager_new(&m, &loop, cfg, cbs, NULL), 0);
  assert_int_equal(agentws_manager_adopt(m, sv[0], (const uint8_t *)head,
                                         sizeof(head) - 1, NULL),
                   0);
  n = text_frame(frames, msg);
  n += text_frame(frames + n, "{\"type\":\"ping\"}");
  assert_int_equal(write(sv[1], frames, n), (ssize_t)n);
  for (i = 0; i < 8 && host_calls == 0; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    while (read(sv[1], junk, sizeof(junk)) > 0) {
    }
  }
  assert_int_equal(host_calls, 1);
  agentws_manager_close(m, NULL, NULL);
  close(sv[1]);
  uv_run(&loop, UV_RUN_DEFAULT);
  agentws_manager_free(m);
  assert_int_equal(uv_loop_close(&loop), 0);
  agentws_callbacks_free(cbs);
  agentws_config_free(cfg);
}

/* ---- free ---------------------------------------------------------- */

static void test_inbound_free(void **state) {
  agentws__inbound in;

  (void)state;
  agentws__inbound_free(NULL);
  parse("{\"type\":\"join\",\"room\":\"r\"}", &in);
  agentws__inbound_free(&in);
  assert_null(in.json);
  assert_null(in.room);
  assert_null(in.type);
  agentws__inbound_free(&in); /* idempotent */
  parse("{\"type\":\"join\",\"room\":7}", &in);
  agentws__inbound_free(&in); /* on an ERROR result */
  agentws__inbound_free(&in);
  assert_string_equal(in.error_code, "bad_field"); /* static, still there */
}

/* ---- room ids ------------------------------------------------------ */

static void test_room_valid(void **state) {
  char room[160];

  (void)state;
  assert_false(agentws__room_valid(NULL));
  assert_false(agentws__room_valid(""));
  assert_true(agentws__room_valid("a"));
  assert_true(agentws__room_valid("-"));
  assert_true(agentws__room_valid(":"));
  assert_true(agentws__room_valid("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "abcdefghijklmnopqrstuvwxyz0123456789_.:-"));
  assert_true(agentws__room_valid("room:x"));
  assert_false(agentws__room_valid("a b"));
  assert_false(agentws__room_valid("a/b"));
  assert_false(agentws__room_valid("a\\b"));
  assert_false(agentws__room_valid("a\tb"));
  assert_false(agentws__room_valid("a\nb"));
  assert_false(agentws__room_valid("a\"b"));
  assert_false(agentws__room_valid("a@b"));
  assert_false(agentws__room_valid("a+b"));
  assert_false(agentws__room_valid("a~b"));
  assert_false(agentws__room_valid("\x7f"));
  assert_false(agentws__room_valid("caf\xc3\xa9"));
  assert_false(agentws__room_valid("\xff"));
  /* Every byte outside the set, one at a time. */
  {
    int c;

    for (c = 1; c < 256; c++) {
      int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
               (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
               c == '-';

      room[0] = 'r';
      room[1] = (char)c;
      room[2] = '\0';
      assert_int_equal(agentws__room_valid(room), ok);
    }
  }
  /* 128 bytes is the most. */
  memset(room, 'r', 128);
  room[128] = '\0';
  assert_true(agentws__room_valid(room));
  room[128] = 'r';
  room[129] = '\0';
  assert_false(agentws__room_valid(room));
  memset(room, 'r', 159);
  room[159] = '\0';
  assert_false(agentws__room_valid(room));
  /* A bad byte at the very end still counts. */
  memset(room, 'r', 127);
  room[127] = ' ';
  room[128] = '\0';
  assert_false(agentws__room_valid(room));
}

/* ---- rate limiter -------------------------------------------------- */

static void test_rate_burst(void **state) {
  agentws__rate r;
  int i;

  (void)state;
  agentws__rate_init(&r, 1000, 5);
  /* A full bucket: exactly burst takes at one instant. */
  for (i = 0; i < 5; i++)
    assert_int_equal(agentws__rate_take(&r, 1000, 10, 5), 1);
  assert_int_equal(agentws__rate_take(&r, 1000, 10, 5), 0);
  assert_int_equal(agentws__rate_take(&r, 1000, 10, 5), 0);
}

static void test_rate_refill(void **state) {
  agentws__rate r;
  int i;

  (void)state;
  agentws__rate_init(&r, 0, 2);
  assert_int_equal(agentws__rate_take(&r, 0, 10, 2), 1);
  assert_int_equal(agentws__rate_take(&r, 0, 10, 2), 1);
  assert_int_equal(agentws__rate_take(&r, 0, 10, 2), 0);
  /* 10/s: half a token after 50 ms, a whole one after 100 ms. */
  assert_int_equal(agentws__rate_take(&r, 50, 10, 2), 0);
  assert_int_equal(agentws__rate_take(&r, 100, 10, 2), 1);
  assert_int_equal(agentws__rate_take(&r, 100, 10, 2), 0);
  /* A long idle refills to burst, not beyond. */
  assert_int_equal(agentws__rate_take(&r, 1000000, 10, 2), 1);
  assert_int_equal(agentws__rate_take(&r, 1000000, 10, 2), 1);
  assert_int_equal(agentws__rate_take(&r, 1000000, 10, 2), 0);
  /* Refused takes do not cost a token. */
  for (i = 0; i < 100; i++)
    assert_int_equal(agentws__rate_take(&r, 1000000, 10, 2), 0);
  assert_int_equal(agentws__rate_take(&r, 1000100, 10, 2), 1);
  /* A lowered burst caps what was saved up. */
  agentws__rate_init(&r, 0, 10);
  assert_int_equal(agentws__rate_take(&r, 0, 10, 1), 1);
  assert_int_equal(agentws__rate_take(&r, 0, 10, 1), 0);
}

static void test_rate_steady(void **state) {
  agentws__rate r;
  uint64_t t;
  int allowed = 0;

  (void)state;
  /* Asking every ms for 10 s at 20/s, burst 5: 5 + 200 (±1 rounding). */
  agentws__rate_init(&r, 7, 5);
  for (t = 7; t < 7 + 10000; t++)
    allowed += agentws__rate_take(&r, t, 20, 5);
  assert_in_range(allowed, 204, 205);
  /* Asking exactly at the rate is never refused. */
  agentws__rate_init(&r, 0, 1);
  allowed = 0;
  for (t = 0; t < 100 * 250; t += 250)
    allowed += agentws__rate_take(&r, t, 4, 1);
  assert_int_equal(allowed, 100);
  /* Rate 0 never refills. */
  agentws__rate_init(&r, 0, 3);
  allowed = 0;
  for (t = 0; t < 100000; t += 1000)
    allowed += agentws__rate_take(&r, t, 0, 3);
  assert_int_equal(allowed, 3);
  /* Huge elapsed time and rate do not overflow past burst. */
  agentws__rate_init(&r, 0, 2);
  assert_int_equal(agentws__rate_take(&r, 0, 1e300, 2), 1);
  assert_int_equal(agentws__rate_take(&r, 0, 1e300, 2), 1);
  assert_int_equal(agentws__rate_take(&r, 0, 1e300, 2), 0);
  assert_int_equal(agentws__rate_take(&r, UINT64_MAX, 1e300, 2), 1);
  assert_int_equal(agentws__rate_take(&r, UINT64_MAX, 1e300, 2), 1);
  assert_int_equal(agentws__rate_take(&r, UINT64_MAX, 1e300, 2), 0);
}

static void test_rate_backwards(void **state) {
  agentws__rate r;

  (void)state;
  agentws__rate_init(&r, 10000, 1);
  assert_int_equal(agentws__rate_take(&r, 10000, 10, 1), 1);
  /* Going back counts as no time: nothing refilled, nothing wraps. */
  assert_int_equal(agentws__rate_take(&r, 5000, 10, 1), 0);
  assert_int_equal(agentws__rate_take(&r, 0, 10, 1), 0);
  /* Refill resumes from where the clock now is, not frozen till 10000. */
  assert_int_equal(agentws__rate_take(&r, 50, 10, 1), 0);
  assert_int_equal(agentws__rate_take(&r, 100, 10, 1), 1);
  assert_int_equal(agentws__rate_take(&r, 100, 10, 1), 0);
  /* And a bucket with tokens keeps them across a jump back. */
  agentws__rate_init(&r, 500, 3);
  assert_int_equal(agentws__rate_take(&r, 400, 10, 3), 1);
  assert_int_equal(agentws__rate_take(&r, 300, 10, 3), 1);
  assert_int_equal(agentws__rate_take(&r, 200, 10, 3), 1);
  assert_int_equal(agentws__rate_take(&r, 100, 10, 3), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_too_large),
      cmocka_unit_test(test_bad_json),
      cmocka_unit_test(test_duplicate_keys),
      cmocka_unit_test(test_embedded_nul),
      cmocka_unit_test(test_huge_numbers),
      cmocka_unit_test(test_not_object),
      cmocka_unit_test(test_bad_type),
      cmocka_unit_test(test_server_types),
      cmocka_unit_test(test_resume_valid),
      cmocka_unit_test(test_resume_epoch),
      cmocka_unit_test(test_resume_last_seq),
      cmocka_unit_test(test_ack),
      cmocka_unit_test(test_ping),
      cmocka_unit_test(test_join),
      cmocka_unit_test(test_leave),
      cmocka_unit_test(test_refresh),
      cmocka_unit_test(test_other),
      cmocka_unit_test(test_host_message_is_c_string),
      cmocka_unit_test(test_inbound_free),
      cmocka_unit_test(test_room_valid),
      cmocka_unit_test(test_rate_burst),
      cmocka_unit_test(test_rate_refill),
      cmocka_unit_test(test_rate_steady),
      cmocka_unit_test(test_rate_backwards),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
