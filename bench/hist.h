/*
 * struct bench_hist: a latency histogram with HDR-like log-linear buckets.
 *
 * Values (nanoseconds) below 2^HIST_SUB_BITS land in exact unit buckets; above, every power of
 * two [2^k, 2^(k+1)) is split into 2^HIST_SUB_BITS equal buckets, so a reported value is within
 * 1/2^HIST_SUB_BITS (about 1.6 %) of the true one at every scale, from 1 ns to about 2^44 ns
 * (4.9 hours; larger values clamp to the top bucket). Recording is a few shifts and one add.
 *
 * Not thread-safe: give each recording thread its own histogram and merge them afterwards.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_TOP_BITS 44
#define HIST_BUCKETS ((HIST_TOP_BITS - HIST_SUB_BITS + 1) << HIST_SUB_BITS)

struct bench_hist {
	uint64_t count;
	uint64_t min;
	uint64_t max;
	double sum;
	uint64_t buckets[HIST_BUCKETS];
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_record(struct bench_hist *h, uint64_t value);
/* dst += src. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* The value at quantile q (0..1): the upper edge of the bucket holding it (0 when empty). */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);
double bench_hist_mean(const struct bench_hist *h);

#endif
