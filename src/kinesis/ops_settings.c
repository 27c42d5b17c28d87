/*
 * Stream settings: IncreaseStreamRetentionPeriod, DecreaseStreamRetentionPeriod,
 * AddTagsToStream, RemoveTagsFromStream, ListTagsForStream (native STREAM_SET_RETENTION and
 * the tag requests).
 */
#include "kinesis/ops.h"

#include <stdlib.h>
#include <string.h>

/* Kinesis' retention range, in hours. */
#define RETENTION_HOURS_MIN 24
#define RETENTION_HOURS_MAX 8760
#define HOUR_MS 3600000ll
/* Kinesis: at most 50 tags per stream, and so per call. */
#define TAGS_MAX 50
#define LIST_TAGS_DEFAULT 50

static void change_retention(struct kin_req *q, bool increase)
{
	char name[SLUICE_NAME_LEN_MAX + 1];
	int64_t hours;
	if (!kin_get_stream(q, name) ||
	    !kin_get_int(q, "RetentionPeriodHours", 1, 1000000, &hours, NULL))
		return;
	if (hours < RETENTION_HOURS_MIN) {
		kin_fail(q, 400, KIN_E_INVALID_ARG,
			 "Minimum allowed retention period is %d hours. Requested retention period "
			 "(%lld hours) is too short.",
			 RETENTION_HOURS_MIN, (long long)hours);
		return;
	}
	if (hours > RETENTION_HOURS_MAX) {
		kin_fail(q, 400, KIN_E_INVALID_ARG,
			 "Maximum allowed retention period is %d hours. Requested retention period "
			 "(%lld hours) is too long.",
			 RETENTION_HOURS_MAX, (long long)hours);
		return;
	}
	struct sluice_client *c = kin_client(q);
	if (!c)
		return;
	struct sluice_stream_info *info;
	int r = sluice_stream_describe(c, name, &info);
	if (r < 0) {
		kin_fail_native(q, r, name);
		return;
	}
	int64_t current = (int64_t)info->retention_ms;
	sluice_stream_info_free(info);
	int64_t want = hours * HOUR_MS;
	if (increase && want < current) {
		kin_fail(
		    q, 400, KIN_E_INVALID_ARG,
		    "Requested retention period (%lld hours) for stream %s can not be shorter "
		    "than existing retention period (%lld hours). Use DecreaseRetentionPeriod API.",
		    (long long)hours, name, (long long)(current / HOUR_MS));
		return;
	}
	if (!increase && want > current) {
		kin_fail(
		    q, 400, KIN_E_INVALID_ARG,
		    "Requested retention period (%lld hours) for stream %s can not be longer "
		    "than existing retention period (%lld hours). Use IncreaseRetentionPeriod API.",
		    (long long)hours, name, (long long)(current / HOUR_MS));
		return;
	}
	r = sluice_stream_set_retention(c, name, (uint64_t)want);
	if (r < 0) {
		kin_fail_native(q, r, name);
		return;
	}
	kin_ok(q, NULL);
}

void kin_op_increase_retention(struct kin_req *q)
{
	change_retention(q, true);
}

void kin_op_decrease_retention(struct kin_req *q)
{
	change_retention(q, false);
}

static void fail_tag_limit(struct kin_req *q, const char *name)
{
	kin_fail(q, 400, KIN_E_INVALID_ARG,
		 "Failed to add tags to stream %s under account " KIN_ACCOUNT
		 " because a given stream cannot have more than %d tags associated with it.",
		 name, TAGS_MAX);
}

void kin_op_add_tags(struct kin_req *q)
{
	char name[SLUICE_NAME_LEN_MAX + 1];
	if (!kin_get_stream(q, name))
		return;
	json_t *map = json_object_get(q->in, "Tags");
	if (!map || json_is_null(map)) {
		kin_fail(q, 400, KIN_E_VALIDATION,
			 "1 validation error detected: Value null at 'tags' failed to satisfy "
			 "constraint: Member must not be null");
		return;
	}
	if (!json_is_object(map)) {
		kin_fail(q, 400, KIN_E_SERIALIZATION, "Tags must be a map");
		return;
	}
	size_t n = json_object_size(map);
	if (n < 1) {
		kin_fail(q, 400, KIN_E_VALIDATION,
			 "1 validation error detected: Value '{}' at 'tags' failed to satisfy "
			 "constraint: Member must have length greater than or equal to 1");
		return;
	}
	if (n > TAGS_MAX) {
		fail_tag_limit(q, name);
		return;
	}
	struct sluice_tag tags[TAGS_MAX];
	size_t i = 0;
	const char *key;
	json_t *value;
	json_object_foreach(map, key, value)
	{
		size_t kl = strlen(key);
		if (!json_is_string(value)) {
			kin_fail(q, 400, KIN_E_SERIALIZATION, "tag values must be strings");
			return;
		}
		if (kl < 1 || kl > SLUICE_TAG_KEY_LEN_MAX ||
		    json_string_length(value) > SLUICE_TAG_VALUE_LEN_MAX ||
		    strlen(json_string_value(value)) != json_string_length(value)) {
			kin_fail(q, 400, KIN_E_INVALID_ARG,
				 "Tag keys must be 1..%d characters and values at most %d: %.128s",
				 SLUICE_TAG_KEY_LEN_MAX, SLUICE_TAG_VALUE_LEN_MAX, key);
			return;
		}
		tags[i].key = (char *)key;
		tags[i].value = (char *)json_string_value(value);
		i++;
	}
	struct sluice_client *c = kin_client(q);
	if (!c)
		return;
	int r = sluice_stream_add_tags(c, name, tags, n);
	if (r == SLUICE_ERR_LIMIT_EXCEEDED) {
		fail_tag_limit(q, name);
		return;
	}
	if (r < 0) {
		kin_fail_native(q, r, name);
		return;
	}
	kin_ok(q, NULL);
}

void kin_op_remove_tags(struct kin_req *q)
{
	char name[SLUICE_NAME_LEN_MAX + 1];
	if (!kin_get_stream(q, name))
		return;
	json_t *arr = json_object_get(q->in, "TagKeys");
	if (!arr || json_is_null(arr)) {
		kin_fail(q, 400, KIN_E_VALIDATION,
			 "1 validation error detected: Value null at 'tagKeys' failed to satisfy "
			 "constraint: Member must not be null");
		return;
	}
	if (!json_is_array(arr)) {
		kin_fail(q, 400, KIN_E_SERIALIZATION, "TagKeys must be a list");
		return;
	}
	size_t n = json_array_size(arr);
	if (n < 1 || n > TAGS_MAX) {
		kin_fail(q, 400, KIN_E_VALIDATION,
			 "1 validation error detected: Value at 'tagKeys' failed to satisfy "
			 "constraint: Member must have length between 1 and %d",
			 TAGS_MAX);
		return;
	}
	const char *keys[TAGS_MAX];
	for (size_t i = 0; i < n; i++) {
		json_t *k = json_array_get(arr, i);
		if (!json_is_string(k) || json_string_length(k) < 1 ||
		    json_string_length(k) > SLUICE_TAG_KEY_LEN_MAX ||
		    strlen(json_string_value(k)) != json_string_length(k)) {
			kin_fail(q, 400, KIN_E_INVALID_ARG, "Tag keys must be 1..%d characters.",
				 SLUICE_TAG_KEY_LEN_MAX);
			return;
		}
		keys[i] = json_string_value(k);
	}
	struct sluice_client *c = kin_client(q);
	if (!c)
		return;
	int r = sluice_stream_remove_tags(c, name, keys, n);
	if (r < 0) {
		kin_fail_native(q, r, name);
		return;
	}
	kin_ok(q, NULL);
}

void kin_op_list_tags(struct kin_req *q)
{
	char name[SLUICE_NAME_LEN_MAX + 1];
	const char *start;
	bool has_start;
	int64_t limit = LIST_TAGS_DEFAULT;
	if (!kin_get_stream(q, name) ||
	    !kin_get_string(q, "ExclusiveStartTagKey", 1, SLUICE_TAG_KEY_LEN_MAX, &start,
			    &has_start) ||
	    !kin_get_int(q, "Limit", 1, TAGS_MAX, &limit, &(bool){0}))
		return;
	struct sluice_client *c = kin_client(q);
	if (!c)
		return;
	struct sluice_tag *tags;
	size_t n;
	int r = sluice_stream_list_tags(c, name, &tags, &n);
	if (r < 0) {
		kin_fail_native(q, r, name);
		return;
	}
	size_t i = 0;
	if (has_start) {
		/* Kinesis pages after the named key in its listing order. */
		for (size_t k = 0; k < n; k++)
			if (strcmp(tags[k].key, start) == 0)
				i = k + 1;
	}
	json_t *arr = json_array();
	size_t taken = 0;
	for (; i < n && taken < (size_t)limit; i++, taken++)
		json_array_append_new(
		    arr, json_pack("{s:s,s:s}", "Key", tags[i].key, "Value", tags[i].value));
	bool more = i < n;
	sluice_tags_free(tags, n);
	kin_ok(q, json_pack("{s:o,s:b}", "Tags", arr, "HasMoreTags", more));
}
