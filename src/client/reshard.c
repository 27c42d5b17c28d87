/*
 * Resharding calls of struct sluice_client: split, merge, scale (STREAM_SPLIT / _MERGE / _SCALE).
 * None of them is idempotent (a repeated split would split a child), so none is retried after a
 * lost connection: the caller looks at sluice_list_shards to see whether it happened.
 */
#include "client/client_internal.h"

#include <errno.h>

static int begin(struct sluice_client *c, uint8_t opcode, const char *stream, size_t *start)
{
	size_t len;
	int r = sl_client_check_name(c, stream, &len);
	if (r < 0)
		return r;
	r = sl_client_begin(c, opcode, start);
	return r ?: sl_proto_put_str8(&c->out, stream, len);
}

static int malformed(struct sluice_client *c)
{
	return sl_client_fail(c, SLUICE_ERR_PROTOCOL, "malformed answer from the server");
}

int sluice_stream_split(struct sluice_client *c, const char *stream, uint32_t shard_id,
			const struct sluice_hash_key *new_start_hash_key, uint32_t ret_child_ids[2])
{
	if (!new_start_hash_key)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "a split needs the new starting hash key");
	size_t start;
	int r = begin(c, SL_OP_STREAM_SPLIT, stream, &start);
	r = r ?: sl_buf_put_u32(&c->out, shard_id);
	r = r ?: sl_buf_put(&c->out, new_start_hash_key->be, sizeof(new_start_hash_key->be));
	if (r < 0)
		return r;
	struct sl_reader rest;
	r = sl_client_call(c, start, false, &rest);
	if (r < 0)
		return r;
	uint32_t a, b;
	if (!sl_reader_u32(&rest, &a) || !sl_reader_u32(&rest, &b) || sl_reader_left(&rest))
		return malformed(c);
	if (ret_child_ids) {
		ret_child_ids[0] = a;
		ret_child_ids[1] = b;
	}
	return 0;
}

int sluice_stream_merge(struct sluice_client *c, const char *stream, uint32_t shard_id,
			uint32_t adjacent_shard_id, uint32_t *ret_child_id)
{
	size_t start;
	int r = begin(c, SL_OP_STREAM_MERGE, stream, &start);
	r = r ?: sl_buf_put_u32(&c->out, shard_id);
	r = r ?: sl_buf_put_u32(&c->out, adjacent_shard_id);
	if (r < 0)
		return r;
	struct sl_reader rest;
	r = sl_client_call(c, start, false, &rest);
	if (r < 0)
		return r;
	uint32_t child;
	if (!sl_reader_u32(&rest, &child) || sl_reader_left(&rest))
		return malformed(c);
	if (ret_child_id)
		*ret_child_id = child;
	return 0;
}

int sluice_stream_scale(struct sluice_client *c, const char *stream, uint32_t target_open_shards)
{
	if (target_open_shards < 1 || target_open_shards > SLUICE_SHARDS_MAX)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "target shard count must be 1..%u", SLUICE_SHARDS_MAX);
	size_t start;
	int r = begin(c, SL_OP_STREAM_SCALE, stream, &start);
	r = r ?: sl_buf_put_u32(&c->out, target_open_shards);
	if (r < 0)
		return r;
	struct sl_reader rest;
	r = sl_client_call(c, start, false, &rest);
	if (r < 0)
		return r;
	uint32_t open;
	if (!sl_reader_u32(&rest, &open) || sl_reader_left(&rest))
		return malformed(c);
	return 0;
}
