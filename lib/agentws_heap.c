#include "agentws_heap.h"

#include "agentws.h"

static void place(agentws__heap *h, size_t i, agentws__heap_node *x) {
  h->v[i] = x;
  x->idx = i;
}

static void sift_up(agentws__heap *h, size_t i) {
  agentws__heap_node *x = h->v[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h->v[p]->key <= x->key)
      break;
    place(h, i, h->v[p]);
    i = p;
  }
  place(h, i, x);
}

static void sift_down(agentws__heap *h, size_t i) {
  agentws__heap_node *x = h->v[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n)
      break;
    if (c + 1 < h->n && h->v[c + 1]->key < h->v[c]->key)
      c++;
    if (x->key <= h->v[c]->key)
      break;
    place(h, i, h->v[c]);
    i = c;
  }
  place(h, i, x);
}

int agentws__heap_push(agentws__heap *h, const agentws__mem *mem,
                       agentws__heap_node *x) {
  if (h->n == h->cap) {
    size_t cap = h->cap != 0 ? 2 * h->cap : 16;
    agentws__heap_node **v =
        agentws__mem_realloc(mem, h->v, cap * sizeof(*v));
    if (v == NULL)
      return AGENTWS_ERR_NOMEM;
    h->v = v;
    h->cap = cap;
  }
  place(h, h->n++, x);
  sift_up(h, x->idx);
  return 0;
}

void agentws__heap_remove(agentws__heap *h, agentws__heap_node *x) {
  size_t i = x->idx;
  agentws__heap_node *last;
  if (i == AGENTWS__HEAP_NONE || i >= h->n || h->v[i] != x)
    return;
  x->idx = AGENTWS__HEAP_NONE;
  last = h->v[--h->n];
  if (last == x)
    return;
  place(h, i, last);
  sift_down(h, i);
  sift_up(h, last->idx);
}

void agentws__heap_free(agentws__heap *h, const agentws__mem *mem) {
  agentws__mem_free(mem, h->v);
  h->v = NULL;
  h->n = h->cap = 0;
}
