/*
 * sluice-bench: measures the shard log on its own (`log`), the whole produce path through
 * sluiced (`produce`), the read path (`read`), each against this machine's own sequential
 * write bandwidth, and the consumer engine's delivery to its handlers (`consume`). Every run is
 * bounded in records and in time, and talks only to 127.0.0.1 unless --server says otherwise.
 * docs/benchmarks.md explains the figures.
 */
#include "bench.h"
#include "compare.h"

#include "common/units.h"

#include <sluice/errors.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t bench_stop;

/* bench_firehose.c: its own flags (see sluice-bench firehose --help). */
int bench_firehose_main(int argc, char **argv);
/* bench_replay.c: its own flags (see sluice-bench replay --help). */
int bench_replay_main(int argc, char **argv);
/* bench_kinesis.c: its own flags (see sluice-bench kinesis-api --help). */
int bench_kinesis_main(int argc, char **argv);
volatile pid_t bench_child_pid;

static const char usage[] =
    "usage: sluice-bench COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  log       append to and read a shard log directly (no server)\n"
    "  produce   produce through sluiced with libsluice async producers\n"
    "  read      produce, then read back with libsluice shard readers\n"
    "  consume   produce, then deliver to a consumer (plugin, remote, exec handlers)\n"
    "  reshard   produce while the stream is scaled S -> 2S -> S back to back, against the\n"
    "            same load without resharding (uses the last --shards and --connections\n"
    "            values, the first --sizes and --fsync values)\n"
    "  compare   the same workloads against sluice, Redis Streams and NATS JetStream\n"
    "            (see sluice-bench compare --help)\n"
    "  firehose  sustained input into a firehose (file://, s3:// via s3rver) vs zstd -3 -T1\n"
    "            (see sluice-bench firehose --help)\n"
    "  replay    restore (archive -> log) vs zstd -d and log append, replay (log -> log)\n"
    "            (see sluice-bench replay --help)\n"
    "  kinesis-api  PutRecords through the Kinesis HTTP API (HTTP/1.1, h2c) vs kinesalite\n"
    "            (see sluice-bench kinesis-api --help)\n"
    "\n"
    "common options:\n"
    "  --records N          records per combination (default 1000000; consume: 2000000,\n"
    "                       exec 500000)\n"
    "  --seconds DURATION   time bound per combination (log 5s, produce/read 10s; consume\n"
    "                       60s per phase)\n"
    "  --sizes LIST         record data sizes (default 100,1024)\n"
    "  --dir DIR            where the scratch folder goes (default: the current folder)\n"
    "  --json               JSON lines on stdout (the table goes to stderr)\n"
    "  --keep               keep the scratch folder\n"
    "\n"
    "log options:\n"
    "  --batches LIST       records per append (default 1,16,256)\n"
    "  --fsync LIST         group,interval,never (default all three)\n"
    "\n"
    "produce / read / consume options:\n"
    "  --spawn              start a private sluiced per fsync mode (default)\n"
    "  --server HOST:PORT   use a running sluiced instead (its fsync mode applies)\n"
    "  --shards LIST        shards per stream (default 1,4)\n"
    "  --connections LIST   producers, one connection and one thread each (default 1,8;\n"
    "                       read: 1)\n"
    "  --fsync LIST         group,never (produce default: both; read: never)\n"
    "  --request-records N  records per produce request (default: libsluice's, 500)\n"
    "  --linger-ms N        producer linger (default: libsluice's, 5)\n"
    "  --key-bytes N        partition key length (default 16)\n"
    "\n"
    "consume options (defaults: --sizes 100 --shards 4 --connections 4 --fsync never):\n"
    "  --handlers LIST      plugin,remote,exec (default all three)\n"
    "  --batch-size N       consumer batch size (default 10000; exec 1000)\n"
    "  --burst N            records produced after catching up, to time lag back to 0\n"
    "                       (default records / 10; 0: no burst)\n"
    "\n"
    "  --help\n";

const char *bench_fsync_name(enum bench_fsync m)
{
	switch (m) {
	case BENCH_FSYNC_GROUP:
		return "group";
	case BENCH_FSYNC_INTERVAL:
		return "interval";
	case BENCH_FSYNC_NEVER:
		return "never";
	}
	return "?";
}

FILE *bench_out(const struct bench_args *a)
{
	return a->json ? stderr : stdout;
}

int bench_fail(const char *fmt, ...)
{
	/* One line per run: the first error is the cause, later ones (cleanup against a server
	 * that is gone, say) are consequences. After a signal the cause is the signal. */
	static bool printed;
	if (printed)
		return -1;
	printed = true;
	if (bench_stop) {
		fflush(stdout);
		fprintf(stderr, "sluice-bench: interrupted\n");
		return -1;
	}
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "sluice-bench: %s\n", msg);
	return -1;
}

void bench_fmt_rate(double v, char *out, size_t out_len)
{
	if (v >= 1e9)
		snprintf(out, out_len, "%.2f G", v / 1e9);
	else if (v >= 1e6)
		snprintf(out, out_len, "%.2f M", v / 1e6);
	else if (v >= 1e3)
		snprintf(out, out_len, "%.1f k", v / 1e3);
	else
		snprintf(out, out_len, "%.0f", v);
}

/* ---- JSON lines ---- */

static void json_raw(struct bench_json *j, const char *s)
{
	size_t n = strlen(s);
	if (j->len + n < sizeof(j->buf)) {
		memcpy(j->buf + j->len, s, n);
		j->len += n;
		j->buf[j->len] = 0;
	}
}

static void json_key(struct bench_json *j, const char *key)
{
	if (!j->first)
		json_raw(j, ",");
	j->first = false;
	json_raw(j, "\"");
	json_raw(j, key);
	json_raw(j, "\":");
}

void bench_json_str(struct bench_json *j, const char *key, const char *v)
{
	json_key(j, key);
	char esc[512];
	size_t o = 0;
	esc[o++] = '"';
	for (const char *p = v; *p && o < sizeof(esc) - 8; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			esc[o++] = '\\';
			esc[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(esc + o, sizeof(esc) - o, "\\u%04x", c);
		} else {
			esc[o++] = (char)c;
		}
	}
	esc[o++] = '"';
	esc[o] = 0;
	json_raw(j, esc);
}

void bench_json_u64(struct bench_json *j, const char *key, uint64_t v)
{
	char s[32];
	snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
	json_key(j, key);
	json_raw(j, s);
}

void bench_json_num(struct bench_json *j, const char *key, double v)
{
	char s[64];
	if (isfinite(v))
		snprintf(s, sizeof(s), "%.6g", v);
	else
		snprintf(s, sizeof(s), "null");
	json_key(j, key);
	json_raw(j, s);
}

void bench_json_begin(struct bench_json *j, const char *bench)
{
	j->len = 0;
	j->buf[0] = 0;
	j->first = true;
	json_raw(j, "{");
	bench_json_str(j, "bench", bench);
}

void bench_json_end(struct bench_json *j)
{
	json_raw(j, "}");
	puts(j->buf);
	fflush(stdout);
}

/* ---- flags ---- */

static int parse_u32(const char *flag, const char *s, uint32_t lo, uint32_t hi, bool size,
		     uint32_t *ret)
{
	uint64_t v;
	int r = size ? sl_parse_size_bytes(s, &v) : sl_parse_u64(s, &v);
	if (r < 0 || v < lo || v > hi)
		return bench_fail("%s: '%s' is not a number in %u..%u", flag, s, lo, hi);
	*ret = (uint32_t)v;
	return 0;
}

static int parse_list(const char *flag, const char *s, uint32_t lo, uint32_t hi, bool size,
		      uint32_t *out, size_t *ret_n)
{
	char tmp[512];
	if (snprintf(tmp, sizeof(tmp), "%s", s) >= (int)sizeof(tmp) || !tmp[0])
		return bench_fail("%s: bad list '%s'", flag, s);
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (n == BENCH_LIST_MAX)
			return bench_fail("%s: at most %d values", flag, BENCH_LIST_MAX);
		if (parse_u32(flag, t, lo, hi, size, &out[n]) < 0)
			return -1;
		n++;
	}
	if (n == 0)
		return bench_fail("%s: empty list", flag);
	*ret_n = n;
	return 0;
}

static int parse_fsyncs(const char *s, struct bench_args *a)
{
	char tmp[256];
	if (snprintf(tmp, sizeof(tmp), "%s", s) >= (int)sizeof(tmp))
		return bench_fail("--fsync: bad list '%s'", s);
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (n == BENCH_LIST_MAX)
			return bench_fail("--fsync: too many values");
		if (strcmp(t, "group") == 0)
			a->fsyncs[n++] = BENCH_FSYNC_GROUP;
		else if (strcmp(t, "interval") == 0)
			a->fsyncs[n++] = BENCH_FSYNC_INTERVAL;
		else if (strcmp(t, "never") == 0)
			a->fsyncs[n++] = BENCH_FSYNC_NEVER;
		else
			return bench_fail("--fsync: unknown mode '%s' (group, interval, never)", t);
	}
	if (n == 0)
		return bench_fail("--fsync: empty list");
	a->nfsyncs = n;
	return 0;
}

static int parse_handlers(const char *s, struct bench_args *a)
{
	char tmp[256];
	if (snprintf(tmp, sizeof(tmp), "%s", s) >= (int)sizeof(tmp))
		return bench_fail("--handlers: bad list '%s'", s);
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (n == BENCH_LIST_MAX)
			return bench_fail("--handlers: too many values");
		if (strcmp(t, "plugin") == 0)
			a->handlers[n++] = BENCH_HANDLER_PLUGIN;
		else if (strcmp(t, "remote") == 0)
			a->handlers[n++] = BENCH_HANDLER_REMOTE;
		else if (strcmp(t, "exec") == 0)
			a->handlers[n++] = BENCH_HANDLER_EXEC;
		else
			return bench_fail("--handlers: unknown kind '%s' (plugin, remote, exec)",
					  t);
	}
	if (n == 0)
		return bench_fail("--handlers: empty list");
	a->nhandlers = n;
	return 0;
}

static int parse_args(int argc, char **argv, struct bench_args *a)
{
	bool records_set = false, seconds_set = false;
	for (int i = 2; i < argc; i++) {
		const char *f = argv[i];
		if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
			fputs(usage, stdout);
			return 1;
		}
		if (strcmp(f, "--json") == 0) {
			a->json = true;
			continue;
		}
		if (strcmp(f, "--keep") == 0) {
			a->keep = true;
			continue;
		}
		if (strcmp(f, "--spawn") == 0) {
			a->server = NULL;
			continue;
		}
		if (i + 1 >= argc)
			return bench_fail("unknown flag or missing value: %s (see --help)", f);
		const char *v = argv[++i];
		int r = 0;
		if (strcmp(f, "--dir") == 0) {
			a->dir = v;
		} else if (strcmp(f, "--server") == 0) {
			a->server = v;
		} else if (strcmp(f, "--records") == 0) {
			uint64_t n;
			if (sl_parse_u64(v, &n) < 0 || n == 0 || n > BENCH_RECORDS_MAX)
				return bench_fail("--records: '%s' is not a number in 1..%llu", v,
						  (unsigned long long)BENCH_RECORDS_MAX);
			a->records = n;
			records_set = true;
		} else if (strcmp(f, "--seconds") == 0) {
			int64_t ms;
			if (sl_parse_duration_ms(v, &ms) < 0 || ms <= 0 ||
			    ms > (int64_t)(BENCH_SECONDS_MAX * 1000))
				return bench_fail("--seconds: '%s' is not a duration in 1ms..1h",
						  v);
			a->seconds = (double)ms / 1000.0;
			seconds_set = true;
		} else if (strcmp(f, "--sizes") == 0) {
			r = parse_list(f, v, 0, BENCH_SIZE_MAX, true, a->sizes, &a->nsizes);
		} else if (strcmp(f, "--batches") == 0) {
			r = parse_list(f, v, 1, BENCH_BATCH_MAX, false, a->batches, &a->nbatches);
		} else if (strcmp(f, "--shards") == 0) {
			r = parse_list(f, v, 1, BENCH_SHARDS_MAX, false, a->shards, &a->nshards);
		} else if (strcmp(f, "--connections") == 0) {
			r = parse_list(f, v, 1, BENCH_CONNECTIONS_MAX, false, a->connections,
				       &a->nconnections);
		} else if (strcmp(f, "--fsync") == 0) {
			r = parse_fsyncs(v, a);
		} else if (strcmp(f, "--request-records") == 0) {
			r = parse_u32(f, v, 1, 10000, false, &a->request_records);
		} else if (strcmp(f, "--linger-ms") == 0) {
			r = parse_u32(f, v, 0, 10000, false, &a->linger_ms);
			a->linger_set = true;
		} else if (strcmp(f, "--key-bytes") == 0) {
			r = parse_u32(f, v, 1, 256, false, &a->key_bytes);
		} else if (strcmp(f, "--handlers") == 0) {
			r = parse_handlers(v, a);
		} else if (strcmp(f, "--batch-size") == 0) {
			r = parse_u32(f, v, 1, 10000, false, &a->batch_size);
		} else if (strcmp(f, "--burst") == 0) {
			if (sl_parse_u64(v, &a->burst) < 0 || a->burst > BENCH_RECORDS_MAX)
				return bench_fail("--burst: '%s' is not a number in 0..%llu", v,
						  (unsigned long long)BENCH_RECORDS_MAX);
			a->burst_set = true;
		} else {
			return bench_fail("unknown flag: %s (see --help)", f);
		}
		if (r < 0)
			return -1;
	}
	bool is_log = strcmp(a->cmd, "log") == 0;
	bool is_read = strcmp(a->cmd, "read") == 0;
	bool is_consume = strcmp(a->cmd, "consume") == 0;
	a->records_set = records_set;
	if (!records_set)
		a->records = 1000000;
	if (!seconds_set)
		a->seconds = is_log ? 5.0 : is_consume ? 60.0 : 10.0;
	if (is_consume) {
		/* One workload: 100 B records, 4 shards, 4 producer connections, fsync never. */
		if (a->nsizes == 0)
			a->sizes[a->nsizes++] = 100;
		if (a->nshards == 0)
			a->shards[a->nshards++] = 4;
		if (a->nconnections == 0)
			a->connections[a->nconnections++] = 4;
		if (a->nfsyncs == 0)
			a->fsyncs[a->nfsyncs++] = BENCH_FSYNC_NEVER;
		if (a->nhandlers == 0) {
			a->handlers[0] = BENCH_HANDLER_PLUGIN;
			a->handlers[1] = BENCH_HANDLER_REMOTE;
			a->handlers[2] = BENCH_HANDLER_EXEC;
			a->nhandlers = 3;
		}
	}
	if (a->nsizes == 0) {
		a->sizes[0] = 100;
		a->sizes[1] = 1024;
		a->nsizes = 2;
	}
	if (a->nbatches == 0) {
		a->batches[0] = 1;
		a->batches[1] = 16;
		a->batches[2] = 256;
		a->nbatches = 3;
	}
	if (a->nfsyncs == 0) {
		if (is_log) {
			a->fsyncs[0] = BENCH_FSYNC_GROUP;
			a->fsyncs[1] = BENCH_FSYNC_INTERVAL;
			a->fsyncs[2] = BENCH_FSYNC_NEVER;
			a->nfsyncs = 3;
		} else if (is_read) {
			a->fsyncs[0] = BENCH_FSYNC_NEVER;
			a->nfsyncs = 1;
		} else {
			a->fsyncs[0] = BENCH_FSYNC_GROUP;
			a->fsyncs[1] = BENCH_FSYNC_NEVER;
			a->nfsyncs = 2;
		}
	}
	if (a->nshards == 0) {
		a->shards[0] = 1;
		a->shards[1] = 4;
		a->nshards = 2;
	}
	if (a->nconnections == 0) {
		a->connections[0] = 1;
		if (!is_read)
			a->connections[1] = 8;
		a->nconnections = is_read ? 1 : 2;
	}
	if (a->key_bytes == 0)
		a->key_bytes = 16;
	if (!is_log) {
		for (size_t i = 0; i < a->nfsyncs; i++)
			if (a->fsyncs[i] == BENCH_FSYNC_INTERVAL)
				return bench_fail("--fsync interval is for `log` only "
						  "(sluiced takes interval=DURATION)");
	}
	return 0;
}

static void on_signal(int sig)
{
	(void)sig;
	bench_stop = 1;
	/* Stop our sluiced now: a blocked producer then fails fast instead of waiting. */
	pid_t child = bench_child_pid;
	if (child > 0)
		kill(child, SIGTERM);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(argv[1], "compare") == 0)
		return bench_compare_main(argc, argv);
	if (strcmp(argv[1], "firehose") == 0)
		return bench_firehose_main(argc, argv);
	if (strcmp(argv[1], "replay") == 0)
		return bench_replay_main(argc, argv);
	if (strcmp(argv[1], "kinesis-api") == 0)
		return bench_kinesis_main(argc, argv);
	static struct bench_args a;
	a.cmd = argv[1];
	int (*run)(struct bench_args *) = NULL;
	if (strcmp(a.cmd, "log") == 0)
		run = bench_log_main;
	else if (strcmp(a.cmd, "produce") == 0)
		run = bench_produce_main;
	else if (strcmp(a.cmd, "read") == 0)
		run = bench_read_main;
	else if (strcmp(a.cmd, "consume") == 0)
		run = bench_consume_main;
	else if (strcmp(a.cmd, "reshard") == 0)
		run = bench_reshard_main;
	else {
		bench_fail(
		    "unknown command '%s' (log, produce, read, consume, reshard; see --help)",
		    a.cmd);
		return 2;
	}
	int r = parse_args(argc, argv, &a);
	if (r != 0)
		return r > 0 ? 0 : 2;

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	r = run(&a);
	if (r == 0 && bench_stop)
		r = bench_fail("interrupted");
	return r == 0 ? 0 : 1;
}
