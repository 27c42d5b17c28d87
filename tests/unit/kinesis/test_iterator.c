/* Shard iterator codec (src/kinesis/iterator.c): round trips, authentication, expiry. */
#include "kinesis/iterator.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static uint8_t key[KIN_ITERATOR_KEY_BYTES];

static int setup(void **state)
{
	return kin_iterator_key_generate(key);
}

static struct kin_iterator sample(enum sluice_position_type t, uint64_t v)
{
	struct kin_iterator it = {
	    .shard_id = 4095, .pos = {.type = t, .value = v}, .issued_ms = 1795839432910};
	strcpy(it.stream, "orders.v2");
	return it;
}

static void round_trip_every_type(void **state)
{
	for (int t = SLUICE_POS_TRIM_HORIZON; t <= SLUICE_POS_AT_TIMESTAMP; t++) {
		struct kin_iterator it = sample((enum sluice_position_type)t, UINT64_MAX - 7);
		char text[KIN_ITERATOR_BUF];
		assert_int_equal(kin_iterator_encode(key, &it, text), 0);
		assert_true(strlen(text) <= 512); /* Kinesis' limit on ShardIterator */
		struct kin_iterator got;
		assert_int_equal(kin_iterator_decode(key, text, strlen(text), it.issued_ms, &got),
				 0);
		assert_string_equal(got.stream, it.stream);
		assert_int_equal(got.shard_id, it.shard_id);
		assert_int_equal(got.pos.type, it.pos.type);
		assert_true(got.pos.value == it.pos.value);
		assert_true(got.issued_ms == it.issued_ms);
	}
}

static void longest_name_fits(void **state)
{
	struct kin_iterator it = sample(SLUICE_POS_AT_SEQ, 1);
	memset(it.stream, 'n', SLUICE_NAME_LEN_MAX);
	it.stream[SLUICE_NAME_LEN_MAX] = 0;
	char text[KIN_ITERATOR_BUF];
	assert_int_equal(kin_iterator_encode(key, &it, text), 0);
	assert_true(strlen(text) < KIN_ITERATOR_BUF);
	struct kin_iterator got;
	assert_int_equal(kin_iterator_decode(key, text, strlen(text), it.issued_ms, &got), 0);
	assert_string_equal(got.stream, it.stream);
	it.stream[0] = 0;
	assert_int_equal(kin_iterator_encode(key, &it, text), -EINVAL);
}

static void every_changed_character_is_refused(void **state)
{
	struct kin_iterator it = sample(SLUICE_POS_AFTER_SEQ, 42);
	char text[KIN_ITERATOR_BUF];
	assert_int_equal(kin_iterator_encode(key, &it, text), 0);
	size_t n = strlen(text);
	for (size_t i = 0; i < n; i++) {
		if (text[i] == '=')
			continue;
		char copy[KIN_ITERATOR_BUF];
		memcpy(copy, text, n + 1);
		copy[i] = copy[i] == 'A' ? 'B' : 'A';
		struct kin_iterator got = {0};
		assert_int_equal(kin_iterator_decode(key, copy, n, it.issued_ms, &got), -EINVAL);
		assert_int_equal(got.shard_id, 0); /* untouched */
	}
}

static void another_key_is_refused(void **state)
{
	uint8_t other[KIN_ITERATOR_KEY_BYTES];
	assert_int_equal(kin_iterator_key_generate(other), 0);
	struct kin_iterator it = sample(SLUICE_POS_LATEST, 0);
	char text[KIN_ITERATOR_BUF];
	assert_int_equal(kin_iterator_encode(key, &it, text), 0);
	struct kin_iterator got;
	assert_int_equal(kin_iterator_decode(other, text, strlen(text), it.issued_ms, &got),
			 -EINVAL);
}

static void expires_after_five_minutes(void **state)
{
	struct kin_iterator it = sample(SLUICE_POS_TRIM_HORIZON, 0);
	char text[KIN_ITERATOR_BUF];
	assert_int_equal(kin_iterator_encode(key, &it, text), 0);
	struct kin_iterator got;
	int64_t t = it.issued_ms + KIN_ITERATOR_TTL_MS;
	assert_int_equal(kin_iterator_decode(key, text, strlen(text), t, &got), 0);
	assert_int_equal(kin_iterator_decode(key, text, strlen(text), t + 1, &got), -ETIME);
}

static void malformed_text(void **state)
{
	struct kin_iterator got;
	static const char *const bad[] = {
	    "",	    "A",    "AAAA",	"!!!!", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	    "AQ==", "====", "YWJj ZGVm"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(kin_iterator_decode(key, bad[i], strlen(bad[i]), 0, &got),
				 -EINVAL);
	char longtext[600];
	memset(longtext, 'A', sizeof(longtext));
	assert_int_equal(kin_iterator_decode(key, longtext, sizeof(longtext), 0, &got), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip_every_type),
	    cmocka_unit_test(longest_name_fits),
	    cmocka_unit_test(every_changed_character_is_refused),
	    cmocka_unit_test(another_key_is_refused),
	    cmocka_unit_test(expires_after_five_minutes),
	    cmocka_unit_test(malformed_text),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
