/*
 * Name and partition-key rules. Both are Kinesis' rules, so a stream or a key that works with
 * Kinesis works with sluice and back: names are 1..128 of [a-zA-Z0-9_.-] (they become folder
 * names, so no '/', no NUL, nothing a shell or a URL needs to quote); partition keys are
 * 1..256 bytes of well-formed UTF-8 (they reach JSON output and the HTTP API as strings).
 */
#include "proto/codec.h"

#include "common/utf8.h"

#include <string.h>

static inline bool name_char(uint8_t c)
{
	/* c | 0x20 folds A-Z onto a-z and maps no other byte there. */
	return (uint8_t)((c | 0x20) - 'a') < 26 || (uint8_t)(c - '0') < 10 || c == '_' ||
	       c == '.' || c == '-';
}

bool sl_proto_name_valid(const uint8_t *name, size_t len)
{
	if (len < 1 || len > SLUICE_NAME_LEN_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char(name[i]))
			return false;
	return true;
}

bool sl_proto_key_valid(const uint8_t *key, size_t len)
{
	if (len < 1 || len > SLUICE_KEY_LEN_MAX)
		return false;
	return sl_utf8_valid(key, len);
}
