/*
 * An out-of-tree program built against the *installed* library, found only
 * through pkg-config (run-consumer.sh stages `meson install` and builds
 * this). <agentws.h> comes first to show it is self-contained.
 */
#define _POSIX_C_SOURCE 200809L /* uv.h needs POSIX types under -std=c11 */

#include <agentws.h>

#include <stdio.h>
#include <uv.h>

static int closed;

static void on_closed(agentws_manager *m, void *ud) {
  (void)m;
  (void)ud;
  closed = 1;
}

#define CHECK(call)                                                          \
  do {                                                                       \
    int rv_ = (call);                                                        \
    if (rv_ != 0) {                                                          \
      fprintf(stderr, "consumer: %s failed: %s (%s)\n", #call,               \
              agentws_err_name(rv_), agentws_strerror(rv_));                 \
      return 1;                                                              \
    }                                                                        \
  } while (0)

int main(void) {
  uv_loop_t loop;
  agentws_config *cfg = NULL;
  agentws_manager *m = NULL;
  int port = 0;

  if (agentws_version() != AGENTWS_VERSION_NUM) {
    fprintf(stderr, "consumer: header %s, library %s\n",
            AGENTWS_VERSION_STRING, agentws_version_string());
    return 1;
  }
  CHECK(uv_loop_init(&loop));
  CHECK(agentws_config_new(&cfg));
  CHECK(agentws_config_set_ws_path(cfg, "/consumer"));
  CHECK(agentws_manager_new(&m, &loop, cfg, NULL, NULL));
  agentws_config_free(cfg);
  CHECK(agentws_manager_listen(m, "127.0.0.1", 0, &port));
  if (port <= 0) {
    fprintf(stderr, "consumer: bad port %d\n", port);
    return 1;
  }
  CHECK(agentws_manager_close(m, on_closed, NULL));
  uv_run(&loop, UV_RUN_DEFAULT);
  if (!closed) {
    fprintf(stderr, "consumer: the closed callback did not fire\n");
    return 1;
  }
  agentws_manager_free(m);
  CHECK(uv_loop_close(&loop));
  printf("consumer ok: libagentws %s (0x%06x), listened on 127.0.0.1:%d\n",
         agentws_version_string(), agentws_version(), port);
  return 0;
}
