/*
 * The restoring end of `sluice restore` and `sluice import`: collects the records of one shard
 * into batches and stores them with RESTORE_APPEND (original seq and ts).
 *
 * Pipelining: a sender thread stores one batch while the caller decodes the next (double
 * buffering), so decompressing and parsing overlap with the server's append and fsync. At most
 * two batches exist: memory is bounded by 2 x (RW_BATCH_RECORDS records or RW_BATCH_BYTES of
 * key + data), whatever the size of what is restored. Batches are stored strictly in the order
 * they were filled (one in flight), so a shard's seqs reach the server in increasing order.
 *
 * Threads: rw_add/rw_flush/rw_stats from one caller thread; the client is used only by the
 * sender thread between rw_init and rw_finish.
 * Ownership: rw_add copies the record; nothing is borrowed past the call.
 */
#ifndef SL_CLI_RESTORE_WRITER_H
#define SL_CLI_RESTORE_WRITER_H

#include <sluice/client.h>

#include "common/buf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* A batch: at most the protocol's records per request, and few MiB so a request stays cheap. */
#define RW_BATCH_RECORDS 10000u
#define RW_BATCH_BYTES (8u << 20)

struct rw_stats {
	uint64_t appended; /* stored by this run */
	uint64_t existing; /* skipped by the server: the shard had them already */
	uint64_t bytes;	   /* data bytes appended */
	uint64_t batches;
};

struct rw_batch {
	struct sluice_record *recs; /* RW_BATCH_RECORDS; key/data are offsets into bytes */
	size_t n;
	uint32_t shard_id;
	struct sl_buf bytes;
};

struct restore_writer {
	struct sluice_client *client;
	const char *stream;
	struct rw_batch batch[2];
	struct rw_batch *cur; /* being filled by the caller */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	struct rw_batch *pending; /* handed to the sender, not yet stored */
	bool stop;
	int error; /* the first failure; every later call returns it */
	struct rw_stats st;
	char err[512]; /* why, for the caller's message (stable once error is set) */
};

int rw_init(struct restore_writer *w, struct sluice_client *c, const char *stream);
/* Stops the sender (after the batch in flight). Accepts a zeroed writer. */
void rw_finish(struct restore_writer *w);
/* Queue one record; records of another shard start a new batch. 0 or the first error. */
int rw_add(struct restore_writer *w, uint32_t shard_id, uint64_t seq, int64_t ts_ms,
	   const char *key, size_t key_len, const uint8_t *data, size_t data_len);
/* Store everything added so far and wait until it is durable. 0 or the first error. */
int rw_flush(struct restore_writer *w);
/* A consistent copy of the counters. */
void rw_stats(struct restore_writer *w, struct rw_stats *ret);

#endif
