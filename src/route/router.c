/*
 * router.c — stanza routing and the default delivery rules.
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

#include "core/hashmap.h"
#include "core/log.h"
#include "core/module_api.h"
#include "core/modules.h"
#include "core/server.h"
#include "route/sessions.h"
#include "xmpp/stanza.h"

typedef enum { DEST_HOST = 0, DEST_BARE, DEST_FULL, DEST_SELF } dest_t;
static const char *const dest_names[] = {"host", "bare", "full", "self"};
static const char *const kind_names[] = {"", "message", "presence", "iq"};
static const char *const pre_names[] = {"", "pre-message", "pre-presence", "pre-iq"};
static const char *const in_names[] = {"", "in-message", "in-presence", "in-iq"};

typedef struct component_link {
    router_component_fn fn;
    void *ctx; /* NULL while the component is away */
} component_link_t;

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
static hashmap_t *components;

void router_set_remote(router_remote_fn fn)
{
    remote_fn = fn;
}

int router_component_declare(const char *domain)
{
    if (!components && !(components = hashmap_new()))
        return -1;
    if (hashmap_get(components, domain))
        return 0;
    component_link_t *link = calloc(1, sizeof(*link));
    if (!link || hashmap_put(components, domain, link) < 0) {
        free(link);
        return -1;
    }
    return 0;
}

int router_is_component(const char *domain)
{
    return components && hashmap_get(components, domain) != NULL;
}

/* Attach a live component; -1 if the domain is not declared or already taken. */
int router_component_attach(const char *domain, router_component_fn fn, void *ctx)
{
    component_link_t *link = components ? hashmap_get(components, domain) : NULL;
    if (!link || link->ctx)
        return -1;
    link->fn = fn;
    link->ctx = ctx;
    return 0;
}

void router_component_detach(const char *domain, void *ctx)
{
    component_link_t *link = components ? hashmap_get(components, domain) : NULL;
    if (link && link->ctx == ctx) {
        link->fn = NULL;
        link->ctx = NULL;
    }
}

static int free_link(void *ctx, const char *key, void *value)
{
    free(value);
    return 0;
}

void router_free(void)
{
    if (components)
        hashmap_foreach(components, free_link, NULL);
    hashmap_free(&components);
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

static int account_exists(host_t *h, const tern_jid_t *to)
{
    if (sessions_find_bare(to->bare))
        return 1;
    return server.db && store_account_exists(server.db, h->name, to->local) == 1;
}

static void deliver(tern_session_t *s, tern_xml_t *stanza)
{
    tern_xml_freeze(stanza); /* an edited copy (tern_event_edit) is done now */
    s->deliver(s, stanza);
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
static int deliver_message_to_bare(const tern_jid_t *to, tern_xml_t *stanza, int all)
{
    user_sessions_t *u = sessions_find_bare(to->bare);
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

static void deliver_presence_to_bare(const tern_jid_t *to, tern_xml_t *stanza)
{
    user_sessions_t *u = sessions_find_bare(to->bare);
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
    if (!account_exists(h, ev->to)) {
        /* RFC 6121 §8.5.1: no such user. */
        if (kind != STANZA_PRESENCE &&
            !(kind == STANZA_IQ && !is_type(type, "get") && !is_type(type, "set")))
            router_bounce(st, "cancel", "service-unavailable", NULL);
        return;
    }
    switch (kind) {
    case STANZA_MESSAGE:
        if (is_type(type, "normal") || is_type(type, "chat")) {
            if (deliver_message_to_bare(ev->to, st, 0) > 0)
                return;
            if (hooks_fire(h->hooks, "message/offline", ev) == TERN_HANDLED)
                return;
            router_bounce(st, "cancel", "service-unavailable", NULL);
        } else if (is_type(type, "headline")) {
            deliver_message_to_bare(ev->to, st, 1);
        } else if (is_type(type, "groupchat")) {
            router_bounce(st, "cancel", "service-unavailable", NULL);
        }
        return;
    case STANZA_PRESENCE:
        if (!is_type(type, "probe") && !is_type(type, "error"))
            deliver_presence_to_bare(ev->to, st);
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
    tern_session_t *s = sessions_find_full(ev->to->full);
    if (s) {
        deliver(s, st);
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
            if (module_api_iq_reply(h, ev->stanza, ev->from))
                return TERN_HANDLED;
        }
    }
    const char *parts[2] = {kind_names[kind], dest_names[dest]};
    return hooks_fire_parts(h->hooks, parts, 2, "/", ev);
}

static void dispatch(host_t *h, stanza_kind_t kind, dest_t dest, tern_event_t *ev)
{
    /* Inbound filters: before any module answers or delivers for the
     * account.  Not for a user's stanzas to their own account ("self"). */
    if (dest == DEST_BARE || dest == DEST_FULL) {
        const char *parts[2] = {in_names[kind], dest_names[dest]};
        if (hooks_fire_parts(h->hooks, parts, 2, "/", ev) == TERN_HANDLED)
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

static void route_elsewhere(tern_xml_t *stanza, const tern_jid_t *to)
{
    tern_xml_freeze(stanza);
    component_link_t *link = components ? hashmap_get(components, to->domain) : NULL;
    if (link) {
        if (link->ctx)
            link->fn(link->ctx, stanza);
        else
            router_bounce(stanza, "cancel", "service-unavailable",
                          "the component is not connected");
        return;
    }
    if (remote_fn && remote_fn(stanza, to) == 0)
        return;
    router_bounce(stanza, "cancel", "remote-server-not-found", NULL);
}

/* The stanza is frozen once routed (<tern/xml.h>): a client's stanza
 * after its sender's outgoing filters (pre-KIND/DEST, which may still
 * adjust it: bare JIDs on subscriptions, avatar hashes), anything a
 * module routes before it gets here (tern_route).  From then on events
 * and sessions share it and never change it. */
void router_route(tern_xml_t *stanza, tern_session_t *origin)
{
    stanza_kind_t kind = stanza_kind(stanza);
    if (kind == STANZA_OTHER)
        return;
    const char *from_s = tern_xml_attr(stanza, "from");
    const char *to_s = tern_xml_attr(stanza, "to");
    tern_jid_t *from = from_s ? tern_jid_new(from_s, NULL) : NULL;
    if (!from) {
        log_debug("dropping a stanza without a valid 'from'");
        return;
    }
    tern_jid_t *to = NULL;
    if (to_s && !(to = tern_jid_new(to_s, NULL))) {
        router_bounce(stanza, "modify", "jid-malformed", NULL);
        tern_jid_free(&from);
        return;
    }
    host_t *h = to ? hosts_find(to->domain) : origin ? origin->host : NULL;
    if (!to && !h) {
        tern_jid_free(&from);
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
        tern_jid_free(&from);
        return;
    }
    if (dest == DEST_FULL && h)
        ev.session = sessions_find_full(to->full);

    /* Outgoing filters run on the sender's host, wherever the stanza goes:
     * for what a client sends, and for what a module routes on behalf of an
     * account of a local host (ev.origin NULL). */
    host_t *sender_host = origin ? origin->host : from->local ? hosts_find(from->domain) : NULL;
    int handled = 0;
    if (sender_host) {
        const char *parts[2] = {pre_names[kind], dest_names[dest]};
        handled = hooks_fire_parts(sender_host->hooks, parts, 2, "/", &ev) == TERN_HANDLED;
    }
    tern_xml_freeze(ev.stanza);
    route_frame_t frame = {.ev = &ev, .up = frames};
    frames = &frame;
    if (!handled && h)
        dispatch(h, kind, dest, &ev);
    else if (!handled)
        route_elsewhere(ev.stanza, to);
    frames = frame.up;
    for (size_t i = 0; i < frame.nowned; i++)
        tern_xml_unref(frame.owned[i]);
    free(frame.owned);
    tern_jid_free(&self_bare);
    tern_jid_free(&from);
    tern_jid_free(&to);
}
