#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fault_io.h"
#include "log/shard_log.h"
#include "log_test_util.h"

#include <sluice/errors.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1700000000000ll

static struct fault_io *fio;

static int setup(void **state)
{
	fio = fault_io_install();
	return 0;
}

static int teardown(void **state)
{
	fault_io_uninstall();
	return 0;
}

static struct sl_shard_log *open_log(const struct sl_shard_log_config *c)
{
	struct sl_shard_log *log = NULL;
	assert_int_equal(sl_shard_log_open(c, &log), 0);
	return log;
}

static void expect_same(struct sl_shard_log *log, const struct sl_shard_log_stats *before,
			const char *dir)
{
	struct sl_shard_log_stats st;
	sl_shard_log_stats(log, &st);
	assert_true(st.next_seq == before->next_seq);
	assert_true(st.bytes == before->bytes);
	assert_int_equal(st.segments, before->segments);
	assert_false(st.failed);
}

static size_t count_all(struct sl_shard_log *log)
{
	struct sl_read_batch b;
	sl_read_batch_init(&b);
	assert_int_equal(sl_shard_log_read(log, 0, 100000, UINT32_MAX, T0, &b), 0);
	for (size_t i = 0; i < b.count; i++)
		assert_true(b.records[i].seq == i + 1);
	size_t n = b.count;
	sl_read_batch_finish(&b);
	return n;
}

static void write_errors_leave_log_unchanged(void **state)
{
	int errs[] = {-ENOSPC, -EIO};
	for (int e = 0; e < 2; e++) {
		char *dir = tmpdir_make();
		struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_GROUP);
		struct sl_shard_log *log = open_log(&c);
		struct done_rec d = {0};
		assert_int_equal(append_n(log, 5, T0, &d, NULL), 0);
		struct sl_shard_log_stats before;
		sl_shard_log_stats(log, &before);
		/* Group commit preallocates: the file is longer than its records. */
		assert_true(file_bytes(seg_path(dir, 1, "log")) > (long long)before.bytes);

		fio->pwritev =
		    (struct fault_rule){.kind = FAULT_ERROR, .err = errs[e], .sticky = true};
		for (int i = 0; i < 3; i++)
			assert_int_equal(append_n(log, 50, T0, &d, NULL), errs[e]);
		expect_same(log, &before, dir);
		/* The undo cut what the failed writes left (and the preallocated tail with it). */
		assert_int_equal(file_bytes(seg_path(dir, 1, "log")), (long long)before.bytes);
		assert_int_equal(count_all(log), 5);

		/* The disk has room again: appends continue where they were. */
		fio->pwritev.kind = FAULT_NONE;
		uint64_t first;
		assert_int_equal(append_n(log, 2, T0, &d, &first), 0);
		assert_true(first == 6);
		assert_int_equal(sl_shard_log_sync(log, T0), 0);
		assert_int_equal(d.calls, 2); /* failed appends never call done() */
		assert_true(d.status[0] == 0 && d.status[1] == 0);
		sl_shard_log_close(log);
		log = open_log(&c);
		assert_int_equal(count_all(log), 7);
		sl_shard_log_close(log);
		tmpdir_remove(dir);
	}
}

static void short_writes(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	struct sl_shard_log *log = open_log(&c);
	assert_int_equal(append_n(log, 5, T0, NULL, NULL), 0);
	struct sl_shard_log_stats before;
	sl_shard_log_stats(log, &before);
	long long size = file_bytes(seg_path(dir, 1, "log"));

	/* A short write followed by ENOSPC (the disk filled up mid-batch): undone. */
	fio->pwritev = (struct fault_rule){.kind = FAULT_SHORT, .short_bytes = 100, .err = -ENOSPC};
	assert_int_equal(append_n(log, 50, T0, NULL, NULL), -ENOSPC);
	assert_int_equal(fio->pwritev.fired, 2);
	expect_same(log, &before, dir);
	assert_int_equal(file_bytes(seg_path(dir, 1, "log")), size);

	/* A lone short write is finished by the retry. */
	fio->pwritev = (struct fault_rule){.kind = FAULT_SHORT, .short_bytes = 77};
	int calls = fio->pwritev_calls;
	assert_int_equal(append_n(log, 50, T0, NULL, NULL), 0);
	assert_true(fio->pwritev_calls - calls >= 2);
	assert_int_equal(count_all(log), 55);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void index_write_error_undoes_batch(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	struct sl_shard_log *log = open_log(&c);
	struct sl_shard_log_stats before;
	sl_shard_log_stats(log, &before);
	/* First append: the data write passes, the .idx write (first record's entry) fails. */
	fio->pwritev = (struct fault_rule){.kind = FAULT_ERROR, .skip = 1, .err = -EIO};
	assert_int_equal(append_n(log, 3, T0, NULL, NULL), -EIO);
	expect_same(log, &before, dir);
	assert_int_equal(file_bytes(seg_path(dir, 1, "log")), 32);
	assert_int_equal(file_bytes(seg_path(dir, 1, "idx")), 0);
	assert_int_equal(append_n(log, 3, T0, NULL, NULL), 0);
	assert_int_equal(file_bytes(seg_path(dir, 1, "idx")), 24);
	sl_shard_log_close(log);
	log = open_log(&c);
	assert_int_equal(count_all(log), 3);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void failed_undo_fails_the_log(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	struct sl_shard_log *log = open_log(&c);
	assert_int_equal(append_n(log, 3, T0, NULL, NULL), 0);
	fio->pwritev = (struct fault_rule){.kind = FAULT_SHORT, .short_bytes = 10, .err = -EIO};
	fio->ftruncate = (struct fault_rule){.kind = FAULT_ERROR, .err = -EIO};
	struct msg_capture mc;
	msg_capture_install(&mc);
	assert_int_equal(append_n(log, 3, T0, NULL, NULL), -EIO);
	msg_capture_uninstall();
	assert_true(mc.errors >= 1);
	struct sl_shard_log_stats st;
	sl_shard_log_stats(log, &st);
	assert_true(st.failed);
	fio->pwritev.kind = FAULT_NONE;
	assert_int_equal(append_n(log, 1, T0, NULL, NULL), SLUICE_ERR_UNAVAILABLE);
	sl_shard_log_close(log);
	/* Recovery cuts the garbage the failed undo left behind. */
	msg_capture_install(&mc);
	log = open_log(&c);
	msg_capture_uninstall();
	assert_int_equal(mc.warns, 1);
	assert_int_equal(count_all(log), 3);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void failed_sync_fails_waiting_batches(void **state)
{
	for (int ticket = 0; ticket < 2; ticket++) {
		char *dir = tmpdir_make();
		struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_GROUP);
		struct sl_shard_log *log = open_log(&c);
		struct done_rec d = {0};
		assert_int_equal(append_n(log, 2, T0, &d, NULL), 0);
		assert_int_equal(append_n(log, 2, T0, &d, NULL), 0);
		struct msg_capture mc;
		msg_capture_install(&mc);
		if (ticket) {
			/* sluiced's way: it ran fdatasync itself and reports the failure. */
			struct sl_sync_ticket t;
			assert_int_equal(sl_shard_log_sync_begin(log, &t), 0);
			sl_shard_log_sync_end(log, &t, -EIO, T0);
		} else {
			fio->fdatasync = (struct fault_rule){.kind = FAULT_ERROR, .err = -EIO};
			assert_int_equal(sl_shard_log_sync(log, T0), -EIO);
		}
		msg_capture_uninstall();
		assert_int_equal(d.calls, 2);
		assert_int_equal(d.status[0], -EIO);
		assert_int_equal(d.status[1], -EIO);
		struct sl_shard_log_stats st;
		sl_shard_log_stats(log, &st);
		assert_true(st.failed);
		assert_true(st.durable_seq == 1);
		assert_int_equal(append_n(log, 1, T0, &d, NULL), SLUICE_ERR_UNAVAILABLE);
		assert_false(sl_shard_log_sync_wanted(log, T0));
		struct sl_sync_ticket t;
		assert_int_equal(sl_shard_log_sync_begin(log, &t), SLUICE_ERR_UNAVAILABLE);
		sl_shard_log_close(log);
		assert_int_equal(d.calls, 2);
		tmpdir_remove(dir);
	}
}

static void failed_sync_at_roll_fails_the_log(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_GROUP);
	c.segment_bytes_max = 300;
	struct sl_shard_log *log = open_log(&c);
	struct done_rec d = {0};
	assert_int_equal(append_n(log, 4, T0, &d, NULL), 0);
	fio->fdatasync = (struct fault_rule){.kind = FAULT_ERROR, .err = -EIO};
	struct msg_capture mc;
	msg_capture_install(&mc);
	assert_int_equal(append_n(log, 4, T0, &d, NULL), -EIO);
	msg_capture_uninstall();
	sl_shard_log_service(log, T0);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.status[0], -EIO);
	assert_int_equal(append_n(log, 1, T0, &d, NULL), SLUICE_ERR_UNAVAILABLE);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

/* The newest segment's first seq, from the folder listing. */
static uint64_t newest_segment(const char *dir)
{
	DIR *dd = opendir(dir);
	struct dirent *de;
	uint64_t best = 0;
	while ((de = readdir(dd))) {
		uint64_t v;
		if (strstr(de->d_name, ".log") && sscanf(de->d_name, "%" SCNu64, &v) == 1 &&
		    v > best)
			best = v;
	}
	closedir(dd);
	return best;
}

static void open_reads_only_the_newest_segment(void **state)
{
	int reads[2];
	for (int k = 0; k < 2; k++) {
		char *dir = tmpdir_make();
		struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
		c.segment_bytes_max = 1000;
		struct sl_shard_log *log = open_log(&c);
		int batches = k ? 400 : 20; /* ~80 segments vs ~4 */
		for (int i = 0; i < batches; i++)
			assert_int_equal(append_n(log, 4, T0, NULL, NULL), 0);
		sl_shard_log_close(log);
		uint64_t newest = newest_segment(dir);
		char suffix[64];

		fault_io_reset();
		log = open_log(&c);
		reads[k] = fio->pread_calls;
		assert_true(fault_io_files_read() <= 2); /* the newest .log and its .idx */
		snprintf(suffix, sizeof(suffix), "/%020" PRIu64 ".log", newest);
		assert_true(fault_io_preads_on(suffix) > 0);
		struct sl_shard_log_stats st;
		sl_shard_log_stats(log, &st);
		assert_true(st.next_seq == (uint64_t)batches * 4 + 1);
		if (k)
			assert_true(st.segments > 50);
		/* Reads still reach the oldest data (loading its index lazily). */
		assert_int_equal(count_all(log), (size_t)batches * 4);
		sl_shard_log_close(log);
		tmpdir_remove(dir);
	}
	assert_int_equal(reads[0], reads[1]);
}

/*
 * A read that stops at its byte limit copies little more than it returns out of the file: every
 * pread is bounded by what the limits still need (a firehose window of 8 MiB once read ~16 MiB).
 * 3000 records of 1000 bytes in one segment, read 1 MiB and then 200 KiB at a time.
 */
static void read_stops_near_its_byte_limit(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	c.segment_bytes_max = 64u << 20;
	struct sl_shard_log *log = open_log(&c);
	static uint8_t data[1000];
	memset(data, 'x', sizeof(data));
	struct sl_record_in recs[100];
	for (int i = 0; i < 100; i++)
		recs[i] = (struct sl_record_in){
		    .key = (const uint8_t *)"key", .key_len = 3, .data = data, .data_len = 1000};
	for (int b = 0; b < 30; b++)
		assert_int_equal(sl_shard_log_append(log, recs, 100, T0, NULL, NULL, NULL), 0);
	const uint64_t frame = 32 + 3 + 1000 + 8;
	struct sl_read_batch rb;
	sl_read_batch_init(&rb);
	uint32_t limits[] = {1u << 20, 200u << 10};
	for (int k = 0; k < 2; k++) {
		uint64_t from = 1, returned = 0;
		fault_io_reset();
		while (from <= 3000) {
			assert_int_equal(sl_shard_log_read(log, from, 65536, limits[k], T0, &rb),
					 0);
			assert_true(rb.count > 0);
			assert_true(rb.records[0].seq == from);
			assert_true(rb.data_bytes <= limits[k]);
			returned += rb.count * frame;
			from = rb.next_seq;
		}
		assert_true(from == 3001);
		/* Each read may overshoot by its minimum chunk and a frame or two, not by
		 * megabytes. */
		uint64_t reads = (3000 * frame + limits[k] - 1) / limits[k] + 1;
		assert_true(fio->pread_bytes >= returned);
		assert_true(fio->pread_bytes <= returned + reads * ((64u << 10) + 2 * frame));
	}
	sl_read_batch_finish(&rb);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(write_errors_leave_log_unchanged, setup, teardown),
	    cmocka_unit_test_setup_teardown(short_writes, setup, teardown),
	    cmocka_unit_test_setup_teardown(index_write_error_undoes_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(failed_undo_fails_the_log, setup, teardown),
	    cmocka_unit_test_setup_teardown(failed_sync_fails_waiting_batches, setup, teardown),
	    cmocka_unit_test_setup_teardown(failed_sync_at_roll_fails_the_log, setup, teardown),
	    cmocka_unit_test_setup_teardown(open_reads_only_the_newest_segment, setup, teardown),
	    cmocka_unit_test_setup_teardown(read_stops_near_its_byte_limit, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
