/*
 * mod_vcard — XEP-0054 vcard-temp, with the XEP-0153 avatar hash in presence.
 *
 * Owns the users' vCards on a host: a user stores theirs with an iq-set to
 * their own account (XEP-0054 §3.2) and anyone reads it at the user's bare
 * JID, where the server answers for the account (§3.3: vCards are public).
 * A user without a vCard reads as an empty <vCard/>; an address that is no
 * account gets service-unavailable.  The host's own vCard is empty.
 *
 * XEP-0153 §3.1: when a vCard is stored, the SHA-1 of its PHOTO/BINVAL
 * image is computed once and kept; every available presence a user of the
 * host sends (broadcast or directed) then leaves with
 * <x xmlns='vcard-temp:x:update'><photo>HASH</photo></x>, replacing what
 * the client put there (an empty <photo/> when there is no image), except
 * a client's own empty <photo/>, kept as XEP-0398 §4 asks.  The
 * server does not send presence by itself when the vCard changes: §4.1
 * makes that the client's job, and its next presence carries the new hash.
 *
 * Other modules reach the vCards through the "vcard" service
 * (vcard_api.h), never through this module's stores.
 *
 * Stores: KV "vcard" (the serialized <vCard/>), KV "photo" (the hex hash,
 * absent when the vCard has no image).
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/base64.h>
#include <tern/module.h>

#include "vcard_api.h"

#define NS_VCARD_UPDATE "vcard-temp:x:update"

/* A module that asked to hear about changes. */
typedef struct vcard_watch {
    struct vcard_watch *next;
    tern_module_ctx_t *watcher;
    vcard_changed_fn fn;
} vcard_watch_t;

/* Module data.  `api` comes first: the service functions get the table
 * and find the rest of the state from it. */
typedef struct vcard_state {
    vcard_api_t api;
    tern_module_ctx_t *m;
    tern_store_t *cards;  /* KV "vcard" */
    tern_store_t *photos; /* KV "photo" */
    size_t max_size;
    vcard_watch_t *watches;
} vcard_state_t;

static const tern_option_t options[] = {
    {.name = "max_size",
     .type = TERN_OPT_SIZE,
     .def = "64K",
     .doc = "Largest vCard a user may store, serialized, photo included. Note that a stanza larger "
            "than the server's `limits.max_stanza_size` is refused earlier, with a stream error, "
            "so keep this below that limit."},
    {.name = NULL},
};

/* ---- XEP-0153 photo hash --------------------------------------------- */

/* XEP-0153 §3.1: the hex SHA-1 of the decoded PHOTO/BINVAL of `vcard`
 * into hex[41].  Returns 1, or 0 when there is no usable image (no
 * BINVAL, an empty one, or one that is not base64). */
static int photo_hash(const tern_xml_t *vcard, char hex[41])
{
    tern_xml_t *photo = tern_xml_child(vcard, "PHOTO", VCARD_NS);
    tern_xml_t *binval = photo != NULL ? tern_xml_child(photo, "BINVAL", VCARD_NS) : NULL;
    if (binval == NULL)
        return 0;
    /* XEP-0153 §4.7: line breaks MUST be ignored. */
    const char *b64 = tern_xml_text(binval);
    size_t n = 0;
    unsigned char *raw = tern_base64_decode(b64, strlen(b64), TERN_BASE64_LENIENT, &n);
    if (raw == NULL)
        return 0;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int ok = n > 0 && EVP_Digest(raw, n, md, &md_len, EVP_sha1(), NULL) == 1 && md_len == 20;
    free(raw);
    for (unsigned i = 0; ok && i < md_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return ok;
}

/* ---- the store --------------------------------------------------------- */

/* Whether `el` has an element child (an empty <vCard/> means "none"). */
static int has_elements(const tern_xml_t *el)
{
    return tern_xml_first_element(el) != NULL;
}

/* `user`'s vCard as a new tree: 1 found, 0 none, -1 error. */
static int card_get(vcard_state_t *st, const char *user, tern_xml_t **vcard_r)
{
    tern_blob_t blob = {0};
    *vcard_r = NULL;
    int rc = tern_kv_get(st->cards, user, &blob);
    if (rc != 1)
        return rc;
    *vcard_r = tern_xml_parse(blob.data, blob.len);
    free(blob.data);
    if (*vcard_r == NULL) {
        tern_log(st->m, TERN_LOG_ERROR, "stored vCard of %s does not parse", user);
        return -1;
    }
    return 1;
}

/* Store `vcard` for `user` (NULL or an empty <vCard/> removes it), keep
 * its photo hash, tell the watchers.  0, or -1 with *error_r. */
static int card_set(vcard_state_t *st, const char *user, const tern_xml_t *vcard,
                    const char **error_r)
{
    const char *dummy;
    if (error_r == NULL)
        error_r = &dummy;
    if (vcard != NULL && !tern_xml_is(vcard, "vCard", VCARD_NS)) {
        *error_r = "not a vCard";
        return -1;
    }
    if (vcard != NULL && !has_elements(vcard))
        vcard = NULL;

    char *text = NULL;
    size_t len = 0;
    if (vcard != NULL) {
        text = tern_xml_to_string(vcard, &len);
        if (text == NULL) {
            *error_r = "storage error";
            return -1;
        }
        if (len > st->max_size) {
            free(text);
            *error_r = "too large";
            return -1;
        }
    }
    char hex[41];
    int has_photo = vcard != NULL && photo_hash(vcard, hex);
    int rc = tern_kv_set(st->cards, user, text, len);
    free(text);
    if (rc == 0)
        rc = tern_kv_set(st->photos, user, has_photo ? hex : NULL, has_photo ? 40 : 0);
    if (rc != 0) {
        tern_log(st->m, TERN_LOG_ERROR, "cannot store the vCard of %s", user);
        *error_r = "storage error";
        return -1;
    }
    for (vcard_watch_t *w = st->watches; w != NULL; w = w->next)
        w->fn(w->watcher, user, vcard);
    return 0;
}

/* ---- the "vcard" service ----------------------------------------------- */

static int api_get(const vcard_api_t *api, const char *user, tern_xml_t **vcard_r)
{
    return card_get((vcard_state_t *)api, user, vcard_r);
}

static int api_set(const vcard_api_t *api, const char *user, const tern_xml_t *vcard,
                   const char **error_r)
{
    return card_set((vcard_state_t *)api, user, vcard, error_r);
}

static int api_watch(const vcard_api_t *api, tern_module_ctx_t *watcher, vcard_changed_fn fn)
{
    vcard_state_t *st = (vcard_state_t *)api;
    for (vcard_watch_t *w = st->watches; w != NULL; w = w->next)
        if (w->watcher == watcher) {
            w->fn = fn;
            return 0;
        }
    vcard_watch_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return -1;
    w->watcher = watcher;
    w->fn = fn;
    w->next = st->watches;
    st->watches = w;
    return 0;
}

static void api_unwatch(const vcard_api_t *api, tern_module_ctx_t *watcher)
{
    vcard_state_t *st = (vcard_state_t *)api;
    for (vcard_watch_t **p = &st->watches; *p != NULL; p = &(*p)->next)
        if ((*p)->watcher == watcher) {
            vcard_watch_t *dead = *p;
            *p = dead->next;
            free(dead);
            return;
        }
}

/* ---- iq handlers --------------------------------------------------------- */

/* Answer ev's iq with `vcard` (a copy), or an empty <vCard/> when NULL. */
static int reply_vcard(tern_module_ctx_t *m, const tern_event_t *ev, const tern_xml_t *vcard)
{
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *el = NULL;
    if (reply != NULL)
        el = vcard != NULL ? tern_xml_copy_into(reply, vcard)
                           : tern_xml_add_child(reply, "vCard", VCARD_NS);
    return tern_iq_answer(m, ev, reply, el != NULL);
}

/* XEP-0054 §3.1, §3.3: `user`'s vCard, empty when there is none. */
static int answer_get(tern_module_ctx_t *m, tern_event_t *ev, const char *user)
{
    vcard_state_t *st = tern_get_data(m);
    tern_xml_t *vcard = NULL;
    if (card_get(st, user, &vcard) < 0) {
        tern_reply_error(m, ev, "wait", "internal-server-error", NULL);
        return TERN_HANDLED;
    }
    reply_vcard(m, ev, vcard);
    if (vcard != NULL)
        tern_xml_unref(vcard);
    return TERN_HANDLED;
}

/* XEP-0054 §3.1: the user's own vCard. */
static int on_get_self(tern_module_ctx_t *m, tern_event_t *ev)
{
    return answer_get(m, ev, ev->to->local);
}

/* XEP-0054 §3.3: another account's vCard, answered by the server; an
 * address that is no account gets service-unavailable (RFC 6121 §8.5.1). */
static int on_get_bare(tern_module_ctx_t *m, tern_event_t *ev)
{
    if (tern_user_exists(m, ev->to->local) <= 0) {
        tern_reply_error(m, ev, "cancel", "service-unavailable", NULL);
        return TERN_HANDLED;
    }
    return answer_get(m, ev, ev->to->local);
}

/* XEP-0054 §3.3 (note): the server may have a vCard; ours is empty. */
static int on_get_host(tern_module_ctx_t *m, tern_event_t *ev)
{
    return reply_vcard(m, ev, NULL);
}

/* XEP-0054 §3.2: a user stores their vCard; the whole vCard each time. */
static int on_set_self(tern_module_ctx_t *m, tern_event_t *ev)
{
    vcard_state_t *st = tern_get_data(m);
    const tern_xml_t *vcard = tern_xml_child(ev->stanza, "vCard", VCARD_NS);
    const char *error = NULL;
    if (card_set(st, ev->to->local, vcard, &error) < 0) {
        if (strcmp(error, "too large") == 0) {
            char text[80];
            snprintf(text, sizeof text, "the vCard is larger than %zu bytes", st->max_size);
            tern_reply_error(m, ev, "modify", "not-acceptable", text);
        } else {
            tern_reply_error(m, ev, "wait", "internal-server-error", NULL);
        }
        return TERN_HANDLED;
    }
    tern_xml_t *reply = tern_iq_result(ev);
    if (reply != NULL) {
        tern_route(m, reply);
        tern_xml_unref(reply);
    }
    return TERN_HANDLED;
}

/* XEP-0054 §3.2: nobody sets another entity's vCard. */
static int on_set_other(tern_module_ctx_t *m, tern_event_t *ev)
{
    tern_reply_error(m, ev, "auth", "forbidden", NULL);
    return TERN_HANDLED;
}

/* ---- XEP-0153 presence --------------------------------------------------- */

/* Whether `x` (a vcard-temp:x:update) holds an empty <photo/>: the client
 * says on purpose that it shows no avatar. */
static int empty_photo(tern_xml_t *x)
{
    tern_xml_t *photo = tern_xml_child(x, "photo", NS_VCARD_UPDATE);
    if (photo == NULL || tern_xml_first_element(photo) != NULL)
        return 0;
    return strspn(tern_xml_text(photo), " \t\r\n") == strlen(tern_xml_text(photo));
}

/* XEP-0153 §4.1, XEP-0398 §4: every available presence a client of this
 * host sends, broadcast or directed to anyone (local, component, remote),
 * carries the hash of the stored image, or an empty <photo/>; only a
 * presence in which the client itself put an empty <photo/> is left as it
 * is.  The presence modules route for the user (ev->origin NULL) copies
 * what the client sent, which carries it already. */
static int on_presence_out(tern_module_ctx_t *m, tern_event_t *ev)
{
    vcard_state_t *st = tern_get_data(m);
    if (tern_xml_attr(ev->stanza, "type") != NULL || ev->origin == NULL || ev->from == NULL ||
        ev->from->local == NULL || strcmp(ev->from->domain, tern_host(m)) != 0)
        return TERN_PASS;
    tern_xml_t *own = tern_xml_child(ev->stanza, "x", NS_VCARD_UPDATE);
    if (own != NULL && empty_photo(own))
        return TERN_PASS; /* XEP-0398 §4: the client's empty <photo/> stays */
    tern_blob_t hash = {0};
    if (tern_kv_get(st->photos, ev->from->local, &hash) < 0)
        return TERN_PASS; /* storage trouble: leave the client's own <x/> */
    tern_xml_t *old;
    while ((old = tern_xml_child(ev->stanza, "x", NS_VCARD_UPDATE)) != NULL)
        tern_xml_unlink(old);
    tern_xml_t *x = tern_xml_add_child(ev->stanza, "x", NS_VCARD_UPDATE);
    tern_xml_t *photo = x != NULL ? tern_xml_add_child(x, "photo", NULL) : NULL;
    if (photo != NULL && hash.data != NULL && hash.len > 0)
        tern_xml_add_text(photo, hash.data, hash.len);
    free(hash.data);
    return TERN_PASS;
}

/* ---- life cycle ------------------------------------------------------------ */

static int load(tern_module_ctx_t *m)
{
    vcard_state_t *st = calloc(1, sizeof *st);
    if (st == NULL) {
        tern_log(m, TERN_LOG_ERROR, "out of memory");
        return -1;
    }
    st->m = m;
    st->max_size = (size_t)tern_opt_int(m, "max_size");
    st->cards = tern_store(m, "vcard", TERN_STORE_KV);
    st->photos = tern_store(m, "photo", TERN_STORE_KV);
    st->api =
        (vcard_api_t){.get = api_get, .set = api_set, .watch = api_watch, .unwatch = api_unwatch};
    if (st->cards == NULL || st->photos == NULL) {
        tern_log(m, TERN_LOG_ERROR, "cannot open the vCard stores");
        free(st);
        return -1;
    }
    tern_set_data(m, st);
    tern_add_feature(m, VCARD_NS);
    tern_add_account_feature(m, VCARD_NS); /* XEP-0054 §4, for the bare JIDs */
    if (tern_hook(m, "iq-get/self/" VCARD_NS ":vCard", on_get_self, 0) != 0 ||
        tern_hook(m, "iq-get/bare/" VCARD_NS ":vCard", on_get_bare, 0) != 0 ||
        tern_hook(m, "iq-get/host/" VCARD_NS ":vCard", on_get_host, 0) != 0 ||
        tern_hook(m, "iq-set/self/" VCARD_NS ":vCard", on_set_self, 0) != 0 ||
        tern_hook(m, "iq-set/bare/" VCARD_NS ":vCard", on_set_other, 0) != 0 ||
        tern_hook(m, "iq-set/host/" VCARD_NS ":vCard", on_set_other, 0) != 0 ||
        tern_hook(m, "pre-presence/self", on_presence_out, 20) != 0 ||
        tern_hook(m, "pre-presence/bare", on_presence_out, 20) != 0 ||
        tern_hook(m, "pre-presence/full", on_presence_out, 20) != 0 ||
        tern_provide(m, VCARD_SERVICE, &st->api) != 0) {
        free(st); /* unload() runs only after a successful load() */
        tern_set_data(m, NULL);
        return -1;
    }
    return 0;
}

static void unload(tern_module_ctx_t *m)
{
    vcard_state_t *st = tern_get_data(m);
    if (st == NULL)
        return;
    while (st->watches != NULL) { /* dependents unload first: normally empty */
        vcard_watch_t *w = st->watches;
        st->watches = w->next;
        free(w);
    }
    free(st);
    tern_set_data(m, NULL);
}

/* A reload changed the options: take the new limit for what comes next. */
static int reconfigure(tern_module_ctx_t *m)
{
    vcard_state_t *st = tern_get_data(m);
    st->max_size = (size_t)tern_opt_int(m, "max_size");
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "vcard",
    .description = "User vCards (XEP-0054) and the vCard avatar hash in presence (XEP-0153)",
    .options = options,
    .load = load,
    .unload = unload,
    .reconfigure = reconfigure,
};
