// C++ header compatibility (STYLE.md rule 25): agentws.h must compile as
// C++11 with -Wall -Wextra -Wpedantic -Werror, its extern "C" guard must
// give C linkage (this links against the C shared library), and its
// constants must be usable as C++ constant expressions.
#include <agentws.h>

#include <cstdio>
#include <cstring>

static_assert(AGENTWS_ERR_INVALID_ARGUMENT == -1001, "error numbers fixed");
static_assert(AGENTWS_ERR_NOMEM == -1900, "error numbers fixed");
static_assert(AGENTWS_VERSION_NUM == ((AGENTWS_VERSION_MAJOR << 16) |
                                      (AGENTWS_VERSION_MINOR << 8) |
                                      AGENTWS_VERSION_PATCH),
              "version macro");
static_assert(AGENTWS_MSG_TEXT != AGENTWS_MSG_BINARY, "message types");
static_assert(AGENTWS_CLOSE_GOING_AWAY == 1001, "close codes");

extern "C" {
// Hooks with C linkage, as the typedefs expect.
static void on_open(agentws_manager *, uint64_t, void *) {}
static int on_message(agentws_manager *m, uint64_t id, int type,
                      const uint8_t *data, size_t len, void *) {
  return agentws_conn_send(m, id, type, data, len);
}
static void on_close(agentws_manager *, uint64_t, int, const char *, size_t,
                     void *) {}
static void on_post(agentws_manager *, void *ud) {
  ++*static_cast<int *>(ud);
}
}

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);        \
      return 1;                                                              \
    }                                                                        \
  } while (0)

int main() {
  CHECK(agentws_version() == AGENTWS_VERSION_NUM);
  CHECK(std::strcmp(agentws_version_string(), AGENTWS_VERSION_STRING) == 0);
  CHECK(std::strcmp(agentws_err_name(AGENTWS_ERR_TOO_BIG),
                    "AGENTWS_ERR_TOO_BIG") == 0);
  CHECK(agentws_err_is_fatal(AGENTWS_ERR_INTERNAL) == 1);
  char buf[8];
  CHECK(agentws_strerror_r(AGENTWS_ERR_NOMEM, buf, sizeof buf) == 0);

  agentws_config *cfg = nullptr;
  CHECK(agentws_config_new(&cfg) == 0);
  CHECK(agentws_config_set_max_message_size(cfg, 4096) == 0);
  CHECK(agentws_config_set_ping_interval_ms(cfg, 0) == 0);
  CHECK(agentws_config_add_subprotocol(cfg, "chat") == 0);
  CHECK(agentws_config_set_ws_path(cfg, "no-slash") ==
        AGENTWS_ERR_INVALID_ARGUMENT);

  agentws_callbacks *cbs = nullptr;
  CHECK(agentws_callbacks_new(&cbs) == 0);
  agentws_callbacks_set_on_open(cbs, on_open);
  agentws_callbacks_set_on_message(cbs, on_message);
  agentws_callbacks_set_on_close(cbs, on_close);

  // A threaded manager needs no uv.h in this file.
  int posted = 0;
  agentws_manager *m = nullptr;
  CHECK(agentws_manager_new_threaded(&m, cfg, cbs, &posted) == 0);
  agentws_config_free(cfg);
  agentws_callbacks_free(cbs);
  int port = 0;
  CHECK(agentws_manager_listen(m, "127.0.0.1", 0, &port) == 0);
  CHECK(port > 0);
  CHECK(agentws_manager_get_user_data(m) == &posted);
  CHECK(agentws_manager_post(m, on_post, &posted) == 0);
  CHECK(agentws_manager_start(m) == 0);
  CHECK(agentws_manager_stop(m) == 0);
  CHECK(posted == 1);
  agentws_manager_free(m);
  std::printf("C++ header OK (libagentws %s)\n", agentws_version_string());
  return 0;
}
