/* sluice consumer create|list|describe|delete|reset */
#include "cli.h"

#include "common/units.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char consumer_usage[] =
    "usage: sluice consumer create NAME --stream S --handler exec:CMD|plugin:PATH|remote\n"
    "           [--batch-size N] [--batch-window MS] [--start trim-horizon|latest|time:T]\n"
    "           [--max-retries N] [--max-record-age SECONDS] [--bisect-on-error]\n"
    "           [--on-failure STREAM] [--parallelism N] [--timeout MS]\n"
    "       sluice consumer list [--format text|json]\n"
    "       sluice consumer describe NAME [--format text|json]\n"
    "       sluice consumer delete NAME\n"
    "       sluice consumer reset NAME --to trim-horizon|latest|seq:N|time:ISO8601 [--shard ID]\n"
    "\n"
    "Durations also take units: --batch-window 500ms, --timeout 30s, --max-record-age 1h; a plain\n"
    "number is in the unit the flag names. --max-retries -1 and --max-record-age -1 (the\n"
    "defaults) mean: until the records expire.\n";

enum format { FORMAT_TEXT, FORMAT_JSON };

struct consumer_args {
	const char *stream;
	const char *handler;
	struct sluice_consumer_options opts;
	enum format format;
	const char *to;
	bool shard_set;
	uint32_t shard_id;
};

/* Whether s is a plain decimal number (no unit). */
static bool plain_number(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/*
 * A duration for a flag whose plain numbers are in unit_ms (1 for MS flags, 1000 for SECONDS
 * flags); with units it follows the project syntax (500ms, 30s, 5m, 1h, 7d). The result is in
 * the flag's unit and must be exact. allow_minus_one: "-1" is accepted as -1.
 */
static int parse_flag_duration(const char *s, int64_t unit_ms, bool allow_minus_one, int64_t *ret)
{
	if (allow_minus_one && strcmp(s, "-1") == 0) {
		*ret = -1;
		return 0;
	}
	if (plain_number(s)) {
		uint64_t v;
		if (sl_parse_u64(s, &v) < 0 || v > INT64_MAX)
			return -ERANGE;
		*ret = (int64_t)v;
		return 0;
	}
	int64_t ms;
	int r = sl_parse_duration_ms(s, &ms);
	if (r < 0)
		return r;
	if (ms < 0 || ms % unit_ms != 0)
		return -EINVAL;
	*ret = ms / unit_ms;
	return 0;
}

static int parse_u32_flag(const char *what, const char *flag, const char *s, uint32_t max,
			  uint32_t *ret)
{
	uint64_t v;
	if (sl_parse_u64(s, &v) < 0 || v > max)
		return cli_usage_error(what, "%s wants 0..%" PRIu32 ", not '%s'", flag, max, s);
	*ret = (uint32_t)v;
	return 0;
}

static int parse_args(struct cli *cli, const char *what, int argc, char **argv,
		      struct consumer_args *a)
{
	static const struct option opts[] = {
	    {"stream", required_argument, NULL, 'S'},
	    {"handler", required_argument, NULL, 'H'},
	    {"batch-size", required_argument, NULL, 'b'},
	    {"batch-window", required_argument, NULL, 'w'},
	    {"start", required_argument, NULL, 'p'},
	    {"max-retries", required_argument, NULL, 'r'},
	    {"max-record-age", required_argument, NULL, 'A'},
	    {"bisect-on-error", no_argument, NULL, 'B'},
	    {"on-failure", required_argument, NULL, 'F'},
	    {"parallelism", required_argument, NULL, 'P'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"format", required_argument, NULL, 'f'},
	    {"to", required_argument, NULL, 't'},
	    {"shard", required_argument, NULL, 'i'},
	    {"server", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int o;
	int64_t v;
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (o) {
		case 'S':
			a->stream = optarg;
			break;
		case 'H':
			a->handler = optarg;
			break;
		case 'b':
			if (parse_u32_flag(what, "--batch-size", optarg, UINT32_MAX,
					   &a->opts.batch_size))
				return CLI_EXIT_USAGE;
			break;
		case 'w':
			if (parse_flag_duration(optarg, 1, false, &v) < 0 || v > UINT32_MAX)
				return cli_usage_error(
				    what, "bad --batch-window '%s' (MS or 500ms)", optarg);
			a->opts.batch_window_ms = (uint32_t)v;
			break;
		case 'p': {
			struct sluice_position pos;
			if (cli_parse_position(optarg, &pos) < 0 || pos.type == SLUICE_POS_AT_SEQ)
				return cli_usage_error(
				    what, "--start wants trim-horizon, latest or time:T, not '%s'",
				    optarg);
			a->opts.start = pos;
			break;
		}
		case 'r': {
			char *end;
			errno = 0;
			long long n = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg || n < -1 || n > INT32_MAX)
				return cli_usage_error(
				    what, "--max-retries wants -1 or 0.., not '%s'", optarg);
			a->opts.max_retries = (int32_t)n;
			break;
		}
		case 'A':
			if (parse_flag_duration(optarg, 1000, true, &v) < 0)
				return cli_usage_error(
				    what, "bad --max-record-age '%s' (SECONDS, 1h, or -1)", optarg);
			a->opts.max_record_age_s = v;
			break;
		case 'B':
			a->opts.bisect_on_error = true;
			break;
		case 'F':
			a->opts.on_failure = optarg;
			break;
		case 'P':
			if (parse_u32_flag(what, "--parallelism", optarg, UINT32_MAX,
					   &a->opts.parallelism))
				return CLI_EXIT_USAGE;
			break;
		case 'T':
			if (parse_flag_duration(optarg, 1, false, &v) < 0 || v > UINT32_MAX)
				return cli_usage_error(what, "bad --timeout '%s' (MS or 30s)",
						       optarg);
			a->opts.timeout_ms = (uint32_t)v;
			break;
		case 'f':
			if (strcmp(optarg, "json") == 0)
				a->format = FORMAT_JSON;
			else if (strcmp(optarg, "text") == 0)
				a->format = FORMAT_TEXT;
			else
				return cli_usage_error(what, "--format wants text or json");
			break;
		case 't':
			a->to = optarg;
			break;
		case 'i':
			if (cli_parse_shard_id(optarg, &a->shard_id) < 0)
				return cli_usage_error(what, "bad --shard '%s'", optarg);
			a->shard_set = true;
			break;
		case 's':
			cli->server = optarg;
			break;
		case ':':
			return cli_usage_error(what, "%s needs a value", argv[optind - 1]);
		default:
			return cli_usage_error(what, "unknown option '%s'", argv[optind - 1]);
		}
	}
	return -1;
}

static int print_json(const char *what, json_t *j)
{
	if (!j)
		return cli_fail(what, "out of memory");
	int r = json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(j);
	return r < 0 ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

static void shard_name(uint32_t id, char out[24])
{
	snprintf(out, 24, "shardId-%012" PRIu32, id);
}

/* "trim-horizon", "latest" or "time:2026-...Z". */
static void start_text(const struct sluice_position *p, char *out, size_t len)
{
	if (p->type == SLUICE_POS_TRIM_HORIZON) {
		snprintf(out, len, "trim-horizon");
	} else if (p->type == SLUICE_POS_LATEST) {
		snprintf(out, len, "latest");
	} else if (p->type == SLUICE_POS_AT_TIMESTAMP) {
		char ts[64];
		sl_format_timestamp((int64_t)p->value, ts, sizeof(ts));
		snprintf(out, len, "time:%s", ts);
	} else {
		snprintf(out, len, "unknown(%d)", (int)p->type);
	}
}

static json_t *u64_json(uint64_t v)
{
	char s[24];
	snprintf(s, sizeof(s), "%" PRIu64, v);
	return json_string(s);
}

static int describe_json(const char *what, const struct sluice_consumer_info *info)
{
	char created[64], start[96];
	sl_format_timestamp(info->created_ms, created, sizeof(created));
	start_text(&info->options.start, start, sizeof(start));
	json_t *shards = json_array();
	for (size_t i = 0; shards && i < info->shard_count; i++) {
		const struct sluice_consumer_shard_status *s = &info->shards[i];
		char id[24];
		shard_name(s->shard_id, id);
		json_array_append_new(
		    shards,
		    json_pack("{s:s, s:o, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:s}", "shard",
			      id, "checkpoint_seq", u64_json(s->checkpoint_seq), "lag_records",
			      (json_int_t)s->lag_records, "lag_ms", (json_int_t)s->lag_ms, "state",
			      sluice_consumer_state_name(s->state), "delivered",
			      (json_int_t)s->delivered, "batches_failed",
			      (json_int_t)s->batches_failed, "retries", (json_int_t)s->retries,
			      "sent_to_on_failure", (json_int_t)s->sent_to_on_failure, "expired",
			      (json_int_t)s->expired, "last_error", s->last_error));
	}
	const struct sluice_consumer_options *o = &info->options;
	json_t *j = json_pack(
	    "{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I, s:b, s:o, s:I, s:I, s:I, s:s, s:o}",
	    "name", info->name, "stream", info->stream, "handler_kind",
	    sluice_handler_kind_name(info->handler_kind), "handler_target", info->handler_target,
	    "batch_size", (json_int_t)o->batch_size, "batch_window_ms",
	    (json_int_t)o->batch_window_ms, "start", start, "max_retries",
	    (json_int_t)o->max_retries, "max_record_age_s", (json_int_t)o->max_record_age_s,
	    "bisect_on_error", (int)o->bisect_on_error, "on_failure",
	    o->on_failure ? json_string(o->on_failure) : json_null(), "parallelism",
	    (json_int_t)o->parallelism, "timeout_ms", (json_int_t)o->timeout_ms, "created_ms",
	    (json_int_t)info->created_ms, "created", created, "shards", shards);
	return print_json(what, j);
}

static void print_count(uint64_t v)
{
	printf("  %10" PRIu64, v);
}

static int describe_text(const struct sluice_consumer_info *info)
{
	char created[64], start[96], window[32], timeout[32], age[32] = "retention";
	sl_format_timestamp(info->created_ms, created, sizeof(created));
	start_text(&info->options.start, start, sizeof(start));
	const struct sluice_consumer_options *o = &info->options;
	sl_format_duration(o->batch_window_ms, window, sizeof(window));
	sl_format_duration(o->timeout_ms, timeout, sizeof(timeout));
	if (o->max_record_age_s >= 0)
		sl_format_duration(o->max_record_age_s * 1000, age, sizeof(age));
	printf("Consumer:        %s\n", info->name);
	printf("Stream:          %s\n", info->stream);
	if (info->handler_target[0])
		printf("Handler:         %s:%s\n", sluice_handler_kind_name(info->handler_kind),
		       info->handler_target);
	else
		printf("Handler:         %s\n", sluice_handler_kind_name(info->handler_kind));
	printf("Batch size:      %" PRIu32 "\n", o->batch_size);
	printf("Batch window:    %s\n", window);
	printf("Start:           %s\n", start);
	if (o->max_retries < 0)
		printf("Max retries:     until expiry\n");
	else
		printf("Max retries:     %" PRId32 "\n", o->max_retries);
	printf("Max record age:  %s\n", age);
	printf("Bisect on error: %s\n", o->bisect_on_error ? "yes" : "no");
	printf("On failure:      %s\n", o->on_failure ? o->on_failure : "-");
	printf("Parallelism:     %" PRIu32 "\n", o->parallelism);
	printf("Timeout:         %s\n", timeout);
	printf("Created:         %s\n", created);
	printf("Shards:          %zu\n\n", info->shard_count);
	printf("%-20s  %10s  %10s  %10s  %-15s  %10s  %10s  %10s  %10s  %10s  %s\n", "SHARD",
	       "CHECKPOINT", "LAG REC", "LAG MS", "STATE", "DELIVERED", "FAILED", "RETRIES",
	       "ON-FAILURE", "EXPIRED", "LAST ERROR");
	for (size_t i = 0; i < info->shard_count; i++) {
		const struct sluice_consumer_shard_status *s = &info->shards[i];
		char id[24];
		shard_name(s->shard_id, id);
		printf("%-20s", id);
		print_count(s->checkpoint_seq);
		print_count(s->lag_records);
		print_count(s->lag_ms);
		printf("  %-15s", sluice_consumer_state_name(s->state));
		print_count(s->delivered);
		print_count(s->batches_failed);
		print_count(s->retries);
		print_count(s->sent_to_on_failure);
		print_count(s->expired);
		/* One line per shard: a multi-line handler message would break the table. */
		printf("  ");
		for (const char *p = s->last_error; *p; p++)
			putchar(*p == '\n' || *p == '\r' || *p == '\t' ? ' ' : *p);
		if (!s->last_error[0])
			putchar('-');
		putchar('\n');
	}
	return CLI_EXIT_OK;
}

int cli_consumer(const struct cli *cli_in, int argc, char **argv)
{
	struct cli cli = *cli_in;
	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(consumer_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	const char *sub = argv[1];
	if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "describe") &&
	    strcmp(sub, "delete") && strcmp(sub, "reset"))
		return cli_usage_error("consumer", "unknown subcommand '%s'", sub);
	char what[64];
	snprintf(what, sizeof(what), "consumer %s", sub);
	struct consumer_args a = {0};
	sluice_consumer_options_init(&a.opts);
	int r = parse_args(&cli, what, argc - 1, argv + 1, &a);
	if (r >= 0)
		return r;
	int npos = argc - 1 - optind;
	char **pos = argv + 1 + optind;
	bool is_create = strcmp(sub, "create") == 0, is_reset = strcmp(sub, "reset") == 0;
	bool needs_name = strcmp(sub, "list") != 0;
	if (npos != (needs_name ? 1 : 0))
		return cli_usage_error(what, needs_name ? "wants one consumer NAME"
							: "takes no arguments");
	const char *name = needs_name ? pos[0] : NULL;
	if (is_create && !a.stream)
		return cli_usage_error(what, "--stream S is required");
	if (is_create && !a.handler)
		return cli_usage_error(what, "--handler KIND:TARGET is required");
	/* Options that belong to another subcommand are a mistake worth pointing out. */
	if (!is_create && (a.stream || a.handler))
		return cli_usage_error(what, "--stream and --handler are for create");
	if (!is_reset && (a.to || a.shard_set))
		return cli_usage_error(what, "--to and --shard are for reset");
	struct sluice_position to;
	if (is_reset) {
		if (!a.to)
			return cli_usage_error(what, "--to POSITION is required");
		if (cli_parse_position(a.to, &to) < 0)
			return cli_usage_error(
			    what,
			    "--to wants trim-horizon, latest, seq:N or time:ISO8601, not '%s'",
			    a.to);
	}

	struct sluice_client *c;
	r = cli_connect(&cli, what, &c);
	if (r)
		return r;
	int ret = CLI_EXIT_OK;
	if (is_create) {
		r = sluice_consumer_create(c, name, a.stream, a.handler, &a.opts);
		if (r < 0)
			ret = cli_fail_client(what, c, r);
	} else if (strcmp(sub, "delete") == 0) {
		r = sluice_consumer_delete(c, name);
		if (r < 0)
			ret = cli_fail_client(what, c, r);
	} else if (is_reset) {
		r = sluice_consumer_reset(c, name, a.shard_set ? (int64_t)a.shard_id : -1, &to);
		if (r < 0)
			ret = cli_fail_client(what, c, r);
	} else if (strcmp(sub, "list") == 0) {
		char **names;
		size_t n;
		r = sluice_consumer_list(c, &names, &n);
		if (r < 0) {
			ret = cli_fail_client(what, c, r);
		} else {
			if (a.format == FORMAT_JSON) {
				json_t *arr = json_array();
				for (size_t i = 0; arr && i < n; i++)
					json_array_append_new(arr, json_string(names[i]));
				ret = print_json(what, arr);
			} else {
				for (size_t i = 0; i < n; i++)
					printf("%s\n", names[i]);
			}
			sluice_strings_free(names, n);
		}
	} else {
		struct sluice_consumer_info *info;
		r = sluice_consumer_describe(c, name, &info);
		if (r < 0) {
			ret = cli_fail_client(what, c, r);
		} else {
			ret = a.format == FORMAT_JSON ? describe_json(what, info)
						      : describe_text(info);
			sluice_consumer_info_free(info);
		}
	}
	sluice_client_close(c);
	if (fflush(stdout) != 0 && ret == CLI_EXIT_OK)
		ret = cli_fail(what, "writing output: %s", strerror(errno));
	return ret;
}
