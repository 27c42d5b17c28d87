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

/* A log of 300 records over several segments (an index entry every ~256 bytes), a buffer, a batch.
 */
struct fx {
	char *dir;
	struct sl_shard_log *log;
	struct sl_buf buf;
	struct sl_read_batch b;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(f->dir, SL_FSYNC_NEVER);
	c.segment_bytes_max = 4096;
	c.index_interval_bytes = 256;
	assert_int_equal(sl_shard_log_open(&c, &f->log), 0);
	for (int i = 0; i < 30; i++)
		assert_int_equal(append_n(f->log, 10, T0 + i, NULL, NULL), 0);
	struct sl_shard_log_stats st;
	sl_shard_log_stats(f->log, &st);
	assert_true(st.segments > 3 && st.next_seq == 301);
	sl_buf_init(&f->buf);
	sl_read_batch_init(&f->b);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	sl_read_batch_finish(&f->b);
	sl_buf_finish(&f->buf);
	sl_shard_log_close(f->log);
	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

/* A frame read into f->buf after a fresh head. */
static int read_frames(struct fx *f, uint64_t from, uint64_t below, uint32_t max_records,
		       uint32_t max_bytes)
{
	sl_buf_reset(&f->buf);
	assert_int_equal(sl_buf_put(&f->buf, HEAD, HEAD_BYTES), 0);
	return sl_shard_log_read_frames(f->log, from, below, max_records, max_bytes, T0, &f->buf,
					&f->b);
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
	struct fx *f = *state;
	/* Everything, across segments. */
	assert_int_equal(read_frames(f, 1, UINT64_MAX, 10000, UINT32_MAX), 0);
	assert_int_equal(f->b.count, 300);
	assert_true(f->b.next_seq == 301);
	check_frames(f->log, &f->buf, &f->b, 1, 10000, UINT32_MAX);
	/* From records that are not index entries: the frames before them are not sent. */
	for (uint64_t from = 2; from < 300; from += 37) {
		assert_int_equal(read_frames(f, from, UINT64_MAX, 25, UINT32_MAX), 0);
		assert_true(f->b.count == 25 || f->b.count == 301 - from);
		assert_true(f->b.records[0].seq == from);
		check_frames(f->log, &f->buf, &f->b, from, 25, UINT32_MAX);
	}
	/* max_bytes, and one record even when it alone passes it. */
	assert_int_equal(read_frames(f, 50, UINT64_MAX, 1000, 20), 0);
	check_frames(f->log, &f->buf, &f->b, 50, 1000, 20);
	assert_int_equal(read_frames(f, 50, UINT64_MAX, 1000, 1), 0);
	assert_int_equal(f->b.count, 1);
	check_frames(f->log, &f->buf, &f->b, 50, 1000, 1);
	/* Zero records asked: refused, the head left alone. */
	assert_int_equal(read_frames(f, 50, UINT64_MAX, 0, 1000), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(f->buf.len, HEAD_BYTES);
}

/* Records at or past below_seq (not acknowledged yet) are never returned; next_seq is there. */
static void stops_before_below_seq(void **state)
{
	struct fx *f = *state;
	assert_int_equal(read_frames(f, 10, 123, 10000, UINT32_MAX), 0);
	assert_int_equal(f->b.count, 113);
	assert_true(f->b.records[112].seq == 122 && f->b.next_seq == 123);
	check_frames(f->log, &f->buf, &f->b, 10, 113, UINT32_MAX);
	/* Nothing below it: an empty read that continues there, only the head in buf. */
	assert_int_equal(read_frames(f, 123, 123, 10000, UINT32_MAX), 0);
	assert_int_equal(f->b.count, 0);
	assert_true(f->b.next_seq == 123);
	assert_int_equal(f->buf.len, HEAD_BYTES);
	/* The limit met before below_seq: continue after the last record. */
	assert_int_equal(read_frames(f, 10, 123, 5, UINT32_MAX), 0);
	assert_int_equal(f->b.count, 5);
	assert_true(f->b.next_seq == 15);
}

/* A damaged frame fails the read with SLUICE_ERR_CORRUPT and leaves only the head. */
static void corrupt_frame_fails_and_keeps_the_head(void **state)
{
	struct fx *f = *state;
	/* The data of the 3rd record: 32 bytes of segment header + 2 frames + its header + key. */
	assert_int_equal(sl_shard_log_read(f->log, 1, 3, UINT32_MAX, T0, &f->b), 0);
	const struct sluice_record *r = f->b.records;
	size_t f0 = sl_record_frame_bytes(r[0].key_len, false, r[0].data_len);
	size_t f1 = sl_record_frame_bytes(r[1].key_len, false, r[1].data_len);
	off_t at = (off_t)(32 + f0 + f1 + SL_RECORD_HEADER_BYTES + r[2].key_len);
	int fd = open(seg_path(f->dir, 1, "log"), O_RDWR);
	assert_true(fd >= 0);
	uint8_t c;
	assert_int_equal(pread(fd, &c, 1, at), 1);
	c ^= 0xff;
	assert_int_equal(pwrite(fd, &c, 1, at), 1);
	close(fd);

	struct msg_capture mc = {0};
	msg_capture_install(&mc);
	assert_int_equal(read_frames(f, 1, UINT64_MAX, 10000, UINT32_MAX), SLUICE_ERR_CORRUPT);
	assert_int_equal(f->b.count, 0);
	assert_int_equal(f->buf.len, HEAD_BYTES);
	assert_memory_equal(f->buf.data, HEAD, HEAD_BYTES);
	/* Before it, the records are fine. */
	assert_int_equal(read_frames(f, 1, UINT64_MAX, 2, UINT32_MAX), 0);
	assert_int_equal(f->b.count, 2);
	msg_capture_uninstall();
	assert_true(mc.errors >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(frames_follow_the_head, setup, teardown),
	    cmocka_unit_test_setup_teardown(stops_before_below_seq, setup, teardown),
	    cmocka_unit_test_setup_teardown(corrupt_frame_fails_and_keeps_the_head, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
