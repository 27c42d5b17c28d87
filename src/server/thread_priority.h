/*
 * CPU priority of background threads (firehose runners): a thread may lower its own scheduling
 * weight so that, while the machine is saturated, the produce path keeps the CPU, and the
 * background work takes what is left.
 *
 * Only ever lowered, never raised: an unprivileged process may raise a thread's nice value but
 * not lower it again (RLIMIT_NICE is 0 by default), nor leave SCHED_IDLE. A thread that must run
 * at normal priority again is replaced by a fresh one, which inherits the creating loop's
 * priority (see the firehose's catch-up in consumer_engine.c).
 */
#ifndef SL_SERVER_THREAD_PRIORITY_H
#define SL_SERVER_THREAD_PRIORITY_H

#include <stdbool.h>
#include <stddef.h>

enum sl_cpu_priority_class {
	SL_CPU_PRIORITY_NORMAL, /* unchanged: the loops' priority */
	SL_CPU_PRIORITY_NICE,	/* SCHED_BATCH, nice value `nice` steps above the loops' (max 19) */
	SL_CPU_PRIORITY_IDLE,	/* SCHED_IDLE: runs only when nothing else wants the CPU */
};

/* nice:N accepts 1..19 (the range of nice values above 0). */
#define SL_CPU_PRIORITY_NICE_MAX 19
/* Firehoses by default: weight 110 against the loops' 1024 (nice 0), i.e. about a tenth of a
 * core they compete for, yet never starved (see docs/firehose.md, "CPU priority"). */
#define SL_FIREHOSE_NICE_DEFAULT 10
/* Buffer for sl_cpu_priority_format. */
#define SL_CPU_PRIORITY_TEXT_LEN 16

struct sl_cpu_priority {
	enum sl_cpu_priority_class cls;
	int nice; /* SL_CPU_PRIORITY_NICE: 1..SL_CPU_PRIORITY_NICE_MAX */
};

/* "normal", "idle" or "nice:N" (N 1..19). 0 or -EINVAL (*ret untouched). */
int sl_cpu_priority_parse(const char *s, struct sl_cpu_priority *ret);
/* The text sl_cpu_priority_parse reads back. */
void sl_cpu_priority_format(const struct sl_cpu_priority *p, char out[SL_CPU_PRIORITY_TEXT_LEN]);
static inline bool sl_cpu_priority_lowers(const struct sl_cpu_priority *p)
{
	return p->cls != SL_CPU_PRIORITY_NORMAL;
}
/* Apply p to the calling thread only (setpriority on its TID, or SCHED_IDLE). 0 or -errno. */
int sl_thread_lower_priority(const struct sl_cpu_priority *p);

#endif
