/*
 * The plugin handler of `sluice-bench consume` and `compare`: accepts every batch, adding its
 * record count and data bytes to the shard's slot of the benchmark's counter file
 * (bench_counter.h), and, when the benchmark made a latency file for the consumer (compare's
 * e2e_handler row), each record's due-to-handler latency to its shard's histogram. Per batch it
 * walks the record array once (summing data lengths) and does three relaxed atomic adds, so what
 * the benchmark measures is sluiced's delivery path, not the handler.
 *
 * Without $SLUICE_BENCH_COUNTER_DIR (a sluiced that sluice-bench did not start) or without the
 * file, it still accepts every batch and the benchmark relies on `consumer describe` alone.
 */
#include "bench_counter.h"

#include <sluice/handler.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct bp_state {
	struct bench_counter_file *map; /* NULL: not counting */
	struct bench_counter_slot *slot;
	struct bench_lat_file *lat_map; /* NULL: no latencies */
	struct bench_hist *lat;
};

/* $SLUICE_BENCH_COUNTER_DIR/CONSUMER.EXT mapped shared when it exists and starts with magic. */
static void *map_file(const char *consumer, const char *ext, size_t size, uint64_t magic)
{
	const char *dir = getenv(BENCH_COUNTER_DIR_ENV);
	char path[PATH_MAX];
	if (!dir || !dir[0] ||
	    snprintf(path, sizeof(path), "%s/%s.%s", dir, consumer, ext) >= (int)sizeof(path))
		return NULL;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return NULL;
	if (*(const uint64_t *)m != magic) {
		munmap(m, size);
		return NULL;
	}
	return m;
}

static int bp_init(void **ret_state, const char *consumer, const char *stream, uint32_t shard_id)
{
	(void)stream;
	struct bp_state *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->map = map_file(consumer, "cnt", sizeof(*s->map), BENCH_COUNTER_MAGIC);
	if (s->map)
		s->slot = &s->map->slots[shard_id % BENCH_COUNTER_SLOTS];
	s->lat_map = map_file(consumer, "lat", sizeof(*s->lat_map), BENCH_LAT_MAGIC);
	if (s->lat_map)
		s->lat = &s->lat_map->slots[shard_id % BENCH_LAT_SLOTS];
	*ret_state = s;
	return 0;
}

static int bp_handle(void *state, const struct sluice_handler_batch *batch,
		     struct sluice_handler_result *result)
{
	struct bp_state *s = state;
	uint64_t bytes = 0;
	for (size_t i = 0; i < batch->count; i++)
		bytes += batch->records[i].data_len;
	int64_t now = 0;
	if (s->slot || s->lat) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	}
	if (s->lat) {
		for (size_t i = 0; i < batch->count; i++) {
			int64_t due;
			if (batch->records[i].data_len < sizeof(due))
				continue;
			memcpy(&due, batch->records[i].data, sizeof(due));
			bench_hist_record(s->lat, now > due ? (uint64_t)(now - due) : 0);
		}
		atomic_thread_fence(memory_order_release);
	}
	if (s->slot)
		bench_counter_add(s->slot, batch->count, bytes, now);
	result->status = SLUICE_HANDLER_OK;
	return 0;
}

static void bp_close(void *state)
{
	struct bp_state *s = state;
	if (s && s->map)
		munmap(s->map, sizeof(*s->map));
	if (s && s->lat_map)
		munmap(s->lat_map, sizeof(*s->lat_map));
	free(s);
}

static const struct sluice_handler_v1 bench_handler = {
    .abi_version = SLUICE_HANDLER_ABI_VERSION,
    .init = bp_init,
    .handle = bp_handle,
    .close = bp_close,
};

const struct sluice_handler_v1 *sluice_handler_entry_v1(void);
const struct sluice_handler_v1 *sluice_handler_entry_v1(void)
{
	return &bench_handler;
}
