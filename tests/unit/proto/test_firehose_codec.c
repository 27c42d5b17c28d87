/* Tests of src/proto/firehose_messages.c: firehose_config and firehose_shard_status round trip,
 * every truncation and trailing byte is refused as `protocol` (exact-size heap copies, so ASan
 * sees any over-read), and names, enums and string limits are checked in the documented order. */
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
assert_sl_str_equal(struct sl_str a, struct sl_str b)
{
	assert_int_equal(a.len, b.len);
	if (a.len)
		assert_memory_equal(a.p, b.p, a.len);
}

static struct sl_firehose_wire sample_config(void)
{
	struct sl_firehose_wire f = {
	    .name = S("orders-archive"),
	    .stream = S("orders"),
	    .dest = S("s3://archive-bucket/sluice"),
	    .endpoint = S("http://127.0.0.1:9000"),
	    .region = S("eu-west-1"),
	    .credentials_file = S("/etc/sluice/aws-credentials"),
	    .profile = S("archiver"),
	    .buffer_bytes = 5ull << 20,
	    .buffer_interval_ms = 60000,
	    .compression = SL_PROTO_FIREHOSE_COMPRESSION_ZSTD,
	    .zstd_level = 3,
	    .format = SL_PROTO_FIREHOSE_FORMAT_JSONL,
	    .max_retry_duration_ms = -1,
	    .on_failure = S("orders-dlq"),
	    .start = {.type = SLUICE_POS_AT_TIMESTAMP, .value = 1764291723000ull},
	};
	return f;
}

static void assert_config_equal(const struct sl_firehose_wire *a, const struct sl_firehose_wire *b)
{
	assert_sl_str_equal(a->name, b->name);
	assert_sl_str_equal(a->stream, b->stream);
	assert_sl_str_equal(a->dest, b->dest);
	assert_sl_str_equal(a->endpoint, b->endpoint);
	assert_sl_str_equal(a->region, b->region);
	assert_sl_str_equal(a->credentials_file, b->credentials_file);
	assert_sl_str_equal(a->profile, b->profile);
	assert_int_equal(a->buffer_bytes, b->buffer_bytes);
	assert_int_equal(a->buffer_interval_ms, b->buffer_interval_ms);
	assert_int_equal(a->compression, b->compression);
	assert_int_equal(a->zstd_level, b->zstd_level);
	assert_int_equal(a->format, b->format);
	assert_int_equal(a->max_retry_duration_ms, b->max_retry_duration_ms);
	assert_sl_str_equal(a->on_failure, b->on_failure);
	assert_int_equal(a->start.type, b->start.type);
	assert_int_equal(a->start.value, b->start.value);
}

static void opcodes(void **state)
{
	(void)state;
	for (uint8_t op = SL_OP_FIREHOSE_CREATE; op <= SL_OP_FIREHOSE_FLUSH; op++)
		assert_true(sl_proto_opcode_known(op));
	assert_int_equal(SL_OP_FIREHOSE_CREATE, 0x40);
	assert_int_equal(SL_OP_FIREHOSE_DELETE, 0x41);
	assert_int_equal(SL_OP_FIREHOSE_LIST, 0x42);
	assert_int_equal(SL_OP_FIREHOSE_DESCRIBE, 0x43);
	assert_int_equal(SL_OP_FIREHOSE_FLUSH, 0x44);
	assert_false(sl_proto_opcode_known(0x3f));
	assert_false(sl_proto_opcode_known(0x45));
	assert_false(sl_proto_opcode_known(0x38));
	assert_int_equal(SL_PROTO_FIREHOSE_SHARD_STATUS_BYTES_MIN, 98); /* docs/protocol.md */
}

/* ---- firehose_config ---- */

static void create_round_trip(void **state)
{
	(void)state;
	struct sl_buf b;
	sl_buf_init(&b);
	struct sl_firehose_wire f = sample_config(), d;
	assert_int_equal(sl_proto_put_firehose_config(&b, &f), 0);
	/* Exact size, and the fixed tail: start_type then start_value, little-endian. */
	assert_int_equal(b.len, 1 + 14 + 1 + 6 + 2 + 26 + 2 + 21 + 1 + 9 + 2 + 27 + 1 + 8 + 8 + 4 +
				    1 + 4 + 1 + 8 + 1 + 10 + 1 + 8);
	assert_int_equal(sl_load_u64(b.data + b.len - 8), 1764291723000ull);
	assert_int_equal(b.data[b.len - 9], SLUICE_POS_AT_TIMESTAMP);
	assert_int_equal(sl_proto_decode_firehose_create(b.data, b.len, &d), 0);
	assert_config_equal(&f, &d);
	assert_true((const uint8_t *)d.dest.p > b.data &&
		    (const uint8_t *)d.dest.p < b.data + b.len);

	/* Every proper prefix and one trailing byte: protocol, *ret untouched. */
	struct sl_firehose_wire untouched;
	memset(&untouched, 0x5a, sizeof(untouched));
	for (size_t n = 0; n < b.len; n++) {
		uint8_t *cut = dup_bytes(b.data, n);
		memcpy(&d, &untouched, sizeof(d));
		assert_int_equal(sl_proto_decode_firehose_create(cut, n, &d), SLUICE_ERR_PROTOCOL);
		assert_memory_equal(&d, &untouched, sizeof(d));
		struct sl_reader r;
		sl_reader_init(&r, cut, n);
		assert_int_equal(sl_proto_get_firehose_config(&r, &d), SLUICE_ERR_PROTOCOL);
		assert_false(r.ok);
		free(cut);
	}
	uint8_t *longer = malloc(b.len + 1);
	assert_non_null(longer);
	memcpy(longer, b.data, b.len);
	longer[b.len] = 0;
	assert_int_equal(sl_proto_decode_firehose_create(longer, b.len + 1, &d),
			 SLUICE_ERR_PROTOCOL);
	free(longer);

	/* The reader form agrees, and leaves the reader after the config. */
	assert_int_equal(sl_buf_put_u64(&b, 12345), 0);
	struct sl_reader r;
	sl_reader_init(&r, b.data, b.len);
	assert_int_equal(sl_proto_get_firehose_config(&r, &d), 0);
	assert_config_equal(&f, &d);
	assert_int_equal(sl_reader_left(&r), 8);

	/* Minimal variant: file destination, every optional string empty. */
	f.dest = S("file:///var/lib/sluice/objects");
	f.endpoint = f.region = f.credentials_file = f.profile = f.on_failure = S("");
	f.compression = SL_PROTO_FIREHOSE_COMPRESSION_NONE;
	f.format = SL_PROTO_FIREHOSE_FORMAT_RAW;
	f.zstd_level = -7;
	f.max_retry_duration_ms = 3600000;
	f.buffer_interval_ms = 0;
	f.start = (struct sluice_position){.type = SLUICE_POS_TRIM_HORIZON};
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_put_firehose_config(&b, &f), 0);
	assert_int_equal(sl_proto_decode_firehose_create(b.data, b.len, &d), 0);
	assert_config_equal(&f, &d);
	sl_buf_finish(&b);
}

static void create_checks(void **state)
{
	(void)state;
	struct sl_buf b;
	sl_buf_init(&b);
	struct sl_firehose_wire f, d;
	struct sl_reader r;

	/* Names: name, stream, on_failure (empty is fine, bad is not). */
	const char *bad_names[] = {"", "a b", "a/b", "x\xc3\xa9"};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		for (int which = 0; which < 3; which++) {
			f = sample_config();
			if (which == 0)
				f.name = S(bad_names[i]);
			else if (which == 1)
				f.stream = S(bad_names[i]);
			else if (bad_names[i][0])
				f.on_failure = S(bad_names[i]);
			else
				continue;
			f.compression = 9; /* names are checked before enums */
			sl_buf_reset(&b);
			assert_int_equal(sl_proto_put_firehose_config(&b, &f), 0);
			assert_int_equal(sl_proto_decode_firehose_create(b.data, b.len, &d),
					 SLUICE_ERR_INVALID_NAME);
			sl_reader_init(&r, b.data, b.len);
			assert_int_equal(sl_proto_get_firehose_config(&r, &d), SLUICE_ERR_PROTOCOL);
			assert_false(r.ok);
		}
	}

	/* Enums: INVALID_ARGUMENT for a request, passed on for a description. */
	const struct {
		uint8_t compression, format, type;
		int want;
	} enums[] = {
	    {0, 0, SLUICE_POS_TRIM_HORIZON, 0},
	    {1, 1, SLUICE_POS_LATEST, 0},
	    {1, 0, SLUICE_POS_AT_TIMESTAMP, 0},
	    {2, 0, SLUICE_POS_LATEST, SLUICE_ERR_INVALID_ARGUMENT},
	    {255, 0, SLUICE_POS_LATEST, SLUICE_ERR_INVALID_ARGUMENT},
	    {0, 2, SLUICE_POS_LATEST, SLUICE_ERR_INVALID_ARGUMENT},
	    {0, 0, SLUICE_POS_AT_SEQ, SLUICE_ERR_INVALID_ARGUMENT},
	    {0, 0, SLUICE_POS_AFTER_SEQ, SLUICE_ERR_INVALID_ARGUMENT},
	    {0, 0, 5, SLUICE_ERR_INVALID_ARGUMENT},
	};
	for (size_t i = 0; i < sizeof(enums) / sizeof(enums[0]); i++) {
		f = sample_config();
		f.compression = enums[i].compression;
		f.format = enums[i].format;
		f.start.type = (enum sluice_position_type)enums[i].type;
		sl_buf_reset(&b);
		assert_int_equal(sl_proto_put_firehose_config(&b, &f), 0);
		assert_int_equal(sl_proto_decode_firehose_create(b.data, b.len, &d), enums[i].want);
		sl_reader_init(&r, b.data, b.len);
		assert_int_equal(sl_proto_get_firehose_config(&r, &d), 0);
		assert_int_equal(d.compression, enums[i].compression);
		assert_int_equal(d.format, enums[i].format);
		assert_int_equal(d.start.type, enums[i].type);
	}

	/* String limits and NUL bytes: INVALID_ARGUMENT at max + 1, fine at max. */
	static char big[5000];
	memset(big, 'a', sizeof(big));
	const size_t max[] = {SL_PROTO_FIREHOSE_DEST_MAX, SL_PROTO_FIREHOSE_ENDPOINT_MAX,
			      SL_PROTO_FIREHOSE_REGION_MAX, SL_PROTO_FIREHOSE_CREDENTIALS_FILE_MAX,
			      SL_PROTO_FIREHOSE_PROFILE_MAX};
	for (int which = 0; which < 5; which++) {
		for (int k = 0; k < 3; k++) {
			f = sample_config();
			struct sl_str *s = which == 0	? &f.dest
					   : which == 1 ? &f.endpoint
					   : which == 2 ? &f.region
					   : which == 3 ? &f.credentials_file
							: &f.profile;
			*s = (struct sl_str){.p = big, .len = k == 1 ? max[which] + 1 : max[which]};
			if (k == 2)
				*s = (struct sl_str){.p = "ab\0c", .len = 4};
			sl_buf_reset(&b);
			assert_int_equal(sl_proto_put_firehose_config(&b, &f), 0);
			assert_int_equal(sl_proto_decode_firehose_create(b.data, b.len, &d),
					 k == 0 ? 0 : SLUICE_ERR_INVALID_ARGUMENT);
			sl_reader_init(&r, b.data, b.len);
			assert_int_equal(sl_proto_get_firehose_config(&r, &d), 0);
		}
	}

	/* Encoder limits: nothing appended on -EINVAL. */
	static char lng[300];
	memset(lng, 'a', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	struct sl_str *str8s[] = {&f.name, &f.stream, &f.region, &f.profile, &f.on_failure};
	for (size_t i = 0; i < 5; i++) {
		f = sample_config();
		*str8s[i] = S(lng);
		sl_buf_reset(&b);
		assert_int_equal(sl_proto_put_firehose_config(&b, &f), -EINVAL);
		assert_int_equal(b.len, 0);
	}
	struct sl_str *str16s[] = {&f.dest, &f.endpoint, &f.credentials_file};
	for (size_t i = 0; i < 3; i++) {
		f = sample_config();
		str16s[i]->len = 70000;
		assert_int_equal(sl_proto_put_firehose_config(&b, &f), -EINVAL);
		assert_int_equal(b.len, 0);
	}
	sl_buf_finish(&b);
}

/* ---- firehose_shard_status and the DESCRIBE answer ---- */

static struct sl_firehose_shard_status sample_status(void)
{
	struct sl_firehose_shard_status s = {
	    .shard_id = 3,
	    .checkpoint_seq = 2040,
	    .buffered_records = 17,
	    .buffered_bytes = 4096,
	    .last_flush_ms = 1764291723250ll,
	    .last_object_key = S("sluice/2026/11/28/01/orders-shardId-000000000003-"
				 "00000000000000001041-00000000000000002040.jsonl.zst"),
	    .objects_written = 5,
	    .records_archived = 1000,
	    .bytes_written = 123456,
	    .upload_failures = 2,
	    .sent_to_on_failure = 1,
	    .expired = 4,
	    .state = SL_PROTO_FIREHOSE_RETRYING,
	    .last_error = S("PUT s3://b/k: HTTP 503 SlowDown: reduce your request rate"),
	    .lag_ms = 61500,
	    .background = 1,
	};
	return s;
}

static void shard_status_round_trip(void **state)
{
	(void)state;
	struct sl_buf b;
	sl_buf_init(&b);
	struct sl_firehose_shard_status s = sample_status(), s2;
	assert_int_equal(sl_proto_put_firehose_shard_status(&b, &s), 0);
	assert_int_equal(b.len, SL_PROTO_FIREHOSE_SHARD_STATUS_BYTES_MIN + s.last_object_key.len +
				    s.last_error.len);
	struct sl_reader r;
	sl_reader_init(&r, b.data, b.len);
	assert_int_equal(sl_proto_get_firehose_shard_status(&r, &s2), 0);
	assert_int_equal(sl_reader_left(&r), 0);
	assert_int_equal(s2.shard_id, 3);
	assert_int_equal(s2.checkpoint_seq, 2040);
	assert_int_equal(s2.buffered_records, 17);
	assert_int_equal(s2.buffered_bytes, 4096);
	assert_int_equal(s2.last_flush_ms, 1764291723250ll);
	assert_sl_str_equal(s2.last_object_key, s.last_object_key);
	assert_int_equal(s2.objects_written, 5);
	assert_int_equal(s2.records_archived, 1000);
	assert_int_equal(s2.bytes_written, 123456);
	assert_int_equal(s2.upload_failures, 2);
	assert_int_equal(s2.sent_to_on_failure, 1);
	assert_int_equal(s2.expired, 4);
	assert_int_equal(s2.state, SL_PROTO_FIREHOSE_RETRYING);
	assert_sl_str_equal(s2.last_error, s.last_error);
	assert_int_equal(s2.lag_ms, 61500);
	assert_int_equal(s2.background, 1);
	/* The state byte sits right before last_error, lag_ms and background after it. */
	assert_int_equal(b.data[b.len - 9 - 2 - s.last_error.len - 1], SL_PROTO_FIREHOSE_RETRYING);
	assert_int_equal(b.data[b.len - 1], 1);
	for (size_t n = 0; n < b.len; n++) {
		uint8_t *cut = dup_bytes(b.data, n);
		sl_reader_init(&r, cut, n);
		assert_int_equal(sl_proto_get_firehose_shard_status(&r, &s2), SLUICE_ERR_PROTOCOL);
		assert_false(r.ok);
		free(cut);
	}
	/* Empty strings, never flushed, unknown state (a newer server): passed on. */
	sl_buf_reset(&b);
	s.state = 200;
	s.last_flush_ms = 0;
	s.last_object_key = S("");
	s.last_error = S("");
	assert_int_equal(sl_proto_put_firehose_shard_status(&b, &s), 0);
	assert_int_equal(b.len, SL_PROTO_FIREHOSE_SHARD_STATUS_BYTES_MIN);
	sl_reader_init(&r, b.data, b.len);
	assert_int_equal(sl_proto_get_firehose_shard_status(&r, &s2), 0);
	assert_int_equal(s2.state, 200);
	assert_int_equal(s2.last_flush_ms, 0);
	assert_int_equal(s2.last_object_key.len, 0);
	/* Encoder limits. */
	sl_buf_reset(&b);
	s.last_error.len = 70000;
	assert_int_equal(sl_proto_put_firehose_shard_status(&b, &s), -EINVAL);
	s.last_error.len = 0;
	s.last_object_key.len = 70000;
	assert_int_equal(sl_proto_put_firehose_shard_status(&b, &s), -EINVAL);
	assert_int_equal(b.len, 0);
	sl_buf_finish(&b);
}

static void describe_response(void **state)
{
	(void)state;
	/* A whole DESCRIBE answer as the server builds it, parsed as the client does. */
	struct sl_buf b;
	sl_buf_init(&b);
	size_t start;
	assert_int_equal(sl_proto_encode_response_head(&b, SL_OP_FIREHOSE_DESCRIBE, 5, 0, &start),
			 0);
	struct sl_firehose_wire f = sample_config(), d;
	assert_int_equal(sl_proto_put_firehose_config(&b, &f), 0);
	assert_int_equal(sl_buf_put_u64(&b, (uint64_t)1764291723000ll), 0);
	assert_int_equal(sl_buf_put_u32(&b, 2), 0);
	for (uint32_t i = 0; i < 2; i++) {
		struct sl_firehose_shard_status s = sample_status();
		s.shard_id = i;
		s.checkpoint_seq = 10 * i;
		assert_int_equal(sl_proto_put_firehose_shard_status(&b, &s), 0);
	}
	sl_proto_finish_frame(&b, start);
	struct sl_frame_header h;
	assert_int_equal(sl_proto_parse_header(b.data, b.len, &h), 0);
	assert_int_equal(h.opcode, SL_OP_FIREHOSE_DESCRIBE);
	assert_int_equal(4 + (size_t)h.length, b.len);
	int32_t status;
	struct sl_str msg;
	struct sl_reader r;
	assert_int_equal(sl_proto_decode_response_status(b.data + SL_FRAME_HEADER_BYTES,
							 b.len - SL_FRAME_HEADER_BYTES, &status,
							 &msg, &r),
			 0);
	assert_int_equal(status, 0);
	assert_int_equal(sl_proto_get_firehose_config(&r, &d), 0);
	assert_config_equal(&f, &d);
	uint64_t created;
	uint32_t n;
	assert_true(sl_reader_u64(&r, &created));
	assert_int_equal(created, 1764291723000ull);
	assert_true(sl_reader_u32(&r, &n));
	assert_int_equal(n, 2);
	for (uint32_t i = 0; i < n; i++) {
		struct sl_firehose_shard_status s;
		assert_int_equal(sl_proto_get_firehose_shard_status(&r, &s), 0);
		assert_int_equal(s.shard_id, i);
		assert_int_equal(s.checkpoint_seq, 10 * i);
	}
	assert_int_equal(sl_reader_left(&r), 0);
	sl_buf_finish(&b);
}

static void name_requests(void **state)
{
	(void)state;
	/* DELETE, DESCRIBE and FLUSH are bare names, decoded by sl_proto_decode_name. */
	struct sl_buf b;
	sl_buf_init(&b);
	assert_int_equal(sl_proto_put_str8(&b, "orders-archive", 14), 0);
	struct sl_str s;
	assert_int_equal(sl_proto_decode_name(b.data, b.len, &s), 0);
	assert_int_equal(s.len, 14);
	assert_int_equal(sl_proto_decode_name(b.data, b.len - 1, &s), SLUICE_ERR_PROTOCOL);
	sl_buf_finish(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(opcodes),		 cmocka_unit_test(create_round_trip),
	    cmocka_unit_test(create_checks),	 cmocka_unit_test(shard_status_round_trip),
	    cmocka_unit_test(describe_response), cmocka_unit_test(name_requests),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
