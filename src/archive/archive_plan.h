/*
 * Restore planning: which archive objects to read, in which order, and what is missing.
 * Pure functions over keys and sequence numbers (no I/O), so they are unit tested on their own
 * (tests/unit/archive/test_archive_plan.c); `sluice restore` does the I/O around them.
 *
 * Plan. Every key listed from the object store goes through sl_archive_plan_add: keys that are
 * not archive objects of the stream (other streams, _meta/, errors/, temp files, keys of
 * another prefix) are ignored and counted. The objects of each shard are then sorted by
 * (FIRSTSEQ ascending, LASTSEQ descending): the key's text order only sorts by sequence within
 * one hour folder, and a shard's objects span many folders, so the order comes from the parsed
 * numbers, never from the listing. Memory: one small entry per object (not per record).
 *
 * Tracking. One struct sl_seq_track per shard follows the sequence numbers actually read, in
 * order. A record below the next expected seq is a duplicate (an object archived twice, or
 * overlapping objects after a crash): skipped and counted. A record above it means records are
 * missing: the range is recorded as a gap, and the record is kept, so the restored shard has the
 * same seqs as the original with a hole where the archive has one.
 */
#ifndef SL_ARCHIVE_PLAN_H
#define SL_ARCHIVE_PLAN_H

#include "archive/archive_format.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Objects a plan holds: ~100 bytes each, so 10 million objects stay around 1 GiB. */
#define SL_ARCHIVE_PLAN_OBJECTS_MAX 10000000u
/* Gaps kept with their ranges per shard; more are only counted. */
#define SL_SEQ_TRACK_GAPS_MAX 64

struct sl_plan_object {
	char *key; /* owned */
	uint32_t shard_id;
	uint64_t first_seq;
	uint64_t last_seq;
	int64_t hour_ms;
	enum sl_archive_format format;
	enum sl_archive_compression compression;
};

struct sl_archive_plan {
	char stream[SLUICE_NAME_LEN_MAX + 1];
	struct sl_plan_object *objects; /* after finish: by shard, then first_seq, last_seq desc */
	size_t count, cap;
	uint64_t ignored;     /* keys that are not archive objects of this stream */
	uint64_t raw_objects; /* objects in the raw format (not restorable) */
};

/* init/finish on caller memory. stream: the archived stream's name. */
void sl_archive_plan_init(struct sl_archive_plan *p, const char *stream);
void sl_archive_plan_finish(struct sl_archive_plan *p);
/*
 * Consider one listed key. Returns 1 when the key is an object of the stream (added), 0 when it
 * is ignored, -ENOMEM, or SLUICE_ERR_LIMIT_EXCEEDED past SL_ARCHIVE_PLAN_OBJECTS_MAX.
 */
int sl_archive_plan_add(struct sl_archive_plan *p, const char *key, size_t key_len);
/* Sort (see the top). Call once after the last add. */
void sl_archive_plan_sort(struct sl_archive_plan *p);
/* The distinct shard ids of the plan, ascending, into ids (cap entries); returns how many. */
size_t sl_archive_plan_shards(const struct sl_archive_plan *p, uint32_t *ids, size_t cap);

struct sl_seq_gap {
	uint64_t first; /* missing seqs first..last, inclusive */
	uint64_t last;
};

struct sl_seq_track {
	uint64_t next; /* the seq expected next */
	uint64_t duplicates;
	uint64_t gap_count;	  /* gaps found (may exceed SL_SEQ_TRACK_GAPS_MAX) */
	uint64_t missing_records; /* sum of the gaps' lengths */
	struct sl_seq_gap gaps[SL_SEQ_TRACK_GAPS_MAX];
};

enum sl_seq_verdict {
	SL_SEQ_NEXT = 0,      /* the expected record */
	SL_SEQ_DUPLICATE = 1, /* already seen: skip it */
	SL_SEQ_AFTER_GAP = 2, /* keep it; the records before it are missing (a gap was noted) */
};

/* Expect first_seq next (the shard's start_seq, >= 1). */
void sl_seq_track_init(struct sl_seq_track *t, uint64_t first_seq);
enum sl_seq_verdict sl_seq_track_see(struct sl_seq_track *t, uint64_t seq);
/* Note a gap without a record after it: the end of a closed shard (end_seq) not reached. */
void sl_seq_track_expect_end(struct sl_seq_track *t, uint64_t end_seq);
/*
 * Whether a whole object can be skipped without reading it: every seq in it was seen. Counts its
 * records as duplicates when so.
 */
bool sl_seq_track_skip_object(struct sl_seq_track *t, uint64_t first_seq, uint64_t last_seq);

#endif
