/*
 * The asynchronous batching producer.
 *
 * Data path. sluice_producer_send encodes the record straight into the open PRODUCE frame of its
 * stream ("batch": header, str8 stream, u32 count, record_in...) under p->mu, and remembers
 * (cb, ctx, offset, length) in the batch's slot array; both are preallocated per batch and
 * batches are recycled through a pool, so the steady state does no allocation per record or per
 * request. A full batch is sealed onto the ready queue; the I/O thread also seals batches whose
 * linger expired (or all of them for a flush), moves ready batches onto connections (patching the
 * request id and count into the frame), writes whole frames, reads answers, runs the callbacks
 * without the lock, and then returns the bytes to the buffer budget.
 *
 * When an open batch goes out (the Nagle-like rule, see sealable()): at once while no request
 * is in flight or ready (an idle pipeline gains nothing from waiting, so a lone record costs one
 * round trip, not a linger); while requests are in flight, when it is full or its linger
 * expired; with no linger (linger < 0), as soon as a connection has a free request slot, so the
 * records that queue up behind a full window coalesce into the next request instead of becoming
 * one request each.
 *
 * Batch states and owners:
 *   open      in p->open[] (one per stream)    p->mu
 *   ready     in p->ready, seqno order          p->mu
 *   inflight  in conn->inflight, send order     the I/O thread alone
 *   pooled    in p->pool                        p->mu
 * Every batch that still holds records is also on p->live, in seqno (creation) order, until its
 * callbacks have returned: a flush waits until no live batch is older than the flush.
 *
 * Retries: a failed request (or the failed records of a request, rebuilt in place into a
 * smaller frame) is put back into p->ready at its seqno position with a backoff. The dispatcher
 * never skips the head of p->ready, so a retried batch goes out before anything sealed after it.
 */
#include "client/client_internal.h"

#include "common/clock.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Kinesis PutRecords takes 500 records: the same default batches well at any record size. */
#define RECORDS_PER_REQUEST_DEFAULT 500u
#define BYTES_PER_REQUEST_DEFAULT (1u << 20)
/* Half the frame limit: leaves room for the header and one oversized record after the limit. */
#define BYTES_PER_REQUEST_MAX (SL_PROTO_FRAME_MAX / 2)
/* Long enough to fill batches at high rates, short enough not to be noticed interactively. */
#define LINGER_US_DEFAULT 5000
/* A day: longer lingers are a mistake, and the bound keeps the timer arithmetic far from overflow.
 */
#define LINGER_US_MAX (86400ll * 1000000)
#define INFLIGHT_DEFAULT 8u
/* Bounds the per-connection bookkeeping and the server's per-connection queue. */
#define INFLIGHT_MAX 1024u
/* One I/O thread polls them all; more would not be faster on one host. */
#define CONNECTIONS_MAX 64u
#define BUFFER_BYTES_DEFAULT (32ull << 20)
#define RETRIES_DEFAULT 3
#define BACKOFF_MS_DEFAULT 100
/* Exponential backoff stops growing here: a retry at least every 5 s while attempts last. */
#define BACKOFF_MS_MAX 5000
/* A PRODUCE answer waits for an fsync of everything in flight: be patient. */
#define TIMEOUT_MS_DEFAULT 30000
/*
 * A new batch's frame starts this big and grows to what its records need (at most
 * max_bytes_per_request + head); pooled batches keep their capacity. Small records stay small.
 */
#define BATCH_BYTES_INITIAL (64u << 10)
/* str8 stream + u32 count after the 12-byte header. */
#define HEAD_BYTES_MAX (SL_FRAME_HEADER_BYTES + 1 + SLUICE_NAME_LEN_MAX + 4)

struct list {
	struct list *prev, *next;
};

static void list_init(struct list *l)
{
	l->prev = l->next = l;
}
static bool list_empty(const struct list *l)
{
	return l->next == l;
}
static void list_insert_before(struct list *pos, struct list *n)
{
	n->prev = pos->prev;
	n->next = pos;
	pos->prev->next = n;
	pos->prev = n;
}
static void list_remove(struct list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct slot {
	sluice_producer_cb cb;
	void *ctx;
	uint32_t offset; /* of the record_in in the batch's frame */
	uint32_t len;
};

struct batch {
	struct list node; /* ready / conn inflight / pool */
	struct list live; /* p->live while it holds records */
	uint64_t seqno;
	char stream[SLUICE_NAME_LEN_MAX + 1];
	uint8_t stream_len;
	struct sl_buf buf; /* the whole PRODUCE frame */
	size_t count_off;
	uint32_t count;
	struct slot *slots;
	size_t slots_cap;
	uint64_t bytes; /* sum of slot lengths: counted in p->buffered_bytes */
	int64_t open_us;
	int64_t not_before_ms;
	int attempts; /* sends so far */
	/* while in flight */
	uint32_t request_id;
	size_t written;
	int64_t deadline_ms;
};

struct conn {
	int fd; /* -1 while down */
	struct list inflight;
	uint32_t inflight_n;
	uint32_t next_request_id;
	struct sl_buf in;
	int64_t reconnect_at_ms;
	int backoff_ms;
	bool want_write;
};

struct sluice_producer {
	/* options, fixed after create */
	char *host_port;
	char *auth_token;
	uint32_t records_max;
	uint32_t bytes_max;
	int64_t linger_us; /* < 0: no lingering */
	uint32_t inflight_max;
	uint32_t nconns;
	uint64_t buffer_bytes_max;
	int retries;
	int backoff_ms;
	int timeout_ms;
	bool nonblocking;

	pthread_mutex_t mu;
	pthread_cond_t space_cv; /* buffered_bytes went down */
	pthread_cond_t done_cv;	 /* a live batch finished */
	struct batch **open;
	size_t open_n, open_cap;
	struct batch *last_open; /* the open batch the last send used */
	struct list ready;
	struct list live;
	struct list pool;
	/* Capacity held by pooled batches: at most buffer_bytes_max, the memory in use at peak. */
	uint64_t pool_bytes;
	uint64_t next_seqno;
	uint64_t buffered_bytes;
	unsigned flushers;
	unsigned space_waiters;
	uint64_t wake_events; /* bumped by every change the I/O thread must look at */
	bool io_sleeping;
	/* Set by schedule(): every connection is up with inflight_max requests out. The answer that
	 * frees a slot runs schedule() again before the I/O thread sleeps. */
	bool window_full;
	bool stopping;
	struct sluice_producer_stats stats;

	int wake_fd;
	bool thread_started;
	pthread_t thread;
	struct conn *conns;
	struct pollfd *pfds; /* nconns + 1, used by the I/O thread */
};

static int64_t mono_us(void)
{
	return sl_mono_ns() / 1000;
}

/* ---- batches (p->mu held unless noted) ---- */

static void batch_free(struct batch *b)
{
	if (!b)
		return;
	sl_buf_finish(&b->buf);
	free(b->slots);
	free(b);
}

/* Encode the frame head; the request id and count are patched at dispatch. */
static int batch_head(struct batch *b)
{
	size_t start;
	sl_buf_reset(&b->buf);
	int r = sl_proto_encode_request_head(&b->buf, SL_OP_PRODUCE, 0, &start);
	if (r == 0)
		r = sl_proto_put_str8(&b->buf, b->stream, b->stream_len);
	b->count_off = b->buf.len;
	if (r == 0)
		r = sl_buf_put_u32(&b->buf, 0);
	return r;
}

static struct batch *batch_get(struct sluice_producer *p, const char *stream, size_t stream_len)
{
	struct batch *b;
	if (!list_empty(&p->pool)) {
		b = container_of(p->pool.next, struct batch, node);
		list_remove(&b->node);
		p->pool_bytes -= b->buf.cap;
	} else {
		b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		list_init(&b->node);
		list_init(&b->live);
		sl_buf_init(&b->buf);
		b->slots = malloc(p->records_max * sizeof(*b->slots));
		size_t initial =
		    HEAD_BYTES_MAX +
		    (p->bytes_max < BATCH_BYTES_INITIAL ? p->bytes_max : BATCH_BYTES_INITIAL);
		if (!b->slots || sl_buf_reserve(&b->buf, initial) < 0) {
			batch_free(b);
			return NULL;
		}
		b->slots_cap = p->records_max;
	}
	memcpy(b->stream, stream, stream_len);
	b->stream[stream_len] = '\0';
	b->stream_len = (uint8_t)stream_len;
	b->count = 0;
	b->bytes = 0;
	b->attempts = 0;
	b->not_before_ms = 0;
	b->written = 0;
	if (batch_head(b) < 0) {
		batch_free(b);
		return NULL;
	}
	b->seqno = ++p->next_seqno;
	list_insert_before(&p->live, &b->live);
	return b;
}

static void batch_put(struct sluice_producer *p, struct batch *b)
{
	list_remove(&b->live);
	if (p->pool_bytes + b->buf.cap > p->buffer_bytes_max ||
	    b->buf.cap > 2 * (HEAD_BYTES_MAX + (size_t)p->bytes_max)) {
		batch_free(b);
		return;
	}
	list_insert_before(&p->pool, &b->node);
	p->pool_bytes += b->buf.cap;
}

static void wake_io(struct sluice_producer *p)
{
	p->wake_events++;
	if (!p->io_sleeping)
		return;
	p->io_sleeping = false;
	uint64_t one = 1;
	ssize_t n = write(p->wake_fd, &one, sizeof(one));
	(void)n; /* EAGAIN: the counter is already non-zero, the thread will wake anyway */
}

/*
 * A new open batch or a sealed one: the I/O thread must dispatch it or arm its linger, unless
 * the window is full (then it can do neither, and the answer that frees a slot runs schedule(),
 * which takes the batch). Skipping that wake saves a context switch per request when records
 * arrive while every request slot is taken, as they do with one request in flight.
 */
static void wake_io_for_batch(struct sluice_producer *p)
{
	if (p->window_full && !p->flushers && !p->stopping)
		return;
	wake_io(p);
}

/* Insert into p->ready keeping seqno order (retries go back to their place). */
static void ready_insert(struct sluice_producer *p, struct batch *b)
{
	struct list *pos = &p->ready;
	while (pos->prev != &p->ready &&
	       container_of(pos->prev, struct batch, node)->seqno > b->seqno)
		pos = pos->prev;
	list_insert_before(pos, &b->node);
}

static void seal(struct sluice_producer *p, size_t open_idx)
{
	struct batch *b = p->open[open_idx];
	p->open[open_idx] = p->open[--p->open_n];
	if (p->last_open == b)
		p->last_open = NULL;
	ready_insert(p, b);
	wake_io_for_batch(p);
}

static void seal_all(struct sluice_producer *p)
{
	while (p->open_n > 0)
		seal(p, p->open_n - 1);
}

static size_t find_open(struct sluice_producer *p, const char *stream, size_t len)
{
	for (size_t i = 0; i < p->open_n; i++) {
		struct batch *b = p->open[i];
		if (b->stream_len == len && memcmp(b->stream, stream, len) == 0)
			return i;
	}
	return SIZE_MAX;
}

/* ---- send ---- */

int sluice_producer_send(struct sluice_producer *p, const char *stream, const void *key,
			 size_t key_len, const void *data, size_t data_len, sluice_producer_cb cb,
			 void *ctx)
{
	size_t stream_len = stream ? strlen(stream) : 0;
	if (!stream || !sl_proto_name_valid((const uint8_t *)stream, stream_len))
		return SLUICE_ERR_INVALID_NAME;
	if (!key || !sl_proto_key_valid(key, key_len))
		return SLUICE_ERR_INVALID_KEY;
	/* record_in: str16 key, u8 flags, u32 data_len, data */
	uint64_t rec_bytes = 2 + key_len + 1 + 4 + (uint64_t)data_len;
	if (data_len > SLUICE_RECORD_BYTES_LIMIT ||
	    rec_bytes > SL_PROTO_FRAME_MAX - HEAD_BYTES_MAX || (data_len && !data))
		return SLUICE_ERR_RECORD_TOO_LARGE;
	struct sl_record_view v = {
	    .key = key, .key_len = (uint16_t)key_len, .data = data, .data_len = (uint32_t)data_len};

	pthread_mutex_lock(&p->mu);
	int r = 0;
	while (!p->stopping && p->buffered_bytes > 0 &&
	       p->buffered_bytes + rec_bytes > p->buffer_bytes_max) {
		if (p->nonblocking) {
			r = SLUICE_ERR_THROTTLED;
			goto out;
		}
		p->space_waiters++;
		pthread_cond_wait(&p->space_cv, &p->mu);
		p->space_waiters--;
	}
	if (p->stopping) {
		r = SLUICE_ERR_SHUTTING_DOWN;
		goto out;
	}
	struct batch *b = p->last_open;
	if (!b || b->stream_len != stream_len || memcmp(b->stream, stream, stream_len) != 0) {
		size_t i = find_open(p, stream, stream_len);
		b = i == SIZE_MAX ? NULL : p->open[i];
		if (b && b->count > 0 && b->bytes + rec_bytes > p->bytes_max) {
			seal(p, i);
			b = NULL;
		}
	} else if (b->count > 0 && b->bytes + rec_bytes > p->bytes_max) {
		seal(p, find_open(p, stream, stream_len));
		b = NULL;
	}
	if (!b) {
		if (p->open_n == p->open_cap) {
			size_t cap = p->open_cap ? 2 * p->open_cap : 8;
			struct batch **o = realloc(p->open, cap * sizeof(*o));
			if (!o) {
				r = -ENOMEM;
				goto out;
			}
			p->open = o;
			p->open_cap = cap;
		}
		b = batch_get(p, stream, stream_len);
		if (!b) {
			r = -ENOMEM;
			goto out;
		}
		b->open_us = mono_us();
		p->open[p->open_n++] = b;
		/* so that it sends it at once (idle pipeline) or arms the linger timer */
		wake_io_for_batch(p);
	}
	size_t off = b->buf.len;
	r = sl_proto_put_record_in(&b->buf, &v);
	if (r < 0) {
		b->buf.len = off;
		goto out;
	}
	b->slots[b->count++] = (struct slot){
	    .cb = cb, .ctx = ctx, .offset = (uint32_t)off, .len = (uint32_t)rec_bytes};
	b->bytes += rec_bytes;
	p->buffered_bytes += rec_bytes;
	p->stats.records_sent++;
	p->last_open = b;
	if (b->count >= p->records_max || b->bytes >= p->bytes_max)
		seal(p, find_open(p, stream, stream_len));
out:
	pthread_mutex_unlock(&p->mu);
	return r;
}

/* ---- flush, stats ---- */

int sluice_producer_flush(struct sluice_producer *p, int timeout_ms)
{
	struct timespec abs;
	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &abs);
		abs.tv_sec += timeout_ms / 1000;
		abs.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (abs.tv_nsec >= 1000000000) {
			abs.tv_sec++;
			abs.tv_nsec -= 1000000000;
		}
	}
	int r = 0;
	pthread_mutex_lock(&p->mu);
	uint64_t target = p->next_seqno;
	p->flushers++;
	seal_all(p);
	while (!list_empty(&p->live) &&
	       container_of(p->live.next, struct batch, live)->seqno <= target) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&p->done_cv, &p->mu);
		} else if (pthread_cond_timedwait(&p->done_cv, &p->mu, &abs) == ETIMEDOUT) {
			r = SLUICE_ERR_TIMEOUT;
			break;
		}
	}
	p->flushers--;
	pthread_mutex_unlock(&p->mu);
	return r;
}

void sluice_producer_stats(struct sluice_producer *p, struct sluice_producer_stats *ret)
{
	pthread_mutex_lock(&p->mu);
	*ret = p->stats;
	ret->bytes_buffered = p->buffered_bytes;
	pthread_mutex_unlock(&p->mu);
}

/* ---- completion (I/O thread) ---- */

static int backoff_for(const struct sluice_producer *p, int attempts)
{
	int64_t ms = p->backoff_ms;
	for (int i = 1; i < attempts && ms < BACKOFF_MS_MAX; i++)
		ms *= 2;
	return ms > BACKOFF_MS_MAX ? BACKOFF_MS_MAX : (int)ms;
}

/*
 * Rebuild b's frame with only the records still in slots[0..keep) (their offsets still point
 * into the old frame), for a retry.
 */
static int batch_rebuild(struct batch *b, uint32_t keep)
{
	struct sl_buf old = b->buf;
	sl_buf_init(&b->buf);
	int r = sl_buf_reserve(&b->buf, old.len);
	if (r == 0)
		r = batch_head(b);
	for (uint32_t i = 0; r == 0 && i < keep; i++) {
		struct slot *s = &b->slots[i];
		size_t off = b->buf.len;
		r = sl_buf_put(&b->buf, old.data + s->offset, s->len);
		s->offset = (uint32_t)off;
	}
	if (r < 0) {
		sl_buf_finish(&b->buf);
		b->buf = old;
		return r;
	}
	sl_buf_finish(&old);
	b->count = keep;
	return 0;
}

/*
 * Account for a batch whose callbacks ran: released bytes, stats, then either requeue it for a
 * retry (b->count > 0 records left) or recycle it.
 */
static void batch_settle(struct sluice_producer *p, struct batch *b, uint64_t released,
			 uint64_t acked, uint64_t failed)
{
	pthread_mutex_lock(&p->mu);
	p->buffered_bytes -= released;
	p->stats.records_acked += acked;
	p->stats.records_failed += failed;
	if (b->count > 0) {
		b->bytes -= released;
		b->not_before_ms = sl_mono_ms() + backoff_for(p, b->attempts);
		p->stats.retries++;
		ready_insert(p, b);
		wake_io(p);
	} else {
		batch_put(p, b);
		pthread_cond_broadcast(&p->done_cv);
	}
	if (released && p->space_waiters)
		pthread_cond_broadcast(&p->space_cv);
	pthread_mutex_unlock(&p->mu);
}

/* The whole request failed with err: retry it all, or fail every record. I/O-owned b. */
static void batch_fail(struct sluice_producer *p, struct batch *b, int err)
{
	if (sluice_error_is_retryable(err) && b->attempts <= p->retries) {
		batch_settle(p, b, 0, 0, 0);
		return;
	}
	uint64_t released = b->bytes;
	for (uint32_t i = 0; i < b->count; i++)
		if (b->slots[i].cb)
			b->slots[i].cb(b->slots[i].ctx, err, UINT32_MAX, 0);
	uint64_t failed = b->count;
	b->count = 0;
	batch_settle(p, b, released, 0, failed);
}

/* A PRODUCE answer for b: per-record results after the status. */
static int batch_answer(struct sluice_producer *p, struct batch *b, struct sl_reader *rest)
{
	uint32_t n;
	if (!sl_reader_u32(rest, &n) || n != b->count || sl_reader_left(rest) != 16 * (size_t)n)
		return SLUICE_ERR_PROTOCOL;
	bool may_retry = b->attempts <= p->retries;
	uint32_t keep = 0;
	uint64_t released = 0, acked = 0, failed = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t status, shard;
		uint64_t seq;
		sl_reader_u32(rest, &status);
		sl_reader_u32(rest, &shard);
		sl_reader_u64(rest, &seq);
		struct slot *s = &b->slots[i];
		int st = (int32_t)status;
		if (st < 0 && may_retry && sluice_error_is_retryable(st)) {
			b->slots[keep++] = *s;
			continue;
		}
		released += s->len;
		if (st == 0)
			acked++;
		else
			failed++;
		if (s->cb)
			s->cb(s->ctx, st, st == 0 ? shard : UINT32_MAX, st == 0 ? seq : 0);
	}
	if (keep > 0 && batch_rebuild(b, keep) < 0) {
		for (uint32_t i = 0; i < keep; i++) {
			released += b->slots[i].len;
			failed++;
			if (b->slots[i].cb)
				b->slots[i].cb(b->slots[i].ctx, -ENOMEM, UINT32_MAX, 0);
		}
		keep = 0;
	}
	b->count = keep;
	batch_settle(p, b, released, acked, failed);
	return 0;
}

/* ---- connections (I/O thread) ---- */

static void conn_down(struct sluice_producer *p, struct conn *c, int err)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->want_write = false;
	sl_buf_reset(&c->in);
	int64_t now = sl_mono_ms();
	c->reconnect_at_ms = now + (c->backoff_ms ? c->backoff_ms : 0);
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : p->backoff_ms;
	if (c->backoff_ms > BACKOFF_MS_MAX)
		c->backoff_ms = BACKOFF_MS_MAX;
	/*
	 * The unanswered requests may or may not have been stored: retry them (at least once)
	 * even when the connection died of a non-retryable error such as a garbled answer.
	 * The oldest first, so that they go back in their order.
	 */
	if (!sluice_error_is_retryable(err))
		err = SLUICE_ERR_DISCONNECTED;
	while (!list_empty(&c->inflight)) {
		struct batch *b = container_of(c->inflight.next, struct batch, node);
		list_remove(&b->node);
		c->inflight_n--;
		batch_fail(p, b, err);
	}
}

static int conn_open(struct sluice_producer *p, struct conn *c, char *err, size_t err_len)
{
	int fd;
	int r = sl_client_dial(p->host_port, p->timeout_ms, &fd, err, err_len);
	if (r < 0)
		return r;
	if (p->auth_token) {
		r = sl_client_auth(fd, p->auth_token, p->timeout_ms, err, err_len);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	c->fd = fd;
	c->backoff_ms = 0;
	return 0;
}

/* Write as much of the in-flight frames as the socket takes. */
static int conn_write(struct conn *c)
{
	c->want_write = false;
	for (struct list *n = c->inflight.next; n != &c->inflight; n = n->next) {
		struct batch *b = container_of(n, struct batch, node);
		while (b->written < b->buf.len) {
			ssize_t w = send(c->fd, b->buf.data + b->written, b->buf.len - b->written,
					 MSG_NOSIGNAL);
			if (w > 0) {
				b->written += (size_t)w;
				continue;
			}
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				c->want_write = true;
				return 0;
			}
			return w < 0 ? sl_client_errno_code(errno) : SLUICE_ERR_DISCONNECTED;
		}
	}
	return 0;
}

static int conn_handle_frame(struct sluice_producer *p, struct conn *c, const uint8_t *frame,
			     const struct sl_frame_header *hdr)
{
	if (!(hdr->flags & SL_FRAME_RESPONSE) || hdr->opcode != SL_OP_PRODUCE)
		return SLUICE_ERR_PROTOCOL;
	struct batch *b = NULL;
	for (struct list *n = c->inflight.next; n != &c->inflight; n = n->next) {
		struct batch *x = container_of(n, struct batch, node);
		if (x->request_id == hdr->request_id && x->written == x->buf.len) {
			b = x;
			break;
		}
	}
	if (!b)
		return SLUICE_ERR_PROTOCOL;
	int32_t status;
	struct sl_str msg;
	struct sl_reader rest;
	int r = sl_proto_decode_response_status(frame + SL_FRAME_HEADER_BYTES,
						4 + (size_t)hdr->length - SL_FRAME_HEADER_BYTES,
						&status, &msg, &rest);
	if (r < 0)
		return r;
	list_remove(&b->node);
	c->inflight_n--;
	if (status < 0) {
		batch_fail(p, b, status);
		return 0;
	}
	r = batch_answer(p, b, &rest);
	if (r < 0) {
		/* The server answered nonsense for this request: do not resend it blindly. */
		batch_fail(p, b, r);
		return r;
	}
	return 0;
}

static int conn_read(struct sluice_producer *p, struct conn *c)
{
	for (;;) {
		int r = sl_buf_reserve(&c->in, SL_CLIENT_RECV_CHUNK);
		if (r < 0)
			return r;
		ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
		if (n == 0)
			return SLUICE_ERR_DISCONNECTED;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return sl_client_errno_code(errno);
		}
		c->in.len += (size_t)n;
		size_t off = 0;
		for (;;) {
			struct sl_frame_header hdr;
			r = sl_proto_parse_header(c->in.data + off, c->in.len - off, &hdr);
			if (r == -EAGAIN)
				break;
			if (r < 0)
				return r;
			size_t frame_len = 4 + (size_t)hdr.length;
			if (c->in.len - off < frame_len) {
				r = sl_buf_reserve(&c->in, frame_len - (c->in.len - off));
				if (r < 0)
					return r;
				break;
			}
			r = conn_handle_frame(p, c, c->in.data + off, &hdr);
			if (r < 0)
				return r;
			off += frame_len;
		}
		sl_buf_consume(&c->in, off);
	}
}

/* ---- the I/O thread ---- */

static struct conn *pick_conn(struct sluice_producer *p)
{
	struct conn *best = NULL;
	for (uint32_t i = 0; i < p->nconns; i++) {
		struct conn *c = &p->conns[i];
		if (c->fd < 0 || c->inflight_n >= p->inflight_max)
			continue;
		if (!best || c->inflight_n < best->inflight_n)
			best = c;
	}
	return best;
}

static bool any_conn_up(const struct sluice_producer *p)
{
	for (uint32_t i = 0; i < p->nconns; i++)
		if (p->conns[i].fd >= 0)
			return true;
	return false;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static bool pipeline_idle(const struct sluice_producer *p)
{
	if (!list_empty(&p->ready))
		return false;
	for (uint32_t i = 0; i < p->nconns; i++)
		if (p->conns[i].inflight_n > 0)
			return false;
	return true;
}

/* Whether a sealed batch would leave at once: nothing waits before it and a slot is free. */
static bool slot_free(struct sluice_producer *p)
{
	return list_empty(&p->ready) && pick_conn(p) != NULL;
}

/*
 * Under p->mu: seal the batches that are due, move ready batches onto connections. Returns the
 * next time (microseconds) something becomes due (INT64_MAX: nothing), and whether any batch was
 * dispatched.
 */
static int64_t schedule(struct sluice_producer *p, int64_t now_us, bool *ret_dispatched)
{
	int64_t now = now_us / 1000;
	int64_t next = INT64_MAX;
	/*
	 * Now: for a flush or shutdown, or when the pipeline is idle (waiting would only add
	 * latency). Otherwise a batch goes when its linger is over (at once with no linger), but
	 * only into a free request slot: while every slot is taken it keeps filling (until full,
	 * when send seals it), so records queued behind a full window coalesce into one request
	 * instead of piling up as many small ones. The next answer runs this again.
	 */
	bool seal_all_now = p->open_n > 0 && (p->flushers > 0 || p->stopping || pipeline_idle(p));
	bool room = p->open_n > 0 && !seal_all_now && slot_free(p);
	for (size_t i = 0; i < p->open_n;) {
		struct batch *b = p->open[i];
		int64_t due = p->linger_us < 0 ? 0 : b->open_us + p->linger_us;
		if (seal_all_now || (room && due <= now_us)) {
			seal(p, i);
			continue;
		}
		if (room)
			next = min64(next, due);
		i++;
	}
	*ret_dispatched = false;
	while (!list_empty(&p->ready)) {
		struct batch *b = container_of(p->ready.next, struct batch, node);
		if (b->not_before_ms > now) {
			next = min64(next, b->not_before_ms * 1000);
			break;
		}
		struct conn *c = pick_conn(p);
		if (!c)
			break;
		list_remove(&b->node);
		b->attempts++;
		b->written = 0;
		b->deadline_ms = p->timeout_ms < 0 ? INT64_MAX : now + p->timeout_ms;
		b->request_id = ++c->next_request_id;
		if (b->request_id == 0)
			b->request_id = ++c->next_request_id;
		sl_store_u32(b->buf.data + 8, b->request_id);
		sl_store_u32(b->buf.data + b->count_off, b->count);
		sl_proto_finish_frame(&b->buf, 0);
		list_insert_before(&c->inflight, &b->node);
		c->inflight_n++;
		p->stats.requests_sent++;
		*ret_dispatched = true;
	}
	p->window_full = pick_conn(p) == NULL;
	for (uint32_t i = 0; i < p->nconns && p->window_full; i++)
		if (p->conns[i].fd < 0)
			p->window_full = false; /* reconnecting: keep waking the I/O thread */
	return next;
}

/* No connection is up: every ready batch spends an attempt on the failed connect. */
static void fail_ready(struct sluice_producer *p, int err, int64_t retry_at_ms)
{
	struct list failing;
	list_init(&failing);
	pthread_mutex_lock(&p->mu);
	while (!list_empty(&p->ready)) {
		struct batch *b = container_of(p->ready.next, struct batch, node);
		list_remove(&b->node);
		list_insert_before(&failing, &b->node);
	}
	pthread_mutex_unlock(&p->mu);
	while (!list_empty(&failing)) {
		struct batch *b = container_of(failing.next, struct batch, node);
		list_remove(&b->node);
		b->attempts++;
		if (b->attempts <= p->retries) {
			pthread_mutex_lock(&p->mu);
			b->not_before_ms = retry_at_ms;
			ready_insert(p, b);
			pthread_mutex_unlock(&p->mu);
		} else {
			batch_fail(p, b, err);
		}
	}
}

static void *io_main(void *arg)
{
	struct sluice_producer *p = arg;
	struct pollfd *pfds = p->pfds;
	for (;;) {
		int64_t now = sl_mono_ms();
		/* Reconnect connections that are due (blocking, bounded by timeout_ms). */
		for (uint32_t i = 0; i < p->nconns; i++) {
			struct conn *c = &p->conns[i];
			if (c->fd >= 0 || c->reconnect_at_ms > now)
				continue;
			pthread_mutex_lock(&p->mu);
			bool needed = !list_empty(&p->ready) || p->open_n > 0;
			pthread_mutex_unlock(&p->mu);
			if (!needed)
				continue;
			char err[256] = "";
			int r = conn_open(p, c, err, sizeof(err));
			if (r < 0) {
				c->reconnect_at_ms =
				    sl_mono_ms() + (c->backoff_ms ? c->backoff_ms : p->backoff_ms);
				c->backoff_ms = c->backoff_ms
						    ? min64(2 * c->backoff_ms, BACKOFF_MS_MAX)
						    : p->backoff_ms;
				if (!any_conn_up(p))
					fail_ready(p, r, c->reconnect_at_ms);
			}
			now = sl_mono_ms();
		}

		pthread_mutex_lock(&p->mu);
		p->io_sleeping = false;
		bool dispatched;
		int64_t next = schedule(p, mono_us(), &dispatched); /* microseconds from here */
		uint64_t seen = p->wake_events;
		bool done = p->stopping && list_empty(&p->live);
		pthread_mutex_unlock(&p->mu);
		if (done)
			break;

		nfds_t nfds = 0;
		pfds[nfds++] = (struct pollfd){.fd = p->wake_fd, .events = POLLIN};
		for (uint32_t i = 0; i < p->nconns; i++) {
			struct conn *c = &p->conns[i];
			if (c->fd < 0) {
				if (c->reconnect_at_ms > now)
					next = min64(next, c->reconnect_at_ms * 1000);
				continue;
			}
			if (dispatched || c->want_write) {
				int r = conn_write(c);
				if (r < 0) {
					conn_down(p, c, r);
					continue;
				}
			}
			if (!list_empty(&c->inflight)) {
				int64_t dl =
				    container_of(c->inflight.next, struct batch, node)->deadline_ms;
				next = min64(next, dl > INT64_MAX / 1000 ? INT64_MAX : dl * 1000);
			}
		}
		for (uint32_t i = 0; i < p->nconns; i++) {
			struct conn *c = &p->conns[i];
			if (c->fd >= 0)
				pfds[nfds++] = (struct pollfd){
				    .fd = c->fd,
				    .events = (short)(POLLIN | (c->want_write ? POLLOUT : 0))};
		}

		int64_t now_us = mono_us();
		/* Microsecond timers (sub-millisecond linger): ppoll, not poll. */
		struct timespec ts = {0, 0};
		struct timespec *timeout = &ts;
		if (next == INT64_MAX)
			timeout = NULL;
		else if (next > now_us)
			ts = (struct timespec){.tv_sec = (next - now_us) / 1000000,
					       .tv_nsec = (long)((next - now_us) % 1000000) * 1000};
		if (timeout == NULL || ts.tv_sec || ts.tv_nsec) {
			pthread_mutex_lock(&p->mu);
			/* A send, seal or requeue since schedule() must not wait for the timeout.
			 */
			if (p->wake_events != seen)
				ts = (struct timespec){0, 0}, timeout = &ts;
			else
				p->io_sleeping = true;
			pthread_mutex_unlock(&p->mu);
		}
		int n = ppoll(pfds, nfds, timeout, NULL);
		if (n < 0 && errno != EINTR)
			continue;
		if (n > 0 && (pfds[0].revents & POLLIN)) {
			uint64_t v;
			ssize_t rd = read(p->wake_fd, &v, sizeof(v));
			(void)rd;
		}
		for (nfds_t k = 1; n > 0 && k < nfds; k++) {
			if (!pfds[k].revents)
				continue;
			struct conn *c = NULL;
			for (uint32_t i = 0; i < p->nconns; i++)
				if (p->conns[i].fd == pfds[k].fd)
					c = &p->conns[i];
			if (!c)
				continue;
			int r = 0;
			if (pfds[k].revents & (POLLIN | POLLERR | POLLHUP))
				r = conn_read(p, c);
			if (r == 0 && (pfds[k].revents & POLLOUT))
				r = conn_write(c);
			if (r < 0)
				conn_down(p, c, r);
		}
		now = sl_mono_ms();
		for (uint32_t i = 0; i < p->nconns; i++) {
			struct conn *c = &p->conns[i];
			if (c->fd >= 0 && !list_empty(&c->inflight) &&
			    container_of(c->inflight.next, struct batch, node)->deadline_ms <= now)
				conn_down(p, c, SLUICE_ERR_TIMEOUT);
		}
	}
	return NULL;
}

/* ---- create / destroy ---- */

int sluice_producer_create(const char *host_port, const struct sluice_producer_options *opts,
			   struct sluice_producer **ret)
{
	struct sluice_producer_options o = {0};
	if (opts)
		o = *opts;
	if (o.max_records_per_request > SLUICE_PUT_BATCH_MAX ||
	    o.max_bytes_per_request > BYTES_PER_REQUEST_MAX ||
	    o.max_inflight_requests > INFLIGHT_MAX || o.connections > CONNECTIONS_MAX ||
	    o.linger_us > LINGER_US_MAX || o.linger_ms > LINGER_US_MAX / 1000)
		return SLUICE_ERR_INVALID_ARGUMENT;
	struct sluice_producer *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->wake_fd = -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->space_cv, &ca);
	pthread_cond_init(&p->done_cv, &ca);
	pthread_condattr_destroy(&ca);
	list_init(&p->ready);
	list_init(&p->live);
	list_init(&p->pool);
	p->records_max =
	    o.max_records_per_request ? o.max_records_per_request : RECORDS_PER_REQUEST_DEFAULT;
	p->bytes_max =
	    o.max_bytes_per_request ? o.max_bytes_per_request : BYTES_PER_REQUEST_DEFAULT;
	p->linger_us = o.linger_us   ? o.linger_us
		       : o.linger_ms ? (int64_t)o.linger_ms * 1000
				     : LINGER_US_DEFAULT;
	p->inflight_max = o.max_inflight_requests ? o.max_inflight_requests : INFLIGHT_DEFAULT;
	p->nconns = o.connections ? o.connections : 1;
	p->buffer_bytes_max = o.buffer_bytes_max ? o.buffer_bytes_max : BUFFER_BYTES_DEFAULT;
	p->retries = o.retries > 0 ? o.retries : o.retries < 0 ? 0 : RETRIES_DEFAULT;
	p->backoff_ms = o.retry_backoff_ms > 0 ? o.retry_backoff_ms : BACKOFF_MS_DEFAULT;
	p->timeout_ms = o.timeout_ms ? o.timeout_ms : TIMEOUT_MS_DEFAULT;
	p->nonblocking = o.nonblocking;
	int r = -ENOMEM;
	p->host_port = strdup(host_port ? host_port : SLUICE_DEFAULT_SERVER);
	if (!p->host_port)
		goto fail;
	if (o.auth_token && !(p->auth_token = strdup(o.auth_token)))
		goto fail;
	p->conns = calloc(p->nconns, sizeof(*p->conns));
	p->pfds = calloc(p->nconns + 1, sizeof(*p->pfds));
	if (!p->conns || !p->pfds)
		goto fail;
	for (uint32_t i = 0; i < p->nconns; i++) {
		p->conns[i].fd = -1;
		list_init(&p->conns[i].inflight);
		sl_buf_init(&p->conns[i].in);
	}
	p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->wake_fd < 0) {
		r = -errno;
		goto fail;
	}
	for (uint32_t i = 0; i < p->nconns; i++) {
		char err[256];
		r = conn_open(p, &p->conns[i], err, sizeof(err));
		if (r < 0)
			goto fail;
	}
	r = -pthread_create(&p->thread, NULL, io_main, p);
	if (r < 0)
		goto fail;
	p->thread_started = true;
	*ret = p;
	return 0;
fail:
	sluice_producer_destroy(p);
	return r;
}

void sluice_producer_destroy(struct sluice_producer *p)
{
	if (!p)
		return;
	if (p->thread_started) {
		sluice_producer_flush(p, -1);
		pthread_mutex_lock(&p->mu);
		p->stopping = true;
		p->io_sleeping = true; /* force the wakeup write */
		wake_io(p);
		pthread_cond_broadcast(&p->space_cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thread, NULL);
	}
	for (uint32_t i = 0; p->conns && i < p->nconns; i++) {
		if (p->conns[i].fd >= 0)
			close(p->conns[i].fd);
		sl_buf_finish(&p->conns[i].in);
	}
	while (!list_empty(&p->pool)) {
		struct batch *b = container_of(p->pool.next, struct batch, node);
		list_remove(&b->node);
		batch_free(b);
	}
	free(p->conns);
	free(p->pfds);
	free(p->open);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	pthread_cond_destroy(&p->space_cv);
	pthread_cond_destroy(&p->done_cv);
	pthread_mutex_destroy(&p->mu);
	free(p->host_port);
	free(p->auth_token);
	free(p);
}
