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
 *   6      2    flags       bit 0 SL_FRAME_RESPONSE; others must be 0
 *   8      4    request_id  chosen by the client, echoed in the response
 *   12     ...  body
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
 *                   u32 max_records, u32 max_bytes
 *                   -> u32 shard_id, u64 next_seq, u64 tip_seq, u64 millis_behind, u32 n,
 *                      n x record_out
 *
 *   record_in    = str16 key (1..256 bytes, UTF-8), u8 flags (bit 0: explicit hash key follows),
 *                  [16 bytes hash key, big-endian], u32 data_len, data
 *   record_out   = u64 seq, i64 ts_ms, str16 key, u8 flags, [16 bytes hash key], u32 data_len, data
 *   stream_desc  = str8 name, u64 retention_ms, i64 created_ms, u8 status, u32 n, n x shard_desc
 *   shard_desc   = u32 shard_id, i32 parent_id (-1 none), i32 adjacent_parent_id (-1 none),
 *                  16 bytes start hash (BE), 16 bytes end hash (BE), u64 start_seq,
 *                  u64 end_seq (0 while open), u64 next_seq
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
/* Largest frame: bounds a connection's receive buffer. 500 records of 1 MiB fit in a PRODUCE. */
#define SL_PROTO_FRAME_MAX (64u << 20)
/* Records in one PRODUCE request or READ response (Kinesis GetRecords allows 10,000). */
#define SL_PROTO_RECORDS_MAX 10000u
/* Longest error message carried in a response. */
#define SL_PROTO_MESSAGE_MAX 1024u
/* record_in/record_out flags: bit 0 = a 16-byte explicit hash key follows. Other bits must be 0. */
#define SL_RECORD_FLAG_HASH_KEY 0x01

enum sl_opcode {
	SL_OP_PING = 0x01,
	SL_OP_AUTH = 0x02,
	SL_OP_CREATE_STREAM = 0x10,
	SL_OP_DELETE_STREAM = 0x11,
	SL_OP_LIST_STREAMS = 0x12,
	SL_OP_DESCRIBE_STREAM = 0x13,
	SL_OP_LIST_SHARDS = 0x14,
	SL_OP_PRODUCE = 0x20,
	SL_OP_READ = 0x21,
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
/* DELETE_STREAM, DESCRIBE_STREAM, LIST_SHARDS: a str8 name. */
int sl_proto_decode_name(const uint8_t *body, size_t len, struct sl_str *ret);
int sl_proto_decode_auth(const uint8_t *body, size_t len, struct sl_str *ret_token);
int sl_proto_decode_create_stream(const uint8_t *body, size_t len,
				  struct sl_req_create_stream *ret);
int sl_proto_decode_read(const uint8_t *body, size_t len, struct sl_req_read *ret);
int sl_proto_decode_produce(const uint8_t *body, size_t len, struct sl_req_produce *ret);
/*
 * Next record of a PRODUCE. Returns 1 and fills *ret, 0 after the last record (count reached and
 * no bytes left), or an error: SLUICE_ERR_PROTOCOL for truncation/trailing bytes (the whole
 * request is rejected), SLUICE_ERR_INVALID_KEY or SLUICE_ERR_RECORD_TOO_LARGE (record_bytes_max)
 * for one bad record: *ret is then still filled and iteration may continue with the next one.
 */
int sl_proto_produce_next(struct sl_req_produce *req, uint32_t record_bytes_max,
			  struct sl_record_view *ret);

/* ---- encoders: append one whole frame (header included) to out ---- */

/* Request frames (used by libsluice). */
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

#endif
