#include "common/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "sluice stores integers little-endian");

void sl_buf_init(struct sl_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void sl_buf_finish(struct sl_buf *b)
{
	free(b->data);
	sl_buf_init(b);
}

int sl_buf_reserve(struct sl_buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return 0;
	if (n > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n)
		cap *= 2;
	uint8_t *d = realloc(b->data, cap);
	if (!d)
		return -ENOMEM;
	b->data = d;
	b->cap = cap;
	return 0;
}

int sl_buf_put(struct sl_buf *b, const void *p, size_t n)
{
	int r = sl_buf_reserve(b, n);
	if (r < 0)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int sl_buf_printf(struct sl_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	/* +1: vsnprintf writes a NUL, which the buffer's length then leaves out. */
	int r = sl_buf_reserve(b, (size_t)n + 1);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int sl_buf_put_u8(struct sl_buf *b, uint8_t v)
{
	return sl_buf_put(b, &v, 1);
}

int sl_buf_put_u16(struct sl_buf *b, uint16_t v)
{
	uint8_t t[2];
	sl_store_u16(t, v);
	return sl_buf_put(b, t, 2);
}

int sl_buf_put_u32(struct sl_buf *b, uint32_t v)
{
	uint8_t t[4];
	sl_store_u32(t, v);
	return sl_buf_put(b, t, 4);
}

int sl_buf_put_u64(struct sl_buf *b, uint64_t v)
{
	uint8_t t[8];
	sl_store_u64(t, v);
	return sl_buf_put(b, t, 8);
}

void sl_buf_consume(struct sl_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

static bool take(struct sl_reader *r, size_t n, const uint8_t **p)
{
	if (!r->ok || r->len - r->off < n) {
		r->ok = false;
		return false;
	}
	*p = r->p + r->off;
	r->off += n;
	return true;
}

bool sl_reader_u8(struct sl_reader *r, uint8_t *v)
{
	const uint8_t *p;
	if (!take(r, 1, &p))
		return false;
	*v = p[0];
	return true;
}

bool sl_reader_u16(struct sl_reader *r, uint16_t *v)
{
	const uint8_t *p;
	if (!take(r, 2, &p))
		return false;
	*v = sl_load_u16(p);
	return true;
}

bool sl_reader_u32(struct sl_reader *r, uint32_t *v)
{
	const uint8_t *p;
	if (!take(r, 4, &p))
		return false;
	*v = sl_load_u32(p);
	return true;
}

bool sl_reader_u64(struct sl_reader *r, uint64_t *v)
{
	const uint8_t *p;
	if (!take(r, 8, &p))
		return false;
	*v = sl_load_u64(p);
	return true;
}

bool sl_reader_bytes(struct sl_reader *r, size_t n, const uint8_t **p)
{
	return take(r, n, p);
}
