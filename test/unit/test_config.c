/*
 * Unit tests for the config object (lib/agentws_config.c): defaults, the
 * range of every setter at and past both ends, string validation, list
 * limits, the set-mask, and agentws__config_copy() independence.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agentws_config.h"

/* ------------------------------------------------------------- fixtures */

static int setup(void **state) {
  agentws_config *cfg = NULL;
  if (agentws_config_new(&cfg) != 0 || cfg == NULL)
    return -1;
  *state = cfg;
  return 0;
}

static int teardown(void **state) {
  agentws_config_free(*state);
  return 0;
}

/* -------------------------------------------------------- numeric tables */

typedef int (*set_u64_fn)(agentws_config *, uint64_t);
typedef int (*set_i64_fn)(agentws_config *, int64_t);
typedef int (*set_int_fn)(agentws_config *, int);

typedef struct u64_opt {
  const char *name;
  set_u64_fn set;
  size_t off;   /* field in struct agentws_config */
  uint64_t def; /* default */
  uint64_t lo, hi;
  uint32_t bit;
} u64_opt;

typedef struct i64_opt {
  const char *name;
  set_i64_fn set;
  size_t off;
  int64_t def;
  int64_t lo, hi;
  int zero_off; /* 0 is accepted as "off" / "no limit" */
  uint32_t bit;
} i64_opt;

typedef struct int_opt {
  const char *name;
  set_int_fn set;
  size_t off;
  int def;
  int lo, hi;
  uint32_t bit;
} int_opt;

#define OFF(f) offsetof(struct agentws_config, f)

static const u64_opt u64_opts[] = {
    {"max_message_size", agentws_config_set_max_message_size,
     OFF(max_message_size), 1048576, 1, (uint64_t)1 << 31,
     AGENTWS__OPT_MAX_MESSAGE},
    {"max_queued_bytes", agentws_config_set_max_queued_bytes,
     OFF(max_queued_bytes), 1048576, 1024, (uint64_t)1 << 32,
     AGENTWS__OPT_MAX_QUEUED},
    {"max_header_bytes", agentws_config_set_max_header_bytes,
     OFF(max_header_bytes), 8192, 256, 65536, AGENTWS__OPT_MAX_HEADER_BYTES},
    {"max_client_message", agentws_config_set_max_client_message,
     OFF(max_client_message), 65536, 64, 16777216,
     AGENTWS__OPT_MAX_CLIENT_MSG},
    {"max_event_bytes", agentws_config_set_max_event_bytes,
     OFF(max_event_bytes), 262144, 256, 16777216, AGENTWS__OPT_MAX_EVENT},
};

/* u64 options where 0 means "off" / "kernel default". */
static const u64_opt u64_zero_opts[] = {
    {"socket_sndbuf", agentws_config_set_socket_send_buffer,
     OFF(socket_sndbuf), 0, 4096, 67108864, AGENTWS__OPT_SNDBUF},
    {"backlog_bytes", agentws_config_set_backlog_bytes, OFF(backlog_bytes),
     4u << 20, 1, (uint64_t)1 << 34, AGENTWS__OPT_BACKLOG_BYTES},
};

static const i64_opt i64_opts[] = {
    {"handshake_timeout_ms", agentws_config_set_handshake_timeout_ms,
     OFF(handshake_timeout_ms), 10000, 1, 3600000, 0,
     AGENTWS__OPT_HANDSHAKE_TIMEOUT},
    {"ping_interval_ms", agentws_config_set_ping_interval_ms,
     OFF(ping_interval_ms), 30000, 10, 3600000, 1,
     AGENTWS__OPT_PING_INTERVAL},
    {"pong_timeout_ms", agentws_config_set_pong_timeout_ms,
     OFF(pong_timeout_ms), 10000, 10, 3600000, 0, AGENTWS__OPT_PONG_TIMEOUT},
    {"idle_timeout_ms", agentws_config_set_idle_timeout_ms,
     OFF(idle_timeout_ms), 0, 10, 86400000, 1, AGENTWS__OPT_IDLE_TIMEOUT},
    {"close_timeout_ms", agentws_config_set_close_timeout_ms,
     OFF(close_timeout_ms), 5000, 1, 600000, 0, AGENTWS__OPT_CLOSE_TIMEOUT},
    {"max_connections", agentws_config_set_max_connections,
     OFF(max_connections), 0, 1, 10000000, 1, AGENTWS__OPT_MAX_CONNECTIONS},
};

static const int_opt int_opts[] = {
    {"max_headers", agentws_config_set_max_headers, OFF(max_headers), 64, 4,
     256, AGENTWS__OPT_MAX_HEADERS},
    {"listen_backlog", agentws_config_set_listen_backlog, OFF(listen_backlog),
     511, 1, 65535, AGENTWS__OPT_BACKLOG},
    /* healthz is a boolean: its "range" is 0 .. 1 */
    {"healthz", agentws_config_set_healthz, OFF(healthz), 1, 0, 1,
     AGENTWS__OPT_HEALTHZ},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t get_u64(const agentws_config *c, size_t off) {
  uint64_t v;
  memcpy(&v, (const char *)c + off, sizeof(v));
  return v;
}

static int64_t get_i64(const agentws_config *c, size_t off) {
  int64_t v;
  memcpy(&v, (const char *)c + off, sizeof(v));
  return v;
}

static int get_int(const agentws_config *c, size_t off) {
  int v;
  memcpy(&v, (const char *)c + off, sizeof(v));
  return v;
}

/* Asserts |set(v)| returns |want|; on failure the field must keep |keep|. */
static void check_u64(agentws_config *c, const u64_opt *o, uint64_t v,
                      int want) {
  uint64_t before = get_u64(c, o->off);
  int rv = o->set(c, v);
  if (rv != want)
    fail_msg("%s(%llu): got %d, want %d", o->name, (unsigned long long)v, rv,
             want);
  assert_int_equal(get_u64(c, o->off), want == 0 ? v : before);
}

static void check_i64(agentws_config *c, const i64_opt *o, int64_t v,
                      int want) {
  int64_t before = get_i64(c, o->off);
  int rv = o->set(c, v);
  if (rv != want)
    fail_msg("%s(%lld): got %d, want %d", o->name, (long long)v, rv, want);
  assert_true(get_i64(c, o->off) == (want == 0 ? v : before));
}

static void check_int(agentws_config *c, const int_opt *o, int v, int want) {
  int before = get_int(c, o->off);
  int rv = o->set(c, v);
  if (rv != want)
    fail_msg("%s(%d): got %d, want %d", o->name, v, rv, want);
  assert_int_equal(get_int(c, o->off), want == 0 ? v : before);
}

/* ---------------------------------------------------------------- tests */

static void test_new_and_free_args(void **state) {
  (void)state;
  assert_int_equal(agentws_config_new(NULL), AGENTWS_ERR_INVALID_ARGUMENT);
  agentws_config_free(NULL); /* NULL-safe */
}

static void test_defaults(void **state) {
  agentws_config *c = *state;
  size_t i;
  assert_int_equal(c->set_mask, 0);
  assert_non_null(c->ws_path);
  assert_string_equal(c->ws_path, "/ws");
  for (i = 0; i < N(u64_opts); i++)
    assert_true(get_u64(c, u64_opts[i].off) == u64_opts[i].def);
  for (i = 0; i < N(i64_opts); i++)
    assert_true(get_i64(c, i64_opts[i].off) == i64_opts[i].def);
  for (i = 0; i < N(int_opts); i++)
    assert_int_equal(get_int(c, int_opts[i].off), int_opts[i].def);
  /* Every default lies inside its setter's range (or is "off"). */
  for (i = 0; i < N(u64_opts); i++)
    assert_true(u64_opts[i].def >= u64_opts[i].lo &&
                u64_opts[i].def <= u64_opts[i].hi);
  for (i = 0; i < N(i64_opts); i++)
    assert_true((i64_opts[i].zero_off && i64_opts[i].def == 0) ||
                (i64_opts[i].def >= i64_opts[i].lo &&
                 i64_opts[i].def <= i64_opts[i].hi));
  assert_int_equal(c->num_origins, 0);
  assert_int_equal(c->num_subprotocols, 1);
  assert_string_equal(c->subprotocols[0], "agentws.v1");
}

static void test_u64_ranges(void **state) {
  agentws_config *c = *state;
  size_t i;
  for (i = 0; i < N(u64_opts); i++) {
    const u64_opt *o = &u64_opts[i];
    check_u64(c, o, o->lo, 0);
    check_u64(c, o, o->hi, 0);
    check_u64(c, o, o->lo - 1, AGENTWS_ERR_OUT_OF_RANGE);
    check_u64(c, o, o->hi + 1, AGENTWS_ERR_OUT_OF_RANGE);
    check_u64(c, o, 0, AGENTWS_ERR_OUT_OF_RANGE);
    check_u64(c, o, UINT64_MAX, AGENTWS_ERR_OUT_OF_RANGE);
    check_u64(c, o, o->def, 0);
    assert_int_equal(o->set(NULL, o->def), AGENTWS_ERR_INVALID_ARGUMENT);
  }
}

static void test_u64_zero_ranges(void **state) {
  agentws_config *c = *state;
  size_t i;
  for (i = 0; i < N(u64_zero_opts); i++) {
    const u64_opt *o = &u64_zero_opts[i];
    assert_int_equal(get_u64(c, o->off), o->def);
    check_u64(c, o, 0, 0);
    check_u64(c, o, o->lo, 0);
    check_u64(c, o, o->hi, 0);
    if (o->lo > 1)
      check_u64(c, o, o->lo - 1, AGENTWS_ERR_OUT_OF_RANGE);
    check_u64(c, o, o->hi + 1, AGENTWS_ERR_OUT_OF_RANGE);
    check_u64(c, o, UINT64_MAX, AGENTWS_ERR_OUT_OF_RANGE);
    assert_int_equal(o->set(NULL, o->def), AGENTWS_ERR_INVALID_ARGUMENT);
  }
}

static void test_i64_ranges(void **state) {
  agentws_config *c = *state;
  size_t i;
  for (i = 0; i < N(i64_opts); i++) {
    const i64_opt *o = &i64_opts[i];
    check_i64(c, o, o->lo, 0);
    check_i64(c, o, o->hi, 0);
    check_i64(c, o, o->lo - 1,
              o->lo - 1 == 0 && o->zero_off ? 0 : AGENTWS_ERR_OUT_OF_RANGE);
    check_i64(c, o, o->hi + 1, AGENTWS_ERR_OUT_OF_RANGE);
    check_i64(c, o, 0, o->zero_off ? 0 : AGENTWS_ERR_OUT_OF_RANGE);
    check_i64(c, o, -1, AGENTWS_ERR_OUT_OF_RANGE);
    check_i64(c, o, INT64_MIN, AGENTWS_ERR_OUT_OF_RANGE);
    check_i64(c, o, INT64_MAX, AGENTWS_ERR_OUT_OF_RANGE);
    check_i64(c, o, o->def, 0);
    assert_int_equal(o->set(NULL, o->lo), AGENTWS_ERR_INVALID_ARGUMENT);
  }
}

static void test_int_ranges(void **state) {
  agentws_config *c = *state;
  size_t i;
  for (i = 0; i < N(int_opts); i++) {
    const int_opt *o = &int_opts[i];
    check_int(c, o, o->lo, 0);
    check_int(c, o, o->hi, 0);
    check_int(c, o, o->lo - 1, AGENTWS_ERR_OUT_OF_RANGE);
    check_int(c, o, o->hi + 1, AGENTWS_ERR_OUT_OF_RANGE);
    check_int(c, o, INT_MIN, AGENTWS_ERR_OUT_OF_RANGE);
    check_int(c, o, INT_MAX, AGENTWS_ERR_OUT_OF_RANGE);
    if (o->lo > 0)
      check_int(c, o, 0, AGENTWS_ERR_OUT_OF_RANGE);
    check_int(c, o, o->def, 0);
    assert_int_equal(o->set(NULL, o->def), AGENTWS_ERR_INVALID_ARGUMENT);
  }
}

/* Each setter sets exactly its own bit, and only on success. */
static void test_set_mask_bits(void **state) {
  uint32_t seen = 0;
  size_t i;
  agentws_config *c;
  (void)state;
  for (i = 0; i < N(u64_opts); i++) {
    assert_int_equal(agentws_config_new(&c), 0);
    assert_int_equal(u64_opts[i].set(c, 0), AGENTWS_ERR_OUT_OF_RANGE);
    assert_int_equal(c->set_mask, 0);
    assert_int_equal(u64_opts[i].set(c, u64_opts[i].def), 0);
    assert_int_equal(c->set_mask, u64_opts[i].bit);
    seen |= u64_opts[i].bit;
    agentws_config_free(c);
  }
  for (i = 0; i < N(i64_opts); i++) {
    assert_int_equal(agentws_config_new(&c), 0);
    assert_int_equal(i64_opts[i].set(c, -1), AGENTWS_ERR_OUT_OF_RANGE);
    assert_int_equal(c->set_mask, 0);
    /* Setting the default value still records that the host gave it. */
    assert_int_equal(i64_opts[i].set(c, i64_opts[i].def), 0);
    assert_int_equal(c->set_mask, i64_opts[i].bit);
    seen |= i64_opts[i].bit;
    agentws_config_free(c);
  }
  for (i = 0; i < N(int_opts); i++) {
    assert_int_equal(agentws_config_new(&c), 0);
    assert_int_equal(int_opts[i].set(c, -1), AGENTWS_ERR_OUT_OF_RANGE);
    assert_int_equal(c->set_mask, 0);
    assert_int_equal(int_opts[i].set(c, int_opts[i].def), 0);
    assert_int_equal(c->set_mask, int_opts[i].bit);
    seen |= int_opts[i].bit;
    agentws_config_free(c);
  }

  assert_int_equal(agentws_config_new(&c), 0);
  assert_int_equal(agentws_config_set_ws_path(c, "bad"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(c->set_mask, 0);
  assert_int_equal(agentws_config_set_ws_path(c, "/x"), 0);
  assert_int_equal(c->set_mask, AGENTWS__OPT_WS_PATH);
  seen |= AGENTWS__OPT_WS_PATH;
  agentws_config_free(c);

  assert_int_equal(agentws_config_new(&c), 0);
  assert_int_equal(agentws_config_add_allowed_origin(c, "a b"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(c->set_mask, 0);
  assert_int_equal(agentws_config_add_allowed_origin(c, "https://a.example"),
                   0);
  assert_int_equal(c->set_mask, AGENTWS__OPT_ORIGINS);
  seen |= AGENTWS__OPT_ORIGINS;
  agentws_config_free(c);

  assert_int_equal(agentws_config_new(&c), 0);
  assert_int_equal(agentws_config_add_subprotocol(c, "a b"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(c->set_mask, 0);
  assert_int_equal(agentws_config_add_subprotocol(c, "chat"), 0);
  assert_int_equal(c->set_mask, AGENTWS__OPT_SUBPROTOCOLS);
  seen |= AGENTWS__OPT_SUBPROTOCOLS;
  agentws_config_free(c);

  /* The transport's 15 options, distinct bits, all covered above (the
   * agent-protocol options' bits are checked where they are listed). */
  assert_int_equal(seen & ((1u << 15) - 1), (1u << 15) - 1);
}

static void test_ws_path(void **state) {
  agentws_config *c = *state;
  static const char *const bad[] = {
      "",      "ws",     "ws/",    "/a?b",  "/?",    "/a b",  " /a",
      "/a\tb", "/a#b",   "/a\x7f", "/\xc3\xa9", "/a\r\n", "\\ws",
  };
  char longp[300];
  size_t i;

  assert_int_equal(agentws_config_set_ws_path(NULL, "/x"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_set_ws_path(c, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  for (i = 0; i < N(bad); i++) {
    if (agentws_config_set_ws_path(c, bad[i]) != AGENTWS_ERR_INVALID_ARGUMENT)
      fail_msg("ws path \"%s\" was accepted", bad[i]);
    assert_string_equal(c->ws_path, "/ws"); /* unchanged */
  }
  assert_int_equal(agentws_config_set_ws_path(c, "/"), 0);
  assert_string_equal(c->ws_path, "/");
  assert_int_equal(agentws_config_set_ws_path(c, "/a/b-c_d.e~f%20"), 0);
  assert_string_equal(c->ws_path, "/a/b-c_d.e~f%20");

  /* 255 bytes is the maximum, 256 is too long. */
  memset(longp, 'p', sizeof(longp));
  longp[0] = '/';
  longp[255] = '\0';
  assert_int_equal(agentws_config_set_ws_path(c, longp), 0);
  assert_int_equal(strlen(c->ws_path), 255);
  longp[255] = 'p';
  longp[256] = '\0';
  assert_int_equal(agentws_config_set_ws_path(c, longp),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(strlen(c->ws_path), 255);

  /* Copied, not borrowed. */
  strcpy(longp, "/borrowed");
  assert_int_equal(agentws_config_set_ws_path(c, longp), 0);
  longp[1] = 'X';
  assert_string_equal(c->ws_path, "/borrowed");
}

static void test_subprotocols(void **state) {
  agentws_config *c = *state;
  static const char *const bad[] = {
      "",        "a b",    " a",      "a ",        "bearer.x", "bearer.",
      "a,b",     "a/b",    "a\"b",    "a;b",       "a=b",      "a\tb",
      "(a)",     "a:b",    "\xc3\xa9", "a\x7f",
      /* Any case: the handshake would take it for a token (fuzz_config). */
      "Bearer.x", "BEARER.tok", "bEaReR.",
  };
  char name[80];
  size_t i;

  assert_int_equal(agentws_config_add_subprotocol(NULL, "x"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_add_subprotocol(c, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  for (i = 0; i < N(bad); i++) {
    if (agentws_config_add_subprotocol(c, bad[i]) !=
        AGENTWS_ERR_INVALID_ARGUMENT)
      fail_msg("subprotocol \"%s\" was accepted", bad[i]);
  }
  assert_int_equal(c->num_subprotocols, 1);
  assert_int_equal(c->set_mask, 0);

  /* 64 bytes is the maximum token length. */
  memset(name, 'x', sizeof(name));
  name[64] = '\0';
  assert_int_equal(agentws_config_add_subprotocol(c, name), 0);
  name[64] = 'x';
  name[65] = '\0';
  assert_int_equal(agentws_config_add_subprotocol(c, name),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(c->num_subprotocols, 2);

  /* Every tchar is allowed; "Bearer.x" is not the reserved prefix. */
  assert_int_equal(agentws_config_add_subprotocol(c, "!#$%&'*+-.^_`|~09azAZ"),
                   0);
  assert_int_equal(agentws_config_add_subprotocol(c, "bearer"), 0);
  assert_int_equal(c->num_subprotocols, 4);

  /* Idempotent, including the built-in one. */
  assert_int_equal(agentws_config_add_subprotocol(c, "bearer"), 0);
  assert_int_equal(agentws_config_add_subprotocol(c, "agentws.v1"), 0);
  assert_int_equal(c->num_subprotocols, 4);
  assert_string_equal(c->subprotocols[0], "agentws.v1");
  assert_string_equal(c->subprotocols[3], "bearer");
}

static void test_subprotocol_limit(void **state) {
  agentws_config *c = *state;
  char name[16];
  size_t i;
  /* "agentws.v1" holds one of the 32 slots. */
  for (i = 1; i < AGENTWS__MAX_LIST; i++) {
    snprintf(name, sizeof(name), "p%zu", i);
    assert_int_equal(agentws_config_add_subprotocol(c, name), 0);
  }
  assert_int_equal(c->num_subprotocols, AGENTWS__MAX_LIST);
  assert_int_equal(agentws_config_add_subprotocol(c, "one-more"),
                   AGENTWS_ERR_OUT_OF_RANGE);
  /* A name already present is still fine when the list is full. */
  assert_int_equal(agentws_config_add_subprotocol(c, "p1"), 0);
  assert_int_equal(c->num_subprotocols, AGENTWS__MAX_LIST);
}

static void test_origins(void **state) {
  agentws_config *c = *state;
  static const char *const bad[] = {
      "", "https://a b", " https://a", "https://a\t", "https://\xc3\xa9",
      "https://a\x7f", "https://a\r\n",
  };
  char o[1100];
  size_t i;

  assert_int_equal(agentws_config_add_allowed_origin(NULL, "https://a"),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_add_allowed_origin(c, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  for (i = 0; i < N(bad); i++) {
    if (agentws_config_add_allowed_origin(c, bad[i]) !=
        AGENTWS_ERR_INVALID_ARGUMENT)
      fail_msg("origin \"%s\" was accepted", bad[i]);
  }
  assert_int_equal(c->num_origins, 0);

  /* 1024 bytes is accepted, 1025 is not. */
  memset(o, 'o', sizeof(o));
  memcpy(o, "https://", 8);
  o[1024] = '\0';
  assert_int_equal(agentws_config_add_allowed_origin(c, o), 0);
  o[1024] = 'o';
  o[1025] = '\0';
  assert_int_equal(agentws_config_add_allowed_origin(c, o),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(c->num_origins, 1);

  /* Copied, and idempotent. */
  strcpy(o, "https://app.example");
  assert_int_equal(agentws_config_add_allowed_origin(c, o), 0);
  o[8] = 'X';
  assert_string_equal(c->origins[1], "https://app.example");
  assert_int_equal(agentws_config_add_allowed_origin(c, "https://app.example"),
                   0);
  assert_int_equal(c->num_origins, 2);
  /* Exact match: a different case is another origin. */
  assert_int_equal(agentws_config_add_allowed_origin(c, "https://APP.example"),
                   0);
  assert_int_equal(c->num_origins, 3);
}

static void test_origin_limit(void **state) {
  agentws_config *c = *state;
  char o[64];
  size_t i;
  for (i = 0; i < AGENTWS__MAX_LIST; i++) {
    snprintf(o, sizeof(o), "https://h%zu.example", i);
    assert_int_equal(agentws_config_add_allowed_origin(c, o), 0);
  }
  assert_int_equal(c->num_origins, 32);
  assert_int_equal(
      agentws_config_add_allowed_origin(c, "https://h32.example"),
      AGENTWS_ERR_OUT_OF_RANGE);
  assert_int_equal(c->num_origins, 32);
  assert_int_equal(agentws_config_add_allowed_origin(c, "https://h0.example"),
                   0);
  assert_int_equal(c->num_origins, 32);
}

static void test_copy_independent(void **state) {
  agentws_config *src = *state;
  agentws_config *dst = NULL;

  assert_int_equal(agentws_config_set_ws_path(src, "/events"), 0);
  assert_int_equal(agentws_config_set_max_message_size(src, 4096), 0);
  assert_int_equal(agentws_config_set_ping_interval_ms(src, 0), 0);
  assert_int_equal(agentws_config_set_max_connections(src, 7), 0);
  assert_int_equal(agentws_config_set_healthz(src, 0), 0);
  assert_int_equal(agentws_config_add_allowed_origin(src, "https://a"), 0);
  assert_int_equal(agentws_config_add_allowed_origin(src, "https://b"), 0);
  assert_int_equal(agentws_config_add_subprotocol(src, "chat"), 0);

  assert_int_equal(agentws__config_copy(&dst, src), 0);
  assert_non_null(dst);
  assert_ptr_not_equal(dst->ws_path, src->ws_path);
  assert_ptr_not_equal(dst->origins[0], src->origins[0]);
  assert_ptr_not_equal(dst->subprotocols[1], src->subprotocols[1]);
  assert_int_equal(dst->set_mask, src->set_mask);

  /* Change and free the source: the copy keeps what it had. */
  assert_int_equal(agentws_config_set_ws_path(src, "/other"), 0);
  assert_int_equal(agentws_config_set_max_message_size(src, 1), 0);
  assert_int_equal(agentws_config_add_allowed_origin(src, "https://c"), 0);
  assert_int_equal(agentws_config_add_subprotocol(src, "chat2"), 0);
  agentws_config_free(src);
  *state = NULL;

  assert_string_equal(dst->ws_path, "/events");
  assert_true(dst->max_message_size == 4096);
  assert_true(dst->ping_interval_ms == 0);
  assert_true(dst->max_connections == 7);
  assert_int_equal(dst->healthz, 0);
  assert_int_equal(dst->num_origins, 2);
  assert_string_equal(dst->origins[0], "https://a");
  assert_string_equal(dst->origins[1], "https://b");
  assert_int_equal(dst->num_subprotocols, 2);
  assert_string_equal(dst->subprotocols[0], "agentws.v1");
  assert_string_equal(dst->subprotocols[1], "chat");
  assert_true(dst->close_timeout_ms == 5000); /* untouched default */

  /* The copy can be changed on its own, and a copy of a copy works. */
  {
    agentws_config *dst2 = NULL;
    assert_int_equal(agentws__config_copy(&dst2, dst), 0);
    assert_int_equal(agentws_config_add_allowed_origin(dst, "https://z"), 0);
    assert_int_equal(dst2->num_origins, 2);
    agentws_config_free(dst2);
  }
  agentws_config_free(dst);
}

static void test_copy_full_lists(void **state) {
  agentws_config *src = *state;
  agentws_config *dst = NULL;
  char s[32];
  size_t i;
  for (i = 0; i < AGENTWS__MAX_LIST; i++) {
    snprintf(s, sizeof(s), "https://h%zu", i);
    assert_int_equal(agentws_config_add_allowed_origin(src, s), 0);
  }
  for (i = 1; i < AGENTWS__MAX_LIST; i++) {
    snprintf(s, sizeof(s), "p%zu", i);
    assert_int_equal(agentws_config_add_subprotocol(src, s), 0);
  }
  assert_int_equal(agentws__config_copy(&dst, src), 0);
  assert_int_equal(dst->num_origins, AGENTWS__MAX_LIST);
  assert_int_equal(dst->num_subprotocols, AGENTWS__MAX_LIST);
  for (i = 0; i < AGENTWS__MAX_LIST; i++) {
    assert_string_equal(dst->origins[i], src->origins[i]);
    assert_string_equal(dst->subprotocols[i], src->subprotocols[i]);
  }
  assert_int_equal(agentws_config_add_allowed_origin(dst, "https://new"),
                   AGENTWS_ERR_OUT_OF_RANGE);
  agentws_config_free(dst);
}

static void test_copy_of_null_is_defaults(void **state) {
  agentws_config *dst = NULL;
  agentws_config *def = *state;
  assert_int_equal(agentws__config_copy(&dst, NULL), 0);
  assert_non_null(dst);
  assert_int_equal(dst->set_mask, 0);
  assert_string_equal(dst->ws_path, def->ws_path);
  assert_true(dst->max_message_size == def->max_message_size);
  assert_true(dst->ping_interval_ms == def->ping_interval_ms);
  assert_int_equal(dst->listen_backlog, def->listen_backlog);
  assert_int_equal(dst->num_subprotocols, 1);
  agentws_config_free(dst);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_new_and_free_args),
      cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
      cmocka_unit_test_setup_teardown(test_u64_zero_ranges, setup, teardown),
      cmocka_unit_test_setup_teardown(test_u64_ranges, setup, teardown),
      cmocka_unit_test_setup_teardown(test_i64_ranges, setup, teardown),
      cmocka_unit_test_setup_teardown(test_int_ranges, setup, teardown),
      cmocka_unit_test(test_set_mask_bits),
      cmocka_unit_test_setup_teardown(test_ws_path, setup, teardown),
      cmocka_unit_test_setup_teardown(test_subprotocols, setup, teardown),
      cmocka_unit_test_setup_teardown(test_subprotocol_limit, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_origins, setup, teardown),
      cmocka_unit_test_setup_teardown(test_origin_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_copy_independent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_copy_full_lists, setup, teardown),
      cmocka_unit_test_setup_teardown(test_copy_of_null_is_defaults, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
