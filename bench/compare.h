/*
 * `sluice-bench compare`: the same workloads against sluice and against peers (Redis Streams,
 * NATS JetStream), in one process tree and one run. compare.c drives the run (flags, engine
 * processes, the order of the measurements, signals), compare_report.c writes the table, the
 * JSON and the plots, and each engine is a struct cmp_engine: compare_sluice.c, peer_redis.c
 * (built when hiredis is found) and peer_nats.c (built when libnats is found).
 */
#ifndef BENCH_COMPARE_H
#define BENCH_COMPARE_H

#include "bench.h"

#include "common/latency_hist.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CMP_ENGINES_MAX 3
/* Slices of a paced measurement, the engines taking turns (compare.c, measure_paced). */
#define CMP_LATENCY_SLICES_DEFAULT 5u
/* Partition keys: as `produce` does, 16 bytes, distinct per record. */
/* Buckets of sluiced's latency histograms on /metrics: the finite ones and +Inf. */
#define CMP_FSYNC_BUCKETS (SL_LATENCY_BOUNDS + 1)
#define CMP_KEY_BYTES 16
/* Each record's data starts with the CLOCK_MONOTONIC ns it was due to be sent (latency). */
#define CMP_STAMP_BYTES 8
#define CMP_SIZE_MIN CMP_STAMP_BYTES

enum cmp_workload {
	CMP_PRODUCE,	     /* flat out: records/s, MB/s */
	CMP_PRODUCE_LATENCY, /* paced at a fixed offered rate: send -> ack per record */
	CMP_CONSUME,	     /* read back what CMP_PRODUCE stored */
	CMP_E2E,	     /* paced producers + one reader: due time -> the reader sees it */
	/* sluice alone (engines with `sluice_only`; compare_sluice_jobs.c): */
	CMP_CONSUME_HANDLER, /* a plugin consumer delivers what CMP_PRODUCE stored */
	CMP_E2E_HANDLER,     /* paced producers + a plugin consumer: due time -> the handler */
	CMP_FIREHOSE,	     /* a firehose archives what CMP_PRODUCE stored (file://, zstd 3) */
	CMP_REPLAY,	     /* `sluice replay` copies what CMP_PRODUCE stored to a new stream */
	CMP_WORKLOADS
};
/* Whether w runs on the stream CMP_PRODUCE filled (no stream of its own). */
bool cmp_workload_reads_stored(enum cmp_workload w);
/* The peers' workload a sluice-only workload is compared with (CMP_WORKLOADS: none). */
enum cmp_workload cmp_workload_peer(enum cmp_workload w);
const char *cmp_workload_name(enum cmp_workload w);

/* The settings every engine gets for one measurement. */
struct cmp_params {
	uint32_t size;	      /* record data bytes */
	uint32_t shards;      /* sluice shards; Redis keys; NATS subjects */
	uint32_t connections; /* producer connections (consume: reader threads, at most shards) */
	bool fsync;	      /* durability class: fsync before ack, or async */
	uint64_t records;     /* records to send (or at most to read) */
	double seconds;	      /* time bound of the measurement */
	double rate;	      /* offered records/s over all connections; 0: as fast as possible */
	uint32_t batch;	      /* consume: records per read / fetch */
	uint32_t window; /* peers: records in flight per connection (pipeline / pending acks) */
	char tag[64];	 /* names this measurement's stream / keys; [a-z0-9-] only */
};

struct cmp_result {
	uint64_t records; /* acknowledged (produce) or received (consume, e2e) */
	uint64_t sent;	  /* produce: records sent */
	double seconds;	  /* first send to last ack / first read to last record */
	bool time_bound;  /* stopped by the time bound before all records were done */
	uint64_t per_shard[BENCH_SHARDS_MAX]; /* produce: acknowledged records per shard */
	struct bench_hist lat;		      /* ns: produce send -> ack, e2e due -> seen */
};

struct cmp_engine {
	const char *name; /* "sluice", "redis", "nats" */
	void *priv;
	char version[128];   /* filled by start */
	char settings[1024]; /* the exact server and client settings, filled by start */
	char note[512];	     /* a caveat to print with every figure of this engine ("" if none) */
	char brief[160];     /* the durability settings in a few words, for the plots */
	/* Start the server for one durability class, its data in a new folder of scratch. */
	int (*start)(struct cmp_engine *e, const char *scratch, bool fsync);
	/* Stop the server (by PID) and forget it; safe when not started. 0: exited cleanly. */
	int (*stop)(struct cmp_engine *e);
	/* Create the stream / keys named p->tag (empty). */
	int (*create)(struct cmp_engine *e, const struct cmp_params *p);
	/* Remove the stream / keys named tag. */
	int (*drop)(struct cmp_engine *e, const struct cmp_params *p);
	/* Produce p->records records (paced when p->rate > 0) into p->tag. */
	int (*produce)(struct cmp_engine *e, const struct cmp_params *p, struct cmp_result *r);
	/* Read back everything `produced` put into p->tag. */
	int (*consume)(struct cmp_engine *e, const struct cmp_params *p,
		       const struct cmp_result *produced, struct cmp_result *r);
	/* Start a reader at the end of p->tag, then produce p->records at p->rate into it. */
	int (*e2e)(struct cmp_engine *e, const struct cmp_params *p, struct cmp_result *r);
	/* The sluice-only workloads (CMP_CONSUME_HANDLER and after); NULL for the peers. For the
	 * ones that read what was stored, `produced` is CMP_PRODUCE's result. */
	int (*sluice_only)(struct cmp_engine *e, enum cmp_workload w, const struct cmp_params *p,
			   const struct cmp_result *produced, struct cmp_result *r);
	/* sluice: the server's group commit fdatasyncs so far (its /metrics histogram
	 * sluice_fsync_duration_seconds, CMP_FSYNC_BUCKETS samples per bucket); NULL for the
	 * peers, which do not say. The paced rows report the difference over their slices. */
	int (*fsync_histogram)(struct cmp_engine *e, uint64_t *counts);
};

/* The engines; a peer whose client library was not found at build time is not there. */
void cmp_sluice_init(struct cmp_engine *e);
/* compare_sluice.c for compare_sluice_jobs.c: the sluiced's address and scratch folder, and
 * p->connections producers run to the end (r: records, sent, seconds, per_shard, lat). */
const char *cmp_sluice_addr(const struct cmp_engine *e);
const char *cmp_sluice_scratch(const struct cmp_engine *e);
int cmp_sluice_produce(struct cmp_engine *e, const struct cmp_params *p, struct cmp_result *r);
int cmp_sluice_only(struct cmp_engine *e, enum cmp_workload w, const struct cmp_params *p,
		    const struct cmp_result *produced, struct cmp_result *r);
#ifdef SLUICE_BENCH_HAVE_REDIS
void cmp_redis_init(struct cmp_engine *e);
#endif
#ifdef SLUICE_BENCH_HAVE_NATS
void cmp_nats_init(struct cmp_engine *e);
#endif

/* ---- helpers shared by the engines (compare.c) ---- */

/* An error of the current measurement: one line on stderr, prefixed with the engine's name.
 * Returns -1. */
__attribute__((format(printf, 2, 3))) int cmp_fail(const struct cmp_engine *e, const char *fmt,
						   ...);
/* Progress on stderr. */
__attribute__((format(printf, 1, 2))) void cmp_progress(const char *fmt, ...);

int64_t cmp_now_ns(void);
/* Sleep until the CLOCK_MONOTONIC time `ns` (returns at once when past). */
void cmp_sleep_until(int64_t ns);

/* The record's partition key for record i of connection conn: 16 bytes, distinct. */
void cmp_key(char key[CMP_KEY_BYTES], uint32_t conn, uint64_t i);
/* Which shard (Redis key, NATS subject) a partition key goes to (FNV-1a, mod shards). */
uint32_t cmp_shard_of(const char *key, size_t len, uint32_t shards);
/* The record data of connection conn: a buffer of `size` + 256 bytes; record i uses
 * buf + i % 256, with cmp_stamp written into its first 8 bytes. */
uint8_t *cmp_data_new(uint32_t size, uint32_t conn);
void cmp_stamp(uint8_t *data, int64_t ns);
int64_t cmp_stamp_read(const uint8_t *data);

/* Pacing of one of `connections` paced senders: the time record i of this sender is due
 * (t0 + i / (rate / connections)); t0 when not paced. */
int64_t cmp_due_ns(const struct cmp_params *p, int64_t t0, uint64_t i);

/* Records of connection conn out of p->records. */
uint64_t cmp_share(const struct cmp_params *p, uint32_t conn);

/* Child processes (the servers): started with their stderr/stdout in log_path, killed on
 * exit, on SIGINT/SIGTERM and when this process dies. Returns the pid or -1. */
pid_t cmp_spawn(char *const argv[], const char *log_path);
/* Register a child started elsewhere (sluiced through bench_server_start). */
void cmp_child_add(pid_t pid);
void cmp_child_forget(pid_t pid);
/* SIGTERM, wait up to timeout_ms, then SIGKILL. Returns the exit status (128 + signal when
 * killed by one), or -1 when SIGKILL was needed. */
int cmp_child_stop(pid_t pid, int timeout_ms);
/* Whether the child still runs (not reaped). */
bool cmp_child_alive(pid_t pid);
/* A free TCP port on 127.0.0.1 (bound and released; the engine binds it right after). */
int cmp_free_port(void);
/* Wait until 127.0.0.1:port accepts connections while pid lives. 0 or -1. */
int cmp_wait_port(int port, pid_t pid, int timeout_ms);
/* The first line a command prints (stdout and stderr), without the newline; "" on failure. */
void cmp_command_line(const char *cmd, char *out, size_t out_len);
/* The last non-empty line of a file ("" if none). */
void cmp_last_line(const char *path, char *out, size_t out_len);

/* ---- the report (compare_report.c) ---- */

struct cmp_row {
	const char *engine;
	enum cmp_workload workload;
	uint32_t size, shards, connections;
	bool fsync;
	uint64_t records;
	double seconds;
	double rate; /* offered records/s (latency workloads), 0 otherwise */
	double records_per_sec, mb_per_sec;
	bool has_lat;
	double p50_us, p90_us, p99_us, p999_us, p9999_us, max_us;
	bool time_bound;
	/* sluice's fdatasyncs during the row's slices (fsync_histogram), when it has them. */
	bool has_fsyncs;
	uint64_t fsyncs[CMP_FSYNC_BUCKETS];
};

struct cmp_report {
	char machine[512];  /* cores, kernel, file system of the data folder */
	char versions[512]; /* each engine's --version */
	char settings[4096];
	char brief[1024]; /* what the plots print of the settings */
	char notes[1024];
	char command[1024];
	char date[64];
	struct cmp_row *rows;
	size_t nrows, cap;
};

int cmp_report_add(struct cmp_report *rep, const struct cmp_row *row);
/* The markdown table (and the ratios) to f. */
void cmp_report_markdown(const struct cmp_report *rep, FILE *f);
/* "N fdatasyncs: X% <= 1 ms, Y% > 2.5 ms, Z% > 10 ms, slowest <= B" of a row's fsyncs. */
void cmp_fsyncs_summary(const struct cmp_row *w, char *out, size_t len);
/* DIR/results.md, DIR/results.json, and plots (DIR/NAME.svg, NAME.png) when gnuplot is there. */
int cmp_report_write(const struct cmp_report *rep, const char *dir);

int bench_compare_main(int argc, char **argv);

#endif
