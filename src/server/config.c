#include "server/config.h"

#include "common/logging.h"
#include "common/units.h"

#include <sluice/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: sluiced [options]\n"
    "  --data-dir DIR            data folder (default ./sluice-data)\n"
    "  --listen HOST:PORT        native protocol (default 127.0.0.1:7400; port 0 = any)\n"
    "  --http-listen HOST:PORT   Kinesis JSON API (HTTP/1.1, h2c), /healthz and /metrics\n"
    "                            (default 127.0.0.1:7401; 'off' = none)\n"
    "  --http-max-connections N  HTTP connections at once (default 256)\n"
    "  --http-access-keys FILE   verify Kinesis API SigV4 signatures: 'KEY_ID SECRET' lines\n"
    "  --kinesis-shard-limits on|off  Kinesis' per-shard write/read limits (default off)\n"
    "  --threads N               event loops (default: number of cores)\n"
    "  --fsync MODE              group (default) | interval=DURATION | never\n"
    "  --max-record-bytes SIZE   largest record data (default 1MiB, at most 64MiB)\n"
    "  --max-connections N       connections accepted at once (default 10000)\n"
    "  --max-inflight-bytes SIZE per connection, before reading pauses (default 64MiB)\n"
    "  --segment-bytes SIZE      log segment size (default 128MiB)\n"
    "  --auth-token-file FILE    require this token from clients\n"
    "  --log-level LEVEL         debug | info (default) | warn | error\n"
    "  --firehose-cpu-priority P nice:N (N 1..19, default nice:10) | idle | normal: the\n"
    "                            firehoses' compression yields the CPU to the produce path\n"
    "  --firehose-background-lag DURATION  past this lag (beyond the buffering interval) a\n"
    "                            firehose runs at normal priority until it caught up (default\n"
    "                            60s; 0 = always at --firehose-cpu-priority)\n"
    "  --config FILE             read KEY = VALUE lines (the flags above without --)\n"
    "  --help, --version\n";

void sl_server_config_defaults(struct sl_server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->data_dir, sizeof(cfg->data_dir), "./sluice-data");
	snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1:7400");
	snprintf(cfg->http_listen, sizeof(cfg->http_listen), "127.0.0.1:7401");
	cfg->fsync_mode = SL_FSYNC_GROUP;
	cfg->fsync_interval_ms = 1000;
	cfg->max_record_bytes = SLUICE_RECORD_BYTES_DEFAULT;
	cfg->max_connections = SL_MAX_CONNECTIONS_DEFAULT;
	cfg->max_inflight_bytes = SL_MAX_INFLIGHT_BYTES_DEFAULT;
	cfg->segment_bytes = SL_SEGMENT_BYTES_DEFAULT;
	cfg->log_level = SL_MSG_INFO;
	cfg->firehose_priority =
	    (struct sl_cpu_priority){.cls = SL_CPU_PRIORITY_NICE, .nice = SL_FIREHOSE_NICE_DEFAULT};
	cfg->firehose_background_lag_ms = SL_FIREHOSE_BACKGROUND_LAG_MS_DEFAULT;
}

int sl_parse_fsync(const char *s, enum sl_fsync_mode *ret_mode, int64_t *ret_interval_ms)
{
	if (strcmp(s, "group") == 0) {
		*ret_mode = SL_FSYNC_GROUP;
		return 0;
	}
	if (strcmp(s, "never") == 0) {
		*ret_mode = SL_FSYNC_NEVER;
		return 0;
	}
	if (strncmp(s, "interval=", 9) == 0) {
		int64_t ms;
		if (sl_parse_duration_ms(s + 9, &ms) < 0 || ms <= 0)
			return -EINVAL;
		*ret_mode = SL_FSYNC_INTERVAL;
		*ret_interval_ms = ms;
		return 0;
	}
	return -EINVAL;
}

int sl_parse_listen(const char *s, struct sockaddr_in *ret)
{
	char host[256];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	uint64_t port;
	if (sl_parse_u64(colon + 1, &port) < 0 || port > 65535)
		return -EINVAL;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (strcmp(host, "localhost") == 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return -EINVAL;
	*ret = a;
	return 0;
}

static int set_string(char *dst, size_t len, const char *v)
{
	if (strlen(v) >= len)
		return -EINVAL;
	snprintf(dst, len, "%s", v);
	return 0;
}

/* Apply one KEY=VALUE setting (key without dashes). */
static int apply(struct sl_server_config *cfg, const char *key, const char *v)
{
	uint64_t u;
	if (strcmp(key, "data-dir") == 0)
		return set_string(cfg->data_dir, sizeof(cfg->data_dir), v);
	if (strcmp(key, "listen") == 0) {
		struct sockaddr_in a;
		return sl_parse_listen(v, &a) ?: set_string(cfg->listen, sizeof(cfg->listen), v);
	}
	if (strcmp(key, "http-listen") == 0) {
		struct sockaddr_in a;
		if (strcmp(v, "off") != 0 && sl_parse_listen(v, &a) < 0)
			return -EINVAL;
		return set_string(cfg->http_listen, sizeof(cfg->http_listen), v);
	}
	if (strcmp(key, "kinesis-shard-limits") == 0) {
		if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
			return -EINVAL;
		cfg->kinesis_shard_limits = strcmp(v, "on") == 0;
		return 0;
	}
	if (strcmp(key, "http-access-keys") == 0)
		return set_string(cfg->http_access_keys, sizeof(cfg->http_access_keys), v);
	if (strcmp(key, "http-max-connections") == 0) {
		if (sl_parse_u64(v, &u) < 0 || u == 0 || u > 10000)
			return -EINVAL;
		cfg->http_max_connections = (unsigned)u;
		return 0;
	}
	if (strcmp(key, "threads") == 0) {
		if (sl_parse_u64(v, &u) < 0 || u > 256)
			return -EINVAL;
		cfg->threads = (unsigned)u;
		return 0;
	}
	if (strcmp(key, "fsync") == 0)
		return sl_parse_fsync(v, &cfg->fsync_mode, &cfg->fsync_interval_ms);
	if (strcmp(key, "max-record-bytes") == 0) {
		if (sl_parse_size_bytes(v, &u) < 0 || u == 0 || u > SLUICE_RECORD_BYTES_LIMIT)
			return -EINVAL;
		cfg->max_record_bytes = (uint32_t)u;
		return 0;
	}
	if (strcmp(key, "max-connections") == 0) {
		if (sl_parse_u64(v, &u) < 0 || u == 0 || u > 1000000)
			return -EINVAL;
		cfg->max_connections = (unsigned)u;
		return 0;
	}
	if (strcmp(key, "max-inflight-bytes") == 0) {
		if (sl_parse_size_bytes(v, &u) < 0 || u < 4096)
			return -EINVAL;
		cfg->max_inflight_bytes = u;
		return 0;
	}
	if (strcmp(key, "segment-bytes") == 0) {
		if (sl_parse_size_bytes(v, &u) < 0 || u < 4096)
			return -EINVAL;
		cfg->segment_bytes = u;
		return 0;
	}
	if (strcmp(key, "auth-token-file") == 0)
		return set_string(cfg->auth_token_file, sizeof(cfg->auth_token_file), v);
	if (strcmp(key, "firehose-cpu-priority") == 0)
		return sl_cpu_priority_parse(v, &cfg->firehose_priority);
	if (strcmp(key, "firehose-background-lag") == 0) {
		int64_t ms;
		if (sl_parse_duration_ms(v, &ms) < 0 || ms < 0)
			return -EINVAL;
		cfg->firehose_background_lag_ms = ms;
		return 0;
	}
	if (strcmp(key, "log-level") == 0) {
		static const char *levels[] = {"debug", "info", "warn", "error"};
		for (int i = 0; i < 4; i++)
			if (strcmp(v, levels[i]) == 0) {
				cfg->log_level = i;
				return 0;
			}
		return -EINVAL;
	}
	return -ENOENT;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

static void set_msg(char *err_msg, size_t err_msg_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_msg(char *err_msg, size_t err_msg_len, const char *fmt, ...)
{
	if (!err_msg || err_msg_len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_msg, err_msg_len, fmt, ap);
	va_end(ap);
}

int sl_server_config_parse_text(struct sl_server_config *cfg, const char *text, size_t len,
				char *err_msg, size_t err_msg_len)
{
	char line[SL_SERVER_CONFIG_LINE_BYTES_MAX + 1];
	int lineno = 0;
	set_msg(err_msg, err_msg_len, "%s", "");
	for (size_t pos = 0; pos < len;) {
		lineno++;
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;
		pos += n + (nl ? 1 : 0);
		if (n > SL_SERVER_CONFIG_LINE_BYTES_MAX) {
			set_msg(err_msg, err_msg_len, "line %d: longer than %u bytes", lineno,
				SL_SERVER_CONFIG_LINE_BYTES_MAX);
			return -EINVAL;
		}
		if (memchr(start, '\0', n)) {
			set_msg(err_msg, err_msg_len, "line %d: NUL byte", lineno);
			return -EINVAL;
		}
		memcpy(line, start, n);
		line[n] = '\0';
		char *s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			set_msg(err_msg, err_msg_len, "line %d: expected KEY = VALUE", lineno);
			return -EINVAL;
		}
		*eq = '\0';
		char *key = trim(s), *val = trim(eq + 1);
		int a = apply(cfg, key, val);
		if (a < 0) {
			set_msg(err_msg, err_msg_len, "line %d: %s '%.64s'", lineno,
				a == -ENOENT ? "unknown key" : "bad value for", key);
			return -EINVAL;
		}
	}
	return 0;
}

static int load_file(struct sl_server_config *cfg, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "sluiced: cannot open config file %s: %s\n", path, strerror(errno));
		return -EINVAL;
	}
	/* One byte past the limit, so that a longer file is refused, not cut. */
	char *text = malloc(SL_SERVER_CONFIG_FILE_BYTES_MAX + 1);
	size_t len = text ? fread(text, 1, SL_SERVER_CONFIG_FILE_BYTES_MAX + 1, f) : 0;
	int err = !text || ferror(f);
	fclose(f);
	int r = -EINVAL;
	if (err) {
		fprintf(stderr, "sluiced: cannot read config file %s\n", path);
	} else if (len > SL_SERVER_CONFIG_FILE_BYTES_MAX) {
		fprintf(stderr, "sluiced: config file %s is larger than %u bytes\n", path,
			SL_SERVER_CONFIG_FILE_BYTES_MAX);
	} else {
		char msg[256];
		r = sl_server_config_parse_text(cfg, text, len, msg, sizeof(msg));
		if (r < 0)
			fprintf(stderr, "sluiced: %s: %s\n", path, msg);
	}
	free(text);
	return r;
}

int sl_server_config_parse(struct sl_server_config *cfg, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			int r = load_file(cfg, argv[i + 1]);
			if (r < 0)
				return r;
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage, stdout);
			return 1;
		}
		if (strcmp(a, "--version") == 0) {
			puts("sluiced " SLUICE_VERSION);
			return 1;
		}
		if (strncmp(a, "--", 2) != 0) {
			fprintf(stderr, "sluiced: unexpected argument '%s' (see --help)\n", a);
			return -EINVAL;
		}
		char key[64];
		const char *val;
		const char *eq = strchr(a, '=');
		if (eq) {
			size_t n = (size_t)(eq - a - 2);
			if (n >= sizeof(key))
				n = sizeof(key) - 1;
			memcpy(key, a + 2, n);
			key[n] = '\0';
			val = eq + 1;
		} else {
			snprintf(key, sizeof(key), "%s", a + 2);
			if (i + 1 >= argc) {
				fprintf(stderr, "sluiced: %s needs a value (see --help)\n", a);
				return -EINVAL;
			}
			val = argv[++i];
		}
		if (strcmp(key, "config") == 0)
			continue;
		int r = apply(cfg, key, val);
		if (r == -ENOENT) {
			fprintf(stderr, "sluiced: unknown option --%s (see --help)\n", key);
			return -EINVAL;
		}
		if (r < 0) {
			fprintf(stderr, "sluiced: bad value '%s' for --%s (see --help)\n", val,
				key);
			return -EINVAL;
		}
	}
	return 0;
}
