/* Tests for src/consumer/lambda_event.c: the exec handler's event encoder and response parser. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/errors.h>

#include "common/clock.h"
#include "consumer/lambda_event.h"

static struct sluice_handler_batch make_batch(const struct sluice_handler_record *recs,
					      size_t count)
{
	struct sluice_handler_batch b = {
	    .consumer = "audit",
	    .stream = "orders",
	    .shard_id = 7,
	    .records = recs,
	    .count = count,
	};
	return b;
}

/* Encode, check the framing (one line, one trailing '\n'), and parse back with jansson. */
static json_t *encode_and_load(const struct sluice_handler_batch *b, struct sl_buf *buf)
{
	sl_buf_reset(buf);
	assert_int_equal(sl_lambda_event_encode(b, buf), 0);
	assert_true(buf->len > 1);
	assert_int_equal(buf->data[buf->len - 1], '\n');
	assert_null(memchr(buf->data, '\n', buf->len - 1));
	json_error_t err;
	json_t *root =
	    json_loadb((const char *)buf->data, buf->len - 1, JSON_REJECT_DUPLICATES, &err);
	if (!root)
		fail_msg("event is not JSON: %s at %d: %.*s", err.text, err.position, (int)buf->len,
			 buf->data);
	return root;
}

static size_t b64_decode(const char *in, uint8_t *out)
{
	size_t len = strlen(in);
	if (len == 0)
		return 0;
	int n = EVP_DecodeBlock(out, (const uint8_t *)in, (int)len);
	assert_true(n >= 0);
	size_t pad = (len >= 1 && in[len - 1] == '=') + (len >= 2 && in[len - 2] == '=');
	return (size_t)n - pad;
}

static void encode_fields(void **state)
{
	uint8_t binary[256];
	for (int i = 0; i < 256; i++)
		binary[i] = (uint8_t)(255 - i);
	static const char utf8_key[] =
	    "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87-\xf0\x9f\x94\x91"; /* ключ-🔑 */
	struct sluice_handler_record recs[] = {
	    {.seq = 1,
	     .ts_ms = 1545084650987,
	     .key = "plain",
	     .key_len = 5,
	     .data = (const uint8_t *)"hello",
	     .data_len = 5},
	    {.seq = 42,
	     .ts_ms = 5,
	     .key = "q\"u\\o/te",
	     .key_len = 8,
	     .data = binary,
	     .data_len = sizeof(binary)},
	    {.seq = 43,
	     .ts_ms = 0,
	     .key = "c\x01\n\t\r\b\f\x1f\x7f",
	     .key_len = 9,
	     .data = NULL,
	     .data_len = 0},
	    {.seq = UINT64_MAX,
	     .ts_ms = 1000,
	     .key = utf8_key,
	     .key_len = (uint32_t)strlen(utf8_key),
	     .data = (const uint8_t *)"\0\1\2\xff",
	     .data_len = 4},
	};
	struct sluice_handler_batch b = make_batch(recs, 4);
	struct sl_buf buf;
	sl_buf_init(&buf);
	json_t *root = encode_and_load(&b, &buf);
	json_t *list = json_object_get(root, "Records");
	assert_true(json_is_array(list));
	assert_int_equal(json_array_size(list), 4);

	static const char *const want_b64[] = {"aGVsbG8=", NULL, "", "AAEC/w=="};
	for (size_t i = 0; i < 4; i++) {
		json_t *r = json_array_get(list, i);
		json_t *k = json_object_get(r, "kinesis");
		assert_string_equal(json_string_value(json_object_get(k, "kinesisSchemaVersion")),
				    "1.0");
		/* Keys come back byte for byte, whatever needed escaping. */
		json_t *key = json_object_get(k, "partitionKey");
		assert_int_equal(json_string_length(key), recs[i].key_len);
		assert_memory_equal(json_string_value(key), recs[i].key, recs[i].key_len);
		char seq[32];
		snprintf(seq, sizeof(seq), "%" PRIu64, recs[i].seq);
		assert_string_equal(json_string_value(json_object_get(k, "sequenceNumber")), seq);
		const char *data = json_string_value(json_object_get(k, "data"));
		assert_non_null(data);
		if (want_b64[i])
			assert_string_equal(data, want_b64[i]);
		uint8_t back[400];
		assert_int_equal(b64_decode(data, back), recs[i].data_len);
		if (recs[i].data_len)
			assert_memory_equal(back, recs[i].data, recs[i].data_len);
		json_t *ts = json_object_get(k, "approximateArrivalTimestamp");
		assert_true(json_is_real(ts));
		assert_true(json_real_value(ts) * 1000.0 > (double)recs[i].ts_ms - 0.5 &&
			    json_real_value(ts) * 1000.0 < (double)recs[i].ts_ms + 0.5);

		char id[64];
		snprintf(id, sizeof(id), "shardId-000000000007:%s", seq);
		assert_string_equal(json_string_value(json_object_get(r, "eventID")), id);
		assert_string_equal(json_string_value(json_object_get(r, "eventSource")),
				    "sluice:stream");
		assert_string_equal(json_string_value(json_object_get(r, "eventName")),
				    "sluice:record");
		assert_string_equal(json_string_value(json_object_get(r, "eventVersion")), "1.0");
		assert_string_equal(json_string_value(json_object_get(r, "awsRegion")), "local");
		assert_string_equal(json_string_value(json_object_get(r, "invokeIdentityArn")),
				    "arn:sluice:iam::local:role/sluice");
		assert_string_equal(json_string_value(json_object_get(r, "eventSourceARN")),
				    "arn:sluice:kinesis:local:000000000000:stream/orders");
	}
	json_decref(root);

	/* Exact text of the timestamps: seconds with exactly three decimals, as Lambda's. */
	const char *text = (const char *)buf.data;
	assert_non_null(strstr(text, "\"approximateArrivalTimestamp\":1545084650.987}"));
	assert_non_null(strstr(text, "\"approximateArrivalTimestamp\":0.005}"));
	assert_non_null(strstr(text, "\"approximateArrivalTimestamp\":0.000}"));
	assert_non_null(strstr(text, "\"approximateArrivalTimestamp\":1.000}"));
	/* Control characters use the short escapes where JSON has them, \u00XX otherwise; DEL
	 * and UTF-8 pass through unescaped. */
	assert_non_null(strstr(text, "\"partitionKey\":\"c\\u0001\\n\\t\\r\\b\\f\\u001f\x7f\""));
	assert_non_null(strstr(text, "\"partitionKey\":\"q\\\"u\\\\o/te\""));
	assert_non_null(strstr(text, utf8_key));
	sl_buf_finish(&buf);
}

static void encode_odd_inputs(void **state)
{
	/* Invalid UTF-8 becomes U+FFFD (the line must stay valid JSON for strict readers). */
	struct sluice_handler_record rec = {.seq = 9,
					    .ts_ms = -1500,
					    .key = "a\xff\xc3(\xed\xa0\x80z",
					    .key_len = 8,
					    .data = (const uint8_t *)"x",
					    .data_len = 1};
	struct sluice_handler_batch b = make_batch(&rec, 1);
	b.stream = "we\"ird";
	struct sl_buf buf;
	sl_buf_init(&buf);
	assert_int_equal(sl_buf_put(&buf, "prefix", 6), 0);
	assert_int_equal(sl_lambda_event_encode(&b, &buf), 0);
	assert_memory_equal(buf.data, "prefix", 6); /* appends */
	json_error_t err;
	json_t *root = json_loadb((const char *)buf.data + 6, buf.len - 7, 0, &err);
	assert_non_null(root);
	json_t *k = json_object_get(json_array_get(json_object_get(root, "Records"), 0), "kinesis");
	assert_string_equal(json_string_value(json_object_get(k, "partitionKey")),
			    "a\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz");
	json_t *r0 = json_array_get(json_object_get(root, "Records"), 0);
	assert_string_equal(json_string_value(json_object_get(r0, "eventSourceARN")),
			    "arn:sluice:kinesis:local:000000000000:stream/we\"ird");
	assert_non_null(strstr((const char *)buf.data, "\"approximateArrivalTimestamp\":-1.500}"));
	json_decref(root);
	sl_buf_finish(&buf);
}

static void encode_fast(void **state)
{
	enum { N = 10000 };
	struct sluice_handler_record *recs = calloc(N, sizeof(*recs));
	assert_non_null(recs);
	static uint8_t data[100];
	memset(data, 'd', sizeof(data));
	char keys[N][16];
	for (size_t i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "key-%zu", i);
		recs[i] = (struct sluice_handler_record){.seq = 1000000 + i,
							 .ts_ms = 1700000000000,
							 .key = keys[i],
							 .key_len = (uint32_t)strlen(keys[i]),
							 .data = data,
							 .data_len = sizeof(data)};
	}
	struct sluice_handler_batch b = make_batch(recs, N);
	struct sl_buf buf;
	sl_buf_init(&buf);
	int64_t best_ns = INT64_MAX;
	for (int round = 0; round < 5; round++) {
		sl_buf_reset(&buf);
		int64_t t0 = sl_mono_ns();
		assert_int_equal(sl_lambda_event_encode(&b, &buf), 0);
		int64_t dt = sl_mono_ns() - t0;
		if (dt < best_ns)
			best_ns = dt;
	}
	print_message("encode 10k records of 100 bytes: %.2f ms, %zu bytes\n", best_ns / 1e6,
		      buf.len);
	/* Milliseconds in a release build; generous for sanitizer builds on a busy machine. */
	assert_true(best_ns < 250 * 1000000LL);
	json_t *root = encode_and_load(&b, &buf);
	assert_int_equal(json_array_size(json_object_get(root, "Records")), N);
	json_decref(root);
	sl_buf_finish(&buf);
	free(recs);
}

static const uint64_t seqs[] = {100, 205, 310, 18446744073709551615ull};

static int parse(const char *line, struct sluice_handler_result *res)
{
	memset(res, 0x5a, sizeof(*res));
	int r = sl_lambda_response_parse(line, strlen(line), seqs, 4, res);
	assert_non_null(memchr(res->message, '\0', sizeof(res->message)));
	if (r < 0) {
		assert_int_equal(r, SLUICE_ERR_PROTOCOL);
		assert_int_equal(res->status, SLUICE_HANDLER_ERROR);
		assert_true(res->message[0] != '\0');
	}
	return r;
}

static void parse_success(void **state)
{
	struct sluice_handler_result res;
	static const char *const ok[] = {
	    "{}",
	    " { } \r",
	    "{\"batchItemFailures\":[]}",
	    "{\"batchItemFailures\":null}",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(parse(ok[i], &res), 0);
		assert_int_equal(res.status, SLUICE_HANDLER_OK);
		assert_string_equal(res.message, "");
	}
}

static void parse_failures(void **state)
{
	struct sluice_handler_result res;
	assert_int_equal(parse("{\"batchItemFailures\":[{\"itemIdentifier\":\"205\"}]}", &res), 0);
	assert_int_equal(res.status, SLUICE_HANDLER_FAILED_FROM);
	assert_int_equal(res.failed_from, 1);
	assert_non_null(strstr(res.message, "205"));

	/* Out of order, duplicated, extra fields in items: the lowest wins. */
	assert_int_equal(
	    parse("{\"batchItemFailures\":[{\"itemIdentifier\":\"18446744073709551615\"},"
		  "{\"itemIdentifier\":\"310\",\"why\":\"x\"},"
		  "{\"itemIdentifier\":\"310\"}]}",
		  &res),
	    0);
	assert_int_equal(res.status, SLUICE_HANDLER_FAILED_FROM);
	assert_int_equal(res.failed_from, 2);

	assert_int_equal(parse("{\"batchItemFailures\":[{\"itemIdentifier\":\"100\"}]}", &res), 0);
	assert_int_equal(res.status, SLUICE_HANDLER_FAILED_FROM);
	assert_int_equal(res.failed_from, 0);

	assert_int_equal(parse("{\"error\":\"boom: db down\"}", &res), 0);
	assert_int_equal(res.status, SLUICE_HANDLER_ERROR);
	assert_string_equal(res.message, "boom: db down");
	assert_int_equal(parse("{\"error\":\"\"}", &res), 0);
	assert_int_equal(res.status, SLUICE_HANDLER_ERROR);
	assert_string_equal(res.message, "handler reported an error");
	/* A long message is cut, still terminated. */
	char big[1000];
	memset(big, 'e', sizeof(big));
	snprintf(big, sizeof(big), "{\"error\":\"%0900d\"}", 1);
	assert_int_equal(parse(big, &res), 0);
	assert_int_equal(strlen(res.message), sizeof(res.message) - 1);
}

static void parse_garbage(void **state)
{
	struct sluice_handler_result res;
	static const char *const bad[] = {
	    "",
	    "hello",
	    "{",
	    "{} {}",
	    "[]",
	    "null",
	    "\"{}\"",
	    "42",
	    "{\"statusCode\":200}",
	    "{\"error\":42}",
	    "{\"error\":null}",
	    "{\"error\":\"a\",\"error\":\"b\"}", /* duplicate keys */
	    "{\"batchItemFailures\":{}}",
	    "{\"batchItemFailures\":\"100\"}",
	    "{\"batchItemFailures\":[\"100\"]}",
	    "{\"batchItemFailures\":[{}]}",
	    "{\"batchItemFailures\":[{\"itemIdentifier\":null}]}",
	    "{\"batchItemFailures\":[{\"itemIdentifier\":\"\"}]}",
	    "{\"batchItemFailures\":[{\"itemIdentifier\":100}]}",
	    "{\"batchItemFailures\":[{\"itemIdentifier\":\"101\"}]}",  /* unknown */
	    "{\"batchItemFailures\":[{\"itemIdentifier\":\"0100\"}]}", /* not canonical */
	    "{\"batchItemFailures\":[{\"itemIdentifier\":\"+100\"}]}",
	    "{\"batchItemFailures\":[{\"itemIdentifier\":\" 100\"}]}",
	    "{\"batchItemFailures\":[{\"itemIdentifier\":\"100x\"}]}",
	    "{\"batchItemFailures\":[{\"itemIdentifier\":\"18446744073709551616\"}]}",
	    "{\"batchItemFailures\":[{\"itemIdentifier\":\"205\"},{\"itemIdentifier\":\"7\"}]}",
	    "{\"batchItemFailures\":[{\"itemIdentifier\":\"205\",\"itemIdentifier\":\"100\"}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &res) != SLUICE_ERR_PROTOCOL)
			fail_msg("accepted %s", bad[i]);
	}
	assert_int_equal(parse("{\"batchItemFailures\":[{\"itemIdentifier\":\"101\"}]}", &res),
			 SLUICE_ERR_PROTOCOL);
	assert_non_null(strstr(res.message, "101"));

	/* An embedded NUL is not JSON text either. */
	assert_int_equal(sl_lambda_response_parse("{}\0", 3, seqs, 4, &res), SLUICE_ERR_PROTOCOL);
}

static void parse_sizes(void **state)
{
	/* A failure list for a full batch of 10,000 records fits in the line limit. */
	enum { N = 10000 };
	uint64_t *many = malloc(N * sizeof(*many));
	assert_non_null(many);
	for (size_t i = 0; i < N; i++)
		many[i] = 10000000000000000000ull + i * 1000;
	struct sl_buf line;
	sl_buf_init(&line);
	assert_int_equal(sl_buf_put(&line, "{\"batchItemFailures\":[", 22), 0);
	for (size_t i = N; i-- > 0;) {
		char item[64];
		int n = snprintf(item, sizeof(item), "%s{\"itemIdentifier\":\"%" PRIu64 "\"}",
				 i == N - 1 ? "" : ",", many[i]);
		assert_int_equal(sl_buf_put(&line, item, (size_t)n), 0);
	}
	assert_int_equal(sl_buf_put(&line, "]}", 2), 0);
	assert_true(line.len <= SL_LAMBDA_RESPONSE_MAX);
	struct sluice_handler_result res;
	assert_int_equal(sl_lambda_response_parse((const char *)line.data, line.len, many, N, &res),
			 0);
	assert_int_equal(res.status, SLUICE_HANDLER_FAILED_FROM);
	assert_int_equal(res.failed_from, 0);

	/* Over the limit: refused before parsing, even if it would be valid JSON. */
	sl_buf_reset(&line);
	assert_int_equal(sl_buf_put(&line, "{}", 2), 0);
	assert_int_equal(sl_buf_reserve(&line, SL_LAMBDA_RESPONSE_MAX), 0);
	memset(line.data + line.len, ' ', SL_LAMBDA_RESPONSE_MAX);
	line.len += SL_LAMBDA_RESPONSE_MAX - 2;
	assert_int_equal(sl_lambda_response_parse((const char *)line.data, line.len, many, N, &res),
			 0); /* exactly at the limit: fine */
	line.len++;
	assert_int_equal(sl_lambda_response_parse((const char *)line.data, line.len, many, N, &res),
			 SLUICE_ERR_PROTOCOL);
	assert_int_equal(res.status, SLUICE_HANDLER_ERROR);
	assert_non_null(strstr(res.message, "over"));
	sl_buf_finish(&line);
	free(many);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(encode_fields),  cmocka_unit_test(encode_odd_inputs),
	    cmocka_unit_test(encode_fast),    cmocka_unit_test(parse_success),
	    cmocka_unit_test(parse_failures), cmocka_unit_test(parse_garbage),
	    cmocka_unit_test(parse_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
