/*
 * struct sl_shard_log: append, group commit, segment roll, retention, stats, close.
 * Open/recovery live in log_open.c, read/seek in log_read.c. Contract: shard_log.h.
 *
 * Append path: one pass validates and sizes the batch (nothing is touched if any record is bad),
 * a second encodes frames into one reused staging buffer (small records whole, large records as
 * prefix + iovec of the caller's data + trailer) and the batch goes out with one pwritev at the
 * segment's end (more only past IOV_MAX). pwritev at an explicit offset, not write(), so that
 * undoing a failed batch is just ftruncate back to the old size.
 */
#include "log/log_internal.h"

#include "common/logging.h"
#include "log/io.h"
#include "log/record_format.h"

#include <sluice/errors.h>

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sl_log_fail(struct sl_shard_log *log, int err)
{
	assert(err < 0);
	if (log->failed)
		return;
	log->failed = err;
	SL_ERROR("shard log %s: failed (%s); refusing appends", log->dir, sluice_strerror(err));
}

int sl_log_segment_fd(struct sl_shard_log *log, struct sl_segment *seg)
{
	return sl_segment_open(seg, log->dir, false);
}

int sl_log_segment_index(struct sl_shard_log *log, struct sl_segment *seg)
{
	return sl_segment_index_load(seg, log->dir, log->cfg.index_interval_bytes, &log->scratch);
}

/* ---- pending batches ---- */

static int pending_reserve(struct sl_shard_log *log)
{
	if (log->pend_len < log->pend_cap)
		return 0;
	size_t cap = log->pend_cap ? log->pend_cap * 2 : 64;
	struct sl_pending *p = malloc(cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < log->pend_len; i++)
		p[i] = log->pend[(log->pend_head + i) & (log->pend_cap - 1)];
	free(log->pend);
	log->pend = p;
	log->pend_cap = cap;
	log->pend_head = 0;
	return 0;
}

static void pending_push(struct sl_shard_log *log, const struct sl_pending *b)
{
	assert(log->pend_len < log->pend_cap);
	log->pend[(log->pend_head + log->pend_len) & (log->pend_cap - 1)] = *b;
	log->pend_len++;
}

/*
 * Complete the batches whose policy is met, oldest first. A done() may call back into the log
 * (append, read): the batch is popped before its callback runs.
 */
static void complete_pending(struct sl_shard_log *log, int fail_all)
{
	while (log->pend_len) {
		struct sl_pending b = log->pend[log->pend_head];
		int status = 0;
		if (fail_all)
			status = fail_all;
		else if (log->failed)
			status = log->failed;
		else if (log->cfg.fsync_mode == SL_FSYNC_GROUP && b.end_seq > log->synced_seq)
			break; /* the ack is a durability promise: wait for the covering sync */
		log->pend_head = (log->pend_head + 1) & (log->pend_cap - 1);
		log->pend_len--;
		if (status == 0)
			log->durable_seq = b.end_seq;
		if (b.done)
			b.done(b.ctx, status, b.first_seq, b.count);
	}
}

/* ---- segment roll ---- */

/*
 * Seal the active segment and start a new one named next_seq. Under group and interval the old
 * segment and its .idx are made durable first, because open trusts sealed segments without
 * reading them. SL_FSYNC_NEVER promises nothing on power loss, so it does not wait for the disk
 * here (the roll would otherwise stall the appending thread for a whole segment's writeback);
 * a sealed segment damaged by a power loss is still caught by the checksums when read. A failed
 * sync fails the log; any other failure leaves the old segment active and the log usable.
 */
static int roll(struct sl_shard_log *log)
{
	const struct sl_log_io *io = sl_log_io();
	struct sl_segment *old = sl_log_active(log);
	assert(old->has_records);

	if (old->idx_len == 0 || old->idx[old->idx_len - 1].seq != old->last_seq) {
		int r = sl_segment_index_add(old, old->last_seq, old->last_offset, old->last_ts_ms);
		if (r < 0)
			return r;
	}
	int r = sl_segment_index_flush(old);
	if (r < 0)
		return r;
	/* Sealed segments are trusted at their file's size: cut the preallocated tail first. */
	if (old->file_bytes > old->size_bytes) {
		r = io->ftruncate(old->fd, (off_t)old->size_bytes);
		if (r < 0)
			return r;
		old->file_bytes = old->size_bytes;
	}
	bool sync = log->cfg.fsync_mode != SL_FSYNC_NEVER;
	if (sync) {
		r = io->fdatasync(old->fd);
		if (r == 0)
			r = io->fdatasync(old->idx_fd);
		if (r < 0) {
			sl_log_fail(log, r);
			return r;
		}
		log->synced_seq = log->next_seq;
	}

	if (log->nsegs == log->segs_cap) {
		size_t cap = log->segs_cap * 2;
		struct sl_segment *p = realloc(log->segs, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		log->segs = p;
		log->segs_cap = cap;
		old = sl_log_active(log);
	}
	struct sl_segment seg;
	r = sl_segment_create(&seg, log->dir, log->next_seq);
	if (r < 0)
		return r;
	/* The new file's name must survive a crash before any record in it is acknowledged. */
	r = sync ? sl_log_io_fsync_dir(log->dir) : 0;
	if (r < 0) {
		sl_segment_remove(&seg, log->dir);
		sl_log_fail(log, r);
		return r;
	}
	io->close(old->idx_fd); /* sealed: its .idx is complete and never written again */
	old->idx_fd = -1;
	log->segs[log->nsegs++] = seg;
	log->total_bytes += seg.size_bytes;
	log->prealloc_off = false;
	return 0;
}

/* ---- append ---- */

static int reserve_iov(struct sl_shard_log *log, size_t n)
{
	if (n <= log->iov_cap)
		return 0;
	size_t cap = log->iov_cap ? log->iov_cap : 64;
	while (cap < n)
		cap *= 2;
	struct iovec *p = realloc(log->iov, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	log->iov = p;
	log->iov_cap = cap;
	return 0;
}

/* Undo a batch that did not fully reach the file. Failing to undo fails the log. */
static void undo_write(struct sl_shard_log *log, struct sl_segment *seg, size_t idx_len_before)
{
	const struct sl_log_io *io = sl_log_io();
	int r = io->ftruncate(seg->fd, (off_t)seg->size_bytes);
	if (r < 0)
		sl_log_fail(log, r);
	seg->file_bytes = seg->size_bytes;
	seg->idx_len = idx_len_before;
	if (seg->idx_on_disk > idx_len_before) {
		seg->idx_on_disk = idx_len_before;
		r = io->ftruncate(seg->idx_fd, (off_t)(idx_len_before * SL_INDEX_ENTRY_BYTES));
		if (r < 0)
			sl_log_fail(log, r);
	}
}

/*
 * Group commit: keep the active segment's file ahead of `end`, the end of the batch about to be
 * written, in written zeros. An fdatasync after an append that grows the file must commit the
 * new size in the file system's journal (on ext4 a journal write and a second cache flush);
 * after a write over blocks already written and made durable it only writes the data. On this
 * project's VMs that halves the sync (~470 to ~230 us, four files syncing at once).
 *
 * How far ahead: as far as the segment holds already (end), at least SL_PREALLOC_MIN_BYTES and
 * at most SL_PREALLOC_MAX_BYTES, extending when less than a quarter of that is left. The next
 * fdatasync waits for the zeros' writeback (they are dirty pages of the same file), so a new
 * segment (a new stream, a roll) starts with 128 KiB rather than megabytes in front of its
 * first syncs: four new shards once wrote 8 MiB at their first append and their first syncs
 * took 2-5 ms instead of ~0.5. The extensions grow about 1.5x each up to 2 MiB, where each
 * writes 1.5 MiB, one per 1.5 MiB of records.
 *
 * Extending costs one copy of zeros on the appending thread; writeback of them starts at once,
 * and the first sync after it commits the new size. The tail is cut at the roll (sealed
 * segments are trusted at their file's size) and by recovery (a zero frame header is never a
 * record: see zero_tail). Failing to extend (a full disk) is not an error: the records are
 * written as before, and extending resumes at the next segment.
 */
static void preallocate(struct sl_shard_log *log, struct sl_segment *seg, uint64_t end)
{
	static const uint8_t zeros[64u << 10];
	uint64_t ahead = end < SL_PREALLOC_MIN_BYTES   ? SL_PREALLOC_MIN_BYTES
			 : end > SL_PREALLOC_MAX_BYTES ? SL_PREALLOC_MAX_BYTES
						       : end;
	if (log->cfg.fsync_mode != SL_FSYNC_GROUP || log->prealloc_off ||
	    seg->file_bytes >= end + ahead / 4)
		return;
	/* [size_bytes, end) is the batch's: zeros only past it. */
	uint64_t from = seg->file_bytes > end ? seg->file_bytes : end;
	uint64_t to = (end + ahead + sizeof(zeros) - 1) & ~(uint64_t)(sizeof(zeros) - 1);
	uint64_t cap = log->cfg.segment_bytes_max > end ? log->cfg.segment_bytes_max : end;
	if (to > cap)
		to = cap;
	if (to <= from)
		return;
	struct iovec iov[(SL_PREALLOC_MAX_BYTES + sizeof(zeros)) / sizeof(zeros) + 1];
	assert(to - from <= SL_PREALLOC_MAX_BYTES + sizeof(zeros));
	int n = 0;
	for (uint64_t left = to - from; left > 0; n++) {
		size_t len = left < sizeof(zeros) ? (size_t)left : sizeof(zeros);
		iov[n] = (struct iovec){(void *)zeros, len};
		left -= len;
	}
	int r = sl_log_io_pwritev_all(seg->fd, iov, n, from);
	if (r < 0) {
		SL_WARN("shard log %s: cannot preallocate %" PRIu64 " bytes (%s); writing without "
			"until the next segment",
			log->dir, to - from, sluice_strerror(r));
		log->prealloc_off = true;
		/* Part of the zeros may be there: the roll or an undo still cuts them. */
		seg->file_bytes = to;
		return;
	}
	seg->file_bytes = to;
	(void)sync_file_range(seg->fd, (off_t)from, (off_t)(to - from), SYNC_FILE_RANGE_WRITE);
}

int sl_shard_log_append(struct sl_shard_log *log, const struct sl_record_in *recs, size_t n,
			int64_t now_ms, sl_append_done_fn done, void *ctx, uint64_t *ret_first_seq)
{
	if (!log || !recs || n == 0 || n > SL_APPEND_RECORDS_MAX)
		return SLUICE_ERR_INVALID_ARGUMENT;
	if (log->failed)
		return SLUICE_ERR_UNAVAILABLE;

	/* Pass 1: validate everything before touching anything. */
	uint64_t prev = log->next_seq - 1;
	uint64_t first_seq = 0;
	uint64_t batch_bytes = 0;
	size_t staged = 0, copied = 0, n_split = 0;
	for (size_t i = 0; i < n; i++) {
		const struct sl_record_in *in = &recs[i];
		if (!in->key || in->key_len < 1 || in->key_len > SLUICE_KEY_LEN_MAX)
			return SLUICE_ERR_INVALID_KEY;
		if (in->data_len > log->cfg.record_bytes_max)
			return SLUICE_ERR_RECORD_TOO_LARGE;
		if (in->data_len && !in->data)
			return SLUICE_ERR_INVALID_ARGUMENT;
		uint64_t seq = in->seq ? in->seq : prev + 1;
		if (seq <= prev || seq == UINT64_MAX)
			return SLUICE_ERR_INVALID_ARGUMENT; /* restore: must exceed the last seq */
		if (i == 0)
			first_seq = seq;
		prev = seq;
		uint32_t frame = sl_record_frame_bytes(in->key_len, in->has_hash_key, in->data_len);
		batch_bytes += frame;
		if (in->data_len <= SL_APPEND_COPY_DATA_BYTES_MAX &&
		    copied + in->data_len <= SL_APPEND_STAGING_COPY_BYTES_MAX) {
			staged += frame;
			copied += in->data_len;
		} else {
			staged += frame - in->data_len;
			n_split++;
		}
	}
	uint64_t end_seq = prev + 1;

	int r = pending_reserve(log);
	if (r < 0)
		return r;
	struct sl_segment *seg = sl_log_active(log);
	if (seg->has_records && seg->size_bytes + batch_bytes > log->cfg.segment_bytes_max) {
		r = roll(log);
		if (r < 0)
			return r;
		seg = sl_log_active(log);
	}
	sl_buf_reset(&log->staging);
	r = sl_buf_reserve(&log->staging, staged);
	if (r < 0)
		return r;
	r = reserve_iov(log, 2 * n_split + 1);
	if (r < 0)
		return r;

	/* Pass 2: encode. Staging never reallocates below, so iovecs may point into it. */
	uint8_t *st = log->staging.data;
	size_t st_len = 0, run_start = 0;
	int iovcnt = 0;
	uint64_t off = seg->size_bytes;
	size_t idx_len_before = seg->idx_len;
	int64_t last_ts = log->last_ts_ms;
	uint64_t seq = log->next_seq - 1;
	uint64_t last_off = 0;
	int64_t max_ts = seg->has_records ? seg->last_ts_ms : INT64_MIN;
	copied = 0;
	for (size_t i = 0; i < n; i++) {
		const struct sl_record_in *in = &recs[i];
		seq = in->seq ? in->seq : seq + 1;
		int64_t ts;
		if (in->ts_ms) {
			ts = in->ts_ms; /* restore/import: kept as given */
			if (ts > last_ts)
				last_ts = ts;
		} else {
			ts = now_ms > last_ts ? now_ms : last_ts;
			last_ts = ts;
		}
		if (ts > max_ts)
			max_ts = ts;
		struct sluice_record rec = {
		    .seq = seq,
		    .ts_ms = ts,
		    .key = (const char *)in->key,
		    .key_len = in->key_len,
		    .has_hash_key = in->has_hash_key,
		    .hash_key = in->hash_key,
		    .data = in->data,
		    .data_len = in->data_len,
		};
		r = sl_segment_index_note(seg, seq, off, ts, log->cfg.index_interval_bytes);
		if (r < 0) {
			seg->idx_len = idx_len_before;
			return r;
		}
		uint32_t frame = sl_record_frame_bytes(in->key_len, in->has_hash_key, in->data_len);
		if (in->data_len <= SL_APPEND_COPY_DATA_BYTES_MAX &&
		    copied + in->data_len <= SL_APPEND_STAGING_COPY_BYTES_MAX) {
			size_t w = sl_record_encode(st + st_len, &rec);
			assert(w == frame);
			st_len += w;
			copied += in->data_len;
		} else {
			size_t w = sl_record_encode_prefix(st + st_len, &rec);
			uint64_t sum =
			    sl_record_checksum_split(st + st_len, w, in->data, in->data_len);
			st_len += w;
			log->iov[iovcnt++] = (struct iovec){st + run_start, st_len - run_start};
			log->iov[iovcnt++] = (struct iovec){(void *)in->data, in->data_len};
			sl_record_encode_trailer(st + st_len, sum);
			run_start = st_len;
			st_len += SL_RECORD_TRAILER_BYTES;
		}
		last_off = off;
		off += frame;
	}
	if (st_len > run_start)
		log->iov[iovcnt++] = (struct iovec){st + run_start, st_len - run_start};
	assert(st_len == staged && off == seg->size_bytes + batch_bytes);
	assert(seq == end_seq - 1);

	preallocate(log, seg, off);
	r = sl_log_io_pwritev_all(seg->fd, log->iov, iovcnt, seg->size_bytes);
	if (r == 0)
		r = sl_segment_index_flush(seg);
	if (r < 0) {
		undo_write(log, seg, idx_len_before);
		return r;
	}

	seg->size_bytes = off;
	if (seg->file_bytes < off)
		seg->file_bytes = off;
	seg->has_records = true;
	seg->last_seq = seq;
	seg->last_offset = last_off;
	seg->last_ts_ms = max_ts;
	log->total_bytes += batch_bytes;
	log->next_seq = end_seq;
	log->last_ts_ms = last_ts;
	/* Without a callback and a sync to wait for, the batch is acknowledged now. Readers see it
	 * once the batches before it completed (stats: durable_seq is next_seq without any). */
	if (done || log->cfg.fsync_mode == SL_FSYNC_GROUP)
		pending_push(log, &(struct sl_pending){first_seq, end_seq, (uint32_t)n, done, ctx});
	if (ret_first_seq)
		*ret_first_seq = first_seq;
	return 0;
}

/* ---- sync ---- */

void sl_shard_log_service(struct sl_shard_log *log, int64_t now_ms)
{
	if (log)
		complete_pending(log, 0);
}

bool sl_shard_log_sync_wanted(const struct sl_shard_log *log, int64_t now_ms)
{
	if (!log || log->failed || log->sync_in_flight || log->synced_seq >= log->next_seq)
		return false;
	switch (log->cfg.fsync_mode) {
	case SL_FSYNC_GROUP:
		return log->pend_len > 0;
	case SL_FSYNC_INTERVAL:
		return now_ms - log->last_sync_ms >= log->cfg.fsync_interval_ms;
	case SL_FSYNC_NEVER:
		break;
	}
	return false;
}

int sl_shard_log_sync_begin(struct sl_shard_log *log, struct sl_sync_ticket *ret)
{
	if (log->failed)
		return SLUICE_ERR_UNAVAILABLE;
	if (log->sync_in_flight)
		return -EBUSY;
	/*
	 * A dup, so the ticket's fd stays valid whatever happens to the segment before sync_end
	 * (roll, retention). Records before upto_seq in older segments were synced at their roll.
	 */
	int fd = fcntl(sl_log_active(log)->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	log->sync_in_flight = true;
	log->sync_fd = fd;
	log->sync_id++;
	ret->fd = fd;
	ret->upto_seq = log->next_seq;
	ret->id = log->sync_id;
	return 0;
}

void sl_shard_log_sync_end(struct sl_shard_log *log, const struct sl_sync_ticket *t, int res,
			   int64_t now_ms)
{
	if (!log->sync_in_flight || t->id != log->sync_id) {
		assert(!"sync_end without a matching sync_begin");
		return;
	}
	sl_log_io()->close(log->sync_fd);
	log->sync_fd = -1;
	log->sync_in_flight = false;
	log->last_sync_ms = now_ms;
	if (res < 0)
		/* After a failed fsync the page cache may not match the disk: stop writing. */
		sl_log_fail(log, res);
	else if (t->upto_seq > log->synced_seq)
		log->synced_seq = t->upto_seq;
	complete_pending(log, 0);
}

int sl_shard_log_sync(struct sl_shard_log *log, int64_t now_ms)
{
	if (log->synced_seq >= log->next_seq || log->failed) {
		complete_pending(log, 0);
		return log->failed ? SLUICE_ERR_UNAVAILABLE : 0;
	}
	struct sl_sync_ticket t;
	int r = sl_shard_log_sync_begin(log, &t);
	if (r < 0)
		return r;
	r = sl_log_io()->fdatasync(t.fd);
	sl_shard_log_sync_end(log, &t, r, now_ms);
	complete_pending(log, 0);
	return r;
}

/* ---- retention ---- */

static int delete_oldest(struct sl_shard_log *log)
{
	assert(log->nsegs > 1);
	struct sl_segment *seg = &log->segs[0];
	uint64_t bytes = seg->size_bytes;
	int r = sl_segment_remove(seg, log->dir);
	if (r < 0)
		SL_WARN("shard log %s: deleting segment %020" PRIu64 ": %s", log->dir,
			seg->first_seq, sluice_strerror(r));
	log->total_bytes -= bytes;
	memmove(&log->segs[0], &log->segs[1], (log->nsegs - 1) * sizeof(log->segs[0]));
	log->nsegs--;
	return 0;
}

int sl_shard_log_enforce_retention(struct sl_shard_log *log, int64_t now_ms)
{
	int deleted = 0;
	/* Never the active segment: it holds the tip, and next_seq must survive a reopen. */
	while (log->nsegs > 1) {
		struct sl_segment *seg = &log->segs[0];
		bool drop =
		    log->cfg.retention_bytes_max && log->total_bytes > log->cfg.retention_bytes_max;
		if (!drop && log->cfg.retention_ms > 0) {
			int r = sl_log_segment_index(log, seg);
			if (r < 0)
				return deleted ? deleted : r;
			drop =
			    !seg->has_records || seg->last_ts_ms < now_ms - log->cfg.retention_ms;
		}
		if (!drop)
			break;
		delete_oldest(log);
		deleted++;
	}
	return deleted;
}

void sl_shard_log_set_retention(struct sl_shard_log *log, int64_t retention_ms)
{
	log->cfg.retention_ms = retention_ms > 0 ? retention_ms : 0;
}

/* ---- stats, close ---- */

void sl_shard_log_stats(const struct sl_shard_log *log, struct sl_shard_log_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->first_seq = log->segs[0].first_seq;
	if (log->segs[0].idx_loaded && log->segs[0].idx_len)
		ret->first_seq = log->segs[0].idx[0].seq;
	ret->next_seq = log->next_seq;
	ret->durable_seq = log->pend_len || log->failed ? log->durable_seq : log->next_seq;
	ret->last_ts_ms = log->last_ts_ms;
	ret->bytes = log->total_bytes;
	ret->segments = (uint32_t)log->nsegs;
	ret->failed = log->failed != 0;
}

void sl_shard_log_close(struct sl_shard_log *log)
{
	if (!log)
		return;
	if (log->nsegs && !log->failed && !log->sync_in_flight) {
		struct sl_segment *seg = sl_log_active(log);
		/* Best effort: recovery also cuts a preallocated tail. */
		if (seg->file_bytes > seg->size_bytes &&
		    sl_log_io()->ftruncate(seg->fd, (off_t)seg->size_bytes) == 0)
			seg->file_bytes = seg->size_bytes;
		sl_shard_log_sync(log, log->last_sync_ms);
		/* The .idx too, so the next open has little to rescan. Best effort. */
		if (seg->idx_fd >= 0 && sl_segment_index_flush(seg) == 0)
			sl_log_io()->fdatasync(seg->idx_fd);
	}
	/* Whatever is still waiting (failed sync, ticket in flight) is not acknowledged. */
	complete_pending(log, log->failed ? log->failed : SLUICE_ERR_SHUTTING_DOWN);
	if (log->sync_in_flight)
		sl_log_io()->close(log->sync_fd);
	for (size_t i = 0; i < log->nsegs; i++)
		sl_segment_finish(&log->segs[i]);
	free(log->segs);
	free(log->pend);
	free(log->iov);
	sl_buf_finish(&log->staging);
	sl_buf_finish(&log->scratch);
	sl_read_batch_finish(&log->seek_batch);
	free(log->dir);
	free(log);
}

int sl_shard_log_destroy_dir(const char *dir)
{
	const struct sl_log_io *io = sl_log_io();
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	int r = 0;
	struct dirent *de;
	char path[PATH_MAX];
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		int n = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			r = -ENAMETOOLONG;
			continue;
		}
		int u = io->unlink(path);
		if (u < 0 && u != -ENOENT)
			r = u;
	}
	closedir(d);
	int u = io->rmdir(dir);
	if (u < 0 && r == 0)
		r = u;
	return r;
}
