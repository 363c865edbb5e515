/*
 * libFuzzer target for the WebSocket input path: a real manager on a real
 * loop adopts one end of a socketpair after a valid handshake, and the
 * fuzzer's bytes arrive on the other end as frames. Echo mode, so output
 * framing runs too. Every run must end with uv_loop_close() == 0.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <uv.h>

#include "agentws.h"

static const char head[] =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

static int on_message(agentws_manager *m, uint64_t id, int type,
                      const uint8_t *data, size_t len, void *ud) {
  (void)ud;
  agentws_conn_send(m, id, type, data, len);
  return len > 0 && data[0] == '!'; /* exercise the callback-failure path */
}

static void drain(int fd) {
  char buf[65536];
  while (read(fd, buf, sizeof(buf)) > 0) {
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uv_loop_t loop;
  agentws_manager *m = NULL;
  agentws_config *cfg = NULL;
  agentws_callbacks *cbs = NULL;
  int sv[2], i;
  if (size > 60000)
    return 0;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
    abort();
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  uv_loop_init(&loop);
  agentws_config_new(&cfg);
  agentws_config_set_raw_messages(cfg, 1);
  agentws_config_set_max_message_size(cfg, 4096);
  agentws_config_set_max_queued_bytes(cfg, 8192);
  agentws_callbacks_new(&cbs);
  agentws_callbacks_set_on_message(cbs, on_message);
  if (agentws_manager_new(&m, &loop, cfg, cbs, NULL) != 0)
    abort();
  if (agentws_manager_adopt(m, sv[0], (const uint8_t *)head,
                            sizeof(head) - 1, NULL) != 0)
    abort();
  if (size > 0 && write(sv[1], data, size) < 0)
    abort();
  for (i = 0; i < 8; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    drain(sv[1]);
  }
  agentws_manager_close(m, NULL, NULL);
  close(sv[1]);
  uv_run(&loop, UV_RUN_DEFAULT);
  agentws_manager_free(m);
  if (uv_loop_close(&loop) != 0)
    abort();
  agentws_callbacks_free(cbs);
  agentws_config_free(cfg);
  return 0;
}
