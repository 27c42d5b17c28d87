/* Helpers shared by the shard log tests: temp folders, done() recorders, a message sink. */
#ifndef SL_TEST_LOG_TEST_UTIL_H
#define SL_TEST_LOG_TEST_UTIL_H

#include "log/shard_log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A fresh folder under /tmp (free()d by tmpdir_remove). */
char *tmpdir_make(void);
/* rm -rf dir, then free(dir). */
void tmpdir_remove(char *dir);

/* Records each done() call. */
#define DONE_CALLS_MAX 4096
struct done_rec {
	int calls;
	int status[DONE_CALLS_MAX];
	uint64_t first_seq[DONE_CALLS_MAX];
	uint32_t count[DONE_CALLS_MAX];
};
void done_cb(void *ctx, int status, uint64_t first_seq, uint32_t count);

/* Captures sl_msg() output: counts warnings and errors, keeps the last line. */
struct msg_capture {
	int warns;
	int errors;
	char last[512];
};
void msg_capture_install(struct msg_capture *c);
void msg_capture_uninstall(void);

/* A record with a key and data given as strings (data may be NULL for none). */
struct sl_record_in rec_str(const char *key, const char *data);

/* A config with the given folder and mode, everything else default. */
struct sl_shard_log_config cfg_make(const char *dir, enum sl_fsync_mode mode);

/* Append one record "k<seq>" -> "v<i>" n times in one batch; returns the append result. */
int append_n(struct sl_shard_log *log, size_t n, int64_t now_ms, struct done_rec *d,
	     uint64_t *ret_first_seq);

/* Size of a file, or -1. */
long long file_bytes(const char *path);
/* Path of segment <first_seq>.<ext> in dir into a static buffer. */
const char *seg_path(const char *dir, uint64_t first_seq, const char *ext);

#endif
