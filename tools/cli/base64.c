#include "base64.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include <openssl/evp.h>

long cli_base64_encode(const void *in, size_t len, char **buf, size_t *cap)
{
	/* EVP_EncodeBlock takes an int length. */
	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		return -EOVERFLOW;
	size_t need = cli_base64_encoded_size(len);
	if (need > *cap) {
		char *b = realloc(*buf, need);
		if (!b)
			return -ENOMEM;
		*buf = b;
		*cap = need;
	}
	int n = EVP_EncodeBlock((unsigned char *)*buf, in, (int)len);
	return n;
}
