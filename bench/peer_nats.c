/*
 * `compare`, the NATS JetStream engine: a private `nats-server -js` with a generated config (file
 * storage in its own folder, a free loopback port; for the fsync class `sync_interval: always`
 * when this nats-server knows the option, which `nats-server -t` tells), one stream per
 * measurement with one subject per shard (TAG.N, chosen by an FNV-1a hash of the partition key),
 * js_PublishAsync with a bounded number of pending acks per connection, a pull consumer per
 * subject (js_PullSubscribe + natsSubscription_Fetch, AckAll on the batch's last message) for
 * consume, and a push consumer (AckNone) for the end-to-end reader.
 */
#include "compare.h"

#include <nats/nats.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NT_START_TIMEOUT_MS 15000
#define NT_STOP_TIMEOUT_MS 30000
#define NT_COMPLETE_TIMEOUT_MS 120000
#define NT_FETCH_TIMEOUT_MS 5000
#define NT_E2E_DRAIN_NS 10000000000ll
#define NT_SUBJ_MAX 96

struct nt_priv {
	pid_t pid;
	int port;
	bool fsync;
	bool sync_always; /* the server was given sync_interval: always */
	char url[64];
	char dir[4096];
	char log[4096];
	char conf[4096];
};

static const char *nt_err(natsStatus s)
{
	const char *last = nats_GetLastError(NULL);
	return last && last[0] ? last : natsStatus_GetText(s);
}

static int write_conf(const struct nt_priv *s, bool sync_always)
{
	FILE *f = fopen(s->conf, "w");
	if (!f)
		return -1;
	fprintf(f,
		"listen: 127.0.0.1:%d\n"
		"jetstream {\n"
		"  store_dir: \"%s/js\"\n"
		"%s"
		"}\n",
		s->port, s->dir, sync_always ? "  sync_interval: always\n" : "");
	return fclose(f) == 0 ? 0 : -1;
}

/* Whether this nats-server accepts the config (`-t`: test configuration and exit). */
static bool conf_ok(const char *conf)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "nats-server -c '%s' -t >/dev/null 2>&1", conf);
	int st = system(cmd);
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int nt_start(struct cmp_engine *e, const char *scratch, bool fsync)
{
	struct nt_priv *s = e->priv;
	s->fsync = fsync;
	cmp_command_line("nats-server --version", e->version, sizeof(e->version));
	if (strncmp(e->version, "nats-server", 11) != 0)
		return cmp_fail(e, "nats-server not found (apt-get install nats-server): %s",
				e->version);
	/* "nats-server: v2.9.10" -> "nats-server 2.9.10" */
	const char *v = strstr(e->version, ": v");
	if (v) {
		char num[32];
		snprintf(num, sizeof(num), "%s", v + 3);
		snprintf(e->version, sizeof(e->version), "nats-server %s", num);
	}
	const char *mode = fsync ? "fsync" : "async";
	snprintf(s->dir, sizeof(s->dir), "%s/nats-%s", scratch, mode);
	snprintf(s->log, sizeof(s->log), "%s/nats-%s.log", scratch, mode);
	snprintf(s->conf, sizeof(s->conf), "%s/nats-%s.conf", scratch, mode);
	if (mkdir(s->dir, 0755) < 0 && errno != EEXIST)
		return cmp_fail(e, "cannot create %s: %s", s->dir, strerror(errno));
	s->port = cmp_free_port();
	if (s->port <= 0)
		return cmp_fail(e, "no free port");
	s->sync_always = false;
	e->note[0] = 0;
	if (fsync) {
		if (write_conf(s, true) < 0)
			return cmp_fail(e, "cannot write %s", s->conf);
		s->sync_always = conf_ok(s->conf);
		if (!s->sync_always)
			snprintf(e->note, sizeof(e->note),
				 "%s does not know `sync_interval` (added in 2.10): its fsync "
				 "rows run with the default (acknowledged before fsync, data "
				 "fsynced every 2 min), i.e. they are NOT fsync-per-ack",
				 e->version);
	}
	if (write_conf(s, s->sync_always) < 0)
		return cmp_fail(e, "cannot write %s", s->conf);
	char *argv[] = {"nats-server", "-js", "-c", s->conf, NULL};
	s->pid = cmp_spawn(argv, s->log);
	if (s->pid < 0)
		return cmp_fail(e, "cannot start nats-server: %s", strerror(errno));
	if (cmp_wait_port(s->port, s->pid, NT_START_TIMEOUT_MS) < 0) {
		char why[256];
		cmp_last_line(s->log, why, sizeof(why));
		cmp_child_stop(s->pid, NT_STOP_TIMEOUT_MS);
		s->pid = 0;
		return cmp_fail(e, "nats-server did not start: %s", why);
	}
	snprintf(s->url, sizeof(s->url), "nats://127.0.0.1:%d", s->port);
	snprintf(e->brief, sizeof(e->brief), "%s",
		 s->sync_always ? "sync_interval: always"
		 : fsync	? "sync_interval unsupported (2.9): default, fsync every 2 min"
				: "default (fsync every 2 min)");
	snprintf(e->settings, sizeof(e->settings),
		 "nats-server -js, listen 127.0.0.1:%d, file store%s, other settings default; "
		 "stream TAG (subjects TAG.*, file storage, limits retention); libnats "
		 "js_PublishAsync, MaxPending WINDOW per connection; consume: a pull consumer per "
		 "subject, Fetch(BATCH), AckAll on the last message of each batch; e2e: one push "
		 "consumer (AckNone) on TAG.*",
		 s->port,
		 s->sync_always ? ", sync_interval: always (fsync every write)"
		 : fsync	? ", sync_interval not supported by this server: default (fsync "
				  "every 2 min)"
				: " (default sync: every 2 min)");
	return 0;
}

static int nt_stop(struct cmp_engine *e)
{
	struct nt_priv *s = e->priv;
	if (s->pid <= 0)
		return 0;
	/* nats-server exits with status 1 after SIGTERM: that is its clean shutdown. */
	int r = cmp_child_stop(s->pid, NT_STOP_TIMEOUT_MS);
	s->pid = 0;
	return r == 0 || r == 1 ? 0 : -1;
}

/* A connection and its JetStream context; jo may be NULL. */
static int nt_connect(const struct cmp_engine *e, jsOptions *jo, natsConnection **nc, jsCtx **js)
{
	const struct nt_priv *s = e->priv;
	natsOptions *opts = NULL;
	natsStatus st = natsOptions_Create(&opts);
	if (st == NATS_OK)
		st = natsOptions_SetURL(opts, s->url);
	if (st == NATS_OK)
		st = natsOptions_SetTimeout(opts, 10000);
	if (st == NATS_OK)
		st = natsOptions_SetMaxReconnect(opts, 0);
	if (st == NATS_OK)
		st = natsConnection_Connect(nc, opts);
	natsOptions_Destroy(opts);
	if (st == NATS_OK)
		st = natsConnection_JetStream(js, *nc, jo);
	if (st != NATS_OK) {
		natsConnection_Destroy(*nc);
		*nc = NULL;
		return cmp_fail(e, "cannot connect to %s: %s", s->url, nt_err(st));
	}
	return 0;
}

static void nt_close(natsConnection *nc, jsCtx *js)
{
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
}

static int nt_create(struct cmp_engine *e, const struct cmp_params *p)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	if (nt_connect(e, NULL, &nc, &js) < 0)
		return -1;
	char subj[NT_SUBJ_MAX];
	snprintf(subj, sizeof(subj), "%s.*", p->tag);
	const char *subjects[] = {subj};
	jsStreamConfig cfg;
	jsStreamConfig_Init(&cfg);
	cfg.Name = p->tag;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	jsErrCode jerr = 0;
	jsStreamInfo *si = NULL;
	natsStatus st = js_AddStream(&si, js, &cfg, NULL, &jerr);
	jsStreamInfo_Destroy(si);
	nt_close(nc, js);
	return st == NATS_OK
		   ? 0
		   : cmp_fail(e, "cannot create stream %s: %s (%d)", p->tag, nt_err(st), (int)jerr);
}

static int nt_drop(struct cmp_engine *e, const struct cmp_params *p)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	if (nt_connect(e, NULL, &nc, &js) < 0)
		return -1;
	jsErrCode jerr = 0;
	natsStatus st = js_DeleteStream(js, p->tag, NULL, &jerr);
	nt_close(nc, js);
	return st == NATS_OK
		   ? 0
		   : cmp_fail(e, "cannot delete stream %s: %s (%d)", p->tag, nt_err(st), (int)jerr);
}

/* ---- producers ---- */

struct prod {
	pthread_t th;
	uint32_t idx;
	const struct cmp_engine *e;
	const struct cmp_params *p;
	pthread_barrier_t *barrier;
	int err;
	char msg[256];
	uint64_t sent;
	bool time_bound;
	int64_t t_start, t_end;
	size_t tag_len;
	/* written by libnats' ack handler thread, read after PublishAsyncComplete */
	uint64_t acked, failed;
	char first_error[128];
	uint64_t per_shard[BENCH_SHARDS_MAX];
	struct bench_hist lat;
};

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	(void)js;
	(void)pa;
	struct prod *t = closure;
	if (pae) {
		if (!t->failed)
			snprintf(t->first_error, sizeof(t->first_error), "%s (%d)",
				 pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err),
				 (int)pae->ErrCode);
		t->failed++;
	} else {
		int64_t due = cmp_stamp_read((const uint8_t *)natsMsg_GetData(msg));
		bench_hist_record(&t->lat, (uint64_t)(cmp_now_ns() - due));
		const char *subj = natsMsg_GetSubject(msg);
		unsigned long shard = strtoul(subj + t->tag_len + 1, NULL, 10);
		if (shard < BENCH_SHARDS_MAX)
			t->per_shard[shard]++;
		__atomic_add_fetch(&t->acked, 1, __ATOMIC_RELAXED);
	}
	natsMsg_Destroy(msg);
}

static void *prod_main(void *arg)
{
	struct prod *t = arg;
	const struct cmp_params *p = t->p;
	prctl(PR_SET_TIMERSLACK, 1UL);
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = p->window;
	jo.PublishAsync.AckHandler = on_ack;
	jo.PublishAsync.AckHandlerClosure = t;
	jo.PublishAsync.StallWait = 60000;
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	uint8_t *data = cmp_data_new(p->size, t->idx);
	char(*subj)[NT_SUBJ_MAX] = calloc(p->shards, NT_SUBJ_MAX);
	if (!data || !subj) {
		t->err = -1;
		snprintf(t->msg, sizeof(t->msg), "out of memory");
	} else if (nt_connect(t->e, &jo, &nc, &js) < 0) {
		t->err = -1;
		snprintf(t->msg, sizeof(t->msg), "cannot connect");
	}
	pthread_barrier_wait(t->barrier);
	if (t->err)
		goto out;
	for (uint32_t k = 0; k < p->shards; k++)
		snprintf(subj[k], NT_SUBJ_MAX, "%s.%u", p->tag, k);
	uint64_t n = cmp_share(p, t->idx);
	int64_t limit = (int64_t)(p->seconds * 1e9);
	char key[CMP_KEY_BYTES];
	int64_t t0 = t->t_start = cmp_now_ns();
	natsStatus st = NATS_OK;
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
		uint32_t shard = cmp_shard_of(key, CMP_KEY_BYTES, p->shards);
		uint8_t *d = data + i % 256;
		cmp_stamp(d, due);
		st = js_PublishAsync(js, subj[shard], d, (int)p->size, NULL);
		if (st != NATS_OK) {
			t->err = -1;
			snprintf(t->msg, sizeof(t->msg), "js_PublishAsync: %s", nt_err(st));
			break;
		}
		t->sent++;
	}
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = NT_COMPLETE_TIMEOUT_MS;
	st = js_PublishAsyncComplete(js, &po);
	if (st != NATS_OK && !t->err) {
		t->err = -1;
		snprintf(t->msg, sizeof(t->msg), "js_PublishAsyncComplete: %s", nt_err(st));
	}
	t->t_end = cmp_now_ns();
out:
	nt_close(nc, js);
	free(subj);
	free(data);
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
		th[i].tag_len = strlen(p->tag);
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
		if (t->failed && ret == 0)
			ret = cmp_fail(e, "producer %u: %llu records failed: %s", i,
				       (unsigned long long)t->failed, t->first_error);
		r->sent += t->sent;
		r->records += __atomic_load_n(&t->acked, __ATOMIC_ACQUIRE);
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

static int nt_produce(struct cmp_engine *e, const struct cmp_params *p, struct cmp_result *r)
{
	return produce_run(e, p, r);
}

/* ---- consume: pull consumers ---- */

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

static int consume_subject(struct reader *t, jsCtx *js, uint32_t k, uint64_t expect)
{
	const struct cmp_params *p = t->p;
	char subj[NT_SUBJ_MAX], durable[32];
	snprintf(subj, sizeof(subj), "%s.%u", p->tag, k);
	snprintf(durable, sizeof(durable), "c%u", k);
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = p->tag;
	so.Config.AckPolicy = js_AckAll;
	so.Config.DeliverPolicy = js_DeliverAll;
	so.Config.MaxAckPending = 2 * (int64_t)p->batch;
	natsSubscription *sub = NULL;
	jsErrCode jerr = 0;
	natsStatus st = js_PullSubscribe(&sub, js, subj, durable, NULL, &so, &jerr);
	if (st != NATS_OK) {
		snprintf(t->msg, sizeof(t->msg), "%s: js_PullSubscribe: %s (%d)", subj, nt_err(st),
			 (int)jerr);
		return -1;
	}
	int64_t limit = (int64_t)(p->seconds * 1e9);
	uint64_t got = 0;
	int ret = 0;
	while (got < expect && !bench_stop) {
		natsMsgList list = {0};
		uint64_t want = expect - got < p->batch ? expect - got : p->batch;
		st = natsSubscription_Fetch(&list, sub, (int)want, NT_FETCH_TIMEOUT_MS, &jerr);
		if (st != NATS_OK) {
			snprintf(t->msg, sizeof(t->msg), "%s: Fetch after %llu of %llu: %s (%d)",
				 subj, (unsigned long long)got, (unsigned long long)expect,
				 nt_err(st), (int)jerr);
			ret = -1;
			break;
		}
		for (int i = 0; i < list.Count; i++) {
			if (natsMsg_GetDataLength(list.Msgs[i]) != (int)p->size) {
				snprintf(t->msg, sizeof(t->msg), "%s: a message of %d bytes", subj,
					 natsMsg_GetDataLength(list.Msgs[i]));
				ret = -1;
			}
		}
		if (list.Count > 0 && ret == 0) {
			st = natsMsg_Ack(list.Msgs[list.Count - 1], NULL);
			if (st != NATS_OK) {
				snprintf(t->msg, sizeof(t->msg), "%s: ack: %s", subj, nt_err(st));
				ret = -1;
			}
		}
		got += (uint64_t)list.Count;
		natsMsgList_Destroy(&list);
		if (ret < 0)
			break;
		if (cmp_now_ns() - t->t_start >= limit && got < expect) {
			t->time_bound = true;
			break;
		}
	}
	natsSubscription_Destroy(sub);
	t->got += got;
	return ret;
}

static void *reader_main(void *arg)
{
	struct reader *t = arg;
	const struct cmp_params *p = t->p;
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	if (nt_connect(t->e, NULL, &nc, &js) < 0) {
		t->err = -1;
		snprintf(t->msg, sizeof(t->msg), "cannot connect");
	}
	pthread_barrier_wait(t->barrier);
	t->t_start = cmp_now_ns();
	for (uint32_t k = t->idx; k < p->shards && !t->err && !t->time_bound; k += t->nthreads) {
		uint64_t expect = t->produced->per_shard[k];
		if (expect && consume_subject(t, js, k, expect) < 0)
			t->err = -1;
	}
	t->t_end = cmp_now_ns();
	nt_close(nc, js);
	return NULL;
}

static int nt_consume(struct cmp_engine *e, const struct cmp_params *p,
		      const struct cmp_result *produced, struct cmp_result *r)
{
	if (p->shards > BENCH_SHARDS_MAX)
		return cmp_fail(e, "too many shards");
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
	return ret;
}

/* ---- e2e: a push consumer ---- */

struct e2e_state {
	uint64_t seen; /* written by the delivery thread */
	struct bench_hist lat;
};

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	(void)nc;
	(void)sub;
	struct e2e_state *s = closure;
	int64_t now = cmp_now_ns();
	if (natsMsg_GetDataLength(msg) >= CMP_STAMP_BYTES) {
		int64_t due = cmp_stamp_read((const uint8_t *)natsMsg_GetData(msg));
		bench_hist_record(&s->lat, (uint64_t)(now - due));
		__atomic_add_fetch(&s->seen, 1, __ATOMIC_RELEASE);
	}
	natsMsg_Destroy(msg);
}

static int nt_e2e(struct cmp_engine *e, const struct cmp_params *p, struct cmp_result *r)
{
	struct e2e_state *s = calloc(1, sizeof(*s));
	struct cmp_result *pr = calloc(1, sizeof(*pr));
	if (!s || !pr) {
		free(s);
		free(pr);
		return cmp_fail(e, "out of memory");
	}
	bench_hist_init(&s->lat);
	bench_hist_init(&pr->lat);
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	natsSubscription *sub = NULL;
	int ret = nt_connect(e, NULL, &nc, &js);
	if (ret == 0) {
		char subj[NT_SUBJ_MAX];
		snprintf(subj, sizeof(subj), "%s.*", p->tag);
		jsSubOptions so;
		jsSubOptions_Init(&so);
		so.Stream = p->tag;
		so.Config.AckPolicy = js_AckNone;
		so.Config.DeliverPolicy = js_DeliverAll; /* the stream is new */
		jsErrCode jerr = 0;
		natsStatus st = js_Subscribe(&sub, js, subj, on_msg, s, NULL, &so, &jerr);
		if (st == NATS_OK)
			st = natsSubscription_SetPendingLimits(sub, -1, -1);
		if (st != NATS_OK)
			ret = cmp_fail(e, "e2e: js_Subscribe: %s (%d)", nt_err(st), (int)jerr);
	}
	if (ret == 0) {
		ret = produce_run(e, p, pr);
		int64_t until = cmp_now_ns() + NT_E2E_DRAIN_NS;
		while (ret == 0 && !bench_stop &&
		       __atomic_load_n(&s->seen, __ATOMIC_ACQUIRE) < pr->records &&
		       cmp_now_ns() < until)
			usleep(1000);
	}
	if (sub) {
		natsSubscription_Unsubscribe(sub);
		natsSubscription_Destroy(sub);
	}
	nt_close(nc, js);
	uint64_t seen = __atomic_load_n(&s->seen, __ATOMIC_ACQUIRE);
	if (ret == 0 && seen != pr->records && !bench_stop)
		ret = cmp_fail(e, "e2e: the reader saw %llu records, %llu were acknowledged",
			       (unsigned long long)seen, (unsigned long long)pr->records);
	r->sent = pr->sent;
	r->seconds = pr->seconds;
	r->time_bound = pr->time_bound;
	r->records = seen;
	bench_hist_merge(&r->lat, &s->lat);
	free(s);
	free(pr);
	return ret;
}

void cmp_nats_init(struct cmp_engine *e)
{
	static struct nt_priv priv;
	*e = (struct cmp_engine){
	    .name = "nats",
	    .priv = &priv,
	    .start = nt_start,
	    .stop = nt_stop,
	    .create = nt_create,
	    .drop = nt_drop,
	    .produce = nt_produce,
	    .consume = nt_consume,
	    .e2e = nt_e2e,
	};
}
