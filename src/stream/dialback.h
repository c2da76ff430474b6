/*
 * dialback.h — Server Dialback keys (XEP-0220 with XEP-0185) (internal).
 *
 * Owns the key a server sends to prove it is authoritative for a domain:
 * HMAC-SHA256 with the key SHA256(secret) in lowercase hex over
 * "Receiving Originating StreamID" (single spaces), in lowercase hex.
 * Knows nothing of streams or sockets.
 */
#ifndef TERN_DIALBACK_H
#define TERN_DIALBACK_H

#include <stddef.h>

#define DIALBACK_KEY_LEN 65 /* 64 hex digits and the NUL */

/* The dialback key (XEP-0185 §3) into out.  0, or -1 when an argument is
 * missing or the digest fails. */
int dialback_key(const char *secret, const char *receiving, const char *originating,
                 const char *stream_id, char out[DIALBACK_KEY_LEN]);
/* Whether `given` is the key for these values (constant time over the
 * key; case-insensitive hex).  1 or 0. */
int dialback_check(const char *secret, const char *receiving, const char *originating,
                   const char *stream_id, const char *given);

#endif
