/*
 * struct sl_consumer_config: a registered consumer (the Lambda event-source-mapping half of
 * sluice): which stream, which handler, and the batching/retry policy. Durable as
 * DATA/meta/consumers/NAME.json, written atomically like stream metadata (temp, fsync, rename,
 * fsync dir). Checkpoints live apart, one small file per shard (consumer_checkpoint.h), because
 * they change constantly while the registration almost never does.
 */
#ifndef SL_CONSUMER_CONSUMER_CONFIG_H
#define SL_CONSUMER_CONSUMER_CONFIG_H

#include <sluice/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_CONSUMER_BATCH_SIZE_MAX 10000 /* records per invocation (Lambda's limit) */
#define SL_CONSUMER_BATCH_SIZE_DEFAULT 100
#define SL_CONSUMER_BATCH_WINDOW_MS_MAX 300000 /* 5 minutes, as Lambda */
#define SL_CONSUMER_PARALLELISM_MAX 10
#define SL_CONSUMER_TIMEOUT_MS_DEFAULT 60000
#define SL_CONSUMER_TIMEOUT_MS_MAX 900000 /* 15 minutes, as Lambda */
#define SL_CONSUMER_HANDLER_LEN_MAX 4096  /* "exec:COMMAND..." */

enum sl_handler_kind {
	SL_HANDLER_EXEC = 0,	 /* exec:COMMAND, run with /bin/sh -c */
	SL_HANDLER_PLUGIN = 1,	 /* plugin:/path/to/handler.so */
	SL_HANDLER_REMOTE = 2,	 /* remote: processes attach with libsluice */
	SL_HANDLER_FIREHOSE = 3, /* built in: buffered, compressed objects to an object store */
};

/* Firehose buffering hints and destination (Amazon Firehose's ranges). */
#define SL_FIREHOSE_BUFFER_BYTES_MIN (1ull << 20)
#define SL_FIREHOSE_BUFFER_BYTES_MAX (128ull << 20)
#define SL_FIREHOSE_BUFFER_BYTES_DEFAULT (5ull << 20)
#define SL_FIREHOSE_BUFFER_INTERVAL_MS_MAX 900000u
#define SL_FIREHOSE_BUFFER_INTERVAL_MS_DEFAULT 60000u
/* Records in one object: bounds a flush of many tiny records. */
#define SL_FIREHOSE_RECORDS_MAX 1000000u
/* Upload timeout: a whole object must reach the store within this (per attempt). */
#define SL_FIREHOSE_TIMEOUT_MS_DEFAULT 300000u

enum sl_firehose_compression { SL_FIREHOSE_COMPRESSION_NONE = 0, SL_FIREHOSE_COMPRESSION_ZSTD = 1 };
enum sl_firehose_format { SL_FIREHOSE_FORMAT_JSONL = 0, SL_FIREHOSE_FORMAT_RAW = 1 };

/* For SL_HANDLER_FIREHOSE; handler_target holds the destination (file:///DIR or
 * s3://BUCKET/PREFIX). */
struct sl_firehose_options {
	char endpoint[512];	     /* "" = AWS (virtual-host style); else path style */
	char region[64];	     /* "" = us-east-1 */
	char credentials_file[512];  /* "" = AWS_* environment of sluiced */
	char profile[64];	     /* in credentials_file; "" = default */
	uint64_t buffer_bytes;	     /* SL_FIREHOSE_BUFFER_BYTES_MIN..MAX */
	uint32_t buffer_interval_ms; /* 0..SL_FIREHOSE_BUFFER_INTERVAL_MS_MAX */
	enum sl_firehose_compression compression;
	int32_t zstd_level; /* 1..19 */
	enum sl_firehose_format format;
	int64_t max_retry_duration_ms; /* -1: until the records expire */
};

struct sl_consumer_config {
	char name[SLUICE_NAME_LEN_MAX + 1];
	char stream[SLUICE_NAME_LEN_MAX + 1];
	enum sl_handler_kind handler_kind;
	char handler_target[SL_CONSUMER_HANDLER_LEN_MAX]; /* command or .so path; "" for remote */
	uint32_t batch_size;				  /* 1..SL_CONSUMER_BATCH_SIZE_MAX */
	uint32_t batch_window_ms;			  /* 0..SL_CONSUMER_BATCH_WINDOW_MS_MAX */
	struct sluice_position start; /* TRIM_HORIZON, LATEST (default) or AT_TIMESTAMP */
	int32_t max_retries;	      /* -1: until the records expire */
	int64_t max_record_age_s;     /* -1: the stream's retention */
	bool bisect_on_error;
	char on_failure[SLUICE_NAME_LEN_MAX + 1]; /* "" = none */
	uint32_t parallelism;			  /* 1..SL_CONSUMER_PARALLELISM_MAX */
	uint32_t timeout_ms; /* per invocation, 1..SL_CONSUMER_TIMEOUT_MS_MAX */
	struct sl_firehose_options firehose; /* SL_HANDLER_FIREHOSE only */
	int64_t created_ms;
};

/* Defaults for everything but name/stream/handler. */
void sl_consumer_config_defaults(struct sl_consumer_config *cfg);
/* Defaults of a firehose: kind SL_HANDLER_FIREHOSE, start trim-horizon, parallelism 1, buffer
 * hints 5 MiB / 60 s, zstd level 3, jsonl, retries until the records expire. */
void sl_firehose_config_defaults(struct sl_consumer_config *cfg);
/* Parse "exec:COMMAND", "plugin:PATH" or "remote" into kind + target. 0 or
 * SLUICE_ERR_INVALID_ARGUMENT. */
int sl_consumer_parse_handler(const char *spec, enum sl_handler_kind *ret_kind, char *target,
			      size_t target_len);
/* Validate every field (names via the stream name rules). 0 or SLUICE_ERR_INVALID_NAME /
 * SLUICE_ERR_INVALID_ARGUMENT with a message naming the field. */
int sl_consumer_config_check(const struct sl_consumer_config *cfg, char *err_msg,
			     size_t err_msg_len);

/* JSON (jansson); from_json validates like check (SLUICE_ERR_CORRUPT on a bad file). */
int sl_consumer_config_to_json(const struct sl_consumer_config *cfg, char **ret_json,
			       size_t *ret_len);
int sl_consumer_config_from_json(const char *json, size_t len, struct sl_consumer_config *ret,
				 char *err_msg, size_t err_msg_len);

/* Persistence under meta_dir/consumers/NAME.json (same rules as sl_stream_meta_save/...). */
int sl_consumer_config_save(const char *meta_dir, const struct sl_consumer_config *cfg);
int sl_consumer_config_remove(const char *meta_dir, const char *name);
/* Calls loaded() for every good file (cfg is the callee's to copy), corrupt() for bad ones;
 * returns the count loaded or a negative error. */
int sl_consumer_config_load_all(
    const char *meta_dir, int (*loaded)(void *ctx, const struct sl_consumer_config *cfg),
    void (*corrupt)(void *ctx, const char *file, int err, const char *msg), void *ctx);

#endif
