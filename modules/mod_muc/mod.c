/*
 * mod.c — the entry of mod_muc: Multi-User Chat (XEP-0045) on a service
 * domain.  Owns the option table, the module state (muc_t) and the event
 * hooks; the work is done in the other files of this folder (see muc.h).
 */
#include <stdlib.h>
#include <string.h>

#include "muc.h"

static const tern_option_t options[] = {
    {.name = "create",
     .type = TERN_OPT_STRING,
     .def = "local",
     .doc = "Who may create rooms: `anyone` (users of any server), `local` (accounts of this "
            "server's hosts) or `admins` (the server's `admins`). Anything else is refused."},
    {.name = "max_rooms_per_user",
     .type = TERN_OPT_INT,
     .def = "0",
     .doc = "The most rooms one user may have created and that still exist; `0` for no "
            "limit. Server admins have none.",
     .min = 0,
     .max = 1000000},
    {.name = "max_occupants",
     .type = TERN_OPT_INT,
     .def = "0",
     .doc = "The most occupants of a room (owners and admins still get in); `0` for no "
            "limit. A room's owner may set a lower one.",
     .min = 0,
     .max = 1000000},
    {.name = "admins_are_owners",
     .type = TERN_OPT_BOOL,
     .def = "true",
     .doc = "The server's `admins` are owners of every room."},
    {.name = "default_persistent",
     .type = TERN_OPT_BOOL,
     .def = "false",
     .doc = "New rooms stay when their last occupant leaves (and across restarts)."},
    {.name = "default_public",
     .type = TERN_OPT_BOOL,
     .def = "true",
     .doc = "New rooms are listed in the service's disco#items."},
    {.name = "default_members_only",
     .type = TERN_OPT_BOOL,
     .def = "false",
     .doc = "Only members may enter new rooms."},
    {.name = "default_moderated",
     .type = TERN_OPT_BOOL,
     .def = "false",
     .doc = "In new rooms, occupants who are not members are visitors without voice."},
    {.name = "default_anonymity",
     .type = TERN_OPT_STRING,
     .def = "semi",
     .doc = "Who sees occupants' real addresses in new rooms: `semi` (moderators) or `non` "
            "(everyone)."},
    {.name = "history_length",
     .type = TERN_OPT_INT,
     .def = "20",
     .doc = "Messages a new room keeps in memory for those who enter; `0` for none.",
     .min = 0,
     .max = 1000},
    {.name = "archive",
     .type = TERN_OPT_BOOL,
     .def = "true",
     .doc = "Persistent rooms keep an archive of their messages in the database, which "
            "occupants (of members-only rooms: members) query with MAM (XEP-0313) and which "
            "refills the history after a restart."},
    {.name = NULL},
};

muc_t *muc_get(tern_module_ctx_t *m)
{
    return tern_get_data(m);
}

/* Read the options into mu; -1 (logged) when one is wrong. */
static int read_options(tern_module_ctx_t *m, muc_t *mu)
{
    const char *create = tern_opt_str(m, "create");
    const char *anon = tern_opt_str(m, "default_anonymity");
    int policy;
    if (strcmp(create, "anyone") == 0)
        policy = CREATE_ANYONE;
    else if (strcmp(create, "local") == 0)
        policy = CREATE_LOCAL;
    else if (strcmp(create, "admins") == 0)
        policy = CREATE_ADMINS;
    else {
        tern_log(m, TERN_LOG_ERROR, "muc: create must be anyone, local or admins, not '%s'",
                 create);
        return -1;
    }
    if (strcmp(anon, "semi") != 0 && strcmp(anon, "non") != 0) {
        tern_log(m, TERN_LOG_ERROR, "muc: default_anonymity must be semi or non, not '%s'", anon);
        return -1;
    }
    /* all checked: nothing changes when a value is refused */
    mu->create = policy;
    mu->max_rooms_per_user = (long)tern_opt_int(m, "max_rooms_per_user");
    mu->max_occupants = (long)tern_opt_int(m, "max_occupants");
    mu->admins_are_owners = (int)tern_opt_int(m, "admins_are_owners");
    mu->archive_on = (int)tern_opt_int(m, "archive");
    muc_config_t *d = &mu->defaults;
    d->persistent = (int)tern_opt_int(m, "default_persistent");
    d->public_room = (int)tern_opt_int(m, "default_public");
    d->members_only = (int)tern_opt_int(m, "default_members_only");
    d->moderated = (int)tern_opt_int(m, "default_moderated");
    d->nonanonymous = strcmp(anon, "non") == 0;
    d->history_len = (long)tern_opt_int(m, "history_length");
    d->change_subject = 0;
    d->allow_invites = 0;
    d->max_occupants = 0;
    return 0;
}

static int pick_one(void *ctx, const char *key, void *value)
{
    (void)key;
    *(muc_room_t **)ctx = value;
    return 1;
}

static void unload(tern_module_ctx_t *m)
{
    muc_t *mu = muc_get(m);
    if (!mu)
        return;
    muc_room_t *r = NULL;
    while (mu->rooms && (tern_table_foreach(mu->rooms, pick_one, &r), r))
        room_free(mu, &r); /* removes it from the table */
    tern_table_free(&mu->rooms);
    muc_config_clear(&mu->defaults);
    free(mu);
    tern_set_data(m, NULL);
}

static int api_watch(const tern_muc_api_t *self, tern_module_ctx_t *watcher, tern_muc_watch_fn fn,
                     void *arg)
{
    muc_t *mu = (muc_t *)self;
    if (mu->n_watchers == MUC_MAX_WATCHERS || !fn)
        return -1;
    mu->watchers[mu->n_watchers++] = (muc_watcher_t){watcher, fn, arg};
    return 0;
}

static void api_unwatch(const tern_muc_api_t *self, tern_module_ctx_t *watcher)
{
    muc_t *mu = (muc_t *)self;
    size_t j = 0;
    for (size_t i = 0; i < mu->n_watchers; i++)
        if (mu->watchers[i].who != watcher)
            mu->watchers[j++] = mu->watchers[i];
    mu->n_watchers = j;
}

static int evict_for_shutdown(void *ctx, const char *key, void *value)
{
    (void)key;
    room_evict_all(ctx, value, 332, NULL);
    return 0;
}

/* XEP-0045 §15.2.2, 332: the service is going down; occupants hear it
 * before their streams close. */
static int on_stopping(tern_module_ctx_t *m, tern_event_t *ev)
{
    (void)ev;
    muc_t *mu = muc_get(m);
    tern_table_foreach(mu->rooms, evict_for_shutdown, mu);
    return TERN_PASS;
}

static int on_host_message(tern_module_ctx_t *m, tern_event_t *ev)
{
    const char *type = tern_xml_attr(ev->stanza, "type");
    if (!type || strcmp(type, "error") != 0)
        tern_reply_error(m, ev, "cancel", "service-unavailable",
                         "This is a group chat service: send messages to a room");
    return TERN_HANDLED;
}

static int on_host_presence(tern_module_ctx_t *m, tern_event_t *ev)
{
    (void)m;
    (void)ev;
    return TERN_HANDLED;
}

static int load(tern_module_ctx_t *m)
{
    muc_t *mu = calloc(1, sizeof(*mu));
    if (!mu)
        return -1;
    mu->m = m;
    mu->api.abi = TERN_MUC_ABI;
    mu->api.watch = api_watch;
    mu->api.unwatch = api_unwatch;
    mu->rooms = tern_table_new();
    mu->defaults.name = strdup("");
    mu->defaults.desc = strdup("");
    mu->defaults.password = strdup("");
    tern_set_data(m, mu);
    if (!mu->rooms || !mu->defaults.name || !mu->defaults.desc || !mu->defaults.password ||
        read_options(m, mu) != 0) {
        unload(m);
        return -1;
    }
    mu->store = tern_store(m, "rooms", TERN_STORE_MAP);
    mu->archive = tern_store(m, "archive", TERN_STORE_ARCHIVE);
    mu->vcards = tern_store(m, "vcards", TERN_STORE_MAP);
    if (ids_load_secret(mu) != 0) {
        tern_log(m, TERN_LOG_ERROR, "muc: no random bytes for the occupant id secret");
        unload(m);
        return -1;
    }
    if (tern_provide(m, TERN_MUC_SERVICE, &mu->api) != 0) {
        unload(m);
        return -1;
    }
    if (persist_load_all(mu) != 0)
        tern_log(m, TERN_LOG_ERROR, "muc: cannot read the stored rooms");
    archive_fill_histories(mu);
    tern_add_identity(m, "conference", "text", "Chatrooms");
    tern_add_feature(m, NS_DISCO_INFO);
    tern_add_feature(m, NS_DISCO_ITEM);
    tern_add_feature(m, NS_MUC);
    /* Priority 10: above mod_disco (0) should the admin load it here too. */
    if (tern_hook(m, "presence/full", muc_on_presence, 0) != 0 ||
        tern_hook(m, "presence/bare", muc_on_presence_bare, 0) != 0 ||
        tern_hook(m, "presence/host", on_host_presence, 0) != 0 ||
        tern_hook(m, "message/bare", muc_on_room_message, 0) != 0 ||
        tern_hook(m, "message/full", muc_on_private_message, 0) != 0 ||
        tern_hook(m, "message/host", on_host_message, 0) != 0 ||
        tern_hook(m, "server/stopping", on_stopping, 0) != 0 ||
        tern_hook(m, "iq-get/full/" NS_PING ":ping", muc_on_self_ping, 10) != 0 ||
        tern_hook(m, "iq-set/bare/" NS_MODERATE1 ":moderate", muc_on_moderate, 0) != 0 ||
        tern_hook(m, "iq-set/bare/" NS_MAM ":query", muc_on_mam_query, 0) != 0 ||
        tern_hook(m, "iq-get/bare/" NS_VCARD ":vCard", muc_on_vcard_get, 10) != 0 ||
        tern_hook(m, "iq-set/bare/" NS_VCARD ":vCard", muc_on_vcard_set, 10) != 0 ||
        tern_hook(m, "iq-set/bare/urn:xmpp:fasten:0:apply-to", muc_on_moderate_fasten, 0) != 0 ||
        tern_hook(m, "iq-get/host/" NS_DISCO_INFO ":query", muc_on_disco_info_host, 10) != 0 ||
        tern_hook(m, "iq-get/host/" NS_DISCO_ITEM ":query", muc_on_disco_items_host, 10) != 0 ||
        tern_hook(m, "iq-get/bare/" NS_DISCO_INFO ":query", muc_on_disco_info_room, 10) != 0 ||
        tern_hook(m, "iq-get/bare/" NS_DISCO_ITEM ":query", muc_on_disco_items_room, 10) != 0 ||
        tern_hook(m, "iq-get/bare/" NS_MUC_ADMIN ":query", muc_on_admin_get, 0) != 0 ||
        tern_hook(m, "iq-set/bare/" NS_MUC_ADMIN ":query", muc_on_admin_set, 0) != 0 ||
        tern_hook(m, "iq-get/bare/" NS_MUC_OWNER ":query", muc_on_owner_get, 0) != 0 ||
        tern_hook(m, "iq-set/bare/" NS_MUC_OWNER ":query", muc_on_owner_set, 0) != 0) {
        unload(m);
        return -1;
    }
    return 0;
}

static int reconfigure(tern_module_ctx_t *m)
{
    return read_options(m, muc_get(m));
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "muc",
    .description = "Multi-User Chat (XEP-0045) rooms on a service domain",
    .options = options,
    .load = load,
    .unload = unload,
    .reconfigure = reconfigure,
};
