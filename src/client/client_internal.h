/*
 * libsluice internals shared by the files of src/client/: the socket layer (connection.c) and
 * the synchronous request/response cycle of struct sluice_client.
 */
#ifndef SL_CLIENT_INTERNAL_H
#define SL_CLIENT_INTERNAL_H

#include <sluice/client.h>

#include "common/buf.h"
#include "proto/codec.h"

#include <stdbool.h>
#include <stdint.h>

/* Default wait for a connect or one answer: long enough for a loaded server's fsync. */
#define SL_CLIENT_TIMEOUT_MS_DEFAULT 10000
/* Read at least this much per recv: a READ answer of 10,000 small records fits in a few. */
#define SL_CLIENT_RECV_CHUNK (64u << 10)

/* ---- sockets (connection.c) ---- */

/*
 * Resolve host_port and connect with a deadline (timeout_ms < 0: none). On success *ret_fd is a
 * nonblocking TCP socket with TCP_NODELAY and close-on-exec.
 */
int sl_client_dial(const char *host_port, int timeout_ms, int *ret_fd, char *err, size_t err_len);
/* Absolute monotonic deadline for timeout_ms (INT64_MAX when timeout_ms < 0). */
int64_t sl_client_deadline_ms(int timeout_ms);
/* Write all of p, polling while the socket is full. SLUICE_ERR_DISCONNECTED/_TIMEOUT/-errno. */
int sl_client_send_all(int fd, const void *p, size_t len, int64_t deadline_ms);
/*
 * Receive until in starts with one whole frame; fill *ret_hdr (the frame is 4 + ret_hdr->length
 * bytes at in->data). Bytes after it stay in the buffer. Errors: SLUICE_ERR_DISCONNECTED (EOF or
 * reset), SLUICE_ERR_TIMEOUT, SLUICE_ERR_PROTOCOL / _UNSUPPORTED_VERSION, -errno.
 */
int sl_client_recv_frame(int fd, struct sl_buf *in, int64_t deadline_ms,
			 struct sl_frame_header *ret_hdr);
/* Map errno of a failed send/recv to the client's error code. */
int sl_client_errno_code(int err);
/* Synchronous AUTH on a fresh connection. */
int sl_client_auth(int fd, const char *token, int timeout_ms, char *err, size_t err_len);

/* ---- synchronous client ---- */

struct sluice_client {
	char *host_port;
	char *auth_token;
	int timeout_ms;
	int fd;	    /* -1 while disconnected: the next call reconnects */
	bool fresh; /* connected by the current call (no stale-connection retry) */
	uint32_t next_request_id;
	struct sl_buf out;  /* the request being built */
	struct sl_buf in;   /* received bytes; the answer of the last call stays at the start */
	size_t in_consumed; /* bytes of in that belong to the last answer */
	/* A request sent ahead whose answer is not received yet (0: none); see send_ahead. */
	uint32_t pending_id;
	uint8_t pending_opcode;
	uint32_t call_wait_ms; /* set around a call whose answer may wait on the server (READ) */
	char message[SL_PROTO_MESSAGE_MAX + 64];
};

/* Start a request frame in c->out (reconnecting first if needed). */
int sl_client_begin(struct sluice_client *c, uint8_t opcode, size_t *ret_frame_start);
/*
 * Finish the frame begun by sl_client_begin, send it, wait for its answer. Returns the status
 * (0, or the server's negative status with its message saved), or a local error. On 0, *ret_rest
 * reads the answer's body after the status; it borrows c->in until the next call.
 * idempotent: the request may be re-sent once on a new connection if an idle one was dead.
 */
int sl_client_call(struct sluice_client *c, size_t frame_start, bool idempotent,
		   struct sl_reader *ret_rest);
/*
 * Pipelining one request: finish and send the frame begun by sl_client_begin without waiting
 * (*ret_id identifies it), and collect its answer later with sl_client_collect (same contract as
 * sl_client_call). Any other call on c in between receives and drops that answer first, so
 * sl_client_collect then returns SLUICE_ERR_DISCONNECTED without a message: the caller sends
 * the request again. Only for idempotent requests (READ).
 */
int sl_client_send_ahead(struct sluice_client *c, size_t frame_start, uint32_t *ret_id);
int sl_client_collect(struct sluice_client *c, uint32_t id, struct sl_reader *ret_rest);
/* Record a local error message (printf-style) and return err. */
__attribute__((format(printf, 3, 4))) int sl_client_fail(struct sluice_client *c, int err,
							 const char *fmt, ...);
/* Validate a stream name; SLUICE_ERR_INVALID_NAME with a message when bad. */
int sl_client_check_name(struct sluice_client *c, const char *name, size_t *ret_len);

#endif
