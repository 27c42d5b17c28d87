#include "server/consumer_runner.h"

#include "common/logging.h"
#include "consumer/handler_exec.h"
#include "consumer/handler_plugin.h"
#include "server/consumer_firehose.h"

#include <sluice/errors.h>

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sl_window *sl_window_create(void)
{
	struct sl_window *win = calloc(1, sizeof(*win));
	if (!win)
		return NULL;
	atomic_init(&win->refs, 1);
	sl_read_batch_init(&win->rb);
	return win;
}

void sl_window_ref(struct sl_window *win)
{
	atomic_fetch_add_explicit(&win->refs, 1, memory_order_relaxed);
}

void sl_window_unref(struct sl_window *win)
{
	if (!win || atomic_fetch_sub_explicit(&win->refs, 1, memory_order_acq_rel) != 1)
		return;
	sl_read_batch_finish(&win->rb);
	free(win->recs);
	free(win);
}

static uint32_t lane_of(const char *key, size_t len, uint32_t nlanes)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)key[i];
		h *= 16777619u;
	}
	return h % nlanes;
}

int sl_window_arrange(struct sl_window *win, uint32_t nlanes)
{
	size_t n = win->rb.count;
	if (win->recs_cap < n) {
		/* Windows are reused: grow only, so steady state allocates nothing. */
		struct sluice_handler_record *recs = realloc(win->recs, n * sizeof(*recs));
		if (!recs)
			return -ENOMEM;
		win->recs = recs;
		win->recs_cap = n;
	}
	memset(win->lane_len, 0, sizeof(win->lane_len));
	uint8_t *lane = NULL;
	if (nlanes > 1) {
		lane = malloc(n ? n : 1);
		if (!lane)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			lane[i] = (uint8_t)lane_of(win->rb.records[i].key,
						   win->rb.records[i].key_len, nlanes);
			win->lane_len[lane[i]]++;
		}
	} else {
		win->lane_len[0] = (uint32_t)n;
	}
	uint32_t at = 0, fill[SL_CONSUMER_PARALLELISM_MAX];
	for (uint32_t l = 0; l < nlanes; l++) {
		win->lane_off[l] = at;
		fill[l] = at;
		at += win->lane_len[l];
	}
	for (size_t i = 0; i < n; i++) {
		const struct sluice_record *r = &win->rb.records[i];
		uint32_t l = lane ? lane[i] : 0;
		win->recs[fill[l]++] = (struct sluice_handler_record){
		    .seq = r->seq,
		    .ts_ms = r->ts_ms,
		    .key = r->key,
		    .key_len = r->key_len,
		    .data = r->data,
		    .data_len = r->data_len,
		};
	}
	free(lane);
	win->last_seq = n ? win->rb.records[n - 1].seq : 0;
	return 0;
}

struct sl_batch *sl_batch_create(struct sl_window *win, size_t first, size_t count)
{
	struct sl_batch *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	sl_window_ref(win);
	b->win = win;
	b->hb.records = win->recs + first;
	b->hb.count = count;
	return b;
}

void sl_batch_destroy(struct sl_batch *b)
{
	if (!b)
		return;
	sl_window_unref(b->win);
	if (b->release)
		b->release(b->release_ctx);
	free(b);
}

/*
 * The loop hands a batch over without taking the runner's lock (sl_runner_submit stores the job
 * and posts the semaphore): a firehose runner runs at a lowered CPU priority and may be
 * preempted inside its lock for as long as the machine is busy, which must not stall the loop.
 * The lock only orders the end of a call against sl_runner_abandon (rare: timeouts, resets,
 * deletes, priority changes).
 */
struct sl_runner {
	pthread_t thread;
	pthread_mutex_t mu;
	sem_t wake; /* one post per submitted job, and one to stop */
	_Atomic(struct sl_batch *) job;
	atomic_bool busy;
	bool stop;
	bool abandoned;
	enum sl_handler_kind kind;
	char *target, *consumer, *stream;
	uint32_t shard_id;
	uint32_t timeout_ms;
	struct sl_loop *owner;
	struct sl_cpu_priority priority;
	struct sl_exec_handler *exec;
	struct sl_plugin_handler *plugin;
	struct sl_consumer_config cfg; /* a copy: an abandoned runner may outlive its consumer */
	char *data_dir;
	struct sl_firehose_sink *sink;
};

static atomic_int live_runners;

int sl_runners_wait(int timeout_ms)
{
	for (int waited = 0; atomic_load(&live_runners) > 0 && waited < timeout_ms; waited += 10) {
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	return atomic_load(&live_runners);
}

static void runner_free(struct sl_runner *r)
{
	sl_exec_handler_destroy(r->exec);
	sl_plugin_handler_destroy(r->plugin);
	sl_firehose_sink_destroy(r->sink);
	free(r->data_dir);
	pthread_mutex_destroy(&r->mu);
	sem_destroy(&r->wake);
	free(r->target);
	free(r->consumer);
	free(r->stream);
	free(r);
}

static void fail(struct sl_batch *b, int status, const char *msg)
{
	b->invoke_status = status;
	b->result.status = SLUICE_HANDLER_ERROR;
	b->result.failed_from = 0;
	snprintf(b->result.message, sizeof(b->result.message), "%s", msg);
}

static void invoke(struct sl_runner *r, struct sl_batch *b)
{
	b->invoke_status = 0;
	memset(&b->result, 0, sizeof(b->result));
	char err[256] = "";
	if (r->kind == SL_HANDLER_FIREHOSE) {
		if (!r->sink) {
			int e = sl_firehose_sink_create(&r->cfg, r->shard_id, r->data_dir, &r->sink,
							err, sizeof(err));
			if (e < 0) {
				fail(b, e, err[0] ? err : sluice_strerror(e));
				return;
			}
		}
		b->object_key[0] = '\0';
		b->object_bytes = 0;
		int e = sl_firehose_sink_deliver(r->sink, &b->hb, b->to_errors, &b->result,
						 b->object_key, sizeof(b->object_key),
						 &b->object_bytes);
		if (e < 0)
			b->invoke_status = e; /* the result says why */
		return;
	}
	if (r->kind == SL_HANDLER_PLUGIN) {
		if (!r->plugin) {
			int e = sl_plugin_handler_create(r->target, r->consumer, r->stream,
							 r->shard_id, &r->plugin, err, sizeof(err));
			if (e < 0) {
				fail(b, e, err[0] ? err : sluice_strerror(e));
				return;
			}
		}
		int e = sl_plugin_handler_invoke(r->plugin, &b->hb, &b->result);
		if (e < 0 && b->result.status != SLUICE_HANDLER_ERROR)
			fail(b, e, "handler returned an error");
		return;
	}
	if (!r->exec) {
		int e = sl_exec_handler_create(r->target, r->consumer, r->stream, r->shard_id,
					       &r->exec);
		if (e < 0) {
			snprintf(err, sizeof(err), "cannot start handler: %s", sluice_strerror(e));
			fail(b, e, err);
			return;
		}
	}
	int e = sl_exec_handler_invoke(r->exec, &b->hb, (int)r->timeout_ms, &b->result);
	if (e < 0)
		b->invoke_status = e; /* the result already says why */
}

static void *runner_main(void *arg)
{
	struct sl_runner *r = arg;
	/* Named so that top -H, perf and /proc/PID/task/TID/comm tell them from the loops. */
	pthread_setname_np(pthread_self(),
			   r->kind == SL_HANDLER_FIREHOSE ? "sl-firehose" : "sl-handler");
	int e = sl_thread_lower_priority(&r->priority);
	if (e < 0) {
		char p[SL_CPU_PRIORITY_TEXT_LEN];
		sl_cpu_priority_format(&r->priority, p);
		SL_WARN("%s shard %u: cannot lower the thread's CPU priority to %s: %s",
			r->consumer, r->shard_id, p, strerror(-e));
	}
	pthread_mutex_lock(&r->mu);
	for (;;) {
		struct sl_batch *b;
		while (!(b = atomic_load(&r->job)) && !r->stop) {
			pthread_mutex_unlock(&r->mu);
			while (sem_wait(&r->wake) < 0 && errno == EINTR)
				;
			pthread_mutex_lock(&r->mu);
		}
		if (!b)
			break;
		pthread_mutex_unlock(&r->mu);
		invoke(r, b);
		pthread_mutex_lock(&r->mu);
		atomic_store(&r->job, NULL);
		atomic_store(&r->busy, false);
		if (r->abandoned) {
			/* The loop gave up on this call and moved on: the batch is ours to free. */
			sl_batch_destroy(b);
			break;
		}
		/* Post while holding the lock: once abandon() returned, we never touch the loop
		 * again (it may be gone at shutdown). */
		sl_loop_post_external(r->owner, &b->op);
	}
	pthread_mutex_unlock(&r->mu);
	runner_free(r);
	atomic_fetch_sub(&live_runners, 1);
	return NULL;
}

int sl_runner_create(const struct sl_runner_config *cfg, struct sl_runner **ret)
{
	struct sl_runner *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->mu, NULL);
	sem_init(&r->wake, 0, 0);
	r->kind = cfg->kind;
	r->target = strdup(cfg->target);
	r->consumer = strdup(cfg->consumer);
	r->stream = strdup(cfg->stream);
	r->shard_id = cfg->shard_id;
	r->timeout_ms = cfg->timeout_ms;
	r->owner = cfg->owner;
	r->priority = cfg->priority;
	if (cfg->consumer_cfg)
		r->cfg = *cfg->consumer_cfg;
	r->data_dir = strdup(cfg->data_dir ? cfg->data_dir : ".");
	if (!r->target || !r->consumer || !r->stream || !r->data_dir) {
		runner_free(r);
		return -ENOMEM;
	}
	/* Created here, not by the thread: sl_runner_abandon reads r->exec from another thread.
	 * (No process starts until the first batch.) */
	if (r->kind == SL_HANDLER_EXEC) {
		int e = sl_exec_handler_create(r->target, r->consumer, r->stream, r->shard_id,
					       &r->exec);
		if (e < 0) {
			runner_free(r);
			return e;
		}
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	atomic_fetch_add(&live_runners, 1);
	int e = pthread_create(&r->thread, &attr, runner_main, r);
	pthread_attr_destroy(&attr);
	if (e) {
		atomic_fetch_sub(&live_runners, 1);
		runner_free(r);
		return -e;
	}
	*ret = r;
	return 0;
}

void sl_runner_submit(struct sl_runner *r, struct sl_batch *b)
{
	/* The runner is idle (the previous batch came back): it only reads job after the post. */
	atomic_store(&r->busy, true);
	atomic_store(&r->job, b);
	sem_post(&r->wake);
}

void sl_runner_abandon(struct sl_runner *r)
{
	pthread_mutex_lock(&r->mu);
	if (atomic_load(&r->busy)) {
		r->abandoned =
		    true;    /* the thread frees the batch and itself when the call returns */
		if (r->exec) /* a hung child must not outlive its consumer (or sluiced) */
			sl_exec_handler_kill(r->exec);
	}
	r->stop = true;
	sem_post(&r->wake);
	pthread_mutex_unlock(&r->mu);
}

void sl_runner_destroy(struct sl_runner *r)
{
	if (r)
		sl_runner_abandon(r);
}
