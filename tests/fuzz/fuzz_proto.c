/*
 * libFuzzer target for src/proto. The first input byte picks what the rest is fed to:
 *
 *   sel & 7 = 0  a stream of frames, as a connection delivers them: header, then the request,
 *                response or push decoder its opcode and flags select, frame after frame
 *           1    the header parser alone, plus the name and key validators on the raw bytes
 *           2..5 DELETE/DESCRIBE/LIST_SHARDS name, AUTH, CREATE_STREAM, READ request bodies;
 *                with sel & 0x40: CONSUMER_CREATE, CONSUMER_RESET, CONSUMER_ACK request bodies
 *                and a CONSUMER_BATCH push body; 2 with sel & 0x20 (and not 0x40): a
 *                FIREHOSE_CREATE request body
 *           6    a PRODUCE body, iterated to the end (record_bytes_max 32 if sel & 0x80)
 *           7    a response body; the next byte is its opcode
 *
 * Besides "no crash, no over-read", it checks properties: whatever decodes re-encodes to the
 * very bytes it came from, decoded names and keys are valid, and the UTF-8 validator agrees with
 * a naive decoder that computes each code point.
 */
#include <sluice/errors.h>

#include "log/record_format.h"
#include "proto/codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* The naive reference: decode each code point, then judge it. */
static bool ref_utf8(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint32_t c = s[i], min;
		size_t len;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2, c &= 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, c &= 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, c &= 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			c = c << 6 | (s[i + k] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

static void check_key(const uint8_t *k, size_t n)
{
	bool want = n >= 1 && n <= SLUICE_KEY_LEN_MAX && ref_utf8(k, n);
	CHECK(sl_proto_key_valid(k, n) == want);
}

static void check_same(const struct sl_buf *b, const uint8_t *p, size_t n)
{
	CHECK(b->len == n);
	CHECK(n == 0 || memcmp(b->data, p, n) == 0);
}

static void check_str(const struct sl_str *s, const uint8_t *body, size_t len)
{
	const uint8_t *p = (const uint8_t *)s->p;
	CHECK(s->len <= len);
	CHECK(p >= body && (size_t)(p - body) <= len - s->len);
}

/* ---- requests ---- */

static void produce(const uint8_t *body, size_t len, uint32_t max, struct sl_buf *tmp)
{
	struct sl_req_produce req;
	if (sl_proto_decode_produce(body, len, &req) < 0)
		return;
	CHECK(req.count >= 1 && req.count <= SL_PROTO_RECORDS_MAX);
	CHECK(sl_proto_name_valid((const uint8_t *)req.stream.p, req.stream.len));
	for (;;) {
		size_t before = req.records.off;
		struct sl_record_view v;
		int r = sl_proto_produce_next(&req, max, &v);
		if (r == 0) {
			CHECK(req.next == req.count);
			CHECK(req.records.off == req.records.len);
			CHECK(sl_proto_produce_next(&req, max, &v) == 0);
			return;
		}
		if (r == SLUICE_ERR_PROTOCOL) {
			CHECK(sl_proto_produce_next(&req, max, &v) == SLUICE_ERR_PROTOCOL);
			return;
		}
		CHECK(r == 1 || r == SLUICE_ERR_INVALID_KEY || r == SLUICE_ERR_RECORD_TOO_LARGE);
		CHECK(req.next <= req.count);
		check_key(v.key, v.key_len);
		CHECK((r == SLUICE_ERR_INVALID_KEY) == !sl_proto_key_valid(v.key, v.key_len));
		if (r == 1)
			CHECK(v.data_len <= max);
		if (r == SLUICE_ERR_RECORD_TOO_LARGE)
			CHECK(v.data_len > max);
		sl_buf_reset(tmp);
		CHECK(sl_proto_put_record_in(tmp, &v) == 0);
		check_same(tmp, req.records.p + before, req.records.off - before);
	}
}

/* RESTORE_APPEND: every record re-encodes to its bytes; any bad record is reported as such. */
static void restore_append(const uint8_t *body, size_t len, uint32_t max, struct sl_buf *tmp)
{
	struct sl_req_restore_append req;
	if (sl_proto_decode_restore_append(body, len, &req) < 0)
		return;
	CHECK(req.count >= 1 && req.count <= SL_PROTO_RECORDS_MAX);
	CHECK(sl_proto_name_valid((const uint8_t *)req.stream.p, req.stream.len));
	for (;;) {
		size_t before = req.records.off;
		struct sl_restore_record_view v;
		int r = sl_proto_restore_next(&req, max, &v);
		if (r == 0) {
			CHECK(req.next == req.count && req.records.off == req.records.len);
			return;
		}
		if (r == SLUICE_ERR_PROTOCOL)
			return;
		CHECK(r == 1 || r == SLUICE_ERR_INVALID_KEY || r == SLUICE_ERR_RECORD_TOO_LARGE ||
		      r == SLUICE_ERR_INVALID_ARGUMENT);
		if (r == 1) {
			check_key(v.key, v.key_len);
			CHECK(v.data_len <= max && v.seq >= 1 && v.ts_ms >= 1);
		}
		struct sluice_record rec = {.seq = v.seq,
					    .ts_ms = v.ts_ms,
					    .key = (const char *)v.key,
					    .key_len = v.key_len,
					    .data = v.data,
					    .data_len = v.data_len};
		sl_buf_reset(tmp);
		CHECK(sl_proto_put_restore_record(tmp, &rec) == 0);
		check_same(tmp, req.records.p + before, req.records.off - before);
	}
}

static void request(uint8_t op, const uint8_t *body, size_t len, struct sl_buf *tmp)
{
	struct sl_str s;
	switch (op) {
	case SL_OP_DELETE_STREAM:
	case SL_OP_DESCRIBE_STREAM:
	case SL_OP_LIST_SHARDS:
		if (sl_proto_decode_name(body, len, &s) == 0) {
			check_str(&s, body, len);
			CHECK(sl_proto_name_valid((const uint8_t *)s.p, s.len));
			CHECK(len == 1 + s.len);
		}
		break;
	case SL_OP_AUTH:
		if (sl_proto_decode_auth(body, len, &s) == 0) {
			check_str(&s, body, len);
			CHECK(len == 2 + s.len);
		}
		break;
	case SL_OP_CREATE_STREAM: {
		struct sl_req_create_stream req;
		if (sl_proto_decode_create_stream(body, len, &req) == 0) {
			check_str(&req.name, body, len);
			CHECK(req.shard_count >= 1 && req.shard_count <= SLUICE_SHARDS_MAX);
		}
		break;
	}
	case SL_OP_READ: {
		struct sl_req_read req;
		if (sl_proto_decode_read(body, len, &req) == 0) {
			check_str(&req.stream, body, len);
			CHECK(req.position.type <= SLUICE_POS_AT_TIMESTAMP);
			CHECK(req.max_records >= 1 && req.max_records <= SL_PROTO_RECORDS_MAX);
		}
		break;
	}
	case SL_OP_PRODUCE:
		produce(body, len, SLUICE_RECORD_BYTES_DEFAULT, tmp);
		produce(body, len, 16, tmp);
		break;
	case SL_OP_STREAM_SPLIT:
	case SL_OP_STREAM_MERGE:
	case SL_OP_STREAM_SCALE: {
		struct sl_req_reshard req;
		if (sl_proto_decode_reshard(op, body, len, &req) == 0) {
			check_str(&req.stream, body, len);
			CHECK(sl_proto_name_valid((const uint8_t *)req.stream.p, req.stream.len));
			CHECK(len == 1 + req.stream.len +
					 (op == SL_OP_STREAM_SPLIT   ? 20
					  : op == SL_OP_STREAM_MERGE ? 8
								     : 4));
		}
		break;
	}
	case SL_OP_CONSUMER_DELETE:
	case SL_OP_CONSUMER_DESCRIBE:
	case SL_OP_CONSUMER_ATTACH:
	case SL_OP_FIREHOSE_DELETE:
	case SL_OP_FIREHOSE_DESCRIBE:
	case SL_OP_FIREHOSE_FLUSH:
		request(SL_OP_DELETE_STREAM, body, len, tmp);
		break;
	case SL_OP_FIREHOSE_CREATE: {
		struct sl_firehose_wire f;
		if (sl_proto_decode_firehose_create(body, len, &f) == 0) {
			const struct sl_str *strs[] = {
			    &f.name,   &f.stream,	    &f.dest,	&f.endpoint,
			    &f.region, &f.credentials_file, &f.profile, &f.on_failure};
			for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
				check_str(strs[i], body, len);
			CHECK(sl_proto_name_valid((const uint8_t *)f.name.p, f.name.len));
			CHECK(sl_proto_name_valid((const uint8_t *)f.stream.p, f.stream.len));
			CHECK(
			    f.on_failure.len == 0 ||
			    sl_proto_name_valid((const uint8_t *)f.on_failure.p, f.on_failure.len));
			CHECK(f.compression <= SL_PROTO_FIREHOSE_COMPRESSION_ZSTD);
			CHECK(f.format <= SL_PROTO_FIREHOSE_FORMAT_RAW);
			CHECK(f.start.type == SLUICE_POS_TRIM_HORIZON ||
			      f.start.type == SLUICE_POS_LATEST ||
			      f.start.type == SLUICE_POS_AT_TIMESTAMP);
			CHECK(f.dest.len <= SL_PROTO_FIREHOSE_DEST_MAX &&
			      !memchr(f.dest.p, 0, f.dest.len));
			CHECK(f.endpoint.len <= SL_PROTO_FIREHOSE_ENDPOINT_MAX &&
			      !memchr(f.endpoint.p, 0, f.endpoint.len));
			CHECK(f.region.len <= SL_PROTO_FIREHOSE_REGION_MAX &&
			      !memchr(f.region.p, 0, f.region.len));
			CHECK(f.credentials_file.len <= SL_PROTO_FIREHOSE_CREDENTIALS_FILE_MAX &&
			      !memchr(f.credentials_file.p, 0, f.credentials_file.len));
			CHECK(f.profile.len <= SL_PROTO_FIREHOSE_PROFILE_MAX &&
			      !memchr(f.profile.p, 0, f.profile.len));
			sl_buf_reset(tmp);
			CHECK(sl_proto_put_firehose_config(tmp, &f) == 0);
			check_same(tmp, body, len);
		}
		/* The reader form accepts whatever the request decoder accepts (and more). */
		struct sl_reader r;
		sl_reader_init(&r, body, len);
		struct sl_firehose_wire g;
		if (sl_proto_get_firehose_config(&r, &g) < 0)
			CHECK(!r.ok && sl_proto_decode_firehose_create(body, len, &f) < 0);
		break;
	}
	case SL_OP_CONSUMER_CREATE: {
		struct sl_consumer_wire c;
		if (sl_proto_decode_consumer_create(body, len, &c) == 0) {
			check_str(&c.name, body, len);
			check_str(&c.stream, body, len);
			check_str(&c.handler_target, body, len);
			check_str(&c.on_failure, body, len);
			CHECK(c.handler_kind <= SL_PROTO_HANDLER_REMOTE);
			CHECK(c.start.type == SLUICE_POS_TRIM_HORIZON ||
			      c.start.type == SLUICE_POS_LATEST ||
			      c.start.type == SLUICE_POS_AT_TIMESTAMP);
			sl_buf_reset(tmp);
			CHECK(sl_proto_put_consumer_config(tmp, &c) == 0);
			check_same(tmp, body, len);
		}
		break;
	}
	case SL_OP_RESTORE_APPEND:
		restore_append(body, len, SLUICE_RECORD_BYTES_DEFAULT, tmp);
		break;
	case SL_OP_STREAM_CREATE_FROM_META: {
		struct sl_str name, json;
		if (sl_proto_decode_create_from_meta(body, len, &name, &json) == 0) {
			check_str(&name, body, len);
			CHECK(json.len >= 1 && (const uint8_t *)json.p + json.len == body + len);
		}
		break;
	}
	case SL_OP_CONSUMER_RESET: {
		struct sl_req_consumer_reset q;
		if (sl_proto_decode_consumer_reset(body, len, &q) == 0) {
			check_str(&q.name, body, len);
			CHECK(q.shard_id >= -1 && q.shard_id <= (int64_t)UINT32_MAX);
			CHECK(q.position.type <= SLUICE_POS_AT_TIMESTAMP);
			sl_buf_reset(tmp);
			CHECK(sl_proto_put_consumer_reset(tmp, &q) == 0);
			check_same(tmp, body, len);
		}
		break;
	}
	case SL_OP_CONSUMER_ACK: {
		struct sl_req_consumer_ack a;
		if (sl_proto_decode_consumer_ack(body, len, &a) == 0) {
			check_str(&a.message, body, len);
			CHECK(a.status <= SL_PROTO_ACK_ERROR);
			CHECK(a.message.len <= SL_PROTO_MESSAGE_MAX);
			sl_buf_reset(tmp);
			CHECK(sl_proto_put_consumer_ack(tmp, &a) == 0);
			check_same(tmp, body, len);
		}
		break;
	}
	default:
		break; /* PING, LIST_STREAMS, CONSUMER_LIST, FIREHOSE_LIST: empty bodies; others:
			  BAD_OPCODE */
	}
}

/* records_out after a head, each re-encoded to the bytes it came from. */
static void records_out(struct sl_reader *r, uint32_t n, struct sl_buf *tmp)
{
	for (uint32_t i = 0; i < n && r->ok; i++) {
		size_t before = r->off;
		struct sluice_record rec;
		if (sl_proto_get_record_out(r, &rec) < 0) {
			CHECK(!r->ok);
			break;
		}
		check_key((const uint8_t *)rec.key, rec.key_len);
		CHECK(sl_proto_key_valid((const uint8_t *)rec.key, rec.key_len));
		sl_buf_reset(tmp);
		CHECK(sl_proto_put_record_out(tmp, &rec) == 0);
		check_same(tmp, r->p + before, r->off - before);
	}
}

/* READ answer records: the log's frames, checked as libsluice checks them (sl_record_parse). */
static void record_frames(struct sl_reader *r, uint32_t n)
{
	for (uint32_t i = 0; i < n && r->ok; i++) {
		struct sluice_record rec;
		size_t flen;
		size_t left = r->len - r->off;
		int e = sl_record_parse(r->p + r->off, left, &rec, &flen);
		if (e < 0) {
			CHECK(e == -EAGAIN || e == SLUICE_ERR_CORRUPT);
			r->ok = false;
			break;
		}
		CHECK(flen <= left);
		CHECK(flen == sl_record_frame_bytes(rec.key_len, rec.has_hash_key, rec.data_len));
		CHECK((const uint8_t *)rec.key ==
		      r->p + r->off + sl_record_prefix_bytes(rec.key_len, rec.has_hash_key) -
			  rec.key_len);
		CHECK(rec.data + rec.data_len + SL_RECORD_TRAILER_BYTES == r->p + r->off + flen);
		r->off += flen;
	}
}

/* ---- pushes (server -> client) ---- */

static void push(uint8_t op, const uint8_t *body, size_t len, struct sl_buf *tmp)
{
	if (op != SL_OP_CONSUMER_BATCH)
		return;
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_consumer_batch_head h;
	if (sl_proto_get_consumer_batch_head(&r, &h) < 0) {
		CHECK(!r.ok);
		return;
	}
	CHECK(h.count >= 1 && h.count <= SL_PROTO_RECORDS_MAX);
	CHECK((uint64_t)h.count * SL_PROTO_RECORD_OUT_BYTES_MIN <= sl_reader_left(&r));
	CHECK(sl_proto_name_valid((const uint8_t *)h.consumer.p, h.consumer.len));
	CHECK(sl_proto_name_valid((const uint8_t *)h.stream.p, h.stream.len));
	sl_buf_reset(tmp);
	CHECK(sl_proto_put_consumer_batch_head(tmp, &h) == 0);
	check_same(tmp, body, r.off);
	records_out(&r, h.count, tmp);
}

/* ---- responses ---- */

static bool shard_desc(struct sl_reader *r, struct sl_buf *tmp)
{
	size_t before = r->off;
	struct sl_shard_desc d;
	if (sl_proto_get_shard_desc(r, &d) < 0) {
		CHECK(!r->ok);
		return false;
	}
	sl_buf_reset(tmp);
	CHECK(sl_proto_put_shard_desc(tmp, &d) == 0);
	check_same(tmp, r->p + before, r->off - before);
	return true;
}

static void response(uint8_t op, const uint8_t *body, size_t len, struct sl_buf *tmp)
{
	int32_t status;
	struct sl_str msg;
	struct sl_reader r;
	if (sl_proto_decode_response_status(body, len, &status, &msg, &r) < 0)
		return;
	CHECK(status <= 0);
	if (status < 0) {
		CHECK(msg.len <= SL_PROTO_MESSAGE_MAX && len == 4 + 2 + msg.len);
		CHECK(sl_reader_left(&r) == 0);
		/* Re-encoding gives the same body (when the message has no NUL to stop strlen). */
		if (!memchr(msg.p, 0, msg.len)) {
			char text[SL_PROTO_MESSAGE_MAX + 1];
			memcpy(text, msg.p, msg.len);
			text[msg.len] = 0;
			sl_buf_reset(tmp);
			CHECK(sl_proto_encode_error(tmp, op, 1, status, text) == 0);
			/* The encoder may shorten a message that ends inside a UTF-8 sequence. */
			CHECK(tmp->len <= SL_FRAME_HEADER_BYTES + len);
			CHECK(memcmp(tmp->data + SL_FRAME_HEADER_BYTES, body, 4) == 0);
		}
		return;
	}
	CHECK(len == 4 + sl_reader_left(&r));
	uint32_t n = 0, u32;
	uint64_t u64;
	uint8_t u8;
	switch (op) {
	case SL_OP_LIST_STREAMS:
	case SL_OP_CONSUMER_LIST:
	case SL_OP_FIREHOSE_LIST:
		sl_reader_u32(&r, &n);
		for (uint32_t i = 0; i < n && r.ok; i++) {
			struct sl_str s;
			if (sl_proto_get_str8(&r, &s) == 0)
				check_str(&s, r.p, r.len);
		}
		break;
	case SL_OP_DESCRIBE_STREAM: {
		size_t before = r.off;
		struct sl_stream_desc d;
		if (sl_proto_get_stream_desc(&r, &d) < 0)
			break;
		sl_buf_reset(tmp);
		CHECK(sl_proto_put_stream_desc(tmp, &d) == 0);
		check_same(tmp, r.p + before, r.off - before);
		for (uint32_t i = 0; i < d.shard_count && shard_desc(&r, tmp); i++)
			;
		break;
	}
	case SL_OP_LIST_SHARDS:
		sl_reader_u32(&r, &n);
		for (uint32_t i = 0; i < n && shard_desc(&r, tmp); i++)
			;
		break;
	case SL_OP_CONSUMER_DESCRIBE: {
		size_t before = r.off;
		struct sl_consumer_wire c;
		if (sl_proto_get_consumer_config(&r, &c) < 0) {
			CHECK(!r.ok);
			break;
		}
		sl_buf_reset(tmp);
		CHECK(sl_proto_put_consumer_config(tmp, &c) == 0);
		check_same(tmp, r.p + before, r.off - before);
		sl_reader_u64(&r, &u64);
		sl_reader_u32(&r, &n);
		for (uint32_t i = 0; i < n && r.ok; i++) {
			before = r.off;
			struct sl_consumer_shard_status st;
			if (sl_proto_get_consumer_shard_status(&r, &st) < 0) {
				CHECK(!r.ok);
				break;
			}
			sl_buf_reset(tmp);
			CHECK(sl_proto_put_consumer_shard_status(tmp, &st) == 0);
			check_same(tmp, r.p + before, r.off - before);
		}
		break;
	}
	case SL_OP_FIREHOSE_DESCRIBE: {
		size_t before = r.off;
		struct sl_firehose_wire f;
		if (sl_proto_get_firehose_config(&r, &f) < 0) {
			CHECK(!r.ok);
			break;
		}
		CHECK(sl_proto_name_valid((const uint8_t *)f.name.p, f.name.len));
		sl_buf_reset(tmp);
		CHECK(sl_proto_put_firehose_config(tmp, &f) == 0);
		check_same(tmp, r.p + before, r.off - before);
		sl_reader_u64(&r, &u64);
		sl_reader_u32(&r, &n);
		for (uint32_t i = 0; i < n && r.ok; i++) {
			before = r.off;
			struct sl_firehose_shard_status st;
			if (sl_proto_get_firehose_shard_status(&r, &st) < 0) {
				CHECK(!r.ok);
				break;
			}
			check_str(&st.last_object_key, r.p, r.len);
			check_str(&st.last_error, r.p, r.len);
			sl_buf_reset(tmp);
			CHECK(sl_proto_put_firehose_shard_status(tmp, &st) == 0);
			check_same(tmp, r.p + before, r.off - before);
		}
		break;
	}
	case SL_OP_PRODUCE:
		sl_reader_u32(&r, &n);
		for (uint32_t i = 0; i < n && r.ok; i++) {
			sl_reader_u32(&r, &u32);
			sl_reader_u32(&r, &u32);
			sl_reader_u64(&r, &u64);
		}
		break;
	case SL_OP_READ:
		sl_reader_u32(&r, &u32);
		sl_reader_u64(&r, &u64);
		sl_reader_u64(&r, &u64);
		sl_reader_u64(&r, &u64);
		sl_reader_u32(&r, &n);
		record_frames(&r, n);
		sl_reader_u8(&r, &u8);
		break;
	default:
		break;
	}
}

/* A connection's receive buffer: frames back to back, the last one possibly incomplete. */
static void frames(const uint8_t *p, size_t n, struct sl_buf *tmp)
{
	while (n > 0) {
		struct sl_frame_header h;
		int r = sl_proto_parse_header(p, n, &h);
		if (r < 0) {
			CHECK(r == -EAGAIN ? n < SL_FRAME_HEADER_BYTES
					   : n >= SL_FRAME_HEADER_BYTES);
			return;
		}
		CHECK(h.length >= 8 && h.length <= SL_PROTO_FRAME_MAX &&
		      h.version == SL_PROTO_VERSION);
		if (n - 4 < h.length)
			return; /* wait for the rest */
		const uint8_t *body = p + SL_FRAME_HEADER_BYTES;
		size_t len = h.length - 8;
		CHECK((h.flags & (SL_FRAME_RESPONSE | SL_FRAME_PUSH)) !=
		      (SL_FRAME_RESPONSE | SL_FRAME_PUSH));
		if (h.flags & SL_FRAME_RESPONSE)
			response(h.opcode, body, len, tmp);
		else if (h.flags & SL_FRAME_PUSH)
			push(h.opcode, body, len, tmp);
		else
			request(h.opcode, body, len, tmp);
		p += 4 + h.length;
		n -= 4 + h.length;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t sel = data[0];
	/* An exact-size copy, so that ASan flags a read even one byte past the end. */
	size_t n = size - 1;
	uint8_t *p = malloc(n ? n : 1);
	if (!p)
		return 0;
	memcpy(p, data + 1, n);
	struct sl_buf tmp;
	sl_buf_init(&tmp);

	switch (sel & 7) {
	case 0:
		frames(p, n, &tmp);
		break;
	case 1: {
		struct sl_frame_header h;
		int r = sl_proto_parse_header(p, n, &h);
		CHECK(r == 0 || r == -EAGAIN || r == SLUICE_ERR_PROTOCOL ||
		      r == SLUICE_ERR_UNSUPPORTED_VERSION);
		check_key(p, n);
		(void)sl_proto_name_valid(p, n);
		break;
	}
	case 2:
		request((sel & 0x40)   ? SL_OP_CONSUMER_CREATE
			: (sel & 0x20) ? SL_OP_FIREHOSE_CREATE
				       : SL_OP_DESCRIBE_STREAM,
			p, n, &tmp);
		break;
	case 3:
		request((sel & 0x40) ? SL_OP_CONSUMER_RESET : SL_OP_AUTH, p, n, &tmp);
		break;
	case 4:
		request((sel & 0x40) ? SL_OP_CONSUMER_ACK : SL_OP_CREATE_STREAM, p, n, &tmp);
		break;
	case 5:
		if (sel & 0x40)
			push(SL_OP_CONSUMER_BATCH, p, n, &tmp);
		else
			request(SL_OP_READ, p, n, &tmp);
		break;
	case 6:
		produce(p, n, (sel & 0x80) ? 32 : SLUICE_RECORD_BYTES_DEFAULT, &tmp);
		break;
	case 7:
		if (n >= 1)
			response(p[0], p + 1, n - 1, &tmp);
		break;
	}
	sl_buf_finish(&tmp);
	free(p);
	return 0;
}
