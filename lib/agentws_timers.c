/*
 * Deadlines without a timer per connection: all connections in one state
 * share one timeout, so each state's list is in deadline order when kept
 * FIFO (activity moves a connection to the tail). One periodic tick pops
 * expired heads: O(expired) per tick, zero bytes per connection beyond two
 * list links.
 */
#include "agentws_transport.h"

static void expire(agentws__conn *c, int tl) {
  switch (tl) {
  case AGENTWS__TL_HANDSHAKE:
    agentws__upgrade_refuse(c, 408, "request head not received in time");
    break;
  case AGENTWS__TL_ACTIVE:
    /* Quiet for ping_interval: probe it. */
    if (agentws__ws_send(c, 0x9, NULL, 0, 1) == 0)
      agentws__conn_set_timer(c, AGENTWS__TL_PINGED);
    else
      agentws__conn_kill(c, AGENTWS_CLOSE_ABNORMAL, "ping failed");
    break;
  case AGENTWS__TL_PINGED:
    c->ping_timed_out = 1;
    agentws__conn_kill(c, AGENTWS_CLOSE_ABNORMAL, "ping timeout");
    break;
  case AGENTWS__TL_AUTH:
    if (c->t->hooks.on_auth_timeout != NULL)
      c->t->hooks.on_auth_timeout(c, c->t->hooks.user_data);
    agentws__upgrade_refuse(c, 503, "authentication did not answer in time");
    break;
  default: /* CLOSING: the peer did not finish in time */
    agentws__conn_kill(c, 0, NULL);
    break;
  }
}

void agentws__timers_on_tick(uv_timer_t *h) {
  agentws__transport *t = h->data;
  uint64_t now = uv_now(t->loop);
  int tl;
  for (tl = 0; tl < AGENTWS__TL_COUNT; tl++) {
    uint64_t ms = (uint64_t)t->tl_ms[tl];
    if (ms == 0)
      continue;
    while (!agentws__list_empty(&t->tl[tl])) {
      agentws__conn *c =
          AGENTWS__CONTAINER_OF(t->tl[tl].next, agentws__conn, tnode);
      /* A mark may be newer than |now| (set_timer refreshes the loop
       * time): not due, never an unsigned wrap. */
      if (c->t_mark + ms > now)
        break;
      expire(c, tl); /* always moves c out of the list's head */
    }
  }
  if (t->cfg->idle_timeout_ms > 0) {
    uint64_t ms = (uint64_t)t->cfg->idle_timeout_ms;
    while (!agentws__list_empty(&t->idle)) {
      agentws__conn *c =
          AGENTWS__CONTAINER_OF(t->idle.next, agentws__conn, inode);
      if (c->t_msg + ms > now)
        break;
      agentws__list_remove(&c->inode);
      agentws__ws_close(c, AGENTWS_CLOSE_GOING_AWAY, "idle timeout", 12, 0);
    }
  }
}

static uint64_t min_nonzero(uint64_t a, int64_t b) {
  return b > 0 && (uint64_t)b < a ? (uint64_t)b : a;
}

int agentws__timers_init(agentws__transport *t) {
  const agentws_config *cfg = t->cfg;
  uint64_t m = 1000;
  int rv;
  t->tl_ms[AGENTWS__TL_HANDSHAKE] = cfg->handshake_timeout_ms;
  t->tl_ms[AGENTWS__TL_ACTIVE] = cfg->ping_interval_ms;
  t->tl_ms[AGENTWS__TL_PINGED] = cfg->pong_timeout_ms;
  t->tl_ms[AGENTWS__TL_OPEN] = 0;
  t->tl_ms[AGENTWS__TL_CLOSING] = cfg->close_timeout_ms;
  t->tl_ms[AGENTWS__TL_AUTH] = cfg->auth_timeout_ms;
  /* Tick at an eighth of the shortest timeout: deadlines are met within
   * 12.5%, and a 1 s tick bounds the cost of long ones. */
  m = min_nonzero(m, cfg->handshake_timeout_ms);
  m = min_nonzero(m, cfg->ping_interval_ms);
  m = min_nonzero(m, cfg->pong_timeout_ms);
  m = min_nonzero(m, cfg->idle_timeout_ms);
  m = min_nonzero(m, cfg->close_timeout_ms);
  m = min_nonzero(m, cfg->auth_timeout_ms);
  m /= 8;
  if (m < 5)
    m = 5;
  t->tick_ms = m;
  rv = uv_timer_init(t->loop, &t->tick);
  if (rv != 0)
    return rv;
  t->tick.data = t;
  uv_timer_start(&t->tick, agentws__timers_on_tick, m, m);
  uv_unref((uv_handle_t *)&t->tick);
  return 0;
}
