/*
 * sluice put NAME: one record per stdin line through the asynchronous producer. Input is
 * streamed: memory stays bounded by the producer's buffer (send blocks while it is full).
 */
#include "cli.h"

#include "common/clock.h"
#include "common/units.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char put_usage[] =
    "usage: sluice put NAME [--key K | --key-field FIELD] [--batch N]\n"
    "  Sends each line of stdin (newline stripped) as one record. The partition key is K, the\n"
    "  top-level FIELD of the line read as JSON, or else the line number.\n"
    "  --batch N  records per request (default 500, at most 10000)\n";

/* Progress is redrawn this often when stderr is a terminal. */
#define PROGRESS_INTERVAL_MS 250

struct put_state {
	atomic_uint_fast64_t acked;
	atomic_uint_fast64_t failed;
	/* the first failure, for the final report */
	atomic_int first_err;
	atomic_uint_fast64_t first_err_line;
};

/* Written by the producer's I/O thread, read by the main thread at the end. */
static struct put_state put_state;

/* ctx packs the line number. */
static void on_ack(void *ctx, int status, uint32_t shard_id, uint64_t seq)
{
	(void)shard_id;
	(void)seq;
	if (status == 0) {
		atomic_fetch_add_explicit(&put_state.acked, 1, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&put_state.failed, 1, memory_order_relaxed);
	int zero = 0;
	if (atomic_compare_exchange_strong(&put_state.first_err, &zero, status))
		atomic_store(&put_state.first_err_line, (uint64_t)(uintptr_t)ctx);
}

/* The partition key of a JSON line: a string field as is, anything else as compact JSON. */
static int key_from_json(const char *line, size_t len, const char *field, char **ret_key,
			 size_t *ret_len, const char **ret_why)
{
	json_error_t jerr;
	json_t *doc = json_loadb(line, len, JSON_DECODE_ANY, &jerr);
	if (!doc || !json_is_object(doc)) {
		json_decref(doc);
		*ret_why = "not a JSON object";
		return -EINVAL;
	}
	json_t *v = json_object_get(doc, field);
	if (!v) {
		json_decref(doc);
		*ret_why = NULL;
		return -ENOENT;
	}
	char *key;
	if (json_is_string(v)) {
		*ret_len = json_string_length(v);
		key = malloc(*ret_len + 1);
		if (key)
			memcpy(key, json_string_value(v), *ret_len + 1);
	} else {
		key = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (key)
			*ret_len = strlen(key);
	}
	json_decref(doc);
	if (!key)
		return -ENOMEM;
	*ret_key = key;
	return 0;
}

static void progress(uint64_t sent, bool final)
{
	fprintf(stderr, "\r%llu sent, %llu acknowledged, %llu failed%s", (unsigned long long)sent,
		(unsigned long long)atomic_load(&put_state.acked),
		(unsigned long long)atomic_load(&put_state.failed), final ? "\n" : "");
}

int cli_put(const struct cli *cli_in, int argc, char **argv)
{
	struct cli cli = *cli_in;
	static const char what[] = "put";
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},   {"key-field", required_argument, NULL, 'f'},
	    {"batch", required_argument, NULL, 'b'}, {"server", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},	     {0},
	};
	if (cli_wants_help(argc, argv)) {
		fputs(put_usage, stdout);
		return CLI_EXIT_OK;
	}
	const char *key = NULL, *key_field = NULL;
	uint64_t batch = 0;
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (o) {
		case 'k':
			key = optarg;
			break;
		case 'f':
			key_field = optarg;
			break;
		case 'b':
			if (sl_parse_u64(optarg, &batch) < 0 || batch == 0 ||
			    batch > SLUICE_PUT_BATCH_MAX)
				return cli_usage_error(what, "--batch wants 1..%u",
						       SLUICE_PUT_BATCH_MAX);
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
	if (key && key_field)
		return cli_usage_error(what, "--key and --key-field exclude each other");
	if (key && (strlen(key) == 0 || strlen(key) > SLUICE_KEY_LEN_MAX))
		return cli_usage_error(what, "--key wants 1..%u bytes", SLUICE_KEY_LEN_MAX);
	const char *stream = argv[optind];

	struct sluice_producer_options popts = {.max_records_per_request = (uint32_t)batch,
						.auth_token = cli.auth_token};
	struct sluice_producer *p;
	int r = sluice_producer_create(cli.server, &popts, &p);
	if (r < 0)
		return cli_fail(what, "cannot connect to %s: %s", cli.server, sluice_strerror(r));

	bool tty = isatty(STDERR_FILENO);
	int64_t next_progress = sl_mono_ms() + PROGRESS_INTERVAL_MS;
	int ret = CLI_EXIT_OK;
	char *line = NULL;
	size_t line_cap = 0;
	uint64_t lineno = 0, sent = 0;
	ssize_t len;
	while ((len = getline(&line, &line_cap, stdin)) >= 0) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		char num[24];
		const char *k = key;
		size_t klen = key ? strlen(key) : 0;
		char *owned = NULL;
		if (key_field) {
			const char *why;
			r = key_from_json(line, (size_t)len, key_field, &owned, &klen, &why);
			if (r == -ENOENT)
				ret = cli_fail(what, "line %llu: no field '%s'",
					       (unsigned long long)lineno, key_field);
			else if (r == -EINVAL)
				ret = cli_fail(what, "line %llu: %s", (unsigned long long)lineno,
					       why);
			else if (r < 0)
				ret = cli_fail(what, "line %llu: %s", (unsigned long long)lineno,
					       strerror(-r));
			if (r < 0)
				break;
			k = owned;
		} else if (!key) {
			klen =
			    (size_t)snprintf(num, sizeof(num), "%llu", (unsigned long long)lineno);
			k = num;
		}
		r = sluice_producer_send(p, stream, k, klen, line, (size_t)len, on_ack,
					 (void *)(uintptr_t)lineno);
		free(owned);
		if (r < 0) {
			ret = cli_fail(what, "line %llu: %s", (unsigned long long)lineno,
				       sluice_strerror(r));
			break;
		}
		sent++;
		if (tty && (sent & 1023) == 0 && sl_mono_ms() >= next_progress) {
			progress(sent, false);
			next_progress = sl_mono_ms() + PROGRESS_INTERVAL_MS;
		}
	}
	if (ferror(stdin))
		ret = cli_fail(what, "reading stdin: %s", strerror(errno));
	free(line);
	sluice_producer_destroy(p); /* flushes: every callback has run after this */
	if (tty && sent >= 1024)
		progress(sent, true);
	uint64_t acked = atomic_load(&put_state.acked), failed = atomic_load(&put_state.failed);
	printf("%llu records acknowledged\n", (unsigned long long)acked);
	if (failed) {
		printf("%llu records failed\n", (unsigned long long)failed);
		int err = atomic_load(&put_state.first_err);
		ret = cli_fail(what, "%llu records failed (first: line %llu: %s)",
			       (unsigned long long)failed,
			       (unsigned long long)atomic_load(&put_state.first_err_line),
			       sluice_strerror(err));
	}
	return ret;
}
