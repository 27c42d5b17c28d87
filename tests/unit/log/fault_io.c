#include "fault_io.h"

#include "log/io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FDS_MAX 4096
#define FILES_MAX 1024

static struct fault_io state;
static struct sl_log_io table;
static char *fd_path[FDS_MAX];
static struct {
	char *path;
	int preads;
} files[FILES_MAX];
static int nfiles;

/* Whether rule r fires on this call. */
static bool fire(struct fault_rule *r)
{
	if (r->kind == FAULT_NONE)
		return false;
	if (r->skip > 0) {
		r->skip--;
		return false;
	}
	r->fired++;
	return true;
}

static void consume(struct fault_rule *r)
{
	if (!r->sticky)
		r->kind = FAULT_NONE;
}

static int f_open(const char *path, int flags, mode_t mode)
{
	state.open_calls++;
	int fd = sl_log_io_real.open(path, flags, mode);
	if (fd >= 0 && fd < FDS_MAX) {
		free(fd_path[fd]);
		fd_path[fd] = strdup(path);
	}
	return fd;
}

static int f_close(int fd)
{
	if (fd >= 0 && fd < FDS_MAX) {
		free(fd_path[fd]);
		fd_path[fd] = NULL;
	}
	return sl_log_io_real.close(fd);
}

static ssize_t f_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	state.pwritev_calls++;
	struct fault_rule *r = &state.pwritev;
	if (fire(r)) {
		enum fault_kind kind = r->kind;
		consume(r);
		if (kind == FAULT_ERROR)
			return r->err;
		/* Short: really write the first short_bytes; with err set, later calls fail. */
		if (r->err) {
			r->kind = FAULT_ERROR;
			r->sticky = true;
		}
		struct iovec cut[64];
		size_t left = r->short_bytes;
		int n = 0;
		for (int i = 0; i < iovcnt && left && n < 64; i++) {
			size_t len = iov[i].iov_len < left ? iov[i].iov_len : left;
			cut[n++] = (struct iovec){iov[i].iov_base, len};
			left -= len;
		}
		if (n == 0)
			return 0;
		return sl_log_io_real.pwritev(fd, cut, n, off);
	}
	return sl_log_io_real.pwritev(fd, iov, iovcnt, off);
}

static ssize_t f_pread(int fd, void *buf, size_t n, off_t off)
{
	state.pread_calls++;
	if (fd >= 0 && fd < FDS_MAX && fd_path[fd]) {
		int i;
		for (i = 0; i < nfiles; i++)
			if (strcmp(files[i].path, fd_path[fd]) == 0)
				break;
		if (i == nfiles && nfiles < FILES_MAX)
			files[nfiles++].path = strdup(fd_path[fd]);
		if (i < nfiles)
			files[i].preads++;
	}
	return sl_log_io_real.pread(fd, buf, n, off);
}

static int f_fdatasync(int fd)
{
	state.fdatasync_calls++;
	struct fault_rule *r = &state.fdatasync;
	if (fire(r)) {
		consume(r);
		return r->err;
	}
	return sl_log_io_real.fdatasync(fd);
}

static int f_ftruncate(int fd, off_t len)
{
	struct fault_rule *r = &state.ftruncate;
	if (fire(r)) {
		consume(r);
		return r->err;
	}
	return sl_log_io_real.ftruncate(fd, len);
}

struct fault_io *fault_io_install(void)
{
	table = sl_log_io_real;
	table.open = f_open;
	table.close = f_close;
	table.pwritev = f_pwritev;
	table.pread = f_pread;
	table.fdatasync = f_fdatasync;
	table.ftruncate = f_ftruncate;
	fault_io_reset();
	sl_log_io_set(&table);
	return &state;
}

void fault_io_uninstall(void)
{
	sl_log_io_set(NULL);
	fault_io_reset();
	for (int i = 0; i < FDS_MAX; i++) {
		free(fd_path[i]);
		fd_path[i] = NULL;
	}
}

void fault_io_reset(void)
{
	memset(&state, 0, sizeof(state));
	for (int i = 0; i < nfiles; i++)
		free(files[i].path);
	nfiles = 0;
}

int fault_io_preads_on(const char *suffix)
{
	size_t sl = strlen(suffix);
	int n = 0;
	for (int i = 0; i < nfiles; i++) {
		size_t pl = strlen(files[i].path);
		if (pl >= sl && strcmp(files[i].path + pl - sl, suffix) == 0)
			n += files[i].preads;
	}
	return n;
}

int fault_io_files_read(void)
{
	return nfiles;
}
