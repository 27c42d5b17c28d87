/*
 * Firehose request and response bodies (layouts in codec.h): the registration (firehose_config)
 * and the per-shard status of a DESCRIBE answer. DELETE, DESCRIBE and FLUSH carry a bare name
 * (sl_proto_decode_name), LIST nothing.
 *
 * As in consumer_messages.c, structure is checked before meaning, so a malformed body is always
 * reported as malformed. Encoders append all or nothing: on failure out->len is restored.
 */
#include "proto/codec.h"
#include "proto/wire.h"

#include <sluice/errors.h>

#include <errno.h>

static bool name_ok(const struct sl_str *s)
{
	return sl_proto_name_valid((const uint8_t *)s->p, s->len);
}

/* A string a server copies into a C array of max + 1 bytes: short enough, no NUL inside. */
static bool cstr_ok(const struct sl_str *s, size_t max)
{
	return s->len <= max && (s->len == 0 || !memchr(s->p, '\0', s->len));
}

/* ---- firehose_config ---- */

int sl_proto_put_firehose_config(struct sl_buf *out, const struct sl_firehose_wire *f)
{
	if (f->name.len > UINT8_MAX || f->stream.len > UINT8_MAX || f->dest.len > UINT16_MAX ||
	    f->endpoint.len > UINT16_MAX || f->region.len > UINT8_MAX ||
	    f->credentials_file.len > UINT16_MAX || f->profile.len > UINT8_MAX ||
	    f->on_failure.len > UINT8_MAX)
		return -EINVAL;
	const size_t n = 1 + f->name.len + 1 + f->stream.len + 2 + f->dest.len + 2 +
			 f->endpoint.len + 1 + f->region.len + 2 + f->credentials_file.len + 1 +
			 f->profile.len + 8 + 4 + 1 + 4 + 1 + 8 + 1 + f->on_failure.len + 1 + 8;
	int r = sl_buf_reserve(out, n);
	if (r < 0)
		return r;
	/* Reserved above: none of these can fail. */
	sl_proto_put_str8(out, f->name.p, f->name.len);
	sl_proto_put_str8(out, f->stream.p, f->stream.len);
	sl_proto_put_str16(out, f->dest.p, f->dest.len);
	sl_proto_put_str16(out, f->endpoint.p, f->endpoint.len);
	sl_proto_put_str8(out, f->region.p, f->region.len);
	sl_proto_put_str16(out, f->credentials_file.p, f->credentials_file.len);
	sl_proto_put_str8(out, f->profile.p, f->profile.len);
	sl_buf_put_u64(out, f->buffer_bytes);
	sl_buf_put_u32(out, f->buffer_interval_ms);
	sl_buf_put_u8(out, f->compression);
	sl_buf_put_u32(out, (uint32_t)f->zstd_level);
	sl_buf_put_u8(out, f->format);
	sl_buf_put_u64(out, (uint64_t)f->max_retry_duration_ms);
	sl_proto_put_str8(out, f->on_failure.p, f->on_failure.len);
	sl_buf_put_u8(out, (uint8_t)f->start.type);
	sl_buf_put_u64(out, f->start.value);
	return 0;
}

/* The fields in wire order; structure only. */
static void rd_firehose_config(struct sl_reader *r, struct sl_firehose_wire *f, uint8_t *type)
{
	f->compression = 0;
	f->format = 0;
	*type = 0;
	rd_str8(r, &f->name);
	rd_str8(r, &f->stream);
	rd_str16(r, &f->dest);
	rd_str16(r, &f->endpoint);
	rd_str8(r, &f->region);
	rd_str16(r, &f->credentials_file);
	rd_str8(r, &f->profile);
	rd_u64(r, &f->buffer_bytes);
	rd_u32(r, &f->buffer_interval_ms);
	rd_u8(r, &f->compression);
	rd_i32(r, &f->zstd_level);
	rd_u8(r, &f->format);
	rd_i64(r, &f->max_retry_duration_ms);
	rd_str8(r, &f->on_failure);
	rd_u8(r, type);
	rd_u64(r, &f->start.value);
}

int sl_proto_get_firehose_config(struct sl_reader *r, struct sl_firehose_wire *ret)
{
	struct sl_firehose_wire f;
	uint8_t type;
	rd_firehose_config(r, &f, &type);
	if (r->ok && (!name_ok(&f.name) || !name_ok(&f.stream) ||
		      (f.on_failure.len && !name_ok(&f.on_failure))))
		r->ok = false;
	if (!r->ok)
		return SLUICE_ERR_PROTOCOL;
	f.start.type = (enum sluice_position_type)type;
	*ret = f;
	return 0;
}

int sl_proto_decode_firehose_create(const uint8_t *body, size_t len, struct sl_firehose_wire *ret)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_firehose_wire f;
	uint8_t type;
	rd_firehose_config(&r, &f, &type);
	if (!rd_done(&r))
		return SLUICE_ERR_PROTOCOL;
	if (!name_ok(&f.name) || !name_ok(&f.stream) ||
	    (f.on_failure.len && !name_ok(&f.on_failure)))
		return SLUICE_ERR_INVALID_NAME;
	if (f.compression > SL_PROTO_FIREHOSE_COMPRESSION_ZSTD ||
	    f.format > SL_PROTO_FIREHOSE_FORMAT_RAW ||
	    (type != SLUICE_POS_TRIM_HORIZON && type != SLUICE_POS_LATEST &&
	     type != SLUICE_POS_AT_TIMESTAMP) ||
	    !cstr_ok(&f.dest, SL_PROTO_FIREHOSE_DEST_MAX) ||
	    !cstr_ok(&f.endpoint, SL_PROTO_FIREHOSE_ENDPOINT_MAX) ||
	    !cstr_ok(&f.region, SL_PROTO_FIREHOSE_REGION_MAX) ||
	    !cstr_ok(&f.credentials_file, SL_PROTO_FIREHOSE_CREDENTIALS_FILE_MAX) ||
	    !cstr_ok(&f.profile, SL_PROTO_FIREHOSE_PROFILE_MAX))
		return SLUICE_ERR_INVALID_ARGUMENT;
	f.start.type = (enum sluice_position_type)type;
	*ret = f;
	return 0;
}

/* ---- firehose_shard_status ---- */

int sl_proto_put_firehose_shard_status(struct sl_buf *out, const struct sl_firehose_shard_status *s)
{
	if (s->last_object_key.len > UINT16_MAX || s->last_error.len > UINT16_MAX)
		return -EINVAL;
	const size_t n =
	    SL_PROTO_FIREHOSE_SHARD_STATUS_BYTES_MIN + s->last_object_key.len + s->last_error.len;
	int r = sl_buf_reserve(out, n);
	if (r < 0)
		return r;
	/* Reserved above: none of these can fail. */
	sl_buf_put_u32(out, s->shard_id);
	sl_buf_put_u64(out, s->checkpoint_seq);
	sl_buf_put_u64(out, s->buffered_records);
	sl_buf_put_u64(out, s->buffered_bytes);
	sl_buf_put_u64(out, (uint64_t)s->last_flush_ms);
	sl_proto_put_str16(out, s->last_object_key.p, s->last_object_key.len);
	sl_buf_put_u64(out, s->objects_written);
	sl_buf_put_u64(out, s->records_archived);
	sl_buf_put_u64(out, s->bytes_written);
	sl_buf_put_u64(out, s->upload_failures);
	sl_buf_put_u64(out, s->sent_to_on_failure);
	sl_buf_put_u64(out, s->expired);
	sl_buf_put_u8(out, s->state);
	sl_proto_put_str16(out, s->last_error.p, s->last_error.len);
	sl_buf_put_u64(out, s->lag_ms);
	sl_buf_put_u8(out, s->background);
	return 0;
}

int sl_proto_get_firehose_shard_status(struct sl_reader *r, struct sl_firehose_shard_status *ret)
{
	struct sl_firehose_shard_status s;
	s.state = 0;
	rd_u32(r, &s.shard_id);
	rd_u64(r, &s.checkpoint_seq);
	rd_u64(r, &s.buffered_records);
	rd_u64(r, &s.buffered_bytes);
	rd_i64(r, &s.last_flush_ms);
	rd_str16(r, &s.last_object_key);
	rd_u64(r, &s.objects_written);
	rd_u64(r, &s.records_archived);
	rd_u64(r, &s.bytes_written);
	rd_u64(r, &s.upload_failures);
	rd_u64(r, &s.sent_to_on_failure);
	rd_u64(r, &s.expired);
	rd_u8(r, &s.state);
	rd_str16(r, &s.last_error);
	rd_u64(r, &s.lag_ms);
	rd_u8(r, &s.background);
	if (!r->ok)
		return SLUICE_ERR_PROTOCOL;
	*ret = s;
	return 0;
}
