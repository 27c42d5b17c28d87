/*
 * `sluice-bench replay`: restore (archive -> log) and replay (log -> log) throughput and memory.
 *
 * 1. An archive of --records records (--size bytes of event-like text, keys user-NNNNNN, over
 *    --shards shards) is generated straight into scratch/archive in the firehose's layout and
 *    format (sl_archive_writer: JSONL, zstd -3, one object per OBJECT_RAW_BYTES of lines per
 *    shard, the layout at _meta/bench.json) - no firehose needed, so 10 million records take
 *    seconds to prepare.
 * 2. The ceiling: `zstd -d -T1 -c OBJECTS > /dev/null` on the same objects (wall and CPU time
 *    from wait4): how fast the bytes can be decompressed at all.
 * 3. The append cost: the same records appended in-process to shard logs (sl_shard_log, batches
 *    of 10,000, one sync per batch: the durability a RESTORE_APPEND waits for).
 * 4. restore: a private sluiced (--fsync group by default) and `sluice restore` (the CLI from the
 *    build tree) timed end to end; its CPU time and peak RSS from wait4 (ru_maxrss), sluiced's
 *    CPU time over the restore (/proc/PID/stat) and its VmHWM.
 *    The restored stream is checked: every shard's next_seq equals the archive's.
 * 5. replay: `sluice replay bench --from trim-horizon --into copy --keep-keys` on that server.
 *
 * Reported: records/s and MB/s (record data) of each; restore against the zstd ceiling and
 * against the combined ceiling 1 / (1/zstd + 1/append) (the target: >= 80%).
 */
#include "bench.h"

#include "archive/archive_format.h"
#include "common/clock.h"
#include "log/shard_log.h"
#include "stream/stream_meta.h"

#include <sluice/client.h>
#include <sluice/errors.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int bench_replay_main(int argc, char **argv);

#define STREAM "bench"
/* Lines per object before it is cut, as a firehose with an 8 MiB buffer would. */
#define OBJECT_RAW_BYTES (8u << 20)
#define SHARDS_MAX 64
#define APPEND_BATCH 10000u
/* Objects handed to one zstd -d command line. */
#define ZSTD_ARGS_MAX 4000

struct rp_opts {
	uint64_t records;
	uint32_t size;
	uint32_t shards;
	enum bench_fsync fsync;
	uint32_t parallel; /* sluice restore --parallel; 0: its default */
	const char *dir;
	bool json, keep, no_replay;
};

struct gen {
	char root[PATH_MAX + 16];
	char **objects; /* paths, for zstd -d */
	size_t nobjects, cap;
	uint64_t object_bytes;
	uint64_t data_bytes;
	uint64_t per_shard[SHARDS_MAX];
};

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static const char *const words[] = {"page_view", "click", "add_to_cart", "purchase", "search",
				    "checkout",	 "login", "logout",	 "refund",   "share"};

/* Event-like text of exactly size bytes. */
static void make_data(uint64_t *rng, uint64_t i, char *out, uint32_t size)
{
	int n = snprintf(out, size + 1,
			 "{\"id\":%llu,\"event\":\"%s\",\"user\":%llu,\"amount\":%llu.%02llu,"
			 "\"page\":\"/p/%llu\",\"words\":\"",
			 (unsigned long long)i, words[rng_next(rng) % 10],
			 (unsigned long long)(rng_next(rng) % 1000000),
			 (unsigned long long)(rng_next(rng) % 1000),
			 (unsigned long long)(rng_next(rng) % 100),
			 (unsigned long long)(rng_next(rng) % 5000));
	size_t at = n < 0 ? 0 : ((uint32_t)n > size ? size : (size_t)n);
	while (at < size) {
		const char *w = words[rng_next(rng) % 10];
		for (; *w && at < size; w++)
			out[at++] = *w;
		if (at < size)
			out[at++] = ' ';
	}
	if (size >= 2) {
		out[size - 2] = '"';
		out[size - 1] = '}';
	}
}

static int mkdirs(const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

static int write_file(const char *path, const void *data, size_t len)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		int r = mkdirs(dir);
		if (r < 0)
			return r;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, data, len);
	int r = n == (ssize_t)len ? 0 : -EIO;
	close(fd);
	return r;
}

static int emit_object(struct gen *g, struct sl_archive_writer *w, uint32_t shard)
{
	const uint8_t *data;
	size_t len;
	int r = sl_archive_writer_finish(w, &data, &len);
	if (r < 0)
		return r;
	struct sl_archive_writer_info wi;
	sl_archive_writer_info(w, &wi);
	char key[SL_ARCHIVE_KEY_LEN_MAX];
	r = sl_archive_key("", STREAM, shard, wi.first_seq, wi.last_seq, wi.first_ts_ms, wi.ext,
			   key, sizeof(key));
	if (r < 0)
		return r;
	size_t plen = strlen(g->root) + 1 + (size_t)r + 1;
	char *path = malloc(plen);
	if (!path)
		return -ENOMEM;
	snprintf(path, plen, "%s/%s", g->root, key);
	r = write_file(path, data, len);
	if (r < 0) {
		free(path);
		return r;
	}
	if (g->nobjects == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 64;
		char **n = realloc(g->objects, cap * sizeof(*n));
		if (!n) {
			free(path);
			return -ENOMEM;
		}
		g->objects = n;
		g->cap = cap;
	}
	g->objects[g->nobjects++] = path;
	g->object_bytes += len;
	sl_archive_writer_reset(w);
	return 0;
}

/* Write the archive: records spread over shards by i % shards (routing is not the point). */
static int generate(const struct rp_opts *o, struct gen *g)
{
	char meta_path[PATH_MAX + 64];
	struct sl_stream_meta *meta;
	int r = sl_stream_meta_create(STREAM, o->shards, 24ll * 3600 * 1000, sl_wall_ms(), &meta);
	if (r < 0)
		return bench_fail("stream layout: %s", sluice_strerror(r));
	char *json;
	size_t jlen;
	r = sl_stream_meta_to_json(meta, &json, &jlen);
	sl_stream_meta_destroy(meta);
	if (r < 0)
		return bench_fail("stream layout: %s", sluice_strerror(r));
	snprintf(meta_path, sizeof(meta_path), "%s/_meta/" STREAM ".json", g->root);
	r = write_file(meta_path, json, jlen);
	free(json);
	if (r < 0)
		return bench_fail("%s: %s", meta_path, strerror(-r));

	struct sl_archive_writer *w[SHARDS_MAX] = {0};
	for (uint32_t s = 0; s < o->shards; s++) {
		r = sl_archive_writer_create(STREAM, s, NULL, &w[s]);
		if (r < 0)
			return bench_fail("archive writer: %s", sluice_strerror(r));
	}
	char *data = malloc(o->size + 1);
	uint64_t rng = 0x9E3779B97F4A7C15ull;
	int64_t ts0 = sl_wall_ms() - 3600 * 1000; /* an hour ago: well inside the retention */
	for (uint64_t i = 0; r == 0 && i < o->records && !bench_stop; i++) {
		uint32_t s = (uint32_t)(i % o->shards);
		char key[32];
		int klen = snprintf(key, sizeof(key), "user-%06llu",
				    (unsigned long long)(rng_next(&rng) % 1000000));
		make_data(&rng, i, data, o->size);
		struct sluice_record rec = {
		    .seq = ++g->per_shard[s],
		    .ts_ms = ts0 + (int64_t)(i / 1000),
		    .key = key,
		    .key_len = (uint16_t)klen,
		    .data = (const uint8_t *)data,
		    .data_len = o->size,
		};
		r = sl_archive_writer_add(w[s], &rec);
		g->data_bytes += o->size;
		struct sl_archive_writer_info wi;
		sl_archive_writer_info(w[s], &wi);
		if (r == 0 && wi.raw_bytes >= OBJECT_RAW_BYTES)
			r = emit_object(g, w[s], s);
	}
	for (uint32_t s = 0; s < o->shards; s++) {
		struct sl_archive_writer_info wi;
		sl_archive_writer_info(w[s], &wi);
		if (r == 0 && wi.records)
			r = emit_object(g, w[s], s);
		sl_archive_writer_destroy(w[s]);
	}
	free(data);
	return r < 0 ? bench_fail("writing the archive: %s", sluice_strerror(r)) : 0;
}

/* ---- children: zstd -d and the sluice CLI ---- */

struct child_result {
	int status; /* exit code, or -1 */
	double wall_s;
	double cpu_s;
	uint64_t maxrss_kib;
};

/* Run argv with stdout to out_path (NULL: /dev/null) and stderr to err_path (NULL: inherit). */
static int run_child(char *const argv[], const char *out_path, const char *err_path,
		     struct child_result *res)
{
	int64_t t0 = sl_mono_ns();
	pid_t pid = fork();
	if (pid < 0)
		return bench_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(out_path ? out_path : "/dev/null",
			      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0)
			dup2(fd, STDOUT_FILENO);
		if (err_path) {
			int efd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (efd >= 0)
				dup2(efd, STDERR_FILENO);
		}
		execvp(argv[0], argv);
		dprintf(STDERR_FILENO, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	int status;
	struct rusage ru;
	while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
		;
	res->wall_s = (double)(sl_mono_ns() - t0) / 1e9;
	res->cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	res->maxrss_kib = (uint64_t)ru.ru_maxrss;
	res->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	return 0;
}

static void find_cli(char *buf, size_t len)
{
	char self[PATH_MAX - 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, len, "%s/../tools/cli/sluice", self);
			if (access(buf, X_OK) == 0)
				return;
		}
	}
	snprintf(buf, len, "sluice");
}

static uint64_t proc_hwm_kib(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	unsigned long long v = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %llu kB", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

/*
 * CPU time (user + system) a process has used so far, from /proc/PID/stat; -1 if unreadable.
 * sluiced's share of a restore is the server side of the work (receive, append, fsync).
 */
static double proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	/* Fields after the command name (which may hold spaces): state is field 3, utime 14. */
	const char *p = strrchr(buf, ')');
	unsigned long long utime, stime;
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
			 &stime) != 2)
		return -1;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* zstd -d on every object, in command lines of ZSTD_ARGS_MAX objects. */
static int zstd_ceiling(const struct gen *g, struct child_result *total)
{
	memset(total, 0, sizeof(*total));
	char **argv = calloc(ZSTD_ARGS_MAX + 8, sizeof(*argv));
	if (!argv)
		return bench_fail("out of memory");
	for (size_t at = 0; at < g->nobjects; at += ZSTD_ARGS_MAX) {
		size_t n = g->nobjects - at < ZSTD_ARGS_MAX ? g->nobjects - at : ZSTD_ARGS_MAX;
		size_t k = 0;
		argv[k++] = "zstd";
		argv[k++] = "-d";
		argv[k++] = "-T1";
		argv[k++] = "-q";
		argv[k++] = "-c";
		for (size_t i = 0; i < n; i++)
			argv[k++] = g->objects[at + i];
		argv[k] = NULL;
		struct child_result r;
		if (run_child(argv, NULL, NULL, &r) < 0 || r.status != 0) {
			free(argv);
			return bench_fail("zstd -d failed (exit %d): is the zstd CLI installed?",
					  r.status);
		}
		total->wall_s += r.wall_s;
		total->cpu_s += r.cpu_s;
	}
	free(argv);
	return 0;
}

static void no_done(void *ctx, int status, uint64_t first_seq, uint32_t count)
{
	(void)ctx;
	(void)status;
	(void)first_seq;
	(void)count;
}

/* In-process appends of the same records, one sync per batch of APPEND_BATCH, shard by shard. */
static int append_ceiling(const struct rp_opts *o, const char *scratch, double *ret_s)
{
	struct sl_record_in *recs = calloc(APPEND_BATCH, sizeof(*recs));
	char *data = malloc(o->size + 1);
	char(*keys)[16] = calloc(APPEND_BATCH, 16);
	if (!recs || !data || !keys) {
		free(recs);
		free(data);
		free(keys);
		return bench_fail("out of memory");
	}
	uint64_t rng = 42;
	make_data(&rng, 0, data, o->size);
	for (uint32_t i = 0; i < APPEND_BATCH; i++) {
		int n = snprintf(keys[i], 16, "user-%06u", i % 1000000);
		recs[i] = (struct sl_record_in){.key = (const uint8_t *)keys[i],
						.key_len = (uint16_t)n,
						.data = (const uint8_t *)data,
						.data_len = o->size};
	}
	int r = 0;
	int64_t t0 = sl_mono_ns();
	uint64_t per = o->records / o->shards;
	for (uint32_t s = 0; r == 0 && s < o->shards; s++) {
		char dir[PATH_MAX + 32];
		snprintf(dir, sizeof(dir), "%s/append-ceiling/%u", scratch, s);
		struct sl_shard_log_config cfg = {
		    .dir = dir,
		    .fsync_mode = o->fsync == BENCH_FSYNC_NEVER ? SL_FSYNC_NEVER : SL_FSYNC_GROUP};
		struct sl_shard_log *log;
		r = sl_shard_log_open(&cfg, &log);
		for (uint64_t done = 0; r == 0 && done < per && !bench_stop;) {
			uint32_t n =
			    per - done < APPEND_BATCH ? (uint32_t)(per - done) : APPEND_BATCH;
			r = sl_shard_log_append(log, recs, n, sl_wall_ms(), no_done, NULL, NULL);
			if (r == 0 && o->fsync != BENCH_FSYNC_NEVER)
				r = sl_shard_log_sync(log, sl_wall_ms());
			done += n;
		}
		if (r == 0 || log)
			sl_shard_log_close(log);
	}
	*ret_s = (double)(sl_mono_ns() - t0) / 1e9;
	free(recs);
	free(data);
	free(keys);
	return r < 0 ? bench_fail("append ceiling: %s", sluice_strerror(r)) : 0;
}

/* Sum over shards of next_seq - start_seq, and check it per shard against want (may be NULL). */
static int stored_records(const char *addr, const char *stream, const uint64_t *want, uint64_t *ret)
{
	struct sluice_client *c;
	int r = sluice_client_connect(addr, NULL, &c);
	if (r < 0)
		return bench_fail("connect %s: %s", addr, sluice_strerror(r));
	struct sluice_stream_info *info;
	r = sluice_stream_describe(c, stream, &info);
	if (r < 0) {
		sluice_client_close(c);
		return bench_fail("describe %s: %s", stream, sluice_strerror(r));
	}
	uint64_t sum = 0;
	for (size_t i = 0; i < info->shard_count; i++) {
		uint64_t n = info->shards[i].next_seq - info->shards[i].start_seq;
		if (want && info->shards[i].shard_id < SHARDS_MAX &&
		    n != want[info->shards[i].shard_id])
			r = bench_fail(
			    "shard %u holds %llu records after the restore, the archive %llu",
			    info->shards[i].shard_id, (unsigned long long)n,
			    (unsigned long long)want[info->shards[i].shard_id]);
		sum += n;
	}
	sluice_stream_info_free(info);
	sluice_client_close(c);
	*ret = sum;
	return r;
}

static const char rp_usage[] = "usage: sluice-bench replay [options]\n"
			       "  --records N      records in the archive (default 1000000)\n"
			       "  --size BYTES     record data size (default 256)\n"
			       "  --shards N       shards (default 4, at most 64)\n"
			       "  --fsync MODE     sluiced's --fsync: group (default) or never\n"
			       "  --parallel N     sluice restore --parallel N (default 2)\n"
			       "  --no-replay      restore only\n"
			       "  --dir DIR        scratch folder parent (default .)\n"
			       "  --json, --keep\n";

int bench_replay_main(int argc, char **argv)
{
	struct rp_opts o = {.records = 1000000, .size = 256, .shards = 4};
	for (int i = 2; i < argc; i++) {
		const char *f = argv[i];
		if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
			fputs(rp_usage, stdout);
			return 0;
		}
		if (!strcmp(f, "--json") || !strcmp(f, "--keep") || !strcmp(f, "--no-replay")) {
			o.json |= !strcmp(f, "--json");
			o.keep |= !strcmp(f, "--keep");
			o.no_replay |= !strcmp(f, "--no-replay");
			continue;
		}
		if (i + 1 >= argc) {
			bench_fail("unknown flag or missing value: %s", f);
			return 2;
		}
		const char *v = argv[++i];
		char *end;
		unsigned long long n = strtoull(v, &end, 10);
		bool num = *v && !*end;
		if (!strcmp(f, "--records") && num && n > 0 && n <= BENCH_RECORDS_MAX)
			o.records = n;
		else if (!strcmp(f, "--size") && num && n >= 64 && n <= BENCH_SIZE_MAX)
			o.size = (uint32_t)n;
		else if (!strcmp(f, "--shards") && num && n >= 1 && n <= SHARDS_MAX)
			o.shards = (uint32_t)n;
		else if (!strcmp(f, "--fsync") && (!strcmp(v, "group") || !strcmp(v, "never")))
			o.fsync = !strcmp(v, "group") ? BENCH_FSYNC_GROUP : BENCH_FSYNC_NEVER;
		else if (!strcmp(f, "--parallel") && num && n >= 1 && n <= 16)
			o.parallel = (uint32_t)n;
		else if (!strcmp(f, "--dir"))
			o.dir = v;
		else {
			bench_fail("bad flag or value: %s %s (see --help)", f, v);
			return 2;
		}
	}
	struct sigaction sa = {.sa_handler = SIG_IGN};
	sigaction(SIGPIPE, &sa, NULL);
	FILE *out = o.json ? stderr : stdout;
	char scratch[PATH_MAX], abs[PATH_MAX];
	snprintf(scratch, sizeof(scratch), "%s/sluice-bench-replay-XXXXXX", o.dir ? o.dir : ".");
	if (!mkdtemp(scratch) || !realpath(scratch, abs)) {
		bench_fail("cannot create a scratch folder in %s: %s", o.dir ? o.dir : ".",
			   strerror(errno));
		return 1;
	}
	struct gen g = {0};
	snprintf(g.root, sizeof(g.root), "%s/archive", abs);
	struct bench_server srv = {0};
	int ret = -1;
	int64_t t0 = sl_mono_ns();
	if (generate(&o, &g) < 0)
		goto out;
	fprintf(out,
		"archive: %llu records of %u bytes in %u shards: %zu objects, %.1f MB (%.1f MB of "
		"data), generated in %.1fs\n",
		(unsigned long long)o.records, o.size, o.shards, g.nobjects, g.object_bytes / 1e6,
		g.data_bytes / 1e6, (double)(sl_mono_ns() - t0) / 1e9);
	struct child_result z;
	if (zstd_ceiling(&g, &z) < 0)
		goto out;
	double zstd_rate = (double)o.records / z.wall_s;
	fprintf(out, "zstd -d -T1:    %.2fs (%.2fs CPU): %.0f records/s, %.1f MB/s of data\n",
		z.wall_s, z.cpu_s, zstd_rate, g.data_bytes / 1e6 / z.wall_s);
	double append_s = 0;
	if (append_ceiling(&o, abs, &append_s) < 0)
		goto out;
	double append_rate = (double)o.records / append_s;
	fprintf(out, "log append:     %.2fs: %.0f records/s (batches of %u, %s)\n", append_s,
		append_rate, APPEND_BATCH,
		o.fsync == BENCH_FSYNC_NEVER ? "no fsync" : "fsync each");
	if (bench_server_start(abs, o.fsync, &srv) < 0)
		goto out;
	char cli[PATH_MAX], from[PATH_MAX + 32], err_path[PATH_MAX + 32];
	find_cli(cli, sizeof(cli));
	snprintf(from, sizeof(from), "file://%s", g.root);
	snprintf(err_path, sizeof(err_path), "%s/restore.log", abs);
	char par[16];
	snprintf(par, sizeof(par), "%u", o.parallel ? o.parallel : 2);
	char *rargv[] = {cli,	     "--server", srv.addr,     "restore", "--from", from,
			 "--stream", STREAM,	 "--parallel", par,	  NULL};
	struct child_result rs;
	double server_cpu0 = proc_cpu_s(srv.pid);
	if (run_child(rargv, NULL, err_path, &rs) < 0)
		goto out;
	double server_cpu_s = proc_cpu_s(srv.pid) - server_cpu0;
	if (rs.status != 0) {
		bench_fail("sluice restore exited %d (see %s)", rs.status, err_path);
		o.keep = true;
		goto out;
	}
	uint64_t stored;
	if (stored_records(srv.addr, STREAM, g.per_shard, &stored) < 0 || stored != o.records) {
		o.keep = true;
		goto out;
	}
	double restore_rate = (double)o.records / rs.wall_s;
	double combined = 1.0 / (1.0 / zstd_rate + 1.0 / append_rate);
	fprintf(out,
		"restore:        %.2fs (CLI %.2fs CPU, peak RSS %.1f MiB; sluiced %.2fs CPU): %.0f "
		"records/s, %.1f MB/s of data; %.0f%% of zstd -d, %.0f%% of zstd -d + append "
		"(target 80%%)\n",
		rs.wall_s, rs.cpu_s, rs.maxrss_kib / 1024.0, server_cpu_s, restore_rate,
		g.data_bytes / 1e6 / rs.wall_s, restore_rate / zstd_rate * 100,
		restore_rate / combined * 100);
	struct child_result rp = {0};
	uint64_t copied = 0;
	if (!o.no_replay) {
		if (bench_stream_create(srv.addr, "copy", o.shards) < 0)
			goto out;
		snprintf(err_path, sizeof(err_path), "%s/replay.log", abs);
		char *pargv[] = {cli,	  "--server", srv.addr, "replay",      STREAM, "--from",
				 "seq:1", "--into",   "copy",	"--keep-keys", NULL};
		if (run_child(pargv, NULL, err_path, &rp) < 0)
			goto out;
		if (rp.status != 0) {
			bench_fail("sluice replay exited %d (see %s)", rp.status, err_path);
			o.keep = true;
			goto out;
		}
		if (stored_records(srv.addr, "copy", NULL, &copied) < 0 || copied != o.records) {
			bench_fail("replay copied %llu records of %llu", (unsigned long long)copied,
				   (unsigned long long)o.records);
			goto out;
		}
		fprintf(out,
			"replay:         %.2fs (CLI %.2fs CPU, peak RSS %.1f MiB): %.0f records/s, "
			"%.1f MB/s of data\n",
			rp.wall_s, rp.cpu_s, rp.maxrss_kib / 1024.0, (double)o.records / rp.wall_s,
			g.data_bytes / 1e6 / rp.wall_s);
	}
	uint64_t server_hwm = proc_hwm_kib(srv.pid);
	fprintf(out, "sluiced peak RSS: %.1f MiB\n", server_hwm / 1024.0);
	if (o.json) {
		struct bench_json j;
		bench_json_begin(&j, "replay");
		bench_json_u64(&j, "records", o.records);
		bench_json_u64(&j, "size", o.size);
		bench_json_u64(&j, "shards", o.shards);
		bench_json_u64(&j, "objects", g.nobjects);
		bench_json_u64(&j, "object_bytes", g.object_bytes);
		bench_json_num(&j, "zstd_records_per_s", zstd_rate);
		bench_json_num(&j, "append_records_per_s", append_rate);
		bench_json_num(&j, "restore_records_per_s", restore_rate);
		bench_json_num(&j, "restore_mb_per_s", g.data_bytes / 1e6 / rs.wall_s);
		bench_json_num(&j, "restore_vs_zstd", restore_rate / zstd_rate);
		bench_json_num(&j, "restore_vs_zstd_plus_append", restore_rate / combined);
		bench_json_u64(&j, "restore_cli_peak_rss_kib", rs.maxrss_kib);
		bench_json_num(&j, "restore_sluiced_cpu_s", server_cpu_s);
		bench_json_u64(&j, "restored_records", stored);
		if (!o.no_replay) {
			bench_json_num(&j, "replay_records_per_s", (double)o.records / rp.wall_s);
			bench_json_num(&j, "replay_mb_per_s", g.data_bytes / 1e6 / rp.wall_s);
			bench_json_u64(&j, "replay_cli_peak_rss_kib", rp.maxrss_kib);
			bench_json_u64(&j, "replayed_records", copied);
		}
		bench_json_u64(&j, "sluiced_peak_rss_kib", server_hwm);
		bench_json_end(&j);
	}
	ret = 0;
out:
	bench_server_stop(&srv);
	for (size_t i = 0; i < g.nobjects; i++)
		free(g.objects[i]);
	free(g.objects);
	if (!o.keep) {
		char cmd[PATH_MAX + 32];
		snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", abs);
		if (system(cmd) != 0)
			fprintf(stderr, "sluice-bench: could not remove %s\n", abs);
	} else {
		fprintf(stderr, "kept %s\n", abs);
	}
	return ret == 0 ? 0 : 1;
}
