#include "agentws_buf.h"

#include <string.h>

#include "agentws.h"

int agentws__buf_reserve(agentws__buf *b, const agentws__mem *mem,
                         size_t extra) {
  size_t need, cap;
  uint8_t *p;
  if (extra > SIZE_MAX - b->len)
    return AGENTWS_ERR_NOMEM;
  need = b->len + extra;
  if (need <= b->cap)
    return 0;
  cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  p = agentws__mem_realloc(mem, b->data, cap);
  if (p == NULL)
    return AGENTWS_ERR_NOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int agentws__buf_append(agentws__buf *b, const agentws__mem *mem,
                        const void *data, size_t len) {
  int rv;
  if (len == 0)
    return 0;
  rv = agentws__buf_reserve(b, mem, len);
  if (rv != 0)
    return rv;
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

void agentws__buf_consume(agentws__buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void agentws__buf_free(agentws__buf *b, const agentws__mem *mem) {
  agentws__mem_free(mem, b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
