/*
 * API tests of agentws_manager_adopt(): the test accepts the TCP
 * connection itself with plain accept(), reads (part of) the request head
 * itself, and hands the socket and the bytes to the library.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"
#include "client.h"
#include "harness.h"

/* The host's own listening socket and the connection it accepted. */
typedef struct host {
  int lfd;  /* listening */
  int port;
  int fd;   /* accepted, -1 once given away */
} host;

static void host_listen(host *h) {
  struct sockaddr_in a;
  socklen_t al = sizeof(a);
  h->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(h->lfd >= 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(h->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(listen(h->lfd, 8), 0);
  assert_int_equal(getsockname(h->lfd, (struct sockaddr *)&a, &al), 0);
  h->port = ntohs(a.sin_port);
  h->fd = -1;
}

/* Connects |c| (pumping |s|) and accepts it on the host side. */
static void host_accept(host *h, th_server *s, tc_client *c) {
  struct pollfd p;
  assert_int_equal(tc_connect(c, "127.0.0.1", h->port, th_pump, s), 0);
  p.fd = h->lfd;
  p.events = POLLIN;
  assert_int_equal(poll(&p, 1, TC_TIMEOUT_MS), 1);
  h->fd = accept(h->lfd, NULL, NULL);
  assert_true(h->fd >= 0);
}

/* Reads exactly |n| bytes from the accepted socket, with a deadline. */
static void host_read(host *h, uint8_t *buf, size_t n) {
  size_t got = 0;
  uint64_t deadline = tc_now_ms() + TC_TIMEOUT_MS;
  while (got < n) {
    struct pollfd p;
    ssize_t r;
    p.fd = h->fd;
    p.events = POLLIN;
    if (tc_now_ms() > deadline)
      fail_msg("host read: timed out with %zu of %zu bytes", got, n);
    if (poll(&p, 1, 10) <= 0)
      continue;
    r = recv(h->fd, buf + got, n - got, 0);
    if (r <= 0)
      fail_msg("host read: recv returned %zd (errno %d)", r, errno);
    got += (size_t)r;
  }
}

/* Reads until the end of the request head; returns its length. */
static size_t host_read_head(host *h, uint8_t *buf, size_t cap) {
  size_t n = 0;
  while (n < 4 || memcmp(buf + n - 4, "\r\n\r\n", 4) != 0) {
    assert_true(n < cap);
    host_read(h, buf + n, 1);
    n++;
  }
  return n;
}

static void host_close(host *h) {
  if (h->fd >= 0)
    close(h->fd);
  close(h->lfd);
}

/* A server whose close_timeout is short, so that a failed test's teardown
 * does not wait 5 s for a client that will never answer. */
static void start_short_close(th_server *s) {
  agentws_config *cfg;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_raw_messages(cfg, 1), 0);
  assert_int_equal(agentws_config_set_close_timeout_ms(cfg, 300), 0);
  assert_int_equal(th_start(s, cfg), 0);
  agentws_config_free(cfg);
}

/* Adopts and checks no callback fired inside the call. */
static int adopt(th_server *s, host *h, const uint8_t *data, size_t len,
                 uint64_t *id) {
  int rv, before = s->n_open + s->n_msg + s->n_close;
  s->in_api = 1;
  rv = agentws_manager_adopt(s->m, h->fd, data, len, id);
  s->in_api = 0;
  assert_int_equal(s->cb_in_api, 0);
  assert_int_equal(s->n_open + s->n_msg + s->n_close, before);
  if (rv == 0)
    h->fd = -1; /* the library's now */
  return rv;
}

static void finish_client(th_server *s, tc_client *c, int closes) {
  tc_close(c);
  TH_RUN_UNTIL(s, s->n_close == closes);
}

/* ---------------------------------------------------------------- tests */

static void test_adopt_full_head(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  host h;
  tc_client c;
  char req[512];
  uint8_t head[1024];
  size_t rl, hl;
  uint64_t id = 0;
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  s.echo = 1;
  host_listen(&h);
  host_accept(&h, &s, &c);

  rl = tc_format_request(req, sizeof(req), "/ws", "agentws.v1");
  assert_int_equal(tc_send_all(&c, req, rl), 0);
  hl = host_read_head(&h, head, sizeof(head));
  assert_int_equal(hl, rl);
  assert_int_equal(adopt(&s, &h, head, hl, &id), 0);
  assert_true(id != 0);
  assert_int_equal(agentws_manager_get_num_connections(s.m), 1);

  assert_int_equal(tc_read_head(&c, TC_TIMEOUT_MS), 0);
  assert_memory_equal(c.head, "HTTP/1.1 101 ", 13);
  assert_non_null(strstr(c.head, TC_ACCEPT));
  assert_non_null(strstr(c.head, "agentws.v1"));
  assert_int_equal(s.n_open, 1);
  assert_true(s.open_id == id);
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "adopted", 7), 0);
  assert_true(s.msg_id == id);
  assert_int_equal(tc_echo(&c, TC_OP_BINARY, "\x01\x02", 2), 0);

  finish_client(&s, &c, 1);
  assert_true(s.close_id == id);
  th_finish(&s);
  host_close(&h);
}

/* The adopted bytes already hold the first WebSocket frame: it is parsed
 * on the loop, after adopt() returned. */
static void test_adopt_head_and_frame(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  host h;
  tc_client c;
  uint8_t out[1024], in[1024];
  size_t rl, fl;
  uint64_t id = 0;
  tc_frame f;
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  s.echo = 1;
  host_listen(&h);
  host_accept(&h, &s, &c);

  rl = tc_format_request((char *)out, sizeof(out), "/ws", NULL);
  fl = tc_build_frame(out + rl, sizeof(out) - rl, 1, TC_OP_TEXT, "early", 5);
  assert_true(fl > 0);
  assert_int_equal(tc_send_all(&c, out, rl + fl), 0);
  host_read(&h, in, rl + fl);
  assert_int_equal(adopt(&s, &h, in, rl + fl, &id), 0);

  assert_int_equal(tc_read_head(&c, TC_TIMEOUT_MS), 0);
  assert_memory_equal(c.head, "HTTP/1.1 101 ", 13);
  assert_int_equal(tc_read_frame(&c, &f, TC_TIMEOUT_MS), 0);
  assert_int_equal(f.opcode, TC_OP_TEXT);
  assert_string_equal((char *)f.data, "early");
  tc_frame_free(&f);
  assert_int_equal(s.n_open, 1);
  assert_int_equal(s.n_msg, 1);
  assert_true(s.msg_id == id);

  finish_client(&s, &c, 1);
  th_finish(&s);
  host_close(&h);
}

/* No bytes read by the host: the library reads the whole head. */
static void test_adopt_no_bytes(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  host h;
  tc_client c;
  uint64_t id = 0;
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  s.echo = 1;
  host_listen(&h);
  host_accept(&h, &s, &c);
  assert_int_equal(adopt(&s, &h, NULL, 0, &id), 0);
  assert_int_equal(tc_upgrade(&c, "/ws", NULL), 0);
  assert_true(s.open_id == id);
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "x", 1), 0);
  finish_client(&s, &c, 1);
  th_finish(&s);
  host_close(&h);
}

/* The host read only part of the head; the rest arrives later, after the
 * loop has run. */
static void test_adopt_partial_head_rest_later(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  host h;
  tc_client c;
  char req[512];
  uint8_t part[64];
  size_t rl;
  int i;
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  s.echo = 1;
  host_listen(&h);
  host_accept(&h, &s, &c);
  rl = tc_format_request(req, sizeof(req), "/ws", NULL);
  assert_int_equal(tc_send_all(&c, req, 20), 0);
  host_read(&h, part, 20);
  assert_int_equal(adopt(&s, &h, part, 20, NULL), 0);
  for (i = 0; i < 10; i++) {
    uv_run(&s.loop, UV_RUN_NOWAIT);
    tc_sleep_ms(1);
  }
  assert_int_equal(tc_send_all(&c, req + 20, rl - 20), 0);
  assert_int_equal(tc_read_head(&c, TC_TIMEOUT_MS), 0);
  assert_memory_equal(c.head, "HTTP/1.1 101 ", 13);
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "x", 1), 0);
  finish_client(&s, &c, 1);
  th_finish(&s);
  host_close(&h);
}

/*
 * The host read only part of the head and the rest is already waiting in
 * the socket when the loop next polls: the socket's read (poll phase) then
 * completes the head before the adopted bytes' turn (check phase). The 101
 * must still leave promptly.
 */
static void test_adopt_partial_head_rest_waiting(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  host h;
  tc_client c;
  char req[512];
  uint8_t part[64];
  size_t rl;
  int r;
  (void)state;
  start_short_close(&s);
  s.echo = 1;
  host_listen(&h);
  host_accept(&h, &s, &c);
  rl = tc_format_request(req, sizeof(req), "/ws", NULL);
  assert_int_equal(tc_send_all(&c, req, rl), 0);
  host_read(&h, part, 20); /* the rest stays in the socket */
  tc_sleep_ms(20);
  assert_int_equal(adopt(&s, &h, part, 20, NULL), 0);
  r = tc_read_head(&c, 2000);
  if (r != 0)
    fail_msg("no 101 within 2 s (%d); on_open fired %d time(s)", r,
             (int)s.n_open);
  assert_memory_equal(c.head, "HTTP/1.1 101 ", 13);
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "x", 1), 0);
  finish_client(&s, &c, 1);
  th_finish(&s);
  host_close(&h);
}

/* Same, with the whole head adopted and the client's first frame waiting
 * in the socket (a client that does not wait for the 101). */
static void test_adopt_head_frame_waiting(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  host h;
  tc_client c;
  uint8_t out[1024], in[1024];
  size_t rl, fl;
  tc_frame f;
  int r;
  (void)state;
  start_short_close(&s);
  s.echo = 1;
  host_listen(&h);
  host_accept(&h, &s, &c);
  rl = tc_format_request((char *)out, sizeof(out), "/ws", NULL);
  /* '=' masks to '\n' (client.c's mask key starts with 0x37), so the
   * waiting bytes hold a line end, as most real traffic would. */
  fl = tc_build_frame(out + rl, sizeof(out) - rl, 1, TC_OP_TEXT, "=eager", 6);
  assert_int_equal(tc_send_all(&c, out, rl + fl), 0);
  host_read(&h, in, rl); /* the frame stays in the socket */
  tc_sleep_ms(20);
  assert_int_equal(adopt(&s, &h, in, rl, NULL), 0);
  r = tc_read_head(&c, 2000);
  if (r != 0)
    fail_msg("no 101 within 2 s (%d); on_open %d, on_message %d", r,
             (int)s.n_open, (int)s.n_msg);
  assert_int_equal(tc_read_frame(&c, &f, TC_TIMEOUT_MS), 0);
  assert_string_equal((char *)f.data, "=eager");
  tc_frame_free(&f);
  finish_client(&s, &c, 1);
  th_finish(&s);
  host_close(&h);
}

/* Too many bytes: refused, and the host still owns a working socket. */
static void test_adopt_too_big(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  host h;
  tc_client c;
  agentws_config *cfg;
  uint8_t big[300];
  static const char resp[] = "HTTP/1.1 431 Too Big\r\n\r\n";
  uint64_t id = 12345;
  (void)state;
  assert_int_equal(agentws_config_new(&cfg), 0);
  assert_int_equal(agentws_config_set_raw_messages(cfg, 1), 0);
  assert_int_equal(agentws_config_set_max_header_bytes(cfg, 256), 0);
  assert_int_equal(th_start(&s, cfg), 0);
  agentws_config_free(cfg);
  host_listen(&h);
  host_accept(&h, &s, &c);

  memset(big, 'a', sizeof(big));
  assert_int_equal(adopt(&s, &h, big, 257, &id), AGENTWS_ERR_TOO_BIG);
  assert_int_equal(id, 12345); /* untouched */
  assert_int_equal(agentws_manager_get_num_connections(s.m), 0);
  assert_true(h.fd >= 0);
  assert_true(fcntl(h.fd, F_GETFD) != -1);
  /* 256 is the limit itself: not too big (it is just an incomplete head,
   * so the library will answer 431 itself; use a fresh socket for that). */

  /* Run the loop a little: the library must not touch the fd. */
  {
    int i;
    for (i = 0; i < 10; i++) {
      uv_run(&s.loop, UV_RUN_NOWAIT);
      tc_sleep_ms(1);
    }
  }
  assert_true(fcntl(h.fd, F_GETFD) != -1);
  assert_int_equal(send(h.fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL),
                   (ssize_t)(sizeof(resp) - 1));
  assert_int_equal(tc_read_head(&c, TC_TIMEOUT_MS), 0);
  assert_string_equal(c.head, resp);
  tc_close(&c);
  close(h.fd);
  h.fd = -1;
  assert_int_equal(s.n_open + s.n_close, 0);
  th_finish(&s);
  host_close(&h);
}

static void test_adopt_bad_arguments(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  host h;
  tc_client c;
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  host_listen(&h);
  host_accept(&h, &s, &c);

  assert_int_equal(agentws_manager_adopt(s.m, -1, NULL, 0, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_manager_adopt(s.m, h.fd, NULL, 5, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_manager_adopt(NULL, h.fd, NULL, 0, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_true(fcntl(h.fd, F_GETFD) != -1);

  /* Closing: refused, the host keeps the fd. */
  assert_int_equal(th_close(&s), 0);
  assert_int_equal(agentws_manager_adopt(s.m, h.fd, NULL, 0, NULL),
                   AGENTWS_ERR_INVALID_STATE);
  assert_true(fcntl(h.fd, F_GETFD) != -1);
  th_finish(&s);
  tc_close(&c);
  host_close(&h);
}

/* Adopted connections go through the same HTTP routing. */
static void test_adopt_http_answers(void **state) {
  static const char bad[] = "GARBAGE\r\n\r\n";
  static const char hz[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  static th_server s; /* th_teardown() may use it after a failure */
  host h;
  tc_client c;
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  host_listen(&h);

  host_accept(&h, &s, &c);
  assert_int_equal(adopt(&s, &h, (const uint8_t *)bad, sizeof(bad) - 1, NULL),
                   0);
  assert_int_equal(tc_read_head(&c, TC_TIMEOUT_MS), 0);
  assert_memory_equal(c.head, "HTTP/1.1 400 ", 13);
  assert_int_equal(tc_wait_eof(&c, TC_TIMEOUT_MS), 0);
  tc_close(&c);

  host_accept(&h, &s, &c);
  assert_int_equal(adopt(&s, &h, (const uint8_t *)hz, sizeof(hz) - 1, NULL),
                   0);
  assert_int_equal(tc_read_head(&c, TC_TIMEOUT_MS), 0);
  assert_memory_equal(c.head, "HTTP/1.1 200 ", 13);
  tc_close(&c);
  TH_RUN_UNTIL(&s, agentws_manager_get_num_connections(s.m) == 0);
  assert_int_equal(s.n_open, 0);
  th_finish(&s);
  host_close(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(test_adopt_full_head),
      TH_TEST(test_adopt_head_and_frame),
      TH_TEST(test_adopt_no_bytes),
      TH_TEST(test_adopt_partial_head_rest_later),
      TH_TEST(test_adopt_partial_head_rest_waiting),
      TH_TEST(test_adopt_head_frame_waiting),
      TH_TEST(test_adopt_too_big),
      TH_TEST(test_adopt_bad_arguments),
      TH_TEST(test_adopt_http_answers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
