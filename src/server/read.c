/*
 * READ: resolve a position in one shard and return a batch of records, on the shard's owner
 * loop (the only thread that touches its log). The owner writes the answer's head and reads the
 * records' frames from the log straight after it (the answer carries them as stored: one copy of
 * each byte, from the page cache); the origin loop only queues the answer, and when the
 * connection has nothing else queued it is sent from that buffer (sl_conn_queue hands it over
 * instead of copying). Answer buffers come from and go back to the server's pool (read_answers),
 * so their pages stay mapped from one answer to the next.
 *
 * Readers see only acknowledged records (below the log's durable_seq): a record a crash could
 * still take away is never shown.
 *
 * A shard closed by a reshard holds nothing after its end_seq. Once a reader's next position is
 * past end_seq the answer carries SL_READ_FLAG_SHARD_ENDED: the reader is done with this shard
 * and goes on with its children (Kinesis: a null NextShardIterator).
 *
 * Long poll: a READ with wait_ms > 0 that finds nothing is parked on the owner's list (pinned to
 * the sequence number it would have continued at, so a LATEST read sees what arrives while it
 * waits) and answered from the owner's tick, which runs after every round of completions: as
 * soon as the shard's acknowledged tip passes that number, or when the wait expires (the loop is
 * told to wake by then), when its connection closed (checked at every tick, at least every
 * 50 ms), or the server drains. At most READS_PARKED_MAX per worker; beyond that a
 * read that finds nothing answers at once, as without wait_ms.
 */
#include "server/server.h"

#include "common/clock.h"
#include "common/logging.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parked reads per worker: each holds a request slot and up to max_bytes of its connection. */
#define READS_PARKED_MAX 4096u
/* u64 next_seq, u64 tip_seq, u64 millis_behind, u32 n: between shard_id and the frames. */
#define READ_ANSWER_FIELDS_BYTES (8u + 8u + 8u + 4u)

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
	/* while parked, on the owner */
	struct read_req *next_parked;
	uint64_t wait_seq;	  /* answer once the acknowledged tip passes this */
	int64_t wait_deadline_ms; /* CLOCK_MONOTONIC */
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
	/* The connection's previous (sent) output buffer, or this answer's if it was dropped. */
	sl_buf_pool_give(&rr->origin->srv->read_answers, &rr->resp);
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

static bool read_locked(struct sl_worker *w, struct read_req *rr);

/* Returns true when the read was parked (nothing to answer yet), false when rr->resp is ready. */
static bool do_read(struct sl_worker *w, struct read_req *rr)
{
	sl_shard_lock(rr->shard);
	bool parked = read_locked(w, rr);
	sl_shard_unlock(rr->shard);
	return parked;
}

static bool read_locked(struct sl_worker *w, struct read_req *rr)
{
	struct sl_shard *sh = rr->shard;
	if (!sh->log) {
		encode_error(rr, SLUICE_ERR_STREAM_NOT_FOUND, "stream was deleted");
		return false;
	}
	int64_t now = sl_wall_ms();
	uint64_t seq;
	struct sl_shard_log_stats st;
	if (rr->q.wait_ms > 0) /* a long poll may park below: hear of direct appends */
		sl_shard_watch(sh, sl_mono_ms() + rr->q.wait_ms);
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
		return false;
	}
	/* Nothing acknowledged at seq yet: park (long poll) or answer empty, without reading.
	 * A closed shard gets nothing more: such a read answers at once (SHARD_ENDED once past
	 * end_seq). */
	if (seq >= st.durable_seq && rr->q.wait_ms > 0 && w->reads_parked_n < READS_PARKED_MAX &&
	    !atomic_load(&sh->closed) &&
	    !atomic_load_explicit(&w->srv->draining, memory_order_relaxed)) {
		/* Pinned: whatever is acknowledged from `seq` on is what this read returns. */
		rr->q.position = (struct sluice_position){.type = SLUICE_POS_AT_SEQ, .value = seq};
		rr->wait_seq = seq;
		rr->wait_deadline_ms = sl_mono_ms() + rr->q.wait_ms;
		rr->q.wait_ms = 0; /* parks once: the next do_read answers */
		rr->next_parked = w->reads_parked;
		w->reads_parked = rr;
		w->reads_parked_n++;
		sl_counter_add(&w->m.reads_waited, 1);
		sl_loop_wake_by(w->loop, rr->wait_deadline_ms);
		return true;
	}

	/* The head with room for next_seq, tip_seq, millis_behind and n, patched after the read,
	 * which appends the records' frames straight after it (one copy, from the page cache). */
	size_t start, fields;
	sl_buf_reset(&rr->resp);
	sl_buf_pool_take(&w->srv->read_answers, &rr->resp);
	r = sl_proto_encode_response_head(&rr->resp, rr->h.opcode, rr->h.request_id, 0, &start);
	r = r ?: sl_buf_put_u32(&rr->resp, sh->id);
	fields = rr->resp.len;
	r = r ?: sl_buf_reserve(&rr->resp, READ_ANSWER_FIELDS_BYTES);
	if (r < 0) {
		encode_error(rr, SLUICE_ERR_THROTTLED, "out of memory, retry later");
		return false;
	}
	rr->resp.len += READ_ANSWER_FIELDS_BYTES;
	struct sl_read_batch *b = &w->read_batch;
	r = sl_shard_log_read_frames(sh->log, seq, st.durable_seq, rr->q.max_records,
				     rr->q.max_bytes, now, &rr->resp, b);
	if (r < 0) {
		if (r != -ENOMEM)
			SL_ERROR("stream %s shard %u: read at %llu failed: %s", sh->stream->name,
				 sh->id, (unsigned long long)seq, sluice_strerror(r));
		encode_error(rr, r == -ENOMEM ? SLUICE_ERR_THROTTLED : r,
			     r == -ENOMEM ? "out of memory, retry later" : "read failed");
		return false;
	}
	size_t n = b->count;
	uint64_t next = b->next_seq;
	uint64_t tip = st.durable_seq;
	uint8_t flags = 0;
	if (atomic_load(&sh->closed)) {
		uint64_t end = atomic_load(&sh->end_seq);
		if (tip > end + 1)
			tip = end + 1;
		if (next > end)
			flags |= SL_READ_FLAG_SHARD_ENDED;
	}
	uint64_t behind_ms = 0;
	if (n && next < tip && st.last_ts_ms > b->records[n - 1].ts_ms)
		behind_ms = (uint64_t)(st.last_ts_ms - b->records[n - 1].ts_ms);
	uint8_t *f = rr->resp.data + fields;
	sl_store_u64(f, next);
	sl_store_u64(f + 8, tip);
	sl_store_u64(f + 16, behind_ms);
	sl_store_u32(f + 24, (uint32_t)n);
	if (sl_buf_put_u8(&rr->resp, flags) < 0) {
		encode_error(rr, SLUICE_ERR_THROTTLED, "out of memory, retry later");
		return false;
	}
	sl_proto_finish_frame(&rr->resp, start);
	sl_counter_add(&sh->records_out, n);
	sl_counter_add(&w->m.records_read, n);
	return false;
}

/* On the owner: the answer is in rr->resp; send it from the connection's loop. */
static void answer(struct sl_worker *w, struct read_req *rr)
{
	if (rr->origin == w) {
		deliver(rr);
		return;
	}
	rr->op.complete = on_origin;
	sl_loop_post(w->loop, rr->origin->loop, &rr->op);
}

static void on_owner(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct sl_worker *w = sl_worker_of_loop(loop);
	struct read_req *rr = (struct read_req *)op;
	if (!do_read(w, rr))
		answer(w, rr);
}

void sl_reads_parked_tick(struct sl_worker *w)
{
	if (!w->reads_parked)
		return;
	int64_t now = sl_mono_ms();
	bool draining = atomic_load_explicit(&w->srv->draining, memory_order_relaxed);
	/* Detach the list: answering may park new reads (a connection resumes reading). */
	struct read_req *list = w->reads_parked, *keep = NULL;
	w->reads_parked = NULL;
	while (list) {
		struct read_req *rr = list;
		list = rr->next_parked;
		struct sl_shard *sh = rr->shard;
		/* The client left (its loop closed the connection): nobody wants the answer, and
		 * the read should not hold a parked slot and the connection until wait_ms. */
		bool ready = draining || now >= rr->wait_deadline_ms || !sh->log ||
			     atomic_load_explicit(&sh->stream->deleted, memory_order_relaxed) ||
			     atomic_load(&sh->closed) || /* resharded while it waited */
			     sl_conn_gone(rr->conn);
		if (!ready) {
			struct sl_shard_log_stats st;
			sl_shard_lock(sh);
			if (sh->log)
				sl_shard_log_stats(sh->log, &st);
			ready = !sh->log || st.durable_seq > rr->wait_seq;
			sl_shard_unlock(sh);
		}
		if (!ready) {
			rr->next_parked = keep;
			keep = rr;
			sl_loop_wake_by(w->loop, rr->wait_deadline_ms);
			continue;
		}
		w->reads_parked_n--;
		/* wait_ms is 0 now: it answers. No answer for a client that left: skip the read. */
		if (!sl_conn_gone(rr->conn))
			do_read(w, rr);
		answer(w, rr);
	}
	/* Put the still-waiting ones back behind any parked meanwhile. */
	struct read_req **tail = &w->reads_parked;
	while (*tail)
		tail = &(*tail)->next_parked;
	*tail = keep;
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
		if (!do_read(w, rr))
			deliver(rr);
	} else {
		rr->op.complete = on_owner;
		sl_loop_post(w->loop, w->srv->workers[sh->owner].loop, &rr->op);
	}
}
