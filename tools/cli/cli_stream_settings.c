/* sluice stream retention|tag|untag|tags: a stream's retention and tags. */
#include "cli.h"

#include "common/units.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_stream_settings_sub(const char *sub)
{
	return strcmp(sub, "retention") == 0 || strcmp(sub, "tag") == 0 ||
	       strcmp(sub, "untag") == 0 || strcmp(sub, "tags") == 0;
}

static int print_tags(const struct sluice_tag *tags, size_t n, bool json)
{
	if (!json) {
		for (size_t i = 0; i < n; i++)
			printf("%s=%s\n", tags[i].key, tags[i].value);
		return CLI_EXIT_OK;
	}
	json_t *o = json_object();
	for (size_t i = 0; o && i < n; i++)
		json_object_set_new(o, tags[i].key, json_string(tags[i].value));
	if (!o)
		return cli_fail("stream tags", "out of memory");
	int r = json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(o);
	return r < 0 ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

int cli_stream_settings(const struct cli *cli, const char *what, const char *sub, int npos,
			char **pos, bool json)
{
	bool tag = strcmp(sub, "tag") == 0, untag = strcmp(sub, "untag") == 0;
	bool retention = strcmp(sub, "retention") == 0;
	int64_t retention_ms = 0;
	if (retention && npos != 2)
		return cli_usage_error(what, "wants a stream NAME and a DURATION");
	if ((tag || untag) && (npos < 2 || npos - 1 > SLUICE_TAGS_MAX))
		return cli_usage_error(what, "wants a stream NAME and 1..%d %s", SLUICE_TAGS_MAX,
				       tag ? "KEY=VALUE pairs" : "KEYs");
	if (!tag && !untag && !retention && npos != 1)
		return cli_usage_error(what, "wants one stream NAME");
	if (retention && (sl_parse_duration_ms(pos[1], &retention_ms) < 0 || retention_ms <= 0))
		return cli_usage_error(what, "bad DURATION '%s' (e.g. 48h, 7d)", pos[1]);
	struct sluice_tag tags[SLUICE_TAGS_MAX];
	const char *keys[SLUICE_TAGS_MAX];
	for (int i = 1; (tag || untag) && i < npos; i++) {
		if (untag) {
			keys[i - 1] = pos[i];
			continue;
		}
		char *eq = strchr(pos[i], '=');
		if (!eq || eq == pos[i])
			return cli_usage_error(what, "'%s' is not KEY=VALUE", pos[i]);
		*eq = '\0'; /* argv is ours to cut */
		tags[i - 1].key = pos[i];
		tags[i - 1].value = eq + 1;
	}
	struct sluice_client *c;
	int r = cli_connect(cli, what, &c);
	if (r)
		return r;
	int ret = CLI_EXIT_OK;
	if (retention) {
		r = sluice_stream_set_retention(c, pos[0], (uint64_t)retention_ms);
	} else if (tag) {
		r = sluice_stream_add_tags(c, pos[0], tags, (size_t)npos - 1);
	} else if (untag) {
		r = sluice_stream_remove_tags(c, pos[0], keys, (size_t)npos - 1);
	} else {
		struct sluice_tag *list;
		size_t n;
		r = sluice_stream_list_tags(c, pos[0], &list, &n);
		if (r == 0) {
			ret = print_tags(list, n, json);
			sluice_tags_free(list, n);
		}
	}
	if (r < 0)
		ret = cli_fail_client(what, c, r);
	sluice_client_close(c);
	return ret;
}
