/*
 * A minimal HTTP/2 cleartext (prior knowledge) client for sluice-bench kinesis-api, on
 * libnghttp2: libcurl 7.88 (Debian 12) fails every request that reuses a prior-knowledge
 * connection (curl issue #10634, fixed in 8.0), so it cannot measure HTTP/2 here.
 *
 * One connection, up to `streams` POSTs of the same kind in flight; the caller's callback
 * supplies each body and judges each answer (status and body).
 */
#include "h2_client.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct h2c_stream {
	const char *body;
	size_t len, sent;
	int status;
	char *resp;
	size_t resp_len, resp_cap;
};

struct h2c {
	int fd;
	nghttp2_session *s;
	const struct h2c_config *cfg;
	uint32_t inflight;
	int error;
};

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
			 uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct h2c_stream *st = src->ptr;
	size_t n = st->len - st->sent < length ? st->len - st->sent : length;
	memcpy(buf, st->body + st->sent, n);
	st->sent += n;
	if (st->sent == st->len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct h2c_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (st && namelen == 7 && memcmp(name, ":status", 7) == 0)
		st->status = atoi((const char *)value);
	return 0;
}

static int on_data(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
		   size_t len, void *ud)
{
	struct h2c_stream *st = nghttp2_session_get_stream_user_data(session, id);
	if (!st)
		return 0;
	if (st->resp_len + len + 1 > st->resp_cap) {
		size_t cap = (st->resp_len + len + 1) * 2;
		char *n = realloc(st->resp, cap);
		if (!n)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
		st->resp = n;
		st->resp_cap = cap;
	}
	memcpy(st->resp + st->resp_len, data, len);
	st->resp_len += len;
	st->resp[st->resp_len] = 0;
	return 0;
}

static int submit(struct h2c *c);

static int on_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *ud)
{
	struct h2c *c = ud;
	struct h2c_stream *st = nghttp2_session_get_stream_user_data(session, id);
	if (!st)
		return 0;
	c->inflight--;
	bool ok = error_code == 0 &&
		  c->cfg->done(c->cfg->ctx, st->status, st->resp ? st->resp : "", st->resp_len);
	if (!ok && !c->error)
		c->error = -EPROTO;
	free(st->resp);
	free(st);
	if (!c->error)
		submit(c);
	return 0;
}

/* Start another request if the caller has one. */
static int submit(struct h2c *c)
{
	const char *body;
	size_t len;
	if (!c->cfg->next(c->cfg->ctx, &body, &len))
		return 0;
	struct h2c_stream *st = calloc(1, sizeof(*st));
	if (!st)
		return c->error = -ENOMEM;
	st->body = body;
	st->len = len;
	char clen[24];
	snprintf(clen, sizeof(clen), "%zu", len);
	const struct h2c_header *x = c->cfg->headers;
	nghttp2_nv nva[16];
	size_t n = 0;
#define NV(nm, v)                                                                                  \
	(nghttp2_nv){(uint8_t *)(nm), (uint8_t *)(v), strlen(nm), strlen(v), NGHTTP2_NV_FLAG_NONE}
	nva[n++] = NV(":method", "POST");
	nva[n++] = NV(":scheme", "http");
	nva[n++] = NV(":authority", c->cfg->authority);
	nva[n++] = NV(":path", "/");
	nva[n++] = NV("content-length", clen);
	for (; x && x->name && n < 16; x++)
		nva[n++] = NV(x->name, x->value);
	nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
	int32_t id = nghttp2_submit_request(c->s, NULL, nva, n, &prd, st);
	if (id < 0) {
		free(st);
		return c->error = -EPROTO;
	}
	c->inflight++;
	return 0;
}

static int flush(struct h2c *c)
{
	for (;;) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->s, &data);
		if (n < 0)
			return -EPROTO;
		if (n == 0)
			return 0;
		while (n > 0) {
			ssize_t w = send(c->fd, data, (size_t)n, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			data += w;
			n -= w;
		}
	}
}

int h2c_run(const struct h2c_config *cfg)
{
	struct h2c c = {.fd = -1, .cfg = cfg};
	nghttp2_session_callbacks *cb = NULL;
	uint8_t *buf = malloc(1 << 16);
	int r = -ENOMEM;
	if (!buf || nghttp2_session_callbacks_new(&cb) != 0)
		goto out;
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	if (nghttp2_session_client_new(&c.s, cb, &c) != 0)
		goto out;
	c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(cfg->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (c.fd < 0 || connect(c.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto out;
	}
	int one = 1;
	setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24}};
	nghttp2_submit_settings(c.s, NGHTTP2_FLAG_NONE, iv, 1);
	nghttp2_session_set_local_window_size(c.s, NGHTTP2_FLAG_NONE, 0, 1 << 28);
	for (uint32_t i = 0; i < cfg->streams && !c.error; i++)
		submit(&c);
	r = 0;
	while (!c.error && c.inflight) {
		if ((r = flush(&c)) < 0)
			break;
		struct pollfd p = {.fd = c.fd, .events = POLLIN};
		if (poll(&p, 1, cfg->timeout_ms) <= 0) {
			r = -ETIMEDOUT;
			break;
		}
		ssize_t n = recv(c.fd, buf, 1 << 16, 0);
		if (n <= 0) {
			r = n < 0 ? -errno : -ECONNRESET;
			break;
		}
		if (nghttp2_session_mem_recv(c.s, buf, (size_t)n) < 0) {
			r = -EPROTO;
			break;
		}
	}
	if (c.error)
		r = c.error;
out:
	if (c.s)
		nghttp2_session_del(c.s); /* frees nothing of ours: streams left only on errors */
	nghttp2_session_callbacks_del(cb);
	if (c.fd >= 0)
		close(c.fd);
	free(buf);
	return r;
}
