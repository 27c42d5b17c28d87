/* The CLI's base64 helper (tools/cli/base64.c): RFC 4648 vectors and buffer reuse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "base64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void rfc4648_vectors(void **state)
{
	(void)state;
	static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const out[] = {"",	      "Zg==",	  "Zm8=",    "Zm9v",
					  "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	char *buf = NULL;
	size_t cap = 0;
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		long n = cli_base64_encode(in[i], strlen(in[i]), &buf, &cap);
		assert_int_equal(n, (long)strlen(out[i]));
		assert_string_equal(buf, out[i]);
		assert_true(cap >= cli_base64_encoded_size(strlen(in[i])));
	}
	free(buf);
}

static void binary_and_growth(void **state)
{
	(void)state;
	uint8_t bin[] = {0x00, 0xff, 0xfe, 0x10, 0x80};
	char *buf = NULL;
	size_t cap = 0;
	assert_int_equal(cli_base64_encode(bin, sizeof(bin), &buf, &cap), 8);
	assert_string_equal(buf, "AP/+EIA=");
	/* A bigger input grows the buffer; a smaller one reuses it. */
	size_t big = 100000;
	uint8_t *data = calloc(1, big);
	assert_int_equal(cli_base64_encode(data, big, &buf, &cap), (long)(4 * ((big + 2) / 3)));
	size_t cap_big = cap;
	assert_int_equal(cli_base64_encode("f", 1, &buf, &cap), 4);
	assert_int_equal(cap, cap_big);
	assert_string_equal(buf, "Zg==");
	free(data);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rfc4648_vectors),
	    cmocka_unit_test(binary_and_growth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
