/*
 * sluiced internals shared by the request handlers: the server, its workers (one io_uring loop
 * and thread each), and the helpers handlers use to answer.
 */
#ifndef SL_SERVER_SERVER_H
#define SL_SERVER_SERVER_H

#include "common/buf_pool.h"
#include "common/latency_hist.h"
#include "log/shard_log.h"
#include "net/conn.h"
#include "net/loop.h"
#include "server/config.h"
#include "server/registry.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct sl_server;

struct sl_worker_metrics {
	_Atomic uint64_t requests;
	_Atomic uint64_t request_errors;
	_Atomic uint64_t records_produced;
	_Atomic uint64_t bytes_produced;
	_Atomic uint64_t records_rejected;
	_Atomic uint64_t records_read;
	_Atomic uint64_t reads_waited; /* READs parked for records (long poll) */
	_Atomic uint64_t syncs;
	_Atomic uint64_t frames_rejected;
	_Atomic uint64_t connections_accepted;
	_Atomic uint64_t connections_refused;
	_Atomic uint64_t auth_failures;
	_Atomic uint64_t reshards;	  /* published (origin worker) */
	_Atomic uint64_t reshards_failed; /* abandoned after validation (origin worker) */
	_Atomic uint64_t parts_parked;	  /* produce parts that waited on a sealed shard (owner) */
	_Atomic uint64_t parts_rerouted;  /* produce parts routed again after a reshard (origin) */
	_Atomic uint64_t parts_appended_here; /* for another loop's shard, by the receiving loop */
	/* Group commit: an fdatasync from its start to its completion (owner). */
	struct sl_latency_hist fsync_duration;
	/* A native PRODUCE from its arrival to its answer (origin). */
	struct sl_latency_hist produce_duration;
};

struct read_req; /* read.c */

struct sl_worker {
	struct sl_server *srv;
	unsigned id;
	struct sl_loop *loop;
	pthread_t thread;
	int listen_fd;
	struct sl_op accept_op;
	bool accepting;
	struct sl_stream_cache cache;
	struct sl_shard *dirty; /* owned shards with batches waiting for durability */
	struct sl_read_batch read_batch;
	void *seals_waiting; /* reshard.c: owned shards sealed, waiting for durability */
	/* READs waiting for records on shards this worker owns (read.c), newest first */
	struct read_req *reads_parked;
	_Atomic unsigned reads_parked_n; /* read by /metrics */
	uint32_t *scratch_counts;	 /* per-shard counters for routing a produce request */
	size_t scratch_cap;
	int64_t last_housekeeping_ms;
	_Atomic uint64_t requests_pending; /* requests received here and not yet answered */
	struct sl_worker_metrics m;
};

struct sl_consumers;

/*
 * READ answer buffers kept for reuse (sl_server.read_answers): enough for a few readers with a
 * read-ahead each; a default 8 MiB answer sits in a 16 MiB buffer. Idle, the pool holds at most
 * this much memory; it never raises the peak (it keeps only buffers that were in use together).
 */
#define READ_ANSWERS_KEPT_MAX 16u
#define READ_ANSWER_BYTES_KEPT_MAX ((size_t)128 << 20)

struct sl_server {
	struct sl_server_config cfg;
	struct sl_registry *registry;
	struct sl_consumers *consumers;
	struct sl_worker *workers;
	unsigned nworkers;
	atomic_bool draining;
	/* Appends made on a loop that is not the shard's owner, not yet told to it (produce.c):
	 * a draining server stops only once none is left. */
	_Atomic uint32_t appends_untold;
	char auth_token[512];
	size_t auth_token_len;
	int64_t started_ms;
	struct sockaddr_in listen_addr;	 /* after bind: the real port */
	int listen_fd;			 /* shared by every worker's multishot accept */
	struct sl_buf_pool read_answers; /* READ answer buffers, reused (read.c) */
};

/* Per-connection state. */
struct sl_remote;
struct sl_session {
	struct sl_worker *w;
	bool authenticated;
	struct sl_remote *remote; /* set by CONSUMER_ATTACH */
};

struct sl_worker *sl_worker_of_loop(struct sl_loop *loop);
/* Mark an owned shard for the next group-commit pass. */
void sl_worker_mark_dirty(struct sl_worker *w, struct sl_shard *sh);

/* Answering: encode into the conn's output and flush. */
void sl_reply_error(struct sl_conn *c, const struct sl_frame_header *h, int status, const char *fmt,
		    ...) __attribute__((format(printf, 4, 5)));

/* An empty success answer to the request h. */
void sl_reply_empty(struct sl_conn *c, const struct sl_frame_header *h);
/* s as a NUL-terminated string in dst (cap bytes), cut to cap - 1 bytes. */
void sl_str_copy(char *dst, size_t cap, const struct sl_str *s);

/* Handlers (one file each): produce.c, read.c, admin.c. */
void sl_handle_produce(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		       const uint8_t *body, size_t len);
void sl_handle_read(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		    const uint8_t *body, size_t len);
/*
 * From the worker's tick: answer the parked READs whose shard got new acknowledged records,
 * whose wait expired, or all of them while draining; arms the loop's wake-up for the next expiry.
 */
void sl_reads_parked_tick(struct sl_worker *w);
void sl_handle_admin(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		     const uint8_t *body, size_t len);
void sl_handle_consumer_admin(struct sl_worker *w, struct sl_conn *c,
			      const struct sl_frame_header *h, const uint8_t *body, size_t len);
/* restore.c: STREAM_CREATE_FROM_META, STREAM_META_GET, RESTORE_APPEND. */
void sl_handle_restore(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		       const uint8_t *body, size_t len);
void sl_handle_firehose_admin(struct sl_worker *w, struct sl_conn *c,
			      const struct sl_frame_header *h, const uint8_t *body, size_t len);
/* STREAM_SET_RETENTION and the tag requests (admin_stream_settings.c). */
void sl_handle_stream_settings(struct sl_worker *w, struct sl_conn *c,
			       const struct sl_frame_header *h, const uint8_t *body, size_t len);

/*
 * Append records to a stream from inside the server (consumers' on-failure stream), with the
 * same routing, group commit and durability as a PRODUCE. Call on a worker's loop thread. The
 * records are copied. done(ctx, status, failed) runs on the same loop once every record is
 * decided: status 0 when all are durable, else the first error and how many failed.
 */
typedef void (*sl_produce_done_fn)(void *ctx, int status, uint32_t failed);
int sl_produce_internal(struct sl_worker *w, struct sl_stream *s, const struct sl_record_in *recs,
			uint32_t n, sl_produce_done_fn done, void *ctx);
struct sl_stream *sl_worker_find_stream(struct sl_worker *w, const char *name, size_t len);
/*
 * Owner loop of sh, once a reshard that sealed sh is decided: published (the parked parts go
 * back to their origin loops to be routed to the children) or abandoned (sh was unsealed; the
 * parked parts are appended to it now).
 */
void sl_produce_unpark(struct sl_worker *w, struct sl_shard *sh, bool published);
/* Each tick: answer the seals of this worker's shards whose records became durable. */
void sl_reshard_tick(struct sl_worker *w);
/* Reshard requests (reshard.c): STREAM_SPLIT, STREAM_MERGE, STREAM_SCALE. */
void sl_handle_reshard(struct sl_worker *w, struct sl_conn *c, const struct sl_frame_header *h,
		       const uint8_t *body, size_t len);

/* Request accounting for draining at shutdown. */
static inline void sl_worker_request_begin(struct sl_worker *w)
{
	atomic_store_explicit(&w->requests_pending,
			      atomic_load_explicit(&w->requests_pending, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}
static inline void sl_worker_request_end(struct sl_worker *w)
{
	atomic_store_explicit(&w->requests_pending,
			      atomic_load_explicit(&w->requests_pending, memory_order_relaxed) - 1,
			      memory_order_relaxed);
}
static inline void sl_counter_add(_Atomic uint64_t *c, uint64_t v)
{
	/* Single writer (the worker): a relaxed load+store is enough and avoids a locked add. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

/*
 * GET /healthz and /metrics for the HTTP gateway (http_metrics.c; a kin_get_fn, ctx is the
 * server): the status and body, or 0 for any other path.
 */
int sl_http_get(void *ctx, const char *path, struct sl_buf *body, const char **ret_content_type);

#endif
