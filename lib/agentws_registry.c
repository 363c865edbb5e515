#include "agentws_registry.h"

#include <stdio.h>
#include <string.h>

void agentws__registry_init(agentws__registry *r, const agentws__mem *mem) {
  memset(r, 0, sizeof(*r));
  r->mem = mem;
}

void agentws__registry_free(agentws__registry *r,
                            void (*free_stream)(struct agentws__stream *,
                                                void *),
                            void *ud) {
  size_t i;
  for (i = 0; i < r->users.cap; i++) {
    agentws__user *u = r->users.slots[i].value;
    if (r->users.slots[i].key == NULL)
      continue;
    if (u->stream != NULL)
      free_stream(u->stream, ud);
    agentws__mem_free(r->mem, u->id);
    agentws__mem_free(r->mem, u);
  }
  for (i = 0; i < r->rooms.cap; i++) {
    agentws__room *rm = r->rooms.slots[i].value;
    if (r->rooms.slots[i].key == NULL)
      continue;
    if (rm->stream != NULL)
      free_stream(rm->stream, ud);
    agentws__mem_free(r->mem, rm->stream_name);
    agentws__mem_free(r->mem, rm->id);
    agentws__mem_free(r->mem, rm);
  }
  agentws__strmap_free(&r->users, r->mem);
  agentws__strmap_free(&r->rooms, r->mem);
}

agentws__user *agentws__registry_find_user(agentws__registry *r,
                                           const char *id) {
  return agentws__strmap_get(&r->users, id);
}

agentws__user *agentws__registry_user(agentws__registry *r, const char *id) {
  agentws__user *u = agentws__strmap_get(&r->users, id);
  if (u != NULL)
    return u;
  u = agentws__mem_calloc(r->mem, 1, sizeof(*u));
  if (u == NULL)
    return NULL;
  u->id = agentws__mem_strndup(r->mem, id, strlen(id));
  agentws__list_init(&u->sessions);
  if (u->id == NULL || agentws__strmap_put(&r->users, r->mem, u->id, u)) {
    agentws__mem_free(r->mem, u->id);
    agentws__mem_free(r->mem, u);
    return NULL;
  }
  return u;
}

agentws__room *agentws__registry_find_room(agentws__registry *r,
                                           const char *id) {
  return agentws__strmap_get(&r->rooms, id);
}

agentws__room *agentws__registry_room(agentws__registry *r, const char *id) {
  agentws__room *rm = agentws__strmap_get(&r->rooms, id);
  size_t n;
  if (rm != NULL)
    return rm;
  rm = agentws__mem_calloc(r->mem, 1, sizeof(*rm));
  if (rm == NULL)
    return NULL;
  n = strlen(id);
  rm->id = agentws__mem_strndup(r->mem, id, n);
  rm->stream_name = agentws__mem_malloc(r->mem, n + 6);
  agentws__list_init(&rm->members);
  if (rm->id == NULL || rm->stream_name == NULL ||
      agentws__strmap_put(&r->rooms, r->mem, rm->id, rm)) {
    agentws__mem_free(r->mem, rm->stream_name);
    agentws__mem_free(r->mem, rm->id);
    agentws__mem_free(r->mem, rm);
    return NULL;
  }
  snprintf(rm->stream_name, n + 6, "room:%s", id);
  return rm;
}

void agentws__registry_user_gc(agentws__registry *r, agentws__user *u) {
  if (u->nsessions > 0 || u->stream != NULL)
    return;
  agentws__strmap_del(&r->users, u->id);
  agentws__mem_free(r->mem, u->id);
  agentws__mem_free(r->mem, u);
}

void agentws__registry_room_gc(agentws__registry *r, agentws__room *rm) {
  if (rm->nmembers > 0 || rm->stream != NULL)
    return;
  agentws__strmap_del(&r->rooms, rm->id);
  agentws__mem_free(r->mem, rm->stream_name);
  agentws__mem_free(r->mem, rm->id);
  agentws__mem_free(r->mem, rm);
}
