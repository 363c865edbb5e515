/* Unit tests for the incremental UTF-8 validator (lib/agentws_utf8.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agentws_utf8.h"

#define U(s) (const uint8_t *)(s), (sizeof(s) - 1)

/*
 * Reference: decode naively and check the RFC 3629 rules on the value. It
 * shares nothing with the table-driven code, so agreement means something.
 */
static int ref_valid(const uint8_t *s, size_t len) {
  size_t i = 0;

  while (i < len) {
    uint32_t cp;
    size_t n;
    size_t k;
    uint8_t b = s[i];

    if (b < 0x80) {
      i++;
      continue;
    } else if ((b & 0xe0) == 0xc0) {
      n = 2;
      cp = b & 0x1fu;
    } else if ((b & 0xf0) == 0xe0) {
      n = 3;
      cp = b & 0x0fu;
    } else if ((b & 0xf8) == 0xf0) {
      n = 4;
      cp = b & 0x07u;
    } else {
      return 0;
    }
    if (len - i < n)
      return 0;
    for (k = 1; k < n; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i + k] & 0x3fu);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
        (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += n;
  }
  return 1;
}

static void test_valid_vectors(void **state) {
  (void)state;
  assert_true(agentws__utf8_valid(U("")));
  assert_true(
      agentws__utf8_valid(U("plain ASCII, long enough for 8-byte steps")));
  assert_true(agentws__utf8_valid(U("\x00\x7f")));
  assert_true(agentws__utf8_valid(U("caf\xc3\xa9")));      /* U+00E9 */
  assert_true(agentws__utf8_valid(U("\xc2\x80\xdf\xbf"))); /* U+0080, U+07FF */
  assert_true(
      agentws__utf8_valid(U("\xe0\xa0\x80\xef\xbf\xbf"))); /* U+0800, U+FFFF */
  assert_true(agentws__utf8_valid(U("\xe2\x82\xac")));     /* EURO SIGN */
  assert_true(
      agentws__utf8_valid(U("\xed\x9f\xbf\xee\x80\x80"))); /* U+D7FF, U+E000 */
  assert_true(agentws__utf8_valid(U("\xf0\x90\x80\x80"))); /* U+10000 */
  assert_true(agentws__utf8_valid(U("\xf0\x9f\x98\x80"))); /* U+1F600 */
  assert_true(agentws__utf8_valid(U("\xf4\x8f\xbf\xbf"))); /* U+10FFFF */
  assert_true(
      agentws__utf8_valid(U("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")));
  assert_true(agentws__utf8_valid(U("01234567\xc3\xa9"
                                    "01234567\xf0\x9f\x98\x80")));
}

static void test_invalid_vectors(void **state) {
  static const struct {
    const char *s;
    size_t len;
  } bad[] = {
#define B(s) {s, sizeof(s) - 1}
      B("\xc0\x80"),                 /* overlong NUL */
      B("\xc1\xbf"),                 /* overlong U+007F */
      B("\xe0\x80\x80"),             /* overlong NUL, 3 bytes */
      B("\xe0\x9f\xbf"),             /* overlong U+07FF */
      B("\xf0\x80\x80\x80"),         /* overlong NUL, 4 bytes */
      B("\xf0\x8f\xbf\xbf"),         /* overlong U+FFFF */
      B("\xed\xa0\x80"),             /* U+D800 */
      B("\xed\xbf\xbf"),             /* U+DFFF */
      B("\xed\xa0\x80\xed\xb0\x80"), /* surrogate pair, CESU-8 */
      B("\xf4\x90\x80\x80"),         /* U+110000 */
      B("\xf5\x80\x80\x80"),
      B("\xf8\x88\x80\x80\x80"), /* 5-byte form */
      B("\xfe"),
      B("\xff"),
      B("\x80"), /* stray continuation */
      B("a\xbf"),
      B("\xc3\xa9\x80"),
      B("\xc3"), /* truncated */
      B("\xe2\x82"),
      B("\xf0\x9f\x98"),
      B("\xc3"
        "a"), /* lead then ASCII */
      B("\xe2\x82"
        "a"),
      B("\xf0\x9f\x98"
        "0123456789abcdef"),
      B("0123456789abcde\xe2"), /* truncated after a fast-path run */
#undef B
  };
  size_t k;
  (void)state;

  for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
    if (agentws__utf8_valid((const uint8_t *)bad[k].s, bad[k].len))
      fail_msg("accepted invalid vector #%zu", k);
  }
}

static void test_truncated_is_not_reject(void **state) {
  uint32_t st;
  (void)state;

  /* Mid-sequence is neither ACCEPT nor REJECT: more input may complete it. */
  st = agentws__utf8_feed(AGENTWS__UTF8_ACCEPT, U("\xf0\x9f"));
  assert_int_not_equal(st, AGENTWS__UTF8_ACCEPT);
  assert_int_not_equal(st, AGENTWS__UTF8_REJECT);
  st = agentws__utf8_feed(st, U("\x98\x80"));
  assert_int_equal(st, AGENTWS__UTF8_ACCEPT);
  /* Empty feeds change nothing. */
  st = agentws__utf8_feed(AGENTWS__UTF8_ACCEPT, U("\xe2"));
  assert_int_equal(agentws__utf8_feed(st, NULL, 0), st);
}

static void test_split_four_byte(void **state) {
  static const uint8_t seqs[][4] = {
      {0xf0, 0x9f, 0x98, 0x80},
      {0xf0, 0x90, 0x80, 0x80},
      {0xf4, 0x8f, 0xbf, 0xbf},
      {0xf3, 0xbf, 0xbf, 0xbf},
  };
  size_t j;
  size_t cut;
  (void)state;

  for (j = 0; j < sizeof(seqs) / sizeof(seqs[0]); j++) {
    for (cut = 0; cut <= 4; cut++) {
      uint32_t st = agentws__utf8_feed(AGENTWS__UTF8_ACCEPT, seqs[j], cut);
      if (cut > 0 && cut < 4) {
        assert_int_not_equal(st, AGENTWS__UTF8_ACCEPT);
        assert_int_not_equal(st, AGENTWS__UTF8_REJECT);
      }
      st = agentws__utf8_feed(st, seqs[j] + cut, 4 - cut);
      assert_int_equal(st, AGENTWS__UTF8_ACCEPT);
    }
  }
  /* Splitting an invalid sequence still rejects: F4 | 90 80 80. */
  {
    uint32_t st = agentws__utf8_feed(AGENTWS__UTF8_ACCEPT, U("\xf4"));
    assert_int_equal(agentws__utf8_feed(st, U("\x90\x80\x80")),
                     AGENTWS__UTF8_REJECT);
  }
}

static void test_every_byte_split(void **state) {
  static const char text[] = "h\xc3\xa9llo \xe2\x82\xac wor\xf0\x9f\x98\x80ld "
                             "and some more ASCII after it \xed\x9f\xbf";
  const uint8_t *s = (const uint8_t *)text;
  size_t n = sizeof(text) - 1;
  size_t cut;
  (void)state;

  for (cut = 0; cut <= n; cut++) {
    uint32_t st = agentws__utf8_feed(AGENTWS__UTF8_ACCEPT, s, cut);
    assert_int_not_equal(st, AGENTWS__UTF8_REJECT);
    assert_int_equal(agentws__utf8_feed(st, s + cut, n - cut),
                     AGENTWS__UTF8_ACCEPT);
  }
}

static void test_sticky_reject(void **state) {
  uint32_t st;
  (void)state;

  st = agentws__utf8_feed(AGENTWS__UTF8_ACCEPT, U("ok\xc0"));
  assert_int_equal(st, AGENTWS__UTF8_REJECT);
  /* Nothing valid afterwards can clear it. */
  assert_int_equal(agentws__utf8_feed(st, U("\x80")), AGENTWS__UTF8_REJECT);
  assert_int_equal(agentws__utf8_feed(st, U("plain ascii text here")),
                   AGENTWS__UTF8_REJECT);
  assert_int_equal(agentws__utf8_feed(st, NULL, 0), AGENTWS__UTF8_REJECT);
  /* A garbage state fails closed. */
  assert_int_equal(agentws__utf8_feed(0xdeadu, U("a")), AGENTWS__UTF8_REJECT);
}

/* Exhaustive over all 1-3 byte strings, and every lead/second pair of 4-byte
 * ones with a few tails, against the reference decoder. */
static void test_against_reference(void **state) {
  static const uint8_t tails[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90,
                                  0xbf, 0xc0, 0xc2, 0xe0, 0xf0, 0xff};
  uint8_t b[4];
  unsigned x;
  unsigned y;
  unsigned z;
  size_t t;
  (void)state;

  for (x = 0; x < 256; x++) {
    b[0] = (uint8_t)x;
    assert_int_equal(agentws__utf8_valid(b, 1), ref_valid(b, 1));
    for (y = 0; y < 256; y++) {
      b[1] = (uint8_t)y;
      assert_int_equal(agentws__utf8_valid(b, 2), ref_valid(b, 2));
      /* Three-byte strings only matter where the first byte is a lead;
       * an ASCII or bad first byte is covered by the shorter cases. */
      if (x < 0xc0)
        continue;
      for (z = 0; z < 256; z++) {
        b[2] = (uint8_t)z;
        assert_int_equal(agentws__utf8_valid(b, 3), ref_valid(b, 3));
      }
      for (z = 0; z < sizeof(tails); z++) {
        b[2] = tails[z];
        for (t = 0; t < sizeof(tails); t++) {
          b[3] = tails[t];
          assert_int_equal(agentws__utf8_valid(b, 4), ref_valid(b, 4));
        }
      }
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_vectors),
      cmocka_unit_test(test_invalid_vectors),
      cmocka_unit_test(test_truncated_is_not_reject),
      cmocka_unit_test(test_split_four_byte),
      cmocka_unit_test(test_every_byte_split),
      cmocka_unit_test(test_sticky_reject),
      cmocka_unit_test(test_against_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
