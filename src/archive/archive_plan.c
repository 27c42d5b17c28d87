#include "archive/archive_plan.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl_archive_plan_init(struct sl_archive_plan *p, const char *stream)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->stream, sizeof(p->stream), "%s", stream);
}

void sl_archive_plan_finish(struct sl_archive_plan *p)
{
	for (size_t i = 0; i < p->count; i++)
		free(p->objects[i].key);
	free(p->objects);
	memset(p, 0, sizeof(*p));
}

int sl_archive_plan_add(struct sl_archive_plan *p, const char *key, size_t key_len)
{
	struct sl_archive_key_info ki;
	/* Only keys at the root of the destination: errors/ (given-up records) and other
	 * prefixes are not the archive. */
	if (sl_archive_key_parse(key, key_len, &ki) < 0 || ki.prefix_len != 0 ||
	    ki.stream_len != strlen(p->stream) ||
	    memcmp(ki.stream, p->stream, ki.stream_len) != 0) {
		p->ignored++;
		return 0;
	}
	if (ki.format == SL_ARCHIVE_RAW) {
		p->raw_objects++;
		return 0;
	}
	if (p->count >= SL_ARCHIVE_PLAN_OBJECTS_MAX)
		return SLUICE_ERR_LIMIT_EXCEEDED;
	if (p->count == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 256;
		struct sl_plan_object *n = realloc(p->objects, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		p->objects = n;
		p->cap = cap;
	}
	char *k = strndup(key, key_len);
	if (!k)
		return -ENOMEM;
	p->objects[p->count++] = (struct sl_plan_object){
	    .key = k,
	    .shard_id = ki.shard_id,
	    .first_seq = ki.first_seq,
	    .last_seq = ki.last_seq,
	    .hour_ms = ki.hour_ms,
	    .format = ki.format,
	    .compression = ki.compression,
	};
	return 1;
}

static int cmp_object(const void *a, const void *b)
{
	const struct sl_plan_object *x = a, *y = b;
	if (x->shard_id != y->shard_id)
		return x->shard_id < y->shard_id ? -1 : 1;
	if (x->first_seq != y->first_seq)
		return x->first_seq < y->first_seq ? -1 : 1;
	if (x->last_seq != y->last_seq)
		return x->last_seq > y->last_seq ? -1 : 1; /* the longer object first */
	return strcmp(x->key, y->key);
}

void sl_archive_plan_sort(struct sl_archive_plan *p)
{
	if (p->count > 1)
		qsort(p->objects, p->count, sizeof(*p->objects), cmp_object);
}

size_t sl_archive_plan_shards(const struct sl_archive_plan *p, uint32_t *ids, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < p->count; i++) {
		if (i && p->objects[i].shard_id == p->objects[i - 1].shard_id)
			continue;
		if (n < cap)
			ids[n] = p->objects[i].shard_id;
		n++;
	}
	return n < cap ? n : cap;
}

void sl_seq_track_init(struct sl_seq_track *t, uint64_t first_seq)
{
	memset(t, 0, sizeof(*t));
	t->next = first_seq ? first_seq : 1;
}

static void note_gap(struct sl_seq_track *t, uint64_t first, uint64_t last)
{
	if (t->gap_count < SL_SEQ_TRACK_GAPS_MAX)
		t->gaps[t->gap_count] = (struct sl_seq_gap){first, last};
	t->gap_count++;
	t->missing_records += last - first + 1;
}

enum sl_seq_verdict sl_seq_track_see(struct sl_seq_track *t, uint64_t seq)
{
	if (seq < t->next) {
		t->duplicates++;
		return SL_SEQ_DUPLICATE;
	}
	enum sl_seq_verdict v = SL_SEQ_NEXT;
	if (seq > t->next) {
		note_gap(t, t->next, seq - 1);
		v = SL_SEQ_AFTER_GAP;
	}
	t->next = seq + 1;
	return v;
}

void sl_seq_track_expect_end(struct sl_seq_track *t, uint64_t end_seq)
{
	if (end_seq >= t->next) {
		note_gap(t, t->next, end_seq);
		t->next = end_seq + 1;
	}
}

bool sl_seq_track_skip_object(struct sl_seq_track *t, uint64_t first_seq, uint64_t last_seq)
{
	if (last_seq >= t->next)
		return false;
	t->duplicates += last_seq - first_seq + 1;
	return true;
}
