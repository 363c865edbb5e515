/*
 * API tests, host-loop mode: a manager on the test's own uv loop, real
 * sockets on 127.0.0.1, linked against the shared library (so a missing
 * export fails the link). Covers callbacks and their ids/user_data, echo
 * from inside on_message, per-connection data, subprotocols, close codes,
 * send errors, graceful shutdown and uv_loop_close() afterwards.
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

/* ---------------------------------------------------- echo and callbacks */

typedef struct echo_state {
  int marker;           /* its address is the connection's user data */
  int set_rv;           /* conn_set_user_data in on_open */
  int get_open_rv;      /* conn_get_user_data in on_open */
  void *get_open;
  int proto_rv;         /* conn_get_subprotocol in on_open */
  char proto[64];
  int get_msg_rv;       /* conn_get_user_data in on_message */
  void *get_msg;
  uint64_t nconns_msg;  /* manager_get_num_connections in on_message */
} echo_state;

static void echo_on_open(th_server *s, uint64_t id) {
  echo_state *e = s->test;
  const char *p = NULL;
  e->get_open_rv = agentws_conn_get_user_data(s->m, id, &e->get_open);
  e->set_rv = agentws_conn_set_user_data(s->m, id, &e->marker);
  e->proto_rv = agentws_conn_get_subprotocol(s->m, id, &p);
  if (p != NULL)
    strncpy(e->proto, p, sizeof(e->proto) - 1);
}

static int echo_on_msg(th_server *s, uint64_t id, int type,
                       const uint8_t *data, size_t len) {
  echo_state *e = s->test;
  (void)type;
  (void)data;
  (void)len;
  e->get_msg = NULL;
  e->get_msg_rv = agentws_conn_get_user_data(s->m, id, &e->get_msg);
  e->nconns_msg = agentws_manager_get_num_connections(s->m);
  return 0;
}

static void test_echo_and_callbacks(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  echo_state e;
  uint8_t *big;
  size_t i;
  int code;
  char reason[128];
  (void)state;

  memset(&e, 0, sizeof(e));
  e.get_open = &e; /* must be overwritten with NULL */
  assert_int_equal(th_start(&s, NULL), 0);
  assert_true(s.port > 0 && s.port <= 65535);
  s.echo = 1;
  s.test = &e;
  s.on_open = echo_on_open;
  s.on_msg = echo_on_msg;
  assert_ptr_equal(agentws_manager_get_user_data(s.m), &s);
  assert_int_equal(agentws_manager_get_num_connections(s.m), 0);

  th_connect(&s, &c, "agentws.v1");
  assert_int_equal(s.n_open, 1);
  assert_true(s.open_id != 0);
  assert_string_equal(c.protocol, "agentws.v1");
  assert_int_equal(e.get_open_rv, 0);
  assert_null(e.get_open);
  assert_int_equal(e.set_rv, 0);
  assert_int_equal(e.proto_rv, 0);
  assert_string_equal(e.proto, "agentws.v1");
  assert_int_equal(agentws_manager_get_num_connections(s.m), 1);

  /* Text, binary, empty, 16-bit and 64-bit lengths. */
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "hello", 5), 0);
  assert_int_equal(s.n_msg, 1);
  assert_true(s.msg_id == s.open_id);
  assert_int_equal(s.msg_type, AGENTWS_MSG_TEXT);
  assert_int_equal(s.msg_len, 5);
  assert_int_equal(s.echo_rv, 0);
  assert_int_equal(e.get_msg_rv, 0);
  assert_ptr_equal(e.get_msg, &e.marker);
  assert_int_equal(e.nconns_msg, 1);

  assert_int_equal(tc_echo(&c, TC_OP_BINARY, "\x00\xff\x01", 3), 0);
  assert_int_equal(s.msg_type, AGENTWS_MSG_BINARY);
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "", 0), 0);
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "\xc3\xa9\xe2\x82\xac", 5), 0);
  big = malloc(100000);
  assert_non_null(big);
  for (i = 0; i < 100000; i++)
    big[i] = (uint8_t)(i * 7);
  assert_int_equal(tc_echo(&c, TC_OP_BINARY, big, 300), 0);
  assert_int_equal(tc_echo(&c, TC_OP_BINARY, big, 65535), 0);
  assert_int_equal(tc_echo(&c, TC_OP_BINARY, big, 100000), 0);
  free(big);
  assert_int_equal(s.n_msg, 7);
  assert_int_equal(s.echo_rv, 0);

  /* The client closes: the server answers with the same code and drops
   * the TCP connection; on_close reports the client's code and reason. */
  assert_int_equal(tc_send_close(&c, 1000, "done"), 0);
  assert_int_equal(tc_read_close(&c, &code, reason, sizeof(reason),
                                 TC_TIMEOUT_MS),
                   0);
  assert_int_equal(code, 1000);
  assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_true(s.close_id == s.open_id);
  assert_int_equal(s.close_code, 1000);
  assert_string_equal(s.close_reason, "done");
  assert_int_equal(s.close_reason_len, 4);
  tc_close(&c);

  /* The id is gone now. */
  assert_int_equal(agentws_conn_send(s.m, s.open_id, AGENTWS_MSG_TEXT,
                                     S("x")),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_close(s.m, s.open_id, 1000, NULL, 0),
                   AGENTWS_ERR_NOT_FOUND);
  TH_RUN_UNTIL(&s, agentws_manager_get_num_connections(s.m) == 0);

  assert_int_equal(s.bad_user_data, 0);
  assert_int_equal(s.bad_manager, 0);
  th_finish(&s);
  assert_int_equal(s.n_open, 1);
  assert_int_equal(s.n_close, 1);
}

/* Two clients get distinct ids; each is echoed only its own messages. */
static void test_two_clients(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client a, b;
  uint64_t ida, idb;
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  s.echo = 1;
  th_connect(&s, &a, NULL);
  ida = s.open_id;
  th_connect(&s, &b, NULL);
  idb = s.open_id;
  assert_true(ida != 0 && idb != 0 && ida != idb);
  assert_int_equal(tc_echo(&b, TC_OP_TEXT, "to b", 4), 0);
  assert_true(s.msg_id == idb);
  assert_int_equal(tc_echo(&a, TC_OP_TEXT, "to a", 4), 0);
  assert_true(s.msg_id == ida);

  /* A server-initiated send from outside any callback. */
  assert_int_equal(agentws_conn_send(s.m, ida, AGENTWS_MSG_TEXT, S("push")),
                   0);
  {
    tc_frame f;
    assert_int_equal(tc_read_frame(&a, &f, TC_TIMEOUT_MS), 0);
    assert_int_equal(f.opcode, TC_OP_TEXT);
    assert_string_equal((char *)f.data, "push");
    tc_frame_free(&f);
  }
  tc_close(&a); /* no close frame: reported as 1006 */
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_true(s.close_id == ida);
  assert_int_equal(s.close_code, AGENTWS_CLOSE_ABNORMAL);
  assert_int_equal(tc_echo(&b, TC_OP_TEXT, "still", 5), 0);
  tc_close(&b);
  TH_RUN_UNTIL(&s, s.n_close == 2);
  th_finish(&s);
}

/* ------------------------------------------------------ server close 4001 */

static void test_conn_close_with_code(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  int code;
  char reason[128];
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  th_connect(&s, &c, NULL);

  assert_int_equal(agentws_conn_close(s.m, s.open_id, 4001, "bye", 3), 0);
  assert_int_equal(s.n_close, 0); /* never inside the call */
  assert_int_equal(agentws_conn_close(s.m, s.open_id, 4001, "bye", 3),
                   AGENTWS_ERR_CLOSING);
  assert_int_equal(agentws_conn_send(s.m, s.open_id, AGENTWS_MSG_TEXT,
                                     S("late")),
                   AGENTWS_ERR_CLOSING);

  assert_int_equal(tc_read_close(&c, &code, reason, sizeof(reason),
                                 TC_TIMEOUT_MS),
                   0);
  assert_int_equal(code, 4001);
  assert_string_equal(reason, "bye");
  assert_int_equal(s.n_close, 0); /* waits for the client's answer */
  assert_int_equal(tc_send_close(&c, 4001, ""), 0);
  assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_int_equal(s.close_code, 4001);
  assert_string_equal(s.close_reason, "bye");
  tc_close(&c);
  th_finish(&s);
}

/* The longest reason (123 bytes) goes out whole; the edge codes pass. */
static void test_conn_close_limits(void **state) {
  static const int ok_codes[] = {1000, 1001, 1003, 1007, 1008, 1009,
                                 1010, 1011, 1013, 3000, 4999};
  static th_server s; /* th_teardown() may use it after a failure */
  char r123[124];
  size_t i;
  int r;
  (void)state;
  memset(r123, 'r', 123);
  r123[123] = '\0';
  assert_int_equal(th_start(&s, NULL), 0);
  for (i = 0; i < sizeof(ok_codes) / sizeof(ok_codes[0]); i++) {
    tc_client c;
    int code;
    char reason[200];
    th_connect(&s, &c, NULL);
    assert_int_equal(agentws_conn_close(s.m, s.open_id, ok_codes[i], r123,
                                        i == 0 ? 123 : i),
                     0);
    r = tc_read_close(&c, &code, reason, sizeof(reason), TC_TIMEOUT_MS);
    if (r != 0)
      fail_msg("close %d: client read %d", ok_codes[i], r);
    assert_int_equal(code, ok_codes[i]);
    assert_int_equal(strlen(reason), i == 0 ? 123 : i);
    /* Answer with 1000: echoing 1012..1014 is test_peer_close_1012_1014. */
    assert_int_equal(tc_send_close(&c, 1000, NULL), 0);
    r = tc_wait_eof(&c, TC_TIMEOUT_MS);
    if (r != 0)
      fail_msg("close %d: no EOF after the answer (%d)", ok_codes[i], r);
    TH_RUN_UNTIL(&s, s.n_close == (int)i + 1);
    assert_int_equal(s.close_code, ok_codes[i]);
    tc_close(&c);
  }
  th_finish(&s);
}

/*
 * 1012 (service restart), 1013 (try again later) and 1014 (bad gateway) are
 * IANA-registered codes a peer may send; the library itself sends 1013 for
 * a slow consumer, and peers usually echo the code they got. A close frame
 * carrying one of them must end the close handshake like any other:
 *  - server closes with 1013, client echoes 1013: TCP must end at once, not
 *    after close_timeout;
 *  - client closes with 1012/1013/1014: on_close must report that code, and
 *    the server's answer must not be 1002.
 */
static void test_peer_close_1012_1014(void **state) {
  static const int peer_codes[] = {1012, 1013, 1014};
  static th_server s; /* th_teardown() may use it after a failure */
  agentws_config *cfg;
  tc_client c;
  int code, r;
  size_t i;
  uint64_t t0;
  (void)state;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_raw_messages(cfg, 1), 0);
  assert_int_equal(agentws_config_set_close_timeout_ms(cfg, 3000), 0);
  assert_int_equal(th_start(&s, cfg), 0);
  agentws_config_free(cfg);

  th_connect(&s, &c, NULL);
  assert_int_equal(agentws_conn_close(s.m, s.open_id, 1013, "later", 5), 0);
  assert_int_equal(tc_read_close(&c, &code, NULL, 0, TC_TIMEOUT_MS), 0);
  assert_int_equal(code, 1013);
  t0 = tc_now_ms();
  assert_int_equal(tc_send_close(&c, 1013, NULL), 0);
  assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
  tc_close(&c);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_int_equal(s.close_code, 1013);
  if (tc_now_ms() - t0 >= 1000)
    fail_msg("the echoed 1013 did not end the close handshake: the server "
             "waited %llu ms (close_timeout)",
             (unsigned long long)(tc_now_ms() - t0));

  for (i = 0; i < sizeof(peer_codes) / sizeof(peer_codes[0]); i++) {
    th_connect(&s, &c, NULL);
    assert_int_equal(tc_send_close(&c, peer_codes[i], "restart"), 0);
    r = tc_read_close(&c, &code, NULL, 0, TC_TIMEOUT_MS);
    assert_int_equal(r, 0);
    assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
    tc_close(&c);
    TH_RUN_UNTIL(&s, s.n_close == (int)i + 2);
    if (code == 1002 || s.close_code != peer_codes[i])
      fail_msg("client close %d: server answered %d, on_close reported %d",
               peer_codes[i], code, s.close_code);
  }
  th_finish(&s);
}

static void test_conn_close_errors(void **state) {
  static const int bad_codes[] = {1005, 1006, 999,  5000, 0,    -1,   1,
                                  1002, 1004, 1012, 1014, 1015, 1016, 2999,
                                  5001, 65535, 65536 + 1000};
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  char r124[125];
  size_t i;
  (void)state;
  memset(r124, 'r', sizeof(r124));
  assert_int_equal(th_start(&s, NULL), 0);
  th_connect(&s, &c, NULL);

  for (i = 0; i < sizeof(bad_codes) / sizeof(bad_codes[0]); i++) {
    int rv = agentws_conn_close(s.m, s.open_id, bad_codes[i], NULL, 0);
    if (rv != AGENTWS_ERR_INVALID_CLOSE_CODE)
      fail_msg("close code %d: got %s", bad_codes[i], agentws_err_name(rv));
  }
  assert_int_equal(agentws_conn_close(s.m, s.open_id + 1000, 1000, NULL, 0),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_close(s.m, 0, 1000, NULL, 0),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_close(s.m, s.open_id, 1000, r124, 124),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_conn_close(s.m, s.open_id, 1000, NULL, 3),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_conn_close(s.m, s.open_id, 1000, "\xff\xfe", 2),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_conn_close(s.m, s.open_id, 1000, "\xc3", 1),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_conn_close(NULL, s.open_id, 1000, NULL, 0),
                   AGENTWS_ERR_INVALID_ARGUMENT);

  /* Nothing above touched the connection. */
  s.echo = 1;
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "alive", 5), 0);
  assert_int_equal(s.n_close, 0);
  tc_close(&c);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  th_finish(&s);
}

/* ------------------------------------------------------------ send errors */

static void test_send_errors(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  tc_frame f;
  uint64_t id;
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  th_connect(&s, &c, NULL);
  id = s.open_id;

  assert_int_equal(agentws_conn_send(s.m, id + 1, AGENTWS_MSG_TEXT, S("x")),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_send(s.m, 0, AGENTWS_MSG_TEXT, S("x")),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_send(s.m, UINT64_MAX, AGENTWS_MSG_BINARY,
                                     S("x")),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_send(s.m, id, AGENTWS_MSG_TEXT, S("\xff")),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_conn_send(s.m, id, AGENTWS_MSG_TEXT, S("ab\xc3")),
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_conn_send(s.m, id, AGENTWS_MSG_TEXT,
                                     S("\xed\xa0\x80")), /* surrogate */
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_conn_send(s.m, id, AGENTWS_MSG_TEXT,
                                     S("\xc0\xaf")), /* overlong */
                   AGENTWS_ERR_INVALID_UTF8);
  assert_int_equal(agentws_conn_send(s.m, id, 0, S("x")),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_conn_send(s.m, id, 3, S("x")),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_conn_send(s.m, id, AGENTWS_MSG_BINARY, NULL, 4),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_conn_send(NULL, id, AGENTWS_MSG_TEXT, S("x")),
                   AGENTWS_ERR_INVALID_ARGUMENT);

  /* The same bytes are fine as binary, and an empty message is fine. */
  assert_int_equal(agentws_conn_send(s.m, id, AGENTWS_MSG_BINARY, S("\xff")),
                   0);
  assert_int_equal(agentws_conn_send(s.m, id, AGENTWS_MSG_TEXT, NULL, 0), 0);
  assert_int_equal(tc_read_frame(&c, &f, TC_TIMEOUT_MS), 0);
  assert_int_equal(f.opcode, TC_OP_BINARY);
  assert_int_equal(f.len, 1);
  assert_int_equal(f.data[0], 0xff);
  tc_frame_free(&f);
  assert_int_equal(tc_read_frame(&c, &f, TC_TIMEOUT_MS), 0);
  assert_int_equal(f.opcode, TC_OP_TEXT);
  assert_int_equal(f.len, 0);
  tc_frame_free(&f);

  /* Nothing invalid reached the wire: the next frame is the close. */
  assert_int_equal(agentws_conn_close(s.m, id, 1000, NULL, 0), 0);
  {
    int code;
    assert_int_equal(tc_read_close(&c, &code, NULL, 0, TC_TIMEOUT_MS), 0);
    assert_int_equal(code, 1000);
  }
  tc_close(&c);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  th_finish(&s);
}

/* ----------------------------------------------------------- subprotocol */

static void test_subprotocols(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  agentws_config *cfg;
  const char *p = NULL;
  (void)state;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_raw_messages(cfg, 1), 0);
  assert_int_equal(agentws_config_add_subprotocol(cfg, "chat"), 0);
  assert_int_equal(th_start(&s, cfg), 0);
  agentws_config_free(cfg); /* the manager has its own copy */

  th_connect(&s, &c, NULL);
  assert_string_equal(c.protocol, "");
  assert_int_equal(agentws_conn_get_subprotocol(s.m, s.open_id, &p), 0);
  assert_non_null(p);
  assert_string_equal(p, "");
  tc_close(&c);

  th_connect(&s, &c, "unknown, agentws.v1, chat");
  assert_string_equal(c.protocol, "agentws.v1");
  assert_int_equal(agentws_conn_get_subprotocol(s.m, s.open_id, &p), 0);
  assert_string_equal(p, "agentws.v1");
  tc_close(&c);

  th_connect(&s, &c, "bearer.secret, chat");
  assert_string_equal(c.protocol, "chat");
  assert_int_equal(agentws_conn_get_subprotocol(s.m, s.open_id, &p), 0);
  assert_string_equal(p, "chat");

  assert_int_equal(agentws_conn_get_subprotocol(s.m, s.open_id + 1, &p),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_get_subprotocol(s.m, s.open_id, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_conn_get_subprotocol(NULL, s.open_id, &p),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  tc_close(&c);
  TH_RUN_UNTIL(&s, s.n_close == 3);
  th_finish(&s);
}

/* ------------------------------------------------------------- user data */

static void test_user_data(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  int other;
  void *out = &other;
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  assert_ptr_equal(agentws_manager_get_user_data(s.m), &s);
  agentws_manager_set_user_data(s.m, &other);
  assert_ptr_equal(agentws_manager_get_user_data(s.m), &other);
  agentws_manager_set_user_data(s.m, &s);
  assert_null(agentws_manager_get_user_data(NULL));
  agentws_manager_set_user_data(NULL, &s); /* ignored */

  th_connect(&s, &c, NULL);
  assert_int_equal(agentws_conn_get_user_data(s.m, s.open_id, &out), 0);
  assert_null(out);
  assert_int_equal(agentws_conn_set_user_data(s.m, s.open_id, &other), 0);
  assert_int_equal(agentws_conn_get_user_data(s.m, s.open_id, &out), 0);
  assert_ptr_equal(out, &other);
  assert_int_equal(agentws_conn_set_user_data(s.m, s.open_id, NULL), 0);
  assert_int_equal(agentws_conn_get_user_data(s.m, s.open_id, &out), 0);
  assert_null(out);

  assert_int_equal(agentws_conn_set_user_data(s.m, s.open_id + 1, &other),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_get_user_data(s.m, s.open_id + 1, &out),
                   AGENTWS_ERR_NOT_FOUND);
  assert_int_equal(agentws_conn_get_user_data(s.m, s.open_id, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_conn_set_user_data(NULL, s.open_id, &other),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_conn_get_user_data(NULL, s.open_id, &out),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  tc_close(&c);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_int_equal(s.bad_user_data, 0);
  th_finish(&s);
}

/* set_user_data changes what every later callback receives. */
typedef struct ud_seen {
  void *open_ud, *msg_ud, *close_ud;
} ud_seen;

static ud_seen g_seen;

static void ud_open(agentws_manager *m, uint64_t id, void *ud) {
  (void)m;
  (void)id;
  g_seen.open_ud = ud;
}
static int ud_msg(agentws_manager *m, uint64_t id, int type,
                  const uint8_t *d, size_t n, void *ud) {
  g_seen.msg_ud = ud;
  return agentws_conn_send(m, id, type, d, n);
}
static void ud_close(agentws_manager *m, uint64_t id, int code,
                     const char *r, size_t rl, void *ud) {
  (void)m;
  (void)id;
  (void)code;
  (void)r;
  (void)rl;
  g_seen.close_ud = ud;
}

static void test_manager_user_data_reaches_callbacks(void **state) {
  static th_server s; /* only loop and m are used (own callbacks here) */
  agentws_callbacks *cbs;
  agentws_config *cfg;
  tc_client c;
  static int a, b;
  int port = 0;
  (void)state;
  memset(&g_seen, 0, sizeof(g_seen));
  memset(&s, 0, sizeof(s));
  assert_int_equal(uv_loop_init(&s.loop), 0);
  th_track(&s);
  assert_int_equal(agentws_callbacks_new(&cbs), 0);
  agentws_callbacks_set_on_open(cbs, ud_open);
  agentws_callbacks_set_on_message(cbs, ud_msg);
  agentws_callbacks_set_on_close(cbs, ud_close);
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_raw_messages(cfg, 1), 0);
  assert_int_equal(agentws_manager_new(&s.m, &s.loop, cfg, cbs, &a), 0);
  agentws_config_free(cfg);
  agentws_callbacks_free(cbs);
  assert_int_equal(agentws_manager_listen(s.m, NULL, 0, &port), 0);
  assert_int_equal(tc_connect(&c, "127.0.0.1", port, th_pump, &s), 0);
  assert_int_equal(tc_upgrade(&c, "/ws", NULL), 0);
  assert_ptr_equal(g_seen.open_ud, &a);
  agentws_manager_set_user_data(s.m, &b);
  assert_ptr_equal(agentws_manager_get_user_data(s.m), &b);
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "x", 1), 0);
  assert_ptr_equal(g_seen.msg_ud, &b);
  tc_close(&c);
  TH_RUN_UNTIL(&s, g_seen.close_ud != NULL);
  assert_ptr_equal(g_seen.close_ud, &b);
  assert_int_equal(agentws_manager_close(s.m, NULL, NULL), 0);
  TH_RUN_UNTIL(&s, !uv_loop_alive(&s.loop));
  agentws_manager_free(s.m);
  s.m = NULL;
  th_loop_close(&s);
}

/* -------------------------------------------------------- manager close */

static void test_manager_close_with_clients(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client a, b, late;
  int code;
  char reason[128];
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  th_connect(&s, &a, NULL);
  th_connect(&s, &b, NULL);

  assert_int_equal(agentws_manager_close(s.m, NULL, NULL), 0);
  assert_int_equal(agentws_manager_close(s.m, NULL, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_manager_listen(s.m, "127.0.0.1", 0, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(s.n_close, 0);

  assert_int_equal(tc_read_close(&a, &code, reason, sizeof(reason),
                                 TC_TIMEOUT_MS),
                   0);
  assert_int_equal(code, 1001);
  assert_string_equal(reason, "server shutdown");
  assert_int_equal(tc_read_close(&b, &code, reason, sizeof(reason),
                                 TC_TIMEOUT_MS),
                   0);
  assert_int_equal(code, 1001);

  /* The listener is gone. */
  assert_int_equal(tc_connect(&late, "127.0.0.1", s.port, th_pump, &s),
                   TC_SYS);

  assert_int_equal(tc_send_close(&a, 1001, NULL), 0);
  assert_int_equal(tc_wait_eof(&a, TC_TIMEOUT_MS), 0);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  assert_int_equal(s.close_code, 1001);
  assert_string_equal(s.close_reason, "server shutdown");
  assert_int_equal(tc_send_close(&b, 1000, NULL), 0);
  assert_int_equal(tc_wait_eof(&b, TC_TIMEOUT_MS), 0);
  TH_RUN_UNTIL(&s, s.n_close == 2 && !uv_loop_alive(&s.loop));
  tc_close(&a);
  tc_close(&b);

  agentws_manager_free(s.m);
  s.m = NULL;
  th_loop_close(&s);
}

static int g_never_ran;

static void never_run(agentws_manager *m, void *ud) {
  (void)m;
  (void)ud;
  g_never_ran++;
}

static void closed_record(th_server *s) {
  int *post_rv = s->test;
  /* Closed: no more posts are taken. */
  *post_rv = agentws_manager_post(s->m, never_run, NULL);
}

/* The closed callback fires once every handle is gone, and not before the
 * peer answered the close (or close_timeout passed). */
static void test_manager_close_callback(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  int code, post_rv = 1;
  uint64_t deadline;
  (void)state;
  g_never_ran = 0;
  assert_int_equal(th_start(&s, NULL), 0);
  s.test = &post_rv;
  s.on_closed = closed_record;
  th_connect(&s, &c, NULL);
  assert_int_equal(th_close(&s), 0);
  assert_int_equal(s.n_closed, 0); /* never inside the call */
  assert_int_equal(tc_read_close(&c, &code, NULL, 0, TC_TIMEOUT_MS), 0);
  assert_int_equal(code, 1001);
  /* Still waiting for the client's answer. */
  deadline = tc_now_ms() + 100;
  while (tc_now_ms() < deadline) {
    uv_run(&s.loop, UV_RUN_NOWAIT);
    tc_sleep_ms(1);
  }
  assert_int_equal(s.n_closed, 0);
  assert_int_equal(s.n_close, 0);
  assert_int_equal(tc_send_close(&c, 1000, NULL), 0);
  assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
  tc_close(&c);
  th_finish(&s);
  assert_int_equal(s.n_close, 1);
  assert_int_equal(s.n_closed, 1);
  assert_int_equal(post_rv, AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(g_never_ran, 0);
  assert_int_equal(s.bad_manager, 0);
}

/* A client that never answers the close is dropped after close_timeout. */
static void test_manager_close_timeout(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  agentws_config *cfg;
  int code;
  uint64_t t0;
  (void)state;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_raw_messages(cfg, 1), 0);
  assert_int_equal(agentws_config_set_close_timeout_ms(cfg, 200), 0);
  assert_int_equal(th_start(&s, cfg), 0);
  agentws_config_free(cfg);
  th_connect(&s, &c, NULL);
  t0 = tc_now_ms();
  assert_int_equal(agentws_manager_close(s.m, NULL, NULL), 0);
  assert_int_equal(tc_read_close(&c, &code, NULL, 0, TC_TIMEOUT_MS), 0);
  assert_int_equal(code, 1001);
  /* no answer */
  assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
  TH_RUN_UNTIL(&s, s.n_close == 1 && !uv_loop_alive(&s.loop));
  assert_true(tc_now_ms() - t0 >= 150);
  assert_int_equal(s.close_code, 1001);
  tc_close(&c);
  agentws_manager_free(s.m);
  s.m = NULL;
  th_loop_close(&s);
}

/* agentws_manager_free() on an open manager closes it gracefully and
 * releases the memory once the close completes (ASan/valgrind see it). */
static void test_free_without_close(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  int code;
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  th_connect(&s, &c, NULL);
  agentws_manager_free(s.m);
  s.m = NULL;
  assert_int_equal(tc_read_close(&c, &code, NULL, 0, TC_TIMEOUT_MS), 0);
  assert_int_equal(code, 1001);
  assert_int_equal(tc_send_close(&c, 1001, NULL), 0);
  assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
  tc_close(&c);
  TH_RUN_UNTIL(&s, s.n_close == 1 && !uv_loop_alive(&s.loop));
  th_loop_close(&s);
}

/* A manager that never listened closes at once. */
static void count_closed(agentws_manager *m, void *ud) {
  (void)m;
  (*(int *)ud)++;
}

static void test_close_idle_manager(void **state) {
  uv_loop_t loop;
  agentws_manager *m = NULL;
  int fired = 0;
  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(agentws_manager_new(&m, &loop, NULL, NULL, NULL), 0);
  /* Its handles are unref'd: the host loop does not stay alive for it. */
  assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
  assert_int_equal(agentws_manager_close(m, count_closed, &fired), 0);
  assert_int_equal(fired, 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(fired, 1);
  agentws_manager_free(m);
  assert_int_equal(uv_loop_close(&loop), 0);

  /* free() right after new(), without running the loop first. */
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(agentws_manager_new(&m, &loop, NULL, NULL, NULL), 0);
  agentws_manager_free(m);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---------------------------------------------------------------- posts */

typedef struct post_log {
  int order[8];
  int n;
  agentws_manager *m_seen;
} post_log;

static post_log g_posts;

static void post_cb(agentws_manager *m, void *ud) {
  g_posts.m_seen = m;
  g_posts.order[g_posts.n++] = (int)(intptr_t)ud;
}

static void test_post_host_loop(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  int i;
  (void)state;
  memset(&g_posts, 0, sizeof(g_posts));
  assert_int_equal(th_start(&s, NULL), 0);
  for (i = 0; i < 5; i++)
    assert_int_equal(agentws_manager_post(s.m, post_cb, (void *)(intptr_t)i),
                     0);
  assert_int_equal(g_posts.n, 0); /* never inside post() */
  TH_RUN_UNTIL(&s, g_posts.n == 5);
  for (i = 0; i < 5; i++)
    assert_int_equal(g_posts.order[i], i);
  assert_ptr_equal(g_posts.m_seen, s.m);
  assert_int_equal(agentws_manager_post(s.m, NULL, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_manager_post(NULL, post_cb, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);

  /* Accepted before the close began: still runs. */
  assert_int_equal(agentws_manager_post(s.m, post_cb, (void *)(intptr_t)5),
                   0);
  th_finish(&s);
  assert_int_equal(g_posts.n, 6);
  assert_int_equal(g_posts.order[5], 5);
}

/* ------------------------------------------------------------ arguments */

static void test_argument_errors(void **state) {
  uv_loop_t loop;
  agentws_manager *m = NULL;
  agentws_callbacks *cbs = NULL;
  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(agentws_manager_new(NULL, &loop, NULL, NULL, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_manager_new(&m, NULL, NULL, NULL, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_null(m);
  assert_int_equal(agentws_manager_new_threaded(NULL, NULL, NULL, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_callbacks_new(NULL), AGENTWS_ERR_INVALID_ARGUMENT);
  agentws_callbacks_set_on_open(NULL, NULL);
  agentws_callbacks_set_on_message(NULL, NULL);
  agentws_callbacks_set_on_close(NULL, NULL);
  agentws_callbacks_free(NULL);
  agentws_manager_free(NULL);
  assert_int_equal(agentws_manager_close(NULL, NULL, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_manager_listen(NULL, NULL, 0, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_manager_adopt(NULL, 0, NULL, 0, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_manager_start(NULL), AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_manager_stop(NULL), AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_manager_get_num_connections(NULL), 0);

  /* Hooks unset with NULL; a manager without hooks still works. */
  assert_int_equal(agentws_callbacks_new(&cbs), 0);
  agentws_callbacks_set_on_open(cbs, NULL);
  assert_int_equal(agentws_manager_new(&m, &loop, NULL, cbs, NULL), 0);
  agentws_callbacks_free(cbs);
  /* start/stop are for threaded managers only. */
  assert_int_equal(agentws_manager_start(m), AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_manager_stop(m), AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_manager_close(m, NULL, NULL), 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  agentws_manager_free(m);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* A custom ws_path: the default one is now 404, /healthz answers. */
static void test_ws_path_and_healthz(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  agentws_config *cfg;
  (void)state;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_raw_messages(cfg, 1), 0);
  assert_int_equal(agentws_config_set_ws_path(cfg, "/events"), 0);
  assert_int_equal(th_start(&s, cfg), 0);
  agentws_config_free(cfg);

  assert_int_equal(tc_connect(&c, "127.0.0.1", s.port, th_pump, &s), 0);
  assert_int_equal(tc_upgrade(&c, "/ws", NULL), TC_PROTO);
  assert_memory_equal(c.head, "HTTP/1.1 404 ", 13);
  tc_close(&c);

  assert_int_equal(tc_connect(&c, "127.0.0.1", s.port, th_pump, &s), 0);
  assert_int_equal(tc_upgrade(&c, "/events?x=1", NULL), 0);
  tc_close(&c);

  assert_int_equal(tc_connect(&c, "127.0.0.1", s.port, th_pump, &s), 0);
  {
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(tc_send_all(&c, req, sizeof(req) - 1), 0);
    assert_int_equal(tc_read_head(&c, TC_TIMEOUT_MS), 0);
    assert_memory_equal(c.head, "HTTP/1.1 200 ", 13);
  }
  tc_close(&c);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  th_finish(&s);
  assert_int_equal(s.n_open, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(test_echo_and_callbacks),
      TH_TEST(test_two_clients),
      TH_TEST(test_conn_close_with_code),
      TH_TEST(test_conn_close_limits),
      TH_TEST(test_peer_close_1012_1014),
      TH_TEST(test_conn_close_errors),
      TH_TEST(test_send_errors),
      TH_TEST(test_subprotocols),
      TH_TEST(test_user_data),
      TH_TEST(test_manager_user_data_reaches_callbacks),
      TH_TEST(test_manager_close_with_clients),
      TH_TEST(test_manager_close_callback),
      TH_TEST(test_manager_close_timeout),
      TH_TEST(test_free_without_close),
      TH_TEST(test_close_idle_manager),
      TH_TEST(test_post_host_loop),
      TH_TEST(test_argument_errors),
      TH_TEST(test_ws_path_and_healthz),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
