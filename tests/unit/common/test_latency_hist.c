#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/latency_hist.h"

static uint64_t bucket(const struct sl_latency_hist *h, size_t i)
{
	return atomic_load(&h->buckets[i]);
}

static void bounds_ascend(void **state)
{
	(void)state;
	for (size_t i = 1; i < SL_LATENCY_BOUNDS; i++)
		assert_true(sl_latency_bounds_ns[i] > sl_latency_bounds_ns[i - 1]);
	assert_int_equal(sl_latency_bounds_ns[0], 50000);
	assert_int_equal(sl_latency_bounds_ns[SL_LATENCY_BOUNDS - 1], 10000000000ull);
}

/* A sample equal to a bound belongs to that bucket (le: less or equal), one above to the next. */
static void samples_land_in_their_bucket(void **state)
{
	(void)state;
	struct sl_latency_hist h = {0};
	sl_latency_hist_record(&h, 0);
	sl_latency_hist_record(&h, 50000);
	sl_latency_hist_record(&h, 50001);
	sl_latency_hist_record(&h, 1000000);
	sl_latency_hist_record(&h, 10000000000ull);
	sl_latency_hist_record(&h, 10000000001ull);
	sl_latency_hist_record(&h, UINT64_MAX / 4);
	assert_int_equal(bucket(&h, 0), 2);
	assert_int_equal(bucket(&h, 1), 1);
	assert_int_equal(bucket(&h, 4), 1); /* le 1 ms */
	assert_int_equal(bucket(&h, SL_LATENCY_BOUNDS - 1), 1);
	assert_int_equal(bucket(&h, SL_LATENCY_BOUNDS), 2); /* +Inf */
	uint64_t n = 0;
	for (size_t i = 0; i <= SL_LATENCY_BOUNDS; i++)
		n += bucket(&h, i);
	assert_int_equal(n, 7);
	assert_int_equal(atomic_load(&h.sum_ns), 0 + 50000 + 50001 + 1000000 + 10000000000ull +
						     10000000001ull + UINT64_MAX / 4);
}

struct holder {
	int pad;
	struct sl_latency_hist h;
	char more[24];
};

static char *rendered(struct holder *hs, size_t n)
{
	struct sl_buf b;
	sl_buf_init(&b);
	assert_int_equal(sl_latency_hist_render(&b, "x_seconds", "Help text.", hs, n, sizeof(hs[0]),
						offsetof(struct holder, h)),
			 0);
	char *s = strndup((const char *)b.data, b.len);
	sl_buf_finish(&b);
	return s;
}

/* Two histograms (say, two workers) render as one: cumulative buckets, sum in seconds, count. */
static void render_sums_and_accumulates(void **state)
{
	(void)state;
	struct holder hs[2];
	memset(hs, 0, sizeof(hs));
	sl_latency_hist_record(&hs[0].h, 40000);       /* le 5e-05 */
	sl_latency_hist_record(&hs[1].h, 200000);      /* le 0.00025 */
	sl_latency_hist_record(&hs[1].h, 3000000);     /* le 0.005 */
	sl_latency_hist_record(&hs[0].h, 20000000000); /* +Inf */
	char *s = rendered(hs, 2);
	const char *want_lines[] = {
	    "# HELP x_seconds Help text.\n",
	    "# TYPE x_seconds histogram\n",
	    "x_seconds_bucket{le=\"5e-05\"} 1\n",
	    "x_seconds_bucket{le=\"0.0001\"} 1\n",
	    "x_seconds_bucket{le=\"0.00025\"} 2\n",
	    "x_seconds_bucket{le=\"0.0025\"} 2\n",
	    "x_seconds_bucket{le=\"0.005\"} 3\n",
	    "x_seconds_bucket{le=\"10\"} 3\n",
	    "x_seconds_bucket{le=\"+Inf\"} 4\n",
	    "x_seconds_sum 20.003240000\n",
	    "x_seconds_count 4\n",
	};
	for (size_t i = 0; i < sizeof(want_lines) / sizeof(want_lines[0]); i++) {
		if (!strstr(s, want_lines[i]))
			fail_msg("missing line %s in:\n%s", want_lines[i], s);
	}
	/* 2 comment lines, 18 buckets, sum, count. */
	size_t lines = 0;
	for (const char *p = s; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 22);
	free(s);

	/* Only the first holder: the second's samples are not counted. */
	s = rendered(hs, 1);
	assert_non_null(strstr(s, "x_seconds_count 2\n"));
	assert_non_null(strstr(s, "x_seconds_bucket{le=\"0.005\"} 1\n"));
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(bounds_ascend),
	    cmocka_unit_test(samples_land_in_their_bucket),
	    cmocka_unit_test(render_sums_and_accumulates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
