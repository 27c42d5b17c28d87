/*
 * Consumers in libsluice: the admin calls on struct sluice_client (create, delete, list,
 * describe, reset) and struct sluice_remote_consumer, a connection of its own that is attached
 * to a "remote" consumer, receives CONSUMER_BATCH pushes and answers each with CONSUMER_ACK.
 *
 * The remote consumer's connection carries two kinds of incoming frames: PUSH frames (batches,
 * request_id = the server's delivery id) and RESPONSE frames (the answers to our ACKs, and to
 * ATTACH). It never has more than one batch in hand: the handler runs, the ACK goes out, then
 * the next frame is read; the server may have pushed more batches meanwhile (of other shards),
 * which simply wait in the socket buffer.
 */
#include "client/client_internal.h"

#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Mirrors of the server's limits (src/consumer/consumer_config.h): the client refuses what the
 * server would, with a message, before a round trip. */
#define HANDLER_TARGET_LEN_MAX 4095
#define CONSUMER_DEFAULT_BATCH_SIZE 100
#define CONSUMER_DEFAULT_TIMEOUT_MS 60000

static int malformed(struct sluice_client *c)
{
	return sl_client_fail(c, SLUICE_ERR_PROTOCOL, "malformed answer from the server");
}

static struct sl_str str_of(const char *s)
{
	return (struct sl_str){.p = s ? s : "", .len = s ? strlen(s) : 0};
}

/* ---- names ---- */

const char *sluice_consumer_state_name(int state)
{
	switch (state) {
	case SLUICE_CONSUMER_IDLE:
		return "IDLE";
	case SLUICE_CONSUMER_DELIVERING:
		return "DELIVERING";
	case SLUICE_CONSUMER_RETRYING:
		return "RETRYING";
	case SLUICE_CONSUMER_FINISHED:
		return "FINISHED";
	case SLUICE_CONSUMER_WAITING_REMOTE:
		return "WAITING_REMOTE";
	case SLUICE_CONSUMER_WAITING_PARENTS:
		return "WAITING_PARENTS";
	default:
		return "UNKNOWN";
	}
}

const char *sluice_handler_kind_name(int kind)
{
	switch (kind) {
	case SLUICE_HANDLER_KIND_EXEC:
		return "exec";
	case SLUICE_HANDLER_KIND_PLUGIN:
		return "plugin";
	case SLUICE_HANDLER_KIND_REMOTE:
		return "remote";
	default:
		return "unknown";
	}
}

void sluice_consumer_options_init(struct sluice_consumer_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->batch_size = CONSUMER_DEFAULT_BATCH_SIZE;
	opts->batch_window_ms = 0;
	opts->start.type = SLUICE_POS_LATEST;
	opts->start.value = 0;
	opts->max_retries = -1;
	opts->max_record_age_s = -1;
	opts->bisect_on_error = false;
	opts->on_failure = NULL;
	opts->parallelism = 1;
	opts->timeout_ms = CONSUMER_DEFAULT_TIMEOUT_MS;
}

/* "exec:CMD", "plugin:PATH", "remote" (the server's rules, sl_consumer_parse_handler). */
static int parse_handler_spec(struct sluice_client *c, const char *spec, uint8_t *ret_kind,
			      struct sl_str *ret_target)
{
	static const char exec_prefix[] = "exec:", plugin_prefix[] = "plugin:";
	uint8_t kind;
	const char *t;
	if (!spec)
		spec = "";
	if (strcmp(spec, "remote") == 0) {
		kind = SL_PROTO_HANDLER_REMOTE;
		t = "";
	} else if (strncmp(spec, exec_prefix, sizeof(exec_prefix) - 1) == 0) {
		kind = SL_PROTO_HANDLER_EXEC;
		t = spec + sizeof(exec_prefix) - 1;
	} else if (strncmp(spec, plugin_prefix, sizeof(plugin_prefix) - 1) == 0) {
		kind = SL_PROTO_HANDLER_PLUGIN;
		t = spec + sizeof(plugin_prefix) - 1;
	} else {
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "handler: want exec:COMMAND, plugin:PATH or remote, not '%s'",
				      spec);
	}
	size_t n = strlen(t);
	if (kind != SL_PROTO_HANDLER_REMOTE && n == 0)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT, "handler: %s needs a %s",
				      kind == SL_PROTO_HANDLER_EXEC ? "exec" : "plugin",
				      kind == SL_PROTO_HANDLER_EXEC ? "command" : "path");
	if (n > HANDLER_TARGET_LEN_MAX)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "handler: longer than %d bytes", HANDLER_TARGET_LEN_MAX);
	*ret_kind = kind;
	*ret_target = (struct sl_str){.p = t, .len = n};
	return 0;
}

/* ---- admin ---- */

int sluice_consumer_create(struct sluice_client *c, const char *name, const char *stream,
			   const char *handler_spec, const struct sluice_consumer_options *opts)
{
	struct sluice_consumer_options defaults;
	if (!opts) {
		sluice_consumer_options_init(&defaults);
		opts = &defaults;
	}
	size_t len;
	int r;
	if ((r = sl_client_check_name(c, name, &len)) < 0 ||
	    (r = sl_client_check_name(c, stream, &len)) < 0)
		return r;
	if (opts->on_failure && opts->on_failure[0] &&
	    (r = sl_client_check_name(c, opts->on_failure, &len)) < 0)
		return sl_client_fail(c, r, "on_failure: not a valid stream name");
	struct sl_consumer_wire w = {
	    .name = str_of(name),
	    .stream = str_of(stream),
	    .batch_size = opts->batch_size,
	    .batch_window_ms = opts->batch_window_ms,
	    .start = opts->start,
	    .max_retries = opts->max_retries,
	    .max_record_age_s = opts->max_record_age_s,
	    .bisect_on_error = opts->bisect_on_error,
	    .on_failure = str_of(opts->on_failure),
	    .parallelism = opts->parallelism,
	    .timeout_ms = opts->timeout_ms,
	};
	if ((r = parse_handler_spec(c, handler_spec, &w.handler_kind, &w.handler_target)) < 0)
		return r;
	if (opts->start.type != SLUICE_POS_TRIM_HORIZON && opts->start.type != SLUICE_POS_LATEST &&
	    opts->start.type != SLUICE_POS_AT_TIMESTAMP)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "start: must be trim-horizon, latest or a timestamp");
	size_t start;
	r = sl_client_begin(c, SL_OP_CONSUMER_CREATE, &start);
	if (r == 0)
		r = sl_proto_put_consumer_config(&c->out, &w);
	if (r < 0)
		return r;
	struct sl_reader rest;
	return sl_client_call(c, start, false, &rest);
}

/* Requests whose body is just a consumer name. */
static int name_call(struct sluice_client *c, uint8_t opcode, const char *name, bool idempotent,
		     struct sl_reader *ret_rest)
{
	size_t len, start;
	int r = sl_client_check_name(c, name, &len);
	if (r < 0)
		return r;
	r = sl_client_begin(c, opcode, &start);
	if (r == 0)
		r = sl_proto_put_str8(&c->out, name, len);
	if (r < 0)
		return r;
	return sl_client_call(c, start, idempotent, ret_rest);
}

int sluice_consumer_delete(struct sluice_client *c, const char *name)
{
	struct sl_reader rest;
	return name_call(c, SL_OP_CONSUMER_DELETE, name, false, &rest);
}

int sluice_consumer_list(struct sluice_client *c, char ***ret_names, size_t *ret_count)
{
	size_t start;
	int r = sl_client_begin(c, SL_OP_CONSUMER_LIST, &start);
	if (r < 0)
		return r;
	struct sl_reader rest;
	r = sl_client_call(c, start, true, &rest);
	if (r < 0)
		return r;
	uint32_t n;
	if (!sl_reader_u32(&rest, &n) || n > sl_reader_left(&rest))
		return malformed(c);
	char **names = calloc(n ? n : 1, sizeof(*names));
	if (!names)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct sl_str name;
		if (sl_proto_get_str8(&rest, &name) < 0 ||
		    !sl_proto_name_valid((const uint8_t *)name.p, name.len)) {
			sluice_strings_free(names, i);
			return malformed(c);
		}
		names[i] = strndup(name.p, name.len);
		if (!names[i]) {
			sluice_strings_free(names, i);
			return -ENOMEM;
		}
	}
	if (sl_reader_left(&rest) != 0) {
		sluice_strings_free(names, n);
		return malformed(c);
	}
	*ret_names = names;
	*ret_count = n;
	return 0;
}

void sluice_consumer_info_free(struct sluice_consumer_info *info)
{
	if (!info)
		return;
	free(info->name);
	free(info->stream);
	free(info->handler_target);
	free((char *)info->options.on_failure);
	for (size_t i = 0; info->shards && i < info->shard_count; i++)
		free(info->shards[i].last_error);
	free(info->shards);
	free(info);
}

int sluice_consumer_describe(struct sluice_client *c, const char *name,
			     struct sluice_consumer_info **ret)
{
	struct sl_reader rest;
	int r = name_call(c, SL_OP_CONSUMER_DESCRIBE, name, true, &rest);
	if (r < 0)
		return r;
	struct sl_consumer_wire w;
	int64_t created;
	uint32_t n;
	if (sl_proto_get_consumer_config(&rest, &w) < 0 ||
	    !sl_reader_u64(&rest, (uint64_t *)&created) || !sl_reader_u32(&rest, &n) ||
	    n > sl_reader_left(&rest) / SL_PROTO_CONSUMER_SHARD_STATUS_BYTES_MIN)
		return malformed(c);
	struct sluice_consumer_info *info = calloc(1, sizeof(*info));
	if (!info)
		return -ENOMEM;
	r = -ENOMEM;
	info->name = strndup(w.name.p, w.name.len);
	info->stream = strndup(w.stream.p, w.stream.len);
	info->handler_target = strndup(w.handler_target.p, w.handler_target.len);
	info->shards = calloc(n ? n : 1, sizeof(*info->shards));
	if (!info->name || !info->stream || !info->handler_target || !info->shards)
		goto fail;
	if (w.on_failure.len &&
	    !(info->options.on_failure = strndup(w.on_failure.p, w.on_failure.len)))
		goto fail;
	info->handler_kind = w.handler_kind;
	info->options.batch_size = w.batch_size;
	info->options.batch_window_ms = w.batch_window_ms;
	info->options.start = w.start;
	info->options.max_retries = w.max_retries;
	info->options.max_record_age_s = w.max_record_age_s;
	info->options.bisect_on_error = w.bisect_on_error;
	info->options.parallelism = w.parallelism;
	info->options.timeout_ms = w.timeout_ms;
	info->created_ms = created;
	for (uint32_t i = 0; i < n; i++) {
		struct sl_consumer_shard_status s;
		if (sl_proto_get_consumer_shard_status(&rest, &s) < 0) {
			r = malformed(c);
			goto fail;
		}
		struct sluice_consumer_shard_status *d = &info->shards[i];
		d->last_error = strndup(s.last_error.p, s.last_error.len);
		info->shard_count = i + 1; /* free() sees this entry, even half-built */
		if (!d->last_error)
			goto fail;
		d->shard_id = s.shard_id;
		d->checkpoint_seq = s.checkpoint_seq;
		d->lag_records = s.lag_records;
		d->lag_ms = s.lag_ms;
		d->state = s.state;
		d->delivered = s.delivered;
		d->batches_failed = s.batches_failed;
		d->retries = s.retries;
		d->sent_to_on_failure = s.sent_to_on_failure;
		d->expired = s.expired;
	}
	if (sl_reader_left(&rest) != 0) {
		r = malformed(c);
		goto fail;
	}
	*ret = info;
	return 0;
fail:
	sluice_consumer_info_free(info);
	return r;
}

int sluice_consumer_reset(struct sluice_client *c, const char *name, int64_t shard_id,
			  const struct sluice_position *to)
{
	size_t len, start;
	int r = sl_client_check_name(c, name, &len);
	if (r < 0)
		return r;
	if (shard_id < -1 || shard_id > (int64_t)UINT32_MAX)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "shard id must be -1 (all) or 0..%u", UINT32_MAX);
	if (!to || to->type < SLUICE_POS_TRIM_HORIZON || to->type > SLUICE_POS_AT_TIMESTAMP)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT, "bad position");
	struct sl_req_consumer_reset req = {
	    .name = {.p = name, .len = len}, .shard_id = shard_id, .position = *to};
	r = sl_client_begin(c, SL_OP_CONSUMER_RESET, &start);
	if (r == 0)
		r = sl_proto_put_consumer_reset(&c->out, &req);
	if (r < 0)
		return r;
	struct sl_reader rest;
	return sl_client_call(c, start, false, &rest);
}

/* ======================================================================================
 * Remote consumers
 * ====================================================================================== */

struct sluice_remote_consumer {
	char *host_port;
	char *consumer;
	char *auth_token;
	int timeout_ms;
	int fd;	     /* -1 while disconnected: the next run reconnects */
	int wake_fd; /* eventfd: stop() wakes a run blocked in poll */
	atomic_bool stop;
	uint32_t next_request_id;
	uint32_t attach_id; /* request id of the ATTACH, whose error response ends the run */
	struct sl_buf in;
	struct sl_buf out;
	/* The batch handed to the handler; reused. */
	struct sluice_handler_record *records;
	size_t records_cap;
	char consumer_buf[SLUICE_NAME_LEN_MAX + 1];
	char stream_buf[SLUICE_NAME_LEN_MAX + 1];
	atomic_uint_fast64_t batches;
	atomic_uint_fast64_t nrecords;
	atomic_uint_fast64_t acks_refused;
	bool message_fresh; /* message was set since the run loop's last turn */
	char message[SL_PROTO_MESSAGE_MAX + 64];
};

__attribute__((format(printf, 3, 4))) static int rc_fail(struct sluice_remote_consumer *rc, int err,
							 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rc->message, sizeof(rc->message), fmt, ap);
	va_end(ap);
	rc->message_fresh = true;
	return err;
}

static void rc_drop(struct sluice_remote_consumer *rc)
{
	if (rc->fd >= 0)
		close(rc->fd);
	rc->fd = -1;
	sl_buf_reset(&rc->in);
}

static uint32_t rc_next_id(struct sluice_remote_consumer *rc)
{
	if (++rc->next_request_id == 0)
		rc->next_request_id = 1;
	return rc->next_request_id;
}

/* Connect, authenticate, ATTACH and wait for its answer. */
static int rc_connect(struct sluice_remote_consumer *rc)
{
	rc_drop(rc);
	rc->message[0] = '\0';
	int fd;
	int r =
	    sl_client_dial(rc->host_port, rc->timeout_ms, &fd, rc->message, sizeof(rc->message));
	if (r < 0)
		return r;
	if (rc->auth_token) {
		r = sl_client_auth(fd, rc->auth_token, rc->timeout_ms, rc->message,
				   sizeof(rc->message));
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	rc->fd = fd;
	int64_t deadline = sl_client_deadline_ms(rc->timeout_ms);
	size_t start;
	rc->attach_id = rc_next_id(rc);
	sl_buf_reset(&rc->out);
	r = sl_proto_encode_request_head(&rc->out, SL_OP_CONSUMER_ATTACH, rc->attach_id, &start);
	if (r == 0)
		r = sl_proto_put_str8(&rc->out, rc->consumer, strlen(rc->consumer));
	if (r < 0)
		goto fail;
	sl_proto_finish_frame(&rc->out, start);
	r = sl_client_send_all(fd, rc->out.data, rc->out.len, deadline);
	if (r < 0)
		goto fail;
	struct sl_frame_header h;
	r = sl_client_recv_frame(fd, &rc->in, deadline, &h);
	if (r < 0)
		goto fail;
	/* The server answers ATTACH before it pushes anything: whatever else comes is wrong. */
	if (!(h.flags & SL_FRAME_RESPONSE) || h.opcode != SL_OP_CONSUMER_ATTACH ||
	    h.request_id != rc->attach_id) {
		r = rc_fail(rc, SLUICE_ERR_PROTOCOL,
			    "unexpected frame instead of the attach answer");
		goto fail;
	}
	int32_t status;
	struct sl_str msg;
	struct sl_reader rest;
	size_t frame_len = 4 + (size_t)h.length;
	r = sl_proto_decode_response_status(rc->in.data + SL_FRAME_HEADER_BYTES,
					    frame_len - SL_FRAME_HEADER_BYTES, &status, &msg,
					    &rest);
	if (r < 0 || (status == 0 && sl_reader_left(&rest) != 0)) {
		r = rc_fail(rc, SLUICE_ERR_PROTOCOL, "malformed attach answer");
		goto fail;
	}
	if (status < 0) {
		r = msg.len ? rc_fail(rc, status, "%.*s", (int)msg.len, msg.p)
			    : rc_fail(rc, status, "%s", sluice_strerror(status));
		goto fail;
	}
	sl_buf_consume(&rc->in, frame_len);
	return 0;
fail:
	if (rc->message[0] == '\0')
		rc_fail(rc, r, "attach: %s", sluice_strerror(r));
	rc_drop(rc);
	return r;
}

int sluice_consumer_attach(const char *host_port, const char *consumer,
			   const struct sluice_client_options *opts,
			   struct sluice_remote_consumer **ret)
{
	if (!consumer || !sl_proto_name_valid((const uint8_t *)consumer, strlen(consumer)))
		return SLUICE_ERR_INVALID_NAME;
	struct sluice_remote_consumer *rc = calloc(1, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	rc->fd = -1;
	rc->wake_fd = -1;
	sl_buf_init(&rc->in);
	sl_buf_init(&rc->out);
	atomic_init(&rc->stop, false);
	atomic_init(&rc->batches, 0);
	atomic_init(&rc->nrecords, 0);
	atomic_init(&rc->acks_refused, 0);
	rc->timeout_ms = SL_CLIENT_TIMEOUT_MS_DEFAULT;
	if (opts && opts->timeout_ms != 0)
		rc->timeout_ms = opts->timeout_ms;
	rc->host_port = strdup(host_port ? host_port : SLUICE_DEFAULT_SERVER);
	rc->consumer = strdup(consumer);
	if (opts && opts->auth_token)
		rc->auth_token = strdup(opts->auth_token);
	int r = -ENOMEM;
	if (!rc->host_port || !rc->consumer || (opts && opts->auth_token && !rc->auth_token))
		goto fail;
	rc->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (rc->wake_fd < 0) {
		r = -errno;
		goto fail;
	}
	r = rc_connect(rc);
	if (r < 0)
		goto fail;
	*ret = rc;
	return 0;
fail:
	sluice_remote_consumer_destroy(rc);
	return r;
}

void sluice_remote_consumer_destroy(struct sluice_remote_consumer *rc)
{
	if (!rc)
		return;
	rc_drop(rc);
	if (rc->wake_fd >= 0)
		close(rc->wake_fd);
	sl_buf_finish(&rc->in);
	sl_buf_finish(&rc->out);
	free(rc->records);
	free(rc->host_port);
	free(rc->consumer);
	free(rc->auth_token);
	free(rc);
}

void sluice_remote_consumer_stop(struct sluice_remote_consumer *rc)
{
	atomic_store(&rc->stop, true);
	uint64_t one = 1;
	/* Only fails when the counter is saturated, which still leaves it readable. */
	ssize_t n = write(rc->wake_fd, &one, sizeof(one));
	(void)n;
}

const char *sluice_remote_consumer_last_error_message(const struct sluice_remote_consumer *rc)
{
	return rc ? rc->message : "";
}

void sluice_remote_consumer_stats(const struct sluice_remote_consumer *rc,
				  struct sluice_remote_consumer_stats *ret)
{
	ret->batches = atomic_load_explicit(&rc->batches, memory_order_relaxed);
	ret->records = atomic_load_explicit(&rc->nrecords, memory_order_relaxed);
	ret->acks_refused = atomic_load_explicit(&rc->acks_refused, memory_order_relaxed);
}

/* Whether a stop is pending; consumes it. The eventfd is drained by the poll loop, so a wake
 * that raced with this exchange costs one extra turn, never a busy loop. */
static bool take_stop(struct sluice_remote_consumer *rc)
{
	return atomic_exchange(&rc->stop, false);
}

static void drain_wake(struct sluice_remote_consumer *rc)
{
	uint64_t v;
	ssize_t n = read(rc->wake_fd, &v, sizeof(v));
	(void)n;
}

/* Send the ACK of one delivery. */
static int send_ack(struct sluice_remote_consumer *rc, uint32_t delivery_id,
		    const struct sluice_handler_result *res, size_t count)
{
	struct sl_req_consumer_ack ack = {.delivery_id = delivery_id};
	char msg[sizeof(res->message) + 96];
	size_t mlen = strnlen(res->message, sizeof(res->message));
	memcpy(msg, res->message, mlen);
	msg[mlen] = '\0';
	switch (res->status) {
	case SLUICE_HANDLER_OK:
		ack.status = SL_PROTO_ACK_OK;
		break;
	case SLUICE_HANDLER_FAILED_FROM:
		if (res->failed_from < count) {
			ack.status = SL_PROTO_ACK_FAILED_FROM;
			ack.failed_from = (uint32_t)res->failed_from;
			break;
		}
		/* The server cannot retry "from" a record that is not in the batch. */
		snprintf(msg, sizeof(msg), "handler returned failed_from %zu for a batch of %zu",
			 res->failed_from, count);
		ack.status = SL_PROTO_ACK_ERROR;
		break;
	default:
		ack.status = SL_PROTO_ACK_ERROR;
		break;
	}
	ack.message = (struct sl_str){.p = msg, .len = strlen(msg)};
	sl_buf_reset(&rc->out);
	size_t start;
	int r = sl_proto_encode_request_head(&rc->out, SL_OP_CONSUMER_ACK, rc_next_id(rc), &start);
	if (r == 0)
		r = sl_proto_put_consumer_ack(&rc->out, &ack);
	if (r < 0)
		return r;
	sl_proto_finish_frame(&rc->out, start);
	return sl_client_send_all(rc->fd, rc->out.data, rc->out.len,
				  sl_client_deadline_ms(rc->timeout_ms));
}

/* One CONSUMER_BATCH push: decode, hand to the handler, acknowledge. */
static int on_batch(struct sluice_remote_consumer *rc, const struct sl_frame_header *h,
		    const uint8_t *body, size_t len, sluice_remote_handler_fn handler, void *ctx)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_consumer_batch_head head;
	if (sl_proto_get_consumer_batch_head(&r, &head) < 0)
		return rc_fail(rc, SLUICE_ERR_PROTOCOL, "malformed batch from the server");
	if (head.count > rc->records_cap) {
		struct sluice_handler_record *nr = realloc(rc->records, head.count * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		rc->records = nr;
		rc->records_cap = head.count;
	}
	for (uint32_t i = 0; i < head.count; i++) {
		struct sluice_record rec;
		if (sl_proto_get_record_out(&r, &rec) < 0)
			return rc_fail(rc, SLUICE_ERR_PROTOCOL, "malformed record in a batch");
		rc->records[i] = (struct sluice_handler_record){.seq = rec.seq,
								.ts_ms = rec.ts_ms,
								.key = rec.key,
								.key_len = rec.key_len,
								.data = rec.data,
								.data_len = rec.data_len};
	}
	if (sl_reader_left(&r) != 0)
		return rc_fail(rc, SLUICE_ERR_PROTOCOL, "trailing bytes after a batch");
	memcpy(rc->consumer_buf, head.consumer.p, head.consumer.len);
	rc->consumer_buf[head.consumer.len] = '\0';
	memcpy(rc->stream_buf, head.stream.p, head.stream.len);
	rc->stream_buf[head.stream.len] = '\0';
	struct sluice_handler_batch batch = {.consumer = rc->consumer_buf,
					     .stream = rc->stream_buf,
					     .shard_id = head.shard_id,
					     .records = rc->records,
					     .count = head.count,
					     .attempt = head.attempt};
	struct sluice_handler_result res;
	memset(&res, 0, sizeof(res));
	res.status = SLUICE_HANDLER_OK;
	if (handler(ctx, &batch, &res) < 0)
		res.status = SLUICE_HANDLER_ERROR;
	atomic_fetch_add_explicit(&rc->batches, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&rc->nrecords, head.count, memory_order_relaxed);
	return send_ack(rc, h->request_id, &res, head.count);
}

/* A response frame: to an ACK (refusals are counted, not fatal) or to the ATTACH (an error
 * there means the server ended the attachment). */
static int on_response(struct sluice_remote_consumer *rc, const struct sl_frame_header *h,
		       const uint8_t *body, size_t len)
{
	int32_t status;
	struct sl_str msg;
	struct sl_reader rest;
	if (sl_proto_decode_response_status(body, len, &status, &msg, &rest) < 0 ||
	    (status == 0 && sl_reader_left(&rest) != 0))
		return rc_fail(rc, SLUICE_ERR_PROTOCOL, "malformed answer from the server");
	if (h->opcode == SL_OP_CONSUMER_ACK) {
		if (status < 0) {
			/* Typically the delivery timed out on the server and will come again. */
			atomic_fetch_add_explicit(&rc->acks_refused, 1, memory_order_relaxed);
			rc_fail(rc, 0, "ack refused: %.*s", (int)msg.len, msg.p);
		}
		return 0;
	}
	if (h->opcode == SL_OP_CONSUMER_ATTACH && h->request_id == rc->attach_id && status < 0)
		return msg.len ? rc_fail(rc, status, "%.*s", (int)msg.len, msg.p)
			       : rc_fail(rc, status, "%s", sluice_strerror(status));
	return rc_fail(rc, SLUICE_ERR_PROTOCOL, "unexpected answer (opcode 0x%02x)", h->opcode);
}

/* Handle one whole frame at the start of rc->in (header h). */
static int on_frame(struct sluice_remote_consumer *rc, const struct sl_frame_header *h,
		    sluice_remote_handler_fn handler, void *ctx)
{
	size_t frame_len = 4 + (size_t)h->length;
	const uint8_t *body = rc->in.data + SL_FRAME_HEADER_BYTES;
	size_t len = frame_len - SL_FRAME_HEADER_BYTES;
	int r;
	if ((h->flags & SL_FRAME_PUSH) && h->opcode == SL_OP_CONSUMER_BATCH)
		r = on_batch(rc, h, body, len, handler, ctx);
	else if (h->flags & SL_FRAME_RESPONSE)
		r = on_response(rc, h, body, len);
	else
		r = rc_fail(rc, SLUICE_ERR_PROTOCOL, "unexpected frame (opcode 0x%02x)", h->opcode);
	/* The records borrowed rc->in: only now may the frame go. */
	sl_buf_consume(&rc->in, frame_len);
	return r;
}

/* Receive what the socket has; 0, or SLUICE_ERR_DISCONNECTED / -errno. */
static int recv_some(struct sluice_remote_consumer *rc)
{
	int r = sl_buf_reserve(&rc->in, SL_CLIENT_RECV_CHUNK);
	if (r < 0)
		return r;
	for (;;) {
		ssize_t n = recv(rc->fd, rc->in.data + rc->in.len, rc->in.cap - rc->in.len, 0);
		if (n > 0) {
			rc->in.len += (size_t)n;
			return 0;
		}
		if (n == 0)
			return SLUICE_ERR_DISCONNECTED;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return sl_client_errno_code(errno);
	}
}

int sluice_remote_consumer_run(struct sluice_remote_consumer *rc, sluice_remote_handler_fn handler,
			       void *ctx, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : sl_mono_ms() + timeout_ms;
	int r = 0;
	if (take_stop(rc))
		return 0;
	if (rc->fd < 0 && (r = rc_connect(rc)) < 0)
		return r;
	for (;;) {
		rc->message_fresh = false;
		if (take_stop(rc))
			return 0;
		/* Checked before each frame too: a server that never pauses must not make a
		 * bounded run unbounded. Frames left in the buffer wait for the next run. */
		if (sl_mono_ms() >= deadline)
			return 0;
		struct sl_frame_header h;
		r = sl_proto_parse_header(rc->in.data, rc->in.len, &h);
		if (r == 0 && rc->in.len >= 4 + (size_t)h.length) {
			r = on_frame(rc, &h, handler, ctx);
			if (r < 0)
				break;
			continue;
		}
		if (r < 0 && r != -EAGAIN) {
			rc_fail(rc, r, "malformed frame from the server");
			break;
		}
		int64_t now = sl_mono_ms();
		int wait = deadline == INT64_MAX	? -1
			   : deadline - now > INT32_MAX ? INT32_MAX
							: (int)(deadline - now);
		struct pollfd pfds[2] = {{.fd = rc->fd, .events = POLLIN},
					 {.fd = rc->wake_fd, .events = POLLIN}};
		int n = poll(pfds, 2, wait);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (pfds[1].revents)
			drain_wake(rc);
		if (pfds[0].revents) {
			r = recv_some(rc);
			if (r < 0)
				break;
		}
	}
	if (!rc->message_fresh || r == SLUICE_ERR_DISCONNECTED)
		rc_fail(rc, r, "%s", sluice_strerror(r));
	rc_drop(rc);
	return r;
}
