/* Restore calls of struct sluice_client: create from metadata, get metadata, restore append. */
#include "client/client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sluice_stream_create_from_meta(struct sluice_client *c, const char *name, const char *json,
				   size_t json_len)
{
	size_t len, start;
	int r = sl_client_check_name(c, name, &len);
	if (r < 0)
		return r;
	if (!json || json_len == 0 || json_len > SL_PROTO_META_JSON_MAX)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "stream metadata must be 1..%u bytes",
				      SL_PROTO_META_JSON_MAX);
	r = sl_client_begin(c, SL_OP_STREAM_CREATE_FROM_META, &start);
	r = r ?: sl_proto_put_str8(&c->out, name, len);
	r = r ?: sl_buf_put_u32(&c->out, (uint32_t)json_len);
	r = r ?: sl_buf_put(&c->out, json, json_len);
	if (r < 0)
		return r;
	struct sl_reader rest;
	return sl_client_call(c, start, false, &rest);
}

int sluice_stream_meta_get(struct sluice_client *c, const char *name, char **ret_json,
			   size_t *ret_len)
{
	size_t len, start;
	int r = sl_client_check_name(c, name, &len);
	if (r < 0)
		return r;
	r = sl_client_begin(c, SL_OP_STREAM_META_GET, &start);
	r = r ?: sl_proto_put_str8(&c->out, name, len);
	if (r < 0)
		return r;
	struct sl_reader rest;
	r = sl_client_call(c, start, true, &rest);
	if (r < 0)
		return r;
	uint32_t n;
	const uint8_t *p;
	if (!sl_reader_u32(&rest, &n) || !sl_reader_bytes(&rest, n, &p) ||
	    sl_reader_left(&rest) != 0)
		return sl_client_fail(c, SLUICE_ERR_PROTOCOL, "malformed answer from the server");
	char *json = malloc((size_t)n + 1);
	if (!json)
		return -ENOMEM;
	memcpy(json, p, n);
	json[n] = '\0';
	*ret_json = json;
	*ret_len = n;
	return 0;
}

int sluice_restore_append(struct sluice_client *c, const char *stream, uint32_t shard_id,
			  const struct sluice_record *recs, size_t n,
			  struct sluice_restore_result *ret)
{
	size_t len, start;
	int r = sl_client_check_name(c, stream, &len);
	if (r < 0)
		return r;
	if (n == 0 || n > SLUICE_PUT_BATCH_MAX)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "a restore append takes 1..%u records", SLUICE_PUT_BATCH_MAX);
	for (size_t i = 0; i < n; i++) {
		if (!sl_proto_key_valid((const uint8_t *)recs[i].key, recs[i].key_len))
			return sl_client_fail(c, SLUICE_ERR_INVALID_KEY, "record %zu: %s", i,
					      sluice_strerror(SLUICE_ERR_INVALID_KEY));
		if (i && recs[i].seq <= recs[i - 1].seq)
			return sl_client_fail(
			    c, SLUICE_ERR_SEQ_ORDER, "record %zu: seq %llu after %llu", i,
			    (unsigned long long)recs[i].seq, (unsigned long long)recs[i - 1].seq);
	}
	r = sl_client_begin(c, SL_OP_RESTORE_APPEND, &start);
	r = r ?: sl_proto_put_str8(&c->out, stream, len);
	r = r ?: sl_buf_put_u32(&c->out, shard_id);
	r = r ?: sl_buf_put_u32(&c->out, (uint32_t)n);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = sl_proto_put_restore_record(&c->out, &recs[i]);
	if (r < 0)
		return r;
	struct sl_reader rest;
	/* Idempotent: a re-sent batch is skipped by seq where it was stored. */
	r = sl_client_call(c, start, true, &rest);
	if (r < 0)
		return r;
	struct sluice_restore_result res;
	if (!sl_reader_u32(&rest, &res.appended) || !sl_reader_u32(&rest, &res.skipped) ||
	    !sl_reader_u64(&rest, &res.next_seq) || sl_reader_left(&rest) != 0)
		return sl_client_fail(c, SLUICE_ERR_PROTOCOL, "malformed answer from the server");
	if (ret)
		*ret = res;
	return 0;
}
