/*
 * Inbound client messages of the agentws.v1 protocol: parse (jansson),
 * classify and check them, so the emitter only sees well-formed requests.
 * Also the per-connection rate limiter.
 */
#ifndef AGENTWS_INBOUND_H
#define AGENTWS_INBOUND_H

#include <stddef.h>
#include <stdint.h>

enum {
  AGENTWS__IN_ERROR,  /* refused: see error_code / error_message */
  AGENTWS__IN_RESUME, /* {"type":"resume","epoch":E,"last_seq":N} */
  AGENTWS__IN_ACK,    /* {"type":"ack","seq":N[,"stream":"room:R"]} */
  AGENTWS__IN_PING,   /* {"type":"ping"} */
  AGENTWS__IN_JOIN,   /* {"type":"join","room":R[,"epoch":E,"last_seq":N]} */
  AGENTWS__IN_LEAVE,  /* {"type":"leave","room":R} */
  AGENTWS__IN_REFRESH,/* {"type":"refresh","token":T} (auth issue) */
  AGENTWS__IN_OTHER   /* any other type: for the host */
};

typedef struct agentws__inbound {
  int kind;                  /* AGENTWS__IN_* */
  const char *type;          /* the "type" string (not for ERROR) */
  const char *epoch;         /* RESUME, JOIN: or NULL */
  uint64_t last_seq;         /* RESUME, JOIN */
  int has_last_seq;          /* JOIN: last_seq was given */
  uint64_t seq;              /* ACK */
  const char *stream;        /* ACK: NULL (user stream) or "room:R" */
  const char *room;          /* JOIN, LEAVE: a valid room id */
  const char *token;         /* REFRESH */
  const char *error_code;    /* ERROR: "too_large", "bad_json",
                                "bad_message" (no/odd type), "bad_field" */
  const char *error_message; /* ERROR: human-readable, static */
  void *json;                /* the parsed json_t, owned */
} agentws__inbound;

/*
 * Parses one text message. Messages over |max_len| are refused with
 * "too_large" without parsing. All strings point into the parsed JSON and
 * live until agentws__inbound_free(). Never fails otherwise: every problem
 * is an AGENTWS__IN_ERROR result. Thread-safe.
 */
void agentws__inbound_parse(const char *msg, size_t len, size_t max_len,
                            agentws__inbound *out);
void agentws__inbound_free(agentws__inbound *in);

/* 1 if |room| is a valid room id: 1..128 bytes of [A-Za-z0-9_.:-]. */
int agentws__room_valid(const char *room);

/* Token bucket: |rate| tokens per second, |burst| at most. */
typedef struct agentws__rate {
  double tokens;    /* available now */
  uint64_t last_ms; /* when tokens was computed */
} agentws__rate;

void agentws__rate_init(agentws__rate *r, uint64_t now_ms, double burst);
/* Takes one token: 1 if allowed, 0 if over the rate. */
int agentws__rate_take(agentws__rate *r, uint64_t now_ms, double rate,
                       double burst);

#endif /* AGENTWS_INBOUND_H */
