/*
 * struct sl_stream_meta: the durable description of one stream (name, retention, shards and their
 * hash ranges, resharding lineage, tags), and its metadata file.
 *
 * File: META_DIR/streams/NAME.json, one per stream, UTF-8 JSON, written atomically (write
 * NAME.json.tmp in the same folder, fsync it, rename over NAME.json, fsync the folder), so after a
 * crash the file is either the old or the new version, never a mix. A leftover NAME.json.tmp is
 * an unfinished save: it is ignored on load and overwritten by the next save. Layout (format 1):
 *
 *   {
 *     "format": 1,
 *     "name": "orders",                 1..128 of [a-zA-Z0-9_.-], equal to the file's NAME
 *     "retention_ms": 86400000,         SL_STREAM_RETENTION_MS_MIN..._MAX
 *     "created_ms": 1764291723000,      Unix ms, >= 0
 *     "status": "active",               "active" | "deleting"
 *     "next_shard_id": 4,               > every shard id; ids are never reused
 *     "shards": [                       ascending id; closed shards stay listed (lineage)
 *       {"id": 0, "parent_id": -1, "adjacent_parent_id": -1,
 *        "start_hash_key": "0", "end_hash_key": "8507...2863",   decimal, as Kinesis prints
 *        "start_seq": "1", "end_seq": "0",                       decimal strings (u64)
 *        "state": "open",                                        "open" | "closed"
 *        "created_ms": 1764291723000}      optional, Unix ms the stream or a reshard made
 *                                        it; a closed shard also has "closed_ms" (optional)
 *     ],
 *     "tags": {"team": "payments"}      0..SL_STREAM_TAGS_MAX pairs
 *   }
 *
 * Loading validates every field and the invariants between them (the open shards cover the hash
 * space exactly; an open shard has end_seq 0; ids unique and below next_shard_id; ...); any
 * violation, a syntax error, a duplicate key or a wrong type gives SLUICE_ERR_CORRUPT and a
 * message naming the field. Unknown fields are ignored, so a newer minor version can add fields.
 *
 * Sequence numbers are per shard. A child of a split or merge starts after the highest end_seq of
 * its parents, so the records of one partition key keep increasing sequence numbers across a
 * resharding.
 *
 * Ownership and threads: plain data, no locking. The owner (sluiced's metadata owner) serialises
 * changes; one save per stream at a time (saves of different streams may run concurrently). A
 * convenient pattern is copy-on-write: clone, change the clone, save it, then publish it.
 */
#ifndef SL_STREAM_STREAM_META_H
#define SL_STREAM_STREAM_META_H

#include <sluice/types.h>

#include "stream/hash_key.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Retention bounds. Kinesis allows 24 h .. 365 d; sluice goes down to 1 s so tests can watch
 * records expire. */
#define SL_STREAM_RETENTION_MS_MIN 1000ll
#define SL_STREAM_RETENTION_MS_MAX (365ll * 24 * 3600 * 1000)
/* Shards listed in one stream, open and closed: closed shards stay for their lineage, so each
 * resharding adds some. Bounds the metadata file and a client-triggered split loop. */
#define SL_STREAM_SHARD_RECORDS_MAX (4 * SLUICE_SHARDS_MAX)
/* Tag limits (Kinesis): 50 per stream, key 1..128 bytes, value 0..256 bytes, UTF-8. */
#define SL_STREAM_TAGS_MAX 50
#define SL_STREAM_TAG_KEY_LEN_MAX 128
#define SL_STREAM_TAG_VALUE_LEN_MAX 256
/* Largest metadata file read back (a full stream is ~5 MiB); more means corruption. */
#define SL_STREAM_META_FILE_BYTES_MAX (64u << 20)
/* Messages written to err_msg buffers are truncated to the buffer; this size always suffices. */
#define SL_STREAM_MSG_LEN 256

enum sl_stream_status {
	SL_STREAM_ACTIVE = 0,
	SL_STREAM_DELETING = 1,
};

enum sl_shard_state {
	SL_SHARD_OPEN = 0,
	SL_SHARD_CLOSED =
	    1, /* split or merged: no more writes, readable until its records expire */
};

struct sl_shard_meta {
	uint32_t shard_id;
	int64_t parent_id;	    /* -1: none (created with the stream) */
	int64_t adjacent_parent_id; /* -1: none (merge children only) */
	sl_u128 start_key;	    /* inclusive hash range */
	sl_u128 end_key;
	uint64_t start_seq; /* first sequence number of the shard's log (>= 1) */
	uint64_t end_seq;   /* 0 while open; when closed, the last sequence number it holds
			       (start_seq - 1 if it got no record) */
	enum sl_shard_state state;
	/* Unix ms the shard was created / closed by a reshard; 0: unknown (metadata written before
	 * sluice kept them) or, for closed_ms, still open. Kinesis' ListShards timestamp filters
	 * use them. */
	int64_t created_ms;
	int64_t closed_ms;
};

struct sl_tag {
	char *key;   /* owned, NUL-terminated UTF-8 */
	char *value; /* owned, NUL-terminated UTF-8 */
};

struct sl_stream_meta {
	char name[SLUICE_NAME_LEN_MAX + 1];
	int64_t retention_ms;
	int64_t created_ms;
	enum sl_stream_status status;
	uint32_t next_shard_id;
	struct sl_shard_meta *shards; /* owned, ascending shard_id */
	size_t shard_count;
	struct sl_tag *tags; /* owned, in insertion order, keys unique */
	size_t tag_count;
};

/* 0 if name is 1..SLUICE_NAME_LEN_MAX of [a-zA-Z0-9_.-] and not "." or "..", else
 * SLUICE_ERR_INVALID_NAME. Every path built from a name goes through this first. */
int sl_stream_name_validate(const char *name);

/*
 * A new stream of shard_count shards (1..SLUICE_SHARDS_MAX, else SLUICE_ERR_INVALID_ARGUMENT)
 * splitting the hash space evenly like Kinesis, ids 0..n-1, start_seq 1, status active, no tags.
 * Returns 0, SLUICE_ERR_INVALID_NAME, SLUICE_ERR_INVALID_ARGUMENT (count, retention outside
 * SL_STREAM_RETENTION_MS_MIN.._MAX, now_ms < 0) or -ENOMEM.
 */
int sl_stream_meta_create(const char *name, uint32_t shard_count, int64_t retention_ms,
			  int64_t now_ms, struct sl_stream_meta **ret);
/* Accepts NULL and a half-built object. */
void sl_stream_meta_destroy(struct sl_stream_meta *meta);
/* A deep copy. 0 or -ENOMEM. */
int sl_stream_meta_clone(const struct sl_stream_meta *meta, struct sl_stream_meta **ret);

/*
 * Check every invariant the file format promises (see the top of this file). 0, or
 * SLUICE_ERR_INVALID_ARGUMENT with a message in err_msg (may be NULL). save() runs it before
 * writing, from_json() after reading.
 */
int sl_stream_meta_check(const struct sl_stream_meta *meta, char *err_msg, size_t err_msg_len);

/* The shard with this id, or NULL. */
struct sl_shard_meta *sl_stream_meta_find_shard(const struct sl_stream_meta *meta, uint32_t id);
size_t sl_stream_meta_open_shard_count(const struct sl_stream_meta *meta);
/* The routing map of the open shards. 0, SLUICE_ERR_INVALID_ARGUMENT (ranges broken), -ENOMEM. */
int sl_stream_meta_shard_map(const struct sl_stream_meta *meta, struct sl_shard_map **ret);

/*
 * Tags. set adds or replaces (keeps the position of an existing key). Returns 0,
 * SLUICE_ERR_INVALID_ARGUMENT (key empty or too long, value too long, not UTF-8),
 * SLUICE_ERR_LIMIT_EXCEEDED (SL_STREAM_TAGS_MAX reached) or -ENOMEM. remove returns 0 or -ENOENT.
 * get returns the value (borrowed until the tag changes) or NULL.
 */
int sl_stream_meta_set_tag(struct sl_stream_meta *meta, const char *key, const char *value);
int sl_stream_meta_remove_tag(struct sl_stream_meta *meta, const char *key);
const char *sl_stream_meta_get_tag(const struct sl_stream_meta *meta, const char *key);

/*
 * Resharding. Both validate first and change nothing on failure.
 *
 * split closes open shard shard_id (its end_seq := end_seq, the last sequence number it holds)
 * and adds two open children: [start, new_start_key - 1] then [new_start_key, end], both starting
 * at end_seq + 1 with parent_id = shard_id. new_start_key must be strictly inside the parent's
 * range (start < new_start_key <= end), as in Kinesis' SplitShard. ret_child_ids may be NULL.
 *
 * merge closes the open shards shard_id and adjacent_id, whose ranges must be adjacent (either
 * order), with end_seq / adjacent_end_seq, and adds one open child covering the union with
 * parent_id = shard_id, adjacent_parent_id = adjacent_id, starting after the larger end_seq.
 *
 * Returns 0, SLUICE_ERR_SHARD_NOT_FOUND, SLUICE_ERR_INVALID_ARGUMENT (shard closed, key outside,
 * not adjacent, same shard, end_seq < start_seq - 1, ...) with a message, SLUICE_ERR_LIMIT_EXCEEDED
 * (SLUICE_SHARDS_MAX open or SL_STREAM_SHARD_RECORDS_MAX listed shards), or -ENOMEM.
 */
/*
 * After a reshard applied to meta (sl_reshard_apply): every shard with an id >= first_new_id
 * was created at now_ms, and every shard that one of them names as a parent was closed then
 * (unless it already has a closed_ms).
 */
void sl_stream_meta_stamp_reshard(struct sl_stream_meta *meta, uint32_t first_new_id,
				  int64_t now_ms);

int sl_stream_meta_split(struct sl_stream_meta *meta, uint32_t shard_id, sl_u128 new_start_key,
			 uint64_t end_seq, uint32_t ret_child_ids[2], char *err_msg,
			 size_t err_msg_len);
int sl_stream_meta_merge(struct sl_stream_meta *meta, uint32_t shard_id, uint32_t adjacent_id,
			 uint64_t end_seq, uint64_t adjacent_end_seq, uint32_t *ret_child_id,
			 char *err_msg, size_t err_msg_len);

/*
 * JSON. to_json returns a malloc'd, NUL-terminated document (free() it) and its length; 0 or
 * -ENOMEM. from_json parses len bytes and validates everything (sl_stream_meta_check); 0,
 * SLUICE_ERR_CORRUPT with a message, or -ENOMEM.
 */
int sl_stream_meta_to_json(const struct sl_stream_meta *meta, char **ret_json, size_t *ret_len);
int sl_stream_meta_from_json(const char *json, size_t len, struct sl_stream_meta **ret,
			     char *err_msg, size_t err_msg_len);

/*
 * Persistence under meta_dir. save creates meta_dir and meta_dir/streams if missing (not
 * meta_dir's parents) and fsyncs the folders it created.
 *
 * save writes meta_dir/streams/NAME.json atomically (see the top); 0, -errno, or
 * SLUICE_ERR_INVALID_ARGUMENT if meta fails sl_stream_meta_check (nothing written).
 *
 * load reads one stream: 0, SLUICE_ERR_INVALID_NAME, SLUICE_ERR_STREAM_NOT_FOUND, -errno, or
 * SLUICE_ERR_CORRUPT with a message (also when the file's name and its "name" differ).
 *
 * load_all reads every meta_dir/streams/ *.json in name order; files not ending in ".json"
 * (temp files) are ignored. Each good stream goes to loaded(), which takes ownership of meta and
 * returns 0 to go on or a negative value to stop load_all with that value. Each bad file goes to
 * corrupt() (may be NULL) with its file name, the error and a message, and loading goes on.
 * Returns the number of streams loaded, or a negative error (the folder cannot be read; a missing
 * folder is 0 streams).
 *
 * remove unlinks meta_dir/streams/NAME.json (and a leftover temp file) and fsyncs the folder;
 * 0, SLUICE_ERR_INVALID_NAME, SLUICE_ERR_STREAM_NOT_FOUND or -errno.
 */
struct sl_stream_meta_load_ops {
	int (*loaded)(void *ctx, struct sl_stream_meta *meta);
	void (*corrupt)(void *ctx, const char *file_name, int err, const char *msg);
};

int sl_stream_meta_save(const char *meta_dir, const struct sl_stream_meta *meta);
int sl_stream_meta_load(const char *meta_dir, const char *name, struct sl_stream_meta **ret,
			char *err_msg, size_t err_msg_len);
int sl_stream_meta_load_all(const char *meta_dir, const struct sl_stream_meta_load_ops *ops,
			    void *ctx);
int sl_stream_meta_remove(const char *meta_dir, const char *name);

/*
 * Shard ids as Kinesis prints them: "shardId-" and 12 digits. format needs SL_SHARD_ID_BUF bytes.
 * parse accepts "shardId-" followed by 1..12 digits (value <= UINT32_MAX): 0 or -EINVAL.
 */
#define SL_SHARD_ID_BUF 21
void sl_shard_id_format(uint32_t shard_id, char out[SL_SHARD_ID_BUF]);
int sl_shard_id_parse(const char *s, size_t len, uint32_t *ret);

/*
 * The log folder of a shard: DATA_DIR/streams/NAME/shardId-000000000000. Returns the length
 * written (NUL excluded), SLUICE_ERR_INVALID_NAME (nothing written), or -ENAMETOOLONG if buf is
 * too small.
 */
int sl_stream_shard_dir(const char *data_dir, const char *stream, uint32_t shard_id, char *buf,
			size_t len);

#endif
