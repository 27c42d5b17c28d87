/*
 * The baseline every sluice figure is compared with: how fast this machine writes sequentially
 * with plain write() on the file system that holds the benchmark's data, at a given write size.
 * Also the scratch-folder helpers the benchmarks share (choose, describe, remove).
 */
#ifndef BENCH_DISKBW_H
#define BENCH_DISKBW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct diskbw_result {
	uint64_t bytes;	 /* written (less than asked when the time limit hit first) */
	uint64_t writes; /* write() calls (each followed by fdatasync when asked) */
	double seconds;	 /* first write to last write (or fdatasync) returned */
	double bytes_per_s;
};

/*
 * Write total_bytes into a new file in dir with write() calls of write_bytes each (the last one
 * shorter), with fdatasync after every write when sync_each, stopping early after max_seconds
 * (0: no limit). Dirty pages of earlier runs are flushed (syncfs) before the clock starts; the
 * file is removed afterwards. 0 or -errno.
 */
int diskbw_measure(const char *dir, size_t write_bytes, uint64_t total_bytes, bool sync_each,
		   double max_seconds, struct diskbw_result *ret);

/*
 * The device's sequential write bandwidth: total_bytes in 1 MiB write() calls, then one
 * fdatasync, timed to its return; what the disk sustains, not the page cache. 0 or -errno.
 */
int diskbw_measure_device(const char *dir, uint64_t total_bytes, double max_seconds,
			  struct diskbw_result *ret);

/*
 * Create the scratch folder of one benchmark run: a new folder inside parent (the current
 * folder when NULL), named sluice-bench.XXXXXX. The current folder is used rather than /tmp,
 * which is often tmpfs and would measure memory instead of a disk. out gets the path.
 */
int bench_scratch_create(const char *parent, char *out, size_t out_len);

/* Remove a folder and everything below it. 0 or -errno. */
int bench_rm_rf(const char *path);

/* The file system type of path ("ext4", "xfs", "tmpfs", ... or the magic number in hex). */
void bench_fs_name(const char *path, char *out, size_t out_len);
/* Whether path lives in memory (tmpfs/ramfs): figures from there do not say anything of disks. */
bool bench_fs_is_memory(const char *path);

/* Flush dirty pages of the file system holding path, so one measurement does not pay for the
 * previous one's writeback. */
void bench_syncfs(const char *path);

#endif
