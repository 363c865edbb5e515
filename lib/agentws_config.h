/* The config object: typed options with ranges checked at set time. */
#ifndef AGENTWS_CONFIG_H
#define AGENTWS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "agentws.h"
#include "agentws_mem.h"

#define AGENTWS__MAX_LIST 32 /* origins / subprotocols kept per config */
#define AGENTWS__MAX_RULES 16 /* room for AGENTWS_RULE_* */

/* Bits of agentws_config.set_mask: which options the host gave. */
enum {
  AGENTWS__OPT_WS_PATH = 1u << 0,
  AGENTWS__OPT_MAX_MESSAGE = 1u << 1,
  AGENTWS__OPT_MAX_QUEUED = 1u << 2,
  AGENTWS__OPT_MAX_HEADER_BYTES = 1u << 3,
  AGENTWS__OPT_MAX_HEADERS = 1u << 4,
  AGENTWS__OPT_HANDSHAKE_TIMEOUT = 1u << 5,
  AGENTWS__OPT_PING_INTERVAL = 1u << 6,
  AGENTWS__OPT_PONG_TIMEOUT = 1u << 7,
  AGENTWS__OPT_IDLE_TIMEOUT = 1u << 8,
  AGENTWS__OPT_CLOSE_TIMEOUT = 1u << 9,
  AGENTWS__OPT_MAX_CONNECTIONS = 1u << 10,
  AGENTWS__OPT_ORIGINS = 1u << 11,
  AGENTWS__OPT_SUBPROTOCOLS = 1u << 12,
  AGENTWS__OPT_HEALTHZ = 1u << 13,
  AGENTWS__OPT_BACKLOG = 1u << 14,
  AGENTWS__OPT_RAW = 1u << 15,
  AGENTWS__OPT_DEV_INSECURE = 1u << 16,
  AGENTWS__OPT_CONNS_PER_USER = 1u << 17,
  AGENTWS__OPT_BACKLOG_EVENTS = 1u << 18,
  AGENTWS__OPT_BACKLOG_BYTES = 1u << 19,
  AGENTWS__OPT_BACKLOG_AGE = 1u << 20,
  AGENTWS__OPT_MAX_CLIENT_MSG = 1u << 21,
  AGENTWS__OPT_CLIENT_RATE = 1u << 22,
  AGENTWS__OPT_AUTH_TIMEOUT = 1u << 23,
  AGENTWS__OPT_MAX_EVENT = 1u << 24,
  AGENTWS__OPT_SNDBUF = 1u << 25
};

/* Where a handshake token may come from (agentws_config_set_token_sources). */
enum {
  AGENTWS__TOKEN_HEADER,
  AGENTWS__TOKEN_SUBPROTOCOL,
  AGENTWS__TOKEN_QUERY,
  AGENTWS__TOKEN_COOKIE,
  AGENTWS__TOKEN_NSOURCES
};

/* Token and JWT options (agentws_auth_config.c). */
typedef struct agentws__auth_cfg {
  struct agentws_keyset *keys; /* a reference; NULL: no JWT checks */
  uint32_t algs;               /* allowed AGENTWS__ALG_* bits */
  char *issuer, *audience;     /* owned, or NULL: not checked */
  char *scope;                 /* owned, or NULL: not required */
  char *user_claim;            /* owned; "sub" */
  int64_t leeway_s;            /* clock skew on exp/nbf/iat */
  int require_exp;             /* refuse tokens without exp */
  int64_t cache_size;          /* verified tokens kept; 0 = off */
  int64_t expiring_s;          /* token_expiring this long before exp */
  uint8_t sources[AGENTWS__TOKEN_NSOURCES]; /* in order */
  size_t num_sources;
  char *query_param, *cookie;  /* owned names */
} agentws__auth_cfg;

/* The monitor's options (agentws_monitor_config.c). */
typedef struct agentws__monitor_cfg {
  int enabled;                 /* histograms, detectors, gauges */
  int64_t interval_ms;         /* scan period */
  int64_t lag_alert_ms;        /* loop_lag threshold; 0 = off */
  int64_t ack_timeout_ms;      /* unacked deadline; 0 = off */
  uint64_t queue_alert_bytes;  /* slow_consumer; UINT64_MAX: a quarter of
                                  max_queued_bytes; 0 = off */
  int64_t auth_timeouts;       /* per window; 0 = off */
  int64_t violations_per_s;    /* 0 = off */
  int64_t window_ms;           /* of the rate rules */
  int metrics, readyz;         /* serve GET /metrics, /readyz */
  char *http_token;            /* owned; NULL: endpoints unprotected */
  int64_t ready_lag_ms;        /* not ready at this loop lag */
  uint64_t ready_queued_bytes; /* not ready above; 0 = off */
  int log_level;               /* most verbose AGENTWS_LOG_* passed on */
} agentws__monitor_cfg;

void agentws__monitor_cfg_init(agentws__monitor_cfg *c);
int agentws__monitor_cfg_copy(agentws__monitor_cfg *dst,
                              const agentws__monitor_cfg *src,
                              const agentws__mem *mem);
void agentws__monitor_cfg_free(agentws__monitor_cfg *c,
                               const agentws__mem *mem);

int agentws__auth_cfg_init(agentws__auth_cfg *a, const agentws__mem *mem);
/* |dst| is overwritten (not freed first). */
int agentws__auth_cfg_copy(agentws__auth_cfg *dst,
                           const agentws__auth_cfg *src,
                           const agentws__mem *mem);
void agentws__auth_cfg_free(agentws__auth_cfg *a, const agentws__mem *mem);

struct agentws_config {
  const agentws__mem *mem;   /* allocator of this object */
  agentws__mem alloc;        /* a manager's allocator (set_allocator) */
  uint32_t set_mask;         /* AGENTWS__OPT_* given by the host */
  char *ws_path;             /* owned; "/ws" by default */
  uint64_t max_message_size; /* inbound message bound (1009 past it) */
  uint64_t max_queued_bytes; /* outbound queue bound (1013 past it) */
  uint64_t max_header_bytes; /* request head bound (431 past it) */
  int max_headers;           /* header line bound (431 past it) */
  int64_t handshake_timeout_ms; /* head must arrive within (408) */
  int64_t ping_interval_ms;  /* quiet time before a ping; 0 = off */
  int64_t pong_timeout_ms;   /* answer time after a ping */
  int64_t idle_timeout_ms;   /* no messages -> 1001; 0 = off */
  int64_t close_timeout_ms;  /* close handshake / drain deadline */
  int64_t max_connections;   /* WebSocket connections; 0 = no limit */
  int healthz;               /* serve GET /healthz */
  int listen_backlog;        /* listen(2) backlog */
  int raw_messages;          /* no agent protocol: bytes to on_message */
  int dev_insecure;          /* user id from ?user= (development only) */
  int max_conns_per_user;    /* handshakes past it: 429 */
  int64_t backlog_events;    /* per stream */
  uint64_t backlog_bytes;    /* per stream */
  int64_t backlog_age_ms;    /* per event; 0 = no age limit */
  uint64_t max_client_message; /* protocol messages past it: error */
  int client_rate;           /* client messages per second */
  int64_t auth_timeout_ms;   /* on_authenticate must answer within */
  uint64_t max_event_bytes;  /* emit refuses bigger envelopes */
  uint64_t socket_sndbuf;    /* SO_SNDBUF per connection; 0 = kernel's */
  char *origins[AGENTWS__MAX_LIST];      /* owned, allow-list */
  size_t num_origins;
  char *subprotocols[AGENTWS__MAX_LIST]; /* owned; [0] is "agentws.v1" */
  size_t num_subprotocols;
  agentws__auth_cfg auth;     /* tokens and JWT */
  int validation;             /* AGENTWS_VALIDATION_* of every rule */
  int rule_policy[AGENTWS__MAX_RULES]; /* overrides, where rule_set */
  uint32_t rule_set;          /* bit per rule with an override */
  int64_t stall_timeout_ms;   /* 0 = off */
  int64_t tool_timeout_ms;    /* 0 = off */
  int64_t max_live_runs;
  int64_t run_keep_ms;
  agentws__monitor_cfg mon;   /* monitor, endpoints, log */
};

/* The effective policy of |rule|. */
static inline int agentws__config_rule_policy(const agentws_config *c,
                                              int rule) {
  return (c->rule_set & (1u << rule)) ? c->rule_policy[rule] : c->validation;
}

/* Deep copy of |src| (or of the defaults when |src| is NULL). */
int agentws__config_copy(agentws_config **out, const agentws_config *src);
/* The allocator a manager made from |c| uses. */
const agentws__mem *agentws__config_alloc(const agentws_config *c);

#endif /* AGENTWS_CONFIG_H */
