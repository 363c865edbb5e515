/*
 * Event pool: recycled blocks for event envelopes. Events are built on the
 * emitting threads and freed on the loop thread when the backlog evicts
 * them; through malloc every such free lands in another thread's arena
 * (its lock taken per event from both sides, its heap trimmed and grown
 * again). Blocks of up to AGENTWS__EVPOOL_MAX bytes come back here in
 * 128-byte size classes instead: the loop thread collects them unlocked
 * and hands them over in batches, an emitting thread takes one under a
 * short lock. At most |max_bytes| are kept; the rest goes back to the
 * allocator.
 */
#ifndef AGENTWS_EVPOOL_H
#define AGENTWS_EVPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agentws_mem.h"

#define AGENTWS__EVPOOL_STEP 128u
#define AGENTWS__EVPOOL_CLASSES 16u /* 128 .. 2048 bytes */
#define AGENTWS__EVPOOL_MAX (AGENTWS__EVPOOL_STEP * AGENTWS__EVPOOL_CLASSES)
#define AGENTWS__EVPOOL_BATCH 64u   /* loop-thread frees per hand-over */

typedef struct agentws__evblock {
  struct agentws__evblock *next;
} agentws__evblock;

typedef struct agentws__evpool {
  const agentws__mem *mem;  /* where blocks come from and go back to */
  uv_mutex_t lock;          /* guards shared, shared_bytes */
  agentws__evblock *shared[AGENTWS__EVPOOL_CLASSES]; /* free, any thread */
  size_t shared_bytes;      /* bytes on the shared lists */
  size_t max_bytes;         /* bound of shared_bytes */
  agentws__evblock *local[AGENTWS__EVPOOL_CLASSES];  /* loop thread only:
                                                        freed, not handed over */
  size_t nlocal;            /* blocks on the local lists */
  uint64_t reused;          /* blocks taken from the pool (under lock) */
} agentws__evpool;

int agentws__evpool_init(agentws__evpool *p, const agentws__mem *mem,
                         size_t max_bytes);
/* Frees every block; nothing may use the pool concurrently. */
void agentws__evpool_free(agentws__evpool *p);

/* The size of the block agentws__evpool_get returns for |size| bytes:
 * rounded up to its class, or |size| itself above AGENTWS__EVPOOL_MAX. */
size_t agentws__evpool_block_size(size_t size);

/* Any thread: a block of agentws__evpool_block_size(size) bytes, or NULL
 * when out of memory. */
void *agentws__evpool_get(agentws__evpool *p, size_t size);

/* Loop thread: gives back a block of |size| bytes (the size asked of
 * agentws__evpool_get). Handed to the shared lists every
 * AGENTWS__EVPOOL_BATCH blocks, or at agentws__evpool_flush. */
void agentws__evpool_put(agentws__evpool *p, void *block, size_t size);
/* Any thread: as agentws__evpool_put, under the lock at once. */
void agentws__evpool_put_mt(agentws__evpool *p, void *block, size_t size);
/* Loop thread: hands the locally collected blocks over. */
void agentws__evpool_flush(agentws__evpool *p);

#endif /* AGENTWS_EVPOOL_H */
