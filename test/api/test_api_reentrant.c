/*
 * API tests of calls made from inside callbacks: closing the connection
 * being reported, closing the manager, freeing it in its closed callback,
 * and pipelined input behind a close. Meant to run under ASan/UBSan and
 * valgrind as well: no crash, no use-after-free, no leaked handle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"
#include "client.h"
#include "harness.h"

#define S(x) (const uint8_t *)(x), (sizeof(x) - 1)

/* What the hooks below did, for the test to check. */
typedef struct rec {
  int rv[8];       /* results of calls made inside callbacks */
  int nrv;
  uint64_t other;  /* another connection's id */
  int ud_rv;       /* conn_get_user_data inside on_close */
  void *ud;
  int marker;
} rec;

static void note(th_server *s, int rv) {
  rec *r = s->test;
  if (r->nrv < 8)
    r->rv[r->nrv++] = rv;
}

/* Answers the close the client got and checks its code. */
static void answer_close(tc_client *c, int want) {
  int code;
  assert_int_equal(tc_read_close(c, &code, NULL, 0, TC_TIMEOUT_MS), 0);
  assert_int_equal(code, want);
  assert_int_equal(tc_send_close(c, code, NULL), 0);
  assert_int_equal(tc_wait_eof(c, TC_TIMEOUT_MS), 0);
  tc_close(c);
}

/* --------------------------------------------- conn_close in on_message */

static int close_in_msg(th_server *s, uint64_t id, int type,
                        const uint8_t *d, size_t n) {
  (void)type;
  (void)d;
  (void)n;
  note(s, agentws_conn_close(s->m, id, 4002, "from cb", 7));
  note(s, agentws_conn_close(s->m, id, 4002, "again", 5));
  note(s, agentws_conn_send(s->m, id, AGENTWS_MSG_TEXT, S("late")));
  return 0;
}

static void test_conn_close_in_on_message(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  rec r;
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(th_start(&s, NULL), 0);
  s.test = &r;
  s.on_msg = close_in_msg;
  th_connect(&s, &c, NULL);
  assert_int_equal(tc_send_frame(&c, TC_OP_TEXT, "x", 1), 0);
  answer_close(&c, 4002);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_int_equal(r.nrv, 3);
  assert_int_equal(r.rv[0], 0);
  assert_int_equal(r.rv[1], AGENTWS_ERR_CLOSING);
  assert_int_equal(r.rv[2], AGENTWS_ERR_CLOSING);
  assert_int_equal(s.close_code, 4002);
  assert_string_equal(s.close_reason, "from cb");
  th_finish(&s);
}

/* Messages pipelined behind the one whose callback closed the connection
 * are not delivered. */
static void test_pipelined_after_close(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  rec r;
  uint8_t buf[256];
  size_t n = 0;
  int i;
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(th_start(&s, NULL), 0);
  s.test = &r;
  s.on_msg = close_in_msg;
  th_connect(&s, &c, NULL);
  for (i = 0; i < 4; i++)
    n += tc_build_frame(buf + n, sizeof(buf) - n, 1, TC_OP_TEXT, "msg", 3);
  assert_int_equal(tc_send_all(&c, buf, n), 0);
  answer_close(&c, 4002);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_int_equal(s.n_msg, 1);
  th_finish(&s);
}

/* The client does not answer: on_close still reports the server's code. */
static void test_conn_close_in_cb_peer_vanishes(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  rec r;
  int code;
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(th_start(&s, NULL), 0);
  s.test = &r;
  s.on_msg = close_in_msg;
  th_connect(&s, &c, NULL);
  assert_int_equal(tc_send_frame(&c, TC_OP_TEXT, "x", 1), 0);
  assert_int_equal(tc_read_close(&c, &code, NULL, 0, TC_TIMEOUT_MS), 0);
  tc_close(&c); /* gone without answering */
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_int_equal(s.close_code, 4002);
  th_finish(&s);
}

/* ------------------------------------------------- conn_close in on_open */

static void close_in_open(th_server *s, uint64_t id) {
  note(s, agentws_conn_send(s->m, id, AGENTWS_MSG_TEXT, S("welcome")));
  note(s, agentws_conn_close(s->m, id, 4003, "not today", 9));
}

static void test_conn_close_in_on_open(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  tc_frame f;
  rec r;
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(th_start(&s, NULL), 0);
  s.test = &r;
  s.on_open = close_in_open;
  th_connect(&s, &c, NULL);
  /* Queued messages leave before the close. */
  assert_int_equal(tc_read_frame(&c, &f, TC_TIMEOUT_MS), 0);
  assert_int_equal(f.opcode, TC_OP_TEXT);
  assert_string_equal((char *)f.data, "welcome");
  tc_frame_free(&f);
  answer_close(&c, 4003);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_int_equal(r.rv[0], 0);
  assert_int_equal(r.rv[1], 0);
  assert_int_equal(s.close_code, 4003);
  th_finish(&s);
}

/* ------------------------------------------------- calls inside on_close */

static void open_set_ud(th_server *s, uint64_t id) {
  rec *r = s->test;
  agentws_conn_set_user_data(s->m, id, &r->marker);
}

static void calls_in_close(th_server *s, uint64_t id, int code,
                           const char *reason, size_t len) {
  rec *r = s->test;
  (void)code;
  (void)reason;
  (void)len;
  note(s, agentws_conn_send(s->m, id, AGENTWS_MSG_TEXT, S("x")));
  note(s, agentws_conn_close(s->m, id, 1000, NULL, 0));
  r->ud = NULL;
  r->ud_rv = agentws_conn_get_user_data(s->m, id, &r->ud);
  if (r->other != 0)
    note(s, agentws_conn_send(s->m, r->other, AGENTWS_MSG_TEXT, S("bye")));
}

static void test_calls_in_on_close(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client a, b;
  tc_frame f;
  rec r;
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(th_start(&s, NULL), 0);
  s.test = &r;
  s.on_open = open_set_ud;
  s.on_close = calls_in_close;
  th_connect(&s, &a, NULL);
  th_connect(&s, &b, NULL);
  r.other = s.open_id;
  tc_close(&a);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  /* The connection being reported takes no more sends or closes. */
  assert_true(r.rv[0] == AGENTWS_ERR_NOT_FOUND ||
              r.rv[0] == AGENTWS_ERR_CLOSING);
  assert_true(r.rv[1] == AGENTWS_ERR_NOT_FOUND ||
              r.rv[1] == AGENTWS_ERR_CLOSING);
  /* Another connection can be used from on_close. */
  assert_int_equal(r.rv[2], 0);
  assert_int_equal(tc_read_frame(&b, &f, TC_TIMEOUT_MS), 0);
  assert_string_equal((char *)f.data, "bye");
  tc_frame_free(&f);
  r.other = 0;
  tc_close(&b);
  TH_RUN_UNTIL(&s, s.n_close == 2);
  th_finish(&s);
}

/*
 * The connection's user data must still be readable in its on_close, the
 * last chance a host has to free what it attached (the header: "After this
 * callback the id is invalid").
 */
static void test_user_data_in_on_close(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client a;
  rec r;
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(th_start(&s, NULL), 0);
  s.test = &r;
  s.on_open = open_set_ud;
  s.on_close = calls_in_close;
  th_connect(&s, &a, NULL);
  tc_close(&a);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  th_finish(&s);
  if (r.ud_rv != 0)
    fail_msg("agentws_conn_get_user_data() inside on_close returned %s",
             agentws_err_name(r.ud_rv));
  assert_ptr_equal(r.ud, &r.marker);
}

/* ------------------------------------------ manager_close in on_message */

static int mgr_close_in_msg(th_server *s, uint64_t id, int type,
                            const uint8_t *d, size_t n) {
  rec *r = s->test;
  (void)type;
  if (n == 8 && memcmp(d, "shutdown", 8) == 0) {
    note(s, th_close(s));
    note(s, agentws_manager_close(s->m, NULL, NULL));
    /* Every WebSocket is closing now. */
    note(s, agentws_conn_send(s->m, id, AGENTWS_MSG_TEXT, S("x")));
    note(s, agentws_conn_send(s->m, r->other, AGENTWS_MSG_TEXT, S("x")));
    note(s, agentws_manager_listen(s->m, NULL, 0, NULL));
    note(s, agentws_manager_post(s->m, (agentws_post_cb)NULL, NULL));
  }
  return 0;
}

static void test_manager_close_in_on_message(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client a, b;
  rec r;
  uint8_t buf[64];
  size_t n;
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(th_start(&s, NULL), 0);
  s.test = &r;
  s.on_msg = mgr_close_in_msg;
  s.closed_free = 1; /* agentws_manager_free() inside the closed callback */
  th_connect(&s, &a, NULL);
  th_connect(&s, &b, NULL);
  r.other = s.open_id;

  /* "shutdown" and a message pipelined behind it. */
  n = tc_build_frame(buf, sizeof(buf), 1, TC_OP_TEXT, "shutdown", 8);
  n += tc_build_frame(buf + n, sizeof(buf) - n, 1, TC_OP_TEXT, "after", 5);
  assert_int_equal(tc_send_all(&a, buf, n), 0);
  answer_close(&a, 1001);
  answer_close(&b, 1001);
  TH_RUN_UNTIL(&s, s.n_closed == 1);
  assert_null(s.m); /* freed in the callback */
  assert_int_equal(s.n_close, 2);
  assert_int_equal(s.n_msg, 1);
  assert_int_equal(r.rv[0], 0);
  assert_int_equal(r.rv[1], AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(r.rv[2], AGENTWS_ERR_CLOSING);
  assert_int_equal(r.rv[3], AGENTWS_ERR_CLOSING);
  assert_int_equal(r.rv[4], AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(r.rv[5], AGENTWS_ERR_INVALID_ARGUMENT);
  th_loop_close(&s);
}

/* --------------------------------- manager_close in on_open and on_close */

static void mgr_close_in_open(th_server *s, uint64_t id) {
  (void)id;
  note(s, th_close(s));
}

static void test_manager_close_in_on_open(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  rec r;
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(th_start(&s, NULL), 0);
  s.test = &r;
  s.on_open = mgr_close_in_open;
  s.closed_free = 1;
  th_connect(&s, &c, NULL);
  answer_close(&c, 1001);
  TH_RUN_UNTIL(&s, s.n_closed == 1);
  assert_int_equal(r.rv[0], 0);
  assert_int_equal(s.n_close, 1);
  th_loop_close(&s);
}

static void mgr_close_in_close(th_server *s, uint64_t id, int code,
                               const char *reason, size_t len) {
  (void)id;
  (void)code;
  (void)reason;
  (void)len;
  if (s->n_close == 0)
    note(s, th_close(s));
}

static void test_manager_close_in_on_close(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client a, b;
  rec r;
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(th_start(&s, NULL), 0);
  s.test = &r;
  s.on_close = mgr_close_in_close;
  s.closed_free = 1;
  th_connect(&s, &a, NULL);
  th_connect(&s, &b, NULL);
  tc_close(&a);
  answer_close(&b, 1001);
  TH_RUN_UNTIL(&s, s.n_closed == 1);
  assert_int_equal(r.nrv, 1);
  assert_int_equal(r.rv[0], 0);
  assert_int_equal(s.n_close, 2);
  th_loop_close(&s);
}

/* ----------------------------------- manager_close in a posted callback */

static void close_from_post(agentws_manager *m, void *ud) {
  th_server *s = ud;
  (void)m;
  note(s, th_close(s));
}

static void test_manager_close_in_post(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  rec r;
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(th_start(&s, NULL), 0);
  s.test = &r;
  s.closed_free = 1;
  th_connect(&s, &c, NULL);
  assert_int_equal(agentws_manager_post(s.m, close_from_post, &s), 0);
  answer_close(&c, 1001);
  TH_RUN_UNTIL(&s, s.n_closed == 1);
  assert_int_equal(r.rv[0], 0);
  th_loop_close(&s);
}

/* ------------------------------- close another connection from a callback */

static int close_other_in_msg(th_server *s, uint64_t id, int type,
                              const uint8_t *d, size_t n) {
  rec *r = s->test;
  (void)id;
  (void)type;
  (void)d;
  (void)n;
  note(s, agentws_conn_close(s->m, r->other, 4004, "by a", 4));
  return 0;
}

static void test_close_other_conn_in_callback(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client a, b;
  rec r;
  uint64_t ida;
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(th_start(&s, NULL), 0);
  s.test = &r;
  th_connect(&s, &a, NULL);
  ida = s.open_id;
  th_connect(&s, &b, NULL);
  r.other = s.open_id;
  s.on_msg = close_other_in_msg;
  assert_int_equal(tc_send_frame(&a, TC_OP_TEXT, "x", 1), 0);
  answer_close(&b, 4004);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_true(s.close_id == r.other);
  assert_int_equal(s.close_code, 4004);
  s.on_msg = NULL;
  s.echo = 1;
  assert_int_equal(tc_echo(&a, TC_OP_TEXT, "a lives", 7), 0);
  assert_true(s.msg_id == ida);
  tc_close(&a);
  TH_RUN_UNTIL(&s, s.n_close == 2);
  th_finish(&s);
}

/* ---------------------------------------------- on_message returns error */

static int failing_msg(th_server *s, uint64_t id, int type, const uint8_t *d,
                       size_t n) {
  (void)s;
  (void)id;
  (void)type;
  (void)d;
  (void)n;
  return -1;
}

static void test_on_message_failure_closes_1011(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  int code;
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  s.on_msg = failing_msg;
  th_connect(&s, &c, NULL);
  assert_int_equal(tc_send_frame(&c, TC_OP_TEXT, "x", 1), 0);
  assert_int_equal(tc_send_frame(&c, TC_OP_TEXT, "y", 1), 0);
  assert_int_equal(tc_read_close(&c, &code, NULL, 0, TC_TIMEOUT_MS), 0);
  assert_int_equal(code, 1011);
  assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
  tc_close(&c);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_int_equal(s.close_code, 1011);
  assert_int_equal(s.n_msg, 1);
  th_finish(&s);
}

/* --------------------------------------- free inside the closed callback */

static void test_free_in_closed_callback(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  s.closed_free = 1;
  assert_int_equal(th_close(&s), 0);
  TH_RUN_UNTIL(&s, s.n_closed == 1);
  assert_null(s.m);
  th_loop_close(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(test_conn_close_in_on_message),
      TH_TEST(test_pipelined_after_close),
      TH_TEST(test_conn_close_in_cb_peer_vanishes),
      TH_TEST(test_conn_close_in_on_open),
      TH_TEST(test_calls_in_on_close),
      TH_TEST(test_user_data_in_on_close),
      TH_TEST(test_manager_close_in_on_message),
      TH_TEST(test_manager_close_in_on_open),
      TH_TEST(test_manager_close_in_on_close),
      TH_TEST(test_manager_close_in_post),
      TH_TEST(test_close_other_conn_in_callback),
      TH_TEST(test_on_message_failure_closes_1011),
      TH_TEST(test_free_in_closed_callback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
