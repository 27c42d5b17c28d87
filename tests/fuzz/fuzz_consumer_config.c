/*
 * libFuzzer target for consumer registrations (sl_consumer_config_from_json,
 * src/consumer/consumer_config.h): DATA/meta/consumers/NAME.json, read at every start. The input
 * is a file's bytes. An accepted document must pass sl_consumer_config_check, serialise, parse
 * back, and serialise to the same bytes again; a refused one is SLUICE_ERR_CORRUPT (or -ENOMEM)
 * with a message. Deps: consumer_meta_dep (jansson, stream name rules). Seeds:
 * tests/fuzz/corpus/consumer_config/.
 */
#include "consumer/consumer_config.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sl_consumer_config c, c2;
	char msg[256];
	memset(msg, 0x5a, sizeof(msg));
	int r = sl_consumer_config_from_json((const char *)data, size, &c, msg, sizeof(msg));
	if (r != 0) {
		if (r != SLUICE_ERR_CORRUPT && r != -ENOMEM)
			abort();
		if (r == SLUICE_ERR_CORRUPT && (!memchr(msg, '\0', sizeof(msg)) || msg[0] == '\0'))
			abort();
		return 0;
	}
	if (sl_consumer_config_check(&c, msg, sizeof(msg)) != 0)
		abort();
	char *json = NULL, *json2 = NULL;
	size_t len = 0, len2 = 0;
	if (sl_consumer_config_to_json(&c, &json, &len) != 0)
		abort();
	if (sl_consumer_config_from_json(json, len, &c2, msg, sizeof(msg)) != 0)
		abort(); /* what we write, we must read */
	if (sl_consumer_config_to_json(&c2, &json2, &len2) != 0)
		abort();
	if (len != len2 || memcmp(json, json2, len) != 0)
		abort();
	free(json);
	free(json2);
	return 0;
}
