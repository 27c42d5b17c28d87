/* The archive object format: see archive_format.h for the layout and the reader's checks. */
#include "archive/archive_format.h"
#include "archive/base64.h"
#include "common/utf8.h"

#include "common/buf.h"

#include <sluice/errors.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
/* ZSTD_decompressBound: in the static-only section, exported by libzstd since 1.4.0. */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#define SHARD_ID_PREFIX "shardId-"
#define SHARD_ID_DIGITS 12
#define SEQ_DIGITS 20

struct sl_archive_writer {
	struct sl_archive_options opt;
	char stream[SLUICE_NAME_LEN_MAX + 1];
	uint32_t shard_id;
	/* `{"stream":"S","shard":"shardId-000000000000","seq":"`: the same for every line. */
	char head[SLUICE_NAME_LEN_MAX + 80];
	size_t head_len;
	ZSTD_CCtx *cctx; /* NULL without compression */
	struct sl_buf line;
	struct sl_buf out;
	struct sl_archive_writer_info info;
	bool finished;
};

static void set_err(char *err_msg, size_t err_msg_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err_msg, size_t err_msg_len, const char *fmt, ...)
{
	if (!err_msg || err_msg_len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_msg, err_msg_len, fmt, ap);
	va_end(ap);
}

static bool name_valid(const char *s, size_t len)
{
	if (len < 1 || len > SLUICE_NAME_LEN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

/* Decimal digits of v at p (no NUL); returns the count. */
static size_t put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/* ---- writer ---- */

const char *sl_archive_ext(enum sl_archive_format format, enum sl_archive_compression compression)
{
	bool zstd = compression == SL_ARCHIVE_ZSTD;
	if (format == SL_ARCHIVE_RAW)
		return zstd ? ".raw.zst" : ".raw";
	return zstd ? ".jsonl.zst" : ".jsonl";
}

static int cctx_setup(struct sl_archive_writer *w)
{
	if (!w->cctx)
		return 0;
	ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_and_parameters);
	if (ZSTD_isError(
		ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, w->opt.zstd_level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1)))
		return SLUICE_ERR_INTERNAL;
	return 0;
}

int sl_archive_writer_create(const char *stream, uint32_t shard_id,
			     const struct sl_archive_options *opt, struct sl_archive_writer **ret)
{
	struct sl_archive_options o = {.format = SL_ARCHIVE_JSONL, .compression = SL_ARCHIVE_ZSTD};
	if (opt)
		o = *opt;
	if (o.zstd_level == 0)
		o.zstd_level = SL_ARCHIVE_ZSTD_LEVEL_DEFAULT;
	if (!stream || !name_valid(stream, strlen(stream)))
		return SLUICE_ERR_INVALID_NAME;
	if ((o.format != SL_ARCHIVE_JSONL && o.format != SL_ARCHIVE_RAW) ||
	    (o.compression != SL_ARCHIVE_ZSTD && o.compression != SL_ARCHIVE_NONE) ||
	    o.zstd_level < ZSTD_minCLevel() || o.zstd_level > ZSTD_maxCLevel())
		return SLUICE_ERR_INVALID_ARGUMENT;

	struct sl_archive_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->opt = o;
	w->shard_id = shard_id;
	strcpy(w->stream, stream);
	int n = snprintf(w->head, sizeof(w->head),
			 "{\"stream\":\"%s\",\"shard\":\"" SHARD_ID_PREFIX "%012" PRIu32
			 "\",\"seq\":\"",
			 stream, shard_id);
	assert(n > 0 && (size_t)n < sizeof(w->head));
	w->head_len = (size_t)n;
	sl_buf_init(&w->line);
	sl_buf_init(&w->out);
	if (o.compression == SL_ARCHIVE_ZSTD) {
		w->cctx = ZSTD_createCCtx();
		if (!w->cctx) {
			sl_archive_writer_destroy(w);
			return -ENOMEM;
		}
	}
	sl_archive_writer_reset(w);
	if (cctx_setup(w) < 0) {
		sl_archive_writer_destroy(w);
		return SLUICE_ERR_INTERNAL;
	}
	*ret = w;
	return 0;
}

void sl_archive_writer_destroy(struct sl_archive_writer *w)
{
	if (!w)
		return;
	ZSTD_freeCCtx(w->cctx);
	sl_buf_finish(&w->line);
	sl_buf_finish(&w->out);
	free(w);
}

void sl_archive_writer_reset(struct sl_archive_writer *w)
{
	sl_buf_reset(&w->line);
	sl_buf_reset(&w->out);
	memset(&w->info, 0, sizeof(w->info));
	w->info.ext = sl_archive_ext(w->opt.format, w->opt.compression);
	w->finished = false;
	/* A failed add may have left the stream mid-frame: start a fresh one. Parameters stick. */
	if (w->cctx)
		ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_only);
}

/* JSON-escape s into p (room for 6 bytes per input byte). Returns the end. */
static char *json_escape(char *p, const uint8_t *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		uint8_t c = s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			*p++ = (char)c;
			continue;
		}
		*p++ = '\\';
		switch (c) {
		case '"':
			*p++ = '"';
			break;
		case '\\':
			*p++ = '\\';
			break;
		case '\n':
			*p++ = 'n';
			break;
		case '\r':
			*p++ = 'r';
			break;
		case '\t':
			*p++ = 't';
			break;
		case '\b':
			*p++ = 'b';
			break;
		case '\f':
			*p++ = 'f';
			break;
		default:
			*p++ = 'u';
			*p++ = '0';
			*p++ = '0';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	return p;
}

/* Render the body bytes of one record into w->line. */
static int render(struct sl_archive_writer *w, const struct sluice_record *rec)
{
	/* Lines are appended: add() compresses them in chunks, not one call per line. */
	struct sl_buf *l = &w->line;
	if (w->opt.format == SL_ARCHIVE_RAW) {
		if (sl_buf_reserve(l, (size_t)rec->data_len + 1) < 0)
			return -ENOMEM;
		if (rec->data_len)
			memcpy(l->data + l->len, rec->data, rec->data_len);
		l->data[l->len + rec->data_len] = '\n';
		l->len += (size_t)rec->data_len + 1;
		return 0;
	}
	/* head + seq(20) + `","ts":` + ts(20) + `,"key":"` + key*6 + `","data":"` + b64 + `"}\n` */
	size_t need = w->head_len + 20 + 8 + 20 + 9 + 6 * (size_t)rec->key_len + 11 +
		      sl_base64_encoded_len(rec->data_len) + 3;
	if (sl_buf_reserve(l, need) < 0)
		return -ENOMEM;
	char *p = (char *)l->data + l->len;
	char *line_start = p;
	memcpy(p, w->head, w->head_len);
	p += w->head_len;
	p += put_u64(p, rec->seq);
	memcpy(p, "\",\"ts\":", 7);
	p += 7;
	p += put_u64(p, (uint64_t)rec->ts_ms); /* ts_ms >= 0: checked by add */
	memcpy(p, ",\"key\":\"", 8);
	p += 8;
	p = json_escape(p, (const uint8_t *)rec->key, rec->key_len);
	memcpy(p, "\",\"data\":\"", 10);
	p += 10;
	p += sl_base64_encode(p, rec->data, rec->data_len);
	memcpy(p, "\"}\n", 3);
	p += 3;
	assert((size_t)(p - line_start) <= need);
	l->len += (size_t)(p - line_start);
	return 0;
}

/* Feed n bytes (or the epilogue, with ZSTD_e_end) to the compressor, appending to w->out. */
static int compress(struct sl_archive_writer *w, const void *p, size_t n, ZSTD_EndDirective end)
{
	ZSTD_inBuffer in = {p, n, 0};
	for (;;) {
		if (sl_buf_reserve(&w->out, ZSTD_CStreamOutSize()) < 0)
			return -ENOMEM;
		ZSTD_outBuffer out = {w->out.data + w->out.len, w->out.cap - w->out.len, 0};
		size_t r = ZSTD_compressStream2(w->cctx, &out, &in, end);
		if (ZSTD_isError(r))
			return SLUICE_ERR_INTERNAL;
		w->out.len += out.pos;
		/* continue: done once the input is consumed; end: once nothing is left to flush. */
		if (end == ZSTD_e_continue ? in.pos == in.size : r == 0)
			return 0;
	}
}

/* Lines buffered before each compression call. */
#define ARCHIVE_CHUNK_BYTES (64u << 10)

/* Move the buffered lines into the object (compressed or not). */
static int flush_lines(struct sl_archive_writer *w)
{
	if (!w->line.len)
		return 0;
	int r = w->cctx ? compress(w, w->line.data, w->line.len, ZSTD_e_continue)
			: sl_buf_put(&w->out, w->line.data, w->line.len);
	if (r < 0)
		return r;
	sl_buf_reset(&w->line);
	w->info.out_bytes = w->out.len;
	/* One line of a huge record must not pin its memory until the object is reset. */
	if (w->line.cap > (4u << 20)) {
		sl_buf_finish(&w->line);
		sl_buf_init(&w->line);
	}
	return 0;
}

int sl_archive_writer_add(struct sl_archive_writer *w, const struct sluice_record *rec)
{
	if (w->finished)
		return SLUICE_ERR_INVALID_ARGUMENT;
	if (w->info.records > 0 && rec->seq <= w->info.last_seq)
		return SLUICE_ERR_INVALID_ARGUMENT;
	if (rec->ts_ms < 0 || (rec->data_len > 0 && !rec->data))
		return SLUICE_ERR_INVALID_ARGUMENT;
	if (rec->key_len < 1 || rec->key_len > SLUICE_KEY_LEN_MAX || !rec->key ||
	    !sl_utf8_valid((const uint8_t *)rec->key, rec->key_len))
		return SLUICE_ERR_INVALID_KEY;
	size_t before = w->line.len;
	int r = render(w, rec);
	if (r < 0)
		return r;
	if (w->info.records == 0) {
		w->info.first_seq = rec->seq;
		w->info.first_ts_ms = rec->ts_ms;
	}
	w->info.last_seq = rec->seq;
	w->info.records++;
	w->info.raw_bytes += w->line.len - before;
	w->info.data_bytes += rec->data_len;
	/* Compress in chunks: one zstd call per ~64 KiB of lines, not per line. */
	if (w->line.len >= ARCHIVE_CHUNK_BYTES) {
		r = flush_lines(w);
		if (r < 0)
			return r;
	}
	return 0;
}

int sl_archive_writer_finish(struct sl_archive_writer *w, const uint8_t **ret_data, size_t *ret_len)
{
	if (!w->finished) {
		int fr = flush_lines(w);
		if (fr < 0)
			return fr;
		if (w->cctx) {
			int r = compress(w, NULL, 0, ZSTD_e_end);
			if (r < 0)
				return r;
		}
		w->finished = true;
		w->info.out_bytes = w->out.len;
	}
	*ret_data = w->out.data;
	*ret_len = w->out.len;
	return 0;
}

void sl_archive_writer_info(const struct sl_archive_writer *w, struct sl_archive_writer_info *ret)
{
	*ret = w->info;
}

/* ---- reader ---- */

/* A canonical decimal u64: 1-20 digits, no leading zero unless "0". */
static bool parse_dec_u64(const char *s, size_t len, uint64_t *ret)
{
	if (len < 1 || len > 20 || (len > 1 && s[0] == '0'))
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*ret = v;
	return true;
}

/* "shardId-" + 12 digits, the value fitting a u32. */
static bool parse_shard_id(const char *s, size_t len, uint32_t *ret)
{
	size_t plen = sizeof(SHARD_ID_PREFIX) - 1;
	if (len != plen + SHARD_ID_DIGITS || memcmp(s, SHARD_ID_PREFIX, plen) != 0)
		return false;
	uint64_t v = 0;
	for (size_t i = plen; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

struct reader {
	sl_archive_record_fn fn;
	void *ctx;
	char *err_msg;
	size_t err_msg_len;
	uint64_t line;
	uint64_t records;
	bool have_first;
	char stream[SLUICE_NAME_LEN_MAX + 1];
	size_t stream_len;
	uint32_t shard_id;
	uint64_t last_seq;
	struct sl_buf data;
	int stopped; /* the callback's nonzero value, once it returned one */
};

/* read_line's way of saying "the callback stopped us" through byte counts (never a real code). */
#define STOPPED (-ECANCELED)

static const char *str_field(json_t *o, const char *name, size_t *ret_len)
{
	json_t *v = json_object_get(o, name);
	if (!json_is_string(v))
		return NULL;
	*ret_len = json_string_length(v);
	return json_string_value(v);
}

#define CORRUPT(rd, ...)                                                                           \
	do {                                                                                       \
		char m_[200];                                                                      \
		snprintf(m_, sizeof(m_), __VA_ARGS__);                                             \
		set_err((rd)->err_msg, (rd)->err_msg_len, "line %" PRIu64 ": %s", (rd)->line, m_); \
		r = SLUICE_ERR_CORRUPT;                                                            \
		goto out;                                                                          \
	} while (0)

/* The fields of one line, borrowed from the line (fast path) or from jansson's object. */
struct line_fields {
	const char *stream, *shard, *seq, *key, *data;
	size_t stream_len, shard_len, seq_len, key_len, data_len;
	bool ts_ok;
	int64_t ts;
};

/* Expect the literal lit at *p; advance past it. */
static bool lit(const char **p, const char *end, const char *l, size_t n)
{
	if ((size_t)(end - *p) < n || memcmp(*p, l, n) != 0)
		return false;
	*p += n;
	return true;
}

/*
 * Whether any byte of the 8 in w is a backslash or below 0x20. The classic exact SWAR tests
 * ("has a zero byte", "has a byte less than n"): a borrow can flag bytes above a real hit, never
 * a word without one. Eight bytes per step: the data field of a 1 KiB record is 1,368 bytes.
 */
static inline bool word_has_escape_or_control(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t x = w ^ (ones * '\\');
	return (((x - ones) & ~x) | ((w - ones * 0x20) & ~w)) & highs;
}

/* A JSON string body without escapes up to the closing quote; advance past the quote. */
static bool plain_string(const char **p, const char *end, const char **ret, size_t *ret_len)
{
	const char *q = memchr(*p, '"', (size_t)(end - *p));
	if (!q)
		return false;
	const char *c = *p;
	for (; q - c >= 8; c += 8) {
		uint64_t w;
		memcpy(&w, c, 8);
		if (word_has_escape_or_control(w))
			return false;
	}
	for (; c < q; c++)
		if (*c == '\\' || (uint8_t)*c < 0x20)
			return false;
	*ret = *p;
	*ret_len = (size_t)(q - *p);
	*p = q + 1;
	return true;
}

/*
 * The writer's exact line (fields in order, no escapes in any string, no spaces), parsed without
 * building a JSON object: most of a restore's CPU otherwise goes to jansson. Anything else
 * returns false and goes through jansson, which accepts every valid line and explains errors.
 */
static bool fast_fields(const char *p, size_t len, struct line_fields *f)
{
	const char *end = p + len;
	if (!lit(&p, end, "{\"stream\":\"", 11) ||
	    !plain_string(&p, end, &f->stream, &f->stream_len) ||
	    !lit(&p, end, ",\"shard\":\"", 10) ||
	    !plain_string(&p, end, &f->shard, &f->shard_len) || !lit(&p, end, ",\"seq\":\"", 8) ||
	    !plain_string(&p, end, &f->seq, &f->seq_len) || !lit(&p, end, ",\"ts\":", 6))
		return false;
	const char *t = p;
	uint64_t ts = 0;
	while (p < end && *p >= '0' && *p <= '9' && p - t < 18)
		ts = ts * 10 + (uint64_t)(*p++ - '0');
	if (p == t || (p - t > 1 && *t == '0') || (p < end && *p >= '0' && *p <= '9'))
		return false;
	if (!lit(&p, end, ",\"key\":\"", 8) || !plain_string(&p, end, &f->key, &f->key_len) ||
	    !sl_utf8_valid(f->key, f->key_len) || !lit(&p, end, ",\"data\":\"", 9) || end - p < 2 ||
	    end[-2] != '"' || end[-1] != '}')
		return false;
	/*
	 * data runs to the line's closing `"}` and is not scanned here: base64 has no quote,
	 * backslash nor control character, so a data field that decodes is a plain JSON string, and
	 * one that does not goes to jansson (read_line). Saves two passes over the longest field.
	 */
	f->data = p;
	f->data_len = (size_t)(end - 2 - p);
	f->ts_ok = true;
	f->ts = (int64_t)ts;
	return true;
}

static int read_line(struct reader *rd, const char *p, size_t len)
{
	int r = 0;
	json_t *o = NULL;
	struct line_fields f; /* every field is set by fast_fields or the jansson path */
	int d = -EINVAL;
	if (fast_fields(p, len, &f))
		d = sl_base64_decode(f.data, f.data_len, &rd->data);
	if (d == -ENOMEM) {
		r = -ENOMEM;
		goto out;
	}
	bool decoded = d == 0;
	if (!decoded) {
		/* Not the writer's plain line, or data needs unescaping (or is bad): jansson. */
		json_error_t jerr;
		o = json_loadb(p, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
		if (!o)
			CORRUPT(rd, "not JSON (%s at column %d)", jerr.text, jerr.column);
		if (!json_is_object(o))
			CORRUPT(rd, "not a JSON object");
		if (json_object_size(o) != 6)
			CORRUPT(rd, "%zu fields, want stream, shard, seq, ts, key, data",
				json_object_size(o));
		f.stream = str_field(o, "stream", &f.stream_len);
		f.shard = str_field(o, "shard", &f.shard_len);
		f.seq = str_field(o, "seq", &f.seq_len);
		f.key = str_field(o, "key", &f.key_len);
		f.data = str_field(o, "data", &f.data_len);
		json_t *ts = json_object_get(o, "ts");
		f.ts_ok = json_is_integer(ts) && json_integer_value(ts) >= 0;
		f.ts = f.ts_ok ? (int64_t)json_integer_value(ts) : 0;
	}

	struct sl_archive_record rec = {.line = rd->line};
	if (!f.stream || !name_valid(f.stream, f.stream_len))
		CORRUPT(rd, "stream is not a valid stream name");
	if (!f.shard || !parse_shard_id(f.shard, f.shard_len, &rec.shard_id))
		CORRUPT(rd, "shard is not shardId-NNNNNNNNNNNN");
	if (!f.seq || !parse_dec_u64(f.seq, f.seq_len, &rec.seq))
		CORRUPT(rd, "seq is not a decimal u64 string");
	if (!f.ts_ok)
		CORRUPT(rd, "ts is not an integer >= 0");
	rec.ts_ms = f.ts;
	if (!f.key || f.key_len < 1 || f.key_len > SLUICE_KEY_LEN_MAX)
		CORRUPT(rd, "key is not a string of 1..%d bytes", SLUICE_KEY_LEN_MAX);
	if (!f.data)
		CORRUPT(rd, "data is not a string");
	d = decoded ? 0 : sl_base64_decode(f.data, f.data_len, &rd->data);
	if (d == -ENOMEM) {
		r = -ENOMEM;
		goto out;
	}
	if (d < 0)
		CORRUPT(rd, "data is not valid base64");

	if (!rd->have_first) {
		memcpy(rd->stream, f.stream, f.stream_len);
		rd->stream[f.stream_len] = '\0';
		rd->stream_len = f.stream_len;
		rd->shard_id = rec.shard_id;
		rd->have_first = true;
	} else {
		if (rd->stream_len != f.stream_len ||
		    memcmp(rd->stream, f.stream, f.stream_len) != 0 || rd->shard_id != rec.shard_id)
			CORRUPT(rd, "stream/shard differ from line 1's");
		if (rec.seq <= rd->last_seq)
			CORRUPT(rd, "seq %" PRIu64 " is not above the previous %" PRIu64, rec.seq,
				rd->last_seq);
	}
	rd->last_seq = rec.seq;
	rec.stream = rd->stream;
	rec.key = f.key;
	rec.key_len = f.key_len;
	rec.data = rd->data.data ? rd->data.data : (const uint8_t *)""; /* never NULL */
	rec.data_len = rd->data.len;
	rd->records++;
	int stop = rd->fn(&rec, rd->ctx);
	if (stop != 0) {
		rd->stopped = stop;
		r = STOPPED;
	}
out:
	json_decref(o);
	return r;
}

/* Parse every complete line of p[0..len); returns the bytes consumed or < 0. */
static ssize_t read_lines(struct reader *rd, const uint8_t *p, size_t len, size_t *scan_from)
{
	size_t done = 0;
	while (done < len) {
		const uint8_t *nl = memchr(p + *scan_from, '\n', len - *scan_from);
		if (!nl) {
			*scan_from = len;
			break;
		}
		size_t line_len = (size_t)(nl - (p + done));
		rd->line++;
		if (line_len > SL_ARCHIVE_LINE_BYTES_MAX) {
			set_err(rd->err_msg, rd->err_msg_len,
				"line %" PRIu64 ": longer than %zu bytes", rd->line,
				(size_t)SL_ARCHIVE_LINE_BYTES_MAX);
			return SLUICE_ERR_CORRUPT;
		}
		int r = read_line(rd, (const char *)p + done, line_len);
		if (r != 0)
			return r;
		done += line_len + 1;
		*scan_from = done;
	}
	if (len - done > SL_ARCHIVE_LINE_BYTES_MAX) {
		set_err(rd->err_msg, rd->err_msg_len, "line %" PRIu64 ": longer than %zu bytes",
			rd->line + 1, (size_t)SL_ARCHIVE_LINE_BYTES_MAX);
		return SLUICE_ERR_CORRUPT;
	}
	return (ssize_t)done;
}

/*
 * Stream-decompress obj, handing each output chunk to sink (which returns the bytes it consumed
 * from the pending buffer, or < 0). The frame must be complete and alone.
 */
typedef ssize_t (*chunk_fn)(void *ctx, const uint8_t *p, size_t len);

static int zstd_stream(const uint8_t *obj, size_t len, struct sl_buf *pending, chunk_fn sink,
		       void *ctx, char *err_msg, size_t err_msg_len)
{
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	if (!dctx)
		return -ENOMEM;
	int r = 0;
	ZSTD_inBuffer in = {obj, len, 0};
	size_t chunk = ZSTD_DStreamOutSize();
	for (;;) {
		if (sl_buf_reserve(pending, chunk) < 0) {
			r = -ENOMEM;
			break;
		}
		ZSTD_outBuffer out = {pending->data + pending->len, chunk, 0};
		size_t z = ZSTD_decompressStream(dctx, &out, &in);
		if (ZSTD_isError(z)) {
			set_err(err_msg, err_msg_len, "zstd: %s", ZSTD_getErrorName(z));
			r = SLUICE_ERR_CORRUPT;
			break;
		}
		pending->len += out.pos;
		ssize_t used = sink(ctx, pending->data, pending->len);
		if (used < 0) {
			r = (int)used;
			break;
		}
		sl_buf_consume(pending, (size_t)used);
		if (z == 0) {
			/* The frame is complete and flushed. */
			if (in.pos != in.size) {
				set_err(err_msg, err_msg_len,
					"%zu bytes after the end of the zstd frame",
					in.size - in.pos);
				r = SLUICE_ERR_CORRUPT;
			}
			break;
		}
		if (in.pos == in.size && out.pos < out.size) {
			/* No more input, and the decoder could not fill its output: cut short. */
			set_err(err_msg, err_msg_len, "truncated zstd frame (%zu bytes)", len);
			r = SLUICE_ERR_CORRUPT;
			break;
		}
	}
	ZSTD_freeDCtx(dctx);
	return r;
}

struct line_sink {
	struct reader *rd;
	size_t scan_from;
};

static ssize_t line_chunk(void *ctx, const uint8_t *p, size_t len)
{
	struct line_sink *s = ctx;
	ssize_t used = read_lines(s->rd, p, len, &s->scan_from);
	if (used > 0)
		s->scan_from -= (size_t)used;
	return used;
}

int sl_archive_read(const uint8_t *obj, size_t len, enum sl_archive_compression compression,
		    sl_archive_record_fn fn, void *ctx, char *err_msg, size_t err_msg_len)
{
	struct reader rd = {.fn = fn, .ctx = ctx, .err_msg = err_msg, .err_msg_len = err_msg_len};
	sl_buf_init(&rd.data);
	struct sl_buf pending;
	sl_buf_init(&pending);
	int r;
	size_t rest;
	if (compression == SL_ARCHIVE_NONE) {
		size_t scan_from = 0;
		ssize_t used = read_lines(&rd, obj, len, &scan_from);
		r = used < 0 ? (int)used : 0;
		rest = used < 0 ? 0 : len - (size_t)used;
	} else if (compression == SL_ARCHIVE_ZSTD) {
		struct line_sink s = {.rd = &rd};
		r = zstd_stream(obj, len, &pending, line_chunk, &s, err_msg, err_msg_len);
		rest = pending.len;
	} else {
		set_err(err_msg, err_msg_len, "unknown compression %d", (int)compression);
		r = SLUICE_ERR_INVALID_ARGUMENT;
		rest = 0;
	}
	if (r == 0 && rest > 0) {
		set_err(err_msg, err_msg_len,
			"line %" PRIu64 ": no newline at the end (truncated object)", rd.line + 1);
		r = SLUICE_ERR_CORRUPT;
	}
	sl_buf_finish(&pending);
	sl_buf_finish(&rd.data);
	if (r == STOPPED)
		return rd.stopped;
	if (r != 0)
		return r;
	return rd.records > INT32_MAX ? INT32_MAX : (int)rd.records;
}

/* zstd_streamed's sink: appends to out, up to max_bytes in all. */
struct collect_sink {
	size_t max_bytes;
	size_t total;
	struct sl_buf *out;
	char *err_msg;
	size_t err_msg_len;
};

static ssize_t collect_chunk(void *ctx, const uint8_t *p, size_t len)
{
	struct collect_sink *s = ctx;
	if (len > s->max_bytes - s->total) {
		set_err(s->err_msg, s->err_msg_len, "decompressed object over %zu bytes",
			s->max_bytes);
		return SLUICE_ERR_CORRUPT;
	}
	if (sl_buf_put(s->out, p, len) < 0)
		return -ENOMEM;
	s->total += len;
	return (ssize_t)len;
}

/*
 * zstd_whole's fallback (truncated or damaged frames, bounds over max_bytes): the reader's own
 * streaming decoder (zstd_stream), which enforces the cap as it goes and says precisely what is
 * wrong. Rare, so its extra copy does not matter. out is left as it was on failure.
 */
static int zstd_streamed(const uint8_t *obj, size_t len, size_t max_bytes, struct sl_buf *out,
			 char *err_msg, size_t err_msg_len)
{
	size_t start = out->len;
	struct sl_buf pending;
	sl_buf_init(&pending);
	struct collect_sink s = {max_bytes, 0, out, err_msg, err_msg_len};
	int r = zstd_stream(obj, len, &pending, collect_chunk, &s, err_msg, err_msg_len);
	sl_buf_finish(&pending);
	if (r < 0)
		out->len = start;
	return r;
}

/*
 * The common case: one well-formed frame whose decompressed size is bounded (by its content
 * size, or by its block count x 128 KiB) below max_bytes. Decoded in one call straight into out:
 * the streaming decoder would decode into its window buffer and copy from there, a second pass
 * over every byte. Anything else (truncated, bound over max_bytes) takes the streaming path,
 * which enforces the cap as it goes and says precisely what is wrong.
 */
static int zstd_whole(const uint8_t *obj, size_t len, size_t max_bytes, struct sl_buf *out,
		      char *err_msg, size_t err_msg_len)
{
	size_t frame = ZSTD_findFrameCompressedSize(obj, len);
	unsigned long long bound =
	    ZSTD_isError(frame) ? ZSTD_CONTENTSIZE_ERROR : ZSTD_decompressBound(obj, frame);
	if (bound == ZSTD_CONTENTSIZE_ERROR || bound > max_bytes)
		return zstd_streamed(obj, len, max_bytes, out, err_msg, err_msg_len);
	if (frame != len) {
		set_err(err_msg, err_msg_len, "%zu bytes after the end of the zstd frame",
			len - frame);
		return SLUICE_ERR_CORRUPT;
	}
	if (sl_buf_reserve(out, (size_t)bound) < 0)
		return -ENOMEM;
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	if (!dctx)
		return -ENOMEM;
	size_t z = ZSTD_decompressDCtx(dctx, out->data + out->len, (size_t)bound, obj, len);
	ZSTD_freeDCtx(dctx);
	if (ZSTD_isError(z)) {
		set_err(err_msg, err_msg_len, "zstd: %s", ZSTD_getErrorName(z));
		return SLUICE_ERR_CORRUPT;
	}
	out->len += z;
	return 0;
}

int sl_archive_decompress(const uint8_t *obj, size_t len, enum sl_archive_compression compression,
			  size_t max_bytes, struct sl_buf *out, char *err_msg, size_t err_msg_len)
{
	if (compression == SL_ARCHIVE_NONE) {
		if (len > max_bytes) {
			set_err(err_msg, err_msg_len, "object over %zu bytes", max_bytes);
			return SLUICE_ERR_CORRUPT;
		}
		return sl_buf_put(out, obj, len);
	}
	if (compression != SL_ARCHIVE_ZSTD)
		return SLUICE_ERR_INVALID_ARGUMENT;
	return zstd_whole(obj, len, max_bytes, out, err_msg, err_msg_len);
}

/* ---- object keys ---- */

static bool prefix_valid(const char *p, size_t len)
{
	if (len > SL_ARCHIVE_PREFIX_LEN_MAX || (len > 0 && p[0] == '/'))
		return false;
	for (size_t i = 0; i < len; i++) {
		if ((uint8_t)p[i] < 0x20 || p[i] == 0x7f)
			return false;
		if (p[i] == '/' && i + 1 < len && p[i + 1] == '/')
			return false;
	}
	return sl_utf8_valid((const uint8_t *)p, len);
}

int sl_archive_key(const char *prefix, const char *stream, uint32_t shard_id, uint64_t first_seq,
		   uint64_t last_seq, int64_t first_ts_ms, const char *ext, char *out,
		   size_t out_len)
{
	if (!prefix)
		prefix = "";
	size_t plen = strlen(prefix);
	while (plen > 0 && prefix[plen - 1] == '/')
		plen--;
	if (!prefix_valid(prefix, plen) || first_seq > last_seq || first_ts_ms < 0 || !ext)
		return SLUICE_ERR_INVALID_ARGUMENT;
	if (strcmp(ext, ".jsonl.zst") != 0 && strcmp(ext, ".jsonl") != 0 &&
	    strcmp(ext, ".raw.zst") != 0 && strcmp(ext, ".raw") != 0)
		return SLUICE_ERR_INVALID_ARGUMENT;
	if (!stream || !name_valid(stream, strlen(stream)))
		return SLUICE_ERR_INVALID_NAME;
	time_t secs = (time_t)(first_ts_ms / 1000);
	struct tm tm;
	if (!gmtime_r(&secs, &tm))
		return SLUICE_ERR_INVALID_ARGUMENT;
	int n = snprintf(out, out_len,
			 "%.*s%s%04d/%02d/%02d/%02d/%s-" SHARD_ID_PREFIX "%012" PRIu32
			 "-%020" PRIu64 "-%020" PRIu64 "%s",
			 (int)plen, prefix, plen ? "/" : "", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, stream, shard_id, first_seq, last_seq, ext);
	if (n < 0 || (size_t)n >= out_len)
		return -ENAMETOOLONG;
	return n;
}

static bool digits(const char *p, size_t n, uint64_t *ret)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*ret = v;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int sl_archive_key_parse(const char *key, size_t key_len, struct sl_archive_key_info *ret)
{
	static const struct {
		const char *ext;
		enum sl_archive_format format;
		enum sl_archive_compression compression;
	} exts[] = {
	    {".jsonl.zst", SL_ARCHIVE_JSONL, SL_ARCHIVE_ZSTD},
	    {".jsonl", SL_ARCHIVE_JSONL, SL_ARCHIVE_NONE},
	    {".raw.zst", SL_ARCHIVE_RAW, SL_ARCHIVE_ZSTD},
	    {".raw", SL_ARCHIVE_RAW, SL_ARCHIVE_NONE},
	};
	struct sl_archive_key_info info = {0};
	size_t end = key_len;
	size_t i;
	for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		size_t n = strlen(exts[i].ext);
		if (end > n && memcmp(key + end - n, exts[i].ext, n) == 0) {
			end -= n;
			info.format = exts[i].format;
			info.compression = exts[i].compression;
			break;
		}
	}
	if (i == sizeof(exts) / sizeof(exts[0]))
		return SLUICE_ERR_INVALID_ARGUMENT;

	/* "-shardId-" 12 digits "-" 20 digits "-" 20 digits, then the extension. */
	const size_t tail = 1 + 8 + SHARD_ID_DIGITS + 1 + SEQ_DIGITS + 1 + SEQ_DIGITS;
	if (end < tail + 1)
		return SLUICE_ERR_INVALID_ARGUMENT;
	const char *t = key + end - tail;
	uint64_t shard;
	if (t[0] != '-' || memcmp(t + 1, SHARD_ID_PREFIX, 8) != 0 ||
	    !digits(t + 9, SHARD_ID_DIGITS, &shard) || shard > UINT32_MAX ||
	    t[9 + SHARD_ID_DIGITS] != '-' ||
	    !digits(t + 10 + SHARD_ID_DIGITS, SEQ_DIGITS, &info.first_seq) ||
	    t[10 + SHARD_ID_DIGITS + SEQ_DIGITS] != '-' ||
	    !digits(t + 11 + SHARD_ID_DIGITS + SEQ_DIGITS, SEQ_DIGITS, &info.last_seq) ||
	    info.first_seq > info.last_seq)
		return SLUICE_ERR_INVALID_ARGUMENT;
	info.shard_id = (uint32_t)shard;

	/* The stream name runs back to the last '/'. */
	size_t stream_end = end - tail;
	size_t stream_start = stream_end;
	while (stream_start > 0 && key[stream_start - 1] != '/')
		stream_start--;
	if (!name_valid(key + stream_start, stream_end - stream_start))
		return SLUICE_ERR_INVALID_ARGUMENT;
	info.stream = key + stream_start;
	info.stream_len = stream_end - stream_start;

	/* "YYYY/MM/DD/HH/" before it. */
	if (stream_start < 14)
		return SLUICE_ERR_INVALID_ARGUMENT;
	const char *d = key + stream_start - 14;
	uint64_t y, mo, dd, hh;
	if (!digits(d, 4, &y) || d[4] != '/' || !digits(d + 5, 2, &mo) || d[7] != '/' ||
	    !digits(d + 8, 2, &dd) || d[10] != '/' || !digits(d + 11, 2, &hh) || d[13] != '/' ||
	    y < 1970 || mo < 1 || mo > 12 || dd < 1 || dd > 31 || hh > 23)
		return SLUICE_ERR_INVALID_ARGUMENT;
	info.hour_ms =
	    (days_from_civil((int64_t)y, (unsigned)mo, (unsigned)dd) * 24 + (int64_t)hh) * 3600000;

	/* Whatever precedes is the prefix, with its '/' separator. */
	size_t date_start = stream_start - 14;
	if (date_start > 0) {
		if (key[date_start - 1] != '/' || date_start < 2)
			return SLUICE_ERR_INVALID_ARGUMENT;
		info.prefix = key;
		info.prefix_len = date_start - 1;
	} else {
		info.prefix = key;
		info.prefix_len = 0;
	}
	*ret = info;
	return 0;
}
