/*
 * libFuzzer target for the archive object reader (src/archive/archive_format.h).
 * Input: one byte choosing the compression (even: none, odd: zstd), then the object. Checks that
 * every delivered record is within the format's limits, that a successful read re-encodes (writer,
 * plain) into an object that reads back to the same records, and feeds the input to the object
 * key parser too. Deps: archive_dep. Seeds: tests/fuzz/corpus/archive/.
 */
#include "archive/archive_format.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct pass {
	struct sl_archive_writer *w; /* NULL on the second pass */
	uint64_t hash;
	uint64_t n;
	uint32_t shard_id;
	char stream[SLUICE_NAME_LEN_MAX + 1];
};

static void mix(uint64_t *h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		*h = (*h ^ b[i]) * 1099511628211ull;
}

static int on_record(const struct sl_archive_record *r, void *ctx)
{
	struct pass *p = ctx;
	size_t slen = strlen(r->stream);
	if (slen < 1 || slen > SLUICE_NAME_LEN_MAX || r->key_len < 1 ||
	    r->key_len > SLUICE_KEY_LEN_MAX || r->ts_ms < 0 || r->line != p->n + 1)
		abort();
	if (p->n == 0) {
		memcpy(p->stream, r->stream, slen + 1);
		p->shard_id = r->shard_id;
	}
	mix(&p->hash, r->stream, slen);
	mix(&p->hash, &r->shard_id, sizeof(r->shard_id));
	mix(&p->hash, &r->seq, sizeof(r->seq));
	mix(&p->hash, &r->ts_ms, sizeof(r->ts_ms));
	mix(&p->hash, r->key, r->key_len);
	mix(&p->hash, r->data, r->data_len);
	p->n++;
	if (p->w) {
		struct sluice_record rec = {.seq = r->seq,
					    .ts_ms = r->ts_ms,
					    .key = r->key,
					    .key_len = (uint16_t)r->key_len,
					    .data = r->data,
					    .data_len = (uint32_t)r->data_len};
		/* The reader accepted the key; the writer must too (it is valid UTF-8 JSON text).
		 */
		if (sl_archive_writer_add(p->w, &rec) != 0)
			abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum sl_archive_compression comp = (data[0] & 1) ? SL_ARCHIVE_ZSTD : SL_ARCHIVE_NONE;
	const uint8_t *obj = data + 1;
	size_t len = size - 1;

	struct sl_archive_key_info ki;
	if (sl_archive_key_parse((const char *)obj, len, &ki) == 0) {
		if (ki.first_seq > ki.last_seq || ki.stream_len < 1 ||
		    ki.stream + ki.stream_len > (const char *)obj + len)
			abort();
	}

	struct pass first = {.hash = 14695981039346656037ull};
	char msg[256];
	/* The writer is created lazily for the first record's stream and shard. */
	struct sl_archive_options plain = {.format = SL_ARCHIVE_JSONL,
					   .compression = SL_ARCHIVE_NONE};
	int r = sl_archive_read(obj, len, comp, on_record, &first, msg, sizeof(msg));
	if (r < 0) {
		if (r != SLUICE_ERR_CORRUPT && r != -ENOMEM)
			abort();
		return 0;
	}
	if ((uint64_t)r != first.n)
		abort();
	if (first.n == 0)
		return 0;

	/* Second pass: re-encode, read back, compare. */
	struct pass enc = {.hash = 14695981039346656037ull};
	if (sl_archive_writer_create(first.stream, first.shard_id, &plain, &enc.w) != 0)
		abort();
	if (sl_archive_read(obj, len, comp, on_record, &enc, msg, sizeof(msg)) != r)
		abort();
	const uint8_t *out;
	size_t out_len;
	if (sl_archive_writer_finish(enc.w, &out, &out_len) != 0)
		abort();
	struct pass again = {.hash = 14695981039346656037ull};
	if (sl_archive_read(out, out_len, SL_ARCHIVE_NONE, on_record, &again, msg, sizeof(msg)) !=
		r ||
	    again.hash != first.hash)
		abort();
	sl_archive_writer_destroy(enc.w);
	return 0;
}
