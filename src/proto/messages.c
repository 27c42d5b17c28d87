/*
 * Request and response bodies (layouts in codec.h). Every decoder first checks structure (each
 * length against what is left, no trailing bytes: SLUICE_ERR_PROTOCOL) and only then meaning
 * (names, keys, ranges), so a malformed body is always reported as malformed.
 */
#include "proto/codec.h"
#include "proto/wire.h"

#include <sluice/errors.h>

#include <errno.h>

/* The smallest record_in the iterator can step over: str16 key of 0 bytes, flags, data_len. */
#define RECORD_IN_BYTES_MIN (2 + 1 + 4)

static bool name_ok(const struct sl_str *s)
{
	return sl_proto_name_valid((const uint8_t *)s->p, s->len);
}

int sl_proto_decode_name(const uint8_t *body, size_t len, struct sl_str *ret)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_str name;
	rd_str8(&r, &name);
	if (!rd_done(&r))
		return SLUICE_ERR_PROTOCOL;
	if (!name_ok(&name))
		return SLUICE_ERR_INVALID_NAME;
	*ret = name;
	return 0;
}

int sl_proto_decode_auth(const uint8_t *body, size_t len, struct sl_str *ret_token)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_str token;
	rd_str16(&r, &token);
	if (!rd_done(&r))
		return SLUICE_ERR_PROTOCOL;
	*ret_token = token;
	return 0;
}

int sl_proto_decode_create_stream(const uint8_t *body, size_t len, struct sl_req_create_stream *ret)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_req_create_stream req;
	rd_str8(&r, &req.name);
	rd_u32(&r, &req.shard_count);
	rd_u64(&r, &req.retention_ms);
	if (!rd_done(&r))
		return SLUICE_ERR_PROTOCOL;
	if (!name_ok(&req.name))
		return SLUICE_ERR_INVALID_NAME;
	if (req.shard_count < 1 || req.shard_count > SLUICE_SHARDS_MAX)
		return SLUICE_ERR_INVALID_ARGUMENT;
	*ret = req;
	return 0;
}

int sl_proto_decode_read(const uint8_t *body, size_t len, struct sl_req_read *ret)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_req_read req;
	uint8_t type = 0;
	rd_str8(&r, &req.stream);
	rd_u32(&r, &req.shard_id);
	rd_u8(&r, &type);
	rd_u64(&r, &req.position.value);
	rd_u32(&r, &req.max_records);
	rd_u32(&r, &req.max_bytes);
	req.wait_ms = 0;
	/* wait_ms came later: a request without it is still whole. */
	if (r.ok && sl_reader_left(&r) > 0)
		rd_u32(&r, &req.wait_ms);
	if (!rd_done(&r))
		return SLUICE_ERR_PROTOCOL;
	if (!name_ok(&req.stream))
		return SLUICE_ERR_INVALID_NAME;
	if (type > SLUICE_POS_AT_TIMESTAMP || req.max_records < 1 ||
	    req.max_records > SL_PROTO_RECORDS_MAX || req.max_bytes < 1 ||
	    req.wait_ms > SL_PROTO_READ_WAIT_MS_MAX)
		return SLUICE_ERR_INVALID_ARGUMENT;
	req.position.type = (enum sluice_position_type)type;
	*ret = req;
	return 0;
}

int sl_proto_decode_produce(const uint8_t *body, size_t len, struct sl_req_produce *ret)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_str stream;
	uint32_t count = 0;
	rd_str8(&r, &stream);
	rd_u32(&r, &count);
	if (!r.ok || count > SL_PROTO_RECORDS_MAX)
		return SLUICE_ERR_PROTOCOL;
	/*
	 * count records cannot fit in fewer bytes than this: rejecting here spares the server from
	 * sizing a result array for 10,000 records that a 20-byte frame claims to carry.
	 */
	if ((uint64_t)count * RECORD_IN_BYTES_MIN > r.len - r.off)
		return SLUICE_ERR_PROTOCOL;
	if (!name_ok(&stream))
		return SLUICE_ERR_INVALID_NAME;
	if (count == 0)
		return SLUICE_ERR_INVALID_ARGUMENT; /* as Kinesis PutRecords: at least one record */
	ret->stream = stream;
	ret->count = count;
	ret->records = r;
	ret->next = 0;
	return 0;
}

int sl_proto_produce_next(struct sl_req_produce *req, uint32_t record_bytes_max,
			  struct sl_record_view *ret)
{
	/* Work on a register copy of the reader; store it back once the record is stepped over. */
	struct sl_reader r = req->records;
	if (!r.ok)
		return SLUICE_ERR_PROTOCOL; /* an earlier call found the request malformed */
	if (req->next == req->count) {
		if (r.off == r.len)
			return 0;
		req->records.ok = false;
		return SLUICE_ERR_PROTOCOL; /* trailing bytes */
	}

	struct sl_record_view rec;
	const uint8_t *key = NULL;
	uint16_t key_len = 0;
	uint8_t flags = 0;
	rd_u16(&r, &key_len);
	rd_take(&r, key_len, &key);
	rd_u8(&r, &flags);
	if (!r.ok || (flags & ~SL_RECORD_FLAG_HASH_KEY)) {
		/* Unknown flag bits may change the layout: nothing after them can be trusted. */
		req->records.ok = false;
		return SLUICE_ERR_PROTOCOL;
	}
	rec.has_hash_key = flags & SL_RECORD_FLAG_HASH_KEY;
	if (rec.has_hash_key)
		rd_hash(&r, &rec.hash_key);
	else
		memset(&rec.hash_key, 0, sizeof(rec.hash_key));
	rd_u32(&r, &rec.data_len);
	/* The data must be present even when it is too large: it is skipped, not trusted. */
	rd_take(&r, r.ok ? rec.data_len : 0, &rec.data);
	if (!r.ok) {
		req->records.ok = false;
		return SLUICE_ERR_PROTOCOL;
	}
	rec.key = key;
	rec.key_len = key_len;

	req->records = r;
	req->next++;
	*ret = rec;
	if (__builtin_expect(!sl_proto_key_valid(key, key_len), 0))
		return SLUICE_ERR_INVALID_KEY;
	if (__builtin_expect(rec.data_len > record_bytes_max, 0))
		return SLUICE_ERR_RECORD_TOO_LARGE;
	return 1;
}

int sl_proto_put_record_in(struct sl_buf *out, const struct sl_record_view *rec)
{
	size_t hash_bytes = rec->has_hash_key ? sizeof(rec->hash_key.be) : 0;
	size_t n = 2 + (size_t)rec->key_len + 1 + hash_bytes + 4 + rec->data_len;
	int r = sl_buf_reserve(out, n);
	if (r < 0)
		return r;
	uint8_t *p = out->data + out->len;
	sl_store_u16(p, rec->key_len);
	p += 2;
	if (rec->key_len)
		memcpy(p, rec->key, rec->key_len);
	p += rec->key_len;
	*p++ = rec->has_hash_key ? SL_RECORD_FLAG_HASH_KEY : 0;
	if (hash_bytes) {
		memcpy(p, rec->hash_key.be, hash_bytes);
		p += hash_bytes;
	}
	sl_store_u32(p, rec->data_len);
	p += 4;
	if (rec->data_len)
		memcpy(p, rec->data, rec->data_len);
	out->len += n;
	return 0;
}

int sl_proto_put_record_out(struct sl_buf *out, const struct sluice_record *rec)
{
	size_t hash_bytes = rec->has_hash_key ? sizeof(rec->hash_key.be) : 0;
	size_t n = 8 + 8 + 2 + (size_t)rec->key_len + 1 + hash_bytes + 4 + rec->data_len;
	int r = sl_buf_reserve(out, n);
	if (r < 0)
		return r;
	uint8_t *p = out->data + out->len;
	sl_store_u64(p, rec->seq);
	sl_store_u64(p + 8, (uint64_t)rec->ts_ms);
	sl_store_u16(p + 16, rec->key_len);
	p += 18;
	if (rec->key_len)
		memcpy(p, rec->key, rec->key_len);
	p += rec->key_len;
	*p++ = rec->has_hash_key ? SL_RECORD_FLAG_HASH_KEY : 0;
	if (hash_bytes) {
		memcpy(p, rec->hash_key.be, hash_bytes);
		p += hash_bytes;
	}
	sl_store_u32(p, rec->data_len);
	p += 4;
	if (rec->data_len)
		memcpy(p, rec->data, rec->data_len);
	out->len += n;
	return 0;
}

int sl_proto_get_record_out(struct sl_reader *r, struct sluice_record *ret)
{
	struct sluice_record rec;
	struct sl_str key = {0};
	uint8_t flags = 0;
	rd_u64(r, &rec.seq);
	rd_i64(r, &rec.ts_ms);
	rd_str16(r, &key);
	rd_u8(r, &flags);
	if (r->ok && (flags & ~SL_RECORD_FLAG_HASH_KEY))
		r->ok = false;
	rec.has_hash_key = flags & SL_RECORD_FLAG_HASH_KEY;
	if (rec.has_hash_key)
		rd_hash(r, &rec.hash_key);
	else
		memset(&rec.hash_key, 0, sizeof(rec.hash_key));
	rec.data_len = 0;
	rd_u32(r, &rec.data_len);
	rd_take(r, r->ok ? rec.data_len : 0, &rec.data);
	/* The server stored only valid keys: anything else is a broken or hostile peer. */
	if (r->ok && !sl_proto_key_valid((const uint8_t *)key.p, key.len))
		r->ok = false;
	if (!r->ok)
		return SLUICE_ERR_PROTOCOL;
	rec.key = key.p;
	rec.key_len = (uint16_t)key.len;
	*ret = rec;
	return 0;
}

int sl_proto_put_shard_desc(struct sl_buf *out, const struct sl_shard_desc *d)
{
	const size_t n = 4 + 4 + 4 + 16 + 16 + 8 + 8 + 8;
	int r = sl_buf_reserve(out, n);
	if (r < 0)
		return r;
	uint8_t *p = out->data + out->len;
	sl_store_u32(p, d->shard_id);
	sl_store_u32(p + 4, (uint32_t)d->parent_id);
	sl_store_u32(p + 8, (uint32_t)d->adjacent_parent_id);
	memcpy(p + 12, d->start_hash.be, 16);
	memcpy(p + 28, d->end_hash.be, 16);
	sl_store_u64(p + 44, d->start_seq);
	sl_store_u64(p + 52, d->end_seq);
	sl_store_u64(p + 60, d->next_seq);
	out->len += n;
	return 0;
}

int sl_proto_get_shard_desc(struct sl_reader *r, struct sl_shard_desc *ret)
{
	struct sl_shard_desc d;
	rd_u32(r, &d.shard_id);
	rd_i32(r, &d.parent_id);
	rd_i32(r, &d.adjacent_parent_id);
	rd_hash(r, &d.start_hash);
	rd_hash(r, &d.end_hash);
	rd_u64(r, &d.start_seq);
	rd_u64(r, &d.end_seq);
	rd_u64(r, &d.next_seq);
	/* -1 is "none"; a shard owns the range start..end, so start <= end (big-endian compares).
	 */
	if (r->ok && (d.parent_id < -1 || d.adjacent_parent_id < -1 ||
		      memcmp(d.start_hash.be, d.end_hash.be, 16) > 0))
		r->ok = false;
	if (!r->ok)
		return SLUICE_ERR_PROTOCOL;
	*ret = d;
	return 0;
}

int sl_proto_put_stream_desc(struct sl_buf *out, const struct sl_stream_desc *d)
{
	if (d->name.len > UINT8_MAX)
		return -EINVAL;
	const size_t n = 1 + d->name.len + 8 + 8 + 1 + 4;
	int r = sl_buf_reserve(out, n);
	if (r < 0)
		return r;
	uint8_t *p = out->data + out->len;
	*p++ = (uint8_t)d->name.len;
	if (d->name.len)
		memcpy(p, d->name.p, d->name.len);
	p += d->name.len;
	sl_store_u64(p, d->retention_ms);
	sl_store_u64(p + 8, (uint64_t)d->created_ms);
	p[16] = d->status;
	sl_store_u32(p + 17, d->shard_count);
	out->len += n;
	return 0;
}

int sl_proto_get_stream_desc(struct sl_reader *r, struct sl_stream_desc *ret)
{
	struct sl_stream_desc d;
	rd_str8(r, &d.name);
	rd_u64(r, &d.retention_ms);
	rd_i64(r, &d.created_ms);
	rd_u8(r, &d.status);
	rd_u32(r, &d.shard_count);
	if (r->ok && (!name_ok(&d.name) || d.shard_count > SLUICE_SHARDS_MAX))
		r->ok = false;
	if (!r->ok)
		return SLUICE_ERR_PROTOCOL;
	*ret = d;
	return 0;
}
