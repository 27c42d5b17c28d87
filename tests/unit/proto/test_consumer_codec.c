/* Tests of src/proto/consumer_messages.c: every consumer body round trips, every truncation and
 * trailing byte is refused as `protocol` (exact-size heap copies, so ASan sees any over-read),
 * and names, enums and counts are checked in the documented order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sluice/errors.h>

#include "proto/codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);
	assert_non_null(d);
	if (n)
		memcpy(d, p, n);
	return d;
}

static struct sl_str S(const char *s) {
	return (struct sl_str){.p = s, .len = strlen(s)};
}

static void
assert_str_eq(struct sl_str a, const char *b)
{
	assert_int_equal(a.len, strlen(b));
	assert_memory_equal(a.p, b, a.len);
}

static struct sl_consumer_wire sample_config(void)
{
	struct sl_consumer_wire c = {
	    .name = S("billing"),
	    .stream = S("orders"),
	    .handler_kind = SL_PROTO_HANDLER_EXEC,
	    .handler_target = S("python3 handle.py"),
	    .batch_size = 500,
	    .batch_window_ms = 250,
	    .start = {.type = SLUICE_POS_AT_TIMESTAMP, .value = 1764291723000ull},
	    .max_retries = -1,
	    .max_record_age_s = 3600,
	    .bisect_on_error = true,
	    .on_failure = S("orders-dlq"),
	    .parallelism = 4,
	    .timeout_ms = 30000,
	};
	return c;
}

static void assert_config_equal(const struct sl_consumer_wire *a, const struct sl_consumer_wire *b)
{
	assert_int_equal(a->name.len, b->name.len);
	assert_memory_equal(a->name.p, b->name.p, a->name.len);
	assert_int_equal(a->stream.len, b->stream.len);
	assert_memory_equal(a->stream.p, b->stream.p, a->stream.len);
	assert_int_equal(a->handler_kind, b->handler_kind);
	assert_int_equal(a->handler_target.len, b->handler_target.len);
	if (a->handler_target.len)
		assert_memory_equal(a->handler_target.p, b->handler_target.p,
				    a->handler_target.len);
	assert_int_equal(a->batch_size, b->batch_size);
	assert_int_equal(a->batch_window_ms, b->batch_window_ms);
	assert_int_equal(a->start.type, b->start.type);
	assert_int_equal(a->start.value, b->start.value);
	assert_int_equal(a->max_retries, b->max_retries);
	assert_int_equal(a->max_record_age_s, b->max_record_age_s);
	assert_int_equal(a->bisect_on_error, b->bisect_on_error);
	assert_int_equal(a->on_failure.len, b->on_failure.len);
	if (a->on_failure.len)
		assert_memory_equal(a->on_failure.p, b->on_failure.p, a->on_failure.len);
	assert_int_equal(a->parallelism, b->parallelism);
	assert_int_equal(a->timeout_ms, b->timeout_ms);
}

/* Every proper prefix of body fails decode with want; so does body plus one byte. */
typedef int (*decode_fn)(const uint8_t *body, size_t len, void *ret);

static int dec_create(const uint8_t *b, size_t n, void *ret)
{
	return sl_proto_decode_consumer_create(b, n, ret);
}
static int dec_reset(const uint8_t *b, size_t n, void *ret)
{
	return sl_proto_decode_consumer_reset(b, n, ret);
}
static int dec_ack(const uint8_t *b, size_t n, void *ret)
{
	return sl_proto_decode_consumer_ack(b, n, ret);
}

static void truncations(const struct sl_buf *b, decode_fn fn, size_t ret_size)
{
	uint8_t *ret = malloc(ret_size), *untouched = malloc(ret_size);
	assert_non_null(ret);
	assert_non_null(untouched);
	memset(untouched, 0x5a, ret_size);
	for (size_t n = 0; n < b->len; n++) {
		uint8_t *cut = dup_bytes(b->data, n);
		memcpy(ret, untouched, ret_size);
		assert_int_equal(fn(cut, n, ret), SLUICE_ERR_PROTOCOL);
		assert_memory_equal(ret, untouched, ret_size);
		free(cut);
	}
	uint8_t *longer = malloc(b->len + 1);
	assert_non_null(longer);
	memcpy(longer, b->data, b->len);
	longer[b->len] = 0;
	assert_int_equal(fn(longer, b->len + 1, ret), SLUICE_ERR_PROTOCOL);
	free(longer);
	free(ret);
	free(untouched);
}

/* ---- frames and opcodes ---- */

static void opcodes_and_push(void **state)
{
	(void)state;
	for (uint8_t op = SL_OP_CONSUMER_CREATE; op <= SL_OP_CONSUMER_ACK; op++)
		assert_true(sl_proto_opcode_known(op));
	assert_false(sl_proto_opcode_known(0x38));
	assert_false(sl_proto_opcode_known(0x2f));

	struct sl_buf b;
	sl_buf_init(&b);
	size_t start;
	assert_int_equal(sl_proto_encode_push_head(&b, SL_OP_CONSUMER_BATCH, 77, &start), 0);
	sl_proto_finish_frame(&b, start);
	struct sl_frame_header h;
	assert_int_equal(sl_proto_parse_header(b.data, b.len, &h), 0);
	assert_int_equal(h.flags, SL_FRAME_PUSH);
	assert_int_equal(h.opcode, SL_OP_CONSUMER_BATCH);
	assert_int_equal(h.request_id, 77);
	assert_int_equal(h.length, 8);
	sl_buf_finish(&b);
}

/* ---- consumer_config ---- */

static void create_round_trip(void **state)
{
	(void)state;
	struct sl_buf b;
	sl_buf_init(&b);
	struct sl_consumer_wire c = sample_config(), d;
	assert_int_equal(sl_proto_put_consumer_config(&b, &c), 0);
	/* Byte layout of the fixed tail: parallelism then timeout_ms, little-endian. */
	assert_int_equal(sl_load_u32(b.data + b.len - 4), 30000);
	assert_int_equal(sl_load_u32(b.data + b.len - 8), 4);
	assert_int_equal(sl_proto_decode_consumer_create(b.data, b.len, &d), 0);
	assert_config_equal(&c, &d);
	/* Borrowed pointers point into the body. */
	assert_true((const uint8_t *)d.name.p > b.data &&
		    (const uint8_t *)d.name.p < b.data + b.len);
	truncations(&b, dec_create, sizeof(struct sl_consumer_wire));

	/* The reader form agrees, and leaves the reader after the config. */
	assert_int_equal(sl_buf_put_u64(&b, 12345), 0);
	struct sl_reader r;
	sl_reader_init(&r, b.data, b.len);
	assert_int_equal(sl_proto_get_consumer_config(&r, &d), 0);
	assert_config_equal(&c, &d);
	assert_int_equal(sl_reader_left(&r), 8);

	/* Variants: remote without target, no on_failure, bisect off, trim horizon. */
	c.handler_kind = SL_PROTO_HANDLER_REMOTE;
	c.handler_target = S("");
	c.on_failure = S("");
	c.bisect_on_error = false;
	c.start.type = SLUICE_POS_TRIM_HORIZON;
	c.start.value = 0;
	c.max_retries = 10;
	c.max_record_age_s = -1;
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_put_consumer_config(&b, &c), 0);
	assert_int_equal(sl_proto_decode_consumer_create(b.data, b.len, &d), 0);
	assert_config_equal(&c, &d);
	sl_buf_finish(&b);
}

static void create_checks(void **state)
{
	(void)state;
	struct sl_buf b;
	sl_buf_init(&b);
	struct sl_consumer_wire c, d;
	struct sl_reader r;

	/* Unknown flag bits: protocol, in both decoders. The flags byte sits right before
	 * on_failure (str8) + parallelism + timeout_ms. */
	c = sample_config();
	assert_int_equal(sl_proto_put_consumer_config(&b, &c), 0);
	size_t flags_at = b.len - 8 - 1 - c.on_failure.len - 1;
	assert_int_equal(b.data[flags_at], SL_CONSUMER_FLAG_BISECT_ON_ERROR);
	b.data[flags_at] = 0x03;
	assert_int_equal(sl_proto_decode_consumer_create(b.data, b.len, &d), SLUICE_ERR_PROTOCOL);
	sl_reader_init(&r, b.data, b.len);
	assert_int_equal(sl_proto_get_consumer_config(&r, &d), SLUICE_ERR_PROTOCOL);
	assert_false(r.ok);

	/* Names: name, stream, on_failure (empty is fine, bad is not). */
	const char *bad_names[] = {"", "a b", "a/b", "x\xc3\xa9"};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		for (int which = 0; which < 3; which++) {
			c = sample_config();
			if (which == 0)
				c.name = S(bad_names[i]);
			else if (which == 1)
				c.stream = S(bad_names[i]);
			else if (bad_names[i][0])
				c.on_failure = S(bad_names[i]);
			else
				continue;
			sl_buf_reset(&b);
			assert_int_equal(sl_proto_put_consumer_config(&b, &c), 0);
			assert_int_equal(sl_proto_decode_consumer_create(b.data, b.len, &d),
					 SLUICE_ERR_INVALID_NAME);
			sl_reader_init(&r, b.data, b.len);
			assert_int_equal(sl_proto_get_consumer_config(&r, &d), SLUICE_ERR_PROTOCOL);
		}
	}

	/* Enums: INVALID_ARGUMENT for a request, passed on for a description. */
	const struct {
		uint8_t kind;
		uint8_t type;
		int want;
	} enums[] = {
	    {0, SLUICE_POS_TRIM_HORIZON, 0},
	    {1, SLUICE_POS_LATEST, 0},
	    {2, SLUICE_POS_AT_TIMESTAMP, 0},
	    {3, SLUICE_POS_LATEST, SLUICE_ERR_INVALID_ARGUMENT},
	    {255, SLUICE_POS_LATEST, SLUICE_ERR_INVALID_ARGUMENT},
	    {0, SLUICE_POS_AT_SEQ, SLUICE_ERR_INVALID_ARGUMENT},
	    {0, SLUICE_POS_AFTER_SEQ, SLUICE_ERR_INVALID_ARGUMENT},
	    {0, 5, SLUICE_ERR_INVALID_ARGUMENT},
	};
	for (size_t i = 0; i < sizeof(enums) / sizeof(enums[0]); i++) {
		c = sample_config();
		c.handler_kind = enums[i].kind;
		c.start.type = (enum sluice_position_type)enums[i].type;
		sl_buf_reset(&b);
		assert_int_equal(sl_proto_put_consumer_config(&b, &c), 0);
		assert_int_equal(sl_proto_decode_consumer_create(b.data, b.len, &d), enums[i].want);
		sl_reader_init(&r, b.data, b.len);
		assert_int_equal(sl_proto_get_consumer_config(&r, &d), 0);
		assert_int_equal(d.handler_kind, enums[i].kind);
		assert_int_equal(d.start.type, enums[i].type);
	}

	/* Encoder limits: nothing appended on -EINVAL. */
	char lng[300];
	memset(lng, 'a', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	c = sample_config();
	c.name = S(lng);
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_put_consumer_config(&b, &c), -EINVAL);
	assert_int_equal(b.len, 0);
	c = sample_config();
	c.on_failure = S(lng);
	assert_int_equal(sl_proto_put_consumer_config(&b, &c), -EINVAL);
	c = sample_config();
	c.handler_target.len = 70000;
	assert_int_equal(sl_proto_put_consumer_config(&b, &c), -EINVAL);
	assert_int_equal(b.len, 0);
	sl_buf_finish(&b);
}

/* ---- consumer_shard_status and the DESCRIBE answer ---- */

static void shard_status_round_trip(void **state)
{
	(void)state;
	struct sl_buf b;
	sl_buf_init(&b);
	struct sl_consumer_shard_status s =
					    {
						.shard_id = 7,
						.checkpoint_seq = 123456789012ull,
						.lag_records = 42,
						.lag_ms = 1500,
						.state = SL_PROTO_CONSUMER_RETRYING,
						.delivered = 1000,
						.batches_failed = 3,
						.retries = 9,
						.sent_to_on_failure = 2,
						.expired = 1,
						.last_error = S("handler exited with status 1"),
					    },
					s2;
	assert_int_equal(sl_proto_put_consumer_shard_status(&b, &s), 0);
	assert_int_equal(b.len, SL_PROTO_CONSUMER_SHARD_STATUS_BYTES_MIN + s.last_error.len);
	struct sl_reader r;
	sl_reader_init(&r, b.data, b.len);
	assert_int_equal(sl_proto_get_consumer_shard_status(&r, &s2), 0);
	assert_int_equal(sl_reader_left(&r), 0);
	assert_int_equal(s2.shard_id, 7);
	assert_int_equal(s2.checkpoint_seq, s.checkpoint_seq);
	assert_int_equal(s2.lag_records, 42);
	assert_int_equal(s2.lag_ms, 1500);
	assert_int_equal(s2.state, SL_PROTO_CONSUMER_RETRYING);
	assert_int_equal(s2.delivered, 1000);
	assert_int_equal(s2.batches_failed, 3);
	assert_int_equal(s2.retries, 9);
	assert_int_equal(s2.sent_to_on_failure, 2);
	assert_int_equal(s2.expired, 1);
	assert_str_eq(s2.last_error, "handler exited with status 1");
	for (size_t n = 0; n < b.len; n++) {
		uint8_t *cut = dup_bytes(b.data, n);
		sl_reader_init(&r, cut, n);
		assert_int_equal(sl_proto_get_consumer_shard_status(&r, &s2), SLUICE_ERR_PROTOCOL);
		assert_false(r.ok);
		free(cut);
	}
	/* Unknown states are passed on (a newer server). */
	sl_buf_reset(&b);
	s.state = 200;
	s.last_error = S("");
	assert_int_equal(sl_proto_put_consumer_shard_status(&b, &s), 0);
	assert_int_equal(b.len, SL_PROTO_CONSUMER_SHARD_STATUS_BYTES_MIN);
	sl_reader_init(&r, b.data, b.len);
	assert_int_equal(sl_proto_get_consumer_shard_status(&r, &s2), 0);
	assert_int_equal(s2.state, 200);
	s.last_error.len = 70000;
	assert_int_equal(sl_proto_put_consumer_shard_status(&b, &s), -EINVAL);
	sl_buf_finish(&b);
}

static void describe_response(void **state)
{
	(void)state;
	/* A whole DESCRIBE answer as the server builds it, parsed as the client does. */
	struct sl_buf b;
	sl_buf_init(&b);
	size_t start;
	assert_int_equal(sl_proto_encode_response_head(&b, SL_OP_CONSUMER_DESCRIBE, 5, 0, &start),
			 0);
	struct sl_consumer_wire c = sample_config(), d;
	assert_int_equal(sl_proto_put_consumer_config(&b, &c), 0);
	assert_int_equal(sl_buf_put_u64(&b, (uint64_t)1764291723000ll), 0);
	assert_int_equal(sl_buf_put_u32(&b, 2), 0);
	for (uint32_t i = 0; i < 2; i++) {
		struct sl_consumer_shard_status s = {.shard_id = i, .checkpoint_seq = 10 * i};
		assert_int_equal(sl_proto_put_consumer_shard_status(&b, &s), 0);
	}
	sl_proto_finish_frame(&b, start);
	struct sl_frame_header h;
	assert_int_equal(sl_proto_parse_header(b.data, b.len, &h), 0);
	assert_int_equal(4 + (size_t)h.length, b.len);
	int32_t status;
	struct sl_str msg;
	struct sl_reader r;
	assert_int_equal(sl_proto_decode_response_status(b.data + SL_FRAME_HEADER_BYTES,
							 b.len - SL_FRAME_HEADER_BYTES, &status,
							 &msg, &r),
			 0);
	assert_int_equal(status, 0);
	assert_int_equal(sl_proto_get_consumer_config(&r, &d), 0);
	assert_config_equal(&c, &d);
	uint64_t created;
	uint32_t n;
	assert_true(sl_reader_u64(&r, &created));
	assert_true(sl_reader_u32(&r, &n));
	assert_int_equal(n, 2);
	for (uint32_t i = 0; i < n; i++) {
		struct sl_consumer_shard_status s;
		assert_int_equal(sl_proto_get_consumer_shard_status(&r, &s), 0);
		assert_int_equal(s.shard_id, i);
		assert_int_equal(s.checkpoint_seq, 10 * i);
	}
	assert_int_equal(sl_reader_left(&r), 0);
	sl_buf_finish(&b);
}

/* ---- CONSUMER_RESET ---- */

static void reset_round_trip(void **state)
{
	(void)state;
	struct sl_buf b;
	sl_buf_init(&b);
	struct sl_req_consumer_reset q = {.name = S("billing"),
					  .shard_id = -1,
					  .position = {.type = SLUICE_POS_AT_SEQ, .value = 99}},
				     q2;
	assert_int_equal(sl_proto_put_consumer_reset(&b, &q), 0);
	assert_int_equal(b.len, 1 + 7 + 8 + 1 + 8);
	assert_int_equal(sl_proto_decode_consumer_reset(b.data, b.len, &q2), 0);
	assert_str_eq(q2.name, "billing");
	assert_int_equal(q2.shard_id, -1);
	assert_int_equal(q2.position.type, SLUICE_POS_AT_SEQ);
	assert_int_equal(q2.position.value, 99);
	truncations(&b, dec_reset, sizeof(struct sl_req_consumer_reset));

	const struct {
		int64_t shard;
		uint8_t type;
		const char *name;
		int want;
	} cases[] = {
	    {0, SLUICE_POS_TRIM_HORIZON, "c", 0},
	    {UINT32_MAX, SLUICE_POS_LATEST, "c", 0},
	    {5, SLUICE_POS_AFTER_SEQ, "c", 0},
	    {5, SLUICE_POS_AT_TIMESTAMP, "c", 0},
	    {-2, SLUICE_POS_LATEST, "c", SLUICE_ERR_INVALID_ARGUMENT},
	    {(int64_t)UINT32_MAX + 1, SLUICE_POS_LATEST, "c", SLUICE_ERR_INVALID_ARGUMENT},
	    {INT64_MIN, SLUICE_POS_LATEST, "c", SLUICE_ERR_INVALID_ARGUMENT},
	    {0, 5, "c", SLUICE_ERR_INVALID_ARGUMENT},
	    {0, SLUICE_POS_LATEST, "", SLUICE_ERR_INVALID_NAME},
	    {-2, 9, "a b", SLUICE_ERR_INVALID_NAME}, /* names before ranges */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		q.name = S(cases[i].name);
		q.shard_id = cases[i].shard;
		q.position.type = (enum sluice_position_type)cases[i].type;
		sl_buf_reset(&b);
		assert_int_equal(sl_proto_put_consumer_reset(&b, &q), 0);
		assert_int_equal(sl_proto_decode_consumer_reset(b.data, b.len, &q2), cases[i].want);
		if (cases[i].want == 0)
			assert_int_equal(q2.shard_id, cases[i].shard);
	}
	sl_buf_finish(&b);
}

/* ---- CONSUMER_ACK ---- */

static void ack_round_trip(void **state)
{
	(void)state;
	struct sl_buf b;
	sl_buf_init(&b);
	struct sl_req_consumer_ack a = {.delivery_id = 0xdeadbeef,
					.status = SL_PROTO_ACK_FAILED_FROM,
					.failed_from = 17,
					.message = S("record 17: bad JSON")},
				   a2;
	assert_int_equal(sl_proto_put_consumer_ack(&b, &a), 0);
	assert_int_equal(sl_proto_decode_consumer_ack(b.data, b.len, &a2), 0);
	assert_int_equal(a2.delivery_id, 0xdeadbeef);
	assert_int_equal(a2.status, SL_PROTO_ACK_FAILED_FROM);
	assert_int_equal(a2.failed_from, 17);
	assert_str_eq(a2.message, "record 17: bad JSON");
	truncations(&b, dec_ack, sizeof(struct sl_req_consumer_ack));

	/* Status: 0..2. */
	for (unsigned st = 0; st < 256; st++) {
		a.status = (uint8_t)st;
		sl_buf_reset(&b);
		assert_int_equal(sl_proto_put_consumer_ack(&b, &a), 0);
		assert_int_equal(sl_proto_decode_consumer_ack(b.data, b.len, &a2),
				 st <= SL_PROTO_ACK_ERROR ? 0 : SLUICE_ERR_INVALID_ARGUMENT);
	}
	/* Message: up to SL_PROTO_MESSAGE_MAX. */
	char *m = malloc(SL_PROTO_MESSAGE_MAX + 1);
	assert_non_null(m);
	memset(m, 'm', SL_PROTO_MESSAGE_MAX + 1);
	a.status = SL_PROTO_ACK_ERROR;
	a.message = (struct sl_str){.p = m, .len = SL_PROTO_MESSAGE_MAX};
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_put_consumer_ack(&b, &a), 0);
	assert_int_equal(sl_proto_decode_consumer_ack(b.data, b.len, &a2), 0);
	a.message.len++;
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_put_consumer_ack(&b, &a), -EINVAL);
	assert_int_equal(b.len, 0);
	/* Hand-built: a longer message on the wire is malformed. */
	sl_buf_put_u32(&b, 1);
	sl_buf_put_u8(&b, 0);
	sl_buf_put_u32(&b, 0);
	sl_proto_put_str16(&b, m, SL_PROTO_MESSAGE_MAX + 1);
	assert_int_equal(sl_proto_decode_consumer_ack(b.data, b.len, &a2), SLUICE_ERR_PROTOCOL);
	free(m);
	sl_buf_finish(&b);
}

/* ---- CONSUMER_BATCH ---- */

static void batch_round_trip(void **state)
{
	(void)state;
	struct sl_buf b;
	sl_buf_init(&b);
	size_t start;
	assert_int_equal(sl_proto_encode_push_head(&b, SL_OP_CONSUMER_BATCH, 4242, &start), 0);
	struct sl_consumer_batch_head hd = {.consumer = S("billing"),
					    .stream = S("orders"),
					    .shard_id = 3,
					    .attempt = 2,
					    .count = 3},
				      hd2;
	assert_int_equal(sl_proto_put_consumer_batch_head(&b, &hd), 0);
	for (uint32_t i = 0; i < 3; i++) {
		struct sluice_record rec = {.seq = 100 + i,
					    .ts_ms = 1000 + i,
					    .key = "k",
					    .key_len = 1,
					    .data = (const uint8_t *)"data",
					    .data_len = i};
		assert_int_equal(sl_proto_put_record_out(&b, &rec), 0);
	}
	sl_proto_finish_frame(&b, start);
	struct sl_frame_header h;
	assert_int_equal(sl_proto_parse_header(b.data, b.len, &h), 0);
	assert_int_equal(h.flags, SL_FRAME_PUSH);
	assert_int_equal(h.request_id, 4242);
	const uint8_t *body = b.data + SL_FRAME_HEADER_BYTES;
	size_t len = b.len - SL_FRAME_HEADER_BYTES;
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	assert_int_equal(sl_proto_get_consumer_batch_head(&r, &hd2), 0);
	assert_str_eq(hd2.consumer, "billing");
	assert_str_eq(hd2.stream, "orders");
	assert_int_equal(hd2.shard_id, 3);
	assert_int_equal(hd2.attempt, 2);
	assert_int_equal(hd2.count, 3);
	for (uint32_t i = 0; i < 3; i++) {
		struct sluice_record rec;
		assert_int_equal(sl_proto_get_record_out(&r, &rec), 0);
		assert_int_equal(rec.seq, 100 + i);
		assert_int_equal(rec.data_len, i);
	}
	assert_int_equal(sl_reader_left(&r), 0);

	/* The head truncated anywhere. */
	size_t head_len = 1 + 7 + 1 + 6 + 12;
	for (size_t n = 0; n < head_len; n++) {
		uint8_t *cut = dup_bytes(body, n);
		sl_reader_init(&r, cut, n);
		assert_int_equal(sl_proto_get_consumer_batch_head(&r, &hd2), SLUICE_ERR_PROTOCOL);
		free(cut);
	}
	/* Counts: 0, over the limit, or more than the body can hold. */
	const struct {
		uint32_t count;
		size_t extra;
		int want;
	} counts[] = {
	    {0, 0, SLUICE_ERR_PROTOCOL},
	    {1, SL_PROTO_RECORD_OUT_BYTES_MIN - 1, SLUICE_ERR_PROTOCOL},
	    {1, SL_PROTO_RECORD_OUT_BYTES_MIN, 0},
	    {2, SL_PROTO_RECORD_OUT_BYTES_MIN, SLUICE_ERR_PROTOCOL},
	    {SL_PROTO_RECORDS_MAX + 1, (SL_PROTO_RECORDS_MAX + 1) * SL_PROTO_RECORD_OUT_BYTES_MIN,
	     SLUICE_ERR_PROTOCOL},
	};
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		sl_buf_reset(&b);
		hd.count = counts[i].count;
		assert_int_equal(sl_proto_put_consumer_batch_head(&b, &hd), 0);
		assert_int_equal(sl_buf_reserve(&b, counts[i].extra), 0);
		memset(b.data + b.len, 0, counts[i].extra);
		b.len += counts[i].extra;
		uint8_t *copy = dup_bytes(b.data, b.len);
		sl_reader_init(&r, copy, b.len);
		assert_int_equal(sl_proto_get_consumer_batch_head(&r, &hd2), counts[i].want);
		free(copy);
	}
	/* Bad names. */
	hd.count = 1;
	hd.consumer = S("a/b");
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_put_consumer_batch_head(&b, &hd), 0);
	sl_buf_put(&b, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 24);
	sl_reader_init(&r, b.data, b.len);
	assert_int_equal(sl_proto_get_consumer_batch_head(&r, &hd2), SLUICE_ERR_PROTOCOL);
	/* Encoder limits. */
	char lng[300];
	memset(lng, 'a', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	hd.consumer = S(lng);
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_put_consumer_batch_head(&b, &hd), -EINVAL);
	assert_int_equal(b.len, 0);
	sl_buf_finish(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(opcodes_and_push),	 cmocka_unit_test(create_round_trip),
	    cmocka_unit_test(create_checks),	 cmocka_unit_test(shard_status_round_trip),
	    cmocka_unit_test(describe_response), cmocka_unit_test(reset_round_trip),
	    cmocka_unit_test(ack_round_trip),	 cmocka_unit_test(batch_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
