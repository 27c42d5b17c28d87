/*
 * The exec handler's wire format (see lambda_event.h for the event and response shapes).
 *
 * Encoding is written by hand into an sl_buf rather than through a jansson object per record:
 * a batch of 10,000 records would otherwise cost 10,000 small object trees and their frees, and
 * the event is large (base64 grows data by a third). Only two things in the event come from
 * outside and need escaping: the partition key and the stream name. Both go through
 * put_json_string(), which escapes '"', '\\' and control characters, passes valid UTF-8 through
 * unchanged, and replaces every byte that is not part of a valid UTF-8 sequence with U+FFFD so
 * that the line is always valid JSON (and valid UTF-8) for strict readers such as Python's
 * json.loads. The server only accepts UTF-8 keys, so the replacement is a safety net.
 *
 * Parsing goes through jansson, which validates the whole line, and is strict: the handler is a
 * process we do not trust, and a line we misread would checkpoint records nobody processed.
 */
#include "consumer/lambda_event.h"

#include <sluice/errors.h>

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fixed parts of one record in the event, between the per-record values. */
#define REC_OPEN "{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\",\"partitionKey\":"
#define REC_SEQ "\"sequenceNumber\":\""
#define REC_DATA "\",\"data\":\""
#define REC_TS "\",\"approximateArrivalTimestamp\":"
#define REC_SOURCE                                                                                 \
	"},\"eventSource\":\"sluice:stream\",\"eventVersion\":\"1.0\",\"eventID\":\"shardId-"
#define REC_NAME                                                                                   \
	"\",\"eventName\":\"sluice:record\",\"invokeIdentityArn\":\"arn:sluice:iam::local:role/"   \
	"sluice\",\"awsRegion\":\"local\",\"eventSourceARN\":"
#define ARN_PREFIX "arn:sluice:kinesis:local:000000000000:stream/"

#define LIT(s) (s), (sizeof(s) - 1)

static inline void put_raw(struct sl_buf *b, const char *s, size_t n)
{
	/* Callers reserved room first. */
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

/* Decimal digits of v into p (at least 20 bytes); returns the count. */
static size_t fmt_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if the bytes there are not one. */
static size_t utf8_seq_len(const uint8_t *s, size_t left)
{
	uint8_t c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates, and code points past U+10FFFF are not UTF-8. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Append s as a JSON string literal, quotes included. */
static int put_json_string(struct sl_buf *b, const char *str, size_t len)
{
	/* Worst case: every byte becomes \u00XX or \ufffd (6 bytes), plus the quotes. */
	int r = sl_buf_reserve(b, len * 6 + 2);
	if (r < 0)
		return r;
	static const char hex[] = "0123456789abcdef";
	const uint8_t *s = (const uint8_t *)str;
	uint8_t *o = b->data + b->len;
	*o++ = '"';
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			*o++ = c;
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t n = utf8_seq_len(s + i, len - i);
			if (n == 0) {
				memcpy(o, "\\ufffd", 6);
				o += 6;
				i++;
			} else {
				memcpy(o, s + i, n);
				o += n;
				i += n;
			}
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"':
			*o++ = '"';
			break;
		case '\\':
			*o++ = '\\';
			break;
		case '\n':
			*o++ = 'n';
			break;
		case '\r':
			*o++ = 'r';
			break;
		case '\t':
			*o++ = 't';
			break;
		case '\b':
			*o++ = 'b';
			break;
		case '\f':
			*o++ = 'f';
			break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 0xf];
			break;
		}
		i++;
	}
	*o++ = '"';
	b->len = (size_t)(o - b->data);
	return 0;
}

/* Arrival time in seconds with a millisecond fraction, as Lambda's events carry it. */
static size_t fmt_seconds(char *p, int64_t ts_ms)
{
	size_t n = 0;
	uint64_t abs_ms;
	if (ts_ms < 0) {
		p[n++] = '-';
		abs_ms = (uint64_t)0 - (uint64_t)ts_ms;
	} else {
		abs_ms = (uint64_t)ts_ms;
	}
	n += fmt_u64(p + n, abs_ms / 1000);
	unsigned frac = (unsigned)(abs_ms % 1000);
	p[n++] = '.';
	p[n++] = (char)('0' + frac / 100);
	p[n++] = (char)('0' + frac / 10 % 10);
	p[n++] = (char)('0' + frac % 10);
	return n;
}

int sl_lambda_event_encode(const struct sluice_handler_batch *batch, struct sl_buf *out)
{
	size_t start = out->len;
	char shard[32];
	int shard_len = snprintf(shard, sizeof(shard), "%012" PRIu32 ":", batch->shard_id);

	/* The eventSourceARN is the same for every record: escape it once, copy it per record. */
	struct sl_buf arn;
	sl_buf_init(&arn);
	size_t stream_len = strlen(batch->stream);
	char *arn_str = malloc(sizeof(ARN_PREFIX) + stream_len);
	if (!arn_str)
		return -ENOMEM;
	memcpy(arn_str, ARN_PREFIX, sizeof(ARN_PREFIX) - 1);
	memcpy(arn_str + sizeof(ARN_PREFIX) - 1, batch->stream, stream_len);
	int r = put_json_string(&arn, arn_str, sizeof(ARN_PREFIX) - 1 + stream_len);
	free(arn_str);
	if (r < 0)
		goto fail;

	r = sl_buf_put(out, LIT("{\"Records\":["));
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < batch->count; i++) {
		const struct sluice_handler_record *rec = &batch->records[i];
		if (i > 0) {
			r = sl_buf_put_u8(out, ',');
			if (r < 0)
				goto fail;
		}
		r = sl_buf_put(out, LIT(REC_OPEN));
		if (r < 0)
			goto fail;
		r = put_json_string(out, rec->key, rec->key_len);
		if (r < 0)
			goto fail;

		size_t b64_len = ((size_t)rec->data_len + 2) / 3 * 4;
		/* Everything else in this record is bounded: literals, two u64s, one timestamp. */
		size_t need = 1 + sizeof(REC_SEQ) + 20 + sizeof(REC_DATA) + b64_len + 1 +
			      sizeof(REC_TS) + 32 + sizeof(REC_SOURCE) + (size_t)shard_len + 20 +
			      sizeof(REC_NAME) + arn.len + 1;
		r = sl_buf_reserve(out, need);
		if (r < 0)
			goto fail;
		char seq[20];
		size_t seq_len = fmt_u64(seq, rec->seq);
		put_raw(out, LIT(","));
		put_raw(out, LIT(REC_SEQ));
		put_raw(out, seq, seq_len);
		put_raw(out, LIT(REC_DATA));
		if (rec->data_len > 0) {
			/* EVP_EncodeBlock writes a NUL after the text: the reserve above has room.
			 */
			int n =
			    EVP_EncodeBlock(out->data + out->len, rec->data, (int)rec->data_len);
			if (n < 0 || (size_t)n != b64_len) {
				r = -ENOMEM;
				goto fail;
			}
			out->len += b64_len;
		}
		put_raw(out, LIT(REC_TS));
		out->len += fmt_seconds((char *)out->data + out->len, rec->ts_ms);
		put_raw(out, LIT(REC_SOURCE));
		put_raw(out, shard, (size_t)shard_len);
		put_raw(out, seq, seq_len);
		put_raw(out, LIT(REC_NAME));
		put_raw(out, (const char *)arn.data, arn.len);
		put_raw(out, LIT("}"));
	}
	r = sl_buf_put(out, LIT("]}\n"));
	if (r < 0)
		goto fail;
	sl_buf_finish(&arn);
	return 0;
fail:
	sl_buf_finish(&arn);
	out->len = start;
	return r;
}

__attribute__((format(printf, 2, 3))) static int garbage(struct sluice_handler_result *ret,
							 const char *fmt, ...)
{
	ret->status = SLUICE_HANDLER_ERROR;
	ret->failed_from = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ret->message, sizeof(ret->message), fmt, ap);
	va_end(ap);
	return SLUICE_ERR_PROTOCOL;
}

/* A canonical decimal sequence number: 1-20 digits, no sign, no leading zero, fits u64. */
static bool parse_seq(const char *s, size_t len, uint64_t *ret)
{
	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*ret = v;
	return true;
}

/* Index of seq in the ascending seqs, or count if it is not there. */
static size_t find_seq(const uint64_t *seqs, size_t count, uint64_t seq)
{
	size_t lo = 0, hi = count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (seqs[mid] < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < count && seqs[lo] == seq ? lo : count;
}

static int parse_failures(json_t *list, const uint64_t *seqs, size_t count,
			  struct sluice_handler_result *ret)
{
	size_t n = json_array_size(list);
	size_t lowest = count;
	for (size_t i = 0; i < n; i++) {
		json_t *item = json_array_get(list, i);
		if (!json_is_object(item))
			return garbage(ret, "batchItemFailures[%zu] is not an object", i);
		json_t *id = json_object_get(item, "itemIdentifier");
		if (!id)
			return garbage(ret, "batchItemFailures[%zu] has no itemIdentifier", i);
		if (!json_is_string(id))
			return garbage(ret, "batchItemFailures[%zu].itemIdentifier is not a string",
				       i);
		const char *s = json_string_value(id);
		size_t len = json_string_length(id);
		if (len == 0)
			return garbage(ret, "batchItemFailures[%zu].itemIdentifier is empty", i);
		uint64_t seq;
		size_t at = count;
		if (parse_seq(s, len, &seq))
			at = find_seq(seqs, count, seq);
		if (at == count)
			return garbage(ret,
				       "batchItemFailures[%zu].itemIdentifier \"%.40s\" is not a "
				       "sequence number of this batch",
				       i, s);
		/* Duplicates are harmless: only the lowest failed record matters. */
		if (at < lowest)
			lowest = at;
	}
	if (n == 0) {
		ret->status = SLUICE_HANDLER_OK;
		return 0;
	}
	ret->status = SLUICE_HANDLER_FAILED_FROM;
	ret->failed_from = lowest;
	snprintf(ret->message, sizeof(ret->message),
		 "handler reported %zu failed record(s); retrying from sequence number %" PRIu64, n,
		 seqs[lowest]);
	return 0;
}

int sl_lambda_response_parse(const char *line, size_t len, const uint64_t *seqs, size_t count,
			     struct sluice_handler_result *ret)
{
	ret->status = SLUICE_HANDLER_OK;
	ret->failed_from = 0;
	ret->message[0] = '\0';
	if (len > SL_LAMBDA_RESPONSE_MAX)
		return garbage(ret, "response line over %u bytes", SL_LAMBDA_RESPONSE_MAX);
	if (len == 0)
		return garbage(ret, "empty response line (expected a JSON object)");

	json_error_t jerr;
	json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return garbage(ret, "response is not valid JSON: %s (column %d)", jerr.text,
			       jerr.column);
	int r = 0;
	if (!json_is_object(root)) {
		r = garbage(ret, "response is not a JSON object");
		goto out;
	}
	const char *key;
	json_t *value;
	json_object_foreach(root, key, value)
	{
		if (strcmp(key, "batchItemFailures") != 0 && strcmp(key, "error") != 0) {
			r = garbage(ret,
				    "unknown key \"%.40s\" in response (expected batchItemFailures "
				    "or error)",
				    key);
			goto out;
		}
	}

	json_t *error = json_object_get(root, "error");
	if (error) {
		if (!json_is_string(error)) {
			r = garbage(ret, "\"error\" in response is not a string");
			goto out;
		}
		ret->status = SLUICE_HANDLER_ERROR;
		const char *msg = json_string_value(error);
		snprintf(ret->message, sizeof(ret->message), "%s",
			 msg[0] ? msg : "handler reported an error");
		goto out;
	}

	json_t *failures = json_object_get(root, "batchItemFailures");
	if (!failures || json_is_null(failures))
		goto out; /* {} or null: success, as Lambda reads them */
	if (!json_is_array(failures)) {
		r = garbage(ret, "batchItemFailures is not an array");
		goto out;
	}
	r = parse_failures(failures, seqs, count, ret);
out:
	json_decref(root);
	return r;
}
