/*
 * sluice get NAME: print the records of one shard or of all shards, from a position, up to the
 * tip (or forever with --follow, until SIGINT/SIGTERM). Closed shards (parents of a reshard) are
 * read too; with --follow, when a shard is read to its end its children are picked up, from
 * their first record.
 */
#include "base64.h"
#include "cli.h"

#include "common/units.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char get_usage[] =
    "usage: sluice get NAME [--shard ID] [--from POSITION] [--max N] [--follow]\n"
    "                       [--format raw|json]\n"
    "  --shard ID     3 or shardId-000000000003 (default: every shard)\n"
    "  --from POS     trim-horizon (default), latest, seq:N, time:ISO8601\n"
    "  --max N        stop after N records\n"
    "  --follow       keep reading new records until interrupted; follows the\n"
    "                 children of a shard closed by a reshard\n"
    "  --format F     raw: the data and a newline (default); json: one object per line\n";

/* Sleep between polls when every shard is caught up: short enough to feel live. */
#define FOLLOW_POLL_MS 200
/* With one shard left to follow, its reads wait on the server this long (long poll): a record
 * shows as soon as it is acknowledged, without polling. Also bounds how long SIGINT waits. */
#define FOLLOW_WAIT_MS 1000
/* Records per read: the server's own limit. */
#define READ_RECORDS 10000u

enum format { FORMAT_RAW, FORMAT_JSON };

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

struct get_out {
	enum format format;
	const char *stream;
	char *stream_json; /* the stream name as a JSON string, quotes included */
	char *b64;
	size_t b64_cap;
	uint64_t printed;
	uint64_t max;
};

static int print_record(struct get_out *out, uint32_t shard, const struct sluice_record *rec)
{
	if (out->format == FORMAT_RAW) {
		fwrite(rec->data, 1, rec->data_len, stdout);
		fputc('\n', stdout);
		return 0;
	}
	json_t *k = json_stringn_nocheck(rec->key, rec->key_len);
	char *key = k ? json_dumps(k, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	json_decref(k);
	long n = cli_base64_encode(rec->data, rec->data_len, &out->b64, &out->b64_cap);
	if (!key || n < 0) {
		free(key);
		return -ENOMEM;
	}
	printf("{\"stream\":%s,\"shard\":\"shardId-%012u\",\"seq\":\"%llu\",\"ts\":%lld,"
	       "\"key\":%s,\"data\":\"%s\"}\n",
	       out->stream_json, shard, (unsigned long long)rec->seq, (long long)rec->ts_ms, key,
	       out->b64);
	free(key);
	return 0;
}

/* Print a batch; returns 1 once --max is reached. */
static int print_batch(struct get_out *out, const struct sluice_read_result *res)
{
	for (size_t i = 0; i < res->count; i++) {
		if (out->max && out->printed >= out->max)
			return 1;
		if (print_record(out, res->shard_id, &res->records[i]) < 0)
			return -ENOMEM;
		out->printed++;
	}
	return out->max && out->printed >= out->max ? 1 : 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL); /* EINTR from a signal: the loop checks stop_requested */
}

/* The shard readers of a get: one per shard id, with whether each is finished. */
struct get_shards {
	uint32_t *ids;
	struct sluice_shard_reader **readers;
	bool *done;
	size_t n, cap;
};

static int get_shards_add(struct get_shards *g, struct sluice_client *c, const char *stream,
			  uint32_t id, const struct sluice_position *from)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->ids[i] == id)
			return 0;
	if (g->n == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 16;
		uint32_t *ids = realloc(g->ids, cap * sizeof(*ids));
		if (ids)
			g->ids = ids;
		struct sluice_shard_reader **rs = realloc(g->readers, cap * sizeof(*rs));
		if (rs)
			g->readers = rs;
		bool *done = realloc(g->done, cap * sizeof(*done));
		if (done)
			g->done = done;
		if (!ids || !rs || !done)
			return -ENOMEM;
		g->cap = cap;
	}
	int r = sluice_shard_reader_create(c, stream, id, from, &g->readers[g->n]);
	if (r < 0)
		return r;
	g->ids[g->n] = id;
	g->done[g->n] = false;
	g->n++;
	return 1;
}

/* Every shard of the stream not read yet (children of a reshard), from their first record. */
static int get_shards_refresh(struct get_shards *g, struct sluice_client *c, const char *stream,
			      const struct sluice_position *from, size_t *ret_added)
{
	struct sluice_shard_info *shards;
	size_t n;
	int r = sluice_list_shards(c, stream, &shards, &n);
	if (r < 0)
		return r;
	*ret_added = 0;
	for (size_t i = 0; r >= 0 && i < n; i++) {
		r = get_shards_add(g, c, stream, shards[i].shard_id, from);
		if (r > 0)
			(*ret_added)++;
	}
	sluice_shards_free(shards);
	return r < 0 ? r : 0;
}

static void get_shards_finish(struct get_shards *g)
{
	for (size_t i = 0; i < g->n; i++)
		sluice_shard_reader_destroy(g->readers[i]);
	free(g->readers);
	free(g->done);
	free(g->ids);
}

int cli_get(const struct cli *cli_in, int argc, char **argv)
{
	struct cli cli = *cli_in;
	static const char what[] = "get";
	static const struct option opts[] = {
	    {"shard", required_argument, NULL, 'i'},  {"from", required_argument, NULL, 'F'},
	    {"max", required_argument, NULL, 'm'},    {"follow", no_argument, NULL, 'f'},
	    {"format", required_argument, NULL, 'o'}, {"server", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},	      {0},
	};
	if (cli_wants_help(argc, argv)) {
		fputs(get_usage, stdout);
		return CLI_EXIT_OK;
	}
	struct get_out out = {.format = FORMAT_RAW};
	struct sluice_position from = {.type = SLUICE_POS_TRIM_HORIZON};
	bool one_shard = false, follow = false;
	uint32_t shard_id = 0;
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (o) {
		case 'i':
			if (cli_parse_shard_id(optarg, &shard_id) < 0)
				return cli_usage_error(what, "bad --shard '%s'", optarg);
			one_shard = true;
			break;
		case 'F':
			if (cli_parse_position(optarg, &from) < 0)
				return cli_usage_error(what, "bad --from '%s'", optarg);
			break;
		case 'm':
			if (sl_parse_u64(optarg, &out.max) < 0 || out.max == 0)
				return cli_usage_error(what, "--max wants a positive number");
			break;
		case 'f':
			follow = true;
			break;
		case 'o':
			if (strcmp(optarg, "raw") == 0)
				out.format = FORMAT_RAW;
			else if (strcmp(optarg, "json") == 0)
				out.format = FORMAT_JSON;
			else
				return cli_usage_error(what, "--format wants raw or json");
			break;
		case 's':
			cli.server = optarg;
			break;
		case ':':
			return cli_usage_error(what, "%s needs a value", argv[optind - 1]);
		default:
			return cli_usage_error(what, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(what, "wants one stream NAME");
	out.stream = argv[optind];

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: a blocked poll returns at once */
	sigaction(SIGTERM, &sa, NULL);

	struct sluice_client *c;
	int r = cli_connect(&cli, what, &c);
	if (r)
		return r;
	int ret = CLI_EXIT_OK;
	struct get_shards g = {0};
	json_t *sj = json_string(out.stream);
	out.stream_json = sj ? json_dumps(sj, JSON_ENCODE_ANY) : NULL;
	json_decref(sj);
	if (!out.stream_json) {
		ret = cli_fail(what, "%s", sluice_strerror(SLUICE_ERR_INVALID_NAME));
		goto out;
	}
	const struct sluice_position first = {.type = SLUICE_POS_TRIM_HORIZON};
	size_t added;
	r = one_shard ? get_shards_add(&g, c, out.stream, shard_id, &from)
		      : get_shards_refresh(&g, c, out.stream, &from, &added);
	if (r < 0) {
		ret = cli_fail_client(what, c, r);
		goto out;
	}

	/*
	 * Without --follow, each shard is read until its tip and then dropped; with --follow the
	 * shards are polled round-robin, sleeping when a whole round found nothing, and a shard
	 * read to its end (closed by a reshard) makes way for its children. When one shard is
	 * left (--shard, a one-shard stream), its reads long-poll instead: no sleep, no delay.
	 */
	size_t active = g.n;
	while (active > 0 && !stop_requested) {
		bool any = false, ended = false;
		for (size_t i = 0; i < g.n && !stop_requested; i++) {
			if (g.done[i])
				continue;
			const struct sluice_read_result *res;
			uint64_t before = sluice_shard_reader_position(g.readers[i]).value;
			if (follow)
				sluice_shard_reader_set_wait(g.readers[i],
							     active == 1 ? FOLLOW_WAIT_MS : 0);
			int n = sluice_shard_reader_next(g.readers[i], READ_RECORDS, 0, &res);
			if (n < 0) {
				if (stop_requested)
					break;
				ret = cli_fail_client(what, c, n);
				goto out;
			}
			r = print_batch(&out, res);
			if (r < 0) {
				ret = cli_fail(what, "out of memory");
				goto out;
			}
			if (r > 0)
				goto out; /* --max reached */
			if (n > 0)
				any = true;
			bool stuck = n == 0 && res->next_seq == before;
			if (res->shard_ended ||
			    (!follow && (sluice_shard_reader_caught_up(g.readers[i]) || stuck))) {
				ended |= res->shard_ended;
				g.done[i] = true;
				active--;
			}
		}
		if (follow && ended && !one_shard && !stop_requested) {
			r = get_shards_refresh(&g, c, out.stream, &first, &added);
			if (r < 0) {
				ret = cli_fail_client(what, c, r);
				goto out;
			}
			active += added;
		}
		if (follow && !any && !stop_requested) {
			fflush(stdout);
			if (active > 1)
				sleep_ms(FOLLOW_POLL_MS);
		}
	}
out:
	if (fflush(stdout) != 0 && ret == CLI_EXIT_OK)
		ret = cli_fail(what, "writing output: %s", strerror(errno));
	get_shards_finish(&g);
	free(out.b64);
	free(out.stream_json);
	sluice_client_close(c);
	return ret;
}
