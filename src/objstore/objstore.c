/* The objstore front: URL dispatch, key validation, error reporting. See objstore.h. */
#include "objstore/objstore_internal.h"

#include "common/buf.h"

#include <sluice/errors.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sl_objstore_fail(struct sl_objstore_error *err, int rc, int http_status, const char *code,
		     const char *fmt, ...)
{
	if (!err)
		return rc;
	err->http_status = http_status;
	err->retryable = sluice_error_is_retryable(rc) != 0;
	snprintf(err->code, sizeof(err->code), "%s", code ? code : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	/* One line, whatever a server put in its message. */
	for (char *p = err->message; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return rc;
}

const char *sl_objstore_errno_name(int err)
{
	switch (err < 0 ? -err : err) {
	case ENOENT:
		return "ENOENT";
	case ENOSPC:
		return "ENOSPC";
	case EIO:
		return "EIO";
	case EACCES:
		return "EACCES";
	case EPERM:
		return "EPERM";
	case EROFS:
		return "EROFS";
	case EDQUOT:
		return "EDQUOT";
	case ENOTDIR:
		return "ENOTDIR";
	case EISDIR:
		return "EISDIR";
	case ENAMETOOLONG:
		return "ENAMETOOLONG";
	case ENOMEM:
		return "ENOMEM";
	case EFBIG:
		return "EFBIG";
	default:
		return "errno";
	}
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool sl_objstore_is_tmp_name(const char *name, size_t len)
{
	static const char tag[] = ".tmp.";
	const size_t tag_len = sizeof(tag) - 1, hex_len = 16;
	if (len < tag_len + hex_len + 1)
		return false;
	const char *t = name + len - hex_len - tag_len;
	if (memcmp(t, tag, tag_len) != 0)
		return false;
	for (size_t i = 0; i < hex_len; i++)
		if (!is_hex(t[tag_len + i]))
			return false;
	return true;
}

/* Strict UTF-8, no control characters. */
static bool text_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			i++;
			continue;
		}
		size_t n;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

bool sl_objstore_key_valid(const char *key)
{
	if (!key)
		return false;
	size_t len = strlen(key);
	if (len < 1 || len > SL_OBJSTORE_KEY_LEN_MAX || !text_valid((const uint8_t *)key, len))
		return false;
	/* Every segment non-empty, not "." nor "..": a file:// key must stay inside its folder. */
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && key[i] != '/')
			continue;
		size_t n = i - start;
		if (n == 0 || (n == 1 && key[start] == '.') ||
		    (n == 2 && key[start] == '.' && key[start + 1] == '.'))
			return false;
		start = i + 1;
	}
	return !sl_objstore_is_tmp_name(key, len);
}

int sl_objstore_create(const char *url, const struct sl_objstore_options *opt,
		       struct sl_objstore **ret, struct sl_objstore_error *ret_err)
{
	struct sl_objstore_options none = {0};
	if (!opt)
		opt = &none;
	if (!url)
		return sl_objstore_fail(ret_err, SLUICE_ERR_INVALID_ARGUMENT, 0, "InvalidURL",
					"no destination URL");
	struct sl_objstore *os = NULL;
	int r;
	if (strncmp(url, "file://", 7) == 0)
		r = sl_objstore_file_create(url + 7, &os, ret_err);
	else if (strncmp(url, "s3://", 5) == 0)
		r = sl_objstore_s3_create(url + 5, opt, &os, ret_err);
	else
		return sl_objstore_fail(ret_err, SLUICE_ERR_INVALID_ARGUMENT, 0, "InvalidURL",
					"%.200s: not a file:///ABS/DIR or s3://BUCKET/PREFIX URL",
					url);
	if (r < 0)
		return r;
	os->url = strdup(url);
	if (!os->url) {
		sl_objstore_destroy(os);
		return sl_objstore_fail(ret_err, -ENOMEM, 0, "ENOMEM", "out of memory");
	}
	*ret = os;
	return 0;
}

void sl_objstore_destroy(struct sl_objstore *os)
{
	if (!os)
		return;
	free(os->url);
	os->ops->destroy(os);
}

const char *sl_objstore_url(const struct sl_objstore *os)
{
	return os->url ? os->url : "";
}

static int bad_key(struct sl_objstore_error *err, const char *op, const char *key)
{
	return sl_objstore_fail(err, SLUICE_ERR_INVALID_ARGUMENT, 0, "InvalidKey",
				"%s: invalid object key \"%.200s\"", op, key ? key : "(null)");
}

int sl_objstore_put(struct sl_objstore *os, const char *key, const void *data, size_t len,
		    struct sl_objstore_error *ret_err)
{
	if (!sl_objstore_key_valid(key))
		return bad_key(ret_err, "put", key);
	if (len > 0 && !data)
		return sl_objstore_fail(ret_err, SLUICE_ERR_INVALID_ARGUMENT, 0, "InvalidArgument",
					"put %s: no data", key);
	return os->ops->put(os, key, data, len, ret_err);
}

int sl_objstore_get(struct sl_objstore *os, const char *key, struct sl_buf *out,
		    struct sl_objstore_error *ret_err)
{
	if (!sl_objstore_key_valid(key))
		return bad_key(ret_err, "get", key);
	sl_buf_reset(out);
	return os->ops->get(os, key, out, ret_err);
}

int sl_objstore_list(struct sl_objstore *os, const char *prefix, sl_objstore_list_fn fn, void *ctx,
		     struct sl_objstore_error *ret_err)
{
	if (!prefix)
		prefix = "";
	size_t len = strlen(prefix);
	if (len > SL_OBJSTORE_KEY_LEN_MAX || !text_valid((const uint8_t *)prefix, len))
		return sl_objstore_fail(ret_err, SLUICE_ERR_INVALID_ARGUMENT, 0, "InvalidPrefix",
					"list: invalid prefix \"%.200s\"", prefix);
	return os->ops->list(os, prefix, fn, ctx, ret_err);
}

int sl_objstore_delete(struct sl_objstore *os, const char *key, struct sl_objstore_error *ret_err)
{
	if (!sl_objstore_key_valid(key))
		return bad_key(ret_err, "delete", key);
	return os->ops->del(os, key, ret_err);
}
