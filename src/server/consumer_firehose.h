/*
 * The firehose sink: turns one delivery (a window of a shard's records) into one archive object
 * and stores it. Runs on the consumer's runner thread, so a slow or unreachable object store
 * blocks only its shard, and the consumer engine's retries, backoff and checkpoints apply: the
 * checkpoint moves past the records only after the object is stored.
 *
 * Exactly one object per record: the object's key is a function of the shard and its sequence
 * range (PREFIX/YYYY/MM/DD/HH/STREAM-SHARD-FIRST-LAST.EXT), so a retried upload overwrites the
 * same object. Before an upload the range is written to a small "pending" file next to the
 * checkpoints; after a crash between upload and checkpoint, the engine reads that file and
 * rebuilds exactly the same range, so the re-upload lands on the same key instead of creating an
 * overlapping object.
 */
#ifndef SL_SERVER_CONSUMER_FIREHOSE_H
#define SL_SERVER_CONSUMER_FIREHOSE_H

#include "consumer/consumer_config.h"

#include <sluice/handler.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_firehose_sink;

int sl_firehose_sink_create(const struct sl_consumer_config *cfg, uint32_t shard_id,
			    const char *data_dir, struct sl_firehose_sink **ret, char *err_msg,
			    size_t err_msg_len);
void sl_firehose_sink_destroy(struct sl_firehose_sink *s);

/*
 * Archive and store batch. 0 with *res OK, ret_key and *ret_bytes set; or a negative error with
 * *res ERROR and a message (the object store's status and code). to_errors: records given up
 * on (--max-retry-duration, expiry) without an on-failure stream go under errors/ in the same
 * layout, outside the archive that restore reads.
 */
int sl_firehose_sink_deliver(struct sl_firehose_sink *s, const struct sluice_handler_batch *batch,
			     bool to_errors, struct sluice_handler_result *res, char *ret_key,
			     size_t key_len, uint64_t *ret_bytes);

/* The pending range of a shard, if one was recorded: 0, or -ENOENT / another error. */
int sl_firehose_pending_load(const char *data_dir, const char *name, uint32_t shard_id,
			     uint64_t *ret_first, uint64_t *ret_last);

#endif
