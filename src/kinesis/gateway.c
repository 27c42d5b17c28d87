/* The gateway's listener, connection threads and socket I/O (see gateway.h). */
#include "kinesis/gateway.h"

#include "common/logging.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

int sl_parse_listen(const char *s, struct sockaddr_in *ret);
int sl_server_listen_socket(const struct sockaddr_in *addr, struct sockaddr_in *ret_bound);

/* The HTTP/2 client connection preface (RFC 9113 3.4). */
static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct kin_gateway {
	struct kin_api *api;
	int listen_fd;
	int stop_fd;
	unsigned max_connections;
	kin_get_fn get;
	void *get_ctx;
	pthread_t acceptor;
	atomic_bool stopping;
	pthread_mutex_t lock;
	pthread_cond_t idle; /* signalled when nconns drops to 0 */
	unsigned nconns;
	struct kin_conn *conns;
};

int kin_conn_get(struct kin_conn *c, const char *path, struct sl_buf *body,
		 const char **ret_content_type)
{
	int status = c->gw->get ? c->gw->get(c->gw->get_ctx, path, body, ret_content_type) : 0;
	if (status)
		return status;
	sl_buf_reset(body);
	sl_buf_put(body, "not found\n", 10);
	*ret_content_type = "text/plain";
	return 404;
}

void kin_header_set_init(struct kin_header_set *h)
{
	sl_buf_init(&h->text);
	h->n = 0;
}

void kin_header_set_finish(struct kin_header_set *h)
{
	sl_buf_finish(&h->text);
}

void kin_header_set_reset(struct kin_header_set *h)
{
	sl_buf_reset(&h->text);
	h->n = 0;
}

int kin_header_set_add(struct kin_header_set *h, const char *name, size_t name_len,
		       const char *value, size_t value_len)
{
	if (h->n >= KIN_HEADERS_MAX || name_len > KIN_HEAD_BYTES_MAX ||
	    value_len > KIN_HEAD_BYTES_MAX)
		return -1;
	size_t off = h->text.len;
	if ((name_len && sl_buf_put(&h->text, name, name_len) < 0) ||
	    (value_len && sl_buf_put(&h->text, value, value_len) < 0))
		return -1;
	for (size_t i = 0; i < name_len; i++) {
		char *ch = (char *)h->text.data + off + i;
		if (*ch >= 'A' && *ch <= 'Z')
			*ch = (char)(*ch - 'A' + 'a');
	}
	h->idx[h->n].name_off = (uint32_t)off;
	h->idx[h->n].name_len = (uint32_t)name_len;
	h->idx[h->n].value_off = (uint32_t)(off + name_len);
	h->idx[h->n].value_len = (uint32_t)value_len;
	h->n++;
	return 0;
}

size_t kin_header_set_view(const struct kin_header_set *h, struct kin_header out[KIN_HEADERS_MAX])
{
	const char *base = (const char *)h->text.data;
	for (size_t i = 0; i < h->n; i++)
		out[i] = (struct kin_header){base + h->idx[i].name_off, h->idx[i].name_len,
					     base + h->idx[i].value_off, h->idx[i].value_len};
	return h->n;
}

bool kin_conn_stopping(const struct kin_conn *c)
{
	return atomic_load(&c->gw->stopping);
}

size_t kin_conn_recv(struct kin_conn *c, void *buf, size_t cap, int timeout_ms)
{
	for (;;) {
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		ssize_t n = recv(c->fd, buf, cap, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return n > 0 ? (size_t)n : 0;
	}
}

int kin_conn_send(struct kin_conn *c, const void *p, size_t len)
{
	const char *s = p;
	while (len) {
		ssize_t n = send(c->fd, s, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			s += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return -1;
		/* A client that stops reading its responses is dropped after KIN_IO_TIMEOUT_MS. */
		struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
		if (poll(&pf, 1, KIN_IO_TIMEOUT_MS) <= 0 || (pf.revents & (POLLERR | POLLHUP)))
			return -1;
	}
	return 0;
}

/* HTTP/2 with prior knowledge starts with the preface; anything else is HTTP/1.1. */
static bool is_h2(struct kin_conn *c)
{
	char buf[sizeof(h2_preface) - 1];
	size_t got = 0;
	while (got < sizeof(buf)) {
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		if (poll(&p, 1, KIN_IDLE_TIMEOUT_MS) <= 0)
			return false;
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_PEEK);
		if (n <= 0)
			return false;
		got = (size_t)n;
		if (memcmp(buf, h2_preface, got) != 0)
			return false;
		if (got < sizeof(buf))
			usleep(1000); /* the rest of the preface is on its way */
	}
	return true;
}

static void *conn_main(void *arg)
{
	struct kin_conn *c = arg;
	struct kin_gateway *gw = c->gw;
	if (is_h2(c))
		kin_h2_serve(c);
	else
		kin_http1_serve(c);
	kin_session_finish(&c->session);
	pthread_mutex_lock(&gw->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		gw->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	close(c->fd);
	if (--gw->nconns == 0)
		pthread_cond_broadcast(&gw->idle);
	pthread_mutex_unlock(&gw->lock);
	free(c);
	return NULL;
}

static void accept_one(struct kin_gateway *gw)
{
	int fd = accept4(gw->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pthread_mutex_lock(&gw->lock);
	if (gw->nconns >= gw->max_connections) {
		pthread_mutex_unlock(&gw->lock);
		SL_WARN("http: connection refused, %u connections open", gw->max_connections);
		close(fd);
		return;
	}
	struct kin_conn *c = calloc(1, sizeof(*c));
	pthread_attr_t attr;
	pthread_t t;
	if (!c)
		goto fail;
	c->gw = gw;
	c->fd = fd;
	kin_session_init(&c->session, gw->api);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256u << 10);
	int r = pthread_create(&t, &attr, conn_main, c);
	pthread_attr_destroy(&attr);
	if (r) {
		free(c);
		goto fail;
	}
	c->next = gw->conns;
	if (gw->conns)
		gw->conns->prev = c;
	gw->conns = c;
	gw->nconns++;
	pthread_mutex_unlock(&gw->lock);
	return;
fail:
	pthread_mutex_unlock(&gw->lock);
	close(fd);
}

static void *acceptor_main(void *arg)
{
	struct kin_gateway *gw = arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = gw->listen_fd, .events = POLLIN},
				      {.fd = gw->stop_fd, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (p[0].revents & POLLIN)
			accept_one(gw);
	}
	return NULL;
}

int kin_gateway_start(const struct kin_gateway_config *cfg, struct kin_gateway **ret,
		      uint16_t *ret_port, char *err, size_t err_len)
{
	struct sockaddr_in addr, bound;
	int r = sl_parse_listen(cfg->listen, &addr);
	if (r < 0)
		return r;
	struct kin_gateway *gw = calloc(1, sizeof(*gw));
	if (!gw)
		return -ENOMEM;
	gw->listen_fd = gw->stop_fd = -1;
	pthread_mutex_init(&gw->lock, NULL);
	pthread_cond_init(&gw->idle, NULL);
	gw->max_connections = cfg->max_connections ? cfg->max_connections : KIN_CONNECTIONS_DEFAULT;
	gw->get = cfg->get;
	gw->get_ctx = cfg->get_ctx;
	r = kin_api_create(&cfg->api, &gw->api, err, err_len);
	if (r < 0)
		goto fail;
	gw->listen_fd = sl_server_listen_socket(&addr, &bound);
	if (gw->listen_fd < 0) {
		r = gw->listen_fd;
		goto fail;
	}
	gw->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (gw->stop_fd < 0) {
		r = -errno;
		goto fail;
	}
	r = -pthread_create(&gw->acceptor, NULL, acceptor_main, gw);
	if (r < 0)
		goto fail;
	*ret = gw;
	*ret_port = ntohs(bound.sin_port);
	return 0;
fail:
	if (gw->listen_fd >= 0)
		close(gw->listen_fd);
	if (gw->stop_fd >= 0)
		close(gw->stop_fd);
	kin_api_destroy(gw->api);
	free(gw);
	return r;
}

void kin_gateway_stop(struct kin_gateway *gw)
{
	if (!gw)
		return;
	atomic_store(&gw->stopping, true);
	uint64_t one = 1;
	if (write(gw->stop_fd, &one, sizeof(one)) < 0)
		SL_WARN("http: cannot stop the acceptor: %s", strerror(errno));
	pthread_join(gw->acceptor, NULL);
	/* Wake every connection thread: their next recv sees EOF and they exit. */
	pthread_mutex_lock(&gw->lock);
	for (struct kin_conn *c = gw->conns; c; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	while (gw->nconns)
		pthread_cond_wait(&gw->idle, &gw->lock);
	pthread_mutex_unlock(&gw->lock);
	close(gw->listen_fd);
	close(gw->stop_fd);
	kin_api_destroy(gw->api);
	pthread_mutex_destroy(&gw->lock);
	pthread_cond_destroy(&gw->idle);
	free(gw);
}
