/* Test plugin: init() fails with -EACCES, so loading must be refused with a message. */
#include <sluice/handler.h>

#include <errno.h>

static int fail_init(void **ret_state, const char *consumer, const char *stream, uint32_t shard_id)
{
	return -EACCES;
}

static int never_handle(void *state, const struct sluice_handler_batch *batch,
			struct sluice_handler_result *result)
{
	return -EINVAL;
}

static const struct sluice_handler_v1 init_fail = {
    .abi_version = SLUICE_HANDLER_ABI_VERSION,
    .init = fail_init,
    .handle = never_handle,
};

const struct sluice_handler_v1 *sluice_handler_entry_v1(void);
const struct sluice_handler_v1 *sluice_handler_entry_v1(void)
{
	return &init_fail;
}
