/* libsluice consumers against the fake server: the admin calls (requests decoded with the real
 * codec, answers built with it) and the remote consumer's push/ack loop, stop, timeout and
 * disconnect. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sluice/client.h>

#include "common/clock.h"
#include "fake_server.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- admin ---- */

struct admin_state {
	/* The last CONSUMER_CREATE, copied out of the frame. */
	int create_status;
	char name[160], stream[160], target[4200], on_failure[160];
	struct sl_consumer_wire wire;
	/* The last CONSUMER_RESET. */
	struct sl_req_consumer_reset reset;
	char reset_name[160];
	unsigned creates, resets, deletes;
	bool describe_garbage;
};

static void copy_str(char *dst, size_t cap, struct sl_str s)
{
	assert_true(s.len < cap);
	memcpy(dst, s.p, s.len);
	dst[s.len] = '\0';
}

static void answer_describe(struct admin_state *st, struct sl_buf *out,
			    const struct sl_frame_header *h, struct sl_str name)
{
	size_t start;
	assert_int_equal(sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start),
			 0);
	struct sl_consumer_wire w = {
	    .name = name,
	    .stream = {.p = "orders", .len = 6},
	    .handler_kind = SL_PROTO_HANDLER_EXEC,
	    .handler_target = {.p = "./h.sh", .len = 6},
	    .batch_size = 50,
	    .batch_window_ms = 100,
	    .start = {.type = SLUICE_POS_TRIM_HORIZON},
	    .max_retries = 2,
	    .max_record_age_s = 600,
	    .bisect_on_error = true,
	    .on_failure = {.p = "dlq", .len = 3},
	    .parallelism = 2,
	    .timeout_ms = 5000,
	};
	assert_int_equal(sl_proto_put_consumer_config(out, &w), 0);
	sl_buf_put_u64(out, 1764291723000ull);
	sl_buf_put_u32(out, st->describe_garbage ? 1000 : 2);
	for (uint32_t i = 0; i < 2; i++) {
		struct sl_consumer_shard_status s = {
		    .shard_id = i,
		    .checkpoint_seq = 100 + i,
		    .lag_records = 5,
		    .lag_ms = 250,
		    .state = i ? SL_PROTO_CONSUMER_RETRYING : SL_PROTO_CONSUMER_IDLE,
		    .delivered = 1000,
		    .batches_failed = i,
		    .retries = 3 * i,
		    .sent_to_on_failure = 0,
		    .expired = 0,
		    .last_error = i ? (struct sl_str){.p = "exit 1", .len = 6}
				    : (struct sl_str){.p = "", .len = 0},
		};
		assert_int_equal(sl_proto_put_consumer_shard_status(out, &s), 0);
	}
	sl_proto_finish_frame(out, start);
}

static int admin_handler(void *ctx, unsigned conn, const struct sl_frame_header *h,
			 const uint8_t *body, size_t len, struct sl_buf *out)
{
	(void)conn;
	struct admin_state *st = ctx;
	struct sl_str name;
	switch (h->opcode) {
	case SL_OP_CONSUMER_CREATE:
		st->creates++;
		st->create_status = sl_proto_decode_consumer_create(body, len, &st->wire);
		if (st->create_status < 0) {
			fake_answer_error(out, h, st->create_status, "bad create");
			break;
		}
		copy_str(st->name, sizeof(st->name), st->wire.name);
		copy_str(st->stream, sizeof(st->stream), st->wire.stream);
		copy_str(st->target, sizeof(st->target), st->wire.handler_target);
		copy_str(st->on_failure, sizeof(st->on_failure), st->wire.on_failure);
		if (strcmp(st->name, "taken") == 0)
			fake_answer_error(out, h, SLUICE_ERR_INVALID_ARGUMENT,
					  "batch_size: 0 outside 1..10000");
		else
			fake_answer_empty(out, h);
		break;
	case SL_OP_CONSUMER_DELETE:
		st->deletes++;
		assert_int_equal(sl_proto_decode_name(body, len, &name), 0);
		if (name.len == 7 && memcmp(name.p, "missing", 7) == 0)
			fake_answer_error(out, h, SLUICE_ERR_INVALID_ARGUMENT,
					  "no consumer missing");
		else
			fake_answer_empty(out, h);
		break;
	case SL_OP_CONSUMER_LIST: {
		assert_int_equal(len, 0);
		size_t start;
		assert_int_equal(
		    sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start), 0);
		sl_buf_put_u32(out, 2);
		sl_proto_put_str8(out, "alpha", 5);
		sl_proto_put_str8(out, "beta", 4);
		sl_proto_finish_frame(out, start);
		break;
	}
	case SL_OP_CONSUMER_DESCRIBE:
		assert_int_equal(sl_proto_decode_name(body, len, &name), 0);
		answer_describe(st, out, h, name);
		break;
	case SL_OP_CONSUMER_RESET:
		st->resets++;
		assert_int_equal(sl_proto_decode_consumer_reset(body, len, &st->reset), 0);
		copy_str(st->reset_name, sizeof(st->reset_name), st->reset.name);
		fake_answer_empty(out, h);
		break;
	default:
		fake_answer_error(out, h, SLUICE_ERR_BAD_OPCODE, NULL);
		break;
	}
	return FAKE_SEND;
}

static void admin_calls(void **state)
{
	(void)state;
	struct admin_state st = {0};
	struct fake_server *fs = fake_server_start(admin_handler, &st);
	struct sluice_client *c;
	assert_int_equal(sluice_client_connect(fake_server_addr(fs), NULL, &c), 0);

	/* Defaults. */
	struct sluice_consumer_options o;
	sluice_consumer_options_init(&o);
	assert_int_equal(o.batch_size, 100);
	assert_int_equal(o.start.type, SLUICE_POS_LATEST);
	assert_int_equal(o.max_retries, -1);
	assert_int_equal(o.max_record_age_s, -1);
	assert_int_equal(o.parallelism, 1);
	assert_int_equal(o.timeout_ms, 60000);
	assert_null(o.on_failure);

	/* Create with NULL options: the defaults go on the wire. */
	assert_int_equal(sluice_consumer_create(c, "c1", "orders", "remote", NULL), 0);
	assert_int_equal(st.create_status, 0);
	assert_string_equal(st.name, "c1");
	assert_string_equal(st.stream, "orders");
	assert_int_equal(st.wire.handler_kind, SL_PROTO_HANDLER_REMOTE);
	assert_string_equal(st.target, "");
	assert_int_equal(st.wire.batch_size, 100);
	assert_int_equal(st.wire.timeout_ms, 60000);
	assert_int_equal(st.wire.start.type, SLUICE_POS_LATEST);
	assert_string_equal(st.on_failure, "");

	/* Every option. */
	o.batch_size = 7;
	o.batch_window_ms = 500;
	o.start = (struct sluice_position){.type = SLUICE_POS_AT_TIMESTAMP, .value = 123456};
	o.max_retries = 4;
	o.max_record_age_s = 3600;
	o.bisect_on_error = true;
	o.on_failure = "dlq";
	o.parallelism = 3;
	o.timeout_ms = 30000;
	assert_int_equal(sluice_consumer_create(c, "c2", "orders", "exec:python3 h.py --x", &o), 0);
	assert_int_equal(st.wire.handler_kind, SL_PROTO_HANDLER_EXEC);
	assert_string_equal(st.target, "python3 h.py --x");
	assert_int_equal(st.wire.batch_size, 7);
	assert_int_equal(st.wire.batch_window_ms, 500);
	assert_int_equal(st.wire.start.type, SLUICE_POS_AT_TIMESTAMP);
	assert_int_equal(st.wire.start.value, 123456);
	assert_int_equal(st.wire.max_retries, 4);
	assert_int_equal(st.wire.max_record_age_s, 3600);
	assert_true(st.wire.bisect_on_error);
	assert_string_equal(st.on_failure, "dlq");
	assert_int_equal(st.wire.parallelism, 3);
	assert_int_equal(st.wire.timeout_ms, 30000);
	assert_int_equal(sluice_consumer_create(c, "c3", "orders", "plugin:/x/h.so", NULL), 0);
	assert_int_equal(st.wire.handler_kind, SL_PROTO_HANDLER_PLUGIN);
	assert_string_equal(st.target, "/x/h.so");

	/* Refused locally, before anything is sent. */
	unsigned before = st.creates;
	static const char *const bad_specs[] = {"", "exec:", "plugin:", "lambda:x", "remote:x"};
	for (size_t i = 0; i < sizeof(bad_specs) / sizeof(bad_specs[0]); i++) {
		assert_int_equal(sluice_consumer_create(c, "c", "orders", bad_specs[i], NULL),
				 SLUICE_ERR_INVALID_ARGUMENT);
		assert_non_null(strstr(sluice_client_last_error_message(c), "handler"));
	}
	assert_int_equal(sluice_consumer_create(c, "a/b", "orders", "remote", NULL),
			 SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sluice_consumer_create(c, "c", "", "remote", NULL),
			 SLUICE_ERR_INVALID_NAME);
	o.on_failure = "bad name";
	assert_int_equal(sluice_consumer_create(c, "c", "orders", "remote", &o),
			 SLUICE_ERR_INVALID_NAME);
	o.on_failure = NULL;
	o.start.type = SLUICE_POS_AT_SEQ;
	assert_int_equal(sluice_consumer_create(c, "c", "orders", "remote", &o),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(st.creates, before);

	/* The server's message comes through. */
	assert_int_equal(sluice_consumer_create(c, "taken", "orders", "remote", NULL),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_string_equal(sluice_client_last_error_message(c), "batch_size: 0 outside 1..10000");

	/* List. */
	char **names;
	size_t n;
	assert_int_equal(sluice_consumer_list(c, &names, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "alpha");
	assert_string_equal(names[1], "beta");
	sluice_strings_free(names, n);

	/* Describe. */
	struct sluice_consumer_info *info;
	assert_int_equal(sluice_consumer_describe(c, "billing", &info), 0);
	assert_string_equal(info->name, "billing");
	assert_string_equal(info->stream, "orders");
	assert_int_equal(info->handler_kind, SLUICE_HANDLER_KIND_EXEC);
	assert_string_equal(info->handler_target, "./h.sh");
	assert_int_equal(info->options.batch_size, 50);
	assert_int_equal(info->options.batch_window_ms, 100);
	assert_int_equal(info->options.start.type, SLUICE_POS_TRIM_HORIZON);
	assert_int_equal(info->options.max_retries, 2);
	assert_int_equal(info->options.max_record_age_s, 600);
	assert_true(info->options.bisect_on_error);
	assert_string_equal(info->options.on_failure, "dlq");
	assert_int_equal(info->options.parallelism, 2);
	assert_int_equal(info->options.timeout_ms, 5000);
	assert_int_equal(info->created_ms, 1764291723000ll);
	assert_int_equal(info->shard_count, 2);
	assert_int_equal(info->shards[1].shard_id, 1);
	assert_int_equal(info->shards[1].checkpoint_seq, 101);
	assert_int_equal(info->shards[1].state, SLUICE_CONSUMER_RETRYING);
	assert_int_equal(info->shards[1].retries, 3);
	assert_string_equal(info->shards[1].last_error, "exit 1");
	assert_string_equal(info->shards[0].last_error, "");
	assert_string_equal(sluice_consumer_state_name(info->shards[1].state), "RETRYING");
	assert_string_equal(sluice_handler_kind_name(info->handler_kind), "exec");
	sluice_consumer_info_free(info);
	sluice_consumer_info_free(NULL);
	/* A count the body cannot hold. */
	st.describe_garbage = true;
	info = NULL;
	assert_int_equal(sluice_consumer_describe(c, "billing", &info), SLUICE_ERR_PROTOCOL);
	assert_null(info);
	st.describe_garbage = false;

	/* Reset. */
	struct sluice_position to = {.type = SLUICE_POS_AT_SEQ, .value = 77};
	assert_int_equal(sluice_consumer_reset(c, "billing", -1, &to), 0);
	assert_string_equal(st.reset_name, "billing");
	assert_int_equal(st.reset.shard_id, -1);
	assert_int_equal(st.reset.position.type, SLUICE_POS_AT_SEQ);
	assert_int_equal(st.reset.position.value, 77);
	to.type = SLUICE_POS_TRIM_HORIZON;
	assert_int_equal(sluice_consumer_reset(c, "billing", 4, &to), 0);
	assert_int_equal(st.reset.shard_id, 4);
	assert_int_equal(st.resets, 2);
	assert_int_equal(sluice_consumer_reset(c, "billing", -2, &to), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sluice_consumer_reset(c, "billing", (int64_t)UINT32_MAX + 1, &to),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sluice_consumer_reset(c, "billing", 0, NULL), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(st.resets, 2);

	/* Delete. */
	assert_int_equal(sluice_consumer_delete(c, "billing"), 0);
	assert_int_equal(sluice_consumer_delete(c, "missing"), SLUICE_ERR_INVALID_ARGUMENT);
	assert_string_equal(sluice_client_last_error_message(c), "no consumer missing");
	assert_int_equal(sluice_consumer_delete(c, "a b"), SLUICE_ERR_INVALID_NAME);
	assert_int_equal(st.deletes, 2);

	sluice_client_close(c);
	fake_server_stop(fs);
}

/* ---- remote consumer ---- */

enum remote_mode {
	REMOTE_NORMAL,	      /* attach: 2 batches; each ack: 1 more, up to `total` */
	REMOTE_REFUSE_ATTACH, /* attach answered with an error */
	REMOTE_CLOSE_AFTER,   /* close the connection after `total` acks */
	REMOTE_GARBAGE,	      /* a malformed batch */
	REMOTE_END_ATTACH,    /* after the first ack: an error answer to the ATTACH */
};

struct ack_seen {
	uint32_t delivery_id;
	uint8_t status;
	uint32_t failed_from;
	char message[300];
};

struct remote_state {
	enum remote_mode mode;
	unsigned total;
	unsigned pushed;
	uint32_t attach_id;
	struct ack_seen acks[64];
	atomic_uint nacks;
	atomic_uint attaches;
};

static void push_batch(struct remote_state *st, struct sl_buf *out)
{
	uint32_t id = 1000 + st->pushed;
	size_t start;
	assert_int_equal(sl_proto_encode_push_head(out, SL_OP_CONSUMER_BATCH, id, &start), 0);
	uint32_t count = 1 + st->pushed % 3;
	struct sl_consumer_batch_head hd = {.consumer = {.p = "rc", .len = 2},
					    .stream = {.p = "orders", .len = 6},
					    .shard_id = st->pushed % 2,
					    .attempt = st->pushed / 4,
					    .count = count};
	assert_int_equal(sl_proto_put_consumer_batch_head(out, &hd), 0);
	for (uint32_t i = 0; i < count; i++) {
		char data[32];
		int n = snprintf(data, sizeof(data), "b%u-r%u", st->pushed, i);
		struct sluice_record rec = {.seq = 10 * st->pushed + i,
					    .ts_ms = 5000 + i,
					    .key = "key",
					    .key_len = 3,
					    .data = (const uint8_t *)data,
					    .data_len = (uint32_t)n};
		assert_int_equal(sl_proto_put_record_out(out, &rec), 0);
	}
	sl_proto_finish_frame(out, start);
	st->pushed++;
}

static int remote_handler_srv(void *ctx, unsigned conn, const struct sl_frame_header *h,
			      const uint8_t *body, size_t len, struct sl_buf *out)
{
	(void)conn;
	struct remote_state *st = ctx;
	if (h->opcode == SL_OP_CONSUMER_ATTACH) {
		struct sl_str name;
		assert_int_equal(sl_proto_decode_name(body, len, &name), 0);
		assert_int_equal(name.len, 2);
		assert_memory_equal(name.p, "rc", 2);
		atomic_fetch_add(&st->attaches, 1);
		st->attach_id = h->request_id;
		if (st->mode == REMOTE_REFUSE_ATTACH) {
			fake_answer_error(out, h, SLUICE_ERR_INVALID_ARGUMENT,
					  "consumer rc is not remote");
			return FAKE_SEND;
		}
		fake_answer_empty(out, h);
		if (st->mode == REMOTE_GARBAGE) {
			size_t start;
			assert_int_equal(
			    sl_proto_encode_push_head(out, SL_OP_CONSUMER_BATCH, 1, &start), 0);
			sl_buf_put_u32(out, 0xffffffff);
			sl_proto_finish_frame(out, start);
			return FAKE_SEND;
		}
		for (int i = 0; i < 2 && st->pushed < st->total; i++)
			push_batch(st, out);
		return FAKE_SEND;
	}
	if (h->opcode == SL_OP_CONSUMER_ACK) {
		struct sl_req_consumer_ack a;
		assert_int_equal(sl_proto_decode_consumer_ack(body, len, &a), 0);
		unsigned i = atomic_load(&st->nacks);
		assert_true(i < 64);
		st->acks[i].delivery_id = a.delivery_id;
		st->acks[i].status = a.status;
		st->acks[i].failed_from = a.failed_from;
		copy_str(st->acks[i].message, sizeof(st->acks[i].message), a.message);
		atomic_fetch_add(&st->nacks, 1);
		/* Refuse every fifth ack: counted by the client, not fatal. */
		if (i % 5 == 4)
			fake_answer_error(out, h, SLUICE_ERR_TIMEOUT, "delivery timed out");
		else
			fake_answer_empty(out, h);
		if (st->mode == REMOTE_END_ATTACH) {
			struct sl_frame_header ah = {.opcode = SL_OP_CONSUMER_ATTACH,
						     .request_id = st->attach_id};
			fake_answer_error(out, &ah, SLUICE_ERR_SHUTTING_DOWN, "consumer deleted");
			return FAKE_SEND;
		}
		if (st->mode == REMOTE_CLOSE_AFTER && i + 1 == st->total)
			return FAKE_CLOSE;
		if (st->pushed < st->total)
			push_batch(st, out);
		return FAKE_SEND;
	}
	fake_answer_error(out, h, SLUICE_ERR_BAD_OPCODE, NULL);
	return FAKE_SEND;
}

struct handler_ctx {
	unsigned calls;
	unsigned records;
	uint64_t seqs[64];
	struct sluice_remote_consumer *rc;
	unsigned stop_at; /* call stop from inside the handler at this call (1-based); 0 never */
};

static int my_handler(void *ctx, const struct sluice_handler_batch *b,
		      struct sluice_handler_result *res)
{
	struct handler_ctx *hc = ctx;
	unsigned call = hc->calls++;
	assert_string_equal(b->consumer, "rc");
	assert_string_equal(b->stream, "orders");
	assert_int_equal(b->shard_id, call % 2);
	assert_int_equal(b->attempt, call / 4);
	assert_int_equal(b->count, 1 + call % 3);
	assert_int_equal(res->status, SLUICE_HANDLER_OK);
	assert_string_equal(res->message, "");
	for (size_t i = 0; i < b->count; i++) {
		char want[32];
		int n = snprintf(want, sizeof(want), "b%u-r%zu", call, i);
		assert_int_equal(b->records[i].data_len, (uint32_t)n);
		assert_memory_equal(b->records[i].data, want, (size_t)n);
		assert_int_equal(b->records[i].key_len, 3);
		assert_memory_equal(b->records[i].key, "key", 3);
		assert_int_equal(b->records[i].seq, 10 * call + i);
		if (hc->records < 64)
			hc->seqs[hc->records] = b->records[i].seq;
		hc->records++;
	}
	if (hc->stop_at && call + 1 == hc->stop_at)
		sluice_remote_consumer_stop(hc->rc);
	/* Vary the results: ok, failed_from 1, error with a message, a negative return, a
	 * failed_from past the batch. */
	switch (call % 5) {
	case 1:
		res->status = SLUICE_HANDLER_FAILED_FROM;
		res->failed_from = b->count - 1;
		snprintf(res->message, sizeof(res->message), "record %zu failed", b->count - 1);
		break;
	case 2:
		res->status = SLUICE_HANDLER_ERROR;
		snprintf(res->message, sizeof(res->message), "boom");
		break;
	case 3:
		return -EIO;
	case 4:
		res->status = SLUICE_HANDLER_FAILED_FROM;
		res->failed_from = 9; /* not inside the batch */
		break;
	default:
		break;
	}
	return 0;
}

static void remote_normal(void **state)
{
	(void)state;
	struct remote_state st = {.mode = REMOTE_NORMAL, .total = 10};
	struct fake_server *fs = fake_server_start(remote_handler_srv, &st);
	struct sluice_remote_consumer *rc = NULL;
	assert_int_equal(sluice_consumer_attach(fake_server_addr(fs), "rc", NULL, &rc), 0);
	struct handler_ctx hc = {.rc = rc};
	/* All 10 batches, then nothing more: returns on the timeout. */
	int64_t t0 = sl_mono_ms();
	assert_int_equal(sluice_remote_consumer_run(rc, my_handler, &hc, 1500), 0);
	int64_t took = sl_mono_ms() - t0;
	assert_true(took >= 1400 && took < 5000);
	assert_int_equal(hc.calls, 10);
	assert_int_equal(atomic_load(&st.nacks), 10);
	for (unsigned i = 0; i < 10; i++) {
		const struct ack_seen *a = &st.acks[i];
		assert_int_equal(a->delivery_id, 1000 + i);
		switch (i % 5) {
		case 0:
			assert_int_equal(a->status, SL_PROTO_ACK_OK);
			break;
		case 1:
			assert_int_equal(a->status, SL_PROTO_ACK_FAILED_FROM);
			assert_int_equal(a->failed_from, i % 3); /* count - 1 */
			char want[32];
			snprintf(want, sizeof(want), "record %u failed", i % 3);
			assert_string_equal(a->message, want);
			break;
		case 2:
			assert_int_equal(a->status, SL_PROTO_ACK_ERROR);
			assert_string_equal(a->message, "boom");
			break;
		case 3:
			assert_int_equal(a->status, SL_PROTO_ACK_ERROR);
			break;
		case 4:
			assert_int_equal(a->status, SL_PROTO_ACK_ERROR);
			assert_non_null(strstr(a->message, "failed_from 9"));
			break;
		}
	}
	struct sluice_remote_consumer_stats stats;
	sluice_remote_consumer_stats(rc, &stats);
	assert_int_equal(stats.batches, 10);
	assert_int_equal(stats.records, hc.records);
	assert_int_equal(stats.acks_refused, 2); /* acks 4 and 9 */
	assert_non_null(strstr(sluice_remote_consumer_last_error_message(rc), "timed out"));
	sluice_remote_consumer_destroy(rc);
	sluice_remote_consumer_destroy(NULL);
	fake_server_stop(fs);
}

static void remote_stop_from_handler(void **state)
{
	(void)state;
	struct remote_state st = {.mode = REMOTE_NORMAL, .total = 10};
	struct fake_server *fs = fake_server_start(remote_handler_srv, &st);
	struct sluice_remote_consumer *rc = NULL;
	assert_int_equal(sluice_consumer_attach(fake_server_addr(fs), "rc", NULL, &rc), 0);
	struct handler_ctx hc = {.rc = rc, .stop_at = 3};
	assert_int_equal(sluice_remote_consumer_run(rc, my_handler, &hc, -1), 0);
	assert_int_equal(hc.calls, 3); /* the third batch was finished and acknowledged */
	/* The stop was consumed: the next run goes on where it stopped. */
	assert_int_equal(sluice_remote_consumer_run(rc, my_handler, &hc, 1000), 0);
	assert_int_equal(hc.calls, 10);
	assert_int_equal(atomic_load(&st.nacks), 10);
	assert_int_equal(atomic_load(&st.attaches), 1);
	sluice_remote_consumer_destroy(rc);
	fake_server_stop(fs);
}

static void *stopper(void *arg)
{
	usleep(200 * 1000);
	sluice_remote_consumer_stop(arg);
	return NULL;
}

static void remote_stop_from_thread(void **state)
{
	(void)state;
	struct remote_state st = {.mode = REMOTE_NORMAL, .total = 2};
	struct fake_server *fs = fake_server_start(remote_handler_srv, &st);
	struct sluice_remote_consumer *rc = NULL;
	assert_int_equal(sluice_consumer_attach(fake_server_addr(fs), "rc", NULL, &rc), 0);
	struct handler_ctx hc = {.rc = rc};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, stopper, rc), 0);
	int64_t t0 = sl_mono_ms();
	assert_int_equal(sluice_remote_consumer_run(rc, my_handler, &hc, -1), 0);
	assert_true(sl_mono_ms() - t0 < 5000);
	pthread_join(t, NULL);
	assert_int_equal(hc.calls, 2);
	/* A stop before run makes the next run return at once. */
	sluice_remote_consumer_stop(rc);
	t0 = sl_mono_ms();
	assert_int_equal(sluice_remote_consumer_run(rc, my_handler, &hc, 5000), 0);
	assert_true(sl_mono_ms() - t0 < 1000);
	sluice_remote_consumer_destroy(rc);
	fake_server_stop(fs);
}

static void remote_disconnect_and_reattach(void **state)
{
	(void)state;
	struct remote_state st = {.mode = REMOTE_CLOSE_AFTER, .total = 3};
	struct fake_server *fs = fake_server_start(remote_handler_srv, &st);
	struct sluice_remote_consumer *rc = NULL;
	assert_int_equal(sluice_consumer_attach(fake_server_addr(fs), "rc", NULL, &rc), 0);
	struct handler_ctx hc = {.rc = rc};
	assert_int_equal(sluice_remote_consumer_run(rc, my_handler, &hc, 5000),
			 SLUICE_ERR_DISCONNECTED);
	assert_int_equal(hc.calls, 3);
	assert_true(sluice_remote_consumer_last_error_message(rc)[0] != '\0');
	/* The next run reconnects and attaches again. */
	st.mode = REMOTE_NORMAL;
	st.total = 5;
	assert_int_equal(sluice_remote_consumer_run(rc, my_handler, &hc, 800), 0);
	assert_int_equal(atomic_load(&st.attaches), 2);
	assert_int_equal(hc.calls, 5);
	sluice_remote_consumer_destroy(rc);
	fake_server_stop(fs);
}

static void remote_errors(void **state)
{
	(void)state;
	/* Attach refused: the server's code and message. */
	struct remote_state st = {.mode = REMOTE_REFUSE_ATTACH};
	struct fake_server *fs = fake_server_start(remote_handler_srv, &st);
	struct sluice_remote_consumer *rc = (void *)1;
	assert_int_equal(sluice_consumer_attach(fake_server_addr(fs), "rc", NULL, &rc),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_ptr_equal(rc, (void *)1);
	assert_int_equal(sluice_consumer_attach(fake_server_addr(fs), "a/b", NULL, &rc),
			 SLUICE_ERR_INVALID_NAME);
	fake_server_stop(fs);

	/* A malformed batch ends the run with PROTOCOL. */
	struct remote_state st2 = {.mode = REMOTE_GARBAGE};
	fs = fake_server_start(remote_handler_srv, &st2);
	assert_int_equal(sluice_consumer_attach(fake_server_addr(fs), "rc", NULL, &rc), 0);
	struct handler_ctx hc = {.rc = rc};
	assert_int_equal(sluice_remote_consumer_run(rc, my_handler, &hc, 2000),
			 SLUICE_ERR_PROTOCOL);
	assert_int_equal(hc.calls, 0);
	assert_non_null(strstr(sluice_remote_consumer_last_error_message(rc), "malformed"));
	sluice_remote_consumer_destroy(rc);
	fake_server_stop(fs);

	/* The server ends the attachment with an error answer to the ATTACH. */
	struct remote_state st3 = {.mode = REMOTE_END_ATTACH, .total = 5};
	fs = fake_server_start(remote_handler_srv, &st3);
	assert_int_equal(sluice_consumer_attach(fake_server_addr(fs), "rc", NULL, &rc), 0);
	struct handler_ctx hc3 = {.rc = rc};
	assert_int_equal(sluice_remote_consumer_run(rc, my_handler, &hc3, 2000),
			 SLUICE_ERR_SHUTTING_DOWN);
	assert_string_equal(sluice_remote_consumer_last_error_message(rc), "consumer deleted");
	sluice_remote_consumer_destroy(rc);
	fake_server_stop(fs);

	/* Nobody listening. */
	assert_true(sluice_consumer_attach("127.0.0.1:1", "rc", NULL, &rc) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(admin_calls),
	    cmocka_unit_test(remote_normal),
	    cmocka_unit_test(remote_stop_from_handler),
	    cmocka_unit_test(remote_stop_from_thread),
	    cmocka_unit_test(remote_disconnect_and_reattach),
	    cmocka_unit_test(remote_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
