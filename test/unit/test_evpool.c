/* Unit tests for the event block pool (lib/agentws_evpool.c), with a
 * counting allocator: what is reused, what is kept, and that everything
 * the pool took goes back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"
#include "agentws_codec.h"
#include "agentws_evpool.h"

typedef struct counts {
  uv_mutex_t lock;
  size_t mallocs, frees;
} counts;

static void *c_malloc(size_t size, void *ud) {
  counts *c = ud;
  uv_mutex_lock(&c->lock);
  c->mallocs++;
  uv_mutex_unlock(&c->lock);
  return malloc(size);
}

static void c_free(void *p, void *ud) {
  counts *c = ud;
  if (p == NULL)
    return;
  uv_mutex_lock(&c->lock);
  c->frees++;
  uv_mutex_unlock(&c->lock);
  free(p);
}

static void *c_calloc(size_t n, size_t size, void *ud) {
  void *p = c_malloc(n * size, ud);
  if (p != NULL)
    memset(p, 0, n * size);
  return p;
}

static void *c_realloc(void *p, size_t size, void *ud) {
  (void)p, (void)size, (void)ud;
  fail_msg("the pool never reallocates");
  return NULL;
}

typedef struct fixture {
  counts c;
  agentws__mem mem;
  agentws__evpool pool;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  uv_mutex_init(&f->c.lock);
  f->mem.malloc = c_malloc;
  f->mem.free = c_free;
  f->mem.calloc = c_calloc;
  f->mem.realloc = c_realloc;
  f->mem.mem_user_data = &f->c;
  assert_int_equal(agentws__evpool_init(&f->pool, &f->mem, 1024), 0);
  *state = f;
  return 0;
}

/* Freeing the pool gives back every block it ever took. */
static int teardown(void **state) {
  fixture *f = *state;
  agentws__evpool_free(&f->pool);
  assert_int_equal(f->c.mallocs, f->c.frees);
  uv_mutex_destroy(&f->c.lock);
  free(f);
  return 0;
}

static void test_block_sizes(void **state) {
  (void)state;
  assert_int_equal(agentws__evpool_block_size(1), 128);
  assert_int_equal(agentws__evpool_block_size(128), 128);
  assert_int_equal(agentws__evpool_block_size(129), 256);
  assert_int_equal(agentws__evpool_block_size(350), 384);
  assert_int_equal(agentws__evpool_block_size(2048), 2048);
  assert_int_equal(agentws__evpool_block_size(2049), 2049);
}

/* A block freed on the loop thread is reused only once handed over. */
static void test_reuse_after_flush(void **state) {
  fixture *f = *state;
  void *a = agentws__evpool_get(&f->pool, 300);
  void *b, *c;
  assert_non_null(a);
  memset(a, 0xa5, agentws__evpool_block_size(300)); /* the whole block */
  agentws__evpool_put(&f->pool, a, 300);
  b = agentws__evpool_get(&f->pool, 300);
  assert_ptr_not_equal(a, b);
  assert_int_equal(f->c.mallocs, 2);
  agentws__evpool_flush(&f->pool);
  /* Any size of the same class takes it. */
  c = agentws__evpool_get(&f->pool, 257);
  assert_ptr_equal(c, a);
  assert_int_equal(f->c.mallocs, 2);
  assert_int_equal(f->pool.reused, 1);
  /* Another class does not. */
  agentws__evpool_put(&f->pool, c, 257);
  agentws__evpool_flush(&f->pool);
  c = agentws__evpool_get(&f->pool, 200);
  assert_ptr_not_equal(c, a);
  agentws__evpool_put(&f->pool, c, 200);
  agentws__evpool_put(&f->pool, b, 300);
}

/* Every AGENTWS__EVPOOL_BATCH loop-thread frees go over by themselves. */
static void test_batch_hand_over(void **state) {
  fixture *f = *state;
  void *v[AGENTWS__EVPOOL_BATCH];
  size_t i;
  for (i = 0; i < AGENTWS__EVPOOL_BATCH; i++)
    v[i] = agentws__evpool_get(&f->pool, 16);
  for (i = 0; i < AGENTWS__EVPOOL_BATCH - 1; i++)
    agentws__evpool_put(&f->pool, v[i], 16);
  assert_int_equal(f->pool.nlocal, AGENTWS__EVPOOL_BATCH - 1);
  assert_int_equal(f->pool.shared_bytes, 0);
  agentws__evpool_put(&f->pool, v[i], 16);
  assert_int_equal(f->pool.nlocal, 0);
  /* 64 blocks of 128 bytes, the bound 1024: 8 kept, the rest freed. */
  assert_int_equal(f->pool.shared_bytes, 1024);
  assert_int_equal(f->c.frees, AGENTWS__EVPOOL_BATCH - 8);
  for (i = 0; i < 8; i++)
    v[i] = agentws__evpool_get(&f->pool, 100);
  assert_int_equal(f->c.mallocs, AGENTWS__EVPOOL_BATCH);
  assert_int_equal(f->pool.shared_bytes, 0);
  for (i = 0; i < 8; i++)
    agentws__evpool_put_mt(&f->pool, v[i], 100);
  assert_int_equal(f->pool.shared_bytes, 1024);
}

/* Beyond the largest class the allocator is used directly. */
static void test_large_blocks_bypass(void **state) {
  fixture *f = *state;
  void *a = agentws__evpool_get(&f->pool, AGENTWS__EVPOOL_MAX + 1);
  assert_non_null(a);
  agentws__evpool_put(&f->pool, a, AGENTWS__EVPOOL_MAX + 1);
  assert_int_equal(f->c.frees, 1);
  assert_int_equal(f->pool.nlocal, 0);
  a = agentws__evpool_get(&f->pool, AGENTWS__EVPOOL_MAX + 1);
  agentws__evpool_put_mt(&f->pool, a, AGENTWS__EVPOOL_MAX + 1);
  assert_int_equal(f->c.frees, 2);
  assert_int_equal(f->pool.shared_bytes, 0);
}

/* A pooled event goes back into its pool; an unpooled one to the
 * allocator. */
static void test_pooled_event(void **state) {
  fixture *f = *state;
  agentws__emit_args a;
  agentws__event *ev, *ev2;
  memset(&a, 0, sizeof(a));
  a.type = AGENTWS__EV_AGENT_THINKING;
  a.target = AGENTWS_TARGET_USER;
  a.target_id = "u1";
  a.run_id = "r1";
  a.text = "hello";
  a.text_len = 5;
  assert_int_equal(agentws__event_build_pooled(&f->pool, &a, 65536, &ev), 0);
  assert_ptr_equal(ev->pool, &f->pool);
  agentws__event_finalize(ev, 7);
  assert_string_equal(ev->json, "{\"type\":\"agent_thinking\",\"run_id\":\"r1\","
                                "\"ts\":0,\"data\":{\"text\":\"hello\"},"
                                "\"seq\":7}");
  agentws__event_free(&f->mem, ev);
  assert_int_equal(f->pool.nlocal, 1);
  agentws__evpool_flush(&f->pool);
  assert_int_equal(agentws__event_build_pooled(&f->pool, &a, 65536, &ev2), 0);
  assert_ptr_equal(ev2, ev);
  agentws__event_free_mt(&f->mem, ev2);
  assert_int_equal(f->pool.nlocal, 0);
  assert_true(f->pool.shared_bytes > 0);
  assert_int_equal(agentws__event_build(&f->mem, &a, 65536, &ev), 0);
  assert_null(ev->pool);
  agentws__event_free(&f->mem, ev);
  assert_int_equal(f->pool.nlocal, 0);
}

/* Emitting threads take and give back while the "loop" thread frees in
 * batches: nothing lost, nothing twice (ASan/TSan builds check the rest). */
#define ROUNDS 20000
typedef struct racer {
  agentws__evpool *pool;
  void *handed[ROUNDS];
} racer;

static void take(void *arg) {
  racer *r = arg;
  size_t i;
  for (i = 0; i < ROUNDS; i++) {
    r->handed[i] = agentws__evpool_get(r->pool, 64 + (i % 7) * 100);
    memset(r->handed[i], (int)i, 64);
    if (i % 3 == 0) { /* a failed emit gives its block back at once */
      agentws__evpool_put_mt(r->pool, r->handed[i], 64 + (i % 7) * 100);
      r->handed[i] = NULL;
    }
  }
}

static void test_threads(void **state) {
  fixture *f = *state;
  static racer r[2];
  uv_thread_t t[2];
  size_t k, i;
  for (k = 0; k < 2; k++) {
    r[k].pool = &f->pool;
    assert_int_equal(uv_thread_create(&t[k], take, &r[k]), 0);
  }
  for (k = 0; k < 2; k++)
    assert_int_equal(uv_thread_join(&t[k]), 0);
  for (k = 0; k < 2; k++)
    for (i = 0; i < ROUNDS; i++)
      if (r[k].handed[i] != NULL)
        agentws__evpool_put(&f->pool, r[k].handed[i], 64 + (i % 7) * 100);
  agentws__evpool_flush(&f->pool);
  assert_true(f->pool.shared_bytes <= f->pool.max_bytes);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_block_sizes),
      cmocka_unit_test_setup_teardown(test_reuse_after_flush, setup, teardown),
      cmocka_unit_test_setup_teardown(test_batch_hand_over, setup, teardown),
      cmocka_unit_test_setup_teardown(test_large_blocks_bypass, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_pooled_event, setup, teardown),
      cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
