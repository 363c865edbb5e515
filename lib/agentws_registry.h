/*
 * Registry: who is connected. Users -> their sessions (tabs, devices),
 * rooms -> member sessions, per-user limits. Each user and room also
 * carries the emitter's stream. Formats nothing, sends nothing.
 * Loop thread only.
 */
#ifndef AGENTWS_REGISTRY_H
#define AGENTWS_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "agentws_list.h"
#include "agentws_mem.h"
#include "agentws_strmap.h"

struct agentws__stream;
struct agentws__session;

typedef struct agentws__user {
  char *id;                       /* owned, NUL-terminated; the map key */
  agentws__list sessions;         /* agentws__session.unode */
  size_t nsessions;               /* open or being opened */
  struct agentws__stream *stream; /* the user's stream, or NULL */
} agentws__user;

typedef struct agentws__room {
  char *id;                       /* owned; the map key */
  char *stream_name;              /* "room:<id>", for envelopes */
  agentws__list members;          /* agentws__member.rnode */
  size_t nmembers;
  struct agentws__stream *stream; /* or NULL */
} agentws__room;

/* One session's membership of one room, with its delivery position. */
typedef struct agentws__member {
  agentws__room *room;
  struct agentws__session *s;
  agentws__list rnode;  /* in room->members */
  agentws__list snode;  /* in session->rooms */
  uint64_t pos;         /* last room seq sent on this connection */
  uint64_t written;     /* last room seq the kernel took */
  uint64_t live_from;   /* first seq that was live (not a replay) */
  int behind;           /* reading from the backlog, not live */
  struct agentws__evq *ovf; /* evicted events it still needs, or NULL */
} agentws__member;

typedef struct agentws__registry {
  const agentws__mem *mem;
  agentws__strmap users; /* id -> agentws__user */
  agentws__strmap rooms; /* id -> agentws__room */
} agentws__registry;

void agentws__registry_init(agentws__registry *r, const agentws__mem *mem);
/* Frees every user and room; their streams through |free_stream|. */
void agentws__registry_free(agentws__registry *r,
                            void (*free_stream)(struct agentws__stream *,
                                                void *),
                            void *ud);
/* Finds or creates. NULL when out of memory. */
agentws__user *agentws__registry_user(agentws__registry *r, const char *id);
agentws__user *agentws__registry_find_user(agentws__registry *r,
                                           const char *id);
agentws__room *agentws__registry_room(agentws__registry *r, const char *id);
agentws__room *agentws__registry_find_room(agentws__registry *r,
                                           const char *id);
/* Removes (and frees) a user or room that has no sessions and no stream. */
void agentws__registry_user_gc(agentws__registry *r, agentws__user *u);
void agentws__registry_room_gc(agentws__registry *r, agentws__room *rm);

#endif /* AGENTWS_REGISTRY_H */
