/*
 * limits.h — per-address connection counts and per-user stanza rates for
 * client streams (internal).
 *
 * Owns the table of open client connections per IP address and the token
 * bucket of stanzas per account.  c2s.c asks; nothing here touches
 * sockets or sends errors.
 */
#ifndef TERN_LIMITS_H
#define TERN_LIMITS_H

#include <stddef.h>

struct user_sessions;

/* Count one more client connection from `ip`, unless `max` (> 0) are
 * already open from it.  0 when counted (release it with limits_ip_release),
 * -1 when over the limit or out of memory (nothing counted).  The table
 * frees itself when its last count goes. */
int limits_ip_take(const char *ip, long long max);
void limits_ip_release(const char *ip);

/* One stanza from account `u` against a bucket of `rate` stanzas per
 * second and `burst` at most (rate 0 = no limit).  Returns 0 while the
 * bucket holds tokens, else how many milliseconds to stop reading for the
 * bucket to hold one again. */
long long limits_stanza_take(struct user_sessions *u, long long rate, long long burst,
                             long long now_ms);
/* The same bucket kept by the caller (*tokens and *at_ms start at 0): a
 * server-to-server stream keeps one per stream. */
long long limits_bucket_take(long long *tokens, long long *at_ms, long long rate, long long burst,
                             long long now_ms);

#endif
