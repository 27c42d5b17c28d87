/* sl_shard_log_read_frames (src/log/log_read.c): the frames READ answers carry as stored. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "log/record_format.h"
#include "log/shard_log.h"
#include "log_test_util.h"

#include <sluice/errors.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1700000000000ll
#define HEAD "answer-head:"
#define HEAD_BYTES (sizeof(HEAD) - 1)

/* 300 records over several segments, a sparse index entry every ~256 bytes. */
static struct sl_shard_log *open_filled(char **ret_dir)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	c.segment_bytes_max = 4096;
	c.index_interval_bytes = 256;
	struct sl_shard_log *log = NULL;
	assert_int_equal(sl_shard_log_open(&c, &log), 0);
	for (int i = 0; i < 30; i++)
		assert_int_equal(append_n(log, 10, T0 + i, NULL, NULL), 0);
	struct sl_shard_log_stats st;
	sl_shard_log_stats(log, &st);
	assert_true(st.segments > 3 && st.next_seq == 301);
	*ret_dir = dir;
	return log;
}

static void head(struct sl_buf *buf)
{
	sl_buf_reset(buf);
	assert_int_equal(sl_buf_put(buf, HEAD, HEAD_BYTES), 0);
}

/*
 * The bytes after the head are exactly b's records as frames, back to back, each with a valid
 * checksum, and nothing else; they match what the normal read returns for the same request.
 */
static void check_frames(struct sl_shard_log *log, const struct sl_buf *buf,
			 const struct sl_read_batch *b, uint64_t from, uint32_t max_records,
			 uint32_t max_bytes)
{
	assert_memory_equal(buf->data, HEAD, HEAD_BYTES);
	struct sl_read_batch ref;
	sl_read_batch_init(&ref);
	assert_int_equal(sl_shard_log_read(log, from, max_records, max_bytes, T0, &ref), 0);
	assert_int_equal(b->count, ref.count);
	assert_int_equal(b->data_bytes, ref.data_bytes);
	size_t off = HEAD_BYTES;
	for (size_t i = 0; i < b->count; i++) {
		struct sluice_record rec;
		size_t flen;
		assert_int_equal(sl_record_decode(buf->data + off, buf->len - off, &rec, &flen), 0);
		assert_true(rec.seq == ref.records[i].seq && rec.seq == b->records[i].seq);
		assert_true(rec.ts_ms == ref.records[i].ts_ms);
		assert_int_equal(rec.key_len, ref.records[i].key_len);
		assert_memory_equal(rec.key, ref.records[i].key, rec.key_len);
		assert_int_equal(rec.data_len, ref.records[i].data_len);
		assert_memory_equal(rec.data, ref.records[i].data, rec.data_len);
		/* The batch's records point at the frames in buf. */
		assert_ptr_equal(b->records[i].data, rec.data);
		assert_ptr_equal(b->records[i].key, rec.key);
		off += flen;
	}
	assert_int_equal(off, buf->len);
	sl_read_batch_finish(&ref);
}

static void frames_follow_the_head(void **state)
{
	char *dir;
	struct sl_shard_log *log = open_filled(&dir);
	struct sl_buf buf;
	sl_buf_init(&buf);
	struct sl_read_batch b;
	sl_read_batch_init(&b);
	/* Everything, across segments. */
	head(&buf);
	assert_int_equal(
	    sl_shard_log_read_frames(log, 1, UINT64_MAX, 10000, UINT32_MAX, T0, &buf, &b), 0);
	assert_int_equal(b.count, 300);
	assert_true(b.next_seq == 301);
	check_frames(log, &buf, &b, 1, 10000, UINT32_MAX);
	/* From records that are not index entries: the frames before them are not sent. */
	for (uint64_t from = 2; from < 300; from += 37) {
		head(&buf);
		assert_int_equal(
		    sl_shard_log_read_frames(log, from, UINT64_MAX, 25, UINT32_MAX, T0, &buf, &b),
		    0);
		assert_true(b.count == 25 || b.count == 301 - from);
		assert_true(b.records[0].seq == from);
		check_frames(log, &buf, &b, from, 25, UINT32_MAX);
	}
	/* max_bytes, and one record even when it alone passes it. */
	head(&buf);
	assert_int_equal(sl_shard_log_read_frames(log, 50, UINT64_MAX, 1000, 20, T0, &buf, &b), 0);
	check_frames(log, &buf, &b, 50, 1000, 20);
	head(&buf);
	assert_int_equal(sl_shard_log_read_frames(log, 50, UINT64_MAX, 1000, 1, T0, &buf, &b), 0);
	assert_int_equal(b.count, 1);
	check_frames(log, &buf, &b, 50, 1000, 1);
	/* Zero records asked: refused, the head left alone. */
	head(&buf);
	assert_int_equal(sl_shard_log_read_frames(log, 50, UINT64_MAX, 0, 1000, T0, &buf, &b),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(buf.len, HEAD_BYTES);
	sl_read_batch_finish(&b);
	sl_buf_finish(&buf);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

/* Records at or past below_seq (not acknowledged yet) are never returned; next_seq is there. */
static void stops_before_below_seq(void **state)
{
	char *dir;
	struct sl_shard_log *log = open_filled(&dir);
	struct sl_buf buf;
	sl_buf_init(&buf);
	struct sl_read_batch b;
	sl_read_batch_init(&b);
	head(&buf);
	assert_int_equal(sl_shard_log_read_frames(log, 10, 123, 10000, UINT32_MAX, T0, &buf, &b),
			 0);
	assert_int_equal(b.count, 113);
	assert_true(b.records[112].seq == 122 && b.next_seq == 123);
	check_frames(log, &buf, &b, 10, 113, UINT32_MAX);
	/* Nothing below it: an empty read that continues there, only the head in buf. */
	head(&buf);
	assert_int_equal(sl_shard_log_read_frames(log, 123, 123, 10000, UINT32_MAX, T0, &buf, &b),
			 0);
	assert_int_equal(b.count, 0);
	assert_true(b.next_seq == 123);
	assert_int_equal(buf.len, HEAD_BYTES);
	/* The limit met before below_seq: continue after the last record. */
	head(&buf);
	assert_int_equal(sl_shard_log_read_frames(log, 10, 123, 5, UINT32_MAX, T0, &buf, &b), 0);
	assert_int_equal(b.count, 5);
	assert_true(b.next_seq == 15);
	sl_read_batch_finish(&b);
	sl_buf_finish(&buf);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

/* A damaged frame fails the read with SLUICE_ERR_CORRUPT and leaves only the head. */
static void corrupt_frame_fails_and_keeps_the_head(void **state)
{
	char *dir;
	struct sl_shard_log *log = open_filled(&dir);
	int fd = open(seg_path(dir, 1, "log"), O_RDWR);
	assert_true(fd >= 0);
	/* The data of the 3rd record: 32 bytes of segment header + 2 frames + its header + key. */
	struct sl_read_batch b;
	sl_read_batch_init(&b);
	assert_int_equal(sl_shard_log_read(log, 1, 3, UINT32_MAX, T0, &b), 0);
	size_t f0 = sl_record_frame_bytes(b.records[0].key_len, false, b.records[0].data_len);
	size_t f1 = sl_record_frame_bytes(b.records[1].key_len, false, b.records[1].data_len);
	off_t at = (off_t)(32 + f0 + f1 + SL_RECORD_HEADER_BYTES + b.records[2].key_len);
	uint8_t c;
	assert_int_equal(pread(fd, &c, 1, at), 1);
	c ^= 0xff;
	assert_int_equal(pwrite(fd, &c, 1, at), 1);
	close(fd);

	struct msg_capture mc = {0};
	msg_capture_install(&mc);
	struct sl_buf buf;
	sl_buf_init(&buf);
	head(&buf);
	assert_int_equal(
	    sl_shard_log_read_frames(log, 1, UINT64_MAX, 10000, UINT32_MAX, T0, &buf, &b),
	    SLUICE_ERR_CORRUPT);
	assert_int_equal(b.count, 0);
	assert_int_equal(buf.len, HEAD_BYTES);
	assert_memory_equal(buf.data, HEAD, HEAD_BYTES);
	/* Before it, the records are fine. */
	head(&buf);
	assert_int_equal(sl_shard_log_read_frames(log, 1, UINT64_MAX, 2, UINT32_MAX, T0, &buf, &b),
			 0);
	assert_int_equal(b.count, 2);
	msg_capture_uninstall();
	assert_true(mc.errors >= 1);
	sl_read_batch_finish(&b);
	sl_buf_finish(&buf);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(frames_follow_the_head),
	    cmocka_unit_test(stops_before_below_seq),
	    cmocka_unit_test(corrupt_frame_fails_and_keeps_the_head),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
