/* STREAM_SET_RETENTION and the tag requests (layouts in codec.h). */
#include "proto/codec.h"
#include "proto/wire.h"

#include <sluice/errors.h>

#include <string.h>

int sl_proto_decode_set_retention(const uint8_t *body, size_t len, struct sl_req_set_retention *ret)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_req_set_retention q;
	rd_str8(&r, &q.name);
	rd_u64(&r, &q.retention_ms);
	if (!rd_done(&r))
		return SLUICE_ERR_PROTOCOL;
	if (!sl_proto_name_valid((const uint8_t *)q.name.p, q.name.len))
		return SLUICE_ERR_INVALID_NAME;
	*ret = q;
	return 0;
}

static bool text_ok(const struct sl_str *s, size_t min, size_t max)
{
	return s->len >= min && s->len <= max && (s->len == 0 || !memchr(s->p, '\0', s->len));
}

static void rd_tag(struct sl_reader *r, bool with_values, struct sl_str *key, struct sl_str *value)
{
	rd_str8(r, key);
	value->p = "";
	value->len = 0;
	if (with_values)
		rd_str16(r, value);
}

int sl_proto_decode_tags(const uint8_t *body, size_t len, bool with_values, struct sl_req_tags *ret)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_req_tags q = {.with_values = with_values};
	rd_str8(&r, &q.name);
	rd_u32(&r, &q.count);
	if (!r.ok || q.count == 0 || q.count > SL_PROTO_TAGS_MAX)
		return SLUICE_ERR_PROTOCOL;
	q.tags = r;
	bool meaning_ok = true;
	for (uint32_t i = 0; i < q.count; i++) {
		struct sl_str k, v;
		rd_tag(&r, with_values, &k, &v);
		if (r.ok && (!text_ok(&k, 1, SL_PROTO_TAG_KEY_MAX) ||
			     !text_ok(&v, 0, SL_PROTO_TAG_VALUE_MAX)))
			meaning_ok = false;
	}
	if (!rd_done(&r))
		return SLUICE_ERR_PROTOCOL;
	if (!sl_proto_name_valid((const uint8_t *)q.name.p, q.name.len))
		return SLUICE_ERR_INVALID_NAME;
	if (!meaning_ok)
		return SLUICE_ERR_INVALID_ARGUMENT;
	*ret = q;
	return 0;
}

int sl_proto_tags_next(struct sl_req_tags *req, struct sl_str *ret_key, struct sl_str *ret_value)
{
	if (sl_reader_left(&req->tags) == 0)
		return 0;
	rd_tag(&req->tags, req->with_values, ret_key, ret_value);
	return req->tags.ok ? 1 : SLUICE_ERR_PROTOCOL; /* decode checked it: cannot fail */
}
