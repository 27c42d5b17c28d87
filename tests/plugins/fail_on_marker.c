/*
 * Test plugin: records whose data starts with "FAIL" fail. The batch is reported as
 * SLUICE_HANDLER_FAILED_FROM the first such record; a record whose data is exactly "ERROR" makes
 * handle() return -EIO (the whole batch fails). Otherwise OK. Stateless (no init/close).
 */
#include <sluice/handler.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int marker_handle(void *state, const struct sluice_handler_batch *batch,
			 struct sluice_handler_result *result)
{
	for (size_t i = 0; i < batch->count; i++) {
		const struct sluice_handler_record *r = &batch->records[i];
		if (r->data_len == 5 && memcmp(r->data, "ERROR", 5) == 0) {
			snprintf(result->message, sizeof(result->message),
				 "ERROR marker at seq %" PRIu64, r->seq);
			return -EIO;
		}
	}
	for (size_t i = 0; i < batch->count; i++) {
		const struct sluice_handler_record *r = &batch->records[i];
		if (r->data_len >= 4 && memcmp(r->data, "FAIL", 4) == 0) {
			result->status = SLUICE_HANDLER_FAILED_FROM;
			result->failed_from = i;
			snprintf(result->message, sizeof(result->message),
				 "FAIL marker at seq %" PRIu64, r->seq);
			return 0;
		}
	}
	result->status = SLUICE_HANDLER_OK;
	return 0;
}

static const struct sluice_handler_v1 fail_on_marker = {
    .abi_version = SLUICE_HANDLER_ABI_VERSION,
    .handle = marker_handle,
};

const struct sluice_handler_v1 *sluice_handler_entry_v1(void);
const struct sluice_handler_v1 *sluice_handler_entry_v1(void)
{
	return &fail_on_marker;
}
