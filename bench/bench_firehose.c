/*
 * `sluice-bench firehose`: what a firehose sustains, what it costs, and whether it slows producers.
 *
 * Records: --size bytes (default 1024) of JSON-like text (an event with ids, a user, a session, a
 * page, a user agent, an amount and words from a small vocabulary), made by a PRNG per record, so
 * that zstd sees the redundancy of real event streams and no long repeats. Keys: user-NNNNNN.
 *
 * Per destination (file:// always; s3:// with --s3 ENDPOINT, or against an s3rver this run starts
 * from tests/node_modules when one is installed; --s3 off skips it), a private sluiced
 * (--fsync never, so the disk's flush latency does not hide the firehose's own cost):
 *   1. baseline   --records records produced into a stream without a firehose (records/s, MB/s);
 *   2. sustained  the same into a stream with a firehose attached (buffer 8 MiB / 60 s, zstd -3,
 *                 jsonl): produce rate while the firehose runs, then the time until every shard's
 *                 checkpoint reached its tip. Input rate sustained = records / that time;
 *   3. drain      a firehose created on the full stream of phase 1 (trim-horizon): archive
 *                 records/s and MB/s, and sluiced's CPU time meanwhile (utime + stime from
 *                 /proc/PID/stat), so MB/s per core = record bytes / CPU seconds.
 * Compression ratio: record data bytes / object bytes (bytes_written of describe).
 *
 * The ceiling: the same records written as the archive's JSONL lines (the bytes the firehose
 * compresses) into a file, and `zstd -3 -T1 -c FILE > /dev/null` timed (its CPU time, from
 * wait4) - the single-core compression speed of the same data at the same level. Reported: the
 * firehose's record MB/s per core against the zstd CLI's record MB/s per core (target >= 80%).
 *
 * Admin requests (FIREHOSE_CREATE/DESCRIBE/DELETE) are framed here, from the wire spec in
 * src/proto/codec.h, so this command needs no client library support for firehoses.
 */
#include "bench.h"

#include "common/clock.h"

#include <sluice/client.h>
#include <sluice/errors.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int bench_firehose_main(int argc, char **argv);

#define FH_OP_CREATE 0x40
#define FH_OP_DELETE 0x41
#define FH_OP_DESCRIBE 0x43
#define FH_OP_FLUSH 0x44
#define FH_BUFFER_BYTES (8ull << 20)
#define FH_INTERVAL_MS 60000u
#define FH_ZSTD_LEVEL 3
#define FH_SHARDS_MAX 64
/* The ceiling file holds at most this many bytes of JSONL (enough for a stable zstd figure). */
#define FH_CEILING_BYTES_MAX (256ull << 20)
#define FH_BUCKET "sluice-bench"

struct fh_opts {
	uint64_t records;
	uint32_t size;
	uint32_t shards;
	uint32_t connections;
	double seconds; /* bound per phase */
	const char *dir;
	const char *s3;		  /* NULL auto, "off", or an endpoint */
	const char *cpu_priority; /* sluiced --firehose-cpu-priority; NULL: its default */
	bool json;
	bool keep;
};

/* ---- records ---- */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static const char *const words[] = {
    "alpha",   "basket", "cart",    "delivery", "express", "fresh",   "garden",	  "home",
    "item",    "jacket", "kitchen", "lamp",	"market",  "network", "order",	  "premium",
    "quality", "return", "sale",    "ticket",	"update",  "voucher", "warranty", "xl",
    "yellow",  "zone",	 "blue",    "green",	"red",	   "small",   "large",	  "medium"};
static const char *const events[] = {"page_view", "click", "add_to_cart", "purchase",
				     "search",	  "login", "logout",	  "scroll"};
static const char *const agents[] = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 Version/17.2 Safari"};
static const char *const countries[] = {"FR", "DE", "US", "JP", "BR", "IN", "GB", "ES"};

/* Record i: exactly size bytes (size >= 64) of JSON-like text; its key (returns key length). */
static size_t make_record(uint64_t i, uint32_t size, char *out, char *key)
{
	uint64_t r = mix(i), s = mix(r);
	uint32_t user = (uint32_t)(r % 200000);
	size_t klen = (size_t)snprintf(key, 32, "user-%06u", user);
	int n =
	    snprintf(out, size,
		     "{\"event_id\":\"%016llx%08llx\",\"ts\":%llu,\"user\":\"user-%06u\","
		     "\"session\":\"%08x\",\"type\":\"%s\",\"page\":\"/%s/%s/%u\",\"ua\":\"%s\","
		     "\"country\":\"%s\",\"amount\":%u.%02u,\"words\":\"",
		     (unsigned long long)r, (unsigned long long)(s & 0xffffffffu),
		     (unsigned long long)(1795000000000ull + i * 3), user, (unsigned)(s >> 32),
		     events[r >> 61], words[(s >> 8) & 31], words[(s >> 13) & 31],
		     (unsigned)((s >> 18) % 5000), agents[(s >> 40) & 3], countries[(s >> 42) & 7],
		     (unsigned)((s >> 45) % 500), (unsigned)((s >> 54) % 100));
	size_t len = n < 0 ? 0 : (size_t)n >= size ? size - 1 : (size_t)n;
	uint64_t w = s;
	while (len + 3 < size) {
		w = mix(w);
		const char *word = words[w & 31];
		size_t wl = strlen(word);
		if (len + wl + 1 + 2 >= size)
			break;
		memcpy(out + len, word, wl);
		len += wl;
		out[len++] = (w >> 8) & 1 ? ' ' : ',';
	}
	while (len + 2 < size)
		out[len++] = ' ';
	out[len++] = '"';
	out[len++] = '}';
	return klen;
}

/* ---- a minimal native-protocol client for the firehose admin ops ---- */

struct wbuf {
	uint8_t b[8192];
	size_t n;
};

static void put(struct wbuf *w, const void *p, size_t n)
{
	if (w->n + n <= sizeof(w->b)) {
		memcpy(w->b + w->n, p, n);
		w->n += n;
	}
}
static void put_u8(struct wbuf *w, uint8_t v)
{
	put(w, &v, 1);
}
static void put_u32(struct wbuf *w, uint32_t v)
{
	put(w, &v, 4);
} /* little-endian hosts */
static void put_u64(struct wbuf *w, uint64_t v)
{
	put(w, &v, 8);
}
static void put_str8(struct wbuf *w, const char *s)
{
	size_t n = strlen(s);
	put_u8(w, (uint8_t)n);
	put(w, s, n);
}
static void put_str16(struct wbuf *w, const char *s)
{
	uint16_t n = (uint16_t)strlen(s);
	put(w, &n, 2);
	put(w, s, n);
}

static int fh_connect(const char *addr)
{
	char host[64];
	unsigned port;
	if (sscanf(addr, "%63[^:]:%u", host, &port) != 2)
		return -EINVAL;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = {.tv_sec = 30};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

static int read_full(int fd, void *p, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(fd, (uint8_t *)p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -EIO;
		got += (size_t)r;
	}
	return 0;
}

/* One request; *resp (malloc'd, after the status) on success. Returns the status or -errno. */
static int fh_call(int fd, uint8_t op, const struct wbuf *body, uint8_t **resp, size_t *resp_len,
		   char *err, size_t err_len)
{
	static uint32_t next_id = 1;
	uint8_t hdr[12];
	uint32_t len = 8 + (uint32_t)body->n, id = next_id++;
	memcpy(hdr, &len, 4);
	hdr[4] = 1;
	hdr[5] = op;
	hdr[6] = hdr[7] = 0;
	memcpy(hdr + 8, &id, 4);
	if (write(fd, hdr, 12) != 12 ||
	    (body->n && write(fd, body->b, body->n) != (ssize_t)body->n))
		return -EIO;
	if (read_full(fd, hdr, 12) < 0)
		return -EIO;
	memcpy(&len, hdr, 4);
	if (len < 12 || len > (64u << 20))
		return -EPROTO;
	uint8_t *b = malloc(len - 8);
	if (!b || read_full(fd, b, len - 8) < 0) {
		free(b);
		return -EIO;
	}
	int32_t status;
	memcpy(&status, b, 4);
	if (status < 0) {
		uint16_t ml = 0;
		if (len >= 14)
			memcpy(&ml, b + 4, 2);
		if (len < 14 || ml > len - 14)
			ml = 0;
		snprintf(err, err_len, "%.*s", (int)ml, (char *)b + 6);
		free(b);
		return status;
	}
	*resp_len = len - 8 - 4;
	*resp = b; /* the caller skips the 4 status bytes */
	return 0;
}

static int fh_create(int fd, const char *name, const char *stream, const char *dest,
		     const char *endpoint)
{
	struct wbuf w = {.n = 0};
	put_str8(&w, name);
	put_str8(&w, stream);
	put_str16(&w, dest);
	put_str16(&w, endpoint);
	put_str8(&w, "");  /* region */
	put_str16(&w, ""); /* credentials file: the environment */
	put_str8(&w, "");  /* profile */
	put_u64(&w, FH_BUFFER_BYTES);
	put_u32(&w, FH_INTERVAL_MS);
	put_u8(&w, 1); /* zstd */
	put_u32(&w, (uint32_t)FH_ZSTD_LEVEL);
	put_u8(&w, 0);		 /* jsonl */
	put_u64(&w, UINT64_MAX); /* -1: retry until expiry */
	put_str8(&w, "");
	put_u8(&w, 0); /* trim-horizon */
	put_u64(&w, 0);
	uint8_t *resp = NULL;
	size_t rl;
	char err[1100] = "";
	int r = fh_call(fd, FH_OP_CREATE, &w, &resp, &rl, err, sizeof(err));
	free(resp);
	if (r < 0)
		return bench_fail("FIREHOSE_CREATE %s -> %s: %s %s", name, dest, sluice_strerror(r),
				  err);
	return 0;
}

static int fh_simple(int fd, uint8_t op, const char *name)
{
	struct wbuf w = {.n = 0};
	put_str8(&w, name);
	uint8_t *resp = NULL;
	size_t rl;
	char err[1100] = "";
	int r = fh_call(fd, op, &w, &resp, &rl, err, sizeof(err));
	free(resp);
	if (r < 0)
		return bench_fail("firehose op 0x%x %s: %s %s", op, name, sluice_strerror(r), err);
	return 0;
}

struct fh_status {
	uint32_t n;
	uint64_t checkpoint[FH_SHARDS_MAX];
	uint64_t objects, bytes_written, records, failures;
	char last_error[256];
};

struct rd {
	const uint8_t *p;
	size_t n, off;
	bool ok;
};
static const uint8_t *take(struct rd *r, size_t n)
{
	if (!r->ok || r->n - r->off < n) {
		r->ok = false;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}
static uint64_t get_u(struct rd *r, size_t n)
{
	const uint8_t *p = take(r, n);
	uint64_t v = 0;
	if (p)
		memcpy(&v, p, n);
	return v;
}
static void skip_str(struct rd *r, size_t lenbytes)
{
	take(r, (size_t)get_u(r, lenbytes));
}

static int fh_describe(int fd, const char *name, struct fh_status *st)
{
	struct wbuf w = {.n = 0};
	put_str8(&w, name);
	uint8_t *resp = NULL;
	size_t rl;
	char err[1100] = "";
	int r = fh_call(fd, FH_OP_DESCRIBE, &w, &resp, &rl, err, sizeof(err));
	if (r < 0)
		return bench_fail("FIREHOSE_DESCRIBE %s: %s %s", name, sluice_strerror(r), err);
	struct rd d = {.p = resp + 4, .n = rl, .ok = true};
	skip_str(&d, 1); /* name */
	skip_str(&d, 1); /* stream */
	skip_str(&d, 2); /* dest */
	skip_str(&d, 2); /* endpoint */
	skip_str(&d, 1); /* region */
	skip_str(&d, 2); /* credentials file */
	skip_str(&d, 1); /* profile */
	take(&d, 8 + 4 + 1 + 4 + 1 + 8);
	skip_str(&d, 1); /* on_failure */
	take(&d, 1 + 8 + 8);
	memset(st, 0, sizeof(*st));
	uint32_t n = (uint32_t)get_u(&d, 4);
	for (uint32_t i = 0; i < n && d.ok; i++) {
		uint32_t id = (uint32_t)get_u(&d, 4);
		uint64_t cp = get_u(&d, 8);
		take(&d, 8 + 8 + 8);
		skip_str(&d, 2); /* last key */
		st->objects += get_u(&d, 8);
		st->records += get_u(&d, 8);
		st->bytes_written += get_u(&d, 8);
		st->failures += get_u(&d, 8);
		take(&d, 8 + 8 + 1);
		uint16_t el = (uint16_t)get_u(&d, 2);
		const uint8_t *e = take(&d, el);
		if (e && el)
			snprintf(st->last_error, sizeof(st->last_error), "%.*s", (int)el, e);
		take(&d, 8 + 1); /* lag_ms, background */
		if (id < FH_SHARDS_MAX)
			st->checkpoint[id] = cp;
	}
	st->n = n;
	bool ok = d.ok && d.off == d.n;
	free(resp);
	if (!ok)
		return bench_fail("FIREHOSE_DESCRIBE %s: malformed answer", name);
	return 0;
}

/* ---- producing ---- */

struct prod {
	pthread_t th;
	const char *addr, *stream;
	uint64_t from, count;
	uint32_t size;
	double seconds;
	uint64_t sent;
	atomic_uint_fast64_t acked, failed;
	int err;
	uint64_t last_seq[FH_SHARDS_MAX]; /* highest acknowledged seq per shard */
	pthread_mutex_t mu;
};

static void on_ack(void *ctx, int status, uint32_t shard, uint64_t seq)
{
	struct prod *p = ctx;
	if (status < 0) {
		atomic_fetch_add(&p->failed, 1);
		return;
	}
	atomic_fetch_add(&p->acked, 1);
	if (shard < FH_SHARDS_MAX) {
		pthread_mutex_lock(&p->mu);
		if (seq > p->last_seq[shard])
			p->last_seq[shard] = seq;
		pthread_mutex_unlock(&p->mu);
	}
}

static void *prod_main(void *arg)
{
	struct prod *p = arg;
	struct sluice_producer *sp = NULL;
	char *data = malloc(p->size + 1);
	char key[32];
	int r = data ? sluice_producer_create(p->addr, NULL, &sp) : -ENOMEM;
	if (r < 0) {
		p->err = r;
		free(data);
		return NULL;
	}
	int64_t t0 = sl_mono_ns(), limit = (int64_t)(p->seconds * 1e9);
	for (uint64_t i = 0; i < p->count; i++) {
		if ((i & 1023) == 0 && (bench_stop || sl_mono_ns() - t0 > limit))
			break;
		size_t kl = make_record(p->from + i, p->size, data, key);
		r = sluice_producer_send(sp, p->stream, key, kl, data, p->size, on_ack, p);
		if (r < 0) {
			p->err = r;
			break;
		}
		p->sent++;
	}
	r = sluice_producer_flush(sp, 120000);
	if (r < 0 && !p->err)
		p->err = r;
	sluice_producer_destroy(sp);
	free(data);
	return NULL;
}

struct prod_result {
	uint64_t acked;
	double seconds;
	uint64_t last_seq[FH_SHARDS_MAX];
};

static int produce(const struct fh_opts *o, const char *addr, const char *stream,
		   struct prod_result *res)
{
	struct prod *ps = calloc(o->connections, sizeof(*ps));
	if (!ps)
		return bench_fail("out of memory");
	memset(res, 0, sizeof(*res));
	int64_t t0 = sl_mono_ns();
	uint32_t started = 0;
	for (uint32_t i = 0; i < o->connections; i++) {
		struct prod *p = &ps[i];
		p->addr = addr;
		p->stream = stream;
		p->size = o->size;
		p->seconds = o->seconds;
		p->count = o->records / o->connections + (i < o->records % o->connections);
		p->from = i * (BENCH_RECORDS_MAX + 1);
		pthread_mutex_init(&p->mu, NULL);
		if (pthread_create(&p->th, NULL, prod_main, p) != 0)
			break;
		started++;
	}
	int ret = started == o->connections ? 0 : bench_fail("cannot start producer threads");
	for (uint32_t i = 0; i < started; i++) {
		pthread_join(ps[i].th, NULL);
		res->acked += atomic_load(&ps[i].acked);
		for (int s = 0; s < FH_SHARDS_MAX; s++)
			if (ps[i].last_seq[s] > res->last_seq[s])
				res->last_seq[s] = ps[i].last_seq[s];
		if (ret == 0 && (ps[i].err || atomic_load(&ps[i].failed)))
			ret = bench_fail("producer %u: %s (%llu records failed)", i,
					 sluice_strerror(ps[i].err),
					 (unsigned long long)atomic_load(&ps[i].failed));
		pthread_mutex_destroy(&ps[i].mu);
	}
	res->seconds = (double)(sl_mono_ns() - t0) / 1e9;
	free(ps);
	return ret;
}

/* ---- sluiced CPU time ---- */

static double proc_cpu_seconds(pid_t pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	unsigned long long ut = 0, st = 0;
	/* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
	 * utime(14) stime(15) */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Wait until every shard's checkpoint reached tips; returns seconds, or < 0. */
static double wait_archived(int fd, const char *name, const uint64_t *tips, uint32_t shards,
			    double seconds, bool quiet, struct fh_status *st)
{
	int64_t t0 = sl_mono_ns();
	for (;;) {
		if (fh_describe(fd, name, st) < 0)
			return -1;
		bool done = true;
		for (uint32_t s = 0; s < shards; s++)
			done &= st->checkpoint[s] >= tips[s];
		double el = (double)(sl_mono_ns() - t0) / 1e9;
		if (done)
			return el;
		if (el > seconds || bench_stop) {
			if (quiet)
				return -1;
			bench_fail(
			    "firehose %s did not catch up within %.0fs (%llu upload failures%s%s)",
			    name, seconds, (unsigned long long)st->failures,
			    st->last_error[0] ? ": " : "", st->last_error);
			return -1;
		}
		usleep(10000);
	}
}

/* ---- the zstd CLI ceiling ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t base64(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0, i = 0;
	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	return o;
}

struct ceiling {
	uint64_t records, file_bytes, record_bytes;
	double cpu_seconds, wall_seconds;
	bool ok;
};

/* The archive lines of the records (what the firehose compresses), then zstd -3 -T1 on them. */
static int zstd_ceiling(const struct fh_opts *o, const char *scratch, struct ceiling *c)
{
	memset(c, 0, sizeof(*c));
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/records.jsonl", scratch);
	FILE *f = fopen(path, "w");
	if (!f)
		return bench_fail("cannot create %s: %s", path, strerror(errno));
	char *data = malloc(o->size + 1), *line = malloc(o->size * 2 + 512);
	char key[32];
	for (uint64_t i = 0; data && line && i < o->records; i++) {
		size_t kl = make_record(i, o->size, data, key);
		int n = snprintf(line, 256,
				 "{\"stream\":\"fh\",\"shard\":\"shardId-%012u\",\"seq\":\"%llu\","
				 "\"ts\":%llu,\"key\":\"%.*s\",\"data\":\"",
				 (unsigned)(i % o->shards), (unsigned long long)(i / o->shards + 1),
				 (unsigned long long)(1795000000000ull + i), (int)kl, key);
		size_t len = (size_t)n + base64((uint8_t *)data, o->size, line + n);
		memcpy(line + len, "\"}\n", 3);
		len += 3;
		fwrite(line, 1, len, f);
		c->records++;
		c->record_bytes += o->size;
		c->file_bytes += len;
		if (c->file_bytes >= FH_CEILING_BYTES_MAX)
			break;
	}
	free(data);
	free(line);
	if (fclose(f) != 0)
		return bench_fail("cannot write %s", path);
	int64_t t0 = sl_mono_ns();
	pid_t pid = fork();
	if (pid < 0)
		return bench_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int nul = open("/dev/null", O_WRONLY);
		if (nul < 0 || dup2(nul, STDOUT_FILENO) < 0)
			_exit(127);
		execlp("zstd", "zstd", "-3", "-T1", "-q", "-c", path, (char *)NULL);
		_exit(127);
	}
	int status;
	struct rusage ru;
	while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
		;
	c->wall_seconds = (double)(sl_mono_ns() - t0) / 1e9;
	c->cpu_seconds = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
			 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	c->ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (!o->keep)
		unlink(path);
	if (!c->ok)
		fprintf(stderr,
			"sluice-bench: zstd CLI not available or failed (exit %d): no "
			"ceiling\n",
			WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}

/* ---- s3rver ---- */

struct s3rver {
	pid_t pid;
	char endpoint[64];
};

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

/* tests/node_modules/.bin/s3rver of the source tree (SLUICE_SOURCE_DIR, or ../../ of this
 * executable: the build folder inside the source tree). */
static bool find_s3rver(char *out, size_t len)
{
	const char *src = getenv("SLUICE_SOURCE_DIR");
	if (src) {
		snprintf(out, len, "%s/tests/node_modules/.bin/s3rver", src);
		if (access(out, R_OK) == 0)
			return true;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return false;
	self[n] = 0;
	char *slash = strrchr(self, '/');
	if (!slash)
		return false;
	*slash = 0;
	if (snprintf(out, len, "%s/../../tests/node_modules/.bin/s3rver", self) >= (int)len)
		return false;
	return access(out, R_OK) == 0;
}

static int s3rver_start(const char *scratch, struct s3rver *s)
{
	char script[PATH_MAX], folder[PATH_MAX + 16], logp[PATH_MAX + 16], portstr[16];
	if (!find_s3rver(script, sizeof(script)))
		return 1;
	int port = free_port();
	if (port < 0)
		return bench_fail("no free port for s3rver");
	snprintf(folder, sizeof(folder), "%s/s3rver", scratch);
	snprintf(logp, sizeof(logp), "%s/s3rver.log", scratch);
	snprintf(portstr, sizeof(portstr), "%d", port);
	pid_t pid = fork();
	if (pid < 0)
		return bench_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int lfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (lfd >= 0) {
			dup2(lfd, STDOUT_FILENO);
			dup2(lfd, STDERR_FILENO);
		}
		/* s3rver 3 needs OpenSSL's legacy provider on Node >= 17 (DES tokens). */
		execlp("node", "node", "--openssl-legacy-provider", script, "-d", folder, "-a",
		       "127.0.0.1", "-p", portstr, "--configure-bucket", FH_BUCKET, (char *)NULL);
		_exit(127);
	}
	s->pid = pid;
	snprintf(s->endpoint, sizeof(s->endpoint), "http://127.0.0.1:%d", port);
	for (int i = 0; i < 300 && !bench_stop; i++) {
		char addr[32];
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
		int fd = fh_connect(addr);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			s->pid = 0;
			fprintf(stderr, "sluice-bench: s3rver exited (see %s); skipping s3\n",
				logp);
			return 1;
		}
		usleep(100000);
	}
	return bench_fail("s3rver did not listen within 30 s (see %s)", logp);
}

static void s3rver_stop(struct s3rver *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		for (int i = 0; i < 100; i++) {
			if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
				s->pid = 0;
				return;
			}
			usleep(50000);
		}
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
}

/* ---- one destination ---- */

struct dest_result {
	const char *kind;
	struct prod_result base, with;
	double sustained_seconds; /* first send with the firehose on -> all archived */
	double drain_seconds, drain_cpu;
	/* CPU of the object store server this run started (s3rver; 0: none) while the producers
	 * ran with the firehose on: on a shared machine, CPU the producers could not have */
	double with_store_cpu;
	bool store_measured;
	struct fh_status drain_st;
	uint64_t records;
};

static int run_dest(const struct fh_opts *o, const char *scratch, const char *kind,
		    const char *dest_base, const char *endpoint, pid_t store_pid,
		    struct dest_result *res)
{
	memset(res, 0, sizeof(*res));
	res->kind = kind;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/%s", scratch, kind);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return bench_fail("mkdir %s: %s", dir, strerror(errno));
	struct bench_server srv;
	const char *extra[] = {"--firehose-cpu-priority", o->cpu_priority, NULL};
	if (bench_server_start_args(dir, BENCH_FSYNC_NEVER, o->cpu_priority ? extra : NULL, &srv) <
	    0)
		return -1;
	int ret = -1, fd = -1;
	char dest[PATH_MAX + 32];
	if ((fd = fh_connect(srv.addr)) < 0) {
		bench_fail("cannot connect to %s", srv.addr);
		goto out;
	}
	/* 1. baseline */
	if (bench_stream_create(srv.addr, "base", o->shards) < 0 ||
	    produce(o, srv.addr, "base", &res->base) < 0)
		goto out;
	/* 2. sustained: a firehose attached while producing */
	if (bench_stream_create(srv.addr, "with", o->shards) < 0)
		goto out;
	snprintf(dest, sizeof(dest), "%s/sustained", dest_base);
	if (fh_create(fd, "fh-with", "with", dest, endpoint) < 0)
		goto out;
	int64_t t0 = sl_mono_ns();
	double store0 = store_pid > 0 ? proc_cpu_seconds(store_pid) : 0;
	if (produce(o, srv.addr, "with", &res->with) < 0)
		goto out;
	if (store_pid > 0) {
		res->with_store_cpu = proc_cpu_seconds(store_pid) - store0;
		res->store_measured = true;
	}
	if (fh_simple(fd, FH_OP_FLUSH, "fh-with") < 0)
		goto out;
	/* FIREHOSE_FLUSH closes only the next window of each shard (docs/benchmarks.md): repeat it
	 * until the backlog is archived, or the last window would wait for the 60 s interval. */
	struct fh_status st;
	while (wait_archived(fd, "fh-with", res->with.last_seq, o->shards, 0.05, true, &st) < 0) {
		if ((double)(sl_mono_ns() - t0) / 1e9 > o->seconds * 4 || bench_stop) {
			bench_fail("the firehose did not catch up within %.0fs", o->seconds * 4);
			goto out;
		}
		fh_simple(fd, FH_OP_FLUSH, "fh-with");
	}
	res->sustained_seconds = (double)(sl_mono_ns() - t0) / 1e9;
	/* 3. drain the baseline stream */
	snprintf(dest, sizeof(dest), "%s/drain", dest_base);
	double cpu0 = proc_cpu_seconds(srv.pid);
	t0 = sl_mono_ns();
	if (fh_create(fd, "fh-drain", "base", dest, endpoint) < 0 ||
	    fh_simple(fd, FH_OP_FLUSH, "fh-drain") < 0)
		goto out;
	/* Flush again as the size-closed windows go by: the last one must not wait 60 s. */
	for (;;) {
		double el = wait_archived(fd, "fh-drain", res->base.last_seq, o->shards, 0.05, true,
					  &res->drain_st);
		if (el >= 0)
			break;
		if ((double)(sl_mono_ns() - t0) / 1e9 > o->seconds * 4 || bench_stop) {
			bench_fail("the drain did not finish within %.0fs", o->seconds * 4);
			goto out;
		}
		fh_simple(fd, FH_OP_FLUSH, "fh-drain");
	}
	res->drain_seconds = (double)(sl_mono_ns() - t0) / 1e9;
	res->drain_cpu = proc_cpu_seconds(srv.pid) - cpu0;
	res->records = res->base.acked;
	if (res->drain_st.records != res->base.acked)
		ret = bench_fail("%s: firehose archived %llu records, %llu were produced", kind,
				 (unsigned long long)res->drain_st.records,
				 (unsigned long long)res->base.acked);
	else
		ret = 0;
out:
	if (fd >= 0) {
		if (ret == 0)
			ret = fh_simple(fd, FH_OP_DELETE, "fh-with") < 0 ||
				      fh_simple(fd, FH_OP_DELETE, "fh-drain") < 0
				  ? -1
				  : 0;
		close(fd);
	}
	if (bench_server_stop(&srv) < 0 && ret == 0)
		ret = bench_fail("sluiced (%s) did not exit cleanly; see %s", kind, srv.log_path);
	return ret;
}

static void report(const struct fh_opts *o, const struct dest_result *r, const struct ceiling *c)
{
	double mb = (double)o->size / 1e6;
	double base_rps = r->base.acked / r->base.seconds;
	double with_rps = r->with.acked / r->with.seconds;
	double sus_rps = r->with.acked / r->sustained_seconds;
	double drain_rps = r->records / r->drain_seconds;
	double per_core = r->drain_cpu > 0 ? r->records * mb / r->drain_cpu : 0;
	double ratio = r->drain_st.bytes_written
			   ? (double)r->records * o->size / (double)r->drain_st.bytes_written
			   : 0;
	double zstd_core = c->ok && c->cpu_seconds > 0 ? c->record_bytes / 1e6 / c->cpu_seconds : 0;
	FILE *f = o->json ? stderr : stdout;
	fprintf(f,
		"\n%s destination (%u shards, %u producers, %u B records, %llu records, "
		"firehose CPU priority %s)\n",
		r->kind, o->shards, o->connections, o->size, (unsigned long long)r->records,
		o->cpu_priority ? o->cpu_priority : "default");
	fprintf(f, "  produce, no firehose      %10.0f rec/s  %8.1f MB/s\n", base_rps,
		base_rps * mb);
	fprintf(f, "  produce, firehose on      %10.0f rec/s  %8.1f MB/s  (%+.1f%% vs without)\n",
		with_rps, with_rps * mb, (with_rps / base_rps - 1) * 100);
	if (r->store_measured)
		fprintf(f,
			"    the object store server (this run's s3rver) used %.2fs CPU meanwhile, "
			"%.0f%% of a core\n",
			r->with_store_cpu,
			r->with.seconds > 0 ? r->with_store_cpu / r->with.seconds * 100 : 0);
	fprintf(f,
		"  sustained into %-8s   %10.0f rec/s  %8.1f MB/s  (first send -> all archived)\n",
		r->kind, sus_rps, sus_rps * mb);
	fprintf(f,
		"  drain of a full stream    %10.0f rec/s  %8.1f MB/s  sluiced CPU %.2fs -> "
		"%.1f MB/s per core\n",
		drain_rps, drain_rps * mb, r->drain_cpu, per_core);
	fprintf(f,
		"  objects %llu, %.1f MB stored for %.1f MB of records: ratio %.2fx "
		"(object bytes %.1f%% of record bytes)\n",
		(unsigned long long)r->drain_st.objects, r->drain_st.bytes_written / 1e6,
		r->records * mb, ratio, ratio > 0 ? 100 / ratio : 0);
	if (zstd_core > 0)
		fprintf(f,
			"  vs zstd -3 -T1 ceiling    %.1f MB/s of records per core: firehose at "
			"%.0f%% (target >= 80%%)\n",
			zstd_core, per_core / zstd_core * 100);
	if (o->json) {
		struct bench_json j;
		bench_json_begin(&j, "firehose");
		bench_json_str(&j, "dest", r->kind);
		bench_json_str(&j, "cpu_priority", o->cpu_priority ? o->cpu_priority : "default");
		bench_json_u64(&j, "records", r->records);
		bench_json_u64(&j, "size", o->size);
		bench_json_u64(&j, "shards", o->shards);
		bench_json_u64(&j, "connections", o->connections);
		bench_json_num(&j, "produce_rps_without", base_rps);
		bench_json_num(&j, "produce_rps_with", with_rps);
		if (r->store_measured)
			bench_json_num(&j, "store_cpu_s_while_producing", r->with_store_cpu);
		bench_json_num(&j, "sustained_rps", sus_rps);
		bench_json_num(&j, "sustained_mbps", sus_rps * mb);
		bench_json_num(&j, "drain_rps", drain_rps);
		bench_json_num(&j, "drain_mbps", drain_rps * mb);
		bench_json_num(&j, "drain_cpu_s", r->drain_cpu);
		bench_json_num(&j, "mbps_per_core", per_core);
		bench_json_num(&j, "compression_ratio", ratio);
		bench_json_u64(&j, "objects", r->drain_st.objects);
		bench_json_num(&j, "zstd_cli_mbps_per_core", zstd_core);
		bench_json_num(&j, "vs_zstd_cli", zstd_core > 0 ? per_core / zstd_core : 0);
		bench_json_end(&j);
	}
}

static const char fh_usage[] =
    "usage: sluice-bench firehose [options]\n"
    "  --records N        records per phase (default 200000)\n"
    "  --size BYTES       record data size (default 1024)\n"
    "  --shards N         shards (default 2)\n"
    "  --connections N    producer connections (default 2)\n"
    "  --seconds S        bound per phase (default 60)\n"
    "  --s3 ENDPOINT|off  also an s3:// destination at ENDPOINT (bucket " FH_BUCKET
    ", credentials\n"
    "                     from AWS_* or S3RVER); default: start s3rver from tests/node_modules\n"
    "                     when installed\n"
    "  --dir DIR          scratch folder parent (default .)\n"
    "  --cpu-priority P   sluiced's --firehose-cpu-priority (nice:N | idle | normal;\n"
    "                     default: sluiced's default)\n"
    "  --json, --keep\n";

int bench_firehose_main(int argc, char **argv)
{
	struct fh_opts o = {
	    .records = 200000, .size = 1024, .shards = 2, .connections = 2, .seconds = 60};
	for (int i = 2; i < argc; i++) {
		const char *f = argv[i];
		if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
			fputs(fh_usage, stdout);
			return 0;
		}
		if (!strcmp(f, "--json")) {
			o.json = true;
			continue;
		}
		if (!strcmp(f, "--keep")) {
			o.keep = true;
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
		else if (!strcmp(f, "--shards") && num && n >= 1 && n <= FH_SHARDS_MAX)
			o.shards = (uint32_t)n;
		else if (!strcmp(f, "--connections") && num && n >= 1 && n <= BENCH_CONNECTIONS_MAX)
			o.connections = (uint32_t)n;
		else if (!strcmp(f, "--seconds") && num && n >= 1 && n <= 3600)
			o.seconds = (double)n;
		else if (!strcmp(f, "--s3"))
			o.s3 = v;
		else if (!strcmp(f, "--dir"))
			o.dir = v;
		else if (!strcmp(f, "--cpu-priority"))
			o.cpu_priority = v;
		else {
			bench_fail("bad flag or value: %s %s (see --help)", f, v);
			return 2;
		}
	}
	struct sigaction sa = {.sa_handler = SIG_IGN};
	sigaction(SIGPIPE, &sa, NULL);

	char scratch[PATH_MAX];
	snprintf(scratch, sizeof(scratch), "%s/sluice-bench-firehose-XXXXXX", o.dir ? o.dir : ".");
	if (!mkdtemp(scratch)) {
		bench_fail("cannot create a scratch folder in %s: %s", o.dir ? o.dir : ".",
			   strerror(errno));
		return 1;
	}
	char abs[PATH_MAX];
	if (!realpath(scratch, abs)) {
		bench_fail("realpath %s: %s", scratch, strerror(errno));
		return 1;
	}
	struct ceiling c;
	int ret = zstd_ceiling(&o, abs, &c);
	if (ret == 0 && c.ok)
		fprintf(
		    o.json ? stderr : stdout,
		    "zstd -3 -T1 on the records as archive JSONL: %.1f MB of lines (%.1f MB of "
		    "records) in %.2fs CPU: %.1f MB/s of lines, %.1f MB/s of records per core\n",
		    c.file_bytes / 1e6, c.record_bytes / 1e6, c.cpu_seconds,
		    c.file_bytes / 1e6 / c.cpu_seconds, c.record_bytes / 1e6 / c.cpu_seconds);
	struct dest_result r;
	char dest[PATH_MAX + 16];
	if (ret == 0) {
		snprintf(dest, sizeof(dest), "file://%s/objects", abs);
		ret = run_dest(&o, abs, "file", dest, "", 0, &r);
		if (ret == 0)
			report(&o, &r, &c);
	}
	struct s3rver s3 = {0};
	if (ret == 0 && !(o.s3 && !strcmp(o.s3, "off"))) {
		const char *endpoint = o.s3;
		int s = 0;
		if (!endpoint) {
			s = s3rver_start(abs, &s3);
			endpoint = s3.endpoint;
			if (s == 0) {
				setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
				setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
			}
		} else if (!getenv("AWS_ACCESS_KEY_ID")) {
			setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
			setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
		}
		if (s < 0)
			ret = -1;
		else if (s > 0)
			fprintf(o.json ? stderr : stdout,
				"\ns3: no --s3 and no tests/node_modules s3rver: skipped\n");
		else {
			ret = run_dest(&o, abs, "s3", "s3://" FH_BUCKET "/bench", endpoint, s3.pid,
				       &r);
			if (ret == 0)
				report(&o, &r, &c);
		}
		s3rver_stop(&s3);
	}
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
