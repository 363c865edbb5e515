/*
 * API tests of agentws_manager_listen(): IPv4 and IPv6 on one port, bad
 * hosts and ports, a port in use; each manager still closes with no handle
 * left on the loop.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "agentws.h"
#include "client.h"
#include "harness.h"

/* A plain listening socket on 127.0.0.1 (port 0: any); returns the fd and
 * stores the port. */
static int plain_listener(int *port) {
  struct sockaddr_in a;
  socklen_t al = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)*port);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(listen(fd, 8), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

/* Whether this machine has a usable ::1. */
static int have_ipv6_loopback(void) {
  struct sockaddr_in6 a;
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;
  if (fd < 0)
    return 0;
  memset(&a, 0, sizeof(a));
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  close(fd);
  return ok;
}

static void test_listen_port_zero(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  int port2 = -1;
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  assert_true(s.port > 0 && s.port <= 65535);
  s.echo = 1;

  /* A second listener on another free port; NULL host is 127.0.0.1. */
  assert_int_equal(agentws_manager_listen(s.m, NULL, 0, &port2), 0);
  assert_true(port2 > 0 && port2 != s.port);
  /* bound_port may be NULL. */
  assert_int_equal(agentws_manager_listen(s.m, "127.0.0.1", 0, NULL), 0);

  assert_int_equal(tc_connect(&c, "127.0.0.1", port2, th_pump, &s), 0);
  assert_int_equal(tc_upgrade(&c, "/ws", NULL), 0);
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "second", 6), 0);
  tc_close(&c);
  th_connect(&s, &c, NULL);
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "first", 5), 0);
  tc_close(&c);
  TH_RUN_UNTIL(&s, s.n_close == 2);
  th_finish(&s);
}

static void test_ipv4_and_ipv6_same_port(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c4, c6;
  int port6 = -1, port6b = -1;
  (void)state;
  if (!have_ipv6_loopback()) {
    print_message("::1 is not available here: skipping the IPv6 part\n");
    skip();
  }
  assert_int_equal(th_start(&s, NULL), 0);
  s.echo = 1;
  assert_int_equal(agentws_manager_listen(s.m, "::1", s.port, &port6), 0);
  assert_int_equal(port6, s.port);
  /* And ::1 on a port of its own. */
  assert_int_equal(agentws_manager_listen(s.m, "::1", 0, &port6b), 0);
  assert_true(port6b > 0 && port6b != s.port);

  assert_int_equal(tc_connect(&c6, "::1", s.port, th_pump, &s), 0);
  assert_int_equal(tc_upgrade(&c6, "/ws", NULL), 0);
  th_connect(&s, &c4, NULL);
  assert_int_equal(tc_echo(&c6, TC_OP_TEXT, "six", 3), 0);
  assert_int_equal(tc_echo(&c4, TC_OP_TEXT, "four", 4), 0);
  assert_int_equal(agentws_manager_get_num_connections(s.m), 2);
  tc_close(&c6);
  tc_close(&c4);

  assert_int_equal(tc_connect(&c6, "::1", port6b, th_pump, &s), 0);
  assert_int_equal(tc_upgrade(&c6, "/ws", NULL), 0);
  assert_int_equal(tc_echo(&c6, TC_OP_BINARY, "b", 1), 0);
  tc_close(&c6);
  TH_RUN_UNTIL(&s, s.n_close == 3);
  th_finish(&s);
}

static void test_bad_host_and_port(void **state) {
  static const char *const bad_hosts[] = {
      "nope", "", "localhost", "1.2.3", "256.0.0.1", "127.0.0.1 ",
      "::g",  "[::1]", "127.0.0.1:80", ":::",
  };
  static th_server s; /* th_teardown() may use it after a failure */
  size_t i;
  int port;
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  for (i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
    int rv;
    port = -7;
    rv = agentws_manager_listen(s.m, bad_hosts[i], 0, &port);
    if (rv != AGENTWS_ERR_INVALID_ARGUMENT)
      fail_msg("host \"%s\": got %s", bad_hosts[i], agentws_err_name(rv));
    assert_int_equal(port, -7); /* untouched on failure */
  }
  assert_int_equal(agentws_manager_listen(s.m, "127.0.0.1", -1, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_manager_listen(s.m, "127.0.0.1", 65536, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  assert_int_equal(agentws_manager_listen(s.m, "::1", 70000, NULL),
                   AGENTWS_ERR_INVALID_ARGUMENT);
  th_finish(&s);
}

static void test_port_in_use(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  tc_client c;
  int port = 0, fd, bound = -7;
  (void)state;
  fd = plain_listener(&port);
  assert_int_equal(th_start(&s, NULL), 0);

  assert_int_equal(agentws_manager_listen(s.m, "127.0.0.1", port, &bound),
                   UV_EADDRINUSE);
  assert_int_equal(bound, -7);
  assert_string_equal(agentws_err_name(UV_EADDRINUSE), "EADDRINUSE");
  /* Its own port, a second time. */
  assert_int_equal(agentws_manager_listen(s.m, "127.0.0.1", s.port, NULL),
                   UV_EADDRINUSE);

  /* The failures left the first listener working. */
  s.echo = 1;
  th_connect(&s, &c, NULL);
  assert_int_equal(tc_echo(&c, TC_OP_TEXT, "ok", 2), 0);
  tc_close(&c);
  TH_RUN_UNTIL(&s, s.n_close == 1);
  th_finish(&s); /* and the failed listeners' handles are closed too */
  close(fd);
}

/* Once the manager is closed, the port is free again. */
static void test_port_released_after_close(void **state) {
  static th_server s; /* th_teardown() may use it after a failure */
  int port, fd;
  (void)state;
  assert_int_equal(th_start(&s, NULL), 0);
  port = s.port;
  th_finish(&s);
  fd = plain_listener(&port);
  close(fd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(test_listen_port_zero),
      TH_TEST(test_ipv4_and_ipv6_same_port),
      TH_TEST(test_bad_host_and_port),
      TH_TEST(test_port_in_use),
      TH_TEST(test_port_released_after_close),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
