/* SigV4 verification (see sigv4.h; the algorithm is AWS' "Signature Version 4 signing process"). */
#include "kinesis/sigv4.h"

#include "common/buf.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIGNED_HEADERS_MAX 32

const struct kin_header *kin_request_header(const struct kin_request *req, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < req->nheaders; i++)
		if (req->headers[i].name_len == n && memcmp(req->headers[i].name, name, n) == 0)
			return &req->headers[i];
	return NULL;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = 0;
}

static void hmac(const void *key, size_t key_len, const void *data, size_t len, uint8_t out[32])
{
	unsigned int n = 32;
	HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n);
}

/* "Credential=AKID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=hex" */
struct auth {
	char credential[256];
	char signed_headers[1024];
	char signature[65];
};

static bool parse_auth(const char *v, size_t len, struct auth *a)
{
	static const char alg[] = "AWS4-HMAC-SHA256 ";
	if (len < sizeof(alg) - 1 || memcmp(v, alg, sizeof(alg) - 1) != 0)
		return false;
	memset(a, 0, sizeof(*a));
	const char *p = v + sizeof(alg) - 1, *end = v + len;
	while (p < end) {
		while (p < end && (*p == ' ' || *p == ','))
			p++;
		const char *eq = memchr(p, '=', (size_t)(end - p));
		if (!eq)
			break;
		const char *val = eq + 1, *stop = memchr(val, ',', (size_t)(end - val));
		if (!stop)
			stop = end;
		size_t klen = (size_t)(eq - p), vlen = (size_t)(stop - val);
		char *dst = NULL;
		size_t cap = 0;
		if (klen == 10 && memcmp(p, "Credential", 10) == 0)
			dst = a->credential, cap = sizeof(a->credential);
		else if (klen == 13 && memcmp(p, "SignedHeaders", 13) == 0)
			dst = a->signed_headers, cap = sizeof(a->signed_headers);
		else if (klen == 9 && memcmp(p, "Signature", 9) == 0)
			dst = a->signature, cap = sizeof(a->signature);
		if (dst) {
			if (vlen >= cap)
				return false;
			memcpy(dst, val, vlen);
			dst[vlen] = 0;
		}
		p = stop;
	}
	return a->credential[0] && a->signed_headers[0] && strlen(a->signature) == 64;
}

/* X-Amz-Date "YYYYMMDDTHHMMSSZ" as Unix ms, or -1. */
static int64_t amz_date_ms(const char *v, size_t len)
{
	if (len != 16 || v[8] != 'T' || v[15] != 'Z')
		return -1;
	struct tm tm = {0};
	char buf[17];
	memcpy(buf, v, 16);
	buf[16] = 0;
	if (sscanf(buf, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec) != 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	return t < 0 ? -1 : (int64_t)t * 1000;
}

/* Header value trimmed, inner runs of spaces collapsed to one (SigV4's canonical form). */
static int put_trimmed(struct sl_buf *b, const char *v, size_t len)
{
	while (len && (*v == ' ' || *v == '\t'))
		v++, len--;
	while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	bool space = false;
	for (size_t i = 0; i < len; i++) {
		bool sp = v[i] == ' ' || v[i] == '\t';
		if (sp && space)
			continue;
		space = sp;
		if (sl_buf_put(b, sp ? " " : &v[i], 1) < 0)
			return -1;
	}
	return 0;
}

/* The canonical query string: parameters sorted by name (the Kinesis API sends none). */
static int cmp_param(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int put_query(struct sl_buf *b, const char *q)
{
	if (!q || !*q)
		return 0;
	char *copy = strdup(q), *params[64], *save = NULL;
	if (!copy)
		return -1;
	size_t n = 0;
	for (char *t = strtok_r(copy, "&", &save); t && n < 64; t = strtok_r(NULL, "&", &save))
		params[n++] = t;
	qsort(params, n, sizeof(*params), cmp_param);
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		r = i ? sl_buf_put(b, "&", 1) : 0;
		r = r ?: sl_buf_put(b, params[i], strlen(params[i]));
		if (r == 0 && !strchr(params[i], '='))
			r = sl_buf_put(b, "=", 1);
	}
	free(copy);
	return r;
}

int kin_sigv4_verify(const struct kin_request *req, kin_secret_fn secret_of, void *ctx,
		     int64_t now_ms, char *msg, size_t msg_len)
{
	const struct kin_header *auth_h = kin_request_header(req, "authorization");
	if (!auth_h) {
		snprintf(msg, msg_len, "Missing Authentication Token");
		return KIN_SIGV4_MISSING;
	}
	struct auth a;
	if (!parse_auth(auth_h->value, auth_h->value_len, &a)) {
		snprintf(msg, msg_len,
			 "Authorization header requires 'Credential', 'Signature' and "
			 "'SignedHeaders' parameters (AWS4-HMAC-SHA256).");
		return KIN_SIGV4_MALFORMED;
	}
	/* Credential = AKID/DATE/REGION/SERVICE/aws4_request */
	char *parts[5], cred[256];
	memcpy(cred, a.credential, sizeof(cred));
	size_t np = 0;
	char *save = NULL;
	for (char *t = strtok_r(cred, "/", &save); t && np < 5; t = strtok_r(NULL, "/", &save))
		parts[np++] = t;
	if (np != 5 || strlen(parts[1]) != 8 || strcmp(parts[4], "aws4_request") != 0) {
		snprintf(msg, msg_len,
			 "Credential should be scoped to a valid region and service.");
		return KIN_SIGV4_MALFORMED;
	}
	const struct kin_header *date_h = kin_request_header(req, "x-amz-date");
	int64_t signed_ms = date_h ? amz_date_ms(date_h->value, date_h->value_len) : -1;
	if (signed_ms < 0 || memcmp(date_h->value, parts[1], 8) != 0) {
		snprintf(msg, msg_len,
			 "X-Amz-Date is missing, malformed or not the credential's date.");
		return KIN_SIGV4_MALFORMED;
	}
	if (signed_ms > now_ms + KIN_SIGV4_SKEW_MS || signed_ms < now_ms - KIN_SIGV4_SKEW_MS) {
		snprintf(
		    msg, msg_len,
		    "Signature expired: %.16s is now earlier or later than the server's time by "
		    "more than 15 minutes.",
		    date_h->value);
		return KIN_SIGV4_EXPIRED;
	}
	const char *secret = secret_of(ctx, parts[0]);
	if (!secret) {
		snprintf(msg, msg_len, "The security token included in the request is invalid.");
		return KIN_SIGV4_UNKNOWN_KEY;
	}

	/* The canonical request. */
	struct sl_buf cr;
	sl_buf_init(&cr);
	const char *path = req->path && *req->path ? req->path : "/";
	const char *qm = strchr(path, '?');
	size_t path_len = qm ? (size_t)(qm - path) : strlen(path);
	int r = sl_buf_put(&cr, req->method, strlen(req->method));
	r = r ?: sl_buf_put(&cr, "\n", 1);
	r = r ?: sl_buf_put(&cr, path, path_len);
	r = r ?: sl_buf_put(&cr, "\n", 1);
	r = r ?: put_query(&cr, qm ? qm + 1 : NULL);
	r = r ?: sl_buf_put(&cr, "\n", 1);
	char names[sizeof(a.signed_headers)];
	memcpy(names, a.signed_headers, sizeof(names));
	size_t nsigned = 0;
	save = NULL;
	for (char *t = strtok_r(names, ";", &save); t && r == 0; t = strtok_r(NULL, ";", &save)) {
		if (++nsigned > SIGNED_HEADERS_MAX)
			break;
		r = sl_buf_put(&cr, t, strlen(t));
		r = r ?: sl_buf_put(&cr, ":", 1);
		bool first = true;
		for (size_t i = 0; r == 0 && i < req->nheaders; i++) {
			const struct kin_header *h = &req->headers[i];
			if (h->name_len != strlen(t) || memcmp(h->name, t, h->name_len) != 0)
				continue;
			r = first ? 0 : sl_buf_put(&cr, ",", 1);
			r = r ?: put_trimmed(&cr, h->value, h->value_len);
			first = false;
		}
		r = r ?: sl_buf_put(&cr, "\n", 1);
	}
	r = r ?: sl_buf_put(&cr, "\n", 1);
	r = r ?: sl_buf_put(&cr, a.signed_headers, strlen(a.signed_headers));
	r = r ?: sl_buf_put(&cr, "\n", 1);
	uint8_t digest[32];
	char digest_hex[65];
	SHA256(req->body ? req->body : (const uint8_t *)"", req->body_len, digest);
	hex(digest, 32, digest_hex);
	r = r ?: sl_buf_put(&cr, digest_hex, 64);
	if (r < 0 || nsigned > SIGNED_HEADERS_MAX) {
		sl_buf_finish(&cr);
		snprintf(msg, msg_len, "The request could not be canonicalized.");
		return KIN_SIGV4_MALFORMED;
	}
	SHA256(cr.data, cr.len, digest);
	sl_buf_finish(&cr);
	hex(digest, 32, digest_hex);

	char sts[512];
	int sts_len =
	    snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%.16s\n%s/%s/%s/aws4_request\n%s",
		     date_h->value, parts[1], parts[2], parts[3], digest_hex);
	char kkey[300];
	int klen = snprintf(kkey, sizeof(kkey), "AWS4%s", secret);
	uint8_t k[32], sig[32];
	hmac(kkey, (size_t)klen, parts[1], 8, k);
	OPENSSL_cleanse(kkey, sizeof(kkey));
	hmac(k, 32, parts[2], strlen(parts[2]), k);
	hmac(k, 32, parts[3], strlen(parts[3]), k);
	hmac(k, 32, "aws4_request", 12, k);
	hmac(k, 32, sts, (size_t)sts_len, sig);
	char sig_hex[65];
	hex(sig, 32, sig_hex);
	if (CRYPTO_memcmp(sig_hex, a.signature, 64) != 0) {
		snprintf(
		    msg, msg_len,
		    "The request signature we calculated does not match the signature you "
		    "provided. Check your AWS Secret Access Key and signing method. Consult the "
		    "service documentation for details.");
		return KIN_SIGV4_BAD_SIGNATURE;
	}
	return KIN_SIGV4_OK;
}
