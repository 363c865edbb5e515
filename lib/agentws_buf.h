/* A growable byte buffer; the unit of queued output and partial input. */
#ifndef AGENTWS_BUF_H
#define AGENTWS_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "agentws_mem.h"

typedef struct agentws__buf {
  uint8_t *data; /* heap block of |cap| bytes, NULL when cap == 0 */
  size_t len;    /* bytes in use, from data[0] */
  size_t cap;    /* bytes allocated */
} agentws__buf;

/* Makes room for |extra| more bytes. 0 or AGENTWS_ERR_NOMEM. */
int agentws__buf_reserve(agentws__buf *b, const agentws__mem *mem,
                         size_t extra);
/* Appends |len| bytes. 0 or AGENTWS_ERR_NOMEM (buffer unchanged). */
int agentws__buf_append(agentws__buf *b, const agentws__mem *mem,
                        const void *data, size_t len);
/* Drops the first |n| bytes, keeping the rest. */
void agentws__buf_consume(agentws__buf *b, size_t n);
/* Releases the memory; the buffer is empty afterwards. */
void agentws__buf_free(agentws__buf *b, const agentws__mem *mem);

#endif /* AGENTWS_BUF_H */
