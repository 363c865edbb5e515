#include "agentws_evpool.h"

#include <string.h>

static size_t cls_of(size_t size) { return (size - 1) / AGENTWS__EVPOOL_STEP; }

static size_t cls_bytes(size_t cls) {
  return (cls + 1) * AGENTWS__EVPOOL_STEP;
}

static int pooled(size_t size) {
  return size > 0 && size <= AGENTWS__EVPOOL_MAX;
}

int agentws__evpool_init(agentws__evpool *p, const agentws__mem *mem,
                         size_t max_bytes) {
  memset(p, 0, sizeof(*p));
  p->mem = mem;
  p->max_bytes = max_bytes;
  return uv_mutex_init(&p->lock);
}

static void free_list(const agentws__mem *mem, agentws__evblock *b) {
  while (b != NULL) {
    agentws__evblock *next = b->next;
    agentws__mem_free(mem, b);
    b = next;
  }
}

void agentws__evpool_free(agentws__evpool *p) {
  size_t i;
  for (i = 0; i < AGENTWS__EVPOOL_CLASSES; i++) {
    free_list(p->mem, p->shared[i]);
    free_list(p->mem, p->local[i]);
    p->shared[i] = p->local[i] = NULL;
  }
  p->shared_bytes = 0;
  p->nlocal = 0;
  uv_mutex_destroy(&p->lock);
}

size_t agentws__evpool_block_size(size_t size) {
  return pooled(size) ? cls_bytes(cls_of(size)) : size;
}

void *agentws__evpool_get(agentws__evpool *p, size_t size) {
  agentws__evblock *b = NULL;
  size_t cls;
  if (!pooled(size))
    return agentws__mem_malloc(p->mem, size);
  cls = cls_of(size);
  uv_mutex_lock(&p->lock);
  if (p->shared[cls] != NULL) {
    b = p->shared[cls];
    p->shared[cls] = b->next;
    p->shared_bytes -= cls_bytes(cls);
    p->reused++;
  }
  uv_mutex_unlock(&p->lock);
  return b != NULL ? (void *)b : agentws__mem_malloc(p->mem, cls_bytes(cls));
}

/* With the lock held: keeps |b| if the bound allows; else links it to
 * |*spill| for the caller to free once the lock is released. */
static void keep(agentws__evpool *p, agentws__evblock *b, size_t cls,
                 agentws__evblock **spill) {
  if (p->shared_bytes + cls_bytes(cls) <= p->max_bytes) {
    b->next = p->shared[cls];
    p->shared[cls] = b;
    p->shared_bytes += cls_bytes(cls);
  } else {
    b->next = *spill;
    *spill = b;
  }
}

void agentws__evpool_flush(agentws__evpool *p) {
  agentws__evblock *spill = NULL;
  size_t i;
  if (p->nlocal == 0)
    return;
  uv_mutex_lock(&p->lock);
  for (i = 0; i < AGENTWS__EVPOOL_CLASSES; i++) {
    agentws__evblock *b = p->local[i];
    while (b != NULL) {
      agentws__evblock *next = b->next;
      keep(p, b, i, &spill);
      b = next;
    }
    p->local[i] = NULL;
  }
  uv_mutex_unlock(&p->lock);
  p->nlocal = 0;
  free_list(p->mem, spill);
}

void agentws__evpool_put(agentws__evpool *p, void *block, size_t size) {
  agentws__evblock *b = block;
  size_t cls;
  if (!pooled(size)) {
    agentws__mem_free(p->mem, block);
    return;
  }
  cls = cls_of(size);
  b->next = p->local[cls];
  p->local[cls] = b;
  if (++p->nlocal >= AGENTWS__EVPOOL_BATCH)
    agentws__evpool_flush(p);
}

void agentws__evpool_put_mt(agentws__evpool *p, void *block, size_t size) {
  agentws__evblock *spill = NULL;
  if (!pooled(size)) {
    agentws__mem_free(p->mem, block);
    return;
  }
  uv_mutex_lock(&p->lock);
  keep(p, block, cls_of(size), &spill);
  uv_mutex_unlock(&p->lock);
  free_list(p->mem, spill);
}
