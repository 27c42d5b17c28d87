#include "restore_writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Retries of a batch the server could not take now (throttled, disconnected, ...). */
#define RW_RETRIES 5
#define RW_BACKOFF_MS 200

int rw_init(struct restore_writer *w, struct sluice_client *c, const char *stream)
{
	memset(w, 0, sizeof(*w));
	w->client = c;
	w->stream = stream;
	sl_buf_init(&w->bytes);
	w->recs = calloc(RW_BATCH_RECORDS, sizeof(*w->recs));
	return w->recs ? 0 : -ENOMEM;
}

void rw_finish(struct restore_writer *w)
{
	free(w->recs);
	sl_buf_finish(&w->bytes);
	w->recs = NULL;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int rw_flush(struct restore_writer *w)
{
	if (w->n == 0)
		return 0;
	/* The buffer may have moved while it grew: point the records into it now. */
	for (size_t i = 0; i < w->n; i++) {
		struct sluice_record *r = &w->recs[i];
		r->key = (const char *)w->bytes.data + (uintptr_t)r->key;
		r->data = w->bytes.data + (uintptr_t)r->data;
	}
	struct sluice_restore_result res;
	int r = 0;
	for (int attempt = 0;; attempt++) {
		r = sluice_restore_append(w->client, w->stream, w->shard_id, w->recs, w->n, &res);
		if (r == 0 || !sluice_error_is_retryable(r) || attempt == RW_RETRIES)
			break;
		sleep_ms(RW_BACKOFF_MS << attempt);
	}
	if (r < 0) {
		const char *m = sluice_client_last_error_message(w->client);
		snprintf(w->err, sizeof(w->err), "shard %u, seqs %llu..%llu: %s", w->shard_id,
			 (unsigned long long)w->recs[0].seq,
			 (unsigned long long)w->recs[w->n - 1].seq,
			 m && m[0] ? m : sluice_strerror(r));
		return r;
	}
	w->st.appended += res.appended;
	w->st.existing += res.skipped;
	w->st.batches++;
	for (size_t i = w->n - res.appended; i < w->n; i++)
		w->st.bytes += w->recs[i].data_len;
	w->n = 0;
	sl_buf_reset(&w->bytes);
	return 0;
}

int rw_add(struct restore_writer *w, uint32_t shard_id, uint64_t seq, int64_t ts_ms,
	   const char *key, size_t key_len, const uint8_t *data, size_t data_len)
{
	int r;
	if (w->n && (shard_id != w->shard_id || w->n == RW_BATCH_RECORDS ||
		     w->bytes.len + key_len + data_len > RW_BATCH_BYTES)) {
		r = rw_flush(w);
		if (r < 0)
			return r;
	}
	w->shard_id = shard_id;
	size_t off = w->bytes.len;
	r = sl_buf_put(&w->bytes, key, key_len);
	r = r ?: sl_buf_put(&w->bytes, data, data_len);
	if (r < 0) {
		snprintf(w->err, sizeof(w->err), "out of memory");
		return r;
	}
	w->recs[w->n++] = (struct sluice_record){
	    .seq = seq,
	    .ts_ms = ts_ms,
	    .key = (const char *)(uintptr_t)off, /* an offset until rw_flush */
	    .key_len = (uint16_t)key_len,
	    .data = (const uint8_t *)(uintptr_t)(off + key_len),
	    .data_len = (uint32_t)data_len,
	};
	return 0;
}
