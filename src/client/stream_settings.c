/* Stream settings of struct sluice_client: retention and tags (STREAM_SET_RETENTION, ..._TAGS). */
#include "client/client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sluice_stream_set_retention(struct sluice_client *c, const char *name, uint64_t retention_ms)
{
	size_t len, start;
	int r = sl_client_check_name(c, name, &len);
	if (r < 0)
		return r;
	r = sl_client_begin(c, SL_OP_STREAM_SET_RETENTION, &start);
	r = r ?: sl_proto_put_str8(&c->out, name, len);
	r = r ?: sl_buf_put_u64(&c->out, retention_ms);
	if (r < 0)
		return r;
	struct sl_reader rest;
	return sl_client_call(c, start, true, &rest);
}

static int check_tag(struct sluice_client *c, const char *key, const char *value)
{
	size_t kl = key ? strlen(key) : 0;
	if (kl < 1 || kl > SLUICE_TAG_KEY_LEN_MAX)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT, "tag keys are 1..%d bytes",
				      SLUICE_TAG_KEY_LEN_MAX);
	if (value && strlen(value) > SLUICE_TAG_VALUE_LEN_MAX)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT,
				      "tag values are at most %d bytes", SLUICE_TAG_VALUE_LEN_MAX);
	return 0;
}

static int tags_call(struct sluice_client *c, uint8_t opcode, const char *name,
		     const struct sluice_tag *tags, const char *const *keys, size_t n)
{
	size_t len, start;
	int r = sl_client_check_name(c, name, &len);
	if (r < 0)
		return r;
	if (n < 1 || n > SLUICE_TAGS_MAX)
		return sl_client_fail(c, SLUICE_ERR_INVALID_ARGUMENT, "1..%d tags per request",
				      SLUICE_TAGS_MAX);
	for (size_t i = 0; i < n; i++) {
		r = tags ? check_tag(c, tags[i].key, tags[i].value ? tags[i].value : "")
			 : check_tag(c, keys[i], NULL);
		if (r < 0)
			return r;
	}
	r = sl_client_begin(c, opcode, &start);
	r = r ?: sl_proto_put_str8(&c->out, name, len);
	r = r ?: sl_buf_put_u32(&c->out, (uint32_t)n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		const char *k = tags ? tags[i].key : keys[i];
		r = sl_proto_put_str8(&c->out, k, strlen(k));
		if (r == 0 && tags) {
			const char *v = tags[i].value ? tags[i].value : "";
			r = sl_proto_put_str16(&c->out, v, strlen(v));
		}
	}
	if (r < 0)
		return r;
	struct sl_reader rest;
	return sl_client_call(c, start, true, &rest);
}

int sluice_stream_add_tags(struct sluice_client *c, const char *name, const struct sluice_tag *tags,
			   size_t n)
{
	return tags_call(c, SL_OP_STREAM_ADD_TAGS, name, tags, NULL, n);
}

int sluice_stream_remove_tags(struct sluice_client *c, const char *name, const char *const *keys,
			      size_t n)
{
	return tags_call(c, SL_OP_STREAM_REMOVE_TAGS, name, NULL, keys, n);
}

void sluice_tags_free(struct sluice_tag *tags, size_t count)
{
	for (size_t i = 0; tags && i < count; i++) {
		free(tags[i].key);
		free(tags[i].value);
	}
	free(tags);
}

static char *dup_str(const struct sl_str *s)
{
	char *p = malloc(s->len + 1);
	if (p) {
		memcpy(p, s->p, s->len);
		p[s->len] = '\0';
	}
	return p;
}

int sluice_stream_list_tags(struct sluice_client *c, const char *name, struct sluice_tag **ret_tags,
			    size_t *ret_count)
{
	size_t len, start;
	int r = sl_client_check_name(c, name, &len);
	if (r < 0)
		return r;
	r = sl_client_begin(c, SL_OP_STREAM_LIST_TAGS, &start);
	r = r ?: sl_proto_put_str8(&c->out, name, len);
	if (r < 0)
		return r;
	struct sl_reader rest;
	r = sl_client_call(c, start, true, &rest);
	if (r < 0)
		return r;
	uint32_t n;
	if (!sl_reader_u32(&rest, &n) || n > SLUICE_TAGS_MAX)
		return sl_client_fail(c, SLUICE_ERR_PROTOCOL, "malformed answer from the server");
	struct sluice_tag *tags = calloc(n ? n : 1, sizeof(*tags));
	if (!tags)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct sl_str k, v;
		if (sl_proto_get_str8(&rest, &k) < 0 || sl_proto_get_str16(&rest, &v) < 0) {
			sluice_tags_free(tags, n);
			return sl_client_fail(c, SLUICE_ERR_PROTOCOL,
					      "malformed answer from the server");
		}
		tags[i].key = dup_str(&k);
		tags[i].value = dup_str(&v);
		if (!tags[i].key || !tags[i].value) {
			sluice_tags_free(tags, n);
			return -ENOMEM;
		}
	}
	if (sl_reader_left(&rest) != 0) {
		sluice_tags_free(tags, n);
		return sl_client_fail(c, SLUICE_ERR_PROTOCOL, "malformed answer from the server");
	}
	*ret_tags = tags;
	*ret_count = n;
	return 0;
}
