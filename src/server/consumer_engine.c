/*
 * The per-shard consumer workers. Everything here runs on the loop that owns the shard, in that
 * loop's tick, so a worker reads its shard's log directly and needs no lock for its state.
 *
 * A cycle: fetch a window of acknowledged records (batch size x parallelism, at most 6 MiB per
 * lane's worth, after the batching window), split it into lanes by partition key, and deliver
 * each lane's records in order, one delivery per lane at a time. A lane's failed delivery is
 * retried with capped exponential backoff, bisected (--bisect-on-error), or given up on (the
 * on-failure stream, durably, or dropped and counted) once --max-retries, --max-record-age or
 * the stream's retention says so. The checkpoint is the record before the lowest unfinished one
 * across lanes; the next window is fetched once every lane finished. A reset bumps the epoch so
 * results still out are ignored when they come back.
 */
#include "server/consumer_internal.h"

#include "server/consumer_firehose.h"

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

/*
 * How long a fetch keeps its shard watched (sl_shard_watch): loops appending to the shard
 * directly tell the owner meanwhile. An idle consumer fetches at every tick (100 ms at most).
 */
#define CONSUMER_WATCH_MS 1000

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

static bool lane_done(const struct sl_lane *l)
{
	return l->pos >= l->len && !l->inflight && !l->handing_off;
}

/* The checkpoint: just before the lowest record not finished in any lane. */
static void update_checkpoint(struct sl_cshard *s)
{
	struct sl_window *win = s->window;
	if (!win)
		return;
	uint64_t lowest = UINT64_MAX;
	for (uint32_t i = 0; i < s->nlanes; i++) {
		const struct sl_lane *l = &s->lanes[i];
		if (l->pos < l->len && win->recs[l->off + l->pos].seq < lowest)
			lowest = win->recs[l->off + l->pos].seq;
	}
	if (lowest == UINT64_MAX)
		sl_cshard_set_checkpoint(s, win->last_seq);
	else if (lowest > 1)
		sl_cshard_set_checkpoint(s, lowest - 1);
}

void sl_cshard_clear(struct sl_cshard *s)
{
	s->epoch++;
	sl_window_unref(s->window);
	s->window = NULL;
	for (uint32_t i = 0; i < s->nlanes; i++) {
		struct sl_lane *l = &s->lanes[i];
		/* A delivery still out is stale: a runner busy with it is abandoned (it must not
		 * be handed the next batch while its call runs); a remote one comes back with the
		 * old epoch and is dropped then. */
		if (l->inflight && l->runner) {
			sl_runner_abandon(l->runner);
			l->runner = NULL;
		}
		l->inflight = NULL;
		l->off = l->len = l->pos = 0;
		l->cap = sl_consumer_delivery_cap(&s->c->cfg);
		l->attempt = 0;
		l->retry_at_ms = 0;
		l->handing_off = false;
		l->give_up_reason = NULL;
		l->to_errors = false;
		l->first_failure_ms = 0;
	}
	s->window_start_ms = 0;
	sl_cshard_set_state(s, SL_CSHARD_IDLE);
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
			n += cs->list[i]->shards[k]->owner == w->id;
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
			if (cs->list[i]->shards[k]->owner == w->id)
				list[at++] = cs->list[i]->shards[k];
	}
	size_t held_count = cs->count;
	pthread_mutex_unlock(&cs->mu);
	/* Consumers that left: stop their runners here, on their owner loop. */
	for (size_t i = 0; i < v->count; i++) {
		struct sl_cshard *s = v->cshards[i];
		if (!atomic_load(&s->c->deleted))
			continue;
		for (uint32_t l = 0; l < s->nlanes; l++) {
			sl_runner_destroy(s->lanes[l].runner);
			s->lanes[l].runner = NULL;
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
	uint32_t lane;
	uint64_t epoch;
	uint32_t count;
};

static void handoff_done(void *ctx, int status, uint32_t failed)
{
	struct handoff *h = ctx;
	struct sl_cshard *s = h->s;
	if (h->epoch == s->epoch && !atomic_load(&s->c->deleted)) {
		struct sl_lane *l = &s->lanes[h->lane];
		l->handing_off = false;
		if (status == 0) {
			atomic_fetch_add(&s->st.sent_to_on_failure, h->count);
			l->pos += h->count;
			l->attempt = 0;
			l->give_up_reason = NULL;
			update_checkpoint(s);
		} else {
			/* Keep the records and try the hand-off again after a pause. */
			sl_cshard_set_error(s, "on-failure stream %s refused %u records: %s",
					    s->c->cfg.on_failure, failed, sluice_strerror(status));
			l->retry_at_ms = sl_wall_ms() + BACKOFF_CAP_MS / 10;
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
	json_t *o =
	    json_pack("{s:s, s:s, s:s, s:s, s:I, s:s%, s:s, s:s, s:s, s:i}", "consumer",
		      s->c->cfg.name, "stream", s->c->cfg.stream, "shard", shard, "seq", seq, "ts",
		      (json_int_t)r->ts_ms, "key", r->key, (size_t)r->key_len, "data", b64,
		      "reason", reason, "error", error, "attempts", (int)attempts);
	free(b64);
	if (!o)
		return NULL;
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

/* Give up on the lane's next count records: hand them to the on-failure stream, or drop them. */
static void give_up(struct sl_worker *w, struct sl_cshard *s, struct sl_lane *l, uint32_t count,
		    const char *reason, const char *error)
{
	const struct sluice_handler_record *recs = s->window->recs + l->off + l->pos;
	l->give_up_reason = reason;
	l->give_up_count = count;
	if (error != l->give_up_error)
		snprintf(l->give_up_error, sizeof(l->give_up_error), "%s", error);
	if (!s->c->cfg.on_failure[0] && s->c->cfg.handler_kind == SL_HANDLER_FIREHOSE) {
		/* Keep them: the next delivery stores them under errors/ (retried until it can). */
		SL_WARN("firehose %s shard %u: %u records (seq %llu..) go to errors/: %s: %s",
			s->c->cfg.name, s->shard->id, count, (unsigned long long)recs[0].seq,
			reason, error);
		l->to_errors = true;
		l->retry_at_ms = 0;
		return;
	}
	if (!s->c->cfg.on_failure[0]) {
		SL_WARN("consumer %s shard %u: dropping %u records (seq %llu..): %s: %s",
			s->c->cfg.name, s->shard->id, count, (unsigned long long)recs[0].seq,
			reason, error);
		atomic_fetch_add(&s->st.expired, count);
		l->pos += count;
		l->attempt = 0;
		l->give_up_reason = NULL;
		update_checkpoint(s);
		return;
	}
	struct sl_stream *dst =
	    sl_worker_find_stream(w, s->c->cfg.on_failure, strlen(s->c->cfg.on_failure));
	struct sl_record_in *in = calloc(count, sizeof(*in));
	char **texts = calloc(count, sizeof(*texts));
	struct handoff *h = calloc(1, sizeof(*h));
	int r = (!dst) ? SLUICE_ERR_STREAM_NOT_FOUND : (!in || !texts || !h) ? -ENOMEM : 0;
	for (uint32_t i = 0; r == 0 && i < count; i++) {
		/* attempts: deliveries of these records, the first one included */
		texts[i] = failure_record(s, &recs[i], reason, l->give_up_error, l->attempt + 1);
		if (!texts[i]) {
			r = -ENOMEM;
			break;
		}
		in[i] = (struct sl_record_in){
		    .key = (const uint8_t *)recs[i].key,
		    .key_len = (uint16_t)recs[i].key_len,
		    .data = (const uint8_t *)texts[i],
		    .data_len = (uint32_t)strlen(texts[i]),
		};
	}
	if (r == 0) {
		*h = (struct handoff){
		    .s = s, .lane = (uint32_t)(l - s->lanes), .epoch = s->epoch, .count = count};
		sl_consumer_ref(s->c);
		r = sl_produce_internal(w, dst, in, count, handoff_done, h);
		if (r < 0)
			sl_consumer_unref(s->c);
	}
	for (uint32_t i = 0; texts && i < count; i++)
		free(texts[i]);
	free(texts);
	free(in);
	if (r < 0) {
		free(h);
		sl_cshard_set_error(s, "cannot hand records to on-failure stream %s: %s",
				    s->c->cfg.on_failure, sluice_strerror(r));
		l->retry_at_ms = sl_wall_ms() + BACKOFF_CAP_MS / 10;
		return;
	}
	l->handing_off = true;
}

/* ---- results ---- */

/* The lane's delivery of count records failed with message. */
static void on_failure(struct sl_worker *w, struct sl_cshard *s, struct sl_lane *l, uint32_t count,
		       const char *message, int64_t now)
{
	const struct sl_consumer_config *cfg = &s->c->cfg;
	const struct sluice_handler_record *recs = s->window->recs + l->off + l->pos;
	atomic_fetch_add(&s->st.batches_failed, 1);
	if (cfg->handler_kind == SL_HANDLER_FIREHOSE)
		atomic_fetch_add(&s->st.upload_failures, 1);
	sl_cshard_set_error(s, "%s", message);
	if (!l->first_failure_ms)
		l->first_failure_ms = now;
	int64_t oldest_ts = recs[0].ts_ms;
	int64_t retention = sl_stream_view(s->c->stream)->meta->retention_ms;
	bool expired = now - oldest_ts >= retention;
	bool too_old = cfg->max_record_age_s >= 0 && now - oldest_ts > cfg->max_record_age_s * 1000;
	bool exhausted = cfg->max_retries >= 0 && l->attempt >= (uint32_t)cfg->max_retries;
	if (cfg->handler_kind == SL_HANDLER_FIREHOSE && cfg->firehose.max_retry_duration_ms >= 0 &&
	    now - l->first_failure_ms >= cfg->firehose.max_retry_duration_ms)
		exhausted = true;
	if (cfg->bisect_on_error && count > 1 && !expired && !too_old) {
		/* Halve and deliver the first half now; the lane keeps the smaller size. */
		l->cap = (count + 1) / 2;
		l->retry_at_ms = now;
		atomic_fetch_add(&s->st.retries, 1);
		return;
	}
	if (expired || too_old || exhausted) {
		give_up(w, s, l, count,
			expired	  ? "expired"
			: too_old ? "max_record_age"
				  : "max_retries",
			message);
		return;
	}
	l->attempt++;
	atomic_fetch_add(&s->st.retries, 1);
	l->retry_at_ms = now + backoff_ms(l->attempt);
}

static void batch_done(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct sl_batch *b = (struct sl_batch *)op;
	struct sl_cshard *s = b->cshard;
	struct sl_lane *l = &s->lanes[b->lane];
	struct sl_worker *w = sl_worker_of_loop(loop);
	if (l->inflight != b || b->epoch != s->epoch || atomic_load(&s->c->deleted)) {
		/* Abandoned (timeout), reset or deleted meanwhile. */
		if (l->inflight == b)
			l->inflight = NULL;
		sl_batch_destroy(b); /* releases the delivery's consumer reference */
		return;
	}
	l->inflight = NULL;
	int64_t now = sl_wall_ms();
	uint32_t count = (uint32_t)b->hb.count;
	if (b->to_errors) {
		if (b->invoke_status == 0 && b->result.status == SLUICE_HANDLER_OK) {
			atomic_fetch_add(&s->st.sent_to_on_failure, count);
			l->pos += count;
			l->attempt = 0;
			l->first_failure_ms = 0;
			l->to_errors = false;
			l->give_up_reason = NULL;
			update_checkpoint(s);
		} else {
			/* Nothing is dropped: try the errors/ object again later. */
			sl_cshard_set_error(s, "%s", b->result.message);
			atomic_fetch_add(&s->st.upload_failures, 1);
			l->attempt++;
			l->retry_at_ms = now + backoff_ms(l->attempt);
		}
		sl_batch_destroy(b);
		return;
	}
	uint32_t ok = 0;
	if (b->invoke_status == 0) {
		if (b->result.status == SLUICE_HANDLER_OK)
			ok = count;
		else if (b->result.status == SLUICE_HANDLER_FAILED_FROM)
			ok =
			    b->result.failed_from < count ? (uint32_t)b->result.failed_from : count;
	}
	if (ok) {
		atomic_fetch_add(&s->st.delivered, ok);
		l->pos += ok;
		l->attempt = 0;
		l->first_failure_ms = 0;
		if (s->c->cfg.handler_kind == SL_HANDLER_FIREHOSE) {
			atomic_fetch_add(&s->st.objects_written, 1);
			atomic_fetch_add(&s->st.bytes_written, b->object_bytes);
			atomic_fetch_add(&s->st.records_archived, ok);
			atomic_store(&s->st.last_flush_ms, now);
			pthread_mutex_lock(&s->err_mu);
			snprintf(s->last_object_key, sizeof(s->last_object_key), "%s",
				 b->object_key);
			pthread_mutex_unlock(&s->err_mu);
		}
	}
	if (ok < count) {
		on_failure(w, s, l, count - ok,
			   b->result.message[0] ? b->result.message : "handler failed", now);
	} else if (l->pos >= l->len) {
		l->cap = sl_consumer_delivery_cap(&s->c->cfg); /* bisected region behind us */
	}
	update_checkpoint(s);
	if (ok == count && s->c->cfg.handler_kind == SL_HANDLER_FIREHOSE) {
		/* The sink saved this checkpoint itself once the object was stored: the writer
		 * need not save it again (checkpoint_saved is stored after the checkpoint). */
		uint64_t last = b->hb.records[count - 1].seq;
		if (atomic_load(&s->st.checkpoint) == last)
			atomic_store(&s->checkpoint_saved, last);
	}
	sl_batch_destroy(b);
}

/* ---- delivering ---- */

static void release_consumer(void *ctx)
{
	sl_consumer_unref(ctx);
}

static int ensure_runner(struct sl_cshard *s, struct sl_lane *l)
{
	if (l->runner && l->runner_background != s->background) {
		/* A runner never raises its priority again (that needs privileges): a fresh one,
		 * created by this loop, starts at the loop's priority. Idle here: no delivery out.
		 */
		sl_runner_destroy(l->runner);
		l->runner = NULL;
	}
	if (l->runner)
		return 0;
	const struct sl_consumer_config *cfg = &s->c->cfg;
	const struct sl_server_config *sc = &s->c->owner->srv->cfg;
	struct sl_runner_config rc = {
	    .kind = cfg->handler_kind,
	    .target = cfg->handler_target,
	    .consumer = cfg->name,
	    .stream = cfg->stream,
	    .shard_id = s->shard->id,
	    .timeout_ms = cfg->timeout_ms,
	    .owner = owner_worker(s)->loop,
	    .consumer_cfg = cfg,
	    .data_dir = sc->data_dir,
	};
	if (s->background)
		rc.priority = sc->firehose_priority;
	l->runner_background = s->background;
	return sl_runner_create(&rc, &l->runner);
}

static void deliver(struct sl_worker *w, struct sl_cshard *s, struct sl_lane *l, int64_t now)
{
	uint32_t left = l->len - l->pos;
	uint32_t count = left < l->cap ? left : l->cap;
	if (l->to_errors)
		count = l->give_up_count;
	struct sl_batch *b = sl_batch_create(s->window, l->off + l->pos, count);
	if (!b) {
		l->retry_at_ms = now + 100;
		return;
	}
	b->cshard = s;
	b->lane = (uint32_t)(l - s->lanes);
	b->epoch = s->epoch;
	b->op.complete = batch_done;
	b->dispatched_ms = now;
	b->hb.consumer = s->c->cfg.name;
	b->hb.stream = s->c->cfg.stream;
	b->hb.shard_id = s->shard->id;
	b->hb.attempt = l->attempt;
	b->to_errors = l->to_errors;
	sl_consumer_ref(s->c);
	b->release = release_consumer;
	b->release_ctx = s->c;
	if (s->c->cfg.handler_kind == SL_HANDLER_REMOTE) {
		struct sl_remote *rem = sl_remote_pick(s->c, s->index);
		if (!rem) {
			sl_batch_destroy(b);
			l->retry_at_ms = now + 100; /* nobody attached yet */
			sl_cshard_set_state(s, SL_CSHARD_WAITING_REMOTE);
			return;
		}
		l->inflight = b;
		l->dispatch_count = count;
		sl_remote_deliver(w, rem, b);
		return;
	}
	int r = ensure_runner(s, l);
	if (r < 0) {
		sl_batch_destroy(b);
		sl_cshard_set_error(s, "cannot start a handler thread: %s", sluice_strerror(r));
		l->retry_at_ms = now + BACKOFF_CAP_MS / 10;
		return;
	}
	l->inflight = b;
	l->dispatch_count = count;
	sl_runner_submit(l->runner, b);
}

/* A delivery past its timeout: plugins cannot be interrupted, so abandon the runner. */
static void check_timeout(struct sl_worker *w, struct sl_cshard *s, struct sl_lane *l, int64_t now)
{
	uint32_t limit = s->c->cfg.timeout_ms;
	if (s->c->cfg.handler_kind == SL_HANDLER_EXEC)
		limit += EXEC_TIMEOUT_SLACK_MS; /* the exec handler kills its process itself */
	if (now - l->inflight->dispatched_ms <= (int64_t)limit)
		return;
	/* The runner frees the delivery when its call returns; a remote one comes back and is
	 * dropped by batch_done. */
	l->inflight = NULL;
	if (l->runner)
		sl_runner_abandon(l->runner);
	l->runner = NULL;
	char msg[96];
	snprintf(msg, sizeof(msg), "handler timed out after %u ms", limit);
	on_failure(w, s, l, l->dispatch_count, msg, now);
}

/* Under the shard's lock (fetch). */
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
	if (seq > 1)
		sl_cshard_set_checkpoint(s, seq - 1);
}

/*
 * Whether a firehose's next deliveries yield the CPU (--firehose-cpu-priority). A firehose that
 * keeps up holds records for at most its buffering interval, so the lag that counts is the
 * window's first record's age beyond that interval: past --firehose-background-lag the firehose
 * stops yielding until it is back under half of it (the hysteresis keeps one at the bound from
 * switching at every window). Archiving may thus fall behind while producers saturate the
 * machine, but not without bound; the bound is capped at half the stream's retention so that
 * yielding never lets records expire.
 */
static void update_background(struct sl_cshard *s, int64_t age_ms)
{
	const struct sl_server_config *sc = &s->c->owner->srv->cfg;
	int64_t bound = sc->firehose_background_lag_ms;
	if (bound > 0) {
		int64_t retention = sl_stream_view(s->c->stream)->meta->retention_ms;
		if (bound > retention / 2)
			bound = retention / 2;
		int64_t excess = age_ms - (int64_t)s->c->cfg.firehose.buffer_interval_ms;
		if (excess > bound)
			s->catching_up = true;
		else if (excess <= bound / 2)
			s->catching_up = false;
	}
	s->background = sl_cpu_priority_lowers(&sc->firehose_priority) && !s->catching_up;
	atomic_store_explicit(&s->st.background, s->background, memory_order_relaxed);
}

/* Records (and their estimated bytes, from the log's average frame size) acknowledged but not
 * yet fetched: the lag that describe and /metrics show. Returns the records. */
static uint64_t measure_lag(struct sl_cshard *s, const struct sl_shard_log_stats *st,
			    uint64_t *ret_bytes)
{
	uint64_t avail = st->durable_seq > s->next_seq ? st->durable_seq - s->next_seq : 0;
	uint64_t stored = st->next_seq > st->first_seq ? st->next_seq - st->first_seq : 0;
	*ret_bytes = stored ? avail * (st->bytes / stored) : 0;
	atomic_store_explicit(&s->st.lag_records, avail, memory_order_relaxed);
	return avail;
}

/* While a window is out (a slow handler, or a firehose yielding the CPU), keep the lag and the
 * iterator age current: they are how an operator sees a consumer fall behind. */
static void refresh_lag(struct sl_cshard *s, int64_t now)
{
	struct sl_shard_log_stats st;
	sl_shard_lock(s->shard);
	sl_shard_log_stats(s->shard->log, &st);
	sl_shard_unlock(s->shard);
	uint64_t bytes;
	measure_lag(s, &st, &bytes);
	atomic_store_explicit(&s->st.buffered_bytes, bytes, memory_order_relaxed);
	int64_t oldest = s->window->rb.count ? s->window->rb.records[0].ts_ms : now;
	atomic_store_explicit(&s->st.iterator_age_ms, (uint64_t)(now > oldest ? now - oldest : 0),
			      memory_order_relaxed);
}

static bool fetch_locked(struct sl_cshard *s, int64_t now);

/* Read the next window. Returns true when there is one. */
static bool fetch(struct sl_cshard *s, int64_t now)
{
	sl_shard_lock(s->shard);
	/* Renewed at every fetch (each tick at least): hear of appends by other loops. */
	sl_shard_watch(s->shard, sl_mono_ms() + CONSUMER_WATCH_MS);
	bool got = fetch_locked(s, now);
	sl_shard_unlock(s->shard);
	return got;
}

static bool fetch_locked(struct sl_cshard *s, int64_t now)
{
	struct sl_shard *sh = s->shard;
	if (now < s->fetch_retry_at_ms)
		return false;
	if (!s->resolved)
		resolve_start(s, now);
	if (!s->resolved)
		return false;
	struct sl_shard_log_stats st;
	sl_shard_log_stats(sh->log, &st);
	uint64_t tip = st.durable_seq;
	uint64_t avail_bytes;
	uint64_t avail = measure_lag(s, &st, &avail_bytes);
	if (avail == 0) {
		atomic_store_explicit(&s->st.iterator_age_ms, 0, memory_order_relaxed);
		atomic_store_explicit(&s->st.buffered_bytes, 0, memory_order_relaxed);
		s->window_start_ms = 0;
		return false;
	}
	const struct sl_consumer_config *cfg = &s->c->cfg;
	bool firehose = cfg->handler_kind == SL_HANDLER_FIREHOSE;
	uint32_t want = cfg->batch_size * s->nlanes;
	uint64_t want_bytes = (uint64_t)BATCH_BYTES_MAX * s->nlanes;
	uint32_t window_ms = cfg->batch_window_ms;
	if (firehose) {
		/* Buffering hints: whichever of size and interval comes first closes the object. */
		want = SL_FIREHOSE_RECORDS_MAX;
		want_bytes = cfg->firehose.buffer_bytes;
		window_ms = cfg->firehose.buffer_interval_ms;
		if (!s->pending_checked) {
			/* A crash may have left an object uploaded but not checkpointed: rebuild
			 * exactly its range, so the upload lands on the same key. */
			uint64_t first, last;
			s->pending_checked = true;
			if (sl_firehose_pending_load(s->c->owner->srv->cfg.data_dir, cfg->name,
						     s->shard->id, &first, &last) == 0 &&
			    first == s->next_seq && last >= first)
				s->pending_last = last;
		}
	}
	atomic_store_explicit(&s->st.buffered_bytes, avail_bytes, memory_order_relaxed);
	/* FLUSH covers everything acknowledged when it was asked, window after window. */
	bool flush = s->next_seq < atomic_load(&s->flush_until) || s->pending_last;
	/* A closed shard gets nothing more: write out what it has, its children are waiting. */
	flush |= atomic_load_explicit(&sh->closed, memory_order_relaxed);
	bool full = firehose ? avail_bytes >= want_bytes || avail >= want : avail >= want;
	if (window_ms && !full && !flush) {
		if (!s->window_start_ms)
			s->window_start_ms = now;
		if (now - s->window_start_ms < (int64_t)window_ms)
			return false;
	}
	if (s->pending_last) {
		uint64_t n = s->pending_last - s->next_seq + 1;
		want = n < want ? (uint32_t)n : want;
		want_bytes = UINT32_MAX; /* the range decides, as it did before the crash */
	}
	s->window_start_ms = 0;
	struct sl_window *win = s->spare ? s->spare : sl_window_create();
	s->spare = NULL;
	if (!win)
		return false;
	int r = sl_shard_log_read(sh->log, s->next_seq, want,
				  want_bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)want_bytes, now,
				  &win->rb);
	if (r < 0) {
		sl_cshard_set_error(s, "cannot read the shard: %s", sluice_strerror(r));
		s->spare = win;
		s->fetch_retry_at_ms = now + BACKOFF_CAP_MS / 10;
		return false;
	}
	/* Only acknowledged records (and, rebuilding a pending object, only its range). */
	while (win->rb.count &&
	       (win->rb.records[win->rb.count - 1].seq >= tip ||
		(s->pending_last && win->rb.records[win->rb.count - 1].seq > s->pending_last)))
		win->rb.count--;
	s->pending_last = 0;
	if (win->rb.count == 0) {
		/* Everything from next_seq on expired: move past it. */
		if (win->rb.next_seq > s->next_seq && win->rb.next_seq <= tip) {
			atomic_fetch_add(&s->st.expired, win->rb.next_seq - s->next_seq);
			sl_cshard_set_checkpoint(s, win->rb.next_seq - 1);
			s->next_seq = win->rb.next_seq;
		}
		s->spare = win;
		return false;
	}
	uint64_t first = win->rb.records[0].seq;
	if (first > s->next_seq) /* the records before first expired before we got to them */
		atomic_fetch_add(&s->st.expired, first - s->next_seq);
	int64_t age_ms = now > win->rb.records[0].ts_ms ? now - win->rb.records[0].ts_ms : 0;
	atomic_store_explicit(&s->st.iterator_age_ms, (uint64_t)age_ms, memory_order_relaxed);
	if (firehose)
		update_background(s, age_ms);
	if (sl_window_arrange(win, s->nlanes) < 0) {
		sl_window_unref(win);
		return false;
	}
	s->window = win;
	s->next_seq = win->last_seq + 1;
	for (uint32_t i = 0; i < s->nlanes; i++) {
		struct sl_lane *l = &s->lanes[i];
		l->off = win->lane_off[i];
		l->len = win->lane_len[i];
		l->pos = 0;
		l->attempt = 0;
		l->retry_at_ms = 0;
	}
	return true;
}

/* Whether every parent of s is finished (the KCL's rule: parents before children). */
static bool parents_finished(const struct sl_cshard *s)
{
	for (int k = 0; k < 2; k++) {
		int32_t p = s->parents[k];
		if (p >= 0 && !atomic_load(&s->c->shards[p]->finished))
			return false;
	}
	return true;
}

/*
 * A closed shard is finished once processed up to its end_seq and that checkpoint is saved (the
 * KCL's SHARD_END): only then may its children start, so a crash can never make a handler see
 * a parent's records again after a child's.
 */
static bool check_finished(struct sl_cshard *s)
{
	struct sl_shard *sh = s->shard;
	if (!atomic_load(&sh->closed) || !s->resolved || s->window)
		return false;
	uint64_t end = atomic_load(&sh->end_seq);
	uint64_t saved = atomic_load(&s->checkpoint_saved);
	if (s->next_seq <= end || atomic_load(&s->st.checkpoint) < end || saved < end ||
	    saved == CHECKPOINT_UNSAVED)
		return false;
	/* Under the registry mutex, against a reset marking this lineage unfinished right now
	 * (sl_consumers_reset): finished only with no reset pending and every parent finished. */
	pthread_mutex_t *mu = &s->c->owner->mu;
	pthread_mutex_lock(mu);
	bool done = !atomic_load(&s->c->resets_pending) && parents_finished(s);
	if (done)
		atomic_store(&s->finished, true);
	pthread_mutex_unlock(mu);
	if (!done)
		return false;
	atomic_store_explicit(&s->st.lag_records, 0, memory_order_relaxed);
	atomic_store_explicit(&s->st.iterator_age_ms, 0, memory_order_relaxed);
	atomic_store_explicit(&s->st.buffered_bytes, 0, memory_order_relaxed);
	sl_cshard_set_state(s, SL_CSHARD_FINISHED);
	return true;
}

static void poll_shard(struct sl_worker *w, struct sl_cshard *s, int64_t now)
{
	if (!s->shard->log || atomic_load(&s->c->deleted))
		return;
	/* A reset on its way to its shards' loops: nothing new goes out until all applied it. */
	if (atomic_load_explicit(&s->c->resets_pending, memory_order_acquire))
		return;
	if (atomic_load_explicit(&s->finished, memory_order_relaxed))
		return;
	/* Checked before every step, not only at the start: a reset of a parent (or of an
	 * ancestor) holds back a child that was already delivering. */
	if (!parents_finished(s)) {
		s->waiting_parents = true;
		sl_cshard_set_state(s, SL_CSHARD_WAITING_PARENTS);
		return;
	}
	if (s->waiting_parents) {
		s->waiting_parents = false;
		sl_cshard_set_state(s, SL_CSHARD_IDLE);
	}
	if (s->window) {
		bool all_done = true, busy = false, retrying = false;
		for (uint32_t i = 0; i < s->nlanes; i++) {
			struct sl_lane *l = &s->lanes[i];
			if (l->inflight)
				check_timeout(w, s, l, now);
			if (!l->inflight && !l->handing_off && l->pos < l->len &&
			    now >= l->retry_at_ms) {
				if (l->give_up_reason && !l->to_errors)
					give_up(w, s, l, l->give_up_count, l->give_up_reason,
						l->give_up_error);
				else
					deliver(w, s, l, now);
			}
			all_done &= lane_done(l);
			busy |= l->inflight != NULL || l->handing_off;
			retrying |= l->attempt > 0 || l->give_up_reason != NULL;
		}
		if (!all_done) {
			refresh_lag(s, now);
			int st = atomic_load_explicit(&s->st.state, memory_order_relaxed);
			if (st != SL_CSHARD_WAITING_REMOTE || busy)
				sl_cshard_set_state(s, retrying ? SL_CSHARD_RETRYING
								: SL_CSHARD_DELIVERING);
			return;
		}
		update_checkpoint(s);
		/* Keep the window's buffers for the next fetch when no delivery holds it. */
		if (!s->spare && atomic_load(&s->window->refs) == 1)
			s->spare = s->window;
		else
			sl_window_unref(s->window);
		s->window = NULL;
		sl_cshard_set_state(s, SL_CSHARD_IDLE);
	}
	if (check_finished(s))
		return;
	if (fetch(s, now))
		poll_shard(w, s, now); /* deliver the new window right away */
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
		for (uint32_t l = 0; l < v->cshards[i]->nlanes; l++)
			if (v->cshards[i]->lanes[l].handing_off)
				return true;
	return false;
}
