/*
 * Consumer checkpoints: DATA/checkpoints/CONSUMER/shardId-000000000000, one file per shard
 * holding the last sequence number the consumer finished on that shard (its handler succeeded,
 * or the records were handed to the on-failure stream or expired). 0 means nothing finished.
 *
 * File format (text, so an operator can read and edit it): "<seq>\n" optionally followed by
 * "<xxh3-64 of the first line, 16 hex digits>\n". Written atomically (temp file, fsync, rename,
 * fsync dir); a file that does not parse or whose checksum does not match is reported as
 * SLUICE_ERR_CORRUPT (the consumer then starts from its configured start position and says so).
 */
#ifndef SL_CONSUMER_CHECKPOINT_H
#define SL_CONSUMER_CHECKPOINT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/*
 * 0, SLUICE_ERR_INVALID_NAME, -errno. Creates folders as needed. Saves of one consumer's shard
 * take turns (under sl_checkpoint_lock): two threads may save the same shard (a firehose's sink
 * and the server's checkpoint writer), and each save goes through the same temp file.
 */
int sl_checkpoint_save(const char *data_dir, const char *consumer, uint32_t shard_id, uint64_t seq);
/* sl_checkpoint_save for a caller that holds sl_checkpoint_lock(consumer, shard_id). */
int sl_checkpoint_save_locked(const char *data_dir, const char *consumer, uint32_t shard_id,
			      uint64_t seq);
/*
 * The mutex that orders saves of (consumer, shard_id): one of a fixed, striped table, so two
 * shards may share one (never held while taking another). Lock it around "decide what to save,
 * then save" when the decision must not interleave with another thread's save.
 */
pthread_mutex_t *sl_checkpoint_lock(const char *consumer, uint32_t shard_id);
/* 0 and *ret_seq, -ENOENT when none was saved, SLUICE_ERR_CORRUPT, -errno. */
int sl_checkpoint_load(const char *data_dir, const char *consumer, uint32_t shard_id,
		       uint64_t *ret_seq);
/*
 * Parse a checkpoint file's len bytes (text need not be NUL-terminated; format above and in
 * checkpoint.c). 0 and *ret_seq, or SLUICE_ERR_CORRUPT (*ret_seq untouched). Pure: no I/O.
 */
int sl_checkpoint_parse(const char *text, size_t len, uint64_t *ret_seq);
/* Remove every checkpoint of a consumer (delete). */
int sl_checkpoint_remove_all(const char *data_dir, const char *consumer);

#endif
