/*
 * Firehoses in libsluice: create, delete, list, describe and flush on struct sluice_client
 * (FIREHOSE_* requests, layouts in src/proto/codec.h). The client refuses locally what cannot
 * be right whatever the server's settings (names, the destination's scheme, string lengths,
 * enumerations), with a message naming the field; ranges are the server's to judge.
 */
#include "client/client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int malformed(struct sluice_client *c)
{
	return sl_client_fail(c, SLUICE_ERR_PROTOCOL, "malformed answer from the server");
}

static struct sl_str str_of(const char *s)
{
	return (struct sl_str){.p = s ? s : "", .len = s ? strlen(s) : 0};
}

/* The wire's limits are the public ones. */
_Static_assert(SLUICE_FIREHOSE_DEST_LEN_MAX == SL_PROTO_FIREHOSE_DEST_MAX, "dest limit");
_Static_assert(SLUICE_FIREHOSE_ENDPOINT_LEN_MAX == SL_PROTO_FIREHOSE_ENDPOINT_MAX, "endpoint");
_Static_assert(SLUICE_FIREHOSE_REGION_LEN_MAX == SL_PROTO_FIREHOSE_REGION_MAX, "region");
_Static_assert(SLUICE_FIREHOSE_CREDENTIALS_FILE_LEN_MAX == SL_PROTO_FIREHOSE_CREDENTIALS_FILE_MAX,
	       "credentials_file");
_Static_assert(SLUICE_FIREHOSE_PROFILE_LEN_MAX == SL_PROTO_FIREHOSE_PROFILE_MAX, "profile");
_Static_assert((int)SLUICE_FIREHOSE_RETRYING == (int)SL_PROTO_FIREHOSE_RETRYING &&
		   (int)SLUICE_FIREHOSE_FINISHED == (int)SL_PROTO_FIREHOSE_FINISHED &&
		   (int)SLUICE_FIREHOSE_WAITING_PARENTS == (int)SL_PROTO_FIREHOSE_WAITING_PARENTS,
	       "states");

const char *sluice_firehose_state_name(int state)
{
	switch (state) {
	case SLUICE_FIREHOSE_IDLE:
		return "IDLE";
	case SLUICE_FIREHOSE_FLUSHING:
		return "FLUSHING";
	case SLUICE_FIREHOSE_RETRYING:
		return "RETRYING";
	case SLUICE_FIREHOSE_FINISHED:
		return "FINISHED";
	case SLUICE_FIREHOSE_WAITING_PARENTS:
		return "WAITING_PARENTS";
	default:
		return "UNKNOWN";
	}
}

void sluice_firehose_options_init(struct sluice_firehose_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->buffer_bytes = SLUICE_FIREHOSE_BUFFER_BYTES_DEFAULT;
	opts->buffer_interval_ms = SLUICE_FIREHOSE_BUFFER_INTERVAL_MS_DEFAULT;
	opts->compression = SLUICE_FIREHOSE_COMPRESSION_ZSTD;
	opts->zstd_level = SLUICE_FIREHOSE_ZSTD_LEVEL_DEFAULT;
	opts->format = SLUICE_FIREHOSE_FORMAT_JSONL;
	opts->max_retry_duration_ms = -1;
	opts->on_failure = NULL;
	opts->start = (struct sluice_position){.type = SLUICE_POS_TRIM_HORIZON};
}

/* A string option: at most max bytes (NULL is ""). */
static int check_len(struct sluice_client *c, const char *field, const char *s, size_t max,
		     struct sl_str *ret)
{
	*ret = str_of(s);
	if (ret->len > max)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT, "%s: longer than %zu bytes",
				      field, max);
	return 0;
}

int sluice_firehose_create(struct sluice_client *c, const char *name, const char *stream,
			   const char *dest, const struct sluice_firehose_options *opts)
{
	struct sluice_firehose_options defaults;
	if (!opts) {
		sluice_firehose_options_init(&defaults);
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
	struct sl_firehose_wire w = {
	    .name = str_of(name),
	    .stream = str_of(stream),
	    .buffer_bytes = opts->buffer_bytes,
	    .buffer_interval_ms = opts->buffer_interval_ms,
	    .compression = (uint8_t)opts->compression,
	    .zstd_level = opts->zstd_level,
	    .format = (uint8_t)opts->format,
	    .max_retry_duration_ms = opts->max_retry_duration_ms,
	    .on_failure = str_of(opts->on_failure),
	    .start = opts->start,
	};
	/* "" asks for the server's default destination. */
	if (dest && dest[0] && strncmp(dest, "file:///", 8) != 0 &&
	    (strncmp(dest, "s3://", 5) != 0 || dest[5] == '\0' || dest[5] == '/'))
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "dest: want file:///DIR or s3://BUCKET[/PREFIX], not '%s'",
				      dest);
	if ((r = check_len(c, "dest", dest, SLUICE_FIREHOSE_DEST_LEN_MAX, &w.dest)) < 0 ||
	    (r = check_len(c, "endpoint", opts->endpoint, SLUICE_FIREHOSE_ENDPOINT_LEN_MAX,
			   &w.endpoint)) < 0 ||
	    (r = check_len(c, "region", opts->region, SLUICE_FIREHOSE_REGION_LEN_MAX, &w.region)) <
		0 ||
	    (r = check_len(c, "credentials_file", opts->credentials_file,
			   SLUICE_FIREHOSE_CREDENTIALS_FILE_LEN_MAX, &w.credentials_file)) < 0 ||
	    (r = check_len(c, "profile", opts->profile, SLUICE_FIREHOSE_PROFILE_LEN_MAX,
			   &w.profile)) < 0)
		return r;
	if (opts->compression != SLUICE_FIREHOSE_COMPRESSION_NONE &&
	    opts->compression != SLUICE_FIREHOSE_COMPRESSION_ZSTD)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "compression: must be none or zstd");
	if (opts->format != SLUICE_FIREHOSE_FORMAT_JSONL &&
	    opts->format != SLUICE_FIREHOSE_FORMAT_RAW)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "format: must be jsonl or raw");
	if (opts->start.type != SLUICE_POS_TRIM_HORIZON && opts->start.type != SLUICE_POS_LATEST &&
	    opts->start.type != SLUICE_POS_AT_TIMESTAMP)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "start: must be trim-horizon, latest or a timestamp");
	size_t start;
	r = sl_client_begin(c, SL_OP_FIREHOSE_CREATE, &start);
	if (r == 0)
		r = sl_proto_put_firehose_config(&c->out, &w);
	if (r < 0)
		return r;
	struct sl_reader rest;
	return sl_client_call(c, start, false, &rest);
}

/* Requests whose body is just a firehose name; the answer must be empty unless ret_rest. */
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

int sluice_firehose_delete(struct sluice_client *c, const char *name)
{
	struct sl_reader rest;
	return name_call(c, SL_OP_FIREHOSE_DELETE, name, false, &rest);
}

int sluice_firehose_flush(struct sluice_client *c, const char *name)
{
	/* Flushing twice is harmless: safe to re-send on a fresh connection. */
	struct sl_reader rest;
	return name_call(c, SL_OP_FIREHOSE_FLUSH, name, true, &rest);
}

int sluice_firehose_list(struct sluice_client *c, char ***ret_names, size_t *ret_count)
{
	size_t start;
	int r = sl_client_begin(c, SL_OP_FIREHOSE_LIST, &start);
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

void sluice_firehose_info_free(struct sluice_firehose_info *info)
{
	if (!info)
		return;
	free(info->name);
	free(info->stream);
	free(info->dest);
	free((char *)info->options.endpoint);
	free((char *)info->options.region);
	free((char *)info->options.credentials_file);
	free((char *)info->options.profile);
	free((char *)info->options.on_failure);
	for (size_t i = 0; info->shards && i < info->shard_count; i++) {
		free(info->shards[i].last_object_key);
		free(info->shards[i].last_error);
	}
	free(info->shards);
	free(info);
}

/* An optional string: NULL when empty; false when out of memory. */
static bool opt_dup(const struct sl_str *s, const char **ret)
{
	*ret = NULL;
	if (s->len == 0)
		return true;
	*ret = strndup(s->p, s->len);
	return *ret != NULL;
}

int sluice_firehose_describe(struct sluice_client *c, const char *name,
			     struct sluice_firehose_info **ret)
{
	struct sl_reader rest;
	int r = name_call(c, SL_OP_FIREHOSE_DESCRIBE, name, true, &rest);
	if (r < 0)
		return r;
	struct sl_firehose_wire w;
	int64_t created;
	uint32_t n;
	/* A count the answer cannot hold is refused before anything is sized for it. */
	if (sl_proto_get_firehose_config(&rest, &w) < 0 ||
	    !sl_reader_u64(&rest, (uint64_t *)&created) || !sl_reader_u32(&rest, &n) ||
	    n > sl_reader_left(&rest) / SL_PROTO_FIREHOSE_SHARD_STATUS_BYTES_MIN)
		return malformed(c);
	struct sluice_firehose_info *info = calloc(1, sizeof(*info));
	if (!info)
		return -ENOMEM;
	r = -ENOMEM;
	struct sluice_firehose_options *o = &info->options;
	info->name = strndup(w.name.p, w.name.len);
	info->stream = strndup(w.stream.p, w.stream.len);
	info->dest = strndup(w.dest.p, w.dest.len);
	info->shards = calloc(n ? n : 1, sizeof(*info->shards));
	if (!info->name || !info->stream || !info->dest || !info->shards ||
	    !opt_dup(&w.endpoint, &o->endpoint) || !opt_dup(&w.region, &o->region) ||
	    !opt_dup(&w.credentials_file, &o->credentials_file) ||
	    !opt_dup(&w.profile, &o->profile) || !opt_dup(&w.on_failure, &o->on_failure))
		goto fail;
	o->buffer_bytes = w.buffer_bytes;
	o->buffer_interval_ms = w.buffer_interval_ms;
	o->compression = w.compression;
	o->zstd_level = w.zstd_level;
	o->format = w.format;
	o->max_retry_duration_ms = w.max_retry_duration_ms;
	o->start = w.start;
	info->created_ms = created;
	for (uint32_t i = 0; i < n; i++) {
		struct sl_firehose_shard_status s;
		if (sl_proto_get_firehose_shard_status(&rest, &s) < 0) {
			r = malformed(c);
			goto fail;
		}
		struct sluice_firehose_shard_status *d = &info->shards[i];
		d->last_object_key = strndup(s.last_object_key.p, s.last_object_key.len);
		d->last_error = strndup(s.last_error.p, s.last_error.len);
		info->shard_count = i + 1; /* free() sees this entry, even half-built */
		if (!d->last_object_key || !d->last_error)
			goto fail;
		d->shard_id = s.shard_id;
		d->checkpoint_seq = s.checkpoint_seq;
		d->buffered_records = s.buffered_records;
		d->buffered_bytes = s.buffered_bytes;
		d->last_flush_ms = s.last_flush_ms;
		d->objects_written = s.objects_written;
		d->records_archived = s.records_archived;
		d->bytes_written = s.bytes_written;
		d->upload_failures = s.upload_failures;
		d->sent_to_on_failure = s.sent_to_on_failure;
		d->expired = s.expired;
		d->state = s.state;
		d->lag_ms = s.lag_ms;
		d->background = s.background != 0;
	}
	if (sl_reader_left(&rest) != 0) {
		r = malformed(c);
		goto fail;
	}
	*ret = info;
	return 0;
fail:
	sluice_firehose_info_free(info);
	return r;
}
