/* libsluice firehoses against the fake server: every admin call's request is decoded with the
 * real codec, answers are built with it; local validation sends nothing; malformed answers are
 * refused without leaks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sluice/client.h>

#include "fake_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum describe_mode {
	DESCRIBE_OK,
	DESCRIBE_BIG_COUNT, /* a shard count the body cannot hold */
	DESCRIBE_TRAILING,  /* a byte after the last shard */
	DESCRIBE_TRUNCATED, /* the last shard cut short */
	DESCRIBE_BAD_NAME,  /* a config whose name is invalid */
	DESCRIBE_NO_SHARDS, /* minimal: no optional strings, no shards */
};

struct fh_state {
	int create_status;
	struct sl_firehose_wire wire; /* the last FIREHOSE_CREATE; strings copied below */
	char name[300], stream[300], dest[5000], endpoint[600], region[300], creds[600],
	    profile[300], on_failure[300];
	char last_name[300]; /* of the last DELETE / FLUSH / DESCRIBE */
	unsigned creates, deletes, flushes, lists, describes;
	enum describe_mode describe;
};

static void copy_str(char *dst, size_t cap, struct sl_str s)
{
	assert_true(s.len < cap);
	memcpy(dst, s.p, s.len);
	dst[s.len] = '\0';
}

static struct sl_str S(const char *s) {
	return (struct sl_str){.p = s, .len = strlen(s)};
}

static void
answer_describe(struct fh_state *st, struct sl_buf *out, const struct sl_frame_header *h,
		struct sl_str name)
{
	size_t start;
	assert_int_equal(sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start),
			 0);
	struct sl_firehose_wire w = {
	    .name = st->describe == DESCRIBE_BAD_NAME ? S("a b") : name,
	    .stream = S("orders"),
	    .dest = S("s3://archive-bucket/sluice"),
	    .endpoint = S("http://127.0.0.1:9000"),
	    .region = S("eu-west-1"),
	    .credentials_file = S("/etc/sluice/creds"),
	    .profile = S("archiver"),
	    .buffer_bytes = 8ull << 20,
	    .buffer_interval_ms = 30000,
	    .compression = SL_PROTO_FIREHOSE_COMPRESSION_ZSTD,
	    .zstd_level = 9,
	    .format = SL_PROTO_FIREHOSE_FORMAT_RAW,
	    .max_retry_duration_ms = 3600000,
	    .on_failure = S("dlq"),
	    .start = {.type = SLUICE_POS_AT_TIMESTAMP, .value = 1764291000000ull},
	};
	if (st->describe == DESCRIBE_NO_SHARDS) {
		w.dest = S("file:///var/lib/sluice/objects");
		w.endpoint = w.region = w.credentials_file = w.profile = w.on_failure = S("");
		w.compression = SL_PROTO_FIREHOSE_COMPRESSION_NONE;
		w.format = SL_PROTO_FIREHOSE_FORMAT_JSONL;
		w.max_retry_duration_ms = -1;
		w.start = (struct sluice_position){.type = SLUICE_POS_TRIM_HORIZON};
	}
	assert_int_equal(sl_proto_put_firehose_config(out, &w), 0);
	sl_buf_put_u64(out, 1764291723000ull);
	uint32_t n = st->describe == DESCRIBE_NO_SHARDS ? 0 : 2;
	sl_buf_put_u32(out, st->describe == DESCRIBE_BIG_COUNT ? 1000 : n);
	for (uint32_t i = 0; i < n; i++) {
		struct sl_firehose_shard_status s = {
		    .shard_id = i,
		    .checkpoint_seq = 2040 + i,
		    .buffered_records = 17,
		    .buffered_bytes = 4096,
		    .last_flush_ms = i ? 1764291723250ll : 0,
		    .last_object_key = i ? S("sluice/2026/11/28/01/orders-shardId-000000000001-"
					     "00000000000000001041-00000000000000002041.raw.zst")
					 : S(""),
		    .objects_written = 5 + i,
		    .records_archived = 1000,
		    .bytes_written = 123456,
		    .upload_failures = 2 * i,
		    .sent_to_on_failure = 1,
		    .expired = 4,
		    .state = i ? SL_PROTO_FIREHOSE_RETRYING : SL_PROTO_FIREHOSE_IDLE,
		    .last_error = i ? S("PUT s3://b/k: HTTP 503 SlowDown") : S(""),
		    .lag_ms = 2500 * i,
		    .background = i ? 7 : 0, /* nonzero from a newer server: true */
		};
		assert_int_equal(sl_proto_put_firehose_shard_status(out, &s), 0);
	}
	if (st->describe == DESCRIBE_TRAILING)
		sl_buf_put_u8(out, 0);
	if (st->describe == DESCRIBE_TRUNCATED)
		out->len -= 3;
	sl_proto_finish_frame(out, start);
}

static int handler(void *ctx, unsigned conn, const struct sl_frame_header *h, const uint8_t *body,
		   size_t len, struct sl_buf *out)
{
	(void)conn;
	struct fh_state *st = ctx;
	struct sl_str name;
	switch (h->opcode) {
	case SL_OP_FIREHOSE_CREATE:
		st->creates++;
		st->create_status = sl_proto_decode_firehose_create(body, len, &st->wire);
		if (st->create_status < 0) {
			fake_answer_error(out, h, st->create_status, "bad create");
			break;
		}
		copy_str(st->name, sizeof(st->name), st->wire.name);
		copy_str(st->stream, sizeof(st->stream), st->wire.stream);
		copy_str(st->dest, sizeof(st->dest), st->wire.dest);
		copy_str(st->endpoint, sizeof(st->endpoint), st->wire.endpoint);
		copy_str(st->region, sizeof(st->region), st->wire.region);
		copy_str(st->creds, sizeof(st->creds), st->wire.credentials_file);
		copy_str(st->profile, sizeof(st->profile), st->wire.profile);
		copy_str(st->on_failure, sizeof(st->on_failure), st->wire.on_failure);
		memset(&st->wire.name, 0, sizeof(st->wire.name)); /* borrowed the frame */
		if (strcmp(st->name, "taken") == 0)
			fake_answer_error(out, h, SLUICE_ERR_INVALID_ARGUMENT,
					  "buffer_size: outside 1MiB..128MiB");
		else
			fake_answer_empty(out, h);
		break;
	case SL_OP_FIREHOSE_DELETE:
	case SL_OP_FIREHOSE_FLUSH:
		if (h->opcode == SL_OP_FIREHOSE_DELETE)
			st->deletes++;
		else
			st->flushes++;
		assert_int_equal(sl_proto_decode_name(body, len, &name), 0);
		copy_str(st->last_name, sizeof(st->last_name), name);
		if (strcmp(st->last_name, "missing") == 0)
			fake_answer_error(out, h, SLUICE_ERR_INVALID_ARGUMENT,
					  "no firehose missing");
		else
			fake_answer_empty(out, h);
		break;
	case SL_OP_FIREHOSE_LIST: {
		st->lists++;
		assert_int_equal(len, 0);
		size_t start;
		assert_int_equal(
		    sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start), 0);
		if (st->lists == 2) { /* a bad name in the answer */
			sl_buf_put_u32(out, 1);
			sl_proto_put_str8(out, "a/b", 3);
		} else {
			sl_buf_put_u32(out, 2);
			sl_proto_put_str8(out, "archive", 7);
			sl_proto_put_str8(out, "raw-copy", 8);
		}
		sl_proto_finish_frame(out, start);
		break;
	}
	case SL_OP_FIREHOSE_DESCRIBE:
		st->describes++;
		assert_int_equal(sl_proto_decode_name(body, len, &name), 0);
		copy_str(st->last_name, sizeof(st->last_name), name);
		answer_describe(st, out, h, name);
		break;
	default:
		fake_answer_error(out, h, SLUICE_ERR_BAD_OPCODE, NULL);
		break;
	}
	return FAKE_SEND;
}

static void options_defaults(void **state)
{
	(void)state;
	struct sluice_firehose_options o;
	memset(&o, 0x5a, sizeof(o));
	sluice_firehose_options_init(&o);
	assert_int_equal(o.buffer_bytes, 5u << 20);
	assert_int_equal(o.buffer_interval_ms, 60000);
	assert_int_equal(o.compression, SLUICE_FIREHOSE_COMPRESSION_ZSTD);
	assert_int_equal(o.zstd_level, 3);
	assert_int_equal(o.format, SLUICE_FIREHOSE_FORMAT_JSONL);
	assert_int_equal(o.max_retry_duration_ms, -1);
	assert_int_equal(o.start.type, SLUICE_POS_TRIM_HORIZON);
	assert_null(o.endpoint);
	assert_null(o.region);
	assert_null(o.credentials_file);
	assert_null(o.profile);
	assert_null(o.on_failure);
	assert_string_equal(sluice_firehose_state_name(SLUICE_FIREHOSE_IDLE), "IDLE");
	assert_string_equal(sluice_firehose_state_name(SLUICE_FIREHOSE_FLUSHING), "FLUSHING");
	assert_string_equal(sluice_firehose_state_name(SLUICE_FIREHOSE_RETRYING), "RETRYING");
	assert_string_equal(sluice_firehose_state_name(SLUICE_FIREHOSE_FINISHED), "FINISHED");
	assert_string_equal(sluice_firehose_state_name(99), "UNKNOWN");
	assert_string_equal(sluice_firehose_state_name(-1), "UNKNOWN");
}

static void create_calls(void **state)
{
	(void)state;
	struct fh_state st = {0};
	struct fake_server *fs = fake_server_start(handler, &st);
	struct sluice_client *c;
	assert_int_equal(sluice_client_connect(fake_server_addr(fs), NULL, &c), 0);

	/* NULL options: the defaults go on the wire. */
	assert_int_equal(
	    sluice_firehose_create(c, "archive", "orders", "file:///var/lib/sluice/objects", NULL),
	    0);
	assert_int_equal(st.create_status, 0);
	assert_string_equal(st.name, "archive");
	assert_string_equal(st.stream, "orders");
	assert_string_equal(st.dest, "file:///var/lib/sluice/objects");
	assert_string_equal(st.endpoint, "");
	assert_string_equal(st.region, "");
	assert_string_equal(st.creds, "");
	assert_string_equal(st.profile, "");
	assert_string_equal(st.on_failure, "");
	assert_int_equal(st.wire.buffer_bytes, 5u << 20);
	assert_int_equal(st.wire.buffer_interval_ms, 60000);
	assert_int_equal(st.wire.compression, SL_PROTO_FIREHOSE_COMPRESSION_ZSTD);
	assert_int_equal(st.wire.zstd_level, 3);
	assert_int_equal(st.wire.format, SL_PROTO_FIREHOSE_FORMAT_JSONL);
	assert_int_equal(st.wire.max_retry_duration_ms, -1);
	assert_int_equal(st.wire.start.type, SLUICE_POS_TRIM_HORIZON);

	/* No destination (NULL or ""): sent empty, for the server's default. */
	assert_int_equal(sluice_firehose_create(c, "fh0", "orders", NULL, NULL), 0);
	assert_int_equal(st.create_status, 0);
	assert_string_equal(st.dest, "");
	assert_int_equal(sluice_firehose_create(c, "fh1", "orders", "", NULL), 0);
	assert_string_equal(st.dest, "");

	/* Every option. */
	struct sluice_firehose_options o;
	sluice_firehose_options_init(&o);
	o.endpoint = "http://127.0.0.1:9000";
	o.region = "eu-west-1";
	o.credentials_file = "/etc/sluice/creds";
	o.profile = "archiver";
	o.buffer_bytes = 128ull << 20;
	o.buffer_interval_ms = 0;
	o.compression = SLUICE_FIREHOSE_COMPRESSION_NONE;
	o.zstd_level = 19;
	o.format = SLUICE_FIREHOSE_FORMAT_RAW;
	o.max_retry_duration_ms = 7200000;
	o.on_failure = "dlq";
	o.start = (struct sluice_position){.type = SLUICE_POS_AT_TIMESTAMP, .value = 123456};
	assert_int_equal(sluice_firehose_create(c, "fh2", "orders", "s3://bucket/prefix", &o), 0);
	assert_string_equal(st.dest, "s3://bucket/prefix");
	assert_string_equal(st.endpoint, "http://127.0.0.1:9000");
	assert_string_equal(st.region, "eu-west-1");
	assert_string_equal(st.creds, "/etc/sluice/creds");
	assert_string_equal(st.profile, "archiver");
	assert_string_equal(st.on_failure, "dlq");
	assert_int_equal(st.wire.buffer_bytes, 128ull << 20);
	assert_int_equal(st.wire.buffer_interval_ms, 0);
	assert_int_equal(st.wire.compression, SL_PROTO_FIREHOSE_COMPRESSION_NONE);
	assert_int_equal(st.wire.zstd_level, 19);
	assert_int_equal(st.wire.format, SL_PROTO_FIREHOSE_FORMAT_RAW);
	assert_int_equal(st.wire.max_retry_duration_ms, 7200000);
	assert_int_equal(st.wire.start.type, SLUICE_POS_AT_TIMESTAMP);
	assert_int_equal(st.wire.start.value, 123456);
	/* Empty strings are the defaults, like NULL. */
	o.endpoint = o.region = o.credentials_file = o.profile = o.on_failure = "";
	assert_int_equal(sluice_firehose_create(c, "fh3", "orders", "s3://bucket", &o), 0);
	assert_string_equal(st.endpoint, "");
	assert_string_equal(st.on_failure, "");

	/* Refused locally, with a message naming the field, before anything is sent. */
	unsigned before = st.creates;
	static const char *const bad_dests[] = {"/tmp/x",   "file://relative", "s3://",	 "s3:///b",
						"http://x", "S3://bucket",     "file:/x"};
	for (size_t i = 0; i < sizeof(bad_dests) / sizeof(bad_dests[0]); i++) {
		assert_int_equal(sluice_firehose_create(c, "f", "orders", bad_dests[i], NULL),
				 SLUICE_ERR_INVALID_ARGUMENT);
		assert_non_null(strstr(sluice_client_last_error_message(c), "dest"));
	}
	assert_int_equal(sluice_firehose_create(c, "a/b", "orders", "s3://b", NULL),
			 SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sluice_firehose_create(c, "f", "", "s3://b", NULL),
			 SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sluice_firehose_create(c, NULL, "orders", "s3://b", NULL),
			 SLUICE_ERR_INVALID_NAME);
	sluice_firehose_options_init(&o);
	o.on_failure = "bad name";
	assert_int_equal(sluice_firehose_create(c, "f", "orders", "s3://b", &o),
			 SLUICE_ERR_INVALID_NAME);
	assert_non_null(strstr(sluice_client_last_error_message(c), "on_failure"));
	sluice_firehose_options_init(&o);
	o.start.type = SLUICE_POS_AT_SEQ;
	assert_int_equal(sluice_firehose_create(c, "f", "orders", "s3://b", &o),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_non_null(strstr(sluice_client_last_error_message(c), "start"));
	sluice_firehose_options_init(&o);
	o.compression = 2;
	assert_int_equal(sluice_firehose_create(c, "f", "orders", "s3://b", &o),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_non_null(strstr(sluice_client_last_error_message(c), "compression"));
	sluice_firehose_options_init(&o);
	o.format = -1;
	assert_int_equal(sluice_firehose_create(c, "f", "orders", "s3://b", &o),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_non_null(strstr(sluice_client_last_error_message(c), "format"));
	/* String limits: at the limit it goes, one more is refused. */
	static char big[5000];
	const struct {
		const char *field;
		size_t max;
	} lims[] = {{"endpoint", SLUICE_FIREHOSE_ENDPOINT_LEN_MAX},
		    {"region", SLUICE_FIREHOSE_REGION_LEN_MAX},
		    {"credentials_file", SLUICE_FIREHOSE_CREDENTIALS_FILE_LEN_MAX},
		    {"profile", SLUICE_FIREHOSE_PROFILE_LEN_MAX},
		    {"dest", SLUICE_FIREHOSE_DEST_LEN_MAX}};
	for (size_t i = 0; i < sizeof(lims) / sizeof(lims[0]); i++) {
		for (int over = 0; over < 2; over++) {
			memset(big, 'x', sizeof(big));
			size_t n = lims[i].max + (size_t)over;
			big[n] = '\0';
			const char *dest = "s3://b";
			sluice_firehose_options_init(&o);
			if (i == 0)
				o.endpoint = big;
			else if (i == 1)
				o.region = big;
			else if (i == 2)
				o.credentials_file = big;
			else if (i == 3)
				o.profile = big;
			else
				dest = (memcpy(big, "s3://", 5), big);
			unsigned sent = st.creates;
			int r = sluice_firehose_create(c, "f", "orders", dest, &o);
			if (over) {
				assert_int_equal(r, SLUICE_ERR_INVALID_ARGUMENT);
				assert_non_null(
				    strstr(sluice_client_last_error_message(c), lims[i].field));
				assert_int_equal(st.creates, sent);
			} else {
				assert_int_equal(r, 0);
				assert_int_equal(st.create_status, 0);
				assert_int_equal(st.creates, sent + 1);
			}
		}
	}
	before += 5; /* the five at-the-limit creates */
	assert_int_equal(st.creates, before);

	/* The server's message comes through. */
	assert_int_equal(sluice_firehose_create(c, "taken", "orders", "s3://b", NULL),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_string_equal(sluice_client_last_error_message(c),
			    "buffer_size: outside 1MiB..128MiB");
	sluice_client_close(c);
	fake_server_stop(fs);
}

static void admin_calls(void **state)
{
	(void)state;
	struct fh_state st = {0};
	struct fake_server *fs = fake_server_start(handler, &st);
	struct sluice_client *c;
	assert_int_equal(sluice_client_connect(fake_server_addr(fs), NULL, &c), 0);

	/* List, then a list whose answer holds a bad name. */
	char **names = NULL;
	size_t n = 0;
	assert_int_equal(sluice_firehose_list(c, &names, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "archive");
	assert_string_equal(names[1], "raw-copy");
	sluice_strings_free(names, n);
	names = NULL;
	assert_int_equal(sluice_firehose_list(c, &names, &n), SLUICE_ERR_PROTOCOL);
	assert_null(names);

	/* Flush and delete. */
	assert_int_equal(sluice_firehose_flush(c, "archive"), 0);
	assert_string_equal(st.last_name, "archive");
	assert_int_equal(st.flushes, 1);
	assert_int_equal(sluice_firehose_flush(c, "missing"), SLUICE_ERR_INVALID_ARGUMENT);
	assert_string_equal(sluice_client_last_error_message(c), "no firehose missing");
	assert_int_equal(sluice_firehose_flush(c, "a b"), SLUICE_ERR_INVALID_NAME);
	assert_int_equal(st.flushes, 2);
	assert_int_equal(sluice_firehose_delete(c, "raw-copy"), 0);
	assert_string_equal(st.last_name, "raw-copy");
	assert_int_equal(sluice_firehose_delete(c, "missing"), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sluice_firehose_delete(c, ""), SLUICE_ERR_INVALID_NAME);
	assert_int_equal(st.deletes, 2);

	/* Describe. */
	struct sluice_firehose_info *info = NULL;
	assert_int_equal(sluice_firehose_describe(c, "archive", &info), 0);
	assert_string_equal(st.last_name, "archive");
	assert_string_equal(info->name, "archive");
	assert_string_equal(info->stream, "orders");
	assert_string_equal(info->dest, "s3://archive-bucket/sluice");
	const struct sluice_firehose_options *o = &info->options;
	assert_string_equal(o->endpoint, "http://127.0.0.1:9000");
	assert_string_equal(o->region, "eu-west-1");
	assert_string_equal(o->credentials_file, "/etc/sluice/creds");
	assert_string_equal(o->profile, "archiver");
	assert_string_equal(o->on_failure, "dlq");
	assert_int_equal(o->buffer_bytes, 8u << 20);
	assert_int_equal(o->buffer_interval_ms, 30000);
	assert_int_equal(o->compression, SLUICE_FIREHOSE_COMPRESSION_ZSTD);
	assert_int_equal(o->zstd_level, 9);
	assert_int_equal(o->format, SLUICE_FIREHOSE_FORMAT_RAW);
	assert_int_equal(o->max_retry_duration_ms, 3600000);
	assert_int_equal(o->start.type, SLUICE_POS_AT_TIMESTAMP);
	assert_int_equal(o->start.value, 1764291000000ull);
	assert_int_equal(info->created_ms, 1764291723000ll);
	assert_int_equal(info->shard_count, 2);
	const struct sluice_firehose_shard_status *s0 = &info->shards[0], *s1 = &info->shards[1];
	assert_int_equal(s0->shard_id, 0);
	assert_int_equal(s0->last_flush_ms, 0);
	assert_string_equal(s0->last_object_key, "");
	assert_string_equal(s0->last_error, "");
	assert_int_equal(s0->state, SLUICE_FIREHOSE_IDLE);
	assert_int_equal(s0->lag_ms, 0);
	assert_false(s0->background);
	assert_int_equal(s1->shard_id, 1);
	assert_int_equal(s1->checkpoint_seq, 2041);
	assert_int_equal(s1->buffered_records, 17);
	assert_int_equal(s1->buffered_bytes, 4096);
	assert_int_equal(s1->last_flush_ms, 1764291723250ll);
	assert_non_null(strstr(s1->last_object_key, "-00000000000000002041.raw.zst"));
	assert_int_equal(s1->objects_written, 6);
	assert_int_equal(s1->records_archived, 1000);
	assert_int_equal(s1->bytes_written, 123456);
	assert_int_equal(s1->upload_failures, 2);
	assert_int_equal(s1->sent_to_on_failure, 1);
	assert_int_equal(s1->expired, 4);
	assert_int_equal(s1->lag_ms, 2500);
	assert_true(s1->background);
	assert_int_equal(s1->state, SLUICE_FIREHOSE_RETRYING);
	assert_string_equal(s1->last_error, "PUT s3://b/k: HTTP 503 SlowDown");
	sluice_firehose_info_free(info);
	sluice_firehose_info_free(NULL);

	/* Minimal: optional strings come back NULL, no shards. */
	st.describe = DESCRIBE_NO_SHARDS;
	info = NULL;
	assert_int_equal(sluice_firehose_describe(c, "archive", &info), 0);
	assert_string_equal(info->dest, "file:///var/lib/sluice/objects");
	assert_null(info->options.endpoint);
	assert_null(info->options.region);
	assert_null(info->options.credentials_file);
	assert_null(info->options.profile);
	assert_null(info->options.on_failure);
	assert_int_equal(info->options.max_retry_duration_ms, -1);
	assert_int_equal(info->shard_count, 0);
	assert_non_null(info->shards);
	sluice_firehose_info_free(info);

	/* Malformed answers: refused, *ret untouched, nothing leaked (ASan). */
	const enum describe_mode bad[] = {DESCRIBE_BIG_COUNT, DESCRIBE_TRAILING, DESCRIBE_TRUNCATED,
					  DESCRIBE_BAD_NAME};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		st.describe = bad[i];
		info = NULL;
		assert_int_equal(sluice_firehose_describe(c, "archive", &info),
				 SLUICE_ERR_PROTOCOL);
		assert_null(info);
		assert_string_equal(sluice_client_last_error_message(c),
				    "malformed answer from the server");
	}
	st.describe = DESCRIBE_OK;
	assert_int_equal(sluice_firehose_describe(c, "bad name", &info), SLUICE_ERR_INVALID_NAME);
	/* The connection is still usable after all that. */
	assert_int_equal(sluice_firehose_describe(c, "archive", &info), 0);
	sluice_firehose_info_free(info);

	sluice_client_close(c);
	fake_server_stop(fs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(options_defaults),
	    cmocka_unit_test(create_calls),
	    cmocka_unit_test(admin_calls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
