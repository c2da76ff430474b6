/*
 * c2s.h — client-to-server streams (internal).
 *
 * RFC 6120 negotiation (STARTTLS, SASL, resource binding) and, once
 * bound, validation and stamping of the client's stanzas before they go
 * to the router.
 */
#ifndef TERN_C2S_H
#define TERN_C2S_H

#include <event2/util.h>

/* Take an accepted client socket.  direct_tls: XEP-0368 (TLS before XML). */
void c2s_accept(evutil_socket_t fd, const char *peer, int direct_tls);

#endif
