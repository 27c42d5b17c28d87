/*
 * struct sl_loop: one io_uring event loop, run by one thread. Every asynchronous operation is a
 * struct sl_op whose address is the SQE's user_data; its complete() runs on the loop's thread
 * when the CQE arrives.
 *
 * Loops talk to each other only by messages: sl_loop_post() hands a struct sl_op to another
 * loop with IORING_OP_MSG_RING, and the target runs op->complete(target, op, 0, 0) on its own
 * thread. There is no lock between loops: whatever the message points to belongs to the
 * receiver until it posts something back. The kernel's CQ ring orders the sender's writes before
 * the receiver's reads.
 */
#ifndef SL_NET_LOOP_H
#define SL_NET_LOOP_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct sl_loop;
struct sl_op;

typedef void (*sl_op_fn)(struct sl_loop *loop, struct sl_op *op, int res, uint32_t cqe_flags);

struct sl_op {
	sl_op_fn complete;
	struct sl_loop *post_target; /* for sl_loop_post retries */
	struct sl_op *ext_next;	     /* sl_loop_post_external's list */
};

/* Called once per loop iteration after the CQEs were handled (group commit runs here). */
typedef void (*sl_loop_tick_fn)(struct sl_loop *loop, void *ctx);

struct sl_loop_config {
	unsigned id;
	unsigned sq_entries; /* 0 = default */
	sl_loop_tick_fn tick;
	void *tick_ctx;
	int tick_interval_ms; /* the longest the loop sleeps without a CQE */
};

int sl_loop_create(const struct sl_loop_config *cfg, struct sl_loop **ret);
void sl_loop_destroy(struct sl_loop *loop);

/* Run until sl_loop_stop(); returns 0 or a negative errno from io_uring. */
int sl_loop_run(struct sl_loop *loop);
/* Make run() return after the current iteration. Thread-safe. */
void sl_loop_stop(struct sl_loop *loop);

unsigned sl_loop_id(const struct sl_loop *loop);
void *sl_loop_userdata(const struct sl_loop *loop);
void sl_loop_set_userdata(struct sl_loop *loop, void *p);

/* An SQE for op (user_data set). Submits pending SQEs first when the ring is full. Never NULL. */
struct io_uring_sqe *sl_loop_sqe(struct sl_loop *loop, struct sl_op *op);

/* Send op to another loop (or to this one: then it runs on the next iteration). */
void sl_loop_post(struct sl_loop *from, struct sl_loop *to, struct sl_op *op);

/*
 * Send op to a loop from a thread that is not a loop (handler threads, the checkpoint writer).
 * Thread-safe and lock-free (a poster at a lowered CPU priority never holds up the loop); ops
 * from one thread complete in the order they were posted, op->complete(loop, op, 0, 0) on the
 * target's thread soon after.
 */
void sl_loop_post_external(struct sl_loop *to, struct sl_op *op);

/*
 * Make the loop's next wait end by this CLOCK_MONOTONIC time (ms) at the latest, so that the
 * tick runs then (deadlines shorter than tick_interval_ms, e.g. parked reads). Call on the loop's
 * thread; it covers the next wait only, so call it again from the tick while still needed.
 */
void sl_loop_wake_by(struct sl_loop *loop, int64_t mono_ms);

/* Operations in flight on the ring (for draining at shutdown). */
unsigned sl_loop_inflight(const struct sl_loop *loop);

#endif
