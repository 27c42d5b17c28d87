#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int sl_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

int sl_write_all(int fd, const void *data, size_t n)
{
	const char *p = data;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int sl_write_file_atomic_at(int dfd, const char *name, const char *tmp_name, const void *data,
			    size_t len)
{
	int fd = openat(dfd, tmp_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	int r = sl_write_all(fd, data, len);
	/* fsync before rename: otherwise a crash may leave the new name on an empty file. */
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dfd, tmp_name, dfd, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dfd, tmp_name, 0);
		return r;
	}
	/* The rename itself is only durable once the folder is. */
	return fsync(dfd) < 0 ? -errno : 0;
}
