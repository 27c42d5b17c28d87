/* Reading: sluice_read (one READ request) and the shard reader built on it. */
#include "client/client_internal.h"

#include "log/record_format.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sluice_read_result_init(struct sluice_read_result *res)
{
	memset(res, 0, sizeof(*res));
}

void sluice_read_result_finish(struct sluice_read_result *res)
{
	free(res->records);
	free(res->priv_data);
	sluice_read_result_init(res);
}

static void result_clear(struct sluice_read_result *res)
{
	res->count = 0;
	res->shard_id = 0;
	res->next_seq = 0;
	res->tip_seq = 0;
	res->millis_behind = 0;
	res->shard_ended = false;
}

static int result_reserve(struct sluice_read_result *res, size_t bytes, size_t records)
{
	if (bytes > res->priv_data_cap) {
		uint8_t *d = realloc(res->priv_data, bytes);
		if (!d)
			return -ENOMEM;
		res->priv_data = d;
		res->priv_data_cap = bytes;
	}
	if (records > res->priv_records_cap) {
		struct sluice_record *r = realloc(res->records, records * sizeof(*r));
		if (!r)
			return -ENOMEM;
		res->records = r;
		res->priv_records_cap = records;
	}
	return 0;
}

_Static_assert(SLUICE_READ_WAIT_MS_MAX == SL_PROTO_READ_WAIT_MS_MAX, "one wait limit");

/* Encode a READ request into c->out (sl_client_begin first); *ret_start for the frame. */
static int read_request(struct sluice_client *c, const char *stream, uint32_t shard_id,
			const struct sluice_position *pos, uint32_t max_records, uint32_t max_bytes,
			uint32_t wait_ms, size_t *ret_start)
{
	size_t name_len;
	int r = sl_client_check_name(c, stream, &name_len);
	if (r < 0)
		return r;
	if (pos->type < SLUICE_POS_TRIM_HORIZON || pos->type > SLUICE_POS_AT_TIMESTAMP)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT, "bad position type %d",
				      (int)pos->type);
	r = sl_client_begin(c, SL_OP_READ, ret_start);
	if (r == 0)
		r = sl_proto_put_str8(&c->out, stream, name_len);
	if (r == 0)
		r = sl_buf_put_u32(&c->out, shard_id);
	if (r == 0)
		r = sl_buf_put_u8(&c->out, (uint8_t)pos->type);
	if (r == 0)
		r = sl_buf_put_u64(&c->out, pos->value);
	if (r == 0)
		r = sl_buf_put_u32(&c->out, max_records);
	if (r == 0)
		r = sl_buf_put_u32(&c->out, max_bytes);
	/* Only when asked: a request without it stays readable by servers before wait_ms. */
	if (r == 0 && wait_ms > 0)
		r = sl_buf_put_u32(&c->out, wait_ms);
	return r;
}

static void read_limits(uint32_t *max_records, uint32_t *max_bytes)
{
	if (*max_records == 0)
		*max_records = SLUICE_READ_RECORDS_DEFAULT;
	if (*max_records > SL_PROTO_RECORDS_MAX)
		*max_records = SL_PROTO_RECORDS_MAX;
	if (*max_bytes == 0)
		*max_bytes = SLUICE_READ_BYTES_DEFAULT;
}

/*
 * Decode the READ answer whose body is `rest` (the answer frame is at the start of c->in) into
 * ret. The records must outlive later calls on c, so the answer moves into the result: when the
 * frame is all c->in holds (the usual case), the two buffers trade places (no copy: the result's
 * old buffer becomes c's receive buffer); otherwise the body is copied.
 */
static int read_answer(struct sluice_client *c, uint32_t shard_id, struct sl_reader *rest,
		       struct sluice_read_result *ret)
{
	size_t left = sl_reader_left(rest);
	const uint8_t *body;
	sl_reader_bytes(rest, left, &body);
	struct sl_reader rd;
	uint32_t rshard, n;
	uint64_t next_seq, tip_seq, behind;
	sl_reader_init(&rd, body, left);
	if (!sl_reader_u32(&rd, &rshard) || !sl_reader_u64(&rd, &next_seq) ||
	    !sl_reader_u64(&rd, &tip_seq) || !sl_reader_u64(&rd, &behind) ||
	    !sl_reader_u32(&rd, &n) || n > SL_PROTO_RECORDS_MAX || rshard != shard_id)
		return sl_client_fail(c, SLUICE_ERR_PROTOCOL, "malformed READ answer");
	int r = result_reserve(ret, 0, n);
	if (r < 0)
		return sl_client_fail(c, r, "out of memory for %u records", n);
	const uint8_t *data;
	if (body >= c->in.data && body + left == c->in.data + c->in.len &&
	    c->in_consumed == c->in.len) {
		size_t body_off = (size_t)(body - c->in.data);
		uint8_t *mine = ret->priv_data;
		size_t mine_cap = ret->priv_data_cap;
		ret->priv_data = c->in.data;
		ret->priv_data_cap = c->in.cap;
		c->in.data = mine;
		c->in.cap = mine_cap;
		c->in.len = 0;
		c->in_consumed = 0;
		data = ret->priv_data + body_off;
	} else {
		r = result_reserve(ret, left, n);
		if (r < 0)
			return sl_client_fail(c, r, "out of memory for %zu bytes", left);
		memcpy(ret->priv_data, body, left);
		data = ret->priv_data;
	}
	/* The records are the log's frames as sluiced read (and checksummed) them: check their
	 * structure, in order, and borrow key and data from the buffer. */
	size_t off = 4 + 8 + 8 + 8 + 4;
	uint64_t prev_seq = 0;
	for (uint32_t i = 0; i < n; i++) {
		size_t flen;
		struct sluice_record *rec = &ret->records[i];
		if (sl_record_parse(data + off, left - off, rec, &flen) < 0 ||
		    (i > 0 && rec->seq <= prev_seq))
			return sl_client_fail(c, SLUICE_ERR_PROTOCOL, "malformed record %u", i);
		prev_seq = rec->seq;
		off += flen;
	}
	if (left - off != 1 || (data[off] & ~SL_READ_FLAG_SHARD_ENDED))
		return sl_client_fail(c, SLUICE_ERR_PROTOCOL,
				      left - off == 1 ? "malformed READ answer flags"
						      : "malformed READ answer end");
	uint8_t flags = data[off];
	ret->count = n;
	ret->shard_id = rshard;
	ret->next_seq = next_seq;
	ret->tip_seq = tip_seq;
	ret->millis_behind = behind;
	ret->shard_ended = flags & SL_READ_FLAG_SHARD_ENDED;
	return (int)n;
}

int sluice_read_wait(struct sluice_client *c, const char *stream, uint32_t shard_id,
		     const struct sluice_position *pos, uint32_t max_records, uint32_t max_bytes,
		     uint32_t wait_ms, struct sluice_read_result *ret)
{
	result_clear(ret);
	if (wait_ms > SLUICE_READ_WAIT_MS_MAX)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "wait of %u ms is over the limit of %u ms", wait_ms,
				      SLUICE_READ_WAIT_MS_MAX);
	read_limits(&max_records, &max_bytes);
	size_t start;
	int r = read_request(c, stream, shard_id, pos, max_records, max_bytes, wait_ms, &start);
	if (r < 0)
		return r;
	struct sl_reader rest;
	c->call_wait_ms = wait_ms;
	r = sl_client_call(c, start, true, &rest);
	c->call_wait_ms = 0;
	if (r < 0)
		return r;
	return read_answer(c, shard_id, &rest, ret);
}

int sluice_read(struct sluice_client *c, const char *stream, uint32_t shard_id,
		const struct sluice_position *pos, uint32_t max_records, uint32_t max_bytes,
		struct sluice_read_result *ret)
{
	return sluice_read_wait(c, stream, shard_id, pos, max_records, max_bytes, 0, ret);
}

/* ---- shard reader ---- */

/*
 * Read-ahead: while a reader is behind the tip, it sends the READ for the next batch before it
 * returns the current one, so the server reads and encodes batch k+1 while the caller works on
 * batch k (on the same connection: sl_client_send_ahead). A read-ahead that another call on the
 * client swallowed (several readers sharing one client, round robin) is sent again as a plain
 * read, and that reader stops reading ahead: the server would otherwise do every read twice.
 */
struct sluice_shard_reader {
	struct sluice_client *c;
	char *stream;
	uint32_t shard_id;
	struct sluice_position pos;
	bool read_once;
	bool caught_up;
	bool no_read_ahead;
	uint32_t wait_ms;
	uint32_t ahead_id; /* 0: none */
	uint32_t ahead_records, ahead_bytes;
	struct sluice_read_result res;
};

int sluice_shard_reader_create(struct sluice_client *c, const char *stream, uint32_t shard_id,
			       const struct sluice_position *start,
			       struct sluice_shard_reader **ret)
{
	size_t len;
	int r = sl_client_check_name(c, stream, &len);
	if (r < 0)
		return r;
	struct sluice_shard_reader *sr = calloc(1, sizeof(*sr));
	if (!sr)
		return -ENOMEM;
	sr->stream = strdup(stream);
	if (!sr->stream) {
		free(sr);
		return -ENOMEM;
	}
	sr->c = c;
	sr->shard_id = shard_id;
	sr->pos = *start;
	sluice_read_result_init(&sr->res);
	*ret = sr;
	return 0;
}

/* The answer to the read-ahead, if it is still there and asked for the same limits. */
static int collect_ahead(struct sluice_shard_reader *r, uint32_t max_records, uint32_t max_bytes)
{
	uint32_t id = r->ahead_id;
	r->ahead_id = 0;
	if (max_records != r->ahead_records || max_bytes != r->ahead_bytes)
		return SLUICE_ERR_DISCONNECTED; /* different limits: read again (drops it) */
	struct sl_reader rest;
	int n = sl_client_collect(r->c, id, &rest);
	if (n == 0)
		return read_answer(r->c, r->shard_id, &rest, &r->res);
	if (n == SLUICE_ERR_DISCONNECTED && r->c->message[0] == '\0')
		r->no_read_ahead = true; /* another call on the client took it */
	return n;
}

static void send_ahead(struct sluice_shard_reader *r, uint32_t max_records, uint32_t max_bytes)
{
	size_t start;
	uint32_t id;
	/* Never a waiting read: another call on the client would have to sit through the wait. */
	if (read_request(r->c, r->stream, r->shard_id, &r->pos, max_records, max_bytes, 0, &start) <
		0 ||
	    sl_client_send_ahead(r->c, start, &id) < 0)
		return; /* the next call reads normally (and reconnects if needed) */
	r->ahead_id = id;
	r->ahead_records = max_records;
	r->ahead_bytes = max_bytes;
}

int sluice_shard_reader_next(struct sluice_shard_reader *r, uint32_t max_records,
			     uint32_t max_bytes, const struct sluice_read_result **ret_batch)
{
	read_limits(&max_records, &max_bytes);
	result_clear(&r->res);
	int n = SLUICE_ERR_DISCONNECTED;
	if (r->ahead_id)
		n = collect_ahead(r, max_records, max_bytes);
	/* A transport failure of the read-ahead is retried as a plain read, like any idle
	 * connection the server closed; a server's answer (even an error) is final. */
	if (n == SLUICE_ERR_DISCONNECTED || n == SLUICE_ERR_TIMEOUT || n == SLUICE_ERR_PROTOCOL)
		n = sluice_read_wait(r->c, r->stream, r->shard_id, &r->pos, max_records, max_bytes,
				     r->wait_ms, &r->res);
	if (n < 0)
		return n;
	r->read_once = true;
	r->caught_up = sluice_read_result_caught_up(&r->res);
	/*
	 * Continue at next_seq. An empty answer from LATEST or a timestamp also reports where
	 * the tip was, so switching to AT_SEQ there loses nothing written after this read.
	 */
	r->pos.type = SLUICE_POS_AT_SEQ;
	r->pos.value = r->res.next_seq;
	if (n > 0 && !r->caught_up && !r->no_read_ahead)
		send_ahead(r, max_records, max_bytes);
	*ret_batch = &r->res;
	return n;
}

int sluice_shard_reader_set_wait(struct sluice_shard_reader *r, uint32_t wait_ms)
{
	if (wait_ms > SLUICE_READ_WAIT_MS_MAX)
		return SLUICE_ERR_INVALID_ARGUMENT;
	r->wait_ms = wait_ms;
	return 0;
}

bool sluice_shard_reader_caught_up(const struct sluice_shard_reader *r)
{
	return r->read_once && r->caught_up;
}

struct sluice_position sluice_shard_reader_position(const struct sluice_shard_reader *r)
{
	return r->pos;
}

void sluice_shard_reader_destroy(struct sluice_shard_reader *r)
{
	if (!r)
		return;
	sluice_read_result_finish(&r->res);
	free(r->stream);
	free(r);
}
