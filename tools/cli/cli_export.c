/*
 * sluice export / sluice import: move a range of a shard between servers without an object
 * store. The file is the firehose's archive format (src/archive/archive_format.h): JSON lines
 * compressed as zstd frames, one frame per EXPORT_FRAME_BYTES of lines (a file is one or more
 * frames back to back, so `zstdcat FILE | jq` reads it and files can be concatenated).
 *
 * import appends with RESTORE_APPEND, keeping each record's shard, sequence number and arrival
 * time, into a stream that must exist and have those shard ids (create it first, e.g. with
 * `sluice stream create` with as many shards, or by a restore); records the shard already has
 * (seq below its tip) are skipped, so an import can be re-run. With --new-seqs the records are
 * produced instead (routed by partition key, new seqs and timestamps, order kept per key).
 */
#include "cli.h"
#include "restore_writer.h"

#include "archive/archive_format.h"
#include "common/buf.h"
#include "common/units.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

static const char export_usage[] =
    "usage: sluice export NAME --shard ID [--from POS] [--to POS] [--output FILE]\n"
    "  --shard ID    3 or shardId-000000000003\n"
    "  --from POS    trim-horizon (default), seq:N, time:ISO8601\n"
    "  --to POS      seq:N (included), time:T (records that arrived before T), latest\n"
    "                (default: the tip when the export starts)\n"
    "  --output F    write to F instead of stdout\n";

static const char import_usage[] =
    "usage: sluice import [--stream NAME] [--new-seqs] [--input FILE]\n"
    "  --stream NAME  import into NAME (default: the stream named in the file)\n"
    "  --new-seqs     produce the records (new seqs and timestamps) instead of restoring\n"
    "                 their original seqs\n"
    "  --input F      read F instead of stdin\n";

/* Uncompressed bytes per zstd frame of an export: bounds an importer's memory per frame. */
#define EXPORT_FRAME_BYTES (16u << 20)
/* The largest frame an import accepts (compressed). */
#define IMPORT_FRAME_BYTES_MAX (256u << 20)
#define READ_CHUNK (1u << 20)

static int write_frame(struct sl_archive_writer *aw, FILE *out, uint64_t *ret_bytes)
{
	const uint8_t *data;
	size_t len;
	int r = sl_archive_writer_finish(aw, &data, &len);
	if (r < 0)
		return r;
	if (fwrite(data, 1, len, out) != len)
		return -errno ? -errno : -EIO;
	*ret_bytes += len;
	sl_archive_writer_reset(aw);
	return 0;
}

int cli_export(const struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"shard", required_argument, NULL, 's'}, {"from", required_argument, NULL, 'f'},
	    {"to", required_argument, NULL, 't'},    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},	     {0},
	};
	const char *output = NULL;
	struct sluice_position from = {.type = SLUICE_POS_TRIM_HORIZON};
	struct sluice_position to = {.type = SLUICE_POS_LATEST};
	bool have_shard = false;
	uint32_t shard = 0;
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			if (cli_parse_shard_id(optarg, &shard) < 0)
				return cli_usage_error("export", "bad --shard %s", optarg);
			have_shard = true;
			break;
		case 'f':
			if (cli_parse_position(optarg, &from) < 0 || from.type == SLUICE_POS_LATEST)
				return cli_usage_error("export", "bad --from %s", optarg);
			break;
		case 't':
			if (cli_parse_position(optarg, &to) < 0 ||
			    to.type == SLUICE_POS_TRIM_HORIZON)
				return cli_usage_error("export", "bad --to %s", optarg);
			break;
		case 'o':
			output = optarg;
			break;
		case 'h':
			fputs(export_usage, stdout);
			return CLI_EXIT_OK;
		default:
			fputs(export_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || !have_shard)
		return cli_usage_error("export", "give one stream NAME and --shard");
	const char *stream = argv[optind];
	struct sluice_client *c;
	if (cli_connect(cli, "export", &c) != 0)
		return CLI_EXIT_FAILED;
	int ret = CLI_EXIT_FAILED;
	FILE *out = NULL;
	struct sluice_shard_reader *rd = NULL;
	struct sl_archive_writer *aw = NULL;
	struct sluice_read_result first;
	sluice_read_result_init(&first);
	/* The tip now: an export of a live shard ends where it was when it started. */
	int r = sluice_read(c, stream, shard, &(struct sluice_position){SLUICE_POS_LATEST, 0}, 1, 0,
			    &first);
	if (r < 0) {
		cli_fail_client("export", c, r);
		goto out;
	}
	uint64_t end = first.tip_seq; /* exclusive */
	if (to.type == SLUICE_POS_AT_SEQ && to.value + 1 < end)
		end = to.value + 1;
	r = sluice_shard_reader_create(c, stream, shard, &from, &rd);
	r = r ?: sl_archive_writer_create(stream, shard, NULL, &aw);
	if (r < 0) {
		cli_fail_client("export", c, r);
		goto out;
	}
	out = output ? fopen(output, "wb") : stdout;
	if (!out) {
		cli_fail("export", "%s: %s", output, strerror(errno));
		goto out;
	}
	uint64_t records = 0, bytes_out = 0;
	bool done = false;
	while (!done) {
		const struct sluice_read_result *b;
		r = sluice_shard_reader_next(rd, 0, 0, &b);
		if (r < 0) {
			cli_fail_client("export", c, r);
			goto out;
		}
		for (size_t i = 0; i < b->count && !done; i++) {
			const struct sluice_record *rec = &b->records[i];
			if (rec->seq >= end || (to.type == SLUICE_POS_AT_TIMESTAMP &&
						rec->ts_ms >= (int64_t)to.value)) {
				done = true;
				break;
			}
			r = sl_archive_writer_add(aw, rec);
			if (r < 0) {
				cli_fail("export", "record %llu: %s", (unsigned long long)rec->seq,
					 sluice_strerror(r));
				goto out;
			}
			records++;
			struct sl_archive_writer_info wi;
			sl_archive_writer_info(aw, &wi);
			if (wi.raw_bytes >= EXPORT_FRAME_BYTES &&
			    (r = write_frame(aw, out, &bytes_out)) < 0) {
				cli_fail("export", "writing: %s", sluice_strerror(r));
				goto out;
			}
		}
		if (b->count == 0 || b->next_seq >= end)
			done = true;
	}
	struct sl_archive_writer_info wi;
	sl_archive_writer_info(aw, &wi);
	if (wi.records && (r = write_frame(aw, out, &bytes_out)) < 0) {
		cli_fail("export", "writing: %s", sluice_strerror(r));
		goto out;
	}
	if (fflush(out) != 0) {
		cli_fail("export", "writing: %s", strerror(errno));
		goto out;
	}
	fprintf(stderr, "export: %s shard %u: %llu records, %llu bytes\n", stream, shard,
		(unsigned long long)records, (unsigned long long)bytes_out);
	ret = CLI_EXIT_OK;
out:
	if (out && out != stdout)
		fclose(out);
	sl_archive_writer_destroy(aw);
	sluice_shard_reader_destroy(rd);
	sluice_read_result_finish(&first);
	sluice_client_close(c);
	return ret;
}

/* ---- import ---- */

/* The last seq imported per shard: an input of overlapping ranges is deduplicated. */
struct shard_seen {
	uint32_t shard_id;
	uint64_t last_seq;
};

struct importer {
	struct sluice_client *client;
	const char *into; /* NULL until the first record names the stream */
	char file_stream[SLUICE_NAME_LEN_MAX + 1];
	bool new_seqs;
	struct restore_writer w;
	bool w_ready;
	struct shard_seen *seen;
	size_t nseen;
	uint64_t records, duplicates;
	/* --new-seqs */
	struct sluice_put_entry *entries;
	struct sluice_put_result *results;
	size_t n;
	struct sl_buf bytes;
	uint64_t produced;
	char err[512];
};

static struct shard_seen *seen_of(struct importer *im, uint32_t shard_id)
{
	for (size_t i = 0; i < im->nseen; i++)
		if (im->seen[i].shard_id == shard_id)
			return &im->seen[i];
	if (im->nseen == SLUICE_SHARDS_MAX * 4)
		return NULL;
	im->seen[im->nseen] = (struct shard_seen){shard_id, 0};
	return &im->seen[im->nseen++];
}

static int produce_flush(struct importer *im)
{
	if (im->n == 0)
		return 0;
	for (size_t i = 0; i < im->n; i++) {
		im->entries[i].key = im->bytes.data + (uintptr_t)im->entries[i].key;
		im->entries[i].data = im->bytes.data + (uintptr_t)im->entries[i].data;
	}
	const char *target = im->into ? im->into : im->file_stream;
	int r = sluice_put_batch(im->client, target, im->entries, im->n, im->results);
	if (r < 0) {
		snprintf(im->err, sizeof(im->err), "%s",
			 sluice_client_last_error_message(im->client));
		return r;
	}
	for (size_t i = 0; i < im->n; i++) {
		if (im->results[i].status < 0) {
			snprintf(im->err, sizeof(im->err), "record %zu of a batch: %s", i,
				 sluice_strerror(im->results[i].status));
			return im->results[i].status;
		}
	}
	im->produced += im->n;
	im->n = 0;
	sl_buf_reset(&im->bytes);
	return 0;
}

static int import_record(const struct sl_archive_record *rec, void *ctx)
{
	struct importer *im = ctx;
	if (!im->file_stream[0])
		snprintf(im->file_stream, sizeof(im->file_stream), "%s", rec->stream);
	else if (strcmp(im->file_stream, rec->stream) != 0 && !im->into) {
		snprintf(im->err, sizeof(im->err),
			 "the input holds streams %s and %s: give --stream", im->file_stream,
			 rec->stream);
		return SLUICE_ERR_INVALID_ARGUMENT;
	}
	const char *target = im->into ? im->into : im->file_stream;
	struct shard_seen *sn = seen_of(im, rec->shard_id);
	if (!sn) {
		snprintf(im->err, sizeof(im->err), "too many shards in the input");
		return SLUICE_ERR_LIMIT_EXCEEDED;
	}
	if (rec->seq <= sn->last_seq) {
		im->duplicates++;
		return 0;
	}
	sn->last_seq = rec->seq;
	im->records++;
	if (!im->new_seqs) {
		if (!im->w_ready) {
			im->w_ready = true;
			if (rw_init(&im->w, im->client, target) < 0)
				return -ENOMEM;
		}
		int r = rw_add(&im->w, rec->shard_id, rec->seq, rec->ts_ms, rec->key, rec->key_len,
			       rec->data, rec->data_len);
		if (r < 0)
			snprintf(im->err, sizeof(im->err), "%s", im->w.err);
		return r;
	}
	if (im->n == RW_BATCH_RECORDS ||
	    (im->n && im->bytes.len + rec->data_len > RW_BATCH_BYTES)) {
		int r = produce_flush(im);
		if (r < 0)
			return r;
	}
	size_t off = im->bytes.len;
	if (sl_buf_put(&im->bytes, rec->key, rec->key_len) < 0 ||
	    sl_buf_put(&im->bytes, rec->data, rec->data_len) < 0)
		return -ENOMEM;
	im->entries[im->n++] = (struct sluice_put_entry){
	    .key = (const void *)(uintptr_t)off,
	    .key_len = rec->key_len,
	    .data = (const void *)(uintptr_t)(off + rec->key_len),
	    .data_len = rec->data_len,
	};
	return 0;
}

/* Read more of f into b; returns bytes read (0 at EOF) or -errno. */
static ssize_t read_more(FILE *f, struct sl_buf *b)
{
	if (sl_buf_reserve(b, READ_CHUNK) < 0)
		return -ENOMEM;
	size_t n = fread(b->data + b->len, 1, READ_CHUNK, f);
	if (n == 0 && ferror(f))
		return -EIO;
	b->len += n;
	return (ssize_t)n;
}

int cli_import(const struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"stream", required_argument, NULL, 's'},
	    {"new-seqs", no_argument, NULL, 'n'},
	    {"input", required_argument, NULL, 'i'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct importer im = {0};
	const char *input = NULL;
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			im.into = optarg;
			break;
		case 'n':
			im.new_seqs = true;
			break;
		case 'i':
			input = optarg;
			break;
		case 'h':
			fputs(import_usage, stdout);
			return CLI_EXIT_OK;
		default:
			fputs(import_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage_error("import", "unexpected argument %s", argv[optind]);
	FILE *in = input ? fopen(input, "rb") : stdin;
	if (!in)
		return cli_fail("import", "%s: %s", input, strerror(errno));
	int ret = CLI_EXIT_FAILED;
	struct sl_buf buf;
	sl_buf_init(&buf);
	sl_buf_init(&im.bytes);
	im.seen = calloc(SLUICE_SHARDS_MAX * 4, sizeof(*im.seen));
	im.entries = calloc(RW_BATCH_RECORDS, sizeof(*im.entries));
	im.results = calloc(RW_BATCH_RECORDS, sizeof(*im.results));
	if (!im.seen || !im.entries || !im.results) {
		cli_fail("import", "out of memory");
		goto out;
	}
	if (cli_connect(cli, "import", &im.client) != 0)
		goto out;
	uint64_t frames = 0, offset = 0;
	bool eof = false;
	for (;;) {
		size_t fsize = buf.len ? ZSTD_findFrameCompressedSize(buf.data, buf.len) : 0;
		if (!buf.len || ZSTD_isError(fsize)) {
			if (eof) {
				if (buf.len == 0)
					break;
				cli_fail("import", "byte %llu: not a complete zstd frame",
					 (unsigned long long)offset);
				goto out;
			}
			if (buf.len > IMPORT_FRAME_BYTES_MAX) {
				cli_fail("import", "byte %llu: frame larger than %u bytes",
					 (unsigned long long)offset, IMPORT_FRAME_BYTES_MAX);
				goto out;
			}
			ssize_t n = read_more(in, &buf);
			if (n < 0) {
				cli_fail("import", "reading: %s", strerror((int)-n));
				goto out;
			}
			eof = n == 0;
			continue;
		}
		char msg[320] = "";
		int r = sl_archive_read(buf.data, fsize, SL_ARCHIVE_ZSTD, import_record, &im, msg,
					sizeof(msg));
		if (r < 0) {
			if (im.err[0])
				cli_fail("import", "%s", im.err);
			else
				cli_fail("import", "frame at byte %llu: %s",
					 (unsigned long long)offset,
					 msg[0] ? msg : sluice_strerror(r));
			goto out;
		}
		frames++;
		offset += fsize;
		sl_buf_consume(&buf, fsize);
	}
	int r = im.new_seqs ? produce_flush(&im) : (im.w_ready ? rw_flush(&im.w) : 0);
	if (r < 0) {
		cli_fail("import", "%s", im.new_seqs ? im.err : im.w.err);
		goto out;
	}
	if (im.new_seqs)
		fprintf(stderr,
			"import: %llu frames, %llu records produced into %s, %llu duplicates\n",
			(unsigned long long)frames, (unsigned long long)im.produced,
			im.into ? im.into : (im.file_stream[0] ? im.file_stream : "-"),
			(unsigned long long)im.duplicates);
	else {
		struct rw_stats st = {0};
		if (im.w_ready)
			rw_stats(&im.w, &st);
		fprintf(stderr,
			"import: %llu frames, %llu records restored into %s (%llu already stored), "
			"%llu duplicates in the input\n",
			(unsigned long long)frames, (unsigned long long)st.appended,
			im.into ? im.into : (im.file_stream[0] ? im.file_stream : "-"),
			(unsigned long long)st.existing, (unsigned long long)im.duplicates);
	}
	ret = CLI_EXIT_OK;
out:
	if (im.w_ready)
		rw_finish(&im.w);
	sl_buf_finish(&buf);
	sl_buf_finish(&im.bytes);
	free(im.seen);
	free(im.entries);
	free(im.results);
	sluice_client_close(im.client);
	if (in != stdin)
		fclose(in);
	return ret;
}
