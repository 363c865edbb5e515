/* Connection id -> pointer, open addressing with backward-shift deletion. */
#ifndef AGENTWS_IDMAP_H
#define AGENTWS_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "agentws_mem.h"

typedef struct agentws__idmap_slot {
  uint64_t key; /* 0 marks an empty slot: ids are never 0 */
  void *value;
} agentws__idmap_slot;

typedef struct agentws__idmap {
  agentws__idmap_slot *slots; /* power-of-two array, NULL when empty */
  size_t cap;                 /* slots allocated */
  size_t count;               /* keys present */
} agentws__idmap;

/* 0 or AGENTWS_ERR_NOMEM; |key| must be nonzero and absent. */
int agentws__idmap_put(agentws__idmap *m, const agentws__mem *mem,
                       uint64_t key, void *value);
void *agentws__idmap_get(const agentws__idmap *m, uint64_t key);
/* Removes |key| if present; returns its value or NULL. */
void *agentws__idmap_del(agentws__idmap *m, uint64_t key);
void agentws__idmap_free(agentws__idmap *m, const agentws__mem *mem);

#endif /* AGENTWS_IDMAP_H */
