#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/base64.h"
#include "common/buf.h"

/* A bit-by-bit encoder written from RFC 4648 alone, independent of the one under test. */
static size_t reference_encode(char *out, const uint8_t *in, size_t n)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t bit = 0; bit < n * 8; bit += 6) {
		unsigned v = 0;
		for (size_t k = 0; k < 6; k++) {
			size_t b = bit + k;
			unsigned x = b < n * 8 ? (in[b / 8] >> (7 - b % 8)) & 1u : 0u;
			v = v << 1 | x;
		}
		out[o++] = abc[v];
	}
	while (o % 4)
		out[o++] = '=';
	return o;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint8_t next_byte(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint8_t)(rng >> 24);
}

static void test_rfc4648_vectors(void **state)
{
	(void)state;
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const enc[] = {"",	      "Zg==",	  "Zm8=",    "Zm9v",
					  "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (size_t i = 0; i < 7; i++) {
		char out[16];
		size_t n = strlen(plain[i]);
		size_t len = sl_base64_encode(out, (const uint8_t *)plain[i], n);
		assert_int_equal(len, strlen(enc[i]));
		assert_int_equal(len, sl_base64_encoded_len(n));
		assert_memory_equal(out, enc[i], len);
		len = sl_base64_encode_scalar(out, (const uint8_t *)plain[i], n);
		assert_memory_equal(out, enc[i], len);
	}
}

/*
 * Every length from 0 to 600 (the vector loop's 24-byte steps, its 28-byte stop and every tail
 * length), at every start offset modulo 32, with random bytes and with bytes that make every
 * 6-bit value: the vector and scalar encoders equal the reference, write nothing past the
 * encoded length, and decode back to the input.
 */
static void test_vector_equals_scalar_and_reference(void **state)
{
	(void)state;
	enum { MAXN = 600, SLACK = 64 };
	uint8_t *buf = malloc(MAXN + 32);
	char *want = malloc(MAXN * 2 + SLACK), *got = malloc(MAXN * 2 + SLACK);
	struct sl_buf dec;
	sl_buf_init(&dec);
	for (int pattern = 0; pattern < 2; pattern++) {
		for (size_t n = 0; n <= MAXN; n++) {
			for (size_t off = 0; off < 32; off += n < 100 ? 1 : 7) {
				uint8_t *in = buf + off;
				for (size_t i = 0; i < n; i++)
					in[i] = pattern ? next_byte() : (uint8_t)(i * 4 + i / 64);
				size_t wl = reference_encode(want, in, n);
				assert_int_equal(wl, sl_base64_encoded_len(n));
				memset(got, '#', wl + SLACK);
				assert_int_equal(sl_base64_encode(got, in, n), wl);
				assert_memory_equal(got, want, wl);
				for (size_t k = 0; k < SLACK; k++)
					assert_int_equal(got[wl + k], '#');
				memset(got, '#', wl + SLACK);
				assert_int_equal(sl_base64_encode_scalar(got, in, n), wl);
				assert_memory_equal(got, want, wl);
				assert_int_equal(got[wl], '#');
				assert_int_equal(sl_base64_decode(got, wl, &dec), 0);
				assert_int_equal(dec.len, n);
				if (n)
					assert_memory_equal(dec.data, in, n);
			}
		}
	}
	sl_buf_finish(&dec);
	free(buf);
	free(want);
	free(got);
}

/* On a CPU with AVX2 the vector encoder is the one used (so the test above exercised it). */
static void test_vector_encoder_chosen(void **state)
{
	(void)state;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	assert_int_equal(sl_base64_vectorized() != 0, __builtin_cpu_supports("avx2") != 0);
#else
	assert_int_equal(sl_base64_vectorized(), 0);
#endif
}

static void test_decode_rejects(void **state)
{
	(void)state;
	struct sl_buf out;
	sl_buf_init(&out);
	static const char *const bad[] = {
	    "Zg=", "Zg=a", "Z===", "Zm9v Yg==", "Zm9vYg=\n", "Zm=v", "====", "Zm9vY*=="};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sl_base64_decode(bad[i], strlen(bad[i]), &out), -EINVAL);
	assert_int_equal(sl_base64_decode("Zm9vYg==", 8, &out), 0);
	assert_int_equal(out.len, 4);
	assert_memory_equal(out.data, "foob", 4);
	sl_buf_finish(&out);
}

/* The decoders (AVX2 where the CPU has it, and scalar) against a one-character-at-a-time
 * reference: same verdict, same bytes, for every byte value at every position. */
static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int val(char c)
{
	const char *p = c ? strchr(alpha, c) : NULL;
	return p ? (int)(p - alpha) : -1;
}

/* RFC 4648 decoding, the obvious way: length, or -1 if not padded base64. */
static long ref_decode(const char *in, size_t n, uint8_t *out)
{
	if (n % 4)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		bool last = i + 4 == n;
		int pad = last && in[i + 3] == '=' ? (in[i + 2] == '=' ? 2 : 1) : 0;
		int v[4];
		for (int k = 0; k < 4 - pad; k++)
			if ((v[k] = val(in[i + k])) < 0)
				return -1;
		for (int k = 4 - pad; k < 4; k++)
			v[k] = 0;
		uint32_t g = (uint32_t)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
		out[o++] = (uint8_t)(g >> 16);
		if (pad < 2)
			out[o++] = (uint8_t)(g >> 8);
		if (pad < 1)
			out[o++] = (uint8_t)g;
	}
	return (long)o;
}

typedef int (*decode_fn)(const char *in, size_t n, struct sl_buf *out);

/*
 * Every byte value at every position of strings of 4..100 characters (the AVX2 path takes 32 at
 * a time, so a bad byte lands in every lane of one step, two steps, and the scalar tail), with
 * each valid ending: same verdict and same bytes as the reference.
 */
static void agree(decode_fn fn)
{
	char s[104];
	uint8_t ref[104];
	struct sl_buf out;
	sl_buf_init(&out);
	for (size_t n = 4; n <= 100; n += 4) {
		for (int tail = 0; tail < 3; tail++) {
			for (size_t i = 0; i < n; i++)
				s[i] = alpha[(i * 7 + n) % 64];
			/* valid endings: none, "=", "==" */
			if (tail >= 1)
				s[n - 1] = '=';
			if (tail == 2)
				s[n - 2] = '=';
			for (size_t at = 0; at < n; at++) {
				for (int c = 0; c < 256; c++) {
					char keep = s[at];
					s[at] = (char)c;
					long want = ref_decode(s, n, ref);
					int r = fn(s, n, &out);
					if (want < 0) {
						assert_int_equal(r, -EINVAL);
					} else {
						assert_int_equal(r, 0);
						assert_int_equal(out.len, (size_t)want);
						assert_memory_equal(out.data, ref, out.len);
					}
					s[at] = keep;
				}
			}
		}
	}
	sl_buf_finish(&out);
}

static void test_decoders_agree_with_reference(void **state)
{
	(void)state;
	agree(sl_base64_decode);
	agree(sl_base64_decode_scalar);
}

static void test_decode_lengths_and_padding(void **state)
{
	(void)state;
	struct sl_buf out;
	sl_buf_init(&out);
	assert_int_equal(sl_base64_decode("", 0, &out), 0);
	assert_int_equal(out.len, 0);
	const char *bad[] = {"a",    "ab",   "abc",	 "abcde",    "a===",  "====",
			     "ab=c", "a=b=", "ab==abcd", "abc=abcd", "abc==", "ab\n="};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sl_base64_decode(bad[i], strlen(bad[i]), &out), -EINVAL);
		assert_int_equal(sl_base64_decode_scalar(bad[i], strlen(bad[i]), &out), -EINVAL);
	}
	assert_int_equal(sl_base64_decode("aGVsbG8=", 8, &out), 0);
	assert_int_equal(out.len, 5);
	assert_memory_equal(out.data, "hello", 5);
	sl_buf_finish(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc4648_vectors),
	    cmocka_unit_test(test_vector_equals_scalar_and_reference),
	    cmocka_unit_test(test_vector_encoder_chosen),
	    cmocka_unit_test(test_decode_rejects),
	    cmocka_unit_test(test_decoders_agree_with_reference),
	    cmocka_unit_test(test_decode_lengths_and_padding),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
