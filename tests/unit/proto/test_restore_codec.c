/* Restore bodies (src/proto/restore_messages.c): STREAM_CREATE_FROM_META and RESTORE_APPEND. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sluice/errors.h>

#include "proto/codec.h"

#include <string.h>

static void put_head(struct sl_buf *b, const char *stream, uint32_t shard, uint32_t n)
{
	assert_int_equal(sl_proto_put_str8(b, stream, strlen(stream)), 0);
	assert_int_equal(sl_buf_put_u32(b, shard), 0);
	assert_int_equal(sl_buf_put_u32(b, n), 0);
}

static void put_rec(struct sl_buf *b, uint64_t seq, int64_t ts, const char *key, const char *data)
{
	struct sluice_record r = {.seq = seq,
				  .ts_ms = ts,
				  .key = key,
				  .key_len = (uint16_t)strlen(key),
				  .data = (const uint8_t *)data,
				  .data_len = (uint32_t)strlen(data)};
	assert_int_equal(sl_proto_put_restore_record(b, &r), 0);
}

/* Decode and walk b: the number of good records, or the first error. */
static int walk(const struct sl_buf *b, uint32_t max, struct sl_restore_record_view *last)
{
	struct sl_req_restore_append q;
	int r = sl_proto_decode_restore_append(b->data, b->len, &q);
	if (r < 0)
		return r;
	int n = 0;
	while ((r = sl_proto_restore_next(&q, max, last)) == 1)
		n++;
	return r < 0 ? r : n;
}

static void append_round_trip(void **state)
{
	(void)state;
	struct sl_buf b;
	sl_buf_init(&b);
	put_head(&b, "orders", 7, 2);
	put_rec(&b, 41, 1795827723250, "user-1", "hello");
	put_rec(&b, 45, 1795827723251, "cl\xc3\xa9", "");
	struct sl_req_restore_append q;
	assert_int_equal(sl_proto_decode_restore_append(b.data, b.len, &q), 0);
	assert_int_equal(q.shard_id, 7);
	assert_int_equal(q.count, 2);
	assert_int_equal(q.stream.len, 6);
	struct sl_restore_record_view v;
	assert_int_equal(sl_proto_restore_next(&q, 100, &v), 1);
	assert_int_equal(v.seq, 41);
	assert_int_equal(v.ts_ms, 1795827723250);
	assert_int_equal(v.key_len, 6);
	assert_memory_equal(v.data, "hello", 5);
	assert_int_equal(sl_proto_restore_next(&q, 100, &v), 1);
	assert_int_equal(v.seq, 45);
	assert_int_equal(v.data_len, 0);
	assert_int_equal(sl_proto_restore_next(&q, 100, &v), 0);
	sl_buf_finish(&b);
}

static void append_rejects(void **state)
{
	(void)state;
	struct sl_buf b;
	struct sl_restore_record_view v;
	sl_buf_init(&b);
	/* Trailing byte, truncation anywhere. */
	put_head(&b, "s", 0, 1);
	put_rec(&b, 1, 5, "k", "data");
	size_t full = b.len;
	for (size_t cut = 0; cut < full; cut++) {
		struct sl_buf t = {.data = b.data, .len = cut, .cap = cut};
		int r = walk(&t, 100, &v);
		assert_true(r == SLUICE_ERR_PROTOCOL || r == SLUICE_ERR_INVALID_NAME);
	}
	assert_int_equal(sl_buf_put_u8(&b, 0), 0);
	assert_int_equal(walk(&b, 100, &v), SLUICE_ERR_PROTOCOL);
	/* Meaning: 0 records, bad name, bad key, too large, seq or ts 0. */
	sl_buf_reset(&b);
	put_head(&b, "s", 0, 0);
	assert_int_equal(walk(&b, 100, &v), SLUICE_ERR_INVALID_ARGUMENT);
	sl_buf_reset(&b);
	put_head(&b, "bad/name", 0, 1);
	put_rec(&b, 1, 5, "k", "");
	assert_int_equal(walk(&b, 100, &v), SLUICE_ERR_INVALID_NAME);
	const struct {
		uint64_t seq;
		int64_t ts;
		const char *key, *data;
		int want;
	} cases[] = {
	    {1, 5, "", "", SLUICE_ERR_INVALID_KEY},
	    {1, 5, "\xff", "", SLUICE_ERR_INVALID_KEY},
	    {1, 5, "k", "0123456789abc", SLUICE_ERR_RECORD_TOO_LARGE},
	    {0, 5, "k", "", SLUICE_ERR_INVALID_ARGUMENT},
	    {1, 0, "k", "", SLUICE_ERR_INVALID_ARGUMENT},
	    {1, -7, "k", "", SLUICE_ERR_INVALID_ARGUMENT},
	    {UINT64_MAX, 5, "k", "", SLUICE_ERR_INVALID_ARGUMENT},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sl_buf_reset(&b);
		put_head(&b, "s", 0, 1);
		put_rec(&b, cases[i].seq, cases[i].ts, cases[i].key, cases[i].data);
		assert_int_equal(walk(&b, 12, &v), cases[i].want);
	}
	/* A count the bytes cannot hold, and one over the protocol's maximum. */
	sl_buf_reset(&b);
	put_head(&b, "s", 0, 3);
	put_rec(&b, 1, 5, "k", "");
	assert_int_equal(walk(&b, 100, &v), SLUICE_ERR_PROTOCOL);
	sl_buf_reset(&b);
	put_head(&b, "s", 0, SL_PROTO_RECORDS_MAX + 1);
	assert_int_equal(walk(&b, 100, &v), SLUICE_ERR_PROTOCOL);
	sl_buf_finish(&b);
}

static void create_from_meta(void **state)
{
	(void)state;
	struct sl_buf b;
	sl_buf_init(&b);
	const char *doc = "{\"format\":1}";
	assert_int_equal(sl_proto_put_str8(&b, "copy", 4), 0);
	assert_int_equal(sl_buf_put_u32(&b, (uint32_t)strlen(doc)), 0);
	assert_int_equal(sl_buf_put(&b, doc, strlen(doc)), 0);
	struct sl_str name, json;
	assert_int_equal(sl_proto_decode_create_from_meta(b.data, b.len, &name, &json), 0);
	assert_int_equal(name.len, 4);
	assert_int_equal(json.len, strlen(doc));
	assert_memory_equal(json.p, doc, json.len);
	assert_int_equal(sl_proto_decode_create_from_meta(b.data, b.len - 1, &name, &json),
			 SLUICE_ERR_PROTOCOL);
	assert_int_equal(sl_buf_put_u8(&b, 0), 0);
	assert_int_equal(sl_proto_decode_create_from_meta(b.data, b.len, &name, &json),
			 SLUICE_ERR_PROTOCOL);
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_put_str8(&b, "copy", 4), 0);
	assert_int_equal(sl_buf_put_u32(&b, 0), 0);
	assert_int_equal(sl_proto_decode_create_from_meta(b.data, b.len, &name, &json),
			 SLUICE_ERR_INVALID_ARGUMENT);
	sl_buf_reset(&b);
	assert_int_equal(sl_proto_put_str8(&b, "..x/", 4), 0);
	assert_int_equal(sl_buf_put_u32(&b, 1), 0);
	assert_int_equal(sl_buf_put_u8(&b, '{'), 0);
	assert_int_equal(sl_proto_decode_create_from_meta(b.data, b.len, &name, &json),
			 SLUICE_ERR_INVALID_NAME);
	assert_true(sl_proto_opcode_known(SL_OP_STREAM_CREATE_FROM_META));
	assert_true(sl_proto_opcode_known(SL_OP_RESTORE_APPEND));
	assert_true(sl_proto_opcode_known(SL_OP_STREAM_META_GET));
	assert_false(sl_proto_opcode_known(0x24));
	sl_buf_finish(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(append_round_trip),
	    cmocka_unit_test(append_rejects),
	    cmocka_unit_test(create_from_meta),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
