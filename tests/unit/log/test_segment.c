#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "log/io.h"
#include "log/record_format.h"
#include "log/segment.h"
#include "log_test_util.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void names(void **state)
{
	char path[256];
	assert_int_equal(sl_segment_path(path, sizeof(path), "/d", 42, "log"), 0);
	assert_string_equal(path, "/d/00000000000000000042.log");
	assert_int_equal(sl_segment_path(path, 10, "/d", 42, "log"), -ENAMETOOLONG);

	uint64_t seq;
	bool is_idx;
	assert_true(sl_segment_parse_name("00000000000000000042.log", &seq, &is_idx));
	assert_true(seq == 42 && !is_idx);
	assert_true(sl_segment_parse_name("18446744073709551615.idx", &seq, &is_idx));
	assert_true(seq == UINT64_MAX && is_idx);
	assert_false(sl_segment_parse_name("18446744073709551616.log", &seq, &is_idx));
	assert_false(sl_segment_parse_name("0000000000000000042.log", &seq, &is_idx));
	assert_false(sl_segment_parse_name("00000000000000000042.log.tmp", &seq, &is_idx));
	assert_false(sl_segment_parse_name("0000000000000000004x.log", &seq, &is_idx));
}

static void header(void **state)
{
	uint8_t h[SL_SEGMENT_HEADER_BYTES];
	sl_segment_encode_header(h, 77);
	assert_int_equal(sl_segment_check_header(h, 77), 0);
	assert_int_equal(sl_segment_check_header(h, 78), SLUICE_ERR_CORRUPT);
	for (size_t bit = 0; bit < sizeof(h) * 8; bit++) {
		h[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		/* Every byte, reserved ones included, is covered by the checksum. */
		assert_int_equal(sl_segment_check_header(h, 77), SLUICE_ERR_CORRUPT);
		h[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
}

static void index_search(void **state)
{
	struct sl_segment seg;
	sl_segment_init(&seg, 10);
	assert_true(sl_segment_index_find_seq(&seg, 10) == SIZE_MAX);
	/* entries at seq 10, 20, 30 with ts 100, 200, 300 */
	for (uint64_t i = 0; i < 3; i++)
		assert_int_equal(sl_segment_index_add(&seg, 10 + i * 10, 32 + i * 1000,
						      (int64_t)(100 + i * 100)),
				 0);
	assert_true(sl_segment_index_find_seq(&seg, 9) == SIZE_MAX); /* before first */
	assert_int_equal(sl_segment_index_find_seq(&seg, 10), 0);
	assert_int_equal(sl_segment_index_find_seq(&seg, 19), 0);
	assert_int_equal(sl_segment_index_find_seq(&seg, 20), 1);
	assert_int_equal(sl_segment_index_find_seq(&seg, 1000), 2); /* after last */
	/* By time: the last entry strictly older than ts. */
	assert_true(sl_segment_index_find_ts(&seg, 100) == SIZE_MAX);
	assert_int_equal(sl_segment_index_find_ts(&seg, 101), 0);
	assert_int_equal(sl_segment_index_find_ts(&seg, 300), 1);
	assert_int_equal(sl_segment_index_find_ts(&seg, 301), 2);

	/* The interval rule: first always, then only past the interval. */
	struct sl_segment s2;
	sl_segment_init(&s2, 1);
	assert_int_equal(sl_segment_index_note(&s2, 1, 32, 0, 100), 0);
	assert_int_equal(sl_segment_index_note(&s2, 2, 100, 0, 100), 0);
	assert_int_equal(sl_segment_index_note(&s2, 3, 132, 0, 100), 0);
	assert_int_equal(sl_segment_index_note(&s2, 4, 200, 0, 100), 0);
	assert_int_equal(s2.idx_len, 2);
	assert_true(s2.idx[1].seq == 3);
	sl_segment_finish(&seg);
	sl_segment_finish(&s2);
}

/* Write n frames of seq first.. into seg, noting index entries like the log does. */
static void write_frames(struct sl_segment *seg, uint64_t first, int n, uint32_t interval)
{
	uint8_t buf[256];
	for (int i = 0; i < n; i++) {
		char data[32];
		snprintf(data, sizeof(data), "data-%d", i);
		struct sluice_record r = {.seq = first + (uint64_t)i,
					  .ts_ms = 1000 + i * 10,
					  .key = "k",
					  .key_len = 1,
					  .data = (const uint8_t *)data,
					  .data_len = (uint32_t)strlen(data)};
		size_t len = sl_record_encode(buf, &r);
		assert_int_equal(
		    sl_segment_index_note(seg, r.seq, seg->size_bytes, r.ts_ms, interval), 0);
		struct iovec iov = {buf, len};
		assert_int_equal(sl_log_io_pwritev_all(seg->fd, &iov, 1, seg->size_bytes), 0);
		seg->size_bytes += len;
		seg->has_records = true;
		seg->last_seq = r.seq;
		seg->last_offset = seg->size_bytes - len;
		seg->last_ts_ms = r.ts_ms;
	}
}

static void create_write_load_scan(void **state)
{
	char *dir = tmpdir_make();
	struct sl_segment seg;
	assert_int_equal(sl_segment_create(&seg, dir, 5), 0);
	assert_int_equal(seg.size_bytes, SL_SEGMENT_HEADER_BYTES);
	write_frames(&seg, 5, 100, 256);
	/* Seal like a roll: last record entry, flush. */
	assert_int_equal(sl_segment_index_add(&seg, seg.last_seq, seg.last_offset, seg.last_ts_ms),
			 0);
	assert_int_equal(sl_segment_index_flush(&seg), 0);
	size_t nidx = seg.idx_len;
	assert_true(nidx > 5 && nidx < 100);
	assert_int_equal(file_bytes(seg_path(dir, 5, "idx")), (long long)(nidx * 24));
	uint64_t size = seg.size_bytes;
	sl_segment_finish(&seg);

	/* Load as a sealed segment: the index alone gives last seq and ts. */
	struct sl_segment s2;
	sl_segment_init(&s2, 5);
	s2.size_bytes = size;
	struct sl_buf scratch;
	sl_buf_init(&scratch);
	assert_int_equal(sl_segment_index_load(&s2, dir, 256, &scratch), 0);
	assert_int_equal(s2.idx_len, nidx);
	assert_true(s2.has_records && s2.last_seq == 104 && s2.last_ts_ms == 1000 + 99 * 10);
	assert_int_equal(s2.fd, -1); /* did not need the .log */

	/* Scan from the start finds every frame and ends at the end. */
	struct sl_segment s3;
	sl_segment_init(&s3, 5);
	assert_int_equal(sl_segment_open(&s3, dir, false), 0);
	struct sl_segment_scan scan;
	assert_int_equal(
	    sl_segment_scan(&s3, SL_SEGMENT_HEADER_BYTES, size, 0, 256, &scratch, &scan), 0);
	assert_int_equal(scan.records, 100);
	assert_int_equal(scan.stop, 0);
	assert_true(scan.end_offset == size);
	assert_int_equal(s3.idx_len, nidx - 1); /* the seal entry is not an interval entry */

	/* A missing .idx of a sealed segment is rebuilt from the .log. */
	remove(seg_path(dir, 5, "idx"));
	struct sl_segment s4;
	sl_segment_init(&s4, 5);
	s4.size_bytes = size;
	struct msg_capture mc;
	msg_capture_install(&mc);
	assert_int_equal(sl_segment_index_load(&s4, dir, 256, &scratch), 0);
	msg_capture_uninstall();
	assert_int_equal(mc.warns, 1);
	assert_int_equal(s4.idx_len, nidx);
	assert_true(s4.last_seq == 104);

	sl_segment_finish(&s2);
	sl_segment_finish(&s3);
	sl_segment_finish(&s4);
	sl_buf_finish(&scratch);
	tmpdir_remove(dir);
}

static void index_entries_past_eof_dropped(void **state)
{
	char *dir = tmpdir_make();
	struct sl_segment seg;
	assert_int_equal(sl_segment_create(&seg, dir, 1), 0);
	write_frames(&seg, 1, 50, 128);
	assert_int_equal(sl_segment_index_flush(&seg), 0);
	uint64_t size = seg.size_bytes;
	size_t nidx = seg.idx_len;
	sl_segment_finish(&seg);

	/* Append a bogus entry pointing past EOF and a half entry. */
	FILE *f = fopen(seg_path(dir, 1, "idx"), "ab");
	uint64_t bogus[3] = {1000, size + 4096, 0};
	fwrite(bogus, 8, 3, f);
	fwrite(bogus, 1, 7, f);
	fclose(f);

	struct sl_segment s2;
	sl_segment_init(&s2, 1);
	s2.size_bytes = size;
	struct sl_buf scratch;
	sl_buf_init(&scratch);
	assert_int_equal(sl_segment_index_load(&s2, dir, 128, &scratch), 0);
	assert_int_equal(s2.idx_len, nidx);
	sl_segment_finish(&s2);
	sl_buf_finish(&scratch);
	tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(names),
	    cmocka_unit_test(header),
	    cmocka_unit_test(index_search),
	    cmocka_unit_test(create_write_load_scan),
	    cmocka_unit_test(index_entries_past_eof_dropped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
