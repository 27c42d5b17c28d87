/*
 * Consumer checkpoints (format in checkpoint.h): DATA/checkpoints/CONSUMER/shardId-NNNNNNNNNNNN.
 *
 * File contents, byte for byte:
 *
 *   "<seq>\n"                  seq in decimal, 1..20 digits, no sign, no leading '+' or spaces
 *   "<xxh3>\n"                 optional: XXH3_64bits of the decimal digits of the first line
 *                              (the '\n' excluded), 16 hex digits (written lowercase, read in
 *                              either case)
 *
 * Nothing else may follow. The checksum line is optional so that an operator can rewind a
 * consumer by writing a bare number into the file; when present it must match, which catches a
 * torn or bit-flipped file (the write is atomic, but disks are not perfect). Saves go to
 * "shardId-NNNNNNNNNNNN.tmp" first, then fsync, rename, fsync of the folder: after a crash the
 * file holds the old or the new checkpoint, never a mix. A leftover .tmp is overwritten by the
 * next save and removed by sl_checkpoint_remove_all.
 *
 * Consumer names go through sl_stream_name_validate before they become a path, so no name can
 * leave the checkpoints folder ("..", "a/b" and "" are refused with SLUICE_ERR_INVALID_NAME).
 */
#include "consumer/checkpoint.h"

#include "common/file.h"

#include "stream/stream_meta.h"

#include <sluice/errors.h>

#include <xxhash.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECKPOINTS_SUBDIR "checkpoints"
#define TMP_SUFFIX ".tmp"
/* "18446744073709551615\n" + 16 hex digits + "\n": 38 bytes. Anything longer is not ours. */
#define CHECKPOINT_FILE_BYTES_MAX 38
#define SEQ_DIGITS_MAX 20
#define HASH_DIGITS 16
/* Stripes of the save locks: enough that unrelated shards rarely wait on each other. */
#define SAVE_LOCK_STRIPES 64

static pthread_mutex_t save_locks[SAVE_LOCK_STRIPES] = {[0 ... SAVE_LOCK_STRIPES - 1] =
							    PTHREAD_MUTEX_INITIALIZER};

pthread_mutex_t *sl_checkpoint_lock(const char *consumer, uint32_t shard_id)
{
	uint64_t h = XXH3_64bits_withSeed(consumer, strlen(consumer), shard_id);
	return &save_locks[h % SAVE_LOCK_STRIPES];
}

/* DATA/checkpoints/CONSUMER into buf; 0, SLUICE_ERR_INVALID_NAME or -ENAMETOOLONG. */
static int consumer_dir_path(const char *data_dir, const char *consumer, char *buf, size_t len)
{
	int r = sl_stream_name_validate(consumer);
	if (r < 0)
		return r;
	int n = snprintf(buf, len, "%s/" CHECKPOINTS_SUBDIR "/%s", data_dir, consumer);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* mkdir path if missing; when it was created, fsync its parent so the entry survives a crash. */
static int make_dir_durable(const char *path, const char *parent)
{
	if (mkdir(path, 0755) == 0)
		return sl_fsync_dir(parent);
	return errno == EEXIST ? 0 : -errno;
}

/* Opens (with create: makes) DATA/checkpoints/CONSUMER. */
static int open_consumer_dir(const char *data_dir, const char *consumer, bool create)
{
	char path[PATH_MAX], top[PATH_MAX];
	int r = consumer_dir_path(data_dir, consumer, path, sizeof(path));
	if (r < 0)
		return r;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT || !create)
		return fd >= 0 ? fd : -errno;
	int n = snprintf(top, sizeof(top), "%s/" CHECKPOINTS_SUBDIR, data_dir);
	if (n < 0 || (size_t)n >= sizeof(top))
		return -ENAMETOOLONG;
	/* data_dir itself must exist: it is the server's, not ours to invent. */
	if ((r = make_dir_durable(top, data_dir)) < 0 || (r = make_dir_durable(path, top)) < 0)
		return r;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

int sl_checkpoint_save(const char *data_dir, const char *consumer, uint32_t shard_id, uint64_t seq)
{
	pthread_mutex_t *mu = sl_checkpoint_lock(consumer, shard_id);
	pthread_mutex_lock(mu);
	int r = sl_checkpoint_save_locked(data_dir, consumer, shard_id, seq);
	pthread_mutex_unlock(mu);
	return r;
}

int sl_checkpoint_save_locked(const char *data_dir, const char *consumer, uint32_t shard_id,
			      uint64_t seq)
{
	char text[CHECKPOINT_FILE_BYTES_MAX + 1];
	int digits = snprintf(text, sizeof(text), "%" PRIu64, seq);
	uint64_t h = XXH3_64bits(text, (size_t)digits);
	int len = snprintf(text, sizeof(text), "%" PRIu64 "\n%016" PRIx64 "\n", seq, h);
	if (len < 0 || len > CHECKPOINT_FILE_BYTES_MAX)
		return -EINVAL; /* cannot happen: the format is bounded */

	int dfd = open_consumer_dir(data_dir, consumer, true);
	if (dfd < 0)
		return dfd;
	char file[SL_SHARD_ID_BUF], tmp[SL_SHARD_ID_BUF + sizeof(TMP_SUFFIX)];
	sl_shard_id_format(shard_id, file);
	snprintf(tmp, sizeof(tmp), "%s" TMP_SUFFIX, file);
	int r = sl_write_file_atomic_at(dfd, file, tmp, text, (size_t)len);
	close(dfd);
	return r;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int sl_checkpoint_parse(const char *text, size_t len, uint64_t *ret_seq)
{
	const char *p = text;
	if (len > CHECKPOINT_FILE_BYTES_MAX)
		return SLUICE_ERR_CORRUPT;
	size_t i = 0;
	uint64_t seq = 0;
	while (i < len && p[i] >= '0' && p[i] <= '9') {
		unsigned d = (unsigned)(p[i] - '0');
		if (i >= SEQ_DIGITS_MAX || seq > (UINT64_MAX - d) / 10)
			return SLUICE_ERR_CORRUPT;
		seq = seq * 10 + d;
		i++;
	}
	size_t digits = i;
	if (digits == 0 || i >= len || p[i] != '\n')
		return SLUICE_ERR_CORRUPT;
	i++;
	if (i < len) {
		if (len - i != HASH_DIGITS + 1 || p[len - 1] != '\n')
			return SLUICE_ERR_CORRUPT;
		uint64_t h = 0;
		for (size_t k = 0; k < HASH_DIGITS; k++) {
			int v = hex_digit(p[i + k]);
			if (v < 0)
				return SLUICE_ERR_CORRUPT;
			h = h << 4 | (uint64_t)v;
		}
		if (h != XXH3_64bits(p, digits))
			return SLUICE_ERR_CORRUPT;
	}
	*ret_seq = seq;
	return 0;
}

int sl_checkpoint_load(const char *data_dir, const char *consumer, uint32_t shard_id,
		       uint64_t *ret_seq)
{
	int dfd = open_consumer_dir(data_dir, consumer, false);
	if (dfd < 0)
		return dfd;
	char file[SL_SHARD_ID_BUF];
	sl_shard_id_format(shard_id, file);
	int fd = openat(dfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int r = fd < 0 ? -errno : 0;
	close(dfd);
	if (r < 0)
		return r == -ELOOP ? SLUICE_ERR_CORRUPT : r;
	/* One byte more than the longest valid file, so that a longer one is seen as such. */
	char buf[CHECKPOINT_FILE_BYTES_MAX + 1];
	size_t len = 0;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = SLUICE_ERR_CORRUPT;
		goto out;
	}
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	r = sl_checkpoint_parse(buf, len, ret_seq);
out:
	close(fd);
	return r;
}

int sl_checkpoint_remove_all(const char *data_dir, const char *consumer)
{
	char path[PATH_MAX], top[PATH_MAX];
	int r = consumer_dir_path(data_dir, consumer, path, sizeof(path));
	if (r < 0)
		return r;
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	DIR *d = fdopendir(dfd);
	if (!d) {
		r = -errno;
		close(dfd);
		return r;
	}
	/*
	 * The folder is ours alone: remove every file in it (checkpoints, leftover temp files).
	 * Unlinking while reading is fine with readdir; a subfolder someone put there makes the
	 * rmdir below fail with -ENOTEMPTY, which is reported rather than guessed about.
	 */
	struct dirent *e;
	errno = 0;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dfd, e->d_name, 0) < 0 && errno != ENOENT && errno != EISDIR) {
			r = -errno;
			break;
		}
		errno = 0;
	}
	if (r == 0 && errno)
		r = -errno;
	closedir(d); /* closes dfd */
	if (r < 0)
		return r;
	if (rmdir(path) < 0 && errno != ENOENT)
		return -errno;
	int n = snprintf(top, sizeof(top), "%s/" CHECKPOINTS_SUBDIR, data_dir);
	if (n < 0 || (size_t)n >= sizeof(top))
		return -ENAMETOOLONG;
	/* Make the removal durable: a crash must not bring old checkpoints back to a new consumer
	 * of the same name. */
	return sl_fsync_dir(top);
}
