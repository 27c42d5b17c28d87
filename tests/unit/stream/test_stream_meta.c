#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include <sluice/errors.h>

#include "stream/stream_meta.h"

#define DAY_MS (24ll * 3600 * 1000)
#define NOW_MS 1764291723000ll

/* ---- helpers ---- */

static char *make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[PATH_MAX];
	snprintf(tmpl, sizeof(tmpl), "%s/sl-stream-test-XXXXXX", base && *base ? base : "/tmp");
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char p[PATH_MAX];
			snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
			rm_rf(p);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char p[2 * PATH_MAX];
	snprintf(p, sizeof(p), "%s/streams/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static bool file_exists(const char *dir, const char *name)
{
	char p[2 * PATH_MAX];
	snprintf(p, sizeof(p), "%s/streams/%s", dir, name);
	return access(p, F_OK) == 0;
}

static struct sl_stream_meta *new_stream(const char *name, uint32_t shards)
{
	struct sl_stream_meta *m = NULL;
	assert_int_equal(sl_stream_meta_create(name, shards, DAY_MS, NOW_MS, &m), 0);
	return m;
}

static sl_u128 dec(const char *s)
{
	sl_u128 v = 0;
	assert_int_equal(sl_u128_parse_str(s, &v), 0);
	return v;
}

static void assert_meta_equal(const struct sl_stream_meta *a, const struct sl_stream_meta *b)
{
	assert_string_equal(a->name, b->name);
	assert_int_equal(a->retention_ms, b->retention_ms);
	assert_int_equal(a->created_ms, b->created_ms);
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->next_shard_id, b->next_shard_id);
	assert_int_equal(a->shard_count, b->shard_count);
	for (size_t i = 0; i < a->shard_count; i++) {
		const struct sl_shard_meta *x = &a->shards[i], *y = &b->shards[i];
		assert_int_equal(x->shard_id, y->shard_id);
		assert_int_equal(x->parent_id, y->parent_id);
		assert_int_equal(x->adjacent_parent_id, y->adjacent_parent_id);
		assert_true(x->start_key == y->start_key);
		assert_true(x->end_key == y->end_key);
		assert_int_equal(x->start_seq, y->start_seq);
		assert_int_equal(x->end_seq, y->end_seq);
		assert_int_equal(x->state, y->state);
		assert_int_equal(x->created_ms, y->created_ms);
		assert_int_equal(x->closed_ms, y->closed_ms);
	}
	assert_int_equal(a->tag_count, b->tag_count);
	for (size_t i = 0; i < a->tag_count; i++) {
		assert_string_equal(a->tags[i].key, b->tags[i].key);
		assert_string_equal(a->tags[i].value, b->tags[i].value);
	}
}

/* The open shards cover [0, 2^128 - 1] with no gap and no overlap. */
/* m -> JSON -> a meta equal to m; returns the JSON (free() it) and its length. */
static char *assert_json_roundtrip(const struct sl_stream_meta *m, size_t *len)
{
	char *json, msg[SL_STREAM_MSG_LEN];
	assert_int_equal(sl_stream_meta_to_json(m, &json, len), 0);
	struct sl_stream_meta *back;
	assert_int_equal(sl_stream_meta_from_json(json, *len, &back, msg, sizeof(msg)), 0);
	assert_meta_equal(m, back);
	sl_stream_meta_destroy(back);
	return json;
}

static void assert_exact_cover(const struct sl_stream_meta *m)
{
	sl_u128 next = 0;
	bool done = false;
	size_t open = sl_stream_meta_open_shard_count(m);
	for (size_t k = 0; k < open; k++) {
		const struct sl_shard_meta *found = NULL;
		for (size_t i = 0; i < m->shard_count; i++)
			if (m->shards[i].state == SL_SHARD_OPEN && m->shards[i].start_key == next) {
				assert_null(found); /* overlap */
				found = &m->shards[i];
			}
		assert_non_null(found); /* gap */
		assert_false(done);
		if (found->end_key == SL_U128_MAX)
			done = true;
		else
			next = found->end_key + 1;
	}
	assert_true(done);
	struct sl_shard_map *map;
	assert_int_equal(sl_stream_meta_shard_map(m, &map), 0);
	sl_shard_map_destroy(map);
	assert_int_equal(sl_stream_meta_check(m, NULL, 0), 0);
}

/* ---- names ---- */

static void names(void **state)
{
	char long_name[SLUICE_NAME_LEN_MAX + 2];
	memset(long_name, 'a', sizeof(long_name));
	long_name[SLUICE_NAME_LEN_MAX + 1] = '\0';
	assert_int_equal(sl_stream_name_validate(long_name), SLUICE_ERR_INVALID_NAME); /* 129 */
	long_name[SLUICE_NAME_LEN_MAX] = '\0';
	assert_int_equal(sl_stream_name_validate(long_name), 0); /* 128 */

	static const char *good[] = {"a",	"orders", "Orders_2026.v1-x", "...", "a..b",
				     ".hidden", "0"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(sl_stream_name_validate(good[i]), 0);
	static const char *bad[] = {"",	   ".",	   "..", "../x", "a/b", "/abs",
				    "a b", "a\\b", "ü",	 "a\nb", "x:y", "a*"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sl_stream_name_validate(bad[i]), SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sl_stream_name_validate(NULL), SLUICE_ERR_INVALID_NAME);

	struct sl_stream_meta *m = (struct sl_stream_meta *)0x1;
	assert_int_equal(sl_stream_meta_create("../x", 1, DAY_MS, NOW_MS, &m),
			 SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sl_stream_meta_create("a/b", 1, DAY_MS, NOW_MS, &m),
			 SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sl_stream_meta_create("", 1, DAY_MS, NOW_MS, &m), SLUICE_ERR_INVALID_NAME);
	memset(long_name, 'a', sizeof(long_name));
	long_name[SLUICE_NAME_LEN_MAX + 1] = '\0';
	assert_int_equal(sl_stream_meta_create(long_name, 1, DAY_MS, NOW_MS, &m),
			 SLUICE_ERR_INVALID_NAME);
	assert_ptr_equal(m, (struct sl_stream_meta *)0x1);

	/* No path is ever built from a bad name. */
	char *dir = make_tmpdir();
	char buf[PATH_MAX];
	assert_int_equal(sl_stream_shard_dir(dir, "../x", 0, buf, sizeof(buf)),
			 SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sl_stream_meta_remove(dir, "../x"), SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sl_stream_meta_load(dir, "a/b", &m, NULL, 0), SLUICE_ERR_INVALID_NAME);
	rm_rf(dir);
	free(dir);
}

static void shard_names(void **state)
{
	char id[SL_SHARD_ID_BUF];
	sl_shard_id_format(0, id);
	assert_string_equal(id, "shardId-000000000000");
	sl_shard_id_format(UINT32_MAX, id);
	assert_string_equal(id, "shardId-004294967295");
	uint32_t v;
	assert_int_equal(sl_shard_id_parse("shardId-000000000042", 20, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(sl_shard_id_parse("shardId-7", 9, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(sl_shard_id_parse("shardId-", 8, &v), -EINVAL);
	assert_int_equal(sl_shard_id_parse("shardId-0000000000001", 21, &v), -EINVAL);
	assert_int_equal(sl_shard_id_parse("shardId-004294967296", 20, &v), -EINVAL);
	assert_int_equal(sl_shard_id_parse("shardid-1", 9, &v), -EINVAL);
	assert_int_equal(sl_shard_id_parse("shardId-1x", 10, &v), -EINVAL);

	char buf[128];
	assert_int_equal(sl_stream_shard_dir("/data", "orders", 3, buf, sizeof(buf)),
			 (int)strlen("/data/streams/orders/shardId-000000000003"));
	assert_string_equal(buf, "/data/streams/orders/shardId-000000000003");
	assert_int_equal(sl_stream_shard_dir("/data", "orders", 3, buf, 10), -ENAMETOOLONG);
	assert_int_equal(sl_stream_shard_dir("/data", "..", 3, buf, sizeof(buf)),
			 SLUICE_ERR_INVALID_NAME);
}

/* ---- create ---- */

static void create(void **state)
{
	struct sl_stream_meta *m = new_stream("orders", 4);
	assert_string_equal(m->name, "orders");
	assert_int_equal(m->retention_ms, DAY_MS);
	assert_int_equal(m->created_ms, NOW_MS);
	assert_int_equal(m->status, SL_STREAM_ACTIVE);
	assert_int_equal(m->shard_count, 4);
	assert_int_equal(m->next_shard_id, 4);
	assert_true(m->shards[1].start_key == dec("85070591730234615865843651857942052864"));
	assert_true(m->shards[0].end_key == dec("85070591730234615865843651857942052863"));
	for (uint32_t i = 0; i < 4; i++) {
		assert_int_equal(m->shards[i].shard_id, i);
		assert_int_equal(m->shards[i].parent_id, -1);
		assert_int_equal(m->shards[i].adjacent_parent_id, -1);
		assert_int_equal(m->shards[i].start_seq, 1);
		assert_int_equal(m->shards[i].end_seq, 0);
		assert_int_equal(m->shards[i].state, SL_SHARD_OPEN);
	}
	assert_exact_cover(m);
	assert_non_null(sl_stream_meta_find_shard(m, 3));
	assert_null(sl_stream_meta_find_shard(m, 4));
	sl_stream_meta_destroy(m);
	sl_stream_meta_destroy(NULL);

	m = new_stream("big", SLUICE_SHARDS_MAX);
	assert_exact_cover(m);
	sl_stream_meta_destroy(m);

	struct sl_stream_meta *x = NULL;
	assert_int_equal(sl_stream_meta_create("s", 0, DAY_MS, NOW_MS, &x),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_stream_meta_create("s", SLUICE_SHARDS_MAX + 1, DAY_MS, NOW_MS, &x),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_stream_meta_create("s", 1, 999, NOW_MS, &x),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_stream_meta_create("s", 1, SL_STREAM_RETENTION_MS_MAX + 1, NOW_MS, &x),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_stream_meta_create("s", 1, DAY_MS, -1, &x),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_null(x);
	assert_int_equal(sl_stream_meta_create("s", 1, 1000, NOW_MS, &x), 0); /* short: tests */
	sl_stream_meta_destroy(x);
	assert_int_equal(sl_stream_meta_create("s", 1, SL_STREAM_RETENTION_MS_MAX, 0, &x), 0);
	sl_stream_meta_destroy(x);
}

static void tags(void **state)
{
	struct sl_stream_meta *m = new_stream("t", 1);
	assert_int_equal(sl_stream_meta_set_tag(m, "team", "payments"), 0);
	assert_int_equal(sl_stream_meta_set_tag(m, "env", ""), 0);
	assert_int_equal(sl_stream_meta_set_tag(m, "team", "billing"), 0); /* replace in place */
	assert_int_equal(m->tag_count, 2);
	assert_string_equal(m->tags[0].key, "team");
	assert_string_equal(sl_stream_meta_get_tag(m, "team"), "billing");
	assert_string_equal(sl_stream_meta_get_tag(m, "env"), "");
	assert_null(sl_stream_meta_get_tag(m, "nope"));
	assert_int_equal(sl_stream_meta_set_tag(m, "", "x"), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_stream_meta_set_tag(m, "bad", "\xff"), SLUICE_ERR_INVALID_ARGUMENT);
	char big[SL_STREAM_TAG_VALUE_LEN_MAX + 2];
	memset(big, 'v', sizeof(big));
	big[SL_STREAM_TAG_VALUE_LEN_MAX + 1] = '\0';
	assert_int_equal(sl_stream_meta_set_tag(m, "k", big), SLUICE_ERR_INVALID_ARGUMENT);
	big[SL_STREAM_TAG_VALUE_LEN_MAX] = '\0';
	assert_int_equal(sl_stream_meta_set_tag(m, "k", big), 0);
	big[SL_STREAM_TAG_KEY_LEN_MAX + 1] = '\0';
	assert_int_equal(sl_stream_meta_set_tag(m, big, "v"), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_stream_meta_remove_tag(m, "k"), 0);
	assert_int_equal(sl_stream_meta_remove_tag(m, "k"), -ENOENT);
	assert_int_equal(sl_stream_meta_set_tag(m, "ünïcödé", "値"), 0);
	while (m->tag_count < SL_STREAM_TAGS_MAX) {
		char k[16];
		snprintf(k, sizeof(k), "k%zu", m->tag_count);
		assert_int_equal(sl_stream_meta_set_tag(m, k, "v"), 0);
	}
	assert_int_equal(sl_stream_meta_set_tag(m, "one-more", "v"), SLUICE_ERR_LIMIT_EXCEEDED);
	assert_int_equal(sl_stream_meta_set_tag(m, "team", "still-replaceable"), 0);

	/* Tags survive JSON and clone. */
	char *json;
	size_t len;
	assert_int_equal(sl_stream_meta_to_json(m, &json, &len), 0);
	struct sl_stream_meta *back;
	assert_int_equal(sl_stream_meta_from_json(json, len, &back, NULL, 0), 0);
	assert_meta_equal(m, back);
	struct sl_stream_meta *c;
	assert_int_equal(sl_stream_meta_clone(m, &c), 0);
	assert_meta_equal(m, c);
	free(json);
	sl_stream_meta_destroy(back);
	sl_stream_meta_destroy(c);
	sl_stream_meta_destroy(m);
}

/* ---- resharding ---- */

static void split(void **state)
{
	struct sl_stream_meta *m = new_stream("s", 2);
	char msg[SL_STREAM_MSG_LEN];
	uint32_t kids[2];
	sl_u128 mid0 = m->shards[0].end_key / 2;

	/* Kinesis' rules: strictly inside, above the start; open shard; known shard. */
	assert_int_equal(sl_stream_meta_split(m, 0, 0, 0, kids, msg, sizeof(msg)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_true(strlen(msg) > 0);
	assert_int_equal(
	    sl_stream_meta_split(m, 0, m->shards[0].end_key + 1, 0, kids, msg, sizeof(msg)),
	    SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(
	    sl_stream_meta_split(m, 1, m->shards[1].start_key, 0, kids, msg, sizeof(msg)),
	    SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_stream_meta_split(m, 9, mid0, 0, kids, msg, sizeof(msg)),
			 SLUICE_ERR_SHARD_NOT_FOUND);
	assert_int_equal(m->shard_count, 2); /* unchanged */

	/* Split shard 0 after 41 records (seq 1..41). */
	assert_int_equal(sl_stream_meta_split(m, 0, mid0, 41, kids, msg, sizeof(msg)), 0);
	assert_int_equal(kids[0], 2);
	assert_int_equal(kids[1], 3);
	assert_int_equal(m->shard_count, 4);
	assert_int_equal(m->next_shard_id, 4);
	const struct sl_shard_meta *p = sl_stream_meta_find_shard(m, 0);
	const struct sl_shard_meta *a = sl_stream_meta_find_shard(m, 2);
	const struct sl_shard_meta *b = sl_stream_meta_find_shard(m, 3);
	assert_int_equal(p->state, SL_SHARD_CLOSED);
	assert_int_equal(p->end_seq, 41);
	assert_true(a->start_key == 0 && a->end_key == mid0 - 1);
	assert_true(b->start_key == mid0 && b->end_key == p->end_key);
	assert_int_equal(a->parent_id, 0);
	assert_int_equal(b->parent_id, 0);
	assert_int_equal(a->adjacent_parent_id, -1);
	assert_int_equal(a->start_seq, 42);
	assert_int_equal(b->start_seq, 42);
	assert_int_equal(a->state, SL_SHARD_OPEN);
	assert_exact_cover(m);

	/* A closed shard cannot be split again. */
	assert_int_equal(sl_stream_meta_split(m, 0, 5, 41, kids, msg, sizeof(msg)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	/* end_seq below start_seq - 1 is a caller bug the metadata refuses. */
	assert_int_equal(sl_stream_meta_split(m, 2, 5, 10, kids, msg, sizeof(msg)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	/* Empty shard: end_seq = start_seq - 1. Split at the last key: a one-key child. */
	assert_int_equal(sl_stream_meta_split(m, 3, b->end_key, 41, kids, msg, sizeof(msg)), 0);
	const struct sl_shard_meta *one = sl_stream_meta_find_shard(m, kids[1]);
	assert_true(one->start_key == one->end_key);
	assert_int_equal(one->start_seq, 42);
	/* Split at start + 1: a one-key first child. */
	assert_int_equal(
	    sl_stream_meta_split(m, 1, m->shards[1].start_key + 1, 0, kids, msg, sizeof(msg)), 0);
	assert_true(sl_stream_meta_find_shard(m, kids[0])->start_key ==
		    sl_stream_meta_find_shard(m, kids[0])->end_key);
	assert_exact_cover(m);

	/* Routing follows the split. */
	struct sl_shard_map *map;
	assert_int_equal(sl_stream_meta_shard_map(m, &map), 0);
	assert_int_equal(sl_shard_map_find(map, 0), 2);
	assert_int_equal(sl_shard_map_find(map, mid0 - 1), 2);
	assert_int_equal(sl_shard_map_find(map, mid0), 4); /* first child of 3 */
	assert_int_equal(sl_shard_map_find(map, SL_U128_MAX), 7);
	sl_shard_map_destroy(map);

	/* Created with the stream; split and merge leave the times to the stamp. */
	assert_int_equal(sl_stream_meta_find_shard(m, 1)->created_ms, NOW_MS);
	assert_int_equal(sl_stream_meta_find_shard(m, 1)->closed_ms, 0);

	/* A deleting stream cannot be resharded. */
	m->status = SL_STREAM_DELETING;
	assert_int_equal(sl_stream_meta_split(m, 2, 5, 41, kids, msg, sizeof(msg)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	sl_stream_meta_destroy(m);
}

static void reshard_times(void **state)
{
	struct sl_stream_meta *m = new_stream("s", 2);
	char msg[SL_STREAM_MSG_LEN];
	uint32_t kids[2], merged;
	/* Split 0 at T+10: its children are created and it is closed then; 1 is untouched. */
	uint32_t first = m->next_shard_id;
	assert_int_equal(
	    sl_stream_meta_split(m, 0, m->shards[0].end_key / 2, 7, kids, msg, sizeof(msg)), 0);
	sl_stream_meta_stamp_reshard(m, first, NOW_MS + 10);
	assert_int_equal(sl_stream_meta_find_shard(m, 0)->closed_ms, NOW_MS + 10);
	assert_int_equal(sl_stream_meta_find_shard(m, 0)->created_ms, NOW_MS);
	assert_int_equal(sl_stream_meta_find_shard(m, kids[0])->created_ms, NOW_MS + 10);
	assert_int_equal(sl_stream_meta_find_shard(m, kids[1])->closed_ms, 0);
	assert_int_equal(sl_stream_meta_find_shard(m, 1)->closed_ms, 0);
	/* Merge the two children at T+20: 0 keeps its first closing time. */
	first = m->next_shard_id;
	assert_int_equal(sl_stream_meta_merge(m, kids[0], kids[1], 7, 7, &merged, msg, sizeof(msg)),
			 0);
	sl_stream_meta_stamp_reshard(m, first, NOW_MS + 20);
	assert_int_equal(sl_stream_meta_find_shard(m, kids[0])->closed_ms, NOW_MS + 20);
	assert_int_equal(sl_stream_meta_find_shard(m, kids[1])->closed_ms, NOW_MS + 20);
	assert_int_equal(sl_stream_meta_find_shard(m, merged)->created_ms, NOW_MS + 20);
	assert_int_equal(sl_stream_meta_find_shard(m, 0)->closed_ms, NOW_MS + 10);

	/* The times survive JSON; metadata without them (older versions) reads as unknown. */
	size_t len;
	char *json = assert_json_roundtrip(m, &len);
	json_t *root = json_loadb(json, len, 0, NULL);
	free(json);
	struct sl_stream_meta *back;
	json_t *shards = json_object_get(root, "shards");
	for (size_t i = 0; i < json_array_size(shards); i++) {
		json_object_del(json_array_get(shards, i), "created_ms");
		json_object_del(json_array_get(shards, i), "closed_ms");
	}
	json = json_dumps(root, 0);
	json_decref(root);
	assert_int_equal(sl_stream_meta_from_json(json, strlen(json), &back, msg, sizeof(msg)), 0);
	free(json);
	for (size_t i = 0; i < back->shard_count; i++)
		assert_true(back->shards[i].created_ms == 0 && back->shards[i].closed_ms == 0);
	sl_stream_meta_destroy(back);
	sl_stream_meta_destroy(m);
}

static void merge(void **state)
{
	struct sl_stream_meta *m = new_stream("m", 4);
	char msg[SL_STREAM_MSG_LEN];
	uint32_t child = 99;
	assert_int_equal(sl_stream_meta_merge(m, 0, 2, 0, 0, &child, msg, sizeof(msg)),
			 SLUICE_ERR_INVALID_ARGUMENT); /* not adjacent */
	assert_true(strstr(msg, "adjacent") != NULL);
	assert_int_equal(sl_stream_meta_merge(m, 0, 3, 0, 0, &child, msg, sizeof(msg)),
			 SLUICE_ERR_INVALID_ARGUMENT); /* the ends of the space do not wrap */
	assert_int_equal(sl_stream_meta_merge(m, 1, 1, 0, 0, &child, msg, sizeof(msg)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_stream_meta_merge(m, 1, 7, 0, 0, &child, msg, sizeof(msg)),
			 SLUICE_ERR_SHARD_NOT_FOUND);
	assert_int_equal(child, 99);

	/* Either order: shard 2 with its left neighbour 1. */
	assert_int_equal(sl_stream_meta_merge(m, 2, 1, 100, 250, &child, msg, sizeof(msg)), 0);
	assert_int_equal(child, 4);
	const struct sl_shard_meta *c = sl_stream_meta_find_shard(m, 4);
	assert_int_equal(c->parent_id, 2);
	assert_int_equal(c->adjacent_parent_id, 1);
	assert_true(c->start_key == m->shards[1].start_key);
	assert_true(c->end_key == m->shards[2].end_key);
	assert_int_equal(c->start_seq, 251);
	assert_int_equal(m->shards[1].state, SL_SHARD_CLOSED);
	assert_int_equal(m->shards[1].end_seq, 250);
	assert_int_equal(m->shards[2].end_seq, 100);
	assert_exact_cover(m);

	/* Closed shards cannot be merged again. */
	assert_int_equal(sl_stream_meta_merge(m, 1, 0, 250, 0, &child, msg, sizeof(msg)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	/* Merge everything back into one shard, then split it again. */
	assert_int_equal(sl_stream_meta_merge(m, 0, 4, 0, 251, &child, msg, sizeof(msg)), 0);
	assert_int_equal(sl_stream_meta_merge(m, 3, child, 0, 400, &child, msg, sizeof(msg)), 0);
	assert_int_equal(sl_stream_meta_open_shard_count(m), 1);
	c = sl_stream_meta_find_shard(m, child);
	assert_true(c->start_key == 0 && c->end_key == SL_U128_MAX);
	assert_int_equal(c->start_seq, 401);
	assert_exact_cover(m);
	uint32_t kids[2];
	assert_int_equal(
	    sl_stream_meta_split(m, child, (sl_u128)1 << 127, 500, kids, msg, sizeof(msg)), 0);
	assert_exact_cover(m);

	/* The whole history survives JSON. */
	size_t len;
	free(assert_json_roundtrip(m, &len));
	sl_stream_meta_destroy(m);
}

static void reshard_limits(void **state)
{
	struct sl_stream_meta *m = new_stream("full", SLUICE_SHARDS_MAX);
	char msg[SL_STREAM_MSG_LEN];
	assert_int_equal(sl_stream_meta_split(m, 0, 1, 0, NULL, msg, sizeof(msg)),
			 SLUICE_ERR_LIMIT_EXCEEDED);
	sl_stream_meta_destroy(m);

	/* Listed (open + closed) shards are bounded too: split/merge the same range forever. */
	m = new_stream("churn", 1);
	uint32_t id = 0, kids[2];
	int r = 0;
	for (int i = 0; i < SL_STREAM_SHARD_RECORDS_MAX && r == 0; i++) {
		r = sl_stream_meta_split(m, id, (sl_u128)1 << 127, 0, kids, msg, sizeof(msg));
		if (r == 0)
			r = sl_stream_meta_merge(m, kids[0], kids[1], 0, 0, &id, msg, sizeof(msg));
	}
	assert_int_equal(r, SLUICE_ERR_LIMIT_EXCEEDED);
	assert_true(m->shard_count <= SL_STREAM_SHARD_RECORDS_MAX);
	assert_exact_cover(m);
	sl_stream_meta_destroy(m);
}

/* ---- JSON validation ---- */

typedef void (*mutate_fn)(json_t *root);

static json_t *shard0(json_t *root)
{
	return json_array_get(json_object_get(root, "shards"), 0);
}

static void m_format(json_t *r)
{
	json_object_set_new(r, "format", json_integer(2));
}
static void m_name_type(json_t *r)
{
	json_object_set_new(r, "name", json_integer(5));
}
static void m_name_slash(json_t *r)
{
	json_object_set_new(r, "name", json_string("../etc"));
}
static void m_name_missing(json_t *r)
{
	json_object_del(r, "name");
}
static void m_retention_type(json_t *r)
{
	json_object_set_new(r, "retention_ms", json_string("86400000"));
}
static void m_retention_small(json_t *r)
{
	json_object_set_new(r, "retention_ms", json_integer(10));
}
static void m_retention_real(json_t *r)
{
	json_object_set_new(r, "retention_ms", json_real(86400000.0));
}
static void m_created_neg(json_t *r)
{
	json_object_set_new(r, "created_ms", json_integer(-5));
}
static void m_status(json_t *r)
{
	json_object_set_new(r, "status", json_string("ACTIVE"));
}
static void m_next_id(json_t *r)
{
	json_object_set_new(r, "next_shard_id", json_integer(1)); /* ids 0..3 exist */
}
static void m_shards_type(json_t *r)
{
	json_object_set_new(r, "shards", json_object());
}
static void m_shards_empty(json_t *r)
{
	json_array_clear(json_object_get(r, "shards"));
}
static void m_shard_not_obj(json_t *r)
{
	json_array_set_new(json_object_get(r, "shards"), 0, json_string("x"));
}
static void m_shard_id_type(json_t *r)
{
	json_object_set_new(shard0(r), "id", json_string("0"));
}
static void m_shard_dup_id(json_t *r)
{
	json_object_set_new(shard0(r), "id", json_integer(1));
}
static void m_shard_id_big(json_t *r)
{
	json_object_set_new(shard0(r), "id", json_integer(1ll << 40));
}
static void m_parent(json_t *r)
{
	json_object_set_new(shard0(r), "parent_id", json_integer(-2));
}
static void m_parent_self(json_t *r)
{
	json_object_set_new(shard0(r), "parent_id", json_integer(0));
}
static void m_key_type(json_t *r)
{
	json_object_set_new(shard0(r), "start_hash_key", json_integer(0));
}
static void m_key_leading_zero(json_t *r)
{
	json_object_set_new(shard0(r), "start_hash_key", json_string("00"));
}
static void m_key_big(json_t *r)
{
	json_object_set_new(shard0(r), "end_hash_key",
			    json_string("340282366920938463463374607431768211456"));
}
static void m_key_gap(json_t *r)
{
	json_object_set_new(shard0(r), "end_hash_key", json_string("5"));
}
static void m_key_inverted(json_t *r)
{
	json_object_set_new(shard0(r), "start_hash_key",
			    json_string("340282366920938463463374607431768211455"));
}
static void m_seq_type(json_t *r)
{
	json_object_set_new(shard0(r), "start_seq", json_integer(1));
}
static void m_seq_big(json_t *r)
{
	json_object_set_new(shard0(r), "start_seq", json_string("18446744073709551616"));
}
static void m_seq_zero(json_t *r)
{
	json_object_set_new(shard0(r), "start_seq", json_string("0"));
}
static void m_open_end_seq(json_t *r)
{
	json_object_set_new(shard0(r), "end_seq", json_string("7"));
}
static void m_state(json_t *r)
{
	json_object_set_new(shard0(r), "state", json_string("half-open"));
}
static void m_closed_gap(json_t *r)
{
	/* Closing a shard without children leaves its range unowned. */
	json_object_set_new(shard0(r), "state", json_string("closed"));
}
static void m_created_type(json_t *r)
{
	json_object_set_new(shard0(r), "created_ms", json_string("yesterday"));
}
static void m_closed_open(json_t *r)
{
	json_object_set_new(shard0(r), "closed_ms", json_integer(5));
}
static void m_tags_type(json_t *r)
{
	json_object_set_new(r, "tags", json_array());
}
static void m_tag_value_type(json_t *r)
{
	json_object_set_new(json_object_get(r, "tags"), "k", json_integer(1));
}
static void m_tag_key_empty(json_t *r)
{
	json_object_set_new(json_object_get(r, "tags"), "", json_string("v"));
}
static void m_tags_many(json_t *r)
{
	for (int i = 0; i <= SL_STREAM_TAGS_MAX; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		json_object_set_new(json_object_get(r, "tags"), k, json_string("v"));
	}
}
static void m_root_array(json_t *r)
{
	/* handled by the caller: replaced by an array */
}

static void corrupt_json(void **state)
{
	struct sl_stream_meta *m = new_stream("orders", 4);
	assert_int_equal(sl_stream_meta_set_tag(m, "team", "payments"), 0);
	char *json;
	size_t len;
	assert_int_equal(sl_stream_meta_to_json(m, &json, &len), 0);
	sl_stream_meta_destroy(m);

	static const struct {
		const char *what;
		mutate_fn fn;
	} cases[] = {
	    {"format", m_format},
	    {"name", m_name_type},
	    {"name", m_name_slash},
	    {"name", m_name_missing},
	    {"retention_ms", m_retention_type},
	    {"retention_ms", m_retention_small},
	    {"retention_ms", m_retention_real},
	    {"created_ms", m_created_neg},
	    {"status", m_status},
	    {"next_shard_id", m_next_id},
	    {"shards", m_shards_type},
	    {"shards", m_shards_empty},
	    {"shards[0]", m_shard_not_obj},
	    {"shards[0].id", m_shard_id_type},
	    {"shards[1].id", m_shard_dup_id},
	    {"shards[0].id", m_shard_id_big},
	    {"shards[0].parent_id", m_parent},
	    {"shards[0].parent_id", m_parent_self},
	    {"shards[0].start_hash_key", m_key_type},
	    {"shards[0].start_hash_key", m_key_leading_zero},
	    {"shards[0].end_hash_key", m_key_big},
	    {"cover", m_key_gap},
	    {"shards[0]", m_key_inverted},
	    {"shards[0].start_seq", m_seq_type},
	    {"shards[0].start_seq", m_seq_big},
	    {"shards[0].start_seq", m_seq_zero},
	    {"shards[0].end_seq", m_open_end_seq},
	    {"shards[0].state", m_state},
	    {"shards[0].created_ms", m_created_type},
	    {"shards[0].closed_ms", m_closed_open},
	    {"cover", m_closed_gap},
	    {"tags", m_tags_type},
	    {"tags.k", m_tag_value_type},
	    {"tag key", m_tag_key_empty},
	    {"tags", m_tags_many},
	    {"document", m_root_array},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *root = json_loadb(json, len, 0, NULL);
		assert_non_null(root);
		if (cases[i].fn == m_root_array) {
			json_decref(root);
			root = json_array();
		} else {
			cases[i].fn(root);
		}
		char *bad = json_dumps(root, 0);
		json_decref(root);
		struct sl_stream_meta *out = (struct sl_stream_meta *)0x1;
		char msg[SL_STREAM_MSG_LEN] = "";
		int r = sl_stream_meta_from_json(bad, strlen(bad), &out, msg, sizeof(msg));
		if (r != SLUICE_ERR_CORRUPT)
			fail_msg("case %zu (%s): got %d", i, cases[i].what, r);
		assert_ptr_equal(out, (struct sl_stream_meta *)0x1);
		if (!strstr(msg, cases[i].what))
			fail_msg("case %zu: message \"%s\" does not name %s", i, msg,
				 cases[i].what);
		free(bad);
	}

	/* Raw text: syntax errors, duplicates, NULs, truncation, nothing at all. */
	static const char *raw[] = {
	    "",
	    "{",
	    "not json",
	    "{\"format\": 1, \"format\": 1}",
	    "{\"format\": 1, \"name\": \"a\\u0000b\"}",
	    "[]",
	    "null",
	    "{\"format\": 99999999999999999999999}",
	};
	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
		struct sl_stream_meta *out = NULL;
		char msg[SL_STREAM_MSG_LEN] = "";
		assert_int_equal(
		    sl_stream_meta_from_json(raw[i], strlen(raw[i]), &out, msg, sizeof(msg)),
		    SLUICE_ERR_CORRUPT);
		assert_null(out);
		assert_true(strlen(msg) > 0);
	}
	/* Every truncation of a good document is rejected cleanly. */
	for (size_t cut = 0; cut + 2 < len; cut += 7) {
		struct sl_stream_meta *out = NULL;
		assert_int_equal(sl_stream_meta_from_json(json, cut, &out, NULL, 0),
				 SLUICE_ERR_CORRUPT);
	}
	/* Unknown fields are ignored (forward compatibility). */
	json_t *root = json_loadb(json, len, 0, NULL);
	json_object_set_new(root, "future_field", json_true());
	char *extra = json_dumps(root, 0);
	json_decref(root);
	struct sl_stream_meta *out = NULL;
	assert_int_equal(sl_stream_meta_from_json(extra, strlen(extra), &out, NULL, 0), 0);
	sl_stream_meta_destroy(out);
	free(extra);
	free(json);
}

/* ---- files ---- */

struct loaded {
	struct sl_stream_meta *metas[16];
	int count;
	char corrupt[16][64];
	int corrupt_errs[16];
	int corrupt_count;
};

static int on_loaded(void *ctx, struct sl_stream_meta *meta)
{
	struct loaded *l = ctx;
	assert_true(l->count < 16);
	l->metas[l->count++] = meta;
	return 0;
}

static void on_corrupt(void *ctx, const char *file_name, int err, const char *msg)
{
	struct loaded *l = ctx;
	assert_true(l->corrupt_count < 16);
	assert_true(strlen(msg) > 0);
	snprintf(l->corrupt[l->corrupt_count], sizeof(l->corrupt[0]), "%s", file_name);
	l->corrupt_errs[l->corrupt_count++] = err;
}

static void loaded_finish(struct loaded *l)
{
	for (int i = 0; i < l->count; i++)
		sl_stream_meta_destroy(l->metas[i]);
	memset(l, 0, sizeof(*l));
}

static const struct sl_stream_meta_load_ops ops = {on_loaded, on_corrupt};

static void save_load(void **state)
{
	char *tmp = make_tmpdir();
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/meta", tmp); /* created by the first save */

	struct loaded l = {0};
	assert_int_equal(sl_stream_meta_load_all(dir, &ops, &l), 0); /* nothing yet */

	struct sl_stream_meta *a = new_stream("alpha", 3), *b = new_stream("beta", 1);
	assert_int_equal(sl_stream_meta_set_tag(a, "owner", "me"), 0);
	assert_int_equal(sl_stream_meta_split(a, 1, a->shards[1].start_key + 10, 5, NULL, NULL, 0),
			 0);
	b->status = SL_STREAM_DELETING;
	assert_int_equal(sl_stream_meta_save(dir, a), 0);
	assert_int_equal(sl_stream_meta_save(dir, b), 0);
	assert_true(file_exists(dir, "alpha.json"));
	assert_false(file_exists(dir, "alpha.json.tmp"));

	struct sl_stream_meta *x;
	char msg[SL_STREAM_MSG_LEN];
	assert_int_equal(sl_stream_meta_load(dir, "alpha", &x, msg, sizeof(msg)), 0);
	assert_meta_equal(a, x);
	sl_stream_meta_destroy(x);
	assert_int_equal(sl_stream_meta_load(dir, "gamma", &x, msg, sizeof(msg)),
			 SLUICE_ERR_STREAM_NOT_FOUND);

	/* Saving again replaces the file. */
	a->retention_ms = 2 * DAY_MS;
	assert_int_equal(sl_stream_meta_save(dir, a), 0);

	assert_int_equal(sl_stream_meta_load_all(dir, &ops, &l), 2);
	assert_int_equal(l.count, 2);
	assert_int_equal(l.corrupt_count, 0);
	assert_meta_equal(a, l.metas[0]); /* name order */
	assert_meta_equal(b, l.metas[1]);
	loaded_finish(&l);

	/* Removing. */
	assert_int_equal(sl_stream_meta_remove(dir, "beta"), 0);
	assert_false(file_exists(dir, "beta.json"));
	assert_int_equal(sl_stream_meta_remove(dir, "beta"), SLUICE_ERR_STREAM_NOT_FOUND);
	assert_int_equal(sl_stream_meta_load_all(dir, &ops, &l), 1);
	loaded_finish(&l);

	/* A bad meta is never written. */
	strcpy(b->name, "../evil");
	assert_int_equal(sl_stream_meta_save(dir, b), SLUICE_ERR_INVALID_ARGUMENT);
	strcpy(b->name, "beta");
	b->shards[0].end_key--;
	assert_int_equal(sl_stream_meta_save(dir, b), SLUICE_ERR_INVALID_ARGUMENT);
	assert_false(file_exists(dir, "beta.json"));
	assert_false(file_exists(dir, "beta.json.tmp"));

	sl_stream_meta_destroy(a);
	sl_stream_meta_destroy(b);
	rm_rf(tmp);
	free(tmp);
}

static void atomic_and_corrupt_files(void **state)
{
	char *dir = make_tmpdir();
	struct sl_stream_meta *a = new_stream("alpha", 2);
	assert_int_equal(sl_stream_meta_save(dir, a), 0);

	/* A crash mid-save leaves NAME.json.tmp (possibly torn): it is ignored... */
	write_file(dir, "alpha.json.tmp", "{\"format\": 1, \"name\": \"al");
	write_file(dir, "newborn.json.tmp", "{");
	/* ...while broken files are reported by name and loading goes on. */
	write_file(dir, "broken.json", "{\"format\": 1, ");
	write_file(dir, "typed.json",
		   "{\"format\": 1, \"name\": \"typed\", \"retention_ms\": \"x\"}");
	write_file(dir, "bad name.json", "{}");
	write_file(dir, "empty.json", "");
	write_file(dir, "notes.txt", "ignored");
	/* A file whose content names another stream. */
	char *json;
	size_t len;
	assert_int_equal(sl_stream_meta_to_json(a, &json, &len), 0);
	write_file(dir, "impostor.json", json);
	free(json);
	char sub[PATH_MAX];
	snprintf(sub, sizeof(sub), "%s/streams/folder.json", dir);
	assert_int_equal(mkdir(sub, 0755), 0);

	struct loaded l = {0};
	assert_int_equal(sl_stream_meta_load_all(dir, &ops, &l), 1);
	assert_int_equal(l.count, 1);
	assert_string_equal(l.metas[0]->name, "alpha");
	assert_meta_equal(a, l.metas[0]);
	static const char *want[] = {"bad name.json", "broken.json",   "empty.json",
				     "folder.json",   "impostor.json", "typed.json"};
	assert_int_equal(l.corrupt_count, 6);
	for (int i = 0; i < 6; i++) {
		assert_string_equal(l.corrupt[i], want[i]);
		assert_int_equal(l.corrupt_errs[i], SLUICE_ERR_CORRUPT);
	}
	loaded_finish(&l);

	char msg[SL_STREAM_MSG_LEN] = "";
	struct sl_stream_meta *x = NULL;
	assert_int_equal(sl_stream_meta_load(dir, "typed", &x, msg, sizeof(msg)),
			 SLUICE_ERR_CORRUPT);
	assert_non_null(strstr(msg, "retention_ms"));
	assert_int_equal(sl_stream_meta_load(dir, "impostor", &x, msg, sizeof(msg)),
			 SLUICE_ERR_CORRUPT);
	assert_non_null(strstr(msg, "file name"));
	assert_null(x);

	/* The next save overwrites the leftover temp file and leaves none. */
	a->retention_ms = 3000;
	assert_int_equal(sl_stream_meta_save(dir, a), 0);
	assert_false(file_exists(dir, "alpha.json.tmp"));
	assert_int_equal(sl_stream_meta_load(dir, "alpha", &x, msg, sizeof(msg)), 0);
	assert_int_equal(x->retention_ms, 3000);
	sl_stream_meta_destroy(x);

	/* remove also drops a leftover temp file. */
	write_file(dir, "alpha.json.tmp", "{");
	assert_int_equal(sl_stream_meta_remove(dir, "alpha"), 0);
	assert_false(file_exists(dir, "alpha.json.tmp"));

	sl_stream_meta_destroy(a);
	rm_rf(dir);
	free(dir);
}

static int stop_loaded(void *ctx, struct sl_stream_meta *meta)
{
	sl_stream_meta_destroy(meta);
	return -ECANCELED;
}

static void load_all_stop(void **state)
{
	char *dir = make_tmpdir();
	struct sl_stream_meta *a = new_stream("alpha", 1);
	assert_int_equal(sl_stream_meta_save(dir, a), 0);
	struct sl_stream_meta_load_ops stop = {stop_loaded, NULL};
	assert_int_equal(sl_stream_meta_load_all(dir, &stop, NULL), -ECANCELED);
	/* Without a corrupt callback bad files are skipped silently. */
	write_file(dir, "zz.json", "{");
	struct sl_stream_meta_load_ops quiet = {on_loaded, NULL};
	struct loaded l = {0};
	assert_int_equal(sl_stream_meta_load_all(dir, &quiet, &l), 1);
	loaded_finish(&l);
	sl_stream_meta_destroy(a);
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(names),
	    cmocka_unit_test(shard_names),
	    cmocka_unit_test(create),
	    cmocka_unit_test(tags),
	    cmocka_unit_test(split),
	    cmocka_unit_test(merge),
	    cmocka_unit_test(reshard_times),
	    cmocka_unit_test(reshard_limits),
	    cmocka_unit_test(corrupt_json),
	    cmocka_unit_test(save_load),
	    cmocka_unit_test(atomic_and_corrupt_files),
	    cmocka_unit_test(load_all_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
