/*
 * private_api.h — the "private" service of mod_private, for other modules.
 *
 * mod_private keeps each user's XEP-0049 private XML: for every namespace
 * NS, the element(s) the user last stored in NS.  Other modules on the same
 * host read and write that data through this table, acting as the user:
 * mod_bookmarks keeps XEP-0048 <storage xmlns='storage:bookmarks'/> in step
 * with its XEP-0402 PEP node, and watches what legacy clients store there.
 *
 * Get the table at event time, never in load() (modules load in any order),
 * and degrade when it is missing:
 *
 *     const tern_private_api_t *priv = tern_require(m, TERN_PRIVATE_SERVICE);
 *     if (priv == NULL || priv->abi != TERN_PRIVATE_ABI) ...no private storage...
 *     tern_xml_t *data = priv->get(priv, "juliet", "storage:bookmarks");
 *     tern_xml_t *storage = data != NULL
 *         ? tern_xml_child(data, "storage", "storage:bookmarks") : NULL;
 *     ...
 *     tern_xml_unref(data);
 *
 * Rules for every function:
 *  - `self` is the table itself (the value tern_require returned): it tells
 *    mod_private which host the call is for.
 *  - `user` is a prepared localpart of an account of that host (as in
 *    tern_event_t.user, or ev->from->local for a local sender).
 *  - Trees passed in are borrowed and copied; trees returned are new roots
 *    the caller unrefs; trees passed to a watcher are borrowed for the call.
 *  - Data is always exchanged wrapped in <query xmlns='jabber:iq:private'/>,
 *    whose children are the stored elements of one namespace (XEP-0049 §2.3
 *    allows several elements in the same namespace).
 *  - Nothing here sends a stanza.
 */
#ifndef TERN_MODULES_PRIVATE_API_H
#define TERN_MODULES_PRIVATE_API_H

#include <tern/module.h>

#define TERN_PRIVATE_SERVICE "private"
#define TERN_PRIVATE_ABI     1
#define TERN_NS_PRIVATE      "jabber:iq:private"

typedef struct tern_private_api tern_private_api_t;

/* Called after `user` stored new data in namespace `ns`, whether a client
 * did it (iq-set jabber:iq:private) or another module through set().
 * `query` is <query xmlns='jabber:iq:private'/> holding the new elements of
 * `ns` (no children: the data of `ns` was removed).  A watcher is not told
 * of the writes it made itself through set(), so a module that keeps two
 * stores in step does not loop. */
typedef void (*tern_private_watch_fn)(tern_module_ctx_t *watcher, const char *user, const char *ns,
                                      const tern_xml_t *query, void *arg);

struct tern_private_api {
    int abi; /* TERN_PRIVATE_ABI */

    /* What `user` stored in namespace `ns`: a new <query/> holding the
     * stored elements (none when nothing is stored).  NULL on a storage
     * error or when out of memory. */
    tern_xml_t *(*get)(const tern_private_api_t *self, const char *user, const char *ns);

    /* Replace the data of `user` in the namespace of `element` with a copy
     * of `element` (so one element; use a client's iq for several).
     * element == NULL with `ns` set removes the data of `ns`; otherwise `ns`
     * may be NULL.  Watchers other than `caller` are told.  0 stored, -1
     * when the namespace is reserved (jabber:client, jabber:iq:private...)
     * or on a storage error. */
    int (*set)(const tern_private_api_t *self, tern_module_ctx_t *caller, const char *user,
               const char *ns, const tern_xml_t *element);

    /* Call fn after every write of namespace `ns` (NULL: any namespace) by
     * any user of this host.  0, or -1 when out of memory.  The watcher must
     * call unwatch() in its unload, with the table tern_require gives then
     * (when that is NULL, mod_private is gone and so is the watch). */
    int (*watch)(const tern_private_api_t *self, tern_module_ctx_t *watcher, const char *ns,
                 tern_private_watch_fn fn, void *arg);
    /* Drop every watch `watcher` registered on this host. */
    void (*unwatch)(const tern_private_api_t *self, tern_module_ctx_t *watcher);
};

#endif
