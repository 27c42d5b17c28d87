/*
 * The resharding calls of libsluice that the Kinesis gateway uses. They belong to
 * include/sluice/client.h once the reshard branch lands; until then kinesis_reshard.c declares
 * weak fallbacks (see there), which the real definitions override at link time.
 */
#ifndef SL_KINESIS_RESHARD_H
#define SL_KINESIS_RESHARD_H

#include <sluice/client.h>

#include <stdint.h>

int sluice_stream_split(struct sluice_client *c, const char *stream, uint32_t shard_id,
			const struct sluice_hash_key *new_start_hash_key,
			uint32_t ret_child_ids[2]);
int sluice_stream_merge(struct sluice_client *c, const char *stream, uint32_t shard_id,
			uint32_t adjacent_shard_id, uint32_t *ret_child_id);
int sluice_stream_scale(struct sluice_client *c, const char *stream, uint32_t target_open_shards);

#endif
