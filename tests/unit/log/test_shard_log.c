#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "log/shard_log.h"
#include "log_test_util.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1700000000000ll /* a fixed "now" so tests never depend on the clock */

static struct sl_shard_log *open_log(const struct sl_shard_log_config *c)
{
	struct sl_shard_log *log = NULL;
	assert_int_equal(sl_shard_log_open(c, &log), 0);
	assert_non_null(log);
	return log;
}

/* Read everything from seq 0 (no limits) into b; returns the count. */
static size_t read_all(struct sl_shard_log *log, int64_t now, struct sl_read_batch *b)
{
	assert_int_equal(sl_shard_log_read(log, 0, 1000000, UINT32_MAX, now, b), 0);
	return b->count;
}

static void append_read_round_trip(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_GROUP);
	struct sl_shard_log *log = open_log(&c);

	struct sl_record_in recs[3] = {rec_str("a", "one"), rec_str("bb", ""),
				       rec_str("ccc", "three")};
	recs[1].has_hash_key = true;
	memset(recs[1].hash_key.be, 0x5a, 16);
	struct done_rec d = {0};
	uint64_t first = 0;
	assert_int_equal(sl_shard_log_append(log, recs, 3, T0, done_cb, &d, &first), 0);
	assert_true(first == 1);
	/* The clock went back: timestamps still never decrease. */
	assert_int_equal(sl_shard_log_append(log, recs, 1, T0 - 500, done_cb, &d, &first), 0);
	assert_true(first == 4);

	struct sl_read_batch b;
	sl_read_batch_init(&b);
	assert_int_equal(read_all(log, T0, &b), 4);
	assert_true(b.records[0].seq == 1 && b.records[3].seq == 4);
	assert_memory_equal(b.records[0].key, "a", 1);
	assert_memory_equal(b.records[0].data, "one", 3);
	assert_int_equal(b.records[1].data_len, 0);
	assert_true(b.records[1].has_hash_key);
	assert_int_equal(b.records[1].hash_key.be[15], 0x5a);
	assert_false(b.records[2].has_hash_key);
	assert_memory_equal(b.records[2].data, "three", 5);
	assert_true(b.records[0].ts_ms == T0 && b.records[3].ts_ms == T0);
	assert_true(b.next_seq == 5);
	assert_int_equal(b.data_bytes, 1 + 3 + 2 + 0 + 3 + 5 + 1 + 3);

	/* Reads see written but unacknowledged data; the stats say what is durable. */
	struct sl_shard_log_stats st;
	sl_shard_log_stats(log, &st);
	assert_true(st.first_seq == 1 && st.next_seq == 5 && st.durable_seq == 1);
	assert_true(st.last_ts_ms == T0);
	assert_int_equal(d.calls, 0);
	assert_int_equal(sl_shard_log_sync(log, T0), 0);
	assert_int_equal(d.calls, 2);
	sl_shard_log_stats(log, &st);
	assert_true(st.durable_seq == 5);

	/* Empty read at the tip: next_seq is where to poll from. */
	assert_int_equal(sl_shard_log_read(log, 5, 10, 1000, T0, &b), 0);
	assert_int_equal(b.count, 0);
	assert_true(b.next_seq == 5);

	sl_read_batch_finish(&b);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void invalid_records_leave_log_unchanged(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	c.record_bytes_max = 100;
	struct sl_shard_log *log = open_log(&c);
	assert_int_equal(append_n(log, 2, T0, NULL, NULL), 0);

	char big[101];
	memset(big, 'x', 100);
	big[100] = 0;
	char key[SLUICE_KEY_LEN_MAX + 2];
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = 0;
	struct sl_record_in ok = rec_str("k", "fine");
	struct sl_record_in bad[2];
	uint64_t first = 99;

	bad[0] = ok, bad[1] = rec_str("k", big);
	bad[1].data_len = 101;
	assert_int_equal(sl_shard_log_append(log, bad, 2, T0, NULL, NULL, &first),
			 SLUICE_ERR_RECORD_TOO_LARGE);
	bad[1] = rec_str(key, "x");
	assert_int_equal(sl_shard_log_append(log, bad, 2, T0, NULL, NULL, &first),
			 SLUICE_ERR_INVALID_KEY);
	bad[1] = rec_str("", "x");
	assert_int_equal(sl_shard_log_append(log, bad, 2, T0, NULL, NULL, &first),
			 SLUICE_ERR_INVALID_KEY);
	bad[1] = ok;
	bad[1].seq = 2; /* restore seq not above the last one */
	assert_int_equal(sl_shard_log_append(log, bad, 2, T0, NULL, NULL, &first),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_shard_log_append(log, bad, 0, T0, NULL, NULL, &first),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_true(first == 99);

	struct sl_shard_log_stats st;
	sl_shard_log_stats(log, &st);
	assert_true(st.next_seq == 3);
	big[100] = 0;
	bad[0] = rec_str("k", big); /* exactly the limit is fine */
	assert_int_equal(sl_shard_log_append(log, bad, 1, T0, NULL, NULL, &first), 0);
	assert_true(first == 3);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void read_limits(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	struct sl_shard_log *log = open_log(&c);
	assert_int_equal(append_n(log, 100, T0, NULL, NULL), 0); /* "key" + "vN": 5..6 bytes */

	struct sl_read_batch b;
	sl_read_batch_init(&b);
	assert_int_equal(sl_shard_log_read(log, 1, 10, UINT32_MAX, T0, &b), 0);
	assert_int_equal(b.count, 10);
	assert_true(b.next_seq == 11);
	assert_int_equal(sl_shard_log_read(log, b.next_seq, 1000, 3 * 6 + 5, T0, &b), 0);
	assert_int_equal(b.count, 3); /* "key"+"v10".. = 6 bytes each: 3 fit in 23 */
	assert_int_equal(b.data_bytes, 18);
	assert_true(b.records[0].seq == 11);
	/* At least one record even when it alone passes max_bytes. */
	assert_int_equal(sl_shard_log_read(log, 50, 1000, 1, T0, &b), 0);
	assert_int_equal(b.count, 1);
	assert_true(b.records[0].seq == 50);
	assert_memory_equal(b.records[0].data, "v49", 3);
	/* From the middle to the end, and zero records asked. */
	assert_int_equal(sl_shard_log_read(log, 95, 1000, UINT32_MAX, T0, &b), 0);
	assert_int_equal(b.count, 6);
	assert_true(b.next_seq == 101);
	assert_int_equal(sl_shard_log_read(log, 95, 0, UINT32_MAX, T0, &b),
			 SLUICE_ERR_INVALID_ARGUMENT);
	sl_read_batch_finish(&b);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void seek_by_seq_and_time(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	c.first_seq = 1000;
	c.segment_bytes_max = 4096; /* several segments */
	c.index_interval_bytes = 256;
	struct sl_shard_log *log = open_log(&c);
	/* 300 records, one batch of 10 per 1000 ms: ts = T0 + (seq-1000)/10*1000. */
	for (int i = 0; i < 30; i++)
		assert_int_equal(append_n(log, 10, T0 + i * 1000, NULL, NULL), 0);
	struct sl_shard_log_stats st;
	sl_shard_log_stats(log, &st);
	assert_true(st.segments > 3);
	assert_true(st.next_seq == 1300);

	struct sluice_position p;
	uint64_t seq;
	p = (struct sluice_position){SLUICE_POS_TRIM_HORIZON, 0};
	assert_int_equal(sl_shard_log_seek(log, &p, T0, &seq), 0);
	assert_true(seq == 1000);
	p = (struct sluice_position){SLUICE_POS_LATEST, 0};
	assert_int_equal(sl_shard_log_seek(log, &p, T0, &seq), 0);
	assert_true(seq == 1300);
	p = (struct sluice_position){SLUICE_POS_AT_SEQ, 1234};
	assert_int_equal(sl_shard_log_seek(log, &p, T0, &seq), 0);
	assert_true(seq == 1234);
	p = (struct sluice_position){SLUICE_POS_AT_SEQ, 5}; /* before the first */
	assert_int_equal(sl_shard_log_seek(log, &p, T0, &seq), 0);
	assert_true(seq == 1000);
	p = (struct sluice_position){SLUICE_POS_AFTER_SEQ, 1234};
	assert_int_equal(sl_shard_log_seek(log, &p, T0, &seq), 0);
	assert_true(seq == 1235);
	p = (struct sluice_position){SLUICE_POS_AFTER_SEQ, 1299}; /* the newest: the tip */
	assert_int_equal(sl_shard_log_seek(log, &p, T0, &seq), 0);
	assert_true(seq == 1300);
	p = (struct sluice_position){SLUICE_POS_AT_SEQ, 1301}; /* never assigned */
	assert_int_equal(sl_shard_log_seek(log, &p, T0, &seq), SLUICE_ERR_INVALID_ARGUMENT);

	/* Every time in range finds the first record of its batch. */
	for (int i = 0; i < 30; i++) {
		p = (struct sluice_position){SLUICE_POS_AT_TIMESTAMP, (uint64_t)(T0 + i * 1000)};
		assert_int_equal(sl_shard_log_seek(log, &p, T0, &seq), 0);
		assert_true(seq == 1000 + (uint64_t)i * 10);
		p.value = (uint64_t)(T0 + i * 1000 - 1); /* just before: same answer */
		assert_int_equal(sl_shard_log_seek(log, &p, T0, &seq), 0);
		assert_true(seq == 1000 + (uint64_t)i * 10);
	}
	p = (struct sluice_position){SLUICE_POS_AT_TIMESTAMP, 0}; /* before the first */
	assert_int_equal(sl_shard_log_seek(log, &p, T0, &seq), 0);
	assert_true(seq == 1000);
	p = (struct sluice_position){SLUICE_POS_AT_TIMESTAMP, (uint64_t)(T0 + 29 * 1000 + 1)};
	assert_int_equal(sl_shard_log_seek(log, &p, T0, &seq), 0);
	assert_true(seq == 1300); /* after the last: the tip */

	/* Seeks still work after reopen (sealed indexes load lazily). */
	sl_shard_log_close(log);
	log = open_log(&c);
	p = (struct sluice_position){SLUICE_POS_AT_TIMESTAMP, (uint64_t)(T0 + 17 * 1000)};
	assert_int_equal(sl_shard_log_seek(log, &p, T0, &seq), 0);
	assert_true(seq == 1170);
	p = (struct sluice_position){SLUICE_POS_AT_SEQ, 1171};
	assert_int_equal(sl_shard_log_seek(log, &p, T0, &seq), 0);
	assert_true(seq == 1171);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void roll_and_read_across_segments(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_GROUP);
	c.segment_bytes_max = 2000;
	struct sl_shard_log *log = open_log(&c);
	struct done_rec d = {0};
	uint64_t total = 0;
	for (int i = 0; i < 40; i++) {
		assert_int_equal(append_n(log, 7, T0 + i, &d, NULL), 0);
		total += 7;
	}
	struct sl_shard_log_stats st;
	sl_shard_log_stats(log, &st);
	assert_true(st.segments >= 5);
	/* Each roll synced the old segment: batches in sealed segments are durable already. */
	sl_shard_log_service(log, T0);
	assert_true(d.calls > 0 && d.calls < 40);
	for (int i = 0; i < d.calls; i++)
		assert_int_equal(d.status[i], 0);
	assert_int_equal(sl_shard_log_sync(log, T0), 0);
	assert_int_equal(d.calls, 40);

	struct sl_read_batch b;
	sl_read_batch_init(&b);
	assert_int_equal(read_all(log, T0, &b), total);
	for (size_t i = 0; i < b.count; i++)
		assert_true(b.records[i].seq == i + 1);
	/* Small reads walk over segment boundaries too. */
	uint64_t next = 1, n = 0;
	while (next < total + 1) {
		assert_int_equal(sl_shard_log_read(log, next, 3, UINT32_MAX, T0, &b), 0);
		assert_true(b.count > 0 && b.records[0].seq == next);
		n += b.count;
		next = b.next_seq;
	}
	assert_true(n == total);
	/* Segment files are named by their first seq. */
	assert_true(file_bytes(seg_path(dir, 1, "log")) > 0);
	assert_true(file_bytes(seg_path(dir, 1, "log")) <= 2000);
	sl_read_batch_finish(&b);
	sl_shard_log_close(log);

	/* Reopen keeps everything and continues the sequence. */
	log = open_log(&c);
	sl_shard_log_stats(log, &st);
	assert_true(st.next_seq == total + 1);
	assert_true(st.last_ts_ms == T0 + 39);
	uint64_t first;
	assert_int_equal(append_n(log, 1, T0, NULL, &first), 0);
	assert_true(first == total + 1);
	sl_read_batch_init(&b);
	assert_int_equal(read_all(log, T0, &b), total + 1);
	assert_true(b.records[total].ts_ms == T0 + 39); /* never backwards, across reopen */
	sl_read_batch_finish(&b);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void large_records_by_iovec(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	struct sl_shard_log *log = open_log(&c);
	/* 700 records of 3 KiB (iovec path, over IOV_MAX iovecs) mixed with small ones. */
	size_t n = 700;
	struct sl_record_in *recs = calloc(n, sizeof(*recs));
	uint8_t *data = malloc(n * 3072);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < 3072; j++)
			data[i * 3072 + j] = (uint8_t)(i + j * 31);
		recs[i].key = (const uint8_t *)"big";
		recs[i].key_len = 3;
		recs[i].data = data + i * 3072;
		recs[i].data_len = (i % 3 == 0) ? 10 : 3072;
	}
	assert_int_equal(sl_shard_log_append(log, recs, n, T0, NULL, NULL, NULL), 0);
	/* One record of 1 MiB. */
	uint8_t *mb = malloc(1 << 20);
	for (size_t j = 0; j < (1 << 20); j++)
		mb[j] = (uint8_t)(j * 13);
	struct sl_record_in one = {
	    .key = (const uint8_t *)"m", .key_len = 1, .data = mb, .data_len = 1 << 20};
	assert_int_equal(sl_shard_log_append(log, &one, 1, T0, NULL, NULL, NULL), 0);

	struct sl_read_batch b;
	sl_read_batch_init(&b);
	assert_int_equal(read_all(log, T0, &b), n + 1);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(b.records[i].data_len, recs[i].data_len);
		assert_memory_equal(b.records[i].data, recs[i].data, recs[i].data_len);
	}
	assert_memory_equal(b.records[n].data, mb, 1 << 20);
	sl_read_batch_finish(&b);
	free(mb);
	free(data);
	free(recs);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void group_commit(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_GROUP);
	struct sl_shard_log *log = open_log(&c);
	struct done_rec d = {0};
	assert_false(sl_shard_log_sync_wanted(log, T0));
	assert_int_equal(append_n(log, 2, T0, &d, NULL), 0);
	assert_int_equal(append_n(log, 3, T0, &d, NULL), 0);
	sl_shard_log_service(log, T0 + 100000);
	assert_int_equal(d.calls, 0); /* never without a sync */
	assert_true(sl_shard_log_sync_wanted(log, T0));

	struct sl_sync_ticket t;
	assert_int_equal(sl_shard_log_sync_begin(log, &t), 0);
	assert_true(t.upto_seq == 6);
	struct sl_sync_ticket t2;
	assert_int_equal(sl_shard_log_sync_begin(log, &t2), -EBUSY);
	assert_false(sl_shard_log_sync_wanted(log, T0));
	/* A batch written after the sync began is not covered by it. */
	assert_int_equal(append_n(log, 4, T0, &d, NULL), 0);
	assert_int_equal(fdatasync(t.fd), 0);
	sl_shard_log_sync_end(log, &t, 0, T0);
	assert_int_equal(d.calls, 2); /* one sync, two batches */
	assert_true(d.first_seq[0] == 1 && d.count[0] == 2 && d.status[0] == 0);
	assert_true(d.first_seq[1] == 3 && d.count[1] == 3 && d.status[1] == 0);
	assert_true(sl_shard_log_sync_wanted(log, T0));
	assert_int_equal(sl_shard_log_sync(log, T0), 0);
	assert_int_equal(d.calls, 3);
	assert_true(d.first_seq[2] == 6);
	assert_false(sl_shard_log_sync_wanted(log, T0));
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void ticket_survives_roll(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_GROUP);
	c.segment_bytes_max = 600;
	c.retention_bytes_max = 1; /* retention would delete the old segment at once */
	struct sl_shard_log *log = open_log(&c);
	struct done_rec d = {0};
	assert_int_equal(append_n(log, 5, T0, &d, NULL), 0);
	struct sl_sync_ticket t;
	assert_int_equal(sl_shard_log_sync_begin(log, &t), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(append_n(log, 5, T0, &d, NULL), 0);
	assert_true(sl_shard_log_enforce_retention(log, T0) > 0);
	/* The ticket's fd is still a valid file to sync. */
	assert_int_equal(fdatasync(t.fd), 0);
	sl_shard_log_sync_end(log, &t, 0, T0);
	assert_true(d.calls >= 1);
	assert_int_equal(sl_shard_log_sync(log, T0), 0);
	assert_int_equal(d.calls, 11);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void interval_and_never_modes(void **state)
{
	for (int m = 0; m < 2; m++) {
		char *dir = tmpdir_make();
		struct sl_shard_log_config c =
		    cfg_make(dir, m ? SL_FSYNC_NEVER : SL_FSYNC_INTERVAL);
		c.fsync_interval_ms = 50;
		struct sl_shard_log *log = open_log(&c);
		struct done_rec d = {0};
		assert_int_equal(append_n(log, 2, T0, &d, NULL), 0);
		assert_int_equal(d.calls, 0); /* never from inside append */
		sl_shard_log_service(log, T0);
		assert_int_equal(d.calls, 1);
		assert_int_equal(d.status[0], 0);
		if (m == 0) {
			assert_true(sl_shard_log_sync_wanted(log, T0 + 50));
			assert_int_equal(sl_shard_log_sync(log, T0 + 50), 0);
			assert_false(sl_shard_log_sync_wanted(log, T0 + 60));
			assert_int_equal(append_n(log, 1, T0, &d, NULL), 0);
			assert_false(sl_shard_log_sync_wanted(log, T0 + 60));
			assert_true(sl_shard_log_sync_wanted(log, T0 + 100));
		} else {
			assert_false(sl_shard_log_sync_wanted(log, T0 + 1000000));
		}
		sl_shard_log_close(log);
		tmpdir_remove(dir);
	}
}

/* done == NULL (sluiced: an append by a loop that does not own the shard): under never and
 * interval the batch is acknowledged on return, visible once the batches before it completed;
 * under group it still waits for a sync. */
static void appends_without_callback(void **state)
{
	for (int m = 0; m < 3; m++) {
		char *dir = tmpdir_make();
		enum sl_fsync_mode mode = m == 0   ? SL_FSYNC_NEVER
					  : m == 1 ? SL_FSYNC_INTERVAL
						   : SL_FSYNC_GROUP;
		struct sl_shard_log_config c = cfg_make(dir, mode);
		struct sl_shard_log *log = open_log(&c);
		struct done_rec d = {0};
		struct sl_shard_log_stats st;
		assert_int_equal(append_n(log, 2, T0, &d, NULL), 0);   /* seqs 1-2, a callback */
		assert_int_equal(append_n(log, 3, T0, NULL, NULL), 0); /* 3-5, none */
		sl_shard_log_stats(log, &st);
		assert_true(st.next_seq == 6);
		assert_true(st.durable_seq == 1); /* behind the batch still waiting */
		if (mode == SL_FSYNC_GROUP) {
			sl_shard_log_service(log, T0);
			sl_shard_log_stats(log, &st);
			assert_true(st.durable_seq == 1);
			assert_int_equal(sl_shard_log_sync(log, T0), 0);
		} else {
			sl_shard_log_service(log, T0);
		}
		assert_int_equal(d.calls, 1);
		sl_shard_log_stats(log, &st);
		assert_true(st.durable_seq == 6);
		/* Alone, it is visible at once, except under group. */
		assert_int_equal(append_n(log, 1, T0, NULL, NULL), 0);
		sl_shard_log_stats(log, &st);
		assert_true(st.durable_seq == (mode == SL_FSYNC_GROUP ? 6 : 7));
		if (mode == SL_FSYNC_INTERVAL)
			assert_true(sl_shard_log_sync_wanted(log, T0 + c.fsync_interval_ms));
		struct sl_read_batch b;
		sl_read_batch_init(&b);
		assert_int_equal(read_all(log, T0, &b), 6);
		sl_read_batch_finish(&b);
		sl_shard_log_close(log);
		tmpdir_remove(dir);
	}
}

static void restore_keeps_seq_and_ts(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	struct sl_shard_log *log = open_log(&c);
	struct sl_record_in r[3] = {rec_str("k", "a"), rec_str("k", "b"), rec_str("k", "c")};
	r[0].seq = 100, r[0].ts_ms = 5000;
	r[1].seq = 105, r[1].ts_ms = 6000;
	r[2].seq = 0, r[2].ts_ms = 0; /* next: 106, ts max(now, 6000) */
	uint64_t first;
	assert_int_equal(sl_shard_log_append(log, r, 3, 10, NULL, NULL, &first), 0);
	assert_true(first == 100);
	struct sl_read_batch b;
	sl_read_batch_init(&b);
	assert_int_equal(read_all(log, 7000, &b), 3);
	assert_true(b.records[0].seq == 100 && b.records[0].ts_ms == 5000);
	assert_true(b.records[1].seq == 105 && b.records[1].ts_ms == 6000);
	assert_true(b.records[2].seq == 106 && b.records[2].ts_ms == 6000);
	/* A seq in a gap reads from the next record. */
	assert_int_equal(sl_shard_log_read(log, 101, 10, UINT32_MAX, 7000, &b), 0);
	assert_true(b.count == 2 && b.records[0].seq == 105);
	r[0].seq = 106;
	assert_int_equal(sl_shard_log_append(log, r, 1, 10, NULL, NULL, &first),
			 SLUICE_ERR_INVALID_ARGUMENT);
	sl_read_batch_finish(&b);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void retention_by_time(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	c.segment_bytes_max = 1000;
	c.retention_ms = 1500;
	struct sl_shard_log *log = open_log(&c);
	/* 20 batches of 5, 100 ms apart: T0 .. T0+1900. */
	for (int i = 0; i < 20; i++)
		assert_int_equal(append_n(log, 5, T0 + i * 100, NULL, NULL), 0);
	struct sl_shard_log_stats st;
	sl_shard_log_stats(log, &st);
	uint32_t segs = st.segments;
	assert_true(segs >= 4);

	/* Nothing expired yet. */
	assert_int_equal(sl_shard_log_enforce_retention(log, T0 + 1000), 0);
	struct sluice_position th = {SLUICE_POS_TRIM_HORIZON, 0};
	uint64_t seq;
	assert_int_equal(sl_shard_log_seek(log, &th, T0 + 1000, &seq), 0);
	assert_true(seq == 1);

	/* At T0+2500 records older than T0+1000 (batches 0..9, seq 1..50) are expired. */
	int64_t now = T0 + 2500;
	assert_int_equal(sl_shard_log_seek(log, &th, now, &seq), 0);
	assert_true(seq == 51); /* horizon skips expired records still stored */
	struct sl_read_batch b;
	sl_read_batch_init(&b);
	assert_int_equal(sl_shard_log_read(log, 1, 1000, UINT32_MAX, now, &b), 0);
	assert_true(b.count == 50 && b.records[0].seq == 51);
	int deleted = sl_shard_log_enforce_retention(log, now);
	assert_true(deleted >= 1);
	sl_shard_log_stats(log, &st);
	assert_int_equal(st.segments, segs - (uint32_t)deleted);
	assert_true(st.first_seq <= 51); /* nothing live was deleted */
	assert_true(file_bytes(seg_path(dir, 1, "log")) < 0);
	assert_true(file_bytes(seg_path(dir, 1, "idx")) < 0);
	assert_int_equal(sl_shard_log_read(log, 1, 1000, UINT32_MAX, now, &b), 0);
	assert_true(b.count == 50 && b.records[0].seq == 51);

	/* Long after: everything expires, but the active segment stays (and the tip). */
	now = T0 + 100000;
	sl_shard_log_enforce_retention(log, now);
	sl_shard_log_stats(log, &st);
	assert_int_equal(st.segments, 1);
	assert_true(st.next_seq == 101);
	assert_int_equal(sl_shard_log_seek(log, &th, now, &seq), 0);
	assert_true(seq == 101);
	assert_int_equal(sl_shard_log_read(log, 1, 1000, UINT32_MAX, now, &b), 0);
	assert_int_equal(b.count, 0);
	assert_true(b.next_seq == 101);

	/* Longer retention at run time brings the kept records back into view. */
	sl_shard_log_set_retention(log, 1000000);
	assert_int_equal(sl_shard_log_read(log, 1, 1000, UINT32_MAX, now, &b), 0);
	assert_true(b.count > 0);
	sl_read_batch_finish(&b);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void retention_by_bytes(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_NEVER);
	c.segment_bytes_max = 1000;
	c.retention_bytes_max = 3000;
	struct sl_shard_log *log = open_log(&c);
	for (int i = 0; i < 30; i++)
		assert_int_equal(append_n(log, 5, T0, NULL, NULL), 0);
	struct sl_shard_log_stats st;
	sl_shard_log_stats(log, &st);
	assert_true(st.bytes > 3000);
	assert_true(sl_shard_log_enforce_retention(log, T0) > 0);
	sl_shard_log_stats(log, &st);
	assert_true(st.bytes <= 3000);
	assert_true(st.first_seq > 1);
	struct sl_read_batch b;
	sl_read_batch_init(&b);
	assert_int_equal(sl_shard_log_read(log, 1, 1000, UINT32_MAX, T0, &b), 0);
	assert_true(b.count > 0 && b.records[0].seq == st.first_seq);
	assert_true(b.records[b.count - 1].seq == 150);
	sl_read_batch_finish(&b);
	sl_shard_log_close(log);
	/* Reopen after retention: still consistent. */
	log = open_log(&c);
	struct sl_shard_log_stats st2;
	sl_shard_log_stats(log, &st2);
	assert_true(st2.next_seq == 151 && st2.segments == st.segments);
	sl_shard_log_close(log);
	tmpdir_remove(dir);
}

static void close_completes_waiting_batches(void **state)
{
	char *dir = tmpdir_make();
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_GROUP);
	struct sl_shard_log *log = open_log(&c);
	struct done_rec d = {0};
	assert_int_equal(append_n(log, 3, T0, &d, NULL), 0);
	sl_shard_log_close(log); /* syncs, then acknowledges */
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.status[0], 0);
	sl_shard_log_close(NULL);
	assert_int_equal(sl_shard_log_destroy_dir(dir), 0);
	assert_true(access(dir, F_OK) < 0);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(append_read_round_trip),
	    cmocka_unit_test(invalid_records_leave_log_unchanged),
	    cmocka_unit_test(read_limits),
	    cmocka_unit_test(seek_by_seq_and_time),
	    cmocka_unit_test(roll_and_read_across_segments),
	    cmocka_unit_test(large_records_by_iovec),
	    cmocka_unit_test(group_commit),
	    cmocka_unit_test(ticket_survives_roll),
	    cmocka_unit_test(interval_and_never_modes),
	    cmocka_unit_test(appends_without_callback),
	    cmocka_unit_test(restore_keeps_seq_and_ts),
	    cmocka_unit_test(retention_by_time),
	    cmocka_unit_test(retention_by_bytes),
	    cmocka_unit_test(close_completes_waiting_batches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
