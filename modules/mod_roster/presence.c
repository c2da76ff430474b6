/*
 * presence.c — presence subscriptions and presence (RFC 6121 §3, §4).
 *
 * Owns the subscription state machine of Appendix A on both sides:
 * outbound (a local user's subscribe/subscribed/unsubscribe/unsubscribed,
 * seen on "pre-presence/..." on the sender's host before routing, to
 * local users, components and remote servers alike: bare JIDs stamped,
 * the sender's roster updated) and inbound ("presence/bare" and
 * "presence/full" on the recipient's host: the recipient's roster updated,
 * the request delivered, stored while pending (§3.1.3) or auto-answered,
 * pre-approvals (§3.4) honoured).  Also broadcast presence (§4.2, §4.4,
 * §4.5), probes (§4.3) and their answers from the sessions' last presence
 * or the last unavailable presence with <delay/> (XEP-0203), directed
 * presence (§4.6), and the unavailable presence of a session that ends
 * without saying so.  Available presence between users is delivered by
 * the core's default rules (RFC 6121 §8.5).
 *
 * Presence this file generates is routed with tern_route (never handed to
 * sessions directly, except requests re-delivered at login) so that
 * filters see it: "pre-presence" on the user's host, "in-presence" on the
 * recipient's.  Rosters are read into lists before anything is routed:
 * routing runs handlers that use the store.  The roster read of a
 * broadcast of available presence, which every login makes, is off the
 * event loop (tern_map_foreach_async): the broadcast, the probes and the
 * re-delivered requests go out when it is in, before anything else the
 * session sent after its presence is handled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* Most JIDs remembered per session for directed presence (§4.6). */
#define MAX_DIRECTED 1000

/* ---- small lists ---------------------------------------------------------- */

typedef struct strlist {
    char **v;
    size_t n;
    int failed;
} strlist_t;

static void list_add(strlist_t *l, const char *s)
{
    char **v = l->failed ? NULL : realloc(l->v, (l->n + 1) * sizeof(*v));
    if (v == NULL) {
        l->failed = 1;
        return;
    }
    l->v = v;
    if ((v[l->n] = strdup(s)) == NULL)
        l->failed = 1;
    else
        l->n++;
}

static int list_has(const strlist_t *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return 1;
    return 0;
}

static void list_free(strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

typedef struct sub_filter {
    strlist_t *out;
    unsigned bit;
} sub_filter_t;

static int collect_sub(void *ctx, const ritem_t *it)
{
    sub_filter_t *f = ctx;
    if (!it->hidden && (it->sub & f->bit))
        list_add(f->out, it->jid);
    return 0;
}

/* The contacts of `user` whose subscription has `bit` (TO or FROM). */
static void contacts_with(rhost_t *h, const char *user, unsigned bit, strlist_t *out)
{
    sub_filter_t f = {.out = out, .bit = bit};
    items_foreach(h, user, collect_sub, &f);
}

/* Full JIDs of the user's available sessions, but `except`. */
static void available_sessions(rhost_t *h, const char *user, const tern_session_t *except,
                               strlist_t *out)
{
    for (tern_session_t *s = tern_user_first_session(h->m, user); s; s = tern_session_next(s))
        if (s != except && tern_session_available(s))
            list_add(out, tern_session_jid(s)->full);
}

/* ---- session slots ---------------------------------------------------------- */

static void psess_free(void *p)
{
    psess_t *ps = p;
    if (ps->presence != NULL)
        tern_xml_unref(ps->presence);
    for (size_t i = 0; i < ps->ndirected; i++)
        free(ps->directed[i]);
    free(ps->directed);
    free(ps->unavail_status);
    free(ps);
}

psess_t *psess_get(rhost_t *h, tern_session_t *s, int create)
{
    psess_t *ps = tern_session_get(s, h->m);
    if (ps == NULL && create && (ps = calloc(1, sizeof(*ps))) != NULL) {
        tern_session_set(s, h->m, ps, psess_free);
        ps = tern_session_get(s, h->m); /* NULL if the core could not keep it */
    }
    return ps;
}

/* §4.6: remember (or forget) a JID that got directed presence. */
static void directed_note(psess_t *ps, const tern_jid_t *to, int available)
{
    for (size_t i = 0; i < ps->ndirected; i++) {
        if (strcmp(ps->directed[i], to->full) != 0)
            continue;
        if (!available) {
            free(ps->directed[i]);
            ps->directed[i] = ps->directed[--ps->ndirected];
        }
        return;
    }
    if (!available || ps->ndirected >= MAX_DIRECTED)
        return;
    char **v = realloc(ps->directed, (ps->ndirected + 1) * sizeof(*v));
    if (v == NULL)
        return;
    ps->directed = v;
    if ((v[ps->ndirected] = strdup(to->full)) != NULL)
        ps->ndirected++;
}

/* ---- building and sending presence ----------------------------------------- */

static const char *text_of(tern_xml_t *st, const char *name)
{
    tern_xml_t *el = tern_xml_child(st, name, TERN_NS_CLIENT);
    return el != NULL ? tern_xml_text(el) : NULL;
}

static int is_subscription(const char *type)
{
    return type != NULL && (strcmp(type, "subscribe") == 0 || strcmp(type, "subscribed") == 0 ||
                            strcmp(type, "unsubscribe") == 0 || strcmp(type, "unsubscribed") == 0);
}

static int is_type(const char *type, const char *want)
{
    return type != NULL && strcmp(type, want) == 0;
}

/* Route a copy of `pres` from `from` to `to`. */
static void route_copy(rhost_t *h, const tern_xml_t *pres, const char *from, const char *to)
{
    tern_xml_t *c = tern_xml_copy(pres);
    if (c == NULL)
        return;
    tern_xml_set_attr(c, "from", from);
    tern_xml_set_attr(c, "to", to);
    tern_route(h->m, c);
    tern_xml_unref(c);
}

static tern_xml_t *presence_new(const char *from, const char *to, const char *type,
                                const char *status)
{
    tern_xml_t *p = tern_xml_new("presence", TERN_NS_CLIENT);
    if (p == NULL)
        return NULL;
    tern_xml_set_attr(p, "from", from);
    tern_xml_set_attr(p, "to", to);
    if (type != NULL)
        tern_xml_set_attr(p, "type", type);
    if (status != NULL && *status) {
        tern_xml_t *el = tern_xml_add_child(p, "status", TERN_NS_CLIENT);
        if (el != NULL)
            tern_xml_add_text(el, status, strlen(status));
    }
    return p;
}

void presence_send_type(rhost_t *h, const char *from, const char *to, const char *type,
                        const char *status)
{
    tern_xml_t *p = presence_new(from, to, type, status);
    if (p != NULL) {
        tern_route(h->m, p);
        tern_xml_unref(p);
    }
}

/* The presence of every available session of `user` to `to` (§4.3.2
 * probe answers, §3.1.5 after approval): all of them, however many the
 * server lets one account bind (limits.max_sessions_per_user).  Returns how
 * many were sent. */
int presence_send_available(rhost_t *h, const char *user, const char *to)
{
    /* Copies first: routing may run handlers that touch these sessions. */
    size_t total = 0;
    for (tern_session_t *s = tern_user_first_session(h->m, user); s; s = tern_session_next(s))
        total++;
    if (total == 0)
        return 0;
    tern_xml_t **copies = calloc(total, sizeof(*copies));
    if (copies == NULL)
        return 0;
    size_t n = 0;
    for (tern_session_t *s = tern_user_first_session(h->m, user); s && n < total;
         s = tern_session_next(s)) {
        psess_t *ps = psess_get(h, s, 0);
        if (ps != NULL && ps->presence != NULL && (copies[n] = tern_xml_copy(ps->presence)))
            n++;
    }
    for (size_t i = 0; i < n; i++) {
        tern_xml_set_attr(copies[i], "to", to);
        tern_route(h->m, copies[i]);
        tern_xml_unref(copies[i]);
    }
    free(copies);
    return (int)n;
}

void presence_send_unavailable(rhost_t *h, const char *user, const char *to)
{
    strlist_t from = {0};
    for (tern_session_t *s = tern_user_first_session(h->m, user); s; s = tern_session_next(s)) {
        psess_t *ps = psess_get(h, s, 0);
        if (ps != NULL && ps->presence != NULL)
            list_add(&from, tern_session_jid(s)->full);
    }
    for (size_t i = 0; i < from.n; i++)
        presence_send_type(h, from.v[i], to, "unavailable", NULL);
    list_free(&from);
}

/* Hand `st` (a subscription stanza, from the contact's bare JID) to each
 * available resource of the user (§3.1.3, §3.2.3, §3.3.3). */
static void deliver_to_available(rhost_t *h, const char *user, const tern_xml_t *st,
                                 const char *from, const char *to)
{
    for (tern_session_t *s = tern_user_first_session(h->m, user); s; s = tern_session_next(s)) {
        if (!tern_session_available(s))
            continue;
        tern_xml_t *c = tern_xml_copy(st);
        if (c == NULL)
            return;
        tern_xml_set_attr(c, "from", from);
        tern_xml_set_attr(c, "to", to);
        tern_session_send(s, c);
        tern_xml_unref(c);
    }
}

/* ---- broadcast presence (§4.2, §4.4, §4.5) ---------------------------------- */

/* What a broadcast of available presence needs from the roster, read in
 * one walk: the contacts subscribed to the user (they get the presence),
 * those the user is subscribed to (probed at initial presence) and the
 * requests still pending in (re-delivered at initial presence). */
typedef struct bcast_lists {
    strlist_t from, to;
    strlist_t pend_jids, pend_status;
} bcast_lists_t;

static int collect_bcast(void *ctx, const ritem_t *it)
{
    bcast_lists_t *l = ctx;
    if (!it->hidden && (it->sub & ROSTER_SUB_FROM))
        list_add(&l->from, it->jid);
    if (!it->hidden && (it->sub & ROSTER_SUB_TO))
        list_add(&l->to, it->jid);
    if (it->in) {
        list_add(&l->pend_jids, it->jid);
        list_add(&l->pend_status, it->status != NULL ? it->status : "");
    }
    return 0;
}

static void bcast_lists_free(bcast_lists_t *l)
{
    list_free(&l->from);
    list_free(&l->to);
    list_free(&l->pend_jids);
    list_free(&l->pend_status);
}

/* §3.1.3: requests that arrived while the user was away (or were not
 * answered yet) go to a resource when it becomes available. */
static void redeliver_requests(const bcast_lists_t *l, const char *bare, tern_session_t *s)
{
    for (size_t i = 0; i < l->pend_jids.n && i < l->pend_status.n; i++) {
        tern_xml_t *req = presence_new(l->pend_jids.v[i], bare, "subscribe", l->pend_status.v[i]);
        if (req != NULL) {
            tern_session_send(s, req);
            tern_xml_unref(req);
        }
    }
}

/* §4.2.2, §4.4.2: `copy` (the client's presence, from its full JID, no
 * 'to'; taken over) becomes the session's last presence and goes to the
 * contacts of `l` and the user's available resources; at initial presence
 * the contacts the user is subscribed to are probed (§4.3.1), the other
 * resources' presence comes to this one and pending requests are
 * re-delivered (§3.1.3). */
static void broadcast_now(rhost_t *h, tern_session_t *s, psess_t *ps, tern_xml_t *copy,
                          bcast_lists_t *l)
{
    const tern_jid_t *jid = tern_session_jid(s);
    const char *user = jid->local, *full = jid->full, *bare = jid->bare;
    int initial = ps->presence == NULL;
    if (ps->presence != NULL)
        tern_xml_unref(ps->presence);
    ps->presence = copy;
    free(ps->unavail_status);
    ps->unavail_status = NULL;

    strlist_t own = {0};
    /* §4.2.2, §4.4.2: the user's available resources, this one included. */
    available_sessions(h, user, NULL, &own);
    /* One serialization for all of them: only 'to' differs.  `copy`
     * (the session's last presence) is frozen from here on. */
    for (size_t i = 0; i < own.n; i++)
        list_add(&l->from, own.v[i]);
    list_free(&own);
    tern_route_fanout(h->m, copy, (const char *const *)l->from.v, l->from.n);
    if (!initial)
        return;
    /* §4.3.1: probe the contacts the user is subscribed to. */
    for (size_t i = 0; i < l->to.n; i++)
        presence_send_type(h, bare, l->to.v[i], "probe", NULL);
    /* §4.2.2: the presence of the user's other available resources. */
    strlist_t others = {0};
    available_sessions(h, user, s, &others);
    for (size_t i = 0; i < others.n; i++) {
        tern_session_t *o = tern_session_find(h->m, others.v[i]);
        psess_t *other = o != NULL ? psess_get(h, o, 0) : NULL;
        if (other != NULL && other->presence != NULL)
            route_copy(h, other->presence, others.v[i], full);
    }
    list_free(&others);
    redeliver_requests(l, bare, s);
}

/* The roster was read (tern_map_foreach_async): broadcast `copy` now,
 * unless the session closed or the module went away meanwhile (the
 * contacts never saw this presence: nothing is owed to them). */
static void on_bcast_items(tern_module_ctx_t *m, tern_session_t *s, void *ctx,
                           const tern_map_result_t *res)
{
    tern_xml_t *copy = ctx;
    rhost_t *h = tern_get_data(m);
    psess_t *ps = h != NULL && s != NULL && res != NULL ? psess_get(h, s, 1) : NULL;
    const tern_jid_t *jid = s != NULL ? tern_session_jid(s) : NULL;
    if (ps == NULL || jid == NULL || jid->local == NULL) {
        tern_xml_unref(copy);
        return;
    }
    bcast_lists_t l;
    memset(&l, 0, sizeof(l));
    if (items_foreach_result(res, collect_bcast, &l) < 0)
        tern_log(m, TERN_LOG_ERROR, "cannot read the roster of %s: %s", jid->bare,
                 res->error != NULL ? res->error : "unreadable item");
    broadcast_now(h, s, ps, copy, &l);
    bcast_lists_free(&l);
}

/* The client's available presence: the roster is read off the loop and
 * the broadcast made when it is in (on_bcast_items).  Meanwhile the
 * session's input waits (core/store_jobs.c), so what the client sent
 * after its presence (a message, a probe answer it expects) is handled
 * after the broadcast, as when the roster was read here. */
static void broadcast_available(rhost_t *h, tern_event_t *ev)
{
    tern_session_t *s = ev->origin;
    psess_t *ps = psess_get(h, s, 1);
    tern_xml_t *copy = ps != NULL ? tern_xml_copy(ev->stanza) : NULL;
    if (copy == NULL)
        return;
    tern_xml_set_attr(copy, "from", ev->from->full);
    tern_xml_del_attr(copy, "to");
    if (tern_map_foreach_async(h->m, s, h->items, ev->from->local, on_bcast_items, copy) == 0)
        return;
    /* Out of memory for the job: read here rather than say nothing. */
    bcast_lists_t l;
    memset(&l, 0, sizeof(l));
    items_foreach(h, ev->from->local, collect_bcast, &l);
    broadcast_now(h, s, ps, copy, &l);
    bcast_lists_free(&l);
}

/* §4.5.2 (and §4.6.3 for directed presence): unavailable from `full` to
 * the contacts, the user's other resources and every JID that got
 * directed presence.  `st` is the client's presence or NULL. */
static void broadcast_unavailable(rhost_t *h, const char *user, const char *full, tern_session_t *s,
                                  psess_t *ps, tern_xml_t *st)
{
    int was_available = ps != NULL && ps->presence != NULL;
    tern_xml_t *p = st != NULL ? tern_xml_copy(st) : presence_new(full, NULL, "unavailable", NULL);
    if (p == NULL)
        return;
    tern_xml_del_attr(p, "to");
    tern_xml_set_attr(p, "from", full);
    strlist_t to = {0}, own = {0}, directed = {0};
    if (was_available) {
        contacts_with(h, user, ROSTER_SUB_FROM, &to);
        available_sessions(h, user, s, &own);
    }
    for (size_t i = 0; ps != NULL && i < ps->ndirected; i++) {
        tern_jid_t *j = tern_jid_new(ps->directed[i], NULL);
        if (j != NULL && !list_has(&to, j->bare))
            list_add(&directed, ps->directed[i]);
        tern_jid_free(&j);
        free(ps->directed[i]);
    }
    /* One serialization for all of them: only 'to' differs. */
    for (size_t i = 0; i < own.n; i++)
        list_add(&to, own.v[i]);
    for (size_t i = 0; i < directed.n; i++)
        list_add(&to, directed.v[i]);
    tern_route_fanout(h->m, p, (const char *const *)to.v, to.n);
    list_free(&directed);
    if (ps != NULL) {
        ps->ndirected = 0;
        if (ps->presence != NULL)
            tern_xml_unref(ps->presence);
        ps->presence = NULL;
    }
    tern_xml_unref(p);
    list_free(&to);
    list_free(&own);
}

/* 1 when one of the user's sessions but `except` is available. */
static int user_available(rhost_t *h, const char *user, const tern_session_t *except)
{
    for (tern_session_t *s = tern_user_first_session(h->m, user); s; s = tern_session_next(s))
        if (s != except && tern_session_available(s))
            return 1;
    return 0;
}

/* "presence/self": the client's broadcast presence (no 'to').  The core
 * has already set the session's availability and priority. */
int presence_on_self(tern_module_ctx_t *m, tern_event_t *ev)
{
    rhost_t *h = tern_get_data(m);
    if (tern_xml_attr(ev->stanza, "to") != NULL)
        return TERN_PASS; /* to the user's own bare JID: "presence/bare" */
    if (ev->origin == NULL || ev->from->local == NULL)
        return TERN_PASS;
    const char *type = tern_xml_attr(ev->stanza, "type");
    if (type == NULL) {
        broadcast_available(h, ev);
    } else if (is_type(type, "unavailable")) {
        psess_t *ps = psess_get(h, ev->origin, 1);
        int was_available = ps != NULL && ps->presence != NULL;
        const char *status = text_of(ev->stanza, "status");
        if (ps != NULL) {
            free(ps->unavail_status);
            ps->unavail_status = str_cut(status != NULL ? status : "", ROSTER_MAX_STATUS);
        }
        broadcast_unavailable(h, ev->from->local, ev->from->full, ev->origin, ps, ev->stanza);
        if (was_available && !user_available(h, ev->from->local, ev->origin))
            last_record(h, ev->from->local, status != NULL ? status : "");
    }
    /* Other types without 'to' mean nothing (RFC 6121 §3: they need a contact). */
    return TERN_HANDLED;
}

/* ---- outbound subscriptions (§3.1.2, §3.2.2, §3.3.2, §3.4, Appendix A.2) ---- */

/* Limit a new item of the roster (§2.3.3); 1 when there is room. */
int presence_room_for_one(rhost_t *h, const char *user)
{
    long n = items_count_visible(h, user);
    return n >= 0 && n < h->max_items;
}

/* Requests from strangers are kept up to max_items of them (beside the
 * roster itself); past that they are delivered but not kept. */
static int room_for_request(rhost_t *h, const char *user)
{
    long n = items_count_hidden(h, user);
    return n >= 0 && n < h->max_items;
}

/* The contact of `it` becomes subscribed to the user (see internal.h). */
void presence_grant(rhost_t *h, const char *user, ritem_t *it, int visible,
                    const tern_xml_t *answer)
{
    char bare[1100];
    user_bare(h, user, bare, sizeof(bare));
    it->in = 0;
    item_set_status(it, NULL);
    it->sub |= ROSTER_SUB_FROM;
    it->appr = 0;
    it->hidden = 0;
    roster_commit(h, user, it, 0, visible);
    if (answer != NULL)
        route_copy(h, answer, bare, it->jid);
    else
        presence_send_type(h, bare, it->jid, "subscribed", NULL);
    presence_send_available(h, user, it->jid);
}

static int outbound(rhost_t *h, tern_event_t *ev, const char *type)
{
    tern_xml_t *st = ev->stanza;
    const char *user = ev->from->local, *bare = ev->from->bare, *contact = ev->to->bare;
    if (strcmp(contact, bare) == 0)
        return TERN_HANDLED; /* no subscription to oneself */
    /* §3.1.2: subscription stanzas carry bare JIDs. */
    tern_xml_set_attr(st, "from", bare);
    tern_xml_set_attr(st, "to", contact);
    ritem_t *it = NULL;
    if (item_get(h, user, contact, &it) < 0) {
        tern_reply_error(h->m, ev, "wait", "internal-server-error", NULL);
        return TERN_HANDLED;
    }
    int visible = it != NULL && !it->hidden;
    int rc = TERN_PASS;
    if (is_type(type, "subscribe")) {
        /* A.2.1: none -> none+pending out; from -> from+pending out. */
        if (!visible && !presence_room_for_one(h, user)) {
            tern_reply_error(h->m, ev, "wait", "resource-constraint", NULL);
            item_free(&it);
            return TERN_HANDLED;
        }
        if (it == NULL)
            it = item_new(contact);
        if (it != NULL && (!visible || (!(it->sub & ROSTER_SUB_TO) && !it->ask))) {
            it->ask = !(it->sub & ROSTER_SUB_TO);
            it->hidden = 0;
            roster_commit(h, user, it, 0, visible);
        }
    } else if (is_type(type, "unsubscribe")) {
        /* A.2.2: the user no longer wants the contact's presence. */
        if (it != NULL && ((it->sub & ROSTER_SUB_TO) || it->ask)) {
            it->sub &= ~(unsigned)ROSTER_SUB_TO;
            it->ask = 0;
            roster_commit(h, user, it, 0, visible);
        }
    } else if (is_type(type, "subscribed")) {
        rc = TERN_HANDLED; /* routed here, or not at all */
        if (it != NULL && it->in) {
            /* A.2.3: approve the pending request; §3.1.5 then the
             * contact gets the presence of the user's resources. */
            presence_grant(h, user, it, visible, st);
        } else if (it == NULL || !(it->sub & ROSTER_SUB_FROM)) {
            /* §3.4: no request yet: a pre-approval, kept, not routed. */
            if (!visible && !presence_room_for_one(h, user)) {
                tern_reply_error(h->m, ev, "wait", "resource-constraint", NULL);
            } else {
                if (it == NULL)
                    it = item_new(contact);
                if (it != NULL && (!it->appr || !visible)) {
                    it->appr = 1;
                    it->hidden = 0;
                    roster_commit(h, user, it, 0, visible);
                }
            }
        }
    } else if (it != NULL) { /* unsubscribed */
        /* A.2.4: cancel the contact's subscription, deny the request, or
         * withdraw a pre-approval. */
        int had_from = (it->sub & ROSTER_SUB_FROM) != 0, shown = had_from || it->appr;
        if (shown || it->in) {
            it->sub &= ~(unsigned)ROSTER_SUB_FROM;
            it->in = 0;
            it->appr = 0;
            item_set_status(it, NULL);
            if (shown)
                roster_commit(h, user, it, 0, visible);
            else
                roster_store(h, user, it);
        }
        if (had_from)
            presence_send_unavailable(h, user, contact); /* §3.2.2 */
    }
    item_free(&it);
    return rc;
}

/* "pre-presence/...": a local user's presence with a 'to', before routing,
 * whatever the destination (local, component, remote).  It fires on the
 * sender's host; only what the client sent counts (ev->origin), not what
 * modules route on the user's behalf. */
int presence_on_pre(tern_module_ctx_t *m, tern_event_t *ev)
{
    if (ev->origin == NULL || ev->from->local == NULL || tern_xml_attr(ev->stanza, "to") == NULL)
        return TERN_PASS;
    rhost_t *h = rhost_find(ev->from->domain);
    if (h == NULL)
        return TERN_PASS;
    const char *type = tern_xml_attr(ev->stanza, "type");
    if (is_subscription(type))
        return outbound(h, ev, type);
    if (type != NULL && !is_type(type, "unavailable"))
        return TERN_PASS; /* probe, error */
    /* §4.6: directed presence.  A contact subscribed to the user gets the
     * broadcast unavailable anyway, if the session is available. */
    if (strcmp(ev->to->bare, ev->from->bare) == 0)
        return TERN_PASS;
    psess_t *ps = psess_get(h, ev->origin, 1);
    if (ps == NULL)
        return TERN_PASS;
    if (type == NULL && ps->presence != NULL) {
        ritem_t *it = NULL;
        int subscribed = item_get(h, ev->from->local, ev->to->bare, &it) == 1 && !it->hidden &&
                         (it->sub & ROSTER_SUB_FROM);
        item_free(&it);
        if (subscribed)
            return TERN_PASS;
    }
    directed_note(ps, ev->to, type == NULL);
    return TERN_PASS;
}

/* ---- inbound subscriptions and probes (§3.1.3, §3.2.3, §3.3.3, §4.3.2) ------- */

/* XEP-0082 date-time of a Unix time. */
static void stamp_of(int64_t when_s, char *buf, size_t len)
{
    time_t t = (time_t)when_s;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "1970-01-01T00:00:00Z");
}

/* §4.3.2: the presence of each available resource, else the last
 * unavailable presence with its time (XEP-0203), else plain unavailable. */
static void answer_probe(rhost_t *h, const char *user, const char *bare, const char *to)
{
    if (presence_send_available(h, user, to) > 0)
        return;
    int64_t when = 0;
    char *status = NULL;
    int known = last_lookup(h, user, &when, &status) == 1;
    tern_xml_t *p = presence_new(bare, to, "unavailable", known ? status : NULL);
    if (p != NULL && known) {
        char stamp[32];
        stamp_of(when, stamp, sizeof(stamp));
        tern_xml_t *d = tern_xml_add_child(p, "delay", NS_DELAY);
        if (d != NULL) {
            tern_xml_set_attr(d, "from", h->name);
            tern_xml_set_attr(d, "stamp", stamp);
        }
    }
    if (p != NULL) {
        tern_route(h->m, p);
        tern_xml_unref(p);
    }
    free(status);
}

static void inbound(rhost_t *h, tern_event_t *ev, const char *type)
{
    tern_xml_t *st = ev->stanza;
    const char *user = ev->to->local, *bare = ev->to->bare, *contact = ev->from->bare;
    if (!tern_user_exists(h->m, user)) {
        /* RFC 6121 §8.5.1: nothing for a user that does not exist, but a
         * request gets its answer (§3.1.3). */
        if (is_type(type, "subscribe"))
            presence_send_type(h, bare, contact, "unsubscribed", NULL);
        return;
    }
    ritem_t *it = NULL;
    if (item_get(h, user, contact, &it) < 0)
        return;
    int visible = it != NULL && !it->hidden;
    if (is_type(type, "probe")) {
        if (strcmp(contact, bare) == 0 || (visible && (it->sub & ROSTER_SUB_FROM)))
            answer_probe(h, user, bare, ev->from->full);
        else /* §4.3.2: not subscribed: nothing is revealed */
            presence_send_type(h, bare, contact, "unsubscribed", NULL);
    } else if (is_type(type, "subscribe")) {
        if (visible && (it->sub & ROSTER_SUB_FROM)) {
            /* A.3.1: already subscribed: answer for the user. */
            presence_send_type(h, bare, contact, "subscribed", NULL);
            presence_send_available(h, user, contact);
        } else if (visible && it->appr) {
            /* §3.4: pre-approved: from (or both) at once. */
            presence_grant(h, user, it, visible, NULL);
        } else {
            /* A.3.1: pending in, kept until answered (§3.1.3). */
            if (it == NULL && (it = item_new(contact)) != NULL)
                it->hidden = 1;
            if (it != NULL && (visible || room_for_request(h, user))) {
                it->in = 1;
                item_set_status(it, text_of(st, "status"));
                roster_store(h, user, it); /* pending in is not shown (§2.1.2.5) */
            }
            deliver_to_available(h, user, st, contact, bare);
        }
    } else if (is_type(type, "subscribed")) {
        /* A.3.3: only an answer to our pending request counts. */
        if (visible && it->ask) {
            it->ask = 0;
            it->sub |= ROSTER_SUB_TO;
            roster_commit(h, user, it, 0, visible);
            deliver_to_available(h, user, st, contact, bare);
        }
    } else if (is_type(type, "unsubscribe")) {
        /* A.3.2: the contact leaves the user's presence (or withdraws
         * its request); §3.3.3: it gets unavailable presence. */
        if (it != NULL && ((it->sub & ROSTER_SUB_FROM) || it->in)) {
            int had_from = (it->sub & ROSTER_SUB_FROM) != 0;
            it->sub &= ~(unsigned)ROSTER_SUB_FROM;
            it->in = 0;
            item_set_status(it, NULL);
            if (had_from)
                roster_commit(h, user, it, 0, visible);
            else
                roster_store(h, user, it);
            deliver_to_available(h, user, st, contact, bare);
            if (had_from)
                presence_send_unavailable(h, user, contact);
        }
    } else if (is_type(type, "unsubscribed")) {
        /* A.3.4: the contact cancels or denies the user's subscription. */
        if (visible && ((it->sub & ROSTER_SUB_TO) || it->ask)) {
            it->sub &= ~(unsigned)ROSTER_SUB_TO;
            it->ask = 0;
            roster_commit(h, user, it, 0, visible);
            deliver_to_available(h, user, st, contact, bare);
        }
    }
    item_free(&it);
}

/* "presence/bare": subscription stanzas and probes are the server's
 * business; available and unavailable presence is delivered (§8.5.2.1). */
int presence_on_bare(tern_module_ctx_t *m, tern_event_t *ev)
{
    const char *type = tern_xml_attr(ev->stanza, "type");
    if (ev->to == NULL || ev->to->local == NULL ||
        !(is_subscription(type) || is_type(type, "probe")))
        return TERN_PASS;
    inbound(tern_get_data(m), ev, type);
    return TERN_HANDLED;
}

/* "presence/full": §3.1.3 and §4.3.2 treat a subscription stanza or probe
 * to a full JID as sent to the bare JID; other presence goes to the
 * resource, or nowhere if it is gone (§8.5.3.2). */
int presence_on_full(tern_module_ctx_t *m, tern_event_t *ev)
{
    return presence_on_bare(m, ev);
}

/* ---- the end of a session, the end of an account ------------------------------ */

/* "session/closed": a session that ends without unavailable presence
 * (§4.5.2: the server sends it), and the last logout of the account. */
int presence_on_closed(tern_module_ctx_t *m, tern_event_t *ev)
{
    rhost_t *h = tern_get_data(m);
    tern_session_t *s = ev->session;
    const tern_jid_t *jid = s != NULL ? tern_session_jid(s) : NULL;
    if (jid == NULL || jid->local == NULL)
        return TERN_PASS;
    psess_t *ps = psess_get(h, s, 0);
    int was_available = ps != NULL && ps->presence != NULL;
    char *status = ps != NULL && ps->unavail_status != NULL ? strdup(ps->unavail_status) : NULL;
    if (ps != NULL && (was_available || ps->ndirected > 0))
        broadcast_unavailable(h, jid->local, jid->full, s, ps, NULL);
    int others = 0;
    for (tern_session_t *o = tern_user_first_session(m, jid->local); o; o = tern_session_next(o))
        others += o != s;
    if (((was_available && !user_available(h, jid->local, s)) || others == 0) &&
        tern_user_exists(m, jid->local))
        last_record(h, jid->local, was_available || status == NULL ? "" : status);
    free(status);
    return TERN_PASS;
}

typedef struct accounts {
    strlist_t users;
} accounts_t;

static int collect_account(void *ctx, const char *local)
{
    list_add(&((accounts_t *)ctx)->users, local);
    return 0;
}

/* "user/deleted": the account's own storage is gone already; the local
 * users who had it as a contact see both subscriptions cancelled, as if
 * it had sent unsubscribe and unsubscribed (§3.2.3, §3.3.3). */
int presence_on_user_deleted(tern_module_ctx_t *m, tern_event_t *ev)
{
    rhost_t *h = tern_get_data(m);
    char gone[1100];
    if (ev->user == NULL)
        return TERN_PASS;
    user_bare(h, ev->user, gone, sizeof(gone));
    for (rhost_t *o = rhost_first(); o != NULL; o = o->next) {
        accounts_t acc = {{0}};
        tern_account_foreach(o->m, collect_account, &acc);
        for (size_t i = 0; i < acc.users.n; i++) {
            ritem_t *it = NULL;
            if (item_get(o, acc.users.v[i], gone, &it) != 1)
                continue;
            int visible = !it->hidden, had_to = (it->sub & ROSTER_SUB_TO) != 0;
            if (it->sub != ROSTER_SUB_NONE || it->ask || it->in || it->appr) {
                it->sub = ROSTER_SUB_NONE;
                it->ask = it->in = it->appr = 0;
                item_set_status(it, NULL);
                roster_commit(o, acc.users.v[i], it, 0, visible);
            }
            if (had_to) {
                char bare[1100];
                presence_send_type(o, gone, user_bare(o, acc.users.v[i], bare, sizeof(bare)),
                                   "unavailable", NULL);
            }
            item_free(&it);
        }
        list_free(&acc.users);
    }
    return TERN_PASS;
}
