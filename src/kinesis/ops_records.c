/*
 * Record operations: PutRecord, PutRecords, GetShardIterator, GetRecords.
 *
 * Sequence numbers are sluice's per-shard numbers printed in decimal: a record put here has the
 * same number when read over the native protocol, and the other way round.
 */
#include "kinesis/ops.h"

#include "kinesis/limits.h"

#include "common/clock.h"
#include "common/units.h"
#include "stream/stream_meta.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Kinesis' limits. */
#define RECORD_DATA_MAX (1u << 20)	  /* one record's data blob */
#define PUT_RECORDS_MAX 500u		  /* records in one PutRecords */
#define PUT_RECORDS_BYTES_MAX (5u << 20)  /* data + partition keys in one PutRecords */
#define GET_RECORDS_MAX 10000		  /* Limit of GetRecords */
#define GET_RECORDS_BYTES_MAX (10u << 20) /* data returned by one GetRecords */
/* Without per-shard limits a throttled record (the server's backpressure) is retried here this
 * many times, THROTTLE_BACKOFF_MS apart and doubling, before it is reported. */
#define THROTTLE_RETRIES 5
#define THROTTLE_BACKOFF_MS 20

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* One record of a put, decoded from JSON (data owned). */
struct put_in {
	uint8_t *data;
	size_t data_len;
	const char *key;
	bool has_hash;
	struct sluice_hash_key hash;
};

/* Read Data / PartitionKey / ExplicitHashKey of one record object (q->in is that object). */
static bool read_record(struct kin_req *q, struct put_in *rec)
{
	const char *data, *key, *ehk;
	bool has_ehk;
	if (!kin_get_string(q, "Data", 0, 4 * ((RECORD_DATA_MAX + 2) / 3), &data, NULL) ||
	    !kin_get_string(q, "PartitionKey", 1, SLUICE_KEY_LEN_MAX, &key, NULL) ||
	    !kin_get_string(q, "ExplicitHashKey", 1, 39, &ehk, &has_ehk))
		return false;
	if (kin_base64_decode(data, strlen(data), &rec->data, &rec->data_len) < 0) {
		kin_fail(q, 400, KIN_E_SERIALIZATION, "Data is not valid base64");
		return false;
	}
	rec->key = key;
	rec->has_hash = has_ehk;
	if (has_ehk) {
		sl_u128 v;
		if (sl_u128_parse_str(ehk, &v) < 0) {
			kin_fail(
			    q, 400, KIN_E_INVALID_ARG,
			    "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, "
			    "2^128-1]. Specified value was %s",
			    ehk);
			return false;
		}
		sl_hash_key_from_u128(v, &rec->hash);
	}
	return true;
}

/*
 * Put n records; results[i] gets each record's final status. Throttled records are retried
 * unless the gateway reports per-shard limits. Returns 0 or the request's error.
 */
static int put(struct kin_req *q, struct sluice_client *c, const char *stream,
	       const struct put_in *in, size_t n, struct sluice_put_result *results)
{
	struct sluice_put_entry *e = calloc(n, sizeof(*e));
	size_t *idx = calloc(n, sizeof(*idx));
	struct sluice_put_result *part = calloc(n, sizeof(*part));
	int r = -ENOMEM;
	if (!e || !idx || !part)
		goto out;
	size_t pending = 0;
	struct kin_limits *lim = q->s->api->limits;
	if (lim) {
		/* Per-shard limits: charge each record to its shard first; those over budget fail
		 * here and are not sent. */
		const char **keys = calloc(n, sizeof(*keys));
		size_t *lens = calloc(n, sizeof(*lens));
		const struct sluice_hash_key **hks = calloc(n, sizeof(*hks));
		uint32_t *shards = calloc(n, sizeof(*shards));
		r = keys && lens && hks && shards ? 0 : -ENOMEM;
		for (size_t i = 0; r == 0 && i < n; i++) {
			keys[i] = in[i].key;
			lens[i] = strlen(in[i].key);
			hks[i] = in[i].has_hash ? &in[i].hash : NULL;
		}
		r = r ?: kin_limits_route(lim, c, stream, n, keys, lens, hks, shards);
		int64_t now = sl_mono_ms();
		for (size_t i = 0; r == 0 && i < n; i++) {
			if (kin_limits_take_write(lim, stream, shards[i], in[i].data_len + lens[i],
						  now))
				idx[pending++] = i;
			else
				results[i] = (struct sluice_put_result){
				    .status = SLUICE_ERR_THROTTLED, .shard_id = shards[i]};
		}
		free(keys);
		free(lens);
		free(hks);
		free(shards);
		if (r < 0)
			goto out;
		if (pending == 0) {
			r = 0;
			goto out;
		}
	} else {
		for (size_t i = 0; i < n; i++)
			idx[pending++] = i;
	}
	for (int attempt = 0;; attempt++) {
		for (size_t k = 0; k < pending; k++) {
			const struct put_in *p = &in[idx[k]];
			e[k] = (struct sluice_put_entry){.key = p->key,
							 .key_len = strlen(p->key),
							 .data = p->data,
							 .data_len = p->data_len,
							 .hash_key = p->has_hash ? &p->hash : NULL};
		}
		r = sluice_put_batch(c, stream, e, pending, part);
		if (r < 0)
			goto out;
		size_t again = 0;
		for (size_t k = 0; k < pending; k++) {
			results[idx[k]] = part[k];
			if (part[k].status == SLUICE_ERR_THROTTLED && !q->s->api->shard_limits &&
			    attempt < THROTTLE_RETRIES)
				idx[again++] = idx[k];
		}
		if (again == 0)
			break;
		pending = again;
		sleep_ms(THROTTLE_BACKOFF_MS << attempt);
	}
	r = 0;
out:
	free(e);
	free(idx);
	free(part);
	return r;
}

static const char *record_error_type(int status)
{
	switch (status) {
	case SLUICE_ERR_THROTTLED:
		return KIN_E_THROUGHPUT;
	case SLUICE_ERR_INVALID_KEY:
	case SLUICE_ERR_RECORD_TOO_LARGE:
	case SLUICE_ERR_INVALID_ARGUMENT:
		return KIN_E_INVALID_ARG;
	default:
		return KIN_E_INTERNAL;
	}
}

void kin_op_put_record(struct kin_req *q)
{
	char stream[SLUICE_NAME_LEN_MAX + 1];
	const char *ordering;
	bool has_ordering;
	struct put_in rec = {0};
	if (!kin_get_stream(q, stream) ||
	    !kin_get_string(q, "SequenceNumberForOrdering", 1, 128, &ordering, &has_ordering) ||
	    !read_record(q, &rec))
		goto out;
	if (rec.data_len > RECORD_DATA_MAX) {
		kin_fail(
		    q, 400, KIN_E_VALIDATION,
		    "1 validation error detected: Value at 'data' failed to satisfy constraint: "
		    "Member must have length less than or equal to %u",
		    RECORD_DATA_MAX);
		goto out;
	}
	struct sluice_client *c = kin_client(q);
	if (!c)
		goto out;
	struct sluice_put_result res;
	int r = put(q, c, stream, &rec, 1, &res);
	if (r == 0 && res.status < 0)
		r = res.status;
	if (r < 0) {
		kin_fail_native(q, r, stream);
		goto out;
	}
	char id[SL_SHARD_ID_BUF];
	sl_shard_id_format(res.shard_id, id);
	kin_ok(q, json_pack("{s:s,s:o,s:s}", "ShardId", id, "SequenceNumber", kin_seq_json(res.seq),
			    "EncryptionType", "NONE"));
out:
	free(rec.data);
}

void kin_op_put_records(struct kin_req *q)
{
	char stream[SLUICE_NAME_LEN_MAX + 1];
	if (!kin_get_stream(q, stream))
		return;
	json_t *arr = json_object_get(q->in, "Records");
	if (!arr || json_is_null(arr)) {
		kin_fail(q, 400, KIN_E_VALIDATION,
			 "1 validation error detected: Value null at 'records' failed to satisfy "
			 "constraint: Member must not be null");
		return;
	}
	if (!json_is_array(arr)) {
		kin_fail(q, 400, KIN_E_SERIALIZATION, "Records must be a list");
		return;
	}
	size_t n = json_array_size(arr);
	if (n < 1 || n > PUT_RECORDS_MAX) {
		kin_fail(q, 400, KIN_E_VALIDATION,
			 "1 validation error detected: Value '%zu' at 'records' failed to satisfy "
			 "constraint: Member must have length %s %u",
			 n, n < 1 ? "greater than or equal to" : "less than or equal to",
			 n < 1 ? 1u : PUT_RECORDS_MAX);
		return;
	}
	struct put_in *in = calloc(n, sizeof(*in));
	struct sluice_put_result *res = calloc(n, sizeof(*res));
	if (!in || !res) {
		kin_fail(q, 500, KIN_E_INTERNAL, "out of memory");
		goto out;
	}
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_array_get(arr, i);
		if (!json_is_object(o)) {
			kin_fail(q, 400, KIN_E_SERIALIZATION, "Records[%zu] must be an object", i);
			goto out;
		}
		struct kin_req sub = {.s = q->s, .in = o, .reply = q->reply};
		if (!read_record(&sub, &in[i])) {
			q->failed = true;
			goto out;
		}
		if (in[i].data_len > RECORD_DATA_MAX) {
			kin_fail(
			    q, 400, KIN_E_VALIDATION,
			    "1 validation error detected: Value at 'records.%zu.member.data' "
			    "failed to satisfy constraint: Member must have length less than or "
			    "equal to %u",
			    i + 1, RECORD_DATA_MAX);
			goto out;
		}
		total += in[i].data_len + strlen(in[i].key);
	}
	if (total > PUT_RECORDS_BYTES_MAX) {
		kin_fail(q, 400, KIN_E_INVALID_ARG, "Records size exceeds 5 MB limit");
		goto out;
	}
	struct sluice_client *c = kin_client(q);
	if (!c)
		goto out;
	int r = put(q, c, stream, in, n, res);
	if (r < 0) {
		kin_fail_native(q, r, stream);
		goto out;
	}
	json_t *out_arr = json_array();
	size_t failed = 0;
	for (size_t i = 0; i < n; i++) {
		if (res[i].status == 0) {
			char id[SL_SHARD_ID_BUF];
			sl_shard_id_format(res[i].shard_id, id);
			json_array_append_new(out_arr,
					      json_pack("{s:o,s:s}", "SequenceNumber",
							kin_seq_json(res[i].seq), "ShardId", id));
		} else {
			failed++;
			char msg[320];
			if (res[i].status == SLUICE_ERR_THROTTLED &&
			    res[i].shard_id != UINT32_MAX) {
				char sid[SL_SHARD_ID_BUF];
				sl_shard_id_format(res[i].shard_id, sid);
				snprintf(msg, sizeof(msg),
					 "Rate exceeded for shard %s in stream %s under "
					 "account " KIN_ACCOUNT ".",
					 sid, stream);
			} else {
				snprintf(msg, sizeof(msg), "%s", sluice_strerror(res[i].status));
			}
			json_array_append_new(out_arr, json_pack("{s:s,s:s}", "ErrorCode",
								 record_error_type(res[i].status),
								 "ErrorMessage", msg));
		}
	}
	kin_ok(q, json_pack("{s:I,s:o,s:s}", "FailedRecordCount", (json_int_t)failed, "Records",
			    out_arr, "EncryptionType", "NONE"));
out:
	for (size_t i = 0; in && i < n; i++)
		free(in[i].data);
	free(in);
	free(res);
}

static const struct sluice_shard_info *find_shard(const struct sluice_shard_info *shards, size_t n,
						  uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (shards[i].shard_id == id)
			return &shards[i];
	return NULL;
}

static void fail_no_shard(struct kin_req *q, uint32_t shard_id, const char *stream)
{
	char id[SL_SHARD_ID_BUF];
	sl_shard_id_format(shard_id, id);
	kin_fail(q, 400, KIN_E_NOT_FOUND,
		 "Shard %s in stream %s under account " KIN_ACCOUNT " does not exist", id, stream);
}

void kin_op_get_shard_iterator(struct kin_req *q)
{
	struct kin_iterator it = {0};
	const char *type, *seq_text = NULL;
	bool has_seq, has_ts;
	int64_t ts_ms = 0;
	if (!kin_get_stream(q, it.stream) || !kin_get_shard_id(q, "ShardId", &it.shard_id, NULL) ||
	    !kin_get_string(q, "ShardIteratorType", 1, 32, &type, NULL) ||
	    !kin_get_string(q, "StartingSequenceNumber", 1, 128, &seq_text, &has_seq) ||
	    !kin_get_timestamp_ms(q, "Timestamp", &ts_ms, &has_ts))
		return;
	static const struct {
		const char *name;
		enum sluice_position_type type;
	} types[] = {{"AT_SEQUENCE_NUMBER", SLUICE_POS_AT_SEQ},
		     {"AFTER_SEQUENCE_NUMBER", SLUICE_POS_AFTER_SEQ},
		     {"TRIM_HORIZON", SLUICE_POS_TRIM_HORIZON},
		     {"LATEST", SLUICE_POS_LATEST},
		     {"AT_TIMESTAMP", SLUICE_POS_AT_TIMESTAMP}};
	int t = -1;
	for (int i = 0; i < 5; i++)
		if (strcmp(type, types[i].name) == 0)
			t = i;
	if (t < 0) {
		kin_fail(
		    q, 400, KIN_E_VALIDATION,
		    "1 validation error detected: Value '%.64s' at 'shardIteratorType' failed to "
		    "satisfy constraint: Member must satisfy enum value set: "
		    "[AFTER_SEQUENCE_NUMBER, "
		    "AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]",
		    type);
		return;
	}
	it.pos.type = types[t].type;
	uint64_t seq = 0;
	if (it.pos.type == SLUICE_POS_AT_SEQ || it.pos.type == SLUICE_POS_AFTER_SEQ) {
		if (!has_seq) {
			kin_fail(
			    q, 400, KIN_E_INVALID_ARG,
			    "StartingSequenceNumber must be provided for ShardIteratorType %s.",
			    type);
			return;
		}
		if (sl_parse_u64(seq_text, &seq) < 0 || seq_text[0] == '+') {
			kin_fail(q, 400, KIN_E_INVALID_ARG,
				 "StartingSequenceNumber %.128s used in GetShardIterator on shard "
				 "in stream %s under account " KIN_ACCOUNT " is invalid.",
				 seq_text, it.stream);
			return;
		}
		it.pos.value = seq;
	} else if (it.pos.type == SLUICE_POS_AT_TIMESTAMP) {
		if (!has_ts) {
			kin_fail(q, 400, KIN_E_INVALID_ARG,
				 "Timestamp must be provided for ShardIteratorType AT_TIMESTAMP.");
			return;
		}
		it.pos.value = (uint64_t)ts_ms;
	}
	struct sluice_client *c = kin_client(q);
	if (!c)
		return;
	struct sluice_shard_info *shards;
	size_t n;
	int r = sluice_list_shards(c, it.stream, &shards, &n);
	if (r < 0) {
		kin_fail_native(q, r, it.stream);
		return;
	}
	const struct sluice_shard_info *sh = find_shard(shards, n, it.shard_id);
	if (!sh) {
		sluice_shards_free(shards);
		fail_no_shard(q, it.shard_id, it.stream);
		return;
	}
	if ((it.pos.type == SLUICE_POS_AT_SEQ || it.pos.type == SLUICE_POS_AFTER_SEQ) &&
	    (seq == 0 || seq >= sh->next_seq)) {
		char id[SL_SHARD_ID_BUF];
		sl_shard_id_format(it.shard_id, id);
		sluice_shards_free(shards);
		kin_fail(
		    q, 400, KIN_E_INVALID_ARG,
		    "StartingSequenceNumber %s used in GetShardIterator on shard %s in stream %s "
		    "under account " KIN_ACCOUNT " is invalid because it did not come from this "
		    "stream.",
		    seq_text, id, it.stream);
		return;
	}
	if (it.pos.type == SLUICE_POS_LATEST) {
		/* Pin LATEST now: records put after this call must be read through it. */
		it.pos.type = SLUICE_POS_AT_SEQ;
		it.pos.value = sh->next_seq;
	}
	sluice_shards_free(shards);
	it.issued_ms = sl_wall_ms();
	char text[KIN_ITERATOR_BUF];
	r = kin_iterator_encode(q->s->api->iterator_key, &it, text);
	if (r < 0) {
		kin_fail(q, 500, KIN_E_INTERNAL, "cannot encode the iterator");
		return;
	}
	kin_ok(q, json_pack("{s:s}", "ShardIterator", text));
}

static json_t *record_json(const struct sluice_record *rec)
{
	json_t *key = json_stringn(rec->key, rec->key_len);
	if (!key) /* keys are validated as UTF-8 on every write path; this is corruption */
		key = json_string("");
	return json_pack("{s:o,s:f,s:o*,s:o}", "SequenceNumber", kin_seq_json(rec->seq),
			 "ApproximateArrivalTimestamp", (double)rec->ts_ms / 1000.0, "Data",
			 kin_base64_json(rec->data, rec->data_len), "PartitionKey", key);
}

void kin_op_get_records(struct kin_req *q)
{
	const char *text;
	int64_t limit = GET_RECORDS_MAX;
	if (!kin_get_string(q, "ShardIterator", 1, 512, &text, NULL) ||
	    !kin_get_int(q, "Limit", 1, GET_RECORDS_MAX, &limit, &(bool){0}))
		return;
	struct kin_iterator it;
	int64_t now = sl_wall_ms();
	int r = kin_iterator_decode(q->s->api->iterator_key, text, strlen(text), now, &it);
	if (r == -ETIME) {
		kin_iterator_decode(q->s->api->iterator_key, text, strlen(text), INT64_MIN / 2,
				    &it);
		char made[64], at[64];
		sl_format_timestamp(it.issued_ms, made, sizeof(made));
		sl_format_timestamp(now, at, sizeof(at));
		kin_fail(
		    q, 400, KIN_E_EXPIRED_ITERATOR,
		    "Iterator expired. The iterator was created at time %s while right now it is "
		    "%s and is no longer valid.",
		    made, at);
		return;
	}
	if (r < 0) {
		kin_fail(q, 400, KIN_E_INVALID_ARG, "Invalid ShardIterator.");
		return;
	}
	struct sluice_client *c = kin_client(q);
	if (!c)
		return;
	struct kin_limits *lim = q->s->api->limits;
	if (lim && !kin_limits_take_read(lim, it.stream, it.shard_id, sl_mono_ms())) {
		char sid[SL_SHARD_ID_BUF];
		sl_shard_id_format(it.shard_id, sid);
		kin_fail(q, 400, KIN_E_THROUGHPUT,
			 "Rate exceeded for shard %s in stream %s under account " KIN_ACCOUNT ".",
			 sid, it.stream);
		return;
	}
	struct sluice_read_result res;
	sluice_read_result_init(&res);
	r = sluice_read(c, it.stream, it.shard_id, &it.pos, (uint32_t)limit, GET_RECORDS_BYTES_MAX,
			&res);
	if (r == SLUICE_ERR_SHARD_NOT_FOUND) {
		sluice_read_result_finish(&res);
		fail_no_shard(q, it.shard_id, it.stream);
		return;
	}
	if (r < 0) {
		sluice_read_result_finish(&res);
		kin_fail_native(q, r, it.stream);
		return;
	}
	json_t *recs = json_array();
	size_t bytes = 0;
	for (size_t i = 0; i < res.count; i++) {
		json_array_append_new(recs, record_json(&res.records[i]));
		bytes += res.records[i].data_len;
	}
	if (lim)
		kin_limits_charge_read(lim, it.stream, it.shard_id, bytes, sl_mono_ms());
	json_t *out = json_pack("{s:o,s:I}", "Records", recs, "MillisBehindLatest",
				(json_int_t)res.millis_behind);
	/* A closed shard read to its end has no next iterator (Kinesis: null), which tells the
	 * reader to move on to the children. Only then is the shard list worth asking for. */
	bool ended = false;
	if (sluice_read_result_caught_up(&res)) {
		struct sluice_shard_info *shards;
		size_t n;
		if (sluice_list_shards(c, it.stream, &shards, &n) == 0) {
			const struct sluice_shard_info *sh = find_shard(shards, n, it.shard_id);
			ended = sh && sh->closed && res.next_seq > sh->end_seq;
			sluice_shards_free(shards);
		}
	}
	if (ended) {
		json_object_set_new(out, "NextShardIterator", json_null());
	} else {
		struct kin_iterator next = it;
		next.pos.type = SLUICE_POS_AT_SEQ;
		next.pos.value = res.next_seq;
		next.issued_ms = now;
		char next_text[KIN_ITERATOR_BUF];
		if (kin_iterator_encode(q->s->api->iterator_key, &next, next_text) == 0)
			json_object_set_new(out, "NextShardIterator", json_string(next_text));
	}
	sluice_read_result_finish(&res);
	kin_ok(q, out);
}
