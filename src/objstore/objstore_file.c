/*
 * file:///ABS/DIR: objects as files under DIR. put = write a temporary file in the key's folder,
 * fdatasync it, rename it over the key, fsync the folder: rename is atomic within a file system, so
 * readers never see a partial object, and the folder fsync makes the new name durable before put
 * returns (the firehose then advances its checkpoint, a durability promise). Folders put creates
 * are fsynced into their parents for the same reason.
 *
 * Writes, syncs, renames, unlinks and mkdirs go through the log's I/O seam (src/log/io.h) so tests
 * inject faults; listing walks the tree with opendir/readdir directly (read-only, nothing to
 * inject that the tests need).
 */
#include "objstore/objstore_internal.h"

#include "common/buf.h"
#include "log/io.h"

#include <sluice/errors.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

struct file_store {
	struct sl_objstore base;
	char *root; /* absolute, no trailing '/' (except "/" itself: then "") */
};

static int fail_errno(struct sl_objstore_error *err, int rc, const char *op, const char *what,
		      const char *path)
{
	return sl_objstore_fail(err, rc, 0, sl_objstore_errno_name(rc), "%s %.200s: %s: %s", op,
				path, what, strerror(-rc));
}

/* path = root + "/" + rel. -ENAMETOOLONG past PATH_MAX. */
static int make_path(const struct file_store *fs, const char *rel, char *out, size_t out_len)
{
	int n = snprintf(out, out_len, "%s/%s", fs->root, rel);
	return n < 0 || (size_t)n >= out_len ? -ENAMETOOLONG : 0;
}

/*
 * mkdir -p of dir (absolute), fsyncing the parent of every folder it creates, so that a crash
 * cannot lose a folder that a durable object lives in.
 */
static int mkdirs_durable(const char *dir)
{
	const struct sl_log_io *io = sl_log_io();
	char tmp[PATH_MAX];
	size_t len = strlen(dir);
	if (len == 0 || len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		char c = tmp[i];
		tmp[i] = '\0';
		int r = io->mkdir(tmp, 0755);
		if (r == 0) {
			char *slash = strrchr(tmp, '/');
			*slash = '\0';
			r = sl_log_io_fsync_dir(slash == tmp ? "/" : tmp);
			*slash = '/';
			if (r < 0)
				return r;
		} else if (r != -EEXIST) {
			return r;
		}
		tmp[i] = c;
	}
	return 0;
}

/*
 * An object just made durable is not read again by the writer (a firehose writes each once; a
 * restore reads objects in another process, long after): drop its pages from the page cache.
 * Clean pages go back to the allocator at once, so the next object's write reuses memory that is
 * already mapped and warm instead of taking fresh pages, which cost ~10x the copy itself
 * (measured 7.3 vs 0.8 ms of CPU per 2.6 MB object on a VM whose free memory the host reclaims:
 * 10-18% of a firehose's CPU); and archives no longer push the logs' pages out of the cache.
 * Only a hint: the data is on disk already, a failure changes nothing.
 */
static void drop_cached(int fd)
{
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

static int file_put(struct sl_objstore *base, const char *key, const void *data, size_t len,
		    struct sl_objstore_error *err)
{
	struct file_store *fs = (struct file_store *)base;
	const struct sl_log_io *io = sl_log_io();
	char path[PATH_MAX], tmp[PATH_MAX + 32], dir[PATH_MAX];
	if (make_path(fs, key, path, sizeof(path)) < 0)
		return fail_errno(err, -ENAMETOOLONG, "put", "path", key);
	strcpy(dir, path);
	*strrchr(dir, '/') = '\0';
	int r = mkdirs_durable(dir);
	if (r < 0)
		return fail_errno(err, r, "put", "mkdir", dir);

	uint64_t rnd;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		return fail_errno(err, -errno, "put", "getrandom", key);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%016llx", path, (unsigned long long)rnd);
	int fd = io->open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0)
		return fail_errno(err, fd, "put", "open", tmp);
	const char *what = "write";
	struct iovec iov = {(void *)data, len};
	r = len ? sl_log_io_pwritev_all(fd, &iov, 1, 0) : 0;
	if (r == 0) {
		what = "fdatasync";
		r = io->fdatasync(fd);
	}
	if (r == 0 && len)
		drop_cached(fd);
	int c = io->close(fd);
	if (r == 0 && c < 0) {
		what = "close";
		r = c;
	}
	if (r == 0) {
		what = "rename";
		r = io->rename(tmp, path);
	}
	if (r < 0) {
		io->unlink(tmp);
		return fail_errno(err, r, "put", what, path);
	}
	r = sl_log_io_fsync_dir(dir);
	if (r < 0)
		return fail_errno(err, r, "put", "fsync folder", dir);
	return 0;
}

static int file_get(struct sl_objstore *base, const char *key, struct sl_buf *out,
		    struct sl_objstore_error *err)
{
	struct file_store *fs = (struct file_store *)base;
	const struct sl_log_io *io = sl_log_io();
	char path[PATH_MAX];
	if (make_path(fs, key, path, sizeof(path)) < 0)
		return fail_errno(err, -ENAMETOOLONG, "get", "path", key);
	int fd = io->open(path, O_RDONLY, 0);
	if (fd < 0)
		return fail_errno(err, fd == -ENOTDIR ? -ENOENT : fd, "get", "open", path);
	/* Read to the end rather than trusting a size taken before: the fd pins one version. */
	int r = 0;
	for (;;) {
		if (out->len >= SL_OBJSTORE_GET_BYTES_MAX) {
			r = fail_errno(err, -EFBIG, "get", "read", path);
			break;
		}
		if (sl_buf_reserve(out, out->len < (1u << 20) ? 64u << 10 : out->len) < 0) {
			r = fail_errno(err, -ENOMEM, "get", "read", path);
			break;
		}
		ssize_t n =
		    io->pread(fd, out->data + out->len, out->cap - out->len, (off_t)out->len);
		if (n < 0) {
			r = fail_errno(err, (int)n, "get", "read", path);
			break;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
	}
	io->close(fd);
	return r;
}

struct entry {
	char *key;
	uint64_t size;
};

struct walk {
	const char *prefix;
	size_t prefix_len;
	struct entry *v;
	size_t n, cap;
};

static int walk_add(struct walk *w, const char *key, uint64_t size)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct entry *v = realloc(w->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		w->v = v;
		w->cap = cap;
	}
	w->v[w->n].key = strdup(key);
	if (!w->v[w->n].key)
		return -ENOMEM;
	w->v[w->n++].size = size;
	return 0;
}

/*
 * Walk abs (= root + "/" + rel; rel "" for the root; abs "" for the root "/"), collecting
 * regular files. Both buffers are scratch, restored on return.
 */
static int walk_dir(struct walk *w, char *abs, size_t abs_len, char *rel, size_t rel_len)
{
	DIR *d = opendir(abs_len ? abs : "/");
	if (!d)
		return -errno;
	int r = 0;
	struct dirent *e;
	while ((errno = 0, e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		size_t nlen = strlen(name);
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (abs_len + 1 + nlen >= PATH_MAX || rel_len + 1 + nlen > SL_OBJSTORE_KEY_LEN_MAX)
			continue; /* cannot be a key */
		size_t rl = rel_len;
		if (rl)
			rel[rl++] = '/';
		memcpy(rel + rl, name, nlen + 1);
		rl += nlen;
		struct stat st;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				goto next; /* deleted meanwhile */
			r = -errno;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			/* Descend only where keys can still match the prefix. */
			size_t m = rl < w->prefix_len ? rl : w->prefix_len;
			if (memcmp(rel, w->prefix, m) != 0)
				goto next;
			abs[abs_len] = '/';
			memcpy(abs + abs_len + 1, name, nlen + 1);
			r = walk_dir(w, abs, abs_len + 1 + nlen, rel, rl);
			abs[abs_len] = '\0';
			if (r < 0 && r != -ENOENT)
				break;
			r = 0;
		} else if (S_ISREG(st.st_mode)) {
			if (sl_objstore_is_tmp_name(name, nlen))
				goto next; /* a put in progress, or one a crash interrupted */
			if (rl < w->prefix_len || memcmp(rel, w->prefix, w->prefix_len) != 0)
				goto next;
			if (!sl_objstore_key_valid(rel))
				goto next; /* a file no put could have made */
			r = walk_add(w, rel, (uint64_t)st.st_size);
			if (r < 0)
				break;
		}
	next:
		rel[rel_len] = '\0';
	}
	if (r == 0 && errno != 0)
		r = -errno;
	closedir(d);
	return r;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->key, ((const struct entry *)b)->key);
}

static int file_list(struct sl_objstore *base, const char *prefix, sl_objstore_list_fn fn,
		     void *ctx, struct sl_objstore_error *err)
{
	struct file_store *fs = (struct file_store *)base;
	char abs[PATH_MAX], rel[SL_OBJSTORE_KEY_LEN_MAX + 1];
	size_t abs_len = strlen(fs->root); /* checked at create: well under PATH_MAX */
	memcpy(abs, fs->root, abs_len + 1);
	rel[0] = '\0';
	struct walk w = {.prefix = prefix, .prefix_len = strlen(prefix)};
	int r = walk_dir(&w, abs, abs_len, rel, 0);
	if (r == -ENOENT)
		r = 0; /* the folder was removed: no objects, as an empty bucket */
	if (r < 0) {
		r = fail_errno(err, r, "list", "readdir", fs->root);
	} else {
		if (w.n > 1)
			qsort(w.v, w.n, sizeof(*w.v), entry_cmp);
		size_t i;
		for (i = 0; i < w.n; i++) {
			r = fn(w.v[i].key, w.v[i].size, ctx);
			if (r != 0)
				break;
		}
		if (i == w.n)
			r = w.n > INT32_MAX ? INT32_MAX : (int)w.n;
	}
	for (size_t i = 0; i < w.n; i++)
		free(w.v[i].key);
	free(w.v);
	return r;
}

static int file_delete(struct sl_objstore *base, const char *key, struct sl_objstore_error *err)
{
	struct file_store *fs = (struct file_store *)base;
	char path[PATH_MAX];
	if (make_path(fs, key, path, sizeof(path)) < 0)
		return fail_errno(err, -ENAMETOOLONG, "delete", "path", key);
	int r = sl_log_io()->unlink(path);
	if (r == -ENOENT || r == -ENOTDIR)
		return 0;
	if (r < 0)
		return fail_errno(err, r, "delete", "unlink", path);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	r = sl_log_io_fsync_dir(path[0] ? path : "/");
	return r < 0 ? fail_errno(err, r, "delete", "fsync folder", path) : 0;
}

static void file_destroy(struct sl_objstore *base)
{
	struct file_store *fs = (struct file_store *)base;
	free(fs->root);
	free(fs);
}

static const struct sl_objstore_ops file_ops = {
    .put = file_put,
    .get = file_get,
    .list = file_list,
    .del = file_delete,
    .destroy = file_destroy,
};

int sl_objstore_file_create(const char *path, struct sl_objstore **ret,
			    struct sl_objstore_error *err)
{
	if (path[0] != '/' || strstr(path, "/../") || strstr(path, "/./"))
		return sl_objstore_fail(err, SLUICE_ERR_INVALID_ARGUMENT, 0, "InvalidURL",
					"file://%.200s: want file:///ABSOLUTE/FOLDER", path);
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len >= PATH_MAX - SL_OBJSTORE_KEY_LEN_MAX - 64)
		return sl_objstore_fail(err, -ENAMETOOLONG, 0, "ENAMETOOLONG",
					"file://%.200s: folder path too long", path);
	struct file_store *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return sl_objstore_fail(err, -ENOMEM, 0, "ENOMEM", "out of memory");
	fs->base.ops = &file_ops;
	fs->root = strndup(path, len == 1 ? 0 : len);
	if (!fs->root) {
		file_destroy(&fs->base);
		return sl_objstore_fail(err, -ENOMEM, 0, "ENOMEM", "out of memory");
	}
	if (fs->root[0]) {
		int r = mkdirs_durable(fs->root);
		if (r < 0) {
			file_destroy(&fs->base);
			return fail_errno(err, r, "create", "mkdir", path);
		}
	}
	*ret = &fs->base;
	return 0;
}
