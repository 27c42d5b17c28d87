#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <sluice/errors.h>

#include "../log/fault_io.h"
#include "common/buf.h"
#include "objstore/objstore.h"

static char root[256];
static char url[300];

static int rm_rf(const char *path)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

static int setup(void **state)
{
	snprintf(root, sizeof(root), "/tmp/sl-objstore-XXXXXX");
	assert_non_null(mkdtemp(root));
	/* The store's folder does not exist yet: create makes it. */
	snprintf(url, sizeof(url), "file://%s/store/", root);
	return 0;
}

static int teardown(void **state)
{
	fault_io_uninstall();
	rm_rf(root);
	return 0;
}

static struct sl_objstore *open_store(void)
{
	struct sl_objstore *os = NULL;
	struct sl_objstore_error err;
	int r = sl_objstore_create(url, NULL, &os, &err);
	if (r != 0)
		fail_msg("create: %d %s", r, err.message);
	return os;
}

static void put_ok(struct sl_objstore *os, const char *key, const char *text)
{
	struct sl_objstore_error err;
	int r = sl_objstore_put(os, key, text, strlen(text), &err);
	if (r != 0)
		fail_msg("put %s: %d %s", key, r, err.message);
}

static void get_eq_bytes(struct sl_objstore *os, const char *key, const void *data, size_t len)
{
	struct sl_buf b;
	sl_buf_init(&b);
	struct sl_objstore_error err;
	int r = sl_objstore_get(os, key, &b, &err);
	if (r != 0)
		fail_msg("get %s: %d %s", key, r, err.message);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.data, data, len);
	sl_buf_finish(&b);
}

static void get_eq(struct sl_objstore *os, const char *key, const char *text)
{
	get_eq_bytes(os, key, text, strlen(text));
}

struct listing {
	int n;
	char keys[32][128];
	uint64_t sizes[32];
	int stop_at;
};

static int on_key(const char *key, uint64_t size, void *ctx)
{
	struct listing *l = ctx;
	assert_true(l->n < 32);
	snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", key);
	l->sizes[l->n++] = size;
	return l->stop_at && l->n == l->stop_at ? 7 : 0;
}

static void basics(void **state)
{
	struct sl_objstore *os = open_store();
	assert_string_equal(sl_objstore_url(os), url);
	put_ok(os, "a/b/c/deep.jsonl", "deep");
	put_ok(os, "a-c", "dash");
	put_ok(os, "top", "");
	put_ok(os, "a/b/x", "12345");
	get_eq(os, "a/b/c/deep.jsonl", "deep");
	get_eq(os, "top", "");
	/* Overwrite. */
	put_ok(os, "a/b/x", "replaced");
	get_eq(os, "a/b/x", "replaced");

	/* Folders exist on disk as the key says. */
	char path[400];
	snprintf(path, sizeof(path), "%s/store/a/b/c/deep.jsonl", root);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);

	/* List: S3's byte order ("a-c" < "a/b/..."), sizes, prefixes. */
	struct listing l = {0};
	assert_int_equal(sl_objstore_list(os, "", on_key, &l, NULL), 4);
	assert_string_equal(l.keys[0], "a-c");
	assert_string_equal(l.keys[1], "a/b/c/deep.jsonl");
	assert_string_equal(l.keys[2], "a/b/x");
	assert_string_equal(l.keys[3], "top");
	assert_int_equal(l.sizes[2], 8);
	memset(&l, 0, sizeof(l));
	assert_int_equal(sl_objstore_list(os, "a/b/", on_key, &l, NULL), 2);
	assert_string_equal(l.keys[0], "a/b/c/deep.jsonl");
	memset(&l, 0, sizeof(l));
	assert_int_equal(sl_objstore_list(os, "a/b/c/de", on_key, &l, NULL), 1);
	memset(&l, 0, sizeof(l));
	assert_int_equal(sl_objstore_list(os, "a", on_key, &l, NULL), 3);
	memset(&l, 0, sizeof(l));
	assert_int_equal(sl_objstore_list(os, "zzz", on_key, &l, NULL), 0);
	/* The callback stops the listing. */
	memset(&l, 0, sizeof(l));
	l.stop_at = 2;
	assert_int_equal(sl_objstore_list(os, NULL, on_key, &l, NULL), 7);
	assert_int_equal(l.n, 2);

	/* Missing keys. */
	struct sl_buf b;
	sl_buf_init(&b);
	struct sl_objstore_error err;
	assert_int_equal(sl_objstore_get(os, "nope", &b, &err), -ENOENT);
	assert_false(err.retryable);
	assert_string_equal(err.code, "ENOENT");
	assert_int_equal(sl_objstore_get(os, "top/under-a-file", &b, &err), -ENOENT);
	sl_buf_finish(&b);

	/* Delete, and delete again (idempotent, as S3). */
	assert_int_equal(sl_objstore_delete(os, "a/b/x", &err), 0);
	assert_int_equal(sl_objstore_delete(os, "a/b/x", &err), 0);
	assert_int_equal(sl_objstore_delete(os, "never/was", &err), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(sl_objstore_list(os, "", on_key, &l, NULL), 3);
	sl_objstore_destroy(os);
	sl_objstore_destroy(NULL);

	/* A second objstore on the same folder sees the same objects. */
	os = open_store();
	get_eq(os, "a-c", "dash");
	sl_objstore_destroy(os);
}

static void tmp_files_ignored(void **state)
{
	struct sl_objstore *os = open_store();
	put_ok(os, "d/obj", "x");
	/* What a crash in the middle of put leaves behind. */
	char path[400];
	snprintf(path, sizeof(path), "%s/store/d/obj2.tmp.0123456789abcdef", root);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("partial", f);
	fclose(f);
	struct listing l = {0};
	assert_int_equal(sl_objstore_list(os, "", on_key, &l, NULL), 1);
	assert_string_equal(l.keys[0], "d/obj");
	/* Such names are not keys. */
	struct sl_objstore_error err;
	assert_int_equal(sl_objstore_put(os, "d/obj2.tmp.0123456789abcdef", "y", 1, &err),
			 SLUICE_ERR_INVALID_ARGUMENT);
	sl_objstore_destroy(os);
}

/* The folder holding key has no files but the object itself (no tmp left behind). */
static void assert_clean_folder(const char *sub, int want_files)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/store/%s", root, sub);
	DIR *d = opendir(path);
	int n = 0;
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (e->d_name[0] != '.') {
				assert_null(strstr(e->d_name, ".tmp."));
				n++;
			}
		closedir(d);
	}
	assert_int_equal(n, want_files);
}

static void atomic_under_faults(void **state)
{
	struct sl_objstore *os = open_store();
	put_ok(os, "f/obj", "version one");
	struct fault_io *fi = fault_io_install();
	struct sl_objstore_error err;
	const char *v2 = "version two, longer than the first";

	/* ENOSPC in the middle of the write: the old object stays whole, no tmp file stays. */
	fi->pwritev = (struct fault_rule){.kind = FAULT_SHORT, .short_bytes = 5, .err = -ENOSPC};
	int r = sl_objstore_put(os, "f/obj", v2, strlen(v2), &err);
	assert_int_equal(r, -ENOSPC);
	assert_true(err.retryable);
	assert_string_equal(err.code, "ENOSPC");
	assert_non_null(strstr(err.message, "f/obj"));
	fault_io_reset();
	get_eq(os, "f/obj", "version one");
	assert_clean_folder("f", 1);

	/* A failed fdatasync: same, and the error is EIO. */
	fi->fdatasync = (struct fault_rule){.kind = FAULT_ERROR, .err = -EIO};
	assert_int_equal(sl_objstore_put(os, "f/obj", v2, strlen(v2), &err), -EIO);
	assert_true(err.retryable);
	fault_io_reset();
	get_eq(os, "f/obj", "version one");
	assert_clean_folder("f", 1);

	/* A new key that failed is not visible at all. */
	fi->pwritev = (struct fault_rule){.kind = FAULT_ERROR, .err = -EIO};
	assert_int_equal(sl_objstore_put(os, "f/new", v2, strlen(v2), &err), -EIO);
	fault_io_reset();
	struct sl_buf b;
	sl_buf_init(&b);
	assert_int_equal(sl_objstore_get(os, "f/new", &b, &err), -ENOENT);
	sl_buf_finish(&b);
	assert_clean_folder("f", 1);

	/* The retry succeeds, and writes the object in full. */
	assert_int_equal(sl_objstore_put(os, "f/obj", v2, strlen(v2), &err), 0);
	assert_true(fi->fdatasync_calls >= 1);
	get_eq(os, "f/obj", v2);
	fault_io_uninstall();
	sl_objstore_destroy(os);
}

static void large_object(void **state)
{
	struct sl_objstore *os = open_store();
	size_t n = (5u << 20) + 123;
	char *big = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	big[n] = '\0';
	put_ok(os, "big/one", big);
	get_eq(os, "big/one", big);
	free(big);
	sl_objstore_destroy(os);
}

static void keys_and_urls(void **state)
{
	const char *good[] = {
	    "a",       "a/b",	"2026/11/28/01/s-shardId-000000000001-1-2.jsonl.zst",
	    ".hidden", "a/..b", "cl\xc3\xa9",
	    "sp ace"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!sl_objstore_key_valid(good[i]))
			fail_msg("rejected: %s", good[i]);
	const char *bad[] = {"",
			     "/a",
			     "a/",
			     "a//b",
			     "../x",
			     "a/../b",
			     "./a",
			     "a/.",
			     "tab\there",
			     "nl\n",
			     "\xff",
			     "x.tmp.0123456789abcdef",
			     "a/b.tmp.0123456789abcdef"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sl_objstore_key_valid(bad[i]))
			fail_msg("accepted: %s", bad[i]);
	assert_false(sl_objstore_key_valid(NULL));
	char longkey[SL_OBJSTORE_KEY_LEN_MAX + 2];
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	assert_false(sl_objstore_key_valid(longkey));
	longkey[SL_OBJSTORE_KEY_LEN_MAX] = '\0';
	assert_true(sl_objstore_key_valid(longkey));

	struct sl_objstore *os = NULL;
	struct sl_objstore_error err;
	assert_int_equal(sl_objstore_create("file://relative/dir", NULL, &os, &err),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_objstore_create("http://x", NULL, &os, &err),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_objstore_create(NULL, NULL, &os, &err), SLUICE_ERR_INVALID_ARGUMENT);
	assert_null(os);

	/* s3:// parsing and credentials: no network at create. */
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_PROFILE");
	char home[300];
	snprintf(home, sizeof(home), "%s/home", root);
	setenv("HOME", home, 1);
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	assert_int_equal(sl_objstore_create("s3://bucket/p", NULL, &os, &err),
			 SLUICE_ERR_UNAUTHORIZED);
	assert_string_equal(err.code, "NoCredentials");
	struct sl_objstore_options o = {.access_key_id = "AK", .secret_access_key = "SK"};
	assert_int_equal(sl_objstore_create("s3://bucket/p/q/", &o, &os, &err), 0);
	assert_string_equal(sl_objstore_url(os), "s3://bucket/p/q/");
	sl_objstore_destroy(os);
	assert_int_equal(sl_objstore_create("s3://b", &o, &os, &err), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_objstore_create("s3://bucket/a//b", &o, &os, &err),
			 SLUICE_ERR_INVALID_ARGUMENT);
	o.endpoint = "ftp://x";
	assert_int_equal(sl_objstore_create("s3://bucket", &o, &os, &err),
			 SLUICE_ERR_INVALID_ARGUMENT);
	o.endpoint = "http://127.0.0.1:1";
	o.part_size_bytes = 1 << 20; /* under S3's 5 MiB */
	assert_int_equal(sl_objstore_create("s3://bucket", &o, &os, &err),
			 SLUICE_ERR_INVALID_ARGUMENT);
	o.part_size_bytes = 0;
	o.list_max_keys = 1001;
	assert_int_equal(sl_objstore_create("s3://bucket", &o, &os, &err),
			 SLUICE_ERR_INVALID_ARGUMENT);

	/* Environment variables. */
	setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
	assert_int_equal(sl_objstore_create("s3://bucket", NULL, &os, &err), 0);
	sl_objstore_destroy(os);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");

	/* A shared-credentials file, by profile; ~/.aws/credentials as the last resort. */
	char cred[400];
	snprintf(cred, sizeof(cred), "%s/credentials", root);
	FILE *f = fopen(cred, "w");
	assert_non_null(f);
	fputs("# comment\n[default]\naws_access_key_id = DEF\naws_secret_access_key=DEFS\n\n"
	      "[ci]\n  aws_access_key_id=CI\n aws_secret_access_key = CIS \naws_session_token = T\n"
	      "[broken]\naws_access_key_id=ONLYKEY\n",
	      f);
	fclose(f);
	struct sl_objstore_options fo = {.credentials_file = cred, .profile = "ci"};
	assert_int_equal(sl_objstore_create("s3://bucket", &fo, &os, &err), 0);
	sl_objstore_destroy(os);
	fo.profile = "broken";
	assert_int_equal(sl_objstore_create("s3://bucket", &fo, &os, &err),
			 SLUICE_ERR_UNAUTHORIZED);
	fo.profile = "missing";
	assert_int_equal(sl_objstore_create("s3://bucket", &fo, &os, &err),
			 SLUICE_ERR_UNAUTHORIZED);
	char dotaws[400];
	snprintf(dotaws, sizeof(dotaws), "%s/.aws", home);
	assert_int_equal(mkdir(home, 0755), 0);
	assert_int_equal(mkdir(dotaws, 0755), 0);
	char cmd[1000];
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s/credentials'", cred, dotaws);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(sl_objstore_create("s3://bucket", NULL, &os, &err), 0);
	sl_objstore_destroy(os);
}

/*
 * A stored object's pages leave the page cache (the writer never reads it back; the next object
 * reuses the memory): counted with mincore over a mapping of the stored file. Skipped on tmpfs,
 * where the page cache is the storage and the hint does nothing.
 */
static void stored_object_leaves_page_cache(void **state)
{
	struct statfs sfs;
	assert_int_equal(statfs(root, &sfs), 0);
	if (sfs.f_type == TMPFS_MAGIC)
		skip();
	struct sl_objstore *os = open_store();
	size_t len = 4u << 20;
	char *body = malloc(len);
	for (size_t i = 0; i < len; i++)
		body[i] = (char)('a' + i % 23);
	struct sl_objstore_error err;
	assert_int_equal(sl_objstore_put(os, "a/big.bin", body, len, &err), 0);
	char path[600];
	snprintf(path, sizeof(path), "%s/store/a/big.bin", root);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	size_t pages = (len + 4095) / 4096;
	unsigned char *vec = calloc(pages, 1);
	assert_int_equal(mincore(map, len, vec), 0);
	size_t resident = 0;
	for (size_t i = 0; i < pages; i++)
		resident += vec[i] & 1;
	assert_true(resident * 8 <= pages);
	free(vec);
	munmap(map, len);
	close(fd);
	get_eq_bytes(os, "a/big.bin", body, len);
	free(body);
	sl_objstore_destroy(os);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(basics, setup, teardown),
	    cmocka_unit_test_setup_teardown(tmp_files_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(atomic_under_faults, setup, teardown),
	    cmocka_unit_test_setup_teardown(large_object, setup, teardown),
	    cmocka_unit_test_setup_teardown(keys_and_urls, setup, teardown),
	    cmocka_unit_test_setup_teardown(stored_object_leaves_page_cache, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
