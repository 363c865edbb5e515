/* Intrusive circular doubly-linked list: O(1) unlink, no allocation. */
#ifndef AGENTWS_LIST_H
#define AGENTWS_LIST_H

#include <stddef.h>

typedef struct agentws__list {
  struct agentws__list *prev; /* previous node, or the head itself */
  struct agentws__list *next; /* next node, or the head itself */
} agentws__list;

#define AGENTWS__CONTAINER_OF(ptr, type, field)                             \
  ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

static inline void agentws__list_init(agentws__list *l) {
  l->prev = l->next = l;
}

static inline int agentws__list_empty(const agentws__list *l) {
  return l->next == l;
}

/* A node is linked iff it is not self-referencing (after init/remove). */
static inline int agentws__list_linked(const agentws__list *n) {
  return n->next != n;
}

static inline void agentws__list_remove(agentws__list *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = n;
}

static inline void agentws__list_push_back(agentws__list *head,
                                           agentws__list *n) {
  n->prev = head->prev;
  n->next = head;
  head->prev->next = n;
  head->prev = n;
}

#endif /* AGENTWS_LIST_H */
