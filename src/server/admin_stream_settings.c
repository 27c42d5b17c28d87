/*
 * Stream settings over the native protocol: STREAM_SET_RETENTION and the tag requests (Kinesis'
 * Increase/DecreaseStreamRetentionPeriod and AddTagsTo/RemoveTagsFrom/ListTagsForStream). The
 * registry persists the change; a retention change then travels to each shard's owner, which
 * applies it to the live log at once (its next retention pass uses it).
 */
#include "server/server.h"

#include "common/logging.h"

#include <sluice/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct retention_msg {
	struct sl_op op;
	struct sl_shard *shard;
	int64_t retention_ms;
};

static void retention_on_owner(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct retention_msg *m = (struct retention_msg *)op;
	struct sl_stream *s = m->shard->stream;
	sl_shard_lock(m->shard);
	if (m->shard->log) /* NULL once the stream was deleted meanwhile */
		sl_shard_log_set_retention(m->shard->log, m->retention_ms);
	sl_shard_unlock(m->shard);
	sl_stream_unref(s);
	free(m);
}

static void set_retention(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
			  const uint8_t *body, size_t len)
{
	struct sl_req_set_retention q;
	int r = sl_proto_decode_set_retention(body, len, &q);
	if (r < 0) {
		sl_reply_error(c, h, r, "malformed STREAM_SET_RETENTION request");
		return;
	}
	char name[SLUICE_NAME_LEN_MAX + 1], msg[256] = "";
	sl_str_copy(name, sizeof(name), &q.name);
	if (q.retention_ms > INT64_MAX) {
		sl_reply_error(c, h, SLUICE_ERR_INVALID_ARGUMENT, "retention out of range");
		return;
	}
	struct sl_stream *s;
	r = sl_registry_set_retention(w->srv->registry, name, (int64_t)q.retention_ms, &s, msg,
				      sizeof(msg));
	if (r < 0) {
		sl_reply_error(c, h, r, "%s", msg[0] ? msg : sluice_strerror(r));
		return;
	}
	struct sl_stream_view *v = sl_stream_view(s); /* the one just published */
	for (uint32_t i = 0; i < v->nshards; i++) {
		struct retention_msg *m = calloc(1, sizeof(*m));
		if (!m) {
			SL_ERROR(
			    "out of memory: shard %u of %s keeps its old retention until restart",
			    v->shards[i]->id, name);
			continue;
		}
		m->shard = v->shards[i];
		m->retention_ms = (int64_t)q.retention_ms;
		m->op.complete = retention_on_owner;
		sl_stream_ref(s);
		sl_loop_post(w->loop, w->srv->workers[v->shards[i]->owner].loop, &m->op);
	}
	sl_stream_unref(s);
	SL_INFO("stream %s: retention %llu ms", name, (unsigned long long)q.retention_ms);
	sl_reply_empty(c, h);
}

static void update_tags(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
			const uint8_t *body, size_t len, bool remove)
{
	struct sl_req_tags q;
	int r = sl_proto_decode_tags(body, len, !remove, &q);
	if (r < 0) {
		sl_reply_error(c, h, r, "malformed tag request (keys 1..%u bytes, values 0..%u)",
			       SL_PROTO_TAG_KEY_MAX, SL_PROTO_TAG_VALUE_MAX);
		return;
	}
	char name[SLUICE_NAME_LEN_MAX + 1], msg[256] = "";
	sl_str_copy(name, sizeof(name), &q.name);
	/* Copies with NULs (20 KiB on the stack at most): the codec checked the lengths and that
	 * no NUL is inside. */
	struct sl_tag tags[SL_PROTO_TAGS_MAX];
	char keys[SL_PROTO_TAGS_MAX][SL_PROTO_TAG_KEY_MAX + 1];
	char values[SL_PROTO_TAGS_MAX][SL_PROTO_TAG_VALUE_MAX + 1];
	size_t n = 0;
	struct sl_str k, v;
	while (n < SL_PROTO_TAGS_MAX && sl_proto_tags_next(&q, &k, &v) == 1) {
		sl_str_copy(keys[n], sizeof(keys[n]), &k);
		sl_str_copy(values[n], sizeof(values[n]), &v);
		tags[n].key = keys[n];
		tags[n].value = values[n];
		n++;
	}
	r = sl_registry_update_tags(w->srv->registry, name, tags, n, remove, msg, sizeof(msg));
	if (r < 0) {
		sl_reply_error(c, h, r, "%s", msg[0] ? msg : sluice_strerror(r));
		return;
	}
	sl_reply_empty(c, h);
}

static void list_tags(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		      const uint8_t *body, size_t len)
{
	struct sl_str q;
	int r = sl_proto_decode_name(body, len, &q);
	if (r < 0) {
		sl_reply_error(c, h, r, "malformed STREAM_LIST_TAGS request");
		return;
	}
	char name[SLUICE_NAME_LEN_MAX + 1];
	sl_str_copy(name, sizeof(name), &q);
	struct sl_tag *tags;
	size_t n;
	r = sl_registry_list_tags(w->srv->registry, name, &tags, &n);
	if (r < 0) {
		sl_reply_error(c, h, r, "stream %s: %s", name, sluice_strerror(r));
		return;
	}
	struct sl_buf *out = sl_conn_out(c);
	size_t start;
	r = sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
	r = r ?: sl_buf_put_u32(out, (uint32_t)n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		r = sl_proto_put_str8(out, tags[i].key, strlen(tags[i].key));
		r = r ?: sl_proto_put_str16(out, tags[i].value, strlen(tags[i].value));
	}
	sl_tags_free(tags, n);
	if (r < 0) {
		sl_conn_close(c, false);
		return;
	}
	sl_proto_finish_frame(out, start);
	sl_conn_flush(c);
}

void sl_handle_stream_settings(struct sl_worker *w, struct sl_conn *c,
			       const struct sl_frame_header *h, const uint8_t *body, size_t len)
{
	switch (h->opcode) {
	case SL_OP_STREAM_SET_RETENTION:
		set_retention(w, c, h, body, len);
		return;
	case SL_OP_STREAM_ADD_TAGS:
		update_tags(w, c, h, body, len, false);
		return;
	case SL_OP_STREAM_REMOVE_TAGS:
		update_tags(w, c, h, body, len, true);
		return;
	case SL_OP_STREAM_LIST_TAGS:
		list_tags(w, c, h, body, len);
		return;
	default:
		sl_reply_error(c, h, SLUICE_ERR_BAD_OPCODE, "unknown opcode 0x%02x", h->opcode);
	}
}
