/*
 * struct sl_buf: a growable byte buffer with little-endian put helpers, and struct sl_reader, a
 * bounds-checked cursor over borrowed bytes. The wire codec, the log framing and the clients all
 * build on these two so that every read of outside bytes is checked in one place.
 */
#ifndef SL_COMMON_BUF_H
#define SL_COMMON_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct sl_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* init/finish work on caller-owned memory; finish accepts a zeroed buffer. */
void sl_buf_init(struct sl_buf *b);
void sl_buf_finish(struct sl_buf *b);
/* Make room for n more bytes. -ENOMEM on failure (the buffer is unchanged). */
int sl_buf_reserve(struct sl_buf *b, size_t n);
/* Append n bytes; returns 0 or -ENOMEM. */
int sl_buf_put(struct sl_buf *b, const void *p, size_t n);
/* Append printf-formatted text (no terminating NUL); returns 0, -ENOMEM or -EINVAL. */
int sl_buf_printf(struct sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sl_buf_put_u8(struct sl_buf *b, uint8_t v);
int sl_buf_put_u16(struct sl_buf *b, uint16_t v);
int sl_buf_put_u32(struct sl_buf *b, uint32_t v);
int sl_buf_put_u64(struct sl_buf *b, uint64_t v);
/* Drop the first n bytes (memmove of the rest). */
void sl_buf_consume(struct sl_buf *b, size_t n);
static inline void sl_buf_reset(struct sl_buf *b)
{
	b->len = 0;
}

/* Little-endian loads and stores on raw memory (unaligned-safe). */
static inline uint16_t sl_load_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t sl_load_u32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v; /* x86_64 and aarch64 are little-endian; the build checks it */
}
static inline uint64_t sl_load_u64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}
static inline void sl_store_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void sl_store_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static inline void sl_store_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/*
 * A cursor over len bytes at p. Every get fails (returns false) rather than reading past the
 * end; once a get failed, all later gets fail too, so a decoder may check `ok` once at the end.
 */
struct sl_reader {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool ok;
};

static inline void sl_reader_init(struct sl_reader *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->ok = true;
}
static inline size_t sl_reader_left(const struct sl_reader *r)
{
	return r->ok ? r->len - r->off : 0;
}
bool sl_reader_u8(struct sl_reader *r, uint8_t *v);
bool sl_reader_u16(struct sl_reader *r, uint16_t *v);
bool sl_reader_u32(struct sl_reader *r, uint32_t *v);
bool sl_reader_u64(struct sl_reader *r, uint64_t *v);
/* Borrow n bytes: *p points into the reader's memory. */
bool sl_reader_bytes(struct sl_reader *r, size_t n, const uint8_t **p);

#endif
