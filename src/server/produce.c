/*
 * PRODUCE: route each record of a request to its shard (MD5 of the partition key, or the
 * explicit hash key), append each shard's records as one batch on the shard's owner loop, and
 * answer when every part is durable under the fsync policy. The answer carries, per record,
 * its shard and sequence number or its own error (as PutRecords does).
 *
 * One allocation per request holds the body copy and every array, so a request costs one
 * malloc and one free whatever its size.
 *
 * Resharding (see reshard.c and docs/architecture.md). Routing uses the stream's view as the
 * request found it, so a part may reach a shard that a reshard has sealed since. The owner
 * never appends to a sealed shard: while the reshard is not yet published the part waits on the
 * shard (parked); once published it goes back to its origin loop, which routes its records
 * again with the new view (they may now belong to several children) and sends them on. If the
 * reshard is abandoned the shard is unsealed and the parked parts are appended where they were.
 * Either way every record is appended exactly once and never after its shard's end_seq.
 *
 * Appending on the receiving loop. Under an fsync policy whose answer does not wait for the disk
 * (never, interval), a part for a shard another loop owns is appended right here, under the
 * shard's log_mu, when the lock is free, the shard is open and no earlier part is still on its
 * way to the owner (parts_posted, which keeps a connection's parts in order). The answer then
 * needs no round trip through the owner's loop: on a 2-core machine that hand-off and its answer
 * were two of the four thread wake-ups of a request (docs/architecture.md has the figures). The
 * owner hears of such an append (appended_op) only when a reader or consumer of its watches the
 * shard or an interval sync is due. Group commit keeps the owner path: its answer waits for the
 * owner's fdatasync anyway.
 */
#include "server/server.h"

#include "common/clock.h"
#include "common/logging.h"
#include "stream/hash_key.h"

#include <sluice/errors.h>

#ifdef SL_FAULT_INJECTION
#include "server/faults.h"
#endif

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct produce_req;

struct part {
	struct sl_op op;
	struct produce_req *req;
	struct sl_shard *shard;
	uint32_t first; /* into req->recs / req->index */
	uint32_t count;
	int status;
	uint64_t first_seq;
	struct part *next_parked; /* owner only: the shard's list of parked parts */
	bool posted;		  /* counted in the shard's parts_posted */
};

/* part.status of a part that must be routed again (its shard was closed by a reshard). */
#define PART_REROUTE 1

/* Parts added when a rerouted part's records go to several children; freed with the request. */
struct extra_parts {
	struct extra_parts *next;
	struct part parts[];
};

struct record_result {
	int32_t status;
	uint32_t shard_id;
	uint64_t seq;
};

struct produce_req {
	struct sl_conn *conn;	 /* NULL for internal requests (see sl_produce_internal) */
	sl_produce_done_fn done; /* internal requests: called instead of answering */
	void *done_ctx;
	struct sl_worker *origin;
	struct sl_stream *stream;
	uint32_t request_id;
	uint8_t opcode;
	uint32_t n;
	uint32_t nparts;
	uint32_t parts_pending;
	uint64_t hold_bytes;
	struct record_result *results;
	struct sl_record_in *recs;
	uint32_t *index;
	struct part *parts;
	struct extra_parts *extra;
	uint8_t *body;
	int64_t arrived_ns; /* sl_mono_ns() when it was decoded, for produce_duration */
};

#define NO_SHARD UINT32_MAX

static void free_req(struct produce_req *req)
{
	while (req->extra) {
		struct extra_parts *e = req->extra;
		req->extra = e->next;
		free(e);
	}
	free(req);
}

static void respond(struct produce_req *req)
{
	struct sl_conn *c = req->conn;
	struct sl_worker *w = req->origin;
	if (!c) {
		int status = 0;
		uint32_t failed = 0;
		for (uint32_t i = 0; i < req->n; i++) {
			if (req->results[i].status < 0) {
				failed++;
				if (!status)
					status = req->results[i].status;
			}
		}
		req->done(req->done_ctx, status, failed);
		sl_stream_unref(req->stream);
		sl_worker_request_end(w);
		free_req(req);
		return;
	}
	sl_latency_hist_record(&w->m.produce_duration, (uint64_t)(sl_mono_ns() - req->arrived_ns));
	if (!sl_conn_is_closed(c)) {
		struct sl_buf *out = sl_conn_out(c);
		size_t start;
		int r = sl_proto_encode_response_head(out, req->opcode, req->request_id, 0, &start);
		r = r ?: sl_buf_reserve(out, 4 + (size_t)req->n * 16);
		if (r == 0) {
			sl_buf_put_u32(out, req->n);
			uint8_t *p = out->data + out->len;
			for (uint32_t i = 0; i < req->n; i++, p += 16) {
				sl_store_u32(p, (uint32_t)req->results[i].status);
				sl_store_u32(p + 4, req->results[i].shard_id);
				sl_store_u64(p + 8, req->results[i].seq);
			}
			out->len += (size_t)req->n * 16;
			sl_proto_finish_frame(out, start);
			sl_conn_flush(c);
		} else {
			sl_conn_close(c, false);
		}
	}
	sl_conn_release(c, req->hold_bytes);
	sl_stream_unref(req->stream);
	sl_worker_request_end(w);
	free_req(req);
}

static void send_part(struct sl_worker *w, struct part *p);
static void reroute(struct part *part);

/* On the origin loop: copy a part's outcome into the per-record results. */
static void part_complete(struct part *part)
{
	struct produce_req *req = part->req;
	if (part->status == PART_REROUTE) {
		reroute(part);
		return;
	}
	uint64_t produced = 0;
	for (uint32_t j = 0; j < part->count; j++) {
		struct record_result *res = &req->results[req->index[part->first + j]];
		res->status = part->status;
		res->shard_id = part->shard->id;
		res->seq = part->status == 0 ? part->first_seq + j : 0;
		if (part->status == 0)
			produced++;
	}
	sl_counter_add(&req->origin->m.records_produced, produced);
	if (--req->parts_pending == 0)
		respond(req);
}

static void part_on_origin(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	part_complete((struct part *)op);
}

/* On the owner loop: the part is decided (durable, or failed). */
static void part_finish(struct sl_worker *owner, struct part *part)
{
	if (owner == part->req->origin) {
		part_complete(part);
		return;
	}
	part->op.complete = part_on_origin;
	sl_loop_post(owner->loop, part->req->origin->loop, &part->op);
}

static void part_durable(void *ctx, int status, uint64_t first_seq, uint32_t count)
{
	struct part *part = ctx;
	struct sl_shard *sh = part->shard;
	struct sl_worker *owner = &part->req->origin->srv->workers[sh->owner];
	part->status = status;
	part->first_seq = first_seq;
	if (status == 0) {
		sl_counter_add(&sh->records_in, count);
	} else if (status != SLUICE_ERR_UNAVAILABLE) {
		SL_WARN("stream %s shard %u: batch of %u records failed: %s", sh->stream->name,
			sh->id, count, sluice_strerror(status));
	}
	part_finish(owner, part);
}

/* The owner is done with a part it was sent (appended, failed or turned back). */
static void part_left_queue(struct part *part)
{
	if (!part->posted)
		return;
	part->posted = false;
	atomic_fetch_sub_explicit(&part->shard->parts_posted, 1, memory_order_release);
}

static uint64_t part_bytes(const struct part *part)
{
	uint64_t bytes = 0;
	for (uint32_t j = 0; j < part->count; j++)
		bytes += part->req->recs[part->first + j].data_len;
	return bytes;
}

/* On the owner loop. */
static void part_append(struct sl_worker *w, struct part *part)
{
	struct sl_shard *sh = part->shard;
	struct produce_req *req = part->req;
	/* Unlocked before any part_finish: answering may drop the stream's last reference. */
	sl_shard_lock(sh);
	if (!sh->log || atomic_load_explicit(&sh->stream->deleted, memory_order_relaxed)) {
		sl_shard_unlock(sh);
		part_left_queue(part);
		part->status = SLUICE_ERR_STREAM_NOT_FOUND;
		part_finish(w, part);
		return;
	}
	if (sh->sealed) {
		sl_shard_unlock(sh); /* only the owner writes sealed and parked */
		if (atomic_load(&sh->closed)) {
			part_left_queue(part);
			part->status = PART_REROUTE; /* the children are published */
			part_finish(w, part);
			return;
		}
		/* A reshard is deciding: wait for its outcome, in arrival order. */
		sl_counter_add(&w->m.parts_parked, 1);
		part->next_parked = NULL;
		struct part **tail = (struct part **)&sh->parked;
		while (*tail)
			tail = &(*tail)->next_parked;
		*tail = part;
		return;
	}
	uint64_t first_seq;
	int r = sl_shard_log_append(sh->log, &req->recs[part->first], part->count, sl_wall_ms(),
				    part_durable, part, &first_seq);
	uint64_t bytes = r == 0 ? part_bytes(part) : 0;
	sl_counter_add(&sh->bytes_in, bytes); /* the shard's counters: under log_mu */
	sl_shard_unlock(sh);
	part_left_queue(part);
	if (r < 0) {
		part->status = r;
		part_finish(w, part);
		return;
	}
	sl_counter_add(&w->m.bytes_produced, bytes);
	sl_worker_mark_dirty(w, sh);
}

static void appended_on_owner(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct sl_shard *sh =
	    (struct sl_shard *)((char *)op - offsetof(struct sl_shard, appended_op));
	struct sl_worker *w = sl_worker_of_loop(loop);
	/* Cleared first: an append from now on posts again. */
	atomic_store(&sh->appended_elsewhere, false);
	sl_worker_mark_dirty(w, sh); /* takes its own stream reference */
	sl_stream_unref(sh->stream);
	atomic_fetch_sub(&w->srv->appends_untold, 1);
}

/* Have the owner service sh: wake its parked reads and consumers, start a sync that is due. */
static void tell_owner(struct sl_worker *w, struct sl_shard *sh)
{
	if (atomic_exchange(&sh->appended_elsewhere, true))
		return; /* a notice is on its way and not yet read */
	atomic_fetch_add(&w->srv->appends_untold, 1);
	sl_stream_ref(sh->stream);
	sh->appended_op.complete = appended_on_owner;
	sl_loop_post(w->loop, w->srv->workers[sh->owner].loop, &sh->appended_op);
}

/*
 * On a loop that does not own the part's shard: append it here if the answer does not wait for
 * the owner's fdatasync, nothing sent to the owner before is still queued there, and the lock
 * is free (never wait: the owner may hold it through a read). Returns false when the owner
 * must take the part (sealed or closed shard, a failed append: it has the answers for those).
 */
static bool append_here(struct sl_worker *w, struct part *part)
{
	struct sl_shard *sh = part->shard;
	if (w->srv->cfg.fsync_mode == SL_FSYNC_GROUP ||
	    atomic_load_explicit(&sh->parts_posted, memory_order_acquire) != 0 ||
	    pthread_mutex_trylock(&sh->log_mu) != 0)
		return false;
	struct produce_req *req = part->req;
	uint64_t first_seq, bytes = 0;
	int r = -1;
	bool tell = false;
	if (sh->log && !sh->sealed &&
	    !atomic_load_explicit(&sh->stream->deleted, memory_order_relaxed)) {
		int64_t now = sl_wall_ms();
		r = sl_shard_log_append(sh->log, &req->recs[part->first], part->count, now, NULL,
					NULL, &first_seq);
		if (r == 0) {
			/* What the owner would publish at its next pass. */
			atomic_store_explicit(&sh->next_seq, first_seq + part->count,
					      memory_order_relaxed);
			bytes = part_bytes(part);
			sl_counter_add(&sh->bytes_in, bytes);
			sl_counter_add(&sh->records_in, part->count);
			tell = sl_shard_log_sync_wanted(sh->log, now) ||
			       sl_mono_ms() < atomic_load_explicit(&sh->watched_until_ms,
								   memory_order_relaxed);
		}
	}
	sl_shard_unlock(sh);
	if (r < 0)
		return false;
	sl_counter_add(&w->m.bytes_produced, bytes);
	sl_counter_add(&w->m.parts_appended_here, 1);
	if (tell)
		tell_owner(w, sh);
	part->status = 0;
	part->first_seq = first_seq;
	part_complete(part);
	return true;
}

static void part_on_owner(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	part_append(sl_worker_of_loop(loop), (struct part *)op);
}

void sl_produce_unpark(struct sl_worker *w, struct sl_shard *sh, bool published)
{
	struct part *p = sh->parked;
	sh->parked = NULL;
	while (p) {
		struct part *next = p->next_parked;
		if (published) {
			part_left_queue(p);
			p->status = PART_REROUTE;
			part_finish(w, p);
		} else {
			part_append(w, p);
		}
		p = next;
	}
}

/*
 * On the origin loop: the part's shard was closed by a reshard. Route its records again with the
 * current view and send each child's share on; the request waits for every share. Records keep
 * their relative order within each child (a stable partition of the part's slots).
 */
static void reroute(struct part *part)
{
	struct produce_req *req = part->req;
	struct sl_worker *w = req->origin;
	struct sl_stream_view *v = sl_stream_view(req->stream);
	uint32_t n = part->count;
	sl_counter_add(&w->m.parts_rerouted, 1);
	uint32_t *tgt = malloc((size_t)n * (2 * sizeof(uint32_t) + sizeof(struct sl_record_in)));
	if (!tgt) {
		part->status = SLUICE_ERR_THROTTLED; /* retryable: nothing was appended */
		part_complete(part);
		return;
	}
	uint32_t *idx = tgt + n;
	struct sl_record_in *recs = (struct sl_record_in *)(idx + n);
	uint32_t uniq[64], nuniq = 0;
	bool many = false;
	for (uint32_t j = 0; j < n; j++) {
		const struct sl_record_in *r = &req->recs[part->first + j];
		sl_u128 hk;
		if (r->has_hash_key)
			hk = sl_hash_key_to_u128(&r->hash_key);
		else
			sl_hash_u128_of_partition_key(r->key, r->key_len, &hk);
		tgt[j] = sl_view_route(v, hk);
		uint32_t k = 0;
		while (k < nuniq && uniq[k] != tgt[j])
			k++;
		if (k == nuniq) {
			if (nuniq == sizeof(uniq) / sizeof(uniq[0]))
				many = true;
			else
				uniq[nuniq++] = tgt[j];
		}
	}
	struct extra_parts *e = NULL;
	if (!many && nuniq > 1) {
		e = malloc(sizeof(*e) + (nuniq - 1) * sizeof(struct part));
		if (e) {
			e->next = req->extra;
			req->extra = e;
		}
	}
	if (many || (nuniq > 1 && !e)) {
		free(tgt);
		part->status = SLUICE_ERR_THROTTLED;
		part_complete(part);
		return;
	}
	/* Stable partition of the part's slots by child. */
	memcpy(recs, &req->recs[part->first], (size_t)n * sizeof(*recs));
	memcpy(idx, &req->index[part->first], (size_t)n * sizeof(*idx));
	uint32_t at = part->first;
	struct part *subs[64];
	for (uint32_t k = 0; k < nuniq; k++) {
		struct part *p = k == 0 ? part : &e->parts[k - 1];
		uint32_t first = at;
		for (uint32_t j = 0; j < n; j++) {
			if (tgt[j] != uniq[k])
				continue;
			req->recs[at] = recs[j];
			req->index[at] = idx[j];
			at++;
		}
		*p = (struct part){
		    .req = req, .shard = v->shards[uniq[k]], .first = first, .count = at - first};
		subs[k] = p;
	}
	free(tgt);
	req->parts_pending += nuniq - 1;
	for (uint32_t k = 0; k < nuniq; k++)
		send_part(w, subs[k]);
}

/* The stream of a request, refreshing the loop's table when the name is unknown or stale. */
static struct sl_stream *find_stream(struct sl_worker *w, const char *name, size_t len)
{
	struct sl_stream *s = sl_stream_cache_find(&w->cache, name, len);
	if (!s || atomic_load_explicit(&s->deleted, memory_order_relaxed)) {
		sl_stream_cache_refresh(&w->cache, w->srv->registry);
		s = sl_stream_cache_find(&w->cache, name, len);
		if (s && atomic_load_explicit(&s->deleted, memory_order_relaxed))
			s = NULL;
	}
	return s;
}

struct sl_stream *sl_worker_find_stream(struct sl_worker *w, const char *name, size_t len);
struct sl_stream *sl_worker_find_stream(struct sl_worker *w, const char *name, size_t len)
{
	return find_stream(w, name, len);
}

static void dispatch(struct sl_worker *w, struct produce_req *req);

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

void sl_handle_produce(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		       const uint8_t *body, size_t len)
{
	struct sl_req_produce head;
	int r = sl_proto_decode_produce(body, len, &head);
	if (r < 0) {
		sl_reply_error(c, h, r, "malformed PRODUCE request");
		return;
	}
	if (head.count == 0) {
		sl_reply_error(c, h, SLUICE_ERR_INVALID_ARGUMENT,
			       "a PRODUCE needs at least one record");
		return;
	}
	struct sl_stream *s = find_stream(w, head.stream.p, head.stream.len);
	if (!s) {
		sl_reply_error(c, h, SLUICE_ERR_STREAM_NOT_FOUND, "stream %.*s not found",
			       (int)head.stream.len, head.stream.p);
		return;
	}
	uint32_t n = head.count;
	struct sl_stream_view *view = sl_stream_view(s);
	uint32_t nshards = view->nshards;
	uint32_t max_parts = n < nshards ? n : nshards;
	size_t off_results = align8(sizeof(struct produce_req));
	size_t off_recs = off_results + align8((size_t)n * sizeof(struct record_result));
	size_t off_index = off_recs + align8((size_t)n * sizeof(struct sl_record_in));
	size_t off_shard_of = off_index + align8((size_t)n * sizeof(uint32_t));
	size_t off_parts = off_shard_of + align8((size_t)n * sizeof(uint32_t));
	size_t off_views = off_parts + align8((size_t)max_parts * sizeof(struct part));
	size_t off_body = off_views + align8((size_t)n * sizeof(struct sl_record_in));
	size_t total = off_body + len;
	uint8_t *block = malloc(total);
#ifdef SL_FAULT_INJECTION
	if (block && sl_fault_alloc("produce")) { /* test builds: take the out-of-memory path */
		free(block);
		block = NULL;
	}
#endif
	if (!block) {
		sl_reply_error(c, h, SLUICE_ERR_THROTTLED, "out of memory, retry later");
		return;
	}
	struct produce_req *req = (struct produce_req *)block;
	memset(req, 0, sizeof(*req));
	req->arrived_ns = sl_mono_ns();
	req->results = (struct record_result *)(block + off_results);
	req->recs = (struct sl_record_in *)(block + off_recs);
	req->index = (uint32_t *)(block + off_index);
	uint32_t *shard_of = (uint32_t *)(block + off_shard_of);
	req->parts = (struct part *)(block + off_parts);
	struct sl_record_in *views = (struct sl_record_in *)(block + off_views);
	req->body = block + off_body;
	memcpy(req->body, body, len);

	/* Decode again from the copy, so every view points into memory the request owns. */
	r = sl_proto_decode_produce(req->body, len, &head);
	if (r < 0) {
		free(block);
		sl_reply_error(c, h, r, "malformed PRODUCE request");
		return;
	}

	if (w->scratch_cap < nshards) {
		uint32_t *sc = realloc(w->scratch_counts, (size_t)nshards * sizeof(*sc));
		if (!sc) {
			free(block);
			sl_reply_error(c, h, SLUICE_ERR_THROTTLED, "out of memory, retry later");
			return;
		}
		w->scratch_counts = sc;
		w->scratch_cap = nshards;
	}
	uint32_t *counts = w->scratch_counts;
	memset(counts, 0, (size_t)nshards * sizeof(*counts));

	uint32_t max_bytes = w->srv->cfg.max_record_bytes;
	uint32_t rejected = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct sl_record_view v;
		r = sl_proto_produce_next(&head, max_bytes, &v);
		if (r == 1) {
			sl_u128 hk;
			if (v.has_hash_key)
				hk = sl_hash_key_to_u128(&v.hash_key);
			else
				sl_hash_u128_of_partition_key(v.key, v.key_len, &hk);
			uint32_t pos = sl_view_route(view, hk);
			shard_of[i] = pos;
			counts[pos]++;
			views[i] = (struct sl_record_in){
			    .key = v.key,
			    .key_len = v.key_len,
			    .has_hash_key = v.has_hash_key,
			    .hash_key = v.hash_key,
			    .data = v.data,
			    .data_len = v.data_len,
			};
			req->results[i].status = 0;
		} else if (r == SLUICE_ERR_INVALID_KEY || r == SLUICE_ERR_RECORD_TOO_LARGE) {
			shard_of[i] = NO_SHARD;
			req->results[i] = (struct record_result){.status = r};
			rejected++;
		} else {
			free(block);
			sl_reply_error(c, h, r < 0 ? r : SLUICE_ERR_PROTOCOL,
				       "malformed record %u in PRODUCE", i);
			return;
		}
	}
	struct sl_record_view extra;
	if (sl_proto_produce_next(&head, max_bytes, &extra) != 0) {
		free(block);
		sl_reply_error(c, h, SLUICE_ERR_PROTOCOL,
			       "PRODUCE has bytes after its last record");
		return;
	}

	/* Group by shard, keeping request order within each shard (counting sort). */
	uint32_t nparts = 0, at = 0;
	for (uint32_t k = 0; k < nshards; k++) {
		if (!counts[k])
			continue;
		req->parts[nparts] = (struct part){
		    .req = req, .shard = view->shards[k], .first = at, .count = counts[k]};
		at += counts[k];
		counts[k] = nparts++; /* now: the part index of shard k */
	}
	for (uint32_t i = 0; i < n; i++) {
		if (shard_of[i] == NO_SHARD)
			continue;
		struct part *p = &req->parts[counts[shard_of[i]]];
		uint32_t slot = p->first + p->status++; /* status doubles as a fill counter */
		req->recs[slot] = views[i];
		req->index[slot] = i;
	}

	req->conn = c;
	req->origin = w;
	req->stream = s;
	req->request_id = h->request_id;
	req->opcode = h->opcode;
	req->n = n;
	req->nparts = nparts;
	req->hold_bytes = len;
	sl_conn_hold(c, req->hold_bytes);
	sl_counter_add(&w->m.records_rejected, rejected);
	dispatch(w, req);
}

static void send_part(struct sl_worker *w, struct part *p)
{
	p->status = 0;
	if (p->shard->owner == w->id) {
		part_append(w, p);
	} else if (!append_here(w, p)) {
		p->posted = true;
		atomic_fetch_add_explicit(&p->shard->parts_posted, 1, memory_order_relaxed);
		p->op.complete = part_on_owner;
		sl_loop_post(w->loop, w->srv->workers[p->shard->owner].loop, &p->op);
	}
}

static void dispatch(struct sl_worker *w, struct produce_req *req)
{
	uint32_t nparts = req->nparts;
	req->parts_pending = nparts + 1; /* +1: held until dispatch is over */
	sl_stream_ref(req->stream);
	sl_worker_request_begin(w);
	for (uint32_t k = 0; k < nparts; k++)
		send_part(w, &req->parts[k]);
	if (--req->parts_pending == 0)
		respond(req);
}

int sl_produce_internal(struct sl_worker *w, struct sl_stream *s, const struct sl_record_in *recs,
			uint32_t n, sl_produce_done_fn done, void *ctx)
{
	if (n == 0 || n > SL_PROTO_RECORDS_MAX)
		return SLUICE_ERR_INVALID_ARGUMENT;
	struct sl_stream_view *view = sl_stream_view(s);
	uint32_t nshards = view->nshards;
	uint32_t max_parts = n < nshards ? n : nshards;
	size_t body = 0;
	for (uint32_t i = 0; i < n; i++)
		body += (size_t)recs[i].key_len + recs[i].data_len;
	size_t off_results = align8(sizeof(struct produce_req));
	size_t off_recs = off_results + align8((size_t)n * sizeof(struct record_result));
	size_t off_index = off_recs + align8((size_t)n * sizeof(struct sl_record_in));
	size_t off_parts = off_index + align8((size_t)n * sizeof(uint32_t));
	size_t off_pos = off_parts + align8((size_t)max_parts * sizeof(struct part));
	size_t off_body = off_pos + align8((size_t)n * sizeof(uint32_t));
	uint8_t *block = malloc(off_body + body);
	if (!block)
		return -ENOMEM;
	struct produce_req *req = (struct produce_req *)block;
	memset(req, 0, sizeof(*req));
	req->results = (struct record_result *)(block + off_results);
	req->recs = (struct sl_record_in *)(block + off_recs);
	req->index = (uint32_t *)(block + off_index);
	req->parts = (struct part *)(block + off_parts);
	uint32_t *shard_of = (uint32_t *)(block + off_pos);
	req->body = block + off_body;
	uint32_t *counts = calloc(nshards, sizeof(*counts));
	if (!counts) {
		free(block);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		sl_u128 hk;
		if (recs[i].has_hash_key)
			hk = sl_hash_key_to_u128(&recs[i].hash_key);
		else
			sl_hash_u128_of_partition_key(recs[i].key, recs[i].key_len, &hk);
		shard_of[i] = sl_view_route(view, hk);
		counts[shard_of[i]]++;
	}
	uint32_t nparts = 0, at = 0;
	for (uint32_t k = 0; k < nshards; k++) {
		if (!counts[k])
			continue;
		req->parts[nparts] = (struct part){
		    .req = req, .shard = view->shards[k], .first = at, .count = counts[k]};
		at += counts[k];
		counts[k] = nparts++;
	}
	uint8_t *p = req->body;
	for (uint32_t i = 0; i < n; i++) {
		struct part *pt = &req->parts[counts[shard_of[i]]];
		uint32_t slot = pt->first + pt->status++;
		struct sl_record_in r = recs[i];
		memcpy(p, recs[i].key, recs[i].key_len);
		r.key = p;
		p += recs[i].key_len;
		if (recs[i].data_len)
			memcpy(p, recs[i].data, recs[i].data_len);
		r.data = p;
		p += recs[i].data_len;
		req->recs[slot] = r;
		req->index[slot] = i;
	}
	free(counts);
	req->origin = w;
	req->stream = s;
	req->n = n;
	req->nparts = nparts;
	req->done = done;
	req->done_ctx = ctx;
	dispatch(w, req);
	return 0;
}
