/*
 * avatar.c — a room's vCard (vcard-temp on the room JID, as XEP-0486 MUC
 * Avatars uses it): the room's owners set it with an iq set, everyone who
 * may see the room gets it with an iq get (an empty <vCard/> when none
 * was set).  The room's disco#info then carries the SHA-1 of its photo as
 * muc#roominfo_avatarhash (XEP-0486 §3), and the occupants get a presence
 * from the room with <x xmlns='vcard-temp:x:update'><photo/></x>
 * (XEP-0153) when it changes.  Stored in the module's map store "vcards"
 * (key: the room's localpart), at most MAX_VCARD bytes.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/base64.h>
#include <tern/store.h>

#include "muc.h"

#define NS_VCARD_UPDATE "vcard-temp:x:update"
#define MAX_VCARD       (256 * 1024)

/* The stored vCard of r (a new tree), or NULL. */
static tern_xml_t *load_vcard(muc_t *mu, const muc_room_t *r)
{
    tern_blob_t b = {0};
    if (!mu->vcards || tern_map_get(mu->vcards, "", r->local, &b) != 1)
        return NULL;
    tern_xml_t *v = tern_xml_parse(b.data, b.len);
    free(b.data);
    return v;
}

int avatar_hash(muc_t *mu, const muc_room_t *r, char out[41])
{
    out[0] = '\0';
    tern_xml_t *v = load_vcard(mu, r);
    tern_xml_t *photo = v ? tern_xml_child(v, "PHOTO", NS_VCARD) : NULL;
    tern_xml_t *bin = photo ? tern_xml_child(photo, "BINVAL", NS_VCARD) : NULL;
    const char *text = bin ? tern_xml_text(bin) : NULL;
    size_t n = 0;
    unsigned char *raw =
        text ? tern_base64_decode(text, strlen(text), TERN_BASE64_LENIENT, &n) : NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int ok = raw && n > 0 && EVP_Digest(raw, n, md, &md_len, EVP_sha1(), NULL) == 1 && md_len == 20;
    for (unsigned i = 0; ok && i < md_len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    free(raw);
    tern_xml_unref(v);
    return ok ? 0 : -1;
}

static muc_room_t *visible(muc_t *mu, tern_event_t *ev)
{
    muc_room_t *r = ev->to->resource ? NULL : room_find(mu, ev->to->local);
    if (!r || (r->locked && room_aff(mu, r, ev->from->bare) != AFF_OWNER)) {
        tern_reply_error(mu->m, ev, "cancel", "item-not-found", "No such room");
        return NULL;
    }
    return r;
}

int muc_on_vcard_get(tern_module_ctx_t *m, tern_event_t *ev)
{
    muc_t *mu = muc_get(m);
    muc_room_t *r = visible(mu, ev);
    if (!r)
        return TERN_HANDLED;
    tern_xml_t *res = tern_iq_result(ev);
    tern_xml_t *v = load_vcard(mu, r);
    int ok = res && (v ? tern_xml_copy_into(res, v) : tern_xml_add_child(res, "vCard", NS_VCARD));
    tern_xml_unref(v);
    return tern_iq_answer(m, ev, res, ok);
}

/* XEP-0153 §4.1: occupants learn the new photo's hash from the room. */
static void announce(muc_t *mu, muc_room_t *r, const char *hash)
{
    tern_xml_t *p = tern_xml_new("presence", TERN_NS_CLIENT);
    tern_xml_t *x = p ? tern_xml_add_child(p, "x", NS_VCARD_UPDATE) : NULL;
    tern_xml_t *ph = x ? tern_xml_add_child(x, "photo", NS_VCARD_UPDATE) : NULL;
    if (ph) {
        tern_xml_set_attr(p, "from", r->jid);
        if (*hash)
            tern_xml_add_text(ph, hash, strlen(hash));
        muc_vec_t to = {0};
        occ_collect_all(r, &to);
        if (to.n)
            tern_route_fanout(mu->m, p, to.v, to.n);
        muc_vec_free(&to);
    }
    tern_xml_unref(p);
}

int muc_on_vcard_set(tern_module_ctx_t *m, tern_event_t *ev)
{
    muc_t *mu = muc_get(m);
    muc_room_t *r = visible(mu, ev);
    if (!r)
        return TERN_HANDLED;
    if (room_aff(mu, r, ev->from->bare) != AFF_OWNER) {
        tern_reply_error(m, ev, "auth", "forbidden", "Only owners may set the room's vCard");
        return TERN_HANDLED;
    }
    size_t len = 0;
    char *data = tern_xml_to_string(tern_xml_first_element(ev->stanza), &len);
    if (!data || len > MAX_VCARD) {
        free(data);
        tern_reply_error(m, ev, "modify", "not-acceptable", "The vCard is too big");
        return TERN_HANDLED;
    }
    int rc = mu->vcards ? tern_map_set(mu->vcards, "", r->local, data, len) : -1;
    free(data);
    if (rc != 0) {
        tern_reply_error(m, ev, "wait", "internal-server-error", "Cannot store the vCard");
        return TERN_HANDLED;
    }
    tern_iq_answer(m, ev, tern_iq_result(ev), 1);
    char hash[41];
    avatar_hash(mu, r, hash);
    announce(mu, r, hash);
    return TERN_HANDLED;
}

void avatar_remove(muc_t *mu, const muc_room_t *r)
{
    if (mu->vcards)
        tern_map_set(mu->vcards, "", r->local, NULL, 0);
}
