/*
 * Test plugin: every batch succeeds. Counts batches and records per state and reports them in
 * the result message ("ok batches=B records=R"), so tests can see that state persists between
 * calls and that each worker has its own.
 */
#include <sluice/handler.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct counts {
	unsigned long batches;
	unsigned long records;
};

static int echo_init(void **ret_state, const char *consumer, const char *stream, uint32_t shard_id)
{
	struct counts *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*ret_state = c;
	return 0;
}

static int echo_handle(void *state, const struct sluice_handler_batch *batch,
		       struct sluice_handler_result *result)
{
	struct counts *c = state;
	c->batches++;
	c->records += batch->count;
	result->status = SLUICE_HANDLER_OK;
	snprintf(result->message, sizeof(result->message), "ok batches=%lu records=%lu", c->batches,
		 c->records);
	return 0;
}

static void echo_close(void *state)
{
	free(state);
}

static const struct sluice_handler_v1 echo_ok = {
    .abi_version = SLUICE_HANDLER_ABI_VERSION,
    .init = echo_init,
    .handle = echo_handle,
    .close = echo_close,
};

const struct sluice_handler_v1 *sluice_handler_entry_v1(void);
const struct sluice_handler_v1 *sluice_handler_entry_v1(void)
{
	return &echo_ok;
}
