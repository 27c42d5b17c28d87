/* sluice stream create|list|describe|delete|split|merge|scale (tag|untag|tags|retention:
 * cli_stream_settings.c) */
#include "cli.h"

#include "common/units.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char stream_usage[] =
    "usage: sluice stream create NAME --shards N [--retention DURATION]  (default 24h)\n"
    "       sluice stream list [--format text|json]\n"
    "       sluice stream describe NAME [--format text|json]\n"
    "       sluice stream delete NAME\n"
    "       sluice stream split NAME SHARD [--at HASHKEY]  (default: the middle of its range)\n"
    "       sluice stream merge NAME SHARD ADJACENT\n"
    "       sluice stream scale NAME COUNT  (uniform: COUNT open shards with even ranges)\n"
    "       sluice stream retention NAME DURATION        (e.g. 48h, 7d)\n"
    "       sluice stream tag NAME KEY=VALUE...\n"
    "       sluice stream untag NAME KEY...\n"
    "       sluice stream tags NAME [--format text|json]\n";

/* Kinesis' default retention. */
#define RETENTION_MS_DEFAULT (24 * 3600 * 1000LL)

enum format { FORMAT_TEXT, FORMAT_JSON };

struct stream_args {
	const char *name;
	uint64_t shards;
	bool shards_set;
	int64_t retention_ms;
	enum format format;
	const char *at; /* split: --at HASHKEY */
};

/* 128-bit big-endian hash key as a decimal (at most 39 digits). */
static void hash_key_decimal(const struct sluice_hash_key *k, char out[41])
{
	unsigned __int128 v = 0;
	for (int i = 0; i < 16; i++)
		v = (v << 8) | k->be[i];
	char tmp[41];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + (int)(v % 10));
		v /= 10;
	} while (v);
	for (int i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = '\0';
}

/* A decimal hash key, 0..2^128-1 (Kinesis' ExplicitHashKey / NewStartingHashKey). */
static int parse_hash_key(const char *s, struct sluice_hash_key *ret)
{
	unsigned __int128 v = 0;
	size_t n = strlen(s);
	if (n == 0 || n > 39 || (n > 1 && s[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		unsigned __int128 d = (unsigned __int128)(s[i] - '0');
		if (v > (~(unsigned __int128)0 - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	for (int i = 15; i >= 0; i--) {
		ret->be[i] = (uint8_t)v;
		v >>= 8;
	}
	return 0;
}

static unsigned __int128 hash_key_value(const struct sluice_hash_key *k)
{
	unsigned __int128 v = 0;
	for (int i = 0; i < 16; i++)
		v = (v << 8) | k->be[i];
	return v;
}

static void shard_name(uint32_t id, char out[24])
{
	snprintf(out, 24, "shardId-%012u", id);
}

static json_t *parent_json(int32_t id)
{
	if (id < 0)
		return json_null();
	char s[24];
	shard_name((uint32_t)id, s);
	return json_string(s);
}

static json_t *u64_json(uint64_t v)
{
	char s[24];
	snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
	return json_string(s);
}

static int print_json(json_t *j)
{
	if (!j)
		return cli_fail("stream", "out of memory");
	int r = json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(j);
	return r < 0 ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

static int describe_print(const struct sluice_stream_info *info, enum format format)
{
	char created[64], retention[32];
	sl_format_timestamp(info->created_ms, created, sizeof(created));
	sl_format_duration((int64_t)info->retention_ms, retention, sizeof(retention));
	if (format == FORMAT_JSON) {
		json_t *shards = json_array();
		for (size_t i = 0; i < info->shard_count; i++) {
			const struct sluice_shard_info *s = &info->shards[i];
			char id[24], start[41], end[41];
			shard_name(s->shard_id, id);
			hash_key_decimal(&s->start_hash_key, start);
			hash_key_decimal(&s->end_hash_key, end);
			json_array_append_new(
			    shards,
			    json_pack("{s:s, s:o, s:o, s:s, s:s, s:s, s:o, s:o, s:o}", "shard_id",
				      id, "parent_shard_id", parent_json(s->parent_id),
				      "adjacent_parent_shard_id",
				      parent_json(s->adjacent_parent_id), "state",
				      s->closed ? "closed" : "open", "start_hash_key", start,
				      "end_hash_key", end, "start_seq", u64_json(s->start_seq),
				      "end_seq", s->closed ? u64_json(s->end_seq) : json_null(),
				      "next_seq", u64_json(s->next_seq)));
		}
		return print_json(
		    json_pack("{s:s, s:s, s:I, s:s, s:I, s:s, s:o}", "name", info->name, "status",
			      sluice_stream_status_name(info->status), "retention_ms",
			      (json_int_t)info->retention_ms, "retention", retention, "created_ms",
			      (json_int_t)info->created_ms, "created", created, "shards", shards));
	}
	printf("Stream:     %s\n", info->name);
	printf("Status:     %s\n", sluice_stream_status_name(info->status));
	printf("Retention:  %s\n", retention);
	printf("Created:    %s\n", created);
	printf("Shards:     %zu\n\n", info->shard_count);
	printf("%-20s  %-6s  %-20s  %-20s  %-39s  %-39s  %10s  %10s  %10s\n", "SHARD", "STATE",
	       "PARENT", "ADJACENT PARENT", "START HASH KEY", "END HASH KEY", "START SEQ",
	       "END SEQ", "NEXT SEQ");
	for (size_t i = 0; i < info->shard_count; i++) {
		const struct sluice_shard_info *s = &info->shards[i];
		char id[24], parent[24] = "-", adjacent[24] = "-", start[41], end[41],
			     endseq[24] = "-";
		shard_name(s->shard_id, id);
		if (s->parent_id >= 0)
			shard_name((uint32_t)s->parent_id, parent);
		if (s->adjacent_parent_id >= 0)
			shard_name((uint32_t)s->adjacent_parent_id, adjacent);
		hash_key_decimal(&s->start_hash_key, start);
		hash_key_decimal(&s->end_hash_key, end);
		if (s->closed)
			snprintf(endseq, sizeof(endseq), "%llu", (unsigned long long)s->end_seq);
		printf("%-20s  %-6s  %-20s  %-20s  %-39s  %-39s  %10llu  %10s  %10llu\n", id,
		       s->closed ? "closed" : "open", parent, adjacent, start, end,
		       (unsigned long long)s->start_seq, endseq, (unsigned long long)s->next_seq);
	}
	return CLI_EXIT_OK;
}

static int parse_args(struct cli *cli, const char *what, int argc, char **argv,
		      struct stream_args *a)
{
	static const struct option opts[] = {
	    {"shards", required_argument, NULL, 'n'},
	    {"retention", required_argument, NULL, 'r'},
	    {"format", required_argument, NULL, 'f'},
	    {"server", required_argument, NULL, 's'},
	    {"at", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (o) {
		case 'n':
			if (sl_parse_u64(optarg, &a->shards) < 0 || a->shards == 0 ||
			    a->shards > SLUICE_SHARDS_MAX)
				return cli_usage_error(what, "--shards wants 1..%u, not '%s'",
						       SLUICE_SHARDS_MAX, optarg);
			a->shards_set = true;
			break;
		case 'r':
			if (sl_parse_duration_ms(optarg, &a->retention_ms) < 0 ||
			    a->retention_ms <= 0)
				return cli_usage_error(what, "bad --retention '%s'", optarg);
			break;
		case 'f':
			if (strcmp(optarg, "json") == 0)
				a->format = FORMAT_JSON;
			else if (strcmp(optarg, "text") == 0)
				a->format = FORMAT_TEXT;
			else
				return cli_usage_error(what, "--format wants text or json");
			break;
		case 's':
			cli->server = optarg;
			break;
		case 'a':
			a->at = optarg;
			break;
		case ':':
			return cli_usage_error(what, "%s needs a value", argv[optind - 1]);
		default:
			return cli_usage_error(what, "unknown option '%s'", argv[optind - 1]);
		}
	}
	return -1;
}

/* split NAME SHARD [--at HASHKEY], merge NAME SHARD ADJACENT, scale NAME COUNT */
static int reshard(const struct cli *cli, const char *what, const char *sub, int npos, char **pos,
		   const struct stream_args *a)
{
	bool split = strcmp(sub, "split") == 0, merge = strcmp(sub, "merge") == 0;
	int want = merge ? 3 : 2;
	if (npos != want)
		return cli_usage_error(what, split   ? "wants NAME SHARD [--at HASHKEY]"
					     : merge ? "wants NAME SHARD ADJACENT"
						     : "wants NAME COUNT");
	if (a->at && !split)
		return cli_usage_error(what, "--at is for split");
	uint32_t shard = 0, adjacent = 0;
	uint64_t count = 0;
	struct sluice_hash_key at;
	if (!strcmp(sub, "scale")) {
		if (sl_parse_u64(pos[1], &count) < 0 || count == 0 || count > SLUICE_SHARDS_MAX)
			return cli_usage_error(what, "COUNT wants 1..%u, not '%s'",
					       SLUICE_SHARDS_MAX, pos[1]);
	} else if (cli_parse_shard_id(pos[1], &shard) < 0) {
		return cli_usage_error(what, "bad SHARD '%s' (3 or shardId-000000000003)", pos[1]);
	}
	if (merge && cli_parse_shard_id(pos[2], &adjacent) < 0)
		return cli_usage_error(what, "bad ADJACENT '%s'", pos[2]);
	if (a->at && parse_hash_key(a->at, &at) < 0)
		return cli_usage_error(what, "--at wants a decimal hash key 0..2^128-1, not '%s'",
				       a->at);
	struct sluice_client *c;
	int r = cli_connect(cli, what, &c);
	if (r)
		return r;
	int ret = CLI_EXIT_OK;
	char a_id[24], b_id[24];
	if (split) {
		if (!a->at) { /* the middle of the shard's range */
			struct sluice_shard_info *shards;
			size_t n;
			r = sluice_list_shards(c, pos[0], &shards, &n);
			if (r < 0) {
				ret = cli_fail_client(what, c, r);
				goto out;
			}
			const struct sluice_shard_info *s = NULL;
			for (size_t i = 0; i < n; i++)
				if (shards[i].shard_id == shard)
					s = &shards[i];
			if (!s) {
				sluice_shards_free(shards);
				ret = cli_fail(what, "stream %s has no shard %u", pos[0], shard);
				goto out;
			}
			unsigned __int128 lo = hash_key_value(&s->start_hash_key);
			unsigned __int128 hi = hash_key_value(&s->end_hash_key);
			unsigned __int128 mid = lo + (hi - lo) / 2 + 1;
			for (int i = 15; i >= 0; i--) {
				at.be[i] = (uint8_t)mid;
				mid >>= 8;
			}
			sluice_shards_free(shards);
		}
		uint32_t kids[2];
		r = sluice_stream_split(c, pos[0], shard, &at, kids);
		if (r < 0) {
			ret = cli_fail_client(what, c, r);
		} else {
			shard_name(kids[0], a_id);
			shard_name(kids[1], b_id);
			char key[41];
			hash_key_decimal(&at, key);
			printf("split shardId-%012u at %s into %s and %s\n", shard, key, a_id,
			       b_id);
		}
	} else if (merge) {
		uint32_t child;
		r = sluice_stream_merge(c, pos[0], shard, adjacent, &child);
		if (r < 0) {
			ret = cli_fail_client(what, c, r);
		} else {
			shard_name(child, a_id);
			printf("merged shardId-%012u and shardId-%012u into %s\n", shard, adjacent,
			       a_id);
		}
	} else {
		r = sluice_stream_scale(c, pos[0], (uint32_t)count);
		if (r < 0)
			ret = cli_fail_client(what, c, r);
		else
			printf("stream %s now has %llu open shards\n", pos[0],
			       (unsigned long long)count);
	}
out:
	sluice_client_close(c);
	if (fflush(stdout) != 0 && ret == CLI_EXIT_OK)
		ret = cli_fail(what, "writing output: %s", strerror(errno));
	return ret;
}

int cli_stream(const struct cli *cli_in, int argc, char **argv)
{
	struct cli cli = *cli_in;
	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(stream_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	const char *sub = argv[1];
	char what[64];
	snprintf(what, sizeof(what), "stream %s", sub);
	struct stream_args a = {.retention_ms = RETENTION_MS_DEFAULT};
	int r = parse_args(&cli, what, argc - 1, argv + 1, &a);
	if (r >= 0)
		return r;
	int npos = argc - 1 - optind;
	char **pos = argv + 1 + optind;
	if (cli_stream_settings_sub(sub))
		return cli_stream_settings(&cli, what, sub, npos, pos, a.format == FORMAT_JSON);
	bool needs_name = strcmp(sub, "list") != 0;
	if (strcmp(sub, "split") == 0 || strcmp(sub, "merge") == 0 || strcmp(sub, "scale") == 0)
		return reshard(&cli, what, sub, npos, pos, &a);
	if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "describe") &&
	    strcmp(sub, "delete"))
		return cli_usage_error("stream", "unknown subcommand '%s'", sub);
	if (npos != (needs_name ? 1 : 0))
		return cli_usage_error(what,
				       needs_name ? "wants one stream NAME" : "takes no arguments");
	if (a.at)
		return cli_usage_error(what, "--at is for split");
	if (strcmp(sub, "create") == 0 && !a.shards_set)
		return cli_usage_error(what, "--shards N is required");
	a.name = needs_name ? pos[0] : NULL;

	struct sluice_client *c;
	r = cli_connect(&cli, what, &c);
	if (r)
		return r;
	int ret = CLI_EXIT_OK;
	if (strcmp(sub, "create") == 0) {
		r = sluice_stream_create(c, a.name, (uint32_t)a.shards, (uint64_t)a.retention_ms);
		if (r < 0)
			ret = cli_fail_client(what, c, r);
	} else if (strcmp(sub, "delete") == 0) {
		r = sluice_stream_delete(c, a.name);
		if (r < 0)
			ret = cli_fail_client(what, c, r);
	} else if (strcmp(sub, "list") == 0) {
		char **names;
		size_t n;
		r = sluice_stream_list(c, &names, &n);
		if (r < 0) {
			ret = cli_fail_client(what, c, r);
		} else {
			if (a.format == FORMAT_JSON) {
				json_t *arr = json_array();
				for (size_t i = 0; i < n; i++)
					json_array_append_new(arr, json_string(names[i]));
				ret = print_json(arr);
			} else {
				for (size_t i = 0; i < n; i++)
					printf("%s\n", names[i]);
			}
			sluice_strings_free(names, n);
		}
	} else {
		struct sluice_stream_info *info;
		r = sluice_stream_describe(c, a.name, &info);
		if (r < 0) {
			ret = cli_fail_client(what, c, r);
		} else {
			ret = describe_print(info, a.format);
			sluice_stream_info_free(info);
		}
	}
	sluice_client_close(c);
	if (fflush(stdout) != 0 && ret == CLI_EXIT_OK)
		ret = cli_fail(what, "writing output: %s", strerror(errno));
	return ret;
}
