/*
 * `compare`, the sluice engine: a private sluiced (bench_server_start: --fsync group for the
 * fsync class, --fsync never for async), libsluice async producers (one sending thread and one
 * connection per connection asked for; flat out, each thread has a producer of its own with the
 * library's defaults; paced, the threads share one producer, see SL_PACED_LINGER_US), libsluice
 * shard readers for consume and for the end-to-end reader.
 */
#include "compare.h"
#include "bench_counter.h"

#include <sluice/client.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define SL_RETENTION_MS (24ull * 3600 * 1000)
#define SL_FLUSH_TIMEOUT_MS 120000
/* How long a dropped stream's folder may take to go (sl_drop). */
#define DROP_WAIT_MS 60000
/* e2e readers: how long one read waits on the server for records (long poll). */
#define SL_E2E_WAIT_MS 100
/* How long the e2e reader waits for the last acknowledged records after the producers are done. */
#define SL_E2E_DRAIN_NS 10000000000ll
/*
 * The producer of the paced (latency) measurements: no linger and one request in flight per
 * connection (Nagle's rule: a record goes at once when nothing is in flight; records that arrive
 * while a request is out go together in the next one, sent as its answer comes back). Requests
 * grow with the round trip instead of with a timer, so the paced rows cost the fewest requests
 * (and context switches) a record's latency allows. Measured on the 2-core VM (sluice alone,
 * the 8 configurations, 2026-11-29): against linger 200 us and 8 in flight, p99 fell by 38-64%
 * with 8 connections and stayed within noise with 1; linger none with 2 in flight was in
 * between. -D overrides for experiments.
 *
 * With several connections the sending threads share one producer over that many connections
 * (as a Kafka producer is shared by an application's threads): their records coalesce into
 * fewer requests and one I/O thread serves all connections instead of one per thread. With 8
 * connections that cut p50 by 32-73% and p99 by 15-64% against a producer per thread (2 pairs
 * of each 8-connection row). Flat out it lost 5-25% on async (the threads take turns on the
 * producer's lock), so the flat-out rows keep a producer per thread.
 */
#ifndef SL_PACED_LINGER_US
#define SL_PACED_LINGER_US -1
#endif
#ifndef SL_PACED_INFLIGHT
#define SL_PACED_INFLIGHT 1
#endif
#define SL_STR_(x) #x
#define SL_STR(x) SL_STR_(x)
#define SL_PACED_SETTINGS                                                                          \
	"linger_us " SL_STR(SL_PACED_LINGER_US) " (none), " SL_STR(                                \
	    SL_PACED_INFLIGHT) " request(s) in flight per connection"
#define CTX_THREAD_SHIFT 58
#define CTX_NS_MASK ((1ull << CTX_THREAD_SHIFT) - 1)

struct sl_priv {
	struct bench_server srv;
	bool fsync;
	char scratch[PATH_MAX];
};

const char *cmp_sluice_addr(const struct cmp_engine *e)
{
	return ((const struct sl_priv *)e->priv)->srv.addr;
}

const char *cmp_sluice_scratch(const struct cmp_engine *e)
{
	return ((const struct sl_priv *)e->priv)->scratch;
}

/* ---- server ---- */

static void sluiced_version(char *out, size_t len)
{
	char self[PATH_MAX], bin[PATH_MAX + 64], cmd[PATH_MAX + 96];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	snprintf(cmd, sizeof(cmd), "sluiced --version");
	if (n > 0) {
		self[n] = 0;
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			snprintf(bin, sizeof(bin), "%s/../src/server/sluiced", self);
			if (access(bin, X_OK) == 0)
				snprintf(cmd, sizeof(cmd), "'%s' --version", bin);
		}
	}
	cmp_command_line(cmd, out, len);
	if (!out[0])
		snprintf(out, len, "sluiced (unknown version)");
}

static int sl_start(struct cmp_engine *e, const char *scratch, bool fsync)
{
	struct sl_priv *s = e->priv;
	s->fsync = fsync;
	snprintf(s->scratch, sizeof(s->scratch), "%s", scratch);
	/* The bench plugin (the handler rows) finds its counter and latency files there. */
	setenv(BENCH_COUNTER_DIR_ENV, scratch, 1);
	sluiced_version(e->version, sizeof(e->version));
	/* The HTTP port for /metrics: the paced rows report the server's fdatasyncs. */
	static const char *const http[] = {"--http-listen", "127.0.0.1:0", NULL};
	if (bench_server_start_args(scratch, fsync ? BENCH_FSYNC_GROUP : BENCH_FSYNC_NEVER, http,
				    &s->srv) < 0)
		return cmp_fail(e, "sluiced did not start");
	cmp_child_add(s->srv.pid);
	snprintf(e->brief, sizeof(e->brief), "--fsync %s", fsync ? "group" : "never");
	snprintf(e->settings, sizeof(e->settings),
		 "sluiced --fsync %s (ack after %s) --listen 127.0.0.1:0 --http-listen "
		 "127.0.0.1:0 (/metrics, read between paced slices), other flags default; produce: "
		 "one sending thread and connection per connection, each "
		 "thread with a libsluice producer of its own, library defaults (500 records or 1 "
		 "MiB per request, linger 5 ms, 8 requests in flight, 32 MiB buffer); paced rows "
		 "(produce_latency, e2e): the threads share one producer over the "
		 "connections, " SL_PACED_SETTINGS
		 "; consume: shard readers from TRIM_HORIZON; e2e: one thread "
		 "and connection per shard, a shard reader from LATEST with long-poll reads "
		 "(wait_ms 100); consume_handler / e2e_handler: a consumer with the bench plugin, "
		 "batch --batch; firehose: file://, zstd 3, 5 MiB buffers; replay: the sluice CLI, "
		 "--keep-keys",
		 fsync ? "group" : "never",
		 fsync ? "group-committed fdatasync" : "the write to the page cache");
	return 0;
}

static int sl_stop(struct cmp_engine *e)
{
	struct sl_priv *s = e->priv;
	pid_t pid = s->srv.pid;
	if (pid <= 0)
		return 0;
	int r = bench_server_stop(&s->srv);
	cmp_child_forget(pid);
	return r;
}

static int sl_create(struct cmp_engine *e, const struct cmp_params *p)
{
	struct sl_priv *s = e->priv;
	return bench_stream_create(s->srv.addr, p->tag, p->shards) < 0
		   ? cmp_fail(e, "cannot create stream %s", p->tag)
		   : 0;
}

/*
 * Delete the stream and wait until sluiced has removed its folder: a deleted stream's files go
 * after the DELETE is answered (a reaper thread of sluiced removes them), and unlinking a
 * gigabyte of segments makes the file system's journal stall the fdatasyncs of whatever is
 * measured next (0.1-0.7 s in the next paced row's tail, seen on ext4).
 */
static int sl_drop(struct cmp_engine *e, const struct cmp_params *p)
{
	struct sl_priv *s = e->priv;
	if (bench_stream_delete(s->srv.addr, p->tag) < 0)
		return cmp_fail(e, "cannot delete stream %s", p->tag);
	char dir[sizeof(s->srv.data_dir) + sizeof(p->tag) + 16];
	snprintf(dir, sizeof(dir), "%s/streams/%s", s->srv.data_dir, p->tag);
	for (int i = 0; i < DROP_WAIT_MS / 10 && access(dir, F_OK) == 0; i++)
		usleep(10000);
	if (access(dir, F_OK) == 0)
		return cmp_fail(e, "stream %s deleted, but its folder %s is still there after %d s",
				p->tag, dir, DROP_WAIT_MS / 1000);
	return 0;
}

/* ---- producers ---- */

struct prod {
	pthread_t th;
	uint32_t idx;
	const struct cmp_params *p;
	const char *addr;
	pthread_barrier_t *barrier;
	int err;
	uint64_t sent;
	bool time_bound;
	int64_t t_start, t_end;
	/* written by the producer's I/O thread (callbacks), read after destroy */
	uint64_t acked, failed;
	int first_error;
	uint64_t per_shard[BENCH_SHARDS_MAX];
	struct bench_hist lat;
	struct sluice_producer *shared; /* paced: the producer every sending thread shares */
};

static struct prod *g_prods;
static int64_t g_epoch;

static void on_ack(void *ctx, int status, uint32_t shard_id, uint64_t seq)
{
	(void)seq;
	uint64_t v = (uint64_t)(uintptr_t)ctx;
	struct prod *t = &g_prods[v >> CTX_THREAD_SHIFT];
	if (status == 0) {
		int64_t due = g_epoch + (int64_t)(v & CTX_NS_MASK);
		t->acked++;
		bench_hist_record(&t->lat, (uint64_t)(cmp_now_ns() - due));
		if (shard_id < BENCH_SHARDS_MAX)
			t->per_shard[shard_id]++;
	} else {
		t->failed++;
		if (!t->first_error)
			t->first_error = status;
	}
}

static void *prod_main(void *arg)
{
	struct prod *t = arg;
	const struct cmp_params *p = t->p;
	prctl(PR_SET_TIMERSLACK, 1UL);
	/* Flat out: a producer of its own with the library's defaults. */
	struct sluice_producer_options o = {.connections = 1};
	struct sluice_producer *pr = t->shared;
	uint8_t *data = cmp_data_new(p->size, t->idx);
	int r = !data ? -ENOMEM : pr ? 0 : sluice_producer_create(t->addr, &o, &pr);
	if (r < 0)
		t->err = r;
	pthread_barrier_wait(t->barrier);
	if (r < 0)
		goto out;
	uint64_t n = cmp_share(p, t->idx);
	int64_t limit = (int64_t)(p->seconds * 1e9);
	char key[CMP_KEY_BYTES];
	t->t_start = cmp_now_ns();
	int64_t t0 = t->t_start;
	for (uint64_t i = 0; i < n; i++) {
		int64_t now = cmp_now_ns();
		if (i % 256 == 0 && (bench_stop || now - t0 >= limit)) {
			t->time_bound = !bench_stop;
			break;
		}
		int64_t due = cmp_due_ns(p, t0, i);
		if (p->rate > 0 && due > now)
			cmp_sleep_until(due);
		else if (p->rate <= 0)
			due = now;
		cmp_key(key, t->idx, i);
		uint8_t *d = data + i % 256;
		cmp_stamp(d, due);
		uint64_t ctx = ((uint64_t)t->idx << CTX_THREAD_SHIFT) |
			       ((uint64_t)(due - g_epoch) & CTX_NS_MASK);
		r = sluice_producer_send(pr, p->tag, key, CMP_KEY_BYTES, d, p->size, on_ack,
					 (void *)(uintptr_t)ctx);
		if (r < 0) {
			t->err = r;
			break;
		}
		t->sent++;
	}
	r = sluice_producer_flush(pr, SL_FLUSH_TIMEOUT_MS);
	if (r < 0 && !t->err)
		t->err = r;
	t->t_end = cmp_now_ns();
out:
	if (!t->shared)
		sluice_producer_destroy(pr);
	free(data);
	return NULL;
}

/* Run p->connections sending threads to the end; fills r (records, sent, seconds, per_shard,
 * lat). */
int cmp_sluice_produce(struct cmp_engine *e, const struct cmp_params *p, struct cmp_result *r)
{
	struct sl_priv *s = e->priv;
	struct prod *th = calloc(p->connections, sizeof(*th));
	if (!th)
		return cmp_fail(e, "out of memory");
	struct sluice_producer *shared = NULL;
	if (p->rate > 0) {
		struct sluice_producer_options o = {.connections = p->connections,
						    .linger_us = SL_PACED_LINGER_US,
						    .max_inflight_requests = SL_PACED_INFLIGHT};
		int err = sluice_producer_create(s->srv.addr, &o, &shared);
		if (err < 0) {
			free(th);
			return cmp_fail(e, "cannot start the producer: %s", sluice_strerror(err));
		}
	}
	pthread_barrier_t barrier;
	pthread_barrier_init(&barrier, NULL, p->connections);
	g_prods = th;
	g_epoch = cmp_now_ns();
	for (uint32_t i = 0; i < p->connections; i++) {
		th[i].idx = i;
		th[i].p = p;
		th[i].addr = s->srv.addr;
		th[i].barrier = &barrier;
		th[i].shared = shared;
		bench_hist_init(&th[i].lat);
		int err = pthread_create(&th[i].th, NULL, prod_main, &th[i]);
		if (err != 0) {
			cmp_fail(e, "cannot start a producer thread: %s", strerror(err));
			exit(1); /* the barrier would never open */
		}
	}
	for (uint32_t i = 0; i < p->connections; i++)
		pthread_join(th[i].th, NULL);
	sluice_producer_destroy(shared); /* after it the callbacks' counts are final */
	pthread_barrier_destroy(&barrier);
	int ret = 0;
	int64_t t0 = INT64_MAX, t1 = 0;
	for (uint32_t i = 0; i < p->connections; i++) {
		struct prod *t = &th[i];
		r->sent += t->sent;
		r->records += t->acked;
		r->time_bound |= t->time_bound;
		for (uint32_t k = 0; k < BENCH_SHARDS_MAX; k++)
			r->per_shard[k] += t->per_shard[k];
		bench_hist_merge(&r->lat, &t->lat);
		if (t->t_start && t->t_start < t0)
			t0 = t->t_start;
		if (t->t_end > t1)
			t1 = t->t_end;
		if (t->err && ret == 0)
			ret = cmp_fail(e, "producer %u: %s", i, sluice_strerror(t->err));
		if (t->failed && ret == 0)
			ret = cmp_fail(e, "producer %u: %llu records failed: %s", i,
				       (unsigned long long)t->failed,
				       sluice_strerror(t->first_error));
	}
	r->seconds = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
	g_prods = NULL;
	free(th);
	return ret;
}

static int sl_produce(struct cmp_engine *e, const struct cmp_params *p, struct cmp_result *r)
{
	return cmp_sluice_produce(e, p, r);
}

/* ---- consume: shard readers ---- */

struct reader {
	pthread_t th;
	uint32_t idx, nthreads;
	const struct cmp_params *p;
	const char *addr;
	const struct sluice_shard_info *shards;
	size_t nshards;
	const struct cmp_result *produced;
	pthread_barrier_t *barrier;
	int err;
	char msg[256];
	uint64_t got;
	bool time_bound;
	int64_t t_start, t_end;
};

static void *reader_main(void *arg)
{
	struct reader *t = arg;
	const struct cmp_params *p = t->p;
	struct sluice_client *c = NULL;
	int r = sluice_client_connect(t->addr, NULL, &c);
	if (r < 0) {
		t->err = r;
		snprintf(t->msg, sizeof(t->msg), "cannot connect: %s", sluice_strerror(r));
	}
	pthread_barrier_wait(t->barrier);
	if (r < 0)
		goto out;
	t->t_start = cmp_now_ns();
	int64_t limit = (int64_t)(p->seconds * 1e9);
	for (size_t k = t->idx; k < t->nshards && !t->err; k += t->nthreads) {
		uint32_t id = t->shards[k].shard_id;
		uint64_t expect = id < BENCH_SHARDS_MAX ? t->produced->per_shard[id] : 0;
		struct sluice_position pos = {.type = SLUICE_POS_TRIM_HORIZON};
		struct sluice_shard_reader *rd = NULL;
		r = sluice_shard_reader_create(c, p->tag, id, &pos, &rd);
		uint64_t got = 0;
		while (r == 0 && got < expect && !bench_stop) {
			const struct sluice_read_result *b;
			r = sluice_shard_reader_next(rd, p->batch, 0, &b);
			if (r < 0)
				break;
			r = 0;
			for (size_t i = 0; i < b->count; i++) {
				if (b->records[i].data_len != p->size) {
					t->err = -1;
					snprintf(t->msg, sizeof(t->msg),
						 "shard %u: a record of %u bytes, %u expected", id,
						 b->records[i].data_len, p->size);
					break;
				}
			}
			got += b->count;
			if (t->err || (b->count == 0 && sluice_shard_reader_caught_up(rd)))
				break;
			if (cmp_now_ns() - t->t_start >= limit) {
				t->time_bound = true;
				break;
			}
		}
		sluice_shard_reader_destroy(rd);
		t->got += got;
		if (r < 0 && !t->err) {
			t->err = r;
			snprintf(t->msg, sizeof(t->msg), "shard %u: read failed: %s", id,
				 sluice_strerror(r));
		} else if (!t->err && !t->time_bound && !bench_stop && got != expect) {
			t->err = -1;
			snprintf(t->msg, sizeof(t->msg), "shard %u: read %llu records of %llu", id,
				 (unsigned long long)got, (unsigned long long)expect);
		}
		if (t->time_bound)
			break;
	}
	t->t_end = cmp_now_ns();
out:
	sluice_client_close(c);
	return NULL;
}

static int list_shards(struct cmp_engine *e, const struct cmp_params *p,
		       struct sluice_shard_info **ret, size_t *ret_n)
{
	struct sl_priv *s = e->priv;
	struct sluice_client *c = NULL;
	int r = sluice_client_connect(s->srv.addr, NULL, &c);
	if (r == 0)
		r = sluice_list_shards(c, p->tag, ret, ret_n);
	sluice_client_close(c);
	return r < 0 ? cmp_fail(e, "cannot list the shards of %s: %s", p->tag, sluice_strerror(r))
		     : 0;
}

static int sl_consume(struct cmp_engine *e, const struct cmp_params *p,
		      const struct cmp_result *produced, struct cmp_result *r)
{
	struct sl_priv *s = e->priv;
	struct sluice_shard_info *shards = NULL;
	size_t nshards = 0;
	if (list_shards(e, p, &shards, &nshards) < 0)
		return -1;
	uint32_t n = p->connections < nshards ? p->connections : (uint32_t)nshards;
	struct reader *th = calloc(n, sizeof(*th));
	if (!th) {
		sluice_shards_free(shards);
		return cmp_fail(e, "out of memory");
	}
	pthread_barrier_t barrier;
	pthread_barrier_init(&barrier, NULL, n);
	for (uint32_t i = 0; i < n; i++) {
		th[i] = (struct reader){.idx = i,
					.nthreads = n,
					.p = p,
					.addr = s->srv.addr,
					.shards = shards,
					.nshards = nshards,
					.produced = produced,
					.barrier = &barrier};
		int err = pthread_create(&th[i].th, NULL, reader_main, &th[i]);
		if (err != 0) {
			cmp_fail(e, "cannot start a reader thread: %s", strerror(err));
			exit(1);
		}
	}
	for (uint32_t i = 0; i < n; i++)
		pthread_join(th[i].th, NULL);
	pthread_barrier_destroy(&barrier);
	int ret = 0;
	int64_t t0 = INT64_MAX, t1 = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (th[i].err && ret == 0)
			ret = cmp_fail(e, "consume: %s", th[i].msg);
		r->records += th[i].got;
		r->time_bound |= th[i].time_bound;
		if (th[i].t_start && th[i].t_start < t0)
			t0 = th[i].t_start;
		if (th[i].t_end > t1)
			t1 = th[i].t_end;
	}
	r->seconds = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
	if (ret == 0 && !r->time_bound && r->records != produced->records)
		ret =
		    cmp_fail(e, "consume: read %llu records of %llu",
			     (unsigned long long)r->records, (unsigned long long)produced->records);
	free(th);
	sluice_shards_free(shards);
	return ret;
}

/* ---- e2e ---- */

struct e2e_reader {
	pthread_t th;
	struct cmp_engine *e;
	const struct cmp_params *p;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int state; /* 0 starting, 1 ready, 2 failed */
	volatile int producers_done;
	volatile uint64_t acked; /* set with producers_done */
	int err;
	char msg[256];
	uint64_t seen;
	struct bench_hist lat;
};

static void e2e_set_state(struct e2e_reader *t, int state)
{
	pthread_mutex_lock(&t->mu);
	t->state = state;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

/* One shard's e2e reader: its own connection, long-poll reads (wait_ms) from LATEST. */
struct e2e_shard {
	pthread_t th;
	struct e2e_reader *t;
	uint32_t shard_id;
	int err;
	uint64_t seen;
	struct bench_hist lat;
	/* set before the reader reports ready */
	struct sluice_client *c;
	struct sluice_shard_reader *rd;
};

static uint64_t g_e2e_seen; /* all shards, atomic */

static void *e2e_shard_main(void *arg)
{
	struct e2e_shard *sh = arg;
	struct e2e_reader *t = sh->t;
	const struct cmp_params *p = t->p;
	prctl(PR_SET_TIMERSLACK, 1UL);
	int64_t done_at = 0;
	for (;;) {
		if (bench_stop)
			break;
		if (__atomic_load_n(&t->producers_done, __ATOMIC_ACQUIRE)) {
			if (__atomic_load_n(&g_e2e_seen, __ATOMIC_RELAXED) >= t->acked)
				break;
			if (!done_at)
				done_at = cmp_now_ns();
			else if (cmp_now_ns() - done_at > SL_E2E_DRAIN_NS)
				break;
		}
		const struct sluice_read_result *b;
		int r = sluice_shard_reader_next(sh->rd, p->batch, 0, &b);
		if (r < 0) {
			sh->err = r;
			break;
		}
		int64_t now = cmp_now_ns();
		for (size_t k = 0; k < b->count; k++) {
			int64_t due = cmp_stamp_read(b->records[k].data);
			bench_hist_record(&sh->lat, (uint64_t)(now - due));
		}
		sh->seen += b->count;
		__atomic_add_fetch(&g_e2e_seen, b->count, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *e2e_main(void *arg)
{
	struct e2e_reader *t = arg;
	struct sl_priv *s = t->e->priv;
	const struct cmp_params *p = t->p;
	struct sluice_client *c = NULL;
	struct sluice_shard_info *shards = NULL;
	size_t n = 0, started = 0;
	struct e2e_shard *sh = NULL;
	__atomic_store_n(&g_e2e_seen, 0, __ATOMIC_RELAXED);
	int r = sluice_client_connect(s->srv.addr, NULL, &c);
	if (r == 0)
		r = sluice_list_shards(c, p->tag, &shards, &n);
	if (r == 0 && n > BENCH_SHARDS_MAX)
		r = -E2BIG;
	if (r == 0 && !(sh = calloc(n, sizeof(*sh))))
		r = -ENOMEM;
	for (size_t i = 0; i < n && r == 0; i++) {
		struct sluice_position pos = {.type = SLUICE_POS_LATEST};
		const struct sluice_read_result *b;
		sh[i].t = t;
		sh[i].shard_id = shards[i].shard_id;
		bench_hist_init(&sh[i].lat);
		r = sluice_client_connect(s->srv.addr, NULL, &sh[i].c);
		if (r == 0)
			r = sluice_shard_reader_create(sh[i].c, p->tag, shards[i].shard_id, &pos,
						       &sh[i].rd);
		if (r == 0) /* pin the position before the producers start */
			r = sluice_shard_reader_next(sh[i].rd, p->batch, 0, &b);
		if (r > 0)
			r = 0;
		if (r == 0)
			r = sluice_shard_reader_set_wait(sh[i].rd, SL_E2E_WAIT_MS);
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		int err = pthread_create(&sh[i].th, NULL, e2e_shard_main, &sh[i]);
		if (err != 0) {
			r = -err;
			break;
		}
		started++;
	}
	if (r < 0) {
		t->err = r;
		snprintf(t->msg, sizeof(t->msg), "e2e reader: %s", sluice_strerror(r));
		__atomic_store_n(&t->producers_done, 1, __ATOMIC_RELEASE); /* stop the started */
		e2e_set_state(t, 2);
	} else {
		e2e_set_state(t, 1);
	}
	for (size_t i = 0; i < started; i++) {
		pthread_join(sh[i].th, NULL);
		t->seen += sh[i].seen;
		bench_hist_merge(&t->lat, &sh[i].lat);
		if (sh[i].err && !t->err) {
			t->err = sh[i].err;
			snprintf(t->msg, sizeof(t->msg), "e2e reader of shard %u: %s",
				 sh[i].shard_id, sluice_strerror(sh[i].err));
		}
	}
	for (size_t i = 0; sh && i < n; i++) {
		sluice_shard_reader_destroy(sh[i].rd);
		sluice_client_close(sh[i].c);
	}
	free(sh);
	sluice_shards_free(shards);
	sluice_client_close(c);
	return NULL;
}

static int sl_e2e(struct cmp_engine *e, const struct cmp_params *p, struct cmp_result *r)
{
	struct e2e_reader *t = calloc(1, sizeof(*t));
	if (!t)
		return cmp_fail(e, "out of memory");
	t->e = e;
	t->p = p;
	bench_hist_init(&t->lat);
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	int err = pthread_create(&t->th, NULL, e2e_main, t);
	if (err != 0) {
		free(t);
		return cmp_fail(e, "cannot start the reader: %s", strerror(err));
	}
	pthread_mutex_lock(&t->mu);
	while (t->state == 0)
		pthread_cond_wait(&t->cv, &t->mu);
	int state = t->state;
	pthread_mutex_unlock(&t->mu);
	int ret = 0;
	struct cmp_result *pr = calloc(1, sizeof(*pr));
	if (!pr)
		ret = cmp_fail(e, "out of memory");
	if (state == 1 && ret == 0) {
		bench_hist_init(&pr->lat);
		ret = cmp_sluice_produce(e, p, pr);
		t->acked = pr->records;
	}
	__atomic_store_n(&t->producers_done, 1, __ATOMIC_RELEASE);
	pthread_join(t->th, NULL);
	if (t->err && ret == 0)
		ret = cmp_fail(e, "%s", t->msg);
	if (ret == 0 && pr->records != pr->sent)
		ret = cmp_fail(e, "e2e: %llu of %llu records not acknowledged",
			       (unsigned long long)(pr->sent - pr->records),
			       (unsigned long long)pr->sent);
	if (ret == 0 && t->seen != pr->records && !bench_stop)
		ret = cmp_fail(e, "e2e: the reader saw %llu records, %llu were acknowledged",
			       (unsigned long long)t->seen, (unsigned long long)pr->records);
	if (pr) {
		r->sent = pr->sent;
		r->seconds = pr->seconds;
		r->time_bound = pr->time_bound;
	}
	r->records = t->seen;
	bench_hist_merge(&r->lat, &t->lat);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	free(pr);
	free(t);
	return ret;
}

static int sl_fsync_histogram(struct cmp_engine *e, uint64_t *counts)
{
	struct sl_priv *s = e->priv;
	if (bench_server_histogram(&s->srv, "sluice_fsync_duration_seconds", counts) < 0)
		return cmp_fail(e, "cannot read sluiced's fdatasync histogram from /metrics");
	return 0;
}

void cmp_sluice_init(struct cmp_engine *e)
{
	static struct sl_priv priv;
	*e = (struct cmp_engine){
	    .name = "sluice",
	    .priv = &priv,
	    .start = sl_start,
	    .stop = sl_stop,
	    .create = sl_create,
	    .drop = sl_drop,
	    .produce = sl_produce,
	    .consume = sl_consume,
	    .e2e = sl_e2e,
	    .sluice_only = cmp_sluice_only,
	    .fsync_histogram = sl_fsync_histogram,
	};
}
