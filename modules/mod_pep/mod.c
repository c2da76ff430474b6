/*
 * mod_pep — XEP-0163 Personal Eventing Protocol: every account is a small
 * XEP-0060 publish-subscribe service.
 *
 * Owns, for the accounts of its host: their nodes and items (persistent in
 * the map store "nodes"), the publish/retract/items/owner protocol
 * (publish.c), the access models presence, open and whitelist (nodes.c;
 * with XEP-0223 private storage and XEP-0384 OMEMO in mind), notifications
 * filtered by XEP-0115 caps (notify.c, caps.c) and the "pep" service for
 * other modules (api.c, modules/pep_api.h).  Payloads are opaque: User
 * Avatar (XEP-0084), User Nickname (XEP-0172), vCard4 (XEP-0292), OMEMO
 * (XEP-0384) and bookmarks are ordinary nodes.
 *
 * It must not answer for the account's disco#info without a node: it adds
 * the pubsub/pep identity and its features to the account's registry
 * (tern_add_account_*) and mod_disco answers.  It learns caps from the
 * "pre-presence/self" event (a session's own broadcast presence) and reads
 * subscriptions through the "roster" service; without mod_roster only the
 * owner reads 'presence' nodes and is notified.
 */
#include <stdlib.h>
#include <string.h>

#include "pep.h"

static const tern_option_t options[] = {
    {.name = "max_items_limit",
     .type = TERN_OPT_INT,
     .def = "256",
     .doc = "Most items one node keeps; what `pubsub#max_items` `max` means.",
     .min = 1,
     .max = 100000},
    {.name = "default_max_items",
     .type = TERN_OPT_INT,
     .def = "1",
     .doc = "`pubsub#max_items` of a node created without one. Must not exceed `max_items_limit`.",
     .min = 1,
     .max = 100000},
    {.name = "max_nodes",
     .type = TERN_OPT_INT,
     .def = "1000",
     .doc = "Most nodes per account; creating more gives `resource-constraint`. 0: no limit.",
     .min = 0,
     .max = 1000000},
    {.name = "max_item_size",
     .type = TERN_OPT_SIZE,
     .def = "256K",
     .doc = "Largest payload of one published item, as serialized XML; a bigger one gets "
            "`not-acceptable` with `<payload-too-big/>` (XEP-0060 §7.1.3.4). 0: no limit. An "
            "account stores at most `max_nodes` × `max_items_limit` × `max_item_size`.",
     .min = 0,
     .max = 64LL << 20},
    {.name = "caps_timeout",
     .type = TERN_OPT_DURATION,
     .def = "20s",
     .doc = "How long to wait for a client's answer to a caps disco#info query."},
    {.name = "caps_cache_size",
     .type = TERN_OPT_INT,
     .def = "10000",
     .doc = "Caps `ver` strings kept in memory (all are also stored), and the most contacts on "
            "other servers whose clients' caps are remembered.",
     .min = 1,
     .max = 10000000},
    {.name = NULL},
};

/* Account features (XEP-0060 §10 names; XEP-0163 §9.1). */
static const char *const features[] = {
    NS_PUBSUB "#access-open",
    NS_PUBSUB "#access-presence",
    NS_PUBSUB "#access-whitelist",
    NS_PUBSUB "#auto-create",
    NS_PUBSUB "#auto-subscribe",
    NS_PUBSUB "#config-node",
    NS_PUBSUB "#config-node-max",
    NS_PUBSUB "#create-and-configure",
    NS_PUBSUB "#create-nodes",
    NS_PUBSUB "#delete-items",
    NS_PUBSUB "#delete-nodes",
    NS_PUBSUB "#filtered-notifications",
    NS_PUBSUB "#item-ids",
    NS_PUBSUB "#last-published",
    NS_PUBSUB "#manage-affiliations",
    NS_PUBSUB "#meta-data",
    NS_PUBSUB "#modify-affiliations",
    NS_PUBSUB "#multi-items",
    NS_PUBSUB "#persistent-items",
    NS_PUBSUB "#presence-notifications",
    NS_PUBSUB "#publish",
    NS_PUBSUB "#publish-options",
    NS_PUBSUB "#purge-nodes",
    NS_PUBSUB "#retract-items",
    NS_PUBSUB "#retrieve-affiliations",
    NS_PUBSUB "#retrieve-default",
    NS_PUBSUB "#retrieve-items",
    NS_PUBSUB "#retrieve-subscriptions",
    NULL,
};

/* The instances on every host, for cross-host lookups (a contact on another
 * virtual host of this server).  One process, one loop: no locking. */
typedef struct instance {
    struct instance *next;
    pep_state_t *st;
} instance_t;

static instance_t *instances;

pep_state_t *pep_state_of_host(const char *host)
{
    for (instance_t *i = instances; i != NULL; i = i->next)
        if (strcmp(tern_host(i->st->m), host) == 0)
            return i->st;
    return NULL;
}

static int register_instance(pep_state_t *st)
{
    instance_t *i = calloc(1, sizeof *i);
    if (i == NULL)
        return -1;
    i->st = st;
    i->next = instances;
    instances = i;
    return 0;
}

static void unregister_instance(pep_state_t *st)
{
    for (instance_t **p = &instances; *p != NULL; p = &(*p)->next)
        if ((*p)->st == st) {
            instance_t *dead = *p;
            *p = dead->next;
            free(dead);
            return;
        }
}

static void free_volatile(void *p)
{
    tern_xml_unref(p);
}

/* The account is gone (the core deleted its stored nodes): drop the items
 * kept in memory. */
static int on_user_deleted(tern_module_ctx_t *m, tern_event_t *ev)
{
    pep_state_t *st = tern_get_data(m);
    char *prefix = st != NULL && ev->user != NULL ? pep_join(ev->user, "") : NULL;
    if (prefix != NULL) {
        strmap_del_prefix(st->volatile_items, prefix);
        pep_remote_forget_user(st, ev->user);
    }
    free(prefix);
    return TERN_PASS;
}

static void state_free(pep_state_t *st)
{
    if (st == NULL)
        return;
    unregister_instance(st);
    pep_caps_release(st);
    strmap_free(&st->volatile_items);
    while (st->observers != NULL) { /* observers should have unobserved */
        pep_observer_t *o = st->observers;
        st->observers = o->next;
        free(o->node);
        free(o);
    }
    free(st);
}

static int hook_all(tern_module_ctx_t *m)
{
    static const struct {
        const char *event;
        tern_handler_fn fn;
        int priority;
    } hooks[] = {
        {"iq-set/self/" NS_PUBSUB ":pubsub", pep_on_pubsub_set, 0},
        {"iq-set/bare/" NS_PUBSUB ":pubsub", pep_on_pubsub_set, 0},
        {"iq-get/self/" NS_PUBSUB ":pubsub", pep_on_pubsub_get, 0},
        {"iq-get/bare/" NS_PUBSUB ":pubsub", pep_on_pubsub_get, 0},
        {"iq-set/self/" NS_PUBSUB_OWNER ":pubsub", pep_on_owner, 0},
        {"iq-set/bare/" NS_PUBSUB_OWNER ":pubsub", pep_on_owner, 0},
        {"iq-get/self/" NS_PUBSUB_OWNER ":pubsub", pep_on_owner, 0},
        {"iq-get/bare/" NS_PUBSUB_OWNER ":pubsub", pep_on_owner, 0},
        /* Above mod_disco (0): nodes are ours, the rest passes to it. */
        {"iq-get/self/" NS_DISCO_INFO ":query", pep_on_disco_info, 10},
        {"iq-get/bare/" NS_DISCO_INFO ":query", pep_on_disco_info, 10},
        {"iq-get/self/" NS_DISCO_ITEMS ":query", pep_on_disco_items, 10},
        {"iq-get/bare/" NS_DISCO_ITEMS ":query", pep_on_disco_items, 10},
        {"pre-presence/self", pep_caps_on_presence, 0},
        /* Below the filters (mod_blocking): what they drop is not seen. */
        {"in-presence/bare", pep_caps_on_remote_presence, -10},
        {"in-presence/full", pep_caps_on_remote_presence, -10},
        {"user/deleted", on_user_deleted, 0},
    };
    for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++)
        if (tern_hook(m, hooks[i].event, hooks[i].fn, hooks[i].priority) != 0)
            return -1;
    return 0;
}

static int load(tern_module_ctx_t *m)
{
    pep_state_t *st = calloc(1, sizeof *st);
    if (st == NULL) {
        tern_log(m, TERN_LOG_ERROR, "out of memory");
        return -1;
    }
    st->m = m;
    st->max_items_limit = (long)tern_opt_int(m, "max_items_limit");
    st->default_max_items = (long)tern_opt_int(m, "default_max_items");
    st->max_nodes = (long)tern_opt_int(m, "max_nodes");
    st->max_item_size = tern_opt_int(m, "max_item_size");
    st->caps_timeout_ms = tern_opt_int(m, "caps_timeout");
    st->caps_cache_size = (long)tern_opt_int(m, "caps_cache_size");
    if (st->default_max_items > st->max_items_limit) {
        tern_log(m, TERN_LOG_ERROR, "default_max_items (%ld) is over max_items_limit (%ld)",
                 st->default_max_items, st->max_items_limit);
        free(st);
        return -1;
    }
    if (st->caps_timeout_ms <= 0) {
        tern_log(m, TERN_LOG_ERROR, "caps_timeout must be more than 0");
        free(st);
        return -1;
    }
    st->nodes = tern_store(m, "nodes", TERN_STORE_MAP);
    st->caps = tern_store(m, "caps", TERN_STORE_KV);
    st->volatile_items = strmap_new(free_volatile);
    if (st->nodes == NULL || st->caps == NULL || st->volatile_items == NULL ||
        pep_caps_init(st) < 0 || register_instance(st) < 0) {
        tern_log(m, TERN_LOG_ERROR, "cannot set up storage");
        state_free(st);
        return -1;
    }
    tern_set_data(m, st);
    tern_add_account_identity(m, "pubsub", "pep", NULL); /* XEP-0163 §9.1 */
    for (size_t i = 0; features[i] != NULL; i++)
        tern_add_account_feature(m, features[i]);
    if (hook_all(m) < 0 || tern_provide(m, TERN_PEP_SERVICE, &pep_api) < 0) {
        tern_set_data(m, NULL);
        state_free(st);
        return -1;
    }
    return 0;
}

static void unload(tern_module_ctx_t *m)
{
    state_free(tern_get_data(m));
    tern_set_data(m, NULL);
}

/* A reload changed the options: checked as in load(), then used for the
 * next requests (the caps cache shrinks as entries are added). */
static int reconfigure(tern_module_ctx_t *m)
{
    pep_state_t *st = tern_get_data(m);
    long limit = (long)tern_opt_int(m, "max_items_limit");
    long def = (long)tern_opt_int(m, "default_max_items");
    long long timeout = tern_opt_int(m, "caps_timeout");
    if (def > limit) {
        tern_log(m, TERN_LOG_ERROR, "default_max_items (%ld) is over max_items_limit (%ld)", def,
                 limit);
        return -1;
    }
    if (timeout <= 0) {
        tern_log(m, TERN_LOG_ERROR, "caps_timeout must be more than 0");
        return -1;
    }
    st->max_items_limit = limit;
    st->default_max_items = def;
    st->max_nodes = (long)tern_opt_int(m, "max_nodes");
    st->max_item_size = tern_opt_int(m, "max_item_size");
    st->caps_timeout_ms = timeout;
    st->caps_cache_size = (long)tern_opt_int(m, "caps_cache_size");
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "pep",
    .description = "Personal Eventing Protocol: a pubsub service per account (XEP-0163, "
                   "XEP-0060, XEP-0115, XEP-0223)",
    .options = options,
    .load = load,
    .unload = unload,
    .reconfigure = reconfigure,
};
