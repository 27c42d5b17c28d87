/*
 * The HTTP gateway on --http-listen: the Kinesis JSON API over HTTP/1.1 (http1.c) and HTTP/2
 * cleartext with prior knowledge (h2.c), plus plain GETs (/healthz, /metrics) answered by a
 * callback of the server.
 *
 * Threads: one acceptor thread, and one thread per connection (at most max_connections; more
 * are refused by closing them). Each connection thread owns one libsluice connection to
 * sluiced's native listener, so the native event loops see ordinary clients and never wait for
 * HTTP. A Kinesis request is a synchronous call of at most a few milliseconds (one native round
 * trip, fsync included), so a thread per connection costs less than a second event loop would,
 * and it keeps the gateway's code straight-line.
 */
#ifndef SL_KINESIS_GATEWAY_H
#define SL_KINESIS_GATEWAY_H

#include "common/buf.h"
#include "kinesis/api.h"

#include <stdint.h>

/* Concurrent HTTP connections (each is a thread and a native connection). */
#define KIN_CONNECTIONS_DEFAULT 256
/* A request head (request line + headers) larger than this is refused (431). */
#define KIN_HEAD_BYTES_MAX (64u << 10)
/* A connection without a request in progress is closed after this long. */
#define KIN_IDLE_TIMEOUT_MS 120000
/* Within a request (and while sending a response), the peer must move a byte this often. */
#define KIN_IO_TIMEOUT_MS 30000
/* HTTP/2: streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
#define KIN_H2_STREAMS_MAX 100

/*
 * Answer a plain GET of path: return the HTTP status and fill body and *ret_content_type
 * (static), or return 0 when the path is not one of the server's.
 */
typedef int (*kin_get_fn)(void *ctx, const char *path, struct sl_buf *body,
			  const char **ret_content_type);

struct kin_gateway_config {
	const char *listen; /* HOST:PORT */
	struct kin_api_config api;
	unsigned max_connections; /* 0: KIN_CONNECTIONS_DEFAULT */
	kin_get_fn get;
	void *get_ctx;
};

struct kin_gateway;

/* Listen and start accepting. *ret_port: the bound port (for port 0). */
int kin_gateway_start(const struct kin_gateway_config *cfg, struct kin_gateway **ret,
		      uint16_t *ret_port, char *err, size_t err_len);
/* Stop accepting, close every connection, join the threads, free. Accepts NULL. */
void kin_gateway_stop(struct kin_gateway *gw);

/* ---- between gateway.c and the transports ---- */

/* Headers kept per request (for SigV4): more is refused like a head over KIN_HEAD_BYTES_MAX. */
#define KIN_HEADERS_MAX 128

/* A request's headers: names lowered, text in one buffer. */
struct kin_header_set {
	struct sl_buf text;
	struct {
		uint32_t name_off, name_len, value_off, value_len;
	} idx[KIN_HEADERS_MAX];
	size_t n;
};

void kin_header_set_init(struct kin_header_set *h);
void kin_header_set_finish(struct kin_header_set *h);
void kin_header_set_reset(struct kin_header_set *h);
/* 0, or -1 when KIN_HEADERS_MAX are kept already or memory ran out. */
int kin_header_set_add(struct kin_header_set *h, const char *name, size_t name_len,
		       const char *value, size_t value_len);
/* Pointers into h (valid until it changes). Returns the count. */
size_t kin_header_set_view(const struct kin_header_set *h, struct kin_header out[KIN_HEADERS_MAX]);

struct kin_conn {
	struct kin_gateway *gw;
	int fd;
	struct kin_session session;
	struct kin_conn *prev, *next; /* gateway's list, under its lock */
};

/* Plain GET through the server's callback; 404 for other paths. */
int kin_conn_get(struct kin_conn *c, const char *path, struct sl_buf *body,
		 const char **ret_content_type);
/* Wait until fd is readable (timeout_ms) and read. >0 bytes, 0 on EOF/timeout/error. */
size_t kin_conn_recv(struct kin_conn *c, void *buf, size_t cap, int timeout_ms);
/* Write everything (KIN_IO_TIMEOUT_MS per byte of progress). 0 or -1. */
int kin_conn_send(struct kin_conn *c, const void *p, size_t len);
/* Whether the gateway is stopping (connections finish their current request and close). */
bool kin_conn_stopping(const struct kin_conn *c);

void kin_http1_serve(struct kin_conn *c);
void kin_h2_serve(struct kin_conn *c);

#endif
