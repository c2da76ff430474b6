/*
 * pep_api.h — the "pep" service of mod_pep, for other modules.
 *
 * mod_pep makes every account of a host a small XEP-0060 service (XEP-0163
 * PEP).  Other modules on the same host read and write a user's nodes
 * through this table, acting as the account owner: mod_bookmarks keeps
 * XEP-0402 and XEP-0048 bookmarks in step, mod_avatar_conversion keeps the
 * XEP-0084 avatar and the vCard photo in step (XEP-0398).  A change made
 * here is stored, notified to the owner's and contacts' interested
 * sessions, and told to observers just as when the owner's client made it.
 *
 * Get the table at run time, never at load (modules load in any order):
 *     const tern_pep_api_t *pep = tern_require(m, TERN_PEP_SERVICE);
 *     if (pep == NULL || pep->abi != TERN_PEP_ABI) ...degrade...
 * Every function takes the caller's module context (to find the host),
 * the account's localpart (prepared, as in tern_event_t.user) and a node
 * name.  Trees passed in are borrowed and copied; trees passed to a
 * callback are borrowed for the call only.
 */
#ifndef TERN_MODULES_PEP_API_H
#define TERN_MODULES_PEP_API_H

#include <tern/module.h>

#define TERN_PEP_SERVICE "pep"
#define TERN_PEP_ABI     1

/* XEP-0060 §4.5 access models mod_pep supports. */
typedef enum {
    TERN_PEP_ACCESS_PRESENCE = 0, /* owner + contacts with subscription from/both (default) */
    TERN_PEP_ACCESS_OPEN,         /* anyone */
    TERN_PEP_ACCESS_WHITELIST     /* owner + JIDs with affiliation member or publisher */
} tern_pep_access_t;

/* A node's configuration (XEP-0060 §16.4.3 pubsub#... fields). */
typedef struct tern_pep_config {
    tern_pep_access_t access_model; /* pubsub#access_model */
    int persist_items;              /* pubsub#persist_items: 1 = kept in storage */
    long max_items;                 /* pubsub#max_items, 1 .. the server's max_items_limit */
    int send_last; /* pubsub#send_last_published_item: 0 never, 1 on_sub, 2 on_sub_and_presence */
    int notify_retract; /* pubsub#notify_retract */
} tern_pep_config_t;

/* What changed, for observers. */
typedef enum {
    TERN_PEP_PUBLISHED = 1, /* item_id and payload set */
    TERN_PEP_RETRACTED,     /* item_id set, payload NULL */
    TERN_PEP_PURGED,        /* every item removed */
    TERN_PEP_DELETED        /* the node is gone */
} tern_pep_change_t;

/* Called after a change on node `node` of account `user` was stored.
 * An observer is not told of the changes it made itself through this
 * table (so a module keeping two nodes in step does not loop). */
typedef void (*tern_pep_observer_fn)(tern_module_ctx_t *observer, const char *user,
                                     const char *node, tern_pep_change_t what, const char *item_id,
                                     const tern_xml_t *payload, void *arg);

/* Called for each item: `id` and `payload` (the item's first element, or
 * NULL for an item without payload).  Return non-zero to stop. */
typedef int (*tern_pep_item_fn)(void *ctx, const char *id, const tern_xml_t *payload);

typedef struct tern_pep_api {
    int abi; /* TERN_PEP_ABI */

    /* Fill *cfg with the node's configuration.  1 the node exists, 0 it
     * does not, -1 storage error. */
    int (*node_config)(tern_module_ctx_t *caller, const char *user, const char *node,
                       tern_pep_config_t *cfg);

    /* The node's items, oldest first; with max > 0 only the `max` newest.
     * Returns how many were passed to fn, 0 also when the node does not
     * exist, -1 on a storage error. */
    int (*items)(tern_module_ctx_t *caller, const char *user, const char *node, unsigned max,
                 tern_pep_item_fn fn, void *ctx);

    /* Publish `payload` (copied) as item `id` (NULL: a new unique id).  The
     * node is created when missing, with `options` or the defaults.  With
     * `options` and an existing node whose configuration differs, nothing
     * is stored and -1 is returned with *error_r "precondition-not-met"
     * (XEP-0060 §7.1.5).  Other errors: "bad-request", "not-acceptable"
     * (payload too large), "internal-server-error".  0 on success. */
    int (*publish)(tern_module_ctx_t *caller, const char *user, const char *node, const char *id,
                   const tern_xml_t *payload, const tern_pep_config_t *options,
                   const char **error_r);

    /* Remove item `id`; notify the retraction when `notify` and the node
     * says so.  0 done, 1 no such item or node, -1 error. */
    int (*retract)(tern_module_ctx_t *caller, const char *user, const char *node, const char *id,
                   int notify);

    /* Delete the node with its items (notifying <delete/>).  0 done, 1 no
     * such node, -1 error. */
    int (*delete_node)(tern_module_ctx_t *caller, const char *user, const char *node);

    /* Call fn after every change of a node named `node` (NULL: any node)
     * on this host.  The observer must call unobserve() in its unload. */
    int (*observe)(tern_module_ctx_t *observer, const char *node, tern_pep_observer_fn fn,
                   void *arg);
    void (*unobserve)(tern_module_ctx_t *observer);
} tern_pep_api_t;

#endif
