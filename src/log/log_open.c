/*
 * Opening a shard log: list the segments, trust the sealed ones (their .log and .idx were
 * fdatasynced at roll), recover the newest one (sl_segment_recover). The cost of an open is a
 * folder listing, one stat per sealed segment and a read of the newest segment's tail: it does not
 * grow with the amount of data stored.
 */
#include "log/log_internal.h"

#include "common/logging.h"
#include "log/io.h"

#include <sluice/errors.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Segment files per shard we are willing to list: a sanity bound far above real use. */
#define SEGMENTS_MAX (1u << 20)

struct name_list {
	uint64_t *logs;
	size_t nlogs;
	uint64_t *idxs;
	size_t nidxs;
};

static int push_u64(uint64_t **v, size_t *n, uint64_t x)
{
	if (*n >= SEGMENTS_MAX)
		return -E2BIG;
	if ((*n & (*n - 1)) == 0) { /* grow at powers of two */
		size_t cap = *n ? *n * 2 : 16;
		uint64_t *p = realloc(*v, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*v = p;
	}
	(*v)[(*n)++] = x;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int list_segments(const char *dir, struct name_list *out)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t seq;
		bool is_idx;
		if (!sl_segment_parse_name(de->d_name, &seq, &is_idx))
			continue;
		r = is_idx ? push_u64(&out->idxs, &out->nidxs, seq)
			   : push_u64(&out->logs, &out->nlogs, seq);
		if (r < 0)
			break;
	}
	closedir(d);
	if (r < 0)
		return r;
	if (out->nlogs)
		qsort(out->logs, out->nlogs, sizeof(uint64_t), cmp_u64);
	return 0;
}

/* An .idx without its .log is what a crash during retention leaves behind. */
static void remove_orphan_indexes(const char *dir, const struct name_list *names)
{
	for (size_t i = 0; i < names->nidxs; i++) {
		uint64_t seq = names->idxs[i];
		if (names->nlogs &&
		    bsearch(&seq, names->logs, names->nlogs, sizeof(uint64_t), cmp_u64))
			continue;
		char path[PATH_MAX];
		if (sl_segment_path(path, sizeof(path), dir, seq, "idx") == 0) {
			SL_INFO("shard log %s: removing orphan index %020" PRIu64 ".idx", dir, seq);
			sl_log_io()->unlink(path);
		}
	}
}

static int apply_defaults(struct sl_shard_log_config *c)
{
	if (!c->dir || !c->dir[0])
		return SLUICE_ERR_INVALID_ARGUMENT;
	if (c->segment_bytes_max == 0)
		c->segment_bytes_max = SL_SEGMENT_BYTES_DEFAULT;
	if (c->index_interval_bytes == 0)
		c->index_interval_bytes = SL_INDEX_INTERVAL_BYTES_DEFAULT;
	if (c->first_seq == 0)
		c->first_seq = 1;
	if (c->first_seq == UINT64_MAX)
		return SLUICE_ERR_INVALID_ARGUMENT;
	if (c->record_bytes_max == 0)
		c->record_bytes_max = SLUICE_RECORD_BYTES_LIMIT;
	if (c->record_bytes_max > SLUICE_RECORD_BYTES_LIMIT)
		return SLUICE_ERR_INVALID_ARGUMENT;
	if (c->retention_ms < 0)
		return SLUICE_ERR_INVALID_ARGUMENT;
	switch (c->fsync_mode) {
	case SL_FSYNC_GROUP:
	case SL_FSYNC_NEVER:
		break;
	case SL_FSYNC_INTERVAL:
		if (c->fsync_interval_ms <= 0)
			c->fsync_interval_ms = SL_FSYNC_INTERVAL_MS_DEFAULT;
		break;
	default:
		return SLUICE_ERR_INVALID_ARGUMENT;
	}
	return 0;
}

static int load_segments(struct sl_shard_log *log, const struct name_list *names)
{
	const struct sl_log_io *io = sl_log_io();
	size_t n = names->nlogs;
	log->segs = calloc(n < 8 ? 8 : n + 8, sizeof(*log->segs));
	if (!log->segs)
		return -ENOMEM;
	log->segs_cap = n < 8 ? 8 : n + 8;
	char path[PATH_MAX];
	int r;
	for (size_t i = 0; i < n; i++) {
		struct sl_segment *seg = &log->segs[i];
		sl_segment_init(seg, names->logs[i]);
		log->nsegs++;
		r = sl_segment_path(path, sizeof(path), log->dir, seg->first_seq, "log");
		if (r < 0)
			return r;
		uint64_t size;
		r = io->file_size(path, &size);
		if (r < 0)
			return r;
		if (i + 1 < n) {
			/* Sealed: trusted as is; its .idx loads when first needed. */
			seg->size_bytes = size;
			seg->file_bytes = size;
			log->total_bytes += size;
			continue;
		}
		r = sl_segment_open(seg, log->dir, true);
		if (r < 0)
			return r;
		r = sl_segment_recover(seg, log->dir, size, log->cfg.index_interval_bytes,
				       &log->scratch);
		if (r < 0)
			return r;
		log->total_bytes += seg->size_bytes;
	}

	struct sl_segment *act = sl_log_active(log);
	if (act->has_records) {
		log->next_seq = act->last_seq + 1;
		log->last_ts_ms = act->last_ts_ms;
	} else {
		log->next_seq = act->first_seq;
		if (log->nsegs > 1) {
			/* Rolled but nothing written yet: the newest timestamp is in the previous
			 * one. */
			struct sl_segment *prev = &log->segs[log->nsegs - 2];
			r = sl_log_segment_index(log, prev);
			if (r < 0)
				return r;
			if (prev->has_records)
				log->last_ts_ms = prev->last_ts_ms;
		}
	}
	return 0;
}

static int create_first_segment(struct sl_shard_log *log)
{
	log->segs = calloc(8, sizeof(*log->segs));
	if (!log->segs)
		return -ENOMEM;
	log->segs_cap = 8;
	int r = sl_segment_create(&log->segs[0], log->dir, log->cfg.first_seq);
	if (r < 0)
		return r;
	log->nsegs = 1;
	log->total_bytes = log->segs[0].size_bytes;
	log->next_seq = log->cfg.first_seq;
	return sl_log_io_fsync_dir(log->dir);
}

int sl_shard_log_open(const struct sl_shard_log_config *cfg, struct sl_shard_log **ret)
{
	if (!cfg || !ret)
		return SLUICE_ERR_INVALID_ARGUMENT;
	struct sl_shard_log_config c = *cfg;
	int r = apply_defaults(&c);
	if (r < 0)
		return r;

	struct name_list names = {0};
	struct sl_shard_log *log = calloc(1, sizeof(*log));
	if (!log)
		return -ENOMEM;
	log->sync_fd = -1;
	sl_buf_init(&log->staging);
	sl_buf_init(&log->scratch);
	log->dir = strdup(c.dir);
	if (!log->dir) {
		r = -ENOMEM;
		goto fail;
	}
	c.dir = log->dir;
	log->cfg = c;

	r = sl_log_io_mkdir_p(log->dir);
	if (r < 0)
		goto fail;
	r = list_segments(log->dir, &names);
	if (r < 0)
		goto fail;
	remove_orphan_indexes(log->dir, &names);
	r = names.nlogs ? load_segments(log, &names) : create_first_segment(log);
	if (r < 0)
		goto fail;

	log->synced_seq = log->next_seq;
	log->durable_seq = log->next_seq;
	free(names.logs);
	free(names.idxs);
	*ret = log;
	return 0;

fail:
	free(names.logs);
	free(names.idxs);
	/* Nothing was written that close() would need to sync: just free. */
	log->failed = r;
	sl_shard_log_close(log);
	return r;
}
