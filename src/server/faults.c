/* The fault shim of sluiced-faults (test builds only). Rules and sources: faults.h. */
#ifndef SL_FAULT_INJECTION
#error "faults.c is only built into sluiced-faults (-DSL_FAULT_INJECTION)"
#endif

#include "server/faults.h"

#include "common/logging.h"
#include "log/io.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Enough for any test; a longer spec is refused rather than cut. */
#define RULES_MAX 32
#define MATCH_LEN_MAX 128
#define SPEC_BYTES_MAX 8192
#define RELOAD_CHECK_MS 100

enum op { OP_WRITE, OP_FSYNC, OP_READ, OP_OPEN, OP_ALLOC, OP_COUNT };

static const char *const op_names[OP_COUNT] = {"write", "fsync", "read", "open", "alloc"};

static const struct {
	const char *name;
	int err;
} errnos[] = {
    {"ENOSPC", ENOSPC}, {"EIO", EIO},	    {"ENOMEM", ENOMEM}, {"EDQUOT", EDQUOT},
    {"EROFS", EROFS},	{"EACCES", EACCES}, {"EMFILE", EMFILE}, {"EAGAIN", EAGAIN},
};

struct rule {
	enum op op;
	int err; /* positive errno */
	uint64_t after;
	uint64_t count;		   /* UINT64_MAX: no limit */
	char match[MATCH_LEN_MAX]; /* path substring (I/O) or site (alloc); "" = any */
	uint64_t seen;		   /* matching calls so far */
	uint64_t fired;
};

struct rule_set {
	struct rule rules[RULES_MAX];
	int n;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rule_set active;
static const char *file_path; /* SLUICE_FAULTS_FILE, or NULL */
static struct {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
} file_seen;
static int64_t last_check_ms;
static struct sl_log_io table;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- parsing ---- */

static int parse_u64(const char *s, uint64_t *ret)
{
	if (!*s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_errno(const char *s, int *ret)
{
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++) {
		if (strcmp(s, errnos[i].name) == 0) {
			*ret = errnos[i].err;
			return 0;
		}
	}
	uint64_t v;
	if (parse_u64(s, &v) < 0 || v == 0 || v > 4095)
		return -EINVAL;
	*ret = (int)v;
	return 0;
}

/* One rule, "OP:ERR[:key=value]..." (modified in place). */
static int parse_rule(char *s, struct rule *r, char *why, size_t why_len)
{
	*r = (struct rule){.count = UINT64_MAX};
	char *save = NULL;
	char *tok = strtok_r(s, ":", &save);
	int op = -1;
	for (int i = 0; tok && i < OP_COUNT; i++)
		if (strcmp(tok, op_names[i]) == 0)
			op = i;
	if (op < 0) {
		snprintf(why, why_len, "unknown operation '%s' (write, fsync, read, open, alloc)",
			 tok ? tok : "");
		return -EINVAL;
	}
	r->op = (enum op)op;
	tok = strtok_r(NULL, ":", &save);
	if (!tok || parse_errno(tok, &r->err) < 0) {
		snprintf(why, why_len, "%s: bad or missing error '%s'", op_names[op],
			 tok ? tok : "");
		return -EINVAL;
	}
	while ((tok = strtok_r(NULL, ":", &save))) {
		char *eq = strchr(tok, '=');
		if (!eq) {
			snprintf(why, why_len, "expected key=value, got '%s'", tok);
			return -EINVAL;
		}
		*eq = '\0';
		const char *v = eq + 1;
		int bad = 0;
		if (strcmp(tok, "after") == 0) {
			bad = parse_u64(v, &r->after);
		} else if (strcmp(tok, "count") == 0) {
			bad = parse_u64(v, &r->count);
		} else if (strcmp(tok, "path") == 0 || strcmp(tok, "site") == 0) {
			bool site = tok[0] == 's';
			if (site != (r->op == OP_ALLOC) || strlen(v) >= sizeof(r->match))
				bad = -EINVAL;
			else
				snprintf(r->match, sizeof(r->match), "%s", v);
		} else {
			bad = -EINVAL;
		}
		if (bad) {
			snprintf(why, why_len,
				 "bad '%s=%s' (after=N, count=N, path= for I/O, "
				 "site= for alloc)",
				 tok, v);
			return -EINVAL;
		}
	}
	return 0;
}

/* A whole spec into *ret (untouched on failure). */
static int parse_spec(const char *spec, struct rule_set *ret, char *why, size_t why_len)
{
	size_t len = strlen(spec);
	if (len >= SPEC_BYTES_MAX) {
		snprintf(why, why_len, "longer than %d bytes", SPEC_BYTES_MAX);
		return -EINVAL;
	}
	char buf[SPEC_BYTES_MAX];
	memcpy(buf, spec, len + 1);
	/* Comments run to the end of their line. */
	for (char *p = buf; (p = strchr(p, '#'));) {
		char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		memset(p, ' ', n);
		p += n;
	}
	struct rule_set set = {.n = 0};
	char *save = NULL;
	for (char *tok = strtok_r(buf, ", \t\r\n", &save); tok;
	     tok = strtok_r(NULL, ", \t\r\n", &save)) {
		if (set.n == RULES_MAX) {
			snprintf(why, why_len, "more than %d rules", RULES_MAX);
			return -EINVAL;
		}
		char copy[SPEC_BYTES_MAX];
		snprintf(copy, sizeof(copy), "%s", tok);
		int r = parse_rule(tok, &set.rules[set.n], why, why_len);
		if (r < 0) {
			size_t used = strlen(why);
			snprintf(why + used, why_len - used, " in rule '%s'", copy);
			return r;
		}
		set.n++;
	}
	*ret = set;
	return 0;
}

static void describe_fired(const struct rule_set *set, char *out, size_t len)
{
	size_t at = 0;
	out[0] = '\0';
	for (int i = 0; i < set->n && at < len; i++) {
		const struct rule *r = &set->rules[i];
		int n = snprintf(out + at, len - at, "%s%s:%d fired %" PRIu64, at ? ", " : "",
				 op_names[r->op], r->err, r->fired);
		if (n < 0)
			break;
		at += (size_t)n;
	}
	if (!out[0])
		snprintf(out, len, "none");
}

/* ---- the rule file ---- */

static int read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	size_t n = fread(buf, 1, len - 1, f);
	bool more = fgetc(f) != EOF;
	fclose(f);
	if (more)
		return -EFBIG;
	buf[n] = '\0';
	return 0;
}

/* Under lock: re-read the file if it changed since the last look (at most every 100 ms). */
static void maybe_reload(void)
{
	if (!file_path)
		return;
	int64_t now = mono_ms();
	if (now - last_check_ms < RELOAD_CHECK_MS)
		return;
	last_check_ms = now;
	struct stat st;
	bool exists = stat(file_path, &st) == 0;
	if (exists == file_seen.exists &&
	    (!exists ||
	     (st.st_dev == file_seen.dev && st.st_ino == file_seen.ino &&
	      st.st_size == file_seen.size && st.st_mtim.tv_sec == file_seen.mtime.tv_sec &&
	      st.st_mtim.tv_nsec == file_seen.mtime.tv_nsec)))
		return;
	file_seen.exists = exists;
	if (exists) {
		file_seen.dev = st.st_dev;
		file_seen.ino = st.st_ino;
		file_seen.size = st.st_size;
		file_seen.mtime = st.st_mtim;
	}
	char text[SPEC_BYTES_MAX];
	text[0] = '\0';
	if (exists) {
		int r = read_file(file_path, text, sizeof(text));
		if (r < 0) {
			SL_WARN("faults: cannot read %s: %s; kept the previous rules", file_path,
				strerror(-r));
			return;
		}
	}
	struct rule_set set;
	char why[256] = "";
	if (parse_spec(text, &set, why, sizeof(why)) < 0) {
		SL_WARN("faults: %s: %s; kept the previous rules", file_path, why);
		return;
	}
	char fired[512];
	describe_fired(&active, fired, sizeof(fired));
	active = set;
	SL_WARN("faults: reloaded %s: %d rule%s (previous rules: %s)", file_path, set.n,
		set.n == 1 ? "" : "s", fired);
}

/* ---- matching ---- */

/* Under lock: the first rule for op that matches and fires now, or NULL. */
static const struct rule *fire(enum op op, const char *what)
{
	for (int i = 0; i < active.n; i++) {
		struct rule *r = &active.rules[i];
		if (r->op != op || (r->match[0] && (!what || !strstr(what, r->match))))
			continue;
		r->seen++;
		if (r->seen <= r->after || r->fired >= r->count)
			continue;
		r->fired++;
		if (r->fired == 1)
			SL_WARN("faults: first %s failure (%s) injected on %s", op_names[op],
				strerror(r->err), what ? what : "?");
		return r;
	}
	return NULL;
}

/* Whether any rule for op exists (so calls without one skip the path lookup). */
static bool wanted(enum op op, bool *ret_needs_path)
{
	bool any = false, path = false;
	for (int i = 0; i < active.n; i++) {
		if (active.rules[i].op != op)
			continue;
		any = true;
		path |= active.rules[i].match[0] != '\0';
	}
	*ret_needs_path = path;
	return any;
}

/* 0, or -errno to inject, for an operation on a path. */
static int check_path(enum op op, const char *path)
{
	pthread_mutex_lock(&lock);
	maybe_reload();
	bool needs_path;
	int res = 0;
	if (wanted(op, &needs_path)) {
		const struct rule *r = fire(op, path);
		if (r)
			res = -r->err;
	}
	pthread_mutex_unlock(&lock);
	return res;
}

/* 0, or -errno to inject, for an operation on an fd (its path from /proc, when a rule needs it). */
static int check_fd(enum op op, int fd)
{
	pthread_mutex_lock(&lock);
	maybe_reload();
	bool needs_path;
	int res = 0;
	if (wanted(op, &needs_path)) {
		char link[64], path[4096];
		const char *what = "fd";
		if (needs_path) {
			snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
			ssize_t n = readlink(link, path, sizeof(path) - 1);
			if (n >= 0) {
				path[n] = '\0';
				what = path;
			}
		}
		const struct rule *r = fire(op, what);
		if (r)
			res = -r->err;
	}
	pthread_mutex_unlock(&lock);
	return res;
}

/* ---- the faulting table ---- */

static int f_open(const char *path, int flags, mode_t mode)
{
	int r = check_path(OP_OPEN, path);
	return r ? r : sl_log_io_real.open(path, flags, mode);
}

static ssize_t f_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	int r = check_fd(OP_WRITE, fd);
	return r ? r : sl_log_io_real.pwritev(fd, iov, iovcnt, off);
}

static ssize_t f_pread(int fd, void *buf, size_t n, off_t off)
{
	int r = check_fd(OP_READ, fd);
	return r ? r : sl_log_io_real.pread(fd, buf, n, off);
}

static int f_fdatasync(int fd)
{
	int r = check_fd(OP_FSYNC, fd);
	return r ? r : sl_log_io_real.fdatasync(fd);
}

static int f_fsync(int fd)
{
	int r = check_fd(OP_FSYNC, fd);
	return r ? r : sl_log_io_real.fsync(fd);
}

int sl_fault_init(void)
{
	const char *spec = getenv("SLUICE_FAULTS");
	char why[256] = "";
	if (spec && parse_spec(spec, &active, why, sizeof(why)) < 0) {
		fprintf(stderr, "sluiced: bad SLUICE_FAULTS: %s\n", why);
		return -EINVAL;
	}
	file_path = getenv("SLUICE_FAULTS_FILE");
	if (file_path && !file_path[0])
		file_path = NULL;
	if (file_path) {
		/* A file present at start replaces SLUICE_FAULTS at once. */
		last_check_ms = mono_ms() - RELOAD_CHECK_MS;
		pthread_mutex_lock(&lock);
		maybe_reload();
		pthread_mutex_unlock(&lock);
	}
	table = sl_log_io_real;
	table.open = f_open;
	table.pwritev = f_pwritev;
	table.pread = f_pread;
	table.fdatasync = f_fdatasync;
	table.fsync = f_fsync;
	sl_log_io_set(&table);
	SL_WARN("faults: fault injection build; %d rule%s from SLUICE_FAULTS, rule file %s",
		active.n, active.n == 1 ? "" : "s", file_path ? file_path : "none");
	return 0;
}

bool sl_fault_alloc(const char *site)
{
	return check_path(OP_ALLOC, site) != 0;
}

int sl_fault_sync_result(int fd, int res)
{
	int r = check_fd(OP_FSYNC, fd);
	return r ? r : res;
}
