/*
 * s3://BUCKET/PREFIX: the S3 REST API over libcurl (see objstore.h for addressing and errors).
 *
 * Signing: libcurl's CURLOPT_AWS_SIGV4 ("aws:amz:REGION:s3") + CURLOPT_USERPWD ("KEY:SECRET").
 * What it needs from us, checked against libcurl 7.75..8.x:
 *   - The payload hash. libcurl hashes only CURLOPT_POSTFIELDS; for an upload through a read
 *     callback it would sign the hash of "" (7.x) or UNSIGNED-PAYLOAD (8.x, s3 only). When the
 *     request carries an x-amz-content-sha256 header, every version takes its value as the payload
 *     hash and signs the header. So every request carries it: hex SHA-256 of the body (of "" for
 *     GET/DELETE). S3 then rejects a body that does not match (XAmzContentSHA256Mismatch), an
 *     end-to-end check of the upload for free.
 *   - A canonical URI and query: libcurl 7.x signs the path and query exactly as given. So paths
 *     are percent-encoded here once (RFC 3986 unreserved kept, '/' kept), queries are built already
 *     sorted by name with every value encoded, and bare sub-resources are written "uploads=" (the
 *     canonical form). libcurl 8.x re-canonicalises, which leaves such input unchanged.
 *   - The session token as an x-amz-security-token header (user headers are signed).
 *
 * Connections: one CURL easy handle per objstore, reset and reused for every request, so its
 * connection cache keeps the TCP/TLS connection to the endpoint open between requests. All
 * objstores share one CURLSH for the DNS cache and TLS sessions (mutex-guarded). Not the
 * connection cache: libcurl does not support sharing connections between concurrent threads.
 *
 * XML answers (errors, ListObjectsV2, multipart) are parsed with libxml2, network access and
 * entity expansion off, errors not printed, each answer at most SL_OBJSTORE_XML_BYTES_MAX.
 */
#include "objstore/objstore_internal.h"

#include "common/buf.h"

#include <sluice/errors.h>

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONNECT_TIMEOUT_MS_DEFAULT 10000
#define TIMEOUT_MS_DEFAULT 300000
#define LIST_MAX_KEYS 1000
#define PART_BYTES_MAX (5ull << 30)
/* A credentials file is a few lines; refuse to slurp anything big. */
#define CREDENTIALS_FILE_BYTES_MAX (1u << 20)
#define CRED_LEN_MAX 2048
#define ETAG_LEN_MAX 128
#define UPLOAD_ID_LEN_MAX 1024

struct s3_store {
	struct sl_objstore base;
	CURL *curl;
	char *bucket;
	char *prefix;	/* "" or "a/b" (no leading/trailing '/') */
	char *base_url; /* object URL = base_url + "/" + encoded key */
	bool path_style;
	char *sigv4;	 /* "aws:amz:REGION:s3" */
	char *userpwd;	 /* "KEY:SECRET" */
	char *token_hdr; /* "x-amz-security-token: ..." or NULL */
	long connect_timeout_ms;
	long timeout_ms;
	uint64_t threshold;
	uint64_t part_bytes;
	uint32_t list_max_keys;
	struct sl_buf resp; /* non-object answers */
	char curl_err[CURL_ERROR_SIZE];
};

/* ---- process-wide init: curl_global_init, libxml2, the share ---- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_init_rc;
static CURLSH *g_share;
static pthread_mutex_t g_locks[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
	(void)h, (void)a, (void)u;
	pthread_mutex_lock(&g_locks[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *u)
{
	(void)h, (void)u;
	pthread_mutex_unlock(&g_locks[d]);
}

static void global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		g_init_rc = SLUICE_ERR_INTERNAL;
		return;
	}
	/* libxml2 must be initialised once before threads use it. */
	xmlInitParser();
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&g_locks[i], NULL);
	g_share = curl_share_init();
	if (!g_share) {
		g_init_rc = -ENOMEM;
		return;
	}
	curl_share_setopt(g_share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(g_share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(g_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(g_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
}

/* ---- small helpers ---- */

static void sha256_hex(const void *p, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(p, len, md, &n, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Append s percent-encoded (SigV4's UriEncode); '/' kept when keep_slash. */
static int put_encoded(struct sl_buf *b, const char *s, size_t len, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	if (sl_buf_reserve(b, 3 * len + 1) < 0)
		return -ENOMEM;
	char *p = (char *)b->data + b->len;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c) || (keep_slash && c == '/')) {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	b->len = (size_t)(p - (char *)b->data);
	return 0;
}

static int put_str(struct sl_buf *b, const char *s)
{
	return sl_buf_put(b, s, strlen(s));
}

/* NUL-terminate b's text (not counted in len). */
static int put_nul(struct sl_buf *b)
{
	if (sl_buf_reserve(b, 1) < 0)
		return -ENOMEM;
	b->data[b->len] = '\0';
	return 0;
}

/* "PREFIX/key" (or "key") as it is stored in the bucket. */
static int full_key(const struct s3_store *s, const char *key, struct sl_buf *out)
{
	sl_buf_reset(out);
	if (s->prefix[0] && (put_str(out, s->prefix) < 0 || put_str(out, "/") < 0))
		return -ENOMEM;
	if (put_str(out, key) < 0 || put_nul(out) < 0)
		return -ENOMEM;
	return 0;
}

/* ---- one request ---- */

struct req {
	struct s3_store *s;
	const char *method; /* GET PUT POST DELETE */
	const char *what;   /* "s3://bucket/key" for messages */
	const char *url;
	const uint8_t *body;
	size_t body_len;
	size_t body_off;
	const char *content_type;
	struct sl_buf *sink; /* 2xx body (NULL: s->resp) */
	size_t sink_max;
	/* answers */
	long status;
	char etag[ETAG_LEN_MAX + 1];
	bool decided, to_sink, too_big, oom;
};

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
	struct req *q = ud;
	size_t len = size * n;
	if (!q->decided) {
		long st = 0;
		curl_easy_getinfo(q->s->curl, CURLINFO_RESPONSE_CODE, &st);
		q->to_sink = st / 100 == 2 && q->sink;
		q->decided = true;
	}
	struct sl_buf *b = q->to_sink ? q->sink : &q->s->resp;
	size_t max = q->to_sink ? q->sink_max : SL_OBJSTORE_XML_BYTES_MAX;
	if (len > max - b->len) {
		q->too_big = true;
		return 0; /* CURLE_WRITE_ERROR */
	}
	if (sl_buf_put(b, p, len) < 0) {
		q->oom = true;
		return 0;
	}
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct req *q = ud;
	size_t len = size * n;
	if (len > 5 && strncasecmp(p, "etag:", 5) == 0) {
		size_t i = 5, end = len;
		while (i < end && (p[i] == ' ' || p[i] == '\t'))
			i++;
		while (end > i && (p[end - 1] == '\r' || p[end - 1] == '\n' || p[end - 1] == ' '))
			end--;
		size_t m = end - i < ETAG_LEN_MAX ? end - i : ETAG_LEN_MAX;
		memcpy(q->etag, p + i, m);
		q->etag[m] = '\0';
	}
	return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
	struct req *q = ud;
	size_t want = size * n, left = q->body_len - q->body_off;
	size_t m = want < left ? want : left;
	if (m)
		memcpy(p, q->body + q->body_off, m);
	q->body_off += m;
	return m;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
	struct req *q = ud;
	if (origin != SEEK_SET || off < 0 || (uint64_t)off > q->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	q->body_off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

/* libxml2: parse without network, DTD loading or entity expansion, silently. */
static xmlDocPtr xml_parse(const struct sl_buf *b)
{
	if (b->len == 0 || b->len > SL_OBJSTORE_XML_BYTES_MAX)
		return NULL;
	return xmlReadMemory((const char *)b->data, (int)b->len, "s3.xml", NULL,
			     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static xmlNodePtr xml_child(xmlNodePtr n, const char *name)
{
	for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
			return c;
	return NULL;
}

/* The text of n's child `name` copied into out (truncated), "" when absent. */
static void xml_text(xmlNodePtr n, const char *name, char *out, size_t out_len)
{
	out[0] = '\0';
	xmlNodePtr c = xml_child(n, name);
	if (!c)
		return;
	xmlChar *t = xmlNodeGetContent(c);
	if (t) {
		snprintf(out, out_len, "%s", (const char *)t);
		xmlFree(t);
	}
}

/* Map a non-2xx answer to a code, using the S3 error code of the XML body when there is one. */
static int http_fail(struct req *q, struct sl_objstore_error *err)
{
	char code[64] = "", message[200] = "";
	xmlDocPtr doc = xml_parse(&q->s->resp);
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (root && strcmp((const char *)root->name, "Error") == 0) {
		xml_text(root, "Code", code, sizeof(code));
		xml_text(root, "Message", message, sizeof(message));
	}
	if (doc)
		xmlFreeDoc(doc);
	long st = q->status;
	int rc;
	if (st == 429 || (st == 503 && strcmp(code, "SlowDown") == 0))
		rc = SLUICE_ERR_THROTTLED;
	else if (st >= 500)
		rc = SLUICE_ERR_UNAVAILABLE;
	else if (st == 408 || (st == 400 && strcmp(code, "RequestTimeout") == 0))
		rc = SLUICE_ERR_TIMEOUT;
	else if (st == 401 || st == 403 || (st == 400 && strcmp(code, "ExpiredToken") == 0))
		rc = SLUICE_ERR_UNAUTHORIZED;
	else if (st == 404)
		rc = -ENOENT;
	else
		rc = SLUICE_ERR_INVALID_ARGUMENT;
	return sl_objstore_fail(err, rc, (int)st, code[0] ? code : "HTTPError",
				"%s %s: HTTP %ld%s%s%s%s", q->method, q->what, st,
				code[0] ? " " : "", code, message[0] ? ": " : "", message);
}

static int curl_fail(struct req *q, CURLcode cc, struct sl_objstore_error *err)
{
	int rc;
	const char *name;
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
		rc = -ECONNREFUSED;
		name = "CURLE_COULDNT_CONNECT";
		break;
	case CURLE_OPERATION_TIMEDOUT:
		rc = SLUICE_ERR_TIMEOUT;
		name = "CURLE_OPERATION_TIMEDOUT";
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		rc = SLUICE_ERR_UNAVAILABLE;
		name = "CURLE_COULDNT_RESOLVE_HOST";
		break;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		rc = SLUICE_ERR_DISCONNECTED;
		name = "CURLE_DISCONNECTED";
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		rc = -EPROTO;
		name = "CURLE_TLS_VERIFY";
		break;
	case CURLE_OUT_OF_MEMORY:
		rc = -ENOMEM;
		name = "CURLE_OUT_OF_MEMORY";
		break;
	case CURLE_WRITE_ERROR:
		if (q->oom) {
			rc = -ENOMEM;
			name = "ENOMEM";
		} else {
			rc = q->to_sink ? -EFBIG : SLUICE_ERR_PROTOCOL;
			name = "ResponseTooLarge";
		}
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_BAD_FUNCTION_ARGUMENT:
		rc = SLUICE_ERR_INVALID_ARGUMENT;
		name = "CURLE_BAD_REQUEST";
		break;
	default:
		/* Unknown transport trouble: let the caller's backoff try again. */
		rc = SLUICE_ERR_UNAVAILABLE;
		name = "CURLE_OTHER";
		break;
	}
	return sl_objstore_fail(err, rc, 0, name, "%s %s: %s", q->method, q->what,
				q->s->curl_err[0] ? q->s->curl_err : curl_easy_strerror(cc));
}

#define SETOPT(opt, val)                                                                           \
	do {                                                                                       \
		if (curl_easy_setopt(c, opt, val) != CURLE_OK)                                     \
			goto setopt_failed;                                                        \
	} while (0)

static int perform(struct req *q, struct sl_objstore_error *err)
{
	struct s3_store *s = q->s;
	CURL *c = s->curl;
	struct curl_slist *hdrs = NULL, *t;
	char sha_hdr[32 + 65];
	char ct_hdr[128];
	int rc = 0;

	sl_buf_reset(&s->resp);
	s->curl_err[0] = '\0';
	q->status = 0;
	q->etag[0] = '\0';
	q->body_off = 0;
	q->decided = q->to_sink = q->too_big = q->oom = false;

	char hex[65];
	sha256_hex(q->body_len ? (const void *)q->body : "", q->body_len, hex);
	snprintf(sha_hdr, sizeof(sha_hdr), "x-amz-content-sha256: %s", hex);
	if (!(t = curl_slist_append(hdrs, sha_hdr)))
		goto oom;
	hdrs = t;
	if (s->token_hdr) {
		if (!(t = curl_slist_append(hdrs, s->token_hdr)))
			goto oom;
		hdrs = t;
	}
	if (q->content_type) {
		snprintf(ct_hdr, sizeof(ct_hdr), "Content-Type: %s", q->content_type);
		if (!(t = curl_slist_append(hdrs, ct_hdr)))
			goto oom;
		hdrs = t;
	}

	/* Reset keeps live connections, the DNS and TLS session caches: only options go. */
	curl_easy_reset(c);
	SETOPT(CURLOPT_URL, q->url);
	SETOPT(CURLOPT_SHARE, g_share);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_PATH_AS_IS, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
	SETOPT(CURLOPT_TIMEOUT_MS, s->timeout_ms);
	SETOPT(CURLOPT_ERRORBUFFER, s->curl_err);
	SETOPT(CURLOPT_AWS_SIGV4, s->sigv4);
	SETOPT(CURLOPT_USERPWD, s->userpwd);
	SETOPT(CURLOPT_HTTPHEADER, hdrs);
	SETOPT(CURLOPT_WRITEFUNCTION, on_write);
	SETOPT(CURLOPT_WRITEDATA, q);
	SETOPT(CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(CURLOPT_HEADERDATA, q);
	if (strcmp(q->method, "PUT") == 0) {
		SETOPT(CURLOPT_UPLOAD, 1L);
		SETOPT(CURLOPT_READFUNCTION, on_read);
		SETOPT(CURLOPT_READDATA, q);
		SETOPT(CURLOPT_SEEKFUNCTION, on_seek);
		SETOPT(CURLOPT_SEEKDATA, q);
		SETOPT(CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->body_len);
	} else if (strcmp(q->method, "POST") == 0) {
		SETOPT(CURLOPT_POST, 1L);
		SETOPT(CURLOPT_POSTFIELDS, q->body_len ? (const char *)q->body : "");
		SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
	} else if (strcmp(q->method, "DELETE") == 0) {
		SETOPT(CURLOPT_CUSTOMREQUEST, "DELETE");
	} else {
		SETOPT(CURLOPT_HTTPGET, 1L);
	}

	CURLcode cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &q->status);
	if (cc != CURLE_OK)
		rc = curl_fail(q, cc, err);
	else if (q->status / 100 != 2)
		rc = http_fail(q, err);
	goto out;

setopt_failed:
	rc = sl_objstore_fail(err, SLUICE_ERR_INTERNAL, 0, "CURLE_SETOPT",
			      "%s %s: libcurl rejected an option (built without SigV4?)", q->method,
			      q->what);
	goto out;
oom:
	rc =
	    sl_objstore_fail(err, -ENOMEM, 0, "ENOMEM", "%s %s: out of memory", q->method, q->what);
out:
	/* Nothing may keep pointers to our stack or headers past this call. */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(hdrs);
	return rc;
}

/* The object URL for key (+ "?" query) into url; the "s3://bucket/fullkey" text into what. */
static int object_url(struct s3_store *s, const char *key, const char *query, struct sl_buf *url,
		      struct sl_buf *what)
{
	struct sl_buf fk;
	sl_buf_init(&fk);
	int r = full_key(s, key, &fk);
	sl_buf_reset(url);
	sl_buf_reset(what);
	if (r == 0 &&
	    (put_str(url, s->base_url) < 0 || put_str(url, "/") < 0 ||
	     put_encoded(url, (const char *)fk.data, fk.len, true) < 0 ||
	     (query && (put_str(url, "?") < 0 || put_str(url, query) < 0)) || put_nul(url) < 0))
		r = -ENOMEM;
	if (r == 0 &&
	    (put_str(what, "s3://") < 0 || put_str(what, s->bucket) < 0 || put_str(what, "/") < 0 ||
	     put_str(what, (const char *)fk.data) < 0 || put_nul(what) < 0))
		r = -ENOMEM;
	sl_buf_finish(&fk);
	return r;
}

/* ---- operations ---- */

static int put_single(struct s3_store *s, const char *url, const char *what, const void *data,
		      size_t len, struct sl_objstore_error *err)
{
	struct req q = {.s = s,
			.method = "PUT",
			.what = what,
			.url = url,
			.body = data,
			.body_len = len,
			.content_type = "application/octet-stream"};
	return perform(&q, err);
}

static void abort_upload(struct s3_store *s, const char *key, const char *upload_id)
{
	struct sl_buf url, what, query;
	sl_buf_init(&url);
	sl_buf_init(&what);
	sl_buf_init(&query);
	if (put_str(&query, "uploadId=") == 0 &&
	    put_encoded(&query, upload_id, strlen(upload_id), false) == 0 && put_nul(&query) == 0 &&
	    object_url(s, key, (const char *)query.data, &url, &what) == 0) {
		struct req q = {.s = s,
				.method = "DELETE",
				.what = (const char *)what.data,
				.url = (const char *)url.data};
		/* Best effort: the caller reports the failure that made us abort. A leftover
		 * upload costs storage until a bucket lifecycle rule removes it. */
		perform(&q, NULL);
	}
	sl_buf_finish(&url);
	sl_buf_finish(&what);
	sl_buf_finish(&query);
}

/* Text of <name> under the root of s->resp, which must be <root_name>. */
static int resp_field(struct s3_store *s, const char *root_name, const char *name, char *out,
		      size_t out_len)
{
	xmlDocPtr doc = xml_parse(&s->resp);
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	int r = SLUICE_ERR_PROTOCOL;
	if (root && strcmp((const char *)root->name, root_name) == 0) {
		xml_text(root, name, out, out_len);
		if (out[0])
			r = 0;
	}
	if (doc)
		xmlFreeDoc(doc);
	return r;
}

static bool etag_safe(const char *e)
{
	if (!e[0])
		return false;
	for (; *e; e++)
		if ((unsigned char)*e < 0x20 || *e == '<' || *e == '>' || *e == '&')
			return false;
	return true;
}

static int put_multipart(struct s3_store *s, const char *key, const char *what, const uint8_t *data,
			 size_t len, struct sl_objstore_error *err)
{
	uint64_t part = s->part_bytes;
	if ((len + part - 1) / part > SL_OBJSTORE_PARTS_MAX)
		part = (len + SL_OBJSTORE_PARTS_MAX - 1) / SL_OBJSTORE_PARTS_MAX;
	if (part > PART_BYTES_MAX)
		return sl_objstore_fail(err, -EFBIG, 0, "EntityTooLarge",
					"PUT %s: %zu bytes is over S3's object size limit", what,
					len);
	size_t nparts = (size_t)((len + part - 1) / part);

	struct sl_buf url, w, query, body;
	sl_buf_init(&url);
	sl_buf_init(&w);
	sl_buf_init(&query);
	sl_buf_init(&body);
	char upload_id[UPLOAD_ID_LEN_MAX + 1] = "";
	char(*etags)[ETAG_LEN_MAX + 1] = calloc(nparts, sizeof(*etags));
	int r = etags ? 0 : -ENOMEM;

	/* 1. CreateMultipartUpload: POST ?uploads= -> <UploadId>. */
	if (r == 0)
		r = object_url(s, key, "uploads=", &url, &w);
	if (r == 0) {
		struct req q = {.s = s,
				.method = "POST",
				.what = what,
				.url = (const char *)url.data,
				.content_type = "application/octet-stream"};
		r = perform(&q, err);
		if (r == 0 && resp_field(s, "InitiateMultipartUploadResult", "UploadId", upload_id,
					 sizeof(upload_id)) < 0)
			r = sl_objstore_fail(err, SLUICE_ERR_PROTOCOL, (int)q.status,
					     "MalformedXML",
					     "POST %s?uploads: no UploadId in the answer", what);
	}
	if (r < 0) {
		if (r == -ENOMEM)
			sl_objstore_fail(err, r, 0, "ENOMEM", "PUT %s: out of memory", what);
		goto out;
	}

	/* 2. UploadPart: PUT ?partNumber=N&uploadId=ID (sorted by name: canonical). */
	for (size_t i = 0; i < nparts; i++) {
		size_t off = (size_t)(i * part);
		size_t n = len - off < part ? len - off : (size_t)part;
		char num[24];
		snprintf(num, sizeof(num), "%zu", i + 1);
		sl_buf_reset(&query);
		if (put_str(&query, "partNumber=") < 0 || put_str(&query, num) < 0 ||
		    put_str(&query, "&uploadId=") < 0 ||
		    put_encoded(&query, upload_id, strlen(upload_id), false) < 0 ||
		    put_nul(&query) < 0 ||
		    object_url(s, key, (const char *)query.data, &url, &w) < 0) {
			r = sl_objstore_fail(err, -ENOMEM, 0, "ENOMEM", "PUT %s: out of memory",
					     what);
			goto abort;
		}
		struct req q = {.s = s,
				.method = "PUT",
				.what = (const char *)w.data,
				.url = (const char *)url.data,
				.body = data + off,
				.body_len = n};
		r = perform(&q, err);
		if (r < 0)
			goto abort;
		if (!etag_safe(q.etag)) {
			r = sl_objstore_fail(err, SLUICE_ERR_PROTOCOL, (int)q.status, "MissingETag",
					     "PUT %s part %zu: no usable ETag in the answer", what,
					     i + 1);
			goto abort;
		}
		memcpy(etags[i], q.etag, sizeof(etags[i]));
	}

	/* 3. CompleteMultipartUpload: POST ?uploadId=ID with the part list. */
	r = put_str(&body, "<CompleteMultipartUpload>");
	for (size_t i = 0; r == 0 && i < nparts; i++) {
		char line[64 + ETAG_LEN_MAX];
		snprintf(line, sizeof(line),
			 "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>", i + 1,
			 etags[i]);
		r = put_str(&body, line);
	}
	sl_buf_reset(&query);
	if (r == 0)
		r = put_str(&body, "</CompleteMultipartUpload>");
	if (r == 0 &&
	    (put_str(&query, "uploadId=") < 0 ||
	     put_encoded(&query, upload_id, strlen(upload_id), false) < 0 || put_nul(&query) < 0 ||
	     object_url(s, key, (const char *)query.data, &url, &w) < 0))
		r = -ENOMEM;
	if (r < 0) {
		r = sl_objstore_fail(err, -ENOMEM, 0, "ENOMEM", "PUT %s: out of memory", what);
		goto abort;
	}
	struct req q = {.s = s,
			.method = "POST",
			.what = what,
			.url = (const char *)url.data,
			.body = body.data,
			.body_len = body.len,
			.content_type = "application/xml"};
	r = perform(&q, err);
	if (r == 0) {
		/* S3 may answer 200 and still fail: the error is then the XML body. */
		xmlDocPtr doc = xml_parse(&s->resp);
		xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
		if (!root ||
		    strcmp((const char *)root->name, "CompleteMultipartUploadResult") != 0) {
			q.status = 500;
			if (doc)
				xmlFreeDoc(doc);
			r = http_fail(&q, err);
			goto abort;
		}
		xmlFreeDoc(doc);
		goto out;
	}
abort:
	abort_upload(s, key, upload_id);
out:
	free(etags);
	sl_buf_finish(&url);
	sl_buf_finish(&w);
	sl_buf_finish(&query);
	sl_buf_finish(&body);
	return r;
}

static int s3_put(struct sl_objstore *base, const char *key, const void *data, size_t len,
		  struct sl_objstore_error *err)
{
	struct s3_store *s = (struct s3_store *)base;
	struct sl_buf url, what;
	sl_buf_init(&url);
	sl_buf_init(&what);
	int r = object_url(s, key, NULL, &url, &what);
	if (r < 0)
		r = sl_objstore_fail(err, r, 0, "ENOMEM", "PUT %s: out of memory", key);
	else if (len > s->threshold)
		r = put_multipart(s, key, (const char *)what.data, data, len, err);
	else
		r = put_single(s, (const char *)url.data, (const char *)what.data, data, len, err);
	sl_buf_finish(&url);
	sl_buf_finish(&what);
	return r;
}

static int s3_get(struct sl_objstore *base, const char *key, struct sl_buf *out,
		  struct sl_objstore_error *err)
{
	struct s3_store *s = (struct s3_store *)base;
	struct sl_buf url, what;
	sl_buf_init(&url);
	sl_buf_init(&what);
	int r = object_url(s, key, NULL, &url, &what);
	if (r < 0) {
		r = sl_objstore_fail(err, r, 0, "ENOMEM", "GET %s: out of memory", key);
	} else {
		struct req q = {.s = s,
				.method = "GET",
				.what = (const char *)what.data,
				.url = (const char *)url.data,
				.sink = out,
				.sink_max = SL_OBJSTORE_GET_BYTES_MAX};
		r = perform(&q, err);
		if (r < 0)
			sl_buf_reset(out);
	}
	sl_buf_finish(&url);
	sl_buf_finish(&what);
	return r;
}

static int s3_delete(struct sl_objstore *base, const char *key, struct sl_objstore_error *err)
{
	struct s3_store *s = (struct s3_store *)base;
	struct sl_buf url, what;
	sl_buf_init(&url);
	sl_buf_init(&what);
	int r = object_url(s, key, NULL, &url, &what);
	if (r < 0) {
		r = sl_objstore_fail(err, r, 0, "ENOMEM", "DELETE %s: out of memory", key);
	} else {
		struct req q = {.s = s,
				.method = "DELETE",
				.what = (const char *)what.data,
				.url = (const char *)url.data};
		struct sl_objstore_error e;
		r = perform(&q, &e);
		if (r == -ENOENT && strcmp(e.code, "NoSuchBucket") != 0)
			r = 0; /* already gone; S3 itself answers 204 */
		if (r < 0 && err)
			*err = e;
	}
	sl_buf_finish(&url);
	sl_buf_finish(&what);
	return r;
}

/* One ListObjectsV2 page from s->resp: calls fn, fills the continuation token. */
static int list_page(struct s3_store *s, const char *what, size_t strip, sl_objstore_list_fn fn,
		     void *ctx, uint64_t *count, struct sl_buf *token, bool *ret_more,
		     struct sl_objstore_error *err)
{
	xmlDocPtr doc = xml_parse(&s->resp);
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	int r = 0;
	if (!root || strcmp((const char *)root->name, "ListBucketResult") != 0) {
		r = sl_objstore_fail(err, SLUICE_ERR_PROTOCOL, 200, "MalformedXML",
				     "GET %s: not a ListBucketResult", what);
		goto out;
	}
	char trunc[16];
	xml_text(root, "IsTruncated", trunc, sizeof(trunc));
	*ret_more = strcmp(trunc, "true") == 0;
	for (xmlNodePtr c = root->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "Contents") != 0)
			continue;
		xmlNodePtr kn = xml_child(c, "Key");
		xmlChar *k = kn ? xmlNodeGetContent(kn) : NULL;
		char size_text[32];
		xml_text(c, "Size", size_text, sizeof(size_text));
		char *end = NULL;
		errno = 0;
		unsigned long long size = strtoull(size_text, &end, 10);
		if (!k || !size_text[0] || *end || errno || size_text[0] == '-') {
			if (k)
				xmlFree(k);
			r = sl_objstore_fail(err, SLUICE_ERR_PROTOCOL, 200, "MalformedXML",
					     "GET %s: a Contents without Key or Size", what);
			goto out;
		}
		/* Keys outside our prefix (cannot happen with a correct server) are skipped. */
		if (strlen((const char *)k) > strip) {
			(*count)++;
			r = fn((const char *)k + strip, size, ctx);
		}
		xmlFree(k);
		if (r != 0)
			goto out;
	}
	sl_buf_reset(token);
	if (*ret_more) {
		xmlNodePtr tn = xml_child(root, "NextContinuationToken");
		xmlChar *t = tn ? xmlNodeGetContent(tn) : NULL;
		if (!t || !t[0] || put_str(token, (const char *)t) < 0 || put_nul(token) < 0) {
			r = sl_objstore_fail(err, SLUICE_ERR_PROTOCOL, 200, "MalformedXML",
					     "GET %s: truncated listing without a token", what);
		}
		if (t)
			xmlFree(t);
	}
out:
	if (doc)
		xmlFreeDoc(doc);
	return r;
}

static int s3_list(struct sl_objstore *base, const char *prefix, sl_objstore_list_fn fn, void *ctx,
		   struct sl_objstore_error *err)
{
	struct s3_store *s = (struct s3_store *)base;
	struct sl_buf full, url, token, what;
	sl_buf_init(&full);
	sl_buf_init(&url);
	sl_buf_init(&token);
	sl_buf_init(&what);
	uint64_t count = 0;
	size_t strip = s->prefix[0] ? strlen(s->prefix) + 1 : 0;
	int r = 0;
	if ((s->prefix[0] && (put_str(&full, s->prefix) < 0 || put_str(&full, "/") < 0)) ||
	    put_str(&full, prefix) < 0 || put_nul(&full) < 0 || put_str(&what, "s3://") < 0 ||
	    put_str(&what, s->bucket) < 0 || put_str(&what, "/") < 0 ||
	    put_str(&what, (const char *)full.data) < 0 || put_nul(&what) < 0)
		r = sl_objstore_fail(err, -ENOMEM, 0, "ENOMEM", "list: out of memory");
	bool more = true;
	while (r == 0 && more) {
		/* Query parameters sorted by name: the query is then canonical for SigV4. */
		char num[24];
		snprintf(num, sizeof(num), "%" PRIu32, s->list_max_keys);
		sl_buf_reset(&url);
		if (put_str(&url, s->base_url) < 0 || (!s->path_style && put_str(&url, "/") < 0) ||
		    put_str(&url, "?") < 0 ||
		    (token.len &&
		     (put_str(&url, "continuation-token=") < 0 ||
		      put_encoded(&url, (const char *)token.data, token.len, false) < 0 ||
		      put_str(&url, "&") < 0)) ||
		    put_str(&url, "list-type=2&max-keys=") < 0 || put_str(&url, num) < 0 ||
		    put_str(&url, "&prefix=") < 0 ||
		    put_encoded(&url, (const char *)full.data, full.len, false) < 0 ||
		    put_nul(&url) < 0) {
			r = sl_objstore_fail(err, -ENOMEM, 0, "ENOMEM", "list: out of memory");
			break;
		}
		struct req q = {.s = s,
				.method = "GET",
				.what = (const char *)what.data,
				.url = (const char *)url.data};
		r = perform(&q, err);
		if (r == 0)
			r = list_page(s, (const char *)what.data, strip, fn, ctx, &count, &token,
				      &more, err);
	}
	sl_buf_finish(&full);
	sl_buf_finish(&url);
	sl_buf_finish(&token);
	sl_buf_finish(&what);
	if (r != 0)
		return r;
	return count > INT32_MAX ? INT32_MAX : (int)count;
}

static void s3_destroy(struct sl_objstore *base)
{
	struct s3_store *s = (struct s3_store *)base;
	if (s->curl)
		curl_easy_cleanup(s->curl);
	free(s->bucket);
	free(s->prefix);
	free(s->base_url);
	free(s->sigv4);
	if (s->userpwd) {
		explicit_bzero(s->userpwd, strlen(s->userpwd));
		free(s->userpwd);
	}
	if (s->token_hdr) {
		explicit_bzero(s->token_hdr, strlen(s->token_hdr));
		free(s->token_hdr);
	}
	sl_buf_finish(&s->resp);
	free(s);
}

static const struct sl_objstore_ops s3_ops = {
    .put = s3_put,
    .get = s3_get,
    .list = s3_list,
    .del = s3_delete,
    .destroy = s3_destroy,
};

/* ---- credentials ---- */

struct creds {
	char key[CRED_LEN_MAX];
	char secret[CRED_LEN_MAX];
	char token[CRED_LEN_MAX * 2];
};

static char *trim(char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	size_t n = strlen(p);
	while (n > 0 &&
	       (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
		p[--n] = '\0';
	return p;
}

/*
 * The AWS shared-credentials file: INI sections "[profile]" with aws_access_key_id,
 * aws_secret_access_key, aws_session_token. 0, -ENOENT (no file / no such profile), -errno.
 */
static int read_credentials_file(const char *path, const char *profile, struct creds *c)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	char line[CRED_LEN_MAX * 2 + 64];
	bool in = false, found = false;
	size_t total = 0;
	while (fgets(line, sizeof(line), f)) {
		total += strlen(line);
		if (total > CREDENTIALS_FILE_BYTES_MAX)
			break;
		char *p = trim(line);
		if (!*p || *p == '#' || *p == ';')
			continue;
		if (*p == '[') {
			char *e = strchr(p, ']');
			if (e)
				*e = '\0';
			in = strcmp(trim(p + 1), profile) == 0;
			found |= in;
			continue;
		}
		char *eq = strchr(p, '=');
		if (!in || !eq)
			continue;
		*eq = '\0';
		char *k = trim(p), *v = trim(eq + 1);
		if (strcmp(k, "aws_access_key_id") == 0)
			snprintf(c->key, sizeof(c->key), "%s", v);
		else if (strcmp(k, "aws_secret_access_key") == 0)
			snprintf(c->secret, sizeof(c->secret), "%s", v);
		else if (strcmp(k, "aws_session_token") == 0)
			snprintf(c->token, sizeof(c->token), "%s", v);
	}
	explicit_bzero(line, sizeof(line));
	fclose(f);
	return found && c->key[0] && c->secret[0] ? 0 : -ENOENT;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && v[0] ? v : NULL;
}

static int resolve_creds(const struct sl_objstore_options *opt, struct creds *c,
			 struct sl_objstore_error *err)
{
	memset(c, 0, sizeof(*c));
	const char *profile = opt->profile ? opt->profile : env("AWS_PROFILE");
	if (!profile)
		profile = "default";
	if (opt->access_key_id || opt->secret_access_key) {
		if (!opt->access_key_id || !opt->secret_access_key)
			return sl_objstore_fail(err, SLUICE_ERR_UNAUTHORIZED, 0, "NoCredentials",
						"give both an access key id and a secret");
		snprintf(c->key, sizeof(c->key), "%s", opt->access_key_id);
		snprintf(c->secret, sizeof(c->secret), "%s", opt->secret_access_key);
		if (opt->session_token)
			snprintf(c->token, sizeof(c->token), "%s", opt->session_token);
		return 0;
	}
	if (opt->credentials_file) {
		int r = read_credentials_file(opt->credentials_file, profile, c);
		if (r < 0)
			return sl_objstore_fail(err, SLUICE_ERR_UNAUTHORIZED, 0, "NoCredentials",
						"%.200s: no credentials for profile %.64s (%s)",
						opt->credentials_file, profile, strerror(-r));
		return 0;
	}
	if (env("AWS_ACCESS_KEY_ID") && env("AWS_SECRET_ACCESS_KEY")) {
		snprintf(c->key, sizeof(c->key), "%s", env("AWS_ACCESS_KEY_ID"));
		snprintf(c->secret, sizeof(c->secret), "%s", env("AWS_SECRET_ACCESS_KEY"));
		if (env("AWS_SESSION_TOKEN"))
			snprintf(c->token, sizeof(c->token), "%s", env("AWS_SESSION_TOKEN"));
		return 0;
	}
	char path[4096];
	if (env("AWS_SHARED_CREDENTIALS_FILE"))
		snprintf(path, sizeof(path), "%s", env("AWS_SHARED_CREDENTIALS_FILE"));
	else if (env("HOME"))
		snprintf(path, sizeof(path), "%s/.aws/credentials", env("HOME"));
	else
		path[0] = '\0';
	if (path[0] && read_credentials_file(path, profile, c) == 0)
		return 0;
	return sl_objstore_fail(err, SLUICE_ERR_UNAUTHORIZED, 0, "NoCredentials",
				"no S3 credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
				"or give a credentials file");
}

/* ---- create ---- */

static bool bucket_valid(const char *b, size_t len)
{
	if (len < 3 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = b[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		      c == '_' || (c >= 'A' && c <= 'Z')))
			return false;
	}
	return true;
}

static bool header_value_ok(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return false;
	return true;
}

static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dup_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = NULL;
	if (vasprintf(&p, fmt, ap) < 0)
		p = NULL;
	va_end(ap);
	return p;
}

int sl_objstore_s3_create(const char *rest, const struct sl_objstore_options *opt,
			  struct sl_objstore **ret, struct sl_objstore_error *err)
{
	pthread_once(&g_once, global_init);
	if (g_init_rc < 0)
		return sl_objstore_fail(err, g_init_rc, 0, "InitFailed",
					"libcurl global initialisation failed");

	const char *slash = strchr(rest, '/');
	size_t blen = slash ? (size_t)(slash - rest) : strlen(rest);
	const char *prefix = slash ? slash + 1 : "";
	size_t plen = strlen(prefix);
	while (plen > 0 && prefix[plen - 1] == '/')
		plen--;
	if (!bucket_valid(rest, blen))
		return sl_objstore_fail(err, SLUICE_ERR_INVALID_ARGUMENT, 0, "InvalidBucketName",
					"s3://%.200s: bad bucket name", rest);
	if (plen > 0) {
		/* The prefix follows the key rules (it is the head of every key). */
		char tmp[SL_OBJSTORE_KEY_LEN_MAX + 1];
		if (plen > SL_OBJSTORE_KEY_LEN_MAX / 2)
			return sl_objstore_fail(err, SLUICE_ERR_INVALID_ARGUMENT, 0, "InvalidURL",
						"s3://%.200s: prefix too long", rest);
		memcpy(tmp, prefix, plen);
		tmp[plen] = '\0';
		if (!sl_objstore_key_valid(tmp))
			return sl_objstore_fail(err, SLUICE_ERR_INVALID_ARGUMENT, 0, "InvalidURL",
						"s3://%.200s: bad prefix", rest);
	}
	const char *region = opt->region ? opt->region : env("AWS_REGION");
	if (!region)
		region = env("AWS_DEFAULT_REGION");
	if (!region)
		region = "us-east-1";
	for (const char *p = region; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return sl_objstore_fail(err, SLUICE_ERR_INVALID_ARGUMENT, 0,
						"InvalidRegion", "bad region \"%.64s\"", region);
	if (!region[0] || strlen(region) > 32)
		return sl_objstore_fail(err, SLUICE_ERR_INVALID_ARGUMENT, 0, "InvalidRegion",
					"bad region");
	if (opt->endpoint && strncmp(opt->endpoint, "http://", 7) != 0 &&
	    strncmp(opt->endpoint, "https://", 8) != 0)
		return sl_objstore_fail(err, SLUICE_ERR_INVALID_ARGUMENT, 0, "InvalidEndpoint",
					"endpoint %.200s: want http://HOST[:PORT] or https://...",
					opt->endpoint);
	if (opt->endpoint && (!header_value_ok(opt->endpoint) || strchr(opt->endpoint, '?') ||
			      strchr(opt->endpoint, '#')))
		return sl_objstore_fail(err, SLUICE_ERR_INVALID_ARGUMENT, 0, "InvalidEndpoint",
					"bad endpoint");
	uint64_t part =
	    opt->part_size_bytes ? opt->part_size_bytes : SL_OBJSTORE_PART_BYTES_DEFAULT;
	uint64_t threshold = opt->multipart_threshold_bytes
				 ? opt->multipart_threshold_bytes
				 : SL_OBJSTORE_MULTIPART_THRESHOLD_DEFAULT;
	if (part < SL_OBJSTORE_PART_BYTES_MIN || part > PART_BYTES_MAX || threshold < part)
		return sl_objstore_fail(err, SLUICE_ERR_INVALID_ARGUMENT, 0, "InvalidArgument",
					"part size must be 5 MiB..5 GiB and at most the multipart "
					"threshold");
	if (opt->list_max_keys > LIST_MAX_KEYS || opt->connect_timeout_ms < 0 ||
	    opt->timeout_ms < 0)
		return sl_objstore_fail(err, SLUICE_ERR_INVALID_ARGUMENT, 0, "InvalidArgument",
					"list_max_keys over 1000 or a negative timeout");

	struct creds c;
	int r = resolve_creds(opt, &c, err);
	if (r < 0)
		return r;
	if (strchr(c.key, ':') || !header_value_ok(c.key) || !header_value_ok(c.secret) ||
	    !header_value_ok(c.token)) {
		explicit_bzero(&c, sizeof(c));
		return sl_objstore_fail(err, SLUICE_ERR_UNAUTHORIZED, 0, "InvalidCredentials",
					"credentials contain control characters or ':'");
	}

	struct s3_store *s = calloc(1, sizeof(*s));
	if (!s) {
		explicit_bzero(&c, sizeof(c));
		return sl_objstore_fail(err, -ENOMEM, 0, "ENOMEM", "out of memory");
	}
	s->base.ops = &s3_ops;
	sl_buf_init(&s->resp);
	s->connect_timeout_ms =
	    (long)(opt->connect_timeout_ms ? opt->connect_timeout_ms : CONNECT_TIMEOUT_MS_DEFAULT);
	s->timeout_ms = (long)(opt->timeout_ms ? opt->timeout_ms : TIMEOUT_MS_DEFAULT);
	s->part_bytes = part;
	s->threshold = threshold;
	s->list_max_keys = opt->list_max_keys ? opt->list_max_keys : LIST_MAX_KEYS;
	s->bucket = strndup(rest, blen);
	s->prefix = strndup(prefix, plen);
	s->sigv4 = dup_printf("aws:amz:%s:s3", region);
	s->userpwd = dup_printf("%s:%s", c.key, c.secret);
	bool want_token = c.token[0] != '\0';
	if (want_token)
		s->token_hdr = dup_printf("x-amz-security-token: %s", c.token);
	explicit_bzero(&c, sizeof(c));
	bool dotted = s->bucket && strchr(s->bucket, '.');
	s->path_style = opt->endpoint || dotted;
	if (!s->bucket) {
		/* falls through to the check below */
	} else if (opt->endpoint) {
		size_t elen = strlen(opt->endpoint);
		while (elen > 0 && opt->endpoint[elen - 1] == '/')
			elen--;
		s->base_url = dup_printf("%.*s/%s", (int)elen, opt->endpoint, s->bucket);
	} else if (dotted) {
		s->base_url = dup_printf("https://s3.%s.amazonaws.com/%s", region, s->bucket);
	} else {
		s->base_url = dup_printf("https://%s.s3.%s.amazonaws.com", s->bucket, region);
	}
	s->curl = curl_easy_init();
	if (!s->bucket || !s->prefix || !s->sigv4 || !s->userpwd || (want_token && !s->token_hdr) ||
	    !s->base_url || !s->curl) {
		s3_destroy(&s->base);
		return sl_objstore_fail(err, -ENOMEM, 0, "ENOMEM", "out of memory");
	}
	*ret = &s->base;
	return 0;
}
