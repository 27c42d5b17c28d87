/*
 * libFuzzer target for the consumer checkpoint file parser (sl_checkpoint_parse,
 * src/consumer/checkpoint.h). The input is a checkpoint file's bytes. A parse that succeeds must
 * give back a seq that survives the writer's own formats ("<seq>\n<xxh3>\n" and the bare
 * "<seq>\n" an operator may write) unchanged; a failed parse is SLUICE_ERR_CORRUPT and leaves the
 * result untouched. Deps: consumer_meta_dep (checkpoint.c, xxhash). Seeds:
 * tests/fuzz/corpus/checkpoint/.
 */
#include "consumer/checkpoint.h"

#include <sluice/errors.h>

#include <xxhash.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint64_t poison = 0xa5a5a5a5a5a5a5a5ull;
	uint64_t seq = poison;
	int r = sl_checkpoint_parse((const char *)data, size, &seq);
	if (r != 0) {
		if (r != SLUICE_ERR_CORRUPT || seq != poison)
			abort();
		return 0;
	}
	/* What sl_checkpoint_save writes for seq must parse back to seq, checksummed or bare. */
	char text[64];
	int digits = snprintf(text, sizeof(text), "%" PRIu64, seq);
	uint64_t h = XXH3_64bits(text, (size_t)digits);
	int len = snprintf(text, sizeof(text), "%" PRIu64 "\n%016" PRIx64 "\n", seq, h);
	uint64_t again = 0;
	if (sl_checkpoint_parse(text, (size_t)len, &again) != 0 || again != seq)
		abort();
	if (sl_checkpoint_parse(text, (size_t)digits + 1, &again) != 0 || again != seq)
		abort();
	/* Any bit flipped in the checksummed form is caught or still gives a number. */
	for (int i = 0; i < len; i++) {
		text[i] ^= 0x01;
		again = poison;
		r = sl_checkpoint_parse(text, (size_t)len, &again);
		if (r == 0 && again == seq)
			abort(); /* a flip cannot leave the same seq behind a matching checksum */
		text[i] ^= 0x01;
	}
	return 0;
}
