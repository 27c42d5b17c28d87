/* Tests of src/consumer/checkpoint.c: save/load, the checksum line, corrupt and missing files,
 * remove_all, and consumer names that would leave the checkpoints folder. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sluice/errors.h>
#include <sluice/types.h>

#include "consumer/checkpoint.h"

#include <xxhash.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[PATH_MAX];
	snprintf(tmpl, sizeof(tmpl), "%s/sl-ckpt-test-XXXXXX", base && *base ? base : "/tmp");
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char p[PATH_MAX];
			snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
			rm_rf(p);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static void ckpt_path(const char *dir, const char *consumer, uint32_t shard, char *out, size_t len)
{
	snprintf(out, len, "%s/checkpoints/%s/shardId-%012" PRIu32, dir, consumer, shard);
}

static void write_raw(const char *dir, const char *consumer, uint32_t shard, const char *bytes,
		      size_t n)
{
	char p[PATH_MAX];
	ckpt_path(dir, consumer, shard, p, sizeof(p));
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(bytes, 1, n, f), n);
	fclose(f);
}

static void read_raw(const char *dir, const char *consumer, uint32_t shard, char *out, size_t cap)
{
	char p[PATH_MAX];
	ckpt_path(dir, consumer, shard, p, sizeof(p));
	FILE *f = fopen(p, "rb");
	assert_non_null(f);
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	fclose(f);
}

static void save_load(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	uint64_t seq = 99;
	/* Nothing saved: -ENOENT (folder missing), then per shard. */
	assert_int_equal(sl_checkpoint_load(dir, "c1", 0, &seq), -ENOENT);
	assert_int_equal(seq, 99);
	static const uint64_t values[] = {0, 1, 42, 1000000007, UINT64_MAX};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		assert_int_equal(sl_checkpoint_save(dir, "c1", 3, values[i]), 0);
		assert_int_equal(sl_checkpoint_load(dir, "c1", 3, &seq), 0);
		assert_int_equal(seq, values[i]);
	}
	assert_int_equal(sl_checkpoint_load(dir, "c1", 4, &seq), -ENOENT);
	/* Shards and consumers are independent. */
	assert_int_equal(sl_checkpoint_save(dir, "c1", 4, 17), 0);
	assert_int_equal(sl_checkpoint_save(dir, "c2", 3, 5), 0);
	assert_int_equal(sl_checkpoint_save(dir, "c1", UINT32_MAX, 8), 0);
	assert_int_equal(sl_checkpoint_load(dir, "c1", 3, &seq), 0);
	assert_int_equal(seq, UINT64_MAX);
	assert_int_equal(sl_checkpoint_load(dir, "c1", 4, &seq), 0);
	assert_int_equal(seq, 17);
	assert_int_equal(sl_checkpoint_load(dir, "c2", 3, &seq), 0);
	assert_int_equal(seq, 5);
	assert_int_equal(sl_checkpoint_load(dir, "c1", UINT32_MAX, &seq), 0);
	assert_int_equal(seq, 8);

	/* The exact file format: number, checksum of the digits, no temp file left. */
	char text[64], want[64];
	read_raw(dir, "c2", 3, text, sizeof(text));
	snprintf(want, sizeof(want), "5\n%016" PRIx64 "\n", (uint64_t)XXH3_64bits("5", 1));
	assert_string_equal(text, want);
	char tmp[PATH_MAX];
	ckpt_path(dir, "c2", 3, tmp, sizeof(tmp) - 8);
	strcat(tmp, ".tmp");
	assert_int_not_equal(access(tmp, F_OK), 0);

	/* A stale temp file does not matter. */
	char p[PATH_MAX];
	ckpt_path(dir, "c2", 3, p, sizeof(p) - 8);
	strcat(p, ".tmp");
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("garbage", f);
	fclose(f);
	assert_int_equal(sl_checkpoint_load(dir, "c2", 3, &seq), 0);
	assert_int_equal(seq, 5);
	assert_int_equal(sl_checkpoint_save(dir, "c2", 3, 6), 0);
	assert_int_equal(sl_checkpoint_load(dir, "c2", 3, &seq), 0);
	assert_int_equal(seq, 6);

	/* data_dir itself must exist. */
	char missing[PATH_MAX + 16];
	snprintf(missing, sizeof(missing), "%s/nope", dir);
	assert_int_equal(sl_checkpoint_save(missing, "c1", 0, 1), -ENOENT);

	rm_rf(dir);
	free(dir);
}

static void hand_edited_and_corrupt(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	assert_int_equal(sl_checkpoint_save(dir, "c", 0, 1), 0);
	uint64_t seq = 0;

	/* An operator writes a bare number: accepted. */
	write_raw(dir, "c", 0, "12345\n", 6);
	assert_int_equal(sl_checkpoint_load(dir, "c", 0, &seq), 0);
	assert_int_equal(seq, 12345);
	/* Uppercase hex checksum is accepted too. */
	char good[64];
	int n =
	    snprintf(good, sizeof(good), "77\n%016" PRIX64 "\n", (uint64_t)XXH3_64bits("77", 2));
	write_raw(dir, "c", 0, good, (size_t)n);
	assert_int_equal(sl_checkpoint_load(dir, "c", 0, &seq), 0);
	assert_int_equal(seq, 77);

	char wrong_sum[64];
	n = snprintf(wrong_sum, sizeof(wrong_sum), "78\n%016" PRIx64 "\n",
		     (uint64_t)XXH3_64bits("77", 2));
	static const char *const bad[] = {
	    "",			       /* empty (a torn create) */
	    "\n",		       /* no digits */
	    "12",		       /* no newline */
	    "12 \n",		       /* trailing space */
	    " 12\n",		       /* leading space */
	    "-1\n",		       /* sign */
	    "+1\n",		       /* sign */
	    "0x10\n",		       /* hex */
	    "18446744073709551616\n",  /* UINT64_MAX + 1 */
	    "000000000000000000001\n", /* 21 digits */
	    "12\nabc\n",	       /* short checksum */
	    "12\n0123456789abcdeg\n",  /* not hex */
	    "12\n0123456789abcdef",    /* checksum without newline */
	    "12\n0123456789abcdef\nX", /* trailing bytes */
	    "12\n\n",		       /* empty checksum line */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_raw(dir, "c", 0, bad[i], strlen(bad[i]));
		seq = 4242;
		int r = sl_checkpoint_load(dir, "c", 0, &seq);
		if (r != SLUICE_ERR_CORRUPT)
			fail_msg("case %zu '%s': got %d", i, bad[i], r);
		assert_int_equal(seq, 4242); /* untouched */
	}
	write_raw(dir, "c", 0, wrong_sum, (size_t)n);
	assert_int_equal(sl_checkpoint_load(dir, "c", 0, &seq), SLUICE_ERR_CORRUPT);
	/* Embedded NUL. */
	write_raw(dir, "c", 0, "1\0\n", 3);
	assert_int_equal(sl_checkpoint_load(dir, "c", 0, &seq), SLUICE_ERR_CORRUPT);
	/* A long file. */
	char lng[200];
	memset(lng, '1', sizeof(lng));
	write_raw(dir, "c", 0, lng, sizeof(lng));
	assert_int_equal(sl_checkpoint_load(dir, "c", 0, &seq), SLUICE_ERR_CORRUPT);
	/* A folder or a symlink where the file should be. */
	char p[PATH_MAX];
	ckpt_path(dir, "c", 1, p, sizeof(p));
	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(sl_checkpoint_load(dir, "c", 1, &seq), SLUICE_ERR_CORRUPT);
	ckpt_path(dir, "c", 2, p, sizeof(p));
	assert_int_equal(symlink("/etc/passwd", p), 0);
	assert_int_equal(sl_checkpoint_load(dir, "c", 2, &seq), SLUICE_ERR_CORRUPT);
	/* Saving over the corrupt file repairs it. */
	assert_int_equal(sl_checkpoint_save(dir, "c", 0, 9), 0);
	assert_int_equal(sl_checkpoint_load(dir, "c", 0, &seq), 0);
	assert_int_equal(seq, 9);

	rm_rf(dir);
	free(dir);
}

static void names_that_escape(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	static const char *const bad[] = {"", ".", "..", "../x", "a/b", "/abs", "a b", "a\nb"};
	uint64_t seq;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sl_checkpoint_save(dir, bad[i], 0, 1), SLUICE_ERR_INVALID_NAME);
		assert_int_equal(sl_checkpoint_load(dir, bad[i], 0, &seq), SLUICE_ERR_INVALID_NAME);
		assert_int_equal(sl_checkpoint_remove_all(dir, bad[i]), SLUICE_ERR_INVALID_NAME);
	}
	char lng[SLUICE_NAME_LEN_MAX + 2];
	memset(lng, 'a', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	assert_int_equal(sl_checkpoint_save(dir, lng, 0, 1), SLUICE_ERR_INVALID_NAME);
	/* Nothing was created at all (not even the checkpoints folder). */
	char p[PATH_MAX + 16];
	snprintf(p, sizeof(p), "%s/checkpoints", dir);
	assert_int_not_equal(access(p, F_OK), 0);
	rm_rf(dir);
	free(dir);
}

static void remove_all(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	/* Nothing there: fine. */
	assert_int_equal(sl_checkpoint_remove_all(dir, "c"), 0);
	for (uint32_t s = 0; s < 5; s++)
		assert_int_equal(sl_checkpoint_save(dir, "c", s, s + 100), 0);
	assert_int_equal(sl_checkpoint_save(dir, "keep", 0, 7), 0);
	/* A leftover temp file goes too. */
	char p[PATH_MAX];
	ckpt_path(dir, "c", 9, p, sizeof(p) - 8);
	strcat(p, ".tmp");
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);

	assert_int_equal(sl_checkpoint_remove_all(dir, "c"), 0);
	char folder[PATH_MAX + 32];
	snprintf(folder, sizeof(folder), "%s/checkpoints/c", dir);
	assert_int_not_equal(access(folder, F_OK), 0);
	uint64_t seq;
	assert_int_equal(sl_checkpoint_load(dir, "c", 0, &seq), -ENOENT);
	assert_int_equal(sl_checkpoint_load(dir, "keep", 0, &seq), 0);
	assert_int_equal(seq, 7);
	/* A consumer re-created under the same name starts clean and can save again. */
	assert_int_equal(sl_checkpoint_save(dir, "c", 0, 1), 0);
	assert_int_equal(sl_checkpoint_load(dir, "c", 0, &seq), 0);
	assert_int_equal(seq, 1);
	/* A subfolder that is not ours is reported, not deleted. */
	snprintf(folder, sizeof(folder), "%s/checkpoints/c/sub", dir);
	assert_int_equal(mkdir(folder, 0755), 0);
	assert_int_equal(sl_checkpoint_remove_all(dir, "c"), -ENOTEMPTY);
	assert_int_equal(access(folder, F_OK), 0);

	rm_rf(dir);
	free(dir);
}

/* Two threads saving the same shard (a firehose's sink and the checkpoint writer do). */
struct saver {
	const char *dir;
	uint64_t base;
	int failures;
	int first_error;
};

#define SAVES_PER_THREAD 200

static void *save_many(void *arg)
{
	struct saver *sv = arg;
	for (uint64_t i = 0; i < SAVES_PER_THREAD; i++) {
		int r = sl_checkpoint_save(sv->dir, "fh", 3, sv->base + i);
		if (r < 0 && sv->failures++ == 0)
			sv->first_error = r;
	}
	return NULL;
}

static void concurrent_saves_of_one_shard(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	struct saver a = {.dir = dir, .base = 1000}, b = {.dir = dir, .base = 5000};
	pthread_t ta, tb;
	assert_int_equal(pthread_create(&ta, NULL, save_many, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, save_many, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	/* Without the save lock one thread renames the shared temp file away from the other. */
	if (a.failures || b.failures)
		fail_msg("saves failed: %d and %d (first: %d, %d)", a.failures, b.failures,
			 a.first_error, b.first_error);
	uint64_t seq = 0;
	assert_int_equal(sl_checkpoint_load(dir, "fh", 3, &seq), 0);
	assert_true(seq == a.base + SAVES_PER_THREAD - 1 || seq == b.base + SAVES_PER_THREAD - 1);
	/* A thread that holds the lock decides and saves without another save in between. */
	pthread_mutex_t *mu = sl_checkpoint_lock("fh", 3);
	assert_ptr_equal(mu, sl_checkpoint_lock("fh", 3));
	pthread_mutex_lock(mu);
	assert_int_equal(sl_checkpoint_save_locked(dir, "fh", 3, 42), 0);
	pthread_mutex_unlock(mu);
	assert_int_equal(sl_checkpoint_load(dir, "fh", 3, &seq), 0);
	assert_int_equal(seq, 42);
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(save_load),
	    cmocka_unit_test(hand_edited_and_corrupt),
	    cmocka_unit_test(names_that_escape),
	    cmocka_unit_test(remove_all),
	    cmocka_unit_test(concurrent_saves_of_one_shard),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
