/*
 * struct sl_latency_hist: a Prometheus histogram of durations, for /metrics.
 *
 * Fixed buckets from 50 us to 10 s (sl_latency_bounds_ns) in the 1-2.5-5 steps of Prometheus'
 * default buckets, extended down to 50 us: enough to tell a 200 us fdatasync from a 5 ms device
 * stall, and few enough to render on every scrape. One writer per histogram (a worker's loop: a relaxed load
 * and store per field, no locked add), any number of readers (the /metrics thread), which may
 * see a sample in its bucket before it is in the sum: Prometheus tolerates that.
 */
#ifndef SL_COMMON_LATENCY_HIST_H
#define SL_COMMON_LATENCY_HIST_H

#include "common/buf.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SL_LATENCY_BOUNDS 17

/* The upper bounds (inclusive, Prometheus' `le`) of the finite buckets, ascending. */
extern const uint64_t sl_latency_bounds_ns[SL_LATENCY_BOUNDS];

struct sl_latency_hist {
	/* Samples per bucket (not cumulative); [SL_LATENCY_BOUNDS] is +Inf. */
	_Atomic uint64_t buckets[SL_LATENCY_BOUNDS + 1];
	_Atomic uint64_t sum_ns;
};

/* The single writer adds one sample. */
void sl_latency_hist_record(struct sl_latency_hist *h, uint64_t ns);

/*
 * Append `name` as one Prometheus histogram (HELP, TYPE, cumulative _bucket lines with `le` in
 * seconds, _sum in seconds, _count) summed over hs[0..n), each found at byte offset `offset`
 * of its element (stride bytes apart): the workers' histograms render as one. -ENOMEM or 0.
 */
int sl_latency_hist_render(struct sl_buf *b, const char *name, const char *help, const void *first,
			   size_t n, size_t stride, size_t offset);

#endif
