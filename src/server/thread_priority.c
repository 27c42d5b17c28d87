#include "server/thread_priority.h"

#include "common/units.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The kernel's upper bound for a fair thread's custom slice (sched_setattr's sched_runtime). */
#define LONG_SLICE_NS (100ull * 1000 * 1000)

/* struct sched_attr of sched_setattr(2), its first version (48 bytes): <linux/sched/types.h>
 * cannot be included next to <sched.h> (both define struct sched_param). */
struct sched_attr_v0 {
	uint32_t size;
	uint32_t sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime;
	uint64_t sched_deadline;
	uint64_t sched_period;
};

int sl_cpu_priority_parse(const char *s, struct sl_cpu_priority *ret)
{
	if (strcmp(s, "normal") == 0) {
		*ret = (struct sl_cpu_priority){.cls = SL_CPU_PRIORITY_NORMAL};
		return 0;
	}
	if (strcmp(s, "idle") == 0) {
		*ret = (struct sl_cpu_priority){.cls = SL_CPU_PRIORITY_IDLE};
		return 0;
	}
	uint64_t n;
	if (strncmp(s, "nice:", 5) != 0 || sl_parse_u64(s + 5, &n) < 0 || n == 0 ||
	    n > SL_CPU_PRIORITY_NICE_MAX)
		return -EINVAL;
	*ret = (struct sl_cpu_priority){.cls = SL_CPU_PRIORITY_NICE, .nice = (int)n};
	return 0;
}

void sl_cpu_priority_format(const struct sl_cpu_priority *p, char out[SL_CPU_PRIORITY_TEXT_LEN])
{
	if (p->cls == SL_CPU_PRIORITY_NICE)
		snprintf(out, SL_CPU_PRIORITY_TEXT_LEN, "nice:%d", p->nice);
	else
		snprintf(out, SL_CPU_PRIORITY_TEXT_LEN, "%s",
			 p->cls == SL_CPU_PRIORITY_IDLE ? "idle" : "normal");
}

int sl_thread_lower_priority(const struct sl_cpu_priority *p)
{
	if (p->cls == SL_CPU_PRIORITY_IDLE) {
		/* pid 0: the calling thread (Linux schedules threads, not processes). */
		struct sched_param sp = {.sched_priority = 0};
		return sched_setscheduler(0, SCHED_IDLE, &sp) < 0 ? -errno : 0;
	}
	if (p->cls != SL_CPU_PRIORITY_NICE)
		return 0;
	/* Relative to the thread's current value (the loop's, inherited at creation), so a sluiced
	 * started under `nice` keeps its firehoses below its loops, and the call only ever raises
	 * the nice value: that needs no privilege. */
	id_t tid = (id_t)gettid();
	errno = 0;
	int cur = getpriority(PRIO_PROCESS, tid);
	if (cur == -1 && errno)
		return -errno;
	int target = cur + p->nice;
	if (target > SL_CPU_PRIORITY_NICE_MAX)
		target = SL_CPU_PRIORITY_NICE_MAX;
	/*
	 * SCHED_BATCH: the thread never preempts another on waking up (the scheduler takes it for
	 * CPU-bound work), so handing it a batch does not delay the loop that handed it over. And
	 * the longest slice a fair thread may ask for: a loop waking up with the default, shorter
	 * slice preempts it at once instead of waiting for its slice to end (EEVDF, Linux 6.12+,
	 * takes sched_runtime as the slice of a fair thread; older kernels ignore it there).
	 */
	struct sched_attr_v0 attr = {
	    .size = sizeof(attr),
	    .sched_policy = SCHED_BATCH,
	    .sched_nice = target,
	    .sched_runtime = LONG_SLICE_NS,
	};
	if (syscall(SYS_sched_setattr, 0, &attr, 0) == 0)
		return 0;
	/* A kernel or seccomp filter without sched_setattr: the same without the slice. */
	struct sched_param sp = {.sched_priority = 0};
	if (sched_setscheduler(0, SCHED_BATCH, &sp) < 0)
		return -errno;
	return setpriority(PRIO_PROCESS, tid, target) < 0 ? -errno : 0;
}
