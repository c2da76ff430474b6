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
#include <tern/module.h>

/* Take an accepted client socket.  direct_tls: XEP-0368 (TLS before XML). */
void c2s_accept(evutil_socket_t fd, const char *peer, int direct_tls);

/* XEP-0198 resumption: the client stream whose (unbound, logged-in)
 * session is `stream` takes over `target`, a session of the same account
 * on the same host.  A target still on another client stream is taken off
 * it first (that stream ends with <conflict/>).  What waited for the
 * target is then sent on this stream and session/resumed fires.  0, or -1
 * (nothing changed). */
int c2s_resume(tern_session_t *stream, tern_session_t *target);

struct transport;
struct evbuffer;
/* Take a transport whose HTTP request was upgraded to WebSocket (the 101
 * answer queued) for an RFC 7395 client stream.  `secure`: counts as
 * encrypted (wss, or a trusted proxy / loopback when allowed); `client`:
 * the client's address when a proxy named it, else NULL; `rest`: bytes
 * after the request (taken).  NULL when taken, else `t` back (failure:
 * the caller destroys it). */
struct transport *c2s_accept_websocket(struct transport *t, const char *peer, int secure,
                                       const char *client, struct evbuffer *rest);

#endif
