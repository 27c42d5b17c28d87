/* Synchronous produce: one PRODUCE request per call, answered per record. */
#include "client/client_internal.h"

#include <errno.h>
#include <string.h>

static int check_entry(struct sluice_client *c, size_t i, const struct sluice_put_entry *e)
{
	if (!e->key || !sl_proto_key_valid(e->key, e->key_len))
		return sl_client_fail(c, SLUICE_ERR_INVALID_KEY, "record %zu: %s", i,
				      sluice_strerror(SLUICE_ERR_INVALID_KEY));
	if (e->data_len > SLUICE_RECORD_BYTES_LIMIT || (e->data_len && !e->data))
		return sl_client_fail(c, SLUICE_ERR_RECORD_TOO_LARGE, "record %zu: %s", i,
				      sluice_strerror(SLUICE_ERR_RECORD_TOO_LARGE));
	return 0;
}

int sluice_put_batch(struct sluice_client *c, const char *stream,
		     const struct sluice_put_entry *entries, size_t n,
		     struct sluice_put_result *results)
{
	size_t name_len, start;
	int r = sl_client_check_name(c, stream, &name_len);
	if (r < 0)
		return r;
	if (n == 0 || n > SLUICE_PUT_BATCH_MAX)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT, "a batch holds 1..%u records",
				      SLUICE_PUT_BATCH_MAX);
	for (size_t i = 0; i < n; i++) {
		r = check_entry(c, i, &entries[i]);
		if (r < 0)
			return r;
	}
	r = sl_client_begin(c, SL_OP_PRODUCE, &start);
	if (r == 0)
		r = sl_proto_put_str8(&c->out, stream, name_len);
	if (r == 0)
		r = sl_buf_put_u32(&c->out, (uint32_t)n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		const struct sluice_put_entry *e = &entries[i];
		struct sl_record_view v = {
		    .key = e->key,
		    .key_len = (uint16_t)e->key_len,
		    .has_hash_key = e->hash_key != NULL,
		    .data = e->data,
		    .data_len = (uint32_t)e->data_len,
		};
		if (e->hash_key)
			v.hash_key = *e->hash_key;
		r = sl_proto_put_record_in(&c->out, &v);
	}
	if (r < 0)
		return r;
	struct sl_reader rest;
	r = sl_client_call(c, start, false, &rest);
	if (r < 0)
		return r;
	uint32_t count;
	if (!sl_reader_u32(&rest, &count) || count != n || sl_reader_left(&rest) != 16 * (size_t)n)
		return sl_client_fail(c, SLUICE_ERR_PROTOCOL, "malformed answer from the server");
	for (size_t i = 0; i < n; i++) {
		uint32_t status, shard;
		uint64_t seq;
		sl_reader_u32(&rest, &status);
		sl_reader_u32(&rest, &shard);
		sl_reader_u64(&rest, &seq);
		results[i].status = (int32_t)status;
		results[i].shard_id = shard;
		results[i].seq = seq;
	}
	return 0;
}

int sluice_put(struct sluice_client *c, const char *stream, const void *key, size_t key_len,
	       const void *data, size_t data_len, uint32_t *ret_shard, uint64_t *ret_seq)
{
	struct sluice_put_entry e = {
	    .key = key, .key_len = key_len, .data = data, .data_len = data_len};
	struct sluice_put_result res;
	int r = sluice_put_batch(c, stream, &e, 1, &res);
	if (r < 0)
		return r;
	if (res.status < 0)
		return sl_client_fail(c, res.status, "%s", sluice_strerror(res.status));
	if (ret_shard)
		*ret_shard = res.shard_id;
	if (ret_seq)
		*ret_seq = res.seq;
	return 0;
}
