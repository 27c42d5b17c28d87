/*
 * The consumer engine: registrations, per-shard workers on their owner loops, retries, the
 * on-failure hand-off and checkpoints. See consumers.h for the model.
 */
#include "server/consumer_internal.h"

#include "common/clock.h"
#include "common/logging.h"
#include "consumer/checkpoint.h"
#include "server/consumer_runner.h"
#include "stream/stream_meta.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl_consumer_ref(struct sl_consumer *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void sl_consumer_unref(struct sl_consumer *c)
{
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	uint32_t n = atomic_load(&c->nshards);
	for (uint32_t i = 0; i < n; i++) {
		for (uint32_t l = 0; l < SL_CONSUMER_PARALLELISM_MAX; l++)
			sl_runner_destroy(c->shards[i]->lanes[l].runner);
		sl_window_unref(c->shards[i]->window);
		sl_window_unref(c->shards[i]->spare);
		pthread_mutex_destroy(&c->shards[i]->err_mu);
		free(c->shards[i]);
	}
	free(c->shards);
	free(c->remotes);
	pthread_mutex_destroy(&c->remote_mu);
	if (c->stream)
		sl_stream_unref(c->stream);
	free(c);
}

void sl_cshard_set_error(struct sl_cshard *cs, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&cs->err_mu);
	va_start(ap, fmt);
	vsnprintf(cs->last_error, sizeof(cs->last_error), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&cs->err_mu);
}

/* ---- building consumers ---- */

/*
 * Add the worker of the shard at position pos of view v (c->shards[pos]; every earlier position
 * is there already). by_reshard: the shard was just created by a reshard of a stream c already
 * consumed, so it starts at its first record (and that is saved as its checkpoint).
 */
static int cshard_add(struct sl_consumers *cs, struct sl_consumer *c, struct sl_stream_view *v,
		      uint32_t pos, bool by_reshard)
{
	const struct sl_consumer_config *cfg = &c->cfg;
	const struct sl_shard_meta *m = &v->meta->shards[pos];
	struct sl_cshard *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->c = c;
	s->shard = v->shards[pos];
	s->owner = s->shard->owner;
	s->index = pos;
	s->parents[0] = s->parents[1] = -1;
	uint32_t ppos;
	if (m->parent_id >= 0 && sl_view_shard(v, (uint32_t)m->parent_id, &ppos))
		s->parents[0] = (int32_t)ppos;
	if (m->adjacent_parent_id >= 0 && sl_view_shard(v, (uint32_t)m->adjacent_parent_id, &ppos))
		s->parents[1] = (int32_t)ppos;
	atomic_init(&s->finished, false);
	s->nlanes = cfg->parallelism ? cfg->parallelism : 1;
	for (uint32_t l = 0; l < s->nlanes; l++)
		s->lanes[l].cap = sl_consumer_delivery_cap(cfg);
	pthread_mutex_init(&s->err_mu, NULL);
	uint64_t seq;
	int r = by_reshard
		    ? -ENOENT
		    : sl_checkpoint_load(cs->srv->cfg.data_dir, cfg->name, s->shard->id, &seq);
	if (r == 0) {
		atomic_init(&s->st.checkpoint, seq);
		atomic_init(&s->checkpoint_saved, seq);
		s->resolved = true;
		s->next_seq = seq + 1;
	} else if (r == -ENOENT &&
		   (by_reshard || (m->parent_id >= 0 && cfg->start.type == SLUICE_POS_LATEST))) {
		/* A child the consumer saw being created (a LATEST consumer pinned a checkpoint
		 * for every shard that existed when it was created): all its records are new. */
		s->resolved = true;
		s->next_seq = m->start_seq;
		atomic_init(&s->st.checkpoint, m->start_seq - 1);
		if (by_reshard) {
			r = sl_checkpoint_save(cs->srv->cfg.data_dir, cfg->name, s->shard->id,
					       m->start_seq - 1);
			if (r < 0)
				SL_WARN(
				    "consumer %s shard %u: cannot save its first checkpoint: %s",
				    cfg->name, s->shard->id, sluice_strerror(r));
			else
				atomic_init(&s->checkpoint_saved, m->start_seq - 1);
		}
	} else if (r != -ENOENT) {
		SL_WARN("consumer %s shard %u: checkpoint unreadable (%s); starting from its "
			"start position",
			cfg->name, s->shard->id, sluice_strerror(r));
		sl_cshard_set_error(s, "checkpoint unreadable: %s", sluice_strerror(r));
	}
	c->shards[pos] = s;
	atomic_store_explicit(&c->nshards, pos + 1, memory_order_release);
	return 0;
}

static int consumer_build(struct sl_consumers *cs, const struct sl_consumer_config *cfg,
			  struct sl_stream *stream, struct sl_consumer **ret)
{
	struct sl_consumer *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	atomic_init(&c->nshards, 0);
	c->cfg = *cfg;
	c->owner = cs;
	pthread_mutex_init(&c->remote_mu, NULL);
	c->stream = stream;
	sl_stream_ref(stream);
	atomic_init(&c->refs, 1);
	atomic_init(&c->deleted, false);
	atomic_init(&c->resets_pending, 0);
	c->shards = calloc(SL_STREAM_SHARD_RECORDS_MAX, sizeof(*c->shards));
	if (!c->shards) {
		sl_consumer_unref(c);
		return -ENOMEM;
	}
	struct sl_stream_view *v = sl_stream_view(stream);
	for (uint32_t i = 0; i < v->nshards; i++) {
		int r = cshard_add(cs, c, v, i, false);
		if (r < 0) {
			sl_consumer_unref(c);
			return r;
		}
	}
	*ret = c;
	return 0;
}

void sl_consumers_stream_resharded(struct sl_consumers *cs, struct sl_stream *stream)
{
	struct sl_stream_view *v = sl_stream_view(stream);
	pthread_mutex_lock(&cs->mu);
	for (size_t i = 0; i < cs->count; i++) {
		struct sl_consumer *c = cs->list[i];
		if (c->stream != stream)
			continue;
		for (uint32_t pos = atomic_load(&c->nshards); pos < v->nshards; pos++) {
			int r = cshard_add(cs, c, v, pos, true);
			if (r < 0) {
				SL_ERROR("consumer %s: cannot follow the reshard of %s: %s",
					 c->cfg.name, stream->name, sluice_strerror(r));
				break;
			}
		}
	}
	atomic_fetch_add_explicit(&cs->generation, 1, memory_order_release);
	pthread_mutex_unlock(&cs->mu);
}

static ssize_t find_index(struct sl_consumers *cs, const char *name)
{
	for (size_t i = 0; i < cs->count; i++)
		if (strcmp(cs->list[i]->cfg.name, name) == 0)
			return (ssize_t)i;
	return -1;
}

static int insert(struct sl_consumers *cs, struct sl_consumer *c)
{
	if (cs->count == cs->cap) {
		size_t cap = cs->cap ? cs->cap * 2 : 16;
		struct sl_consumer **n = realloc(cs->list, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		cs->list = n;
		cs->cap = cap;
	}
	size_t i = 0;
	while (i < cs->count && strcmp(cs->list[i]->cfg.name, c->cfg.name) < 0)
		i++;
	memmove(&cs->list[i + 1], &cs->list[i], (cs->count - i) * sizeof(*cs->list));
	cs->list[i] = c;
	cs->count++;
	atomic_fetch_add_explicit(&cs->generation, 1, memory_order_release);
	return 0;
}

static struct sl_stream *registry_find(struct sl_server *srv, const char *name)
{
	struct sl_stream **list;
	size_t n;
	struct sl_stream *found = NULL;
	if (sl_registry_list(srv->registry, &list, &n, NULL) < 0)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(list[i]->name, name) == 0) {
			found = list[i];
			sl_stream_ref(found);
		}
	}
	sl_registry_release_list(list, n);
	return found;
}

static int load_one(void *ctx, const struct sl_consumer_config *cfg)
{
	struct sl_consumers *cs = ctx;
	struct sl_stream *s = registry_find(cs->srv, cfg->stream);
	if (!s) {
		SL_WARN("consumer %s: stream %s does not exist; the consumer is idle", cfg->name,
			cfg->stream);
		return 0;
	}
	struct sl_consumer *c;
	int r = consumer_build(cs, cfg, s, &c);
	sl_stream_unref(s);
	if (r < 0)
		return r;
	r = insert(cs, c);
	if (r < 0)
		sl_consumer_unref(c);
	return r;
}

static void load_corrupt(void *ctx, const char *file, int err, const char *msg)
{
	SL_ERROR("consumer file %s is unreadable (%s): %s", file, sluice_strerror(err), msg);
}

/* ---- checkpoint writer ---- */

static void write_checkpoints(struct sl_consumers *cs)
{
	pthread_mutex_lock(&cs->mu);
	size_t n = cs->count;
	struct sl_consumer **snap = malloc((n ? n : 1) * sizeof(*snap));
	if (!snap) {
		pthread_mutex_unlock(&cs->mu);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		snap[i] = cs->list[i];
		sl_consumer_ref(snap[i]);
	}
	pthread_mutex_unlock(&cs->mu);
	for (size_t i = 0; i < n; i++) {
		struct sl_consumer *c = snap[i];
		uint32_t nsh = atomic_load_explicit(&c->nshards, memory_order_acquire);
		for (uint32_t k = 0; k < nsh && !atomic_load(&c->deleted); k++) {
			struct sl_cshard *s = c->shards[k];
			/*
			 * Under the shard's save lock, and checkpoint_saved read before the
			 * checkpoint: a firehose's sink saves its own checkpoint once the object is
			 * stored and then the engine records both values (checkpoint first), so
			 * this order never mistakes an older checkpoint for one still to save.
			 */
			pthread_mutex_t *mu = sl_checkpoint_lock(c->cfg.name, s->shard->id);
			pthread_mutex_lock(mu);
			uint64_t saved = atomic_load(&s->checkpoint_saved);
			uint64_t cp = atomic_load(&s->st.checkpoint);
			int r = cp == saved
				    ? 0
				    : sl_checkpoint_save_locked(cs->srv->cfg.data_dir, c->cfg.name,
								s->shard->id, cp);
			if (r == 0)
				atomic_store(&s->checkpoint_saved, cp);
			pthread_mutex_unlock(mu);
			if (r < 0)
				SL_ERROR("consumer %s shard %u: cannot save checkpoint: %s",
					 c->cfg.name, s->shard->id, sluice_strerror(r));
		}
		sl_consumer_unref(c);
	}
	free(snap);
}

static void *writer_main(void *arg)
{
	struct sl_consumers *cs = arg;
	pthread_mutex_lock(&cs->wmu);
	while (!cs->writer_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += CHECKPOINT_INTERVAL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&cs->wcv, &cs->wmu, &ts);
		pthread_mutex_unlock(&cs->wmu);
		write_checkpoints(cs);
		pthread_mutex_lock(&cs->wmu);
	}
	pthread_mutex_unlock(&cs->wmu);
	return NULL;
}

int sl_consumers_open(struct sl_server *srv, struct sl_consumers **ret)
{
	struct sl_consumers *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	cs->srv = srv;
	snprintf(cs->meta_dir, sizeof(cs->meta_dir), "%s/meta", srv->cfg.data_dir);
	pthread_mutex_init(&cs->mu, NULL);
	pthread_mutex_init(&cs->wmu, NULL);
	pthread_cond_init(&cs->wcv, NULL);
	atomic_init(&cs->generation, 1);
	cs->views = calloc(srv->nworkers, sizeof(*cs->views));
	if (!cs->views) {
		free(cs);
		return -ENOMEM;
	}
	int r = sl_consumer_config_load_all(cs->meta_dir, load_one, load_corrupt, cs);
	if (r < 0) {
		sl_consumers_close(cs);
		return r;
	}
	r = pthread_create(&cs->writer, NULL, writer_main, cs);
	if (r) {
		free(cs->views);
		free(cs);
		return -r;
	}
	*ret = cs;
	return 0;
}

static void view_clear(struct worker_view *v)
{
	for (size_t i = 0; i < v->held_count; i++)
		sl_consumer_unref(v->held[i]);
	free(v->held);
	free(v->cshards);
	v->held = NULL;
	v->cshards = NULL;
	v->held_count = v->count = 0;
}

void sl_consumers_close(struct sl_consumers *cs)
{
	if (!cs)
		return;
	if (cs->writer) {
		pthread_mutex_lock(&cs->wmu);
		cs->writer_stop = true;
		pthread_cond_signal(&cs->wcv);
		pthread_mutex_unlock(&cs->wmu);
		pthread_join(cs->writer, NULL);
	}
	write_checkpoints(cs); /* the last word: everything finished so far */
	for (unsigned i = 0; cs->views && i < cs->srv->nworkers; i++)
		view_clear(&cs->views[i]);
	for (size_t i = 0; i < cs->count; i++)
		sl_consumer_unref(cs->list[i]);
	/* Let handlers close and exec processes exit before the process does. */
	int stuck = sl_runners_wait(3000);
	if (stuck)
		SL_WARN("%d handler calls still running at shutdown; abandoning them", stuck);
	free(cs->list);
	free(cs->views);
	pthread_mutex_destroy(&cs->mu);
	free(cs);
}

/* ---- admin ---- */

int sl_consumers_create(struct sl_consumers *cs, struct sl_worker *w,
			const struct sl_consumer_config *in, char *err_msg, size_t err_msg_len)
{
	struct sl_consumer_config cfg = *in;
	cfg.created_ms = sl_wall_ms();
	int r = sl_consumer_config_check(&cfg, err_msg, err_msg_len);
	if (r < 0)
		return r;
	struct sl_stream *s = sl_worker_find_stream(w, cfg.stream, strlen(cfg.stream));
	if (!s) {
		snprintf(err_msg, err_msg_len, "stream %s not found", cfg.stream);
		return SLUICE_ERR_STREAM_NOT_FOUND;
	}
	if (cfg.on_failure[0] && strcmp(cfg.on_failure, cfg.stream) == 0) {
		snprintf(err_msg, err_msg_len, "the on-failure stream must differ from the stream");
		return SLUICE_ERR_INVALID_ARGUMENT;
	}
	pthread_mutex_lock(&cs->mu);
	if (find_index(cs, cfg.name) >= 0) {
		pthread_mutex_unlock(&cs->mu);
		snprintf(err_msg, err_msg_len, "consumer %s already exists", cfg.name);
		return SLUICE_ERR_STREAM_EXISTS;
	}
	if (cs->count >= CONSUMERS_MAX) {
		pthread_mutex_unlock(&cs->mu);
		snprintf(err_msg, err_msg_len, "at most %d consumers", CONSUMERS_MAX);
		return SLUICE_ERR_LIMIT_EXCEEDED;
	}
	/* Stale checkpoints of an earlier consumer of the same name must not leak in. */
	sl_checkpoint_remove_all(cs->srv->cfg.data_dir, cfg.name);
	/* LATEST means the records that arrive after this call: pin it now, durably, so a
	 * restart before the first batch does not skip what arrived in between. */
	if (cfg.start.type == SLUICE_POS_LATEST) {
		struct sl_stream_view *v = sl_stream_view(s);
		for (uint32_t i = 0; i < v->nshards; i++) {
			uint64_t tip = atomic_load(&v->shards[i]->next_seq);
			r = sl_checkpoint_save(cs->srv->cfg.data_dir, cfg.name, v->shards[i]->id,
					       tip ? tip - 1 : 0);
			if (r < 0)
				break;
		}
	}
	r = r < 0 ? r : sl_consumer_config_save(cs->meta_dir, &cfg);
	if (r < 0) {
		pthread_mutex_unlock(&cs->mu);
		sl_checkpoint_remove_all(cs->srv->cfg.data_dir, cfg.name);
		snprintf(err_msg, err_msg_len, "cannot save the consumer: %s", sluice_strerror(r));
		return r;
	}
	struct sl_consumer *c;
	r = consumer_build(cs, &cfg, s, &c);
	if (r == 0) {
		r = insert(cs, c);
		if (r < 0)
			sl_consumer_unref(c);
	}
	pthread_mutex_unlock(&cs->mu);
	if (r < 0)
		snprintf(err_msg, err_msg_len, "%s", sluice_strerror(r));
	else
		SL_INFO("created consumer %s on stream %s", cfg.name, cfg.stream);
	return r;
}

int sl_consumers_delete(struct sl_consumers *cs, const char *name)
{
	pthread_mutex_lock(&cs->mu);
	ssize_t i = find_index(cs, name);
	if (i < 0) {
		pthread_mutex_unlock(&cs->mu);
		return SLUICE_ERR_STREAM_NOT_FOUND;
	}
	struct sl_consumer *c = cs->list[i];
	atomic_store(&c->deleted, true);
	memmove(&cs->list[i], &cs->list[i + 1], (cs->count - (size_t)i - 1) * sizeof(*cs->list));
	cs->count--;
	atomic_fetch_add_explicit(&cs->generation, 1, memory_order_release);
	sl_consumer_config_remove(cs->meta_dir, name);
	sl_checkpoint_remove_all(cs->srv->cfg.data_dir, name);
	pthread_mutex_unlock(&cs->mu);
	sl_remote_kick_all(c);
	sl_consumer_unref(c);
	SL_INFO("deleted consumer %s", name);
	return 0;
}

struct reset_msg {
	struct sl_op op;
	struct sl_cshard *cs;
	struct sluice_position to;
};

static void reset_on_owner(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct reset_msg *m = (struct reset_msg *)op;
	struct sl_cshard *s = m->cs;
	struct sl_consumer *c = s->c;
	struct sl_shard *sh = s->shard;
	sl_shard_lock(sh);
	bool live = sh->log && !atomic_load(&c->deleted);
	uint64_t seq = 0;
	int r = live ? sl_shard_log_seek(sh->log, &m->to, sl_wall_ms(), &seq) : 0;
	sl_shard_unlock(sh);
	if (live) {
		if (r < 0) {
			/* The shard stays unfinished where it was: it finishes again from there. */
			sl_cshard_set_error(s, "reset failed: %s", sluice_strerror(r));
		} else {
			/* Results of deliveries still out are dropped when they come back. */
			sl_cshard_clear(s);
			s->next_seq = seq;
			s->resolved = true;
			atomic_store(&s->st.checkpoint, seq ? seq - 1 : 0);
			/* The saved file still holds the old position: finished only once the
			 * writer stored the new one. */
			atomic_store(&s->checkpoint_saved, CHECKPOINT_UNSAVED);
			SL_INFO("consumer %s shard %u reset to sequence number %llu", c->cfg.name,
				sh->id, (unsigned long long)seq);
		}
	}
	/* Last: the other shards go on once every shard of the reset got here. */
	atomic_fetch_sub_explicit(&c->resets_pending, 1, memory_order_release);
	sl_consumer_unref(c);
	free(m);
}

/*
 * Mark the shards a reset names (named[k] for c->shards[k], k < n), and every descendant of
 * theirs (affected[] gets both), not finished. Under cs->mu, with resets_pending already
 * raised: check_finished sets finished under the same mutex only when no reset is pending, so
 * no owner can mark one of them finished again before the reset is applied. Parents come
 * before their children in c->shards, so one pass sees each descendant after its parents.
 */
static void unfinish_lineage(struct sl_consumer *c, uint32_t n, const bool *named, bool *affected)
{
	for (uint32_t k = 0; k < n; k++) {
		const struct sl_cshard *s = c->shards[k];
		affected[k] = named[k];
		for (int p = 0; p < 2; p++)
			if (s->parents[p] >= 0 && affected[s->parents[p]])
				affected[k] = true;
		if (affected[k])
			atomic_store(&c->shards[k]->finished, false);
	}
}

int sl_consumers_reset(struct sl_consumers *cs, struct sl_worker *w, const char *name,
		       int64_t shard_id, const struct sluice_position *to, char *err_msg,
		       size_t err_msg_len)
{
	pthread_mutex_lock(&cs->mu);
	ssize_t i = find_index(cs, name);
	if (i < 0) {
		pthread_mutex_unlock(&cs->mu);
		snprintf(err_msg, err_msg_len, "consumer %s not found", name);
		return SLUICE_ERR_STREAM_NOT_FOUND;
	}
	struct sl_consumer *c = cs->list[i];
	uint32_t n = atomic_load_explicit(&c->nshards, memory_order_acquire);
	/* Everything allocated before anything is marked: a reset applies whole or not at all. */
	bool *named = calloc(2 * (size_t)(n ? n : 1), sizeof(*named));
	struct reset_msg **msgs = calloc(n ? n : 1, sizeof(*msgs));
	uint32_t count = 0;
	int r = named && msgs ? 0 : -ENOMEM;
	for (uint32_t k = 0; r == 0 && k < n; k++) {
		struct sl_cshard *s = c->shards[k];
		if (shard_id >= 0 && s->shard->id != (uint64_t)shard_id)
			continue;
		struct reset_msg *m = calloc(1, sizeof(*m));
		if (!m) {
			r = -ENOMEM;
			break;
		}
		m->cs = s;
		m->to = *to;
		m->op.complete = reset_on_owner;
		msgs[count++] = m;
		named[k] = true;
	}
	if (r == 0 && count == 0)
		r = SLUICE_ERR_SHARD_NOT_FOUND;
	if (r == 0) {
		atomic_fetch_add_explicit(&c->resets_pending, count, memory_order_acq_rel);
		unfinish_lineage(c, n, named, named + n);
		for (uint32_t k = 0; k < count; k++) {
			sl_consumer_ref(c);
			sl_loop_post(w->loop, cs->srv->workers[msgs[k]->cs->owner].loop,
				     &msgs[k]->op);
		}
		count = 0;
	}
	if (r == SLUICE_ERR_SHARD_NOT_FOUND)
		snprintf(err_msg, err_msg_len, "stream %s has no shard %lld", c->cfg.stream,
			 (long long)shard_id);
	else if (r < 0)
		snprintf(err_msg, err_msg_len, "%s", sluice_strerror(r));
	pthread_mutex_unlock(&cs->mu);
	for (uint32_t k = 0; k < count; k++)
		free(msgs[k]);
	free(msgs);
	free(named);
	return r;
}

int sl_consumers_list(struct sl_consumers *cs, bool firehoses, char ***ret_names, size_t *ret_count)
{
	pthread_mutex_lock(&cs->mu);
	char **names = calloc(cs->count ? cs->count : 1, sizeof(*names));
	if (!names) {
		pthread_mutex_unlock(&cs->mu);
		return -ENOMEM;
	}
	size_t n = 0;
	for (size_t i = 0; i < cs->count; i++) {
		if ((cs->list[i]->cfg.handler_kind == SL_HANDLER_FIREHOSE) != firehoses)
			continue;
		names[n] = strdup(cs->list[i]->cfg.name);
		if (!names[n]) {
			for (size_t k = 0; k < n; k++)
				free(names[k]);
			free(names);
			pthread_mutex_unlock(&cs->mu);
			return -ENOMEM;
		}
		n++;
	}
	*ret_names = names;
	*ret_count = n;
	pthread_mutex_unlock(&cs->mu);
	return 0;
}

int sl_consumers_flush(struct sl_consumers *cs, const char *name)
{
	pthread_mutex_lock(&cs->mu);
	ssize_t i = find_index(cs, name);
	if (i < 0 || cs->list[i]->cfg.handler_kind != SL_HANDLER_FIREHOSE) {
		pthread_mutex_unlock(&cs->mu);
		return SLUICE_ERR_STREAM_NOT_FOUND;
	}
	struct sl_consumer *c = cs->list[i];
	for (uint32_t k = 0; k < c->nshards; k++)
		atomic_store(
		    &c->shards[k]->flush_until,
		    atomic_load_explicit(&c->shards[k]->shard->next_seq, memory_order_relaxed));
	pthread_mutex_unlock(&cs->mu);
	return 0;
}

int sl_consumers_describe(struct sl_consumers *cs, const char *name, struct sl_consumer_info **ret)
{
	pthread_mutex_lock(&cs->mu);
	ssize_t i = find_index(cs, name);
	if (i < 0) {
		pthread_mutex_unlock(&cs->mu);
		return SLUICE_ERR_STREAM_NOT_FOUND;
	}
	struct sl_consumer *c = cs->list[i];
	struct sl_consumer_info *info = calloc(1, sizeof(*info));
	if (info)
		info->shards = calloc(c->nshards ? c->nshards : 1, sizeof(*info->shards));
	if (!info || !info->shards) {
		pthread_mutex_unlock(&cs->mu);
		sl_consumer_info_free(info);
		return -ENOMEM;
	}
	info->cfg = c->cfg;
	info->nshards = c->nshards;
	for (uint32_t k = 0; k < info->nshards; k++) {
		struct sl_cshard *s = c->shards[k];
		struct sl_consumer_shard_info *d = &info->shards[k];
		d->shard_id = s->shard->id;
		d->checkpoint = atomic_load(&s->st.checkpoint);
		d->lag_records = atomic_load(&s->st.lag_records);
		d->lag_ms = atomic_load(&s->st.iterator_age_ms);
		d->delivered = atomic_load(&s->st.delivered);
		d->batches_failed = atomic_load(&s->st.batches_failed);
		d->retries = atomic_load(&s->st.retries);
		d->sent_to_on_failure = atomic_load(&s->st.sent_to_on_failure);
		d->expired = atomic_load(&s->st.expired);
		d->state = atomic_load(&s->st.state);
		d->objects_written = atomic_load(&s->st.objects_written);
		d->bytes_written = atomic_load(&s->st.bytes_written);
		d->records_archived = atomic_load(&s->st.records_archived);
		d->buffered_bytes = atomic_load(&s->st.buffered_bytes);
		d->upload_failures = atomic_load(&s->st.upload_failures);
		d->last_flush_ms = atomic_load(&s->st.last_flush_ms);
		d->background = atomic_load(&s->st.background) != 0;
		pthread_mutex_lock(&s->err_mu);
		snprintf(d->last_error, sizeof(d->last_error), "%s", s->last_error);
		snprintf(d->last_object_key, sizeof(d->last_object_key), "%s", s->last_object_key);
		pthread_mutex_unlock(&s->err_mu);
	}
	pthread_mutex_unlock(&cs->mu);
	*ret = info;
	return 0;
}

void sl_consumer_info_free(struct sl_consumer_info *info)
{
	if (!info)
		return;
	free(info->shards);
	free(info);
}

void sl_consumers_render_metrics(struct sl_consumers *cs, struct sl_buf *out)
{
	static const struct {
		const char *name, *help, *type;
		size_t off;
	} m[] = {
#define M(field, type, help)                                                                       \
	{"sluice_consumer_" #field, help, type, offsetof(struct sl_cshard_stats, field)}
	    M(delivered, "counter", "Records whose handler succeeded."),
	    M(batches_failed, "counter", "Handler invocations that failed."),
	    M(retries, "counter", "Batch retries."),
	    M(sent_to_on_failure, "counter", "Records handed to the on-failure stream."),
	    M(expired, "counter", "Records given up on without an on-failure stream, or expired."),
	    M(iterator_age_ms, "gauge", "How far behind the tip the consumer is, in ms."),
	    M(lag_records, "gauge", "Acknowledged records not yet delivered."),
	    M(background, "gauge",
	      "1 while a firehose shard yields the CPU to the produce path "
	      "(--firehose-cpu-priority), 0 at normal priority."),
#undef M
	};
	pthread_mutex_lock(&cs->mu);
	for (size_t j = 0; j < sizeof(m) / sizeof(m[0]); j++) {
		char line[512];
		int n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n", m[j].name,
				 m[j].help, m[j].name, m[j].type);
		sl_buf_put(out, line, (size_t)n);
		for (size_t i = 0; i < cs->count; i++) {
			struct sl_consumer *c = cs->list[i];
			for (uint32_t k = 0; k < c->nshards; k++) {
				_Atomic uint64_t *v =
				    (_Atomic uint64_t *)((char *)&c->shards[k]->st + m[j].off);
				n = snprintf(line, sizeof(line),
					     "%s{consumer=\"%s\",shard=\"%u\"} %llu\n", m[j].name,
					     c->cfg.name, c->shards[k]->shard->id,
					     (unsigned long long)atomic_load(v));
				sl_buf_put(out, line, (size_t)n);
			}
		}
	}
	pthread_mutex_unlock(&cs->mu);
}

int sl_consumers_of_stream(struct sl_consumers *cs, const char *stream, char *names, size_t len)
{
	int n = 0;
	size_t at = 0;
	if (len)
		names[0] = '\0';
	pthread_mutex_lock(&cs->mu);
	for (size_t i = 0; i < cs->count; i++) {
		if (strcmp(cs->list[i]->cfg.stream, stream) != 0)
			continue;
		int w = snprintf(names + at, at < len ? len - at : 0, "%s%s", n ? ", " : "",
				 cs->list[i]->cfg.name);
		if (w > 0 && at + (size_t)w < len)
			at += (size_t)w;
		n++;
	}
	pthread_mutex_unlock(&cs->mu);
	return n;
}
