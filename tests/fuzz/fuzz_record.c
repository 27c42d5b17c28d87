/*
 * libFuzzer target for the shard log's record frame decoder (src/log/record_format.h).
 * Feeds the input to sl_record_decode() once as one frame, then walks it as a segment body
 * (frames back to back, as reads and recovery do), checking that a decoded frame is within
 * the input, has sane lengths, and re-encodes to the very same bytes.
 * Deps: log_dep. Seeds: tests/fuzz/corpus/record/.
 */
#include "log/record_format.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame(const uint8_t *p, size_t len, const struct sluice_record *r, size_t flen)
{
	if (flen < SL_RECORD_FRAME_BYTES_MIN || flen > len)
		abort();
	if (r->key_len < 1 || r->key_len > SLUICE_KEY_LEN_MAX)
		abort();
	if ((const uint8_t *)r->key < p || (const uint8_t *)r->key + r->key_len > p + flen)
		abort();
	if (r->data < p || r->data + r->data_len > p + flen)
		abort();
	if (sl_record_frame_bytes(r->key_len, r->has_hash_key, r->data_len) != flen)
		abort();
	uint8_t *again = malloc(flen);
	if (!again)
		abort();
	if (sl_record_encode(again, r) != flen || memcmp(again, p, flen) != 0)
		abort();
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sluice_record r;
	size_t flen;
	int rc = sl_record_decode(data, size, &r, &flen);
	if (rc == 0)
		check_frame(data, size, &r, flen);
	else if (rc != -EAGAIN && rc != SLUICE_ERR_CORRUPT)
		abort();

	/* A segment body: decode until the first frame that is torn or bad. */
	size_t off = 0;
	while (off < size) {
		rc = sl_record_decode(data + off, size - off, &r, &flen);
		if (rc != 0)
			break;
		check_frame(data + off, size - off, &r, flen);
		off += flen;
	}
	return 0;
}
