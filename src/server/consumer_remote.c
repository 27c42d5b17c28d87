/*
 * Remote handlers: processes that attach to a consumer over the native protocol
 * (CONSUMER_ATTACH) and get its batches pushed on their connection (CONSUMER_BATCH), answering
 * each with CONSUMER_ACK.
 *
 * Threads: an attachment (struct sl_remote) belongs to the loop of its connection; the consumer
 * keeps a locked list of its attachments for the shards' owner loops to choose from. Shard k of
 * the stream goes to attachment k mod n, so shards spread over the attached processes and move
 * when one leaves. A batch travels owner loop -> connection loop (encode and send) -> owner loop
 * (with the ack, or with `disconnected` when the connection closes first, so it is retried).
 */
#include "server/consumer_internal.h"

#include "common/clock.h"
#include "common/logging.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Batches one attachment may have unanswered: one per shard at most, so this bounds a
 * consumer with many shards attached to one process. */
#define REMOTE_INFLIGHT_MAX 4096

struct sl_remote {
	uint32_t attach_request_id; /* answered again with an error when the consumer goes */
	atomic_int refs;
	atomic_bool closed;
	struct sl_conn *conn;
	struct sl_loop *loop;
	struct sl_consumer *c;
	/* connection loop only */
	struct sl_batch **inflight;
	size_t inflight_count;
};

static _Atomic uint32_t next_delivery_id = 1;

static void remote_unref(struct sl_remote *r)
{
	if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
		return;
	sl_consumer_unref(r->c);
	free(r->inflight);
	free(r);
}

/* Hand a batch back to its owner loop with the outcome already filled in. */
static void send_back(struct sl_loop *from, struct sl_batch *b)
{
	struct sl_cshard *s = b->cshard;
	sl_loop_post(from, s->c->owner->srv->workers[s->owner].loop, &b->op);
}

/* Pick the attachment for a shard, with a reference, or NULL when none is attached. */
struct sl_remote *sl_remote_pick(struct sl_consumer *c, uint32_t shard_index);
struct sl_remote *sl_remote_pick(struct sl_consumer *c, uint32_t shard_index)
{
	pthread_mutex_lock(&c->remote_mu);
	struct sl_remote *r = NULL;
	if (c->remote_count) {
		r = c->remotes[shard_index % c->remote_count];
		atomic_fetch_add(&r->refs, 1);
	}
	pthread_mutex_unlock(&c->remote_mu);
	return r;
}

struct push_msg {
	struct sl_op op;
	struct sl_remote *r;
	struct sl_batch *b;
};

static void fail_batch(struct sl_batch *b, const char *msg)
{
	b->invoke_status = SLUICE_ERR_DISCONNECTED;
	b->result.status = SLUICE_HANDLER_ERROR;
	snprintf(b->result.message, sizeof(b->result.message), "%s", msg);
}

static void push_on_conn_loop(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct push_msg *m = (struct push_msg *)op;
	struct sl_remote *r = m->r;
	struct sl_batch *b = m->b;
	free(m);
	if (atomic_load(&r->closed) || r->inflight_count >= REMOTE_INFLIGHT_MAX) {
		fail_batch(b, "remote handler disconnected");
		send_back(loop, b);
		remote_unref(r);
		return;
	}
	struct sl_cshard *s = b->cshard;
	struct sl_buf *out = sl_conn_out(r->conn);
	size_t start;
	struct sl_consumer_batch_head head = {
	    .consumer = {s->c->cfg.name, strlen(s->c->cfg.name)},
	    .stream = {s->c->cfg.stream, strlen(s->c->cfg.stream)},
	    .shard_id = s->shard->id,
	    .attempt = b->hb.attempt,
	    .count = (uint32_t)b->hb.count,
	};
	int e =
	    sl_proto_encode_push_head(out, SL_OP_CONSUMER_BATCH, (uint32_t)b->delivery_id, &start);
	e = e ?: sl_proto_put_consumer_batch_head(out, &head);
	for (size_t i = 0; e == 0 && i < b->hb.count; i++) {
		const struct sluice_handler_record *hr = &b->hb.records[i];
		struct sluice_record rec = {
		    .seq = hr->seq,
		    .ts_ms = hr->ts_ms,
		    .key = hr->key,
		    .key_len = (uint16_t)hr->key_len,
		    .data = hr->data,
		    .data_len = hr->data_len,
		};
		e = sl_proto_put_record_out(out, &rec);
	}
	if (e < 0) {
		out->len = start;
		fail_batch(b, "cannot encode the batch for the remote handler");
		send_back(loop, b);
		remote_unref(r);
		return;
	}
	sl_proto_finish_frame(out, start);
	sl_conn_flush(r->conn);
	struct sl_batch **n = realloc(r->inflight, (r->inflight_count + 1) * sizeof(*n));
	if (!n) {
		fail_batch(b, "out of memory");
		send_back(loop, b);
		remote_unref(r);
		return;
	}
	r->inflight = n;
	r->inflight[r->inflight_count++] = b;
	remote_unref(r); /* the message's reference; the attachment lives with its connection */
}

/* Owner loop: send b to attachment r (a reference the call takes over). */
void sl_remote_deliver(struct sl_worker *owner, struct sl_remote *r, struct sl_batch *b);
void sl_remote_deliver(struct sl_worker *owner, struct sl_remote *r, struct sl_batch *b)
{
	struct push_msg *m = calloc(1, sizeof(*m));
	b->delivery_id = atomic_fetch_add(&next_delivery_id, 1);
	if (!m) {
		fail_batch(b, "out of memory");
		remote_unref(r);
		sl_loop_post(owner->loop, owner->loop, &b->op);
		return;
	}
	m->r = r;
	m->b = b;
	m->op.complete = push_on_conn_loop;
	sl_loop_post(owner->loop, r->loop, &m->op);
}

/* ---- on the connection's loop ---- */

int sl_remote_attach(struct sl_worker *w, struct sl_conn *conn, const char *name,
		     uint32_t request_id, struct sl_remote **ret, char *err_msg,
		     size_t err_msg_len);
int sl_remote_attach(struct sl_worker *w, struct sl_conn *conn, const char *name,
		     uint32_t request_id, struct sl_remote **ret, char *err_msg, size_t err_msg_len)
{
	struct sl_consumers *cs = w->srv->consumers;
	pthread_mutex_lock(&cs->mu);
	struct sl_consumer *c = NULL;
	for (size_t i = 0; i < cs->count; i++)
		if (strcmp(cs->list[i]->cfg.name, name) == 0)
			c = cs->list[i];
	if (!c) {
		pthread_mutex_unlock(&cs->mu);
		snprintf(err_msg, err_msg_len, "consumer %s not found", name);
		return SLUICE_ERR_STREAM_NOT_FOUND;
	}
	if (c->cfg.handler_kind != SL_HANDLER_REMOTE) {
		pthread_mutex_unlock(&cs->mu);
		snprintf(err_msg, err_msg_len, "consumer %s does not have a remote handler", name);
		return SLUICE_ERR_INVALID_ARGUMENT;
	}
	sl_consumer_ref(c);
	pthread_mutex_unlock(&cs->mu);
	struct sl_remote *r = calloc(1, sizeof(*r));
	if (!r) {
		sl_consumer_unref(c);
		return -ENOMEM;
	}
	atomic_init(&r->refs, 2); /* the connection's and the consumer list's */
	r->attach_request_id = request_id;
	atomic_init(&r->closed, false);
	r->conn = conn;
	r->loop = w->loop;
	r->c = c;
	pthread_mutex_lock(&c->remote_mu);
	struct sl_remote **n = realloc(c->remotes, (c->remote_count + 1) * sizeof(*n));
	if (!n) {
		pthread_mutex_unlock(&c->remote_mu);
		sl_consumer_unref(c);
		free(r);
		return -ENOMEM;
	}
	c->remotes = n;
	c->remotes[c->remote_count++] = r;
	pthread_mutex_unlock(&c->remote_mu);
	sl_conn_hold(conn, 0); /* pushes need the connection until it detaches */
	SL_INFO("remote handler attached to consumer %s (%zu attached)", name, c->remote_count);
	*ret = r;
	return 0;
}

/* The connection closed: leave the consumer and send every unanswered batch back. */
void sl_remote_detach(struct sl_remote *r);
void sl_remote_detach(struct sl_remote *r)
{
	if (atomic_exchange(&r->closed, true))
		return;
	struct sl_consumer *c = r->c;
	pthread_mutex_lock(&c->remote_mu);
	for (size_t i = 0; i < c->remote_count; i++) {
		if (c->remotes[i] == r) {
			memmove(&c->remotes[i], &c->remotes[i + 1],
				(c->remote_count - i - 1) * sizeof(*c->remotes));
			c->remote_count--;
			break;
		}
	}
	size_t left = c->remote_count;
	pthread_mutex_unlock(&c->remote_mu);
	for (size_t i = 0; i < r->inflight_count; i++) {
		fail_batch(r->inflight[i], "remote handler disconnected");
		send_back(r->loop, r->inflight[i]);
	}
	r->inflight_count = 0;
	SL_INFO("remote handler left consumer %s (%zu attached)", c->cfg.name, left);
	sl_conn_release(r->conn, 0);
	remote_unref(r); /* the consumer list's */
	remote_unref(r); /* the connection's */
}

/* CONSUMER_ACK on the connection's loop. 0, or an error to answer with. */
int sl_remote_ack(struct sl_remote *r, const struct sl_req_consumer_ack *ack, char *err_msg,
		  size_t err_msg_len);
int sl_remote_ack(struct sl_remote *r, const struct sl_req_consumer_ack *ack, char *err_msg,
		  size_t err_msg_len)
{
	for (size_t i = 0; i < r->inflight_count; i++) {
		struct sl_batch *b = r->inflight[i];
		if ((uint32_t)b->delivery_id != ack->delivery_id)
			continue;
		if (ack->status == SL_PROTO_ACK_FAILED_FROM && ack->failed_from > b->hb.count) {
			snprintf(err_msg, err_msg_len, "failed_from %u is past the batch of %zu",
				 ack->failed_from, b->hb.count);
			return SLUICE_ERR_INVALID_ARGUMENT;
		}
		r->inflight[i] = r->inflight[--r->inflight_count];
		b->invoke_status = 0;
		b->result.status = (enum sluice_handler_status)ack->status;
		b->result.failed_from = ack->failed_from;
		size_t n = ack->message.len < sizeof(b->result.message) - 1
			       ? ack->message.len
			       : sizeof(b->result.message) - 1;
		memcpy(b->result.message, ack->message.p, n);
		b->result.message[n] = '\0';
		send_back(r->loop, b);
		return 0;
	}
	snprintf(err_msg, err_msg_len, "no batch %u is waiting for an answer on this connection",
		 ack->delivery_id);
	return SLUICE_ERR_INVALID_ARGUMENT;
}

struct kick_msg {
	struct sl_op op;
	struct sl_remote *r;
};

static void kick_on_conn_loop(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct kick_msg *m = (struct kick_msg *)op;
	struct sl_remote *r = m->r;
	free(m);
	if (!atomic_load(&r->closed)) {
		/* The ATTACH is answered once more, with an error: the attachment is over. */
		sl_proto_encode_error(sl_conn_out(r->conn), SL_OP_CONSUMER_ATTACH,
				      r->attach_request_id, SLUICE_ERR_STREAM_NOT_FOUND,
				      "the consumer was deleted");
		sl_conn_close(r->conn, true); /* on_close detaches */
	}
	remote_unref(r);
}

/* The consumer is gone: end every attachment (from any thread). */
void sl_remote_kick_all(struct sl_consumer *c);
void sl_remote_kick_all(struct sl_consumer *c)
{
	pthread_mutex_lock(&c->remote_mu);
	for (size_t i = 0; i < c->remote_count; i++) {
		struct kick_msg *m = calloc(1, sizeof(*m));
		if (!m)
			continue;
		m->r = c->remotes[i];
		atomic_fetch_add(&m->r->refs, 1);
		m->op.complete = kick_on_conn_loop;
		sl_loop_post_external(m->r->loop, &m->op);
	}
	pthread_mutex_unlock(&c->remote_mu);
}
