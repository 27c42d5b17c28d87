/*
 * Internal interface between the dispatcher (api.c) and the operations (ops_*.c): JSON
 * validation with Kinesis' messages, errors, and the libsluice connection of a session.
 */
#ifndef SL_KINESIS_OPS_H
#define SL_KINESIS_OPS_H

#include "kinesis/api.h"

#include <sluice/client.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* One request in flight: the parsed body and where the answer goes. */
struct kin_req {
	struct kin_session *s;
	json_t *in;
	struct kin_reply *reply;
	bool failed; /* an error was written into reply */
};

/* Kinesis' error types. */
#define KIN_E_VALIDATION "ValidationException"
#define KIN_E_INVALID_ARG "InvalidArgumentException"
#define KIN_E_NOT_FOUND "ResourceNotFoundException"
#define KIN_E_IN_USE "ResourceInUseException"
#define KIN_E_LIMIT "LimitExceededException"
#define KIN_E_EXPIRED_ITERATOR "ExpiredIteratorException"
#define KIN_E_THROUGHPUT "ProvisionedThroughputExceededException"
#define KIN_E_SERIALIZATION "SerializationException"
#define KIN_E_UNKNOWN_OP "UnknownOperationException"
#define KIN_E_INTERNAL "InternalFailure"

/* Write an error reply (once: later errors of the same request are ignored). */
void kin_fail(struct kin_req *q, int http_status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Map a libsluice error of a call about stream (may be NULL) to a Kinesis error. */
void kin_fail_native(struct kin_req *q, int err, const char *stream);
/* Reply 200 with obj (stolen; NULL for an empty body). */
void kin_ok(struct kin_req *q, json_t *obj);

/* The session's connected client, or NULL after kin_fail (server unreachable). */
struct sluice_client *kin_client(struct kin_req *q);

/*
 * Field readers. Each returns false after writing a ValidationException (AWS' wording:
 * "1 validation error detected: Value 'x' at 'field' failed to satisfy constraint: ..."), and
 * true with the value, or with *present = false (for optional fields, present may be NULL for
 * required ones). member is the JSON key ("StreamName"), its camelCase form is used in messages.
 */
bool kin_get_string(struct kin_req *q, const char *member, size_t min_len, size_t max_len,
		    const char **ret, bool *present);
bool kin_get_int(struct kin_req *q, const char *member, int64_t min, int64_t max, int64_t *ret,
		 bool *present);
/* StreamName (required unless StreamARN names the stream), with the name pattern. */
bool kin_get_stream(struct kin_req *q, char out[SLUICE_NAME_LEN_MAX + 1]);
/* A ShardId member ("shardId-000000000001" or a bare number, as Kinesis accepts). */
bool kin_get_shard_id(struct kin_req *q, const char *member, uint32_t *ret, bool *present);
/* A timestamp member: epoch seconds (number) or an ISO-8601 string. */
bool kin_get_timestamp_ms(struct kin_req *q, const char *member, int64_t *ret, bool *present);

/* Decode standard base64 (with padding) of len bytes into a malloc'd buffer. -EINVAL on bad. */
int kin_base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len);
/* JSON string of base64(p, len). NULL on ENOMEM. */
json_t *kin_base64_json(const uint8_t *p, size_t len);

/* JSON pieces shared by several operations. */
json_t *kin_shard_json(const struct sluice_shard_info *sh);
json_t *kin_seq_json(uint64_t seq); /* decimal string */
void kin_arn(const char *stream, char *out, size_t out_len);

/* Operations. */
void kin_op_create_stream(struct kin_req *q);
void kin_op_delete_stream(struct kin_req *q);
void kin_op_list_streams(struct kin_req *q);
void kin_op_describe_stream(struct kin_req *q);
void kin_op_describe_stream_summary(struct kin_req *q);
void kin_op_list_shards(struct kin_req *q);
void kin_op_describe_limits(struct kin_req *q);
void kin_op_put_record(struct kin_req *q);
void kin_op_put_records(struct kin_req *q);
void kin_op_get_shard_iterator(struct kin_req *q);
void kin_op_get_records(struct kin_req *q);
void kin_op_increase_retention(struct kin_req *q);
void kin_op_decrease_retention(struct kin_req *q);
void kin_op_add_tags(struct kin_req *q);
void kin_op_remove_tags(struct kin_req *q);
void kin_op_list_tags(struct kin_req *q);
void kin_op_split_shard(struct kin_req *q);
void kin_op_merge_shards(struct kin_req *q);
void kin_op_update_shard_count(struct kin_req *q);

#endif
