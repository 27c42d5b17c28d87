#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "log/record_format.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct sluice_record sample(const char *key, const uint8_t *data, uint32_t data_len, bool hk)
{
	struct sluice_record r = {0};
	r.seq = 0x0102030405060708ull;
	r.ts_ms = 1700000000123;
	r.key = key;
	r.key_len = (uint16_t)strlen(key);
	r.has_hash_key = hk;
	for (int i = 0; i < 16; i++)
		r.hash_key.be[i] = (uint8_t)(0xf0 + i);
	r.data = data;
	r.data_len = data_len;
	return r;
}

static void round_trip(void **state)
{
	uint8_t data[300];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	for (int hk = 0; hk <= 1; hk++) {
		struct sluice_record in = sample("partition-key", data, sizeof(data), hk);
		uint32_t flen = sl_record_frame_bytes(in.key_len, hk, in.data_len);
		assert_int_equal(flen, 32 + (hk ? 16 : 0) + 13 + 300 + 8);
		uint8_t *buf = malloc(flen);
		assert_int_equal(sl_record_encode(buf, &in), flen);

		struct sluice_record out;
		size_t got = 0;
		assert_int_equal(sl_record_decode(buf, flen, &out, &got), 0);
		assert_int_equal(got, flen);
		assert_true(out.seq == in.seq);
		assert_true(out.ts_ms == in.ts_ms);
		assert_int_equal(out.key_len, in.key_len);
		assert_memory_equal(out.key, in.key, in.key_len);
		assert_int_equal(out.data_len, in.data_len);
		assert_memory_equal(out.data, data, sizeof(data));
		assert_int_equal(out.has_hash_key, hk);
		if (hk)
			assert_memory_equal(out.hash_key.be, in.hash_key.be, 16);
		/* Split checksum (prefix + data by iovec) equals the contiguous one. */
		uint32_t pre = sl_record_prefix_bytes(in.key_len, hk);
		assert_true(sl_record_checksum_split(buf, pre, data, sizeof(data)) ==
			    sl_record_checksum(buf, flen));
		free(buf);
	}
}

static void empty_data_and_longest_key(void **state)
{
	char key[SLUICE_KEY_LEN_MAX + 1];
	memset(key, 'k', SLUICE_KEY_LEN_MAX);
	key[SLUICE_KEY_LEN_MAX] = 0;
	struct sluice_record in = sample(key, NULL, 0, false);
	uint8_t buf[512];
	size_t flen = sl_record_encode(buf, &in);
	struct sluice_record out;
	size_t got;
	assert_int_equal(sl_record_decode(buf, flen, &out, &got), 0);
	assert_int_equal(out.key_len, SLUICE_KEY_LEN_MAX);
	assert_int_equal(out.data_len, 0);
	/* Trailing bytes after the frame are not part of it. */
	memset(buf + flen, 0xaa, 10);
	assert_int_equal(sl_record_decode(buf, flen + 10, &out, &got), 0);
	assert_int_equal(got, flen);
}

static void truncated_is_eagain(void **state)
{
	const uint8_t data[] = "some data bytes";
	struct sluice_record in = sample("k", data, sizeof(data), true);
	uint8_t buf[256];
	size_t flen = sl_record_encode(buf, &in);
	for (size_t len = 0; len < flen; len++) {
		struct sluice_record out;
		size_t got = 99;
		assert_int_equal(sl_record_decode(buf, len, &out, &got), -EAGAIN);
		/* The length is reported once readable. */
		assert_int_equal(got, len >= 4 ? flen : 0);
	}
}

static void every_flipped_bit_is_corrupt(void **state)
{
	const uint8_t data[] = "0123456789abcdef";
	struct sluice_record in = sample("key", data, sizeof(data), true);
	uint8_t buf[256];
	size_t flen = sl_record_encode(buf, &in);
	for (size_t bit = 0; bit < flen * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		struct sluice_record out;
		size_t got;
		assert_int_equal(sl_record_decode(buf, flen, &out, &got), SLUICE_ERR_CORRUPT);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	struct sluice_record out;
	size_t got;
	assert_int_equal(sl_record_decode(buf, flen, &out, &got), 0);
}

/* Re-checksum a hand-edited frame so only the field check can reject it. */
static void reseal(uint8_t *buf, size_t flen)
{
	uint64_t sum = sl_record_checksum(buf, flen);
	memcpy(buf + flen - 8, &sum, 8);
}

static void bad_fields_rejected_even_with_good_checksum(void **state)
{
	const uint8_t data[] = "xyz";
	struct sluice_record in = sample("key", data, 3, false);
	uint8_t orig[128], buf[128];
	size_t flen = sl_record_encode(orig, &in);
	struct sluice_record out;
	size_t got;

	memcpy(buf, orig, flen);
	buf[24] = 0, buf[25] = 0; /* key_len 0 */
	reseal(buf, flen);
	assert_int_equal(sl_record_decode(buf, flen, &out, &got), SLUICE_ERR_CORRUPT);

	memcpy(buf, orig, flen);
	buf[24] = 0x01, buf[25] = 0x01; /* key_len 257 */
	reseal(buf, flen);
	assert_int_equal(sl_record_decode(buf, flen, &out, &got), SLUICE_ERR_CORRUPT);

	memcpy(buf, orig, flen);
	buf[26] = 0x02; /* unknown flag */
	reseal(buf, flen);
	assert_int_equal(sl_record_decode(buf, flen, &out, &got), SLUICE_ERR_CORRUPT);

	memcpy(buf, orig, flen);
	buf[27] = 1; /* reserved */
	reseal(buf, flen);
	assert_int_equal(sl_record_decode(buf, flen, &out, &got), SLUICE_ERR_CORRUPT);

	memcpy(buf, orig, flen);
	uint32_t huge = SLUICE_RECORD_BYTES_LIMIT + 1;
	memcpy(buf + 28, &huge, 4); /* data_len over the limit */
	assert_int_equal(sl_record_decode(buf, flen, &out, &got), SLUICE_ERR_CORRUPT);

	memcpy(buf, orig, flen);
	uint32_t fl = (uint32_t)flen + 1; /* frame_len disagrees with the fields */
	memcpy(buf, &fl, 4);
	assert_int_equal(sl_record_decode(buf, flen + 1, &out, &got), SLUICE_ERR_CORRUPT);

	/* Zeroes (a preallocated or torn tail) are corrupt at once, not "need more". */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(sl_record_decode(buf, 4, &out, &got), SLUICE_ERR_CORRUPT);
	/* A plausible length with a bad magic too. */
	memcpy(buf, orig, 8);
	buf[5] ^= 1;
	assert_int_equal(sl_record_decode(buf, 8, &out, &got), SLUICE_ERR_CORRUPT);
}

static void random_garbage_never_accepted(void **state)
{
	uint8_t buf[1024];
	unsigned seed = 12345;
	for (int iter = 0; iter < 20000; iter++) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (uint8_t)rand_r(&seed);
		/* Make the length and magic plausible half the time. */
		if (iter & 1) {
			uint32_t fl = 41 + (uint32_t)(rand_r(&seed) % 900);
			memcpy(buf, &fl, 4);
			uint32_t m = SL_RECORD_MAGIC;
			memcpy(buf + 4, &m, 4);
		}
		struct sluice_record out;
		size_t got;
		int r = sl_record_decode(buf, sizeof(buf), &out, &got);
		assert_true(r == SLUICE_ERR_CORRUPT || r == -EAGAIN);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip),
	    cmocka_unit_test(empty_data_and_longest_key),
	    cmocka_unit_test(truncated_is_eagain),
	    cmocka_unit_test(every_flipped_bit_is_corrupt),
	    cmocka_unit_test(bad_fields_rejected_even_with_good_checksum),
	    cmocka_unit_test(random_garbage_never_accepted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
