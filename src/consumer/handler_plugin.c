/*
 * The plugin handler: dlopen, check the ABI, init/handle/close (handler_plugin.h).
 *
 * The plugin runs in our address space, so there is little to defend against, but what it hands
 * back is still checked before the engine acts on it: a status outside the enum or a failed_from
 * past the batch would otherwise make the engine checkpoint records nobody handled.
 */
#include "consumer/handler_plugin.h"

#include <sluice/errors.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct sl_plugin_handler {
	char *path;
	void *dl;
	const struct sluice_handler_v1 *vt;
	void *state;
	bool inited; /* init() succeeded: close() is owed */
};

__attribute__((format(printf, 3, 4))) static int refuse(char *err_msg, size_t err_msg_len,
							const char *fmt, ...)
{
	if (err_msg && err_msg_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err_msg, err_msg_len, fmt, ap);
		va_end(ap);
	}
	return SLUICE_ERR_INVALID_ARGUMENT;
}

int sl_plugin_handler_create(const char *path, const char *consumer, const char *stream,
			     uint32_t shard_id, struct sl_plugin_handler **ret, char *err_msg,
			     size_t err_msg_len)
{
	if (err_msg && err_msg_len)
		err_msg[0] = '\0';
	if (!path || !path[0])
		return refuse(err_msg, err_msg_len, "plugin path is empty");

	struct sl_plugin_handler *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	int r;
	/* dlopen searches the library path for a bare name; a plugin is a file, so anchor it. */
	if (strchr(path, '/'))
		h->path = strdup(path);
	else if (asprintf(&h->path, "./%s", path) < 0)
		h->path = NULL;
	if (!h->path) {
		r = -ENOMEM;
		goto fail;
	}

	struct stat st;
	if (stat(h->path, &st) < 0) {
		r = refuse(err_msg, err_msg_len, "plugin %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = refuse(err_msg, err_msg_len, "plugin %s: not a regular file", path);
		goto fail;
	}
	dlerror();
	h->dl = dlopen(h->path, RTLD_NOW | RTLD_LOCAL);
	if (!h->dl) {
		const char *why = dlerror();
		r = refuse(err_msg, err_msg_len, "plugin %s: cannot load: %s", path,
			   why ? why : "unknown error");
		goto fail;
	}
	sluice_handler_entry_v1_fn entry;
	/* POSIX blesses this conversion for dlsym results; -Wpedantic does not. */
	*(void **)&entry = dlsym(h->dl, SLUICE_HANDLER_ENTRY_SYMBOL);
	if (!entry) {
		r = refuse(err_msg, err_msg_len,
			   "plugin %s: not a sluice handler plugin (no %s function)", path,
			   SLUICE_HANDLER_ENTRY_SYMBOL);
		goto fail;
	}
	h->vt = entry();
	if (!h->vt) {
		r = refuse(err_msg, err_msg_len, "plugin %s: %s() returned NULL", path,
			   SLUICE_HANDLER_ENTRY_SYMBOL);
		goto fail;
	}
	if (h->vt->abi_version != SLUICE_HANDLER_ABI_VERSION) {
		r = refuse(err_msg, err_msg_len,
			   "plugin %s: handler ABI version %u, this sluiced supports %u", path,
			   (unsigned)h->vt->abi_version, (unsigned)SLUICE_HANDLER_ABI_VERSION);
		goto fail;
	}
	if (!h->vt->handle) {
		r = refuse(err_msg, err_msg_len, "plugin %s: no handle function", path);
		goto fail;
	}
	if (h->vt->init) {
		int ir = h->vt->init(&h->state, consumer, stream, shard_id);
		if (ir < 0) {
			r = refuse(err_msg, err_msg_len, "plugin %s: init failed: %s", path,
				   strerror(-ir));
			goto fail;
		}
	}
	h->inited = true;
	*ret = h;
	return 0;
fail:
	sl_plugin_handler_destroy(h);
	return r;
}

int sl_plugin_handler_invoke(struct sl_plugin_handler *h, const struct sluice_handler_batch *batch,
			     struct sluice_handler_result *ret)
{
	ret->status = SLUICE_HANDLER_OK;
	ret->failed_from = 0;
	ret->message[0] = '\0';
	int r = h->vt->handle(h->state, batch, ret);
	ret->message[sizeof(ret->message) - 1] = '\0';
	if (r < 0) {
		ret->status = SLUICE_HANDLER_ERROR;
		ret->failed_from = 0;
		if (!ret->message[0])
			snprintf(ret->message, sizeof(ret->message), "handler returned %d (%s)", r,
				 sluice_strerror(r));
		return 0;
	}
	switch (ret->status) {
	case SLUICE_HANDLER_OK:
	case SLUICE_HANDLER_ERROR:
		return 0;
	case SLUICE_HANDLER_FAILED_FROM:
		if (ret->failed_from < batch->count)
			return 0;
		snprintf(ret->message, sizeof(ret->message),
			 "handler result invalid: failed_from %zu in a batch of %zu",
			 ret->failed_from, batch->count);
		break;
	default:
		snprintf(ret->message, sizeof(ret->message), "handler result invalid: status %d",
			 (int)ret->status);
		break;
	}
	ret->status = SLUICE_HANDLER_ERROR;
	ret->failed_from = 0;
	return SLUICE_ERR_PROTOCOL;
}

void sl_plugin_handler_destroy(struct sl_plugin_handler *h)
{
	if (!h)
		return;
	if (h->inited && h->vt->close)
		h->vt->close(h->state);
	if (h->dl)
		dlclose(h->dl);
	free(h->path);
	free(h);
}
