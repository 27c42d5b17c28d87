/*
 * s3:// objstore against real servers, started by run_s3_test.py (which also explains them):
 * s3rver (S3_ENDPOINT, bucket S3_BUCKET) for the S3 semantics, a Python stub (S3_STUB_ENDPOINT)
 * that verifies SigV4 independently and plays failures, and S3_DEAD_ENDPOINT where nothing
 * listens. Object contents are also checked with an independent client: the curl command line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "common/buf.h"
#include "objstore/objstore.h"

static const char *need(const char *name)
{
	const char *v = getenv(name);
	if (!v || !v[0]) {
		fprintf(stderr, "%s not set: run through run_s3_test.py\n", name);
		exit(77);
	}
	return v;
}

/* s3://BUCKET + rest */
static struct sl_objstore *open_s3(const char *bucket, const char *rest,
				   struct sl_objstore_options *o)
{
	char url[256];
	snprintf(url, sizeof(url), "s3://%s%s", bucket, rest);
	struct sl_objstore *os = NULL;
	struct sl_objstore_error err;
	int r = sl_objstore_create(url, o, &os, &err);
	if (r != 0)
		fail_msg("create %s: %d %s", url, r, err.message);
	return os;
}

static struct sl_objstore_options s3rver_opts(void)
{
	struct sl_objstore_options o = {.endpoint = need("S3_ENDPOINT"),
					.access_key_id = need("S3_ACCESS_KEY"),
					.secret_access_key = need("S3_SECRET"),
					.timeout_ms = 60000};
	return o;
}

static void put_ok(struct sl_objstore *os, const char *key, const void *p, size_t n)
{
	struct sl_objstore_error err;
	int r = sl_objstore_put(os, key, p, n, &err);
	if (r != 0)
		fail_msg("put %s: %d %s", key, r, err.message);
}

static void get_eq(struct sl_objstore *os, const char *key, const void *p, size_t n)
{
	struct sl_buf b;
	sl_buf_init(&b);
	struct sl_objstore_error err;
	int r = sl_objstore_get(os, key, &b, &err);
	if (r != 0)
		fail_msg("get %s: %d %s", key, r, err.message);
	assert_int_equal(b.len, n);
	if (n)
		assert_memory_equal(b.data, p, n);
	sl_buf_finish(&b);
}

/* Fetch BUCKET/full_key with the curl command line (its own SigV4) and compare. */
static void curl_cli_eq(const char *full_key_encoded, const void *p, size_t n)
{
	char out[512], cmd[2048];
	snprintf(out, sizeof(out), "%s/cli-get.bin", need("S3_WORK_DIR"));
	snprintf(cmd, sizeof(cmd),
		 "curl -sS -f --aws-sigv4 aws:amz:us-east-1:s3 --user '%s:%s' "
		 "-H 'x-amz-content-sha256: "
		 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' "
		 "-o '%s' '%s/%s/%s'",
		 need("S3_ACCESS_KEY"), need("S3_SECRET"), out, need("S3_ENDPOINT"),
		 need("S3_BUCKET"), full_key_encoded);
	assert_int_equal(system(cmd), 0);
	FILE *f = fopen(out, "rb");
	assert_non_null(f);
	uint8_t *got = malloc(n + 1);
	size_t m = fread(got, 1, n + 1, f);
	fclose(f);
	assert_int_equal(m, n);
	if (n)
		assert_memory_equal(got, p, n);
	free(got);
	remove(out);
}

struct listing {
	int n;
	char keys[64][128];
	uint64_t sizes[64];
};

static int on_key(const char *key, uint64_t size, void *ctx)
{
	struct listing *l = ctx;
	assert_true(l->n < 64);
	snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", key);
	l->sizes[l->n++] = size;
	return 0;
}

static void put_get_delete(void **state)
{
	struct sl_objstore_options o = s3rver_opts();
	struct sl_objstore *os = open_s3(need("S3_BUCKET"), "/archive", &o);
	const char *keys[] = {"2026/11/28/01/orders-shardId-000000000001-1-2.jsonl.zst",
			      "odd chars/a+b=c&d,e;f@g(h)!~'x", "cl\xc3\xa9/\xf0\x9f\x99\x82"};
	uint8_t bin[300];
	for (int i = 0; i < 300; i++)
		bin[i] = (uint8_t)(i * 31);
	for (size_t i = 0; i < 3; i++)
		put_ok(os, keys[i], bin, 100 * (i + 1));
	for (size_t i = 0; i < 3; i++)
		get_eq(os, keys[i], bin, 100 * (i + 1));
	put_ok(os, "empty", "", 0);
	get_eq(os, "empty", "", 0);
	/* The same object through an independent client. */
	curl_cli_eq("archive/2026/11/28/01/orders-shardId-000000000001-1-2.jsonl.zst", bin, 100);

	struct sl_buf b;
	sl_buf_init(&b);
	struct sl_objstore_error err;
	assert_int_equal(sl_objstore_get(os, "missing/key", &b, &err), -ENOENT);
	assert_int_equal(err.http_status, 404);
	assert_string_equal(err.code, "NoSuchKey");
	assert_false(err.retryable);
	assert_non_null(strstr(err.message, "archive/missing/key"));

	struct listing l = {0};
	assert_int_equal(sl_objstore_list(os, "", on_key, &l, &err), 4);
	assert_string_equal(l.keys[0], keys[0]);
	assert_int_equal(l.sizes[0], 100);

	assert_int_equal(sl_objstore_delete(os, keys[1], &err), 0);
	assert_int_equal(sl_objstore_get(os, keys[1], &b, &err), -ENOENT);
	assert_int_equal(sl_objstore_delete(os, keys[1], &err), 0); /* idempotent */
	memset(&l, 0, sizeof(l));
	assert_int_equal(sl_objstore_list(os, "", on_key, &l, &err), 3);
	sl_buf_finish(&b);
	sl_objstore_destroy(os);
}

static void list_pages(void **state)
{
	struct sl_objstore_options o = s3rver_opts();
	o.list_max_keys = 3; /* 11 keys: 4 pages, continuation tokens in between */
	struct sl_objstore *os = open_s3(need("S3_BUCKET"), "/pages/", &o);
	char key[64];
	for (int i = 10; i >= 0; i--) {
		snprintf(key, sizeof(key), "p/%02d", i);
		put_ok(os, key, key, strlen(key));
	}
	put_ok(os, "q/other", "x", 1);
	struct listing l = {0};
	struct sl_objstore_error err;
	int r = sl_objstore_list(os, "p/", on_key, &l, &err);
	if (r != 11)
		fail_msg("list: %d %s", r, err.message);
	for (int i = 0; i <= 10; i++) {
		snprintf(key, sizeof(key), "p/%02d", i);
		assert_string_equal(l.keys[i], key);
		assert_int_equal(l.sizes[i], 4);
	}
	memset(&l, 0, sizeof(l));
	assert_int_equal(sl_objstore_list(os, NULL, on_key, &l, &err), 12);
	sl_objstore_destroy(os);
}

static void multipart_40mib(void **state)
{
	struct sl_objstore_options o = s3rver_opts();
	struct sl_objstore *os = open_s3(need("S3_BUCKET"), "/mp", &o);
	size_t n = 40u << 20;
	uint8_t *big = malloc(n);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		big[i] = (uint8_t)x;
	}
	put_ok(os, "big.bin", big, n); /* 5 parts of 8 MiB */
	get_eq(os, "big.bin", big, n);
	curl_cli_eq("mp/big.bin", big, n);
	struct listing l = {0};
	struct sl_objstore_error err;
	assert_int_equal(sl_objstore_list(os, "big", on_key, &l, &err), 1);
	assert_int_equal(l.sizes[0], n);
	free(big);
	sl_objstore_destroy(os);
}

static void wrong_access_key(void **state)
{
	struct sl_objstore_options o = s3rver_opts();
	o.access_key_id = "NOT-A-KEY";
	struct sl_objstore *os = open_s3(need("S3_BUCKET"), "", &o);
	struct sl_objstore_error err;
	assert_int_equal(sl_objstore_put(os, "k", "v", 1, &err), SLUICE_ERR_UNAUTHORIZED);
	assert_int_equal(err.http_status, 403);
	assert_string_equal(err.code, "InvalidAccessKeyId");
	assert_false(err.retryable);
	sl_objstore_destroy(os);
}

static struct sl_objstore_options stub_opts(void)
{
	struct sl_objstore_options o = {.endpoint = need("S3_STUB_ENDPOINT"),
					.region = "eu-west-3",
					.access_key_id = need("S3_STUB_KEY"),
					.secret_access_key = need("S3_STUB_SECRET"),
					.session_token = need("S3_STUB_TOKEN"),
					.timeout_ms = 20000};
	return o;
}

/* A GET of the stub's own control paths, with plain libcurl. Returns a malloc'd string. */
static char *stub_get(const char *path)
{
	char url[256];
	snprintf(url, sizeof(url), "%s%s", need("S3_STUB_ENDPOINT"), path);
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_cleanup(c);
	fclose(f);
	return text;
}

static void sigv4_verified(void **state)
{
	/* The stub recomputes every signature (its own SigV4 code, secret with '/' and '+'). */
	struct sl_objstore_options o = stub_opts();
	struct sl_objstore *os = open_s3("sigv4", "/pre", &o);
	const char *key = "odd chars/a+b=c&d~x";
	put_ok(os, key, "payload", 7);
	get_eq(os, key, "payload", 7);
	put_ok(os, "second", "22", 2);
	struct listing l = {0};
	struct sl_objstore_error err;
	/* Two pages; the continuation token needs query encoding. */
	int r = sl_objstore_list(os, "", on_key, &l, &err);
	if (r != 2)
		fail_msg("list: %d %s", r, err.message);
	assert_string_equal(l.keys[0], key);
	assert_string_equal(l.keys[1], "second");
	assert_int_equal(sl_objstore_delete(os, "second", &err), 0);

	char *auth = stub_get("/__stub/auth");
	assert_non_null(strstr(auth, "AWS4-HMAC-SHA256 Credential=STUBKEY/"));
	assert_non_null(strstr(auth, "/eu-west-3/s3/aws4_request"));
	assert_non_null(strstr(auth, "x-amz-content-sha256"));
	assert_non_null(strstr(auth, "x-amz-security-token"));
	free(auth);
	sl_objstore_destroy(os);

	/* The wrong secret: the stub's signature differs. */
	o.secret_access_key = "wrong";
	os = open_s3("sigv4", "/pre", &o);
	assert_int_equal(sl_objstore_put(os, "k", "v", 1, &err), SLUICE_ERR_UNAUTHORIZED);
	assert_string_equal(err.code, "SignatureDoesNotMatch");
	assert_false(err.retryable);
	sl_objstore_destroy(os);
}

static void server_down(void **state)
{
	struct sl_objstore_options o = s3rver_opts();
	o.endpoint = need("S3_DEAD_ENDPOINT");
	struct sl_objstore *os = open_s3(need("S3_BUCKET"), "", &o);
	struct sl_objstore_error err;
	assert_int_equal(sl_objstore_put(os, "k", "v", 1, &err), -ECONNREFUSED);
	assert_true(err.retryable);
	assert_int_equal(err.http_status, 0);
	struct sl_buf b;
	sl_buf_init(&b);
	assert_int_equal(sl_objstore_get(os, "k", &b, &err), -ECONNREFUSED);
	assert_int_equal(sl_objstore_list(os, "", on_key, NULL, &err), -ECONNREFUSED);
	sl_buf_finish(&b);
	sl_objstore_destroy(os);
}

static void server_errors(void **state)
{
	struct sl_objstore_options o = stub_opts();
	struct sl_objstore_error err;
	struct sl_objstore *os = open_s3("fail503", "", &o);
	assert_int_equal(sl_objstore_put(os, "k", "v", 1, &err), SLUICE_ERR_UNAVAILABLE);
	assert_int_equal(err.http_status, 503);
	assert_string_equal(err.code, "ServiceUnavailable");
	assert_true(err.retryable);
	sl_objstore_destroy(os);

	os = open_s3("slowdown", "", &o);
	assert_int_equal(sl_objstore_put(os, "k", "v", 1, &err), SLUICE_ERR_THROTTLED);
	assert_true(err.retryable);
	sl_objstore_destroy(os);

	os = open_s3("nosuchbucket", "", &o);
	assert_int_equal(sl_objstore_put(os, "k", "v", 1, &err), -ENOENT);
	assert_string_equal(err.code, "NoSuchBucket");
	assert_false(err.retryable);
	sl_objstore_destroy(os);

	o.timeout_ms = 500;
	os = open_s3("hang", "", &o);
	assert_int_equal(sl_objstore_put(os, "k", "v", 1, &err), SLUICE_ERR_TIMEOUT);
	assert_true(err.retryable);
	sl_objstore_destroy(os);
}

static void multipart_abort(void **state)
{
	struct sl_objstore_options o = stub_opts();
	o.part_size_bytes = 5u << 20;
	o.multipart_threshold_bytes = 5u << 20;
	struct sl_objstore *os = open_s3("failpart", "/x", &o);
	size_t n = (5u << 20) + 1;
	uint8_t *p = calloc(1, n);
	struct sl_objstore_error err;
	assert_int_equal(sl_objstore_put(os, "obj", p, n, &err), SLUICE_ERR_UNAVAILABLE);
	assert_string_equal(err.code, "InternalError");
	assert_true(err.retryable);
	char *aborts = stub_get("/__stub/aborts");
	/* The failed upload was aborted, with the upload id as the server gave it. */
	assert_string_equal(aborts, "x/obj UP+1/x=");
	free(aborts);
	free(p);
	sl_objstore_destroy(os);
}

int main(void)
{
	need("S3_ENDPOINT");
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(put_get_delete),  cmocka_unit_test(list_pages),
	    cmocka_unit_test(multipart_40mib), cmocka_unit_test(wrong_access_key),
	    cmocka_unit_test(sigv4_verified),  cmocka_unit_test(server_down),
	    cmocka_unit_test(server_errors),   cmocka_unit_test(multipart_abort),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
