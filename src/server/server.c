/*
 * Workers: one io_uring loop per thread, each with its own SO_REUSEPORT listening socket, so the
 * kernel spreads connections and no lock is shared on the request path. Each worker owns a set
 * of shards (registry.c assigns them); requests for shards owned elsewhere travel as messages.
 *
 * Group commit happens in the tick that runs after every batch of completions: every owned shard
 * that got appends in this round starts one fdatasync on io_uring (unless one is in flight), and
 * the batches it covers are acknowledged when it completes. One sync thus covers every request
 * that arrived while the previous one ran.
 */
#include "server/server.h"

#include "server/consumers.h"
#ifdef SL_FAULT_INJECTION
#include "server/faults.h"
#endif

#include "common/clock.h"
#include "common/logging.h"

#include <sluice/errors.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* How often owned shards are checked for retention and interval syncs. */
#define HOUSEKEEPING_INTERVAL_MS 200

static __thread struct sl_worker *current_worker;

struct sl_worker *sl_worker_of_loop(struct sl_loop *loop)
{
	return sl_loop_userdata(loop);
}

void sl_reply_empty(struct sl_conn *c, const struct sl_frame_header *h)
{
	size_t start;
	if (sl_proto_encode_response_head(sl_conn_out(c), h->opcode, h->request_id, 0, &start) ==
	    0) {
		sl_proto_finish_frame(sl_conn_out(c), start);
		sl_conn_flush(c);
	}
}

void sl_str_copy(char *dst, size_t cap, const struct sl_str *s)
{
	size_t n = s->len < cap - 1 ? s->len : cap - 1;
	memcpy(dst, s->p, n);
	dst[n] = '\0';
}

void sl_reply_error(struct sl_conn *c, const struct sl_frame_header *h, int status, const char *fmt,
		    ...)
{
	char msg[SL_PROTO_MESSAGE_MAX];
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	} else {
		snprintf(msg, sizeof(msg), "%s", sluice_strerror(status));
	}
	struct sl_worker *w = sl_worker_of_loop(sl_conn_loop(c));
	sl_counter_add(&w->m.request_errors, 1);
	if (sl_proto_encode_error(sl_conn_out(c), h->opcode, h->request_id, status, msg) == 0)
		sl_conn_flush(c);
	else
		sl_conn_close(c, false);
}

void sl_worker_mark_dirty(struct sl_worker *w, struct sl_shard *sh)
{
	if (sh->dirty)
		return;
	sl_stream_ref(sh->stream); /* the list keeps the shard alive through a delete */
	sh->dirty = true;
	sh->next_dirty = w->dirty;
	w->dirty = sh;
}

/* ---- frames ---- */

static bool token_equal(const struct sl_server *srv, const uint8_t *p, size_t n)
{
	/* Constant time in the token's content: a timing probe learns nothing. */
	unsigned char diff = (unsigned char)(n != srv->auth_token_len);
	for (size_t i = 0; i < srv->auth_token_len; i++)
		diff |= (unsigned char)(srv->auth_token[i] ^ (i < n ? p[i] : 0));
	return diff == 0;
}

static void handle_remote(struct sl_session *sess, struct sl_conn *c,
			  const struct sl_frame_header *h, const uint8_t *body, size_t len);

static int on_frame(struct sl_conn *c, const struct sl_frame_header *h, const uint8_t *body,
		    size_t len)
{
	struct sl_session *sess = sl_conn_userdata(c);
	struct sl_worker *w = sess->w;
	struct sl_server *srv = w->srv;
	sl_counter_add(&w->m.requests, 1);
	if (h->flags & (SL_FRAME_RESPONSE | SL_FRAME_PUSH)) {
		sl_counter_add(&w->m.frames_rejected, 1);
		sl_reply_error(c, h, SLUICE_ERR_PROTOCOL, "a client sent a response or push frame");
		return SLUICE_ERR_PROTOCOL;
	}
	if (atomic_load_explicit(&srv->draining, memory_order_relaxed)) {
		sl_reply_error(c, h, SLUICE_ERR_SHUTTING_DOWN, NULL);
		return 0;
	}
	if (h->opcode == SL_OP_AUTH) {
		struct sl_str tok;
		int r = sl_proto_decode_auth(body, len, &tok);
		if (r < 0) {
			sl_reply_error(c, h, r, "malformed AUTH");
			return 0;
		}
		if (srv->auth_token_len && !token_equal(srv, (const uint8_t *)tok.p, tok.len)) {
			sl_counter_add(&w->m.auth_failures, 1);
			sl_reply_error(c, h, SLUICE_ERR_UNAUTHORIZED, "wrong auth token");
			return 0;
		}
		sess->authenticated = true;
		size_t start;
		if (sl_proto_encode_response_head(sl_conn_out(c), h->opcode, h->request_id, 0,
						  &start) == 0) {
			sl_proto_finish_frame(sl_conn_out(c), start);
			sl_conn_flush(c);
		}
		return 0;
	}
	if (srv->auth_token_len && !sess->authenticated) {
		sl_counter_add(&w->m.auth_failures, 1);
		sl_reply_error(c, h, SLUICE_ERR_UNAUTHORIZED, "this server requires an AUTH token");
		return 0;
	}
	switch (h->opcode) {
	case SL_OP_PING: {
		size_t start;
		if (sl_proto_encode_response_head(sl_conn_out(c), h->opcode, h->request_id, 0,
						  &start) == 0) {
			sl_proto_finish_frame(sl_conn_out(c), start);
			sl_conn_flush(c);
		}
		return 0;
	}
	case SL_OP_PRODUCE:
		sl_handle_produce(w, c, h, body, len);
		return 0;
	case SL_OP_READ:
		sl_handle_read(w, c, h, body, len);
		return 0;
	case SL_OP_STREAM_SPLIT:
	case SL_OP_STREAM_MERGE:
	case SL_OP_STREAM_SCALE:
		sl_handle_reshard(w, c, h, body, len);
		return 0;
	case SL_OP_CREATE_STREAM:
	case SL_OP_DELETE_STREAM:
	case SL_OP_LIST_STREAMS:
	case SL_OP_DESCRIBE_STREAM:
	case SL_OP_LIST_SHARDS:
		sl_handle_admin(w, c, h, body, len);
		return 0;
	case SL_OP_STREAM_SET_RETENTION:
	case SL_OP_STREAM_ADD_TAGS:
	case SL_OP_STREAM_REMOVE_TAGS:
	case SL_OP_STREAM_LIST_TAGS:
		sl_handle_stream_settings(w, c, h, body, len);
		return 0;
	case SL_OP_CONSUMER_CREATE:
	case SL_OP_CONSUMER_DELETE:
	case SL_OP_CONSUMER_LIST:
	case SL_OP_CONSUMER_DESCRIBE:
	case SL_OP_CONSUMER_RESET:
		sl_handle_consumer_admin(w, c, h, body, len);
		return 0;
	case SL_OP_FIREHOSE_CREATE:
	case SL_OP_FIREHOSE_DELETE:
	case SL_OP_FIREHOSE_LIST:
	case SL_OP_FIREHOSE_DESCRIBE:
	case SL_OP_FIREHOSE_FLUSH:
		sl_handle_firehose_admin(w, c, h, body, len);
		return 0;
	case SL_OP_STREAM_CREATE_FROM_META:
	case SL_OP_STREAM_META_GET:
	case SL_OP_RESTORE_APPEND:
		sl_handle_restore(w, c, h, body, len);
		return 0;
	case SL_OP_CONSUMER_ATTACH:
	case SL_OP_CONSUMER_ACK:
		handle_remote(sess, c, h, body, len);
		return 0;
	default:
		sl_reply_error(c, h, SLUICE_ERR_BAD_OPCODE, "unknown opcode 0x%02x", h->opcode);
		return 0;
	}
}

int sl_remote_attach(struct sl_worker *w, struct sl_conn *conn, const char *name,
		     uint32_t request_id, struct sl_remote **ret, char *err_msg,
		     size_t err_msg_len);
void sl_remote_detach(struct sl_remote *r);
int sl_remote_ack(struct sl_remote *r, const struct sl_req_consumer_ack *ack, char *err_msg,
		  size_t err_msg_len);

static void on_close(struct sl_conn *c)
{
	struct sl_session *sess = sl_conn_userdata(c);
	if (sess && sess->remote) {
		sl_remote_detach(sess->remote);
		sess->remote = NULL;
	}
}

static void reply_ok(struct sl_conn *c, const struct sl_frame_header *h)
{
	size_t start;
	if (sl_proto_encode_response_head(sl_conn_out(c), h->opcode, h->request_id, 0, &start) ==
	    0) {
		sl_proto_finish_frame(sl_conn_out(c), start);
		sl_conn_flush(c);
	}
}

static void handle_remote(struct sl_session *sess, struct sl_conn *c,
			  const struct sl_frame_header *h, const uint8_t *body, size_t len)
{
	char msg[256] = "";
	if (h->opcode == SL_OP_CONSUMER_ATTACH) {
		struct sl_str q;
		int r = sl_proto_decode_name(body, len, &q);
		if (r < 0) {
			sl_reply_error(c, h, r, "malformed CONSUMER_ATTACH request");
			return;
		}
		if (sess->remote) {
			sl_reply_error(c, h, SLUICE_ERR_INVALID_ARGUMENT,
				       "this connection is attached already; use one per consumer");
			return;
		}
		char name[SLUICE_NAME_LEN_MAX + 1];
		snprintf(name, sizeof(name), "%.*s", (int)q.len, q.p);
		r = sl_remote_attach(sess->w, c, name, h->request_id, &sess->remote, msg,
				     sizeof(msg));
		if (r < 0) {
			sl_reply_error(c, h, r, "%s", msg[0] ? msg : sluice_strerror(r));
			return;
		}
		reply_ok(c, h);
		return;
	}
	struct sl_req_consumer_ack ack;
	int r = sl_proto_decode_consumer_ack(body, len, &ack);
	if (r < 0) {
		sl_reply_error(c, h, r, "malformed CONSUMER_ACK request");
		return;
	}
	if (!sess->remote) {
		sl_reply_error(c, h, SLUICE_ERR_INVALID_ARGUMENT,
			       "CONSUMER_ACK on a connection that is not attached");
		return;
	}
	r = sl_remote_ack(sess->remote, &ack, msg, sizeof(msg));
	if (r < 0) {
		sl_reply_error(c, h, r, "%s", msg);
		return;
	}
	reply_ok(c, h);
}

static const struct sl_conn_handler conn_handler = {
    .on_frame = on_frame,
    .on_close = on_close,
    .on_free = free,
};

/* ---- accept ---- */

static void arm_accept(struct sl_worker *w);

static void accept_done(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct sl_worker *w =
	    (struct sl_worker *)((char *)op - offsetof(struct sl_worker, accept_op));
	if (res >= 0) {
		int fd = res;
		struct sl_server *srv = w->srv;
		if (sl_conn_count() >= srv->cfg.max_connections || atomic_load(&srv->draining)) {
			sl_counter_add(&w->m.connections_refused, 1);
			close(fd);
		} else {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			struct sl_session *sess = calloc(1, sizeof(*sess));
			if (sess)
				sess->w = w;
			struct sl_conn_limits lim = {
			    .inflight_bytes_max = srv->cfg.max_inflight_bytes,
			    /* the length field may be SL_PROTO_FRAME_MAX; the frame adds 4 */
			    .frame_bytes_max = SL_PROTO_FRAME_MAX + 4,
			};
			struct sl_conn *c;
			if (!sess || sl_conn_create(loop, fd, &conn_handler, &lim, sess, &c) < 0) {
				free(sess);
				close(fd);
			} else {
				sl_counter_add(&w->m.connections_accepted, 1);
			}
		}
	} else if (res != -ECANCELED && res != -EBADF && res != -EINVAL) {
		SL_WARN("accept failed: %s", strerror(-res));
	}
	if (!(flags & IORING_CQE_F_MORE)) {
		w->accepting = false;
		if (w->listen_fd >= 0 && !atomic_load(&w->srv->draining))
			arm_accept(w);
	}
}

static void arm_accept(struct sl_worker *w)
{
	struct io_uring_sqe *sqe = sl_loop_sqe(w->loop, &w->accept_op);
	io_uring_prep_multishot_accept(sqe, w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	w->accepting = true;
}

int sl_server_listen_socket(const struct sockaddr_in *addr, struct sockaddr_in *ret_bound);
int sl_server_listen_socket(const struct sockaddr_in *addr, struct sockaddr_in *ret_bound)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	/* No SO_REUSEPORT: a second server on the same port must fail, not share it. The
	 * workers all accept on this one socket instead. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 || listen(fd, 1024) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	if (ret_bound) {
		socklen_t len = sizeof(*ret_bound);
		getsockname(fd, (struct sockaddr *)ret_bound, &len);
	}
	return fd;
}

/* ---- group commit ---- */

static void sync_done(struct sl_loop *loop, struct sl_op *op, int res, uint32_t flags)
{
	struct sl_shard *sh = (struct sl_shard *)((char *)op - offsetof(struct sl_shard, sync_op));
	struct sl_worker *w = sl_worker_of_loop(loop);
	sh->sync_inflight = false;
	sl_latency_hist_record(&w->m.fsync_duration,
			       (uint64_t)(sl_mono_ns() - sh->sync_started_ns));
#ifdef SL_FAULT_INJECTION
	res = sl_fault_sync_result(sh->ticket.fd, res);
#endif
	sl_shard_lock(sh);
	if (!sh->log) {
		sl_shard_unlock(sh);
		sl_stream_unref(sh->stream); /* taken when the sync started */
		return;
	}
	if (res < 0) {
		SL_ERROR("stream %s shard %u: fdatasync failed: %s; the shard refuses writes",
			 sh->stream->name, sh->id, strerror(-res));
		atomic_store(&sh->failed, true);
	}
	sl_shard_log_sync_end(sh->log, &sh->ticket, res, sl_wall_ms());
	sl_shard_unlock(sh);
	sl_counter_add(&w->m.syncs, 1);
	sl_worker_mark_dirty(w, sh);
	sl_stream_unref(sh->stream);
}

static void service_shard(struct sl_worker *w, struct sl_shard *sh, int64_t now)
{
	sl_shard_lock(sh);
	if (!sh->log) {
		sl_shard_unlock(sh);
		return;
	}
	sl_shard_log_service(sh->log, now);
	if (!sh->sync_inflight && sl_shard_log_sync_wanted(sh->log, now)) {
		if (sl_shard_log_sync_begin(sh->log, &sh->ticket) == 0) {
			sh->sync_op.complete = sync_done;
			struct io_uring_sqe *sqe = sl_loop_sqe(w->loop, &sh->sync_op);
			io_uring_prep_fsync(sqe, sh->ticket.fd, IORING_FSYNC_DATASYNC);
			sh->sync_inflight = true;
			sh->sync_started_ns = sl_mono_ns();
			sl_stream_ref(sh->stream);
		}
	}
	struct sl_shard_log_stats st;
	sl_shard_log_stats(sh->log, &st);
	atomic_store_explicit(&sh->next_seq, st.next_seq, memory_order_relaxed);
	/* The log also fails itself (a sync at a segment roll, an undo that failed): show it. */
	if (st.failed && !atomic_load_explicit(&sh->failed, memory_order_relaxed))
		atomic_store(&sh->failed, true);
	sl_shard_unlock(sh);
}

static void housekeeping(struct sl_worker *w, int64_t now)
{
	for (size_t i = 0; i < w->cache.count; i++) {
		struct sl_stream_view *v = sl_stream_view(w->cache.all[i]);
		for (uint32_t k = 0; k < v->nshards; k++) {
			struct sl_shard *sh = v->shards[k];
			if (sh->owner != w->id)
				continue;
			sl_shard_lock(sh);
			if (sh->log) {
				sl_shard_log_enforce_retention(sh->log, now);
				struct sl_shard_log_stats st;
				sl_shard_log_stats(sh->log, &st);
				atomic_store_explicit(&sh->first_seq, st.first_seq,
						      memory_order_relaxed);
				service_shard(w, sh, now);
			}
			sl_shard_unlock(sh);
		}
	}
}

static bool all_requests_done(const struct sl_server *srv)
{
	if (atomic_load(&srv->appends_untold))
		return false;
	for (unsigned i = 0; i < srv->nworkers; i++)
		if (atomic_load_explicit(&srv->workers[i].requests_pending, memory_order_relaxed))
			return false;
	return true;
}

static void tick(struct sl_loop *loop, void *ctx)
{
	struct sl_worker *w = ctx;
	int64_t now = sl_wall_ms();
	struct sl_shard *list = w->dirty;
	w->dirty = NULL;
	while (list) {
		struct sl_shard *sh = list;
		list = sh->next_dirty;
		sh->dirty = false;
		service_shard(w, sh, now);
		sl_stream_unref(sh->stream);
	}
	if (w->seals_waiting)
		sl_reshard_tick(w);
	/* After the dirty shards: their acknowledged tips just moved. */
	sl_reads_parked_tick(w);
	/* One atomic load when nothing changed; drops deleted streams promptly. */
	sl_stream_cache_refresh(&w->cache, w->srv->registry);
	sl_consumers_tick(w, now);
	if (now - w->last_housekeeping_ms >= HOUSEKEEPING_INTERVAL_MS) {
		w->last_housekeeping_ms = now;
		housekeeping(w, now);
	}
	if (atomic_load_explicit(&w->srv->draining, memory_order_relaxed)) {
		if (w->listen_fd >= 0) {
			/* Stop taking connections; the multishot accept ends with the socket, which
			 * main closes once every worker stopped. */
			shutdown(w->listen_fd, SHUT_RDWR);
			w->listen_fd = -1;
		}
		bool syncing = false;
		for (size_t i = 0; i < w->cache.count; i++) {
			struct sl_stream_view *v = sl_stream_view(w->cache.all[i]);
			for (uint32_t k = 0; k < v->nshards; k++)
				syncing |= v->shards[k]->sync_inflight;
		}
		if (!syncing && !w->dirty && !sl_consumers_busy(w) && all_requests_done(w->srv))
			sl_loop_stop(loop);
	}
	/* Every callback of this round is over: no stream view pointer is held here now. */
	sl_registry_quiescent(w->srv->registry, w->id);
}

static void *worker_main(void *arg)
{
	struct sl_worker *w = arg;
	current_worker = w;
	/* Named so that top -H, perf and /proc/PID/task/TID/comm tell loops from runner threads. */
	char name[16];
	snprintf(name, sizeof(name), "sl-loop-%u", w->id);
	pthread_setname_np(pthread_self(), name);
	sl_loop_run(w->loop);
	return NULL;
}

int sl_server_start_workers(struct sl_server *srv);
int sl_server_start_workers(struct sl_server *srv)
{
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct sl_worker *w = &srv->workers[i];
		w->srv = srv;
		w->id = i;
		w->listen_fd = -1;
		sl_stream_cache_init(&w->cache);
		sl_read_batch_init(&w->read_batch);
		w->accept_op.complete = accept_done;
		struct sl_loop_config lc = {
		    .id = i, .tick = tick, .tick_ctx = w, .tick_interval_ms = 50};
		int r = sl_loop_create(&lc, &w->loop);
		if (r < 0) {
			SL_ERROR("cannot create io_uring loop: %s", strerror(-r));
			return r;
		}
		sl_loop_set_userdata(w->loop, w);
		if (i == 0) {
			r = sl_server_listen_socket(&srv->listen_addr, &srv->listen_addr);
			if (r < 0) {
				SL_ERROR("cannot listen on %s: %s", srv->cfg.listen, strerror(-r));
				return r;
			}
			srv->listen_fd = r;
		}
		w->listen_fd = srv->listen_fd;
		sl_stream_cache_refresh(&w->cache, srv->registry);
		arm_accept(w);
	}
	for (unsigned i = 0; i < srv->nworkers; i++) {
		int r =
		    pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]);
		if (r) {
			SL_ERROR("cannot start worker thread: %s", strerror(r));
			return -r;
		}
	}
	return 0;
}

void sl_server_join_workers(struct sl_server *srv);
void sl_server_join_workers(struct sl_server *srv)
{
	for (unsigned i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i].thread, NULL);
}

/* After the consumers closed: their runner threads may post to the loops until then. */
void sl_server_destroy_workers(struct sl_server *srv);
void sl_server_destroy_workers(struct sl_server *srv)
{
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct sl_worker *w = &srv->workers[i];
		sl_stream_cache_finish(&w->cache);
		sl_read_batch_finish(&w->read_batch);
		free(w->scratch_counts);
		sl_loop_destroy(w->loop);
	}
	sl_conn_free_all();
}
