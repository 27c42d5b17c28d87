/* Private state of the consumer engine, shared by consumers.c (registry, admin, checkpoints)
 * and consumer_engine.c (the per-shard workers). */
#ifndef SL_SERVER_CONSUMER_INTERNAL_H
#define SL_SERVER_CONSUMER_INTERNAL_H

#include "server/consumer_runner.h"
#include "server/consumers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Consumers one server holds: bounds the registry and the runner threads. */
#define CONSUMERS_MAX 1000
/* Retry backoff: first retry after ~200 ms, doubling, capped at 30 s, with equal jitter. */
#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS 30000
/* Largest batch payload handed to a handler (Lambda's synchronous payload limit). */
#define BATCH_BYTES_MAX (6u << 20)
/* How often the writer thread persists checkpoints that moved. */
#define CHECKPOINT_INTERVAL_MS 100
/* An exec handler enforces its own timeout; past this much more, the engine gives up on it. */
#define EXEC_TIMEOUT_SLACK_MS 5000
/* checkpoint_saved after a reset: the file holds a position the shard left, so the writer must
 * store the new one (it never equals a checkpoint) before the shard can count as finished. */
#define CHECKPOINT_UNSAVED UINT64_MAX

struct sl_consumer;

/* One lane of a shard worker: the records of its keys in the current window, delivered in
 * order, one delivery at a time (--parallelism N gives N lanes). */
struct sl_lane {
	uint32_t off, len;	   /* its records: window->recs[off .. off+len) */
	uint32_t pos;		   /* first record not finished */
	uint32_t cap;		   /* records per delivery (bisecting halves it) */
	struct sl_batch *inflight; /* the delivery out, or NULL */
	uint32_t dispatch_count;
	uint32_t attempt;	    /* failed deliveries of the records at pos */
	int64_t retry_at_ms;	    /* no delivery before this */
	int64_t first_failure_ms;   /* when the records at pos first failed (0: not failing) */
	bool handing_off;	    /* records on their way to the on-failure stream */
	const char *give_up_reason; /* set while records wait to be handed off */
	uint32_t give_up_count;
	bool to_errors; /* firehose without on-failure stream: give-ups go to errors/ objects */
	char give_up_error[256];
	struct sl_runner *runner;
	bool runner_background; /* the runner lowered its CPU priority (firehoses) */
};

struct sl_cshard {
	struct sl_consumer *c;
	struct sl_shard *shard;
	unsigned owner;
	uint32_t index;	    /* in c->shards (= the shard's position in the stream's view) */
	int32_t parents[2]; /* indexes of the parent and adjacent parent in c->shards, -1: none */
	/* Lineage (like the KCL): a shard delivers only while every parent is finished, i.e.
	 * closed, processed up to its end_seq (or its records expired), that checkpoint saved, and
	 * its own parents finished. Set true by the owner (under the registry mutex, see
	 * check_finished), read by the children's owners; set false by a reset (sl_consumers_reset,
	 * under the same mutex) for the shards it names and all their descendants. */
	atomic_bool finished;
	/* owner loop only */
	bool waiting_parents; /* held back by a parent not finished (WAITING_PARENTS) */
	bool resolved;
	uint64_t next_seq; /* the next record to fetch */
	uint64_t epoch;
	int64_t window_start_ms; /* --batch-window: when records first waited */
	int64_t fetch_retry_at_ms;
	struct sl_window *window; /* records being delivered, or NULL */
	struct sl_window *spare;  /* a finished window nobody else holds, reused by fetch */
	uint32_t nlanes;
	struct sl_lane lanes[SL_CONSUMER_PARALLELISM_MAX];
	/* shared */
	struct sl_cshard_stats st;
	_Atomic uint64_t checkpoint_saved;
	pthread_mutex_t err_mu;
	char last_error[256];
	char last_object_key[768];    /* firehoses; under err_mu */
	_Atomic uint64_t flush_until; /* firehoses: flush everything below this seq (FLUSH) */
	bool pending_checked;	      /* firehoses: the pending range was looked for */
	uint64_t pending_last;	      /* firehoses: rebuild the window up to here (0: none) */
	bool background;	      /* firehoses: deliver on a runner of lowered CPU priority */
	bool catching_up;	      /* firehoses: past the background lag bound, not yet back */
};

struct sl_remote;

struct sl_consumer {
	struct sl_consumer_config cfg;
	/* remote handlers attached (consumer_remote.c) */
	pthread_mutex_t remote_mu;
	struct sl_remote **remotes;
	size_t remote_count;
	struct sl_consumers *owner;
	struct sl_stream *stream;
	/* One per shard of the stream, closed ones included, in the order of the stream's view;
	 * room for SL_STREAM_SHARD_RECORDS_MAX so a reshard appends without moving anything:
	 * nshards is stored (release) after the new entries are complete. */
	struct sl_cshard **shards;
	_Atomic uint32_t nshards;
	atomic_int refs;
	atomic_bool deleted;
	/* Resets asked (sl_consumers_reset, under the registry mutex) whose owner loops have not
	 * applied them yet. While not 0, no shard of the consumer starts a delivery or finishes:
	 * a reset takes effect on every shard it names (abandoning their deliveries still out)
	 * before any of them delivers from the new position. */
	_Atomic uint32_t resets_pending;
};

struct sl_consumers {
	struct sl_server *srv;
	char meta_dir[4200];
	pthread_mutex_t mu;
	struct sl_consumer **list; /* sorted by name */
	size_t count, cap;
	_Atomic uint64_t generation;
	pthread_t writer;
	pthread_mutex_t wmu;
	pthread_cond_t wcv;
	bool writer_stop;
	/* per worker: the consumer shards it owns, rebuilt when the generation moves */
	struct worker_view {
		uint64_t generation;
		struct sl_cshard **cshards;
		size_t count;
		struct sl_consumer **held;
		size_t held_count;
	} * views;
};

struct sl_remote *sl_remote_pick(struct sl_consumer *c, uint32_t shard_index);
void sl_remote_deliver(struct sl_worker *owner, struct sl_remote *r, struct sl_batch *b);
void sl_remote_kick_all(struct sl_consumer *c);

/* Drop the window and every lane's progress (reset, delete). Owner loop only. */
void sl_cshard_clear(struct sl_cshard *cs);

void sl_consumer_ref(struct sl_consumer *c);
void sl_consumer_unref(struct sl_consumer *c);
void sl_cshard_set_error(struct sl_cshard *cs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records per delivery: the batch size; a firehose delivers a whole window as one object. */
static inline uint32_t sl_consumer_delivery_cap(const struct sl_consumer_config *cfg)
{
	return cfg->handler_kind == SL_HANDLER_FIREHOSE ? SL_FIREHOSE_RECORDS_MAX : cfg->batch_size;
}

static inline void sl_cshard_set_state(struct sl_cshard *cs, enum sl_cshard_state s)
{
	atomic_store_explicit(&cs->st.state, (int)s, memory_order_relaxed);
}

static inline void sl_cshard_set_checkpoint(struct sl_cshard *cs, uint64_t last_finished)
{
	if (last_finished > atomic_load_explicit(&cs->st.checkpoint, memory_order_relaxed))
		atomic_store_explicit(&cs->st.checkpoint, last_finished, memory_order_relaxed);
}

#endif
