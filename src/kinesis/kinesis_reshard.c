/*
 * MERGE NOTE (integrator): weak fallbacks for the resharding calls of libsluice, provided by the
 * reshard branch (sluice_stream_split / _merge / _scale). When that branch is merged, its strong
 * definitions in libsluice.so must be used instead: DELETE THIS FILE at the merge (a definition
 * in the executable, even a weak one, would win over the shared library's at run time), drop it
 * from src/kinesis/meson.build, and let reshard.h include the declarations from
 * <sluice/client.h>. Until then SplitShard, MergeShards and UpdateShardCount validate
 * their input fully and answer "not supported by this server".
 */
#include "kinesis/reshard.h"

#include <sluice/errors.h>

__attribute__((weak)) int sluice_stream_split(struct sluice_client *c, const char *stream,
					      uint32_t shard_id,
					      const struct sluice_hash_key *new_start_hash_key,
					      uint32_t ret_child_ids[2])
{
	return SLUICE_ERR_BAD_OPCODE;
}

__attribute__((weak)) int sluice_stream_merge(struct sluice_client *c, const char *stream,
					      uint32_t shard_id, uint32_t adjacent_shard_id,
					      uint32_t *ret_child_id)
{
	return SLUICE_ERR_BAD_OPCODE;
}

__attribute__((weak)) int sluice_stream_scale(struct sluice_client *c, const char *stream,
					      uint32_t target_open_shards)
{
	return SLUICE_ERR_BAD_OPCODE;
}
