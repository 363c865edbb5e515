/*
 * wslay glue. Input: a wslay event context (~8.8 KB) is lent to a
 * connection only while it has a frame or message in progress and given
 * back at a message boundary, so an idle connection holds none. Output: one
 * shared wslay frame context frames every outgoing message straight into
 * the connection's output buffer (server frames are unmasked, so framing
 * keeps no per-connection state).
 */
#include <string.h>
#include <wslay/wslay.h>

#include "agentws_transport.h"
#include "agentws_utf8.h"

#define POOL_MAX 64 /* idle contexts kept for reuse */

struct agentws__ws_slot {
  wslay_event_context_ptr ctx; /* user_data of ctx is this slot */
  agentws__conn *conn;         /* borrower, NULL while pooled */
  const uint8_t *rx;           /* input being fed */
  size_t rx_len, rx_off;
  int nomem;                   /* send_cb ran out of memory */
  agentws__ws_slot *next;      /* pool link */
};

/* ---------------------------------------------------------------- input */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *ud) {
  agentws__ws_slot *s = ud;
  size_t n = s->rx_len - s->rx_off;
  (void)flags;
  if (n == 0 || s->conn->state == AGENTWS__CONN_DEAD) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (n > len)
    n = len;
  memcpy(buf, s->rx + s->rx_off, n);
  s->rx_off += n;
  s->conn->ws_handed += n;
  return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *ud) {
  agentws__ws_slot *s = ud;
  agentws__conn *c = s->conn;
  (void)flags;
  /* After our own close frame nothing else may follow (wslay would echo
   * the peer's close a second time). */
  if (c->our_close || c->state == AGENTWS__CONN_DEAD)
    return (ssize_t)len;
  if (agentws__writer_append(c, data, len, 1) != 0) {
    s->nomem = 1;
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return (ssize_t)len;
}

static void frame_start_cb(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *a,
                           void *ud) {
  agentws__ws_slot *s = ud;
  agentws__conn *c = s->conn;
  uint64_t hdr = 2 + 4; /* base header + mask key (clients always mask) */
  (void)ctx;
  if (a->payload_length >= 65536)
    hdr += 8;
  else if (a->payload_length >= 126)
    hdr += 2;
  c->ws_consumed += hdr;
  c->in_frame = 1;
  if (a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME ||
      a->opcode == WSLAY_CONTINUATION_FRAME)
    c->frag = !a->fin;
}

static void frame_chunk_cb(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *a,
                           void *ud) {
  agentws__ws_slot *s = ud;
  (void)ctx;
  s->conn->ws_consumed += a->data_length;
}

static void frame_end_cb(wslay_event_context_ptr ctx, void *ud) {
  agentws__ws_slot *s = ud;
  (void)ctx;
  s->conn->in_frame = 0;
}

static void msg_cb(wslay_event_context_ptr ctx,
                   const struct wslay_event_on_msg_recv_arg *a, void *ud) {
  agentws__ws_slot *s = ud;
  agentws__conn *c = s->conn;
  agentws__transport *t = c->t;
  int rv;
  if (a->opcode == WSLAY_CONNECTION_CLOSE) {
    if (a->msg_length == 1) /* a body must start with a 2-byte code */
      agentws__ws_close(c, AGENTWS_CLOSE_PROTOCOL_ERROR, "protocol error",
                        14, 1);
    c->close_received = 1;
    if (!c->our_close)
      agentws__conn_set_close_info(
          c, a->status_code ? a->status_code : AGENTWS_CLOSE_NO_STATUS,
          a->msg_length > 2 ? (const char *)a->msg + 2 : NULL,
          a->msg_length > 2 ? a->msg_length - 2 : 0);
    return;
  }
  if (a->opcode == WSLAY_PING) {
    /* wslay queued the pong; send it now so it precedes anything the host
     * sends in answer to the messages after the ping. */
    wslay_event_send(ctx);
    return;
  }
  if ((a->opcode != WSLAY_TEXT_FRAME && a->opcode != WSLAY_BINARY_FRAME) ||
      c->state != AGENTWS__CONN_WS)
    return; /* data after our close frame is ignored */
  agentws__conn_touch_msg(c);
  if (t->hooks.on_message == NULL)
    return;
  rv = t->hooks.on_message(c,
                           a->opcode == WSLAY_TEXT_FRAME ? AGENTWS_MSG_TEXT
                                                         : AGENTWS_MSG_BINARY,
                           a->msg, a->msg_length, t->hooks.user_data);
  if (rv != 0 && c->state == AGENTWS__CONN_WS) {
    wslay_event_shutdown_read(ctx);
    agentws__ws_close(c, AGENTWS_CLOSE_INTERNAL_ERROR, "callback failure", 16,
                      1);
  }
}

static const struct wslay_event_callbacks event_cbs = {
    recv_cb,        send_cb,        NULL,         frame_start_cb,
    frame_chunk_cb, frame_end_cb,   msg_cb};

static agentws__ws_slot *lend(agentws__conn *c) {
  agentws__transport *t = c->t;
  agentws__ws_slot *s = t->ws_pool;
  if (s != NULL) {
    t->ws_pool = s->next;
    t->ws_pool_len--;
  } else {
    s = agentws__mem_calloc(t->mem, 1, sizeof(*s));
    if (s == NULL)
      return NULL;
    if (wslay_event_context_server_init(&s->ctx, &event_cbs, s) != 0) {
      agentws__mem_free(t->mem, s);
      return NULL;
    }
  }
  s->conn = c;
  s->next = NULL;
  wslay_event_config_set_max_recv_msg_length(s->ctx,
                                             t->cfg->max_message_size);
  c->ws = s;
  c->ws_handed = c->ws_consumed = 0;
  return s;
}

/* Pools the context only when it holds nothing of this connection. */
static void give_back(agentws__conn *c, int clean) {
  agentws__transport *t = c->t;
  agentws__ws_slot *s = c->ws;
  c->ws = NULL;
  s->conn = NULL;
  s->rx = NULL;
  s->rx_len = s->rx_off = 0;
  if (clean && t->ws_pool_len < POOL_MAX) {
    s->next = t->ws_pool;
    t->ws_pool = s;
    t->ws_pool_len++;
    return;
  }
  wslay_event_context_free(s->ctx);
  agentws__mem_free(t->mem, s);
}

void agentws__ws_release(agentws__conn *c) {
  if (c->ws != NULL)
    give_back(c, 0);
}

void agentws__ws_feed(agentws__conn *c, const uint8_t *data, size_t len) {
  agentws__ws_slot *s = c->ws;
  int rv;
  if (s == NULL && (s = lend(c)) == NULL) {
    agentws__conn_kill(c, AGENTWS_CLOSE_INTERNAL_ERROR, "out of memory");
    return;
  }
  s->rx = data;
  s->rx_len = len;
  s->rx_off = 0;
  rv = wslay_event_recv(s->ctx);
  if (rv == 0 && c->state != AGENTWS__CONN_DEAD)
    rv = wslay_event_send(s->ctx);
  s->rx = NULL;
  s->rx_len = s->rx_off = 0;
  if (c->state == AGENTWS__CONN_DEAD)
    return;
  if (rv != 0) {
    if (rv == WSLAY_ERR_NOMEM || s->nomem) {
      agentws__conn_kill(c, AGENTWS_CLOSE_INTERNAL_ERROR, "out of memory");
      return;
    }
    /* The frame layer refused the input (bad control frame length, bad
     * close payload): wslay queued a close without a code, so frame our
     * own 1002 first; its empty close is then dropped. */
    agentws__ws_close(c, AGENTWS_CLOSE_PROTOCOL_ERROR, "protocol error", 14,
                      1);
    if (c->state != AGENTWS__CONN_DEAD)
      agentws__writer_mark_dirty(c);
    return;
  }
  if (wslay_event_get_close_sent(s->ctx) && !c->close_sent) {
    /* wslay refused the input (1002/1007/1009) or echoed the peer's
     * close: report that code, and after an error don't wait. */
    int code = wslay_event_get_status_code_sent(s->ctx);
    c->close_sent = 1;
    if (!c->close_received) {
      agentws__conn_set_close_info(c, code, NULL, 0);
      c->linger_after_flush = 1;
    }
    if (c->state == AGENTWS__CONN_WS) {
      c->state = AGENTWS__CONN_CLOSING;
      agentws__list_remove(&c->inode);
      agentws__conn_set_timer(c, AGENTWS__TL_CLOSING);
    }
  }
  if (c->close_received && c->state == AGENTWS__CONN_WS) {
    c->state = AGENTWS__CONN_CLOSING;
    agentws__list_remove(&c->inode);
    agentws__conn_set_timer(c, AGENTWS__TL_CLOSING);
  }
  if (c->close_received || c->close_sent) {
    agentws__writer_mark_dirty(c); /* conn_flushed() finishes the close */
    return;
  }
  if (c->ws_handed == c->ws_consumed && !c->in_frame && !c->frag &&
      wslay_event_get_queued_msg_count(s->ctx) == 0 &&
      wslay_event_get_read_enabled(s->ctx))
    give_back(c, 1);
}

/* --------------------------------------------------------------- output */

static ssize_t enc_send_cb(const uint8_t *data, size_t len, int flags,
                           void *ud) {
  agentws__transport *t = ud;
  agentws__buf *b = t->enc_target;
  (void)flags;
  /* Room was reserved before framing: this cannot fail. */
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return (ssize_t)len;
}

static ssize_t enc_recv_cb(uint8_t *buf, size_t len, int flags, void *ud) {
  (void)buf;
  (void)len;
  (void)flags;
  (void)ud;
  return -1; /* the encoder never reads */
}

static int enc_genmask_cb(uint8_t *buf, size_t len, void *ud) {
  (void)ud;
  memset(buf, 0, len); /* server frames are never masked */
  return 0;
}

static const struct wslay_frame_callbacks frame_cbs = {
    enc_send_cb, enc_recv_cb, enc_genmask_cb};

int agentws__ws_init(agentws__transport *t) {
  wslay_frame_context_ptr f;
  if (wslay_frame_context_init(&f, &frame_cbs, t) != 0)
    return AGENTWS_ERR_NOMEM;
  t->enc = f;
  return 0;
}

void agentws__ws_free(agentws__transport *t) {
  while (t->ws_pool != NULL) {
    agentws__ws_slot *s = t->ws_pool;
    t->ws_pool = s->next;
    wslay_event_context_free(s->ctx);
    agentws__mem_free(t->mem, s);
  }
  t->ws_pool_len = 0;
  if (t->enc != NULL)
    wslay_frame_context_free(t->enc);
  t->enc = NULL;
}

static int frame(agentws__conn *c, int opcode, const uint8_t *data,
                 size_t len, int control) {
  agentws__transport *t = c->t;
  struct wslay_frame_iocb iocb;
  ssize_t r;
  int rv = agentws__writer_reserve(c, len + 14, control);
  if (rv != 0)
    return rv;
  memset(&iocb, 0, sizeof(iocb));
  iocb.fin = 1;
  iocb.opcode = (uint8_t)opcode;
  iocb.payload_length = len;
  iocb.data = data;
  iocb.data_length = len;
  t->enc_target = &c->out;
  r = wslay_frame_send(t->enc, &iocb);
  t->enc_target = NULL;
  if (r < 0 || (size_t)r != len)
    return AGENTWS_ERR_INTERNAL;
  agentws__writer_mark_dirty(c);
  return 0;
}

int agentws__ws_send(agentws__conn *c, int opcode, const uint8_t *data,
                     size_t len, int control) {
  int rv;
  if (c->state != AGENTWS__CONN_WS)
    return AGENTWS_ERR_CLOSING;
  rv = frame(c, opcode, data, len, control);
  if (rv == AGENTWS_ERR_QUEUE_FULL) {
    /* The peer is not reading: free what waits and say why. */
    agentws__writer_discard(c);
    agentws__ws_close(c, AGENTWS_CLOSE_TRY_AGAIN_LATER, "slow consumer", 13,
                      1);
  } else if (rv == 0 && !control) {
    agentws__conn_touch_msg(c);
  }
  return rv;
}

int agentws__ws_close(agentws__conn *c, int code, const char *reason,
                      size_t len, int linger) {
  uint8_t payload[125];
  if (c->state != AGENTWS__CONN_WS)
    return AGENTWS_ERR_CLOSING;
  if (len > 123)
    len = 123;
  payload[0] = (uint8_t)(code >> 8);
  payload[1] = (uint8_t)(code & 0xff);
  if (len > 0)
    memcpy(payload + 2, reason, len);
  if (frame(c, WSLAY_CONNECTION_CLOSE, payload, len + 2, 1) != 0) {
    agentws__conn_kill(c, code, "out of memory");
    return 0;
  }
  agentws__conn_set_close_info(c, code, reason, len);
  c->close_sent = 1;
  c->our_close = 1;
  c->linger_after_flush = linger ? 1 : 0;
  c->state = AGENTWS__CONN_CLOSING;
  agentws__list_remove(&c->inode);
  agentws__conn_set_timer(c, AGENTWS__TL_CLOSING);
  return 0;
}
