/*
 * publish.c — the XEP-0060 subset a PEP service speaks (XEP-0163 §5, §8).
 *
 * The account's bare JID is the service; the owner talks to it with no
 * 'to' or to their own bare JID ("self"), others to the bare JID.
 *   pubsub set:  publish (+ publish-options §7.1.5, auto-create §7.1.4 …
 *                XEP-0163 §5), retract (§7.2), create (+ configure, §8.1)
 *   pubsub get:  items (§6.5: all, max_items, or by id), affiliations
 *                (§5.7), subscriptions (§5.6: always none, PEP subscribes
 *                through presence)
 *   owner:       configure get/set (§8.2), default (§8.3), delete (§8.4),
 *                purge (§8.5), affiliations get/set (§8.9: the whitelist)
 *   disco:       disco#info and disco#items of a node (§5.3, §5.5) and the
 *                list of nodes (§5.2), showing only what the asker may read
 *                (XEP-0163 §9.2).  Without a node, disco#info is mod_disco's
 *                (the account identity and features modules registered).
 * Only the owner publishes, retracts, creates and configures (one
 * publisher per node: XEP-0163 §3.2).  Explicit subscriptions are not
 * supported: contacts are subscribed through presence (§4.1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pep.h"

/* ---- answers ------------------------------------------------------------ */

/* Answer ev with an error whose pubsub#errors condition is `app` (may be
 * NULL), with 'feature' when `feature` is set (XEP-0060 §7.1.3, §6.5.9). */
static int reply_error(tern_module_ctx_t *m, const tern_event_t *ev, const char *type,
                       const char *cond, const char *app, const char *feature)
{
    const char *id = tern_xml_attr(ev->stanza, "id");
    tern_xml_t *iq = tern_xml_new("iq", TERN_NS_CLIENT);
    tern_xml_t *err = iq != NULL ? tern_xml_add_child(iq, "error", NULL) : NULL;
    if (err == NULL) {
        if (iq != NULL)
            tern_xml_unref(iq);
        tern_reply_error(m, ev, type, cond, NULL);
        return TERN_HANDLED;
    }
    tern_xml_set_attr(iq, "type", "error");
    tern_xml_set_attr(iq, "id", id != NULL ? id : "");
    tern_xml_set_attr(iq, "to", ev->from->full);
    tern_xml_set_attr(iq, "from", ev->to->full);
    tern_xml_set_attr(err, "type", type);
    tern_xml_add_child(err, cond, NS_STANZAS);
    if (app != NULL) {
        tern_xml_t *a = tern_xml_add_child(err, app, NS_PUBSUB_ERRORS);
        if (a != NULL && feature != NULL)
            tern_xml_set_attr(a, "feature", feature);
    }
    tern_route(m, iq);
    tern_xml_unref(iq);
    return TERN_HANDLED;
}

static int empty_result(tern_module_ctx_t *m, const tern_event_t *ev)
{
    tern_xml_t *reply = tern_iq_result(ev);
    return tern_iq_answer(m, ev, reply, reply != NULL);
}

/* The denial of pep_access() as XEP-0060 §6.5.9.3/§6.5.9.5 says. */
static int reply_denied(tern_module_ctx_t *m, const tern_event_t *ev, int why)
{
    if (why == PEP_DENY_PRESENCE)
        return reply_error(m, ev, "auth", "not-authorized", "presence-subscription-required", NULL);
    return reply_error(m, ev, "cancel", "not-allowed", "closed-node", NULL);
}

static int reply_internal(tern_module_ctx_t *m, const tern_event_t *ev)
{
    tern_reply_error(m, ev, "wait", "internal-server-error", NULL);
    return TERN_HANDLED;
}

/* The account the request is for (ev->to), when it is one of ours. */
static pep_state_t *service_of(tern_module_ctx_t *m, const tern_event_t *ev)
{
    pep_state_t *st = tern_get_data(m);
    if (st == NULL || ev->to == NULL || ev->to->local == NULL || ev->to->resource != NULL ||
        ev->from == NULL)
        return NULL;
    if (strcmp(ev->from->bare, ev->to->bare) != 0 && tern_user_exists(m, ev->to->local) <= 0)
        return NULL; /* RFC 6121 §8.5.1: leave it to the default bounce */
    return st;
}

static int is_owner(const tern_event_t *ev)
{
    return strcmp(ev->from->bare, ev->to->bare) == 0;
}

/* ---- the core of each change (shared with api.c) ------------------------- */

const char *pep_publish(pep_state_t *st, tern_module_ctx_t *by, const char *user, const char *node,
                        const char *id, const tern_xml_t *payload, const tern_pep_config_t *options,
                        unsigned seen, const char *publisher, const char **item_id_r)
{
    static char last_id[256];
    char gen[64];
    pep_node_t *n = NULL;
    int rc = pep_node_load(st, user, node, &n);
    if (rc < 0)
        return "internal-server-error";
    if (rc == 0) {
        int count = pep_node_count(st, user);
        if (count < 0)
            return "internal-server-error";
        if (st->max_nodes > 0 && count >= st->max_nodes)
            return "resource-constraint";
        n = pep_node_new(st, user, node, options); /* XEP-0060 §7.1.4 auto-create */
        if (n == NULL)
            return "internal-server-error";
    } else if (options != NULL && !pep_config_matches(&n->cfg, options, seen)) {
        pep_node_free(&n);
        return "precondition-not-met"; /* XEP-0060 §7.1.5 */
    }
    if (id == NULL || *id == '\0') {
        pep_new_id(gen, sizeof gen);
        id = gen;
    }
    tern_xml_t *stored = pep_item_put(n, id, payload, publisher);
    if (stored == NULL || pep_node_save(st, n) < 0) {
        pep_node_free(&n);
        return "internal-server-error";
    }
    snprintf(last_id, sizeof last_id, "%s", id);
    if (item_id_r != NULL)
        *item_id_r = last_id;

    /* XEP-0060 §7.1.2.1: the notification carries the payload. */
    tern_xml_t *items = tern_xml_new("items", NS_PUBSUB_EVENT);
    if (items != NULL) {
        tern_xml_set_attr(items, "node", node);
        stored = pep_item_find(n, last_id);
        if (stored != NULL && pep_copy_item(items, stored, NULL) != NULL)
            pep_notify(st, n, items);
        tern_xml_unref(items);
    }
    pep_observers_fire(st, by, user, node, TERN_PEP_PUBLISHED, last_id, payload);
    pep_node_free(&n);
    return NULL;
}

int pep_retract(pep_state_t *st, tern_module_ctx_t *by, const char *user, const char *node,
                const char *id, int notify)
{
    pep_node_t *n = NULL;
    int rc = pep_node_load(st, user, node, &n);
    if (rc <= 0)
        return rc < 0 ? -1 : 1;
    if (!pep_item_remove(n, id)) {
        pep_node_free(&n);
        return 1;
    }
    if (pep_node_save(st, n) < 0) {
        pep_node_free(&n);
        return -1;
    }
    if (notify || n->cfg.notify_retract) { /* XEP-0060 §7.2.2.1 */
        tern_xml_t *items = tern_xml_new("items", NS_PUBSUB_EVENT);
        tern_xml_t *r = items != NULL ? tern_xml_add_child(items, "retract", NULL) : NULL;
        if (r != NULL) {
            tern_xml_set_attr(items, "node", node);
            tern_xml_set_attr(r, "id", id);
            pep_notify(st, n, items);
        }
        if (items != NULL)
            tern_xml_unref(items);
    }
    pep_observers_fire(st, by, user, node, TERN_PEP_RETRACTED, id, NULL);
    pep_node_free(&n);
    return 0;
}

/* Notify <delete/> or <purge/> (XEP-0060 §8.4.2, §8.5.2) to those allowed. */
static void notify_simple(pep_state_t *st, pep_node_t *n, const char *what)
{
    tern_xml_t *ev = tern_xml_new(what, NS_PUBSUB_EVENT);
    if (ev == NULL)
        return;
    tern_xml_set_attr(ev, "node", n->name);
    pep_notify(st, n, ev);
    tern_xml_unref(ev);
}

int pep_delete(pep_state_t *st, tern_module_ctx_t *by, const char *user, const char *node)
{
    pep_node_t *n = NULL;
    int rc = pep_node_load(st, user, node, &n);
    if (rc <= 0)
        return rc < 0 ? -1 : 1;
    if (pep_node_remove(st, user, node) < 0) {
        pep_node_free(&n);
        return -1;
    }
    notify_simple(st, n, "delete");
    pep_observers_fire(st, by, user, node, TERN_PEP_DELETED, NULL, NULL);
    pep_node_free(&n);
    return 0;
}

/* ---- pubsub set ---------------------------------------------------------- */

/* The options of <publish-options/> or <configure/>: NULL when there is no
 * form (*err stays NULL), else the form; *err set on a bad form. */
static const tern_xml_t *options_form(const tern_xml_t *parent, const char *form_type,
                                      const char **err)
{
    const tern_xml_t *x = parent != NULL ? tern_xml_child(parent, "x", NS_DATA) : NULL;
    *err = NULL;
    if (x == NULL)
        return NULL;
    const char *type = tern_xml_attr(x, "type");
    if (type != NULL && strcmp(type, "cancel") == 0)
        return NULL;
    for (tern_xml_t *f = tern_xml_first_element(x); f != NULL; f = tern_xml_next_element(f)) {
        const char *var = tern_xml_attr(f, "var");
        tern_xml_t *v = tern_xml_child(f, "value", NS_DATA);
        if (var != NULL && strcmp(var, "FORM_TYPE") == 0 &&
            (v == NULL || strcmp(tern_xml_text(v), form_type) != 0))
            *err = "bad-request";
    }
    return x;
}

static int do_publish(tern_module_ctx_t *m, pep_state_t *st, tern_event_t *ev, tern_xml_t *pubsub,
                      tern_xml_t *publish)
{
    const char *node = tern_xml_attr(publish, "node");
    if (!is_owner(ev))
        return reply_error(m, ev, "auth", "forbidden", NULL, NULL); /* §7.1.3.1 */
    if (node == NULL || *node == '\0')
        return reply_error(m, ev, "modify", "bad-request", "nodeid-required", NULL);
    tern_xml_t *item = tern_xml_child(publish, "item", NS_PUBSUB);
    if (item == NULL)
        return reply_error(m, ev, "modify", "bad-request", "item-required", NULL); /* §7.1.3.6 */
    for (tern_xml_t *e = tern_xml_first_element(publish); e != NULL; e = tern_xml_next_element(e))
        if (e != item)
            return reply_error(m, ev, "modify", "bad-request", "invalid-payload", NULL);
    tern_xml_t *payload = tern_xml_first_element(item);
    if (payload == NULL)
        return reply_error(m, ev, "modify", "bad-request", "payload-required", NULL); /* §7.1.3.5 */
    if (tern_xml_next_element(payload) != NULL)
        return reply_error(m, ev, "modify", "bad-request", "invalid-payload", NULL); /* §7.1.3.5 */
    if (st->max_item_size > 0) { /* §7.1.3.4: the account's storage quota per item */
        size_t len = 0;
        char *text = tern_xml_to_string(payload, &len);
        if (text == NULL)
            return reply_internal(m, ev);
        free(text);
        if ((long long)len > st->max_item_size)
            return reply_error(m, ev, "modify", "not-acceptable", "payload-too-big", NULL);
    }

    /* §7.1.5 publish-options: preconditions on an existing node, the
     * configuration of a new one. */
    tern_pep_config_t want;
    unsigned seen = 0;
    const char *err = NULL;
    const tern_xml_t *po = tern_xml_child(pubsub, "publish-options", NS_PUBSUB);
    const tern_xml_t *form = options_form(po, NS_PUBLISH_OPTIONS, &err);
    pep_default_config(st, node, &want);
    if (err == NULL && form != NULL)
        err = pep_form_to_config(st, form, &want, &seen);
    if (err != NULL)
        return reply_error(m, ev, "cancel", "conflict", "precondition-not-met", NULL);

    const char *id = NULL;
    err = pep_publish(st, NULL, ev->to->local, node, tern_xml_attr(item, "id"), payload,
                      form != NULL ? &want : NULL, seen, ev->from->full, &id);
    if (err != NULL && strcmp(err, "precondition-not-met") == 0)
        return reply_error(m, ev, "cancel", "conflict", "precondition-not-met", NULL);
    if (err != NULL && strcmp(err, "resource-constraint") == 0)
        return reply_error(m, ev, "wait", "resource-constraint", NULL, NULL);
    if (err != NULL)
        return reply_internal(m, ev);

    /* §7.1.2: the id, which matters when the server made it. */
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *ps = reply != NULL ? tern_xml_add_child(reply, "pubsub", NS_PUBSUB) : NULL;
    tern_xml_t *pub = ps != NULL ? tern_xml_add_child(ps, "publish", NULL) : NULL;
    tern_xml_t *it = pub != NULL ? tern_xml_add_child(pub, "item", NULL) : NULL;
    if (it != NULL) {
        tern_xml_set_attr(pub, "node", node);
        tern_xml_set_attr(it, "id", id);
    }
    return tern_iq_answer(m, ev, reply, it != NULL);
}

static int truthy(const char *v)
{
    return v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

static int do_retract(tern_module_ctx_t *m, pep_state_t *st, tern_event_t *ev, tern_xml_t *retract)
{
    const char *node = tern_xml_attr(retract, "node");
    tern_xml_t *item = tern_xml_child(retract, "item", NS_PUBSUB);
    const char *id = item != NULL ? tern_xml_attr(item, "id") : NULL;
    if (!is_owner(ev))
        return reply_error(m, ev, "auth", "forbidden", NULL, NULL); /* §7.2.3.1 */
    if (node == NULL || *node == '\0')
        return reply_error(m, ev, "modify", "bad-request", "nodeid-required", NULL);
    if (id == NULL || *id == '\0')
        return reply_error(m, ev, "modify", "bad-request", "item-required", NULL);
    int rc =
        pep_retract(st, NULL, ev->to->local, node, id, truthy(tern_xml_attr(retract, "notify")));
    if (rc < 0)
        return reply_internal(m, ev);
    if (rc > 0)
        return reply_error(m, ev, "cancel", "item-not-found", NULL, NULL); /* §7.2.3.3, §7.2.3.5 */
    return empty_result(m, ev);
}

static int do_create(tern_module_ctx_t *m, pep_state_t *st, tern_event_t *ev, tern_xml_t *pubsub,
                     tern_xml_t *create)
{
    const char *node = tern_xml_attr(create, "node");
    if (!is_owner(ev))
        return reply_error(m, ev, "auth", "forbidden", NULL, NULL);
    if (node == NULL || *node == '\0') /* §8.1.3.5: no instant nodes in PEP */
        return reply_error(m, ev, "modify", "not-acceptable", "nodeid-required", NULL);
    pep_node_t *n = NULL;
    int rc = pep_node_load(st, ev->to->local, node, &n);
    pep_node_free(&n);
    if (rc < 0)
        return reply_internal(m, ev);
    if (rc > 0)
        return reply_error(m, ev, "cancel", "conflict", NULL, NULL); /* §8.1.3.4 */
    int count = pep_node_count(st, ev->to->local);
    if (count < 0)
        return reply_internal(m, ev);
    if (st->max_nodes > 0 && count >= st->max_nodes)
        return reply_error(m, ev, "wait", "resource-constraint", NULL, NULL);

    tern_pep_config_t cfg;
    const char *err = NULL;
    pep_default_config(st, node, &cfg);
    const tern_xml_t *form =
        options_form(tern_xml_child(pubsub, "configure", NS_PUBSUB), NS_NODE_CONFIG, &err);
    if (err == NULL && form != NULL) /* §8.1.3 create-and-configure */
        err = pep_form_to_config(st, form, &cfg, NULL);
    if (err != NULL)
        return reply_error(m, ev, "modify", "not-acceptable", NULL, NULL);
    n = pep_node_new(st, ev->to->local, node, &cfg);
    rc = n != NULL ? pep_node_save(st, n) : -1;
    pep_node_free(&n);
    return rc < 0 ? reply_internal(m, ev) : empty_result(m, ev);
}

int pep_on_pubsub_set(tern_module_ctx_t *m, tern_event_t *ev)
{
    pep_state_t *st = service_of(m, ev);
    if (st == NULL)
        return TERN_PASS;
    tern_xml_t *pubsub = tern_xml_child(ev->stanza, "pubsub", NS_PUBSUB);
    tern_xml_t *op = NULL;
    for (tern_xml_t *c = tern_xml_first_element(pubsub); c != NULL && op == NULL;
         c = tern_xml_next_element(c))
        if (c->ns != NULL && strcmp(c->ns, NS_PUBSUB) == 0 &&
            strcmp(c->name, "publish-options") != 0 && strcmp(c->name, "configure") != 0)
            op = c;
    if (op == NULL)
        return reply_error(m, ev, "modify", "bad-request", NULL, NULL);
    if (strcmp(op->name, "publish") == 0)
        return do_publish(m, st, ev, pubsub, op);
    if (strcmp(op->name, "retract") == 0)
        return do_retract(m, st, ev, op);
    if (strcmp(op->name, "create") == 0)
        return do_create(m, st, ev, pubsub, op);
    /* §6.1.3.? subscriptions are implicit in PEP (XEP-0163 §4.1). */
    const char *feature = strcmp(op->name, "subscribe") == 0 || strcmp(op->name, "unsubscribe") == 0
                              ? "subscribe"
                          : strcmp(op->name, "options") == 0 ? "subscription-options"
                                                             : op->name;
    return reply_error(m, ev, "cancel", "feature-not-implemented", "unsupported", feature);
}

/* ---- pubsub get --------------------------------------------------------- */

static int do_items(tern_module_ctx_t *m, pep_state_t *st, tern_event_t *ev, tern_xml_t *req)
{
    const char *node = tern_xml_attr(req, "node");
    if (node == NULL || *node == '\0')
        return reply_error(m, ev, "modify", "bad-request", "nodeid-required", NULL);
    pep_node_t *n = NULL;
    int rc = pep_node_load(st, ev->to->local, node, &n);
    if (rc < 0)
        return reply_internal(m, ev);
    if (rc == 0)
        return reply_error(m, ev, "cancel", "item-not-found", NULL, NULL); /* §6.5.9.11 */
    int why = pep_access(st, n, ev->from->bare);
    if (why != PEP_ALLOW) {
        pep_node_free(&n);
        return reply_denied(m, ev, why);
    }
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *ps = reply != NULL ? tern_xml_add_child(reply, "pubsub", NS_PUBSUB) : NULL;
    tern_xml_t *items = ps != NULL ? tern_xml_add_child(ps, "items", NULL) : NULL;
    if (items != NULL) {
        tern_xml_set_attr(items, "node", node);
        int by_id = 0;
        for (tern_xml_t *it = tern_xml_first_element(req); it != NULL;
             it = tern_xml_next_element(it)) {
            const char *id = tern_xml_is(it, "item", NS_PUBSUB) ? tern_xml_attr(it, "id") : NULL;
            tern_xml_t *stored = id != NULL ? pep_item_find(n, id) : NULL;
            by_id = by_id || id != NULL;
            if (stored != NULL) /* §6.5.8; unknown ids are left out (§6.5.9.? ) */
                pep_copy_item(items, stored, NULL);
        }
        if (!by_id) {
            /* §6.5.7: max_items = the N most recent, oldest first here. */
            const char *max_s = tern_xml_attr(req, "max_items");
            long max = max_s != NULL ? strtol(max_s, NULL, 10) : 0;
            size_t count = pep_item_count(n), skip = 0;
            if (max > 0 && (size_t)max < count)
                skip = count - (size_t)max;
            for (tern_xml_t *it = tern_xml_first_element(n->doc); it != NULL;
                 it = tern_xml_next_element(it)) {
                if (!tern_xml_is(it, "item", NS_PEP_STORE))
                    continue;
                if (skip > 0)
                    skip--;
                else
                    pep_copy_item(items, it, NULL);
            }
        }
    }
    pep_node_free(&n);
    return tern_iq_answer(m, ev, reply, items != NULL);
}

typedef struct aff_ctx {
    pep_state_t *st;
    const char *user;
    const char *requester;
    int owner;
    tern_xml_t *list;
} aff_ctx_t;

static int list_affiliation(void *ctx, const char *name)
{
    aff_ctx_t *c = ctx;
    const char *aff = "owner";
    pep_node_t *n = NULL;
    if (!c->owner) {
        if (pep_node_load(c->st, c->user, name, &n) != 1)
            return 0;
        aff = pep_affiliation(n, c->requester);
    }
    if (strcmp(aff, "none") != 0) {
        tern_xml_t *a = tern_xml_add_child(c->list, "affiliation", NULL);
        if (a != NULL) {
            tern_xml_set_attr(a, "node", name);
            tern_xml_set_attr(a, "affiliation", aff);
        }
    }
    pep_node_free(&n);
    return 0;
}

int pep_on_pubsub_get(tern_module_ctx_t *m, tern_event_t *ev)
{
    pep_state_t *st = service_of(m, ev);
    if (st == NULL)
        return TERN_PASS;
    tern_xml_t *pubsub = tern_xml_child(ev->stanza, "pubsub", NS_PUBSUB);
    tern_xml_t *op = tern_xml_first_element(pubsub);
    if (op == NULL || op->ns == NULL || strcmp(op->ns, NS_PUBSUB) != 0)
        return reply_error(m, ev, "modify", "bad-request", NULL, NULL);
    if (strcmp(op->name, "items") == 0)
        return do_items(m, st, ev, op);
    if (strcmp(op->name, "subscriptions") == 0 || strcmp(op->name, "affiliations") == 0) {
        tern_xml_t *reply = tern_iq_result(ev);
        tern_xml_t *ps = reply != NULL ? tern_xml_add_child(reply, "pubsub", NS_PUBSUB) : NULL;
        tern_xml_t *list = ps != NULL ? tern_xml_add_child(ps, op->name, NULL) : NULL;
        if (list != NULL && strcmp(op->name, "affiliations") == 0) { /* §5.7 */
            aff_ctx_t c = {.st = st,
                           .user = ev->to->local,
                           .requester = ev->from->bare,
                           .owner = is_owner(ev),
                           .list = list};
            pep_node_foreach(st, ev->to->local, list_affiliation, &c);
        }
        return tern_iq_answer(m, ev, reply, list != NULL);
    }
    return reply_error(m, ev, "cancel", "feature-not-implemented", "unsupported",
                       strcmp(op->name, "default") == 0 ? "retrieve-default" : op->name);
}

/* ---- owner -------------------------------------------------------------- */

/* Load the owner's node named by op's 'node', or answer the error. */
static pep_node_t *owner_node(tern_module_ctx_t *m, pep_state_t *st, tern_event_t *ev,
                              const tern_xml_t *op, int *handled)
{
    const char *node = tern_xml_attr(op, "node");
    pep_node_t *n = NULL;
    *handled = 1;
    if (node == NULL || *node == '\0') {
        reply_error(m, ev, "modify", "bad-request", "nodeid-required", NULL);
        return NULL;
    }
    int rc = pep_node_load(st, ev->to->local, node, &n);
    if (rc < 0)
        reply_internal(m, ev);
    else if (rc == 0)
        reply_error(m, ev, "cancel", "item-not-found", NULL, NULL);
    return n;
}

static int owner_configure(tern_module_ctx_t *m, pep_state_t *st, tern_event_t *ev, tern_xml_t *op,
                           int set)
{
    int handled;
    pep_node_t *n = owner_node(m, st, ev, op, &handled);
    if (n == NULL)
        return TERN_HANDLED;
    if (!set) { /* §8.2.1 */
        tern_xml_t *reply = tern_iq_result(ev);
        tern_xml_t *ps =
            reply != NULL ? tern_xml_add_child(reply, "pubsub", NS_PUBSUB_OWNER) : NULL;
        tern_xml_t *cf = ps != NULL ? tern_xml_add_child(ps, "configure", NULL) : NULL;
        if (cf != NULL) {
            tern_xml_set_attr(cf, "node", n->name);
            pep_config_form(cf, n->name, &n->cfg);
        }
        pep_node_free(&n);
        return tern_iq_answer(m, ev, reply, cf != NULL);
    }
    const char *err = NULL;
    const tern_xml_t *form = options_form(op, NS_NODE_CONFIG, &err);
    tern_pep_config_t cfg = n->cfg;
    if (err == NULL && form != NULL)
        err = pep_form_to_config(st, form, &cfg, NULL);
    if (err != NULL) { /* §8.2.5.3 */
        pep_node_free(&n);
        return reply_error(m, ev, "modify", "not-acceptable", NULL, NULL);
    }
    n->cfg = cfg;
    int rc = form != NULL ? pep_node_save(st, n) : 0;
    pep_node_free(&n);
    return rc < 0 ? reply_internal(m, ev) : empty_result(m, ev);
}

static int owner_affiliations(tern_module_ctx_t *m, pep_state_t *st, tern_event_t *ev,
                              tern_xml_t *op, int set)
{
    int handled;
    pep_node_t *n = owner_node(m, st, ev, op, &handled);
    if (n == NULL)
        return TERN_HANDLED;
    if (!set) { /* §8.9.1 */
        tern_xml_t *reply = tern_iq_result(ev);
        tern_xml_t *ps =
            reply != NULL ? tern_xml_add_child(reply, "pubsub", NS_PUBSUB_OWNER) : NULL;
        tern_xml_t *list = ps != NULL ? tern_xml_add_child(ps, "affiliations", NULL) : NULL;
        tern_xml_t *own = list != NULL ? tern_xml_add_child(list, "affiliation", NULL) : NULL;
        if (own != NULL) {
            tern_xml_set_attr(list, "node", n->name);
            tern_xml_set_attr(own, "jid", ev->to->bare);
            tern_xml_set_attr(own, "affiliation", "owner");
            for (tern_xml_t *a = tern_xml_first_element(n->doc); a != NULL;
                 a = tern_xml_next_element(a)) {
                if (!tern_xml_is(a, "affiliation", NS_PEP_STORE))
                    continue;
                tern_xml_t *e = tern_xml_add_child(list, "affiliation", NULL);
                if (e != NULL) {
                    tern_xml_set_attr(e, "jid", tern_xml_attr(a, "jid"));
                    tern_xml_set_attr(e, "affiliation", tern_xml_attr(a, "affiliation"));
                }
            }
        }
        pep_node_free(&n);
        return tern_iq_answer(m, ev, reply, own != NULL);
    }
    /* §8.9.2: check every entry first, then apply them all. */
    for (tern_xml_t *a = tern_xml_first_element(op); a != NULL; a = tern_xml_next_element(a)) {
        const char *jid = tern_xml_attr(a, "jid"), *aff = tern_xml_attr(a, "affiliation");
        tern_jid_t *j = jid != NULL ? tern_jid_new(jid, NULL) : NULL;
        int ok = j != NULL && aff != NULL && tern_xml_is(a, "affiliation", NS_PUBSUB_OWNER) &&
                 (strcmp(aff, "member") == 0 || strcmp(aff, "publisher") == 0 ||
                  strcmp(aff, "none") == 0 || strcmp(aff, "outcast") == 0) &&
                 strcmp(j->bare, ev->to->bare) != 0; /* §8.9.2.4: not the owner */
        tern_jid_free(&j);
        if (!ok) {
            pep_node_free(&n);
            return reply_error(m, ev, "modify", "not-acceptable", NULL, NULL);
        }
    }
    for (tern_xml_t *a = tern_xml_first_element(op); a != NULL; a = tern_xml_next_element(a)) {
        tern_jid_t *j = tern_jid_new(tern_xml_attr(a, "jid"), NULL);
        if (j != NULL)
            pep_set_affiliation(n, j->bare, tern_xml_attr(a, "affiliation"));
        tern_jid_free(&j);
    }
    int rc = pep_node_save(st, n);
    pep_node_free(&n);
    return rc < 0 ? reply_internal(m, ev) : empty_result(m, ev);
}

int pep_on_owner(tern_module_ctx_t *m, tern_event_t *ev)
{
    pep_state_t *st = service_of(m, ev);
    if (st == NULL)
        return TERN_PASS;
    if (!is_owner(ev))
        return reply_error(m, ev, "auth", "forbidden", NULL, NULL); /* §8.*.3.1 */
    int set = strcmp(tern_xml_attr(ev->stanza, "type"), "set") == 0;
    tern_xml_t *pubsub = tern_xml_child(ev->stanza, "pubsub", NS_PUBSUB_OWNER);
    tern_xml_t *op = tern_xml_first_element(pubsub);
    if (op == NULL || op->ns == NULL || strcmp(op->ns, NS_PUBSUB_OWNER) != 0)
        return reply_error(m, ev, "modify", "bad-request", NULL, NULL);
    if (strcmp(op->name, "configure") == 0)
        return owner_configure(m, st, ev, op, set);
    if (strcmp(op->name, "affiliations") == 0)
        return owner_affiliations(m, st, ev, op, set);
    if (strcmp(op->name, "default") == 0 && !set) { /* §8.3 */
        tern_pep_config_t cfg;
        pep_default_config(st, NULL, &cfg);
        tern_xml_t *reply = tern_iq_result(ev);
        tern_xml_t *ps =
            reply != NULL ? tern_xml_add_child(reply, "pubsub", NS_PUBSUB_OWNER) : NULL;
        tern_xml_t *d = ps != NULL ? tern_xml_add_child(ps, "default", NULL) : NULL;
        if (d != NULL)
            pep_config_form(d, NULL, &cfg);
        return tern_iq_answer(m, ev, reply, d != NULL);
    }
    if ((strcmp(op->name, "delete") == 0 || strcmp(op->name, "purge") == 0) && set) {
        int handled;
        pep_node_t *n = owner_node(m, st, ev, op, &handled);
        if (n == NULL)
            return TERN_HANDLED;
        int rc;
        if (op->name[0] == 'd') { /* §8.4 */
            pep_node_free(&n);
            rc = pep_delete(st, NULL, ev->to->local, tern_xml_attr(op, "node"));
        } else { /* §8.5 */
            pep_item_purge(n);
            rc = pep_node_save(st, n);
            if (rc == 0) {
                notify_simple(st, n, "purge");
                pep_observers_fire(st, NULL, n->user, n->name, TERN_PEP_PURGED, NULL, NULL);
            }
            pep_node_free(&n);
        }
        return rc < 0 ? reply_internal(m, ev) : empty_result(m, ev);
    }
    return reply_error(m, ev, "cancel", "feature-not-implemented", "unsupported",
                       strcmp(op->name, "subscriptions") == 0 ? "manage-subscriptions" : op->name);
}

/* ---- disco of nodes ----------------------------------------------------- */

int pep_on_disco_info(tern_module_ctx_t *m, tern_event_t *ev)
{
    pep_state_t *st = service_of(m, ev);
    tern_xml_t *query = tern_xml_child(ev->stanza, "query", NS_DISCO_INFO);
    const char *node = query != NULL ? tern_xml_attr(query, "node") : NULL;
    if (st == NULL || node == NULL)
        return TERN_PASS; /* the account itself: mod_disco */
    pep_node_t *n = NULL;
    int rc = pep_node_load(st, ev->to->local, node, &n);
    if (rc < 0)
        return reply_internal(m, ev);
    if (rc == 0 || pep_access(st, n, ev->from->bare) != PEP_ALLOW) {
        pep_node_free(&n); /* XEP-0163 §9.2: what one may not read does not exist */
        return reply_error(m, ev, "cancel", "item-not-found", NULL, NULL);
    }
    /* XEP-0060 §5.3, §5.4: a leaf node and its meta-data. */
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *q = reply != NULL ? tern_xml_add_child(reply, "query", NS_DISCO_INFO) : NULL;
    tern_xml_t *id = q != NULL ? tern_xml_add_child(q, "identity", NULL) : NULL;
    tern_xml_t *f = q != NULL ? tern_xml_add_child(q, "feature", NULL) : NULL;
    tern_xml_t *x = q != NULL ? tern_xml_add_child(q, "x", NS_DATA) : NULL;
    if (x != NULL && id != NULL && f != NULL) {
        tern_xml_set_attr(q, "node", node);
        tern_xml_set_attr(id, "category", "pubsub");
        tern_xml_set_attr(id, "type", "leaf");
        tern_xml_set_attr(f, "var", NS_PUBSUB);
        tern_xml_set_attr(x, "type", "result");
        const char *fields[][2] = {{"FORM_TYPE", NS_META_DATA},
                                   {"pubsub#access_model", pep_access_name(n->cfg.access_model)},
                                   {"pubsub#owner", ev->to->bare},
                                   {"pubsub#type", node}};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            tern_xml_t *fd = tern_xml_add_child(x, "field", NULL);
            tern_xml_t *v = fd != NULL ? tern_xml_add_child(fd, "value", NULL) : NULL;
            if (v == NULL)
                continue;
            tern_xml_set_attr(fd, "var", fields[i][0]);
            if (i == 0)
                tern_xml_set_attr(fd, "type", "hidden");
            tern_xml_add_text(v, fields[i][1], strlen(fields[i][1]));
        }
    }
    pep_node_free(&n);
    return tern_iq_answer(m, ev, reply, x != NULL);
}

typedef struct items_ctx {
    pep_state_t *st;
    tern_event_t *ev;
    tern_xml_t *query;
} items_ctx_t;

static int list_node(void *ctx, const char *name)
{
    items_ctx_t *c = ctx;
    pep_node_t *n = NULL;
    if (pep_node_load(c->st, c->ev->to->local, name, &n) == 1 &&
        pep_access(c->st, n, c->ev->from->bare) == PEP_ALLOW) {
        tern_xml_t *it = tern_xml_add_child(c->query, "item", NULL);
        if (it != NULL) {
            tern_xml_set_attr(it, "jid", c->ev->to->bare);
            tern_xml_set_attr(it, "node", name);
        }
    }
    pep_node_free(&n);
    return 0;
}

int pep_on_disco_items(tern_module_ctx_t *m, tern_event_t *ev)
{
    pep_state_t *st = service_of(m, ev);
    tern_xml_t *req = tern_xml_child(ev->stanza, "query", NS_DISCO_ITEMS);
    const char *node = req != NULL ? tern_xml_attr(req, "node") : NULL;
    if (st == NULL)
        return TERN_PASS;
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *q = reply != NULL ? tern_xml_add_child(reply, "query", NS_DISCO_ITEMS) : NULL;
    if (q == NULL)
        return tern_iq_answer(m, ev, reply, 0);
    items_ctx_t c = {.st = st, .ev = ev, .query = q};
    if (node == NULL) { /* XEP-0060 §5.2, XEP-0163 §9.2 */
        pep_node_foreach(st, ev->to->local, list_node, &c);
        return tern_iq_answer(m, ev, reply, 1);
    }
    pep_node_t *n = NULL; /* §5.5: the items of a node, by id */
    int rc = pep_node_load(st, ev->to->local, node, &n);
    if (rc != 1 || pep_access(st, n, ev->from->bare) != PEP_ALLOW) {
        pep_node_free(&n);
        tern_xml_unref(reply);
        if (rc < 0)
            return reply_internal(m, ev);
        return reply_error(m, ev, "cancel", "item-not-found", NULL, NULL);
    }
    tern_xml_set_attr(q, "node", node);
    for (tern_xml_t *it = tern_xml_first_element(n->doc); it != NULL;
         it = tern_xml_next_element(it)) {
        tern_xml_t *e =
            tern_xml_is(it, "item", NS_PEP_STORE) ? tern_xml_add_child(q, "item", NULL) : NULL;
        if (e != NULL) {
            tern_xml_set_attr(e, "jid", ev->to->bare);
            tern_xml_set_attr(e, "name", tern_xml_attr(it, "id"));
        }
    }
    pep_node_free(&n);
    return tern_iq_answer(m, ev, reply, 1);
}
