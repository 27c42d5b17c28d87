/*
 * Segment files of a shard log and their sparse indexes.
 *
 * A shard folder holds pairs DIR/<first_seq>.log and DIR/<first_seq>.idx, first_seq printed as
 * 20 zero-padded decimal digits so that names sort like numbers. Every record of a segment has
 * seq >= first_seq and seq < the first_seq of the next segment (the name is a lower bound: a
 * restored stream may have gaps).
 *
 * .log layout (little-endian):
 *   off size field
 *     0    4 magic      SL_SEGMENT_MAGIC ("SLSG")
 *     4    4 version    SL_SEGMENT_VERSION
 *     8    8 first_seq  must equal the number in the file name
 *    16    8 reserved   0
 *    24    8 checksum   XXH3_64bits of bytes 0..23
 *    32    .            record frames back to back (record_format.h), nothing else
 *
 * .idx layout: a plain array of SL_INDEX_ENTRY_BYTES entries {u64 seq, u64 offset, i64 ts_ms},
 * no header. An entry points at the first byte of a record frame in the .log. Entries are strictly
 * increasing in seq and offset. The first record of a segment always has an entry; after that one
 * entry is added when a record starts index_interval_bytes or more after the previous entry, so a
 * seek scans at most about index_interval_bytes. When a segment is sealed (rolled), an entry for
 * its last record is added, the .idx is fdatasynced with the .log, and from then on both are
 * trusted as they are: the last entry gives the segment's last seq and newest timestamp without
 * reading the .log.
 *
 * The .idx is not checksummed: it is only a hint. Every lookup lands on a frame that is decoded
 * and checksummed, and recovery of the newest segment (sl_segment_recover) validates the last
 * entries against the .log and rebuilds the rest from there.
 */
#ifndef SL_LOG_SEGMENT_H
#define SL_LOG_SEGMENT_H

#include "common/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_SEGMENT_MAGIC 0x47534c53u /* bytes 'S' 'L' 'S' 'G' */
#define SL_SEGMENT_VERSION 1u
#define SL_SEGMENT_HEADER_BYTES 32u
#define SL_INDEX_ENTRY_BYTES 24u
/* "%020" PRIu64 ".log" */
#define SL_SEGMENT_NAME_DIGITS 20
/* Bytes read per pread when scanning a segment: big enough to amortise the syscall. */
#define SL_SEGMENT_SCAN_CHUNK_BYTES (1u << 20)

struct sl_index_entry {
	uint64_t seq;
	uint64_t offset;
	int64_t ts_ms;
};

struct sl_segment {
	uint64_t first_seq;  /* from the name */
	uint64_t size_bytes; /* valid bytes, header included */
	int fd;		     /* the .log; -1 until first needed (sealed segments open lazily) */
	int idx_fd;	     /* the .idx, open for writing: the active segment only, else -1 */
	struct sl_index_entry *idx;
	size_t idx_len;
	size_t idx_cap;
	size_t idx_on_disk;   /* entries [0, idx_on_disk) are written to the .idx */
	bool idx_loaded;      /* idx[] reflects the segment (always true for the active one) */
	bool has_records;     /* valid once idx_loaded */
	uint64_t last_seq;    /* valid when has_records */
	int64_t last_ts_ms;   /* newest timestamp, valid when has_records */
	uint64_t last_offset; /* offset of the last record, valid when has_records */
	/* Bytes in the file: size_bytes plus, for the active segment of a group-commit log, a
	 * tail of written zeros (preallocation, see shard_log.c). */
	uint64_t file_bytes;
};

/* Result of scanning frames forward. */
struct sl_segment_scan {
	uint64_t end_offset; /* just after the last valid frame */
	uint64_t records;    /* valid frames found */
	int stop;	     /* 0 at end of file, -EAGAIN for a torn frame, SLUICE_ERR_CORRUPT */
};

/* DIR/<first_seq>.<ext> into out; -ENAMETOOLONG if it does not fit. */
int sl_segment_path(char *out, size_t out_len, const char *dir, uint64_t first_seq,
		    const char *ext);
/* Whether name is "<20 digits>.log" (or .idx); sets *ret_first_seq and *ret_is_idx. */
bool sl_segment_parse_name(const char *name, uint64_t *ret_first_seq, bool *ret_is_idx);

void sl_segment_encode_header(uint8_t *out, uint64_t first_seq);
/* 0 if p holds a valid header for first_seq, else SLUICE_ERR_CORRUPT. */
int sl_segment_check_header(const uint8_t *p, uint64_t first_seq);

/* A zeroed segment with both fds at -1. */
void sl_segment_init(struct sl_segment *seg, uint64_t first_seq);
/* Close fds and free the index. Accepts a half-built segment. */
void sl_segment_finish(struct sl_segment *seg);

/*
 * Create DIR/<first_seq>.log (header written) and an empty .idx, both open for writing. Does not
 * sync: the caller fsyncs the folder and syncs the data with its policy. On failure both files are
 * removed again.
 */
int sl_segment_create(struct sl_segment *seg, const char *dir, uint64_t first_seq);
/* Open the .log (read-write when writable) if not open yet. */
int sl_segment_open(struct sl_segment *seg, const char *dir, bool writable);
/* Delete both files of a segment (closing its fds first). */
int sl_segment_remove(struct sl_segment *seg, const char *dir);

/* Add an index entry, unconditionally. 0 or -ENOMEM. */
int sl_segment_index_add(struct sl_segment *seg, uint64_t seq, uint64_t offset, int64_t ts_ms);
/* Add an entry if the record at offset starts interval bytes after the last one (or is first). */
static inline int sl_segment_index_note(struct sl_segment *seg, uint64_t seq, uint64_t offset,
					int64_t ts_ms, uint32_t interval)
{
	if (seg->idx_len && offset - seg->idx[seg->idx_len - 1].offset < interval)
		return 0;
	return sl_segment_index_add(seg, seq, offset, ts_ms);
}
/* Write the entries not yet on disk to the .idx (one write). On failure the .idx is cut back. */
int sl_segment_index_flush(struct sl_segment *seg);
/*
 * Load a sealed segment's .idx (trusted: its last entry is the last record). Entries that break
 * ordering or point past size_bytes end the list. A missing or empty .idx of a non-empty segment
 * is rebuilt by scanning the .log (and reported with SL_WARN).
 */
int sl_segment_index_load(struct sl_segment *seg, const char *dir, uint32_t interval,
			  struct sl_buf *scratch);

/* The last entry with seq <= seq (or ts < ts_ms); SIZE_MAX if none. */
size_t sl_segment_index_find_seq(const struct sl_segment *seg, uint64_t seq);
size_t sl_segment_index_find_ts(const struct sl_segment *seg, int64_t ts_ms);

/*
 * Decode frames from offset to the end of the file (its real size, given as file_bytes), noting
 * index entries, tracking last_seq/last_ts_ms/has_records, requiring seq strictly increasing and
 * >= first_seq (after_seq: the seq before offset, or 0). Stops at the first torn or invalid frame.
 */
int sl_segment_scan(struct sl_segment *seg, uint64_t offset, uint64_t file_bytes,
		    uint64_t after_seq, uint32_t interval, struct sl_buf *scratch,
		    struct sl_segment_scan *ret);

/*
 * Recover the newest segment (its .log open read-write in seg->fd, size file_bytes): validate the
 * header, keep the .idx entries whose record is valid, scan forward from the last of them, truncate
 * a torn or corrupt tail (SL_WARN), and rewrite the .idx to match. Opens seg->idx_fd.
 */
int sl_segment_recover(struct sl_segment *seg, const char *dir, uint64_t file_bytes,
		       uint32_t interval, struct sl_buf *scratch);

#endif
