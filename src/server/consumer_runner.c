#include "server/consumer_runner.h"

#include "common/logging.h"
#include "consumer/handler_exec.h"
#include "consumer/handler_plugin.h"

#include <sluice/errors.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_batch *sl_batch_create(void)
{
	struct sl_batch *b = calloc(1, sizeof(*b));
	if (b)
		sl_read_batch_init(&b->rb);
	return b;
}

void sl_batch_destroy(struct sl_batch *b)
{
	if (!b)
		return;
	sl_read_batch_finish(&b->rb);
	free(b->recs);
	free(b);
}

int sl_batch_view(struct sl_batch *b, size_t first, size_t count)
{
	if (b->cap < b->rb.count) {
		struct sluice_handler_record *n = realloc(b->recs, b->rb.count * sizeof(*n));
		if (!n)
			return -ENOMEM;
		b->recs = n;
		b->cap = b->rb.count;
	}
	for (size_t i = 0; i < b->rb.count; i++) {
		const struct sluice_record *r = &b->rb.records[i];
		b->recs[i] = (struct sluice_handler_record){
			.seq = r->seq,
			.ts_ms = r->ts_ms,
			.key = r->key,
			.key_len = r->key_len,
			.data = r->data,
			.data_len = r->data_len,
		};
	}
	b->hb.records = b->recs + first;
	b->hb.count = count;
	return 0;
}

struct sl_runner {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct sl_batch *job;
	bool busy;
	bool stop;
	bool abandoned;
	enum sl_handler_kind kind;
	char *target, *consumer, *stream;
	uint32_t shard_id;
	uint32_t timeout_ms;
	struct sl_loop *owner;
	struct sl_exec_handler *exec;
	struct sl_plugin_handler *plugin;
};

static void runner_free(struct sl_runner *r)
{
	sl_exec_handler_destroy(r->exec);
	sl_plugin_handler_destroy(r->plugin);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
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
	if (r->kind == SL_HANDLER_PLUGIN) {
		if (!r->plugin) {
			int e = sl_plugin_handler_create(r->target, r->consumer, r->stream, r->shard_id,
							 &r->plugin, err, sizeof(err));
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
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->job && !r->stop)
			pthread_cond_wait(&r->cv, &r->mu);
		if (!r->job)
			break;
		struct sl_batch *b = r->job;
		pthread_mutex_unlock(&r->mu);
		invoke(r, b);
		pthread_mutex_lock(&r->mu);
		r->job = NULL;
		r->busy = false;
		if (r->abandoned) {
			/* The loop gave up on this call and moved on: the batch is ours to free. */
			sl_batch_destroy(b);
			break;
		}
		pthread_mutex_unlock(&r->mu);
		sl_loop_post_external(r->owner, &b->op);
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	runner_free(r);
	return NULL;
}

int sl_runner_create(const struct sl_runner_config *cfg, struct sl_runner **ret)
{
	struct sl_runner *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->kind = cfg->kind;
	r->target = strdup(cfg->target);
	r->consumer = strdup(cfg->consumer);
	r->stream = strdup(cfg->stream);
	r->shard_id = cfg->shard_id;
	r->timeout_ms = cfg->timeout_ms;
	r->owner = cfg->owner;
	if (!r->target || !r->consumer || !r->stream) {
		runner_free(r);
		return -ENOMEM;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int e = pthread_create(&r->thread, &attr, runner_main, r);
	pthread_attr_destroy(&attr);
	if (e) {
		runner_free(r);
		return -e;
	}
	*ret = r;
	return 0;
}

void sl_runner_submit(struct sl_runner *r, struct sl_batch *b)
{
	pthread_mutex_lock(&r->mu);
	r->job = b;
	r->busy = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

void sl_runner_abandon(struct sl_runner *r)
{
	pthread_mutex_lock(&r->mu);
	if (r->busy) {
		r->abandoned = true;
	} else {
		r->stop = true;
		pthread_cond_signal(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
}

void sl_runner_destroy(struct sl_runner *r)
{
	if (r)
		sl_runner_abandon(r);
}
