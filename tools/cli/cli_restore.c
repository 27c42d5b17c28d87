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
 * note gaps, and append in batches with RESTORE_APPEND (durable before the next batch).
 *
 * Memory: one object (as stored and decompressed) plus one batch, plus ~100 bytes per object
 * for the plan, whatever the number of records.
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
#include "stream/stream_meta.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char restore_usage[] =
    "usage: sluice restore --from file:///DIR|s3://BUCKET[/PREFIX] --stream NAME\n"
    "                      [--into NEW_NAME] [--from-time T] [--to-time T] [--endpoint URL]\n"
    "                      [--region R] [--shards N] [--retention DURATION] [--accept-gaps]\n"
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
    "  --accept-gaps     exit 0 even if records are missing from the archive\n"
    "exit status: 0 restored, 1 failed, 3 restored with gaps or bad objects (see the summary)\n";

#define CLI_EXIT_INCOMPLETE 3
/* Largest decompressed object: the firehose's biggest buffer (128 MiB) with room to spare. */
#define OBJECT_PLAIN_BYTES_MAX (1ull << 30)
#define GET_RETRIES 4
#define GET_BACKOFF_MS 250
/* Bad objects listed by name in the summary; more are only counted. */
#define BAD_OBJECTS_LISTED 32

struct restore {
	const char *stream; /* archived name */
	const char *into;   /* target name */
	int64_t from_ms, to_ms;
	struct sl_objstore *store;
	struct restore_writer w;
	struct sl_seq_track track;
	/* the object being read */
	const struct sl_plan_object *obj;
	uint64_t obj_first_seen, obj_last_seen, obj_records;
	bool append_failed; /* the writer failed: stop */
	char mismatch_msg[256];
	/* totals */
	uint64_t objects_read, objects_skipped, objects_bad;
	uint64_t records_read, records_filtered, duplicates;
	uint64_t bytes_stored; /* object bytes downloaded */
	uint64_t gaps, missing;
	char bad_list[BAD_OBJECTS_LISTED][400];
	int64_t started_ms, last_progress_ms;
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int get_object(struct restore *rs, const char *key, struct sl_buf *out, char *msg,
		      size_t msg_len)
{
	struct sl_objstore_error oe;
	int r = 0;
	for (int attempt = 0;; attempt++) {
		memset(&oe, 0, sizeof(oe));
		r = sl_objstore_get(rs->store, key, out, &oe);
		if (r == 0 || !oe.retryable || attempt == GET_RETRIES)
			break;
		sleep_ms(GET_BACKOFF_MS << attempt);
	}
	if (r < 0)
		snprintf(msg, msg_len, "%s", oe.message[0] ? oe.message : sluice_strerror(r));
	return r;
}

static void note_bad(struct restore *rs, const char *key, const char *why)
{
	if (rs->objects_bad < BAD_OBJECTS_LISTED)
		snprintf(rs->bad_list[rs->objects_bad], sizeof(rs->bad_list[0]), "%.200s: %.190s",
			 key, why);
	rs->objects_bad++;
	fprintf(stderr, "sluice: restore: bad object %s: %s\n", key, why);
}

static int on_record(const struct sl_archive_record *rec, void *ctx)
{
	struct restore *rs = ctx;
	const struct sl_plan_object *o = rs->obj;
	if (strcmp(rec->stream, rs->stream) != 0 || rec->shard_id != o->shard_id ||
	    rec->seq < o->first_seq || rec->seq > o->last_seq) {
		snprintf(
		    rs->mismatch_msg, sizeof(rs->mismatch_msg),
		    "line %llu: stream %.60s shard %u seq %llu does not match the object's key",
		    (unsigned long long)rec->line, rec->stream, rec->shard_id,
		    (unsigned long long)rec->seq);
		return 1;
	}
	if (rs->obj_records == 0)
		rs->obj_first_seen = rec->seq;
	rs->obj_last_seen = rec->seq;
	rs->obj_records++;
	rs->records_read++;
	if (sl_seq_track_see(&rs->track, rec->seq) == SL_SEQ_DUPLICATE)
		return 0;
	if (rec->ts_ms < rs->from_ms || (rs->to_ms && rec->ts_ms >= rs->to_ms)) {
		rs->records_filtered++;
		return 0;
	}
	int r = rw_add(&rs->w, o->shard_id, rec->seq, rec->ts_ms, rec->key, rec->key_len, rec->data,
		       rec->data_len);
	return r < 0 ? r : 0;
}

static void progress(struct restore *rs, bool last)
{
	int64_t now = sl_mono_ms();
	if (!last && now - rs->last_progress_ms < 1000)
		return;
	rs->last_progress_ms = now;
	double s = (double)(now - rs->started_ms) / 1000.0;
	struct rw_stats st;
	rw_stats(&rs->w, &st);
	fprintf(stderr,
		"restore: %llu objects, %llu records restored (%.1f MB), %llu duplicates, %.1f s\n",
		(unsigned long long)rs->objects_read, (unsigned long long)st.appended,
		(double)st.bytes / 1e6, (unsigned long long)rs->duplicates, s);
}

/* Restore one object; a bad object is reported and skipped (0), a failed append is fatal. */
static int restore_object(struct restore *rs, const struct sl_plan_object *o, struct sl_buf *raw,
			  struct sl_buf *plain)
{
	char msg[320];
	sl_buf_reset(raw);
	int r = get_object(rs, o->key, raw, msg, sizeof(msg));
	if (r < 0) {
		note_bad(rs, o->key, msg);
		return 0;
	}
	rs->bytes_stored += raw->len;
	rs->objects_read++;
	sl_buf_reset(plain);
	/* Whole object first: its checksum is verified before any of its records is stored. */
	r = sl_archive_decompress(raw->data, raw->len, o->compression, OBJECT_PLAIN_BYTES_MAX,
				  plain, msg, sizeof(msg));
	if (r < 0) {
		note_bad(rs, o->key, msg[0] ? msg : sluice_strerror(r));
		return 0;
	}
	rs->obj = o;
	rs->obj_records = 0;
	rs->mismatch_msg[0] = '\0';
	uint64_t dups_before = rs->track.duplicates;
	r = sl_archive_read(plain->data, plain->len, SL_ARCHIVE_NONE, on_record, rs, msg,
			    sizeof(msg));
	rs->duplicates += rs->track.duplicates - dups_before;
	if (r == 1) {
		note_bad(rs, o->key, rs->mismatch_msg);
		return 0;
	}
	if (r < 0 && rs->append_failed)
		return r; /* the server refused a batch */
	if (r < 0) {
		note_bad(rs, o->key, msg[0] ? msg : sluice_strerror(r));
		return 0;
	}
	if (rs->obj_records == 0 || rs->obj_first_seen != o->first_seq ||
	    rs->obj_last_seen != o->last_seq) {
		snprintf(msg, sizeof(msg), "holds seqs %llu..%llu, its key says %llu..%llu",
			 (unsigned long long)rs->obj_first_seen,
			 (unsigned long long)rs->obj_last_seen, (unsigned long long)o->first_seq,
			 (unsigned long long)o->last_seq);
		note_bad(rs, o->key, msg);
	}
	progress(rs, false);
	return 0;
}

static void report_gaps(struct restore *rs, uint32_t shard_id)
{
	const struct sl_seq_track *t = &rs->track;
	for (uint64_t i = 0; i < t->gap_count && i < SL_SEQ_TRACK_GAPS_MAX; i++)
		fprintf(stderr,
			"sluice: restore: gap: shardId-%012u seqs %llu..%llu (%llu records)\n",
			shard_id, (unsigned long long)t->gaps[i].first,
			(unsigned long long)t->gaps[i].last,
			(unsigned long long)(t->gaps[i].last - t->gaps[i].first + 1));
	if (t->gap_count > SL_SEQ_TRACK_GAPS_MAX)
		fprintf(stderr, "sluice: restore: gap: shardId-%012u: %llu more gaps\n", shard_id,
			(unsigned long long)(t->gap_count - SL_SEQ_TRACK_GAPS_MAX));
	rs->gaps += t->gap_count;
	rs->missing += t->missing_records;
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

/* The layout document, with the retention override; NULL json when the archive has none. */
static int load_layout(struct restore *rs, int64_t retention_ms, char **ret_json, size_t *ret_len)
{
	char key[SLUICE_NAME_LEN_MAX + 32], msg[320];
	snprintf(key, sizeof(key), "_meta/%s.json", rs->stream);
	struct sl_buf b;
	sl_buf_init(&b);
	int r = get_object(rs, key, &b, msg, sizeof(msg));
	if (r == -ENOENT) {
		sl_buf_finish(&b);
		*ret_json = NULL;
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
	sl_stream_meta_destroy(meta);
	if (r < 0)
		return cli_fail("restore", "out of memory");
	return 0;
}

static int parse_time(const char *s, int64_t *ret)
{
	return sl_parse_timestamp_ms(s, ret) < 0 || *ret < 0 ? -EINVAL : 0;
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
	    {"accept-gaps", no_argument, NULL, 'g'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct restore rs = {0};
	const char *url = NULL, *endpoint = NULL, *region = NULL;
	uint64_t shards = 0;
	int64_t retention_ms = 0;
	bool accept_gaps = false;
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'f':
			url = optarg;
			break;
		case 's':
			rs.stream = optarg;
			break;
		case 'i':
			rs.into = optarg;
			break;
		case 'a':
			if (parse_time(optarg, &rs.from_ms) < 0)
				return cli_usage_error("restore", "bad --from-time %s", optarg);
			break;
		case 'b':
			if (parse_time(optarg, &rs.to_ms) < 0)
				return cli_usage_error("restore", "bad --to-time %s", optarg);
			break;
		case 'e':
			endpoint = optarg;
			break;
		case 'r':
			region = optarg;
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
	if (!url || !rs.stream)
		return cli_usage_error("restore", "--from and --stream are required");
	if (sl_stream_name_validate(rs.stream) < 0 ||
	    (rs.into && sl_stream_name_validate(rs.into) < 0))
		return cli_usage_error("restore", "%s", sluice_strerror(SLUICE_ERR_INVALID_NAME));
	if (rs.to_ms && rs.to_ms <= rs.from_ms)
		return cli_usage_error("restore", "--to-time must be after --from-time");
	if (!rs.into)
		rs.into = rs.stream;

	int ret = CLI_EXIT_FAILED;
	struct sluice_client *c = NULL;
	struct sluice_stream_info *info = NULL;
	char *layout = NULL;
	struct sl_archive_plan plan;
	sl_archive_plan_init(&plan, rs.stream);
	struct sl_buf raw, plain;
	sl_buf_init(&raw);
	sl_buf_init(&plain);
	bool writer_ready = false;
	rs.started_ms = sl_mono_ms();

	struct sl_objstore_options oo = {.endpoint = endpoint, .region = region};
	struct sl_objstore_error oe = {0};
	int r = sl_objstore_create(url, &oo, &rs.store, &oe);
	if (r < 0) {
		cli_fail("restore", "%s: %s", url, oe.message[0] ? oe.message : sluice_strerror(r));
		goto out;
	}
	size_t layout_len = 0;
	if (load_layout(&rs, retention_ms, &layout, &layout_len) != 0)
		goto out;
	struct list_ctx lc = {.plan = &plan};
	memset(&oe, 0, sizeof(oe));
	r = sl_objstore_list(rs.store, NULL, on_key, &lc, &oe);
	if (lc.err < 0 || r < 0) {
		cli_fail("restore", "listing %s: %s", url,
			 lc.err < 0 ? sluice_strerror(lc.err)
				    : (oe.message[0] ? oe.message : sluice_strerror(r)));
		goto out;
	}
	sl_archive_plan_sort(&plan);
	if (plan.count == 0) {
		if (plan.raw_objects)
			cli_fail("restore", "%s: %s (%llu raw objects of stream %s)", url,
				 sluice_strerror(SLUICE_ERR_NOT_RESTORABLE),
				 (unsigned long long)plan.raw_objects, rs.stream);
		else
			cli_fail("restore", "%s holds no archive object of stream %s", url,
				 rs.stream);
		goto out;
	}
	if (plan.raw_objects)
		fprintf(stderr,
			"sluice: restore: %llu raw objects skipped: the raw format keeps no keys "
			"or sequence numbers and cannot be restored\n",
			(unsigned long long)plan.raw_objects);
	uint32_t *ids = calloc(SL_STREAM_SHARD_RECORDS_MAX, sizeof(*ids));
	if (!ids) {
		cli_fail("restore", "out of memory");
		goto out;
	}
	size_t nids = sl_archive_plan_shards(&plan, ids, SL_STREAM_SHARD_RECORDS_MAX);
	fprintf(stderr, "restore: %zu objects of %s in %zu shards\n", plan.count, rs.stream, nids);

	if (cli_connect(cli, "restore", &c) != 0) {
		free(ids);
		goto out;
	}
	r = sluice_stream_describe(c, rs.into, &info);
	if (r == SLUICE_ERR_STREAM_NOT_FOUND) {
		if (layout) {
			r = sluice_stream_create_from_meta(c, rs.into, layout, layout_len);
		} else {
			uint32_t n = shards ? (uint32_t)shards : ids[nids - 1] + 1;
			fprintf(stderr,
				"sluice: restore: the archive has no _meta/%s.json (written by "
				"firehoses of this version): creating %s with %u evenly split "
				"shards; hash ranges and resharding lineage may differ from the "
				"original\n",
				rs.stream, rs.into, n);
			r = sluice_stream_create(c, rs.into, n, (uint64_t)retention_ms);
		}
		if (r < 0) {
			free(ids);
			cli_fail_client("restore", c, r);
			goto out;
		}
		r = sluice_stream_describe(c, rs.into, &info);
	} else if (r == 0) {
		fprintf(stderr,
			"restore: stream %s exists: appending after each shard's tip (records it "
			"holds already are skipped)\n",
			rs.into);
	}
	if (r < 0) {
		free(ids);
		cli_fail_client("restore", c, r);
		goto out;
	}
	for (size_t i = 0; i < nids; i++) {
		bool found = false;
		for (size_t k = 0; k < info->shard_count; k++)
			found |= info->shards[k].shard_id == ids[i];
		if (!found) {
			cli_fail("restore", "%s: stream %s has no shard %u, which the archive has",
				 sluice_strerror(SLUICE_ERR_LAYOUT_MISMATCH), rs.into, ids[i]);
			free(ids);
			goto out;
		}
	}
	free(ids);

	writer_ready = true;
	if (rw_init(&rs.w, c, rs.into) < 0) {
		cli_fail("restore", "out of memory");
		goto out;
	}
	for (size_t k = 0; k < info->shard_count; k++) {
		const struct sluice_shard_info *sh = &info->shards[k];
		size_t first = 0;
		while (first < plan.count && plan.objects[first].shard_id != sh->shard_id)
			first++;
		sl_seq_track_init(&rs.track, sh->start_seq);
		bool stopped_early = false;
		for (size_t i = first; i < plan.count && plan.objects[i].shard_id == sh->shard_id;
		     i++) {
			const struct sl_plan_object *ob = &plan.objects[i];
			if (rs.to_ms && ob->hour_ms >= rs.to_ms) {
				stopped_early = true; /* the rest arrived after --to-time */
				break;
			}
			uint64_t dups = rs.track.duplicates;
			if (sl_seq_track_skip_object(&rs.track, ob->first_seq, ob->last_seq)) {
				rs.duplicates += rs.track.duplicates - dups;
				rs.objects_skipped++;
				continue;
			}
			r = restore_object(&rs, ob, &raw, &plain);
			if (r < 0) {
				cli_fail("restore", "%s", rs.w.err);
				goto out;
			}
		}
		if (rw_flush(&rs.w) < 0) {
			cli_fail("restore", "%s", rs.w.err);
			goto out;
		}
		bool has_objects = first < plan.count;
		/* A closed shard must reach its end_seq; an open one's tip is unknown here. */
		if (!stopped_early && sh->end_seq && (has_objects || layout))
			sl_seq_track_expect_end(&rs.track, sh->end_seq);
		report_gaps(&rs, sh->shard_id);
	}
	progress(&rs, true);
	struct rw_stats st;
	rw_stats(&rs.w, &st);
	fprintf(stderr,
		"restore: done: stream %s -> %s: %llu objects read (%.1f MB), %llu skipped as "
		"duplicates, %llu bad; %llu records restored (%.1f MB of data), %llu already "
		"stored, %llu duplicates skipped, %llu outside the time range; %llu gaps "
		"(%llu records missing)\n",
		rs.stream, rs.into, (unsigned long long)rs.objects_read,
		(double)rs.bytes_stored / 1e6, (unsigned long long)rs.objects_skipped,
		(unsigned long long)rs.objects_bad, (unsigned long long)st.appended,
		(double)st.bytes / 1e6, (unsigned long long)st.existing,
		(unsigned long long)rs.duplicates, (unsigned long long)rs.records_filtered,
		(unsigned long long)rs.gaps, (unsigned long long)rs.missing);
	for (uint64_t i = 0; i < rs.objects_bad && i < BAD_OBJECTS_LISTED; i++)
		fprintf(stderr, "sluice: restore: bad object %s\n", rs.bad_list[i]);
	if ((rs.gaps || rs.objects_bad) && !accept_gaps) {
		fprintf(stderr, "sluice: restore: %s (exit status 3; --accept-gaps accepts it)\n",
			sluice_strerror(SLUICE_ERR_ARCHIVE_GAP));
		ret = CLI_EXIT_INCOMPLETE;
	} else {
		ret = CLI_EXIT_OK;
	}
out:
	if (writer_ready)
		rw_finish(&rs.w);
	sl_buf_finish(&raw);
	sl_buf_finish(&plain);
	sl_archive_plan_finish(&plan);
	free(layout);
	sluice_stream_info_free(info);
	sluice_client_close(c);
	sl_objstore_destroy(rs.store);
	return ret;
}
