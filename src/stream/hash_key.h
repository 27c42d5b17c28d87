/*
 * 128-bit hash keys and hash-range routing.
 *
 * A record's hash key is the MD5 of its partition key read as a big-endian unsigned 128-bit
 * integer (Kinesis' rule, so a key lands in the same hash range as on Kinesis), unless the
 * producer gave an explicit hash key. Each open shard of a stream owns one contiguous, inclusive
 * range [start, end] of [0, 2^128 - 1]; together the open shards cover the whole space with no gap
 * and no overlap.
 *
 * Internally a hash key is an sl_u128 (`unsigned __int128`); struct sluice_hash_key is its
 * 16-byte big-endian form for the wire and the log; the Kinesis API and the metadata files print
 * it in decimal.
 *
 * Threads: everything here is safe to call from any thread. sl_hash_key_of_partition_key() keeps
 * one EVP_MD_CTX per thread (freed when the thread exits); a shard map is immutable after
 * sl_shard_map_create(), so readers may share it.
 */
#ifndef SL_STREAM_HASH_KEY_H
#define SL_STREAM_HASH_KEY_H

#include <sluice/types.h>

#include <stddef.h>
#include <stdint.h>

__extension__ typedef unsigned __int128 sl_u128;

#define SL_U128_MAX (~(sl_u128)0)
/* 2^128 - 1 has 39 decimal digits; a buffer of this size always fits one value and its NUL. */
#define SL_U128_DEC_BUF 40

static inline sl_u128 sl_hash_key_to_u128(const struct sluice_hash_key *k)
{
	sl_u128 v = 0;
	for (int i = 0; i < 16; i++)
		v = (v << 8) | k->be[i];
	return v;
}

static inline void sl_hash_key_from_u128(sl_u128 v, struct sluice_hash_key *ret)
{
	for (int i = 15; i >= 0; i--) {
		ret->be[i] = (uint8_t)v;
		v >>= 8;
	}
}

/*
 * The hash key of a partition key: MD5(key[0..len)) as a big-endian integer. len 0 is allowed
 * here (MD5 of nothing); the 1..SLUICE_KEY_LEN_MAX rule is the caller's. Returns 0, or
 * SLUICE_ERR_INTERNAL if libcrypto cannot provide MD5 (e.g. a FIPS-only configuration) or
 * -ENOMEM; *ret is untouched on failure.
 */
int sl_hash_key_of_partition_key(const uint8_t *key, size_t len, struct sluice_hash_key *ret);
/* The same, as an integer (the routing path wants the integer). */
int sl_hash_u128_of_partition_key(const uint8_t *key, size_t len, sl_u128 *ret);
/*
 * Free the calling thread's MD5 context now (it is also freed automatically when the thread
 * exits). Harmless if the thread never hashed; the next hash re-creates the context.
 */
void sl_hash_key_thread_cleanup(void);

/*
 * Decimal text. format writes the shortest decimal ("0" for zero) and a NUL into out, which must
 * hold SL_U128_DEC_BUF bytes; returns the number of digits. parse accepts exactly Kinesis'
 * ExplicitHashKey pattern `0|[1-9][0-9]{0,38}` of len bytes (no sign, no spaces, no leading
 * zeros) and returns 0, -EINVAL for malformed text (including empty) or -ERANGE for a value over
 * 2^128 - 1; *ret is untouched on failure.
 */
size_t sl_u128_format(sl_u128 v, char out[SL_U128_DEC_BUF]);
int sl_u128_parse(const char *s, size_t len, sl_u128 *ret);
/* parse of a NUL-terminated string. */
int sl_u128_parse_str(const char *s, sl_u128 *ret);

/*
 * Kinesis' even split of the hash-key space into n shards (CreateStream): shard i starts at
 * floor(i * 2^128 / n) and ends one before the next start; the last ends at 2^128 - 1.
 * Requires 1 <= n and i < n (asserted: programmer error).
 */
void sl_hash_range_even(uint32_t i, uint32_t n, sl_u128 *ret_start, sl_u128 *ret_end);

/* ---- routing ---- */

/* One open shard's range, as given to sl_shard_map_create(). */
struct sl_shard_range {
	sl_u128 start;
	sl_u128 end; /* inclusive */
	uint32_t shard_id;
};

/* The open shards of a stream, sorted by range; opaque and immutable once created. */
struct sl_shard_map;

/*
 * Build a map from n ranges in any order (copied; the caller keeps ranges). The ranges must cover
 * [0, 2^128 - 1] exactly: each start <= end, no gap and no overlap; otherwise
 * SLUICE_ERR_INVALID_ARGUMENT. n must be 1..SLUICE_SHARDS_MAX. Returns 0, that, or -ENOMEM.
 */
int sl_shard_map_create(const struct sl_shard_range *ranges, size_t n, struct sl_shard_map **ret);
void sl_shard_map_destroy(struct sl_shard_map *map);
/* The shard owning key: binary search, O(log n). Always succeeds (the map covers everything). */
uint32_t sl_shard_map_find(const struct sl_shard_map *map, sl_u128 key);
size_t sl_shard_map_count(const struct sl_shard_map *map);

#endif
