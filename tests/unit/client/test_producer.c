/*
 * The asynchronous producer against a fake server: batching, exactly-once callbacks, answers out
 * of order, retries (whole request, per record, exhausted), non-retryable errors, flush,
 * disconnects, backpressure, the max_inflight=1 ordering guarantee, and when a request goes out
 * (idle pipeline at once, linger while requests are in flight, coalescing with no linger).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sluice/client.h>

#include "common/clock.h"
#include "fake_server.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_MAX 20000

enum mode {
	MODE_NORMAL,
	MODE_REVERSE4,	     /* hold requests, answer each group of 4 (or up to the one holding
				record `last`) in reverse order */
	MODE_THROTTLE_FIRST, /* the first `throttle_left` requests fail whole with THROTTLED */
	MODE_PARTIAL,	     /* odd records are THROTTLED on their first appearance */
	MODE_NONRETRY,	     /* records n % 3 == 0 fail with INVALID_ARGUMENT */
	MODE_ALWAYS_THROTTLE,
	MODE_DELAY,	 /* sleep delay_ms before answering */
	MODE_DROP_FIRST, /* close the connection on the first request, unanswered */
};

struct server_state {
	enum mode mode;
	int throttle_left;
	int delay_ms;
	unsigned last;
	bool saw_last;
	atomic_uint appearances[N_MAX];
	/* records stored (status 0), in the order the server stored them */
	unsigned stored[N_MAX * 2];
	atomic_uint nstored;
	struct sl_buf held[4];
	unsigned nheld;
};

static struct server_state srv;

/* client-side callback bookkeeping */
static atomic_uint cb_calls[N_MAX];
static atomic_int cb_status[N_MAX];
static uint64_t cb_seq[N_MAX];

static void on_done(void *ctx, int status, uint32_t shard_id, uint64_t seq)
{
	unsigned i = (unsigned)(uintptr_t)ctx;
	atomic_fetch_add(&cb_calls[i], 1);
	atomic_store(&cb_status[i], status);
	cb_seq[i] = seq;
	if (status == 0)
		assert_int_equal(shard_id, 7);
	else
		assert_int_equal(shard_id, UINT32_MAX);
}

static void answer_produce(const struct sl_frame_header *h, const uint8_t *body, size_t len,
			   struct sl_buf *out)
{
	struct sl_req_produce req;
	assert_int_equal(sl_proto_decode_produce(body, len, &req), 0);
	size_t start;
	sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start);
	sl_buf_put_u32(out, req.count);
	struct sl_record_view v;
	while (sl_proto_produce_next(&req, 1u << 20, &v) == 1) {
		char num[16] = {0};
		memcpy(num, v.data, v.data_len < 15 ? v.data_len : 15);
		unsigned n = (unsigned)atoi(num);
		assert_true(n < N_MAX);
		unsigned seen = atomic_fetch_add(&srv.appearances[n], 1);
		if (n == srv.last)
			srv.saw_last = true;
		int32_t status = 0;
		if (srv.mode == MODE_PARTIAL && (n & 1) && seen == 0)
			status = SLUICE_ERR_THROTTLED;
		if (srv.mode == MODE_NONRETRY && n % 3 == 0)
			status = SLUICE_ERR_INVALID_ARGUMENT;
		if (srv.mode == MODE_ALWAYS_THROTTLE)
			status = SLUICE_ERR_THROTTLED;
		if (status == 0)
			srv.stored[atomic_fetch_add(&srv.nstored, 1)] = n;
		sl_buf_put_u32(out, (uint32_t)status);
		sl_buf_put_u32(out, 7);
		sl_buf_put_u64(out, 1000000 + n);
	}
	sl_proto_finish_frame(out, start);
}

static int handler(void *ctx, unsigned conn, const struct sl_frame_header *h, const uint8_t *body,
		   size_t len, struct sl_buf *out)
{
	(void)ctx;
	assert_int_equal(h->opcode, SL_OP_PRODUCE);
	switch (srv.mode) {
	case MODE_DROP_FIRST:
		if (conn == 0)
			return FAKE_CLOSE;
		break;
	case MODE_THROTTLE_FIRST:
		if (srv.throttle_left > 0) {
			srv.throttle_left--;
			fake_answer_error(out, h, SLUICE_ERR_THROTTLED, "slow down");
			return FAKE_SEND;
		}
		break;
	case MODE_DELAY:
		usleep((useconds_t)srv.delay_ms * 1000);
		break;
	case MODE_REVERSE4: {
		struct sl_buf *b = &srv.held[srv.nheld++];
		sl_buf_init(b);
		answer_produce(h, body, len, b);
		if (srv.nheld == 4 || srv.saw_last) {
			for (int i = 3; i >= 0; i--) {
				sl_buf_put(out, srv.held[i].data, srv.held[i].len);
				sl_buf_finish(&srv.held[i]);
			}
			srv.nheld = 0;
		}
		return FAKE_SEND;
	}
	default:
		break;
	}
	answer_produce(h, body, len, out);
	return FAKE_SEND;
}

static struct fake_server *fs;

static int setup(void **state)
{
	(void)state;
	memset(&srv, 0, sizeof(srv));
	memset(cb_calls, 0, sizeof(cb_calls));
	memset(cb_status, 0, sizeof(cb_status));
	memset(cb_seq, 0, sizeof(cb_seq));
	fs = fake_server_start(handler, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fake_server_stop(fs);
	return 0;
}

static void send_n(struct sluice_producer *p, unsigned from, unsigned n)
{
	for (unsigned i = from; i < from + n; i++) {
		char data[16], key[16];
		int dl = snprintf(data, sizeof(data), "%u", i);
		int kl = snprintf(key, sizeof(key), "k%u", i % 10);
		assert_int_equal(sluice_producer_send(p, "orders", key, (size_t)kl, data,
						      (size_t)dl, on_done, (void *)(uintptr_t)i),
				 0);
	}
}

/* Send record 0 to an idle producer and wait until its request is out; returns when sent. */
static int64_t send_first_and_wait_sent(struct sluice_producer *p)
{
	send_n(p, 0, 1); /* idle: out at once */
	int64_t t0 = sl_mono_ms();
	struct sluice_producer_stats st;
	do {
		usleep(1000);
		sluice_producer_stats(p, &st);
	} while (st.requests_sent == 0 && sl_mono_ms() - t0 < 2000);
	assert_int_equal(st.requests_sent, 1);
	return t0;
}

static void assert_all_once(unsigned n, int status)
{
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(atomic_load(&cb_calls[i]), 1);
		assert_int_equal(atomic_load(&cb_status[i]), status);
		if (status == 0)
			assert_true(cb_seq[i] == 1000000 + i);
	}
}

static void batching_and_exactly_once(void **state)
{
	(void)state;
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), NULL, &p), 0);
	send_n(p, 0, 10000);
	assert_int_equal(sluice_producer_flush(p, 5000), 0);
	assert_all_once(10000, 0);
	struct sluice_producer_stats st;
	sluice_producer_stats(p, &st);
	assert_true(st.records_sent == 10000 && st.records_acked == 10000);
	assert_true(st.records_failed == 0 && st.bytes_buffered == 0);
	/*
	 * 500 records a request: 20, plus the requests sent early because the pipeline was idle
	 * (how many depends on how fast this thread sends compared with the fake's round trip; on
	 * a loaded machine tens): still well above one record a request.
	 */
	assert_true(st.requests_sent >= 20 && st.requests_sent <= 200);
	assert_int_equal(fake_server_requests(fs), st.requests_sent);
	/* Sending after a flush works, and linger alone sends a lonely record. */
	send_n(p, 10000, 1);
	int64_t t0 = sl_mono_ms();
	while (atomic_load(&cb_calls[10000]) == 0 && sl_mono_ms() - t0 < 2000)
		usleep(1000);
	assert_int_equal(atomic_load(&cb_calls[10000]), 1);
	sluice_producer_destroy(p);
}

static void answers_out_of_order(void **state)
{
	(void)state;
	srv.mode = MODE_REVERSE4;
	srv.last = 79; /* the request count depends on timing: the last one releases the rest */
	struct sluice_producer_options o = {.max_records_per_request = 10, .linger_ms = 10000};
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p), 0);
	send_n(p, 0, 80);
	assert_int_equal(sluice_producer_flush(p, 5000), 0);
	assert_all_once(80, 0);
	sluice_producer_destroy(p);
}

static void whole_request_retried(void **state)
{
	(void)state;
	srv.mode = MODE_THROTTLE_FIRST;
	srv.throttle_left = 2;
	struct sluice_producer_options o = {.max_records_per_request = 50, .retry_backoff_ms = 5};
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p), 0);
	send_n(p, 0, 200);
	assert_int_equal(sluice_producer_flush(p, 5000), 0);
	assert_all_once(200, 0);
	struct sluice_producer_stats st;
	sluice_producer_stats(p, &st);
	assert_true(st.retries >= 2);
	sluice_producer_destroy(p);
}

static void failed_records_retried_alone(void **state)
{
	(void)state;
	srv.mode = MODE_PARTIAL;
	struct sluice_producer_options o = {.retry_backoff_ms = 5};
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p), 0);
	send_n(p, 0, 1000);
	assert_int_equal(sluice_producer_flush(p, 5000), 0);
	assert_all_once(1000, 0);
	for (unsigned i = 0; i < 1000; i++)
		assert_int_equal(atomic_load(&srv.appearances[i]), (i & 1) ? 2 : 1);
	sluice_producer_destroy(p);
}

static void non_retryable_reported(void **state)
{
	(void)state;
	srv.mode = MODE_NONRETRY;
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), NULL, &p), 0);
	send_n(p, 0, 300);
	assert_int_equal(sluice_producer_flush(p, 5000), 0);
	for (unsigned i = 0; i < 300; i++) {
		assert_int_equal(atomic_load(&cb_calls[i]), 1);
		assert_int_equal(atomic_load(&cb_status[i]),
				 i % 3 == 0 ? SLUICE_ERR_INVALID_ARGUMENT : 0);
		assert_int_equal(atomic_load(&srv.appearances[i]), 1);
	}
	struct sluice_producer_stats st;
	sluice_producer_stats(p, &st);
	assert_true(st.records_failed == 100 && st.records_acked == 200);
	sluice_producer_destroy(p);
}

static void retries_exhausted(void **state)
{
	(void)state;
	srv.mode = MODE_ALWAYS_THROTTLE;
	struct sluice_producer_options o = {.retries = 2, .retry_backoff_ms = 5};
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p), 0);
	send_n(p, 0, 10);
	assert_int_equal(sluice_producer_flush(p, 5000), 0);
	assert_all_once(10, SLUICE_ERR_THROTTLED);
	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(atomic_load(&srv.appearances[i]), 3);
	sluice_producer_destroy(p);
}

static void flush_waits_and_times_out(void **state)
{
	(void)state;
	srv.mode = MODE_DELAY;
	srv.delay_ms = 300;
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), NULL, &p), 0);
	send_n(p, 0, 10);
	int64_t t0 = sl_mono_ms();
	assert_int_equal(sluice_producer_flush(p, 50), SLUICE_ERR_TIMEOUT);
	assert_int_equal(atomic_load(&cb_calls[0]), 0);
	assert_int_equal(sluice_producer_flush(p, -1), 0);
	assert_true(sl_mono_ms() - t0 >= 250);
	assert_all_once(10, 0);
	sluice_producer_destroy(p);
}

static void disconnect_retried_on_new_connection(void **state)
{
	(void)state;
	srv.mode = MODE_DROP_FIRST;
	struct sluice_producer_options o = {.retry_backoff_ms = 5};
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p), 0);
	send_n(p, 0, 100);
	assert_int_equal(sluice_producer_flush(p, 5000), 0);
	assert_all_once(100, 0);
	assert_int_equal(fake_server_connections(fs), 2);
	sluice_producer_destroy(p);
}

static void buffer_full_throttles_nonblocking(void **state)
{
	(void)state;
	srv.mode = MODE_DELAY;
	srv.delay_ms = 200;
	struct sluice_producer_options o = {
	    .buffer_bytes_max = 1000, .nonblocking = true, .linger_ms = -1};
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p), 0);
	char data[100];
	unsigned sent = 0;
	int r = 0;
	while (sent < 100) {
		memset(data, ' ', sizeof(data)); /* "<n>   ...": the fake reads the number */
		char num[16];
		int nl = snprintf(num, sizeof(num), "%u", sent);
		memcpy(data, num, (size_t)nl);
		r = sluice_producer_send(p, "orders", "k", 1, data, sizeof(data), on_done,
					 (void *)(uintptr_t)sent);
		if (r < 0)
			break;
		sent++;
	}
	assert_int_equal(r, SLUICE_ERR_THROTTLED);
	assert_true(sent >= 5 && sent <= 10); /* 107 encoded bytes each */
	sluice_producer_destroy(p);
	for (unsigned i = 0; i < sent; i++)
		assert_int_equal(atomic_load(&cb_calls[i]), 1);
}

static void send_validates(void **state)
{
	(void)state;
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), NULL, &p), 0);
	assert_int_equal(sluice_producer_send(p, "orders", "", 0, "x", 1, on_done, NULL),
			 SLUICE_ERR_INVALID_KEY);
	assert_int_equal(sluice_producer_send(p, "no way", "k", 1, "x", 1, on_done, NULL),
			 SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sluice_producer_flush(p, 1000), 0);
	assert_int_equal(atomic_load(&cb_calls[0]), 0);
	sluice_producer_destroy(p);
	struct sluice_producer_options bad = {.max_records_per_request = 20000};
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &bad, &p),
			 SLUICE_ERR_INVALID_ARGUMENT);
}

static void inflight_one_keeps_order_through_retries(void **state)
{
	(void)state;
	srv.mode = MODE_THROTTLE_FIRST;
	srv.throttle_left = 3;
	struct sluice_producer_options o = {
	    .max_inflight_requests = 1, .max_records_per_request = 10, .retry_backoff_ms = 5};
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p), 0);
	send_n(p, 0, 500);
	assert_int_equal(sluice_producer_flush(p, 5000), 0);
	assert_all_once(500, 0);
	assert_int_equal(atomic_load(&srv.nstored), 500);
	for (unsigned i = 0; i < 500; i++)
		assert_int_equal(srv.stored[i], i);
	sluice_producer_destroy(p);
}

static void several_streams_and_connections(void **state)
{
	(void)state;
	struct sluice_producer_options o = {.connections = 3, .max_records_per_request = 100};
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p), 0);
	for (unsigned i = 0; i < 3000; i++) {
		char data[16], stream[16];
		int dl = snprintf(data, sizeof(data), "%u", i);
		snprintf(stream, sizeof(stream), "s%u", i % 5);
		assert_int_equal(sluice_producer_send(p, stream, "k", 1, data, (size_t)dl, on_done,
						      (void *)(uintptr_t)i),
				 0);
	}
	assert_int_equal(sluice_producer_flush(p, 5000), 0);
	assert_all_once(3000, 0);
	assert_int_equal(fake_server_connections(fs), 3);
	sluice_producer_destroy(p);
}

static void server_down_fails_after_retries(void **state)
{
	(void)state;
	struct sluice_producer_options o = {.retries = 2, .retry_backoff_ms = 10};
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p), 0);
	fake_server_stop(fs);
	send_n(p, 0, 20);
	int64_t t0 = sl_mono_ms();
	assert_int_equal(sluice_producer_flush(p, 10000), 0);
	assert_true(sl_mono_ms() - t0 < 5000);
	for (unsigned i = 0; i < 20; i++) {
		assert_int_equal(atomic_load(&cb_calls[i]), 1);
		assert_true(atomic_load(&cb_status[i]) < 0);
	}
	sluice_producer_destroy(p);
	fs = fake_server_start(handler, NULL); /* for teardown */
}

/* Nothing in flight: a record goes out at once, whatever the linger. */
static void idle_pipeline_sends_at_once(void **state)
{
	(void)state;
	struct sluice_producer_options o = {.linger_ms = 60000};
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p), 0);
	for (unsigned i = 0; i < 3; i++) {
		send_n(p, i, 1);
		int64_t t0 = sl_mono_ms();
		while (atomic_load(&cb_calls[i]) == 0 && sl_mono_ms() - t0 < 5000)
			usleep(200);
		assert_int_equal(atomic_load(&cb_calls[i]), 1);
		assert_int_equal(atomic_load(&cb_status[i]), 0);
	}
	struct sluice_producer_stats st;
	sluice_producer_stats(p, &st);
	assert_int_equal(st.requests_sent, 3);
	sluice_producer_destroy(p);
}

/* Requests in flight: the open batch lingers (linger_us wins over linger_ms). */
static void lingers_while_in_flight(void **state)
{
	(void)state;
	srv.mode = MODE_DELAY;
	srv.delay_ms = 400;
	struct sluice_producer_options o = {.linger_ms = 1, .linger_us = 2000000};
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p), 0);
	int64_t t0 = send_first_and_wait_sent(p); /* answered after 400 ms */
	struct sluice_producer_stats st;
	send_n(p, 1, 5); /* one request in flight: these wait (2 s linger, not 1 ms) */
	usleep(150 * 1000);
	sluice_producer_stats(p, &st);
	if (atomic_load(&cb_calls[0]) == 0) /* the first answer has not come: still lingering */
		assert_int_equal(st.requests_sent, 1);
	/* The first answer leaves the pipeline idle: the lingering batch goes without waiting 2 s.
	 */
	assert_int_equal(sluice_producer_flush(p, 5000), 0);
	assert_true(sl_mono_ms() - t0 < 1900);
	assert_all_once(6, 0);
	sluice_producer_stats(p, &st);
	assert_int_equal(st.requests_sent, 2);
	sluice_producer_destroy(p);
}

/*
 * No linger: records queued while every request slot is taken coalesce into one request rather
 * than one request each.
 */
static void no_linger_coalesces_behind_full_window(void **state)
{
	(void)state;
	srv.mode = MODE_DELAY;
	srv.delay_ms = 100;
	struct sluice_producer_options o = {.linger_us = -1, .max_inflight_requests = 2};
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p), 0);
	send_n(p, 0, 1000);
	assert_int_equal(sluice_producer_flush(p, 10000), 0);
	assert_all_once(1000, 0);
	struct sluice_producer_stats st;
	sluice_producer_stats(p, &st);
	/* 1000 records at 500 a request need 2; the first few go out alone while slots are free. */
	assert_true(st.requests_sent >= 2 && st.requests_sent <= 12);
	sluice_producer_destroy(p);
}

/*
 * A short linger, records arriving slower than it but faster than the answers: they wait in the
 * open batch while the one request slot is taken, instead of going out (or queueing) one by one.
 */
static void linger_coalesces_behind_full_window(void **state)
{
	(void)state;
	srv.mode = MODE_DELAY;
	srv.delay_ms = 100;
	struct sluice_producer_options o = {.linger_us = 200, .max_inflight_requests = 1};
	struct sluice_producer *p;
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p), 0);
	for (unsigned i = 0; i < 200; i++) {
		send_n(p, i, 1);
		usleep(1000);
	}
	assert_int_equal(sluice_producer_flush(p, 10000), 0);
	assert_all_once(200, 0);
	struct sluice_producer_stats st;
	sluice_producer_stats(p, &st);
	/* ~200+ ms of sends / 100 ms per answer: a handful of requests, not 200. */
	assert_true(st.requests_sent >= 2 && st.requests_sent <= 10);
	sluice_producer_destroy(p);
}

/*
 * Records that open a batch while every slot is taken do not wake the I/O thread (nothing it
 * could do); the answer that frees the slot must still send them, with no flush to help, with
 * and without a linger.
 */
static void batch_behind_full_window_goes_with_the_answer(void **state)
{
	(void)state;
	srv.mode = MODE_DELAY;
	srv.delay_ms = 200;
	int64_t lingers[] = {-1, 1000};
	for (unsigned k = 0; k < 2; k++) {
		for (unsigned i = 0; i < 6; i++)
			atomic_store(&cb_calls[i], 0);
		struct sluice_producer_options o = {.linger_us = lingers[k],
						    .max_inflight_requests = 1};
		struct sluice_producer *p;
		assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p), 0);
		int64_t t0 = send_first_and_wait_sent(p);
		send_n(p, 1, 5); /* the one slot is taken */
		while (atomic_load(&cb_calls[5]) == 0 && sl_mono_ms() - t0 < 3000)
			usleep(1000);
		for (unsigned i = 0; i < 6; i++)
			assert_int_equal(atomic_load(&cb_calls[i]), 1);
		struct sluice_producer_stats st;
		sluice_producer_stats(p, &st);
		assert_int_equal(st.requests_sent, 2);
		sluice_producer_destroy(p);
	}
}

static void linger_bounds_checked(void **state)
{
	(void)state;
	struct sluice_producer *p = NULL;
	struct sluice_producer_options o = {.linger_us = 86400ll * 1000000 + 1};
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p),
			 SLUICE_ERR_INVALID_ARGUMENT);
	o = (struct sluice_producer_options){.linger_ms = 86400 * 1000 + 1};
	assert_int_equal(sluice_producer_create(fake_server_addr(fs), &o, &p),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_null(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(batching_and_exactly_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(answers_out_of_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(whole_request_retried, setup, teardown),
	    cmocka_unit_test_setup_teardown(failed_records_retried_alone, setup, teardown),
	    cmocka_unit_test_setup_teardown(non_retryable_reported, setup, teardown),
	    cmocka_unit_test_setup_teardown(retries_exhausted, setup, teardown),
	    cmocka_unit_test_setup_teardown(flush_waits_and_times_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(disconnect_retried_on_new_connection, setup, teardown),
	    cmocka_unit_test_setup_teardown(buffer_full_throttles_nonblocking, setup, teardown),
	    cmocka_unit_test_setup_teardown(send_validates, setup, teardown),
	    cmocka_unit_test_setup_teardown(inflight_one_keeps_order_through_retries, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(several_streams_and_connections, setup, teardown),
	    cmocka_unit_test_setup_teardown(server_down_fails_after_retries, setup, teardown),
	    cmocka_unit_test_setup_teardown(idle_pipeline_sends_at_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(lingers_while_in_flight, setup, teardown),
	    cmocka_unit_test_setup_teardown(no_linger_coalesces_behind_full_window, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(linger_coalesces_behind_full_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(batch_behind_full_window_goes_with_the_answer, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(linger_bounds_checked, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
