/*
 * `sluice-bench produce`: records/s, MB/s and per-record ack latency through sluiced, with
 * libsluice async producers (one producer = one connection = one sending thread).
 *
 * Each row: a fresh stream of `shards` shards; `connections` threads each create a producer,
 * meet at a barrier, then send their share of --records (distinct partition keys, so records
 * spread over the shards) until done or --seconds, and flush. The clock runs from the barrier to
 * the last flush returning, so the figure includes draining every acknowledgement. The row
 * fails if any record is not acknowledged.
 */
#include "bench.h"
#include "diskbw.h"

#include "common/clock.h"

#include <sluice/client.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long a flush may wait for the last acknowledgements (group commit on a slow disk). */
#define PRODUCE_FLUSH_TIMEOUT_MS 120000
/* The time limit and the stop flag are checked every this many sends. */
#define PRODUCE_CHECK_EVERY 256u
/* Streams are created with this retention; they are deleted after the row anyway. */
#define PRODUCE_RETENTION_MS (24ull * 3600 * 1000)
/* Distinct data offsets: records differ without a per-record copy. */
#define PRODUCE_DATA_SPREAD 256u

/*
 * The callback context carries the send time and the sending thread in the pointer itself
 * (thread index in the top bits, ns since the run's epoch below), so that nothing is allocated
 * per record and a run of any length needs no per-record memory.
 */
#define CTX_THREAD_SHIFT 58
#define CTX_NS_MASK ((1ull << CTX_THREAD_SHIFT) - 1)

struct prod_thread {
	pthread_t th;
	uint32_t idx;
	const struct bench_args *a;
	const char *addr;
	const char *stream;
	uint64_t records;
	uint32_t size;
	pthread_barrier_t *barrier;
	/* Written by the sending thread. */
	int err;
	uint64_t sent;
	int64_t t_start, t_end;
	/* Written by the producer's I/O thread only (callbacks); read after destroy. */
	uint64_t acked;
	uint64_t failed;
	int first_error;
	uint64_t per_shard[BENCH_SHARDS_MAX];
	struct bench_hist lat;
};

/* One drive at a time: the callbacks find their thread here. */
static struct prod_thread *g_threads;
static int64_t g_epoch_ns;

static void on_ack(void *ctx, int status, uint32_t shard_id, uint64_t seq)
{
	(void)seq;
	uint64_t v = (uint64_t)(uintptr_t)ctx;
	struct prod_thread *t = &g_threads[v >> CTX_THREAD_SHIFT];
	int64_t sent_ns = g_epoch_ns + (int64_t)(v & CTX_NS_MASK);
	if (status == 0) {
		t->acked++;
		bench_hist_record(&t->lat, (uint64_t)(sl_mono_ns() - sent_ns));
		if (shard_id < BENCH_SHARDS_MAX)
			t->per_shard[shard_id]++;
	} else {
		t->failed++;
		if (!t->first_error)
			t->first_error = status;
	}
}

/* The last 8 characters of the key become the hex of n; cheaper than snprintf per record. */
static void key_set_counter(char *key, uint32_t key_len, uint64_t n)
{
	static const char hex[] = "0123456789abcdef";
	uint32_t digits = key_len < 8 ? key_len : 8;
	for (uint32_t i = 0; i < digits; i++) {
		key[key_len - 1 - i] = hex[n & 15];
		n >>= 4;
	}
}

static void *prod_main(void *arg)
{
	struct prod_thread *t = arg;
	const struct bench_args *a = t->a;
	struct sluice_producer_options o = {
	    .max_records_per_request = a->request_records,
	    .linger_ms = a->linger_set ? (int)a->linger_ms : 0,
	    .connections = 1,
	};
	if (a->linger_set && a->linger_ms == 0)
		o.linger_ms = -1; /* 0 would select the default: ask for no lingering */
	struct sluice_producer *p = NULL;
	char key[SLUICE_KEY_LEN_MAX];
	uint8_t *data = malloc((size_t)t->size + PRODUCE_DATA_SPREAD);
	int r = data ? sluice_producer_create(t->addr, &o, &p) : -ENOMEM;
	if (r < 0)
		t->err = r;
	/* Everyone meets here, failed or not, so nobody waits forever. */
	pthread_barrier_wait(t->barrier);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < (size_t)t->size + PRODUCE_DATA_SPREAD; i++)
		data[i] = (uint8_t)('a' + (i + t->idx) % 26);
	memset(key, 'k', a->key_bytes);
	if (a->key_bytes > 10)
		key[0] = (char)('A' + t->idx % 26);
	int64_t limit_ns = (int64_t)(a->seconds * 1e9);
	t->t_start = sl_mono_ns();
	for (uint64_t i = 0; i < t->records; i++) {
		if (i % PRODUCE_CHECK_EVERY == 0 &&
		    (bench_stop || sl_mono_ns() - t->t_start >= limit_ns))
			break;
		/* The thread index goes into the key too, so that threads do not share keys. */
		key_set_counter(key, a->key_bytes, i * BENCH_CONNECTIONS_MAX + t->idx);
		int64_t now = sl_mono_ns();
		uint64_t ctx = ((uint64_t)t->idx << CTX_THREAD_SHIFT) |
			       ((uint64_t)(now - g_epoch_ns) & CTX_NS_MASK);
		r = sluice_producer_send(p, t->stream, key, a->key_bytes,
					 data + i % PRODUCE_DATA_SPREAD, t->size, on_ack,
					 (void *)(uintptr_t)ctx);
		if (r < 0) {
			t->err = r;
			break;
		}
		t->sent++;
	}
	r = sluice_producer_flush(p, PRODUCE_FLUSH_TIMEOUT_MS);
	if (r < 0 && !t->err)
		t->err = r;
	t->t_end = sl_mono_ns();
out:
	/* Joins the I/O thread: its writes to *t are visible after this. */
	sluice_producer_destroy(p);
	free(data);
	return NULL;
}

int bench_produce_drive(const struct bench_args *a, const char *addr, const char *stream,
			uint64_t records, uint32_t size, uint32_t connections,
			struct bench_produce_result *ret)
{
	struct prod_thread *th = calloc(connections, sizeof(*th));
	if (!th)
		return bench_fail("out of memory");
	pthread_barrier_t barrier;
	pthread_barrier_init(&barrier, NULL, connections);
	g_threads = th;
	g_epoch_ns = sl_mono_ns();
	uint32_t started = 0;
	int ret_code = 0;
	for (uint32_t i = 0; i < connections; i++) {
		struct prod_thread *t = &th[i];
		t->idx = i;
		t->a = a;
		t->addr = addr;
		t->stream = stream;
		t->size = size;
		t->records = records / connections + (i < records % connections ? 1 : 0);
		t->barrier = &barrier;
		bench_hist_init(&t->lat);
		int r = pthread_create(&t->th, NULL, prod_main, t);
		if (r != 0) {
			/* The barrier waits for `connections`: give up hard rather than hang. */
			bench_fail("cannot start a producer thread: %s", strerror(r));
			exit(1);
		}
		started++;
	}
	for (uint32_t i = 0; i < started; i++)
		pthread_join(th[i].th, NULL);
	pthread_barrier_destroy(&barrier);

	memset(ret, 0, sizeof(*ret));
	bench_hist_init(&ret->lat);
	int64_t t0 = INT64_MAX, t1 = 0;
	for (uint32_t i = 0; i < connections; i++) {
		struct prod_thread *t = &th[i];
		ret->sent += t->sent;
		ret->acked += t->acked;
		ret->failed += t->failed;
		if (!ret->first_error)
			ret->first_error = t->first_error;
		for (uint32_t s = 0; s < BENCH_SHARDS_MAX; s++)
			ret->per_shard[s] += t->per_shard[s];
		bench_hist_merge(&ret->lat, &t->lat);
		if (t->t_start && t->t_start < t0)
			t0 = t->t_start;
		if (t->t_end > t1)
			t1 = t->t_end;
		if (t->err && !ret_code)
			ret_code = bench_fail("producer %u: %s", i, sluice_strerror(t->err));
	}
	ret->seconds = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
	ret->data_bytes = ret->acked * size;
	free(th);
	g_threads = NULL;
	if (ret_code < 0)
		return ret_code;
	if (ret->failed)
		return bench_fail("%llu records failed: %s", (unsigned long long)ret->failed,
				  sluice_strerror(ret->first_error));
	if (ret->acked != ret->sent)
		return bench_fail("%llu of %llu records not acknowledged",
				  (unsigned long long)(ret->sent - ret->acked),
				  (unsigned long long)ret->sent);
	if (ret->acked == 0)
		return bench_fail("no record was acknowledged");
	return 0;
}

int bench_stream_create(const char *addr, const char *stream, uint32_t shards)
{
	struct sluice_client *c = NULL;
	int r = sluice_client_connect(addr, NULL, &c);
	if (r < 0)
		return bench_fail("cannot connect to %s: %s", addr, sluice_strerror(r));
	r = sluice_stream_create(c, stream, shards, PRODUCE_RETENTION_MS);
	if (r < 0) {
		bench_fail("cannot create stream %s: %s (%s)", stream, sluice_strerror(r),
			   sluice_client_last_error_message(c));
		sluice_client_close(c);
		return -1;
	}
	/* Wait (bounded) until the stream is ACTIVE. */
	int ret = -1;
	for (int i = 0; i < 1000 && !bench_stop; i++) {
		struct sluice_stream_info *info = NULL;
		r = sluice_stream_describe(c, stream, &info);
		if (r < 0) {
			bench_fail("cannot describe stream %s: %s", stream, sluice_strerror(r));
			break;
		}
		int status = info->status;
		sluice_stream_info_free(info);
		if (status == SLUICE_STREAM_ACTIVE) {
			ret = 0;
			break;
		}
		usleep(10000);
	}
	if (ret < 0 && r >= 0)
		bench_fail("stream %s did not become active", stream);
	sluice_client_close(c);
	return ret;
}

int bench_stream_delete(const char *addr, const char *stream)
{
	struct sluice_client *c = NULL;
	int r = sluice_client_connect(addr, NULL, &c);
	if (r == 0)
		r = sluice_stream_delete(c, stream);
	sluice_client_close(c);
	if (r < 0)
		return bench_fail("cannot delete stream %s: %s", stream, sluice_strerror(r));
	return 0;
}

/* ---- the subcommand ---- */

struct produce_row {
	const char *mode;
	uint32_t size, shards, connections;
	struct bench_produce_result res;
	double raw_bps;
};

static void print_header(FILE *f)
{
	fprintf(f, "%-6s %6s %6s %5s %9s | %10s %8s | %9s %6s | %8s %8s %8s\n", "fsync", "size",
		"shards", "conns", "records", "rec/s", "MB/s", "raw MB/s", "ratio", "p50 ms",
		"p99 ms", "p99.9 ms");
}

static void print_row(const struct bench_args *a, const struct produce_row *w)
{
	const struct bench_produce_result *r = &w->res;
	double rps = r->seconds > 0 ? (double)r->acked / r->seconds : 0;
	double mbps = rps * w->size / 1e6;
	double ratio = w->raw_bps > 0 ? mbps * 1e6 / w->raw_bps : 0;
	double p50 = (double)bench_hist_quantile(&r->lat, 0.50) / 1e6;
	double p99 = (double)bench_hist_quantile(&r->lat, 0.99) / 1e6;
	double p999 = (double)bench_hist_quantile(&r->lat, 0.999) / 1e6;
	char rs[32];
	bench_fmt_rate(rps, rs, sizeof(rs));
	FILE *f = bench_out(a);
	fprintf(f, "%-6s %6u %6u %5u %9llu | %10s %8.1f | %9.1f %5.0f%% | %8.2f %8.2f %8.2f\n",
		w->mode, w->size, w->shards, w->connections, (unsigned long long)r->acked, rs, mbps,
		w->raw_bps / 1e6, ratio * 100, p50, p99, p999);
	fflush(f);
	if (a->json) {
		struct bench_json j;
		bench_json_begin(&j, "produce");
		bench_json_str(&j, "fsync", w->mode);
		bench_json_u64(&j, "size", w->size);
		bench_json_u64(&j, "shards", w->shards);
		bench_json_u64(&j, "connections", w->connections);
		bench_json_u64(&j, "records", r->acked);
		bench_json_num(&j, "seconds", r->seconds);
		bench_json_num(&j, "records_per_s", rps);
		bench_json_num(&j, "mb_per_s", mbps);
		bench_json_num(&j, "raw_mb_per_s", w->raw_bps / 1e6);
		bench_json_num(&j, "ratio_to_raw", ratio);
		bench_json_num(&j, "ack_p50_ms", p50);
		bench_json_num(&j, "ack_p99_ms", p99);
		bench_json_num(&j, "ack_p999_ms", p999);
		bench_json_num(&j, "ack_mean_ms", bench_hist_mean(&r->lat) / 1e6);
		bench_json_num(&j, "ack_max_ms", (double)r->lat.max / 1e6);
		bench_json_end(&j);
	}
}

/*
 * The baseline for the produce path: sluiced appends one request's records per shard with one
 * write, so the write size is one full request (records x (data + key + framing), at most 1 MiB,
 * the producer's request cap); group mode adds an fdatasync per write.
 */
static int produce_baseline(const struct bench_args *a, const char *dir, uint32_t size,
			    enum bench_fsync mode, double *ret_bps)
{
	uint32_t per_request = a->request_records ? a->request_records : 500;
	uint64_t write_bytes = (uint64_t)per_request * (size + a->key_bytes + 32);
	if (write_bytes > (1u << 20))
		write_bytes = 1u << 20;
	uint64_t total = a->records * (uint64_t)(size + a->key_bytes + 32);
	if (total > (1ull << 30))
		total = 1ull << 30;
	struct diskbw_result res;
	int r = diskbw_measure(dir, (size_t)write_bytes, total, mode == BENCH_FSYNC_GROUP,
			       a->seconds, &res);
	if (r < 0)
		return bench_fail("baseline write in %s failed: %s", dir, strerror(-r));
	*ret_bps = res.bytes_per_s;
	return 0;
}

static void print_targets(const struct bench_args *a, const struct produce_row *rows, size_t n,
			  double device_bps)
{
	FILE *f = bench_out(a);
	fprintf(f, "\ntargets (reported, not asserted; best row of each kind):\n");
	static const char *modes[] = {"never", "group", "server"};
	for (size_t m = 0; m < 3; m++) {
		double best_100 = 0, best_ratio = 0;
		bool has_100 = false, has_1k = false;
		for (size_t i = 0; i < n; i++) {
			const struct produce_row *w = &rows[i];
			if (strcmp(w->mode, modes[m]) != 0)
				continue;
			double rps = w->res.seconds > 0 ? (double)w->res.acked / w->res.seconds : 0;
			if (w->size == 100) {
				has_100 = true;
				if (rps > best_100)
					best_100 = rps;
			}
			if (w->size == 1024 && w->raw_bps > 0) {
				has_1k = true;
				if (rps * w->size / w->raw_bps > best_ratio)
					best_ratio = rps * w->size / w->raw_bps;
			}
		}
		double want = m == 0 ? 2e6 : 1e6;
		if (has_100 && m < 2)
			fprintf(f, "  100 B %s: %.2f M records/s (target >= %.0f M): %s\n",
				modes[m], best_100 / 1e6, want / 1e6,
				best_100 >= want ? "met" : "MISSED");
		if (has_1k)
			fprintf(f,
				"  1 KiB %s: %.0f%% of its write baseline (target >= 50%%): %s\n",
				modes[m], best_ratio * 100, best_ratio >= 0.5 ? "met" : "MISSED");
		/* The page-cache baseline of `never` is memory bandwidth; the disk's own
		 * sequential bandwidth is the device figure. Report both. */
		double best_mbps = 0;
		for (size_t i = 0; i < n; i++) {
			const struct produce_row *w = &rows[i];
			if (strcmp(w->mode, modes[m]) != 0 || w->size != 1024 ||
			    w->res.seconds <= 0)
				continue;
			double bps = (double)w->res.acked * w->size / w->res.seconds;
			if (bps > best_mbps)
				best_mbps = bps;
		}
		if (has_1k && device_bps > 0)
			fprintf(f,
				"  1 KiB %s: %.0f%% of the device's sequential write bandwidth "
				"(%.0f MB/s: 1 MiB writes + one fdatasync) (target >= 50%%): %s\n",
				modes[m], best_mbps / device_bps * 100, device_bps / 1e6,
				best_mbps / device_bps >= 0.5 ? "met" : "MISSED");
	}
}

int bench_produce_main(struct bench_args *a)
{
	char scratch[PATH_MAX], fs[32];
	int r = bench_scratch_create(a->dir, scratch, sizeof(scratch));
	if (r < 0)
		return bench_fail("cannot create a scratch folder in %s: %s", a->dir ? a->dir : ".",
				  strerror(-r));
	bench_fs_name(scratch, fs, sizeof(fs));
	FILE *f = bench_out(a);
	size_t nmodes = a->server ? 1 : a->nfsyncs;
	size_t nrows = nmodes * a->nsizes * a->nshards * a->nconnections, k = 0;
	struct produce_row *rows = calloc(nrows, sizeof(*rows));
	int ret = rows ? 0 : bench_fail("out of memory");
	fprintf(f,
		"sluice-bench produce: %s, data %s (%s), up to %llu records or %.1f s per row, "
		"%u-byte keys\n",
		a->server ? a->server : "spawned sluiced", scratch, fs,
		(unsigned long long)a->records, a->seconds, a->key_bytes);
	if (bench_fs_is_memory(scratch))
		fprintf(f, "warning: %s is in memory (%s): the figures say nothing about a disk\n",
			scratch, fs);
	fprintf(f, "MB = 10^6 bytes of record data; latency = send() to callback per record; raw = "
		   "plain write() of one request's bytes (group: + fdatasync each); ratio = MB/s / "
		   "raw\n\n");
	if (ret == 0)
		print_header(f);
	for (size_t m = 0; m < nmodes && ret == 0; m++) {
		struct bench_server srv = {0};
		const char *addr = a->server;
		const char *mode = a->server ? "server" : bench_fsync_name(a->fsyncs[m]);
		if (!a->server) {
			if (bench_server_start(scratch, a->fsyncs[m], &srv) < 0) {
				ret = -1;
				break;
			}
			addr = srv.addr;
		}
		for (size_t s = 0; s < a->nsizes && ret == 0; s++) {
			double raw_bps = 0;
			if (produce_baseline(a, scratch, a->sizes[s],
					     a->server ? BENCH_FSYNC_GROUP : a->fsyncs[m],
					     &raw_bps) < 0) {
				ret = -1;
				break;
			}
			for (size_t h = 0; h < a->nshards && ret == 0; h++) {
				for (size_t c = 0; c < a->nconnections && ret == 0; c++) {
					struct produce_row *w = &rows[k];
					w->mode = mode;
					w->size = a->sizes[s];
					w->shards = a->shards[h];
					w->connections = a->connections[c];
					w->raw_bps = raw_bps;
					char stream[SLUICE_NAME_LEN_MAX];
					snprintf(stream, sizeof(stream), "bench-%ld-%s-%u-%u-%u",
						 (long)getpid(), mode, w->size, w->shards,
						 w->connections);
					ret = bench_stream_create(addr, stream, w->shards);
					if (ret < 0)
						break;
					bench_syncfs(scratch);
					ret = bench_produce_drive(a, addr, stream, a->records,
								  w->size, w->connections, &w->res);
					int d = bench_stream_delete(addr, stream);
					if (ret == 0)
						ret = d;
					if (ret == 0 && bench_stop)
						ret = bench_fail("interrupted");
					if (ret == 0) {
						print_row(a, w);
						k++;
					}
				}
			}
		}
		if (bench_server_stop(&srv) < 0 && ret == 0)
			ret = bench_fail("sluiced did not exit cleanly (see %s)", srv.log_path);
	}
	double device_bps = 0;
	if (ret == 0) {
		struct diskbw_result dev;
		if (diskbw_measure_device(scratch, 1ull << 30, a->seconds, &dev) == 0)
			device_bps = dev.bytes_per_s;
		print_targets(a, rows, k, device_bps);
	}
	free(rows);
	if (!a->keep) {
		r = bench_rm_rf(scratch);
		if (r < 0 && ret == 0)
			ret = bench_fail("cannot remove %s: %s", scratch, strerror(-r));
	}
	return ret;
}
