/*
 * notify.c — XEP-0163 §4.3 event notifications and the last published item.
 *
 * Who is told of a change on node N of account U:
 *   - U's own available sessions with non-negative priority whose caps say
 *     N+notify (§4.3.1 3, §4.3.2);
 *   - the available sessions (same rules) of U's contacts whose roster
 *     subscription is from or both, when N's access model lets them read
 *     (§4.3.1 2).  Contacts on this server: we know their caps through
 *     their own broadcast presence.  Contacts on other servers: through the
 *     presence they send to our users (caps.c keeps their available
 *     resources); a resource whose caps we do not know gets nothing
 *     (§4.3.3 2).  Such a resource also gets the last items when it
 *     arrives (pep_send_last_items_remote, called from caps.c).
 * Every notification is a <message type='headline'/> from U's bare JID
 * (§4.3.3 1) to one full JID, built afresh for each recipient.
 *
 * §4.3.4: when a session sends its first available presence, it gets the
 * last item of every node it is interested in and may read: U's own nodes
 * and those of the contacts it has a subscription to (to or both), with a
 * XEP-0203 delay stamp, unless the node says send_last_published_item
 * "never" or "on_sub".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pep.h"

/* A new <message from to type=headline id><event/></message>, or NULL;
 * *event_r is the <event/>. */
static tern_xml_t *new_event_message(pep_state_t *st, const char *from, const char *to,
                                     tern_xml_t **event_r)
{
    char id[48];
    tern_xml_t *msg = tern_xml_new("message", TERN_NS_CLIENT);
    tern_xml_t *event = msg != NULL ? tern_xml_add_child(msg, "event", NS_PUBSUB_EVENT) : NULL;
    if (event == NULL) {
        if (msg != NULL)
            tern_xml_unref(msg);
        return NULL;
    }
    pep_new_id(id, sizeof id);
    tern_xml_set_attr(msg, "from", from);
    tern_xml_set_attr(msg, "to", to);
    tern_xml_set_attr(msg, "type", "headline");
    tern_xml_set_attr(msg, "id", id);
    *event_r = event;
    return msg;
}

/* Route a copy of `event_child` inside a notification to `to`. */
static void send_event(pep_state_t *st, const char *from, const char *to,
                       const tern_xml_t *event_child)
{
    tern_xml_t *event;
    tern_xml_t *msg = new_event_message(st, from, to, &event);
    if (msg == NULL)
        return;
    if (tern_xml_copy_into(event, event_child) != NULL)
        tern_route(st->m, msg);
    tern_xml_unref(msg);
}

/* Whether session s should get notifications of node `node` (§4.3.2). */
static int session_interested(const pep_state_t *st, const tern_session_t *s, const char *node)
{
    return tern_session_available(s) && tern_session_priority(s) >= 0 &&
           pep_session_wants(st, s, node);
}

typedef struct notify_ctx {
    pep_state_t *st;
    pep_node_t *node;
    const tern_xml_t *event_child;
    char owner[1100];
} notify_ctx_t;

static void notify_remote(void *ctx, const char *full)
{
    notify_ctx_t *c = ctx;
    send_event(c->st, c->owner, full, c->event_child);
}

/* Send to the interested sessions of a local account `bare` (any host where
 * mod_pep runs), or to the interested resources of a contact elsewhere. */
static void notify_account(notify_ctx_t *c, const char *bare)
{
    const char *at = strchr(bare, '@');
    pep_state_t *cst = at != NULL ? pep_state_of_host(at + 1) : NULL;
    if (cst == NULL && at != NULL) {
        pep_remote_foreach_wanting(c->st, c->node->user, bare, c->node->name, notify_remote, c);
        return;
    }
    if (cst == NULL || (size_t)(at - bare) >= 1024)
        return;
    char local[1024];
    memcpy(local, bare, (size_t)(at - bare));
    local[at - bare] = '\0';
    for (tern_session_t *s = tern_user_first_session(cst->m, local); s != NULL;
         s = tern_session_next(s))
        if (session_interested(cst, s, c->node->name))
            send_event(c->st, c->owner, tern_session_jid(s)->full, c->event_child);
}

static int notify_contact(void *ctx, const char *contact)
{
    notify_ctx_t *c = ctx;
    if (strcmp(contact, c->owner) == 0 || pep_access(c->st, c->node, contact) != PEP_ALLOW)
        return 0;
    notify_account(c, contact);
    return 0;
}

void pep_notify(pep_state_t *st, pep_node_t *n, const tern_xml_t *event_child)
{
    notify_ctx_t c = {.st = st, .node = n, .event_child = event_child};
    snprintf(c.owner, sizeof c.owner, "%s@%s", n->user, tern_host(st->m));
    notify_account(&c, c.owner);
    pep_roster_foreach(st, n->user, 1, notify_contact, &c);
}

/* ---- the last published item (§4.3.4) ------------------------------------ */

typedef struct last_ctx {
    pep_state_t *st;      /* the node owner's host */
    pep_state_t *sess_st; /* the session's host */
    tern_session_t *s;    /* or NULL for a remote contact: */
    const char *to;       /* its full JID */
    const caps_entry_t *caps;
    const char *owner_user; /* localpart on st's host */
    char owner[1100];
    char reader[1100]; /* the session's bare JID */
} last_ctx_t;

static void send_last(last_ctx_t *c, pep_node_t *n)
{
    tern_xml_t *it = pep_item_last(n);
    if (it == NULL || n->cfg.send_last != 2)
        return;
    tern_xml_t *event;
    const char *to = c->s != NULL ? tern_session_jid(c->s)->full : c->to;
    tern_xml_t *msg = new_event_message(c->st, c->owner, to, &event);
    if (msg == NULL)
        return;
    tern_xml_t *items = tern_xml_add_child(event, "items", NULL);
    if (items != NULL) {
        tern_xml_set_attr(items, "node", n->name);
        pep_copy_item(items, it, NS_PUBSUB_EVENT);
    }
    const char *published = tern_xml_attr(it, "published");
    tern_xml_t *delay = tern_xml_add_child(msg, "delay", NS_DELAY); /* XEP-0203 */
    if (delay != NULL && published != NULL) {
        char stamp[40];
        pep_stamp(strtoll(published, NULL, 10), stamp, sizeof stamp);
        tern_xml_set_attr(delay, "stamp", stamp);
        tern_xml_set_attr(delay, "from", c->owner);
    }
    if (items != NULL)
        tern_route(c->st->m, msg);
    tern_xml_unref(msg);
}

static int last_for_node(void *ctx, const char *name)
{
    last_ctx_t *c = ctx;
    if (c->s != NULL ? !pep_session_wants(c->sess_st, c->s, name) : !pep_caps_wants(c->caps, name))
        return 0;
    pep_node_t *n = NULL;
    if (pep_node_load(c->st, c->owner_user, name, &n) == 1 &&
        pep_access(c->st, n, c->reader) == PEP_ALLOW)
        send_last(c, n);
    pep_node_free(&n);
    return 0;
}

/* The nodes of account `bare` (local, with mod_pep) for session c->s. */
static int last_of_account(void *ctx, const char *bare)
{
    last_ctx_t *c = ctx;
    const char *at = strchr(bare, '@');
    pep_state_t *ost = at != NULL ? pep_state_of_host(at + 1) : NULL;
    if (ost == NULL || (size_t)(at - bare) >= 1024)
        return 0;
    char local[1024];
    memcpy(local, bare, (size_t)(at - bare));
    local[at - bare] = '\0';
    last_ctx_t sub = *c;
    sub.st = ost;
    sub.owner_user = local;
    snprintf(sub.owner, sizeof sub.owner, "%s", bare);
    pep_node_foreach(ost, local, last_for_node, &sub);
    return 0;
}

void pep_send_last_items(pep_state_t *st, tern_session_t *s)
{
    const tern_jid_t *jid = tern_session_jid(s);
    if (jid == NULL || jid->local == NULL)
        return;
    last_ctx_t c = {.st = st, .sess_st = st, .s = s, .owner_user = jid->local};
    snprintf(c.reader, sizeof c.reader, "%s", jid->bare);
    last_of_account(&c, jid->bare);                             /* the user's own nodes */
    pep_roster_foreach(st, jid->local, 0, last_of_account, &c); /* contacts it follows */
}

void pep_send_last_items_remote(pep_state_t *st, const char *user, const char *bare,
                                const char *full, const caps_entry_t *e)
{
    last_ctx_t c = {.st = st, .sess_st = st, .to = full, .caps = e, .owner_user = user};
    snprintf(c.reader, sizeof c.reader, "%s", bare);
    snprintf(c.owner, sizeof c.owner, "%s@%s", user, tern_host(st->m));
    pep_node_foreach(st, user, last_for_node, &c);
}

/* ---- observers ----------------------------------------------------------- */

void pep_observers_fire(pep_state_t *st, tern_module_ctx_t *except, const char *user,
                        const char *node, tern_pep_change_t what, const char *item_id,
                        const tern_xml_t *payload)
{
    pep_observer_t *o = st->observers, *next;
    for (; o != NULL; o = next) {
        next = o->next;
        if (o->owner != except && (o->node == NULL || strcmp(o->node, node) == 0))
            o->fn(o->owner, user, node, what, item_id, payload, o->arg);
    }
}
