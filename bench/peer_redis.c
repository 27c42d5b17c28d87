/*
 * `compare`, the Redis Streams engine: a private redis-server on a free loopback port with its
 * own folder (fsync: appendonly yes + appendfsync always; async: appendonly no, save ""), one
 * stream key per shard (TAG:N, chosen by an FNV-1a hash of the partition key), XADD pipelined
 * through hiredis with a bounded window of replies outstanding per connection, XREADGROUP +
 * XACK in batches for consume, XREAD BLOCK for the end-to-end reader.
 */
#include "compare.h"

#include <hiredis.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define RD_START_TIMEOUT_MS 15000
#define RD_STOP_TIMEOUT_MS 30000
/* Commands appended per write while the window has room. */
#define RD_APPEND_CHUNK 256
/* How long to wait for outstanding replies once everything is sent. */
#define RD_DRAIN_TIMEOUT_NS 120000000000ll
#define RD_E2E_DRAIN_NS 10000000000ll
#define RD_KEY_MAX 96

struct rd_priv {
	pid_t pid;
	int port;
	bool fsync;
	char dir[4096];
	char log[4096];
};

static redisContext *rd_connect(const struct cmp_engine *e)
{
	const struct rd_priv *s = e->priv;
	struct timeval tv = {.tv_sec = 10};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
	if (!c || c->err) {
		cmp_fail(e, "cannot connect to 127.0.0.1:%d: %s", s->port,
			 c ? c->errstr : "out of memory");
		redisFree(c);
		return NULL;
	}
	/* Replies can take long under fsync with a deep pipeline: no read timeout. */
	struct timeval none = {0};
	redisSetTimeout(c, none);
	return c;
}

/* One command, its reply checked for an error. */
static int rd_cmd(const struct cmp_engine *e, redisContext *c, int argc, const char **argv)
{
	redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
	if (!rep)
		return cmp_fail(e, "%s: %s", argv[0], c->errstr);
	int ret = 0;
	if (rep->type == REDIS_REPLY_ERROR)
		ret = cmp_fail(e, "%s: %s", argv[0], rep->str);
	freeReplyObject(rep);
	return ret;
}

static void shard_key(char *out, const struct cmp_params *p, uint32_t shard)
{
	snprintf(out, RD_KEY_MAX, "%s:%u", p->tag, shard);
}

/* ---- server ---- */

static int rd_start(struct cmp_engine *e, const char *scratch, bool fsync)
{
	struct rd_priv *s = e->priv;
	s->fsync = fsync;
	cmp_command_line("redis-server --version", e->version, sizeof(e->version));
	if (!e->version[0] || strncmp(e->version, "Redis server", 12) != 0)
		return cmp_fail(e, "redis-server not found (apt-get install redis-server): %s",
				e->version);
	/* "Redis server v=7.0.15 sha=... malloc=..." -> "redis-server 7.0.15" */
	const char *v = strstr(e->version, "v=");
	if (v) {
		char num[32];
		snprintf(num, sizeof(num), "%.*s", (int)strcspn(v + 2, " "), v + 2);
		snprintf(e->version, sizeof(e->version), "redis-server %s", num);
	}
	snprintf(s->dir, sizeof(s->dir), "%s/redis-%s", scratch, fsync ? "fsync" : "async");
	snprintf(s->log, sizeof(s->log), "%s/redis-%s.log", scratch, fsync ? "fsync" : "async");
	if (mkdir(s->dir, 0755) < 0 && errno != EEXIST)
		return cmp_fail(e, "cannot create %s: %s", s->dir, strerror(errno));
	s->port = cmp_free_port();
	if (s->port <= 0)
		return cmp_fail(e, "no free port");
	char port[16];
	snprintf(port, sizeof(port), "%d", s->port);
	char *argv[] = {
	    "redis-server",
	    "--port",
	    port,
	    "--bind",
	    "127.0.0.1",
	    "--dir",
	    s->dir,
	    "--daemonize",
	    "no",
	    "--save",
	    "",
	    "--appendonly",
	    fsync ? "yes" : "no",
	    "--appendfsync",
	    fsync ? "always" : "everysec",
	    NULL,
	};
	s->pid = cmp_spawn(argv, s->log);
	if (s->pid < 0)
		return cmp_fail(e, "cannot start redis-server: %s", strerror(errno));
	if (cmp_wait_port(s->port, s->pid, RD_START_TIMEOUT_MS) < 0) {
		char why[256];
		cmp_last_line(s->log, why, sizeof(why));
		cmp_child_stop(s->pid, RD_STOP_TIMEOUT_MS);
		s->pid = 0;
		return cmp_fail(e, "redis-server did not start: %s", why);
	}
	snprintf(e->brief, sizeof(e->brief), "%s",
		 fsync ? "appendonly yes, appendfsync always" : "appendonly no, save \"\"");
	snprintf(e->settings, sizeof(e->settings),
		 "redis-server --port %d --bind 127.0.0.1 --save \"\" %s, other settings default; "
		 "hiredis: XADD TAG:SHARD * d DATA pipelined, up to WINDOW replies outstanding per "
		 "connection; consume: XREADGROUP COUNT BATCH + XACK of the batch (pipelined with "
		 "the next read); e2e: one connection, XREAD BLOCK 100 over all keys",
		 s->port,
		 fsync ? "--appendonly yes --appendfsync always (fsync before replying)"
		       : "--appendonly no (no persistence)");
	return 0;
}

static int rd_stop(struct cmp_engine *e)
{
	struct rd_priv *s = e->priv;
	if (s->pid <= 0)
		return 0;
	int r = cmp_child_stop(s->pid, RD_STOP_TIMEOUT_MS);
	s->pid = 0;
	return r == 0 ? 0 : -1;
}

static int rd_create(struct cmp_engine *e, const struct cmp_params *p)
{
	(void)e;
	(void)p;
	return 0; /* XADD creates the keys */
}

static int rd_drop(struct cmp_engine *e, const struct cmp_params *p)
{
	redisContext *c = rd_connect(e);
	if (!c)
		return -1;
	int ret = 0;
	for (uint32_t k = 0; k < p->shards && ret == 0; k++) {
		char key[RD_KEY_MAX];
		shard_key(key, p, k);
		const char *argv[] = {"UNLINK", key};
		ret = rd_cmd(e, c, 2, argv);
	}
	redisFree(c);
	return ret;
}

/* ---- producers ---- */

struct inflight {
	int64_t due;
	uint32_t shard;
};

struct prod {
	pthread_t th;
	uint32_t idx;
	const struct cmp_engine *e;
	const struct cmp_params *p;
	pthread_barrier_t *barrier;
	int err;
	char msg[256];
	uint64_t sent, acked;
	bool time_bound;
	int64_t t_start, t_end;
	uint64_t per_shard[BENCH_SHARDS_MAX];
	struct bench_hist lat;
};

static int prod_loop(struct prod *t, redisContext *c, uint8_t *data, struct inflight *ring)
{
	const struct cmp_params *p = t->p;
	uint32_t W = p->window;
	char(*keys)[RD_KEY_MAX] = calloc(p->shards, RD_KEY_MAX);
	if (!keys) {
		snprintf(t->msg, sizeof(t->msg), "out of memory");
		return -1;
	}
	for (uint32_t k = 0; k < p->shards; k++)
		shard_key(keys[k], p, k);
	uint64_t n = cmp_share(p, t->idx);
	int64_t limit = (int64_t)(p->seconds * 1e9);
	uint64_t head = 0, inflight = 0;
	bool stop_sending = false;
	int ret = 0;
	char key[CMP_KEY_BYTES];
	int64_t t0 = t->t_start = cmp_now_ns();
	while (((t->sent < n && !stop_sending) || inflight > 0) && ret == 0) {
		int64_t now = cmp_now_ns();
		if (bench_stop) {
			snprintf(t->msg, sizeof(t->msg), "interrupted");
			ret = -1;
			break;
		}
		if (!stop_sending && t->sent < n && now - t0 >= limit) {
			stop_sending = true;
			t->time_bound = true;
		}
		if (now - t0 >= limit + RD_DRAIN_TIMEOUT_NS) {
			snprintf(t->msg, sizeof(t->msg), "%llu replies outstanding after %.0f s",
				 (unsigned long long)inflight, (double)(now - t0) / 1e9);
			ret = -1;
			break;
		}
		unsigned appended = 0;
		while (!stop_sending && t->sent < n && inflight < W && appended < RD_APPEND_CHUNK) {
			int64_t due = cmp_due_ns(p, t0, t->sent);
			if (p->rate > 0 && due > now)
				break;
			if (p->rate <= 0)
				due = now;
			cmp_key(key, t->idx, t->sent);
			uint32_t shard = cmp_shard_of(key, CMP_KEY_BYTES, p->shards);
			uint8_t *d = data + t->sent % 256;
			cmp_stamp(d, due);
			const char *argv[] = {"XADD", keys[shard], "*", "d", (const char *)d};
			size_t argvlen[] = {4, strlen(keys[shard]), 1, 1, p->size};
			if (redisAppendCommandArgv(c, 5, argv, argvlen) != REDIS_OK) {
				snprintf(t->msg, sizeof(t->msg), "append: %s", c->errstr);
				ret = -1;
				break;
			}
			ring[(head + inflight) % W] = (struct inflight){.due = due, .shard = shard};
			inflight++;
			t->sent++;
			appended++;
		}
		if (ret < 0)
			break;
		if (appended) {
			int done = 0;
			do {
				if (redisBufferWrite(c, &done) != REDIS_OK) {
					snprintf(t->msg, sizeof(t->msg), "write: %s", c->errstr);
					ret = -1;
					break;
				}
			} while (!done);
			if (ret < 0)
				break;
		}
		bool more = !stop_sending && t->sent < n;
		int64_t wait_ns = 1000000000;
		if (more && inflight < W) {
			int64_t due = cmp_due_ns(p, t0, t->sent);
			wait_ns = p->rate > 0 ? due - cmp_now_ns() : 0;
			if (wait_ns < 0)
				wait_ns = 0;
		}
		if (inflight == 0) {
			if (more && wait_ns > 0)
				cmp_sleep_until(cmp_now_ns() + wait_ns);
			continue;
		}
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		struct timespec ts = {.tv_sec = wait_ns / 1000000000,
				      .tv_nsec = wait_ns % 1000000000};
		int pr = ppoll(&pfd, 1, &ts, NULL);
		if (pr < 0 && errno != EINTR) {
			snprintf(t->msg, sizeof(t->msg), "poll: %s", strerror(errno));
			ret = -1;
			break;
		}
		if (pr <= 0)
			continue;
		if (redisBufferRead(c) != REDIS_OK) {
			snprintf(t->msg, sizeof(t->msg), "read: %s", c->errstr);
			ret = -1;
			break;
		}
		int64_t got_at = cmp_now_ns();
		for (;;) {
			void *rv = NULL;
			if (redisGetReplyFromReader(c, &rv) != REDIS_OK) {
				snprintf(t->msg, sizeof(t->msg), "reply: %s", c->errstr);
				ret = -1;
				break;
			}
			if (!rv)
				break;
			redisReply *rep = rv;
			if (inflight == 0 || rep->type == REDIS_REPLY_ERROR) {
				snprintf(t->msg, sizeof(t->msg), "XADD: %s",
					 rep->type == REDIS_REPLY_ERROR ? rep->str
									: "unexpected reply");
				freeReplyObject(rep);
				ret = -1;
				break;
			}
			freeReplyObject(rep);
			struct inflight *f = &ring[head % W];
			bench_hist_record(&t->lat, (uint64_t)(got_at - f->due));
			t->per_shard[f->shard]++;
			t->acked++;
			head++;
			inflight--;
		}
	}
	t->t_end = cmp_now_ns();
	free(keys);
	return ret;
}

static void *prod_main(void *arg)
{
	struct prod *t = arg;
	prctl(PR_SET_TIMERSLACK, 1UL);
	redisContext *c = rd_connect(t->e);
	uint8_t *data = cmp_data_new(t->p->size, t->idx);
	struct inflight *ring = calloc(t->p->window, sizeof(*ring));
	if (!c || !data || !ring) {
		t->err = -1;
		snprintf(t->msg, sizeof(t->msg), "%s", c ? "out of memory" : "cannot connect");
	}
	pthread_barrier_wait(t->barrier);
	if (!t->err && prod_loop(t, c, data, ring) < 0)
		t->err = -1;
	free(ring);
	free(data);
	redisFree(c);
	return NULL;
}

static int produce_run(struct cmp_engine *e, const struct cmp_params *p, struct cmp_result *r)
{
	struct prod *th = calloc(p->connections, sizeof(*th));
	if (!th)
		return cmp_fail(e, "out of memory");
	pthread_barrier_t barrier;
	pthread_barrier_init(&barrier, NULL, p->connections);
	for (uint32_t i = 0; i < p->connections; i++) {
		th[i].idx = i;
		th[i].e = e;
		th[i].p = p;
		th[i].barrier = &barrier;
		bench_hist_init(&th[i].lat);
		int err = pthread_create(&th[i].th, NULL, prod_main, &th[i]);
		if (err != 0) {
			cmp_fail(e, "cannot start a producer thread: %s", strerror(err));
			exit(1);
		}
	}
	for (uint32_t i = 0; i < p->connections; i++)
		pthread_join(th[i].th, NULL);
	pthread_barrier_destroy(&barrier);
	int ret = 0;
	int64_t t0 = INT64_MAX, t1 = 0;
	for (uint32_t i = 0; i < p->connections; i++) {
		struct prod *t = &th[i];
		if (t->err && ret == 0)
			ret = cmp_fail(e, "producer %u: %s", i, t->msg);
		r->sent += t->sent;
		r->records += t->acked;
		r->time_bound |= t->time_bound;
		for (uint32_t k = 0; k < p->shards && k < BENCH_SHARDS_MAX; k++)
			r->per_shard[k] += t->per_shard[k];
		bench_hist_merge(&r->lat, &t->lat);
		if (t->t_start && t->t_start < t0)
			t0 = t->t_start;
		if (t->t_end > t1)
			t1 = t->t_end;
	}
	r->seconds = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
	free(th);
	return ret;
}

static int rd_produce(struct cmp_engine *e, const struct cmp_params *p, struct cmp_result *r)
{
	return produce_run(e, p, r);
}

/* ---- consume: XREADGROUP + XACK ---- */

struct reader {
	pthread_t th;
	uint32_t idx, nthreads;
	const struct cmp_engine *e;
	const struct cmp_params *p;
	const struct cmp_result *produced;
	pthread_barrier_t *barrier;
	int err;
	char msg[256];
	uint64_t got;
	bool time_bound;
	int64_t t_start, t_end;
};

/* The entries array of a one-key XREAD/XREADGROUP reply, or NULL when nothing came. */
static const redisReply *entries_of(const redisReply *rep, size_t i)
{
	if (rep->type != REDIS_REPLY_ARRAY || i >= rep->elements)
		return NULL;
	const redisReply *ks = rep->element[i];
	if (ks->type != REDIS_REPLY_ARRAY || ks->elements != 2 ||
	    ks->element[1]->type != REDIS_REPLY_ARRAY)
		return NULL;
	return ks->element[1];
}

/* The data of one stream entry [id, [field, value]], or NULL. */
static const redisReply *entry_value(const redisReply *ent)
{
	if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
	    ent->element[0]->type != REDIS_REPLY_STRING ||
	    ent->element[1]->type != REDIS_REPLY_ARRAY || ent->element[1]->elements != 2)
		return NULL;
	const redisReply *v = ent->element[1]->element[1];
	return v->type == REDIS_REPLY_STRING ? v : NULL;
}

static int consume_key(struct reader *t, redisContext *c, const char *key, uint64_t expect,
		       const char **ack_argv, size_t *ack_len)
{
	const struct cmp_params *p = t->p;
	char count[16], consumer[16];
	snprintf(count, sizeof(count), "%u", p->batch);
	snprintf(consumer, sizeof(consumer), "c%u", t->idx);
	const char *rg[] = {"XREADGROUP", "GROUP",   "g", consumer, "COUNT",
			    count,	  "STREAMS", key, ">"};
	int64_t limit = (int64_t)(p->seconds * 1e9);
	uint64_t got = 0;
	if (redisAppendCommandArgv(c, 9, rg, NULL) != REDIS_OK)
		goto io_error;
	bool pending_ack = false;
	for (;;) {
		void *rv = NULL;
		if (pending_ack) { /* the XACK sent with the previous read */
			if (redisGetReply(c, &rv) != REDIS_OK)
				goto io_error;
			redisReply *ack = rv;
			bool bad = ack->type != REDIS_REPLY_INTEGER;
			freeReplyObject(ack);
			if (bad) {
				snprintf(t->msg, sizeof(t->msg), "%s: XACK failed", key);
				return -1;
			}
			pending_ack = false;
		}
		if (redisGetReply(c, &rv) != REDIS_OK)
			goto io_error;
		redisReply *rep = rv;
		if (rep->type == REDIS_REPLY_ERROR) {
			snprintf(t->msg, sizeof(t->msg), "%s: XREADGROUP: %s", key, rep->str);
			freeReplyObject(rep);
			return -1;
		}
		const redisReply *ents = entries_of(rep, 0);
		size_t n = ents ? ents->elements : 0;
		for (size_t i = 0; i < n; i++) {
			const redisReply *v = entry_value(ents->element[i]);
			if (!v || v->len != p->size) {
				snprintf(t->msg, sizeof(t->msg), "%s: a malformed entry", key);
				freeReplyObject(rep);
				return -1;
			}
			ack_argv[3 + i] = ents->element[i]->element[0]->str;
			ack_len[3 + i] = ents->element[i]->element[0]->len;
		}
		got += n;
		bool last = n == 0 || got >= expect || bench_stop;
		if (!last && cmp_now_ns() - t->t_start >= limit) {
			t->time_bound = true;
			last = true;
		}
		if (n) {
			ack_argv[0] = "XACK";
			ack_argv[1] = key;
			ack_argv[2] = "g";
			ack_len[0] = 4;
			ack_len[1] = strlen(key);
			ack_len[2] = 1;
			if (redisAppendCommandArgv(c, (int)(3 + n), ack_argv, ack_len) !=
			    REDIS_OK) {
				freeReplyObject(rep);
				goto io_error;
			}
			pending_ack = true;
		}
		if (!last && redisAppendCommandArgv(c, 9, rg, NULL) != REDIS_OK) {
			freeReplyObject(rep);
			goto io_error;
		}
		freeReplyObject(rep);
		if (last && !pending_ack)
			break;
		if (last) {
			if (redisGetReply(c, &rv) != REDIS_OK)
				goto io_error;
			freeReplyObject(rv);
			break;
		}
	}
	t->got += got;
	if (got != expect && !t->time_bound && !bench_stop) {
		snprintf(t->msg, sizeof(t->msg), "%s: read %llu records of %llu", key,
			 (unsigned long long)got, (unsigned long long)expect);
		return -1;
	}
	return 0;
io_error:
	snprintf(t->msg, sizeof(t->msg), "%s: %s", key, c->errstr);
	return -1;
}

static void *reader_main(void *arg)
{
	struct reader *t = arg;
	const struct cmp_params *p = t->p;
	redisContext *c = rd_connect(t->e);
	const char **ack_argv = calloc(p->batch + 3, sizeof(*ack_argv));
	size_t *ack_len = calloc(p->batch + 3, sizeof(*ack_len));
	if (!c || !ack_argv || !ack_len) {
		t->err = -1;
		snprintf(t->msg, sizeof(t->msg), "%s", c ? "out of memory" : "cannot connect");
	}
	pthread_barrier_wait(t->barrier);
	t->t_start = cmp_now_ns();
	for (uint32_t k = t->idx; k < p->shards && !t->err && !t->time_bound; k += t->nthreads) {
		char key[RD_KEY_MAX];
		shard_key(key, p, k);
		uint64_t expect = t->produced->per_shard[k];
		if (expect && consume_key(t, c, key, expect, ack_argv, ack_len) < 0)
			t->err = -1;
	}
	t->t_end = cmp_now_ns();
	free(ack_argv);
	free(ack_len);
	redisFree(c);
	return NULL;
}

static int rd_consume(struct cmp_engine *e, const struct cmp_params *p,
		      const struct cmp_result *produced, struct cmp_result *r)
{
	if (p->shards > BENCH_SHARDS_MAX)
		return cmp_fail(e, "too many shards");
	redisContext *c = rd_connect(e);
	if (!c)
		return -1;
	int ret = 0;
	for (uint32_t k = 0; k < p->shards && ret == 0; k++) {
		if (!produced->per_shard[k])
			continue;
		char key[RD_KEY_MAX];
		shard_key(key, p, k);
		const char *argv[] = {"XGROUP", "CREATE", key, "g", "0"};
		ret = rd_cmd(e, c, 5, argv);
	}
	redisFree(c);
	if (ret < 0)
		return ret;
	uint32_t n = p->connections < p->shards ? p->connections : p->shards;
	struct reader *th = calloc(n, sizeof(*th));
	if (!th)
		return cmp_fail(e, "out of memory");
	pthread_barrier_t barrier;
	pthread_barrier_init(&barrier, NULL, n);
	for (uint32_t i = 0; i < n; i++) {
		th[i] = (struct reader){.idx = i,
					.nthreads = n,
					.e = e,
					.p = p,
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
	free(th);
	return ret;
}

/* ---- e2e: XREAD BLOCK ---- */

struct e2e_reader {
	pthread_t th;
	const struct cmp_engine *e;
	const struct cmp_params *p;
	redisContext *c;
	volatile int producers_done;
	volatile uint64_t acked;
	int err;
	char msg[256];
	uint64_t seen;
	struct bench_hist lat;
};

static void *e2e_main(void *arg)
{
	struct e2e_reader *t = arg;
	const struct cmp_params *p = t->p;
	prctl(PR_SET_TIMERSLACK, 1UL);
	uint32_t n = p->shards;
	int argc = 6 + 2 * (int)n;
	const char **argv = calloc((size_t)argc, sizeof(*argv));
	char(*keys)[RD_KEY_MAX] = calloc(n, RD_KEY_MAX);
	char(*ids)[64] = calloc(n, 64);
	char count[16];
	if (!argv || !keys || !ids) {
		t->err = -1;
		snprintf(t->msg, sizeof(t->msg), "out of memory");
		goto out;
	}
	snprintf(count, sizeof(count), "%u", p->batch);
	argv[0] = "XREAD";
	argv[1] = "COUNT";
	argv[2] = count;
	argv[3] = "BLOCK";
	argv[4] = "100";
	argv[5] = "STREAMS";
	for (uint32_t k = 0; k < n; k++) {
		shard_key(keys[k], p, k);
		snprintf(ids[k], 64, "0-0"); /* the keys are new: everything in them is ours */
		argv[6 + k] = keys[k];
		argv[6 + n + k] = ids[k];
	}
	int64_t done_at = 0;
	for (;;) {
		if (bench_stop)
			break;
		if (__atomic_load_n(&t->producers_done, __ATOMIC_ACQUIRE)) {
			if (t->seen >= t->acked)
				break;
			if (!done_at)
				done_at = cmp_now_ns();
			else if (cmp_now_ns() - done_at > RD_E2E_DRAIN_NS)
				break;
		}
		redisReply *rep = redisCommandArgv(t->c, argc, argv, NULL);
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			t->err = -1;
			snprintf(t->msg, sizeof(t->msg), "XREAD: %s",
				 rep ? rep->str : t->c->errstr);
			freeReplyObject(rep);
			break;
		}
		int64_t now = cmp_now_ns();
		for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
			const redisReply *ents = entries_of(rep, i);
			const redisReply *kn = rep->element[i]->element[0];
			uint32_t k = 0;
			while (k < n && strcmp(keys[k], kn->str) != 0)
				k++;
			if (!ents || k == n)
				continue;
			for (size_t j = 0; j < ents->elements; j++) {
				const redisReply *v = entry_value(ents->element[j]);
				if (!v || v->len < CMP_STAMP_BYTES)
					continue;
				int64_t due = cmp_stamp_read((const uint8_t *)v->str);
				bench_hist_record(&t->lat, (uint64_t)(now - due));
				t->seen++;
			}
			if (ents->elements) {
				const redisReply *last = ents->element[ents->elements - 1];
				snprintf(ids[k], 64, "%s", last->element[0]->str);
			}
		}
		freeReplyObject(rep);
	}
out:
	free(argv);
	free(keys);
	free(ids);
	return NULL;
}

static int rd_e2e(struct cmp_engine *e, const struct cmp_params *p, struct cmp_result *r)
{
	struct e2e_reader *t = calloc(1, sizeof(*t));
	struct cmp_result *pr = calloc(1, sizeof(*pr));
	if (!t || !pr) {
		free(t);
		free(pr);
		return cmp_fail(e, "out of memory");
	}
	t->e = e;
	t->p = p;
	bench_hist_init(&t->lat);
	bench_hist_init(&pr->lat);
	int ret = 0;
	/* Connected before the producers start; its first XREAD starts at 0-0 anyway. */
	t->c = rd_connect(e);
	if (!t->c)
		ret = -1;
	int err = ret == 0 ? pthread_create(&t->th, NULL, e2e_main, t) : 0;
	if (err != 0) {
		redisFree(t->c);
		free(t);
		free(pr);
		return cmp_fail(e, "cannot start the reader: %s", strerror(err));
	}
	if (ret == 0) {
		ret = produce_run(e, p, pr);
		t->acked = pr->records;
		__atomic_store_n(&t->producers_done, 1, __ATOMIC_RELEASE);
		pthread_join(t->th, NULL);
	}
	if (t->err && ret == 0)
		ret = cmp_fail(e, "e2e: %s", t->msg);
	if (ret == 0 && t->seen != pr->records && !bench_stop)
		ret = cmp_fail(e, "e2e: the reader saw %llu records, %llu were acknowledged",
			       (unsigned long long)t->seen, (unsigned long long)pr->records);
	r->sent = pr->sent;
	r->seconds = pr->seconds;
	r->time_bound = pr->time_bound;
	r->records = t->seen;
	bench_hist_merge(&r->lat, &t->lat);
	redisFree(t->c);
	free(t);
	free(pr);
	return ret;
}

void cmp_redis_init(struct cmp_engine *e)
{
	static struct rd_priv priv;
	*e = (struct cmp_engine){
	    .name = "redis",
	    .priv = &priv,
	    .start = rd_start,
	    .stop = rd_stop,
	    .create = rd_create,
	    .drop = rd_drop,
	    .produce = rd_produce,
	    .consume = rd_consume,
	    .e2e = rd_e2e,
	};
}
