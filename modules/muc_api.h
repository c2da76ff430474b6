/*
 * muc_api.h — the "muc" service of mod_muc, for other modules loaded on
 * the same service domain (a room archive, stanza ids, moderation).
 *
 * Get the table at event time or in a later turn of the loop, never in
 * load() (modules load in any order):
 *
 *     const tern_muc_api_t *muc = tern_require(m, TERN_MUC_SERVICE);
 *     if (muc == NULL || muc->abi != TERN_MUC_ABI) ...no group chat...
 *     muc->watch(muc, m, on_groupchat, arg);
 *
 * A watcher sees every groupchat message a room sends (those with a body
 * or a subject), once, before it is fanned out to the occupants and kept
 * in the room's history: it may add elements to `msg` (a <stanza-id/>,
 * XEP-0359; an <occupant-id/>, XEP-0421), which every occupant and the
 * history then get; it must not remove or change what is there, and must
 * not keep `msg` (tern_xml_copy what it archives).  Watchers run in the
 * order they were added.  Nothing here sends a stanza.
 */
#ifndef TERN_MODULES_MUC_API_H
#define TERN_MODULES_MUC_API_H

#include <tern/module.h>

#define TERN_MUC_SERVICE "muc"
#define TERN_MUC_ABI     1

typedef struct tern_muc_api tern_muc_api_t;

/* room: "room@service"; nick: the sender's nick; real: its real bare JID;
 * msg: the message as the room sends it (from room@service/nick, no 'to'). */
typedef void (*tern_muc_watch_fn)(tern_module_ctx_t *watcher, const char *room, const char *nick,
                                  const char *real, tern_xml_t *msg, void *arg);

struct tern_muc_api {
    int abi; /* TERN_MUC_ABI */
    /* Add a watcher of groupchat messages.  0, or -1 when the table of
     * watchers is full (8).  Call unwatch() in the watcher's unload. */
    int (*watch)(const tern_muc_api_t *self, tern_module_ctx_t *watcher, tern_muc_watch_fn fn,
                 void *arg);
    /* Drop every watch `watcher` added. */
    void (*unwatch)(const tern_muc_api_t *self, tern_module_ctx_t *watcher);
};

#endif
