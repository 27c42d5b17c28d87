/*
 * A fault-injecting, counting, recording I/O table for the shard log tests (installed through the
 * seam in src/log/io.h). Faults are deterministic: "let `skip` calls through, then fire", once or
 * until cleared.
 *
 * Recording (power-loss simulation, tests/unit/log/test_power_loss.c): between
 * fault_io_record_start() and fault_io_record_stop() every operation that changes what a disk
 * would hold is appended to a journal, in call order: file creations, writes (file, offset and the
 * bytes really written), ftruncate, unlink, rename, and the syncs that make them durable
 * (fdatasync/fsync of a file, fsync of a folder). fault_io_crash_build() then materialises, in
 * another folder, one disk state a power loss at a given point of the journal may leave behind.
 */
#ifndef SL_TEST_FAULT_IO_H
#define SL_TEST_FAULT_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
	uint64_t pread_bytes; /* bytes the preads returned */
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
/* Faults fired since the process started (never reset); also printed at exit when non-zero. */
unsigned long fault_io_faults_total(void);

/* ---- recording ---- */

enum rec_kind {
	REC_CREATE,   /* path now names a new, empty file (inode) */
	REC_UNLINK,   /* path no longer names a file */
	REC_RENAME,   /* path's file is now named path2 (replacing what path2 named) */
	REC_WRITE,    /* len bytes at off of inode */
	REC_TRUNCATE, /* inode's length set to off */
	REC_SYNC,     /* fdatasync/fsync of inode returned 0: its data and size are durable */
	REC_DIR_SYNC, /* fsync of folder path returned 0: its names are durable */
};

struct rec_op {
	enum rec_kind kind;
	int inode;	/* CREATE, WRITE, TRUNCATE, SYNC: the file, numbered from 0 */
	char *path;	/* CREATE, UNLINK, RENAME (from), DIR_SYNC (the folder) */
	char *path2;	/* RENAME (to) */
	uint64_t off;	/* WRITE: offset; TRUNCATE: the new length */
	uint8_t *bytes; /* WRITE */
	size_t len;	/* WRITE */
};

/*
 * Start recording into an empty journal (the previous one is freed). Folders are not recorded:
 * every folder the workload uses must exist, and every file must be created, after this call.
 * The table must be installed.
 */
void fault_io_record_start(void);
/* Stop recording; the journal stays readable until the next start or fault_io_journal_free(). */
void fault_io_record_stop(void);
/* Operations recorded so far: a crash point for fault_io_crash_build(). */
size_t fault_io_journal_len(void);
/* The journal (borrowed; valid until the next start or free). */
const struct rec_op *fault_io_journal(size_t *ret_len);
void fault_io_journal_free(void);

/* What fault_io_crash_build() did to the operations after the last sync that covers them. */
struct crash_stats {
	unsigned ops;	     /* operations before the crash point */
	unsigned unsynced;   /* of those, not covered by a later sync: their fate is drawn */
	unsigned lost;	     /* unsynced operations dropped */
	unsigned torn;	     /* unsynced writes cut short (the rest missing or zeros) */
	unsigned garbage;    /* unsynced writes that left random bytes of the right length */
	unsigned names_lost; /* unsynced creations, unlinks or renames dropped */
	unsigned files;	     /* files written to to_dir */
};

/*
 * Build in to_dir (an existing, empty folder) the state of from_dir's files after a power loss
 * just before journal operation crash_at (the operations [0, crash_at) were issued):
 *   - a write or truncate followed (before crash_at) by a sync of its file is on disk as issued;
 *     a creation, unlink or rename followed by an fsync of its folder is too;
 *   - every other operation's fate is drawn from seed: either in order (a random prefix of them
 *     survives, the first one lost possibly torn) or independently (each survives, is lost, or,
 *     for a write, is torn: a prefix of its bytes with the rest missing or zeros, or is garbage:
 *     random bytes of the right length). A write past the end of a file whose earlier write was
 *     lost leaves zeros in between, as a real file system does.
 * A file whose name did not survive is missing, whatever its data. 0 or -errno.
 */
int fault_io_crash_build(size_t crash_at, uint64_t seed, const char *from_dir, const char *to_dir,
			 struct crash_stats *ret_stats);

#endif
