/*
 * tern/base64.h — base64 for modules (RFC 4648 §4, and §5 "base64url").
 *
 * One encoder and one decoder shared by the core and every module, so
 * that no module carries its own copy.  Both allocate their result with
 * malloc(); the caller frees it.  Neither keeps any state.
 */
#ifndef TERN_BASE64_H
#define TERN_BASE64_H

#include <stddef.h>

#include <tern/defs.h>

/* Flags (combine with |). */
#define TERN_BASE64_URL   0x1u /* RFC 4648 §5 alphabet: '-' and '_' for '+' and '/' */
#define TERN_BASE64_NOPAD 0x2u /* encode: leave out the '=' padding (RFC 4648 §3.2) */
#define TERN_BASE64_LENIENT                                                                        \
    0x4u /* decode: the XEP-0084 §4.1 / XEP-0153 §4.7 form,                                      \
            see tern_base64_decode() */

/* Encode `len` bytes of `in` on one line (no line breaks).  Returns a
 * malloc'd NUL-terminated string ("" for len == 0), or NULL when `in` is
 * NULL with len > 0, the result would not fit, or memory runs out. */
TERN_API char *tern_base64_encode(const void *in, size_t len, unsigned flags);

/* Decode `len` characters of `in`.  Strict by default (RFC 4648 §3.3):
 * alphabet characters only (no white space, no NUL), length a multiple of
 * four, '=' only as one or two final pad characters, and the unused bits
 * before the padding zero (§3.5, canonical encoding).
 * With TERN_BASE64_LENIENT, as avatar and vCard data need: white space
 * (space, tab, CR, LF) anywhere is ignored, the padding may be left out
 * (but when present it must be complete), and non-zero unused bits are
 * ignored; every other character, '=' inside the text, too much padding
 * or a dangling single character still fail.
 * Returns a malloc'd buffer (never NULL on success, even when empty) and
 * sets *out_len; NULL on bad input or when memory runs out. */
TERN_API unsigned char *tern_base64_decode(const char *in, size_t len, unsigned flags,
                                           size_t *out_len);

#endif
