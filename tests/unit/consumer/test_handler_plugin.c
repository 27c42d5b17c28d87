/*
 * Tests for src/consumer/handler_plugin.c with the plugins of tests/plugins.
 * Env: SLUICE_TEST_PLUGIN_DIR, the build folder holding echo_ok.so & co (exits 77 without it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "consumer/handler_plugin.h"

static const char *plugin_dir;

static const char *plugin(const char *name)
{
	static char path[4096];
	snprintf(path, sizeof(path), "%s/%s.so", plugin_dir, name);
	return path;
}

static struct sluice_handler_batch batch_of(struct sluice_handler_record *recs, size_t n,
					    const char *const *datas)
{
	for (size_t i = 0; i < n; i++) {
		recs[i] = (struct sluice_handler_record){.seq = 50 + i,
							 .ts_ms = 1,
							 .key = "k",
							 .key_len = 1,
							 .data = (const uint8_t *)datas[i],
							 .data_len = (uint32_t)strlen(datas[i])};
	}
	return (struct sluice_handler_batch){
	    .consumer = "c", .stream = "s", .shard_id = 2, .records = recs, .count = n};
}

static void plugin_ok_counts(void **state)
{
	char err[256] = "x";
	struct sl_plugin_handler *a = NULL, *b = NULL;
	assert_int_equal(
	    sl_plugin_handler_create(plugin("echo_ok"), "c", "s", 2, &a, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(
	    sl_plugin_handler_create(plugin("echo_ok"), "c", "s", 3, &b, err, sizeof(err)), 0);
	static const char *const datas[] = {"one", "two", "three"};
	struct sluice_handler_record recs[3];
	struct sluice_handler_batch batch = batch_of(recs, 3, datas);
	struct sluice_handler_result res;
	assert_int_equal(sl_plugin_handler_invoke(a, &batch, &res), 0);
	assert_int_equal(sl_plugin_handler_invoke(a, &batch, &res), 0);
	assert_int_equal(res.status, SLUICE_HANDLER_OK);
	assert_string_equal(res.message, "ok batches=2 records=6");
	/* One state per handler, even though the .so is loaded once. */
	assert_int_equal(sl_plugin_handler_invoke(b, &batch, &res), 0);
	assert_string_equal(res.message, "ok batches=1 records=3");
	sl_plugin_handler_destroy(a);
	sl_plugin_handler_destroy(b);
	sl_plugin_handler_destroy(NULL);
}

static void plugin_failed_from(void **state)
{
	char err[256];
	struct sl_plugin_handler *h = NULL;
	assert_int_equal(
	    sl_plugin_handler_create(plugin("fail_on_marker"), "c", "s", 2, &h, err, sizeof(err)),
	    0);
	struct sluice_handler_record recs[4];
	struct sluice_handler_result res;

	static const char *const fine[] = {"a", "b"};
	struct sluice_handler_batch batch = batch_of(recs, 2, fine);
	assert_int_equal(sl_plugin_handler_invoke(h, &batch, &res), 0);
	assert_int_equal(res.status, SLUICE_HANDLER_OK);

	static const char *const partial[] = {"a", "b", "FAIL now", "FAIL too"};
	batch = batch_of(recs, 4, partial);
	assert_int_equal(sl_plugin_handler_invoke(h, &batch, &res), 0);
	assert_int_equal(res.status, SLUICE_HANDLER_FAILED_FROM);
	assert_int_equal(res.failed_from, 2);
	assert_string_equal(res.message, "FAIL marker at seq 52");

	/* handle() < 0: the whole batch failed, its message kept. */
	static const char *const error[] = {"a", "FAIL", "ERROR"};
	batch = batch_of(recs, 3, error);
	assert_int_equal(sl_plugin_handler_invoke(h, &batch, &res), 0);
	assert_int_equal(res.status, SLUICE_HANDLER_ERROR);
	assert_string_equal(res.message, "ERROR marker at seq 52");
	sl_plugin_handler_destroy(h);
}

static void refused(const char *path, const char *want_in_msg)
{
	char err[256] = "";
	struct sl_plugin_handler *h = (struct sl_plugin_handler *)0x1;
	assert_int_equal(sl_plugin_handler_create(path, "c", "s", 0, &h, err, sizeof(err)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_ptr_equal(h, (struct sl_plugin_handler *)0x1); /* untouched on failure */
	if (!strstr(err, want_in_msg))
		fail_msg("message \"%s\" lacks \"%s\"", err, want_in_msg);
	assert_non_null(strstr(err, path)); /* names the file */
}

static void plugin_refusals(void **state)
{
	refused(plugin("bad_abi"), "handler ABI version 999, this sluiced supports 1");
	refused(plugin("missing"), "No such file or directory");
	refused(plugin("not_a_plugin"), "not a sluice handler plugin (no sluice_handler_entry_v1");
	refused(plugin("init_fail"), "init failed: Permission denied");
	refused(plugin_dir, "not a regular file");
	refused("no-such-plugin.so", "No such file or directory");

	/* A file that is not a shared object at all. */
	char path[4200];
	snprintf(path, sizeof(path), "%s/../unit/consumer/garbage.so", plugin_dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("not an ELF file\n", f);
	fclose(f);
	refused(path, "cannot load");
	remove(path);

	char err[8];
	struct sl_plugin_handler *h = NULL;
	assert_int_equal(sl_plugin_handler_create("", "c", "s", 0, &h, err, sizeof(err)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(strlen(err), sizeof(err) - 1); /* truncated, terminated */
	assert_int_equal(sl_plugin_handler_create(plugin("bad_abi"), "c", "s", 0, &h, NULL, 0),
			 SLUICE_ERR_INVALID_ARGUMENT);
}

int main(void)
{
	plugin_dir = getenv("SLUICE_TEST_PLUGIN_DIR");
	if (!plugin_dir) {
		fprintf(stderr, "SLUICE_TEST_PLUGIN_DIR is not set: skipped\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(plugin_ok_counts),
	    cmocka_unit_test(plugin_failed_from),
	    cmocka_unit_test(plugin_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
