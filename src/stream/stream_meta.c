/* The format of the metadata file is described at the top of stream_meta.h. */
#include "stream/stream_meta.h"
#include "common/utf8.h"
#include "common/file.h"

#include <sluice/errors.h>

#include <jansson.h>

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define META_FORMAT 1
#define STREAMS_SUBDIR "streams"
#define META_SUFFIX ".json"
#define TMP_SUFFIX ".json.tmp"
/* NAME + ".json.tmp" + NUL: always below NAME_MAX since names are at most 128 bytes. */
#define META_FILE_BUF (SLUICE_NAME_LEN_MAX + sizeof(TMP_SUFFIX))

__attribute__((format(printf, 3, 4))) static void set_msg(char *msg, size_t len, const char *fmt,
							  ...)
{
	if (!msg || len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
}

int sl_stream_name_validate(const char *name)
{
	if (!name)
		return SLUICE_ERR_INVALID_NAME;
	size_t n = 0;
	for (; name[n]; n++) {
		char c = name[n];
		if (n >= SLUICE_NAME_LEN_MAX)
			return SLUICE_ERR_INVALID_NAME;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return SLUICE_ERR_INVALID_NAME;
	}
	/* Kinesis' pattern allows them, but as a folder name they mean "here" and "the parent". */
	if (n == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return SLUICE_ERR_INVALID_NAME;
	return 0;
}

/* ---- lifetime ---- */

void sl_stream_meta_destroy(struct sl_stream_meta *meta)
{
	if (!meta)
		return;
	for (size_t i = 0; i < meta->tag_count; i++) {
		free(meta->tags[i].key);
		free(meta->tags[i].value);
	}
	free(meta->tags);
	free(meta->shards);
	free(meta);
}

int sl_stream_meta_create(const char *name, uint32_t shard_count, int64_t retention_ms,
			  int64_t now_ms, struct sl_stream_meta **ret)
{
	int r = sl_stream_name_validate(name);
	if (r < 0)
		return r;
	if (shard_count < 1 || shard_count > SLUICE_SHARDS_MAX ||
	    retention_ms < SL_STREAM_RETENTION_MS_MIN ||
	    retention_ms > SL_STREAM_RETENTION_MS_MAX || now_ms < 0)
		return SLUICE_ERR_INVALID_ARGUMENT;
	struct sl_stream_meta *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->shards = calloc(shard_count, sizeof(*m->shards));
	if (!m->shards) {
		sl_stream_meta_destroy(m);
		return -ENOMEM;
	}
	strcpy(m->name, name); /* validated: fits */
	m->retention_ms = retention_ms;
	m->created_ms = now_ms;
	m->status = SL_STREAM_ACTIVE;
	m->next_shard_id = shard_count;
	m->shard_count = shard_count;
	for (uint32_t i = 0; i < shard_count; i++) {
		struct sl_shard_meta *s = &m->shards[i];
		s->shard_id = i;
		s->parent_id = -1;
		s->adjacent_parent_id = -1;
		sl_hash_range_even(i, shard_count, &s->start_key, &s->end_key);
		s->start_seq = 1;
		s->end_seq = 0;
		s->state = SL_SHARD_OPEN;
		s->created_ms = now_ms;
	}
	assert(sl_stream_meta_check(m, NULL, 0) != SLUICE_ERR_INVALID_ARGUMENT);
	*ret = m;
	return 0;
}

int sl_stream_meta_clone(const struct sl_stream_meta *meta, struct sl_stream_meta **ret)
{
	struct sl_stream_meta *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	*m = *meta;
	m->shards = NULL;
	m->tags = NULL;
	m->tag_count = 0;
	m->shards = malloc(meta->shard_count * sizeof(*m->shards));
	if (!m->shards)
		goto fail;
	memcpy(m->shards, meta->shards, meta->shard_count * sizeof(*m->shards));
	if (meta->tag_count) {
		m->tags = calloc(meta->tag_count, sizeof(*m->tags));
		if (!m->tags)
			goto fail;
		for (size_t i = 0; i < meta->tag_count; i++) {
			m->tags[i].key = strdup(meta->tags[i].key);
			m->tags[i].value = strdup(meta->tags[i].value);
			m->tag_count = i + 1; /* destroy frees this entry, even half-built */
			if (!m->tags[i].key || !m->tags[i].value)
				goto fail;
		}
	}
	*ret = m;
	return 0;
fail:
	sl_stream_meta_destroy(m);
	return -ENOMEM;
}

/* ---- queries ---- */

struct sl_shard_meta *sl_stream_meta_find_shard(const struct sl_stream_meta *meta, uint32_t id)
{
	/* Ascending ids: binary search. */
	size_t lo = 0, hi = meta->shard_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (meta->shards[mid].shard_id == id)
			return &meta->shards[mid];
		if (meta->shards[mid].shard_id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

size_t sl_stream_meta_open_shard_count(const struct sl_stream_meta *meta)
{
	size_t n = 0;
	for (size_t i = 0; i < meta->shard_count; i++)
		n += meta->shards[i].state == SL_SHARD_OPEN;
	return n;
}

int sl_stream_meta_shard_map(const struct sl_stream_meta *meta, struct sl_shard_map **ret)
{
	size_t open = sl_stream_meta_open_shard_count(meta);
	if (open == 0 || open > SLUICE_SHARDS_MAX)
		return SLUICE_ERR_INVALID_ARGUMENT;
	struct sl_shard_range *ranges = malloc(open * sizeof(*ranges));
	if (!ranges)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < meta->shard_count; i++) {
		const struct sl_shard_meta *s = &meta->shards[i];
		if (s->state != SL_SHARD_OPEN)
			continue;
		ranges[k].start = s->start_key;
		ranges[k].end = s->end_key;
		ranges[k].shard_id = s->shard_id;
		k++;
	}
	int r = sl_shard_map_create(ranges, open, ret);
	free(ranges);
	return r;
}

/* ---- validation ---- */

static int check_tag(const char *key, const char *value, char *msg, size_t msg_len)
{
	size_t kl = strlen(key), vl = strlen(value);
	if (kl < 1 || kl > SL_STREAM_TAG_KEY_LEN_MAX) {
		set_msg(msg, msg_len, "tag key must be 1-%d bytes", SL_STREAM_TAG_KEY_LEN_MAX);
		return SLUICE_ERR_INVALID_ARGUMENT;
	}
	if (vl > SL_STREAM_TAG_VALUE_LEN_MAX) {
		set_msg(msg, msg_len, "tag value must be at most %d bytes",
			SL_STREAM_TAG_VALUE_LEN_MAX);
		return SLUICE_ERR_INVALID_ARGUMENT;
	}
	if (!sl_utf8_valid(key, kl) || !sl_utf8_valid(value, vl)) {
		set_msg(msg, msg_len, "tag key and value must be UTF-8");
		return SLUICE_ERR_INVALID_ARGUMENT;
	}
	return 0;
}

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		set_msg(msg, msg_len, __VA_ARGS__);                                                \
		return SLUICE_ERR_INVALID_ARGUMENT;                                                \
	} while (0)

int sl_stream_meta_check(const struct sl_stream_meta *m, char *msg, size_t msg_len)
{
	if (memchr(m->name, '\0', sizeof(m->name)) == NULL || sl_stream_name_validate(m->name) < 0)
		FAIL("name: not a valid stream name");
	if (m->retention_ms < SL_STREAM_RETENTION_MS_MIN ||
	    m->retention_ms > SL_STREAM_RETENTION_MS_MAX)
		FAIL("retention_ms: %" PRId64 " outside %lld..%lld", m->retention_ms,
		     SL_STREAM_RETENTION_MS_MIN, SL_STREAM_RETENTION_MS_MAX);
	if (m->created_ms < 0)
		FAIL("created_ms: negative");
	if (m->status != SL_STREAM_ACTIVE && m->status != SL_STREAM_DELETING)
		FAIL("status: unknown value %d", (int)m->status);
	if (m->shard_count < 1 || m->shard_count > SL_STREAM_SHARD_RECORDS_MAX)
		FAIL("shards: %zu listed, want 1..%d", m->shard_count, SL_STREAM_SHARD_RECORDS_MAX);
	size_t open = 0;
	for (size_t i = 0; i < m->shard_count; i++) {
		const struct sl_shard_meta *s = &m->shards[i];
		if (i > 0 && s->shard_id <= m->shards[i - 1].shard_id)
			FAIL("shards[%zu].id: ids must be unique and ascending", i);
		if (s->shard_id >= m->next_shard_id)
			FAIL("shards[%zu].id: not below next_shard_id", i);
		if (s->parent_id < -1 || s->parent_id >= (int64_t)m->next_shard_id ||
		    s->parent_id == (int64_t)s->shard_id)
			FAIL("shards[%zu].parent_id: invalid", i);
		if (s->adjacent_parent_id < -1 ||
		    s->adjacent_parent_id >= (int64_t)m->next_shard_id ||
		    s->adjacent_parent_id == (int64_t)s->shard_id ||
		    (s->adjacent_parent_id != -1 &&
		     (s->parent_id == -1 || s->adjacent_parent_id == s->parent_id)))
			FAIL("shards[%zu].adjacent_parent_id: invalid", i);
		if (s->start_key > s->end_key)
			FAIL("shards[%zu]: start_hash_key above end_hash_key", i);
		if (s->start_seq < 1)
			FAIL("shards[%zu].start_seq: must be >= 1", i);
		if (s->state == SL_SHARD_OPEN) {
			if (s->end_seq != 0)
				FAIL("shards[%zu].end_seq: must be 0 while open", i);
			open++;
		} else if (s->state == SL_SHARD_CLOSED) {
			if (s->end_seq < s->start_seq - 1)
				FAIL("shards[%zu].end_seq: below start_seq - 1", i);
		} else {
			FAIL("shards[%zu].state: unknown value %d", i, (int)s->state);
		}
	}
	if (open < 1 || open > SLUICE_SHARDS_MAX)
		FAIL("shards: %zu open, want 1..%d", open, SLUICE_SHARDS_MAX);
	struct sl_shard_map *map;
	int r = sl_stream_meta_shard_map(m, &map);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		FAIL("shards: the open shards do not cover the hash key space exactly");
	sl_shard_map_destroy(map);
	if (m->tag_count > SL_STREAM_TAGS_MAX)
		FAIL("tags: %zu, at most %d", m->tag_count, SL_STREAM_TAGS_MAX);
	for (size_t i = 0; i < m->tag_count; i++) {
		if (!m->tags[i].key || !m->tags[i].value)
			FAIL("tags[%zu]: missing key or value", i);
		if (check_tag(m->tags[i].key, m->tags[i].value, msg, msg_len) < 0)
			return SLUICE_ERR_INVALID_ARGUMENT;
		for (size_t k = 0; k < i; k++)
			if (strcmp(m->tags[k].key, m->tags[i].key) == 0)
				FAIL("tags: duplicate key");
	}
	return 0;
}

/* ---- tags ---- */

static ssize_t tag_index(const struct sl_stream_meta *meta, const char *key)
{
	for (size_t i = 0; i < meta->tag_count; i++)
		if (strcmp(meta->tags[i].key, key) == 0)
			return (ssize_t)i;
	return -1;
}

int sl_stream_meta_set_tag(struct sl_stream_meta *meta, const char *key, const char *value)
{
	int r = check_tag(key, value, NULL, 0);
	if (r < 0)
		return r;
	char *v = strdup(value);
	if (!v)
		return -ENOMEM;
	ssize_t i = tag_index(meta, key);
	if (i >= 0) {
		free(meta->tags[i].value);
		meta->tags[i].value = v;
		return 0;
	}
	if (meta->tag_count >= SL_STREAM_TAGS_MAX) {
		free(v);
		return SLUICE_ERR_LIMIT_EXCEEDED;
	}
	char *k = strdup(key);
	struct sl_tag *tags = k ? realloc(meta->tags, (meta->tag_count + 1) * sizeof(*tags)) : NULL;
	if (!tags) {
		free(k);
		free(v);
		return -ENOMEM;
	}
	meta->tags = tags;
	meta->tags[meta->tag_count].key = k;
	meta->tags[meta->tag_count].value = v;
	meta->tag_count++;
	return 0;
}

int sl_stream_meta_remove_tag(struct sl_stream_meta *meta, const char *key)
{
	ssize_t i = tag_index(meta, key);
	if (i < 0)
		return -ENOENT;
	free(meta->tags[i].key);
	free(meta->tags[i].value);
	memmove(&meta->tags[i], &meta->tags[i + 1],
		(meta->tag_count - (size_t)i - 1) * sizeof(*meta->tags));
	meta->tag_count--;
	return 0;
}

const char *sl_stream_meta_get_tag(const struct sl_stream_meta *meta, const char *key)
{
	ssize_t i = tag_index(meta, key);
	return i < 0 ? NULL : meta->tags[i].value;
}

/* ---- resharding ---- */

static int reshard_room(const struct sl_stream_meta *meta, size_t add, size_t open_delta_add,
			char *msg, size_t msg_len)
{
	if (meta->status != SL_STREAM_ACTIVE)
		FAIL("stream %s is being deleted", meta->name);
	if (sl_stream_meta_open_shard_count(meta) + open_delta_add > SLUICE_SHARDS_MAX ||
	    meta->shard_count + add > SL_STREAM_SHARD_RECORDS_MAX ||
	    (uint64_t)meta->next_shard_id + add > UINT32_MAX) {
		set_msg(msg, msg_len, "stream %s has too many shards", meta->name);
		return SLUICE_ERR_LIMIT_EXCEEDED;
	}
	return 0;
}

static int open_shard(const struct sl_stream_meta *meta, uint32_t id, uint64_t end_seq,
		      struct sl_shard_meta **ret, char *msg, size_t msg_len)
{
	struct sl_shard_meta *s = sl_stream_meta_find_shard(meta, id);
	if (!s) {
		set_msg(msg, msg_len, "shard %" PRIu32 " not found in stream %s", id, meta->name);
		return SLUICE_ERR_SHARD_NOT_FOUND;
	}
	if (s->state != SL_SHARD_OPEN)
		FAIL("shard %" PRIu32 " is closed", id);
	if (end_seq < s->start_seq - 1)
		FAIL("shard %" PRIu32 ": end sequence %" PRIu64 " below its start %" PRIu64, id,
		     end_seq, s->start_seq);
	if (end_seq == UINT64_MAX)
		FAIL("shard %" PRIu32 ": sequence numbers exhausted", id);
	*ret = s;
	return 0;
}

void sl_stream_meta_stamp_reshard(struct sl_stream_meta *meta, uint32_t first_new_id,
				  int64_t now_ms)
{
	for (size_t i = 0; i < meta->shard_count; i++) {
		struct sl_shard_meta *c = &meta->shards[i];
		if (c->shard_id < first_new_id)
			continue;
		c->created_ms = now_ms;
		for (int k = 0; k < 2; k++) {
			int64_t pid = k ? c->adjacent_parent_id : c->parent_id;
			struct sl_shard_meta *p =
			    pid >= 0 ? sl_stream_meta_find_shard(meta, (uint32_t)pid) : NULL;
			if (p && p->state == SL_SHARD_CLOSED && p->closed_ms == 0)
				p->closed_ms = now_ms;
		}
	}
}

int sl_stream_meta_split(struct sl_stream_meta *meta, uint32_t shard_id, sl_u128 new_start_key,
			 uint64_t end_seq, uint32_t ret_child_ids[2], char *msg, size_t msg_len)
{
	struct sl_shard_meta *p;
	int r = open_shard(meta, shard_id, end_seq, &p, msg, msg_len);
	if (r < 0)
		return r;
	if (new_start_key <= p->start_key || new_start_key > p->end_key)
		FAIL("new starting hash key must be inside shard %" PRIu32
		     "'s range, above its starting hash key",
		     shard_id);
	r = reshard_room(meta, 2, 1, msg, msg_len);
	if (r < 0)
		return r;
	struct sl_shard_meta *shards =
	    realloc(meta->shards, (meta->shard_count + 2) * sizeof(*shards));
	if (!shards)
		return -ENOMEM;
	meta->shards = shards;
	/* Find the parent again by id: pointers into the old array died with the realloc. */
	p = sl_stream_meta_find_shard(meta, shard_id);

	struct sl_shard_meta *a = &shards[meta->shard_count], *b = a + 1;
	*a = (struct sl_shard_meta){
	    .shard_id = meta->next_shard_id,
	    .parent_id = shard_id,
	    .adjacent_parent_id = -1,
	    .start_key = p->start_key,
	    .end_key = new_start_key - 1,
	    .start_seq = end_seq + 1,
	    .end_seq = 0,
	    .state = SL_SHARD_OPEN,
	};
	*b = *a;
	b->shard_id = meta->next_shard_id + 1;
	b->start_key = new_start_key;
	b->end_key = p->end_key;
	p->state = SL_SHARD_CLOSED;
	p->end_seq = end_seq;
	meta->shard_count += 2;
	meta->next_shard_id += 2;
	if (ret_child_ids) {
		ret_child_ids[0] = a->shard_id;
		ret_child_ids[1] = b->shard_id;
	}
	assert(sl_stream_meta_check(meta, NULL, 0) != SLUICE_ERR_INVALID_ARGUMENT);
	return 0;
}

int sl_stream_meta_merge(struct sl_stream_meta *meta, uint32_t shard_id, uint32_t adjacent_id,
			 uint64_t end_seq, uint64_t adjacent_end_seq, uint32_t *ret_child_id,
			 char *msg, size_t msg_len)
{
	if (shard_id == adjacent_id)
		FAIL("cannot merge shard %" PRIu32 " with itself", shard_id);
	struct sl_shard_meta *x, *y;
	int r = open_shard(meta, shard_id, end_seq, &x, msg, msg_len);
	if (r < 0)
		return r;
	r = open_shard(meta, adjacent_id, adjacent_end_seq, &y, msg, msg_len);
	if (r < 0)
		return r;
	bool x_first = x->end_key != SL_U128_MAX && x->end_key + 1 == y->start_key;
	bool y_first = y->end_key != SL_U128_MAX && y->end_key + 1 == x->start_key;
	if (!x_first && !y_first)
		FAIL("shards %" PRIu32 " and %" PRIu32 " are not adjacent", shard_id, adjacent_id);
	r = reshard_room(meta, 1, 0, msg, msg_len);
	if (r < 0)
		return r;
	struct sl_shard_meta *shards =
	    realloc(meta->shards, (meta->shard_count + 1) * sizeof(*shards));
	if (!shards)
		return -ENOMEM;
	meta->shards = shards;
	x = sl_stream_meta_find_shard(meta, shard_id);
	y = sl_stream_meta_find_shard(meta, adjacent_id);

	uint64_t last = end_seq > adjacent_end_seq ? end_seq : adjacent_end_seq;
	struct sl_shard_meta *c = &shards[meta->shard_count];
	*c = (struct sl_shard_meta){
	    .shard_id = meta->next_shard_id,
	    .parent_id = shard_id,
	    .adjacent_parent_id = adjacent_id,
	    .start_key = x_first ? x->start_key : y->start_key,
	    .end_key = x_first ? y->end_key : x->end_key,
	    .start_seq = last + 1,
	    .end_seq = 0,
	    .state = SL_SHARD_OPEN,
	};
	x->state = SL_SHARD_CLOSED;
	x->end_seq = end_seq;
	y->state = SL_SHARD_CLOSED;
	y->end_seq = adjacent_end_seq;
	meta->shard_count++;
	meta->next_shard_id++;
	if (ret_child_id)
		*ret_child_id = c->shard_id;
	assert(sl_stream_meta_check(meta, NULL, 0) != SLUICE_ERR_INVALID_ARGUMENT);
	return 0;
}

#undef FAIL

/* ---- JSON ---- */

static json_t *u128_json(sl_u128 v)
{
	char buf[SL_U128_DEC_BUF];
	sl_u128_format(v, buf);
	return json_string(buf);
}

static json_t *u64_json(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return json_string(buf);
}

/* json_object_set_new that remembers a failure (it frees value either way). */
static void set_field(json_t *obj, const char *key, json_t *value, bool *ok)
{
	if (!value || json_object_set_new(obj, key, value) < 0)
		*ok = false;
}

static json_t *meta_to_json_value(const struct sl_stream_meta *m)
{
	bool ok = true;
	json_t *root = json_object();
	json_t *shards = json_array();
	json_t *tags = json_object();
	if (!root || !shards || !tags) {
		json_decref(root);
		json_decref(shards);
		json_decref(tags);
		return NULL;
	}
	set_field(root, "format", json_integer(META_FORMAT), &ok);
	set_field(root, "name", json_string(m->name), &ok);
	set_field(root, "retention_ms", json_integer(m->retention_ms), &ok);
	set_field(root, "created_ms", json_integer(m->created_ms), &ok);
	set_field(root, "status",
		  json_string(m->status == SL_STREAM_ACTIVE ? "active" : "deleting"), &ok);
	set_field(root, "next_shard_id", json_integer(m->next_shard_id), &ok);
	set_field(root, "shards", shards, &ok);
	set_field(root, "tags", tags, &ok);
	for (size_t i = 0; ok && i < m->shard_count; i++) {
		const struct sl_shard_meta *s = &m->shards[i];
		json_t *o = json_object();
		if (!o || json_array_append_new(shards, o) < 0) {
			ok = false;
			break;
		}
		set_field(o, "id", json_integer(s->shard_id), &ok);
		set_field(o, "parent_id", json_integer(s->parent_id), &ok);
		set_field(o, "adjacent_parent_id", json_integer(s->adjacent_parent_id), &ok);
		set_field(o, "start_hash_key", u128_json(s->start_key), &ok);
		set_field(o, "end_hash_key", u128_json(s->end_key), &ok);
		set_field(o, "start_seq", u64_json(s->start_seq), &ok);
		set_field(o, "end_seq", u64_json(s->end_seq), &ok);
		set_field(o, "state", json_string(s->state == SL_SHARD_OPEN ? "open" : "closed"),
			  &ok);
		if (s->created_ms)
			set_field(o, "created_ms", json_integer(s->created_ms), &ok);
		if (s->closed_ms)
			set_field(o, "closed_ms", json_integer(s->closed_ms), &ok);
	}
	for (size_t i = 0; ok && i < m->tag_count; i++)
		set_field(tags, m->tags[i].key, json_string(m->tags[i].value), &ok);
	if (!ok) {
		json_decref(root);
		return NULL;
	}
	return root;
}

int sl_stream_meta_to_json(const struct sl_stream_meta *meta, char **ret_json, size_t *ret_len)
{
	json_t *root = meta_to_json_value(meta);
	if (!root)
		return -ENOMEM;
	const size_t flags = JSON_INDENT(1) | JSON_ENSURE_ASCII;
	size_t n = json_dumpb(root, NULL, 0, flags);
	char *out = n ? malloc(n + 2) : NULL;
	if (!out || json_dumpb(root, out, n, flags) != n) {
		free(out);
		json_decref(root);
		return -ENOMEM;
	}
	json_decref(root);
	out[n++] = '\n';
	out[n] = '\0';
	*ret_json = out;
	*ret_len = n;
	return 0;
}

/* Field readers for from_json: each fails with a message naming the field. */
struct reader {
	char *msg;
	size_t msg_len;
};

static int bad(struct reader *rd, const char *where, const char *field, const char *what)
{
	set_msg(rd->msg, rd->msg_len, "%s%s: %s", where, field, what);
	return SLUICE_ERR_CORRUPT;
}

static int get_int(struct reader *rd, json_t *obj, const char *where, const char *field,
		   int64_t min, int64_t max, int64_t *out)
{
	json_t *v = json_object_get(obj, field);
	if (!v)
		return bad(rd, where, field, "missing");
	if (!json_is_integer(v))
		return bad(rd, where, field, "not an integer");
	json_int_t x = json_integer_value(v);
	if (x < min || x > max)
		return bad(rd, where, field, "out of range");
	*out = x;
	return 0;
}

static int get_str(struct reader *rd, json_t *obj, const char *where, const char *field,
		   const char **out, size_t *out_len)
{
	json_t *v = json_object_get(obj, field);
	if (!v)
		return bad(rd, where, field, "missing");
	if (!json_is_string(v))
		return bad(rd, where, field, "not a string");
	*out = json_string_value(v);
	*out_len = json_string_length(v);
	return 0;
}

static int get_u128(struct reader *rd, json_t *obj, const char *where, const char *field,
		    sl_u128 *out)
{
	const char *s;
	size_t n;
	int r = get_str(rd, obj, where, field, &s, &n);
	if (r < 0)
		return r;
	if (sl_u128_parse(s, n, out) < 0)
		return bad(rd, where, field, "not a decimal 128-bit unsigned integer");
	return 0;
}

static int get_u64(struct reader *rd, json_t *obj, const char *where, const char *field,
		   uint64_t *out)
{
	sl_u128 v;
	int r = get_u128(rd, obj, where, field, &v);
	if (r < 0)
		return r;
	if (v > UINT64_MAX)
		return bad(rd, where, field, "out of range");
	*out = (uint64_t)v;
	return 0;
}

static int get_enum(struct reader *rd, json_t *obj, const char *where, const char *field,
		    const char *a, const char *b, int *out)
{
	const char *s;
	size_t n;
	int r = get_str(rd, obj, where, field, &s, &n);
	if (r < 0)
		return r;
	if (strcmp(s, a) == 0 && n == strlen(a))
		*out = 0;
	else if (strcmp(s, b) == 0 && n == strlen(b))
		*out = 1;
	else
		return bad(rd, where, field, "unknown value");
	return 0;
}

static int shard_from_json(struct reader *rd, json_t *o, size_t i, struct sl_shard_meta *s)
{
	char where[32];
	snprintf(where, sizeof(where), "shards[%zu].", i);
	if (!json_is_object(o)) {
		set_msg(rd->msg, rd->msg_len, "shards[%zu]: not an object", i);
		return SLUICE_ERR_CORRUPT;
	}
	int64_t id, parent, adjacent;
	int state;
	int r;
	if ((r = get_int(rd, o, where, "id", 0, UINT32_MAX, &id)) < 0 ||
	    (r = get_int(rd, o, where, "parent_id", -1, UINT32_MAX, &parent)) < 0 ||
	    (r = get_int(rd, o, where, "adjacent_parent_id", -1, UINT32_MAX, &adjacent)) < 0 ||
	    (r = get_u128(rd, o, where, "start_hash_key", &s->start_key)) < 0 ||
	    (r = get_u128(rd, o, where, "end_hash_key", &s->end_key)) < 0 ||
	    (r = get_u64(rd, o, where, "start_seq", &s->start_seq)) < 0 ||
	    (r = get_u64(rd, o, where, "end_seq", &s->end_seq)) < 0 ||
	    (r = get_enum(rd, o, where, "state", "open", "closed", &state)) < 0)
		return r;
	s->shard_id = (uint32_t)id;
	s->parent_id = parent;
	s->adjacent_parent_id = adjacent;
	s->state = state ? SL_SHARD_CLOSED : SL_SHARD_OPEN;
	/* Optional (metadata of older versions has neither): 0, unknown. */
	s->created_ms = s->closed_ms = 0;
	if ((json_object_get(o, "created_ms") &&
	     (r = get_int(rd, o, where, "created_ms", 0, INT64_MAX, &s->created_ms)) < 0) ||
	    (json_object_get(o, "closed_ms") &&
	     (r = get_int(rd, o, where, "closed_ms", 0, INT64_MAX, &s->closed_ms)) < 0))
		return r;
	if (s->closed_ms && s->state != SL_SHARD_CLOSED)
		return bad(rd, where, "closed_ms", "set on an open shard");
	return 0;
}

static int meta_from_json_value(struct reader *rd, json_t *root, struct sl_stream_meta *m)
{
	int r;
	int64_t format, retention, created, next_id;
	const char *name;
	size_t name_len;
	int status;
	if (!json_is_object(root))
		return bad(rd, "", "document", "not a JSON object");
	if ((r = get_int(rd, root, "", "format", INT64_MIN, INT64_MAX, &format)) < 0)
		return r;
	if (format != META_FORMAT)
		return bad(rd, "", "format", "unsupported version");
	if ((r = get_str(rd, root, "", "name", &name, &name_len)) < 0)
		return r;
	if (name_len != strlen(name) || sl_stream_name_validate(name) < 0)
		return bad(rd, "", "name", "not a valid stream name");
	memcpy(m->name, name, name_len + 1);
	if ((r = get_int(rd, root, "", "retention_ms", SL_STREAM_RETENTION_MS_MIN,
			 SL_STREAM_RETENTION_MS_MAX, &retention)) < 0 ||
	    (r = get_int(rd, root, "", "created_ms", 0, INT64_MAX, &created)) < 0 ||
	    (r = get_enum(rd, root, "", "status", "active", "deleting", &status)) < 0 ||
	    (r = get_int(rd, root, "", "next_shard_id", 1, UINT32_MAX, &next_id)) < 0)
		return r;
	m->retention_ms = retention;
	m->created_ms = created;
	m->status = status ? SL_STREAM_DELETING : SL_STREAM_ACTIVE;
	m->next_shard_id = (uint32_t)next_id;

	json_t *shards = json_object_get(root, "shards");
	if (!shards || !json_is_array(shards))
		return bad(rd, "", "shards", shards ? "not an array" : "missing");
	size_t n = json_array_size(shards);
	if (n < 1 || n > SL_STREAM_SHARD_RECORDS_MAX)
		return bad(rd, "", "shards", "wrong number of shards");
	m->shards = calloc(n, sizeof(*m->shards));
	if (!m->shards)
		return -ENOMEM;
	m->shard_count = n;
	for (size_t i = 0; i < n; i++)
		if ((r = shard_from_json(rd, json_array_get(shards, i), i, &m->shards[i])) < 0)
			return r;

	json_t *tags = json_object_get(root, "tags");
	if (!tags || !json_is_object(tags))
		return bad(rd, "", "tags", tags ? "not an object" : "missing");
	size_t nt = json_object_size(tags);
	if (nt > SL_STREAM_TAGS_MAX)
		return bad(rd, "", "tags", "too many");
	if (nt) {
		m->tags = calloc(nt, sizeof(*m->tags));
		if (!m->tags)
			return -ENOMEM;
	}
	const char *key;
	json_t *value;
	json_object_foreach(tags, key, value)
	{
		if (!json_is_string(value))
			return bad(rd, "tags.", key, "not a string");
		if (strlen(json_string_value(value)) != json_string_length(value))
			return bad(rd, "tags.", key, "contains NUL");
		struct sl_tag *t = &m->tags[m->tag_count];
		t->key = strdup(key);
		t->value = strdup(json_string_value(value));
		m->tag_count++;
		if (!t->key || !t->value)
			return -ENOMEM;
	}
	return 0;
}

int sl_stream_meta_from_json(const char *json, size_t len, struct sl_stream_meta **ret,
			     char *err_msg, size_t err_msg_len)
{
	struct reader rd = {err_msg, err_msg_len};
	json_error_t jerr;
	/* Duplicate keys are refused: which one would win is not something to guess about. */
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		set_msg(err_msg, err_msg_len, "line %d column %d: %s", jerr.line, jerr.column,
			jerr.text);
		return SLUICE_ERR_CORRUPT;
	}
	struct sl_stream_meta *m = calloc(1, sizeof(*m));
	int r = m ? meta_from_json_value(&rd, root, m) : -ENOMEM;
	json_decref(root);
	if (r == 0) {
		r = sl_stream_meta_check(m, err_msg, err_msg_len);
		if (r == SLUICE_ERR_INVALID_ARGUMENT)
			r = SLUICE_ERR_CORRUPT;
	}
	if (r < 0) {
		sl_stream_meta_destroy(m);
		return r;
	}
	*ret = m;
	return 0;
}

/* ---- files ---- */

/* Opens meta_dir/streams as a directory fd; with create, makes both folders (durably). */
static int open_streams_dir(const char *meta_dir, bool create)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/" STREAMS_SUBDIR, meta_dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT || !create)
		return fd >= 0 ? fd : -errno;
	if (mkdir(meta_dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	/* The new folder's entry must survive a crash too, or the file saved into it may not. */
	int r = sl_fsync_dir(meta_dir);
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

int sl_stream_meta_save(const char *meta_dir, const struct sl_stream_meta *meta)
{
	/* Check just before writing: a bad file would refuse to load at the next start. */
	int r = sl_stream_meta_check(meta, NULL, 0);
	if (r < 0)
		return r;
	char *json;
	size_t len;
	r = sl_stream_meta_to_json(meta, &json, &len);
	if (r < 0)
		return r;
	char file[META_FILE_BUF], tmp[META_FILE_BUF];
	snprintf(file, sizeof(file), "%s" META_SUFFIX, meta->name);
	snprintf(tmp, sizeof(tmp), "%s" TMP_SUFFIX, meta->name);

	int dfd = open_streams_dir(meta_dir, true);
	if (dfd < 0) {
		free(json);
		return dfd;
	}
	r = sl_write_file_atomic_at(dfd, file, tmp, json, len);
	close(dfd);
	free(json);
	return r;
}

/* Reads and validates dfd/file_name, whose stream name must be expect_name. */
static int load_at(int dfd, const char *file_name, const char *expect_name,
		   struct sl_stream_meta **ret, char *msg, size_t msg_len)
{
	int fd = openat(dfd, file_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return SLUICE_ERR_STREAM_NOT_FOUND;
		set_msg(msg, msg_len, "open: %s", strerror(e));
		return -e;
	}
	int r;
	char *buf = NULL;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		set_msg(msg, msg_len, "stat: %s", strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)SL_STREAM_META_FILE_BYTES_MAX) {
		set_msg(msg, msg_len, "not a regular file of at most %u bytes",
			SL_STREAM_META_FILE_BYTES_MAX);
		r = SLUICE_ERR_CORRUPT;
		goto out;
	}
	size_t cap = (size_t)st.st_size, len = 0;
	buf = malloc(cap + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	/* Read up to the size stat gave; a file that grows meanwhile shows up as corrupt. */
	for (;;) {
		ssize_t n = read(fd, buf + len, cap + 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			set_msg(msg, msg_len, "read: %s", strerror(-r));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > cap) {
			set_msg(msg, msg_len, "file changed while being read");
			r = SLUICE_ERR_CORRUPT;
			goto out;
		}
	}
	struct sl_stream_meta *m;
	r = sl_stream_meta_from_json(buf, len, &m, msg, msg_len);
	if (r < 0)
		goto out;
	if (strcmp(m->name, expect_name) != 0) {
		set_msg(msg, msg_len, "name: \"%s\" does not match the file name", m->name);
		sl_stream_meta_destroy(m);
		r = SLUICE_ERR_CORRUPT;
		goto out;
	}
	*ret = m;
out:
	free(buf);
	close(fd);
	return r;
}

int sl_stream_meta_load(const char *meta_dir, const char *name, struct sl_stream_meta **ret,
			char *err_msg, size_t err_msg_len)
{
	int r = sl_stream_name_validate(name);
	if (r < 0)
		return r;
	int dfd = open_streams_dir(meta_dir, false);
	if (dfd < 0)
		return dfd == -ENOENT ? SLUICE_ERR_STREAM_NOT_FOUND : dfd;
	char file[META_FILE_BUF];
	snprintf(file, sizeof(file), "%s" META_SUFFIX, name);
	r = load_at(dfd, file, name, ret, err_msg, err_msg_len);
	close(dfd);
	return r;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_meta_suffix(const char *s, size_t n)
{
	size_t k = strlen(META_SUFFIX);
	return n > k && memcmp(s + n - k, META_SUFFIX, k) == 0;
}

int sl_stream_meta_load_all(const char *meta_dir, const struct sl_stream_meta_load_ops *ops,
			    void *ctx)
{
	int dfd = open_streams_dir(meta_dir, false);
	if (dfd < 0)
		return dfd == -ENOENT ? 0 : dfd;
	int dfd2 = dup(dfd);
	DIR *d = dfd2 >= 0 ? fdopendir(dfd2) : NULL;
	if (!d) {
		int r = -errno;
		if (dfd2 >= 0)
			close(dfd2);
		close(dfd);
		return r;
	}
	/* Collect the names first: name order makes startup deterministic. */
	char **names = NULL;
	size_t count = 0, cap = 0;
	int r = 0;
	struct dirent *e;
	errno = 0;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		if (!has_meta_suffix(e->d_name, n))
			continue; /* temp files (NAME.json.tmp) and anything else */
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 16;
			char **nn = realloc(names, nc * sizeof(*nn));
			if (!nn) {
				r = -ENOMEM;
				goto out;
			}
			names = nn;
			cap = nc;
		}
		names[count] = strdup(e->d_name);
		if (!names[count]) {
			r = -ENOMEM;
			goto out;
		}
		count++;
		errno = 0;
	}
	if (errno) {
		r = -errno;
		goto out;
	}
	if (count)
		qsort(names, count, sizeof(*names), cmp_str);

	int loaded = 0;
	for (size_t i = 0; i < count; i++) {
		char msg[SL_STREAM_MSG_LEN] = "";
		char stem[META_FILE_BUF];
		size_t n = strlen(names[i]) - strlen(META_SUFFIX);
		struct sl_stream_meta *m = NULL;
		int lr;
		if (n >= sizeof(stem)) {
			lr = SLUICE_ERR_CORRUPT;
			set_msg(msg, sizeof(msg), "file name is not a valid stream name");
		} else {
			memcpy(stem, names[i], n);
			stem[n] = '\0';
			lr = sl_stream_name_validate(stem);
			if (lr < 0) {
				lr = SLUICE_ERR_CORRUPT;
				set_msg(msg, sizeof(msg), "file name is not a valid stream name");
			} else {
				lr = load_at(dfd, names[i], stem, &m, msg, sizeof(msg));
			}
		}
		if (lr == -ENOMEM) {
			r = lr;
			goto out;
		}
		if (lr == SLUICE_ERR_STREAM_NOT_FOUND)
			continue; /* removed since the listing */
		if (lr < 0) {
			if (ops->corrupt)
				ops->corrupt(ctx, names[i], lr, msg);
			continue;
		}
		loaded++;
		lr = ops->loaded(ctx, m);
		if (lr < 0) {
			r = lr;
			goto out;
		}
	}
	r = loaded;
out:
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	closedir(d);
	close(dfd);
	return r;
}

int sl_stream_meta_remove(const char *meta_dir, const char *name)
{
	int r = sl_stream_name_validate(name);
	if (r < 0)
		return r;
	int dfd = open_streams_dir(meta_dir, false);
	if (dfd < 0)
		return dfd == -ENOENT ? SLUICE_ERR_STREAM_NOT_FOUND : dfd;
	char file[META_FILE_BUF], tmp[META_FILE_BUF];
	snprintf(file, sizeof(file), "%s" META_SUFFIX, name);
	snprintf(tmp, sizeof(tmp), "%s" TMP_SUFFIX, name);
	if (unlinkat(dfd, file, 0) < 0) {
		r = errno == ENOENT ? SLUICE_ERR_STREAM_NOT_FOUND : -errno;
		goto out;
	}
	unlinkat(dfd, tmp, 0); /* an unfinished save's leftover, if any */
	if (fsync(dfd) < 0)
		r = -errno;
out:
	close(dfd);
	return r;
}

/* ---- names of shards and their folders ---- */

void sl_shard_id_format(uint32_t shard_id, char out[SL_SHARD_ID_BUF])
{
	snprintf(out, SL_SHARD_ID_BUF, "shardId-%012" PRIu32, shard_id);
}

int sl_shard_id_parse(const char *s, size_t len, uint32_t *ret)
{
	static const char prefix[] = "shardId-";
	const size_t pl = sizeof(prefix) - 1;
	if (len <= pl || len > pl + 12 || memcmp(s, prefix, pl) != 0)
		return -EINVAL;
	uint64_t v = 0;
	for (size_t i = pl; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0'); /* 12 digits: no overflow */
	}
	if (v > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

int sl_stream_shard_dir(const char *data_dir, const char *stream, uint32_t shard_id, char *buf,
			size_t len)
{
	int r = sl_stream_name_validate(stream);
	if (r < 0)
		return r;
	char id[SL_SHARD_ID_BUF];
	sl_shard_id_format(shard_id, id);
	int n = snprintf(buf, len, "%s/streams/%s/%s", data_dir, stream, id);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return n;
}
