/*
 * The record counter shared by `sluice-bench consume` and its handlers: a small file mapped
 * MAP_SHARED by the benchmark and by the handler (the bench plugin inside sluiced, the exec
 * handler in its own process), or plain memory for the remote handler, which runs in the
 * benchmark itself. Each shard has its own cache line; its handler adds to it once per batch
 * (relaxed atomics: the benchmark only needs the sums) and stores the CLOCK_MONOTONIC time of its
 * last batch, which is system-wide, so the benchmark can compare it with its own clock.
 *
 * The plugin finds the file as $SLUICE_BENCH_COUNTER_DIR/CONSUMER.cnt (sluice-bench sets the
 * variable for the sluiced it spawns); the exec handler gets the path as its argument.
 */
#ifndef BENCH_BENCH_COUNTER_H
#define BENCH_BENCH_COUNTER_H

#include "hist.h"

#include <stdatomic.h>
#include <stdint.h>

#define BENCH_COUNTER_MAGIC 0x534c4342454e4348ull /* "SLCBENCH" */
#define BENCH_COUNTER_SLOTS 256u		  /* shard ids map to slot id % this */
#define BENCH_COUNTER_DIR_ENV "SLUICE_BENCH_COUNTER_DIR"

struct bench_counter_slot {
	_Atomic uint64_t records;
	_Atomic uint64_t batches;
	_Atomic uint64_t bytes;	 /* record data bytes */
	_Atomic int64_t last_ns; /* CLOCK_MONOTONIC at the end of the last batch */
	uint8_t pad[32];
};

struct bench_counter_file {
	uint64_t magic; /* BENCH_COUNTER_MAGIC once the benchmark created it */
	uint8_t pad[56];
	struct bench_counter_slot slots[BENCH_COUNTER_SLOTS];
};

static inline void bench_counter_add(struct bench_counter_slot *s, uint64_t records, uint64_t bytes,
				     int64_t now_ns)
{
	atomic_fetch_add_explicit(&s->records, records, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->bytes, bytes, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->batches, 1, memory_order_relaxed);
	atomic_store_explicit(&s->last_ns, now_ns, memory_order_release);
}

/*
 * The latency file of `compare`'s e2e_handler row: CONSUMER.lat next to the counter file. Per
 * record whose data holds at least 8 bytes, the plugin records CLOCK_MONOTONIC now minus the
 * nanosecond stamp in those bytes (the time the record was due to be sent) into the histogram
 * of its shard's slot. One batch of a shard is out at a time (parallelism 1), so one writer per
 * slot; the benchmark reads the slots once every record is delivered.
 */
#define BENCH_LAT_MAGIC 0x534c434c4154454eull /* "SLCLATEN" */
#define BENCH_LAT_SLOTS 64u		      /* shard ids map to slot id % this */

struct bench_lat_file {
	uint64_t magic; /* BENCH_LAT_MAGIC once the benchmark created it */
	uint8_t pad[56];
	struct bench_hist slots[BENCH_LAT_SLOTS];
};

#endif
