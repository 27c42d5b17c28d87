#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "archive/archive_format.h"
#include "common/buf.h"

/* 2026-11-28T01:02:03.250Z */
#define TS 1795827723250ll

struct rec {
	uint64_t seq;
	int64_t ts;
	const char *key;
	size_t key_len;
	const uint8_t *data;
	size_t data_len;
};

struct collected {
	size_t n;
	char stream[130];
	uint32_t shard[16];
	uint64_t seq[16];
	int64_t ts[16];
	char key[16][300];
	size_t key_len[16];
	uint8_t *data[16];
	size_t data_len[16];
	int stop_after; /* 0: never */
};

static int collect(const struct sl_archive_record *r, void *ctx)
{
	struct collected *c = ctx;
	assert_true(c->n < 16);
	snprintf(c->stream, sizeof(c->stream), "%s", r->stream);
	c->shard[c->n] = r->shard_id;
	c->seq[c->n] = r->seq;
	c->ts[c->n] = r->ts_ms;
	memcpy(c->key[c->n], r->key, r->key_len);
	c->key_len[c->n] = r->key_len;
	c->data[c->n] = malloc(r->data_len + 1);
	memcpy(c->data[c->n], r->data, r->data_len);
	c->data_len[c->n] = r->data_len;
	assert_int_equal(r->line, c->n + 1);
	c->n++;
	if (c->stop_after && (int)c->n == c->stop_after)
		return 42;
	return 0;
}

static void collected_free(struct collected *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->data[i]);
	memset(c, 0, sizeof(*c));
}

static struct sl_archive_writer *writer(enum sl_archive_format f, enum sl_archive_compression c)
{
	struct sl_archive_options o = {.format = f, .compression = c};
	struct sl_archive_writer *w = NULL;
	assert_int_equal(sl_archive_writer_create("orders.v1-eu", 7, &o, &w), 0);
	return w;
}

static void add(struct sl_archive_writer *w, uint64_t seq, int64_t ts, const char *key,
		size_t key_len, const void *data, size_t data_len)
{
	struct sluice_record r = {.seq = seq,
				  .ts_ms = ts,
				  .key = key,
				  .key_len = (uint16_t)key_len,
				  .data = data,
				  .data_len = (uint32_t)data_len};
	assert_int_equal(sl_archive_writer_add(w, &r), 0);
}

/* A zstd JSONL writer holding records 1..count ("record number N", key "key"). */
static struct sl_archive_writer *numbered_records(uint64_t count)
{
	struct sl_archive_writer *w = writer(SL_ARCHIVE_JSONL, SL_ARCHIVE_ZSTD);
	for (uint64_t s = 1; s <= count; s++) {
		char data[64];
		int n = snprintf(data, sizeof(data), "record number %llu", (unsigned long long)s);
		add(w, s, TS + (int64_t)s, "key", 3, data, (size_t)n);
	}
	return w;
}

static uint8_t binary[256];

static const char utf8_key[] = "cl\xc3\xa9-\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87-\xf0\x9f\x99\x82";
static const char esc_key[] = "q\"b\\s/n\nt\tc\x01\x1f\x7f end";
static const char nul_key[] = {'a', '\0', 'b'};

static void check_fill(const struct collected *c)
{
	assert_int_equal(c->n, 4);
	assert_string_equal(c->stream, "orders.v1-eu");
	for (int i = 0; i < 4; i++)
		assert_int_equal(c->shard[i], 7);
	assert_int_equal(c->seq[0], 1);
	assert_int_equal(c->seq[3], 18446744073709551615ull);
	assert_int_equal(c->ts[2], TS + 2);
	assert_int_equal(c->data_len[0], 256);
	assert_memory_equal(c->data[0], binary, 256);
	assert_int_equal(c->key_len[1], strlen(utf8_key));
	assert_memory_equal(c->key[1], utf8_key, strlen(utf8_key));
	assert_int_equal(c->data_len[1], 0);
	assert_int_equal(c->key_len[2], strlen(esc_key));
	assert_memory_equal(c->key[2], esc_key, strlen(esc_key));
	assert_int_equal(c->key_len[3], 3);
	assert_memory_equal(c->key[3], nul_key, 3);
	assert_memory_equal(c->data[3], "yz", 2);
}

static void roundtrip(void **state)
{
	for (int comp = 0; comp < 2; comp++) {
		struct sl_archive_writer *w = writer(SL_ARCHIVE_JSONL, comp);
		for (int i = 0; i < 256; i++)
			binary[i] = (uint8_t)i;
		add(w, 1, TS, "k", 1, binary, sizeof(binary));
		add(w, 2, TS + 1, utf8_key, strlen(utf8_key), "", 0);
		add(w, 5, TS + 2, esc_key, strlen(esc_key), "x", 1);
		add(w, 18446744073709551615ull, TS + 3, nul_key, sizeof(nul_key), "yz", 2);
		const uint8_t *obj;
		size_t len;
		assert_int_equal(sl_archive_writer_finish(w, &obj, &len), 0);
		struct sl_archive_writer_info info;
		sl_archive_writer_info(w, &info);
		assert_int_equal(info.records, 4);
		assert_int_equal(info.first_seq, 1);
		assert_int_equal(info.last_seq, 18446744073709551615ull);
		assert_int_equal(info.first_ts_ms, TS);
		assert_int_equal(info.out_bytes, len);
		assert_string_equal(info.ext, comp == SL_ARCHIVE_ZSTD ? ".jsonl.zst" : ".jsonl");
		if (comp == SL_ARCHIVE_NONE)
			assert_int_equal(info.raw_bytes, len);

		struct collected c = {0};
		char msg[200] = "";
		int r = sl_archive_read(obj, len, comp, collect, &c, msg, sizeof(msg));
		if (r != 4)
			fail_msg("read: %d %s", r, msg);
		check_fill(&c);
		collected_free(&c);

		/* The callback's nonzero value stops the read and comes back. */
		c.stop_after = 2;
		assert_int_equal(sl_archive_read(obj, len, comp, collect, &c, NULL, 0), 42);
		assert_int_equal(c.n, 2);
		collected_free(&c);

		/* Reset: the same records give the very same object. */
		uint8_t *copy = malloc(len);
		memcpy(copy, obj, len);
		size_t copy_len = len;
		sl_archive_writer_reset(w);
		add(w, 1, TS, "k", 1, binary, sizeof(binary));
		add(w, 2, TS + 1, utf8_key, strlen(utf8_key), "", 0);
		add(w, 5, TS + 2, esc_key, strlen(esc_key), "x", 1);
		add(w, 18446744073709551615ull, TS + 3, nul_key, sizeof(nul_key), "yz", 2);
		assert_int_equal(sl_archive_writer_finish(w, &obj, &len), 0);
		assert_int_equal(len, copy_len);
		assert_memory_equal(obj, copy, len);
		free(copy);
		sl_archive_writer_destroy(w);
	}
}

static void exact_line(void **state)
{
	struct sl_archive_writer *w = writer(SL_ARCHIVE_JSONL, SL_ARCHIVE_NONE);
	add(w, 42, 1700000000123, "a\"b", 3, "hello", 5);
	const uint8_t *obj;
	size_t len;
	assert_int_equal(sl_archive_writer_finish(w, &obj, &len), 0);
	const char *want = "{\"stream\":\"orders.v1-eu\",\"shard\":\"shardId-000000000007\","
			   "\"seq\":\"42\",\"ts\":1700000000123,\"key\":\"a\\\"b\","
			   "\"data\":\"aGVsbG8=\"}\n";
	assert_int_equal(len, strlen(want));
	assert_memory_equal(obj, want, len);
	sl_archive_writer_destroy(w);
}

static void writer_rejects(void **state)
{
	struct sl_archive_writer *w = writer(SL_ARCHIVE_JSONL, SL_ARCHIVE_ZSTD);
	struct sluice_record r = {.seq = 10, .ts_ms = TS, .key = "k", .key_len = 1};
	assert_int_equal(sl_archive_writer_add(w, &r), 0);
	r.seq = 10; /* not increasing */
	assert_int_equal(sl_archive_writer_add(w, &r), SLUICE_ERR_INVALID_ARGUMENT);
	r.seq = 11;
	r.key = "\xff\xfe";
	r.key_len = 2;
	assert_int_equal(sl_archive_writer_add(w, &r), SLUICE_ERR_INVALID_KEY);
	r.key = "\xed\xa0\x80"; /* a surrogate */
	r.key_len = 3;
	assert_int_equal(sl_archive_writer_add(w, &r), SLUICE_ERR_INVALID_KEY);
	r.key_len = 0;
	assert_int_equal(sl_archive_writer_add(w, &r), SLUICE_ERR_INVALID_KEY);
	r.key = "k";
	r.key_len = 1;
	r.ts_ms = -1;
	assert_int_equal(sl_archive_writer_add(w, &r), SLUICE_ERR_INVALID_ARGUMENT);
	const uint8_t *obj;
	size_t len;
	assert_int_equal(sl_archive_writer_finish(w, &obj, &len), 0);
	r.ts_ms = TS;
	assert_int_equal(sl_archive_writer_add(w, &r), SLUICE_ERR_INVALID_ARGUMENT); /* finished */
	sl_archive_writer_destroy(w);

	struct sl_archive_writer *bad = NULL;
	assert_int_equal(sl_archive_writer_create("no/slash", 0, NULL, &bad),
			 SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sl_archive_writer_create("", 0, NULL, &bad), SLUICE_ERR_INVALID_NAME);
	struct sl_archive_options o = {.zstd_level = 1000};
	assert_int_equal(sl_archive_writer_create("s", 0, &o, &bad), SLUICE_ERR_INVALID_ARGUMENT);
	assert_null(bad);
	sl_archive_writer_destroy(NULL);
}

static void empty_object(void **state)
{
	for (int comp = 0; comp < 2; comp++) {
		struct sl_archive_writer *w = writer(SL_ARCHIVE_JSONL, comp);
		const uint8_t *obj;
		size_t len;
		assert_int_equal(sl_archive_writer_finish(w, &obj, &len), 0);
		if (comp == SL_ARCHIVE_NONE)
			assert_int_equal(len, 0);
		else
			assert_true(len > 0);
		struct collected c = {0};
		assert_int_equal(sl_archive_read(obj, len, comp, collect, &c, NULL, 0), 0);
		sl_archive_writer_destroy(w);
	}
}

static void raw_format(void **state)
{
	for (int comp = 0; comp < 2; comp++) {
		struct sl_archive_writer *w = writer(SL_ARCHIVE_RAW, comp);
		add(w, 1, TS, "k", 1, "{\"a\":1}", 7);
		add(w, 2, TS, "k", 1, "", 0);
		add(w, 3, TS, "k", 1, "\x00\xff", 2);
		const uint8_t *obj;
		size_t len;
		assert_int_equal(sl_archive_writer_finish(w, &obj, &len), 0);
		struct sl_archive_writer_info info;
		sl_archive_writer_info(w, &info);
		assert_string_equal(info.ext, comp == SL_ARCHIVE_ZSTD ? ".raw.zst" : ".raw");
		struct sl_buf out;
		sl_buf_init(&out);
		char msg[200];
		assert_int_equal(
		    sl_archive_decompress(obj, len, comp, 1 << 20, &out, msg, sizeof(msg)), 0);
		assert_int_equal(out.len, 7 + 1 + 1 + 3);
		assert_memory_equal(out.data, "{\"a\":1}\n\n\x00\xff\n", out.len);
		/* The size cap holds. */
		sl_buf_reset(&out);
		assert_int_equal(sl_archive_decompress(obj, len, comp, 5, &out, msg, sizeof(msg)),
				 SLUICE_ERR_CORRUPT);
		sl_buf_finish(&out);
		/* Raw objects are not restorable: the reader says so, with the line. */
		struct collected c = {0};
		assert_int_equal(sl_archive_read(obj, len, comp, collect, &c, msg, sizeof(msg)),
				 SLUICE_ERR_CORRUPT);
		assert_non_null(strstr(msg, "line 1:"));
		sl_archive_writer_destroy(w);
	}
}

static int count_only(const struct sl_archive_record *r, void *ctx)
{
	(*(size_t *)ctx)++;
	return 0;
}

/* FNV-1a over every field of every record. */
static int digest(const struct sl_archive_record *r, void *ctx)
{
	uint64_t *h = ctx;
	uint64_t v[3] = {r->seq, (uint64_t)r->ts_ms, r->shard_id};
	const uint8_t *parts[3] = {(const uint8_t *)v, (const uint8_t *)r->key, r->data};
	size_t lens[3] = {sizeof(v), r->key_len, r->data_len};
	for (int p = 0; p < 3; p++)
		for (size_t i = 0; i < lens[p]; i++)
			*h = (*h ^ parts[p][i]) * 1099511628211ull;
	return 0;
}

static void zstd_truncated(void **state)
{
	struct sl_archive_writer *w = numbered_records(200);
	const uint8_t *obj;
	size_t len;
	assert_int_equal(sl_archive_writer_finish(w, &obj, &len), 0);
	char msg[200];
	size_t n = 0;
	assert_int_equal(
	    sl_archive_read(obj, len, SL_ARCHIVE_ZSTD, count_only, &n, msg, sizeof(msg)), 200);
	for (size_t cut = 0; cut < len; cut++) {
		n = 0;
		msg[0] = '\0';
		assert_int_equal(
		    sl_archive_read(obj, cut, SL_ARCHIVE_ZSTD, count_only, &n, msg, sizeof(msg)),
		    SLUICE_ERR_CORRUPT);
		assert_true(msg[0] != '\0');
		assert_true(n <= 200); /* records before the damage may have been delivered */
	}
	/* Trailing bytes after the frame. */
	uint8_t *more = malloc(len + 1);
	memcpy(more, obj, len);
	more[len] = 0;
	assert_int_equal(
	    sl_archive_read(more, len + 1, SL_ARCHIVE_ZSTD, count_only, &n, msg, sizeof(msg)),
	    SLUICE_ERR_CORRUPT);
	assert_non_null(strstr(msg, "after the end"));
	/*
	 * A flipped bit anywhere: the frame checksum (or the decoder) catches it, unless the bit
	 * did not change the content (a header bit such as a larger window size): then every
	 * record must come back exactly.
	 */
	uint64_t want = 14695981039346656037ull;
	assert_int_equal(sl_archive_read(obj, len, SL_ARCHIVE_ZSTD, digest, &want, NULL, 0), 200);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(more, obj, len);
			more[i] ^= (uint8_t)(1u << bit);
			uint64_t h = 14695981039346656037ull;
			int r = sl_archive_read(more, len, SL_ARCHIVE_ZSTD, digest, &h, msg,
						sizeof(msg));
			if (r != SLUICE_ERR_CORRUPT && !(r == 200 && h == want))
				fail_msg("byte %zu bit %d: %d", i, bit, r);
		}
	}
	free(more);
	sl_archive_writer_destroy(w);
}

/* A plain object whose line 2 is replaced by bad. */
static void expect_corrupt(const char *bad, const char *msg_part)
{
	char obj[2048];
	int n =
	    snprintf(obj, sizeof(obj),
		     "{\"stream\":\"s\",\"shard\":\"shardId-000000000001\",\"seq\":\"1\",\"ts\":5,"
		     "\"key\":\"k\",\"data\":\"\"}\n%s\n"
		     "{\"stream\":\"s\",\"shard\":\"shardId-000000000001\",\"seq\":\"9\",\"ts\":5,"
		     "\"key\":\"k\",\"data\":\"\"}\n",
		     bad);
	struct collected c = {0};
	char msg[200] = "";
	int r = sl_archive_read((const uint8_t *)obj, (size_t)n, SL_ARCHIVE_NONE, collect, &c, msg,
				sizeof(msg));
	if (r != SLUICE_ERR_CORRUPT || strncmp(msg, "line 2: ", 8) != 0 || !strstr(msg, msg_part))
		fail_msg("%s -> %d \"%s\" (want \"line 2: ...%s\")", bad, r, msg, msg_part);
	assert_int_equal(c.n, 1); /* line 1 was delivered */
	collected_free(&c);
}

#define LINE(seq, ts, key, data, shard, stream)                                                    \
	"{\"stream\":\"" stream "\",\"shard\":\"" shard "\",\"seq\":\"" seq "\",\"ts\":" ts        \
	",\"key\":\"" key "\",\"data\":\"" data "\"}"

/* The writer's exact shape (parsed without jansson) and other valid shapes (through jansson)
 * give the same records. */
static void fast_and_slow_paths_agree(void **state)
{
	(void)state;
	const char *obj = LINE(
	    "3", "1795827723250", "k\\u00e9y", "aGk=", "shardId-000000000002",
	    "s") "\n"
		 "{\"data\":\"aGk=\",\"key\":\"k\\u00e9y\",\"ts\":1795827723251,\"seq\":\"4\","
		 "\"shard\":\"shardId-000000000002\",\"stream\":\"s\"}\n"
		 "{ \"stream\" : \"s\", \"shard\":\"shardId-000000000002\",\"seq\":\"5\","
		 "\"ts\":1795827723252,\"key\":\"k\u00e9y\",\"data\":\"aGk=\"}\n" LINE(
		     "6", "1795827723253", "k\u00e9y", "aGk=", "shardId-000000000002", "s") "\n";
	struct collected c = {0};
	char msg[200] = "";
	assert_int_equal(sl_archive_read((const uint8_t *)obj, strlen(obj), SL_ARCHIVE_NONE,
					 collect, &c, msg, sizeof(msg)),
			 4);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(c.seq[i], 3 + i);
		assert_int_equal(c.ts[i], 1795827723250ll + (int64_t)i);
		assert_int_equal(c.shard[i], 2);
		assert_int_equal(c.key_len[i], 4);
		assert_memory_equal(c.key[i], "k\xc3\xa9y", 4);
		assert_int_equal(c.data_len[i], 2);
		assert_memory_equal(c.data[i], "hi", 2);
	}
	assert_string_equal(c.stream, "s");
	collected_free(&c);
}

/*
 * The fast path scans strings eight bytes at a time for escapes and control characters: one at
 * any offset of a long data field must still send the line to jansson, which decodes an escaped
 * slash ("\/", valid JSON and base64 after decoding) and refuses a raw control character.
 */
static void escapes_at_every_offset(void **state)
{
	(void)state;
	/* 40 base64 chars (30 bytes of digits); one of them becomes a '/', escaped or not. */
	const char *b64 = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5";
	size_t n = strlen(b64);
	for (size_t at = 0; at < n; at++) {
		char data[64], line[300];
		snprintf(data, sizeof(data), "%.*s\\/%s", (int)at, b64, b64 + at + 1);
		snprintf(line, sizeof(line),
			 LINE("1", "5", "k", "%s", "shardId-000000000001", "s") "\n", data);
		struct collected c = {0};
		char msg[200] = "";
		assert_int_equal(sl_archive_read((const uint8_t *)line, strlen(line),
						 SL_ARCHIVE_NONE, collect, &c, msg, sizeof(msg)),
				 1);
		char plain[64];
		snprintf(plain, sizeof(plain), "%.*s/%s", (int)at, b64, b64 + at + 1);
		/* The same text unescaped, through the fast path: the same bytes. */
		char line2[300];
		snprintf(line2, sizeof(line2),
			 LINE("1", "5", "k", "%s", "shardId-000000000001", "s") "\n", plain);
		struct collected c2 = {0};
		assert_int_equal(sl_archive_read((const uint8_t *)line2, strlen(line2),
						 SL_ARCHIVE_NONE, collect, &c2, msg, sizeof(msg)),
				 1);
		assert_int_equal(c.data_len[0], c2.data_len[0]);
		assert_memory_equal(c.data[0], c2.data[0], c2.data_len[0]);
		collected_free(&c);
		collected_free(&c2);

		/* A raw control character at `at`: not JSON. */
		snprintf(data, sizeof(data), "%.*s\x01%s", (int)at, b64, b64 + at + 1);
		snprintf(line, sizeof(line), LINE("2", "5", "k", "%s", "shardId-000000000001", "s"),
			 data);
		expect_corrupt(line, "not JSON");
	}
}

static void corrupt_lines(void **state)
{
	expect_corrupt("not json", "not JSON");
	expect_corrupt("[1,2]", "not a JSON object");
	expect_corrupt(LINE("2", "5", "k", "", "shardId-000000000001", "s") "x", "not JSON");
	expect_corrupt("{\"stream\":\"s\",\"stream\":\"s\",\"shard\":\"shardId-000000000001\","
		       "\"seq\":\"2\",\"ts\":5,\"key\":\"k\",\"data\":\"\"}",
		       "not JSON"); /* duplicate field */
	expect_corrupt("{\"stream\":\"s\",\"shard\":\"shardId-000000000001\",\"seq\":\"2\","
		       "\"ts\":5,\"key\":\"k\"}",
		       "fields");
	expect_corrupt("{\"stream\":\"s\",\"shard\":\"shardId-000000000001\",\"seq\":\"2\","
		       "\"ts\":5,\"key\":\"k\",\"data\":\"\",\"extra\":1}",
		       "fields");
	expect_corrupt(LINE("2", "5", "k", "", "shardId-00000000001", "s"), "shard");
	expect_corrupt(LINE("2", "5", "k", "", "shard-000000000001", "s"), "shard");
	expect_corrupt(LINE("2", "5", "k", "", "shardId-999999999999", "s"), "shard");
	expect_corrupt(LINE("02", "5", "k", "", "shardId-000000000001", "s"), "seq");
	expect_corrupt(LINE("abc", "5", "k", "", "shardId-000000000001", "s"), "seq");
	expect_corrupt(LINE("18446744073709551616", "5", "k", "", "shardId-000000000001", "s"),
		       "seq");
	expect_corrupt(LINE("2", "-1", "k", "", "shardId-000000000001", "s"), "ts");
	expect_corrupt(LINE("2", "5.5", "k", "", "shardId-000000000001", "s"), "ts");
	expect_corrupt(LINE("2", "5", "", "", "shardId-000000000001", "s"), "key");
	expect_corrupt(LINE("2", "5", "k", "aGVsbG8", "shardId-000000000001", "s"), "base64");
	expect_corrupt(LINE("2", "5", "k", "aGVs bG8=", "shardId-000000000001", "s"), "base64");
	expect_corrupt(LINE("2", "5", "k", "a===", "shardId-000000000001", "s"), "base64");
	expect_corrupt(LINE("2", "5", "k", "", "shardId-000000000001", "bad/name"), "stream");
	expect_corrupt(LINE("2", "5", "k", "", "shardId-000000000001", "other"), "differ");
	expect_corrupt(LINE("2", "5", "k", "", "shardId-000000000002", "s"), "differ");
	expect_corrupt(LINE("1", "5", "k", "", "shardId-000000000001", "s"), "not above");
	expect_corrupt("", "not JSON");
	/* Shapes the fast path hands to jansson, which must refuse them too. */
	expect_corrupt(LINE("2", "05", "k", "", "shardId-000000000001", "s"), "not JSON");
	expect_corrupt(LINE("2", "5", "k\xff", "", "shardId-000000000001", "s"), "not JSON");
	expect_corrupt(LINE("2", "5", "k\x01", "", "shardId-000000000001", "s"), "not JSON");
	expect_corrupt(LINE("2", "12345678901234567890", "k", "", "shardId-000000000001", "s"),
		       "too big");

	char long_key[300];
	memset(long_key, 'k', 257);
	long_key[257] = '\0';
	char line[600];
	snprintf(line, sizeof(line),
		 "{\"stream\":\"s\",\"shard\":\"shardId-000000000001\",\"seq\":\"2\",\"ts\":5,"
		 "\"key\":\"%s\",\"data\":\"\"}",
		 long_key);
	expect_corrupt(line, "key");

	/* The last line without its newline: a truncated plain object. */
	const char *obj = LINE("1", "5", "k", "", "shardId-000000000001",
			       "s") "\n" LINE("2", "5", "k", "", "shardId-000000000001", "s");
	struct collected c = {0};
	char msg[200];
	assert_int_equal(sl_archive_read((const uint8_t *)obj, strlen(obj), SL_ARCHIVE_NONE,
					 collect, &c, msg, sizeof(msg)),
			 SLUICE_ERR_CORRUPT);
	assert_non_null(strstr(msg, "line 2: no newline"));
	collected_free(&c);
}

static void keys(void **state)
{
	char key[SL_ARCHIVE_KEY_LEN_MAX];
	/* 2026-11-28T01:02:03.250Z */
	int n = sl_archive_key("archive/", "orders", 3, 5, 17, TS, ".jsonl.zst", key, sizeof(key));
	const char *want = "archive/2026/11/28/01/orders-shardId-000000000003-"
			   "00000000000000000005-00000000000000000017.jsonl.zst";
	assert_int_equal(n, strlen(want));
	assert_string_equal(key, want);

	struct sl_archive_key_info ki;
	assert_int_equal(sl_archive_key_parse(key, (size_t)n, &ki), 0);
	assert_int_equal(ki.prefix_len, 7);
	assert_memory_equal(ki.prefix, "archive", 7);
	assert_int_equal(ki.stream_len, 6);
	assert_memory_equal(ki.stream, "orders", 6);
	assert_int_equal(ki.shard_id, 3);
	assert_int_equal(ki.first_seq, 5);
	assert_int_equal(ki.last_seq, 17);
	assert_int_equal(ki.hour_ms, TS - TS % 3600000);
	assert_int_equal(ki.format, SL_ARCHIVE_JSONL);
	assert_int_equal(ki.compression, SL_ARCHIVE_ZSTD);

	/* No prefix; a stream name that looks like the key's own parts; extremes. */
	n = sl_archive_key(NULL, "a-shardId-000000000001-x.y", 4294967295u, 0,
			   18446744073709551615ull, 0, ".raw", key, sizeof(key));
	assert_true(n > 0);
	assert_string_equal(key, "1970/01/01/00/a-shardId-000000000001-x.y-shardId-004294967295-"
				 "00000000000000000000-18446744073709551615.raw");
	assert_int_equal(sl_archive_key_parse(key, (size_t)n, &ki), 0);
	assert_int_equal(ki.prefix_len, 0);
	assert_int_equal(ki.stream_len, strlen("a-shardId-000000000001-x.y"));
	assert_int_equal(ki.shard_id, 4294967295u);
	assert_int_equal(ki.first_seq, 0);
	assert_int_equal(ki.last_seq, 18446744073709551615ull);
	assert_int_equal(ki.hour_ms, 0);
	assert_int_equal(ki.format, SL_ARCHIVE_RAW);
	assert_int_equal(ki.compression, SL_ARCHIVE_NONE);

	/* Every extension round-trips, and nested prefixes too. */
	for (int f = 0; f < 2; f++)
		for (int c = 0; c < 2; c++) {
			n = sl_archive_key("a/b/c", "s", 1, 2, 3, TS, sl_archive_ext(f, c), key,
					   sizeof(key));
			assert_true(n > 0);
			assert_int_equal(sl_archive_key_parse(key, (size_t)n, &ki), 0);
			assert_int_equal(ki.format, f);
			assert_int_equal(ki.compression, c);
			assert_int_equal(ki.prefix_len, 5);
		}

	/* Zero-padding makes byte order = sequence order. */
	char k9[SL_ARCHIVE_KEY_LEN_MAX], k10[SL_ARCHIVE_KEY_LEN_MAX];
	sl_archive_key("p", "s", 0, 9, 9, TS, ".jsonl", k9, sizeof(k9));
	sl_archive_key("p", "s", 0, 10, 10, TS, ".jsonl", k10, sizeof(k10));
	assert_true(strcmp(k9, k10) < 0);

	/* Bad input. */
	assert_int_equal(sl_archive_key("p", "s", 0, 2, 1, TS, ".jsonl", key, sizeof(key)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_archive_key("/abs", "s", 0, 1, 1, TS, ".jsonl", key, sizeof(key)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_archive_key("a//b", "s", 0, 1, 1, TS, ".jsonl", key, sizeof(key)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_archive_key("p", "s", 0, 1, 1, TS, ".txt", key, sizeof(key)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_archive_key("p", "a/b", 0, 1, 1, TS, ".jsonl", key, sizeof(key)),
			 SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sl_archive_key("p", "s", 0, 1, 1, TS, ".jsonl", key, 20), -ENAMETOOLONG);

	const char *bad[] = {
	    "",
	    "x.jsonl.zst",
	    "p/2026/11/28/01/s-shardId-000000000003-00000000000000000005-"
	    "00000000000000000017.txt",
	    "p/2026/11/28/01/s-shardId-000000000003-00000000000000000005-"
	    "0000000000000000001.jsonl",
	    "p/2026/13/28/01/s-shardId-000000000003-00000000000000000005-"
	    "00000000000000000017.jsonl",
	    "p/2026/11/28/24/s-shardId-000000000003-00000000000000000005-"
	    "00000000000000000017.jsonl",
	    "p/2026/11/28/01/-shardId-000000000003-00000000000000000005-"
	    "00000000000000000017.jsonl",
	    "p/2026/11/28/01/s-shardId-000000000003-00000000000000000017-"
	    "00000000000000000005.jsonl",
	    "p/2026/11/28/01/s-shardId-999999999999-00000000000000000005-"
	    "00000000000000000017.jsonl",
	    "p2026/11/28/01/s-shardId-000000000003-00000000000000000005-"
	    "00000000000000000017.jsonl",
	    "2026/11/28/01s-shardId-000000000003-00000000000000000005-"
	    "00000000000000000017.jsonl",
	    "p/2026/11/28/01/s-shardId-000000000003-99999999999999999999-"
	    "99999999999999999999.jsonl",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sl_archive_key_parse(bad[i], strlen(bad[i]), &ki) !=
		    SLUICE_ERR_INVALID_ARGUMENT)
			fail_msg("parsed: %s", bad[i]);
}

static void large_records(void **state)
{
	/* A 3 MiB record, then many small ones: memory stays with the compressed output. */
	struct sl_archive_writer *w = writer(SL_ARCHIVE_JSONL, SL_ARCHIVE_ZSTD);
	size_t big = 3u << 20;
	uint8_t *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 12));
	add(w, 1, TS, "big", 3, data, big);
	for (uint64_t s = 2; s < 20000; s++)
		add(w, s, TS, "small", 5, "0123456789abcdef", 16);
	struct sl_archive_writer_info info;
	sl_archive_writer_info(w, &info);
	assert_true(info.out_bytes < info.raw_bytes);
	const uint8_t *obj;
	size_t len;
	assert_int_equal(sl_archive_writer_finish(w, &obj, &len), 0);
	size_t n = 0;
	assert_int_equal(sl_archive_read(obj, len, SL_ARCHIVE_ZSTD, count_only, &n, NULL, 0),
			 19999);
	free(data);
	sl_archive_writer_destroy(w);
}

/*
 * sl_archive_decompress, as restore uses it: the same bytes as the streaming reader sees, on the
 * one-call path (bound under the cap) and the streaming one (bound over it); every truncation,
 * trailing bytes and the cap are errors on both; out is left as it was on failure.
 */
static void decompress_whole(void **state)
{
	(void)state;
	struct sl_archive_writer *w = numbered_records(300);
	const uint8_t *obj;
	size_t len;
	assert_int_equal(sl_archive_writer_finish(w, &obj, &len), 0);
	char msg[200];
	struct sl_buf big, exact;
	sl_buf_init(&big);
	sl_buf_init(&exact);
	/* Under a generous cap: one call. */
	assert_int_equal(
	    sl_archive_decompress(obj, len, SL_ARCHIVE_ZSTD, 1 << 30, &big, msg, sizeof(msg)), 0);
	size_t n = 0;
	assert_int_equal(
	    sl_archive_read(big.data, big.len, SL_ARCHIVE_NONE, count_only, &n, msg, sizeof(msg)),
	    300);
	/* A cap of exactly the size is below the block bound (128 KiB): the streaming path. */
	assert_true(big.len < (128u << 10));
	assert_int_equal(
	    sl_archive_decompress(obj, len, SL_ARCHIVE_ZSTD, big.len, &exact, msg, sizeof(msg)), 0);
	assert_int_equal(exact.len, big.len);
	assert_memory_equal(exact.data, big.data, big.len);
	sl_buf_reset(&exact);
	msg[0] = '\0';
	assert_int_equal(
	    sl_archive_decompress(obj, len, SL_ARCHIVE_ZSTD, big.len - 1, &exact, msg, sizeof(msg)),
	    SLUICE_ERR_CORRUPT);
	assert_non_null(strstr(msg, "over"));
	assert_int_equal(exact.len, 0);
	/* Appends after what out holds; a failure leaves that alone. */
	assert_int_equal(sl_buf_put(&exact, "x", 1), 0);
	for (size_t cut = 0; cut < len; cut++) {
		msg[0] = '\0';
		/* No cap at all (SIZE_MAX) must not wrap the streaming path's window. */
		size_t cap = cut % 2 ? SIZE_MAX : 1u << 30;
		assert_int_equal(
		    sl_archive_decompress(obj, cut, SL_ARCHIVE_ZSTD, cap, &exact, msg, sizeof(msg)),
		    SLUICE_ERR_CORRUPT);
		assert_true(msg[0] != '\0');
		assert_int_equal(exact.len, 1);
	}
	uint8_t *more = malloc(len + 1);
	memcpy(more, obj, len);
	more[len] = 0;
	assert_int_equal(sl_archive_decompress(more, len + 1, SL_ARCHIVE_ZSTD, 1 << 30, &exact, msg,
					       sizeof(msg)),
			 SLUICE_ERR_CORRUPT);
	assert_non_null(strstr(msg, "after the end"));
	assert_int_equal(exact.len, 1);
	assert_int_equal(
	    sl_archive_decompress(obj, len, SL_ARCHIVE_ZSTD, 1 << 30, &exact, msg, sizeof(msg)), 0);
	assert_int_equal(exact.len, 1 + big.len);
	assert_memory_equal(exact.data + 1, big.data, big.len);
	free(more);
	sl_buf_finish(&big);
	sl_buf_finish(&exact);
	sl_archive_writer_destroy(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(roundtrip),
	    cmocka_unit_test(exact_line),
	    cmocka_unit_test(writer_rejects),
	    cmocka_unit_test(empty_object),
	    cmocka_unit_test(raw_format),
	    cmocka_unit_test(zstd_truncated),
	    cmocka_unit_test(decompress_whole),
	    cmocka_unit_test(corrupt_lines),
	    cmocka_unit_test(fast_and_slow_paths_agree),
	    cmocka_unit_test(escapes_at_every_offset),
	    cmocka_unit_test(keys),
	    cmocka_unit_test(large_records),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
