/*
 * libFuzzer target for the exec handler's response parser (src/consumer/lambda_event.h).
 * The input is one response line. It is parsed against a fixed batch of sequence numbers, and
 * the result must be coherent: 0 with OK / FAILED_FROM (failed_from inside the batch) / ERROR,
 * or SLUICE_ERR_PROTOCOL with ERROR and a message; the message is always terminated.
 * Deps: consumer_handlers_dep (lambda_event.c, jansson, libcrypto). Seeds:
 * tests/fuzz/corpus/lambda_response/.
 */
#include "consumer/lambda_event.h"

#include <sluice/errors.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint64_t seqs[] = {1, 2, 3, 100, 205, 310, 1000000, 18446744073709551615ull};
#define COUNT (sizeof(seqs) / sizeof(seqs[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sluice_handler_result res;
	memset(&res, 0xa5, sizeof(res));
	int rc = sl_lambda_response_parse((const char *)data, size, seqs, COUNT, &res);
	if (!memchr(res.message, '\0', sizeof(res.message)))
		abort();
	if (rc == 0) {
		if (res.status == SLUICE_HANDLER_FAILED_FROM) {
			if (res.failed_from >= COUNT)
				abort();
		} else if (res.status != SLUICE_HANDLER_OK && res.status != SLUICE_HANDLER_ERROR) {
			abort();
		}
	} else if (rc != SLUICE_ERR_PROTOCOL || res.status != SLUICE_HANDLER_ERROR ||
		   res.message[0] == '\0') {
		abort();
	}
	/* A one-record batch too: failure lists then have a single valid identifier. */
	rc = sl_lambda_response_parse((const char *)data, size, &seqs[4], 1, &res);
	if (rc == 0 && res.status == SLUICE_HANDLER_FAILED_FROM && res.failed_from != 0)
		abort();
	return 0;
}
