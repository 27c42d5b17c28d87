/*
 * libFuzzer target for stream metadata files (sl_stream_meta_from_json, src/stream/stream_meta.h):
 * DATA/meta/streams/NAME.json, read at every start. The input is a file's bytes. A document that
 * is accepted must pass sl_stream_meta_check, serialise, parse back, and serialise to the same
 * bytes again (the writer and the reader agree); a refused one is SLUICE_ERR_CORRUPT or -ENOMEM
 * with a message and no result. Deps: stream_dep (jansson). Seeds: tests/fuzz/corpus/stream_meta/.
 */
#include "stream/stream_meta.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_stream_meta *m = NULL;
	char msg[256];
	memset(msg, 0x5a, sizeof(msg));
	int r = sl_stream_meta_from_json((const char *)data, size, &m, msg, sizeof(msg));
	if (r != 0) {
		if ((r != SLUICE_ERR_CORRUPT && r != -ENOMEM) || m)
			abort();
		if (r == SLUICE_ERR_CORRUPT && (!memchr(msg, '\0', sizeof(msg)) || msg[0] == '\0'))
			abort();
		return 0;
	}
	if (!m || sl_stream_meta_check(m, msg, sizeof(msg)) != 0)
		abort();
	char *json = NULL, *json2 = NULL;
	size_t len = 0, len2 = 0;
	struct sl_stream_meta *m2 = NULL;
	if (sl_stream_meta_to_json(m, &json, &len) != 0)
		abort();
	if (sl_stream_meta_from_json(json, len, &m2, msg, sizeof(msg)) != 0)
		abort(); /* what we write, we must read */
	if (sl_stream_meta_to_json(m2, &json2, &len2) != 0)
		abort();
	if (len != len2 || memcmp(json, json2, len) != 0)
		abort();
	free(json);
	free(json2);
	sl_stream_meta_destroy(m);
	sl_stream_meta_destroy(m2);
	return 0;
}
