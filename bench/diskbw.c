#include "diskbw.h"

#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
#ifndef RAMFS_MAGIC
#define RAMFS_MAGIC 0x858458f6
#endif

/* How often the time limit is checked: a clock read per write would be noise for tiny writes. */
#define DISKBW_CLOCK_EVERY_WRITES 64u

void bench_syncfs(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)syncfs(fd);
	close(fd);
}

static int measure(const char *dir, size_t write_bytes, uint64_t total_bytes, bool sync_each,
		   bool sync_end, double max_seconds, struct diskbw_result *ret)
{
	if (write_bytes == 0)
		return -EINVAL;
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/diskbw.%ld", dir, (long)getpid()) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	uint8_t *buf = malloc(write_bytes);
	if (!buf)
		return -ENOMEM;
	/* Not zeros: a file system may treat zero pages specially. */
	for (size_t i = 0; i < write_bytes; i++)
		buf[i] = (uint8_t)(i * 131u + 7u);
	bench_syncfs(dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int err = -errno;
		free(buf);
		return err;
	}
	int err = 0;
	uint64_t done = 0, writes = 0;
	int64_t limit_ns = max_seconds > 0 ? (int64_t)(max_seconds * 1e9) : INT64_MAX;
	int64_t t0 = sl_mono_ns(), t1 = t0;
	while (done < total_bytes) {
		size_t n =
		    total_bytes - done < write_bytes ? (size_t)(total_bytes - done) : write_bytes;
		size_t off = 0;
		while (off < n) {
			ssize_t w = write(fd, buf + off, n - off);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				err = -errno;
				goto out;
			}
			off += (size_t)w;
		}
		if (sync_each && fdatasync(fd) < 0) {
			err = -errno;
			goto out;
		}
		done += n;
		writes++;
		if (sync_each || writes % DISKBW_CLOCK_EVERY_WRITES == 0) {
			t1 = sl_mono_ns();
			if (t1 - t0 >= limit_ns)
				break;
		}
	}
	if (sync_end && fdatasync(fd) < 0) {
		err = -errno;
		goto out;
	}
	t1 = sl_mono_ns();
out:
	close(fd);
	unlink(path);
	free(buf);
	if (err < 0)
		return err;
	ret->bytes = done;
	ret->writes = writes;
	ret->seconds = (double)(t1 - t0) / 1e9;
	ret->bytes_per_s = ret->seconds > 0 ? (double)done / ret->seconds : 0;
	return 0;
}

int bench_scratch_create(const char *parent, char *out, size_t out_len)
{
	if (!parent)
		parent = ".";
	if (mkdir(parent, 0755) < 0 && errno != EEXIST)
		return -errno;
	char tmpl[PATH_MAX];
	if (snprintf(tmpl, sizeof(tmpl), "%s/sluice-bench.XXXXXX", parent) >= (int)sizeof(tmpl))
		return -ENAMETOOLONG;
	if (!mkdtemp(tmpl))
		return -errno;
	/* Absolute, because sluiced is started with it and may resolve paths differently. */
	char *abs = realpath(tmpl, NULL);
	if (!abs)
		return -errno;
	int r = snprintf(out, out_len, "%s", abs);
	free(abs);
	return r >= (int)out_len ? -ENAMETOOLONG : 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	int r = flag == FTW_DP ? rmdir(path) : unlink(path);
	return r < 0 && errno != ENOENT ? -errno : 0;
}

int bench_rm_rf(const char *path)
{
	int r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (r < 0 && errno == ENOENT)
		return 0;
	return r > 0 ? -EIO : r < 0 ? (r == -1 ? -errno : r) : 0;
}

void bench_fs_name(const char *path, char *out, size_t out_len)
{
	struct statfs sf;
	if (statfs(path, &sf) < 0) {
		snprintf(out, out_len, "unknown");
		return;
	}
	static const struct {
		unsigned long magic;
		const char *name;
	} known[] = {
	    {0xEF53, "ext2/3/4"},   {0x58465342, "xfs"},    {0x9123683E, "btrfs"},
	    {TMPFS_MAGIC, "tmpfs"}, {RAMFS_MAGIC, "ramfs"}, {0x794c7630, "overlayfs"},
	    {0x2fc12fc1, "zfs"},    {0x6969, "nfs"},	    {0x65735546, "fuse"},
	    {0x01021997, "9p"},	    {0xF2F52010, "f2fs"},
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if ((unsigned long)sf.f_type == known[i].magic) {
			snprintf(out, out_len, "%s", known[i].name);
			return;
		}
	}
	snprintf(out, out_len, "0x%lx", (unsigned long)sf.f_type);
}

bool bench_fs_is_memory(const char *path)
{
	struct statfs sf;
	if (statfs(path, &sf) < 0)
		return false;
	return (unsigned long)sf.f_type == TMPFS_MAGIC || (unsigned long)sf.f_type == RAMFS_MAGIC;
}

int diskbw_measure(const char *dir, size_t write_bytes, uint64_t total_bytes, bool sync_each,
		   double max_seconds, struct diskbw_result *ret)
{
	return measure(dir, write_bytes, total_bytes, sync_each, false, max_seconds, ret);
}

int diskbw_measure_device(const char *dir, uint64_t total_bytes, double max_seconds,
			  struct diskbw_result *ret)
{
	return measure(dir, 1u << 20, total_bytes, false, true, max_seconds, ret);
}
