/*
 * The exec handler of `sluice-bench consume`: reads one event line at a time on stdin and
 * answers `{}` on stdout at once, without parsing the JSON. When given a counter file
 * (bench_counter.h) as its argument, it counts the line's records (occurrences of "eventID",
 * which the Lambda event has exactly once per record) into the slot of $SLUICE_SHARD.
 *
 * usage: sluice-bench-exec-handler [COUNTER_FILE]
 */
#include "bench_counter.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static const char marker[] = "\"eventID\"";

static uint64_t count_records(const char *p, size_t len)
{
	uint64_t n = 0;
	const size_t mlen = sizeof(marker) - 1;
	for (;;) {
		const char *hit = memmem(p, len, marker, mlen);
		if (!hit)
			return n;
		n++;
		len -= (size_t)(hit - p) + mlen;
		p = hit + mlen;
	}
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static struct bench_counter_slot *open_slot(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "sluice-bench-exec-handler: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	void *m = mmap(NULL, sizeof(struct bench_counter_file), PROT_READ | PROT_WRITE, MAP_SHARED,
		       fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return NULL;
	struct bench_counter_file *f = m;
	if (f->magic != BENCH_COUNTER_MAGIC)
		return NULL;
	const char *shard = getenv("SLUICE_SHARD");
	unsigned long id = shard ? strtoul(shard, NULL, 10) : 0;
	return &f->slots[id % BENCH_COUNTER_SLOTS];
}

int main(int argc, char **argv)
{
	struct bench_counter_slot *slot = argc > 1 ? open_slot(argv[1]) : NULL;
	size_t cap = 1u << 20, len = 0, scanned = 0;
	char *buf = malloc(cap);
	if (!buf)
		return 1;
	for (;;) {
		char *nl = memchr(buf + scanned, '\n', len - scanned);
		if (!nl) {
			scanned = len;
			if (len == cap) {
				char *nb = realloc(buf, cap * 2);
				if (!nb)
					return 1;
				buf = nb;
				cap *= 2;
			}
			ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break; /* EOF: sluiced stops the consumer */
			len += (size_t)n;
			continue;
		}
		size_t line_len = (size_t)(nl - buf);
		uint64_t records = slot ? count_records(buf, line_len) : 0;
		if (write_all(STDOUT_FILENO, "{}\n", 3) < 0)
			return 1;
		if (slot) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			bench_counter_add(slot, records, 0,
					  (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
		}
		len -= line_len + 1;
		memmove(buf, nl + 1, len);
		scanned = 0;
	}
	free(buf);
	return 0;
}
