/* The real I/O table of the shard log, and helpers built on whichever table is installed. */
#include "log/io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int real_open(const char *path, int flags, mode_t mode)
{
	int fd = open(path, flags | O_CLOEXEC, mode);
	return fd < 0 ? -errno : fd;
}

static int real_close(int fd)
{
	/* Linux closes the fd even when close() reports an error: never retry. */
	return close(fd) < 0 ? -errno : 0;
}

static ssize_t real_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	ssize_t n;
	do
		n = pwritev(fd, iov, iovcnt, off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t real_pread(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n;
	do
		n = pread(fd, buf, len, off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int real_fdatasync(int fd)
{
	return fdatasync(fd) < 0 ? -errno : 0;
}

static int real_fsync(int fd)
{
	return fsync(fd) < 0 ? -errno : 0;
}

static int real_ftruncate(int fd, off_t len)
{
	int r;
	do
		r = ftruncate(fd, len);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

static int real_unlink(const char *path)
{
	return unlink(path) < 0 ? -errno : 0;
}

static int real_rename(const char *from, const char *to)
{
	return rename(from, to) < 0 ? -errno : 0;
}

static int real_mkdir(const char *path, mode_t mode)
{
	return mkdir(path, mode) < 0 ? -errno : 0;
}

static int real_rmdir(const char *path)
{
	return rmdir(path) < 0 ? -errno : 0;
}

static int real_file_size(const char *path, uint64_t *ret_bytes)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	*ret_bytes = (uint64_t)st.st_size;
	return 0;
}

const struct sl_log_io sl_log_io_real = {
    .open = real_open,
    .close = real_close,
    .pwritev = real_pwritev,
    .pread = real_pread,
    .fdatasync = real_fdatasync,
    .fsync = real_fsync,
    .ftruncate = real_ftruncate,
    .unlink = real_unlink,
    .rename = real_rename,
    .mkdir = real_mkdir,
    .rmdir = real_rmdir,
    .file_size = real_file_size,
};

static const struct sl_log_io *current = &sl_log_io_real;

const struct sl_log_io *sl_log_io(void)
{
	return current;
}

void sl_log_io_set(const struct sl_log_io *io)
{
	current = io ? io : &sl_log_io_real;
}

int sl_log_io_pwritev_all(int fd, struct iovec *iov, int iovcnt, uint64_t off)
{
	const struct sl_log_io *io = sl_log_io();
	while (iovcnt > 0) {
		int cnt = iovcnt < IOV_MAX ? iovcnt : IOV_MAX;
		ssize_t n = io->pwritev(fd, iov, cnt, (off_t)off);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO; /* no progress and no error: do not spin */
		off += (uint64_t)n;
		/* Skip what was written; a partial iovec is advanced in place. */
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

ssize_t sl_log_io_pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	const struct sl_log_io *io = sl_log_io();
	size_t done = 0;
	while (done < n) {
		ssize_t r = io->pread(fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));
		if (r < 0)
			return r;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int sl_log_io_mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	const struct sl_log_io *io = sl_log_io();
	for (size_t i = 1; i <= len; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		char c = tmp[i];
		tmp[i] = '\0';
		int r = io->mkdir(tmp, 0755);
		if (r < 0 && r != -EEXIST)
			return r;
		tmp[i] = c;
	}
	return 0;
}

int sl_log_io_fsync_dir(const char *path)
{
	const struct sl_log_io *io = sl_log_io();
	int fd = io->open(path, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	int r = io->fsync(fd);
	io->close(fd);
	return r;
}
