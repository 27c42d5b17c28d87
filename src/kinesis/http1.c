/*
 * HTTP/1.1 connections (the AWS CLI, boto3, kinesalite's clients): requests parsed by nodejs'
 * http-parser, one at a time in order (pipelined requests wait in the buffer), keep-alive,
 * Content-Length or chunked bodies, and "Expect: 100-continue" (the AWS CLI sends it for
 * larger bodies and waits for the interim answer).
 */
#include "kinesis/gateway.h"

#include <http_parser.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RECV_BUF_BYTES (64u << 10)

struct h1 {
	struct kin_conn *c;
	http_parser parser;
	struct sl_buf url;
	struct sl_buf field, value; /* the header being read */
	bool in_value;
	struct kin_header_set headers;
	bool expect_continue;
	struct sl_buf body;
	size_t head_bytes;
	int reject_status; /* a limit was hit: answer this and close */
	bool complete;
};

static struct h1 *of(http_parser *p)
{
	return p->data;
}

static void end_header(struct h1 *h)
{
	if (!h->in_value)
		return;
	if (kin_header_set_add(&h->headers, (const char *)h->field.data, h->field.len,
			       (const char *)h->value.data, h->value.len) < 0)
		h->reject_status = 431;
	if (h->field.len == 6 && strncasecmp((char *)h->field.data, "expect", 6) == 0 &&
	    h->value.len == 12 && strncasecmp((char *)h->value.data, "100-continue", 12) == 0) {
		h->expect_continue = true;
	}
	sl_buf_reset(&h->field);
	sl_buf_reset(&h->value);
	h->in_value = false;
}

static int count_head(struct h1 *h, size_t n)
{
	h->head_bytes += n;
	if (h->head_bytes > KIN_HEAD_BYTES_MAX) {
		h->reject_status = 431;
		return 1;
	}
	return 0;
}

static int on_message_begin(http_parser *p)
{
	struct h1 *h = of(p);
	sl_buf_reset(&h->url);
	sl_buf_reset(&h->field);
	sl_buf_reset(&h->value);
	kin_header_set_reset(&h->headers);
	sl_buf_reset(&h->body);
	h->in_value = false;
	h->expect_continue = false;
	h->head_bytes = 0;
	h->complete = false;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct h1 *h = of(p);
	return count_head(h, len) || sl_buf_put(&h->url, at, len) < 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct h1 *h = of(p);
	end_header(h);
	return count_head(h, len) || sl_buf_put(&h->field, at, len) < 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct h1 *h = of(p);
	h->in_value = true;
	return count_head(h, len) || sl_buf_put(&h->value, at, len) < 0;
}

static int on_headers_complete(http_parser *p)
{
	struct h1 *h = of(p);
	end_header(h);
	if (h->reject_status)
		return -1;
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > KIN_BODY_BYTES_MAX) {
		h->reject_status = 413;
		return -1; /* http-parser: 1 here would mean "no body", not an error */
	}
	if (h->expect_continue) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (kin_conn_send(h->c, cont, sizeof(cont) - 1) < 0)
			return -1;
	}
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct h1 *h = of(p);
	if (h->body.len + len > KIN_BODY_BYTES_MAX) { /* chunked bodies have no length up front */
		h->reject_status = 413;
		return 1;
	}
	return sl_buf_put(&h->body, at, len) < 0;
}

static int on_message_complete(http_parser *p)
{
	struct h1 *h = of(p);
	h->complete = true;
	http_parser_pause(p, 1); /* answer this request before parsing the next one */
	return 0;
}

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return status >= 500 ? "Internal Server Error" : "Error";
	}
}

static int respond(struct h1 *h, int status, const char *type, const char *request_id,
		   const void *body, size_t len, bool keep_alive)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s"
			 "Connection: %s\r\n\r\n",
			 status, reason(status), type, len, request_id ? "x-amzn-RequestId: " : "",
			 request_id ? request_id : "", request_id ? "\r\n" : "",
			 keep_alive ? "keep-alive" : "close");
	if (kin_conn_send(h->c, head, (size_t)n) < 0)
		return -1;
	return len ? kin_conn_send(h->c, body, len) : 0;
}

static int reject(struct h1 *h, int status, const char *type, const char *message)
{
	char body[256];
	int n =
	    snprintf(body, sizeof(body), "{\"__type\":\"%s\",\"message\":\"%s\"}", type, message);
	return respond(h, status, "application/x-amz-json-1.1", NULL, body, (size_t)n, false);
}

/* Answer the complete request in h. Returns whether the connection stays open. */
static bool answer(struct h1 *h, struct kin_reply *reply)
{
	http_parser *p = &h->parser;
	bool keep = http_should_keep_alive(p) && !kin_conn_stopping(h->c);
	sl_buf_put_u8(&h->url, 0);
	char *path = (char *)h->url.data;
	char *qm = strchr(path, '?');
	if (qm)
		*qm = '\0';
	if (p->method == HTTP_GET) {
		const char *type;
		struct sl_buf *b = &reply->body;
		int status = kin_conn_get(h->c, path, b, &type);
		return respond(h, status, type, NULL, b->data, b->len, keep) == 0 && keep;
	}
	if (p->method != HTTP_POST || strcmp(path, "/") != 0) {
		reject(h, p->method == HTTP_POST ? 404 : 405, "UnknownOperationException",
		       "the Kinesis API takes POST /");
		return false;
	}
	struct kin_header hv[KIN_HEADERS_MAX];
	struct kin_request req = {.method = "POST",
				  .path = (const char *)h->url.data,
				  .headers = hv,
				  .nheaders = kin_header_set_view(&h->headers, hv),
				  .body = h->body.data,
				  .body_len = h->body.len};
	if (qm)
		*qm = '?'; /* SigV4 signs the query string too */
	kin_handle_request(&h->c->session, &req, reply);
	return respond(h, reply->status, "application/x-amz-json-1.1", reply->request_id,
		       reply->body.data, reply->body.len, keep) == 0 &&
	       keep;
}

void kin_http1_serve(struct kin_conn *c)
{
	static const http_parser_settings settings = {
	    .on_message_begin = on_message_begin,
	    .on_url = on_url,
	    .on_header_field = on_header_field,
	    .on_header_value = on_header_value,
	    .on_headers_complete = on_headers_complete,
	    .on_body = on_body,
	    .on_message_complete = on_message_complete,
	};
	struct h1 h = {.c = c};
	sl_buf_init(&h.url);
	sl_buf_init(&h.field);
	sl_buf_init(&h.value);
	kin_header_set_init(&h.headers);
	sl_buf_init(&h.body);
	struct kin_reply reply;
	kin_reply_init(&reply);
	char *buf = malloc(RECV_BUF_BYTES);
	http_parser_init(&h.parser, HTTP_REQUEST);
	h.parser.data = &h;
	size_t have = 0, off = 0;
	bool in_request = false;
	while (buf) {
		if (off == have) {
			int timeout = in_request ? KIN_IO_TIMEOUT_MS : KIN_IDLE_TIMEOUT_MS;
			have = kin_conn_recv(c, buf, RECV_BUF_BYTES, timeout);
			off = 0;
			if (have == 0)
				break;
		}
		size_t used = http_parser_execute(&h.parser, &settings, buf + off, have - off);
		off += used;
		enum http_errno e = HTTP_PARSER_ERRNO(&h.parser);
		in_request = !h.complete && (h.head_bytes || h.body.len || used);
		if (e == HPE_PAUSED && h.complete) {
			bool keep = answer(&h, &reply);
			sl_buf_finish(&h.body); /* a 10 MiB body is not kept for the next request */
			sl_buf_init(&h.body);
			if (!keep)
				break;
			h.complete = false;
			in_request = false;
			http_parser_pause(&h.parser, 0);
			continue;
		}
		if (e != HPE_OK) {
			if (h.reject_status == 413)
				reject(&h, 413, "SerializationException", "request body too large");
			else if (h.reject_status == 431)
				reject(&h, 431, "SerializationException", "request head too large");
			else
				reject(&h, 400, "SerializationException",
				       http_errno_description(e));
			break;
		}
	}
	free(buf);
	kin_reply_finish(&reply);
	sl_buf_finish(&h.url);
	sl_buf_finish(&h.field);
	sl_buf_finish(&h.value);
	kin_header_set_finish(&h.headers);
	sl_buf_finish(&h.body);
}
