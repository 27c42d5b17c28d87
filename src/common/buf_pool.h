/*
 * struct sl_buf_pool: spare sl_buf capacity kept for reuse, shared by threads.
 *
 * Why: sluiced encodes every READ answer (megabytes) into a buffer of its own, and the buffer
 * comes back free once the answer is on the socket. Allocating and freeing one per request made
 * the allocator hand the pages back to the kernel (madvise) and fault them in again, zeroed, for
 * the next answer: in a profile of a 1 KiB consume that page-fault work was about two thirds of
 * sluiced's CPU. The pool keeps a few warm buffers instead.
 *
 * Bounded: at most bufs_max buffers and bytes_max bytes of capacity are kept; a buffer that would
 * go over either is freed. Buffers are taken and given back on any thread (one mutex: one lock
 * per READ answer is nothing next to the answer's copy).
 */
#ifndef SL_COMMON_BUF_POOL_H
#define SL_COMMON_BUF_POOL_H

#include "common/buf.h"

#include <pthread.h>
#include <stddef.h>

struct sl_buf_pool {
	pthread_mutex_t mu;
	struct sl_buf
	    *spare; /* spare[0..n): empty buffers with capacity; the last is the warmest */
	size_t n;
	size_t bufs_max;
	size_t bytes;	  /* capacity held by spare[0..n) */
	size_t bytes_max; /* capacity held at most */
};

/* 0 or -ENOMEM. bufs_max >= 1. */
int sl_buf_pool_init(struct sl_buf_pool *p, size_t bufs_max, size_t bytes_max);
/* Frees every spare buffer. Accepts a zeroed pool. */
void sl_buf_pool_finish(struct sl_buf_pool *p);
/*
 * Give b a spare buffer when it has no capacity of its own (b must be empty): the most recently
 * returned one, whose pages are still mapped and likely cached. b stays without capacity when the
 * pool is empty (the caller's sl_buf_reserve allocates as usual).
 */
void sl_buf_pool_take(struct sl_buf_pool *p, struct sl_buf *b);
/* Hand b's capacity to the pool, or free it when the pool is full; b is left without any. */
void sl_buf_pool_give(struct sl_buf_pool *p, struct sl_buf *b);

#endif
