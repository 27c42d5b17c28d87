/*
 * struct sl_shard_log: one shard's durable, checksummed, segmented append-only log.
 *
 * Ownership and threads: a log is owned by one thread (the event loop that owns the shard, or a
 * test/benchmark). No function here is thread-safe: calls must be serialised (sluiced holds the
 * shard's mutex around each).
 *
 * Durability contract. sl_shard_log_append() writes a batch (one writev) and returns; the batch is
 * not acknowledged yet. Its done() callback runs exactly once, later, from inside
 * sl_shard_log_sync_end(), sl_shard_log_sync() or sl_shard_log_service():
 *   - SL_FSYNC_GROUP: only after an fdatasync that started after the batch was written returned 0.
 *     One sync covers every batch written before it began (group commit).
 *   - SL_FSYNC_INTERVAL: as soon as the write returned (survives kill -9, not power loss); a sync
 *     is wanted every interval_ms. Risk: up to interval_ms of acknowledged records on power loss.
 *   - SL_FSYNC_NEVER: as soon as the write returned; syncs only at segment roll and close.
 * Because the only way to learn a batch's fate is done(), a caller cannot acknowledge a record
 * before its policy is met. Under interval and never, a batch appended with done == NULL is
 * acknowledged when the append returns 0 (readers see it once every earlier batch completed):
 * a thread other than the owner can append that way without waiting for the owner (sluiced, see
 * src/server/produce.c).
 *
 * The owner runs syncs how it likes: sl_shard_log_sync() blocks (tests, benchmarks, tools);
 * sluiced instead takes a ticket with sl_shard_log_sync_begin(), runs fdatasync(ticket.fd) on
 * io_uring and reports the result with sl_shard_log_sync_end(). A failed sync fails every waiting
 * batch and puts the log into a failed state: later appends return SLUICE_ERR_UNAVAILABLE, because
 * after a failed fsync the page cache may no longer match the disk.
 */
#ifndef SL_LOG_SHARD_LOG_H
#define SL_LOG_SHARD_LOG_H

#include <sluice/types.h>

#include "common/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_shard_log;

enum sl_fsync_mode {
	SL_FSYNC_GROUP = 0,
	SL_FSYNC_INTERVAL = 1,
	SL_FSYNC_NEVER = 2,
};

#define SL_SEGMENT_BYTES_DEFAULT (128ull << 20)
#define SL_INDEX_INTERVAL_BYTES_DEFAULT (64u << 10)

struct sl_shard_log_config {
	const char *dir;	      /* the shard's folder; created (with parents) if missing */
	uint64_t segment_bytes_max;   /* roll when a segment would pass this; 0 = default */
	int64_t retention_ms;	      /* records older than this expire; 0 = never */
	uint64_t retention_bytes_max; /* delete oldest segments past this total; 0 = no cap */
	enum sl_fsync_mode fsync_mode;
	int64_t fsync_interval_ms; /* for SL_FSYNC_INTERVAL */
	uint32_t
	    index_interval_bytes;  /* one sparse index entry per this many log bytes; 0 = default */
	uint64_t first_seq;	   /* sequence number of the first record of a new log; 0 means 1 */
	uint32_t record_bytes_max; /* largest data accepted; 0 = SLUICE_RECORD_BYTES_LIMIT */
};

/* A record to append. Pointers are only read during the append call. */
struct sl_record_in {
	const uint8_t *key;
	uint16_t key_len; /* 1..SLUICE_KEY_LEN_MAX */
	bool has_hash_key;
	struct sluice_hash_key hash_key;
	const uint8_t *data;
	uint32_t data_len;
	uint64_t seq;  /* 0: assign the next one; else (restore/import) must exceed the last seq */
	int64_t ts_ms; /* 0: the now_ms given to append; else kept as is (restore/import) */
};

/*
 * status: 0 when the batch met its durability policy, else a negative error (the batch may or
 * may not be on disk; it was not acknowledged). first_seq/count identify the batch.
 */
typedef void (*sl_append_done_fn)(void *ctx, int status, uint64_t first_seq, uint32_t count);

/*
 * Open (creating if needed) the log in cfg->dir, recovering it: only the tail of the newest
 * segment is validated (from its last valid sparse-index entry); a torn or corrupt tail is
 * truncated and reported through sl_msg(); everything before it is kept. Returns 0 or -errno /
 * SLUICE_ERR_*; *ret is untouched on failure.
 */
int sl_shard_log_open(const struct sl_shard_log_config *cfg, struct sl_shard_log **ret);

/* Sync (policy permitting), complete every waiting batch, close files and free. Accepts NULL. */
void sl_shard_log_close(struct sl_shard_log *log);

/*
 * Append n records (1..65536) with one writev. Sequence numbers are assigned consecutively
 * (unless given) and returned through *ret_first_seq; timestamps never go backwards within a
 * shard (a record's ts is max(now_ms, previous ts)). On success returns 0 and done() will be
 * called exactly once later (done == NULL: nothing is called; see the durability contract). On
 * failure (invalid record, ENOSPC, EIO, failed log) returns the error, the log is as it was
 * before the call, and done() is never called.
 */
int sl_shard_log_append(struct sl_shard_log *log, const struct sl_record_in *recs, size_t n,
			int64_t now_ms, sl_append_done_fn done, void *ctx, uint64_t *ret_first_seq);

/* Complete the batches whose policy is met without a sync (interval/never modes). */
void sl_shard_log_service(struct sl_shard_log *log, int64_t now_ms);

/* A sync in progress: run fdatasync(fd), then pass the result to sl_shard_log_sync_end(). */
struct sl_sync_ticket {
	int fd;		   /* owned by the log; stays open until sync_end */
	uint64_t upto_seq; /* every record with seq < upto_seq is covered */
	uint64_t id;
};

/* Whether a sync should start now: unsynced data with waiters (group), interval elapsed. */
bool sl_shard_log_sync_wanted(const struct sl_shard_log *log, int64_t now_ms);
/* Start a sync covering everything written so far. -EBUSY if one is already in flight. */
int sl_shard_log_sync_begin(struct sl_shard_log *log, struct sl_sync_ticket *ret);
/* res: 0 or -errno from fdatasync. Completes (or fails) the covered batches. */
void sl_shard_log_sync_end(struct sl_shard_log *log, const struct sl_sync_ticket *t, int res,
			   int64_t now_ms);
/* Blocking: begin + fdatasync + end, then service. Returns the fdatasync result. */
int sl_shard_log_sync(struct sl_shard_log *log, int64_t now_ms);

/* Records read back: records[i] points into bytes. init/finish on caller memory; reusable. */
struct sl_read_batch {
	struct sluice_record *records;
	size_t count;
	size_t cap;
	struct sl_buf bytes;
	uint64_t next_seq; /* read from here (SLUICE_POS_AT_SEQ) to continue */
	size_t data_bytes; /* sum of key + data lengths */
};
void sl_read_batch_init(struct sl_read_batch *b);
void sl_read_batch_finish(struct sl_read_batch *b);

/*
 * Read records with seq >= from_seq that have not expired, in order, until max_records or
 * max_bytes (of key + data) is reached; at least one record is returned when one exists even if
 * it alone passes max_bytes. Reads only what was written (acknowledged or not: callers that must
 * not expose unacknowledged data use sl_shard_log_durable_seq()). Every record's checksum is
 * verified; a mismatch returns SLUICE_ERR_CORRUPT. An empty result sets next_seq to the position
 * to poll from. The batch is reset first.
 */
int sl_shard_log_read(struct sl_shard_log *log, uint64_t from_seq, uint32_t max_records,
		      uint32_t max_bytes, int64_t now_ms, struct sl_read_batch *out);

/*
 * The same read for a caller that passes the frames on as stored (sluiced's READ answer): the
 * frames of the records returned (record_format.h, checksums verified) are appended to `frames`
 * back to back after the bytes it holds already (the caller's answer head), and nothing else is
 * left there. Records stop before the first with seq >= below_seq (not acknowledged yet); then
 * out->next_seq is that record's seq. out->records point into frames->data until frames
 * changes; out->bytes is not used. On error frames is back to its length at entry.
 */
int sl_shard_log_read_frames(struct sl_shard_log *log, uint64_t from_seq, uint64_t below_seq,
			     uint32_t max_records, uint32_t max_bytes, int64_t now_ms,
			     struct sl_buf *frames, struct sl_read_batch *out);

/* Resolve a position to the sequence number to read from (O(log n) via the sparse index). */
int sl_shard_log_seek(struct sl_shard_log *log, const struct sluice_position *pos, int64_t now_ms,
		      uint64_t *ret_seq);

/* Delete segments that are entirely expired or past the size cap; returns how many. */
int sl_shard_log_enforce_retention(struct sl_shard_log *log, int64_t now_ms);

/* Change retention at run time (IncreaseStreamRetentionPeriod). */
void sl_shard_log_set_retention(struct sl_shard_log *log, int64_t retention_ms);

struct sl_shard_log_stats {
	uint64_t first_seq;   /* oldest stored record (may be expired but not yet deleted) */
	uint64_t next_seq;    /* what the next append gets: the tip */
	uint64_t durable_seq; /* every record below this is acknowledged */
	int64_t last_ts_ms;   /* arrival time of the newest record, 0 if none */
	uint64_t bytes;	      /* on disk, all segments */
	uint32_t segments;
	bool failed; /* a sync or write failed: appends are refused */
};
void sl_shard_log_stats(const struct sl_shard_log *log, struct sl_shard_log_stats *ret);

/* Remove a closed log's folder and everything in it. */
int sl_shard_log_destroy_dir(const char *dir);

#endif
