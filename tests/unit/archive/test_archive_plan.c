/* Restore planning (src/archive/archive_plan.c): key filtering and ordering, seq tracking. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <sluice/errors.h>

#include "archive/archive_plan.h"

/* 2026-11-28T01:00:00Z and two hours later. */
#define H1 1795827600000ll
#define H3 (H1 + 2 * 3600 * 1000)

static void add_key(struct sl_archive_plan *p, const char *prefix, const char *stream,
		    uint32_t shard, uint64_t first, uint64_t last, int64_t ts, const char *ext,
		    int want)
{
	char key[SL_ARCHIVE_KEY_LEN_MAX];
	assert_true(sl_archive_key(prefix, stream, shard, first, last, ts, ext, key, sizeof(key)) >
		    0);
	assert_int_equal(sl_archive_plan_add(p, key, strlen(key)), want);
}

static void test_filter_and_order(void **state)
{
	(void)state;
	struct sl_archive_plan p;
	sl_archive_plan_init(&p, "orders");
	/* Listed out of order (a later hour first), and a long object overlapping two short ones
	 * (records archived twice): the longer one of a first seq comes first. */
	add_key(&p, "", "orders", 1, 101, 200, H3, ".jsonl.zst", 1);
	add_key(&p, "", "orders", 1, 1, 100, H1, ".jsonl.zst", 1);
	add_key(&p, "", "orders", 0, 50, 80, H1, ".jsonl", 1);
	add_key(&p, "", "orders", 0, 1, 49, H1, ".jsonl.zst", 1);
	add_key(&p, "", "orders", 0, 1, 80, H1, ".jsonl.zst", 1);
	/* Ignored: other stream (also a prefix of the name), errors/, raw, junk, _meta. */
	add_key(&p, "", "orders-old", 0, 1, 5, H1, ".jsonl.zst", 0);
	add_key(&p, "", "order", 0, 1, 5, H1, ".jsonl.zst", 0);
	add_key(&p, "errors", "orders", 0, 1, 5, H1, ".jsonl.zst", 0);
	add_key(&p, "", "orders", 2, 1, 5, H1, ".raw.zst", 0);
	assert_int_equal(sl_archive_plan_add(&p, "_meta/orders.json", 17), 0);
	assert_int_equal(sl_archive_plan_add(&p, "README", 6), 0);
	assert_int_equal(p.count, 5);
	assert_int_equal(p.raw_objects, 1);
	assert_int_equal(p.ignored, 5);
	sl_archive_plan_sort(&p);
	const struct {
		uint32_t shard;
		uint64_t first, last;
	} want[] = {{0, 1, 80}, {0, 1, 49}, {0, 50, 80}, {1, 1, 100}, {1, 101, 200}};
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(p.objects[i].shard_id, want[i].shard);
		assert_int_equal(p.objects[i].first_seq, want[i].first);
		assert_int_equal(p.objects[i].last_seq, want[i].last);
	}
	assert_int_equal(p.objects[2].compression, SL_ARCHIVE_NONE);
	uint32_t ids[4];
	assert_int_equal(sl_archive_plan_shards(&p, ids, 4), 2);
	assert_int_equal(ids[0], 0);
	assert_int_equal(ids[1], 1);
	assert_int_equal(sl_archive_plan_shards(&p, ids, 1), 1);
	sl_archive_plan_finish(&p);
	assert_int_equal(p.count, 0);
}

static void test_track(void **state)
{
	(void)state;
	struct sl_seq_track t;
	sl_seq_track_init(&t, 1);
	assert_int_equal(sl_seq_track_see(&t, 1), SL_SEQ_NEXT);
	assert_int_equal(sl_seq_track_see(&t, 2), SL_SEQ_NEXT);
	assert_int_equal(sl_seq_track_see(&t, 2), SL_SEQ_DUPLICATE);
	assert_int_equal(sl_seq_track_see(&t, 1), SL_SEQ_DUPLICATE);
	assert_int_equal(sl_seq_track_see(&t, 10), SL_SEQ_AFTER_GAP);
	assert_int_equal(t.gap_count, 1);
	assert_int_equal(t.gaps[0].first, 3);
	assert_int_equal(t.gaps[0].last, 9);
	assert_int_equal(t.missing_records, 7);
	assert_int_equal(t.duplicates, 2);
	/* Objects: fully seen ones are skipped (and counted), overlapping ones are read. */
	assert_true(sl_seq_track_skip_object(&t, 1, 10));
	assert_int_equal(t.duplicates, 12);
	assert_false(sl_seq_track_skip_object(&t, 5, 11));
	assert_false(sl_seq_track_skip_object(&t, 11, 20));
	/* A closed shard's end not reached: a gap; reached: none. */
	sl_seq_track_expect_end(&t, 15);
	assert_int_equal(t.gap_count, 2);
	assert_int_equal(t.gaps[1].first, 11);
	assert_int_equal(t.gaps[1].last, 15);
	sl_seq_track_expect_end(&t, 15);
	assert_int_equal(t.gap_count, 2);
	/* A shard that starts at a higher seq (a child of a split). */
	sl_seq_track_init(&t, 500);
	assert_int_equal(sl_seq_track_see(&t, 499), SL_SEQ_DUPLICATE);
	assert_int_equal(sl_seq_track_see(&t, 500), SL_SEQ_NEXT);
	/* More gaps than are kept: all counted. */
	sl_seq_track_init(&t, 1);
	for (uint64_t i = 0; i < SL_SEQ_TRACK_GAPS_MAX + 10; i++)
		sl_seq_track_see(&t, 2 * i + 2);
	assert_int_equal(t.gap_count, SL_SEQ_TRACK_GAPS_MAX + 10);
	assert_int_equal(t.missing_records, SL_SEQ_TRACK_GAPS_MAX + 10);
	assert_int_equal(t.gaps[SL_SEQ_TRACK_GAPS_MAX - 1].first, 2 * SL_SEQ_TRACK_GAPS_MAX - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_filter_and_order),
	    cmocka_unit_test(test_track),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
