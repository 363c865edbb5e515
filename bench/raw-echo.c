/*
 * raw-echo: minimal libuv TCP echo server, the baseline peer for
 * `agentws-load --mode echo --raw`. Same loop library and the same
 * "one write per read" batching a WebSocket server would get at best,
 * so the ratio between the two isolates the cost of WebSocket framing
 * and the server's own work.
 *
 *   raw-echo [--host 127.0.0.1] [--port N]   (port 0 picks a free one)
 *
 * Prints "listening on HOST:PORT" once accepting; exits 0 on SIGINT/SIGTERM.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

#define RBUF_LEN (64 * 1024)
#define HIGH_WATER (4u << 20) /* stop reading while this much is unsent */

struct echo_write {
  uv_write_t req; /* must be first: the callback gets &req */
  size_t len;     /* bytes in data[] */
  char data[];    /* the copy libuv writes from */
};

static uv_loop_t *g_loop;
static uv_tcp_t g_server;
static uv_signal_t g_sigint, g_sigterm;
static char g_rbuf[RBUF_LEN]; /* shared: read_cb consumes it before the next alloc */

static void on_close_free(uv_handle_t *h) { free(h); }

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  *buf = uv_buf_init(g_rbuf, sizeof(g_rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status) {
  uv_stream_t *s = req->handle;
  free(req);
  if (status < 0) {
    if (status != UV_ECANCELED && !uv_is_closing((uv_handle_t *)s)) {
      uv_close((uv_handle_t *)s, on_close_free);
    }
    return;
  }
  if (s->data != NULL && s->write_queue_size < HIGH_WATER / 4) {
    s->data = NULL; /* data != NULL marks "reading paused" */
    uv_read_start(s, on_alloc, on_read);
  }
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  uv_stream_t *s = req->handle;
  (void)status;
  free(req);
  if (!uv_is_closing((uv_handle_t *)s)) {
    uv_close((uv_handle_t *)s, on_close_free);
  }
}

/* Queue a copy of p[0..n) behind whatever is already queued. */
static int queue_copy(uv_stream_t *s, const char *p, size_t n) {
  struct echo_write *w = malloc(sizeof(*w) + n);
  uv_buf_t b;
  if (w == NULL) {
    return UV_ENOMEM;
  }
  memcpy(w->data, p, n);
  w->len = n;
  b = uv_buf_init(w->data, (unsigned)n);
  if (uv_write(&w->req, s, &b, 1, on_write) != 0) {
    free(w);
    return UV_EPIPE;
  }
  return 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  size_t done = 0;
  if (nread == UV_EOF) {
    /* Half-close: send back what is queued, then FIN, then close. */
    uv_shutdown_t *req = malloc(sizeof(*req));
    uv_read_stop(s);
    if (req == NULL || uv_shutdown(req, s, on_shutdown) != 0) {
      free(req);
      uv_close((uv_handle_t *)s, on_close_free);
    }
    return;
  }
  if (nread < 0) {
    uv_close((uv_handle_t *)s, on_close_free);
    return;
  }
  if (nread == 0) {
    return;
  }
  /* Fast path: write straight from the shared buffer; copy only the rest. */
  if (s->write_queue_size == 0) {
    int r = uv_try_write(s, &(uv_buf_t){.base = buf->base, .len = (size_t)nread}, 1);
    if (r > 0) {
      done = (size_t)r;
    } else if (r != UV_EAGAIN) {
      uv_close((uv_handle_t *)s, on_close_free);
      return;
    }
  }
  if (done < (size_t)nread && queue_copy(s, buf->base + done, (size_t)nread - done) != 0) {
    uv_close((uv_handle_t *)s, on_close_free);
    return;
  }
  if (s->write_queue_size > HIGH_WATER) {
    uv_read_stop(s); /* a peer that does not read must not grow our memory */
    s->data = s;
  }
}

static void on_connection(uv_stream_t *server, int status) {
  uv_tcp_t *c;
  if (status < 0) {
    return;
  }
  c = malloc(sizeof(*c));
  if (c == NULL) {
    return;
  }
  uv_tcp_init(g_loop, c);
  c->data = NULL;
  if (uv_accept(server, (uv_stream_t *)c) != 0) {
    uv_close((uv_handle_t *)c, on_close_free);
    return;
  }
  uv_tcp_nodelay(c, 1);
  uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (uv_is_closing(h)) {
    return;
  }
  if (h->type == UV_TCP && h != (uv_handle_t *)&g_server) {
    uv_close(h, on_close_free); /* client connections are heap-allocated */
  } else {
    uv_close(h, NULL);
  }
}

static void on_signal(uv_signal_t *s, int signum) {
  (void)signum;
  uv_walk(s->loop, close_walk, NULL);
}

static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 0, i, r;
  struct sockaddr_storage ss;
  int namelen = sizeof(ss);
  char name[64];
  uv_loop_t loop;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < 0 || v > 65535) {
        fprintf(stderr, "raw-echo: bad --port\n");
        return 2;
      }
      port = (int)v;
    } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
      host = argv[++i];
    } else {
      fprintf(stderr, "usage: raw-echo [--host 127.0.0.1] [--port N]\n");
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  raise_nofile();
  uv_loop_init(&loop);
  g_loop = &loop;
  uv_tcp_init(&loop, &g_server);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
    fprintf(stderr, "raw-echo: bad --host\n");
    return 2;
  }
  r = uv_tcp_bind(&g_server, (const struct sockaddr *)&ss, 0);
  if (r == 0) {
    r = uv_listen((uv_stream_t *)&g_server, 4096, on_connection);
  }
  if (r != 0) {
    fprintf(stderr, "raw-echo: listen: %s\n", uv_strerror(r));
    return 1;
  }
  uv_tcp_getsockname(&g_server, (struct sockaddr *)&ss, &namelen);
  if (ss.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)&ss, name, sizeof(name));
    port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  } else {
    uv_ip4_name((struct sockaddr_in *)&ss, name, sizeof(name));
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  }
  printf("listening on %s:%d\n", name, port);
  fflush(stdout);

  uv_signal_init(&loop, &g_sigint);
  uv_signal_init(&loop, &g_sigterm);
  uv_signal_start(&g_sigint, on_signal, SIGINT);
  uv_signal_start(&g_sigterm, on_signal, SIGTERM);
  uv_run(&loop, UV_RUN_DEFAULT);
  r = uv_loop_close(&loop);
  return r == 0 ? 0 : 1;
}
