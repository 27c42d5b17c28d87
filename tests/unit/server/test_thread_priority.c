/* Tests of src/server/thread_priority.c: parsing and formatting --firehose-cpu-priority, and
 * the priority really applied to the calling thread only (read back from the kernel). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "server/thread_priority.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void test_parse_accepts(void **state)
{
	(void)state;
	struct sl_cpu_priority p;
	assert_int_equal(sl_cpu_priority_parse("normal", &p), 0);
	assert_int_equal(p.cls, SL_CPU_PRIORITY_NORMAL);
	assert_false(sl_cpu_priority_lowers(&p));
	assert_int_equal(sl_cpu_priority_parse("idle", &p), 0);
	assert_int_equal(p.cls, SL_CPU_PRIORITY_IDLE);
	assert_true(sl_cpu_priority_lowers(&p));
	assert_int_equal(sl_cpu_priority_parse("nice:1", &p), 0);
	assert_int_equal(p.cls, SL_CPU_PRIORITY_NICE);
	assert_int_equal(p.nice, 1);
	assert_int_equal(sl_cpu_priority_parse("nice:19", &p), 0);
	assert_int_equal(p.nice, 19);
}

static void test_parse_refuses_and_leaves_result(void **state)
{
	(void)state;
	static const char *const bad[] = {"",	     "nice",
					  "nice:",   "nice:0",
					  "nice:20", "nice:-1",
					  "nice:1x", "nice: 5",
					  "NICE:5",  "Idle",
					  "batch",   "5",
					  "normal ", "nice:99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sl_cpu_priority p = {.cls = SL_CPU_PRIORITY_NICE, .nice = 7};
		assert_int_equal(sl_cpu_priority_parse(bad[i], &p), -EINVAL);
		assert_int_equal(p.cls, SL_CPU_PRIORITY_NICE);
		assert_int_equal(p.nice, 7);
	}
}

static void test_format_round_trips(void **state)
{
	(void)state;
	static const char *const texts[] = {"normal", "idle", "nice:1", "nice:10", "nice:19"};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct sl_cpu_priority p;
		char out[SL_CPU_PRIORITY_TEXT_LEN];
		assert_int_equal(sl_cpu_priority_parse(texts[i], &p), 0);
		sl_cpu_priority_format(&p, out);
		assert_string_equal(out, texts[i]);
	}
}

/* What a thread saw of itself after sl_thread_lower_priority. */
struct applied {
	struct sl_cpu_priority p;
	int ret;
	int nice_before, nice_after, policy_after;
};

static void *apply_on_thread(void *arg)
{
	struct applied *a = arg;
	a->nice_before = getpriority(PRIO_PROCESS, (id_t)gettid());
	a->ret = sl_thread_lower_priority(&a->p);
	a->nice_after = getpriority(PRIO_PROCESS, (id_t)gettid());
	a->policy_after = sched_getscheduler(0);
	return NULL;
}

static struct applied apply(const char *text)
{
	struct applied a = {0};
	assert_int_equal(sl_cpu_priority_parse(text, &a.p), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, apply_on_thread, &a), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	return a;
}

static int min_int(int a, int b)
{
	return a < b ? a : b;
}

static void test_nice_raises_the_thread_only(void **state)
{
	(void)state;
	int main_nice = getpriority(PRIO_PROCESS, (id_t)gettid());
	struct applied a = apply("nice:3");
	assert_int_equal(a.ret, 0);
	assert_int_equal(a.nice_before, main_nice); /* inherited from the creating thread */
	assert_int_equal(a.nice_after, min_int(19, main_nice + 3));
	assert_int_equal(a.policy_after, SCHED_BATCH);
	/* The creating thread is untouched. */
	assert_int_equal(getpriority(PRIO_PROCESS, (id_t)gettid()), main_nice);
	assert_int_equal(sched_getscheduler(0), SCHED_OTHER);
}

static void test_nice_is_capped_at_19(void **state)
{
	(void)state;
	struct applied a = apply("nice:19");
	assert_int_equal(a.ret, 0);
	assert_int_equal(a.nice_after, 19);
}

static void test_idle_and_normal(void **state)
{
	(void)state;
	int main_nice = getpriority(PRIO_PROCESS, (id_t)gettid());
	struct applied a = apply("idle");
	assert_int_equal(a.ret, 0);
	assert_int_equal(a.policy_after, SCHED_IDLE);
	a = apply("normal");
	assert_int_equal(a.ret, 0);
	assert_int_equal(a.nice_after, main_nice);
	assert_int_equal(a.policy_after, SCHED_OTHER);
	assert_int_equal(sched_getscheduler(0), SCHED_OTHER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_accepts),
	    cmocka_unit_test(test_parse_refuses_and_leaves_result),
	    cmocka_unit_test(test_format_round_trips),
	    cmocka_unit_test(test_nice_raises_the_thread_only),
	    cmocka_unit_test(test_nice_is_capped_at_19),
	    cmocka_unit_test(test_idle_and_normal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
