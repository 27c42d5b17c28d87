#include "common/utf8.h"

#include <string.h>

/*
 * Well-formed UTF-8 per Unicode 15 table 3-7: the second byte's range depends on the first so
 * that overlong forms (C0, C1, E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points over
 * U+10FFFF (F4 90.., F5..FF) are all rejected without decoding the code point.
 */
bool sl_utf8_valid(const void *text, size_t len)
{
	const uint8_t *s = text;
	size_t i = 0;
	while (i < len) {
		/* Keys are nearly always ASCII: check 8 bytes at a time. */
		if (len - i >= 8) {
			uint64_t v;
			memcpy(&v, s + i, 8);
			if (!(v & 0x8080808080808080ull)) {
				i += 8;
				continue;
			}
		}
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t more;
		uint8_t lo = 0x80, hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
		} else if (c == 0xe0) {
			more = 2;
			lo = 0xa0;
		} else if (c == 0xed) {
			more = 2;
			hi = 0x9f;
		} else if (c >= 0xe1 && c <= 0xef) {
			more = 2;
		} else if (c == 0xf0) {
			more = 3;
			lo = 0x90;
		} else if (c == 0xf4) {
			more = 3;
			hi = 0x8f;
		} else if (c >= 0xf1 && c <= 0xf3) {
			more = 3;
		} else {
			return false; /* 80..C1 (continuation or overlong lead), F5..FF */
		}
		if (len - i - 1 < more)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= more; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		i += more + 1;
	}
	return true;
}
