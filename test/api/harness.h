/*
 * Shared fixture of the API tests: a host uv loop with a manager on it,
 * callbacks that record what happened, and bounded waits. Tests assert in
 * their own code, never inside library callbacks (which may run on the
 * library's thread), so callbacks only record.
 */
#ifndef TEST_API_HARNESS_H
#define TEST_API_HARNESS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agentws.h"
#include "client.h"

/* Deadline of any single wait on the loop. */
#define TH_TIMEOUT_MS 5000

typedef struct th_server th_server;

/* Optional hooks a test installs; run inside the library's callbacks. */
typedef void (*th_open_hook)(th_server *s, uint64_t id);
typedef int (*th_msg_hook)(th_server *s, uint64_t id, int type,
                           const uint8_t *data, size_t len);
typedef void (*th_close_hook)(th_server *s, uint64_t id, int code,
                              const char *reason, size_t reason_len);
typedef void (*th_closed_hook)(th_server *s);

struct th_server {
  uv_loop_t loop;       /* host loop (unused by threaded managers) */
  agentws_manager *m;   /* the manager under test */
  int port;             /* bound port of the first listener */
  int echo;             /* on_message sends every message back */
  int closed_free;      /* the closed callback frees the manager */
  int closing;          /* th_close() was called */
  int threaded;         /* s->m is threaded; s->loop is unused */
  int loop_closed;      /* uv_loop_close() succeeded */

  th_open_hook on_open;
  th_msg_hook on_msg;
  th_close_hook on_close;
  th_closed_hook on_closed;
  void *test;           /* per-test state for the hooks */

  /* Recorded by the callbacks; the counters are bumped after the fields
   * they cover are written, so a thread that sees a count sees them too. */
  atomic_int n_open, n_msg, n_close, n_closed;
  uint64_t open_id, msg_id, close_id; /* last seen */
  int msg_type;
  size_t msg_len;
  int echo_rv;          /* agentws_conn_send() result of the last echo */
  int close_code;
  char close_reason[128];
  size_t close_reason_len;
  int bad_user_data;    /* a callback got user_data other than |s| */
  int bad_manager;      /* a callback got a manager other than s->m */
  int in_api;           /* set by tests around calls that must not call back */
  int cb_in_api;        /* a callback fired while in_api was set */
};

/* The callbacks object wired to the recorders (free it after use). */
agentws_callbacks *th_callbacks(void);

/* uv_loop_init, manager on it (|cfg| may be NULL), listen on 127.0.0.1:0.
 * Returns 0 or the failing call's result. */
int th_start(th_server *s, const agentws_config *cfg);
/* The same with |more| adding hooks to the callbacks first. */
int th_start_with(th_server *s, const agentws_config *cfg,
                  void (*more)(agentws_callbacks *cbs));

/* Makes |s| the server th_teardown() cleans up if the test fails midway
 * (th_start() does this itself). */
void th_track(th_server *s);

/* cmocka teardown: after a failed test, closes and frees what it left
 * behind so sanitizers report only the library's own leaks. */
int th_teardown(void **state);

/* A test with th_teardown(). */
#define TH_TEST(f) cmocka_unit_test_teardown(f, th_teardown)

/* Runs the loop once without blocking: the client's pump. */
void th_pump(void *server);

/* Starts agentws_manager_close() with the recording closed callback. */
int th_close(th_server *s);

/* Closes the manager (unless th_close() already did), waits for the closed
 * callback, frees it and checks uv_loop_close() == 0. Fails the test
 * otherwise. */
void th_finish(th_server *s);

/* Asserts uv_loop_close(&s->loop) == 0 (printing any handle left). */
void th_loop_close(th_server *s);

/* Connects a client to s->port and upgrades on /ws. Fails the test on
 * error. */
void th_connect(th_server *s, tc_client *c, const char *protocols);

/* Runs the loop until |cond| holds, failing the test after TH_TIMEOUT_MS. */
#define TH_RUN_UNTIL(s, cond)                                                \
  do {                                                                       \
    uint64_t th_deadline_ = tc_now_ms() + TH_TIMEOUT_MS;                     \
    while (!(cond)) {                                                        \
      if (tc_now_ms() > th_deadline_)                                        \
        fail_msg("timed out waiting for %s", #cond);                         \
      uv_run(&(s)->loop, UV_RUN_NOWAIT);                                     \
      tc_sleep_ms(1);                                                        \
    }                                                                        \
  } while (0)

/* Waits (no loop to run: threaded manager) until |cond| holds. */
#define TH_WAIT_UNTIL(cond)                                                  \
  do {                                                                       \
    uint64_t th_deadline_ = tc_now_ms() + TH_TIMEOUT_MS;                     \
    while (!(cond)) {                                                        \
      if (tc_now_ms() > th_deadline_)                                        \
        fail_msg("timed out waiting for %s", #cond);                         \
      tc_sleep_ms(1);                                                        \
    }                                                                        \
  } while (0)

#endif /* TEST_API_HARNESS_H */
