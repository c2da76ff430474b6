/*
 * s2s.h — server-to-server streams: federation (internal).
 *
 * RFC 6120 between servers: incoming streams (s2s_in.c: STARTTLS, SASL
 * EXTERNAL per XEP-0178, Server Dialback per XEP-0220, stanza checks) and
 * outgoing ones (s2s_out.c: DNS, connect, TLS, authentication, a queue
 * per remote domain, bounces and backoff).  The core starts it after the
 * hosts and TLS, hands it the sockets of the s2s listeners, and asks it
 * for the admin listing.
 */
#ifndef TERN_S2S_H
#define TERN_S2S_H

#include <event2/util.h>
#include <stddef.h>

#include "tls/tls.h"

/* Trust store, dialback secret and resolver from server.cfg, and the
 * router's remote hook (when s2s.enabled).  0, or -1 with a reason in
 * err (logged by the caller). */
int s2s_start(char *err, size_t errlen);
/* Reload: the s2s settings of server.cfg (already the new configuration)
 * apply from now on: `*trust` (made from s2s.ca_file, taken; existing
 * connections keep the certificates they checked) checks peers from now
 * on, and a changed s2s.dialback_secret makes the keys we give; keys
 * given with the previous secret still verify until the next change. */
void s2s_apply(tls_client_t **trust);
/* Bounce what still waits, forget every remote domain and free (the
 * streams themselves end with conn_close_all()). */
void s2s_stop(void);
/* Take an accepted socket of an s2s listener.  direct_tls: XEP-0368. */
void s2s_accept(evutil_socket_t fd, const char *peer, int direct_tls);

/* One line of `ternctl s2s`. */
typedef struct s2s_info {
    const char *direction; /* "in" or "out" */
    const char *remote;    /* the peer's domain ("" while unknown) */
    const char *local;     /* our domain */
    const char *auth;      /* "EXTERNAL", "dialback", or "none" while negotiating */
    const char *tls;       /* "TLSv1.3", or "none" */
    const char *cert;      /* the check of the peer's certificate, in words */
    size_t queued;         /* stanzas waiting (outgoing, while connecting) */
    const char *peer;      /* address:port */
    const char *pairs;     /* the domain pairs the stream carries, "from->to" separated by
                              spaces; a pair still being checked ends in "?" */
} s2s_info_t;
/* Visit every server-to-server stream. */
void s2s_list(void (*fn)(void *arg, const s2s_info_t *info), void *arg);
/* Close every stream with remote domain `domain`; how many. */
size_t s2s_close_domain(const char *domain);

#endif
