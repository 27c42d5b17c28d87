/*
 * Inside the objstore module: the table each kind (file://, s3://) implements, and the shared
 * helpers. sl_objstore_*() in objstore.c validate the arguments, then call through the table.
 */
#ifndef SL_OBJSTORE_INTERNAL_H
#define SL_OBJSTORE_INTERNAL_H

#include "objstore/objstore.h"

#include <stdarg.h>

struct sl_buf;

struct sl_objstore_ops {
	int (*put)(struct sl_objstore *os, const char *key, const void *data, size_t len,
		   struct sl_objstore_error *err);
	int (*get)(struct sl_objstore *os, const char *key, struct sl_buf *out,
		   struct sl_objstore_error *err);
	int (*list)(struct sl_objstore *os, const char *prefix, sl_objstore_list_fn fn, void *ctx,
		    struct sl_objstore_error *err);
	int (*del)(struct sl_objstore *os, const char *key, struct sl_objstore_error *err);
	void (*destroy)(struct sl_objstore *os);
};

/* The common head of every kind's struct (which embeds it first). */
struct sl_objstore {
	const struct sl_objstore_ops *ops;
	char *url;
};

/* Fill err (may be NULL): code, retryable from rc, and a printf message. Returns rc. */
int sl_objstore_fail(struct sl_objstore_error *err, int rc, int http_status, const char *code,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The constructors of the kinds: url is the part after "file://" / "s3://". */
int sl_objstore_file_create(const char *path, struct sl_objstore **ret,
			    struct sl_objstore_error *err);
int sl_objstore_s3_create(const char *rest, const struct sl_objstore_options *opt,
			  struct sl_objstore **ret, struct sl_objstore_error *err);

/* Whether name (a file's last path segment) is one of put's temporary files: *.tmp.<16 hex>. */
bool sl_objstore_is_tmp_name(const char *name, size_t len);

/* An errno's symbolic name ("ENOSPC"), for sl_objstore_error.code. */
const char *sl_objstore_errno_name(int err);

#endif
