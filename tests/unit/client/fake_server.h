/*
 * An in-process fake sluiced for the client tests: a thread that accepts connections on
 * 127.0.0.1:0, cuts the byte stream into frames with the real codec and hands each request to a
 * test-provided handler, which appends whatever answer it wants (none, several, out of order,
 * garbage) or asks for the connection to be dropped.
 */
#ifndef SL_TEST_FAKE_SERVER_H
#define SL_TEST_FAKE_SERVER_H

#include "common/buf.h"
#include "proto/codec.h"

#include <stddef.h>
#include <stdint.h>

struct fake_server;

/* Handler verdicts. */
enum {
	FAKE_SEND = 0,	/* write out (possibly empty) */
	FAKE_CLOSE = 1, /* write out, then close the connection */
};

/*
 * Runs on the server thread. h/body/len: one request frame; out: append answers to it.
 * conn_index counts accepted connections from 0.
 */
typedef int (*fake_handler)(void *ctx, unsigned conn_index, const struct sl_frame_header *h,
			    const uint8_t *body, size_t len, struct sl_buf *out);

struct fake_server *fake_server_start(fake_handler fn, void *ctx);
/* "127.0.0.1:PORT" */
const char *fake_server_addr(const struct fake_server *fs);
unsigned fake_server_connections(struct fake_server *fs);
unsigned fake_server_requests(struct fake_server *fs);
void fake_server_stop(struct fake_server *fs);

/* Helpers for handlers. */
void fake_answer_empty(struct sl_buf *out, const struct sl_frame_header *h);
void fake_answer_error(struct sl_buf *out, const struct sl_frame_header *h, int32_t status,
		       const char *message);

#endif
