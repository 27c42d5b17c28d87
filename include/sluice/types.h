/*
 * Types shared by the public API of libsluice and the server.
 */
#ifndef SLUICE_TYPES_H
#define SLUICE_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Limits a client can rely on; the server may be configured lower (never higher) for data. */
#define SLUICE_NAME_LEN_MAX 128		       /* stream/consumer/firehose names (Kinesis rule) */
#define SLUICE_KEY_LEN_MAX 256		       /* partition key bytes (Kinesis rule) */
#define SLUICE_RECORD_BYTES_DEFAULT (1u << 20) /* default --max-record-bytes */
#define SLUICE_RECORD_BYTES_LIMIT (64u << 20)  /* the most --max-record-bytes may be set to */
#define SLUICE_SHARDS_MAX 4096		       /* shards per stream */

/* Where a reader starts in a shard. */
enum sluice_position_type {
	SLUICE_POS_TRIM_HORIZON = 0, /* the oldest record not yet expired */
	SLUICE_POS_LATEST = 1,	     /* just after the newest record: only new records */
	SLUICE_POS_AT_SEQ = 2,	     /* the record with this sequence number, or the next one */
	SLUICE_POS_AFTER_SEQ = 3,    /* the first record after this sequence number */
	SLUICE_POS_AT_TIMESTAMP = 4, /* the first record whose arrival time is >= value (ms) */
};

struct sluice_position {
	enum sluice_position_type type;
	uint64_t value; /* sequence number, or Unix time in ms */
};

/* A 128-bit hash key, big-endian bytes (as Kinesis prints it, a decimal of this integer). */
struct sluice_hash_key {
	uint8_t be[16];
};

/* A record as read back. Pointers borrow the buffer of the result that holds it. */
struct sluice_record {
	uint64_t seq;
	int64_t ts_ms;	 /* arrival time, Unix ms */
	const char *key; /* partition key, not NUL-terminated */
	uint16_t key_len;
	uint8_t has_hash_key; /* the producer gave an explicit hash key */
	struct sluice_hash_key hash_key;
	const uint8_t *data;
	uint32_t data_len;
};

#ifdef __cplusplus
}
#endif
#endif
