/*
 * Test plugin: sleeps SLUICE_TEST_SLEEP_MS (read on every call; default 1000) per batch, then
 * succeeds. For the engine's timeout and abandon-the-thread path.
 */
#include <sluice/handler.h>

#include <stdlib.h>
#include <time.h>

static int slow_handle(void *state, const struct sluice_handler_batch *batch,
		       struct sluice_handler_result *result)
{
	const char *s = getenv("SLUICE_TEST_SLEEP_MS");
	long ms = s ? strtol(s, NULL, 10) : 1000;
	if (ms > 0) {
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) != 0)
			;
	}
	result->status = SLUICE_HANDLER_OK;
	return 0;
}

static const struct sluice_handler_v1 slow = {
    .abi_version = SLUICE_HANDLER_ABI_VERSION,
    .handle = slow_handle,
};

const struct sluice_handler_v1 *sluice_handler_entry_v1(void);
const struct sluice_handler_v1 *sluice_handler_entry_v1(void)
{
	return &slow;
}
