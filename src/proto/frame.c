/*
 * Framing: the 12-byte header (layout in codec.h), response status and error responses, and the
 * string helpers every body uses.
 *
 * Why the header checks what it checks: a frame whose length, version or flags cannot be trusted
 * leaves no way to find where the next frame starts, so the caller closes the connection. Anything
 * inside a well-delimited frame (unknown opcode, bad body) is answered with an error response
 * instead, and the connection lives on.
 */
#include "proto/codec.h"
#include "proto/wire.h"

#include <sluice/errors.h>

#include <assert.h>
#include <errno.h>

int sl_proto_parse_header(const uint8_t *buf, size_t len, struct sl_frame_header *ret)
{
	if (len < SL_FRAME_HEADER_BYTES)
		return -EAGAIN;
	uint32_t length = sl_load_u32(buf);
	if (length < SL_FRAME_HEADER_BYTES - 4 || length > SL_PROTO_FRAME_MAX)
		return SLUICE_ERR_PROTOCOL;
	if (buf[4] != SL_PROTO_VERSION)
		return SLUICE_ERR_UNSUPPORTED_VERSION;
	uint16_t flags = sl_load_u16(buf + 6);
	/* A push is never an answer: both bits together mean a confused or hostile peer. */
	if ((flags & ~(SL_FRAME_RESPONSE | SL_FRAME_PUSH)) ||
	    (flags & (SL_FRAME_RESPONSE | SL_FRAME_PUSH)) == (SL_FRAME_RESPONSE | SL_FRAME_PUSH))
		return SLUICE_ERR_PROTOCOL;
	ret->length = length;
	ret->version = buf[4];
	ret->opcode = buf[5];
	ret->flags = flags;
	ret->request_id = sl_load_u32(buf + 8);
	return 0;
}

bool sl_proto_opcode_known(uint8_t opcode)
{
	switch (opcode) {
	case SL_OP_PING:
	case SL_OP_AUTH:
	case SL_OP_CREATE_STREAM:
	case SL_OP_DELETE_STREAM:
	case SL_OP_LIST_STREAMS:
	case SL_OP_DESCRIBE_STREAM:
	case SL_OP_LIST_SHARDS:
	case SL_OP_STREAM_SPLIT:
	case SL_OP_STREAM_MERGE:
	case SL_OP_STREAM_SCALE:
	case SL_OP_STREAM_CREATE_FROM_META:
	case SL_OP_STREAM_SET_RETENTION:
	case SL_OP_STREAM_ADD_TAGS:
	case SL_OP_STREAM_REMOVE_TAGS:
	case SL_OP_STREAM_LIST_TAGS:
	case SL_OP_PRODUCE:
	case SL_OP_READ:
	case SL_OP_RESTORE_APPEND:
	case SL_OP_STREAM_META_GET:
	case SL_OP_CONSUMER_CREATE:
	case SL_OP_CONSUMER_DELETE:
	case SL_OP_CONSUMER_LIST:
	case SL_OP_CONSUMER_DESCRIBE:
	case SL_OP_CONSUMER_RESET:
	case SL_OP_CONSUMER_ATTACH:
	case SL_OP_CONSUMER_BATCH:
	case SL_OP_CONSUMER_ACK:
	case SL_OP_FIREHOSE_CREATE:
	case SL_OP_FIREHOSE_DELETE:
	case SL_OP_FIREHOSE_LIST:
	case SL_OP_FIREHOSE_DESCRIBE:
	case SL_OP_FIREHOSE_FLUSH:
		return true;
	default:
		return false;
	}
}

static int put_head(struct sl_buf *out, uint8_t opcode, uint16_t flags, uint32_t request_id,
		    size_t *ret_frame_start)
{
	int r = sl_buf_reserve(out, SL_FRAME_HEADER_BYTES);
	if (r < 0)
		return r;
	uint8_t *h = out->data + out->len;
	sl_store_u32(h, 0); /* patched by sl_proto_finish_frame */
	h[4] = SL_PROTO_VERSION;
	h[5] = opcode;
	sl_store_u16(h + 6, flags);
	sl_store_u32(h + 8, request_id);
	*ret_frame_start = out->len;
	out->len += SL_FRAME_HEADER_BYTES;
	return 0;
}

int sl_proto_encode_request_head(struct sl_buf *out, uint8_t opcode, uint32_t request_id,
				 size_t *ret_frame_start)
{
	return put_head(out, opcode, 0, request_id, ret_frame_start);
}

int sl_proto_encode_push_head(struct sl_buf *out, uint8_t opcode, uint32_t delivery_id,
			      size_t *ret_frame_start)
{
	return put_head(out, opcode, SL_FRAME_PUSH, delivery_id, ret_frame_start);
}

void sl_proto_finish_frame(struct sl_buf *out, size_t frame_start)
{
	assert(frame_start + SL_FRAME_HEADER_BYTES <= out->len);
	size_t length = out->len - frame_start - 4;
	/*
	 * A body too large for one frame is a bug of the caller (libsluice splits batches). Should
	 * it happen with asserts off, write a length the peer rejects, so the connection is closed:
	 * a length truncated to 32 bits would make the peer read the body as further frames.
	 */
	assert(length <= SL_PROTO_FRAME_MAX);
	sl_store_u32(out->data + frame_start,
		     length <= SL_PROTO_FRAME_MAX ? (uint32_t)length : UINT32_MAX);
}

int sl_proto_put_str8(struct sl_buf *out, const char *s, size_t len)
{
	if (len > UINT8_MAX)
		return -EINVAL;
	int r = sl_buf_reserve(out, 1 + len);
	if (r < 0)
		return r;
	out->data[out->len] = (uint8_t)len;
	if (len)
		memcpy(out->data + out->len + 1, s, len);
	out->len += 1 + len;
	return 0;
}

int sl_proto_put_str16(struct sl_buf *out, const char *s, size_t len)
{
	if (len > UINT16_MAX)
		return -EINVAL;
	int r = sl_buf_reserve(out, 2 + len);
	if (r < 0)
		return r;
	sl_store_u16(out->data + out->len, (uint16_t)len);
	if (len)
		memcpy(out->data + out->len + 2, s, len);
	out->len += 2 + len;
	return 0;
}

int sl_proto_get_str8(struct sl_reader *r, struct sl_str *ret)
{
	struct sl_str s;
	if (!rd_str8(r, &s))
		return SLUICE_ERR_PROTOCOL;
	*ret = s;
	return 0;
}

int sl_proto_get_str16(struct sl_reader *r, struct sl_str *ret)
{
	struct sl_str s;
	if (!rd_str16(r, &s))
		return SLUICE_ERR_PROTOCOL;
	*ret = s;
	return 0;
}

int sl_proto_encode_response_head(struct sl_buf *out, uint8_t opcode, uint32_t request_id,
				  int32_t status, size_t *ret_frame_start)
{
	int r = sl_buf_reserve(out, SL_FRAME_HEADER_BYTES + 4);
	if (r < 0)
		return r;
	size_t start = out->len;
	r = put_head(out, opcode, SL_FRAME_RESPONSE, request_id, &start);
	if (r < 0)
		return r; /* cannot happen: reserved above */
	sl_store_u32(out->data + out->len, (uint32_t)status);
	out->len += 4;
	*ret_frame_start = start;
	return 0;
}

/* Longest prefix of s of at most max bytes that does not end inside a UTF-8 sequence. */
static size_t utf8_prefix(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t n = max;
	/* Back off over continuation bytes: at most 3 in well-formed UTF-8. */
	for (int i = 0; i < 3 && n > 0 && ((uint8_t)s[n] & 0xc0) == 0x80; i++)
		n--;
	return n;
}

int sl_proto_encode_error(struct sl_buf *out, uint8_t opcode, uint32_t request_id, int32_t status,
			  const char *message)
{
	if (status >= 0)
		return -EINVAL;
	size_t len = message ? utf8_prefix(message, strlen(message), SL_PROTO_MESSAGE_MAX) : 0;
	int r = sl_buf_reserve(out, SL_FRAME_HEADER_BYTES + 4 + 2 + len);
	if (r < 0)
		return r;
	size_t start;
	r = sl_proto_encode_response_head(out, opcode, request_id, status, &start);
	assert(r == 0);
	r = sl_proto_put_str16(out, message, len);
	assert(r == 0);
	sl_proto_finish_frame(out, start);
	return 0;
}

int sl_proto_decode_response_status(const uint8_t *body, size_t len, int32_t *ret_status,
				    struct sl_str *ret_message, struct sl_reader *ret_rest)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	int32_t status;
	if (!rd_i32(&r, &status) || status > 0)
		return SLUICE_ERR_PROTOCOL;
	struct sl_str message = {.p = "", .len = 0};
	struct sl_reader rest;
	if (status < 0) {
		/* An error carries a message and nothing else. */
		if (!rd_str16(&r, &message) || !rd_done(&r) || message.len > SL_PROTO_MESSAGE_MAX)
			return SLUICE_ERR_PROTOCOL;
		sl_reader_init(&rest, body + len, 0);
	} else {
		sl_reader_init(&rest, body + r.off, len - r.off);
	}
	*ret_status = status;
	*ret_message = message;
	*ret_rest = rest;
	return 0;
}
