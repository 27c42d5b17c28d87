/*
 * libsluice: the client library of sluice.
 *
 * Two kinds of objects:
 *
 *  - struct sluice_client: one TCP connection (TCP_NODELAY) with synchronous calls: admin,
 *    sluice_put / sluice_put_batch, sluice_read and the shard reader. One request is in flight
 *    at a time. A client is NOT thread-safe: use it from one thread at a time (different
 *    clients may be used from different threads freely). When the connection breaks, the call
 *    that noticed returns SLUICE_ERR_DISCONNECTED (or SLUICE_ERR_TIMEOUT, after which the
 *    connection is dropped too, since a late answer could be mistaken for the next one); the
 *    next call reconnects. Read-only calls (list, describe, read) that fail on a connection
 *    that had been idle are retried once on a fresh connection.
 *
 *  - struct sluice_producer: the asynchronous batching producer (the fast path). Thread-safe:
 *    any number of threads may call sluice_producer_send/flush concurrently. It owns one I/O
 *    thread and its own connections; see the section below for ordering and callbacks.
 *
 *  - struct sluice_remote_consumer: a connection attached to a consumer whose handler is
 *    "remote": the server pushes batches, a callback handles them, the library acknowledges.
 *
 * Errors: every function that can fail returns int: 0 (or a positive count) on success, a
 * negative errno (-ECONNREFUSED, -ENOMEM, ...) or a SLUICE_ERR_* code (<sluice/errors.h>). Codes
 * the server sends travel unchanged. Out-parameters (ret_*) are untouched on failure. The library
 * never prints, never exits and installs no signal handler (it writes with MSG_NOSIGNAL).
 */
#ifndef SLUICE_CLIENT_H
#define SLUICE_CLIENT_H

#include <sluice/errors.h>
#include <sluice/handler.h>
#include <sluice/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The server address used when none is given. */
#define SLUICE_DEFAULT_SERVER "127.0.0.1:7400"

/* ======================================================================================
 * Connection
 * ====================================================================================== */

struct sluice_client;

/* Zero-initialize, then set what you need. */
struct sluice_client_options {
	/* Connect timeout and the longest wait for one answer. 0: 10 s. Negative: wait forever. */
	int timeout_ms;
	/* Sent with AUTH right after every (re)connect when not NULL. Copied. */
	const char *auth_token;
};

/*
 * Connect to host_port ("127.0.0.1:7400", "localhost:7400", "[::1]:7400"). opts may be NULL.
 * On success *ret is a connected client; free it with sluice_client_close.
 */
int sluice_client_connect(const char *host_port, const struct sluice_client_options *opts,
			  struct sluice_client **ret);
/* Close the connection and free the client. Accepts NULL. */
void sluice_client_close(struct sluice_client *c);

/*
 * The message that came with the last error of c: the server's own text for server errors,
 * else a short description of the local failure. Never NULL (empty after success); valid until
 * the next call on c.
 */
const char *sluice_client_last_error_message(const struct sluice_client *c);

/* Round trip to the server. */
int sluice_ping(struct sluice_client *c);

/* ======================================================================================
 * Admin
 * ====================================================================================== */

/* Stream status as described by the server. */
enum sluice_stream_status {
	SLUICE_STREAM_ACTIVE = 0,
	SLUICE_STREAM_CREATING = 1,
	SLUICE_STREAM_DELETING = 2,
	SLUICE_STREAM_UPDATING = 3, /* resharding */
};
/* "ACTIVE", "CREATING", "DELETING", "UPDATING" or "UNKNOWN". Static storage. */
const char *sluice_stream_status_name(int status);

struct sluice_shard_info {
	uint32_t shard_id;
	int32_t parent_id;	    /* -1: none */
	int32_t adjacent_parent_id; /* -1: none */
	struct sluice_hash_key start_hash_key;
	struct sluice_hash_key end_hash_key; /* inclusive */
	uint64_t start_seq;
	uint64_t end_seq; /* 0 while the shard is open */
	uint64_t next_seq;
	/* Split or merged (it has children): no more writes, its records stay readable until they
	 * expire, and its last sequence number is end_seq (start_seq - 1 if it got none). */
	bool closed;
};

struct sluice_stream_info {
	char *name;
	uint64_t retention_ms;
	int64_t created_ms;
	int status; /* enum sluice_stream_status */
	size_t shard_count;
	struct sluice_shard_info *shards;
};

/* retention_ms: how long records are kept. */
int sluice_stream_create(struct sluice_client *c, const char *name, uint32_t shard_count,
			 uint64_t retention_ms);
int sluice_stream_delete(struct sluice_client *c, const char *name);
/* *ret_names: ret_count NUL-terminated names; free with sluice_strings_free. */
int sluice_stream_list(struct sluice_client *c, char ***ret_names, size_t *ret_count);
void sluice_strings_free(char **names, size_t count);
/* *ret: free with sluice_stream_info_free (accepts NULL). */
int sluice_stream_describe(struct sluice_client *c, const char *name,
			   struct sluice_stream_info **ret);
void sluice_stream_info_free(struct sluice_stream_info *info);
/* *ret_shards: ret_count entries; free with sluice_shards_free (accepts NULL). */
int sluice_list_shards(struct sluice_client *c, const char *stream,
		       struct sluice_shard_info **ret_shards, size_t *ret_count);
void sluice_shards_free(struct sluice_shard_info *shards);

/*
 * Resharding (Kinesis SplitShard, MergeShards, UpdateShardCount). The parents are closed: they
 * keep their records (readable until they expire) and take no more writes; producers need not
 * care (the server routes each record to the open shard of its hash key, also for requests in
 * flight during the reshard). Children start after their parents' last sequence number, so a
 * partition key's sequence numbers keep increasing. One reshard per stream at a time: another
 * gets SLUICE_ERR_RESOURCE_IN_USE. Not retried automatically (not idempotent).
 *
 * split: shard_id (open) becomes [start, new_start_hash_key - 1] and [new_start_hash_key, end];
 *   new_start_hash_key must be strictly inside the shard's range, above its start. The children's
 *   ids go to ret_child_ids (may be NULL), lower range first.
 * merge: shard_id and adjacent_shard_id (open, adjacent ranges, either order) become one child
 *   (its id to ret_child_id, may be NULL).
 * scale: UNIFORM_SCALING to target_open_shards open shards with even hash ranges, as splits then
 *   merges; target between half and double the open count, at most SLUICE_SHARDS_MAX.
 * Errors: SLUICE_ERR_STREAM_NOT_FOUND, SLUICE_ERR_SHARD_NOT_FOUND, SLUICE_ERR_INVALID_ARGUMENT
 * (closed shard, key outside, not adjacent, count out of range), SLUICE_ERR_LIMIT_EXCEEDED,
 * SLUICE_ERR_RESOURCE_IN_USE, connection errors.
 */
int sluice_stream_split(struct sluice_client *c, const char *stream, uint32_t shard_id,
			const struct sluice_hash_key *new_start_hash_key,
			uint32_t ret_child_ids[2]);
int sluice_stream_merge(struct sluice_client *c, const char *stream, uint32_t shard_id,
			uint32_t adjacent_shard_id, uint32_t *ret_child_id);
int sluice_stream_scale(struct sluice_client *c, const char *stream, uint32_t target_open_shards);

/*
 * Stream settings (Kinesis' retention and tag operations). set_retention changes how long
 * records are kept, at once on the live logs (SLUICE_ERR_INVALID_ARGUMENT outside 1 s..365 d).
 * Tags: keys 1..SLUICE_TAG_KEY_LEN_MAX bytes, values 0..SLUICE_TAG_VALUE_LEN_MAX bytes, UTF-8, at
 * most SLUICE_TAGS_MAX per stream. add_tags adds or replaces n (1..SLUICE_TAGS_MAX) tags, all or
 * none (SLUICE_ERR_LIMIT_EXCEEDED past the limit); remove_tags removes n keys (absent keys are
 * ignored); list_tags returns them in the order they were first added: free *ret_tags with
 * sluice_tags_free (accepts NULL).
 */
#define SLUICE_TAGS_MAX 50
#define SLUICE_TAG_KEY_LEN_MAX 128
#define SLUICE_TAG_VALUE_LEN_MAX 256
struct sluice_tag {
	char *key;
	char *value;
};
int sluice_stream_set_retention(struct sluice_client *c, const char *name, uint64_t retention_ms);
int sluice_stream_add_tags(struct sluice_client *c, const char *name, const struct sluice_tag *tags,
			   size_t n);
int sluice_stream_remove_tags(struct sluice_client *c, const char *name, const char *const *keys,
			      size_t n);
int sluice_stream_list_tags(struct sluice_client *c, const char *name, struct sluice_tag **ret_tags,
			    size_t *ret_count);
void sluice_tags_free(struct sluice_tag *tags, size_t count);

/* ======================================================================================
 * Synchronous produce
 * ====================================================================================== */

/* The server acknowledges a record after it met the stream's durability policy (fsync). */
int sluice_put(struct sluice_client *c, const char *stream, const void *key, size_t key_len,
	       const void *data, size_t data_len, uint32_t *ret_shard, uint64_t *ret_seq);

struct sluice_put_entry {
	const void *key; /* partition key, 1..SLUICE_KEY_LEN_MAX bytes of UTF-8 */
	size_t key_len;
	const void *data;
	size_t data_len;
	/* Optional explicit hash key (routes the record instead of MD5(key)); NULL for none. */
	const struct sluice_hash_key *hash_key;
};

struct sluice_put_result {
	int status; /* 0 or a negative error for this record */
	uint32_t shard_id;
	uint64_t seq;
};

/*
 * Send n (1..SLUICE_PUT_BATCH_MAX) records in one request. Returns 0 when the server answered
 * the request: results[i] then tells the fate of entries[i] (some may have failed, e.g. with
 * SLUICE_ERR_THROTTLED). A negative return means the request as a whole failed and results is
 * untouched (the records may or may not have been stored if the connection broke).
 */
#define SLUICE_PUT_BATCH_MAX 10000u
int sluice_put_batch(struct sluice_client *c, const char *stream,
		     const struct sluice_put_entry *entries, size_t n,
		     struct sluice_put_result *results);

/* ======================================================================================
 * Reading
 * ====================================================================================== */

/*
 * The answer of one read. Initialize once with sluice_read_result_init, pass to any number of
 * sluice_read calls (its memory is reused), release with sluice_read_result_finish. records[i]
 * borrow the result's buffer: they are valid until the next read into the same result or
 * finish. Fields after the comment are private.
 */
struct sluice_read_result {
	struct sluice_record *records;
	size_t count;
	uint32_t shard_id;
	uint64_t next_seq;	/* read on from here (position AT_SEQ) */
	uint64_t tip_seq;	/* the shard's next sequence number to be assigned */
	uint64_t millis_behind; /* how far the last record returned is behind the tip, in ms */
	/* The shard is closed (split or merged) and next_seq is past its last record: nothing more
	 * will ever be read here; go on with its children (Kinesis: null NextShardIterator). */
	bool shard_ended;
	/* private */
	uint8_t *priv_data;
	size_t priv_data_cap;
	size_t priv_records_cap;
};

void sluice_read_result_init(struct sluice_read_result *res);
void sluice_read_result_finish(struct sluice_read_result *res);

/* Whether a read has reached the shard's tip (nothing more to read right now). */
static inline bool sluice_read_result_caught_up(const struct sluice_read_result *res)
{
	return res->next_seq >= res->tip_seq;
}

/* Default and upper bounds of one read (0 selects the default). */
#define SLUICE_READ_RECORDS_DEFAULT 10000u
#define SLUICE_READ_BYTES_DEFAULT (8u << 20)

/*
 * Read up to max_records / max_bytes records of one shard from pos. Returns the number of
 * records (>= 0) and fills *ret; on error *ret is left empty (count 0).
 */
int sluice_read(struct sluice_client *c, const char *stream, uint32_t shard_id,
		const struct sluice_position *pos, uint32_t max_records, uint32_t max_bytes,
		struct sluice_read_result *ret);

/*
 * Long poll: like sluice_read, but when there is nothing to return yet the server holds the
 * read up to wait_ms (1..SLUICE_READ_WAIT_MS_MAX; 0 is sluice_read) and answers as soon as a
 * record is acknowledged at the position (a LATEST read is pinned to the tip when it arrives:
 * it returns what was written during the wait). An empty answer means the wait expired. The
 * client's timeout counts from the end of the wait. Needs a server that knows wait_ms (an older
 * one rejects the request as malformed).
 */
#define SLUICE_READ_WAIT_MS_MAX 30000u
int sluice_read_wait(struct sluice_client *c, const char *stream, uint32_t shard_id,
		     const struct sluice_position *pos, uint32_t max_records, uint32_t max_bytes,
		     uint32_t wait_ms, struct sluice_read_result *ret);

/*
 * A shard iterator: successive batches of one shard, each read continuing at the previous
 * answer's next_seq. It borrows c, which must outlive it and follows c's one-thread rule.
 */
struct sluice_shard_reader;

int sluice_shard_reader_create(struct sluice_client *c, const char *stream, uint32_t shard_id,
			       const struct sluice_position *start,
			       struct sluice_shard_reader **ret);
/*
 * The next batch (may be empty when caught up). Returns its record count; *ret_batch points to
 * a result owned by the reader, valid until the next call or destroy. On error the position
 * does not move, so calling again retries the same read.
 */
int sluice_shard_reader_next(struct sluice_shard_reader *r, uint32_t max_records,
			     uint32_t max_bytes, const struct sluice_read_result **ret_batch);
/*
 * Reads of this reader wait on the server up to wait_ms for records when there are none (see
 * sluice_read_wait); 0 (the default) returns empty batches at once. Reads that are behind the
 * tip are unaffected. SLUICE_ERR_INVALID_ARGUMENT above SLUICE_READ_WAIT_MS_MAX.
 */
int sluice_shard_reader_set_wait(struct sluice_shard_reader *r, uint32_t wait_ms);
/* Whether the last batch reached the tip (false before the first read). */
bool sluice_shard_reader_caught_up(const struct sluice_shard_reader *r);
/* Where the next read starts. */
struct sluice_position sluice_shard_reader_position(const struct sluice_shard_reader *r);
void sluice_shard_reader_destroy(struct sluice_shard_reader *r);

/* ======================================================================================
 * Restore and import (what `sluice restore`, `sluice import` and `sluice export` use)
 * ====================================================================================== */

/*
 * Create stream name with exactly the layout of a stream metadata document (the JSON the
 * firehose stores at PREFIX/_meta/STREAM.json, or sluice_stream_meta_get's answer): same shard
 * ids, hash ranges, lineage, closed shards and start sequence numbers. The document's own name
 * is replaced by name. SLUICE_ERR_STREAM_EXISTS if the name is taken, SLUICE_ERR_INVALID_ARGUMENT
 * (with the server's message) for a document that does not validate.
 */
int sluice_stream_create_from_meta(struct sluice_client *c, const char *name, const char *json,
				   size_t json_len);
/* The stream's metadata document; *ret_json is malloc'd, NUL-terminated (free() it). */
int sluice_stream_meta_get(struct sluice_client *c, const char *name, char **ret_json,
			   size_t *ret_len);

struct sluice_restore_result {
	uint32_t appended; /* stored now, with their own seq and ts */
	uint32_t skipped;  /* seq below the shard's next_seq: stored before (a re-run) */
	uint64_t next_seq; /* the shard's next sequence number afterwards */
};

/*
 * Append n (1..SLUICE_PUT_BATCH_MAX) records to shard shard_id of stream with their own seq
 * (strictly increasing, >= 1) and ts_ms (>= 1); key and data as in a put (has_hash_key is
 * ignored: the shard is named). Returns once the appended records are durable. Records whose seq
 * the shard already passed are skipped and counted, so repeating a call is harmless. Errors:
 * SLUICE_ERR_SEQ_ORDER (seqs not increasing), SLUICE_ERR_SHARD_NOT_FOUND, _STREAM_NOT_FOUND,
 * _INVALID_KEY, _RECORD_TOO_LARGE, _INVALID_ARGUMENT (seq or ts 0); nothing is stored then.
 */
int sluice_restore_append(struct sluice_client *c, const char *stream, uint32_t shard_id,
			  const struct sluice_record *recs, size_t n,
			  struct sluice_restore_result *ret);

/* ======================================================================================
 * Asynchronous batching producer
 * ======================================================================================
 *
 * sluice_producer_send copies the record into the open request of its stream (encoded for the
 * wire right away) and returns. An I/O thread sends the open request (Nagle-like):
 *   - at once when no request is in flight or waiting: a lone record costs one round trip;
 *   - while requests are in flight, when it is full (max_records_per_request /
 *     max_bytes_per_request) or its linger (linger_us, else linger_ms) after its first record
 *     has passed;
 *   - with no linger (negative), as soon as a connection has a free request slot: records that
 *     arrive while all max_inflight_requests slots are taken coalesce into the next request.
 * It keeps up to max_inflight_requests requests in flight per connection, matches the answers
 * and calls each record's callback exactly once.
 *
 * Callbacks run on the I/O thread, without any producer lock held: keep them short and never
 * block in them (no blocking send, no flush, no destroy from a callback; a nonblocking send is
 * fine). status is 0 (shard_id and seq are set) or the record's final error (shard_id is
 * UINT32_MAX, seq 0).
 *
 * Retries: a retryable failure (sluice_error_is_retryable: throttled, disconnected, ...) of a
 * whole request, or of some of its records, is retried up to `retries` times with exponential
 * backoff; then the record fails with that error. A retried request goes out before any
 * request that was not yet sent when it failed.
 *
 * Ordering: records of one stream are put into requests in send order, and requests leave in
 * that order. Hence, with connections == 1:
 *   - max_inflight_requests == 1: records of a partition key are stored in send order, even
 *     through retries (like Kafka with max.in.flight = 1);
 *   - max_inflight_requests > 1: without failures order is kept too, as far as the server
 *     appends one connection's requests to a shard in arrival order; after a retryable failure, a
 * retried request may land after requests that were already in flight when it failed (at most
 * max_inflight_requests - 1 of them), and a record retried alone may land after later records of
 * the same request. With connections > 1, requests are spread over the connections and no order
 * across requests is guaranteed. A disconnect may also duplicate records (the request may have been
 * stored before the connection broke): delivery is at least once.
 */
struct sluice_producer;

typedef void (*sluice_producer_cb)(void *ctx, int status, uint32_t shard_id, uint64_t seq);

/* Zero-initialize; 0 in a field selects its default. */
struct sluice_producer_options {
	uint32_t max_records_per_request; /* default 500, at most SLUICE_PUT_BATCH_MAX */
	uint32_t max_bytes_per_request;	  /* default 1 MiB of encoded records, at most 32 MiB */
	int linger_ms;			  /* default 5; negative: no lingering (see above) */
	uint32_t max_inflight_requests;	  /* per connection; default 8, at most 1024 */
	uint32_t connections;		  /* default 1, at most 64 */
	uint64_t buffer_bytes_max;	  /* records queued or in flight; default 32 MiB */
	int retries;			  /* default 3; negative: no retry */
	int retry_backoff_ms;		  /* first backoff, doubled per attempt; default 100 */
	int timeout_ms;			  /* connect and request timeout; default 30 s */
	bool nonblocking;		  /* send returns SLUICE_ERR_THROTTLED when buffer full */
	const char *auth_token;		  /* copied */
	/* Linger in microseconds (sub-millisecond lingers); when non-zero it replaces linger_ms.
	 * Negative: no lingering. At most a day (so is linger_ms). */
	int64_t linger_us;
};

/*
 * Connect (all connections; the first failure is returned) and start the I/O thread.
 * opts may be NULL for all defaults.
 */
int sluice_producer_create(const char *host_port, const struct sluice_producer_options *opts,
			   struct sluice_producer **ret);

/*
 * Queue one record. Copies stream, key and data (they may be reused when this returns).
 * Blocks while buffer_bytes_max is reached (returns SLUICE_ERR_THROTTLED instead when
 * opts.nonblocking). Returns 0 when queued (cb will be called exactly once), or a negative
 * error without calling cb: SLUICE_ERR_INVALID_KEY, SLUICE_ERR_INVALID_NAME,
 * SLUICE_ERR_RECORD_TOO_LARGE, SLUICE_ERR_THROTTLED, -ENOMEM, SLUICE_ERR_SHUTTING_DOWN.
 * cb may be NULL (fire and forget; sluice_producer_stats still counts failures).
 */
int sluice_producer_send(struct sluice_producer *p, const char *stream, const void *key,
			 size_t key_len, const void *data, size_t data_len, sluice_producer_cb cb,
			 void *ctx);

/*
 * Send everything queued so far without waiting for linger, and wait until all records sent
 * before this call are acknowledged or failed (their callbacks have returned). timeout_ms < 0
 * waits forever. Returns 0 or SLUICE_ERR_TIMEOUT.
 */
int sluice_producer_flush(struct sluice_producer *p, int timeout_ms);

struct sluice_producer_stats {
	uint64_t records_sent;	 /* accepted by sluice_producer_send */
	uint64_t records_acked;	 /* callbacks with status 0 */
	uint64_t records_failed; /* callbacks with an error */
	uint64_t requests_sent;	 /* PRODUCE frames written, retries included */
	uint64_t retries;	 /* requests re-sent after a retryable failure */
	uint64_t bytes_buffered; /* right now */
};
void sluice_producer_stats(struct sluice_producer *p, struct sluice_producer_stats *ret);

/* Flush (waiting as long as it takes), stop the I/O thread, close and free. Accepts NULL. */
void sluice_producer_destroy(struct sluice_producer *p);

/* ======================================================================================
 * Consumers
 * ======================================================================================
 *
 * A consumer maps a stream to a handler (Lambda's event source mapping): the server reads every
 * shard, delivers micro-batches to the handler in shard order and checkpoints what the handler
 * finished. Handlers are given as a spec: "exec:COMMAND" (run with /bin/sh -c, one Lambda-style
 * JSON event per line on its stdin), "plugin:/path/to/handler.so" (<sluice/handler.h>; an
 * absolute path is recommended, a relative one is resolved by the server) or "remote" (a process
 * attaches with sluice_consumer_attach below).
 */

/* The policy of a consumer. Initialize with sluice_consumer_options_init, then change fields. */
struct sluice_consumer_options {
	uint32_t batch_size;	  /* records per invocation, 1..10000; default 100 */
	uint32_t batch_window_ms; /* wait up to this long to fill a batch, 0..300000; default 0 */
	struct sluice_position start; /* TRIM_HORIZON, LATEST (default) or AT_TIMESTAMP */
	int32_t max_retries;	      /* retries of a failing batch; -1 (default): until expiry */
	int64_t max_record_age_s;     /* give up on older records; -1 (default): the retention */
	bool bisect_on_error;	      /* split a failing batch in two to isolate the bad record */
	const char *on_failure;	      /* stream that receives given-up records; NULL: none */
	uint32_t parallelism;	      /* concurrent batches per shard, 1..10; default 1 */
	uint32_t timeout_ms;	      /* per invocation, 1..900000; default 60000 */
};

void sluice_consumer_options_init(struct sluice_consumer_options *opts);

/*
 * Register consumer name on stream. opts may be NULL for the defaults. The server validates
 * every field; its message (sluice_client_last_error_message) names the one it refused. Errors
 * of note: SLUICE_ERR_INVALID_NAME, SLUICE_ERR_INVALID_ARGUMENT (a bad handler spec is refused
 * here, before anything is sent), SLUICE_ERR_STREAM_NOT_FOUND, and an "exists" error when the
 * name is taken.
 */
int sluice_consumer_create(struct sluice_client *c, const char *name, const char *stream,
			   const char *handler_spec, const struct sluice_consumer_options *opts);
/* Stop and unregister a consumer; its checkpoints are removed. */
int sluice_consumer_delete(struct sluice_client *c, const char *name);
/* *ret_names: ret_count names; free with sluice_strings_free. */
int sluice_consumer_list(struct sluice_client *c, char ***ret_names, size_t *ret_count);

/* What a consumer is doing on one shard. */
enum sluice_consumer_state {
	SLUICE_CONSUMER_IDLE = 0,	    /* caught up, or waiting for the batch window */
	SLUICE_CONSUMER_DELIVERING = 1,	    /* a batch is with the handler */
	SLUICE_CONSUMER_RETRYING = 2,	    /* a batch failed and waits for its retry */
	SLUICE_CONSUMER_FINISHED = 3,	    /* a closed shard, processed to its end */
	SLUICE_CONSUMER_WAITING_REMOTE = 4, /* remote handler: nobody is attached */
	/* a child of a reshard: starts once its parents are finished (parents first, as the KCL) */
	SLUICE_CONSUMER_WAITING_PARENTS = 5,
};
/* "IDLE", "DELIVERING", "RETRYING", "FINISHED", "WAITING_REMOTE", "WAITING_PARENTS" or
 * "UNKNOWN". Static. */
const char *sluice_consumer_state_name(int state);

enum sluice_handler_kind {
	SLUICE_HANDLER_KIND_EXEC = 0,
	SLUICE_HANDLER_KIND_PLUGIN = 1,
	SLUICE_HANDLER_KIND_REMOTE = 2,
};
/* "exec", "plugin", "remote" or "unknown". Static. */
const char *sluice_handler_kind_name(int kind);

struct sluice_consumer_shard_status {
	uint32_t shard_id;
	uint64_t checkpoint_seq; /* last sequence number finished; 0: none yet */
	uint64_t lag_records;	 /* records after the checkpoint */
	uint64_t lag_ms;	 /* age of the oldest record not yet finished */
	int state;		 /* enum sluice_consumer_state; other values from newer servers */
	uint64_t delivered;	 /* records the handler finished */
	uint64_t batches_failed;
	uint64_t retries;
	uint64_t sent_to_on_failure; /* records given up on and written to on_failure */
	uint64_t expired;	     /* records given up on because they expired */
	char *last_error;	     /* "" when none */
};

struct sluice_consumer_info {
	char *name;
	char *stream;
	int handler_kind;     /* enum sluice_handler_kind */
	char *handler_target; /* the command or .so path; "" for remote */
	/* The policy; options.on_failure is NULL or points into this info. */
	struct sluice_consumer_options options;
	int64_t created_ms;
	size_t shard_count;
	struct sluice_consumer_shard_status *shards;
};

/* *ret: free with sluice_consumer_info_free (accepts NULL). */
int sluice_consumer_describe(struct sluice_client *c, const char *name,
			     struct sluice_consumer_info **ret);
void sluice_consumer_info_free(struct sluice_consumer_info *info);

/*
 * Move a consumer's checkpoint: on one shard (shard_id 0..UINT32_MAX) or on all (-1). `to` is
 * any position (TRIM_HORIZON, LATEST, AT_SEQ, AFTER_SEQ, AT_TIMESTAMP); the consumer goes on
 * from there, redelivering or skipping records. Across reshards a reset parent is delivered
 * again before its children go on (docs/handlers.md, "Reset").
 */
int sluice_consumer_reset(struct sluice_client *c, const char *name, int64_t shard_id,
			  const struct sluice_position *to);

/* ---- remote consumers ----
 *
 * sluice_consumer_attach opens a connection of its own and attaches it to a consumer whose
 * handler is "remote"; the server then pushes batches on it. sluice_remote_consumer_run
 * receives them, calls the handler once per batch (on the calling thread, one batch at a time,
 * in shard order per shard) and acknowledges each with the handler's result, so the server can
 * checkpoint, retry, bisect or give up exactly as for other handler kinds.
 *
 * The batch and everything it points to are valid only during the handler call. The handler
 * reports through *result, which arrives zeroed (status SLUICE_HANDLER_OK, empty message); a
 * negative return value means SLUICE_HANDLER_ERROR. A FAILED_FROM result whose failed_from is
 * not inside the batch is sent as SLUICE_HANDLER_ERROR.
 *
 * Threads: one thread runs the consumer; sluice_remote_consumer_stop may be called from any
 * thread, including from inside the handler.
 */
struct sluice_remote_consumer;

typedef int (*sluice_remote_handler_fn)(void *ctx, const struct sluice_handler_batch *batch,
					struct sluice_handler_result *result);

/*
 * Connect to host_port (opts may be NULL: timeout and auth token as for sluice_client_connect)
 * and attach to consumer. Errors: those of sluice_client_connect, and the server's answer to
 * the attach (unknown consumer, a handler that is not remote, ...).
 */
int sluice_consumer_attach(const char *host_port, const char *consumer,
			   const struct sluice_client_options *opts,
			   struct sluice_remote_consumer **ret);

/*
 * Handle batches until timeout_ms passes (returns 0; -1: no timeout), sluice_remote_consumer_stop
 * is called (returns 0; each stop ends one run: the current one, or the next if none is
 * running), or the connection breaks (SLUICE_ERR_DISCONNECTED; a batch whose acknowledgement was
 * lost is redelivered by the server, so handlers see records at least once). After an error, the
 * next call reconnects and attaches again. A server error that ends the attachment (say, the
 * consumer was deleted) is returned as is.
 */
int sluice_remote_consumer_run(struct sluice_remote_consumer *rc, sluice_remote_handler_fn handler,
			       void *ctx, int timeout_ms);
/* Make a running (or the next) sluice_remote_consumer_run return. Thread-safe, async-safe. */
void sluice_remote_consumer_stop(struct sluice_remote_consumer *rc);
/* The message of the last error of rc (like sluice_client_last_error_message). Never NULL. */
const char *sluice_remote_consumer_last_error_message(const struct sluice_remote_consumer *rc);
/* Counters since attach: batches handled, acknowledgements the server refused (the batch had
 * been timed out and will be redelivered). */
struct sluice_remote_consumer_stats {
	uint64_t batches;
	uint64_t records;
	uint64_t acks_refused;
};
void sluice_remote_consumer_stats(const struct sluice_remote_consumer *rc,
				  struct sluice_remote_consumer_stats *ret);
/* Close the connection and free. Accepts NULL. Not while run is running on another thread. */
void sluice_remote_consumer_destroy(struct sluice_remote_consumer *rc);

/* ======================================================================================
 * Firehoses
 * ======================================================================================
 *
 * A firehose is a built-in consumer (Amazon Data Firehose): the server buffers the records of
 * each shard and writes them, by size or by time, as compressed objects to an object store
 * (docs/firehose.md). Firehoses share the consumers' name space, checkpoints and retries; they
 * are created and described with the calls below. dest is "file:///DIR" (absolute),
 * "s3://BUCKET[/PREFIX]", or NULL / "" for the server's default (DATA/objects).
 */

enum sluice_firehose_compression {
	SLUICE_FIREHOSE_COMPRESSION_NONE = 0,
	SLUICE_FIREHOSE_COMPRESSION_ZSTD = 1,
};
enum sluice_firehose_format {
	SLUICE_FIREHOSE_FORMAT_JSONL = 0, /* one JSON object per record (restorable) */
	SLUICE_FIREHOSE_FORMAT_RAW = 1,	  /* each record's data, then "\n" */
};

/* Buffering hints (Amazon Firehose's ranges): an object is written when either is reached. */
#define SLUICE_FIREHOSE_BUFFER_BYTES_MIN (1ull << 20)
#define SLUICE_FIREHOSE_BUFFER_BYTES_MAX (128ull << 20)
#define SLUICE_FIREHOSE_BUFFER_BYTES_DEFAULT (5ull << 20)
#define SLUICE_FIREHOSE_BUFFER_INTERVAL_MS_MAX 900000u
#define SLUICE_FIREHOSE_BUFFER_INTERVAL_MS_DEFAULT 60000u
#define SLUICE_FIREHOSE_ZSTD_LEVEL_MIN 1
#define SLUICE_FIREHOSE_ZSTD_LEVEL_MAX 19
#define SLUICE_FIREHOSE_ZSTD_LEVEL_DEFAULT 3
/* Longest strings (bytes): the destination, and the s3 options. */
#define SLUICE_FIREHOSE_DEST_LEN_MAX 4095
#define SLUICE_FIREHOSE_ENDPOINT_LEN_MAX 511
#define SLUICE_FIREHOSE_REGION_LEN_MAX 63
#define SLUICE_FIREHOSE_CREDENTIALS_FILE_LEN_MAX 511
#define SLUICE_FIREHOSE_PROFILE_LEN_MAX 63

/* Initialize with sluice_firehose_options_init, then change fields. Strings: NULL or "" for
 * the default; they are only read during the call. */
struct sluice_firehose_options {
	const char *endpoint;	       /* s3: an S3-compatible server URL; default AWS */
	const char *region;	       /* s3: signing region; default the server's (us-east-1) */
	const char *credentials_file;  /* s3: AWS shared-credentials file, read by the server;
					  default the server's AWS_* environment */
	const char *profile;	       /* profile in credentials_file; default "default" */
	uint64_t buffer_bytes;	       /* BUFFER_BYTES_MIN..MAX; default 5 MiB */
	uint32_t buffer_interval_ms;   /* 0..BUFFER_INTERVAL_MS_MAX; default 60 s */
	int compression;	       /* enum sluice_firehose_compression; default zstd */
	int32_t zstd_level;	       /* 1..19; default 3 */
	int format;		       /* enum sluice_firehose_format; default jsonl */
	int64_t max_retry_duration_ms; /* give up on an upload after this; -1 (default): until the
					  records expire */
	const char *on_failure;	       /* stream that receives given-up records; NULL: none */
	struct sluice_position start;  /* TRIM_HORIZON (default), LATEST or AT_TIMESTAMP */
};

void sluice_firehose_options_init(struct sluice_firehose_options *opts);

/*
 * Create firehose name, archiving stream to dest. opts may be NULL for the defaults. Refused
 * locally (SLUICE_ERR_INVALID_NAME / _INVALID_ARGUMENT, with a message naming the field): bad
 * names, a dest that is not file:///..., s3://BUCKET... or empty, strings over their limits, an
 * unknown compression, format or start type. The server validates the ranges; its message names
 * the field. Other errors of note: SLUICE_ERR_STREAM_NOT_FOUND, an "exists" error when a
 * consumer or firehose of that name exists. The calls below answer SLUICE_ERR_STREAM_NOT_FOUND
 * ("firehose NAME not found") for a name that is not a firehose, even if it is a consumer.
 */
int sluice_firehose_create(struct sluice_client *c, const char *name, const char *stream,
			   const char *dest, const struct sluice_firehose_options *opts);
/* Stop and remove a firehose and its checkpoints. Records still in its buffers are not
 * archived (they stay in the stream until they expire); flush first to keep them. */
int sluice_firehose_delete(struct sluice_client *c, const char *name);
/* *ret_names: ret_count names; free with sluice_strings_free. */
int sluice_firehose_list(struct sluice_client *c, char ***ret_names, size_t *ret_count);
/* Ask the server to write out every shard's buffer now, whatever the buffering hints say.
 * The objects are written by the firehose as usual (with its retries): describe shows them. */
int sluice_firehose_flush(struct sluice_client *c, const char *name);

/* What a firehose is doing on one shard. */
enum sluice_firehose_state {
	SLUICE_FIREHOSE_IDLE = 0,	     /* buffering, or caught up */
	SLUICE_FIREHOSE_FLUSHING = 1,	     /* an object is being written */
	SLUICE_FIREHOSE_RETRYING = 2,	     /* a write failed and waits for its retry */
	SLUICE_FIREHOSE_FINISHED = 3,	     /* a closed shard, archived to its end */
	SLUICE_FIREHOSE_WAITING_PARENTS = 4, /* a child of a reshard: its parents go first */
};
/* "IDLE", "FLUSHING", "RETRYING", "FINISHED", "WAITING_PARENTS" or "UNKNOWN". Static. */
const char *sluice_firehose_state_name(int state);

struct sluice_firehose_shard_status {
	uint32_t shard_id;
	uint64_t checkpoint_seq;     /* last sequence number archived (or given up on); 0: none */
	uint64_t buffered_records;   /* records waiting in the buffer */
	uint64_t buffered_bytes;     /* their size, uncompressed */
	int64_t last_flush_ms;	     /* Unix ms of the last object written; 0: never */
	char *last_object_key;	     /* "" when none */
	uint64_t objects_written;    /* objects stored */
	uint64_t records_archived;   /* records in them */
	uint64_t bytes_written;	     /* bytes stored (compressed) */
	uint64_t upload_failures;    /* failed attempts to store an object */
	uint64_t sent_to_on_failure; /* records given up on and written to on_failure */
	uint64_t expired;	     /* records given up on because they expired */
	int state;	  /* enum sluice_firehose_state; other values from newer servers */
	char *last_error; /* "" when none */
	uint64_t lag_ms;  /* age of the oldest record not yet archived; 0: none waiting */
	bool background;  /* its thread yields the CPU to producers (sluiced
			     --firehose-cpu-priority); false while catching up */
};

struct sluice_firehose_info {
	char *name;
	char *stream;
	char *dest;
	/* The settings; its strings are NULL (not set) or point into this info. */
	struct sluice_firehose_options options;
	int64_t created_ms;
	size_t shard_count;
	struct sluice_firehose_shard_status *shards;
};

/* *ret: free with sluice_firehose_info_free (accepts NULL). */
int sluice_firehose_describe(struct sluice_client *c, const char *name,
			     struct sluice_firehose_info **ret);
void sluice_firehose_info_free(struct sluice_firehose_info *info);

#ifdef __cplusplus
}
#endif
#endif
