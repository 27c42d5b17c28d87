/* struct sluice_client against a fake server: framing, ids, errors, reconnect, timeouts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sluice/client.h>

#include "common/clock.h"
#include "fake_server.h"
#include "log/record_format.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum mode {
	MODE_NORMAL,
	MODE_CUT_MID_ANSWER, /* PING: half an answer, then close */
	MODE_SILENT,	     /* PING: never answer */
	MODE_WRONG_ID,	     /* PING: answer with another request id */
	MODE_CLOSE_AFTER,    /* PING: answer, then close the connection */
};

struct state {
	enum mode mode;
	uint32_t last_request_id;
	uint32_t request_ids[64];
	unsigned nrequests;
	bool stream_exists;
	unsigned reads;	       /* READ requests seen */
	uint32_t last_wait_ms; /* of the last READ */
	uint32_t max_wait_ms;  /* of all READs */
};

static void put_shard(struct sl_buf *out, uint32_t id)
{
	struct sl_shard_desc d = {.shard_id = id,
				  .parent_id = -1,
				  .adjacent_parent_id = id == 1 ? 0 : -1,
				  .start_seq = 1,
				  .next_seq = 10 + id};
	d.end_hash.be[0] = 0x7f + (uint8_t)id;
	assert_int_equal(sl_proto_put_shard_desc(out, &d), 0);
}

/* READ answer: 3 records of shard req.shard_id starting at req.position.value. */
static void answer_read(struct sl_buf *out, const struct sl_frame_header *h, const uint8_t *body,
			size_t len)
{
	struct sl_req_read req;
	assert_int_equal(sl_proto_decode_read(body, len, &req), 0);
	size_t start;
	assert_int_equal(sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start),
			 0);
	uint64_t first = req.position.type == SLUICE_POS_AT_SEQ ? req.position.value : 1;
	uint32_t n = first >= 7 ? 0 : 3;
	sl_buf_put_u32(out, req.shard_id);
	sl_buf_put_u64(out, first + n); /* next_seq */
	sl_buf_put_u64(out, 7);		/* tip */
	sl_buf_put_u64(out, 42);
	sl_buf_put_u32(out, n);
	for (uint32_t i = 0; i < n; i++) {
		char data[32];
		int dl =
		    snprintf(data, sizeof(data), "record-%llu", (unsigned long long)(first + i));
		struct sluice_record rec = {.seq = first + i,
					    .ts_ms = 1000 + (int64_t)i,
					    .key = "k",
					    .key_len = 1,
					    .data = (const uint8_t *)data,
					    .data_len = (uint32_t)dl};
		/* The answer carries the records as the log stores them (real checksums). */
		uint32_t flen = sl_record_frame_bytes(rec.key_len, false, rec.data_len);
		assert_int_equal(sl_buf_reserve(out, flen), 0);
		assert_int_equal(sl_record_encode(out->data + out->len, &rec), flen);
		/* shard 13 answers a damaged second frame: a wrong magic, then a length that
		 * does not match its header */
		if (req.shard_id == 13 && i == 1)
			out->data[out->len + ((first & 1) ? 0 : 4)] ^= 0x40;
		out->len += flen;
	}
	/* shard 9 plays a closed shard read to its end */
	sl_buf_put_u8(out, req.shard_id == 9 && n == 0 ? SL_READ_FLAG_SHARD_ENDED : 0);
	sl_proto_finish_frame(out, start);
}

static int handler(void *ctx, unsigned conn, const struct sl_frame_header *h, const uint8_t *body,
		   size_t len, struct sl_buf *out)
{
	struct state *st = ctx;
	if (st->nrequests < 64)
		st->request_ids[st->nrequests++] = h->request_id;
	st->last_request_id = h->request_id;
	if (st->mode == MODE_CUT_MID_ANSWER) {
		/* the real answer, minus its last 3 bytes */
		st->mode = MODE_NORMAL;
		handler(ctx, conn, h, body, len, out);
		out->len -= 3;
		return FAKE_CLOSE;
	}
	size_t start;
	switch (h->opcode) {
	case SL_OP_PING:
		if (st->mode == MODE_SILENT)
			return FAKE_SEND;
		if (st->mode == MODE_CLOSE_AFTER) {
			fake_answer_empty(out, h);
			st->mode = MODE_NORMAL;
			return FAKE_CLOSE;
		}
		if (st->mode == MODE_WRONG_ID) {
			struct sl_frame_header other = *h;
			other.request_id += 1000;
			fake_answer_empty(out, &other);
			return FAKE_SEND;
		}
		fake_answer_empty(out, h);
		return FAKE_SEND;
	case SL_OP_CREATE_STREAM: {
		struct sl_req_create_stream req;
		assert_int_equal(sl_proto_decode_create_stream(body, len, &req), 0);
		assert_int_equal(req.shard_count, 4);
		assert_true(req.retention_ms == 86400000ull);
		if (st->stream_exists) {
			fake_answer_error(out, h, SLUICE_ERR_STREAM_EXISTS,
					  "stream 'orders' already exists");
			return FAKE_SEND;
		}
		st->stream_exists = true;
		fake_answer_empty(out, h);
		return FAKE_SEND;
	}
	case SL_OP_LIST_STREAMS:
		sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
		sl_buf_put_u32(out, 2);
		sl_proto_put_str8(out, "alpha", 5);
		sl_proto_put_str8(out, "beta", 4);
		sl_proto_finish_frame(out, start);
		return FAKE_SEND;
	case SL_OP_DESCRIBE_STREAM: {
		struct sl_str name;
		assert_int_equal(sl_proto_decode_name(body, len, &name), 0);
		if (name.len != 6 || memcmp(name.p, "orders", 6) != 0) {
			fake_answer_error(out, h, SLUICE_ERR_STREAM_NOT_FOUND, "no such stream");
			return FAKE_SEND;
		}
		sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
		struct sl_stream_desc d = {.name = {"orders", 6},
					   .retention_ms = 3600000,
					   .created_ms = 1700000000000,
					   .status = SL_PROTO_STREAM_ACTIVE,
					   .shard_count = 2};
		assert_int_equal(sl_proto_put_stream_desc(out, &d), 0);
		put_shard(out, 0);
		put_shard(out, 1);
		sl_proto_finish_frame(out, start);
		return FAKE_SEND;
	}
	case SL_OP_LIST_SHARDS:
		sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
		sl_buf_put_u32(out, 3);
		put_shard(out, 0);
		put_shard(out, 1);
		put_shard(out, 2);
		sl_proto_finish_frame(out, start);
		return FAKE_SEND;
	case SL_OP_PRODUCE: {
		struct sl_req_produce req;
		assert_int_equal(sl_proto_decode_produce(body, len, &req), 0);
		sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
		sl_buf_put_u32(out, req.count);
		struct sl_record_view v;
		for (uint32_t i = 0; sl_proto_produce_next(&req, 1u << 20, &v) == 1; i++) {
			/* record i fails when its data starts with '!' */
			bool bad = v.data_len > 0 && v.data[0] == '!';
			sl_buf_put_u32(out, bad ? (uint32_t)SLUICE_ERR_INVALID_ARGUMENT : 0);
			sl_buf_put_u32(out, v.key_len);		/* shard: the key length */
			sl_buf_put_u64(out, 100 + (uint64_t)i); /* seq */
		}
		sl_proto_finish_frame(out, start);
		return FAKE_SEND;
	}
	case SL_OP_READ: {
		struct sl_req_read req;
		assert_int_equal(sl_proto_decode_read(body, len, &req), 0);
		st->reads++;
		st->last_wait_ms = req.wait_ms;
		if (req.wait_ms > st->max_wait_ms)
			st->max_wait_ms = req.wait_ms;
		if (req.wait_ms)
			usleep(400 * 1000); /* a long poll that waited: longer than the timeout */
		answer_read(out, h, body, len);
		return FAKE_SEND;
	}
	case SL_OP_STREAM_SPLIT:
	case SL_OP_STREAM_MERGE:
	case SL_OP_STREAM_SCALE: {
		struct sl_req_reshard q;
		assert_int_equal(sl_proto_decode_reshard(h->opcode, body, len, &q), 0);
		assert_true(q.stream.len == 6 && memcmp(q.stream.p, "orders", 6) == 0);
		if (q.shard_id == 99) {
			fake_answer_error(out, h, SLUICE_ERR_RESOURCE_IN_USE,
					  "another reshard is running");
			return FAKE_SEND;
		}
		sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
		if (h->opcode == SL_OP_STREAM_SPLIT) {
			/* children: the shard id + 10 and the key's first byte */
			sl_buf_put_u32(out, q.shard_id + 10);
			sl_buf_put_u32(out, q.start_hash.be[0]);
		} else if (h->opcode == SL_OP_STREAM_MERGE) {
			sl_buf_put_u32(out, q.shard_id * 100 + q.adjacent_id);
		} else {
			sl_buf_put_u32(out, q.target);
		}
		sl_proto_finish_frame(out, start);
		return FAKE_SEND;
	}
	default:
		fake_answer_error(out, h, SLUICE_ERR_BAD_OPCODE, "bad opcode");
		return FAKE_SEND;
	}
}

struct fixture {
	struct state st;
	struct fake_server *fs;
	struct sluice_client *c;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->fs = fake_server_start(handler, &f->st);
	struct sluice_client_options opts = {.timeout_ms = 300};
	assert_int_equal(sluice_client_connect(fake_server_addr(f->fs), &opts, &f->c), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	sluice_client_close(f->c);
	fake_server_stop(f->fs);
	free(f);
	return 0;
}

static void ping_and_request_ids(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 5; i++)
		assert_int_equal(sluice_ping(f->c), 0);
	assert_int_equal(f->st.nrequests, 5);
	for (unsigned i = 1; i < 5; i++)
		assert_true(f->st.request_ids[i] > f->st.request_ids[i - 1]);
	assert_int_not_equal(f->st.request_ids[0], 0);
}

static void create_and_server_error(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(sluice_stream_create(f->c, "orders", 4, 86400000), 0);
	assert_string_equal(sluice_client_last_error_message(f->c), "");
	assert_int_equal(sluice_stream_create(f->c, "orders", 4, 86400000),
			 SLUICE_ERR_STREAM_EXISTS);
	assert_string_equal(sluice_client_last_error_message(f->c),
			    "stream 'orders' already exists");
	/* Checked locally, never sent. */
	unsigned before = fake_server_requests(f->fs);
	assert_int_equal(sluice_stream_create(f->c, "bad name!", 4, 1), SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sluice_stream_create(f->c, "ok", 0, 1), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(fake_server_requests(f->fs), before);
	/* The connection is still good after a server error. */
	assert_int_equal(sluice_ping(f->c), 0);
	assert_int_equal(fake_server_connections(f->fs), 1);
}

static void list_and_describe(void **state)
{
	struct fixture *f = *state;
	char **names;
	size_t n;
	assert_int_equal(sluice_stream_list(f->c, &names, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "alpha");
	assert_string_equal(names[1], "beta");
	sluice_strings_free(names, n);

	struct sluice_stream_info *info;
	assert_int_equal(sluice_stream_describe(f->c, "orders", &info), 0);
	assert_string_equal(info->name, "orders");
	assert_true(info->retention_ms == 3600000);
	assert_true(info->created_ms == 1700000000000);
	assert_int_equal(info->status, SLUICE_STREAM_ACTIVE);
	assert_int_equal(info->shard_count, 2);
	assert_int_equal(info->shards[1].shard_id, 1);
	assert_int_equal(info->shards[1].parent_id, -1);
	assert_int_equal(info->shards[1].adjacent_parent_id, 0);
	assert_int_equal(info->shards[1].end_hash_key.be[0], 0x80);
	assert_true(info->shards[1].next_seq == 11);
	/* shard 1 names 0 as its adjacent parent: 0 is closed (the wire has no state field) */
	assert_true(info->shards[0].closed);
	assert_false(info->shards[1].closed);
	sluice_stream_info_free(info);

	info = NULL;
	assert_int_equal(sluice_stream_describe(f->c, "other", &info), SLUICE_ERR_STREAM_NOT_FOUND);
	assert_null(info);
	assert_string_equal(sluice_client_last_error_message(f->c), "no such stream");

	struct sluice_shard_info *shards;
	assert_int_equal(sluice_list_shards(f->c, "orders", &shards, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(shards[2].shard_id, 2);
	sluice_shards_free(shards);
}

static void put_and_put_batch(void **state)
{
	struct fixture *f = *state;
	uint32_t shard = 0;
	uint64_t seq = 0;
	assert_int_equal(sluice_put(f->c, "orders", "key", 3, "hello", 5, &shard, &seq), 0);
	assert_int_equal(shard, 3);
	assert_true(seq == 100);
	/* A per-record failure of a single put is the call's error. */
	assert_int_equal(sluice_put(f->c, "orders", "key", 3, "!bad", 4, NULL, NULL),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sluice_put(f->c, "orders", "", 0, "x", 1, NULL, NULL),
			 SLUICE_ERR_INVALID_KEY);

	struct sluice_hash_key hk = {.be = {1, 2, 3}};
	struct sluice_put_entry e[3] = {
	    {.key = "a", .key_len = 1, .data = "one", .data_len = 3},
	    {.key = "bb", .key_len = 2, .data = "!two", .data_len = 4},
	    {.key = "ccc", .key_len = 3, .data = "", .data_len = 0, .hash_key = &hk},
	};
	struct sluice_put_result res[3];
	assert_int_equal(sluice_put_batch(f->c, "orders", e, 3, res), 0);
	assert_int_equal(res[0].status, 0);
	assert_int_equal(res[0].shard_id, 1);
	assert_true(res[0].seq == 100);
	assert_int_equal(res[1].status, SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(res[2].status, 0);
	assert_int_equal(res[2].shard_id, 3);
	assert_true(res[2].seq == 102);
}

static void read_and_shard_reader(void **state)
{
	struct fixture *f = *state;
	struct sluice_read_result res;
	sluice_read_result_init(&res);
	struct sluice_position pos = {.type = SLUICE_POS_TRIM_HORIZON};
	assert_int_equal(sluice_read(f->c, "orders", 5, &pos, 0, 0, &res), 3);
	assert_int_equal(res.shard_id, 5);
	assert_true(res.next_seq == 4 && res.tip_seq == 7 && res.millis_behind == 42);
	assert_false(res.shard_ended);
	/* Records borrow the result, not the connection: another call does not spoil them. */
	assert_int_equal(sluice_ping(f->c), 0);
	assert_true(res.records[2].seq == 3);
	assert_int_equal(res.records[2].data_len, 8);
	assert_memory_equal(res.records[2].data, "record-3", 8);
	assert_memory_equal(res.records[0].key, "k", 1);
	assert_false(sluice_read_result_caught_up(&res));
	/* a closed shard read past its end says so */
	struct sluice_position at_end = {.type = SLUICE_POS_AT_SEQ, .value = 7};
	assert_int_equal(sluice_read(f->c, "orders", 9, &at_end, 0, 0, &res), 0);
	assert_true(res.shard_ended);
	assert_int_equal(sluice_read(f->c, "orders", 5, &at_end, 0, 0, &res), 0);
	assert_false(res.shard_ended);
	sluice_read_result_finish(&res);

	struct sluice_shard_reader *sr;
	assert_int_equal(sluice_shard_reader_create(f->c, "orders", 1, &pos, &sr), 0);
	const struct sluice_read_result *b;
	assert_false(sluice_shard_reader_caught_up(sr));
	assert_int_equal(sluice_shard_reader_next(sr, 100, 0, &b), 3);
	assert_true(b->records[0].seq == 1);
	assert_int_equal(sluice_shard_reader_next(sr, 100, 0, &b), 3);
	assert_true(b->records[0].seq == 4);
	assert_true(sluice_shard_reader_caught_up(sr));
	struct sluice_position p = sluice_shard_reader_position(sr);
	assert_int_equal(p.type, SLUICE_POS_AT_SEQ);
	assert_true(p.value == 7);
	assert_int_equal(sluice_shard_reader_next(sr, 100, 0, &b), 0);
	sluice_shard_reader_destroy(sr);
}

/* A READ answer whose record frame is damaged is a protocol error, not records. */
static void read_refuses_a_damaged_frame(void **state)
{
	struct fixture *f = *state;
	struct sluice_read_result res;
	sluice_read_result_init(&res);
	struct sluice_position pos = {.type = SLUICE_POS_AT_SEQ, .value = 2}; /* magic */
	assert_int_equal(sluice_read(f->c, "orders", 13, &pos, 0, 0, &res), SLUICE_ERR_PROTOCOL);
	assert_int_equal(res.count, 0);
	assert_non_null(strstr(sluice_client_last_error_message(f->c), "malformed record 1"));
	pos.value = 1; /* frame_len */
	assert_int_equal(sluice_read(f->c, "orders", 13, &pos, 0, 0, &res), SLUICE_ERR_PROTOCOL);
	assert_int_equal(res.count, 0);
	/* The connection is still usable. */
	assert_int_equal(sluice_read(f->c, "orders", 5, &pos, 0, 0, &res), 3);
	assert_true(res.records[0].seq == 1);
	sluice_read_result_finish(&res);
}

static void reshard_calls(void **state)
{
	struct fixture *f = *state;
	struct sluice_hash_key k = {.be = {0x42}};
	uint32_t kids[2] = {0, 0}, child = 0;
	assert_int_equal(sluice_stream_split(f->c, "orders", 3, &k, kids), 0);
	assert_int_equal(kids[0], 13);
	assert_int_equal(kids[1], 0x42);
	assert_int_equal(sluice_stream_split(f->c, "orders", 3, &k, NULL), 0);
	assert_int_equal(sluice_stream_merge(f->c, "orders", 4, 5, &child), 0);
	assert_int_equal(child, 405);
	assert_int_equal(sluice_stream_merge(f->c, "orders", 4, 5, NULL), 0);
	assert_int_equal(sluice_stream_scale(f->c, "orders", 6), 0);
	/* errors: the server's, and the ones found before sending */
	assert_int_equal(sluice_stream_split(f->c, "orders", 99, &k, kids),
			 SLUICE_ERR_RESOURCE_IN_USE);
	assert_string_equal(sluice_client_last_error_message(f->c), "another reshard is running");
	assert_int_equal(sluice_stream_split(f->c, "orders", 3, NULL, kids),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sluice_stream_scale(f->c, "orders", 0), SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sluice_stream_scale(f->c, "orders", SLUICE_SHARDS_MAX + 1),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sluice_stream_merge(f->c, "bad name", 1, 2, NULL),
			 SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sluice_ping(f->c), 0); /* the connection is fine */
}

/* A reader behind the tip asks for its next batch before returning the current one. */
static void shard_reader_reads_ahead(void **state)
{
	struct fixture *f = *state;
	struct sluice_position pos = {.type = SLUICE_POS_TRIM_HORIZON};
	struct sluice_shard_reader *sr;
	assert_int_equal(sluice_shard_reader_create(f->c, "orders", 1, &pos, &sr), 0);
	const struct sluice_read_result *b;
	assert_int_equal(sluice_shard_reader_next(sr, 100, 0, &b), 3);
	for (int i = 0; i < 2000 && fake_server_requests(f->fs) < 2; i++)
		usleep(1000);
	assert_int_equal(f->st.reads, 2);    /* the read-ahead arrived before the second next */
	assert_true(b->records[2].seq == 3); /* and did not spoil the batch in hand */
	assert_int_equal(sluice_shard_reader_next(sr, 100, 0, &b), 3);
	assert_int_equal(f->st.reads, 2); /* answered by the read-ahead */
	assert_true(b->records[0].seq == 4 && b->records[2].seq == 6);
	assert_memory_equal(b->records[2].data, "record-6", 8);
	assert_true(sluice_shard_reader_caught_up(sr)); /* caught up: nothing read ahead */
	sluice_shard_reader_destroy(sr);

	/* Another call on the client takes the read-ahead's answer: the reader reads again. */
	f->st.reads = 0;
	assert_int_equal(sluice_shard_reader_create(f->c, "orders", 1, &pos, &sr), 0);
	assert_int_equal(sluice_shard_reader_next(sr, 100, 0, &b), 3);
	assert_int_equal(sluice_ping(f->c), 0);
	assert_int_equal(sluice_shard_reader_next(sr, 100, 0, &b), 3);
	assert_true(b->records[0].seq == 4);
	assert_int_equal(f->st.reads, 3);
	sluice_shard_reader_destroy(sr);
}

static void read_wait_sends_wait_ms(void **state)
{
	struct fixture *f = *state;
	struct sluice_read_result res;
	sluice_read_result_init(&res);
	struct sluice_position pos = {.type = SLUICE_POS_LATEST};
	assert_int_equal(sluice_read(f->c, "orders", 1, &pos, 0, 0, &res), 3);
	assert_int_equal(f->st.last_wait_ms, 0);
	/* The answer takes 400 ms, longer than the 300 ms timeout: the wait extends it. */
	assert_int_equal(sluice_read_wait(f->c, "orders", 1, &pos, 0, 0, 500, &res), 3);
	assert_int_equal(f->st.last_wait_ms, 500);
	assert_int_equal(
	    sluice_read_wait(f->c, "orders", 1, &pos, 0, 0, SLUICE_READ_WAIT_MS_MAX + 1, &res),
	    SLUICE_ERR_INVALID_ARGUMENT);
	sluice_read_result_finish(&res);

	struct sluice_shard_reader *sr;
	assert_int_equal(sluice_shard_reader_create(f->c, "orders", 1, &pos, &sr), 0);
	assert_int_equal(sluice_shard_reader_set_wait(sr, SLUICE_READ_WAIT_MS_MAX + 1),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sluice_shard_reader_set_wait(sr, 700), 0);
	const struct sluice_read_result *b;
	f->st.max_wait_ms = 0;
	assert_int_equal(sluice_shard_reader_next(sr, 100, 0, &b), 3);
	assert_int_equal(f->st.max_wait_ms, 700); /* (its read-ahead never waits) */
	sluice_shard_reader_destroy(sr);
}

static void disconnect_mid_answer_then_reconnect(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(sluice_ping(f->c), 0);
	/* A produce is not idempotent: the caller hears about the disconnect. */
	f->st.mode = MODE_CUT_MID_ANSWER;
	int64_t t0 = sl_mono_ms();
	assert_int_equal(sluice_put(f->c, "orders", "k", 1, "x", 1, NULL, NULL),
			 SLUICE_ERR_DISCONNECTED);
	assert_true(sl_mono_ms() - t0 < 250); /* noticed at once, not by the timeout */
	assert_int_equal(fake_server_connections(f->fs), 1);
	assert_int_equal(sluice_ping(f->c), 0); /* the next call reconnects */
	assert_int_equal(fake_server_connections(f->fs), 2);
	/* A read-only call on a connection that had been used is retried once, transparently. */
	f->st.mode = MODE_CUT_MID_ANSWER;
	assert_int_equal(sluice_ping(f->c), 0);
	assert_int_equal(fake_server_connections(f->fs), 3);
}

static void silent_server_times_out(void **state)
{
	struct fixture *f = *state;
	f->st.mode = MODE_SILENT;
	int64_t t0 = sl_mono_ms();
	assert_int_equal(sluice_ping(f->c), SLUICE_ERR_TIMEOUT);
	int64_t took = sl_mono_ms() - t0;
	assert_true(took >= 250 && took < 2000);
	/* The connection was dropped: a late answer cannot be taken for the next one. */
	f->st.mode = MODE_NORMAL;
	assert_int_equal(sluice_ping(f->c), 0);
	assert_int_equal(fake_server_connections(f->fs), 2);
}

static void wrong_request_id_is_protocol_error(void **state)
{
	struct fixture *f = *state;
	f->st.mode = MODE_WRONG_ID;
	assert_int_equal(sluice_ping(f->c), SLUICE_ERR_PROTOCOL);
	f->st.mode = MODE_NORMAL;
	assert_int_equal(sluice_ping(f->c), 0);
}

static void idle_connection_closed_by_server(void **state)
{
	struct fixture *f = *state;
	/* The server drops the idle connection: a read-only call retries once transparently. */
	f->st.mode = MODE_CLOSE_AFTER;
	assert_int_equal(sluice_ping(f->c), 0);
	usleep(50 * 1000);
	char **names;
	size_t n;
	assert_int_equal(sluice_stream_list(f->c, &names, &n), 0);
	sluice_strings_free(names, n);
	assert_int_equal(fake_server_connections(f->fs), 2);
}

static void connect_refused(void **state)
{
	(void)state;
	struct fake_server *fs = fake_server_start(handler, NULL);
	char addr[64];
	strcpy(addr, fake_server_addr(fs));
	fake_server_stop(fs);
	struct sluice_client *c = NULL;
	assert_int_equal(sluice_client_connect(addr, NULL, &c), -ECONNREFUSED);
	assert_null(c);
	assert_int_equal(sluice_client_connect("nonsense", NULL, &c), -EINVAL);
	assert_int_equal(sluice_client_connect("127.0.0.1:", NULL, &c), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(ping_and_request_ids, setup, teardown),
	    cmocka_unit_test_setup_teardown(create_and_server_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(list_and_describe, setup, teardown),
	    cmocka_unit_test_setup_teardown(put_and_put_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(read_and_shard_reader, setup, teardown),
	    cmocka_unit_test_setup_teardown(read_refuses_a_damaged_frame, setup, teardown),
	    cmocka_unit_test_setup_teardown(reshard_calls, setup, teardown),
	    cmocka_unit_test_setup_teardown(shard_reader_reads_ahead, setup, teardown),
	    cmocka_unit_test_setup_teardown(read_wait_sends_wait_ms, setup, teardown),
	    cmocka_unit_test_setup_teardown(disconnect_mid_answer_then_reconnect, setup, teardown),
	    cmocka_unit_test_setup_teardown(silent_server_times_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(wrong_request_id_is_protocol_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(idle_connection_closed_by_server, setup, teardown),
	    cmocka_unit_test(connect_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
