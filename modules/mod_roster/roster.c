/*
 * roster.c — roster management: jabber:iq:roster (RFC 6121 §2).
 *
 * Owns roster get (§2.2) with versioning (§2.6), roster set (§2.3) and
 * remove (§2.5) with their error cases, and roster pushes (§2.1.6) to the
 * user's interested resources: the sessions that asked for the roster,
 * marked in the session slot.  The subscription side effects of a remove
 * (§2.5.2) go out as presence stanzas; the state machine itself is
 * presence.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* A push of `it` (subscription='remove' when `removed`) to one session. */
static void push_one(rhost_t *h, tern_session_t *s, const char *bare, const ritem_t *it,
                     int removed, const char *ver)
{
    char id[32];
    tern_xml_t *iq = tern_xml_new("iq", TERN_NS_CLIENT);
    tern_xml_t *query = iq != NULL ? tern_xml_add_child(iq, "query", NS_ROSTER) : NULL;
    tern_xml_t *x = query != NULL ? item_to_xml(it, query) : NULL;
    if (x != NULL) {
        snprintf(id, sizeof(id), "push%lu", ++h->push_seq);
        tern_xml_set_attr(iq, "type", "set");
        tern_xml_set_attr(iq, "id", id);
        tern_xml_set_attr(iq, "from", bare); /* §2.1.6: from the account itself */
        tern_xml_set_attr(iq, "to", tern_session_jid(s)->full);
        if (ver != NULL)
            tern_xml_set_attr(query, "ver", ver);
        if (removed) {
            /* §2.5.2: only jid and subscription='remove'. */
            tern_xml_unlink(x);
            x = tern_xml_add_child(query, "item", NS_ROSTER);
            if (x != NULL) {
                tern_xml_set_attr(x, "jid", it->jid);
                tern_xml_set_attr(x, "subscription", "remove");
            }
        }
        tern_session_send(s, iq);
    }
    if (iq != NULL)
        tern_xml_unref(iq);
}

/* §2.1.6: push to every interested resource of the user, with a fresh id. */
static void push_all(rhost_t *h, const char *user, const ritem_t *it, int removed, const char *ver)
{
    char bare[1100];
    user_bare(h, user, bare, sizeof(bare));
    for (tern_session_t *s = tern_user_first_session(h->m, user); s; s = tern_session_next(s)) {
        psess_t *ps = psess_get(h, s, 0);
        if (ps != NULL && ps->interested)
            push_one(h, s, bare, it, removed, ver);
    }
}

int roster_store(rhost_t *h, const char *user, const ritem_t *it)
{
    int rc = item_is_empty(it) ? item_del(h, user, it->jid) : item_put(h, user, it);
    if (rc < 0)
        tern_log(h->m, TERN_LOG_ERROR, "cannot store the roster of %s", user);
    return rc;
}

int roster_commit(rhost_t *h, const char *user, ritem_t *it, int removed, int was_visible)
{
    char ver[32];
    int gone = removed || item_is_empty(it);
    int rc = gone ? item_del(h, user, it->jid) : item_put(h, user, it);
    if (rc < 0) {
        tern_log(h->m, TERN_LOG_ERROR, "cannot store the roster of %s", user);
        return -1;
    }
    if (!was_visible && (gone || it->hidden))
        return 0; /* nothing the user ever saw changed */
    if (roster_bump(h, user, ver, sizeof(ver)) < 0)
        return -1;
    push_all(h, user, it, gone || it->hidden, h->versioning ? ver : NULL);
    return 0;
}

/* ---- get (§2.2, §2.6) ---------------------------------------------------- */

static int add_visible(void *ctx, const ritem_t *it)
{
    if (!it->hidden)
        item_to_xml(it, ctx);
    return 0;
}

/* A roster get whose items are being read (tern_map_foreach_async). */
typedef struct get_req {
    tern_xml_t *reply; /* the iq result, its <query/> to fill */
    tern_xml_t *query;
} get_req_t;

/* The items were read: fill the result and send it to the session that
 * asked, unless it went away meanwhile (then it is only freed). */
static void on_items(tern_module_ctx_t *m, tern_session_t *s, void *ctx,
                     const tern_map_result_t *res)
{
    get_req_t *g = ctx;
    if (res != NULL && items_foreach_result(res, add_visible, g->query) >= 0) {
        tern_session_send(s, g->reply); /* paced: a big roster waits for a slow reader */
    } else if (res != NULL) {
        tern_log(m, TERN_LOG_ERROR, "cannot read a roster: %s",
                 res->error != NULL ? res->error : "unreadable item");
        tern_xml_t *err = tern_xml_new("iq", TERN_NS_CLIENT);
        tern_xml_t *e = err != NULL ? tern_xml_add_child(err, "error", NULL) : NULL;
        tern_xml_t *cond = e != NULL ? tern_xml_add_child(e, "internal-server-error",
                                                          "urn:ietf:params:xml:ns:xmpp-stanzas")
                                     : NULL;
        if (cond != NULL) { /* RFC 6120 §8.3: same id, addresses of the result */
            tern_xml_set_attr(err, "type", "error");
            tern_xml_set_attr(err, "id", tern_xml_attr(g->reply, "id"));
            tern_xml_set_attr(err, "to", tern_xml_attr(g->reply, "to"));
            tern_xml_set_attr(err, "from", tern_xml_attr(g->reply, "from"));
            tern_xml_set_attr(e, "type", "wait");
            tern_session_send(s, err);
        }
        if (err != NULL)
            tern_xml_unref(err);
    }
    tern_xml_unref(g->reply);
    free(g);
}

int roster_on_get(tern_module_ctx_t *m, tern_event_t *ev)
{
    rhost_t *h = tern_get_data(m);
    const char *user = ev->from->local;
    tern_xml_t *req = tern_xml_child(ev->stanza, "query", NS_ROSTER);
    if (ev->origin == NULL || user == NULL || req == NULL ||
        strcmp(ev->from->domain, h->name) != 0) {
        tern_reply_error(m, ev, "cancel", "service-unavailable", NULL);
        return TERN_HANDLED;
    }
    psess_t *ps = psess_get(h, ev->origin, 1);
    if (ps != NULL)
        ps->interested = 1; /* §2.1.6 */
    const char *client_ver = h->versioning ? tern_xml_attr(req, "ver") : NULL;
    char ver[32];
    /* Read before the items: should a change come between, the client
     * keeps the newer items under the older version and asks again. */
    roster_version(h, user, ver, sizeof(ver));
    tern_xml_t *reply = tern_iq_result(ev);
    if (reply == NULL)
        return TERN_HANDLED;
    /* §2.6.3: the client has this version: an empty result, pushes follow. */
    if (client_ver != NULL && strcmp(client_ver, ver) == 0) {
        tern_route(m, reply);
        tern_xml_unref(reply);
        return TERN_HANDLED;
    }
    get_req_t *g = calloc(1, sizeof(*g));
    tern_xml_t *query = tern_xml_add_child(reply, "query", NS_ROSTER);
    if (query != NULL && client_ver != NULL)
        tern_xml_set_attr(query, "ver", ver);
    if (g != NULL && query != NULL) {
        g->reply = reply;
        g->query = query;
        /* The items off the loop; the answer when they are read. */
        if (tern_map_foreach_async(m, ev->origin, h->items, user, on_items, g) == 0)
            return TERN_HANDLED;
    }
    free(g);
    tern_xml_unref(reply);
    tern_reply_error(m, ev, "wait", "internal-server-error", NULL);
    return TERN_HANDLED;
}

/* ---- set and remove (§2.3, §2.5) ------------------------------------------ */

/* §2.5.2: cancel the subscriptions both ways, then drop the item. */
static int remove_item(rhost_t *h, const char *user, ritem_t *it)
{
    char bare[1100];
    user_bare(h, user, bare, sizeof(bare));
    if (roster_commit(h, user, it, 1, 1) < 0)
        return -1;
    if ((it->sub & ROSTER_SUB_TO) || it->ask)
        presence_send_type(h, bare, it->jid, "unsubscribe", NULL);
    if (it->sub & ROSTER_SUB_FROM)
        presence_send_unavailable(h, user, it->jid); /* §3.2.2 */
    if ((it->sub & ROSTER_SUB_FROM) || it->in)
        presence_send_type(h, bare, it->jid, "unsubscribed", NULL);
    return 0;
}

/* The checks of §2.3.3 on the one <item/> of a set; the condition, or NULL. */
static const char *check_item(rhost_t *h, tern_xml_t *item, const char **type_r)
{
    *type_r = "modify";
    const char *name = tern_xml_attr(item, "name");
    if (name != NULL && (long long)strlen(name) > h->max_name)
        return "not-acceptable";
    for (tern_xml_t *g = tern_xml_first_element(item); g; g = tern_xml_next_element(g)) {
        if (!tern_xml_is(g, "group", NS_ROSTER))
            continue;
        const char *text = tern_xml_text(g);
        if (*text == '\0' || (long long)strlen(text) > h->max_group)
            return "not-acceptable";
        for (tern_xml_t *o = tern_xml_first_element(item); o != g; o = tern_xml_next_element(o))
            if (tern_xml_is(o, "group", NS_ROSTER) && strcmp(tern_xml_text(o), text) == 0)
                return "bad-request"; /* duplicate group */
    }
    return NULL;
}

static void reply_result(tern_module_ctx_t *m, tern_event_t *ev)
{
    tern_xml_t *reply = tern_iq_result(ev);
    if (reply != NULL) {
        tern_route(m, reply);
        tern_xml_unref(reply);
    }
}

int roster_on_set(tern_module_ctx_t *m, tern_event_t *ev)
{
    rhost_t *h = tern_get_data(m);
    const char *user = ev->from->local;
    tern_xml_t *query = tern_xml_child(ev->stanza, "query", NS_ROSTER);
    if (ev->origin == NULL || user == NULL || query == NULL ||
        strcmp(ev->from->domain, h->name) != 0) {
        tern_reply_error(m, ev, "cancel", "service-unavailable", NULL);
        return TERN_HANDLED;
    }
    /* §2.3.3: exactly one <item/>, with a valid jid. */
    tern_xml_t *item = NULL;
    int nitems = 0;
    for (tern_xml_t *c = tern_xml_first_element(query); c; c = tern_xml_next_element(c))
        if (tern_xml_is(c, "item", NS_ROSTER) && nitems++ == 0)
            item = c;
    const char *jid_s = item != NULL ? tern_xml_attr(item, "jid") : NULL;
    tern_jid_t *jid = jid_s != NULL ? tern_jid_new(jid_s, NULL) : NULL;
    if (nitems != 1 || jid == NULL || jid->resource != NULL) {
        tern_reply_error(m, ev, "modify", "bad-request", NULL);
        tern_jid_free(&jid);
        return TERN_HANDLED;
    }
    ritem_t *it = NULL;
    if (item_get(h, user, jid->bare, &it) < 0) {
        tern_reply_error(m, ev, "wait", "internal-server-error", NULL);
        tern_jid_free(&jid);
        return TERN_HANDLED;
    }
    const char *sub = tern_xml_attr(item, "subscription");
    if (sub != NULL && strcmp(sub, "remove") == 0) {
        if (it == NULL || it->hidden) {
            tern_reply_error(m, ev, "cancel", "item-not-found", NULL); /* §2.5.3 */
        } else if (remove_item(h, user, it) < 0) {
            tern_reply_error(m, ev, "wait", "internal-server-error", NULL);
        } else {
            reply_result(m, ev);
        }
        item_free(&it);
        tern_jid_free(&jid);
        return TERN_HANDLED;
    }
    const char *type = NULL;
    const char *cond = check_item(h, item, &type);
    int was_visible = it != NULL && !it->hidden;
    if (cond == NULL && !was_visible) {
        long n = items_count_visible(h, user);
        if (n < 0)
            type = "wait", cond = "internal-server-error";
        else if (n >= h->max_items)
            type = "cancel", cond = "not-allowed"; /* §2.3.3: over the server's limit */
    }
    if (cond == NULL && it == NULL && (it = item_new(jid->bare)) == NULL)
        type = "wait", cond = "resource-constraint";
    tern_jid_free(&jid);
    if (cond != NULL) {
        tern_reply_error(m, ev, type, cond, NULL);
        item_free(&it);
        return TERN_HANDLED;
    }
    /* §2.1.2.5: 'subscription' (other than remove), 'ask' and 'approved'
     * from the client are ignored; name and groups are replaced. An empty
     * name (what clients such as profanity send for a contact added
     * without a nickname) is no name: other clients show the JID. */
    const char *name = tern_xml_attr(item, "name");
    int ok = item_set_name(it, name != NULL && *name != '\0' ? name : NULL) == 0;
    item_clear_groups(it);
    for (tern_xml_t *g = tern_xml_first_element(item); ok && g; g = tern_xml_next_element(g))
        if (tern_xml_is(g, "group", NS_ROSTER))
            ok = item_add_group(it, tern_xml_text(g)) == 0;
    it->hidden = 0;
    if (!ok || roster_commit(h, user, it, 0, 1) < 0)
        tern_reply_error(m, ev, "wait", "internal-server-error", NULL);
    else
        reply_result(m, ev);
    item_free(&it);
    return TERN_HANDLED;
}
