/*
 * API tests of two embedding hazards found by the hygiene tests:
 *  - a close the host calls after keeping its loop busy longer than
 *    close_timeout_ms still sends its close frame (the deadline used to be
 *    stamped with the stale loop time and expired before the frame left);
 *  - a threaded manager survives a peer that resets while the library
 *    writes to it, with SIGPIPE at its default (the library's thread blocks
 *    SIGPIPE; the process's disposition is not changed).
 * Real loopback sockets; every wait is bounded.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"
#include "client.h"
#include "harness.h"

#define BUSY_MS 700  /* the host's busy spell, over CLOSE_MS */
#define CLOSE_MS 500 /* close_timeout_ms */

static agentws_config *raw_cfg(void) {
  agentws_config *cfg = NULL;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_raw_messages(cfg, 1), 0);
  assert_int_equal(agentws_config_set_ping_interval_ms(cfg, 0), 0);
  assert_int_equal(agentws_config_set_close_timeout_ms(cfg, CLOSE_MS), 0);
  return cfg;
}

static void test_close_after_a_busy_host(void **state) {
  static th_server s;
  agentws_config *cfg = raw_cfg();
  tc_client a, b;
  char reason[64];
  int code = 0;
  (void)state;
  assert_int_equal(th_start(&s, cfg), 0);
  agentws_config_free(cfg);
  /* agentws_conn_close() after the loop sat still for BUSY_MS. */
  th_connect(&s, &a, NULL);
  TH_RUN_UNTIL(&s, s.n_open == 1);
  tc_sleep_ms(BUSY_MS);
  assert_int_equal(agentws_conn_close(s.m, s.open_id, 4000, "bye", 3), 0);
  assert_int_equal(tc_read_close(&a, &code, reason, sizeof(reason),
                                 TC_TIMEOUT_MS),
                   0);
  assert_int_equal(code, 4000);
  assert_string_equal(reason, "bye");
  assert_int_equal(tc_send_close(&a, 4000, ""), 0);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  tc_close(&a);
  /* agentws_manager_close() the same way: every client gets its 1001. */
  th_connect(&s, &b, NULL);
  TH_RUN_UNTIL(&s, s.n_open == 2);
  tc_sleep_ms(BUSY_MS);
  assert_int_equal(th_close(&s), 0);
  assert_int_equal(tc_read_close(&b, &code, reason, sizeof(reason),
                                 TC_TIMEOUT_MS),
                   0);
  assert_int_equal(code, 1001);
  assert_int_equal(tc_send_close(&b, 1001, ""), 0);
  tc_close(&b);
  th_finish(&s);
}

static tc_client g_peer;
static uint8_t g_big[1 << 20];
static atomic_int g_sent;

/* On the library's thread: the peer goes away, then 1 MiB goes to it; the
 * peer's kernel answers the first bytes with a reset, and the next write
 * fails with EPIPE, which raises SIGPIPE. */
static int vanish(th_server *s, uint64_t id, int type, const uint8_t *data,
                  size_t len) {
  (void)type, (void)data, (void)len;
  close(g_peer.fd);
  g_peer.fd = -1;
  atomic_store(&g_sent, agentws_conn_send(s->m, id, AGENTWS_MSG_BINARY,
                                          g_big, sizeof(g_big)) +
                            1);
  return 0;
}

static void test_threaded_survives_sigpipe(void **state) {
  static th_server s;
  struct sigaction dfl, old;
  agentws_config *cfg = raw_cfg();
  agentws_callbacks *cbs = th_callbacks();
  int round;
  (void)state;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  assert_int_equal(sigaction(SIGPIPE, &dfl, &old), 0);
  memset(&s, 0, sizeof(s));
  s.threaded = 1;
  th_track(&s);
  assert_non_null(cbs);
  assert_int_equal(agentws_manager_new_threaded(&s.m, cfg, cbs, &s), 0);
  agentws_config_free(cfg);
  agentws_callbacks_free(cbs);
  assert_int_equal(agentws_manager_listen(s.m, "127.0.0.1", 0, &s.port), 0);
  s.on_msg = vanish;
  assert_int_equal(agentws_manager_start(s.m), 0);
  /* A few rounds: the write that meets the reset raises SIGPIPE on the
   * library's thread; the process must live on. */
  for (round = 0; round < 3; round++) {
    int closes = s.n_close;
    atomic_store(&g_sent, 0);
    assert_int_equal(tc_connect(&g_peer, "127.0.0.1", s.port, NULL, NULL),
                     0);
    assert_int_equal(tc_upgrade(&g_peer, "/ws", NULL), 0);
    assert_int_equal(tc_send_frame(&g_peer, TC_OP_TEXT, "x", 1), 0);
    TH_WAIT_UNTIL(atomic_load(&g_sent) != 0 && s.n_close == closes + 1);
    tc_close(&g_peer);
  }
  assert_int_equal(agentws_manager_stop(s.m), 0);
  agentws_manager_free(s.m);
  s.m = NULL;
  /* The process's disposition is the test's, not changed by the library. */
  assert_int_equal(sigaction(SIGPIPE, &old, &dfl), 0);
  assert_true(dfl.sa_handler == SIG_DFL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(test_close_after_a_busy_host),
      TH_TEST(test_threaded_survives_sigpipe),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
