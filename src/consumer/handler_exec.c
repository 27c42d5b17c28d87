/*
 * The exec handler: a child process fed one event line per batch (handler_exec.h).
 *
 * invoke() writes the event and reads the answer in one poll() loop over non-blocking pipes, so
 * a handler that reads slowly, answers early or never reads at all cannot deadlock us: the
 * deadline ends the exchange whatever state it is in. The loop also watches a pidfd of the
 * child (when the kernel has pidfd_open), so a crash is seen at once even if a grandchild still
 * holds the pipes open; without a pidfd it wakes every EXIT_POLL_MS to check.
 *
 * Killing: the child leads its own process group. We always signal the group while the child is
 * still unreaped (a zombie keeps its pid, hence the group id, from being reused), then reap it,
 * so a timeout takes the shell and everything it started with it and we never signal a stranger.
 */
#include "consumer/handler_exec.h"

#include "common/buf.h"
#include "common/clock.h"
#include "consumer/lambda_event.h"

#include <sluice/errors.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* How long destroy() lets the child exit after closing its stdin (handler_exec.h promises 1 s). */
#define DESTROY_GRACE_MS 1000
/* How long to wait for the exit status of a child that closed its pipes mid-batch. */
#define EXIT_GRACE_MS 1000
/* Without a pidfd, how often the exchange loop checks whether the child died. */
#define EXIT_POLL_MS 50
/* The child's stdin pipe is grown to this, so a typical event goes out in one write. */
#define PIPE_BYTES (1 << 20)
/* Read chunk for the child's stdout. */
#define READ_CHUNK 65536

struct sl_exec_handler {
	char *command;
	char *consumer;
	char *stream;
	uint32_t shard_id;

	pid_t pid;		 /* the running child, -1 when none; written under reap_mu */
	pthread_mutex_t reap_mu; /* orders sl_exec_handler_kill with the reaping of the child */
	/* Set (under reap_mu) by sl_exec_handler_kill, never cleared: a kill that lands before the
	 * child is spawned must still keep the batch from reaching a handler. */
	bool killed;
	int in_fd;  /* our end of its stdin, -1 when closed */
	int out_fd; /* our end of its stdout */
	int pid_fd; /* pidfd of the child, -1 if the kernel has none */
	uint32_t starts;

	struct sl_buf event; /* the event line being sent */
	struct sl_buf in;    /* bytes read from the child and not yet consumed */
	uint64_t *seqs;	     /* the batch's sequence numbers, for the response parser */
	size_t seqs_cap;
};

__attribute__((format(printf, 2, 3))) static void fail_msg(struct sluice_handler_result *ret,
							   const char *fmt, ...)
{
	ret->status = SLUICE_HANDLER_ERROR;
	ret->failed_from = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ret->message, sizeof(ret->message), fmt, ap);
	va_end(ap);
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

int sl_exec_handler_create(const char *command, const char *consumer, const char *stream,
			   uint32_t shard_id, struct sl_exec_handler **ret)
{
	if (!command || !command[0] || !consumer || !stream)
		return SLUICE_ERR_INVALID_ARGUMENT;
	struct sl_exec_handler *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->pid = -1;
	pthread_mutex_init(&h->reap_mu, NULL);
	h->in_fd = h->out_fd = h->pid_fd = -1;
	h->shard_id = shard_id;
	sl_buf_init(&h->event);
	sl_buf_init(&h->in);
	h->command = strdup(command);
	h->consumer = strdup(consumer);
	h->stream = strdup(stream);
	if (!h->command || !h->consumer || !h->stream) {
		sl_exec_handler_destroy(h);
		return -ENOMEM;
	}
	*ret = h;
	return 0;
}

pid_t sl_exec_handler_pid(const struct sl_exec_handler *h)
{
	return h->pid;
}

uint32_t sl_exec_handler_starts(const struct sl_exec_handler *h)
{
	return h->starts;
}

/* Whether the child has exited (without reaping it: its pid must stay reserved). */
static bool child_exited(const struct sl_exec_handler *h)
{
	siginfo_t info;
	memset(&info, 0, sizeof(info));
	if (waitid(P_PID, (id_t)h->pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == ECHILD; /* someone else reaped it: gone all the same */
	return info.si_pid != 0;
}

/* Wait up to wait_ms for the child to exit by itself; whether it did. */
static bool wait_exit(const struct sl_exec_handler *h, int wait_ms)
{
	int64_t deadline = sl_mono_ms() + wait_ms;
	for (;;) {
		if (child_exited(h))
			return true;
		int64_t left = deadline - sl_mono_ms();
		if (left <= 0)
			return false;
		if (h->pid_fd >= 0) {
			struct pollfd p = {.fd = h->pid_fd, .events = POLLIN};
			poll(&p, 1, (int)left);
		} else {
			struct timespec ts = {0, (left < 5 ? left : 5) * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
}

/*
 * End the child: close our pipe ends, give it wait_ms to exit by itself, SIGKILL its group (and
 * it), reap it. Returns true with *ret_status if it exited by itself before the kill.
 */
static bool terminate(struct sl_exec_handler *h, int wait_ms, int *ret_status)
{
	close_fd(&h->in_fd);
	if (h->pid < 0) {
		close_fd(&h->out_fd);
		return false;
	}
	/* stdout stays open through the grace period: a child flushing its last words must not
	 * die of SIGPIPE instead of exiting. */
	bool exited = wait_ms > 0 ? wait_exit(h, wait_ms) : child_exited(h);
	/* Stragglers in the group die too, exited child or not; see the top of the file. */
	kill(-h->pid, SIGKILL);
	kill(h->pid, SIGKILL);
	int status = 0;
	pid_t r;
	pthread_mutex_lock(&h->reap_mu); /* the pid stays ours until reaped */
	do {
		r = waitpid(h->pid, &status, 0);
	} while (r < 0 && errno == EINTR);
	h->pid = -1;
	pthread_mutex_unlock(&h->reap_mu);
	if (r < 0)
		exited = false; /* ECHILD: reaped elsewhere (SIGCHLD ignored?), status unknown */
	close_fd(&h->out_fd);
	close_fd(&h->pid_fd);
	sl_buf_reset(&h->in);
	if (exited && ret_status)
		*ret_status = status;
	return exited;
}

/* Move fd above 0-2, so that the child's dup2 onto 0 and 1 cannot clobber the other pipe. */
static int fd_above_stdio(int *fd)
{
	if (*fd > 2)
		return 0;
	int n = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
	if (n < 0)
		return -errno;
	close(*fd);
	*fd = n;
	return 0;
}

static void free_env(char **env, size_t ours)
{
	if (!env)
		return;
	for (size_t i = ours; i < ours + 4; i++)
		free(env[i]);
	free(env);
}

static bool env_is_ours(const char *entry)
{
	static const char *const names[] = {
	    "SLUICE_CONSUMER=", "SLUICE_STREAM=", "SLUICE_SHARD=", "SLUICE_TIMEOUT_MS="};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strncmp(entry, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

/*
 * environ with our four variables replacing any inherited ones. Our own strings are
 * env[*ret_ours .. *ret_ours + 3]; free with free_env().
 */
static char **build_env(const struct sl_exec_handler *h, int timeout_ms, size_t *ret_ours)
{
	size_t n = 0;
	for (char **e = environ; e && *e; e++)
		n++;
	char **env = calloc(n + 5, sizeof(*env));
	if (!env)
		return NULL;
	size_t k = 0;
	for (char **e = environ; e && *e; e++)
		if (!env_is_ours(*e))
			env[k++] = *e;
	*ret_ours = k;
	if (asprintf(&env[k], "SLUICE_CONSUMER=%s", h->consumer) < 0)
		env[k] = NULL;
	if (asprintf(&env[k + 1], "SLUICE_STREAM=%s", h->stream) < 0)
		env[k + 1] = NULL;
	if (asprintf(&env[k + 2], "SLUICE_SHARD=%" PRIu32, h->shard_id) < 0)
		env[k + 2] = NULL;
	if (asprintf(&env[k + 3], "SLUICE_TIMEOUT_MS=%d", timeout_ms > 0 ? timeout_ms : 0) < 0)
		env[k + 3] = NULL;
	env[k + 4] = NULL;
	for (size_t i = k; i < k + 4; i++) {
		if (!env[i]) {
			free_env(env, k);
			return NULL;
		}
	}
	return env;
}

static bool was_killed(struct sl_exec_handler *h)
{
	pthread_mutex_lock(&h->reap_mu);
	bool killed = h->killed;
	pthread_mutex_unlock(&h->reap_mu);
	return killed;
}

static int spawn(struct sl_exec_handler *h, int timeout_ms)
{
	int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	bool fa_ok = false, attr_ok = false;
	size_t env_ours = 0;
	char **env = NULL;
	int r;

	if (pipe2(in_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0) {
		r = -errno;
		goto out;
	}
	for (int i = 0; i < 2; i++) {
		if ((r = fd_above_stdio(&in_pipe[i])) < 0 || (r = fd_above_stdio(&out_pipe[i])) < 0)
			goto out;
	}
	env = build_env(h, timeout_ms, &env_ours);
	if (!env) {
		r = -ENOMEM;
		goto out;
	}

	if ((r = -posix_spawn_file_actions_init(&fa)) < 0)
		goto out;
	fa_ok = true;
	if ((r = -posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0)) < 0 ||
	    (r = -posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1)) < 0 ||
	    (r = -posix_spawn_file_actions_addclosefrom_np(&fa, 3)) < 0)
		goto out;

	if ((r = -posix_spawnattr_init(&attr)) < 0)
		goto out;
	attr_ok = true;
	sigset_t mask, defaults;
	sigemptyset(&mask);
	sigemptyset(&defaults);
	/* sluiced ignores SIGPIPE and may handle others; ignored dispositions survive exec. */
	static const int reset[] = {SIGPIPE, SIGINT,  SIGTERM, SIGHUP, SIGQUIT,
				    SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM};
	for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
		sigaddset(&defaults, reset[i]);
	if ((r = -posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						      POSIX_SPAWN_SETSIGDEF)) < 0 ||
	    (r = -posix_spawnattr_setpgroup(&attr, 0)) < 0 ||
	    (r = -posix_spawnattr_setsigmask(&attr, &mask)) < 0 ||
	    (r = -posix_spawnattr_setsigdefault(&attr, &defaults)) < 0)
		goto out;

	char *const argv[] = {"sh", "-c", h->command, NULL};
	pid_t pid;
	if ((r = -posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, env)) < 0)
		goto out;

	pthread_mutex_lock(&h->reap_mu);
	h->pid = pid;
	bool killed = h->killed;
	if (killed) { /* killed while we spawned: it dies before it can read an event */
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	pthread_mutex_unlock(&h->reap_mu);
	h->starts++;
	h->in_fd = in_pipe[1];
	h->out_fd = out_pipe[0];
	in_pipe[1] = out_pipe[0] = -1;
	fcntl(h->in_fd, F_SETFL, fcntl(h->in_fd, F_GETFL) | O_NONBLOCK);
	fcntl(h->out_fd, F_SETFL, fcntl(h->out_fd, F_GETFL) | O_NONBLOCK);
	fcntl(h->in_fd, F_SETPIPE_SZ, PIPE_BYTES); /* best effort: fewer wakeups per event */
	h->pid_fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (h->pid_fd >= 0)
		fcntl(h->pid_fd, F_SETFD, FD_CLOEXEC);
	sl_buf_reset(&h->in);
	r = 0;
	if (killed) {
		terminate(h, 0, NULL);
		r = -ECANCELED;
	}
out:
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_ok)
		posix_spawnattr_destroy(&attr);
	free_env(env, env_ours);
	for (int i = 0; i < 2; i++) {
		close_fd(&in_pipe[i]);
		close_fd(&out_pipe[i]);
	}
	return r;
}

/*
 * Whether the running child can take the next event: still alive, and nothing on its stdout
 * (a leftover line, stray output or EOF means it is out of step with us).
 */
static bool ready(struct sl_exec_handler *h)
{
	if (h->in.len > 0 || child_exited(h))
		return false;
	struct pollfd p = {.fd = h->out_fd, .events = POLLIN};
	return poll(&p, 1, 0) == 0;
}

/* SIGPIPE blocked on this thread while we write to a child that may be gone. */
struct pipe_guard {
	sigset_t old;
	bool was_pending;
	bool epipe;
};

static void sigpipe_block(struct pipe_guard *g)
{
	sigset_t set, pending;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
	sigemptyset(&pending);
	sigpending(&pending);
	g->was_pending = sigismember(&pending, SIGPIPE);
	g->epipe = false;
}

static void sigpipe_restore(struct pipe_guard *g)
{
	if (g->epipe && !g->was_pending) {
		/* Swallow the SIGPIPE our write raised, so unblocking does not deliver it. */
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGPIPE);
		struct timespec zero = {0, 0};
		while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* The child stopped talking mid-batch (EOF, EPIPE, death): report how it ended. */
static int report_gone(struct sl_exec_handler *h, struct sluice_handler_result *ret)
{
	int status = 0;
	if (!terminate(h, EXIT_GRACE_MS, &status)) {
		fail_msg(ret, "handler closed its stdin or stdout mid-batch and did not exit");
	} else if (WIFSIGNALED(status)) {
		fail_msg(ret, "handler killed by signal %d", WTERMSIG(status));
	} else {
		fail_msg(ret, "handler exited with status %d", WEXITSTATUS(status));
	}
	return SLUICE_ERR_INTERNAL;
}

/* Read what the child wrote. 1 on EOF, 0 otherwise (EAGAIN), or a negative error. */
static int read_out(struct sl_exec_handler *h)
{
	for (;;) {
		int r = sl_buf_reserve(&h->in, READ_CHUNK);
		if (r < 0)
			return r;
		ssize_t n = read(h->out_fd, h->in.data + h->in.len, READ_CHUNK);
		if (n > 0) {
			h->in.len += (size_t)n;
			/* Stop at the limit; the caller checks the line length. */
			if (h->in.len > SL_LAMBDA_RESPONSE_MAX)
				return 0;
			continue;
		}
		if (n == 0)
			return 1;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return 0;
		return -errno;
	}
}

/*
 * Send h->event and read one line back. 0 with *ret_line_len when a line (without its '\n') is
 * at the start of h->in; otherwise the child has been terminated and *ret says why.
 */
static int exchange(struct sl_exec_handler *h, int64_t deadline_ms, int timeout_ms,
		    struct pipe_guard *guard, size_t *ret_line_len,
		    struct sluice_handler_result *ret)
{
	size_t off = 0, total = h->event.len;
	for (;;) {
		uint8_t *nl = h->in.len ? memchr(h->in.data, '\n', h->in.len) : NULL;
		if (nl) {
			if (off < total) {
				terminate(h, 0, NULL);
				fail_msg(ret, "handler answered before reading the whole event");
				return SLUICE_ERR_PROTOCOL;
			}
			*ret_line_len = (size_t)(nl - h->in.data);
			return 0;
		}
		if (h->in.len > SL_LAMBDA_RESPONSE_MAX) {
			terminate(h, 0, NULL);
			fail_msg(ret, "handler's response line is over %u bytes",
				 SL_LAMBDA_RESPONSE_MAX);
			return SLUICE_ERR_PROTOCOL;
		}

		int wait_ms = -1;
		if (deadline_ms != INT64_MAX) {
			int64_t left = deadline_ms - sl_mono_ms();
			if (left <= 0) {
				terminate(h, 0, NULL);
				fail_msg(ret, "handler timed out after %d ms", timeout_ms);
				return SLUICE_ERR_TIMEOUT;
			}
			wait_ms = left > INT_MAX ? INT_MAX : (int)left;
		}
		if (h->pid_fd < 0 && (wait_ms < 0 || wait_ms > EXIT_POLL_MS))
			wait_ms = EXIT_POLL_MS;

		struct pollfd fds[3];
		int nfds = 0, in_i = -1, pid_i = -1;
		if (off < total) {
			in_i = nfds;
			fds[nfds++] = (struct pollfd){.fd = h->in_fd, .events = POLLOUT};
		}
		int out_i = nfds;
		fds[nfds++] = (struct pollfd){.fd = h->out_fd, .events = POLLIN};
		if (h->pid_fd >= 0) {
			pid_i = nfds;
			fds[nfds++] = (struct pollfd){.fd = h->pid_fd, .events = POLLIN};
		}
		int n = poll(fds, (nfds_t)nfds, wait_ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int err = -errno;
			terminate(h, 0, NULL);
			fail_msg(ret, "poll on the handler's pipes failed: %s", strerror(-err));
			return err;
		}

		if (in_i >= 0 && fds[in_i].revents) {
			while (off < total) {
				ssize_t w = write(h->in_fd, h->event.data + off, total - off);
				if (w > 0) {
					off += (size_t)w;
				} else if (w < 0 && errno == EINTR) {
					continue;
				} else if (w < 0 && errno == EAGAIN) {
					break;
				} else {
					guard->epipe = w < 0 && errno == EPIPE;
					return report_gone(h, ret);
				}
			}
		}
		if (fds[out_i].revents) {
			int r = read_out(h);
			if (r < 0) {
				terminate(h, 0, NULL);
				fail_msg(ret, "reading the handler's stdout failed: %s",
					 strerror(-r));
				return r;
			}
			if (r == 1 && !memchr(h->in.data, '\n', h->in.len))
				return report_gone(h, ret);
		}
		bool died = pid_i >= 0 ? fds[pid_i].revents != 0 : child_exited(h);
		if (died) {
			/* The answer may have been written just before the exit: take it first. */
			int r = read_out(h);
			if (r < 0 || !h->in.len || !memchr(h->in.data, '\n', h->in.len))
				return report_gone(h, ret);
		}
	}
}

int sl_exec_handler_invoke(struct sl_exec_handler *h, const struct sluice_handler_batch *batch,
			   int timeout_ms, struct sluice_handler_result *ret)
{
	int64_t deadline_ms = timeout_ms > 0 ? sl_mono_ms() + timeout_ms : INT64_MAX;
	ret->status = SLUICE_HANDLER_OK;
	ret->failed_from = 0;
	ret->message[0] = '\0';

	if (batch->count > h->seqs_cap) {
		uint64_t *s = realloc(h->seqs, batch->count * sizeof(*s));
		if (!s) {
			fail_msg(ret, "out of memory");
			return -ENOMEM;
		}
		h->seqs = s;
		h->seqs_cap = batch->count;
	}
	for (size_t i = 0; i < batch->count; i++)
		h->seqs[i] = batch->records[i].seq;
	sl_buf_reset(&h->event);
	int r = sl_lambda_event_encode(batch, &h->event);
	if (r < 0) {
		fail_msg(ret, "out of memory encoding the event");
		return r;
	}

	struct pipe_guard guard;
	sigpipe_block(&guard);
	if (h->pid >= 0 && (was_killed(h) || !ready(h)))
		terminate(h, 0, NULL); /* out of step or gone between batches: a fresh one */
	if (h->pid < 0) {
		r = was_killed(h) ? -ECANCELED : spawn(h, timeout_ms);
		if (r == -ECANCELED) {
			fail_msg(ret, "handler stopped (sl_exec_handler_kill)");
			goto out;
		}
		if (r < 0) {
			fail_msg(ret, "cannot start handler: %s", strerror(-r));
			goto out;
		}
	}

	size_t line_len = 0;
	r = exchange(h, deadline_ms, timeout_ms, &guard, &line_len, ret);
	if (r < 0)
		goto out;
	r = sl_lambda_response_parse((const char *)h->in.data, line_len, h->seqs, batch->count,
				     ret);
	if (r < 0) {
		char why[sizeof(ret->message)];
		memcpy(why, ret->message, sizeof(why));
		fail_msg(ret, "bad handler response: %s", why);
		terminate(h, 0, NULL);
		goto out;
	}
	/* Bytes after the line stay in h->in: the next invoke sees them and restarts the child. */
	sl_buf_consume(&h->in, line_len + 1);
out:
	sigpipe_restore(&guard);
	return r;
}

void sl_exec_handler_destroy(struct sl_exec_handler *h)
{
	if (!h)
		return;
	close_fd(&h->in_fd); /* EOF on stdin: the handler's cue to finish and exit */
	terminate(h, DESTROY_GRACE_MS, NULL);
	sl_buf_finish(&h->event);
	sl_buf_finish(&h->in);
	free(h->seqs);
	free(h->command);
	free(h->consumer);
	free(h->stream);
	pthread_mutex_destroy(&h->reap_mu);
	free(h);
}

void sl_exec_handler_kill(struct sl_exec_handler *h)
{
	pthread_mutex_lock(&h->reap_mu);
	h->killed = true;
	if (h->pid > 0) {
		kill(-h->pid, SIGKILL);
		kill(h->pid, SIGKILL);
	}
	pthread_mutex_unlock(&h->reap_mu);
}
