/*
 * jid_prep.h — the paths inside tern_jid_new() (internal, src/xmpp/jid.c).
 *
 * tern_jid_new() is jid_new_fast() for strings already in prepared form,
 * else a cached result, else jid_new_slow().  The three must agree on
 * every input; they are declared here so that the unit tests can compare
 * them.  Everything else should call tern_jid_new().
 */
#ifndef TERN_XMPP_JID_PREP_H
#define TERN_XMPP_JID_PREP_H

#include <tern/jid.h>

/* The full path: split (RFC 7622 §3.1), prepare each part, build. */
tern_jid_t *jid_new_slow(const char *s, const char **error_r);
/* `s` when it is already in prepared form, else NULL (then only the full
 * path can tell whether it is valid and what it prepares to). */
tern_jid_t *jid_new_fast(const char *s);
/* Empty the cache of prepared results (tests; otherwise it lives, reachable,
 * until the process ends). */
void jid_cache_clear(void);

#endif
