/* STREAM_SET_RETENTION and the tag requests (src/proto/stream_settings_messages.c). */
#include "proto/codec.h"

#include <sluice/errors.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void put_tag(struct sl_buf *b, const char *k, const char *v)
{
	assert_int_equal(sl_proto_put_str8(b, k, strlen(k)), 0);
	if (v)
		assert_int_equal(sl_proto_put_str16(b, v, strlen(v)), 0);
}

static void set_retention(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	sl_proto_put_str8(&b, "orders", 6);
	sl_buf_put_u64(&b, 172800000);
	struct sl_req_set_retention q;
	assert_int_equal(sl_proto_decode_set_retention(b.data, b.len, &q), 0);
	assert_int_equal(q.name.len, 6);
	assert_true(q.retention_ms == 172800000);
	assert_int_equal(sl_proto_decode_set_retention(b.data, b.len - 1, &q), SLUICE_ERR_PROTOCOL);
	sl_buf_put_u8(&b, 0);
	assert_int_equal(sl_proto_decode_set_retention(b.data, b.len, &q), SLUICE_ERR_PROTOCOL);
	sl_buf_reset(&b);
	sl_proto_put_str8(&b, "a/b", 3);
	sl_buf_put_u64(&b, 1);
	assert_int_equal(sl_proto_decode_set_retention(b.data, b.len, &q), SLUICE_ERR_INVALID_NAME);
	sl_buf_finish(&b);
}

static void add_tags_round_trip(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	sl_proto_put_str8(&b, "s", 1);
	sl_buf_put_u32(&b, 3);
	put_tag(&b, "team", "payments");
	put_tag(&b, "empty", "");
	put_tag(&b, "k\xc3\xa9", "v");
	struct sl_req_tags q;
	assert_int_equal(sl_proto_decode_tags(b.data, b.len, true, &q), 0);
	assert_int_equal(q.count, 3);
	struct sl_str k, v;
	assert_int_equal(sl_proto_tags_next(&q, &k, &v), 1);
	assert_int_equal(k.len, 4);
	assert_memory_equal(k.p, "team", 4);
	assert_memory_equal(v.p, "payments", 8);
	assert_int_equal(sl_proto_tags_next(&q, &k, &v), 1);
	assert_int_equal(v.len, 0);
	assert_int_equal(sl_proto_tags_next(&q, &k, &v), 1);
	assert_int_equal(sl_proto_tags_next(&q, &k, &v), 0);
	/* every truncation is malformed, never read past the end */
	for (size_t n = 0; n < b.len; n++)
		assert_int_equal(sl_proto_decode_tags(b.data, n, true, &q), SLUICE_ERR_PROTOCOL);
	/* read as REMOVE (keys only) the same bytes have trailing garbage */
	assert_int_not_equal(sl_proto_decode_tags(b.data, b.len, false, &q), 0);
	sl_buf_finish(&b);
}

static void tag_limits(void **state)
{
	struct sl_buf b;
	struct sl_req_tags q;
	sl_buf_init(&b);
	sl_proto_put_str8(&b, "s", 1);
	sl_buf_put_u32(&b, 0);
	assert_int_equal(sl_proto_decode_tags(b.data, b.len, false, &q), SLUICE_ERR_PROTOCOL);
	sl_buf_reset(&b);
	sl_proto_put_str8(&b, "s", 1);
	sl_buf_put_u32(&b, SL_PROTO_TAGS_MAX + 1);
	for (unsigned i = 0; i <= SL_PROTO_TAGS_MAX; i++)
		put_tag(&b, "k", NULL);
	assert_int_equal(sl_proto_decode_tags(b.data, b.len, false, &q), SLUICE_ERR_PROTOCOL);
	/* empty key, key over 128 bytes, value over 256 bytes, NUL inside */
	char longer[300];
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = 0;
	const struct {
		const char *k;
		size_t klen;
		const char *v;
		size_t vlen;
	} bad[] = {
	    {"", 0, "v", 1}, {longer, 129, "v", 1}, {"k", 1, longer, 257}, {"a\0b", 3, "", 0}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sl_buf_reset(&b);
		sl_proto_put_str8(&b, "s", 1);
		sl_buf_put_u32(&b, 1);
		sl_proto_put_str8(&b, bad[i].k, bad[i].klen);
		sl_proto_put_str16(&b, bad[i].v, bad[i].vlen);
		assert_int_equal(sl_proto_decode_tags(b.data, b.len, true, &q),
				 SLUICE_ERR_INVALID_ARGUMENT);
	}
	sl_buf_finish(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(set_retention),
	    cmocka_unit_test(add_tags_round_trip),
	    cmocka_unit_test(tag_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
