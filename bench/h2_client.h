/* A minimal HTTP/2 prior-knowledge client for the benchmark (see h2_client.c). */
#ifndef SLUICE_BENCH_H2_CLIENT_H
#define SLUICE_BENCH_H2_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct h2c_header {
	const char *name; /* lower case */
	const char *value;
};

struct h2c_config {
	uint16_t port;			  /* on 127.0.0.1 */
	const char *authority;		  /* "127.0.0.1:PORT" */
	uint32_t streams;		  /* requests in flight on the connection */
	const struct h2c_header *headers; /* NULL-name terminated */
	int timeout_ms;			  /* longest wait for any progress */
	/* The next body to POST (borrowed until its answer), or false when done. */
	bool (*next)(void *ctx, const char **body, size_t *len);
	/* An answer; false stops the run with an error. */
	bool (*done)(void *ctx, int status, const char *body, size_t len);
	void *ctx;
};

/* Run until next() says done and every answer came. 0 or a negative errno. */
int h2c_run(const struct h2c_config *cfg);

#endif
