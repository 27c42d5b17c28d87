/*
 * Dispatch of Kinesis JSON requests, errors in Kinesis' shape, and the field validation shared
 * by the operations (ops_*.c). No HTTP here: the transports (http1.c, h2.c) call kin_handle.
 */
#include "kinesis/ops.h"

#include "kinesis/limits.h"

#include "common/clock.h"
#include "common/units.h"
#include "proto/codec.h"
#include "stream/stream_meta.h"

#include <sluice/errors.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Native calls wait this long for sluiced; Kinesis clients time out after ~1-2 min. */
#define NATIVE_TIMEOUT_MS 30000

/* "ID SECRET" lines; blank lines and # comments skipped. */
static int load_keys(struct kin_api *api, const char *path, char *err, size_t err_len)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -EINVAL;
	}
	char line[1024];
	int lineno = 0, r = 0;
	size_t total = 0;
	while (r == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		total += strlen(line);
		char id[256], secret[256], extra[2];
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		int n = sscanf(line, "%255s %255s %1s", id, secret, extra);
		if (n <= 0)
			continue;
		if (n != 2 || total > KIN_ACCESS_KEYS_FILE_BYTES_MAX ||
		    api->nkeys >= KIN_ACCESS_KEYS_MAX) {
			snprintf(
			    err, err_len,
			    "%s line %d: want ACCESS_KEY_ID SECRET_ACCESS_KEY (at most %d keys)",
			    path, lineno, KIN_ACCESS_KEYS_MAX);
			r = -EINVAL;
			break;
		}
		struct kin_access_key *k = realloc(api->keys, (api->nkeys + 1) * sizeof(*k));
		if (!k) {
			r = -ENOMEM;
			break;
		}
		api->keys = k;
		k[api->nkeys].id = strdup(id);
		k[api->nkeys].secret = strdup(secret);
		api->nkeys++;
		if (!k[api->nkeys - 1].id || !k[api->nkeys - 1].secret)
			r = -ENOMEM;
	}
	fclose(f);
	if (r == 0 && api->nkeys == 0) {
		snprintf(err, err_len, "%s: no access keys", path);
		r = -EINVAL;
	}
	return r;
}

static const char *secret_of(void *ctx, const char *id)
{
	const struct kin_api *api = ctx;
	for (size_t i = 0; i < api->nkeys; i++)
		if (strcmp(api->keys[i].id, id) == 0)
			return api->keys[i].secret;
	return api->any_key_secret;
}

int kin_api_create(const struct kin_api_config *cfg, struct kin_api **ret, char *err,
		   size_t err_len)
{
	struct kin_api *api = calloc(1, sizeof(*api));
	if (!api)
		return -ENOMEM;
	if (snprintf(api->native_addr, sizeof(api->native_addr), "%s", cfg->native_addr) >=
	    (int)sizeof(api->native_addr)) {
		free(api);
		return -EINVAL;
	}
	if (cfg->auth_token && !(api->auth_token = strdup(cfg->auth_token))) {
		free(api);
		return -ENOMEM;
	}
	api->shard_limits = cfg->shard_limits;
	int r = 0;
	if (cfg->any_key_secret && !(api->any_key_secret = strdup(cfg->any_key_secret)))
		r = -ENOMEM;
	if (r == 0 && cfg->shard_limits)
		r = kin_limits_create(&api->limits);
	if (r == 0 && cfg->access_keys_path)
		r = load_keys(api, cfg->access_keys_path, err, err_len);
	api->verify = cfg->any_key_secret || cfg->access_keys_path;
	if (r < 0) {
		kin_api_destroy(api);
		return r;
	}
	r = kin_iterator_key_generate(api->iterator_key);
	if (r < 0) {
		kin_api_destroy(api);
		return r;
	}
	*ret = api;
	return 0;
}

void kin_api_destroy(struct kin_api *api)
{
	if (!api)
		return;
	free(api->auth_token);
	kin_limits_destroy(api->limits);
	if (api->any_key_secret)
		OPENSSL_cleanse(api->any_key_secret, strlen(api->any_key_secret));
	free(api->any_key_secret);
	for (size_t i = 0; i < api->nkeys; i++) {
		free(api->keys[i].id);
		OPENSSL_cleanse(api->keys[i].secret, strlen(api->keys[i].secret));
		free(api->keys[i].secret);
	}
	free(api->keys);
	free(api);
}

void kin_session_init(struct kin_session *s, struct kin_api *api)
{
	memset(s, 0, sizeof(*s));
	s->api = api;
}

void kin_session_finish(struct kin_session *s)
{
	sluice_client_close(s->client);
	s->client = NULL;
}

void kin_reply_init(struct kin_reply *r)
{
	memset(r, 0, sizeof(*r));
	sl_buf_init(&r->body);
}

void kin_reply_finish(struct kin_reply *r)
{
	sl_buf_finish(&r->body);
}

struct sluice_client *kin_client(struct kin_req *q)
{
	struct kin_session *s = q->s;
	if (s->client)
		return s->client;
	struct sluice_client_options o = {.timeout_ms = NATIVE_TIMEOUT_MS,
					  .auth_token = s->api->auth_token};
	int r = sluice_client_connect(s->api->native_addr, &o, &s->client);
	if (r < 0) {
		kin_fail(q, 500, KIN_E_INTERNAL, "cannot reach the log server: %s",
			 sluice_strerror(r));
		return NULL;
	}
	return s->client;
}

/* ------------------------------------------------------------------ replies */

static void set_body_json(struct kin_reply *r, json_t *obj)
{
	sl_buf_reset(&r->body);
	if (!obj)
		return;
	size_t n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
	if (n && sl_buf_reserve(&r->body, n) == 0) {
		r->body.len = json_dumpb(obj, (char *)r->body.data, n, JSON_COMPACT);
	} else {
		r->status = 500;
		static const char oom[] =
		    "{\"__type\":\"InternalFailure\",\"message\":\"out of memory\"}";
		sl_buf_put(&r->body, oom, sizeof(oom) - 1);
	}
}

void kin_fail(struct kin_req *q, int http_status, const char *type, const char *fmt, ...)
{
	if (q->failed)
		return;
	q->failed = true;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	q->reply->status = http_status;
	json_t *o = json_pack("{s:s,s:s}", "__type", type, "message", msg);
	if (!o) /* the message was not UTF-8 (names are validated first, so this is a bug) */
		o = json_pack("{s:s,s:s}", "__type", type, "message", "(unprintable)");
	set_body_json(q->reply, o);
	json_decref(o);
}

void kin_ok(struct kin_req *q, json_t *obj)
{
	if (q->failed) {
		json_decref(obj);
		return;
	}
	q->reply->status = 200;
	set_body_json(q->reply, obj);
	json_decref(obj);
}

void kin_fail_native(struct kin_req *q, int err, const char *stream)
{
	const char *msg = q->s->client ? sluice_client_last_error_message(q->s->client) : "";
	if (!msg[0])
		msg = sluice_strerror(err);
	switch (err) {
	case SLUICE_ERR_STREAM_NOT_FOUND:
		kin_fail(q, 400, KIN_E_NOT_FOUND,
			 "Stream %s under account " KIN_ACCOUNT " not found.",
			 stream ? stream : "");
		break;
	case SLUICE_ERR_STREAM_EXISTS:
		kin_fail(q, 400, KIN_E_IN_USE,
			 "Stream %s under account " KIN_ACCOUNT " already exists.",
			 stream ? stream : "");
		break;
	case SLUICE_ERR_SHARD_NOT_FOUND:
		kin_fail(q, 400, KIN_E_NOT_FOUND, "%s", msg);
		break;
	case SLUICE_ERR_RESOURCE_IN_USE: /* a reshard (or a settings change) is running */
		kin_fail(q, 400, KIN_E_IN_USE,
			 "Stream %s under account " KIN_ACCOUNT
			 " not ACTIVE, instead in state UPDATING (%s).",
			 stream ? stream : "", msg);
		break;
	case SLUICE_ERR_INVALID_ARGUMENT:
	case SLUICE_ERR_INVALID_NAME:
	case SLUICE_ERR_INVALID_KEY:
	case SLUICE_ERR_RECORD_TOO_LARGE:
	case SLUICE_ERR_SHARD_CLOSED:
		kin_fail(q, 400, KIN_E_INVALID_ARG, "%s", msg);
		break;
	case SLUICE_ERR_BAD_OPCODE:
		kin_fail(q, 400, KIN_E_INVALID_ARG, "not supported by this server: %s", msg);
		break;
	case SLUICE_ERR_LIMIT_EXCEEDED:
		kin_fail(q, 400, KIN_E_LIMIT, "%s", msg);
		break;
	case SLUICE_ERR_THROTTLED:
		kin_fail(q, 400, KIN_E_THROUGHPUT,
			 "Rate exceeded for stream %s under account " KIN_ACCOUNT ".",
			 stream ? stream : "");
		break;
	case SLUICE_ERR_UNAVAILABLE:
	case SLUICE_ERR_SHUTTING_DOWN:
		kin_fail(q, 503, "ServiceUnavailableException", "%s", msg);
		break;
	default:
		kin_fail(q, 500, KIN_E_INTERNAL, "%s", msg);
		break;
	}
}

/* ------------------------------------------------------------------ validation */

/* "StreamName" -> "streamName", as AWS' validation messages name members. */
static void camel(const char *member, char out[64])
{
	snprintf(out, 64, "%s", member);
	out[0] = (char)tolower((unsigned char)out[0]);
}

static void fail_validation(struct kin_req *q, const char *value, const char *member,
			    const char *constraint)
{
	char c[64];
	camel(member, c);
	if (value)
		kin_fail(q, 400, KIN_E_VALIDATION,
			 "1 validation error detected: Value '%.200s' at '%s' failed to satisfy "
			 "constraint: %s",
			 value, c, constraint);
	else
		kin_fail(q, 400, KIN_E_VALIDATION,
			 "1 validation error detected: Value null at '%s' failed to satisfy "
			 "constraint: %s",
			 c, constraint);
}

bool kin_get_string(struct kin_req *q, const char *member, size_t min_len, size_t max_len,
		    const char **ret, bool *present)
{
	json_t *v = json_object_get(q->in, member);
	if (!v || json_is_null(v)) {
		if (present) {
			*present = false;
			return true;
		}
		fail_validation(q, NULL, member, "Member must not be null");
		return false;
	}
	if (!json_is_string(v)) {
		char c[64];
		camel(member, c);
		kin_fail(q, 400, KIN_E_SERIALIZATION, "%s must be a string", member);
		return false;
	}
	size_t len = json_string_length(v);
	const char *s = json_string_value(v);
	if (len < min_len) {
		char msg[96];
		snprintf(msg, sizeof(msg), "Member must have length greater than or equal to %zu",
			 min_len);
		fail_validation(q, s, member, msg);
		return false;
	}
	if (len > max_len) {
		char msg[96];
		snprintf(msg, sizeof(msg), "Member must have length less than or equal to %zu",
			 max_len);
		fail_validation(q, s, member, msg);
		return false;
	}
	if (strlen(s) != len) {
		fail_validation(q, "", member, "Member must not contain NUL characters");
		return false;
	}
	*ret = s;
	if (present)
		*present = true;
	return true;
}

bool kin_get_int(struct kin_req *q, const char *member, int64_t min, int64_t max, int64_t *ret,
		 bool *present)
{
	json_t *v = json_object_get(q->in, member);
	if (!v || json_is_null(v)) {
		if (present) {
			*present = false;
			return true;
		}
		fail_validation(q, NULL, member, "Member must not be null");
		return false;
	}
	if (!json_is_integer(v)) {
		kin_fail(q, 400, KIN_E_SERIALIZATION, "%s must be an integer", member);
		return false;
	}
	json_int_t x = json_integer_value(v);
	char val[32], msg[96];
	snprintf(val, sizeof(val), "%lld", (long long)x);
	if (x < min) {
		snprintf(msg, sizeof(msg), "Member must have value greater than or equal to %lld",
			 (long long)min);
		fail_validation(q, val, member, msg);
		return false;
	}
	if (x > max) {
		snprintf(msg, sizeof(msg), "Member must have value less than or equal to %lld",
			 (long long)max);
		fail_validation(q, val, member, msg);
		return false;
	}
	*ret = x;
	if (present)
		*present = true;
	return true;
}

bool kin_get_stream(struct kin_req *q, char out[SLUICE_NAME_LEN_MAX + 1])
{
	const char *name = NULL, *arn = NULL;
	bool has_name, has_arn;
	if (!kin_get_string(q, "StreamName", 1, SLUICE_NAME_LEN_MAX, &name, &has_name) ||
	    !kin_get_string(q, "StreamARN", 1, 2048, &arn, &has_arn))
		return false;
	if (!has_name && has_arn) {
		const char *slash = strstr(arn, ":stream/");
		if (!slash || strlen(slash + 8) == 0 || strlen(slash + 8) > SLUICE_NAME_LEN_MAX) {
			kin_fail(q, 400, KIN_E_INVALID_ARG, "StreamARN %s is not a stream ARN",
				 arn);
			return false;
		}
		name = slash + 8;
		has_name = true;
	}
	if (!has_name) {
		kin_fail(q, 400, KIN_E_VALIDATION,
			 "Either StreamName or StreamARN should be provided.");
		return false;
	}
	if (!sl_proto_name_valid((const uint8_t *)name, strlen(name))) {
		fail_validation(q, name, "StreamName",
				"Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
		return false;
	}
	memcpy(out, name, strlen(name) + 1);
	return true;
}

bool kin_get_shard_id(struct kin_req *q, const char *member, uint32_t *ret, bool *present)
{
	const char *s;
	bool has;
	if (!kin_get_string(q, member, 1, 128, &s, present ? &has : NULL))
		return false;
	if (present && !has) {
		*present = false;
		return true;
	}
	uint32_t id;
	uint64_t n;
	if (sl_shard_id_parse(s, strlen(s), &id) == 0) {
		*ret = id;
	} else if (sl_parse_u64(s, &n) == 0 && n <= UINT32_MAX) {
		*ret = (uint32_t)n; /* Kinesis takes "1" for shardId-000000000001 */
	} else {
		fail_validation(q, s, member,
				"Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
		return false;
	}
	if (present)
		*present = true;
	return true;
}

bool kin_get_timestamp_ms(struct kin_req *q, const char *member, int64_t *ret, bool *present)
{
	json_t *v = json_object_get(q->in, member);
	if (!v || json_is_null(v)) {
		if (present) {
			*present = false;
			return true;
		}
		fail_validation(q, NULL, member, "Member must not be null");
		return false;
	}
	if (json_is_number(v)) {
		double sec = json_number_value(v);
		if (!isfinite(sec) || sec < 0 || sec > 1e11) {
			kin_fail(q, 400, KIN_E_INVALID_ARG, "%s is out of range", member);
			return false;
		}
		*ret = (int64_t)llround(sec * 1000.0);
	} else if (json_is_string(v)) {
		int64_t ms;
		if (sl_parse_timestamp_ms(json_string_value(v), &ms) < 0) {
			kin_fail(q, 400, KIN_E_SERIALIZATION, "%s is not a timestamp", member);
			return false;
		}
		*ret = ms;
	} else {
		kin_fail(q, 400, KIN_E_SERIALIZATION, "%s must be a timestamp", member);
		return false;
	}
	if (present)
		*present = true;
	return true;
}

/* ------------------------------------------------------------------ JSON pieces */

int kin_base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len)
{
	if (len % 4 != 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool pad_ok = c == '=' && i + 2 >= len && (i + 1 == len || s[i + 1] == '=');
		if (!(isalnum(c) || c == '+' || c == '/' || pad_ok))
			return -EINVAL;
	}
	uint8_t *out = malloc(len / 4 * 3 + 1);
	if (!out)
		return -ENOMEM;
	int n = len ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)len) : 0;
	if (n < 0) {
		free(out);
		return -EINVAL;
	}
	if (len && s[len - 1] == '=')
		n--;
	if (len > 1 && s[len - 2] == '=')
		n--;
	*ret = out;
	*ret_len = (size_t)n;
	return 0;
}

json_t *kin_base64_json(const uint8_t *p, size_t len)
{
	size_t n = 4 * ((len + 2) / 3);
	char *text = malloc(n + 1);
	if (!text)
		return NULL;
	EVP_EncodeBlock((unsigned char *)text, p, (int)len);
	json_t *j = json_stringn_nocheck(text, n);
	free(text);
	return j;
}

json_t *kin_seq_json(uint64_t seq)
{
	char b[24];
	int n = snprintf(b, sizeof(b), "%llu", (unsigned long long)seq);
	return json_stringn_nocheck(b, (size_t)n);
}

void kin_arn(const char *stream, char *out, size_t out_len)
{
	snprintf(out, out_len, KIN_ARN_PREFIX "%s", stream);
}

json_t *kin_shard_json(const struct sluice_shard_info *sh)
{
	char id[SL_SHARD_ID_BUF], start[SL_U128_DEC_BUF], end[SL_U128_DEC_BUF];
	sl_shard_id_format(sh->shard_id, id);
	sl_u128_format(sl_hash_key_to_u128(&sh->start_hash_key), start);
	sl_u128_format(sl_hash_key_to_u128(&sh->end_hash_key), end);
	json_t *range = json_pack("{s:o}", "StartingSequenceNumber", kin_seq_json(sh->start_seq));
	if (range && sh->closed)
		json_object_set_new(range, "EndingSequenceNumber", kin_seq_json(sh->end_seq));
	json_t *o =
	    json_pack("{s:s,s:{s:s,s:s},s:o*}", "ShardId", id, "HashKeyRange", "StartingHashKey",
		      start, "EndingHashKey", end, "SequenceNumberRange", range);
	if (o && sh->parent_id >= 0) {
		sl_shard_id_format((uint32_t)sh->parent_id, id);
		json_object_set_new(o, "ParentShardId", json_string(id));
	}
	if (o && sh->adjacent_parent_id >= 0) {
		sl_shard_id_format((uint32_t)sh->adjacent_parent_id, id);
		json_object_set_new(o, "AdjacentParentShardId", json_string(id));
	}
	return o;
}

/* ------------------------------------------------------------------ dispatch */

static const struct {
	const char *name;
	void (*fn)(struct kin_req *q);
} ops[] = {
    {"CreateStream", kin_op_create_stream},
    {"DeleteStream", kin_op_delete_stream},
    {"ListStreams", kin_op_list_streams},
    {"DescribeStream", kin_op_describe_stream},
    {"DescribeStreamSummary", kin_op_describe_stream_summary},
    {"ListShards", kin_op_list_shards},
    {"DescribeLimits", kin_op_describe_limits},
    {"PutRecord", kin_op_put_record},
    {"PutRecords", kin_op_put_records},
    {"GetShardIterator", kin_op_get_shard_iterator},
    {"GetRecords", kin_op_get_records},
    {"IncreaseStreamRetentionPeriod", kin_op_increase_retention},
    {"DecreaseStreamRetentionPeriod", kin_op_decrease_retention},
    {"AddTagsToStream", kin_op_add_tags},
    {"RemoveTagsFromStream", kin_op_remove_tags},
    {"ListTagsForStream", kin_op_list_tags},
    {"SplitShard", kin_op_split_shard},
    {"MergeShards", kin_op_merge_shards},
    {"UpdateShardCount", kin_op_update_shard_count},
};

static void new_request_id(struct kin_reply *r)
{
	uint8_t b[16];
	if (RAND_bytes(b, sizeof(b)) != 1)
		memset(b, 0, sizeof(b));
	snprintf(r->request_id, sizeof(r->request_id),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
}

void kin_handle(struct kin_session *s, const char *target, size_t target_len, const uint8_t *body,
		size_t body_len, struct kin_reply *reply)
{
	new_request_id(reply);
	reply->status = 500;
	sl_buf_reset(&reply->body);
	struct kin_req q = {.s = s, .reply = reply};
	size_t plen = sizeof(KIN_TARGET_PREFIX) - 1;
	if (!target || target_len <= plen || memcmp(target, KIN_TARGET_PREFIX, plen) != 0) {
		kin_fail(&q, 400, KIN_E_UNKNOWN_OP,
			 "missing or unknown X-Amz-Target: expected %s<Operation>",
			 KIN_TARGET_PREFIX);
		return;
	}
	const char *op = target + plen;
	size_t op_len = target_len - plen;
	void (*fn)(struct kin_req *) = NULL;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strlen(ops[i].name) == op_len && memcmp(ops[i].name, op, op_len) == 0)
			fn = ops[i].fn;
	if (!fn) {
		kin_fail(&q, 400, KIN_E_UNKNOWN_OP, "unknown operation %.*s",
			 (int)(op_len > 64 ? 64 : op_len), op);
		return;
	}
	json_error_t jerr;
	q.in = body_len ? json_loadb((const char *)body, body_len, JSON_REJECT_DUPLICATES, &jerr)
			: json_object();
	if (!q.in || !json_is_object(q.in)) {
		kin_fail(&q, 400, KIN_E_SERIALIZATION, "the request body is not a JSON object%s%s",
			 q.in ? "" : ": ", q.in ? "" : jerr.text);
		json_decref(q.in);
		return;
	}
	fn(&q);
	if (!q.failed && reply->status != 200)
		kin_fail(&q, 500, KIN_E_INTERNAL, "the operation gave no answer");
	json_decref(q.in);
}

void kin_handle_request(struct kin_session *s, const struct kin_request *req,
			struct kin_reply *reply)
{
	if (s->api->verify) {
		char msg[512];
		int r = kin_sigv4_verify(req, secret_of, s->api, sl_wall_ms(), msg, sizeof(msg));
		if (r != KIN_SIGV4_OK) {
			new_request_id(reply);
			struct kin_req q = {.s = s, .reply = reply};
			const char *type =
			    r == KIN_SIGV4_MISSING	 ? "MissingAuthenticationTokenException"
			    : r == KIN_SIGV4_UNKNOWN_KEY ? "UnrecognizedClientException"
			    : r == KIN_SIGV4_MALFORMED	 ? "IncompleteSignatureException"
							 : "InvalidSignatureException";
			kin_fail(&q, r == KIN_SIGV4_MISSING ? 403 : 400, type, "%s", msg);
			return;
		}
	}
	const struct kin_header *t = kin_request_header(req, "x-amz-target");
	kin_handle(s, t ? t->value : NULL, t ? t->value_len : 0, req->body, req->body_len, reply);
}
