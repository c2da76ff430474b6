/*
 * router.c — stanza routing and the default delivery rules.
 *
 * Every stanza enters with its origin (route/router.h): the from/to rules
 * of that origin are applied here and nowhere else (router_rule), then the
 * domain registry (route/domains.h) says who serves the target: a local
 * host or a service domain (events on it, below), a component (its link),
 * or nobody here (the remote hook, else remote-server-not-found).
 * Streams call down into the router; the router calls back up only
 * through function pointers (session deliver/close, component links, the
 * remote hook).
 *
 * pre-KIND/DEST runs first on the sender's host, for every stanza from an
 * account of a local host (sent by its client, or routed by a module on
 * its behalf), whatever the destination: local, component or remote.
 * Then, on the target host: in-KIND/DEST for DEST "bare" and "full" (a
 * stanza for one of its accounts from any origin; never for "self", a
 * client's stanza to its own account) -> iq-TYPE/DEST/NS:NAME (iq get/set)
 *   -> KIND/DEST -> for DEST "self", the same again for "host" or "bare"
 *   -> the RFC default below.
 * Lookups are hash tables keyed by JID: routing never scans sessions.
 */
#include "route/router.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "route/domains.h"
#include "route/directory.h"
#include "route/host.h"
#include "route/sessions.h"
#include "store/account_names.h"
#include "xmpp/stanza.h"

typedef enum { DEST_HOST = 0, DEST_BARE, DEST_FULL, DEST_SELF } dest_t;
static const char *const dest_names[] = {"host", "bare", "full", "self"};
static const char *const kind_names[] = {"", "message", "presence", "iq"};
static const char *const pre_names[] = {"", "pre-message", "pre-presence", "pre-iq"};
static const char *const in_names[] = {"", "in-message", "in-presence", "in-iq"};
/* The hooks slot of stage (0 pre-, 1 in-, 2 none) KIND/DEST (hooks_fire_slot). */
#define SLOT(stage, kind, dest) ((unsigned)(stage)*16u + (unsigned)(kind)*4u + (unsigned)(dest))

/* One routing in progress (routings nest: handlers route too).  `owned`
 * holds the copies tern_event_edit() made for its event: they are kept
 * until the routing ends, since code that read an earlier ev->stanza may
 * still hold pointers into it. */
typedef struct route_frame {
    tern_event_t *ev;
    tern_xml_t **owned;
    size_t nowned;
    struct route_frame *up;
} route_frame_t;

static route_frame_t *frames;

static router_remote_fn remote_fn;

void router_set_remote(router_remote_fn fn)
{
    remote_fn = fn;
}

static router_iq_reply_fn iq_reply;

void router_set_iq_reply(router_iq_reply_fn fn)
{
    iq_reply = fn;
}

int router_component_declare(const char *domain)
{
    return domains_declare_component(domain);
}

int router_is_component(const char *domain)
{
    return domains_kind(domain) == DOMAIN_COMPONENT;
}

/* Attach a live component; -1 if the domain is not declared or already taken. */
int router_component_attach(const char *domain, router_component_fn fn, void *ctx)
{
    return domains_attach_component(domain, fn, ctx);
}

void router_component_detach(const char *domain, void *ctx)
{
    domains_detach_component(domain, ctx);
}

void router_free(void)
{
    domains_free();
    remote_fn = NULL;
}

void router_bounce(const tern_xml_t *stanza, const char *type, const char *condition,
                   const char *text)
{
    tern_xml_t *err = stanza_error_reply(stanza, type, condition, text);
    if (!err)
        return;
    /* An error about a stanza without a (valid) 'to' comes from the
     * sender's own server (RFC 6120 §10.3). */
    const char *from = tern_xml_attr(err, "from");
    tern_jid_t *fj = from ? tern_jid_new(from, NULL) : NULL;
    if (!fj) {
        const char *to = tern_xml_attr(err, "to");
        tern_jid_t *j = to ? tern_jid_new(to, NULL) : NULL;
        if (j)
            tern_xml_set_attr(err, "from", j->domain);
        tern_jid_free(&j);
    }
    tern_jid_free(&fj);
    router_route(err, NULL);
    tern_xml_unref(err);
}

/* `u`: the account's sessions, as sessions_find_bare() found them. */
static int account_exists(host_t *h, const tern_jid_t *to, const user_sessions_t *u)
{
    if (h->is_service)
        return 0; /* a service domain has no accounts */
    if (u)
        return 1;
    /* From memory (store/account_names.h), never a stale "no". */
    return server.db && account_names_exists(server.db, h->name, to->local) == 1;
}

static void deliver(tern_session_t *s, tern_xml_t *stanza)
{
    tern_xml_freeze(stanza); /* an edited copy (tern_event_edit) is done now */
    sessions_deliver(s, stanza);
}

tern_xml_t *router_event_edit(tern_event_t *ev)
{
    if (!ev || !ev->stanza)
        return NULL;
    if (!tern_xml_frozen(ev->stanza))
        return ev->stanza;
    route_frame_t *f = frames;
    while (f && f->ev != ev)
        f = f->up;
    if (!f)
        return NULL;
    tern_xml_t **owned = realloc(f->owned, (f->nowned + 1) * sizeof(*owned));
    if (!owned)
        return NULL;
    f->owned = owned;
    tern_xml_t *c = tern_xml_copy(ev->stanza);
    if (!c)
        return NULL;
    f->owned[f->nowned++] = c;
    ev->stanza = c;
    return c;
}

/* RFC 6121 §8.5.2.1.1: messages of type normal/chat go to the available
 * resources of highest non-negative priority; headline to all non-negative.
 * Returns how many sessions got it. */
static int deliver_message_to_bare(user_sessions_t *u, tern_xml_t *stanza, int all)
{
    if (!u)
        return 0;
    int best = -1;
    for (tern_session_t *s = u->first; s; s = s->next_of_user)
        if (s->available && s->priority >= 0 && s->priority > best)
            best = s->priority;
    if (best < 0)
        return 0;
    int n = 0;
    tern_session_t *next;
    for (tern_session_t *s = u->first; s; s = next) {
        next = s->next_of_user;
        if (s->available && s->priority >= 0 && (all || s->priority == best)) {
            deliver(s, stanza);
            n++;
        }
    }
    return n;
}

static void deliver_presence_to_bare(user_sessions_t *u, tern_xml_t *stanza)
{
    tern_session_t *next;
    for (tern_session_t *s = u ? u->first : NULL; s; s = next) {
        next = s->next_of_user;
        if (s->available)
            deliver(s, stanza);
    }
}

static int is_type(const char *type, const char *want)
{
    return strcmp(type, want) == 0;
}

static int is_subscription_type(const char *type)
{
    return is_type(type, "subscribe") || is_type(type, "subscribed") ||
           is_type(type, "unsubscribe") || is_type(type, "unsubscribed");
}

static void default_to_bare(host_t *h, stanza_kind_t kind, tern_event_t *ev);

/* RFC 6121 §8.5.2 (bare JID). */
static void default_to_bare(host_t *h, stanza_kind_t kind, tern_event_t *ev)
{
    tern_xml_t *st = ev->stanza;
    const char *type = stanza_type(st);
    /* One lookup serves the check and the delivery: nothing runs between. */
    user_sessions_t *u = sessions_find_bare(ev->to->bare);
    if (!account_exists(h, ev->to, u)) {
        /* RFC 6121 §8.5.1: no such user. */
        if (kind != STANZA_PRESENCE &&
            !(kind == STANZA_IQ && !is_type(type, "get") && !is_type(type, "set")))
            router_bounce(st, "cancel", "service-unavailable", NULL);
        return;
    }
    switch (kind) {
    case STANZA_MESSAGE:
        if (is_type(type, "normal") || is_type(type, "chat")) {
            if (deliver_message_to_bare(u, st, 0) > 0)
                return;
            if (hooks_fire(h->hooks, "message/offline", ev) == TERN_HANDLED)
                return;
            router_bounce(st, "cancel", "service-unavailable", NULL);
        } else if (is_type(type, "headline")) {
            deliver_message_to_bare(u, st, 1);
        } else if (is_type(type, "groupchat")) {
            router_bounce(st, "cancel", "service-unavailable", NULL);
        }
        return;
    case STANZA_PRESENCE:
        if (!is_type(type, "probe") && !is_type(type, "error"))
            deliver_presence_to_bare(u, st);
        return;
    case STANZA_IQ:
        if (is_type(type, "get") || is_type(type, "set"))
            router_bounce(st, "cancel", "service-unavailable", NULL);
        return;
    default:
        return;
    }
}

/* RFC 6121 §8.5.3 (full JID). */
static void default_to_full(host_t *h, stanza_kind_t kind, tern_event_t *ev)
{
    tern_xml_t *st = ev->stanza;
    const char *type = stanza_type(st);
    dir_location_t loc;
    if (directory_find_full(ev->to->full, &loc) == DIR_LOCAL) {
        deliver(loc.session, st);
        return;
    }
    switch (kind) {
    case STANZA_MESSAGE:
        if (is_type(type, "normal") || is_type(type, "chat"))
            default_to_bare(h, kind, ev);
        else if (is_type(type, "groupchat"))
            router_bounce(st, "cancel", "service-unavailable", NULL);
        return;
    case STANZA_PRESENCE:
        if (is_subscription_type(type))
            default_to_bare(h, kind, ev);
        return;
    case STANZA_IQ:
        if (is_type(type, "get") || is_type(type, "set"))
            router_bounce(st, "cancel", "service-unavailable", NULL);
        return;
    default:
        return;
    }
}

static void default_to_host(host_t *h, stanza_kind_t kind, tern_event_t *ev)
{
    const char *type = stanza_type(ev->stanza);
    if (kind == STANZA_IQ && (is_type(type, "get") || is_type(type, "set")))
        router_bounce(ev->stanza, "cancel", "service-unavailable", NULL);
    else if (kind == STANZA_MESSAGE && !is_type(type, "error") && !is_type(type, "groupchat") &&
             !is_type(type, "headline"))
        router_bounce(ev->stanza, "cancel", "service-unavailable", NULL);
}

/* Fire iq-TYPE/DEST/NS:NAME then KIND/DEST.  TERN_HANDLED if a module took it. */
static int fire_for_dest(host_t *h, stanza_kind_t kind, dest_t dest, tern_event_t *ev)
{
    if (kind == STANZA_IQ) {
        const char *type = stanza_type(ev->stanza);
        if (is_type(type, "get") || is_type(type, "set")) {
            tern_xml_t *payload = tern_xml_first_element(ev->stanza);
            if (payload && payload->ns) {
                const char *parts[4] = {is_type(type, "get") ? "iq-get" : "iq-set",
                                        dest_names[dest], payload->ns, payload->name};
                if (hooks_fire_parts(h->hooks, parts, 4, "//:", ev) == TERN_HANDLED)
                    return TERN_HANDLED;
            }
        } else if (dest == DEST_HOST && (is_type(type, "result") || is_type(type, "error"))) {
            if (iq_reply && iq_reply(h, ev->stanza, ev->from))
                return TERN_HANDLED;
        }
    }
    return hooks_fire_slot(h->hooks, SLOT(2, kind, dest), kind_names[kind], dest_names[dest], ev);
}

static void dispatch(host_t *h, stanza_kind_t kind, dest_t dest, tern_event_t *ev)
{
    /* Inbound filters: before any module answers or delivers for the
     * account.  Not for a user's stanzas to their own account ("self"). */
    if (dest == DEST_BARE || dest == DEST_FULL) {
        if (hooks_fire_slot(h->hooks, SLOT(1, kind, dest), in_names[kind], dest_names[dest], ev) ==
            TERN_HANDLED)
            return;
    }
    if (fire_for_dest(h, kind, dest, ev) == TERN_HANDLED)
        return;
    if (dest == DEST_SELF) {
        /* RFC 6120 §10.3.3: no 'to' means the server answers for the account. */
        dest = tern_xml_attr(ev->stanza, "to") ? DEST_BARE : DEST_HOST;
        if (fire_for_dest(h, kind, dest, ev) == TERN_HANDLED)
            return;
    }
    switch (dest) {
    case DEST_HOST:
        default_to_host(h, kind, ev);
        break;
    case DEST_BARE:
        default_to_bare(h, kind, ev);
        break;
    case DEST_FULL:
        default_to_full(h, kind, ev);
        break;
    default:
        break;
    }
}

/* A domain we do not serve as a host: a component's, or a remote one. */
static void route_elsewhere(tern_xml_t *stanza, const tern_jid_t *to, const domain_entry_t *served)
{
    tern_xml_freeze(stanza);
    if (served && served->kind == DOMAIN_COMPONENT) {
        if (served->ctx)
            served->fn(served->ctx, stanza);
        else
            router_bounce(stanza, "cancel", "service-unavailable",
                          "the component is not connected");
        return;
    }
    if (remote_fn && remote_fn(stanza, to) == 0)
        return;
    router_bounce(stanza, "cancel", "remote-server-not-found", NULL);
}

/* The host or service serving `domain`, or NULL. */
static host_t *served_host(const domain_entry_t *e)
{
    return e && (e->kind == DOMAIN_HOST || e->kind == DOMAIN_SERVICE) ? e->host : NULL;
}

/* Whether a JID's domainpart `jid_domain` is `domain`, or (when `sub`) a
 * subdomain of it: "irc.bots.example.com" is at "bots.example.com",
 * "xbots.example.com" is not. */
static int domain_matches(const char *jid_domain, const char *domain, int sub)
{
    if (strcmp(jid_domain, domain) == 0)
        return 1;
    size_t n = strlen(jid_domain), d = strlen(domain);
    return sub && n > d + 1 && jid_domain[n - d - 1] == '.' &&
           strcmp(jid_domain + n - d, domain) == 0;
}

route_rule_t router_rule(route_origin_kind_t kind, const char *self, const char *from,
                         const char *to, int (*is_ours)(const char *domain))
{
    route_rule_t rule = RULE_OK;
    tern_jid_t *fj = NULL, *tj = NULL;
    switch (kind) {
    case ROUTE_CLIENT: {
        /* RFC 6120 §8.1.2.1: the server stamps the client's full JID; a
         * client may only claim that, or the bare JID of its account. */
        if (!from)
            return RULE_STAMP;
        if (self && strcmp(from, self) == 0)
            return RULE_OK;
        fj = tern_jid_new(from, NULL);
        const char *slash = self ? strchr(self, '/') : NULL;
        size_t bare_len = slash ? (size_t)(slash - self) : self ? strlen(self) : 0;
        if (!fj || !self)
            rule = RULE_INVALID_FROM;
        else if (strcmp(fj->full, self) == 0)
            rule = RULE_STAMP;
        else if (!fj->resource && strlen(fj->full) == bare_len &&
                 strncmp(fj->full, self, bare_len) == 0)
            rule = RULE_STAMP;
        else
            rule = RULE_INVALID_FROM;
        break;
    }
    case ROUTE_COMPONENT:
        /* XEP-0114 §3 and RFC 6120 §4.9.3.9: a component speaks for its
         * own domain (and JIDs and subdomains at it), addressing someone. */
        fj = from ? tern_jid_new(from, NULL) : NULL;
        if (!fj || !self || !domain_matches(fj->domain, self, 1))
            rule = RULE_INVALID_FROM;
        else if (!to)
            rule = RULE_IMPROPER_ADDRESSING;
        break;
    case ROUTE_PEER:
        /* RFC 6120 §4.9.3.7: between servers both addresses are required
         * and valid; §8.1.2.2 and §4.9.3.9: 'from' is at the domain the
         * peer authenticated as; §4.9.3.6: 'to' is a domain we serve. */
        fj = from ? tern_jid_new(from, NULL) : NULL;
        tj = to ? tern_jid_new(to, NULL) : NULL;
        if (!fj || !tj)
            rule = RULE_IMPROPER_ADDRESSING;
        else if (!self || !domain_matches(fj->domain, self, 0))
            rule = RULE_INVALID_FROM;
        else if (!is_ours || !is_ours(tj->domain))
            rule = RULE_HOST_UNKNOWN;
        break;
    case ROUTE_INTERNAL:
    default:
        /* Trusted; a 'from' that is not a JID is dropped while routing. */
        rule = from ? RULE_OK : RULE_DROP;
        break;
    }
    tern_jid_free(&fj);
    tern_jid_free(&tj);
    return rule;
}

const char *router_rule_condition(route_rule_t rule)
{
    switch (rule) {
    case RULE_INVALID_FROM:
        return "invalid-from";
    case RULE_IMPROPER_ADDRESSING:
        return "improper-addressing";
    case RULE_HOST_UNKNOWN:
        return "host-unknown";
    default:
        return NULL;
    }
}

int router_admit(tern_xml_t *stanza, const route_origin_t *origin, const char **condition_r)
{
    static const route_origin_t internal = {.kind = ROUTE_INTERNAL};
    const route_origin_t *o = origin ? origin : &internal;
    const char *self =
        o->kind == ROUTE_CLIENT ? (o->session ? o->session->jid->full : NULL) : o->domain;
    route_rule_t rule = router_rule(o->kind, self, tern_xml_attr(stanza, "from"),
                                    tern_xml_attr(stanza, "to"), domains_is_ours);
    if (condition_r)
        *condition_r = router_rule_condition(rule);
    if (rule == RULE_STAMP) {
        tern_xml_set_attr(stanza, "from", self);
        return 0;
    }
    if (rule == RULE_OK)
        return 0;
    if (rule == RULE_DROP)
        log_debug("dropping a stanza without a valid 'from'");
    else
        log_info("refused a stanza from %s (%s): %s", self ? self : "the core",
                 tern_xml_attr(stanza, "from") ? tern_xml_attr(stanza, "from") : "no from",
                 router_rule_condition(rule));
    return -1;
}

/* Route a stanza whose addresses the rules accepted; `origin` is the
 * client session it came from, or NULL.  The stanza is frozen once routed
 * (<tern/xml.h>): a client's stanza after its sender's outgoing filters
 * (pre-KIND/DEST, which may still adjust it: bare JIDs on subscriptions,
 * avatar hashes), anything a module routes before it gets here
 * (tern_route).  From then on events and sessions share it and never
 * change it. */
static void route_admitted(tern_xml_t *stanza, tern_session_t *origin)
{
    stanza_kind_t kind = stanza_kind(stanza);
    if (kind == STANZA_OTHER)
        return;
    const char *from_s = tern_xml_attr(stanza, "from");
    const char *to_s = tern_xml_attr(stanza, "to");
    /* What a client sends carries its session's full JID as 'from' (c2s
     * stamps it): that JID is already prepared. */
    int from_is_origin = origin && origin->jid && from_s && strcmp(from_s, origin->jid->full) == 0;
    tern_jid_t *from_owned = from_s && !from_is_origin ? tern_jid_new(from_s, NULL) : NULL;
    const tern_jid_t *from = from_is_origin ? origin->jid : from_owned;
    if (!from) {
        log_debug("dropping a stanza without a valid 'from'");
        return;
    }
    tern_jid_t *to = NULL;
    if (to_s && !(to = tern_jid_new(to_s, NULL))) {
        router_bounce(stanza, "modify", "jid-malformed", NULL);
        tern_jid_free(&from_owned);
        return;
    }
    const domain_entry_t *served = to ? domains_find(to->domain) : NULL;
    host_t *h = to ? served_host(served) : origin ? origin->host : NULL;
    if (!to && !h) {
        tern_jid_free(&from_owned);
        return;
    }
    dest_t dest;
    if (!to)
        dest = DEST_SELF;
    else if (!to->local)
        dest = DEST_HOST;
    else if (to->resource)
        dest = DEST_FULL;
    else if (origin && h && strcmp(to->bare, origin->jid->bare) == 0)
        dest = DEST_SELF;
    else
        dest = DEST_BARE;

    /* Without 'to', the stanza is about the sender's own account. */
    tern_jid_t *self_bare = to ? NULL : tern_jid_bare(origin->jid);
    tern_event_t ev = {.stanza = stanza, .from = from, .to = to ? to : self_bare, .origin = origin};
    if (!ev.to) {
        tern_jid_free(&from_owned);
        return;
    }
    if (dest == DEST_FULL && h)
        ev.session = sessions_find_full(to->full);

    /* Outgoing filters run on the sender's host, wherever the stanza goes:
     * for what a client sends, and for what a module routes on behalf of an
     * account of a local host (ev.origin NULL).  Service domains have no
     * accounts, so none for what their modules send. */
    host_t *sender_host = NULL;
    if (origin) {
        sender_host = origin->host;
    } else if (from->local) {
        const domain_entry_t *fe = domains_find(from->domain);
        sender_host = fe && fe->kind == DOMAIN_HOST ? fe->host : NULL;
    }
    int handled = 0;
    if (sender_host) {
        handled = hooks_fire_slot(sender_host->hooks, SLOT(0, kind, dest), pre_names[kind],
                                  dest_names[dest], &ev) == TERN_HANDLED;
    }
    tern_xml_freeze(ev.stanza);
    route_frame_t frame = {.ev = &ev, .up = frames};
    frames = &frame;
    if (!handled && h)
        dispatch(h, kind, dest, &ev);
    else if (!handled)
        route_elsewhere(ev.stanza, to, served);
    frames = frame.up;
    for (size_t i = 0; i < frame.nowned; i++)
        tern_xml_unref(frame.owned[i]);
    free(frame.owned);
    tern_jid_free(&self_bare);
    tern_jid_free(&from_owned);
    tern_jid_free(&to);
}

int router_route_from(tern_xml_t *stanza, const route_origin_t *origin, const char **condition_r)
{
    if (router_admit(stanza, origin, condition_r) < 0)
        return -1;
    route_admitted(stanza, origin && origin->kind == ROUTE_CLIENT ? origin->session : NULL);
    return 0;
}

void router_route(tern_xml_t *stanza, tern_session_t *session)
{
    route_origin_t o = {.kind = session ? ROUTE_CLIENT : ROUTE_INTERNAL, .session = session};
    const char *condition = NULL;
    if (router_route_from(stanza, &o, &condition) < 0 && session && condition)
        sessions_close(session, condition);
}
