#include "fake_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FAKE_CONNS_MAX 16
/* Not assert(): the calls inside have side effects and must run under NDEBUG too. */
#define FAKE_CHECK(x)                                                                              \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

struct fake_conn {
	int fd;
	unsigned index;
	struct sl_buf in;
};

struct fake_server {
	fake_handler fn;
	void *ctx;
	int listen_fd;
	int stop_pipe[2];
	char addr[64];
	pthread_t thread;
	atomic_uint connections;
	atomic_uint requests;
	struct fake_conn conns[FAKE_CONNS_MAX];
};

static void conn_close(struct fake_conn *c)
{
	close(c->fd);
	c->fd = -1;
	sl_buf_finish(&c->in);
}

static void write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the client went away: the test will notice */
		p += n;
		len -= (size_t)n;
	}
}

/* Returns false when the connection must be closed. */
static bool conn_readable(struct fake_server *fs, struct fake_conn *c)
{
	if (sl_buf_reserve(&c->in, 65536) < 0)
		return false;
	ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
	if (n <= 0)
		return false;
	c->in.len += (size_t)n;
	size_t off = 0;
	bool keep = true;
	for (;;) {
		struct sl_frame_header h;
		int r = sl_proto_parse_header(c->in.data + off, c->in.len - off, &h);
		if (r == -EAGAIN || (r == 0 && c->in.len - off < 4 + (size_t)h.length))
			break;
		if (r < 0)
			return false;
		atomic_fetch_add(&fs->requests, 1);
		struct sl_buf out;
		sl_buf_init(&out);
		int verdict =
		    fs->fn(fs->ctx, c->index, &h, c->in.data + off + SL_FRAME_HEADER_BYTES,
			   4 + h.length - SL_FRAME_HEADER_BYTES, &out);
		write_all(c->fd, out.data, out.len);
		sl_buf_finish(&out);
		off += 4 + (size_t)h.length;
		if (verdict == FAKE_CLOSE) {
			keep = false;
			break;
		}
	}
	sl_buf_consume(&c->in, off);
	return keep;
}

static void *fake_main(void *arg)
{
	struct fake_server *fs = arg;
	for (;;) {
		struct pollfd pfds[FAKE_CONNS_MAX + 2];
		struct fake_conn *owners[FAKE_CONNS_MAX + 2];
		nfds_t n = 0;
		pfds[n] = (struct pollfd){.fd = fs->stop_pipe[0], .events = POLLIN};
		owners[n++] = NULL;
		pfds[n] = (struct pollfd){.fd = fs->listen_fd, .events = POLLIN};
		owners[n++] = NULL;
		for (int i = 0; i < FAKE_CONNS_MAX; i++) {
			if (fs->conns[i].fd < 0)
				continue;
			pfds[n] = (struct pollfd){.fd = fs->conns[i].fd, .events = POLLIN};
			owners[n++] = &fs->conns[i];
		}
		if (poll(pfds, n, -1) < 0)
			continue;
		if (pfds[0].revents)
			break;
		if (pfds[1].revents & POLLIN) {
			int fd = accept(fs->listen_fd, NULL, NULL);
			for (int i = 0; fd >= 0 && i < FAKE_CONNS_MAX; i++) {
				if (fs->conns[i].fd >= 0)
					continue;
				fs->conns[i].fd = fd;
				fs->conns[i].index = atomic_fetch_add(&fs->connections, 1);
				sl_buf_init(&fs->conns[i].in);
				fd = -1;
			}
			if (fd >= 0)
				close(fd);
		}
		for (nfds_t k = 2; k < n; k++)
			if (pfds[k].revents && !conn_readable(fs, owners[k]))
				conn_close(owners[k]);
	}
	for (int i = 0; i < FAKE_CONNS_MAX; i++)
		if (fs->conns[i].fd >= 0)
			conn_close(&fs->conns[i]);
	return NULL;
}

struct fake_server *fake_server_start(fake_handler fn, void *ctx)
{
	struct fake_server *fs = calloc(1, sizeof(*fs));
	FAKE_CHECK(fs);
	fs->fn = fn;
	fs->ctx = ctx;
	for (int i = 0; i < FAKE_CONNS_MAX; i++)
		fs->conns[i].fd = -1;
	fs->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FAKE_CHECK(fs->listen_fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	FAKE_CHECK(bind(fs->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	FAKE_CHECK(listen(fs->listen_fd, 16) == 0);
	socklen_t len = sizeof(sa);
	FAKE_CHECK(getsockname(fs->listen_fd, (struct sockaddr *)&sa, &len) == 0);
	snprintf(fs->addr, sizeof(fs->addr), "127.0.0.1:%u", ntohs(sa.sin_port));
	FAKE_CHECK(pipe(fs->stop_pipe) == 0);
	FAKE_CHECK(pthread_create(&fs->thread, NULL, fake_main, fs) == 0);
	return fs;
}

const char *fake_server_addr(const struct fake_server *fs)
{
	return fs->addr;
}

unsigned fake_server_connections(struct fake_server *fs)
{
	return atomic_load(&fs->connections);
}

unsigned fake_server_requests(struct fake_server *fs)
{
	return atomic_load(&fs->requests);
}

void fake_server_stop(struct fake_server *fs)
{
	if (!fs)
		return;
	ssize_t n = write(fs->stop_pipe[1], "x", 1);
	(void)n;
	pthread_join(fs->thread, NULL);
	close(fs->stop_pipe[0]);
	close(fs->stop_pipe[1]);
	close(fs->listen_fd);
	free(fs);
}

void fake_answer_empty(struct sl_buf *out, const struct sl_frame_header *h)
{
	size_t start;
	FAKE_CHECK(sl_proto_encode_response_head(out, h->opcode, h->request_id, 0, &start) == 0);
	sl_proto_finish_frame(out, start);
}

void fake_answer_error(struct sl_buf *out, const struct sl_frame_header *h, int32_t status,
		       const char *message)
{
	FAKE_CHECK(sl_proto_encode_error(out, h->opcode, h->request_id, status, message) == 0);
}
