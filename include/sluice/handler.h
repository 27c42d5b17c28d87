/*
 * The in-process handler ABI of sluice consumers (`--handler plugin:PATH.so`).
 *
 * A plugin is a shared object that exports one function:
 *
 *     const struct sluice_handler_v1 *sluice_handler_entry_v1(void);
 *
 * sluiced dlopen()s the plugin once per consumer shard worker and calls:
 *   - init(&state, consumer_name, stream, shard_id) once before the first batch;
 *   - handle(state, batch, &result) for every micro-batch, strictly in sequence order for the
 *     shard, never concurrently for one state (with --parallelism N, N states exist);
 *   - close(state) when the consumer is deleted, its shard ends, or the server stops.
 *
 * Records are passed without copying: batch->records and everything they point to belong to
 * sluiced and are valid only during the handle() call. handle() runs on a thread of its own, never
 * on an event loop, so a slow handler slows only its shard. If it does not return within the
 * consumer's --timeout, sluiced counts the batch as failed, abandons that thread (in-process code
 * cannot be interrupted safely) and retries on a fresh state; keep handlers quick or use the exec
 * handler, whose process can be killed.
 *
 * The result: SLUICE_HANDLER_OK (the whole batch succeeded), SLUICE_HANDLER_FAILED_FROM (records
 * before failed_from succeeded, retry from failed_from: a partial failure), or
 * SLUICE_HANDLER_ERROR (the whole batch failed). message is shown in `consumer describe`.
 *
 * Versioning: the struct starts with abi_version. sluiced refuses a plugin whose version it does
 * not know; new versions get a new entry symbol (sluice_handler_entry_v2) so old plugins keep
 * loading.
 */
#ifndef SLUICE_HANDLER_H
#define SLUICE_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_HANDLER_ABI_VERSION 1
#define SLUICE_HANDLER_ENTRY_SYMBOL "sluice_handler_entry_v1"

struct sluice_handler_record {
	uint64_t seq;
	int64_t ts_ms;	 /* arrival time, Unix ms */
	const char *key; /* partition key, not NUL-terminated */
	uint32_t key_len;
	const uint8_t *data;
	uint32_t data_len;
};

struct sluice_handler_batch {
	const char *consumer; /* NUL-terminated */
	const char *stream;   /* NUL-terminated */
	uint32_t shard_id;
	const struct sluice_handler_record *records;
	size_t count;	  /* >= 1 */
	uint32_t attempt; /* 0 on first delivery, then 1, 2, ... for retries of the same records */
};

enum sluice_handler_status {
	SLUICE_HANDLER_OK = 0,
	SLUICE_HANDLER_FAILED_FROM = 1,
	SLUICE_HANDLER_ERROR = 2,
};

struct sluice_handler_result {
	enum sluice_handler_status status;
	size_t failed_from; /* with SLUICE_HANDLER_FAILED_FROM: index of the first failed record */
	char message[256];  /* optional, NUL-terminated */
};

struct sluice_handler_v1 {
	uint32_t abi_version; /* SLUICE_HANDLER_ABI_VERSION */
	/* 0 or a negative errno; *ret_state is passed to handle/close. May be NULL. */
	int (*init)(void **ret_state, const char *consumer, const char *stream, uint32_t shard_id);
	/* Return value is ignored except that a negative value means SLUICE_HANDLER_ERROR. */
	int (*handle)(void *state, const struct sluice_handler_batch *batch,
		      struct sluice_handler_result *result);
	/* May be NULL. */
	void (*close)(void *state);
};

typedef const struct sluice_handler_v1 *(*sluice_handler_entry_v1_fn)(void);

#ifdef __cplusplus
}
#endif
#endif
