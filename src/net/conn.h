/*
 * struct sl_conn: one client connection on a loop: framed receive, buffered send, and
 * backpressure. The connection stops reading while the bytes it owes (requests not yet
 * answered + responses not yet sent) exceed its in-flight limit, so a client that sends faster
 * than the server can make durable, or never reads its responses, costs bounded memory.
 *
 * Lifetime: the conn is referenced by its own receive and send operations and by every request
 * that has not answered yet (sl_conn_hold/sl_conn_release). It is freed when the socket is
 * closed and the last reference goes; a request that finishes after the close drops its answer.
 */
#ifndef SL_NET_CONN_H
#define SL_NET_CONN_H

#include "common/buf.h"
#include "net/loop.h"
#include "proto/codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_conn;

struct sl_conn_handler {
	/*
	 * One complete frame. body is valid only during the call. Return 0 to go on, or a
	 * negative error to close the connection (only for frames that cannot be trusted).
	 */
	int (*on_frame)(struct sl_conn *c, const struct sl_frame_header *h, const uint8_t *body,
			size_t body_len);
	/* The socket closed (peer, error or sl_conn_close); requests may still hold the conn. */
	void (*on_close)(struct sl_conn *c);
	/* The conn is being freed: release userdata. */
	void (*on_free)(void *userdata);
};

struct sl_conn_limits {
	uint64_t inflight_bytes_max; /* stop reading past this (requests owed + output queued) */
	uint32_t frame_bytes_max;    /* largest frame accepted */
};

int sl_conn_create(struct sl_loop *loop, int fd, const struct sl_conn_handler *handler,
		   const struct sl_conn_limits *limits, void *userdata, struct sl_conn **ret);

void *sl_conn_userdata(const struct sl_conn *c);
struct sl_loop *sl_conn_loop(const struct sl_conn *c);
bool sl_conn_is_closed(const struct sl_conn *c);
/* The same from any thread, while the caller holds a reference (sl_conn_hold). */
bool sl_conn_gone(const struct sl_conn *c);

/* The output buffer: encode a response into it, then call sl_conn_flush(). */
struct sl_buf *sl_conn_out(struct sl_conn *c);
void sl_conn_flush(struct sl_conn *c);

/*
 * Queue all of b as output. When nothing is queued yet, b's buffer itself becomes the output
 * buffer (no copy: a READ answer of megabytes is sent from where it was encoded) and b gets the
 * previous, empty buffer back; otherwise b's bytes are appended. Either way b is left empty (its
 * capacity reusable). Then call sl_conn_flush(). Returns 0 or -ENOMEM (nothing queued).
 */
int sl_conn_queue(struct sl_conn *c, struct sl_buf *b);

/*
 * Only inside on_frame: take ownership of the receive buffer that holds the frame, instead of
 * copying a large body. The body pointer given to on_frame stays valid (same memory) until the
 * caller frees *ret (sl_buf_finish) or hands it back with sl_conn_recycle; the conn goes on with
 * another buffer holding the bytes received after the frame. Returns 0, or -ENOMEM (nothing
 * changed: the body is still only borrowed), or -EINVAL outside on_frame.
 */
int sl_conn_take_frame(struct sl_conn *c, struct sl_buf *ret);
/*
 * Give back a buffer taken with sl_conn_take_frame (on the conn's loop, before the request's
 * sl_conn_release): the conn keeps one as a spare receive buffer for the next large frame, so a
 * stream of large requests reuses memory that is already mapped instead of faulting in fresh
 * pages for every frame. The spare is freed when a receive leaves the conn with nothing in
 * flight and no partial frame (the client went on to small requests), and at close; so an idle
 * conn holds at most one frame's worth until its client sends again or goes. *b is left empty
 * either way.
 */
void sl_conn_recycle(struct sl_conn *c, struct sl_buf *b);

/* References held by requests; the in-flight byte count drives backpressure. */
void sl_conn_hold(struct sl_conn *c, uint64_t inflight_bytes);
void sl_conn_release(struct sl_conn *c, uint64_t inflight_bytes);

/* Close the socket after the queued output is sent (or at once with flush_first false). */
void sl_conn_close(struct sl_conn *c, bool flush_first);

/* Number of live connections on all loops (for --max-connections and /metrics). */
unsigned sl_conn_count(void);

/*
 * Close and free every connection still open (requests in flight are dropped). Only once every
 * loop is stopped and destroyed (no completion can reach a connection any more): at shutdown,
 * a client may keep its connection open, or close it after its loop's last round.
 */
void sl_conn_free_all(void);

#endif
