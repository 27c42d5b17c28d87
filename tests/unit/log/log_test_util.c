#include "log_test_util.h"

#include "common/logging.h"

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tmpdir_make(void)
{
	char tmpl[] = "/tmp/sluice-log-test-XXXXXX";
	if (!mkdtemp(tmpl))
		abort();
	return strdup(tmpl);
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

void tmpdir_remove(char *dir)
{
	if (!dir)
		return;
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

void done_cb(void *ctx, int status, uint64_t first_seq, uint32_t count)
{
	struct done_rec *d = ctx;
	if (d->calls < DONE_CALLS_MAX) {
		d->status[d->calls] = status;
		d->first_seq[d->calls] = first_seq;
		d->count[d->calls] = count;
	}
	d->calls++;
}

static void capture_sink(enum sl_msg_level level, const char *msg, void *ctx)
{
	struct msg_capture *c = ctx;
	if (level == SL_MSG_WARN)
		c->warns++;
	if (level == SL_MSG_ERROR)
		c->errors++;
	snprintf(c->last, sizeof(c->last), "%s", msg);
}

void msg_capture_install(struct msg_capture *c)
{
	memset(c, 0, sizeof(*c));
	sl_msg_set_sink(capture_sink, c);
}

void msg_capture_uninstall(void)
{
	sl_msg_set_sink(NULL, NULL);
}

struct sl_record_in rec_str(const char *key, const char *data)
{
	struct sl_record_in r = {0};
	r.key = (const uint8_t *)key;
	r.key_len = (uint16_t)strlen(key);
	r.data = (const uint8_t *)data;
	r.data_len = data ? (uint32_t)strlen(data) : 0;
	return r;
}

struct sl_shard_log_config cfg_make(const char *dir, enum sl_fsync_mode mode)
{
	struct sl_shard_log_config c = {0};
	c.dir = dir;
	c.fsync_mode = mode;
	return c;
}

int append_n(struct sl_shard_log *log, size_t n, int64_t now_ms, struct done_rec *d,
	     uint64_t *ret_first_seq)
{
	struct sl_record_in *recs = calloc(n, sizeof(*recs));
	char(*vals)[32] = calloc(n, 32);
	for (size_t i = 0; i < n; i++) {
		snprintf(vals[i], 32, "v%zu", i);
		recs[i] = rec_str("key", vals[i]);
	}
	int r = sl_shard_log_append(log, recs, n, now_ms, d ? done_cb : NULL, d, ret_first_seq);
	free(vals);
	free(recs);
	return r;
}

long long file_bytes(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	return (long long)st.st_size;
}

const char *seg_path(const char *dir, uint64_t first_seq, const char *ext)
{
	static char buf[4096];
	snprintf(buf, sizeof(buf), "%s/%020" PRIu64 ".%s", dir, first_seq, ext);
	return buf;
}
