/*
 * Incremental UTF-8 validator (RFC 3629 §4), table-driven.
 *
 * Each byte is mapped to one of 12 classes chosen so that every second-byte
 * restriction of RFC 3629's table (E0 A0..BF, ED 80..9F, F0 90..BF, F4 80..8F)
 * falls on a class boundary; a 9x12 transition table then rejects overlongs,
 * surrogates and code points above U+10FFFF without decoding anything. The
 * state is a plain integer, so a sequence split across calls just resumes.
 */
#include "agentws_utf8.h"

#include <string.h>

/* Byte classes. */
enum {
  C_ASCII, /* 00..7F */
  C_CT1,   /* 80..8F  continuation */
  C_CT2,   /* 90..9F  continuation */
  C_CT3,   /* A0..BF  continuation */
  C_BAD,   /* C0 C1 F5..FF: never valid (overlong or beyond U+10FFFF) */
  C_L2,    /* C2..DF  lead of 2 */
  C_E0,    /* E0      lead of 3, second byte A0..BF (no overlongs) */
  C_L3,    /* E1..EC EE EF  lead of 3 */
  C_ED,    /* ED      lead of 3, second byte 80..9F (no surrogates) */
  C_F0,    /* F0      lead of 4, second byte 90..BF (no overlongs) */
  C_L4,    /* F1..F3  lead of 4 */
  C_F4,    /* F4      lead of 4, second byte 80..8F (<= U+10FFFF) */
  NCLASS
};

/* States; ACCEPT and REJECT are fixed by the header as 0 and 1. */
enum {
  S_OK = AGENTWS__UTF8_ACCEPT,
  S_BAD = AGENTWS__UTF8_REJECT,
  S_N1, /* one continuation byte left */
  S_N2, /* two left */
  S_N3, /* three left */
  S_E0, /* after E0 */
  S_ED, /* after ED */
  S_F0, /* after F0 */
  S_F4, /* after F4 */
  NSTATE
};

/* clang-format off */
#define ROW16(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c

static const uint8_t byte_class[256] = {
    ROW16(C_ASCII), ROW16(C_ASCII), ROW16(C_ASCII), ROW16(C_ASCII), /* 00-3F */
    ROW16(C_ASCII), ROW16(C_ASCII), ROW16(C_ASCII), ROW16(C_ASCII), /* 40-7F */
    ROW16(C_CT1),                                                   /* 80-8F */
    ROW16(C_CT2),                                                   /* 90-9F */
    ROW16(C_CT3), ROW16(C_CT3),                                     /* A0-BF */
    C_BAD, C_BAD, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2,               /* C0-C7 */
    C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2,                 /* C8-CF */
    ROW16(C_L2),                                                    /* D0-DF */
    C_E0, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3,                 /* E0-E7 */
    C_L3, C_L3, C_L3, C_L3, C_L3, C_ED, C_L3, C_L3,                 /* E8-EF */
    C_F0, C_L4, C_L4, C_L4, C_F4, C_BAD, C_BAD, C_BAD,              /* F0-F7 */
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,         /* F8-FF */
};

/*
 * Rows: states OK, BAD, N1, N2, N3, E0, ED, F0, F4 (enum order).
 * Columns: ASCII CT1 CT2 CT3 BAD L2 E0 L3 ED F0 L4 F4 (enum order).
 */
#define B S_BAD
static const uint8_t next_state[NSTATE][NCLASS] = {
    {S_OK, B,    B,    B,    B, S_N1, S_E0, S_N2, S_ED, S_F0, S_N3, S_F4},
    {B,    B,    B,    B,    B, B,    B,    B,    B,    B,    B,    B},
    {B,    S_OK, S_OK, S_OK, B, B,    B,    B,    B,    B,    B,    B},
    {B,    S_N1, S_N1, S_N1, B, B,    B,    B,    B,    B,    B,    B},
    {B,    S_N2, S_N2, S_N2, B, B,    B,    B,    B,    B,    B,    B},
    {B,    B,    B,    S_N1, B, B,    B,    B,    B,    B,    B,    B},
    {B,    S_N1, S_N1, B,    B, B,    B,    B,    B,    B,    B,    B},
    {B,    B,    S_N2, S_N2, B, B,    B,    B,    B,    B,    B,    B},
    {B,    S_N2, B,    B,    B, B,    B,    B,    B,    B,    B,    B},
};
#undef B
/* clang-format on */

#define HIGH_BITS UINT64_C(0x8080808080808080)

uint32_t agentws__utf8_feed(uint32_t state, const uint8_t *s, size_t len) {
  size_t i = 0;

  /* An out-of-range state can only come from a caller bug: fail closed. */
  if (state >= NSTATE)
    return S_BAD;
  while (i < len && state != S_BAD) {
    /* Text is mostly ASCII: at a boundary, skip 8 such bytes per step. */
    if (state == S_OK) {
      while (len - i >= 16) {
        uint64_t w[2];
        memcpy(w, s + i, sizeof(w));
        if ((w[0] | w[1]) & HIGH_BITS)
          break;
        i += 16;
      }
      while (len - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, sizeof(w));
        if (w & HIGH_BITS)
          break;
        i += 8;
      }
      if (i == len)
        break;
    }
    state = next_state[state][byte_class[s[i]]];
    i++;
  }
  return state;
}

int agentws__utf8_valid(const uint8_t *s, size_t len) {
  return agentws__utf8_feed(AGENTWS__UTF8_ACCEPT, s, len) ==
         AGENTWS__UTF8_ACCEPT;
}
