/*
 * mod.c — mod_roster: rosters, presence subscriptions and presence
 * (RFC 6121 §2-§4) and the last activity of accounts (XEP-0012 §3).
 *
 * Owns the module descriptor, its options, the list of loaded instances
 * (one per host, so that a stanza between two local hosts finds the
 * sender's roster) and the "roster" service of roster_api.h (its write
 * functions are in actions.c).  The protocol lives in roster.c,
 * presence.c and lastactivity.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const tern_option_t options[] = {
    {.name = "max_items",
     .type = TERN_OPT_INT,
     .def = "1000",
     .doc =
         "Most items in one user's roster. A roster set adding one more gets "
         "`not-allowed`; a subscription request or pre-approval that would add one gets a "
         "`resource-constraint` presence error; also the most pending requests from people not in "
         "the roster kept per user: past it they are delivered to online resources but not kept.",
     .min = 1,
     .max = 1000000},
    {.name = "max_name_length",
     .type = TERN_OPT_INT,
     .def = "1024",
     .doc = "Longest item `name` in bytes; longer: `not-acceptable`.",
     .min = 1,
     .max = 65536},
    {.name = "max_group_length",
     .type = TERN_OPT_INT,
     .def = "1024",
     .doc = "Longest group name in bytes; longer: `not-acceptable`.",
     .min = 1,
     .max = 65536},
    {.name = "versioning",
     .type = TERN_OPT_BOOL,
     .def = "true",
     .doc = "Offer roster versioning (RFC 6121 §2.6). Off: no stream feature, `ver` in gets is "
            "ignored and "
            "pushes carry none."},
    {.name = NULL},
};

static rhost_t *instances;

rhost_t *rhost_find(const char *host)
{
    for (rhost_t *h = instances; h != NULL && host != NULL; h = h->next)
        if (strcmp(h->name, host) == 0)
            return h;
    return NULL;
}

rhost_t *rhost_first(void)
{
    return instances;
}

const char *user_bare(const rhost_t *h, const char *user, char *buf, size_t len)
{
    snprintf(buf, len, "%s@%s", user, h->name);
    return buf;
}

char *str_cut(const char *s, size_t max)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* not inside a UTF-8 sequence */
    }
    char *out = malloc(n + 1);
    if (out != NULL) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

/* ---- the "roster" service (roster_api.h) ------------------------------- */

/* The item of `contact` in user@host's roster, NULL when none or hidden. */
static ritem_t *api_item(const char *host, const char *user, const char *contact)
{
    rhost_t *h = rhost_find(host);
    tern_jid_t *j =
        h != NULL && user != NULL && contact != NULL ? tern_jid_new(contact, NULL) : NULL;
    ritem_t *it = NULL;
    if (j != NULL && item_get(h, user, j->bare, &it) == 1 && it->hidden)
        item_free(&it);
    tern_jid_free(&j);
    return it;
}

static roster_sub_t api_subscription(const char *host, const char *user, const char *contact)
{
    ritem_t *it = api_item(host, user, contact);
    roster_sub_t sub = it != NULL ? (roster_sub_t)(it->sub & ROSTER_SUB_BOTH) : ROSTER_SUB_NONE;
    item_free(&it);
    return sub;
}

static int api_in_roster(const char *host, const char *user, const char *contact)
{
    ritem_t *it = api_item(host, user, contact);
    int in = it != NULL;
    item_free(&it);
    return in;
}

static int api_is_subscribed_to(const char *host, const char *user, const char *contact)
{
    tern_jid_t *j =
        contact != NULL && host != NULL && user != NULL ? tern_jid_new(contact, NULL) : NULL;
    int self = j != NULL && j->local != NULL && strcmp(j->local, user) == 0 &&
               strcmp(j->domain, host) == 0 && j->resource == NULL;
    tern_jid_free(&j);
    return self || (api_subscription(host, user, contact) & ROSTER_SUB_FROM) != 0;
}

static int api_in_group(const char *host, const char *user, const char *contact, const char *group)
{
    ritem_t *it = group != NULL ? api_item(host, user, contact) : NULL;
    int in = it != NULL && item_has_group(it, group);
    item_free(&it);
    return in;
}

typedef struct api_walk {
    int (*fn)(void *ctx, const char *contact, roster_sub_t sub, const char *name);
    void *ctx;
    int count;
} api_walk_t;

static int api_walk_one(void *ctx, const ritem_t *it)
{
    api_walk_t *w = ctx;
    if (it->hidden)
        return 0;
    w->count++;
    return w->fn(w->ctx, it->jid, (roster_sub_t)(it->sub & ROSTER_SUB_BOTH), it->name);
}

static int api_foreach(const char *host, const char *user,
                       int (*fn)(void *ctx, const char *contact, roster_sub_t sub,
                                 const char *name),
                       void *ctx)
{
    rhost_t *h = rhost_find(host);
    api_walk_t w = {.fn = fn, .ctx = ctx};
    if (h == NULL || user == NULL || fn == NULL)
        return 0;
    return items_foreach(h, user, api_walk_one, &w) < 0 ? -1 : w.count;
}

static const tern_xml_t *api_session_presence(const tern_session_t *s)
{
    const tern_jid_t *j = s != NULL ? tern_session_jid(s) : NULL;
    rhost_t *h = j != NULL ? rhost_find(j->domain) : NULL;
    psess_t *ps = h != NULL ? psess_get(h, (tern_session_t *)s, 0) : NULL;
    return ps != NULL ? ps->presence : NULL;
}

static const roster_api_t api = {
    .subscription = api_subscription,
    .in_roster = api_in_roster,
    .is_subscribed_to = api_is_subscribed_to,
    .in_group = api_in_group,
    .foreach = api_foreach,
    .session_presence = api_session_presence,
    .approve = actions_approve,
    .subscribe = actions_subscribe,
    .subscribe_both = actions_subscribe_both,
};

/* ---- load ---------------------------------------------------------------- */

/* RFC 6121 §2.6.1 and §3.4: advertise versioning and pre-approval. */
static int on_features(tern_module_ctx_t *m, tern_event_t *ev)
{
    rhost_t *h = tern_get_data(m);
    if (h->versioning)
        tern_xml_add_child(ev->stanza, "ver", NS_ROSTERVER);
    tern_xml_add_child(ev->stanza, "sub", NS_PREAPPROVAL);
    return TERN_PASS;
}

static void unload(tern_module_ctx_t *m)
{
    rhost_t *h = tern_get_data(m);
    if (h == NULL)
        return;
    for (rhost_t **p = &instances; *p != NULL; p = &(*p)->next)
        if (*p == h) {
            *p = h->next;
            break;
        }
    free(h);
    tern_set_data(m, NULL);
}

static int load(tern_module_ctx_t *m)
{
    rhost_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -1;
    h->m = m;
    h->name = tern_host(m);
    h->max_items = tern_opt_int(m, "max_items");
    h->max_name = tern_opt_int(m, "max_name_length");
    h->max_group = tern_opt_int(m, "max_group_length");
    h->versioning = tern_opt_int(m, "versioning") != 0;
    h->items = tern_store(m, "roster", TERN_STORE_MAP);
    h->versions = tern_store(m, "roster_version", TERN_STORE_KV);
    h->last = tern_store(m, "last_activity", TERN_STORE_KV);
    tern_set_data(m, h);
    h->next = instances;
    instances = h;
    if (h->items == NULL || h->versions == NULL || h->last == NULL) {
        tern_log(m, TERN_LOG_ERROR, "cannot open the roster stores");
        unload(m);
        return -1;
    }
    static const struct {
        const char *event;
        tern_handler_fn fn;
    } hooks[] = {
        {"iq-get/self/" NS_ROSTER ":query", roster_on_get},
        {"iq-set/self/" NS_ROSTER ":query", roster_on_set},
        {"presence/self", presence_on_self},
        {"pre-presence/self", presence_on_pre},
        {"pre-presence/bare", presence_on_pre},
        {"pre-presence/full", presence_on_pre},
        {"presence/bare", presence_on_bare},
        {"presence/full", presence_on_full},
        {"session/closed", presence_on_closed},
        {"user/deleted", presence_on_user_deleted},
        {"iq-get/bare/" NS_LAST ":query", last_on_get},
        {"stream-features/auth", on_features},
    };
    for (size_t i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++)
        if (tern_hook(m, hooks[i].event, hooks[i].fn, ROSTER_PRIORITY) != 0) {
            unload(m);
            return -1;
        }
    if (tern_provide(m, ROSTER_SERVICE, &api) != 0) {
        unload(m);
        return -1;
    }
    return 0;
}

/* A reload changed the options: the new limits apply to the next requests. */
static int reconfigure(tern_module_ctx_t *m)
{
    rhost_t *h = tern_get_data(m);
    h->max_items = tern_opt_int(m, "max_items");
    h->max_name = tern_opt_int(m, "max_name_length");
    h->max_group = tern_opt_int(m, "max_group_length");
    h->versioning = tern_opt_int(m, "versioning") != 0;
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "roster",
    .description = "Rosters, presence subscriptions and presence (RFC 6121), "
                   "last activity of accounts (XEP-0012)",
    .options = options,
    .load = load,
    .unload = unload,
    .reconfigure = reconfigure,
};
