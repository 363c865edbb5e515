/* Binary min-heap of intrusive nodes keyed by an int64 (e.g. a deadline):
 * O(log n) insert and removal of any node, O(1) minimum. */
#ifndef AGENTWS_HEAP_H
#define AGENTWS_HEAP_H

#include <stddef.h>
#include <stdint.h>

#include "agentws_mem.h"

#define AGENTWS__HEAP_NONE ((size_t)-1)

typedef struct agentws__heap_node {
  int64_t key;  /* smallest first */
  size_t idx;   /* position, or AGENTWS__HEAP_NONE when not in a heap */
} agentws__heap_node;

typedef struct agentws__heap {
  agentws__heap_node **v;
  size_t n, cap;
} agentws__heap;

static inline void agentws__heap_node_init(agentws__heap_node *x) {
  x->idx = AGENTWS__HEAP_NONE;
}
/* 0 or AGENTWS_ERR_NOMEM; |x| must not be in a heap. */
int agentws__heap_push(agentws__heap *h, const agentws__mem *mem,
                       agentws__heap_node *x);
/* No-op if |x| is not in |h|. */
void agentws__heap_remove(agentws__heap *h, agentws__heap_node *x);
static inline agentws__heap_node *agentws__heap_top(const agentws__heap *h) {
  return h->n > 0 ? h->v[0] : NULL;
}
void agentws__heap_free(agentws__heap *h, const agentws__mem *mem);

#endif /* AGENTWS_HEAP_H */
