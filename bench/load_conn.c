/*
 * agentws-load: one client connection.
 *
 * TCP connect, the HTTP upgrade, client framing through wslay's frame API,
 * and batched writes: frames queued while handling a loop turn accumulate
 * in conn.out and leave in one uv_write per connection (load_flush_dirty,
 * called from a uv_check handle after every poll).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "load.h"

#define HEAD_MAX 8192 /* an upgrade response larger than this is refused */

static void on_close(uv_handle_t *h);
static void flush_one(struct conn *c);
static void conn_free(struct conn *c);

uint64_t load_rand64(struct load *ld) {
  /* xorshift64*: masks only need to be unpredictable to proxies, not to an
   * attacker, and a syscall per frame would dominate the client's cost. */
  uint64_t x = ld->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  ld->rng = x;
  return x * 2685821657736338717ull;
}

static int bbuf_append(struct bbuf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    uint8_t *np;
    while (cap < b->len + n) {
      cap *= 2;
    }
    np = realloc(b->p, cap);
    if (np == NULL) {
      return -1;
    }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

static void bbuf_free(struct bbuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static void mark_dirty(struct conn *c) {
  if (!c->dirty) {
    c->dirty = 1;
    c->next_dirty = c->ld->dirty;
    c->ld->dirty = c;
  }
}

static int queue_bytes(struct conn *c, const void *p, size_t n) {
  if (bbuf_append(&c->out, p, n) != 0) {
    return -1;
  }
  mark_dirty(c);
  return 0;
}

/* ---- wslay frame callbacks: wslay reads from conn.in, writes to conn.out */

static ssize_t ws_send_cb(const uint8_t *data, size_t len, int flags,
                          void *user_data) {
  struct conn *c = user_data;
  (void)flags;
  if (bbuf_append(&c->out, data, len) != 0) {
    return -1;
  }
  return (ssize_t)len;
}

static ssize_t ws_recv_cb(uint8_t *buf, size_t len, int flags,
                          void *user_data) {
  struct conn *c = user_data;
  size_t n = c->in_len < len ? c->in_len : len;
  (void)flags;
  if (n == 0) {
    return 0; /* wslay turns this into WSLAY_ERR_WANT_READ */
  }
  memcpy(buf, c->in, n);
  c->in += n;
  c->in_len -= n;
  return (ssize_t)n;
}

static int ws_genmask_cb(uint8_t *buf, size_t len, void *user_data) {
  struct conn *c = user_data;
  while (len > 0) {
    uint64_t r = load_rand64(c->ld);
    size_t n = len < sizeof(r) ? len : sizeof(r);
    memcpy(buf, &r, n);
    buf += n;
    len -= n;
  }
  return 0;
}

/* Queue one complete client (masked) frame. */
static int ws_send_frame(struct conn *c, uint8_t opcode, const uint8_t *p,
                         size_t n) {
  struct wslay_frame_iocb io;
  ssize_t r;
  memset(&io, 0, sizeof(io));
  io.fin = 1;
  io.opcode = opcode;
  io.mask = 1;
  io.payload_length = n;
  io.data = p;
  io.data_length = n;
  /* The send callback accepts everything, so one call writes the frame. */
  r = wslay_frame_send(c->fctx, &io);
  if (r < 0 || (size_t)r != n) {
    return -1;
  }
  mark_dirty(c);
  return 0;
}

/* ---- state bookkeeping */

static void set_open(struct conn *c) {
  struct load *ld = c->ld;
  c->state = CS_OPEN;
  ld->pending--;
  ld->open++;
  ld->opened++;
  load_on_open(c);
}

void load_conn_close(struct conn *c) {
  struct load *ld = c->ld;
  enum conn_state was = c->state;
  if (was == CS_CLOSED || was == CS_IDLE) {
    return;
  }
  c->state = CS_CLOSED;
  if (was == CS_CONNECTING || was == CS_UPGRADING) {
    ld->pending--;
  } else {
    ld->open--;
  }
  uv_close((uv_handle_t *)&c->tcp, on_close);
  if (was == CS_CONNECTING || was == CS_UPGRADING) {
    load_on_conn_failed(c);
  }
}

static void fail(struct conn *c, uint64_t *counter) {
  /* Errors after the drain started are the expected end of a connection. */
  if (c->ld->phase < PH_DRAIN || c->state == CS_CONNECTING ||
      c->state == CS_UPGRADING) {
    (*counter)++;
  }
  load_conn_close(c);
}

static void on_close(uv_handle_t *h) {
  struct conn *c = h->data;
  conn_free(c);
  c->ld->handles--;
  load_on_closed(c);
}

static void conn_free(struct conn *c) {
  if (c->fctx != NULL) {
    wslay_frame_context_free(c->fctx);
    c->fctx = NULL;
  }
  bbuf_free(&c->head);
  bbuf_free(&c->out);
  bbuf_free(&c->wbuf);
  bbuf_free(&c->msg);
  free(c->sent_ts);
  c->sent_ts = NULL;
}

/* ---- writing */

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct conn *c = req->data;
  if (status < 0 && status != UV_ECANCELED && c->state != CS_CLOSED) {
    load_conn_close(c);
  }
}

static void do_shutdown(struct conn *c) {
  c->want_shutdown = 0;
  c->sreq.data = c;
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    load_conn_close(c);
  }
}

static void on_write(uv_write_t *req, int status) {
  struct conn *c = req->data;
  c->writing = 0;
  c->wbuf.len = 0;
  if (status < 0) {
    if (status != UV_ECANCELED && c->state != CS_CLOSED) {
      fail(c, &c->ld->err.io);
    }
    return;
  }
  if (c->out.len > 0) {
    flush_one(c);
  } else if (c->want_shutdown) {
    do_shutdown(c);
  } else if (c->close_after_write) {
    load_conn_close(c);
  }
}

static void flush_one(struct conn *c) {
  struct bbuf tmp;
  uv_buf_t b;
  if (c->writing || c->out.len == 0 || c->state == CS_CLOSED) {
    return;
  }
  /* Swap buffers: wbuf belongs to the write in flight, out keeps filling. */
  tmp = c->wbuf;
  c->wbuf = c->out;
  c->out = tmp;
  c->out.len = 0;
  b = uv_buf_init((char *)c->wbuf.p, (unsigned)c->wbuf.len);
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
    fail(c, &c->ld->err.io);
    return;
  }
  c->writing = 1;
  if (c->want_shutdown && c->out.len == 0) {
    do_shutdown(c); /* libuv orders it after the write just queued */
  }
}

void load_flush_dirty(struct load *ld) {
  while (ld->dirty != NULL) {
    struct conn *c = ld->dirty;
    ld->dirty = c->next_dirty;
    c->next_dirty = NULL;
    c->dirty = 0;
    flush_one(c);
  }
}

/* ---- sending */

int load_conn_send_msg(struct conn *c) {
  struct load *ld = c->ld;
  int r;
  if (c->state != CS_OPEN || c->ts_count >= ld->o.pipeline) {
    return -1;
  }
  if (ld->o.raw) {
    r = queue_bytes(c, ld->payload, ld->o.size);
  } else {
    r = ws_send_frame(c, ld->o.binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME,
                      ld->payload, ld->o.size);
  }
  if (r != 0) {
    fail(c, &ld->err.io);
    return -1;
  }
  c->sent_ts[(c->ts_head + c->ts_count) % ld->o.pipeline] = ld->now;
  c->ts_count++;
  return 0;
}

int load_conn_send_text(struct conn *c, const char *text, size_t len) {
  if (c->state != CS_OPEN || c->fctx == NULL) {
    return -1;
  }
  if (ws_send_frame(c, WSLAY_TEXT_FRAME, (const uint8_t *)text, len) != 0) {
    fail(c, &c->ld->err.io);
    return -1;
  }
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* --stall: stop taking bytes from the socket, so the server's output to
 * this connection piles up in the kernel buffers and then in its queue. */
void load_conn_stall(struct conn *c) {
  if (c->stalled || c->state != CS_OPEN) {
    return;
  }
  c->stalled = 1;
  uv_read_stop((uv_stream_t *)&c->tcp);
}

void load_conn_begin_close(struct conn *c) {
  if (c->stalled && c->state != CS_CLOSED) {
    /* Read again: whatever the server sent, up to its close frame (1013
     * if it closed the connection as a slow consumer), is still buffered. */
    c->stalled = 0;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
      load_conn_close(c);
      return;
    }
  }
  if (c->state == CS_CONNECTING || c->state == CS_UPGRADING) {
    load_conn_close(c);
    return;
  }
  if (c->state != CS_OPEN || c->close_sent) {
    return;
  }
  c->close_sent = 1;
  c->state = CS_CLOSING;
  if (c->fctx == NULL) {
    /* Raw TCP: send FIN after the queued bytes; the echo server answers
     * with its own FIN once it has written everything back. */
    c->want_shutdown = 1;
    if (!c->writing && c->out.len == 0) {
      do_shutdown(c);
    } else {
      flush_one(c);
    }
    return;
  }
  {
    static const uint8_t normal[2] = {0x03, 0xe8}; /* 1000, normal closure */
    if (ws_send_frame(c, WSLAY_CONNECTION_CLOSE, normal, sizeof(normal)) != 0) {
      load_conn_close(c);
    }
  }
}

/* ---- receiving */

static void on_ctrl_frame(struct conn *c) {
  struct load *ld = c->ld;
  if (c->frame_opcode == WSLAY_PING) {
    if (c->state == CS_OPEN &&
        ws_send_frame(c, WSLAY_PONG, c->ctrl, c->ctrl_len) != 0) {
      fail(c, &ld->err.io);
    }
  } else if (c->frame_opcode == WSLAY_CONNECTION_CLOSE) {
    if (c->peer_close == 0) {
      c->peer_close = c->ctrl_len >= 2 ? (c->ctrl[0] << 8 | c->ctrl[1]) : 1005;
    }
    if (c->close_sent) {
      /* Our close was answered: done. Reconnect mode waits for the
       * server's FIN instead, so the server closes the TCP connection
       * first and TIME_WAIT stays on its side, not on our ports. */
      if (ld->o.mode != MODE_RECONNECT) {
        load_conn_close(c);
      }
      return;
    }
    if (ld->phase < PH_DRAIN) {
      ld->err.closed++;
    }
    /* Answer with the peer's status code, then close the socket. */
    c->close_sent = 1;
    c->state = CS_CLOSING;
    c->close_after_write = 1;
    if (ws_send_frame(c, WSLAY_CONNECTION_CLOSE, c->ctrl,
                      c->ctrl_len >= 2 ? 2 : 0) != 0) {
      load_conn_close(c);
    }
  }
}

static void on_frame_chunk(struct conn *c, const struct wslay_frame_iocb *io) {
  struct load *ld = c->ld;
  int ctrl;
  if (!c->in_frame) {
    c->in_frame = 1;
    c->frame_left = io->payload_length;
    c->frame_opcode = io->opcode;
    if (wslay_is_ctrl_frame(io->opcode)) {
      c->ctrl_len = 0;
    } else if (io->opcode != WSLAY_CONTINUATION_FRAME) {
      c->msg_opcode = io->opcode;
      c->msg_len = 0;
      c->msg.len = 0;
    }
  }
  ctrl = wslay_is_ctrl_frame(c->frame_opcode);
  if (ctrl) {
    /* wslay rejects control payloads over 125 bytes, so this fits. */
    memcpy(c->ctrl + c->ctrl_len, io->data, io->data_length);
    c->ctrl_len += io->data_length;
  } else {
    c->msg_len += io->data_length;
    if (ld->o.mode == MODE_FANOUT && c->msg_opcode == WSLAY_TEXT_FRAME &&
        c->msg.len < ld->o.max_msg) {
      size_t room = ld->o.max_msg - c->msg.len;
      size_t n = io->data_length < room ? io->data_length : room;
      if (bbuf_append(&c->msg, io->data, n) != 0) {
        fail(c, &ld->err.io);
        return;
      }
    }
  }
  c->frame_left -= io->data_length;
  if (c->frame_left > 0) {
    return;
  }
  c->in_frame = 0;
  if (ctrl) {
    on_ctrl_frame(c);
  } else if (io->fin) {
    if (ld->o.mode == MODE_FANOUT && c->msg_opcode == WSLAY_TEXT_FRAME) {
      /* NUL outside len, so the ts scan can use strstr */
      if (bbuf_append(&c->msg, "", 1) != 0) {
        fail(c, &ld->err.io);
        return;
      }
      c->msg.len--;
    }
    load_on_message(c);
  }
}

static void ws_feed(struct conn *c, const uint8_t *p, size_t n) {
  c->in = p;
  c->in_len = n;
  while (c->state == CS_OPEN || c->state == CS_CLOSING) {
    struct wslay_frame_iocb io;
    ssize_t r;
    memset(&io, 0, sizeof(io));
    r = wslay_frame_recv(c->fctx, &io);
    if (r == WSLAY_ERR_WANT_READ) {
      break; /* everything in |p| has been taken */
    }
    if (r < 0) {
      fail(c, &c->ld->err.protocol);
      break;
    }
    on_frame_chunk(c, &io);
  }
  c->in = NULL;
  c->in_len = 0;
}

static void raw_feed(struct conn *c, size_t n) {
  size_t size = c->ld->o.size;
  c->raw_rx += n;
  while (c->raw_rx >= size && (c->state == CS_OPEN || c->state == CS_CLOSING)) {
    c->raw_rx -= size;
    c->msg_len = size;
    load_on_message(c);
  }
}

/* Returns the offset just past "\r\n\r\n", or 0 if not there yet. */
static size_t head_end(const struct bbuf *b, size_t from) {
  size_t i;
  for (i = from; i + 4 <= b->len; i++) {
    if (memcmp(b->p + i, "\r\n\r\n", 4) == 0) {
      return i + 4;
    }
  }
  return 0;
}

static int status_is_101(const uint8_t *p, size_t n) {
  /* "HTTP/1.1 101 Switching Protocols" */
  return n >= 13 && memcmp(p, "HTTP/1.", 7) == 0 && p[8] == ' ' &&
         memcmp(p + 9, "101", 3) == 0 && (p[12] == ' ' || p[12] == '\r');
}

static void upgrade_feed(struct conn *c, const uint8_t *p, size_t n) {
  struct load *ld = c->ld;
  size_t from = c->head.len >= 3 ? c->head.len - 3 : 0;
  size_t end;
  if (c->head.len + n > HEAD_MAX || bbuf_append(&c->head, p, n) != 0) {
    fail(c, &ld->err.handshake);
    return;
  }
  end = head_end(&c->head, from);
  if (end == 0) {
    return;
  }
  if (!status_is_101(c->head.p, c->head.len)) {
    fail(c, &ld->err.handshake);
    return;
  }
  set_open(c);
  if (c->state == CS_OPEN && end < c->head.len) {
    ws_feed(c, c->head.p + end, c->head.len - end); /* frames sent right after the 101 */
  }
  bbuf_free(&c->head);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct conn *c = h->data;
  (void)hint;
  /* One shared buffer: read_cb consumes it before the next alloc. */
  *buf = uv_buf_init((char *)c->ld->rbuf, (unsigned)c->ld->rbuf_len);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = s->data;
  struct load *ld = c->ld;
  if (nread == 0) {
    return;
  }
  ld->now = uv_hrtime();
  if (ld->o.mode == MODE_FANOUT) {
    /* One wall-clock read per read callback: every message in this batch
     * was in the kernel by now, and a clock read per message costs. */
    uv_timeval64_t tv;
    if (uv_gettimeofday(&tv) == 0) {
      ld->wall_us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
    }
  }
  if (nread < 0) {
    if (c->state == CS_UPGRADING) {
      fail(c, &ld->err.handshake);
    } else if (c->close_sent) {
      load_conn_close(c); /* the end of a close handshake */
    } else if (nread == UV_EOF) {
      fail(c, &ld->err.closed);
    } else {
      fail(c, &ld->err.io);
    }
    return;
  }
  if (c->state == CS_UPGRADING) {
    upgrade_feed(c, (const uint8_t *)buf->base, (size_t)nread);
  } else if (c->fctx != NULL) {
    ws_feed(c, (const uint8_t *)buf->base, (size_t)nread);
  } else {
    raw_feed(c, (size_t)nread);
  }
}

/* The request line's target: path, then the query with "%d" replaced. */
static int append_target(struct conn *c) {
  const struct load_opts *o = &c->ld->o;
  const char *q = o->query;
  if (queue_bytes(c, o->path, strlen(o->path)) != 0) {
    return -1;
  }
  if (q == NULL || *q == '\0') {
    return 0;
  }
  if (queue_bytes(c, "?", 1) != 0) {
    return -1;
  }
  while (*q != '\0') {
    if (q[0] == '%' && q[1] == 'd') {
      char num[16];
      int n = snprintf(num, sizeof(num), "%d",
                       o->users > 0 ? c->idx % o->users : c->idx);
      if (queue_bytes(c, num, (size_t)n) != 0) {
        return -1;
      }
      q += 2;
    } else {
      if (queue_bytes(c, q, 1) != 0) {
        return -1;
      }
      q++;
    }
  }
  return 0;
}

static int send_upgrade(struct conn *c) {
  struct load *ld = c->ld;
  unsigned char raw[16];
  unsigned char key[32];
  char line[512];
  uint64_t r0 = load_rand64(ld), r1 = load_rand64(ld);
  int i, n;
  memcpy(raw, &r0, 8);
  memcpy(raw + 8, &r1, 8);
  EVP_EncodeBlock(key, raw, (int)sizeof(raw)); /* 24 chars + NUL */
  if (queue_bytes(c, "GET ", 4) != 0 || append_target(c) != 0) {
    return -1;
  }
  n = snprintf(line, sizeof(line),
               " HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n",
               ld->o.host, ld->o.port, (const char *)key);
  if (n < 0 || (size_t)n >= sizeof(line) || queue_bytes(c, line, (size_t)n) != 0) {
    return -1;
  }
  for (i = 0; i < ld->o.nheaders; i++) {
    const char *h = ld->o.headers[i];
    if (queue_bytes(c, h, strlen(h)) != 0 || queue_bytes(c, "\r\n", 2) != 0) {
      return -1;
    }
  }
  if (ld->o.ntokens > 0) {
    int t = c->idx % ld->o.ntokens;
    static const char bearer[] = "Authorization: Bearer ";
    if (queue_bytes(c, bearer, sizeof(bearer) - 1) != 0 ||
        queue_bytes(c, ld->o.tokens[t], ld->o.token_lens[t]) != 0 ||
        queue_bytes(c, "\r\n", 2) != 0) {
      return -1;
    }
  }
  return queue_bytes(c, "\r\n", 2);
}

static void on_connect(uv_connect_t *req, int status) {
  struct conn *c = req->data;
  struct load *ld = c->ld;
  if (status == UV_ECANCELED || c->state != CS_CONNECTING) {
    return; /* closed by the timeout sweep or the watchdog */
  }
  if (status < 0) {
    fail(c, &ld->err.connect);
    return;
  }
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    fail(c, &ld->err.connect);
    return;
  }
  if (ld->o.raw) {
    set_open(c);
    return;
  }
  c->state = CS_UPGRADING;
  if (send_upgrade(c) != 0) {
    fail(c, &ld->err.io);
    return;
  }
  flush_one(c); /* no need to wait for the check handle */
}

/* Reconnect mode: makes a closed connection (its close callback has run,
 * conn_free done) startable again. The dirty-list link is kept: the
 * struct may still be on load.dirty, which flush_one skips harmlessly. */
void load_conn_reset(struct conn *c) {
  struct load *ld = c->ld;
  int idx = c->idx, dirty = c->dirty;
  struct conn *next_dirty = c->next_dirty;
  memset(c, 0, sizeof(*c));
  c->ld = ld;
  c->idx = idx;
  c->dirty = dirty;
  c->next_dirty = next_dirty;
}

int load_conn_start(struct load *ld, struct conn *c) {
  static const struct wslay_frame_callbacks cbs = {ws_send_cb, ws_recv_cb,
                                                   ws_genmask_cb};
  int r;
  c->ld = ld;
  c->state = CS_CONNECTING;
  c->t_start = uv_hrtime();
  ld->pending++;
  if (ld->o.mode == MODE_ECHO) {
    c->sent_ts = calloc((size_t)ld->o.pipeline, sizeof(*c->sent_ts));
  }
  if ((ld->o.mode == MODE_ECHO && c->sent_ts == NULL) ||
      (!ld->o.raw && wslay_frame_context_init(&c->fctx, &cbs, c) != 0)) {
    c->state = CS_IDLE;
    ld->pending--;
    conn_free(c);
    ld->err.connect++;
    return -1;
  }
  r = uv_tcp_init_ex(ld->loop, &c->tcp, AF_INET);
  if (r == 0) {
    c->tcp.data = c;
    ld->handles++;
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->stall_conn) {
      /* A small window before connecting: the kernel then absorbs little
       * of what the server sends a stalled reader, so the server's queue
       * bound is reached within a run, as with a slow real client. */
      int sz = 4096;
      uv_recv_buffer_size((uv_handle_t *)&c->tcp, &sz);
    }
    c->creq.data = c;
    r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&ld->addr,
                       on_connect);
    if (r != 0) {
      ld->err.connect++; /* EMFILE lands here */
      load_conn_close(c);
      return -1;
    }
    return 0;
  }
  c->state = CS_IDLE;
  ld->pending--;
  conn_free(c);
  ld->err.connect++;
  return -1;
}
