/*
 * Allocation failure (issue 9 item 4): the manager allocates through the
 * host's hook (agentws_config_set_allocator), and here the Nth allocation
 * of a whole scenario fails, for N = 1, 2, 3, ... until a run sees no
 * failure at all. The scenario: manager and listener, a witness
 * connection, a user's connection with a full run, a room, a drop and a
 * resume with offline events, close. Each failure must surface as an
 * error code, a refused handshake or one closed connection; never a
 * crash, a hang, a leak (the hook counts live blocks; ASan checks the
 * rest) or a change to the witness, which must still get its event.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"
#include "client.h"
#include "harness.h"
#include "../unit/jwt_fixtures.h"

#define USER AGENTWS_TARGET_USER
#define ROOM AGENTWS_TARGET_ROOM
#define MAX_N 20000      /* bound on the failure index */
#define MAX_SECONDS 240  /* bound on the whole sweep */
#define WAIT_MS 3000     /* a message that must come */

/* ------------------------------------------------------------ the hook */

/* Blocks carry their size in front so realloc and the live count work. */
#define HDR 16

typedef struct failing {
  atomic_long n;       /* allocations asked for */
  long fail_at;        /* this one returns NULL (0: none) */
  atomic_int failed;   /* it happened */
  atomic_long live;    /* blocks not freed */
} failing;

/* A place for a debugger's breakpoint: the injected failure. */
__attribute__((noinline)) void alloc_failed_here(long k);
__attribute__((noinline)) void alloc_failed_here(long k) {
  __asm__ volatile("" ::"r"(k) : "memory");
}

static int should_fail(failing *f) {
  long k = atomic_fetch_add(&f->n, 1) + 1;
  if (f->fail_at != 0 && k == f->fail_at) {
    atomic_store(&f->failed, 1);
    alloc_failed_here(k);
    return 1;
  }
  return 0;
}

static void *f_malloc(size_t size, void *ud) {
  failing *f = ud;
  unsigned char *p;
  if (should_fail(f) || size > SIZE_MAX - HDR)
    return NULL;
  p = malloc(size + HDR);
  if (p == NULL)
    return NULL;
  memcpy(p, &size, sizeof(size));
  atomic_fetch_add(&f->live, 1);
  return p + HDR;
}

static void f_free(void *ptr, void *ud) {
  failing *f = ud;
  if (ptr == NULL)
    return;
  atomic_fetch_sub(&f->live, 1);
  free((unsigned char *)ptr - HDR);
}

static void *f_calloc(size_t nmemb, size_t size, void *ud) {
  void *p;
  if (size != 0 && nmemb > SIZE_MAX / size)
    return NULL;
  p = f_malloc(nmemb * size, ud);
  if (p != NULL)
    memset(p, 0, nmemb * size);
  return p;
}

static void *f_realloc(void *ptr, size_t size, void *ud) {
  failing *f = ud;
  unsigned char *p;
  if (ptr == NULL)
    return f_malloc(size, ud);
  if (should_fail(f) || size > SIZE_MAX - HDR)
    return NULL;
  p = realloc((unsigned char *)ptr - HDR, size + HDR);
  if (p == NULL)
    return NULL;
  memcpy(p, &size, sizeof(size));
  return p + HDR;
}

/* ------------------------------------------------------- the scenario */

static long g_n; /* the failing allocation of the current run, for messages */

static void quiet_log(agentws_manager *m, int level, const char *msg,
                      void *user_data) {
  (void)m, (void)level, (void)msg, (void)user_data;
}

static void with_log(agentws_callbacks *cbs) {
  agentws_callbacks_set_on_log(cbs, quiet_log);
}

/* How a connection attempt or a wait ended. */
enum { OK = 0, REFUSED, CLOSED };

typedef struct outcome {
  int setup_failed;   /* manager_new or listen returned NOMEM */
  int emit_nomem;     /* emits that returned AGENTWS_ERR_NOMEM */
  int refused;        /* handshakes answered with a 5xx (or cut) */
  int closed;         /* connections closed by the server */
  int dropped;        /* events counted as dropped for memory */
} outcome;

static uint64_t dropped_nomem(agentws_manager *m) {
  agentws_stats *st = NULL;
  uint64_t v = 0;
  if (agentws_stats_new(&st) != 0)
    fail_msg("stats_new");
  if (agentws_manager_get_stats(m, st) == 0)
    v = agentws_stats_get(st, AGENTWS_STAT_DROPPED_NOMEM);
  agentws_stats_free(st);
  return v;
}

/* Accepts 0 or NOMEM from a call that allocates. */
static void ok_or_nomem(int rv, outcome *o, const char *what) {
  if (rv == AGENTWS_ERR_NOMEM)
    o->emit_nomem++;
  else if (rv != 0)
    fail_msg("%s: %d (%s)", what, rv, agentws_err_name(rv));
}

/* The next text message, or CLOSED if the server closed the connection
 * (close frame with 1011 or 1001, or EOF). |*out| is malloc'd. */
static int next_text(tc_client *c, char **out, int timeout_ms) {
  for (;;) {
    tc_frame f;
    int r = tc_read_frame(c, &f, timeout_ms);
    if (r == TC_EOF)
      return CLOSED;
    if (r == TC_TIMEOUT)
      return TC_TIMEOUT;
    if (r != 0)
      fail_msg("read failed (%d)", r);
    if (f.opcode == TC_OP_PING || f.opcode == TC_OP_PONG) {
      tc_frame_free(&f);
      continue;
    }
    if (f.opcode == TC_OP_CLOSE) {
      int code = f.len >= 2 ? (f.data[0] << 8 | f.data[1]) : 1005;
      tc_frame_free(&f);
      if (code != AGENTWS_CLOSE_INTERNAL_ERROR &&
          code != AGENTWS_CLOSE_GOING_AWAY)
        fail_msg("closed with %d", code);
      return CLOSED;
    }
    if (f.opcode != TC_OP_TEXT || !f.fin)
      fail_msg("unexpected opcode %d", f.opcode);
    *out = (char *)f.data;
    return OK;
  }
}

/* Connects |path|; on 101 reads the welcome into |welcome| (may be NULL). */
static int try_connect(th_server *s, tc_client *c, const char *path,
                       char *welcome, size_t cap, outcome *o) {
  char *w = NULL;
  int r;
  if (tc_connect(c, "127.0.0.1", s->port, th_pump, s) != 0)
    fail_msg("tcp connect failed");
  r = tc_upgrade(c, path, NULL);
  if (r != 0) {
    /* Refused for memory: a 5xx head, or the connection cut. */
    if (!(r == TC_EOF || strncmp(c->head, "HTTP/1.1 5", 10) == 0))
      fail_msg("upgrade %s: %d %.200s", path, r, c->head);
    o->refused++;
    tc_close(c);
    return REFUSED;
  }
  r = next_text(c, &w, WAIT_MS);
  if (r == CLOSED) {
    o->closed++;
    tc_close(c);
    return CLOSED;
  }
  if (r != OK)
    fail_msg("N=%ld: no welcome on %s", g_n, path);
  if (strncmp(w, "{\"type\":\"welcome\"", 17) != 0)
    fail_msg("not a welcome: %.200s", w);
  if (welcome != NULL)
    snprintf(welcome, cap, "%s", w);
  free(w);
  return OK;
}

/* The unsigned number after "key": in |json|, or 0. */
static uint64_t num(const char *json, const char *key) {
  char pat[40];
  const char *p;
  snprintf(pat, sizeof(pat), "\"%s\":", key);
  p = strstr(json, pat);
  return p != NULL ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

/* Reads events until one of |last_type| arrives: every event's seq is
 * above the previous one. Returns OK, or CLOSED. A wait that times out is
 * a failure unless events were dropped for memory (counted). */
static int read_until(th_server *s, tc_client *c, const char *last_type,
                      uint64_t *seq, uint64_t drops_before, outcome *o) {
  char prefix[64];
  snprintf(prefix, sizeof(prefix), "{\"type\":\"%s\"", last_type);
  for (;;) {
    char *m = NULL;
    int r = next_text(c, &m, WAIT_MS);
    if (r == CLOSED) {
      o->closed++;
      tc_close(c);
      return CLOSED;
    }
    if (r == TC_TIMEOUT) {
      if (dropped_nomem(s->m) > drops_before) {
        o->dropped++;
        return OK; /* the awaited event was dropped, and counted */
      }
      fail_msg("N=%ld: no %s within %d ms", g_n, last_type, WAIT_MS);
    }
    if (strncmp(m, "{\"type\":\"gap\"", 13) != 0) {
      uint64_t sq = num(m, "seq");
      if (sq != 0 && sq <= *seq)
        fail_msg("seq %llu after %llu: %.200s", (unsigned long long)sq,
                 (unsigned long long)*seq, m);
      if (sq != 0)
        *seq = sq;
    }
    r = strncmp(m, prefix, strlen(prefix)) == 0;
    free(m);
    if (r)
      return OK;
  }
}

/* A run for user "a": the five lifecycle events and a marker. */
static void emit_run(agentws_manager *m, int target, const char *id,
                     const char *run, outcome *o) {
  ok_or_nomem(agentws_emit_agent_started(m, target, id, run, "bot", NULL), o,
              "agent_started");
  ok_or_nomem(agentws_emit_agent_thinking(m, target, id, run, "hello ", 6,
                                          NULL),
              o, "agent_thinking");
  ok_or_nomem(agentws_emit_tool_executing(m, target, id, run, "search", "t1",
                                          "{\"q\":\"x\"}"),
              o, "tool_executing");
  ok_or_nomem(agentws_emit_tool_completed(m, target, id, run, "search", "t1",
                                          1, 3, "{\"hits\":1}"),
              o, "tool_completed");
  ok_or_nomem(agentws_emit_agent_completed(m, target, id, run, 9, NULL, NULL),
              o, "agent_completed");
}

/* The marker: retried once if the emit itself hit the failure. */
static void emit_marker(agentws_manager *m, int target, const char *id,
                        outcome *o) {
  int rv = agentws_emit_custom(m, target, id, "t.end", NULL, NULL);
  if (rv == AGENTWS_ERR_NOMEM) {
    o->emit_nomem++;
    rv = agentws_emit_custom(m, target, id, "t.end", NULL, NULL);
  }
  if (rv != 0)
    fail_msg("marker: %d", rv);
}

/* Who connects how: dev mode (?user=) or HS256 tokens in the query. */
typedef struct mode {
  const char *name;
  int jwt;
  const char *w_query, *w_user; /* the witness */
  const char *a_query, *a_user; /* the user whose connection is exercised */
} mode;

static const mode dev_mode = {"dev", 0, "user=w", "w", "user=a", "a"};
static const mode jwt_mode = {"jwt", 1, "access_token=" JWTF_TOK_HS256_BOB,
                              "bob", "access_token=" JWTF_TOK_HS256, "alice"};

static agentws_config *scenario_cfg(failing *f, const mode *md) {
  agentws_config *cfg = NULL;
  assert_int_equal(agentws_config_new(&cfg), 0);
  if (md->jwt) {
    agentws_keyset *ks = NULL;
    assert_int_equal(agentws_keyset_new(&ks), 0);
    assert_int_equal(agentws_keyset_add_secret(
                         ks, "hs1", (const uint8_t *)JWTF_HS_SECRET,
                         strlen(JWTF_HS_SECRET)),
                     0);
    assert_int_equal(agentws_config_set_jwt_keys(cfg, ks), 0);
    agentws_keyset_free(ks);
    assert_int_equal(agentws_config_set_jwt_issuer(cfg, JWTF_ISS), 0);
    assert_int_equal(agentws_config_set_jwt_audience(cfg, JWTF_AUD), 0);
    assert_int_equal(agentws_config_set_token_sources(cfg, "header,query"),
                     0);
  } else {
    assert_int_equal(agentws_config_set_dev_insecure(cfg, 1), 0);
  }
  assert_int_equal(agentws_config_set_ping_interval_ms(cfg, 0), 0);
  assert_int_equal(agentws_config_set_close_timeout_ms(cfg, 500), 0);
  assert_int_equal(agentws_config_set_log_level(cfg, 0), 0);
  assert_int_equal(
      agentws_config_set_allocator(cfg, f_malloc, f_free, f_calloc,
                                   f_realloc, f),
      0);
  return cfg;
}

static void record_open(th_server *s, uint64_t id) { s->open_id = id; }

/* One run of the scenario with allocation |n| failing (0: none). */
static void scenario(const mode *md, failing *f, long n, outcome *o) {
  static th_server s;
  agentws_config *cfg;
  tc_client w, a, a2;
  char welcome[512], epoch[64] = "", path[2048], wpath[1024], apath[1024];
  uint64_t seq = 0, wseq = 0, drops;
  int witness, ra, rv;
  const char *p;
  memset(f, 0, sizeof(*f));
  memset(o, 0, sizeof(*o));
  f->fail_at = n;
  g_n = n;
  cfg = scenario_cfg(f, md);
  snprintf(wpath, sizeof(wpath), "/ws?%s", md->w_query);
  snprintf(apath, sizeof(apath), "/ws?%s", md->a_query);
  rv = th_start_with(&s, cfg, with_log);
  agentws_config_free(cfg);
  if (rv != 0) {
    if (rv != AGENTWS_ERR_NOMEM)
      fail_msg("start: %d (%s)", rv, agentws_err_name(rv));
    o->setup_failed = 1;
    if (s.m != NULL) {
      th_finish(&s);
    } else {
      TH_RUN_UNTIL(&s, !uv_loop_alive(&s.loop));
      th_loop_close(&s);
    }
    assert_int_equal(atomic_load(&f->live), 0);
    return;
  }
  s.on_open = record_open;

  /* The witness: fully up before the failure, it must not notice it. */
  witness = try_connect(&s, &w, wpath, welcome, sizeof(welcome), o) ==
                OK &&
            !atomic_load(&f->failed);
  if (witness)
    wseq = num(welcome, "seq");

  /* User a: a full run, a room event, a drop, offline events, resume. */
  ra = try_connect(&s, &a, apath, welcome, sizeof(welcome), o);
  if (ra == OK) {
    uint64_t conn = s.open_id;
    p = strstr(welcome, "\"epoch\":\"");
    if (p != NULL)
      sscanf(p + 9, "%63[^\"]", epoch);
    drops = dropped_nomem(s.m);
    emit_run(s.m, USER, md->a_user, "r1", o);
    emit_marker(s.m, USER, md->a_user, o);
    ra = read_until(&s, &a, "t.end", &seq, drops, o);
    /* Inbound messages: ping, ack, one that is not JSON. */
    if (ra == OK && tc_send_frame(&a, TC_OP_TEXT, "{\"type\":\"ping\"}", 15) == 0)
      ra = read_until(&s, &a, "pong", &(uint64_t){0}, drops, o);
    if (ra == OK) {
      char ack[64];
      int k = snprintf(ack, sizeof(ack), "{\"type\":\"ack\",\"seq\":%llu}",
                       (unsigned long long)seq);
      if (tc_send_frame(&a, TC_OP_TEXT, ack, (size_t)k) != 0 ||
          tc_send_frame(&a, TC_OP_TEXT, "nope", 4) != 0)
        fail_msg("send failed");
      ra = read_until(&s, &a, "error", &(uint64_t){0}, drops, o);
    }
    if (ra == OK) {
      rv = agentws_room_add(s.m, conn, "room1");
      if (rv == 0) {
        drops = dropped_nomem(s.m);
        ok_or_nomem(agentws_emit_custom(s.m, ROOM, "room1", "t.room", NULL,
                                        "{\"k\":1}"),
                    o, "room emit");
        emit_marker(s.m, ROOM, "room1", o);
        ra = read_until(&s, &a, "t.end", &(uint64_t){0}, drops, o);
      } else if (rv != AGENTWS_ERR_NOMEM) {
        fail_msg("room_add: %d", rv);
      }
    }
    if (ra == OK) {
      tc_send_close(&a, 1000, "bye");
      tc_wait_eof(&a, WAIT_MS);
      tc_close(&a);
    }
  }
  /* Offline events, then a resume from the last seq seen. */
  emit_run(s.m, USER, md->a_user, "r2", o);
  emit_marker(s.m, USER, md->a_user, o);
  snprintf(path, sizeof(path), "%s&epoch=%s&last_seq=%llu", apath, epoch,
           (unsigned long long)seq);
  drops = dropped_nomem(s.m);
  if (try_connect(&s, &a2, epoch[0] != '\0' ? path : apath, welcome,
                  sizeof(welcome), o) == OK) {
    /* Without a usable epoch it starts at the live edge: nothing to
     * replay, so only a live marker can be awaited. */
    if (epoch[0] == '\0' || strstr(welcome, "\"recovered\":true") == NULL)
      emit_marker(s.m, USER, md->a_user, o);
    if (read_until(&s, &a2, "t.end", &seq, drops, o) == OK)
      tc_close(&a2);
  }

  /* The witness saw nothing so far and gets its event now. */
  if (witness) {
    char *m = NULL;
    uint64_t got;
    /* Its own emit may be the one that fails: an error, then a retry. */
    rv = agentws_emit_custom(s.m, USER, md->w_user, "t.w", NULL, NULL);
    if (rv == AGENTWS_ERR_NOMEM)
      rv = agentws_emit_custom(s.m, USER, md->w_user, "t.w", NULL, NULL);
    assert_int_equal(rv, 0);
    if (next_text(&w, &m, WAIT_MS) != OK)
      fail_msg("the witness lost its connection (failure %ld)", n);
    got = num(m, "seq");
    if (strncmp(m, "{\"type\":\"t.w\"", 12) != 0 || got != wseq + 1)
      fail_msg("the witness got %.200s (failure %ld)", m, n);
    free(m);
  }
  if (w.fd >= 0)
    tc_close(&w);
  th_finish(&s);
  if (atomic_load(&f->live) != 0)
    fail_msg("failure %ld: %ld blocks leaked", n,
             (long)atomic_load(&f->live));
}

/* The sweep: N = 1, 2, ... until a run needs fewer than N allocations. */
static void sweep(const mode *md) {
  static failing f;
  outcome o, sum;
  uint64_t t0 = tc_now_ms();
  long n, total;
  memset(&sum, 0, sizeof(sum));
  scenario(md, &f, 0, &o); /* no failure: the scenario's allocation count */
  total = (long)atomic_load(&f.n);
  assert_true(total > 50);
  assert_int_equal(o.refused + o.closed + o.emit_nomem + o.dropped, 0);
  for (n = 1; n <= MAX_N; n++) {
    scenario(md, &f, n, &o);
    if (!atomic_load(&f.failed))
      break; /* past the last allocation */
    sum.setup_failed += o.setup_failed;
    sum.emit_nomem += o.emit_nomem;
    sum.refused += o.refused;
    sum.closed += o.closed;
    sum.dropped += o.dropped;
    if (tc_now_ms() - t0 > MAX_SECONDS * 1000u) {
      print_message("time bound reached at N=%ld of about %ld\n", n, total);
      break;
    }
  }
  print_message("%s: allocation failures injected: %ld (a clean run makes "
                "%ld allocations); setup failed %d, emit NOMEM %d, refused "
                "%d, closed %d, dropped-and-counted %d; %.1f s\n",
                md->name, n - 1, total, sum.setup_failed, sum.emit_nomem, sum.refused,
                sum.closed, sum.dropped, (double)(tc_now_ms() - t0) / 1000);
  assert_true(n > total / 2);
}

static void test_every_allocation_fails_once_dev(void **state) {
  (void)state;
  sweep(&dev_mode);
}

static void test_every_allocation_fails_once_jwt(void **state) {
  (void)state;
  sweep(&jwt_mode);
}

/* Half a hook is refused; all NULL restores malloc. */
static void test_allocator_arguments(void **state) {
  agentws_config *cfg = NULL;
  failing f;
  (void)state;
  memset(&f, 0, sizeof(f));
  assert_int_equal(agentws_config_set_allocator(NULL, f_malloc, f_free,
                                                f_calloc, f_realloc, &f),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(
      agentws_config_set_allocator(cfg, f_malloc, NULL, f_calloc, f_realloc,
                                   &f),
      AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(
      agentws_config_set_allocator(cfg, NULL, NULL, NULL, NULL, NULL), 0);
  agentws_config_free(cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_allocator_arguments),
      TH_TEST(test_every_allocation_fails_once_dev),
      TH_TEST(test_every_allocation_fails_once_jwt),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
