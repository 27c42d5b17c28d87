/* Admin calls of struct sluice_client: create, delete, list, describe streams; list shards. */
#include "client/client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *sluice_stream_status_name(int status)
{
	switch (status) {
	case SLUICE_STREAM_ACTIVE:
		return "ACTIVE";
	case SLUICE_STREAM_CREATING:
		return "CREATING";
	case SLUICE_STREAM_DELETING:
		return "DELETING";
	case SLUICE_STREAM_UPDATING:
		return "UPDATING";
	default:
		return "UNKNOWN";
	}
}

/* Requests whose body is just a stream name. */
static int name_call(struct sluice_client *c, uint8_t opcode, const char *name, bool idempotent,
		     struct sl_reader *ret_rest)
{
	size_t len, start;
	int r = sl_client_check_name(c, name, &len);
	if (r < 0)
		return r;
	r = sl_client_begin(c, opcode, &start);
	if (r == 0)
		r = sl_proto_put_str8(&c->out, name, len);
	if (r < 0)
		return r;
	return sl_client_call(c, start, idempotent, ret_rest);
}

static int malformed(struct sluice_client *c)
{
	return sl_client_fail(c, SLUICE_ERR_PROTOCOL, "malformed answer from the server");
}

int sluice_stream_create(struct sluice_client *c, const char *name, uint32_t shard_count,
			 uint64_t retention_ms)
{
	size_t len, start;
	int r = sl_client_check_name(c, name, &len);
	if (r < 0)
		return r;
	if (shard_count < 1 || shard_count > SLUICE_SHARDS_MAX)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT, "shard count must be 1..%u",
				      SLUICE_SHARDS_MAX);
	r = sl_client_begin(c, SL_OP_CREATE_STREAM, &start);
	if (r == 0)
		r = sl_proto_put_str8(&c->out, name, len);
	if (r == 0)
		r = sl_buf_put_u32(&c->out, shard_count);
	if (r == 0)
		r = sl_buf_put_u64(&c->out, retention_ms);
	if (r < 0)
		return r;
	struct sl_reader rest;
	return sl_client_call(c, start, false, &rest);
}

int sluice_stream_delete(struct sluice_client *c, const char *name)
{
	struct sl_reader rest;
	return name_call(c, SL_OP_DELETE_STREAM, name, false, &rest);
}

void sluice_strings_free(char **names, size_t count)
{
	if (!names)
		return;
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

int sluice_stream_list(struct sluice_client *c, char ***ret_names, size_t *ret_count)
{
	size_t start;
	int r = sl_client_begin(c, SL_OP_LIST_STREAMS, &start);
	if (r < 0)
		return r;
	struct sl_reader rest;
	r = sl_client_call(c, start, true, &rest);
	if (r < 0)
		return r;
	uint32_t n;
	if (!sl_reader_u32(&rest, &n) || n > sl_reader_left(&rest))
		return malformed(c);
	char **names = calloc(n ? n : 1, sizeof(*names));
	if (!names)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct sl_str name;
		if (sl_proto_get_str8(&rest, &name) < 0) {
			sluice_strings_free(names, i);
			return malformed(c);
		}
		names[i] = strndup(name.p, name.len);
		if (!names[i]) {
			sluice_strings_free(names, i);
			return -ENOMEM;
		}
	}
	if (sl_reader_left(&rest) != 0) {
		sluice_strings_free(names, n);
		return malformed(c);
	}
	*ret_names = names;
	*ret_count = n;
	return 0;
}

static void shard_from_desc(struct sluice_shard_info *s, const struct sl_shard_desc *d)
{
	s->shard_id = d->shard_id;
	s->parent_id = d->parent_id;
	s->adjacent_parent_id = d->adjacent_parent_id;
	s->start_hash_key = d->start_hash;
	s->end_hash_key = d->end_hash;
	s->start_seq = d->start_seq;
	s->end_seq = d->end_seq;
	s->next_seq = d->next_seq;
}

/* n x shard_desc from r into a new array. */
static int get_shards(struct sluice_client *c, struct sl_reader *r, uint32_t n,
		      struct sluice_shard_info **ret_shards, size_t *ret_count)
{
	/* Each shard_desc takes 68 bytes: a count the body cannot hold is a lie. */
	if (n > sl_reader_left(r) / 68)
		return malformed(c);
	struct sluice_shard_info *shards = calloc(n ? n : 1, sizeof(*shards));
	if (!shards)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct sl_shard_desc d;
		if (sl_proto_get_shard_desc(r, &d) < 0) {
			free(shards);
			return malformed(c);
		}
		shard_from_desc(&shards[i], &d);
	}
	/* The wire has no state: a shard is closed when another names it as a parent (the
	 * server lists shards by ascending id). */
	for (uint32_t i = 0; i < n; i++) {
		if (shards[i].end_seq)
			shards[i].closed = true;
		for (int k = 0; k < 2; k++) {
			int32_t p = k ? shards[i].adjacent_parent_id : shards[i].parent_id;
			uint32_t lo = 0, hi = n;
			while (p >= 0 && lo < hi) {
				uint32_t mid = (lo + hi) / 2;
				if (shards[mid].shard_id == (uint32_t)p) {
					shards[mid].closed = true;
					break;
				}
				if (shards[mid].shard_id < (uint32_t)p)
					lo = mid + 1;
				else
					hi = mid;
			}
		}
	}
	*ret_shards = shards;
	*ret_count = n;
	return 0;
}

void sluice_shards_free(struct sluice_shard_info *shards)
{
	free(shards);
}

int sluice_list_shards(struct sluice_client *c, const char *stream,
		       struct sluice_shard_info **ret_shards, size_t *ret_count)
{
	struct sl_reader rest;
	int r = name_call(c, SL_OP_LIST_SHARDS, stream, true, &rest);
	if (r < 0)
		return r;
	struct sluice_shard_info *shards;
	size_t n;
	uint32_t count;
	if (!sl_reader_u32(&rest, &count))
		return malformed(c);
	r = get_shards(c, &rest, count, &shards, &n);
	if (r < 0)
		return r;
	if (sl_reader_left(&rest) != 0) {
		free(shards);
		return malformed(c);
	}
	*ret_shards = shards;
	*ret_count = n;
	return 0;
}

void sluice_stream_info_free(struct sluice_stream_info *info)
{
	if (!info)
		return;
	free(info->name);
	free(info->shards);
	free(info);
}

int sluice_stream_describe(struct sluice_client *c, const char *name,
			   struct sluice_stream_info **ret)
{
	struct sl_reader rest;
	int r = name_call(c, SL_OP_DESCRIBE_STREAM, name, true, &rest);
	if (r < 0)
		return r;
	struct sl_stream_desc d;
	if (sl_proto_get_stream_desc(&rest, &d) < 0)
		return malformed(c);
	struct sluice_stream_info *info = calloc(1, sizeof(*info));
	if (!info)
		return -ENOMEM;
	info->name = strndup(d.name.p, d.name.len);
	if (!info->name) {
		sluice_stream_info_free(info);
		return -ENOMEM;
	}
	info->retention_ms = d.retention_ms;
	info->created_ms = d.created_ms;
	info->status = d.status;
	r = get_shards(c, &rest, d.shard_count, &info->shards, &info->shard_count);
	if (r == 0 && sl_reader_left(&rest) != 0)
		r = malformed(c);
	if (r < 0) {
		sluice_stream_info_free(info);
		return r;
	}
	*ret = info;
	return 0;
}
