/* SigV4 verification (src/kinesis/sigv4.c) against a request signed by botocore's SigV4Auth. */
#include "kinesis/sigv4.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* botocore 1.43 SigV4Auth('kinesis', 'us-east-1'), key AKIDEXAMPLE, POST http://127.0.0.1:7401/ */
static const char body[] = "{\"StreamName\":\"orders\",\"Limit\":5}";
static const char date[] = "20261128T043624Z";
static const char good_auth[] =
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kinesis/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
    "Signature=1216ea2d31b04a11490f8235f2e0aa48234d2bd9568dcfeaf67416321176d19c";
static const char secret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
static const int64_t signed_ms = 1795840584000; /* 2026-11-28T04:36:24Z */

#define H(n, v)                                                                                    \
	{                                                                                          \
		n, sizeof(n) - 1, v, strlen(v)                                                     \
	}

static const char *lookup(void *ctx, const char *id)
{
	return strcmp(id, "AKIDEXAMPLE") == 0 ? secret : NULL;
}

static int verify(const char *auth, const char *target, const char *host, const char *bdy,
		  int64_t now)
{
	struct kin_header h[] = {H("content-type", "application/x-amz-json-1.1"),
				 H("x-amz-target", target), H("x-amz-date", date), H("host", host),
				 H("authorization", auth ? auth : "")};
	struct kin_request req = {.method = "POST",
				  .path = "/",
				  .headers = h,
				  .nheaders = auth ? 5 : 4,
				  .body = (const uint8_t *)bdy,
				  .body_len = strlen(bdy)};
	char msg[256];
	return kin_sigv4_verify(&req, lookup, NULL, now, msg, sizeof(msg));
}

static void botocore_signature_verifies(void **state)
{
	assert_int_equal(
	    verify(good_auth, "Kinesis_20131202.ListShards", "127.0.0.1:7401", body, signed_ms),
	    KIN_SIGV4_OK);
	/* header values are trimmed before signing */
	assert_int_equal(
	    verify(good_auth, "  Kinesis_20131202.ListShards ", "127.0.0.1:7401", body, signed_ms),
	    KIN_SIGV4_OK);
}

static void any_change_breaks_it(void **state)
{
	const char *T = "Kinesis_20131202.ListShards", *host = "127.0.0.1:7401";
	assert_int_equal(verify(good_auth, "Kinesis_20131202.DeleteStream", host, body, signed_ms),
			 KIN_SIGV4_BAD_SIGNATURE);
	assert_int_equal(verify(good_auth, T, "127.0.0.1:7402", body, signed_ms),
			 KIN_SIGV4_BAD_SIGNATURE);
	assert_int_equal(
	    verify(good_auth, T, host, "{\"StreamName\":\"orders\",\"Limit\":6}", signed_ms),
	    KIN_SIGV4_BAD_SIGNATURE);
	char bad[sizeof(good_auth)];
	memcpy(bad, good_auth, sizeof(bad));
	bad[sizeof(bad) - 2] = bad[sizeof(bad) - 2] == 'c' ? 'd' : 'c';
	assert_int_equal(verify(bad, T, host, body, signed_ms), KIN_SIGV4_BAD_SIGNATURE);
}

static void keys_dates_and_shapes(void **state)
{
	const char *T = "Kinesis_20131202.ListShards", *host = "127.0.0.1:7401";
	assert_int_equal(verify(NULL, T, host, body, signed_ms), KIN_SIGV4_MISSING);
	char other[sizeof(good_auth)];
	memcpy(other, good_auth, sizeof(other));
	memcpy(strstr(other, "AKIDEXAMPLE"), "AKIDOTHERXX", 11);
	assert_int_equal(verify(other, T, host, body, signed_ms), KIN_SIGV4_UNKNOWN_KEY);
	assert_int_equal(verify(good_auth, T, host, body, signed_ms + 15 * 60 * 1000),
			 KIN_SIGV4_OK);
	assert_int_equal(verify(good_auth, T, host, body, signed_ms + 15 * 60 * 1000 + 1),
			 KIN_SIGV4_EXPIRED);
	assert_int_equal(verify(good_auth, T, host, body, signed_ms - 16 * 60 * 1000),
			 KIN_SIGV4_EXPIRED);
	static const char *const malformed[] = {
	    "Bearer abc",
	    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kinesis/aws4_request",
	    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261127/us-east-1/kinesis/aws4_request, "
	    "SignedHeaders=host, "
	    "Signature=1216ea2d31b04a11490f8235f2e0aa48234d2bd9568dcfeaf6741632117"
	    "6d19c",
	    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kinesis, "
	    "SignedHeaders=host, "
	    "Signature=1216ea2d31b04a11490f8235f2e0aa48234d2bd9568dcfeaf67416321176d19c",
	    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kinesis/aws4_request, "
	    "SignedHeaders=host, Signature=12",
	};
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
		assert_int_equal(verify(malformed[i], T, host, body, signed_ms),
				 KIN_SIGV4_MALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(botocore_signature_verifies),
	    cmocka_unit_test(any_change_breaks_it),
	    cmocka_unit_test(keys_dates_and_shapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
