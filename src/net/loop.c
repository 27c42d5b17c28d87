#include "net/loop.h"

#include "common/clock.h"
#include "common/logging.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Deep enough that a burst of pipelined requests on many connections never starves for SQEs. */
#define SQ_ENTRIES_DEFAULT 1024
/* The CQ is larger than the SQ so that messages from other loops (MSG_RING) rarely overflow it. */
#define CQ_ENTRIES_FACTOR 8

/* Tag bit on user_data of the sender's own CQE for a MSG_RING: the op belongs to the receiver
 * once delivered, so the sender may only look at it when delivery failed. */
#define POST_TAG 1ull

struct sl_loop {
	struct io_uring ring;
	unsigned id;
	atomic_bool stop;
	sl_loop_tick_fn tick;
	void *tick_ctx;
	int tick_interval_ms;
	int64_t wake_by_ms; /* 0: none (sl_loop_wake_by) */
	unsigned inflight;
	void *userdata;
	/* Posts to ourselves and posts that failed with -EOVERFLOW wait here for the next tick. */
	struct sl_op **deferred;
	size_t deferred_len, deferred_cap;
	/* Messages from threads that have no ring (handler threads, once per batch): a lock-free
	 * stack (posters push with a CAS, the loop takes it all with one exchange) and an eventfd
	 * to wake us. No lock, because firehose threads run at a lowered CPU priority: one
	 * preempted while holding a lock the loop needs would stall the loop, and the produce path
	 * with it, until it got the CPU back. Taking the whole list at once rules out ABA. */
	_Atomic(struct sl_op *) ext_head;
	int ext_fd;
	uint64_t ext_counter;
	struct sl_op ext_op;
	bool ext_armed;
};

static void arm_external(struct sl_loop *loop);

static void external_ready(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	loop->ext_armed = false;
	struct sl_op *stack = atomic_exchange_explicit(&loop->ext_head, NULL, memory_order_acquire);
	struct sl_op *fifo = NULL;
	while (stack) { /* newest first: reverse, so ops complete in the order they were posted */
		struct sl_op *next = stack->ext_next;
		stack->ext_next = fifo;
		fifo = stack;
		stack = next;
	}
	while (fifo) {
		struct sl_op *next = fifo->ext_next; /* complete() may free the op */
		fifo->post_target = NULL;
		fifo->ext_next = NULL;
		fifo->complete(loop, fifo, 0, 0);
		fifo = next;
	}
	arm_external(loop);
}

static void arm_external(struct sl_loop *loop)
{
	if (loop->ext_armed || loop->ext_fd < 0)
		return;
	struct io_uring_sqe *sqe = sl_loop_sqe(loop, &loop->ext_op);
	io_uring_prep_read(sqe, loop->ext_fd, &loop->ext_counter, sizeof(loop->ext_counter), 0);
	loop->ext_armed = true;
}

void sl_loop_post_external(struct sl_loop *to, struct sl_op *op)
{
	struct sl_op *head = atomic_load_explicit(&to->ext_head, memory_order_relaxed);
	do
		op->ext_next = head;
	while (!atomic_compare_exchange_weak_explicit(&to->ext_head, &head, op,
						      memory_order_release, memory_order_relaxed));
	uint64_t one = 1;
	if (write(to->ext_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		SL_ERROR("cannot wake loop %u: %s", to->id, strerror(errno));
}

int sl_loop_create(const struct sl_loop_config *cfg, struct sl_loop **ret)
{
	struct sl_loop *loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	unsigned entries = cfg->sq_entries ? cfg->sq_entries : SQ_ENTRIES_DEFAULT;
	struct io_uring_params p = {0};
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = entries * CQ_ENTRIES_FACTOR;
	int r = io_uring_queue_init_params(entries, &loop->ring, &p);
	if (r < 0) {
		free(loop);
		return r;
	}
	if (!(p.features & IORING_FEAT_NODROP))
		SL_WARN(
		    "io_uring lacks IORING_FEAT_NODROP: completions may be lost under overload");
	loop->id = cfg->id;
	loop->tick = cfg->tick;
	loop->tick_ctx = cfg->tick_ctx;
	loop->tick_interval_ms = cfg->tick_interval_ms > 0 ? cfg->tick_interval_ms : 100;
	atomic_init(&loop->stop, false);
	atomic_init(&loop->ext_head, NULL);
	loop->ext_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->ext_fd < 0) {
		r = -errno;
		io_uring_queue_exit(&loop->ring);
		free(loop);
		return r;
	}
	loop->ext_op.complete = external_ready;
	arm_external(loop);
	*ret = loop;
	return 0;
}

void sl_loop_destroy(struct sl_loop *loop)
{
	if (!loop)
		return;
	io_uring_queue_exit(&loop->ring);
	if (loop->ext_fd >= 0)
		close(loop->ext_fd);
	free(loop->deferred);
	free(loop);
}

unsigned sl_loop_id(const struct sl_loop *loop)
{
	return loop->id;
}

void *sl_loop_userdata(const struct sl_loop *loop)
{
	return loop->userdata;
}

void sl_loop_set_userdata(struct sl_loop *loop, void *p)
{
	loop->userdata = p;
}

unsigned sl_loop_inflight(const struct sl_loop *loop)
{
	return loop->inflight - (loop->ext_armed ? 1 : 0) + (unsigned)loop->deferred_len;
}

void sl_loop_stop(struct sl_loop *loop)
{
	atomic_store(&loop->stop, true);
}

static struct io_uring_sqe *get_sqe(struct sl_loop *loop)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
	while (!sqe) {
		io_uring_submit(&loop->ring);
		sqe = io_uring_get_sqe(&loop->ring);
	}
	return sqe;
}

struct io_uring_sqe *sl_loop_sqe(struct sl_loop *loop, struct sl_op *op)
{
	struct io_uring_sqe *sqe = get_sqe(loop);
	op->post_target = NULL;
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op);
	loop->inflight++;
	return sqe;
}

static void defer(struct sl_loop *loop, struct sl_op *op)
{
	if (loop->deferred_len == loop->deferred_cap) {
		size_t cap = loop->deferred_cap ? loop->deferred_cap * 2 : 64;
		struct sl_op **d = realloc(loop->deferred, cap * sizeof(*d));
		if (!d) {
			/* Nothing sensible remains: a lost message would lose an acknowledgement.
			 */
			SL_ERROR("out of memory queueing a loop message");
			abort();
		}
		loop->deferred = d;
		loop->deferred_cap = cap;
	}
	loop->deferred[loop->deferred_len++] = op;
}

void sl_loop_post(struct sl_loop *from, struct sl_loop *to, struct sl_op *op)
{
	op->post_target = to;
	if (from == to) {
		defer(from, op);
		return;
	}
	struct io_uring_sqe *sqe = get_sqe(from);
	io_uring_prep_msg_ring(sqe, to->ring.ring_fd, 0, (uint64_t)(uintptr_t)op, 0);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | POST_TAG);
	from->inflight++;
}

static void run_deferred(struct sl_loop *loop)
{
	if (!loop->deferred_len)
		return;
	/* Swap out the list: completions may defer more. */
	struct sl_op **list = loop->deferred;
	size_t n = loop->deferred_len;
	loop->deferred = NULL;
	loop->deferred_len = 0;
	loop->deferred_cap = 0;
	for (size_t i = 0; i < n; i++) {
		struct sl_op *op = list[i];
		if (op->post_target == loop) {
			op->post_target = NULL;
			op->complete(loop, op, 0, 0);
		} else
			sl_loop_post(loop, op->post_target, op);
	}
	free(list);
}

static void handle_cqe(struct sl_loop *loop, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	if (ud == 0)
		return; /* an op nobody waits for */
	if (ud & POST_TAG) {
		loop->inflight--;
		if (cqe->res < 0) {
			/* Not delivered (the target's CQ was full): retry on the next tick. */
			struct sl_op *op = (struct sl_op *)(uintptr_t)(ud & ~POST_TAG);
			defer(loop, op);
		}
		return;
	}
	struct sl_op *op = (struct sl_op *)(uintptr_t)ud;
	/* A MSG_RING arrival is not one of our inflight ops; everything else is, except the
	 * non-final CQEs of multishot ops. */
	bool more = cqe->flags & IORING_CQE_F_MORE;
	if (!more && op->post_target != loop)
		loop->inflight--;
	if (op->post_target == loop)
		op->post_target = NULL; /* delivered: the op may be reused for another post */
	op->complete(loop, op, cqe->res, cqe->flags);
}

void sl_loop_wake_by(struct sl_loop *loop, int64_t mono_ms)
{
	if (!loop->wake_by_ms || mono_ms < loop->wake_by_ms)
		loop->wake_by_ms = mono_ms;
}

int sl_loop_run(struct sl_loop *loop)
{
	while (!atomic_load_explicit(&loop->stop, memory_order_relaxed)) {
		int64_t wait_ms = loop->tick_interval_ms;
		if (loop->wake_by_ms) {
			int64_t left = loop->wake_by_ms - sl_mono_ms();
			wait_ms = left < 0 ? 0 : left < wait_ms ? left : wait_ms;
			loop->wake_by_ms = 0;
		}
		struct __kernel_timespec ts = {
		    .tv_sec = wait_ms / 1000,
		    .tv_nsec = (long long)(wait_ms % 1000) * 1000000,
		};
		struct io_uring_cqe *cqe;
		int r = io_uring_submit_and_wait_timeout(&loop->ring, &cqe,
							 loop->deferred_len ? 0 : 1, &ts, NULL);
		if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			SL_ERROR("loop %u: io_uring wait failed: %s", loop->id, strerror(-r));
			return r;
		}
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&loop->ring, head, cqe)
		{
			/* Copy before advancing: a handler may submit and reuse the slot. */
			struct io_uring_cqe copy = *cqe;
			io_uring_cq_advance(&loop->ring, 1);
			handle_cqe(loop, &copy);
			if (++seen == 4096)
				break; /* let the tick run (group commit) under a flood */
		}
		run_deferred(loop);
		if (loop->tick)
			loop->tick(loop, loop->tick_ctx);
	}
	return 0;
}
