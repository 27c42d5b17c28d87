/*
 * struct sl_conn (src/net/conn.c): taking a frame's receive buffer (sl_conn_take_frame) and
 * giving it back for reuse (sl_conn_recycle). A real loop and conn on one end of a socketpair;
 * a writer thread on the other end sends frames like a client.
 */
#include "net/conn.h"
#include "net/loop.h"
#include "proto/codec.h"

#include "common/clock.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* Large frames are received exactly up to their end (RBUF_EXACT_FRAME_BYTES is 256 KiB). */
#define BIG_BODY_BYTES (3u << 20)
#define SMALL_BODY_BYTES 1000u
#define FRAMES_MAX 16
#define TEST_DEADLINE_MS 20000

struct seen {
	uint8_t opcode;
	uint32_t request_id;
	size_t len;
	bool body_ok;
	const uint8_t *body;
};

struct fixture {
	struct sl_loop *loop;
	struct sl_conn *conn;
	int peer;
	int64_t deadline_ms;
	bool timed_out;
	bool freed;
	/* what the handler saw, in order */
	struct seen seen[FRAMES_MAX];
	size_t n_seen;
	uint32_t stop_at_id; /* close the conn after the frame with this id (the loop stops once
				freed) */
	/* frames the handler took (opcode RESTORE_APPEND) */
	struct sl_buf taken[FRAMES_MAX];
	size_t n_taken;
	bool hold_taken;      /* hold the conn for a taken frame, like a request in flight */
	bool recycle_by_post; /* give the first taken frame back from a post, then post sem */
	struct sl_op recycle_op;
	const uint8_t *recycled_data;
	sem_t recycled;
	/* the writer thread's script */
	struct sl_buf first, second; /* sent; second only after `recycled` when recycle_by_post */
};

static uint8_t pattern_byte(uint32_t request_id, size_t i)
{
	return (uint8_t)(request_id * 31u + i % 251u);
}

static void put_frame(struct sl_buf *out, uint8_t opcode, uint32_t request_id, size_t body_len)
{
	size_t start;
	assert_int_equal(sl_proto_encode_request_head(out, opcode, request_id, &start), 0);
	assert_int_equal(sl_buf_reserve(out, body_len), 0);
	for (size_t i = 0; i < body_len; i++)
		out->data[out->len + i] = pattern_byte(request_id, i);
	out->len += body_len;
	sl_proto_finish_frame(out, start);
}

struct frame_spec {
	uint8_t opcode; /* SL_OP_RESTORE_APPEND frames are taken by the handler */
	size_t body_len;
};

/* Frames with request ids first_id, first_id + 1, ... */
static void put_frames(struct sl_buf *out, uint32_t first_id, const struct frame_spec *specs,
		       size_t n)
{
	for (size_t i = 0; i < n; i++)
		put_frame(out, specs[i].opcode, first_id + (uint32_t)i, specs[i].body_len);
}

static bool body_matches(const uint8_t *body, size_t len, uint32_t request_id)
{
	for (size_t i = 0; i < len; i++)
		if (body[i] != pattern_byte(request_id, i))
			return false;
	return true;
}

static void recycle_posted(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct fixture *f = (struct fixture *)((char *)op - offsetof(struct fixture, recycle_op));
	f->recycled_data = f->taken[0].data;
	uint64_t len = f->taken[0].len;
	sl_conn_recycle(f->conn, &f->taken[0]);
	sl_conn_release(f->conn, len);
	sem_post(&f->recycled);
}

static int on_frame(struct sl_conn *c, const struct sl_frame_header *h, const uint8_t *body,
		    size_t len)
{
	struct fixture *f = sl_conn_userdata(c);
	assert_true(f->n_seen < FRAMES_MAX);
	f->seen[f->n_seen++] = (struct seen){
	    .opcode = h->opcode,
	    .request_id = h->request_id,
	    .len = len,
	    .body_ok = body_matches(body, len, h->request_id),
	    .body = body,
	};
	if (h->opcode == SL_OP_RESTORE_APPEND) {
		struct sl_buf *b = &f->taken[f->n_taken++];
		assert_int_equal(sl_conn_take_frame(c, b), 0);
		/* Same memory: the body is at the end of the taken buffer. */
		assert_ptr_equal(b->data + b->len - len, body);
		assert_int_equal(sl_conn_take_frame(c, b), -EINVAL); /* once per frame */
		if (f->hold_taken)
			sl_conn_hold(c, b->len);
		if (f->recycle_by_post && f->n_taken == 1) {
			f->recycle_op.complete = recycle_posted;
			sl_loop_post(f->loop, f->loop, &f->recycle_op);
		}
	}
	if (h->request_id == f->stop_at_id)
		sl_conn_close(c, false);
	return 0;
}

static void on_free(void *userdata)
{
	struct fixture *f = userdata;
	f->freed = true;
	sl_loop_stop(f->loop);
}

static const struct sl_conn_handler handler = {.on_frame = on_frame, .on_free = on_free};

static void tick(struct sl_loop *loop, void *ctx)
{
	struct fixture *f = ctx;
	if (sl_mono_ms() > f->deadline_ms) {
		f->timed_out = true;
		sl_loop_stop(loop);
	}
}

static void *writer(void *arg)
{
	struct fixture *f = arg;
	struct sl_buf *parts[2] = {&f->first, &f->second};
	for (int k = 0; k < 2; k++) {
		if (k == 1 && f->recycle_by_post)
			sem_wait(&f->recycled);
		for (size_t off = 0; off < parts[k]->len;) {
			ssize_t n = write(f->peer, parts[k]->data + off, parts[k]->len - off);
			if (n <= 0)
				return NULL;
			off += (size_t)n;
		}
	}
	return NULL;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	struct sl_loop_config lc = {.id = 0, .tick = tick, .tick_ctx = f, .tick_interval_ms = 50};
	assert_int_equal(sl_loop_create(&lc, &f->loop), 0);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->peer = sv[1];
	struct sl_conn_limits limits = {.inflight_bytes_max = 64u << 20,
					.frame_bytes_max = SL_PROTO_FRAME_MAX + 4};
	assert_int_equal(sl_conn_create(f->loop, sv[0], &handler, &limits, f, &f->conn), 0);
	sem_init(&f->recycled, 0, 0);
	f->deadline_ms = sl_mono_ms() + TEST_DEADLINE_MS;
	*state = f;
	return 0;
}

/* A loop stops for good (sl_loop_stop): each test runs it once, until the conn is freed. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	for (size_t i = 0; i < f->n_taken; i++)
		sl_buf_finish(&f->taken[i]);
	close(f->peer);
	if (!f->freed && !f->timed_out) {
		sl_conn_close(f->conn, false);
		sl_loop_run(f->loop);
	}
	assert_true(f->freed);
	sl_loop_destroy(f->loop);
	sl_buf_finish(&f->first);
	sl_buf_finish(&f->second);
	sem_destroy(&f->recycled);
	free(f);
	return 0;
}

static void run_until_stop(struct fixture *f)
{
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, writer, f), 0);
	assert_int_equal(sl_loop_run(f->loop), 0);
	pthread_join(t, NULL);
	assert_false(f->timed_out);
	assert_true(f->freed);
}

/*
 * Small and large frames, some taken, sent back to back: every frame reaches the handler whole
 * and in order (the bytes after a taken frame move to the conn's new buffer), and the taken
 * bodies keep their bytes while later frames arrive.
 */
static void test_take_keeps_body_and_later_frames(void **state)
{
	struct fixture *f = *state;
	const struct frame_spec specs[] = {
	    {SL_OP_RESTORE_APPEND, SMALL_BODY_BYTES}, /* taken, with the next frames after it */
	    {SL_OP_PING, SMALL_BODY_BYTES},
	    {SL_OP_RESTORE_APPEND, BIG_BODY_BYTES},
	    {SL_OP_PING, SMALL_BODY_BYTES},
	    {SL_OP_RESTORE_APPEND, BIG_BODY_BYTES},
	    {SL_OP_PING, 0},
	};
	put_frames(&f->first, 1, specs, 6);
	f->stop_at_id = 6;
	run_until_stop(f);
	assert_int_equal(f->n_seen, 6);
	for (size_t i = 0; i < f->n_seen; i++) {
		assert_int_equal(f->seen[i].request_id, i + 1);
		assert_true(f->seen[i].body_ok);
	}
	assert_int_equal(f->n_taken, 3);
	const uint32_t taken_ids[] = {1, 3, 5};
	for (size_t i = 0; i < f->n_taken; i++) {
		size_t body_len = i == 0 ? SMALL_BODY_BYTES : BIG_BODY_BYTES;
		assert_true(f->taken[i].len >= body_len);
		assert_true(body_matches(f->taken[i].data + f->taken[i].len - body_len, body_len,
					 taken_ids[i]));
	}
}

/*
 * A large frame taken and given back while its request was in flight: the next large frame of
 * the same size is received into that very buffer (no new allocation), and is whole.
 */
static void test_recycled_buffer_receives_next_large_frame(void **state)
{
	struct fixture *f = *state;
	f->hold_taken = true;
	f->recycle_by_post = true;
	const struct frame_spec taken[] = {{SL_OP_RESTORE_APPEND, BIG_BODY_BYTES}};
	const struct frame_spec after[] = {{SL_OP_PING, BIG_BODY_BYTES}, {SL_OP_PING, 0}};
	put_frames(&f->first, 1, taken, 1);
	put_frames(&f->second, 2, after, 2); /* sent once the first is given back */
	f->stop_at_id = 3;
	run_until_stop(f);
	assert_int_equal(f->n_seen, 3);
	assert_non_null(f->recycled_data);
	assert_true(f->seen[1].body_ok);
	assert_int_equal(f->seen[1].len, BIG_BODY_BYTES);
	assert_ptr_equal(f->seen[1].body, f->recycled_data + SL_FRAME_HEADER_BYTES);
	assert_true(f->seen[2].body_ok);
	assert_null(f->taken[0].data); /* given back: the conn owned it */
}

static void test_take_outside_a_frame_is_refused(void **state)
{
	struct fixture *f = *state;
	struct sl_buf b;
	sl_buf_init(&b);
	assert_int_equal(sl_conn_take_frame(f->conn, &b), -EINVAL);
	assert_null(b.data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_take_keeps_body_and_later_frames, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recycled_buffer_receives_next_large_frame, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_take_outside_a_frame_is_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
