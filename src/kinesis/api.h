/*
 * The Kinesis Data Streams JSON API (awsJson1_1), independent of HTTP: a request is the
 * X-Amz-Target header's value and the body; the reply is an HTTP status, a JSON body and a
 * request id. Each operation becomes calls to libsluice over the session's own connection to
 * sluiced's native listener, so records and streams are the same through either protocol.
 *
 * Threads: one struct kin_api is shared (read-only after create); a struct kin_session belongs
 * to one thread at a time (the thread serving one HTTP connection), like its sluice_client.
 */
#ifndef SL_KINESIS_API_H
#define SL_KINESIS_API_H

#include "common/buf.h"
#include "kinesis/iterator.h"
#include "kinesis/sigv4.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sluice_client;

/* Kinesis: PutRecords takes 5 MiB of data, base64 grows it by 4/3, plus keys and JSON. */
#define KIN_BODY_BYTES_MAX (10u << 20)
/* Kinesis names the target prefix after the API version. */
#define KIN_TARGET_PREFIX "Kinesis_20131202."
/* The account shown in ARNs and messages: sluice has no accounts. */
#define KIN_ACCOUNT "000000000000"
#define KIN_ARN_PREFIX "arn:aws:kinesis:us-east-1:" KIN_ACCOUNT ":stream/"
#define KIN_REQUEST_ID_BUF 37

struct kin_api_config {
	const char *native_addr; /* host:port of sluiced's native listener; copied */
	const char *auth_token;	 /* for AUTH on the native connections, NULL for none; copied */
	/* Answer PutRecord(s) with ProvisionedThroughputExceededException when the server throttles
	 * (Kinesis' per-shard limits); otherwise throttling is retried inside the gateway. */
	bool shard_limits;
	/*
	 * SigV4 verification, off when both are NULL. access_keys_path: a file of
	 * "ACCESS_KEY_ID SECRET_ACCESS_KEY" lines (# comments); any_key_secret: the secret of every
	 * access key id not in that file (sluiced passes its --auth-token-file token). Copied.
	 */
	const char *access_keys_path;
	const char *any_key_secret;
};

/* Access keys read from a file: enough for a team's services, small enough to scan. */
#define KIN_ACCESS_KEYS_MAX 1024
#define KIN_ACCESS_KEYS_FILE_BYTES_MAX (1u << 20)

struct kin_access_key {
	char *id;
	char *secret;
};

struct kin_limits;

struct kin_api {
	char native_addr[256];
	struct kin_limits *limits; /* per-shard limits (limits.h), NULL when off */
	char *auth_token;
	bool shard_limits;
	bool verify; /* SigV4 */
	char *any_key_secret;
	struct kin_access_key *keys;
	size_t nkeys;
	uint8_t iterator_key[KIN_ITERATOR_KEY_BYTES];
};

struct kin_session {
	struct kin_api *api;
	struct sluice_client *client; /* connected on first use, reconnected by libsluice */
};

struct kin_reply {
	int status; /* HTTP status */
	struct sl_buf body;
	char request_id[KIN_REQUEST_ID_BUF];
};

/* -EINVAL with a message in err (err_len > 0) for an unreadable or malformed access keys file. */
int kin_api_create(const struct kin_api_config *cfg, struct kin_api **ret, char *err,
		   size_t err_len);
void kin_api_destroy(struct kin_api *api);

void kin_session_init(struct kin_session *s, struct kin_api *api);
void kin_session_finish(struct kin_session *s);

void kin_reply_init(struct kin_reply *r);
void kin_reply_finish(struct kin_reply *r);

/*
 * Run one request. target is X-Amz-Target (may be NULL), body the JSON text. Always fills
 * reply (status 200 with the result, 400 with a Kinesis error, 500 for internal failures) and a
 * fresh request id. reply must be initialized; its old content is replaced.
 */
void kin_handle(struct kin_session *s, const char *target, size_t target_len, const uint8_t *body,
		size_t body_len, struct kin_reply *reply);

/* A whole HTTP request (POST /): SigV4 first when the API verifies it, then kin_handle with
 * its X-Amz-Target. */
void kin_handle_request(struct kin_session *s, const struct kin_request *req,
			struct kin_reply *reply);

#endif
