/*
 * `sluice-bench reshard`: what resharding costs producers, and how long a reshard takes under
 * load.
 *
 * One sluiced (spawned with the first --fsync mode, or --server), two streams of S shards (the
 * last --shards value, default 4), the same producer load on each (C connections = the last
 * --connections value, records of the first --sizes value, --records / --seconds bounds):
 *   1. baseline   the load alone;
 *   2. resharding the load while one more connection reshards the stream every RESHARD_EVERY_MS,
 *                 scaling it S -> 2S -> S -> ... (each scale is S splits or S merges, so every
 *                 record's shard is sealed and replaced once per scale).
 * Reported: records/s and produce latency (p50, p99) of both phases and their ratio, measured
 * in the same run (the machine is shared: compare ratios, not absolute figures), the number of
 * reshards and their latency (request to answer: sealing, waiting for the parents' appends to
 * be durable, the metadata fsync, publication), and the records that failed (must be 0: a
 * reshard never refuses or loses a write).
 */
#include "bench.h"
#include "diskbw.h"

#include "common/clock.h"

#include <sluice/client.h>
#include <sluice/errors.h>

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A reshard every this often: far more often than any real stream is resharded, so the cost of
 * each cut-over shows, without the stream being in one cut-over after the other. */
#define RESHARD_EVERY_MS 250

struct resharder {
	const char *addr;
	const char *stream;
	uint32_t shards;
	atomic_bool stop;
	uint64_t count;
	int err;
	struct bench_hist lat; /* ns per reshard */
};

static void *resharder_main(void *arg)
{
	struct resharder *rs = arg;
	struct sluice_client *c;
	int r = sluice_client_connect(rs->addr, NULL, &c);
	if (r < 0) {
		rs->err = r;
		return NULL;
	}
	bool up = true;
	while (!atomic_load(&rs->stop) && !bench_stop) {
		int64_t t0 = sl_mono_ns();
		r = sluice_stream_scale(c, rs->stream, up ? 2 * rs->shards : rs->shards);
		if (r < 0) {
			rs->err = r;
			break;
		}
		int64_t took = sl_mono_ns() - t0;
		bench_hist_record(&rs->lat, (uint64_t)took);
		rs->count++;
		up = !up;
		/* Sleep in small steps so the end of the produce phase stops this promptly. */
		for (int64_t left = RESHARD_EVERY_MS * 1000000ll - took;
		     left > 0 && !atomic_load(&rs->stop) && !bench_stop; left -= 10000000)
			nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
	}
	sluice_client_close(c);
	return NULL;
}

static double rate(const struct bench_produce_result *p)
{
	return p->seconds > 0 ? (double)p->acked / p->seconds : 0;
}

static int run(const struct bench_args *a, const char *addr)
{
	uint32_t shards = a->shards[a->nshards - 1];
	uint32_t conns = a->connections[a->nconnections - 1];
	uint32_t size = a->sizes[0];
	if (2 * shards > SLUICE_SHARDS_MAX)
		return bench_fail("--shards %u: scaling to twice that is over %u", shards,
				  SLUICE_SHARDS_MAX);
	FILE *out = bench_out(a);
	struct bench_produce_result base, live;
	if (bench_stream_create(addr, "reshard-base", shards) < 0 ||
	    bench_stream_create(addr, "reshard-live", shards) < 0)
		return -1;
	int r = bench_produce_drive(a, addr, "reshard-base", a->records, size, conns, &base);
	if (r < 0)
		return r;

	struct resharder rs = {.addr = addr, .stream = "reshard-live", .shards = shards};
	atomic_init(&rs.stop, false);
	bench_hist_init(&rs.lat);
	pthread_t th;
	r = pthread_create(&th, NULL, resharder_main, &rs);
	if (r != 0)
		return bench_fail("cannot start the resharding thread: %s", strerror(r));
	r = bench_produce_drive(a, addr, "reshard-live", a->records, size, conns, &live);
	atomic_store(&rs.stop, true);
	pthread_join(th, NULL);
	if (r < 0)
		return r;
	if (rs.err < 0)
		return bench_fail("reshard failed: %s", sluice_strerror(rs.err));

	double ratio = rate(&base) > 0 ? rate(&live) / rate(&base) : 0;
	char rb[32], rl[32];
	bench_fmt_rate(rate(&base), rb, sizeof(rb));
	bench_fmt_rate(rate(&live), rl, sizeof(rl));
	fprintf(out, "%u shards <-> %u, %u connections, %u-byte records, fsync %s\n", shards,
		2 * shards, conns, size, a->server ? "(server's)" : bench_fsync_name(a->fsyncs[0]));
	fprintf(out,
		"  %-11s %10s rec/s  p50 %8.2f ms  p99 %8.2f ms  (%llu records, %llu failed)\n",
		"baseline", rb, bench_hist_quantile(&base.lat, 0.50) / 1e6,
		bench_hist_quantile(&base.lat, 0.99) / 1e6, (unsigned long long)base.acked,
		(unsigned long long)base.failed);
	fprintf(out,
		"  %-11s %10s rec/s  p50 %8.2f ms  p99 %8.2f ms  (%llu records, %llu failed)\n",
		"resharding", rl, bench_hist_quantile(&live.lat, 0.50) / 1e6,
		bench_hist_quantile(&live.lat, 0.99) / 1e6, (unsigned long long)live.acked,
		(unsigned long long)live.failed);
	fprintf(out, "  throughput while resharding: %.0f%% of the baseline\n", ratio * 100);
	fprintf(out, "  %llu reshards, latency p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
		(unsigned long long)rs.count, bench_hist_quantile(&rs.lat, 0.50) / 1e6,
		bench_hist_quantile(&rs.lat, 0.99) / 1e6, bench_hist_quantile(&rs.lat, 1.0) / 1e6);
	if (a->json) {
		struct bench_json j;
		bench_json_begin(&j, "reshard");
		bench_json_u64(&j, "shards", shards);
		bench_json_u64(&j, "connections", conns);
		bench_json_u64(&j, "size", size);
		bench_json_num(&j, "baseline_records_per_s", rate(&base));
		bench_json_num(&j, "resharding_records_per_s", rate(&live));
		bench_json_num(&j, "ratio", ratio);
		bench_json_num(&j, "baseline_p99_ms", bench_hist_quantile(&base.lat, 0.99) / 1e6);
		bench_json_num(&j, "resharding_p99_ms", bench_hist_quantile(&live.lat, 0.99) / 1e6);
		bench_json_u64(&j, "reshards", rs.count);
		bench_json_num(&j, "reshard_p50_ms", bench_hist_quantile(&rs.lat, 0.50) / 1e6);
		bench_json_num(&j, "reshard_p99_ms", bench_hist_quantile(&rs.lat, 0.99) / 1e6);
		bench_json_u64(&j, "failed", base.failed + live.failed);
		bench_json_end(&j);
	}
	if (base.failed || live.failed)
		return bench_fail(
		    "%llu records failed (first: %s)",
		    (unsigned long long)(base.failed + live.failed),
		    sluice_strerror(base.failed ? base.first_error : live.first_error));
	if (rs.count == 0)
		return bench_fail("no reshard finished within the run");
	return 0;
}

int bench_reshard_main(struct bench_args *a)
{
	if (a->server)
		return run(a, a->server);
	char scratch[PATH_MAX];
	int r = bench_scratch_create(a->dir, scratch, sizeof(scratch));
	if (r < 0)
		return bench_fail("cannot create a scratch folder in %s: %s", a->dir ? a->dir : ".",
				  strerror(-r));
	struct bench_server srv = {0};
	int ret = bench_server_start(scratch, a->fsyncs[0], &srv);
	if (ret == 0)
		ret = run(a, srv.addr);
	if (bench_server_stop(&srv) != 0 && ret == 0)
		ret = bench_fail("sluiced did not stop cleanly (log: %s)", srv.log_path);
	if (!a->keep) {
		r = bench_rm_rf(scratch);
		if (r < 0 && ret == 0)
			ret = bench_fail("cannot remove %s: %s", scratch, strerror(-r));
	}
	return ret;
}
