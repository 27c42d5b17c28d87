/*
 * struct sl_exec_handler: the `--handler exec:COMMAND` kind. One long-lived child process per
 * consumer worker, `/bin/sh -c COMMAND`, that reads one event line per batch on its stdin and
 * answers one response line on its stdout (lambda_event.h has both formats). Its stderr is
 * sluiced's, so whatever the handler logs shows up in the server's log.
 *
 * The child runs in a process group of its own (so that a timeout kills the shell and whatever it
 * started), with default signal dispositions and an empty signal mask, fds 0 and 1 on the pipes,
 * fd 2 inherited and every other fd closed, and in its environment:
 *   SLUICE_CONSUMER, SLUICE_STREAM, SLUICE_SHARD   who it works for
 *   SLUICE_TIMEOUT_MS                              the invoke timeout it was started under
 *
 * Life cycle: the process starts on the first invoke, and again on the next invoke after any
 * failure (crash, timeout, garbage); restarting with backoff is the caller's business. Between
 * batches, a process that exited, closed its stdout or wrote anything out of turn is replaced
 * before the next event is sent, without failing that batch.
 *
 * Threads: an sl_exec_handler is used by one thread at a time. invoke blocks that thread (poll)
 * for up to timeout_ms; run it on a runner thread, never on an event loop. SIGPIPE is blocked
 * on the calling thread while invoke writes, so a handler that exits mid-batch is reported as
 * exited whatever the process' SIGPIPE disposition. The process must not set SIGCHLD to SIG_IGN
 * (children would be reaped by the kernel and exit statuses lost).
 */
#ifndef SL_CONSUMER_HANDLER_EXEC_H
#define SL_CONSUMER_HANDLER_EXEC_H

#include <sluice/handler.h>

#include <stdint.h>
#include <sys/types.h>

struct sl_exec_handler;

/*
 * Allocate a handler for COMMAND (run with /bin/sh -c) working for consumer/stream/shard_id; the
 * strings are copied. 0, -ENOMEM, or SLUICE_ERR_INVALID_ARGUMENT for an empty command.
 */
int sl_exec_handler_create(const char *command, const char *consumer, const char *stream,
			   uint32_t shard_id, struct sl_exec_handler **ret);

/*
 * Deliver batch (records borrowed for the call only) and wait for the answer, at most
 * timeout_ms (<= 0: no limit) counted from the call, process start-up included.
 *
 * Returns 0 when the handler answered: *ret is OK, FAILED_FROM (failed_from is an index into
 * batch->records) or ERROR (the handler's {"error": ...}); the process stays up. Otherwise a
 * negative code, *ret is SLUICE_HANDLER_ERROR with a message, and the process is gone (killed
 * with its process group and reaped; the next invoke starts a new one):
 *   SLUICE_ERR_INTERNAL  it exited ("handler exited with status N", "handler killed by signal N")
 *                        or could not be started (then -errno from pipe/posix_spawn instead)
 *   SLUICE_ERR_TIMEOUT   no answer within timeout_ms
 *   SLUICE_ERR_PROTOCOL  the answer was not a valid response line (lambda_event.h)
 *   -ECANCELED           sl_exec_handler_kill was called: no process is started any more
 *   -ENOMEM
 */
int sl_exec_handler_invoke(struct sl_exec_handler *h, const struct sluice_handler_batch *batch,
			   int timeout_ms, struct sluice_handler_result *ret);

/* The running child's pid (also its process group id), or -1 when none runs. For metrics and
 * tests. */
pid_t sl_exec_handler_pid(const struct sl_exec_handler *h);

/*
 * From any thread, while another may be inside sl_exec_handler_invoke: SIGKILL the running child
 * and its process group (the call then returns at once with an error). For a consumer deleted,
 * reset or a server stopping while its handler runs: the child must not outlive them, nor see
 * the batch it was given after that. Final: a kill that comes before the child was started
 * (or between two children) keeps every later invoke from starting one (-ECANCELED), so the
 * batch in hand never reaches a handler process.
 */
void sl_exec_handler_kill(struct sl_exec_handler *h);

/* How many processes this handler has started so far. */
uint32_t sl_exec_handler_starts(const struct sl_exec_handler *h);

/*
 * Close the child's stdin (its cue to exit), wait up to 1 s for it, then SIGKILL its process
 * group and reap it. Accepts NULL.
 */
void sl_exec_handler_destroy(struct sl_exec_handler *h);

#endif
