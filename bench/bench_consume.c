/*
 * `sluice-bench consume`: records/s that sluiced's consumer engine delivers to a handler.
 *
 * Each row: a fresh stream of --shards shards is filled with --records records (libsluice async
 * producer, acknowledged per shard), then a consumer is created on it with --start trim-horizon
 * and --batch-size, with one of three handlers:
 *   plugin  bench_plugin.so (next to sluice-bench) inside sluiced, counting into a shared file;
 *   exec    sluice-bench-exec-handler (next to sluice-bench): reads a line, answers `{}`;
 *   remote  one thread per shard in this process: sluice_consumer_attach + run.
 * The clock runs from the create call until `consumer describe` shows delivered == acknowledged on
 * every shard (polled every 20 ms, so +-20 ms). The handlers' own counters (records and the time
 * of their last batch) give a second, finer figure and a cross-check.
 *
 * Then a burst: with the consumer still running and caught up, --burst more records are
 * produced; reported is the time from the burst's last acknowledgement (and from its first send)
 * until lag_records is 0 and delivered matches on every shard.
 *
 * Errors fail the run: a failed batch, a handler error, a shard delivering more records than
 * acknowledged or a handler count that does not add up. A row that does not finish within
 * --seconds is reported as time bound.
 */
#include "bench.h"
#include "bench_counter.h"
#include "diskbw.h"

#include "common/clock.h"

#include <sluice/client.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CONSUME_POLL_MS 20
#define CONSUME_PLUGIN_NAME "sluice_bench_plugin.so"
#define CONSUME_EXEC_NAME "sluice-bench-exec-handler"
/* How long the handler counters may trail `describe` (the exec handler answers, then counts). */
#define CONSUME_COUNTER_GRACE_MS 2000
/* The remote threads retry the attach this often until the consumer exists. */
#define CONSUME_ATTACH_RETRY_US 500

const char *bench_handler_name(enum bench_handler h)
{
	switch (h) {
	case BENCH_HANDLER_PLUGIN:
		return "plugin";
	case BENCH_HANDLER_REMOTE:
		return "remote";
	case BENCH_HANDLER_EXEC:
		return "exec";
	}
	return "?";
}

/* Default records and batch size per handler (the exec handler is much slower). */
static uint64_t default_records(enum bench_handler h)
{
	return h == BENCH_HANDLER_EXEC ? 500000 : 2000000;
}

static uint32_t default_batch(enum bench_handler h)
{
	return h == BENCH_HANDLER_EXEC ? 1000 : 10000;
}

/* A helper that lives next to this executable in the build tree. */
static int helper_path(const char *name, char *out, size_t out_len)
{
	int r = bench_exe_sibling(name, out, out_len);
	if (r < 0)
		return bench_fail("%s: %s (consume runs from the build tree: build bench/ fully)",
				  out, strerror(-r));
	return 0;
}

/* ---- the counter ---- */

struct counter {
	struct bench_counter_file *f;
	bool mapped; /* MAP_SHARED file, else heap */
	char path[PATH_MAX];
};

static int counter_open(struct counter *c, const char *scratch, const char *consumer, bool file)
{
	memset(c, 0, sizeof(*c));
	if (!file) {
		c->f = aligned_alloc(64, sizeof(*c->f));
		if (!c->f)
			return bench_fail("out of memory");
		memset(c->f, 0, sizeof(*c->f));
		c->f->magic = BENCH_COUNTER_MAGIC;
		return 0;
	}
	if (snprintf(c->path, sizeof(c->path), "%s/%s.cnt", scratch, consumer) >=
	    (int)sizeof(c->path))
		return bench_fail("path too long: %s/%s.cnt", scratch, consumer);
	int fd = open(c->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return bench_fail("cannot create %s: %s", c->path, strerror(errno));
	if (ftruncate(fd, sizeof(*c->f)) < 0) {
		close(fd);
		return bench_fail("cannot size %s: %s", c->path, strerror(errno));
	}
	void *m = mmap(NULL, sizeof(*c->f), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return bench_fail("cannot map %s: %s", c->path, strerror(errno));
	c->f = m;
	c->mapped = true;
	c->f->magic = BENCH_COUNTER_MAGIC;
	return 0;
}

static void counter_close(struct counter *c)
{
	if (c->f && c->mapped) {
		munmap(c->f, sizeof(*c->f));
		unlink(c->path);
	} else {
		free(c->f);
	}
	c->f = NULL;
}

static void counter_sum(const struct counter *c, uint64_t *records, uint64_t *bytes,
			int64_t *last_ns)
{
	*records = *bytes = 0;
	*last_ns = 0;
	for (uint32_t i = 0; i < BENCH_COUNTER_SLOTS; i++) {
		struct bench_counter_slot *s = &c->f->slots[i];
		*records += atomic_load_explicit(&s->records, memory_order_relaxed);
		*bytes += atomic_load_explicit(&s->bytes, memory_order_relaxed);
		int64_t t = atomic_load_explicit(&s->last_ns, memory_order_acquire);
		if (t > *last_ns)
			*last_ns = t;
	}
}

/* ---- remote handler threads ---- */

struct remote_thread {
	pthread_t th;
	const char *addr;
	const char *consumer;
	struct bench_counter_file *counter;
	atomic_bool *quit;
	_Atomic(struct sluice_remote_consumer *) rc;
	int err;
	char msg[256];
};

static int remote_handle(void *ctx, const struct sluice_handler_batch *batch,
			 struct sluice_handler_result *result)
{
	struct remote_thread *t = ctx;
	uint64_t bytes = 0;
	for (size_t i = 0; i < batch->count; i++)
		bytes += batch->records[i].data_len;
	bench_counter_add(&t->counter->slots[batch->shard_id % BENCH_COUNTER_SLOTS], batch->count,
			  bytes, sl_mono_ns());
	result->status = SLUICE_HANDLER_OK;
	return 0;
}

static void *remote_main(void *arg)
{
	struct remote_thread *t = arg;
	struct sluice_remote_consumer *rc = NULL;
	/* The consumer is created right after these threads start: attach as soon as it exists,
	 * so that its first deliveries do not wait for us. main bounds the wait with quit. */
	while (!atomic_load(t->quit)) {
		int r = sluice_consumer_attach(t->addr, t->consumer, NULL, &rc);
		if (r == 0)
			break;
		/* An unknown consumer is reported as "not found" (the stream code). */
		if (r != SLUICE_ERR_STREAM_NOT_FOUND) {
			t->err = r;
			snprintf(t->msg, sizeof(t->msg), "attach: %s", sluice_strerror(r));
			return NULL;
		}
		usleep(CONSUME_ATTACH_RETRY_US);
	}
	if (!rc)
		return NULL;
	/* Published before quit is read again: main either sees rc and stops it, or we see quit. */
	atomic_store(&t->rc, rc);
	while (!atomic_load(t->quit)) {
		int r = sluice_remote_consumer_run(rc, remote_handle, t, -1);
		if (r < 0 && !atomic_load(t->quit)) {
			/* Disconnected: the next run reconnects; remember the first error. */
			if (!t->err) {
				t->err = r;
				snprintf(t->msg, sizeof(t->msg), "run: %s (%s)", sluice_strerror(r),
					 sluice_remote_consumer_last_error_message(rc));
			}
			usleep(10000);
		}
	}
	return NULL;
}

static void remote_stop(struct remote_thread *th, uint32_t n, atomic_bool *quit)
{
	atomic_store(quit, true);
	for (uint32_t i = 0; i < n; i++) {
		struct sluice_remote_consumer *rc = atomic_load(&th[i].rc);
		if (rc)
			sluice_remote_consumer_stop(rc);
	}
	for (uint32_t i = 0; i < n; i++) {
		pthread_join(th[i].th, NULL);
		sluice_remote_consumer_destroy(atomic_load(&th[i].rc));
	}
}

/* ---- one row ---- */

struct consume_row {
	const char *mode;
	enum bench_handler handler;
	uint32_t size, shards, batch;
	uint64_t records;	  /* acknowledged by the produce phase */
	uint64_t delivered;	  /* per describe at the end */
	double produce_s;	  /* produce phase */
	double seconds;		  /* create -> describe shows everything delivered */
	bool time_bound;	  /* --seconds ran out first */
	bool counted;		  /* the handler counter works */
	uint64_t handler_records; /* counted by the handler */
	double handler_s;	  /* create -> the handler's last batch */
	uint64_t burst;		  /* burst records acknowledged (0: no burst) */
	double burst_produce_s;	  /* first send -> last acknowledgement */
	double burst_drain_s;	  /* last acknowledgement -> lag 0 everywhere */
	double burst_total_s;	  /* first send -> lag 0 everywhere */
	uint64_t burst_peak_lag;  /* largest total lag_records seen after the burst */
	bool burst_time_bound;
};

/* What describe says, checked: per-shard delivered against expect[], and no failure. */
struct poll_state {
	uint64_t delivered, lag;
	bool all_delivered, lag_zero;
};

static int poll_consumer(struct sluice_client *c, const char *consumer, const uint64_t *expect,
			 uint32_t shards, struct poll_state *ps)
{
	struct sluice_consumer_info *info = NULL;
	int r = sluice_consumer_describe(c, consumer, &info);
	if (r < 0)
		return bench_fail("consumer describe %s: %s (%s)", consumer, sluice_strerror(r),
				  sluice_client_last_error_message(c));
	memset(ps, 0, sizeof(*ps));
	ps->all_delivered = info->shard_count == shards;
	ps->lag_zero = true;
	int ret = 0;
	for (size_t i = 0; i < info->shard_count; i++) {
		const struct sluice_consumer_shard_status *s = &info->shards[i];
		uint64_t want = s->shard_id < BENCH_SHARDS_MAX ? expect[s->shard_id] : 0;
		if (s->batches_failed || s->expired || s->sent_to_on_failure) {
			ret =
			    bench_fail("consumer %s shard %u: %llu failed batches, %llu expired "
				       "records: %s",
				       consumer, s->shard_id, (unsigned long long)s->batches_failed,
				       (unsigned long long)s->expired,
				       s->last_error[0] ? s->last_error : "(no message)");
			break;
		}
		if (s->delivered > want) {
			ret = bench_fail("consumer %s shard %u: delivered %llu, only %llu were "
					 "acknowledged",
					 consumer, s->shard_id, (unsigned long long)s->delivered,
					 (unsigned long long)want);
			break;
		}
		ps->delivered += s->delivered;
		ps->lag += s->lag_records;
		ps->all_delivered &= s->delivered == want;
		ps->lag_zero &= s->lag_records == 0;
	}
	sluice_consumer_info_free(info);
	return ret;
}

/* Poll until everything in expect[] is delivered (and, with want_lag_zero, lag is 0 too) or
 * until deadline_ns. *ret_done_ns: the time of the poll that saw it; 0 when time ran out. */
static int wait_delivered(struct sluice_client *c, const char *consumer, const uint64_t *expect,
			  uint32_t shards, bool want_lag_zero, int64_t deadline_ns,
			  int64_t *ret_done_ns, struct poll_state *ret_last, uint64_t *ret_peak_lag)
{
	*ret_done_ns = 0;
	for (;;) {
		struct poll_state ps;
		if (poll_consumer(c, consumer, expect, shards, &ps) < 0)
			return -1;
		int64_t now = sl_mono_ns();
		*ret_last = ps;
		if (ret_peak_lag && ps.lag > *ret_peak_lag)
			*ret_peak_lag = ps.lag;
		if (ps.all_delivered && (!want_lag_zero || ps.lag_zero)) {
			*ret_done_ns = now;
			return 0;
		}
		if (now >= deadline_ns || bench_stop)
			return 0;
		usleep(CONSUME_POLL_MS * 1000);
	}
}

/* The burst's producer, on a thread so that lag can be sampled meanwhile. */
struct burst_job {
	pthread_t th;
	const struct bench_args *a;
	const char *addr;
	const char *stream;
	uint64_t records;
	uint32_t size;
	struct bench_produce_result *pr;
	int r;
	int64_t end_ns; /* the last acknowledgement */
	atomic_bool done;
};

static void *burst_main(void *arg)
{
	struct burst_job *j = arg;
	j->r = bench_produce_drive(j->a, j->addr, j->stream, j->records, j->size,
				   j->a->connections[0], j->pr);
	j->end_ns = sl_mono_ns();
	atomic_store(&j->done, true);
	return NULL;
}

static int consume_one(const struct bench_args *a, const char *addr, const char *scratch,
		       struct consume_row *w)
{
	char stream[SLUICE_NAME_LEN_MAX], consumer[SLUICE_NAME_LEN_MAX], spec[2 * PATH_MAX + 64];
	const char *hname = bench_handler_name(w->handler);
	snprintf(stream, sizeof(stream), "bench-cons-%ld-%s-%u-%u", (long)getpid(), hname, w->size,
		 w->shards);
	snprintf(consumer, sizeof(consumer), "bc-%ld-%s-%u-%u", (long)getpid(), hname, w->size,
		 w->shards);
	uint64_t records = a->records_set ? a->records : default_records(w->handler);
	w->batch = a->batch_size ? a->batch_size : default_batch(w->handler);

	/* The handler spec, before anything is created. */
	char path[PATH_MAX];
	if (w->handler == BENCH_HANDLER_PLUGIN) {
		if (helper_path(CONSUME_PLUGIN_NAME, path, sizeof(path)) < 0)
			return -1;
		snprintf(spec, sizeof(spec), "plugin:%s", path);
	} else if (w->handler == BENCH_HANDLER_EXEC) {
		if (helper_path(CONSUME_EXEC_NAME, path, sizeof(path)) < 0)
			return -1;
		if (strchr(path, '\'') || strchr(scratch, '\''))
			return bench_fail("the exec handler's paths may not contain a quote: %s",
					  path);
		if (snprintf(spec, sizeof(spec), "exec:exec '%s' '%s/%s.cnt'", path, scratch,
			     consumer) >= (int)sizeof(spec))
			return bench_fail("the exec handler's command is too long");
	} else {
		snprintf(spec, sizeof(spec), "remote");
	}

	if (bench_stream_create(addr, stream, w->shards) < 0)
		return -1;
	int ret = -1;
	struct counter cnt = {0};
	struct sluice_client *c = NULL;
	struct remote_thread *rth = NULL;
	uint32_t nremote = 0;
	atomic_bool quit = false;
	bool consumer_made = false;
	struct bench_produce_result *pr = malloc(sizeof(*pr));
	uint64_t *expect = calloc(BENCH_SHARDS_MAX, sizeof(*expect));
	if (!pr || !expect) {
		bench_fail("out of memory");
		goto out;
	}

	/* 1. Fill the stream. */
	bench_syncfs(scratch);
	if (bench_produce_drive(a, addr, stream, records, w->size, a->connections[0], pr) < 0)
		goto out;
	w->records = pr->acked;
	w->produce_s = pr->seconds;
	memcpy(expect, pr->per_shard, BENCH_SHARDS_MAX * sizeof(*expect));

	/* 2. The handler's counter (a file for handlers in sluiced or in a child of it). */
	if (counter_open(&cnt, scratch, consumer, w->handler != BENCH_HANDLER_REMOTE) < 0)
		goto out;
	int r = sluice_client_connect(addr, NULL, &c);
	if (r < 0) {
		bench_fail("cannot connect to %s: %s", addr, sluice_strerror(r));
		goto out;
	}
	if (w->handler == BENCH_HANDLER_REMOTE) {
		rth = calloc(w->shards, sizeof(*rth));
		if (!rth) {
			bench_fail("out of memory");
			goto out;
		}
		for (uint32_t i = 0; i < w->shards; i++) {
			rth[i].addr = addr;
			rth[i].consumer = consumer;
			rth[i].counter = cnt.f;
			rth[i].quit = &quit;
			r = pthread_create(&rth[i].th, NULL, remote_main, &rth[i]);
			if (r != 0) {
				bench_fail("cannot start a remote handler thread: %s", strerror(r));
				goto out;
			}
			nremote++;
		}
	}

	/* 3. The timed part: create the consumer, wait until describe shows everything. */
	struct sluice_consumer_options o;
	sluice_consumer_options_init(&o);
	o.batch_size = w->batch;
	o.start = (struct sluice_position){.type = SLUICE_POS_TRIM_HORIZON};
	int64_t limit_ns = (int64_t)(a->seconds * 1e9);
	int64_t t0 = sl_mono_ns();
	r = sluice_consumer_create(c, consumer, stream, spec, &o);
	if (r < 0) {
		bench_fail("cannot create consumer %s (%s): %s (%s)", consumer, spec,
			   sluice_strerror(r), sluice_client_last_error_message(c));
		goto out;
	}
	consumer_made = true;
	struct poll_state ps;
	int64_t t_done = 0;
	if (wait_delivered(c, consumer, expect, w->shards, false, t0 + limit_ns, &t_done, &ps,
			   NULL) < 0)
		goto out;
	w->delivered = ps.delivered;
	w->time_bound = t_done == 0;
	w->seconds = (double)((t_done ? t_done : sl_mono_ns()) - t0) / 1e9;
	for (uint32_t i = 0; i < nremote; i++)
		if (rth[i].err) {
			bench_fail("remote handler %u: %s", i, rth[i].msg);
			goto out;
		}

	/* The handler's own count: at least what describe says (redeliveries may add), give or
	 * take a batch the exec handler has answered but not counted yet. */
	uint64_t hrec, hbytes;
	int64_t hlast;
	int64_t grace = sl_mono_ns() + (int64_t)CONSUME_COUNTER_GRACE_MS * 1000000;
	do {
		counter_sum(&cnt, &hrec, &hbytes, &hlast);
		if (hrec >= w->delivered || (w->handler == BENCH_HANDLER_PLUGIN && hrec == 0))
			break;
		usleep(1000);
	} while (sl_mono_ns() < grace);
	w->counted = hrec > 0 || w->delivered == 0;
	w->handler_records = hrec;
	w->handler_s = hlast > t0 ? (double)(hlast - t0) / 1e9 : 0;
	if (w->counted && hrec < w->delivered) {
		bench_fail("the %s handler counted %llu records, describe says %llu were delivered",
			   hname, (unsigned long long)hrec, (unsigned long long)w->delivered);
		goto out;
	}
	if (w->handler != BENCH_HANDLER_EXEC && w->counted && hbytes < hrec * w->size) {
		bench_fail("the %s handler saw %llu data bytes in %llu records of %u bytes", hname,
			   (unsigned long long)hbytes, (unsigned long long)hrec, w->size);
		goto out;
	}

	/* 4. A burst while the consumer runs: how long until lag is back to zero. The producer
	 * runs on a thread of its own while this one samples lag_records for the peak. */
	uint64_t burst = a->burst_set ? a->burst : records / 10;
	if (burst && !w->time_bound && !bench_stop) {
		struct burst_job job = {.a = a,
					.addr = addr,
					.stream = stream,
					.records = burst,
					.size = w->size,
					.pr = pr};
		uint64_t *unbounded = calloc(BENCH_SHARDS_MAX, sizeof(*unbounded));
		if (!unbounded) {
			bench_fail("out of memory");
			goto out;
		}
		for (uint32_t i = 0; i < BENCH_SHARDS_MAX; i++)
			unbounded[i] = UINT64_MAX;
		int64_t b0 = sl_mono_ns();
		r = pthread_create(&job.th, NULL, burst_main, &job);
		if (r != 0) {
			free(unbounded);
			bench_fail("cannot start the burst producer: %s", strerror(r));
			goto out;
		}
		int pr_ok = 0;
		while (!atomic_load(&job.done) && pr_ok == 0) {
			usleep(CONSUME_POLL_MS * 1000);
			pr_ok = poll_consumer(c, consumer, unbounded, w->shards, &ps);
			if (ps.lag > w->burst_peak_lag)
				w->burst_peak_lag = ps.lag;
		}
		pthread_join(job.th, NULL);
		free(unbounded);
		if (pr_ok < 0 || job.r < 0)
			goto out;
		int64_t b1 = job.end_ns;
		for (uint32_t i = 0; i < BENCH_SHARDS_MAX; i++)
			expect[i] += pr->per_shard[i];
		w->burst = pr->acked;
		w->burst_produce_s = (double)(b1 - b0) / 1e9;
		if (wait_delivered(c, consumer, expect, w->shards, true, b1 + limit_ns, &t_done,
				   &ps, &w->burst_peak_lag) < 0)
			goto out;
		w->burst_time_bound = t_done == 0;
		int64_t end = t_done ? t_done : sl_mono_ns();
		w->burst_drain_s = (double)(end - b1) / 1e9;
		w->burst_total_s = (double)(end - b0) / 1e9;
	}
	ret = 0;
out:
	if (nremote)
		remote_stop(rth, nremote, &quit);
	for (uint32_t i = 0; ret == 0 && i < nremote; i++)
		if (rth[i].err)
			ret = bench_fail("remote handler %u: %s", i, rth[i].msg);
	if (consumer_made) {
		r = sluice_consumer_delete(c, consumer);
		if (r < 0 && ret == 0)
			ret = bench_fail("cannot delete consumer %s: %s", consumer,
					 sluice_strerror(r));
	}
	sluice_client_close(c);
	free(rth);
	counter_close(&cnt);
	free(expect);
	free(pr);
	int d = bench_stream_delete(addr, stream);
	return ret < 0 ? ret : d;
}

/* ---- output ---- */

static void print_header(FILE *f)
{
	fprintf(f, "%-6s %-6s %5s %6s %6s %9s | %10s %7s %8s | %10s %8s | %8s %9s %9s %9s\n",
		"fsync", "kind", "size", "shards", "batch", "records", "rec/s", "MB/s", "seconds",
		"hdl rec/s", "prod/s", "burst", "drain ms", "total ms", "peak lag");
}

static double row_rate(const struct consume_row *w)
{
	return w->seconds > 0 ? (double)w->delivered / w->seconds : 0;
}

static void print_row(const struct bench_args *a, const struct consume_row *w)
{
	double rps = row_rate(w);
	double hrps = w->handler_s > 0 ? (double)w->handler_records / w->handler_s : 0;
	double prps = w->produce_s > 0 ? (double)w->records / w->produce_s : 0;
	char r1[32], r2[32], r3[32];
	bench_fmt_rate(rps, r1, sizeof(r1));
	if (w->counted && hrps > 0)
		bench_fmt_rate(hrps, r2, sizeof(r2));
	else
		snprintf(r2, sizeof(r2), "n/a");
	bench_fmt_rate(prps, r3, sizeof(r3));
	FILE *f = bench_out(a);
	fprintf(f, "%-6s %-6s %5u %6u %6u %9llu | %10s %7.1f %8.3f | %10s %8s | ", w->mode,
		bench_handler_name(w->handler), w->size, w->shards, w->batch,
		(unsigned long long)w->delivered, r1, rps * w->size / 1e6, w->seconds, r2, r3);
	if (w->burst)
		fprintf(f, "%8llu %9.0f %9.0f %9llu%s%s\n", (unsigned long long)w->burst,
			w->burst_drain_s * 1e3, w->burst_total_s * 1e3,
			(unsigned long long)w->burst_peak_lag, w->time_bound ? " (time bound)" : "",
			w->burst_time_bound ? " (burst time bound)" : "");
	else
		fprintf(f, "%8s %9s %9s %9s%s\n", "-", "-", "-", "-",
			w->time_bound ? " (time bound)" : "");
	fflush(f);
	if (!a->json)
		return;
	struct bench_json j;
	bench_json_begin(&j, "consume");
	bench_json_str(&j, "fsync", w->mode);
	bench_json_str(&j, "handler", bench_handler_name(w->handler));
	bench_json_u64(&j, "size", w->size);
	bench_json_u64(&j, "shards", w->shards);
	bench_json_u64(&j, "batch_size", w->batch);
	bench_json_u64(&j, "records", w->records);
	bench_json_u64(&j, "delivered", w->delivered);
	bench_json_num(&j, "seconds", w->seconds);
	bench_json_num(&j, "records_per_s", rps);
	bench_json_num(&j, "mb_per_s", rps * w->size / 1e6);
	bench_json_u64(&j, "time_bound", w->time_bound);
	if (w->counted) {
		bench_json_u64(&j, "handler_records", w->handler_records);
		bench_json_num(&j, "handler_seconds", w->handler_s);
		bench_json_num(&j, "handler_records_per_s", hrps);
	}
	bench_json_num(&j, "produce_records_per_s", prps);
	if (w->burst) {
		bench_json_u64(&j, "burst_records", w->burst);
		bench_json_num(&j, "burst_produce_ms", w->burst_produce_s * 1e3);
		bench_json_num(&j, "burst_drain_ms", w->burst_drain_s * 1e3);
		bench_json_num(&j, "burst_total_ms", w->burst_total_s * 1e3);
		bench_json_u64(&j, "burst_peak_lag", w->burst_peak_lag);
		bench_json_u64(&j, "burst_time_bound", w->burst_time_bound);
	}
	bench_json_end(&j);
}

static void print_targets(const struct bench_args *a, const struct consume_row *rows, size_t n)
{
	static const double want[] = {
	    [BENCH_HANDLER_PLUGIN] = 5e6,
	    [BENCH_HANDLER_REMOTE] = 1e6,
	    [BENCH_HANDLER_EXEC] = 2e5,
	};
	FILE *f = bench_out(a);
	fprintf(f, "\ntargets (reported, not asserted; best 100 B row of each kind):\n");
	for (int h = BENCH_HANDLER_PLUGIN; h <= BENCH_HANDLER_EXEC; h++) {
		double best = 0;
		bool any = false;
		for (size_t i = 0; i < n; i++) {
			if ((int)rows[i].handler != h || rows[i].size != 100)
				continue;
			any = true;
			if (row_rate(&rows[i]) > best)
				best = row_rate(&rows[i]);
		}
		if (any)
			fprintf(f, "  %-6s: %.2f M records/s (target >= %.1f M): %s\n",
				bench_handler_name((enum bench_handler)h), best / 1e6,
				want[h] / 1e6, best >= want[h] ? "met" : "MISSED");
	}
}

int bench_consume_main(struct bench_args *a)
{
	char scratch[PATH_MAX], fs[32];
	int r = bench_scratch_create(a->dir, scratch, sizeof(scratch));
	if (r < 0)
		return bench_fail("cannot create a scratch folder in %s: %s", a->dir ? a->dir : ".",
				  strerror(-r));
	bench_fs_name(scratch, fs, sizeof(fs));
	/* The bench plugin inside the sluiced we spawn finds its counter files here. */
	setenv(BENCH_COUNTER_DIR_ENV, scratch, 1);
	FILE *f = bench_out(a);
	fprintf(f,
		"sluice-bench consume: %s, data %s (%s), produce first (%u connection(s)), then a "
		"consumer from trim-horizon; bound %.1f s per phase\n",
		a->server ? a->server : "spawned sluiced", scratch, fs, a->connections[0],
		a->seconds);
	if (a->server)
		fprintf(f,
			"note: with --server the plugin cannot count (hdl rec/s n/a) unless that "
			"sluiced has " BENCH_COUNTER_DIR_ENV " set\n");
	fprintf(f,
		"rec/s = delivered / (create -> describe shows all delivered, polled every %d "
		"ms); hdl rec/s = the handler's own count / (create -> its last batch);\n"
		"burst: records produced while running; drain = last ack -> lag 0 on every "
		"shard; total = first send -> lag 0\n\n",
		CONSUME_POLL_MS);
	print_header(f);
	size_t nmodes = a->server ? 1 : a->nfsyncs;
	size_t nrows = nmodes * a->nhandlers * a->nsizes * a->nshards, k = 0;
	struct consume_row *rows = calloc(nrows, sizeof(*rows));
	int ret = rows ? 0 : bench_fail("out of memory");
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
		for (size_t h = 0; h < a->nhandlers && ret == 0; h++) {
			for (size_t s = 0; s < a->nsizes && ret == 0; s++) {
				for (size_t n = 0; n < a->nshards && ret == 0; n++) {
					struct consume_row *w = &rows[k];
					w->mode = mode;
					w->handler = a->handlers[h];
					w->size = a->sizes[s];
					w->shards = a->shards[n];
					ret = consume_one(a, addr, scratch, w);
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
	if (ret == 0)
		print_targets(a, rows, k);
	free(rows);
	unsetenv(BENCH_COUNTER_DIR_ENV);
	if (!a->keep) {
		r = bench_rm_rf(scratch);
		if (r < 0 && ret == 0)
			ret = bench_fail("cannot remove %s: %s", scratch, strerror(-r));
	}
	return ret;
}
