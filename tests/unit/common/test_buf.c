#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "common/buf.h"

static void put_and_read_back(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	assert_int_equal(sl_buf_put_u8(&b, 0xab), 0);
	assert_int_equal(sl_buf_put_u16(&b, 0x1234), 0);
	assert_int_equal(sl_buf_put_u32(&b, 0xdeadbeef), 0);
	assert_int_equal(sl_buf_put_u64(&b, 0x0102030405060708ull), 0);
	assert_int_equal(sl_buf_put(&b, "xyz", 3), 0);
	assert_int_equal(b.len, 1 + 2 + 4 + 8 + 3);

	struct sl_reader r;
	sl_reader_init(&r, b.data, b.len);
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	const uint8_t *p;
	assert_true(sl_reader_u8(&r, &u8));
	assert_int_equal(u8, 0xab);
	assert_true(sl_reader_u16(&r, &u16));
	assert_int_equal(u16, 0x1234);
	assert_true(sl_reader_u32(&r, &u32));
	assert_int_equal(u32, 0xdeadbeef);
	assert_true(sl_reader_u64(&r, &u64));
	assert_true(u64 == 0x0102030405060708ull);
	assert_true(sl_reader_bytes(&r, 3, &p));
	assert_memory_equal(p, "xyz", 3);
	assert_int_equal(sl_reader_left(&r), 0);
	/* Past the end: fails, and stays failed. */
	assert_false(sl_reader_u8(&r, &u8));
	assert_false(r.ok);
	sl_buf_finish(&b);
}

static void reader_never_overreads(void **state)
{
	const uint8_t bytes[3] = {1, 2, 3};
	struct sl_reader r;
	sl_reader_init(&r, bytes, sizeof(bytes));
	uint32_t v;
	assert_false(sl_reader_u32(&r, &v));
	uint8_t b;
	assert_false(sl_reader_u8(&r, &b)); /* sticky failure */
	assert_int_equal(sl_reader_left(&r), 0);
}

static void consume_moves_rest(void **state)
{
	struct sl_buf b;
	sl_buf_init(&b);
	assert_int_equal(sl_buf_put(&b, "abcdef", 6), 0);
	sl_buf_consume(&b, 2);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "cdef", 4);
	sl_buf_consume(&b, 10);
	assert_int_equal(b.len, 0);
	sl_buf_finish(&b);
	sl_buf_finish(&b); /* finish of a finished buffer is safe */
}

/* Formatted text appends without a NUL and grows the buffer past any fixed line size. */
static void printf_appends(void **state)
{
	(void)state;
	struct sl_buf b;
	sl_buf_init(&b);
	assert_int_equal(sl_buf_put(&b, "ab", 2), 0);
	assert_int_equal(sl_buf_printf(&b, "%s=%d;", "x", 42), 0);
	assert_int_equal(b.len, 7);
	assert_memory_equal(b.data, "abx=42;", 7);
	char big[5000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(sl_buf_printf(&b, "[%s]", big), 0);
	assert_int_equal(b.len, 7 + 2 + sizeof(big) - 1);
	assert_int_equal(b.data[7], '[');
	assert_int_equal(b.data[8 + sizeof(big) - 1], ']');
	assert_int_equal(sl_buf_printf(&b, "%s", ""), 0);
	assert_int_equal(b.len, 7 + 2 + sizeof(big) - 1);
	sl_buf_finish(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(put_and_read_back),
	    cmocka_unit_test(reader_never_overreads),
	    cmocka_unit_test(consume_moves_rest),
	    cmocka_unit_test(printf_appends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
