/*
 * Kinesis' per-shard throughput limits, enforced by the gateway when switched on
 * (--kinesis-shard-limits): writes 1,000 records/s and 1 MiB/s per shard, reads 5 GetRecords/s
 * and 2 MiB/s per shard, each a token bucket holding one second's worth (so a burst of one
 * second is allowed, as in Kinesis). A record over its shard's budget fails with
 * ProvisionedThroughputExceededException (per record in PutRecords), a read over budget fails
 * the GetRecords call.
 *
 * Writes are charged before they are sent, so the gateway needs each record's shard first: it
 * routes like the server (MD5 of the partition key or the explicit hash key, over the open
 * shards' ranges) with the stream's shard list cached for SHARD_MAP_TTL_MS.
 *
 * Thread-safe: one mutex around the tables; the shard lists are fetched outside it.
 * Memory: one bucket per (stream, shard) ever used and one cached shard list per stream, freed
 * with the table.
 */
#ifndef SL_KINESIS_LIMITS_H
#define SL_KINESIS_LIMITS_H

#include <sluice/client.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KIN_SHARD_WRITE_RECORDS_PER_S 1000
#define KIN_SHARD_WRITE_BYTES_PER_S (1 << 20)
#define KIN_SHARD_READS_PER_S 5
#define KIN_SHARD_READ_BYTES_PER_S (2 << 20)

struct kin_limits;

int kin_limits_create(struct kin_limits **ret);
void kin_limits_destroy(struct kin_limits *l);

/*
 * The shard each record goes to (ret_shards[i]), from the cached shard list of stream (fetched
 * with c when missing or stale). keys[i]/key_lens[i] are partition keys, hash_keys[i] an explicit
 * hash key or NULL. Returns 0 or the libsluice error of the shard list fetch.
 */
int kin_limits_route(struct kin_limits *l, struct sluice_client *c, const char *stream, size_t n,
		     const char *const *keys, const size_t *key_lens,
		     const struct sluice_hash_key *const *hash_keys, uint32_t *ret_shards);

/* Take one record of `bytes` from the shard's write budget at now_ms: whether it fits. */
bool kin_limits_take_write(struct kin_limits *l, const char *stream, uint32_t shard, size_t bytes,
			   int64_t now_ms);
/* Take one read call: whether it fits. charge_read then charges the bytes it returned. */
bool kin_limits_take_read(struct kin_limits *l, const char *stream, uint32_t shard, int64_t now_ms);
void kin_limits_charge_read(struct kin_limits *l, const char *stream, uint32_t shard, size_t bytes,
			    int64_t now_ms);

#endif
