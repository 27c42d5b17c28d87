/*
 * The socket layer of libsluice and the synchronous call cycle of struct sluice_client:
 * resolve + nonblocking connect with a deadline, whole-buffer sends and whole-frame receives
 * with poll(), one request in flight, reconnect on the next call after a failure.
 */
#include "client/client_internal.h"

#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* "host:port" with at most this many bytes of host: DNS names are at most 253. */
#define HOST_LEN_MAX 255

int64_t sl_client_deadline_ms(int timeout_ms)
{
	if (timeout_ms < 0)
		return INT64_MAX;
	return sl_mono_ms() + timeout_ms;
}

static int poll_timeout(int64_t deadline_ms)
{
	if (deadline_ms == INT64_MAX)
		return -1;
	int64_t left = deadline_ms - sl_mono_ms();
	if (left <= 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Wait for events on fd until the deadline: 0, SLUICE_ERR_TIMEOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = events};
		int t = poll_timeout(deadline_ms);
		int n = poll(&pfd, 1, t);
		if (n > 0)
			return 0;
		if (n == 0)
			return SLUICE_ERR_TIMEOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int sl_client_errno_code(int err)
{
	switch (err) {
	case EPIPE:
	case ECONNRESET:
	case ECONNABORTED:
	case ENOTCONN:
		return SLUICE_ERR_DISCONNECTED;
	case ETIMEDOUT:
		return SLUICE_ERR_TIMEOUT;
	default:
		return -err;
	}
}

static int split_host_port(const char *host_port, char *host, char *port)
{
	const char *colon = strrchr(host_port, ':');
	if (!colon || colon[1] == '\0' || strlen(colon + 1) > 5)
		return -EINVAL;
	const char *h = host_port;
	size_t hlen = (size_t)(colon - host_port);
	if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen > HOST_LEN_MAX)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	strcpy(port, colon + 1);
	for (const char *q = port; *q; q++)
		if (*q < '0' || *q > '9')
			return -EINVAL;
	return 0;
}

static int connect_one(const struct addrinfo *ai, int64_t deadline_ms, int *ret_fd)
{
	int fd =
	    socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	int one = 1;
	/* Requests are written whole; Nagle would only delay the tail of each. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int r = 0;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			r = -errno;
			goto fail;
		}
		r = wait_fd(fd, POLLOUT, deadline_ms);
		if (r < 0)
			goto fail;
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) {
			r = -errno;
			goto fail;
		}
		if (soerr) {
			r = -soerr;
			goto fail;
		}
	}
	*ret_fd = fd;
	return 0;
fail:
	close(fd);
	return r;
}

int sl_client_dial(const char *host_port, int timeout_ms, int *ret_fd, char *err, size_t err_len)
{
	char host[HOST_LEN_MAX + 1], port[8];
	if (!host_port || split_host_port(host_port, host, port) < 0) {
		snprintf(err, err_len, "bad server address '%s' (want HOST:PORT)",
			 host_port ? host_port : "(null)");
		return -EINVAL;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0) {
		snprintf(err, err_len, "cannot resolve %s: %s", host, gai_strerror(gai));
		return -EHOSTUNREACH;
	}
	int64_t deadline = sl_client_deadline_ms(timeout_ms);
	int r = -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		r = connect_one(ai, deadline, ret_fd);
		if (r == 0 || r == SLUICE_ERR_TIMEOUT)
			break;
	}
	freeaddrinfo(res);
	if (r < 0)
		snprintf(err, err_len, "cannot connect to %s: %s", host_port, sluice_strerror(r));
	return r;
}

int sl_client_send_all(int fd, const void *p, size_t len, int64_t deadline_ms)
{
	const uint8_t *q = p;
	while (len > 0) {
		ssize_t n = send(fd, q, len, MSG_NOSIGNAL);
		if (n > 0) {
			q += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = wait_fd(fd, POLLOUT, deadline_ms);
			if (r < 0)
				return r;
			continue;
		}
		return n < 0 ? sl_client_errno_code(errno) : SLUICE_ERR_DISCONNECTED;
	}
	return 0;
}

/*
 * While most of a big frame is still to come, wake only for a good part of it: SO_RCVLOWAT makes
 * poll() report the socket readable once this much is queued (or the frame's rest, if less),
 * instead of once per arriving segment burst. Bounded: the kernel caps it near half the receive
 * buffer anyway, and a low mark keeps the first bytes of the next chunk flowing.
 */
#define RECV_LOWAT_MIN_BYTES (128u << 10)
#define RECV_LOWAT_MAX_BYTES (256u << 10)

static void set_lowat(int fd, int *cur, int want)
{
	if (*cur == want)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof(want)) == 0)
		*cur = want;
}

int sl_client_recv_frame(int fd, struct sl_buf *in, int64_t deadline_ms,
			 struct sl_frame_header *ret_hdr)
{
	int lowat = 1;
	int r;
	for (;;) {
		struct sl_frame_header hdr;
		r = sl_proto_parse_header(in->data, in->len, &hdr);
		if (r == 0 && in->len >= 4 + (size_t)hdr.length) {
			*ret_hdr = hdr;
			break;
		}
		if (r < 0 && r != -EAGAIN)
			break;
		size_t left = r == 0 ? 4 + (size_t)hdr.length - in->len : 0;
		size_t want = SL_CLIENT_RECV_CHUNK;
		if (left > want)
			want = left;
		r = sl_buf_reserve(in, want);
		if (r < 0)
			break;
		ssize_t n = recv(fd, in->data + in->len, in->cap - in->len, 0);
		if (n > 0) {
			in->len += (size_t)n;
			continue;
		}
		if (n == 0) {
			r = SLUICE_ERR_DISCONNECTED;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			set_lowat(fd, &lowat,
				  left < RECV_LOWAT_MIN_BYTES	? 1
				  : left > RECV_LOWAT_MAX_BYTES ? (int)RECV_LOWAT_MAX_BYTES
								: (int)left);
			r = wait_fd(fd, POLLIN, deadline_ms);
			if (r < 0)
				break;
			continue;
		}
		r = sl_client_errno_code(errno);
		break;
	}
	set_lowat(fd, &lowat, 1);
	return r;
}

int sl_client_auth(int fd, const char *token, int timeout_ms, char *err, size_t err_len)
{
	struct sl_buf out, in;
	sl_buf_init(&out);
	sl_buf_init(&in);
	size_t start;
	const uint32_t id = 1;
	int64_t deadline = sl_client_deadline_ms(timeout_ms);
	int r = sl_proto_encode_request_head(&out, SL_OP_AUTH, id, &start);
	if (r == 0)
		r = sl_proto_put_str16(&out, token, strlen(token));
	if (r < 0)
		goto out;
	sl_proto_finish_frame(&out, start);
	r = sl_client_send_all(fd, out.data, out.len, deadline);
	if (r < 0)
		goto out;
	struct sl_frame_header hdr;
	r = sl_client_recv_frame(fd, &in, deadline, &hdr);
	if (r < 0)
		goto out;
	if (hdr.request_id != id || !(hdr.flags & SL_FRAME_RESPONSE)) {
		r = SLUICE_ERR_PROTOCOL;
		goto out;
	}
	int32_t status;
	struct sl_str msg;
	struct sl_reader rest;
	r = sl_proto_decode_response_status(in.data + SL_FRAME_HEADER_BYTES,
					    4 + hdr.length - SL_FRAME_HEADER_BYTES, &status, &msg,
					    &rest);
	if (r == 0 && status < 0) {
		r = status;
		snprintf(err, err_len, "auth: %.*s", (int)msg.len, msg.p);
	}
out:
	if (r < 0 && err[0] == '\0')
		snprintf(err, err_len, "auth: %s", sluice_strerror(r));
	sl_buf_finish(&out);
	sl_buf_finish(&in);
	return r;
}

/* ---- struct sluice_client ---- */

int sl_client_fail(struct sluice_client *c, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->message, sizeof(c->message), fmt, ap);
	va_end(ap);
	return err;
}

int sl_client_check_name(struct sluice_client *c, const char *name, size_t *ret_len)
{
	size_t len = name ? strlen(name) : 0;
	if (!name || !sl_proto_name_valid((const uint8_t *)name, len))
		return sl_client_fail(c, SLUICE_ERR_INVALID_NAME, "%s",
				      sluice_strerror(SLUICE_ERR_INVALID_NAME));
	*ret_len = len;
	return 0;
}

static void drop_connection(struct sluice_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	sl_buf_reset(&c->in);
	c->in_consumed = 0;
	c->pending_id = 0;
}

static int reconnect(struct sluice_client *c)
{
	drop_connection(c);
	c->message[0] = '\0';
	int fd;
	int r = sl_client_dial(c->host_port, c->timeout_ms, &fd, c->message, sizeof(c->message));
	if (r < 0)
		return r;
	if (c->auth_token) {
		r = sl_client_auth(fd, c->auth_token, c->timeout_ms, c->message,
				   sizeof(c->message));
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	c->fd = fd;
	c->fresh = true;
	return 0;
}

int sluice_client_connect(const char *host_port, const struct sluice_client_options *opts,
			  struct sluice_client **ret)
{
	struct sluice_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	sl_buf_init(&c->out);
	sl_buf_init(&c->in);
	c->timeout_ms = SL_CLIENT_TIMEOUT_MS_DEFAULT;
	if (opts && opts->timeout_ms != 0)
		c->timeout_ms = opts->timeout_ms;
	c->host_port = strdup(host_port ? host_port : SLUICE_DEFAULT_SERVER);
	if (opts && opts->auth_token)
		c->auth_token = strdup(opts->auth_token);
	int r = -ENOMEM;
	if (!c->host_port || (opts && opts->auth_token && !c->auth_token))
		goto fail;
	r = reconnect(c);
	if (r < 0)
		goto fail;
	*ret = c;
	return 0;
fail:
	sluice_client_close(c);
	return r;
}

void sluice_client_close(struct sluice_client *c)
{
	if (!c)
		return;
	drop_connection(c);
	sl_buf_finish(&c->out);
	sl_buf_finish(&c->in);
	free(c->host_port);
	free(c->auth_token);
	free(c);
}

const char *sluice_client_last_error_message(const struct sluice_client *c)
{
	return c ? c->message : "";
}

static void drain_pending(struct sluice_client *c);

int sl_client_begin(struct sluice_client *c, uint8_t opcode, size_t *ret_frame_start)
{
	c->message[0] = '\0';
	/* The previous answer is no longer borrowed by anyone: drop it. */
	if (c->in_consumed) {
		sl_buf_consume(&c->in, c->in_consumed);
		c->in_consumed = 0;
	}
	c->fresh = false;
	drain_pending(c);
	if (c->fd < 0) {
		int r = reconnect(c);
		if (r < 0)
			return r;
	}
	sl_buf_reset(&c->out);
	c->next_request_id++;
	if (c->next_request_id == 0) /* 0 is never used: it is easier to spot in a dump */
		c->next_request_id = 1;
	return sl_proto_encode_request_head(&c->out, opcode, c->next_request_id, ret_frame_start);
}

/* Receive the answer to request_id, which must be the next frame. */
static int recv_answer(struct sluice_client *c, uint32_t request_id, uint8_t opcode,
		       int64_t deadline, struct sl_frame_header *ret_hdr)
{
	struct sl_frame_header hdr;
	int r = sl_client_recv_frame(c->fd, &c->in, deadline, &hdr);
	if (r < 0)
		return r;
	if (!(hdr.flags & SL_FRAME_RESPONSE) || hdr.request_id != request_id ||
	    hdr.opcode != opcode || hdr.length < SL_FRAME_HEADER_BYTES - 4 + 4)
		return SLUICE_ERR_PROTOCOL;
	*ret_hdr = hdr;
	return 0;
}

/* One attempt: send c->out and wait for the matching answer. */
static int exchange(struct sluice_client *c, uint32_t request_id, uint8_t opcode,
		    struct sl_frame_header *ret_hdr)
{
	int64_t deadline = sl_client_deadline_ms(c->timeout_ms);
	/* A READ that may wait on the server gets that long on top of the timeout. */
	if (deadline != INT64_MAX)
		deadline += c->call_wait_ms;
	int r = sl_client_send_all(c->fd, c->out.data, c->out.len, deadline);
	if (r < 0)
		return r;
	return recv_answer(c, request_id, opcode, deadline, ret_hdr);
}

/*
 * A request sent ahead (sl_client_send_ahead) that nobody collected: its answer is the next
 * frame; receive and drop it so that the connection is in step again.
 */
static void drain_pending(struct sluice_client *c)
{
	uint32_t id = c->pending_id;
	c->pending_id = 0;
	if (!id || c->fd < 0)
		return;
	struct sl_frame_header hdr;
	int r = recv_answer(c, id, c->pending_opcode, sl_client_deadline_ms(c->timeout_ms), &hdr);
	if (r < 0)
		drop_connection(c);
	else
		sl_buf_consume(&c->in, 4 + (size_t)hdr.length);
}

/* The status and body of the answer at the start of c->in (frame of 4 + hdr->length bytes). */
static int take_answer(struct sluice_client *c, const struct sl_frame_header *hdr,
		       struct sl_reader *ret_rest)
{
	size_t frame_len = 4 + (size_t)hdr->length;
	c->in_consumed = frame_len;
	int32_t status;
	struct sl_str msg;
	int r = sl_proto_decode_response_status(c->in.data + SL_FRAME_HEADER_BYTES,
						frame_len - SL_FRAME_HEADER_BYTES, &status, &msg,
						ret_rest);
	if (r < 0) {
		drop_connection(c);
		return sl_client_fail(c, r, "malformed answer from the server");
	}
	if (status < 0) {
		if (msg.len > 0)
			return sl_client_fail(c, status, "%.*s", (int)msg.len, msg.p);
		return sl_client_fail(c, status, "%s", sluice_strerror(status));
	}
	return 0;
}

int sl_client_send_ahead(struct sluice_client *c, size_t frame_start, uint32_t *ret_id)
{
	sl_proto_finish_frame(&c->out, frame_start);
	struct sl_frame_header req;
	int r = sl_proto_parse_header(c->out.data + frame_start, c->out.len - frame_start, &req);
	if (r < 0)
		return sl_client_fail(c, r, "request encoding failed");
	if (c->out.len - frame_start > SL_PROTO_FRAME_MAX)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "request of %zu bytes is over the frame limit",
				      c->out.len - frame_start);
	r = sl_client_send_all(c->fd, c->out.data, c->out.len,
			       sl_client_deadline_ms(c->timeout_ms));
	if (r < 0) {
		drop_connection(c);
		return sl_client_fail(c, r, "%s", sluice_strerror(r));
	}
	c->pending_id = req.request_id;
	c->pending_opcode = req.opcode;
	*ret_id = req.request_id;
	return 0;
}

int sl_client_collect(struct sluice_client *c, uint32_t id, struct sl_reader *ret_rest)
{
	c->message[0] = '\0';
	if (c->in_consumed) {
		sl_buf_consume(&c->in, c->in_consumed);
		c->in_consumed = 0;
	}
	if (!id || c->pending_id != id || c->fd < 0)
		return SLUICE_ERR_DISCONNECTED; /* dropped by another call or a reconnect */
	c->pending_id = 0;
	struct sl_frame_header hdr;
	int r = recv_answer(c, id, c->pending_opcode, sl_client_deadline_ms(c->timeout_ms), &hdr);
	if (r < 0) {
		drop_connection(c);
		return sl_client_fail(c, r, "%s", sluice_strerror(r));
	}
	return take_answer(c, &hdr, ret_rest);
}

int sl_client_call(struct sluice_client *c, size_t frame_start, bool idempotent,
		   struct sl_reader *ret_rest)
{
	sl_proto_finish_frame(&c->out, frame_start);
	struct sl_frame_header req;
	int r = sl_proto_parse_header(c->out.data + frame_start, c->out.len - frame_start, &req);
	if (r < 0)
		return sl_client_fail(c, r, "request encoding failed");
	if (c->out.len - frame_start > SL_PROTO_FRAME_MAX)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "request of %zu bytes is over the frame limit",
				      c->out.len - frame_start);
	struct sl_frame_header hdr;
	r = exchange(c, req.request_id, req.opcode, &hdr);
	if (r == SLUICE_ERR_DISCONNECTED && idempotent && !c->fresh) {
		/* An idle connection the server closed: one more try on a new one. */
		r = reconnect(c);
		if (r < 0)
			return r;
		r = exchange(c, req.request_id, req.opcode, &hdr);
	}
	if (r < 0) {
		int err = r;
		drop_connection(c);
		if (c->message[0] == '\0')
			sl_client_fail(c, err, "%s", sluice_strerror(err));
		return err;
	}
	return take_answer(c, &hdr, ret_rest);
}

int sluice_ping(struct sluice_client *c)
{
	size_t start;
	int r = sl_client_begin(c, SL_OP_PING, &start);
	if (r < 0)
		return r;
	struct sl_reader rest;
	return sl_client_call(c, start, true, &rest);
}
