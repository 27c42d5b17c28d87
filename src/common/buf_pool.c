#include "common/buf_pool.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sl_buf_pool_init(struct sl_buf_pool *p, size_t bufs_max, size_t bytes_max)
{
	assert(bufs_max >= 1);
	memset(p, 0, sizeof(*p));
	p->spare = calloc(bufs_max, sizeof(*p->spare));
	if (!p->spare)
		return -ENOMEM;
	int r = pthread_mutex_init(&p->mu, NULL);
	if (r != 0) {
		free(p->spare);
		p->spare = NULL;
		return -r;
	}
	p->bufs_max = bufs_max;
	p->bytes_max = bytes_max;
	return 0;
}

void sl_buf_pool_finish(struct sl_buf_pool *p)
{
	if (!p->spare)
		return;
	for (size_t i = 0; i < p->n; i++)
		sl_buf_finish(&p->spare[i]);
	free(p->spare);
	pthread_mutex_destroy(&p->mu);
	memset(p, 0, sizeof(*p));
}

void sl_buf_pool_take(struct sl_buf_pool *p, struct sl_buf *b)
{
	assert(b->len == 0);
	if (b->cap)
		return;
	pthread_mutex_lock(&p->mu);
	if (p->n) {
		*b = p->spare[--p->n];
		p->bytes -= b->cap;
	}
	pthread_mutex_unlock(&p->mu);
}

void sl_buf_pool_give(struct sl_buf_pool *p, struct sl_buf *b)
{
	if (!b->cap) {
		sl_buf_finish(b);
		return;
	}
	b->len = 0;
	pthread_mutex_lock(&p->mu);
	bool kept = p->n < p->bufs_max && b->cap <= p->bytes_max - p->bytes;
	if (kept) {
		p->spare[p->n++] = *b;
		p->bytes += b->cap;
	}
	pthread_mutex_unlock(&p->mu);
	if (kept)
		sl_buf_init(b);
	else
		sl_buf_finish(b);
}
