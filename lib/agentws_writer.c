/*
 * Output: frames queued during a loop iteration are appended to one buffer
 * per connection and leave in one write from the check phase, trying a
 * non-blocking send first so the common case costs one syscall and no
 * request; what the kernel does not take goes to uv_write.
 */
#include "agentws_transport.h"

#include <string.h>

/* A write still in flight owns the bytes it is writing. */
typedef struct write_req {
  uv_write_t req;   /* libuv request; req.data is the conn */
  agentws__buf buf; /* the bytes, moved out of conn->out */
} write_req;

#define CACHE_MAX_CAP (32u * 1024u) /* larger buffers are not kept */

static uint64_t queued(const agentws__conn *c) {
  return (uint64_t)c->out.len + c->seg_bytes + c->inflight;
}

int agentws__writer_pending(const agentws__conn *c) {
  return c->out.len > 0 || c->nsegs > 0;
}

uint64_t agentws__writer_queued(const agentws__conn *c) { return queued(c); }

/* Takes a cached buffer for an empty output so steady traffic does not
 * allocate, while an idle connection holds none. */
static void take_cached(agentws__conn *c) {
  agentws__transport *t = c->t;
  if (c->out.cap == 0 && t->buf_cache_len > 0)
    c->out = t->buf_cache[--t->buf_cache_len];
}

static void give_back(agentws__transport *t, agentws__buf *b) {
  b->len = 0;
  if (b->cap > 0 && b->cap <= CACHE_MAX_CAP &&
      t->buf_cache_len < sizeof(t->buf_cache) / sizeof(t->buf_cache[0])) {
    t->buf_cache[t->buf_cache_len++] = *b;
    b->data = NULL;
    b->cap = 0;
    return;
  }
  agentws__buf_free(b, t->mem);
}

int agentws__writer_reserve(agentws__conn *c, size_t len, int bypass) {
  uint64_t q = queued(c);
  if (!bypass && q > 0 && q + len > c->t->cfg->max_queued_bytes)
    return AGENTWS_ERR_QUEUE_FULL;
  take_cached(c);
  return agentws__buf_reserve(&c->out, c->t->mem, len);
}

void agentws__writer_mark_dirty(agentws__conn *c) {
  if (agentws__list_linked(&c->dnode))
    return;
  agentws__list_push_back(&c->t->dirty, &c->dnode);
  /* The check phase follows poll; with the idle handle running, poll does
   * not block, so output queued from timers or before uv_run leaves now. */
  agentws__transport_kick(c->t);
}

int agentws__writer_append(agentws__conn *c, const void *data, size_t len,
                           int bypass) {
  int rv = agentws__writer_reserve(c, len, bypass);
  if (rv != 0)
    return rv;
  memcpy(c->out.data + c->out.len, data, len);
  c->out.len += len;
  agentws__writer_mark_dirty(c);
  return 0;
}

/* Drops queued frames, but never the 101 still in front of them: a client
 * must see its upgrade before the close that follows. */
void agentws__writer_discard(agentws__conn *c) {
  c->out.len = c->out_keep < c->out.len ? c->out_keep : c->out.len;
  agentws__segs_drop(c); /* shared frames follow the 101 */
}

void agentws__writer_release(agentws__conn *c) {
  give_back(c->t, &c->out);
  agentws__segs_drop(c);
}

static void write_cb(uv_write_t *req, int status) {
  write_req *wr = (write_req *)req;
  agentws__conn *c = req->data;
  agentws__transport *t = c->t;
  c->write_pending = 0;
  c->inflight = 0;
  if (status == 0)
    agentws__stat_add(t->stats, AGENTWS_STAT_BYTES_SENT, wr->buf.len);
  give_back(t, &wr->buf);
  agentws__mem_free(t->mem, wr);
  if (c->state == AGENTWS__CONN_DEAD)
    return;
  if (status < 0) {
    agentws__conn_kill(c, AGENTWS_CLOSE_ABNORMAL, "write failed");
    return;
  }
  if (agentws__writer_pending(c))
    agentws__writer_mark_dirty(c);
  else
    agentws__conn_flushed(c);
}

static void flush_one(agentws__conn *c) {
  agentws__transport *t = c->t;
  uv_buf_t b;
  write_req *wr;
  int n;
  if (!agentws__writer_pending(c)) {
    agentws__conn_flushed(c);
    return;
  }
  n = agentws__writer_try_send(c);
  if (n == UV_EAGAIN)
    n = 0;
  if (n < 0) {
    agentws__conn_kill(c, AGENTWS_CLOSE_ABNORMAL, "write failed");
    return;
  }
  agentws__stat_add(t->stats, AGENTWS_STAT_BYTES_SENT, (uint64_t)n);
  c->out_keep = 0; /* written, or moved to the write request below */
  if (c->nsegs > 0) {
    if ((uint64_t)n == c->out.len + c->seg_bytes) {
      agentws__segs_drop(c);
      c->out.len = 0;
      give_back(t, &c->out);
      agentws__conn_flushed(c);
      return;
    }
    /* The kernel is full: the rest, copied once, goes to uv_write. */
    if (agentws__segs_materialize(c, (size_t)n) != 0) {
      agentws__conn_kill(c, AGENTWS_CLOSE_INTERNAL_ERROR, "out of memory");
      return;
    }
    n = 0;
  }
  if ((size_t)n == c->out.len) {
    c->out.len = 0;
    /* Idle connections hold no output buffer. */
    give_back(t, &c->out);
    agentws__conn_flushed(c);
    return;
  }
  /* The kernel is full: hand the rest to uv_write, which owns the buffer
   * until its callback; new output goes to a fresh buffer meanwhile. */
  wr = agentws__mem_malloc(t->mem, sizeof(*wr));
  if (wr == NULL) {
    agentws__conn_kill(c, AGENTWS_CLOSE_INTERNAL_ERROR, "out of memory");
    return;
  }
  agentws__buf_consume(&c->out, (size_t)n);
  wr->buf = c->out;
  memset(&c->out, 0, sizeof(c->out));
  wr->req.data = c;
  b = uv_buf_init((char *)wr->buf.data, (unsigned)wr->buf.len);
  n = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
  if (n != 0) {
    give_back(t, &wr->buf);
    agentws__mem_free(t->mem, wr);
    agentws__conn_kill(c, AGENTWS_CLOSE_ABNORMAL, "write failed");
    return;
  }
  c->write_pending = 1;
  c->inflight = wr->buf.len;
}

void agentws__writer_flush_all(agentws__transport *t) {
  while (!agentws__list_empty(&t->dirty)) {
    agentws__conn *c =
        AGENTWS__CONTAINER_OF(t->dirty.next, agentws__conn, dnode);
    agentws__list_remove(&c->dnode);
    if (c->state == AGENTWS__CONN_DEAD || c->write_pending)
      continue; /* write_cb re-marks it */
    flush_one(c);
  }
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  agentws__conn *c = req->data;
  (void)status;
  agentws__mem_free(c->t->mem, req);
}

void agentws__conn_flushed(agentws__conn *c) {
  uv_shutdown_t *req;
  if (c->state == AGENTWS__CONN_WS) {
    if (c->t->hooks.on_writable != NULL)
      c->t->hooks.on_writable(c, c->t->hooks.user_data);
    return;
  }
  if (c->state == AGENTWS__CONN_CLOSING && c->close_received) {
    /* Close handshake done; the server closes TCP first (RFC 6455 7.1.1) */
    agentws__conn_kill(c, c->close_code, NULL);
    return;
  }
  if (!(c->state == AGENTWS__CONN_LINGER ||
        (c->state == AGENTWS__CONN_CLOSING && c->linger_after_flush)) ||
      c->shutdown_sent)
    return;
  /* Send FIN and read until the peer's EOF (or close_timeout), so unread
   * input never turns our last bytes into a reset. */
  c->state = AGENTWS__CONN_LINGER;
  c->shutdown_sent = 1;
  req = agentws__mem_malloc(c->t->mem, sizeof(*req));
  if (req == NULL) {
    agentws__conn_kill(c, 0, NULL);
    return;
  }
  req->data = c;
  if (uv_shutdown(req, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) {
    agentws__mem_free(c->t->mem, req);
    agentws__conn_kill(c, 0, NULL);
  }
}
