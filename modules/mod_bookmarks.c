/*
 * mod_bookmarks — XEP-0402 PEP Native Bookmarks, kept in step with the
 * XEP-0048 views (XEP-0402 §5.3 "Compatibility").
 *
 * Owns the unification of a user's three bookmark stores:
 *   - the XEP-0402 node urn:xmpp:bookmarks:1 (one item per room, id = the
 *     room's JID, <conference xmlns='urn:xmpp:bookmarks:1'/> payload);
 *   - XEP-0048 in private XML storage (XEP-0049, jabber:iq:private,
 *     <storage xmlns='storage:bookmarks'/>), through the "private" service;
 *   - XEP-0048 in PEP (node storage:bookmarks, item "current").
 * When one changes, the others are rewritten from it: a XEP-0402 change
 * rebuilds the <storage/> element (keeping its <url/> bookmarks, which
 * XEP-0402 dropped); a XEP-0048 write becomes per-room publishes and
 * retractions on the XEP-0402 node, only for the rooms that changed
 * (§5.3.2: no notifications for unchanged items), keeping the XEP-0402
 * <extensions/> a legacy client cannot see.  A user who has legacy
 * bookmarks and no XEP-0402 node is migrated when a session starts.
 *
 * It stores nothing itself and answers no iq: mod_pep and mod_private do.
 * It needs mod_pep ("depends"); without mod_private (the "private"
 * service) only the two PEP views are kept in step.  The account features
 * urn:xmpp:bookmarks:1#compat and #compat-pep say so to clients.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <tern/module.h>

#include "pep_api.h"
#include "private_api.h"

#define NS_BOOKMARKS "urn:xmpp:bookmarks:1"
#define NS_LEGACY    "storage:bookmarks"
#define NS_PUBSUB    "http://jabber.org/protocol/pubsub"
#define LEGACY_ITEM  "current"

static const char *const depends[] = {"pep", NULL};

/* Module data. */
typedef struct bm_state {
    int watching_private; /* the private watch is registered */
    int busy;             /* a sync is running: our own writes are not news */
} bm_state_t;

/* One room, in a neutral form. */
typedef struct room {
    const char *jid, *name, *nick, *password;
    int autojoin;
    const tern_xml_t *extensions; /* XEP-0402 only */
} room_t;

static int truthy(const char *v)
{
    return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static const char *child_text(const tern_xml_t *parent, const char *name, const char *ns)
{
    tern_xml_t *c = tern_xml_child(parent, name, ns);
    return c != NULL ? tern_xml_text(c) : NULL;
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void add_text_child(tern_xml_t *parent, const char *name, const char *text)
{
    tern_xml_t *c = text != NULL ? tern_xml_add_child(parent, name, NULL) : NULL;
    if (c != NULL)
        tern_xml_add_text(c, text, strlen(text));
}

/* XEP-0402 §3: a room from an item. */
static void room_from_402(room_t *r, const char *id, const tern_xml_t *conf)
{
    memset(r, 0, sizeof *r);
    r->jid = id;
    r->name = tern_xml_attr(conf, "name");
    r->autojoin = truthy(tern_xml_attr(conf, "autojoin"));
    r->nick = child_text(conf, "nick", NS_BOOKMARKS);
    r->password = child_text(conf, "password", NS_BOOKMARKS);
    r->extensions = tern_xml_child(conf, "extensions", NS_BOOKMARKS);
}

/* XEP-0048 §3.2: a room from a <conference/> of <storage/>. */
static void room_from_048(room_t *r, const tern_xml_t *conf)
{
    memset(r, 0, sizeof *r);
    r->jid = tern_xml_attr(conf, "jid");
    r->name = tern_xml_attr(conf, "name");
    r->autojoin = truthy(tern_xml_attr(conf, "autojoin"));
    r->nick = child_text(conf, "nick", NS_LEGACY);
    r->password = child_text(conf, "password", NS_LEGACY);
}

static int room_equal(const room_t *a, const room_t *b)
{
    return same_str(a->name, b->name) && a->autojoin == b->autojoin && same_str(a->nick, b->nick) &&
           same_str(a->password, b->password);
}

/* A new <conference xmlns='urn:xmpp:bookmarks:1'/> for r, or NULL. */
static tern_xml_t *conference_402(const room_t *r)
{
    tern_xml_t *c = tern_xml_new("conference", NS_BOOKMARKS);
    if (c == NULL)
        return NULL;
    if (r->name != NULL)
        tern_xml_set_attr(c, "name", r->name);
    tern_xml_set_attr(c, "autojoin", r->autojoin ? "true" : "false");
    add_text_child(c, "nick", r->nick);
    add_text_child(c, "password", r->password);
    if (r->extensions != NULL)
        tern_xml_copy_into(c, r->extensions);
    return c;
}

/* Append <conference jid .../> (XEP-0048) for r to storage. */
static void conference_048(tern_xml_t *storage, const room_t *r)
{
    tern_xml_t *c = tern_xml_add_child(storage, "conference", NULL);
    if (c == NULL)
        return;
    tern_xml_set_attr(c, "jid", r->jid);
    if (r->name != NULL)
        tern_xml_set_attr(c, "name", r->name);
    tern_xml_set_attr(c, "autojoin", r->autojoin ? "true" : "false");
    add_text_child(c, "nick", r->nick);
    add_text_child(c, "password", r->password);
}

/* ---- the services ------------------------------------------------------- */

static const tern_pep_api_t *pep_of(tern_module_ctx_t *m)
{
    const tern_pep_api_t *pep = tern_require(m, TERN_PEP_SERVICE);
    return pep != NULL && pep->abi == TERN_PEP_ABI ? pep : NULL;
}

static const tern_private_api_t *private_of(tern_module_ctx_t *m)
{
    const tern_private_api_t *priv = tern_require(m, TERN_PRIVATE_SERVICE);
    return priv != NULL && priv->abi == TERN_PRIVATE_ABI ? priv : NULL;
}

/* XEP-0223 §5 / XEP-0402 §3.1: private, persistent nodes. */
static void private_node_config(tern_pep_config_t *cfg, int many)
{
    cfg->access_model = TERN_PEP_ACCESS_WHITELIST;
    cfg->persist_items = 1;
    cfg->max_items = many ? LONG_MAX : 1; /* mod_pep caps it at its limit ("max") */
    cfg->send_last = many ? 0 : 2;
    cfg->notify_retract = 1;
}

/* Publish to a node of ours, creating it private when missing (an existing
 * node keeps the configuration its client chose). */
static int publish(tern_module_ctx_t *m, const tern_pep_api_t *pep, const char *user,
                   const char *node, const char *id, const tern_xml_t *payload, int many)
{
    tern_pep_config_t cfg;
    const char *err = NULL;
    int exists = pep->node_config(m, user, node, &cfg);
    if (exists < 0)
        return -1;
    private_node_config(&cfg, many);
    if (pep->publish(m, user, node, id, payload, exists ? NULL : &cfg, &err) < 0) {
        tern_log(m, TERN_LOG_WARN, "%s: cannot update %s: %s", user, node,
                 err != NULL ? err : "error");
        return -1;
    }
    return 0;
}

/* ---- XEP-0402 -> XEP-0048 ------------------------------------------------ */

typedef struct collect {
    tern_xml_t *storage;
} collect_t;

static int collect_room(void *ctx, const char *id, const tern_xml_t *payload)
{
    collect_t *c = ctx;
    room_t r;
    if (id == NULL || payload == NULL || !tern_xml_is(payload, "conference", NS_BOOKMARKS))
        return 0;
    room_from_402(&r, id, payload);
    conference_048(c->storage, &r);
    return 0;
}

/* The current XEP-0048 <storage/> (private first, else the PEP item), a
 * new tree or NULL: for its <url/> bookmarks. */
static tern_xml_t *legacy_storage(tern_module_ctx_t *m, const tern_pep_api_t *pep,
                                  const char *user);

/* Rewrite both XEP-0048 views from the XEP-0402 node. */
static void sync_to_legacy(tern_module_ctx_t *m, const char *user)
{
    const tern_pep_api_t *pep = pep_of(m);
    const tern_private_api_t *priv = private_of(m);
    tern_xml_t *storage = tern_xml_new("storage", NS_LEGACY);
    if (pep == NULL || storage == NULL) {
        if (storage != NULL)
            tern_xml_unref(storage);
        return;
    }
    collect_t c = {.storage = storage};
    if (pep->items(m, user, NS_BOOKMARKS, 0, collect_room, &c) < 0) {
        tern_xml_unref(storage);
        return;
    }
    tern_xml_t *old = legacy_storage(m, pep, user);
    for (tern_xml_t *u = old != NULL ? tern_xml_first_element(old) : NULL; u != NULL;
         u = tern_xml_next_element(u))
        if (tern_xml_is(u, "url", NS_LEGACY)) /* XEP-0402 §1: URLs are out of its scope */
            tern_xml_copy_into(storage, u);
    if (old != NULL)
        tern_xml_unref(old);
    if (priv != NULL && priv->set(priv, m, user, NS_LEGACY, storage) < 0)
        tern_log(m, TERN_LOG_WARN, "%s: cannot update private bookmarks", user);
    publish(m, pep, user, NS_LEGACY, LEGACY_ITEM, storage, 0);
    tern_xml_unref(storage);
}

/* ---- XEP-0048 -> XEP-0402 ------------------------------------------------ */

/* The rooms now on the XEP-0402 node, as copies of their payloads. */
typedef struct current {
    tern_xml_t *list; /* <list/> of <item id><conference/></item> */
} current_t;

static int keep_item(void *ctx, const char *id, const tern_xml_t *payload)
{
    current_t *c = ctx;
    tern_xml_t *it =
        id != NULL && payload != NULL ? tern_xml_add_child(c->list, "item", NULL) : NULL;
    if (it != NULL) {
        tern_xml_set_attr(it, "id", id);
        tern_xml_copy_into(it, payload);
    }
    return 0;
}

static tern_xml_t *find_item(tern_xml_t *list, const char *id)
{
    for (tern_xml_t *it = tern_xml_first_element(list); it != NULL; it = tern_xml_next_element(it))
        if (strcmp(tern_xml_attr(it, "id"), id) == 0)
            return it;
    return NULL;
}

/* Which XEP-0048 views sync_from_legacy() rewrites. */
enum { WRITE_PEP = 1, WRITE_PRIVATE = 2 };

/* §5.3.2: make the XEP-0402 node say what `storage` says, touching only
 * the rooms that changed; then rewrite the XEP-0048 views in `write` (the
 * one the client wrote is left alone). */
static void sync_from_legacy(tern_module_ctx_t *m, const char *user, const tern_xml_t *storage,
                             int write)
{
    const tern_pep_api_t *pep = pep_of(m);
    current_t cur = {.list = tern_xml_new("list", NS_BOOKMARKS)};
    if (pep == NULL || cur.list == NULL || storage == NULL) {
        if (cur.list != NULL)
            tern_xml_unref(cur.list);
        return;
    }
    if (pep->items(m, user, NS_BOOKMARKS, 0, keep_item, &cur) < 0) {
        tern_xml_unref(cur.list);
        return;
    }
    for (tern_xml_t *c = tern_xml_first_element(storage); c != NULL; c = tern_xml_next_element(c)) {
        room_t want, have;
        if (!tern_xml_is(c, "conference", NS_LEGACY))
            continue;
        room_from_048(&want, c);
        tern_jid_t *room = want.jid != NULL ? tern_jid_new(want.jid, NULL) : NULL;
        if (room == NULL || room->local == NULL || room->resource != NULL) {
            tern_jid_free(&room);
            continue; /* XEP-0402 §3: the id is a room's bare JID */
        }
        want.jid = room->bare;
        tern_xml_t *old = find_item(cur.list, want.jid);
        tern_xml_t *old_conf = old != NULL ? tern_xml_first_element(old) : NULL;
        int same = 0;
        if (old_conf != NULL && tern_xml_is(old_conf, "conference", NS_BOOKMARKS)) {
            room_from_402(&have, want.jid, old_conf);
            want.extensions = have.extensions; /* what legacy clients cannot carry */
            same = room_equal(&want, &have);
        }
        if (!same) {
            tern_xml_t *conf = conference_402(&want);
            if (conf != NULL)
                publish(m, pep, user, NS_BOOKMARKS, want.jid, conf, 1);
            if (conf != NULL)
                tern_xml_unref(conf);
        }
        if (old != NULL)
            tern_xml_unlink(old); /* seen */
        tern_jid_free(&room);
    }
    for (tern_xml_t *it = tern_xml_first_element(cur.list); it != NULL;
         it = tern_xml_next_element(it))
        pep->retract(m, user, NS_BOOKMARKS, tern_xml_attr(it, "id"), 1); /* gone from the list */
    tern_xml_unref(cur.list);

    const tern_private_api_t *priv = private_of(m);
    if (write & WRITE_PEP)
        publish(m, pep, user, NS_LEGACY, LEGACY_ITEM, storage, 0);
    if ((write & WRITE_PRIVATE) && priv != NULL && priv->set(priv, m, user, NS_LEGACY, storage) < 0)
        tern_log(m, TERN_LOG_WARN, "%s: cannot update private bookmarks", user);
}

/* ---- reading the legacy views ------------------------------------------- */

static int first_storage(void *ctx, const char *id, const tern_xml_t *payload)
{
    tern_xml_t **out = ctx;
    if (*out == NULL && payload != NULL && tern_xml_is(payload, "storage", NS_LEGACY))
        *out = tern_xml_copy(payload);
    return 0;
}

static tern_xml_t *legacy_storage(tern_module_ctx_t *m, const tern_pep_api_t *pep, const char *user)
{
    const tern_private_api_t *priv = private_of(m);
    tern_xml_t *data = priv != NULL ? priv->get(priv, user, NS_LEGACY) : NULL;
    tern_xml_t *storage = data != NULL ? tern_xml_child(data, "storage", NS_LEGACY) : NULL;
    tern_xml_t *out = storage != NULL ? tern_xml_copy(storage) : NULL;
    if (data != NULL)
        tern_xml_unref(data);
    if (out == NULL)
        pep->items(m, user, NS_LEGACY, 1, first_storage, &out);
    return out;
}

/* ---- events --------------------------------------------------------------- */

static void on_private_write(tern_module_ctx_t *m, const char *user, const char *ns,
                             const tern_xml_t *query, void *arg)
{
    bm_state_t *st = tern_get_data(m);
    const tern_xml_t *storage = tern_xml_child(query, "storage", NS_LEGACY);
    if (st == NULL || st->busy)
        return;
    st->busy = 1;
    if (storage != NULL) {
        sync_from_legacy(m, user, storage, WRITE_PEP);
    } else { /* removed: an empty list */
        tern_xml_t *empty = tern_xml_new("storage", NS_LEGACY);
        if (empty != NULL) {
            sync_from_legacy(m, user, empty, WRITE_PEP);
            tern_xml_unref(empty);
        }
    }
    st->busy = 0;
}

/* Register the private watch once mod_private is there (it may load after
 * us, so this runs at event time, before the write it must see). */
static void ensure_watch(tern_module_ctx_t *m)
{
    bm_state_t *st = tern_get_data(m);
    const tern_private_api_t *priv = st != NULL && !st->watching_private ? private_of(m) : NULL;
    if (priv != NULL && priv->watch(priv, m, NS_LEGACY, on_private_write, NULL) == 0)
        st->watching_private = 1;
}

static void on_pep_change(tern_module_ctx_t *m, const char *user, const char *node,
                          tern_pep_change_t what, const char *item_id, const tern_xml_t *payload,
                          void *arg)
{
    bm_state_t *st = tern_get_data(m);
    if (st == NULL || st->busy)
        return;
    ensure_watch(m);
    st->busy = 1;
    if (strcmp(node, NS_BOOKMARKS) == 0) {
        sync_to_legacy(m, user);
    } else if (strcmp(node, NS_LEGACY) == 0 && what == TERN_PEP_PUBLISHED && payload != NULL &&
               tern_xml_is(payload, "storage", NS_LEGACY)) {
        sync_from_legacy(m, user, payload, WRITE_PRIVATE);
    }
    st->busy = 0;
}

/* Before mod_private or mod_pep handles a client's write: make sure we
 * watch it.  Never takes the stanza. */
static int before_write(tern_module_ctx_t *m, tern_event_t *ev)
{
    ensure_watch(m);
    return TERN_PASS;
}

/* A session starts: migrate legacy bookmarks of a user with no XEP-0402 node. */
static int on_session_bound(tern_module_ctx_t *m, tern_event_t *ev)
{
    bm_state_t *st = tern_get_data(m);
    const tern_jid_t *jid = ev->session != NULL ? tern_session_jid(ev->session) : NULL;
    const tern_pep_api_t *pep = pep_of(m);
    ensure_watch(m);
    if (st == NULL || st->busy || pep == NULL || jid == NULL || jid->local == NULL ||
        pep->node_config(m, jid->local, NS_BOOKMARKS, NULL) != 0)
        return TERN_PASS;
    tern_xml_t *storage = legacy_storage(m, pep, jid->local);
    int has_rooms = storage != NULL && tern_xml_child(storage, "conference", NS_LEGACY) != NULL;
    if (has_rooms) {
        tern_log(m, TERN_LOG_INFO, "%s: bookmarks converted to XEP-0402", jid->local);
        st->busy = 1;
        sync_from_legacy(m, jid->local, storage, WRITE_PEP | WRITE_PRIVATE);
        st->busy = 0;
    }
    if (storage != NULL)
        tern_xml_unref(storage);
    return TERN_PASS;
}

static int load(tern_module_ctx_t *m)
{
    const tern_pep_api_t *pep = pep_of(m); /* loaded before us: see depends */
    bm_state_t *st = calloc(1, sizeof *st);
    if (st == NULL || pep == NULL) {
        tern_log(m, TERN_LOG_ERROR, st == NULL ? "out of memory" : "mod_pep is not loaded");
        free(st);
        return -1;
    }
    tern_set_data(m, st);
    tern_add_account_feature(m, NS_BOOKMARKS "#compat");     /* XEP-0402 §5.3 */
    tern_add_account_feature(m, NS_BOOKMARKS "#compat-pep"); /* XEP-0402 §5.3 */
    if (pep->observe(m, NS_BOOKMARKS, on_pep_change, NULL) < 0 ||
        pep->observe(m, NS_LEGACY, on_pep_change, NULL) < 0 ||
        tern_hook(m, "iq-set/self/" TERN_NS_PRIVATE ":query", before_write, 100) != 0 ||
        tern_hook(m, "iq-set/self/" NS_PUBSUB ":pubsub", before_write, 100) != 0 ||
        tern_hook(m, "session/bound", on_session_bound, 0) != 0) {
        pep->unobserve(m);
        tern_set_data(m, NULL);
        free(st);
        return -1;
    }
    return 0;
}

static void unload(tern_module_ctx_t *m)
{
    const tern_pep_api_t *pep = pep_of(m);
    const tern_private_api_t *priv = private_of(m);
    bm_state_t *st = tern_get_data(m);
    if (pep != NULL)
        pep->unobserve(m);
    if (priv != NULL && st != NULL && st->watching_private)
        priv->unwatch(priv, m);
    free(st);
    tern_set_data(m, NULL);
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "bookmarks",
    .description = "PEP Native Bookmarks with XEP-0048 compatibility (XEP-0402, XEP-0048)",
    .depends = depends,
    .options = NULL,
    .load = load,
    .unload = unload,
};
