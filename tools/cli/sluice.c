/*
 * sluice: the command-line client. Commands live in cli_stream.c, cli_put.c, cli_get.c,
 * cli_consumer.c, cli_firehose.c, cli_restore.c, cli_replay.c and cli_export.c (export, import);
 * this file holds the global options, the dispatch and the shared helpers.
 *
 * Exit codes: 0 ok, 1 the operation failed, 2 usage error, 3 (restore only) done, but records
 * are missing from the archive (gaps, bad objects). Every error is one line on stderr.
 */
#include "cli.h"

#include "common/units.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An AUTH token is a str16 on the wire; anything near that size in a file is not a token. */
#define AUTH_TOKEN_FILE_BYTES_MAX 4096

static const char usage_text[] =
    "usage: sluice [--server HOST:PORT] [--auth-token-file FILE] COMMAND ...\n"
    "\n"
    "commands:\n"
    "  stream create NAME --shards N [--retention DURATION]\n"
    "  stream list [--format text|json]\n"
    "  stream describe NAME [--format text|json]\n"
    "  stream delete NAME\n"
    "  stream split NAME SHARD [--at HASHKEY]   stream merge NAME SHARD ADJACENT\n"
    "  stream scale NAME COUNT\n"
    "  put NAME [--key K | --key-field FIELD] [--batch N]\n"
    "  get NAME [--shard ID] [--from trim-horizon|latest|seq:N|time:ISO8601] [--max N]\n"
    "           [--follow] [--format raw|json]\n"
    "  consumer create NAME --stream S --handler exec:CMD|plugin:PATH|remote [options]\n"
    "  consumer list [--format text|json]\n"
    "  consumer describe NAME [--format text|json]\n"
    "  consumer delete NAME\n"
    "  consumer reset NAME --to trim-horizon|latest|seq:N|time:ISO8601 [--shard ID]\n"
    "  firehose create NAME --stream S [--dest file:///DIR|s3://BUCKET[/PREFIX]] [options]\n"
    "  firehose list [--format text|json]\n"
    "  firehose describe NAME [--format text|json]\n"
    "  firehose delete NAME\n"
    "  firehose flush NAME\n"
    "  restore --from file:///DIR|s3://BUCKET/PREFIX --stream NAME [--into NEW_NAME]\n"
    "          [--from-time T] [--to-time T] [--endpoint URL] [--accept-gaps]\n"
    "  replay NAME [--shard ID ...] --from POS [--to POS] --into OTHER [--keep-keys]\n"
    "  export NAME --shard ID [--from POS] [--to POS] > FILE\n"
    "  import [--stream NAME] [--new-seqs] < FILE\n"
    "\n"
    "options:\n"
    "  --server HOST:PORT  the sluiced to talk to (default $SLUICE_SERVER or " SLUICE_DEFAULT_SERVER
    ")\n"
    "  --auth-token-file FILE  send the token in FILE (trailing newline ignored); default\n"
    "                      $SLUICE_AUTH_TOKEN\n"
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
	struct sluice_client_options opts = {.auth_token = cli->auth_token};
	int r = sluice_client_connect(cli->server, &opts, ret);
	if (r < 0)
		return cli_fail(what, "cannot connect to %s: %s", cli->server, sluice_strerror(r));
	return 0;
}

int cli_parse_position(const char *s, struct sluice_position *ret)
{
	if (strcmp(s, "trim-horizon") == 0) {
		*ret = (struct sluice_position){.type = SLUICE_POS_TRIM_HORIZON};
		return 0;
	}
	if (strcmp(s, "latest") == 0) {
		*ret = (struct sluice_position){.type = SLUICE_POS_LATEST};
		return 0;
	}
	if (strncmp(s, "seq:", 4) == 0) {
		uint64_t v;
		if (sl_parse_u64(s + 4, &v) < 0)
			return -EINVAL;
		*ret = (struct sluice_position){.type = SLUICE_POS_AT_SEQ, .value = v};
		return 0;
	}
	if (strncmp(s, "time:", 5) == 0) {
		int64_t ms;
		if (sl_parse_timestamp_ms(s + 5, &ms) < 0 || ms < 0)
			return -EINVAL;
		*ret = (struct sluice_position){.type = SLUICE_POS_AT_TIMESTAMP,
						.value = (uint64_t)ms};
		return 0;
	}
	return -EINVAL;
}

/* The token in path, without trailing CR/LF. Returns a malloc'd string or NULL (reported). */
static char *read_token_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cli_fail("--auth-token-file", "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = malloc(AUTH_TOKEN_FILE_BYTES_MAX + 1);
	size_t len = 0;
	while (buf && len <= AUTH_TOKEN_FILE_BYTES_MAX) {
		ssize_t n = read(fd, buf + len, AUTH_TOKEN_FILE_BYTES_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_fail("--auth-token-file", "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (!buf) {
		cli_fail("--auth-token-file", "out of memory");
		goto fail;
	}
	if (len > AUTH_TOKEN_FILE_BYTES_MAX) {
		cli_fail("--auth-token-file", "%s: longer than %d bytes", path,
			 AUTH_TOKEN_FILE_BYTES_MAX);
		goto fail;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	if (len == 0 || memchr(buf, '\0', len)) {
		cli_fail("--auth-token-file", "%s: %s", path,
			 len ? "contains a NUL byte" : "is empty");
		goto fail;
	}
	close(fd);
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
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
	struct cli cli = {.server = getenv("SLUICE_SERVER"),
			  .auth_token = getenv("SLUICE_AUTH_TOKEN")};
	if (!cli.server || !cli.server[0])
		cli.server = SLUICE_DEFAULT_SERVER;
	if (cli.auth_token && !cli.auth_token[0])
		cli.auth_token = NULL;
	static const struct option opts[] = {
	    {"server", required_argument, NULL, 's'},
	    {"auth-token-file", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	/* Owns the token read from a file; freed when main returns. */
	char *token_buf = NULL;
	int o;
	/* "+": stop at the command; its options are its own. */
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			cli.server = optarg;
			break;
		case 'a':
			free(token_buf);
			token_buf = read_token_file(optarg);
			if (!token_buf)
				return CLI_EXIT_FAILED;
			cli.auth_token = token_buf;
			break;
		case 'h':
			free(token_buf);
			fputs(usage_text, stdout);
			return CLI_EXIT_OK;
		default:
			free(token_buf);
			fputs(usage_text, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	int ret;
	if (optind >= argc) {
		fputs(usage_text, stderr);
		free(token_buf);
		return CLI_EXIT_USAGE;
	}
	const char *cmd = argv[optind];
	int cargc = argc - optind;
	char **cargv = argv + optind;
	optind = 0; /* full getopt reinitialization for the command's own parsing */
	if (strcmp(cmd, "stream") == 0) {
		ret = cli_stream(&cli, cargc, cargv);
	} else if (strcmp(cmd, "put") == 0) {
		ret = cli_put(&cli, cargc, cargv);
	} else if (strcmp(cmd, "get") == 0) {
		ret = cli_get(&cli, cargc, cargv);
	} else if (strcmp(cmd, "consumer") == 0) {
		ret = cli_consumer(&cli, cargc, cargv);
	} else if (strcmp(cmd, "firehose") == 0) {
		ret = cli_firehose(&cli, cargc, cargv);
	} else if (strcmp(cmd, "restore") == 0) {
		ret = cli_restore(&cli, cargc, cargv);
	} else if (strcmp(cmd, "replay") == 0) {
		ret = cli_replay(&cli, cargc, cargv);
	} else if (strcmp(cmd, "export") == 0) {
		ret = cli_export(&cli, cargc, cargv);
	} else if (strcmp(cmd, "import") == 0) {
		ret = cli_import(&cli, cargc, cargv);
	} else if (strcmp(cmd, "help") == 0) {
		fputs(usage_text, stdout);
		ret = CLI_EXIT_OK;
	} else {
		ret = cli_usage_error(cmd, "unknown command");
	}
	free(token_buf);
	return ret;
}
