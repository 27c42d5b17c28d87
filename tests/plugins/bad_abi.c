/* Test plugin: claims ABI version 999, which sluiced must refuse to load. */
#include <sluice/handler.h>

static int bad_handle(void *state, const struct sluice_handler_batch *batch,
		      struct sluice_handler_result *result)
{
	return 0;
}

static const struct sluice_handler_v1 bad_abi = {
    .abi_version = 999,
    .handle = bad_handle,
};

const struct sluice_handler_v1 *sluice_handler_entry_v1(void);
const struct sluice_handler_v1 *sluice_handler_entry_v1(void)
{
	return &bad_abi;
}
