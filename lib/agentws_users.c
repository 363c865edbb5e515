/* Registry queries and host actions: metadata, listing, revocation, rooms. */
#include <string.h>

#include "agentws_manager.h"

/* The session of an opened connection, or NULL with |*rv| set. */
static agentws__session *open_session(agentws_manager *m, uint64_t id,
                                      int *rv) {
  agentws__conn *c;
  if (m == NULL) {
    *rv = AGENTWS_ERR_INVALID_ARGUMENT;
    return NULL;
  }
  c = agentws__transport_find(&m->transport, id);
  if (c == NULL || !c->opened || c->app == NULL) {
    *rv = AGENTWS_ERR_NOT_FOUND;
    return NULL;
  }
  *rv = 0;
  return c->app;
}

int agentws_conn_get_user(agentws_manager *m, uint64_t conn_id,
                          const char **out) {
  int rv;
  agentws__session *s;
  if (out == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  s = open_session(m, conn_id, &rv);
  if (s != NULL)
    *out = s->user != NULL ? s->user->id : "";
  return rv;
}

int agentws_conn_get_remote_address(agentws_manager *m, uint64_t conn_id,
                                    const char **out) {
  int rv;
  agentws__session *s;
  if (out == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  s = open_session(m, conn_id, &rv);
  if (s != NULL)
    *out = s->remote;
  return rv;
}

int agentws_conn_get_connected_at(agentws_manager *m, uint64_t conn_id,
                                  int64_t *unix_ms) {
  int rv;
  agentws__session *s;
  if (unix_ms == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  s = open_session(m, conn_id, &rv);
  if (s != NULL)
    *unix_ms = s->connected_at;
  return rv;
}

int agentws_user_list_connections(agentws_manager *m, const char *user_id,
                                  uint64_t *ids, size_t cap, size_t *count) {
  agentws__user *u;
  agentws__list *it;
  size_t n = 0;
  if (m == NULL || user_id == NULL || count == NULL ||
      (ids == NULL && cap > 0))
    return AGENTWS_ERR_INVALID_ARGUMENT;
  u = agentws__registry_find_user(&m->emitter.reg, user_id);
  if (u != NULL)
    for (it = u->sessions.next; it != &u->sessions; it = it->next) {
      agentws__session *s = AGENTWS__CONTAINER_OF(it, agentws__session, unode);
      if (!s->conn->opened)
        continue; /* still in its handshake */
      if (n < cap)
        ids[n] = s->conn->id;
      n++;
    }
  *count = n;
  return 0;
}

int agentws_user_disconnect(agentws_manager *m, const char *user_id, int code,
                            const char *reason, size_t reason_len,
                            size_t *n) {
  agentws__user *u;
  agentws__list *it;
  size_t closed = 0;
  int rv = 0;
  if (m == NULL || user_id == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  if (n != NULL)
    *n = 0;
  u = agentws__registry_find_user(&m->emitter.reg, user_id);
  if (u == NULL)
    return 0;
  /* agentws_conn_close() keeps sessions registered until their socket is
   * closed, so this walk is stable. */
  for (it = u->sessions.next; it != &u->sessions; it = it->next) {
    agentws__session *s = AGENTWS__CONTAINER_OF(it, agentws__session, unode);
    int r;
    if (!s->conn->opened) {
      agentws__conn_kill(s->conn, code, reason);
      continue;
    }
    r = agentws_conn_close(m, s->conn->id, code, reason, reason_len);
    if (r == 0)
      closed++;
    else if (r != AGENTWS_ERR_CLOSING) {
      rv = r;
      break;
    }
  }
  if (n != NULL)
    *n = closed;
  return rv;
}

int agentws_room_add(agentws_manager *m, uint64_t conn_id, const char *room) {
  int rv;
  agentws__session *s = open_session(m, conn_id, &rv);
  if (s == NULL)
    return rv;
  if (room == NULL || s->user == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  return agentws__emitter_room_add(&m->emitter, s, room, 1);
}

int agentws_room_remove(agentws_manager *m, uint64_t conn_id,
                        const char *room) {
  int rv;
  agentws__session *s = open_session(m, conn_id, &rv);
  if (s == NULL)
    return rv;
  if (room == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  return agentws__emitter_room_remove(&m->emitter, s, room, 1);
}

int agentws_conn_in_room(agentws_manager *m, uint64_t conn_id,
                         const char *room) {
  int rv;
  agentws__session *s = open_session(m, conn_id, &rv);
  if (s == NULL)
    return rv;
  if (room == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  return agentws__emitter_in_room(s, room);
}
