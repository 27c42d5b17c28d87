/* Standard base64 with padding: see base64.h. */
#include "archive/base64.h"

#include "common/buf.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_X86_VECTOR 1
#include <immintrin.h>
#endif

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Two output characters per table entry: one lookup per 12 bits instead of per 6. */
static char pairs[4096][2];
static size_t (*encode_fn)(char *out, const uint8_t *in, size_t n);
static pthread_once_t encode_once = PTHREAD_ONCE_INIT;

/* The scalar encoder from in[i] on (the whole input, or the tail the vector loop left). */
static size_t encode_tail(char *out, const uint8_t *in, size_t n)
{
	char *o = out;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		memcpy(o, pairs[v >> 12], 2);
		memcpy(o + 2, pairs[v & 4095], 2);
		o += 4;
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = alphabet[(v >> 6) & 63];
		*o++ = '=';
	}
	return (size_t)(o - out);
}

#ifdef HAVE_X86_VECTOR
/*
 * 24 input bytes -> 32 characters per step (Mula, "Faster Base64 Encoding and Decoding Using
 * AVX2 Instructions", 2018). Each 128-bit lane takes 12 bytes: the shuffle spreads every 3-byte
 * group [a b c] over a 32-bit word as [b a c b]; two multiplies move the four 6-bit fields
 * (a>>2, (a&3)<<4|b>>4, (b&15)<<2|c>>6, c&63) into the word's four bytes; a saturating subtract
 * and a compare give each field its alphabet range (A-Z, a-z, 0-9, '+', '/'), whose offset a
 * second shuffle looks up and adds. The loads read 28 bytes for the 24 they encode (two
 * overlapping 16-byte loads), so the loop stops 28 bytes before the end; the scalar encoder
 * finishes.
 */
__attribute__((target("avx2"))) static inline __m256i encode_indices_avx2(__m256i v)
{
	const __m256i shuf = _mm256_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10, 1,
					      0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
	v = _mm256_shuffle_epi8(v, shuf);
	__m256i t0 = _mm256_and_si256(v, _mm256_set1_epi32(0x0fc0fc00));
	__m256i t1 = _mm256_mulhi_epu16(t0, _mm256_set1_epi32(0x04000040));
	__m256i t2 = _mm256_and_si256(v, _mm256_set1_epi32(0x003f03f0));
	__m256i t3 = _mm256_mullo_epi16(t2, _mm256_set1_epi32(0x01000010));
	return _mm256_or_si256(t1, t3);
}

__attribute__((target("avx2"))) static inline __m256i encode_chars_avx2(__m256i idx)
{
	/* Offset to add, by range: 0 'a'-26 (26..51), 1..10 '0'-52, 11 '+'-62, 12 '/'-63, 13 'A'.
	 */
	const __m256i lut =
	    _mm256_setr_epi8('a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
			     '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0,
			     'a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
			     '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0);
	__m256i r = _mm256_subs_epu8(idx, _mm256_set1_epi8(51));      /* 52..63 -> 1..12, else 0 */
	__m256i upper = _mm256_cmpgt_epi8(_mm256_set1_epi8(26), idx); /* 0..25 */
	r = _mm256_or_si256(r, _mm256_and_si256(upper, _mm256_set1_epi8(13)));
	return _mm256_add_epi8(_mm256_shuffle_epi8(lut, r), idx);
}

__attribute__((target("avx2"))) static size_t encode_avx2(char *out, const uint8_t *in, size_t n)
{
	char *o = out;
	size_t i = 0;
	for (; n - i >= 28; i += 24, o += 32) {
		__m128i lo = _mm_loadu_si128((const __m128i *)(in + i));
		__m128i hi = _mm_loadu_si128((const __m128i *)(in + i + 12));
		__m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
		_mm256_storeu_si256((__m256i *)o, encode_chars_avx2(encode_indices_avx2(v)));
	}
	return (size_t)(o - out) + encode_tail(o, in + i, n - i);
}
#endif

static void encode_init(void)
{
	for (int i = 0; i < 4096; i++) {
		pairs[i][0] = alphabet[i >> 6];
		pairs[i][1] = alphabet[i & 63];
	}
	encode_fn = encode_tail;
#ifdef HAVE_X86_VECTOR
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2"))
		encode_fn = encode_avx2;
#endif
}

size_t sl_base64_encode(char *out, const uint8_t *in, size_t n)
{
	pthread_once(&encode_once, encode_init);
	return encode_fn(out, in, n);
}

size_t sl_base64_encode_scalar(char *out, const uint8_t *in, size_t n)
{
	pthread_once(&encode_once, encode_init);
	return encode_tail(out, in, n);
}

int sl_base64_vectorized(void)
{
	pthread_once(&encode_once, encode_init);
	return encode_fn != encode_tail;
}

/* ---- decoding ---- */

static int8_t value_slow(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return (int8_t)(c - 'A');
	if (c >= 'a' && c <= 'z')
		return (int8_t)(c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (int8_t)(c - '0' + 52);
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* One table lookup per character: decoding is most of what a restore spends per byte. */
static int8_t values[256];
static pthread_once_t values_once = PTHREAD_ONCE_INIT;

static void values_init(void)
{
	for (int c = 0; c < 256; c++)
		values[c] = value_slow((uint8_t)c);
}

int sl_base64_decode(const char *in, size_t n, struct sl_buf *out)
{
	sl_buf_reset(out);
	pthread_once(&values_once, values_init);
	if (n % 4 != 0)
		return -EINVAL;
	if (n == 0)
		return 0;
	if (sl_buf_reserve(out, n / 4 * 3) < 0)
		return -ENOMEM;
	uint8_t *o = out->data;
	const uint8_t *p = (const uint8_t *)in;
	/* Full groups first, without the padding checks. */
	size_t full = n - 4;
	for (size_t i = 0; i < full; i += 4) {
		int8_t a = values[p[i]], b = values[p[i + 1]];
		int8_t c = values[p[i + 2]], d = values[p[i + 3]];
		if ((a | b | c | d) < 0)
			return -EINVAL;
		o[0] = (uint8_t)(a << 2 | b >> 4);
		o[1] = (uint8_t)(b << 4 | c >> 2);
		o[2] = (uint8_t)(c << 6 | d);
		o += 3;
	}
	for (size_t i = full; i < n; i += 4) {
		bool last = i + 4 == n;
		int8_t a = values[p[i]], b = values[p[i + 1]];
		if (a < 0 || b < 0)
			return -EINVAL;
		if (last && p[i + 2] == '=') {
			if (p[i + 3] != '=')
				return -EINVAL;
			*o++ = (uint8_t)(a << 2 | b >> 4);
			break;
		}
		int8_t c = values[p[i + 2]];
		if (c < 0)
			return -EINVAL;
		if (last && p[i + 3] == '=') {
			*o++ = (uint8_t)(a << 2 | b >> 4);
			*o++ = (uint8_t)(b << 4 | c >> 2);
			break;
		}
		int8_t d = values[p[i + 3]];
		if (d < 0)
			return -EINVAL;
		*o++ = (uint8_t)(a << 2 | b >> 4);
		*o++ = (uint8_t)(b << 4 | c >> 2);
		*o++ = (uint8_t)(c << 6 | d);
	}
	out->len = (size_t)(o - out->data);
	return 0;
}
