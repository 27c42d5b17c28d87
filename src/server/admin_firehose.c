/*
 * Firehose administration over the native protocol: FIREHOSE_CREATE, _DELETE, _LIST,
 * _DESCRIBE and _FLUSH. A firehose is a consumer of kind firehose (consumers.c does the work);
 * this file translates, and fills in the embedded default destination.
 */
#include "server/consumers.h"

#include "common/logging.h"

#include <sluice/errors.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void wire_of_config(const struct sl_consumer_config *cfg, struct sl_firehose_wire *w)
{
	const struct sl_firehose_options *f = &cfg->firehose;
	memset(w, 0, sizeof(*w));
	w->name = (struct sl_str){cfg->name, strlen(cfg->name)};
	w->stream = (struct sl_str){cfg->stream, strlen(cfg->stream)};
	w->dest = (struct sl_str){cfg->handler_target, strlen(cfg->handler_target)};
	w->endpoint = (struct sl_str){f->endpoint, strlen(f->endpoint)};
	w->region = (struct sl_str){f->region, strlen(f->region)};
	w->credentials_file = (struct sl_str){f->credentials_file, strlen(f->credentials_file)};
	w->profile = (struct sl_str){f->profile, strlen(f->profile)};
	w->buffer_bytes = f->buffer_bytes;
	w->buffer_interval_ms = f->buffer_interval_ms;
	w->compression = (uint8_t)f->compression;
	w->zstd_level = f->zstd_level;
	w->format = (uint8_t)f->format;
	w->max_retry_duration_ms = f->max_retry_duration_ms;
	w->on_failure = (struct sl_str){cfg->on_failure, strlen(cfg->on_failure)};
	w->start = cfg->start;
}

static void create(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		   const uint8_t *body, size_t len)
{
	struct sl_firehose_wire q;
	int r = sl_proto_decode_firehose_create(body, len, &q);
	if (r < 0) {
		sl_reply_error(c, h, r, "malformed FIREHOSE_CREATE request");
		return;
	}
	struct sl_consumer_config cfg;
	sl_firehose_config_defaults(&cfg);
	struct sl_firehose_options *f = &cfg.firehose;
	sl_str_copy(cfg.name, sizeof(cfg.name), &q.name);
	sl_str_copy(cfg.stream, sizeof(cfg.stream), &q.stream);
	sl_str_copy(cfg.handler_target, sizeof(cfg.handler_target), &q.dest);
	if (!cfg.handler_target[0]) {
		/* The embedded default: a folder inside the data folder. */
		char abs[PATH_MAX];
		if (!realpath(w->srv->cfg.data_dir, abs)) {
			sl_reply_error(c, h, SLUICE_ERR_INTERNAL, "cannot resolve the data folder");
			return;
		}
		snprintf(cfg.handler_target, sizeof(cfg.handler_target), "file://%.3800s/objects",
			 abs);
	}
	sl_str_copy(f->endpoint, sizeof(f->endpoint), &q.endpoint);
	sl_str_copy(f->region, sizeof(f->region), &q.region);
	sl_str_copy(f->credentials_file, sizeof(f->credentials_file), &q.credentials_file);
	sl_str_copy(f->profile, sizeof(f->profile), &q.profile);
	f->buffer_bytes = q.buffer_bytes;
	f->buffer_interval_ms = q.buffer_interval_ms;
	f->compression = (enum sl_firehose_compression)q.compression;
	f->zstd_level = q.zstd_level;
	f->format = (enum sl_firehose_format)q.format;
	f->max_retry_duration_ms = q.max_retry_duration_ms;
	sl_str_copy(cfg.on_failure, sizeof(cfg.on_failure), &q.on_failure);
	cfg.start = q.start;
	char msg[256] = "";
	r = sl_consumers_create(w->srv->consumers, w, &cfg, msg, sizeof(msg));
	if (r < 0) {
		sl_reply_error(c, h, r, "%s", msg[0] ? msg : sluice_strerror(r));
		return;
	}
	sl_reply_empty(c, h);
}

static uint8_t state_of(int consumer_state)
{
	switch (consumer_state) {
	case 1:
		return SL_PROTO_FIREHOSE_FLUSHING;
	case 2:
		return SL_PROTO_FIREHOSE_RETRYING;
	case 3:
		return SL_PROTO_FIREHOSE_FINISHED;
	case 5:
		return SL_PROTO_FIREHOSE_WAITING_PARENTS;
	default:
		return SL_PROTO_FIREHOSE_IDLE;
	}
}

static void describe(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		     const uint8_t *body, size_t len)
{
	struct sl_str q;
	int r = sl_proto_decode_name(body, len, &q);
	if (r < 0) {
		sl_reply_error(c, h, r, "malformed FIREHOSE_DESCRIBE request");
		return;
	}
	char name[SLUICE_NAME_LEN_MAX + 1];
	sl_str_copy(name, sizeof(name), &q);
	struct sl_consumer_info *info;
	r = sl_consumers_describe(w->srv->consumers, name, &info);
	if (r == 0 && info->cfg.handler_kind != SL_HANDLER_FIREHOSE) {
		sl_consumer_info_free(info);
		r = SLUICE_ERR_STREAM_NOT_FOUND;
	}
	if (r < 0) {
		sl_reply_error(c, h, r, "firehose %s not found", name);
		return;
	}
	struct sl_buf *out = sl_conn_out(c);
	size_t start;
	struct sl_firehose_wire fw;
	wire_of_config(&info->cfg, &fw);
	r = sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
	r = r ?: sl_proto_put_firehose_config(out, &fw);
	r = r ?: sl_buf_put_u64(out, (uint64_t)info->cfg.created_ms);
	r = r ?: sl_buf_put_u32(out, info->nshards);
	for (uint32_t i = 0; r == 0 && i < info->nshards; i++) {
		const struct sl_consumer_shard_info *d = &info->shards[i];
		struct sl_firehose_shard_status st = {
		    .shard_id = d->shard_id,
		    .checkpoint_seq = d->checkpoint,
		    .buffered_records = d->lag_records,
		    .buffered_bytes = d->buffered_bytes,
		    .last_flush_ms = d->last_flush_ms,
		    .last_object_key = {d->last_object_key, strlen(d->last_object_key)},
		    .objects_written = d->objects_written,
		    .records_archived = d->records_archived,
		    .bytes_written = d->bytes_written,
		    .upload_failures = d->upload_failures,
		    .sent_to_on_failure = d->sent_to_on_failure,
		    .expired = d->expired,
		    .state = state_of(d->state),
		    .last_error = {d->last_error, strlen(d->last_error)},
		    .lag_ms = d->lag_ms,
		    .background = d->background,
		};
		r = sl_proto_put_firehose_shard_status(out, &st);
	}
	sl_consumer_info_free(info);
	if (r < 0) {
		sl_conn_close(c, false);
		return;
	}
	sl_proto_finish_frame(out, start);
	sl_conn_flush(c);
}

void sl_handle_firehose_admin(struct sl_worker *w, struct sl_conn *c,
			      const struct sl_frame_header *h, const uint8_t *body, size_t len)
{
	struct sl_consumers *cs = w->srv->consumers;
	char name[SLUICE_NAME_LEN_MAX + 1];
	struct sl_str q;
	int r;
	switch (h->opcode) {
	case SL_OP_FIREHOSE_CREATE:
		create(w, c, h, body, len);
		return;
	case SL_OP_FIREHOSE_DESCRIBE:
		describe(w, c, h, body, len);
		return;
	case SL_OP_FIREHOSE_DELETE:
	case SL_OP_FIREHOSE_FLUSH: {
		r = sl_proto_decode_name(body, len, &q);
		if (r < 0) {
			sl_reply_error(c, h, r, "malformed request");
			return;
		}
		sl_str_copy(name, sizeof(name), &q);
		struct sl_consumer_info *info;
		r = sl_consumers_describe(cs, name, &info);
		if (r == 0) {
			bool is_firehose = info->cfg.handler_kind == SL_HANDLER_FIREHOSE;
			sl_consumer_info_free(info);
			if (!is_firehose)
				r = SLUICE_ERR_STREAM_NOT_FOUND;
		}
		if (r == 0)
			r = h->opcode == SL_OP_FIREHOSE_DELETE ? sl_consumers_delete(cs, name)
							       : sl_consumers_flush(cs, name);
		if (r < 0) {
			sl_reply_error(c, h, r, "firehose %s not found", name);
			return;
		}
		sl_reply_empty(c, h);
		return;
	}
	case SL_OP_FIREHOSE_LIST: {
		if (len) {
			sl_reply_error(c, h, SLUICE_ERR_PROTOCOL, "FIREHOSE_LIST takes no body");
			return;
		}
		char **names;
		size_t n;
		r = sl_consumers_list(cs, true, &names, &n);
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
