/*
 * `sluice-bench compare`: one run, one process tree, the same workloads against sluice and the
 * peers that were built in (Redis Streams through hiredis, NATS JetStream through libnats).
 *
 * For each durability class (fsync: acknowledged after fsync; async: acknowledged before) every
 * engine's server is started fresh in its own folder of the scratch folder, on 127.0.0.1. Then for
 * each record size x connection count:
 *
 *   1. produce: each engine, flat out, --records records into a new stream -> peak records/s;
 *   2. consume: each engine reads back what step 1 stored;
 *   3. produce_latency: each engine, paced at the SAME offered rate, 50 % of the slowest
 *      engine's peak of step 1 (--rate overrides), send -> ack per record;
 *   4. e2e: each engine, one reader at the end of a new stream and paced producers at that rate,
 *      due time -> the reader has the record.
 *
 * Servers are stopped by PID at the end of each class, and on any error, SIGINT/SIGTERM or exit
 * (atexit); they also get SIGKILL if this process dies (PR_SET_PDEATHSIG). The scratch folder is
 * removed unless --keep.
 */
#include "compare.h"
#include "diskbw.h"

#include "common/clock.h"
#include "common/units.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: sluice-bench compare [options]\n"
    "\n"
    "The same workloads against sluice and the peers built in (Redis Streams, NATS JetStream),\n"
    "each server started by the benchmark on 127.0.0.1 in its own scratch folder:\n"
    "produce (flat out), consume (read back), produce_latency (send -> ack at a fixed offered\n"
    "rate: 50% of the slowest engine's produce peak), e2e (produce -> a reader has it); and for\n"
    "sluice alone: consume_handler (a plugin consumer delivers the stored records),\n"
    "e2e_handler (produce -> the plugin handler has it), firehose (archive the stored records\n"
    "to file://, zstd 3) and replay (`sluice replay` into a new stream).\n"
    "\n"
    "  --records N           records per produce / consume measurement (default 1000000)\n"
    "  --sizes LIST          record data bytes, >= 8 (default 100,1024)\n"
    "  --shards N            shards: sluice shards, Redis keys, NATS subjects (default 4)\n"
    "  --connections LIST    producer connections (default 1,8)\n"
    "  --durability LIST     fsync,async (default both)\n"
    "  --engines LIST        sluice,redis,nats (default: all that were built)\n"
    "  --out DIR             results.md, results.json, plots (default bench-results)\n"
    "  --dir DIR             where the scratch folder goes (default: the current folder)\n"
    "  --seconds DURATION    time bound of each measurement (default 60s)\n"
    "  --latency-seconds D   length of each paced measurement (default 5s)\n"
    "  --latency-slices N    run each paced measurement as N slices, the engines taking\n"
    "                        turns slice by slice, so that the host's noise falls on every\n"
    "                        engine alike; the slices' latencies are pooled (default 5)\n"
    "  --rate N              offered records/s of the paced measurements (default: 50% of the\n"
    "                        slowest engine's produce peak in the same configuration)\n"
    "  --batch N             consume: records per read / fetch (default 10000)\n"
    "  --window N            peers: records in flight per connection (default 4000, as\n"
    "                        libsluice's 8 requests x 500 records)\n"
    "  --no-plots            skip gnuplot\n"
    "  --no-sluice-only      skip sluice's handler, firehose and replay rows\n"
    "  --keep                keep the scratch folder (servers' data and logs)\n";

struct cmp_opts {
	uint64_t records;
	uint32_t sizes[BENCH_LIST_MAX];
	size_t nsizes;
	uint32_t shards;
	uint32_t connections[BENCH_LIST_MAX];
	size_t nconnections;
	bool durability[2]; /* [0] fsync, [1] async */
	bool engines[CMP_ENGINES_MAX];
	const char *out;
	const char *dir;
	double seconds;
	double latency_seconds;
	uint32_t latency_slices;
	double rate;
	uint32_t batch;
	uint32_t window;
	bool plots;
	bool keep;
	bool sluice_only; /* the sluice-only workloads */
};

static const char *const engine_names[CMP_ENGINES_MAX] = {"sluice", "redis", "nats"};

/* ---- children ---- */

#define CMP_CHILDREN_MAX 16
static volatile pid_t g_children[CMP_CHILDREN_MAX];
static char g_scratch[PATH_MAX];
static bool g_keep;

void cmp_child_add(pid_t pid)
{
	for (int i = 0; i < CMP_CHILDREN_MAX; i++) {
		if (g_children[i] == 0) {
			g_children[i] = pid;
			return;
		}
	}
}

void cmp_child_forget(pid_t pid)
{
	for (int i = 0; i < CMP_CHILDREN_MAX; i++)
		if (g_children[i] == pid)
			g_children[i] = 0;
}

pid_t cmp_spawn(char *const argv[], const char *log_path)
{
	int logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (logfd < 0)
		return -1;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		close(logfd);
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		if (dup2(logfd, STDOUT_FILENO) < 0 || dup2(logfd, STDERR_FILENO) < 0)
			_exit(127);
		execvp(argv[0], argv);
		dprintf(STDERR_FILENO, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(logfd);
	cmp_child_add(pid);
	return pid;
}

bool cmp_child_alive(pid_t pid)
{
	if (pid <= 0)
		return false;
	int status;
	pid_t w = waitpid(pid, &status, WNOHANG);
	if (w == pid) {
		cmp_child_forget(pid);
		return false;
	}
	return w == 0;
}

int cmp_child_stop(pid_t pid, int timeout_ms)
{
	if (pid <= 0)
		return 0;
	kill(pid, SIGTERM);
	int status = 0, ret = -1;
	int64_t deadline = sl_mono_ms() + timeout_ms;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid) {
			ret = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			break;
		}
		if (w < 0 && errno != EINTR)
			break;
		if (sl_mono_ms() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		usleep(10000);
	}
	cmp_child_forget(pid);
	return ret;
}

static void on_signal(int sig)
{
	(void)sig;
	bench_stop = 1;
	/* Stop the servers at once: clients blocked on them fail fast and unwind. */
	for (int i = 0; i < CMP_CHILDREN_MAX; i++) {
		pid_t pid = g_children[i];
		if (pid > 0)
			kill(pid, SIGTERM);
	}
}

static void at_exit(void)
{
	for (int i = 0; i < CMP_CHILDREN_MAX; i++) {
		pid_t pid = g_children[i];
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			g_children[i] = 0;
		}
	}
	if (g_scratch[0] && !g_keep) {
		bench_rm_rf(g_scratch);
		g_scratch[0] = 0;
	}
}

int cmp_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int port = -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

int cmp_wait_port(int port, pid_t pid, int timeout_ms)
{
	int64_t deadline = sl_mono_ms() + timeout_ms;
	while (sl_mono_ms() < deadline && !bench_stop) {
		if (!cmp_child_alive(pid))
			return -1;
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		if (r == 0)
			return 0;
		usleep(20000);
	}
	return -1;
}

void cmp_command_line(const char *cmd, char *out, size_t out_len)
{
	out[0] = 0;
	char full[1024];
	snprintf(full, sizeof(full), "%s 2>&1", cmd);
	FILE *p = popen(full, "r");
	if (!p)
		return;
	if (fgets(out, (int)out_len, p))
		out[strcspn(out, "\n")] = 0;
	char sink[256];
	while (fgets(sink, sizeof(sink), p))
		;
	pclose(p);
}

void cmp_last_line(const char *path, char *out, size_t out_len)
{
	out[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		size_t n = strcspn(line, "\n");
		line[n] = 0;
		if (n)
			snprintf(out, out_len, "%s", line);
	}
	fclose(f);
}

/* ---- helpers for the engines ---- */

const char *cmp_workload_name(enum cmp_workload w)
{
	switch (w) {
	case CMP_PRODUCE:
		return "produce";
	case CMP_PRODUCE_LATENCY:
		return "produce_latency";
	case CMP_CONSUME:
		return "consume";
	case CMP_E2E:
		return "e2e";
	case CMP_CONSUME_HANDLER:
		return "consume_handler";
	case CMP_E2E_HANDLER:
		return "e2e_handler";
	case CMP_FIREHOSE:
		return "firehose";
	case CMP_REPLAY:
		return "replay";
	case CMP_WORKLOADS:
		break;
	}
	return "?";
}

bool cmp_workload_reads_stored(enum cmp_workload w)
{
	return w == CMP_CONSUME || w == CMP_CONSUME_HANDLER || w == CMP_FIREHOSE || w == CMP_REPLAY;
}

enum cmp_workload cmp_workload_peer(enum cmp_workload w)
{
	switch (w) {
	case CMP_CONSUME_HANDLER:
		return CMP_CONSUME;
	case CMP_E2E_HANDLER:
		return CMP_E2E;
	case CMP_FIREHOSE:
	case CMP_REPLAY:
		return CMP_WORKLOADS;
	default:
		return w;
	}
}

int cmp_fail(const struct cmp_engine *e, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "sluice-bench compare: %s: %s\n", e ? e->name : "error", msg);
	return -1;
}

void cmp_progress(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("[compare] ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

int64_t cmp_now_ns(void)
{
	return sl_mono_ns();
}

void cmp_sleep_until(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !bench_stop)
		;
}

void cmp_key(char key[CMP_KEY_BYTES], uint32_t conn, uint64_t i)
{
	static const char hex[] = "0123456789abcdef";
	memset(key, 'k', CMP_KEY_BYTES);
	key[0] = (char)('A' + conn % 26);
	uint64_t n = i * BENCH_CONNECTIONS_MAX + conn;
	for (int d = 0; d < 12; d++) {
		key[CMP_KEY_BYTES - 1 - d] = hex[n & 15];
		n >>= 4;
	}
}

uint32_t cmp_shard_of(const char *key, size_t len, uint32_t shards)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 1099511628211ull;
	}
	return (uint32_t)(h % shards);
}

uint8_t *cmp_data_new(uint32_t size, uint32_t conn)
{
	uint8_t *d = malloc((size_t)size + 256);
	if (!d)
		return NULL;
	for (size_t i = 0; i < (size_t)size + 256; i++)
		d[i] = (uint8_t)('a' + (i + conn) % 26);
	return d;
}

void cmp_stamp(uint8_t *data, int64_t ns)
{
	memcpy(data, &ns, sizeof(ns));
}

int64_t cmp_stamp_read(const uint8_t *data)
{
	int64_t ns;
	memcpy(&ns, data, sizeof(ns));
	return ns;
}

int64_t cmp_due_ns(const struct cmp_params *p, int64_t t0, uint64_t i)
{
	if (p->rate <= 0)
		return t0;
	double per_conn = p->rate / p->connections;
	return t0 + (int64_t)((double)i * 1e9 / per_conn);
}

uint64_t cmp_share(const struct cmp_params *p, uint32_t conn)
{
	return p->records / p->connections + (conn < p->records % p->connections ? 1 : 0);
}

/* ---- flags ---- */

static int parse_u32_list(const char *flag, const char *s, uint32_t lo, uint32_t hi, uint32_t *out,
			  size_t *ret_n)
{
	char tmp[256];
	if (snprintf(tmp, sizeof(tmp), "%s", s) >= (int)sizeof(tmp) || !tmp[0])
		return cmp_fail(NULL, "%s: bad list '%s'", flag, s);
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		uint64_t v;
		if (n == BENCH_LIST_MAX)
			return cmp_fail(NULL, "%s: at most %d values", flag, BENCH_LIST_MAX);
		if (sl_parse_size_bytes(t, &v) < 0 || v < lo || v > hi)
			return cmp_fail(NULL, "%s: '%s' is not a number in %u..%u", flag, t, lo,
					hi);
		out[n++] = (uint32_t)v;
	}
	*ret_n = n;
	return n ? 0 : cmp_fail(NULL, "%s: empty list", flag);
}

static int parse_seconds(const char *flag, const char *v, double *ret)
{
	int64_t ms;
	if (sl_parse_duration_ms(v, &ms) < 0 || ms <= 0 || ms > (int64_t)(BENCH_SECONDS_MAX * 1000))
		return cmp_fail(NULL, "%s: '%s' is not a duration in 1ms..1h", flag, v);
	*ret = (double)ms / 1000.0;
	return 0;
}

static int parse_names(const char *flag, const char *s, const char *const *names, size_t n,
		       bool *out)
{
	char tmp[256];
	if (snprintf(tmp, sizeof(tmp), "%s", s) >= (int)sizeof(tmp) || !tmp[0])
		return cmp_fail(NULL, "%s: bad list '%s'", flag, s);
	for (size_t i = 0; i < n; i++)
		out[i] = false;
	char *save = NULL;
	for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t i = 0;
		while (i < n && strcmp(t, names[i]) != 0)
			i++;
		if (i == n)
			return cmp_fail(NULL, "%s: unknown value '%s'", flag, t);
		out[i] = true;
	}
	return 0;
}

static int parse_opts(int argc, char **argv, struct cmp_opts *o)
{
	*o = (struct cmp_opts){
	    .records = 1000000,
	    .shards = 4,
	    .durability = {true, true},
	    .out = "bench-results",
	    .seconds = 60,
	    .latency_seconds = 5,
	    .latency_slices = CMP_LATENCY_SLICES_DEFAULT,
	    .batch = 10000,
	    .window = 4000,
	    .plots = true,
	    .sluice_only = true,
	};
	o->engines[0] = true;
#ifdef SLUICE_BENCH_HAVE_REDIS
	o->engines[1] = true;
#endif
#ifdef SLUICE_BENCH_HAVE_NATS
	o->engines[2] = true;
#endif
	for (int i = 2; i < argc; i++) {
		const char *f = argv[i];
		if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
			fputs(usage, stdout);
			return 1;
		}
		if (strcmp(f, "--keep") == 0) {
			o->keep = true;
			continue;
		}
		if (strcmp(f, "--no-plots") == 0) {
			o->plots = false;
			continue;
		}
		if (strcmp(f, "--no-sluice-only") == 0) {
			o->sluice_only = false;
			continue;
		}
		if (i + 1 >= argc)
			return cmp_fail(NULL, "unknown flag or missing value: %s (see --help)", f);
		const char *v = argv[++i];
		uint64_t n;
		size_t cnt;
		uint32_t one[BENCH_LIST_MAX];
		int r = 0;
		if (strcmp(f, "--records") == 0) {
			if (sl_parse_u64(v, &n) < 0 || n == 0 || n > BENCH_RECORDS_MAX)
				return cmp_fail(NULL, "--records: '%s' is not a number in 1..%llu",
						v, (unsigned long long)BENCH_RECORDS_MAX);
			o->records = n;
		} else if (strcmp(f, "--sizes") == 0) {
			r = parse_u32_list(f, v, CMP_SIZE_MIN, BENCH_SIZE_MAX / 2, o->sizes,
					   &o->nsizes);
		} else if (strcmp(f, "--shards") == 0) {
			r = parse_u32_list(f, v, 1, BENCH_SHARDS_MAX, one, &cnt);
			if (r == 0 && cnt != 1)
				return cmp_fail(NULL, "--shards: one value");
			o->shards = one[0];
		} else if (strcmp(f, "--connections") == 0) {
			r = parse_u32_list(f, v, 1, BENCH_CONNECTIONS_MAX, o->connections,
					   &o->nconnections);
		} else if (strcmp(f, "--durability") == 0) {
			static const char *const d[] = {"fsync", "async"};
			r = parse_names(f, v, d, 2, o->durability);
		} else if (strcmp(f, "--engines") == 0) {
			r = parse_names(f, v, engine_names, CMP_ENGINES_MAX, o->engines);
		} else if (strcmp(f, "--out") == 0) {
			o->out = v;
		} else if (strcmp(f, "--dir") == 0) {
			o->dir = v;
		} else if (strcmp(f, "--seconds") == 0) {
			r = parse_seconds(f, v, &o->seconds);
		} else if (strcmp(f, "--latency-seconds") == 0) {
			r = parse_seconds(f, v, &o->latency_seconds);
		} else if (strcmp(f, "--latency-slices") == 0) {
			r = parse_u32_list(f, v, 1, 100, one, &cnt);
			o->latency_slices = one[0];
		} else if (strcmp(f, "--rate") == 0) {
			if (sl_parse_u64(v, &n) < 0 || n == 0 || n > 100000000)
				return cmp_fail(NULL, "--rate: '%s' is not a number in 1..1e8", v);
			o->rate = (double)n;
		} else if (strcmp(f, "--batch") == 0) {
			r = parse_u32_list(f, v, 1, 10000, one, &cnt);
			o->batch = one[0];
		} else if (strcmp(f, "--window") == 0) {
			r = parse_u32_list(f, v, 1, 100000, one, &cnt);
			o->window = one[0];
		} else {
			return cmp_fail(NULL, "unknown flag: %s (see --help)", f);
		}
		if (r < 0)
			return -1;
	}
	if (o->nsizes == 0) {
		o->sizes[0] = 100;
		o->sizes[1] = 1024;
		o->nsizes = 2;
	}
	if (o->nconnections == 0) {
		o->connections[0] = 1;
		o->connections[1] = 8;
		o->nconnections = 2;
	}
#ifndef SLUICE_BENCH_HAVE_REDIS
	if (o->engines[1])
		return cmp_fail(NULL, "redis: this sluice-bench was built without hiredis "
				      "(install libhiredis-dev and reconfigure)");
#endif
#ifndef SLUICE_BENCH_HAVE_NATS
	if (o->engines[2])
		return cmp_fail(NULL, "nats: this sluice-bench was built without libnats "
				      "(install libnats-dev and reconfigure)");
#endif
	return 0;
}

/* ---- the run ---- */

static void machine_info(const char *scratch, char *out, size_t out_len)
{
	struct utsname u;
	char model[128] = "unknown CPU";
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[256];
		while (fgets(line, sizeof(line), f)) {
			char *colon = strchr(line, ':');
			if (strncmp(line, "model name", 10) == 0 && colon) {
				colon++;
				while (*colon == ' ')
					colon++;
				colon[strcspn(colon, "\n")] = 0;
				snprintf(model, sizeof(model), "%s", colon);
				break;
			}
		}
		fclose(f);
	}
	struct sysinfo si;
	double ram_gib = sysinfo(&si) == 0 ? (double)si.totalram * si.mem_unit / (1 << 30) : 0;
	char fs[32];
	bench_fs_name(scratch, fs, sizeof(fs));
	snprintf(out, out_len, "%ld cores (%s), %.0f GiB RAM, Linux %s, data folder on %s",
		 sysconf(_SC_NPROCESSORS_ONLN), model, ram_gib,
		 uname(&u) == 0 ? u.release : "unknown", fs);
}

static void append(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	if (used >= len - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

static void make_row(struct cmp_row *row, const struct cmp_engine *e, enum cmp_workload w,
		     const struct cmp_params *p, const struct cmp_result *r)
{
	*row = (struct cmp_row){
	    .engine = e->name,
	    .workload = w,
	    .size = p->size,
	    .shards = p->shards,
	    .connections = p->connections,
	    .fsync = p->fsync,
	    .records = r->records,
	    .seconds = r->seconds,
	    .rate = p->rate,
	    .time_bound = r->time_bound,
	};
	row->records_per_sec = r->seconds > 0 ? (double)r->records / r->seconds : 0;
	row->mb_per_sec = row->records_per_sec * p->size / 1e6;
	if (r->lat.count) {
		row->has_lat = true;
		row->p50_us = (double)bench_hist_quantile(&r->lat, 0.50) / 1e3;
		row->p90_us = (double)bench_hist_quantile(&r->lat, 0.90) / 1e3;
		row->p99_us = (double)bench_hist_quantile(&r->lat, 0.99) / 1e3;
		row->p999_us = (double)bench_hist_quantile(&r->lat, 0.999) / 1e3;
		row->p9999_us = (double)bench_hist_quantile(&r->lat, 0.9999) / 1e3;
		row->max_us = (double)r->lat.max / 1e3;
	}
}

static void progress_row(const struct cmp_row *w)
{
	char rs[32];
	bench_fmt_rate(w->records_per_sec, rs, sizeof(rs));
	if (w->has_lat)
		cmp_progress("  %-6s %-15s %8llu rec  %10s rec/s %8.1f MB/s  p50 %.0f us  p99 %.0f "
			     "us  p99.9 %.0f us%s",
			     w->engine, cmp_workload_name(w->workload),
			     (unsigned long long)w->records, rs, w->mb_per_sec, w->p50_us,
			     w->p99_us, w->p999_us, w->time_bound ? " (time bound)" : "");
	else
		cmp_progress("  %-6s %-15s %8llu rec  %10s rec/s %8.1f MB/s%s", w->engine,
			     cmp_workload_name(w->workload), (unsigned long long)w->records, rs,
			     w->mb_per_sec, w->time_bound ? " (time bound)" : "");
	if (w->has_fsyncs) {
		char sum[160];
		cmp_fsyncs_summary(w, sum, sizeof(sum));
		cmp_progress("  %-6s %s", w->engine, sum);
	}
}

/*
 * One measurement into r; added to the report (and shown) unless rep is NULL. The stream is
 * created first unless the workload reads a stored one or stream_exists (a paced slice after
 * the first), and dropped after unless keep_stream.
 */
static int measure(struct cmp_engine *e, enum cmp_workload w, struct cmp_params *p,
		   const struct cmp_result *produced, struct cmp_result *r, struct cmp_report *rep,
		   const char *scratch, bool keep_stream, bool stream_exists)
{
	memset(r, 0, sizeof(*r));
	bench_hist_init(&r->lat);
	bench_syncfs(scratch);
	int ret = 0;
	if (!cmp_workload_reads_stored(w) && !stream_exists)
		ret = e->create(e, p);
	if (ret == 0) {
		switch (w) {
		case CMP_PRODUCE:
		case CMP_PRODUCE_LATENCY:
			ret = e->produce(e, p, r);
			break;
		case CMP_CONSUME:
			ret = e->consume(e, p, produced, r);
			break;
		case CMP_E2E:
			ret = e->e2e(e, p, r);
			break;
		case CMP_CONSUME_HANDLER:
		case CMP_E2E_HANDLER:
		case CMP_FIREHOSE:
		case CMP_REPLAY:
			ret = e->sluice_only(e, w, p, produced, r);
			break;
		case CMP_WORKLOADS:
			break;
		}
	}
	if (ret == 0 && bench_stop)
		ret = cmp_fail(e, "interrupted");
	if (ret == 0 && r->records == 0)
		ret = cmp_fail(e, "%s: no record got through", cmp_workload_name(w));
	if (ret == 0 && (w == CMP_PRODUCE || w == CMP_PRODUCE_LATENCY) && r->records != r->sent)
		ret = cmp_fail(e, "%s: %llu of %llu records not acknowledged", cmp_workload_name(w),
			       (unsigned long long)(r->sent - r->records),
			       (unsigned long long)r->sent);
	if (!keep_stream || ret < 0) {
		int d = bench_stop ? 0 : e->drop(e, p);
		if (ret == 0)
			ret = d;
	}
	if (ret < 0 || !rep)
		return ret;
	struct cmp_row row;
	make_row(&row, e, w, p, r);
	progress_row(&row);
	return cmp_report_add(rep, &row);
}

/* acc += r: a slice of a paced measurement. */
static void result_add(struct cmp_result *acc, const struct cmp_result *r)
{
	acc->records += r->records;
	acc->sent += r->sent;
	acc->seconds += r->seconds;
	acc->time_bound |= r->time_bound;
	for (size_t s = 0; s < BENCH_SHARDS_MAX; s++)
		acc->per_shard[s] += r->per_shard[s];
	bench_hist_merge(&acc->lat, &r->lat);
}

/*
 * A paced workload for every engine, in slices: slice s runs the engines in turn starting with
 * engine s mod n, so every engine's latencies are spread over the same stretch of time and a
 * noisy moment on the host lands on all of them alike, not on whichever engine it happened to
 * meet. For produce_latency an engine's slices share one stream (created by the first, dropped
 * after the last), so a slice starts warm, as the middle of one long measurement would. e2e
 * readers expect a new stream (they read it from its start: NATS DeliverAll, Redis 0-0), so
 * there each slice has a stream of its own. The rows pool the slices' latencies.
 */
static int measure_paced(struct cmp_engine *eng, size_t neng, enum cmp_workload w,
			 const struct cmp_params *base, uint32_t slices, struct cmp_report *rep,
			 const char *scratch)
{
	struct cmp_result *acc = calloc(neng, sizeof(*acc));
	struct cmp_result *r = malloc(sizeof(*r));
	/* Per engine: the fdatasyncs of its slices (engines that report them, fsync rows). */
	uint64_t(*syncs)[CMP_FSYNC_BUCKETS] = calloc(neng, sizeof(*syncs));
	if (!acc || !r || !syncs) {
		free(acc);
		free(r);
		free(syncs);
		return cmp_fail(NULL, "out of memory");
	}
	for (size_t i = 0; i < neng; i++)
		bench_hist_init(&acc[i].lat);
	int ret = 0;
	uint64_t per_slice = base->records / slices;
	for (uint32_t s = 0; s < slices && ret == 0; s++) {
		for (size_t j = 0; j < neng && ret == 0; j++) {
			size_t i = (j + s) % neng;
			struct cmp_params p = *base;
			/* The last slice takes the remainder. */
			p.records = s + 1 < slices ? per_slice : base->records - per_slice * s;
			bool shared = w == CMP_PRODUCE_LATENCY;
			if (!shared)
				snprintf(p.tag, sizeof(p.tag), "%.50s%u", base->tag, s);
			bool count_syncs = base->fsync && eng[i].fsync_histogram;
			uint64_t before[CMP_FSYNC_BUCKETS], after[CMP_FSYNC_BUCKETS];
			if (count_syncs)
				ret = eng[i].fsync_histogram(&eng[i], before);
			if (ret == 0)
				ret = measure(&eng[i], w, &p, NULL, r, NULL, scratch,
					      shared && s + 1 < slices, shared && s > 0);
			if (ret == 0 && count_syncs)
				ret = eng[i].fsync_histogram(&eng[i], after);
			if (ret == 0 && count_syncs)
				for (size_t b = 0; b < CMP_FSYNC_BUCKETS; b++)
					syncs[i][b] += after[b] - before[b];
			if (ret == 0)
				result_add(&acc[i], r);
		}
	}
	for (size_t i = 0; i < neng && ret == 0; i++) {
		/* Every slice checked its own records; the pooled row must hold them all (unless a
		 * slice stopped at the time bound, which the row reports). */
		if (w == CMP_PRODUCE_LATENCY && !acc[i].time_bound &&
		    acc[i].sent != base->records) {
			ret = cmp_fail(&eng[i], "%s: the slices sent %llu of %llu records",
				       cmp_workload_name(w), (unsigned long long)acc[i].sent,
				       (unsigned long long)base->records);
			break;
		}
		struct cmp_row row;
		make_row(&row, &eng[i], w, base, &acc[i]);
		if (base->fsync && eng[i].fsync_histogram) {
			row.has_fsyncs = true;
			memcpy(row.fsyncs, syncs[i], sizeof(row.fsyncs));
		}
		progress_row(&row);
		ret = cmp_report_add(rep, &row);
	}
	free(acc);
	free(r);
	free(syncs);
	return ret;
}

static int run_config(struct cmp_engine *eng, size_t neng, const struct cmp_opts *o, bool fsync,
		      uint32_t size, uint32_t conns, struct cmp_report *rep, const char *scratch)
{
	const char *dur = fsync ? "fsync" : "async";
	struct cmp_result *r = malloc(sizeof(*r));
	struct cmp_result *prod = calloc(neng, sizeof(*prod));
	if (!r || !prod) {
		free(r);
		free(prod);
		return cmp_fail(NULL, "out of memory");
	}
	double min_peak = INFINITY;
	int ret = 0;
	cmp_progress("%s, %u-byte records, %u connection(s), %u shards: produce + consume, %llu "
		     "records",
		     dur, size, conns, o->shards, (unsigned long long)o->records);
	for (size_t i = 0; i < neng && ret == 0; i++) {
		struct cmp_params p = {
		    .size = size,
		    .shards = o->shards,
		    .connections = conns,
		    .fsync = fsync,
		    .records = o->records,
		    .seconds = o->seconds,
		    .batch = o->batch,
		    .window = o->window,
		};
		snprintf(p.tag, sizeof(p.tag), "cmp-%s-%u-%u-p", dur, size, conns);
		ret = measure(&eng[i], CMP_PRODUCE, &p, NULL, &prod[i], rep, scratch, true, false);
		if (ret < 0)
			break;
		double peak = prod[i].seconds > 0 ? (double)prod[i].records / prod[i].seconds : 0;
		if (peak < min_peak)
			min_peak = peak;
		p.records = prod[i].records;
		/* sluice alone: the handler, firehose and replay rows read the same stream; the
		 * last of them drops it. */
		static const enum cmp_workload stored[] = {CMP_CONSUME, CMP_CONSUME_HANDLER,
							   CMP_FIREHOSE, CMP_REPLAY};
		size_t nstored = eng[i].sluice_only && o->sluice_only ? 4 : 1;
		for (size_t k = 0; k < nstored && ret == 0; k++)
			ret = measure(&eng[i], stored[k], &p, &prod[i], r, rep, scratch,
				      k + 1 < nstored, false);
	}
	double rate = o->rate > 0 ? o->rate : 0.5 * min_peak;
	if (ret == 0 && !(rate >= 1))
		ret = cmp_fail(NULL, "no produce peak to derive the offered rate from");
	uint64_t lat_records = (uint64_t)(rate * o->latency_seconds);
	if (lat_records > o->records)
		lat_records = o->records;
	if (lat_records < 100)
		lat_records = 100;
	if (ret == 0)
		cmp_progress("%s, %u-byte records, %u connection(s): latency at %.0f records/s "
			     "offered (%s), %llu records",
			     dur, size, conns, rate,
			     o->rate > 0 ? "--rate" : "50% of the slowest engine's peak",
			     (unsigned long long)lat_records);
	static const enum cmp_workload paced[] = {CMP_PRODUCE_LATENCY, CMP_E2E, CMP_E2E_HANDLER};
	for (size_t k = 0; k < sizeof(paced) / sizeof(paced[0]) && ret == 0; k++) {
		enum cmp_workload w = paced[k];
		struct cmp_params p = {
		    .size = size,
		    .shards = o->shards,
		    .connections = conns,
		    .fsync = fsync,
		    .records = lat_records,
		    .seconds = o->seconds,
		    .rate = rate,
		    .batch = o->batch,
		    .window = o->window,
		};
		snprintf(p.tag, sizeof(p.tag), "cmp-%s-%u-%u-%s", dur, size, conns,
			 w == CMP_E2E		? "e"
			 : w == CMP_E2E_HANDLER ? "h"
						: "l");
		if (w != CMP_E2E_HANDLER) {
			uint32_t slices = o->latency_slices;
			if (slices > lat_records / 20)
				slices = lat_records / 20 ? (uint32_t)(lat_records / 20) : 1;
			ret = measure_paced(eng, neng, w, &p, slices, rep, scratch);
			continue;
		}
		/* sluice alone: nothing to take turns with. */
		for (size_t i = 0; i < neng && ret == 0; i++)
			if (eng[i].sluice_only && o->sluice_only)
				ret = measure(&eng[i], w, &p, NULL, r, rep, scratch, false, false);
	}
	free(r);
	free(prod);
	return ret;
}

static void join_args(int argc, char **argv, char *out, size_t len)
{
	out[0] = 0;
	append(out, len, "sluice-bench");
	for (int i = 1; i < argc; i++)
		append(out, len, " %s", argv[i]);
}

int bench_compare_main(int argc, char **argv)
{
	struct cmp_opts o;
	int r = parse_opts(argc, argv, &o);
	if (r != 0)
		return r > 0 ? 0 : 2;

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	atexit(at_exit);

	struct cmp_engine eng[CMP_ENGINES_MAX];
	size_t neng = 0;
	memset(eng, 0, sizeof(eng));
	if (o.engines[0])
		cmp_sluice_init(&eng[neng++]);
#ifdef SLUICE_BENCH_HAVE_REDIS
	if (o.engines[1])
		cmp_redis_init(&eng[neng++]);
#endif
#ifdef SLUICE_BENCH_HAVE_NATS
	if (o.engines[2])
		cmp_nats_init(&eng[neng++]);
#endif
	if (neng == 0) {
		cmp_fail(NULL, "--engines: nothing to run");
		return 2;
	}

	if (mkdir(o.out, 0755) < 0 && errno != EEXIST) {
		cmp_fail(NULL, "cannot create %s: %s", o.out, strerror(errno));
		return 1;
	}
	r = bench_scratch_create(o.dir, g_scratch, sizeof(g_scratch));
	if (r < 0) {
		g_scratch[0] = 0;
		cmp_fail(NULL, "cannot create a scratch folder in %s: %s", o.dir ? o.dir : ".",
			 strerror(-r));
		return 1;
	}
	g_keep = o.keep;

	static struct cmp_report rep;
	machine_info(g_scratch, rep.machine, sizeof(rep.machine));
	join_args(argc, argv, rep.command, sizeof(rep.command));
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(rep.date, sizeof(rep.date), "%Y-%m-%d %H:%M UTC", &tm);
	append(rep.settings, sizeof(rep.settings),
	       "%u shards; %u-byte partition keys; records per produce/consume measurement: %llu; "
	       "paced measurements: %.0f s (at most that many records) in %u slices (fewer when "
	       "a slice would get under 20 records), the engines taking turns slice by slice, "
	       "latencies pooled; consume batch %u; peers' "
	       "in-flight window %u per connection; time bound %.0f s per measurement",
	       o.shards, CMP_KEY_BYTES, (unsigned long long)o.records, o.latency_seconds,
	       o.latency_slices, o.batch, o.window, o.seconds);
	cmp_progress("scratch %s; %s", g_scratch, rep.machine);
	if (bench_fs_is_memory(g_scratch))
		cmp_progress("warning: %s is in memory: the figures say nothing about a disk",
			     g_scratch);

	int ret = 0;
	for (int d = 0; d < 2 && ret == 0; d++) {
		if (!o.durability[d])
			continue;
		bool fsync = d == 0;
		size_t started = 0;
		append(rep.brief, sizeof(rep.brief), "%s%s: ", rep.brief[0] ? "\n" : "",
		       fsync ? "fsync" : "async");
		for (size_t i = 0; i < neng && ret == 0; i++) {
			cmp_progress("starting %s (%s)", eng[i].name, fsync ? "fsync" : "async");
			ret = eng[i].start(&eng[i], g_scratch, fsync);
			if (ret == 0) {
				started++;
				cmp_progress("  %s: %s", eng[i].version, eng[i].settings);
				if (!strstr(rep.versions, eng[i].version))
					append(rep.versions, sizeof(rep.versions), "%s%s",
					       rep.versions[0] ? "; " : "", eng[i].version);
				append(rep.settings, sizeof(rep.settings), "\n- %s, %s: %s",
				       eng[i].name, fsync ? "fsync" : "async", eng[i].settings);
				append(rep.brief, sizeof(rep.brief), "%s%s %s", i == 0 ? "" : " | ",
				       eng[i].name, eng[i].brief);
				if (eng[i].note[0] && !strstr(rep.notes, eng[i].note))
					append(rep.notes, sizeof(rep.notes), "%s%s: %s",
					       rep.notes[0] ? "\n" : "", eng[i].name, eng[i].note);
			}
		}
		for (size_t s = 0; s < o.nsizes && ret == 0; s++)
			for (size_t c = 0; c < o.nconnections && ret == 0; c++)
				ret = run_config(eng, neng, &o, fsync, o.sizes[s], o.connections[c],
						 &rep, g_scratch);
		for (size_t i = 0; i < started; i++) {
			if (eng[i].stop(&eng[i]) < 0 && ret == 0 && !bench_stop)
				ret = cmp_fail(&eng[i], "the server did not exit cleanly");
		}
	}
	if (ret == 0 && bench_stop)
		ret = cmp_fail(NULL, "interrupted");
	if (ret == 0) {
		fputc('\n', stdout);
		cmp_report_markdown(&rep, stdout);
		fflush(stdout);
		if (!o.plots)
			setenv("SLUICE_BENCH_NO_PLOTS", "1", 1);
		ret = cmp_report_write(&rep, o.out);
		if (ret == 0)
			cmp_progress("wrote %s/results.md, %s/results.json%s", o.out, o.out,
				     o.plots ? " and the plots" : "");
	}
	free(rep.rows);
	at_exit();
	return ret == 0 ? 0 : 1;
}
