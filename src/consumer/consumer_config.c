/*
 * Consumer registrations and their files.
 *
 * File: META_DIR/consumers/NAME.json, one per consumer, UTF-8 JSON, written atomically exactly
 * like stream metadata (write NAME.json.tmp in the same folder, fsync it, rename it over
 * NAME.json, fsync the folder): after a crash the file is the old or the new version, never a
 * mix; a leftover NAME.json.tmp is ignored on load and overwritten by the next save. Layout
 * (format 1):
 *
 *   {
 *     "format": 1,
 *     "name": "billing",                 consumer name, equal to the file's NAME
 *     "stream": "orders",                the stream it reads
 *     "handler_kind": "exec",            "exec" | "plugin" | "remote"
 *     "handler_target": "./handle.sh",   command or .so path; "" for remote
 *     "batch_size": 100,                 1..SL_CONSUMER_BATCH_SIZE_MAX
 *     "batch_window_ms": 0,              0..SL_CONSUMER_BATCH_WINDOW_MS_MAX
 *     "start": "latest",                 "trim_horizon" | "latest" | "at_timestamp"
 *     "start_timestamp_ms": 0,           Unix ms with at_timestamp, else 0
 *     "max_retries": -1,                 -1 (until the records expire) or 0..CFG_MAX_RETRIES_MAX
 *     "max_record_age_s": -1,            -1 (the stream's retention) or 1..CFG_RECORD_AGE_S_MAX
 *     "bisect_on_error": false,
 *     "on_failure": "",                  "" or a stream name other than "stream"
 *     "parallelism": 1,                  1..SL_CONSUMER_PARALLELISM_MAX
 *     "timeout_ms": 60000,               1..SL_CONSUMER_TIMEOUT_MS_MAX
 *     "created_ms": 1764291723000        Unix ms, >= 0
 *   }
 *
 * Loading validates every field with the rules of sl_consumer_config_check; any violation, a
 * syntax error, a duplicate key or a wrong type gives SLUICE_ERR_CORRUPT and a message naming
 * the field. Unknown fields are ignored, so a newer minor version can add fields.
 */
#include "consumer/consumer_config.h"
#include "common/utf8.h"
#include "common/file.h"

#include "stream/stream_meta.h"

#include <sluice/errors.h>

#include <jansson.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_FORMAT 1
#define CONSUMERS_SUBDIR "consumers"
#define CFG_SUFFIX ".json"
#define TMP_SUFFIX ".json.tmp"
/* NAME + ".json.tmp" + NUL: names are at most 128 bytes, far below NAME_MAX. */
#define CFG_FILE_BUF (SLUICE_NAME_LEN_MAX + sizeof(TMP_SUFFIX))
/* A registration is a few hundred bytes (the handler command at most 4 KiB): more is damage. */
#define CFG_FILE_BYTES_MAX (256u << 10)
/* Lambda's bounds for MaximumRetryAttempts. */
#define CFG_MAX_RETRIES_MAX 10000
/* The longest a record can live: the longest stream retention. */
#define CFG_RECORD_AGE_S_MAX (SL_STREAM_RETENTION_MS_MAX / 1000)

__attribute__((format(printf, 3, 4))) static void set_msg(char *msg, size_t len, const char *fmt,
							  ...)
{
	if (!msg || len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
}

void sl_consumer_config_defaults(struct sl_consumer_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->handler_kind = SL_HANDLER_REMOTE;
	cfg->batch_size = SL_CONSUMER_BATCH_SIZE_DEFAULT;
	cfg->batch_window_ms = 0;
	cfg->start.type = SLUICE_POS_LATEST;
	cfg->start.value = 0;
	cfg->max_retries = -1;
	cfg->max_record_age_s = -1;
	cfg->bisect_on_error = false;
	cfg->parallelism = 1;
	cfg->timeout_ms = SL_CONSUMER_TIMEOUT_MS_DEFAULT;
}

void sl_firehose_config_defaults(struct sl_consumer_config *cfg)
{
	sl_consumer_config_defaults(cfg);
	cfg->handler_kind = SL_HANDLER_FIREHOSE;
	cfg->start = (struct sluice_position){.type = SLUICE_POS_TRIM_HORIZON};
	cfg->parallelism = 1;
	cfg->timeout_ms = SL_FIREHOSE_TIMEOUT_MS_DEFAULT;
	cfg->firehose.buffer_bytes = SL_FIREHOSE_BUFFER_BYTES_DEFAULT;
	cfg->firehose.buffer_interval_ms = SL_FIREHOSE_BUFFER_INTERVAL_MS_DEFAULT;
	cfg->firehose.compression = SL_FIREHOSE_COMPRESSION_ZSTD;
	cfg->firehose.zstd_level = 3;
	cfg->firehose.format = SL_FIREHOSE_FORMAT_JSONL;
	cfg->firehose.max_retry_duration_ms = -1;
}

int sl_consumer_parse_handler(const char *spec, enum sl_handler_kind *ret_kind, char *target,
			      size_t target_len)
{
	static const char exec_prefix[] = "exec:", plugin_prefix[] = "plugin:";
	if (!spec)
		return SLUICE_ERR_INVALID_ARGUMENT;
	enum sl_handler_kind kind;
	const char *t;
	if (strcmp(spec, "remote") == 0) {
		kind = SL_HANDLER_REMOTE;
		t = "";
	} else if (strncmp(spec, exec_prefix, sizeof(exec_prefix) - 1) == 0) {
		kind = SL_HANDLER_EXEC;
		t = spec + sizeof(exec_prefix) - 1;
	} else if (strncmp(spec, plugin_prefix, sizeof(plugin_prefix) - 1) == 0) {
		kind = SL_HANDLER_PLUGIN;
		t = spec + sizeof(plugin_prefix) - 1;
	} else {
		return SLUICE_ERR_INVALID_ARGUMENT;
	}
	size_t n = strlen(t);
	if ((kind != SL_HANDLER_REMOTE && n == 0) || n >= SL_CONSUMER_HANDLER_LEN_MAX ||
	    n >= target_len || !sl_utf8_valid(t, n))
		return SLUICE_ERR_INVALID_ARGUMENT;
	memcpy(target, t, n + 1);
	*ret_kind = kind;
	return 0;
}

/* ---- validation ---- */

#define FAIL(err, ...)                                                                             \
	do {                                                                                       \
		set_msg(msg, msg_len, __VA_ARGS__);                                                \
		return (err);                                                                      \
	} while (0)

/* Whether a fixed-size name field holds a NUL-terminated valid name. */
static bool name_field_ok(const char *field, size_t size)
{
	return memchr(field, '\0', size) != NULL && sl_stream_name_validate(field) == 0;
}

int sl_consumer_config_check(const struct sl_consumer_config *cfg, char *msg, size_t msg_len)
{
	if (!name_field_ok(cfg->name, sizeof(cfg->name)))
		FAIL(SLUICE_ERR_INVALID_NAME,
		     "name: not a valid consumer name (1-%d of a-z A-Z 0-9 _ . -)",
		     SLUICE_NAME_LEN_MAX);
	if (!name_field_ok(cfg->stream, sizeof(cfg->stream)))
		FAIL(SLUICE_ERR_INVALID_NAME, "stream: not a valid stream name");
	const char *target = cfg->handler_target;
	if (memchr(target, '\0', sizeof(cfg->handler_target)) == NULL)
		FAIL(SLUICE_ERR_INVALID_ARGUMENT, "handler_target: longer than %d bytes",
		     SL_CONSUMER_HANDLER_LEN_MAX - 1);
	size_t tlen = strlen(target);
	if (!sl_utf8_valid(target, tlen))
		FAIL(SLUICE_ERR_INVALID_ARGUMENT, "handler_target: not UTF-8");
	switch (cfg->handler_kind) {
	case SL_HANDLER_EXEC:
		if (tlen == 0)
			FAIL(SLUICE_ERR_INVALID_ARGUMENT, "handler_target: exec needs a command");
		break;
	case SL_HANDLER_PLUGIN:
		if (tlen == 0)
			FAIL(SLUICE_ERR_INVALID_ARGUMENT, "handler_target: plugin needs a path");
		break;
	case SL_HANDLER_REMOTE:
		if (tlen != 0)
			FAIL(SLUICE_ERR_INVALID_ARGUMENT,
			     "handler_target: must be empty for remote");
		break;
	case SL_HANDLER_FIREHOSE: {
		const struct sl_firehose_options *f = &cfg->firehose;
		if (strncmp(target, "file:///", 8) != 0 && strncmp(target, "s3://", 5) != 0)
			FAIL(SLUICE_ERR_INVALID_ARGUMENT,
			     "dest: must be file:///DIR or s3://BUCKET[/PREFIX]");
		if (f->buffer_bytes < SL_FIREHOSE_BUFFER_BYTES_MIN ||
		    f->buffer_bytes > SL_FIREHOSE_BUFFER_BYTES_MAX)
			FAIL(SLUICE_ERR_INVALID_ARGUMENT, "buffer_size: outside 1MiB..128MiB");
		if (f->buffer_interval_ms > SL_FIREHOSE_BUFFER_INTERVAL_MS_MAX)
			FAIL(SLUICE_ERR_INVALID_ARGUMENT, "buffer_interval: over 900s");
		if (f->compression != SL_FIREHOSE_COMPRESSION_NONE &&
		    f->compression != SL_FIREHOSE_COMPRESSION_ZSTD)
			FAIL(SLUICE_ERR_INVALID_ARGUMENT, "compression: zstd[:LEVEL] or none");
		if (f->zstd_level < 1 || f->zstd_level > 19)
			FAIL(SLUICE_ERR_INVALID_ARGUMENT, "compression: zstd level outside 1..19");
		if (f->format != SL_FIREHOSE_FORMAT_JSONL && f->format != SL_FIREHOSE_FORMAT_RAW)
			FAIL(SLUICE_ERR_INVALID_ARGUMENT, "format: jsonl or raw");
		if (f->max_retry_duration_ms < -1)
			FAIL(SLUICE_ERR_INVALID_ARGUMENT, "max_retry_duration: -1 or a duration");
		if (!memchr(f->endpoint, '\0', sizeof(f->endpoint)) ||
		    !memchr(f->region, '\0', sizeof(f->region)) ||
		    !memchr(f->credentials_file, '\0', sizeof(f->credentials_file)) ||
		    !memchr(f->profile, '\0', sizeof(f->profile)))
			FAIL(SLUICE_ERR_INVALID_ARGUMENT, "firehose: a string field is too long");
		if (cfg->parallelism != 1)
			FAIL(SLUICE_ERR_INVALID_ARGUMENT, "parallelism: a firehose uses 1");
		break;
	}
	default:
		FAIL(SLUICE_ERR_INVALID_ARGUMENT, "handler_kind: unknown value %d",
		     (int)cfg->handler_kind);
	}
	if (cfg->batch_size < 1 || cfg->batch_size > SL_CONSUMER_BATCH_SIZE_MAX)
		FAIL(SLUICE_ERR_INVALID_ARGUMENT, "batch_size: %" PRIu32 " outside 1..%d",
		     cfg->batch_size, SL_CONSUMER_BATCH_SIZE_MAX);
	if (cfg->batch_window_ms > SL_CONSUMER_BATCH_WINDOW_MS_MAX)
		FAIL(SLUICE_ERR_INVALID_ARGUMENT, "batch_window_ms: %" PRIu32 " over %d",
		     cfg->batch_window_ms, SL_CONSUMER_BATCH_WINDOW_MS_MAX);
	switch (cfg->start.type) {
	case SLUICE_POS_TRIM_HORIZON:
	case SLUICE_POS_LATEST:
		if (cfg->start.value != 0)
			FAIL(SLUICE_ERR_INVALID_ARGUMENT,
			     "start: trim_horizon and latest take no value (want 0)");
		break;
	case SLUICE_POS_AT_TIMESTAMP:
		if (cfg->start.value > INT64_MAX)
			FAIL(SLUICE_ERR_INVALID_ARGUMENT, "start: timestamp out of range");
		break;
	default:
		FAIL(SLUICE_ERR_INVALID_ARGUMENT,
		     "start: must be trim_horizon, latest or at_timestamp");
	}
	if (cfg->max_retries < -1 || cfg->max_retries > CFG_MAX_RETRIES_MAX)
		FAIL(SLUICE_ERR_INVALID_ARGUMENT, "max_retries: %" PRId32 " not -1 or 0..%d",
		     cfg->max_retries, CFG_MAX_RETRIES_MAX);
	if (cfg->max_record_age_s != -1 &&
	    (cfg->max_record_age_s < 1 || cfg->max_record_age_s > CFG_RECORD_AGE_S_MAX))
		FAIL(SLUICE_ERR_INVALID_ARGUMENT, "max_record_age_s: %" PRId64 " not -1 or 1..%lld",
		     cfg->max_record_age_s, CFG_RECORD_AGE_S_MAX);
	if (memchr(cfg->on_failure, '\0', sizeof(cfg->on_failure)) == NULL)
		FAIL(SLUICE_ERR_INVALID_NAME, "on_failure: not a valid stream name");
	if (cfg->on_failure[0] != '\0') {
		if (sl_stream_name_validate(cfg->on_failure) < 0)
			FAIL(SLUICE_ERR_INVALID_NAME, "on_failure: not a valid stream name");
		/* Failed records written back into the stream would come round again forever. */
		if (strcmp(cfg->on_failure, cfg->stream) == 0)
			FAIL(SLUICE_ERR_INVALID_ARGUMENT,
			     "on_failure: must not be the consumer's own stream");
	}
	if (cfg->parallelism < 1 || cfg->parallelism > SL_CONSUMER_PARALLELISM_MAX)
		FAIL(SLUICE_ERR_INVALID_ARGUMENT, "parallelism: %" PRIu32 " outside 1..%d",
		     cfg->parallelism, SL_CONSUMER_PARALLELISM_MAX);
	if (cfg->timeout_ms < 1 || cfg->timeout_ms > SL_CONSUMER_TIMEOUT_MS_MAX)
		FAIL(SLUICE_ERR_INVALID_ARGUMENT, "timeout_ms: %" PRIu32 " outside 1..%d",
		     cfg->timeout_ms, SL_CONSUMER_TIMEOUT_MS_MAX);
	if (cfg->created_ms < 0)
		FAIL(SLUICE_ERR_INVALID_ARGUMENT, "created_ms: negative");
	return 0;
}

/* ---- JSON ---- */

static const char *const kind_names[] = {
    [SL_HANDLER_EXEC] = "exec",
    [SL_HANDLER_PLUGIN] = "plugin",
    [SL_HANDLER_REMOTE] = "remote",
    [SL_HANDLER_FIREHOSE] = "firehose",
};

static const char *start_name(enum sluice_position_type t)
{
	switch (t) {
	case SLUICE_POS_TRIM_HORIZON:
		return "trim_horizon";
	case SLUICE_POS_AT_TIMESTAMP:
		return "at_timestamp";
	default:
		return "latest";
	}
}

/* json_object_set_new that remembers a failure (it frees value either way). */
static void set_field(json_t *obj, const char *key, json_t *value, bool *ok)
{
	if (!value || json_object_set_new(obj, key, value) < 0)
		*ok = false;
}

int sl_consumer_config_to_json(const struct sl_consumer_config *cfg, char **ret_json,
			       size_t *ret_len)
{
	/* Only a valid registration has a file: to_json would otherwise write what cannot load. */
	int r = sl_consumer_config_check(cfg, NULL, 0);
	if (r < 0)
		return r;
	json_t *root = json_object();
	if (!root)
		return -ENOMEM;
	bool ok = true;
	set_field(root, "format", json_integer(CFG_FORMAT), &ok);
	set_field(root, "name", json_string(cfg->name), &ok);
	set_field(root, "stream", json_string(cfg->stream), &ok);
	set_field(root, "handler_kind", json_string(kind_names[cfg->handler_kind]), &ok);
	set_field(root, "handler_target", json_string(cfg->handler_target), &ok);
	set_field(root, "batch_size", json_integer(cfg->batch_size), &ok);
	set_field(root, "batch_window_ms", json_integer(cfg->batch_window_ms), &ok);
	set_field(root, "start", json_string(start_name(cfg->start.type)), &ok);
	set_field(root, "start_timestamp_ms", json_integer((json_int_t)cfg->start.value), &ok);
	set_field(root, "max_retries", json_integer(cfg->max_retries), &ok);
	set_field(root, "max_record_age_s", json_integer(cfg->max_record_age_s), &ok);
	set_field(root, "bisect_on_error", json_boolean(cfg->bisect_on_error), &ok);
	set_field(root, "on_failure", json_string(cfg->on_failure), &ok);
	set_field(root, "parallelism", json_integer(cfg->parallelism), &ok);
	set_field(root, "timeout_ms", json_integer(cfg->timeout_ms), &ok);
	set_field(root, "created_ms", json_integer(cfg->created_ms), &ok);
	if (cfg->handler_kind == SL_HANDLER_FIREHOSE) {
		const struct sl_firehose_options *f = &cfg->firehose;
		json_t *fh = json_object();
		if (!fh)
			ok = false;
		else {
			set_field(fh, "endpoint", json_string(f->endpoint), &ok);
			set_field(fh, "region", json_string(f->region), &ok);
			set_field(fh, "credentials_file", json_string(f->credentials_file), &ok);
			set_field(fh, "profile", json_string(f->profile), &ok);
			set_field(fh, "buffer_bytes", json_integer((json_int_t)f->buffer_bytes),
				  &ok);
			set_field(fh, "buffer_interval_ms", json_integer(f->buffer_interval_ms),
				  &ok);
			set_field(fh, "compression",
				  json_string(f->compression == SL_FIREHOSE_COMPRESSION_ZSTD
						  ? "zstd"
						  : "none"),
				  &ok);
			set_field(fh, "zstd_level", json_integer(f->zstd_level), &ok);
			set_field(
			    fh, "format",
			    json_string(f->format == SL_FIREHOSE_FORMAT_RAW ? "raw" : "jsonl"),
			    &ok);
			set_field(fh, "max_retry_duration_ms",
				  json_integer(f->max_retry_duration_ms), &ok);
			set_field(root, "firehose", fh, &ok);
		}
	}
	const size_t flags = JSON_INDENT(1) | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER;
	size_t n = ok ? json_dumpb(root, NULL, 0, flags) : 0;
	char *out = n ? malloc(n + 2) : NULL;
	if (!out || json_dumpb(root, out, n, flags) != n) {
		free(out);
		json_decref(root);
		return -ENOMEM;
	}
	json_decref(root);
	out[n++] = '\n';
	out[n] = '\0';
	*ret_json = out;
	*ret_len = n;
	return 0;
}

/* Field readers for from_json: each fails with a message naming the field. */
struct reader {
	char *msg;
	size_t msg_len;
};

static int bad(struct reader *rd, const char *field, const char *what)
{
	set_msg(rd->msg, rd->msg_len, "%s: %s", field, what);
	return SLUICE_ERR_CORRUPT;
}

static int get_int(struct reader *rd, json_t *obj, const char *field, int64_t min, int64_t max,
		   int64_t *out)
{
	json_t *v = json_object_get(obj, field);
	if (!v)
		return bad(rd, field, "missing");
	if (!json_is_integer(v))
		return bad(rd, field, "not an integer");
	json_int_t x = json_integer_value(v);
	if (x < min || x > max)
		return bad(rd, field, "out of range");
	*out = x;
	return 0;
}

/* A string without NUL that fits a buffer of size bytes (NUL included). */
static int get_str(struct reader *rd, json_t *obj, const char *field, char *out, size_t size)
{
	json_t *v = json_object_get(obj, field);
	if (!v)
		return bad(rd, field, "missing");
	if (!json_is_string(v))
		return bad(rd, field, "not a string");
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (strlen(s) != n)
		return bad(rd, field, "contains NUL");
	if (n >= size)
		return bad(rd, field, "too long");
	memcpy(out, s, n + 1);
	return 0;
}

/* The index of the string value of field in names[0..count-1]. */
static int get_enum(struct reader *rd, json_t *obj, const char *field, const char *const *names,
		    int count, int *out)
{
	json_t *v = json_object_get(obj, field);
	if (!v)
		return bad(rd, field, "missing");
	if (!json_is_string(v))
		return bad(rd, field, "not a string");
	for (int i = 0; i < count; i++) {
		if (json_string_length(v) == strlen(names[i]) &&
		    strcmp(json_string_value(v), names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return bad(rd, field, "unknown value");
}

static int cfg_from_json_value(struct reader *rd, json_t *root, struct sl_consumer_config *c)
{
	static const char *const starts[] = {"trim_horizon", "latest", "at_timestamp"};
	static const enum sluice_position_type start_types[] = {
	    SLUICE_POS_TRIM_HORIZON, SLUICE_POS_LATEST, SLUICE_POS_AT_TIMESTAMP};
	int r;
	int64_t format, batch_size, window, ts, retries, age, par, timeout, created;
	int kind, start;
	if (!json_is_object(root))
		return bad(rd, "document", "not a JSON object");
	if ((r = get_int(rd, root, "format", INT64_MIN, INT64_MAX, &format)) < 0)
		return r;
	if (format != CFG_FORMAT)
		return bad(rd, "format", "unsupported version");
	if ((r = get_str(rd, root, "name", c->name, sizeof(c->name))) < 0 ||
	    (r = get_str(rd, root, "stream", c->stream, sizeof(c->stream))) < 0 ||
	    (r = get_enum(rd, root, "handler_kind", kind_names, 4, &kind)) < 0 ||
	    (r = get_str(rd, root, "handler_target", c->handler_target,
			 sizeof(c->handler_target))) < 0 ||
	    (r = get_int(rd, root, "batch_size", 0, UINT32_MAX, &batch_size)) < 0 ||
	    (r = get_int(rd, root, "batch_window_ms", 0, UINT32_MAX, &window)) < 0 ||
	    (r = get_enum(rd, root, "start", starts, 3, &start)) < 0 ||
	    (r = get_int(rd, root, "start_timestamp_ms", 0, INT64_MAX, &ts)) < 0 ||
	    (r = get_int(rd, root, "max_retries", INT32_MIN, INT32_MAX, &retries)) < 0 ||
	    (r = get_int(rd, root, "max_record_age_s", INT64_MIN, INT64_MAX, &age)) < 0 ||
	    (r = get_str(rd, root, "on_failure", c->on_failure, sizeof(c->on_failure))) < 0 ||
	    (r = get_int(rd, root, "parallelism", 0, UINT32_MAX, &par)) < 0 ||
	    (r = get_int(rd, root, "timeout_ms", 0, UINT32_MAX, &timeout)) < 0 ||
	    (r = get_int(rd, root, "created_ms", INT64_MIN, INT64_MAX, &created)) < 0)
		return r;
	json_t *bisect = json_object_get(root, "bisect_on_error");
	if (!bisect)
		return bad(rd, "bisect_on_error", "missing");
	if (!json_is_boolean(bisect))
		return bad(rd, "bisect_on_error", "not a boolean");
	c->handler_kind = (enum sl_handler_kind)kind;
	c->batch_size = (uint32_t)batch_size;
	c->batch_window_ms = (uint32_t)window;
	c->start.type = start_types[start];
	c->start.value = (uint64_t)ts;
	c->max_retries = (int32_t)retries;
	c->max_record_age_s = age;
	c->bisect_on_error = json_is_true(bisect);
	c->parallelism = (uint32_t)par;
	c->timeout_ms = (uint32_t)timeout;
	c->created_ms = created;
	if (c->handler_kind == SL_HANDLER_FIREHOSE) {
		static const char *const comps[] = {"none", "zstd"};
		static const char *const formats[] = {"jsonl", "raw"};
		json_t *fh = json_object_get(root, "firehose");
		struct sl_firehose_options *f = &c->firehose;
		int64_t bytes, interval, level, retry;
		int comp, fmt;
		if (!json_is_object(fh))
			return bad(rd, "firehose", "missing or not an object");
		if ((r = get_str(rd, fh, "endpoint", f->endpoint, sizeof(f->endpoint))) < 0 ||
		    (r = get_str(rd, fh, "region", f->region, sizeof(f->region))) < 0 ||
		    (r = get_str(rd, fh, "credentials_file", f->credentials_file,
				 sizeof(f->credentials_file))) < 0 ||
		    (r = get_str(rd, fh, "profile", f->profile, sizeof(f->profile))) < 0 ||
		    (r = get_int(rd, fh, "buffer_bytes", 0, INT64_MAX, &bytes)) < 0 ||
		    (r = get_int(rd, fh, "buffer_interval_ms", 0, UINT32_MAX, &interval)) < 0 ||
		    (r = get_enum(rd, fh, "compression", comps, 2, &comp)) < 0 ||
		    (r = get_int(rd, fh, "zstd_level", INT32_MIN, INT32_MAX, &level)) < 0 ||
		    (r = get_enum(rd, fh, "format", formats, 2, &fmt)) < 0 ||
		    (r = get_int(rd, fh, "max_retry_duration_ms", INT64_MIN, INT64_MAX, &retry)) <
			0)
			return r;
		f->buffer_bytes = (uint64_t)bytes;
		f->buffer_interval_ms = (uint32_t)interval;
		f->compression = (enum sl_firehose_compression)comp;
		f->zstd_level = (int32_t)level;
		f->format = (enum sl_firehose_format)fmt;
		f->max_retry_duration_ms = retry;
	}
	return 0;
}

int sl_consumer_config_from_json(const char *json, size_t len, struct sl_consumer_config *ret,
				 char *err_msg, size_t err_msg_len)
{
	struct reader rd = {err_msg, err_msg_len};
	json_error_t jerr;
	/* Duplicate keys are refused: which one would win is not something to guess about. */
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		set_msg(err_msg, err_msg_len, "line %d column %d: %s", jerr.line, jerr.column,
			jerr.text);
		return SLUICE_ERR_CORRUPT;
	}
	struct sl_consumer_config *c = malloc(sizeof(*c));
	int r = -ENOMEM;
	if (c) {
		memset(c, 0, sizeof(*c));
		r = cfg_from_json_value(&rd, root, c);
	}
	json_decref(root);
	if (r == 0 && sl_consumer_config_check(c, err_msg, err_msg_len) < 0)
		r = SLUICE_ERR_CORRUPT;
	if (r == 0)
		*ret = *c;
	free(c);
	return r;
}

/* ---- files ---- */

/* Opens meta_dir/consumers as a directory fd; with create, makes both folders (durably). */
static int open_consumers_dir(const char *meta_dir, bool create)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/" CONSUMERS_SUBDIR, meta_dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT || !create)
		return fd >= 0 ? fd : -errno;
	if (mkdir(meta_dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	/* The new folder's entry must survive a crash too, or the file saved into it may not. */
	int r = sl_fsync_dir(meta_dir);
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

int sl_consumer_config_save(const char *meta_dir, const struct sl_consumer_config *cfg)
{
	/* to_json checks first: a bad file would refuse to load at the next start. */
	char *json;
	size_t len;
	int r = sl_consumer_config_to_json(cfg, &json, &len);
	if (r < 0)
		return r;
	char file[CFG_FILE_BUF], tmp[CFG_FILE_BUF];
	snprintf(file, sizeof(file), "%s" CFG_SUFFIX, cfg->name);
	snprintf(tmp, sizeof(tmp), "%s" TMP_SUFFIX, cfg->name);

	int dfd = open_consumers_dir(meta_dir, true);
	if (dfd < 0) {
		free(json);
		return dfd;
	}
	r = sl_write_file_atomic_at(dfd, file, tmp, json, len);
	close(dfd);
	free(json);
	return r;
}

int sl_consumer_config_remove(const char *meta_dir, const char *name)
{
	int r = sl_stream_name_validate(name);
	if (r < 0)
		return r;
	int dfd = open_consumers_dir(meta_dir, false);
	if (dfd < 0)
		return dfd;
	char file[CFG_FILE_BUF], tmp[CFG_FILE_BUF];
	snprintf(file, sizeof(file), "%s" CFG_SUFFIX, name);
	snprintf(tmp, sizeof(tmp), "%s" TMP_SUFFIX, name);
	if (unlinkat(dfd, file, 0) < 0) {
		r = -errno;
		goto out;
	}
	unlinkat(dfd, tmp, 0); /* an unfinished save's leftover, if any */
	if (fsync(dfd) < 0)
		r = -errno;
out:
	close(dfd);
	return r;
}

/* Reads and validates dfd/file_name, whose consumer name must be expect_name. */
static int load_at(int dfd, const char *file_name, const char *expect_name,
		   struct sl_consumer_config *ret, char *msg, size_t msg_len)
{
	int fd = openat(dfd, file_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		int e = errno;
		set_msg(msg, msg_len, "open: %s", strerror(e));
		return -e;
	}
	int r;
	char *buf = NULL;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		set_msg(msg, msg_len, "stat: %s", strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)CFG_FILE_BYTES_MAX) {
		set_msg(msg, msg_len, "not a regular file of at most %u bytes", CFG_FILE_BYTES_MAX);
		r = SLUICE_ERR_CORRUPT;
		goto out;
	}
	size_t cap = (size_t)st.st_size, len = 0;
	buf = malloc(cap + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	/* Read up to the size stat gave; a file that grows meanwhile shows up as corrupt. */
	for (;;) {
		ssize_t n = read(fd, buf + len, cap + 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			set_msg(msg, msg_len, "read: %s", strerror(-r));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > cap) {
			set_msg(msg, msg_len, "file changed while being read");
			r = SLUICE_ERR_CORRUPT;
			goto out;
		}
	}
	r = sl_consumer_config_from_json(buf, len, ret, msg, msg_len);
	if (r == 0 && strcmp(ret->name, expect_name) != 0) {
		set_msg(msg, msg_len, "name: \"%s\" does not match the file name", ret->name);
		r = SLUICE_ERR_CORRUPT;
	}
out:
	free(buf);
	close(fd);
	return r;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_cfg_suffix(const char *s, size_t n)
{
	size_t k = strlen(CFG_SUFFIX);
	return n > k && memcmp(s + n - k, CFG_SUFFIX, k) == 0;
}

int sl_consumer_config_load_all(
    const char *meta_dir, int (*loaded)(void *ctx, const struct sl_consumer_config *cfg),
    void (*corrupt)(void *ctx, const char *file, int err, const char *msg), void *ctx)
{
	int dfd = open_consumers_dir(meta_dir, false);
	if (dfd < 0)
		return dfd == -ENOENT ? 0 : dfd;
	int dfd2 = dup(dfd);
	DIR *d = dfd2 >= 0 ? fdopendir(dfd2) : NULL;
	if (!d) {
		int r = -errno;
		if (dfd2 >= 0)
			close(dfd2);
		close(dfd);
		return r;
	}
	/* Collect the names first: name order makes startup deterministic. */
	char **names = NULL;
	size_t count = 0, cap = 0;
	int r = 0;
	struct sl_consumer_config *cfg = malloc(sizeof(*cfg));
	if (!cfg) {
		r = -ENOMEM;
		goto out;
	}
	struct dirent *e;
	errno = 0;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		if (!has_cfg_suffix(e->d_name, n))
			continue; /* temp files (NAME.json.tmp) and anything else */
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 16;
			char **nn = realloc(names, nc * sizeof(*nn));
			if (!nn) {
				r = -ENOMEM;
				goto out;
			}
			names = nn;
			cap = nc;
		}
		names[count] = strdup(e->d_name);
		if (!names[count]) {
			r = -ENOMEM;
			goto out;
		}
		count++;
		errno = 0;
	}
	if (errno) {
		r = -errno;
		goto out;
	}
	if (count)
		qsort(names, count, sizeof(*names), cmp_str);

	int nloaded = 0;
	for (size_t i = 0; i < count; i++) {
		char msg[SL_STREAM_MSG_LEN] = "";
		char stem[CFG_FILE_BUF];
		size_t n = strlen(names[i]) - strlen(CFG_SUFFIX);
		int lr;
		if (n >= sizeof(stem)) {
			lr = SLUICE_ERR_CORRUPT;
		} else {
			memcpy(stem, names[i], n);
			stem[n] = '\0';
			lr = sl_stream_name_validate(stem) < 0 ? SLUICE_ERR_CORRUPT : 0;
		}
		if (lr < 0)
			set_msg(msg, sizeof(msg), "file name is not a valid consumer name");
		else
			lr = load_at(dfd, names[i], stem, cfg, msg, sizeof(msg));
		if (lr == -ENOMEM) {
			r = lr;
			goto out;
		}
		if (lr == -ENOENT)
			continue; /* removed since the listing */
		if (lr < 0) {
			if (corrupt)
				corrupt(ctx, names[i], lr, msg);
			continue;
		}
		nloaded++;
		lr = loaded(ctx, cfg);
		if (lr < 0) {
			r = lr;
			goto out;
		}
	}
	r = nloaded;
out:
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	free(cfg);
	closedir(d);
	close(dfd);
	return r;
}
