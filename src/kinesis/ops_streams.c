/*
 * Stream operations: CreateStream, DeleteStream, ListStreams, DescribeStream,
 * DescribeStreamSummary, ListShards, DescribeLimits.
 */
#include "kinesis/ops.h"

#include "stream/stream_meta.h"

#include "common/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kinesis' default retention, and what CreateStream gives a stream. */
#define RETENTION_DEFAULT_MS (24ll * 3600 * 1000)
/* ON_DEMAND streams start with 4 shards in Kinesis. */
#define ON_DEMAND_SHARDS 4
/* ListStreams / DescribeStream / ListShards page sizes (Kinesis' defaults and bounds). */
#define LIST_STREAMS_DEFAULT 100
#define LIST_STREAMS_MAX 10000
#define DESCRIBE_SHARDS_DEFAULT 100
#define DESCRIBE_SHARDS_MAX 10000
#define LIST_SHARDS_DEFAULT 1000
#define LIST_SHARDS_MAX 10000

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t open_shards(const struct sluice_stream_info *info)
{
	size_t n = 0;
	for (size_t i = 0; i < info->shard_count; i++)
		n += !info->shards[i].closed;
	return n;
}

static const char *status_name(int status)
{
	return sluice_stream_status_name(status);
}

static json_t *mode_details(void)
{
	return json_pack("{s:s}", "StreamMode", "PROVISIONED");
}

void kin_op_create_stream(struct kin_req *q)
{
	char name[SLUICE_NAME_LEN_MAX + 1];
	int64_t shards = 0;
	bool has_shards;
	const char *name_s;
	if (!kin_get_string(q, "StreamName", 1, SLUICE_NAME_LEN_MAX, &name_s, NULL) ||
	    !kin_get_stream(q, name) ||
	    !kin_get_int(q, "ShardCount", 1, 100000, &shards, &has_shards))
		return;
	json_t *mode = json_object_get(json_object_get(q->in, "StreamModeDetails"), "StreamMode");
	bool on_demand = json_is_string(mode) && strcmp(json_string_value(mode), "ON_DEMAND") == 0;
	if (mode && !on_demand &&
	    !(json_is_string(mode) && strcmp(json_string_value(mode), "PROVISIONED") == 0)) {
		kin_fail(
		    q, 400, KIN_E_VALIDATION,
		    "1 validation error detected: Value at 'streamModeDetails.streamMode' failed "
		    "to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, "
		    "ON_DEMAND]");
		return;
	}
	if (!has_shards) {
		if (!on_demand) {
			kin_fail(
			    q, 400, KIN_E_VALIDATION,
			    "1 validation error detected: Value null at 'shardCount' failed to "
			    "satisfy constraint: Member must not be null");
			return;
		}
		shards = ON_DEMAND_SHARDS;
	}
	if (shards > SLUICE_SHARDS_MAX) {
		kin_fail(q, 400, KIN_E_LIMIT,
			 "This request would exceed the shard limit for the account " KIN_ACCOUNT
			 ". Current limit: %d. Shards requested: %lld.",
			 SLUICE_SHARDS_MAX, (long long)shards);
		return;
	}
	struct sluice_client *c = kin_client(q);
	if (!c)
		return;
	int r = sluice_stream_create(c, name, (uint32_t)shards, RETENTION_DEFAULT_MS);
	if (r < 0) {
		kin_fail_native(q, r, name);
		return;
	}
	kin_ok(q, NULL);
}

void kin_op_delete_stream(struct kin_req *q)
{
	char name[SLUICE_NAME_LEN_MAX + 1];
	if (!kin_get_stream(q, name))
		return;
	json_t *force = json_object_get(q->in, "EnforceConsumerDeletion");
	if (force && !json_is_boolean(force)) {
		kin_fail(q, 400, KIN_E_SERIALIZATION, "EnforceConsumerDeletion must be a boolean");
		return;
	}
	struct sluice_client *c = kin_client(q);
	if (!c)
		return;
	int r = sluice_stream_delete(c, name);
	if (r == SLUICE_ERR_INVALID_ARGUMENT) {
		/* Kinesis: a stream with registered consumers needs EnforceConsumerDeletion; sluice
		 * refuses the delete while consumers read it. */
		kin_fail(q, 400, KIN_E_IN_USE, "%s", sluice_client_last_error_message(c));
		return;
	}
	if (r < 0) {
		kin_fail_native(q, r, name);
		return;
	}
	kin_ok(q, NULL);
}

void kin_op_list_streams(struct kin_req *q)
{
	int64_t limit = LIST_STREAMS_DEFAULT;
	const char *start = NULL, *token = NULL;
	bool has_start, has_token;
	if (!kin_get_int(q, "Limit", 1, LIST_STREAMS_MAX, &limit, &(bool){0}))
		return;
	if (!kin_get_string(q, "ExclusiveStartStreamName", 1, SLUICE_NAME_LEN_MAX, &start,
			    &has_start) ||
	    !kin_get_string(q, "NextToken", 1, 1048576, &token, &has_token))
		return;
	if (has_token)
		start = token; /* the token is the last name of the previous page */
	else if (!has_start)
		start = NULL;
	struct sluice_client *c = kin_client(q);
	if (!c)
		return;
	char **names;
	size_t n;
	int r = sluice_stream_list(c, &names, &n);
	if (r < 0) {
		kin_fail_native(q, r, NULL);
		return;
	}
	qsort(names, n, sizeof(*names), cmp_str);
	json_t *out_names = json_array(), *summaries = json_array();
	size_t i = 0;
	while (i < n && start && strcmp(names[i], start) <= 0)
		i++;
	size_t taken = 0;
	const char *last = NULL;
	for (; i < n && taken < (size_t)limit; i++, taken++) {
		char arn[256];
		kin_arn(names[i], arn, sizeof(arn));
		json_array_append_new(out_names, json_string(names[i]));
		json_array_append_new(summaries,
				      json_pack("{s:s,s:s,s:s,s:o}", "StreamName", names[i],
						"StreamARN", arn, "StreamStatus", "ACTIVE",
						"StreamModeDetails", mode_details()));
		last = names[i];
	}
	bool more = i < n;
	json_t *out = json_pack("{s:o,s:b,s:o}", "StreamNames", out_names, "HasMoreStreams", more,
				"StreamSummaries", summaries);
	if (more && last)
		json_object_set_new(out, "NextToken", json_string(last));
	sluice_strings_free(names, n);
	kin_ok(q, out);
}

static struct sluice_stream_info *describe(struct kin_req *q, const char *name)
{
	struct sluice_client *c = kin_client(q);
	if (!c)
		return NULL;
	struct sluice_stream_info *info;
	int r = sluice_stream_describe(c, name, &info);
	if (r < 0) {
		kin_fail_native(q, r, name);
		return NULL;
	}
	return info;
}

static json_t *common_description(const struct sluice_stream_info *info)
{
	char arn[256];
	kin_arn(info->name, arn, sizeof(arn));
	return json_pack("{s:s,s:s,s:s,s:o,s:I,s:f,s:[{s:[]}],s:s}", "StreamName", info->name,
			 "StreamARN", arn, "StreamStatus", status_name(info->status),
			 "StreamModeDetails", mode_details(), "RetentionPeriodHours",
			 (json_int_t)(info->retention_ms / 3600000), "StreamCreationTimestamp",
			 (double)info->created_ms / 1000.0, "EnhancedMonitoring",
			 "ShardLevelMetrics", "EncryptionType", "NONE");
}

void kin_op_describe_stream(struct kin_req *q)
{
	char name[SLUICE_NAME_LEN_MAX + 1];
	int64_t limit = DESCRIBE_SHARDS_DEFAULT;
	uint32_t after = 0;
	bool has_after;
	if (!kin_get_stream(q, name) ||
	    !kin_get_int(q, "Limit", 1, DESCRIBE_SHARDS_MAX, &limit, &(bool){0}) ||
	    !kin_get_shard_id(q, "ExclusiveStartShardId", &after, &has_after))
		return;
	struct sluice_stream_info *info = describe(q, name);
	if (!info)
		return;
	json_t *d = common_description(info);
	json_t *shards = json_array();
	size_t i = 0, taken = 0;
	for (; i < info->shard_count && taken < (size_t)limit; i++) {
		if (has_after && info->shards[i].shard_id <= after)
			continue;
		json_array_append_new(shards, kin_shard_json(&info->shards[i]));
		taken++;
	}
	bool more = false;
	for (; i < info->shard_count; i++)
		if (!has_after || info->shards[i].shard_id > after)
			more = true;
	json_object_set_new(d, "Shards", shards);
	json_object_set_new(d, "HasMoreShards", json_boolean(more));
	sluice_stream_info_free(info);
	kin_ok(q, json_pack("{s:o}", "StreamDescription", d));
}

void kin_op_describe_stream_summary(struct kin_req *q)
{
	char name[SLUICE_NAME_LEN_MAX + 1];
	if (!kin_get_stream(q, name))
		return;
	struct sluice_stream_info *info = describe(q, name);
	if (!info)
		return;
	json_t *d = common_description(info);
	json_object_set_new(d, "OpenShardCount", json_integer((json_int_t)open_shards(info)));
	json_object_set_new(d, "ConsumerCount", json_integer(0));
	sluice_stream_info_free(info);
	kin_ok(q, json_pack("{s:o}", "StreamDescriptionSummary", d));
}

/*
 * ListShards' NextToken: base64 of a small JSON object {"s": stream, "a": last shard id
 * returned, "f": filter type or absent, "t": filter ms}. Not authenticated: it only names
 * things the caller may list anyway.
 */
static json_t *encode_token(const char *stream, uint32_t last, const char *filter,
			    int64_t filter_ms)
{
	json_t *t = json_pack("{s:s,s:I}", "s", stream, "a", (json_int_t)last);
	if (filter)
		json_object_set_new(t, "f", json_string(filter));
	if (filter && strstr(filter, "TIMESTAMP"))
		json_object_set_new(t, "t", json_integer(filter_ms));
	char *text = json_dumps(t, JSON_COMPACT);
	json_decref(t);
	if (!text)
		return NULL;
	json_t *j = kin_base64_json((const uint8_t *)text, strlen(text));
	free(text);
	return j;
}

/*
 * A ShardFilter other than AFTER_SHARD_ID (applied by the caller). The time filters work on
 * the shards' creation and closing times from the stream's metadata (Kinesis' rules):
 *   AT_TIMESTAMP T        created at or before T, and open or closed at or after T
 *   FROM_TIMESTAMP T      open, or closed at or after T
 *   AT/FROM_TRIM_HORIZON  the same with T = the trim horizon
 * T is at least the trim horizon (now - retention) for the FROM kinds, and at least the
 * stream's creation for all: earlier means "from the beginning". A shard whose times are
 * unknown (metadata written before sluice kept them) is listed.
 */
struct shard_filter {
	const char *kind; /* NULL: none */
	int64_t at_ms;	  /* the timestamp given (AT/FROM_TIMESTAMP) */
	struct sl_stream_meta *meta;
	int64_t t_ms;
	bool at; /* AT_TIMESTAMP / AT_TRIM_HORIZON */
};

static int shard_filter_prepare(struct sluice_client *c, const char *stream, struct shard_filter *f)
{
	if (!f->kind || strcmp(f->kind, "AT_LATEST") == 0)
		return 0;
	char *json;
	size_t len;
	int r = sluice_stream_meta_get(c, stream, &json, &len);
	if (r < 0)
		return r;
	char msg[SL_STREAM_MSG_LEN];
	r = sl_stream_meta_from_json(json, len, &f->meta, msg, sizeof(msg));
	free(json);
	if (r < 0)
		return r;
	int64_t horizon = sl_wall_ms() - f->meta->retention_ms;
	bool timestamp = strstr(f->kind, "TIMESTAMP") != NULL;
	f->at = strncmp(f->kind, "AT_", 3) == 0;
	f->t_ms = timestamp ? f->at_ms : horizon;
	if (!f->at && f->t_ms < horizon)
		f->t_ms = horizon;
	if (f->t_ms < f->meta->created_ms)
		f->t_ms = f->meta->created_ms;
	return 0;
}

static bool shard_passes(const struct sluice_shard_info *sh, const struct shard_filter *f)
{
	if (!f->kind)
		return true;
	if (strcmp(f->kind, "AT_LATEST") == 0)
		return !sh->closed;
	const struct sl_shard_meta *m = sl_stream_meta_find_shard(f->meta, sh->shard_id);
	if (!m)
		return true;
	bool still_there = !sh->closed || m->closed_ms == 0 || m->closed_ms >= f->t_ms;
	bool born = m->created_ms == 0 || m->created_ms <= f->t_ms;
	return still_there && (!f->at || born);
}

void kin_op_list_shards(struct kin_req *q)
{
	const char *token = NULL;
	bool has_token, has_name, has_after;
	char name[SLUICE_NAME_LEN_MAX + 1];
	int64_t limit = LIST_SHARDS_DEFAULT;
	uint32_t after = 0;
	struct shard_filter flt = {0};
	if (!kin_get_string(q, "NextToken", 1, 1048576, &token, &has_token) ||
	    !kin_get_int(q, "MaxResults", 1, LIST_SHARDS_MAX, &limit, &(bool){0}) ||
	    !kin_get_shard_id(q, "ExclusiveStartShardId", &after, &has_after))
		return;
	has_name = json_object_get(q->in, "StreamName") || json_object_get(q->in, "StreamARN");
	json_t *sf = json_object_get(q->in, "ShardFilter");
	if (has_token) {
		if (has_name || has_after || sf) {
			kin_fail(q, 400, KIN_E_INVALID_ARG,
				 "NextToken and StreamName, ExclusiveStartShardId or ShardFilter "
				 "cannot be provided together.");
			return;
		}
		uint8_t *raw;
		size_t raw_len;
		json_t *t = NULL;
		if (kin_base64_decode(token, strlen(token), &raw, &raw_len) == 0) {
			t = json_loadb((const char *)raw, raw_len, 0, NULL);
			free(raw);
		}
		json_t *s = json_object_get(t, "s"), *a = json_object_get(t, "a");
		if (!json_is_string(s) || !json_is_integer(a) || json_string_length(s) == 0 ||
		    json_string_length(s) > SLUICE_NAME_LEN_MAX || json_integer_value(a) < 0 ||
		    json_integer_value(a) > UINT32_MAX) {
			json_decref(t);
			kin_fail(q, 400, KIN_E_INVALID_ARG, "Invalid NextToken.");
			return;
		}
		memcpy(name, json_string_value(s), json_string_length(s) + 1);
		after = (uint32_t)json_integer_value(a);
		has_after = true;
		static const char *const kinds[] = {"AT_LATEST", "AT_TRIM_HORIZON",
						    "FROM_TRIM_HORIZON", "AT_TIMESTAMP",
						    "FROM_TIMESTAMP"};
		json_t *f = json_object_get(t, "f"), *ms = json_object_get(t, "t");
		for (size_t i = 0; json_is_string(f) && i < 5; i++)
			if (strcmp(json_string_value(f), kinds[i]) == 0)
				flt.kind = kinds[i];
		if (json_is_integer(ms))
			flt.at_ms = json_integer_value(ms);
		json_decref(t);
	} else {
		if (!kin_get_stream(q, name))
			return;
		if (sf) {
			json_t *type = json_object_get(sf, "Type");
			static const char *const kinds[] = {"AFTER_SHARD_ID",	 "AT_TRIM_HORIZON",
							    "FROM_TRIM_HORIZON", "AT_LATEST",
							    "AT_TIMESTAMP",	 "FROM_TIMESTAMP"};
			const char *kind = NULL;
			for (size_t i = 0; json_is_string(type) && i < 6; i++)
				if (strcmp(json_string_value(type), kinds[i]) == 0)
					kind = kinds[i];
			if (!kind) {
				kin_fail(
				    q, 400, KIN_E_VALIDATION,
				    "1 validation error detected: Value at 'shardFilter.type' "
				    "failed to satisfy constraint: Member must satisfy enum value "
				    "set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, "
				    "AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]");
				return;
			}
			struct kin_req sub = {.s = q->s, .in = sf, .reply = q->reply};
			if (strcmp(kind, "AFTER_SHARD_ID") == 0) {
				bool has_id;
				if (!kin_get_shard_id(&sub, "ShardId", &after, &has_id)) {
					q->failed = true;
					return;
				}
				if (!has_id) {
					kin_fail(
					    q, 400, KIN_E_INVALID_ARG,
					    "ShardFilter of type AFTER_SHARD_ID needs a ShardId.");
					return;
				}
				has_after = true;
			} else if (strstr(kind, "TIMESTAMP")) {
				int64_t ms;
				bool has_ts;
				if (!kin_get_timestamp_ms(&sub, "Timestamp", &ms, &has_ts)) {
					q->failed = true;
					return;
				}
				if (!has_ts) {
					kin_fail(q, 400, KIN_E_INVALID_ARG,
						 "ShardFilter of type %s needs a Timestamp.", kind);
					return;
				}
				flt.kind = kind;
				flt.at_ms = ms;
			} else {
				flt.kind = kind;
			}
		}
	}
	struct sluice_client *c = kin_client(q);
	if (!c)
		return;
	struct sluice_shard_info *shards;
	size_t n;
	int r = shard_filter_prepare(c, name, &flt);
	if (r == 0)
		r = sluice_list_shards(c, name, &shards, &n);
	if (r < 0) {
		sl_stream_meta_destroy(flt.meta);
		kin_fail_native(q, r, name);
		return;
	}
	json_t *arr = json_array();
	size_t i = 0, taken = 0;
	uint32_t last = 0;
	for (; i < n && taken < (size_t)limit; i++) {
		if ((has_after && shards[i].shard_id <= after) || !shard_passes(&shards[i], &flt))
			continue;
		json_array_append_new(arr, kin_shard_json(&shards[i]));
		last = shards[i].shard_id;
		taken++;
	}
	bool more = false;
	for (; i < n; i++)
		if ((!has_after || shards[i].shard_id > after) && shard_passes(&shards[i], &flt))
			more = true;
	sluice_shards_free(shards);
	sl_stream_meta_destroy(flt.meta);
	json_t *out = json_pack("{s:o}", "Shards", arr);
	if (more)
		json_object_set_new(out, "NextToken",
				    encode_token(name, last, flt.kind, flt.at_ms));
	kin_ok(q, out);
}

void kin_op_describe_limits(struct kin_req *q)
{
	struct sluice_client *c = kin_client(q);
	if (!c)
		return;
	char **names;
	size_t n;
	int r = sluice_stream_list(c, &names, &n);
	if (r < 0) {
		kin_fail_native(q, r, NULL);
		return;
	}
	size_t open = 0;
	for (size_t i = 0; i < n; i++) {
		struct sluice_shard_info *shards;
		size_t ns;
		if (sluice_list_shards(c, names[i], &shards, &ns) < 0)
			continue; /* deleted meanwhile */
		for (size_t k = 0; k < ns; k++)
			open += !shards[k].closed;
		sluice_shards_free(shards);
	}
	sluice_strings_free(names, n);
	kin_ok(q, json_pack("{s:i,s:I,s:i,s:i}", "ShardLimit", SLUICE_SHARDS_MAX, "OpenShardCount",
			    (json_int_t)open, "OnDemandStreamCount", 0, "OnDemandStreamCountLimit",
			    50));
}
