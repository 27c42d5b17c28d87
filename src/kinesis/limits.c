/* Per-shard throughput limits (see limits.h). */
#include "kinesis/limits.h"

#include "stream/hash_key.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

#define HASH_HEADS 1024
/* A cached shard list is used this long: a resharding is seen within a second. */
#define SHARD_MAP_TTL_MS 1000

struct bucket {
	struct bucket *next;
	uint32_t shard;
	int64_t refilled_ms;
	double write_records, write_bytes, reads, read_bytes; /* tokens left */
	char stream[SLUICE_NAME_LEN_MAX + 1];
};

struct range {
	sl_u128 start, end;
	uint32_t id;
};

struct shard_map {
	struct shard_map *next;
	int64_t fetched_ms;
	size_t n;
	struct range *ranges; /* open shards, sorted by start */
	char stream[SLUICE_NAME_LEN_MAX + 1];
};

struct kin_limits {
	pthread_mutex_t mu;
	struct bucket *buckets[HASH_HEADS];
	struct shard_map *maps[HASH_HEADS];
};

static uint32_t fnv(const char *s, uint32_t shard)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	h = (h ^ shard) * 16777619u;
	return h % HASH_HEADS;
}

int kin_limits_create(struct kin_limits **ret)
{
	struct kin_limits *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	pthread_mutex_init(&l->mu, NULL);
	*ret = l;
	return 0;
}

void kin_limits_destroy(struct kin_limits *l)
{
	if (!l)
		return;
	for (int i = 0; i < HASH_HEADS; i++) {
		for (struct bucket *b = l->buckets[i], *nb; b; b = nb) {
			nb = b->next;
			free(b);
		}
		for (struct shard_map *m = l->maps[i], *nm; m; m = nm) {
			nm = m->next;
			free(m->ranges);
			free(m);
		}
	}
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* Under mu: the bucket of (stream, shard), refilled to now; NULL on ENOMEM. */
static struct bucket *bucket_of(struct kin_limits *l, const char *stream, uint32_t shard,
				int64_t now_ms)
{
	uint32_t h = fnv(stream, shard);
	struct bucket *b = l->buckets[h];
	while (b && (b->shard != shard || strcmp(b->stream, stream) != 0))
		b = b->next;
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		b->shard = shard;
		strcpy(b->stream, stream);
		b->refilled_ms = now_ms;
		b->write_records = KIN_SHARD_WRITE_RECORDS_PER_S;
		b->write_bytes = KIN_SHARD_WRITE_BYTES_PER_S;
		b->reads = KIN_SHARD_READS_PER_S;
		b->read_bytes = KIN_SHARD_READ_BYTES_PER_S;
		b->next = l->buckets[h];
		l->buckets[h] = b;
		return b;
	}
	double s = (double)(now_ms - b->refilled_ms) / 1000.0;
	if (s > 0) {
#define REFILL(f, rate) b->f = b->f + s * (rate) > (rate) ? (rate) : b->f + s * (rate)
		REFILL(write_records, KIN_SHARD_WRITE_RECORDS_PER_S);
		REFILL(write_bytes, KIN_SHARD_WRITE_BYTES_PER_S);
		REFILL(reads, KIN_SHARD_READS_PER_S);
		REFILL(read_bytes, KIN_SHARD_READ_BYTES_PER_S);
#undef REFILL
		b->refilled_ms = now_ms;
	}
	return b;
}

bool kin_limits_take_write(struct kin_limits *l, const char *stream, uint32_t shard, size_t bytes,
			   int64_t now_ms)
{
	pthread_mutex_lock(&l->mu);
	struct bucket *b = bucket_of(l, stream, shard, now_ms);
	bool ok = !b || (b->write_records >= 1 && b->write_bytes >= (double)bytes);
	if (b && ok) {
		b->write_records -= 1;
		b->write_bytes -= (double)bytes;
	}
	pthread_mutex_unlock(&l->mu);
	return ok;
}

bool kin_limits_take_read(struct kin_limits *l, const char *stream, uint32_t shard, int64_t now_ms)
{
	pthread_mutex_lock(&l->mu);
	struct bucket *b = bucket_of(l, stream, shard, now_ms);
	/* read_bytes may be negative after a large read: that is the 2 MiB/s limit. */
	bool ok = !b || (b->reads >= 1 && b->read_bytes > 0);
	if (b && ok)
		b->reads -= 1;
	pthread_mutex_unlock(&l->mu);
	return ok;
}

void kin_limits_charge_read(struct kin_limits *l, const char *stream, uint32_t shard, size_t bytes,
			    int64_t now_ms)
{
	pthread_mutex_lock(&l->mu);
	struct bucket *b = bucket_of(l, stream, shard, now_ms);
	if (b)
		b->read_bytes -= (double)bytes;
	pthread_mutex_unlock(&l->mu);
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Fetch the open shards of stream (outside mu) and install them. */
static int refresh(struct kin_limits *l, struct sluice_client *c, const char *stream,
		   int64_t now_ms)
{
	struct sluice_shard_info *shards;
	size_t n;
	int r = sluice_list_shards(c, stream, &shards, &n);
	if (r < 0)
		return r;
	struct range *ranges = calloc(n ? n : 1, sizeof(*ranges));
	if (!ranges) {
		sluice_shards_free(shards);
		return -ENOMEM;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!shards[i].closed)
			ranges[k++] = (struct range){sl_hash_key_to_u128(&shards[i].start_hash_key),
						     sl_hash_key_to_u128(&shards[i].end_hash_key),
						     shards[i].shard_id};
	sluice_shards_free(shards);
	qsort(ranges, k, sizeof(*ranges), cmp_range);
	pthread_mutex_lock(&l->mu);
	uint32_t h = fnv(stream, 0);
	struct shard_map *m = l->maps[h];
	while (m && strcmp(m->stream, stream) != 0)
		m = m->next;
	if (!m && (m = calloc(1, sizeof(*m)))) {
		strcpy(m->stream, stream);
		m->next = l->maps[h];
		l->maps[h] = m;
	}
	if (m) {
		free(m->ranges);
		m->ranges = ranges;
		m->n = k;
		m->fetched_ms = now_ms;
	} else {
		free(ranges);
	}
	pthread_mutex_unlock(&l->mu);
	return m ? 0 : -ENOMEM;
}

int kin_limits_route(struct kin_limits *l, struct sluice_client *c, const char *stream, size_t n,
		     const char *const *keys, const size_t *key_lens,
		     const struct sluice_hash_key *const *hash_keys, uint32_t *ret_shards)
{
	int64_t now = sl_mono_ms();
	for (int attempt = 0; attempt < 2; attempt++) {
		pthread_mutex_lock(&l->mu);
		struct shard_map *m = l->maps[fnv(stream, 0)];
		while (m && strcmp(m->stream, stream) != 0)
			m = m->next;
		bool fresh = m && now - m->fetched_ms < SHARD_MAP_TTL_MS && m->n > 0;
		if (fresh) {
			for (size_t i = 0; i < n; i++) {
				sl_u128 h;
				if (hash_keys[i])
					h = sl_hash_key_to_u128(hash_keys[i]);
				else if (sl_hash_u128_of_partition_key((const uint8_t *)keys[i],
								       key_lens[i], &h) < 0)
					h = 0;
				size_t lo = 0, hi = m->n; /* last range with start <= h */
				while (hi - lo > 1) {
					size_t mid = (lo + hi) / 2;
					if (m->ranges[mid].start <= h)
						lo = mid;
					else
						hi = mid;
				}
				ret_shards[i] = m->ranges[lo].id;
			}
		}
		pthread_mutex_unlock(&l->mu);
		if (fresh)
			return 0;
		int r = refresh(l, c, stream, now);
		if (r < 0)
			return r;
	}
	return SLUICE_ERR_INTERNAL; /* a stream with no open shard */
}
