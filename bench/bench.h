/*
 * sluice-bench internals shared by the subcommands: parsed flags, output helpers, the stop flag
 * set by SIGINT/SIGTERM, the spawned sluiced, and the producer driver that `produce` and `read`
 * both use.
 */
#ifndef BENCH_BENCH_H
#define BENCH_BENCH_H

#include "hist.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Limits on what the command line may ask for: each list and count is bounded so a typo cannot
 * turn a benchmark into an hour-long run or an allocation failure. */
#define BENCH_LIST_MAX 16
#define BENCH_RECORDS_MAX 1000000000ull
#define BENCH_SIZE_MAX (1u << 20) /* record data bytes: the server's default maximum */
#define BENCH_BATCH_MAX 65536u	  /* records per append: the log's own limit */
#define BENCH_SHARDS_MAX 256u
#define BENCH_CONNECTIONS_MAX 64u
#define BENCH_SECONDS_MAX 3600.0

enum bench_fsync { BENCH_FSYNC_GROUP, BENCH_FSYNC_INTERVAL, BENCH_FSYNC_NEVER };

/* consume: the handler kinds. */
enum bench_handler { BENCH_HANDLER_PLUGIN, BENCH_HANDLER_REMOTE, BENCH_HANDLER_EXEC };

struct bench_args {
	const char *cmd;
	const char *dir;    /* parent of the scratch folder; NULL: the current folder */
	const char *server; /* --server HOST:PORT; NULL: spawn */
	bool json;
	bool keep;	  /* keep the scratch folder (debugging) */
	uint64_t records; /* per combination */
	double seconds;	  /* per combination, upper bound */
	uint32_t sizes[BENCH_LIST_MAX];
	size_t nsizes;
	uint32_t batches[BENCH_LIST_MAX];
	size_t nbatches;
	enum bench_fsync fsyncs[BENCH_LIST_MAX];
	size_t nfsyncs;
	uint32_t shards[BENCH_LIST_MAX];
	size_t nshards;
	uint32_t connections[BENCH_LIST_MAX];
	size_t nconnections;
	uint32_t request_records; /* producer max_records_per_request; 0: library default */
	uint32_t linger_ms;
	bool linger_set;
	uint32_t key_bytes; /* partition key length */
	bool records_set;   /* --records given (consume has per-handler defaults) */
	/* consume */
	enum bench_handler handlers[BENCH_LIST_MAX];
	size_t nhandlers;
	uint32_t batch_size; /* consumer --batch-size; 0: per handler (10000, exec 1000) */
	uint64_t burst;	     /* records of the burst after catching up */
	bool burst_set;	     /* else records / 10 */
};

const char *bench_fsync_name(enum bench_fsync m);
const char *bench_handler_name(enum bench_handler h);

/* Set by SIGINT/SIGTERM: every loop checks it and unwinds through its normal cleanup. */
extern volatile sig_atomic_t bench_stop;
/* The sluiced we started (0: none); the signal handler sends it SIGTERM at once. */
extern volatile pid_t bench_child_pid;

/* Human-readable output: stdout, or stderr when --json owns stdout. */
FILE *bench_out(const struct bench_args *a);

/* One JSON object per line on stdout. */
struct bench_json {
	char buf[2048];
	size_t len;
	bool first;
};
void bench_json_begin(struct bench_json *j, const char *bench);
void bench_json_str(struct bench_json *j, const char *key, const char *v);
void bench_json_u64(struct bench_json *j, const char *key, uint64_t v);
void bench_json_num(struct bench_json *j, const char *key, double v);
void bench_json_end(struct bench_json *j);

/* Fatal error of a benchmark: one line on stderr (only the first error of the run is printed).
 * Returns -1 for `return bench_fail(...)`. */
__attribute__((format(printf, 1, 2))) int bench_fail(const char *fmt, ...);

/* "1.23 M" style for records/s; MB is 10^6 bytes. */
void bench_fmt_rate(double v, char *out, size_t out_len);

/* ---- the spawned server ---- */

struct bench_server {
	pid_t pid;
	char addr[80]; /* "127.0.0.1:PORT" */
	char data_dir[4096];
	char log_path[4096]; /* sluiced's stderr */
	char http_addr[80]; /* "127.0.0.1:PORT" of /metrics when started with --http-listen, else ""
			     */
};

/* out = the folder of this executable + "/" + rel (e.g. "../tools/cli/sluice"): 0 when that
 * file exists and is readable, else -errno (out is filled either way, for messages). */
int bench_exe_sibling(const char *rel, char *out, size_t out_len);

/* Start sluiced with its data in scratch/sluiced-MODE and wait for its `listening` line. */
int bench_server_start(const char *scratch, enum bench_fsync mode, struct bench_server *s);
/* The same with more flags for sluiced (NULL-terminated; NULL: none). */
int bench_server_start_args(const char *scratch, enum bench_fsync mode, const char *const *extra,
			    struct bench_server *s);
/* SIGTERM, wait (then SIGKILL after a grace period). Accepts a never-started server. Returns
 * 0 when sluiced exited with status 0. */
int bench_server_stop(struct bench_server *s);
/*
 * One latency histogram of the server's /metrics (sluice_fsync_duration_seconds, ...): the
 * samples per bucket (not cumulative), SL_LATENCY_BOUNDS + 1 of them, the last +Inf. 0, or -1
 * with a message on stderr (no http_addr, the scrape failed, the histogram is not there).
 */
int bench_server_histogram(const struct bench_server *s, const char *name, uint64_t *counts);

/* ---- producer driver (bench_produce.c) ---- */

struct bench_produce_result {
	uint64_t sent;
	uint64_t acked;
	uint64_t failed;
	int first_error;
	double seconds;			      /* first send to last acknowledgement */
	uint64_t data_bytes;		      /* acknowledged record data bytes */
	uint64_t per_shard[BENCH_SHARDS_MAX]; /* acknowledged records by shard */
	struct bench_hist lat;		      /* send -> callback, ns */
};

/*
 * Send up to `records` records of `size` bytes to `stream` on addr from `connections` threads
 * (one sluice_producer each, one connection each), stopping early after `seconds`, then wait
 * for every acknowledgement. *ret is filled even when records failed (check ret->failed).
 */
int bench_produce_drive(const struct bench_args *a, const char *addr, const char *stream,
			uint64_t records, uint32_t size, uint32_t connections,
			struct bench_produce_result *ret);

/* Create a stream and wait until it is active. */
int bench_stream_create(const char *addr, const char *stream, uint32_t shards);
int bench_stream_delete(const char *addr, const char *stream);

/* ---- subcommands ---- */
int bench_log_main(struct bench_args *a);
int bench_produce_main(struct bench_args *a);
int bench_read_main(struct bench_args *a);
int bench_consume_main(struct bench_args *a);
int bench_reshard_main(struct bench_args *a);

#endif
