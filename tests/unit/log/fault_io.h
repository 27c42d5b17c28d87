/*
 * A fault-injecting, counting I/O table for the shard log tests (installed through the seam in
 * src/log/io.h). Faults are deterministic: "let `skip` calls through, then fire", once or until
 * cleared.
 */
#ifndef SL_TEST_FAULT_IO_H
#define SL_TEST_FAULT_IO_H

#include <stdbool.h>
#include <stddef.h>

enum fault_kind {
	FAULT_NONE = 0,
	FAULT_ERROR, /* return -err */
	FAULT_SHORT, /* write only short_bytes (really), return that count; then, if err is set,
		      * every later call fails with err (a disk filling up) until cleared */
};

struct fault_rule {
	enum fault_kind kind;
	int skip;	    /* calls to let through before firing */
	int err;	    /* for FAULT_ERROR, e.g. -ENOSPC */
	size_t short_bytes; /* for FAULT_SHORT */
	bool sticky;	    /* keep firing until cleared */
	int fired;	    /* how many times it fired */
};

struct fault_io {
	struct fault_rule pwritev;
	struct fault_rule fdatasync;
	struct fault_rule ftruncate;
	int pwritev_calls;
	int fdatasync_calls;
	int pread_calls;
	int open_calls;
};

/* Install the table (all rules cleared, counters zeroed) and return its state. */
struct fault_io *fault_io_install(void);
/* Restore the real table. */
void fault_io_uninstall(void);
/* Zero the counters, clear the rules and the per-file read counts. */
void fault_io_reset(void);
/* preads done on files whose path ends with suffix (since the last reset). */
int fault_io_preads_on(const char *suffix);
/* Number of distinct files read from since the last reset. */
int fault_io_files_read(void);

#endif
