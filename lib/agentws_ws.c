/*
 * wslay glue. Input: wslay's frame layer parses headers, lengths and masks;
 * this file keeps the message layer (RFC 6455 §5.4-5.5: fragments, control
 * frames, close codes, UTF-8, size bound). wslay's event layer would do
 * that too, but it validates UTF-8 a byte at a time through memory and
 * allocates twice per message: measured, 23% of the echo server's CPU.
 * A frame context (~4.2 KB, mostly its input buffer) is lent to a
 * connection only while a frame or message is in progress and given back
 * at a message boundary, so an idle connection holds none.
 * Output: one shared frame context frames every outgoing message straight
 * into the connection's output buffer (server frames are unmasked, so
 * framing keeps no per-connection state).
 */
#include <string.h>
#include <wslay/wslay.h>

#include "agentws_transport.h"
#include "agentws_utf8.h"

#define POOL_MAX 64           /* idle contexts kept for reuse */
#define MSG_KEEP (64u * 1024) /* assembly buffers up to this are kept */

struct agentws__ws_slot {
  wslay_frame_context_ptr f; /* user_data of f is this slot */
  agentws__conn *conn;       /* borrower, NULL while pooled */
  const uint8_t *rx;         /* input being fed */
  size_t rx_len, rx_off;
  uint64_t handed;   /* bytes given to wslay ... */
  uint64_t consumed; /* ... and bytes of frames it reported: equal = empty */
  int in_frame;      /* a frame's payload is still arriving */
  uint8_t op;        /* opcode of that frame */
  uint8_t fin;       /* its FIN bit */
  uint64_t len, off; /* its payload length, bytes seen */
  uint8_t msg_op;    /* data message in progress: TEXT, BINARY or 0 */
  uint32_t utf8;     /* validator state of a text message */
  uint64_t msg_len;  /* announced bytes of the message so far */
  agentws__buf msg;  /* the message, when it spans more than one chunk */
  uint8_t ctrl[125]; /* a control frame's payload, when split */
  size_t ctrl_len;
  agentws__ws_slot *next; /* pool link */
};

/* ---------------------------------------------------------------- input */

static ssize_t recv_cb(uint8_t *buf, size_t len, int flags, void *ud) {
  agentws__ws_slot *s = ud;
  size_t n = s->rx_len - s->rx_off;
  (void)flags;
  if (n == 0)
    return -1; /* wslay: WANT_READ */
  if (n > len)
    n = len;
  memcpy(buf, s->rx + s->rx_off, n);
  s->rx_off += n;
  s->handed += n;
  return (ssize_t)n;
}

static ssize_t unused_send_cb(const uint8_t *d, size_t n, int f, void *ud) {
  (void)d;
  (void)n;
  (void)f;
  (void)ud;
  return -1;
}

static int unused_genmask_cb(uint8_t *buf, size_t len, void *ud) {
  (void)ud;
  memset(buf, 0, len);
  return 0;
}

static const struct wslay_frame_callbacks input_cbs = {
    unused_send_cb, recv_cb, unused_genmask_cb};

/* The peer broke the protocol: say why and stop reading its frames. */
static void fail(agentws__conn *c, int code, const char *why) {
  if (c->state == AGENTWS__CONN_WS)
    agentws__ws_close(c, code, why, strlen(why), 1);
  else if (c->state == AGENTWS__CONN_CLOSING)
    agentws__conn_kill(c, code, why);
}

static int close_code_valid(unsigned code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

static void on_close_frame(agentws__conn *c, const uint8_t *p, size_t n) {
  unsigned code = n >= 2 ? ((unsigned)p[0] << 8) | p[1] : 0;
  uint8_t echo[2];
  if (n == 1 || (n >= 2 && !close_code_valid(code))) {
    fail(c, AGENTWS_CLOSE_PROTOCOL_ERROR, "invalid close frame");
    return;
  }
  if (n > 2 && !agentws__utf8_valid(p + 2, n - 2)) {
    fail(c, AGENTWS_CLOSE_INVALID_PAYLOAD, "invalid UTF-8 in close reason");
    return;
  }
  c->close_received = 1;
  if (c->close_sent)
    return; /* the answer to our close: conn_flushed() ends it */
  agentws__conn_set_close_info(c, code ? (int)code : AGENTWS_CLOSE_NO_STATUS,
                               n > 2 ? (const char *)p + 2 : NULL,
                               n > 2 ? n - 2 : 0);
  /* Echo the code (RFC 6455 §5.5.1); an empty close gets an empty one. */
  echo[0] = p[0];
  echo[1] = n >= 2 ? p[1] : 0;
  if (agentws__ws_send(c, WSLAY_CONNECTION_CLOSE, echo, n >= 2 ? 2 : 0, 1) !=
      0) {
    agentws__conn_kill(c, 0, NULL);
    return;
  }
  c->close_sent = 1;
  c->our_close = 1;
  c->state = AGENTWS__CONN_CLOSING;
  agentws__list_remove(&c->inode);
  agentws__conn_set_timer(c, AGENTWS__TL_CLOSING);
}

static void on_control(agentws__conn *c, int op, const uint8_t *p, size_t n) {
  if (op == WSLAY_CONNECTION_CLOSE)
    on_close_frame(c, p, n);
  else if (op == WSLAY_PING && c->state == AGENTWS__CONN_WS)
    agentws__ws_send(c, WSLAY_PONG, p, n, 1);
  /* a pong only proves liveness, which the read already recorded */
}

static void deliver(agentws__conn *c, int op, const uint8_t *p, size_t n) {
  agentws__transport *t = c->t;
  int rv;
  if (c->state != AGENTWS__CONN_WS)
    return; /* data after our close frame is ignored */
  agentws__conn_touch_msg(c);
  if (t->hooks.on_message == NULL)
    return;
  rv = t->hooks.on_message(
      c, op == WSLAY_TEXT_FRAME ? AGENTWS_MSG_TEXT : AGENTWS_MSG_BINARY, p, n,
      t->hooks.user_data);
  if (rv != 0)
    fail(c, AGENTWS_CLOSE_INTERNAL_ERROR, "callback failure");
}

/* A new frame's header. Returns 0 to go on reading, -1 to stop. */
static int frame_begin(agentws__conn *c, agentws__ws_slot *s,
                       const struct wslay_frame_iocb *io) {
  uint64_t hdr = 2 + 4; /* base header + mask key */
  if (io->payload_length >= 65536)
    hdr += 8;
  else if (io->payload_length >= 126)
    hdr += 2;
  s->consumed += hdr;
  if (io->rsv != 0) {
    fail(c, AGENTWS_CLOSE_PROTOCOL_ERROR, "reserved bits set");
    return -1;
  }
  if (!io->mask) {
    fail(c, AGENTWS_CLOSE_PROTOCOL_ERROR, "unmasked client frame");
    return -1;
  }
  switch (io->opcode) {
  case WSLAY_TEXT_FRAME:
  case WSLAY_BINARY_FRAME:
    if (s->msg_op != 0) {
      fail(c, AGENTWS_CLOSE_PROTOCOL_ERROR, "expected a continuation frame");
      return -1;
    }
    s->msg_op = io->opcode;
    s->utf8 = AGENTWS__UTF8_ACCEPT;
    s->msg_len = 0;
    s->msg.len = 0;
    break;
  case WSLAY_CONTINUATION_FRAME:
    if (s->msg_op == 0) {
      fail(c, AGENTWS_CLOSE_PROTOCOL_ERROR, "continuation without a message");
      return -1;
    }
    break;
  case WSLAY_CONNECTION_CLOSE:
  case WSLAY_PING:
  case WSLAY_PONG:
    s->ctrl_len = 0; /* wslay checked: <= 125 bytes, not fragmented */
    break;
  default:
    fail(c, AGENTWS_CLOSE_PROTOCOL_ERROR, "reserved opcode");
    return -1;
  }
  if (io->opcode < WSLAY_CONNECTION_CLOSE) {
    if (io->payload_length > c->t->cfg->max_message_size - s->msg_len) {
      fail(c, AGENTWS_CLOSE_MESSAGE_TOO_BIG, "message too big");
      return -1;
    }
    s->msg_len += io->payload_length;
  }
  s->in_frame = 1;
  s->op = io->opcode;
  s->fin = io->fin;
  s->len = io->payload_length;
  s->off = 0;
  return 0;
}

/* Payload bytes of the current frame. Returns 0 or -1 as above. */
static int frame_chunk(agentws__conn *c, agentws__ws_slot *s,
                       const struct wslay_frame_iocb *io) {
  int done, last;
  s->consumed += io->data_length;
  s->off += io->data_length;
  done = s->off == s->len;
  if (done)
    s->in_frame = 0;
  if (s->op >= WSLAY_CONNECTION_CLOSE) {
    if (done && s->ctrl_len == 0) {
      on_control(c, s->op, io->data, io->data_length);
      return 0;
    }
    memcpy(s->ctrl + s->ctrl_len, io->data, io->data_length);
    s->ctrl_len += io->data_length;
    if (done)
      on_control(c, s->op, s->ctrl, s->ctrl_len);
    return 0;
  }
  last = done && s->fin;
  if (s->msg_op == WSLAY_TEXT_FRAME) {
    s->utf8 = agentws__utf8_feed(s->utf8, io->data, io->data_length);
    if (s->utf8 == AGENTWS__UTF8_REJECT ||
        (last && s->utf8 != AGENTWS__UTF8_ACCEPT)) {
      fail(c, AGENTWS_CLOSE_INVALID_PAYLOAD, "invalid UTF-8");
      return -1;
    }
  }
  if (last && s->msg.len == 0 && io->data_length == s->msg_len) {
    int op = s->msg_op; /* whole message in one chunk: no copy */
    s->msg_op = 0;
    deliver(c, op, io->data, io->data_length);
    return 0;
  }
  if (agentws__buf_append(&s->msg, c->t->mem, io->data, io->data_length) !=
      0) {
    agentws__conn_kill(c, AGENTWS_CLOSE_INTERNAL_ERROR, "out of memory");
    return -1;
  }
  if (last) {
    int op = s->msg_op;
    s->msg_op = 0;
    deliver(c, op, s->msg.data, s->msg.len);
    s->msg.len = 0;
  }
  return 0;
}

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
    if (wslay_frame_context_init(&s->f, &input_cbs, s) != 0) {
      agentws__mem_free(t->mem, s);
      return NULL;
    }
  }
  s->conn = c;
  s->next = NULL;
  s->handed = s->consumed = 0;
  s->in_frame = 0;
  s->msg_op = 0;
  s->msg.len = 0;
  c->ws = s;
  return s;
}

static void slot_free(agentws__transport *t, agentws__ws_slot *s) {
  agentws__buf_free(&s->msg, t->mem);
  wslay_frame_context_free(s->f);
  agentws__mem_free(t->mem, s);
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
    if (s->msg.cap > MSG_KEEP)
      agentws__buf_free(&s->msg, t->mem);
    s->next = t->ws_pool;
    t->ws_pool = s;
    t->ws_pool_len++;
    return;
  }
  slot_free(t, s);
}

void agentws__ws_release(agentws__conn *c) {
  if (c->ws != NULL)
    give_back(c, 0);
}

void agentws__ws_feed(agentws__conn *c, const uint8_t *data, size_t len) {
  agentws__ws_slot *s = c->ws;
  int clean;
  if (s == NULL && (s = lend(c)) == NULL) {
    agentws__conn_kill(c, AGENTWS_CLOSE_INTERNAL_ERROR, "out of memory");
    return;
  }
  s->rx = data;
  s->rx_len = len;
  s->rx_off = 0;
  while ((c->state == AGENTWS__CONN_WS ||
          c->state == AGENTWS__CONN_CLOSING) &&
         !c->close_received) {
    struct wslay_frame_iocb io;
    ssize_t r;
    memset(&io, 0, sizeof(io));
    r = wslay_frame_recv(s->f, &io);
    if (r == WSLAY_ERR_WANT_READ)
      break;
    if (r < 0) {
      /* bad length encoding, oversized or fragmented control frame */
      fail(c, AGENTWS_CLOSE_PROTOCOL_ERROR, "protocol error");
      break;
    }
    if (!s->in_frame && frame_begin(c, s, &io) != 0)
      break;
    if (frame_chunk(c, s, &io) != 0)
      break;
  }
  if (c->state == AGENTWS__CONN_DEAD)
    return;
  s->rx = NULL;
  s->rx_len = s->rx_off = 0;
  clean = !s->in_frame && s->msg_op == 0 && s->handed == s->consumed;
  if (c->close_received || c->close_sent)
    agentws__writer_mark_dirty(c); /* conn_flushed() finishes the close */
  /* After the peer's close nothing more is parsed: the context goes back
   * at once, not when the socket closes (a mass close held thousands). */
  if (clean || c->close_received)
    give_back(c, clean);
}

/* --------------------------------------------------------------- output */

static ssize_t enc_send_cb(const uint8_t *data, size_t len, int flags,
                           void *ud) {
  agentws__transport *t = ud;
  agentws__buf *b = t->enc_target;
  (void)flags;
  if (b == NULL) { /* agentws__ws_text_header: the payload is not copied */
    if (t->enc_sent < sizeof(t->enc_head)) {
      size_t k = sizeof(t->enc_head) - t->enc_sent;
      memcpy(t->enc_head + t->enc_sent, data, k < len ? k : len);
    }
    t->enc_sent += len;
    return (ssize_t)len;
  }
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
    slot_free(t, s);
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

/* A queue bound hit: the peer is not reading; free what waits, say why. */
static void sent(agentws__conn *c, int rv, int control) {
  if (rv == AGENTWS_ERR_QUEUE_FULL) {
    agentws__writer_discard(c);
    agentws__ws_close(c, AGENTWS_CLOSE_TRY_AGAIN_LATER, "slow consumer", 13,
                      1);
  } else if (rv == AGENTWS_ERR_NOMEM) {
    /* A frame missing from the stream leaves a hole the client cannot
     * see: closing lets it resume and have it replayed. */
    agentws__ws_close(c, AGENTWS_CLOSE_INTERNAL_ERROR, "out of memory", 13,
                      1);
  } else if (rv == 0 && !control) {
    agentws__conn_touch_msg(c);
  }
}

/* wslay frames the event once per event; only the header it writes first
 * is kept, the payload bytes are counted, not copied (no buffer per event). */
size_t agentws__ws_text_header(agentws__transport *t, const uint8_t *data,
                               size_t len, uint8_t *hdr) {
  struct wslay_frame_iocb iocb;
  size_t n = 0;
  ssize_t r;
  memset(&iocb, 0, sizeof(iocb));
  iocb.fin = 1;
  iocb.opcode = WSLAY_TEXT_FRAME;
  iocb.payload_length = len;
  iocb.data = data;
  iocb.data_length = len;
  t->enc_target = NULL;
  t->enc_sent = 0;
  r = wslay_frame_send(t->enc, &iocb);
  if (r >= 0 && (size_t)r == len && t->enc_sent >= len &&
      t->enc_sent - len <= 10) {
    n = t->enc_sent - len;
    memcpy(hdr, t->enc_head, n);
  }
  return n;
}

int agentws__ws_send_shared(agentws__conn *c, const uint8_t *bytes,
                            size_t len, void *ref) {
  int rv;
  if (c->state != AGENTWS__CONN_WS) {
    if (c->t->hooks.on_release != NULL)
      c->t->hooks.on_release(ref, c->t->hooks.user_data);
    return AGENTWS_ERR_CLOSING;
  }
  rv = agentws__writer_append_shared(c, bytes, len, ref);
  sent(c, rv, 0);
  return rv;
}

int agentws__ws_send(agentws__conn *c, int opcode, const uint8_t *data,
                     size_t len, int control) {
  int rv;
  if (c->state != AGENTWS__CONN_WS)
    return AGENTWS_ERR_CLOSING;
  rv = frame(c, opcode, data, len, control);
  sent(c, rv, control);
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
