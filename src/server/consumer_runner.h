/*
 * struct sl_runner: the thread that runs one consumer shard's plugin or exec handler, so that a
 * slow or hung handler never blocks an event loop, another shard or another consumer.
 *
 * The owner loop hands it one batch at a time (sl_runner_submit); the runner invokes the handler
 * and posts the batch back to the owner loop (sl_loop_post_external), where batch->op.complete
 * runs. If a plugin call outlives its timeout, the loop abandons the runner: the thread keeps the
 * batch (the handler may still be reading it), frees it and itself when the call returns, and
 * the loop starts a fresh runner for the retry.
 */
#ifndef SL_SERVER_CONSUMER_RUNNER_H
#define SL_SERVER_CONSUMER_RUNNER_H

#include "consumer/consumer_config.h"
#include "log/shard_log.h"
#include "net/loop.h"
#include "server/thread_priority.h"

#include <sluice/handler.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * A window: the records one fetch read from a shard, reordered so that each lane's records are
 * contiguous (lane = FNV-1a(partition key) mod parallelism, so one key always maps to one lane).
 * Reference counted: the shard worker holds one reference, every delivery out holds one, so an
 * abandoned delivery (a plugin past its timeout) can keep reading it safely.
 */
struct sl_window {
	atomic_int refs;
	struct sl_read_batch rb;	    /* owns the record bytes */
	struct sluice_handler_record *recs; /* rb.count entries, grouped by lane */
	size_t recs_cap;
	uint32_t lane_off[SL_CONSUMER_PARALLELISM_MAX];
	uint32_t lane_len[SL_CONSUMER_PARALLELISM_MAX];
	uint64_t last_seq; /* the highest sequence number in the window */
};

struct sl_window *sl_window_create(void);
/* Build recs from rb, grouped into nlanes lanes. 0 or -ENOMEM. */
int sl_window_arrange(struct sl_window *win, uint32_t nlanes);
void sl_window_ref(struct sl_window *win);
void sl_window_unref(struct sl_window *win);

/* One delivery of some of a window's records to a handler. */
struct sl_batch {
	struct sl_op op; /* complete() runs on the owner loop with the result */
	void *cshard;	 /* the engine's; opaque here */
	uint32_t lane;
	uint64_t epoch;	       /* the shard's epoch at dispatch: resets discard old results */
	struct sl_window *win; /* a reference */
	struct sluice_handler_batch hb; /* hb.records points into win->recs */
	struct sluice_handler_result result;
	int invoke_status; /* 0, or why no result came (crash, timeout, disconnect) */
	int64_t dispatched_ms;
	uint64_t delivery_id; /* remote handlers */
	/* Called by sl_batch_destroy, on whichever thread frees the batch last: the engine's
	 * reference on its consumer lives exactly as long as the delivery. */
	void (*release)(void *ctx);
	void *release_ctx;
	/* firehose deliveries: the object stored */
	bool to_errors; /* records given up on: stored under errors/ instead */
	char object_key[768];
	uint64_t object_bytes;
};

/* A delivery of win->recs[first .. first+count) (takes a window reference). */
struct sl_batch *sl_batch_create(struct sl_window *win, size_t first, size_t count);
void sl_batch_destroy(struct sl_batch *b);

struct sl_runner;

struct sl_runner_config {
	enum sl_handler_kind kind; /* SL_HANDLER_EXEC, SL_HANDLER_PLUGIN or SL_HANDLER_FIREHOSE */
	const struct sl_consumer_config *consumer_cfg; /* copied (firehose options) */
	const char *data_dir;
	const char *target;
	const char *consumer;
	const char *stream;
	uint32_t shard_id;
	uint32_t timeout_ms;
	struct sl_loop *owner;
	/* The thread lowers its own CPU priority to this when it starts (firehoses in the
	 * background; zero-initialised: normal, as handlers are user work). A runner never goes
	 * back up: the engine replaces it by a fresh one to run at normal priority again. */
	struct sl_cpu_priority priority;
};

int sl_runner_create(const struct sl_runner_config *cfg, struct sl_runner **ret);
/* Hand a batch over; the runner must be idle. */
void sl_runner_submit(struct sl_runner *r, struct sl_batch *b);
/* Give up on the batch in progress (timeout, reset): the thread frees it and itself when the
 * call returns. A batch already handed back stays with the loop (it arrives as a message). */
void sl_runner_abandon(struct sl_runner *r);
/* Wait until every runner thread ended (their handlers closed, exec processes reaped), at most
 * timeout_ms; returns how many are still running (stuck in a handler call). */
int sl_runners_wait(int timeout_ms);
/* Stop and free an idle runner (or abandon a busy one). Accepts NULL. */
void sl_runner_destroy(struct sl_runner *r);

#endif
