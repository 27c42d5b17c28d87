#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/units.h"

static void durations(void **state)
{
	int64_t ms;
	assert_int_equal(sl_parse_duration_ms("500ms", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(sl_parse_duration_ms("10s", &ms), 0);
	assert_int_equal(ms, 10000);
	assert_int_equal(sl_parse_duration_ms("5m", &ms), 0);
	assert_int_equal(ms, 300000);
	assert_int_equal(sl_parse_duration_ms("24h", &ms), 0);
	assert_int_equal(ms, 86400000);
	assert_int_equal(sl_parse_duration_ms("7d", &ms), 0);
	assert_int_equal(ms, 7 * 86400000ll);
	assert_int_equal(sl_parse_duration_ms("30", &ms), 0); /* plain number: seconds */
	assert_int_equal(ms, 30000);
	assert_int_equal(sl_parse_duration_ms("1.5s", &ms), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(sl_parse_duration_ms("", &ms), -EINVAL);
	assert_int_equal(sl_parse_duration_ms("5x", &ms), -EINVAL);
	assert_int_equal(sl_parse_duration_ms("-5s", &ms), -EINVAL);
	assert_int_equal(sl_parse_duration_ms("99999999999999999999d", &ms), -ERANGE);
}

static void sizes(void **state)
{
	uint64_t b;
	assert_int_equal(sl_parse_size_bytes("512KiB", &b), 0);
	assert_int_equal(b, 512 * 1024);
	assert_int_equal(sl_parse_size_bytes("5MiB", &b), 0);
	assert_int_equal(b, 5 << 20);
	assert_int_equal(sl_parse_size_bytes("1GiB", &b), 0);
	assert_int_equal(b, 1ull << 30);
	assert_int_equal(sl_parse_size_bytes("1000", &b), 0);
	assert_int_equal(b, 1000);
	assert_int_equal(sl_parse_size_bytes("1.5KiB", &b), 0);
	assert_int_equal(b, 1536);
	assert_int_equal(sl_parse_size_bytes("2MB", &b), 0);
	assert_int_equal(b, 2000000);
	assert_int_equal(sl_parse_size_bytes("MiB", &b), -EINVAL);
	assert_int_equal(sl_parse_size_bytes("5 MiB", &b), -EINVAL);
	assert_int_equal(sl_parse_size_bytes("99999999999999999999TiB", &b), -ERANGE);
}

static void timestamps(void **state)
{
	int64_t ms;
	assert_int_equal(sl_parse_timestamp_ms("1970-01-01T00:00:00Z", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(sl_parse_timestamp_ms("2026-11-28T01:02:03.250Z", &ms), 0);
	assert_int_equal(ms, 1795827723250ll);
	assert_int_equal(sl_parse_timestamp_ms("2026-11-28T02:02:03.250+01:00", &ms), 0);
	assert_int_equal(ms, 1795827723250ll);
	assert_int_equal(sl_parse_timestamp_ms("1795827723250", &ms), 0);
	assert_int_equal(ms, 1795827723250ll);
	assert_int_equal(sl_parse_timestamp_ms("2026-13-01T00:00:00Z", &ms), -EINVAL);
	assert_int_equal(sl_parse_timestamp_ms("yesterday", &ms), -EINVAL);

	char out[64];
	sl_format_timestamp(1795827723250ll, out, sizeof(out));
	assert_string_equal(out, "2026-11-28T01:02:03.250Z");
}

static void duration_format(void **state)
{
	char out[32];
	sl_format_duration(86400000, out, sizeof(out));
	assert_string_equal(out, "1d");
	sl_format_duration(90000, out, sizeof(out));
	assert_string_equal(out, "90s");
	sl_format_duration(1500, out, sizeof(out));
	assert_string_equal(out, "1500ms");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(durations),
	    cmocka_unit_test(sizes),
	    cmocka_unit_test(timestamps),
	    cmocka_unit_test(duration_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
