/*
 * `sluice-bench log`: the shard log alone, driven the way sluiced drives it, against plain
 * write() on the same file system with the same write size.
 *
 * For each record size x batch size x fsync mode: a fresh log; appends of `batch` records until
 * --records or --seconds; after each append sl_shard_log_service(), and sl_shard_log_sync()
 * whenever sl_shard_log_sync_wanted() says so (group: after every batch; interval: once per
 * interval). Append throughput counts until every batch's done() ran. Then a sequential read of
 * everything from the first sequence number in 64k-record reads. Then the baseline: the log's
 * on-disk byte count written again with plain write() in chunks of one batch's on-disk size
 * (with fdatasync after each write in group mode).
 */
#include "bench.h"
#include "diskbw.h"

#include "common/clock.h"
#include "log/shard_log.h"

#include <sluice/errors.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Records per read: the log's own maximum. */
#define LOG_READ_RECORDS 65536u
/* The sync interval of `interval` mode: sluiced's default. */
#define LOG_INTERVAL_MS 1000

struct log_acks {
	uint64_t acked;
	uint64_t failed;
	int first_error;
	uint64_t next_seq; /* the first_seq the next done() must have: completion is in order */
	bool out_of_order;
};

struct log_row {
	uint32_t size;
	uint32_t batch;
	enum bench_fsync mode;
	uint64_t records;
	uint64_t batches;
	double append_s;
	double append_cpu_s;
	uint64_t disk_bytes;
	uint64_t syncs;
	uint64_t read_records;
	double read_s;
	struct diskbw_result raw;
};

static void on_done(void *ctx, int status, uint64_t first_seq, uint32_t count)
{
	struct log_acks *k = ctx;
	if (first_seq != k->next_seq)
		k->out_of_order = true;
	k->next_seq = first_seq + count;
	if (status == 0) {
		k->acked += count;
	} else {
		k->failed += count;
		if (!k->first_error)
			k->first_error = status;
	}
}

static double thread_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static enum sl_fsync_mode log_mode(enum bench_fsync m)
{
	return m == BENCH_FSYNC_GROUP	   ? SL_FSYNC_GROUP
	       : m == BENCH_FSYNC_INTERVAL ? SL_FSYNC_INTERVAL
					   : SL_FSYNC_NEVER;
}

/* Append phase. The record array and data are prepared before the clock starts. */
static int run_append(const struct bench_args *a, struct sl_shard_log *log, struct log_row *row,
		      struct sl_record_in *recs, struct log_acks *acks)
{
	int64_t limit_ns = (int64_t)(a->seconds * 1e9);
	double cpu0 = thread_cpu_s();
	int64_t t0 = sl_mono_ns();
	uint64_t appended = 0;
	while (appended < a->records && !bench_stop) {
		uint64_t left = a->records - appended;
		size_t n = left < row->batch ? (size_t)left : row->batch;
		int64_t now_ms = sl_wall_ms();
		uint64_t first;
		int r = sl_shard_log_append(log, recs, n, now_ms, on_done, acks, &first);
		if (r < 0)
			return bench_fail("log: append of %zu records failed: %s", n,
					  sluice_strerror(r));
		appended += n;
		row->batches++;
		sl_shard_log_service(log, now_ms);
		if (sl_shard_log_sync_wanted(log, now_ms)) {
			r = sl_shard_log_sync(log, now_ms);
			if (r < 0)
				return bench_fail("log: fdatasync failed: %s", sluice_strerror(r));
			row->syncs++;
		}
		if (sl_mono_ns() - t0 >= limit_ns)
			break;
	}
	/* Whatever is still waiting (interval mode between syncs) completes now, as at a tick. */
	int64_t now_ms = sl_wall_ms();
	sl_shard_log_service(log, now_ms);
	if (acks->acked + acks->failed < appended &&
	    sl_shard_log_sync_wanted(log, now_ms + 3600000)) {
		int r = sl_shard_log_sync(log, now_ms);
		if (r < 0)
			return bench_fail("log: fdatasync failed: %s", sluice_strerror(r));
		row->syncs++;
	}
	int64_t t1 = sl_mono_ns();
	row->append_cpu_s = thread_cpu_s() - cpu0;
	row->append_s = (double)(t1 - t0) / 1e9;
	row->records = appended;
	if (acks->failed)
		return bench_fail("log: %llu records failed: %s", (unsigned long long)acks->failed,
				  sluice_strerror(acks->first_error));
	if (acks->acked != appended)
		return bench_fail("log: %llu of %llu records not acknowledged",
				  (unsigned long long)(appended - acks->acked),
				  (unsigned long long)appended);
	if (acks->out_of_order)
		return bench_fail("log: batches completed out of order");
	return 0;
}

/* Read phase: everything back, checking order and sizes of every record. */
static int run_read(const struct bench_args *a, struct sl_shard_log *log, struct log_row *row,
		    uint64_t first_seq, const uint8_t *data)
{
	struct sl_read_batch b;
	sl_read_batch_init(&b);
	int ret = 0;
	int64_t limit_ns = (int64_t)(a->seconds * 1e9);
	int64_t t0 = sl_mono_ns();
	uint64_t seq = first_seq, got = 0;
	while (got < row->records && !bench_stop) {
		int r = sl_shard_log_read(log, seq, LOG_READ_RECORDS, UINT32_MAX, sl_wall_ms(), &b);
		if (r < 0) {
			ret = bench_fail("log: read at seq %llu failed: %s",
					 (unsigned long long)seq, sluice_strerror(r));
			goto out;
		}
		if (b.count == 0) {
			ret =
			    bench_fail("log: read at seq %llu returned nothing after %llu of %llu "
				       "records",
				       (unsigned long long)seq, (unsigned long long)got,
				       (unsigned long long)row->records);
			goto out;
		}
		for (size_t i = 0; i < b.count; i++) {
			const struct sluice_record *rec = &b.records[i];
			if (rec->seq != seq + i || rec->data_len != row->size ||
			    rec->key_len != a->key_bytes) {
				ret = bench_fail(
				    "log: record %llu read back wrong (seq %llu, %u bytes)",
				    (unsigned long long)(seq + i), (unsigned long long)rec->seq,
				    rec->data_len);
				goto out;
			}
		}
		/* A spot check of content per read; the log verified every checksum already. */
		size_t k = (size_t)((b.records[0].seq - first_seq) % row->batch);
		if (row->size && memcmp(b.records[0].data, data + k, row->size) != 0) {
			ret = bench_fail("log: record %llu has the wrong data",
					 (unsigned long long)b.records[0].seq);
			goto out;
		}
		got += b.count;
		seq = b.next_seq;
		if (sl_mono_ns() - t0 >= limit_ns)
			break;
	}
	row->read_s = (double)(sl_mono_ns() - t0) / 1e9;
	row->read_records = got;
	if (got > row->records)
		ret = bench_fail("log: read %llu records, appended %llu", (unsigned long long)got,
				 (unsigned long long)row->records);
out:
	sl_read_batch_finish(&b);
	return ret;
}

static int run_one(const struct bench_args *a, const char *scratch, struct log_row *row)
{
	char dir[PATH_MAX];
	if (snprintf(dir, sizeof(dir), "%s/log-%u-%u-%s", scratch, row->size, row->batch,
		     bench_fsync_name(row->mode)) >= (int)sizeof(dir))
		return bench_fail("log: scratch path too long: %s", scratch);
	/* Record i of a batch: key "k<i>" padded to key_bytes, data at offset i of one buffer, so
	 * records differ without a per-record allocation. */
	uint8_t *data = malloc((size_t)row->size + row->batch);
	uint8_t *keys = malloc((size_t)a->key_bytes * row->batch);
	struct sl_record_in *recs = calloc(row->batch, sizeof(*recs));
	struct sl_shard_log *log = NULL;
	int ret = -1;
	if (!data || !keys || !recs) {
		bench_fail("log: out of memory");
		goto out;
	}
	for (size_t i = 0; i < (size_t)row->size + row->batch; i++)
		data[i] = (uint8_t)('a' + i % 26);
	for (uint32_t i = 0; i < row->batch; i++) {
		uint8_t *key = keys + (size_t)i * a->key_bytes;
		char tmp[32];
		int n = snprintf(tmp, sizeof(tmp), "k%u", i);
		memset(key, '_', a->key_bytes);
		memcpy(key, tmp, (size_t)n < a->key_bytes ? (size_t)n : a->key_bytes);
		recs[i].key = key;
		recs[i].key_len = (uint16_t)a->key_bytes;
		recs[i].data = data + i;
		recs[i].data_len = row->size;
	}
	struct sl_shard_log_config cfg = {
	    .dir = dir,
	    .fsync_mode = log_mode(row->mode),
	    .fsync_interval_ms = LOG_INTERVAL_MS,
	};
	bench_syncfs(scratch);
	int r = sl_shard_log_open(&cfg, &log);
	if (r < 0) {
		bench_fail("log: cannot open a shard log in %s: %s", dir, sluice_strerror(r));
		goto out;
	}
	struct sl_shard_log_stats st;
	sl_shard_log_stats(log, &st);
	uint64_t first_seq = st.next_seq;
	struct log_acks acks = {.next_seq = first_seq};
	if (run_append(a, log, row, recs, &acks) < 0)
		goto out;
	sl_shard_log_stats(log, &st);
	row->disk_bytes = st.bytes;
	if (run_read(a, log, row, first_seq, data) < 0)
		goto out;
	sl_shard_log_close(log);
	log = NULL;
	r = sl_shard_log_destroy_dir(dir);
	if (r < 0) {
		bench_fail("log: cannot remove %s: %s", dir, sluice_strerror(r));
		goto out;
	}
	/* The baseline writes what the log wrote, in pieces of what one append wrote. */
	uint64_t per_write = row->batches ? row->disk_bytes / row->batches : row->disk_bytes;
	if (per_write == 0)
		per_write = 1;
	r = diskbw_measure(scratch, (size_t)per_write, row->disk_bytes,
			   row->mode == BENCH_FSYNC_GROUP, a->seconds, &row->raw);
	if (r < 0) {
		bench_fail("log: baseline write in %s failed: %s", scratch, strerror(-r));
		goto out;
	}
	ret = 0;
out:
	sl_shard_log_close(log);
	if (ret < 0)
		sl_shard_log_destroy_dir(dir);
	free(recs);
	free(keys);
	free(data);
	return ret;
}

static void print_header(FILE *f)
{
	fprintf(f, "%6s %6s %-8s %9s | %12s %9s %9s %5s | %9s %6s | %12s %9s %7s\n", "size",
		"batch", "fsync", "records", "append rec/s", "MB/s", "disk MB/s", "cpu", "raw MB/s",
		"ratio", "read rec/s", "MB/s", "rd/app");
}

static void print_row(const struct bench_args *a, const struct log_row *w)
{
	double rps = (double)w->records / w->append_s;
	double mbps = rps * w->size / 1e6;
	double disk_mbps = (double)w->disk_bytes / w->append_s / 1e6;
	double raw_mbps = w->raw.bytes_per_s / 1e6;
	double ratio = raw_mbps > 0 ? mbps / raw_mbps : 0;
	double rrps = w->read_s > 0 ? (double)w->read_records / w->read_s : 0;
	double rmbps = rrps * w->size / 1e6;
	double cpu = w->append_s > 0 ? w->append_cpu_s / w->append_s : 0;
	char r1[32], r2[32];
	bench_fmt_rate(rps, r1, sizeof(r1));
	bench_fmt_rate(rrps, r2, sizeof(r2));
	FILE *f = bench_out(a);
	fprintf(
	    f,
	    "%6u %6u %-8s %9llu | %12s %9.1f %9.1f %4.0f%% | %9.1f %5.0f%% | %12s %9.1f %6.2fx\n",
	    w->size, w->batch, bench_fsync_name(w->mode), (unsigned long long)w->records, r1, mbps,
	    disk_mbps, cpu * 100, raw_mbps, ratio * 100, r2, rmbps, rps > 0 ? rrps / rps : 0);
	fflush(f);
	if (a->json) {
		struct bench_json j;
		bench_json_begin(&j, "log");
		bench_json_u64(&j, "size", w->size);
		bench_json_u64(&j, "batch", w->batch);
		bench_json_str(&j, "fsync", bench_fsync_name(w->mode));
		bench_json_u64(&j, "records", w->records);
		bench_json_num(&j, "append_seconds", w->append_s);
		bench_json_num(&j, "append_records_per_s", rps);
		bench_json_num(&j, "append_mb_per_s", mbps);
		bench_json_num(&j, "append_disk_mb_per_s", disk_mbps);
		bench_json_num(&j, "append_cpu", cpu);
		bench_json_u64(&j, "disk_bytes", w->disk_bytes);
		bench_json_u64(&j, "syncs", w->syncs);
		bench_json_u64(&j, "raw_write_bytes", w->raw.bytes);
		bench_json_u64(&j, "raw_write_size",
			       w->raw.writes ? w->raw.bytes / w->raw.writes : 0);
		bench_json_num(&j, "raw_mb_per_s", raw_mbps);
		bench_json_num(&j, "ratio_to_raw", ratio);
		bench_json_u64(&j, "read_records", w->read_records);
		bench_json_num(&j, "read_records_per_s", rrps);
		bench_json_num(&j, "read_mb_per_s", rmbps);
		bench_json_end(&j);
	}
}

/* The targets of docs/benchmarks.md, reported (never asserted) for the rows that exist. */
static void print_targets(const struct bench_args *a, const struct log_row *rows, size_t n)
{
	FILE *f = bench_out(a);
	fprintf(f, "\ntargets (reported, not asserted):\n");
	for (size_t i = 0; i < n; i++) {
		const struct log_row *w = &rows[i];
		double rps = (double)w->records / w->append_s;
		double ratio = w->raw.bytes_per_s > 0 ? rps * w->size / w->raw.bytes_per_s : 0;
		if (w->size == 1024 && w->batch == 256 && w->mode == BENCH_FSYNC_NEVER)
			fprintf(f,
				"  1 KiB x 256 never: %.0f%% of raw write bandwidth (target >= "
				"70%%): %s\n",
				ratio * 100, ratio >= 0.70 ? "met" : "MISSED");
		if (w->size == 100 && w->batch == 256 && w->mode == BENCH_FSYNC_NEVER)
			fprintf(f, "  100 B x 256 never: %.2f M records/s (target >= 5 M): %s\n",
				rps / 1e6, rps >= 5e6 ? "met" : "MISSED");
	}
	size_t slower = 0;
	for (size_t i = 0; i < n; i++) {
		double rps = (double)rows[i].records / rows[i].append_s;
		double rrps =
		    rows[i].read_s > 0 ? (double)rows[i].read_records / rows[i].read_s : 0;
		if (rrps < rps)
			slower++;
	}
	fprintf(f, "  read >= append: %zu of %zu rows: %s\n", n - slower, n,
		slower ? "MISSED" : "met");
}

int bench_log_main(struct bench_args *a)
{
	char scratch[PATH_MAX], fs[32];
	int r = bench_scratch_create(a->dir, scratch, sizeof(scratch));
	if (r < 0)
		return bench_fail("cannot create a scratch folder in %s: %s", a->dir ? a->dir : ".",
				  strerror(-r));
	bench_fs_name(scratch, fs, sizeof(fs));
	FILE *f = bench_out(a);
	fprintf(f,
		"sluice-bench log: scratch %s (%s), up to %llu records or %.1f s per row, "
		"%u-byte keys\n",
		scratch, fs, (unsigned long long)a->records, a->seconds, a->key_bytes);
	if (bench_fs_is_memory(scratch))
		fprintf(f, "warning: %s is in memory (%s): the figures say nothing about a disk\n",
			scratch, fs);
	fprintf(f, "MB = 10^6 bytes of record data; disk MB/s counts framing too; raw = plain "
		   "write() of the log's bytes in pieces of one append (group: + fdatasync each); "
		   "ratio = MB/s / raw\n\n");
	print_header(f);
	size_t nrows = a->nsizes * a->nbatches * a->nfsyncs, k = 0;
	struct log_row *rows = calloc(nrows, sizeof(*rows));
	int ret = rows ? 0 : bench_fail("out of memory");
	for (size_t m = 0; m < a->nfsyncs && ret == 0; m++) {
		for (size_t s = 0; s < a->nsizes && ret == 0; s++) {
			for (size_t b = 0; b < a->nbatches && ret == 0; b++) {
				struct log_row *w = &rows[k];
				w->size = a->sizes[s];
				w->batch = a->batches[b];
				w->mode = a->fsyncs[m];
				ret = run_one(a, scratch, w);
				if (ret == 0 && bench_stop)
					ret = bench_fail("interrupted");
				if (ret == 0) {
					print_row(a, w);
					k++;
				}
			}
		}
	}
	if (ret == 0)
		print_targets(a, rows, k);
	free(rows);
	if (!a->keep) {
		r = bench_rm_rf(scratch);
		if (r < 0 && ret == 0)
			ret = bench_fail("cannot remove %s: %s", scratch, strerror(-r));
	}
	return ret;
}
