/*
 * router.h — where a stanza goes (internal).
 *
 * RFC 6120 §10 and RFC 6121 §8: to the server itself, to a local account
 * (bare JID), to one of its resources (full JID), to an external component,
 * or to a remote domain.  Who serves a domain comes from the domain
 * registry (route/domains.h): a host, a service domain, a component, or
 * nobody here (remote).  Modules take stanzas through host events first;
 * what no module takes gets the RFC's default handling: delivery, or an
 * error bounced to the sender (never in answer to an error).
 */
#ifndef TERN_ROUTER_H
#define TERN_ROUTER_H

#include <tern/module.h>

/* Where a stanza comes from: the router enforces the from/to rules of
 * each origin in one place (router_rule) before routing. */
typedef enum {
    ROUTE_INTERNAL = 0, /* the core or a module: trusted, 'from' set by it */
    ROUTE_CLIENT,       /* a client's bound session */
    ROUTE_COMPONENT,    /* an external component (XEP-0114), by its domain */
    ROUTE_PEER          /* a remote server, by the domain it authenticated as */
} route_origin_kind_t;

typedef struct route_origin {
    route_origin_kind_t kind;
    tern_session_t *session; /* ROUTE_CLIENT: the sender's session */
    const char *domain;      /* ROUTE_COMPONENT, ROUTE_PEER: its domain */
} route_origin_t;

/* What the rules say about one stanza. */
typedef enum {
    RULE_OK = 0,              /* route it as it is */
    RULE_STAMP,               /* route it with 'from' set to the client's full JID */
    RULE_DROP,                /* internal stanza without 'from': dropped */
    RULE_INVALID_FROM,        /* stream error <invalid-from/> (RFC 6120 §4.9.3.9) */
    RULE_IMPROPER_ADDRESSING, /* stream error <improper-addressing/> (§4.9.3.7) */
    RULE_HOST_UNKNOWN         /* stream error <host-unknown/> (§4.9.3.6): no relaying */
} route_rule_t;

/* The from/to rules, a pure function.  `self` is the client's full JID
 * (ROUTE_CLIENT), the component's domain (ROUTE_COMPONENT) or the peer's
 * authenticated domain (ROUTE_PEER), unused for ROUTE_INTERNAL.  `from`
 * and `to` are the stanza's attributes (NULL when absent); `is_ours` says
 * whether we serve a domain (host, service or component).
 *   client:    no 'from', or its own bare JID -> STAMP; its full JID -> OK;
 *              anything else -> INVALID_FROM (RFC 6120 §8.1.2.1).
 *   component: 'from' at its domain or a subdomain of it, else
 *              INVALID_FROM; no 'to' -> IMPROPER_ADDRESSING (XEP-0114).
 *   peer:      'from' and 'to' present and valid, else IMPROPER_ADDRESSING;
 *              'from' at its authenticated domain, else INVALID_FROM
 *              (RFC 6120 §8.1.2.2); 'to' at one of our domains, else
 *              HOST_UNKNOWN (we relay for nobody).
 *   internal:  OK with a 'from', else DROP. */
route_rule_t router_rule(route_origin_kind_t kind, const char *self, const char *from,
                         const char *to, int (*is_ours)(const char *domain));
/* The stream error condition of a refusal, or NULL for OK, STAMP, DROP. */
const char *router_rule_condition(route_rule_t rule);

/* Apply the rules of `origin` to `stanza` and stamp its 'from' when they
 * say so, without routing it (c2s calls this before its own handling of
 * the stanza).  0 when accepted; -1 when refused, with *condition_r the
 * stream error the caller must end the stream with (NULL: just drop it). */
int router_admit(tern_xml_t *stanza, const route_origin_t *origin, const char **condition_r);
/* router_admit, then route `stanza` (borrowed).  0, or -1 as router_admit. */
int router_route_from(tern_xml_t *stanza, const route_origin_t *origin, const char **condition_r);
/* Route `stanza` (borrowed) from `session` (ROUTE_CLIENT; a refusal closes
 * the session with the stream error) or, when NULL, from the core or a
 * module (ROUTE_INTERNAL). */
void router_route(tern_xml_t *stanza, tern_session_t *session);

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

/* External components, kept in the domain registry (route/domains.h).  A
 * declared domain bounces service-unavailable while no component is
 * attached. */
/* Answers to iqs the core or a module sent (tern_send_iq) belong to the
 * core: before firing iq result/error events on host `h`, the router offers
 * the iq to this function, which returns 1 when it took it.  The core sets
 * it at start-up (hosts_init); NULL (unit tests of the router) = never. */
struct host;
typedef int (*router_iq_reply_fn)(struct host *h, tern_xml_t *iq, const tern_jid_t *from);
void router_set_iq_reply(router_iq_reply_fn fn);

typedef void (*router_component_fn)(void *ctx, tern_xml_t *stanza);
int router_component_declare(const char *domain);
int router_component_attach(const char *domain, router_component_fn fn, void *ctx);
void router_component_detach(const char *domain, void *ctx);
int router_is_component(const char *domain);
void router_free(void);

#endif
