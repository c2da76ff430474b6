/*
 * mod_disco — XEP-0030 Service Discovery for a host and its accounts.
 *
 * Owns the framing of disco#info and disco#items answers for the host
 * itself and for the bare JIDs of its accounts.  What the host's disco#info
 * lists (identities, the features every module registered, XEP-0128
 * extension forms) comes from the core's registry through tern_disco_fill();
 * this module must not invent features on behalf of others.  The host's
 * disco#items lists the JIDs of the `items` option (components, usually).
 * Nodes are not supported yet: a request naming one gets item-not-found.
 */
#include <stdlib.h>
#include <tern/module.h>

#define NS_INFO  "http://jabber.org/protocol/disco#info"
#define NS_ITEMS "http://jabber.org/protocol/disco#items"

/* The prepared JIDs of the `items` option, in config order. */
typedef struct disco_items {
    size_t n;
    tern_jid_t *jid[];
} disco_items_t;

static const tern_option_t options[] = {
    {.name = "items",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "JIDs listed in the host's disco#items (components, usually)"},
    {.name = NULL},
};

/* Route `reply` when it was built completely (`ok`), else answer
 * resource-constraint; drop our reference either way.  RFC 6120 §8.3.3.18 */
static int finish(tern_module_ctx_t *m, const tern_event_t *ev, tern_xml_t *reply, int ok)
{
    if (reply != NULL && ok)
        tern_route(m, reply);
    else
        tern_reply_error(m, ev, "wait", "resource-constraint", NULL);
    if (reply != NULL)
        tern_xml_unref(reply);
    return TERN_HANDLED;
}

/* Whether the request's <query xmlns=ns/> names a node. */
static int has_node(const tern_event_t *ev, const char *ns)
{
    const tern_xml_t *query = tern_xml_child(ev->stanza, "query", ns);
    return query != NULL && tern_xml_attr(query, "node") != NULL;
}

/* XEP-0030 §3.2, §4.2: a node we do not have. */
static int no_such_node(tern_module_ctx_t *m, const tern_event_t *ev)
{
    tern_reply_error(m, ev, "cancel", "item-not-found", NULL);
    return TERN_HANDLED;
}

/* Whether the bare JID the iq is addressed to is an account of this host.
 * RFC 6121 §8.5.1: otherwise an iq gets service-unavailable, which XEP-0030
 * §3.1 accepts instead of item-not-found so that accounts cannot be probed. */
static int account_exists(tern_module_ctx_t *m, const tern_event_t *ev)
{
    return ev->to->local != NULL && tern_user_exists(m, ev->to->local) > 0;
}

/* XEP-0030 §3.1: the host's identities and features, and XEP-0128 forms. */
static int on_host_info(tern_module_ctx_t *m, tern_event_t *ev)
{
    if (has_node(ev, NS_INFO))
        return no_such_node(m, ev);
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *query = reply != NULL ? tern_xml_add_child(reply, "query", NS_INFO) : NULL;
    if (query != NULL)
        tern_disco_fill(m, query);
    return finish(m, ev, reply, query != NULL);
}

/* XEP-0030 §4.1: the configured items; an empty query when there are none. */
static int on_host_items(tern_module_ctx_t *m, tern_event_t *ev)
{
    if (has_node(ev, NS_ITEMS))
        return no_such_node(m, ev);
    const disco_items_t *items = tern_get_data(m);
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *query = reply != NULL ? tern_xml_add_child(reply, "query", NS_ITEMS) : NULL;
    int ok = query != NULL;
    for (size_t i = 0; ok && items != NULL && i < items->n; i++) {
        tern_xml_t *item = tern_xml_add_child(query, "item", NULL);
        if (item != NULL)
            tern_xml_set_attr(item, "jid", items->jid[i]->full);
        ok = item != NULL;
    }
    return finish(m, ev, reply, ok);
}

/* XEP-0030 §3.1: the server answers for a bare JID; the primary identity of
 * an account is account/registered. */
static int on_bare_info(tern_module_ctx_t *m, tern_event_t *ev)
{
    if (!account_exists(m, ev)) {
        tern_reply_error(m, ev, "cancel", "service-unavailable", NULL);
        return TERN_HANDLED;
    }
    if (has_node(ev, NS_INFO))
        return no_such_node(m, ev);
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *query = reply != NULL ? tern_xml_add_child(reply, "query", NS_INFO) : NULL;
    tern_xml_t *identity = query != NULL ? tern_xml_add_child(query, "identity", NULL) : NULL;
    tern_xml_t *info = query != NULL ? tern_xml_add_child(query, "feature", NULL) : NULL;
    tern_xml_t *items = query != NULL ? tern_xml_add_child(query, "feature", NULL) : NULL;
    int ok = identity != NULL && info != NULL && items != NULL;
    if (ok) {
        tern_xml_set_attr(identity, "category", "account");
        tern_xml_set_attr(identity, "type", "registered");
        tern_xml_set_attr(info, "var", NS_INFO);
        tern_xml_set_attr(items, "var", NS_ITEMS);
    }
    return finish(m, ev, reply, ok);
}

/* XEP-0030 §4.1: an account's items (its resources) are not public, so the
 * answer is the empty list. */
static int on_bare_items(tern_module_ctx_t *m, tern_event_t *ev)
{
    if (!account_exists(m, ev)) {
        tern_reply_error(m, ev, "cancel", "service-unavailable", NULL);
        return TERN_HANDLED;
    }
    if (has_node(ev, NS_ITEMS))
        return no_such_node(m, ev);
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *query = reply != NULL ? tern_xml_add_child(reply, "query", NS_ITEMS) : NULL;
    return finish(m, ev, reply, query != NULL);
}

static void free_items(disco_items_t *items)
{
    if (items == NULL)
        return;
    for (size_t i = 0; i < items->n; i++)
        tern_jid_free(&items->jid[i]);
    free(items);
}

/* Prepare the `items` option; refuse to load when one is not a JID. */
static int load_items(tern_module_ctx_t *m)
{
    const char *const *list = tern_opt_list(m, "items");
    size_t n = 0;
    while (list != NULL && list[n] != NULL)
        n++;
    if (n == 0)
        return 0;
    disco_items_t *items = calloc(1, sizeof *items + n * sizeof items->jid[0]);
    if (items == NULL) {
        tern_log(m, TERN_LOG_ERROR, "out of memory");
        return -1;
    }
    for (; items->n < n; items->n++) {
        const char *error = NULL;
        items->jid[items->n] = tern_jid_new(list[items->n], &error);
        if (items->jid[items->n] == NULL) {
            tern_log(m, TERN_LOG_ERROR, "items: \"%s\" is not a JID: %s", list[items->n],
                     error != NULL ? error : "invalid");
            free_items(items);
            return -1;
        }
    }
    tern_set_data(m, items);
    return 0;
}

static int load(tern_module_ctx_t *m)
{
    tern_add_feature(m, NS_INFO);
    tern_add_feature(m, NS_ITEMS);
    if (tern_hook(m, "iq-get/host/" NS_INFO ":query", on_host_info, 0) != 0 ||
        tern_hook(m, "iq-get/host/" NS_ITEMS ":query", on_host_items, 0) != 0 ||
        tern_hook(m, "iq-get/bare/" NS_INFO ":query", on_bare_info, 0) != 0 ||
        tern_hook(m, "iq-get/bare/" NS_ITEMS ":query", on_bare_items, 0) != 0)
        return -1;
    return load_items(m); /* last: module data is set only when load succeeds */
}

static void unload(tern_module_ctx_t *m)
{
    free_items(tern_get_data(m));
    tern_set_data(m, NULL);
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "disco",
    .description = "Service discovery of the host and its accounts (XEP-0030, XEP-0128)",
    .options = options,
    .load = load,
    .unload = unload,
};
