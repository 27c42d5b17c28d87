#include "stream/reshard_plan.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_range(const void *a, const void *b)
{
	const struct sl_shard_meta *x = a, *y = b;
	return x->start_key < y->start_key ? -1 : x->start_key > y->start_key;
}

/* The open shards of meta sorted by range, into a malloc'd array. */
static int open_sorted(const struct sl_stream_meta *meta, struct sl_shard_meta **ret, size_t *n)
{
	size_t cnt = sl_stream_meta_open_shard_count(meta);
	struct sl_shard_meta *a = calloc(cnt ? cnt : 1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	size_t at = 0;
	for (size_t i = 0; i < meta->shard_count; i++)
		if (meta->shards[i].state == SL_SHARD_OPEN)
			a[at++] = meta->shards[i];
	qsort(a, at, sizeof(*a), cmp_range);
	*ret = a;
	*n = at;
	return 0;
}

int sl_reshard_plan_scale(const struct sl_stream_meta *meta, uint32_t target,
			  struct sl_reshard_step **ret_steps, size_t *ret_count, char *msg,
			  size_t msg_len)
{
	size_t n = sl_stream_meta_open_shard_count(meta);
	if (target == 0 || target > SLUICE_SHARDS_MAX || target > 2 * n || 2 * (size_t)target < n) {
		if (msg)
			snprintf(msg, msg_len,
				 "target shard count %u must be 1..%d, at most double and at least "
				 "half the %zu open shards",
				 target, SLUICE_SHARDS_MAX, n);
		return SLUICE_ERR_INVALID_ARGUMENT;
	}
	/* Work on a clone so each step can use the ids the previous ones assigned. */
	struct sl_stream_meta *m;
	int r = sl_stream_meta_clone(meta, &m);
	if (r < 0)
		return r;
	size_t cap = 16, count = 0;
	struct sl_reshard_step *steps = malloc(cap * sizeof(*steps));
	struct sl_shard_meta *open = NULL;
	if (!steps) {
		r = -ENOMEM;
		goto out;
	}
#define PUSH(step)                                                                                 \
	do {                                                                                       \
		if (count == cap) {                                                                \
			struct sl_reshard_step *g = realloc(steps, 2 * cap * sizeof(*g));          \
			if (!g) {                                                                  \
				r = -ENOMEM;                                                       \
				goto out;                                                          \
			}                                                                          \
			steps = g;                                                                 \
			cap *= 2;                                                                  \
		}                                                                                  \
		steps[count] = (step);                                                             \
		r = sl_reshard_apply(m, &steps[count], 1, NULL, 0, ids, msg, msg_len);             \
		if (r < 0)                                                                         \
			goto out;                                                                  \
		count++;                                                                           \
	} while (0)
	uint32_t ids[2];
	/* Splits: every target boundary strictly inside an open shard. */
	for (uint32_t t = 1; t < target; t++) {
		sl_u128 b, e;
		sl_hash_range_even(t, target, &b, &e);
		for (size_t i = 0; i < m->shard_count; i++) {
			const struct sl_shard_meta *s = &m->shards[i];
			if (s->state != SL_SHARD_OPEN || b <= s->start_key || b > s->end_key)
				continue;
			PUSH(((struct sl_reshard_step){
			    .kind = SL_RESHARD_SPLIT, .shard_id = s->shard_id, .start_key = b}));
			break;
		}
	}
	/* Merges: the open shards inside each target range, left to right. */
	size_t nopen;
	r = open_sorted(m, &open, &nopen);
	if (r < 0)
		goto out;
	size_t i = 0;
	for (uint32_t t = 0; t < target; t++) {
		sl_u128 b, e;
		sl_hash_range_even(t, target, &b, &e);
		if (i >= nopen)
			break;
		uint32_t acc = open[i].shard_id;
		i++;
		while (i < nopen && open[i].end_key <= e) {
			PUSH(((struct sl_reshard_step){.kind = SL_RESHARD_MERGE,
						       .shard_id = acc,
						       .adjacent_id = open[i].shard_id}));
			acc = ids[0];
			i++;
		}
	}
#undef PUSH
	*ret_steps = count ? steps : NULL;
	if (!count)
		free(steps);
	steps = NULL;
	*ret_count = count;
	r = 0;
out:
	free(open);
	free(steps);
	sl_stream_meta_destroy(m);
	return r;
}

static uint64_t end_seq_of(const struct sl_stream_meta *meta, uint32_t id,
			   const struct sl_reshard_seal *seals, size_t nseals)
{
	for (size_t i = 0; i < nseals; i++)
		if (seals[i].shard_id == id)
			return seals[i].end_seq;
	const struct sl_shard_meta *s = sl_stream_meta_find_shard(meta, id);
	return s && s->start_seq > 0 ? s->start_seq - 1 : 0;
}

int sl_reshard_apply(struct sl_stream_meta *meta, const struct sl_reshard_step *steps, size_t count,
		     const struct sl_reshard_seal *seals, size_t nseals, uint32_t ret_child_ids[2],
		     char *msg, size_t msg_len)
{
	for (size_t i = 0; i < count; i++) {
		const struct sl_reshard_step *st = &steps[i];
		uint32_t ids[2] = {0, 0};
		int r;
		if (st->kind == SL_RESHARD_SPLIT)
			r = sl_stream_meta_split(meta, st->shard_id, st->start_key,
						 end_seq_of(meta, st->shard_id, seals, nseals), ids,
						 msg, msg_len);
		else
			r = sl_stream_meta_merge(meta, st->shard_id, st->adjacent_id,
						 end_seq_of(meta, st->shard_id, seals, nseals),
						 end_seq_of(meta, st->adjacent_id, seals, nseals),
						 ids, msg, msg_len);
		if (r < 0)
			return r;
		if (ret_child_ids && i + 1 == count) {
			ret_child_ids[0] = ids[0];
			ret_child_ids[1] = ids[1];
		}
	}
	return 0;
}

int sl_reshard_touched(const struct sl_stream_meta *meta, const struct sl_reshard_step *steps,
		       size_t count, uint32_t *ret_ids, char *msg, size_t msg_len)
{
	struct sl_stream_meta *m;
	int r = sl_stream_meta_clone(meta, &m);
	if (r < 0)
		return r;
	r = sl_reshard_apply(m, steps, count, NULL, 0, NULL, msg, msg_len);
	if (r < 0) {
		sl_stream_meta_destroy(m);
		return r;
	}
	int n = 0;
	for (size_t i = 0; i < meta->shard_count; i++) {
		const struct sl_shard_meta *before = &meta->shards[i];
		if (before->state != SL_SHARD_OPEN)
			continue;
		const struct sl_shard_meta *after = sl_stream_meta_find_shard(m, before->shard_id);
		if (after && after->state == SL_SHARD_CLOSED)
			ret_ids[n++] = before->shard_id;
	}
	sl_stream_meta_destroy(m);
	return n;
}
