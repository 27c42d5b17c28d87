/*
 * The per-shard consumer workers. Everything here runs on the loop that owns the shard, in that
 * loop's tick, so the worker reads its shard's log directly and needs no lock for its state.
 *
 * One cycle: fetch the next batch (acknowledged records only, up to the batch size and 6 MiB,
 * after the batching window) -> hand it to the runner -> on the result: move the checkpoint past
 * the records that succeeded; for the rest retry with backoff, bisect, or give up (on-failure
 * stream, or drop and count). A reset bumps the epoch so that results still out are ignored.
 */
#include "server/consumer_internal.h"

#include "common/clock.h"
#include "common/logging.h"
#include "stream/stream_meta.h"

#include <sluice/errors.h>

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct sl_worker *owner_worker(struct sl_cshard *s)
{
	return &s->c->owner->srv->workers[s->owner];
}

static int64_t backoff_ms(uint32_t attempt)
{
	int64_t d = BACKOFF_BASE_MS;
	for (uint32_t i = 1; i < attempt && d < BACKOFF_CAP_MS; i++)
		d *= 2;
	if (d > BACKOFF_CAP_MS)
		d = BACKOFF_CAP_MS;
	/* Equal jitter: between half and all of the delay, so retries of many shards spread. */
	return d / 2 + (int64_t)((uint64_t)random() % (uint64_t)(d / 2 + 1));
}

/* ---- worker views ---- */

static void view_rebuild(struct sl_consumers *cs, struct sl_worker *w)
{
	struct worker_view *v = &cs->views[w->id];
	uint64_t gen = atomic_load_explicit(&cs->generation, memory_order_acquire);
	if (gen == v->generation)
		return;
	pthread_mutex_lock(&cs->mu);
	size_t n = 0;
	for (size_t i = 0; i < cs->count; i++)
		for (uint32_t k = 0; k < cs->list[i]->nshards; k++)
			n += cs->list[i]->shards[k].owner == w->id;
	struct sl_cshard **list = calloc(n ? n : 1, sizeof(*list));
	struct sl_consumer **held = calloc(cs->count ? cs->count : 1, sizeof(*held));
	if (!list || !held) {
		pthread_mutex_unlock(&cs->mu);
		free(list);
		free(held);
		return; /* try again next tick */
	}
	size_t at = 0;
	for (size_t i = 0; i < cs->count; i++) {
		held[i] = cs->list[i];
		sl_consumer_ref(held[i]);
		for (uint32_t k = 0; k < cs->list[i]->nshards; k++)
			if (cs->list[i]->shards[k].owner == w->id)
				list[at++] = &cs->list[i]->shards[k];
	}
	size_t held_count = cs->count;
	pthread_mutex_unlock(&cs->mu);
	/* Consumers that left: stop their runners (on this, their owner loop). */
	for (size_t i = 0; i < v->count; i++) {
		struct sl_cshard *s = v->cshards[i];
		if (atomic_load(&s->c->deleted) && s->runner) {
			sl_runner_destroy(s->runner);
			s->runner = NULL;
		}
	}
	for (size_t i = 0; i < v->held_count; i++)
		sl_consumer_unref(v->held[i]);
	free(v->held);
	free(v->cshards);
	v->cshards = list;
	v->count = at;
	v->held = held;
	v->held_count = held_count;
	v->generation = gen;
}

/* ---- giving up on records ---- */

struct handoff {
	struct sl_cshard *s;
	uint64_t epoch;
	uint64_t last_seq;
	uint32_t count;
};

static void handoff_done(void *ctx, int status, uint32_t failed)
{
	struct handoff *h = ctx;
	struct sl_cshard *s = h->s;
	if (h->epoch == s->epoch && !atomic_load(&s->c->deleted)) {
		s->handing_off = false;
		if (status == 0) {
			atomic_fetch_add(&s->st.sent_to_on_failure, h->count);
			sl_cshard_advance(s, h->last_seq);
			sl_batch_destroy(s->retry);
			s->retry = NULL;
			s->attempt = 0;
			s->give_up_reason = NULL;
			sl_cshard_set_state(s, SL_CSHARD_IDLE);
		} else {
			/* Keep the records and try the hand-off again after a pause. */
			sl_cshard_set_error(s, "on-failure stream %s refused %u records: %s",
					    s->c->cfg.on_failure, failed, sluice_strerror(status));
			s->retry_at_ms = sl_wall_ms() + BACKOFF_CAP_MS / 10;
		}
	}
	sl_consumer_unref(s->c);
	free(h);
}

/* The record stored in the on-failure stream for a record given up on. */
static char *failure_record(const struct sl_cshard *s, const struct sluice_handler_record *r,
			    const char *reason, const char *error, uint32_t attempts)
{
	char shard[SL_SHARD_ID_BUF], seq[24];
	sl_shard_id_format(s->shard->id, shard);
	snprintf(seq, sizeof(seq), "%llu", (unsigned long long)r->seq);
	size_t b64_len = 4 * ((r->data_len + 2) / 3) + 1;
	char *b64 = malloc(b64_len);
	if (!b64)
		return NULL;
	EVP_EncodeBlock((unsigned char *)b64, r->data, (int)r->data_len);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s%, s:s, s:s, s:s, s:i}", "consumer",
			      s->c->cfg.name, "stream", s->c->cfg.stream, "shard", shard, "seq", seq,
			      "ts", (json_int_t)r->ts_ms, "key", r->key, (size_t)r->key_len, "data",
			      b64, "reason", reason, "error", error, "attempts", (int)attempts);
	free(b64);
	if (!o)
		return NULL;
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

/* Give up on the records of b's current view: hand them to the on-failure stream, or drop. */
static void give_up(struct sl_worker *w, struct sl_cshard *s, struct sl_batch *b,
		    const char *reason)
{
	const struct sluice_handler_batch *hb = &b->hb;
	uint64_t last = hb->records[hb->count - 1].seq;
	const char *error = b->result.message[0] ? b->result.message : "handler failed";
	s->give_up_reason = reason;
	if (!s->c->cfg.on_failure[0]) {
		s->give_up_reason = NULL;
		SL_WARN("consumer %s shard %u: dropping %zu records (seq %llu..%llu): %s: %s",
			s->c->cfg.name, s->shard->id, hb->count,
			(unsigned long long)hb->records[0].seq, (unsigned long long)last, reason,
			error);
		atomic_fetch_add(&s->st.expired, hb->count);
		sl_cshard_advance(s, last);
		sl_batch_destroy(b);
		s->retry = NULL;
		s->attempt = 0;
		sl_cshard_set_state(s, SL_CSHARD_IDLE);
		return;
	}
	struct sl_stream *dst =
		sl_worker_find_stream(w, s->c->cfg.on_failure, strlen(s->c->cfg.on_failure));
	struct sl_record_in *recs = calloc(hb->count, sizeof(*recs));
	char **texts = calloc(hb->count, sizeof(*texts));
	struct handoff *h = calloc(1, sizeof(*h));
	int r = (!dst) ? SLUICE_ERR_STREAM_NOT_FOUND : (!recs || !texts || !h) ? -ENOMEM : 0;
	for (size_t i = 0; r == 0 && i < hb->count; i++) {
		const struct sluice_handler_record *rec = &hb->records[i];
		texts[i] = failure_record(s, rec, reason, error, s->attempt);
		if (!texts[i]) {
			r = -ENOMEM;
			break;
		}
		recs[i] = (struct sl_record_in){
			.key = (const uint8_t *)rec->key,
			.key_len = (uint16_t)rec->key_len,
			.data = (const uint8_t *)texts[i],
			.data_len = (uint32_t)strlen(texts[i]),
		};
	}
	if (r == 0) {
		h->s = s;
		h->epoch = s->epoch;
		h->last_seq = last;
		h->count = (uint32_t)hb->count;
		sl_consumer_ref(s->c);
		r = sl_produce_internal(w, dst, recs, (uint32_t)hb->count, handoff_done, h);
		if (r < 0)
			sl_consumer_unref(s->c);
	}
	for (size_t i = 0; texts && i < hb->count; i++)
		free(texts[i]);
	free(texts);
	free(recs);
	s->retry = b; /* kept until the hand-off is durable */
	if (r < 0) {
		free(h);
		sl_cshard_set_error(s, "cannot hand records to on-failure stream %s: %s",
				    s->c->cfg.on_failure, sluice_strerror(r));
		s->retry_at_ms = sl_wall_ms() + BACKOFF_CAP_MS / 10;
		s->handing_off = false;
		sl_cshard_set_state(s, SL_CSHARD_RETRYING);
		return;
	}
	s->handing_off = true;
	sl_cshard_set_state(s, SL_CSHARD_RETRYING);
}

/* ---- results ---- */

static void dispatch(struct sl_worker *w, struct sl_cshard *s, struct sl_batch *b, int64_t now);

static void on_failure(struct sl_worker *w, struct sl_cshard *s, struct sl_batch *b, int64_t now)
{
	const struct sl_consumer_config *cfg = &s->c->cfg;
	const struct sluice_handler_batch *hb = &b->hb;
	atomic_fetch_add(&s->st.batches_failed, 1);
	sl_cshard_set_error(s, "%s", b->result.message[0] ? b->result.message : "handler failed");
	int64_t oldest_ts = hb->records[0].ts_ms;
	int64_t retention = s->c->stream->meta->retention_ms;
	bool expired = now - oldest_ts >= retention;
	bool too_old = cfg->max_record_age_s >= 0 && now - oldest_ts > cfg->max_record_age_s * 1000;
	bool exhausted = cfg->max_retries >= 0 && s->attempt >= (uint32_t)cfg->max_retries;
	if (cfg->bisect_on_error && hb->count > 1 && !expired && !too_old) {
		/* Halve and try the first half now; the cap stays until we pass this batch. */
		size_t half = (hb->count + 1) / 2;
		uint64_t last = hb->records[hb->count - 1].seq;
		if (last > s->bisect_until)
			s->bisect_until = last;
		s->batch_cap = (uint32_t)half;
		size_t first = (size_t)(hb->records - b->recs);
		sl_batch_view(b, first, half);
		atomic_fetch_add(&s->st.retries, 1);
		s->retry = b;
		s->retry_at_ms = now;
		sl_cshard_set_state(s, SL_CSHARD_RETRYING);
		return;
	}
	if (expired || too_old || exhausted) {
		give_up(w, s, b,
			expired ? "expired" : too_old ? "max_record_age" : "max_retries");
		return;
	}
	s->attempt++;
	atomic_fetch_add(&s->st.retries, 1);
	s->retry = b;
	s->retry_at_ms = now + backoff_ms(s->attempt);
	sl_cshard_set_state(s, SL_CSHARD_RETRYING);
}

static void batch_done(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct sl_batch *b = (struct sl_batch *)op;
	struct sl_cshard *s = b->cshard;
	struct sl_worker *w = sl_worker_of_loop(loop);
	if (s->inflight != b) {
		sl_batch_destroy(b); /* abandoned earlier, came back anyway */
		return;
	}
	s->inflight = NULL;
	if (b->epoch != s->epoch || atomic_load(&s->c->deleted)) {
		sl_batch_destroy(b);
		sl_cshard_set_state(s, SL_CSHARD_IDLE);
		sl_consumer_unref(s->c);
		return;
	}
	int64_t now = sl_wall_ms();
	const struct sluice_handler_batch *hb = &b->hb;
	size_t ok = 0;
	if (b->invoke_status == 0) {
		if (b->result.status == SLUICE_HANDLER_OK)
			ok = hb->count;
		else if (b->result.status == SLUICE_HANDLER_FAILED_FROM)
			ok = b->result.failed_from < hb->count ? b->result.failed_from : hb->count;
	}
	if (ok) {
		atomic_fetch_add(&s->st.delivered, ok);
		sl_cshard_advance(s, hb->records[ok - 1].seq);
	}
	if (ok == hb->count) {
		s->attempt = 0;
		if (s->batch_cap < s->c->cfg.batch_size && s->next_seq > s->bisect_until)
			s->batch_cap = s->c->cfg.batch_size;
		sl_batch_destroy(b);
		sl_cshard_set_state(s, SL_CSHARD_IDLE);
	} else {
		size_t first = (size_t)(hb->records - b->recs) + ok;
		sl_batch_view(b, first, hb->count - ok);
		on_failure(w, s, b, now);
	}
	sl_consumer_unref(s->c);
}

/* ---- fetching and dispatching ---- */

static int ensure_runner(struct sl_cshard *s)
{
	if (s->runner)
		return 0;
	const struct sl_consumer_config *cfg = &s->c->cfg;
	struct sl_runner_config rc = {
		.kind = cfg->handler_kind,
		.target = cfg->handler_target,
		.consumer = cfg->name,
		.stream = cfg->stream,
		.shard_id = s->shard->id,
		.timeout_ms = cfg->timeout_ms,
		.owner = owner_worker(s)->loop,
	};
	return sl_runner_create(&rc, &s->runner);
}

static void dispatch(struct sl_worker *w, struct sl_cshard *s, struct sl_batch *b, int64_t now)
{
	b->cshard = s;
	b->epoch = s->epoch;
	b->op.complete = batch_done;
	b->dispatched_ms = now;
	b->invoke_status = 0;
	b->hb.consumer = s->c->cfg.name;
	b->hb.stream = s->c->cfg.stream;
	b->hb.shard_id = s->shard->id;
	b->hb.attempt = s->attempt;
	if (s->c->cfg.handler_kind == SL_HANDLER_REMOTE) {
		struct sl_remote *rem = sl_remote_pick(s->c, (uint32_t)(s - s->c->shards));
		if (!rem) {
			/* Nobody attached: keep the batch and wait. */
			s->retry = b;
			s->retry_at_ms = now + 100;
			sl_cshard_set_state(s, SL_CSHARD_WAITING_REMOTE);
			return;
		}
		s->inflight = b;
		sl_consumer_ref(s->c);
		sl_cshard_set_state(s, SL_CSHARD_DELIVERING);
		sl_remote_deliver(w, rem, b);
		return;
	}
	int r = ensure_runner(s);
	if (r < 0) {
		sl_cshard_set_error(s, "cannot start a handler thread: %s", sluice_strerror(r));
		s->retry = b;
		s->retry_at_ms = now + BACKOFF_CAP_MS / 10;
		return;
	}
	s->inflight = b;
	sl_consumer_ref(s->c);
	sl_cshard_set_state(s, SL_CSHARD_DELIVERING);
	sl_runner_submit(s->runner, b);
}

static void resolve_start(struct sl_cshard *s, int64_t now)
{
	uint64_t seq;
	int r = sl_shard_log_seek(s->shard->log, &s->c->cfg.start, now, &seq);
	if (r < 0) {
		sl_cshard_set_error(s, "cannot resolve the start position: %s", sluice_strerror(r));
		return;
	}
	s->next_seq = seq;
	s->resolved = true;
	if (seq > 1 && atomic_load(&s->st.checkpoint) < seq - 1)
		atomic_store(&s->st.checkpoint, seq - 1);
}

static void poll_shard(struct sl_worker *w, struct sl_cshard *s, int64_t now)
{
	struct sl_shard *sh = s->shard;
	if (!sh->log || atomic_load(&s->c->deleted))
		return;
	if (s->inflight) {
		/* A plugin cannot be interrupted: past its timeout, abandon its thread. */
		uint32_t limit = s->c->cfg.timeout_ms;
		if (s->c->cfg.handler_kind == SL_HANDLER_EXEC)
			limit += EXEC_TIMEOUT_SLACK_MS;
		if (now - s->inflight->dispatched_ms > (int64_t)limit) {
			struct sl_batch *lost = s->inflight;
			uint64_t first = lost->hb.records[0].seq;
			uint32_t count = (uint32_t)lost->hb.count;
			s->inflight = NULL;
			/* A runner frees the batch; a remote batch comes back later and is dropped. */
			if (s->runner)
				sl_runner_abandon(s->runner);
			s->runner = NULL;
			sl_consumer_unref(s->c);
			/* Read the same records again and treat the timeout like any failure. */
			struct sl_batch *b = sl_batch_create();
			if (!b || sl_shard_log_read(sh->log, first, count, BATCH_BYTES_MAX, now, &b->rb) < 0 ||
			    b->rb.count == 0 || sl_batch_view(b, 0, b->rb.count) < 0) {
				sl_batch_destroy(b);
				s->next_seq = first;
				sl_cshard_set_error(s, "handler timed out after %u ms", limit);
				sl_cshard_set_state(s, SL_CSHARD_IDLE);
				return;
			}
			snprintf(b->result.message, sizeof(b->result.message),
				 "handler timed out after %u ms", limit);
			b->result.status = SLUICE_HANDLER_ERROR;
			b->invoke_status = SLUICE_ERR_TIMEOUT;
			on_failure(w, s, b, now);
		}
		return;
	}
	if (s->handing_off)
		return;
	if (s->retry) {
		if (now < s->retry_at_ms)
			return;
		struct sl_batch *b = s->retry;
		if (s->give_up_reason) {
			give_up(w, s, b, s->give_up_reason); /* the hand-off failed before: again */
			return;
		}
		s->retry = NULL;
		dispatch(w, s, b, now);
		return;
	}
	if (s->retry_at_ms > now)
		return; /* a read failed: wait before trying again */
	if (!s->resolved)
		resolve_start(s, now);
	if (!s->resolved)
		return;
	struct sl_shard_log_stats st;
	sl_shard_log_stats(sh->log, &st);
	uint64_t tip = st.durable_seq;
	uint64_t avail = tip > s->next_seq ? tip - s->next_seq : 0;
	atomic_store_explicit(&s->st.lag_records, avail, memory_order_relaxed);
	if (avail == 0) {
		atomic_store_explicit(&s->st.iterator_age_ms, 0, memory_order_relaxed);
		s->window_start_ms = 0;
		return;
	}
	uint32_t cap = s->batch_cap ? s->batch_cap : s->c->cfg.batch_size;
	if (s->c->cfg.batch_window_ms && avail < cap) {
		if (!s->window_start_ms)
			s->window_start_ms = now;
		if (now - s->window_start_ms < (int64_t)s->c->cfg.batch_window_ms)
			return;
	}
	s->window_start_ms = 0;
	struct sl_batch *b = sl_batch_create();
	if (!b)
		return;
	int r = sl_shard_log_read(sh->log, s->next_seq, cap, BATCH_BYTES_MAX, now, &b->rb);
	if (r < 0) {
		sl_cshard_set_error(s, "cannot read the shard: %s", sluice_strerror(r));
		sl_batch_destroy(b);
		s->retry_at_ms = now + BACKOFF_CAP_MS / 10;
		return;
	}
	/* Keep only acknowledged records. */
	while (b->rb.count && b->rb.records[b->rb.count - 1].seq >= tip)
		b->rb.count--;
	if (b->rb.count == 0) {
		/* Everything from next_seq on expired: move past it. */
		if (b->rb.next_seq > s->next_seq && b->rb.next_seq <= tip) {
			atomic_fetch_add(&s->st.expired, b->rb.next_seq - s->next_seq);
			sl_cshard_advance(s, b->rb.next_seq - 1);
		}
		sl_batch_destroy(b);
		return;
	}
	uint64_t first = b->rb.records[0].seq;
	if (first > s->next_seq) {
		/* The records before first expired before we got to them. */
		atomic_fetch_add(&s->st.expired, first - s->next_seq);
		s->next_seq = first;
	}
	atomic_store_explicit(&s->st.iterator_age_ms,
			      (uint64_t)(now > b->rb.records[0].ts_ms ? now - b->rb.records[0].ts_ms : 0),
			      memory_order_relaxed);
	if (sl_batch_view(b, 0, b->rb.count) < 0) {
		sl_batch_destroy(b);
		return;
	}
	s->retry_at_ms = 0;
	dispatch(w, s, b, now);
}

void sl_consumers_tick(struct sl_worker *w, int64_t now_ms)
{
	struct sl_consumers *cs = w->srv->consumers;
	if (!cs)
		return;
	view_rebuild(cs, w);
	if (atomic_load_explicit(&w->srv->draining, memory_order_relaxed))
		return; /* no new deliveries while shutting down; checkpoints stay where they are */
	struct worker_view *v = &cs->views[w->id];
	for (size_t i = 0; i < v->count; i++)
		poll_shard(w, v->cshards[i], now_ms);
}

bool sl_consumers_busy(struct sl_worker *w)
{
	struct sl_consumers *cs = w->srv->consumers;
	if (!cs)
		return false;
	struct worker_view *v = &cs->views[w->id];
	for (size_t i = 0; i < v->count; i++)
		if (v->cshards[i]->handing_off)
			return true;
	return false;
}
