/* Public lifecycle: create, listen, adopt, close, free, own-thread mode. */
#include "agentws_manager.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "agentws_utf8.h"

/* ------------------------------------------------ transport -> host hooks */

static int hook_request(agentws__conn *c, const agentws__http_request *req,
                        const char **reason, void *ud) {
  return agentws__auth_on_request(ud, c, req, reason);
}

static void hook_auth_timeout(agentws__conn *c, void *ud) {
  agentws_manager *m = ud;
  agentws__stat_inc(&m->stats, AGENTWS_STAT_AUTH_TIMEOUT);
  agentws__log(m, AGENTWS_LOG_WARN,
               "connection %llu: on_authenticate did not answer in time (503)",
               (unsigned long long)c->id);
}

static void hook_open(agentws__conn *c, void *ud) {
  agentws_manager *m = ud;
  agentws__session *s = c->app;
  if (!m->cfg->raw_messages && s != NULL && s->user != NULL) {
    agentws__emitter_open(&m->emitter, s); /* welcome, resume */
    if (c->state != AGENTWS__CONN_WS)
      return;
  }
  if (m->cbs.on_open != NULL)
    m->cbs.on_open(m, c->id, m->user_data);
}

static int hook_message(agentws__conn *c, int type, const uint8_t *data,
                        size_t len, void *ud) {
  agentws_manager *m = ud;
  agentws__session *s = c->app;
  if (!m->cfg->raw_messages && s != NULL && s->user != NULL) {
    agentws__emitter_message(&m->emitter, s, type, data, len);
    return 0;
  }
  if (m->cbs.on_message == NULL)
    return 0;
  return m->cbs.on_message(m, c->id, type, data, len, m->user_data);
}

/* Events (|*written|, |pos|] of |st| are in the kernel now: counted, and
 * their emit-to-write latency recorded (live ones only: a replay's age is
 * not the library's latency). */
static void written(agentws_manager *m, const agentws__stream *st,
                    uint64_t *written, uint64_t pos, uint64_t live_from,
                    uint64_t *now_ns) {
  if (pos <= *written)
    return;
  agentws__stat_add(&m->stats, AGENTWS_STAT_EVENTS_WRITTEN, pos - *written);
  if (m->stats.hist_on && st != NULL) {
    if (*now_ns == 0) /* the clock only when there is something to time */
      *now_ns = uv_hrtime();
    agentws__hist_since(&m->stats, AGENTWS_HIST_EMIT_TO_WRITE, st,
                        *written + 1 > live_from ? *written + 1 : live_from,
                        pos, *now_ns);
  }
  *written = pos;
}

/* A shared event frame was written or dropped. */
static void hook_release(void *ref, void *ud) {
  agentws_manager *m = ud;
  agentws__event_unref(m->emitter.mem, ref);
}

static void hook_writable(agentws__conn *c, void *ud) {
  agentws_manager *m = ud;
  agentws__session *s = c->app;
  agentws__list *it;
  uint64_t now_ns = 0;
  if (s == NULL || s->user == NULL || m->cfg->raw_messages)
    return;
  /* Everything queued so far is in the kernel now. */
  if (s->unacked_since == 0 && s->pos > s->acked)
    s->unacked_since = uv_now(m->loop);
  written(m, s->user->stream, &s->written, s->pos, s->live_from, &now_ns);
  for (it = s->rooms.next; it != &s->rooms; it = it->next) {
    agentws__member *mb = AGENTWS__CONTAINER_OF(it, agentws__member, snode);
    written(m, mb->room->stream, &mb->written, mb->pos, mb->live_from,
            &now_ns);
  }
  if (s->behind || !agentws__list_empty(&s->rooms))
    agentws__emitter_writable(&m->emitter, s);
}

static int closed_stat(int code) {
  static const int codes[] = {1000, 1001, 1002, 1005, 1006, 1007,
                              1008, 1009, 1011, 1013, 4001};
  size_t i;
  for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
    if (codes[i] == code)
      return AGENTWS_STAT_CLOSED_1000 + (int)i;
  return AGENTWS_STAT_CLOSED_OTHER;
}

static int hook_http(agentws__conn *c, const agentws__http_request *req,
                     void *ud) {
  return agentws__endpoints_route(ud, c, req);
}

static void hook_close(agentws__conn *c, int code, const char *reason,
                       size_t reason_len, void *ud) {
  agentws_manager *m = ud;
  agentws__session *s = c->app;
  if (c->opened) {
    agentws__stat_inc(&m->stats, AGENTWS_STAT_CONNECTIONS_CLOSED);
    agentws__stat_inc(&m->stats, closed_stat(code));
    agentws__log(m, AGENTWS_LOG_DEBUG, "connection %llu closed: %d",
                 (unsigned long long)c->id, code);
  }
  agentws__monitor_conn_closed(&m->mon, c);
  if (s != NULL)
    agentws__emitter_detach(&m->emitter, s); /* not a target any more */
  if (c->opened && m->cbs.on_close != NULL)
    m->cbs.on_close(m, c->id, code, reason, reason_len, m->user_data);
  if (s != NULL)
    agentws__session_free(m, s);
}

static void release(agentws_manager *m);

static void async_close_cb(uv_handle_t *h) {
  agentws_manager *m = h->data;
  agentws_closed_cb cb = m->closed_cb;
  void *ud = m->closed_ud;
  int free_now = m->free_on_closed;
  m->closed = 1;
  /* The host may free |m| inside its callback: touch nothing after. */
  if (cb != NULL)
    cb(m, ud);
  if (free_now && !m->threaded)
    release(m);
}

/* Runs every queued post; the queue is swapped out under the lock so host
 * code never runs while it is held. */
static void drain_posts(agentws_manager *m) {
  agentws__post *p;
  uv_mutex_lock(&m->lock);
  p = m->post_head;
  m->post_head = m->post_tail = NULL;
  uv_mutex_unlock(&m->lock);
  while (p != NULL) {
    agentws__post *next = p->next;
    p->cb(m, p->user_data);
    agentws__mem_free(m->mem, p);
    p = next;
  }
}

static void emitter_closed_cb(uv_handle_t *h) {
  agentws__emitter *e = h->data;
  agentws_manager *m = e->m;
  /* Last: accepted posts still run, then no more are taken. */
  uv_mutex_lock(&m->lock);
  m->post_closed = 1;
  uv_mutex_unlock(&m->lock);
  drain_posts(m);
  uv_close((uv_handle_t *)&m->async, async_close_cb);
}

static void hook_closed(agentws__transport *t, void *ud) {
  agentws_manager *m = ud;
  (void)t;
  agentws__monitor_close(&m->mon);
  agentws__emitter_close(&m->emitter, emitter_closed_cb);
}

static void begin_close(agentws_manager *m) {
  m->closing = 1;
  agentws__transport_close(&m->transport);
}

static void on_async(uv_async_t *h) {
  agentws_manager *m = h->data;
  int stop;
  if (m->warn_insecure) {
    m->warn_insecure = 0;
    agentws__log(m, AGENTWS_LOG_WARN,
                 "insecure development mode: the user id is taken from "
                 "?user= without any authentication");
  }
  drain_posts(m);
  agentws__emitter_drain(&m->emitter);
  uv_mutex_lock(&m->lock);
  stop = m->stop_requested;
  uv_mutex_unlock(&m->lock);
  if (stop && !m->closing)
    begin_close(m);
}

/* ------------------------------------------------------------- creation */

static int init(agentws_manager **out, uv_loop_t *loop, uv_loop_t *own,
                const agentws_config *cfg, const agentws_callbacks *cbs,
                void *user_data) {
  const agentws__mem *mem =
      cfg != NULL ? agentws__config_alloc(cfg) : agentws__mem_default();
  agentws__transport_hooks hooks;
  agentws_manager *m;
  int rv;
  m = agentws__mem_calloc(mem, 1, sizeof(*m));
  if (m == NULL)
    return AGENTWS_ERR_NOMEM;
  m->mem_store = *mem;
  m->mem = mem = &m->mem_store;
  m->loop = loop;
  m->own_loop = own;
  m->user_data = user_data;
  m->loop_thread = uv_thread_self();
  if (cbs != NULL)
    m->cbs = *cbs;
  rv = agentws__config_copy(&m->cfg, cfg);
  if (rv != 0) {
    agentws__mem_free(mem, m);
    return rv;
  }
  rv = uv_mutex_init(&m->lock);
  if (rv != 0) {
    agentws_config_free(m->cfg);
    agentws__mem_free(mem, m);
    return rv;
  }
  rv = agentws__auth_init(&m->auth, m->cfg, mem);
  if (rv != 0) {
    uv_mutex_destroy(&m->lock);
    agentws_config_free(m->cfg);
    agentws__mem_free(mem, m);
    return rv;
  }
  /* on_log runs on the loop thread only: the first async wakes it. */
  if (m->cfg->dev_insecure && !m->auth.jwt && m->cbs.on_authenticate == NULL &&
      m->cbs.on_log != NULL)
    m->warn_insecure = 1;
  else if (m->cfg->dev_insecure && !m->auth.jwt &&
           m->cbs.on_authenticate == NULL)
    fprintf(stderr, "agentws: WARNING: insecure development mode: the user "
                    "id is taken from ?user= without any authentication\n");
  hooks.on_request = hook_request;
  hooks.on_writable = hook_writable;
  hooks.on_open = hook_open;
  hooks.on_message = hook_message;
  hooks.on_close = hook_close;
  hooks.on_closed = hook_closed;
  hooks.on_auth_timeout = hook_auth_timeout;
  hooks.on_http = hook_http;
  hooks.on_release = hook_release;
  hooks.user_data = m;
  rv = uv_async_init(loop, &m->async, on_async);
  if (rv != 0) {
    agentws__auth_free(&m->auth, mem);
    uv_mutex_destroy(&m->lock);
    agentws_config_free(m->cfg);
    agentws__mem_free(mem, m);
    return rv;
  }
  m->async.data = m;
  if (m->warn_insecure)
    uv_async_send(&m->async);
  rv = agentws__emitter_init(&m->emitter, m, loop, &m->async, m->cfg, mem);
  if (rv != 0) {
    m->free_on_closed = 1;
    m->closing = 1;
    uv_close((uv_handle_t *)&m->async, async_close_cb);
    return rv;
  }
  rv = agentws__transport_init(&m->transport, loop, mem, m->cfg, &hooks);
  if (rv != 0) {
    /* The async handle frees |m| when the loop closes it. */
    uv_close((uv_handle_t *)&m->emitter.sweep, NULL);
    m->free_on_closed = 1;
    m->closing = 1;
    uv_close((uv_handle_t *)&m->async, async_close_cb);
    return rv;
  }
  m->transport.stats = &m->stats;
  agentws__monitor_init(&m->mon, m, loop);
  /* A host loop must not stay alive for the manager alone; a threaded
   * manager's loop must, until stopped. */
  if (own == NULL)
    uv_unref((uv_handle_t *)&m->async);
  *out = m;
  return 0;
}

int agentws_manager_new(agentws_manager **out, struct uv_loop_s *loop,
                        const agentws_config *cfg,
                        const agentws_callbacks *cbs, void *user_data) {
  if (out == NULL || loop == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  return init(out, loop, NULL, cfg, cbs, user_data);
}

int agentws_manager_new_threaded(agentws_manager **out,
                                 const agentws_config *cfg,
                                 const agentws_callbacks *cbs,
                                 void *user_data) {
  const agentws__mem *mem;
  uv_loop_t *loop;
  int rv;
  if (out == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  mem = cfg != NULL ? agentws__config_alloc(cfg) : agentws__mem_default();
  loop = agentws__mem_malloc(mem, sizeof(*loop));
  if (loop == NULL)
    return AGENTWS_ERR_NOMEM;
  rv = uv_loop_init(loop);
  if (rv != 0) {
    agentws__mem_free(mem, loop);
    return rv;
  }
  rv = init(out, loop, loop, cfg, cbs, user_data);
  if (rv != 0) {
    uv_run(loop, UV_RUN_DEFAULT); /* let the failed init's handles close */
    uv_loop_close(loop);
    agentws__mem_free(mem, loop);
    return rv;
  }
  (*out)->threaded = 1;
  return 0;
}

typedef struct thread_start {
  agentws_manager *m; /* manager whose loop the thread runs */
  uv_sem_t ready;     /* posted once loop_thread is set */
} thread_start;

static void thread_main(void *arg) {
  thread_start *ts = arg;
  agentws_manager *m = ts->m;
  sigset_t pipe;
  /* write(2) to a peer that reset raises SIGPIPE on the writing thread;
   * blocked on this thread (the library's own) it cannot end a host that
   * left SIGPIPE at its default. No disposition changes. */
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, NULL);
  m->loop_thread = uv_thread_self();
  uv_sem_post(&ts->ready);
  uv_run(m->loop, UV_RUN_DEFAULT);
}

int agentws_manager_start(agentws_manager *m) {
  int rv;
  thread_start ts;
  if (m == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (!m->threaded || m->started || m->closing)
    return AGENTWS_ERR_INVALID_STATE;
  ts.m = m;
  rv = uv_sem_init(&ts.ready, 0);
  if (rv != 0)
    return rv;
  m->started = 1;
  rv = uv_thread_create(&m->thread, thread_main, &ts);
  if (rv != 0)
    m->started = 0;
  else
    uv_sem_wait(&ts.ready); /* callbacks may check loop_thread at once */
  uv_sem_destroy(&ts.ready);
  return rv;
}

static int on_loop_thread(agentws_manager *m) {
  uv_thread_t self = uv_thread_self();
  return uv_thread_equal(&self, &m->loop_thread);
}

int agentws_manager_stop(agentws_manager *m) {
  if (m == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (!m->threaded)
    return AGENTWS_ERR_INVALID_STATE;
  if (!m->started) {
    /* Never ran: close on this thread by running the loop to the end. */
    if (!m->closing)
      begin_close(m);
    if (!m->joined) {
      uv_run(m->loop, UV_RUN_DEFAULT);
      m->joined = 1;
    }
    return 0;
  }
  if (on_loop_thread(m))
    return AGENTWS_ERR_WRONG_THREAD;
  uv_mutex_lock(&m->lock);
  m->stop_requested = 1;
  if (!m->post_closed)
    uv_async_send(&m->async);
  uv_mutex_unlock(&m->lock);
  if (!m->joined) {
    uv_thread_join(&m->thread);
    m->joined = 1;
  }
  return 0;
}

int agentws_manager_listen(agentws_manager *m, const char *host, int port,
                           int *bound_port) {
  if (m == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (m->closing)
    return AGENTWS_ERR_INVALID_STATE;
  if (m->threaded && m->started && !on_loop_thread(m))
    return AGENTWS_ERR_WRONG_THREAD;
  return agentws__transport_listen(&m->transport, host, port, bound_port);
}

int agentws_manager_adopt(agentws_manager *m, int fd, const uint8_t *data,
                          size_t len, uint64_t *conn_id) {
  if (m == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (m->closing)
    return AGENTWS_ERR_INVALID_STATE;
  if (m->threaded && m->started && !on_loop_thread(m))
    return AGENTWS_ERR_WRONG_THREAD;
  return agentws__transport_adopt(&m->transport, fd, data, len, conn_id);
}

int agentws_manager_close(agentws_manager *m, agentws_closed_cb cb,
                          void *user_data) {
  if (m == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (m->closing)
    return AGENTWS_ERR_INVALID_STATE;
  if (m->threaded && m->started && !on_loop_thread(m))
    return AGENTWS_ERR_WRONG_THREAD;
  m->closed_cb = cb;
  m->closed_ud = user_data;
  begin_close(m);
  return 0;
}

static void release(agentws_manager *m) {
  agentws__mem copy = *m->mem; /* |m| holds it and is freed first */
  const agentws__mem *mem = &copy;
  uv_loop_t *own = m->own_loop;
  agentws__transport_free(&m->transport);
  agentws__emitter_free(&m->emitter);
  agentws__auth_free(&m->auth, mem);
  uv_mutex_destroy(&m->lock);
  agentws_config_free(m->cfg);
  agentws__mem_free(mem, m);
  if (own != NULL) {
    uv_loop_close(own);
    agentws__mem_free(mem, own);
  }
}

void agentws_manager_free(agentws_manager *m) {
  if (m == NULL)
    return;
  if (m->threaded) {
    agentws_manager_stop(m);
    release(m);
    return;
  }
  if (m->closed) {
    release(m);
    return;
  }
  /* Not closed yet: close now and free once every handle is gone. */
  m->free_on_closed = 1;
  if (!m->closing)
    begin_close(m);
}

void *agentws_manager_get_user_data(agentws_manager *m) {
  return m != NULL ? m->user_data : NULL;
}

void agentws_manager_set_user_data(agentws_manager *m, void *user_data) {
  if (m != NULL)
    m->user_data = user_data;
}

int agentws_manager_post(agentws_manager *m, agentws_post_cb cb,
                         void *user_data) {
  agentws__post *p;
  if (m == NULL || cb == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  p = agentws__mem_malloc(m->mem, sizeof(*p));
  if (p == NULL)
    return AGENTWS_ERR_NOMEM;
  p->cb = cb;
  p->user_data = user_data;
  p->next = NULL;
  uv_mutex_lock(&m->lock);
  if (m->post_closed) {
    uv_mutex_unlock(&m->lock);
    agentws__mem_free(m->mem, p);
    return AGENTWS_ERR_INVALID_STATE;
  }
  if (m->post_tail != NULL)
    m->post_tail->next = p;
  else
    m->post_head = p;
  m->post_tail = p;
  uv_async_send(&m->async);
  uv_mutex_unlock(&m->lock);
  return 0;
}

uint64_t agentws_manager_get_num_connections(agentws_manager *m) {
  return m != NULL ? m->transport.num_conns : 0;
}

/* ---------------------------------------------------------- connections */

static agentws__conn *find_open(agentws_manager *m, uint64_t id, int *rv) {
  agentws__conn *c;
  if (m == NULL) {
    *rv = AGENTWS_ERR_INVALID_ARGUMENT;
    return NULL;
  }
  c = agentws__transport_find(&m->transport, id);
  *rv = c == NULL || !c->opened ? AGENTWS_ERR_NOT_FOUND : 0;
  return *rv == 0 ? c : NULL;
}

int agentws_conn_send(agentws_manager *m, uint64_t conn_id, int type,
                      const uint8_t *data, size_t len) {
  int rv;
  agentws__conn *c = find_open(m, conn_id, &rv);
  if (c == NULL)
    return rv;
  if ((type != AGENTWS_MSG_TEXT && type != AGENTWS_MSG_BINARY) ||
      (data == NULL && len > 0))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (c->state != AGENTWS__CONN_WS)
    return AGENTWS_ERR_CLOSING;
  if (len > m->cfg->max_queued_bytes && len > m->cfg->max_message_size)
    return AGENTWS_ERR_TOO_BIG;
  if (type == AGENTWS_MSG_TEXT && !agentws__utf8_valid(data, len))
    return AGENTWS_ERR_INVALID_UTF8;
  return agentws__ws_send(c, type == AGENTWS_MSG_TEXT ? 0x1 : 0x2, data, len,
                          0);
}

static int close_code_ok(int code) {
  return code == 1000 || code == 1001 || code == 1003 ||
         (code >= 1007 && code <= 1011) || code == 1013 ||
         (code >= 3000 && code <= 4999);
}

int agentws_conn_close(agentws_manager *m, uint64_t conn_id, int code,
                       const char *reason, size_t reason_len) {
  int rv;
  agentws__conn *c;
  if (m == NULL || (reason == NULL && reason_len > 0) || reason_len > 123)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  c = agentws__transport_find(&m->transport, conn_id);
  if (c == NULL)
    return AGENTWS_ERR_NOT_FOUND;
  if (!close_code_ok(code))
    return AGENTWS_ERR_INVALID_CLOSE_CODE;
  if (!agentws__utf8_valid((const uint8_t *)reason, reason_len))
    return AGENTWS_ERR_INVALID_UTF8;
  if (c->state == AGENTWS__CONN_HTTP) {
    agentws__conn_kill(c, code, NULL);
    return 0;
  }
  rv = agentws__ws_close(c, code, reason, reason_len, 0);
  return rv;
}

int agentws_conn_set_user_data(agentws_manager *m, uint64_t conn_id,
                               void *user_data) {
  int rv;
  agentws__conn *c = find_open(m, conn_id, &rv);
  if (c != NULL)
    c->user_data = user_data;
  return rv;
}

int agentws_conn_get_user_data(agentws_manager *m, uint64_t conn_id,
                               void **out) {
  int rv;
  agentws__conn *c;
  if (out == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  c = find_open(m, conn_id, &rv);
  if (c != NULL)
    *out = c->user_data;
  return rv;
}

int agentws_conn_get_subprotocol(agentws_manager *m, uint64_t conn_id,
                                 const char **out) {
  int rv;
  agentws__conn *c;
  if (out == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  c = find_open(m, conn_id, &rv);
  if (c != NULL)
    *out = c->subprotocol;
  return rv;
}
