/*
 * The unit conventions of every sluice tool: durations `500ms`, `10s`, `5m`, `24h`, `7d` (a plain
 * number is seconds); sizes `512KiB`, `5MiB`, `1GiB` (a plain number is bytes; KB/MB/GB are
 * powers of 1000); timestamps ISO 8601 (`2026-11-28T01:02:03Z`, `...03.250+01:00`) or Unix ms.
 */
#ifndef SL_COMMON_UNITS_H
#define SL_COMMON_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* 0, or -EINVAL for a malformed value, -ERANGE for an overflowing one. */
int sl_parse_duration_ms(const char *s, int64_t *ret_ms);
int sl_parse_size_bytes(const char *s, uint64_t *ret_bytes);
int sl_parse_timestamp_ms(const char *s, int64_t *ret_ms);
/* Formats `1500ms`, `90s`, `5m`, `24h`, `7d` (the largest unit that divides exactly). */
void sl_format_duration(int64_t ms, char *out, size_t out_len);
/* Formats 2026-11-28T01:02:03.250Z. */
void sl_format_timestamp(int64_t ms, char *out, size_t out_len);
/* Parses a decimal uint64; 0 or -EINVAL/-ERANGE. */
int sl_parse_u64(const char *s, uint64_t *ret);

#endif
