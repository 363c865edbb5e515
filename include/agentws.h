/*
 * libagentws — stream AI-agent lifecycle events to WebSocket clients.
 *
 * Threading: all objects are bound to the thread running their uv loop; no
 * function is thread-safe unless its documentation says so. Callbacks run
 * only on the loop thread (for a threaded manager: the library's thread,
 * once started). Thread-safe: agentws_version*, agentws_strerror*,
 * agentws_err_*, agentws_manager_post, agentws_manager_stop, every
 * agentws_emit_*, agentws_manager_get_queued_events,
 * agentws_manager_set_jwt_keys and agentws_manager_get_stats.
 *
 * Signals: the library installs no handler and changes no disposition. It
 * writes to sockets with write(2), so a peer that reset can raise SIGPIPE
 * on the writing thread: a host-loop host must ignore or block SIGPIPE (as
 * Node.js and Python do); a threaded manager blocks it on its own thread.
 *
 * Errors: fallible functions return 0 or a negative code: AGENTWS_ERR_* in
 * -1000..-1999 (codes <= -1900 are fatal), or a libuv status (-errno) passed
 * through unchanged. agentws_strerror() names any of them.
 *
 * Ownership: inputs are borrowed and copied before a function returns unless
 * its documentation says otherwise. Pointers given to callbacks are valid
 * only until the callback returns.
 *
 * ABI: see README "ABI promise". Every symbol says the version it appeared in.
 */
#ifndef AGENTWS_H
#define AGENTWS_H

#include <stddef.h>
#include <stdint.h>

#include "agentws_version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  ifdef BUILDING_AGENTWS
#    define AGENTWS_EXTERN __declspec(dllexport)
#  else
#    define AGENTWS_EXTERN __declspec(dllimport)
#  endif
#elif defined(BUILDING_AGENTWS) && defined(__GNUC__)
#  define AGENTWS_EXTERN __attribute__((visibility("default")))
#else
#  define AGENTWS_EXTERN
#endif

#if defined(__GNUC__)
#  define AGENTWS_DEPRECATED(ver, msg)                                      \
    __attribute__((deprecated("since " #ver ": " msg)))
#else
#  define AGENTWS_DEPRECATED(ver, msg)
#endif

/* libuv's uv_loop_t is `typedef struct uv_loop_s uv_loop_t;`. */
struct uv_loop_s;

/* A server: listeners, connections, timers; bound to one uv loop. */
typedef struct agentws_manager agentws_manager;
/* Options for a manager; copied by agentws_manager_new*(). */
typedef struct agentws_config agentws_config;
/* The host's hooks; copied by agentws_manager_new*(). */
typedef struct agentws_callbacks agentws_callbacks;

/* ---------------------------------------------------------------- errors */

/*
 * Error codes. Numbers are never renumbered or reused; codes <= -1900 are
 * fatal (the manager cannot continue). libuv statuses (e.g. UV_EADDRINUSE)
 * pass through unchanged.
 */
enum agentws_error {
  /* An argument is NULL, empty or malformed. */
  AGENTWS_ERR_INVALID_ARGUMENT = -1001,
  /* A numeric option is outside its documented range. */
  AGENTWS_ERR_OUT_OF_RANGE = -1002,
  /* The object is not in a state that allows the call (e.g. closing). */
  AGENTWS_ERR_INVALID_STATE = -1003,
  /* No open connection has that id. */
  AGENTWS_ERR_NOT_FOUND = -1004,
  /* The call was made from a thread it is not allowed on. */
  AGENTWS_ERR_WRONG_THREAD = -1005,
  /* The connection is closing; nothing more can be sent on it. */
  AGENTWS_ERR_CLOSING = -1006,
  /* The connection's send queue bound was exceeded: it is being closed
   * with 1013 "slow consumer". */
  AGENTWS_ERR_QUEUE_FULL = -1007,
  /* A message is larger than the configured maximum. */
  AGENTWS_ERR_TOO_BIG = -1008,
  /* A text message or close reason is not valid UTF-8. */
  AGENTWS_ERR_INVALID_UTF8 = -1009,
  /* A host callback returned nonzero. */
  AGENTWS_ERR_CALLBACK_FAILURE = -1010,
  /* A close code that may not be sent (RFC 6455 §7.4). */
  AGENTWS_ERR_INVALID_CLOSE_CODE = -1011,
  /* A configured limit was reached (e.g. max connections). */
  AGENTWS_ERR_LIMIT = -1012,
  /* A JSON argument is not valid JSON, or not the JSON type required. */
  AGENTWS_ERR_INVALID_JSON = -1013,
  /* Strict validation refused an event that breaks its run's lifecycle
   * (agentws_config_set_validation). Nothing was sent. */
  AGENTWS_ERR_VALIDATION = -1014,
  /* Out of memory. Fatal. */
  AGENTWS_ERR_NOMEM = -1900,
  /* An internal invariant failed or a dependency misbehaved. Fatal. */
  AGENTWS_ERR_INTERNAL = -1901
};

/*
 * Returns a static English description of |err| (an AGENTWS_ERR_* code, a
 * libuv status or 0), never NULL. Thread-safe. Since: 0.1
 */
AGENTWS_EXTERN const char *agentws_strerror(int err);

/*
 * Returns the static symbolic name of |err| ("AGENTWS_ERR_NOMEM",
 * "EADDRINUSE", "OK"), never NULL. Thread-safe. Since: 0.1
 */
AGENTWS_EXTERN const char *agentws_err_name(int err);

/*
 * Copies agentws_strerror(|err|) into |buf| of |len| bytes, NUL-terminated
 * and truncated if needed. Returns 0, or AGENTWS_ERR_INVALID_ARGUMENT if
 * |buf| is NULL or |len| is 0. Thread-safe. Since: 0.1
 */
AGENTWS_EXTERN int agentws_strerror_r(int err, char *buf, size_t len);

/* Returns 1 if |err| is fatal (<= -1900 and >= -1999), else 0.
 * Thread-safe. Since: 0.1 */
AGENTWS_EXTERN int agentws_err_is_fatal(int err);

/* --------------------------------------------------------------- version */

/* Returns AGENTWS_VERSION_NUM of the loaded library (0xMMmmpp), which may
 * differ from the header's. Thread-safe. Since: 0.1 */
AGENTWS_EXTERN unsigned agentws_version(void);

/* Returns the loaded library's version, e.g. "0.1.0". Thread-safe.
 * Since: 0.1 */
AGENTWS_EXTERN const char *agentws_version_string(void);

/* ------------------------------------------------------ WebSocket values */

/* Message types, passed as int. */
#define AGENTWS_MSG_TEXT 1
#define AGENTWS_MSG_BINARY 2

/* Close codes the library itself sends or reports (README "Close codes"). */
#define AGENTWS_CLOSE_NORMAL 1000
#define AGENTWS_CLOSE_GOING_AWAY 1001        /* shutdown, idle timeout */
#define AGENTWS_CLOSE_PROTOCOL_ERROR 1002    /* bad framing from the peer */
#define AGENTWS_CLOSE_NO_STATUS 1005         /* reported: close had no code */
#define AGENTWS_CLOSE_ABNORMAL 1006          /* reported: no close frame */
#define AGENTWS_CLOSE_INVALID_PAYLOAD 1007   /* invalid UTF-8 text */
#define AGENTWS_CLOSE_POLICY_VIOLATION 1008
#define AGENTWS_CLOSE_MESSAGE_TOO_BIG 1009   /* over max_message_size */
#define AGENTWS_CLOSE_INTERNAL_ERROR 1011    /* callback failure, no memory */
#define AGENTWS_CLOSE_TRY_AGAIN_LATER 1013   /* slow consumer */

/* ---------------------------------------------------------------- config */

/*
 * Creates a config holding every default. On success stores it in |*out| and
 * returns 0; AGENTWS_ERR_INVALID_ARGUMENT if |out| is NULL;
 * AGENTWS_ERR_NOMEM. Free with agentws_config_free(). A config may be used
 * for any number of managers, which copy it. Not thread-safe (the object).
 * Since: 0.1
 */
AGENTWS_EXTERN int agentws_config_new(agentws_config **out);

/* Frees |cfg|; NULL is ignored. Since: 0.1 */
AGENTWS_EXTERN void agentws_config_free(agentws_config *cfg);

/*
 * Allocator hook, per manager (the way nghttp2_mem is per session; the
 * library keeps no global state, so it sets no process-wide hook).
 * A manager made from |cfg| allocates everything it owns through these
 * four: its copy of the config, connections and their buffers, streams,
 * backlogs, queued events and frames, requests, the token cache and, for
 * agentws_manager_new_threaded(), its loop. Objects the host creates
 * itself (config, callbacks, keyset, stats) use malloc. libuv, wslay,
 * jansson, libcjose and OpenSSL allocate by their own means.
 *
 * All four functions, or all NULL (back to malloc); else
 * AGENTWS_ERR_INVALID_ARGUMENT. The functions follow malloc(3), free(3),
 * calloc(3) and realloc(3): free(NULL) does nothing, realloc(NULL, n)
 * allocates. |user_data| is passed to each. They are called on the loop
 * thread and on every thread that emits (emit copies the event there),
 * so they must be thread-safe when several threads emit. A NULL return
 * is out of memory: the call that needed it fails with AGENTWS_ERR_NOMEM,
 * or the one connection that needed it is closed with 1011; the manager
 * and its other connections go on. The functions must stay valid until
 * every manager made from |cfg| is freed. Not thread-safe (the config).
 * Since: 0.1
 */
typedef void *(*agentws_malloc_cb)(size_t size, void *user_data);
typedef void (*agentws_free_cb)(void *ptr, void *user_data);
typedef void *(*agentws_calloc_cb)(size_t nmemb, size_t size,
                                   void *user_data);
typedef void *(*agentws_realloc_cb)(void *ptr, size_t size, void *user_data);
AGENTWS_EXTERN int agentws_config_set_allocator(
    agentws_config *cfg, agentws_malloc_cb malloc_cb, agentws_free_cb free_cb,
    agentws_calloc_cb calloc_cb, agentws_realloc_cb realloc_cb,
    void *user_data);

/*
 * Setters. Each returns 0, AGENTWS_ERR_INVALID_ARGUMENT (NULL cfg or bad
 * string), AGENTWS_ERR_OUT_OF_RANGE (value outside the range given), or
 * AGENTWS_ERR_NOMEM; on error the config is unchanged. Strings are copied.
 * Since: 0.1 for all.
 */

/* Path of the WebSocket endpoint: starts with '/', no '?', <= 255 bytes.
 * Default "/ws". */
AGENTWS_EXTERN int agentws_config_set_ws_path(agentws_config *cfg,
                                              const char *path);

/* Largest inbound message (after reassembly), 1 .. 2^31 bytes.
 * Larger: close 1009. Default 1048576 (1 MiB). */
AGENTWS_EXTERN int agentws_config_set_max_message_size(agentws_config *cfg,
                                                       uint64_t bytes);

/* Bytes a connection may have queued for sending, 1024 .. 2^32. Past it the
 * connection is closed with 1013 "slow consumer". A single message is always
 * accepted into an empty queue. Default 1048576. */
AGENTWS_EXTERN int agentws_config_set_max_queued_bytes(agentws_config *cfg,
                                                       uint64_t bytes);

/* Largest HTTP request head, 256 .. 65536 bytes (larger: 431).
 * Default 8192. */
AGENTWS_EXTERN int agentws_config_set_max_header_bytes(agentws_config *cfg,
                                                       uint64_t bytes);

/* Most header lines in a request head, 4 .. 256 (more: 431). Default 64. */
AGENTWS_EXTERN int agentws_config_set_max_headers(agentws_config *cfg,
                                                  int n);

/* Time for a client to send a complete request head, 1 .. 3600000 ms
 * (slower: 408 and close). Default 10000. */
AGENTWS_EXTERN int
agentws_config_set_handshake_timeout_ms(agentws_config *cfg, int64_t ms);

/* Quiet time after which the server pings, 0 (off) or 10 .. 3600000 ms.
 * Default 30000. */
AGENTWS_EXTERN int agentws_config_set_ping_interval_ms(agentws_config *cfg,
                                                       int64_t ms);

/* Time a peer has to answer a ping (with a pong or any data) before the TCP
 * connection is dropped and reported as 1006, 10 .. 3600000 ms.
 * Default 10000. */
AGENTWS_EXTERN int agentws_config_set_pong_timeout_ms(agentws_config *cfg,
                                                      int64_t ms);

/* Time with no text/binary message in either direction after which the
 * connection is closed with 1001 "idle timeout", 0 (off) or 10 .. 86400000
 * ms. Default 0. */
AGENTWS_EXTERN int agentws_config_set_idle_timeout_ms(agentws_config *cfg,
                                                      int64_t ms);

/* Time a closing connection gets to drain its queue and finish the close
 * handshake before the TCP connection is dropped; also the drain deadline of
 * agentws_manager_close(). 1 .. 600000 ms. Default 5000. */
AGENTWS_EXTERN int agentws_config_set_close_timeout_ms(agentws_config *cfg,
                                                       int64_t ms);

/* Most open connections (HTTP and WebSocket), 0 (no limit) .. 10000000.
 * Past it new handshakes get 503. Default 0. */
AGENTWS_EXTERN int agentws_config_set_max_connections(agentws_config *cfg,
                                                      int64_t n);

/* Adds an allowed Origin (exact, e.g. "https://app.example"). Once any is
 * added, a handshake whose Origin header is present and not listed gets 403.
 * Requests without Origin (non-browser clients) are not affected. */
AGENTWS_EXTERN int agentws_config_add_allowed_origin(agentws_config *cfg,
                                                     const char *origin);

/* Adds a subprotocol the server may select (an HTTP token, <= 64 bytes).
 * "agentws.v1" is always supported. A name starting with "bearer." in any
 * case is refused (AGENTWS_ERR_INVALID_ARGUMENT): such entries carry
 * tokens and are never selected. */
AGENTWS_EXTERN int agentws_config_add_subprotocol(agentws_config *cfg,
                                                  const char *name);

/* 1 (default) serves GET /healthz on the listening port; 0 answers 404. */
AGENTWS_EXTERN int agentws_config_set_healthz(agentws_config *cfg,
                                              int enabled);

/* Kernel send buffer per connection (SO_SNDBUF), 0 (the kernel's
 * autotuning, up to net.ipv4.tcp_wmem's maximum, often 4 MiB) or
 * 4096 .. 67108864 bytes. A bound keeps a stalled client from parking
 * megabytes in the kernel and makes max_queued_bytes act sooner.
 * Default 0. Since: 0.1 */
AGENTWS_EXTERN int
agentws_config_set_socket_send_buffer(agentws_config *cfg, uint64_t bytes);

/* Listen backlog, 1 .. 65535. Default 511. */
AGENTWS_EXTERN int agentws_config_set_listen_backlog(agentws_config *cfg,
                                                     int n);

/* ------------------------------------------------------------- callbacks */

/*
 * A connection completed its WebSocket handshake. |conn_id| is unique for the
 * manager's lifetime and never 0. Since: 0.1
 */
typedef void (*agentws_on_open_cb)(agentws_manager *m, uint64_t conn_id,
                                   void *user_data);

/*
 * A complete message arrived. |type| is AGENTWS_MSG_TEXT (valid UTF-8) or
 * AGENTWS_MSG_BINARY; |data| is valid until the callback returns. Return 0;
 * nonzero closes the connection with 1011 (AGENTWS_ERR_CALLBACK_FAILURE).
 * Since: 0.1
 */
typedef int (*agentws_on_message_cb)(agentws_manager *m, uint64_t conn_id,
                                     int type, const uint8_t *data,
                                     size_t len, void *user_data);

/*
 * A connection that was opened (on_open fired) is gone. |code| is the close
 * code received from the peer, or the one the server sent, or 1006 if the
 * TCP connection ended without a close frame; |reason| (|reason_len| bytes,
 * not NUL-terminated, may be empty) says why. After this callback the id is
 * invalid. Since: 0.1
 */
typedef void (*agentws_on_close_cb)(agentws_manager *m, uint64_t conn_id,
                                    int code, const char *reason,
                                    size_t reason_len, void *user_data);

/* agentws_manager_close() finished: every handle is closed. Since: 0.1 */
typedef void (*agentws_closed_cb)(agentws_manager *m, void *user_data);

/* Work posted with agentws_manager_post(), now on the loop thread.
 * Since: 0.1 */
typedef void (*agentws_post_cb)(agentws_manager *m, void *user_data);

/* Creates an empty callbacks object (every hook unset). Returns 0,
 * AGENTWS_ERR_INVALID_ARGUMENT or AGENTWS_ERR_NOMEM. Since: 0.1 */
AGENTWS_EXTERN int agentws_callbacks_new(agentws_callbacks **out);

/* Frees |cbs|; NULL is ignored. Since: 0.1 */
AGENTWS_EXTERN void agentws_callbacks_free(agentws_callbacks *cbs);

/* Hook setters; NULL unsets. Every hook gets the manager's user_data.
 * A NULL |cbs| is ignored. Not thread-safe (the object). Since: 0.1 */
AGENTWS_EXTERN void agentws_callbacks_set_on_open(agentws_callbacks *cbs,
                                                  agentws_on_open_cb cb);
AGENTWS_EXTERN void
agentws_callbacks_set_on_message(agentws_callbacks *cbs,
                                 agentws_on_message_cb cb);
AGENTWS_EXTERN void agentws_callbacks_set_on_close(agentws_callbacks *cbs,
                                                   agentws_on_close_cb cb);

/* --------------------------------------------------------------- manager */

/*
 * Creates a manager on the host's running or not-yet-running |loop| (a
 * uv_loop_t*). |cfg| (NULL: defaults) and |cbs| (NULL: no hooks) are copied;
 * |user_data| is passed to every callback. Returns 0, or
 * AGENTWS_ERR_INVALID_ARGUMENT, AGENTWS_ERR_NOMEM, or a libuv status.
 * Loop thread only. The loop must outlive the manager; close it with
 * agentws_manager_close(), then agentws_manager_free(). Since: 0.1
 */
AGENTWS_EXTERN int agentws_manager_new(agentws_manager **out,
                                       struct uv_loop_s *loop,
                                       const agentws_config *cfg,
                                       const agentws_callbacks *cbs,
                                       void *user_data);

/*
 * Creates a manager that owns its loop and will run it on its own thread,
 * for hosts without libuv (e.g. Python through ctypes). Configure and
 * agentws_manager_listen() on the calling thread, then
 * agentws_manager_start(); from then on callbacks run on the library's
 * thread and the host uses only thread-safe calls (or calls made from inside
 * callbacks). Stop with agentws_manager_stop(), then agentws_manager_free().
 * Returns as agentws_manager_new(). Since: 0.1
 */
AGENTWS_EXTERN int agentws_manager_new_threaded(agentws_manager **out,
                                                const agentws_config *cfg,
                                                const agentws_callbacks *cbs,
                                                void *user_data);

/*
 * Starts the loop thread of a manager made by agentws_manager_new_threaded().
 * Returns 0, AGENTWS_ERR_INVALID_STATE (not threaded, already started or
 * stopped), or a libuv status. Call once, from the thread that created it.
 * Since: 0.1
 */
AGENTWS_EXTERN int agentws_manager_start(agentws_manager *m);

/*
 * Thread-safe. For a threaded manager: closes it gracefully (as
 * agentws_manager_close()) on its thread and waits until the thread has
 * ended. Returns 0 (also if already stopped or never started),
 * AGENTWS_ERR_WRONG_THREAD if called from the loop thread (use
 * agentws_manager_close() there), or AGENTWS_ERR_INVALID_STATE if |m| is not
 * threaded. Since: 0.1
 */
AGENTWS_EXTERN int agentws_manager_stop(agentws_manager *m);

/*
 * Listens on |host| (an IPv4 or IPv6 literal, e.g. "127.0.0.1" or "::1";
 * NULL means "127.0.0.1") and |port| (0 picks a free port). May be called
 * more than once (e.g. IPv4 and IPv6). If |bound_port| is non-NULL, stores
 * the port actually bound. Returns 0, AGENTWS_ERR_INVALID_ARGUMENT (bad host
 * or port), AGENTWS_ERR_INVALID_STATE (closing), AGENTWS_ERR_NOMEM, or a
 * libuv status (UV_EADDRINUSE, ...). Loop thread only, or before
 * agentws_manager_start() for a threaded manager. Since: 0.1
 */
AGENTWS_EXTERN int agentws_manager_listen(agentws_manager *m,
                                          const char *host, int port,
                                          int *bound_port);

/*
 * Takes over |fd|, a connected TCP socket the host accepted, plus the |len|
 * bytes it already read from it (|data|, copied; may be 0/NULL), which must
 * be the start of the HTTP request. The library then owns the socket and
 * closes it. The handshake continues on the next loop iteration, so no
 * callback fires before this returns. On success stores the connection id in
 * |*conn_id| (may be NULL). Returns 0, AGENTWS_ERR_INVALID_ARGUMENT,
 * AGENTWS_ERR_INVALID_STATE (closing), AGENTWS_ERR_TOO_BIG (|len| over
 * max_header_bytes), AGENTWS_ERR_NOMEM or a libuv status; on failure the host
 * still owns |fd|. Loop thread only. Since: 0.1
 */
AGENTWS_EXTERN int agentws_manager_adopt(agentws_manager *m, int fd,
                                         const uint8_t *data, size_t len,
                                         uint64_t *conn_id);

/*
 * Closes gracefully: stops listening, sends close 1001 "server shutdown" to
 * every WebSocket connection, lets queues drain for up to close_timeout_ms,
 * then closes every socket, timer and async handle and calls |cb| (may be
 * NULL) on the loop thread. Afterwards uv_loop_close() can succeed. Returns 0,
 * AGENTWS_ERR_INVALID_STATE (already closing), or AGENTWS_ERR_WRONG_THREAD
 * for a started threaded manager (use agentws_manager_stop()). Loop thread
 * only; allowed inside callbacks (the close proceeds after they return). If
 * it fails, |cb| never fires. Since: 0.1
 */
AGENTWS_EXTERN int agentws_manager_close(agentws_manager *m,
                                         agentws_closed_cb cb,
                                         void *user_data);

/*
 * Frees |m| (NULL is ignored). A host-loop manager should be freed after its
 * agentws_manager_close() callback fired; if it is not closed yet, this
 * starts the graceful close and the memory is released when the close
 * completes, so the host must keep running the loop. A threaded manager is
 * stopped first if needed, then its loop is closed. Not from inside a
 * callback of |m|. Since: 0.1
 */
AGENTWS_EXTERN void agentws_manager_free(agentws_manager *m);

/* Returns the user_data given at creation or set later. Loop thread, or any
 * thread if the host synchronizes with setters itself. Since: 0.1 */
AGENTWS_EXTERN void *agentws_manager_get_user_data(agentws_manager *m);

/* Replaces the user_data passed to callbacks. Loop thread only.
 * Since: 0.1 */
AGENTWS_EXTERN void agentws_manager_set_user_data(agentws_manager *m,
                                                  void *user_data);

/*
 * Thread-safe: runs |cb|(m, |user_data|) on the loop thread soon. Calls from
 * one thread run in order. Posts are accepted until the manager's close has
 * completed (they run before the closed callback); after that this returns
 * AGENTWS_ERR_INVALID_STATE and |cb| never runs. Also returns
 * AGENTWS_ERR_INVALID_ARGUMENT or AGENTWS_ERR_NOMEM. Since: 0.1
 */
AGENTWS_EXTERN int agentws_manager_post(agentws_manager *m, agentws_post_cb cb,
                                        void *user_data);

/* Thread-safe: events emitted and not yet published by the loop thread
 * (the emit queue is not bounded; a producer that must not outrun the
 * loop can watch this). Since: 0.1 */
AGENTWS_EXTERN uint64_t agentws_manager_get_queued_events(agentws_manager *m);

/* Number of open connections (HTTP and WebSocket). Loop thread only.
 * Since: 0.1 */
AGENTWS_EXTERN uint64_t agentws_manager_get_num_connections(agentws_manager *m);

/* ----------------------------------------------------------- connections */

/*
 * Queues a message of |len| bytes (copied) for connection |conn_id|; it
 * leaves with the loop iteration's coalesced write. |type| is
 * AGENTWS_MSG_TEXT (must be valid UTF-8) or AGENTWS_MSG_BINARY. Returns 0,
 * AGENTWS_ERR_INVALID_ARGUMENT, AGENTWS_ERR_NOT_FOUND, AGENTWS_ERR_CLOSING,
 * AGENTWS_ERR_INVALID_UTF8, AGENTWS_ERR_QUEUE_FULL (the connection is now
 * being closed with 1013) or AGENTWS_ERR_NOMEM. Loop thread only; allowed
 * inside callbacks. Since: 0.1
 */
AGENTWS_EXTERN int agentws_conn_send(agentws_manager *m, uint64_t conn_id,
                                     int type, const uint8_t *data,
                                     size_t len);

/*
 * Starts the close handshake with |code| (1000, 1001, 1003, 1007..1011,
 * 1013, or 3000..4999) and |reason| (UTF-8, <= 123 bytes, may be NULL when
 * |reason_len| is 0). Queued messages are sent first; the TCP connection is
 * closed when the peer answers or after close_timeout_ms. on_close fires
 * later, never inside this call. Closing a connection still in its HTTP
 * handshake drops it. Returns 0, AGENTWS_ERR_NOT_FOUND, AGENTWS_ERR_CLOSING
 * (already closing), AGENTWS_ERR_INVALID_CLOSE_CODE,
 * AGENTWS_ERR_INVALID_ARGUMENT or AGENTWS_ERR_INVALID_UTF8. Loop thread only;
 * allowed inside callbacks, including for the connection being reported.
 * Since: 0.1
 */
AGENTWS_EXTERN int agentws_conn_close(agentws_manager *m, uint64_t conn_id,
                                      int code, const char *reason,
                                      size_t reason_len);

/* Attaches |user_data| to an open connection. Returns 0 or
 * AGENTWS_ERR_NOT_FOUND. Loop thread only. Since: 0.1 */
AGENTWS_EXTERN int agentws_conn_set_user_data(agentws_manager *m,
                                              uint64_t conn_id,
                                              void *user_data);

/* Stores the connection's user_data (NULL if never set) in |*out|. Returns
 * 0, AGENTWS_ERR_INVALID_ARGUMENT or AGENTWS_ERR_NOT_FOUND. Loop thread only.
 * Since: 0.1 */
AGENTWS_EXTERN int agentws_conn_get_user_data(agentws_manager *m,
                                              uint64_t conn_id, void **out);

/* Stores the selected subprotocol (static for the connection's life; "" if
 * the client offered none) in |*out|. Returns 0, AGENTWS_ERR_INVALID_ARGUMENT
 * or AGENTWS_ERR_NOT_FOUND. Loop thread only. Since: 0.1 */
AGENTWS_EXTERN int agentws_conn_get_subprotocol(agentws_manager *m,
                                                uint64_t conn_id,
                                                const char **out);

/* ------------------------------------------ agent protocol: configuration */

/* 1: raw mode — no agentws.v1 protocol: no welcome, no registry, every
 * message goes to on_message. 0 (default): the agent protocol. Since: 0.1 */
AGENTWS_EXTERN int agentws_config_set_raw_messages(agentws_config *cfg,
                                                   int enabled);

/* 1: INSECURE development mode: without an on_authenticate hook, the user
 * id is taken from the request's "?user=NAME" query parameter. Never use it
 * in production. Default 0: without a hook every agent-protocol handshake
 * is refused with 401. Since: 0.1 */
AGENTWS_EXTERN int agentws_config_set_dev_insecure(agentws_config *cfg,
                                                   int enabled);

/* Most open connections per user, 1 .. 100000; the next handshake gets 429.
 * Default 5. Since: 0.1 */
AGENTWS_EXTERN int
agentws_config_set_max_conns_per_user(agentws_config *cfg, int n);

/* Backlog kept per stream (user or room) for resume, also while nobody is
 * connected: most events (0 .. 10000000; 0 keeps none), total bytes
 * (0 .. 2^34) and age (0 = no age limit, or 1 .. 86400000 ms). Oldest events
 * go first when any limit is exceeded. Defaults 1000 events, 4 MiB,
 * 300000 ms. Since: 0.1 */
AGENTWS_EXTERN int agentws_config_set_backlog_events(agentws_config *cfg,
                                                     int64_t n);
AGENTWS_EXTERN int agentws_config_set_backlog_bytes(agentws_config *cfg,
                                                    uint64_t bytes);
AGENTWS_EXTERN int agentws_config_set_backlog_age_ms(agentws_config *cfg,
                                                     int64_t ms);

/* Largest client message the protocol accepts, 64 .. 16777216 bytes (and
 * never above max_message_size); larger ones get an "error" message.
 * Default 65536. Since: 0.1 */
AGENTWS_EXTERN int
agentws_config_set_max_client_message(agentws_config *cfg, uint64_t bytes);

/* Client messages per second per connection, 1 .. 100000 (bursts of twice
 * that); more get an "error" message, and persistent abuse closes the
 * connection with 1008. Default 50. Since: 0.1 */
AGENTWS_EXTERN int agentws_config_set_client_rate(agentws_config *cfg,
                                                  int per_second);

/* Time the on_authenticate hook has to answer, 1 .. 600000 ms; then 503.
 * Default 5000. Since: 0.1 */
AGENTWS_EXTERN int agentws_config_set_auth_timeout_ms(agentws_config *cfg,
                                                      int64_t ms);

/* Largest event accepted by emit (the whole JSON envelope),
 * 256 .. 16777216 bytes. Default 262144. Since: 0.1 */
AGENTWS_EXTERN int agentws_config_set_max_event_bytes(agentws_config *cfg,
                                                      uint64_t bytes);

/* ------------------------------------------- agent protocol: callbacks */

/* The HTTP upgrade request, read through accessors. Valid during
 * on_authenticate and, if the hook answers later, until it answers. */
typedef struct agentws_request agentws_request;

/*
 * A handshake passed the RFC 6455 checks and needs a user. Answer with
 * agentws_conn_accept() or agentws_conn_refuse(), inside the hook or later
 * (within auth_timeout_ms, else the client gets 503). Return 0; nonzero
 * refuses with 500. Never fires in raw mode without a hook set. Since: 0.1
 */
typedef int (*agentws_on_authenticate_cb)(agentws_manager *m,
                                          uint64_t conn_id,
                                          const agentws_request *req,
                                          void *user_data);

/* A client asks to join |room|. Return 0 to allow, nonzero to refuse (the
 * client gets an "error" message {code:"join_denied"}). Since: 0.1 */
typedef int (*agentws_on_join_cb)(agentws_manager *m, uint64_t conn_id,
                                  const char *user_id, const char *room,
                                  void *user_data);

/* A client message of a type the protocol does not handle itself. |type|
 * is its "type"; |json| (|len| bytes, NUL-terminated) the whole message.
 * Since: 0.1 */
typedef void (*agentws_on_client_message_cb)(agentws_manager *m,
                                             uint64_t conn_id,
                                             const char *user_id,
                                             const char *type,
                                             const char *json, size_t len,
                                             void *user_data);

/* A resuming client missed events [|from|, |to|] of |stream| ("" for the
 * user's own stream, else "room:<id>") that are no longer held; it was sent
 * a "gap" message first. The host may send it a snapshot with
 * agentws_conn_send() from here. Since: 0.1 */
typedef void (*agentws_on_gap_cb)(agentws_manager *m, uint64_t conn_id,
                                  const char *stream, uint64_t from,
                                  uint64_t to, void *user_data);

AGENTWS_EXTERN void
agentws_callbacks_set_on_authenticate(agentws_callbacks *cbs,
                                      agentws_on_authenticate_cb cb);
AGENTWS_EXTERN void agentws_callbacks_set_on_join(agentws_callbacks *cbs,
                                                  agentws_on_join_cb cb);
AGENTWS_EXTERN void
agentws_callbacks_set_on_client_message(agentws_callbacks *cbs,
                                        agentws_on_client_message_cb cb);
AGENTWS_EXTERN void agentws_callbacks_set_on_gap(agentws_callbacks *cbs,
                                                 agentws_on_gap_cb cb);

/* Request accessors (valid as agentws_request). Strings are
 * NUL-terminated, owned by the library, and live as long as |req|; a NULL
 * |req| gives NULL. Loop thread only. Since: 0.1 */
/* The request-target, e.g. "/ws?user=a". */
AGENTWS_EXTERN const char *
agentws_request_get_target(const agentws_request *req);
/* The first header named |name| (case-insensitive), or NULL. */
AGENTWS_EXTERN const char *
agentws_request_get_header(const agentws_request *req, const char *name);
/* The peer address, "127.0.0.1:5123" or "[::1]:5123". */
AGENTWS_EXTERN const char *
agentws_request_get_remote_address(const agentws_request *req);
/* The number of header lines in the request (0 for a NULL |req|), so a
 * hook that answers later can copy them all. Since: 0.1 */
AGENTWS_EXTERN size_t
agentws_request_get_header_count(const agentws_request *req);
/* Header line |i| (0 .. count - 1, in the order received): stores its
 * name and value (NUL-terminated, owned by the library, valid as |req|)
 * in |*name| and |*value|. Returns 0, AGENTWS_ERR_INVALID_ARGUMENT or
 * AGENTWS_ERR_OUT_OF_RANGE (|i| too large). Since: 0.1 */
AGENTWS_EXTERN int agentws_request_get_header_at(const agentws_request *req,
                                                 size_t i, const char **name,
                                                 const char **value);

/* --------------------------------------- agent protocol: connections */

/*
 * Answers on_authenticate: the connection belongs to |user_id| (1 .. 255
 * bytes of UTF-8, copied), also in raw mode (it then counts toward the
 * user's limit and is listed and revoked with the user's connections). The
 * handshake completes (101) unless the user is at max_conns_per_user
 * (429). Returns 0, AGENTWS_ERR_NOT_FOUND (no pending
 * handshake with that id, e.g. timed out), AGENTWS_ERR_INVALID_ARGUMENT.
 * Loop thread only; allowed inside callbacks. Since: 0.1
 */
AGENTWS_EXTERN int agentws_conn_accept(agentws_manager *m, uint64_t conn_id,
                                       const char *user_id);

/* Answers on_authenticate with a refusal: |status| 400..599 (401 adds
 * WWW-Authenticate: Bearer) and a short |reason| for the body (may be
 * NULL). Returns 0, AGENTWS_ERR_NOT_FOUND, AGENTWS_ERR_OUT_OF_RANGE. Loop
 * thread only. Since: 0.1 */
AGENTWS_EXTERN int agentws_conn_refuse(agentws_manager *m, uint64_t conn_id,
                                       int status, const char *reason);

/* Metadata of an open connection, valid while it is open: its user ("" in
 * raw mode without a user), the peer address, and when it opened (Unix ms).
 * Return 0, AGENTWS_ERR_INVALID_ARGUMENT or AGENTWS_ERR_NOT_FOUND. Loop
 * thread only. Since: 0.1 */
AGENTWS_EXTERN int agentws_conn_get_user(agentws_manager *m,
                                         uint64_t conn_id, const char **out);
AGENTWS_EXTERN int agentws_conn_get_remote_address(agentws_manager *m,
                                                   uint64_t conn_id,
                                                   const char **out);
AGENTWS_EXTERN int agentws_conn_get_connected_at(agentws_manager *m,
                                                 uint64_t conn_id,
                                                 int64_t *unix_ms);

/* Stores up to |cap| ids of |user_id|'s open connections in |ids| and
 * their total number in |*count| (which may exceed |cap|). Returns 0 or
 * AGENTWS_ERR_INVALID_ARGUMENT. Loop thread only. Since: 0.1 */
AGENTWS_EXTERN int agentws_user_list_connections(agentws_manager *m,
                                                 const char *user_id,
                                                 uint64_t *ids, size_t cap,
                                                 size_t *count);

/* Revocation: closes every connection of |user_id| with |code| and
 * |reason| (as agentws_conn_close). Stores how many were closed in |*n|
 * (may be NULL). Returns 0 or an error of agentws_conn_close's. Loop thread
 * only. Since: 0.1 */
AGENTWS_EXTERN int agentws_user_disconnect(agentws_manager *m,
                                           const char *user_id, int code,
                                           const char *reason,
                                           size_t reason_len, size_t *n);

/* Adds (or removes) an open connection to (from) room |room| (1 .. 128
 * bytes, [A-Za-z0-9_.:-]) on the host's authority; adding starts at the
 * room stream's live edge. Returns 0, AGENTWS_ERR_NOT_FOUND,
 * AGENTWS_ERR_INVALID_ARGUMENT, AGENTWS_ERR_NOMEM. Loop thread only.
 * Since: 0.1 */
AGENTWS_EXTERN int agentws_room_add(agentws_manager *m, uint64_t conn_id,
                                    const char *room);
AGENTWS_EXTERN int agentws_room_remove(agentws_manager *m, uint64_t conn_id,
                                       const char *room);

/* Returns 1 if open connection |conn_id| is in |room| (it joined, or the
 * host added it, and has not left), 0 if not, or AGENTWS_ERR_NOT_FOUND /
 * AGENTWS_ERR_INVALID_ARGUMENT. A connection is in at most 64 rooms.
 * Loop thread only. Since: 0.1 */
AGENTWS_EXTERN int agentws_conn_in_room(agentws_manager *m, uint64_t conn_id,
                                        const char *room);

/* ------------------------------------------------- auth: tokens and JWT */

/*
 * Token-based auth. With a key set given (agentws_config_set_jwt_keys),
 * every agent-protocol handshake must carry a JWT that verifies against it
 * (signature by libcjose, claims checked here) before the upgrade; the
 * user id comes from a claim (default "sub"). A missing token gets 401, a
 * bad one 401 with WWW-Authenticate: Bearer error="invalid_token", a
 * token without the required scope 403; the body never says more. If an
 * on_authenticate hook is set as well it runs after the token verified
 * (agentws_request_get_user() gives the token's user) and decides.
 * Supported algorithms: HS256/384/512, RS256/384/512, PS256/384/512,
 * ES256/384/512 ("none" never; EdDSA is not supported by libcjose 0.6).
 */

/* A set of verification keys. Build it, hand it to a config or a running
 * manager (both take their own reference), then free your handle. Once
 * handed over a set is frozen: adding to it returns
 * AGENTWS_ERR_INVALID_STATE. Building is not thread-safe (one thread
 * builds a set). Since: 0.1 */
typedef struct agentws_keyset agentws_keyset;

/* Returns 0, AGENTWS_ERR_INVALID_ARGUMENT or AGENTWS_ERR_NOMEM. */
AGENTWS_EXTERN int agentws_keyset_new(agentws_keyset **out);
AGENTWS_EXTERN void agentws_keyset_free(agentws_keyset *ks);

/* Adds an HMAC secret (HS256/384/512) of |len| bytes, at least 32 (HS384
 * needs 48 and HS512 64 to use it). |kid| (NULL: none) names the key: a
 * token naming a kid is checked only against the key of that kid. At
 * most 64 keys per set. Returns 0, AGENTWS_ERR_INVALID_ARGUMENT (short
 * secret; a kid that is empty, over 255 bytes or holds control bytes),
 * AGENTWS_ERR_LIMIT or AGENTWS_ERR_NOMEM. */
AGENTWS_EXTERN int agentws_keyset_add_secret(agentws_keyset *ks,
                                             const char *kid,
                                             const uint8_t *secret,
                                             size_t len);
/* Adds a PEM public key ("BEGIN PUBLIC KEY": RSA of 2048 bits or more, or
 * EC P-256/384/521) or certificate, |len| bytes. Same returns as above. */
AGENTWS_EXTERN int agentws_keyset_add_pem(agentws_keyset *ks,
                                          const char *kid, const char *pem,
                                          size_t len);
/* Adds every signature key of a JWKS document ({"keys":[...]}) or of a
 * single JWK, |len| bytes of JSON. Keys that are not for signatures we
 * verify ("use" other than "sig", an "alg" not listed above, kty OKP) are
 * skipped; a key's "alg", if present, pins it to that algorithm. All or
 * nothing: on error the set is unchanged. Returns 0,
 * AGENTWS_ERR_INVALID_JSON, AGENTWS_ERR_INVALID_ARGUMENT (a key cjose
 * cannot import, RSA under 2048 bits, a short secret, no usable key at
 * all), AGENTWS_ERR_LIMIT, AGENTWS_ERR_NOMEM. */
AGENTWS_EXTERN int agentws_keyset_add_jwks(agentws_keyset *ks,
                                           const char *json, size_t len);
/* The same, read from the file at |path|; also AGENTWS_ERR_NOT_FOUND if
 * it cannot be read and AGENTWS_ERR_TOO_BIG over 1 MiB. */
AGENTWS_EXTERN int agentws_keyset_add_jwks_file(agentws_keyset *ks,
                                                const char *path);
/* Number of keys in |ks| (0 for NULL). */
AGENTWS_EXTERN int agentws_keyset_count(const agentws_keyset *ks);

/* Keys new managers verify tokens with (the config keeps a reference;
 * NULL removes them). Returns 0 or AGENTWS_ERR_INVALID_ARGUMENT. */
AGENTWS_EXTERN int agentws_config_set_jwt_keys(agentws_config *cfg,
                                               const agentws_keyset *ks);

/* Key rotation: replaces the keys of a running manager (a reference is
 * taken; NULL: no keys, every token is refused). Handshakes and refreshes
 * from now on use the new set and the verification cache is emptied; open
 * connections stay. Thread-safe. Returns 0, AGENTWS_ERR_INVALID_ARGUMENT
 * or AGENTWS_ERR_INVALID_STATE (the manager verifies no JWTs: it was made
 * without keys). Since: 0.1 */
AGENTWS_EXTERN int agentws_manager_set_jwt_keys(agentws_manager *m,
                                                const agentws_keyset *ks);

/* Allowed algorithms, a comma-separated list of the names above (e.g.
 * "RS256,ES256"). Default "HS256,RS256,ES256". A token's algorithm must
 * be in the list and fit its key's type (an HS token is never checked
 * against an RSA or EC key). Returns 0 or AGENTWS_ERR_INVALID_ARGUMENT
 * (unknown name, "none", empty list). */
AGENTWS_EXTERN int agentws_config_set_jwt_algorithms(agentws_config *cfg,
                                                     const char *list);
/* Required "iss" (NULL: not checked). */
AGENTWS_EXTERN int agentws_config_set_jwt_issuer(agentws_config *cfg,
                                                 const char *issuer);
/* Required audience: "aud" must be this string or an array holding it
 * (NULL: not checked). */
AGENTWS_EXTERN int agentws_config_set_jwt_audience(agentws_config *cfg,
                                                   const char *audience);
/* Clock skew allowed on exp, nbf and iat, 0 .. 3600 s. Default 30. */
AGENTWS_EXTERN int agentws_config_set_jwt_leeway_s(agentws_config *cfg,
                                                   int64_t seconds);
/* The claim holding the user id, a string of 1 .. 255 bytes. Default
 * "sub". */
AGENTWS_EXTERN int agentws_config_set_jwt_user_claim(agentws_config *cfg,
                                                     const char *claim);
/* A scope or role the token must grant (NULL: none): found in "scope"
 * (space-separated string or array), "scp" or "roles"; else 403. */
AGENTWS_EXTERN int agentws_config_set_jwt_required_scope(agentws_config *cfg,
                                                         const char *scope);
/* 1 (default): a token without "exp" is refused; 0: accepted (and never
 * expires on an open connection). */
AGENTWS_EXTERN int agentws_config_set_jwt_require_exp(agentws_config *cfg,
                                                      int required);
/* Verified tokens remembered (by SHA-256) until their exp, 0 .. 1000000;
 * 0 turns the cache off. Default 10000 (least recently used goes). */
AGENTWS_EXTERN int agentws_config_set_jwt_cache_size(agentws_config *cfg,
                                                     int64_t entries);

/* Where a handshake's token is looked for, in order: a comma-separated
 * list of "header" (Authorization: Bearer T), "subprotocol" (an entry
 * "bearer.T" in Sec-WebSocket-Protocol, beside agentws.v1; never echoed
 * back), "query" (?access_token=T) and "cookie" (agentws_token=T).
 * Default "header,subprotocol". Tokens over 8192 bytes are refused (401).
 * Returns 0 or AGENTWS_ERR_INVALID_ARGUMENT. */
AGENTWS_EXTERN int agentws_config_set_token_sources(agentws_config *cfg,
                                                    const char *list);
/* Names of the query parameter and the cookie (1 .. 64 bytes of an HTTP
 * token). Defaults "access_token" and "agentws_token". */
AGENTWS_EXTERN int agentws_config_set_token_query_param(agentws_config *cfg,
                                                        const char *name);
AGENTWS_EXTERN int agentws_config_set_token_cookie(agentws_config *cfg,
                                                   const char *name);
/* A connection whose token has an exp gets {"type":"token_expiring",
 * "in_s":N} this long before it, 0 .. 86400 s (0: no warning); it may
 * answer {"type":"refresh","token":T}. A valid token of the same user
 * moves the deadline ({"type":"refreshed","exp":E}); otherwise it gets
 * an "error" {code:"refresh_failed"} and at exp (plus leeway) is closed
 * with 4001 "token expired". Default 60. */
AGENTWS_EXTERN int agentws_config_set_token_expiring_s(agentws_config *cfg,
                                                       int64_t seconds);

/* The user id of the request's verified token, or NULL (no JWT keys, or
 * inside a hook that runs without a token). Loop thread only. */
AGENTWS_EXTERN const char *
agentws_request_get_user(const agentws_request *req);
/* The verified token's claims as a JSON object text, or NULL. */
AGENTWS_EXTERN const char *
agentws_request_get_claims(const agentws_request *req);

/* Unix time (s) at which connection |conn_id|'s token expires in |*exp|
 * (0: no expiry). Returns 0, AGENTWS_ERR_INVALID_ARGUMENT or
 * AGENTWS_ERR_NOT_FOUND. Loop thread only. Since: 0.1 */
AGENTWS_EXTERN int agentws_conn_get_token_exp(agentws_manager *m,
                                              uint64_t conn_id,
                                              int64_t *exp);

/* ------------------------------------------------------------ validation */

/*
 * Every lifecycle event is checked before it is queued, in the order
 * clients will see it: per run (a run_id of one target: the same id for
 * two users is two runs), the first event is agent_started;
 * tool_completed needs an open tool_executing with the same tool_call_id;
 * a tool_call_id is used once; agent_completed / agent_error end the run
 * and nothing of it may follow; agent_completed with tool calls still open
 * is a violation; agent_started for a live run is a violation. Runs with
 * no event for stall_timeout_ms and tool calls without a result for
 * tool_timeout_ms are reported and, under repair or strict, ended with
 * agent_error {code:"stalled"} / a failed tool_completed {code:"timeout"}.
 * What a violation does depends on its rule's policy:
 *   off     nothing (the run is still tracked);
 *   warn    the event is delivered, counted and reported to on_violation;
 *   strict  the emit returns AGENTWS_ERR_VALIDATION and nothing is sent;
 *   repair  the missing events are synthesized (their "data" holds
 *           "synthesized":true) or the offending event is dropped (emit
 *           returns 0), and it is reported.
 * Malformed events (missing or non-UTF-8 strings, bad JSON, a severity
 * other than "info"/"warning"/"error"/"fatal", ids over 256 bytes, JSON
 * nested over 32 levels, over max_event_bytes) are always refused with
 * their own error codes and counted under AGENTWS_RULE_SCHEMA. Custom
 * events are not part of any lifecycle.
 */
#define AGENTWS_VALIDATION_OFF 0
#define AGENTWS_VALIDATION_WARN 1
#define AGENTWS_VALIDATION_STRICT 2
#define AGENTWS_VALIDATION_REPAIR 3

#define AGENTWS_RULE_SCHEMA 0             /* "schema" */
#define AGENTWS_RULE_RUN_NOT_STARTED 1    /* "run_not_started" */
#define AGENTWS_RULE_DUPLICATE_START 2    /* "duplicate_start" */
#define AGENTWS_RULE_ORPHAN_TOOL_RESULT 3 /* "orphan_tool_result" */
#define AGENTWS_RULE_DUPLICATE_TOOL_CALL 4 /* "duplicate_tool_call" */
#define AGENTWS_RULE_AFTER_TERMINAL 5     /* "event_after_terminal" */
#define AGENTWS_RULE_OPEN_TOOLS_AT_END 6  /* "open_tools_at_end" */
#define AGENTWS_RULE_RUN_STALLED 7        /* "run_stalled" */
#define AGENTWS_RULE_TOOL_TIMEOUT 8       /* "tool_timeout" */
#define AGENTWS_RULE_RUN_LIMIT 9          /* "run_limit": max_live_runs hit */

/* What became of a violation. */
#define AGENTWS_OUTCOME_WARNED 0   /* delivered as it was */
#define AGENTWS_OUTCOME_REFUSED 1  /* the emit failed; nothing sent */
#define AGENTWS_OUTCOME_REPAIRED 2 /* synthesized events made it valid */
#define AGENTWS_OUTCOME_DROPPED 3  /* repair swallowed the event */

/* The policy of every rule (AGENTWS_VALIDATION_*). Default warn. Since: 0.1 */
AGENTWS_EXTERN int agentws_config_set_validation(agentws_config *cfg,
                                                 int policy);
/* The policy of one rule (AGENTWS_RULE_*; not SCHEMA), overriding the
 * global one whenever it is set. Returns 0, AGENTWS_ERR_INVALID_ARGUMENT
 * or AGENTWS_ERR_OUT_OF_RANGE. Since: 0.1 */
AGENTWS_EXTERN int agentws_config_set_validation_rule(agentws_config *cfg,
                                                      int rule, int policy);
/* A live run with no event this long is stalled: 0 (off) or
 * 10 .. 86400000 ms. Default 300000. Since: 0.1 */
AGENTWS_EXTERN int agentws_config_set_stall_timeout_ms(agentws_config *cfg,
                                                       int64_t ms);
/* A tool call with no result this long timed out: 0 (off) or
 * 10 .. 86400000 ms. Default 300000. Since: 0.1 */
AGENTWS_EXTERN int agentws_config_set_tool_timeout_ms(agentws_config *cfg,
                                                      int64_t ms);
/* Live runs tracked, 1 .. 10000000 (then the least recently active one is
 * forgotten: AGENTWS_RULE_RUN_LIMIT); ended runs are remembered (to catch
 * events after the end) as many and for run_keep_ms, 0 .. 86400000.
 * Defaults 100000 and 600000. Per run at most 4096 open tool calls are
 * tracked (a call past that is delivered unchecked, and its result then
 * looks like an orphan) and the last 256 finished call ids remembered.
 * Since: 0.1 */
AGENTWS_EXTERN int agentws_config_set_max_live_runs(agentws_config *cfg,
                                                    int64_t n);
AGENTWS_EXTERN int agentws_config_set_run_keep_ms(agentws_config *cfg,
                                                  int64_t ms);

/* A violation: |rule| (AGENTWS_RULE_*), |outcome| (AGENTWS_OUTCOME_*),
 * the run, its target (|target| AGENTWS_TARGET_USER or _ROOM, and the
 * user or room id) and a short English message. Loop thread, after the
 * fact; at most 1024 wait to be reported (more are only counted).
 * Since: 0.1 */
typedef void (*agentws_on_violation_cb)(agentws_manager *m, int rule,
                                        int outcome, const char *run_id,
                                        int target, const char *target_id,
                                        const char *message,
                                        void *user_data);
AGENTWS_EXTERN void
agentws_callbacks_set_on_violation(agentws_callbacks *cbs,
                                   agentws_on_violation_cb cb);

/* "orphan_tool_result", ... for AGENTWS_RULE_*; NULL if unknown. */
AGENTWS_EXTERN const char *agentws_rule_name(int rule);
/* "warned", "refused", "repaired", "dropped"; NULL if unknown. */
AGENTWS_EXTERN const char *agentws_outcome_name(int outcome);

/* ------------------------------------------------------------ statistics */

/*
 * Counters, read through a snapshot: agentws_manager_get_stats() copies
 * them all at once (thread-safe, any thread, no lock on the loop's hot
 * path), then agentws_stats_get() reads one. Counters only grow; gauges
 * (marked) go up and down. New counters get new numbers; numbers are
 * never reused. Since: 0.1
 */
typedef struct agentws_stats agentws_stats;

#define AGENTWS_STAT_AUTH_ACCEPTED 0        /* handshakes given a user */
#define AGENTWS_STAT_AUTH_MISSING_TOKEN 1   /* 401: no token found */
#define AGENTWS_STAT_AUTH_MALFORMED 2       /* 401: not a JWS/JSON, oversized */
#define AGENTWS_STAT_AUTH_BAD_ALGORITHM 3   /* 401: alg not allowed for key */
#define AGENTWS_STAT_AUTH_UNKNOWN_KEY 4     /* 401: kid not in the key set */
#define AGENTWS_STAT_AUTH_BAD_SIGNATURE 5   /* 401 */
#define AGENTWS_STAT_AUTH_EXPIRED 6         /* 401: exp passed */
#define AGENTWS_STAT_AUTH_NOT_YET_VALID 7   /* 401: nbf / iat ahead */
#define AGENTWS_STAT_AUTH_BAD_ISSUER 8      /* 401 */
#define AGENTWS_STAT_AUTH_BAD_AUDIENCE 9    /* 401 */
#define AGENTWS_STAT_AUTH_BAD_CLAIMS 10     /* 401: no user, wrong types */
#define AGENTWS_STAT_AUTH_FORBIDDEN 11      /* 403: scope missing */
#define AGENTWS_STAT_AUTH_HOOK_REFUSED 12   /* on_authenticate refused */
#define AGENTWS_STAT_AUTH_TIMEOUT 13        /* 503: hook did not answer */
#define AGENTWS_STAT_AUTH_USER_LIMIT 14     /* 429: max_conns_per_user */
#define AGENTWS_STAT_AUTH_CACHE_HITS 15     /* verifications saved */
#define AGENTWS_STAT_AUTH_CACHE_MISSES 16   /* full verifications */
#define AGENTWS_STAT_TOKEN_EXPIRING_SENT 17 /* token_expiring messages */
#define AGENTWS_STAT_TOKEN_REFRESHED 18     /* refresh accepted */
#define AGENTWS_STAT_TOKEN_REFRESH_FAILED 19 /* refresh refused */
#define AGENTWS_STAT_TOKEN_EXPIRED_CLOSES 20 /* closed with 4001 */
/* Validation: violations by rule (AGENTWS_RULE_* + 21) ... */
#define AGENTWS_STAT_VIOLATION_SCHEMA 21
#define AGENTWS_STAT_VIOLATION_RUN_NOT_STARTED 22
#define AGENTWS_STAT_VIOLATION_DUPLICATE_START 23
#define AGENTWS_STAT_VIOLATION_ORPHAN_TOOL_RESULT 24
#define AGENTWS_STAT_VIOLATION_DUPLICATE_TOOL_CALL 25
#define AGENTWS_STAT_VIOLATION_AFTER_TERMINAL 26
#define AGENTWS_STAT_VIOLATION_OPEN_TOOLS_AT_END 27
#define AGENTWS_STAT_VIOLATION_RUN_STALLED 28
#define AGENTWS_STAT_VIOLATION_TOOL_TIMEOUT 29
#define AGENTWS_STAT_VIOLATION_RUN_LIMIT 30
/* ... and by outcome (AGENTWS_OUTCOME_* + 31). */
#define AGENTWS_STAT_VIOLATIONS_WARNED 31
#define AGENTWS_STAT_VIOLATIONS_REFUSED 32
#define AGENTWS_STAT_VIOLATIONS_REPAIRED 33
#define AGENTWS_STAT_VIOLATIONS_DROPPED 34
#define AGENTWS_STAT_EVENTS_SYNTHESIZED 35  /* events made by repairs */
#define AGENTWS_STAT_RUNS_LIVE 36           /* gauge: runs tracked now */
#define AGENTWS_STAT_CLIENT_MESSAGES_REFUSED 37 /* answered with "error" */
/* Monitor counters and gauges (Since: 0.1). Gauges are published by the
 * loop thread at every monitor tick (monitor_interval_ms) and before each
 * /metrics answer. */
#define AGENTWS_STAT_CONNECTIONS 38          /* gauge: open WebSockets */
#define AGENTWS_STAT_CONNECTIONS_OPENED 39   /* handshakes completed (101) */
#define AGENTWS_STAT_CONNECTIONS_CLOSED 40   /* opened ones that ended */
/* ... of which by close code (reported to on_close): */
#define AGENTWS_STAT_CLOSED_1000 41
#define AGENTWS_STAT_CLOSED_1001 42
#define AGENTWS_STAT_CLOSED_1002 43
#define AGENTWS_STAT_CLOSED_1005 44
#define AGENTWS_STAT_CLOSED_1006 45
#define AGENTWS_STAT_CLOSED_1007 46
#define AGENTWS_STAT_CLOSED_1008 47
#define AGENTWS_STAT_CLOSED_1009 48
#define AGENTWS_STAT_CLOSED_1011 49
#define AGENTWS_STAT_CLOSED_1013 50
#define AGENTWS_STAT_CLOSED_4001 51
#define AGENTWS_STAT_CLOSED_OTHER 52         /* any other code */
/* HTTP requests answered with an error status instead of 101: */
#define AGENTWS_STAT_REFUSED_400 53
#define AGENTWS_STAT_REFUSED_401 54
#define AGENTWS_STAT_REFUSED_403 55
#define AGENTWS_STAT_REFUSED_404 56
#define AGENTWS_STAT_REFUSED_405 57
#define AGENTWS_STAT_REFUSED_408 58
#define AGENTWS_STAT_REFUSED_426 59
#define AGENTWS_STAT_REFUSED_429 60
#define AGENTWS_STAT_REFUSED_431 61
#define AGENTWS_STAT_REFUSED_500 62
#define AGENTWS_STAT_REFUSED_503 63
#define AGENTWS_STAT_REFUSED_505 64
#define AGENTWS_STAT_REFUSED_OTHER 65
/* Events published (seq assigned), by type: */
#define AGENTWS_STAT_EMITTED_AGENT_STARTED 66
#define AGENTWS_STAT_EMITTED_AGENT_THINKING 67
#define AGENTWS_STAT_EMITTED_TOOL_EXECUTING 68
#define AGENTWS_STAT_EMITTED_TOOL_COMPLETED 69
#define AGENTWS_STAT_EMITTED_AGENT_COMPLETED 70
#define AGENTWS_STAT_EMITTED_AGENT_ERROR 71
#define AGENTWS_STAT_EMITTED_CUSTOM 72
#define AGENTWS_STAT_EVENTS_DELIVERED 73  /* queued to a connection */
#define AGENTWS_STAT_EVENTS_WRITTEN 74    /* ... taken by the kernel */
#define AGENTWS_STAT_EVENTS_ACKED 75      /* ... acknowledged by clients */
#define AGENTWS_STAT_EVENTS_REPLAYED 76   /* delivered from the backlog */
#define AGENTWS_STAT_EVENTS_COALESCED 77  /* thinking deltas merged away */
/* Events that reached nobody, by reason: */
#define AGENTWS_STAT_DROPPED_INVALID 78    /* emit refused: malformed */
#define AGENTWS_STAT_DROPPED_VALIDATION 79 /* strict refused, repair dropped */
#define AGENTWS_STAT_DROPPED_SHUTDOWN 80   /* emit after the close began */
#define AGENTWS_STAT_DROPPED_NOMEM 81      /* out of memory */
#define AGENTWS_STAT_DROPPED_MISSED 82     /* asked for by a resume, gone */
#define AGENTWS_STAT_SLOW_CONSUMER_CLOSES 83 /* closed with 1013 */
#define AGENTWS_STAT_BYTES_RECEIVED 84     /* from sockets */
#define AGENTWS_STAT_BYTES_SENT 85         /* to sockets */
#define AGENTWS_STAT_QUEUED_BYTES 86       /* gauge: output waiting */
#define AGENTWS_STAT_QUEUED_BYTES_MAX 87   /* gauge: its highest so far */
#define AGENTWS_STAT_USERS 88              /* gauge: users known */
#define AGENTWS_STAT_ROOMS 89              /* gauge: rooms known */
#define AGENTWS_STAT_RUNS_STALLED 90       /* gauge: live runs stalled */
#define AGENTWS_STAT_LOOP_LAG_US 91        /* gauge: last measured lag */
#define AGENTWS_STAT_LOOP_LAG_MAX_US 92    /* gauge: highest lag so far */
/* Alerts fired by rule (AGENTWS_ALERT_* + 93) ... */
#define AGENTWS_STAT_ALERTS_RUN_STALLED 93
#define AGENTWS_STAT_ALERTS_TOOL_TIMEOUT 94
#define AGENTWS_STAT_ALERTS_UNACKED 95
#define AGENTWS_STAT_ALERTS_SLOW_CONSUMER 96
#define AGENTWS_STAT_ALERTS_HALF_OPEN 97
#define AGENTWS_STAT_ALERTS_LOOP_LAG 98
#define AGENTWS_STAT_ALERTS_AUTH_TIMEOUTS 99
#define AGENTWS_STAT_ALERTS_VALIDATION_RATE 100
/* ... and firing now, by rule (gauges, AGENTWS_ALERT_* + 101). */
#define AGENTWS_STAT_ACTIVE_RUN_STALLED 101
#define AGENTWS_STAT_ACTIVE_TOOL_TIMEOUT 102
#define AGENTWS_STAT_ACTIVE_UNACKED 103
#define AGENTWS_STAT_ACTIVE_SLOW_CONSUMER 104
#define AGENTWS_STAT_ACTIVE_HALF_OPEN 105
#define AGENTWS_STAT_ACTIVE_LOOP_LAG 106
#define AGENTWS_STAT_ACTIVE_AUTH_TIMEOUTS 107
#define AGENTWS_STAT_ACTIVE_VALIDATION_RATE 108
#define AGENTWS_STAT_HTTP_REQUESTS 109     /* /metrics, /healthz, /readyz,
                                              host pages answered */

/* Returns 0, AGENTWS_ERR_INVALID_ARGUMENT or AGENTWS_ERR_NOMEM. */
AGENTWS_EXTERN int agentws_stats_new(agentws_stats **out);
AGENTWS_EXTERN void agentws_stats_free(agentws_stats *st);
/* Fills |st| from |m|. Thread-safe. Returns 0 or
 * AGENTWS_ERR_INVALID_ARGUMENT. */
AGENTWS_EXTERN int agentws_manager_get_stats(agentws_manager *m,
                                             agentws_stats *st);
/* The value of counter |stat| (an AGENTWS_STAT_*), 0 if unknown. */
AGENTWS_EXTERN uint64_t agentws_stats_get(const agentws_stats *st,
                                          int stat);
/* The counter's snake_case name ("auth_accepted"), or NULL if |stat| is
 * not one this library knows: loop 0 .. until NULL to list them. */
AGENTWS_EXTERN const char *agentws_stat_name(int stat);

/* Latency histograms in a snapshot (log-bucketed, fixed memory: 4 buckets
 * per power of two from 1 us to ~69 s; a quantile is the upper bound of
 * its bucket, so at most 19% high). Since: 0.1 */
#define AGENTWS_HIST_EMIT_TO_WRITE 0 /* emit() to the kernel taking it */
#define AGENTWS_HIST_EMIT_TO_ACK 1   /* emit() to the client's ack */
#define AGENTWS_HIST_HANDSHAKE 2     /* accept to 101 sent */

/* "emit_to_write", "emit_to_ack", "handshake"; NULL if unknown. */
AGENTWS_EXTERN const char *agentws_hist_name(int hist);
/* Samples in histogram |hist| of |st| (0 if unknown). */
AGENTWS_EXTERN uint64_t agentws_stats_hist_count(const agentws_stats *st,
                                                 int hist);
/* Sum of those samples in nanoseconds. */
AGENTWS_EXTERN uint64_t agentws_stats_hist_sum_ns(const agentws_stats *st,
                                                  int hist);
/* Stores in |*ns| the |q|-quantile (0.0 .. 1.0, e.g. 0.99) of |hist| in
 * nanoseconds (0 when it has no samples). Returns 0,
 * AGENTWS_ERR_INVALID_ARGUMENT or AGENTWS_ERR_OUT_OF_RANGE (|q|). */
AGENTWS_EXTERN int agentws_stats_hist_quantile(const agentws_stats *st,
                                               int hist, double q,
                                               uint64_t *ns);

/* --------------------------------------------------------------- monitor */

/*
 * The monitor watches for silent failures and calls on_alert once when a
 * condition starts ("firing") and once when it ends ("cleared"), on the
 * loop thread. Rules, each with its counters (AGENTWS_STAT_ALERTS_* fired,
 * AGENTWS_STAT_ACTIVE_* firing now):
 *   run_stalled      a live run had no event for stall_timeout_ms; clears
 *                    with its next event or its end (under repair/strict
 *                    the library ends it at once, so it clears at once);
 *                    needs validation not off for every rule
 *   tool_timeout     a tool call had no result for tool_timeout_ms; as
 *                    above, clears with the result or the run's end
 *   unacked          a connection that acks has had written events
 *                    unacknowledged for alert_ack_timeout_ms
 *   slow_consumer    a connection's pending output (queued plus owed from
 *                    the backlog) is over alert_queue_bytes and grew since
 *                    the last tick: it may hit max_queued_bytes (1013);
 *                    clears below half of it or when the connection ends
 *   half_open        a ping has gone unanswered for half pong_timeout_ms
 *                    (at the latest when the connection is dropped at
 *                    pong_timeout_ms); clears with any sign of life, or
 *                    at that drop
 *   loop_lag         the loop ran a tick alert_loop_lag_ms or more late
 *   auth_timeouts    on_authenticate left alert_auth_timeouts or more
 *                    handshakes unanswered within one alert_window_ms
 *   validation_rate  more than alert_violations_per_s violations per
 *                    second over one alert_window_ms
 * The rate rules clear after a window below their threshold.
 */
#define AGENTWS_ALERT_RUN_STALLED 0
#define AGENTWS_ALERT_TOOL_TIMEOUT 1
#define AGENTWS_ALERT_UNACKED 2
#define AGENTWS_ALERT_SLOW_CONSUMER 3
#define AGENTWS_ALERT_HALF_OPEN 4
#define AGENTWS_ALERT_LOOP_LAG 5
#define AGENTWS_ALERT_AUTH_TIMEOUTS 6
#define AGENTWS_ALERT_VALIDATION_RATE 7

#define AGENTWS_SEVERITY_INFO 0
#define AGENTWS_SEVERITY_WARNING 1
#define AGENTWS_SEVERITY_CRITICAL 2

/* An alert, read through accessors during on_alert only. */
typedef struct agentws_alert agentws_alert;

/* An alert fired or cleared. Loop thread. Since: 0.1 */
typedef void (*agentws_on_alert_cb)(agentws_manager *m,
                                    const agentws_alert *alert,
                                    void *user_data);
AGENTWS_EXTERN void agentws_callbacks_set_on_alert(agentws_callbacks *cbs,
                                                   agentws_on_alert_cb cb);

/* Accessors; a NULL |a| gives 0, NULL or -1. Strings are owned by the
 * library and NUL-terminated. Since: 0.1 for all. */
/* AGENTWS_ALERT_* */
AGENTWS_EXTERN int agentws_alert_get_rule(const agentws_alert *a);
/* AGENTWS_SEVERITY_* */
AGENTWS_EXTERN int agentws_alert_get_severity(const agentws_alert *a);
/* 1: the condition started; 0: it cleared. */
AGENTWS_EXTERN int agentws_alert_is_firing(const agentws_alert *a);
/* The connection concerned, 0 if none. */
AGENTWS_EXTERN uint64_t agentws_alert_get_conn(const agentws_alert *a);
/* The user (or, for a room's run, the room id) concerned, or "". */
AGENTWS_EXTERN const char *agentws_alert_get_target(const agentws_alert *a);
/* The run concerned, or "". */
AGENTWS_EXTERN const char *agentws_alert_get_run(const agentws_alert *a);
/* The tool call concerned (tool_timeout), or "". */
AGENTWS_EXTERN const char *
agentws_alert_get_tool_call(const agentws_alert *a);
/* What was measured (ms of lag or quiet, bytes pending, events unacked,
 * timeouts or violations in the window) and the threshold it crossed. */
AGENTWS_EXTERN int64_t agentws_alert_get_value(const agentws_alert *a);
AGENTWS_EXTERN int64_t agentws_alert_get_threshold(const agentws_alert *a);
/* A short English description. */
AGENTWS_EXTERN const char *agentws_alert_get_message(const agentws_alert *a);
/* "run_stalled", ... for AGENTWS_ALERT_*; NULL if unknown. */
AGENTWS_EXTERN const char *agentws_alert_rule_name(int rule);
/* "info", "warning", "critical"; NULL if unknown. */
AGENTWS_EXTERN const char *agentws_severity_name(int severity);

/* Monitor options. Each returns 0, AGENTWS_ERR_INVALID_ARGUMENT or
 * AGENTWS_ERR_OUT_OF_RANGE. Since: 0.1 for all. */
/* 0: no latency histograms, detectors or gauges (counters stay); for
 * measuring the monitor's own cost. Default 1. */
AGENTWS_EXTERN int agentws_config_set_monitor(agentws_config *cfg,
                                              int enabled);
/* The tick that samples gauges, loop lag and connections, 10 .. 60000 ms.
 * Default 1000. */
AGENTWS_EXTERN int
agentws_config_set_monitor_interval_ms(agentws_config *cfg, int64_t ms);
/* loop_lag threshold, 0 (off) or 1 .. 600000 ms. Default 250. */
AGENTWS_EXTERN int agentws_config_set_alert_loop_lag_ms(agentws_config *cfg,
                                                        int64_t ms);
/* unacked deadline, 0 (off) or 10 .. 86400000 ms. Default 30000. */
AGENTWS_EXTERN int
agentws_config_set_alert_ack_timeout_ms(agentws_config *cfg, int64_t ms);
/* slow_consumer threshold, 0 (off) or 1024 .. 2^32 bytes. Default: a
 * quarter of max_queued_bytes. */
AGENTWS_EXTERN int
agentws_config_set_alert_queue_bytes(agentws_config *cfg, uint64_t bytes);
/* auth_timeouts threshold per window, 0 (off) or 1 .. 1000000.
 * Default 1. */
AGENTWS_EXTERN int
agentws_config_set_alert_auth_timeouts(agentws_config *cfg, int64_t n);
/* validation_rate threshold, 0 (off) or 1 .. 10000000 violations/s.
 * Default 10. */
AGENTWS_EXTERN int
agentws_config_set_alert_violations_per_s(agentws_config *cfg, int64_t n);
/* Window of the rate rules, 100 .. 3600000 ms. Default 10000. */
AGENTWS_EXTERN int agentws_config_set_alert_window_ms(agentws_config *cfg,
                                                      int64_t ms);

/* ------------------------------------------------------- HTTP endpoints */

/*
 * On the listening port, besides the WebSocket path:
 *   GET /metrics  Prometheus text exposition (version 0.0.4), agentws_
 *                 prefix; see README "Monitoring" for the names.
 *   GET /healthz  liveness: 200 {"status":"ok",...} (503 "closing").
 *   GET /readyz   readiness: 200 {"status":"ready",...}, or 503
 *                 {"status":"not_ready","reasons":[...]} when closing,
 *                 the loop lags ready_max_loop_lag_ms or more, or queued
 *                 output is over ready_max_queued_bytes.
 * With an http_token set, each needs "Authorization: Bearer <token>"
 * (else 401). Since: 0.1 for all.
 */
/* 1 (default) serves GET /metrics; 0 answers 404. */
AGENTWS_EXTERN int agentws_config_set_metrics(agentws_config *cfg,
                                              int enabled);
/* 1 (default) serves GET /readyz; 0 answers 404. */
AGENTWS_EXTERN int agentws_config_set_readyz(agentws_config *cfg,
                                             int enabled);
/* Bearer token for /metrics, /healthz and /readyz (1 .. 1024 bytes of
 * visible ASCII, copied); NULL or "" removes it. Default none. */
AGENTWS_EXTERN int agentws_config_set_http_token(agentws_config *cfg,
                                                 const char *token);
/* Readiness bounds: loop lag 1 .. 600000 ms (default 1000) and total
 * queued output 0 (off) or 1024 .. 2^40 bytes (default 1 GiB). */
AGENTWS_EXTERN int
agentws_config_set_ready_max_loop_lag_ms(agentws_config *cfg, int64_t ms);
AGENTWS_EXTERN int
agentws_config_set_ready_max_queued_bytes(agentws_config *cfg,
                                          uint64_t bytes);

/*
 * A GET or HEAD request for a path the library does not serve (not the
 * WebSocket path nor an enabled endpoint above). Answer it with
 * agentws_http_respond() inside the hook and return 0; return nonzero
 * (or do not answer) for 404. |req| as in on_authenticate. Since: 0.1
 */
typedef int (*agentws_on_http_cb)(agentws_manager *m, uint64_t conn_id,
                                  const agentws_request *req,
                                  void *user_data);
AGENTWS_EXTERN void agentws_callbacks_set_on_http(agentws_callbacks *cbs,
                                                  agentws_on_http_cb cb);

/* Answers the request of on_http with |status| (200 .. 599),
 * |content_type| (NULL: "application/octet-stream") and |len| bytes of
 * |body| (copied; omitted for HEAD), then closes the connection. Returns
 * 0, AGENTWS_ERR_NOT_FOUND (not inside on_http for |conn_id|),
 * AGENTWS_ERR_OUT_OF_RANGE, AGENTWS_ERR_INVALID_ARGUMENT or
 * AGENTWS_ERR_NOMEM. Loop thread, inside on_http only. Since: 0.1 */
AGENTWS_EXTERN int agentws_http_respond(agentws_manager *m, uint64_t conn_id,
                                        int status, const char *content_type,
                                        const uint8_t *body, size_t len);

/* The request method, e.g. "GET". Loop thread only. Since: 0.1 */
AGENTWS_EXTERN const char *
agentws_request_get_method(const agentws_request *req);

/* ------------------------------------------------------------------ log */

#define AGENTWS_LOG_ERROR 0
#define AGENTWS_LOG_WARN 1
#define AGENTWS_LOG_INFO 2
#define AGENTWS_LOG_DEBUG 3

/* A log line (|message|, NUL-terminated, no newline) at |level|
 * (AGENTWS_LOG_*), on the loop thread. Tokens, secrets and message
 * contents never appear in it. Without this hook the library writes
 * nothing, except the dev_insecure warning to stderr. Since: 0.1 */
typedef void (*agentws_on_log_cb)(agentws_manager *m, int level,
                                  const char *message, void *user_data);
AGENTWS_EXTERN void agentws_callbacks_set_on_log(agentws_callbacks *cbs,
                                                 agentws_on_log_cb cb);
/* Most verbose level passed to on_log, AGENTWS_LOG_ERROR ..
 * AGENTWS_LOG_DEBUG. Default AGENTWS_LOG_INFO. Since: 0.1 */
AGENTWS_EXTERN int agentws_config_set_log_level(agentws_config *cfg,
                                                int level);
/* "error", "warn", "info", "debug"; NULL if unknown. Since: 0.1 */
AGENTWS_EXTERN const char *agentws_log_level_name(int level);

/* ------------------------------------------------------------- emitting */

/* Targets of an emit, passed as int. */
#define AGENTWS_TARGET_USER 1 /* target_id is a user id */
#define AGENTWS_TARGET_ROOM 2 /* target_id is a room id */

/*
 * Emit: thread-safe, from any thread. Each call copies its arguments,
 * queues the event and returns at once; events emitted from one thread
 * keep their order. On the loop thread the event gets the next seq of its
 * stream, goes into the stream's backlog and to every connection of the
 * target. |run_id|, |agent|, |tool|, |tool_call_id|, |code|, |message|,
 * |severity| are UTF-8 strings (required, non-empty; at most 256 bytes,
 * |message| 4096); |severity| is "info", "warning", "error" or "fatal";
 * |text| is |text_len| bytes of UTF-8. |data_json| (NULL: none) is a JSON
 * object whose members are added to the event's "data"; |args_json| /
 * |result_json| (NULL: omitted) are any JSON value; JSON nests at most 32
 * levels. Lifecycle events are validated (see "validation"). Returns 0,
 * AGENTWS_ERR_INVALID_ARGUMENT, AGENTWS_ERR_INVALID_UTF8,
 * AGENTWS_ERR_INVALID_JSON, AGENTWS_ERR_TOO_BIG (a string over its limit,
 * or the event over max_event_bytes), AGENTWS_ERR_VALIDATION (strict
 * validation), AGENTWS_ERR_INVALID_STATE (raw mode, or the manager is
 * closed) or AGENTWS_ERR_NOMEM. Since: 0.1 for all.
 */
AGENTWS_EXTERN int agentws_emit_agent_started(agentws_manager *m, int target,
                                              const char *target_id,
                                              const char *run_id,
                                              const char *agent,
                                              const char *data_json);
AGENTWS_EXTERN int agentws_emit_agent_thinking(agentws_manager *m,
                                               int target,
                                               const char *target_id,
                                               const char *run_id,
                                               const char *text,
                                               size_t text_len,
                                               const char *data_json);
AGENTWS_EXTERN int agentws_emit_tool_executing(agentws_manager *m,
                                               int target,
                                               const char *target_id,
                                               const char *run_id,
                                               const char *tool,
                                               const char *tool_call_id,
                                               const char *args_json);
AGENTWS_EXTERN int
agentws_emit_tool_completed(agentws_manager *m, int target,
                            const char *target_id, const char *run_id,
                            const char *tool, const char *tool_call_id,
                            int ok, int64_t duration_ms,
                            const char *result_json);
AGENTWS_EXTERN int agentws_emit_agent_completed(agentws_manager *m,
                                                int target,
                                                const char *target_id,
                                                const char *run_id,
                                                int64_t duration_ms,
                                                const char *result_json,
                                                const char *data_json);
AGENTWS_EXTERN int
agentws_emit_agent_error(agentws_manager *m, int target,
                         const char *target_id, const char *run_id,
                         const char *code, const char *message,
                         const char *severity, int retryable,
                         const char *data_json);
/* A host-defined event: |type| matches [a-z][a-z0-9_.-]{0,63}, does not
 * start with "agent_" or "tool_", and is not a control message type
 * (welcome, gap, error, pong, resumed, joined, left, token_expiring, ping,
 * resume, ack, join, leave, refresh); |run_id| may be NULL. A room
 * |target_id| must be a valid room id (see agentws_room_add). */
AGENTWS_EXTERN int agentws_emit_custom(agentws_manager *m, int target,
                                       const char *target_id,
                                       const char *type, const char *run_id,
                                       const char *data_json);


#ifdef __cplusplus
}
#endif

#endif /* AGENTWS_H */
