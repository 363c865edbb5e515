/*
 * agentws-demo: the example server (DESIGN.md §12). Runs libagentws on its
 * own libuv loop, the way a host C server embeds it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agentws.h"

typedef struct demo {
  uv_loop_t loop;         /* the host's loop */
  agentws_manager *mgr;   /* the library */
  uv_signal_t sigint;     /* graceful stop */
  uv_signal_t sigterm;
  int echo;               /* --mode echo */
} demo;

static int on_message(agentws_manager *m, uint64_t id, int type,
                      const uint8_t *data, size_t len, void *ud) {
  demo *d = ud;
  int rv;
  if (!d->echo)
    return 0;
  rv = agentws_conn_send(m, id, type, data, len);
  /* A full queue already closes the connection with 1013. */
  return rv == AGENTWS_ERR_QUEUE_FULL || rv == AGENTWS_ERR_CLOSING ? 0 : rv;
}

static void on_closed(agentws_manager *m, void *ud) {
  demo *d = ud;
  (void)m;
  uv_close((uv_handle_t *)&d->sigint, NULL);
  uv_close((uv_handle_t *)&d->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
  demo *d = h->data;
  (void)signum;
  uv_signal_stop(&d->sigint);
  uv_signal_stop(&d->sigterm);
  fprintf(stderr, "agentws-demo: shutting down\n");
  agentws_manager_close(d->mgr, on_closed, d);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: agentws-demo [--host 127.0.0.1] [--port 8080] "
          "[--mode echo|agent]\n"
          "  [--max-message-size N] [--max-queued-bytes N] "
          "[--max-header-bytes N]\n"
          "  [--handshake-timeout-ms N] [--ping-interval-ms N] "
          "[--pong-timeout-ms N]\n"
          "  [--idle-timeout-ms N] [--close-timeout-ms N] [--max-conns N]\n"
          "  [--origin ORIGIN]... [--subprotocol NAME]... [--ws-path P]\n");
}

static int parse_i64(const char *s, int64_t *out) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || end == s)
    return -1;
  *out = v;
  return 0;
}

enum {
  OPT_HOST = 256, OPT_PORT, OPT_MODE, OPT_MAX_MSG, OPT_MAX_QUEUED,
  OPT_MAX_HDR, OPT_HS_TIMEOUT, OPT_PING, OPT_PONG, OPT_IDLE, OPT_CLOSE,
  OPT_MAX_CONNS, OPT_ORIGIN, OPT_SUBPROTO, OPT_WS_PATH, OPT_HELP
};

static const struct option options[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"mode", required_argument, NULL, OPT_MODE},
    {"max-message-size", required_argument, NULL, OPT_MAX_MSG},
    {"max-queued-bytes", required_argument, NULL, OPT_MAX_QUEUED},
    {"max-header-bytes", required_argument, NULL, OPT_MAX_HDR},
    {"handshake-timeout-ms", required_argument, NULL, OPT_HS_TIMEOUT},
    {"ping-interval-ms", required_argument, NULL, OPT_PING},
    {"pong-timeout-ms", required_argument, NULL, OPT_PONG},
    {"idle-timeout-ms", required_argument, NULL, OPT_IDLE},
    {"close-timeout-ms", required_argument, NULL, OPT_CLOSE},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"origin", required_argument, NULL, OPT_ORIGIN},
    {"subprotocol", required_argument, NULL, OPT_SUBPROTO},
    {"ws-path", required_argument, NULL, OPT_WS_PATH},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0}};

/* Applies one option to |cfg|; returns 0 or prints why not. */
static int apply(agentws_config *cfg, int opt, const char *arg) {
  int64_t v = 0;
  int rv;
  if (opt != OPT_ORIGIN && opt != OPT_SUBPROTO && opt != OPT_WS_PATH &&
      parse_i64(arg, &v) != 0) {
    fprintf(stderr, "agentws-demo: not a number: %s\n", arg);
    return -1;
  }
  switch (opt) {
  case OPT_MAX_MSG: rv = agentws_config_set_max_message_size(cfg, (uint64_t)v); break;
  case OPT_MAX_QUEUED: rv = agentws_config_set_max_queued_bytes(cfg, (uint64_t)v); break;
  case OPT_MAX_HDR: rv = agentws_config_set_max_header_bytes(cfg, (uint64_t)v); break;
  case OPT_HS_TIMEOUT: rv = agentws_config_set_handshake_timeout_ms(cfg, v); break;
  case OPT_PING: rv = agentws_config_set_ping_interval_ms(cfg, v); break;
  case OPT_PONG: rv = agentws_config_set_pong_timeout_ms(cfg, v); break;
  case OPT_IDLE: rv = agentws_config_set_idle_timeout_ms(cfg, v); break;
  case OPT_CLOSE: rv = agentws_config_set_close_timeout_ms(cfg, v); break;
  case OPT_MAX_CONNS: rv = agentws_config_set_max_connections(cfg, v); break;
  case OPT_ORIGIN: rv = agentws_config_add_allowed_origin(cfg, arg); break;
  case OPT_SUBPROTO: rv = agentws_config_add_subprotocol(cfg, arg); break;
  default: rv = agentws_config_set_ws_path(cfg, arg); break;
  }
  if (rv != 0)
    fprintf(stderr, "agentws-demo: bad value '%s': %s\n", arg,
            agentws_strerror(rv));
  return rv;
}

int main(int argc, char **argv) {
  static demo d;
  const char *host = "127.0.0.1";
  int64_t port = 8080;
  agentws_config *cfg = NULL;
  agentws_callbacks *cbs = NULL;
  int opt, rv, bound = 0, status = 1;
  d.echo = 1;
  if (agentws_config_new(&cfg) != 0 || agentws_callbacks_new(&cbs) != 0)
    return 1;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case OPT_HOST: host = optarg; break;
    case OPT_PORT:
      if (parse_i64(optarg, &port) != 0 || port < 0 || port > 65535) {
        fprintf(stderr, "agentws-demo: bad port: %s\n", optarg);
        goto out;
      }
      break;
    case OPT_MODE:
      if (strcmp(optarg, "echo") == 0) {
        d.echo = 1;
      } else {
        fprintf(stderr, "agentws-demo: mode '%s' is not available in this "
                        "version (only 'echo')\n", optarg);
        goto out;
      }
      break;
    case OPT_HELP: usage(stdout); status = 0; goto out;
    case '?': usage(stderr); status = 2; goto out;
    default:
      if (apply(cfg, opt, optarg) != 0) {
        status = 2;
        goto out;
      }
    }
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&d.loop);
  agentws_callbacks_set_on_message(cbs, on_message);
  rv = agentws_manager_new(&d.mgr, &d.loop, cfg, cbs, &d);
  if (rv == 0)
    rv = agentws_manager_listen(d.mgr, host, (int)port, &bound);
  if (rv != 0) {
    fprintf(stderr, "agentws-demo: cannot listen on %s:%d: %s\n", host,
            (int)port, agentws_strerror(rv));
    if (d.mgr != NULL)
      agentws_manager_free(d.mgr);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    uv_loop_close(&d.loop);
    goto out;
  }
  uv_signal_init(&d.loop, &d.sigint);
  uv_signal_init(&d.loop, &d.sigterm);
  d.sigint.data = d.sigterm.data = &d;
  uv_signal_start(&d.sigint, on_signal, SIGINT);
  uv_signal_start(&d.sigterm, on_signal, SIGTERM);
  printf("listening on %s:%d\n", host, bound);
  fflush(stdout);
  uv_run(&d.loop, UV_RUN_DEFAULT);
  agentws_manager_free(d.mgr);
  rv = uv_loop_close(&d.loop);
  if (rv != 0)
    fprintf(stderr, "agentws-demo: loop not empty: %s\n", uv_strerror(rv));
  status = rv == 0 ? 0 : 1;
out:
  agentws_callbacks_free(cbs);
  agentws_config_free(cfg);
  return status;
}
