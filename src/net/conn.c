#include "net/conn.h"

#include "common/logging.h"

#include <sluice/errors.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* First receive buffer: large enough for a typical batch of small records in one recv. */
#define RBUF_INITIAL_BYTES (256u << 10)
/* Above this, an idle receive buffer is shrunk back so that one big frame does not pin memory. */
#define RBUF_KEEP_BYTES (1u << 20)
/*
 * A frame larger than this is received up to its last byte and no further, so that it ends its
 * receive buffer and a handler can take that buffer (sl_conn_take_frame) without copying the
 * start of the next frame; smaller frames are received many at a time.
 */
#define RBUF_EXACT_FRAME_BYTES RBUF_INITIAL_BYTES

static atomic_uint live_conns;
/* Every live connection, for sl_conn_free_all (create and free are rare: a mutex is enough). */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sl_conn *live_head;

struct sl_conn {
	struct sl_loop *loop;
	int fd;
	const struct sl_conn_handler *handler;
	struct sl_conn_limits limits;
	void *userdata;

	struct sl_buf rbuf;
	struct sl_buf spare;	 /* a taken buffer given back (sl_conn_recycle), for reuse */
	size_t frame_rest_bytes; /* of a large partial frame at the start of rbuf: bytes missing */
	size_t frame_end;	 /* during on_frame: offset in rbuf just past the frame */
	bool frame_taken;	 /* during on_frame: the handler took rbuf */
	struct sl_op recv_op;
	bool recv_armed;

	struct sl_buf out;     /* responses queued */
	struct sl_buf sending; /* bytes in flight on the socket */
	size_t sending_off;
	struct sl_op send_op;
	bool send_armed;

	struct sl_op close_op;
	uint64_t inflight_bytes;
	unsigned refs;
	bool closed;	  /* socket shut; no more reads */
	atomic_bool gone; /* closed, for other threads (sl_conn_gone) */
	bool close_after_flush;
	bool fd_closed;
	bool shut_down;
	bool dispatching;
	struct sl_conn *live_prev, *live_next;
};

static void live_link(struct sl_conn *c)
{
	pthread_mutex_lock(&live_mu);
	c->live_prev = NULL;
	c->live_next = live_head;
	if (live_head)
		live_head->live_prev = c;
	live_head = c;
	pthread_mutex_unlock(&live_mu);
}

static void live_unlink(struct sl_conn *c)
{
	pthread_mutex_lock(&live_mu);
	if (c->live_prev)
		c->live_prev->live_next = c->live_next;
	else
		live_head = c->live_next;
	if (c->live_next)
		c->live_next->live_prev = c->live_prev;
	pthread_mutex_unlock(&live_mu);
}

static void conn_free(struct sl_conn *c)
{
	sl_buf_finish(&c->rbuf);
	sl_buf_finish(&c->spare);
	sl_buf_finish(&c->out);
	sl_buf_finish(&c->sending);
	if (c->handler->on_free)
		c->handler->on_free(c->userdata);
	atomic_fetch_sub_explicit(&live_conns, 1, memory_order_relaxed);
	free(c);
}

unsigned sl_conn_count(void)
{
	return atomic_load_explicit(&live_conns, memory_order_relaxed);
}

void *sl_conn_userdata(const struct sl_conn *c)
{
	return c->userdata;
}

struct sl_loop *sl_conn_loop(const struct sl_conn *c)
{
	return c->loop;
}

bool sl_conn_is_closed(const struct sl_conn *c)
{
	return c->closed;
}

bool sl_conn_gone(const struct sl_conn *c)
{
	return atomic_load_explicit(&c->gone, memory_order_acquire);
}

struct sl_buf *sl_conn_out(struct sl_conn *c)
{
	return &c->out;
}

static void maybe_free(struct sl_conn *c)
{
	if (c->refs || c->recv_armed || c->send_armed || !c->fd_closed)
		return;
	live_unlink(c);
	conn_free(c);
}

void sl_conn_free_all(void)
{
	pthread_mutex_lock(&live_mu);
	struct sl_conn *c = live_head;
	live_head = NULL;
	pthread_mutex_unlock(&live_mu);
	while (c) {
		struct sl_conn *next = c->live_next;
		if (c->fd >= 0) /* else the ring's close was submitted, or the fd is closed */
			close(c->fd);
		conn_free(c);
		c = next;
	}
}

static void close_done(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct sl_conn *c = (struct sl_conn *)((char *)op - offsetof(struct sl_conn, close_op));
	c->fd_closed = true;
	maybe_free(c);
}

static void mark_closed(struct sl_conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	atomic_store_explicit(&c->gone, true, memory_order_release);
	if (c->handler->on_close)
		c->handler->on_close(c);
}

static void shut(struct sl_conn *c)
{
	mark_closed(c);
	/* shutdown() wakes a pending recv with 0; close waits until no op uses the fd. */
	if (!c->shut_down && c->fd >= 0) {
		shutdown(c->fd, SHUT_RDWR);
		c->shut_down = true;
	}
}

static void try_close_fd(struct sl_conn *c)
{
	if (!c->closed || c->fd_closed || c->recv_armed || c->send_armed || c->fd < 0)
		return;
	struct io_uring_sqe *sqe = sl_loop_sqe(c->loop, &c->close_op);
	io_uring_prep_close(sqe, c->fd);
	c->fd = -1;
}

static void arm_recv(struct sl_conn *c);
static void arm_send(struct sl_conn *c);

static bool over_limit(const struct sl_conn *c)
{
	return c->inflight_bytes + c->out.len + (c->sending.len - c->sending_off) >
	       c->limits.inflight_bytes_max;
}

static int process_frames(struct sl_conn *c);
static int reserve_frame(struct sl_conn *c, size_t *off, size_t missing);

static void maybe_resume(struct sl_conn *c)
{
	/* Not while frames are being dispatched: the receive buffer is still being consumed. */
	if (c->closed || c->recv_armed || c->dispatching || over_limit(c))
		return;
	if (c->rbuf.len) {
		/* Frames left in rbuf when dispatch paused over the limit go first. The caller
		 * holds no ref for us: take one, and let it run try_close_fd/maybe_free after. */
		c->refs++;
		c->dispatching = true;
		int r = process_frames(c);
		c->dispatching = false;
		c->refs--;
		if (r < 0) {
			sl_conn_close(c, true);
			return;
		}
		if (c->closed || over_limit(c))
			return;
	}
	arm_recv(c);
}

/*
 * Parse and dispatch the complete frames in rbuf, stopping while the connection is over its
 * in-flight limit (one recv may carry thousands of small pipelined requests; each may commit
 * megabytes, e.g. a READ); maybe_resume continues. Returns <0 when the conn must close.
 */
static int process_frames(struct sl_conn *c)
{
	size_t off = 0;
	int r = 0;
	c->frame_rest_bytes = 0;
	while (!c->closed && !over_limit(c)) {
		struct sl_frame_header h;
		r = sl_proto_parse_header(c->rbuf.data + off, c->rbuf.len - off, &h);
		if (r == -EAGAIN) {
			r = 0;
			break;
		}
		if (r < 0)
			break;
		size_t frame_bytes = 4 + (size_t)h.length;
		if (frame_bytes > c->limits.frame_bytes_max) {
			r = SLUICE_ERR_PROTOCOL;
			break;
		}
		if (c->rbuf.len - off < frame_bytes) {
			/* Incomplete: make room for the whole frame. */
			size_t missing = frame_bytes - (c->rbuf.len - off);
			r = reserve_frame(c, &off, missing);
			if (r == 0 && frame_bytes > RBUF_EXACT_FRAME_BYTES)
				c->frame_rest_bytes = missing;
			break;
		}
		c->frame_end = off + frame_bytes;
		r = c->handler->on_frame(c, &h, c->rbuf.data + off + SL_FRAME_HEADER_BYTES,
					 frame_bytes - SL_FRAME_HEADER_BYTES);
		if (c->frame_taken) /* rbuf is a new buffer that starts with the next frame */
			off = 0;
		else
			off += frame_bytes;
		c->frame_taken = false;
		c->frame_end = 0;
		if (r < 0)
			break;
	}
	sl_buf_consume(&c->rbuf, off);
	return r;
}

/*
 * Room for the missing bytes of the partial frame at *off. A spare buffer big enough for the
 * whole frame replaces a smaller rbuf (the partial frame moves over to its start: *off becomes
 * 0), so that consecutive large frames land in memory that is mapped already.
 */
static int reserve_frame(struct sl_conn *c, size_t *off, size_t missing)
{
	size_t have = c->rbuf.len - *off;
	if (c->rbuf.cap - c->rbuf.len < missing && c->spare.cap >= have + missing) {
		memcpy(c->spare.data, c->rbuf.data + *off, have);
		c->spare.len = have;
		sl_buf_finish(&c->rbuf);
		c->rbuf = c->spare;
		sl_buf_init(&c->spare);
		*off = 0;
		return 0;
	}
	return sl_buf_reserve(&c->rbuf, missing) < 0 ? -ENOMEM : 0;
}

int sl_conn_take_frame(struct sl_conn *c, struct sl_buf *ret)
{
	if (!c->dispatching || c->frame_end == 0 || c->frame_taken)
		return -EINVAL;
	size_t after = c->rbuf.len - c->frame_end;
	struct sl_buf next;
	sl_buf_init(&next);
	if (sl_buf_reserve(&next, after > RBUF_INITIAL_BYTES ? after : RBUF_INITIAL_BYTES) < 0)
		return -ENOMEM;
	if (after)
		memcpy(next.data, c->rbuf.data + c->frame_end, after);
	next.len = after;
	*ret = c->rbuf;
	ret->len = c->frame_end;
	c->rbuf = next;
	c->frame_taken = true;
	return 0;
}

void sl_conn_recycle(struct sl_conn *c, struct sl_buf *b)
{
	if (!c->closed && c->spare.cap < b->cap) {
		sl_buf_finish(&c->spare);
		c->spare = *b;
		c->spare.len = 0;
	} else {
		sl_buf_finish(b);
	}
	sl_buf_init(b);
}

static void recv_done(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct sl_conn *c = (struct sl_conn *)((char *)op - offsetof(struct sl_conn, recv_op));
	c->recv_armed = false;
	if (res <= 0 || c->closed) {
		if (res < 0 && res != -ECONNRESET && res != -ECANCELED)
			SL_DEBUG("connection recv error: %s", strerror(-res));
		shut(c);
		try_close_fd(c);
		maybe_free(c);
		return;
	}
	c->rbuf.len += (size_t)res;
	c->refs++; /* handlers may flush and close */
	c->dispatching = true;
	int r = process_frames(c);
	c->dispatching = false;
	if (r < 0) {
		SL_DEBUG("closing connection: %s",
			 r == SLUICE_ERR_PROTOCOL ? "bad frame" : "error");
		sl_conn_close(c, true);
	} else {
		if (c->rbuf.len == 0 && c->rbuf.cap > RBUF_KEEP_BYTES) {
			sl_buf_finish(&c->rbuf);
			sl_buf_reserve(&c->rbuf, RBUF_INITIAL_BYTES);
		}
		if (c->rbuf.len == 0 && c->inflight_bytes == 0)
			sl_buf_finish(&c->spare); /* no large frame in sight */
		maybe_resume(c);
	}
	c->refs--;
	try_close_fd(c);
	maybe_free(c);
}

static void arm_recv(struct sl_conn *c)
{
	if (sl_buf_reserve(&c->rbuf, 4096) < 0) {
		shut(c);
		return;
	}
	size_t room = c->rbuf.cap - c->rbuf.len;
	if (c->frame_rest_bytes && c->frame_rest_bytes < room)
		room = c->frame_rest_bytes; /* stop at the end of a large frame */
	struct io_uring_sqe *sqe = sl_loop_sqe(c->loop, &c->recv_op);
	io_uring_prep_recv(sqe, c->fd, c->rbuf.data + c->rbuf.len, room, 0);
	c->recv_armed = true;
}

static void send_done(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct sl_conn *c = (struct sl_conn *)((char *)op - offsetof(struct sl_conn, send_op));
	c->send_armed = false;
	if (res < 0) {
		shut(c);
		try_close_fd(c);
		maybe_free(c);
		return;
	}
	c->sending_off += (size_t)res;
	if (c->sending_off >= c->sending.len) {
		sl_buf_reset(&c->sending);
		c->sending_off = 0;
	}
	arm_send(c);
	if (!c->send_armed && c->close_after_flush)
		shut(c);
	maybe_resume(c);
	try_close_fd(c);
	maybe_free(c);
}

static void arm_send(struct sl_conn *c)
{
	if (c->send_armed || c->fd_closed || c->fd < 0)
		return;
	if (c->sending.len == 0) {
		if (c->out.len == 0)
			return;
		struct sl_buf t = c->sending;
		c->sending = c->out;
		c->out = t;
		c->sending_off = 0;
	}
	if (c->closed && !c->close_after_flush)
		return;
	struct io_uring_sqe *sqe = sl_loop_sqe(c->loop, &c->send_op);
	io_uring_prep_send(sqe, c->fd, c->sending.data + c->sending_off,
			   c->sending.len - c->sending_off, MSG_NOSIGNAL);
	c->send_armed = true;
}

int sl_conn_queue(struct sl_conn *c, struct sl_buf *b)
{
	if (c->out.len == 0) {
		struct sl_buf t = c->out;
		c->out = *b;
		*b = t;
		return 0;
	}
	int r = sl_buf_put(&c->out, b->data, b->len);
	sl_buf_reset(b);
	return r;
}

void sl_conn_flush(struct sl_conn *c)
{
	if (c->closed && !c->close_after_flush) {
		sl_buf_reset(&c->out);
		return;
	}
	arm_send(c);
}

void sl_conn_hold(struct sl_conn *c, uint64_t inflight_bytes)
{
	c->refs++;
	c->inflight_bytes += inflight_bytes;
}

void sl_conn_release(struct sl_conn *c, uint64_t inflight_bytes)
{
	c->refs--;
	c->inflight_bytes -= inflight_bytes;
	maybe_resume(c);
	try_close_fd(c);
	maybe_free(c);
}

void sl_conn_close(struct sl_conn *c, bool flush_first)
{
	if (flush_first && !c->closed) {
		c->close_after_flush = true;
		mark_closed(c); /* no more reads */
		arm_send(c);
		if (c->send_armed)
			return; /* send_done shuts the socket once the output is gone */
	}
	shut(c);
	try_close_fd(c);
}

int sl_conn_create(struct sl_loop *loop, int fd, const struct sl_conn_handler *handler,
		   const struct sl_conn_limits *limits, void *userdata, struct sl_conn **ret)
{
	struct sl_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = loop;
	c->fd = fd;
	c->handler = handler;
	c->limits = *limits;
	c->userdata = userdata;
	c->recv_op.complete = recv_done;
	c->send_op.complete = send_done;
	c->close_op.complete = close_done;
	sl_buf_init(&c->rbuf);
	sl_buf_init(&c->out);
	sl_buf_init(&c->sending);
	if (sl_buf_reserve(&c->rbuf, RBUF_INITIAL_BYTES) < 0) {
		free(c);
		return -ENOMEM;
	}
	atomic_fetch_add_explicit(&live_conns, 1, memory_order_relaxed);
	live_link(c);
	arm_recv(c);
	*ret = c;
	return 0;
}
