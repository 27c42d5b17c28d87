#include "fault_io.h"

#include "log/io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FDS_MAX 4096
#define FILES_MAX 1024
/* Files one recording may create: far above what a test workload makes. */
#define REC_INODES_MAX 65536

static struct fault_io state;
static struct sl_log_io table;
static char *fd_path[FDS_MAX];
static struct {
	char *path;
	int preads;
} files[FILES_MAX];
static int nfiles;

/* Faults fired since the process started, printed at exit (the figure docs/reliability.md
 * quotes); unlike the per-rule counts, never reset. */
static unsigned long faults_total;

static void print_faults_total(void)
{
	if (faults_total)
		printf("fault_io: %lu faults injected\n", faults_total);
}

/* Whether rule r fires on this call. */
static bool fire(struct fault_rule *r)
{
	if (r->kind == FAULT_NONE)
		return false;
	if (r->skip > 0) {
		r->skip--;
		return false;
	}
	r->fired++;
	faults_total++;
	return true;
}

static void consume(struct fault_rule *r)
{
	if (!r->sticky)
		r->kind = FAULT_NONE;
}

/* ---- recording state ---- */

static bool recording;
static struct rec_op *journal;
static size_t journal_len, journal_cap;
/* Recorded file i is the real file (dev, ino) of inode_keys[i]; an inode number the kernel
 * reuses maps to the newest file, so lookups go from the end. */
static struct {
	dev_t dev;
	ino_t ino;
} inode_keys[REC_INODES_MAX];
static int ninodes;

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort(); /* a test helper: out of memory ends the test */
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

static void journal_push(const struct rec_op *op)
{
	if (journal_len == journal_cap) {
		journal_cap = journal_cap ? journal_cap * 2 : 256;
		journal = realloc(journal, journal_cap * sizeof(*journal));
		if (!journal)
			abort();
	}
	journal[journal_len++] = *op;
}

/* The recorded file fd refers to, or -1 (not a regular file, or not created while recording). */
static int inode_of_fd(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return -1;
	for (int i = ninodes - 1; i >= 0; i--)
		if (inode_keys[i].dev == st.st_dev && inode_keys[i].ino == st.st_ino)
			return i;
	return -1;
}

static bool fd_is_dir(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

static void record_open(const char *path, int flags, bool existed, int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	if ((flags & O_CREAT) && !existed) {
		if (ninodes == REC_INODES_MAX)
			abort();
		inode_keys[ninodes].dev = st.st_dev;
		inode_keys[ninodes].ino = st.st_ino;
		journal_push(&(struct rec_op){
		    .kind = REC_CREATE, .inode = ninodes++, .path = xstrdup(path)});
	} else if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
		int ino = inode_of_fd(fd);
		if (ino >= 0)
			journal_push(&(struct rec_op){.kind = REC_TRUNCATE, .inode = ino});
	}
}

static void record_write(int fd, const struct iovec *iov, int iovcnt, off_t off, size_t n)
{
	int ino = inode_of_fd(fd);
	if (ino < 0 || n == 0)
		return;
	uint8_t *bytes = xmalloc(n);
	size_t done = 0;
	for (int i = 0; i < iovcnt && done < n; i++) {
		size_t k = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
		memcpy(bytes + done, iov[i].iov_base, k);
		done += k;
	}
	journal_push(&(struct rec_op){
	    .kind = REC_WRITE, .inode = ino, .off = (uint64_t)off, .bytes = bytes, .len = n});
}

static void record_sync(int fd)
{
	if (fd >= 0 && fd < FDS_MAX && fd_path[fd] && fd_is_dir(fd)) {
		journal_push(&(struct rec_op){.kind = REC_DIR_SYNC, .path = xstrdup(fd_path[fd])});
		return;
	}
	int ino = inode_of_fd(fd);
	if (ino >= 0)
		journal_push(&(struct rec_op){.kind = REC_SYNC, .inode = ino});
}

/* ---- the table ---- */

static int f_open(const char *path, int flags, mode_t mode)
{
	state.open_calls++;
	struct stat st;
	bool existed = recording && (flags & O_CREAT) && stat(path, &st) == 0;
	int fd = sl_log_io_real.open(path, flags, mode);
	if (fd >= 0 && fd < FDS_MAX) {
		free(fd_path[fd]);
		fd_path[fd] = strdup(path);
	}
	if (fd >= 0 && recording)
		record_open(path, flags, existed, fd);
	return fd;
}

static int f_close(int fd)
{
	if (fd >= 0 && fd < FDS_MAX) {
		free(fd_path[fd]);
		fd_path[fd] = NULL;
	}
	return sl_log_io_real.close(fd);
}

static ssize_t f_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	state.pwritev_calls++;
	struct fault_rule *r = &state.pwritev;
	if (fire(r)) {
		enum fault_kind kind = r->kind;
		consume(r);
		if (kind == FAULT_ERROR)
			return r->err;
		/* Short: really write the first short_bytes; with err set, later calls fail. */
		if (r->err) {
			r->kind = FAULT_ERROR;
			r->sticky = true;
		}
		struct iovec cut[64];
		size_t left = r->short_bytes;
		int n = 0;
		for (int i = 0; i < iovcnt && left && n < 64; i++) {
			size_t len = iov[i].iov_len < left ? iov[i].iov_len : left;
			cut[n++] = (struct iovec){iov[i].iov_base, len};
			left -= len;
		}
		if (n == 0)
			return 0;
		ssize_t w = sl_log_io_real.pwritev(fd, cut, n, off);
		if (w > 0 && recording)
			record_write(fd, cut, n, off, (size_t)w);
		return w;
	}
	ssize_t w = sl_log_io_real.pwritev(fd, iov, iovcnt, off);
	if (w > 0 && recording)
		record_write(fd, iov, iovcnt, off, (size_t)w);
	return w;
}

static ssize_t f_pread(int fd, void *buf, size_t n, off_t off)
{
	state.pread_calls++;
	if (fd >= 0 && fd < FDS_MAX && fd_path[fd]) {
		int i;
		for (i = 0; i < nfiles; i++)
			if (strcmp(files[i].path, fd_path[fd]) == 0)
				break;
		if (i == nfiles && nfiles < FILES_MAX)
			files[nfiles++].path = strdup(fd_path[fd]);
		if (i < nfiles)
			files[i].preads++;
	}
	ssize_t got = sl_log_io_real.pread(fd, buf, n, off);
	if (got > 0)
		state.pread_bytes += (uint64_t)got;
	return got;
}

static int f_fdatasync(int fd)
{
	state.fdatasync_calls++;
	struct fault_rule *r = &state.fdatasync;
	if (fire(r)) {
		consume(r);
		return r->err;
	}
	int res = sl_log_io_real.fdatasync(fd);
	if (res == 0 && recording)
		record_sync(fd);
	return res;
}

static int f_fsync(int fd)
{
	int res = sl_log_io_real.fsync(fd);
	if (res == 0 && recording)
		record_sync(fd);
	return res;
}

static int f_ftruncate(int fd, off_t len)
{
	struct fault_rule *r = &state.ftruncate;
	if (fire(r)) {
		consume(r);
		return r->err;
	}
	int res = sl_log_io_real.ftruncate(fd, len);
	int ino = res == 0 && recording ? inode_of_fd(fd) : -1;
	if (ino >= 0)
		journal_push(
		    &(struct rec_op){.kind = REC_TRUNCATE, .inode = ino, .off = (uint64_t)len});
	return res;
}

static int f_unlink(const char *path)
{
	int res = sl_log_io_real.unlink(path);
	if (res == 0 && recording)
		journal_push(&(struct rec_op){.kind = REC_UNLINK, .path = xstrdup(path)});
	return res;
}

static int f_rename(const char *from, const char *to)
{
	int res = sl_log_io_real.rename(from, to);
	if (res == 0 && recording)
		journal_push(&(struct rec_op){
		    .kind = REC_RENAME, .path = xstrdup(from), .path2 = xstrdup(to)});
	return res;
}

struct fault_io *fault_io_install(void)
{
	static bool at_exit;
	if (!at_exit && atexit(print_faults_total) == 0)
		at_exit = true;
	table = sl_log_io_real;
	table.open = f_open;
	table.close = f_close;
	table.pwritev = f_pwritev;
	table.pread = f_pread;
	table.fdatasync = f_fdatasync;
	table.fsync = f_fsync;
	table.ftruncate = f_ftruncate;
	table.unlink = f_unlink;
	table.rename = f_rename;
	fault_io_reset();
	sl_log_io_set(&table);
	return &state;
}

void fault_io_uninstall(void)
{
	sl_log_io_set(NULL);
	recording = false;
	fault_io_reset();
	for (int i = 0; i < FDS_MAX; i++) {
		free(fd_path[i]);
		fd_path[i] = NULL;
	}
}

void fault_io_reset(void)
{
	memset(&state, 0, sizeof(state));
	for (int i = 0; i < nfiles; i++)
		free(files[i].path);
	nfiles = 0;
}

int fault_io_preads_on(const char *suffix)
{
	size_t sl = strlen(suffix);
	int n = 0;
	for (int i = 0; i < nfiles; i++) {
		size_t pl = strlen(files[i].path);
		if (pl >= sl && strcmp(files[i].path + pl - sl, suffix) == 0)
			n += files[i].preads;
	}
	return n;
}

int fault_io_files_read(void)
{
	return nfiles;
}

unsigned long fault_io_faults_total(void)
{
	return faults_total;
}

/* ---- recording API ---- */

void fault_io_journal_free(void)
{
	for (size_t i = 0; i < journal_len; i++) {
		free(journal[i].path);
		free(journal[i].path2);
		free(journal[i].bytes);
	}
	free(journal);
	journal = NULL;
	journal_len = journal_cap = 0;
	ninodes = 0;
}

void fault_io_record_start(void)
{
	fault_io_journal_free();
	recording = true;
}

void fault_io_record_stop(void)
{
	recording = false;
}

size_t fault_io_journal_len(void)
{
	return journal_len;
}

const struct rec_op *fault_io_journal(size_t *ret_len)
{
	*ret_len = journal_len;
	return journal;
}

/* ---- crash states ---- */

enum fate { FATE_APPLY, FATE_LOSE, FATE_TORN_SHORT, FATE_TORN_ZERO, FATE_GARBAGE };

/* splitmix64: small, seedable, and the same everywhere. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return n ? rng_next(s) % n : 0;
}

/* Whether path's folder is dir (path = dir + "/" + a name without '/'). */
static bool in_dir(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 && path[n] == '/' && !strchr(path + n + 1, '/');
}

static const char *op_dir_path(const struct rec_op *op)
{
	return op->kind == REC_RENAME ? op->path2 : op->path;
}

struct file_img {
	uint8_t *data;
	size_t len, cap;
};

static void img_resize(struct file_img *f, size_t len)
{
	if (len > f->cap) {
		size_t cap = f->cap ? f->cap : 4096;
		while (cap < len)
			cap *= 2;
		f->data = realloc(f->data, cap);
		if (!f->data)
			abort();
		f->cap = cap;
	}
	if (len > f->len)
		memset(f->data + f->len, 0, len - f->len); /* a hole reads as zeros */
	f->len = len;
}

static void img_write(struct file_img *f, uint64_t off, const uint8_t *p, size_t n)
{
	if (off + n > f->len)
		img_resize(f, (size_t)off + n);
	memcpy(f->data + off, p, n);
}

struct name {
	char *path;
	int inode;
};

static void names_set(struct name *names, size_t *n, const char *path, int inode)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(names[i].path, path) == 0) {
			names[i].inode = inode;
			return;
		}
	names[(*n)++] = (struct name){(char *)path, inode};
}

static int names_remove(struct name *names, size_t *n, const char *path)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(names[i].path, path) == 0) {
			int inode = names[i].inode;
			names[i] = names[--*n];
			return inode;
		}
	return -1;
}

static int write_file(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int r = 0;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			r = -errno;
			break;
		}
		p += w;
		n -= (size_t)w;
	}
	close(fd);
	return r;
}

int fault_io_crash_build(size_t crash_at, uint64_t seed, const char *from_dir, const char *to_dir,
			 struct crash_stats *ret_stats)
{
	size_t k = crash_at < journal_len ? crash_at : journal_len;
	uint64_t rng = seed;
	struct crash_stats st = {.ops = (unsigned)k};
	enum fate *fate = xmalloc(k * sizeof(*fate));
	bool *synced_later = calloc((size_t)ninodes + 1, sizeof(bool));
	const char **dirs_synced = xmalloc((k + 1) * sizeof(char *));
	size_t ndirs = 0;
	if (!synced_later)
		abort();

	/* Backwards: an operation is durable when a sync of its file (or folder) follows it. */
	size_t unsynced = 0;
	for (size_t i = k; i-- > 0;) {
		const struct rec_op *op = &journal[i];
		bool durable = true;
		switch (op->kind) {
		case REC_SYNC:
			synced_later[op->inode] = true;
			break;
		case REC_DIR_SYNC:
			dirs_synced[ndirs++] = op->path;
			break;
		case REC_WRITE:
		case REC_TRUNCATE:
			durable = synced_later[op->inode];
			break;
		case REC_CREATE:
		case REC_UNLINK:
		case REC_RENAME:
			durable = false;
			for (size_t d = 0; d < ndirs && !durable; d++)
				durable = in_dir(op_dir_path(op), dirs_synced[d]);
			break;
		}
		fate[i] = durable ? FATE_APPLY : FATE_LOSE;
		if (!durable)
			unsynced++;
	}
	st.unsynced = (unsigned)unsynced;

	/* Draw the fate of the unsynced operations. */
	bool in_order = rng_below(&rng, 2) == 0;
	uint64_t cut = rng_below(&rng, unsynced + 1);
	size_t u = 0;
	for (size_t i = 0; i < k; i++) {
		const struct rec_op *op = &journal[i];
		bool sync = op->kind == REC_SYNC || op->kind == REC_DIR_SYNC;
		if (sync || fate[i] == FATE_APPLY)
			continue;
		bool is_write = op->kind == REC_WRITE;
		enum fate f;
		if (in_order) {
			/* A prefix survives; the first lost write may be half done. */
			if (u < cut)
				f = FATE_APPLY;
			else if (u == cut && is_write)
				f = (enum fate)(FATE_LOSE + rng_below(&rng, 4));
			else
				f = FATE_LOSE;
		} else if (is_write) {
			/* Independently: half survive, a quarter are lost, the rest damaged. */
			static const enum fate draw[8] = {FATE_APPLY,	   FATE_APPLY,	FATE_APPLY,
							  FATE_APPLY,	   FATE_LOSE,	FATE_LOSE,
							  FATE_TORN_SHORT, FATE_GARBAGE};
			f = draw[rng_below(&rng, 8)];
			if (f == FATE_TORN_SHORT && rng_below(&rng, 2))
				f = FATE_TORN_ZERO;
		} else {
			f = rng_below(&rng, 2) ? FATE_APPLY : FATE_LOSE;
		}
		fate[i] = f;
		u++;
		if (f == FATE_LOSE && !is_write && op->kind != REC_TRUNCATE)
			st.names_lost++;
		else if (f == FATE_LOSE)
			st.lost++;
		else if (f == FATE_TORN_SHORT || f == FATE_TORN_ZERO)
			st.torn++;
		else if (f == FATE_GARBAGE)
			st.garbage++;
	}

	/* Forwards: replay what survived onto file images and a name table. */
	struct file_img *img = calloc((size_t)ninodes + 1, sizeof(*img));
	struct name *names = xmalloc((k + 1) * sizeof(*names));
	size_t nnames = 0;
	if (!img)
		abort();
	for (size_t i = 0; i < k; i++) {
		const struct rec_op *op = &journal[i];
		if (fate[i] == FATE_LOSE)
			continue;
		switch (op->kind) {
		case REC_CREATE:
			names_set(names, &nnames, op->path, op->inode);
			break;
		case REC_UNLINK:
			names_remove(names, &nnames, op->path);
			break;
		case REC_RENAME: {
			int inode = names_remove(names, &nnames, op->path);
			if (inode >= 0)
				names_set(names, &nnames, op->path2, inode);
			break;
		}
		case REC_TRUNCATE:
			img_resize(&img[op->inode], (size_t)op->off);
			break;
		case REC_WRITE: {
			struct file_img *f = &img[op->inode];
			size_t n = op->len;
			if (fate[i] == FATE_APPLY) {
				img_write(f, op->off, op->bytes, n);
			} else if (fate[i] == FATE_GARBAGE) {
				uint8_t *junk = xmalloc(n);
				for (size_t b = 0; b < n; b++)
					junk[b] = (uint8_t)rng_next(&rng);
				img_write(f, op->off, junk, n);
				free(junk);
			} else {
				size_t keep = (size_t)rng_below(&rng, n);
				img_write(f, op->off, op->bytes, keep);
				if (fate[i] == FATE_TORN_ZERO && op->off + n > f->len)
					img_resize(f, (size_t)op->off + n);
			}
			break;
		}
		case REC_SYNC:
		case REC_DIR_SYNC:
			break;
		}
	}

	/* Write the files that still have a name under from_dir, at the same place under to_dir. */
	int r = 0;
	size_t from_len = strlen(from_dir);
	for (size_t i = 0; i < nnames && r == 0; i++) {
		const char *path = names[i].path;
		if (strncmp(path, from_dir, from_len) != 0 || path[from_len] != '/')
			continue;
		char out[PATH_MAX];
		int n = snprintf(out, sizeof(out), "%s%s", to_dir, path + from_len);
		if (n < 0 || (size_t)n >= sizeof(out)) {
			r = -ENAMETOOLONG;
			break;
		}
		const struct file_img *f = &img[names[i].inode];
		r = write_file(out, f->data, f->len);
		st.files++;
	}

	for (int i = 0; i < ninodes; i++)
		free(img[i].data);
	free(img);
	free(names);
	free(fate);
	free(synced_later);
	free(dirs_synced);
	if (ret_stats)
		*ret_stats = st;
	return r;
}
