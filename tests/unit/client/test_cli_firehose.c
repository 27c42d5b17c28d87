/* The `sluice firehose` CLI (argv[1]: the sluice binary) against the fake server: what each
 * command sends, what it prints, its exit codes, and that usage errors send nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sluice/errors.h>

#include "fake_server.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static const char *sluice_bin;

struct cli_state {
	atomic_uint requests;
	int last_opcode;
	int create_status;
	/* The last FIREHOSE_CREATE, copied out of the frame (the frame does not outlive the
	 * handler). */
	struct sl_firehose_wire w;
	char name[200], stream[200], dest[5000], endpoint[600], region[100], creds[600],
	    profile[100], on_failure[200], last_name[200];
};

static void copy_str(char *dst, size_t cap, struct sl_str s)
{
	size_t n = s.len < cap - 1 ? s.len : cap - 1;
	memcpy(dst, s.p, n);
	dst[n] = '\0';
}

static struct sl_str S(const char *s) {
	return (struct sl_str){.p = s, .len = strlen(s)};
}

static int
handler(void *ctx, unsigned conn, const struct sl_frame_header *h, const uint8_t *body, size_t len,
	struct sl_buf *out)
{
	(void)conn;
	struct cli_state *st = ctx;
	st->requests++;
	st->last_opcode = h->opcode;
	struct sl_str name;
	size_t start;
	switch (h->opcode) {
	case SL_OP_FIREHOSE_CREATE:
		st->create_status = sl_proto_decode_firehose_create(body, len, &st->w);
		if (st->create_status < 0) {
			fake_answer_error(out, h, st->create_status, "bad create");
			break;
		}
		copy_str(st->name, sizeof(st->name), st->w.name);
		copy_str(st->stream, sizeof(st->stream), st->w.stream);
		copy_str(st->dest, sizeof(st->dest), st->w.dest);
		copy_str(st->endpoint, sizeof(st->endpoint), st->w.endpoint);
		copy_str(st->region, sizeof(st->region), st->w.region);
		copy_str(st->creds, sizeof(st->creds), st->w.credentials_file);
		copy_str(st->profile, sizeof(st->profile), st->w.profile);
		copy_str(st->on_failure, sizeof(st->on_failure), st->w.on_failure);
		if (strcmp(st->name, "taken") == 0)
			fake_answer_error(out, h, SLUICE_ERR_INVALID_ARGUMENT,
					  "a consumer named taken exists");
		else
			fake_answer_empty(out, h);
		break;
	case SL_OP_FIREHOSE_DELETE:
	case SL_OP_FIREHOSE_FLUSH:
		assert_int_equal(sl_proto_decode_name(body, len, &name), 0);
		copy_str(st->last_name, sizeof(st->last_name), name);
		if (strcmp(st->last_name, "missing") == 0)
			fake_answer_error(out, h, SLUICE_ERR_INVALID_ARGUMENT,
					  "firehose missing not found");
		else
			fake_answer_empty(out, h);
		break;
	case SL_OP_FIREHOSE_LIST:
		sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
		sl_buf_put_u32(out, 2);
		sl_proto_put_str8(out, "archive", 7);
		sl_proto_put_str8(out, "raw-copy", 8);
		sl_proto_finish_frame(out, start);
		break;
	case SL_OP_FIREHOSE_DESCRIBE: {
		assert_int_equal(sl_proto_decode_name(body, len, &name), 0);
		sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
		struct sl_firehose_wire w = {
		    .name = name,
		    .stream = S("orders"),
		    .dest = S("s3://archive-bucket/sluice"),
		    .endpoint = S("http://127.0.0.1:9000"),
		    .region = S(""),
		    .credentials_file = S(""),
		    .profile = S(""),
		    .buffer_bytes = 5ull << 20,
		    .buffer_interval_ms = 60000,
		    .compression = SL_PROTO_FIREHOSE_COMPRESSION_ZSTD,
		    .zstd_level = 3,
		    .format = SL_PROTO_FIREHOSE_FORMAT_JSONL,
		    .max_retry_duration_ms = -1,
		    .on_failure = S(""),
		    .start = {.type = SLUICE_POS_TRIM_HORIZON},
		};
		sl_proto_put_firehose_config(out, &w);
		sl_buf_put_u64(out, 1764291723000ull);
		sl_buf_put_u32(out, 2);
		for (uint32_t i = 0; i < 2; i++) {
			struct sl_firehose_shard_status s = {
			    .shard_id = i,
			    .checkpoint_seq = i ? 2040 : 0,
			    .buffered_records = 17,
			    .buffered_bytes = 4096,
			    .last_flush_ms = i ? 1764291723250ll : 0,
			    .last_object_key = i ? S("sluice/2026/11/28/01/orders-shardId-"
						     "000000000001-00000000000000001041-"
						     "00000000000000002040.jsonl.zst")
						 : S(""),
			    .objects_written = 5 * i,
			    .records_archived = 1000 * i,
			    .bytes_written = 77777 * i,
			    .upload_failures = 3 * i,
			    .state = i ? SL_PROTO_FIREHOSE_RETRYING : SL_PROTO_FIREHOSE_IDLE,
			    .last_error = i ? S("PUT s3://b/k: HTTP 503\nSlowDown") : S(""),
			    .lag_ms = i ? 90000 : 0,
			    .background = i ? 0 : 1,
			};
			sl_proto_put_firehose_shard_status(out, &s);
		}
		sl_proto_finish_frame(out, start);
		break;
	}
	default:
		fake_answer_error(out, h, SLUICE_ERR_BAD_OPCODE, NULL);
		break;
	}
	return FAKE_SEND;
}

/* Run `sluice --server ADDR ARGS` with stderr folded into stdout; returns the exit code. */
static int run(struct fake_server *fs, const char *args, char *out, size_t cap)
{
	char cmd[8192];
	snprintf(cmd, sizeof(cmd), "'%s' --server %s %s 2>&1", sluice_bin, fake_server_addr(fs),
		 args);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void create_command(void **state)
{
	(void)state;
	struct cli_state st = {0};
	struct fake_server *fs = fake_server_start(handler, &st);
	char out[16384];

	/* Defaults on the wire. */
	assert_int_equal(run(fs,
			     "firehose create archive --stream orders --dest file:///srv/objects",
			     out, sizeof(out)),
			 0);
	assert_string_equal(out, "");
	assert_int_equal(st.create_status, 0);
	assert_string_equal(st.name, "archive");
	assert_string_equal(st.stream, "orders");
	assert_string_equal(st.dest, "file:///srv/objects");
	assert_string_equal(st.endpoint, "");
	assert_int_equal(st.w.buffer_bytes, 5u << 20);
	assert_int_equal(st.w.buffer_interval_ms, 60000);
	assert_int_equal(st.w.compression, SL_PROTO_FIREHOSE_COMPRESSION_ZSTD);
	assert_int_equal(st.w.zstd_level, 3);
	assert_int_equal(st.w.format, SL_PROTO_FIREHOSE_FORMAT_JSONL);
	assert_int_equal(st.w.max_retry_duration_ms, -1);
	assert_int_equal(st.w.start.type, SLUICE_POS_TRIM_HORIZON);

	/* No --dest: empty on the wire, for the server's default. */
	assert_int_equal(run(fs, "firehose create dflt --stream orders", out, sizeof(out)), 0);
	assert_string_equal(st.name, "dflt");
	assert_string_equal(st.dest, "");

	/* Every option. */
	assert_int_equal(
	    run(fs,
		"firehose create fh2 --stream orders --dest s3://bucket/pre --endpoint "
		"http://127.0.0.1:9000 --region eu-west-1 --credentials-file /etc/creds --profile "
		"arch --buffer-size 128MiB --buffer-interval 5m --compression zstd:19 --format raw "
		"--max-retry-duration 2h --on-failure dlq --start time:2026-01-01T00:00:00Z",
		out, sizeof(out)),
	    0);
	assert_string_equal(st.dest, "s3://bucket/pre");
	assert_string_equal(st.endpoint, "http://127.0.0.1:9000");
	assert_string_equal(st.region, "eu-west-1");
	assert_string_equal(st.creds, "/etc/creds");
	assert_string_equal(st.profile, "arch");
	assert_string_equal(st.on_failure, "dlq");
	assert_int_equal(st.w.buffer_bytes, 128ull << 20);
	assert_int_equal(st.w.buffer_interval_ms, 300000);
	assert_int_equal(st.w.zstd_level, 19);
	assert_int_equal(st.w.format, SL_PROTO_FIREHOSE_FORMAT_RAW);
	assert_int_equal(st.w.max_retry_duration_ms, 7200000);
	assert_int_equal(st.w.start.type, SLUICE_POS_AT_TIMESTAMP);
	assert_int_equal(st.w.start.value, 1767225600000ull);
	/* Plain numbers: seconds and bytes; none keeps the level. */
	assert_int_equal(run(fs,
			     "firehose create fh3 --stream orders --dest s3://b --buffer-size "
			     "1048576 --buffer-interval 0 --compression none "
			     "--max-retry-duration 90 --start latest",
			     out, sizeof(out)),
			 0);
	assert_int_equal(st.w.buffer_bytes, 1u << 20);
	assert_int_equal(st.w.buffer_interval_ms, 0);
	assert_int_equal(st.w.compression, SL_PROTO_FIREHOSE_COMPRESSION_NONE);
	assert_int_equal(st.w.zstd_level, 3);
	assert_int_equal(st.w.max_retry_duration_ms, 90000);
	assert_int_equal(st.w.start.type, SLUICE_POS_LATEST);

	/* The server's refusal: exit 1, its message on one line. */
	assert_int_equal(
	    run(fs, "firehose create taken --stream orders --dest s3://b", out, sizeof(out)), 1);
	assert_string_equal(out, "sluice: firehose create: a consumer named taken exists\n");

	/* Usage errors: exit 2, one line, nothing sent. */
	unsigned before = st.requests;
	static const char *const bad[] = {
	    "firehose create f --dest s3://b",
	    "firehose create f --stream s --region eu-west-1",
	    "firehose create f --stream s --dest ''",
	    "firehose create f --stream s --dest /tmp/x",
	    "firehose create f --stream s --dest s3://",
	    "firehose create f --stream s --dest file:///x --endpoint http://h",
	    "firehose create f --stream s --dest s3://b --profile p",
	    "firehose create f --stream s --dest s3://b --buffer-size 1000000",
	    "firehose create f --stream s --dest s3://b --buffer-size 129MiB",
	    "firehose create f --stream s --dest s3://b --buffer-interval 901s",
	    "firehose create f --stream s --dest s3://b --buffer-interval -1",
	    "firehose create f --stream s --dest s3://b --compression zstd:0",
	    "firehose create f --stream s --dest s3://b --compression gzip",
	    "firehose create f --stream s --dest s3://b --format json",
	    "firehose create f --stream s --dest s3://b --max-retry-duration -5",
	    "firehose create f --stream s --dest s3://b --start seq:4",
	    "firehose create f --stream s --dest s3://b --on-failure s",
	    "firehose create f --stream s --dest s3://b --on-failure 'a b'",
	    "firehose create a/b --stream s --dest s3://b",
	    "firehose create f g --stream s --dest s3://b",
	    "firehose describe f --dest s3://b",
	    "firehose describe f --format raw",
	    "firehose flush f --format json",
	    "firehose list extra",
	    "firehose delete",
	    "firehose nope",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(run(fs, bad[i], out, sizeof(out)), 2);
		assert_non_null(strstr(out, "sluice: firehose"));
		assert_non_null(strchr(out, '\n'));
		assert_string_equal(strchr(out, '\n'), "\n"); /* one line */
	}
	assert_int_equal(st.requests, before);
	fake_server_stop(fs);
}

static void other_commands(void **state)
{
	(void)state;
	struct cli_state st = {0};
	struct fake_server *fs = fake_server_start(handler, &st);
	char out[16384];

	assert_int_equal(run(fs, "firehose list", out, sizeof(out)), 0);
	assert_string_equal(out, "archive\nraw-copy\n");
	assert_int_equal(run(fs, "firehose list --format json", out, sizeof(out)), 0);
	assert_string_equal(out, "[\"archive\",\"raw-copy\"]\n");

	assert_int_equal(run(fs, "firehose flush archive", out, sizeof(out)), 0);
	assert_int_equal(st.last_opcode, SL_OP_FIREHOSE_FLUSH);
	assert_string_equal(st.last_name, "archive");
	assert_int_equal(run(fs, "firehose delete raw-copy", out, sizeof(out)), 0);
	assert_int_equal(st.last_opcode, SL_OP_FIREHOSE_DELETE);
	assert_string_equal(st.last_name, "raw-copy");
	assert_int_equal(run(fs, "firehose flush missing", out, sizeof(out)), 1);
	assert_string_equal(out, "sluice: firehose flush: firehose missing not found\n");

	assert_int_equal(run(fs, "firehose describe archive", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "Firehose:           archive\n"));
	assert_non_null(strstr(out, "Destination:        s3://archive-bucket/sluice\n"));
	assert_non_null(strstr(out, "Endpoint:           http://127.0.0.1:9000\n"));
	assert_null(strstr(out, "Region:"));
	assert_non_null(strstr(out, "Buffer size:        5MiB\n"));
	assert_non_null(strstr(out, "Buffer interval:    1m\n"));
	assert_non_null(strstr(out, "Compression:        zstd:3\n"));
	assert_non_null(strstr(out, "Format:             jsonl\n"));
	assert_non_null(strstr(out, "Max retry duration: until expiry\n"));
	assert_non_null(strstr(out, "Start:              trim-horizon\n"));
	assert_non_null(strstr(out, "Shards:             2\n"));
	assert_non_null(strstr(out, "LAST OBJECT KEY"));
	/* Shard 0: never flushed, no key, no error; shard 1: its key and a one-line error. */
	const char *l0 = strstr(out, "shardId-000000000000"),
		   *l1 = strstr(out, "shardId-000000000001");
	assert_non_null(l0);
	assert_non_null(l1);
	assert_non_null(strstr(l0, "IDLE"));
	assert_true(strstr(l0, "never") < l1);
	assert_true(strstr(l0, "  0ms  background  ") < l1);
	assert_non_null(strstr(l1, "  90s  normal  "));
	assert_non_null(strstr(l1, "RETRYING"));
	assert_non_null(strstr(l1, "2025-11-28T01:02:03.250Z"));
	assert_non_null(
	    strstr(l1, "-00000000000000002040.jsonl.zst  PUT s3://b/k: HTTP 503 SlowDown\n"));

	assert_int_equal(run(fs, "firehose describe archive --format json", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "{\"name\":\"archive\",\"stream\":\"orders\",\"dest\":"
				    "\"s3://archive-bucket/sluice\",\"endpoint\":"
				    "\"http://127.0.0.1:9000\",\"region\":null,"));
	assert_non_null(strstr(out, "\"buffer_bytes\":5242880,\"buffer_interval_ms\":60000,"
				    "\"compression\":\"zstd:3\",\"format\":\"jsonl\","
				    "\"max_retry_duration_ms\":-1,\"on_failure\":null,"
				    "\"start\":\"trim-horizon\""));
	assert_non_null(strstr(out, "\"shard\":\"shardId-000000000001\",\"state\":\"RETRYING\","
				    "\"checkpoint_seq\":\"2040\",\"buffered_records\":17,"
				    "\"buffered_bytes\":4096,\"last_flush_ms\":1764291723250,"));
	assert_non_null(strstr(out, "\"last_flush_ms\":0,\"last_flush\":null,"
				    "\"last_object_key\":null,"));
	assert_non_null(strstr(out, "\"upload_failures\":3,"));
	assert_non_null(strstr(out, "\"last_error\":\"PUT s3://b/k: HTTP 503\\nSlowDown\","
				    "\"lag_ms\":90000,\"background\":false}"));
	assert_non_null(strstr(out, "\"lag_ms\":0,\"background\":true}"));
	assert_string_equal(strchr(out, '\n'), "\n");
	fake_server_stop(fs);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH/TO/sluice\n", argv[0]);
		return 2;
	}
	sluice_bin = argv[1];
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(create_command),
	    cmocka_unit_test(other_commands),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
