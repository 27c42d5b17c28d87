/*
 * The sluiced that `produce` and `read` start for themselves: found next to this executable in
 * the build tree (../src/server/sluiced) or else in PATH, run on 127.0.0.1 with an ephemeral
 * port, its stderr kept in a file of the scratch folder, and always stopped by PID.
 */
#include "bench.h"

#include "common/latency_hist.h"

#include <curl/curl.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long sluiced may take to print `listening` (it recovers existing data first; ours is new). */
#define SERVER_START_TIMEOUT_MS 15000
/* How long a drain after SIGTERM may take before SIGKILL. */
#define SERVER_STOP_TIMEOUT_MS 30000

int bench_exe_sibling(const char *rel, char *out, size_t out_len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -errno;
	self[n] = 0;
	char *slash = strrchr(self, '/');
	if (!slash)
		return -ENOENT;
	*slash = 0;
	if (snprintf(out, out_len, "%s/%s", self, rel) >= (int)out_len)
		return -ENAMETOOLONG;
	return access(out, R_OK) == 0 ? 0 : -errno;
}

/* The build tree's sluiced when we run from the build tree, else NULL (use PATH). */
static const char *find_sluiced(char *buf, size_t len)
{
	return bench_exe_sibling("../src/server/sluiced", buf, len) == 0 && access(buf, X_OK) == 0
		   ? buf
		   : NULL;
}

/* The last non-empty line of sluiced's stderr, for an error message. */
static void last_line(const char *path, char *out, size_t out_len)
{
	out[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		size_t n = strcspn(line, "\n");
		line[n] = 0;
		if (n) {
			if (n >= out_len)
				n = out_len - 1;
			memcpy(out, line, n);
			out[n] = 0;
		}
	}
	fclose(f);
}

/* sluiced logs "http (/healthz, /metrics) on HOST:PORT" before its `listening` line. */
static void find_http_addr(struct bench_server *s)
{
	static const char tag[] = "http (/healthz, /metrics) on ";
	FILE *f = fopen(s->log_path, "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		const char *at = strstr(line, tag);
		if (at && sscanf(at + strlen(tag), "%79[0-9.:]", s->http_addr) != 1)
			s->http_addr[0] = 0;
	}
	fclose(f);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int bench_server_start(const char *scratch, enum bench_fsync mode, struct bench_server *s)
{
	return bench_server_start_args(scratch, mode, NULL, s);
}

/* Flags bench_server_start_args passes on, at most (each flag and value count as one). */
#define EXTRA_ARGS_MAX 16

int bench_server_start_args(const char *scratch, enum bench_fsync mode, const char *const *extra,
			    struct bench_server *s)
{
	memset(s, 0, sizeof(*s));
	const char *mname = bench_fsync_name(mode);
	snprintf(s->data_dir, sizeof(s->data_dir), "%s/sluiced-%s", scratch, mname);
	snprintf(s->log_path, sizeof(s->log_path), "%s/sluiced-%s.log", scratch, mname);
	if (mkdir(s->data_dir, 0755) < 0 && errno != EEXIST)
		return bench_fail("cannot create %s: %s", s->data_dir, strerror(errno));
	char pathbuf[PATH_MAX];
	const char *path = find_sluiced(pathbuf, sizeof(pathbuf));
	int logfd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (logfd < 0)
		return bench_fail("cannot create %s: %s", s->log_path, strerror(errno));
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		close(logfd);
		return bench_fail("pipe: %s", strerror(errno));
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		close(logfd);
		close(pfd[0]);
		close(pfd[1]);
		return bench_fail("fork: %s", strerror(errno));
	}
	if (pid == 0) {
		/* If the benchmark dies without cleaning up (kill -9), sluiced goes too. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(pfd[1], STDOUT_FILENO) < 0 || dup2(logfd, STDERR_FILENO) < 0)
			_exit(127);
		char *args[10 + EXTRA_ARGS_MAX + 1] = {
		    (char *)(path ? path : "sluiced"),
		    "--data-dir",
		    s->data_dir,
		    "--listen",
		    "127.0.0.1:0",
		    "--http-listen",
		    "off",
		    "--fsync",
		    (char *)mname,
		};
		for (size_t i = 0; extra && extra[i] && i < EXTRA_ARGS_MAX; i++)
			args[9 + i] = (char *)extra[i];
		if (path)
			execv(path, args);
		else
			execvp("sluiced", args);
		dprintf(STDERR_FILENO, "cannot run %s: %s\n", path ? path : "sluiced (PATH)",
			strerror(errno));
		_exit(127);
	}
	s->pid = pid;
	bench_child_pid = pid;
	close(pfd[1]);
	close(logfd);

	/* Wait for "listening 127.0.0.1:PORT\n". */
	char line[256];
	size_t len = 0;
	int64_t deadline = now_ms() + SERVER_START_TIMEOUT_MS;
	int ret = -1;
	for (;;) {
		char *nl = memchr(line, '\n', len);
		if (nl) {
			*nl = 0;
			unsigned port;
			char host[48];
			if (sscanf(line, "listening %47[^:]:%u", host, &port) == 2 && port > 0 &&
			    port < 65536) {
				snprintf(s->addr, sizeof(s->addr), "%s:%u", host, port);
				ret = 0;
			}
			break;
		}
		int64_t left = deadline - now_ms();
		if (left <= 0 || len >= sizeof(line) - 1 || bench_stop)
			break;
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		ssize_t n = read(pfd[0], line + len, sizeof(line) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(pfd[0]);
	if (ret == 0)
		find_http_addr(s);
	if (ret < 0) {
		char why[256];
		last_line(s->log_path, why, sizeof(why));
		bench_server_stop(s);
		return bench_fail("sluiced (%s) did not start: %s", path ? path : "from PATH",
				  why[0] ? why : "no `listening` line");
	}
	return 0;
}

int bench_server_stop(struct bench_server *s)
{
	if (s->pid <= 0)
		return 0;
	kill(s->pid, SIGTERM);
	int status = 0;
	int64_t deadline = now_ms() + SERVER_STOP_TIMEOUT_MS;
	for (;;) {
		pid_t w = waitpid(s->pid, &status, WNOHANG);
		if (w == s->pid || (w < 0 && errno != EINTR))
			break;
		if (now_ms() >= deadline) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &status, 0);
			status = -1;
			break;
		}
		usleep(10000);
	}
	bench_child_pid = 0;
	s->pid = 0;
	return status == 0 ? 0 : -1;
}

/* ---- /metrics ---- */

/* The page, bounded: /metrics of a benchmark's sluiced is a few KiB per stream. */
#define METRICS_BYTES_MAX (8u << 20)

struct page {
	char *data;
	size_t len;
};

static size_t page_write(char *p, size_t size, size_t n, void *ctx)
{
	struct page *pg = ctx;
	size_t add = size * n;
	if (pg->len + add > METRICS_BYTES_MAX)
		return 0;
	char *d = realloc(pg->data, pg->len + add + 1);
	if (!d)
		return 0;
	memcpy(d + pg->len, p, add);
	pg->data = d;
	pg->len += add;
	d[pg->len] = 0;
	return add;
}

int bench_server_histogram(const struct bench_server *s, const char *name, uint64_t *counts)
{
	if (!s->http_addr[0]) {
		fprintf(stderr, "sluiced has no HTTP port to scrape %s from\n", name);
		return -1;
	}
	char url[128];
	snprintf(url, sizeof(url), "http://%s/metrics", s->http_addr);
	CURL *c = curl_easy_init();
	if (!c) {
		fprintf(stderr, "curl_easy_init failed\n");
		return -1;
	}
	struct page pg = {0};
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, page_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &pg);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK || status != 200 || !pg.data) {
		fprintf(stderr, "GET %s: %s (HTTP %ld)\n", url,
			rc != CURLE_OK ? curl_easy_strerror(rc) : "no page", status);
		free(pg.data);
		return -1;
	}
	/* The _bucket lines come in le order: SL_LATENCY_BOUNDS finite ones, then +Inf. */
	char prefix[160];
	snprintf(prefix, sizeof(prefix), "%s_bucket{le=\"", name);
	size_t found = 0;
	uint64_t prev = 0;
	for (char *line = pg.data; line && *line && found <= SL_LATENCY_BOUNDS;) {
		char *nl = strchr(line, '\n');
		if (strncmp(line, prefix, strlen(prefix)) == 0) {
			const char *v = strstr(line, "} ");
			unsigned long long cum;
			if (!v || sscanf(v + 2, "%llu", &cum) != 1 || cum < prev)
				break;
			counts[found++] = cum - prev;
			prev = cum;
		}
		line = nl ? nl + 1 : NULL;
	}
	free(pg.data);
	if (found != SL_LATENCY_BOUNDS + 1) {
		fprintf(stderr, "GET %s: histogram %s has %zu of %d buckets\n", url, name, found,
			SL_LATENCY_BOUNDS + 1);
		return -1;
	}
	return 0;
}
