/*
 * Kinesis shard iterators: opaque strings that name a position in one shard.
 *
 * Format (before base64, standard alphabet with padding):
 *
 *   u8  version (1)
 *   u8  position type (enum sluice_position_type)
 *   u32 shard id            little-endian
 *   u64 position value      little-endian (sequence number or Unix ms)
 *   i64 issued_ms           little-endian, Unix ms when the iterator was made
 *   u8  stream name length (1..SLUICE_NAME_LEN_MAX), then the name
 *   16 bytes: HMAC-SHA256 over everything above, truncated
 *
 * The MAC (a per-process random key) makes iterators unforgeable: a client cannot point one at
 * another stream or shard, and an iterator from before a restart is refused like an expired one
 * (Kinesis iterators do not survive their 5 minutes either). At most 1+1+4+8+8+1+128+16 = 167
 * bytes, 224 base64 characters: below Kinesis' 512-character limit.
 */
#ifndef SL_KINESIS_ITERATOR_H
#define SL_KINESIS_ITERATOR_H

#include <sluice/types.h>

#include <stdint.h>

/* Kinesis: a shard iterator expires 5 minutes after it was returned. */
#define KIN_ITERATOR_TTL_MS (5 * 60 * 1000)
/* Base64 text of the longest iterator, plus NUL. */
#define KIN_ITERATOR_BUF 232
#define KIN_ITERATOR_KEY_BYTES 32

struct kin_iterator {
	char stream[SLUICE_NAME_LEN_MAX + 1];
	uint32_t shard_id;
	struct sluice_position pos;
	int64_t issued_ms;
};

/* Fill key with random bytes (RAND_bytes). 0 or SLUICE_ERR_INTERNAL. */
int kin_iterator_key_generate(uint8_t key[KIN_ITERATOR_KEY_BYTES]);

/* Encode it into out (NUL-terminated). 0, or -EINVAL for a bad stream name length. */
int kin_iterator_encode(const uint8_t key[KIN_ITERATOR_KEY_BYTES], const struct kin_iterator *it,
			char out[KIN_ITERATOR_BUF]);

/*
 * Decode and authenticate text (len bytes). 0 and *ret; -EINVAL when the text is not an
 * iterator made with key (malformed, tampered, other process); -ETIME when it is authentic but
 * older than KIN_ITERATOR_TTL_MS at now_ms. *ret is untouched on failure.
 */
int kin_iterator_decode(const uint8_t key[KIN_ITERATOR_KEY_BYTES], const char *text, size_t len,
			int64_t now_ms, struct kin_iterator *ret);

#endif
