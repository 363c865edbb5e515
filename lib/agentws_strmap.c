#include "agentws_strmap.h"

#include <string.h>

#include "agentws.h"

/* FNV-1a, then a mixer: keys are short user and room ids. */
uint64_t agentws__strmap_hash(const char *key) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *key; key++) {
    h ^= (unsigned char)*key;
    h *= 0x100000001b3ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

static int grow(agentws__strmap *m, const agentws__mem *mem) {
  size_t ncap = m->cap ? m->cap * 2 : 16, i;
  agentws__strmap_slot *ns = agentws__mem_calloc(mem, ncap, sizeof(*ns));
  if (ns == NULL)
    return AGENTWS_ERR_NOMEM;
  for (i = 0; i < m->cap; i++) {
    size_t j;
    if (m->slots[i].key == NULL)
      continue;
    j = (size_t)m->slots[i].hash & (ncap - 1);
    while (ns[j].key != NULL)
      j = (j + 1) & (ncap - 1);
    ns[j] = m->slots[i];
  }
  agentws__mem_free(mem, m->slots);
  m->slots = ns;
  m->cap = ncap;
  return 0;
}

int agentws__strmap_put(agentws__strmap *m, const agentws__mem *mem,
                        const char *key, void *value) {
  uint64_t h = agentws__strmap_hash(key);
  size_t j;
  if ((m->count + 1) * 4 > m->cap * 3) {
    int rv = grow(m, mem);
    if (rv != 0)
      return rv;
  }
  j = (size_t)h & (m->cap - 1);
  while (m->slots[j].key != NULL)
    j = (j + 1) & (m->cap - 1);
  m->slots[j].key = key;
  m->slots[j].hash = h;
  m->slots[j].value = value;
  m->count++;
  return 0;
}

static size_t find(const agentws__strmap *m, const char *key) {
  uint64_t h;
  size_t j;
  if (m->cap == 0)
    return SIZE_MAX;
  h = agentws__strmap_hash(key);
  j = (size_t)h & (m->cap - 1);
  while (m->slots[j].key != NULL) {
    if (m->slots[j].hash == h && strcmp(m->slots[j].key, key) == 0)
      return j;
    j = (j + 1) & (m->cap - 1);
  }
  return SIZE_MAX;
}

void *agentws__strmap_get(const agentws__strmap *m, const char *key) {
  size_t j = find(m, key);
  return j == SIZE_MAX ? NULL : m->slots[j].value;
}

void *agentws__strmap_del(agentws__strmap *m, const char *key) {
  size_t j = find(m, key), k;
  void *value;
  if (j == SIZE_MAX)
    return NULL;
  value = m->slots[j].value;
  k = j;
  for (;;) { /* backward-shift deletion: no tombstones */
    size_t home;
    k = (k + 1) & (m->cap - 1);
    if (m->slots[k].key == NULL)
      break;
    home = (size_t)m->slots[k].hash & (m->cap - 1);
    if (((k - home) & (m->cap - 1)) >= ((k - j) & (m->cap - 1))) {
      m->slots[j] = m->slots[k];
      j = k;
    }
  }
  memset(&m->slots[j], 0, sizeof(m->slots[j]));
  m->count--;
  return value;
}

void agentws__strmap_free(agentws__strmap *m, const agentws__mem *mem) {
  agentws__mem_free(mem, m->slots);
  memset(m, 0, sizeof(*m));
}
