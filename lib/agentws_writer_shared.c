/*
 * Each flush's first try, one sendmsg(2), and shared frames: an event is
 * framed once and queued on each recipient by reference, between that
 * connection's own bytes (conn->out), and all of it leaves in one
 * sendmsg(2). No copy per recipient; what the kernel does not take at once
 * is copied into one buffer for uv_write (a full socket is the slow path
 * anyway), and the references go back.
 */
#include "agentws_transport.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#ifndef _WIN32
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#endif

static void release(agentws__transport *t, void *ref) {
  if (t->hooks.on_release != NULL)
    t->hooks.on_release(ref, t->hooks.user_data);
}

static int take_segs(agentws__conn *c) {
  agentws__transport *t = c->t;
  if (c->segs != NULL)
    return 0;
  c->segs = t->seg_cache_len > 0
                ? t->seg_cache[--t->seg_cache_len]
                : agentws__mem_malloc(t->mem,
                                      AGENTWS__MAX_SEGS * sizeof(*c->segs));
  return c->segs != NULL ? 0 : AGENTWS_ERR_NOMEM;
}

int agentws__writer_append_shared(agentws__conn *c, const uint8_t *p,
                                  size_t len, void *ref) {
  agentws__transport *t = c->t;
  uint64_t q = agentws__writer_queued(c);
  int rv;
  if (q > 0 && q + len > t->cfg->max_queued_bytes) {
    release(t, ref);
    return AGENTWS_ERR_QUEUE_FULL;
  }
  if (c->nsegs == AGENTWS__MAX_SEGS || take_segs(c) != 0) {
    rv = agentws__writer_append(c, p, len, 0);
    release(t, ref);
    return rv;
  }
  c->segs[c->nsegs].at = c->out.len;
  c->segs[c->nsegs].p = p;
  c->segs[c->nsegs].len = len;
  c->segs[c->nsegs].ref = ref;
  c->nsegs++;
  c->seg_bytes += len;
  agentws__writer_mark_dirty(c);
  return 0;
}

/* The queued stream as pieces: out's bytes up to each frame, the frame,
 * and out's rest. Calls |fn| for each non-empty one, in order. */
typedef void (*piece_fn)(const uint8_t *p, size_t len, void *ud);

static void each_piece(const agentws__conn *c, piece_fn fn, void *ud) {
  size_t pos = 0;
  uint32_t i;
  for (i = 0; i < c->nsegs; i++) {
    const agentws__wseg *s = &c->segs[i];
    if (s->at > pos)
      fn(c->out.data + pos, s->at - pos, ud);
    pos = s->at;
    fn(s->p, s->len, ud);
  }
  if (c->out.len > pos)
    fn(c->out.data + pos, c->out.len - pos, ud);
}

#ifndef _WIN32
typedef struct iov_acc {
  struct iovec v[2 * AGENTWS__MAX_SEGS + 1];
  int n;
} iov_acc;

static void add_iov(const uint8_t *p, size_t len, void *ud) {
  iov_acc *a = ud;
  a->v[a->n].iov_base = (void *)p;
  a->v[a->n].iov_len = len;
  a->n++;
}
#endif

/*
 * uv_try_write() as sendmsg(2): libuv writes with write(2)/writev(2), whose
 * file layer (vfs_write, the file position lock) was about a tenth of the
 * kernel's time per small frame in a 1,000-connection broadcast here.
 * MSG_NOSIGNAL: a peer's reset is an error, never SIGPIPE, on a host's loop
 * thread too. Only called with no uv_write in flight, so bytes keep their
 * order.
 */
int agentws__writer_try_send(agentws__conn *c) {
#ifndef _WIN32
  iov_acc a;
  struct msghdr mh;
  uv_os_fd_t fd;
  ssize_t n;
  if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) == 0) {
    a.n = 0;
    each_piece(c, add_iov, &a);
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = a.v;
    mh.msg_iovlen = (size_t)a.n;
    do
      n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
      return n > INT_MAX ? INT_MAX : (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return UV_EAGAIN;
    return uv_translate_sys_error(errno);
  }
#endif
  if (c->nsegs == 0) {
    uv_buf_t b = uv_buf_init((char *)c->out.data,
                             (unsigned)(c->out.len > UINT_MAX ? UINT_MAX
                                                              : c->out.len));
    return uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  }
  return UV_EAGAIN; /* uv_write takes a copy */
}

typedef struct copy_acc {
  uint8_t *d;  /* destination */
  size_t skip; /* leading bytes still to pass over */
} copy_acc;

static void copy_piece(const uint8_t *p, size_t len, void *ud) {
  copy_acc *a = ud;
  if (a->skip >= len) {
    a->skip -= len;
    return;
  }
  p += a->skip;
  len -= a->skip;
  a->skip = 0;
  memcpy(a->d, p, len);
  a->d += len;
}

int agentws__segs_materialize(agentws__conn *c, size_t skip) {
  agentws__transport *t = c->t;
  size_t total = c->out.len + (size_t)c->seg_bytes;
  agentws__buf b = {NULL, 0, 0};
  copy_acc a;
  if (agentws__buf_reserve(&b, t->mem, total - skip) != 0)
    return AGENTWS_ERR_NOMEM;
  a.d = b.data;
  a.skip = skip;
  each_piece(c, copy_piece, &a);
  b.len = total - skip;
  agentws__segs_drop(c);
  agentws__buf_free(&c->out, t->mem);
  c->out = b;
  return 0;
}

void agentws__segs_drop(agentws__conn *c) {
  agentws__transport *t = c->t;
  uint32_t i;
  for (i = 0; i < c->nsegs; i++)
    release(t, c->segs[i].ref);
  c->nsegs = 0;
  c->seg_bytes = 0;
  if (c->segs == NULL)
    return;
  if (t->seg_cache_len < sizeof(t->seg_cache) / sizeof(t->seg_cache[0]))
    t->seg_cache[t->seg_cache_len++] = c->segs;
  else
    agentws__mem_free(t->mem, c->segs);
  c->segs = NULL;
}

void agentws__segs_cache_free(agentws__transport *t) {
  while (t->seg_cache_len > 0)
    agentws__mem_free(t->mem, t->seg_cache[--t->seg_cache_len]);
}
