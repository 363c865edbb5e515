/* The manager: owns config, callbacks, the transport and the loop thread. */
#ifndef AGENTWS_MANAGER_H
#define AGENTWS_MANAGER_H

#include <uv.h>

#include "agentws.h"
#include "agentws_auth.h"
#include "agentws_callbacks.h"
#include "agentws_config.h"
#include "agentws_emitter.h"
#include "agentws_monitor.h"
#include "agentws_stats.h"
#include "agentws_transport.h"

/* One posted call waiting for the loop thread. */
typedef struct agentws__post {
  agentws_post_cb cb;         /* host function */
  void *user_data;            /* its argument */
  struct agentws__post *next; /* FIFO link */
} agentws__post;

struct agentws_manager {
  const agentws__mem *mem;   /* allocator: &mem_store */
  agentws__mem mem_store;    /* the config's hook, held by value */
  agentws_config *cfg;       /* owned copy */
  agentws_callbacks cbs;     /* copy of the host's hooks */
  void *user_data;           /* passed to every host callback */
  uv_loop_t *loop;           /* host's, or own_loop */
  uv_loop_t *own_loop;       /* threaded mode: allocated here */
  uv_thread_t thread;        /* threaded mode: runs own_loop */
  uv_thread_t loop_thread;   /* thread the loop runs on (for checks) */
  int threaded;              /* created by agentws_manager_new_threaded */
  int started;               /* thread started */
  int joined;                /* thread joined */
  int closing;               /* close began */
  int closed;                /* close finished: handles all closed */
  int free_on_closed;        /* agentws_manager_free() came first */
  agentws_closed_cb closed_cb;   /* host's, from agentws_manager_close */
  void *closed_ud;
  uv_async_t async;          /* wakes the loop for posts and stop */
  uv_mutex_t lock;           /* guards the post queue and post_closed */
  agentws__post *post_head, *post_tail; /* FIFO of posted calls */
  int post_closed;           /* no more posts accepted */
  int stop_requested;        /* agentws_manager_stop() asked (under lock) */
  int warn_insecure;         /* dev mode warning for on_log, sent from the
                                loop thread's first async callback */
  agentws__auth auth;        /* JWT keys, cache, token deadlines */
  agentws__stats stats;      /* counters for agentws_manager_get_stats */
  agentws__emitter emitter;  /* registry, streams, delivery */
  agentws__monitor mon;      /* detectors, gauges, loop lag */
  struct host_answer *http_answer; /* the request on_http may answer */
  agentws__transport transport; /* sockets and framing (large: read buf) */
};

/* agentws_auth.c */
int agentws__auth_on_request(agentws_manager *m, agentws__conn *c,
                             const agentws__http_request *req,
                             const char **reason);
agentws__session *agentws__session_new(agentws_manager *m, agentws__conn *c);
void agentws__session_free(agentws_manager *m, agentws__session *s);

/* An agentws_request copied from |hr| (one allocation), or NULL. */
agentws_request *agentws__request_new(const agentws__mem *mem,
                                      const agentws__http_request *hr,
                                      const char *remote);
void agentws__request_free(agentws_manager *m, agentws_request *r);
/* The peer's "ip:port" of |c| into |out|. */
void agentws__peer_name(agentws__conn *c, char *out, size_t cap);

/* agentws_endpoints.c: /metrics, /healthz, /readyz and the host's pages.
 * Returns 1 if it answered the request. */
int agentws__endpoints_route(agentws_manager *m, agentws__conn *c,
                             const agentws__http_request *req);

/* agentws_lifetime.c */
int64_t agentws__wall_ms(void);
/* Verifies a token with the current keys through the cache (loop thread);
 * counts cache hits and misses. As agentws__jwt_verify(). */
int agentws__auth_verify(agentws_manager *m, const char *tok, size_t len,
                         agentws__jwt_result *res);
/* (Re)places |s| in the deadline heap from its token_exp. */
void agentws__auth_schedule(agentws_manager *m, agentws__session *s);
void agentws__auth_unschedule(agentws_manager *m, agentws__session *s);
/* Sends token_expiring and closes expired connections (the 1 s sweep). */
void agentws__auth_tick(agentws_manager *m);
/* A refresh message: 0 (answered "refreshed"), -1 not enabled, -2 refused;
 * |*why| then says why. */
int agentws__auth_refresh(agentws_manager *m, agentws__session *s,
                          const char *tok, size_t len, const char **why);

#endif /* AGENTWS_MANAGER_H */
