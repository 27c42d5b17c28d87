/*
 * READ: resolve a position in one shard and return a batch of records, on the shard's owner
 * loop (the only thread that touches its log). The owner encodes the whole response frame, so the
 * record bytes are copied once from the page cache into it; the origin loop only queues it, and
 * when the connection has nothing else queued the frame is sent from that buffer (sl_conn_queue
 * hands it over instead of copying).
 *
 * Readers see only acknowledged records (below the log's durable_seq): a record a crash could
 * still take away is never shown.
 */
#include "server/server.h"

#include "common/clock.h"
#include "common/logging.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct read_req {
	struct sl_op op;
	struct sl_conn *conn;
	struct sl_worker *origin;
	struct sl_stream *stream;
	struct sl_shard *shard;
	struct sl_frame_header h;
	struct sl_req_read q;
	struct sl_buf resp;
	uint64_t hold_bytes;
};

struct sl_stream *sl_worker_find_stream(struct sl_worker *w, const char *name, size_t len);

static void deliver(struct read_req *rr)
{
	struct sl_conn *c = rr->conn;
	if (!sl_conn_is_closed(c)) {
		if (sl_conn_queue(c, &rr->resp) < 0)
			sl_conn_close(c, false);
		sl_conn_flush(c);
	}
	sl_conn_release(c, rr->hold_bytes);
	sl_stream_unref(rr->stream);
	sl_worker_request_end(rr->origin);
	sl_buf_finish(&rr->resp);
	free(rr);
}

static void on_origin(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	deliver((struct read_req *)op);
}

static void encode_error(struct read_req *rr, int status, const char *msg)
{
	sl_buf_reset(&rr->resp);
	sl_proto_encode_error(&rr->resp, rr->h.opcode, rr->h.request_id, status, msg);
}

static void do_read(struct sl_worker *w, struct read_req *rr)
{
	struct sl_shard *sh = rr->shard;
	if (!sh->log) {
		encode_error(rr, SLUICE_ERR_STREAM_NOT_FOUND, "stream was deleted");
		return;
	}
	int64_t now = sl_wall_ms();
	uint64_t seq;
	struct sl_shard_log_stats st;
	sl_shard_log_stats(sh->log, &st);
	int r = sl_shard_log_seek(sh->log, &rr->q.position, now, &seq);
	if (r < 0) {
		char msg[160];
		if (r == SLUICE_ERR_INVALID_ARGUMENT &&
		    (rr->q.position.type == SLUICE_POS_AT_SEQ ||
		     rr->q.position.type == SLUICE_POS_AFTER_SEQ))
			snprintf(
			    msg, sizeof(msg),
			    "sequence number %llu is beyond the tip of shard %u (next is %llu)",
			    (unsigned long long)rr->q.position.value, sh->id,
			    (unsigned long long)st.next_seq);
		else
			snprintf(msg, sizeof(msg), "cannot resolve the position: %s",
				 sluice_strerror(r));
		encode_error(rr, r, msg);
		return;
	}
	struct sl_read_batch *b = &w->read_batch;
	r = sl_shard_log_read(sh->log, seq, rr->q.max_records, rr->q.max_bytes, now, b);
	if (r < 0) {
		SL_ERROR("stream %s shard %u: read at %llu failed: %s", sh->stream->name, sh->id,
			 (unsigned long long)seq, sluice_strerror(r));
		encode_error(rr, r, "read failed");
		return;
	}
	/* Hide what is written but not yet acknowledged. */
	size_t n = b->count;
	uint64_t next = b->next_seq;
	while (n && b->records[n - 1].seq >= st.durable_seq)
		n--;
	if (n < b->count)
		next = b->records[n].seq;
	uint64_t tip = st.durable_seq;
	uint64_t behind_ms = 0;
	if (n && next < tip && st.last_ts_ms > b->records[n - 1].ts_ms)
		behind_ms = (uint64_t)(st.last_ts_ms - b->records[n - 1].ts_ms);

	size_t start;
	sl_buf_reset(&rr->resp);
	r = sl_proto_encode_response_head(&rr->resp, rr->h.opcode, rr->h.request_id, 0, &start);
	r = r ?: sl_buf_put_u32(&rr->resp, sh->id);
	r = r ?: sl_buf_put_u64(&rr->resp, next);
	r = r ?: sl_buf_put_u64(&rr->resp, tip);
	r = r ?: sl_buf_put_u64(&rr->resp, behind_ms);
	r = r ?: sl_buf_put_u32(&rr->resp, (uint32_t)n);
	r = r ?: sl_buf_reserve(&rr->resp, b->data_bytes + n * 48);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = sl_proto_put_record_out(&rr->resp, &b->records[i]);
	if (r < 0) {
		encode_error(rr, SLUICE_ERR_THROTTLED, "out of memory, retry later");
		return;
	}
	sl_proto_finish_frame(&rr->resp, start);
	sl_counter_add(&sh->records_out, n);
	sl_counter_add(&w->m.records_read, n);
}

static void on_owner(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct sl_worker *w = sl_worker_of_loop(loop);
	struct read_req *rr = (struct read_req *)op;
	do_read(w, rr);
	rr->op.complete = on_origin;
	sl_loop_post(loop, rr->origin->loop, &rr->op);
}

void sl_handle_read(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		    const uint8_t *body, size_t len)
{
	struct sl_req_read q;
	int r = sl_proto_decode_read(body, len, &q);
	if (r < 0) {
		sl_reply_error(c, h, r, "malformed READ request");
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
	struct read_req *rr = calloc(1, sizeof(*rr));
	if (!rr) {
		sl_reply_error(c, h, SLUICE_ERR_THROTTLED, "out of memory, retry later");
		return;
	}
	rr->conn = c;
	rr->origin = w;
	rr->stream = s;
	rr->shard = sh;
	rr->h = *h;
	rr->q = q;
	rr->q.stream.p = NULL; /* borrowed from the frame: gone after this call */
	/* A read may return up to max_bytes: count that against the connection's budget. */
	rr->hold_bytes = q.max_bytes;
	sl_buf_init(&rr->resp);
	sl_stream_ref(s);
	sl_conn_hold(c, rr->hold_bytes);
	sl_worker_request_begin(w);
	if (sh->owner == w->id) {
		do_read(w, rr);
		deliver(rr);
	} else {
		rr->op.complete = on_owner;
		sl_loop_post(w->loop, w->srv->workers[sh->owner].loop, &rr->op);
	}
}
