#include "restore_writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Retries of a batch the server could not take now (throttled, disconnected, ...). */
#define RW_RETRIES 5
#define RW_BACKOFF_MS 200

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Sender thread: store b (one RESTORE_APPEND, retried when retryable). */
static void store(struct restore_writer *w, struct rw_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		struct sluice_record *r = &b->recs[i];
		r->key = (const char *)b->bytes.data + (uintptr_t)r->key;
		r->data = b->bytes.data + (uintptr_t)r->data;
	}
	struct sluice_restore_result res;
	int r = 0;
	for (int attempt = 0;; attempt++) {
		r = sluice_restore_append(w->client, w->stream, b->shard_id, b->recs, b->n, &res);
		if (r == 0 || !sluice_error_is_retryable(r) || attempt == RW_RETRIES)
			break;
		sleep_ms(RW_BACKOFF_MS << attempt);
	}
	uint64_t bytes = 0;
	if (r == 0)
		for (size_t i = b->n - res.appended; i < b->n; i++)
			bytes += b->recs[i].data_len;
	pthread_mutex_lock(&w->mu);
	if (r < 0 && !w->error) {
		const char *m = sluice_client_last_error_message(w->client);
		snprintf(w->err, sizeof(w->err), "shard %u, seqs %llu..%llu: %s", b->shard_id,
			 (unsigned long long)b->recs[0].seq,
			 (unsigned long long)b->recs[b->n - 1].seq,
			 m && m[0] ? m : sluice_strerror(r));
		w->error = r;
	} else if (r == 0) {
		w->st.appended += res.appended;
		w->st.existing += res.skipped;
		w->st.bytes += bytes;
		w->st.batches++;
	}
	b->n = 0;
	sl_buf_reset(&b->bytes);
	w->pending = NULL;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void *sender(void *arg)
{
	struct restore_writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->pending && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->pending)
			break;
		struct rw_batch *b = w->pending;
		pthread_mutex_unlock(&w->mu);
		store(w, b);
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int rw_init(struct restore_writer *w, struct sluice_client *c, const char *stream)
{
	memset(w, 0, sizeof(*w));
	w->client = c;
	w->stream = stream;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	for (int i = 0; i < 2; i++) {
		sl_buf_init(&w->batch[i].bytes);
		w->batch[i].recs = calloc(RW_BATCH_RECORDS, sizeof(*w->batch[i].recs));
		if (!w->batch[i].recs)
			return -ENOMEM;
	}
	w->cur = &w->batch[0];
	int r = pthread_create(&w->thread, NULL, sender, w);
	if (r != 0)
		return -r;
	w->thread_started = true;
	return 0;
}

void rw_finish(struct restore_writer *w)
{
	if (w->thread_started) {
		pthread_mutex_lock(&w->mu);
		w->stop = true;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
		w->thread_started = false;
	}
	for (int i = 0; i < 2; i++) {
		free(w->batch[i].recs);
		w->batch[i].recs = NULL;
		sl_buf_finish(&w->batch[i].bytes);
	}
	if (w->cur) {
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		w->cur = NULL;
	}
}

/* Hand the current batch to the sender (after the previous one is stored); switch buffers. */
static int submit(struct restore_writer *w)
{
	pthread_mutex_lock(&w->mu);
	while (w->pending && !w->error)
		pthread_cond_wait(&w->cv, &w->mu);
	int r = w->error;
	if (r == 0 && w->cur->n) {
		w->pending = w->cur;
		pthread_cond_broadcast(&w->cv);
		w->cur = w->cur == &w->batch[0] ? &w->batch[1] : &w->batch[0];
	}
	pthread_mutex_unlock(&w->mu);
	return r;
}

int rw_flush(struct restore_writer *w)
{
	int r = submit(w);
	if (r < 0)
		return r;
	pthread_mutex_lock(&w->mu);
	while (w->pending && !w->error)
		pthread_cond_wait(&w->cv, &w->mu);
	r = w->error;
	pthread_mutex_unlock(&w->mu);
	return r;
}

void rw_stats(struct restore_writer *w, struct rw_stats *ret)
{
	pthread_mutex_lock(&w->mu);
	*ret = w->st;
	pthread_mutex_unlock(&w->mu);
}

int rw_add(struct restore_writer *w, uint32_t shard_id, uint64_t seq, int64_t ts_ms,
	   const char *key, size_t key_len, const uint8_t *data, size_t data_len)
{
	struct rw_batch *b = w->cur;
	if (b->n && (shard_id != b->shard_id || b->n == RW_BATCH_RECORDS ||
		     b->bytes.len + key_len + data_len > RW_BATCH_BYTES)) {
		int r = submit(w);
		if (r < 0)
			return r;
		b = w->cur;
	}
	b->shard_id = shard_id;
	size_t off = b->bytes.len;
	int r = sl_buf_put(&b->bytes, key, key_len);
	r = r ?: sl_buf_put(&b->bytes, data, data_len);
	if (r < 0) {
		pthread_mutex_lock(&w->mu);
		if (!w->error) {
			w->error = r;
			snprintf(w->err, sizeof(w->err), "out of memory");
		}
		pthread_mutex_unlock(&w->mu);
		return r;
	}
	b->recs[b->n++] = (struct sluice_record){
	    .seq = seq,
	    .ts_ms = ts_ms,
	    .key = (const char *)(uintptr_t)off, /* an offset until the batch is stored */
	    .key_len = (uint16_t)key_len,
	    .data = (const uint8_t *)(uintptr_t)(off + key_len),
	    .data_len = (uint32_t)data_len,
	};
	return 0;
}
