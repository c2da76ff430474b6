/*
 * vcard_api.h — the "vcard" service of mod_vcard, for other modules.
 *
 * mod_vcard owns the users' vcard-temp vCards (XEP-0054) on a host.  A
 * module that needs them (mod_search's directory, mod_avatar_conversion's
 * XEP-0398 PEP avatar bridge) lists "vcard" in its .depends and gets this table with
 *
 *     const vcard_api_t *vc = tern_require(m, VCARD_SERVICE);
 *
 * It must never read mod_vcard's stores itself.  Every function takes the
 * table as its first argument (the table knows its host).  The table is
 * valid while the requiring module is loaded: the loader unloads
 * dependents before the modules they depend on.
 *
 * vCards cross this interface as trees: a <vCard xmlns='vcard-temp'/>
 * element, never as serialized text.
 */
#ifndef TERN_MODULES_VCARD_API_H
#define TERN_MODULES_VCARD_API_H

#include <tern/module.h>

#define VCARD_SERVICE "vcard"
#define VCARD_NS      "vcard-temp"

typedef struct vcard_api vcard_api_t;

/* Called after `user`'s vCard was stored (by the user's iq-set or by
 * vcard_api_t.set); `vcard` is the new vCard (borrowed: copy what you
 * keep), or NULL when it was removed.  Not called when an account is
 * deleted: hook "user/deleted" for that.  `watcher` is the context given
 * to watch(). */
typedef void (*vcard_changed_fn)(tern_module_ctx_t *watcher, const char *user,
                                 const tern_xml_t *vcard);

struct vcard_api {
    /* Look up the stored vCard of `user` (a localpart of the host).
     * Returns 1 and sets *vcard_r to a new tree (the caller unrefs it),
     * 0 when the user has none, -1 on a storage or parse error. */
    int (*get)(const vcard_api_t *api, const char *user, tern_xml_t **vcard_r);

    /* Store `vcard` (a <vCard xmlns='vcard-temp'/> element, copied) as
     * `user`'s vCard, or remove it when `vcard` is NULL; updates the
     * XEP-0153 photo hash and tells the watchers.  Returns 0, or -1 with
     * *error_r (may be NULL): "not a vCard", "too large", "storage error".
     * The user's next available presence carries the new hash; nothing is
     * sent to anyone now. */
    int (*set)(const vcard_api_t *api, const char *user, const tern_xml_t *vcard,
               const char **error_r);

    /* Call `fn` on every change until unwatch(); one callback per
     * watcher (a second watch() replaces the first).  0, or -1. */
    int (*watch)(const vcard_api_t *api, tern_module_ctx_t *watcher, vcard_changed_fn fn);

    /* Stop calling `watcher` (call it from the watcher's unload). */
    void (*unwatch)(const vcard_api_t *api, tern_module_ctx_t *watcher);
};

#endif
