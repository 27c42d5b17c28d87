/*
 * Private state of struct sl_shard_log, shared by shard_log.c (append, sync, retention),
 * log_open.c (open and recovery) and log_read.c (read and seek).
 *
 * Invariants (single owner thread, see shard_log.h):
 *   - segs[0..nsegs) are ordered by first_seq; segs[nsegs-1] is the active one (the only one
 *     written, the only one with idx_fd open); nsegs >= 1 once open.
 *   - synced_seq <= next_seq: every record with seq < synced_seq was covered by an fdatasync.
 *   - pending batches are in seq order; done() is called for them in that order.
 */
#ifndef SL_LOG_LOG_INTERNAL_H
#define SL_LOG_LOG_INTERNAL_H

#include "log/segment.h"
#include "log/shard_log.h"

#include <sys/uio.h>

/* At most this many records per append: bounds the staging and iovec arrays of one batch. */
#define SL_APPEND_RECORDS_MAX 65536u
/*
 * Records with data up to this size are copied into the staging buffer, so a batch of small
 * records is one contiguous write; larger data goes to the kernel by iovec without a copy.
 * Measured with 1 KiB records: copying and iovecs cost about the same; at 4 KiB+ iovecs win.
 */
#define SL_APPEND_COPY_DATA_BYTES_MAX 2048u
/* Stop copying data into staging past this many bytes per batch (memory bound for huge batches). */
#define SL_APPEND_STAGING_COPY_BYTES_MAX (8u << 20)
/* Read at least this much per pread: amortises the syscall over many small records. */
#define SL_READ_CHUNK_BYTES_MIN (64u << 10)
/* And at most this much ahead of what the request's limits need. */
#define SL_READ_CHUNK_BYTES_MAX (8u << 20)
/* Records one read returns at most, whatever the caller asks (bounds the records array). */
#define SL_READ_RECORDS_MAX 65536u
/* Default sync interval for SL_FSYNC_INTERVAL when the config gives 0. */
#define SL_FSYNC_INTERVAL_MS_DEFAULT 1000
/*
 * Group commit keeps the active segment's file ahead of its records in written zeros, by as
 * much as the segment holds already, from SL_PREALLOC_MIN_BYTES up to SL_PREALLOC_MAX_BYTES,
 * extending when less than a quarter of that is left: see preallocate() in shard_log.c.
 */
#define SL_PREALLOC_MIN_BYTES (128u << 10)
#define SL_PREALLOC_MAX_BYTES (2u << 20)

struct sl_pending {
	uint64_t first_seq;
	uint64_t end_seq; /* last seq + 1 */
	uint32_t count;
	sl_append_done_fn done;
	void *ctx;
};

struct sl_shard_log {
	char *dir;
	struct sl_shard_log_config cfg; /* defaults applied; cfg.dir points at dir */

	struct sl_segment *segs;
	size_t nsegs;
	size_t segs_cap;

	uint64_t next_seq;
	int64_t last_ts_ms;
	uint64_t total_bytes;
	uint64_t synced_seq;
	uint64_t durable_seq;
	int failed; /* 0, or the error that made the log refuse appends */

	/* FIFO ring of batches waiting for done(). */
	struct sl_pending *pend;
	size_t pend_cap; /* a power of two */
	size_t pend_head;
	size_t pend_len;

	bool sync_in_flight;
	uint64_t sync_id;
	int sync_fd; /* dup of the segment fd given in the ticket, closed at sync_end */
	int64_t last_sync_ms;
	bool prealloc_off; /* an extension failed (full disk): none until the next roll */

	/* Reused across appends: no per-batch allocation in the steady state. */
	struct sl_buf staging;
	struct iovec *iov;
	size_t iov_cap;
	struct sl_buf scratch;		 /* recovery and index loads */
	struct sl_read_batch seek_batch; /* seeks read one record through here */
};

static inline struct sl_segment *sl_log_active(struct sl_shard_log *log)
{
	return &log->segs[log->nsegs - 1];
}

/* Make sure a segment's index is in memory (sealed segments load lazily). */
int sl_log_segment_index(struct sl_shard_log *log, struct sl_segment *seg);
/* Make sure a segment's .log is open for reading. */
int sl_log_segment_fd(struct sl_shard_log *log, struct sl_segment *seg);
/* Put the log in failed state (first error wins). */
void sl_log_fail(struct sl_shard_log *log, int err);

#endif
