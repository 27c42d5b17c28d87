/* Tests of src/stream/reshard_plan.c: uniform scaling plans, applying plans with seals, the
 * shards a plan closes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "stream/reshard_plan.h"

#define DAY_MS (24ll * 3600 * 1000)
#define NOW_MS 1764291723000ll

static struct sl_stream_meta *make(uint32_t n)
{
	struct sl_stream_meta *m;
	assert_int_equal(sl_stream_meta_create("s", n, DAY_MS, NOW_MS, &m), 0);
	return m;
}

/* The open shards cover the hash space as the even split into n. */
static void assert_uniform(const struct sl_stream_meta *m, uint32_t n)
{
	assert_int_equal(sl_stream_meta_open_shard_count(m), n);
	for (uint32_t t = 0; t < n; t++) {
		sl_u128 b, e;
		sl_hash_range_even(t, n, &b, &e);
		bool found = false;
		for (size_t i = 0; i < m->shard_count; i++) {
			const struct sl_shard_meta *s = &m->shards[i];
			if (s->state == SL_SHARD_OPEN && s->start_key == b && s->end_key == e)
				found = true;
		}
		assert_true(found);
	}
	assert_int_equal(sl_stream_meta_check(m, NULL, 0), 0);
}

/* Plan from n to target, apply with every open shard sealed at seq 100*(id+1), check. */
static void scale_and_check(struct sl_stream_meta *m, uint32_t target)
{
	struct sl_reshard_step *steps;
	size_t count;
	char msg[SL_STREAM_MSG_LEN];
	assert_int_equal(sl_reshard_plan_scale(m, target, &steps, &count, msg, sizeof(msg)), 0);
	uint32_t *ids = calloc(count * 2 + 1, sizeof(*ids));
	int nt = sl_reshard_touched(m, steps, count, ids, msg, sizeof(msg));
	assert_true(nt >= 0);
	struct sl_reshard_seal *seals = calloc((size_t)nt + 1, sizeof(*seals));
	for (int i = 0; i < nt; i++) {
		const struct sl_shard_meta *s = sl_stream_meta_find_shard(m, ids[i]);
		assert_non_null(s);
		assert_int_equal(s->state, SL_SHARD_OPEN);
		seals[i] = (struct sl_reshard_seal){ids[i], s->start_seq + 100 * (ids[i] + 1)};
	}
	size_t before = m->shard_count;
	assert_int_equal(
	    sl_reshard_apply(m, steps, count, seals, (size_t)nt, NULL, msg, sizeof(msg)), 0);
	assert_uniform(m, target);
	/* Every shard the plan added: a child of at most a parent and an adjacent parent,
	 * starting after both parents' end_seq. */
	for (size_t i = before; i < m->shard_count; i++) {
		const struct sl_shard_meta *c = &m->shards[i];
		assert_true(c->parent_id >= 0);
		const struct sl_shard_meta *p =
		    sl_stream_meta_find_shard(m, (uint32_t)c->parent_id);
		assert_int_equal(p->state, SL_SHARD_CLOSED);
		assert_true(c->start_seq == p->end_seq + 1 ||
			    (c->adjacent_parent_id >= 0 && c->start_seq > p->end_seq));
		if (c->adjacent_parent_id >= 0) {
			const struct sl_shard_meta *a =
			    sl_stream_meta_find_shard(m, (uint32_t)c->adjacent_parent_id);
			assert_int_equal(a->state, SL_SHARD_CLOSED);
			assert_true(c->start_seq > a->end_seq);
			uint64_t mx = a->end_seq > p->end_seq ? a->end_seq : p->end_seq;
			assert_true(c->start_seq == mx + 1);
		}
	}
	/* The sealed shards got exactly their seal. */
	for (int i = 0; i < nt; i++)
		assert_true(sl_stream_meta_find_shard(m, ids[i])->end_seq == seals[i].end_seq);
	free(seals);
	free(ids);
	free(steps);
}

static void doubling_is_one_split_each(void **state)
{
	(void)state;
	struct sl_stream_meta *m = make(3);
	struct sl_reshard_step *steps;
	size_t count;
	assert_int_equal(sl_reshard_plan_scale(m, 6, &steps, &count, NULL, 0), 0);
	assert_int_equal(count, 3);
	for (size_t i = 0; i < count; i++)
		assert_int_equal(steps[i].kind, SL_RESHARD_SPLIT);
	free(steps);
	scale_and_check(m, 6);
	sl_stream_meta_destroy(m);
}

static void halving_is_one_merge_per_pair(void **state)
{
	(void)state;
	struct sl_stream_meta *m = make(8);
	struct sl_reshard_step *steps;
	size_t count;
	assert_int_equal(sl_reshard_plan_scale(m, 4, &steps, &count, NULL, 0), 0);
	assert_int_equal(count, 4);
	for (size_t i = 0; i < count; i++)
		assert_int_equal(steps[i].kind, SL_RESHARD_MERGE);
	free(steps);
	scale_and_check(m, 4);
	sl_stream_meta_destroy(m);
}

static void odd_counts_and_chains(void **state)
{
	(void)state;
	/* 3 -> 4 -> 5 -> 3 -> 2 -> 4 -> 7 -> 4 -> 1: every step uniform, lineage sound */
	static const uint32_t seq[] = {4, 5, 3, 2, 4, 7, 4, 2, 1, 2};
	struct sl_stream_meta *m = make(3);
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++)
		scale_and_check(m, seq[i]);
	sl_stream_meta_destroy(m);
}

static void same_count_uniform_is_a_no_op(void **state)
{
	(void)state;
	struct sl_stream_meta *m = make(5);
	struct sl_reshard_step *steps = (void *)1;
	size_t count = 99;
	assert_int_equal(sl_reshard_plan_scale(m, 5, &steps, &count, NULL, 0), 0);
	assert_int_equal(count, 0);
	assert_null(steps);
	sl_stream_meta_destroy(m);
}

static void same_count_after_a_split_evens_out(void **state)
{
	(void)state;
	struct sl_stream_meta *m = make(2);
	sl_u128 b, e;
	sl_hash_range_even(0, 2, &b, &e);
	uint32_t kids[2];
	assert_int_equal(sl_stream_meta_split(m, 0, b + (e - b) / 4, 10, kids, NULL, 0), 0);
	/* open: [0, 1/8), [1/8, 1/2), [1/2, 1): scale to 3 must even them */
	scale_and_check(m, 3);
	sl_stream_meta_destroy(m);
}

static void limits(void **state)
{
	(void)state;
	struct sl_stream_meta *m = make(4);
	struct sl_reshard_step *steps;
	size_t count;
	char msg[SL_STREAM_MSG_LEN] = "";
	assert_int_equal(sl_reshard_plan_scale(m, 9, &steps, &count, msg, sizeof(msg)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_non_null(strstr(msg, "double"));
	assert_int_equal(sl_reshard_plan_scale(m, 1, &steps, &count, NULL, 0),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_reshard_plan_scale(m, 0, &steps, &count, NULL, 0),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_reshard_plan_scale(m, 8, &steps, &count, NULL, 0), 0);
	free(steps);
	assert_int_equal(sl_reshard_plan_scale(m, 2, &steps, &count, NULL, 0), 0);
	free(steps);
	sl_stream_meta_destroy(m);
	m = make(SLUICE_SHARDS_MAX);
	assert_int_equal(sl_reshard_plan_scale(m, SLUICE_SHARDS_MAX + 1, &steps, &count, NULL, 0),
			 SLUICE_ERR_INVALID_ARGUMENT);
	sl_stream_meta_destroy(m);
}

static void touched_and_failed_steps(void **state)
{
	(void)state;
	struct sl_stream_meta *m = make(4);
	struct sl_reshard_step st[2] = {
	    {.kind = SL_RESHARD_MERGE, .shard_id = 2, .adjacent_id = 1},
	    {.kind = SL_RESHARD_SPLIT, .shard_id = 4}, /* the merge's child */
	};
	sl_u128 b, e;
	sl_hash_range_even(1, 4, &b, &e);
	st[1].start_key = e; /* inside the child [1/4, 3/4) */
	uint32_t ids[4];
	char msg[SL_STREAM_MSG_LEN];
	assert_int_equal(sl_reshard_touched(m, st, 2, ids, msg, sizeof(msg)), 2);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 2);
	/* The intermediate child never got a record: closed at start_seq - 1. */
	struct sl_reshard_seal seals[2] = {{1, 40}, {2, 70}};
	uint32_t kids[2];
	assert_int_equal(sl_reshard_apply(m, st, 2, seals, 2, kids, msg, sizeof(msg)), 0);
	assert_int_equal(kids[0], 5);
	assert_int_equal(kids[1], 6);
	const struct sl_shard_meta *mid = sl_stream_meta_find_shard(m, 4);
	assert_true(mid->start_seq == 71 && mid->end_seq == 70);
	assert_true(sl_stream_meta_find_shard(m, 5)->start_seq == 71);
	/* A step on a closed shard fails, with a message. */
	struct sl_reshard_step bad = {.kind = SL_RESHARD_SPLIT, .shard_id = 1, .start_key = b + 1};
	msg[0] = '\0';
	assert_int_equal(sl_reshard_touched(m, &bad, 1, ids, msg, sizeof(msg)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_true(msg[0] != '\0');
	struct sl_reshard_step nomerge = {
	    .kind = SL_RESHARD_MERGE, .shard_id = 0, .adjacent_id = 3};
	assert_int_equal(sl_reshard_touched(m, &nomerge, 1, ids, msg, sizeof(msg)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	struct sl_reshard_step missing = {.kind = SL_RESHARD_SPLIT, .shard_id = 77};
	assert_int_equal(sl_reshard_touched(m, &missing, 1, ids, msg, sizeof(msg)),
			 SLUICE_ERR_SHARD_NOT_FOUND);
	sl_stream_meta_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(doubling_is_one_split_each),
	    cmocka_unit_test(halving_is_one_merge_per_pair),
	    cmocka_unit_test(odd_counts_and_chains),
	    cmocka_unit_test(same_count_uniform_is_a_no_op),
	    cmocka_unit_test(same_count_after_a_split_evens_out),
	    cmocka_unit_test(limits),
	    cmocka_unit_test(touched_and_failed_steps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
