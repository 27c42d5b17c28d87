#include "common/latency_hist.h"

#include <errno.h>
#include <stdio.h>

const uint64_t sl_latency_bounds_ns[SL_LATENCY_BOUNDS] = {
    50000,     100000,	   250000,     500000,	   1000000,	2500000,
    5000000,   10000000,   25000000,   50000000,   100000000,	250000000,
    500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};

static void add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

void sl_latency_hist_record(struct sl_latency_hist *h, uint64_t ns)
{
	size_t i = 0;
	while (i < SL_LATENCY_BOUNDS && ns > sl_latency_bounds_ns[i])
		i++;
	add(&h->buckets[i], 1);
	add(&h->sum_ns, ns);
}

int sl_latency_hist_render(struct sl_buf *b, const char *name, const char *help, const void *first,
			   size_t n, size_t stride, size_t offset)
{
	uint64_t counts[SL_LATENCY_BOUNDS + 1] = {0};
	uint64_t sum_ns = 0;
	for (size_t k = 0; k < n; k++) {
		const struct sl_latency_hist *h =
		    (const struct sl_latency_hist *)((const char *)first + k * stride + offset);
		for (size_t i = 0; i <= SL_LATENCY_BOUNDS; i++)
			counts[i] += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
		sum_ns += atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
	}
	int r = sl_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	uint64_t cumulative = 0;
	for (size_t i = 0; r == 0 && i < SL_LATENCY_BOUNDS; i++) {
		cumulative += counts[i];
		r = sl_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name,
				  (double)sl_latency_bounds_ns[i] / 1e9,
				  (unsigned long long)cumulative);
	}
	cumulative += counts[SL_LATENCY_BOUNDS];
	if (r == 0)
		r = sl_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n",
				  name, (unsigned long long)cumulative, name, (double)sum_ns / 1e9,
				  name, (unsigned long long)cumulative);
	return r;
}
