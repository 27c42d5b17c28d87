/*
 * sluiced configuration: defaults, command-line flags and an optional config file whose keys are
 * the flags' names without the dashes (`fsync = interval=200ms`, one per line, # comments).
 * Flags override the file.
 */
#ifndef SL_SERVER_CONFIG_H
#define SL_SERVER_CONFIG_H

#include "log/shard_log.h"
#include "server/thread_priority.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Connections beyond this are refused: each costs buffers and a slot in the loops. */
#define SL_MAX_CONNECTIONS_DEFAULT 10000
/* Bytes one connection may owe (requests unanswered + responses unsent) before the server
 * stops reading from it. 64 MiB keeps a pipelining producer busy without unbounded memory. */
#define SL_MAX_INFLIGHT_BYTES_DEFAULT (64ull << 20)
#define SL_RETENTION_DEFAULT_MS (24ll * 3600 * 1000)
/* A firehose more than this behind (beyond its buffering interval) stops yielding the CPU until
 * it is back under half of it: archiving may lag while producers saturate the machine, but not
 * forever (docs/firehose.md, "CPU priority"). */
#define SL_FIREHOSE_BACKGROUND_LAG_MS_DEFAULT (60ll * 1000)
/* A config file is a few dozen short lines; these bound what sluiced reads and parses. */
#define SL_SERVER_CONFIG_LINE_BYTES_MAX 8191u
#define SL_SERVER_CONFIG_FILE_BYTES_MAX (1u << 20)

struct sl_server_config {
	char data_dir[4096];
	char listen[256];
	char http_listen[256];
	unsigned http_max_connections; /* 0 = KIN_CONNECTIONS_DEFAULT (src/kinesis/gateway.h) */
	char http_access_keys[4096];   /* SigV4 keys file of the Kinesis API; "" none */
	bool kinesis_shard_limits;     /* Kinesis' per-shard throughput limits on the API */
	unsigned threads;	       /* 0 = number of cores */
	enum sl_fsync_mode fsync_mode;
	int64_t fsync_interval_ms;
	uint32_t max_record_bytes;
	unsigned max_connections;
	uint64_t max_inflight_bytes;
	uint64_t segment_bytes;
	char auth_token_file[4096];
	int log_level; /* enum sl_msg_level */
	/* Firehose runner threads' CPU priority, and the lag up to which it applies (0: always). */
	struct sl_cpu_priority firehose_priority;
	int64_t firehose_background_lag_ms;
};

void sl_server_config_defaults(struct sl_server_config *cfg);
/*
 * Parse argv (and --config FILE first, when given). Returns 0, 1 when --help/--version was
 * printed (exit 0), or -EINVAL after printing one line to stderr naming the bad flag.
 */
int sl_server_config_parse(struct sl_server_config *cfg, int argc, char **argv);
/*
 * Apply a config file's len bytes (text need not be NUL-terminated): lines "KEY = VALUE", blank
 * lines and "#" comments; keys are the flags' names without "--". Stops at the first bad line.
 * Never prints: returns 0, or -EINVAL with "line N: what is wrong" in err_msg (always
 * terminated when err_msg_len > 0). cfg may be partly updated on failure.
 */
int sl_server_config_parse_text(struct sl_server_config *cfg, const char *text, size_t len,
				char *err_msg, size_t err_msg_len);
/* Parse "group", "never", "interval=MS" (MS in the duration syntax: 200ms, 1s). */
int sl_parse_fsync(const char *s, enum sl_fsync_mode *ret_mode, int64_t *ret_interval_ms);
/* Split "HOST:PORT" into an IPv4 sockaddr. */
struct sockaddr_in;
int sl_parse_listen(const char *s, struct sockaddr_in *ret);

#endif
