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
	/* Clean the upper AVX state before the scalar tail: GCC 12 makes that call a tail jump
	 * without a vzeroupper of its own, and dirty upper state slows the SSE code after it. */
	_mm256_zeroupper();
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

/*
 * Decoding: one table per position in a group of four characters, holding that character's
 * 6 bits already shifted to their place in the 3 output bytes (little-endian: byte 0 in bits
 * 0-7). A group is then 4 lookups ORed together, and any character outside the alphabet sets
 * BAD, so one test per group (or per two groups) checks all of them.
 */
#define BAD 0x01000000u
static uint32_t dec[4][256];
static bool decode_avx2_ok;
static pthread_once_t decode_once = PTHREAD_ONCE_INIT;

static int value_of(uint8_t c)
{
	const char *p = c ? memchr(alphabet, c, 64) : NULL;
	return p ? (int)(p - alphabet) : -1;
}

static void decode_init(void)
{
	for (int c = 0; c < 256; c++) {
		int v = value_of((uint8_t)c);
		if (v < 0) {
			for (int k = 0; k < 4; k++)
				dec[k][c] = BAD;
			continue;
		}
		uint32_t u = (uint32_t)v;
		dec[0][c] = u << 2;
		dec[1][c] = u >> 4 | (u & 15) << 12;
		dec[2][c] = (u >> 2) << 8 | (u & 3) << 22;
		dec[3][c] = u << 16;
	}
#ifdef HAVE_X86_VECTOR
	__builtin_cpu_init();
	decode_avx2_ok = __builtin_cpu_supports("avx2");
#endif
}

static inline uint32_t group(const uint8_t *p)
{
	return dec[0][p[0]] | dec[1][p[1]] | dec[2][p[2]] | dec[3][p[3]];
}

/*
 * The groups before the last, at p[0..n) (n a multiple of 4): 4 characters to 3 bytes at a time,
 * each group stored as 4 bytes (out needs 1 byte of slack). false on a bad character.
 */
static bool groups_scalar(const uint8_t *p, size_t n, uint8_t *o)
{
	const uint8_t *end = p + n;
	for (; end - p >= 8; p += 8, o += 6) {
		uint32_t a = group(p), b = group(p + 4);
		if ((a | b) & BAD)
			return false;
		sl_store_u32(o, a);
		sl_store_u32(o + 3, b);
	}
	if (p < end) {
		uint32_t a = group(p);
		if (a & BAD)
			return false;
		sl_store_u32(o, a);
	}
	return true;
}

#ifdef HAVE_X86_VECTOR
/*
 * 32 characters to 24 bytes per step (Mula and Lemire, "Faster Base64 Encoding and Decoding
 * using AVX2 Instructions", 2018, as in aklomp/base64): the high and low nibble of each
 * character index two 16-entry tables whose AND is nonzero exactly for characters outside the
 * alphabet ('=' included); a third table indexed by the high nibble gives the offset from ASCII
 * to the 6-bit value ('/' shares its nibble with '+' and is told apart by a compare). Two
 * multiply-adds pack the 6-bit values, a shuffle and a permute gather the 24 bytes. Each step
 * stores 32 bytes: out needs 8 bytes of slack. The tail goes through the scalar groups.
 */
__attribute__((target("avx2"))) static bool groups_avx2(const uint8_t *p, size_t n, uint8_t *o)
{
	const __m256i lut_lo =
	    _mm256_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A,
			     0x1B, 0x1B, 0x1B, 0x1A, 0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
			     0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A);
	const __m256i lut_hi =
	    _mm256_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10,
			     0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08,
			     0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
	const __m256i lut_roll =
	    _mm256_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 19, 4,
			     -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
	const __m256i mask_2f = _mm256_set1_epi8(0x2f);
	const __m256i pack_shuffle =
	    _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2, 1, 0, 6, 5,
			     4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
	const __m256i pack_permute = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, -1, -1);
	const uint8_t *end = p + n;
	for (; end - p >= 32; p += 32, o += 24) {
		__m256i s = _mm256_loadu_si256((const __m256i *)p);
		__m256i hi_nibbles = _mm256_and_si256(_mm256_srli_epi32(s, 4), mask_2f);
		__m256i lo_nibbles = _mm256_and_si256(s, mask_2f);
		__m256i hi = _mm256_shuffle_epi8(lut_hi, hi_nibbles);
		__m256i lo = _mm256_shuffle_epi8(lut_lo, lo_nibbles);
		if (!_mm256_testz_si256(lo, hi))
			return false;
		__m256i eq_2f = _mm256_cmpeq_epi8(s, mask_2f);
		__m256i roll = _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(eq_2f, hi_nibbles));
		s = _mm256_add_epi8(s, roll);
		__m256i ab_bc = _mm256_maddubs_epi16(s, _mm256_set1_epi32(0x01400140));
		__m256i v = _mm256_madd_epi16(ab_bc, _mm256_set1_epi32(0x00011000));
		v = _mm256_shuffle_epi8(v, pack_shuffle);
		v = _mm256_permutevar8x32_epi32(v, pack_permute);
		_mm256_storeu_si256((__m256i *)o, v);
	}
	/*
	 * Clean the upper halves before leaving for SSE code: GCC 12 turns this call into a tail
	 * jump without its own vzeroupper, and the dirty state then slowed the rest of the line
	 * parser (and libc's memcmp) by more than the AVX2 decoding saved.
	 */
	_mm256_zeroupper();
	bool ok = groups_scalar(p, (size_t)(end - p), o);
	return ok;
}
#endif

static int decode(const char *in, size_t n, struct sl_buf *out, bool simd)
{
	sl_buf_reset(out);
	pthread_once(&decode_once, decode_init);
	if (n % 4 != 0)
		return -EINVAL;
	if (n == 0)
		return 0;
	/* Slack for the wide stores: 8 bytes past the decoded length. */
	if (sl_buf_reserve(out, n / 4 * 3 + 8) < 0)
		return -ENOMEM;
	uint8_t *o = out->data;
	const uint8_t *p = (const uint8_t *)in;
	/* Every group but the last cannot hold padding. */
	size_t body = n - 4;
#ifdef HAVE_X86_VECTOR
	bool ok = simd && decode_avx2_ok ? groups_avx2(p, body, o) : groups_scalar(p, body, o);
#else
	(void)simd;
	bool ok = groups_scalar(p, body, o);
#endif
	if (!ok)
		return -EINVAL;
	p += body;
	o += body / 4 * 3;
	/* The last group: "xxxx", "xxx=" or "xx==". */
	size_t keep = p[3] != '=' ? 3 : p[2] != '=' ? 2 : 1;
	uint32_t v = dec[0][p[0]] | dec[1][p[1]] | (keep >= 2 ? dec[2][p[2]] : 0) |
		     (keep == 3 ? dec[3][p[3]] : 0);
	if (v & BAD)
		return -EINVAL;
	sl_store_u32(o, v);
	o += keep;
	out->len = (size_t)(o - out->data);
	return 0;
}

int sl_base64_decode(const char *in, size_t n, struct sl_buf *out)
{
	return decode(in, n, out, true);
}

int sl_base64_decode_scalar(const char *in, size_t n, struct sl_buf *out)
{
	return decode(in, n, out, false);
}
