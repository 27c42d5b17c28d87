/*
 * The archive object format: what a firehose writes to its object store, and what `sluice restore`
 * reads back. Pure functions over bytes (no I/O), so the decoder is fuzzed
 * (tests/fuzz/fuzz_archive.c).
 *
 * Object body (format jsonl): one line per record, in sequence order, every line ending in '\n':
 *
 *   {"stream":"S","shard":"shardId-000000000000","seq":"<decimal>","ts":<ms>,"key":"...","data":"<base64>"}
 *
 *   - fields exactly in this order (the writer's contract; the reader accepts any order but rejects
 *     missing, unknown and duplicate fields);
 *   - "seq" is a decimal string (a u64 does not fit a JSON double), "ts" the arrival time in Unix
 * ms;
 *   - "key" is the partition key (1..256 bytes of UTF-8, JSON-escaped), "data" standard base64 with
 *     padding (RFC 4648 section 4, no line breaks);
 *   - this is the shape of `sluice get --format json`, so `zstdcat OBJ | jq` reads an archive.
 *
 * Object body (format raw): the record data bytes followed by '\n', and nothing else (as Amazon
 * Data Firehose writes). Not restorable: no keys, no sequence numbers. sl_archive_read() refuses
 * it.
 *
 * Compression: the body as ONE zstd frame (streamed, so the content size is not in the frame
 * header), or none. The frame's own checksum is on (ZSTD_c_checksumFlag): a flipped bit inside the
 * object is caught by the reader even where it would still decode. The reader also checks that the
 * frame is complete and that nothing follows it: an object cut short by a crashed upload is
 * SLUICE_ERR_CORRUPT, never a silently shorter archive.
 *
 * Validation when reading (every byte of an object is outside input): each line must be valid
 * UTF-8 JSON (jansson, duplicates rejected), the shard id "shardId-" + 12 digits, seq a canonical
 * u64 decimal, ts an integer >= 0, key 1..256 bytes, data valid base64; every line of an object
 * must name the same stream and shard, with strictly increasing sequence numbers. The first failure
 * stops the read with SLUICE_ERR_CORRUPT and a message naming the line (1-based).
 *
 * Object key (see sl_archive_key):
 *   PREFIX/YYYY/MM/DD/HH/STREAM-shardId-000000000000-FIRSTSEQ-LASTSEQ.EXT
 * where YYYY/MM/DD/HH is the UTC hour of the first record's arrival, FIRSTSEQ/LASTSEQ are the
 * object's first and last sequence numbers zero-padded to 20 digits (so that keys of one shard
 * sort by sequence), and EXT is .jsonl.zst, .jsonl, .raw.zst or .raw. Deriving the key from the
 * sequence range makes a retried upload overwrite the same object instead of duplicating it.
 */
#ifndef SL_ARCHIVE_FORMAT_H
#define SL_ARCHIVE_FORMAT_H

#include <sluice/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_buf;

enum sl_archive_format {
	SL_ARCHIVE_JSONL = 0, /* one JSON object per record (restorable) */
	SL_ARCHIVE_RAW = 1,   /* data bytes + '\n' only */
};

enum sl_archive_compression {
	SL_ARCHIVE_ZSTD = 0, /* one zstd frame */
	SL_ARCHIVE_NONE = 1, /* plain */
};

/* zstd level when none is given: fast (hundreds of MB/s per core) and ~4x on JSON lines. */
#define SL_ARCHIVE_ZSTD_LEVEL_DEFAULT 3

/*
 * The longest line the reader accepts: a record of the largest data size the server can be
 * configured for (SLUICE_RECORD_BYTES_LIMIT) in base64, plus a key of 256 bytes escaped 6 bytes
 * each (\u0001), plus the field names. Bounds the reader's memory per line.
 */
#define SL_ARCHIVE_LINE_BYTES_MAX                                                                  \
	((size_t)SLUICE_RECORD_BYTES_LIMIT / 3 * 4 + 4 + 6 * SLUICE_KEY_LEN_MAX + 512)

/* Longest key sl_archive_key() produces for a prefix of SL_ARCHIVE_PREFIX_LEN_MAX bytes. */
#define SL_ARCHIVE_PREFIX_LEN_MAX 512
#define SL_ARCHIVE_KEY_LEN_MAX (SL_ARCHIVE_PREFIX_LEN_MAX + SLUICE_NAME_LEN_MAX + 128)

struct sl_archive_options {
	enum sl_archive_format format;
	enum sl_archive_compression compression;
	int zstd_level; /* 0: SL_ARCHIVE_ZSTD_LEVEL_DEFAULT; else ZSTD_minCLevel()..ZSTD_maxCLevel()
			 */
};

/* ---- writer ---- */

/*
 * Encodes records into one object. Memory stays bounded by the compressed output plus one line:
 * every record is rendered and fed to the compressor as it is added.
 * One writer per thread; reuse it with sl_archive_writer_reset() for the next object.
 */
struct sl_archive_writer;

/*
 * stream: a valid stream name (1-128 of [a-zA-Z0-9_.-], else SLUICE_ERR_INVALID_NAME); opt NULL =
 * jsonl + zstd level 3. 0, -ENOMEM, SLUICE_ERR_INVALID_ARGUMENT (bad level/format).
 */
int sl_archive_writer_create(const char *stream, uint32_t shard_id,
			     const struct sl_archive_options *opt, struct sl_archive_writer **ret);
/* Accepts NULL. */
void sl_archive_writer_destroy(struct sl_archive_writer *w);

/*
 * Append one record (copied; nothing is borrowed past the call). Sequence numbers must strictly
 * increase within an object (SLUICE_ERR_INVALID_ARGUMENT otherwise). The key must be 1..256 bytes
 * of valid UTF-8 (SLUICE_ERR_INVALID_KEY). 0, -ENOMEM, or SLUICE_ERR_INTERNAL (compressor).
 * After a failure the object is in an unknown state: reset before reusing the writer.
 */
int sl_archive_writer_add(struct sl_archive_writer *w, const struct sluice_record *rec);

/*
 * Complete the object (the zstd frame's epilogue) and return it: *ret_data borrows the writer's
 * buffer, valid until the next reset or destroy. Calling it again returns the same object; add
 * fails after it (SLUICE_ERR_INVALID_ARGUMENT). An object with no records is valid (an empty
 * zstd frame, or zero bytes).
 */
int sl_archive_writer_finish(struct sl_archive_writer *w, const uint8_t **ret_data,
			     size_t *ret_len);

/* Start a new object with the same stream, shard and options; keeps the buffers' memory. */
void sl_archive_writer_reset(struct sl_archive_writer *w);

struct sl_archive_writer_info {
	uint64_t records;
	uint64_t first_seq; /* valid when records > 0 */
	uint64_t last_seq;
	int64_t first_ts_ms;
	uint64_t raw_bytes;  /* uncompressed body bytes added so far */
	uint64_t out_bytes;  /* object bytes produced so far (grows in steps under zstd) */
	uint64_t data_bytes; /* sum of record data lengths */
	const char *ext;     /* ".jsonl.zst", ... for sl_archive_key() */
};
void sl_archive_writer_info(const struct sl_archive_writer *w, struct sl_archive_writer_info *ret);

/* ".jsonl.zst", ".jsonl", ".raw.zst" or ".raw". Static storage. */
const char *sl_archive_ext(enum sl_archive_format format, enum sl_archive_compression compression);

/* ---- reader ---- */

/* One decoded record. Every pointer borrows the reader's buffers: valid during the callback only.
 */
struct sl_archive_record {
	const char *stream; /* NUL-terminated */
	uint32_t shard_id;
	uint64_t seq;
	int64_t ts_ms;
	const char *key; /* key_len bytes, not NUL-terminated (may contain NUL) */
	size_t key_len;
	const uint8_t *data;
	size_t data_len;
	uint64_t line; /* 1-based line number in the object */
};

/* Return 0 to go on; any other value stops the read, and sl_archive_read() returns it. */
typedef int (*sl_archive_record_fn)(const struct sl_archive_record *rec, void *ctx);

/*
 * Decode a jsonl object of len bytes (compressed as said), calling fn for each record in order.
 * Returns the number of records (>= 0), fn's nonzero value, -ENOMEM, or SLUICE_ERR_CORRUPT with a
 * one-line message in err_msg ("line 3: seq is not a decimal u64"). Records before a corrupt line
 * have already been delivered: callers that must be all-or-nothing collect first, apply after.
 * err_msg may be NULL.
 */
int sl_archive_read(const uint8_t *obj, size_t len, enum sl_archive_compression compression,
		    sl_archive_record_fn fn, void *ctx, char *err_msg, size_t err_msg_len);

/*
 * Decompress a whole object into out (appended), checking the frame as sl_archive_read() does; at
 * most max_bytes of output (SLUICE_ERR_CORRUPT past it); on failure out is left as it was. A
 * well-formed zstd frame whose bound is under max_bytes is decoded in one call straight into out
 * (no staging copy: `sluice restore` reuses out for every object). For restore, tools and tests.
 */
int sl_archive_decompress(const uint8_t *obj, size_t len, enum sl_archive_compression compression,
			  size_t max_bytes, struct sl_buf *out, char *err_msg, size_t err_msg_len);

/* ---- object keys ---- */

/*
 * Write PREFIX/YYYY/MM/DD/HH/STREAM-shardId-NNNNNNNNNNNN-FIRSTSEQ-LASTSEQEXT (NUL-terminated) to
 * out. prefix may be "" or NULL (the key then starts with YYYY); trailing '/' are dropped, a
 * prefix must not start with '/' nor contain "//" or control characters. first_ts_ms >= 0.
 * Returns the key length, SLUICE_ERR_INVALID_ARGUMENT (bad prefix, ext, first_seq > last_seq),
 * SLUICE_ERR_INVALID_NAME (stream), or -ENAMETOOLONG (out too small).
 */
int sl_archive_key(const char *prefix, const char *stream, uint32_t shard_id, uint64_t first_seq,
		   uint64_t last_seq, int64_t first_ts_ms, const char *ext, char *out,
		   size_t out_len);

/* What a key says. Pointers borrow the parsed key. */
struct sl_archive_key_info {
	const char *prefix; /* prefix_len bytes, without the trailing '/' ("" when none) */
	size_t prefix_len;
	const char *stream;
	size_t stream_len;
	uint32_t shard_id;
	uint64_t first_seq;
	uint64_t last_seq;
	int64_t hour_ms; /* the UTC hour of the folder, Unix ms */
	enum sl_archive_format format;
	enum sl_archive_compression compression;
};

/*
 * Parse a key made by sl_archive_key() (from the right: stream names may contain '-' and '.').
 * 0, or SLUICE_ERR_INVALID_ARGUMENT for anything else (other files in the bucket are skipped by
 * restore, not fatal).
 */
int sl_archive_key_parse(const char *key, size_t key_len, struct sl_archive_key_info *ret);

#endif
