#include "agentws_config.h"
#include "agentws_http.h"

#include <string.h>

#define DEFAULT_SUBPROTOCOL "agentws.v1"

static void set_defaults(agentws_config *c) {
  c->max_message_size = 1048576;
  c->max_queued_bytes = 1048576;
  c->max_header_bytes = 8192;
  c->max_headers = 64;
  c->handshake_timeout_ms = 10000;
  c->ping_interval_ms = 30000;
  c->pong_timeout_ms = 10000;
  c->idle_timeout_ms = 0;
  c->close_timeout_ms = 5000;
  c->max_connections = 0;
  c->healthz = 1;
  c->listen_backlog = 511;
  c->max_conns_per_user = 5;
  c->backlog_events = 1000;
  c->backlog_bytes = 4u << 20;
  c->backlog_age_ms = 300000;
  c->max_client_message = 65536;
  c->client_rate = 50;
  c->auth_timeout_ms = 5000;
  c->max_event_bytes = 262144;
  c->validation = AGENTWS_VALIDATION_WARN;
  c->stall_timeout_ms = 300000;
  c->tool_timeout_ms = 300000;
  c->max_live_runs = 100000;
  c->run_keep_ms = 600000;
  agentws__monitor_cfg_init(&c->mon);
}

int agentws_config_new(agentws_config **out) {
  const agentws__mem *mem = agentws__mem_default();
  agentws_config *c;
  if (out == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  c = agentws__mem_calloc(mem, 1, sizeof(*c));
  if (c == NULL)
    return AGENTWS_ERR_NOMEM;
  c->mem = mem;
  c->alloc = *mem;
  set_defaults(c);
  c->ws_path = agentws__mem_strndup(mem, "/ws", 3);
  c->subprotocols[0] = agentws__mem_strndup(mem, DEFAULT_SUBPROTOCOL,
                                            strlen(DEFAULT_SUBPROTOCOL));
  c->num_subprotocols = 1;
  if (c->ws_path == NULL || c->subprotocols[0] == NULL ||
      agentws__auth_cfg_init(&c->auth, mem) != 0) {
    agentws_config_free(c);
    return AGENTWS_ERR_NOMEM;
  }
  *out = c;
  return 0;
}

void agentws_config_free(agentws_config *c) {
  size_t i;
  if (c == NULL)
    return;
  for (i = 0; i < c->num_origins; i++)
    agentws__mem_free(c->mem, c->origins[i]);
  for (i = 0; i < c->num_subprotocols; i++)
    agentws__mem_free(c->mem, c->subprotocols[i]);
  agentws__mem_free(c->mem, c->ws_path);
  agentws__auth_cfg_free(&c->auth, c->mem);
  agentws__monitor_cfg_free(&c->mon, c->mem);
  agentws__mem_free(c->mem, c);
}

static int copy_list(agentws_config *dst, char **dl, size_t *dn,
                     char *const *sl, size_t sn) {
  size_t i;
  for (i = 0; i < sn; i++) {
    dl[i] = agentws__mem_strndup(dst->mem, sl[i], strlen(sl[i]));
    if (dl[i] == NULL)
      return AGENTWS_ERR_NOMEM;
    *dn = i + 1;
  }
  return 0;
}

const agentws__mem *agentws__config_alloc(const agentws_config *c) {
  return &c->alloc;
}

int agentws__config_copy(agentws_config **out, const agentws_config *src) {
  agentws_config *c;
  int rv;
  if (src == NULL)
    return agentws_config_new(out);
  /* The copy is a manager's: it and all it holds use the host's hook. */
  c = agentws__mem_calloc(&src->alloc, 1, sizeof(*c));
  if (c == NULL)
    return AGENTWS_ERR_NOMEM;
  *c = *src;
  c->mem = &c->alloc;
  c->ws_path = NULL;
  c->num_origins = c->num_subprotocols = 0;
  memset(&c->auth, 0, sizeof(c->auth));
  c->mon.http_token = NULL;
  c->ws_path = agentws__mem_strndup(c->mem, src->ws_path,
                                    strlen(src->ws_path));
  rv = c->ws_path == NULL ? AGENTWS_ERR_NOMEM : 0;
  if (rv == 0)
    rv = copy_list(c, c->origins, &c->num_origins, src->origins,
                   src->num_origins);
  if (rv == 0)
    rv = copy_list(c, c->subprotocols, &c->num_subprotocols,
                   src->subprotocols, src->num_subprotocols);
  if (rv == 0)
    rv = agentws__auth_cfg_copy(&c->auth, &src->auth, c->mem);
  if (rv == 0)
    rv = agentws__monitor_cfg_copy(&c->mon, &src->mon, c->mem);
  if (rv != 0) {
    agentws_config_free(c);
    return rv;
  }
  *out = c;
  return 0;
}

int agentws_config_set_allocator(agentws_config *c, agentws_malloc_cb malloc_cb,
                                 agentws_free_cb free_cb,
                                 agentws_calloc_cb calloc_cb,
                                 agentws_realloc_cb realloc_cb,
                                 void *user_data) {
  int given;
  if (c == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  given = (malloc_cb != NULL) + (free_cb != NULL) + (calloc_cb != NULL) +
          (realloc_cb != NULL);
  if (given == 0) {
    c->alloc = *agentws__mem_default();
    return 0;
  }
  if (given != 4)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  c->alloc.malloc = malloc_cb;
  c->alloc.free = free_cb;
  c->alloc.calloc = calloc_cb;
  c->alloc.realloc = realloc_cb;
  c->alloc.mem_user_data = user_data;
  return 0;
}

static int is_tchar(int ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch));
}

int agentws_config_set_ws_path(agentws_config *c, const char *path) {
  size_t i, n;
  char *p;
  if (c == NULL || path == NULL || path[0] != '/')
    return AGENTWS_ERR_INVALID_ARGUMENT;
  n = strlen(path);
  if (n > 255)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  for (i = 0; i < n; i++)
    if ((unsigned char)path[i] <= 0x20 || (unsigned char)path[i] >= 0x7f ||
        path[i] == '?' || path[i] == '#')
      return AGENTWS_ERR_INVALID_ARGUMENT;
  p = agentws__mem_strndup(c->mem, path, n);
  if (p == NULL)
    return AGENTWS_ERR_NOMEM;
  agentws__mem_free(c->mem, c->ws_path);
  c->ws_path = p;
  c->set_mask |= AGENTWS__OPT_WS_PATH;
  return 0;
}

/* One range-checked setter per numeric option. */
#define RANGE_SETTER(fn, type, field, bit, lo, hi, allow_zero)              \
  int fn(agentws_config *c, type v) {                                        \
    if (c == NULL)                                                           \
      return AGENTWS_ERR_INVALID_ARGUMENT;                                   \
    if (!((allow_zero) && v == 0) && (v < (type)(lo) || v > (type)(hi)))     \
      return AGENTWS_ERR_OUT_OF_RANGE;                                       \
    c->field = v;                                                            \
    c->set_mask |= (bit);                                                    \
    return 0;                                                                \
  }

RANGE_SETTER(agentws_config_set_max_message_size, uint64_t, max_message_size,
             AGENTWS__OPT_MAX_MESSAGE, 1, (uint64_t)1 << 31, 0)
RANGE_SETTER(agentws_config_set_max_queued_bytes, uint64_t, max_queued_bytes,
             AGENTWS__OPT_MAX_QUEUED, 1024, (uint64_t)1 << 32, 0)
RANGE_SETTER(agentws_config_set_max_header_bytes, uint64_t, max_header_bytes,
             AGENTWS__OPT_MAX_HEADER_BYTES, 256, 65536, 0)
RANGE_SETTER(agentws_config_set_max_headers, int, max_headers,
             AGENTWS__OPT_MAX_HEADERS, 4, 256, 0)
RANGE_SETTER(agentws_config_set_handshake_timeout_ms, int64_t,
             handshake_timeout_ms, AGENTWS__OPT_HANDSHAKE_TIMEOUT, 1, 3600000,
             0)
RANGE_SETTER(agentws_config_set_ping_interval_ms, int64_t, ping_interval_ms,
             AGENTWS__OPT_PING_INTERVAL, 10, 3600000, 1)
RANGE_SETTER(agentws_config_set_pong_timeout_ms, int64_t, pong_timeout_ms,
             AGENTWS__OPT_PONG_TIMEOUT, 10, 3600000, 0)
RANGE_SETTER(agentws_config_set_idle_timeout_ms, int64_t, idle_timeout_ms,
             AGENTWS__OPT_IDLE_TIMEOUT, 10, 86400000, 1)
RANGE_SETTER(agentws_config_set_close_timeout_ms, int64_t, close_timeout_ms,
             AGENTWS__OPT_CLOSE_TIMEOUT, 1, 600000, 0)
RANGE_SETTER(agentws_config_set_max_connections, int64_t, max_connections,
             AGENTWS__OPT_MAX_CONNECTIONS, 1, 10000000, 1)
RANGE_SETTER(agentws_config_set_listen_backlog, int, listen_backlog,
             AGENTWS__OPT_BACKLOG, 1, 65535, 0)

RANGE_SETTER(agentws_config_set_max_conns_per_user, int, max_conns_per_user,
             AGENTWS__OPT_CONNS_PER_USER, 1, 100000, 0)
RANGE_SETTER(agentws_config_set_backlog_events, int64_t, backlog_events,
             AGENTWS__OPT_BACKLOG_EVENTS, 0, 10000000, 0)
RANGE_SETTER(agentws_config_set_backlog_bytes, uint64_t, backlog_bytes,
             AGENTWS__OPT_BACKLOG_BYTES, 1, (uint64_t)1 << 34, 1)
RANGE_SETTER(agentws_config_set_backlog_age_ms, int64_t, backlog_age_ms,
             AGENTWS__OPT_BACKLOG_AGE, 1, 86400000, 1)
RANGE_SETTER(agentws_config_set_max_client_message, uint64_t,
             max_client_message, AGENTWS__OPT_MAX_CLIENT_MSG, 64, 16777216,
             0)
RANGE_SETTER(agentws_config_set_client_rate, int, client_rate,
             AGENTWS__OPT_CLIENT_RATE, 1, 100000, 0)
RANGE_SETTER(agentws_config_set_auth_timeout_ms, int64_t, auth_timeout_ms,
             AGENTWS__OPT_AUTH_TIMEOUT, 1, 600000, 0)
RANGE_SETTER(agentws_config_set_socket_send_buffer, uint64_t, socket_sndbuf,
             AGENTWS__OPT_SNDBUF, 4096, 67108864, 1)
RANGE_SETTER(agentws_config_set_max_event_bytes, uint64_t, max_event_bytes,
             AGENTWS__OPT_MAX_EVENT, 256, 16777216, 0)

/* A 0/1 switch. */
#define BOOL_SETTER(fn, field, bit)                                          \
  int fn(agentws_config *c, int enabled) {                                   \
    if (c == NULL)                                                           \
      return AGENTWS_ERR_INVALID_ARGUMENT;                                   \
    if (enabled != 0 && enabled != 1)                                        \
      return AGENTWS_ERR_OUT_OF_RANGE;                                       \
    c->field = enabled;                                                      \
    c->set_mask |= (bit);                                                    \
    return 0;                                                                \
  }

BOOL_SETTER(agentws_config_set_raw_messages, raw_messages, AGENTWS__OPT_RAW)
BOOL_SETTER(agentws_config_set_dev_insecure, dev_insecure,
            AGENTWS__OPT_DEV_INSECURE)

int agentws_config_set_healthz(agentws_config *c, int enabled) {
  if (c == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (enabled != 0 && enabled != 1)
    return AGENTWS_ERR_OUT_OF_RANGE;
  c->healthz = enabled;
  c->set_mask |= AGENTWS__OPT_HEALTHZ;
  return 0;
}

static int list_add(agentws_config *c, char **list, size_t *n,
                    const char *s, size_t len) {
  size_t i;
  for (i = 0; i < *n; i++)
    if (strcmp(list[i], s) == 0)
      return 0; /* already present: adding is idempotent */
  if (*n == AGENTWS__MAX_LIST)
    return AGENTWS_ERR_OUT_OF_RANGE;
  list[*n] = agentws__mem_strndup(c->mem, s, len);
  if (list[*n] == NULL)
    return AGENTWS_ERR_NOMEM;
  (*n)++;
  return 0;
}

int agentws_config_add_allowed_origin(agentws_config *c, const char *origin) {
  size_t i, n;
  int rv;
  if (c == NULL || origin == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  n = strlen(origin);
  if (n == 0 || n > 1024)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  for (i = 0; i < n; i++)
    if ((unsigned char)origin[i] <= 0x20 || (unsigned char)origin[i] >= 0x7f)
      return AGENTWS_ERR_INVALID_ARGUMENT;
  rv = list_add(c, c->origins, &c->num_origins, origin, n);
  if (rv == 0)
    c->set_mask |= AGENTWS__OPT_ORIGINS;
  return rv;
}

int agentws_config_add_subprotocol(agentws_config *c, const char *name) {
  size_t i, n;
  int rv;
  if (c == NULL || name == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  n = strlen(name);
  /* The handshake and the token finder take "bearer." in any case for a
   * token carrier, so such a name could never be selected. */
  if (n == 0 || n > 64 || (n >= 7 && agentws__http_ieq(name, 7, "bearer.")))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  for (i = 0; i < n; i++)
    if (!is_tchar((unsigned char)name[i]))
      return AGENTWS_ERR_INVALID_ARGUMENT;
  rv = list_add(c, c->subprotocols, &c->num_subprotocols, name, n);
  if (rv == 0)
    c->set_mask |= AGENTWS__OPT_SUBPROTOCOLS;
  return rv;
}

/* ------------------------------------------------------------ validation */

int agentws_config_set_validation(agentws_config *c, int policy) {
  if (c == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (policy < AGENTWS_VALIDATION_OFF || policy > AGENTWS_VALIDATION_REPAIR)
    return AGENTWS_ERR_OUT_OF_RANGE;
  c->validation = policy;
  return 0;
}

int agentws_config_set_validation_rule(agentws_config *c, int rule,
                                       int policy) {
  if (c == NULL || rule <= AGENTWS_RULE_SCHEMA || rule > AGENTWS_RULE_RUN_LIMIT)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (policy < AGENTWS_VALIDATION_OFF || policy > AGENTWS_VALIDATION_REPAIR)
    return AGENTWS_ERR_OUT_OF_RANGE;
  c->rule_policy[rule] = policy;
  c->rule_set |= 1u << rule;
  return 0;
}

RANGE_SETTER(agentws_config_set_stall_timeout_ms, int64_t, stall_timeout_ms,
             0, 10, 86400000, 1)
RANGE_SETTER(agentws_config_set_tool_timeout_ms, int64_t, tool_timeout_ms, 0,
             10, 86400000, 1)
RANGE_SETTER(agentws_config_set_max_live_runs, int64_t, max_live_runs, 0, 1,
             10000000, 0)
RANGE_SETTER(agentws_config_set_run_keep_ms, int64_t, run_keep_ms, 0, 0,
             86400000, 1)
