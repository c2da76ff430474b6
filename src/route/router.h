/*
 * router.h — where a stanza goes (internal).
 *
 * RFC 6120 §10 and RFC 6121 §8: to the server itself, to a local account
 * (bare JID), to one of its resources (full JID), to an external component,
 * or to a remote domain.  Modules take stanzas through host events first;
 * what no module takes gets the RFC's default handling: delivery, or an
 * error bounced to the sender (never in answer to an error).
 */
#ifndef TERN_ROUTER_H
#define TERN_ROUTER_H

#include <tern/module.h>

/* Route `stanza` (borrowed).  Its 'from' must already be trusted: stamped
 * by the stream it came from or set by the core/module that made it.
 * `origin` is the local session it came from, or NULL. */
void router_route(tern_xml_t *stanza, tern_session_t *origin);

/* tern_event_edit(): the stanza of `ev`, writable.  Not frozen yet (a
 * client's stanza in its sender's pre- filters): the stanza itself.
 * Frozen, during a routing: a copy that replaces ev->stanza for the rest
 * of this routing (handlers, delivery), owned by the router until the
 * routing ends.  NULL otherwise or on allocation failure. */
tern_xml_t *router_event_edit(tern_event_t *ev);

/* Answer `stanza` with an error stanza (RFC 6120 §8.3); nothing for errors. */
void router_bounce(const tern_xml_t *stanza, const char *type, const char *condition,
                   const char *text);

/* Remote domains: federation plugs in here.  Without it, stanzas to remote
 * domains bounce remote-server-not-found.  The function returns 0 when it
 * took the stanza (it takes its own reference if it keeps it). */
typedef int (*router_remote_fn)(tern_xml_t *stanza, const tern_jid_t *to);
void router_set_remote(router_remote_fn fn);

/* External components.  A declared domain bounces service-unavailable
 * while no component is attached. */
typedef void (*router_component_fn)(void *ctx, tern_xml_t *stanza);
int router_component_declare(const char *domain);
int router_component_attach(const char *domain, router_component_fn fn, void *ctx);
void router_component_detach(const char *domain, void *ctx);
int router_is_component(const char *domain);
void router_free(void);

#endif
