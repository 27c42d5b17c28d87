#include "hist.h"

#include <string.h>

void bench_hist_init(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

/*
 * Bucket index: for v < 2^SUB the value itself; else with k = floor(log2 v) >= SUB, the group
 * (k - SUB + 1) and inside it the SUB bits that follow the leading one.
 */
static unsigned bucket_of(uint64_t v)
{
	if (v < (1u << HIST_SUB_BITS))
		return (unsigned)v;
	unsigned k = 63u - (unsigned)__builtin_clzll(v);
	if (k >= HIST_TOP_BITS)
		return HIST_BUCKETS - 1;
	unsigned group = k - HIST_SUB_BITS + 1;
	unsigned sub = (unsigned)(v >> (k - HIST_SUB_BITS)) & ((1u << HIST_SUB_BITS) - 1);
	return (group << HIST_SUB_BITS) | sub;
}

/* The largest value that falls into bucket b. */
static uint64_t bucket_top(unsigned b)
{
	unsigned group = b >> HIST_SUB_BITS;
	uint64_t sub = b & ((1u << HIST_SUB_BITS) - 1);
	if (group == 0)
		return sub;
	unsigned shift = group - 1;
	uint64_t lo = ((1ull << HIST_SUB_BITS) | sub) << shift;
	return lo + (1ull << shift) - 1;
}

void bench_hist_record(struct bench_hist *h, uint64_t value)
{
	h->buckets[bucket_of(value)]++;
	h->count++;
	h->sum += (double)value;
	if (value < h->min)
		h->min = value;
	if (value > h->max)
		h->max = value;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	if (q <= 0)
		return h->min;
	/* The rank of the wanted value, 1-based: ceil(q * count), at least 1. */
	double want = q * (double)h->count;
	uint64_t rank = (uint64_t)want;
	if ((double)rank < want)
		rank++;
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t top = bucket_top(i);
			/* Never report beyond what was actually seen. */
			return top > h->max ? h->max : top;
		}
	}
	return h->max;
}

double bench_hist_mean(const struct bench_hist *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}
