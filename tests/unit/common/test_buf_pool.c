#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/buf_pool.h"

#include <pthread.h>

static void filled(struct sl_buf *b, size_t n)
{
	sl_buf_init(b);
	assert_int_equal(sl_buf_reserve(b, n), 0);
	memset(b->data, 0x5a, n);
	b->len = n;
}

/* A buffer given back is the one handed out next, with its capacity and emptied. */
static void give_then_take_reuses_the_memory(void **state)
{
	struct sl_buf_pool p;
	assert_int_equal(sl_buf_pool_init(&p, 4, 1 << 20), 0);
	struct sl_buf b;
	filled(&b, 1000);
	uint8_t *mem = b.data;
	size_t cap = b.cap;
	sl_buf_pool_give(&p, &b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.bytes, cap);

	struct sl_buf t;
	sl_buf_init(&t);
	sl_buf_pool_take(&p, &t);
	assert_ptr_equal(t.data, mem);
	assert_int_equal(t.cap, cap);
	assert_int_equal(t.len, 0);
	assert_int_equal(p.n, 0);
	assert_int_equal(p.bytes, 0);
	/* Empty pool: the buffer stays without capacity. */
	struct sl_buf u;
	sl_buf_init(&u);
	sl_buf_pool_take(&p, &u);
	assert_null(u.data);
	sl_buf_finish(&t);
	sl_buf_pool_finish(&p);
}

/* The most recently given buffer comes back first (its pages are the warmest). */
static void take_is_last_in_first_out(void **state)
{
	struct sl_buf_pool p;
	assert_int_equal(sl_buf_pool_init(&p, 4, 1 << 20), 0);
	struct sl_buf a, b;
	filled(&a, 100);
	filled(&b, 100);
	uint8_t *second = b.data;
	sl_buf_pool_give(&p, &a);
	sl_buf_pool_give(&p, &b);
	struct sl_buf t;
	sl_buf_init(&t);
	sl_buf_pool_take(&p, &t);
	assert_ptr_equal(t.data, second);
	sl_buf_finish(&t);
	sl_buf_pool_finish(&p);
}

/* A buffer that has capacity already keeps it: take does not swap it away. */
static void take_keeps_own_capacity(void **state)
{
	struct sl_buf_pool p;
	assert_int_equal(sl_buf_pool_init(&p, 4, 1 << 20), 0);
	struct sl_buf a, own;
	filled(&a, 100);
	sl_buf_pool_give(&p, &a);
	filled(&own, 50);
	uint8_t *mem = own.data;
	own.len = 0;
	sl_buf_pool_take(&p, &own);
	assert_ptr_equal(own.data, mem);
	assert_int_equal(p.n, 1);
	sl_buf_finish(&own);
	sl_buf_pool_finish(&p);
}

/* Over the count or byte bound, a given buffer is freed, not kept. */
static void bounds_are_kept(void **state)
{
	struct sl_buf_pool p;
	assert_int_equal(sl_buf_pool_init(&p, 2, 8192), 0);
	struct sl_buf big;
	filled(&big, 9000); /* capacity over bytes_max */
	sl_buf_pool_give(&p, &big);
	assert_null(big.data);
	assert_int_equal(p.n, 0);
	assert_int_equal(p.bytes, 0);

	struct sl_buf b[3];
	for (int i = 0; i < 3; i++) {
		filled(&b[i], 1000); /* 1024 bytes of capacity each */
		sl_buf_pool_give(&p, &b[i]);
		assert_null(b[i].data);
	}
	assert_int_equal(p.n, 2);
	assert_int_equal(p.bytes, 2048);

	struct sl_buf_pool q;
	assert_int_equal(sl_buf_pool_init(&q, 8, 3000), 0);
	for (int i = 0; i < 3; i++) {
		filled(&b[i], 1000);
		sl_buf_pool_give(&q, &b[i]);
	}
	assert_int_equal(q.n, 2); /* the third would hold 3072 > 3000 bytes */
	assert_int_equal(q.bytes, 2048);
	/* Giving a buffer without capacity is a no-op. */
	struct sl_buf none;
	sl_buf_init(&none);
	sl_buf_pool_give(&q, &none);
	assert_int_equal(q.n, 2);
	sl_buf_pool_finish(&q);
	sl_buf_pool_finish(&p);
}

/* Threads taking and giving at once: every buffer comes back intact, nothing leaks (ASan). */
#define ROUNDS 20000
static void *churn(void *arg)
{
	struct sl_buf_pool *p = arg;
	for (int i = 0; i < ROUNDS; i++) {
		struct sl_buf b;
		sl_buf_init(&b);
		sl_buf_pool_take(p, &b);
		if (sl_buf_reserve(&b, 512) < 0)
			return (void *)1;
		memset(b.data, i & 0xff, 512);
		b.len = 512;
		sl_buf_pool_give(p, &b);
	}
	return NULL;
}

static void threads_share_one_pool(void **state)
{
	struct sl_buf_pool p;
	assert_int_equal(sl_buf_pool_init(&p, 3, 1 << 20), 0);
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, churn, &p), 0);
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		assert_null(ret);
	}
	assert_true(p.n >= 1 && p.n <= 3);
	assert_int_equal(p.bytes, p.n * 512);
	sl_buf_pool_finish(&p);
	sl_buf_pool_finish(&p); /* twice: a finished pool is a zeroed one */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(give_then_take_reuses_the_memory),
	    cmocka_unit_test(take_is_last_in_first_out),
	    cmocka_unit_test(take_keeps_own_capacity),
	    cmocka_unit_test(bounds_are_kept),
	    cmocka_unit_test(threads_share_one_pool),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
