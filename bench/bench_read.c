/*
 * `sluice-bench read`: produce --records records into a fresh stream, then read every shard back
 * from TRIM_HORIZON with libsluice shard readers, one thread and one connection per shard, all
 * starting together. The clock runs from the start to the last reader holding all of its
 * shard's records. Every shard must give back exactly the records acknowledged for it, in
 * strictly increasing sequence order and with the size they were sent with.
 */
#include "bench.h"
#include "diskbw.h"

#include "common/clock.h"

#include <sluice/client.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct read_thread {
	pthread_t th;
	const struct bench_args *a;
	const char *addr;
	const char *stream;
	uint32_t shard_id;
	uint64_t expect;
	uint32_t size;
	pthread_barrier_t *barrier;
	int err;
	char msg[256];
	uint64_t got;
	uint64_t bytes;
	bool timed_out; /* stopped by --seconds, not by reaching the tip */
	int64_t t_start, t_end;
};

static void *read_main(void *arg)
{
	struct read_thread *t = arg;
	struct sluice_client *c = NULL;
	struct sluice_shard_reader *rd = NULL;
	struct sluice_position pos = {.type = SLUICE_POS_TRIM_HORIZON};
	int r = sluice_client_connect(t->addr, NULL, &c);
	if (r == 0)
		r = sluice_shard_reader_create(c, t->stream, t->shard_id, &pos, &rd);
	if (r < 0) {
		t->err = r;
		snprintf(t->msg, sizeof(t->msg), "shard %u: cannot start a reader: %s", t->shard_id,
			 sluice_strerror(r));
	}
	pthread_barrier_wait(t->barrier);
	if (r < 0)
		goto out;
	int64_t limit_ns = (int64_t)(t->a->seconds * 1e9);
	uint64_t last_seq = 0;
	t->t_start = sl_mono_ns();
	while (t->got < t->expect && !bench_stop) {
		const struct sluice_read_result *b;
		r = sluice_shard_reader_next(rd, 0, 0, &b);
		if (r < 0) {
			t->err = r;
			snprintf(t->msg, sizeof(t->msg),
				 "shard %u: read failed after %llu records: %s", t->shard_id,
				 (unsigned long long)t->got, sluice_strerror(r));
			break;
		}
		for (size_t i = 0; i < b->count; i++) {
			const struct sluice_record *rec = &b->records[i];
			if ((t->got + i > 0 && rec->seq <= last_seq) || rec->data_len != t->size) {
				t->err = -1;
				snprintf(t->msg, sizeof(t->msg),
					 "shard %u: record %llu out of order or of the wrong size "
					 "(%u bytes)",
					 t->shard_id, (unsigned long long)rec->seq, rec->data_len);
				goto done;
			}
			last_seq = rec->seq;
			t->bytes += rec->data_len;
		}
		t->got += b->count;
		if (b->count == 0 && sluice_shard_reader_caught_up(rd))
			break; /* at the tip: whatever is missing is not coming */
		if (sl_mono_ns() - t->t_start >= limit_ns) {
			t->timed_out = t->got < t->expect;
			break;
		}
	}
done:
	t->t_end = sl_mono_ns();
out:
	sluice_shard_reader_destroy(rd);
	sluice_client_close(c);
	return NULL;
}

struct read_row {
	const char *mode;
	uint32_t size, shards;
	uint64_t records;  /* read back */
	uint64_t produced; /* acknowledged */
	double produce_s;
	double seconds;
	bool time_bound;
};

static int read_one(const struct bench_args *a, const char *addr, struct read_row *w)
{
	char stream[SLUICE_NAME_LEN_MAX];
	snprintf(stream, sizeof(stream), "bench-read-%ld-%s-%u-%u", (long)getpid(), w->mode,
		 w->size, w->shards);
	if (bench_stream_create(addr, stream, w->shards) < 0)
		return -1;
	struct bench_produce_result *pr = malloc(sizeof(*pr));
	struct read_thread *th = calloc(w->shards, sizeof(*th));
	struct sluice_shard_info *info = NULL;
	size_t ninfo = 0;
	int ret = -1;
	if (!pr || !th) {
		bench_fail("out of memory");
		goto out;
	}
	if (bench_produce_drive(a, addr, stream, a->records, w->size, a->connections[0], pr) < 0)
		goto out;
	w->produce_s = pr->seconds;
	w->produced = pr->acked;
	struct sluice_client *c = NULL;
	int r = sluice_client_connect(addr, NULL, &c);
	if (r == 0)
		r = sluice_list_shards(c, stream, &info, &ninfo);
	sluice_client_close(c);
	if (r < 0) {
		bench_fail("cannot list the shards of %s: %s", stream, sluice_strerror(r));
		goto out;
	}
	if (ninfo != w->shards) {
		bench_fail("stream %s has %zu shards, expected %u", stream, ninfo, w->shards);
		goto out;
	}
	pthread_barrier_t barrier;
	pthread_barrier_init(&barrier, NULL, w->shards);
	for (uint32_t i = 0; i < w->shards; i++) {
		struct read_thread *t = &th[i];
		t->a = a;
		t->addr = addr;
		t->stream = stream;
		t->shard_id = info[i].shard_id;
		t->expect = t->shard_id < BENCH_SHARDS_MAX ? pr->per_shard[t->shard_id] : 0;
		t->size = w->size;
		t->barrier = &barrier;
		r = pthread_create(&t->th, NULL, read_main, t);
		if (r != 0) {
			bench_fail("cannot start a reader thread: %s", strerror(r));
			exit(1); /* the barrier would never open */
		}
	}
	for (uint32_t i = 0; i < w->shards; i++)
		pthread_join(th[i].th, NULL);
	pthread_barrier_destroy(&barrier);
	int64_t t0 = INT64_MAX, t1 = 0;
	uint64_t got = 0, expect = 0;
	for (uint32_t i = 0; i < w->shards; i++) {
		struct read_thread *t = &th[i];
		if (t->err) {
			bench_fail("%s", t->msg);
			goto out;
		}
		if (t->got != t->expect && !t->timed_out) {
			bench_fail("shard %u: read %llu records, %llu were acknowledged",
				   t->shard_id, (unsigned long long)t->got,
				   (unsigned long long)t->expect);
			goto out;
		}
		if (t->timed_out)
			w->time_bound = true;
		got += t->got;
		expect += t->expect;
		if (t->t_start < t0)
			t0 = t->t_start;
		if (t->t_end > t1)
			t1 = t->t_end;
	}
	if (expect != pr->acked) {
		bench_fail("acknowledged records name shards the stream does not have "
			   "(%llu of %llu accounted for)",
			   (unsigned long long)expect, (unsigned long long)pr->acked);
		goto out;
	}
	w->records = got;
	w->seconds = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
	ret = 0;
out:
	sluice_shards_free(info);
	free(th);
	free(pr);
	int d = bench_stream_delete(addr, stream);
	return ret < 0 ? ret : d;
}

int bench_read_main(struct bench_args *a)
{
	char scratch[PATH_MAX], fs[32];
	int r = bench_scratch_create(a->dir, scratch, sizeof(scratch));
	if (r < 0)
		return bench_fail("cannot create a scratch folder in %s: %s", a->dir ? a->dir : ".",
				  strerror(-r));
	bench_fs_name(scratch, fs, sizeof(fs));
	FILE *f = bench_out(a);
	fprintf(f,
		"sluice-bench read: %s, data %s (%s), %llu records per row produced with %u "
		"connection(s), then read back (one reader thread per shard; bound %.1f s)\n\n",
		a->server ? a->server : "spawned sluiced", scratch, fs,
		(unsigned long long)a->records, a->connections[0], a->seconds);
	fprintf(f, "%-6s %6s %6s %9s | %10s %8s | %10s %8s\n", "fsync", "size", "shards", "records",
		"read rec/s", "MB/s", "prod rec/s", "rd/prod");
	size_t nmodes = a->server ? 1 : a->nfsyncs;
	int ret = 0;
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
			for (size_t h = 0; h < a->nshards && ret == 0; h++) {
				struct read_row w = {
				    .mode = mode,
				    .size = a->sizes[s],
				    .shards = a->shards[h],
				};
				ret = read_one(a, addr, &w);
				if (ret == 0 && bench_stop)
					ret = bench_fail("interrupted");
				if (ret < 0)
					break;
				double rps = w.seconds > 0 ? (double)w.records / w.seconds : 0;
				double prps =
				    w.produce_s > 0 ? (double)w.produced / w.produce_s : 0;
				char r1[32], r2[32];
				bench_fmt_rate(rps, r1, sizeof(r1));
				bench_fmt_rate(prps, r2, sizeof(r2));
				fprintf(f, "%-6s %6u %6u %9llu | %10s %8.1f | %10s %6.2fx%s\n",
					mode, w.size, w.shards, (unsigned long long)w.records, r1,
					rps * w.size / 1e6, r2, prps > 0 ? rps / prps : 0,
					w.time_bound ? " (time bound)" : "");
				fflush(f);
				if (a->json) {
					struct bench_json j;
					bench_json_begin(&j, "read");
					bench_json_str(&j, "fsync", mode);
					bench_json_u64(&j, "size", w.size);
					bench_json_u64(&j, "shards", w.shards);
					bench_json_u64(&j, "records", w.records);
					bench_json_u64(&j, "produced", w.produced);
					bench_json_num(&j, "seconds", w.seconds);
					bench_json_num(&j, "records_per_s", rps);
					bench_json_num(&j, "mb_per_s", rps * w.size / 1e6);
					bench_json_num(&j, "produce_records_per_s", prps);
					bench_json_end(&j);
				}
			}
		}
		if (bench_server_stop(&srv) < 0 && ret == 0)
			ret = bench_fail("sluiced did not exit cleanly");
	}
	if (!a->keep) {
		r = bench_rm_rf(scratch);
		if (r < 0 && ret == 0)
			ret = bench_fail("cannot remove %s: %s", scratch, strerror(-r));
	}
	return ret;
}
