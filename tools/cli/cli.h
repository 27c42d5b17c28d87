/* Shared pieces of the sluice CLI: server address, error reporting, exit codes. */
#ifndef SL_CLI_H
#define SL_CLI_H

#include <sluice/client.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAILED = 1, /* the operation failed */
	CLI_EXIT_USAGE = 2,  /* bad command line */
};

struct cli {
	const char *server;	/* HOST:PORT */
	const char *auth_token; /* NULL: none; from --auth-token-file or $SLUICE_AUTH_TOKEN */
};

/* "sluice: WHAT: MESSAGE" on stderr; returns CLI_EXIT_FAILED. */
__attribute__((format(printf, 2, 3))) int cli_fail(const char *what, const char *fmt, ...);
/* Report err of a client call (with the server's message when there is one). */
int cli_fail_client(const char *what, struct sluice_client *c, int err);
/* "sluice: WHAT: MESSAGE" plus a hint to --help; returns CLI_EXIT_USAGE. */
__attribute__((format(printf, 2, 3))) int cli_usage_error(const char *what, const char *fmt, ...);
int cli_connect(const struct cli *cli, const char *what, struct sluice_client **ret);
/* "3" or "shardId-000000000003". */
int cli_parse_shard_id(const char *s, uint32_t *ret);
/* trim-horizon, latest, seq:N, time:ISO8601 (or time:UNIX_MS). 0 or -EINVAL. */
int cli_parse_position(const char *s, struct sluice_position *ret);
/* Whether argv holds -h/--help (before a "--"). */
bool cli_wants_help(int argc, char **argv);

int cli_stream(const struct cli *cli, int argc, char **argv);
/* stream retention|tag|untag|tags (cli_stream_settings.c): pos are the positional arguments. */
bool cli_stream_settings_sub(const char *sub);
int cli_stream_settings(const struct cli *cli, const char *what, const char *sub, int npos,
			char **pos, bool json);
int cli_put(const struct cli *cli, int argc, char **argv);
int cli_get(const struct cli *cli, int argc, char **argv);
int cli_consumer(const struct cli *cli, int argc, char **argv);
int cli_firehose(const struct cli *cli, int argc, char **argv);
int cli_restore(const struct cli *cli, int argc, char **argv);
int cli_export(const struct cli *cli, int argc, char **argv);
int cli_import(const struct cli *cli, int argc, char **argv);
int cli_replay(const struct cli *cli, int argc, char **argv);

#endif
