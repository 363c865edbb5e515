/*
 * connect-lat: per-handshake latency for agentws-load --mode connect.
 *
 * agentws-load's connect mode reports how long opening every connection
 * took (open_ms) but no latency per connection. This file is linked into
 * a copy of agentws-load with -Wl,--wrap=load_on_open (run-connect.sh
 * builds it into a temporary directory; nothing in agentws-load changes):
 * load_conn.c's call to load_on_open lands here first, records the time
 * from the connection's start (c->t_start: before uv_tcp_connect) to the
 * read that completed the 101 response (ld->now, the clock the reconnect
 * mode's upgrade_p50_us/upgrade_p99_us use), then calls the real one.
 *
 * After agentws-load's own JSON line, an atexit handler prints a second:
 *   {"hs_lat_n":N,"hs_p50_us":..,"hs_p90_us":..,"hs_p99_us":..,"hs_max_us":..}
 * exact quantiles (nearest rank) over every connection opened in the
 * connect phase.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>

#include "load.h"

void __real_load_on_open(struct conn *c);
void __wrap_load_on_open(struct conn *c);

static uint64_t *g_lat; /* ns, one per opened connection */
static size_t g_n, g_cap;

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double q_us(double q) {
  size_t i = (size_t)(q * (double)g_n + 0.999999);
  if (i < 1) {
    i = 1;
  }
  if (i > g_n) {
    i = g_n;
  }
  return (double)g_lat[i - 1] / 1e3;
}

static void print_lat(void) {
  if (g_n > 0) {
    qsort(g_lat, g_n, sizeof(*g_lat), cmp_u64);
    printf("{\"hs_lat_n\":%zu,\"hs_p50_us\":%.1f,\"hs_p90_us\":%.1f,"
           "\"hs_p99_us\":%.1f,\"hs_max_us\":%.1f}\n",
           g_n, q_us(0.50), q_us(0.90), q_us(0.99), q_us(1.0));
  } else {
    printf("{\"hs_lat_n\":0}\n");
  }
  fflush(stdout);
  free(g_lat);
}

void __wrap_load_on_open(struct conn *c) {
  struct load *ld = c->ld;
  if (ld->o.mode == MODE_CONNECT && ld->phase == PH_CONNECT) {
    if (g_cap == 0) {
      g_cap = (size_t)ld->o.conns;
      g_lat = malloc(g_cap * sizeof(*g_lat));
      if (g_lat == NULL) {
        g_cap = (size_t)-1; /* no latencies, but keep going */
      }
      atexit(print_lat);
    }
    if (g_lat != NULL && g_n < g_cap) {
      g_lat[g_n++] = ld->now - c->t_start;
    }
  }
  __real_load_on_open(c);
}
