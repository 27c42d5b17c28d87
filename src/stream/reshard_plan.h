/*
 * Reshard plans: a reshard as a list of split and merge steps over stream metadata, and the
 * planner of UpdateShardCount (UNIFORM_SCALING). Pure logic over struct sl_stream_meta, no I/O.
 *
 * Uniform scaling to m open shards (Kinesis' UpdateShardCount): the target ranges are the even
 * split of the hash space (sl_hash_range_even). First every open shard is split at each target
 * boundary strictly inside its range (left to right, the right child split further), so every
 * open shard lies inside one target range; then the open shards inside each target range are
 * merged left to right. Every step is an ordinary split or merge, so every child has at most a
 * parent and an adjacent parent, and readers that follow lineage follow a scale too. Shards
 * already matching a target range are left alone.
 *
 * Applying a plan: the end_seq of each shard a step closes is either given (a shard that was
 * open before the plan: sealed by the server, its last sequence number) or, for a shard the plan
 * itself created, start_seq - 1 (it never got a record: it was never published). So children
 * start after their parents' last record and per-key sequence numbers keep increasing.
 */
#ifndef SL_STREAM_RESHARD_PLAN_H
#define SL_STREAM_RESHARD_PLAN_H

#include "stream/stream_meta.h"

#include <stddef.h>
#include <stdint.h>

enum sl_reshard_kind {
	SL_RESHARD_SPLIT = 0,
	SL_RESHARD_MERGE = 1,
};

struct sl_reshard_step {
	enum sl_reshard_kind kind;
	uint32_t shard_id;
	uint32_t adjacent_id; /* merge */
	sl_u128 start_key;    /* split: the right child's starting hash key */
};

/* The last sequence number of a shard the server sealed. */
struct sl_reshard_seal {
	uint32_t shard_id;
	uint64_t end_seq;
};

/* Uniform scaling limits (Kinesis): at most double, at least half the open shards. */
/*
 * Plan uniform scaling of meta to target open shards. *ret_steps is malloc'd (free() it; NULL
 * when *ret_count is 0: already uniform at that count). Returns 0, SLUICE_ERR_INVALID_ARGUMENT
 * with a message (target 0, above SLUICE_SHARDS_MAX, above double or below half the open count),
 * SLUICE_ERR_LIMIT_EXCEEDED (the plan would list more than SL_STREAM_SHARD_RECORDS_MAX shards),
 * or -ENOMEM.
 */
int sl_reshard_plan_scale(const struct sl_stream_meta *meta, uint32_t target,
			  struct sl_reshard_step **ret_steps, size_t *ret_count, char *err_msg,
			  size_t err_msg_len);

/*
 * Apply steps to meta in order (see the top for the end_seq rule); seals lists the shards open
 * before the plan that it closes (may be NULL when nseals is 0: a dry run, every closed shard
 * gets start_seq - 1). On failure meta may be partly changed: apply to a clone. Child ids of the
 * last step go to ret_child_ids (may be NULL): two for a split, one for a merge. Returns 0 or
 * the error of the failing step (see sl_stream_meta_split/_merge) with its message.
 */
int sl_reshard_apply(struct sl_stream_meta *meta, const struct sl_reshard_step *steps, size_t count,
		     const struct sl_reshard_seal *seals, size_t nseals, uint32_t ret_child_ids[2],
		     char *err_msg, size_t err_msg_len);

/*
 * The shards open in meta that the steps close (those the server must seal), in ascending id
 * order, into ret_ids (room for count * 2 ids). Returns how many, or an error as apply does
 * (the steps are applied to a clone to find out).
 */
int sl_reshard_touched(const struct sl_stream_meta *meta, const struct sl_reshard_step *steps,
		       size_t count, uint32_t *ret_ids, char *err_msg, size_t err_msg_len);

#endif
