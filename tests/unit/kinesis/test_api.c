/*
 * The Kinesis request path without a log server (src/kinesis/api.c and the operations'
 * validation): every request here is decided before any native call, so the session points at
 * a closed port; the one that does reach for the server must answer InternalFailure (500).
 */
#include "kinesis/ops.h"

#include "common/clock.h"

#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static struct kin_api *api;
static struct kin_session session;
static struct kin_reply reply;

static int setup(void **state)
{
	/* Port 1 on loopback: nothing listens, connecting fails at once. */
	struct kin_api_config cfg = {.native_addr = "127.0.0.1:1"};
	if (kin_api_create(&cfg, &api, NULL, 0) < 0)
		return -1;
	kin_session_init(&session, api);
	kin_reply_init(&reply);
	return 0;
}

static int teardown(void **state)
{
	kin_reply_finish(&reply);
	kin_session_finish(&session);
	kin_api_destroy(api);
	return 0;
}

/* Run op with body; return the parsed reply (caller decrefs) and check status and request id. */
static json_t *run(const char *op, const char *body, int want_status)
{
	char target[128];
	snprintf(target, sizeof(target), "%s%s", op ? KIN_TARGET_PREFIX : "", op ? op : "");
	kin_handle(&session, op ? target : NULL, op ? strlen(target) : 0, (const uint8_t *)body,
		   strlen(body), &reply);
	if (reply.status != want_status)
		fail_msg("%s %s: status %d, want %d: %.*s", op, body, reply.status, want_status,
			 (int)reply.body.len, (char *)reply.body.data);
	assert_int_equal(strlen(reply.request_id), 36);
	return json_loadb((const char *)reply.body.data, reply.body.len, 0, NULL);
}

static void expect(const char *op, const char *body, const char *type, const char *msg_part)
{
	json_t *j = run(op, body, 400);
	assert_non_null(j);
	const char *t = json_string_value(json_object_get(j, "__type"));
	const char *m = json_string_value(json_object_get(j, "message"));
	if (!t || strcmp(t, type) != 0 || !m || (msg_part && !strstr(m, msg_part)))
		fail_msg("%s %s: got %s: %s; want %s with '%s'", op, body, t, m, type,
			 msg_part ? msg_part : "");
	json_decref(j);
}

static void dispatch_errors(void **state)
{
	expect(NULL, "{}", KIN_E_UNKNOWN_OP, "X-Amz-Target");
	expect("Frobnicate", "{}", KIN_E_UNKNOWN_OP, "Frobnicate");
	expect("ListStreams", "{\"a\":", KIN_E_SERIALIZATION, NULL);
	expect("ListStreams", "[]", KIN_E_SERIALIZATION, NULL);
	expect("ListStreams", "{\"a\":1,\"a\":2}", KIN_E_SERIALIZATION, NULL);
	/* a target that only starts like one */
	kin_handle(&session, "Kinesis_20131202.", 17, (const uint8_t *)"{}", 2, &reply);
	assert_int_equal(reply.status, 400);
}

static void validation_messages(void **state)
{
	expect("DescribeStream", "{}", KIN_E_VALIDATION, "Either StreamName or StreamARN");
	expect("DescribeStream", "{\"StreamName\":\"\"}", KIN_E_VALIDATION,
	       "Member must have length greater than or equal to 1");
	expect("DescribeStream", "{\"StreamName\":\"a b\"}", KIN_E_VALIDATION,
	       "Value 'a b' at 'streamName' failed to satisfy constraint: Member must satisfy "
	       "regular expression pattern: [a-zA-Z0-9_.-]+");
	char longname[200];
	memset(longname, 'x', sizeof(longname));
	char body[300];
	snprintf(body, sizeof(body), "{\"StreamName\":\"%.129s\"}", longname);
	expect("DescribeStream", body, KIN_E_VALIDATION, "less than or equal to 128");
	expect("DescribeStream", "{\"StreamName\":3}", KIN_E_SERIALIZATION, NULL);
	expect("CreateStream", "{\"StreamName\":\"s\"}", KIN_E_VALIDATION, "'shardCount'");
	expect("CreateStream", "{\"StreamName\":\"s\",\"ShardCount\":0}", KIN_E_VALIDATION,
	       "Value '0' at 'shardCount'");
	expect("CreateStream", "{\"StreamName\":\"s\",\"ShardCount\":5000}", KIN_E_LIMIT, NULL);
	expect(
	    "CreateStream",
	    "{\"StreamName\":\"s\",\"ShardCount\":1,\"StreamModeDetails\":{\"StreamMode\":\"X\"}}",
	    KIN_E_VALIDATION, "PROVISIONED, ON_DEMAND");
	expect("ListStreams", "{\"Limit\":0}", KIN_E_VALIDATION, "'limit'");
	expect("ListStreams", "{\"Limit\":\"5\"}", KIN_E_SERIALIZATION, NULL);
	expect("ListShards", "{\"NextToken\":\"x\",\"StreamName\":\"s\"}", KIN_E_INVALID_ARG,
	       "cannot be provided together");
	expect("ListShards", "{\"NextToken\":\"bm90IGpzb24=\"}", KIN_E_INVALID_ARG, "NextToken");
	expect("ListShards", "{\"StreamName\":\"s\",\"ShardFilter\":{\"Type\":\"AFTER_SHARD_ID\"}}",
	       KIN_E_INVALID_ARG, "needs a ShardId");
	expect("ListShards", "{\"StreamName\":\"s\",\"ShardFilter\":{\"Type\":\"AT_TIMESTAMP\"}}",
	       KIN_E_INVALID_ARG, "needs a Timestamp");
	expect("ListShards", "{\"StreamName\":\"s\",\"MaxResults\":10001}", KIN_E_VALIDATION, NULL);
}

static void record_validation(void **state)
{
	expect("PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"k\"}", KIN_E_VALIDATION,
	       "'data'");
	expect("PutRecord", "{\"StreamName\":\"s\",\"Data\":\"eA==\"}", KIN_E_VALIDATION,
	       "'partitionKey'");
	expect("PutRecord", "{\"StreamName\":\"s\",\"Data\":\"e===\",\"PartitionKey\":\"k\"}",
	       KIN_E_SERIALIZATION, "base64");
	expect("PutRecord", "{\"StreamName\":\"s\",\"Data\":\"eA\",\"PartitionKey\":\"k\"}",
	       KIN_E_SERIALIZATION, "base64");
	expect("PutRecord",
	       "{\"StreamName\":\"s\",\"Data\":\"eA==\",\"PartitionKey\":\"k\","
	       "\"ExplicitHashKey\":\"340282366920938463463374607431768211456\"}",
	       KIN_E_INVALID_ARG, "ExplicitHashKey");
	expect("PutRecord",
	       "{\"StreamName\":\"s\",\"Data\":\"eA==\",\"PartitionKey\":\"k\","
	       "\"ExplicitHashKey\":\"-1\"}",
	       KIN_E_INVALID_ARG, "ExplicitHashKey");
	expect("PutRecords", "{\"StreamName\":\"s\"}", KIN_E_VALIDATION, "'records'");
	expect("PutRecords", "{\"StreamName\":\"s\",\"Records\":[]}", KIN_E_VALIDATION,
	       "greater than or equal to 1");
	expect("PutRecords", "{\"StreamName\":\"s\",\"Records\":[5]}", KIN_E_SERIALIZATION, NULL);
	/* 501 records */
	size_t cap = 501 * 40 + 64;
	char *big = malloc(cap);
	size_t n = (size_t)snprintf(big, cap, "{\"StreamName\":\"s\",\"Records\":[");
	for (int i = 0; i < 501; i++)
		n += (size_t)snprintf(big + n, cap - n, "%s{\"Data\":\"\",\"PartitionKey\":\"k\"}",
				      i ? "," : "");
	snprintf(big + n, cap - n, "]}");
	expect("PutRecords", big, KIN_E_VALIDATION, "less than or equal to 500");
	free(big);
	expect("GetShardIterator",
	       "{\"StreamName\":\"s\",\"ShardId\":\"shardId-000000000000\",\"ShardIteratorType\":"
	       "\"NOPE\"}",
	       KIN_E_VALIDATION, "AFTER_SEQUENCE_NUMBER");
	expect("GetShardIterator",
	       "{\"StreamName\":\"s\",\"ShardId\":\"shardId-000000000000\",\"ShardIteratorType\":"
	       "\"AT_SEQUENCE_NUMBER\"}",
	       KIN_E_INVALID_ARG, "StartingSequenceNumber");
	expect("GetShardIterator",
	       "{\"StreamName\":\"s\",\"ShardId\":\"shardId-000000000000\",\"ShardIteratorType\":"
	       "\"AT_SEQUENCE_NUMBER\",\"StartingSequenceNumber\":\"12x\"}",
	       KIN_E_INVALID_ARG, "is invalid");
	expect("GetShardIterator",
	       "{\"StreamName\":\"s\",\"ShardId\":\"shardId-000000000000\",\"ShardIteratorType\":"
	       "\"AT_TIMESTAMP\"}",
	       KIN_E_INVALID_ARG, "Timestamp");
	expect("GetShardIterator",
	       "{\"StreamName\":\"s\",\"ShardId\":\"bogus\",\"ShardIteratorType\":\"LATEST\"}",
	       KIN_E_VALIDATION, "'shardId'");
	expect("GetRecords", "{}", KIN_E_VALIDATION, "'shardIterator'");
	expect("GetRecords", "{\"ShardIterator\":\"AAAA\"}", KIN_E_INVALID_ARG,
	       "Invalid ShardIterator");
	expect("GetRecords", "{\"ShardIterator\":\"AAAA\",\"Limit\":0}", KIN_E_VALIDATION, NULL);
}

static void expired_iterator(void **state)
{
	struct kin_iterator it = {.shard_id = 0, .pos = {.type = SLUICE_POS_TRIM_HORIZON}};
	strcpy(it.stream, "s");
	it.issued_ms = sl_wall_ms() - KIN_ITERATOR_TTL_MS - 1000;
	char text[KIN_ITERATOR_BUF], body[400];
	assert_int_equal(kin_iterator_encode(api->iterator_key, &it, text), 0);
	snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\"}", text);
	expect("GetRecords", body, KIN_E_EXPIRED_ITERATOR, "Iterator expired");
}

static void settings_and_resharding_validation(void **state)
{
	expect("IncreaseStreamRetentionPeriod",
	       "{\"StreamName\":\"s\",\"RetentionPeriodHours\":12}", KIN_E_INVALID_ARG,
	       "Minimum allowed retention period is 24 hours");
	expect("DecreaseStreamRetentionPeriod",
	       "{\"StreamName\":\"s\",\"RetentionPeriodHours\":9000}", KIN_E_INVALID_ARG,
	       "Maximum allowed retention period is 8760 hours");
	expect("AddTagsToStream", "{\"StreamName\":\"s\"}", KIN_E_VALIDATION, "'tags'");
	expect("AddTagsToStream", "{\"StreamName\":\"s\",\"Tags\":{}}", KIN_E_VALIDATION, NULL);
	expect("AddTagsToStream", "{\"StreamName\":\"s\",\"Tags\":{\"\":\"v\"}}", KIN_E_INVALID_ARG,
	       NULL);
	expect("AddTagsToStream", "{\"StreamName\":\"s\",\"Tags\":{\"k\":1}}", KIN_E_SERIALIZATION,
	       NULL);
	expect("RemoveTagsFromStream", "{\"StreamName\":\"s\",\"TagKeys\":[]}", KIN_E_VALIDATION,
	       NULL);
	expect("ListTagsForStream", "{\"StreamName\":\"s\",\"Limit\":51}", KIN_E_VALIDATION, NULL);
	expect("SplitShard",
	       "{\"StreamName\":\"s\",\"ShardToSplit\":\"shardId-000000000000\","
	       "\"NewStartingHashKey\":\"01\"}",
	       KIN_E_VALIDATION, "newStartingHashKey");
	expect("MergeShards", "{\"StreamName\":\"s\",\"ShardToMerge\":\"shardId-000000000000\"}",
	       KIN_E_VALIDATION, "'adjacentShardToMerge'");
	expect("UpdateShardCount",
	       "{\"StreamName\":\"s\",\"TargetShardCount\":2,\"ScalingType\":\"FAST\"}",
	       KIN_E_VALIDATION, "UNIFORM_SCALING");
}

static void unreachable_server_is_an_internal_failure(void **state)
{
	json_t *j = run("ListStreams", "{}", 500);
	assert_string_equal(json_string_value(json_object_get(j, "__type")), KIN_E_INTERNAL);
	json_decref(j);
}

static void native_errors_map_to_kinesis_types(void **state)
{
	static const struct {
		int err;
		int status;
		const char *type;
	} cases[] = {
	    {SLUICE_ERR_STREAM_NOT_FOUND, 400, KIN_E_NOT_FOUND},
	    {SLUICE_ERR_STREAM_EXISTS, 400, KIN_E_IN_USE},
	    {SLUICE_ERR_SHARD_NOT_FOUND, 400, KIN_E_NOT_FOUND},
	    {SLUICE_ERR_RESOURCE_IN_USE, 400, KIN_E_IN_USE},
	    {SLUICE_ERR_INVALID_ARGUMENT, 400, KIN_E_INVALID_ARG},
	    {SLUICE_ERR_RECORD_TOO_LARGE, 400, KIN_E_INVALID_ARG},
	    {SLUICE_ERR_LIMIT_EXCEEDED, 400, KIN_E_LIMIT},
	    {SLUICE_ERR_THROTTLED, 400, KIN_E_THROUGHPUT},
	    {SLUICE_ERR_BAD_OPCODE, 400, KIN_E_INVALID_ARG},
	    {SLUICE_ERR_UNAVAILABLE, 503, "ServiceUnavailableException"},
	    {SLUICE_ERR_CORRUPT, 500, KIN_E_INTERNAL},
	    {-ECONNREFUSED, 500, KIN_E_INTERNAL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kin_req q = {.s = &session, .reply = &reply};
		kin_fail_native(&q, cases[i].err, "orders");
		assert_true(q.failed);
		assert_int_equal(reply.status, cases[i].status);
		json_t *j = json_loadb((const char *)reply.body.data, reply.body.len, 0, NULL);
		assert_string_equal(json_string_value(json_object_get(j, "__type")), cases[i].type);
		json_decref(j);
		/* a second error of the same request does not overwrite the first */
		kin_fail(&q, 500, KIN_E_INTERNAL, "later");
		assert_int_equal(reply.status, cases[i].status);
	}
	struct kin_req q = {.s = &session, .reply = &reply};
	kin_fail_native(&q, SLUICE_ERR_STREAM_NOT_FOUND, "orders");
	assert_non_null(strstr((const char *)reply.body.data,
			       "Stream orders under account 000000000000 not found."));
	q = (struct kin_req){.s = &session, .reply = &reply};
	kin_fail_native(&q, SLUICE_ERR_RESOURCE_IN_USE, "orders");
	assert_non_null(strstr((const char *)reply.body.data,
			       "Stream orders under account 000000000000 not ACTIVE, instead in "
			       "state UPDATING"));
}

static void base64_strictness(void **state)
{
	uint8_t *out;
	size_t n;
	assert_int_equal(kin_base64_decode("aGk=", 4, &out, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "hi", 2);
	free(out);
	assert_int_equal(kin_base64_decode("", 0, &out, &n), 0);
	assert_int_equal(n, 0);
	free(out);
	static const char *const bad[] = {"aGk",  "a=Gk", "aG=k",    "aGk\n",
					  "a-k=", "====", "aGk=aGk="};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(kin_base64_decode(bad[i], strlen(bad[i]), &out, &n), -EINVAL);
	json_t *j = kin_base64_json((const uint8_t *)"\x00\xff", 2);
	assert_string_equal(json_string_value(j), "AP8=");
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(dispatch_errors),
	    cmocka_unit_test(validation_messages),
	    cmocka_unit_test(record_validation),
	    cmocka_unit_test(expired_iterator),
	    cmocka_unit_test(settings_and_resharding_validation),
	    cmocka_unit_test(unreachable_server_is_an_internal_failure),
	    cmocka_unit_test(native_errors_map_to_kinesis_types),
	    cmocka_unit_test(base64_strictness),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
