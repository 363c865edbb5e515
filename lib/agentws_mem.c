#include "agentws_mem.h"

#include <stdlib.h>
#include <string.h>

static void *def_malloc(size_t size, void *ud) {
  (void)ud;
  return malloc(size);
}

static void def_free(void *ptr, void *ud) {
  (void)ud;
  free(ptr);
}

static void *def_calloc(size_t nmemb, size_t size, void *ud) {
  (void)ud;
  return calloc(nmemb, size);
}

static void *def_realloc(void *ptr, size_t size, void *ud) {
  (void)ud;
  return realloc(ptr, size);
}

static const agentws__mem default_mem = {def_malloc, def_free, def_calloc,
                                         def_realloc, NULL};

const agentws__mem *agentws__mem_default(void) { return &default_mem; }

void *agentws__mem_malloc(const agentws__mem *mem, size_t size) {
  return mem->malloc(size, mem->mem_user_data);
}

void *agentws__mem_calloc(const agentws__mem *mem, size_t nmemb,
                          size_t size) {
  return mem->calloc(nmemb, size, mem->mem_user_data);
}

void *agentws__mem_realloc(const agentws__mem *mem, void *ptr, size_t size) {
  return mem->realloc(ptr, size, mem->mem_user_data);
}

void agentws__mem_free(const agentws__mem *mem, void *ptr) {
  mem->free(ptr, mem->mem_user_data);
}

char *agentws__mem_strndup(const agentws__mem *mem, const char *s,
                           size_t len) {
  char *p = agentws__mem_malloc(mem, len + 1);
  if (p == NULL)
    return NULL;
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}
