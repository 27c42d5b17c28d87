/*
 * Consumer request and response bodies (layouts in codec.h): registrations (consumer_config),
 * per-shard status, reset, and the remote-handler pair CONSUMER_BATCH (a PUSH frame from the
 * server) and CONSUMER_ACK (the client's answer to it, sent as a request).
 *
 * As in messages.c, structure is checked before meaning, so a malformed body is always reported
 * as malformed. Encoders append all or nothing: on failure out->len is restored.
 */
#include "proto/codec.h"
#include "proto/wire.h"

#include <sluice/errors.h>

#include <errno.h>

static bool name_ok(const struct sl_str *s)
{
	return sl_proto_name_valid((const uint8_t *)s->p, s->len);
}

/* Undo a partial encoding. */
static int rollback(struct sl_buf *out, size_t len, int err)
{
	out->len = len;
	return err;
}

/* ---- consumer_config ---- */

int sl_proto_put_consumer_config(struct sl_buf *out, const struct sl_consumer_wire *c)
{
	if (c->name.len > UINT8_MAX || c->stream.len > UINT8_MAX ||
	    c->handler_target.len > UINT16_MAX || c->on_failure.len > UINT8_MAX)
		return -EINVAL;
	const size_t n = 1 + c->name.len + 1 + c->stream.len + 1 + 2 + c->handler_target.len + 4 +
			 4 + 1 + 8 + 4 + 8 + 1 + 1 + c->on_failure.len + 4 + 4;
	int r = sl_buf_reserve(out, n);
	if (r < 0)
		return r;
	size_t before = out->len;
	/* Reserved above: none of these can fail. */
	sl_proto_put_str8(out, c->name.p, c->name.len);
	sl_proto_put_str8(out, c->stream.p, c->stream.len);
	sl_buf_put_u8(out, c->handler_kind);
	sl_proto_put_str16(out, c->handler_target.p, c->handler_target.len);
	sl_buf_put_u32(out, c->batch_size);
	sl_buf_put_u32(out, c->batch_window_ms);
	sl_buf_put_u8(out, (uint8_t)c->start.type);
	sl_buf_put_u64(out, c->start.value);
	sl_buf_put_u32(out, (uint32_t)c->max_retries);
	sl_buf_put_u64(out, (uint64_t)c->max_record_age_s);
	sl_buf_put_u8(out, c->bisect_on_error ? SL_CONSUMER_FLAG_BISECT_ON_ERROR : 0);
	sl_proto_put_str8(out, c->on_failure.p, c->on_failure.len);
	sl_buf_put_u32(out, c->parallelism);
	sl_buf_put_u32(out, c->timeout_ms);
	if (out->len - before != n)
		return rollback(out, before, -EINVAL); /* cannot happen */
	return 0;
}

int sl_proto_get_consumer_config(struct sl_reader *r, struct sl_consumer_wire *ret)
{
	struct sl_consumer_wire c;
	uint8_t type = 0, flags = 0;
	c.handler_kind = 0;
	rd_str8(r, &c.name);
	rd_str8(r, &c.stream);
	rd_u8(r, &c.handler_kind);
	rd_str16(r, &c.handler_target);
	rd_u32(r, &c.batch_size);
	rd_u32(r, &c.batch_window_ms);
	rd_u8(r, &type);
	rd_u64(r, &c.start.value);
	rd_i32(r, &c.max_retries);
	rd_i64(r, &c.max_record_age_s);
	rd_u8(r, &flags);
	rd_str8(r, &c.on_failure);
	rd_u32(r, &c.parallelism);
	rd_u32(r, &c.timeout_ms);
	/* Unknown flag bits may change the meaning of the rest: refuse rather than guess. */
	if (r->ok && ((flags & ~SL_CONSUMER_FLAG_BISECT_ON_ERROR) || !name_ok(&c.name) ||
		      !name_ok(&c.stream) || (c.on_failure.len && !name_ok(&c.on_failure))))
		r->ok = false;
	if (!r->ok)
		return SLUICE_ERR_PROTOCOL;
	c.start.type = (enum sluice_position_type)type;
	c.bisect_on_error = flags & SL_CONSUMER_FLAG_BISECT_ON_ERROR;
	*ret = c;
	return 0;
}

int sl_proto_decode_consumer_create(const uint8_t *body, size_t len, struct sl_consumer_wire *ret)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_consumer_wire c;
	uint8_t type = 0, flags = 0;
	c.handler_kind = 0;
	rd_str8(&r, &c.name);
	rd_str8(&r, &c.stream);
	rd_u8(&r, &c.handler_kind);
	rd_str16(&r, &c.handler_target);
	rd_u32(&r, &c.batch_size);
	rd_u32(&r, &c.batch_window_ms);
	rd_u8(&r, &type);
	rd_u64(&r, &c.start.value);
	rd_i32(&r, &c.max_retries);
	rd_i64(&r, &c.max_record_age_s);
	rd_u8(&r, &flags);
	rd_str8(&r, &c.on_failure);
	rd_u32(&r, &c.parallelism);
	rd_u32(&r, &c.timeout_ms);
	if (!rd_done(&r) || (flags & ~SL_CONSUMER_FLAG_BISECT_ON_ERROR))
		return SLUICE_ERR_PROTOCOL;
	if (!name_ok(&c.name) || !name_ok(&c.stream) ||
	    (c.on_failure.len && !name_ok(&c.on_failure)))
		return SLUICE_ERR_INVALID_NAME;
	if (c.handler_kind > SL_PROTO_HANDLER_REMOTE ||
	    (type != SLUICE_POS_TRIM_HORIZON && type != SLUICE_POS_LATEST &&
	     type != SLUICE_POS_AT_TIMESTAMP))
		return SLUICE_ERR_INVALID_ARGUMENT;
	c.start.type = (enum sluice_position_type)type;
	c.bisect_on_error = flags & SL_CONSUMER_FLAG_BISECT_ON_ERROR;
	*ret = c;
	return 0;
}

/* ---- consumer_shard_status ---- */

int sl_proto_put_consumer_shard_status(struct sl_buf *out, const struct sl_consumer_shard_status *s)
{
	if (s->last_error.len > UINT16_MAX)
		return -EINVAL;
	const size_t n = SL_PROTO_CONSUMER_SHARD_STATUS_BYTES_MIN + s->last_error.len;
	int r = sl_buf_reserve(out, n);
	if (r < 0)
		return r;
	uint8_t *p = out->data + out->len;
	sl_store_u32(p, s->shard_id);
	sl_store_u64(p + 4, s->checkpoint_seq);
	sl_store_u64(p + 12, s->lag_records);
	sl_store_u64(p + 20, s->lag_ms);
	p[28] = s->state;
	sl_store_u64(p + 29, s->delivered);
	sl_store_u64(p + 37, s->batches_failed);
	sl_store_u64(p + 45, s->retries);
	sl_store_u64(p + 53, s->sent_to_on_failure);
	sl_store_u64(p + 61, s->expired);
	sl_store_u16(p + 69, (uint16_t)s->last_error.len);
	if (s->last_error.len)
		memcpy(p + 71, s->last_error.p, s->last_error.len);
	out->len += n;
	return 0;
}

int sl_proto_get_consumer_shard_status(struct sl_reader *r, struct sl_consumer_shard_status *ret)
{
	struct sl_consumer_shard_status s;
	s.state = 0;
	rd_u32(r, &s.shard_id);
	rd_u64(r, &s.checkpoint_seq);
	rd_u64(r, &s.lag_records);
	rd_u64(r, &s.lag_ms);
	rd_u8(r, &s.state);
	rd_u64(r, &s.delivered);
	rd_u64(r, &s.batches_failed);
	rd_u64(r, &s.retries);
	rd_u64(r, &s.sent_to_on_failure);
	rd_u64(r, &s.expired);
	rd_str16(r, &s.last_error);
	if (!r->ok)
		return SLUICE_ERR_PROTOCOL;
	*ret = s;
	return 0;
}

/* ---- CONSUMER_RESET ---- */

int sl_proto_put_consumer_reset(struct sl_buf *out, const struct sl_req_consumer_reset *req)
{
	if (req->name.len > UINT8_MAX)
		return -EINVAL;
	const size_t n = 1 + req->name.len + 8 + 1 + 8;
	int r = sl_buf_reserve(out, n);
	if (r < 0)
		return r;
	sl_proto_put_str8(out, req->name.p, req->name.len);
	sl_buf_put_u64(out, (uint64_t)req->shard_id);
	sl_buf_put_u8(out, (uint8_t)req->position.type);
	sl_buf_put_u64(out, req->position.value);
	return 0;
}

int sl_proto_decode_consumer_reset(const uint8_t *body, size_t len,
				   struct sl_req_consumer_reset *ret)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_req_consumer_reset req;
	uint8_t type = 0;
	rd_str8(&r, &req.name);
	rd_i64(&r, &req.shard_id);
	rd_u8(&r, &type);
	rd_u64(&r, &req.position.value);
	if (!rd_done(&r))
		return SLUICE_ERR_PROTOCOL;
	if (!name_ok(&req.name))
		return SLUICE_ERR_INVALID_NAME;
	if (req.shard_id < -1 || req.shard_id > (int64_t)UINT32_MAX ||
	    type > SLUICE_POS_AT_TIMESTAMP)
		return SLUICE_ERR_INVALID_ARGUMENT;
	req.position.type = (enum sluice_position_type)type;
	*ret = req;
	return 0;
}

/* ---- CONSUMER_ACK ---- */

int sl_proto_put_consumer_ack(struct sl_buf *out, const struct sl_req_consumer_ack *req)
{
	if (req->message.len > SL_PROTO_MESSAGE_MAX)
		return -EINVAL;
	const size_t n = 4 + 1 + 4 + 2 + req->message.len;
	int r = sl_buf_reserve(out, n);
	if (r < 0)
		return r;
	sl_buf_put_u32(out, req->delivery_id);
	sl_buf_put_u8(out, req->status);
	sl_buf_put_u32(out, req->failed_from);
	sl_proto_put_str16(out, req->message.p, req->message.len);
	return 0;
}

int sl_proto_decode_consumer_ack(const uint8_t *body, size_t len, struct sl_req_consumer_ack *ret)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_req_consumer_ack req;
	req.status = 0;
	rd_u32(&r, &req.delivery_id);
	rd_u8(&r, &req.status);
	rd_u32(&r, &req.failed_from);
	rd_str16(&r, &req.message);
	if (!rd_done(&r) || req.message.len > SL_PROTO_MESSAGE_MAX)
		return SLUICE_ERR_PROTOCOL;
	if (req.status > SL_PROTO_ACK_ERROR)
		return SLUICE_ERR_INVALID_ARGUMENT;
	*ret = req;
	return 0;
}

/* ---- CONSUMER_BATCH ---- */

int sl_proto_put_consumer_batch_head(struct sl_buf *out, const struct sl_consumer_batch_head *h)
{
	if (h->consumer.len > UINT8_MAX || h->stream.len > UINT8_MAX)
		return -EINVAL;
	const size_t n = 1 + h->consumer.len + 1 + h->stream.len + 4 + 4 + 4;
	int r = sl_buf_reserve(out, n);
	if (r < 0)
		return r;
	sl_proto_put_str8(out, h->consumer.p, h->consumer.len);
	sl_proto_put_str8(out, h->stream.p, h->stream.len);
	sl_buf_put_u32(out, h->shard_id);
	sl_buf_put_u32(out, h->attempt);
	sl_buf_put_u32(out, h->count);
	return 0;
}

int sl_proto_get_consumer_batch_head(struct sl_reader *r, struct sl_consumer_batch_head *ret)
{
	struct sl_consumer_batch_head h;
	h.count = 0;
	rd_str8(r, &h.consumer);
	rd_str8(r, &h.stream);
	rd_u32(r, &h.shard_id);
	rd_u32(r, &h.attempt);
	rd_u32(r, &h.count);
	/*
	 * A count the body cannot hold is refused before anyone sizes an array for it: a 30-byte
	 * frame must not make a client allocate room for 10,000 records.
	 */
	if (r->ok && (!name_ok(&h.consumer) || !name_ok(&h.stream) || h.count < 1 ||
		      h.count > SL_PROTO_RECORDS_MAX ||
		      (uint64_t)h.count * SL_PROTO_RECORD_OUT_BYTES_MIN > r->len - r->off))
		r->ok = false;
	if (!r->ok)
		return SLUICE_ERR_PROTOCOL;
	*ret = h;
	return 0;
}
