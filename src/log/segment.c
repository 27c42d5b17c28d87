/* Segment files and sparse indexes; the formats are described in segment.h. */
#include "log/segment.h"

#include "common/logging.h"
#include "log/io.h"
#include "log/record_format.h"

#include <sluice/errors.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* A sealed .idx larger than this is not an index we wrote (128 MiB segments need ~50 KiB). */
#define INDEX_FILE_BYTES_MAX (256u << 20)

int sl_segment_path(char *out, size_t out_len, const char *dir, uint64_t first_seq, const char *ext)
{
	int n = snprintf(out, out_len, "%s/%020" PRIu64 ".%s", dir, first_seq, ext);
	if (n < 0 || (size_t)n >= out_len)
		return -ENAMETOOLONG;
	return 0;
}

bool sl_segment_parse_name(const char *name, uint64_t *ret_first_seq, bool *ret_is_idx)
{
	uint64_t v = 0;
	for (int i = 0; i < SL_SEGMENT_NAME_DIGITS; i++) {
		char c = name[i];
		if (c < '0' || c > '9')
			return false;
		uint64_t d = (uint64_t)(c - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	const char *ext = name + SL_SEGMENT_NAME_DIGITS;
	bool is_idx;
	if (strcmp(ext, ".log") == 0)
		is_idx = false;
	else if (strcmp(ext, ".idx") == 0)
		is_idx = true;
	else
		return false;
	*ret_first_seq = v;
	*ret_is_idx = is_idx;
	return true;
}

void sl_segment_encode_header(uint8_t *out, uint64_t first_seq)
{
	sl_store_u32(out, SL_SEGMENT_MAGIC);
	sl_store_u32(out + 4, SL_SEGMENT_VERSION);
	sl_store_u64(out + 8, first_seq);
	sl_store_u64(out + 16, 0);
	sl_store_u64(out + 24, XXH3_64bits(out, 24));
}

int sl_segment_check_header(const uint8_t *p, uint64_t first_seq)
{
	if (sl_load_u32(p) != SL_SEGMENT_MAGIC || sl_load_u32(p + 4) != SL_SEGMENT_VERSION)
		return SLUICE_ERR_CORRUPT;
	if (sl_load_u64(p + 24) != XXH3_64bits(p, 24))
		return SLUICE_ERR_CORRUPT;
	if (sl_load_u64(p + 8) != first_seq)
		return SLUICE_ERR_CORRUPT;
	return 0;
}

void sl_segment_init(struct sl_segment *seg, uint64_t first_seq)
{
	memset(seg, 0, sizeof(*seg));
	seg->first_seq = first_seq;
	seg->fd = -1;
	seg->idx_fd = -1;
}

void sl_segment_finish(struct sl_segment *seg)
{
	const struct sl_log_io *io = sl_log_io();
	if (seg->fd >= 0)
		io->close(seg->fd);
	if (seg->idx_fd >= 0)
		io->close(seg->idx_fd);
	free(seg->idx);
	seg->fd = -1;
	seg->idx_fd = -1;
	seg->idx = NULL;
	seg->idx_len = seg->idx_cap = seg->idx_on_disk = 0;
}

int sl_segment_create(struct sl_segment *seg, const char *dir, uint64_t first_seq)
{
	const struct sl_log_io *io = sl_log_io();
	char log_path[PATH_MAX], idx_path[PATH_MAX];
	int r = sl_segment_path(log_path, sizeof(log_path), dir, first_seq, "log");
	if (r < 0)
		return r;
	r = sl_segment_path(idx_path, sizeof(idx_path), dir, first_seq, "idx");
	if (r < 0)
		return r;

	char tmp_path[PATH_MAX + 8];
	snprintf(tmp_path, sizeof(tmp_path), "%s.tmp", log_path);
	sl_segment_init(seg, first_seq);
	/*
	 * The header is written and made durable under a temporary name, then renamed: a power
	 * loss can leave the new segment missing or whole, never named but headerless (which
	 * recovery could not tell from a damaged segment holding acknowledged data). O_TRUNC: a
	 * new segment is named by the next seq, above every record stored.
	 */
	seg->fd = io->open(tmp_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (seg->fd < 0) {
		r = seg->fd;
		goto fail;
	}
	seg->idx_fd = io->open(idx_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (seg->idx_fd < 0) {
		r = seg->idx_fd;
		goto fail;
	}
	uint8_t hdr[SL_SEGMENT_HEADER_BYTES];
	sl_segment_encode_header(hdr, first_seq);
	struct iovec iov = {.iov_base = hdr, .iov_len = sizeof(hdr)};
	r = sl_log_io_pwritev_all(seg->fd, &iov, 1, 0);
	if (r < 0)
		goto fail;
	r = io->fdatasync(seg->fd);
	if (r < 0)
		goto fail;
	r = io->rename(tmp_path, log_path);
	if (r < 0)
		goto fail;
	seg->size_bytes = SL_SEGMENT_HEADER_BYTES;
	seg->file_bytes = SL_SEGMENT_HEADER_BYTES;
	seg->idx_loaded = true;
	return 0;

fail:
	sl_segment_finish(seg);
	io->unlink(tmp_path);
	io->unlink(log_path);
	io->unlink(idx_path);
	return r;
}

int sl_segment_open(struct sl_segment *seg, const char *dir, bool writable)
{
	if (seg->fd >= 0)
		return 0;
	char path[PATH_MAX];
	int r = sl_segment_path(path, sizeof(path), dir, seg->first_seq, "log");
	if (r < 0)
		return r;
	int fd = sl_log_io()->open(path, writable ? O_RDWR : O_RDONLY, 0);
	if (fd < 0)
		return fd;
	seg->fd = fd;
	return 0;
}

int sl_segment_remove(struct sl_segment *seg, const char *dir)
{
	const struct sl_log_io *io = sl_log_io();
	char path[PATH_MAX];
	sl_segment_finish(seg);
	int r = sl_segment_path(path, sizeof(path), dir, seg->first_seq, "log");
	if (r < 0)
		return r;
	/* .log first: a crash in between leaves an orphan .idx, which open deletes. */
	r = io->unlink(path);
	if (r < 0 && r != -ENOENT)
		return r;
	sl_segment_path(path, sizeof(path), dir, seg->first_seq, "idx");
	r = io->unlink(path);
	if (r < 0 && r != -ENOENT)
		return r;
	return 0;
}

int sl_segment_index_add(struct sl_segment *seg, uint64_t seq, uint64_t offset, int64_t ts_ms)
{
	assert(seg->idx_len == 0 || (seq > seg->idx[seg->idx_len - 1].seq &&
				     offset > seg->idx[seg->idx_len - 1].offset));
	if (seg->idx_len == seg->idx_cap) {
		size_t cap = seg->idx_cap ? seg->idx_cap * 2 : 64;
		struct sl_index_entry *p = realloc(seg->idx, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		seg->idx = p;
		seg->idx_cap = cap;
	}
	seg->idx[seg->idx_len++] = (struct sl_index_entry){seq, offset, ts_ms};
	return 0;
}

int sl_segment_index_flush(struct sl_segment *seg)
{
	assert(seg->idx_fd >= 0);
	size_t n = seg->idx_len - seg->idx_on_disk;
	if (n == 0)
		return 0;
	/* Entries are few (one per index_interval_bytes of log): a stack chunk is enough. */
	uint8_t chunk[64 * SL_INDEX_ENTRY_BYTES];
	size_t done = seg->idx_on_disk;
	while (done < seg->idx_len) {
		size_t k = seg->idx_len - done;
		if (k > 64)
			k = 64;
		for (size_t i = 0; i < k; i++) {
			const struct sl_index_entry *e = &seg->idx[done + i];
			uint8_t *p = chunk + i * SL_INDEX_ENTRY_BYTES;
			sl_store_u64(p, e->seq);
			sl_store_u64(p + 8, e->offset);
			sl_store_u64(p + 16, (uint64_t)e->ts_ms);
		}
		struct iovec iov = {.iov_base = chunk, .iov_len = k * SL_INDEX_ENTRY_BYTES};
		int r = sl_log_io_pwritev_all(seg->idx_fd, &iov, 1, done * SL_INDEX_ENTRY_BYTES);
		if (r < 0) {
			/* Cut back a partial entry; the in-memory entries stay pending. */
			sl_log_io()->ftruncate(seg->idx_fd,
					       (off_t)(seg->idx_on_disk * SL_INDEX_ENTRY_BYTES));
			return r;
		}
		done += k;
	}
	seg->idx_on_disk = seg->idx_len;
	return 0;
}

/* Parse raw .idx bytes into seg->idx, stopping at the first entry that breaks the rules. */
static int parse_index(struct sl_segment *seg, const uint8_t *p, size_t len, uint64_t size_bytes)
{
	seg->idx_len = 0;
	for (size_t off = 0; off + SL_INDEX_ENTRY_BYTES <= len; off += SL_INDEX_ENTRY_BYTES) {
		uint64_t seq = sl_load_u64(p + off);
		uint64_t foff = sl_load_u64(p + off + 8);
		int64_t ts = (int64_t)sl_load_u64(p + off + 16);
		if (seq < seg->first_seq || foff < SL_SEGMENT_HEADER_BYTES ||
		    foff + SL_RECORD_FRAME_BYTES_MIN > size_bytes)
			break;
		if (seg->idx_len) {
			const struct sl_index_entry *prev = &seg->idx[seg->idx_len - 1];
			if (seq <= prev->seq || foff <= prev->offset)
				break;
		}
		int r = sl_segment_index_add(seg, seq, foff, ts);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Read a whole .idx into scratch; a missing file reads as empty. */
static int read_index_file(const char *path, struct sl_buf *scratch)
{
	const struct sl_log_io *io = sl_log_io();
	scratch->len = 0;
	int fd = io->open(path, O_RDONLY, 0);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	int r = 0;
	for (;;) {
		if (scratch->len >= INDEX_FILE_BYTES_MAX)
			break;
		r = sl_buf_reserve(scratch, 64u << 10);
		if (r < 0)
			break;
		ssize_t n = sl_log_io_pread_full(fd, scratch->data + scratch->len,
						 scratch->cap - scratch->len, scratch->len);
		if (n < 0) {
			r = (int)n;
			break;
		}
		if (n == 0)
			break;
		scratch->len += (size_t)n;
	}
	io->close(fd);
	return r;
}

int sl_segment_index_load(struct sl_segment *seg, const char *dir, uint32_t interval,
			  struct sl_buf *scratch)
{
	if (seg->idx_loaded)
		return 0;
	char path[PATH_MAX];
	int r = sl_segment_path(path, sizeof(path), dir, seg->first_seq, "idx");
	if (r < 0)
		return r;
	r = read_index_file(path, scratch);
	if (r < 0)
		return r;
	r = parse_index(seg, scratch->data, scratch->len, seg->size_bytes);
	if (r < 0)
		return r;
	seg->idx_on_disk = seg->idx_len;

	if (seg->idx_len == 0 && seg->size_bytes > SL_SEGMENT_HEADER_BYTES) {
		/* Lost index of a sealed segment: rebuild it in memory from the records. */
		SL_WARN("shard log %s: index of segment %020" PRIu64 " missing, rebuilding", dir,
			seg->first_seq);
		r = sl_segment_open(seg, dir, false);
		if (r < 0)
			return r;
		struct sl_segment_scan scan;
		r = sl_segment_scan(seg, SL_SEGMENT_HEADER_BYTES, seg->size_bytes, 0, interval,
				    scratch, &scan);
		if (r < 0)
			return r;
		if (scan.stop != 0)
			return SLUICE_ERR_CORRUPT; /* a sealed segment is whole */
		if (seg->has_records && seg->idx[seg->idx_len - 1].seq != seg->last_seq) {
			r = sl_segment_index_add(seg, seg->last_seq, seg->last_offset,
						 seg->last_ts_ms);
			if (r < 0)
				return r;
		}
		seg->idx_on_disk = 0;
	} else if (seg->idx_len) {
		/* Sealed: the last entry is the last record. */
		const struct sl_index_entry *last = &seg->idx[seg->idx_len - 1];
		seg->has_records = true;
		seg->last_seq = last->seq;
		seg->last_offset = last->offset;
		seg->last_ts_ms = last->ts_ms;
		for (size_t i = 0; i < seg->idx_len; i++)
			if (seg->idx[i].ts_ms > seg->last_ts_ms)
				seg->last_ts_ms = seg->idx[i].ts_ms;
	}
	seg->idx_loaded = true;
	return 0;
}

size_t sl_segment_index_find_seq(const struct sl_segment *seg, uint64_t seq)
{
	size_t lo = 0, hi = seg->idx_len; /* answer in [lo-1, hi) */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (seg->idx[mid].seq <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? lo - 1 : SIZE_MAX;
}

size_t sl_segment_index_find_ts(const struct sl_segment *seg, int64_t ts_ms)
{
	size_t lo = 0, hi = seg->idx_len;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (seg->idx[mid].ts_ms < ts_ms)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? lo - 1 : SIZE_MAX;
}

int sl_segment_scan(struct sl_segment *seg, uint64_t offset, uint64_t file_bytes,
		    uint64_t after_seq, uint32_t interval, struct sl_buf *scratch,
		    struct sl_segment_scan *ret)
{
	assert(seg->fd >= 0);
	uint64_t pos = offset; /* file offset of scratch->data[0] */
	size_t cur = 0;
	uint64_t prev = after_seq > seg->first_seq - 1 ? after_seq : seg->first_seq - 1;
	uint64_t records = 0;
	int stop = 0;
	scratch->len = 0;

	for (;;) {
		struct sluice_record rec;
		size_t flen;
		int r = sl_record_decode(scratch->data + cur, scratch->len - cur, &rec, &flen);
		if (r == -EAGAIN) {
			uint64_t fill = pos + scratch->len;
			if (fill >= file_bytes) {
				stop = cur == scratch->len ? 0 : -EAGAIN;
				break;
			}
			memmove(scratch->data, scratch->data + cur, scratch->len - cur);
			pos += cur;
			scratch->len -= cur;
			cur = 0;
			size_t want = SL_SEGMENT_SCAN_CHUNK_BYTES;
			if (flen > scratch->len && flen - scratch->len > want)
				want = flen - scratch->len;
			if (want > file_bytes - fill)
				want = (size_t)(file_bytes - fill);
			r = sl_buf_reserve(scratch, want);
			if (r < 0)
				return r;
			ssize_t n =
			    sl_log_io_pread_full(seg->fd, scratch->data + scratch->len, want, fill);
			if (n < 0)
				return (int)n;
			if (n == 0) {
				stop = cur == scratch->len ? 0 : -EAGAIN;
				break;
			}
			scratch->len += (size_t)n;
			continue;
		}
		if (r < 0 || rec.seq <= prev) {
			stop = SLUICE_ERR_CORRUPT;
			break;
		}
		uint64_t at = pos + cur;
		r = sl_segment_index_note(seg, rec.seq, at, rec.ts_ms, interval);
		if (r < 0)
			return r;
		if (!seg->has_records || rec.ts_ms > seg->last_ts_ms)
			seg->last_ts_ms = rec.ts_ms;
		seg->has_records = true;
		seg->last_seq = rec.seq;
		seg->last_offset = at;
		prev = rec.seq;
		records++;
		cur += flen;
	}
	ret->end_offset = pos + cur;
	ret->records = records;
	ret->stop = stop;
	return 0;
}

/* Whether the frame at off decodes and matches entry e. */
static bool entry_valid(struct sl_segment *seg, const struct sl_index_entry *e, uint64_t file_bytes,
			struct sl_buf *scratch)
{
	if (e->offset + SL_RECORD_FRAME_BYTES_MIN > file_bytes)
		return false;
	scratch->len = 0;
	if (sl_buf_reserve(scratch, SL_RECORD_HEADER_BYTES) < 0)
		return false;
	ssize_t n = sl_log_io_pread_full(seg->fd, scratch->data, SL_RECORD_HEADER_BYTES, e->offset);
	if (n != SL_RECORD_HEADER_BYTES)
		return false;
	struct sluice_record rec;
	size_t flen;
	if (sl_record_decode(scratch->data, (size_t)n, &rec, &flen) != -EAGAIN || flen == 0 ||
	    e->offset + flen > file_bytes)
		return false;
	if (sl_buf_reserve(scratch, flen) < 0)
		return false;
	n = sl_log_io_pread_full(seg->fd, scratch->data, flen, e->offset);
	if (n < 0 || (size_t)n != flen)
		return false;
	if (sl_record_decode(scratch->data, flen, &rec, &flen) != 0)
		return false;
	return rec.seq == e->seq && rec.ts_ms == e->ts_ms;
}

/*
 * Whether the file from off on starts with a frame header's worth of zeros (or zeros up to its
 * end): the unwritten part of a preallocated tail. A frame never starts with a zero length, so
 * no record, whole or torn, begins there.
 */
static bool zero_tail(struct sl_segment *seg, uint64_t off, uint64_t file_bytes)
{
	uint8_t b[SL_RECORD_HEADER_BYTES];
	size_t want = file_bytes - off < sizeof(b) ? (size_t)(file_bytes - off) : sizeof(b);
	ssize_t n = sl_log_io_pread_full(seg->fd, b, want, off);
	if (n != (ssize_t)want)
		return false;
	for (size_t i = 0; i < want; i++)
		if (b[i])
			return false;
	return true;
}

static const char *stop_reason(int stop)
{
	return stop == -EAGAIN ? "torn frame" : "corrupt frame";
}

int sl_segment_recover(struct sl_segment *seg, const char *dir, uint64_t file_bytes,
		       uint32_t interval, struct sl_buf *scratch)
{
	const struct sl_log_io *io = sl_log_io();
	char idx_path[PATH_MAX];
	int r = sl_segment_path(idx_path, sizeof(idx_path), dir, seg->first_seq, "idx");
	if (r < 0)
		return r;
	assert(seg->fd >= 0);

	uint8_t hdr[SL_SEGMENT_HEADER_BYTES];
	if (file_bytes < SL_SEGMENT_HEADER_BYTES) {
		/* Crashed while creating the segment: nothing was stored in it yet. */
		if (file_bytes > 0)
			SL_WARN("shard log %s: segment %020" PRIu64 " has a torn header, resetting",
				dir, seg->first_seq);
		sl_segment_encode_header(hdr, seg->first_seq);
		struct iovec iov = {.iov_base = hdr, .iov_len = sizeof(hdr)};
		r = io->ftruncate(seg->fd, 0);
		if (r < 0)
			return r;
		r = sl_log_io_pwritev_all(seg->fd, &iov, 1, 0);
		if (r < 0)
			return r;
		file_bytes = SL_SEGMENT_HEADER_BYTES;
	} else {
		ssize_t n = sl_log_io_pread_full(seg->fd, hdr, sizeof(hdr), 0);
		if (n < 0)
			return (int)n;
		if (n != (ssize_t)sizeof(hdr) || sl_segment_check_header(hdr, seg->first_seq) < 0) {
			SL_ERROR("shard log %s: segment %020" PRIu64 " has a bad header", dir,
				 seg->first_seq);
			return SLUICE_ERR_CORRUPT;
		}
	}

	/* The .idx entries: keep those up to the last one that points at its record. */
	r = read_index_file(idx_path, scratch);
	if (r < 0)
		return r;
	r = parse_index(seg, scratch->data, scratch->len, file_bytes);
	if (r < 0)
		return r;
	size_t on_disk = seg->idx_len;
	size_t keep = seg->idx_len;
	while (keep > 0 && !entry_valid(seg, &seg->idx[keep - 1], file_bytes, scratch))
		keep--;
	uint64_t from = SL_SEGMENT_HEADER_BYTES, after = 0;
	if (keep > 0) {
		/* Rescan from the last good entry, which re-adds it. */
		from = seg->idx[keep - 1].offset;
		after = keep > 1 ? seg->idx[keep - 2].seq : 0;
		keep--;
	}
	seg->idx_len = keep;
	if (on_disk > keep)
		on_disk = keep;
	seg->has_records = false;
	if (keep > 0) {
		seg->has_records = true;
		seg->last_seq = seg->idx[keep - 1].seq;
		seg->last_offset = seg->idx[keep - 1].offset;
		seg->last_ts_ms = seg->idx[keep - 1].ts_ms;
	}

	struct sl_segment_scan scan;
	r = sl_segment_scan(seg, from, file_bytes, after, interval, scratch, &scan);
	if (r < 0)
		return r;
	if (scan.end_offset < file_bytes) {
		/* An unwritten preallocated tail (group commit, shard_log.c) loses nothing. */
		if (!zero_tail(seg, scan.end_offset, file_bytes))
			SL_WARN("shard log %s: segment %020" PRIu64 ": %s at offset %" PRIu64
				", truncating %" PRIu64 " bytes",
				dir, seg->first_seq, stop_reason(scan.stop), scan.end_offset,
				file_bytes - scan.end_offset);
		r = io->ftruncate(seg->fd, (off_t)scan.end_offset);
		if (r < 0)
			return r;
	}
	seg->size_bytes = scan.end_offset;
	seg->file_bytes = scan.end_offset;

	/* Rewrite the .idx: keep the prefix that matched, write the rest again. */
	seg->idx_fd = io->open(idx_path, O_RDWR | O_CREAT, 0644);
	if (seg->idx_fd < 0) {
		r = seg->idx_fd;
		seg->idx_fd = -1;
		return r;
	}
	r = io->ftruncate(seg->idx_fd, (off_t)(on_disk * SL_INDEX_ENTRY_BYTES));
	if (r < 0)
		return r;
	seg->idx_on_disk = on_disk;
	r = sl_segment_index_flush(seg);
	if (r < 0)
		return r;
	seg->idx_loaded = true;
	return 0;
}
