#include "server/consumer_firehose.h"

#include "archive/archive_format.h"
#include "common/file.h"
#include "common/logging.h"
#include "consumer/checkpoint.h"
#include "objstore/objstore.h"
#include "stream/stream_meta.h"

#include <sluice/errors.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sl_firehose_sink {
	struct sl_consumer_config cfg;
	uint32_t shard_id;
	char data_dir[4096];
	struct sl_objstore *store;
	struct sl_archive_writer *writer;
	/* The stream's metadata file as of its last upload to _meta/STREAM.json (see publish_meta).
	 */
	bool meta_published;
	struct stat meta_stat;
};

static void pending_path(const char *data_dir, const char *name, uint32_t shard_id, char *out,
			 size_t len)
{
	char shard[SL_SHARD_ID_BUF];
	sl_shard_id_format(shard_id, shard);
	snprintf(out, len, "%s/checkpoints/%s/%s.pending", data_dir, name, shard);
}

int sl_firehose_pending_load(const char *data_dir, const char *name, uint32_t shard_id,
			     uint64_t *ret_first, uint64_t *ret_last)
{
	char path[4600];
	pending_path(data_dir, name, shard_id, path, sizeof(path));
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	uint64_t first, last;
	int n = fscanf(f, "%" SCNu64 " %" SCNu64, &first, &last);
	fclose(f);
	if (n != 2 || first == 0 || last < first)
		return SLUICE_ERR_CORRUPT;
	*ret_first = first;
	*ret_last = last;
	return 0;
}

/* Record the range about to be uploaded (temp file, fsync, rename): see the header. */
static int pending_save(const struct sl_firehose_sink *s, uint64_t first, uint64_t last)
{
	char dir[4400], path[4600], tmp[4700];
	snprintf(dir, sizeof(dir), "%s/checkpoints", s->data_dir);
	mkdir(dir, 0755);
	snprintf(dir, sizeof(dir), "%s/checkpoints/%s", s->data_dir, s->cfg.name);
	mkdir(dir, 0755);
	pending_path(s->data_dir, s->cfg.name, s->shard_id, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	char line[64];
	int n = snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu64 "\n", first, last);
	int r = 0;
	if (write(fd, line, (size_t)n) != n || fdatasync(fd) < 0)
		r = -errno ? -errno : -EIO;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	/* The rename is durable only with its folder: without this a power loss before the
	 * checkpoint's own save could bring back the previous range after the upload. */
	return sl_fsync_dir(dir);
}

int sl_firehose_sink_create(const struct sl_consumer_config *cfg, uint32_t shard_id,
			    const char *data_dir, struct sl_firehose_sink **ret, char *err_msg,
			    size_t err_msg_len)
{
	struct sl_firehose_sink *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	s->shard_id = shard_id;
	snprintf(s->data_dir, sizeof(s->data_dir), "%s", data_dir);
	const struct sl_firehose_options *f = &cfg->firehose;
	struct sl_objstore_options oo = {
	    .endpoint = f->endpoint[0] ? f->endpoint : NULL,
	    .region = f->region[0] ? f->region : NULL,
	    .credentials_file = f->credentials_file[0] ? f->credentials_file : NULL,
	    .profile = f->profile[0] ? f->profile : NULL,
	    /* Leave the engine's own timeout room to see the store's answer. */
	    .timeout_ms = cfg->timeout_ms > 2000 ? cfg->timeout_ms - 1000 : cfg->timeout_ms,
	};
	struct sl_objstore_error oe = {0};
	int r = sl_objstore_create(cfg->handler_target, &oo, &s->store, &oe);
	if (r < 0) {
		snprintf(err_msg, err_msg_len, "destination %s: %s", cfg->handler_target,
			 oe.message[0] ? oe.message : sluice_strerror(r));
		sl_firehose_sink_destroy(s);
		return r;
	}
	struct sl_archive_options ao = {
	    .format = f->format == SL_FIREHOSE_FORMAT_RAW ? SL_ARCHIVE_RAW : SL_ARCHIVE_JSONL,
	    .compression =
		f->compression == SL_FIREHOSE_COMPRESSION_ZSTD ? SL_ARCHIVE_ZSTD : SL_ARCHIVE_NONE,
	    .zstd_level = f->zstd_level,
	};
	r = sl_archive_writer_create(cfg->stream, shard_id, &ao, &s->writer);
	if (r < 0) {
		snprintf(err_msg, err_msg_len, "cannot set up the archive writer: %s",
			 sluice_strerror(r));
		sl_firehose_sink_destroy(s);
		return r;
	}
	*ret = s;
	return 0;
}

void sl_firehose_sink_destroy(struct sl_firehose_sink *s)
{
	if (!s)
		return;
	sl_archive_writer_destroy(s->writer);
	sl_objstore_destroy(s->store);
	free(s);
}

static bool same_file_version(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/*
 * Keep PREFIX/_meta/STREAM.json (the stream's shard layout, for `sluice restore`) up to date:
 * uploaded before this sink's first object and again whenever the metadata file changed (a
 * resharding rewrites it by rename, so its inode and mtime move). The check is one stat per
 * object. Every shard's sink may upload the same document: the put is idempotent.
 */
static int publish_meta(struct sl_firehose_sink *s, char *detail, size_t detail_len)
{
	char meta_dir[4200], path[4600];
	snprintf(meta_dir, sizeof(meta_dir), "%s/meta", s->data_dir);
	snprintf(path, sizeof(path), "%s/streams/%s.json", meta_dir, s->cfg.stream);
	struct stat st;
	if (stat(path, &st) < 0) {
		snprintf(detail, detail_len, "stream metadata of %.100s: %.60s", s->cfg.stream,
			 strerror(errno));
		return -errno;
	}
	if (s->meta_published && same_file_version(&st, &s->meta_stat))
		return 0;
	struct sl_stream_meta *meta;
	char msg[SL_STREAM_MSG_LEN] = "";
	int r = sl_stream_meta_load(meta_dir, s->cfg.stream, &meta, msg, sizeof(msg));
	if (r < 0) {
		snprintf(detail, detail_len, "stream metadata: %.150s",
			 msg[0] ? msg : sluice_strerror(r));
		return r;
	}
	char *json;
	size_t len;
	r = sl_stream_meta_to_json(meta, &json, &len);
	sl_stream_meta_destroy(meta);
	if (r < 0) {
		snprintf(detail, detail_len, "stream metadata: %s", sluice_strerror(r));
		return r;
	}
	char key[SLUICE_NAME_LEN_MAX + 32];
	snprintf(key, sizeof(key), "_meta/%s.json", s->cfg.stream);
	struct sl_objstore_error oe = {0};
	r = sl_objstore_put(s->store, key, json, len, &oe);
	free(json);
	if (r < 0) {
		snprintf(detail, detail_len, "_meta: %.120s",
			 oe.message[0] ? oe.message : sluice_strerror(r));
		return r;
	}
	s->meta_published = true;
	s->meta_stat = st;
	return 0;
}

static int fail(struct sluice_handler_result *res, int r, const char *what, const char *detail)
{
	res->status = SLUICE_HANDLER_ERROR;
	res->failed_from = 0;
	snprintf(res->message, sizeof(res->message), "%s: %.200s", what, detail);
	return r;
}

int sl_firehose_sink_deliver(struct sl_firehose_sink *s, const struct sluice_handler_batch *batch,
			     bool to_errors, struct sluice_handler_result *res, char *ret_key,
			     size_t key_len, uint64_t *ret_bytes)
{
	sl_archive_writer_reset(s->writer);
	for (size_t i = 0; i < batch->count; i++) {
		const struct sluice_handler_record *h = &batch->records[i];
		struct sluice_record rec = {
		    .seq = h->seq,
		    .ts_ms = h->ts_ms,
		    .key = h->key,
		    .key_len = (uint16_t)h->key_len,
		    .data = h->data,
		    .data_len = h->data_len,
		};
		int r = sl_archive_writer_add(s->writer, &rec);
		if (r < 0)
			return fail(res, r, "cannot archive a record", sluice_strerror(r));
	}
	const uint8_t *data;
	size_t len;
	int r = sl_archive_writer_finish(s->writer, &data, &len);
	if (r < 0)
		return fail(res, r, "cannot finish the object", sluice_strerror(r));
	struct sl_archive_writer_info info;
	sl_archive_writer_info(s->writer, &info);
	char key[SL_ARCHIVE_KEY_LEN_MAX];
	r = sl_archive_key(to_errors ? "errors" : "", s->cfg.stream, s->shard_id, info.first_seq,
			   info.last_seq, info.first_ts_ms, info.ext, key, sizeof(key));
	if (r < 0)
		return fail(res, r, "cannot name the object", sluice_strerror(r));
	if (!to_errors) {
		char detail[200];
		r = publish_meta(s, detail, sizeof(detail));
		if (r < 0)
			return fail(res, r, "cannot store the stream layout", detail);
	}
	r = to_errors ? 0 : pending_save(s, info.first_seq, info.last_seq);
	if (r < 0)
		return fail(res, r, "cannot record the pending object", strerror(-r));
	struct sl_objstore_error oe = {0};
	r = sl_objstore_put(s->store, key, data, len, &oe);
	if (r < 0) {
		char detail[200];
		if (oe.http_status)
			snprintf(detail, sizeof(detail), "HTTP %d %.40s %.120s", oe.http_status,
				 oe.code, oe.message);
		else
			snprintf(detail, sizeof(detail), "%.190s",
				 oe.message[0] ? oe.message : sluice_strerror(r));
		return fail(res, r, "upload failed", detail);
	}
	/*
	 * The object is stored: make its checkpoint durable before the next object's range goes
	 * into the pending file, so that after a crash the checkpoint and the pending range always
	 * describe the same window (else a rebuilt window could overlap a stored object).
	 */
	r = to_errors ? 0
		      : sl_checkpoint_save(s->data_dir, s->cfg.name, s->shard_id, info.last_seq);
	if (r < 0)
		return fail(res, r, "object stored, but its checkpoint could not be saved",
			    sluice_strerror(r));
	res->status = SLUICE_HANDLER_OK;
	res->failed_from = 0;
	res->message[0] = '\0';
	snprintf(ret_key, key_len, "%s", key);
	*ret_bytes = len;
	return 0;
}
