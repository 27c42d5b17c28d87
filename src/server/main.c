/*
 * sluiced: the sluice server.
 *
 * Start-up: parse flags, lock the data folder (one server per folder), open every stream
 * (recovering each shard's log tail), start the workers and the HTTP thread, then wait for
 * SIGTERM/SIGINT. Shutdown drains: new requests are refused with `shutting_down`, requests in
 * flight finish and are acknowledged once durable, every log is synced and closed, exit 0.
 */
#include "server/server.h"

#include "server/consumers.h"
#ifdef SL_FAULT_INJECTION
#include "server/faults.h"
#endif

#include "common/clock.h"
#include "kinesis/gateway.h"
#include "common/logging.h"

#include <sluice/errors.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int sl_server_start_workers(struct sl_server *srv);
void sl_server_join_workers(struct sl_server *srv);
void sl_server_destroy_workers(struct sl_server *srv);

static int lock_data_dir(const char *dir)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "sluiced: cannot create data folder %s: %s\n", dir,
			strerror(errno));
		return -1;
	}
	char path[4200];
	snprintf(path, sizeof(path), "%s/LOCK", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "sluiced: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "sluiced: data folder %s is in use by another sluiced\n", dir);
		close(fd);
		return -1;
	}
	return fd; /* held until exit */
}

static int read_token(struct sl_server *srv)
{
	FILE *f = fopen(srv->cfg.auth_token_file, "r");
	if (!f) {
		fprintf(stderr, "sluiced: cannot read --auth-token-file %s: %s\n",
			srv->cfg.auth_token_file, strerror(errno));
		return -1;
	}
	size_t n = fread(srv->auth_token, 1, sizeof(srv->auth_token) - 1, f);
	/* Past the buffer only line-end whitespace may follow: never cut a token silently. */
	int extra;
	while ((extra = fgetc(f)) == '\n' || extra == '\r' || extra == ' ')
		;
	fclose(f);
	if (extra != EOF) {
		fprintf(stderr,
			"sluiced: --auth-token-file %s: the token is longer than %zu bytes\n",
			srv->cfg.auth_token_file, sizeof(srv->auth_token) - 1);
		return -1;
	}
	while (n && (srv->auth_token[n - 1] == '\n' || srv->auth_token[n - 1] == '\r' ||
		     srv->auth_token[n - 1] == ' '))
		n--;
	if (n == 0) {
		fprintf(stderr, "sluiced: --auth-token-file %s is empty\n",
			srv->cfg.auth_token_file);
		return -1;
	}
	srv->auth_token_len = n;
	return 0;
}

int main(int argc, char **argv)
{
	static struct sl_server srv;
	sl_server_config_defaults(&srv.cfg);
	int r = sl_server_config_parse(&srv.cfg, argc, argv);
	if (r != 0)
		return r > 0 ? 0 : 2;
	sl_msg_set_sink(sl_msg_stderr_sink, NULL);
	sl_msg_set_min_level((enum sl_msg_level)srv.cfg.log_level);
#ifdef SL_FAULT_INJECTION
	/* sluiced-faults only: before any log is opened, so recovery sees the faults too. */
	if (sl_fault_init() < 0)
		return 2;
#endif
	if (srv.cfg.auth_token_file[0] && read_token(&srv) < 0)
		return 1;
	if (sl_parse_listen(srv.cfg.listen, &srv.listen_addr) < 0) {
		fprintf(stderr, "sluiced: bad --listen %s\n", srv.cfg.listen);
		return 2;
	}
	int lock_fd = lock_data_dir(srv.cfg.data_dir);
	if (lock_fd < 0)
		return 1;

	/* Signals are taken by sigwait in this thread only. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	srv.nworkers = srv.cfg.threads ? srv.cfg.threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	if (srv.nworkers == 0)
		srv.nworkers = 1;
	srv.started_ms = sl_wall_ms();
	srv.listen_fd = -1;
	atomic_init(&srv.draining, false);

	struct sl_registry_config rc = {
	    .data_dir = srv.cfg.data_dir,
	    .loops = srv.nworkers,
	    .log =
		{
		    .segment_bytes_max = srv.cfg.segment_bytes,
		    .fsync_mode = srv.cfg.fsync_mode,
		    .fsync_interval_ms = srv.cfg.fsync_interval_ms,
		    .record_bytes_max = srv.cfg.max_record_bytes,
		},
	};
	int64_t t0 = sl_mono_ms();
	r = sl_registry_open(&rc, &srv.registry);
	if (r < 0) {
		fprintf(stderr, "sluiced: cannot open data folder %s: %s\n", srv.cfg.data_dir,
			sluice_strerror(r));
		return 1;
	}
	srv.workers = calloc(srv.nworkers, sizeof(*srv.workers));
	if (!srv.workers || sl_buf_pool_init(&srv.read_answers, READ_ANSWERS_KEPT_MAX,
					     READ_ANSWER_BYTES_KEPT_MAX) < 0)
		return 1;
	r = sl_consumers_open(&srv, &srv.consumers);
	if (r < 0) {
		fprintf(stderr, "sluiced: cannot load consumers: %s\n", sluice_strerror(r));
		return 1;
	}
	r = sl_server_start_workers(&srv);
	if (r < 0)
		return 1;
	struct kin_gateway *gateway = NULL;
	bool http = strcmp(srv.cfg.http_listen, "off") != 0;
	if (http) {
		/* The gateway is a client of our own native listener (0.0.0.0 is reached on
		 * loopback), with the server's token: cross-protocol consistency for free. */
		char native[64], token[sizeof(srv.auth_token) + 1];
		struct in_addr a = srv.listen_addr.sin_addr;
		if (a.s_addr == htonl(INADDR_ANY))
			a.s_addr = htonl(INADDR_LOOPBACK);
		char host[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &a, host, sizeof(host));
		snprintf(native, sizeof(native), "%s:%u", host, ntohs(srv.listen_addr.sin_port));
		memcpy(token, srv.auth_token, srv.auth_token_len);
		token[srv.auth_token_len] = '\0';
		struct kin_gateway_config gc = {
		    .listen = srv.cfg.http_listen,
		    .api =
			{
			    .native_addr = native,
			    .auth_token = srv.auth_token_len ? token : NULL,
			    .shard_limits = srv.cfg.kinesis_shard_limits,
			    /* SigV4: the token is every access key's secret, except the keys of
			     * --http-access-keys (docs/kinesis.md#authentication). */
			    .any_key_secret = srv.auth_token_len ? token : NULL,
			    .access_keys_path =
				srv.cfg.http_access_keys[0] ? srv.cfg.http_access_keys : NULL,
			},
		    .max_connections = srv.cfg.http_max_connections,
		    .get = sl_http_get,
		    .get_ctx = &srv,
		};
		uint16_t http_port;
		char err[512] = "";
		r = kin_gateway_start(&gc, &gateway, &http_port, err, sizeof(err));
		if (r == 0) {
			SL_INFO("http (/healthz, /metrics) on %s:%u", host, http_port);
			SL_INFO("kinesis API (HTTP/1.1, h2c) on port %u, native calls to %s",
				http_port, native);
		}
		if (r < 0) {
			fprintf(stderr, "sluiced: cannot start the HTTP gateway on %s: %s\n",
				srv.cfg.http_listen, err[0] ? err : strerror(-r));
			return 1;
		}
	}
	static const char *modes[] = {"group", "interval", "never"};
	char addr[64];
	inet_ntop(AF_INET, &srv.listen_addr.sin_addr, addr, sizeof(addr));
	SL_INFO("sluiced %s listening on %s:%u (%u threads, fsync %s, data %s, opened in %lld ms)",
		SLUICE_VERSION, addr, ntohs(srv.listen_addr.sin_port), srv.nworkers,
		modes[srv.cfg.fsync_mode], srv.cfg.data_dir, (long long)(sl_mono_ms() - t0));
	/* A machine-readable line for scripts and tests that asked for port 0. */
	printf("listening %s:%u\n", addr, ntohs(srv.listen_addr.sin_port));
	fflush(stdout);

	int sig;
	sigwait(&sigs, &sig);
	SL_INFO("signal %d: draining", sig);
	atomic_store(&srv.draining, true);
	/* Before the workers: the gateway's requests in flight still get their native answers. */
	kin_gateway_stop(gateway);
	sl_server_join_workers(&srv);
	if (srv.listen_fd >= 0)
		close(srv.listen_fd);
	sl_consumers_close(srv.consumers);
	sl_server_destroy_workers(&srv);
	sl_buf_pool_finish(&srv.read_answers);
	sl_registry_close(srv.registry);
	free(srv.workers);
	SL_INFO("stopped cleanly");
	close(lock_fd);
	return 0;
}
