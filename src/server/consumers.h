/*
 * Consumers inside sluiced: registrations, their per-shard workers, and the handler runners.
 *
 * A consumer shard worker (struct sl_cshard) lives on the loop that owns its shard, next to the
 * shard's log, so reading the next batch is a plain sl_shard_log_read with no message hop. The
 * handler never runs on a loop: plugin and exec handlers run on a runner thread of their own
 * (one per worker; a hung handler blocks only its shard), remote handlers on the client process
 * attached to the consumer. Results come back to the owner loop as messages.
 *
 * Per shard, one batch is in flight at a time and batches go out in sequence order; a failed
 * batch blocks its shard and is retried with capped exponential backoff (with jitter) until it
 * succeeds, reaches --max-retries or --max-record-age, or its records expire. Records given up on
 * go to the --on-failure stream (durably, before the checkpoint moves past them) or are dropped
 * and counted. The checkpoint only moves past records that finished; a writer thread persists
 * checkpoints in batches so checkpointing never limits throughput.
 */
#ifndef SL_SERVER_CONSUMERS_H
#define SL_SERVER_CONSUMERS_H

#include "consumer/consumer_config.h"
#include "server/server.h"

#include <sluice/handler.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct sl_consumer;
struct sl_cshard;
struct sl_runner;
struct sl_consumers;

enum sl_cshard_state {
	SL_CSHARD_IDLE = 0,
	SL_CSHARD_DELIVERING = 1,
	SL_CSHARD_RETRYING = 2,
	SL_CSHARD_FINISHED = 3,
	SL_CSHARD_WAITING_REMOTE = 4,
	SL_CSHARD_WAITING_PARENTS = 5, /* a child shard: its parents are not finished yet */
};

/* Figures of one consumer shard, published by the owner loop for describe and /metrics. */
struct sl_cshard_stats {
	_Atomic uint64_t checkpoint; /* last finished sequence number, 0 = none */
	_Atomic uint64_t delivered;  /* records whose handler succeeded */
	_Atomic uint64_t batches_failed;
	_Atomic uint64_t retries;
	_Atomic uint64_t sent_to_on_failure;
	_Atomic uint64_t expired; /* dropped unprocessed (expired, or no on-failure stream) */
	_Atomic uint64_t lag_records;
	_Atomic uint64_t iterator_age_ms;
	_Atomic int state;
	/* firehoses */
	_Atomic uint64_t objects_written;
	_Atomic uint64_t bytes_written; /* object bytes (compressed) */
	_Atomic uint64_t records_archived;
	_Atomic int64_t last_flush_ms;
	_Atomic uint64_t buffered_bytes; /* estimate of the bytes waiting */
	_Atomic uint64_t upload_failures;
	_Atomic uint64_t
	    background; /* 1 while its runner yields the CPU (--firehose-cpu-priority) */
};

struct sl_consumers_config {
	const char *data_dir;
};

int sl_consumers_open(struct sl_server *srv, struct sl_consumers **ret);
/* Stop every runner, write the final checkpoints. After the loops stopped. */
void sl_consumers_close(struct sl_consumers *cs);

/*
 * After a reshard of s was published: every consumer of s gets a worker for each new shard. A
 * child starts at its first record once its parents are finished (see consumer_internal.h); its
 * starting checkpoint is saved now, so a restart does not mistake it for a shard that existed
 * when the consumer was created (those start at the consumer's start position).
 */
void sl_consumers_stream_resharded(struct sl_consumers *cs, struct sl_stream *s);

/* Called by each worker's tick: drives the worker's consumer shards. */
void sl_consumers_tick(struct sl_worker *w, int64_t now_ms);
/* Whether any batch is still out with a handler on this worker (for draining). */
bool sl_consumers_busy(struct sl_worker *w);

/* Admin requests (on any loop). err_msg gets a reason on failure. */
int sl_consumers_create(struct sl_consumers *cs, struct sl_worker *w,
			const struct sl_consumer_config *cfg, char *err_msg, size_t err_msg_len);
int sl_consumers_delete(struct sl_consumers *cs, const char *name);
int sl_consumers_reset(struct sl_consumers *cs, struct sl_worker *w, const char *name,
		       int64_t shard_id, const struct sluice_position *to, char *err_msg,
		       size_t err_msg_len);

/* A snapshot for describe: config + per-shard figures. Free with sl_consumer_info_free. */
struct sl_consumer_shard_info {
	uint32_t shard_id;
	uint64_t objects_written, bytes_written, records_archived, buffered_bytes, upload_failures;
	int64_t last_flush_ms;
	char last_object_key[768];
	uint64_t checkpoint, lag_records, lag_ms, delivered, batches_failed, retries,
	    sent_to_on_failure, expired;
	int state;
	char last_error[256];
	bool background; /* firehoses: yielding the CPU */
};
struct sl_consumer_info {
	struct sl_consumer_config cfg;
	uint32_t nshards;
	struct sl_consumer_shard_info *shards;
};
int sl_consumers_describe(struct sl_consumers *cs, const char *name, struct sl_consumer_info **ret);
void sl_consumer_info_free(struct sl_consumer_info *info);
/* How many consumers read stream; their names, comma-separated, go to names. */
int sl_consumers_of_stream(struct sl_consumers *cs, const char *stream, char *names, size_t len);
/* Names, sorted, of the consumers (firehoses false) or the firehoses (true); free with free()
 * on each and on the array. */
int sl_consumers_list(struct sl_consumers *cs, bool firehoses, char ***ret_names,
		      size_t *ret_count);
/* Close every firehose shard's buffer now (FIREHOSE_FLUSH). */
int sl_consumers_flush(struct sl_consumers *cs, const char *name);

/* Prometheus lines for every consumer shard. */
void sl_consumers_render_metrics(struct sl_consumers *cs, struct sl_buf *out);

#endif
