/* Transport lifecycle: listen, accept, adopt, read dispatch, close. */
#include "agentws_transport.h"

#include <string.h>

static void maybe_finish(agentws__transport *t);

static void internal_close_cb(uv_handle_t *h) {
  agentws__transport *t = h->data;
  if (--t->internal_open == 0 && t->hooks.on_closed != NULL)
    t->hooks.on_closed(t, t->hooks.user_data);
}

static void on_check(uv_check_t *h) {
  agentws__transport *t = h->data;
  /* Adopted connections parse their bytes here so no callback fires
   * inside agentws_manager_adopt(). */
  while (!agentws__list_empty(&t->pending_in)) {
    agentws__conn *c =
        AGENTWS__CONTAINER_OF(t->pending_in.next, agentws__conn, dnode);
    agentws__list_remove(&c->dnode);
    if (c->state == AGENTWS__CONN_HTTP)
      agentws__upgrade_feed(c, c->head.data, c->head.len, 1);
    else if (c->state != AGENTWS__CONN_DEAD && agentws__writer_pending(c))
      agentws__writer_mark_dirty(c); /* socket bytes finished it first */
  }
  agentws__writer_flush_all(t);
  if (agentws__list_empty(&t->dirty) && agentws__list_empty(&t->pending_in))
    uv_idle_stop(&t->kick);
}

static void on_kick(uv_idle_t *h) { (void)h; }

void agentws__transport_kick(agentws__transport *t) {
  uv_idle_start(&t->kick, on_kick);
}

int agentws__transport_init(agentws__transport *t, uv_loop_t *loop,
                            const agentws__mem *mem,
                            const agentws_config *cfg,
                            const agentws__transport_hooks *hooks) {
  int i, rv;
  memset(t, 0, sizeof(*t));
  t->loop = loop;
  t->mem = mem;
  t->cfg = cfg;
  t->hooks = *hooks;
  agentws__list_init(&t->listeners);
  agentws__list_init(&t->dirty);
  agentws__list_init(&t->pending_in);
  agentws__list_init(&t->idle);
  for (i = 0; i < AGENTWS__TL_COUNT; i++)
    agentws__list_init(&t->tl[i]);
  t->started_ms = uv_now(loop);
  rv = agentws__ws_init(t);
  if (rv != 0)
    return rv;
  /* Handles are unref'd: the host's loop must not stay alive for them. */
  uv_check_init(loop, &t->flush_check);
  t->flush_check.data = t;
  uv_check_start(&t->flush_check, on_check);
  uv_unref((uv_handle_t *)&t->flush_check);
  uv_idle_init(loop, &t->kick);
  t->kick.data = t;
  uv_unref((uv_handle_t *)&t->kick);
  t->internal_open = 2;
  rv = agentws__timers_init(t);
  if (rv != 0)
    return rv;
  t->internal_open++;
  return 0;
}

void agentws__transport_free(agentws__transport *t) {
  size_t i;
  agentws__ws_free(t);
  for (i = 0; i < t->buf_cache_len; i++)
    agentws__buf_free(&t->buf_cache[i], t->mem);
  t->buf_cache_len = 0;
  agentws__segs_cache_free(t);
  agentws__idmap_free(&t->conns, t->mem);
}

agentws__conn *agentws__transport_find(agentws__transport *t, uint64_t id) {
  return agentws__idmap_get(&t->conns, id);
}

/* ------------------------------------------------------------ listeners */

static void listener_close_cb(uv_handle_t *h) {
  agentws__listener *l = h->data;
  agentws__transport *t = l->t;
  agentws__mem_free(t->mem, l);
  maybe_finish(t);
}

static void on_connection(uv_stream_t *server, int status);

int agentws__transport_listen(agentws__transport *t, const char *host,
                              int port, int *bound_port) {
  struct sockaddr_storage ss;
  int namelen = sizeof(ss), rv, v6;
  agentws__listener *l;
  if (t->closing)
    return AGENTWS_ERR_INVALID_STATE;
  if (host == NULL)
    host = "127.0.0.1";
  if (port < 0 || port > 65535)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  v6 = strchr(host, ':') != NULL;
  if (v6)
    rv = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
  else
    rv = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
  if (rv != 0)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  l = agentws__mem_calloc(t->mem, 1, sizeof(*l));
  if (l == NULL)
    return AGENTWS_ERR_NOMEM;
  l->t = t;
  uv_tcp_init(t->loop, &l->tcp);
  l->tcp.data = l;
  agentws__list_init(&l->node);
  /* IPV6ONLY lets "::1" and "127.0.0.1" share a port. */
  rv = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss,
                   v6 ? UV_TCP_IPV6ONLY : 0);
  if (rv == 0)
    rv = uv_listen((uv_stream_t *)&l->tcp, t->cfg->listen_backlog,
                   on_connection);
  if (rv == 0)
    rv = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &namelen);
  if (rv != 0) {
    /* Not listed yet, so closing it does not count toward finishing. */
    uv_close((uv_handle_t *)&l->tcp, listener_close_cb);
    return rv;
  }
  agentws__list_push_back(&t->listeners, &l->node);
  if (bound_port != NULL)
    *bound_port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                           : ((struct sockaddr_in *)&ss)->sin_port);
  return 0;
}

/* ---------------------------------------------------------- connections */

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  agentws__conn *c = h->data;
  (void)suggested;
  /* One shared buffer: every read is consumed before the next begins. */
  buf->base = (char *)c->t->rbuf;
  buf->len = sizeof(c->t->rbuf);
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  agentws__conn *c = s->data;
  if (nread == 0 || c->state == AGENTWS__CONN_DEAD)
    return;
  if (nread > 0)
    agentws__stat_add(c->t->stats, AGENTWS_STAT_BYTES_RECEIVED,
                      (uint64_t)nread);
  if (nread < 0) {
    /* EOF or reset: a closing conn ends as planned, others abnormally. */
    agentws__conn_kill(c, AGENTWS_CLOSE_ABNORMAL,
                       nread == UV_EOF ? "connection closed by peer"
                                       : "connection error");
    return;
  }
  switch (c->state) {
  case AGENTWS__CONN_HTTP:
    agentws__upgrade_feed(c, (const uint8_t *)buf->base, (size_t)nread, 0);
    break;
  case AGENTWS__CONN_WS:
  case AGENTWS__CONN_CLOSING:
    if (c->tl == AGENTWS__TL_ACTIVE || c->tl == AGENTWS__TL_PINGED)
      agentws__conn_set_timer(c, AGENTWS__TL_ACTIVE);
    if (!c->close_received)
      agentws__ws_feed(c, (const uint8_t *)buf->base, (size_t)nread);
    break;
  default: /* LINGER: the peer's last bytes are of no interest */
    break;
  }
}

static agentws__conn *conn_new(agentws__transport *t) {
  agentws__conn *c = agentws__mem_calloc(t->mem, 1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->t = t;
  c->subprotocol = "";
  c->tl = AGENTWS__TL_COUNT;
  c->born_ns = uv_hrtime();
  agentws__list_init(&c->tnode);
  agentws__list_init(&c->inode);
  agentws__list_init(&c->dnode);
  uv_tcp_init(t->loop, &c->tcp);
  c->tcp.data = c;
  return c;
}

/* Gives |c| an id and a timer. 0 or AGENTWS_ERR_NOMEM (nothing done). */
static int conn_add(agentws__conn *c) {
  agentws__transport *t = c->t;
  int rv;
  c->id = ++t->next_id;
  rv = agentws__idmap_put(&t->conns, t->mem, c->id, c);
  if (rv != 0)
    return rv;
  t->num_conns++;
  agentws__conn_set_timer(c, AGENTWS__TL_HANDSHAKE);
  return 0;
}

/* Undoes conn_add() for a socket the library does not own after all. */
static void conn_unadd(agentws__conn *c) {
  agentws__idmap_del(&c->t->conns, c->id);
  agentws__list_remove(&c->tnode);
  c->t->num_conns--;
}

/* Starts reading; on failure the conn is closed (it owns the socket). */
static void conn_start(agentws__conn *c) {
  int rv;
  uv_tcp_nodelay(&c->tcp, 1);
  if (c->t->cfg->socket_sndbuf > 0) {
    int size = (int)c->t->cfg->socket_sndbuf;
    uv_send_buffer_size((uv_handle_t *)&c->tcp, &size);
  }
  rv = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
  if (rv != 0)
    agentws__conn_kill(c, AGENTWS_CLOSE_ABNORMAL, "read failed");
}

static void raw_close_free_cb(uv_handle_t *h) {
  agentws__conn *c = h->data;
  agentws__mem_free(c->t->mem, c);
}

static void reject_close_cb(uv_handle_t *h) {
  agentws__transport *t = h->data;
  t->reject_busy = 0;
  t->num_conns--;
  maybe_finish(t);
}

/* Out of memory: accept into the spare handle and close, so the listen
 * queue keeps moving instead of stalling. */
static void reject_connection(agentws__transport *t, uv_stream_t *server) {
  if (t->reject_busy)
    return;
  uv_tcp_init(t->loop, &t->reject);
  t->reject.data = t;
  t->reject_busy = 1;
  t->num_conns++;
  uv_accept(server, (uv_stream_t *)&t->reject);
  uv_close((uv_handle_t *)&t->reject, reject_close_cb);
}

static void on_connection(uv_stream_t *server, int status) {
  agentws__listener *l = server->data;
  agentws__transport *t = l->t;
  agentws__conn *c;
  if (status < 0)
    return; /* e.g. EMFILE: libuv retries on the next readiness */
  c = conn_new(t);
  if (c == NULL) {
    reject_connection(t, server);
    return;
  }
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, raw_close_free_cb);
    return;
  }
  if (t->closing || conn_add(c) != 0) {
    uv_close((uv_handle_t *)&c->tcp, raw_close_free_cb);
    return;
  }
  conn_start(c);
}

int agentws__transport_adopt(agentws__transport *t, int fd,
                             const uint8_t *data, size_t len, uint64_t *id) {
  agentws__conn *c;
  int rv;
  if (t->closing)
    return AGENTWS_ERR_INVALID_STATE;
  if (fd < 0 || (data == NULL && len > 0))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (len > t->cfg->max_header_bytes)
    return AGENTWS_ERR_TOO_BIG;
  c = conn_new(t);
  if (c == NULL)
    return AGENTWS_ERR_NOMEM;
  rv = agentws__buf_append(&c->head, t->mem, data, len);
  if (rv == 0)
    rv = conn_add(c);
  if (rv != 0) {
    agentws__buf_free(&c->head, t->mem);
    uv_close((uv_handle_t *)&c->tcp, raw_close_free_cb);
    return rv;
  }
  /* A failed uv_tcp_open() leaves the fd unattached: the host keeps it. */
  rv = uv_tcp_open(&c->tcp, (uv_os_sock_t)fd);
  if (rv != 0) {
    conn_unadd(c);
    agentws__buf_free(&c->head, t->mem);
    uv_close((uv_handle_t *)&c->tcp, raw_close_free_cb);
    return rv;
  }
  conn_start(c);
  if (c->head.len > 0 && c->state == AGENTWS__CONN_HTTP) {
    agentws__list_push_back(&t->pending_in, &c->dnode);
    agentws__transport_kick(t);
  }
  if (id != NULL)
    *id = c->id;
  return 0;
}

/* ---------------------------------------------------------------- close */

void agentws__conn_set_close_info(agentws__conn *c, int code,
                                  const char *reason, size_t len) {
  if (c->close_code != 0)
    return;
  c->close_code = (uint16_t)code;
  if (len > 123)
    len = 123;
  if (len > 0) {
    c->reason = agentws__mem_strndup(c->t->mem, reason, len);
    c->reason_len = c->reason != NULL ? (uint8_t)len : 0;
  }
}

static void conn_close_cb(uv_handle_t *h) {
  agentws__conn *c = h->data;
  agentws__transport *t = c->t;
  if (c->opened)
    t->num_ws--;
  if ((c->opened || c->app != NULL) && t->hooks.on_close != NULL)
    t->hooks.on_close(c, c->close_code ? c->close_code
                                       : AGENTWS_CLOSE_ABNORMAL,
                      c->reason ? c->reason : "", c->reason_len,
                      t->hooks.user_data);
  agentws__upgrade_release(c);
  /* The id stays valid through on_close, so the host can fetch and free
   * its per-connection user data there. */
  agentws__idmap_del(&t->conns, c->id);
  agentws__ws_release(c);
  agentws__writer_release(c);
  agentws__buf_free(&c->head, t->mem);
  agentws__mem_free(t->mem, c->reason);
  agentws__mem_free(t->mem, c);
  t->num_conns--;
  maybe_finish(t);
}

void agentws__conn_kill(agentws__conn *c, int code, const char *reason) {
  if (c->state == AGENTWS__CONN_DEAD)
    return;
  agentws__conn_set_close_info(c, code, reason, reason ? strlen(reason) : 0);
  c->state = AGENTWS__CONN_DEAD;
  agentws__list_remove(&c->tnode);
  agentws__list_remove(&c->inode);
  agentws__list_remove(&c->dnode);
  c->tl = AGENTWS__TL_COUNT;
  uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}

void agentws__conn_set_timer(agentws__conn *c, int tl) {
  /* A close (or adopt) the host calls after keeping its loop busy would
   * otherwise be marked with a stale loop time and expire at the next
   * tick, before its close frame is written. Re-marking an active conn on
   * every read happens inside the loop, where the time is fresh. */
  if (tl != AGENTWS__TL_ACTIVE)
    uv_update_time(c->t->loop);
  agentws__list_remove(&c->tnode);
  c->tl = (uint8_t)tl;
  c->t_mark = uv_now(c->t->loop);
  agentws__list_push_back(&c->t->tl[tl], &c->tnode);
}

void agentws__conn_touch_msg(agentws__conn *c) {
  agentws__transport *t = c->t;
  if (t->cfg->idle_timeout_ms == 0 || c->state != AGENTWS__CONN_WS)
    return;
  c->t_msg = uv_now(t->loop);
  agentws__list_remove(&c->inode);
  agentws__list_push_back(&t->idle, &c->inode);
}

static void maybe_finish(agentws__transport *t) {
  if (!t->closing || t->num_conns > 0 ||
      !agentws__list_empty(&t->listeners) || t->internal_open == 0 ||
      uv_is_closing((uv_handle_t *)&t->tick))
    return;
  uv_close((uv_handle_t *)&t->flush_check, internal_close_cb);
  uv_close((uv_handle_t *)&t->kick, internal_close_cb);
  uv_close((uv_handle_t *)&t->tick, internal_close_cb);
}

/* Closes every conn in list |tl|: HTTP ones at once, WebSockets with
 * 1001. Each leaves the list, so the loop ends. */
static void close_list(agentws__transport *t, int tl) {
  while (!agentws__list_empty(&t->tl[tl])) {
    agentws__conn *c =
        AGENTWS__CONTAINER_OF(t->tl[tl].next, agentws__conn, tnode);
    if (c->state == AGENTWS__CONN_WS)
      agentws__ws_close(c, AGENTWS_CLOSE_GOING_AWAY, "server shutdown", 15,
                        0);
    else
      agentws__conn_kill(c, AGENTWS_CLOSE_GOING_AWAY, "server shutdown");
  }
}

void agentws__transport_close(agentws__transport *t) {
  if (t->closing)
    return;
  t->closing = 1;
  while (!agentws__list_empty(&t->listeners)) {
    agentws__listener *l =
        AGENTWS__CONTAINER_OF(t->listeners.next, agentws__listener, node);
    agentws__list_remove(&l->node);
    uv_close((uv_handle_t *)&l->tcp, listener_close_cb);
  }
  close_list(t, AGENTWS__TL_HANDSHAKE);
  close_list(t, AGENTWS__TL_AUTH);
  close_list(t, AGENTWS__TL_ACTIVE);
  close_list(t, AGENTWS__TL_PINGED);
  close_list(t, AGENTWS__TL_OPEN);
  /* Already-closing conns keep their close_timeout deadline. */
  maybe_finish(t);
}
