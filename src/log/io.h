/*
 * The I/O seam of the shard log: every file operation of src/log goes through the table returned
 * by sl_log_io(), so tests can swap in a table that injects ENOSPC, EIO, short writes or failed
 * syncs deterministically (see tests/unit/log/fault_io.c), or counts reads.
 *
 * Every function returns -errno on failure (never -1 + errno), like the rest of sluice.
 * The table is process-wide: sl_log_io_set() is for tests and tools, to be called while no log is
 * in use by another thread. The indirect call costs nothing next to the syscall behind it.
 */
#ifndef SL_LOG_IO_H
#define SL_LOG_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct sl_log_io {
	/* Returns an fd or -errno. */
	int (*open)(const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	/* Bytes written (possibly fewer than asked) or -errno. */
	ssize_t (*pwritev)(int fd, const struct iovec *iov, int iovcnt, off_t off);
	/* Bytes read (0 at end of file) or -errno. */
	ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
	int (*fdatasync)(int fd);
	int (*fsync)(int fd); /* for directories */
	int (*ftruncate)(int fd, off_t len);
	int (*unlink)(const char *path);
	int (*rename)(const char *from, const char *to);
	int (*mkdir)(const char *path, mode_t mode);
	int (*rmdir)(const char *path);
	/* The size of a file by path, without opening it. */
	int (*file_size)(const char *path, uint64_t *ret_bytes);
};

/* The table in use (never NULL). */
const struct sl_log_io *sl_log_io(void);
/* Install io (borrowed: must outlive its use); NULL restores the real one. */
void sl_log_io_set(const struct sl_log_io *io);
/* The real implementation, for wrappers to forward to. */
extern const struct sl_log_io sl_log_io_real;

/* Helpers over the table. */
/* pwritev all of iov (which is modified), retrying short writes; 0 or -errno. */
int sl_log_io_pwritev_all(int fd, struct iovec *iov, int iovcnt, uint64_t off);
/* pread exactly n bytes unless the file ends first; returns the bytes read or -errno. */
ssize_t sl_log_io_pread_full(int fd, void *buf, size_t n, uint64_t off);
/* mkdir -p; 0 or -errno. */
int sl_log_io_mkdir_p(const char *path);
/* fsync a directory by path; 0 or -errno. */
int sl_log_io_fsync_dir(const char *path);

#endif
