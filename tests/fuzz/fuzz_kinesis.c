/*
 * The Kinesis JSON request path (src/kinesis/api.c and the operations' validation) and the
 * shard iterator decoder. Input: the operation name, a newline, then the request body. The
 * session's log server is a closed loopback port, so a request that passes validation ends in
 * a refused connection (InternalFailure), never in a network wait.
 */
#include "kinesis/api.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kin_api *api;
	static struct kin_session session;
	static struct kin_reply reply;
	if (!api) {
		struct kin_api_config cfg = {.native_addr = "127.0.0.1:1"};
		if (kin_api_create(&cfg, &api, NULL, 0) < 0)
			abort();
		kin_session_init(&session, api);
		kin_reply_init(&reply);
	}
	const uint8_t *nl = memchr(data, '\n', size);
	size_t op_len = nl ? (size_t)(nl - data) : size;
	char target[96];
	size_t plen = strlen(KIN_TARGET_PREFIX);
	memcpy(target, KIN_TARGET_PREFIX, plen);
	size_t n = op_len < sizeof(target) - plen ? op_len : sizeof(target) - plen;
	memcpy(target + plen, data, n);
	const uint8_t *body = nl ? nl + 1 : data + size;
	kin_handle(&session, target, plen + n, body, (size_t)(data + size - body), &reply);
	if (reply.status != 200 && reply.status != 400 && reply.status != 500 &&
	    reply.status != 503)
		abort();
	if (reply.status != 200 && reply.body.len == 0)
		abort(); /* every error has a body */
	struct kin_iterator it;
	kin_iterator_decode(api->iterator_key, (const char *)data, size, 0, &it);
	return 0;
}
