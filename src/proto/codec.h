/*
 * The native protocol codec: pure functions from bytes to structs and back. No I/O, no global
 * state, no allocation except into a caller's struct sl_buf, so it can be fuzzed directly.
 *
 * Frame (all integers little-endian):
 *
 *   offset size field
 *   0      4    length      bytes after this field: 8 + body length; 8..SL_PROTO_FRAME_MAX
 *   4      1    version     SL_PROTO_VERSION (1)
 *   5      1    opcode      enum sl_opcode
 *   6      2    flags       bit 0 SL_FRAME_RESPONSE, bit 1 SL_FRAME_PUSH (never both); others
 *                           must be 0
 *   8      4    request_id  chosen by the client, echoed in the response; in a PUSH frame, an id
 *                           chosen by the server (CONSUMER_BATCH: the delivery id)
 *   12     ...  body
 *
 * A PUSH frame is sent by the server without a request (today only CONSUMER_BATCH, on a
 * connection that sent CONSUMER_ATTACH). sl_proto_parse_header accepts the flag in both
 * directions, since the header parser is shared: a client accepts PUSH frames in what it
 * receives, and the server must reject a PUSH frame it receives (answered `protocol`, then the
 * connection is closed, like a RESPONSE frame sent to the server).
 *
 * A response body starts with `i32 status` (0 or a negative sluice error code). When status < 0
 * the rest is `str16 message` and nothing else. Responses may arrive in any order; the
 * request_id matches them up. Strings: str8 = u8 length + bytes, str16 = u16 length + bytes
 * (no NUL). Every decoder checks every length against what is left, rejects trailing bytes, and
 * returns SLUICE_ERR_PROTOCOL (or SLUICE_ERR_INVALID_NAME / _INVALID_KEY / _RECORD_TOO_LARGE
 * for the specific violations) without reading out of bounds.
 *
 * Bodies (request -> response, after the status):
 *   PING            -> (empty)
 *   AUTH            str16 token -> (empty)
 *   CREATE_STREAM   str8 name, u32 shard_count, u64 retention_ms -> (empty)
 *   DELETE_STREAM   str8 name -> (empty)
 *   LIST_STREAMS    (empty) -> u32 n, n x str8 name
 *   DESCRIBE_STREAM str8 name -> stream_desc
 *   LIST_SHARDS     str8 name -> u32 n, n x shard_desc
 *   PRODUCE         str8 stream, u32 n, n x record_in
 *                   -> u32 n, n x (i32 status, u32 shard_id, u64 seq)   (per-record results)
 *   READ            str8 stream, u32 shard_id, u8 position_type, u64 position_value,
 *                   u32 max_records, u32 max_bytes[, u32 wait_ms (optional, may be absent)]
 *                   -> u32 shard_id, u64 next_seq, u64 tip_seq, u64 millis_behind, u32 n,
 *                      n x record_frame, u8 flags (bit 0 SL_READ_FLAG_SHARD_ENDED: the shard is
 *                      closed and next_seq is past its end_seq; other bits 0)
 *   STREAM_SPLIT    str8 name, u32 shard_id, 16 bytes new_start_hash_key (BE)
 *                   -> u32 child_id_low, u32 child_id_high
 *   STREAM_MERGE    str8 name, u32 shard_id, u32 adjacent_shard_id -> u32 child_id
 *   STREAM_SCALE    str8 name, u32 target_open_shards -> u32 open_shards (after)
 *                   Only one reshard per stream at a time: another gets SLUICE_ERR_RESOURCE_IN_USE.
 *
 * Stream settings (Kinesis' retention and tag operations):
 *   STREAM_SET_RETENTION str8 name, u64 retention_ms -> (empty)
 *   STREAM_ADD_TAGS      str8 name, u32 n (1..SL_PROTO_TAGS_MAX), n x (str8 key, str16 value)
 *                        -> (empty); all or nothing, an existing key gets the new value
 *   STREAM_REMOVE_TAGS   str8 name, u32 n (1..SL_PROTO_TAGS_MAX), n x str8 key -> (empty);
 *                        keys the stream does not have are ignored (as Kinesis does)
 *   STREAM_LIST_TAGS     str8 name -> u32 n, n x (str8 key, str16 value), in the order they
 *                        were first added
 *   Tag keys are 1..128 bytes, values 0..256 bytes, both UTF-8 without NUL (Kinesis' rules).
 *
 * Consumers (registrations of stream -> handler; see src/consumer/consumer_config.h):
 *   CONSUMER_CREATE   consumer_config -> (empty)
 *   CONSUMER_DELETE   str8 name -> (empty)
 *   CONSUMER_LIST     (empty) -> u32 n, n x str8 name
 *   CONSUMER_DESCRIBE str8 name -> consumer_config, i64 created_ms, u32 n,
 *                     n x consumer_shard_status
 *   CONSUMER_RESET    str8 name, i64 shard_id (-1: all shards), u8 position_type,
 *                     u64 position_value -> (empty)
 *   CONSUMER_ATTACH   str8 name -> (empty); from then on the server pushes CONSUMER_BATCH frames
 *                     on this connection (the consumer's handler must be "remote")
 *   CONSUMER_BATCH    PUSH frame, server -> client, request_id = delivery id:
 *                     str8 consumer, str8 stream, u32 shard_id, u32 attempt, u32 n (1..10000),
 *                     n x record_out. Never answered with a response: the client sends a
 *                     CONSUMER_ACK request instead.
 *   CONSUMER_ACK      u32 delivery_id, u8 status (0 ok, 1 failed_from, 2 error),
 *                     u32 failed_from (index into the batch; with status 1), str16 message
 *                     (0..SL_PROTO_MESSAGE_MAX bytes) -> (empty)
 *
 *   record_in    = str16 key (1..256 bytes, UTF-8), u8 flags (bit 0: explicit hash key follows),
 *                  [16 bytes hash key, big-endian], u32 data_len, data
 *   record_out   = u64 seq, i64 ts_ms, str16 key, u8 flags, [16 bytes hash key], u32 data_len, data
 *   record_frame = a shard log's record frame as stored (src/log/record_format.h: u32 frame_len,
 *                  u32 magic, u64 seq, i64 ts_ms, u16 key_len, u8 flags, u8 0, u32 data_len,
 *                  [16 bytes hash key], key, data, u64 XXH3 checksum): sluiced sends what it read
 *                  from disk without re-encoding it (it verified the checksum on the way)
 *   stream_desc  = str8 name, u64 retention_ms, i64 created_ms, u8 status, u32 n, n x shard_desc
 *   shard_desc   = u32 shard_id, i32 parent_id (-1 none), i32 adjacent_parent_id (-1 none),
 *                  16 bytes start hash (BE), 16 bytes end hash (BE), u64 start_seq,
 *                  u64 end_seq (0 while open), u64 next_seq
 *   consumer_config = str8 name, str8 stream, u8 handler_kind (0 exec, 1 plugin, 2 remote),
 *                  str16 handler_target, u32 batch_size, u32 batch_window_ms, u8 start_type
 *                  (position type: 0 trim-horizon, 1 latest, 4 at timestamp), u64 start_value,
 *                  i32 max_retries (-1: until expiry), i64 max_record_age_s (-1: retention),
 *                  u8 flags (bit 0 bisect_on_error; others must be 0), str8 on_failure ("" none),
 *                  u32 parallelism, u32 timeout_ms
 *   consumer_shard_status = u32 shard_id, u64 checkpoint_seq, u64 lag_records, u64 lag_ms,
 *                  u8 state (enum sl_proto_consumer_state), u64 delivered, u64 batches_failed,
 *                  u64 retries, u64 sent_to_on_failure, u64 expired, str16 last_error
 *
 * Restore and import (restore_messages.c; docs/protocol.md "Restore"):
 *   STREAM_CREATE_FROM_META str8 name, u32 len, len bytes of stream metadata JSON
 *                     (stream_meta.h; its "name" is replaced by name) -> (empty). The stream gets
 *                     exactly the document's shards, ids, hash ranges, lineage and start seqs.
 *                     Refused (stream_exists) when a stream of that name exists.
 *   STREAM_META_GET   str8 name -> u32 len, len bytes of the stream's metadata JSON
 *   RESTORE_APPEND    str8 stream, u32 shard_id, u32 n (1..SL_PROTO_RECORDS_MAX),
 *                     n x restore_record -> u32 appended, u32 skipped, u64 next_seq
 *                     Seqs strictly increase within the request (else seq_order); records whose
 *                     seq is below the shard's next_seq are skipped (already stored: a re-run is
 *                     idempotent), the rest are appended with their seq and ts and answered once
 *                     durable. next_seq: the shard's next sequence number after the append.
 *   restore_record = u64 seq (>= 1), i64 ts_ms (>= 1), str16 key (1..256 bytes, UTF-8),
 *                  u32 data_len, data
 *
 * Firehoses (consumers of kind firehose: same name space as consumers; see docs/firehose.md):
 *   FIREHOSE_CREATE   firehose_config -> (empty)
 *   FIREHOSE_DELETE   str8 name -> (empty)
 *   FIREHOSE_LIST     (empty) -> u32 n, n x str8 name
 *   FIREHOSE_DESCRIBE str8 name -> firehose_config, i64 created_ms, u32 n,
 *                     n x firehose_shard_status
 *   FIREHOSE_FLUSH    str8 name -> (empty) (write out every shard's buffer now)
 *
 *   firehose_config = str8 name, str8 stream, str16 dest (file:///DIR or s3://BUCKET/PREFIX;
 *                  "" in a CREATE: the server's default, file://DATA/objects),
 *                  str16 endpoint ("" AWS), str8 region ("" default), str16 credentials_file
 *                  ("" environment), str8 profile ("" default), u64 buffer_bytes,
 *                  u32 buffer_interval_ms, u8 compression (0 none, 1 zstd), i32 zstd_level,
 *                  u8 format (0 jsonl, 1 raw), i64 max_retry_duration_ms (-1: until expiry),
 *                  str8 on_failure ("" none), u8 start_type (0 trim-horizon, 1 latest,
 *                  4 at timestamp), u64 start_value
 *   firehose_shard_status = u32 shard_id, u64 checkpoint_seq, u64 buffered_records,
 *                  u64 buffered_bytes, i64 last_flush_ms (0: never), str16 last_object_key,
 *                  u64 objects_written, u64 records_archived, u64 bytes_written (compressed),
 *                  u64 upload_failures, u64 sent_to_on_failure, u64 expired,
 *                  u8 state (enum sl_proto_firehose_state), str16 last_error,
 *                  u64 lag_ms (age of the oldest record not yet archived; 0: none waiting),
 *                  u8 background (1: its thread yields the CPU, --firehose-cpu-priority)
 */
#ifndef SL_PROTO_CODEC_H
#define SL_PROTO_CODEC_H

#include <sluice/types.h>

#include "common/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_PROTO_VERSION 1
#define SL_FRAME_HEADER_BYTES 12
#define SL_FRAME_RESPONSE 0x0001
/* A frame the server sends on its own initiative (CONSUMER_BATCH); see the top. */
#define SL_FRAME_PUSH 0x0002
/* Largest frame: bounds a connection's receive buffer. 500 records of 1 MiB fit in a PRODUCE. */
#define SL_PROTO_FRAME_MAX (64u << 20)
/* Records in one PRODUCE request or READ response (Kinesis GetRecords allows 10,000). */
#define SL_PROTO_RECORDS_MAX 10000u
/*
 * Longest a READ may wait for new records (wait_ms): a parked read holds its connection's
 * request slot and a place on the shard owner's list, so it must end (Kinesis' long-poll
 * equivalents cap at tens of seconds too).
 */
#define SL_PROTO_READ_WAIT_MS_MAX 30000u
/* Longest error message carried in a response. */
#define SL_PROTO_MESSAGE_MAX 1024u
/* READ response flags (the last byte of the answer). */
#define SL_READ_FLAG_SHARD_ENDED 0x01
/* record_in/record_out flags: bit 0 = a 16-byte explicit hash key follows. Other bits must be 0. */
#define SL_RECORD_FLAG_HASH_KEY 0x01u

enum sl_opcode {
	SL_OP_PING = 0x01,
	SL_OP_AUTH = 0x02,
	SL_OP_CREATE_STREAM = 0x10,
	SL_OP_DELETE_STREAM = 0x11,
	SL_OP_LIST_STREAMS = 0x12,
	SL_OP_DESCRIBE_STREAM = 0x13,
	SL_OP_LIST_SHARDS = 0x14,
	SL_OP_STREAM_SPLIT = 0x19,
	SL_OP_STREAM_MERGE = 0x1A,
	SL_OP_STREAM_SCALE = 0x1B,
	SL_OP_STREAM_CREATE_FROM_META = 0x1C, /* restore: exact layout (restore_messages.c) */
	SL_OP_STREAM_SET_RETENTION = 0x15,
	SL_OP_STREAM_ADD_TAGS = 0x16,
	SL_OP_STREAM_REMOVE_TAGS = 0x17,
	SL_OP_STREAM_LIST_TAGS = 0x18,
	SL_OP_PRODUCE = 0x20,
	SL_OP_READ = 0x21,
	SL_OP_RESTORE_APPEND = 0x22,  /* restore/import: original seqs and timestamps */
	SL_OP_STREAM_META_GET = 0x23, /* the stream's metadata JSON (export, restore checks) */
	SL_OP_CONSUMER_CREATE = 0x30,
	SL_OP_CONSUMER_DELETE = 0x31,
	SL_OP_CONSUMER_LIST = 0x32,
	SL_OP_CONSUMER_DESCRIBE = 0x33,
	SL_OP_CONSUMER_RESET = 0x34,
	SL_OP_CONSUMER_ATTACH = 0x35,
	SL_OP_CONSUMER_BATCH = 0x36, /* PUSH frames only */
	SL_OP_CONSUMER_ACK = 0x37,
	SL_OP_FIREHOSE_CREATE = 0x40,
	SL_OP_FIREHOSE_DELETE = 0x41,
	SL_OP_FIREHOSE_LIST = 0x42,
	SL_OP_FIREHOSE_DESCRIBE = 0x43,
	SL_OP_FIREHOSE_FLUSH = 0x44,
};

struct sl_frame_header {
	uint32_t length; /* bytes after the length field */
	uint8_t version;
	uint8_t opcode;
	uint16_t flags;
	uint32_t request_id;
};

/*
 * Parse a frame header from the first len bytes of a receive buffer. Returns 0 and fills *ret
 * when a whole header is present (the body may still be incomplete: the whole frame is
 * 4 + ret->length bytes), -EAGAIN when fewer than SL_FRAME_HEADER_BYTES are present, or
 * SLUICE_ERR_PROTOCOL (bad length) / SLUICE_ERR_UNSUPPORTED_VERSION: the stream of frames cannot
 * be trusted after that, so the connection is closed.
 */
int sl_proto_parse_header(const uint8_t *buf, size_t len, struct sl_frame_header *ret);
/* Whether opcode is one of enum sl_opcode (a well-framed unknown opcode gets BAD_OPCODE). */
bool sl_proto_opcode_known(uint8_t opcode);

/* Whether name is a valid stream/consumer name: 1..128 of [a-zA-Z0-9_.-]. */
bool sl_proto_name_valid(const uint8_t *name, size_t len);
/* Whether key is a valid partition key: 1..256 bytes of well-formed UTF-8. */
bool sl_proto_key_valid(const uint8_t *key, size_t len);

/* A string borrowed from the frame (not NUL-terminated). */
struct sl_str {
	const char *p;
	size_t len;
};

/* ---- requests ---- */

struct sl_req_create_stream {
	struct sl_str name;
	uint32_t shard_count; /* 1..SLUICE_SHARDS_MAX */
	uint64_t retention_ms;
};

struct sl_req_read {
	struct sl_str stream;
	uint32_t shard_id;
	struct sluice_position position;
	uint32_t max_records; /* 1..SL_PROTO_RECORDS_MAX */
	uint32_t max_bytes;
	uint32_t wait_ms; /* 0..SL_PROTO_READ_WAIT_MS_MAX; 0 when the field is absent */
};

struct sl_req_reshard {
	struct sl_str stream;
	uint32_t shard_id;		   /* SPLIT, MERGE */
	uint32_t adjacent_id;		   /* MERGE */
	struct sluice_hash_key start_hash; /* SPLIT */
	uint32_t target;		   /* SCALE */
};

/* A PRODUCE body is decoded lazily: decode the head, then iterate the records. */
struct sl_req_produce {
	struct sl_str stream;
	uint32_t count;
	struct sl_reader records; /* positioned at the first record_in */
	uint32_t next;		  /* index of the record sl_proto_produce_next returns next */
};

struct sl_record_view {
	const uint8_t *key;
	uint16_t key_len;
	bool has_hash_key;
	struct sluice_hash_key hash_key;
	const uint8_t *data;
	uint32_t data_len;
};

/*
 * body/len: the bytes after the 12-byte header. Results borrow body and are set only on success.
 * Structure is checked before meaning: SLUICE_ERR_PROTOCOL (truncated, trailing bytes, a PRODUCE
 * count over SL_PROTO_RECORDS_MAX or larger than the body can hold), then SLUICE_ERR_INVALID_NAME,
 * then SLUICE_ERR_INVALID_ARGUMENT (shard_count, position type, max_records or max_bytes out of
 * range, a PRODUCE of 0 records).
 */
/* DELETE_STREAM, DESCRIBE_STREAM, LIST_SHARDS, CONSUMER_DELETE/_DESCRIBE/_ATTACH,
 * FIREHOSE_DELETE/_DESCRIBE/_FLUSH: a str8 name. */
int sl_proto_decode_name(const uint8_t *body, size_t len, struct sl_str *ret);
int sl_proto_decode_auth(const uint8_t *body, size_t len, struct sl_str *ret_token);
int sl_proto_decode_create_stream(const uint8_t *body, size_t len,
				  struct sl_req_create_stream *ret);
int sl_proto_decode_read(const uint8_t *body, size_t len, struct sl_req_read *ret);
/* STREAM_SPLIT / _MERGE / _SCALE (by opcode): the fields of that request. */
int sl_proto_decode_reshard(uint8_t opcode, const uint8_t *body, size_t len,
			    struct sl_req_reshard *ret);
int sl_proto_decode_produce(const uint8_t *body, size_t len, struct sl_req_produce *ret);
/*
 * Next record of a PRODUCE. Returns 1 and fills *ret, 0 after the last record (count reached and
 * no bytes left), or an error: SLUICE_ERR_PROTOCOL for truncation/trailing bytes (the whole
 * request is rejected), SLUICE_ERR_INVALID_KEY or SLUICE_ERR_RECORD_TOO_LARGE (record_bytes_max)
 * for one bad record: *ret is then still filled and iteration may continue with the next one.
 */
int sl_proto_produce_next(struct sl_req_produce *req, uint32_t record_bytes_max,
			  struct sl_record_view *ret);

/* RESTORE_APPEND, decoded lazily like PRODUCE. */
struct sl_req_restore_append {
	struct sl_str stream;
	uint32_t shard_id;
	uint32_t count;
	struct sl_reader records; /* positioned at the first restore_record */
	uint32_t next;
};
struct sl_restore_record_view {
	uint64_t seq;
	int64_t ts_ms;
	const uint8_t *key;
	uint16_t key_len;
	const uint8_t *data;
	uint32_t data_len;
};
/* Largest metadata JSON in a STREAM_CREATE_FROM_META (the frame bounds it anyway). */
#define SL_PROTO_META_JSON_MAX (SL_PROTO_FRAME_MAX - 1024)
/*
 * STREAM_CREATE_FROM_META: SLUICE_ERR_PROTOCOL (structure), SLUICE_ERR_INVALID_NAME,
 * SLUICE_ERR_INVALID_ARGUMENT (empty JSON). The JSON itself is the server's to validate.
 */
int sl_proto_decode_create_from_meta(const uint8_t *body, size_t len, struct sl_str *ret_name,
				     struct sl_str *ret_json);
/* RESTORE_APPEND head: SLUICE_ERR_PROTOCOL, SLUICE_ERR_INVALID_NAME, _INVALID_ARGUMENT (n 0). */
int sl_proto_decode_restore_append(const uint8_t *body, size_t len,
				   struct sl_req_restore_append *ret);
/*
 * Next record: 1 and *ret filled, 0 after the last one, SLUICE_ERR_PROTOCOL (truncated, trailing
 * bytes), SLUICE_ERR_INVALID_KEY, SLUICE_ERR_RECORD_TOO_LARGE or SLUICE_ERR_INVALID_ARGUMENT
 * (seq or ts 0). Unlike PRODUCE, any bad record fails the whole request: a restore is all or
 * nothing per request.
 */
int sl_proto_restore_next(struct sl_req_restore_append *req, uint32_t record_bytes_max,
			  struct sl_restore_record_view *ret);
/* Encode one restore_record (libsluice). -EINVAL (key over 256 bytes), -ENOMEM. */
int sl_proto_put_restore_record(struct sl_buf *out, const struct sluice_record *rec);
/* Tags in one request or answer: a stream has at most 50 (Kinesis), so 50 suffice. */
#define SL_PROTO_TAGS_MAX 50u
#define SL_PROTO_TAG_KEY_MAX 128u
#define SL_PROTO_TAG_VALUE_MAX 256u

struct sl_req_set_retention {
	struct sl_str name;
	uint64_t retention_ms;
};

/* STREAM_ADD_TAGS (values) and STREAM_REMOVE_TAGS (keys only), checked whole by decode. */
struct sl_req_tags {
	struct sl_str name;
	uint32_t count;
	bool with_values;
	struct sl_reader tags; /* positioned at the first tag */
};

/*
 * SET_RETENTION: PROTOCOL, INVALID_NAME. ADD/REMOVE_TAGS (with_values: ADD): PROTOCOL for
 * structure (count 0 or over SL_PROTO_TAGS_MAX, truncation, trailing bytes), then INVALID_NAME,
 * then INVALID_ARGUMENT for a key or value out of its length range or containing NUL. next
 * returns 1 with the next tag (value empty for REMOVE), 0 after the last.
 */
int sl_proto_decode_set_retention(const uint8_t *body, size_t len,
				  struct sl_req_set_retention *ret);
int sl_proto_decode_tags(const uint8_t *body, size_t len, bool with_values,
			 struct sl_req_tags *ret);
int sl_proto_tags_next(struct sl_req_tags *req, struct sl_str *ret_key, struct sl_str *ret_value);

/* ---- encoders: append one whole frame (header included) to out ---- */

/* Request frames (used by libsluice). The head functions reserve and write the 12-byte header. */
int sl_proto_encode_request_head(struct sl_buf *out, uint8_t opcode, uint32_t request_id,
				 size_t *ret_frame_start);
/* Patch the length field of the frame that starts at frame_start once its body is complete. */
void sl_proto_finish_frame(struct sl_buf *out, size_t frame_start);
int sl_proto_put_str8(struct sl_buf *out, const char *s, size_t len);
int sl_proto_put_str16(struct sl_buf *out, const char *s, size_t len);
/*
 * Encoders check only what the wire can represent (a str8 longer than 255 bytes is -EINVAL); they
 * do not validate names or keys, so a caller validates with sl_proto_name_valid/_key_valid first.
 * On failure (-EINVAL, -ENOMEM) nothing was appended.
 */
int sl_proto_put_record_in(struct sl_buf *out, const struct sl_record_view *rec);
int sl_proto_put_record_out(struct sl_buf *out, const struct sluice_record *rec);

/* Response frames (used by sluiced): head writes header + status; finish patches the length. */
int sl_proto_encode_response_head(struct sl_buf *out, uint8_t opcode, uint32_t request_id,
				  int32_t status, size_t *ret_frame_start);
/* A complete error response: status < 0 and a message (truncated to SL_PROTO_MESSAGE_MAX). */
int sl_proto_encode_error(struct sl_buf *out, uint8_t opcode, uint32_t request_id, int32_t status,
			  const char *message);

/* ---- response decoding (used by libsluice) ---- */

struct sl_shard_desc {
	uint32_t shard_id;
	int32_t parent_id;
	int32_t adjacent_parent_id;
	struct sluice_hash_key start_hash;
	struct sluice_hash_key end_hash;
	uint64_t start_seq;
	uint64_t end_seq;
	uint64_t next_seq;
};
int sl_proto_put_shard_desc(struct sl_buf *out, const struct sl_shard_desc *d);
int sl_proto_get_shard_desc(struct sl_reader *r, struct sl_shard_desc *ret);

/* The head of a stream_desc; shard_count shard_descs follow it. */
struct sl_stream_desc {
	struct sl_str name;
	uint64_t retention_ms;
	int64_t created_ms;
	uint8_t status; /* enum sl_proto_stream_status; decoders accept any value (newer servers) */
	uint32_t shard_count;
};
enum sl_proto_stream_status {
	SL_PROTO_STREAM_ACTIVE = 0,
	SL_PROTO_STREAM_CREATING = 1,
	SL_PROTO_STREAM_DELETING = 2,
	SL_PROTO_STREAM_UPDATING = 3, /* resharding */
};
int sl_proto_put_stream_desc(struct sl_buf *out, const struct sl_stream_desc *d);
int sl_proto_get_stream_desc(struct sl_reader *r, struct sl_stream_desc *ret);

/*
 * Read a str8/str16 from r, borrowing r's bytes (LIST_STREAMS names, ...). Return 0 or
 * SLUICE_ERR_PROTOCOL. The get_* functions on a reader leave r failed (r->ok false) on error, so
 * a loop over n items may stop at the first failure.
 */
int sl_proto_get_str8(struct sl_reader *r, struct sl_str *ret);
int sl_proto_get_str16(struct sl_reader *r, struct sl_str *ret);

/*
 * Split a response body into status and the rest. For status < 0, *ret_message borrows the
 * message. Returns 0 or SLUICE_ERR_PROTOCOL.
 */
int sl_proto_decode_response_status(const uint8_t *body, size_t len, int32_t *ret_status,
				    struct sl_str *ret_message, struct sl_reader *ret_rest);
/* Decode one record_out from r (borrowing r's bytes). Returns 0 or SLUICE_ERR_PROTOCOL. */
int sl_proto_get_record_out(struct sl_reader *r, struct sluice_record *ret);

/* ---- consumers (consumer_messages.c) ---- */

/* consumer_config flags. */
#define SL_CONSUMER_FLAG_BISECT_ON_ERROR 0x01
/* The smallest consumer_shard_status (empty last_error): bounds a count against the body. */
#define SL_PROTO_CONSUMER_SHARD_STATUS_BYTES_MIN (4 + 8 + 8 + 8 + 1 + 5 * 8 + 2)
/* The smallest record_out (a 1-byte key, no hash key, no data). */
#define SL_PROTO_RECORD_OUT_BYTES_MIN (8 + 8 + 2 + 1 + 1 + 4)

enum sl_proto_handler_kind { /* values of enum sl_handler_kind */
			     SL_PROTO_HANDLER_EXEC = 0,
			     SL_PROTO_HANDLER_PLUGIN = 1,
			     SL_PROTO_HANDLER_REMOTE = 2,
};

enum sl_proto_consumer_state {
	SL_PROTO_CONSUMER_IDLE = 0,
	SL_PROTO_CONSUMER_DELIVERING = 1,
	SL_PROTO_CONSUMER_RETRYING = 2,
	SL_PROTO_CONSUMER_FINISHED = 3,	       /* a closed shard, fully processed */
	SL_PROTO_CONSUMER_WAITING_REMOTE = 4,  /* no remote handler attached */
	SL_PROTO_CONSUMER_WAITING_PARENTS = 5, /* a child shard whose parents are not finished */
};

enum sl_proto_ack_status { /* values of enum sluice_handler_status */
			   SL_PROTO_ACK_OK = 0,
			   SL_PROTO_ACK_FAILED_FROM = 1,
			   SL_PROTO_ACK_ERROR = 2,
};

/* consumer_config. Strings borrow the frame (decoders) or the caller's memory (encoders). */
struct sl_consumer_wire {
	struct sl_str name;
	struct sl_str stream;
	uint8_t handler_kind; /* enum sl_proto_handler_kind */
	struct sl_str handler_target;
	uint32_t batch_size;
	uint32_t batch_window_ms;
	struct sluice_position start;
	int32_t max_retries;
	int64_t max_record_age_s;
	bool bisect_on_error;
	struct sl_str on_failure; /* len 0: none */
	uint32_t parallelism;
	uint32_t timeout_ms;
};

struct sl_consumer_shard_status {
	uint32_t shard_id;
	uint64_t checkpoint_seq;
	uint64_t lag_records;
	uint64_t lag_ms;
	uint8_t state; /* enum sl_proto_consumer_state; decoders accept any value (newer servers) */
	uint64_t delivered;
	uint64_t batches_failed;
	uint64_t retries;
	uint64_t sent_to_on_failure;
	uint64_t expired;
	struct sl_str last_error;
};

struct sl_req_consumer_reset {
	struct sl_str name;
	int64_t shard_id; /* -1: all shards, else 0..UINT32_MAX */
	struct sluice_position position;
};

struct sl_req_consumer_ack {
	uint32_t delivery_id;
	uint8_t status; /* enum sl_proto_ack_status */
	uint32_t failed_from;
	struct sl_str message; /* 0..SL_PROTO_MESSAGE_MAX bytes */
};

/* The head of a CONSUMER_BATCH body; count record_outs follow it. */
struct sl_consumer_batch_head {
	struct sl_str consumer;
	struct sl_str stream;
	uint32_t shard_id;
	uint32_t attempt;
	uint32_t count; /* 1..SL_PROTO_RECORDS_MAX */
};

/*
 * consumer_config on a reader (DESCRIBE answers) and in a CONSUMER_CREATE body.
 *
 * get checks structure only, plus what a client relies on: names valid (on_failure may be
 * empty), no unknown flag bits; handler_kind and start.type are passed on as they come (a newer
 * server may know more). On failure r is left failed and SLUICE_ERR_PROTOCOL returned.
 *
 * decode_consumer_create: SLUICE_ERR_PROTOCOL (structure, trailing bytes, unknown flag bits),
 * then SLUICE_ERR_INVALID_NAME (name, stream, on_failure), then SLUICE_ERR_INVALID_ARGUMENT
 * (handler_kind or start type unknown; start type must be trim-horizon, latest or at-timestamp).
 * Ranges (batch size, timeouts, ...) are the server's to check with sl_consumer_config_check,
 * whose messages name the field.
 */
int sl_proto_put_consumer_config(struct sl_buf *out, const struct sl_consumer_wire *c);
int sl_proto_get_consumer_config(struct sl_reader *r, struct sl_consumer_wire *ret);
int sl_proto_decode_consumer_create(const uint8_t *body, size_t len, struct sl_consumer_wire *ret);

int sl_proto_put_consumer_shard_status(struct sl_buf *out,
				       const struct sl_consumer_shard_status *s);
int sl_proto_get_consumer_shard_status(struct sl_reader *r, struct sl_consumer_shard_status *ret);

/* CONSUMER_RESET: PROTOCOL, INVALID_NAME, then INVALID_ARGUMENT (shard_id not -1 and not a
 * u32, position type unknown). */
int sl_proto_put_consumer_reset(struct sl_buf *out, const struct sl_req_consumer_reset *req);
int sl_proto_decode_consumer_reset(const uint8_t *body, size_t len,
				   struct sl_req_consumer_reset *ret);

/* CONSUMER_ACK: PROTOCOL (structure, message over SL_PROTO_MESSAGE_MAX), then INVALID_ARGUMENT
 * (unknown status). put returns -EINVAL for a message over SL_PROTO_MESSAGE_MAX. */
int sl_proto_put_consumer_ack(struct sl_buf *out, const struct sl_req_consumer_ack *req);
int sl_proto_decode_consumer_ack(const uint8_t *body, size_t len, struct sl_req_consumer_ack *ret);

/*
 * CONSUMER_BATCH. encode_push_head writes a PUSH header (flags SL_FRAME_PUSH, request_id =
 * delivery_id); then put_consumer_batch_head, count x sl_proto_put_record_out, and
 * sl_proto_finish_frame. get_consumer_batch_head checks names, 1 <= count <=
 * SL_PROTO_RECORDS_MAX and that count records can fit in what is left (SLUICE_ERR_PROTOCOL).
 */
int sl_proto_encode_push_head(struct sl_buf *out, uint8_t opcode, uint32_t delivery_id,
			      size_t *ret_frame_start);
int sl_proto_put_consumer_batch_head(struct sl_buf *out, const struct sl_consumer_batch_head *h);
int sl_proto_get_consumer_batch_head(struct sl_reader *r, struct sl_consumer_batch_head *ret);

/* ---- firehoses (firehose_messages.c) ---- */

/*
 * Longest strings of a firehose_config a FIREHOSE_CREATE may carry: they fit, with their NUL,
 * the fields of struct sl_firehose_options and sl_consumer_config.handler_target
 * (src/consumer/consumer_config.h), so a decoded request can be copied without truncation.
 */
#define SL_PROTO_FIREHOSE_DEST_MAX 4095
#define SL_PROTO_FIREHOSE_ENDPOINT_MAX 511
#define SL_PROTO_FIREHOSE_REGION_MAX 63
#define SL_PROTO_FIREHOSE_CREDENTIALS_FILE_MAX 511
#define SL_PROTO_FIREHOSE_PROFILE_MAX 63
/* The smallest firehose_shard_status (empty key and error): bounds a count against the body. */
#define SL_PROTO_FIREHOSE_SHARD_STATUS_BYTES_MIN (4 + 8 + 8 + 8 + 8 + 2 + 6 * 8 + 1 + 2 + 8 + 1)

enum sl_proto_firehose_compression { /* values of enum sl_firehose_compression */
				     SL_PROTO_FIREHOSE_COMPRESSION_NONE = 0,
				     SL_PROTO_FIREHOSE_COMPRESSION_ZSTD = 1,
};

enum sl_proto_firehose_format { /* values of enum sl_firehose_format */
				SL_PROTO_FIREHOSE_FORMAT_JSONL = 0,
				SL_PROTO_FIREHOSE_FORMAT_RAW = 1,
};

/* Per-shard state of a firehose (the consumer states; FLUSHING = DELIVERING: an upload is on). */
enum sl_proto_firehose_state {
	SL_PROTO_FIREHOSE_IDLE = 0,	       /* buffering, or caught up */
	SL_PROTO_FIREHOSE_FLUSHING = 1,	       /* an object is being written */
	SL_PROTO_FIREHOSE_RETRYING = 2,	       /* an upload failed and waits for its retry */
	SL_PROTO_FIREHOSE_FINISHED = 3,	       /* a closed shard, fully archived */
	SL_PROTO_FIREHOSE_WAITING_PARENTS = 4, /* a child shard whose parents are not archived */
};

/* firehose_config. Strings borrow the frame (decoders) or the caller's memory (encoders). */
struct sl_firehose_wire {
	struct sl_str name;
	struct sl_str stream;
	struct sl_str dest; /* file:///DIR or s3://BUCKET/PREFIX; "" (CREATE): the default */
	struct sl_str endpoint;
	struct sl_str region;
	struct sl_str credentials_file;
	struct sl_str profile;
	uint64_t buffer_bytes;
	uint32_t buffer_interval_ms;
	uint8_t compression; /* enum sl_proto_firehose_compression */
	int32_t zstd_level;
	uint8_t format;		       /* enum sl_proto_firehose_format */
	int64_t max_retry_duration_ms; /* -1: until the records expire */
	struct sl_str on_failure;      /* len 0: none */
	struct sluice_position start;
};

struct sl_firehose_shard_status {
	uint32_t shard_id;
	uint64_t checkpoint_seq;
	uint64_t buffered_records;
	uint64_t buffered_bytes;
	int64_t last_flush_ms; /* 0: never */
	struct sl_str last_object_key;
	uint64_t objects_written;
	uint64_t records_archived;
	uint64_t bytes_written; /* compressed, as stored */
	uint64_t upload_failures;
	uint64_t sent_to_on_failure;
	uint64_t expired;
	uint8_t state; /* enum sl_proto_firehose_state; decoders accept any value (newer servers) */
	struct sl_str last_error;
	uint64_t lag_ms;    /* age of the oldest record not yet archived */
	uint8_t background; /* nonzero: the shard's thread yields the CPU (1 sent) */
};

/*
 * firehose_config on a reader (DESCRIBE answers) and in a FIREHOSE_CREATE body.
 *
 * get checks structure and names only (name, stream valid; on_failure empty or valid);
 * compression, format and start.type are passed on as they come (a newer server may know more).
 * On failure r is left failed and SLUICE_ERR_PROTOCOL returned.
 *
 * decode_firehose_create: SLUICE_ERR_PROTOCOL (structure, trailing bytes), then
 * SLUICE_ERR_INVALID_NAME (name, stream, on_failure), then SLUICE_ERR_INVALID_ARGUMENT
 * (compression or format unknown; start type not trim-horizon, latest or at-timestamp; dest,
 * endpoint, region, credentials_file or profile longer than its SL_PROTO_FIREHOSE_*_MAX or
 * holding a NUL byte). Ranges (buffer hints, zstd level, retry duration, dest syntax) are the
 * server's to check with sl_consumer_config_check, whose messages name the field.
 */
int sl_proto_put_firehose_config(struct sl_buf *out, const struct sl_firehose_wire *f);
int sl_proto_get_firehose_config(struct sl_reader *r, struct sl_firehose_wire *ret);
int sl_proto_decode_firehose_create(const uint8_t *body, size_t len, struct sl_firehose_wire *ret);

/* put: -EINVAL for a key or error over UINT16_MAX bytes. get: SLUICE_ERR_PROTOCOL. */
int sl_proto_put_firehose_shard_status(struct sl_buf *out,
				       const struct sl_firehose_shard_status *s);
int sl_proto_get_firehose_shard_status(struct sl_reader *r, struct sl_firehose_shard_status *ret);

#endif
