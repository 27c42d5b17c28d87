/* UTF-8 validation shared by every parser of outside text (keys, names, tags, handler specs). */
#ifndef SL_COMMON_UTF8_H
#define SL_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether len bytes are well-formed UTF-8: no overlong forms, surrogates or code points past
 * U+10FFFF. NUL bytes are valid UTF-8 (callers that forbid them check separately). */
bool sl_utf8_valid(const void *text, size_t len);

#endif
