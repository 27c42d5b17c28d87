/* Tests of src/proto: every request/response shape round trips, and every malformed input is
 * rejected with the right code without reading a byte past what it was given (run under ASan:
 * truncated inputs are exact-size heap copies). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sluice/errors.h>

#include "proto/codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* Check the frame at b->data + start (header and length) and return its body. */
static void frame_body(const struct sl_buf *b, size_t start, struct sl_frame_header *h,
		       const uint8_t **body, size_t *len)
{
	assert_true(b->len >= start + SL_FRAME_HEADER_BYTES);
	assert_int_equal(sl_proto_parse_header(b->data + start, b->len - start, h), 0);
	assert_int_equal(4 + (size_t)h->length, b->len - start);
	*body = b->data + start + SL_FRAME_HEADER_BYTES;
	*len = h->length - 8;
}

/* A request frame with a str8 name body. */
static size_t request_with_name(struct sl_buf *b, uint8_t op, uint32_t id, const char *name,
				size_t name_len)
{
	size_t start;
	assert_int_equal(sl_proto_encode_request_head(b, op, id, &start), 0);
	assert_int_equal(sl_proto_put_str8(b, name, name_len), 0);
	sl_proto_finish_frame(b, start);
	return start;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);
	assert_non_null(d);
	if (n)
		memcpy(d, p, n);
	return d;
}

static struct sluice_hash_key hash_of(uint8_t seed)
{
	struct sluice_hash_key h;
	for (int i = 0; i < 16; i++)
		h.be[i] = (uint8_t)(seed + i);
	return h;
}

static void put_produce_head(struct sl_buf *b, const char *stream, uint32_t count)
{
	assert_int_equal(sl_proto_put_str8(b, stream, strlen(stream)), 0);
	assert_int_equal(sl_buf_put_u32(b, count), 0);
}

static void put_rec(struct sl_buf *b, const char *key, size_t key_len, const void *data,
		    uint32_t data_len, const struct sluice_hash_key *hash)
{
	struct sl_record_view v = {
	    .key = (const uint8_t *)key,
	    .key_len = (uint16_t)key_len,
	    .has_hash_key = hash != NULL,
	    .data = data,
	    .data_len = data_len,
	};
	if (hash)
		v.hash_key = *hash;
	assert_int_equal(sl_proto_put_record_in(b, &v), 0);
}

/* Decode a PRODUCE body and step through it; return the first error, or the record count. */
static int produce_walk(const uint8_t *body, size_t len, uint32_t max)
{
	struct sl_req_produce req;
	int r = sl_proto_decode_produce(body, len, &req);
	if (r < 0)
		return r;
	int n = 0;
	struct sl_record_view v;
	while ((r = sl_proto_produce_next(&req, max, &v)) == 1)
		n++;
	return r < 0 ? r : n;
}

/* ---- header ---- */

static void header_parse(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	size_t start;
	assert_int_equal(sl_proto_encode_request_head(&b, SL_OP_PING, 0xa1b2c3d4, &start), 0);
	sl_proto_finish_frame(&b, start);
	assert_int_equal(b.len, SL_FRAME_HEADER_BYTES);

	struct sl_frame_header h, untouched;
	memset(&untouched, 0x5a, sizeof(untouched));
	for (size_t n = 0; n < SL_FRAME_HEADER_BYTES; n++) {
		uint8_t *cut = dup_bytes(b.data, n);
		h = untouched;
		assert_int_equal(sl_proto_parse_header(cut, n, &h), -EAGAIN);
		assert_memory_equal(&h, &untouched, sizeof(h));
		free(cut);
	}
	assert_int_equal(sl_proto_parse_header(b.data, b.len, &h), 0);
	assert_int_equal(h.length, 8);
	assert_int_equal(h.version, SL_PROTO_VERSION);
	assert_int_equal(h.opcode, SL_OP_PING);
	assert_int_equal(h.flags, 0);
	assert_int_equal(h.request_id, 0xa1b2c3d4);

	/* The length field: 8..SL_PROTO_FRAME_MAX. */
	const struct {
		uint32_t length;
		int want;
	} lengths[] = {
	    {0, SLUICE_ERR_PROTOCOL},
	    {7, SLUICE_ERR_PROTOCOL},
	    {8, 0},
	    {SL_PROTO_FRAME_MAX, 0},
	    {SL_PROTO_FRAME_MAX + 1, SLUICE_ERR_PROTOCOL},
	    {UINT32_MAX, SLUICE_ERR_PROTOCOL},
	};
	for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
		sl_store_u32(b.data, lengths[i].length);
		h = untouched;
		assert_int_equal(sl_proto_parse_header(b.data, b.len, &h), lengths[i].want);
		if (lengths[i].want == 0)
			assert_int_equal(h.length, lengths[i].length);
		else
			assert_memory_equal(&h, &untouched, sizeof(h));
	}
	sl_store_u32(b.data, 8);

	b.data[4] = 2;
	assert_int_equal(sl_proto_parse_header(b.data, b.len, &h), SLUICE_ERR_UNSUPPORTED_VERSION);
	b.data[4] = 0;
	assert_int_equal(sl_proto_parse_header(b.data, b.len, &h), SLUICE_ERR_UNSUPPORTED_VERSION);
	b.data[4] = SL_PROTO_VERSION;

	/* Flags: bits 0 (response) and 1 (push) are defined, never both. */
	for (int bit = 2; bit < 16; bit++) {
		sl_store_u16(b.data + 6, (uint16_t)(1u << bit));
		assert_int_equal(sl_proto_parse_header(b.data, b.len, &h), SLUICE_ERR_PROTOCOL);
		sl_store_u16(b.data + 6, (uint16_t)(1u << bit | SL_FRAME_PUSH));
		assert_int_equal(sl_proto_parse_header(b.data, b.len, &h), SLUICE_ERR_PROTOCOL);
	}
	sl_store_u16(b.data + 6, SL_FRAME_RESPONSE | SL_FRAME_PUSH);
	assert_int_equal(sl_proto_parse_header(b.data, b.len, &h), SLUICE_ERR_PROTOCOL);
	sl_store_u16(b.data + 6, SL_FRAME_PUSH);
	assert_int_equal(sl_proto_parse_header(b.data, b.len, &h), 0);
	assert_int_equal(h.flags, SL_FRAME_PUSH);
	sl_store_u16(b.data + 6, SL_FRAME_RESPONSE);
	assert_int_equal(sl_proto_parse_header(b.data, b.len, &h), 0);
	assert_int_equal(h.flags, SL_FRAME_RESPONSE);

	/* The opcode is not the header's business: an unknown one is a well-framed request. */
	b.data[5] = 0x7f;
	assert_int_equal(sl_proto_parse_header(b.data, b.len, &h), 0);
	assert_false(sl_proto_opcode_known(h.opcode));
	assert_true(sl_proto_opcode_known(SL_OP_PRODUCE));
	assert_true(sl_proto_opcode_known(SL_OP_READ));
	assert_false(sl_proto_opcode_known(0));
	sl_buf_finish(&b);
}

/* ---- requests ---- */

static void ping_auth_round_trip(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	size_t start;
	struct sl_frame_header h;
	const uint8_t *body;
	size_t len;

	assert_int_equal(sl_proto_encode_request_head(&b, SL_OP_PING, 1, &start), 0);
	sl_proto_finish_frame(&b, start);
	frame_body(&b, start, &h, &body, &len);
	assert_int_equal(len, 0);

	/* Pipelined: a second frame after the first in the same buffer. */
	assert_int_equal(sl_proto_encode_request_head(&b, SL_OP_AUTH, 2, &start), 0);
	assert_int_equal(sl_proto_put_str16(&b, "s3cret-token", 12), 0);
	sl_proto_finish_frame(&b, start);
	assert_int_equal(start, SL_FRAME_HEADER_BYTES);
	frame_body(&b, start, &h, &body, &len);
	assert_int_equal(h.opcode, SL_OP_AUTH);
	assert_int_equal(h.request_id, 2);
	struct sl_str tok;
	assert_int_equal(sl_proto_decode_auth(body, len, &tok), 0);
	assert_int_equal(tok.len, 12);
	assert_memory_equal(tok.p, "s3cret-token", 12);
	assert_int_equal(sl_proto_decode_auth(body, len - 1, &tok), SLUICE_ERR_PROTOCOL);

	uint8_t *longer = malloc(len + 1);
	memcpy(longer, body, len);
	longer[len] = 0;
	assert_int_equal(sl_proto_decode_auth(longer, len + 1, &tok), SLUICE_ERR_PROTOCOL);
	free(longer);
	sl_buf_finish(&b);
}

static void name_requests(void **state)
{
	const uint8_t ops[] = {SL_OP_DELETE_STREAM, SL_OP_DESCRIBE_STREAM, SL_OP_LIST_SHARDS};
	for (size_t i = 0; i < sizeof(ops); i++) {
		struct sl_buf b;
		sl_buf_init(&b);
		size_t start = request_with_name(&b, ops[i], 77, "orders.v2_eu-west", 17);
		struct sl_frame_header h;
		const uint8_t *body;
		size_t len;
		frame_body(&b, start, &h, &body, &len);
		assert_int_equal(h.opcode, ops[i]);
		struct sl_str name;
		assert_int_equal(sl_proto_decode_name(body, len, &name), 0);
		assert_int_equal(name.len, 17);
		assert_memory_equal(name.p, "orders.v2_eu-west", 17);
		/* Truncated and trailing. */
		for (size_t n = 0; n < len; n++) {
			uint8_t *cut = dup_bytes(body, n);
			assert_int_equal(sl_proto_decode_name(cut, n, &name), SLUICE_ERR_PROTOCOL);
			free(cut);
		}
		assert_int_equal(sl_buf_put_u8(&b, 0), 0);
		assert_int_equal(sl_proto_decode_name(body, len + 1, &name), SLUICE_ERR_PROTOCOL);
		sl_buf_finish(&b);
	}
	/* Well-framed but invalid names. */
	struct sl_buf b;
	sl_buf_init(&b);
	assert_int_equal(sl_proto_put_str8(&b, "a/b", 3), 0);
	struct sl_str name;
	assert_int_equal(sl_proto_decode_name(b.data, b.len, &name), SLUICE_ERR_INVALID_NAME);
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_put_str8(&b, "", 0), 0);
	assert_int_equal(sl_proto_decode_name(b.data, b.len, &name), SLUICE_ERR_INVALID_NAME);
	sl_buf_finish(&b);
}

static void create_stream_round_trip(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	size_t start;
	assert_int_equal(sl_proto_encode_request_head(&b, SL_OP_CREATE_STREAM, 5, &start), 0);
	assert_int_equal(sl_proto_put_str8(&b, "clicks", 6), 0);
	size_t count_at = b.len;
	assert_int_equal(sl_buf_put_u32(&b, 16), 0);
	assert_int_equal(sl_buf_put_u64(&b, 86400000ull * 7), 0);
	sl_proto_finish_frame(&b, start);
	struct sl_frame_header h;
	const uint8_t *body;
	size_t len;
	frame_body(&b, start, &h, &body, &len);
	struct sl_req_create_stream req;
	assert_int_equal(sl_proto_decode_create_stream(body, len, &req), 0);
	assert_int_equal(req.name.len, 6);
	assert_memory_equal(req.name.p, "clicks", 6);
	assert_int_equal(req.shard_count, 16);
	assert_true(req.retention_ms == 86400000ull * 7);

	for (size_t n = 0; n < len; n++) {
		uint8_t *cut = dup_bytes(body, n);
		assert_int_equal(sl_proto_decode_create_stream(cut, n, &req), SLUICE_ERR_PROTOCOL);
		free(cut);
	}
	const uint32_t bad[] = {0, SLUICE_SHARDS_MAX + 1, UINT32_MAX};
	for (size_t i = 0; i < 3; i++) {
		sl_store_u32(b.data + count_at, bad[i]);
		assert_int_equal(sl_proto_decode_create_stream(body, len, &req),
				 SLUICE_ERR_INVALID_ARGUMENT);
	}
	sl_store_u32(b.data + count_at, SLUICE_SHARDS_MAX);
	assert_int_equal(sl_proto_decode_create_stream(body, len, &req), 0);
	assert_int_equal(sl_buf_put_u8(&b, 0), 0);
	assert_int_equal(sl_proto_decode_create_stream(b.data + 12, len + 1, &req),
			 SLUICE_ERR_PROTOCOL);
	sl_buf_finish(&b);
}

static void read_round_trip(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	size_t start;
	assert_int_equal(sl_proto_encode_request_head(&b, SL_OP_READ, 9, &start), 0);
	assert_int_equal(sl_proto_put_str8(&b, "clicks", 6), 0);
	assert_int_equal(sl_buf_put_u32(&b, 3), 0);
	size_t type_at = b.len;
	assert_int_equal(sl_buf_put_u8(&b, SLUICE_POS_AFTER_SEQ), 0);
	assert_int_equal(sl_buf_put_u64(&b, 123456789012ull), 0);
	size_t max_at = b.len;
	assert_int_equal(sl_buf_put_u32(&b, 500), 0);
	assert_int_equal(sl_buf_put_u32(&b, 1 << 20), 0);
	sl_proto_finish_frame(&b, start);
	struct sl_frame_header h;
	const uint8_t *body;
	size_t len;
	frame_body(&b, start, &h, &body, &len);
	struct sl_req_read req;
	assert_int_equal(sl_proto_decode_read(body, len, &req), 0);
	assert_int_equal(req.stream.len, 6);
	assert_int_equal(req.shard_id, 3);
	assert_int_equal(req.position.type, SLUICE_POS_AFTER_SEQ);
	assert_true(req.position.value == 123456789012ull);
	assert_int_equal(req.max_records, 500);
	assert_int_equal(req.max_bytes, 1 << 20);

	for (size_t n = 0; n < len; n++) {
		uint8_t *cut = dup_bytes(body, n);
		assert_int_equal(sl_proto_decode_read(cut, n, &req), SLUICE_ERR_PROTOCOL);
		free(cut);
	}
	for (uint8_t t = SLUICE_POS_TRIM_HORIZON; t <= SLUICE_POS_AT_TIMESTAMP; t++) {
		b.data[type_at] = t;
		assert_int_equal(sl_proto_decode_read(body, len, &req), 0);
		assert_int_equal(req.position.type, t);
	}
	b.data[type_at] = 5;
	assert_int_equal(sl_proto_decode_read(body, len, &req), SLUICE_ERR_INVALID_ARGUMENT);
	b.data[type_at] = 0;
	sl_store_u32(b.data + max_at, 0);
	assert_int_equal(sl_proto_decode_read(body, len, &req), SLUICE_ERR_INVALID_ARGUMENT);
	sl_store_u32(b.data + max_at, SL_PROTO_RECORDS_MAX + 1);
	assert_int_equal(sl_proto_decode_read(body, len, &req), SLUICE_ERR_INVALID_ARGUMENT);
	sl_store_u32(b.data + max_at, SL_PROTO_RECORDS_MAX);
	assert_int_equal(sl_proto_decode_read(body, len, &req), 0);
	sl_store_u32(b.data + max_at + 4, 0);
	assert_int_equal(sl_proto_decode_read(body, len, &req), SLUICE_ERR_INVALID_ARGUMENT);

	/* The optional trailing wait_ms (long poll): absent is 0, bounded, never partial. */
	sl_store_u32(b.data + max_at + 4, 1 << 20);
	assert_int_equal(sl_proto_decode_read(body, len, &req), 0);
	assert_int_equal(req.wait_ms, 0);
	uint8_t *longer = malloc(len + 4);
	assert_non_null(longer);
	memcpy(longer, body, len);
	sl_store_u32(longer + len, 2500);
	assert_int_equal(sl_proto_decode_read(longer, len + 4, &req), 0);
	assert_int_equal(req.wait_ms, 2500);
	assert_int_equal(req.max_bytes, 1 << 20);
	sl_store_u32(longer + len, SL_PROTO_READ_WAIT_MS_MAX);
	assert_int_equal(sl_proto_decode_read(longer, len + 4, &req), 0);
	sl_store_u32(longer + len, SL_PROTO_READ_WAIT_MS_MAX + 1);
	assert_int_equal(sl_proto_decode_read(longer, len + 4, &req), SLUICE_ERR_INVALID_ARGUMENT);
	for (size_t extra = 1; extra < 4; extra++)
		assert_int_equal(sl_proto_decode_read(longer, len + extra, &req),
				 SLUICE_ERR_PROTOCOL);
	free(longer);
	sl_buf_finish(&b);
}

static void reshard_requests(void **state)
{
	(void)state;
	struct sl_buf b;
	sl_buf_init(&b);
	/* SPLIT: name, shard, 16-byte hash key */
	assert_int_equal(sl_proto_put_str8(&b, "orders", 6), 0);
	assert_int_equal(sl_buf_put_u32(&b, 7), 0);
	uint8_t key[16];
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)(0xA0 + i);
	assert_int_equal(sl_buf_put(&b, key, 16), 0);
	struct sl_req_reshard q;
	assert_int_equal(sl_proto_decode_reshard(SL_OP_STREAM_SPLIT, b.data, b.len, &q), 0);
	assert_int_equal(q.stream.len, 6);
	assert_int_equal(q.shard_id, 7);
	assert_memory_equal(q.start_hash.be, key, 16);
	for (size_t n = 0; n < b.len; n++)
		assert_int_equal(sl_proto_decode_reshard(SL_OP_STREAM_SPLIT, b.data, n, &q),
				 SLUICE_ERR_PROTOCOL);
	/* the same 27 bytes are a MERGE with trailing bytes */
	assert_int_equal(sl_proto_decode_reshard(SL_OP_STREAM_MERGE, b.data, b.len, &q),
			 SLUICE_ERR_PROTOCOL);
	sl_buf_reset(&b);
	/* MERGE: name, shard, adjacent */
	assert_int_equal(sl_proto_put_str8(&b, "orders", 6), 0);
	assert_int_equal(sl_buf_put_u32(&b, 3), 0);
	assert_int_equal(sl_buf_put_u32(&b, 4), 0);
	assert_int_equal(sl_proto_decode_reshard(SL_OP_STREAM_MERGE, b.data, b.len, &q), 0);
	assert_true(q.shard_id == 3 && q.adjacent_id == 4);
	sl_buf_reset(&b);
	/* SCALE: name, target; a bad name is invalid_name, not protocol */
	assert_int_equal(sl_proto_put_str8(&b, "or/ders", 7), 0);
	assert_int_equal(sl_buf_put_u32(&b, 12), 0);
	assert_int_equal(sl_proto_decode_reshard(SL_OP_STREAM_SCALE, b.data, b.len, &q),
			 SLUICE_ERR_INVALID_NAME);
	b.data[3] = '_';
	assert_int_equal(sl_proto_decode_reshard(SL_OP_STREAM_SCALE, b.data, b.len, &q), 0);
	assert_int_equal(q.target, 12);
	assert_int_equal(sl_proto_decode_reshard(SL_OP_READ, b.data, b.len, &q),
			 SLUICE_ERR_BAD_OPCODE);
	assert_true(sl_proto_opcode_known(SL_OP_STREAM_SPLIT));
	assert_true(sl_proto_opcode_known(SL_OP_STREAM_MERGE));
	assert_true(sl_proto_opcode_known(SL_OP_STREAM_SCALE));
	sl_buf_finish(&b);
}

/* A PRODUCE frame with three records: plain, explicit hash key + empty data, multibyte key. */
static size_t build_produce(struct sl_buf *b, const struct sluice_hash_key *hk)
{
	size_t start;
	assert_int_equal(sl_proto_encode_request_head(b, SL_OP_PRODUCE, 42, &start), 0);
	put_produce_head(b, "clicks", 3);
	put_rec(b, "user-1", 6, "hello", 5, NULL);
	put_rec(b, "k", 1, "", 0, hk);
	put_rec(b, "\xc3\xa9t\xc3\xa9", 6, "\x00\x01\x02", 3, NULL);
	sl_proto_finish_frame(b, start);
	return start;
}

static void produce_round_trip(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	struct sluice_hash_key hk = hash_of(0xf0);
	size_t start = build_produce(&b, &hk);
	struct sl_frame_header h;
	const uint8_t *body;
	size_t len;
	frame_body(&b, start, &h, &body, &len);
	assert_int_equal(h.opcode, SL_OP_PRODUCE);
	assert_int_equal(h.request_id, 42);

	struct sl_req_produce req;
	assert_int_equal(sl_proto_decode_produce(body, len, &req), 0);
	assert_int_equal(req.stream.len, 6);
	assert_memory_equal(req.stream.p, "clicks", 6);
	assert_int_equal(req.count, 3);
	struct sl_record_view v;
	assert_int_equal(sl_proto_produce_next(&req, SLUICE_RECORD_BYTES_DEFAULT, &v), 1);
	assert_int_equal(v.key_len, 6);
	assert_memory_equal(v.key, "user-1", 6);
	assert_false(v.has_hash_key);
	assert_int_equal(v.data_len, 5);
	assert_memory_equal(v.data, "hello", 5);
	assert_int_equal(sl_proto_produce_next(&req, SLUICE_RECORD_BYTES_DEFAULT, &v), 1);
	assert_true(v.has_hash_key);
	assert_memory_equal(v.hash_key.be, hk.be, 16);
	assert_int_equal(v.data_len, 0);
	assert_int_equal(sl_proto_produce_next(&req, SLUICE_RECORD_BYTES_DEFAULT, &v), 1);
	assert_int_equal(v.key_len, 6);
	assert_memory_equal(v.key, "\xc3\xa9t\xc3\xa9", 6);
	assert_memory_equal(v.data, "\x00\x01\x02", 3);
	assert_int_equal(req.next, 3);
	assert_int_equal(sl_proto_produce_next(&req, SLUICE_RECORD_BYTES_DEFAULT, &v), 0);
	assert_int_equal(sl_proto_produce_next(&req, SLUICE_RECORD_BYTES_DEFAULT, &v), 0);
	sl_buf_finish(&b);
}

/* Every prefix of a PRODUCE frame: never an over-read (exact-size copies under ASan), always an
 * error or -EAGAIN, never a full decode. */
static void produce_truncated_everywhere(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	struct sluice_hash_key hk = hash_of(1);
	build_produce(&b, &hk);
	const size_t body_len = b.len - SL_FRAME_HEADER_BYTES;
	assert_int_equal(produce_walk(b.data + 12, body_len, SLUICE_RECORD_BYTES_DEFAULT), 3);

	for (size_t n = 0; n < b.len; n++) {
		uint8_t *cut = dup_bytes(b.data, n);
		struct sl_frame_header h;
		int r = sl_proto_parse_header(cut, n, &h);
		if (n < SL_FRAME_HEADER_BYTES) {
			assert_int_equal(r, -EAGAIN);
		} else {
			assert_int_equal(r, 0);
			assert_true(4 + (size_t)h.length > n); /* the caller waits for more */
		}
		free(cut);

		/* A body cut short, as a broken length field would deliver it. */
		if (n < body_len) {
			cut = dup_bytes(b.data + 12, n);
			assert_int_equal(produce_walk(cut, n, SLUICE_RECORD_BYTES_DEFAULT),
					 SLUICE_ERR_PROTOCOL);
			free(cut);
		}
	}
	sl_buf_finish(&b);
}

static void produce_trailing_and_counts(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	put_produce_head(&b, "s", 1);
	put_rec(&b, "k", 1, "d", 1, NULL);
	assert_int_equal(produce_walk(b.data, b.len, 100), 1);
	assert_int_equal(sl_buf_put_u8(&b, 0), 0);
	assert_int_equal(produce_walk(b.data, b.len, 100), SLUICE_ERR_PROTOCOL);

	/* Once malformed, always malformed. */
	struct sl_req_produce req;
	struct sl_record_view v;
	assert_int_equal(sl_proto_decode_produce(b.data, b.len, &req), 0);
	assert_int_equal(sl_proto_produce_next(&req, 100, &v), 1);
	assert_int_equal(sl_proto_produce_next(&req, 100, &v), SLUICE_ERR_PROTOCOL);
	assert_int_equal(sl_proto_produce_next(&req, 100, &v), SLUICE_ERR_PROTOCOL);

	/* count > SL_PROTO_RECORDS_MAX, even with enough bytes behind it. */
	sl_buf_reset(&b);
	put_produce_head(&b, "s", SL_PROTO_RECORDS_MAX + 1);
	for (uint32_t i = 0; i < SL_PROTO_RECORDS_MAX + 1; i++)
		put_rec(&b, "k", 1, "", 0, NULL);
	assert_int_equal(sl_proto_decode_produce(b.data, b.len, &req), SLUICE_ERR_PROTOCOL);
	/* Exactly the maximum is fine. */
	sl_store_u32(b.data + 2, SL_PROTO_RECORDS_MAX);
	b.len -= 8;
	assert_int_equal(produce_walk(b.data, b.len, 100), (int)SL_PROTO_RECORDS_MAX);

	/* A count that the bytes cannot hold is rejected before iteration. */
	sl_buf_reset(&b);
	put_produce_head(&b, "s", 2);
	put_rec(&b, "k", 1, "", 0, NULL);
	assert_int_equal(sl_proto_decode_produce(b.data, b.len, &req), SLUICE_ERR_PROTOCOL);

	/* Zero records: well-framed, invalid. */
	sl_buf_reset(&b);
	put_produce_head(&b, "s", 0);
	assert_int_equal(sl_proto_decode_produce(b.data, b.len, &req), SLUICE_ERR_INVALID_ARGUMENT);

	/* Invalid stream name. */
	sl_buf_reset(&b);
	put_produce_head(&b, "no spaces", 1);
	put_rec(&b, "k", 1, "", 0, NULL);
	assert_int_equal(sl_proto_decode_produce(b.data, b.len, &req), SLUICE_ERR_INVALID_NAME);

	/* Unknown record flag bits reject the whole request. */
	sl_buf_reset(&b);
	put_produce_head(&b, "s", 2);
	size_t rec_at = b.len;
	put_rec(&b, "k", 1, "", 0, NULL);
	put_rec(&b, "k", 1, "", 0, NULL);
	for (int bit = 1; bit < 8; bit++) {
		b.data[rec_at + 3] = (uint8_t)(1u << bit);
		assert_int_equal(sl_proto_decode_produce(b.data, b.len, &req), 0);
		assert_int_equal(sl_proto_produce_next(&req, 100, &v), SLUICE_ERR_PROTOCOL);
		assert_int_equal(sl_proto_produce_next(&req, 100, &v), SLUICE_ERR_PROTOCOL);
	}
	sl_buf_finish(&b);
}

static void produce_bad_records_continue(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	static uint8_t big[100];
	memset(big, 'x', sizeof(big));
	put_produce_head(&b, "s", 5);
	put_rec(&b, "a", 1, "1", 1, NULL);
	put_rec(&b, "b", 1, big, sizeof(big), NULL);
	put_rec(&b, "\xed\xa0\x80", 3, "2", 1, NULL); /* a surrogate */
	put_rec(&b, "", 0, "3", 1, NULL);
	put_rec(&b, "c", 1, "4", 1, NULL);

	struct sl_req_produce req;
	struct sl_record_view v;
	assert_int_equal(sl_proto_decode_produce(b.data, b.len, &req), 0);
	assert_int_equal(sl_proto_produce_next(&req, 50, &v), 1);
	assert_memory_equal(v.data, "1", 1);
	assert_int_equal(sl_proto_produce_next(&req, 50, &v), SLUICE_ERR_RECORD_TOO_LARGE);
	assert_int_equal(v.data_len, 100); /* still filled: the server reports it per record */
	assert_memory_equal(v.key, "b", 1);
	assert_int_equal(sl_proto_produce_next(&req, 50, &v), SLUICE_ERR_INVALID_KEY);
	assert_memory_equal(v.data, "2", 1);
	assert_int_equal(sl_proto_produce_next(&req, 50, &v), SLUICE_ERR_INVALID_KEY);
	assert_int_equal(v.key_len, 0);
	assert_int_equal(sl_proto_produce_next(&req, 50, &v), 1);
	assert_memory_equal(v.key, "c", 1);
	assert_memory_equal(v.data, "4", 1);
	assert_int_equal(sl_proto_produce_next(&req, 50, &v), 0);

	/* The limit is inclusive. */
	assert_int_equal(produce_walk(b.data, b.len, 100), SLUICE_ERR_INVALID_KEY);
	sl_buf_reset(&b);
	put_produce_head(&b, "s", 1);
	put_rec(&b, "b", 1, big, sizeof(big), NULL);
	assert_int_equal(produce_walk(b.data, b.len, 100), 1);
	assert_int_equal(produce_walk(b.data, b.len, 99), SLUICE_ERR_RECORD_TOO_LARGE);

	/* A too-large record whose data is not all there is truncation, not too-large. */
	b.len -= 1;
	sl_store_u32(b.data, sl_load_u32(b.data)); /* no-op: keep the head */
	assert_int_equal(produce_walk(b.data, b.len, 10), SLUICE_ERR_PROTOCOL);
	sl_buf_finish(&b);
}

/* ---- names and keys ---- */

static void names(void **state)
{
	char n128[129], n129[130];
	memset(n128, 'a', 128);
	memset(n129, 'a', 129);
	assert_true(sl_proto_name_valid((const uint8_t *)n128, 128));
	assert_false(sl_proto_name_valid((const uint8_t *)n129, 129));
	assert_false(sl_proto_name_valid((const uint8_t *)"", 0));
	const char *good[] = {"a", "Z", "0", "_", ".", "-", "orders-2026.v1_EU", "..", "A-z.0_9"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(sl_proto_name_valid((const uint8_t *)good[i], strlen(good[i])));
	const char *bad[] = {"a b", "a/b", "a\\b", "a:b", "é", "a\tb", "a+b",
			     "a@b", "a`",  "{",	   "[",	  "@", "/",    "a~"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(sl_proto_name_valid((const uint8_t *)bad[i], strlen(bad[i])));
	/* Every byte outside the set, alone. */
	for (int c = 0; c < 256; c++) {
		uint8_t ch = (uint8_t)c;
		bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
		assert_int_equal(sl_proto_name_valid(&ch, 1), want);
	}
}

static void keys_utf8(void **state)
{
	const struct {
		const char *s;
		size_t len;
		bool valid;
	} cases[] = {
	    {"a", 1, true},
	    {"\x00", 1, true}, /* U+0000 is well-formed */
	    {"\xc3\xa9", 2, true},
	    {"\xe2\x82\xac", 3, true},
	    {"\xf0\x9f\x98\x80", 4, true},
	    {"\xf4\x8f\xbf\xbf", 4, true},    /* U+10FFFF */
	    {"\xed\x9f\xbf", 3, true},	      /* U+D7FF */
	    {"\xee\x80\x80", 3, true},	      /* U+E000 */
	    {"\xef\xbf\xbf", 3, true},	      /* U+FFFF */
	    {"\xc2\x80", 2, true},	      /* U+0080, the smallest 2-byte */
	    {"\xe0\xa0\x80", 3, true},	      /* U+0800, the smallest 3-byte */
	    {"\xf0\x90\x80\x80", 4, true},    /* U+10000, the smallest 4-byte */
	    {"abcdefg\xc3\xa9xyz", 12, true}, /* multibyte across the 8-byte fast path */
	    {"", 0, false},
	    {"\xc0\x80", 2, false},	    /* overlong NUL */
	    {"\xc1\xbf", 2, false},	    /* overlong */
	    {"\xe0\x80\x80", 3, false},	    /* overlong */
	    {"\xe0\x9f\xbf", 3, false},	    /* overlong U+07FF */
	    {"\xf0\x80\x80\x80", 4, false}, /* overlong */
	    {"\xf0\x8f\xbf\xbf", 4, false}, /* overlong U+FFFF */
	    {"\xed\xa0\x80", 3, false},	    /* U+D800 */
	    {"\xed\xbf\xbf", 3, false},	    /* U+DFFF */
	    {"\xf4\x90\x80\x80", 4, false}, /* U+110000 */
	    {"\xf5\x80\x80\x80", 4, false},
	    {"\xf8\x88\x80\x80\x80", 5, false},
	    {"\xff", 1, false},
	    {"\xfe", 1, false},
	    {"\x80", 1, false}, /* lone continuation */
	    {"a\xbf", 2, false},
	    {"\xc3", 1, false}, /* truncated */
	    {"\xe2\x82", 2, false},
	    {"\xf0\x9f\x98", 3, false},
	    {"\xc3\x28", 2, false}, /* bad continuation */
	    {"\xe2\x28\xa1", 3, false},
	    {"\xe2\x82\x28", 3, false},
	    {"\xf0\x9f\x98\x28", 4, false},
	    {"abcdefgh\xc3", 9, false}, /* truncated after the fast path */
	    {"abcdefg\xc3", 8, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *k = dup_bytes((const uint8_t *)cases[i].s, cases[i].len);
		if (sl_proto_key_valid(k, cases[i].len) != cases[i].valid)
			fail_msg("case %zu: want %d", i, cases[i].valid);
		free(k);
	}
	uint8_t k[257];
	memset(k, 'k', sizeof(k));
	assert_true(sl_proto_key_valid(k, 256));
	assert_false(sl_proto_key_valid(k, 257));
	/* 256 bytes of 2-byte characters is 128 characters: the limit counts bytes. */
	for (int i = 0; i < 256; i += 2) {
		k[i] = 0xc3;
		k[i + 1] = 0xa9;
	}
	assert_true(sl_proto_key_valid(k, 256));
	assert_false(sl_proto_key_valid(k, 255)); /* ends inside a character */
}

/* ---- responses ---- */

static void error_response(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	assert_int_equal(sl_proto_encode_error(&b, SL_OP_CREATE_STREAM, 31,
					       SLUICE_ERR_STREAM_EXISTS, "stream clicks exists"),
			 0);
	struct sl_frame_header h;
	const uint8_t *body;
	size_t len;
	frame_body(&b, 0, &h, &body, &len);
	assert_int_equal(h.flags, SL_FRAME_RESPONSE);
	assert_int_equal(h.opcode, SL_OP_CREATE_STREAM);
	assert_int_equal(h.request_id, 31);
	int32_t status;
	struct sl_str msg;
	struct sl_reader rest;
	assert_int_equal(sl_proto_decode_response_status(body, len, &status, &msg, &rest), 0);
	assert_int_equal(status, SLUICE_ERR_STREAM_EXISTS);
	assert_int_equal(msg.len, 20);
	assert_memory_equal(msg.p, "stream clicks exists", 20);
	assert_int_equal(sl_reader_left(&rest), 0);
	for (size_t n = 0; n < len; n++) {
		uint8_t *cut = dup_bytes(body, n);
		assert_int_equal(sl_proto_decode_response_status(cut, n, &status, &msg, &rest),
				 SLUICE_ERR_PROTOCOL);
		free(cut);
	}
	/* An error carries nothing after its message. */
	assert_int_equal(sl_buf_put_u8(&b, 0), 0);
	assert_int_equal(sl_proto_decode_response_status(body, len + 1, &status, &msg, &rest),
			 SLUICE_ERR_PROTOCOL);

	/* NULL message; long messages truncated, never inside a UTF-8 character. */
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_encode_error(&b, SL_OP_PING, 1, -ENOSPC, NULL), 0);
	frame_body(&b, 0, &h, &body, &len);
	assert_int_equal(sl_proto_decode_response_status(body, len, &status, &msg, &rest), 0);
	assert_int_equal(status, -ENOSPC);
	assert_int_equal(msg.len, 0);

	char long_msg[2000];
	memset(long_msg, 'm', sizeof(long_msg));
	long_msg[sizeof(long_msg) - 1] = 0;
	long_msg[SL_PROTO_MESSAGE_MAX - 1] = (char)0xe2; /* a 3-byte char across the limit */
	long_msg[SL_PROTO_MESSAGE_MAX] = (char)0x82;
	long_msg[SL_PROTO_MESSAGE_MAX + 1] = (char)0xac;
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_encode_error(&b, SL_OP_READ, 2, SLUICE_ERR_INTERNAL, long_msg),
			 0);
	frame_body(&b, 0, &h, &body, &len);
	assert_int_equal(sl_proto_decode_response_status(body, len, &status, &msg, &rest), 0);
	assert_int_equal(msg.len, SL_PROTO_MESSAGE_MAX - 1);
	long_msg[SL_PROTO_MESSAGE_MAX - 1] = 'm';
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_encode_error(&b, SL_OP_READ, 2, SLUICE_ERR_INTERNAL, long_msg),
			 0);
	frame_body(&b, 0, &h, &body, &len);
	assert_int_equal(sl_proto_decode_response_status(body, len, &status, &msg, &rest), 0);
	assert_int_equal(msg.len, SL_PROTO_MESSAGE_MAX - 1); /* still backs off over 82 ac */

	memset(long_msg, 'm', sizeof(long_msg) - 1);
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_encode_error(&b, SL_OP_READ, 2, SLUICE_ERR_INTERNAL, long_msg),
			 0);
	frame_body(&b, 0, &h, &body, &len);
	assert_int_equal(sl_proto_decode_response_status(body, len, &status, &msg, &rest), 0);
	assert_int_equal(msg.len, SL_PROTO_MESSAGE_MAX);

	/* A peer's message over the limit, a positive status, a success status alone. */
	sl_buf_reset(&b);
	assert_int_equal(sl_buf_put_u32(&b, (uint32_t)SLUICE_ERR_INTERNAL), 0);
	assert_int_equal(sl_proto_put_str16(&b, long_msg, SL_PROTO_MESSAGE_MAX + 1), 0);
	assert_int_equal(sl_proto_decode_response_status(b.data, b.len, &status, &msg, &rest),
			 SLUICE_ERR_PROTOCOL);
	sl_buf_reset(&b);
	assert_int_equal(sl_buf_put_u32(&b, 1), 0);
	assert_int_equal(sl_proto_decode_response_status(b.data, b.len, &status, &msg, &rest),
			 SLUICE_ERR_PROTOCOL);
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_encode_error(&b, SL_OP_READ, 2, 0, "ok?"), -EINVAL);
	assert_int_equal(b.len, 0);
	sl_buf_finish(&b);
}

static void empty_responses(void **state)
{
	const uint8_t ops[] = {SL_OP_PING, SL_OP_AUTH, SL_OP_CREATE_STREAM, SL_OP_DELETE_STREAM};
	for (size_t i = 0; i < sizeof(ops); i++) {
		struct sl_buf b;
		sl_buf_init(&b);
		size_t start;
		assert_int_equal(sl_proto_encode_response_head(&b, ops[i], 1000 + i, 0, &start), 0);
		sl_proto_finish_frame(&b, start);
		struct sl_frame_header h;
		const uint8_t *body;
		size_t len;
		frame_body(&b, start, &h, &body, &len);
		assert_int_equal(h.length, 12);
		assert_int_equal(h.flags, SL_FRAME_RESPONSE);
		assert_int_equal(h.request_id, 1000 + i);
		int32_t status = -1;
		struct sl_str msg;
		struct sl_reader rest;
		assert_int_equal(sl_proto_decode_response_status(body, len, &status, &msg, &rest),
				 0);
		assert_int_equal(status, 0);
		assert_int_equal(sl_reader_left(&rest), 0);
		sl_buf_finish(&b);
	}
}

static struct sl_shard_desc sample_shard(uint32_t id)
{
	struct sl_shard_desc d = {
	    .shard_id = id,
	    .parent_id = id ? (int32_t)id - 1 : -1,
	    .adjacent_parent_id = -1,
	    .start_seq = 100 + id,
	    .end_seq = 0,
	    .next_seq = 0xfedcba9876543210ull,
	};
	memset(d.start_hash.be, 0, 16);
	memset(d.end_hash.be, 0xff, 16);
	d.start_hash.be[0] = (uint8_t)id;
	return d;
}

static void assert_shard_equal(const struct sl_shard_desc *a, const struct sl_shard_desc *b)
{
	/* Field by field: the struct has padding. */
	assert_int_equal(a->shard_id, b->shard_id);
	assert_int_equal(a->parent_id, b->parent_id);
	assert_int_equal(a->adjacent_parent_id, b->adjacent_parent_id);
	assert_memory_equal(a->start_hash.be, b->start_hash.be, 16);
	assert_memory_equal(a->end_hash.be, b->end_hash.be, 16);
	assert_true(a->start_seq == b->start_seq);
	assert_true(a->end_seq == b->end_seq);
	assert_true(a->next_seq == b->next_seq);
}

static void shard_desc_round_trip(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	struct sl_shard_desc d = sample_shard(7), got;
	d.adjacent_parent_id = 5;
	d.end_seq = 999;
	assert_int_equal(sl_proto_put_shard_desc(&b, &d), 0);
	assert_int_equal(b.len, 68);
	struct sl_reader r;
	sl_reader_init(&r, b.data, b.len);
	assert_int_equal(sl_proto_get_shard_desc(&r, &got), 0);
	assert_int_equal(sl_reader_left(&r), 0);
	assert_shard_equal(&got, &d);
	for (size_t n = 0; n < b.len; n++) {
		uint8_t *cut = dup_bytes(b.data, n);
		sl_reader_init(&r, cut, n);
		assert_int_equal(sl_proto_get_shard_desc(&r, &got), SLUICE_ERR_PROTOCOL);
		assert_false(r.ok);
		free(cut);
	}
	/* start > end, parent ids under -1. */
	d.start_hash.be[15] = 1;
	memset(d.end_hash.be, 0, 16);
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_put_shard_desc(&b, &d), 0);
	sl_reader_init(&r, b.data, b.len);
	assert_int_equal(sl_proto_get_shard_desc(&r, &got), SLUICE_ERR_PROTOCOL);
	d = sample_shard(1);
	d.parent_id = -2;
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_put_shard_desc(&b, &d), 0);
	sl_reader_init(&r, b.data, b.len);
	assert_int_equal(sl_proto_get_shard_desc(&r, &got), SLUICE_ERR_PROTOCOL);
	sl_buf_finish(&b);
}

/* Shared by LIST_STREAMS, DESCRIBE_STREAM and LIST_SHARDS: decode a success response. */
static struct sl_reader ok_response(const struct sl_buf *b, uint8_t op)
{
	struct sl_frame_header h;
	const uint8_t *body;
	size_t len;
	frame_body(b, 0, &h, &body, &len);
	assert_int_equal(h.opcode, op);
	assert_int_equal(h.flags, SL_FRAME_RESPONSE);
	int32_t status;
	struct sl_str msg;
	struct sl_reader rest;
	assert_int_equal(sl_proto_decode_response_status(body, len, &status, &msg, &rest), 0);
	assert_int_equal(status, 0);
	return rest;
}

static void list_and_describe_responses(void **state)
{
	const char *names[] = {"a", "clicks", "orders.v2"};
	struct sl_buf b;
	sl_buf_init(&b);
	size_t start;

	/* LIST_STREAMS -> u32 n, n x str8 */
	assert_int_equal(sl_proto_encode_response_head(&b, SL_OP_LIST_STREAMS, 1, 0, &start), 0);
	assert_int_equal(sl_buf_put_u32(&b, 3), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sl_proto_put_str8(&b, names[i], strlen(names[i])), 0);
	sl_proto_finish_frame(&b, start);
	struct sl_reader r = ok_response(&b, SL_OP_LIST_STREAMS);
	uint32_t n;
	assert_true(sl_reader_u32(&r, &n));
	assert_int_equal(n, 3);
	for (int i = 0; i < 3; i++) {
		struct sl_str s;
		assert_int_equal(sl_proto_get_str8(&r, &s), 0);
		assert_int_equal(s.len, strlen(names[i]));
		assert_memory_equal(s.p, names[i], s.len);
	}
	assert_int_equal(sl_reader_left(&r), 0);
	struct sl_str s;
	assert_int_equal(sl_proto_get_str8(&r, &s), SLUICE_ERR_PROTOCOL);

	/* DESCRIBE_STREAM -> stream_desc (head + shard_descs) */
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_encode_response_head(&b, SL_OP_DESCRIBE_STREAM, 2, 0, &start), 0);
	struct sl_stream_desc sd = {
	    .name = {.p = "clicks", .len = 6},
	    .retention_ms = 86400000,
	    .created_ms = 1790000000000,
	    .status = SL_PROTO_STREAM_ACTIVE,
	    .shard_count = 2,
	};
	assert_int_equal(sl_proto_put_stream_desc(&b, &sd), 0);
	struct sl_shard_desc shards[2] = {sample_shard(0), sample_shard(1)};
	for (int i = 0; i < 2; i++)
		assert_int_equal(sl_proto_put_shard_desc(&b, &shards[i]), 0);
	sl_proto_finish_frame(&b, start);
	r = ok_response(&b, SL_OP_DESCRIBE_STREAM);
	struct sl_stream_desc gsd;
	assert_int_equal(sl_proto_get_stream_desc(&r, &gsd), 0);
	assert_int_equal(gsd.name.len, 6);
	assert_memory_equal(gsd.name.p, "clicks", 6);
	assert_true(gsd.retention_ms == sd.retention_ms);
	assert_true(gsd.created_ms == sd.created_ms);
	assert_int_equal(gsd.status, SL_PROTO_STREAM_ACTIVE);
	assert_int_equal(gsd.shard_count, 2);
	for (int i = 0; i < 2; i++) {
		struct sl_shard_desc got;
		assert_int_equal(sl_proto_get_shard_desc(&r, &got), 0);
		assert_shard_equal(&got, &shards[i]);
	}
	assert_int_equal(sl_reader_left(&r), 0);
	/* A stream_desc with an invalid name is a broken peer. */
	sl_buf_reset(&b);
	sd.name.p = "a b";
	sd.name.len = 3;
	assert_int_equal(sl_proto_put_stream_desc(&b, &sd), 0);
	sl_reader_init(&r, b.data, b.len);
	assert_int_equal(sl_proto_get_stream_desc(&r, &gsd), SLUICE_ERR_PROTOCOL);

	/* LIST_SHARDS -> u32 n, n x shard_desc */
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_encode_response_head(&b, SL_OP_LIST_SHARDS, 3, 0, &start), 0);
	assert_int_equal(sl_buf_put_u32(&b, 2), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(sl_proto_put_shard_desc(&b, &shards[i]), 0);
	sl_proto_finish_frame(&b, start);
	r = ok_response(&b, SL_OP_LIST_SHARDS);
	assert_true(sl_reader_u32(&r, &n));
	assert_int_equal(n, 2);
	for (uint32_t i = 0; i < n; i++) {
		struct sl_shard_desc got;
		assert_int_equal(sl_proto_get_shard_desc(&r, &got), 0);
		assert_shard_equal(&got, &shards[i]);
	}
	assert_int_equal(sl_reader_left(&r), 0);
	sl_buf_finish(&b);
}

static void produce_response(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	size_t start;
	const int32_t st[3] = {0, SLUICE_ERR_RECORD_TOO_LARGE, 0};
	assert_int_equal(sl_proto_encode_response_head(&b, SL_OP_PRODUCE, 42, 0, &start), 0);
	assert_int_equal(sl_buf_put_u32(&b, 3), 0);
	for (uint32_t i = 0; i < 3; i++) {
		assert_int_equal(sl_buf_put_u32(&b, (uint32_t)st[i]), 0);
		assert_int_equal(sl_buf_put_u32(&b, i), 0);
		assert_int_equal(sl_buf_put_u64(&b, st[i] ? 0 : 1000 + i), 0);
	}
	sl_proto_finish_frame(&b, start);
	struct sl_reader r = ok_response(&b, SL_OP_PRODUCE);
	uint32_t n, shard, status;
	uint64_t seq;
	assert_true(sl_reader_u32(&r, &n));
	assert_int_equal(n, 3);
	for (uint32_t i = 0; i < n; i++) {
		assert_true(sl_reader_u32(&r, &status));
		assert_true(sl_reader_u32(&r, &shard));
		assert_true(sl_reader_u64(&r, &seq));
		assert_int_equal((int32_t)status, st[i]);
		assert_int_equal(shard, i);
		assert_true(seq == (st[i] ? 0 : 1000 + i));
	}
	assert_int_equal(sl_reader_left(&r), 0);
	sl_buf_finish(&b);
}

static void read_response(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	size_t start;
	struct sluice_hash_key hk = hash_of(0x80);
	const struct sluice_record recs[3] = {
	    {.seq = 1,
	     .ts_ms = 1790000000001,
	     .key = "k1",
	     .key_len = 2,
	     .data = (const uint8_t *)"d1",
	     .data_len = 2},
	    {.seq = 2,
	     .ts_ms = -5,
	     .key = "\xe2\x82\xac",
	     .key_len = 3,
	     .has_hash_key = 1,
	     .hash_key = hk,
	     .data = NULL,
	     .data_len = 0},
	    {.seq = UINT64_MAX,
	     .ts_ms = INT64_MAX,
	     .key = "k",
	     .key_len = 1,
	     .data = (const uint8_t *)"xyz",
	     .data_len = 3},
	};
	assert_int_equal(sl_proto_encode_response_head(&b, SL_OP_READ, 8, 0, &start), 0);
	assert_int_equal(sl_buf_put_u32(&b, 4), 0);    /* shard_id */
	assert_int_equal(sl_buf_put_u64(&b, 3), 0);    /* next_seq */
	assert_int_equal(sl_buf_put_u64(&b, 10), 0);   /* tip_seq */
	assert_int_equal(sl_buf_put_u64(&b, 1500), 0); /* millis_behind */
	assert_int_equal(sl_buf_put_u32(&b, 3), 0);
	size_t recs_at = b.len;
	for (int i = 0; i < 3; i++)
		assert_int_equal(sl_proto_put_record_out(&b, &recs[i]), 0);
	sl_proto_finish_frame(&b, start);

	struct sl_reader r = ok_response(&b, SL_OP_READ);
	uint32_t shard = 0, n = 0;
	uint64_t next = 0, tip = 0, behind = 0;
	assert_true(sl_reader_u32(&r, &shard) && sl_reader_u64(&r, &next) &&
		    sl_reader_u64(&r, &tip) && sl_reader_u64(&r, &behind) && sl_reader_u32(&r, &n));
	assert_int_equal(shard, 4);
	assert_int_equal(next, 3);
	assert_int_equal(tip, 10);
	assert_int_equal(behind, 1500);
	assert_int_equal(n, 3);
	for (uint32_t i = 0; i < n; i++) {
		struct sluice_record got;
		assert_int_equal(sl_proto_get_record_out(&r, &got), 0);
		assert_true(got.seq == recs[i].seq);
		assert_true(got.ts_ms == recs[i].ts_ms);
		assert_int_equal(got.key_len, recs[i].key_len);
		assert_memory_equal(got.key, recs[i].key, got.key_len);
		assert_int_equal(got.has_hash_key, recs[i].has_hash_key);
		if (got.has_hash_key)
			assert_memory_equal(got.hash_key.be, hk.be, 16);
		assert_int_equal(got.data_len, recs[i].data_len);
		if (got.data_len)
			assert_memory_equal(got.data, recs[i].data, got.data_len);
	}
	assert_int_equal(sl_reader_left(&r), 0);

	/* Each record_out cut anywhere fails without over-reading. */
	size_t all = b.len - recs_at;
	for (size_t cut_len = 0; cut_len < all; cut_len++) {
		uint8_t *cut = dup_bytes(b.data + recs_at, cut_len);
		struct sl_reader cr;
		sl_reader_init(&cr, cut, cut_len);
		int res = 0;
		for (int i = 0; i < 3 && res == 0; i++) {
			struct sluice_record got;
			res = sl_proto_get_record_out(&cr, &got);
		}
		assert_int_equal(res, SLUICE_ERR_PROTOCOL);
		free(cut);
	}
	/* Unknown flag bits and invalid keys from a server are protocol errors. */
	b.data[recs_at + 8 + 8 + 2 + 2] = 0x02;
	struct sl_reader cr;
	sl_reader_init(&cr, b.data + recs_at, all);
	struct sluice_record got;
	assert_int_equal(sl_proto_get_record_out(&cr, &got), SLUICE_ERR_PROTOCOL);
	b.data[recs_at + 8 + 8 + 2 + 2] = 0;
	b.data[recs_at + 8 + 8 + 2] = 0xff;
	sl_reader_init(&cr, b.data + recs_at, all);
	assert_int_equal(sl_proto_get_record_out(&cr, &got), SLUICE_ERR_PROTOCOL);
	sl_buf_finish(&b);
}

static void encoders_atomic(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	char s[70000];
	memset(s, 'x', sizeof(s));
	assert_int_equal(sl_proto_put_str8(&b, s, 255), 0);
	assert_int_equal(b.len, 256);
	assert_int_equal(sl_proto_put_str8(&b, s, 256), -EINVAL);
	assert_int_equal(sl_proto_put_str16(&b, s, 65536), -EINVAL);
	assert_int_equal(b.len, 256);
	struct sl_stream_desc sd = {.name = {.p = s, .len = 256}};
	assert_int_equal(sl_proto_put_stream_desc(&b, &sd), -EINVAL);
	assert_int_equal(b.len, 256);
	sl_buf_finish(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(header_parse),
	    cmocka_unit_test(ping_auth_round_trip),
	    cmocka_unit_test(name_requests),
	    cmocka_unit_test(create_stream_round_trip),
	    cmocka_unit_test(read_round_trip),
	    cmocka_unit_test(produce_round_trip),
	    cmocka_unit_test(produce_truncated_everywhere),
	    cmocka_unit_test(produce_trailing_and_counts),
	    cmocka_unit_test(produce_bad_records_continue),
	    cmocka_unit_test(names),
	    cmocka_unit_test(keys_utf8),
	    cmocka_unit_test(error_response),
	    cmocka_unit_test(empty_responses),
	    cmocka_unit_test(shard_desc_round_trip),
	    cmocka_unit_test(list_and_describe_responses),
	    cmocka_unit_test(produce_response),
	    cmocka_unit_test(read_response),
	    cmocka_unit_test(reshard_requests),
	    cmocka_unit_test(encoders_atomic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
