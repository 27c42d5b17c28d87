/*
 * sluice: the command-line client. Commands live in cli_stream.c, cli_put.c and cli_get.c; this
 * file holds the global options, the dispatch and the shared error reporting.
 *
 * Exit codes: 0 ok, 1 the operation failed, 2 usage error. Every error is one line on stderr.
 */
#include "cli.h"

#include "common/units.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: sluice [--server HOST:PORT] COMMAND ...\n"
    "\n"
    "commands:\n"
    "  stream create NAME --shards N [--retention DURATION]\n"
    "  stream list [--format text|json]\n"
    "  stream describe NAME [--format text|json]\n"
    "  stream delete NAME\n"
    "  put NAME [--key K | --key-field FIELD] [--batch N]\n"
    "  get NAME [--shard ID] [--from trim-horizon|latest|seq:N|time:ISO8601] [--max N]\n"
    "           [--follow] [--format raw|json]\n"
    "\n"
    "options:\n"
    "  --server HOST:PORT  the sluiced to talk to (default $SLUICE_SERVER or " SLUICE_DEFAULT_SERVER
    ")\n"
    "  -h, --help          this text; `sluice COMMAND --help` for a command\n";

int cli_fail(const char *what, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "sluice: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_EXIT_FAILED;
}

int cli_fail_client(const char *what, struct sluice_client *c, int err)
{
	const char *msg = c ? sluice_client_last_error_message(c) : "";
	return cli_fail(what, "%s", msg && msg[0] ? msg : sluice_strerror(err));
}

int cli_usage_error(const char *what, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "sluice: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see sluice --help)\n");
	return CLI_EXIT_USAGE;
}

int cli_connect(const struct cli *cli, const char *what, struct sluice_client **ret)
{
	int r = sluice_client_connect(cli->server, NULL, ret);
	if (r < 0)
		return cli_fail(what, "cannot connect to %s: %s", cli->server, sluice_strerror(r));
	return 0;
}

int cli_parse_shard_id(const char *s, uint32_t *ret)
{
	static const char prefix[] = "shardId-";
	if (strncmp(s, prefix, sizeof(prefix) - 1) == 0)
		s += sizeof(prefix) - 1;
	uint64_t v;
	if (sl_parse_u64(s, &v) < 0 || v > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	struct cli cli = {.server = getenv("SLUICE_SERVER")};
	if (!cli.server || !cli.server[0])
		cli.server = SLUICE_DEFAULT_SERVER;
	static const struct option opts[] = {
	    {"server", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int o;
	/* "+": stop at the command; its options are its own. */
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			cli.server = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return CLI_EXIT_OK;
		default:
			fputs(usage_text, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fputs(usage_text, stderr);
		return CLI_EXIT_USAGE;
	}
	const char *cmd = argv[optind];
	int cargc = argc - optind;
	char **cargv = argv + optind;
	optind = 0; /* full getopt reinitialization for the command's own parsing */
	if (strcmp(cmd, "stream") == 0)
		return cli_stream(&cli, cargc, cargv);
	if (strcmp(cmd, "put") == 0)
		return cli_put(&cli, cargc, cargv);
	if (strcmp(cmd, "get") == 0)
		return cli_get(&cli, cargc, cargv);
	if (strcmp(cmd, "help") == 0) {
		fputs(usage_text, stdout);
		return CLI_EXIT_OK;
	}
	return cli_usage_error(cmd, "unknown command");
}
