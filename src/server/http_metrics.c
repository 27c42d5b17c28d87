/*
 * /healthz and /metrics (Prometheus text format), answered for the HTTP gateway on
 * --http-listen (src/kinesis/gateway.c, which also serves the Kinesis JSON API there) on its
 * own threads, so that scraping never touches the event loops. Counters are read with relaxed
 * atomic loads from the workers and shards that own them.
 */
#include "server/server.h"

#include "server/consumers.h"

#include "common/clock.h"
#include "common/logging.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t sum(struct sl_server *srv, size_t field_offset)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < srv->nworkers; i++) {
		_Atomic uint64_t *p =
		    (_Atomic uint64_t *)((char *)&srv->workers[i].m + field_offset);
		total += atomic_load_explicit(p, memory_order_relaxed);
	}
	return total;
}

static void render_metrics(struct sl_server *srv, struct sl_buf *b)
{
	static const struct {
		const char *name;
		const char *help;
		size_t off;
	} counters[] = {
#define C(field, help) {"sluice_" #field "_total", help, offsetof(struct sl_worker_metrics, field)}
	    C(requests, "Requests received on the native protocol."),
	    C(request_errors, "Requests answered with an error."),
	    C(records_produced, "Records acknowledged to producers."),
	    C(bytes_produced, "Record data bytes appended."),
	    C(records_rejected, "Records refused individually (bad key, too large)."),
	    C(records_read, "Records returned to readers."),
	    C(reads_waited, "READs that waited on the server for records (long poll)."),
	    C(syncs, "fdatasync calls completed by group commit."),
	    C(frames_rejected, "Frames that closed their connection."),
	    C(connections_accepted, "Connections accepted."),
	    C(connections_refused, "Connections refused (limit or shutdown)."),
	    C(auth_failures, "Requests refused for a missing or wrong token."),
	    C(reshards, "Splits, merges and scales published."),
	    C(reshards_failed, "Reshards abandoned after their parents were sealed."),
	    C(parts_parked, "Produce parts that waited on a shard being resharded."),
	    C(parts_rerouted, "Produce parts routed again to the children of a closed shard."),
	    C(parts_appended_here, "Produce parts appended by the loop that received them to a "
				   "shard another loop owns."),
#undef C
	};
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		(void)sl_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n",
				    counters[i].name, counters[i].help, counters[i].name,
				    counters[i].name,
				    (unsigned long long)sum(srv, counters[i].off));
	}
	sl_latency_hist_render(b, "sluice_fsync_duration_seconds",
			       "Group commit fdatasync calls, from start to completion.",
			       srv->workers, srv->nworkers, sizeof(srv->workers[0]),
			       offsetof(struct sl_worker, m.fsync_duration));
	sl_latency_hist_render(b, "sluice_produce_duration_seconds",
			       "PRODUCE requests on the native protocol, from arrival (whole frame "
			       "received) to answer (queued to send).",
			       srv->workers, srv->nworkers, sizeof(srv->workers[0]),
			       offsetof(struct sl_worker, m.produce_duration));
	(void)sl_buf_printf(
	    b,
	    "# HELP sluice_connections Open connections.\n# TYPE sluice_connections gauge\n"
	    "sluice_connections %u\n",
	    sl_conn_count());
	unsigned parked = 0;
	for (unsigned i = 0; i < srv->nworkers; i++)
		parked +=
		    atomic_load_explicit(&srv->workers[i].reads_parked_n, memory_order_relaxed);
	(void)sl_buf_printf(
	    b,
	    "# HELP sluice_reads_parked READs waiting for records (long poll, wait_ms).\n"
	    "# TYPE sluice_reads_parked gauge\nsluice_reads_parked %u\n",
	    parked);
	(void)sl_buf_printf(
	    b,
	    "# HELP sluice_uptime_seconds Seconds since start.\n# TYPE sluice_uptime_seconds "
	    "gauge\nsluice_uptime_seconds %lld\n",
	    (long long)((sl_wall_ms() - srv->started_ms) / 1000));

	struct sl_stream **list;
	size_t n;
	if (sl_registry_list(srv->registry, &list, &n, NULL) < 0)
		return;
	/* Stream views are read from here to the release: see registry.h, reclamation. */
	unsigned reader = sl_registry_reader_other(srv->registry);
	sl_registry_online(srv->registry, reader);
	(void)sl_buf_printf(
	    b,
	    "# HELP sluice_stream_views_retired Shard maps replaced by a reshard, not freed yet.\n"
	    "# TYPE sluice_stream_views_retired gauge\nsluice_stream_views_retired %zu\n",
	    sl_registry_views_retired(srv->registry));
	(void)sl_buf_printf(
	    b, "# HELP sluice_streams Streams.\n# TYPE sluice_streams gauge\nsluice_streams %zu\n",
	    n);
	static const struct {
		const char *name, *help, *type;
		size_t off;
	} per_shard[] = {
	    {"sluice_shard_records_in_total", "Records appended per shard.", "counter",
	     offsetof(struct sl_shard, records_in)},
	    {"sluice_shard_bytes_in_total", "Data bytes appended per shard.", "counter",
	     offsetof(struct sl_shard, bytes_in)},
	    {"sluice_shard_next_sequence", "The sequence number the next record gets.", "gauge",
	     offsetof(struct sl_shard, next_seq)},
	};
	for (size_t j = 0; j < sizeof(per_shard) / sizeof(per_shard[0]); j++) {
		(void)sl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", per_shard[j].name,
				    per_shard[j].help, per_shard[j].name, per_shard[j].type);
		for (size_t i = 0; i < n; i++) {
			/* Every shard of the current view, closed ones included. */
			const struct sl_stream_view *v = sl_stream_view(list[i]);
			for (uint32_t k = 0; k < v->nshards; k++) {
				_Atomic uint64_t *x =
				    (_Atomic uint64_t *)((char *)v->shards[k] + per_shard[j].off);
				(void)sl_buf_printf(b, "%s{stream=\"%s\",shard=\"%u\"} %llu\n",
						    per_shard[j].name, list[i]->name,
						    v->shards[k]->id,
						    (unsigned long long)atomic_load(x));
			}
		}
	}
	(void)sl_buf_printf(
	    b, "# HELP sluice_shard_failed 1 when the shard refuses writes after an I/O failure.\n"
	       "# TYPE sluice_shard_failed gauge\n");
	for (size_t i = 0; i < n; i++) {
		const struct sl_stream_view *v = sl_stream_view(list[i]);
		for (uint32_t k = 0; k < v->nshards; k++)
			(void)sl_buf_printf(b,
					    "sluice_shard_failed{stream=\"%s\",shard=\"%u\"} %d\n",
					    list[i]->name, v->shards[k]->id,
					    atomic_load(&v->shards[k]->failed) ? 1 : 0);
	}
	sl_registry_offline(srv->registry, reader);
	sl_registry_release_list(list, n);
	if (srv->consumers)
		sl_consumers_render_metrics(srv->consumers, b);
}

int sl_http_get(void *ctx, const char *path, struct sl_buf *body, const char **ret_content_type)
{
	struct sl_server *srv = ctx;
	sl_buf_reset(body);
	if (strcmp(path, "/healthz") == 0) {
		bool draining = atomic_load(&srv->draining);
		const char *text = draining ? "draining\n" : "ok\n";
		sl_buf_put(body, text, strlen(text));
		*ret_content_type = "text/plain";
		return draining ? 503 : 200;
	}
	if (strcmp(path, "/metrics") == 0) {
		render_metrics(srv, body);
		*ret_content_type = "text/plain; version=0.0.4";
		return 200;
	}
	return 0;
}
