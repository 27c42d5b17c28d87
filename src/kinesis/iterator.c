/* Shard iterator codec: see the format in iterator.h. */
#include "kinesis/iterator.h"

#include "common/buf.h"

#include <sluice/errors.h>

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

#define VERSION 1
#define HEAD_BYTES (1 + 1 + 4 + 8 + 8 + 1)
#define MAC_BYTES 16
#define RAW_MAX (HEAD_BYTES + SLUICE_NAME_LEN_MAX + MAC_BYTES)

_Static_assert(4 * ((RAW_MAX + 2) / 3) + 1 <= KIN_ITERATOR_BUF, "iterator buffer too small");

int kin_iterator_key_generate(uint8_t key[KIN_ITERATOR_KEY_BYTES])
{
	return RAND_bytes(key, KIN_ITERATOR_KEY_BYTES) == 1 ? 0 : SLUICE_ERR_INTERNAL;
}

static int mac(const uint8_t key[KIN_ITERATOR_KEY_BYTES], const uint8_t *p, size_t len,
	       uint8_t out[MAC_BYTES])
{
	uint8_t full[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (!HMAC(EVP_sha256(), key, KIN_ITERATOR_KEY_BYTES, p, len, full, &n) || n < MAC_BYTES)
		return SLUICE_ERR_INTERNAL;
	memcpy(out, full, MAC_BYTES);
	return 0;
}

int kin_iterator_encode(const uint8_t key[KIN_ITERATOR_KEY_BYTES], const struct kin_iterator *it,
			char out[KIN_ITERATOR_BUF])
{
	size_t name_len = strlen(it->stream);
	if (name_len == 0 || name_len > SLUICE_NAME_LEN_MAX)
		return -EINVAL;
	uint8_t raw[RAW_MAX];
	raw[0] = VERSION;
	raw[1] = (uint8_t)it->pos.type;
	sl_store_u32(raw + 2, it->shard_id);
	sl_store_u64(raw + 6, it->pos.value);
	sl_store_u64(raw + 14, (uint64_t)it->issued_ms);
	raw[22] = (uint8_t)name_len;
	memcpy(raw + HEAD_BYTES, it->stream, name_len);
	size_t len = HEAD_BYTES + name_len;
	int r = mac(key, raw, len, raw + len);
	if (r < 0)
		return r;
	EVP_EncodeBlock((unsigned char *)out, raw, (int)(len + MAC_BYTES));
	return 0;
}

int kin_iterator_decode(const uint8_t key[KIN_ITERATOR_KEY_BYTES], const char *text, size_t len,
			int64_t now_ms, struct kin_iterator *ret)
{
	if (len == 0 || len % 4 != 0 || len > KIN_ITERATOR_BUF - 1)
		return -EINVAL;
	uint8_t raw[KIN_ITERATOR_BUF];
	int n = EVP_DecodeBlock(raw, (const unsigned char *)text, (int)len);
	if (n < 0)
		return -EINVAL;
	/* EVP_DecodeBlock counts padding as zero bytes: take them off. */
	if (text[len - 1] == '=')
		n--;
	if (text[len - 2] == '=')
		n--;
	if (n < HEAD_BYTES + 1 + MAC_BYTES || raw[0] != VERSION)
		return -EINVAL;
	size_t name_len = raw[22];
	if (name_len == 0 || name_len > SLUICE_NAME_LEN_MAX ||
	    (size_t)n != HEAD_BYTES + name_len + MAC_BYTES)
		return -EINVAL;
	uint8_t want[MAC_BYTES];
	if (mac(key, raw, HEAD_BYTES + name_len, want) < 0)
		return -EINVAL;
	if (CRYPTO_memcmp(want, raw + HEAD_BYTES + name_len, MAC_BYTES) != 0)
		return -EINVAL;
	if (raw[1] > SLUICE_POS_AT_TIMESTAMP)
		return -EINVAL;
	int64_t issued = (int64_t)sl_load_u64(raw + 14);
	if (now_ms - issued > KIN_ITERATOR_TTL_MS)
		return -ETIME;
	ret->pos.type = (enum sluice_position_type)raw[1];
	ret->shard_id = sl_load_u32(raw + 2);
	ret->pos.value = sl_load_u64(raw + 6);
	ret->issued_ms = issued;
	memcpy(ret->stream, raw + HEAD_BYTES, name_len);
	ret->stream[name_len] = '\0';
	return 0;
}
