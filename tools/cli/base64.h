/* Base64 (RFC 4648, with padding) for `sluice get --format json` and archive lines. */
#ifndef SL_CLI_BASE64_H
#define SL_CLI_BASE64_H

#include <stddef.h>

/* Bytes base64 needs for len input bytes, NUL included. */
static inline size_t cli_base64_encoded_size(size_t len)
{
	return 4 * ((len + 2) / 3) + 1;
}

/*
 * Encode len bytes of in into *buf (grown as needed: start with *buf NULL and *cap 0; free(*buf)
 * when done). Returns the length of the NUL-terminated text, or -ENOMEM / -EOVERFLOW.
 */
long cli_base64_encode(const void *in, size_t len, char **buf, size_t *cap);

#endif
