#include "common/units.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int sl_parse_u64(const char *s, uint64_t *ret)
{
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	uint64_t v = 0;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

/* Splits "12.5MiB" into a number (integer and fraction in millionths) and a suffix. */
static int split_number(const char *s, uint64_t *whole, uint64_t *frac_micro, const char **suffix)
{
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	uint64_t w = 0, f = 0, scale = 100000;
	while (isdigit((unsigned char)*s)) {
		unsigned d = (unsigned)(*s - '0');
		if (w > (UINT64_MAX - d) / 10)
			return -ERANGE;
		w = w * 10 + d;
		s++;
	}
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		while (isdigit((unsigned char)*s)) {
			f += (uint64_t)(*s - '0') * scale;
			scale /= 10;
			s++;
		}
	}
	*whole = w;
	*frac_micro = f;
	*suffix = s;
	return 0;
}

static int scale_u64(uint64_t whole, uint64_t frac_micro, uint64_t unit, uint64_t *ret)
{
	if (unit && whole > UINT64_MAX / unit)
		return -ERANGE;
	uint64_t v = whole * unit;
	uint64_t f =
	    (unit >= 1000000) ? frac_micro * (unit / 1000000) : frac_micro * unit / 1000000;
	if (v > UINT64_MAX - f)
		return -ERANGE;
	*ret = v + f;
	return 0;
}

int sl_parse_duration_ms(const char *s, int64_t *ret_ms)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = {
	    {"", 1000},	    {"ms", 1},	    {"s", 1000},     {"sec", 1000},    {"m", 60000},
	    {"min", 60000}, {"h", 3600000}, {"d", 86400000}, {"w", 604800000},
	};
	uint64_t whole, frac;
	const char *suffix;
	int r = split_number(s, &whole, &frac, &suffix);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(suffix, units[i].suffix) == 0) {
			uint64_t v;
			r = scale_u64(whole, frac, units[i].ms, &v);
			if (r < 0)
				return r;
			if (v > INT64_MAX)
				return -ERANGE;
			*ret_ms = (int64_t)v;
			return 0;
		}
	}
	return -EINVAL;
}

int sl_parse_size_bytes(const char *s, uint64_t *ret_bytes)
{
	static const struct {
		const char *suffix;
		uint64_t bytes;
	} units[] = {
	    {"", 1},
	    {"B", 1},
	    {"KiB", 1ull << 10},
	    {"MiB", 1ull << 20},
	    {"GiB", 1ull << 30},
	    {"TiB", 1ull << 40},
	    {"KB", 1000},
	    {"MB", 1000000},
	    {"GB", 1000000000},
	    {"TB", 1000000000000ull},
	    {"K", 1ull << 10},
	    {"M", 1ull << 20},
	    {"G", 1ull << 30},
	};
	uint64_t whole, frac;
	const char *suffix;
	int r = split_number(s, &whole, &frac, &suffix);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(suffix, units[i].suffix) == 0)
			return scale_u64(whole, frac, units[i].bytes, ret_bytes);
	}
	return -EINVAL;
}

static int parse_digits(const char **s, int n, int *ret)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*s)[i]))
			return -EINVAL;
		v = v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	*ret = v;
	return 0;
}

int sl_parse_timestamp_ms(const char *s, int64_t *ret_ms)
{
	if (!s || !*s)
		return -EINVAL;
	/* A bare integer is Unix time in ms. */
	uint64_t plain;
	if (sl_parse_u64(s, &plain) == 0) {
		if (plain > INT64_MAX)
			return -ERANGE;
		*ret_ms = (int64_t)plain;
		return 0;
	}
	int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
	const char *p = s;
	if (parse_digits(&p, 4, &y) || *p++ != '-' || parse_digits(&p, 2, &mo) || *p++ != '-' ||
	    parse_digits(&p, 2, &d))
		return -EINVAL;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (parse_digits(&p, 2, &h) || *p++ != ':' || parse_digits(&p, 2, &mi))
			return -EINVAL;
		if (*p == ':') {
			p++;
			if (parse_digits(&p, 2, &sec))
				return -EINVAL;
			if (*p == '.') {
				p++;
				int scale = 100;
				if (!isdigit((unsigned char)*p))
					return -EINVAL;
				while (isdigit((unsigned char)*p)) {
					ms += (*p - '0') * scale;
					scale /= 10;
					p++;
				}
			}
		}
	}
	int64_t offset_s = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, oh, om;
		p++;
		if (parse_digits(&p, 2, &oh))
			return -EINVAL;
		if (*p == ':')
			p++;
		if (parse_digits(&p, 2, &om))
			return -EINVAL;
		offset_s = sign * (oh * 3600 + om * 60);
	}
	if (*p != '\0')
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	struct tm tm = {.tm_year = y - 1900,
			.tm_mon = mo - 1,
			.tm_mday = d,
			.tm_hour = h,
			.tm_min = mi,
			.tm_sec = sec};
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*ret_ms = ((int64_t)t - offset_s) * 1000 + ms;
	return 0;
}

void sl_format_duration(int64_t ms, char *out, size_t out_len)
{
	static const struct {
		const char *suffix;
		int64_t ms;
	} units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(out, out_len, "%lld%s", (long long)(ms / units[i].ms),
				 units[i].suffix);
			return;
		}
	}
	snprintf(out, out_len, "%lldms", (long long)ms);
}

void sl_format_timestamp(int64_t ms, char *out, size_t out_len)
{
	time_t t = (time_t)(ms / 1000);
	int frac = (int)(ms % 1000);
	if (frac < 0) {
		frac += 1000;
		t -= 1;
	}
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, out_len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}
