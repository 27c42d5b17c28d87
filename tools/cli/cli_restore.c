/*
 * sluice restore: rebuild a stream from a firehose archive (src/archive/archive_format.h) into a
 * server, with the original shard layout, sequence numbers, partition keys, arrival times and
 * data. See docs/operations.md ("Recovery runbook") for when and how.
 *
 * Steps: read PREFIX/_meta/STREAM.json (the layout the firehose stored) if there is one; list
 * the archive and plan it per shard by parsed sequence range (src/archive/archive_plan.h); create
 * the stream from the layout (STREAM_CREATE_FROM_META) unless it exists; then per shard, per
 * object in seq order: download, decompress and verify the whole object (zstd frame and its
 * checksum, every JSON line, stream/shard/seq matching the key), drop records seen already,
 * note gaps, and append in batches with RESTORE_APPEND (tools/cli/restore_writer.h).
 *
 * Parallelism: --parallel N workers (default 2), each with its own object store handle,
 * connection and writer, take whole shards one at a time, so a shard's records always reach the
 * server in seq order, one batch in flight, while different shards (owned by different server
 * loops) proceed side by side.
 *
 * Memory: per worker one object (as stored and decompressed) plus two batches, plus ~100 bytes
 * per object for the plan, whatever the number of records.
 *
 * Exit status: 0 everything restored; 1 failed (nothing more could be done); 3 done, but the
 * archive has gaps or bad objects (listed in the summary) and --accept-gaps was not given.
 */
#include "cli.h"
#include "restore_writer.h"

#include "archive/archive_format.h"
#include "archive/archive_plan.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/units.h"
#include "objstore/objstore.h"
#include "stream/hash_key.h"
#include "stream/stream_meta.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char restore_usage[] =
    "usage: sluice restore --from file:///DIR|s3://BUCKET[/PREFIX] --stream NAME\n"
    "                      [--into NEW_NAME] [--from-time T] [--to-time T] [--endpoint URL]\n"
    "                      [--region R] [--shards N] [--retention DURATION] [--parallel N]\n"
    "                      [--accept-gaps]\n"
    "  --from URL        the firehose's destination (exactly its --dest)\n"
    "  --stream NAME     the archived stream\n"
    "  --into NEW_NAME   restore under another name (default: NAME)\n"
    "  --from-time T     only records that arrived at or after T (ISO8601 or Unix ms)\n"
    "  --to-time T       only records that arrived before T\n"
    "  --endpoint URL    S3-compatible endpoint (path-style), e.g. http://127.0.0.1:9000\n"
    "  --region R        S3 region (default $AWS_REGION or us-east-1)\n"
    "  --shards N        without _meta/NAME.json in the archive: create N even shards\n"
    "                    (default: highest shard id + 1)\n"
    "  --retention D     retention of the created stream (default: the archived one); records\n"
    "                    older than the retention expire as soon as they are restored\n"
    "  --parallel N      shards restored at once (default 2, at most 16)\n"
    "  --accept-gaps     exit 0 even if records are missing from the archive\n"
    "exit status: 0 restored, 1 failed, 3 restored with gaps or bad objects (see the summary)\n";

#define CLI_EXIT_INCOMPLETE 3
/* Largest decompressed object: the firehose's biggest buffer (128 MiB) with room to spare. */
#define OBJECT_PLAIN_BYTES_MAX (1ull << 30)
#define GET_RETRIES 4
#define GET_BACKOFF_MS 250
/* Bad objects listed by name in the summary; more are only counted. */
#define BAD_OBJECTS_LISTED 32
#define PARALLEL_DEFAULT 2
#define PARALLEL_MAX 16

/* What every worker shares: the options and plan (read-only) and the totals (atomic). */
struct job {
	const struct cli *cli;
	const char *stream; /* archived name */
	const char *into;   /* target name */
	const char *url;
	struct sl_objstore_options oo;
	int64_t from_ms, to_ms;
	bool have_layout;
	const struct sl_archive_plan *plan;
	const struct sluice_stream_info *info;
	atomic_size_t next_shard; /* index into info->shards */
	int workers_done;	  /* under mu; done_cv signals a change */
	pthread_cond_t done_cv;	  /* CLOCK_MONOTONIC */
	atomic_int failed;
	/* totals */
	_Atomic uint64_t objects_read, objects_skipped, objects_bad;
	_Atomic uint64_t records_read, records_filtered, duplicates;
	_Atomic uint64_t bytes_stored, gaps, missing;
	pthread_mutex_t mu; /* the lists below and stderr lines of several workers */
	char bad_list[BAD_OBJECTS_LISTED][400];
	size_t bad_listed;
	char fail_msg[600];
};

struct worker {
	struct job *job;
	pthread_t thread;
	struct sl_objstore *store;
	struct sluice_client *client;
	struct restore_writer w;
	bool w_ready;
	struct sl_seq_track track;
	struct sl_buf raw, plain;
	/* the object being read */
	const struct sl_plan_object *obj;
	uint64_t obj_first_seen, obj_last_seen, obj_records;
	bool append_failed;
	char mismatch_msg[256];
	struct rw_stats st; /* after the last shard */
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int get_object(struct sl_objstore *store, const char *key, struct sl_buf *out, char *msg,
		      size_t msg_len)
{
	struct sl_objstore_error oe;
	int r = 0;
	for (int attempt = 0;; attempt++) {
		memset(&oe, 0, sizeof(oe));
		r = sl_objstore_get(store, key, out, &oe);
		if (r == 0 || !oe.retryable || attempt == GET_RETRIES)
			break;
		sleep_ms(GET_BACKOFF_MS << attempt);
	}
	if (r < 0)
		snprintf(msg, msg_len, "%s", oe.message[0] ? oe.message : sluice_strerror(r));
	return r;
}

static void note_bad(struct job *job, const char *key, const char *why)
{
	pthread_mutex_lock(&job->mu);
	if (job->bad_listed < BAD_OBJECTS_LISTED)
		snprintf(job->bad_list[job->bad_listed++], sizeof(job->bad_list[0]),
			 "%.200s: %.190s", key, why);
	fprintf(stderr, "sluice: restore: bad object %s: %s\n", key, why);
	pthread_mutex_unlock(&job->mu);
	atomic_fetch_add(&job->objects_bad, 1);
}

static void fail_job(struct job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_job(struct job *job, const char *fmt, ...)
{
	pthread_mutex_lock(&job->mu);
	if (!atomic_load(&job->failed)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(job->fail_msg, sizeof(job->fail_msg), fmt, ap);
		va_end(ap);
		atomic_store(&job->failed, 1);
	}
	pthread_mutex_unlock(&job->mu);
}

static int on_record(const struct sl_archive_record *rec, void *ctx)
{
	struct worker *wk = ctx;
	struct job *job = wk->job;
	const struct sl_plan_object *o = wk->obj;
	if (strcmp(rec->stream, job->stream) != 0 || rec->shard_id != o->shard_id ||
	    rec->seq < o->first_seq || rec->seq > o->last_seq) {
		snprintf(
		    wk->mismatch_msg, sizeof(wk->mismatch_msg),
		    "line %llu: stream %.60s shard %u seq %llu does not match the object's key",
		    (unsigned long long)rec->line, rec->stream, rec->shard_id,
		    (unsigned long long)rec->seq);
		return 1;
	}
	if (wk->obj_records == 0)
		wk->obj_first_seen = rec->seq;
	wk->obj_last_seen = rec->seq;
	wk->obj_records++;
	if (sl_seq_track_see(&wk->track, rec->seq) == SL_SEQ_DUPLICATE)
		return 0;
	if (rec->ts_ms < job->from_ms || (job->to_ms && rec->ts_ms >= job->to_ms)) {
		atomic_fetch_add_explicit(&job->records_filtered, 1, memory_order_relaxed);
		return 0;
	}
	int r = rw_add(&wk->w, o->shard_id, rec->seq, rec->ts_ms, rec->key, rec->key_len, rec->data,
		       rec->data_len);
	if (r < 0) {
		wk->append_failed = true;
		return r;
	}
	return 0;
}

/* Restore one object; a bad object is reported and skipped (0), a failed append is fatal (<0). */
static int restore_object(struct worker *wk, const struct sl_plan_object *o)
{
	struct job *job = wk->job;
	char msg[320] = "";
	sl_buf_reset(&wk->raw);
	int r = get_object(wk->store, o->key, &wk->raw, msg, sizeof(msg));
	if (r < 0) {
		note_bad(job, o->key, msg);
		return 0;
	}
	atomic_fetch_add(&job->bytes_stored, wk->raw.len);
	atomic_fetch_add(&job->objects_read, 1);
	sl_buf_reset(&wk->plain);
	/* Whole object first: its checksum is verified before any of its records is stored. */
	r = sl_archive_decompress(wk->raw.data, wk->raw.len, o->compression, OBJECT_PLAIN_BYTES_MAX,
				  &wk->plain, msg, sizeof(msg));
	if (r < 0) {
		note_bad(job, o->key, msg[0] ? msg : sluice_strerror(r));
		return 0;
	}
	wk->obj = o;
	wk->obj_records = 0;
	wk->mismatch_msg[0] = '\0';
	uint64_t dups_before = wk->track.duplicates;
	r = sl_archive_read(wk->plain.data, wk->plain.len, SL_ARCHIVE_NONE, on_record, wk, msg,
			    sizeof(msg));
	atomic_fetch_add(&job->duplicates, wk->track.duplicates - dups_before);
	atomic_fetch_add(&job->records_read, wk->obj_records);
	if (wk->append_failed)
		return -1; /* the server refused a batch: wk->w.err says why */
	if (r == 1) {
		note_bad(job, o->key, wk->mismatch_msg);
		return 0;
	}
	if (r < 0) {
		note_bad(job, o->key, msg[0] ? msg : sluice_strerror(r));
		return 0;
	}
	if (wk->obj_records == 0 || wk->obj_first_seen != o->first_seq ||
	    wk->obj_last_seen != o->last_seq) {
		snprintf(msg, sizeof(msg), "holds seqs %llu..%llu, its key says %llu..%llu",
			 (unsigned long long)wk->obj_first_seen,
			 (unsigned long long)wk->obj_last_seen, (unsigned long long)o->first_seq,
			 (unsigned long long)o->last_seq);
		note_bad(job, o->key, msg);
	}
	return 0;
}

static void report_gaps(struct job *job, const struct sl_seq_track *t, uint32_t shard_id)
{
	pthread_mutex_lock(&job->mu);
	for (uint64_t i = 0; i < t->gap_count && i < SL_SEQ_TRACK_GAPS_MAX; i++)
		fprintf(stderr,
			"sluice: restore: gap: shardId-%012u seqs %llu..%llu (%llu records)\n",
			shard_id, (unsigned long long)t->gaps[i].first,
			(unsigned long long)t->gaps[i].last,
			(unsigned long long)(t->gaps[i].last - t->gaps[i].first + 1));
	if (t->gap_count > SL_SEQ_TRACK_GAPS_MAX)
		fprintf(stderr, "sluice: restore: gap: shardId-%012u: %llu more gaps\n", shard_id,
			(unsigned long long)(t->gap_count - SL_SEQ_TRACK_GAPS_MAX));
	pthread_mutex_unlock(&job->mu);
	atomic_fetch_add(&job->gaps, t->gap_count);
	atomic_fetch_add(&job->missing, t->missing_records);
}

/* One shard, start to end. 0, or < 0 when the job must stop (reported through fail_job). */
static int restore_shard(struct worker *wk, const struct sluice_shard_info *sh)
{
	struct job *job = wk->job;
	const struct sl_archive_plan *plan = job->plan;
	/* The plan is sorted by shard: binary search for the shard's first object. */
	size_t lo = 0, hi = plan->count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (plan->objects[mid].shard_id < sh->shard_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	sl_seq_track_init(&wk->track, sh->start_seq);
	bool stopped_early = false, has_objects = false;
	for (size_t i = lo; i < plan->count && plan->objects[i].shard_id == sh->shard_id; i++) {
		const struct sl_plan_object *ob = &plan->objects[i];
		has_objects = true;
		if (atomic_load(&job->failed))
			return -1;
		if (job->to_ms && ob->hour_ms >= job->to_ms) {
			stopped_early = true; /* the rest arrived after --to-time */
			break;
		}
		uint64_t dups = wk->track.duplicates;
		if (sl_seq_track_skip_object(&wk->track, ob->first_seq, ob->last_seq)) {
			atomic_fetch_add(&job->duplicates, wk->track.duplicates - dups);
			atomic_fetch_add(&job->objects_skipped, 1);
			continue;
		}
		if (restore_object(wk, ob) < 0) {
			fail_job(job, "%s", wk->w.err);
			return -1;
		}
	}
	if (rw_flush(&wk->w) < 0) {
		fail_job(job, "%s", wk->w.err);
		return -1;
	}
	/* A closed shard must reach its end_seq; an open one's tip is unknown here. */
	if (!stopped_early && sh->end_seq && (has_objects || job->have_layout))
		sl_seq_track_expect_end(&wk->track, sh->end_seq);
	report_gaps(job, &wk->track, sh->shard_id);
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct job *job = wk->job;
	struct sl_objstore_error oe = {0};
	int r = sl_objstore_create(job->url, &job->oo, &wk->store, &oe);
	if (r < 0) {
		fail_job(job, "%s: %s", job->url, oe.message[0] ? oe.message : sluice_strerror(r));
		goto out;
	}
	struct sluice_client_options co = {.auth_token = job->cli->auth_token};
	r = sluice_client_connect(job->cli->server, &co, &wk->client);
	if (r < 0) {
		fail_job(job, "cannot connect to %s: %s", job->cli->server, sluice_strerror(r));
		goto out;
	}
	wk->w_ready = true;
	if (rw_init(&wk->w, wk->client, job->into) < 0) {
		fail_job(job, "out of memory");
		goto out;
	}
	for (;;) {
		size_t k = atomic_fetch_add(&job->next_shard, 1);
		if (k >= job->info->shard_count || atomic_load(&job->failed))
			break;
		if (restore_shard(wk, &job->info->shards[k]) < 0)
			break;
	}
out:
	if (wk->w_ready)
		rw_stats(&wk->w, &wk->st);
	pthread_mutex_lock(&job->mu);
	job->workers_done++;
	pthread_cond_broadcast(&job->done_cv);
	pthread_mutex_unlock(&job->mu);
	return NULL;
}

struct list_ctx {
	struct sl_archive_plan *plan;
	int err;
};

static int on_key(const char *key, uint64_t size, void *ctx)
{
	struct list_ctx *lc = ctx;
	int r = sl_archive_plan_add(lc->plan, key, strlen(key));
	if (r < 0) {
		lc->err = r;
		return 1;
	}
	return 0;
}

/*
 * The layout document, with the retention override, and its parsed form (*ret_meta, for checking
 * an existing target); both NULL when the archive has none.
 */
static int load_layout(struct sl_objstore *store, const char *stream, int64_t retention_ms,
		       char **ret_json, size_t *ret_len, struct sl_stream_meta **ret_meta)
{
	char key[SLUICE_NAME_LEN_MAX + 32], msg[320];
	snprintf(key, sizeof(key), "_meta/%s.json", stream);
	struct sl_buf b;
	sl_buf_init(&b);
	int r = get_object(store, key, &b, msg, sizeof(msg));
	if (r == -ENOENT) {
		sl_buf_finish(&b);
		*ret_json = NULL;
		*ret_meta = NULL;
		return 0;
	}
	if (r < 0) {
		sl_buf_finish(&b);
		return cli_fail("restore", "%s: %s", key, msg);
	}
	struct sl_stream_meta *meta;
	char merr[SL_STREAM_MSG_LEN] = "";
	r = sl_stream_meta_from_json((const char *)b.data, b.len, &meta, merr, sizeof(merr));
	sl_buf_finish(&b);
	if (r < 0)
		return cli_fail("restore", "%s is not a valid stream layout: %s", key, merr);
	if (retention_ms)
		meta->retention_ms = retention_ms;
	r = sl_stream_meta_to_json(meta, ret_json, ret_len);
	if (r < 0) {
		sl_stream_meta_destroy(meta);
		return cli_fail("restore", "out of memory");
	}
	*ret_meta = meta;
	return 0;
}

/* An existing target must have the archived shards with the same hash ranges and start seqs:
 * records go to shards by id, so another layout would put keys where they do not route. */
static int check_layout(const struct sl_stream_meta *meta, const struct sluice_stream_info *info,
			const char *into)
{
	for (size_t i = 0; i < meta->shard_count; i++) {
		const struct sl_shard_meta *m = &meta->shards[i];
		const struct sluice_shard_info *t = NULL;
		for (size_t k = 0; k < info->shard_count && !t; k++)
			if (info->shards[k].shard_id == m->shard_id)
				t = &info->shards[k];
		struct sluice_hash_key start, end;
		sl_hash_key_from_u128(m->start_key, &start);
		sl_hash_key_from_u128(m->end_key, &end);
		const char *why = !t ? "is missing"
				  : memcmp(&start, &t->start_hash_key, sizeof(start)) ||
					  memcmp(&end, &t->end_hash_key, sizeof(end))
				      ? "has another hash range than the archived one"
				  : t->start_seq != m->start_seq ? "starts at another seq"
								 : NULL;
		if (why)
			return cli_fail(
			    "restore",
			    "%s: shard %u of stream %s %s (restore into a new name with --into)",
			    sluice_strerror(SLUICE_ERR_LAYOUT_MISMATCH), m->shard_id, into, why);
	}
	return 0;
}

static int parse_time(const char *s, int64_t *ret)
{
	return sl_parse_timestamp_ms(s, ret) < 0 || *ret < 0 ? -EINVAL : 0;
}

/* Create the target from the layout (or an even split) unless it exists; describe it. */
static int prepare_target(struct sluice_client *c, struct job *job, const char *layout,
			  size_t layout_len, const struct sl_stream_meta *meta, uint32_t shards,
			  int64_t retention_ms, struct sluice_stream_info **ret)
{
	int r = sluice_stream_describe(c, job->into, ret);
	if (r == 0) {
		if (meta && check_layout(meta, *ret, job->into) != 0)
			return CLI_EXIT_FAILED;
		fprintf(stderr,
			"restore: stream %s exists: appending after each shard's tip (records it "
			"holds already are skipped)\n",
			job->into);
		return 0;
	}
	if (r != SLUICE_ERR_STREAM_NOT_FOUND)
		return cli_fail_client("restore", c, r);
	if (layout) {
		r = sluice_stream_create_from_meta(c, job->into, layout, layout_len);
	} else {
		fprintf(
		    stderr,
		    "sluice: restore: the archive has no _meta/%s.json (written by firehoses of "
		    "this version): creating %s with %u evenly split shards; hash ranges and "
		    "resharding lineage may differ from the original\n",
		    job->stream, job->into, shards);
		r = sluice_stream_create(c, job->into, shards, (uint64_t)retention_ms);
	}
	r = r ?: sluice_stream_describe(c, job->into, ret);
	return r < 0 ? cli_fail_client("restore", c, r) : 0;
}

static void progress(struct job *job, int64_t started_ms)
{
	fprintf(stderr, "restore: %llu objects, %llu records read (%.1f MB stored), %.1f s\n",
		(unsigned long long)atomic_load(&job->objects_read),
		(unsigned long long)atomic_load(&job->records_read),
		(double)atomic_load(&job->bytes_stored) / 1e6,
		(double)(sl_mono_ms() - started_ms) / 1000.0);
}

int cli_restore(const struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"from", required_argument, NULL, 'f'},
	    {"stream", required_argument, NULL, 's'},
	    {"into", required_argument, NULL, 'i'},
	    {"from-time", required_argument, NULL, 'a'},
	    {"to-time", required_argument, NULL, 'b'},
	    {"endpoint", required_argument, NULL, 'e'},
	    {"region", required_argument, NULL, 'r'},
	    {"shards", required_argument, NULL, 'n'},
	    {"retention", required_argument, NULL, 't'},
	    {"parallel", required_argument, NULL, 'p'},
	    {"accept-gaps", no_argument, NULL, 'g'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct job job = {.cli = cli};
	uint64_t shards = 0, parallel = PARALLEL_DEFAULT;
	int64_t retention_ms = 0;
	bool accept_gaps = false;
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'f':
			job.url = optarg;
			break;
		case 's':
			job.stream = optarg;
			break;
		case 'i':
			job.into = optarg;
			break;
		case 'a':
			if (parse_time(optarg, &job.from_ms) < 0)
				return cli_usage_error("restore", "bad --from-time %s", optarg);
			break;
		case 'b':
			if (parse_time(optarg, &job.to_ms) < 0)
				return cli_usage_error("restore", "bad --to-time %s", optarg);
			break;
		case 'e':
			job.oo.endpoint = optarg;
			break;
		case 'r':
			job.oo.region = optarg;
			break;
		case 'n':
			if (sl_parse_u64(optarg, &shards) < 0 || shards < 1 ||
			    shards > SLUICE_SHARDS_MAX)
				return cli_usage_error("restore", "--shards must be 1..%u",
						       SLUICE_SHARDS_MAX);
			break;
		case 't':
			if (sl_parse_duration_ms(optarg, &retention_ms) < 0 ||
			    retention_ms < SL_STREAM_RETENTION_MS_MIN ||
			    retention_ms > SL_STREAM_RETENTION_MS_MAX)
				return cli_usage_error("restore", "bad --retention %s", optarg);
			break;
		case 'p':
			if (sl_parse_u64(optarg, &parallel) < 0 || parallel < 1 ||
			    parallel > PARALLEL_MAX)
				return cli_usage_error("restore", "--parallel must be 1..%d",
						       PARALLEL_MAX);
			break;
		case 'g':
			accept_gaps = true;
			break;
		case 'h':
			fputs(restore_usage, stdout);
			return CLI_EXIT_OK;
		default:
			fputs(restore_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage_error("restore", "unexpected argument %s", argv[optind]);
	if (!job.url || !job.stream)
		return cli_usage_error("restore", "--from and --stream are required");
	if (sl_stream_name_validate(job.stream) < 0 ||
	    (job.into && sl_stream_name_validate(job.into) < 0))
		return cli_usage_error("restore", "%s", sluice_strerror(SLUICE_ERR_INVALID_NAME));
	if (job.to_ms && job.to_ms <= job.from_ms)
		return cli_usage_error("restore", "--to-time must be after --from-time");
	if (!job.into)
		job.into = job.stream;

	int ret = CLI_EXIT_FAILED;
	struct sluice_client *c = NULL;
	struct sluice_stream_info *info = NULL;
	struct sl_objstore *store = NULL;
	char *layout = NULL;
	struct sl_stream_meta *meta = NULL;
	uint32_t *ids = NULL;
	struct worker *wks = NULL;
	size_t nwk = 0;
	struct sl_archive_plan plan;
	sl_archive_plan_init(&plan, job.stream);
	pthread_mutex_init(&job.mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&job.done_cv, &ca);
	pthread_condattr_destroy(&ca);
	int64_t started = sl_mono_ms();

	struct sl_objstore_error oe = {0};
	int r = sl_objstore_create(job.url, &job.oo, &store, &oe);
	if (r < 0) {
		cli_fail("restore", "%s: %s", job.url,
			 oe.message[0] ? oe.message : sluice_strerror(r));
		goto out;
	}
	size_t layout_len = 0;
	if (load_layout(store, job.stream, retention_ms, &layout, &layout_len, &meta) != 0)
		goto out;
	job.have_layout = layout != NULL;
	struct list_ctx lc = {.plan = &plan};
	memset(&oe, 0, sizeof(oe));
	r = sl_objstore_list(store, NULL, on_key, &lc, &oe);
	if (lc.err < 0 || r < 0) {
		cli_fail("restore", "listing %s: %s", job.url,
			 lc.err < 0 ? sluice_strerror(lc.err)
				    : (oe.message[0] ? oe.message : sluice_strerror(r)));
		goto out;
	}
	sl_archive_plan_sort(&plan);
	if (plan.count == 0) {
		if (plan.raw_objects)
			cli_fail("restore", "%s: %s (%llu raw objects of stream %s)", job.url,
				 sluice_strerror(SLUICE_ERR_NOT_RESTORABLE),
				 (unsigned long long)plan.raw_objects, job.stream);
		else
			cli_fail("restore", "%s holds no archive object of stream %s", job.url,
				 job.stream);
		goto out;
	}
	if (plan.raw_objects)
		fprintf(stderr,
			"sluice: restore: %llu raw objects skipped: the raw format keeps no keys "
			"or sequence numbers and cannot be restored\n",
			(unsigned long long)plan.raw_objects);
	ids = calloc(SL_STREAM_SHARD_RECORDS_MAX, sizeof(*ids));
	if (!ids) {
		cli_fail("restore", "out of memory");
		goto out;
	}
	size_t nids = sl_archive_plan_shards(&plan, ids, SL_STREAM_SHARD_RECORDS_MAX);
	fprintf(stderr, "restore: %zu objects of %s in %zu shards\n", plan.count, job.stream, nids);
	if (cli_connect(cli, "restore", &c) != 0)
		goto out;
	if (prepare_target(c, &job, layout, layout_len, meta,
			   shards ? (uint32_t)shards : ids[nids - 1] + 1, retention_ms, &info) != 0)
		goto out;
	for (size_t i = 0; i < nids; i++) {
		bool found = false;
		for (size_t k = 0; k < info->shard_count; k++)
			found |= info->shards[k].shard_id == ids[i];
		if (!found) {
			cli_fail("restore", "%s: stream %s has no shard %u, which the archive has",
				 sluice_strerror(SLUICE_ERR_LAYOUT_MISMATCH), job.into, ids[i]);
			goto out;
		}
	}

	job.plan = &plan;
	job.info = info;
	nwk = parallel < info->shard_count ? (size_t)parallel : info->shard_count;
	wks = calloc(nwk, sizeof(*wks));
	if (!wks) {
		cli_fail("restore", "out of memory");
		goto out;
	}
	size_t started_wk = 0;
	for (; started_wk < nwk; started_wk++) {
		wks[started_wk].job = &job;
		sl_buf_init(&wks[started_wk].raw);
		sl_buf_init(&wks[started_wk].plain);
		if (pthread_create(&wks[started_wk].thread, NULL, worker_main, &wks[started_wk]) !=
		    0) {
			fail_job(&job, "cannot start a worker thread");
			break;
		}
	}
	/* Woken by each worker as it ends (polling here cost up to a poll period per restore). */
	pthread_mutex_lock(&job.mu);
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	while ((size_t)job.workers_done < started_wk) {
		next.tv_sec += 1;
		while ((size_t)job.workers_done < started_wk &&
		       pthread_cond_timedwait(&job.done_cv, &job.mu, &next) == 0)
			;
		if ((size_t)job.workers_done < started_wk)
			progress(&job, started); /* once a second, under mu like workers' lines */
	}
	pthread_mutex_unlock(&job.mu);
	struct rw_stats st = {0};
	for (size_t i = 0; i < started_wk; i++) {
		pthread_join(wks[i].thread, NULL);
		st.appended += wks[i].st.appended;
		st.existing += wks[i].st.existing;
		st.bytes += wks[i].st.bytes;
	}
	if (atomic_load(&job.failed)) {
		cli_fail("restore", "%s (re-running the same restore resumes)", job.fail_msg);
		goto out;
	}
	progress(&job, started);
	fprintf(stderr,
		"restore: done: stream %s -> %s: %llu objects read (%.1f MB), %llu skipped as "
		"duplicates, %llu bad; %llu records restored (%.1f MB of data), %llu already "
		"stored, %llu duplicates skipped, %llu outside the time range; %llu gaps "
		"(%llu records missing)\n",
		job.stream, job.into, (unsigned long long)job.objects_read,
		(double)job.bytes_stored / 1e6, (unsigned long long)job.objects_skipped,
		(unsigned long long)job.objects_bad, (unsigned long long)st.appended,
		(double)st.bytes / 1e6, (unsigned long long)st.existing,
		(unsigned long long)job.duplicates, (unsigned long long)job.records_filtered,
		(unsigned long long)job.gaps, (unsigned long long)job.missing);
	for (size_t i = 0; i < job.bad_listed; i++)
		fprintf(stderr, "sluice: restore: bad object %s\n", job.bad_list[i]);
	if ((job.gaps || job.objects_bad) && !accept_gaps) {
		fprintf(stderr, "sluice: restore: %s (exit status 3; --accept-gaps accepts it)\n",
			sluice_strerror(SLUICE_ERR_ARCHIVE_GAP));
		ret = CLI_EXIT_INCOMPLETE;
	} else {
		ret = CLI_EXIT_OK;
	}
out:
	for (size_t i = 0; wks && i < nwk; i++) {
		if (wks[i].w_ready)
			rw_finish(&wks[i].w);
		sluice_client_close(wks[i].client);
		sl_objstore_destroy(wks[i].store);
		sl_buf_finish(&wks[i].raw);
		sl_buf_finish(&wks[i].plain);
	}
	free(wks);
	free(ids);
	sl_archive_plan_finish(&plan);
	free(layout);
	sl_stream_meta_destroy(meta);
	sluice_stream_info_free(info);
	sluice_client_close(c);
	sl_objstore_destroy(store);
	pthread_cond_destroy(&job.done_cv);
	pthread_mutex_destroy(&job.mu);
	return ret;
}
