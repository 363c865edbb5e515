/*
 * Every allocation of the library goes through an agentws__mem, so a host
 * allocator (and failure injection in tests) sees all of them. libuv and
 * wslay allocate by themselves and are not covered.
 */
#ifndef AGENTWS_MEM_H
#define AGENTWS_MEM_H

#include <stddef.h>

typedef struct agentws__mem {
  void *(*malloc)(size_t size, void *mem_user_data);
  void (*free)(void *ptr, void *mem_user_data);
  void *(*calloc)(size_t nmemb, size_t size, void *mem_user_data);
  void *(*realloc)(void *ptr, size_t size, void *mem_user_data);
  void *mem_user_data; /* passed to every function above */
} agentws__mem;

/* The process allocator (malloc/free); static, never NULL. */
const agentws__mem *agentws__mem_default(void);

void *agentws__mem_malloc(const agentws__mem *mem, size_t size);
void *agentws__mem_calloc(const agentws__mem *mem, size_t nmemb, size_t size);
void *agentws__mem_realloc(const agentws__mem *mem, void *ptr, size_t size);
void agentws__mem_free(const agentws__mem *mem, void *ptr);
/* NUL-terminated copy of |len| bytes of |s|; NULL when out of memory. */
char *agentws__mem_strndup(const agentws__mem *mem, const char *s, size_t len);

#endif /* AGENTWS_MEM_H */
