/*
 * API tests of embedding hygiene (issue 9, item 6): what a host program may
 * rely on when it runs libagentws on its own libuv loop.
 *  - two managers on one host loop, closed one after the other;
 *  - a host loop that runs on a thread other than main;
 *  - the host's own handles keep running and are untouched by the close;
 *  - no signal disposition is changed (SIGPIPE above all);
 *  - no global state: two differently configured managers at once;
 *  - nothing on stdout/stderr without a log hook, except the documented
 *    dev_insecure warning.
 * Real loopback sockets; every wait is bounded.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"
#include "client.h"
#include "harness.h"

#define USER AGENTWS_TARGET_USER
#define OK(call) assert_int_equal((call), 0)
#define F_AUTH 1 /* host_add: the host's on_authenticate (?user=) */
#define F_LOG 2  /* host_add: an on_log hook */

/* ------------------------------------------------------------ the host */

/* A host program: its own loop and up to two managers on it. */
typedef struct host {
  uv_loop_t loop;   /* the host's loop; TH_RUN_UNTIL(h, ...) runs it */
  th_server srv[2]; /* recorders of the managers (their .loop is unused) */
} host;

static host *g_host; /* set while open: teardown closes it after a failure */

static void host_pump(void *h) { uv_run(&((host *)h)->loop, UV_RUN_NOWAIT); }

static void host_init(host *h) {
  memset(h, 0, sizeof(*h));
  OK(uv_loop_init(&h->loop));
  g_host = h;
}

/* The host's own check stands in for a token check: the user is
 * "?user=NAME". So no manager needs dev_insecure, which prints. */
static int auth_query(agentws_manager *m, uint64_t conn,
                      const agentws_request *req, void *ud) {
  const char *t = agentws_request_get_target(req);
  const char *u = t != NULL ? strstr(t, "user=") : NULL;
  char user[64];
  size_t n = u != NULL ? strcspn(u + 5, "&") : 0;
  (void)ud;
  if (n == 0 || n >= sizeof(user))
    return agentws_conn_refuse(m, conn, 401, "no user");
  memcpy(user, u + 5, n);
  user[n] = '\0';
  return agentws_conn_accept(m, conn, user);
}

/* Lines given to on_log (it runs on the main thread's host loop). */
static char g_log[8192];
static int g_log_lines;

static void on_log(agentws_manager *m, int level, const char *msg, void *ud) {
  size_t used = strlen(g_log);
  (void)m, (void)level, (void)ud;
  snprintf(g_log + used, sizeof(g_log) - used, "%s\n", msg);
  g_log_lines++;
}

/* A config (NULL on failure): |raw| mode or the agent protocol; pings off,
 * short close deadlines, every log line wanted (there may be no hook). */
static agentws_config *make_cfg(int raw) {
  agentws_config *cfg = NULL;
  if (agentws_config_new(&cfg) != 0 ||
      agentws_config_set_raw_messages(cfg, raw) != 0 ||
      agentws_config_set_ping_interval_ms(cfg, 0) != 0 ||
      agentws_config_set_close_timeout_ms(cfg, 500) != 0 ||
      agentws_config_set_log_level(cfg, AGENTWS_LOG_DEBUG) != 0) {
    agentws_config_free(cfg);
    return NULL;
  }
  return cfg;
}

/* Manager |i| on the host loop with the recorders, listening on :0.
 * Takes |cfg| (NULL fails). Returns 0 or an error; no cmocka calls, so
 * any thread may use it. */
static int host_add(host *h, int i, agentws_config *cfg, int flags) {
  th_server *s = &h->srv[i];
  agentws_callbacks *cbs = th_callbacks();
  int rv = cfg != NULL && cbs != NULL ? 0 : AGENTWS_ERR_NOMEM;
  if (rv == 0 && (flags & F_AUTH))
    agentws_callbacks_set_on_authenticate(cbs, auth_query);
  if (rv == 0 && (flags & F_LOG))
    agentws_callbacks_set_on_log(cbs, on_log);
  if (rv == 0)
    rv = agentws_manager_new(&s->m, &h->loop, cfg, cbs, s);
  agentws_callbacks_free(cbs);
  agentws_config_free(cfg);
  return rv != 0 ? rv : agentws_manager_listen(s->m, NULL, 0, &s->port);
}

/* Waits for manager |i|'s close (begun by th_close) and frees it. */
static void host_wait_closed(host *h, int i) {
  TH_RUN_UNTIL(h, h->srv[i].n_closed == 1);
  agentws_manager_free(h->srv[i].m);
  h->srv[i].m = NULL;
}

static void host_done(host *h) {
  int rv = uv_loop_close(&h->loop);
  if (rv != 0) {
    uv_print_all_handles(&h->loop, stderr);
    fail_msg("uv_loop_close: %s", uv_err_name(rv));
  }
  g_host = NULL;
}

/* A custom "note" event for |user| on |m|. */
static int note(agentws_manager *m, const char *user, const char *data) {
  return agentws_emit_custom(m, USER, user, "note", NULL, data);
}

/* ----------------------------------------------------------- a client */

/* Connects to |port| and upgrades on |path|. |h| NULL: no pump (the
 * server runs on another thread). */
static void join(host *h, tc_client *c, int port, const char *path,
                 const char *protocols) {
  if (tc_connect(c, "127.0.0.1", port, h ? host_pump : NULL, h) != 0)
    fail_msg("connect to port %d failed", port);
  if (tc_upgrade(c, path, protocols) != 0)
    fail_msg("upgrade on %d%s failed: %s", port, path, c->head);
}

/* Reads text messages until one contains |needle|. */
static void expect_text(tc_client *c, const char *needle) {
  int i, r, found;
  for (i = 0; i < 64; i++) {
    tc_frame f;
    if ((r = tc_read_frame(c, &f, TC_TIMEOUT_MS)) != 0)
      fail_msg("no message with %s (%d)", needle, r);
    found = f.opcode == TC_OP_TEXT && strstr((char *)f.data, needle);
    tc_frame_free(&f);
    if (found)
      return;
  }
  fail_msg("no message with %s", needle);
}

/* Reads up to the server's close frame, skipping whatever comes first;
 * returns its code (1005 if none) or a TC_* error. */
static int read_close_code(tc_client *c) {
  int code = 0, r;
  while (code == 0) {
    tc_frame f;
    if ((r = tc_read_frame(c, &f, TC_TIMEOUT_MS)) != 0)
      return r;
    if (f.opcode == TC_OP_CLOSE)
      code = f.len >= 2 ? (f.data[0] << 8) | f.data[1] : 1005;
    tc_frame_free(&f);
  }
  return code;
}

/* The client's half of a close the server began: read it, answer, wait
 * for the end of TCP, close. Returns the server's code or a TC_* error. */
static int answer_close(tc_client *c) {
  int code = read_close_code(c);
  if (code > 0) {
    tc_send_close(c, 1000, NULL); /* the server may have dropped already */
    if (tc_wait_eof(c, TC_TIMEOUT_MS) != 0)
      code = TC_TIMEOUT;
  }
  tc_close(c);
  return code;
}

/* Sends the request head |req| on a new connection to |port|; returns the
 * response's status or a TC_* error. */
static int http_status(host *h, int port, const char *req) {
  tc_client c;
  int status = 0, r;
  if (tc_connect(&c, "127.0.0.1", port, host_pump, h) != 0)
    return TC_SYS;
  r = tc_send_all(&c, req, strlen(req));
  if (r == 0)
    r = tc_read_head(&c, TC_TIMEOUT_MS);
  if (r == 0 && sscanf(c.head, "HTTP/1.1 %d", &status) != 1)
    r = TC_PROTO;
  tc_close(&c);
  return r != 0 ? r : status;
}

/* A WebSocket upgrade request for |path| (one static buffer). */
static const char *upgrade_req(const char *path) {
  static char buf[512];
  tc_format_request(buf, sizeof(buf), path, NULL);
  return buf;
}

/* Closes every manager on |h| while its |n| clients answer (1001 each),
 * frees them and closes the loop. */
static void host_close_all(host *h, tc_client **c, int n) {
  int i;
  for (i = 0; i < 2; i++)
    if (h->srv[i].m != NULL)
      OK(th_close(&h->srv[i]));
  for (i = 0; i < n; i++)
    assert_int_equal(answer_close(c[i]), 1001);
  for (i = 0; i < 2; i++)
    if (h->srv[i].m != NULL)
      host_wait_closed(h, i);
  host_done(h);
}

/* ---------------------------------------------- stdout/stderr capture */

/* capture(1): fds 1 and 2 go to temporary files; capture(0) restores
 * them and puts what each got into g_out[0] (stdout), g_out[1] (stderr). */
static struct {
  FILE *f[2];
  int saved[2];
  int on;
} g_cap;
static char g_out[2][4096];

static void capture(int on) {
  int i;
  fflush(stdout);
  fflush(stderr);
  for (i = 0; i < 2; i++) {
    if (on) {
      g_cap.f[i] = tmpfile();
      assert_non_null(g_cap.f[i]);
      g_cap.saved[i] = dup(i + 1);
      assert_true(g_cap.saved[i] >= 0 &&
                  dup2(fileno(g_cap.f[i]), i + 1) == i + 1);
    } else {
      ssize_t n = pread(fileno(g_cap.f[i]), g_out[i], sizeof(g_out[0]) - 1, 0);
      g_out[i][n > 0 ? n : 0] = '\0';
      dup2(g_cap.saved[i], i + 1);
      close(g_cap.saved[i]);
      fclose(g_cap.f[i]);
    }
  }
  g_cap.on = on;
}

/* Fails unless nothing was written to either stream. */
static void expect_silent(const char *when) {
  if (g_out[0][0] != '\0' || g_out[1][0] != '\0')
    fail_msg("%s: stdout got \"%s\", stderr got \"%s\"", when, g_out[0],
             g_out[1]);
}

/* ------------------------------------------------ signal dispositions */

/* Every disposition (sigaction of 1 .. NSIG-1) and the thread's mask. */
typedef struct sigsnap {
  int rv[NSIG];
  struct sigaction sa[NSIG];
  sigset_t mask;
} sigsnap;

static void sig_snap(sigsnap *s) {
  int i;
  memset(s, 0, sizeof(*s));
  for (i = 1; i < NSIG; i++)
    s->rv[i] = sigaction(i, NULL, &s->sa[i]); /* -1 for glibc's own */
  pthread_sigmask(SIG_SETMASK, NULL, &s->mask);
}

static void sig_same(const sigsnap *a, const sigsnap *b, const char *when) {
  int i, j;
  for (i = 1; i < NSIG; i++) {
    int same = a->rv[i] == b->rv[i] &&
               a->sa[i].sa_handler == b->sa[i].sa_handler &&
               a->sa[i].sa_flags == b->sa[i].sa_flags;
    for (j = 1; same && j < NSIG; j++)
      same = sigismember(&a->sa[i].sa_mask, j) ==
             sigismember(&b->sa[i].sa_mask, j);
    if (!same)
      fail_msg("%s: the disposition of signal %d (%s) changed", when, i,
               strsignal(i));
    if (sigismember(&a->mask, i) != sigismember(&b->mask, i))
      fail_msg("%s: signal %d (%s) %s the thread's mask", when, i, strsignal(i),
               sigismember(&b->mask, i) ? "added to" : "removed from");
  }
}

static const sigsnap *g_sig_before; /* set: sig_check() compares with it */

static void sig_check(const char *when) {
  static sigsnap now;
  if (g_sig_before != NULL) {
    sig_snap(&now);
    sig_same(g_sig_before, &now, when);
  }
}

/* ------------------------------------------- 1: two managers, one loop */

/* A raw echo server and an agent-protocol server share the host's loop;
 * closing the first leaves the second serving, then it closes too. Also
 * the host-loop scenario of test_no_signal_handlers. */
static void test_two_managers_one_loop(void **state) {
  static host h;
  th_server *A = &h.srv[0], *B = &h.srv[1];
  tc_client a1, a2, b1, b2, gone, late;
  (void)state;
  host_init(&h);
  OK(host_add(&h, 0, make_cfg(1), 0));
  OK(host_add(&h, 1, make_cfg(0), F_AUTH));
  A->echo = 1;
  assert_true(A->port != B->port);
  join(&h, &a1, A->port, "/ws", NULL);
  join(&h, &a2, A->port, "/ws", NULL);
  join(&h, &b1, B->port, "/ws?user=alice", NULL);
  expect_text(&b1, "\"welcome\"");
  OK(tc_echo(&a1, TC_OP_TEXT, "one", 3));
  OK(tc_echo(&a2, TC_OP_BINARY, "two", 3));
  OK(note(B->m, "alice", "{\"n\":1}"));
  expect_text(&b1, "\"n\":1");
  assert_int_equal(http_status(&h, B->port, upgrade_req("/ws")), 401);
  join(&h, &gone, A->port, "/ws", NULL);
  tc_close(&gone); /* no close frame: 1006 */
  TH_RUN_UNTIL(&h, A->n_close == 1);
  sig_check("two managers on the host loop");
  /* Each manager saw only its own connections (the recorders also check
   * that every callback got its own manager and user_data). */
  assert_int_equal(A->n_open, 3);
  assert_int_equal(B->n_open, 1);
  assert_int_equal(A->n_msg, 2);
  assert_int_equal(B->n_msg, 0);

  /* A closes; B delivers while A's close is in progress and after it. */
  OK(th_close(A));
  OK(note(B->m, "alice", "{\"n\":3}"));
  expect_text(&b1, "\"n\":3");
  assert_int_equal(answer_close(&a1), 1001);
  assert_int_equal(answer_close(&a2), 1001);
  host_wait_closed(&h, 0);
  assert_int_equal(tc_connect(&late, "127.0.0.1", A->port, host_pump, &h),
                   TC_SYS); /* A's listener is gone, B's is not */
  join(&h, &b2, B->port, "/ws?user=carol", NULL);
  expect_text(&b2, "\"welcome\"");
  OK(note(B->m, "carol", "{\"n\":4}"));
  OK(note(B->m, "alice", "{\"n\":5}"));
  expect_text(&b2, "\"n\":4");
  expect_text(&b1, "\"seq\":3"); /* alice's stream went on unbroken */
  assert_int_equal(B->n_close, 0);

  assert_int_equal(A->bad_manager + A->bad_user_data, 0);
  assert_int_equal(B->bad_manager + B->bad_user_data, 0);
  host_close_all(&h, (tc_client *[]){&b1, &b2}, 2);
  assert_int_equal(A->n_close + B->n_close, 5);
}

/* ------------------------------------ 2: a host loop on another thread */

typedef struct loop_thread {
  host h;             /* the host's loop and manager (srv[0]), on |self| */
  uv_async_t stop;    /* the host's own: main asks for the close */
  uv_thread_t handle; /* from uv_thread_create (main's copy) */
  uv_thread_t self;   /* the loop thread, as it sees itself */
  int started;        /* main's: created and not joined yet */
  atomic_int state;   /* 0 starting, 1 serving, 2 done, -1 failed */
  atomic_int close_rv, loop_close_rv, closed;
  atomic_int foreign; /* a callback ran on a thread other than self */
} loop_thread;

static loop_thread *g_thread; /* joined by teardown after a failure */

/* Callbacks must run on the thread that runs the loop. */
static void lt_check_thread(loop_thread *t) {
  uv_thread_t now = uv_thread_self();
  t->foreign += !uv_thread_equal(&now, &t->self);
}

static void lt_open(th_server *s, uint64_t id) {
  (void)id;
  lt_check_thread(s->test);
}

static void lt_closed(agentws_manager *m, void *ud) {
  loop_thread *t = ud;
  (void)m;
  lt_check_thread(t);
  t->closed++;
  uv_close((uv_handle_t *)&t->stop, NULL); /* now the loop may end */
}

/* On the loop thread: the host closes its manager where it runs. */
static void lt_stop(uv_async_t *a) {
  loop_thread *t = a->data;
  t->close_rv = agentws_manager_close(t->h.srv[0].m, lt_closed, t);
  if (t->close_rv != 0)
    uv_close((uv_handle_t *)&t->stop, NULL);
}

/* The host's thread: its loop, its manager; no cmocka calls here. */
static void lt_main(void *arg) {
  loop_thread *t = arg;
  int rv = uv_loop_init(&t->h.loop);
  t->self = uv_thread_self();
  if (rv == 0)
    rv = host_add(&t->h, 0, make_cfg(1), 0);
  if (rv == 0)
    rv = uv_async_init(&t->h.loop, &t->stop, lt_stop);
  t->stop.data = t;
  t->state = rv == 0 ? 1 : -1; /* failed: the test fails, leaks */
  if (rv != 0)
    return;
  uv_run(&t->h.loop, UV_RUN_DEFAULT); /* until the close and stop are done */
  agentws_manager_free(t->h.srv[0].m);
  t->loop_close_rv = uv_loop_close(&t->h.loop);
  t->state = 2;
}

static void test_loop_on_other_thread(void **state) {
  static loop_thread t;
  th_server *s = &t.h.srv[0];
  tc_client c1, c2;
  (void)state;
  memset(&t, 0, sizeof(t));
  s->echo = 1;
  s->test = &t;
  s->on_open = lt_open;
  g_thread = &t;
  OK(uv_thread_create(&t.handle, lt_main, &t));
  t.started = 1;
  TH_WAIT_UNTIL(t.state != 0);
  assert_int_equal(t.state, 1);

  /* Main is only a client (no pump): the host's thread serves. */
  join(NULL, &c1, s->port, "/ws", NULL);
  join(NULL, &c2, s->port, "/ws", NULL);
  OK(tc_echo(&c1, TC_OP_TEXT, "from main", 9));
  OK(tc_echo(&c2, TC_OP_BINARY, "\x01\x02", 2));
  OK(tc_echo(&c1, TC_OP_TEXT, "again", 5));

  OK(uv_async_send(&t.stop));
  assert_int_equal(answer_close(&c1), 1001);
  assert_int_equal(answer_close(&c2), 1001);
  TH_WAIT_UNTIL(t.state == 2);
  uv_thread_join(&t.handle);
  t.started = 0;
  OK(t.close_rv);
  OK(t.loop_close_rv);
  assert_int_equal(t.closed, 1);
  assert_int_equal(t.foreign, 0);
  assert_int_equal(s->n_msg, 3);
  assert_int_equal(s->n_close, 2);
  assert_int_equal(s->bad_manager + s->bad_user_data, 0);
}

/* ------------------------------------ 3: the host's handles untouched */

/* The host's own handles; each one's data is its own counter. */
typedef struct own {
  uv_timer_t timer; /* repeating, 5 ms */
  uv_idle_t idle;
  uv_check_t check;
  uv_async_t async;
  uv_handle_t *h[4]; /* the four above */
  int n[4];          /* times each fired */
} own;

static own *g_own; /* closed by teardown after a failure */

static void bump(uv_handle_t *h) { (*(int *)h->data)++; }
static void on_tick(uv_timer_t *t) { bump((uv_handle_t *)t); }
static void on_idle(uv_idle_t *i) { bump((uv_handle_t *)i); }
static void on_check(uv_check_t *c) { bump((uv_handle_t *)c); }
static void on_async(uv_async_t *a) { bump((uv_handle_t *)a); }
static void own_start(own *o, uv_loop_t *loop) {
  int i;
  memset(o, 0, sizeof(*o));
  o->h[0] = (uv_handle_t *)&o->timer, o->h[1] = (uv_handle_t *)&o->idle;
  o->h[2] = (uv_handle_t *)&o->check, o->h[3] = (uv_handle_t *)&o->async;
  OK(uv_timer_init(loop, &o->timer));
  OK(uv_idle_init(loop, &o->idle));
  OK(uv_check_init(loop, &o->check));
  OK(uv_async_init(loop, &o->async, on_async));
  g_own = o;
  for (i = 0; i < 4; i++)
    o->h[i]->data = &o->n[i];
  OK(uv_timer_start(&o->timer, on_tick, 5, 5));
  OK(uv_idle_start(&o->idle, on_idle));
  OK(uv_check_start(&o->check, on_check));
}

/* Each host handle fires again (3 ticks, idle, check, an async) while
 * |h|'s loop runs. */
static void own_fires(host *h, own *o) {
  int was[4], i;
  memcpy(was, o->n, sizeof(was));
  OK(uv_async_send(&o->async));
  for (i = 0; i < 4; i++)
    TH_RUN_UNTIL(h, o->n[i] >= was[i] + (i == 0 ? 3 : 1));
}

/* uv_walk: every handle left must be one of the host's (|o|), with its
 * own data, still active and referenced. */
static int g_walked, g_foreign, g_changed;

static void walk_cb(uv_handle_t *hd, void *o) {
  int i;
  g_walked++;
  for (i = 0; i < 4 && ((own *)o)->h[i] != hd; i++)
    ;
  if (i == 4)
    g_foreign++;
  else if (hd->data != &((own *)o)->n[i] || uv_is_closing(hd) ||
           !uv_is_active(hd) || !uv_has_ref(hd))
    g_changed++;
}

static void test_host_handles_untouched(void **state) {
  static host h;
  static own o;
  th_server *s = &h.srv[0];
  tc_client c;
  int i;
  (void)state;
  host_init(&h);
  own_start(&o, &h.loop);
  OK(host_add(&h, 0, make_cfg(1), 0));
  s->echo = 1;
  join(&h, &c, s->port, "/ws", NULL);
  OK(tc_echo(&c, TC_OP_TEXT, "hi", 2));
  own_fires(&h, &o);

  /* The client never answers the close, so it lasts close_timeout
   * (500 ms): the host's handles must fire meanwhile. */
  OK(th_close(s));
  assert_int_equal(read_close_code(&c), 1001);
  own_fires(&h, &o);
  assert_int_equal(s->n_closed, 0); /* all the above ran during the close */
  host_wait_closed(&h, 0);
  tc_close(&c);

  /* Only the host's four handles are left, as the host made them. */
  g_walked = g_foreign = g_changed = 0;
  uv_walk(&h.loop, walk_cb, &o);
  assert_int_equal(g_walked, 4);
  assert_int_equal(g_foreign + g_changed, 0);
  assert_true(uv_timer_get_repeat(&o.timer) == 5);
  own_fires(&h, &o);

  for (i = 0; i < 4; i++)
    uv_close(o.h[i], NULL);
  g_own = NULL;
  TH_RUN_UNTIL(&h, !uv_loop_alive(&h.loop));
  host_done(&h);
}

/* -------------------------------------------- 4: no signal handlers */

/* A threaded manager started and stopped, then test 1's two managers on
 * the host loop (clients, emits, a refusal, an abrupt end, closes): no
 * disposition changes at any point. */
static void test_no_signal_handlers(void **state) {
  static sigsnap before;
  static th_server ts; /* the threaded one; th_teardown() stops it */
  agentws_config *cfg = make_cfg(1);
  agentws_callbacks *cbs = th_callbacks();
  tc_client tc;
  sig_snap(&before); /* before any loop or manager exists */
  g_sig_before = &before;
  memset(&ts, 0, sizeof(ts));
  ts.threaded = ts.echo = 1;
  th_track(&ts);
  OK(agentws_manager_new_threaded(&ts.m, cfg, cbs, &ts));
  agentws_config_free(cfg);
  agentws_callbacks_free(cbs);
  OK(agentws_manager_listen(ts.m, "127.0.0.1", 0, &ts.port));
  OK(agentws_manager_start(ts.m));
  join(NULL, &tc, ts.port, "/ws", NULL);
  OK(tc_echo(&tc, TC_OP_TEXT, "threaded", 8));
  sig_check("threaded manager running");
  OK(agentws_manager_stop(ts.m));
  assert_int_equal(read_close_code(&tc), 1001);
  tc_close(&tc);
  agentws_manager_free(ts.m);
  th_track(NULL);
  sig_check("threaded manager stopped");

  test_two_managers_one_loop(state);
  sig_check("after every manager closed");
  g_sig_before = NULL;
}

/* ---------------------------------------------- 5: no global state */

static agentws_config *own_cfg(const char *path, uint64_t max_message,
                               int healthz) {
  agentws_config *cfg = make_cfg(1);
  assert_non_null(cfg);
  OK(agentws_config_set_ws_path(cfg, path));
  OK(agentws_config_set_max_message_size(cfg, max_message));
  OK(agentws_config_set_healthz(cfg, healthz));
  return cfg;
}

/* Two managers at once, each with its own path, message limit,
 * subprotocols and endpoints: neither's options leak into the other. */
static void test_independent_configs(void **state) {
  static const char healthz[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  static host h;
  static uint8_t big[3000];
  th_server *A = &h.srv[0], *B = &h.srv[1];
  agentws_config *cfg;
  tc_client a, a2, b;
  (void)state;
  memset(big, 'z', sizeof(big));
  host_init(&h);
  cfg = own_cfg("/a", 1024, 1);
  OK(agentws_config_add_subprotocol(cfg, "chat-a"));
  OK(host_add(&h, 0, cfg, 0));
  OK(host_add(&h, 1, own_cfg("/b", 65536, 0), 0));
  A->echo = B->echo = 1;

  assert_int_equal(http_status(&h, A->port, upgrade_req("/b")), 404);
  assert_int_equal(http_status(&h, B->port, upgrade_req("/a")), 404);
  assert_int_equal(http_status(&h, A->port, upgrade_req("/ws")), 404);
  assert_int_equal(http_status(&h, A->port, healthz), 200);
  assert_int_equal(http_status(&h, B->port, healthz), 404);
  join(&h, &a, A->port, "/a", "chat-a");
  join(&h, &b, B->port, "/b", "chat-a");
  assert_string_equal(a.protocol, "chat-a");
  assert_string_equal(b.protocol, ""); /* B was never told of it */

  /* 3000 bytes: B takes them while A refuses them with 1009. */
  OK(tc_echo(&b, TC_OP_BINARY, big, sizeof(big)));
  OK(tc_send_frame(&a, TC_OP_BINARY, big, sizeof(big)));
  assert_int_equal(answer_close(&a), AGENTWS_CLOSE_MESSAGE_TOO_BIG);
  OK(tc_echo(&b, TC_OP_BINARY, big, sizeof(big)));
  /* A's limit is A's own, not the smaller of the two. */
  join(&h, &a2, A->port, "/a", NULL);
  OK(tc_echo(&a2, TC_OP_BINARY, big, 1000));
  TH_RUN_UNTIL(&h, A->n_close == 1);
  assert_int_equal(A->close_code, AGENTWS_CLOSE_MESSAGE_TOO_BIG);
  assert_int_equal(B->n_close, 0);

  host_close_all(&h, (tc_client *[]){&a2, &b}, 2);
}

/* ----------------------------- 6: no output unless a log hook is set */

/* What a server meets and could be tempted to print about: refused
 * handshakes (401, 404, 400, and 401 from the host's hook), a slow
 * consumer (1013), a lifecycle violation, bad frames (1002, 1007, 1009),
 * abuse (1008) and the close of both managers. |flags| may add on_log. */
static void noisy_scenario(host *h, int flags) {
  static const uint8_t unmasked[] = {0x81, 0x02, 'h', 'i'};
  static char pad[1024], big[5000];
  agentws_config *cfg = make_cfg(0);
  th_server *P = &h->srv[0], *Q = &h->srv[1];
  tc_client slow, c1, c2, c3, c4, stay;
  int i;
  memset(pad, 'p', sizeof(pad));
  memset(big, 'b', sizeof(big));
  assert_non_null(cfg);
  OK(agentws_config_set_socket_send_buffer(cfg, 4096));
  OK(agentws_config_set_max_queued_bytes(cfg, 16384));
  OK(agentws_config_set_backlog_events(cfg, 8));
  OK(agentws_config_set_max_message_size(cfg, 4096));
  OK(agentws_config_set_max_client_message(cfg, 1024));
  host_init(h);
  OK(host_add(h, 0, make_cfg(0), flags)); /* no auth at all: every ws is 401 */
  OK(host_add(h, 1, cfg, flags | F_AUTH));

  assert_int_equal(http_status(h, P->port, upgrade_req("/ws")), 401);
  assert_int_equal(http_status(h, P->port, upgrade_req("/nope")), 404);
  assert_int_equal(
      http_status(h, P->port, "GET /ws HTTP/1.1\r\nno colon\r\n\r\n"), 400);
  assert_int_equal(http_status(h, Q->port, upgrade_req("/ws")), 401);

  /* A client that never reads soon owes more than max_queued_bytes. */
  join(h, &slow, Q->port, "/ws?user=slow", NULL);
  OK(agentws_emit_agent_started(Q->m, USER, "slow", "r", "a", NULL));
  for (i = 0; i < 400; i++) {
    OK(agentws_emit_agent_thinking(Q->m, USER, "slow", "r", pad, sizeof(pad),
                                   NULL));
    uv_run(&h->loop, UV_RUN_NOWAIT);
  }
  OK(agentws_emit_tool_completed(
      Q->m, USER, "slow", "r", "t", "never-started", 1, 1,
      NULL)); /* orphan_tool_result under warn: a violation */
  TH_RUN_UNTIL(h, Q->n_close == 1);
  assert_int_equal(Q->close_code, AGENTWS_CLOSE_TRY_AGAIN_LATER);
  tc_close(&slow);

  join(h, &c1, Q->port, "/ws?user=c1", NULL);
  OK(tc_send_all(&c1, unmasked, sizeof(unmasked)));
  assert_int_equal(answer_close(&c1), AGENTWS_CLOSE_PROTOCOL_ERROR);
  join(h, &c2, Q->port, "/ws?user=c2", NULL);
  OK(tc_send_frame(&c2, TC_OP_TEXT, "\xff", 1));
  assert_int_equal(answer_close(&c2), AGENTWS_CLOSE_INVALID_PAYLOAD);
  join(h, &c3, Q->port, "/ws?user=c3", NULL);
  OK(tc_send_frame(&c3, TC_OP_TEXT, big, sizeof(big)));
  assert_int_equal(answer_close(&c3), AGENTWS_CLOSE_MESSAGE_TOO_BIG);
  join(h, &c4, Q->port, "/ws?user=c4", NULL);
  for (i = 0; i < 20; i++) /* not JSON: error messages, then 1008 */
    OK(tc_send_frame(&c4, TC_OP_TEXT, "nope", 4));
  assert_int_equal(answer_close(&c4), AGENTWS_CLOSE_POLICY_VIOLATION);

  join(h, &stay, Q->port, "/ws?user=stay", NULL);
  expect_text(&stay, "\"welcome\"");
  host_close_all(h, (tc_client *[]){&stay}, 1);
}

static void test_no_output_without_log_hook(void **state) {
  static host h;
  (void)state;
  capture(1);
  noisy_scenario(&h, 0);
  capture(0);
  expect_silent("no log hook");

  /* A hook gets the lines; the streams still get nothing. */
  g_log[0] = '\0';
  g_log_lines = 0;
  capture(1);
  noisy_scenario(&h, F_LOG);
  capture(0);
  expect_silent("with on_log");
  assert_true(g_log_lines > 0);
  if (!strstr(g_log, "slow consumer (1013)") ||
      !strstr(g_log, "too many bad messages") || !strstr(g_log, "violation"))
    fail_msg("on_log missed lines of the scenario:\n%s", g_log);
}

/* A dev_insecure manager's life on the host loop, captured from before
 * its creation: one client, one event, closed. */
static void dev_scenario(host *h, int flags) {
  agentws_config *cfg = make_cfg(0);
  tc_client c;
  assert_non_null(cfg);
  OK(agentws_config_set_dev_insecure(cfg, 1));
  capture(1);
  host_init(h);
  OK(host_add(h, 0, cfg, flags));
  join(h, &c, h->srv[0].port, "/ws?user=dev", NULL);
  expect_text(&c, "\"welcome\"");
  OK(note(h->srv[0].m, "dev", NULL));
  expect_text(&c, "\"note\"");
  host_close_all(h, (tc_client *[]){&c}, 1);
  capture(0);
}

/* The documented exception: dev_insecure without on_log (and without
 * on_authenticate, which makes dev mode moot) writes exactly one warning
 * line to stderr, and only then. */
static void test_dev_insecure_warning(void **state) {
  static const char warning[] = "agentws: WARNING: insecure development "
                                "mode: the user id is taken from ?user= "
                                "without any authentication\n";
  static host h;
  (void)state;
  dev_scenario(&h, 0);
  if (g_out[0][0] != '\0' || strcmp(g_out[1], warning) != 0)
    fail_msg("expected only the warning: stdout \"%s\", stderr \"%s\"",
             g_out[0], g_out[1]);
  g_log[0] = '\0';
  dev_scenario(&h, F_LOG);
  expect_silent("dev_insecure with on_log");
  assert_non_null(strstr(g_log, "insecure development mode"));
  dev_scenario(&h, F_AUTH);
  expect_silent("dev_insecure with on_authenticate");
}

/* ------------------------------------------------------------ teardown */

/* After a failure: the real streams back (with what they missed), the
 * host thread joined, managers freed, the host's handles and loop
 * closed, then the harness's own cleanup. */
static int teardown(void **state) {
  host *h = g_host;
  uint64_t deadline = tc_now_ms() + 6000; /* > close_timeout */
  int i;
  g_sig_before = NULL;
  if (g_thread != NULL && g_thread->started) { /* stop and join it */
    if (g_thread->state == 1)
      uv_async_send(&g_thread->stop);
    uv_thread_join(&g_thread->handle);
  }
  g_thread = NULL;
  if (g_cap.on) {
    capture(0);
    fprintf(stderr, "captured stdout: %s\ncaptured stderr: %s\n", g_out[0],
            g_out[1]);
  }
  g_host = NULL;
  for (i = 0; h != NULL && i < 2; i++) {
    agentws_manager_free(h->srv[i].m); /* closes; released once closed */
    h->srv[i].m = NULL;
  }
  for (i = 0; g_own != NULL && i < 4; i++)
    if (!uv_is_closing(g_own->h[i]))
      uv_close(g_own->h[i], NULL);
  g_own = NULL;
  while (h != NULL && uv_loop_alive(&h->loop) && tc_now_ms() < deadline) {
    uv_run(&h->loop, UV_RUN_NOWAIT);
    tc_sleep_ms(1);
  }
  if (h != NULL && uv_loop_close(&h->loop) != 0)
    uv_print_all_handles(&h->loop, stderr);
  return th_teardown(state);
}

#define TEST(f) cmocka_unit_test_teardown(f, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(test_two_managers_one_loop),  TEST(test_loop_on_other_thread),
      TEST(test_host_handles_untouched), TEST(test_no_signal_handlers),
      TEST(test_independent_configs),    TEST(test_no_output_without_log_hook),
      TEST(test_dev_insecure_warning),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
