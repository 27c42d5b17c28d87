/*
 * Resharding: SplitShard, MergeShards, UpdateShardCount. Validation and error mapping here; the
 * work is libsluice's (sluice_stream_split/_merge/_scale). Closed parent shards keep their records
 * until they expire and are read to their end before NextShardIterator becomes null
 * (ops_records.c).
 */
#include "kinesis/ops.h"

#include "stream/stream_meta.h"

#include <sluice/errors.h>

#include <string.h>

static const struct sluice_shard_info *find_open(struct kin_req *q, const char *stream,
						 struct sluice_shard_info *shards, size_t n,
						 uint32_t id)
{
	for (size_t i = 0; i < n; i++) {
		if (shards[i].shard_id != id)
			continue;
		if (shards[i].closed) {
			char sid[SL_SHARD_ID_BUF];
			sl_shard_id_format(id, sid);
			kin_fail(q, 400, KIN_E_INVALID_ARG,
				 "Shard %s in stream %s under account " KIN_ACCOUNT
				 " has already been merged or split, and thus is not eligible for "
				 "merging or splitting.",
				 sid, stream);
			return NULL;
		}
		return &shards[i];
	}
	char sid[SL_SHARD_ID_BUF];
	sl_shard_id_format(id, sid);
	kin_fail(q, 400, KIN_E_NOT_FOUND,
		 "Could not find shard %s in stream %s under account " KIN_ACCOUNT ".", sid,
		 stream);
	return NULL;
}

static bool list(struct kin_req *q, struct sluice_client *c, const char *stream,
		 struct sluice_shard_info **ret, size_t *ret_n)
{
	int r = sluice_list_shards(c, stream, ret, ret_n);
	if (r < 0) {
		kin_fail_native(q, r, stream);
		return false;
	}
	return true;
}

void kin_op_split_shard(struct kin_req *q)
{
	char stream[SLUICE_NAME_LEN_MAX + 1];
	uint32_t shard;
	const char *key_text;
	if (!kin_get_stream(q, stream) || !kin_get_shard_id(q, "ShardToSplit", &shard, NULL) ||
	    !kin_get_string(q, "NewStartingHashKey", 1, 128, &key_text, NULL))
		return;
	sl_u128 key;
	if (sl_u128_parse_str(key_text, &key) < 0) {
		kin_fail(
		    q, 400, KIN_E_VALIDATION,
		    "1 validation error detected: Value '%s' at 'newStartingHashKey' failed to "
		    "satisfy constraint: Member must satisfy regular expression pattern: "
		    "0|([1-9]\\d{0,38})",
		    key_text);
		return;
	}
	struct sluice_client *c = kin_client(q);
	struct sluice_shard_info *shards;
	size_t n;
	if (!c || !list(q, c, stream, &shards, &n))
		return;
	const struct sluice_shard_info *sh = find_open(q, stream, shards, n, shard);
	bool in_range = sh && key > sl_hash_key_to_u128(&sh->start_hash_key) &&
			key <= sl_hash_key_to_u128(&sh->end_hash_key);
	sluice_shards_free(shards);
	if (!sh)
		return;
	if (!in_range) {
		kin_fail(q, 400, KIN_E_INVALID_ARG,
			 "NewStartingHashKey %s used in SplitShard() on shard in stream %s under "
			 "account " KIN_ACCOUNT " is not both greater than one plus the shard's "
			 "StartingHashKey and less than the shard's EndingHashKey.",
			 key_text, stream);
		return;
	}
	struct sluice_hash_key hk;
	sl_hash_key_from_u128(key, &hk);
	uint32_t children[2];
	int r = sluice_stream_split(c, stream, shard, &hk, children);
	if (r < 0) {
		kin_fail_native(q, r, stream);
		return;
	}
	kin_ok(q, NULL);
}

void kin_op_merge_shards(struct kin_req *q)
{
	char stream[SLUICE_NAME_LEN_MAX + 1];
	uint32_t a, b;
	if (!kin_get_stream(q, stream) || !kin_get_shard_id(q, "ShardToMerge", &a, NULL) ||
	    !kin_get_shard_id(q, "AdjacentShardToMerge", &b, NULL))
		return;
	struct sluice_client *c = kin_client(q);
	struct sluice_shard_info *shards;
	size_t n;
	if (!c || !list(q, c, stream, &shards, &n))
		return;
	const struct sluice_shard_info *sa = find_open(q, stream, shards, n, a);
	const struct sluice_shard_info *sb = sa ? find_open(q, stream, shards, n, b) : NULL;
	bool adjacent = false;
	if (sa && sb) {
		sl_u128 a_end = sl_hash_key_to_u128(&sa->end_hash_key);
		sl_u128 b_end = sl_hash_key_to_u128(&sb->end_hash_key);
		sl_u128 a_start = sl_hash_key_to_u128(&sa->start_hash_key);
		sl_u128 b_start = sl_hash_key_to_u128(&sb->start_hash_key);
		adjacent = (a_end + 1 == b_start && a_end != SL_U128_MAX) ||
			   (b_end + 1 == a_start && b_end != SL_U128_MAX);
	}
	sluice_shards_free(shards);
	if (!sa || !sb)
		return;
	if (!adjacent) {
		kin_fail(
		    q, 400, KIN_E_INVALID_ARG,
		    "Shards shardId-%012u and shardId-%012u in stream %s under account " KIN_ACCOUNT
		    " are not an adjacent pair of shards eligible for merging",
		    a, b, stream);
		return;
	}
	uint32_t child;
	int r = sluice_stream_merge(c, stream, a, b, &child);
	if (r < 0) {
		kin_fail_native(q, r, stream);
		return;
	}
	kin_ok(q, NULL);
}

void kin_op_update_shard_count(struct kin_req *q)
{
	char stream[SLUICE_NAME_LEN_MAX + 1];
	int64_t target;
	const char *scaling;
	if (!kin_get_stream(q, stream) ||
	    !kin_get_int(q, "TargetShardCount", 1, 100000, &target, NULL) ||
	    !kin_get_string(q, "ScalingType", 1, 64, &scaling, NULL))
		return;
	if (strcmp(scaling, "UNIFORM_SCALING") != 0) {
		kin_fail(
		    q, 400, KIN_E_VALIDATION,
		    "1 validation error detected: Value '%s' at 'scalingType' failed to satisfy "
		    "constraint: Member must satisfy enum value set: [UNIFORM_SCALING]",
		    scaling);
		return;
	}
	struct sluice_client *c = kin_client(q);
	struct sluice_shard_info *shards;
	size_t n;
	if (!c || !list(q, c, stream, &shards, &n))
		return;
	int64_t open = 0;
	for (size_t i = 0; i < n; i++)
		open += !shards[i].closed;
	sluice_shards_free(shards);
	/* Kinesis: one UpdateShardCount at most doubles or halves the open shards. */
	if (target > 2 * open || 2 * target < open) {
		kin_fail(
		    q, 400, KIN_E_INVALID_ARG,
		    "UpdateShardCount cannot scale up over double your current open shard count "
		    "(%lld) or scale down below half (TargetShardCount %lld).",
		    (long long)open, (long long)target);
		return;
	}
	if (target > SLUICE_SHARDS_MAX) {
		kin_fail(q, 400, KIN_E_LIMIT,
			 "TargetShardCount %lld is over the limit of %d shards.", (long long)target,
			 SLUICE_SHARDS_MAX);
		return;
	}
	int r = sluice_stream_scale(c, stream, (uint32_t)target);
	if (r < 0) {
		kin_fail_native(q, r, stream);
		return;
	}
	char arn[256];
	kin_arn(stream, arn, sizeof(arn));
	kin_ok(q, json_pack("{s:s,s:s,s:I,s:I}", "StreamName", stream, "StreamARN", arn,
			    "CurrentShardCount", (json_int_t)open, "TargetShardCount",
			    (json_int_t)target));
}
