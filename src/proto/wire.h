/*
 * Private to src/proto: bounds-checked reads on a struct sl_reader with the exact contract of the
 * sl_reader_* functions of common/buf.h (never read past len; a failure is sticky), but inline so
 * the PRODUCE iterator, the server's hot path, costs no call per field. A decoder works on a local
 * copy of the reader (which the compiler keeps in registers) and checks `ok` once at the end.
 */
#ifndef SL_PROTO_WIRE_H
#define SL_PROTO_WIRE_H

#include <sluice/types.h>

#include "common/buf.h"
#include "proto/codec.h"

#include <string.h>

static inline bool rd_take(struct sl_reader *r, size_t n, const uint8_t **p)
{
	/* Invariant: off <= len, so len - off cannot wrap. */
	if (__builtin_expect(!r->ok || r->len - r->off < n, 0)) {
		r->ok = false;
		return false;
	}
	*p = r->p + r->off;
	r->off += n;
	return true;
}

static inline bool rd_u8(struct sl_reader *r, uint8_t *v)
{
	const uint8_t *p;
	if (!rd_take(r, 1, &p))
		return false;
	*v = p[0];
	return true;
}

static inline bool rd_u16(struct sl_reader *r, uint16_t *v)
{
	const uint8_t *p;
	if (!rd_take(r, 2, &p))
		return false;
	*v = sl_load_u16(p);
	return true;
}

static inline bool rd_u32(struct sl_reader *r, uint32_t *v)
{
	const uint8_t *p;
	if (!rd_take(r, 4, &p))
		return false;
	*v = sl_load_u32(p);
	return true;
}

static inline bool rd_u64(struct sl_reader *r, uint64_t *v)
{
	const uint8_t *p;
	if (!rd_take(r, 8, &p))
		return false;
	*v = sl_load_u64(p);
	return true;
}

static inline bool rd_i32(struct sl_reader *r, int32_t *v)
{
	uint32_t u;
	if (!rd_u32(r, &u))
		return false;
	*v = (int32_t)u;
	return true;
}

static inline bool rd_i64(struct sl_reader *r, int64_t *v)
{
	uint64_t u;
	if (!rd_u64(r, &u))
		return false;
	*v = (int64_t)u;
	return true;
}

static inline bool rd_str8(struct sl_reader *r, struct sl_str *s)
{
	uint8_t n;
	const uint8_t *p;
	if (!rd_u8(r, &n) || !rd_take(r, n, &p))
		return false;
	s->p = (const char *)p;
	s->len = n;
	return true;
}

static inline bool rd_str16(struct sl_reader *r, struct sl_str *s)
{
	uint16_t n;
	const uint8_t *p;
	if (!rd_u16(r, &n) || !rd_take(r, n, &p))
		return false;
	s->p = (const char *)p;
	s->len = n;
	return true;
}

static inline bool rd_hash(struct sl_reader *r, struct sluice_hash_key *h)
{
	const uint8_t *p;
	if (!rd_take(r, sizeof(h->be), &p))
		return false;
	memcpy(h->be, p, sizeof(h->be));
	return true;
}

/* Whether every byte was consumed: decoders reject trailing bytes. */
static inline bool rd_done(const struct sl_reader *r)
{
	return r->ok && r->off == r->len;
}

#endif
