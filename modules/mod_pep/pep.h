/*
 * pep.h — what the files of mod_pep share (internal to the module).
 *
 *   mod.c      options, load/unload, the per-host state and its registry,
 *              the account's disco identity/features, presence hooks
 *   nodes.c    a node as stored (config, whitelist, items), access checks
 *   publish.c  the XEP-0060 iq protocol: publish, retract, items, create,
 *              owner configure/delete/purge/affiliations, and disco of nodes
 *   notify.c   event notifications and the last item on presence
 *   caps.c     XEP-0115: caps in presence, verification, the caps cache
 *   api.c      the "pep" service (modules/pep_api.h)
 *   util.c     a string map, ids and time stamps
 */
#ifndef MOD_PEP_H
#define MOD_PEP_H

#include <stddef.h>
#include <stdint.h>
#include <tern/module.h>

#include "../pep_api.h"

#define NS_PUBSUB          "http://jabber.org/protocol/pubsub"
#define NS_PUBSUB_OWNER    "http://jabber.org/protocol/pubsub#owner"
#define NS_PUBSUB_EVENT    "http://jabber.org/protocol/pubsub#event"
#define NS_PUBSUB_ERRORS   "http://jabber.org/protocol/pubsub#errors"
#define NS_PUBLISH_OPTIONS "http://jabber.org/protocol/pubsub#publish-options"
#define NS_NODE_CONFIG     "http://jabber.org/protocol/pubsub#node_config"
#define NS_META_DATA       "http://jabber.org/protocol/pubsub#meta-data"
#define NS_CAPS            "http://jabber.org/protocol/caps"
#define NS_DISCO_INFO      "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS     "http://jabber.org/protocol/disco#items"
#define NS_DATA            "jabber:x:data"
#define NS_DELAY           "urn:xmpp:delay"
#define NS_STANZAS         "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_PEP_STORE       "urn:tern:pep:0" /* our storage format */

/* ---- util.c ------------------------------------------------------------ */

/* A map from strings to pointers (chained hash table). */
typedef struct strmap strmap_t;
strmap_t *strmap_new(void (*free_fn)(void *));
void strmap_free(strmap_t **map);
void *strmap_get(const strmap_t *map, const char *key);
/* Replace (freeing the old value) or insert.  0, or -1 out of memory. */
int strmap_put(strmap_t *map, const char *key, void *value);
/* Remove and free.  1 removed, 0 absent. */
int strmap_del(strmap_t *map, const char *key);
size_t strmap_count(const strmap_t *map);
/* Remove (and free) every entry whose key starts with prefix. */
size_t strmap_del_prefix(strmap_t *map, const char *prefix);
/* Remove (and free) one entry, any: for bounding a cache.  0 if empty. */
int strmap_evict_one(strmap_t *map, const char *keep);

/* Parse one serialized element (as tern_xml_to_string writes it). */
/* malloc'd "a\nb". */
char *pep_join(const char *a, const char *b);
/* A fresh unique item id. */
void pep_new_id(char *buf, size_t len);
/* XEP-0082 DateTime of a time in microseconds. */
void pep_stamp(int64_t us, char *buf, size_t len);

/* ---- mod.c: per-host state ---------------------------------------------- */

typedef struct pep_observer {
    struct pep_observer *next;
    tern_module_ctx_t *owner;
    char *node; /* NULL = any */
    tern_pep_observer_fn fn;
    void *arg;
} pep_observer_t;

typedef struct caps_entry caps_entry_t;

typedef struct pep_state {
    tern_module_ctx_t *m;
    tern_store_t *nodes; /* MAP: user -> node name -> <node/> */
    tern_store_t *caps;  /* KV: "HASH VER" -> feature list, one per line */
    long max_items_limit;
    long default_max_items;
    long max_nodes;
    long long max_item_size; /* bytes of one item's payload, 0 = no limit */
    long long caps_timeout_ms;
    long caps_cache_size;
    strmap_t
        *volatile_items;  /* "user\nnode" -> <node/> with the items of persist_items=false nodes */
    strmap_t *caps_cache; /* "HASH VER" -> caps_entry_t (one reference) */
    caps_entry_t *caps_pending; /* entries with a disco#info query out */
    strmap_t *remote;           /* remote bare JID -> its available resources and their caps */
    pep_observer_t *observers;
    unsigned long long seq;
} pep_state_t;

/* The state of mod_pep on `host` (a domain), or NULL when not loaded there. */
pep_state_t *pep_state_of_host(const char *host);

/* Per-session data (a session slot). */
typedef struct pep_session {
    caps_entry_t *caps; /* a reference, or NULL */
    int announced;      /* initial presence seen (XEP-0163 §6.1 last items sent) */
} pep_session_t;

/* ---- nodes.c ------------------------------------------------------------ */

/* A node loaded from storage: the <node/> tree of NS_PEP_STORE. */
typedef struct pep_node {
    char *user;
    char *name;
    tern_xml_t *doc;
    tern_pep_config_t cfg;
} pep_node_t;

void pep_default_config(const pep_state_t *st, const char *node, tern_pep_config_t *cfg);
/* 1 loaded (*out), 0 no such node, -1 storage error. */
int pep_node_load(pep_state_t *st, const char *user, const char *name, pep_node_t **out);
/* A new node (not stored yet), or NULL. */
pep_node_t *pep_node_new(pep_state_t *st, const char *user, const char *name,
                         const tern_pep_config_t *cfg);
/* Write back (applying max_items).  0 or -1. */
int pep_node_save(pep_state_t *st, pep_node_t *n);
int pep_node_remove(pep_state_t *st, const char *user, const char *name);
void pep_node_free(pep_node_t **n);
/* Apply n->cfg to n->doc's attributes. */
void pep_node_sync_cfg(pep_node_t *n);
/* Count of the user's nodes, or -1. */
int pep_node_count(pep_state_t *st, const char *user);
/* Call fn for each node name of the user; fn returns non-zero to stop. */
int pep_node_foreach(pep_state_t *st, const char *user, int (*fn)(void *ctx, const char *name),
                     void *ctx);

/* Items: the <item/> children of n->doc, oldest first. */
tern_xml_t *pep_item_find(pep_node_t *n, const char *id);
tern_xml_t *pep_item_last(pep_node_t *n);
size_t pep_item_count(pep_node_t *n);
/* Add or replace item `id` with a copy of payload (may be NULL); it
 * becomes the newest.  Returns the stored <item/> or NULL. */
tern_xml_t *pep_item_put(pep_node_t *n, const char *id, const tern_xml_t *payload,
                         const char *publisher);
/* 1 removed, 0 absent. */
int pep_item_remove(pep_node_t *n, const char *id);
void pep_item_purge(pep_node_t *n);
/* Append <item id=...>payload</item> in namespace `ns` under parent, from
 * a stored item; returns it or NULL. */
tern_xml_t *pep_copy_item(tern_xml_t *parent, const tern_xml_t *stored, const char *ns);

/* Whitelist (affiliations member/publisher). */
const char *pep_affiliation(pep_node_t *n, const char *bare);
void pep_set_affiliation(pep_node_t *n, const char *bare, const char *affiliation);

/* XEP-0060 §4.5: may `requester` (bare JID) read node n?  Returns 0 yes,
 * or a denial: PEP_DENY_PRESENCE, PEP_DENY_WHITELIST. */
enum { PEP_ALLOW = 0, PEP_DENY_PRESENCE, PEP_DENY_WHITELIST };
int pep_access(pep_state_t *st, pep_node_t *n, const char *requester);

/* Roster facts (through the "roster" service, when loaded).
 * 1 when contact's bare JID has a subscription of type from or both in
 * user's roster (contact receives user's presence), else 0. */
int pep_contact_allowed(pep_state_t *st, const char *user, const char *contact_bare);
/* Call fn for each contact of `user` with the given direction:
 * want_from: subscription from/both (they see user's presence);
 * else to/both (user sees theirs).  Without the roster service: none. */
int pep_roster_foreach(pep_state_t *st, const char *user, int want_from,
                       int (*fn)(void *ctx, const char *contact_bare), void *ctx);

/* Config <-> data forms. */
const char *pep_access_name(tern_pep_access_t a);
const char *pep_send_last_name(int v);
/* Read a submitted form (publish-options or configure) into *cfg, starting
 * from its current values.  Returns NULL, or the XMPP error condition
 * ("bad-request", "not-acceptable") with *field set to the culprit. */
const char *pep_form_to_config(const pep_state_t *st, const tern_xml_t *form,
                               tern_pep_config_t *cfg, unsigned *seen);
/* Bits of `seen`, for precondition checks. */
enum {
    PEP_F_ACCESS = 1,
    PEP_F_PERSIST = 2,
    PEP_F_MAX = 4,
    PEP_F_SEND_LAST = 8,
    PEP_F_NOTIFY_RETRACT = 16
};
/* Whether the fields in `seen` of `want` equal those of `have`. */
int pep_config_matches(const tern_pep_config_t *have, const tern_pep_config_t *want, unsigned seen);
/* Append <x type=form> with the node configuration. */
void pep_config_form(tern_xml_t *parent, const char *node, const tern_pep_config_t *cfg);

/* ---- notify.c ----------------------------------------------------------- */

/* Send <items node><item/></items> (or a <retract/>, <purge/>, <delete/>
 * event: `event` is the child of <event/> to copy) from user's bare JID to
 * every interested, allowed session.  `n` gives node name and access. */
void pep_notify(pep_state_t *st, pep_node_t *n, const tern_xml_t *event);
/* Owner's session `s` just became available: send it and (through the
 * contacts' PEP services) the last items it is interested in. */
void pep_send_last_items(pep_state_t *st, tern_session_t *s);
/* The remote `full` (bare JID `bare`), a contact of local `user`, is
 * available with caps e: send it the last items of user's nodes it is
 * interested in and may read. */
void pep_send_last_items_remote(pep_state_t *st, const char *user, const char *bare,
                                const char *full, const caps_entry_t *e);
/* Tell observers (all but `except`). */
void pep_observers_fire(pep_state_t *st, tern_module_ctx_t *except, const char *user,
                        const char *node, tern_pep_change_t what, const char *item_id,
                        const tern_xml_t *payload);

/* ---- caps.c ------------------------------------------------------------- */

/* pre-presence/self: record the <c/> of a session's broadcast presence. */
int pep_caps_on_presence(tern_module_ctx_t *m, tern_event_t *ev);
/* "in-presence/bare", "in-presence/full": remember the caps of available
 * resources of contacts on other servers, forget them when unavailable. */
int pep_caps_on_remote_presence(tern_module_ctx_t *m, tern_event_t *ev);
/* Call fn with each available resource of the remote contact `bare` of
 * `user` whose caps say NODE+notify. */
void pep_remote_foreach_wanting(pep_state_t *st, const char *user, const char *bare,
                                const char *node, void (*fn)(void *ctx, const char *full),
                                void *ctx);
/* The account `user` is gone: forget what its remote contacts sent. */
void pep_remote_forget_user(pep_state_t *st, const char *user);
/* Whether caps entry e (may be NULL) says NODE+notify. */
int pep_caps_wants(const caps_entry_t *e, const char *node);
/* Whether session s asked for NODE+notify (XEP-0163 §4.3.2). */
int pep_session_wants(const pep_state_t *st, const tern_session_t *s, const char *node);
void pep_caps_entry_unref(caps_entry_t *e);
void pep_session_data_free(void *p);
int pep_caps_init(pep_state_t *st);
void pep_caps_release(pep_state_t *st);
/* 0 ok, or -1: XEP-0115 §5.4 verification of a disco#info <query/>. */
int pep_caps_verify(const tern_xml_t *query, const char *hash, const char *ver);

/* ---- publish.c ---------------------------------------------------------- */

int pep_on_pubsub_set(tern_module_ctx_t *m, tern_event_t *ev);
int pep_on_pubsub_get(tern_module_ctx_t *m, tern_event_t *ev);
int pep_on_owner(tern_module_ctx_t *m, tern_event_t *ev);
int pep_on_disco_info(tern_module_ctx_t *m, tern_event_t *ev);
int pep_on_disco_items(tern_module_ctx_t *m, tern_event_t *ev);

/* The core of publishing, shared with api.c.  `by` is the observer to
 * skip (NULL for a client's publish).  Returns NULL or an error condition
 * ("precondition-not-met", "not-acceptable", "internal-server-error",
 * "policy-violation" for too many nodes); *item_id_r (may be NULL) gets the
 * stored id (valid until the next call). */
const char *pep_publish(pep_state_t *st, tern_module_ctx_t *by, const char *user, const char *node,
                        const char *id, const tern_xml_t *payload, const tern_pep_config_t *options,
                        unsigned seen, const char *publisher, const char **item_id_r);
/* 0 removed, 1 none, -1 error. */
int pep_retract(pep_state_t *st, tern_module_ctx_t *by, const char *user, const char *node,
                const char *id, int notify);
int pep_delete(pep_state_t *st, tern_module_ctx_t *by, const char *user, const char *node);

/* ---- api.c ------------------------------------------------------------- */

extern const tern_pep_api_t pep_api;

#endif
