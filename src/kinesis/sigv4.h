/*
 * AWS Signature Version 4 verification of an HTTP request (the Kinesis API's authentication),
 * pure: no I/O, the clock is a parameter. It checks what AWS checks for a JSON API: the
 * Authorization header's shape, the credential scope's date against X-Amz-Date, the clock skew
 * (15 minutes), the access key, and the signature over the canonical request (method, path,
 * query, the signed headers, the SHA-256 of the body).
 */
#ifndef SL_KINESIS_SIGV4_H
#define SL_KINESIS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* AWS refuses a request signed more than 15 minutes away from its clock. */
#define KIN_SIGV4_SKEW_MS (15 * 60 * 1000)

struct kin_header {
	const char *name; /* lower case (HTTP/2 already is; HTTP/1.1 names are lowered) */
	size_t name_len;
	const char *value;
	size_t value_len;
};

struct kin_request {
	const char *method;
	const char *path; /* with the query string, if any */
	const struct kin_header *headers;
	size_t nheaders; /* HTTP/2: ":authority", and a copy named "host" */
	const uint8_t *body;
	size_t body_len;
};

/* The secret of an access key id (NUL-terminated), or NULL when the key is unknown. */
typedef const char *(*kin_secret_fn)(void *ctx, const char *access_key_id);

enum kin_sigv4_result {
	KIN_SIGV4_OK = 0,
	KIN_SIGV4_MISSING = -1,	      /* no Authorization header: MissingAuthenticationToken */
	KIN_SIGV4_MALFORMED = -2,     /* not an AWS4-HMAC-SHA256 header we can read */
	KIN_SIGV4_UNKNOWN_KEY = -3,   /* UnrecognizedClient */
	KIN_SIGV4_EXPIRED = -4,	      /* X-Amz-Date too far from now */
	KIN_SIGV4_BAD_SIGNATURE = -5, /* InvalidSignature */
};

/* Verify req. msg (msg_len > 0) gets a sentence for the error reply. */
int kin_sigv4_verify(const struct kin_request *req, kin_secret_fn secret, void *ctx, int64_t now_ms,
		     char *msg, size_t msg_len);

/* The same header lookup the verifier uses: first header named name (lower case), or NULL. */
const struct kin_header *kin_request_header(const struct kin_request *req, const char *name);

#endif
