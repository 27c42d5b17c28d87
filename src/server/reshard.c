/*
 * Resharding: STREAM_SPLIT, STREAM_MERGE and STREAM_SCALE, and the cut-over they share.
 *
 * A reshard is a list of split/merge steps (src/stream/reshard_plan.h). The cut-over, driven
 * from the loop that received the request (the origin), goes:
 *
 *   1. Take the stream's reshard lock (one reshard per stream; another gets RESOURCE_IN_USE) and
 *      validate the steps on a copy of the metadata (a dry run), which also names the open
 *      shards they close (the parents).
 *   2. Seal each parent on its owner loop, the only thread that appends to it: from then on the
 *      owner appends nothing to it, and end_seq = its next sequence number - 1 is final. Parts
 *      of PRODUCE requests that reach a sealed parent wait on it (produce.c). The seal is
 *      answered once every record up to end_seq is durable (the owner's tick checks), so a
 *      closed shard's readable tip is exactly end_seq + 1 and readers can tell they reached
 *      its end; if the log fails meanwhile (fsync error) the reshard is abandoned instead.
 *   3. Back on the origin: apply the steps with the real end_seqs to a clone of the metadata
 *      (children start at max(parents' end_seq) + 1) and commit it (registry.c): the children's
 *      logs are created, the metadata is saved atomically, then the new view is published.
 *   4. Tell each parent's owner the outcome. Published: the waiting parts go back to their
 *      origin, which routes their records again with the new view (to the children). Abandoned
 *      (a seal or the commit failed): the parent is unsealed and the waiting parts are appended
 *      to it as if nothing happened. Then the lock is released and the client answered.
 *
 * A crash before the metadata rename leaves the old metadata (the parents open: nothing was
 * appended anywhere else, and an orphan child folder is recreated by the next attempt); after it,
 * the new metadata, whose parents hold exactly the records up to their end_seq that were made
 * durable. The admin work (the metadata fsync) blocks the origin loop briefly, as every admin
 * request does.
 */
#include "server/server.h"

#include "server/consumers.h"
#include "stream/reshard_plan.h"

#include "common/clock.h"
#include "common/logging.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reshard_job;

struct seal_msg {
	struct sl_op op;
	struct reshard_job *job;
	struct sl_shard *shard;
	struct seal_msg *next_waiting; /* owner only: sealed, waiting for durability */
	int status;		       /* the seal's outcome */
	uint64_t end_seq;	       /* the sealed shard's last sequence number */
	bool published;		       /* the outcome the owner is told in step 4 */
};

struct reshard_job {
	struct sl_conn *conn;
	struct sl_frame_header h;
	struct sl_worker *w;
	struct sl_stream *s;
	struct sl_reshard_step *steps;
	size_t nsteps;
	struct seal_msg *msgs;
	uint32_t nmsgs;
	uint32_t pending;
	int status;
	char msg[SL_STREAM_MSG_LEN];
	uint32_t child_ids[2];
	uint32_t open_after;
};

static void job_done(struct reshard_job *job)
{
	struct sl_conn *c = job->conn;
	if (sl_conn_is_closed(c)) {
		/* the client left; the reshard stands (or not) all the same */
	} else if (job->status < 0) {
		sl_reply_error(c, &job->h, job->status, "%s",
			       job->msg[0] ? job->msg : sluice_strerror(job->status));
	} else {
		struct sl_buf *out = sl_conn_out(c);
		size_t start;
		int r =
		    sl_proto_encode_response_head(out, job->h.opcode, job->h.request_id, 0, &start);
		if (job->h.opcode == SL_OP_STREAM_SPLIT) {
			r = r ?: sl_buf_put_u32(out, job->child_ids[0]);
			r = r ?: sl_buf_put_u32(out, job->child_ids[1]);
		} else if (job->h.opcode == SL_OP_STREAM_MERGE) {
			r = r ?: sl_buf_put_u32(out, job->child_ids[0]);
		} else {
			r = r ?: sl_buf_put_u32(out, job->open_after);
		}
		if (r < 0) {
			sl_conn_close(c, false);
		} else {
			sl_proto_finish_frame(out, start);
			sl_conn_flush(c);
		}
	}
	sl_registry_reshard_end(job->s);
	sl_conn_release(c, 0);
	sl_stream_unref(job->s);
	sl_worker_request_end(job->w);
	free(job->steps);
	free(job->msgs);
	free(job);
}

/* ---- step 4: the outcome, on each parent's owner ---- */

static void outcome_back(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct seal_msg *m = (struct seal_msg *)op;
	if (--m->job->pending == 0)
		job_done(m->job);
}

static void outcome_on_owner(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct seal_msg *m = (struct seal_msg *)op;
	struct sl_worker *owner = sl_worker_of_loop(loop);
	if (!m->published) {
		sl_shard_lock(m->shard);
		m->shard->sealed = false;
		sl_shard_unlock(m->shard);
	}
	sl_produce_unpark(owner, m->shard, m->published);
	m->op.complete = outcome_back;
	sl_loop_post(loop, m->job->w->loop, &m->op);
}

static void tell_owners(struct reshard_job *job, bool published)
{
	struct sl_server *srv = job->w->srv;
	job->pending = 1; /* held until every message is out */
	for (uint32_t i = 0; i < job->nmsgs; i++) {
		struct seal_msg *m = &job->msgs[i];
		if (m->status == SLUICE_ERR_SHARD_CLOSED)
			continue; /* sealed by someone else: not ours to unseal */
		/* Sealed, also when it failed afterwards: parts may wait there. */
		m->published = published;
		m->op.complete = outcome_on_owner;
		job->pending++;
		sl_loop_post(job->w->loop, srv->workers[m->shard->owner].loop, &m->op);
	}
	if (--job->pending == 0)
		job_done(job);
}

/* ---- step 3: commit, on the origin ---- */

static void commit(struct reshard_job *job)
{
	struct sl_server *srv = job->w->srv;
	struct sl_reshard_seal *seals = calloc(job->nmsgs, sizeof(*seals));
	struct sl_stream_meta *meta = NULL;
	int r = seals ? sl_stream_meta_clone(sl_stream_view(job->s)->meta, &meta) : -ENOMEM;
	for (uint32_t i = 0; r == 0 && i < job->nmsgs; i++)
		seals[i] = (struct sl_reshard_seal){.shard_id = job->msgs[i].shard->id,
						    .end_seq = job->msgs[i].end_seq};
	uint32_t first_new_id = meta ? meta->next_shard_id : 0;
	if (r == 0)
		r = sl_reshard_apply(meta, job->steps, job->nsteps, seals, job->nmsgs,
				     job->child_ids, job->msg, sizeof(job->msg));
	if (r == 0)
		sl_stream_meta_stamp_reshard(meta, first_new_id, sl_wall_ms());
	free(seals);
	if (r == 0) {
		job->open_after = (uint32_t)sl_stream_meta_open_shard_count(meta);
		r = sl_registry_reshard_commit(srv->registry, job->s, meta, job->msg,
					       sizeof(job->msg));
		meta = NULL; /* commit owns it */
	}
	sl_stream_meta_destroy(meta);
	if (r < 0) {
		job->status = r;
		SL_ERROR("stream %s: reshard abandoned: %s", job->s->name,
			 job->msg[0] ? job->msg : sluice_strerror(r));
		sl_counter_add(&job->w->m.reshards_failed, 1);
		tell_owners(job, false);
		return;
	}
	SL_INFO("stream %s resharded (%zu step%s): %u open shards", job->s->name, job->nsteps,
		job->nsteps == 1 ? "" : "s", job->open_after);
	sl_counter_add(&job->w->m.reshards, 1);
	if (srv->consumers)
		sl_consumers_stream_resharded(srv->consumers, job->s);
	sl_stream_cache_refresh(&job->w->cache, srv->registry);
	tell_owners(job, true);
}

/* ---- step 2: seal, on each parent's owner ---- */

static void seal_back(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct seal_msg *m = (struct seal_msg *)op;
	struct reshard_job *job = m->job;
	if (m->status < 0 && job->status == 0) {
		job->status = m->status;
		snprintf(job->msg, sizeof(job->msg), "shard %u cannot be sealed: %s", m->shard->id,
			 sluice_strerror(m->status));
	}
	if (--job->pending)
		return;
	if (job->status < 0) {
		SL_WARN("stream %s: reshard abandoned: %s", job->s->name, job->msg);
		sl_counter_add(&job->w->m.reshards_failed, 1);
		tell_owners(job, false);
	} else {
		commit(job);
	}
}

/* Answer a seal once sh's records are all durable (or its log failed). Owner only. */
static bool seal_settled(struct sl_loop *loop, struct seal_msg *m)
{
	struct sl_shard *sh = m->shard;
	struct sl_shard_log_stats st;
	sl_shard_lock(sh);
	bool open = sh->log != NULL;
	if (open)
		sl_shard_log_stats(sh->log, &st);
	sl_shard_unlock(sh);
	if (!open || atomic_load(&sh->stream->deleted)) {
		m->status = SLUICE_ERR_STREAM_NOT_FOUND;
	} else if (st.failed || atomic_load(&sh->failed)) {
		m->status = SLUICE_ERR_UNAVAILABLE;
	} else if (st.durable_seq < st.next_seq) {
		return false; /* appends still on their way to disk */
	} else {
		m->end_seq = st.next_seq - 1;
		m->status = 0;
	}
	/* On failure sh stays sealed until the outcome message unseals it and appends what
	 * waited, in arrival order. */
	m->op.complete = seal_back;
	sl_loop_post(loop, m->job->w->loop, &m->op);
	return true;
}

static void seal_on_owner(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct seal_msg *m = (struct seal_msg *)op;
	struct sl_shard *sh = m->shard;
	struct sl_worker *owner = sl_worker_of_loop(loop);
	if (sh->sealed) {
		m->status = SLUICE_ERR_SHARD_CLOSED; /* the reshard lock makes this unreachable */
		m->op.complete = seal_back;
		sl_loop_post(loop, m->job->w->loop, &m->op);
		return;
	}
	/* From here on no append to sh: a loop appending directly checks sealed under the lock,
	 * and seal_settled waits for what was appended before to be acknowledged. */
	sl_shard_lock(sh);
	sh->sealed = true;
	sl_shard_unlock(sh);
	if (seal_settled(loop, m))
		return;
	m->next_waiting = owner->seals_waiting;
	owner->seals_waiting = m;
}

void sl_reshard_tick(struct sl_worker *w)
{
	struct seal_msg **pp = (struct seal_msg **)&w->seals_waiting;
	while (*pp) {
		struct seal_msg *m = *pp;
		if (seal_settled(w->loop, m))
			*pp = m->next_waiting;
		else
			pp = &m->next_waiting;
	}
}

/* ---- step 1: the request ---- */

static int plan(struct sl_worker *w, const struct sl_req_reshard *q, struct sl_stream *s,
		struct reshard_job *job)
{
	const struct sl_stream_meta *meta = sl_stream_view(s)->meta;
	switch (job->h.opcode) {
	case SL_OP_STREAM_SPLIT:
	case SL_OP_STREAM_MERGE:
		job->steps = calloc(1, sizeof(*job->steps));
		if (!job->steps)
			return -ENOMEM;
		job->nsteps = 1;
		job->steps[0] = (struct sl_reshard_step){
		    .kind =
			job->h.opcode == SL_OP_STREAM_SPLIT ? SL_RESHARD_SPLIT : SL_RESHARD_MERGE,
		    .shard_id = q->shard_id,
		    .adjacent_id = q->adjacent_id,
		    .start_key = sl_hash_key_to_u128(&q->start_hash),
		};
		return 0;
	default:
		return sl_reshard_plan_scale(meta, q->target, &job->steps, &job->nsteps, job->msg,
					     sizeof(job->msg));
	}
}

void sl_handle_reshard(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		       const uint8_t *body, size_t len)
{
	struct sl_req_reshard q;
	int r = sl_proto_decode_reshard(h->opcode, body, len, &q);
	if (r < 0) {
		sl_reply_error(c, h, r, "malformed reshard request");
		return;
	}
	struct sl_stream *s = sl_worker_find_stream(w, q.stream.p, q.stream.len);
	if (!s) {
		sl_reply_error(c, h, SLUICE_ERR_STREAM_NOT_FOUND, "stream %.*s not found",
			       (int)q.stream.len, q.stream.p);
		return;
	}
	r = sl_registry_reshard_begin(s);
	if (r < 0) {
		sl_reply_error(c, h, r, "stream %s: %s", s->name,
			       r == SLUICE_ERR_RESOURCE_IN_USE ? "another reshard is running"
							       : sluice_strerror(r));
		return;
	}
	struct reshard_job *job = calloc(1, sizeof(*job));
	if (!job) {
		sl_registry_reshard_end(s);
		sl_reply_error(c, h, SLUICE_ERR_THROTTLED, "out of memory, retry later");
		return;
	}
	job->conn = c;
	job->h = *h;
	job->w = w;
	job->s = s;
	sl_stream_ref(s);
	sl_conn_hold(c, 0);
	sl_worker_request_begin(w);
	r = plan(w, &q, s, job);
	uint32_t *ids = NULL;
	if (r == 0) {
		ids = calloc(job->nsteps * 2 + 1, sizeof(*ids));
		r = ids ? sl_reshard_touched(sl_stream_view(s)->meta, job->steps, job->nsteps, ids,
					     job->msg, sizeof(job->msg))
			: -ENOMEM;
	}
	if (r > 0) {
		job->msgs = calloc((size_t)r, sizeof(*job->msgs));
		if (!job->msgs)
			r = -ENOMEM;
	}
	if (r <= 0) {
		free(ids);
		job->status = r;
		if (r == 0) /* nothing to do: already uniform at that count */
			job->open_after =
			    (uint32_t)sl_stream_meta_open_shard_count(sl_stream_view(s)->meta);
		job_done(job);
		return;
	}
	job->nmsgs = (uint32_t)r;
	job->pending = job->nmsgs;
	for (uint32_t i = 0; i < job->nmsgs; i++) {
		struct seal_msg *m = &job->msgs[i];
		m->job = job;
		m->shard = sl_stream_shard(s, ids[i]);
		m->op.complete = seal_on_owner;
	}
	free(ids);
	for (uint32_t i = 0; i < job->nmsgs; i++)
		sl_loop_post(w->loop, w->srv->workers[job->msgs[i].shard->owner].loop,
			     &job->msgs[i].op);
}
