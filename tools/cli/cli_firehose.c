/* sluice firehose create|list|describe|delete|flush */
#include "cli.h"

#include "common/units.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char firehose_usage[] =
    "usage: sluice firehose create NAME --stream S [--dest file:///DIR|s3://BUCKET[/PREFIX]]\n"
    "           [--endpoint URL] [--region R] [--credentials-file F [--profile P]]\n"
    "           [--buffer-size SIZE] [--buffer-interval DURATION]\n"
    "           [--compression zstd[:LEVEL]|none] [--format jsonl|raw]\n"
    "           [--max-retry-duration DURATION|-1] [--on-failure STREAM]\n"
    "           [--start trim-horizon|latest|time:T]\n"
    "       sluice firehose list [--format text|json]\n"
    "       sluice firehose describe NAME [--format text|json]\n"
    "       sluice firehose delete NAME\n"
    "       sluice firehose flush NAME\n"
    "\n"
    "A firehose archives a stream as objects (default --dest: the server's DATA/objects): an\n"
    "object per shard is written when its buffer reaches --buffer-size (1MiB..128MiB, default\n"
    "5MiB) or --buffer-interval (0..900s, default 60s). --endpoint (an S3-compatible server), "
    "--region, --credentials-file (AWS shared\n"
    "credentials format, read by sluiced) and --profile are for s3:// destinations. Defaults:\n"
    "--compression zstd:3 (levels 1..19), --format jsonl (restorable; raw is each record's data\n"
    "and a newline), --max-retry-duration -1 (retry until the records expire), --start\n"
    "trim-horizon. Durations: 500ms, 30s, 5m, 1h (a plain number is seconds); sizes: 512KiB,\n"
    "5MiB (a plain number is bytes). `flush` writes every shard's buffer now.\n";

enum format { FORMAT_TEXT, FORMAT_JSON };

struct firehose_args {
	const char *stream;
	const char *dest;
	const char *format; /* create: jsonl|raw; list, describe: text|json */
	bool s3_options;    /* --endpoint, --region, --credentials-file or --profile given */
	bool create_options;
	struct sluice_firehose_options opts;
};

/* 1..SLUICE_NAME_LEN_MAX of [a-zA-Z0-9_.-], as the server's rule. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > SLUICE_NAME_LEN_MAX)
		return false;
	for (; *s; s++) {
		char ch = *s;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
			return false;
	}
	return true;
}

static int check_len(const char *what, const char *flag, const char *s, size_t max)
{
	if (strlen(s) > max)
		return cli_usage_error(what, "%s: longer than %zu bytes", flag, max);
	if (!s[0])
		return cli_usage_error(what, "%s: empty", flag);
	return 0;
}

/* zstd, zstd:LEVEL or none. */
static int parse_compression(const char *s, struct sluice_firehose_options *o)
{
	if (strcmp(s, "none") == 0) {
		o->compression = SLUICE_FIREHOSE_COMPRESSION_NONE;
		return 0;
	}
	if (strcmp(s, "zstd") == 0) {
		o->compression = SLUICE_FIREHOSE_COMPRESSION_ZSTD;
		return 0;
	}
	uint64_t v;
	if (strncmp(s, "zstd:", 5) != 0 || sl_parse_u64(s + 5, &v) < 0 ||
	    v < SLUICE_FIREHOSE_ZSTD_LEVEL_MIN || v > SLUICE_FIREHOSE_ZSTD_LEVEL_MAX)
		return -EINVAL;
	o->compression = SLUICE_FIREHOSE_COMPRESSION_ZSTD;
	o->zstd_level = (int32_t)v;
	return 0;
}

static int parse_args(struct cli *cli, const char *what, int argc, char **argv,
		      struct firehose_args *a)
{
	static const struct option opts[] = {
	    {"stream", required_argument, NULL, 'S'},
	    {"dest", required_argument, NULL, 'D'},
	    {"endpoint", required_argument, NULL, 'E'},
	    {"region", required_argument, NULL, 'R'},
	    {"credentials-file", required_argument, NULL, 'C'},
	    {"profile", required_argument, NULL, 'P'},
	    {"buffer-size", required_argument, NULL, 'b'},
	    {"buffer-interval", required_argument, NULL, 'i'},
	    {"compression", required_argument, NULL, 'z'},
	    {"format", required_argument, NULL, 'f'},
	    {"max-retry-duration", required_argument, NULL, 'r'},
	    {"on-failure", required_argument, NULL, 'F'},
	    {"start", required_argument, NULL, 'p'},
	    {"server", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct sluice_firehose_options *o = &a->opts;
	int o_;
	int r;
	opterr = 0;
	while ((o_ = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (strchr("SDERCPbizrFp", o_))
			a->create_options = true;
		switch (o_) {
		case 'S':
			if (!name_ok(optarg))
				return cli_usage_error(
				    what, "--stream: '%s' is not a valid stream name", optarg);
			a->stream = optarg;
			break;
		case 'D':
			a->dest = optarg;
			break;
		case 'E':
			if ((r = check_len(what, "--endpoint", optarg,
					   SLUICE_FIREHOSE_ENDPOINT_LEN_MAX)) != 0)
				return r;
			if (strncmp(optarg, "http://", 7) != 0 &&
			    strncmp(optarg, "https://", 8) != 0)
				return cli_usage_error(
				    what,
				    "--endpoint wants http://HOST[:PORT] or https://..., not '%s'",
				    optarg);
			o->endpoint = optarg;
			a->s3_options = true;
			break;
		case 'R':
			if ((r = check_len(what, "--region", optarg,
					   SLUICE_FIREHOSE_REGION_LEN_MAX)) != 0)
				return r;
			o->region = optarg;
			a->s3_options = true;
			break;
		case 'C':
			if ((r = check_len(what, "--credentials-file", optarg,
					   SLUICE_FIREHOSE_CREDENTIALS_FILE_LEN_MAX)) != 0)
				return r;
			o->credentials_file = optarg;
			a->s3_options = true;
			break;
		case 'P':
			if ((r = check_len(what, "--profile", optarg,
					   SLUICE_FIREHOSE_PROFILE_LEN_MAX)) != 0)
				return r;
			o->profile = optarg;
			a->s3_options = true;
			break;
		case 'b': {
			uint64_t v;
			if (sl_parse_size_bytes(optarg, &v) < 0 ||
			    v < SLUICE_FIREHOSE_BUFFER_BYTES_MIN ||
			    v > SLUICE_FIREHOSE_BUFFER_BYTES_MAX)
				return cli_usage_error(
				    what, "--buffer-size wants 1MiB..128MiB, not '%s'", optarg);
			o->buffer_bytes = v;
			break;
		}
		case 'i': {
			int64_t ms;
			if (sl_parse_duration_ms(optarg, &ms) < 0 || ms < 0 ||
			    ms > (int64_t)SLUICE_FIREHOSE_BUFFER_INTERVAL_MS_MAX)
				return cli_usage_error(
				    what, "--buffer-interval wants 0..900s (60s, 5m), not '%s'",
				    optarg);
			o->buffer_interval_ms = (uint32_t)ms;
			break;
		}
		case 'z':
			if (parse_compression(optarg, o) < 0)
				return cli_usage_error(
				    what, "--compression wants none, zstd or zstd:1..19, not '%s'",
				    optarg);
			break;
		case 'f':
			a->format = optarg;
			break;
		case 'r': {
			int64_t ms;
			if (strcmp(optarg, "-1") == 0)
				ms = -1;
			else if (sl_parse_duration_ms(optarg, &ms) < 0 || ms < 0)
				return cli_usage_error(
				    what,
				    "--max-retry-duration wants -1 or a duration (1h), not '%s'",
				    optarg);
			o->max_retry_duration_ms = ms;
			break;
		}
		case 'F':
			if (!name_ok(optarg))
				return cli_usage_error(
				    what, "--on-failure: '%s' is not a valid stream name", optarg);
			o->on_failure = optarg;
			break;
		case 'p': {
			struct sluice_position pos;
			if (cli_parse_position(optarg, &pos) < 0 || pos.type == SLUICE_POS_AT_SEQ)
				return cli_usage_error(
				    what, "--start wants trim-horizon, latest or time:T, not '%s'",
				    optarg);
			o->start = pos;
			break;
		}
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

/* Checks of create that involve several options. */
static int check_create(const char *what, struct firehose_args *a)
{
	if (!a->stream)
		return cli_usage_error(what, "--stream S is required");
	/* No --dest: the server's default destination, a folder of its own. */
	bool file = !a->dest || strncmp(a->dest, "file:///", 8) == 0;
	bool s3 = a->dest && strncmp(a->dest, "s3://", 5) == 0 && a->dest[5] && a->dest[5] != '/';
	if (!file && !s3)
		return cli_usage_error(
		    what, "--dest wants file:///ABSOLUTE/DIR or s3://BUCKET[/PREFIX], not '%s'",
		    a->dest);
	if (a->dest && strlen(a->dest) > SLUICE_FIREHOSE_DEST_LEN_MAX)
		return cli_usage_error(what, "--dest: longer than %d bytes",
				       SLUICE_FIREHOSE_DEST_LEN_MAX);
	if (file && a->s3_options)
		return cli_usage_error(what,
				       "--endpoint, --region, --credentials-file and --profile "
				       "are for s3:// destinations");
	if (a->opts.profile && !a->opts.credentials_file)
		return cli_usage_error(what, "--profile needs --credentials-file");
	if (a->opts.on_failure && strcmp(a->opts.on_failure, a->stream) == 0)
		return cli_usage_error(what, "--on-failure must not be the archived stream");
	if (a->format) {
		if (strcmp(a->format, "jsonl") == 0)
			a->opts.format = SLUICE_FIREHOSE_FORMAT_JSONL;
		else if (strcmp(a->format, "raw") == 0)
			a->opts.format = SLUICE_FIREHOSE_FORMAT_RAW;
		else
			return cli_usage_error(what, "--format wants jsonl or raw, not '%s'",
					       a->format);
	}
	return 0;
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

/* 5MiB, 1536KiB, 1000B: the largest binary unit that divides exactly. */
static void size_text(uint64_t v, char *out, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;
	while (u + 1 < sizeof(units) / sizeof(units[0]) && v >= 1024 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, "%" PRIu64 "%s", v, units[u]);
}

static void compression_text(const struct sluice_firehose_options *o, char *out, size_t len)
{
	if (o->compression == SLUICE_FIREHOSE_COMPRESSION_NONE)
		snprintf(out, len, "none");
	else if (o->compression == SLUICE_FIREHOSE_COMPRESSION_ZSTD)
		snprintf(out, len, "zstd:%" PRId32, o->zstd_level);
	else
		snprintf(out, len, "unknown(%d)", o->compression);
}

static const char *format_text(int format)
{
	return format == SLUICE_FIREHOSE_FORMAT_JSONL ? "jsonl"
	       : format == SLUICE_FIREHOSE_FORMAT_RAW ? "raw"
						      : "unknown";
}

static json_t *u64_json(uint64_t v)
{
	char s[24];
	snprintf(s, sizeof(s), "%" PRIu64, v);
	return json_string(s);
}

static json_t *opt_json(const char *s)
{
	return s ? json_string(s) : json_null();
}

static int describe_json(const char *what, const struct sluice_firehose_info *info)
{
	char created[64], start[96], compression[32];
	sl_format_timestamp(info->created_ms, created, sizeof(created));
	const struct sluice_firehose_options *o = &info->options;
	start_text(&o->start, start, sizeof(start));
	compression_text(o, compression, sizeof(compression));
	json_t *shards = json_array();
	for (size_t i = 0; shards && i < info->shard_count; i++) {
		const struct sluice_firehose_shard_status *s = &info->shards[i];
		char id[24], flushed[64] = "";
		shard_name(s->shard_id, id);
		if (s->last_flush_ms)
			sl_format_timestamp(s->last_flush_ms, flushed, sizeof(flushed));
		json_array_append_new(
		    shards,
		    json_pack(
			"{s:s, s:s, s:o, s:I, s:I, s:I, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, "
			"s:s, s:I, s:b}",
			"shard", id, "state", sluice_firehose_state_name(s->state),
			"checkpoint_seq", u64_json(s->checkpoint_seq), "buffered_records",
			(json_int_t)s->buffered_records, "buffered_bytes",
			(json_int_t)s->buffered_bytes, "last_flush_ms",
			(json_int_t)s->last_flush_ms, "last_flush",
			s->last_flush_ms ? json_string(flushed) : json_null(), "last_object_key",
			s->last_object_key[0] ? json_string(s->last_object_key) : json_null(),
			"objects_written", (json_int_t)s->objects_written, "records_archived",
			(json_int_t)s->records_archived, "bytes_written",
			(json_int_t)s->bytes_written, "upload_failures",
			(json_int_t)s->upload_failures, "sent_to_on_failure",
			(json_int_t)s->sent_to_on_failure, "expired", (json_int_t)s->expired,
			"last_error", s->last_error, "lag_ms", (json_int_t)s->lag_ms, "background",
			s->background));
	}
	json_t *j = json_pack(
	    "{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:I, s:s, s:s, s:I, s:o, s:s, s:I, s:s, s:o}",
	    "name", info->name, "stream", info->stream, "dest", info->dest, "endpoint",
	    opt_json(o->endpoint), "region", opt_json(o->region), "credentials_file",
	    opt_json(o->credentials_file), "profile", opt_json(o->profile), "buffer_bytes",
	    (json_int_t)o->buffer_bytes, "buffer_interval_ms", (json_int_t)o->buffer_interval_ms,
	    "compression", compression, "format", format_text(o->format), "max_retry_duration_ms",
	    (json_int_t)o->max_retry_duration_ms, "on_failure", opt_json(o->on_failure), "start",
	    start, "created_ms", (json_int_t)info->created_ms, "created", created, "shards",
	    shards);
	return print_json(what, j);
}

/* One line per shard: a multi-line message would break the table. */
static void print_one_line(const char *s)
{
	if (!s[0]) {
		putchar('-');
		return;
	}
	for (; *s; s++)
		putchar(*s == '\n' || *s == '\r' || *s == '\t' ? ' ' : *s);
}

static int describe_text(const struct sluice_firehose_info *info)
{
	const struct sluice_firehose_options *o = &info->options;
	char created[64], start[96], compression[32], size[32], interval[32], retry[32];
	sl_format_timestamp(info->created_ms, created, sizeof(created));
	start_text(&o->start, start, sizeof(start));
	compression_text(o, compression, sizeof(compression));
	size_text(o->buffer_bytes, size, sizeof(size));
	sl_format_duration(o->buffer_interval_ms, interval, sizeof(interval));
	if (o->max_retry_duration_ms < 0)
		snprintf(retry, sizeof(retry), "until expiry");
	else
		sl_format_duration(o->max_retry_duration_ms, retry, sizeof(retry));
	printf("Firehose:           %s\n", info->name);
	printf("Stream:             %s\n", info->stream);
	printf("Destination:        %s\n", info->dest);
	if (o->endpoint)
		printf("Endpoint:           %s\n", o->endpoint);
	if (o->region)
		printf("Region:             %s\n", o->region);
	if (o->credentials_file)
		printf("Credentials file:   %s\n", o->credentials_file);
	if (o->profile)
		printf("Profile:            %s\n", o->profile);
	printf("Buffer size:        %s\n", size);
	printf("Buffer interval:    %s\n", interval);
	printf("Compression:        %s\n", compression);
	printf("Format:             %s\n", format_text(o->format));
	printf("Max retry duration: %s\n", retry);
	printf("On failure:         %s\n", o->on_failure ? o->on_failure : "-");
	printf("Start:              %s\n", start);
	printf("Created:            %s\n", created);
	printf("Shards:             %zu\n\n", info->shard_count);
	printf(
	    "%-20s  %-15s  %10s  %10s  %10s  %8s  %-10s  %-24s  %8s  %10s  %12s  %8s  %10s  %8s  "
	    "%s  %s\n",
	    "SHARD", "STATE", "CHECKPOINT", "BUF REC", "BUF BYTES", "LAG", "CPU", "LAST FLUSH",
	    "OBJECTS", "RECORDS", "BYTES", "FAILURES", "ON-FAILURE", "EXPIRED", "LAST OBJECT KEY",
	    "LAST ERROR");
	for (size_t i = 0; i < info->shard_count; i++) {
		const struct sluice_firehose_shard_status *s = &info->shards[i];
		char id[24], flushed[64] = "never", lag[32];
		shard_name(s->shard_id, id);
		if (s->last_flush_ms)
			sl_format_timestamp(s->last_flush_ms, flushed, sizeof(flushed));
		sl_format_duration((int64_t)s->lag_ms, lag, sizeof(lag));
		printf("%-20s  %-15s  %10" PRIu64 "  %10" PRIu64 "  %10" PRIu64
		       "  %8s  %-10s  %-24s  %8" PRIu64 "  %10" PRIu64 "  %12" PRIu64 "  %8" PRIu64
		       "  %10" PRIu64 "  %8" PRIu64 "  ",
		       id, sluice_firehose_state_name(s->state), s->checkpoint_seq,
		       s->buffered_records, s->buffered_bytes, lag,
		       s->background ? "background" : "normal", flushed, s->objects_written,
		       s->records_archived, s->bytes_written, s->upload_failures,
		       s->sent_to_on_failure, s->expired);
		print_one_line(s->last_object_key);
		printf("  ");
		print_one_line(s->last_error);
		putchar('\n');
	}
	return CLI_EXIT_OK;
}

int cli_firehose(const struct cli *cli_in, int argc, char **argv)
{
	struct cli cli = *cli_in;
	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(firehose_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	const char *sub = argv[1];
	if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "describe") &&
	    strcmp(sub, "delete") && strcmp(sub, "flush"))
		return cli_usage_error("firehose", "unknown subcommand '%s'", sub);
	char what[64];
	snprintf(what, sizeof(what), "firehose %s", sub);
	struct firehose_args a = {0};
	sluice_firehose_options_init(&a.opts);
	int r = parse_args(&cli, what, argc - 1, argv + 1, &a);
	if (r >= 0)
		return r;
	int npos = argc - 1 - optind;
	char **pos = argv + 1 + optind;
	bool is_create = strcmp(sub, "create") == 0, is_list = strcmp(sub, "list") == 0;
	bool is_describe = strcmp(sub, "describe") == 0;
	if (npos != (is_list ? 0 : 1))
		return cli_usage_error(what,
				       is_list ? "takes no arguments" : "wants one firehose NAME");
	const char *name = is_list ? NULL : pos[0];
	if (name && !name_ok(name))
		return cli_usage_error(what, "'%s' is not a valid firehose name", name);
	enum format format = FORMAT_TEXT;
	if (is_create) {
		if ((r = check_create(what, &a)) != 0)
			return r;
	} else {
		/* Options that belong to create are a mistake worth pointing out. */
		if (a.create_options)
			return cli_usage_error(what, "takes only %s",
					       is_list || is_describe ? "--format text|json"
								      : "a NAME");
		if (a.format && !is_list && !is_describe)
			return cli_usage_error(what, "--format is for create, list and describe");
		if (a.format && strcmp(a.format, "json") == 0)
			format = FORMAT_JSON;
		else if (a.format && strcmp(a.format, "text") != 0)
			return cli_usage_error(what, "--format wants text or json, not '%s'",
					       a.format);
	}

	struct sluice_client *c;
	r = cli_connect(&cli, what, &c);
	if (r)
		return r;
	int ret = CLI_EXIT_OK;
	if (is_create) {
		r = sluice_firehose_create(c, name, a.stream, a.dest, &a.opts);
		if (r < 0)
			ret = cli_fail_client(what, c, r);
	} else if (strcmp(sub, "delete") == 0) {
		r = sluice_firehose_delete(c, name);
		if (r < 0)
			ret = cli_fail_client(what, c, r);
	} else if (strcmp(sub, "flush") == 0) {
		r = sluice_firehose_flush(c, name);
		if (r < 0)
			ret = cli_fail_client(what, c, r);
	} else if (is_list) {
		char **names;
		size_t n;
		r = sluice_firehose_list(c, &names, &n);
		if (r < 0) {
			ret = cli_fail_client(what, c, r);
		} else {
			if (format == FORMAT_JSON) {
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
		struct sluice_firehose_info *info;
		r = sluice_firehose_describe(c, name, &info);
		if (r < 0) {
			ret = cli_fail_client(what, c, r);
		} else {
			ret =
			    format == FORMAT_JSON ? describe_json(what, info) : describe_text(info);
			sluice_firehose_info_free(info);
		}
	}
	sluice_client_close(c);
	if (fflush(stdout) != 0 && ret == CLI_EXIT_OK)
		ret = cli_fail(what, "writing output: %s", strerror(errno));
	return ret;
}
