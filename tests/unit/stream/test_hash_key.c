#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <sluice/errors.h>

#include "stream/hash_key.h"

static sl_u128 dec(const char *s)
{
	sl_u128 v = 0;
	assert_int_equal(sl_u128_parse_str(s, &v), 0);
	return v;
}

static void assert_dec(sl_u128 v, const char *want)
{
	char buf[SL_U128_DEC_BUF];
	size_t n = sl_u128_format(v, buf);
	assert_string_equal(buf, want);
	assert_int_equal(n, strlen(want));
}

static sl_u128 hash_of(const char *key)
{
	sl_u128 v;
	assert_int_equal(sl_hash_u128_of_partition_key((const uint8_t *)key, strlen(key), &v), 0);
	return v;
}

static void md5_vectors(void **state)
{
	/* RFC 1321 test suite, and the decimal form Kinesis would compare against. */
	assert_dec(hash_of("a"), "16955237001963240173058271559858726497");
	assert_true(hash_of("a") == ((sl_u128)0x0cc175b9c0f1b6a8ull << 64 | 0x31c399e269772661ull));
	assert_dec(hash_of(""), "281949768489412648962353822266799178366");
	assert_dec(hash_of("abc"), "191415658344158766168031473277922803570");
	assert_dec(hash_of("partition-key-1"), "33365116028791453877729010807000998774");

	/* The big-endian struct form holds the digest bytes in order. */
	struct sluice_hash_key k;
	assert_int_equal(sl_hash_key_of_partition_key((const uint8_t *)"a", 1, &k), 0);
	static const uint8_t digest_a[16] = {0x0c, 0xc1, 0x75, 0xb9, 0xc0, 0xf1, 0xb6, 0xa8,
					     0x31, 0xc3, 0x99, 0xe2, 0x69, 0x77, 0x26, 0x61};
	assert_memory_equal(k.be, digest_a, 16);

	/* The per-thread context can be dropped and comes back. */
	sl_hash_key_thread_cleanup();
	sl_hash_key_thread_cleanup();
	assert_dec(hash_of("a"), "16955237001963240173058271559858726497");
}

static void *hash_thread(void *arg)
{
	int *bad = arg;
	for (int i = 0; i < 2000; i++)
		if (hash_of("abc") != dec("191415658344158766168031473277922803570"))
			(*bad)++;
	return NULL;
}

static void md5_threads(void **state)
{
	/* Each thread has its own context; results must not interfere. */
	pthread_t t[4];
	int bad[4] = {0};
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hash_thread, &bad[i]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(bad[i], 0);
	}
}

static void conversions(void **state)
{
	sl_u128 v = ((sl_u128)0x0102030405060708ull << 64) | 0x090a0b0c0d0e0f10ull;
	struct sluice_hash_key k;
	sl_hash_key_from_u128(v, &k);
	for (int i = 0; i < 16; i++)
		assert_int_equal(k.be[i], i + 1);
	assert_true(sl_hash_key_to_u128(&k) == v);
	sl_hash_key_from_u128(SL_U128_MAX, &k);
	assert_true(sl_hash_key_to_u128(&k) == SL_U128_MAX);
	sl_hash_key_from_u128(0, &k);
	assert_true(sl_hash_key_to_u128(&k) == 0);
}

static void decimal_round_trips(void **state)
{
	static const char *values[] = {
	    "0",
	    "1",
	    "9",
	    "10",
	    "9999999999999999999",
	    "10000000000000000000",
	    "18446744073709551615",
	    "18446744073709551616",
	    "99999999999999999999999999999999999999",
	    "100000000000000000000000000000000000000",
	    "170141183460469231731687303715884105728",
	    "340282366920938463463374607431768211455",
	};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		assert_dec(dec(values[i]), values[i]);
	assert_true(dec("340282366920938463463374607431768211455") == SL_U128_MAX);
	assert_true(dec("18446744073709551616") == (sl_u128)1 << 64);
	assert_dec(0, "0");
	assert_dec(SL_U128_MAX, "340282366920938463463374607431768211455");

	/* A walk through many magnitudes. */
	sl_u128 x = 1;
	for (int i = 0; i < 200; i++) {
		char buf[SL_U128_DEC_BUF];
		sl_u128_format(x, buf);
		assert_true(dec(buf) == x);
		x = x * 3 + 7;
	}
}

static void decimal_rejects(void **state)
{
	sl_u128 v = 42;
	assert_int_equal(sl_u128_parse_str("", &v), -EINVAL);
	assert_int_equal(sl_u128_parse_str("-1", &v), -EINVAL);
	assert_int_equal(sl_u128_parse_str("+1", &v), -EINVAL);
	assert_int_equal(sl_u128_parse_str(" 1", &v), -EINVAL);
	assert_int_equal(sl_u128_parse_str("1 ", &v), -EINVAL);
	assert_int_equal(sl_u128_parse_str("1a", &v), -EINVAL);
	assert_int_equal(sl_u128_parse_str("0x10", &v), -EINVAL);
	assert_int_equal(sl_u128_parse_str("01", &v), -EINVAL);
	assert_int_equal(sl_u128_parse_str("00", &v), -EINVAL);
	assert_int_equal(sl_u128_parse_str("1.5", &v), -EINVAL);
	assert_int_equal(sl_u128_parse_str("340282366920938463463374607431768211456", &v), -ERANGE);
	assert_int_equal(sl_u128_parse_str("999999999999999999999999999999999999999", &v), -ERANGE);
	assert_int_equal(sl_u128_parse_str("1000000000000000000000000000000000000000000000", &v),
			 -ERANGE);
	/* Length-bounded: an embedded NUL is not a digit. */
	assert_int_equal(sl_u128_parse("12\0003", 4, &v), -EINVAL);
	assert_int_equal(sl_u128_parse("123", 2, &v), 0);
	assert_true(v == 12);
	v = 42;
	assert_int_equal(sl_u128_parse("123", 0, &v), -EINVAL);
	assert_true(v == 42); /* untouched on failure */
}

static void check_even(uint32_t n, const char *const *want_starts)
{
	sl_u128 prev_end = 0;
	for (uint32_t i = 0; i < n; i++) {
		sl_u128 s, e;
		sl_hash_range_even(i, n, &s, &e);
		if (want_starts)
			assert_dec(s, want_starts[i]);
		if (i == 0)
			assert_true(s == 0);
		else
			assert_true(s == prev_end + 1);
		assert_true(s <= e);
		prev_end = e;
	}
	assert_true(prev_end == SL_U128_MAX);
}

static void even_split(void **state)
{
	/* The boundaries Kinesis CreateStream gives. */
	static const char *four[] = {"0", "85070591730234615865843651857942052864",
				     "170141183460469231731687303715884105728",
				     "255211775190703847597530955573826158592"};
	static const char *three[] = {"0", "113427455640312821154458202477256070485",
				      "226854911280625642308916404954512140970"};
	static const char *seven[] = {"0",
				      "48611766702991209066196372490252601636",
				      "97223533405982418132392744980505203273",
				      "145835300108973627198589117470757804909",
				      "194447066811964836264785489961010406546",
				      "243058833514956045330981862451263008182",
				      "291670600217947254397178234941515609819"};
	check_even(4, four);
	check_even(3, three);
	check_even(7, seven);
	sl_u128 s, e;
	sl_hash_range_even(0, 4, &s, &e);
	assert_dec(e, "85070591730234615865843651857942052863");
	sl_hash_range_even(0, 1, &s, &e);
	assert_true(s == 0 && e == SL_U128_MAX);
	sl_hash_range_even(1, 4096, &s, &e);
	assert_dec(s, "83076749736557242056487941267521536");
	sl_hash_range_even(2047, 4096, &s, &e);
	assert_dec(s, "170058106710732674489630815774616584192");
	sl_hash_range_even(4095, 4096, &s, &e);
	assert_dec(s, "340199290171201906221318119490500689920");
	assert_true(e == SL_U128_MAX);
	for (uint32_t n = 1; n <= 300; n++)
		check_even(n, NULL);
	check_even(SLUICE_SHARDS_MAX, NULL);
	check_even(SLUICE_SHARDS_MAX - 1, NULL);
}

static void routing_even(void **state)
{
	struct sl_shard_range r[4];
	for (uint32_t i = 0; i < 4; i++) {
		sl_hash_range_even(i, 4, &r[i].start, &r[i].end);
		r[i].shard_id = 10 + i;
	}
	/* Any order in. */
	struct sl_shard_range shuffled[4] = {r[2], r[0], r[3], r[1]};
	struct sl_shard_map *map = NULL;
	assert_int_equal(sl_shard_map_create(shuffled, 4, &map), 0);
	assert_int_equal(sl_shard_map_count(map), 4);
	for (uint32_t i = 0; i < 4; i++) {
		assert_int_equal(sl_shard_map_find(map, r[i].start), 10 + i);
		assert_int_equal(sl_shard_map_find(map, r[i].end), 10 + i);
		assert_int_equal(sl_shard_map_find(map, r[i].start + (r[i].end - r[i].start) / 2),
				 10 + i);
		if (i > 0)
			assert_int_equal(sl_shard_map_find(map, r[i].start - 1), 10 + i - 1);
	}
	assert_int_equal(sl_shard_map_find(map, 0), 10);
	assert_int_equal(sl_shard_map_find(map, SL_U128_MAX), 13);
	/* "a" hashes to 0x0cc1..., in the first quarter. */
	assert_int_equal(sl_shard_map_find(map, hash_of("a")), 10);
	sl_shard_map_destroy(map);

	/* One shard owns everything. */
	struct sl_shard_range all = {0, SL_U128_MAX, 7};
	assert_int_equal(sl_shard_map_create(&all, 1, &map), 0);
	assert_int_equal(sl_shard_map_find(map, 0), 7);
	assert_int_equal(sl_shard_map_find(map, SL_U128_MAX), 7);
	sl_shard_map_destroy(map);
	sl_shard_map_destroy(NULL);
}

static void routing_uneven(void **state)
{
	/* After splits and merges: tiny ranges, single-key ranges, a huge one. */
	struct sl_shard_range r[] = {
	    {0, 0, 1},
	    {1, 1, 2},
	    {2, 1000, 3},
	    {1001, SL_U128_MAX / 2, 4},
	    {SL_U128_MAX / 2 + 1, SL_U128_MAX - 1, 5},
	    {SL_U128_MAX, SL_U128_MAX, 6},
	};
	size_t n = sizeof(r) / sizeof(r[0]);
	struct sl_shard_map *map;
	assert_int_equal(sl_shard_map_create(r, n, &map), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(sl_shard_map_find(map, r[i].start), r[i].shard_id);
		assert_int_equal(sl_shard_map_find(map, r[i].end), r[i].shard_id);
	}
	assert_int_equal(sl_shard_map_find(map, 500), 3);
	assert_int_equal(sl_shard_map_find(map, 1001), 4);
	/* Brute check against a linear scan over keys near every boundary. */
	for (size_t i = 0; i < n; i++) {
		for (int d = -2; d <= 2; d++) {
			sl_u128 k = r[i].start + (sl_u128)(__int128)d; /* wraps at the ends */
			uint32_t want = 0;
			for (size_t j = 0; j < n; j++)
				if (k >= r[j].start && k <= r[j].end)
					want = r[j].shard_id;
			assert_int_equal(sl_shard_map_find(map, k), want);
		}
	}
	sl_shard_map_destroy(map);
}

static void routing_rejects(void **state)
{
	struct sl_shard_map *map = (struct sl_shard_map *)0x1;
	sl_u128 half = SL_U128_MAX / 2;
	struct sl_shard_range gap[] = {{0, half - 1, 0}, {half + 1, SL_U128_MAX, 1}};
	struct sl_shard_range overlap[] = {{0, half + 1, 0}, {half, SL_U128_MAX, 1}};
	struct sl_shard_range no_zero[] = {{1, SL_U128_MAX, 0}};
	struct sl_shard_range no_max[] = {{0, SL_U128_MAX - 1, 0}};
	struct sl_shard_range inverted[] = {{0, 5, 0}, {10, 6, 1}, {6, SL_U128_MAX, 2}};
	struct sl_shard_range dup[] = {{0, SL_U128_MAX, 0}, {0, SL_U128_MAX, 1}};
	assert_int_equal(sl_shard_map_create(gap, 2, &map), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_shard_map_create(overlap, 2, &map), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_shard_map_create(no_zero, 1, &map), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_shard_map_create(no_max, 1, &map), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_shard_map_create(inverted, 3, &map), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_shard_map_create(dup, 2, &map), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_shard_map_create(gap, 0, &map), SLUICE_ERR_INVALID_ARGUMENT);
	assert_ptr_equal(map, (struct sl_shard_map *)0x1); /* untouched */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(md5_vectors),     cmocka_unit_test(md5_threads),
	    cmocka_unit_test(conversions),     cmocka_unit_test(decimal_round_trips),
	    cmocka_unit_test(decimal_rejects), cmocka_unit_test(even_split),
	    cmocka_unit_test(routing_even),    cmocka_unit_test(routing_uneven),
	    cmocka_unit_test(routing_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
