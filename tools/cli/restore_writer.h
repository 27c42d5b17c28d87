/*
 * The restoring end of `sluice restore` and `sluice import`: collects the records of one shard
 * into batches and stores them with RESTORE_APPEND (original seq and ts), one batch in flight.
 * Memory is bounded by one batch (RW_BATCH_RECORDS records or RW_BATCH_BYTES of key + data),
 * whatever the size of what is restored.
 *
 * Ownership: rw_add copies the record; nothing is borrowed past the call.
 */
#ifndef SL_CLI_RESTORE_WRITER_H
#define SL_CLI_RESTORE_WRITER_H

#include <sluice/client.h>

#include "common/buf.h"

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

struct restore_writer {
	struct sluice_client *client;
	const char *stream;
	uint32_t shard_id;
	struct sluice_record *recs; /* RW_BATCH_RECORDS; key/data offsets into bytes until flush */
	size_t n;
	struct sl_buf bytes;
	struct rw_stats st;
	char err[512]; /* the last failure, for the caller's message */
};

int rw_init(struct restore_writer *w, struct sluice_client *c, const char *stream);
void rw_finish(struct restore_writer *w);
/* Records of another shard flush the batch first. 0 or a negative error (w->err says why). */
int rw_add(struct restore_writer *w, uint32_t shard_id, uint64_t seq, int64_t ts_ms,
	   const char *key, size_t key_len, const uint8_t *data, size_t data_len);
/* Store what is batched (returns once it is durable). */
int rw_flush(struct restore_writer *w);

#endif
