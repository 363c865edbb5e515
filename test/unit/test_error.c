/*
 * Unit tests for error names and descriptions (lib/agentws_error.c) and the
 * runtime version (lib/agentws_version.c).
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"

static const int codes[] = {
    AGENTWS_ERR_INVALID_ARGUMENT,   AGENTWS_ERR_OUT_OF_RANGE,
    AGENTWS_ERR_INVALID_STATE,      AGENTWS_ERR_NOT_FOUND,
    AGENTWS_ERR_WRONG_THREAD,       AGENTWS_ERR_CLOSING,
    AGENTWS_ERR_QUEUE_FULL,         AGENTWS_ERR_TOO_BIG,
    AGENTWS_ERR_INVALID_UTF8,       AGENTWS_ERR_CALLBACK_FAILURE,
    AGENTWS_ERR_INVALID_CLOSE_CODE, AGENTWS_ERR_LIMIT,
    AGENTWS_ERR_INVALID_JSON,       AGENTWS_ERR_VALIDATION,
    AGENTWS_ERR_NOMEM,              AGENTWS_ERR_INTERNAL,
};

/* The same codes by name, so a renamed or renumbered code shows up here. */
static const struct {
  int code;
  const char *name;
} expected[] = {
    {-1001, "AGENTWS_ERR_INVALID_ARGUMENT"},
    {-1002, "AGENTWS_ERR_OUT_OF_RANGE"},
    {-1003, "AGENTWS_ERR_INVALID_STATE"},
    {-1004, "AGENTWS_ERR_NOT_FOUND"},
    {-1005, "AGENTWS_ERR_WRONG_THREAD"},
    {-1006, "AGENTWS_ERR_CLOSING"},
    {-1007, "AGENTWS_ERR_QUEUE_FULL"},
    {-1008, "AGENTWS_ERR_TOO_BIG"},
    {-1009, "AGENTWS_ERR_INVALID_UTF8"},
    {-1010, "AGENTWS_ERR_CALLBACK_FAILURE"},
    {-1011, "AGENTWS_ERR_INVALID_CLOSE_CODE"},
    {-1012, "AGENTWS_ERR_LIMIT"},
    {-1013, "AGENTWS_ERR_INVALID_JSON"},
    {-1014, "AGENTWS_ERR_VALIDATION"},
    {-1900, "AGENTWS_ERR_NOMEM"},
    {-1901, "AGENTWS_ERR_INTERNAL"},
};

/* Codes nobody defines: inside our block, between blocks, and far out. */
static const int unknown[] = {
    -1000, -1015, -1500, -1899, -1902, -1999, -99999, 12345, 1, INT_MIN,
    INT_MAX, -200000,
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int contains_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay != '\0'; hay++)
    if (strncasecmp(hay, needle, n) == 0)
      return 1;
  return 0;
}

static void test_every_code_named(void **state) {
  size_t i, j;
  (void)state;
  assert_int_equal(N(codes), N(expected));
  for (i = 0; i < N(codes); i++) {
    const char *name = agentws_err_name(codes[i]);
    const char *text = agentws_strerror(codes[i]);
    assert_int_equal(codes[i], expected[i].code);
    assert_non_null(name);
    assert_non_null(text);
    assert_string_equal(name, expected[i].name);
    assert_true(strlen(text) > 0);
    assert_false(contains_ci(text, "unknown"));
    /* Own codes stay in -1000..-1999. */
    assert_true(codes[i] <= -1000 && codes[i] >= -1999);
    /* Static: the same pointer every time. */
    assert_ptr_equal(agentws_err_name(codes[i]), name);
    assert_ptr_equal(agentws_strerror(codes[i]), text);
    for (j = 0; j < i; j++) {
      assert_true(codes[i] != codes[j]);
      assert_string_not_equal(name, agentws_err_name(codes[j]));
      assert_string_not_equal(text, agentws_strerror(codes[j]));
    }
  }
}

static void test_ok(void **state) {
  (void)state;
  assert_string_equal(agentws_err_name(0), "OK");
  assert_non_null(agentws_strerror(0));
  assert_true(strlen(agentws_strerror(0)) > 0);
  assert_false(contains_ci(agentws_strerror(0), "unknown"));
  assert_false(contains_ci(agentws_strerror(0), "error"));
}

static void test_libuv_codes(void **state) {
  static const struct {
    int code;
    const char *name;
  } uv_codes[] = {
      {UV_EADDRINUSE, "EADDRINUSE"}, {UV_EOF, "EOF"},
      {UV_ECONNRESET, "ECONNRESET"}, {UV_EPERM, "EPERM"},
      {UV_EAI_NONAME, "EAI_NONAME"}, {UV_ETIMEDOUT, "ETIMEDOUT"},
      {UV_EMFILE, "EMFILE"},         {UV_ENOMEM, "ENOMEM"},
  };
  size_t i;
  (void)state;
  for (i = 0; i < N(uv_codes); i++) {
    assert_string_equal(agentws_err_name(uv_codes[i].code), uv_codes[i].name);
    assert_string_equal(agentws_strerror(uv_codes[i].code),
                        uv_strerror(uv_codes[i].code));
    assert_int_equal(agentws_err_is_fatal(uv_codes[i].code), 0);
  }
  assert_string_equal(agentws_strerror(UV_EADDRINUSE),
                      "address already in use");
}

/* Unknown codes get a static fallback; libuv's uv_strerror() would leak a
 * heap string for each (run this binary under valgrind to see none). */
static void test_unknown_codes(void **state) {
  size_t i;
  int round;
  (void)state;
  for (round = 0; round < 3; round++) {
    for (i = 0; i < N(unknown); i++) {
      const char *name = agentws_err_name(unknown[i]);
      const char *text = agentws_strerror(unknown[i]);
      char buf[128];
      assert_non_null(name);
      assert_non_null(text);
      if (!contains_ci(name, "unknown"))
        fail_msg("err_name(%d) = \"%s\"", unknown[i], name);
      if (!contains_ci(text, "unknown"))
        fail_msg("strerror(%d) = \"%s\"", unknown[i], text);
      assert_ptr_equal(agentws_err_name(unknown[i]), name);
      assert_ptr_equal(agentws_strerror(unknown[i]), text);
      assert_int_equal(agentws_strerror_r(unknown[i], buf, sizeof(buf)), 0);
      assert_string_equal(buf, text);
    }
  }
}

static void test_strerror_r(void **state) {
  const char *full = agentws_strerror(AGENTWS_ERR_INVALID_ARGUMENT);
  size_t n = strlen(full);
  char buf[256];
  (void)state;

  assert_int_equal(agentws_strerror_r(AGENTWS_ERR_INVALID_ARGUMENT, NULL, 10),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  memset(buf, 'Z', sizeof(buf));
  assert_int_equal(agentws_strerror_r(AGENTWS_ERR_INVALID_ARGUMENT, buf, 0),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(buf[0], 'Z'); /* len 0: nothing written */
  assert_int_equal(agentws_strerror_r(0, NULL, 0),
                   AGENTWS_ERR_INVALID_ARGUMENT);

  /* Room for the whole string. */
  memset(buf, 'Z', sizeof(buf));
  assert_int_equal(
      agentws_strerror_r(AGENTWS_ERR_INVALID_ARGUMENT, buf, sizeof(buf)), 0);
  assert_string_equal(buf, full);

  /* Exactly enough, one short, a single byte. */
  memset(buf, 'Z', sizeof(buf));
  assert_int_equal(agentws_strerror_r(AGENTWS_ERR_INVALID_ARGUMENT, buf, n + 1),
                   0);
  assert_string_equal(buf, full);
  assert_int_equal(buf[n + 1], 'Z');

  memset(buf, 'Z', sizeof(buf));
  assert_int_equal(agentws_strerror_r(AGENTWS_ERR_INVALID_ARGUMENT, buf, n), 0);
  assert_int_equal(strlen(buf), n - 1);
  assert_memory_equal(buf, full, n - 1);
  assert_int_equal(buf[n], 'Z');

  memset(buf, 'Z', sizeof(buf));
  assert_int_equal(agentws_strerror_r(AGENTWS_ERR_INVALID_ARGUMENT, buf, 5),
                   0);
  assert_int_equal(strlen(buf), 4);
  assert_memory_equal(buf, full, 4);
  assert_int_equal(buf[5], 'Z');

  memset(buf, 'Z', sizeof(buf));
  assert_int_equal(agentws_strerror_r(AGENTWS_ERR_NOMEM, buf, 1), 0);
  assert_int_equal(buf[0], '\0');
  assert_int_equal(buf[1], 'Z');

  /* libuv codes go through the same path. */
  assert_int_equal(agentws_strerror_r(UV_EADDRINUSE, buf, sizeof(buf)), 0);
  assert_string_equal(buf, uv_strerror(UV_EADDRINUSE));
  assert_int_equal(agentws_strerror_r(0, buf, sizeof(buf)), 0);
  assert_string_equal(buf, agentws_strerror(0));
}

static void test_is_fatal(void **state) {
  size_t i;
  (void)state;
  assert_int_equal(agentws_err_is_fatal(-1899), 0);
  assert_int_equal(agentws_err_is_fatal(-1900), 1);
  assert_int_equal(agentws_err_is_fatal(-1950), 1);
  assert_int_equal(agentws_err_is_fatal(-1999), 1);
  assert_int_equal(agentws_err_is_fatal(-2000), 0);
  assert_int_equal(agentws_err_is_fatal(0), 0);
  assert_int_equal(agentws_err_is_fatal(1900), 0);
  assert_int_equal(agentws_err_is_fatal(INT_MIN), 0);
  assert_int_equal(agentws_err_is_fatal(INT_MAX), 0);
  for (i = 0; i < N(codes); i++)
    assert_int_equal(agentws_err_is_fatal(codes[i]),
                     codes[i] == AGENTWS_ERR_NOMEM ||
                         codes[i] == AGENTWS_ERR_INTERNAL);
}

static void test_version(void **state) {
  char want[32];
  unsigned v = agentws_version();
  (void)state;
  assert_int_equal(v, AGENTWS_VERSION_NUM);
  assert_int_equal(v, ((unsigned)AGENTWS_VERSION_MAJOR << 16) |
                          ((unsigned)AGENTWS_VERSION_MINOR << 8) |
                          (unsigned)AGENTWS_VERSION_PATCH);
  assert_int_equal((v >> 16) & 0xff, AGENTWS_VERSION_MAJOR);
  assert_int_equal((v >> 8) & 0xff, AGENTWS_VERSION_MINOR);
  assert_int_equal(v & 0xff, AGENTWS_VERSION_PATCH);
  assert_non_null(agentws_version_string());
  assert_string_equal(agentws_version_string(), AGENTWS_VERSION_STRING);
  snprintf(want, sizeof(want), "%d.%d.%d", AGENTWS_VERSION_MAJOR,
           AGENTWS_VERSION_MINOR, AGENTWS_VERSION_PATCH);
  assert_string_equal(agentws_version_string(), want);
  assert_ptr_equal(agentws_version_string(), agentws_version_string());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_code_named),
      cmocka_unit_test(test_ok),
      cmocka_unit_test(test_libuv_codes),
      cmocka_unit_test(test_unknown_codes),
      cmocka_unit_test(test_strerror_r),
      cmocka_unit_test(test_is_fatal),
      cmocka_unit_test(test_version),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
