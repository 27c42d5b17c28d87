/*
 * struct sl_plugin_handler: the `--handler plugin:PATH.so` kind, one loaded plugin state per
 * consumer worker (include/sluice/handler.h is the ABI the plugin implements).
 *
 * dlopen() is reference-counted: several workers of the same .so share one copy of its code and
 * globals, and each gets its own state from init(). Timeouts are not handled here: an in-process
 * call cannot be interrupted, so the engine runs invoke on a thread it can abandon.
 */
#ifndef SL_CONSUMER_HANDLER_PLUGIN_H
#define SL_CONSUMER_HANDLER_PLUGIN_H

#include <sluice/handler.h>

#include <stddef.h>
#include <stdint.h>

struct sl_plugin_handler;

/*
 * Load the plugin at path (a path without '/' is taken relative to the working directory, not
 * searched for like a library), check its ABI version and call its init(consumer, stream,
 * shard_id). 0, -ENOMEM, or SLUICE_ERR_INVALID_ARGUMENT with a message in err_msg naming the
 * file and the reason (missing or unloadable file, no sluice_handler_entry_v1, unknown ABI
 * version, no handle function, init failed).
 */
int sl_plugin_handler_create(const char *path, const char *consumer, const char *stream,
			     uint32_t shard_id, struct sl_plugin_handler **ret, char *err_msg,
			     size_t err_msg_len);

/*
 * Call the plugin's handle() on batch (borrowed for the call) and fill *ret. Returns 0 when the
 * plugin gave a result: OK, FAILED_FROM, ERROR, or a negative return from handle(), which is
 * ERROR too (with "handler returned -N (...)" if it left no message). Returns
 * SLUICE_ERR_PROTOCOL when the result itself is invalid (unknown status, failed_from outside the
 * batch): *ret is then ERROR with a message saying so.
 */
int sl_plugin_handler_invoke(struct sl_plugin_handler *h, const struct sluice_handler_batch *batch,
			     struct sluice_handler_result *ret);

/* close() the state and dlclose() the plugin. Accepts NULL. */
void sl_plugin_handler_destroy(struct sl_plugin_handler *h);

#endif
