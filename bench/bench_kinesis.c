/*
 * sluice-bench kinesis-api: PutRecords throughput (records/s) of the Kinesis-compatible HTTP
 * API, against a private sluiced (HTTP/1.1; HTTP/2 with prior knowledge over one multiplexed
 * connection, and over one connection per request slot) and against kinesalite (npm, started
 * from tests/node_modules on a free loopback port; it speaks HTTP/1.1 only). HTTP/1.1 is driven
 * by libcurl for both, HTTP/2 by h2_client.c (nghttp2), each with --concurrency requests in
 * flight, each a PutRecords of --batch records of --size bytes with distinct partition keys. A run
 * stops after --records records or
 * --seconds, whichever comes first; every response must be 200 with FailedRecordCount 0, or the
 * benchmark fails. Both servers and kinesalite are stopped by PID.
 */
#include "bench.h"
#include "h2_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KB_STREAM "bench"
#define KB_BODIES 16		/* distinct request bodies (partition keys) cycled through */
#define KB_CONCURRENCY_MAX 256u /* requests in flight */
#define KB_BATCH_MAX 500u	/* Kinesis' PutRecords limit */
#define KB_SIZE_MAX (1u << 20)
#define KB_START_TIMEOUT_MS 30000

int bench_kinesis_main(int argc, char **argv);

struct kb_opts {
	uint64_t records;
	double seconds;
	uint32_t concurrency, batch, size, shards;
	const char *fsync;
	const char *dir;
	bool json, keep, no_kinesalite;
};

struct kb_result {
	const char *target, *protocol;
	uint64_t records, requests, failures;
	double seconds;
};

struct kb_proc {
	pid_t pid;
	int http_port;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return ntohs(sa.sin_port);
}

/* A file next to this executable's build tree: DIR_OF_EXE/rel, if it exists. */
static bool beside_exe(const char *rel, char *out, size_t len)
{
	return bench_exe_sibling(rel, out, len) == 0;
}

static bool find_kinesalite(char *out, size_t len)
{
	const char *src = getenv("SLUICE_SOURCE_DIR");
	if (src && snprintf(out, len, "%s/tests/node_modules/.bin/kinesalite", src) < (int)len &&
	    access(out, R_OK) == 0)
		return true;
	return beside_exe("../../tests/node_modules/.bin/kinesalite", out, len);
}

static void proc_stop(struct kb_proc *p)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, SIGTERM);
	for (int i = 0; i < 300; i++) {
		if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
			p->pid = 0;
			return;
		}
		usleep(50000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	p->pid = 0;
}

/* fork + exec argv with stdout/stderr into log_path; the child dies with us. */
static int spawn(char *const argv[], const char *log_path, struct kb_proc *p)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return bench_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int lfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (lfd >= 0) {
			dup2(lfd, STDOUT_FILENO);
			dup2(lfd, STDERR_FILENO);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	p->pid = pid;
	bench_child_pid = pid;
	return 0;
}

/* ---- the client ---- */

struct kb_req {
	CURL *easy;
	char err[CURL_ERROR_SIZE];
	char *resp;
	size_t resp_len, resp_cap;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	struct kb_req *r = ud;
	size_t len = size * n;
	if (r->resp_len + len + 1 > r->resp_cap) {
		size_t cap = (r->resp_len + len + 1) * 2;
		char *nb = realloc(r->resp, cap);
		if (!nb)
			return 0;
		r->resp = nb;
		r->resp_cap = cap;
	}
	memcpy(r->resp + r->resp_len, p, len);
	r->resp_len += len;
	r->resp[r->resp_len] = 0;
	return len;
}

struct kb_bodies {
	char *body[KB_BODIES];
	size_t len[KB_BODIES];
};

static int make_bodies(const struct kb_opts *o, struct kb_bodies *b)
{
	uint8_t *data = malloc(o->size);
	size_t b64_len = 4 * ((o->size + 2) / 3);
	char *b64 = malloc(b64_len + 1);
	if (!data || !b64) {
		free(data);
		free(b64);
		return bench_fail("out of memory");
	}
	for (uint32_t i = 0; i < o->size; i++)
		data[i] = (uint8_t)('a' + i % 26);
	EVP_EncodeBlock((unsigned char *)b64, data, (int)o->size);
	for (int k = 0; k < KB_BODIES; k++) {
		size_t cap = 64 + (size_t)o->batch * (b64_len + 64);
		char *s = malloc(cap);
		if (!s)
			return bench_fail("out of memory");
		size_t n =
		    (size_t)snprintf(s, cap, "{\"StreamName\":\"" KB_STREAM "\",\"Records\":[");
		for (uint32_t i = 0; i < o->batch; i++)
			n += (size_t)snprintf(s + n, cap - n,
					      "%s{\"Data\":\"%s\",\"PartitionKey\":\"key-%d-%u\"}",
					      i ? "," : "", b64, k, i);
		n += (size_t)snprintf(s + n, cap - n, "]}");
		b->body[k] = s;
		b->len[k] = n;
	}
	free(data);
	free(b64);
	return 0;
}

static void free_bodies(struct kb_bodies *b)
{
	for (int k = 0; k < KB_BODIES; k++)
		free(b->body[k]);
}

/* kinesalite insists on a SigV4-shaped Authorization header (it does not check the signature);
 * sluice accepts and ignores it by default. Both get the same one. */
static struct curl_slist *headers(const char *op)
{
	char target[96];
	snprintf(target, sizeof(target), "X-Amz-Target: Kinesis_20131202.%s", op);
	struct curl_slist *h = NULL;
	h = curl_slist_append(h, "Content-Type: application/x-amz-json-1.1");
	h = curl_slist_append(h, target);
	h = curl_slist_append(h, "X-Amz-Date: 20260101T000000Z");
	h = curl_slist_append(
	    h, "Authorization: AWS4-HMAC-SHA256 "
	       "Credential=AKIDBENCH/20260101/us-east-1/kinesis/aws4_request, "
	       "SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
	       "Signature=0000000000000000000000000000000000000000000000000000000000000000");
	h = curl_slist_append(h, "Expect:");
	return h;
}

/* One synchronous call (admin: CreateStream, DescribeStreamSummary). Returns the HTTP status. */
static long call(const char *url, const char *op, const char *body, char **ret_resp)
{
	struct kb_req r = {0};
	CURL *e = curl_easy_init();
	struct curl_slist *h = headers(op);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
	long status = 0;
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	if (ret_resp)
		*ret_resp = r.resp;
	else
		free(r.resp);
	return status;
}

static int create_stream(const char *url, uint32_t shards)
{
	char body[128];
	snprintf(body, sizeof(body), "{\"StreamName\":\"" KB_STREAM "\",\"ShardCount\":%u}",
		 shards);
	char *resp = NULL;
	long st = call(url, "CreateStream", body, &resp);
	if (st != 200) {
		int r = bench_fail("CreateStream at %s: HTTP %ld %s", url, st, resp ? resp : "");
		free(resp);
		return r;
	}
	free(resp);
	/* kinesalite creates asynchronously (CREATING, then ACTIVE). */
	for (int i = 0; i < 300 && !bench_stop; i++) {
		st =
		    call(url, "DescribeStreamSummary", "{\"StreamName\":\"" KB_STREAM "\"}", &resp);
		bool active = st == 200 && resp && strstr(resp, "\"ACTIVE\"");
		free(resp);
		if (active)
			return 0;
		usleep(100000);
	}
	return bench_fail("stream %s at %s never became ACTIVE", KB_STREAM, url);
}

/* Wait until url answers DescribeLimits-free ListStreams (the server is up). */
static int wait_up(const char *url, const struct kb_proc *p, const char *what)
{
	for (int i = 0; i < KB_START_TIMEOUT_MS / 100 && !bench_stop; i++) {
		if (call(url, "ListStreams", "{}", NULL) == 200)
			return 0;
		if (waitpid(p->pid, NULL, WNOHANG) == p->pid)
			return bench_fail("%s exited before it answered", what);
		usleep(100000);
	}
	return bench_fail("%s did not answer within %d s", what, KB_START_TIMEOUT_MS / 1000);
}

/* Drive PutRecords at url over HTTP/1.1 keep-alive connections, one per request in flight. */
static int drive(const struct kb_opts *o, const struct kb_bodies *b, const char *url,
		 struct kb_result *res)
{
	CURLM *m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->concurrency);
	struct curl_slist *h = headers("PutRecords");
	struct kb_req *reqs = calloc(o->concurrency, sizeof(*reqs));
	if (!m || !h || !reqs)
		return bench_fail("out of memory");
	uint64_t sent = 0, done = 0;
	int ret = 0;
	double t0 = now_s(), deadline = t0 + o->seconds;
	unsigned next_body = 0;
	for (uint32_t i = 0; i < o->concurrency; i++) {
		struct kb_req *r = &reqs[i];
		r->easy = curl_easy_init();
		curl_easy_setopt(r->easy, CURLOPT_URL, url);
		curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
		curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
		curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->err);
		curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
		curl_easy_setopt(r->easy, CURLOPT_TIMEOUT, 60L);
	}
	/* Idle handles: each completed request's handle goes back here and out again. */
	struct kb_req **idle = calloc(o->concurrency, sizeof(*idle));
	if (!idle)
		return bench_fail("out of memory");
	uint32_t nidle = 0, inflight = 0;
	for (uint32_t i = o->concurrency; i-- > 0;)
		idle[nidle++] = &reqs[i];
	for (;;) {
		while (nidle && sent < o->records && now_s() < deadline && !res->failures) {
			struct kb_req *r = idle[--nidle];
			unsigned k = next_body++ % KB_BODIES;
			curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, b->body[k]);
			curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)b->len[k]);
			curl_multi_add_handle(m, r->easy);
			sent += o->batch;
			inflight++;
		}
		if (!inflight || bench_stop)
			break;
		int running;
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct kb_req *r;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
			long status = 0;
			curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
			bool ok = msg->data.result == CURLE_OK && status == 200 && r->resp &&
				  strstr(r->resp, "\"FailedRecordCount\":0");
			if (!ok) {
				if (res->failures++ == 0)
					fprintf(stderr, "sluice-bench: %s: %s HTTP %ld %.200s\n",
						url,
						msg->data.result == CURLE_OK
						    ? ""
						    : curl_easy_strerror(msg->data.result),
						status, r->resp ? r->resp : r->err);
			} else {
				done += o->batch;
			}
			res->requests++;
			r->resp_len = 0;
			curl_multi_remove_handle(m, r->easy);
			inflight--;
			idle[nidle++] = r;
		}
		if (inflight)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	res->seconds = now_s() - t0;
	res->records = done;
	for (uint32_t i = 0; i < o->concurrency; i++) {
		curl_multi_remove_handle(m, reqs[i].easy);
		curl_easy_cleanup(reqs[i].easy);
		free(reqs[i].resp);
	}
	free(reqs);
	free(idle);
	curl_slist_free_all(h);
	curl_multi_cleanup(m);
	if (res->failures)
		ret =
		    bench_fail("%s: %llu failed requests", url, (unsigned long long)res->failures);
	return bench_stop ? -1 : ret;
}

/* ---- HTTP/2: h2_client.c on its own threads (one per connection) ---- */

struct h2_shared {
	const struct kb_opts *o;
	const struct kb_bodies *b;
	pthread_mutex_t mu;
	uint64_t sent, done, requests, failures;
	unsigned next_body;
	double deadline;
	struct h2c_config cfg;
	int err;
};

static bool h2_next(void *ctx, const char **body, size_t *len)
{
	struct h2_shared *sh = ctx;
	pthread_mutex_lock(&sh->mu);
	bool go =
	    sh->sent < sh->o->records && now_s() < sh->deadline && !sh->failures && !bench_stop;
	if (go) {
		unsigned k = sh->next_body++ % KB_BODIES;
		*body = sh->b->body[k];
		*len = sh->b->len[k];
		sh->sent += sh->o->batch;
	}
	pthread_mutex_unlock(&sh->mu);
	return go;
}

static bool h2_done(void *ctx, int status, const char *body, size_t len)
{
	struct h2_shared *sh = ctx;
	bool ok = status == 200 && strstr(body, "\"FailedRecordCount\":0");
	pthread_mutex_lock(&sh->mu);
	sh->requests++;
	if (ok)
		sh->done += sh->o->batch;
	else if (sh->failures++ == 0)
		fprintf(stderr, "sluice-bench: h2: HTTP %d %.200s\n", status, body);
	pthread_mutex_unlock(&sh->mu);
	return ok;
}

static void *h2_thread(void *arg)
{
	struct h2_shared *sh = arg;
	int r = h2c_run(&sh->cfg);
	if (r < 0) {
		pthread_mutex_lock(&sh->mu);
		if (!sh->err)
			sh->err = r;
		pthread_mutex_unlock(&sh->mu);
	}
	return NULL;
}

static int drive_h2(const struct kb_opts *o, const struct kb_bodies *b, int port,
		    uint32_t connections, uint32_t streams, struct kb_result *res)
{
	static const struct h2c_header hdrs[] = {
	    {"content-type", "application/x-amz-json-1.1"},
	    {"x-amz-target", "Kinesis_20131202.PutRecords"},
	    {"x-amz-date", "20260101T000000Z"},
	    {"authorization",
	     "AWS4-HMAC-SHA256 Credential=AKIDBENCH/20260101/us-east-1/kinesis/aws4_request, "
	     "SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
	     "Signature=0000000000000000000000000000000000000000000000000000000000000000"},
	    {NULL, NULL}};
	char authority[32];
	snprintf(authority, sizeof(authority), "127.0.0.1:%d", port);
	struct h2_shared sh = {.o = o, .b = b};
	pthread_mutex_init(&sh.mu, NULL);
	sh.cfg = (struct h2c_config){.port = (uint16_t)port,
				     .authority = authority,
				     .streams = streams,
				     .headers = hdrs,
				     .timeout_ms = 60000,
				     .next = h2_next,
				     .done = h2_done,
				     .ctx = &sh};
	pthread_t t[KB_CONCURRENCY_MAX];
	double t0 = now_s();
	sh.deadline = t0 + o->seconds;
	uint32_t started = 0;
	for (; started < connections; started++)
		if (pthread_create(&t[started], NULL, h2_thread, &sh) != 0)
			break;
	for (uint32_t i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	res->seconds = now_s() - t0;
	res->records = sh.done;
	res->requests = sh.requests;
	res->failures = sh.failures;
	pthread_mutex_destroy(&sh.mu);
	if (started < connections)
		return bench_fail("cannot start client threads");
	if (sh.err || sh.failures)
		return bench_fail("h2c: %s, %llu failed requests", strerror(-sh.err),
				  (unsigned long long)sh.failures);
	return bench_stop ? -1 : 0;
}

static void report(const struct kb_opts *o, const struct kb_result *r, double kinesalite_rps)
{
	double rps = r->seconds > 0 ? (double)r->records / r->seconds : 0;
	FILE *out = o->json ? stderr : stdout;
	char rate[32];
	bench_fmt_rate(rps, rate, sizeof(rate));
	fprintf(out, "%-11s %-22s %10llu records %8.2fs %10s records/s", r->target, r->protocol,
		(unsigned long long)r->records, r->seconds, rate);
	if (kinesalite_rps > 0)
		fprintf(out, "  %6.1fx kinesalite", rps / kinesalite_rps);
	fputc('\n', out);
	if (o->json) {
		struct bench_json j;
		bench_json_begin(&j, "kinesis-api");
		bench_json_str(&j, "target", r->target);
		bench_json_str(&j, "protocol", r->protocol);
		bench_json_u64(&j, "records", r->records);
		bench_json_u64(&j, "size", o->size);
		bench_json_u64(&j, "batch", o->batch);
		bench_json_u64(&j, "concurrency", o->concurrency);
		bench_json_num(&j, "seconds", r->seconds);
		bench_json_num(&j, "records_per_s", rps);
		bench_json_num(&j, "vs_kinesalite", kinesalite_rps > 0 ? rps / kinesalite_rps : 0);
		bench_json_end(&j);
	}
}

static const char kb_usage[] =
    "usage: sluice-bench kinesis-api [options]\n"
    "  --records N        records per run (default 300000)\n"
    "  --seconds S        bound per run (default 20)\n"
    "  --size BYTES       record data size (default 100)\n"
    "  --batch N          records per PutRecords (default 500, at most 500)\n"
    "  --concurrency N    requests in flight (default 8)\n"
    "  --shards N         shards of the stream (default 4)\n"
    "  --fsync MODE       sluiced's --fsync (default group: durable before the answer)\n"
    "  --no-kinesalite    only sluice (else kinesalite from tests/node_modules, when installed)\n"
    "  --dir DIR          scratch folder parent (default .)\n"
    "  --json, --keep\n";

int bench_kinesis_main(int argc, char **argv)
{
	struct kb_opts o = {.records = 300000,
			    .seconds = 20,
			    .concurrency = 8,
			    .batch = 500,
			    .size = 100,
			    .shards = 4,
			    .fsync = "group"};
	for (int i = 2; i < argc; i++) {
		const char *f = argv[i];
		if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
			fputs(kb_usage, stdout);
			return 0;
		}
		if (!strcmp(f, "--json") || !strcmp(f, "--keep") || !strcmp(f, "--no-kinesalite")) {
			*(f[2] == 'j' ? &o.json : f[2] == 'k' ? &o.keep : &o.no_kinesalite) = true;
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
		else if (!strcmp(f, "--seconds") && num && n >= 1 && n <= 3600)
			o.seconds = (double)n;
		else if (!strcmp(f, "--size") && num && n >= 1 && n <= KB_SIZE_MAX)
			o.size = (uint32_t)n;
		else if (!strcmp(f, "--batch") && num && n >= 1 && n <= KB_BATCH_MAX)
			o.batch = (uint32_t)n;
		else if (!strcmp(f, "--concurrency") && num && n >= 1 && n <= KB_CONCURRENCY_MAX)
			o.concurrency = (uint32_t)n;
		else if (!strcmp(f, "--shards") && num && n >= 1 && n <= BENCH_SHARDS_MAX)
			o.shards = (uint32_t)n;
		else if (!strcmp(f, "--fsync") && (!strcmp(v, "group") || !strcmp(v, "never") ||
						   !strncmp(v, "interval=", 9)))
			o.fsync = v;
		else if (!strcmp(f, "--dir"))
			o.dir = v;
		else {
			bench_fail("bad flag or value: %s %s (see --help)", f, v);
			return 2;
		}
	}
	if ((uint64_t)o.size * o.batch > (5u << 20)) {
		bench_fail("--size x --batch is over PutRecords' 5 MiB");
		return 2;
	}
	struct sigaction sa = {.sa_handler = SIG_IGN};
	sigaction(SIGPIPE, &sa, NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	char scratch[PATH_MAX];
	snprintf(scratch, sizeof(scratch), "%s/sluice-bench-kinesis-XXXXXX", o.dir ? o.dir : ".");
	if (!mkdtemp(scratch)) {
		bench_fail("cannot create a scratch folder: %s", strerror(errno));
		return 1;
	}
	struct kb_bodies bodies = {0};
	int ret = make_bodies(&o, &bodies);
	struct kb_result results[4];
	size_t nres = 0;
	double kinesalite_rps = 0;
	FILE *out = o.json ? stderr : stdout;
	fprintf(out,
		"PutRecords of %u x %u B records, %u in flight, %u shards, sluiced --fsync %s\n",
		o.batch, o.size, o.concurrency, o.shards, o.fsync);

	/* kinesalite first, so the ratios can be printed with sluice's lines. */
	char kl[PATH_MAX];
	struct kb_proc kp = {0};
	if (ret == 0 && !o.no_kinesalite && find_kinesalite(kl, sizeof(kl))) {
		int port = free_port();
		char portstr[16], logp[PATH_MAX + 32], url[64];
		snprintf(portstr, sizeof(portstr), "%d", port);
		snprintf(logp, sizeof(logp), "%s/kinesalite.log", scratch);
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
		char *args[] = {"node",
				kl,
				"--port",
				portstr,
				"--createStreamMs",
				"0",
				"--deleteStreamMs",
				"0",
				"--updateStreamMs",
				"0",
				"--shardLimit",
				"10000",
				NULL};
		ret = spawn(args, logp, &kp);
		ret = ret ?: wait_up(url, &kp, "kinesalite");
		ret = ret ?: create_stream(url, o.shards);
		struct kb_result r = {.target = "kinesalite", .protocol = "HTTP/1.1"};
		ret = ret ?: drive(&o, &bodies, url, &r);
		proc_stop(&kp);
		if (ret == 0) {
			kinesalite_rps = r.seconds > 0 ? (double)r.records / r.seconds : 0;
			results[nres++] = r;
			report(&o, &r, 0);
		}
	} else if (ret == 0 && !o.no_kinesalite) {
		fprintf(out, "kinesalite: not installed in tests/node_modules (tools/test installs "
			     "it): skipped\n");
	}

	struct kb_proc sp = {0};
	char sl[PATH_MAX];
	if (ret == 0) {
		int port = free_port();
		char hl[64], dd[PATH_MAX + 32], logp[PATH_MAX + 32], url[64];
		snprintf(hl, sizeof(hl), "127.0.0.1:%d", port);
		snprintf(dd, sizeof(dd), "%s/sluiced", scratch);
		snprintf(logp, sizeof(logp), "%s/sluiced.log", scratch);
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
		char *args[] = {beside_exe("../src/server/sluiced", sl, sizeof(sl)) ? sl
										    : "sluiced",
				"--data-dir",
				dd,
				"--listen",
				"127.0.0.1:0",
				"--http-listen",
				hl,
				"--fsync",
				(char *)o.fsync,
				NULL};
		ret = spawn(args, logp, &sp);
		ret = ret ?: wait_up(url, &sp, "sluiced");
		ret = ret ?: create_stream(url, o.shards);
		struct kb_result r = {.target = "sluice", .protocol = "HTTP/1.1"};
		ret = ret ?: drive(&o, &bodies, url, &r);
		if (ret == 0) {
			results[nres++] = r;
			report(&o, &r, kinesalite_rps);
		}
		static const char *const h2_names[] = {"h2c, 1 connection", "h2c, N connections"};
		for (int i = 0; ret == 0 && i < 2; i++) {
			struct kb_result r2 = {.target = "sluice", .protocol = h2_names[i]};
			ret = i == 0 ? drive_h2(&o, &bodies, port, 1, o.concurrency, &r2)
				     : drive_h2(&o, &bodies, port, o.concurrency, 1, &r2);
			if (ret == 0) {
				results[nres++] = r2;
				report(&o, &r2, kinesalite_rps);
			}
		}
		proc_stop(&sp);
	}
	bench_child_pid = 0;
	free_bodies(&bodies);
	curl_global_cleanup();
	if (!o.keep) {
		char cmd[PATH_MAX + 32];
		snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", scratch);
		if (system(cmd) != 0)
			fprintf(stderr, "sluice-bench: could not remove %s\n", scratch);
	} else {
		fprintf(stderr, "kept %s\n", scratch);
	}
	(void)results;
	return ret == 0 ? 0 : 1;
}
