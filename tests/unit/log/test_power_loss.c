/*
 * Power-loss simulation of the shard log.
 *
 * A workload runs through the log under SL_FSYNC_GROUP with the recording I/O table
 * (fault_io.h): every create, write, truncate, unlink, rename and sync is journaled in order, and
 * so is every acknowledgement (done() with status 0) and where in the journal it happened. Then,
 * for many seeds, a "crashed disk" is built in a fresh folder (fault_io_crash_build): the journal
 * is cut at a random point (often its end), what a sync covered before the cut is on disk as
 * issued, and what no sync covered is dropped, applied, torn or replaced by garbage (in order or
 * independently), including the names of files whose folder was not fsynced. The log is opened
 * there (recovery) and must hold:
 *   - every record acknowledged before the cut, with its sequence number, timestamp, key, hash
 *     key and data;
 *   - nothing that was not written before the cut, and nothing corrupt: every record read back is
 *     byte for byte what the workload appended with that sequence number, and sequence numbers
 *     run 1, 2, 3... without gaps;
 *   - appends after recovery continue right after the last recovered record (so above every
 *     acknowledged one), and survive a reopen.
 *
 * Recovery must never refuse the shard. This test found a gap that is now closed: a new segment
 * used to get its name before its header was durable, so a power loss could leave a named but
 * headerless newest segment that recovery refused; segment.c now writes and syncs the header
 * under a temporary name and renames. If a refusal ever comes back, the test fails, after
 * checking whether it is that old case (newest segment, never synced, nothing acknowledged).
 * SLUICE_POWER_LOSS_STRICT=0 counts such refusals instead of failing, for investigation.
 *
 * Deterministic: the seeds derive from SLUICE_POWER_LOSS_SEED (default fixed); a failure names
 * the workload and case seeds and the crash point, which reproduce it. SLUICE_POWER_LOSS_CASES
 * sets the number of cases (default 200).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fault_io.h"
#include "log/segment.h"
#include "log/shard_log.h"
#include "log_test_util.h"

#include <sluice/errors.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1700000000000ll
#define CASES_DEFAULT 200
#define SEED_DEFAULT 0x5eed5eedull
/* Records one workload appends at most (bounds the timestamp table). */
#define RECORDS_MAX 4096
#define APPENDS_MAX 1024
#define BATCH_RECORDS_MAX 6
/* Data up to here is small (copied into the log's staging buffer); one record in five is larger
 * than SL_APPEND_COPY_DATA_BYTES_MAX, so it reaches the disk as its own iovec. */
#define SMALL_DATA_BYTES_MAX 200
#define DATA_BYTES_MAX 5200

struct workload_shape {
	const char *what;
	uint64_t segment_bytes_max;
	uint32_t index_interval_bytes;
	int batches;
};

/* Small segments roll often (sealing, creating files, fsyncing the folder); the index interval
 * decides how much of the .idx recovery has to trust or rebuild. */
static const struct workload_shape shapes[] = {
    {"4 KiB segments, index every 256 bytes", 4096, 256, 120},
    {"16 KiB segments, index every 1 KiB", 16384, 1024, 120},
    {"one segment, default index", 0, 0, 80},
    {"4 KiB segments, index on every record", 4096, 64, 120},
};
#define SHAPES (sizeof(shapes) / sizeof(shapes[0]))

/* The workload that ran last: what was appended, when, and what was acknowledged when. */
static struct {
	uint64_t seed;
	char *dir;
	const struct workload_shape *shape;
	bool recording;
	uint64_t last_seq;
	int64_t ts_ms[RECORDS_MAX + 1];
	struct {
		uint64_t last_seq;
		size_t op_before; /* journal length before the append: its writes come after */
	} appends[APPENDS_MAX];
	size_t nappends;
	struct {
		uint64_t last_seq;
		size_t op_at; /* journal length when done() ran */
	} acks[APPENDS_MAX];
	size_t nacks;
} w;

static struct {
	unsigned cases;
	unsigned refused_bad_header; /* the known gap (top of file) */
	uint64_t records;
	uint64_t acked;
	uint64_t appended_after;
	unsigned truncations;
	struct crash_stats crash;
} totals;

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	return v && *v ? strtoull(v, NULL, 0) : dflt;
}

/* A record's content, derived from the workload seed and its sequence number alone. */
struct gen_rec {
	uint8_t key[SLUICE_KEY_LEN_MAX];
	uint8_t data[DATA_BYTES_MAX];
	struct sl_record_in in;
};

static void gen(uint64_t seq, struct gen_rec *g)
{
	uint64_t h = mix64(w.seed ^ (seq * 0x9e3779b97f4a7c15ull));
	memset(&g->in, 0, sizeof(g->in));
	uint16_t key_len = (uint16_t)(1 + h % 48);
	for (uint16_t i = 0; i < key_len; i++)
		g->key[i] = (uint8_t)('a' + (mix64(h + i) % 26));
	uint32_t data_len = (h >> 8) % 5 == 0 ? 2049 + (uint32_t)((h >> 16) % 3000)
					      : (uint32_t)((h >> 16) % SMALL_DATA_BYTES_MAX);
	uint64_t s = h;
	for (uint32_t i = 0; i < data_len; i++) {
		if (i % 8 == 0)
			s = mix64(s + i);
		g->data[i] = (uint8_t)(s >> (8 * (i % 8)));
	}
	g->in.key = g->key;
	g->in.key_len = key_len;
	g->in.data = data_len ? g->data : NULL;
	g->in.data_len = data_len;
	g->in.has_hash_key = (h >> 40) % 4 == 0;
	for (int i = 0; i < 16; i++)
		g->in.hash_key.be[i] = (uint8_t)(mix64(h ^ (uint64_t)i) >> 3);
}

static void on_done(void *ctx, int status, uint64_t first_seq, uint32_t count)
{
	/* Only what was acknowledged while recording counts: close() acks after the journal. */
	if (status != 0 || !w.recording)
		return;
	assert_true(w.nacks < APPENDS_MAX);
	w.acks[w.nacks].last_seq = first_seq + count - 1;
	w.acks[w.nacks].op_at = fault_io_journal_len();
	w.nacks++;
}

static struct sl_shard_log_config log_cfg(const char *dir)
{
	struct sl_shard_log_config c = cfg_make(dir, SL_FSYNC_GROUP);
	c.segment_bytes_max = w.shape->segment_bytes_max;
	c.index_interval_bytes = w.shape->index_interval_bytes;
	return c;
}

static void run_workload(uint64_t seed, const struct workload_shape *shape)
{
	free(w.dir);
	memset(&w, 0, sizeof(w));
	w.seed = seed;
	w.shape = shape;
	w.dir = tmpdir_make();
	uint64_t rng = seed;

	fault_io_install();
	fault_io_record_start();
	w.recording = true;
	struct sl_shard_log_config c = log_cfg(w.dir);
	struct sl_shard_log *log = NULL;
	assert_int_equal(sl_shard_log_open(&c, &log), 0);
	static struct gen_rec g[BATCH_RECORDS_MAX];
	struct sl_record_in in[BATCH_RECORDS_MAX];
	for (int b = 0; b < shape->batches; b++) {
		rng = mix64(rng + 1);
		size_t n = 1 + rng % BATCH_RECORDS_MAX;
		assert_true(w.last_seq + n <= RECORDS_MAX && w.nappends < APPENDS_MAX);
		for (size_t i = 0; i < n; i++) {
			gen(w.last_seq + 1 + i, &g[i]);
			in[i] = g[i].in;
		}
		int64_t now = T0 + b * 7;
		size_t before = fault_io_journal_len();
		uint64_t first = 0;
		assert_int_equal(sl_shard_log_append(log, in, n, now, on_done, NULL, &first), 0);
		assert_true(first == w.last_seq + 1);
		for (size_t i = 0; i < n; i++)
			w.ts_ms[first + i] = now;
		w.last_seq += n;
		w.appends[w.nappends].last_seq = w.last_seq;
		w.appends[w.nappends].op_before = before;
		w.nappends++;
		/* Group commit: a sync after most appends, covering all the batches since the last.
		 */
		if ((rng >> 20) % 2 != 0)
			assert_int_equal(sl_shard_log_sync(log, now), 0);
		if (b == shape->batches / 2) {
			/* A clean restart mid-way, so recovery's own writes are in the journal too.
			 */
			sl_shard_log_close(log);
			log = NULL;
			assert_int_equal(sl_shard_log_open(&c, &log), 0);
		}
	}
	/* The power goes out here: whatever close() would do next is not in the journal. */
	w.recording = false;
	fault_io_record_stop();
	sl_shard_log_close(log);
	fault_io_uninstall();
}

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			print_message("power-loss: workload seed 0x%" PRIx64 " (%s), case seed "   \
				      "0x%" PRIx64 ", crash at op %zu of %zu: ",                   \
				      w.seed, w.shape->what, case_seed, crash_at,                  \
				      fault_io_journal_len());                                     \
			fail_msg(__VA_ARGS__);                                                     \
		}                                                                                  \
	} while (0)

static void check_record(const struct sluice_record *r, uint64_t case_seed, size_t crash_at)
{
	static struct gen_rec g;
	gen(r->seq, &g);
	CHECK(r->seq <= w.last_seq, "seq %" PRIu64 " was never appended", r->seq);
	CHECK(r->ts_ms == w.ts_ms[r->seq], "seq %" PRIu64 ": wrong timestamp", r->seq);
	CHECK(r->key_len == g.in.key_len && memcmp(r->key, g.in.key, r->key_len) == 0,
	      "seq %" PRIu64 ": wrong key", r->seq);
	CHECK(r->data_len == g.in.data_len &&
		  (r->data_len == 0 || memcmp(r->data, g.in.data, r->data_len) == 0),
	      "seq %" PRIu64 ": wrong data", r->seq);
	CHECK(!!r->has_hash_key == g.in.has_hash_key &&
		  (!r->has_hash_key || memcmp(r->hash_key.be, g.in.hash_key.be, 16) == 0),
	      "seq %" PRIu64 ": wrong hash key", r->seq);
}

/* Read the whole log; check every record and that seqs run 1..n. Returns n. */
static uint64_t read_all(struct sl_shard_log *log, uint64_t case_seed, size_t crash_at)
{
	struct sl_read_batch b;
	sl_read_batch_init(&b);
	uint64_t expect = 1;
	for (;;) {
		int r = sl_shard_log_read(log, expect, 1000, UINT32_MAX, T0, &b);
		CHECK(r == 0, "read from %" PRIu64 ": %s", expect, sluice_strerror(r));
		if (b.count == 0)
			break;
		for (size_t i = 0; i < b.count; i++) {
			CHECK(b.records[i].seq == expect, "expected seq %" PRIu64 ", read %" PRIu64,
			      expect, b.records[i].seq);
			check_record(&b.records[i], case_seed, crash_at);
			expect++;
		}
	}
	sl_read_batch_finish(&b);
	return expect - 1;
}

/* The first_seq of the newest .log in dir, or 0. */
static uint64_t newest_segment(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	uint64_t newest = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t seq;
		bool is_idx;
		if (sl_segment_parse_name(de->d_name, &seq, &is_idx) && !is_idx && seq > newest)
			newest = seq;
	}
	closedir(d);
	return newest;
}

/* Whether the file the workload created at path was covered by a sync before crash_at. */
static bool synced_before(const char *path, size_t crash_at)
{
	size_t len;
	const struct rec_op *j = fault_io_journal(&len);
	int inode = -1;
	for (size_t i = 0; i < crash_at && i < len; i++) {
		if (j[i].kind == REC_CREATE && strcmp(j[i].path, path) == 0)
			inode = j[i].inode;
		else if (j[i].kind == REC_SYNC && j[i].inode == inode)
			return true;
	}
	return false;
}

/*
 * Recovery refused the shard. Acceptable only as the known gap (top of file): the newest segment
 * has a bad header and was never synced, so it holds nothing acknowledged. Then do what an
 * operator would (remove that segment) and return the log opened after that.
 */
static struct sl_shard_log *known_gap(const char *dir, int r, uint64_t acked, uint64_t case_seed,
				      size_t crash_at)
{
	uint64_t seg = newest_segment(dir);
	char path[4096];
	snprintf(path, sizeof(path), "%s", seg_path(dir, seg, "log"));
	uint8_t hdr[SL_SEGMENT_HEADER_BYTES] = {0};
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "recovery failed: %s", sluice_strerror(r));
	ssize_t n = read(fd, hdr, sizeof(hdr));
	close(fd);
	CHECK(r == SLUICE_ERR_CORRUPT && n == (ssize_t)sizeof(hdr) &&
		  sl_segment_check_header(hdr, seg) < 0,
	      "recovery failed: %s, and not on the newest segment's header", sluice_strerror(r));
	CHECK(!synced_before(seg_path(w.dir, seg, "log"), crash_at),
	      "recovery refused segment %" PRIu64 " whose header was synced", seg);
	CHECK(acked < seg, "segment %" PRIu64 " with a bad header holds acknowledged records", seg);
	CHECK(getenv("SLUICE_POWER_LOSS_STRICT") &&
		  strcmp(getenv("SLUICE_POWER_LOSS_STRICT"), "0") == 0,
	      "recovery refused segment %" PRIu64 " (bad header of a never-synced segment)", seg);
	totals.refused_bad_header++;
	unlink(path);
	unlink(seg_path(dir, seg, "idx"));
	struct sl_shard_log_config c = log_cfg(dir);
	struct sl_shard_log *log = NULL;
	struct msg_capture mc;
	msg_capture_install(&mc);
	r = sl_shard_log_open(&c, &log);
	msg_capture_uninstall();
	CHECK(r == 0, "recovery failed after removing segment %" PRIu64 ": %s", seg,
	      sluice_strerror(r));
	return log;
}

static void check_case(uint64_t case_seed, size_t crash_at)
{
	char *dir = tmpdir_make();
	struct crash_stats cs;
	assert_int_equal(fault_io_crash_build(crash_at, case_seed, w.dir, dir, &cs), 0);

	uint64_t acked = 0, written = 0;
	for (size_t i = 0; i < w.nacks; i++)
		if (w.acks[i].op_at <= crash_at && w.acks[i].last_seq > acked)
			acked = w.acks[i].last_seq;
	for (size_t i = 0; i < w.nappends; i++)
		if (w.appends[i].op_before < crash_at && w.appends[i].last_seq > written)
			written = w.appends[i].last_seq;

	struct sl_shard_log_config c = log_cfg(dir);
	struct sl_shard_log *log = NULL;
	struct msg_capture mc;
	msg_capture_install(&mc);
	int r = sl_shard_log_open(&c, &log);
	msg_capture_uninstall();
	if (r < 0)
		log = known_gap(dir, r, acked, case_seed, crash_at);
	else if (mc.warns)
		totals.truncations++;

	uint64_t n = read_all(log, case_seed, crash_at);
	CHECK(n >= acked,
	      "acknowledged records up to seq %" PRIu64 " but only %" PRIu64 " recovered", acked,
	      n);
	CHECK(n <= written, "%" PRIu64 " records recovered but only %" PRIu64 " were written", n,
	      written);
	struct sl_shard_log_stats st;
	sl_shard_log_stats(log, &st);
	CHECK(st.next_seq == n + 1, "next_seq %" PRIu64 " after %" PRIu64 " records", st.next_seq,
	      n);

	/* Appends go on right after the last recovered record, and survive a reopen. */
	static struct gen_rec g[2];
	struct sl_record_in in[2];
	for (int i = 0; i < 2; i++) {
		gen(n + 1 + (uint64_t)i, &g[i]);
		in[i] = g[i].in;
	}
	uint64_t first = 0;
	int64_t now = T0 + 1000000;
	r = sl_shard_log_append(log, in, 2, now, NULL, NULL, &first);
	CHECK(r == 0 && first == n + 1, "append after recovery: %s, first seq %" PRIu64,
	      sluice_strerror(r), first);
	CHECK(sl_shard_log_sync(log, now) == 0, "sync after recovery failed");
	sl_shard_log_close(log);
	log = NULL;
	msg_capture_install(&mc);
	r = sl_shard_log_open(&c, &log);
	msg_capture_uninstall();
	CHECK(r == 0 && mc.warns == 0, "reopen after recovery: %s (%s)", sluice_strerror(r),
	      mc.last);
	struct sl_read_batch b;
	sl_read_batch_init(&b);
	r = sl_shard_log_read(log, n + 1, 10, UINT32_MAX, now, &b);
	CHECK(r == 0 && b.count == 2 && b.records[0].seq == n + 1 && b.records[1].seq == n + 2 &&
		  b.records[1].ts_ms == now && b.records[1].data_len == g[1].in.data_len,
	      "records appended after recovery not read back");
	sl_read_batch_finish(&b);
	sl_shard_log_close(log);
	tmpdir_remove(dir);

	totals.cases++;
	totals.records += n;
	totals.acked += acked;
	totals.appended_after += 2;
	totals.crash.unsynced += cs.unsynced;
	totals.crash.lost += cs.lost;
	totals.crash.torn += cs.torn;
	totals.crash.garbage += cs.garbage;
	totals.crash.names_lost += cs.names_lost;
}

static void power_loss(void **state)
{
	uint64_t seed = env_u64("SLUICE_POWER_LOSS_SEED", SEED_DEFAULT);
	uint64_t cases = env_u64("SLUICE_POWER_LOSS_CASES", CASES_DEFAULT);
	uint64_t done = 0;
	for (size_t s = 0; s < SHAPES; s++) {
		uint64_t wseed = mix64(seed + s);
		run_workload(wseed, &shapes[s]);
		size_t ops = fault_io_journal_len();
		assert_true(ops > 0 && w.nacks > 0);
		uint64_t mine = (cases - done) / (SHAPES - s);
		for (uint64_t i = 0; i < mine; i++) {
			uint64_t case_seed = mix64(wseed ^ (i + 1));
			/* Half the cases lose power at the very end, half anywhere on the way. */
			size_t crash_at = i % 2 ? ops : 1 + (size_t)(mix64(case_seed) % ops);
			check_case(case_seed, crash_at);
		}
		done += mine;
		fault_io_journal_free();
		tmpdir_remove(w.dir);
		w.dir = NULL;
	}
	printf("power-loss: %u cases over %zu workloads (seed 0x%" PRIx64 "): %" PRIu64
	       " records checked, %" PRIu64 " of them acknowledged before the crash, %" PRIu64
	       " appended after recovery\n",
	       totals.cases, SHAPES, seed, totals.records, totals.acked, totals.appended_after);
	printf("power-loss: unsynced operations at the crash: %u (%u lost, %u torn, %u garbage, %u "
	       "names lost); %u recoveries cut a tail; %u refused on a never-synced segment "
	       "header (known gap)\n",
	       totals.crash.unsynced, totals.crash.lost, totals.crash.torn, totals.crash.garbage,
	       totals.crash.names_lost, totals.truncations, totals.refused_bad_header);
	assert_true(totals.cases == cases);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(power_loss),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
