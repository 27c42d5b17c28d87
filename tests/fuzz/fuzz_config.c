/*
 * libFuzzer target for the sluiced config file (sl_server_config_parse_text,
 * src/server/config.h). The input is a config file's bytes, applied over the defaults. The parser
 * must never print, must always leave a terminated message (non-empty on failure, also when the
 * message buffer is tiny), and an accepted file must leave a config within the flags' limits.
 * Deps: src/server/config.c compiled in (it is part of sluiced, not of a library) and common.
 * Seeds: tests/fuzz/corpus/config/.
 */
#include "server/config.h"

#include <sluice/types.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_string(const char *s, size_t cap)
{
	if (!memchr(s, '\0', cap))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sl_server_config cfg;
	char msg[128];
	sl_server_config_defaults(&cfg);
	memset(msg, 0x5a, sizeof(msg));
	int r = sl_server_config_parse_text(&cfg, (const char *)data, size, msg, sizeof(msg));
	if (!memchr(msg, '\0', sizeof(msg)))
		abort();
	if (r != 0 && (r != -EINVAL || msg[0] == '\0'))
		abort();
	check_string(cfg.data_dir, sizeof(cfg.data_dir));
	check_string(cfg.listen, sizeof(cfg.listen));
	check_string(cfg.http_listen, sizeof(cfg.http_listen));
	check_string(cfg.auth_token_file, sizeof(cfg.auth_token_file));
	if (r == 0) {
		if (cfg.threads > 256 || cfg.max_record_bytes == 0 ||
		    cfg.max_record_bytes > SLUICE_RECORD_BYTES_LIMIT || cfg.max_connections == 0 ||
		    cfg.max_inflight_bytes < 4096 || cfg.segment_bytes < 4096 ||
		    cfg.log_level < 0 || cfg.log_level > 3 || cfg.fsync_interval_ms <= 0)
			abort();
	}
	/* The same input with a one-byte and a zero-byte message buffer. */
	char tiny = 'x';
	sl_server_config_defaults(&cfg);
	int r2 = sl_server_config_parse_text(&cfg, (const char *)data, size, &tiny, 1);
	if (r2 != r || tiny != '\0')
		abort();
	sl_server_config_defaults(&cfg);
	if (sl_server_config_parse_text(&cfg, (const char *)data, size, NULL, 0) != r)
		abort();
	return 0;
}
