/*
 * The on-disk record frame of a shard log segment.
 *
 * Byte layout of one frame (all integers little-endian, no padding, no alignment assumed):
 *
 *   off  size  field
 *     0     4  frame_len   bytes of the whole frame, this field and the checksum included
 *     4     4  magic       SL_RECORD_MAGIC ("SLR1" read as bytes)
 *     8     8  seq         sequence number
 *    16     8  ts_ms       arrival time, Unix ms (signed)
 *    24     2  key_len     1..SLUICE_KEY_LEN_MAX
 *    26     1  flags       bit0: an explicit 16-byte hash key follows; other bits must be 0
 *    27     1  reserved    must be 0
 *    28     4  data_len    0..SLUICE_RECORD_BYTES_LIMIT
 *    32    16  hash_key    big-endian 128-bit hash key, only when flags bit0 is set
 *     .   key_len   key    partition key
 *     .   data_len  data
 *     .     8  checksum    XXH3_64bits (seed 0) of every byte of the frame before it
 *
 * The checksum covers the header too, so a frame_len, seq or ts damaged on disk is caught, not
 * only damaged data. frame_len is redundant with key_len/flags/data_len; the decoder insists that
 * they agree, which rejects most garbage before the checksum is even computed.
 *
 * Where valid data ends: a segment is a sequence of frames. A reader (and recovery) walks it frame
 * by frame; the first frame that is incomplete (-EAGAIN: the file ends inside it) or fails any
 * check (SLUICE_ERR_CORRUPT: bad length, magic, reserved bits or checksum) marks the end of the
 * valid data. Recovery truncates the newest segment there; a reader reports SLUICE_ERR_CORRUPT,
 * because below the written size every frame must be whole.
 */
#ifndef SL_LOG_RECORD_FORMAT_H
#define SL_LOG_RECORD_FORMAT_H

#include "common/buf.h"

#include <sluice/errors.h>
#include <sluice/types.h>

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_RECORD_MAGIC 0x31524c53u /* bytes 'S' 'L' 'R' '1' */
#define SL_RECORD_HEADER_BYTES 32u
#define SL_RECORD_HASH_KEY_BYTES 16u
#define SL_RECORD_TRAILER_BYTES 8u
#define SL_RECORD_FLAG_HASH_KEY 0x01u
/* The smallest frame: a 1-byte key and no data. */
#define SL_RECORD_FRAME_BYTES_MIN (SL_RECORD_HEADER_BYTES + 1u + SL_RECORD_TRAILER_BYTES)
/* The largest frame any configuration can produce; anything longer on disk is garbage. */
#define SL_RECORD_FRAME_BYTES_MAX                                                                  \
	(SL_RECORD_HEADER_BYTES + SL_RECORD_HASH_KEY_BYTES + SLUICE_KEY_LEN_MAX +                  \
	 SLUICE_RECORD_BYTES_LIMIT + SL_RECORD_TRAILER_BYTES)

/* Frame size of a record; key_len and data_len must already be within limits. */
static inline uint32_t sl_record_frame_bytes(uint16_t key_len, bool has_hash_key, uint32_t data_len)
{
	return SL_RECORD_HEADER_BYTES + (has_hash_key ? SL_RECORD_HASH_KEY_BYTES : 0u) + key_len +
	       data_len + SL_RECORD_TRAILER_BYTES;
}

/* Bytes of a frame before its data: header, hash key (if any) and key. */
static inline uint32_t sl_record_prefix_bytes(uint16_t key_len, bool has_hash_key)
{
	return SL_RECORD_HEADER_BYTES + (has_hash_key ? SL_RECORD_HASH_KEY_BYTES : 0u) + key_len;
}

/*
 * Write the prefix of r's frame (header, hash key, key) to out, which has room for
 * sl_record_prefix_bytes(). Returns the bytes written. The caller appends data and the trailer
 * (sl_record_encode_trailer) itself, so large data can go to disk by iovec without a copy.
 * r's lengths must be within limits (asserted).
 */
size_t sl_record_encode_prefix(uint8_t *out, const struct sluice_record *r);

/* Write the 8-byte trailer holding checksum. */
void sl_record_encode_trailer(uint8_t *out, uint64_t checksum);

/*
 * The checksum of a frame whose prefix and data are in separate memory (the streaming XXH3 over
 * both gives the same value as the one-shot over a contiguous frame).
 */
uint64_t sl_record_checksum_split(const uint8_t *prefix, size_t prefix_len, const uint8_t *data,
				  size_t data_len);

/* Encode r's whole frame contiguously into out (sl_record_frame_bytes() of room). Returns it. */
size_t sl_record_encode(uint8_t *out, const struct sluice_record *r);

/* The checksum of a contiguous frame of frame_len bytes (over all but its last 8 bytes). */
uint64_t sl_record_checksum(const uint8_t *frame, size_t frame_len);

/*
 * Check the structure of the frame at p (len bytes available) and fill *out, without the
 * checksum: sl_record_decode minus the XXH3. For frames a reader verified already: sluiced
 * checksums every frame it reads from disk and then sends the same bytes in its READ answers,
 * which libsluice parses with this (header-only: no xxhash in the client library). Same results
 * as sl_record_decode otherwise; *out is untouched unless 0 is returned.
 */
static inline int sl_record_parse(const uint8_t *p, size_t len, struct sluice_record *out,
				  size_t *ret_frame_len)
{
	*ret_frame_len = 0;
	if (len < 4)
		return -EAGAIN;
	uint32_t frame_len = sl_load_u32(p);
	if (frame_len < SL_RECORD_FRAME_BYTES_MIN || frame_len > SL_RECORD_FRAME_BYTES_MAX)
		return SLUICE_ERR_CORRUPT;
	if (len >= 8 && sl_load_u32(p + 4) != SL_RECORD_MAGIC)
		return SLUICE_ERR_CORRUPT;
	if (len < SL_RECORD_HEADER_BYTES) {
		*ret_frame_len = frame_len;
		return -EAGAIN;
	}
	/* The whole header is here: check it agrees with itself before trusting frame_len. */
	uint16_t key_len = sl_load_u16(p + 24);
	uint8_t flags = p[26];
	uint32_t data_len = sl_load_u32(p + 28);
	if (key_len < 1 || key_len > SLUICE_KEY_LEN_MAX)
		return SLUICE_ERR_CORRUPT;
	if ((flags & ~SL_RECORD_FLAG_HASH_KEY) != 0 || p[27] != 0)
		return SLUICE_ERR_CORRUPT;
	if (data_len > SLUICE_RECORD_BYTES_LIMIT)
		return SLUICE_ERR_CORRUPT;
	bool hk = (flags & SL_RECORD_FLAG_HASH_KEY) != 0;
	if (sl_record_frame_bytes(key_len, hk, data_len) != frame_len)
		return SLUICE_ERR_CORRUPT;
	*ret_frame_len = frame_len;
	if (len < frame_len)
		return -EAGAIN;

	size_t off = SL_RECORD_HEADER_BYTES;
	out->seq = sl_load_u64(p + 8);
	out->ts_ms = (int64_t)sl_load_u64(p + 16);
	out->has_hash_key = hk;
	if (hk) {
		memcpy(out->hash_key.be, p + off, SL_RECORD_HASH_KEY_BYTES);
		off += SL_RECORD_HASH_KEY_BYTES;
	} else {
		memset(out->hash_key.be, 0, sizeof(out->hash_key.be));
	}
	out->key = (const char *)(p + off);
	out->key_len = key_len;
	off += key_len;
	out->data = p + off;
	out->data_len = data_len;
	return 0;
}

/*
 * Decode the frame at p (len bytes available). Returns:
 *   0                   *out filled (key/data point into p), *ret_frame_len = frame length;
 *   -EAGAIN             the frame is not whole in len bytes: *ret_frame_len is its length when
 *                       the length field was readable and plausible, else 0;
 *   SLUICE_ERR_CORRUPT  bad length, magic, flags, reserved byte or checksum.
 * *out is untouched unless 0 is returned. Never reads outside p[0..len).
 */
int sl_record_decode(const uint8_t *p, size_t len, struct sluice_record *out,
		     size_t *ret_frame_len);

#endif
