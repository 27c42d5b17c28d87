#include "stream/hash_key.h"

#include <sluice/errors.h>

#include <openssl/evp.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/*
 * MD5 is the server's per-record hot path. Measured on the build machine (OpenSSL 3.0, 16-byte
 * keys): EVP_Digest(EVP_md5()) ~3.5 M/s and EVP_Q_digest ~3.4 M/s, because each call builds a
 * context and resolves the implicit EVP_md5() through the provider; a fetched EVP_MD with a
 * reused context ~9 M/s. So: fetch MD5 once per process, keep one context per thread
 * (EVP_MD_CTX is not thread-safe), reinitialise it with EVP_DigestInit_ex2 per key.
 */
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;
static EVP_MD *md5_md;		  /* NULL if the provider has no MD5; never freed */
static pthread_key_t md5_ctx_key; /* owns each thread's context: frees it at thread exit */
static bool md5_key_ok;
static _Thread_local EVP_MD_CTX *md5_ctx; /* this thread's context, owned via md5_ctx_key */

/* Runs in the exiting thread, so it may clear that thread's cached pointer too. */
static void md5_ctx_free(void *p)
{
	if (md5_ctx == p)
		md5_ctx = NULL;
	EVP_MD_CTX_free(p);
}

static void md5_init_once(void)
{
	md5_md = EVP_MD_fetch(NULL, "MD5", NULL);
	md5_key_ok = pthread_key_create(&md5_ctx_key, md5_ctx_free) == 0;
}

static EVP_MD_CTX *thread_ctx(void)
{
	if (md5_ctx)
		return md5_ctx;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c)
		return NULL;
	/* Without the key the context would leak at thread exit: fall back to no caching. */
	if (!md5_key_ok || pthread_setspecific(md5_ctx_key, c) != 0) {
		EVP_MD_CTX_free(c);
		return NULL;
	}
	md5_ctx = c;
	return c;
}

void sl_hash_key_thread_cleanup(void)
{
	if (!md5_ctx)
		return;
	pthread_setspecific(md5_ctx_key, NULL);
	EVP_MD_CTX_free(md5_ctx);
	md5_ctx = NULL;
}

static int md5(const uint8_t *key, size_t len, uint8_t out[16])
{
	pthread_once(&md5_once, md5_init_once);
	if (!md5_md)
		return SLUICE_ERR_INTERNAL;
	unsigned int out_len = 0;
	EVP_MD_CTX *c = thread_ctx();
	if (!c) {
		/* Slow path (allocation failure): a one-shot digest. */
		if (!EVP_Digest(key, len, out, &out_len, md5_md, NULL))
			return -ENOMEM;
	} else if (!EVP_DigestInit_ex2(c, md5_md, NULL) || !EVP_DigestUpdate(c, key, len) ||
		   !EVP_DigestFinal_ex(c, out, &out_len)) {
		return SLUICE_ERR_INTERNAL;
	}
	assert(out_len == 16);
	return 0;
}

int sl_hash_key_of_partition_key(const uint8_t *key, size_t len, struct sluice_hash_key *ret)
{
	uint8_t d[16];
	int r = md5(key, len, d);
	if (r < 0)
		return r;
	memcpy(ret->be, d, 16);
	return 0;
}

int sl_hash_u128_of_partition_key(const uint8_t *key, size_t len, sl_u128 *ret)
{
	struct sluice_hash_key k;
	int r = sl_hash_key_of_partition_key(key, len, &k);
	if (r < 0)
		return r;
	*ret = sl_hash_key_to_u128(&k);
	return 0;
}

/* ---- decimal ---- */

#define POW10_19 10000000000000000000ull

/* Writes exactly `width` digits of v (zero-padded) at out. */
static void put_digits(uint64_t v, int width, char *out)
{
	for (int i = width - 1; i >= 0; i--) {
		out[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

static int digit_count(uint64_t v)
{
	int n = 1;
	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

size_t sl_u128_format(sl_u128 v, char out[SL_U128_DEC_BUF])
{
	/* Three base-10^19 limbs: one 128-bit division per limb instead of one per digit. */
	uint64_t lo = (uint64_t)(v % POW10_19);
	v /= POW10_19;
	uint64_t mid = (uint64_t)(v % POW10_19);
	uint64_t hi = (uint64_t)(v / POW10_19); /* at most 3 */
	size_t n = 0;
	if (hi) {
		int w = digit_count(hi);
		put_digits(hi, w, out);
		n += (size_t)w;
		put_digits(mid, 19, out + n);
		n += 19;
		put_digits(lo, 19, out + n);
		n += 19;
	} else if (mid) {
		int w = digit_count(mid);
		put_digits(mid, w, out);
		n += (size_t)w;
		put_digits(lo, 19, out + n);
		n += 19;
	} else {
		int w = digit_count(lo);
		put_digits(lo, w, out);
		n += (size_t)w;
	}
	assert(n < SL_U128_DEC_BUF);
	out[n] = '\0';
	return n;
}

int sl_u128_parse(const char *s, size_t len, sl_u128 *ret)
{
	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
	if (s[0] == '0' && len > 1)
		return -EINVAL;
	sl_u128 v = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (SL_U128_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

int sl_u128_parse_str(const char *s, sl_u128 *ret)
{
	return sl_u128_parse(s, strlen(s), ret);
}

/* ---- even split ---- */

static sl_u128 even_start(uint32_t i, uint32_t n)
{
	/*
	 * floor(i * 2^128 / n) without a 129-bit product: write 2^128 = q*n + r (0 <= r < n);
	 * then i * 2^128 / n = i*q + i*r/n, where i*q is an integer and i*r < n^2 fits easily.
	 * 2^128 itself does not fit, so derive q and r from 2^128 - 1 = q'*n + r'.
	 */
	if (i == 0)
		return 0;
	sl_u128 q = SL_U128_MAX / n;
	sl_u128 r = SL_U128_MAX % n + 1;
	if (r == n) {
		q++; /* n > 1 here (i < n), so q < 2^128 - 1 and this cannot wrap */
		r = 0;
	}
	return (sl_u128)i * q + ((sl_u128)i * r) / n;
}

void sl_hash_range_even(uint32_t i, uint32_t n, sl_u128 *ret_start, sl_u128 *ret_end)
{
	assert(n >= 1 && i < n);
	*ret_start = even_start(i, n);
	*ret_end = i + 1 == n ? SL_U128_MAX : even_start(i + 1, n) - 1;
}

/* ---- routing ---- */

struct sl_shard_map {
	size_t count;
	sl_u128 *starts; /* ascending; starts[0] == 0 */
	uint32_t *ids;	 /* ids[i] owns [starts[i], starts[i+1] - 1] */
};

static int cmp_range(const void *a, const void *b)
{
	const struct sl_shard_range *x = a, *y = b;
	return (x->start > y->start) - (x->start < y->start);
}

int sl_shard_map_create(const struct sl_shard_range *ranges, size_t n, struct sl_shard_map **ret)
{
	if (n == 0 || n > SLUICE_SHARDS_MAX)
		return SLUICE_ERR_INVALID_ARGUMENT;
	int r = -ENOMEM;
	struct sl_shard_range *sorted = malloc(n * sizeof(*sorted));
	struct sl_shard_map *map = calloc(1, sizeof(*map));
	if (!sorted || !map)
		goto fail;
	map->starts = malloc(n * sizeof(*map->starts));
	map->ids = malloc(n * sizeof(*map->ids));
	if (!map->starts || !map->ids)
		goto fail;
	memcpy(sorted, ranges, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_range);

	/* Exact cover of [0, 2^128 - 1]: starts at 0, each range begins right after the last. */
	r = SLUICE_ERR_INVALID_ARGUMENT;
	if (sorted[0].start != 0 || sorted[n - 1].end != SL_U128_MAX)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if (sorted[i].start > sorted[i].end)
			goto fail;
		if (i + 1 < n &&
		    (sorted[i].end == SL_U128_MAX || sorted[i + 1].start != sorted[i].end + 1))
			goto fail;
		map->starts[i] = sorted[i].start;
		map->ids[i] = sorted[i].shard_id;
	}
	map->count = n;
	free(sorted);
	*ret = map;
	return 0;
fail:
	free(sorted);
	sl_shard_map_destroy(map);
	return r;
}

void sl_shard_map_destroy(struct sl_shard_map *map)
{
	if (!map)
		return;
	free(map->starts);
	free(map->ids);
	free(map);
}

uint32_t sl_shard_map_find(const struct sl_shard_map *map, sl_u128 key)
{
	/* The last start <= key. Invariant: starts[lo] <= key < starts[hi] (starts[count] = 2^128).
	 */
	size_t lo = 0, hi = map->count;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (map->starts[mid] <= key)
			lo = mid;
		else
			hi = mid;
	}
	return map->ids[lo];
}

size_t sl_shard_map_count(const struct sl_shard_map *map)
{
	return map->count;
}
