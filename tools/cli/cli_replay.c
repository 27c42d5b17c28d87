/*
 * sluice replay STREAM --from POS --into OTHER: copy a range of records of some or all shards
 * into another stream, while producers may keep writing to the source.
 *
 * Reading: each shard with the native READ (a shard reader), from --from up to --to, or, by
 * default, up to the shard's tip when the replay started, so a replay of a live stream ends.
 * Writing: the asynchronous producer of libsluice with one connection and one request in flight
 * (max_inflight_requests = 1), the setting under which the producer guarantees that records of
 * one partition key are stored in send order, even through retries. Shards are copied one after
 * the other, each in sequence order.
 *
 * Keys and order: with --keep-keys each record keeps its partition key and is routed by it in
 * the target, so the order per partition key is preserved. Without it, the partition key of
 * every copied record is its source shard id ("shardId-000000000003"): all records of a source
 * shard go to one target shard, in their source order (the whole source shard is the unit of
 * order), and the original keys are not kept.
 *
 * Memory: one read batch (SLUICE_READ_BYTES_DEFAULT) plus the producer's buffer
 * (REPLAY_BUFFER_BYTES), whatever the range.
 */
#include "cli.h"

#include "common/clock.h"

#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char replay_usage[] =
    "usage: sluice replay NAME [--shard ID ...] --from POS [--to POS] --into OTHER [--keep-keys]\n"
    "  --shard ID    a shard to copy (repeatable; default: every shard)\n"
    "  --from POS    trim-horizon, seq:N, time:ISO8601\n"
    "  --to POS      seq:N (included), time:T (records that arrived before T), latest\n"
    "                (default: each shard's tip when the replay starts)\n"
    "  --into OTHER  the stream to write to (it must exist)\n"
    "  --keep-keys   keep the partition keys (routed by key, order kept per key); without it\n"
    "                the key becomes the source shard id (order kept per source shard)\n";

#define REPLAY_BUFFER_BYTES (32ull << 20)
#define REPLAY_SHARDS_MAX 4096

struct replay_stats {
	_Atomic uint64_t acked;
	_Atomic uint64_t failed;
	_Atomic int first_error;
};

static void on_done(void *ctx, int status, uint32_t shard_id, uint64_t seq)
{
	struct replay_stats *st = ctx;
	if (status == 0) {
		atomic_fetch_add_explicit(&st->acked, 1, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&st->failed, 1, memory_order_relaxed);
	int zero = 0;
	atomic_compare_exchange_strong(&st->first_error, &zero, status);
}

int cli_replay(const struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"shard", required_argument, NULL, 's'},
	    {"from", required_argument, NULL, 'f'},
	    {"to", required_argument, NULL, 't'},
	    {"into", required_argument, NULL, 'i'},
	    {"keep-keys", no_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static uint32_t shards[REPLAY_SHARDS_MAX];
	size_t nshards = 0;
	bool have_from = false, keep_keys = false;
	struct sluice_position from = {0};
	struct sluice_position to = {.type = SLUICE_POS_LATEST};
	const char *into = NULL;
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			if (nshards == REPLAY_SHARDS_MAX ||
			    cli_parse_shard_id(optarg, &shards[nshards]) < 0)
				return cli_usage_error("replay", "bad --shard %s", optarg);
			nshards++;
			break;
		case 'f':
			if (cli_parse_position(optarg, &from) < 0 || from.type == SLUICE_POS_LATEST)
				return cli_usage_error("replay", "bad --from %s", optarg);
			have_from = true;
			break;
		case 't':
			if (cli_parse_position(optarg, &to) < 0 ||
			    to.type == SLUICE_POS_TRIM_HORIZON)
				return cli_usage_error("replay", "bad --to %s", optarg);
			break;
		case 'i':
			into = optarg;
			break;
		case 'k':
			keep_keys = true;
			break;
		case 'h':
			fputs(replay_usage, stdout);
			return CLI_EXIT_OK;
		default:
			fputs(replay_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || !have_from || !into)
		return cli_usage_error("replay", "give one stream NAME, --from and --into");
	const char *stream = argv[optind];
	if (strcmp(stream, into) == 0)
		return cli_usage_error("replay", "--into must name another stream");

	struct sluice_client *c;
	if (cli_connect(cli, "replay", &c) != 0)
		return CLI_EXIT_FAILED;
	int ret = CLI_EXIT_FAILED;
	struct sluice_stream_info *src = NULL, *dst = NULL;
	struct sluice_producer *p = NULL;
	struct sluice_shard_reader *rd = NULL;
	struct replay_stats st = {0};
	int r = sluice_stream_describe(c, stream, &src);
	r = r ?: sluice_stream_describe(c, into, &dst);
	if (r < 0) {
		cli_fail_client("replay", c, r);
		goto out;
	}
	if (nshards == 0) {
		for (size_t i = 0; i < src->shard_count && i < REPLAY_SHARDS_MAX; i++)
			shards[nshards++] = src->shards[i].shard_id;
	}
	struct sluice_producer_options po = {
	    .connections = 1,
	    .max_inflight_requests = 1, /* per-key order, even through retries */
	    .buffer_bytes_max = REPLAY_BUFFER_BYTES,
	    .auth_token = cli->auth_token,
	};
	r = sluice_producer_create(cli->server, &po, &p);
	if (r < 0) {
		cli_fail("replay", "cannot connect to %s: %s", cli->server, sluice_strerror(r));
		goto out;
	}
	int64_t started = sl_mono_ms(), last_report = started;
	uint64_t sent = 0, bytes = 0;
	for (size_t k = 0; k < nshards; k++) {
		uint32_t shard = shards[k];
		struct sluice_read_result tip;
		sluice_read_result_init(&tip);
		r = sluice_read(c, stream, shard, &(struct sluice_position){SLUICE_POS_LATEST, 0},
				1, 0, &tip);
		uint64_t end = tip.tip_seq; /* exclusive: the tip now */
		sluice_read_result_finish(&tip);
		if (r < 0) {
			cli_fail_client("replay", c, r);
			goto out;
		}
		if (to.type == SLUICE_POS_AT_SEQ && to.value + 1 < end)
			end = to.value + 1;
		r = sluice_shard_reader_create(c, stream, shard, &from, &rd);
		if (r < 0) {
			cli_fail_client("replay", c, r);
			goto out;
		}
		char shard_key[32];
		int shard_key_len = snprintf(shard_key, sizeof(shard_key), "shardId-%012u", shard);
		bool done = false;
		while (!done) {
			const struct sluice_read_result *b;
			r = sluice_shard_reader_next(rd, 0, 0, &b);
			if (r < 0) {
				cli_fail_client("replay", c, r);
				goto out;
			}
			for (size_t i = 0; i < b->count; i++) {
				const struct sluice_record *rec = &b->records[i];
				if (rec->seq >= end || (to.type == SLUICE_POS_AT_TIMESTAMP &&
							rec->ts_ms >= (int64_t)to.value)) {
					done = true;
					break;
				}
				r = sluice_producer_send(p, into, keep_keys ? rec->key : shard_key,
							 keep_keys ? rec->key_len
								   : (size_t)shard_key_len,
							 rec->data, rec->data_len, on_done, &st);
				if (r < 0) {
					cli_fail("replay", "shard %u seq %llu: %s", shard,
						 (unsigned long long)rec->seq, sluice_strerror(r));
					goto out;
				}
				sent++;
				bytes += rec->data_len;
			}
			if (b->count == 0 || b->next_seq >= end)
				done = true;
			int64_t now = sl_mono_ms();
			if (now - last_report >= 1000) {
				last_report = now;
				fprintf(
				    stderr,
				    "replay: shard %u: %llu records sent, %llu stored (%.1f MB)\n",
				    shard, (unsigned long long)sent,
				    (unsigned long long)atomic_load(&st.acked),
				    (double)bytes / 1e6);
			}
		}
		sluice_shard_reader_destroy(rd);
		rd = NULL;
	}
	r = sluice_producer_flush(p, -1);
	double secs = (double)(sl_mono_ms() - started) / 1000.0;
	uint64_t acked = atomic_load(&st.acked), failed = atomic_load(&st.failed);
	fprintf(stderr,
		"replay: done: %s -> %s: %zu shards, %llu records copied (%.1f MB), %llu failed, "
		"%.1f s\n",
		stream, into, nshards, (unsigned long long)acked, (double)bytes / 1e6,
		(unsigned long long)failed, secs);
	if (r < 0 || failed) {
		cli_fail("replay", "%llu records could not be stored: %s",
			 (unsigned long long)failed,
			 sluice_strerror(r < 0 ? r : atomic_load(&st.first_error)));
		goto out;
	}
	ret = CLI_EXIT_OK;
out:
	sluice_shard_reader_destroy(rd);
	sluice_producer_destroy(p);
	sluice_stream_info_free(src);
	sluice_stream_info_free(dst);
	sluice_client_close(c);
	return ret;
}
