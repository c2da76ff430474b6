/*
 * mod_disco — XEP-0030 Service Discovery for a host and its accounts.
 *
 * Owns the framing of disco#info and disco#items answers for the host
 * itself and for the bare JIDs of its accounts.  What the host's disco#info
 * lists (identities, the features every module registered, XEP-0128
 * extension forms) comes from the core's registry through tern_disco_fill(),
 * and what an account's lists through tern_disco_fill_account(); this
 * module must not invent features on behalf of others.  The host's
 * disco#items lists the JIDs of the `items` option (components, usually).
 * Nodes are not supported yet: a request naming one gets item-not-found.
 *
 * Also owns XEP-0157 contact addresses: the contact_* options become one
 * XEP-0128 form (FORM_TYPE http://jabber.org/network/serverinfo) in the
 * host's disco#info, registered at load when any address is configured.
 */
#include <stdlib.h>
#include <string.h>
#include <tern/module.h>

#define NS_INFO       "http://jabber.org/protocol/disco#info"
#define NS_ITEMS      "http://jabber.org/protocol/disco#items"
#define NS_DATA       "jabber:x:data"
#define NS_SERVERINFO "http://jabber.org/network/serverinfo"

/* XEP-0157 §7.1 (field registry): the option that fills each field, in the
 * registry's order. */
static const struct {
    const char *option, *field;
} contact_fields[] = {
    {"contact_abuse", "abuse-addresses"},       {"contact_admin", "admin-addresses"},
    {"contact_feedback", "feedback-addresses"}, {"contact_sales", "sales-addresses"},
    {"contact_security", "security-addresses"}, {"contact_status", "status-addresses"},
    {"contact_support", "support-addresses"},
};

/* The prepared JIDs of the `items` option, in config order. */
typedef struct disco_items {
    size_t n;
    tern_jid_t *jid[];
} disco_items_t;

static const tern_option_t options[] = {
    {.name = "items",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "JIDs listed in the host's disco#items (components, usually). Each must be a valid "
            "JID, or the module refuses to load."},
    {.name = "contact_abuse",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "Addresses for reports of abuse (see below)."},
    {.name = "contact_admin",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "Addresses of the service's administrators."},
    {.name = "contact_feedback",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "Addresses for feedback."},
    {.name = "contact_sales",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "Addresses for sales and marketing."},
    {.name = "contact_security",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "Addresses for security concerns."},
    {.name = "contact_status",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "Addresses where the service's status is published."},
    {.name = "contact_support",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "Addresses for user support."},
    {.name = NULL},
};

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
    return tern_iq_answer(m, ev, reply, query != NULL);
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
    return tern_iq_answer(m, ev, reply, ok);
}

/* XEP-0030 §3.1: the server answers for a bare JID; the primary identity of
 * an account is account/registered, then what modules registered for
 * accounts (tern_add_account_feature: PEP, MAM, vCard...). */
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
    if (query != NULL)
        tern_disco_fill_account(m, query);
    return tern_iq_answer(m, ev, reply, query != NULL);
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
    return tern_iq_answer(m, ev, reply, query != NULL);
}

static void free_items(disco_items_t *items)
{
    if (items == NULL)
        return;
    for (size_t i = 0; i < items->n; i++)
        tern_jid_free(&items->jid[i]);
    free(items);
}

/* Prepare the `items` option into *out (NULL when empty); -1 (logged) when
 * one is not a JID. */
static int build_items(tern_module_ctx_t *m, disco_items_t **out)
{
    const char *const *list = tern_opt_list(m, "items");
    size_t n = 0;
    *out = NULL;
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
    *out = items;
    return 0;
}

/* Whether `s` starts with an RFC 3986 §3.1 scheme and a colon
 * ("mailto:", "xmpp:", "https:"): an address a client can act on. */
static int is_uri(const char *s)
{
    const char *p = s;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '+' || *p == '-' || *p == '.')
        p++;
    return *p == ':' && p[1] != '\0';
}

/* XEP-0157 §3: the contact_* options as an XEP-0128 form for the host's
 * disco#info, in *out (NULL when no address is configured).  -1 (logged)
 * when an address is not a URI. */
static int build_contacts(tern_module_ctx_t *m, tern_xml_t **out)
{
    *out = NULL;
    tern_xml_t *form = NULL;
    int ok = 1;
    for (size_t i = 0; ok && i < sizeof contact_fields / sizeof contact_fields[0]; i++) {
        const char *const *list = tern_opt_list(m, contact_fields[i].option);
        if (list == NULL || list[0] == NULL)
            continue;
        if (form == NULL) { /* XEP-0068: the hidden FORM_TYPE field names the form */
            form = tern_xml_new("x", NS_DATA);
            tern_xml_t *type = form != NULL ? tern_xml_add_child(form, "field", NULL) : NULL;
            tern_xml_t *value = type != NULL ? tern_xml_add_child(type, "value", NULL) : NULL;
            if ((ok = value != NULL)) {
                tern_xml_set_attr(form, "type", "result");
                tern_xml_set_attr(type, "var", "FORM_TYPE");
                tern_xml_set_attr(type, "type", "hidden");
                tern_xml_add_text(value, NS_SERVERINFO, strlen(NS_SERVERINFO));
            }
        }
        tern_xml_t *field = ok ? tern_xml_add_child(form, "field", NULL) : NULL;
        if ((ok = field != NULL))
            tern_xml_set_attr(field, "var", contact_fields[i].field);
        for (size_t j = 0; ok && list[j] != NULL; j++) {
            if (!is_uri(list[j])) {
                tern_log(m, TERN_LOG_ERROR, "%s: \"%s\" is not a URI (mailto:, xmpp:, https:...)",
                         contact_fields[i].option, list[j]);
                tern_xml_unref(form);
                return -1;
            }
            tern_xml_t *value = tern_xml_add_child(field, "value", NULL);
            if ((ok = value != NULL))
                tern_xml_add_text(value, list[j], strlen(list[j]));
        }
    }
    if (ok) {
        *out = form;
        return 0;
    }
    if (form != NULL)
        tern_xml_unref(form);
    tern_log(m, TERN_LOG_ERROR, "out of memory");
    return -1;
}

/* Build both options, then put them in place (the form replaces the one
 * added before, if any).  0, or -1 (logged) with nothing changed. */
static int apply_options(tern_module_ctx_t *m)
{
    disco_items_t *items;
    tern_xml_t *form;
    if (build_items(m, &items) != 0)
        return -1;
    if (build_contacts(m, &form) != 0) {
        free_items(items);
        return -1;
    }
    tern_remove_disco_extensions(m);
    if (form != NULL) {
        tern_add_disco_extension(m, form);
        tern_xml_unref(form);
    }
    free_items(tern_get_data(m));
    tern_set_data(m, items);
    return 0;
}

static int load(tern_module_ctx_t *m)
{
    tern_add_feature(m, NS_INFO);
    tern_add_feature(m, NS_ITEMS);
    tern_add_account_feature(m, NS_INFO);
    tern_add_account_feature(m, NS_ITEMS);
    if (tern_hook(m, "iq-get/host/" NS_INFO ":query", on_host_info, 0) != 0 ||
        tern_hook(m, "iq-get/host/" NS_ITEMS ":query", on_host_items, 0) != 0 ||
        tern_hook(m, "iq-get/bare/" NS_INFO ":query", on_bare_info, 0) != 0 ||
        tern_hook(m, "iq-get/bare/" NS_ITEMS ":query", on_bare_items, 0) != 0)
        return -1;
    return apply_options(m);
}

/* A reload changed the items or contact addresses: answer with the new ones. */
static int reconfigure(tern_module_ctx_t *m)
{
    return apply_options(m);
}

static void unload(tern_module_ctx_t *m)
{
    free_items(tern_get_data(m));
    tern_set_data(m, NULL);
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "disco",
    .description =
        "Service discovery of the host and its accounts, contact addresses (XEP-0030, XEP-0128, "
        "XEP-0157)",
    .options = options,
    .load = load,
    .unload = unload,
    .reconfigure = reconfigure,
};
