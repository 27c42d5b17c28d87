/*
 * Consumer administration over the native protocol: CONSUMER_CREATE, _DELETE, _LIST, _DESCRIBE
 * and _RESET. The engine (consumers.c) does the work; this file only translates.
 */
#include "server/consumers.h"

#include "common/logging.h"

#include <sluice/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void wire_of_config(const struct sl_consumer_config *cfg, struct sl_consumer_wire *w)
{
	memset(w, 0, sizeof(*w));
	w->name = (struct sl_str){cfg->name, strlen(cfg->name)};
	w->stream = (struct sl_str){cfg->stream, strlen(cfg->stream)};
	w->handler_kind = (uint8_t)cfg->handler_kind;
	w->handler_target = (struct sl_str){cfg->handler_target, strlen(cfg->handler_target)};
	w->batch_size = cfg->batch_size;
	w->batch_window_ms = cfg->batch_window_ms;
	w->start = cfg->start;
	w->max_retries = cfg->max_retries;
	w->max_record_age_s = cfg->max_record_age_s;
	w->bisect_on_error = cfg->bisect_on_error;
	w->on_failure = (struct sl_str){cfg->on_failure, strlen(cfg->on_failure)};
	w->parallelism = cfg->parallelism;
	w->timeout_ms = cfg->timeout_ms;
}

static void create(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		   const uint8_t *body, size_t len)
{
	struct sl_consumer_wire q;
	int r = sl_proto_decode_consumer_create(body, len, &q);
	if (r < 0) {
		sl_reply_error(c, h, r, "malformed CONSUMER_CREATE request");
		return;
	}
	struct sl_consumer_config cfg;
	sl_consumer_config_defaults(&cfg);
	if (q.handler_target.len >= sizeof(cfg.handler_target)) {
		sl_reply_error(c, h, SLUICE_ERR_INVALID_ARGUMENT,
			       "handler is longer than %zu bytes", sizeof(cfg.handler_target) - 1);
		return;
	}
	sl_str_copy(cfg.name, sizeof(cfg.name), &q.name);
	sl_str_copy(cfg.stream, sizeof(cfg.stream), &q.stream);
	cfg.handler_kind = (enum sl_handler_kind)q.handler_kind;
	sl_str_copy(cfg.handler_target, sizeof(cfg.handler_target), &q.handler_target);
	cfg.batch_size = q.batch_size;
	cfg.batch_window_ms = q.batch_window_ms;
	cfg.start = q.start;
	cfg.max_retries = q.max_retries;
	cfg.max_record_age_s = q.max_record_age_s;
	cfg.bisect_on_error = q.bisect_on_error;
	sl_str_copy(cfg.on_failure, sizeof(cfg.on_failure), &q.on_failure);
	cfg.parallelism = q.parallelism;
	cfg.timeout_ms = q.timeout_ms;
	char msg[256] = "";
	r = sl_consumers_create(w->srv->consumers, w, &cfg, msg, sizeof(msg));
	if (r < 0) {
		sl_reply_error(c, h, r, "%s", msg[0] ? msg : sluice_strerror(r));
		return;
	}
	sl_reply_empty(c, h);
}

static void describe(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		     const uint8_t *body, size_t len)
{
	struct sl_str q;
	int r = sl_proto_decode_name(body, len, &q);
	if (r < 0) {
		sl_reply_error(c, h, r, "malformed CONSUMER_DESCRIBE request");
		return;
	}
	char name[SLUICE_NAME_LEN_MAX + 1];
	sl_str_copy(name, sizeof(name), &q);
	struct sl_consumer_info *info;
	r = sl_consumers_describe(w->srv->consumers, name, &info);
	if (r < 0) {
		sl_reply_error(c, h, r, "consumer %s not found", name);
		return;
	}
	struct sl_buf *out = sl_conn_out(c);
	size_t start;
	struct sl_consumer_wire cw;
	wire_of_config(&info->cfg, &cw);
	r = sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
	r = r ?: sl_proto_put_consumer_config(out, &cw);
	r = r ?: sl_buf_put_u64(out, (uint64_t)info->cfg.created_ms);
	r = r ?: sl_buf_put_u32(out, info->nshards);
	for (uint32_t i = 0; r == 0 && i < info->nshards; i++) {
		const struct sl_consumer_shard_info *d = &info->shards[i];
		struct sl_consumer_shard_status st = {
		    .shard_id = d->shard_id,
		    .checkpoint_seq = d->checkpoint,
		    .lag_records = d->lag_records,
		    .lag_ms = d->lag_ms,
		    .state = (uint8_t)d->state,
		    .delivered = d->delivered,
		    .batches_failed = d->batches_failed,
		    .retries = d->retries,
		    .sent_to_on_failure = d->sent_to_on_failure,
		    .expired = d->expired,
		    .last_error = {d->last_error, strlen(d->last_error)},
		};
		r = sl_proto_put_consumer_shard_status(out, &st);
	}
	sl_consumer_info_free(info);
	if (r < 0) {
		sl_conn_close(c, false);
		return;
	}
	sl_proto_finish_frame(out, start);
	sl_conn_flush(c);
}

void sl_handle_consumer_admin(struct sl_worker *w, struct sl_conn *c,
			      const struct sl_frame_header *h, const uint8_t *body, size_t len)
{
	struct sl_consumers *cs = w->srv->consumers;
	char name[SLUICE_NAME_LEN_MAX + 1];
	char msg[256] = "";
	struct sl_str q;
	int r;
	switch (h->opcode) {
	case SL_OP_CONSUMER_CREATE:
		create(w, c, h, body, len);
		return;
	case SL_OP_CONSUMER_DESCRIBE:
		describe(w, c, h, body, len);
		return;
	case SL_OP_CONSUMER_DELETE:
		r = sl_proto_decode_name(body, len, &q);
		if (r < 0) {
			sl_reply_error(c, h, r, "malformed CONSUMER_DELETE request");
			return;
		}
		sl_str_copy(name, sizeof(name), &q);
		r = sl_consumers_delete(cs, name);
		if (r < 0) {
			sl_reply_error(c, h, r, "consumer %s not found", name);
			return;
		}
		sl_reply_empty(c, h);
		return;
	case SL_OP_CONSUMER_RESET: {
		struct sl_req_consumer_reset rq;
		r = sl_proto_decode_consumer_reset(body, len, &rq);
		if (r < 0) {
			sl_reply_error(c, h, r, "malformed CONSUMER_RESET request");
			return;
		}
		sl_str_copy(name, sizeof(name), &rq.name);
		r = sl_consumers_reset(cs, w, name, rq.shard_id, &rq.position, msg, sizeof(msg));
		if (r < 0) {
			sl_reply_error(c, h, r, "%s", msg[0] ? msg : sluice_strerror(r));
			return;
		}
		sl_reply_empty(c, h);
		return;
	}
	case SL_OP_CONSUMER_LIST: {
		if (len) {
			sl_reply_error(c, h, SLUICE_ERR_PROTOCOL, "CONSUMER_LIST takes no body");
			return;
		}
		char **names;
		size_t n;
		r = sl_consumers_list(cs, false, &names, &n);
		if (r < 0) {
			sl_reply_error(c, h, r, NULL);
			return;
		}
		struct sl_buf *out = sl_conn_out(c);
		size_t start;
		r = sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
		r = r ?: sl_buf_put_u32(out, (uint32_t)n);
		for (size_t i = 0; i < n; i++) {
			if (r == 0)
				r = sl_proto_put_str8(out, names[i], strlen(names[i]));
			free(names[i]);
		}
		free(names);
		if (r < 0) {
			sl_conn_close(c, false);
			return;
		}
		sl_proto_finish_frame(out, start);
		sl_conn_flush(c);
		return;
	}
	default:
		sl_reply_error(c, h, SLUICE_ERR_BAD_OPCODE, NULL);
	}
}
