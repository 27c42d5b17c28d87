/*
 * Small durable-file helpers shared by every module that keeps metadata in files (stream
 * metadata, consumer registrations, checkpoints).
 */
#ifndef SL_COMMON_FILE_H
#define SL_COMMON_FILE_H

#include <stddef.h>

/* fsync a folder by path: a new or renamed entry in it is durable only after this. 0 or -errno. */
int sl_fsync_dir(const char *path);
/* write() all n bytes (retrying short writes and EINTR). 0 or -errno. */
int sl_write_all(int fd, const void *p, size_t n);
/*
 * Replace dfd/name with data atomically and durably: write dfd/tmp_name, fsync it, rename it
 * over name, fsync the folder. After a crash the file is the old or the new version, never a mix;
 * a leftover tmp_name is an unfinished save. 0 or -errno (tmp_name removed on failure).
 */
int sl_write_file_atomic_at(int dfd, const char *name, const char *tmp_name, const void *data,
			    size_t len);

#endif
