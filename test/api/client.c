/* See client.h. */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

uint64_t tc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void tc_sleep_ms(int ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

void tc_attach(tc_client *c, int fd, tc_pump_fn pump, void *pump_arg) {
  memset(c, 0, sizeof(*c));
  c->fd = fd;
  c->pump = pump;
  c->pump_arg = pump_arg;
}

int tc_connect(tc_client *c, const char *host, int port, tc_pump_fn pump,
               void *pump_arg) {
  struct sockaddr_storage ss;
  socklen_t sl;
  int fd, one = 1;
  memset(&ss, 0, sizeof(ss));
  if (strchr(host, ':') != NULL) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
      return TC_SYS;
    sl = sizeof(*a);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
      return TC_SYS;
    sl = sizeof(*a);
  }
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return TC_SYS;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  /* Loopback: the kernel completes the handshake without the server's
   * accept(), so a blocking connect() never waits on our own loop. */
  if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
    close(fd);
    return TC_SYS;
  }
  tc_attach(c, fd, pump, pump_arg);
  return 0;
}

void tc_close(tc_client *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  free(c->in);
  c->in = NULL;
  c->in_len = c->in_cap = 0;
}

/* Waits for |events| on the socket for at most the time left; pumps. */
static int wait_fd(tc_client *c, short events, uint64_t deadline) {
  struct pollfd p;
  uint64_t now = tc_now_ms();
  int ms;
  if (now >= deadline)
    return TC_TIMEOUT;
  if (c->pump != NULL)
    c->pump(c->pump_arg);
  ms = c->pump != NULL ? 1 : (int)(deadline - now > 50 ? 50 : deadline - now);
  p.fd = c->fd;
  p.events = events;
  p.revents = 0;
  if (poll(&p, 1, ms) < 0 && errno != EINTR)
    return TC_SYS;
  return p.revents != 0 ? 1 : 0;
}

/* Receives what is there without blocking. 0, or TC_EOF. */
static int recv_some(tc_client *c) {
  ssize_t n;
  if (c->eof)
    return TC_EOF;
  if (c->in_cap - c->in_len < 65536) {
    size_t cap = c->in_cap * 2 + 65536;
    uint8_t *p = realloc(c->in, cap);
    if (p == NULL)
      return TC_SYS;
    c->in = p;
    c->in_cap = cap;
  }
  n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
  if (n > 0) {
    c->in_len += (size_t)n;
    return 0;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return 0;
  c->eof = 1; /* 0: FIN; <0: reset */
  return TC_EOF;
}

/* Makes at least |want| bytes available. */
static int need(tc_client *c, size_t want, uint64_t deadline) {
  while (c->in_len < want) {
    int r;
    if (c->eof)
      return TC_EOF;
    r = wait_fd(c, POLLIN, deadline);
    if (r < 0)
      return r;
    if (r > 0 && (r = recv_some(c)) != 0 && c->in_len < want)
      return r;
  }
  return 0;
}

static void consume(tc_client *c, size_t n) {
  memmove(c->in, c->in + n, c->in_len - n);
  c->in_len -= n;
}

int tc_send_all(tc_client *c, const void *data, size_t len) {
  const uint8_t *p = data;
  uint64_t deadline = tc_now_ms() + TC_TIMEOUT_MS;
  while (len > 0) {
    ssize_t n = send(c->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return TC_SYS;
    n = wait_fd(c, POLLOUT, deadline);
    if (n < 0)
      return (int)n;
  }
  return 0;
}

size_t tc_format_request(char *buf, size_t cap, const char *path,
                         const char *protocols) {
  int n = snprintf(buf, cap,
                   "GET %s HTTP/1.1\r\n"
                   "Host: 127.0.0.1\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: " TC_KEY "\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "%s%s%s"
                   "\r\n",
                   path, protocols ? "Sec-WebSocket-Protocol: " : "",
                   protocols ? protocols : "", protocols ? "\r\n" : "");
  return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

static const uint8_t *find_crlfcrlf(const uint8_t *p, size_t n) {
  size_t i;
  for (i = 0; i + 4 <= n; i++)
    if (memcmp(p + i, "\r\n\r\n", 4) == 0)
      return p + i;
  return NULL;
}

int tc_read_head(tc_client *c, int timeout_ms) {
  uint64_t deadline = tc_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    const uint8_t *e = find_crlfcrlf(c->in, c->in_len);
    int r;
    if (e != NULL) {
      size_t n = (size_t)(e - c->in) + 4;
      if (n >= sizeof(c->head))
        return TC_PROTO;
      memcpy(c->head, c->in, n);
      c->head[n] = '\0';
      consume(c, n);
      return 0;
    }
    r = need(c, c->in_len + 1, deadline);
    if (r != 0)
      return r;
  }
}

/* Value of header |name| in c->head into |out| ("" if absent). */
static int header_value(const char *head, const char *name, char *out,
                        size_t cap) {
  size_t nl = strlen(name);
  const char *p = strstr(head, "\r\n");
  out[0] = '\0';
  while (p != NULL && p[2] != '\r') {
    const char *line = p + 2;
    const char *end = strstr(line, "\r\n");
    if (end == NULL)
      break;
    if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 &&
        line[nl] == ':') {
      const char *v = line + nl + 1;
      size_t n;
      while (*v == ' ' || *v == '\t')
        v++;
      n = (size_t)(end - v);
      if (n >= cap)
        n = cap - 1;
      memcpy(out, v, n);
      out[n] = '\0';
      return 1;
    }
    p = end;
  }
  return 0;
}

int tc_upgrade(tc_client *c, const char *path, const char *protocols) {
  char req[1024], accept[64];
  size_t n = tc_format_request(req, sizeof(req), path, protocols);
  int r;
  if (n == 0)
    return TC_PROTO;
  r = tc_send_all(c, req, n);
  if (r != 0)
    return r;
  r = tc_read_head(c, TC_TIMEOUT_MS);
  if (r != 0)
    return r;
  if (strncmp(c->head, "HTTP/1.1 101 ", 13) != 0)
    return TC_PROTO;
  if (!header_value(c->head, "Sec-WebSocket-Accept", accept, sizeof(accept)) ||
      strcmp(accept, TC_ACCEPT) != 0)
    return TC_PROTO;
  header_value(c->head, "Sec-WebSocket-Protocol", c->protocol,
               sizeof(c->protocol));
  return 0;
}

size_t tc_build_frame(uint8_t *out, size_t cap, int fin, int opcode,
                      const void *payload, size_t len) {
  const uint8_t *p = payload;
  size_t h = 2, i;
  if (len >= 65536)
    h += 8;
  else if (len >= 126)
    h += 2;
  h += 4;
  if (cap < h + len)
    return 0;
  out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
  if (len >= 65536) {
    out[1] = 0x80 | 127;
    for (i = 0; i < 8; i++)
      out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
  } else if (len >= 126) {
    out[1] = 0x80 | 126;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
  } else {
    out[1] = (uint8_t)(0x80 | len);
  }
  memcpy(out + h - 4, mask_key, 4);
  for (i = 0; i < len; i++)
    out[h + i] = p[i] ^ mask_key[i & 3];
  return h + len;
}

int tc_send_frame(tc_client *c, int opcode, const void *payload, size_t len) {
  size_t cap = len + 14, n;
  uint8_t *buf = malloc(cap);
  int r;
  if (buf == NULL)
    return TC_SYS;
  n = tc_build_frame(buf, cap, 1, opcode, payload, len);
  r = n == 0 ? TC_PROTO : tc_send_all(c, buf, n);
  free(buf);
  return r;
}

int tc_send_close(tc_client *c, int code, const char *reason) {
  uint8_t p[125];
  size_t rl = reason != NULL ? strlen(reason) : 0;
  if (code == 0)
    return tc_send_frame(c, TC_OP_CLOSE, NULL, 0);
  if (rl > 123)
    rl = 123;
  p[0] = (uint8_t)(code >> 8);
  p[1] = (uint8_t)code;
  memcpy(p + 2, reason != NULL ? reason : "", rl);
  return tc_send_frame(c, TC_OP_CLOSE, p, rl + 2);
}

int tc_read_frame(tc_client *c, tc_frame *f, int timeout_ms) {
  uint64_t deadline = tc_now_ms() + (uint64_t)timeout_ms;
  uint64_t len;
  size_t h = 2, i;
  int r;
  memset(f, 0, sizeof(*f));
  if ((r = need(c, 2, deadline)) != 0)
    return r;
  if ((c->in[1] & 0x80) != 0 || (c->in[0] & 0x70) != 0)
    return TC_PROTO; /* servers never mask; no extensions negotiated */
  len = c->in[1] & 0x7f;
  if (len == 126) {
    h += 2;
    if ((r = need(c, h, deadline)) != 0)
      return r;
    len = ((uint64_t)c->in[2] << 8) | c->in[3];
    if (len < 126)
      return TC_PROTO; /* not minimal */
  } else if (len == 127) {
    h += 8;
    if ((r = need(c, h, deadline)) != 0)
      return r;
    len = 0;
    for (i = 0; i < 8; i++)
      len = (len << 8) | c->in[2 + i];
    if (len < 65536 || len > ((uint64_t)1 << 40))
      return TC_PROTO;
  }
  if ((r = need(c, h + (size_t)len, deadline)) != 0)
    return r;
  f->fin = (c->in[0] & 0x80) != 0;
  f->opcode = c->in[0] & 0x0f;
  f->len = (size_t)len;
  f->data = malloc(f->len + 1);
  if (f->data == NULL)
    return TC_SYS;
  memcpy(f->data, c->in + h, f->len);
  f->data[f->len] = '\0';
  consume(c, h + f->len);
  return 0;
}

int tc_read_text(tc_client *c, char **out, int timeout_ms) {
  *out = NULL;
  for (;;) {
    tc_frame f;
    int r = tc_read_frame(c, &f, timeout_ms);
    if (r != 0)
      return r;
    if (f.opcode == TC_OP_PING || f.opcode == TC_OP_PONG) {
      tc_frame_free(&f);
      continue;
    }
    if (f.opcode != TC_OP_TEXT || !f.fin) {
      tc_frame_free(&f);
      return TC_PROTO;
    }
    *out = (char *)f.data;
    return 0;
  }
}

void tc_frame_free(tc_frame *f) {
  free(f->data);
  f->data = NULL;
  f->len = 0;
}

int tc_read_close(tc_client *c, int *code, char *reason, size_t cap,
                  int timeout_ms) {
  uint64_t deadline = tc_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    tc_frame f;
    uint64_t now = tc_now_ms();
    int r = tc_read_frame(c, &f, now < deadline ? (int)(deadline - now) : 0);
    if (r != 0)
      return r;
    if (f.opcode == TC_OP_PING || f.opcode == TC_OP_PONG) {
      tc_frame_free(&f);
      continue;
    }
    if (f.opcode != TC_OP_CLOSE || f.len == 1) {
      tc_frame_free(&f);
      return TC_PROTO;
    }
    *code = f.len >= 2 ? (f.data[0] << 8) | f.data[1] : 1005;
    if (reason != NULL && cap > 0) {
      size_t n = f.len >= 2 ? f.len - 2 : 0;
      if (n >= cap)
        n = cap - 1;
      memcpy(reason, f.data + 2, n);
      reason[n] = '\0';
    }
    tc_frame_free(&f);
    return 0;
  }
}

/* Reads until EOF; |keep| keeps the bytes in c->in, else they are
 * dropped as they come (a long stream needs no memory). */
static int read_until_eof(tc_client *c, int timeout_ms, int keep) {
  uint64_t deadline = tc_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    int r;
    if (!keep)
      c->in_len = 0;
    if (c->eof)
      return 0;
    r = wait_fd(c, POLLIN, deadline);
    if (r < 0)
      return r;
    if (r > 0)
      recv_some(c);
  }
}

int tc_wait_eof(tc_client *c, int timeout_ms) {
  return read_until_eof(c, timeout_ms, 0);
}

int tc_read_to_eof(tc_client *c, int timeout_ms) {
  return read_until_eof(c, timeout_ms, 1);
}


int tc_echo(tc_client *c, int opcode, const void *data, size_t len) {
  tc_frame f;
  int r = tc_send_frame(c, opcode, data, len);
  if (r != 0)
    return r;
  r = tc_read_frame(c, &f, TC_TIMEOUT_MS);
  if (r != 0)
    return r;
  if (f.opcode != opcode || !f.fin || f.len != len ||
      (len > 0 && memcmp(f.data, data, len) != 0))
    r = TC_PROTO;
  tc_frame_free(&f);
  return r;
}
