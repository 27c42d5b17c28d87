/*
 * Stream administration: create, delete, list, describe, list shards. These run on the loop
 * that received them and may block briefly on metadata fsyncs; they are rare next to produce and
 * read. A delete is answered at once; each shard's owner closes its log when the message reaches
 * it, and the folder goes when the last reference does (registry.c).
 */
#include "server/server.h"

#include "server/consumers.h"

#include "common/clock.h"
#include "common/logging.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_stream *sl_worker_find_stream(struct sl_worker *w, const char *name, size_t len);

struct close_msg {
	struct sl_op op;
	struct sl_shard *shard;
};

static void close_on_owner(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct close_msg *m = (struct close_msg *)op;
	struct sl_stream *s = m->shard->stream;
	sl_shard_close_log(m->shard);
	sl_stream_unref(s); /* the message's reference */
	free(m);
}

static int reply_empty(struct sl_conn *c, const struct sl_frame_header *h)
{
	size_t start;
	int r = sl_proto_encode_response_head(sl_conn_out(c), h->opcode, h->request_id, 0, &start);
	if (r == 0) {
		sl_proto_finish_frame(sl_conn_out(c), start);
		sl_conn_flush(c);
	}
	return r;
}

static void name_to_cstr(const struct sl_str *s, char out[SLUICE_NAME_LEN_MAX + 1])
{
	size_t n = s->len > SLUICE_NAME_LEN_MAX ? SLUICE_NAME_LEN_MAX : s->len;
	memcpy(out, s->p, n);
	out[n] = '\0';
}

static void shard_desc_of(const struct sl_shard *sh, const struct sl_shard_meta *m,
			  struct sl_shard_desc *d)
{
	memset(d, 0, sizeof(*d));
	d->shard_id = m->shard_id;
	d->parent_id = (int32_t)m->parent_id;
	d->adjacent_parent_id = (int32_t)m->adjacent_parent_id;
	sl_hash_key_from_u128(m->start_key, &d->start_hash);
	sl_hash_key_from_u128(m->end_key, &d->end_hash);
	d->start_seq = m->start_seq;
	d->end_seq = m->end_seq;
	d->next_seq = atomic_load_explicit(&sh->next_seq, memory_order_relaxed);
}

static int put_shards(struct sl_buf *out, const struct sl_stream *s)
{
	int r = sl_buf_put_u32(out, s->nshards);
	for (uint32_t i = 0; r == 0 && i < s->nshards; i++) {
		struct sl_shard_desc d;
		shard_desc_of(&s->shards[i], &s->meta->shards[i], &d);
		r = sl_proto_put_shard_desc(out, &d);
	}
	return r;
}

void sl_handle_admin(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		     const uint8_t *body, size_t len)
{
	struct sl_server *srv = w->srv;
	char name[SLUICE_NAME_LEN_MAX + 1];
	char msg[256] = "";
	int r;
	switch (h->opcode) {
	case SL_OP_CREATE_STREAM: {
		struct sl_req_create_stream q;
		r = sl_proto_decode_create_stream(body, len, &q);
		if (r < 0) {
			sl_reply_error(c, h, r, "malformed CREATE_STREAM request");
			return;
		}
		name_to_cstr(&q.name, name);
		int64_t retention =
		    q.retention_ms ? (int64_t)q.retention_ms : SL_RETENTION_DEFAULT_MS;
		r = sl_registry_create_stream(srv->registry, name, q.shard_count, retention, msg,
					      sizeof(msg));
		if (r < 0) {
			sl_reply_error(c, h, r, "%s", msg[0] ? msg : sluice_strerror(r));
			return;
		}
		SL_INFO("created stream %s with %u shards, retention %lld ms", name, q.shard_count,
			(long long)retention);
		sl_stream_cache_refresh(&w->cache, srv->registry);
		reply_empty(c, h);
		return;
	}
	case SL_OP_DELETE_STREAM: {
		struct sl_str q;
		r = sl_proto_decode_name(body, len, &q);
		if (r < 0) {
			sl_reply_error(c, h, r, "malformed DELETE_STREAM request");
			return;
		}
		name_to_cstr(&q, name);
		char users[512];
		if (srv->consumers &&
		    sl_consumers_of_stream(srv->consumers, name, users, sizeof(users))) {
			/* Kinesis refuses too (ResourceInUse): the consumers would read nothing. */
			sl_reply_error(c, h, SLUICE_ERR_INVALID_ARGUMENT,
				       "stream %s has consumers (%s); delete them first", name,
				       users);
			return;
		}
		struct sl_stream *s;
		r = sl_registry_delete_stream(srv->registry, name, &s);
		if (r < 0) {
			sl_reply_error(c, h, r, "stream %s: %s", name, sluice_strerror(r));
			return;
		}
		for (uint32_t i = 0; i < s->nshards; i++) {
			struct close_msg *m = calloc(1, sizeof(*m));
			if (!m) {
				SL_ERROR("out of memory closing a deleted shard");
				continue;
			}
			m->shard = &s->shards[i];
			m->op.complete = close_on_owner;
			sl_stream_ref(s);
			sl_loop_post(w->loop, srv->workers[s->shards[i].owner].loop, &m->op);
		}
		sl_stream_unref(s);
		SL_INFO("deleted stream %s", name);
		sl_stream_cache_refresh(&w->cache, srv->registry);
		reply_empty(c, h);
		return;
	}
	case SL_OP_LIST_STREAMS: {
		if (len != 0) {
			sl_reply_error(c, h, SLUICE_ERR_PROTOCOL, "LIST_STREAMS takes no body");
			return;
		}
		struct sl_stream **list;
		size_t n;
		r = sl_registry_list(srv->registry, &list, &n, NULL);
		if (r < 0) {
			sl_reply_error(c, h, r, NULL);
			return;
		}
		struct sl_buf *out = sl_conn_out(c);
		size_t start;
		r = sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
		r = r ?: sl_buf_put_u32(out, (uint32_t)n);
		for (size_t i = 0; r == 0 && i < n; i++)
			r = sl_proto_put_str8(out, list[i]->name, list[i]->name_len);
		sl_registry_release_list(list, n);
		if (r < 0) {
			sl_conn_close(c, false);
			return;
		}
		sl_proto_finish_frame(out, start);
		sl_conn_flush(c);
		return;
	}
	case SL_OP_DESCRIBE_STREAM:
	case SL_OP_LIST_SHARDS: {
		struct sl_str q;
		r = sl_proto_decode_name(body, len, &q);
		if (r < 0) {
			sl_reply_error(c, h, r, "malformed request");
			return;
		}
		struct sl_stream *s = sl_worker_find_stream(w, q.p, q.len);
		if (!s) {
			sl_reply_error(c, h, SLUICE_ERR_STREAM_NOT_FOUND, "stream %.*s not found",
				       (int)q.len, q.p);
			return;
		}
		struct sl_buf *out = sl_conn_out(c);
		size_t start;
		r = sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
		if (h->opcode == SL_OP_DESCRIBE_STREAM) {
			r = r ?: sl_proto_put_str8(out, s->name, s->name_len);
			r = r
				?: sl_buf_put_u64(out,
						  (uint64_t)__atomic_load_n(&s->meta->retention_ms,
									    __ATOMIC_RELAXED));
			r = r ?: sl_buf_put_u64(out, (uint64_t)s->meta->created_ms);
			r = r ?: sl_buf_put_u8(out, SL_PROTO_STREAM_ACTIVE);
		}
		r = r ?: put_shards(out, s);
		if (r < 0) {
			sl_conn_close(c, false);
			return;
		}
		sl_proto_finish_frame(out, start);
		sl_conn_flush(c);
		return;
	}
	default:
		sl_reply_error(c, h, SLUICE_ERR_BAD_OPCODE, NULL);
	}
}
