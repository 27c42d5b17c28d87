/*
 * HTTP/2 cleartext with prior knowledge (the AWS SDK for JavaScript v3 uses HTTP/2 for
 * Kinesis), framed by libnghttp2. Several streams may be open at once (up to
 * KIN_H2_STREAMS_MAX); complete requests are answered in arrival order after each read, on this
 * connection's thread, and their responses interleave with further reads as nghttp2 schedules.
 */
#include "kinesis/gateway.h"

#include "common/logging.h"

#include <nghttp2/nghttp2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECV_BUF_BYTES (64u << 10)
/* Flow-control windows: a 10 MiB PutRecords body should not wait for a WINDOW_UPDATE every
 * 64 KiB (the protocol's default). */
#define STREAM_WINDOW_BYTES (4u << 20)
#define CONN_WINDOW_BYTES (32u << 20)

struct h2_stream {
	int32_t id;
	struct sl_buf method, path, body;
	struct kin_header_set headers;
	size_t head_bytes;
	int reject_status;
	struct kin_reply reply;
	const char *content_type;
	size_t sent;
	bool ready; /* END_STREAM seen, in the ready list */
	struct h2_stream *next_ready;
	struct h2_stream *prev, *next; /* every stream of the connection */
};

struct h2 {
	struct kin_conn *c;
	nghttp2_session *session;
	struct h2_stream *ready_head, *ready_tail;
	struct h2_stream *all; /* nghttp2_session_del does not call on_stream_close */
	unsigned open;
};

static void stream_free(struct h2_stream *s)
{
	sl_buf_finish(&s->method);
	sl_buf_finish(&s->path);
	kin_header_set_finish(&s->headers);
	sl_buf_finish(&s->body);
	kin_reply_finish(&s->reply);
	free(s);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
	struct h2 *h = ud;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct h2_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	s->id = frame->hd.stream_id;
	sl_buf_init(&s->method);
	sl_buf_init(&s->path);
	kin_header_set_init(&s->headers);
	sl_buf_init(&s->body);
	kin_reply_init(&s->reply);
	s->next = h->all;
	if (h->all)
		h->all->prev = s;
	h->all = s;
	h->open++;
	nghttp2_session_set_stream_user_data(session, s->id, s);
	return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct h2_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (!s)
		return 0;
	s->head_bytes += namelen + valuelen;
	if (s->head_bytes > KIN_HEAD_BYTES_MAX) {
		s->reject_status = 431;
		return 0;
	}
	struct sl_buf *dst = NULL;
	if (namelen == 7 && memcmp(name, ":method", 7) == 0)
		dst = &s->method;
	else if (namelen == 5 && memcmp(name, ":path", 5) == 0)
		dst = &s->path;
	if (dst) {
		sl_buf_reset(dst);
		sl_buf_put(dst, value, valuelen);
		return 0;
	}
	/* SigV4 over HTTP/2: the SDK for JavaScript signs ":authority" itself, other signers
	 * "host"; keep it under both names. Other pseudo-headers are never signed. */
	bool authority = namelen == 10 && memcmp(name, ":authority", 10) == 0;
	if (namelen && name[0] == ':' && !authority)
		return 0;
	if (kin_header_set_add(&s->headers, (const char *)name, namelen, (const char *)value,
			       valuelen) < 0 ||
	    (authority &&
	     kin_header_set_add(&s->headers, "host", 4, (const char *)value, valuelen) < 0))
		s->reject_status = 431;
	return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
			 const uint8_t *data, size_t len, void *ud)
{
	struct h2_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
	if (!s || s->reject_status)
		return 0;
	if (s->body.len + len > KIN_BODY_BYTES_MAX) {
		s->reject_status = 413;
		sl_buf_finish(&s->body);
		sl_buf_init(&s->body);
		return 0;
	}
	if (sl_buf_put(&s->body, data, len) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
	struct h2 *h = ud;
	if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (!s || s->ready)
		return 0;
	s->ready = true;
	if (h->ready_tail)
		h->ready_tail->next_ready = s;
	else
		h->ready_head = s;
	h->ready_tail = s;
	return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
			   void *ud)
{
	struct h2 *h = ud;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
	if (error_code)
		SL_DEBUG("http/2 stream %d closed: %s", stream_id,
			 nghttp2_http2_strerror(error_code));
	if (!s)
		return 0;
	/* Reset before it was answered: take it out of the ready list. */
	struct h2_stream **pp = &h->ready_head, *prev = NULL;
	while (*pp && *pp != s) {
		prev = *pp;
		pp = &(*pp)->next_ready;
	}
	if (*pp) {
		*pp = s->next_ready;
		if (h->ready_tail == s)
			h->ready_tail = prev;
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		h->all = s->next;
	if (s->next)
		s->next->prev = s->prev;
	h->open--;
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	stream_free(s);
	return 0;
}

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
			 uint32_t *data_flags, nghttp2_data_source *source, void *ud)
{
	struct h2_stream *s = source->ptr;
	size_t left = s->reply.body.len - s->sent;
	size_t n = left < length ? left : length;
	if (n) /* an empty body has no buffer at all */
		memcpy(buf, s->reply.body.data + s->sent, n);
	s->sent += n;
	if (s->sent == s->reply.body.len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

#define NV(n, v)                                                                                   \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE     \
	}

static void answer(struct h2 *h, struct h2_stream *s)
{
	const char *type = "application/x-amz-json-1.1";
	struct kin_reply *r = &s->reply;
	sl_buf_put_u8(&s->path, 0);
	char *path = (char *)s->path.data;
	char *qm = strchr(path, '?');
	if (qm)
		*qm = '\0';
	bool get = s->method.len == 3 && memcmp(s->method.data, "GET", 3) == 0;
	bool post = s->method.len == 4 && memcmp(s->method.data, "POST", 4) == 0;
	if (s->reject_status) {
		r->status = s->reject_status;
		sl_buf_reset(&r->body);
		const char *m =
		    s->reject_status == 413
			? "{\"__type\":\"SerializationException\",\"message\":\"request "
			  "body too large\"}"
			: "{\"__type\":\"SerializationException\",\"message\":\"request "
			  "head too large\"}";
		sl_buf_put(&r->body, m, strlen(m));
	} else if (get) {
		r->status = kin_conn_get(h->c, path, &r->body, &type);
	} else if (!post || strcmp(path, "/") != 0) {
		r->status = post ? 404 : 405;
		sl_buf_reset(&r->body);
		static const char m[] =
		    "{\"__type\":\"UnknownOperationException\",\"message\":\"the "
		    "Kinesis API takes POST /\"}";
		sl_buf_put(&r->body, m, sizeof(m) - 1);
	} else {
		struct kin_header hv[KIN_HEADERS_MAX];
		if (qm)
			*qm = '?'; /* SigV4 signs the query string too */
		struct kin_request req = {.method = "POST",
					  .path = path,
					  .headers = hv,
					  .nheaders = kin_header_set_view(&s->headers, hv),
					  .body = s->body.data,
					  .body_len = s->body.len};
		kin_handle_request(&h->c->session, &req, r);
	}
	sl_buf_finish(&s->body); /* a 10 MiB request body is not kept while the answer is sent */
	sl_buf_init(&s->body);
	char status[8], length[24];
	snprintf(status, sizeof(status), "%d", r->status);
	snprintf(length, sizeof(length), "%zu", r->body.len);
	nghttp2_nv nva[4] = {NV(":status", status), NV("content-type", type),
			     NV("content-length", length), NV("x-amzn-requestid", r->request_id)};
	size_t nnv = r->request_id[0] ? 4 : 3;
	nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
	nghttp2_submit_response(h->session, s->id, nva, nnv, &prd);
}

static int flush(struct h2 *h)
{
	for (;;) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(h->session, &data);
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (kin_conn_send(h->c, data, (size_t)n) < 0)
			return -1;
	}
}

void kin_h2_serve(struct kin_conn *c)
{
	struct h2 h = {.c = c};
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		return;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	int r = nghttp2_session_server_new(&h.session, cb, &h);
	nghttp2_session_callbacks_del(cb);
	if (r != 0)
		return;
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, KIN_H2_STREAMS_MAX},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW_BYTES},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, KIN_HEAD_BYTES_MAX},
	};
	uint8_t *buf = malloc(RECV_BUF_BYTES);
	if (!buf || nghttp2_submit_settings(h.session, NGHTTP2_FLAG_NONE, iv, 3) != 0 ||
	    nghttp2_session_set_local_window_size(h.session, NGHTTP2_FLAG_NONE, 0,
						  CONN_WINDOW_BYTES) != 0 ||
	    flush(&h) < 0)
		goto out;
	while (nghttp2_session_want_read(h.session) || nghttp2_session_want_write(h.session)) {
		size_t n = kin_conn_recv(c, buf, RECV_BUF_BYTES,
					 h.open ? KIN_IO_TIMEOUT_MS : KIN_IDLE_TIMEOUT_MS);
		if (n == 0)
			break;
		ssize_t rv = nghttp2_session_mem_recv(h.session, buf, n);
		if (rv < 0) {
			SL_DEBUG("http/2: %s", nghttp2_strerror((int)rv));
			break;
		}
		while (h.ready_head) {
			struct h2_stream *s = h.ready_head;
			h.ready_head = s->next_ready;
			if (!h.ready_head)
				h.ready_tail = NULL;
			s->next_ready = NULL;
			answer(&h, s);
			if (flush(&h) < 0)
				goto out;
		}
		if (kin_conn_stopping(c))
			nghttp2_session_terminate_session(h.session, NGHTTP2_NO_ERROR);
		if (flush(&h) < 0)
			break;
	}
out:
	free(buf);
	nghttp2_session_del(h.session);
	while (h.all) {
		struct h2_stream *s = h.all;
		h.all = s->next;
		stream_free(s);
	}
}
