/*
 * Object storage behind one small interface: where a firehose writes its archive objects and where
 * `sluice restore` reads them back. Two kinds, chosen by the destination URL:
 *
 *   file:///ABS/DIR     objects are files under DIR (created if missing); a key's '/' are folders.
 *                       put is atomic and durable: write KEY.tmp.<16 hex> in the key's folder,
 *                       fdatasync, rename over KEY, fsync the folder (and the parents of folders
 *                       it had to create), so a reader sees the old object or the whole new one,
 *                       never part of one, and a crash leaves at most a tmp file that list ignores.
 *                       File I/O goes through the log's I/O seam (src/log/io.h), so tests inject
 *                       ENOSPC/EIO deterministically.
 *   s3://BUCKET/PREFIX  Amazon S3 or any S3-compatible server (libcurl). Requests are signed with
 *                       libcurl's built-in SigV4 (CURLOPT_AWS_SIGV4 "aws:amz:REGION:s3"); every
 *                       request carries x-amz-content-sha256 with the hex SHA-256 of its payload,
 *                       which libcurl 7.75+ takes as the signed payload hash (it does not hash a
 *                       PUT body itself, and only 8.x falls back to UNSIGNED-PAYLOAD): S3 then
 *                       checks the body against the signature. Objects over the multipart
 *                       threshold go up as a multipart upload (aborted if any step fails). With an
 *                       endpoint option the URL is path-style (ENDPOINT/BUCKET/KEY); without, it is
 *                       https://BUCKET.s3.REGION.amazonaws.com/KEY (path-style when the bucket
 *                       name has a '.', which would break TLS on the virtual host name).
 *
 * Keys are relative to the URL's folder or prefix, in both kinds: an objstore made from
 * s3://b/archive stores key "x/y" as "archive/x/y", and lists it back as "x/y". A valid key is
 * 1..SL_OBJSTORE_KEY_LEN_MAX bytes of UTF-8 without control characters, without a leading '/', an
 * empty, "." or ".." segment, and not ending in ".tmp.<16 hex>" (reserved for put's temporary
 * files); anything else is SLUICE_ERR_INVALID_ARGUMENT before any I/O.
 *
 * Errors: every operation returns 0 (or a count) or a negative code, and fills *ret_err (optional)
 * with the HTTP status, the S3 error code ("NoSuchKey", "SlowDown") and a one-line message. Codes:
 *   -ENOENT                     no such key (get), no such bucket
 *   SLUICE_ERR_UNAUTHORIZED     401/403 (bad credentials, signature mismatch, denied)
 *   SLUICE_ERR_THROTTLED        429, 503 SlowDown               retryable
 *   SLUICE_ERR_UNAVAILABLE      other 5xx, DNS failure          retryable
 *   SLUICE_ERR_TIMEOUT          connect/total timeout, 408, 400 RequestTimeout     retryable
 *   -ECONNREFUSED               connection refused              retryable
 *   SLUICE_ERR_DISCONNECTED     connection reset, empty reply, short body         retryable
 *   SLUICE_ERR_PROTOCOL         a 2xx answer we cannot parse
 *   SLUICE_ERR_INVALID_ARGUMENT other 4xx, bad key
 *   -errno                      file:// system errors (-ENOSPC, -EIO are retryable)
 * ret_err->retryable == sluice_error_is_retryable(code). There is no retry loop in here: the
 * caller (the firehose's backoff) decides when to try again; libcurl only reuses connections.
 *
 * Threads: an objstore is used by one thread at a time (it owns one CURL easy handle, reused for
 * every request so that connections stay open). Make one per shard worker. All s3 objstores of the
 * process share one CURLSH (DNS cache, TLS sessions, connection pool), guarded by mutexes.
 */
#ifndef SL_OBJSTORE_H
#define SL_OBJSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_buf;

/* S3's own limit on key length (bytes of UTF-8); file:// keeps it too so objects can move. */
#define SL_OBJSTORE_KEY_LEN_MAX 1024
/* Multipart defaults: 8 MiB parts for objects over 16 MiB. S3 wants parts of 5 MiB..5 GiB. */
#define SL_OBJSTORE_PART_BYTES_DEFAULT (8u << 20)
#define SL_OBJSTORE_MULTIPART_THRESHOLD_DEFAULT (16u << 20)
#define SL_OBJSTORE_PART_BYTES_MIN (5u << 20)
/* S3 allows 10,000 parts per upload. */
#define SL_OBJSTORE_PARTS_MAX 10000
/* The largest object get accepts (the firehose writes objects of at most a few hundred MiB). */
#define SL_OBJSTORE_GET_BYTES_MAX (4ull << 30)
/* The largest non-object answer (error, list page, multipart XML) read from a server. */
#define SL_OBJSTORE_XML_BYTES_MAX (16u << 20)

struct sl_objstore_options {
	/* s3 only. Endpoint URL ("http://127.0.0.1:9000"): path-style addressing. NULL: AWS. */
	const char *endpoint;
	const char *region; /* NULL: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1 */
	/*
	 * Credentials, first found wins: access_key_id + secret_access_key (+ session_token) here;
	 * else credentials_file (AWS shared-credentials format) at profile (NULL: AWS_PROFILE, else
	 * "default"); else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN; else
	 * AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials at that profile. None found:
	 * SLUICE_ERR_UNAUTHORIZED from create.
	 */
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;
	const char *credentials_file;
	const char *profile;
	int64_t connect_timeout_ms; /* 0: 10 s */
	int64_t timeout_ms;	    /* whole request (one part of a multipart upload); 0: 300 s */
	uint64_t multipart_threshold_bytes; /* 0: 16 MiB; objects strictly larger go multipart */
	uint64_t part_size_bytes;	    /* 0: 8 MiB; at least 5 MiB */
	/* Keys per ListObjectsV2 page, 1..1000; 0: 1000. Tests set it low to force pagination. */
	uint32_t list_max_keys;
};

struct sl_objstore_error {
	int http_status; /* 0 when no HTTP answer came */
	bool retryable;
	char code[64];	   /* S3 error code, curl error ("CURLE_COULDNT_CONNECT") or errno name */
	char message[320]; /* one line: "PUT s3://b/k: HTTP 403 InvalidAccessKeyId: ..." */
};

struct sl_objstore;

/*
 * Parse the URL, check the options, resolve credentials; for file:// create the folder. No network
 * I/O. opt may be NULL. 0, -ENOMEM, SLUICE_ERR_INVALID_ARGUMENT (bad URL or option),
 * SLUICE_ERR_UNAUTHORIZED (no credentials), -errno (file://: the folder).
 */
int sl_objstore_create(const char *url, const struct sl_objstore_options *opt,
		       struct sl_objstore **ret, struct sl_objstore_error *ret_err);
/* Accepts NULL. */
void sl_objstore_destroy(struct sl_objstore *os);

/* Store len bytes at key, replacing any object there; atomic (see above). */
int sl_objstore_put(struct sl_objstore *os, const char *key, const void *data, size_t len,
		    struct sl_objstore_error *ret_err);

/* Read the object at key into out (reset first). -ENOENT when there is none. */
int sl_objstore_get(struct sl_objstore *os, const char *key, struct sl_buf *out,
		    struct sl_objstore_error *ret_err);

/*
 * Call fn(key, size_bytes, ctx) for every object whose key starts with prefix (NULL or "" = all),
 * in ascending byte order of keys (S3's order; file:// sorts to match). key is valid during the
 * call only. fn returning nonzero stops the listing, and list returns that value. Otherwise the
 * number of keys listed (saturating at INT32_MAX).
 */
typedef int (*sl_objstore_list_fn)(const char *key, uint64_t size_bytes, void *ctx);
int sl_objstore_list(struct sl_objstore *os, const char *prefix, sl_objstore_list_fn fn, void *ctx,
		     struct sl_objstore_error *ret_err);

/* Delete the object at key. 0 also when there was none (as S3). */
int sl_objstore_delete(struct sl_objstore *os, const char *key, struct sl_objstore_error *ret_err);

/* The URL the objstore was made from (for messages). */
const char *sl_objstore_url(const struct sl_objstore *os);

/* Whether key is a valid key (see above). */
bool sl_objstore_key_valid(const char *key);

#endif
