/*
 * Restore request bodies (layouts in codec.h): STREAM_CREATE_FROM_META and RESTORE_APPEND.
 * STREAM_META_GET carries a bare name (sl_proto_decode_name). Structure is checked before
 * meaning, as in messages.c.
 */
#include "proto/codec.h"
#include "proto/wire.h"

#include <sluice/errors.h>

#include <errno.h>

int sl_proto_decode_create_from_meta(const uint8_t *body, size_t len, struct sl_str *ret_name,
				     struct sl_str *ret_json)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_str name;
	uint32_t n;
	const uint8_t *p;
	rd_str8(&r, &name);
	rd_u32(&r, &n);
	if (!r.ok || n > sl_reader_left(&r) || !rd_take(&r, n, &p) || !rd_done(&r))
		return SLUICE_ERR_PROTOCOL;
	if (!sl_proto_name_valid((const uint8_t *)name.p, name.len))
		return SLUICE_ERR_INVALID_NAME;
	if (n == 0)
		return SLUICE_ERR_INVALID_ARGUMENT;
	*ret_name = name;
	ret_json->p = (const char *)p;
	ret_json->len = n;
	return 0;
}

/* The smallest restore_record: seq, ts, an empty str16 and data_len. */
#define RESTORE_RECORD_BYTES_MIN (8 + 8 + 2 + 4)

int sl_proto_decode_restore_append(const uint8_t *body, size_t len,
				   struct sl_req_restore_append *ret)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_req_restore_append q = {0};
	rd_str8(&r, &q.stream);
	rd_u32(&r, &q.shard_id);
	rd_u32(&r, &q.count);
	if (!r.ok || q.count > SL_PROTO_RECORDS_MAX ||
	    (uint64_t)q.count * RESTORE_RECORD_BYTES_MIN > sl_reader_left(&r))
		return SLUICE_ERR_PROTOCOL;
	if (!sl_proto_name_valid((const uint8_t *)q.stream.p, q.stream.len))
		return SLUICE_ERR_INVALID_NAME;
	if (q.count == 0)
		return SLUICE_ERR_INVALID_ARGUMENT;
	sl_reader_init(&q.records, r.p + r.off, r.len - r.off);
	*ret = q;
	return 0;
}

int sl_proto_restore_next(struct sl_req_restore_append *req, uint32_t record_bytes_max,
			  struct sl_restore_record_view *ret)
{
	struct sl_reader r = req->records;
	if (req->next == req->count)
		return rd_done(&r) ? 0 : SLUICE_ERR_PROTOCOL;
	struct sl_restore_record_view v;
	struct sl_str key;
	rd_u64(&r, &v.seq);
	rd_i64(&r, &v.ts_ms);
	rd_str16(&r, &key);
	rd_u32(&r, &v.data_len);
	if (!r.ok || !rd_take(&r, v.data_len, &v.data))
		return SLUICE_ERR_PROTOCOL;
	req->records = r;
	req->next++;
	v.key = (const uint8_t *)key.p;
	v.key_len = (uint16_t)key.len;
	*ret = v;
	if (!sl_proto_key_valid(v.key, v.key_len))
		return SLUICE_ERR_INVALID_KEY;
	if (v.data_len > record_bytes_max)
		return SLUICE_ERR_RECORD_TOO_LARGE;
	if (v.seq == 0 || v.seq == UINT64_MAX || v.ts_ms <= 0)
		return SLUICE_ERR_INVALID_ARGUMENT;
	return 1;
}

int sl_proto_put_restore_record(struct sl_buf *out, const struct sluice_record *rec)
{
	if (rec->key_len > SLUICE_KEY_LEN_MAX)
		return -EINVAL;
	int r = sl_buf_reserve(out, RESTORE_RECORD_BYTES_MIN + rec->key_len + rec->data_len);
	if (r < 0)
		return r;
	/* Room is reserved: plain stores, not a checked put per field (this runs per record). */
	uint8_t *p = out->data + out->len;
	sl_store_u64(p, rec->seq);
	sl_store_u64(p + 8, (uint64_t)rec->ts_ms);
	sl_store_u16(p + 16, rec->key_len);
	if (rec->key_len)
		memcpy(p + 18, rec->key, rec->key_len);
	p += 18 + rec->key_len;
	sl_store_u32(p, rec->data_len);
	if (rec->data_len)
		memcpy(p + 4, rec->data, rec->data_len);
	out->len += RESTORE_RECORD_BYTES_MIN + rec->key_len + rec->data_len;
	return 0;
}
