/*
 * Reading a shard log: locate the start through the sparse indexes (binary search over segments,
 * then over the segment's entries), pread large chunks into the caller's batch buffer and decode
 * frames in place, checksumming every one. Seeks are reads of one record.
 */
#include "log/log_internal.h"

#include "common/logging.h"
#include "log/io.h"
#include "log/record_format.h"

#include <sluice/errors.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void sl_read_batch_init(struct sl_read_batch *b)
{
	memset(b, 0, sizeof(*b));
	sl_buf_init(&b->bytes);
}

void sl_read_batch_finish(struct sl_read_batch *b)
{
	free(b->records);
	sl_buf_finish(&b->bytes);
	sl_read_batch_init(b);
}

/* A place to start scanning: a segment and a frame offset in it. */
struct loc {
	size_t seg;
	uint64_t off;
};

static bool loc_after(const struct loc *a, const struct loc *b)
{
	return a->seg > b->seg || (a->seg == b->seg && a->off > b->off);
}

static int locate_seq(struct sl_shard_log *log, uint64_t seq, struct loc *ret)
{
	size_t lo = 0, hi = log->nsegs; /* the last segment with first_seq <= seq */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (log->segs[mid].first_seq <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t i = lo ? lo - 1 : 0;
	struct sl_segment *seg = &log->segs[i];
	int r = sl_log_segment_index(log, seg);
	if (r < 0)
		return r;
	size_t e = sl_segment_index_find_seq(seg, seq);
	ret->seg = i;
	ret->off = e == SIZE_MAX ? SL_SEGMENT_HEADER_BYTES : seg->idx[e].offset;
	return 0;
}

/* Where the first record with ts >= ts_ms can be (timestamps are non-decreasing per shard). */
static int locate_time(struct sl_shard_log *log, int64_t ts_ms, struct loc *ret)
{
	size_t lo = 0, hi = log->nsegs - 1; /* the first segment whose newest ts >= ts_ms */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct sl_segment *seg = &log->segs[mid];
		int r = sl_log_segment_index(log, seg);
		if (r < 0)
			return r;
		if (!seg->has_records || seg->last_ts_ms < ts_ms)
			lo = mid + 1;
		else
			hi = mid;
	}
	struct sl_segment *seg = &log->segs[lo];
	int r = sl_log_segment_index(log, seg);
	if (r < 0)
		return r;
	ret->seg = lo;
	if (!seg->has_records || seg->last_ts_ms < ts_ms) {
		ret->off = seg->size_bytes; /* nothing that recent yet */
		return 0;
	}
	size_t e = sl_segment_index_find_ts(seg, ts_ms);
	ret->off = e == SIZE_MAX ? SL_SEGMENT_HEADER_BYTES : seg->idx[e].offset;
	return 0;
}

static int reserve_records(struct sl_read_batch *out)
{
	if (out->count < out->cap)
		return 0;
	size_t cap = out->cap ? out->cap * 2 : 64;
	struct sluice_record *p = realloc(out->records, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	out->records = p;
	out->cap = cap;
	return 0;
}

/*
 * What one read_impl call reads and where its frames go. Normal reads (sl_shard_log_read) decode
 * into out->bytes from its start; frame reads (sl_shard_log_read_frames) append the taken frames
 * contiguously after `base` bytes the caller already put into `bytes` (its answer head).
 */
struct read_spec {
	uint64_t from_seq;
	uint64_t below_seq; /* stop before the first record with seq >= this */
	int64_t min_ts;
	uint32_t max_records;
	uint32_t max_bytes;
	struct sl_buf *bytes;
	size_t base;
	bool frames; /* only the taken frames, back to back, may end up after base */
};

/*
 * Frame bytes a read may still need beyond the `buffered` bytes it holds, estimated from the
 * shard's average frame (avg): what its limits still allow (records, or key + data bytes, each
 * frame carrying about avg - header - trailer of those), plus one frame for the record that
 * crosses the byte limit. Bounds every pread, so that a read that stops at max_bytes does not
 * copy megabytes it leaves behind out of the page cache: a firehose window of 8 MiB of records
 * read ~16 MiB before this bound (a full second chunk for its last few hundred frames).
 */
static uint64_t frames_left_bytes(uint64_t avg, uint32_t records_left, uint64_t bytes_left,
				  size_t buffered)
{
	const uint64_t overhead = SL_RECORD_HEADER_BYTES + SL_RECORD_TRAILER_BYTES;
	uint64_t payload = avg > overhead ? avg - overhead : 1;
	uint64_t by_records = (uint64_t)records_left * avg;
	uint64_t by_bytes = (bytes_left / payload + 1) * avg;
	uint64_t need = (by_records < by_bytes ? by_records : by_bytes) + avg;
	return need > buffered ? need - buffered : 0;
}

/*
 * Records with seq >= from_seq and ts >= min_ts, up to the limits. While filling, the records'
 * key/data hold offsets into the byte buffer (which may move as it grows); they become pointers
 * at the end. The buffer keeps [base, keep) = frames up to the last record taken; bytes scanned
 * past and skipped are dropped when the buffer is refilled, or (frame reads, whose frames must be
 * contiguous) moved over when the first record is taken.
 */
static int read_impl(struct sl_shard_log *log, const struct read_spec *q, struct sl_read_batch *out)
{
	uint64_t from_seq = q->from_seq;
	int64_t min_ts = q->min_ts;
	uint32_t max_records = q->max_records, max_bytes = q->max_bytes;
	struct sl_buf *b = q->bytes;
	out->count = 0;
	out->data_bytes = 0;
	b->len = q->base;
	if (max_records > SL_READ_RECORDS_MAX)
		max_records = SL_READ_RECORDS_MAX;
	if (from_seq >= q->below_seq) {
		out->next_seq = from_seq;
		return 0;
	}

	struct loc start, by_time;
	int r = locate_seq(log, from_seq, &start);
	if (r < 0)
		return r;
	if (min_ts != INT64_MIN) {
		r = locate_time(log, min_ts, &by_time);
		if (r < 0)
			return r;
		if (loc_after(&by_time, &start))
			start = by_time;
	}

	/*
	 * First pread: what max_records records of the shard's average frame size take (bounded by
	 * max_bytes), so a read of 256 small records is one syscall of about their size rather than
	 * a fixed large chunk; later preads of the same read double it. A frame read starts small:
	 * the frames between the index entry and from_seq are moved over, so that move stays short.
	 * No pread asks for much more than the limits still need (frames_left_bytes), nor less than
	 * SL_READ_CHUNK_BYTES_MIN.
	 */
	uint64_t span = log->next_seq - log->segs[0].first_seq;
	uint64_t avg = span ? log->total_bytes / span + 1 : SL_RECORD_HEADER_BYTES;
	uint64_t chunk = (uint64_t)max_records * avg + avg;
	uint64_t by_bytes = (uint64_t)max_bytes + (uint64_t)max_records * SL_RECORD_HEADER_BYTES;
	if (chunk > by_bytes)
		chunk = by_bytes;
	if (chunk < SL_READ_CHUNK_BYTES_MIN || q->frames)
		chunk = SL_READ_CHUNK_BYTES_MIN;
	if (chunk > SL_READ_CHUNK_BYTES_MAX)
		chunk = SL_READ_CHUNK_BYTES_MAX;

	size_t keep = q->base;
	uint64_t prev_seq = 0;
	uint64_t stopped_at = 0; /* the first record at or past below_seq, when one stopped us */
	bool full = false;
	for (size_t si = start.seg; si < log->nsegs && !full; si++) {
		struct sl_segment *seg = &log->segs[si];
		uint64_t fpos = si == start.seg ? start.off : SL_SEGMENT_HEADER_BYTES;
		uint64_t end = seg->size_bytes;
		if (fpos >= end)
			continue;
		r = sl_log_segment_fd(log, seg);
		if (r < 0)
			return r;
		b->len = keep;
		size_t cur = keep;
		for (;;) {
			struct sluice_record rec;
			size_t flen;
			r = sl_record_decode(b->data + cur, b->len - cur, &rec, &flen);
			if (r == -EAGAIN) {
				if (fpos >= end) {
					if (cur != b->len)
						goto corrupt; /* torn below the written size */
					break;
				}
				size_t tail = b->len - cur;
				if (cur > keep)
					memmove(b->data + keep, b->data + cur, tail);
				b->len = keep + tail;
				cur = keep;
				uint64_t want = chunk;
				uint64_t left = frames_left_bytes(
				    avg, max_records - (uint32_t)out->count,
				    max_bytes > out->data_bytes ? max_bytes - out->data_bytes : 0,
				    tail);
				if (want > left)
					want = left;
				if (want < SL_READ_CHUNK_BYTES_MIN)
					want = SL_READ_CHUNK_BYTES_MIN;
				if (flen > tail && flen - tail > want)
					want = flen - tail;
				if (want > end - fpos)
					want = end - fpos;
				r = sl_buf_reserve(b, (size_t)want);
				if (r < 0)
					return r;
				ssize_t n = sl_log_io_pread_full(seg->fd, b->data + b->len,
								 (size_t)want, fpos);
				if (n < 0)
					return (int)n;
				if (n == 0)
					goto corrupt; /* the file is shorter than what we wrote */
				b->len += (size_t)n;
				fpos += (uint64_t)n;
				if (chunk < SL_READ_CHUNK_BYTES_MAX)
					chunk *= 2;
				continue;
			}
			if (r < 0 || rec.seq <= prev_seq)
				goto corrupt;
			prev_seq = rec.seq;
			if (rec.seq < from_seq || rec.ts_ms < min_ts) {
				cur += flen;
				continue;
			}
			if (rec.seq >= q->below_seq) {
				stopped_at = rec.seq;
				full = true;
				break;
			}
			size_t rec_bytes = (size_t)rec.key_len + rec.data_len;
			if (out->count && out->data_bytes + rec_bytes > max_bytes) {
				full = true;
				break;
			}
			r = reserve_records(out);
			if (r < 0)
				return r;
			if (q->frames && cur > keep) {
				/* Frames skipped before the first one taken: move over them. */
				size_t gap = cur - keep;
				memmove(b->data + keep, b->data + cur, b->len - cur);
				b->len -= gap;
				cur = keep;
				rec.key -= gap;
				rec.data -= gap;
			}
			/* Offsets for now: b->data may move when it grows. */
			rec.key = (const char *)(uintptr_t)((const uint8_t *)rec.key - b->data);
			rec.data = (const uint8_t *)(uintptr_t)(rec.data - b->data);
			out->records[out->count++] = rec;
			out->data_bytes += rec_bytes;
			cur += flen;
			keep = cur;
			if (out->count >= max_records) {
				full = true;
				break;
			}
		}
	}
	b->len = keep;
	for (size_t i = 0; i < out->count; i++) {
		struct sluice_record *rec = &out->records[i];
		rec->key = (const char *)b->data + (uintptr_t)rec->key;
		rec->data = b->data + (uintptr_t)rec->data;
	}
	if (stopped_at)
		out->next_seq = stopped_at;
	else if (out->count)
		out->next_seq = out->records[out->count - 1].seq + 1;
	else
		out->next_seq = from_seq > log->next_seq ? from_seq : log->next_seq;
	return 0;

corrupt:
	SL_ERROR("shard log %s: corrupt record in a segment after seq %" PRIu64, log->dir,
		 prev_seq);
	out->count = 0;
	out->data_bytes = 0;
	b->len = q->base;
	return SLUICE_ERR_CORRUPT;
}

static int64_t expire_before(const struct sl_shard_log *log, int64_t now_ms)
{
	if (log->cfg.retention_ms <= 0)
		return INT64_MIN;
	return now_ms - log->cfg.retention_ms;
}

/* Both public reads: no records asked is refused; on any error the bytes are as they came. */
static int read_checked(struct sl_shard_log *log, const struct read_spec *q,
			struct sl_read_batch *out)
{
	out->count = 0;
	out->data_bytes = 0;
	out->next_seq = q->from_seq;
	q->bytes->len = q->base;
	if (q->max_records == 0)
		return SLUICE_ERR_INVALID_ARGUMENT;
	int r = read_impl(log, q, out);
	if (r < 0)
		q->bytes->len = q->base;
	return r;
}

int sl_shard_log_read(struct sl_shard_log *log, uint64_t from_seq, uint32_t max_records,
		      uint32_t max_bytes, int64_t now_ms, struct sl_read_batch *out)
{
	struct read_spec q = {.from_seq = from_seq,
			      .below_seq = UINT64_MAX,
			      .min_ts = expire_before(log, now_ms),
			      .max_records = max_records,
			      .max_bytes = max_bytes,
			      .bytes = &out->bytes};
	return read_checked(log, &q, out);
}

int sl_shard_log_read_frames(struct sl_shard_log *log, uint64_t from_seq, uint64_t below_seq,
			     uint32_t max_records, uint32_t max_bytes, int64_t now_ms,
			     struct sl_buf *frames, struct sl_read_batch *out)
{
	struct read_spec q = {.from_seq = from_seq,
			      .below_seq = below_seq,
			      .min_ts = expire_before(log, now_ms),
			      .max_records = max_records,
			      .max_bytes = max_bytes,
			      .bytes = frames,
			      .base = frames->len,
			      .frames = true};
	return read_checked(log, &q, out);
}

/* The first live record with seq >= from_seq and ts >= min_ts, or the tip. */
static int first_from(struct sl_shard_log *log, uint64_t from_seq, int64_t min_ts,
		      uint64_t *ret_seq)
{
	struct read_spec q = {.from_seq = from_seq,
			      .below_seq = UINT64_MAX,
			      .min_ts = min_ts,
			      .max_records = 1,
			      .bytes = &log->seek_batch.bytes};
	int r = read_impl(log, &q, &log->seek_batch);
	if (r < 0)
		return r;
	*ret_seq = log->seek_batch.count ? log->seek_batch.records[0].seq : log->next_seq;
	return 0;
}

int sl_shard_log_seek(struct sl_shard_log *log, const struct sluice_position *pos, int64_t now_ms,
		      uint64_t *ret_seq)
{
	int64_t expire = expire_before(log, now_ms);
	uint64_t v;
	switch (pos->type) {
	case SLUICE_POS_TRIM_HORIZON:
		return first_from(log, 0, expire, ret_seq);
	case SLUICE_POS_LATEST:
		*ret_seq = log->next_seq;
		return 0;
	case SLUICE_POS_AT_SEQ:
	case SLUICE_POS_AFTER_SEQ:
		v = pos->value;
		if (pos->type == SLUICE_POS_AFTER_SEQ) {
			if (v == UINT64_MAX)
				return SLUICE_ERR_INVALID_ARGUMENT;
			v++;
		}
		if (v > log->next_seq)
			return SLUICE_ERR_INVALID_ARGUMENT; /* never assigned */
		return first_from(log, v, expire, ret_seq);
	case SLUICE_POS_AT_TIMESTAMP:
		if (pos->value > (uint64_t)INT64_MAX) {
			*ret_seq = log->next_seq;
			return 0;
		}
		return first_from(
		    log, 0, (int64_t)pos->value > expire ? (int64_t)pos->value : expire, ret_seq);
	}
	return SLUICE_ERR_INVALID_ARGUMENT;
}
