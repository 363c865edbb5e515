#include "agentws_idmap.h"

#include "agentws.h"

/* Ids are sequential; a multiplicative hash spreads them over the table. */
static size_t slot_of(uint64_t key, size_t cap) {
  return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static int grow(agentws__idmap *m, const agentws__mem *mem) {
  size_t ncap = m->cap ? m->cap * 2 : 64, i;
  agentws__idmap_slot *ns = agentws__mem_calloc(mem, ncap, sizeof(*ns));
  if (ns == NULL)
    return AGENTWS_ERR_NOMEM;
  for (i = 0; i < m->cap; i++) {
    size_t j;
    if (m->slots[i].key == 0)
      continue;
    j = slot_of(m->slots[i].key, ncap);
    while (ns[j].key != 0)
      j = (j + 1) & (ncap - 1);
    ns[j] = m->slots[i];
  }
  agentws__mem_free(mem, m->slots);
  m->slots = ns;
  m->cap = ncap;
  return 0;
}

int agentws__idmap_put(agentws__idmap *m, const agentws__mem *mem,
                       uint64_t key, void *value) {
  size_t j;
  if ((m->count + 1) * 4 > m->cap * 3) {
    int rv = grow(m, mem);
    if (rv != 0)
      return rv;
  }
  j = slot_of(key, m->cap);
  while (m->slots[j].key != 0)
    j = (j + 1) & (m->cap - 1);
  m->slots[j].key = key;
  m->slots[j].value = value;
  m->count++;
  return 0;
}

static size_t find(const agentws__idmap *m, uint64_t key) {
  size_t j;
  if (m->cap == 0 || key == 0)
    return SIZE_MAX;
  j = slot_of(key, m->cap);
  while (m->slots[j].key != 0) {
    if (m->slots[j].key == key)
      return j;
    j = (j + 1) & (m->cap - 1);
  }
  return SIZE_MAX;
}

void *agentws__idmap_get(const agentws__idmap *m, uint64_t key) {
  size_t j = find(m, key);
  return j == SIZE_MAX ? NULL : m->slots[j].value;
}

void *agentws__idmap_del(agentws__idmap *m, uint64_t key) {
  size_t j = find(m, key), k;
  void *value;
  if (j == SIZE_MAX)
    return NULL;
  value = m->slots[j].value;
  /* Backward-shift: move later probes into the hole so lookups stay valid
   * without tombstones. */
  k = j;
  for (;;) {
    size_t home;
    k = (k + 1) & (m->cap - 1);
    if (m->slots[k].key == 0)
      break;
    home = slot_of(m->slots[k].key, m->cap);
    if (((k - home) & (m->cap - 1)) >= ((k - j) & (m->cap - 1))) {
      m->slots[j] = m->slots[k];
      j = k;
    }
  }
  m->slots[j].key = 0;
  m->slots[j].value = NULL;
  m->count--;
  return value;
}

void agentws__idmap_free(agentws__idmap *m, const agentws__mem *mem) {
  agentws__mem_free(mem, m->slots);
  m->slots = NULL;
  m->cap = m->count = 0;
}
