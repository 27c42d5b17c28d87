/*
 * Restore requests: STREAM_CREATE_FROM_META (a stream with an archive's exact shard layout),
 * STREAM_META_GET (a stream's metadata JSON) and RESTORE_APPEND (records with their original
 * sequence numbers and arrival times, into one named shard). Layouts in proto/codec.h.
 *
 * RESTORE_APPEND runs on the shard's owner loop like a PRODUCE part and is answered once the
 * batch is durable under the fsync policy. It can never overwrite or reorder what a shard holds:
 * records below the shard's next_seq are skipped (counted, so a re-run of a restore is
 * idempotent), the rest must strictly increase (the log refuses anything else), so at worst a
 * restore into a live shard leaves a hole before the restored records, never a changed record.
 *
 * A RESTORE_APPEND body is megabytes (a batch of the restore CLI is up to 8 MiB of data): the
 * request takes the connection's receive buffer that holds it (sl_conn_take_frame) rather than
 * copying it, and gives it back for the next frame once answered (sl_conn_recycle).
 */
#include "server/server.h"

#include "common/clock.h"
#include "common/logging.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct restore_req {
	struct sl_op op;
	struct sl_conn *conn;
	struct sl_worker *origin;
	struct sl_stream *stream;
	struct sl_shard *shard;
	struct sl_frame_header h;
	uint32_t n;
	uint32_t skipped;
	int status;
	char msg[160];
	uint64_t next_seq;
	uint64_t hold_bytes;
	struct sl_record_in *recs;
	struct sl_buf frame; /* the receive buffer the records point into, taken from the conn */
};

static void answer(struct restore_req *rq)
{
	struct sl_conn *c = rq->conn;
	if (!sl_conn_is_closed(c)) {
		if (rq->status < 0) {
			sl_reply_error(c, &rq->h, rq->status, "%s",
				       rq->msg[0] ? rq->msg : sluice_strerror(rq->status));
		} else {
			struct sl_buf *out = sl_conn_out(c);
			size_t start;
			int r = sl_proto_encode_response_head(out, rq->h.opcode, rq->h.request_id,
							      0, &start);
			r = r ?: sl_buf_put_u32(out, rq->n - rq->skipped);
			r = r ?: sl_buf_put_u32(out, rq->skipped);
			r = r ?: sl_buf_put_u64(out, rq->next_seq);
			if (r < 0) {
				sl_conn_close(c, false);
			} else {
				sl_proto_finish_frame(out, start);
				sl_conn_flush(c);
			}
		}
	}
	sl_conn_recycle(c, &rq->frame);
	sl_conn_release(c, rq->hold_bytes);
	sl_stream_unref(rq->stream);
	sl_worker_request_end(rq->origin);
	free(rq);
}

static void on_origin(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	answer((struct restore_req *)op);
}

static void finish_on_owner(struct sl_worker *owner, struct restore_req *rq)
{
	if (owner == rq->origin) {
		answer(rq);
		return;
	}
	rq->op.complete = on_origin;
	sl_loop_post(owner->loop, rq->origin->loop, &rq->op);
}

static void durable(void *ctx, int status, uint64_t first_seq, uint32_t count)
{
	struct restore_req *rq = ctx;
	struct sl_shard *sh = rq->shard;
	struct sl_worker *owner = &rq->origin->srv->workers[sh->owner];
	rq->status = status;
	if (status == 0)
		sl_counter_add(&sh->records_in, count);
	else
		snprintf(rq->msg, sizeof(rq->msg), "restore batch of %u records failed: %s", count,
			 sluice_strerror(status));
	finish_on_owner(owner, rq);
}

static void append_locked(struct sl_worker *w, struct restore_req *rq);

static void append_on_owner(struct sl_worker *w, struct restore_req *rq)
{
	/* rq may be finished, and its stream reference dropped, before the call returns. */
	struct sl_shard *sh = rq->shard;
	struct sl_stream *s = sh->stream;
	sl_stream_ref(s);
	sl_shard_lock(sh);
	append_locked(w, rq);
	sl_shard_unlock(sh);
	sl_stream_unref(s);
}

static void append_locked(struct sl_worker *w, struct restore_req *rq)
{
	struct sl_shard *sh = rq->shard;
	if (!sh->log || atomic_load_explicit(&sh->stream->deleted, memory_order_relaxed)) {
		rq->status = SLUICE_ERR_STREAM_NOT_FOUND;
		finish_on_owner(w, rq);
		return;
	}
	struct sl_shard_log_stats st;
	sl_shard_log_stats(sh->log, &st);
	uint32_t skip = 0;
	while (skip < rq->n && rq->recs[skip].seq < st.next_seq)
		skip++;
	rq->skipped = skip;
	rq->next_seq = st.next_seq;
	/* sealed and not yet closed: a reshard is sealing it right now. (A closed shard stays
	 * sealed against produce; a restore fills it up to its end_seq, checked below.) */
	if (skip < rq->n && sh->sealed && !atomic_load(&sh->closed)) {
		rq->status = SLUICE_ERR_RESOURCE_IN_USE;
		snprintf(rq->msg, sizeof(rq->msg), "shard %u is being resharded; retry later",
			 sh->id);
		finish_on_owner(w, rq);
		return;
	}
	if (skip < rq->n && atomic_load(&sh->closed) &&
	    rq->recs[rq->n - 1].seq > atomic_load(&sh->end_seq)) {
		rq->status = SLUICE_ERR_SHARD_CLOSED;
		snprintf(rq->msg, sizeof(rq->msg),
			 "shard %u is closed at seq %llu; seq %llu belongs to its children", sh->id,
			 (unsigned long long)atomic_load(&sh->end_seq),
			 (unsigned long long)rq->recs[rq->n - 1].seq);
		finish_on_owner(w, rq);
		return;
	}
	if (skip == rq->n) { /* all stored already */
		finish_on_owner(w, rq);
		return;
	}
	uint64_t first;
	int r = sl_shard_log_append(sh->log, rq->recs + skip, rq->n - skip, sl_wall_ms(), durable,
				    rq, &first);
	if (r < 0) {
		rq->status = r;
		snprintf(rq->msg, sizeof(rq->msg), "shard %u: cannot append at seq %llu: %s",
			 sh->id, (unsigned long long)rq->recs[skip].seq, sluice_strerror(r));
		finish_on_owner(w, rq);
		return;
	}
	rq->next_seq = rq->recs[rq->n - 1].seq + 1;
	uint64_t bytes = 0;
	for (uint32_t i = skip; i < rq->n; i++)
		bytes += rq->recs[i].data_len;
	sl_counter_add(&sh->bytes_in, bytes);
	sl_worker_mark_dirty(w, sh);
}

static void on_owner(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	append_on_owner(sl_worker_of_loop(loop), (struct restore_req *)op);
}

static void handle_append(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
			  const uint8_t *body, size_t len)
{
	struct sl_req_restore_append q;
	int r = sl_proto_decode_restore_append(body, len, &q);
	if (r < 0) {
		sl_reply_error(c, h, r, "malformed RESTORE_APPEND request");
		return;
	}
	struct sl_stream *s = sl_worker_find_stream(w, q.stream.p, q.stream.len);
	if (!s) {
		sl_reply_error(c, h, SLUICE_ERR_STREAM_NOT_FOUND, "stream %.*s not found",
			       (int)q.stream.len, q.stream.p);
		return;
	}
	struct sl_shard *sh = sl_stream_shard(s, q.shard_id);
	if (!sh) {
		sl_reply_error(c, h, SLUICE_ERR_SHARD_NOT_FOUND, "stream %s has no shard %u",
			       s->name, q.shard_id);
		return;
	}
	/* One allocation: the request and its record array, which points into the body. */
	size_t off_recs = (sizeof(struct restore_req) + 7) & ~(size_t)7;
	uint8_t *block = malloc(off_recs + (size_t)q.count * sizeof(struct sl_record_in));
	if (!block) {
		sl_reply_error(c, h, SLUICE_ERR_THROTTLED, "out of memory, retry later");
		return;
	}
	struct restore_req *rq = (struct restore_req *)block;
	memset(rq, 0, sizeof(*rq));
	rq->recs = (struct sl_record_in *)(block + off_recs);
	uint64_t prev = 0;
	for (uint32_t i = 0; i < q.count; i++) {
		struct sl_restore_record_view v;
		r = sl_proto_restore_next(&q, w->srv->cfg.max_record_bytes, &v);
		if (r != 1) {
			free(block);
			sl_reply_error(c, h, r < 0 ? r : SLUICE_ERR_PROTOCOL,
				       "record %u of RESTORE_APPEND: %s", i,
				       sluice_strerror(r < 0 ? r : SLUICE_ERR_PROTOCOL));
			return;
		}
		if (v.seq <= prev) {
			free(block);
			sl_reply_error(c, h, SLUICE_ERR_SEQ_ORDER,
				       "record %u of RESTORE_APPEND: seq %llu after %llu", i,
				       (unsigned long long)v.seq, (unsigned long long)prev);
			return;
		}
		prev = v.seq;
		rq->recs[i] = (struct sl_record_in){
		    .key = v.key,
		    .key_len = v.key_len,
		    .data = v.data,
		    .data_len = v.data_len,
		    .seq = v.seq,
		    .ts_ms = v.ts_ms,
		};
	}
	struct sl_restore_record_view extra;
	if (sl_proto_restore_next(&q, w->srv->cfg.max_record_bytes, &extra) != 0) {
		free(block);
		sl_reply_error(c, h, SLUICE_ERR_PROTOCOL,
			       "RESTORE_APPEND has bytes after its last record");
		return;
	}
	/* The body stays where it is: rq->recs point into it, rq->frame owns it from here. */
	if (sl_conn_take_frame(c, &rq->frame) < 0) {
		free(block);
		sl_reply_error(c, h, SLUICE_ERR_THROTTLED, "out of memory, retry later");
		return;
	}
	rq->conn = c;
	rq->origin = w;
	rq->stream = s;
	rq->shard = sh;
	rq->h = *h;
	rq->n = q.count;
	rq->hold_bytes = len;
	sl_stream_ref(s);
	sl_conn_hold(c, rq->hold_bytes);
	sl_worker_request_begin(w);
	if (sh->owner == w->id) {
		append_on_owner(w, rq);
	} else {
		rq->op.complete = on_owner;
		sl_loop_post(w->loop, w->srv->workers[sh->owner].loop, &rq->op);
	}
}

static void handle_create_from_meta(struct sl_worker *w, struct sl_conn *c,
				    const struct sl_frame_header *h, const uint8_t *body,
				    size_t len)
{
	struct sl_str name, json;
	int r = sl_proto_decode_create_from_meta(body, len, &name, &json);
	if (r < 0) {
		sl_reply_error(c, h, r, "malformed STREAM_CREATE_FROM_META request");
		return;
	}
	char msg[SL_STREAM_MSG_LEN] = "";
	struct sl_stream_meta *meta;
	r = sl_stream_meta_from_json(json.p, json.len, &meta, msg, sizeof(msg));
	if (r < 0) {
		sl_reply_error(c, h,
			       r == -ENOMEM ? SLUICE_ERR_THROTTLED : SLUICE_ERR_INVALID_ARGUMENT,
			       "stream metadata: %s", msg[0] ? msg : sluice_strerror(r));
		return;
	}
	memcpy(meta->name, name.p, name.len);
	meta->name[name.len] = '\0';
	size_t nshards = meta->shard_count;
	r = sl_registry_create_stream_from_meta(w->srv->registry, meta, msg, sizeof(msg));
	if (r < 0) {
		sl_reply_error(c, h, r, "%s", msg[0] ? msg : sluice_strerror(r));
		return;
	}
	SL_INFO("created stream %.*s from metadata (%zu shards listed)", (int)name.len, name.p,
		nshards);
	sl_stream_cache_refresh(&w->cache, w->srv->registry);
	size_t start;
	if (sl_proto_encode_response_head(sl_conn_out(c), h->opcode, h->request_id, 0, &start) ==
	    0) {
		sl_proto_finish_frame(sl_conn_out(c), start);
		sl_conn_flush(c);
	}
}

static void handle_meta_get(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
			    const uint8_t *body, size_t len)
{
	struct sl_str name;
	int r = sl_proto_decode_name(body, len, &name);
	if (r < 0) {
		sl_reply_error(c, h, r, "malformed STREAM_META_GET request");
		return;
	}
	struct sl_stream *s = sl_worker_find_stream(w, name.p, name.len);
	if (!s) {
		sl_reply_error(c, h, SLUICE_ERR_STREAM_NOT_FOUND, "stream %.*s not found",
			       (int)name.len, name.p);
		return;
	}
	char *json;
	size_t jlen;
	r = sl_stream_meta_to_json(sl_stream_view(s)->meta, &json, &jlen); /* a view is immutable */
	if (r < 0) {
		sl_reply_error(c, h, SLUICE_ERR_THROTTLED, "out of memory, retry later");
		return;
	}
	struct sl_buf *out = sl_conn_out(c);
	size_t start;
	r = sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
	r = r ?: sl_buf_put_u32(out, (uint32_t)jlen);
	r = r ?: sl_buf_put(out, json, jlen);
	free(json);
	if (r < 0) {
		sl_conn_close(c, false);
		return;
	}
	sl_proto_finish_frame(out, start);
	sl_conn_flush(c);
}

void sl_handle_restore(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		       const uint8_t *body, size_t len)
{
	switch (h->opcode) {
	case SL_OP_RESTORE_APPEND:
		handle_append(w, c, h, body, len);
		return;
	case SL_OP_STREAM_CREATE_FROM_META:
		handle_create_from_meta(w, c, h, body, len);
		return;
	case SL_OP_STREAM_META_GET:
		handle_meta_get(w, c, h, body, len);
		return;
	default:
		sl_reply_error(c, h, SLUICE_ERR_BAD_OPCODE, NULL);
	}
}
