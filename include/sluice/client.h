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
 * Errors: every function that can fail returns int: 0 (or a positive count) on success, a
 * negative errno (-ECONNREFUSED, -ENOMEM, ...) or a SLUICE_ERR_* code (<sluice/errors.h>). Codes
 * the server sends travel unchanged. Out-parameters (ret_*) are untouched on failure. The library
 * never prints, never exits and installs no signal handler (it writes with MSG_NOSIGNAL).
 */
#ifndef SLUICE_CLIENT_H
#define SLUICE_CLIENT_H

#include <sluice/errors.h>
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
/* Whether the last batch reached the tip (false before the first read). */
bool sluice_shard_reader_caught_up(const struct sluice_shard_reader *r);
/* Where the next read starts. */
struct sluice_position sluice_shard_reader_position(const struct sluice_shard_reader *r);
void sluice_shard_reader_destroy(struct sluice_shard_reader *r);

/* ======================================================================================
 * Asynchronous batching producer
 * ======================================================================================
 *
 * sluice_producer_send copies the record into the open request of its stream (encoded for the
 * wire right away) and returns. An I/O thread sends a request when it is full
 * (max_records_per_request / max_bytes_per_request) or linger_ms after its first record, keeps
 * up to max_inflight_requests requests in flight per connection, matches the answers and calls
 * each record's callback exactly once.
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
	int linger_ms;			  /* default 5; negative: send at once (no lingering) */
	uint32_t max_inflight_requests;	  /* per connection; default 8, at most 1024 */
	uint32_t connections;		  /* default 1, at most 64 */
	uint64_t buffer_bytes_max;	  /* records queued or in flight; default 32 MiB */
	int retries;			  /* default 3; negative: no retry */
	int retry_backoff_ms;		  /* first backoff, doubled per attempt; default 100 */
	int timeout_ms;			  /* connect and request timeout; default 30 s */
	bool nonblocking;		  /* send returns SLUICE_ERR_THROTTLED when buffer full */
	const char *auth_token;		  /* copied */
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

#ifdef __cplusplus
}
#endif
#endif
