/*
 * The fault shim of sluiced-faults: a test-only build of sluiced (compiled with
 * -DSL_FAULT_INJECTION, never shipped) whose log I/O and request-path allocations fail on demand,
 * so the integration tests can check what clients see when the disk fills, an fsync fails or
 * memory runs out.
 *
 * Rules, separated by commas, newlines or spaces ('#' starts a comment to the end of the line):
 *
 *     OP:ERR[:after=N][:count=N][:path=SUBSTR][:site=NAME]
 *
 *   OP     write (pwritev), fsync (fdatasync and directory fsync), read (pread), open, alloc
 *   ERR    ENOSPC, EIO, ENOMEM, EDQUOT, EROFS, EACCES, EMFILE, EAGAIN, or a number
 *   after  let the first N matching calls through (default 0)
 *   count  fail at most N calls, then let everything through (default: no limit)
 *   path   I/O ops only: match files whose path contains SUBSTR (fd ops resolve the fd's path
 *          through /proc/self/fd), e.g. path=streams/orders/ for one stream
 *   site   alloc only: the allocation site, e.g. site=produce (the PRODUCE request block)
 *
 * e.g. SLUICE_FAULTS='write:ENOSPC:after=200:count=50,fsync:EIO:after=10,
 *                     alloc:ENOMEM:site=produce:count=3'
 *
 * Sources: SLUICE_FAULTS holds the rules at start. SLUICE_FAULTS_FILE names a file that, once it
 * exists, replaces the whole rule set every time it changes (inode, size or mtime; checked at
 * most every 100 ms, on the next hooked call), so a test can turn "disk full" on and off while the
 * server runs: write the file through a temporary name + rename, wait > 100 ms, and the next
 * call sees the new rules (their counters start at 0). An empty file, or removing it, clears every
 * rule. A file that does not parse keeps the previous rules and logs why.
 *
 * Every reload and the first firing of each rule are logged ("faults: ..."), with how many times
 * the replaced rules fired, so a test can tell from the log what was injected.
 *
 * Thread-safe (one mutex: the shim is for tests, its cost does not matter).
 */
#ifndef SL_SERVER_FAULTS_H
#define SL_SERVER_FAULTS_H

#include <stdbool.h>

/*
 * Read SLUICE_FAULTS / SLUICE_FAULTS_FILE and install the faulting table into the log's I/O seam
 * (sl_log_io_set). Call once, before any log is opened and before threads start. Returns 0, or
 * -EINVAL after printing one line to stderr when SLUICE_FAULTS does not parse.
 */
int sl_fault_init(void);

/* Whether the allocation at `site` should fail now (consumes one firing of a matching rule). */
bool sl_fault_alloc(const char *site);

/*
 * For an fdatasync the server runs outside the seam (io_uring): res is the real result; returns
 * it, or -ERR when an `fsync` rule fires for fd. Not wired yet (see the fsync note in
 * tests/integration/test_faults.py).
 */
int sl_fault_sync_result(int fd, int res);

#endif
