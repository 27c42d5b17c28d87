/*
 * Standard base64 (RFC 4648 section 4: alphabet A-Z a-z 0-9 + /, '=' padding, no line breaks):
 * the "data" field of archive lines (archive_format.h).
 *
 * Encoding is the firehose's hottest code after zstd itself (every record byte goes through it
 * once, and the output is 4/3 of the input), so on x86-64 CPUs with AVX2 it encodes 24 bytes per
 * step with vector shuffles (Wojciech Mula's pshufb method), chosen at run time; elsewhere, and
 * for the tail of every input, a scalar encoder with one table lookup per 12 bits. Both produce
 * exactly the same bytes (tests/unit/archive/test_base64.c compares them).
 */
#ifndef SL_ARCHIVE_BASE64_H
#define SL_ARCHIVE_BASE64_H

#include <stddef.h>
#include <stdint.h>

struct sl_buf;

/* Characters sl_base64_encode() writes for n input bytes (a multiple of 4). */
static inline size_t sl_base64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

/* Encode n bytes of in at out (room for sl_base64_encoded_len(n); no NUL). Returns the length. */
size_t sl_base64_encode(char *out, const uint8_t *in, size_t n);

/* The scalar encoder alone, whatever the CPU: for tests that compare it with the vector one. */
size_t sl_base64_encode_scalar(char *out, const uint8_t *in, size_t n);

/* Whether sl_base64_encode() uses the vector encoder on this CPU. */
int sl_base64_vectorized(void);

/*
 * Decode n characters of padded base64 into out (reset first). 0, -ENOMEM, or -EINVAL for
 * anything else (a length not a multiple of 4, a character outside the alphabet, misplaced '=').
 */
int sl_base64_decode(const char *in, size_t n, struct sl_buf *out);
/* The scalar decoder alone (sl_base64_decode takes an AVX2 path where the CPU has it): tests. */
int sl_base64_decode_scalar(const char *in, size_t n, struct sl_buf *out);

#endif
