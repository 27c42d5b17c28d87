#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "log/shard_log.h"
#include "log_test_util.h"

#include <sluice/errors.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1700000000000ll
#define FRAME 45 /* "key" + "v0": 32 + 3 + 2 + 8 */

static void *slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	void *p = malloc(n ? (size_t)n : 1);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*ret_len = (size_t)n;
	return p;
}

static void spit(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

static void flip_bit(const char *path, long off, int bit)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= (uint8_t)(1u << bit);
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static struct sl_shard_log *open_log(const struct sl_shard_log_config *c)
{
	struct sl_shard_log *log = NULL;
	assert_int_equal(sl_shard_log_open(c, &log), 0);
	return log;
}

/* Check records 1..n are all there with the data append_n(…, 1, …) gives them. */
static void check_records(struct sl_shard_log *log, uint64_t n)
{
	struct sl_read_batch b;
	sl_read_batch_init(&b);
	assert_int_equal(sl_shard_log_read(log, 0, 100000, UINT32_MAX, T0, &b), 0);
	assert_int_equal(b.count, n);
	for (size_t i = 0; i < b.count; i++) {
		assert_true(b.records[i].seq == i + 1);
		assert_int_equal(b.records[i].data_len, 2);
		assert_memory_equal(b.records[i].data, "v0", 2);
	}
	sl_read_batch_finish(&b);
}

static void truncated_at_every_offset_of_last_record(void **state)
{
	char *base = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(base, SL_FSYNC_NEVER);
	c.index_interval_bytes = 64; /* an index entry every 2 records, one on the last */
	struct sl_shard_log *log = open_log(&c);
	for (int i = 0; i < 20; i++)
		assert_int_equal(append_n(log, 1, T0, NULL, NULL), 0);
	sl_shard_log_close(log);
	size_t log_len, idx_len;
	uint8_t *log_bytes = slurp(seg_path(base, 1, "log"), &log_len);
	uint8_t *idx_bytes = slurp(seg_path(base, 1, "idx"), &idx_len);
	assert_int_equal(log_len, 32 + 20 * FRAME);
	size_t last = log_len - FRAME;

	for (size_t cut = last; cut <= log_len; cut++) {
		char *dir = tmpdir_make();
		spit(seg_path(dir, 1, "log"), log_bytes, cut);
		spit(seg_path(dir, 1, "idx"), idx_bytes, idx_len);
		c.dir = dir;
		struct msg_capture mc;
		msg_capture_install(&mc);
		log = open_log(&c);
		msg_capture_uninstall();
		bool whole = cut == log_len;
		/* A torn tail is reported; a cut exactly at a frame boundary is just shorter. */
		assert_int_equal(mc.warns, cut > last && !whole ? 1 : 0);
		struct sl_shard_log_stats st;
		sl_shard_log_stats(log, &st);
		assert_true(st.next_seq == (whole ? 21u : 20u));
		check_records(log, whole ? 20 : 19);
		assert_int_equal(file_bytes(seg_path(dir, 1, "log")), whole ? log_len : last);
		/* Appends continue with the right seq, and survive a reopen. */
		uint64_t first;
		assert_int_equal(append_n(log, 1, T0, NULL, &first), 0);
		assert_true(first == (whole ? 21u : 20u));
		sl_shard_log_close(log);
		msg_capture_install(&mc);
		log = open_log(&c);
		msg_capture_uninstall();
		assert_int_equal(mc.warns, 0);
		check_records(log, whole ? 21 : 20);
		sl_shard_log_close(log);
		tmpdir_remove(dir);
	}
	free(log_bytes);
	free(idx_bytes);
	tmpdir_remove(base);
}

static void flipped_bit_detected_on_read_and_recovery(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	struct sl_shard_log *log = open_log(&c);
	for (int i = 0; i < 10; i++)
		assert_int_equal(append_n(log, 1, T0, NULL, NULL), 0);
	/* Damage record 5's data under the open log. */
	flip_bit(seg_path(dir, 1, "log"), 32 + 4 * FRAME + 36, 3);
	struct sl_read_batch b;
	sl_read_batch_init(&b);
	struct msg_capture mc;
	msg_capture_install(&mc);
	assert_int_equal(sl_shard_log_read(log, 1, 100, UINT32_MAX, T0, &b), SLUICE_ERR_CORRUPT);
	assert_int_equal(b.count, 0);
	/* Records before it are still readable up to it. */
	assert_int_equal(sl_shard_log_read(log, 1, 4, UINT32_MAX, T0, &b), 0);
	assert_int_equal(b.count, 4);
	sl_shard_log_close(log);

	/* Recovery cuts the newest segment at the damaged record. */
	mc.warns = 0;
	log = open_log(&c);
	msg_capture_uninstall();
	assert_int_equal(mc.warns, 1);
	struct sl_shard_log_stats st;
	sl_shard_log_stats(log, &st);
	assert_true(st.next_seq == 5);
	check_records(log, 4);
	sl_read_batch_finish(&b);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void damage_in_sealed_segment_found_on_read(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	c.segment_bytes_max = 32 + 5 * FRAME;
	struct sl_shard_log *log = open_log(&c);
	for (int i = 0; i < 20; i++)
		assert_int_equal(append_n(log, 1, T0, NULL, NULL), 0);
	sl_shard_log_close(log);
	flip_bit(seg_path(dir, 1, "log"), 32 + 2 * FRAME + 10, 0); /* seq field of record 3 */
	struct msg_capture mc;
	msg_capture_install(&mc);
	log = open_log(&c); /* sealed segments are trusted: open does not read them */
	assert_int_equal(mc.warns, 0);
	struct sl_read_batch b;
	sl_read_batch_init(&b);
	assert_int_equal(sl_shard_log_read(log, 1, 100, UINT32_MAX, T0, &b), SLUICE_ERR_CORRUPT);
	/* Past the damage reads work. */
	assert_int_equal(sl_shard_log_read(log, 6, 100, UINT32_MAX, T0, &b), 0);
	assert_int_equal(b.count, 15);
	msg_capture_uninstall();
	sl_read_batch_finish(&b);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void bogus_index_entries_dropped(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	c.index_interval_bytes = 64;
	struct sl_shard_log *log = open_log(&c);
	for (int i = 0; i < 10; i++)
		assert_int_equal(append_n(log, 1, T0, NULL, NULL), 0);
	sl_shard_log_close(log);
	size_t idx_len;
	uint8_t *idx = slurp(seg_path(dir, 1, "idx"), &idx_len);
	/* Point the last entry into the middle of its record. */
	uint64_t off;
	memcpy(&off, idx + idx_len - 16, 8);
	off += 3;
	memcpy(idx + idx_len - 16, &off, 8);
	spit(seg_path(dir, 1, "idx"), idx, idx_len);
	log = open_log(&c);
	check_records(log, 10);
	struct sluice_position p = {SLUICE_POS_AT_SEQ, 9};
	uint64_t seq;
	assert_int_equal(sl_shard_log_seek(log, &p, T0, &seq), 0);
	assert_true(seq == 9);
	sl_shard_log_close(log);
	/* The .idx was rewritten to match. */
	size_t idx2_len;
	uint8_t *idx2 = slurp(seg_path(dir, 1, "idx"), &idx2_len);
	assert_int_equal(idx2_len, idx_len);
	memcpy(&off, idx2 + idx2_len - 16, 8);
	assert_true((off - 32) % FRAME == 0);
	free(idx);
	free(idx2);
	tmpdir_remove(dir);
}

static void empty_or_torn_new_segment(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	c.segment_bytes_max = 32 + 5 * FRAME;
	struct sl_shard_log *log = open_log(&c);
	for (int i = 0; i < 11; i++)
		assert_int_equal(append_n(log, 1, T0 + i, NULL, NULL), 0);
	sl_shard_log_close(log);
	/* A crash right after the roll to segment 11: its header is torn, record 11 lost. */
	assert_true(file_bytes(seg_path(dir, 11, "log")) == 32 + FRAME);
	spit(seg_path(dir, 11, "log"), "SLSG\x01", 5);
	struct msg_capture mc;
	msg_capture_install(&mc);
	log = open_log(&c);
	msg_capture_uninstall();
	assert_int_equal(mc.warns, 1);
	struct sl_shard_log_stats st;
	sl_shard_log_stats(log, &st);
	assert_true(st.next_seq == 11);
	assert_true(st.last_ts_ms == T0 + 9); /* from the sealed segment's index */
	uint64_t first;
	assert_int_equal(append_n(log, 1, T0, NULL, &first), 0);
	assert_true(first == 11);
	check_records(log, 11);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

/*
 * Group commit keeps the active segment's file ahead of its records in written zeros: a close
 * cuts the tail, and recovery after a crash (the files as they were while open) drops it
 * without a warning.
 */
static void preallocated_tail(void **state)
{
	char *base = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(base, SL_FSYNC_GROUP);
	struct sl_shard_log *log = open_log(&c);
	for (int i = 0; i < 20; i++)
		assert_int_equal(append_n(log, 1, T0, NULL, NULL), 0);
	assert_int_equal(sl_shard_log_sync(log, T0), 0);
	long long logical = 32 + 20 * FRAME;
	assert_true(file_bytes(seg_path(base, 1, "log")) >= logical + (128 << 10));

	/* A crash: copy the files while the log is open. */
	size_t log_len, idx_len;
	uint8_t *log_bytes = slurp(seg_path(base, 1, "log"), &log_len);
	uint8_t *idx_bytes = slurp(seg_path(base, 1, "idx"), &idx_len);
	char *dir = tmpdir_make();
	spit(seg_path(dir, 1, "log"), log_bytes, log_len);
	spit(seg_path(dir, 1, "idx"), idx_bytes, idx_len);
	free(log_bytes);
	free(idx_bytes);
	sl_shard_log_close(log);
	assert_int_equal(file_bytes(seg_path(base, 1, "log")), logical);
	tmpdir_remove(base);

	c.dir = dir;
	struct msg_capture mc;
	msg_capture_install(&mc);
	log = open_log(&c);
	msg_capture_uninstall();
	assert_int_equal(mc.warns, 0);
	assert_int_equal(mc.errors, 0);
	check_records(log, 20);
	assert_int_equal(file_bytes(seg_path(dir, 1, "log")), logical);
	uint64_t first;
	assert_int_equal(append_n(log, 1, T0, NULL, &first), 0);
	assert_true(first == 21);
	assert_true(file_bytes(seg_path(dir, 1, "log")) > logical + FRAME);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

/* Small segments: the tail never passes the roll size, and the roll cuts it off. */
static void preallocated_tail_cut_at_roll(void **state)
{
	char *base = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(base, SL_FSYNC_GROUP);
	c.segment_bytes_max = 32 + 10 * FRAME;
	struct sl_shard_log *log = open_log(&c);
	assert_int_equal(append_n(log, 1, T0, NULL, NULL), 0);
	assert_int_equal(file_bytes(seg_path(base, 1, "log")), (long long)c.segment_bytes_max);
	for (int i = 1; i < 25; i++)
		assert_int_equal(append_n(log, 1, T0, NULL, NULL), 0);
	assert_int_equal(file_bytes(seg_path(base, 1, "log")), 32 + 10 * FRAME);
	assert_int_equal(file_bytes(seg_path(base, 11, "log")), 32 + 10 * FRAME);
	assert_int_equal(file_bytes(seg_path(base, 21, "log")), (long long)c.segment_bytes_max);
	sl_shard_log_close(log);
	assert_int_equal(file_bytes(seg_path(base, 21, "log")), 32 + 5 * FRAME);
	log = open_log(&c);
	check_records(log, 25);
	sl_shard_log_close(log);
	tmpdir_remove(base);
}

/*
 * The tail in front of the records grows with the segment: a new segment starts 128 KiB ahead
 * (not megabytes, which its first syncs would wait for), then as far ahead as the segment
 * holds, up to 2 MiB; it is extended when less than a quarter of that is left.
 */
static void preallocation_grows_with_the_segment(void **state)
{
	char *base = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(base, SL_FSYNC_GROUP);
	struct sl_shard_log *log = open_log(&c);
	assert_int_equal(append_n(log, 1, T0, NULL, NULL), 0);
	long long logical = 32 + FRAME;
	long long f = file_bytes(seg_path(base, 1, "log"));
	assert_true(f >= logical + (128 << 10) && f <= logical + (192 << 10));
	long long most = 0;
	int extensions = 0;
	while (logical < (6 << 20)) {
		assert_int_equal(append_n(log, 1000, T0, NULL, NULL), 0);
		struct sl_shard_log_stats st;
		sl_shard_log_stats(log, &st);
		logical = (long long)st.bytes;
		long long g = file_bytes(seg_path(base, 1, "log"));
		extensions += g != f;
		f = g;
		long long want = logical < (128 << 10) ? (128 << 10)
				 : logical > (2 << 20) ? (2 << 20)
						       : logical;
		if (f < logical + want / 4 || f > logical + want + (64 << 10))
			fail_msg("records end at %lld: file %lld, want %lld..%lld", logical, f,
				 logical + want / 4, logical + want + (64 << 10));
		if (f - logical > most)
			most = f - logical;
	}
	assert_true(most > (3 << 19)); /* it did reach the 2 MiB regime */
	/* 6 MiB of records: a few growing steps, then one per 1.5 MiB or so. */
	assert_true(extensions >= 5 && extensions <= 12);
	assert_int_equal(sl_shard_log_sync(log, T0), 0);
	sl_shard_log_close(log);
	assert_int_equal(file_bytes(seg_path(base, 1, "log")), logical);
	tmpdir_remove(base);
}

/* A batch larger than the preallocated tail: zeros only past it. */
static void preallocated_tail_past_a_large_batch(void **state)
{
	char *base = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(base, SL_FSYNC_GROUP);
	struct sl_shard_log *log = open_log(&c);
	assert_int_equal(append_n(log, 1, T0, NULL, NULL), 0);
	assert_int_equal(append_n(log, 60000, T0, NULL, NULL), 0);
	struct sl_shard_log_stats before;
	sl_shard_log_stats(log, &before);
	long long logical = (long long)before.bytes; /* "v0".."v59999": frames of 45-49 bytes */
	assert_true(logical > 32 + 60001ll * FRAME);
	long long big = file_bytes(seg_path(base, 1, "log"));
	assert_true(big >= logical + (512 << 10));
	assert_true(big <= logical + (2 << 20) + (64 << 10));
	sl_shard_log_close(log);
	log = open_log(&c);
	struct sl_shard_log_stats st;
	sl_shard_log_stats(log, &st);
	assert_true(st.next_seq == 60002);
	sl_shard_log_close(log);
	tmpdir_remove(base);
}

static void no_preallocation_without_group_commit(void **state)
{
	char *base = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(base, SL_FSYNC_NEVER);
	struct sl_shard_log *log = open_log(&c);
	assert_int_equal(append_n(log, 3, T0, NULL, NULL), 0);
	assert_int_equal(file_bytes(seg_path(base, 1, "log")), 32 + 3 * FRAME);
	sl_shard_log_close(log);
	tmpdir_remove(base);
}

static void orphans_and_bad_headers(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	c.first_seq = 500;
	struct sl_shard_log *log = open_log(&c);
	assert_int_equal(append_n(log, 3, T0, NULL, NULL), 0);
	sl_shard_log_close(log);
	assert_true(file_bytes(seg_path(dir, 500, "log")) > 0);
	spit(seg_path(dir, 7, "idx"), "x", 1); /* retention crashed between the two unlinks */
	spit(seg_path(dir, 7, "tmp"), "x", 1); /* not ours: left alone */
	log = open_log(&c);
	assert_true(file_bytes(seg_path(dir, 7, "idx")) < 0);
	assert_true(file_bytes(seg_path(dir, 7, "tmp")) == 1);
	sl_shard_log_close(log);

	/* A damaged header on a segment with data is refused, not silently emptied. */
	flip_bit(seg_path(dir, 500, "log"), 1, 0);
	struct msg_capture mc;
	msg_capture_install(&mc);
	struct sl_shard_log *l2 = NULL;
	assert_int_equal(sl_shard_log_open(&c, &l2), SLUICE_ERR_CORRUPT);
	assert_null(l2);
	msg_capture_uninstall();
	tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(truncated_at_every_offset_of_last_record),
	    cmocka_unit_test(flipped_bit_detected_on_read_and_recovery),
	    cmocka_unit_test(damage_in_sealed_segment_found_on_read),
	    cmocka_unit_test(bogus_index_entries_dropped),
	    cmocka_unit_test(empty_or_torn_new_segment),
	    cmocka_unit_test(orphans_and_bad_headers),
	    cmocka_unit_test(preallocated_tail),
	    cmocka_unit_test(preallocated_tail_cut_at_roll),
	    cmocka_unit_test(preallocated_tail_past_a_large_batch),
	    cmocka_unit_test(preallocation_grows_with_the_segment),
	    cmocka_unit_test(no_preallocation_without_group_commit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
