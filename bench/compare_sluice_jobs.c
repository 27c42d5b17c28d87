/*
 * `compare`, sluice alone: the rows no peer has a counterpart of, run on the same sluiced as
 * sluice's other rows (compare_sluice.c).
 *
 *   consume_handler  a consumer with the bench plugin (bench/bench_plugin.c, inside sluiced)
 *                    delivers what the produce row stored, from TRIM_HORIZON, batches of
 *                    --batch; clock: consumer create -> the plugin's last batch (its counter
 *                    file), once `consumer describe` shows every record delivered
 *   e2e_handler      a plugin consumer on a new stream, then the paced producers of the e2e
 *                    row; per record: due time -> the plugin has it (its latency file)
 *   firehose         a firehose (file:// in the scratch folder, zstd 3, jsonl, 5 MiB buffers)
 *                    archives what the produce row stored; clock: create -> every shard's
 *                    checkpoint at its tip (a FLUSH once every record is buffered)
 *   replay           `sluice replay TAG --from trim-horizon --into TAG-r --keep-keys` (the CLI
 *                    of the build tree); the copy's record count is checked
 */
#include "bench_counter.h"
#include "compare.h"
#include "diskbw.h"

#include <sluice/client.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define JOB_POLL_NS 5000000ll /* describe every 5 ms */
/* After the paced producers are done, how long the handler may take to get the rest. */
#define JOB_DRAIN_NS 10000000000ll

/* ---- shared files of the plugin (bench_counter.h) ---- */

/* Create DIR/NAME.EXT of `size` bytes, zeroed, mapped shared; the caller sets the magic. */
static void *shared_file(const char *dir, const char *name, const char *ext, size_t size,
			 char *path, size_t path_len)
{
	if (snprintf(path, path_len, "%s/%s.%s", dir, name, ext) >= (int)path_len)
		return NULL;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return NULL;
	void *m = MAP_FAILED;
	if (ftruncate(fd, (off_t)size) == 0)
		m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		unlink(path);
		return NULL;
	}
	return m;
}

static void shared_file_drop(void *m, size_t size, const char *path)
{
	if (m)
		munmap(m, size);
	unlink(path);
}

static int plugin_spec(struct cmp_engine *e, char *spec, size_t len)
{
	char path[PATH_MAX];
	int r = bench_exe_sibling("sluice_bench_plugin.so", path, sizeof(path));
	if (r < 0)
		return cmp_fail(
		    e, "%s: %s (build bench/ fully: the handler rows need the bench plugin)", path,
		    strerror(-r));
	snprintf(spec, len, "plugin:%s", path);
	return 0;
}

/* ---- waiting on a consumer ---- */

struct delivered {
	uint64_t total;
	uint64_t per_shard[BENCH_SHARDS_MAX];
	uint64_t failed; /* batches_failed + expired, over all shards */
};

static int consumer_delivered(struct cmp_engine *e, struct sluice_client *c, const char *name,
			      struct delivered *d)
{
	struct sluice_consumer_info *info = NULL;
	int r = sluice_consumer_describe(c, name, &info);
	if (r < 0)
		return cmp_fail(e, "consumer describe %s: %s", name,
				sluice_client_last_error_message(c));
	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < info->shard_count; i++) {
		const struct sluice_consumer_shard_status *st = &info->shards[i];
		d->total += st->delivered;
		d->failed += st->batches_failed + st->expired;
		if (st->shard_id < BENCH_SHARDS_MAX)
			d->per_shard[st->shard_id] = st->delivered;
	}
	sluice_consumer_info_free(info);
	return 0;
}

/* Until the consumer delivered `want` records (per shard when per_shard is given), or deadline
 * (CLOCK_MONOTONIC ns). *got: what it delivered. */
static int wait_delivered(struct cmp_engine *e, struct sluice_client *c, const char *name,
			  uint64_t want, const uint64_t *per_shard, int64_t deadline,
			  struct delivered *got)
{
	for (;;) {
		if (consumer_delivered(e, c, name, got) < 0)
			return -1;
		if (got->failed)
			return cmp_fail(e, "consumer %s: %llu failed batches or expired records",
					name, (unsigned long long)got->failed);
		bool done = got->total >= want;
		for (uint32_t k = 0; done && per_shard && k < BENCH_SHARDS_MAX; k++)
			done = got->per_shard[k] >= per_shard[k];
		if (got->total > want)
			return cmp_fail(e, "consumer %s delivered %llu records, %llu were stored",
					name, (unsigned long long)got->total,
					(unsigned long long)want);
		if (done)
			return 0;
		if (bench_stop)
			return cmp_fail(e, "interrupted");
		if (cmp_now_ns() >= deadline)
			return cmp_fail(e, "consumer %s: %llu of %llu records delivered in time",
					name, (unsigned long long)got->total,
					(unsigned long long)want);
		cmp_sleep_until(cmp_now_ns() + JOB_POLL_NS);
	}
}

static int create_plugin_consumer(struct cmp_engine *e, struct sluice_client *c, const char *name,
				  const struct cmp_params *p)
{
	char spec[PATH_MAX + 16];
	if (plugin_spec(e, spec, sizeof(spec)) < 0)
		return -1;
	struct sluice_consumer_options o;
	sluice_consumer_options_init(&o);
	o.batch_size = p->batch;
	o.start.type = SLUICE_POS_TRIM_HORIZON;
	if (sluice_consumer_create(c, name, p->tag, spec, &o) < 0)
		return cmp_fail(e, "consumer create %s: %s", name,
				sluice_client_last_error_message(c));
	return 0;
}

static int client_connect(struct cmp_engine *e, struct sluice_client **c)
{
	int r = sluice_client_connect(cmp_sluice_addr(e), NULL, c);
	return r < 0 ? cmp_fail(e, "cannot connect: %s", sluice_strerror(r)) : 0;
}

/* ---- consume_handler ---- */

static int consume_handler(struct cmp_engine *e, const struct cmp_params *p,
			   const struct cmp_result *produced, struct cmp_result *r)
{
	char name[96], path[PATH_MAX];
	snprintf(name, sizeof(name), "%s-h", p->tag);
	struct bench_counter_file *cnt =
	    shared_file(cmp_sluice_scratch(e), name, "cnt", sizeof(*cnt), path, sizeof(path));
	if (!cnt)
		return cmp_fail(e, "cannot create the counter file %s: %s", path, strerror(errno));
	cnt->magic = BENCH_COUNTER_MAGIC;
	struct sluice_client *c = NULL;
	int ret = client_connect(e, &c);
	int64_t t0 = cmp_now_ns();
	if (ret == 0)
		ret = create_plugin_consumer(e, c, name, p);
	struct delivered d = {0};
	if (ret == 0) {
		ret = wait_delivered(e, c, name, produced->records, produced->per_shard,
				     t0 + (int64_t)(p->seconds * 1e9), &d);
		if (sluice_consumer_delete(c, name) < 0 && ret == 0)
			ret = cmp_fail(e, "consumer delete %s: %s", name,
				       sluice_client_last_error_message(c));
	}
	/* The plugin's own clock: the end of its last batch. */
	int64_t last = 0;
	uint64_t counted = 0;
	for (uint32_t k = 0; k < BENCH_COUNTER_SLOTS; k++) {
		int64_t t = atomic_load_explicit(&cnt->slots[k].last_ns, memory_order_acquire);
		counted += atomic_load_explicit(&cnt->slots[k].records, memory_order_relaxed);
		if (t > last)
			last = t;
	}
	if (ret == 0 && counted < d.total)
		ret = cmp_fail(e,
			       "consume_handler: the plugin counted %llu records, describe says "
			       "%llu (is SLUICE_BENCH_COUNTER_DIR lost?)",
			       (unsigned long long)counted, (unsigned long long)d.total);
	r->records = d.total;
	r->seconds = last > t0 ? (double)(last - t0) / 1e9 : 0;
	sluice_client_close(c);
	shared_file_drop(cnt, sizeof(*cnt), path);
	return ret;
}

/* ---- e2e_handler ---- */

static int e2e_handler(struct cmp_engine *e, const struct cmp_params *p, struct cmp_result *r)
{
	char name[96], path[PATH_MAX];
	snprintf(name, sizeof(name), "%s-h", p->tag);
	struct bench_lat_file *lat =
	    shared_file(cmp_sluice_scratch(e), name, "lat", sizeof(*lat), path, sizeof(path));
	if (!lat)
		return cmp_fail(e, "cannot create the latency file %s: %s", path, strerror(errno));
	for (uint32_t k = 0; k < BENCH_LAT_SLOTS; k++)
		bench_hist_init(&lat->slots[k]);
	lat->magic = BENCH_LAT_MAGIC;
	struct cmp_result *pr = calloc(1, sizeof(*pr));
	struct sluice_client *c = NULL;
	int ret = pr ? client_connect(e, &c) : cmp_fail(e, "out of memory");
	/* The stream is new and empty: from TRIM_HORIZON the consumer gets every record. */
	if (ret == 0)
		ret = create_plugin_consumer(e, c, name, p);
	struct delivered d = {0};
	if (ret == 0) {
		bench_hist_init(&pr->lat);
		ret = cmp_sluice_produce(e, p, pr);
		if (ret == 0 && pr->records != pr->sent)
			ret = cmp_fail(e, "e2e_handler: %llu of %llu records not acknowledged",
				       (unsigned long long)(pr->sent - pr->records),
				       (unsigned long long)pr->sent);
		if (ret == 0)
			ret = wait_delivered(e, c, name, pr->records, NULL,
					     cmp_now_ns() + JOB_DRAIN_NS, &d);
		if (sluice_consumer_delete(c, name) < 0 && ret == 0)
			ret = cmp_fail(e, "consumer delete %s: %s", name,
				       sluice_client_last_error_message(c));
	}
	atomic_thread_fence(memory_order_acquire);
	for (uint32_t k = 0; k < BENCH_LAT_SLOTS; k++)
		bench_hist_merge(&r->lat, &lat->slots[k]);
	if (ret == 0 && r->lat.count != d.total)
		ret = cmp_fail(e, "e2e_handler: the plugin timed %llu records, %llu were delivered",
			       (unsigned long long)r->lat.count, (unsigned long long)d.total);
	if (pr) {
		r->sent = pr->sent;
		r->seconds = pr->seconds;
		r->time_bound = pr->time_bound;
	}
	r->records = d.total;
	free(pr);
	sluice_client_close(c);
	shared_file_drop(lat, sizeof(*lat), path);
	return ret;
}

/* ---- firehose ---- */

static int firehose(struct cmp_engine *e, const struct cmp_params *p,
		    const struct cmp_result *produced, struct cmp_result *r)
{
	char name[96], dir[PATH_MAX], dest[PATH_MAX + 8];
	snprintf(name, sizeof(name), "%s-f", p->tag);
	if (snprintf(dir, sizeof(dir), "%s/%s", cmp_sluice_scratch(e), name) >= (int)sizeof(dir) ||
	    dir[0] != '/')
		return cmp_fail(e, "firehose: the scratch folder must be an absolute path: %s",
				dir);
	snprintf(dest, sizeof(dest), "file://%s", dir);
	struct sluice_client *c = NULL;
	int ret = client_connect(e, &c);
	struct sluice_shard_info *shards = NULL;
	size_t nshards = 0;
	if (ret == 0 && sluice_list_shards(c, p->tag, &shards, &nshards) < 0)
		ret =
		    cmp_fail(e, "list shards %s: %s", p->tag, sluice_client_last_error_message(c));
	struct sluice_firehose_options o;
	sluice_firehose_options_init(&o);
	int64_t t0 = cmp_now_ns(), deadline = t0 + (int64_t)(p->seconds * 1e9);
	if (ret == 0 && sluice_firehose_create(c, name, p->tag, dest, &o) < 0)
		ret = cmp_fail(e, "firehose create %s: %s", name,
			       sluice_client_last_error_message(c));
	bool created = ret == 0, flushed = false;
	uint64_t archived = 0, written = 0;
	while (ret == 0) {
		struct sluice_firehose_info *info = NULL;
		if (sluice_firehose_describe(c, name, &info) < 0) {
			ret = cmp_fail(e, "firehose describe %s: %s", name,
				       sluice_client_last_error_message(c));
			break;
		}
		bool done = true, buffered_all = true;
		archived = written = 0;
		for (size_t i = 0; i < info->shard_count; i++) {
			const struct sluice_firehose_shard_status *st = &info->shards[i];
			uint64_t tip = 0;
			for (size_t k = 0; k < nshards; k++)
				if (shards[k].shard_id == st->shard_id)
					tip = shards[k].next_seq - 1;
			done &= st->checkpoint_seq >= tip;
			buffered_all &= st->checkpoint_seq + st->buffered_records >= tip;
			archived += st->records_archived;
			written += st->bytes_written;
			if (st->upload_failures && ret == 0)
				ret = cmp_fail(e, "firehose %s: %s", name, st->last_error);
		}
		sluice_firehose_info_free(info);
		if (ret < 0 || done)
			break;
		/* Everything is in the buffers: write them out now, not after the interval. */
		if (buffered_all && !flushed) {
			if (sluice_firehose_flush(c, name) < 0)
				ret = cmp_fail(e, "firehose flush %s: %s", name,
					       sluice_client_last_error_message(c));
			flushed = true;
		}
		if (ret == 0 && (bench_stop || cmp_now_ns() >= deadline)) {
			ret = cmp_fail(e, "firehose %s: %llu of %llu records archived in time",
				       name, (unsigned long long)archived,
				       (unsigned long long)produced->records);
		}
		if (ret == 0)
			cmp_sleep_until(cmp_now_ns() + JOB_POLL_NS);
	}
	r->seconds = (double)(cmp_now_ns() - t0) / 1e9;
	r->records = archived;
	if (ret == 0 && archived != produced->records)
		ret = cmp_fail(e, "firehose %s archived %llu records, %llu were stored", name,
			       (unsigned long long)archived, (unsigned long long)produced->records);
	if (ret == 0 && written)
		cmp_progress("  sluice firehose: %.1f MB of records -> %.1f MB of objects (%.2fx)",
			     (double)archived * p->size / 1e6, (double)written / 1e6,
			     (double)archived * p->size / (double)written);
	if (created && sluice_firehose_delete(c, name) < 0 && ret == 0)
		ret = cmp_fail(e, "firehose delete %s: %s", name,
			       sluice_client_last_error_message(c));
	sluice_shards_free(shards);
	sluice_client_close(c);
	bench_rm_rf(dir);
	return ret;
}

/* ---- replay ---- */

static int replay(struct cmp_engine *e, const struct cmp_params *p,
		  const struct cmp_result *produced, struct cmp_result *r)
{
	char cli[PATH_MAX], copy[sizeof(p->tag)], log[PATH_MAX];
	int rc = bench_exe_sibling("../tools/cli/sluice", cli, sizeof(cli));
	if (rc < 0)
		return cmp_fail(e, "%s: %s (build tools/cli: replay runs the sluice CLI)", cli,
				strerror(-rc));
	if (snprintf(copy, sizeof(copy), "%s-r", p->tag) >= (int)sizeof(copy))
		return cmp_fail(e, "replay: stream name %s-r too long", p->tag);
	snprintf(log, sizeof(log), "%s/%s.log", cmp_sluice_scratch(e), copy);
	struct cmp_params cp = *p;
	memcpy(cp.tag, copy, sizeof(cp.tag));
	if (e->create(e, &cp) < 0)
		return -1;
	char *argv[] = {cli,
			"--server",
			(char *)cmp_sluice_addr(e),
			"replay",
			(char *)p->tag,
			"--from",
			"trim-horizon",
			"--into",
			copy,
			"--keep-keys",
			NULL};
	int64_t t0 = cmp_now_ns();
	pid_t pid = cmp_spawn(argv, log);
	int ret = 0, status = 0;
	if (pid < 0)
		ret = cmp_fail(e, "cannot run %s: %s", cli, strerror(errno));
	else {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		cmp_child_forget(pid);
	}
	r->seconds = (double)(cmp_now_ns() - t0) / 1e9;
	if (ret == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		char last[512];
		cmp_last_line(log, last, sizeof(last));
		ret = cmp_fail(e, "sluice replay failed (status %d): %s", status, last);
	}
	struct sluice_client *c = NULL;
	if (ret == 0)
		ret = client_connect(e, &c);
	struct sluice_shard_info *shards = NULL;
	size_t n = 0;
	if (ret == 0 && sluice_list_shards(c, copy, &shards, &n) < 0)
		ret = cmp_fail(e, "list shards %s: %s", copy, sluice_client_last_error_message(c));
	for (size_t i = 0; i < n; i++)
		r->records += shards[i].next_seq - shards[i].start_seq;
	if (ret == 0 && r->records != produced->records)
		ret =
		    cmp_fail(e, "replay copied %llu records, %llu were stored",
			     (unsigned long long)r->records, (unsigned long long)produced->records);
	sluice_shards_free(shards);
	sluice_client_close(c);
	if (e->drop(e, &cp) < 0 && ret == 0)
		ret = -1;
	if (ret == 0)
		unlink(log);
	return ret;
}

int cmp_sluice_only(struct cmp_engine *e, enum cmp_workload w, const struct cmp_params *p,
		    const struct cmp_result *produced, struct cmp_result *r)
{
	switch (w) {
	case CMP_CONSUME_HANDLER:
		return consume_handler(e, p, produced, r);
	case CMP_E2E_HANDLER:
		return e2e_handler(e, p, r);
	case CMP_FIREHOSE:
		return firehose(e, p, produced, r);
	case CMP_REPLAY:
		return replay(e, p, produced, r);
	default:
		return cmp_fail(e, "%s is not a sluice-only workload", cmp_workload_name(w));
	}
}
