/*
 * API tests of the threaded mode: agentws_manager_new_threaded(), start,
 * callbacks on the library's thread, agentws_manager_post() from several
 * threads, stop (also from the wrong thread) and free.
 *
 * Callbacks run on the library's thread, so they only record; the test
 * thread asserts after a bounded wait.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"
#include "client.h"
#include "harness.h"

/* Creates a threaded manager recording into |s|, listening on loopback. */
static void start_threaded(th_server *s, const agentws_config *cfg,
                           int start) {
  agentws_callbacks *cbs = th_callbacks();
  agentws_config *raw = NULL;
  assert_non_null(cbs);
  s->threaded = 1;
  th_track(s);
  if (cfg == NULL) { /* transport tests: raw messages, no agent protocol */
    assert_int_equal(agentws_config_new(&raw), 0);
    assert_int_equal(agentws_config_set_raw_messages(raw, 1), 0);
    cfg = raw;
  }
  assert_int_equal(agentws_manager_new_threaded(&s->m, cfg, cbs, s), 0);
  agentws_config_free(raw);
  agentws_callbacks_free(cbs);
  assert_int_equal(agentws_manager_listen(s->m, "127.0.0.1", 0, &s->port),
                   0);
  if (start)
    assert_int_equal(agentws_manager_start(s->m), 0);
}

static void init_server(th_server *s) {
  memset(s, 0, sizeof(*s));
}

/* ----------------------------------------------------------------- echo */

typedef struct thread_seen {
  uv_thread_t open_thread, msg_thread;
  int stop_rv_in_cb;      /* agentws_manager_stop() inside on_message */
  int start_rv_in_cb;     /* agentws_manager_start() inside on_message */
  int listen_rv_in_cb;    /* agentws_manager_listen() inside on_message */
} thread_seen;

static void seen_open(th_server *s, uint64_t id) {
  thread_seen *t = s->test;
  (void)id;
  t->open_thread = uv_thread_self();
}

static int seen_msg(th_server *s, uint64_t id, int type, const uint8_t *d,
                    size_t n) {
  thread_seen *t = s->test;
  (void)id;
  (void)type;
  t->msg_thread = uv_thread_self();
  if (n == 4 && memcmp(d, "stop", 4) == 0) {
    t->stop_rv_in_cb = agentws_manager_stop(s->m);
    t->start_rv_in_cb = agentws_manager_start(s->m);
    t->listen_rv_in_cb = agentws_manager_listen(s->m, "127.0.0.1", 0, NULL);
  }
  return 0;
}

static void test_threaded_echo(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  static thread_seen t;
  uv_thread_t self = uv_thread_self();
  agentws_config *cfg;
  int code;
  char reason[64];
  uint64_t t0;
  (void)state;
  init_server(&s);
  memset(&t, 0, sizeof(t));
  s.echo = 1;
  s.test = &t;
  s.on_open = seen_open;
  s.on_msg = seen_msg;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_raw_messages(cfg, 1), 0);
  assert_int_equal(agentws_config_set_close_timeout_ms(cfg, 300), 0);
  start_threaded(&s, cfg, 1);
  agentws_config_free(cfg);

  /* Started: started twice, and loop-thread-only calls from here, fail. */
  assert_int_equal(agentws_manager_start(s.m), AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_manager_listen(s.m, "127.0.0.1", 0, NULL),
                   AGENTWS_ERR_WRONG_THREAD);
  assert_int_equal(agentws_manager_close(s.m, NULL, NULL),
                   AGENTWS_ERR_WRONG_THREAD);
  assert_int_equal(agentws_manager_adopt(s.m, 0, NULL, 0, NULL),
                   AGENTWS_ERR_WRONG_THREAD);

  /* No pump: the library's thread serves the client. */
  assert_int_equal(tc_connect(&c, "127.0.0.1", s.port, NULL, NULL), 0);
  assert_int_equal(tc_upgrade(&c, "/ws", "agentws.v1"), 0);
  assert_string_equal(c.protocol, "agentws.v1");
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "threaded", 8), 0);
  assert_int_equal(tc_echo(&c, TC_OP_BINARY, "\x00\x01", 2), 0);
  TH_WAIT_UNTIL(s.n_msg == 2);
  assert_int_equal(s.n_open, 1);
  assert_int_equal(s.echo_rv, 0);
  assert_false(uv_thread_equal(&t.msg_thread, &self));
  assert_true(uv_thread_equal(&t.msg_thread, &t.open_thread));

  /* stop() inside a callback is refused; start/listen there too. */
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "stop", 4), 0);
  TH_WAIT_UNTIL(s.n_msg == 3);
  assert_int_equal(t.stop_rv_in_cb, AGENTWS_ERR_WRONG_THREAD);
  assert_int_equal(t.start_rv_in_cb, AGENTWS_ERR_INVALID_STATE);
  /* listen is allowed on the loop thread. */
  assert_int_equal(t.listen_rv_in_cb, 0);
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "alive", 5), 0);

  /* stop() with the client connected and not answering: the close gets
   * close_timeout (300 ms), then stop returns. */
  t0 = tc_now_ms();
  assert_int_equal(agentws_manager_stop(s.m), 0);
  assert_true(tc_now_ms() - t0 < 4000);
  assert_int_equal(s.n_close, 1);
  assert_int_equal(s.close_code, 1001);
  assert_int_equal(tc_read_close(&c, &code, reason, sizeof(reason),
                                 TC_TIMEOUT_MS),
                   0);
  assert_int_equal(code, 1001);
  assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
  tc_close(&c);

  /* Stopped: again is fine, the rest is refused. */
  assert_int_equal(agentws_manager_stop(s.m), 0);
  assert_int_equal(agentws_manager_start(s.m), AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_manager_post(s.m, (agentws_post_cb)NULL, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(s.bad_user_data, 0);
  assert_int_equal(s.bad_manager, 0);
  agentws_manager_free(s.m);
  s.m = NULL;
}

/* A client that answers the close: stop() returns promptly. */
static void test_threaded_stop_graceful(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  (void)state;
  init_server(&s);
  s.echo = 1;
  start_threaded(&s, NULL, 1);
  assert_int_equal(tc_connect(&c, "127.0.0.1", s.port, NULL, NULL), 0);
  assert_int_equal(tc_upgrade(&c, "/ws", NULL), 0);
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "x", 1), 0);
  assert_int_equal(tc_send_close(&c, 1000, "bye"), 0);
  assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
  TH_WAIT_UNTIL(s.n_close == 1);
  assert_int_equal(s.close_code, 1000);
  assert_string_equal(s.close_reason, "bye");
  tc_close(&c);
  assert_int_equal(agentws_manager_stop(s.m), 0);
  agentws_manager_free(s.m);
  s.m = NULL;
}

/* ---------------------------------------------------------------- posts */

#define POST_THREADS 4
#define POSTS_PER_THREAD 1000

typedef struct post_item {
  struct post_world *w;
  int thread;
  int seq;
} post_item;

typedef struct post_world {
  agentws_manager *m;
  post_item items[POST_THREADS][POSTS_PER_THREAD];
  int runs[POST_THREADS][POSTS_PER_THREAD]; /* times each item ran */
  int next[POST_THREADS];                   /* next seq expected */
  int out_of_order;
  int wrong_manager;
  int post_failures;                        /* post() != 0 */
  uv_thread_t loop_thread;
  int thread_set, thread_mismatch;
  atomic_int total;
} post_world;

static void post_cb(agentws_manager *m, void *ud) {
  post_item *it = ud;
  post_world *w = it->w;
  uv_thread_t self = uv_thread_self();
  if (m != w->m)
    w->wrong_manager++;
  if (!w->thread_set) {
    w->loop_thread = self;
    w->thread_set = 1;
  } else if (!uv_thread_equal(&self, &w->loop_thread)) {
    w->thread_mismatch++;
  }
  w->runs[it->thread][it->seq]++;
  if (w->next[it->thread] != it->seq)
    w->out_of_order++;
  w->next[it->thread] = it->seq + 1;
  w->total++;
}

typedef struct poster {
  post_world *w;
  int thread;
  int failures;
} poster;

static void poster_main(void *arg) {
  poster *p = arg;
  int i;
  for (i = 0; i < POSTS_PER_THREAD; i++) {
    post_item *it = &p->w->items[p->thread][i];
    if (agentws_manager_post(p->w->m, post_cb, it) != 0)
      p->failures++;
  }
}

static void test_posts_from_threads(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  post_world *w = calloc(1, sizeof(*w));
  static poster posters[POST_THREADS];
  uv_thread_t threads[POST_THREADS];
  uv_thread_t self = uv_thread_self();
  tc_client c;
  int t, i;
  (void)state;
  assert_non_null(w);
  init_server(&s);
  s.echo = 1;
  start_threaded(&s, NULL, 1);
  w->m = s.m;
  for (t = 0; t < POST_THREADS; t++)
    for (i = 0; i < POSTS_PER_THREAD; i++) {
      w->items[t][i].w = w;
      w->items[t][i].thread = t;
      w->items[t][i].seq = i;
    }
  for (t = 0; t < POST_THREADS; t++) {
    posters[t].w = w;
    posters[t].thread = t;
    posters[t].failures = 0;
    assert_int_equal(uv_thread_create(&threads[t], poster_main, &posters[t]),
                     0);
  }
  /* Meanwhile, traffic on the test thread. */
  assert_int_equal(tc_connect(&c, "127.0.0.1", s.port, NULL, NULL), 0);
  assert_int_equal(tc_upgrade(&c, "/ws", NULL), 0);
  for (i = 0; i < 20; i++)
    assert_int_equal(tc_echo(&c, TC_OP_TEXT, "during posts", 12), 0);
  for (t = 0; t < POST_THREADS; t++)
    assert_int_equal(uv_thread_join(&threads[t]), 0);
  for (t = 0; t < POST_THREADS; t++)
    assert_int_equal(posters[t].failures, 0);

  TH_WAIT_UNTIL(w->total == POST_THREADS * POSTS_PER_THREAD);
  assert_int_equal(tc_send_close(&c, 1000, NULL), 0);
  assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
  tc_close(&c);
  assert_int_equal(agentws_manager_stop(s.m), 0);

  /* After stop() (a join), everything the callbacks wrote is visible. */
  assert_int_equal(w->total, POST_THREADS * POSTS_PER_THREAD);
  for (t = 0; t < POST_THREADS; t++)
    for (i = 0; i < POSTS_PER_THREAD; i++)
      if (w->runs[t][i] != 1)
        fail_msg("post %d of thread %d ran %d times", i, t, w->runs[t][i]);
  assert_int_equal(w->out_of_order, 0);
  assert_int_equal(w->wrong_manager, 0);
  assert_int_equal(w->thread_mismatch, 0);
  assert_false(uv_thread_equal(&w->loop_thread, &self));

  /* Stopped: posts are refused and never run. */
  assert_int_equal(agentws_manager_post(s.m, post_cb, &w->items[0][0]),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(w->runs[0][0], 1);
  agentws_manager_free(s.m);
  s.m = NULL;
  free(w);
}

/* Posts accepted before stop() all run, even when stop() follows at once. */
static atomic_int g_ran;

static void count_cb(agentws_manager *m, void *ud) {
  (void)m;
  (void)ud;
  g_ran++;
}

static void test_posts_then_stop(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  int i, accepted = 0;
  (void)state;
  init_server(&s);
  g_ran = 0;
  start_threaded(&s, NULL, 1);
  for (i = 0; i < 500; i++)
    if (agentws_manager_post(s.m, count_cb, NULL) == 0)
      accepted++;
  assert_int_equal(accepted, 500);
  assert_int_equal(agentws_manager_stop(s.m), 0);
  assert_int_equal(g_ran, 500);
  agentws_manager_free(s.m);
  s.m = NULL;
}

/* ------------------------------------------------ close from loop thread */

typedef struct close_in_post {
  int close_rv;
  int stop_rv;
  atomic_int closed;
} close_in_post;

static void on_closed_cb(agentws_manager *m, void *ud) {
  close_in_post *cp = ud;
  (void)m;
  cp->closed++;
}

static void close_post(agentws_manager *m, void *ud) {
  close_in_post *cp = ud;
  cp->stop_rv = agentws_manager_stop(m);
  cp->close_rv = agentws_manager_close(m, on_closed_cb, cp);
}

static void test_close_on_loop_thread(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  static close_in_post cp;
  (void)state;
  init_server(&s);
  memset(&cp, 0, sizeof(cp));
  start_threaded(&s, NULL, 1);
  assert_int_equal(agentws_manager_post(s.m, close_post, &cp), 0);
  TH_WAIT_UNTIL(cp.closed == 1);
  assert_int_equal(cp.stop_rv, AGENTWS_ERR_WRONG_THREAD);
  assert_int_equal(cp.close_rv, 0);
  assert_int_equal(agentws_manager_stop(s.m), 0); /* joins */
  assert_int_equal(agentws_manager_post(s.m, count_cb, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  agentws_manager_free(s.m);
  s.m = NULL;
}

/* --------------------------------------------------- stop without start */

static void test_stop_without_start(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  (void)state;
  init_server(&s);
  start_threaded(&s, NULL, 0);
  assert_int_equal(agentws_manager_stop(s.m), 0);
  assert_int_equal(agentws_manager_stop(s.m), 0);
  assert_int_equal(agentws_manager_start(s.m), AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_manager_listen(s.m, "127.0.0.1", 0, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_int_equal(agentws_manager_post(s.m, count_cb, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  agentws_manager_free(s.m);
  s.m = NULL;

  /* free() alone, never started, never stopped. */
  init_server(&s);
  start_threaded(&s, NULL, 0);
  agentws_manager_free(s.m);
  s.m = NULL;

  /* free() alone on a started manager stops it first. */
  init_server(&s);
  start_threaded(&s, NULL, 1);
  agentws_manager_free(s.m);
  s.m = NULL;

  /* No listener at all. */
  {
    agentws_manager *m = NULL;
    assert_int_equal(agentws_manager_new_threaded(&m, NULL, NULL, NULL), 0);
    assert_int_equal(agentws_manager_start(m), 0);
    assert_int_equal(agentws_manager_stop(m), 0);
    agentws_manager_free(m);
  }
}

/* Posts made before start() run once the thread starts. */
static void test_post_before_start(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  (void)state;
  init_server(&s);
  g_ran = 0;
  start_threaded(&s, NULL, 0);
  assert_int_equal(agentws_manager_post(s.m, count_cb, NULL), 0);
  assert_int_equal(agentws_manager_post(s.m, count_cb, NULL), 0);
  assert_int_equal(g_ran, 0);
  assert_int_equal(agentws_manager_start(s.m), 0);
  TH_WAIT_UNTIL(g_ran == 2);
  assert_int_equal(agentws_manager_stop(s.m), 0);
  agentws_manager_free(s.m);
  s.m = NULL;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(test_threaded_echo),
      TH_TEST(test_threaded_stop_graceful),
      TH_TEST(test_posts_from_threads),
      TH_TEST(test_posts_then_stop),
      TH_TEST(test_close_on_loop_thread),
      TH_TEST(test_stop_without_start),
      TH_TEST(test_post_before_start),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
