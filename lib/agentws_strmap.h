/* String key -> pointer map (open addressing, keys owned by the values). */
#ifndef AGENTWS_STRMAP_H
#define AGENTWS_STRMAP_H

#include <stddef.h>
#include <stdint.h>

#include "agentws_mem.h"

typedef struct agentws__strmap_slot {
  const char *key; /* NULL: empty; points into the value (not copied) */
  uint64_t hash;   /* hash of key */
  void *value;
} agentws__strmap_slot;

typedef struct agentws__strmap {
  agentws__strmap_slot *slots; /* power-of-two array, NULL when empty */
  size_t cap;                  /* slots */
  size_t count;                /* keys */
} agentws__strmap;

uint64_t agentws__strmap_hash(const char *key);
/* |key| must stay valid while present (it lives in |value|). 0 or NOMEM. */
int agentws__strmap_put(agentws__strmap *m, const agentws__mem *mem,
                        const char *key, void *value);
void *agentws__strmap_get(const agentws__strmap *m, const char *key);
void *agentws__strmap_del(agentws__strmap *m, const char *key);
void agentws__strmap_free(agentws__strmap *m, const agentws__mem *mem);
/* Iteration: for (i = 0; i < m->cap; i++) if (m->slots[i].key) ... */

#endif /* AGENTWS_STRMAP_H */
