/*
 * Steady state (issue 8): once backlogs are full and pools and caches are
 * warm, delivering events allocates nothing. The manager allocates through
 * a counting hook (agentws_config_set_allocator); 8 connections of 4 users,
 * all in one room, receive room and per-user events in rounds, read by
 * real clients over loopback. After warm-up rounds the count over the
 * measured rounds must stay at 0 per delivered event (a small slack covers
 * a cache refill, never one allocation per event or per delivery).
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

#define USERS 4
#define PER_USER 2
#define CONNS (USERS * PER_USER)
#define ROOM_EVENTS 32 /* per round, to the room */
#define USER_EVENTS 2  /* per round, to each user */
#define WARM_ROUNDS 40 /* fills every 64-event backlog (2 a round) */
#define ROUNDS 50

static atomic_long n_alloc;

static void *count_malloc(size_t size, void *ud) {
  (void)ud;
  atomic_fetch_add(&n_alloc, 1);
  return malloc(size);
}
static void count_free(void *p, void *ud) {
  (void)ud;
  free(p);
}
static void *count_calloc(size_t n, size_t size, void *ud) {
  (void)ud;
  atomic_fetch_add(&n_alloc, 1);
  return calloc(n, size);
}
static void *count_realloc(void *p, size_t size, void *ud) {
  (void)ud;
  atomic_fetch_add(&n_alloc, 1);
  return realloc(p, size);
}

typedef struct opened {
  uint64_t ids[CONNS];
  int n;
} opened;

static void record_open(th_server *s, uint64_t id) {
  opened *o = s->test;
  if (o->n < CONNS)
    o->ids[o->n++] = id;
}

/* Next text message, pings skipped; caller frees. */
static char *read_text(tc_client *c) {
  char *m;
  int r = tc_read_text(c, &m, TC_TIMEOUT_MS);
  if (r != 0)
    fail_msg("no text message (%d)", r);
  return m;
}

static uint64_t json_u64(const char *json, const char *key) {
  char pat[64];
  const char *p;
  snprintf(pat, sizeof(pat), "\"%s\":", key);
  p = strstr(json, pat);
  if (p == NULL)
    fail_msg("no %s in %.300s", key, json);
  return strtoull(p + strlen(pat), NULL, 10);
}

/* One round: the room's events, then each user's; every connection reads
 * all of its own, in order, from each stream's expected next seq. */
static void round_trip(th_server *s, tc_client *c, uint64_t *room_seq,
                       uint64_t *user_seq) {
  char data[192];
  int i, u, k;
  for (i = 0; i < ROOM_EVENTS; i++) {
    snprintf(data, sizeof(data), "{\"n\":%d,\"pad\":\"%0120d\"}", i, 0);
    assert_int_equal(agentws_emit_custom(s->m, AGENTWS_TARGET_ROOM, "R",
                                         "room.ev", NULL, data),
                     0);
  }
  for (u = 0; u < USERS; u++) {
    char user[16];
    snprintf(user, sizeof(user), "u%d", u);
    for (i = 0; i < USER_EVENTS; i++) {
      snprintf(data, sizeof(data), "{\"n\":%d}", i);
      assert_int_equal(agentws_emit_custom(s->m, AGENTWS_TARGET_USER, user,
                                           "user.ev", NULL, data),
                       0);
    }
  }
  for (k = 0; k < CONNS; k++) {
    int u_of = k / PER_USER, room_left = ROOM_EVENTS, user_left = USER_EVENTS;
    while (room_left + user_left > 0) {
      char *m = read_text(&c[k]);
      if (strncmp(m, "{\"type\":\"room.ev\"", 17) == 0) {
        assert_int_equal(json_u64(m, "seq"),
                         room_seq[k] + 1);
        room_seq[k]++;
        room_left--;
      } else if (strncmp(m, "{\"type\":\"user.ev\"", 17) == 0) {
        assert_int_equal(json_u64(m, "seq"), user_seq[u_of * PER_USER +
                                                      k % PER_USER] + 1);
        user_seq[u_of * PER_USER + k % PER_USER]++;
        user_left--;
      } else {
        fail_msg("unexpected message on connection %d: %.300s", k, m);
      }
      if (room_left < 0 || user_left < 0)
        fail_msg("too many events on connection %d", k);
      free(m);
    }
  }
}

static void test_delivery_allocates_nothing(void **state) {
  static th_server s;
  static opened o;
  agentws_config *cfg = NULL;
  tc_client c[CONNS];
  uint64_t room_seq[CONNS], user_seq[CONNS];
  long before, used;
  int i, k;
  (void)state;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_dev_insecure(cfg, 1), 0);
  assert_int_equal(agentws_config_set_ping_interval_ms(cfg, 0), 0);
  assert_int_equal(agentws_config_set_backlog_events(cfg, 64), 0);
  assert_int_equal(agentws_config_set_allocator(cfg, count_malloc, count_free,
                                                count_calloc, count_realloc,
                                                NULL),
                   0);
  memset(&s, 0, sizeof(s));
  memset(&o, 0, sizeof(o));
  assert_int_equal(th_start(&s, cfg), 0);
  agentws_config_free(cfg);
  s.test = &o;
  s.on_open = record_open;
  for (k = 0; k < CONNS; k++) {
    char path[64];
    char *w;
    snprintf(path, sizeof(path), "/ws?user=u%d", k / PER_USER);
    if (tc_connect(&c[k], "127.0.0.1", s.port, th_pump, &s) != 0)
      fail_msg("connect failed");
    if (tc_upgrade(&c[k], path, NULL) != 0)
      fail_msg("upgrade %s failed: %s", path, c[k].head);
    w = read_text(&c[k]);
    if (strncmp(w, "{\"type\":\"welcome\"", 17) != 0)
      fail_msg("not a welcome: %.300s", w);
    user_seq[k] = json_u64(w, "seq"); /* the user stream's live edge */
    free(w);
  }
  for (i = 0; i < 200 && o.n < CONNS; i++)
    th_pump(&s);
  assert_int_equal(o.n, CONNS);
  for (k = 0; k < CONNS; k++) {
    char *m;
    assert_int_equal(agentws_room_add(s.m, o.ids[k], "R"), 0);
    m = read_text(&c[k]); /* "joined", with the room stream's edge */
    if (strstr(m, "\"joined\"") == NULL)
      fail_msg("expected joined: %.300s", m);
    room_seq[k] = json_u64(m, "seq");
    free(m);
  }
  for (i = 0; i < WARM_ROUNDS; i++)
    round_trip(&s, c, room_seq, user_seq);
  before = atomic_load(&n_alloc);
  for (i = 0; i < ROUNDS; i++)
    round_trip(&s, c, room_seq, user_seq);
  used = atomic_load(&n_alloc) - before;
  {
    long emitted = (long)ROUNDS * (ROOM_EVENTS + USERS * USER_EVENTS);
    long delivered =
        (long)ROUNDS * CONNS * (ROOM_EVENTS + USER_EVENTS);
    print_message("steady state: %ld allocations for %ld events emitted, "
                  "%ld delivered\n",
                  used, emitted, delivered);
    /* At most one cache refill per connection over the whole run. */
    if (used > CONNS)
      fail_msg("%ld allocations in the steady state (%ld emitted, %ld "
               "delivered)",
               used, emitted, delivered);
  }
  for (k = 0; k < CONNS; k++)
    tc_close(&c[k]);
  th_finish(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(test_delivery_allocates_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
