/*
 * sluice error codes.
 *
 * Every function of libsluice that can fail returns int: 0 (or a positive count) on success, a
 * negative errno value for system errors (-ECONNREFUSED, -ENOSPC, ...), or one of the project codes
 * below, all under -4095 so they never collide with errno. The same numbers travel on the wire in
 * the native protocol's status fields, so a server error reaches the client unchanged.
 */
#ifndef SLUICE_ERRORS_H
#define SLUICE_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

enum sluice_error {
	SLUICE_ERR_CORRUPT = -5001,	     /* stored data failed its checksum */
	SLUICE_ERR_STREAM_NOT_FOUND = -5002, /* no stream of that name */
	SLUICE_ERR_STREAM_EXISTS = -5003,    /* a stream of that name exists already */
	SLUICE_ERR_INVALID_ARGUMENT = -5004, /* a request field is out of range */
	SLUICE_ERR_RECORD_TOO_LARGE = -5005, /* record data over --max-record-bytes */
	SLUICE_ERR_THROTTLED = -5006,	     /* too much in flight: retry later */
	SLUICE_ERR_PROTOCOL = -5007,	     /* malformed frame or body */
	SLUICE_ERR_UNSUPPORTED_VERSION = -5008,
	SLUICE_ERR_BAD_OPCODE = -5009,
	SLUICE_ERR_SHARD_NOT_FOUND = -5010,
	SLUICE_ERR_UNAVAILABLE = -5011, /* the shard cannot accept writes (failed fsync) */
	SLUICE_ERR_INTERNAL = -5012,
	SLUICE_ERR_INVALID_NAME = -5013, /* names: 1-128 chars of [a-zA-Z0-9_.-] */
	SLUICE_ERR_INVALID_KEY = -5014,	 /* partition key: 1-256 bytes of UTF-8 */
	SLUICE_ERR_UNAUTHORIZED = -5015,
	SLUICE_ERR_TIMEOUT = -5016,
	SLUICE_ERR_DISCONNECTED = -5017, /* the connection closed before the answer came */
	SLUICE_ERR_SHUTTING_DOWN = -5018,
	SLUICE_ERR_SHARD_CLOSED = -5019, /* the shard was split or merged; write to its children */
	SLUICE_ERR_LIMIT_EXCEEDED = -5020,  /* a server-wide limit (streams, shards, connections) */
	SLUICE_ERR_RESOURCE_IN_USE = -5021, /* another reshard of the stream is running */
	SLUICE_ERR_SEQ_ORDER = -5029,	   /* restore: sequence numbers go backwards */
	SLUICE_ERR_ARCHIVE_GAP = -5030,	   /* restore: records are missing from the archive */
	SLUICE_ERR_NOT_RESTORABLE = -5031, /* restore: raw objects (no keys, no seqs) */
	SLUICE_ERR_LAYOUT_MISMATCH =
	    -5032, /* restore: the stream's shards differ from the archive */
};

/* A short English description of any code above or any -errno. Never NULL, static storage. */
const char *sluice_strerror(int err);

/* The stable name of the code ("stream_not_found"), for logs and JSON. Never NULL. */
const char *sluice_error_name(int err);

/* Whether retrying the same request later can succeed (throttled, unavailable, disconnected...). */
int sluice_error_is_retryable(int err);

#ifdef __cplusplus
}
#endif
#endif
