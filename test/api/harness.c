/* See harness.h. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void check_args(th_server *s, agentws_manager *m, void *ud) {
  if (ud != s)
    s->bad_user_data++;
  if (s->m != NULL && m != s->m)
    s->bad_manager++;
  if (s->in_api)
    s->cb_in_api++;
}

static void cb_open(agentws_manager *m, uint64_t id, void *ud) {
  th_server *s = ud;
  check_args(s, m, ud);
  s->open_id = id;
  if (s->on_open != NULL)
    s->on_open(s, id);
  s->n_open++;
}

static int cb_message(agentws_manager *m, uint64_t id, int type,
                      const uint8_t *data, size_t len, void *ud) {
  th_server *s = ud;
  int rv = 0;
  check_args(s, m, ud);
  s->msg_id = id;
  s->msg_type = type;
  s->msg_len = len;
  if (s->echo)
    s->echo_rv = agentws_conn_send(m, id, type, data, len);
  if (s->on_msg != NULL)
    rv = s->on_msg(s, id, type, data, len);
  s->n_msg++;
  return rv;
}

static void cb_close(agentws_manager *m, uint64_t id, int code,
                     const char *reason, size_t reason_len, void *ud) {
  th_server *s = ud;
  size_t n = reason_len < sizeof(s->close_reason) - 1
                 ? reason_len
                 : sizeof(s->close_reason) - 1;
  check_args(s, m, ud);
  s->close_id = id;
  s->close_code = code;
  memcpy(s->close_reason, reason, n);
  s->close_reason[n] = '\0';
  s->close_reason_len = reason_len;
  if (s->on_close != NULL)
    s->on_close(s, id, code, reason, reason_len);
  s->n_close++;
}

agentws_callbacks *th_callbacks(void) {
  agentws_callbacks *cbs = NULL;
  if (agentws_callbacks_new(&cbs) != 0)
    return NULL;
  agentws_callbacks_set_on_open(cbs, cb_open);
  agentws_callbacks_set_on_message(cbs, cb_message);
  agentws_callbacks_set_on_close(cbs, cb_close);
  return cbs;
}

static th_server *g_current; /* cleaned up by th_teardown() */

void th_track(th_server *s) { g_current = s; }

int th_teardown(void **state) {
  th_server *s = g_current;
  uint64_t deadline = tc_now_ms() + 6000; /* > default close_timeout */
  (void)state;
  g_current = NULL;
  if (s == NULL)
    return 0;
  /* The test's hook state may be gone with its stack frame. */
  s->on_open = NULL;
  s->on_msg = NULL;
  s->on_close = NULL;
  s->on_closed = NULL;
  s->test = NULL;
  if (s->threaded) {
    agentws_manager_free(s->m); /* stops and joins first */
    s->m = NULL;
    return 0;
  }
  if (s->loop_closed)
    return 0;
  if (s->m != NULL) {
    s->closed_free = 0;
    agentws_manager_free(s->m); /* closes, released once closed */
    s->m = NULL;
  }
  while (uv_loop_alive(&s->loop) && tc_now_ms() < deadline) {
    uv_run(&s->loop, UV_RUN_NOWAIT);
    tc_sleep_ms(1);
  }
  if (uv_loop_close(&s->loop) != 0) {
    fprintf(stderr, "teardown: the loop still has handles\n");
    uv_print_all_handles(&s->loop, stderr);
  }
  return 0;
}

int th_start(th_server *s, const agentws_config *cfg) {
  return th_start_with(s, cfg, NULL);
}

int th_start_with(th_server *s, const agentws_config *cfg,
                  void (*more)(agentws_callbacks *cbs)) {
  agentws_callbacks *cbs;
  agentws_config *raw = NULL;
  int rv;
  memset(s, 0, sizeof(*s));
  rv = uv_loop_init(&s->loop);
  if (rv != 0)
    return rv;
  th_track(s);
  cbs = th_callbacks();
  if (cbs == NULL)
    return AGENTWS_ERR_NOMEM;
  if (more != NULL)
    more(cbs);
  /* These tests exercise the transport: raw messages, no agent protocol. */
  if (cfg == NULL) {
    if (agentws_config_new(&raw) != 0 ||
        agentws_config_set_raw_messages(raw, 1) != 0)
      return AGENTWS_ERR_NOMEM;
    cfg = raw;
  }
  rv = agentws_manager_new(&s->m, &s->loop, cfg, cbs, s);
  agentws_config_free(raw);
  agentws_callbacks_free(cbs); /* copied by the manager */
  if (rv != 0)
    return rv;
  return agentws_manager_listen(s->m, "127.0.0.1", 0, &s->port);
}

void th_pump(void *server) {
  th_server *s = server;
  uv_run(&s->loop, UV_RUN_NOWAIT);
}

static void closed_cb(agentws_manager *m, void *ud) {
  th_server *s = ud;
  if (m != s->m)
    s->bad_manager++;
  if (s->on_closed != NULL)
    s->on_closed(s);
  if (s->closed_free) {
    agentws_manager_free(m);
    s->m = NULL;
  }
  s->n_closed++;
}

int th_close(th_server *s) {
  s->closing = 1;
  return agentws_manager_close(s->m, closed_cb, s);
}

void th_loop_close(th_server *s) {
  int rv = uv_loop_close(&s->loop);
  s->loop_closed = rv == 0;
  if (rv != 0) {
    uv_print_all_handles(&s->loop, stderr);
    fail_msg("uv_loop_close: %s", uv_err_name(rv));
  }
}

void th_finish(th_server *s) {
  if (!s->closing) {
    assert_non_null(s->m);
    assert_int_equal(th_close(s), 0);
  }
  TH_RUN_UNTIL(s, s->n_closed == 1);
  agentws_manager_free(s->m);
  s->m = NULL;
  th_loop_close(s);
}

void th_connect(th_server *s, tc_client *c, const char *protocols) {
  int r = tc_connect(c, "127.0.0.1", s->port, th_pump, s);
  if (r != 0)
    fail_msg("connect to 127.0.0.1:%d failed", s->port);
  r = tc_upgrade(c, "/ws", protocols);
  if (r != 0)
    fail_msg("upgrade failed (%d): %s", r, c->head);
}
